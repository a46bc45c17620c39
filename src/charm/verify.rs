//! Proving that a backup restores: [`Charm::verify_archive`] restores any
//! accepted archive into a scratch etcd (its own directory, process and
//! loopback ports; see `etcd::scratch`) and checks what it serves against
//! the archive's manifest: the revision, the key count at that revision,
//! and etcd's `HashKV` at that revision against the source member's. The
//! unit's etcd is never touched and keeps serving. The `verify-backup`
//! action runs it on an archive already on the unit (`path=`), or on a
//! backup in the configured store (`backup-id=ID|latest`), streamed
//! straight into the check and then marked in its sidecar
//! ([`Charm::verify_stored`], also used by the backup timer).
//!
//! Everything the check writes lives under
//! `/var/lib/etcd-charm/verify-scratch/` (0700) and is removed when it
//! ends, on every path (the scratch member is killed on drop).

use std::fs::{self, File};
use std::io::{self, BufReader};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _, Result};

use super::lock::OpLock;
use super::restore::{remove_dir_if_exists, restore_headroom, Durability, StageFailure};
use super::snapshot::{explain_io, human_size, param_str};
use super::Charm;
use crate::etcd::paths::STATE_FILE;
use crate::etcd::restore::RestoreTool;
use crate::etcd::scratch::{ScratchError, ScratchEtcd, ScratchSpec};
use crate::fsutil;
use crate::snapshot::{self, HashKv, Kind};
use crate::store::{BackupStore, Sidecar, VerifyMark};

/// How long the scratch member may take to serve, plus a second per
/// 32 MiB of db (it loads the db and replays nothing).
const SCRATCH_START: Duration = Duration::from_secs(60);
const HASHKV_TIMEOUT: Duration = Duration::from_secs(300);

/// What a verification proved.
#[derive(Debug, Clone)]
pub(crate) struct Verified {
    pub kind: Kind,
    pub input_sha256: String,
    pub input_size: u64,
    pub db_size: u64,
    /// The revision the scratch member serves.
    pub revision: i64,
    /// The revision the checks were made at: the manifest's, else the
    /// served one.
    pub checked_at: i64,
    pub keys: u64,
    /// `HashKV` at `checked_at`, as the scratch member computed it (none
    /// when it cannot be had there: the history is compacted up to it).
    pub hashkv: Option<HashKv>,
    /// The manifest recorded a `HashKV` and it matched.
    pub hashkv_matched: bool,
    /// Said when something could not be checked (no manifest, no hashkv).
    pub notes: Vec<String>,
    /// The etcd version that served the scratch copy.
    pub version: String,
}

/// Removes a directory when dropped.
struct DirGuard(PathBuf);

impl Drop for DirGuard {
    fn drop(&mut self) {
        match fs::remove_dir_all(&self.0) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!("cannot remove {}: {e}", self.0.display()),
        }
    }
}

/// Waits for a background unlink when dropped, so that the directory it
/// works in is removed only after it.
struct Unlink(Option<std::thread::JoinHandle<()>>);

impl Drop for Unlink {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            let _ = h.join();
        }
    }
}

fn verify_dir(charm: &Charm<'_>) -> PathBuf {
    charm.root.at(STATE_FILE).with_file_name("verify-scratch")
}

