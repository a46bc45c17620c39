//! A scratch etcd: a snapshot restored into a temporary data directory and
//! served by an etcd process of its own, so a backup can be proven
//! restorable while the unit's etcd keeps serving.
//!
//! The scratch member is not the systemd unit and shares nothing with it
//! but the binaries and the unit's certificates. It listens on 127.0.0.1
//! only, on two free ports picked at start, and speaks TLS with client
//! certificates on both its client and peer ports, using the unit's own
//! server certificate (which names 127.0.0.1): the data is a backup of
//! the cluster (Kubernetes secrets included), so no other local process
//! may read it while it is checked. It is restored without
//! `--bump-revision`, so its revisions and compaction revision are the
//! backup's own and `HashKV` can be compared with the source's.
//!
//! [`ScratchEtcd`] kills its process (SIGKILL: nothing in it is worth a
//! clean stop) and removes its directory when dropped, on every path.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::client::{ClientTls, EtcdClient};
use super::config::TlsFiles;
use super::process::CommandError;
use super::restore::{RestoreRequest, RestoreTool};

/// Why a scratch etcd could not be had.
#[derive(Debug, thiserror::Error)]
pub enum ScratchError {
    #[error("cannot prepare the scratch directory {}: {source}", path.display())]
    Dir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot pick free loopback ports for the scratch etcd: {0}")]
    Ports(#[source] io::Error),
    #[error("etcd's restore tool failed on the backup: {0}")]
    Restore(#[source] CommandError),
    #[error("cannot start the scratch etcd {}: {source}", etcd.display())]
    Spawn {
        etcd: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the scratch etcd exited ({status}) instead of serving the restored backup; its log ends: {log}")]
    Exited { status: String, log: String },
    #[error(
        "the scratch etcd did not become healthy within {secs} s ({last}); its log ends: {log}"
    )]
    NotHealthy {
        secs: u64,
        last: String,
        log: String,
    },
}

/// What the scratch member is made from.
#[derive(Debug, Clone)]
pub struct ScratchSpec<'a> {
    /// The `etcd` binary (the unit's).
    pub etcd: &'a Path,
    /// The restore tool, as detected for the unit.
    pub tool: &'a RestoreTool,
    /// The verified db to restore.
    pub db: &'a Path,
    /// The db has no etcd hash (a raw copy), or it was verified already.
    pub skip_hash_check: bool,
    /// A directory that must not exist yet; created 0700, removed on drop.
    pub dir: PathBuf,
    /// The server certificate, key and CA the member serves with.
    pub tls: &'a TlsFiles,
    /// `--quota-backend-bytes`: room for the restored db.
    pub quota: u64,
}

/// A running scratch etcd; see the module doc.
#[derive(Debug)]
pub struct ScratchEtcd {
    child: Option<Child>,
    dir: PathBuf,
    log: PathBuf,
    /// `https://127.0.0.1:PORT`.
    pub endpoint: String,
}

fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The last `max` bytes of `path`, for error messages.
fn tail(path: &Path, max: u64) -> String {
    let Ok(mut f) = File::open(path) else {
        return "(no log)".to_owned();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(max)));
    let mut s = String::new();
    let _ = f.read_to_string(&mut s);
    s.trim().replace('\n', " | ")
}

impl ScratchEtcd {
    /// Restores `spec.db` into `spec.dir` and starts etcd on it. Returns
    /// once the process runs; see [`Self::wait_healthy`].
    pub fn start(spec: &ScratchSpec<'_>) -> Result<ScratchEtcd, ScratchError> {
        let dir_err = |source| ScratchError::Dir {
            path: spec.dir.clone(),
            source,
        };
        crate::fsutil::create_dir_mode(&spec.dir, 0o700).map_err(dir_err)?;
        // From here on, dropping `me` removes the directory.
        let mut me = ScratchEtcd {
            child: None,
            dir: spec.dir.clone(),
            log: spec.dir.join("etcd.log"),
            endpoint: String::new(),
        };
        let (client_port, peer_port) = (
            free_port().map_err(ScratchError::Ports)?,
            free_port().map_err(ScratchError::Ports)?,
        );
        let name = "scratch";
        let peer_url = format!("https://127.0.0.1:{peer_port}");
        let client_url = format!("https://127.0.0.1:{client_port}");
        let data = spec.dir.join("data");
        spec.tool
            .restore(&RestoreRequest {
                db: spec.db.to_path_buf(),
                data_dir: data.clone(),
                name: name.to_owned(),
                peer_url: peer_url.clone(),
                token: format!("etcd-charm-verify-{client_port}"),
                skip_hash_check: spec.skip_hash_check,
                bump_revision: false,
            })
            .map_err(ScratchError::Restore)?;
        let log = File::create(&me.log).map_err(dir_err)?;
        let log2 = log.try_clone().map_err(dir_err)?;
        let tls = spec.tls;
        let mut cmd = Command::new(spec.etcd);
        cmd.arg(format!("--name={name}"))
            .arg(format!("--data-dir={}", data.display()))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster={name}={peer_url}"))
            .arg(format!("--quota-backend-bytes={}", spec.quota))
            .arg(format!("--cert-file={}", tls.cert.display()))
            .arg(format!("--key-file={}", tls.key.display()))
            .arg(format!("--trusted-ca-file={}", tls.ca.display()))
            .arg("--client-cert-auth")
            .arg(format!("--peer-cert-file={}", tls.cert.display()))
            .arg(format!("--peer-key-file={}", tls.key.display()))
            .arg(format!("--peer-trusted-ca-file={}", tls.ca.display()))
            .arg("--peer-client-cert-auth")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        // The member dies with the charm (PR_SET_PDEATHSIG), so a killed
        // action never leaves it serving the backup.
        {
            use std::os::unix::process::CommandExt;
            // SAFETY: prctl(2) is async-signal-safe and touches no memory
            // of ours; it runs in the child between fork and exec.
            unsafe {
                cmd.pre_exec(|| {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                        return Err(io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        me.child = Some(cmd.spawn().map_err(|source| ScratchError::Spawn {
            etcd: spec.etcd.to_path_buf(),
            source,
        })?);
        me.endpoint = client_url;
        Ok(me)
    }

    /// `Some(why)` once the process has exited.
    fn exited(&mut self) -> Option<ScratchError> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => Some(ScratchError::Exited {
                status: status.to_string(),
                log: tail(&self.log, 1500),
            }),
            _ => None,
        }
    }

    /// Waits until the member is healthy and returns a client to it; fails
    /// at once if the process exits.
    pub fn wait_healthy(
        &mut self,
        tls: &ClientTls,
        within: Duration,
    ) -> Result<EtcdClient, ScratchError> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(e) = self.exited() {
                return Err(e);
            }
            let last = match EtcdClient::connect(&self.endpoint, tls, Duration::from_secs(2))
                .and_then(|mut c| c.health().map(|h| (c, h)))
            {
                Ok((c, h)) if h.is_healthy() => return Ok(c),
                Ok((_, h)) => format!("alarms {:?}, leader {:x}", h.alarms, h.status.leader),
                Err(e) => e.to_string(),
            };
            if Instant::now() >= deadline {
                return Err(ScratchError::NotHealthy {
                    secs: within.as_secs(),
                    last,
                    log: tail(&self.log, 1500),
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The scratch directory (removed on drop).
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for ScratchEtcd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        match fs::remove_dir_all(&self.dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!("cannot remove {}: {e}", self.dir.display()),
        }
    }
}
