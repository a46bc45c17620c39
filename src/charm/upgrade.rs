//! Rolling upgrades by resource: `juju attach-resource etcd etcd=…` on a
//! running cluster upgrades it one member at a time.
//!
//! - Before the new binaries replace the installed ones, the version step
//!   is checked against the cluster's version (the lowest minor version its
//!   members run, which is how etcd sets it): a downgrade below it, or a
//!   skip of more than one minor version, is refused with a `blocked`
//!   status and nothing changes.
//! - The restart into the new version goes through the rolling-restart
//!   lock (`rolling.rs`) with the reason `upgrade to etcd X.Y.Z`; just
//!   before it, the member's data is saved with the snapshot pipeline as an
//!   `etcd-backup-….tar.gz` in the default snapshot directory, and the
//!   status and log say where.
//! - After the restart the unit publishes `upgraded-to` in its bag. With
//!   `pause-after-unit-upgrade=first` (or `all`) the leader then sets
//!   `upgrade-paused` in the application bag and grants no further upgrade
//!   until `resume-upgrade` runs on the leader.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};

use super::snapshot::{Purpose, DEFAULT_TARGET};
use super::Charm;
use crate::etcd::EtcdClient;

/// Unit-bag key: the version this unit upgraded to.
pub const UPGRADED_TO_KEY: &str = "upgraded-to";
/// Application-bag key: `unit@version` after whose upgrade the roll pauses.
pub const PAUSED_KEY: &str = "upgrade-paused";
/// Application-bag key: the `unit@version` marks the operator resumed.
pub const RESUMED_KEY: &str = "upgrade-resumed";
/// The restart reason of an upgrade starts with this.
pub const UPGRADE_REASON: &str = "upgrade to etcd ";

/// `3.5.1` → (3, 5).
pub fn minor_of(version: &str) -> Option<(u64, u64)> {
    let mut it = version.trim().trim_start_matches('v').split('.');
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    Some((major, minor))
}

/// Why moving a cluster at `cluster` (its lowest member's minor version)
/// to `new` is refused, if it is.
pub fn refusal(cluster: (u64, u64), new: (u64, u64)) -> Option<String> {
    let show = |(a, b): (u64, u64)| format!("{a}.{b}");
    if new < cluster {
        return Some(format!(
            "a downgrade of the cluster version from {} to {}, which etcd does not support",
            show(cluster),
            show(new)
        ));
    }
    if new.0 != cluster.0 || new.1 > cluster.1 + 1 {
        return Some(format!(
            "a skip from {} to {}: etcd upgrades one minor version at a time; attach the newest {}.{} release first",
            show(cluster),
            show(new),
            cluster.0,
            cluster.1 + 1
        ));
    }
    None
}