impl Charm<'_> {
    pub(crate) fn verify_backup_action(&self) -> Result<()> {
        let params = self
            .tools
            .action_get()
            .context("cannot read the action's parameters")?;
        let backup_id = param_str(&params, "backup-id", "")?;
        let path = param_str(&params, "path", "")?;
        if !backup_id.is_empty() {
            if !path.is_empty() {
                bail!("give either path= or backup-id=, not both");
            }
            return self.verify_stored_action(&backup_id);
        }
        if path.is_empty() {
            bail!(
                "say which archive to verify: juju run {} verify-backup path=/home/ubuntu/etcd-snapshots/etcd-snapshot-….tar.gz",
                self.ctx.unit_name
            );
        }
        if !path.starts_with('/') {
            bail!("path {path:?} must be absolute, such as /home/ubuntu/etcd-snapshots/etcd-snapshot-….tar.gz");
        }
        let host = self.root.resolve(&path).map_err(|e| anyhow!("path: {e}"))?;
        let _lock = OpLock::try_acquire(&self.root, "the verify-backup action")?;
        self.recover_interrupted()?;
        let v = self.verify_archive(&host)?;
        let mut r = vec![("verify.path", path.clone())];
        r.extend(verified_results(&v));
        self.set_results(r)?;
        self.log_progress(&format!("{path} restores: {}", verified_summary(&v)));
        Ok(())
    }

    /// `verify-backup backup-id=ID|latest`: streams the backup from the
    /// configured store into the verification and records the outcome in
    /// its sidecar.
    fn verify_stored_action(&self, id: &str) -> Result<()> {
        let cfg = self.backup_config()?;
        let store = self.open_store(&cfg)?;
        let listed = self.find_backup(&cfg, &store, id)?;
        let _lock = OpLock::try_acquire(&self.root, "the verify-backup action")?;
        self.recover_interrupted()?;
        let (v, mark) = self.verify_stored(&store, &listed.sidecar);
        let v = v?;
        let mut r = vec![
            ("verify.backup-id", listed.sidecar.name.clone()),
            ("verify.location", listed.location.clone()),
            ("verify.store", store.kind().to_string()),
        ];
        match mark {
            Ok(()) => r.push(("verify.marked", "true".to_string())),
            Err(e) => r.push((
                "verify.marked",
                format!("false: the backup verified but its sidecar could not be updated: {e:#}"),
            )),
        }
        r.extend(verified_results(&v));
        self.set_results(r)?;
        self.log_progress(&format!(
            "{} restores: {}",
            listed.location,
            verified_summary(&v)
        ));
        Ok(())
    }

    /// Why a scratch restore of a `db_size` db does not fit on this unit
    /// (the staged db, the scratch member's copy and headroom), if so.
    pub(crate) fn scratch_space_problem(&self, db_size: u64) -> Option<String> {
        let dir = verify_dir(self);
        let parent = dir.parent().unwrap_or(&dir);
        let need = db_size.saturating_mul(2).saturating_add(restore_headroom());
        match fs2::available_space(parent) {
            Ok(free) if free < need => Some(format!(
                "a scratch restore needs {} free in {}, which has {}; free space there",
                human_size(need),
                parent.display(),
                human_size(free)
            )),
            Ok(_) => None,
            Err(e) => Some(format!(
                "cannot read the free space of {}: {e}",
                parent.display()
            )),
        }
    }

    /// Verifies the stored backup `sc` (streamed from `store`, read once)
    /// and records the outcome in its sidecar: `ok: true` only when it was
    /// proven. Returns the verification, and whether the mark was written.
    /// The caller holds the unit's lock.
    pub(crate) fn verify_stored(
        &self,
        store: &BackupStore,
        sc: &Sidecar,
    ) -> (Result<Verified>, Result<()>) {
        let label = store.location(&sc.name);
        // What is not the backup's fault (no room, the store unreachable)
        // fails without a mark: a mark says something about the backup.
        if let Some(why) = self.scratch_space_problem(sc.manifest.db_size) {
            return (Err(anyhow!("cannot verify {label}: {why}")), Ok(()));
        }
        let input = match store.open(&sc.name) {
            Ok(r) => r,
            Err(e) => return (Err(anyhow!("cannot read {label}: {e}")), Ok(())),
        };
        let outcome = self
            .verify_reader(
                BufReader::with_capacity(snapshot::BUF_SIZE, input),
                sc.size,
                &label,
            )
            .and_then(|v| {
                if v.input_sha256 != sc.sha256 {
                    bail!(
                        "the archive's sha256 is {} where its sidecar records {}: the stored archive changed after it was written; do not rely on it",
                        v.input_sha256,
                        sc.sha256
                    );
                }
                Ok(v)
            })
            .with_context(|| format!("{label} failed verification"));
        let at = snapshot::rfc3339(super::snapshot::now_unix()).unwrap_or_default();
        let mark = match &outcome {
            Ok(v) => VerifyMark {
                at,
                ok: true,
                result: format!("verified: {}", verified_summary(v)),
            },
            Err(e) => VerifyMark {
                at,
                ok: false,
                result: format!("failed: {e:#}"),
            },
        };
        let marked = Sidecar {
            verified: Some(mark),
            ..sc.clone()
        };
        let written = store
            .put_sidecar(&marked)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("cannot record the verification of {label}"));
        if let Err(e) = &written {
            tracing::warn!("{e:#}");
        }
        (outcome, written)
    }
}

