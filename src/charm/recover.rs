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
//!
//! `recover-quorum from-backup=latest|ID` is the same recovery when no
//! member's data survives: the backup is taken from the configured store,
//! verified in full as it streams in, and restored as a one-member cluster
//! on this unit by restore.rs's journalled swap (the old data is kept
//! aside, and put back if anything fails), under a new cluster ID; the
//! other units rejoin the same way.

use std::collections::BTreeMap;
use std::fs;
use std::io::BufReader;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _, Result};

use super::backup::lookup_backup;
use super::lock::OpLock;
use super::replace::{label, quorum_view, QuorumView};
use super::restore::{
    journal_path, remove_dir_if_exists, staging_dir, Before, Durability, Journal, Phase, Swap,
};
use super::snapshot::{human_size, now_unix, param_str, Purpose, DEFAULT_TARGET};
use super::Charm;
use crate::etcd::client::wait_serving;
use crate::etcd::paths::{CONFIG_FILE, DATA_DIR};
use crate::etcd::restore::RestoreTool;
use crate::etcd::{ClientTls, EtcdClient, Member};
use crate::fsutil;
use crate::juju::Status;
use crate::snapshot;
use crate::store::Listed;

/// Peer unit-bag keys the survivor publishes.
pub const RECOVERED_AT_KEY: &str = "recovered-at";
pub const RECOVERED_MEMBERS_KEY: &str = "recovered-members";

/// How long the survivor may take to serve after each start.
const SERVE_TIMEOUT: Duration = Duration::from_secs(90);

/// Lists the members as this unit's etcd (`client`, reading locally)
/// sees them, and refuses while the cluster has quorum: this member
/// serves, or a majority of the voters does. Returns the members and
/// which voters serve.
fn refuse_if_quorum(client: &mut EtcdClient, tls: &ClientTls) -> Result<(Vec<Member>, QuorumView)> {
    let members = client.members().context("cannot list etcd's members")?;
    let view = quorum_view(&members, None, tls);
    if client.serving().is_ok() || view.serving.len() * 2 > view.voters {
        bail!(
            "the cluster has quorum ({} of {} voting members serve: {}), so there is nothing to recover. \
             Nothing was changed. To replace a broken member, run replace-member on its unit",
            view.serving.len(),
            view.voters,
            view.serving.join(", ")
        );
    }
    Ok((members, view))
}

