//! etcd's alarms: the `alarm-list` and `alarm-disarm` actions (the original
//! charm's names, which operators' runbooks call) and the `blocked` status
//! that names a raised alarm and the way out of it.
//!
//! etcd raises `NOSPACE` when its backend outgrows `quota-backend-bytes`
//! (writes are refused, reads still work) and `CORRUPT` when a member's
//! data no longer matches the others'. Neither goes away on its own, so
//! the status says what to run.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result};

use super::Charm;
use crate::etcd::client::Alarm;
use crate::etcd::{EtcdClient, Member};

/// The member's name for an alarm, or its hex id when etcd lists no name.
fn member_label(members: &[Member], id: u64) -> String {
    members
        .iter()
        .find(|m| m.id == id && !m.name.is_empty())
        .map(|m| m.name.clone())
        .unwrap_or_else(|| format!("{id:x}"))
}

/// `etcd-1` → `etcd/1`: the unit a member name stands for.
fn unit_of(app: &str, member: &str) -> String {
    member
        .strip_prefix(&format!("{app}-"))
        .map(|n| format!("{app}/{n}"))
        .unwrap_or_else(|| member.to_string())
}

/// The `blocked` message for raised alarms: what is wrong and the way out.
pub fn alarm_message(app: &str, alarms: &[Alarm], members: &[Member]) -> String {
    let mut parts = Vec::new();
    let nospace: Vec<String> = alarms
        .iter()
        .filter(|a| a.kind == "NOSPACE")
        .map(|a| member_label(members, a.member_id))
        .collect();
    if !nospace.is_empty() {
        parts.push(format!(
            "etcd raised NOSPACE ({}): the database is over quota-backend-bytes and writes are refused; \
             run `juju run {app}/leader compact`, then `juju run <unit> defrag` on each unit, \
             then `juju run {app}/leader alarm-disarm`; or raise the quota: juju config {app} quota-backend-bytes=<bytes>",
            nospace.join(", ")
        ));
    }
    let corrupt: Vec<String> = alarms
        .iter()
        .filter(|a| a.kind == "CORRUPT")
        .map(|a| member_label(members, a.member_id))
        .collect();
    if !corrupt.is_empty() {
        let units: Vec<String> = corrupt.iter().map(|m| unit_of(app, m)).collect();
        parts.push(format!(
            "etcd raised CORRUPT ({}): that member's data differs from the others'; \
             replace it from the healthy members: juju run {} replace-member force=true, \
             then juju run {app}/leader alarm-disarm",
            corrupt.join(", "),
            units.join(" / ")
        ));
    }
    let other: Vec<String> = alarms
        .iter()
        .filter(|a| a.kind != "NOSPACE" && a.kind != "CORRUPT")
        .map(|a| format!("{} on {}", a.kind, member_label(members, a.member_id)))
        .collect();
    if !other.is_empty() {
        parts.push(format!(
            "etcd raised alarms {}; see juju run {app}/leader alarm-list",
            other.join(", ")
        ));
    }
    parts.join("; ")
}