/// One line for logs and marks.
fn verified_summary(v: &Verified) -> String {
    format!(
        "revision {}, {} keys, hashkv {}{}",
        v.checked_at,
        v.keys,
        v.hashkv
            .map_or("(not available)".to_owned(), |h| h.hash.to_string()),
        if v.hashkv_matched {
            " (as the source recorded)"
        } else {
            ""
        }
    )
}

/// The action results of a verification.
fn verified_results(v: &Verified) -> Vec<(&'static str, String)> {
    let mut r = vec![
        ("verify.result", "verified".to_string()),
        ("verify.kind", v.kind.as_str().to_string()),
        ("verify.sha256", v.input_sha256.clone()),
        ("verify.size", v.input_size.to_string()),
        ("verify.db-size", v.db_size.to_string()),
        ("verify.revision", v.revision.to_string()),
        ("verify.checked-at-revision", v.checked_at.to_string()),
        ("verify.keys", v.keys.to_string()),
        (
            "verify.hashkv-matched",
            if v.hashkv_matched {
                "true".to_string()
            } else {
                "not recorded".to_string()
            },
        ),
        ("verify.version", v.version.clone()),
    ];
    if let Some(h) = v.hashkv {
        r.push(("verify.hashkv", h.hash.to_string()));
    }
    if !v.notes.is_empty() {
        r.push(("verify.note", v.notes.join("; ")));
    }
    r
}

