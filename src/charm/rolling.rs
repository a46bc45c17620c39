//! The application-wide rolling-restart lock, held in Juju's peer relation
//! (never in etcd's keyspace), after the pattern of Canonical's
//! `rolling_ops` charm library.
//!
//! - A unit that must restart etcd (a config change, new binaries, renewed
//!   certificates) asks in its own bag: `restart-lock=acquire`, with
//!   `restart-since` (when it first asked) and `restart-reason`.
//! - The leader grants the lock to one unit at a time by writing that
//!   unit's name as `restart-lock` in the peer application bag, oldest
//!   request first and itself last. Relation data outlives the leader, so a
//!   new leader sees the grant and honours it.
//! - The granted unit restarts only while every other voting member serves
//!   and only if the cluster keeps quorum without it; otherwise it holds the
//!   lock and waits (no one else restarts meanwhile). After the restart it
//!   waits until its member serves and its raft index is close to the
//!   etcd leader's, then says `restart-lock=release`.
//! - The leader clears a released (or departed) holder's grant and grants
//!   the next. Relation data written in a hook reaches the others only
//!   when the hook exits, so each step is one hook; the leader's own
//!   restart happens in the hook that grants it.
//!
//! The unit-side checks are the safety net: even two holders (a leader
//! lost between a grant and its commit) would not restart together while
//! one of them is down, because each waits for every other voter to serve.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use super::Charm;
use crate::etcd::client::wait_serving;
use crate::etcd::{ClientTls, EtcdClient};
use crate::juju::Status;

/// Unit- and application-bag key of the lock.
pub const LOCK_KEY: &str = "restart-lock";
/// Unit-bag key: when this unit first asked (Unix seconds).
pub const SINCE_KEY: &str = "restart-since";
/// Unit-bag key: why this unit wants to restart, for statuses.
pub const REASON_KEY: &str = "restart-reason";
const ACQUIRE: &str = "acquire";
const RELEASE: &str = "release";

/// How long a restarted member may take to serve again.
const SERVE_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a restarted member may take to catch up with the leader.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(90);
/// A member whose raft index is within this many entries of the etcd
/// leader's has caught up.
pub const CAUGHT_UP_LAG: u64 = 100;

/// What the unit may do about a restart it needs.
#[derive(Debug)]
pub enum Gate {
    /// This unit holds the lock and the cluster can spare it: restart now.
    Go,
    /// Not now; the status says why.
    Wait(Status),
}

/// One unit's request as its bag shows it.
#[derive(Debug, Clone)]
struct Request {
    unit: String,
    since: u64,
    reason: String,
}

/// The order the leader grants in: oldest request first, the leader last
/// (its restart costs an election), then by unit name.
fn grant_order(mut pending: Vec<Request>, leader: &str) -> Vec<Request> {
    pending.sort_by(|a, b| {
        (a.unit == leader, a.since, &a.unit).cmp(&(b.unit == leader, b.since, &b.unit))
    });
    pending
}