impl Charm<'_> {
    /// The `recover-quorum` action.
    pub(crate) fn recover_quorum_action(&self) -> Result<()> {
        let _lock = OpLock::try_acquire(&self.root, "the recover-quorum action")?;
        self.recover_interrupted()?;
        let params = self
            .tools
            .action_get()
            .context("cannot read the action's parameters")?;
        let from_backup = param_str(&params, "from-backup", "")?;
        if !from_backup.is_empty() {
            return self.recover_from_backup(&from_backup);
        }
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
        let (members, view) = refuse_if_quorum(&mut client, &tls)?;
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
            .map(label)
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

    /// Refuses while quorum holds, as seen from this unit's etcd or, when
    /// it does not answer (its data may be gone), from a voting member of
    /// another unit. Returns this cluster's members and ID, when this
    /// unit's etcd could list them.
    fn refuse_while_quorum(&self) -> Result<(Vec<crate::etcd::Member>, u64, u64)> {
        let tls = self.client_tls()?;
        let state = self.load_state()?;
        if let Some(applied) = &state.applied {
            if !self
                .service
                .is_active()
                .context("systemctl is-active failed")?
            {
                let _ = self.service.start();
            }
            let ready =
                crate::etcd::client::wait_ready(&applied.client_url, &tls, Duration::from_secs(20));
            if let Ok(status) = ready {
                let mut client =
                    EtcdClient::connect(&applied.client_url, &tls, Duration::from_secs(5))
                        .context("cannot reach this unit's etcd")?
                        .local_reads();
                let (members, _) = refuse_if_quorum(&mut client, &tls)?;
                let db_size = u64::try_from(status.db_size).unwrap_or(0);
                return Ok((members, status.cluster_id, db_size));
            }
        }
        if let Some(peer_id) = self.peer_relation()? {
            if let Some(mut voter) = self.connect_to_a_voter(&peer_id)? {
                if voter.serving().is_ok() {
                    bail!(
                        "the cluster has quorum (another unit's member serves), so there is nothing to recover. \
                         Nothing was changed. To replace this unit's member, run replace-member here"
                    );
                }
            }
        }
        Ok((Vec::new(), 0, 0))
    }

    /// The backup `id` (`latest`: the newest by its manifest's time) in
    /// the configured store.
    fn pick_backup(&self, id: &str) -> Result<(crate::store::BackupStore, Listed)> {
        let cfg = self.backup_config()?;
        if let Some(p) = &cfg.problem {
            bail!("the backup store is not usable: {p}. Nothing was changed.");
        }
        let store = self.open_store(&cfg)?;
        let (found, listed) = lookup_backup(&store, &cfg.application, id)?;
        match found {
            Some(l) => Ok((store, l)),
            None if listed.is_empty() => bail!(
                "the {} backup store ({}) holds no backup of {}. Nothing was changed. \
                 With the local store, a backup is on the unit that took it: run recover-quorum there, or set backup-dir/relate the s3 store that holds one",
                store.kind(),
                store.location(""),
                cfg.application
            ),
            None => bail!(
                "no backup {id} in the {} store; it holds: {}. Nothing was changed. Pass one of them, or from-backup=latest",
                store.kind(),
                listed
                    .iter()
                    .map(|l| l.sidecar.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    /// `recover-quorum from-backup=latest|ID`.
    fn recover_from_backup(&self, id: &str) -> Result<()> {
        let (members, old_cluster, db_size) = self.refuse_while_quorum()?;
        let state = self.load_state()?;
        let applied = state.applied.clone().ok_or_else(|| {
            anyhow!(
                "etcd has never been configured on {}; wait until it is installed and has tried to start, then run recover-quorum again. Nothing was changed",
                self.ctx.unit_name
            )
        })?;
        let binaries = state.binaries.clone().ok_or_else(|| {
            anyhow!("etcd is not installed on this unit yet. Nothing was changed")
        })?;
        self.log_progress("Quorum is lost; recovering from the backup store");
        let (store, chosen) = self.pick_backup(id)?;
        let sc = &chosen.sidecar;
        self.log_progress(&format!(
            "Using the backup {} ({}, revision {}, {} keys, {})",
            sc.name,
            chosen.location,
            sc.manifest.revision,
            sc.manifest.key_count,
            human_size(sc.size)
        ));

        let staging = staging_dir(self);
        remove_dir_if_exists(&staging)
            .with_context(|| format!("cannot clear {}", staging.display()))?;
        fsutil::create_dir_mode(&staging, 0o700)
            .with_context(|| format!("cannot create {}", staging.display()))?;
        let result = self.recover_from_staged(
            &store,
            &chosen,
            &staging,
            &applied.peer_url,
            &binaries,
            &members,
            &Before {
                cluster_id: old_cluster,
                db_size,
            },
        );
        if let Err(e) = remove_dir_if_exists(&staging) {
            tracing::warn!("cannot remove {}: {e}", staging.display());
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    fn recover_from_staged(
        &self,
        store: &crate::store::BackupStore,
        chosen: &Listed,
        staging: &std::path::Path,
        peer_url: &str,
        binaries: &crate::etcd::Binaries,
        members: &[crate::etcd::Member],
        before: &Before,
    ) -> Result<()> {
        let sc = &chosen.sidecar;
        // 1. Verified in full before anything is touched.
        let input = store
            .open(&sc.name)
            .with_context(|| format!("cannot read {}. Nothing was changed", chosen.location))?;
        let (inspection, db_path) = self
            .stage_verified(
                BufReader::with_capacity(snapshot::BUF_SIZE, input),
                sc.size,
                staging,
                Durability::Synced,
            )
            .map_err(|f| f.nothing_changed(staging))?;
        if inspection.input_sha256 != sc.sha256 {
            bail!(
                "{} has sha256 {} where its sidecar records {}: it changed since it was written. Nothing was changed. Pick another backup (list-backups)",
                chosen.location,
                inspection.input_sha256,
                sc.sha256
            );
        }
        let Some(manifest) = inspection.manifest.clone() else {
            bail!("{} has no manifest. Nothing was changed.", chosen.location);
        };
        let tool = RestoreTool::detect(binaries).context("cannot run etcd's restore tool")?;
        let data_dir = self.root.at(DATA_DIR);
        let data_parent = data_dir
            .parent()
            .ok_or_else(|| anyhow!("the data directory has no parent"))?
            .to_path_buf();
        self.check_space(&data_parent, inspection.db_size, None)?;
        self.log_progress(&format!(
            "The backup passed every check (sha256 {})",
            inspection.input_sha256
        ));

        // 2. The swap, journalled: any failure puts the old data back.
        let at = now_unix();
        let keep = data_dir.with_file_name(format!("data.pre-recovery-{at}"));
        let journal = Journal::replacing(&data_dir, &inspection.input_sha256, Some(keep.clone()));
        remove_dir_if_exists(&journal.fresh)
            .with_context(|| format!("cannot clear {}", journal.fresh.display()))?;
        if journal.aside.exists() || keep.exists() {
            bail!(
                "{} exists from an earlier restore; move it away (it holds etcd data from before that restore), then run recover-quorum again. Nothing was changed.",
                journal.aside.display()
            );
        }
        if !data_dir.exists() {
            // No data survives here: an empty directory stands in for it,
            // so the swap and a rollback work as usual.
            fsutil::create_dir_mode(&data_dir, 0o700)
                .with_context(|| format!("cannot create {}", data_dir.display()))?;
        }
        let jpath = journal_path(self);
        journal.save(&jpath)?;
        self.tools
            .status_set(
                &Status::maintenance(format!(
                    "Recovering the cluster from the backup {}; etcd is stopped meanwhile. If this status stays, the recovery was interrupted: the next hook puts the old data back",
                    sc.name
                )),
                false,
            )
            .context("cannot set the unit's status")?;
        let token = format!("etcd-recover-{}", super::hooks::random_hex(8)?);
        let (report, after) = self.replace_or_roll_back(
            &Swap {
                journal: &journal,
                jpath: &jpath,
                tool: &tool,
                db_path: &db_path,
                peer_url,
                token: &token,
                inspection: &inspection,
                before,
            },
            "recover-quorum from a backup",
            |reason| format!(
                "the recovery from {} failed and was rolled back: this unit has its old data again. Reason: {reason}",
                sc.name
            ),
            |reason, rb| format!(
                "the recovery from {} failed ({reason}) and the rollback failed too ({rb:#}); the old data is in {}. See the unit's log",
                sc.name,
                journal.aside.display()
            ),
        )?;
        // 3. Proven: the old data moves to `keep` (never deleted).
        let mut done = journal.clone();
        done.phase = Phase::Verified;
        done.save(&jpath)?;
        self.finish_verified(&done, &jpath);
        let me = self.ctx.member_name();
        let mut removed: Vec<String> = members.iter().filter(|m| m.name != me).map(label).collect();
        if members.is_empty() {
            // This unit's etcd could not list the old members (a member
            // restarted without quorum never serves): the cluster the
            // leader published names them.
            if let Some(peer_id) = self.peer_relation()? {
                let published = self
                    .peer_app_data(&peer_id)?
                    .get(super::cluster::INITIAL_CLUSTER_KEY)
                    .cloned()
                    .unwrap_or_default();
                removed = super::cluster::parse_initial_cluster(&published)
                    .into_iter()
                    .map(|(n, _)| n)
                    .filter(|n| *n != me)
                    .collect();
            }
        }
        removed.sort();
        self.log_progress(&format!(
            "Recovered from {}: a one-member cluster {:x} with {} keys at revision {}; the old data is kept in {}",
            sc.name,
            after.cluster_id,
            after.keys,
            after.revision,
            keep.display()
        ));
        self.announce_recovery(std::slice::from_ref(&me))?;
        let mut state = self.load_state()?;
        if let Err(e) = self.reconcile(&mut state) {
            tracing::warn!("{e:#}");
        }
        let unit_keep = std::path::Path::new(DATA_DIR)
            .with_file_name(format!("data.pre-recovery-{at}"))
            .display()
            .to_string();
        let mut r = vec![
            ("recover.cluster-id", format!("{:x}", after.cluster_id)),
            ("recover.member", me),
            ("recover.revision", after.revision.to_string()),
            ("recover.keys", after.keys.to_string()),
            ("recover.removed", removed.join(",")),
            ("recover.members", "1".to_string()),
            ("recover.old-data", unit_keep),
            ("recover.backup.id", sc.name.clone()),
            ("recover.backup.store", sc.store.clone()),
            ("recover.backup.location", chosen.location.clone()),
            ("recover.backup.revision", manifest.revision.to_string()),
            ("recover.backup.keys", manifest.key_count.to_string()),
            ("recover.backup.created", manifest.created.clone()),
            ("recover.backup.sha256", sc.sha256.clone()),
        ];
        if before.cluster_id != 0 {
            // Known when this unit's etcd could still answer.
            r.push((
                "recover.previous-cluster-id",
                format!("{:x}", before.cluster_id),
            ));
        }
        r.push((
            "recover.revision-bump",
            if report.bumped_by > 0 {
                report.bumped_by.to_string()
            } else {
                super::restore::bump_unavailable(&after.version)
            },
        ));
        if let Some(note) = &after.note {
            r.push(("recover.note", note.clone()));
        }
        self.set_results(r)
    }

    /// Tells the other units, in this unit's peer bag, that the cluster
    /// was recovered keeping only `kept`: the others join again afresh.
    pub(crate) fn announce_recovery(&self, kept: &[String]) -> Result<()> {
        if let Some(peer_id) = self.peer_relation()? {
            let mut bag = BTreeMap::new();
            bag.insert(RECOVERED_AT_KEY.to_string(), now_unix().to_string());
            bag.insert(RECOVERED_MEMBERS_KEY.to_string(), kept.join(","));
            self.publish_unit(&peer_id, bag)?;
        }
        Ok(())
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
        for peer in self.peer_bags(&peer_id)? {
            let (_, bag) = peer?;
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