impl Charm<'_> {
    /// Verifies the archive at `host` (a host path) in full, restores it
    /// into a scratch etcd and checks it there. The unit's etcd is not
    /// touched. The caller holds the unit's lock.
    pub(crate) fn verify_archive(&self, host: &Path) -> Result<Verified> {
        let input = File::open(host)
            .with_context(|| format!("cannot open {}: check the path", host.display()))?;
        let size = input.metadata().map(|m| m.len()).unwrap_or(0);
        self.verify_reader(
            BufReader::with_capacity(snapshot::BUF_SIZE, input),
            size,
            &host.display().to_string(),
        )
    }

    /// [`Self::verify_archive`] for an archive that arrives as a stream
    /// (`size`: its length if known, for progress; `label`: how messages
    /// name it), such as a download from the backup store: it is read
    /// once, straight into the verification and the staged db.
    pub(crate) fn verify_reader(
        &self,
        input: impl std::io::Read,
        size: u64,
        label: &str,
    ) -> Result<Verified> {
        let state = self.load_state()?;
        let binaries = state.binaries.clone().ok_or_else(|| {
            anyhow!(
                "etcd is not installed on this unit yet; wait until `juju status` shows it active"
            )
        })?;
        let dir = verify_dir(self);
        remove_dir_if_exists(&dir).with_context(|| format!("cannot clear {}", dir.display()))?;
        fsutil::create_dir_mode(&dir, 0o700)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let _guard = DirGuard(dir.clone());

        // 1. The archive, verified in full while its db is staged.
        self.log_progress(&format!("Verifying {label} ({})", human_size(size)));
        let (inspection, db_path) = self
            .stage_verified(input, size, &dir, Durability::Unsynced)
            .map_err(|f| not_restorable(f, &dir))?;
        // 2. Room for the restored data directory next to the staged db.
        let free = fs2::available_space(&dir)
            .with_context(|| format!("cannot read the free space of {}", dir.display()))?;
        let need = inspection.db_size + restore_headroom();
        if free < need {
            bail!(
                "verifying needs {} free in {} for a scratch copy of the data, which has {}; free space there and run verify-backup again",
                human_size(need),
                dir.display(),
                human_size(free)
            );
        }

        // 3. The scratch etcd.
        let tool = RestoreTool::detect(&binaries).context("cannot run etcd's restore tool")?;
        let server_tls = self.server_tls_files();
        let client_tls = self.client_tls()?;
        let spec = ScratchSpec {
            etcd: &binaries.etcd,
            tool: &tool,
            db: &db_path,
            skip_hash_check: inspection.needs_skip_hash_check || inspection.has_etcd_hash,
            dir: dir.join("etcd"),
            tls: &server_tls,
            quota: inspection.db_size.saturating_mul(2).max(2 << 30),
        };
        let within = SCRATCH_START + Duration::from_secs(inspection.db_size >> 25);
        // The ports are picked free, but another process may take one
        // before etcd binds it: then once more, on new ports.
        let mut attempt = 0;
        let (scratch, mut client) = loop {
            attempt += 1;
            let mut scratch = ScratchEtcd::start(&spec)
                .context("the backup could not be restored into a scratch etcd")?;
            match scratch.wait_healthy(&client_tls, within) {
                Ok(c) => break (scratch, c),
                Err(e @ ScratchError::Exited { .. })
                    if attempt < 2 && e.to_string().contains("address already in use") =>
                {
                    tracing::warn!("the scratch etcd lost its port, trying other ports: {e}");
                }
                Err(e) => {
                    return Err(anyhow!(e))
                        .context("the backup was restored but etcd does not serve it")
                }
            }
        };
        // The staged db is no longer needed, and unlinking a GiB takes a
        // second: it goes while the checks run (joined before returning).
        let _unlink = Unlink(Some({
            let p = db_path.clone();
            std::thread::spawn(move || {
                if let Err(e) = fs::remove_file(&p) {
                    tracing::warn!("cannot remove {}: {e}", p.display());
                }
            })
        }));
        let status = client
            .status()
            .context("cannot read the scratch etcd's status")?;

        // 4. The checks.
        let mut notes = Vec::new();
        let (checked_at, keys, hashkv, matched) = match &inspection.manifest {
            Some(m) => {
                if status.revision < m.revision {
                    bail!(
                        "the backup restores to revision {}, older than the revision {} its manifest records",
                        status.revision,
                        m.revision
                    );
                }
                let keys = client
                    .key_count(m.revision)
                    .with_context(|| format!("cannot count the keys at revision {}", m.revision))?;
                if keys != m.key_count {
                    bail!(
                        "the backup holds {keys} keys at revision {} where its manifest records {}",
                        m.revision,
                        m.key_count
                    );
                }
                let (got, matched) = match m.hash_kv() {
                    Some(want) => {
                        let got =
                            client
                                .hash_kv(m.revision, HASHKV_TIMEOUT)
                                .with_context(|| {
                                    format!("cannot compute hashkv at revision {}", m.revision)
                                })?;
                        if got != want {
                            bail!(
                        "the backup's data does not match the source: hashkv at revision {} is {} (compaction revision {}) where the source member had {} (compaction revision {}) when the backup was taken. The db is intact by its sha256 but holds other data than the manifest describes; do not rely on this backup",
                        m.revision,
                        got.hash,
                        got.compact_revision,
                        want.hash,
                        want.compact_revision
                            );
                        }
                        (Some(got), true)
                    }
                    None => {
                        notes.push("the archive records no hashkv (made before this charm recorded it, or a compaction ran during the snapshot); revision and key count were checked".to_owned());
                        (optional_hash(&mut client, m.revision, &mut notes), false)
                    }
                };
                (m.revision, keys, got, matched)
            }
            None => {
                notes.push(format!(
                    "a {} has no manifest: it restores and serves, but there is no source revision, key count or hashkv to compare with",
                    inspection.kind.as_str()
                ));
                let keys = client
                    .key_count(0)
                    .context("cannot count the restored keys")?;
                let got = optional_hash(&mut client, status.revision, &mut notes);
                (status.revision, keys, got, false)
            }
        };
        drop(client);
        drop(scratch);
        Ok(Verified {
            kind: inspection.kind,
            input_sha256: inspection.input_sha256,
            input_size: inspection.input_size,
            db_size: inspection.db_size,
            revision: status.revision,
            checked_at,
            keys,
            hashkv,
            hashkv_matched: matched,
            notes,
            version: status.version,
        })
    }
}

