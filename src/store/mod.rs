//! Where backups live: a [`BackupStore`] is either a local directory or an
//! S3 bucket (with a key prefix), and both hold the same things: the
//! `etcd-snapshot-YYYY-MM-DD-HH.MM.SS.tar.gz` archive that the `snapshot`
//! action writes, and next to it `NAME.json`, a small [`Sidecar`] with the
//! manifest, the archive's sha256 and size and who wrote it, so that a
//! listing never downloads an archive.
//!
//! An archive is written through a streaming writer ([`BackupStore::put_archive`]):
//! locally `NAME.partial` (0600), fsync, rename; on S3 a multipart upload
//! that is aborted on any error, so that an object appears only once it is
//! whole. The sidecar is written after the archive, so a listed backup
//! always has its archive. Listing, retention and deletion only ever touch
//! names of our pattern whose sidecar names this application; another
//! writer's objects in the same bucket are left alone.
//!
//! [`retention`] is pure and decides what to delete; this module does the
//! IO. Nothing here knows about Juju or etcd's client.

pub mod local;
pub mod retention;
pub mod s3;

use std::io::{Read, Write};

use serde::{Deserialize, Serialize};

use crate::snapshot::Manifest;

pub use local::LocalStore;
pub use s3::{S3Settings, S3Store};

/// The archive name prefix of backups (the `snapshot` action's own).
pub const PREFIX: &str = "etcd-snapshot-";
/// The archive name suffix.
pub const SUFFIX: &str = ".tar.gz";
/// The sidecar's suffix, after the archive's name.
pub const SIDECAR_SUFFIX: &str = ".json";

/// True for `etcd-snapshot-YYYY-MM-DD-HH.MM.SS.tar.gz` exactly.
pub fn is_archive_name(name: &str) -> bool {
    let Some(stamp) = name
        .strip_prefix(PREFIX)
        .and_then(|s| s.strip_suffix(SUFFIX))
    else {
        return false;
    };
    // YYYY-MM-DD-HH.MM.SS
    let b = stamp.as_bytes();
    b.len() == 19
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 | 10 => *c == b'-',
            13 | 16 => *c == b'.',
            _ => c.is_ascii_digit(),
        })
}

/// The sidecar's name for an archive.
pub fn sidecar_name(archive: &str) -> String {
    format!("{archive}{SIDECAR_SUFFIX}")
}

/// The archive's name, if `name` is one of our sidecars.
pub fn archive_of_sidecar(name: &str) -> Option<&str> {
    name.strip_suffix(SIDECAR_SUFFIX)
        .filter(|a| is_archive_name(a))
}

/// `NAME.json` next to an archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Sidecar {
    /// The archive's file name.
    pub name: String,
    /// sha256 of the archive's bytes, as `sha256sum` prints it.
    pub sha256: String,
    /// The archive's size in bytes.
    pub size: u64,
    /// The Juju application that wrote it (retention touches only ours).
    pub application: String,
    /// `local` or `s3`.
    pub store: String,
    /// The manifest inside the archive.
    pub manifest: Manifest,
    /// The last verification of the backup (`verify-backup`, or the timer
    /// with `backup-verify`); absent until one ran. Only `ok: true` means
    /// the backup was proven to restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<VerifyMark>,
}

/// The outcome of a verification, recorded in the sidecar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct VerifyMark {
    /// When it ended (RFC 3339, UTC).
    pub at: String,
    /// True only when the scratch restore proved the backup.
    pub ok: bool,
    /// `verified: revision R, K keys, hashkv H` or `failed: reason`.
    pub result: String,
}

impl VerifyMark {
    /// How listings show it.
    pub fn summary(&self) -> String {
        if self.ok {
            format!("verified {}", self.at)
        } else {
            format!("FAILED {}", self.at)
        }
    }
}

impl Sidecar {
    pub fn to_json(&self) -> Result<Vec<u8>, StoreError> {
        let mut v = serde_json::to_vec_pretty(self).map_err(StoreError::Encode)?;
        v.push(b'\n');
        Ok(v)
    }