impl Charm<'_> {
    /// The configured `quota-backend-bytes`.
    pub(crate) fn quota_backend_bytes(&self) -> Result<u64> {
        let config = self
            .tools
            .config_get()
            .context("cannot read the charm config")?;
        Ok(config
            .get("quota-backend-bytes")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(crate::etcd::config::DEFAULT_QUOTA_BACKEND_BYTES))
    }

    /// The raised alarms and the members, for results and statuses.
    fn alarms_and_members(&self, client: &mut EtcdClient) -> Result<(Vec<Alarm>, Vec<Member>)> {
        let alarms = client.alarms().context("etcd did not list its alarms")?;
        let members = client.members().context("cannot list etcd's members")?;
        Ok((alarms, members))
    }

    fn alarm_results(&self, prefix: &str, alarms: &[Alarm], members: &[Member]) -> Result<()> {
        let mut r = BTreeMap::new();
        r.insert(format!("{prefix}.count"), alarms.len().to_string());
        for (i, a) in alarms.iter().enumerate() {
            r.insert(
                format!("{prefix}.{i}.member"),
                member_label(members, a.member_id),
            );
            r.insert(
                format!("{prefix}.{i}.member-id"),
                format!("{:x}", a.member_id),
            );
            r.insert(format!("{prefix}.{i}.type"), a.kind.clone());
        }
        self.tools
            .action_set(&r)
            .context("cannot set the action's results")
    }

    /// `alarm-list`: every alarm raised in the cluster, with the member
    /// that raised it.
    pub(crate) fn alarm_list_action(&self) -> Result<()> {
        let mut client = self.connect()?;
        let (alarms, members) = self.alarms_and_members(&mut client)?;
        self.alarm_results("alarms", &alarms, &members)?;
        if !alarms.is_empty() {
            self.tools
                .action_log(&alarm_message(&self.ctx.app_name, &alarms, &members))
                .context("cannot log progress")?;
        }
        Ok(())
    }

    /// `alarm-disarm`: disarms every alarm. While a member's database is
    /// still over the quota (etcd would raise `NOSPACE` again on the next
    /// write) it refuses, changes nothing and says what to do first.
    pub(crate) fn alarm_disarm_action(&self) -> Result<()> {
        let mut client = self.connect()?;
        let members = client.members().context("cannot list etcd's members")?;
        let raised = client.alarms().context("etcd did not list its alarms")?;
        if raised.iter().any(|a| a.kind == "NOSPACE") {
            let quota = self.quota_backend_bytes()?;
            let tls = self.client_tls()?;
            for m in &members {
                let size = m.client_urls.iter().find_map(|url| {
                    EtcdClient::connect(url, &tls, std::time::Duration::from_secs(3))
                        .and_then(|mut c| c.status())
                        .ok()
                        .map(|s| s.db_size)
                });
                if let Some(size) =
                    size.filter(|s| too_full_to_disarm(u64::try_from(*s).unwrap_or(0), quota))
                {
                    anyhow::bail!(
                        "member {} holds a {size}-byte database, still over quota-backend-bytes ({quota}) \
                         less the {}-byte headroom a write needs: \
                         etcd would raise NOSPACE again on the next write. Nothing was changed. \
                         Run `juju run {app}/leader compact`, then `juju run <unit> defrag` on each unit, \
                         then alarm-disarm again; or raise the quota: juju config {app} quota-backend-bytes=<bytes>",
                        m.name,
                        disarm_headroom(quota),
                        app = self.ctx.app_name
                    );
                }
            }
        }
        let disarmed = client
            .alarm_disarm_all()
            .context("etcd refused to disarm its alarms")?;
        for a in &disarmed {
            self.tools
                .action_log(&format!(
                    "Disarmed {} on {}",
                    a.kind,
                    member_label(&members, a.member_id)
                ))
                .context("cannot log progress")?;
        }
        self.alarm_results("disarmed", &disarmed, &members)
    }
}

/// The room a database must have under its quota before `alarm-disarm`
/// lets writes in again: etcd raises NOSPACE when the database's size plus
/// a request's cost would pass the quota, so a database just under it
/// (the last write refused, not applied) is as full as one over it. 5% of
/// the quota, at least 1 MiB.
pub fn disarm_headroom(quota: u64) -> u64 {
    (quota / 20).max(1024 * 1024)
}

/// Whether a member's database of `size` bytes is too close to `quota` for
/// its NOSPACE alarm to be disarmed (see [`disarm_headroom`]).
pub fn too_full_to_disarm(size: u64, quota: u64) -> bool {
    size.saturating_add(disarm_headroom(quota)) > quota
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_database_just_under_its_quota_is_too_full_to_disarm() {
        let q = 16 * 1024 * 1024;
        // NOSPACE raised by a 64 KiB put that did not fit.
        assert!(super::too_full_to_disarm(q - 64 * 1024, q));
        assert!(super::too_full_to_disarm(q, q));
        assert!(super::too_full_to_disarm(q + 1, q));
        // Compacted and defragmented: room again.
        assert!(!super::too_full_to_disarm(200 * 1024, q));
        // The headroom is 5% of a large quota.
        let big = 2 * 1024 * 1024 * 1024;
        assert!(super::too_full_to_disarm(big - big / 25, big));
        assert!(!super::too_full_to_disarm(big - big / 10, big));
    }

    use super::*;

    #[test]
    fn the_message_names_the_member_and_the_way_out() {
        let members = vec![Member {
            id: 0xab,
            name: "etcd-1".into(),
            peer_urls: vec![],
            client_urls: vec![],
            is_learner: false,
        }];
        let m = alarm_message(
            "etcd",
            &[Alarm {
                member_id: 0xab,
                kind: "NOSPACE".into(),
            }],
            &members,
        );
        assert!(m.contains("NOSPACE (etcd-1)"), "{m}");
        for step in ["compact", "defrag", "alarm-disarm", "quota-backend-bytes="] {
            assert!(m.contains(step), "{m}");
        }
        let m = alarm_message(
            "etcd",
            &[Alarm {
                member_id: 0xab,
                kind: "CORRUPT".into(),
            }],
            &members,
        );
        assert!(m.contains("juju run etcd/1 replace-member"), "{m}");
        assert!(!m.contains("NOSPACE"), "{m}");
    }
}
