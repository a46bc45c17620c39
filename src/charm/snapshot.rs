//! The `snapshot` action: etcd's Maintenance snapshot stream, packed in one
//! pass into `etcd-snapshot-YYYY-MM-DD-HH.MM.SS.tar.gz` in `target`.
//!
//! The archive is written as `NAME.partial` (mode 0600 from its first
//! byte), fsynced, renamed and its directory fsynced, so a file with the
//! final name is always whole. Any failure removes the partial file. The
//! same code takes the restore action's backup of the data it replaces.
//!
//! A run that is killed (`kill -9`, OOM, reboot) cannot remove its partial
//! file, so its path is first recorded in a small journal,
//! `/var/lib/etcd-charm/snapshot-partial.json`, written before the partial
//! file is created and removed once the archive has its final name. The
//! next hook or snapshot/restore action removes the orphan and the journal
//! ([`Charm::recover_interrupted_snapshot`]); the next snapshot into the same
//! directory also removes any `etcd-*.tar.gz.partial` there.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context as _, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::download::Owner;
use super::lock::OpLock;
use super::Charm;
use crate::etcd::paths::STATE_FILE;
use crate::etcd::EtcdClient;
use crate::failpoint;
use crate::fsutil;
use crate::snapshot::{self, manifest::id_hex, Manifest, ManifestFields};

/// How long one `HashKV` may take: it walks the whole keyspace.
const HASHKV_TIMEOUT: Duration = Duration::from_secs(300);

/// Where snapshots go unless the operator says otherwise (the original
/// charm's default).
pub const DEFAULT_TARGET: &str = "/home/ubuntu/etcd-snapshots";

/// An archive written and renamed into place.
#[derive(Debug, Clone)]
pub struct Taken {
    /// The path on the unit, as the operator sees it.
    pub unit_path: String,
    pub sha256: String,
    pub size: u64,
    pub manifest: Manifest,
    /// Who may copy the file off (`copy.owner`): the unit's `ubuntu` user,
    /// or root with the way to fetch it anyway.
    pub owner: String,
}

/// Sizes as `du -h` prints them (the seed shows `size: 68K`): powers of
/// 1024, rounded up, one decimal below 10.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["K", "M", "G", "T", "P", "E"];
    if bytes < 1024 {
        return bytes.to_string();
    }
    let mut unit = 0;
    let mut div: u64 = 1024;
    while unit + 1 < UNITS.len() && bytes >= div.saturating_mul(1024) {
        div = div.saturating_mul(1024);
        unit += 1;
    }
    // Tenths, rounded up.
    let tenths = (u128::from(bytes) * 10).div_ceil(u128::from(div));
    if tenths < 100 {
        format!("{}.{}{}", tenths / 10, tenths % 10, UNITS[unit])
    } else {
        let whole = u128::from(bytes).div_ceil(u128::from(div));
        format!("{whole}{}", UNITS[unit])
    }
}

/// Now, as Unix seconds.
pub(crate) fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Reads a string parameter, or its default.
pub(crate) fn param_str(
    params: &serde_json::Map<String, Value>,
    key: &str,
    default: &str,
) -> Result<String> {
    match params.get(key) {
        None | Some(Value::Null) => Ok(default.to_string()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(v) => bail!("parameter {key} must be a string, got {v}"),
    }
}

/// Reads a boolean parameter, or its default.
pub(crate) fn param_bool(
    params: &serde_json::Map<String, Value>,
    key: &str,
    default: bool,
) -> Result<bool> {
    match params.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s == "true" || s == "false" => Ok(s == "true"),
        Some(v) => bail!("parameter {key} must be true or false, got {v}"),
    }
}

/// Says whether an IO error means the disk is full, for the message.
pub(crate) fn explain_io(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => {
            "the filesystem is full: free space there or pass another target"
        }
        Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::EROFS) => {
            "the directory is not writable: fix its permissions or pass another target"
        }
        _ => "check the directory and the disk, then run the action again",
    }
}

/// Removes leftovers of killed runs: `etcd-*.tar.gz.partial` files. No
/// live writer can own one, because the caller holds the unit's lock.
fn remove_stale_partials(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("etcd-") && name.ends_with(".tar.gz.partial") {
            match fs::remove_file(e.path()) {
                Ok(()) => tracing::warn!("removed {name}, left by an interrupted run"),
                Err(err) => tracing::warn!("cannot remove the stale {name}: {err}"),
            }
        }
    }
}

