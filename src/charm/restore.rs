//! The `restore` action: replace this single unit's data with the snapshot
//! attached as the `snapshot` resource, or with a backup from the configured
//! backup store (`backup-id=`, which wins when both are given; the download
//! streams straight into the verification and the staged db), under a new
//! cluster ID.
//!
//! Everything is checked before anything is touched: the guards (one unit
//! in the peer relation, one member in etcd), the archive (verified in full
//! while its db is extracted to a staging file) and the free space. Only
//! then is the existing data saved to `target` (unless `skip-backup`), etcd
//! stopped while the snapshot is restored into a fresh directory with
//! etcd's own tool (the tool never touches the live data, so the two run
//! at once; it is killed with the charm if the charm dies), and the
//! directories swapped. The old data directory stays on disk,
//! moved aside, until etcd is healthy on the new data and the new data has
//! been checked against the manifest; any failure before that puts it back
//! and starts etcd on it again.
//!
//! A journal (`/var/lib/etcd-charm/restore.json`) is written before etcd is
//! stopped. If the action dies part-way (a crash, `kill -9`, a reboot), the
//! next hook or action finds the journal and rolls back to the old data.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};
use serde::{Deserialize, Serialize};

use super::hooks::{random_hex, PEER};
use super::lock::OpLock;
use super::snapshot::{explain_io, human_size, param_bool, param_str, Purpose, DEFAULT_TARGET};
use super::state::RestoredSnapshot;
use super::Charm;
use crate::etcd::client::EtcdClient;
use crate::etcd::paths::{DATA_DIR, STATE_FILE};
use crate::etcd::restore::{db_in, RestoreReport, RestoreRequest, RestoreTool};
use crate::failpoint;
use crate::fsutil;
use crate::juju::Status;
use crate::pki::Ca;
use crate::snapshot::{self, Inspection, Kind, Limits};
use crate::store::{BackupStore, Listed};

/// How long etcd may take to become healthy on the restored data.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Room kept free beyond what a restore writes: etcd preallocates a 64 MiB
/// WAL segment, and a full disk must not be the result of a restore.
const HEADROOM: u64 = 96 << 20;

/// The journal's phases, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Phase {
    /// etcd is being stopped or the new data prepared; the old data
    /// directory may have been moved to `aside`.
    Replacing,
    /// etcd runs on the new data and it passed every check; only the
    /// clean-up of `aside` is left.
    Verified,
}

/// What an interrupted restore leaves for the next run to finish or undo.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct Journal {
    pub(crate) phase: Phase,
    /// The live data directory (host path).
    pub(crate) data_dir: PathBuf,
    /// Where the old data directory is moved while the new one is tried.
    pub(crate) aside: PathBuf,
    /// Where the snapshot is restored before the swap.
    pub(crate) fresh: PathBuf,
    /// The input being restored, for messages.
    pub(crate) source_sha256: String,
    /// Set by `recover-quorum from-backup`: the old data is kept here
    /// once the new data is verified (instead of deleted), and a rollback
    /// starts etcd on the old data without waiting for it to be healthy
    /// (its cluster has lost quorum).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) keep: Option<PathBuf>,
}

pub(crate) fn journal_path(charm: &Charm<'_>) -> PathBuf {
    charm.root.at(STATE_FILE).with_file_name("restore.json")
}

pub(crate) fn staging_dir(charm: &Charm<'_>) -> PathBuf {
    charm.root.at(STATE_FILE).with_file_name("restore-staging")
}

pub(crate) fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let mut s = dir.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

pub(crate) fn remove_dir_if_exists(p: &Path) -> io::Result<()> {
    match fs::remove_dir_all(p) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

impl Journal {
    /// The journal of a swap about to start: the new data is restored
    /// into `data.restoring` and the old moved to `data.pre-restore`
    /// (`keep`: see the field).
    pub(crate) fn replacing(
        data_dir: &Path,
        source_sha256: &str,
        keep: Option<PathBuf>,
    ) -> Journal {
        Journal {
            phase: Phase::Replacing,
            data_dir: data_dir.to_path_buf(),
            aside: sibling(data_dir, ".pre-restore"),
            fresh: sibling(data_dir, ".restoring"),
            source_sha256: source_sha256.to_string(),
            keep,
        }
    }

    pub(crate) fn save(&self, path: &Path) -> Result<()> {
        let body = serde_json::to_vec_pretty(self).context("cannot encode the restore journal")?;
        fsutil::write_atomic(path, &body, 0o600)
            .with_context(|| format!("cannot write the restore journal {}", path.display()))?;
        Ok(())
    }

    fn load(path: &Path) -> Result<Option<Journal>> {
        match fs::read(path) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .with_context(|| format!("the restore journal {} is unreadable", path.display())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }
}

/// The resource as the action sees it.
struct Attached {
    host: PathBuf,
    size: u64,
}

/// What the restore reads: the attached resource, or a backup in the
/// configured store (`backup-id=`, which wins over a resource).
enum Source {
    Resource(Attached),
    Store {
        store: BackupStore,
        listed: Box<Listed>,
        /// A `snapshot` resource is attached too, and is not used.
        resource_ignored: bool,
    },
}

impl Source {
    /// `restore.source.from`.
    fn describe(&self) -> String {
        match self {
            Source::Resource(_) => "the snapshot resource".to_string(),
            Source::Store {
                listed,
                resource_ignored,
                ..
            } => format!(
                "backup-id {} ({}){}",
                listed.sidecar.name,
                listed.location,
                if *resource_ignored {
                    "; the attached snapshot resource was not used"
                } else {
                    ""
                }
            ),
        }
    }
}

/// A cheap identity for the attached file, so that status can tell a
/// restored resource from a new one without hashing gigabytes on every
/// update-status: its size and the sha256 of its first and last MiB. (Juju
/// may copy the file again, so its mtime says nothing.)
fn quick_fingerprint(path: &Path, size: u64) -> io::Result<String> {
    use sha2::{Digest, Sha256};
    use std::io::{Read, Seek, SeekFrom};
    const SPAN: u64 = 1 << 20;
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; SPAN as usize];
    let head = usize::try_from(size.min(SPAN)).unwrap_or(0);
    f.read_exact(&mut buf[..head])?;
    h.update(&buf[..head]);
    if size > SPAN {
        let tail_len = size.min(SPAN);
        f.seek(SeekFrom::Start(size - tail_len))?;
        let tail = usize::try_from(tail_len).unwrap_or(0);
        f.read_exact(&mut buf[..tail])?;
        h.update(&buf[..tail]);
    }
    Ok(format!("{size}:{}", hex::encode(h.finalize())))
}

/// What [`Charm::replace_or_roll_back`] swaps in, and where from.
pub(crate) struct Swap<'a> {
    pub(crate) journal: &'a Journal,
    pub(crate) jpath: &'a Path,
    pub(crate) tool: &'a RestoreTool,
    pub(crate) db_path: &'a Path,
    pub(crate) peer_url: &'a str,
    pub(crate) token: &'a str,
    pub(crate) inspection: &'a Inspection,
    pub(crate) before: &'a Before,
}

