//! The unit's operation lock: one snapshot or restore at a time, and no hook
//! restarting etcd underneath one.
//!
//! It is an `flock` on `/var/lib/etcd-charm/charm.lock` (via `fs2`), so the
//! kernel drops it when the holder exits, however it exits: a crashed or
//! killed action never leaves a stale lock behind. Actions try once and fail
//! at once when another action holds the lock, and wait for a scheduled
//! backup (the backup timer) to finish; hooks wait a bounded time, then fail
//! so Juju retries them.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use fs2::FileExt;

use crate::etcd::paths::{Root, LOCK_FILE};

/// How the backup timer names itself in the lock file.
pub const BACKUP_TIMER: &str = "the backup timer";
/// How long an action waits for a scheduled backup that holds the lock.
const TIMER_WAIT: Duration = Duration::from_secs(30 * 60);

/// Held for the life of the value.
#[derive(Debug)]
pub struct OpLock {
    _file: File,
}

fn open(root: &Root) -> Result<File> {
    let path = root.at(LOCK_FILE);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot open the lock file {}", path.display()))
}

/// Records who holds the lock, for the message the next caller sees.
fn stamp(file: &mut File, holder: &str) -> io::Result<()> {
    file.set_len(0)?;
    file.rewind()?;
    file.write_all(holder.as_bytes())?;
    file.flush()
}

fn holder(file: &mut File) -> String {
    let mut s = String::new();
    let _ = file.rewind().and_then(|_| file.read_to_string(&mut s));
    let s = s.trim();
    if s.is_empty() {
        "another operation".to_string()
    } else {
        s.chars().take(200).collect()
    }
}

fn is_contended(e: &io::Error) -> bool {
    e.raw_os_error() == fs2::lock_contended_error().raw_os_error()
        || e.kind() == io::ErrorKind::WouldBlock
}

impl OpLock {
    /// Takes the lock now or fails with a message naming the holder.
    pub fn try_acquire(root: &Root, holder_desc: &str) -> Result<OpLock> {
        let mut file = open(root)?;
        match file.try_lock_exclusive() {
            Ok(()) => {
                stamp(&mut file, holder_desc).context("cannot write the lock file")?;
                Ok(OpLock { _file: file })
            }
            Err(e) if is_contended(&e) => {
                let who = holder(&mut file);
                if who.starts_with(BACKUP_TIMER) {
                    // A scheduled backup is not the operator's own doing:
                    // wait for it rather than fail the action they asked for.
                    tracing::info!(
                        "waiting for the scheduled backup to finish before {holder_desc} runs"
                    );
                    drop(file);
                    return OpLock::acquire(root, holder_desc, TIMER_WAIT);
                }
                bail!(
                    "{who} is already running on this unit; only one snapshot or restore runs at a time. Wait for it to finish (juju show-task, or juju status), then run this action again"
                )
            }
            Err(e) => Err(e).context("cannot lock the charm's lock file"),
        }
    }

    /// Waits up to `within` for the lock.
    pub fn acquire(root: &Root, holder_desc: &str, within: Duration) -> Result<OpLock> {
        let mut file = open(root)?;
        let deadline = Instant::now() + within;
        loop {
            match file.try_lock_exclusive() {
                Ok(()) => {
                    stamp(&mut file, holder_desc).context("cannot write the lock file")?;
                    return Ok(OpLock { _file: file });
                }
                Err(e) if is_contended(&e) => {
                    if Instant::now() >= deadline {
                        bail!(
                            "{} has held this unit's lock for more than {} s; this hook will be retried",
                            holder(&mut file),
                            within.as_secs()
                        );
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => return Err(e).context("cannot lock the charm's lock file"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_and_lock_dies_with_its_holder() {
        let d = tempfile::tempdir().unwrap();
        let root = Root::new(d.path());
        let first = OpLock::try_acquire(&root, "the snapshot action").unwrap();
        let err = OpLock::try_acquire(&root, "the restore action").unwrap_err();
        assert!(
            err.to_string()
                .contains("the snapshot action is already running"),
            "{err}"
        );
        assert!(OpLock::acquire(&root, "a hook", Duration::from_millis(300)).is_err());
        drop(first);
        let _again = OpLock::try_acquire(&root, "the restore action").unwrap();
    }

    #[test]
    fn an_action_waits_for_the_backup_timer_instead_of_failing() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let timer = OpLock::try_acquire(&root, BACKUP_TIMER).unwrap();
        let r2 = root.clone();
        let waiter = std::thread::spawn(move || {
            let t = Instant::now();
            OpLock::try_acquire(&r2, "the snapshot action").map(|_| t.elapsed())
        });
        std::thread::sleep(Duration::from_millis(500));
        drop(timer);
        let waited = waiter.join().unwrap().unwrap();
        assert!(waited >= Duration::from_millis(400), "{waited:?}");
    }
}