/// What an archive is for: its file name prefix and its failure points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// The snapshot action's archive, `etcd-snapshot-….tar.gz`.
    Snapshot,
    /// The restore action's backup of the data it replaces,
    /// `etcd-backup-….tar.gz`.
    Backup,
}

/// The steps of [`Charm::take_snapshot`] that have a failure point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// About half of the db has been read from etcd into the partial file.
    MidStream,
    BeforeSync,
    BeforeRename,
    /// The archive has its final name and its directory is synced.
    AfterRename,
}

impl Purpose {
    fn prefix(self) -> &'static str {
        match self {
            Purpose::Snapshot => "etcd-snapshot",
            Purpose::Backup => "etcd-backup",
        }
    }

    /// The failure point of `step`, if this purpose has one there. The
    /// backup shares the snapshot's code, so only its middle is a point of
    /// its own (`restore-after-backup` is in the restore action).
    fn point(self, step: Step) -> Option<&'static str> {
        match (self, step) {
            (Purpose::Snapshot, Step::MidStream) => Some("snapshot-mid-stream"),
            (Purpose::Snapshot, Step::BeforeSync) => Some("snapshot-before-sync"),
            (Purpose::Snapshot, Step::BeforeRename) => Some("snapshot-before-rename"),
            (Purpose::Snapshot, Step::AfterRename) => Some("snapshot-after-rename"),
            (Purpose::Backup, Step::MidStream) => Some("restore-mid-backup"),
            (Purpose::Backup, _) => None,
        }
    }

    /// Evaluates the point of `step`; `Ok(true)` means `corrupt`.
    fn hit(self, step: Step) -> Result<bool, failpoint::Injected> {
        match self.point(step) {
            Some(name) => failpoint::hit(name),
            None => Ok(false),
        }
    }
}

/// The journal of the archive being written: the partial file's host path.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct PartialJournal {
    partial: PathBuf,
}

fn partial_journal_path(root: &crate::etcd::Root) -> PathBuf {
    root.at(STATE_FILE).with_file_name("snapshot-partial.json")
}

/// Only files this code names are ever removed through the journal.
fn is_our_partial(p: &Path) -> bool {
    p.file_name()
        .map(|n| n.to_string_lossy())
        .is_some_and(|n| n.starts_with("etcd-") && n.ends_with(".tar.gz.partial"))
}

fn remove_if_exists(p: &Path) -> io::Result<()> {
    match fs::remove_file(p) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Removes the partial file and its journal when dropped, unless disarmed.
struct PartialGuard {
    path: Option<PathBuf>,
    journal: PathBuf,
}

impl Drop for PartialGuard {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            if let Err(e) = remove_if_exists(&p) {
                tracing::warn!("cannot remove {}: {e}", p.display());
                // The journal stays, so the next hook tries again.
                return;
            }
        }
        if let Err(e) = remove_if_exists(&self.journal) {
            tracing::warn!("cannot remove {}: {e}", self.journal.display());
        }
    }
}

/// The db stream from etcd, with the mid-stream failure point evaluated
/// once about half of the announced size has been read.
struct MidStream<R> {
    inner: R,
    read: u64,
    half: u64,
    point: Option<Purpose>,
}

impl<R: Read> Read for MidStream<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read = self.read.saturating_add(n as u64);
        if self.read >= self.half {
            if let Some(purpose) = self.point.take() {
                // `corrupt` has no meaning here; `error` fails the read.
                purpose.hit(Step::MidStream).map_err(io::Error::other)?;
            }
        }
        Ok(n)
    }
}

/// See [`Charm::quarter_log`].
pub(crate) struct QuarterLog<'c, 'a> {
    charm: &'c Charm<'a>,
    prefix: &'static str,
    total: u64,
    next: u64,
}

impl snapshot::Progress for QuarterLog<'_, '_> {
    fn advance(&mut self, done: u64, _total: Option<u64>) {
        if done >= self.next && done > 0 {
            self.charm.log_progress(&format!(
                "{}{}% ({} of {})",
                self.prefix,
                done * 100 / self.total,
                human_size(done),
                human_size(self.total)
            ));
            self.next = self.next.saturating_add((self.total / 4).max(1));
        }
    }
}