/// What etcd looked like before the restore.
pub(crate) struct Before {
    pub(crate) cluster_id: u64,
    pub(crate) db_size: u64,
}

/// Whether [`Charm::stage_verified`] syncs the staged db to disk before it
/// returns: a restore does, since the db becomes etcd's data; a scratch
/// verification, whose db is deleted within minutes, need not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Durability {
    Synced,
    Unsynced,
}

/// Why [`Charm::stage_verified`] staged no db to use. Each caller words it
/// for its own action; the archive's own faults are findings, never
/// strings.
#[derive(Debug)]
pub(crate) enum StageFailure {
    /// The archive was read in full and refused: its findings (errors and
    /// repair hints) say why, [`Inspection::refused`] in one paragraph.
    Refused(Box<Inspection>),
    /// The inspection could not be carried out: the input could not be
    /// read, or the staged db could not be written.
    Inspect(snapshot::InspectError),
    /// The staging file could not be created, flushed or synced, or the
    /// free space next to it read; already worded.
    Other(anyhow::Error),
}

impl From<anyhow::Error> for StageFailure {
    fn from(e: anyhow::Error) -> Self {
        StageFailure::Other(e)
    }
}

impl StageFailure {
    /// The words of restore and recover-quorum: nothing was touched yet.
    pub(crate) fn nothing_changed(self, staging: &Path) -> anyhow::Error {
        match self {
            StageFailure::Refused(inspection) => anyhow!(
                "{} Nothing was changed.",
                inspection.refused().unwrap_or_default()
            ),
            StageFailure::Inspect(snapshot::InspectError::WriteDb(io)) => anyhow!(
                "cannot extract the snapshot's database to {}: {io}; {}. Nothing was changed.",
                staging.display(),
                explain_io(&io)
            ),
            StageFailure::Inspect(e) => anyhow!("{e}. Nothing was changed."),
            StageFailure::Other(e) => e,
        }
    }
}