    pub fn from_json(name: &str, bytes: &[u8]) -> Result<Sidecar, StoreError> {
        serde_json::from_slice(bytes).map_err(|e| StoreError::BadSidecar {
            name: name.to_string(),
            why: e.to_string(),
        })
    }
}

/// Why a store operation failed. Messages never carry credentials.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{what}: {source}; {hint}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
        hint: &'static str,
    },
    #[error("{0}")]
    S3(String),
    #[error("the sidecar {name} is unreadable ({why}); delete it or fix it by hand")]
    BadSidecar { name: String, why: String },
    #[error("cannot encode a sidecar: {0}")]
    Encode(#[source] serde_json::Error),
    #[error("{0} is not a backup name of this charm (etcd-snapshot-YYYY-MM-DD-HH.MM.SS.tar.gz)")]
    NotOurs(String),
}

/// Rebuilds the sidecar of an archive from the archive itself: its sha256
/// and size as read, and the `manifest.json` inside. Used when two units
/// uploaded the same tick's name and the other one's upload won: the
/// sidecar must describe the bytes that are there.
pub fn sidecar_from_archive(
    archive: impl Read,
    name: &str,
    application: &str,
    store: &str,
) -> Result<Sidecar, StoreError> {
    use sha2::Digest;
    struct Hashing<R> {
        inner: R,
        hasher: sha2::Sha256,
        size: u64,
    }
    impl<R: Read> Read for Hashing<R> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.inner.read(buf)?;
            self.hasher.update(&buf[..n]);
            self.size += n as u64;
            Ok(n)
        }
    }
    let bad = |why: String| StoreError::BadSidecar {
        name: name.to_string(),
        why,
    };
    let mut h = Hashing {
        inner: archive,
        hasher: sha2::Sha256::new(),
        size: 0,
    };
    let mut manifest = None;
    {
        let gz = flate2::read::GzDecoder::new(&mut h);
        let mut tar = tar::Archive::new(gz);
        let entries = tar.entries().map_err(|e| bad(e.to_string()))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| bad(e.to_string()))?;
            let is_manifest = entry
                .path()
                .map(|p| p.as_os_str() == "manifest.json")
                .unwrap_or(false);
            if is_manifest {
                let mut body = Vec::new();
                entry
                    .by_ref()
                    .take(1 << 20)
                    .read_to_end(&mut body)
                    .map_err(|e| bad(e.to_string()))?;
                manifest = Some(Manifest::from_json(&body).map_err(|e| bad(e.to_string()))?);
            }
        }
    }
    // The rest of the stream (gzip trailer, padding) counts too.
    std::io::copy(&mut h, &mut std::io::sink()).map_err(|e| bad(e.to_string()))?;
    let manifest = manifest.ok_or_else(|| bad("the archive has no manifest.json".into()))?;
    Ok(Sidecar {
        name: name.to_string(),
        sha256: hex::encode(h.hasher.finalize()),
        size: h.size,
        application: application.to_string(),
        store: store.to_string(),
        manifest,
        verified: None,
    })
}

/// A backup found in a store, from its sidecar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub sidecar: Sidecar,
    /// Where the archive is, as the operator writes it (`s3://…` or a unit
    /// path).
    pub location: String,
}

/// A local directory or an S3 bucket.
pub enum BackupStore {
    Local(LocalStore),
    S3(Box<S3Store>),
}