/// The `snapshot.*` action results that describe an archive (its sha256
/// and size, and its manifest), shared by the snapshot and create-backup
/// actions.
pub(crate) fn archive_results(
    sha256: &str,
    size: u64,
    m: &Manifest,
) -> Vec<(&'static str, String)> {
    vec![
        ("snapshot.sha256", sha256.to_string()),
        ("snapshot.size", human_size(size)),
        ("snapshot.size-bytes", size.to_string()),
        ("snapshot.version", m.etcd_version.clone()),
        ("snapshot.revision", m.revision.to_string()),
        ("snapshot.key-count", m.key_count.to_string()),
        ("snapshot.cluster-id", m.cluster_id.clone()),
        ("snapshot.db-sha256", m.db_sha256.clone()),
        ("snapshot.created", m.created.clone()),
    ]
}

impl<'a> Charm<'a> {
    /// Resolves a directory parameter (a unit path) and creates it 0700 if
    /// it is missing.
    pub(crate) fn target_dir(&self, unit_dir: &str) -> Result<PathBuf> {
        if !unit_dir.starts_with('/') {
            bail!("target {unit_dir:?} must be an absolute directory, such as {DEFAULT_TARGET}");
        }
        let host = self
            .root
            .resolve(unit_dir)
            .map_err(|e| anyhow!("target: {e}"))?;
        if !host.is_dir() {
            if host.exists() {
                bail!("target {unit_dir} exists and is not a directory; pass a directory");
            }
            Owner::for_downloads(&self.root)
                .take_dir(&host)
                .map_err(|e| {
                    anyhow!(
                        "cannot create the target directory {unit_dir}: {e}; {}",
                        explain_io(&e)
                    )
                })?;
        } else if Path::new(unit_dir) == Path::new(DEFAULT_TARGET) {
            // The default directory is ours: `juju scp` logs in as its
            // owner (earlier versions left it root's).
            Owner::for_downloads(&self.root)
                .take_dir(&host)
                .map_err(|e| {
                    anyhow!(
                        "cannot give {unit_dir} to the download user: {e}; {}",
                        explain_io(&e)
                    )
                })?;
        }
        Ok(host)
    }

    pub(crate) fn snapshot_action(&self) -> Result<()> {
        let params = self
            .tools
            .action_get()
            .context("cannot read the action's parameters")?;
        let keys = param_str(&params, "keys-version", "v3")?;
        match keys.as_str() {
            "v3" => {}
            "v2" => bail!(
                "keys-version=v2 is not supported: etcd's v2 store is not part of a v3 snapshot, and this charm runs etcd with the v2 API disabled. Run the action without keys-version (or with keys-version=v3)"
            ),
            other => bail!("keys-version={other:?} is not known; the only accepted value is v3"),
        }
        let target = param_str(&params, "target", DEFAULT_TARGET)?;
        let include_pki = param_bool(&params, "include-pki", false)?;
        let _lock = OpLock::try_acquire(&self.root, "the snapshot action")?;
        self.recover_interrupted()?;
        failpoint::hit("snapshot-after-lock")?;
        let dir = self.target_dir(&target)?;
        let ca = if include_pki {
            Some(
                self.current_ca()
                    .context("include-pki=true, but the application's CA cannot be read")?,
            )
        } else {
            None
        };
        let pki = ca.as_ref().map(|ca| snapshot::PkiFiles {
            ca_cert: ca.cert_pem().as_bytes(),
            ca_key: ca.key_pem().expose().as_bytes(),
        });
        let mut client = self.connect()?;
        let taken = self.take_snapshot(&mut client, &dir, &target, Purpose::Snapshot, pki)?;

        let m = &taken.manifest;
        let mut pki_results = Vec::new();
        if let Some(ca) = &ca {
            pki_results.push(("snapshot.pki", "included".to_string()));
            pki_results.push(("snapshot.ca-fingerprint", ca.fingerprint_sha256()));
        }
        let mut results = vec![("snapshot.path", taken.unit_path.clone())];
        results.extend(archive_results(&taken.sha256, taken.size, m));
        results.extend([
            (
                "copy.cmd",
                format!("juju scp {}:{} .", self.ctx.unit_name, taken.unit_path),
            ),
            ("copy.owner", taken.owner.clone()),
        ]);
        results.extend(pki_results);
        if let Some(h) = m.hashkv {
            results.push(("snapshot.hashkv", h.to_string()));
        }
        self.set_results(results)
    }

