//! The local store: a directory on the unit (`backup-dir`, default
//! `/var/lib/etcd-charm/backups`, 0700) holding archives and sidecars, all
//! 0600. An archive is written as `NAME.partial` (created 0600), fsynced,
//! renamed, and the directory fsynced; any failure removes the partial
//! file, and the next write removes partial files a killed run left.

use std::fs::{self, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use super::{archive_of_sidecar, StoreError};
use crate::fsutil;

/// A directory of backups.
#[derive(Debug, Clone)]
pub struct LocalStore {
    /// The directory on this machine (resolved through the unit's root).
    pub dir: PathBuf,
    /// The same directory as the operator sees it on the unit.
    pub unit_dir: String,
}

fn io_err(what: String, hint: &'static str) -> impl FnOnce(io::Error) -> StoreError {
    move |source| StoreError::Io { what, source, hint }
}

fn hint_for(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => {
            "the filesystem is full: free space there or set backup-dir to another directory"
        }
        Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::EROFS) => {
            "the directory is not writable: fix its permissions or set backup-dir to another directory"
        }
        _ => "check the directory and the disk",
    }
}

impl LocalStore {
    pub fn new(dir: PathBuf, unit_dir: &str) -> Self {
        LocalStore {
            dir,
            unit_dir: unit_dir.trim_end_matches('/').to_string(),
        }
    }

    pub fn location(&self, name: &str) -> String {
        format!("{}/{name}", self.unit_dir)
    }

    fn ensure_dir(&self) -> Result<(), StoreError> {
        if self.dir.is_dir() {
            return Ok(());
        }
        fsutil::create_dir_mode(&self.dir, 0o700).map_err(|e| StoreError::Io {
            what: format!("cannot create the backup directory {}", self.unit_dir),
            hint: hint_for(&e),
            source: e,
        })
    }

    pub fn exists(&self, name: &str) -> bool {
        self.dir.join(name).exists() || self.dir.join(super::sidecar_name(name)).exists()
    }

