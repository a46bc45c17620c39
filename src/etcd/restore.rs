//! `snapshot restore` with etcd's own tool: `etcdutl` where it exists (3.5
//! and later), else `etcdctl` (3.4). The charm verifies the snapshot itself
//! before it gets here; this module only runs the tool and reports what it
//! supports.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::install::Binaries;
use super::process::{self, CommandError};

/// How much `--bump-revision` raises the revision when the tool supports
/// it: far beyond any write a watcher could have seen after the snapshot
/// (kubeadm and etcd's own docs use 1,000,000,000).
pub const BUMP_REVISION: u64 = 1_000_000_000;

/// What one restore asks of the tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreRequest {
    /// The snapshot file (a bbolt db, with or without etcd's hash).
    pub db: PathBuf,
    /// A directory that must not exist yet.
    pub data_dir: PathBuf,
    pub name: String,
    pub peer_url: String,
    /// A new token, so the restored cluster gets a new cluster ID.
    pub token: String,
    /// Pass `--skip-hash-check`: the db carries no hash (a raw copy of
    /// `member/snap/db`), or the caller has already verified it.
    pub skip_hash_check: bool,
    /// Pass `--bump-revision`/`--mark-compacted` when the tool has them (a
    /// restore in place); a scratch copy that must keep the backup's own
    /// revisions passes `false`.
    pub bump_revision: bool,
}

/// What the tool did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreReport {
    /// `etcdutl` or `etcdctl`, as a path.
    pub tool: PathBuf,
    /// The revision bump applied (0 when the tool has no `--bump-revision`).
    pub bumped_by: u64,
    /// The bumped revision was marked compacted.
    pub marked_compacted: bool,
}

/// The tool and the flags it supports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreTool {
    pub path: PathBuf,
    /// `ETCDCTL_API=3` must be set (etcdctl of 3.4).
    pub needs_api3: bool,
    pub bump_revision: bool,
    pub mark_compacted: bool,
}

impl RestoreTool {
    /// Picks `etcdutl` when installed, else `etcdctl`, and reads its
    /// `--help` for the optional flags (they came in 3.5.10, so the version
    /// alone does not tell).
    pub fn detect(binaries: &Binaries) -> Result<RestoreTool, CommandError> {
        let (path, needs_api3) = match &binaries.etcdutl {
            Some(u) if u.exists() => (u.clone(), false),
            _ => (binaries.etcdctl.clone(), true),
        };
        let mut cmd = Command::new(&path);
        cmd.args(["snapshot", "restore", "--help"]);
        if needs_api3 {
            cmd.env("ETCDCTL_API", "3");
        }
        let out = process::run(&mut cmd)?;
        let help = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(RestoreTool {
            path,
            needs_api3,
            bump_revision: help.contains("--bump-revision"),
            mark_compacted: help.contains("--mark-compacted"),
        })
    }

    /// Runs `snapshot restore` for `req`.
    pub fn restore(&self, req: &RestoreRequest) -> Result<RestoreReport, CommandError> {
        self.start(req)?.wait()
    }

    /// Starts `snapshot restore` for `req` and returns while it runs (see
    /// [`process::spawn`]).
    pub fn start(&self, req: &RestoreRequest) -> Result<PendingRestore, CommandError> {
        let mut cmd = Command::new(&self.path);
        if self.needs_api3 {
            cmd.env("ETCDCTL_API", "3");
        }
        cmd.arg("snapshot")
            .arg("restore")
            .arg(&req.db)
            .arg("--name")
            .arg(&req.name)
            .arg("--data-dir")
            .arg(&req.data_dir)
            .arg("--initial-cluster")
            .arg(format!("{}={}", req.name, req.peer_url))
            .arg("--initial-advertise-peer-urls")
            .arg(&req.peer_url)
            .arg("--initial-cluster-token")
            .arg(&req.token);
        if req.skip_hash_check {
            cmd.arg("--skip-hash-check");
        }
        let mut report = RestoreReport {
            tool: self.path.clone(),
            bumped_by: 0,
            marked_compacted: false,
        };
        if self.bump_revision && req.bump_revision {
            cmd.arg("--bump-revision").arg(BUMP_REVISION.to_string());
            report.bumped_by = BUMP_REVISION;
            if self.mark_compacted {
                cmd.arg("--mark-compacted");
                report.marked_compacted = true;
            }
        }
        Ok(PendingRestore {
            running: process::spawn(&mut cmd)?,
            report,
        })
    }
}

/// A `snapshot restore` that is running.
#[derive(Debug)]
pub struct PendingRestore {
    running: process::Running,
    report: RestoreReport,
}

impl PendingRestore {
    /// Waits for the tool to finish.
    pub fn wait(self) -> Result<RestoreReport, CommandError> {
        self.running.wait()?;
        Ok(self.report)
    }
}

/// The db file etcd keeps in a data directory.
pub fn db_in(data_dir: &Path) -> PathBuf {
    data_dir.join("member").join("snap").join("db")
}