    /// The manifest's fields for a snapshot at `status`'s revision with
    /// `key_count` keys, created at `created` (Unix seconds).
    pub(crate) fn manifest_fields(
        &self,
        status: &crate::etcd::client::MemberStatus,
        key_count: u64,
        created: i64,
    ) -> Result<ManifestFields> {
        Ok(ManifestFields {
            etcd_version: status.version.clone(),
            cluster_id: id_hex(status.cluster_id),
            member_id: id_hex(status.member_id),
            revision: status.revision,
            key_count,
            created: snapshot::rfc3339(created)
                .ok_or_else(|| anyhow!("the clock is outside years 0-9999"))?,
            source_unit: self.ctx.unit_name.clone(),
        })
    }

    /// The one pipeline of every snapshot and backup: etcd's Maintenance
    /// snapshot stream, its hashes and the parallel gzip, into `out` (a
    /// local `*.partial` file or an S3 multipart upload). `fields` must be
    /// read before this opens the stream, so the manifest's revision is
    /// never ahead of the data. `point`: the mid-stream failure point.
    pub(crate) fn stream_packed(
        &self,
        client: &mut EtcdClient,
        fields: ManifestFields,
        pki: Option<snapshot::PkiFiles<'_>>,
        point: Option<Purpose>,
        shown: &str,
        out: &mut dyn Write,
    ) -> Result<snapshot::Packed, snapshot::PackError> {
        let revision = fields.revision;
        // HashKV at the manifest's revision, on a connection of its own
        // and a thread of its own while etcd streams the snapshot (it walks
        // the whole keyspace, so it overlaps the stream rather than follow
        // it). The hash depends on the compaction revision, so it is
        // recorded only when that revision is the same before the stream
        // and after it: then the snapshot holds the history it hashed.
        // (The first probe is made here, before the stream opens.)
        let mut hash_client = self.connect().map_err(|e| {
            snapshot::PackError::Read(io::Error::other(format!(
                "cannot open a second connection to etcd for its hashkv: {e:#}"
            )))
        })?;
        let before = hash_client.compact_revision(revision);
        let mut hasher = Some(std::thread::spawn(move || {
            let mut c = hash_client;
            let hashed = before
                .as_ref()
                .ok()
                .map(|_| c.hash_kv(revision, HASHKV_TIMEOUT));
            (c, before, hashed)
        }));
        let mut after_db = || {
            let (mut c, before, hashed) = hasher.take()?.join().ok()?;
            let why = match (before, hashed) {
                (Ok(before), Some(Ok(h))) => match c.compact_revision(revision) {
                    Ok(after) if after == before && h.compact_revision.max(1) == after => {
                        return Some(h)
                    }
                    Ok(after) => format!(
                        "a compaction ran while the snapshot was taken (compaction revision {before}, then {after})"
                    ),
                    Err(e) => e.to_string(),
                },
                (Err(e), _) | (_, Some(Err(e))) => e.to_string(),
                (Ok(_), None) => "no hash".to_owned(),
            };
            tracing::warn!("the snapshot's hashkv at revision {revision} is not recorded: {why}");
            None
        };
        let stream = client.snapshot().map_err(|e| {
            snapshot::PackError::Read(io::Error::other(format!(
                "etcd refused to start a snapshot: {e}"
            )))
        })?;
        let total = stream.size();
        let mut stream = MidStream {
            inner: stream,
            read: 0,
            half: (total / 2).max(1),
            point,
        };
        self.log_progress(&format!(
            "Streaming a {} snapshot of etcd {} at revision {} ({} keys) into {shown}",
            human_size(total),
            fields.etcd_version,
            fields.revision,
            fields.key_count
        ));
        let mut progress = self.quarter_log("", total);
        snapshot::pack_with(
            &mut stream,
            total,
            fields,
            pki,
            &mut after_db,
            out,
            &mut progress,
        )
    }

