//! `manifest.json`: what an archive says about the db it carries.
//!
//! The restore action checks the db against `db-sha256`/`db-size` and, once
//! etcd runs on the restored data, checks `revision` and `key-count`. Keys
//! are kebab-case. Fields added by later charms are tolerated on read; a
//! `format` newer than [`FORMAT`] is refused, because this charm cannot know
//! what it changed.

use serde::{Deserialize, Serialize};

use super::name::parse_rfc3339;

/// The archive format this charm writes and understands.
pub const FORMAT: u32 = 1;

/// The manifest as stored in the archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Manifest {
    /// Archive format version, [`FORMAT`].
    pub format: u32,
    /// etcd's server version, e.g. `3.5.1`.
    pub etcd_version: String,
    /// Cluster ID, lowercase hex as `etcdctl` prints it.
    pub cluster_id: String,
    /// ID of the member the snapshot was taken from, lowercase hex.
    pub member_id: String,
    /// The store's revision when the snapshot was taken.
    pub revision: i64,
    /// The number of keys when the snapshot was taken.
    pub key_count: u64,
    /// sha256 of the `db` entry (etcd's trailing hash included), lowercase
    /// hex.
    pub db_sha256: String,
    /// Size of the `db` entry in bytes.
    pub db_size: u64,
    /// When the snapshot was taken, RFC 3339 in UTC (`2016-11-09T02:41:47Z`).
    pub created: String,
    /// The unit that took it, e.g. `etcd/0`.
    pub source_unit: String,
    /// Present when the archive also carries the application's CA
    /// (`snapshot include-pki=true`): the hashes of `pki/ca.crt` and
    /// `pki/ca.key`. Absent from archives without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pki: Option<PkiManifest>,
    /// etcd's `HashKV` of the source member at exactly `revision` (a
    /// CRC-32C of every key revision up to it), which a restore of this db
    /// must reproduce. Absent from archives made before it was recorded,
    /// and when a compaction ran while the snapshot was taken (the hash
    /// depends on the compaction revision, so it could not be pinned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashkv: Option<u32>,
    /// The compaction revision `hashkv` was computed under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashkv_compact_revision: Option<i64>,
}

/// `HashKV` at a revision, as the source member answered it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashKv {
    pub hash: u32,
    pub compact_revision: i64,
}

/// The CA carried next to the db.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct PkiManifest {
    /// sha256 of `pki/ca.crt` (PEM), lowercase hex.
    pub ca_cert_sha256: String,
    /// sha256 of `pki/ca.key` (PEM), lowercase hex.
    pub ca_key_sha256: String,
}

/// What the caller knows before the db is streamed: the manifest without
/// the db's hash and size (which `pack` computes) and without `format`
/// (always [`FORMAT`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestFields {
    pub etcd_version: String,
    /// Lowercase hex; see [`id_hex`].
    pub cluster_id: String,
    /// Lowercase hex; see [`id_hex`].
    pub member_id: String,
    pub revision: i64,
    pub key_count: u64,
    /// RFC 3339 UTC; see [`rfc3339`](super::rfc3339). The tar entries'
    /// mtime is taken from it too.
    pub created: String,
    pub source_unit: String,
}

/// Why a manifest could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest.json is not a valid manifest ({0}); the archive was not made by this charm or was altered; take a new snapshot")]
    Json(#[from] serde_json::Error),
    #[error("manifest.json has format {0}, which this charm does not know (it reads format {FORMAT}); upgrade the charm before restoring this archive")]
    NewerFormat(u32),
    #[error("manifest.json has format 0, which no charm writes; take a new snapshot")]
    ZeroFormat,
    #[error(
        "manifest field {field} is invalid ({why}); this is a bug in the caller, please report it"
    )]
    Field { field: &'static str, why: String },
}

/// An etcd ID (cluster or member) as lowercase hex, the way `etcdctl`
/// prints it.
pub fn id_hex(id: u64) -> String {
    format!("{id:x}")
}

fn check_hex_id(field: &'static str, v: &str) -> Result<(), ManifestError> {
    let ok = !v.is_empty()
        && v.len() <= 16
        && v.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ManifestError::Field {
            field,
            why: format!("{v:?} is not 1 to 16 lowercase hex digits"),
        })
    }
}

fn check_nonempty(field: &'static str, v: &str) -> Result<(), ManifestError> {
    if v.trim().is_empty() {
        Err(ManifestError::Field {
            field,
            why: "it is empty".into(),
        })
    } else {
        Ok(())
    }
}

impl ManifestFields {
    /// Checks the fields and returns `created` as Unix seconds.
    pub fn validate(&self) -> Result<i64, ManifestError> {
        check_nonempty("etcd-version", &self.etcd_version)?;
        check_nonempty("source-unit", &self.source_unit)?;
        check_hex_id("cluster-id", &self.cluster_id)?;
        check_hex_id("member-id", &self.member_id)?;
        parse_rfc3339(&self.created).ok_or_else(|| ManifestError::Field {
            field: "created",
            why: format!("{:?} is not YYYY-MM-DDTHH:MM:SSZ", self.created),
        })
    }

    /// The full manifest, once the db's hash and size are known.
    pub fn into_manifest(self, db_sha256: String, db_size: u64) -> Manifest {
        Manifest {
            format: FORMAT,
            etcd_version: self.etcd_version,
            cluster_id: self.cluster_id,
            member_id: self.member_id,
            revision: self.revision,
            key_count: self.key_count,
            db_sha256,
            db_size,
            created: self.created,
            source_unit: self.source_unit,
            pki: None,
            hashkv: None,
            hashkv_compact_revision: None,
        }
    }
}