    /// Removes `etcd-snapshot-*.partial` left by killed runs. The caller
    /// holds the unit's operation lock, so no live writer owns one.
    fn remove_stale_partials(&self) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if let Some(base) = name.strip_suffix(".partial") {
                if super::is_archive_name(base) || archive_of_sidecar(base).is_some() {
                    match fs::remove_file(e.path()) {
                        Ok(()) => tracing::warn!("removed {name}, left by an interrupted backup"),
                        Err(err) => tracing::warn!("cannot remove the stale {name}: {err}"),
                    }
                }
            }
        }
    }

    pub fn put_archive<T, E: From<StoreError>>(
        &self,
        name: &str,
        fill: impl FnOnce(&mut dyn Write) -> Result<T, E>,
    ) -> Result<T, E> {
        self.ensure_dir()?;
        self.remove_stale_partials();
        let final_path = self.dir.join(name);
        let partial = self.dir.join(format!("{name}.partial"));
        let shown = self.location(name);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&partial)
            .map_err(|e| StoreError::Io {
                what: format!("cannot create {shown}.partial"),
                hint: hint_for(&e),
                source: e,
            })?;
        let result = (|| {
            let mut out = BufWriter::with_capacity(crate::snapshot::BUF_SIZE, &file);
            let v = fill(&mut out)?;
            out.flush().map_err(|e| StoreError::Io {
                what: format!("cannot write {shown}"),
                hint: hint_for(&e),
                source: e,
            })?;
            drop(out);
            file.sync_all().map_err(|e| StoreError::Io {
                what: format!("cannot sync {shown}"),
                hint: hint_for(&e),
                source: e,
            })?;
            fs::rename(&partial, &final_path).map_err(io_err(
                format!("cannot rename {shown}.partial to {shown}"),
                "check the directory",
            ))?;
            Ok::<T, E>(v)
        })();
        match result {
            Ok(v) => {
                fsutil::sync_dir(&self.dir).map_err(io_err(
                    format!("cannot sync {}", self.unit_dir),
                    "check the disk",
                ))?;
                Ok(v)
            }
            Err(e) => {
                if let Err(rm) = fs::remove_file(&partial) {
                    if rm.kind() != io::ErrorKind::NotFound {
                        tracing::warn!("cannot remove {shown}.partial: {rm}");
                    }
                }
                Err(e)
            }
        }
    }

    /// A small file (a sidecar), written atomically 0600.
    pub fn put_small(&self, name: &str, body: &[u8]) -> Result<(), StoreError> {
        self.ensure_dir()?;
        fsutil::write_atomic(&self.dir.join(name), body, 0o600)
            .map(|_| ())
            .map_err(|e| StoreError::Io {
                what: format!("cannot write {}", self.location(name)),
                hint: hint_for(&e),
                source: e,
            })
    }

    /// (archive name, sidecar bytes) for each of our sidecars.
    pub fn list_sidecars(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(StoreError::Io {
                    what: format!("cannot list {}", self.unit_dir),
                    hint: hint_for(&e),
                    source: e,
                })
            }
        };
        let mut out = Vec::new();
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let Some(archive) = archive_of_sidecar(&name) else {
                continue;
            };
            if !self.dir.join(archive).is_file() {
                continue;
            }
            let body = fs::read(e.path()).map_err(io_err(
                format!("cannot read {}", self.location(&name)),
                "check the disk",
            ))?;
            out.push((archive.to_string(), body));
        }
        Ok(out)
    }

    pub fn delete(&self, name: &str) -> Result<(), StoreError> {
        match fs::remove_file(self.dir.join(name)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::Io {
                what: format!("cannot delete {}", self.location(name)),
                hint: hint_for(&e),
                source: e,
            }),
        }
    }

    pub fn open(&self, name: &str) -> Result<Box<dyn Read + '_>, StoreError> {
        let f = fs::File::open(self.dir.join(name)).map_err(io_err(
            format!("cannot open {}", self.location(name)),
            "check that the backup exists (list-backups)",
        ))?;
        Ok(Box::new(io::BufReader::with_capacity(
            crate::snapshot::BUF_SIZE,
            f,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{BackupStore, Sidecar};
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const NAME: &str = "etcd-snapshot-2026-11-30-17.00.00.tar.gz";

    fn sidecar(app: &str) -> Sidecar {
        Sidecar {
            name: NAME.into(),
            sha256: "ab".repeat(32),
            size: 5,
            application: app.into(),
            store: "local".into(),
            manifest: crate::snapshot::ManifestFields {
                etcd_version: "3.5.1".into(),
                cluster_id: "1".into(),
                member_id: "2".into(),
                revision: 3,
                key_count: 4,
                created: "2026-11-30T17:00:00Z".into(),
                source_unit: "etcd/0".into(),
            }
            .into_manifest("cd".repeat(32), 10),
            verified: None,
        }
    }

    #[test]
    fn put_list_open_delete_and_failure_leaves_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let store = BackupStore::Local(LocalStore::new(tmp.path().join("b"), "/var/b"));
        // A failing fill leaves neither the archive nor a partial file.
        let r: Result<(), StoreError> = store.put_archive(NAME, |w| {
            w.write_all(b"half").map_err(io_err("w".into(), ""))?;
            Err(StoreError::S3("boom".into()))
        });
        assert!(r.is_err());
        assert_eq!(fs::read_dir(tmp.path().join("b")).unwrap().count(), 0);

        store
            .put_archive::<_, StoreError>(NAME, |w| {
                w.write_all(b"hello").map_err(io_err("w".into(), ""))
            })
            .unwrap();
        let meta = fs::metadata(tmp.path().join("b").join(NAME)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        // Not listed before its sidecar exists.
        assert!(store.list("etcd").unwrap().0.is_empty());
        store.put_sidecar(&sidecar("etcd")).unwrap();
        let (listed, warnings) = store.list("etcd").unwrap();
        assert!(warnings.is_empty());
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].location, format!("/var/b/{NAME}"));
        // Another application's backups are not ours.
        assert!(store.list("other").unwrap().0.is_empty());
        let mut s = String::new();
        store.open(NAME).unwrap().read_to_string(&mut s).unwrap();
        assert_eq!(s, "hello");
        assert!(store.exists(NAME).unwrap());
        store.delete(NAME).unwrap();
        assert!(!store.exists(NAME).unwrap());
        assert!(store.delete("../x").is_err());
    }
}