    /// Streams a consistent snapshot from `client` into
    /// `{prefix}-YYYY-MM-DD-HH.MM.SS.tar.gz` in `dir` (whose unit path is
    /// `unit_dir`), the prefix depending on `purpose`.
    pub(crate) fn take_snapshot(
        &self,
        client: &mut EtcdClient,
        dir: &Path,
        unit_dir: &str,
        purpose: Purpose,
        pki: Option<snapshot::PkiFiles<'_>>,
    ) -> Result<Taken> {
        let prefix = purpose.prefix();
        remove_stale_partials(dir);
        let status = client.status().context("cannot read etcd's status")?;
        // Read before the stream opens, so the manifest's revision is never
        // ahead of the data: etcd commits its backend before it snapshots.
        let revision = status.revision;
        let key_count = client
            .key_count(revision)
            .context("cannot count etcd's keys")?;

        // A name that is not taken yet (two runs in one second wait).
        let (name, created) = {
            let mut tries = 0;
            loop {
                let now = now_unix();
                let name = snapshot::named_archive(prefix, now)
                    .ok_or_else(|| anyhow!("the clock is outside years 0-9999"))?;
                if !dir.join(&name).exists() {
                    break (name, now);
                }
                tries += 1;
                if tries > 3 {
                    bail!("{} already exists in {unit_dir}", name);
                }
                std::thread::sleep(Duration::from_millis(1000));
            }
        };
        let fields = self.manifest_fields(&status, key_count, created)?;
        let final_path = dir.join(&name);
        let partial_path = dir.join(format!("{name}.partial"));
        let unit_path = format!("{}/{name}", unit_dir.trim_end_matches('/'));
        // The journal first: a kill from here on leaves a record of the
        // partial file for the next hook to remove.
        let journal = partial_journal_path(&self.root);
        let body = serde_json::to_vec(&PartialJournal {
            partial: partial_path.clone(),
        })
        .context("cannot encode the snapshot journal")?;
        fsutil::write_atomic(&journal, &body, 0o600)
            .with_context(|| format!("cannot write the snapshot journal {}", journal.display()))?;
        let mut guard = PartialGuard {
            path: Some(partial_path.clone()),
            journal,
        };
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&partial_path)
            .map_err(|e| anyhow!("cannot create {unit_path}.partial: {e}; {}", explain_io(&e)))?;
        // The operator copies it off as the download user: hand it over
        // before it has its final name.
        let owner = Owner::for_downloads(&self.root);
        owner
            .take(&file)
            .map_err(|e| anyhow!("cannot give {unit_path}.partial to {}: {e}", owner.user))?;
        let owner_note = if owner.can_enter(&self.root, dir) {
            owner.note(&self.ctx.unit_name, &unit_path)
        } else {
            format!(
                "{} cannot enter {unit_dir}, so juju scp will fail: allow it in (chmod o+x on the directories) or use the default target {DEFAULT_TARGET}",
                owner.user
            )
        };

