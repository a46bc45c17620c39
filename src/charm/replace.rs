//! The `replace-member` action: a unit whose member is broken (its data
//! corrupt or lost, or it cannot rejoin) gets a fresh member that copies
//! every key from the healthy ones, as kube-aws' `etcdadm replace` does.
//!
//! Through a healthy voting member: this unit's etcd is stopped, its member
//! removed, its data directory moved aside, a new member added as a learner
//! under the same name and peer URL, etcd started with
//! `initial-cluster-state: existing`, and the learner promoted once it has
//! caught up. The old data is deleted only once the new member serves and
//! has caught up. It refuses, changing nothing, when the removal would cost
//! quorum, when there is no healthy member to copy from, or when this
//! member is healthy (unless `force=true`).
//!
//! [`Charm::replace_member`] is also what the leader's automatic repair
//! runs (see `repair.rs`), from a healthy member, for another unit.

use std::fs;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};

use super::lock::OpLock;
use super::snapshot::{now_unix, param_bool};
use super::state::Bootstrap;
use super::Charm;
use crate::etcd::paths::DATA_DIR;
use crate::etcd::{ClientTls, ClusterState, EtcdClient, Member};

/// How long a new learner may take to catch up and be promoted.
const PROMOTE_TIMEOUT: Duration = Duration::from_secs(180);

/// What the quorum check found, for the refusal's words.
pub(crate) struct QuorumView {
    pub voters: usize,
    pub serving: Vec<String>,
    pub down: Vec<String>,
}

impl QuorumView {
    /// Whether the voters that serve, `me` not among them, can commit a
    /// membership change with `me` gone: more than half of the current
    /// voters must serve.
    pub fn can_lose(&self) -> bool {
        self.serving.len() * 2 > self.voters
    }
}

/// A member's name, or its hex id before it has one.
pub(crate) fn label(m: &Member) -> String {
    if m.name.is_empty() {
        format!("{:x}", m.id)
    } else {
        m.name.clone()
    }
}

/// Which voting members other than `skip` serve (a linearizable read).
pub(crate) fn quorum_view(members: &[Member], skip: Option<u64>, tls: &ClientTls) -> QuorumView {
    let mut view = QuorumView {
        voters: members.iter().filter(|m| !m.is_learner).count(),
        serving: vec![],
        down: vec![],
    };
    for m in members
        .iter()
        .filter(|m| !m.is_learner && Some(m.id) != skip)
    {
        let ok = m.client_urls.iter().any(|url| {
            EtcdClient::connect(url, tls, Duration::from_secs(2))
                .and_then(|mut c| c.serving())
                .is_ok()
        });
        if ok {
            view.serving.push(label(m));
        } else {
            view.down.push(label(m));
        }
    }
    view
}

