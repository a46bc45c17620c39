//! Clustering over the peer relation `cluster`.
//!
//! - Every unit publishes in its own bag where it can be reached:
//!   `member-name`, `peer-url`, `client-url`, and `member-id` once it runs.
//! - The leader bootstraps the cluster. It registers one new unit at a time
//!   with `member add` as a learner (only while every registered member has
//!   started and votes), then publishes the membership as `initial-cluster`
//!   (`name=peerURL,…`) in the peer application data. A learner costs no
//!   quorum; the leader promotes it once it has started and caught up, and
//!   publishes the voting members as `voters`.
//! - A unit that has no data starts only once it finds itself in
//!   `initial-cluster`, with `initial-cluster-state: existing`.
//! - A departing unit is removed from the membership before its etcd stops:
//!   by the leader when it sees the unit depart, and by the unit itself in
//!   its own departure hooks (whichever comes first; etcd refuses a removal
//!   that would cost quorum).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use super::Charm;
use crate::etcd::{ClientError, EtcdClient, Member};
use crate::juju::Status;

/// The peer relation's endpoint name.
pub const PEER: &str = "cluster";
/// Peer application-data key: the registered membership.
pub const INITIAL_CLUSTER_KEY: &str = "initial-cluster";
/// Peer application-data key: the voting members' names.
pub const VOTERS_KEY: &str = "voters";

/// How long a membership change is retried while etcd calls it unhealthy.
const RECONFIG_RETRY_FOR: Duration = Duration::from_secs(20);

/// `etcd/1` → `etcd-1`, the member name of a unit.
pub fn member_name_of(unit: &str) -> String {
    unit.replace('/', "-")
}

/// `a=u1,b=u2` → [(a, u1), (b, u2)]
pub fn parse_initial_cluster(s: &str) -> Vec<(String, String)> {
    s.split(',')
        .filter_map(|e| e.split_once('='))
        .map(|(n, u)| (n.trim().to_string(), u.trim().to_string()))
        .filter(|(n, u)| !n.is_empty() && !u.is_empty())
        .collect()
}

/// Runs a membership change, retrying while etcd calls the cluster
/// unhealthy: it refuses changes until every member has been connected for
/// a few seconds, which is the case right after the previous change.
pub(crate) fn retry_unhealthy<T>(
    mut f: impl FnMut() -> Result<T, ClientError>,
) -> Result<T, ClientError> {
    let deadline = Instant::now() + RECONFIG_RETRY_FOR;
    loop {
        match f() {
            Err(e) if Instant::now() < deadline && e.to_string().contains("unhealthy cluster") => {
                std::thread::sleep(Duration::from_millis(500));
            }
            other => return other,
        }
    }
}