/// Whether `voters` members (this one among them) keep quorum while this
/// one restarts, given how many of the others serve. A lone member has no
/// quorum to keep.
pub fn keeps_quorum_without_me(voters: usize, others_serving: usize) -> bool {
    voters <= 1 || others_serving > voters / 2
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Charm<'_> {
    fn own_bag(&self, peer_id: &str) -> Result<BTreeMap<String, String>> {
        self.tools
            .relation_get(peer_id, &self.ctx.unit_name, false)
            .context("cannot read this unit's peer data")
    }

    /// Every peer unit's request (the others' committed bags, and this
    /// unit's state as given).
    fn requests(&self, peer_id: &str, mine: Option<Request>) -> Result<Vec<Request>> {
        let mut out: Vec<Request> = mine.into_iter().collect();
        for peer in self.peer_bags(peer_id)? {
            let (unit, bag) = peer?;
            if bag.get(LOCK_KEY).map(String::as_str) == Some(ACQUIRE) {
                let since = bag.get(SINCE_KEY).and_then(|s| s.parse().ok()).unwrap_or(0);
                let reason = bag.get(REASON_KEY).cloned().unwrap_or_default();
                out.push(Request {
                    unit,
                    since,
                    reason,
                });
            }
        }
        Ok(out)
    }

    /// The unit that holds the lock, from the application bag.
    fn lock_holder(&self, peer_id: &str) -> Result<Option<String>> {
        Ok(self
            .peer_app_data(peer_id)?
            .get(LOCK_KEY)
            .filter(|h| !h.is_empty())
            .cloned())
    }

    /// On the leader: clears a released or departed holder's grant and
    /// grants the lock to the next unit that asked. `mine` is this unit's
    /// own request, `(since, reason)` (its bag's writes in this hook are
    /// not committed yet). While an upgrade is paused
    /// (`pause-after-unit-upgrade`), no upgrade restart is granted unless
    /// `resuming`. Returns the holder afterwards.
    pub(crate) fn process_restart_locks(
        &self,
        peer_id: &str,
        mine: Option<(u64, String)>,
        resuming: bool,
    ) -> Result<Option<String>> {
        let me = self.ctx.unit_name.clone();
        let requests = self.requests(
            peer_id,
            mine.map(|(since, reason)| Request {
                unit: me.clone(),
                since,
                reason,
            }),
        )?;
        let app = self.peer_app_data(peer_id)?;
        let holder = app.get(LOCK_KEY).filter(|h| !h.is_empty()).cloned();
        let mut paused = !resuming
            && app
                .get(super::upgrade::PAUSED_KEY)
                .is_some_and(|p| !p.is_empty());
        if let Some(h) = &holder {
            // Still at work: it has asked and not released.
            if requests.iter().any(|r| &r.unit == h) {
                return Ok(holder);
            }
            tracing::info!("{h} released the rolling-restart lock");
            if !paused && self.maybe_pause_after(peer_id, h, &app)? {
                paused = true;
            }
        }
        let next = grant_order(requests, &me)
            .into_iter()
            .find(|r| !(paused && r.reason.starts_with(super::upgrade::UPGRADE_REASON)));
        let value = next.as_ref().map(|r| r.unit.clone()).unwrap_or_default();
        if holder.as_deref().unwrap_or("") != value {
            let mut data = BTreeMap::new();
            data.insert(LOCK_KEY.to_string(), value.clone());
            self.tools
                .relation_set(peer_id, true, &data)
                .context("cannot write the rolling-restart lock")?;
            if !value.is_empty() {
                tracing::info!("granted the rolling-restart lock to {value}");
            }
        }
        Ok(next.map(|r| r.unit))
    }

    /// Called when this unit runs etcd with a config (or binaries, or
    /// certificates) it must restart to apply. Asks for the lock, and once
    /// granted checks that the cluster can spare this member.
    pub(crate) fn restart_gate(
        &self,
        running_url: &str,
        tls: &ClientTls,
        reason: &str,
    ) -> Result<Gate> {
        let Some(peer_id) = self.peer_relation()? else {
            return Ok(Gate::Go);
        };
        let bag = self.own_bag(&peer_id)?;
        let since = match (
            bag.get(LOCK_KEY).map(String::as_str),
            bag.get(SINCE_KEY).and_then(|s| s.parse::<u64>().ok()),
        ) {
            (Some(ACQUIRE), Some(since)) => since,
            _ => {
                let since = unix_now();
                let mut ask = BTreeMap::new();
                ask.insert(LOCK_KEY.to_string(), ACQUIRE.to_string());
                ask.insert(SINCE_KEY.to_string(), since.to_string());
                ask.insert(REASON_KEY.to_string(), reason.to_string());
                // A past upgrade's mark goes with the new request.
                ask.insert(super::upgrade::UPGRADED_TO_KEY.to_string(), String::new());
                self.publish_unit(&peer_id, ask)?;
                tracing::info!("asked for the rolling-restart lock to restart etcd ({reason})");
                since
            }
        };
        let leader = self.tools.is_leader().context("cannot ask is-leader")?;
        let holder = if leader {
            self.process_restart_locks(&peer_id, Some((since, reason.to_string())), false)?
        } else {
            self.lock_holder(&peer_id)?
        };
        let me = &self.ctx.unit_name;
        if holder.as_deref() != Some(me.as_str()) {
            if reason.starts_with(super::upgrade::UPGRADE_REASON) {
                if let Some(after) = self
                    .peer_app_data(&peer_id)?
                    .get(super::upgrade::PAUSED_KEY)
                    .filter(|p| !p.is_empty())
                {
                    return Ok(Gate::Wait(Status::waiting(format!(
                        "The upgrade is paused after {after} (pause-after-unit-upgrade); \
                         check it, then resume with: juju run {}/leader resume-upgrade",
                        self.ctx.app_name
                    ))));
                }
            }
            let others = self.requests(&peer_id, None)?;
            let ahead = others
                .iter()
                .filter(|r| (r.since, &r.unit) < (since, me))
                .filter(|r| Some(&r.unit) != holder.as_ref())
                .count()
                + usize::from(holder.is_some());
            return Ok(Gate::Wait(Status::waiting(format!(
                "Waiting for the rolling-restart lock ({ahead} ahead) to restart etcd ({reason})"
            ))));
        }
        self.spare_check(running_url, tls, reason)
    }

    /// Holding the lock: may this member go down now? Every other voting
    /// member must serve, and the rest must keep quorum.
    fn spare_check(&self, running_url: &str, tls: &ClientTls, reason: &str) -> Result<Gate> {
        let mut client = match EtcdClient::connect(running_url, tls, Duration::from_secs(5))
            .and_then(|mut c| c.status().map(|s| (c, s)))
        {
            Ok(c) => c,
            // This member does not answer: restarting it costs nothing
            // that is not already lost.
            Err(e) => {
                tracing::warn!("restarting etcd, which does not answer: {e}");
                return Ok(Gate::Go);
            }
        };
        let (ref mut c, status) = client;
        if status.is_learner {
            return Ok(Gate::Go);
        }
        let members = match c.members() {
            Ok(m) => m,
            Err(e) => {
                return Ok(Gate::Wait(Status::waiting(format!(
                    "Holding the rolling-restart lock; waiting for etcd to list its members before restarting ({reason}): {e}"
                ))))
            }
        };
        let voters: Vec<_> = members.iter().filter(|m| !m.is_learner).collect();
        let mut down = Vec::new();
        let mut serving = 0usize;
        for m in voters.iter().filter(|m| m.id != status.member_id) {
            let ok = m.client_urls.iter().any(|url| {
                EtcdClient::connect(url, tls, Duration::from_secs(2))
                    .and_then(|mut c| c.serving())
                    .is_ok()
            });
            if ok {
                serving += 1;
            } else {
                down.push(if m.name.is_empty() {
                    format!("{:x}", m.id)
                } else {
                    m.name.clone()
                });
            }
        }
        if !down.is_empty() {
            return Ok(Gate::Wait(Status::waiting(format!(
                "Holding the rolling-restart lock; waiting for {} to be healthy before restarting etcd ({reason})",
                down.join(", ")
            ))));
        }
        if voters.len() == 2 && serving == 1 {
            // Two members cannot keep quorum through any restart. Waiting
            // for a third would never apply the change, so the restart goes
            // on, one member at a time, with the other one serving: writes
            // pause until the member is back.
            tracing::warn!(
                "restarting etcd ({reason}) in a 2-member cluster: the cluster loses quorum until this member is back \
                 (a few seconds); run 3 units (juju add-unit {}) to keep quorum through restarts",
                self.ctx.app_name
            );
        } else if !keeps_quorum_without_me(voters.len(), serving) {
            return Ok(Gate::Wait(Status::blocked(format!(
                "Restarting etcd ({reason}) would cost quorum: {serving} of the other {} voting members serve; \
                 bring them back first",
                voters.len() - 1
            ))));
        }
        Ok(Gate::Go)
    }

    /// After this unit's restart: waits until its member serves and has
    /// caught up with the etcd leader, then releases the lock (the leader
    /// hands it on). An error keeps the lock held, so nobody else restarts
    /// while this member is behind.
    pub(crate) fn restart_finished(&self, url: &str, tls: &ClientTls) -> Result<()> {
        let status = wait_serving(url, tls, SERVE_TIMEOUT)
            .with_context(|| format!("etcd did not serve again at {url} after its restart"))?;
        if !status.is_learner {
            self.wait_caught_up(url, tls)?;
        }
        self.release_restart_lock()
    }

    /// Waits until this member's raft index is within [`CAUGHT_UP_LAG`] of
    /// the etcd leader's.
    fn wait_caught_up(&self, url: &str, tls: &ClientTls) -> Result<()> {
        let deadline = Instant::now() + CATCH_UP_TIMEOUT;
        loop {
            let probe = || -> Result<Option<(u64, u64)>> {
                let mut c = EtcdClient::connect(url, tls, Duration::from_secs(3))?;
                let mine = c.status()?;
                if mine.leader == 0 {
                    return Ok(None);
                }
                if mine.leader == mine.member_id {
                    return Ok(Some((mine.raft_index, mine.raft_index)));
                }
                let members = c.members()?;
                let Some(leader) = members.iter().find(|m| m.id == mine.leader) else {
                    return Ok(None);
                };
                for lurl in &leader.client_urls {
                    if let Ok(s) = EtcdClient::connect(lurl, tls, Duration::from_secs(3))
                        .and_then(|mut l| l.status())
                    {
                        // Read ours again: the leader's index was read later.
                        let again = c.status()?;
                        return Ok(Some((again.raft_index, s.raft_index)));
                    }
                }
                Ok(None)
            };
            let last = match probe() {
                Ok(Some((mine, leader))) if mine + CAUGHT_UP_LAG >= leader => {
                    tracing::info!(
                        "this member has caught up (raft index {mine}, the leader's {leader})"
                    );
                    return Ok(());
                }
                Ok(Some((mine, leader))) => format!("raft index {mine}, leader's {leader}"),
                Ok(None) => "no etcd leader yet".to_string(),
                Err(e) => format!("{e:#}"),
            };
            if Instant::now() >= deadline {
                anyhow::bail!(
                    "this member did not catch up with the etcd leader within {} s ({last}); \
                     it keeps the rolling-restart lock until it does",
                    CATCH_UP_TIMEOUT.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// This unit no longer needs the lock (it restarted, or no longer needs
    /// to): says so in its bag; the leader hands the lock on.
    pub(crate) fn release_restart_lock(&self) -> Result<()> {
        let Some(peer_id) = self.peer_relation()? else {
            return Ok(());
        };
        let bag = self.own_bag(&peer_id)?;
        if bag.get(LOCK_KEY).map(String::as_str) != Some(ACQUIRE) {
            return Ok(());
        }
        let mut rel = BTreeMap::new();
        rel.insert(LOCK_KEY.to_string(), RELEASE.to_string());
        rel.insert(SINCE_KEY.to_string(), String::new());
        rel.insert(REASON_KEY.to_string(), String::new());
        self.publish_unit(&peer_id, rel)?;
        tracing::info!("released the rolling-restart lock");
        if self.tools.is_leader().context("cannot ask is-leader")? {
            self.process_restart_locks(&peer_id, None, false)?;
        }
        Ok(())
    }

    /// When this unit runs what it should (no restart pending) but its bag
    /// still asks for the lock: if it holds the lock (a restart whose
    /// catch-up did not finish in its hook), it finishes the wait and
    /// releases; otherwise it withdraws the request.
    pub(crate) fn settle_restart_lock(&self, url: &str, tls: &ClientTls) -> Result<()> {
        let Some(peer_id) = self.peer_relation()? else {
            return Ok(());
        };
        let bag = self.own_bag(&peer_id)?;
        if bag.get(LOCK_KEY).map(String::as_str) != Some(ACQUIRE) {
            return Ok(());
        }
        if self.lock_holder(&peer_id)?.as_deref() == Some(self.ctx.unit_name.as_str()) {
            self.restart_finished(url, tls)
        } else {
            self.release_restart_lock()
        }
    }

    /// On the leader, in every reconcile: hands the lock on. `None` when
    /// this unit asks for nothing itself (its own request goes through
    /// [`Self::restart_gate`]).
    pub(crate) fn tend_restart_locks(&self, peer_id: &str) -> Result<()> {
        let bag = self.own_bag(peer_id)?;
        let mine = (bag.get(LOCK_KEY).map(String::as_str) == Some(ACQUIRE)).then(|| {
            (
                bag.get(SINCE_KEY).and_then(|s| s.parse().ok()).unwrap_or(0),
                bag.get(REASON_KEY).cloned().unwrap_or_default(),
            )
        });
        self.process_restart_locks(peer_id, mine, false).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorum_arithmetic() {
        assert!(keeps_quorum_without_me(1, 0));
        assert!(!keeps_quorum_without_me(2, 1));
        assert!(keeps_quorum_without_me(3, 2));
        assert!(!keeps_quorum_without_me(3, 1));
        assert!(keeps_quorum_without_me(5, 4));
        assert!(keeps_quorum_without_me(5, 3));
        assert!(!keeps_quorum_without_me(5, 2));
    }

    #[test]
    fn oldest_first_and_the_leader_last() {
        let r = |u: &str, s| Request {
            unit: u.into(),
            since: s,
            reason: String::new(),
        };
        let order: Vec<String> = grant_order(
            vec![
                r("etcd/0", 1),
                r("etcd/2", 5),
                r("etcd/1", 5),
                r("etcd/3", 2),
            ],
            "etcd/0",
        )
        .into_iter()
        .map(|r| r.unit)
        .collect();
        assert_eq!(order, ["etcd/3", "etcd/1", "etcd/2", "etcd/0"]);
    }
}