        let mut out = BufWriter::with_capacity(snapshot::BUF_SIZE, &file);
        let packed = self
            .stream_packed(client, fields, pki, Some(purpose), &unit_path, &mut out)
            .map_err(|e| match &e {
                snapshot::PackError::Write(io) => {
                    anyhow!("cannot write {unit_path}: {io}; {}", explain_io(io))
                }
                _ => anyhow!(e),
            })?;
        out.flush()
            .map_err(|e| anyhow!("cannot write {unit_path}: {e}; {}", explain_io(&e)))?;
        drop(out);
        if purpose.hit(Step::BeforeSync)? {
            corrupt_file(&file)?;
        }
        file.sync_all()
            .map_err(|e| anyhow!("cannot sync {unit_path}: {e}; {}", explain_io(&e)))?;
        drop(file);
        purpose.hit(Step::BeforeRename)?;
        fs::rename(&partial_path, &final_path)
            .with_context(|| format!("cannot rename {unit_path}.partial to {unit_path}"))?;
        // The archive is whole under its final name; what is left of the
        // guard's work is the journal.
        guard.path = None;
        fsutil::sync_dir(dir).with_context(|| format!("cannot sync {unit_dir}"))?;
        purpose.hit(Step::AfterRename)?;
        drop(guard);
        self.log_progress(&format!(
            "Wrote {unit_path} ({}, sha256 {})",
            human_size(packed.archive_size),
            packed.archive_sha256
        ));
        Ok(Taken {
            unit_path,
            sha256: packed.archive_sha256,
            size: packed.archive_size,
            manifest: packed.manifest,
            owner: owner_note,
        })
    }

    /// Removes what a killed snapshot (or restore backup) left: the partial
    /// file its journal names, then the journal. A failure to remove is
    /// logged and the journal kept, so the next hook tries again; it never
    /// fails the caller. The caller holds the unit's lock, so no live run
    /// owns the file.
    pub(crate) fn recover_interrupted_snapshot(&self) {
        let jpath = partial_journal_path(&self.root);
        let body = match fs::read(&jpath) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return,
            Err(e) => {
                tracing::warn!("cannot read {}: {e}", jpath.display());
                return;
            }
        };
        match serde_json::from_slice::<PartialJournal>(&body) {
            Ok(j) if is_our_partial(&j.partial) => match remove_if_exists(&j.partial) {
                Ok(()) => {
                    tracing::warn!(
                        "removed {} (if it was there), left by an interrupted snapshot",
                        j.partial.display()
                    );
                    if let Some(dir) = j.partial.parent() {
                        if let Err(e) = fsutil::sync_dir(dir) {
                            tracing::warn!("cannot sync {}: {e}", dir.display());
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(
                        "cannot remove {}, left by an interrupted snapshot: {e}",
                        j.partial.display()
                    );
                    return;
                }
            },
            Ok(j) => tracing::warn!(
                "the snapshot journal names {}, which is not a partial snapshot; leaving it",
                j.partial.display()
            ),
            Err(e) => tracing::warn!(
                "the snapshot journal {} is unreadable: {e}",
                jpath.display()
            ),
        }
        if let Err(e) = remove_if_exists(&jpath) {
            tracing::warn!("cannot remove {}: {e}", jpath.display());
        }
    }

    /// Cleans up after a snapshot or restore that was killed part-way:
    /// the orphan partial archive, then the interrupted restore. Every hook
    /// and the snapshot and restore actions call it first, holding the
    /// unit's lock.
    pub(crate) fn recover_interrupted(&self) -> Result<()> {
        self.recover_interrupted_snapshot();
        self.recover_interrupted_restore()
    }

    /// Progress of long work over `total` bytes: a line at each quarter,
    /// `PREFIX25% (X of Y)`; none for work under 64 MiB, which takes a blink.
    pub(crate) fn quarter_log<'c>(
        &'c self,
        prefix: &'static str,
        total: u64,
    ) -> QuarterLog<'c, 'a> {
        QuarterLog {
            charm: self,
            prefix,
            total,
            next: if total >= 64 << 20 {
                total / 4
            } else {
                u64::MAX
            },
        }
    }

    /// Progress for the operator; a failing `action-log` never fails the
    /// work it reports on.
    pub(crate) fn log_progress(&self, msg: &str) {
        tracing::info!("{msg}");
        if self.ctx.hook_name().is_none() {
            if let Err(e) = self.tools.action_log(msg) {
                tracing::warn!("action-log failed: {e}");
            }
        }
    }
}

/// The `corrupt` failure point of a snapshot: flips one byte in the middle
/// of the written archive, as a bad disk would.
fn corrupt_file(file: &File) -> Result<()> {
    use std::os::unix::fs::FileExt;
    let len = file.metadata()?.len();
    let at = len / 2;
    let mut b = [0u8; 1];
    file.read_exact_at(&mut b, at)?;
    b[0] ^= 0xff;
    file.write_all_at(&b, at)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_du() {
        assert_eq!(human_size(0), "0");
        assert_eq!(human_size(1023), "1023");
        assert_eq!(human_size(1024), "1.0K");
        assert_eq!(human_size(1025), "1.1K");
        assert_eq!(human_size(68 * 1024), "68K");
        assert_eq!(human_size(68 * 1024 + 1), "69K");
        assert_eq!(human_size(10 * 1024 * 1024 - 1), "10M");
        assert_eq!(human_size(3 * 1024 * 1024 * 1024), "3.0G");
        assert_eq!(human_size(u64::MAX), "16E");
    }
}