impl Charm<'_> {
    /// The peer relation's id, once Juju has created it.
    pub fn peer_relation(&self) -> Result<Option<String>> {
        Ok(self
            .tools
            .relation_ids(PEER)
            .context("cannot list the peer relation")?
            .into_iter()
            .next())
    }

    /// The peer relation's application data.
    pub(crate) fn peer_app_data(&self, peer_id: &str) -> Result<BTreeMap<String, String>> {
        self.tools
            .relation_get(peer_id, &self.ctx.app_name, true)
            .context("cannot read the peer relation's application data")
    }

    /// `unit`'s bag in the peer relation.
    pub(crate) fn peer_bag(&self, peer_id: &str, unit: &str) -> Result<BTreeMap<String, String>> {
        self.tools
            .relation_get(peer_id, unit, false)
            .with_context(|| format!("cannot read {unit}'s peer data"))
    }

    /// The other units in the peer relation, each with its bag. A bag is
    /// read when the iteration reaches it, so a caller that stops early
    /// reads no more.
    pub(crate) fn peer_bags<'a>(
        &'a self,
        peer_id: &'a str,
    ) -> Result<impl Iterator<Item = Result<(String, BTreeMap<String, String>)>> + 'a> {
        let units = self
            .tools
            .relation_list(peer_id)
            .context("cannot list the peer units")?;
        Ok(units.into_iter().map(move |unit| {
            let bag = self.peer_bag(peer_id, &unit)?;
            Ok((unit, bag))
        }))
    }

    /// Writes this unit's own bag (only what changed reaches the peers).
    pub(crate) fn publish_unit(&self, peer_id: &str, data: BTreeMap<String, String>) -> Result<()> {
        let mine = self
            .tools
            .relation_get(peer_id, &self.ctx.unit_name, false)
            .context("cannot read this unit's peer data")?;
        if data.iter().all(|(k, v)| mine.get(k) == Some(v)) {
            return Ok(());
        }
        self.tools
            .relation_set(peer_id, false, &data)
            .context("cannot publish this unit's address in the peer relation")
    }

    /// On the leader with a running etcd: registers the next unit that
    /// published a peer URL and is not a member yet, and publishes the
    /// membership. Returns the members as etcd lists them afterwards.
    /// A client to another unit's member that votes, found through the
    /// peers' published client URLs; `None` when none answers.
    pub(crate) fn connect_to_a_voter(&self, peer_id: &str) -> Result<Option<EtcdClient>> {
        let tls = self.client_tls()?;
        let units = self
            .tools
            .relation_list(peer_id)
            .with_context(|| format!("cannot list the units of {peer_id}"))?;
        for unit in units {
            let bag = self.peer_bag(peer_id, &unit)?;
            let Some(url) = bag.get("client-url") else {
                continue;
            };
            match EtcdClient::connect(url, &tls, std::time::Duration::from_secs(3))
                .and_then(|mut c| c.status().map(|s| (c, s)))
            {
                Ok((c, s)) if !s.is_learner => return Ok(Some(c)),
                Ok(_) => {}
                Err(e) => tracing::warn!("cannot reach {unit}'s etcd at {url}: {e}"),
            }
        }
        Ok(None)
    }

    pub(crate) fn register_peers(
        &self,
        peer_id: &str,
        client: &mut EtcdClient,
    ) -> Result<Vec<Member>> {
        let mut members = client.members().context("cannot list etcd's members")?;
        let bags = self
            .peer_bags(peer_id)?
            .collect::<Result<BTreeMap<_, _>>>()?;
        // A started member whose unit is neither this one nor a peer has
        // departed without taking itself out: take it out now.
        let me = self.ctx.member_name();
        // Only when it does not answer either: a unit this leader has not
        // seen join yet may already be a member that the previous leader
        // registered.
        let tls = self.client_tls()?;
        let gone: Vec<String> = members
            .iter()
            .filter(|m| !m.name.is_empty() && m.name != me)
            .filter(|m| !bags.keys().any(|u| member_name_of(u) == m.name))
            .filter(|m| {
                !m.client_urls.iter().any(|url| {
                    EtcdClient::connect(url, &tls, Duration::from_secs(2))
                        .and_then(|mut c| c.status())
                        .is_ok()
                })
            })
            .map(|m| m.name.clone())
            .collect();
        for name in &gone {
            if let Err(e) = self.remove_member(client, name) {
                tracing::warn!("cannot remove departed member {name} yet: {e:#}");
            }
        }
        // Likewise a registered member that never started (it has no name
        // yet) whose peer URL no peer unit publishes any more.
        let never_started: Vec<(u64, String)> = members
            .iter()
            .filter(|m| m.name.is_empty())
            .filter(|m| {
                !m.peer_urls.iter().any(|p| {
                    bags.values()
                        .any(|b| b.get("peer-url").is_some_and(|u| u == p))
                })
            })
            .map(|m| (m.id, m.peer_urls.join(",")))
            .collect();
        for (id, urls) in &never_started {
            match retry_unhealthy(|| client.member_remove(*id)) {
                Ok(()) => {
                    tracing::info!("removed the unstarted member at {urls}: its unit is gone")
                }
                Err(e) => tracing::warn!("cannot remove the unstarted member at {urls} yet: {e}"),
            }
        }
        if !gone.is_empty() || !never_started.is_empty() {
            members = client.members().context("cannot list etcd's members")?;
        }
        // A learner that has started is promoted once it has caught up.
        let learners: Vec<(u64, String)> = members
            .iter()
            .filter(|m| m.is_learner && !m.name.is_empty())
            .map(|m| (m.id, m.name.clone()))
            .collect();
        for (id, name) in &learners {
            match retry_unhealthy(|| client.member_promote(*id)) {
                Ok(()) => tracing::info!("promoted {name} to a voting member"),
                Err(e) => tracing::warn!("cannot promote {name} yet: {e}"),
            }
        }
        if !learners.is_empty() {
            members = client.members().context("cannot list etcd's members")?;
        }
        // One new member at a time, and only while every member votes: a
        // new unit joins as a learner, so it costs no quorum until it has
        // started and caught up.
        let settled = members.iter().all(|m| !m.name.is_empty() && !m.is_learner);
        if settled {
            // A unit is new when neither its peer URL nor its member name
            // is known (a member moving its peer URL keeps its name).
            let next = bags.iter().find_map(|(unit, bag)| {
                let url = bag.get("peer-url")?;
                let name = member_name_of(unit);
                let known = members
                    .iter()
                    .any(|m| m.name == name || m.peer_urls.iter().any(|p| p == url));
                (!known).then(|| (unit.clone(), url.clone()))
            });
            if let Some((unit, url)) = next {
                match retry_unhealthy(|| client.member_add(vec![url.clone()], true)) {
                    Ok(_) => {
                        tracing::info!("added {unit} to the etcd cluster at {url} as a learner");
                        members = client.members().context("cannot list etcd's members")?;
                    }
                    // Not fatal: a later hook (update-status at the latest)
                    // tries again.
                    Err(e) => {
                        tracing::warn!("cannot add {unit} ({url}) to the etcd cluster yet: {e}")
                    }
                }
            }
        }
        // Members that have not started have no name yet: name them from
        // the bag of the unit with that peer URL.
        let entries: Vec<String> = members
            .iter()
            .filter_map(|m| {
                let url = m.peer_urls.first()?;
                let name = if m.name.is_empty() {
                    bags.values()
                        .find(|b| b.get("peer-url") == Some(url))
                        .and_then(|b| b.get("member-name").cloned())?
                } else {
                    m.name.clone()
                };
                Some(format!("{name}={url}"))
            })
            .collect();
        let initial = entries.join(",");
        // The voting members: a change tells a promoted learner's unit
        // (through relation-changed) that it now votes.
        let mut voters: Vec<&str> = members
            .iter()
            .filter(|m| !m.is_learner && !m.name.is_empty())
            .map(|m| m.name.as_str())
            .collect();
        voters.sort_unstable();
        let voters = voters.join(",");
        let app = self.peer_app_data(peer_id)?;
        let mut data = BTreeMap::new();
        if app.get(INITIAL_CLUSTER_KEY) != Some(&initial) {
            data.insert(INITIAL_CLUSTER_KEY.to_string(), initial);
        }
        if app.get(VOTERS_KEY) != Some(&voters) {
            data.insert(VOTERS_KEY.to_string(), voters);
        }
        if !data.is_empty() {
            self.tools
                .relation_set(peer_id, true, &data)
                .context("cannot publish the cluster membership")?;
        }
        Ok(members)
    }

    /// Removes the member named `name`, unless it is the last one. A member
    /// already gone is not an error.
    pub(crate) fn remove_member(&self, client: &mut EtcdClient, name: &str) -> Result<bool> {
        let members = client.members().context("cannot list etcd's members")?;
        let Some(m) = members.iter().find(|m| m.name == name) else {
            return Ok(false);
        };
        if members.len() < 2 {
            return Ok(false);
        }
        retry_unhealthy(|| client.member_remove(m.id))
            .with_context(|| format!("etcd refused to remove member {name}"))?;
        tracing::info!("removed member {name} from the etcd cluster");
        Ok(true)
    }

    /// This unit is leaving: it takes itself out of the membership, then
    /// stops etcd for good. Safe to repeat.
    pub(crate) fn leave(&self) -> Result<()> {
        let mut state = self.load_state()?;
        if state.left {
            return Ok(());
        }
        if let Some(applied) = &state.applied {
            let name = self.ctx.member_name();
            let result = self.client_tls().and_then(|tls| {
                let mut c = EtcdClient::connect(&applied.client_url, &tls, Duration::from_secs(3))
                    .context("cannot reach this unit's etcd")?;
                self.remove_member(&mut c, &name)
            });
            if let Err(e) = result {
                tracing::warn!("leaving without removing {name} from the cluster: {e:#}");
            }
        }
        if state.binaries.is_some() && self.root.at(crate::etcd::paths::UNIT_FILE).exists() {
            self.service.stop().context("systemctl stop etcd failed")?;
        }
        state.left = true;
        state.started = false;
        self.save_state(&state)?;
        self.tools
            .status_set(
                &Status::maintenance("Left the etcd cluster; this unit is being removed"),
                false,
            )
            .context("cannot set the unit's status")
    }

    /// The leader takes a departed unit out of the membership.
    pub(crate) fn forget_unit(&self, unit: &str) -> Result<()> {
        let state = self.load_state()?;
        let Some(applied) = &state.applied else {
            return Ok(());
        };
        let mut c = match self.client_tls().and_then(|tls| {
            EtcdClient::connect(&applied.client_url, &tls, Duration::from_secs(5))
                .context("cannot reach this unit's etcd")
        }) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("cannot remove {unit} from the cluster now: {e:#}");
                return Ok(());
            }
        };
        // Not fatal: the unit removes itself too, and the leader's next
        // reconcile removes any member whose unit has gone.
        if let Err(e) = self.remove_member(&mut c, &member_name_of(unit)) {
            tracing::warn!("cannot remove {unit} from the cluster now: {e:#}");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_cluster_round_trip() {
        assert_eq!(
            parse_initial_cluster("etcd-0=https://a:2380, etcd-1=https://b:2380,bad,=x"),
            vec![
                ("etcd-0".to_string(), "https://a:2380".to_string()),
                ("etcd-1".to_string(), "https://b:2380".to_string())
            ]
        );
        assert_eq!(member_name_of("etcd/12"), "etcd-12");
    }
}
