//! The `recover-quorum` action: when a majority of members is gone for
//! good (say 2 of 3 machines destroyed), the cluster cannot commit
//! anything, not even the removal of the dead members. Run on a surviving
//! unit, this makes the survivor a one-member cluster with every key it
//! holds, under the same cluster ID, as `etcd --force-new-cluster` does.
//!
//! Steps: refuse while quorum holds; snapshot the survivor's data (the
//! snapshot action's pipeline, as an `etcd-backup-….tar.gz` in the default
//! target, 0600 and owned by `ubuntu`); stop etcd; start it once with
//! `force-new-cluster: true` in its config; put the usual config back and
//! restart; check the cluster ID and the key count. The survivor then says
//! in its peer bag that it recovered (`recovered-at`, `recovered-members`):
//! other units still in the application whose member was dropped move
//! their old data aside and join again as fresh members (see
//! [`Charm::rejoin_after_recovery`]), and the leader registers them.

use std::collections::BTreeMap;
use std::fs;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _, Result};

use super::lock::OpLock;
use super::replace::quorum_view;
use super::snapshot::{now_unix, Purpose, DEFAULT_TARGET};
use super::Charm;
use crate::etcd::client::wait_serving;
use crate::etcd::paths::{CONFIG_FILE, DATA_DIR};
use crate::etcd::EtcdClient;
use crate::fsutil;
use crate::juju::Status;

/// Peer unit-bag keys the survivor publishes.
pub const RECOVERED_AT_KEY: &str = "recovered-at";
pub const RECOVERED_MEMBERS_KEY: &str = "recovered-members";

/// How long the survivor may take to serve after each start.
const SERVE_TIMEOUT: Duration = Duration::from_secs(90);

