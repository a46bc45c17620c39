//! Snapshot archives: the format that the `snapshot` action writes and the
//! `restore` action reads, and nothing else.
//!
//! This module is pure: no processes, no network, no clock and no Juju.
//! Bytes come in through `Read`, go out through `Write`, timestamps are
//! passed in, and progress is reported through the [`Progress`] trait so
//! that the core never prints. The glue in `src/charm` owns the files, the
//! etcd stream and the action results.
//!
//! - [`name`]: the archive's file name and RFC 3339 times, from Unix seconds;
//! - [`manifest`]: the `manifest.json` carried next to the db;
//! - [`mod@pack`]: one streaming pass from etcd's snapshot stream to a `.tar.gz`,
//!   verifying etcd's trailing sha256 and hashing the archive as it is
//!   written;
//! - [`mod@inspect`]: one streaming pass over an input that classifies it (our
//!   archive, the old charm's archive, a plain `etcdctl snapshot save` file),
//!   verifies it in full and collects [`Finding`]s with repair hints;
//! - [`mod@foreign`]: other tools' containers (gzip, zlib, Go's LZW, a
//!   single-entry zip; kops' backup directory is read by `inspect`'s tar
//!   pass), Gardener's incremental snapshots, and the bounds on every
//!   decompressor (output against the room given, and a ratio limit).
//!
//! The archive layout (format 1) is a single-member gzip holding a tar with
//! exactly two regular files, both mode 0600, in this order: `db` (the
//! snapshot exactly as etcd sent it, its trailing sha256 included) and then
//! `manifest.json` (whose `db-sha256` and `db-size` describe that `db`).
//! With `include-pki=true`, `pki/ca.crt` and `pki/ca.key` (the
//! application's CA, PEM, 0600) come between the two, and the manifest's
//! `pki` records their sha256.

mod db;
mod foreign;
mod hash;
pub mod inspect;
pub mod manifest;
pub mod name;
pub mod pack;
pub mod pgzip;
mod sink;

#[cfg(test)]
mod foreign_tests;
#[cfg(test)]
mod real_etcd;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod testutil;

pub use db::{BBOLT_MAGIC, ETCD_HASH_LEN, MAGIC_OFFSET};
pub use inspect::{
    inspect, CarriedPki, Finding, InspectError, Inspection, Kind, Level, Limits, SourceMeta,
};
pub use manifest::{HashKv, Manifest, ManifestError, ManifestFields, PkiManifest, FORMAT};
pub use name::{archive_name, named_archive, parse_rfc3339, rfc3339};
pub use pack::{
    pack, pack_with, pack_with_pki, PackError, Packed, PkiFiles, COMPRESSION_LEVEL, PKI_CERT_ENTRY,
    PKI_KEY_ENTRY,
};

/// The size of the one buffer each streaming pass uses. Memory stays flat
/// whatever the size of the db.
pub const BUF_SIZE: usize = 1 << 20;

/// Receives progress from a streaming pass. The core never prints; the
/// caller decides whether and how often to tell the operator.
pub trait Progress {
    /// Called after each chunk with the bytes handled so far and, when it is
    /// known, the total. `pack` counts db bytes against the announced size;
    /// `inspect` counts input bytes and knows no total.
    fn advance(&mut self, bytes_done: u64, total: Option<u64>);
}

/// Progress that goes nowhere.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn advance(&mut self, _bytes_done: u64, _total: Option<u64>) {}
}

impl<F: FnMut(u64, Option<u64>)> Progress for F {
    fn advance(&mut self, bytes_done: u64, total: Option<u64>) {
        self(bytes_done, total)
    }
}