#[derive(Deserialize)]
struct FormatOnly {
    format: u32,
}

impl Manifest {
    /// The recorded `HashKV`, when there is one.
    pub fn hash_kv(&self) -> Option<HashKv> {
        Some(HashKv {
            hash: self.hashkv?,
            compact_revision: self.hashkv_compact_revision?,
        })
    }

    /// Parses `manifest.json`. The format is checked first, so a newer
    /// manifest is refused for its format, not for a missing field.
    pub fn from_json(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        let FormatOnly { format } = serde_json::from_slice(bytes)?;
        match format {
            0 => return Err(ManifestError::ZeroFormat),
            f if f > FORMAT => return Err(ManifestError::NewerFormat(f)),
            _ => {}
        }
        Ok(serde_json::from_slice(bytes)?)
    }

    /// `manifest.json`'s bytes: pretty JSON with a final newline.
    pub fn to_json(&self) -> Result<Vec<u8>, ManifestError> {
        let mut v = serde_json::to_vec_pretty(self)?;
        v.push(b'\n');
        Ok(v)
    }

    /// `created` as Unix seconds, if it has the form this charm writes.
    pub fn created_unix(&self) -> Option<i64> {
        parse_rfc3339(&self.created)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::testutil::fields;

    fn sample() -> Manifest {
        fields().into_manifest("ab".repeat(32), 12_320)
    }

    #[test]
    fn keys_are_kebab_case_and_round_trip() {
        let m = sample();
        let json = m.to_json().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "cluster-id",
                "created",
                "db-sha256",
                "db-size",
                "etcd-version",
                "format",
                "key-count",
                "member-id",
                "revision",
                "source-unit"
            ]
        );
        assert_eq!(v["format"], 1);
        assert_eq!(v["db-size"], 12_320);
        assert!(json.ends_with(b"}\n"));
        assert_eq!(Manifest::from_json(&json).unwrap(), m);
    }

    #[test]
    fn hashkv_is_optional_and_kebab_case() {
        let mut m = sample();
        assert_eq!(m.hash_kv(), None);
        m.hashkv = Some(0xdead_beef);
        m.hashkv_compact_revision = Some(17);
        let v: serde_json::Value = serde_json::from_slice(&m.to_json().unwrap()).unwrap();
        assert_eq!(v["hashkv"], 0xdead_beef_u32);
        assert_eq!(v["hashkv-compact-revision"], 17);
        let back = Manifest::from_json(&m.to_json().unwrap()).unwrap();
        assert_eq!(
            back.hash_kv(),
            Some(HashKv {
                hash: 0xdead_beef,
                compact_revision: 17
            })
        );
    }

    #[test]
    fn unknown_fields_are_tolerated() {
        let mut v = serde_json::to_value(sample()).unwrap();
        v["compression"] = "zstd-someday".into();
        v["extra"] = serde_json::json!({"nested": [1, 2]});
        let m = Manifest::from_json(&serde_json::to_vec(&v).unwrap()).unwrap();
        assert_eq!(m, sample());
    }

    #[test]
    fn newer_or_zero_format_is_refused_with_advice() {
        let mut v = serde_json::to_value(sample()).unwrap();
        v["format"] = 2.into();
        // A newer format may drop fields: still refused for its format.
        v.as_object_mut().unwrap().remove("db-size");
        let e = Manifest::from_json(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert!(matches!(e, ManifestError::NewerFormat(2)), "{e}");
        assert!(e.to_string().contains("upgrade the charm"), "{e}");
        v["format"] = 0.into();
        let e = Manifest::from_json(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert!(matches!(e, ManifestError::ZeroFormat), "{e}");
    }

    #[test]
    fn bad_json_and_missing_fields_are_refused() {
        assert!(matches!(
            Manifest::from_json(b"not json"),
            Err(ManifestError::Json(_))
        ));
        assert!(matches!(
            Manifest::from_json(br#"{"format": 1}"#),
            Err(ManifestError::Json(_))
        ));
        assert!(matches!(
            Manifest::from_json(br#"{"format": "1"}"#),
            Err(ManifestError::Json(_))
        ));
    }

    #[test]
    fn fields_are_validated() {
        assert_eq!(fields().validate().unwrap(), 1_478_659_307);
        type Mutate = fn(&mut ManifestFields);
        let cases: [(&str, Mutate); 6] = [
            ("cluster-id", |f| f.cluster_id = "CDF8".into()),
            ("cluster-id", |f| f.cluster_id = String::new()),
            ("member-id", |f| f.member_id = "1234567890abcdef0".into()),
            ("created", |f| f.created = "2016-11-09 02:41:47".into()),
            ("etcd-version", |f| f.etcd_version = " ".into()),
            ("source-unit", |f| f.source_unit = String::new()),
        ];
        for (want, mutate) in cases {
            let mut f = fields();
            mutate(&mut f);
            match f.validate() {
                Err(ManifestError::Field { field, .. }) => assert_eq!(field, want),
                other => panic!("{want}: {other:?}"),
            }
        }
        assert_eq!(id_hex(0xcdf8_1819_4e3a_8c32), "cdf818194e3a8c32");
    }
}