/// verify-backup's words for an archive that staged no db: a refusal says
/// the backup is not restorable (and, from the store, is marked so).
fn not_restorable(failure: StageFailure, dir: &Path) -> anyhow::Error {
    match failure {
        StageFailure::Refused(inspection) => anyhow!(
            "the backup is not restorable. {}",
            inspection.refused().unwrap_or_default()
        ),
        StageFailure::Inspect(snapshot::InspectError::WriteDb(io)) => anyhow!(
            "cannot stage the backup's database in {}: {io}; {}",
            dir.display(),
            explain_io(&io)
        ),
        StageFailure::Inspect(e) => anyhow!("{e}"),
        StageFailure::Other(e) => e,
    }
}

/// `HashKV` at `revision` for the results when nothing records what it
/// should be; a failure (the history compacted up to it) is a note.
fn optional_hash(
    client: &mut crate::etcd::EtcdClient,
    revision: i64,
    notes: &mut Vec<String>,
) -> Option<HashKv> {
    match client.hash_kv(revision, HASHKV_TIMEOUT) {
        Ok(h) => Some(h),
        Err(e) => {
            notes.push(format!(
                "hashkv at revision {revision} is not available: {e}"
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A refusal as the inspection of `input` words it.
    fn refused(input: &[u8]) -> (StageFailure, String) {
        let i = snapshot::inspect(
            input,
            None,
            snapshot::Limits::default(),
            &mut snapshot::NoProgress,
        )
        .unwrap();
        let why = i.refused().expect("garbage must be refused");
        (StageFailure::Refused(Box::new(i)), why)
    }

    #[test]
    fn restore_and_verify_word_one_refusal_each_their_own_way() {
        let input = b"not a snapshot of anything at all".repeat(64);
        let dir = Path::new("/var/lib/etcd-charm/verify-scratch");
        let (f, why) = refused(&input);
        assert_eq!(
            format!("{:#}", f.nothing_changed(dir)),
            format!("{why} Nothing was changed.")
        );
        let (f, why) = refused(&input);
        assert_eq!(
            format!("{:#}", not_restorable(f, dir)),
            format!("the backup is not restorable. {why}")
        );
        assert!(why.starts_with("The snapshot ("), "{why}");
    }

    #[test]
    fn a_full_disk_while_staging_says_where_and_what_to_do() {
        let full = || {
            StageFailure::Inspect(snapshot::InspectError::WriteDb(
                io::Error::from_raw_os_error(libc::ENOSPC),
            ))
        };
        let dir = Path::new("/srv/staging");
        let restore = format!("{:#}", full().nothing_changed(dir));
        assert!(
            restore.starts_with("cannot extract the snapshot's database to /srv/staging: ")
                && restore.ends_with(
                    "; the filesystem is full: free space there or pass another target. Nothing was changed."
                ),
            "{restore}"
        );
        let verify = format!("{:#}", not_restorable(full(), dir));
        assert!(
            verify.starts_with("cannot stage the backup's database in /srv/staging: ")
                && verify
                    .ends_with("; the filesystem is full: free space there or pass another target"),
            "{verify}"
        );
        let other = || StageFailure::Other(anyhow!("cannot create /srv/staging/snapshot.db"));
        assert_eq!(
            format!("{:#}", other().nothing_changed(dir)),
            "cannot create /srv/staging/snapshot.db"
        );
        assert_eq!(
            format!("{:#}", not_restorable(other(), dir)),
            "cannot create /srv/staging/snapshot.db"
        );
    }
}