impl Charm<'_> {
    /// The `recover-quorum` action.
    pub(crate) fn recover_quorum_action(&self) -> Result<()> {
        let _lock = OpLock::try_acquire(&self.root, "the recover-quorum action")?;
        self.recover_interrupted()?;
        let log = |m: &str| {
            tracing::info!("{m}");
            let _ = self.tools.action_log(m);
        };
        let mut state = self.load_state()?;
        let applied = state.applied.clone().ok_or_else(|| {
            anyhow!(
                "etcd has never run on {}: there is no data here to recover from. Nothing was changed. \
                 Run recover-quorum on a unit whose etcd holds the data",
                self.ctx.unit_name
            )
        })?;
        let tls = self.client_tls()?;
        if !self
            .service
            .is_active()
            .context("systemctl is-active failed")?
        {
            log("etcd is not running here; starting it to read its data");
            self.service
                .start()
                .context("systemctl start etcd failed")?;
        }
        let mut client = EtcdClient::connect(&applied.client_url, &tls, Duration::from_secs(5))
            .context("cannot reach this unit's etcd")?
            .local_reads();
        let status = crate::etcd::client::wait_ready(&applied.client_url, &tls, SERVE_TIMEOUT)
            .context("this unit's etcd does not answer")?;
        if status.is_learner {
            bail!(
                "this unit's member is a learner: it may not hold every key. Nothing was changed. \
                 Run recover-quorum on a unit whose member voted"
            );
        }
        let members = client.members().context("cannot list etcd's members")?;
        let view = quorum_view(&members, None, &tls);
        if client.serving().is_ok() || view.serving.len() * 2 > view.voters {
            bail!(
                "the cluster has quorum ({} of {} voting members serve: {}), so there is nothing to recover. \
                 Nothing was changed. To replace a broken member, run replace-member on its unit",
                view.serving.len(),
                view.voters,
                view.serving.join(", ")
            );
        }
        log(&format!(
            "Quorum is lost: {} of {} voting members serve ({}); down: {}",
            view.serving.len(),
            view.voters,
            view.serving.join(", "),
            view.down.join(", ")
        ));
        let before_keys = client
            .key_count(0)
            .context("cannot count this member's keys")?;

        // The survivor's data, saved before anything changes.
        let dir = self.target_dir(DEFAULT_TARGET)?;
        let taken = self
            .take_snapshot(&mut client, &dir, DEFAULT_TARGET, Purpose::Backup, None)
            .context("cannot save this member's data before the recovery; nothing was changed")?;
        log(&format!(
            "Saved this member's data to {} (sha256 {})",
            taken.unit_path, taken.sha256
        ));
        drop(client);

        // Start once with force-new-cluster, then with the usual config.
        let member = match self.member_config(&state)? {
            Ok(m) => m,
            Err(status) => bail!(
                "cannot build this unit's etcd config: {}. Nothing was changed but the backup {}",
                status.message,
                taken.unit_path
            ),
        };
        let normal = member.render().context("cannot render etcd's config")?;
        let config_path = self.root.at(CONFIG_FILE);
        log("Stopping etcd");
        self.service.stop().context("systemctl stop etcd failed")?;
        let forced = format!("{normal}force-new-cluster: true\n");
        fsutil::write_atomic(&config_path, forced.as_bytes(), 0o600)
            .with_context(|| format!("cannot write {}", config_path.display()))?;
        log("Starting etcd with force-new-cluster: a one-member cluster with this member's data");
        let started = self
            .service
            .start()
            .map_err(anyhow::Error::from)
            .and_then(|()| {
                wait_serving(&applied.client_url, &tls, SERVE_TIMEOUT).map_err(anyhow::Error::from)
            });
        // The usual config goes back whatever happened: a forced start must
        // never be repeated by a later restart.
        fsutil::write_atomic(&config_path, normal.as_bytes(), 0o600)
            .with_context(|| format!("cannot write {}", config_path.display()))?;
        if let Err(e) = started {
            let _ = self.service.stop();
            return Err(e.context(format!(
                "etcd did not serve after the forced start; the data saved before is in {}",
                taken.unit_path
            )));
        }
        self.service
            .restart()
            .context("systemctl restart etcd failed")?;
        let after = wait_serving(&applied.client_url, &tls, SERVE_TIMEOUT)
            .context("etcd did not serve after the restart with its usual config")?;
        let mut client = EtcdClient::connect(&applied.client_url, &tls, Duration::from_secs(5))
            .context("cannot reach this unit's etcd")?;
        let keys = client.key_count(0).context("cannot count the keys")?;
        let now_members = client.members().context("cannot list etcd's members")?;
        if after.cluster_id != status.cluster_id || keys != before_keys {
            bail!(
                "after the recovery etcd holds {keys} keys in cluster {:x} (before: {before_keys} keys in {:x}); \
                 the data saved before is in {}",
                after.cluster_id,
                status.cluster_id,
                taken.unit_path
            );
        }
        let mut removed: Vec<String> = members
            .iter()
            .filter(|m| !now_members.iter().any(|n| n.id == m.id))
            .map(|m| {
                if m.name.is_empty() {
                    format!("{:x}", m.id)
                } else {
                    m.name.clone()
                }
            })
            .collect();
        removed.sort();
        log(&format!(
            "Recovered: a one-member cluster {:x} with {keys} keys at revision {}; removed {}",
            after.cluster_id,
            after.revision,
            removed.join(", ")
        ));

        // Tell the other units; the leader registers them as new members.
        if let Some(peer_id) = self.peer_relation()? {
            let mut bag = BTreeMap::new();
            bag.insert(RECOVERED_AT_KEY.to_string(), now_unix().to_string());
            bag.insert(
                RECOVERED_MEMBERS_KEY.to_string(),
                now_members
                    .iter()
                    .map(|m| m.name.clone())
                    .collect::<Vec<_>>()
                    .join(","),
            );
            self.publish_unit(&peer_id, bag)?;
        }
        if let Err(e) = self.reconcile(&mut state) {
            tracing::warn!("{e:#}");
        }
        self.set_results(vec![
            ("recover.cluster-id", format!("{:x}", after.cluster_id)),
            ("recover.member", self.ctx.member_name()),
            ("recover.revision", after.revision.to_string()),
            ("recover.keys", keys.to_string()),
            ("recover.removed", removed.join(",")),
            ("recover.members", now_members.len().to_string()),
            ("backup.path", taken.unit_path.clone()),
            ("backup.sha256", taken.sha256.clone()),
            (
                "backup.copy-cmd",
                format!("juju scp {}:{} .", self.ctx.unit_name, taken.unit_path),
            ),
        ])
    }

    /// In every reconcile of a unit with data: when a peer recovered the
    /// cluster from its own member (its bag's `recovered-at` is newer than
    /// what this unit handled) and this unit's member is not among those it
    /// kept, this unit's data belongs to the old cluster. It stops etcd,
    /// moves the data aside (kept, never deleted) and forgets how it
    /// joined, so that it joins again as a new member. Returns whether it
    /// did.
    pub(crate) fn rejoin_after_recovery(
        &self,
        state: &mut super::state::LocalState,
    ) -> Result<bool> {
        let Some(peer_id) = self.peer_relation()? else {
            return Ok(false);
        };
        let me = self.ctx.member_name();
        let mut newest: Option<(i64, String)> = None;
        for unit in self
            .tools
            .relation_list(&peer_id)
            .context("cannot list the peer units")?
        {
            let bag = self
                .tools
                .relation_get(&peer_id, &unit, false)
                .with_context(|| format!("cannot read {unit}'s peer data"))?;
            let Some(at) = bag
                .get(RECOVERED_AT_KEY)
                .and_then(|s| s.parse::<i64>().ok())
            else {
                continue;
            };
            let kept = bag.get(RECOVERED_MEMBERS_KEY).cloned().unwrap_or_default();
            if at > state.recovery_seen && newest.as_ref().is_none_or(|(n, _)| at > *n) {
                newest = Some((at, kept));
            }
        }
        let Some((at, kept)) = newest else {
            return Ok(false);
        };
        state.recovery_seen = at;
        if kept.split(',').any(|k| k == me) || state.applied.is_none() {
            self.save_state(state)?;
            return Ok(false);
        }
        tracing::warn!(
            "a peer recovered the cluster from its own member ({kept}); this member's data belongs to the old cluster: moving it aside and joining again"
        );
        self.tools
            .status_set(
                &Status::maintenance("Joining the recovered cluster as a new member"),
                false,
            )
            .context("cannot set the unit's status")?;
        if self
            .service
            .is_active()
            .context("systemctl is-active failed")?
        {
            self.service.stop().context("systemctl stop etcd failed")?;
        }
        let data = self.root.at(DATA_DIR);
        if data.exists() {
            let aside = data.with_file_name(format!("data.pre-recovery-{at}"));
            fs::rename(&data, &aside).with_context(|| {
                format!(
                    "cannot move {} aside to {}",
                    data.display(),
                    aside.display()
                )
            })?;
            tracing::warn!("the old data is kept in {}", aside.display());
        }
        state.bootstrap = None;
        state.applied = None;
        self.save_state(state)?;
        Ok(true)
    }
}