impl BackupStore {
    /// `local` or `s3`.
    pub fn kind(&self) -> &'static str {
        match self {
            BackupStore::Local(_) => "local",
            BackupStore::S3(_) => "s3",
        }
    }

    /// Where `name` is (or would be).
    pub fn location(&self, name: &str) -> String {
        match self {
            BackupStore::Local(s) => s.location(name),
            BackupStore::S3(s) => s.location(name),
        }
    }

    /// True if an archive or a sidecar of this name is there.
    pub fn exists(&self, name: &str) -> Result<bool, StoreError> {
        match self {
            BackupStore::Local(s) => Ok(s.exists(name)),
            BackupStore::S3(s) => s.exists(name),
        }
    }

    /// Writes the archive `name` from what `fill` writes. Nothing under the
    /// final name appears unless `fill` and the store both succeed.
    pub fn put_archive<T, E: From<StoreError>>(
        &self,
        name: &str,
        fill: impl FnOnce(&mut dyn Write) -> Result<T, E>,
    ) -> Result<T, E> {
        if !is_archive_name(name) {
            return Err(StoreError::NotOurs(name.to_string()).into());
        }
        match self {
            BackupStore::Local(s) => s.put_archive(name, fill),
            BackupStore::S3(s) => s.put_archive(name, fill),
        }
    }

    /// Writes the sidecar of `sidecar.name`.
    pub fn put_sidecar(&self, sidecar: &Sidecar) -> Result<(), StoreError> {
        let body = sidecar.to_json()?;
        let name = sidecar_name(&sidecar.name);
        match self {
            BackupStore::Local(s) => s.put_small(&name, &body),
            BackupStore::S3(s) => s.put_small(&name, body),
        }
    }

    /// After [`Self::put_sidecar`]: checks that the archive under the name
    /// is still the one this store uploaded (two units may race on one
    /// tick's name). If another upload replaced it, the sidecar is rebuilt
    /// from the archive that is there, written, and returned.
    pub fn confirm_sidecar(&self, sidecar: &Sidecar) -> Result<Option<Sidecar>, StoreError> {
        let BackupStore::S3(s) = self else {
            // A local directory has one writer.
            return Ok(None);
        };
        if s.still_ours(&sidecar.name)? {
            return Ok(None);
        }
        tracing::warn!(
            "another upload replaced {}; describing the archive that is there",
            s.location(&sidecar.name)
        );
        let fresh = sidecar_from_archive(
            s.open(&sidecar.name)?,
            &sidecar.name,
            &sidecar.application,
            &sidecar.store,
        )?;
        self.put_sidecar(&fresh)?;
        Ok(Some(fresh))
    }

    /// Our backups: names of our pattern with a readable sidecar of
    /// `application`, in no particular order. Unreadable sidecars are
    /// returned as warnings, never deleted.
    pub fn list(&self, application: &str) -> Result<(Vec<Listed>, Vec<String>), StoreError> {
        let raw = match self {
            BackupStore::Local(s) => s.list_sidecars()?,
            BackupStore::S3(s) => s.list_sidecars()?,
        };
        let mut out = Vec::new();
        let mut warnings = Vec::new();
        for (archive, body) in raw {
            match Sidecar::from_json(&archive, &body) {
                Ok(sc) if sc.name == archive && sc.application == application => out.push(Listed {
                    location: self.location(&archive),
                    sidecar: sc,
                }),
                Ok(_) => {}
                Err(e) => warnings.push(e.to_string()),
            }
        }
        Ok((out, warnings))
    }

    /// Deletes a backup: its sidecar first (so it is no longer listed),
    /// then its archive.
    pub fn delete(&self, name: &str) -> Result<(), StoreError> {
        if !is_archive_name(name) {
            return Err(StoreError::NotOurs(name.to_string()));
        }
        match self {
            BackupStore::Local(s) => {
                s.delete(&sidecar_name(name))?;
                s.delete(name)
            }
            BackupStore::S3(s) => {
                s.delete(&sidecar_name(name))?;
                s.delete(name)
            }
        }
    }

    /// Opens an archive for streaming reads.
    pub fn open(&self, name: &str) -> Result<Box<dyn Read + '_>, StoreError> {
        if !is_archive_name(name) {
            return Err(StoreError::NotOurs(name.to_string()));
        }
        match self {
            BackupStore::Local(s) => s.open(name),
            BackupStore::S3(s) => s.open(name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sidecar_is_rebuilt_from_its_archive() {
        use sha2::Digest;
        let manifest = crate::snapshot::ManifestFields {
            etcd_version: "3.5.1".into(),
            cluster_id: "a1".into(),
            member_id: "b2".into(),
            revision: 9,
            key_count: 3,
            created: "2026-11-30T17:00:00Z".into(),
            source_unit: "etcd/2".into(),
        }
        .into_manifest("cd".repeat(32), 4);
        let json = manifest.to_json().unwrap();
        let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        for (name, data) in [("db", &b"dbdb"[..]), ("manifest.json", &json[..])] {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o600);
            h.set_cksum();
            b.append_data(&mut h, name, data).unwrap();
        }
        let bytes = b.into_inner().unwrap().finish().unwrap();
        let name = "etcd-snapshot-2026-11-30-17.00.00.tar.gz";
        let sc = sidecar_from_archive(&bytes[..], name, "etcd", "s3").unwrap();
        assert_eq!(sc.manifest, manifest);
        assert_eq!(sc.size, bytes.len() as u64);
        assert_eq!(sc.sha256, hex::encode(sha2::Sha256::digest(&bytes)));
        assert_eq!(sc.application, "etcd");
        // No manifest: refused.
        let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        let mut h = tar::Header::new_gnu();
        h.set_size(4);
        h.set_cksum();
        b.append_data(&mut h, "db", &b"dbdb"[..]).unwrap();
        let bytes = b.into_inner().unwrap().finish().unwrap();
        assert!(sidecar_from_archive(&bytes[..], name, "etcd", "s3").is_err());
    }

    #[test]
    fn a_verify_mark_round_trips_and_old_sidecars_have_none() {
        let manifest = crate::snapshot::ManifestFields {
            etcd_version: "3.5.1".into(),
            cluster_id: "a1".into(),
            member_id: "b2".into(),
            revision: 9,
            key_count: 3,
            created: "2026-11-30T17:00:00Z".into(),
            source_unit: "etcd/2".into(),
        }
        .into_manifest("cd".repeat(32), 4);
        let mut sc = Sidecar {
            name: "etcd-snapshot-2026-11-30-17.00.00.tar.gz".into(),
            sha256: "ab".repeat(32),
            size: 10,
            application: "etcd".into(),
            store: "local".into(),
            manifest,
            verified: None,
        };
        let plain = sc.to_json().unwrap();
        assert!(!String::from_utf8_lossy(&plain).contains("verified"));
        assert_eq!(Sidecar::from_json("x", &plain).unwrap().verified, None);
        sc.verified = Some(VerifyMark {
            at: "2026-11-30T17:01:00Z".into(),
            ok: false,
            result: "failed: damaged".into(),
        });
        let back = Sidecar::from_json("x", &sc.to_json().unwrap()).unwrap();
        assert_eq!(back, sc);
        let m = back.verified.unwrap();
        assert_eq!(m.summary(), "FAILED 2026-11-30T17:01:00Z");
        let ok = VerifyMark { ok: true, ..m };
        assert_eq!(ok.summary(), "verified 2026-11-30T17:01:00Z");
    }

    #[test]
    fn names_of_our_pattern_only() {
        assert!(is_archive_name("etcd-snapshot-2026-11-30-17.00.00.tar.gz"));
        for bad in [
            "etcd-snapshot-2026-11-30-17.00.00.tar.gz.partial",
            "etcd-backup-2026-11-30-17.00.00.tar.gz",
            "etcd-snapshot-2026-11-30-17.00.0x.tar.gz",
            "etcd-snapshot-2026-11-30-17-00-00.tar.gz",
            "etcd-snapshot-.tar.gz",
            "x/etcd-snapshot-2026-11-30-17.00.00.tar.gz",
        ] {
            assert!(!is_archive_name(bad), "{bad}");
        }
        assert_eq!(
            archive_of_sidecar("etcd-snapshot-2026-11-30-17.00.00.tar.gz.json"),
            Some("etcd-snapshot-2026-11-30-17.00.00.tar.gz")
        );
        assert_eq!(archive_of_sidecar("other.json"), None);
    }
}