impl Charm<'_> {
    /// The cluster's version as etcd sets it: the lowest minor version
    /// that a reachable member runs. `None` when no member answers.
    pub(crate) fn cluster_minor(&self, client_url: &str) -> Result<Option<(u64, u64)>> {
        let tls = self.client_tls()?;
        let mut c = match EtcdClient::connect(client_url, &tls, Duration::from_secs(5)) {
            Ok(c) => c,
            Err(_) => return Ok(None),
        };
        let members = c.members().context("cannot list etcd's members")?;
        let mut lowest: Option<(u64, u64)> = None;
        for m in &members {
            for url in &m.client_urls {
                if let Some(v) = EtcdClient::connect(url, &tls, Duration::from_secs(3))
                    .and_then(|mut c| c.status())
                    .ok()
                    .and_then(|s| minor_of(&s.version))
                {
                    lowest = Some(lowest.map_or(v, |l| l.min(v)));
                    break;
                }
            }
        }
        Ok(lowest)
    }

    /// Checks the step to `new_version` before anything is replaced; the
    /// `blocked` message when it is refused.
    pub(crate) fn upgrade_refusal(
        &self,
        running_url: &str,
        new_version: &str,
    ) -> Result<Option<String>> {
        let Some(new) = minor_of(new_version) else {
            return Ok(Some(format!(
                "the etcd resource's version {new_version:?} cannot be read; attach an official etcd release"
            )));
        };
        let Some(cluster) = self.cluster_minor(running_url)? else {
            return Ok(None);
        };
        Ok(refusal(cluster, new).map(|why| {
            format!(
                "The etcd resource (etcd {new_version}) is refused: {why}. Nothing was changed; etcd keeps running \
                 its current version. Attach a suitable release: juju attach-resource {} etcd=./etcd-vX.Y.Z-linux-amd64.tar.gz",
                self.ctx.app_name
            )
        }))
    }

    /// Saves this member's data before it restarts into a new version;
    /// returns the archive's unit path.
    pub(crate) fn backup_before_upgrade(&self, running_url: &str) -> Result<String> {
        let tls = self.client_tls()?;
        let mut client = EtcdClient::connect(running_url, &tls, Duration::from_secs(5))
            .context("cannot reach this unit's etcd to back it up before the upgrade")?;
        let dir = self.target_dir(DEFAULT_TARGET)?;
        let taken = self
            .take_snapshot(&mut client, &dir, DEFAULT_TARGET, Purpose::Backup, None)
            .context("cannot back up this member before its upgrade; it is not upgraded")?;
        tracing::info!(
            "saved this member's data before the upgrade to {} (sha256 {})",
            taken.unit_path,
            taken.sha256
        );
        Ok(taken.unit_path)
    }

    /// After this unit restarted into `version`: says so in its bag.
    pub(crate) fn publish_upgraded(&self, version: &str) -> Result<()> {
        let Some(peer_id) = self.peer_relation()? else {
            return Ok(());
        };
        let mut bag = BTreeMap::new();
        bag.insert(UPGRADED_TO_KEY.to_string(), version.to_string());
        self.publish_unit(&peer_id, bag)
    }

    /// On the leader, as a holder releases the lock: pauses the roll after
    /// `unit`'s upgrade when `pause-after-unit-upgrade` says so; returns
    /// whether it did.
    pub(crate) fn maybe_pause_after(
        &self,
        peer_id: &str,
        unit: &str,
        app: &BTreeMap<String, String>,
    ) -> Result<bool> {
        let config = self
            .tools
            .config_get()
            .context("cannot read the charm config")?;
        let mode = config
            .get("pause-after-unit-upgrade")
            .and_then(|v| v.as_str())
            .unwrap_or("none");
        let mode = match mode {
            "none" | "first" | "all" => mode,
            other => {
                tracing::warn!(
                    "pause-after-unit-upgrade={other:?} is not none, first or all; pausing as for first"
                );
                "first"
            }
        };
        if mode == "none" {
            return Ok(false);
        }
        let bag = self.peer_bag(peer_id, unit)?;
        let Some(version) = bag.get(UPGRADED_TO_KEY) else {
            return Ok(false);
        };
        let resumed = app.get(RESUMED_KEY).cloned().unwrap_or_default();
        let mark = format!("{unit}@{version}");
        if resumed.split(',').any(|u| u == mark) {
            return Ok(false);
        }
        let upgraded = {
            let mut n = 0;
            let mut all = self
                .tools
                .relation_list(peer_id)
                .context("cannot list the peer units")?;
            all.push(self.ctx.unit_name.clone());
            for u in all {
                let b = self.peer_bag(peer_id, &u)?;
                if b.get(UPGRADED_TO_KEY) == Some(version) {
                    n += 1;
                }
            }
            n
        };
        if mode == "all" || (mode == "first" && upgraded == 1) {
            let mut data = BTreeMap::new();
            data.insert(PAUSED_KEY.to_string(), mark);
            self.tools
                .relation_set(peer_id, true, &data)
                .context("cannot pause the upgrade")?;
            tracing::info!(
                "the upgrade pauses after {unit} (pause-after-unit-upgrade={mode}); resume it with: juju run {}/leader resume-upgrade",
                self.ctx.app_name
            );
            return Ok(true);
        }
        Ok(false)
    }

    /// The `resume-upgrade` action, on the leader.
    pub(crate) fn resume_upgrade_action(&self) -> Result<()> {
        if !self.tools.is_leader().context("cannot ask is-leader")? {
            bail!(
                "resume-upgrade must run on the leader: juju run {}/leader resume-upgrade",
                self.ctx.app_name
            );
        }
        let Some(peer_id) = self.peer_relation()? else {
            bail!("there is no peer relation yet, so no upgrade to resume");
        };
        let app = self.peer_app_data(&peer_id)?;
        let Some(paused) = app.get(PAUSED_KEY).filter(|p| !p.is_empty()).cloned() else {
            bail!("no upgrade is paused; nothing to resume");
        };
        let mut resumed: Vec<String> = app
            .get(RESUMED_KEY)
            .map(|r| {
                r.split(',')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        resumed.push(paused.clone());
        let mut data = BTreeMap::new();
        data.insert(PAUSED_KEY.to_string(), String::new());
        data.insert(RESUMED_KEY.to_string(), resumed.join(","));
        self.tools
            .relation_set(&peer_id, true, &data)
            .context("cannot resume the upgrade")?;
        // Hand the lock on now, to the next unit waiting to upgrade.
        let next = self.process_restart_locks(&peer_id, None, true)?;
        self.tools
            .action_log(&format!("Resumed the upgrade paused after {paused}"))
            .context("cannot log progress")?;
        self.set_results(vec![
            ("resume.paused-after", paused),
            ("resume.next", next.unwrap_or_default()),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_steps() {
        assert_eq!(minor_of("3.5.1"), Some((3, 5)));
        assert_eq!(minor_of("v3.4.23"), Some((3, 4)));
        assert_eq!(minor_of("x"), None);
        assert!(refusal((3, 4), (3, 5)).is_none());
        assert!(refusal((3, 4), (3, 4)).is_none());
        assert!(refusal((3, 4), (3, 6)).unwrap().contains("skip"));
        assert!(refusal((3, 5), (3, 4)).unwrap().contains("downgrade"));
        assert!(refusal((3, 5), (4, 0)).unwrap().contains("skip"));
    }
}