impl Charm<'_> {
    pub(crate) fn restore_action(&self) -> Result<()> {
        let params = self
            .tools
            .action_get()
            .context("cannot read the action's parameters")?;
        let target = param_str(&params, "target", DEFAULT_TARGET)?;
        let skip_backup = param_bool(&params, "skip-backup", false)?;
        let adopt_pki = param_bool(&params, "adopt-pki", false)?;
        let _lock = OpLock::try_acquire(&self.root, "the restore action")?;
        self.recover_interrupted()?;

        // 1. Guards and checks. Nothing is touched until they all pass.
        let backup_id = param_str(&params, "backup-id", "")?;
        let source = if backup_id.is_empty() {
            Source::Resource(self.attached_snapshot()?.ok_or_else(|| {
                anyhow!(
                    "no snapshot is attached to {app}. Attach one, then run restore again: juju attach-resource {app} snapshot=./etcd-snapshot-YYYY-MM-DD-HH.MM.SS.tar.gz (or restore a backup from the store: juju run {unit} restore backup-id=ID, IDs from list-backups)",
                    app = self.ctx.app_name,
                    unit = self.ctx.unit_name
                )
            })?)
        } else {
            let cfg = self.backup_config()?;
            let store = self.open_store(&cfg).map_err(|e| {
                anyhow!("cannot open the backup store for backup-id={backup_id}: {e:#}. Nothing was changed.")
            })?;
            let listed = self.find_backup(&cfg, &store, &backup_id)?;
            let resource_ignored = self.attached_snapshot().ok().flatten().is_some();
            Source::Store {
                store,
                listed: Box::new(listed),
                resource_ignored,
            }
        };
        self.guard_single_unit_peers()?;
        let state = self.load_state()?;
        let applied = state.applied.clone().ok_or_else(|| {
            anyhow!(
                "etcd has not started on {} yet; wait until `juju status` shows it active, then run restore again",
                self.ctx.unit_name
            )
        })?;
        let binaries = state
            .binaries
            .clone()
            .ok_or_else(|| anyhow!("etcd is not installed on this unit yet"))?;
        let mut client = self.connect()?;
        let before = self.guard_single_member(&mut client)?;

        let staging = staging_dir(self);
        remove_dir_if_exists(&staging)
            .with_context(|| format!("cannot clear {}", staging.display()))?;
        fsutil::create_dir_mode(&staging, 0o700)
            .with_context(|| format!("cannot create {}", staging.display()))?;
        let opts = Options {
            target,
            skip_backup,
            adopt_pki,
        };
        let result = self.restore_from(
            &source,
            &staging,
            &opts,
            &applied.peer_url,
            &binaries,
            &mut client,
            &before,
        );
        if let Err(e) = remove_dir_if_exists(&staging) {
            tracing::warn!("cannot remove {}: {e}", staging.display());
        }
        result
    }

    /// The attached `snapshot` resource, or `None` when nothing (or Juju's
    /// zero-byte placeholder) is attached.
    fn attached_snapshot(&self) -> Result<Option<Attached>> {
        let Some(host) = self
            .tools
            .resource_get("snapshot")
            .context("cannot ask Juju for the snapshot resource")?
        else {
            return Ok(None);
        };
        if !host.is_absolute() {
            bail!("resource-get returned a relative path {host:?}");
        }
        let meta = match fs::metadata(&host) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", host.display())),
        };
        if !meta.is_file() || meta.len() == 0 {
            return Ok(None);
        }
        Ok(Some(Attached {
            host,
            size: meta.len(),
        }))
    }

    /// The snapshot resource is attached and has not been restored yet.
    /// Only a single-unit application can restore, so only there is it
    /// offered.
    pub(crate) fn snapshot_waiting(&self) -> Result<Option<u64>> {
        if self.peer_units()?.next().is_some() {
            return Ok(None);
        }
        let Some(a) = self.attached_snapshot()? else {
            return Ok(None);
        };
        let state = self.load_state()?;
        let Some(restored) = &state.restored else {
            return Ok(Some(a.size));
        };
        let fp = quick_fingerprint(&a.host, a.size)
            .with_context(|| format!("cannot read {}", a.host.display()))?;
        Ok((restored.fingerprint != fp).then_some(a.size))
    }

    /// The other units of this application, as the peer relation lists
    /// them.
    fn peer_units(&self) -> Result<std::vec::IntoIter<String>> {
        let mut peers = Vec::new();
        for rid in self
            .tools
            .relation_ids(PEER)
            .context("cannot list the peer relation")?
        {
            peers.extend(
                self.tools
                    .relation_list(&rid)
                    .with_context(|| format!("cannot list the units of {rid}"))?,
            );
        }
        Ok(peers.into_iter())
    }

    fn guard_single_unit_peers(&self) -> Result<()> {
        let peers: Vec<String> = self.peer_units()?.collect();
        if !peers.is_empty() {
            bail!(
                "restore runs only on a single-unit application, and {app} has {n} units ({unit} and {others}). Restoring here would break the cluster. Deploy a new single-unit application with the snapshot instead: juju deploy etcd new-{app} --resource snapshot=./SNAPSHOT.tar.gz, then juju run-action new-{app}/0 restore. Nothing was changed.",
                app = self.ctx.app_name,
                n = peers.len() + 1,
                unit = self.ctx.unit_name,
                others = peers.join(", ")
            );
        }
        Ok(())
    }

    fn guard_single_member(&self, client: &mut EtcdClient) -> Result<Before> {
        let members = client
            .members()
            .context("cannot list etcd's members to check that this unit is alone")?;
        if members.len() != 1 {
            let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
            bail!(
                "restore runs only on a single-member cluster, and this etcd has {} members ({}). Deploy a new single-unit application with the snapshot instead: juju deploy etcd new-{app} --resource snapshot=./SNAPSHOT.tar.gz, then juju run-action new-{app}/0 restore. Nothing was changed.",
                members.len(),
                names.join(", "),
                app = self.ctx.app_name
            );
        }
        let status = client.status().context("cannot read etcd's status")?;
        Ok(Before {
            cluster_id: status.cluster_id,
            db_size: u64::try_from(status.db_size).unwrap_or(0),
        })
    }

    /// Verifies the archive in full while extracting its db to `staging`.
    fn inspect_attached(
        &self,
        attached: &Attached,
        staging: &Path,
    ) -> Result<(Inspection, PathBuf)> {
        self.log_progress(&format!(
            "Verifying the attached snapshot ({})",
            human_size(attached.size)
        ));
        let input = File::open(&attached.host).with_context(|| {
            format!(
                "cannot open the snapshot resource {}",
                attached.host.display()
            )
        })?;
        self.stage_verified(
            BufReader::with_capacity(snapshot::BUF_SIZE, input),
            attached.size,
            staging,
            Durability::Synced,
        )
        .map_err(|f| f.nothing_changed(staging))
    }

    /// Verifies an archive in full as it streams in (a file, or a download
    /// from a backup store: read once, never copied whole) while its db is
    /// written to `staging/snapshot.db` (0600; synced when `durability`
    /// says so), bounded by the free space there. `size` is for progress.
    /// What went wrong is a [`StageFailure`] for the caller to word:
    /// restore and recover-quorum with [`StageFailure::nothing_changed`],
    /// verify-backup in its own words.
    pub(crate) fn stage_verified(
        &self,
        input: impl std::io::Read,
        size: u64,
        staging: &Path,
        durability: Durability,
    ) -> Result<(Inspection, PathBuf), StageFailure> {
        let db_path = staging.join("snapshot.db");
        let db_file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&db_path)
            .with_context(|| format!("cannot create {}", db_path.display()))?;
        let mut db_out = BufWriter::with_capacity(snapshot::BUF_SIZE, &db_file);
        let inspection = snapshot::inspect(
            input,
            Some(&mut db_out),
            staging_limits(staging)?,
            &mut self.quarter_log("Verified ", size.max(1)),
        )
        .map_err(StageFailure::Inspect)?;
        db_out.flush().map_err(|e| {
            anyhow!(
                "cannot write {}: {e}; {}",
                db_path.display(),
                explain_io(&e)
            )
        })?;
        drop(db_out);
        if durability == Durability::Synced {
            db_file
                .sync_all()
                .with_context(|| format!("cannot sync {}", db_path.display()))?;
        }
        if inspection.refused().is_some() {
            return Err(StageFailure::Refused(Box::new(inspection)));
        }
        Ok((inspection, db_path))
    }

    /// Refuses, before anything is touched, when the disks cannot hold the
    /// restored data and the backup.
    pub(crate) fn check_space(
        &self,
        data_parent: &Path,
        db_size: u64,
        backup: Option<(&Path, u64)>,
    ) -> Result<()> {
        let need_data = db_size + HEADROOM;
        let free_data = fs2::available_space(data_parent)
            .with_context(|| format!("cannot read the free space of {}", data_parent.display()))?;
        let mut need_on_data_fs = need_data;
        if let Some((dir, backup_size)) = backup {
            let free_target = fs2::available_space(dir)
                .with_context(|| format!("cannot read the free space of {}", dir.display()))?;
            let same_fs = same_filesystem(dir, data_parent);
            if same_fs {
                need_on_data_fs += backup_size;
            } else if free_target < backup_size + (16 << 20) {
                bail!(
                    "the backup of the current data needs up to {} in {}, which has {} free. Free space there, pass another target=, or pass skip-backup=true. Nothing was changed.",
                    human_size(backup_size + (16 << 20)),
                    dir.display(),
                    human_size(free_target)
                );
            }
        }
        if free_data < need_on_data_fs {
            bail!(
                "the restore needs {} free next to etcd's data ({}), which has {} free. Free space there{}. Nothing was changed.",
                human_size(need_on_data_fs),
                data_parent.display(),
                human_size(free_data),
                if backup.is_some() {
                    ", pass another target=, or pass skip-backup=true"
                } else {
                    ""
                }
            );
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn restore_from(
        &self,
        source: &Source,
        staging: &Path,
        opts: &Options,
        peer_url: &str,
        binaries: &crate::etcd::Binaries,
        client: &mut EtcdClient,
        before: &Before,
    ) -> Result<()> {
        let target = opts.target.as_str();
        let skip_backup = opts.skip_backup;
        let (inspection, db_path) = match source {
            Source::Resource(attached) => self.inspect_attached(attached, staging)?,
            Source::Store { store, listed, .. } => {
                let sc = &listed.sidecar;
                self.log_progress(&format!(
                    "Verifying {} ({}) as it downloads",
                    listed.location,
                    human_size(sc.size)
                ));
                let input = store.open(&sc.name).map_err(|e| {
                    anyhow!("cannot read {}: {e}. Nothing was changed.", listed.location)
                })?;
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
                        "{} has sha256 {} where its sidecar records {}: the stored archive changed after it was written. Nothing was changed.",
                        listed.location,
                        inspection.input_sha256,
                        sc.sha256
                    );
                }
                (inspection, db_path)
            }
        };
        let adopted_ca = if opts.adopt_pki {
            Some(self.check_adoptable(&inspection)?)
        } else {
            None
        };
        let tool = RestoreTool::detect(binaries).context("cannot run etcd's restore tool")?;
        self.log_progress(&format!(
            "The snapshot is a {} ({} db, sha256 {}) and passed every check",
            kind_words(inspection.kind),
            human_size(inspection.db_size),
            inspection.input_sha256
        ));

        let data_dir = self.root.at(DATA_DIR);
        let data_parent = data_dir
            .parent()
            .ok_or_else(|| anyhow!("the data directory has no parent"))?
            .to_path_buf();
        let backup_dir = if skip_backup {
            None
        } else {
            Some(self.target_dir(target)?)
        };
        self.check_space(
            &data_parent,
            inspection.db_size,
            backup_dir.as_deref().map(|d| (d, before.db_size)),
        )?;
        failpoint::hit("restore-after-verify")?;

        // 2. Save the current data, while etcd still serves it.
        let backup = match &backup_dir {
            Some(dir) => {
                self.log_progress(&format!("Saving the current data to {target}"));
                let taken = self
                    .take_snapshot(client, dir, target, Purpose::Backup, None)
                    .context("cannot save the current data before the restore (nothing was changed; pass skip-backup=true to restore without a backup)")?;
                failpoint::hit("restore-after-backup")?;
                Some(taken)
            }
            None => {
                self.log_progress("skip-backup=true: the current data is not saved");
                None
            }
        };

        // 3. Replace the data. From here on, failures roll back.
        let journal = Journal::replacing(&data_dir, &inspection.input_sha256, None);
        remove_dir_if_exists(&journal.fresh)
            .with_context(|| format!("cannot clear {}", journal.fresh.display()))?;
        if journal.aside.exists() {
            bail!(
                "{} exists from an earlier restore; move it away (it holds etcd data from before that restore), then run restore again. Nothing was changed.",
                journal.aside.display()
            );
        }
        let jpath = journal_path(self);
        journal.save(&jpath)?;
        // A kill leaves this status behind, so it says what happens then.
        self.tools
            .status_set(
                &Status::maintenance(format!(
                    "Restoring the snapshot {}; etcd is stopped meanwhile. If this status stays, the restore was interrupted: the next hook rolls it back to the old data, or run: juju run-action {} restore",
                    &inspection.input_sha256[..12.min(inspection.input_sha256.len())],
                    self.ctx.unit_name
                )),
                false,
            )
            .context("cannot set the unit's status")?;

        let token = format!("etcd-restore-{}", random_hex(8)?);
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
            "restore",
            |reason| format!(
                "the restore failed and was rolled back; etcd serves the data it had before (cluster {:x}). Reason: {reason}",
                before.cluster_id
            ),
            |reason, rb| format!(
                "the restore failed ({reason}) and the rollback failed too ({rb:#}); the old data is in {}. Run: juju run {} health, and see the unit's log",
                journal.aside.display(),
                self.ctx.unit_name
            ),
        )?;

        // 4. The new data is proven; drop the old.
        let mut done = journal.clone();
        done.phase = Phase::Verified;
        done.save(&jpath)?;
        self.tools
            .status_set(
                &Status::maintenance(format!(
                    "The snapshot is restored and etcd serves it (cluster {:x}); removing the old data. If this status stays, the next hook finishes the clean-up",
                    after.cluster_id
                )),
                false,
            )
            .context("cannot set the unit's status")?;
        failpoint::hit("restore-after-verified")?;
        self.finish_verified(&done, &jpath);
        let pki_result = match &adopted_ca {
            Some(ca) => Some(self.adopt_ca(ca).map_err(|e| {
                anyhow!(
                    "the data was restored (revision {}, {} keys, cluster {:x}) but the CA was not adopted: {e:#}. The application keeps its own CA; run restore again with adopt-pki=true to retry",
                    after.revision,
                    after.keys,
                    after.cluster_id
                )
            })?),
            None => None,
        };

        if let Source::Resource(attached) = source {
            let mut state = self.load_state()?;
            state.restored = Some(RestoredSnapshot {
                fingerprint: quick_fingerprint(&attached.host, attached.size)
                    .with_context(|| format!("cannot read {}", attached.host.display()))?,
                sha256: inspection.input_sha256.clone(),
            });
            self.save_state(&state)?;
        }

        let mut r = vec![
            ("restore.revision", after.revision.to_string()),
            ("restore.keys", after.keys.to_string()),
            ("restore.cluster-id", format!("{:x}", after.cluster_id)),
            (
                "restore.previous-cluster-id",
                format!("{:x}", before.cluster_id),
            ),
            ("restore.source.from", source.describe()),
            ("restore.source.kind", inspection.kind.as_str().to_string()),
            ("restore.source.sha256", inspection.input_sha256.clone()),
            ("restore.source.size", inspection.input_size.to_string()),
            ("restore.version", after.version.clone()),
            (
                "restore.tool",
                report
                    .tool
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            ),
            (
                "restore.skip-hash-check",
                inspection.needs_skip_hash_check.to_string(),
            ),
        ];
        if report.bumped_by > 0 {
            r.push(("restore.bumped-revision-by", report.bumped_by.to_string()));
            r.push((
                "restore.marked-compacted",
                report.marked_compacted.to_string(),
            ));
            r.push((
                "restore.revision-bump",
                format!(
                    "{}{}",
                    report.bumped_by,
                    if report.marked_compacted {
                        " (marked compacted)"
                    } else {
                        ""
                    }
                ),
            ));
        } else {
            r.push(("restore.revision-bump", bump_unavailable(&after.version)));
        }
        if let Some(meta) = &inspection.source_meta {
            if let Some(v) = &meta.etcd_version {
                r.push(("restore.source.etcd-version", v.clone()));
            }
            if let Some(t) = meta.timestamp {
                r.push(("restore.source.timestamp", t.to_string()));
                if let Some(at) = snapshot::rfc3339(t) {
                    r.push(("restore.source.created", at));
                }
            }
        }
        if let Some(note) = &after.note {
            r.push(("restore.note", note.clone()));
        }
        if after.hashkv_matched {
            r.push(("restore.hashkv-matched", "true".to_string()));
        }
        if let Some(fp) = pki_result {
            r.push(("restore.pki", "adopted".to_string()));
            r.push(("restore.ca-fingerprint", fp));
        }
        match &backup {
            Some(b) => r.extend([
                ("backup.path", b.unit_path.clone()),
                ("backup.sha256", b.sha256.clone()),
                ("backup.size", human_size(b.size)),
                (
                    "backup.copy.cmd",
                    format!("juju scp {}:{} .", self.ctx.unit_name, b.unit_path),
                ),
                ("backup.copy.owner", b.owner.clone()),
            ]),
            None => r.push(("backup.skipped", "true".to_string())),
        }
        self.set_results(r)?;
        let status = if report.bumped_by > 0 {
            super::hooks::healthy_message(1)
        } else {
            format!(
                "{}; {}",
                super::hooks::healthy_message(1),
                restart_watchers_note(&after.version)
            )
        };
        self.tools
            .status_set(&Status::active(status), false)
            .context("cannot set the unit's status")?;
        self.log_progress(&format!(
            "Restored revision {} with {} keys; the cluster ID is now {:x}",
            after.revision, after.keys, after.cluster_id
        ));
        Ok(())
    }

    /// Stops etcd, restores into a fresh directory, swaps it in, starts
    /// etcd and checks the result. Any error leaves the journal for
    /// [`Self::roll_back`].
    fn replace_and_verify(&self, swap: &Swap<'_>) -> Result<(RestoreReport, After)> {
        let Swap {
            journal,
            tool,
            db_path,
            peer_url,
            token,
            inspection,
            before,
            jpath: _,
        } = *swap;
        // etcd's tool writes only into the fresh directory, so it runs
        // while the old etcd stops: the two waits overlap.
        self.log_progress(&format!(
            "Restoring the snapshot with {} while etcd stops",
            tool.path.display()
        ));
        let pending = tool
            .start(&RestoreRequest {
                db: db_path.to_path_buf(),
                data_dir: journal.fresh.clone(),
                name: self.ctx.member_name(),
                peer_url: peer_url.to_string(),
                token: token.to_string(),
                // The charm checked etcd's sha256 over exactly the bytes it
                // staged (or the db has none): a second pass by the tool
                // would only double the time spent hashing.
                skip_hash_check: inspection.needs_skip_hash_check || inspection.has_etcd_hash,
                bump_revision: true,
            })
            .context("cannot start etcd's snapshot restore")?;
        // A kill here must take the tool with it (PR_SET_PDEATHSIG).
        failpoint::hit("restore-mid-tool")?;
        let stopped = self.stop_etcd();
        let restored = pending.wait().context("etcd's snapshot restore failed");
        stopped?;
        failpoint::hit("restore-after-stop")?;
        let report = restored?;
        fs::set_permissions(
            &journal.fresh,
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .with_context(|| format!("cannot set the mode of {}", journal.fresh.display()))?;
        failpoint::hit("restore-after-restore")?;

        fs::rename(&journal.data_dir, &journal.aside).with_context(|| {
            format!(
                "cannot move {} aside to {}",
                journal.data_dir.display(),
                journal.aside.display()
            )
        })?;
        failpoint::hit("restore-after-move-aside")?;
        fs::rename(&journal.fresh, &journal.data_dir).with_context(|| {
            format!(
                "cannot move {} to {}",
                journal.fresh.display(),
                journal.data_dir.display()
            )
        })?;
        if let Some(parent) = journal.data_dir.parent() {
            fsutil::sync_dir(parent)
                .with_context(|| format!("cannot sync {}", parent.display()))?;
        }
        if failpoint::hit("restore-after-swap")? {
            // `corrupt`: cut the restored db short so etcd cannot open it,
            // as a bad disk or a bad restore would.
            let db = db_in(&journal.data_dir);
            OpenOptions::new()
                .write(true)
                .open(&db)
                .and_then(|f| f.set_len(4096))
                .with_context(|| format!("failure point: cannot truncate {}", db.display()))?;
        }

        // The staged db is no longer needed, and unlinking a freshly written
        // GiB takes a second or more: it goes while etcd starts.
        let after = std::thread::scope(|s| {
            s.spawn(|| {
                if let Err(e) = fs::remove_file(db_path) {
                    tracing::warn!("cannot remove {}: {e}", db_path.display());
                }
            });
            self.log_progress("Starting etcd on the restored data");
            self.service
                .start()
                .context("etcd did not start on the restored data")?;
            self.wait_serving(START_TIMEOUT)
                .context("etcd did not become healthy on the restored data")?;
            failpoint::hit("restore-after-start")?;
            self.check_restored(inspection, &report, before)
        })?;
        Ok((report, after))
    }

    /// Stops etcd and waits until the service is inactive.
    fn stop_etcd(&self) -> Result<()> {
        self.log_progress("Stopping etcd");
        self.service.stop().context("systemctl stop etcd failed")?;
        if !self
            .service
            .wait_inactive(Duration::from_secs(30))
            .context("systemctl is-active failed")?
        {
            bail!("etcd did not stop within 30 s");
        }
        Ok(())
    }

    /// Waits until this unit's etcd is healthy; fails at once when the
    /// service exits instead.
    pub(crate) fn wait_serving(&self, within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        let mut last = String::new();
        loop {
            if !self
                .service
                .is_active()
                .context("systemctl is-active failed")?
            {
                bail!(
                    "etcd exited; see its log (journalctl -u etcd){}",
                    if last.is_empty() {
                        String::new()
                    } else {
                        format!("; last check: {last}")
                    }
                );
            }
            match self
                .connect()
                .and_then(|mut c| c.health().map_err(anyhow::Error::from))
            {
                Ok(h) if h.is_healthy() => return Ok(()),
                Ok(h) => last = format!("alarms {:?}, leader {:x}", h.alarms, h.status.leader),
                Err(e) => last = format!("{e:#}"),
            }
            if Instant::now() >= deadline {
                bail!("etcd was not healthy within {} s: {last}", within.as_secs());
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Checks the running etcd against what was restored.
    fn check_restored(
        &self,
        inspection: &Inspection,
        report: &RestoreReport,
        before: &Before,
    ) -> Result<After> {
        let mut client = self.connect()?;
        let status = client.status().context("cannot read etcd's status")?;
        let members = client.members().context("cannot list etcd's members")?;
        if members.len() != 1 {
            bail!(
                "the restored cluster has {} members instead of 1",
                members.len()
            );
        }
        if status.cluster_id == before.cluster_id {
            bail!(
                "the restored cluster kept the old cluster ID {:x}",
                status.cluster_id
            );
        }
        let keys = client
            .key_count(0)
            .context("cannot count the restored keys")?;
        let mut note = None;
        let mut hashkv_matched = false;
        if let Some(m) = &inspection.manifest {
            let bump = i64::try_from(report.bumped_by).unwrap_or(0);
            let base = status.revision - bump;
            if base < m.revision {
                bail!(
                    "the restored data is at revision {base}, older than the revision {} the archive's manifest records",
                    m.revision
                );
            }
            if base == m.revision {
                if keys != m.key_count {
                    bail!(
                        "the restored data holds {keys} keys where the archive's manifest records {}",
                        m.key_count
                    );
                }
            } else if report.bumped_by == 0 {
                // etcd took writes between the manifest's count and the
                // snapshot; check the count at the manifest's revision.
                match client.key_count(m.revision) {
                    Ok(k) if k == m.key_count => {}
                    Ok(k) => bail!(
                        "the restored data holds {k} keys at revision {} where the archive's manifest records {}",
                        m.revision,
                        m.key_count
                    ),
                    Err(e) => {
                        note = Some(format!(
                            "the snapshot was taken under writes (revision {} to {base}); the key count could not be checked at revision {}: {e}",
                            m.revision, m.revision
                        ))
                    }
                }
            } else {
                note = Some(format!(
                    "the snapshot was taken under writes (revision {} to {base}); the db was checked by its sha256",
                    m.revision
                ));
            }
            // Without a bump the restored member keeps the source's
            // revisions and compaction revision, so etcd's HashKV at the
            // manifest's revision must be the source's.
            if let (Some(want), 0) = (m.hash_kv(), report.bumped_by) {
                match client.hash_kv(m.revision, Duration::from_secs(300)) {
                    Ok(got) if got == want => hashkv_matched = true,
                    Ok(got) if got.compact_revision == want.compact_revision => bail!(
                        "the restored data does not match the source: hashkv at revision {} is {} where the source member had {}",
                        m.revision,
                        got.hash,
                        want.hash
                    ),
                    Ok(_) | Err(_) => tracing::warn!(
                        "the restored data's hashkv could not be compared at revision {} (compacted meanwhile?)",
                        m.revision
                    ),
                }
            }
        }
        Ok(After {
            revision: status.revision,
            keys,
            cluster_id: status.cluster_id,
            version: status.version,
            note,
            hashkv_matched,
        })
    }

    /// [`Self::replace_and_verify`], and on its failure [`Self::roll_back`]:
    /// the error is worded by the caller, `rolled_back(reason)` when etcd
    /// serves the old data again, `stuck(reason, rollback_error)` when the
    /// rollback failed too (also the unit's blocked status). `what` names
    /// the operation in the log.
    pub(crate) fn replace_or_roll_back(
        &self,
        swap: &Swap<'_>,
        what: &str,
        rolled_back: impl FnOnce(&str) -> String,
        stuck: impl FnOnce(&str, &anyhow::Error) -> String,
    ) -> Result<(RestoreReport, After)> {
        self.replace_and_verify(swap).or_else(|e| {
            let reason = format!("{e:#}");
            tracing::error!("{what} failed, rolling back: {reason}");
            self.roll_back_or_block(swap.journal, swap.jpath, |rb| stuck(&reason, rb))?;
            Err(anyhow!(rolled_back(&reason)))
        })
    }

    /// [`Self::roll_back`]; when it fails, `stuck(error)` becomes the
    /// unit's blocked status and the error.
    pub(crate) fn roll_back_or_block(
        &self,
        journal: &Journal,
        jpath: &Path,
        stuck: impl FnOnce(&anyhow::Error) -> String,
    ) -> Result<()> {
        self.roll_back(journal, jpath).map_err(|rb| {
            let msg = stuck(&rb);
            let _ = self.tools.status_set(&Status::blocked(msg.clone()), false);
            anyhow!(msg)
        })
    }

    /// Puts the old data back and starts etcd on it.
    pub(crate) fn roll_back(&self, journal: &Journal, jpath: &Path) -> Result<()> {
        self.log_progress("Rolling back to the data etcd had before the restore");
        self.service.stop().context("systemctl stop etcd failed")?;
        self.service
            .wait_inactive(Duration::from_secs(30))
            .context("systemctl is-active failed")?;
        if journal.aside.exists() {
            if journal.data_dir.exists() {
                let failed = sibling(&journal.data_dir, ".failed-restore");
                remove_dir_if_exists(&failed)
                    .with_context(|| format!("cannot clear {}", failed.display()))?;
                fs::rename(&journal.data_dir, &failed).with_context(|| {
                    format!("cannot move the restored data to {}", failed.display())
                })?;
                if let Err(e) = fs::remove_dir_all(&failed) {
                    tracing::warn!("cannot remove {}: {e}", failed.display());
                }
            }
            fs::rename(&journal.aside, &journal.data_dir).with_context(|| {
                format!(
                    "cannot move the old data back from {}",
                    journal.aside.display()
                )
            })?;
            if let Some(parent) = journal.data_dir.parent() {
                fsutil::sync_dir(parent)
                    .with_context(|| format!("cannot sync {}", parent.display()))?;
            }
        }
        remove_dir_if_exists(&journal.fresh)
            .with_context(|| format!("cannot remove {}", journal.fresh.display()))?;
        let state = self.load_state()?;
        if journal.keep.is_some() {
            // A recover-quorum from a backup: the old data's cluster has
            // lost quorum, so etcd cannot become healthy on it; it runs as
            // it did before.
            if state.started {
                self.service
                    .start()
                    .context("etcd did not start on the old data")?;
            }
        } else if state.started {
            self.service
                .start()
                .context("etcd did not start on the old data")?;
            self.wait_serving(START_TIMEOUT)
                .context("etcd is not healthy on the old data")?;
            self.tools
                .status_set(&Status::active(super::hooks::healthy_message(1)), false)
                .context("cannot set the unit's status")?;
        }
        fs::remove_file(jpath).with_context(|| format!("cannot remove {}", jpath.display()))?;
        Ok(())
    }

    /// Removes the old data once the new data has been verified.
    pub(crate) fn finish_verified(&self, journal: &Journal, jpath: &Path) {
        if let Some(keep) = &journal.keep {
            if journal.aside.exists() {
                if let Err(e) = fs::rename(&journal.aside, keep) {
                    tracing::warn!(
                        "cannot move the old data {} to {}: {e}",
                        journal.aside.display(),
                        keep.display()
                    );
                }
            }
        } else if let Err(e) = remove_dir_if_exists(&journal.aside) {
            tracing::warn!(
                "cannot remove the old data {}: {e}",
                journal.aside.display()
            );
        }
        if let Err(e) = remove_dir_if_exists(&journal.fresh) {
            tracing::warn!("cannot remove {}: {e}", journal.fresh.display());
        }
        if let Err(e) = fs::remove_file(jpath) {
            tracing::warn!("cannot remove {}: {e}", jpath.display());
        }
    }

    /// Finishes or undoes a restore that was interrupted (the journal is
    /// still there). The caller holds the unit's lock.
    pub(crate) fn recover_interrupted_restore(&self) -> Result<()> {
        // A staging db left by a killed restore: nobody else can be using
        // it, because the caller holds the lock.
        let staging = staging_dir(self);
        if staging.exists() {
            tracing::warn!(
                "removing {}, left by an interrupted restore",
                staging.display()
            );
            if let Err(e) = remove_dir_if_exists(&staging) {
                tracing::warn!("cannot remove {}: {e}", staging.display());
            }
        }
        let jpath = journal_path(self);
        let Some(journal) = Journal::load(&jpath)? else {
            return Ok(());
        };
        match journal.phase {
            Phase::Verified => {
                tracing::warn!("finishing the clean-up of a restore that was verified");
                self.finish_verified(&journal, &jpath);
                if journal.keep.is_some() {
                    // A recover-quorum from a backup that was killed once
                    // verified: the other units still have to be told.
                    self.announce_recovery(&[self.ctx.member_name()])?;
                }
                // The status the killed run left says a clean-up is due;
                // it is done. (A hook sets its own status after this.)
                if self.wait_serving(Duration::from_secs(10)).is_ok() {
                    self.tools
                        .status_set(&Status::active(super::hooks::healthy_message(1)), false)
                        .context("cannot set the unit's status")?;
                }
                Ok(())
            }
            Phase::Replacing => {
                tracing::warn!(
                    "a restore of {} was interrupted; rolling back to the old data",
                    journal.source_sha256
                );
                self.roll_back_or_block(&journal, &jpath, |e| {
                    format!(
                        "an interrupted restore could not be rolled back ({e:#}); the old data is in {}. See the unit's log",
                        journal.aside.display()
                    )
                })?;
                self.log_progress(
                    "An interrupted restore was rolled back: etcd serves the data it had before it",
                );
                Ok(())
            }
        }
    }
}

/// The action's parameters.
struct Options {
    target: String,
    skip_backup: bool,
    adopt_pki: bool,
}

impl Charm<'_> {
    /// `adopt-pki=true` needs an archive that carries a usable CA and a
    /// leader that can write the application's secret; checked before
    /// anything is touched.
    fn check_adoptable(&self, inspection: &Inspection) -> Result<Ca> {
        let carried = inspection.pki.as_ref().ok_or_else(|| {
            anyhow!(
                "adopt-pki=true, but this snapshot carries no CA. Take the snapshot with include-pki=true, or restore without adopt-pki. Nothing was changed."
            )
        })?;
        let cert = std::str::from_utf8(&carried.ca_cert).map_err(|_| {
            anyhow!("the CA certificate in the snapshot is not PEM text. Nothing was changed.")
        })?;
        let key = std::str::from_utf8(&carried.ca_key).map_err(|_| {
            anyhow!("the CA key in the snapshot is not PEM text. Nothing was changed.")
        })?;
        let ca = Ca::from_pem(cert, key).map_err(|e| {
            anyhow!("the CA in the snapshot is unusable ({e}). Nothing was changed.")
        })?;
        if !self.tools.is_leader().context("cannot ask is-leader")? {
            bail!("adopt-pki=true needs the leader, which owns the application's CA secret; run the restore on the leader unit. Nothing was changed.");
        }
        Ok(ca)
    }

    /// Makes `ca` the application's CA: writes it to the secret, reissues
    /// this unit's certificates, restarts etcd and waits until the charm
    /// reaches it with the new client certificate. On failure the old CA
    /// is put back the same way. Returns the adopted CA's fingerprint.
    fn adopt_ca(&self, ca: &Ca) -> Result<String> {
        self.log_progress(&format!(
            "Adopting the snapshot's CA (sha256 {})",
            ca.fingerprint_sha256()
        ));
        self.tools
            .status_set(
                &Status::maintenance(format!(
                    "Adopting the snapshot's CA (sha256 {}). If this status stays, the adoption was interrupted: the next hook reissues this unit's certificates from the CA the application then holds, or run: juju run-action {} restore adopt-pki=true",
                    ca.fingerprint_sha256(),
                    self.ctx.unit_name
                )),
                false,
            )
            .context("cannot set the unit's status")?;
        let old = self.replace_ca(ca)?;
        let apply = || -> Result<()> {
            let state = self.load_state()?;
            if let Err(status) = self.member_config(&state)? {
                bail!("{}", status.message);
            }
            self.service
                .restart()
                .context("systemctl restart etcd failed")?;
            self.wait_serving(START_TIMEOUT)
        };
        // Anything that fails once the CA is replaced (the failure point
        // included) puts the old CA back, in Juju and on the unit.
        match failpoint::hit("restore-mid-adopt-pki")
            .map_err(anyhow::Error::from)
            .and_then(|_| apply())
        {
            Ok(()) => Ok(ca.fingerprint_sha256()),
            Err(e) => {
                tracing::error!("adopting the CA failed, putting the old one back: {e:#}");
                self.replace_ca(&old)?;
                apply().context("the old CA could not be put back in service")?;
                Err(e)
            }
        }
    }
}

/// The restored etcd, as checked.
pub(crate) struct After {
    pub(crate) revision: i64,
    pub(crate) keys: u64,
    pub(crate) cluster_id: u64,
    pub(crate) version: String,
    pub(crate) note: Option<String>,
    /// etcd's HashKV at the manifest's revision equals the source's.
    hashkv_matched: bool,
}

fn kind_words(k: Kind) -> &'static str {
    match k {
        Kind::Charm => "snapshot archive made by this charm",
        Kind::LegacyCharm => "archive made by the original etcd charm (a raw db copy, restored with --skip-hash-check)",
        Kind::EtcdctlSnapshot => "plain etcdctl snapshot file (as etcdctl, charmed-etcd, k3s/RKE2 and Gardener write them)",
        Kind::GzipSnapshot => "gzip-compressed etcdctl snapshot file (kops etcd-manager's etcd.backup.gz, Gardener's Full-…gz)",
        Kind::ZlibSnapshot => "zlib-compressed etcdctl snapshot file (Gardener's Full-….zlib)",
        Kind::LzwSnapshot => "LZW-compressed etcdctl snapshot file (Gardener's Full-….Z)",
        Kind::ZipSnapshot => "zip holding one etcdctl snapshot file (k3s/RKE2)",
        Kind::KopsBackup => "tar.gz of a kops etcd-manager backup directory",
        Kind::GardenerIncremental => "Gardener incremental snapshot",
        Kind::LegacyV2 => "v2 backup made by the original etcd charm",
        Kind::Unknown => "file of unknown kind",
    }
}

/// The room a restore keeps free beyond what it writes.
pub(crate) fn restore_headroom() -> u64 {
    HEADROOM
}

/// The limits for a db staged in `staging`: no decompressor may write
/// more than the free space there (less the headroom a restore keeps), so
/// a bomb is refused before the disk fills.
pub(crate) fn staging_limits(staging: &Path) -> Result<Limits> {
    let free = fs2::available_space(staging)
        .with_context(|| format!("cannot read the free space of {}", staging.display()))?;
    if free <= HEADROOM {
        bail!(
            "only {} is free on the disk of {}, and unpacking a snapshot needs room for its database plus {} to spare: free some space and run the action again. Nothing was changed.",
            human_size(free),
            staging.display(),
            human_size(HEADROOM)
        );
    }
    let default = Limits::default();
    Ok(Limits {
        max_db_size: default.max_db_size.min(free.saturating_sub(HEADROOM)),
        ..default
    })
}

/// What the results and status say when etcd's restore tool cannot bump
/// the revision.
pub(crate) fn bump_unavailable(version: &str) -> String {
    format!("unavailable with etcd {version}")
}

/// The status line after a restore that could not bump the revision.
pub(crate) fn restart_watchers_note(version: &str) -> String {
    format!(
        "revision not bumped (etcd {version} cannot): restart watchers such as kube-apiserver; etcd 3.4.27+, 3.5.10+ and 3.6 bump it"
    )
}

fn same_filesystem(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev(),
        _ => true,
    }
}