impl Charm<'_> {
    fn progress(&self, msg: &str) {
        tracing::info!("{msg}");
        if matches!(self.ctx.dispatch, crate::juju::Dispatch::Action { .. }) {
            let _ = self.tools.action_log(msg);
        }
    }

    /// A client to a voting member of another unit: one that serves if
    /// any does, else one that at least answers (so the quorum check can
    /// say what is down).
    fn healthy_peer(&self, peer_id: &str, tls: &ClientTls) -> Result<Option<EtcdClient>> {
        let mut answering = None;
        for peer in self.peer_bags(peer_id)? {
            let (_, bag) = peer?;
            let Some(url) = bag.get("client-url") else {
                continue;
            };
            let Ok(mut c) = EtcdClient::connect(url, tls, Duration::from_secs(3)) else {
                continue;
            };
            match c.status() {
                Ok(s) if !s.is_learner => {
                    if c.serving().is_ok() {
                        return Ok(Some(c));
                    }
                    answering.get_or_insert(c);
                }
                _ => {}
            }
        }
        Ok(answering)
    }

    /// The `replace-member` action, on the unit whose member is broken.
    pub(crate) fn replace_member_action(&self) -> Result<()> {
        let params = self
            .tools
            .action_get()
            .context("cannot read the action's parameters")?;
        let force = param_bool(&params, "force", false)?;
        let _lock = OpLock::try_acquire(&self.root, "the replace-member action")?;
        self.recover_interrupted()?;
        let results = self.replace_own_member(force)?;
        self.set_results(results)
    }

    /// Replaces this unit's member (see the module doc). Returns the
    /// action's results.
    pub(crate) fn replace_own_member(&self, force: bool) -> Result<Vec<(&'static str, String)>> {
        let mut state = self.load_state()?;
        let Some(applied) = state.applied.clone() else {
            bail!(
                "etcd has never run on {}; there is no member to replace. Nothing was changed.",
                self.ctx.unit_name
            );
        };
        let Some(peer_id) = self.peer_relation()? else {
            bail!("the peer relation does not exist yet; wait for the unit to join. Nothing was changed.");
        };
        let tls = self.client_tls()?;
        let me = self.ctx.member_name();
        let mut peer = self.healthy_peer(&peer_id, &tls)?.ok_or_else(|| {
            anyhow!(
                "no other unit's etcd serves, so there is no healthy member to copy the data from. \
                 Nothing was changed. If a majority of members is gone for good, run recover-quorum on a surviving unit"
            )
        })?;
        let members = peer.members().context("cannot list etcd's members")?;
        let mine = members
            .iter()
            .find(|m| m.name == me || m.peer_urls.contains(&applied.peer_url))
            .cloned();

        // Is this member healthy? It serves, raises no CORRUPT alarm, and
        // etcd lists it.
        if let Some(m) = &mine {
            let own = EtcdClient::connect(&applied.client_url, &tls, Duration::from_secs(3))
                .and_then(|mut c| c.serving());
            let corrupt = peer
                .alarms()
                .map(|a| a.iter().any(|a| a.member_id == m.id && a.kind == "CORRUPT"))
                .unwrap_or(false);
            if let (Ok(st), false) = (&own, corrupt) {
                if !force {
                    bail!(
                        "member {me} is healthy (it serves at revision {}, raft index {}), so replacing it would only \
                         cost a full resync. Nothing was changed. If its data is wrong nonetheless, run again with force=true",
                        st.revision,
                        st.raft_index
                    );
                }
                self.progress(&format!(
                    "member {me} is healthy; replacing it anyway (force=true)"
                ));
            }
            // The others must commit the removal, and keep quorum after it.
            let view = quorum_view(&members, Some(m.id), &tls);
            let costs_quorum = if m.is_learner {
                view.serving.len() * 2 <= view.voters
            } else {
                !view.can_lose()
            };
            if costs_quorum {
                bail!(
                    "removing {me} would cost quorum: {} of the {} voting members serve without it ({}){}. \
                     Nothing was changed. Bring the other members back first, or run recover-quorum if a majority is gone for good",
                    view.serving.len(),
                    view.voters,
                    view.serving.join(", "),
                    if view.down.is_empty() {
                        String::new()
                    } else {
                        format!("; down: {}", view.down.join(", "))
                    }
                );
            }
        }

        // From here on things change.
        let cluster_id = peer
            .status()
            .context("cannot read etcd's status")?
            .cluster_id;
        self.progress(&format!("Stopping etcd on {}", self.ctx.unit_name));
        self.service.stop().context("systemctl stop etcd failed")?;
        if let Some(m) = &mine {
            self.progress(&format!(
                "Removing member {} ({:x}) from the cluster",
                label(m),
                m.id
            ));
            super::cluster::retry_unhealthy(|| peer.member_remove(m.id))
                .with_context(|| format!("etcd refused to remove member {}", label(m)))?;
        }
        let data = self.root.at(DATA_DIR);
        let aside = data.with_file_name(format!("data.replaced-{}", now_unix()));
        if data.exists() {
            fs::rename(&data, &aside).with_context(|| {
                format!(
                    "cannot move {} aside to {}",
                    data.display(),
                    aside.display()
                )
            })?;
            self.progress(&format!(
                "Moved the old data aside to {} (deleted once the new member is healthy)",
                aside.display()
            ));
        }
        self.progress(&format!(
            "Adding {me} back as a learner at {}",
            applied.peer_url
        ));
        let new_id = super::cluster::retry_unhealthy(|| {
            peer.member_add(vec![applied.peer_url.clone()], true)
        })
        .context("etcd refused to add the new member")?;
        let members = peer.members().context("cannot list etcd's members")?;
        let initial: Vec<String> = members
            .iter()
            .filter_map(|m| {
                let url = m.peer_urls.first()?;
                let name = if m.id == new_id {
                    me.clone()
                } else {
                    m.name.clone()
                };
                (!name.is_empty()).then(|| format!("{name}={url}"))
            })
            .collect();
        state.bootstrap = Some(Bootstrap {
            initial_cluster: initial.join(","),
            cluster_state: ClusterState::Existing,
        });
        self.save_state(&state)?;
        self.progress(
            "Starting etcd on an empty data directory; it copies the data from the leader",
        );
        self.reconcile(&mut state)?;

        // Promote once it has caught up (etcd refuses until then).
        let deadline = Instant::now() + PROMOTE_TIMEOUT;
        loop {
            match peer.member_promote(new_id) {
                Ok(()) => break,
                Err(e) => {
                    let voting = peer
                        .members()
                        .map(|ms| ms.iter().any(|m| m.id == new_id && !m.is_learner))
                        .unwrap_or(false);
                    if voting {
                        break;
                    }
                    if Instant::now() >= deadline {
                        bail!(
                            "the new member {me} ({new_id:x}) did not catch up within {} s: {e}. \
                             Its old data is kept in {}; see the etcd log, then run replace-member again",
                            PROMOTE_TIMEOUT.as_secs(),
                            aside.display()
                        );
                    }
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        }
        self.progress(&format!("Promoted {me} to a voting member"));
        let mut own = EtcdClient::connect(&applied.client_url, &tls, Duration::from_secs(5))
            .context("cannot reach the new member")?;
        let wait = Instant::now() + Duration::from_secs(60);
        let status = loop {
            match own.serving() {
                Ok(s) => break s,
                Err(e) if Instant::now() >= wait => {
                    return Err(anyhow!(e).context(format!(
                        "the new member does not serve; its old data is kept in {}",
                        aside.display()
                    )))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(500)),
            }
        };
        if status.cluster_id != cluster_id {
            bail!(
                "the new member joined cluster {:x}, not {cluster_id:x}; its old data is kept in {}",
                status.cluster_id,
                aside.display()
            );
        }
        let keys = own
            .key_count(0)
            .context("cannot count the new member's keys")?;
        let members = peer.members().context("cannot list etcd's members")?;
        let mut removed_aside = String::from("none");
        if aside.exists() {
            fs::remove_dir_all(&aside)
                .with_context(|| format!("cannot delete the old data in {}", aside.display()))?;
            removed_aside = aside.display().to_string();
        }
        // The status, the leader's published membership and voters follow
        // on the next hooks; refresh this unit's own now.
        if let Err(e) = self.reconcile(&mut state) {
            tracing::warn!("{e:#}");
        }
        self.progress(&format!(
            "Replaced {me}: new member {new_id:x} holds {keys} keys at revision {}",
            status.revision
        ));
        let mut r = vec![
            ("replace.member", me.clone()),
            ("replace.new-member-id", format!("{new_id:x}")),
            ("replace.members", members.len().to_string()),
            ("replace.keys", keys.to_string()),
            ("replace.revision", status.revision.to_string()),
            ("replace.cluster-id", format!("{cluster_id:x}")),
            ("replace.old-data-deleted", removed_aside),
            ("replace.forced", force.to_string()),
        ];
        if let Some(m) = &mine {
            r.push(("replace.old-member-id", format!("{:x}", m.id)));
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorum_for_a_membership_change() {
        let v = |voters, serving: usize| QuorumView {
            voters,
            serving: (0..serving).map(|i| i.to_string()).collect(),
            down: vec![],
        };
        assert!(v(3, 2).can_lose());
        assert!(!v(3, 1).can_lose());
        assert!(!v(2, 1).can_lose());
        assert!(v(5, 3).can_lose());
        assert!(!v(5, 2).can_lose());
        assert!(!v(1, 0).can_lose());
    }
}
