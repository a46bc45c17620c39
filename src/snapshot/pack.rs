//! Packing: etcd's snapshot stream → `etcd-snapshot-….tar.gz`, in one pass.
//!
//! The db is read once through a fixed [`BUF_SIZE`] buffer. Each chunk
//! feeds the `DbScanner` (the db's sha256 and etcd's trailing-hash check)
//! and the gzip'd tar writer, whose output goes through a hashing, counting
//! writer, so the archive's own sha256 and size are known when the last
//! byte is written and the file never has to be read again. The manifest
//! goes after the db because its `db-sha256` is only known at the end.
//!
//! The `tar` crate writes the archive. Its `append` copies whatever the
//! reader yields without checking it against the header's size, so the db
//! goes through [`StrictDb`], a reader that feeds the scanner and progress
//! and refuses to end early; a stream that is too long is caught after.

use std::io::{self, Read, Write};

use sha2::Digest;

use super::db::{DbScanner, Trailer, ETCD_HASH_LEN, HASH_ALIGN};
use super::hash::Sha256;
use super::manifest::{HashKv, Manifest, ManifestError, ManifestFields};
use super::pgzip::{default_workers, ParGzWriter};
use super::{Progress, BUF_SIZE};

/// gzip level. gzip is the bottleneck of a snapshot (about 5 s for 200 MB
/// at the default level 6, against 0.8 s for etcd to send it); level 1 is
/// several times faster and etcd's mostly-empty pages still compress well.
/// The blocks are compressed on several threads ([`super::pgzip`]).
pub const COMPRESSION_LEVEL: u32 = 1;

/// Mode of both entries: snapshots are secrets.
const ENTRY_MODE: u32 = 0o600;
/// The smallest stream that can be a db: bbolt's magic plus etcd's hash.
const MIN_DB_SIZE: u64 = 20 + ETCD_HASH_LEN as u64;

/// What `pack` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed {
    /// sha256 of the archive's bytes, lowercase hex: what `sha256sum`
    /// prints for the file.
    pub archive_sha256: String,
    /// The archive's size in bytes.
    pub archive_size: u64,
    /// The manifest stored in the archive.
    pub manifest: Manifest,
}

/// Why a snapshot could not be packed. Whatever was written to `out` must
/// be discarded.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error("cannot read etcd's snapshot stream: {0}; check that etcd is healthy and run the snapshot action again")]
    Read(#[source] io::Error),
    #[error("cannot write the snapshot archive: {0}; check that the target directory is writable and has room for the snapshot, then run the action again")]
    Write(#[source] io::Error),
    #[error("etcd's snapshot stream ended after {got} of {expected} bytes; the transfer was cut short, run the snapshot action again")]
    Short { expected: u64, got: u64 },
    #[error("etcd's snapshot stream is longer than the {expected} bytes it announced; run the snapshot action again")]
    Long { expected: u64 },
    #[error("etcd's snapshot stream is {size} bytes, too small to be a database; check that the endpoint is an etcd server and run the action again")]
    TooSmall { size: u64 },
    #[error("etcd's snapshot stream failed its own sha256 check (it carries {stored}, the data hashes to {computed}); the transfer was corrupted, run the snapshot action again")]
    HashMismatch { stored: String, computed: String },
    #[error("etcd's snapshot stream of {size} bytes does not end in etcd's sha256 where etcd puts it (size % 512 must be 32); run the snapshot action again and report this if it persists")]
    NotHashAligned { size: u64 },
    #[error("etcd's snapshot stream is not a bbolt database (no magic number at offset 16); check that the endpoint is an etcd v3 server")]
    NotBbolt,
    #[error(transparent)]
    Manifest(#[from] ManifestError),
}

/// A writer that hashes and counts exactly the bytes its inner writer
/// accepted.
pub(crate) struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// (sha256 as lowercase hex, bytes written).
    pub fn finish(self) -> (String, u64) {
        (self.hasher.finish_hex(), self.count)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Reads once into `buf`, retrying on `Interrupted`.
pub(crate) fn read_some<R: Read + ?Sized>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match r.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Fills `buf` from `r`, stopping early only at end of input; returns the
/// bytes read.
pub(crate) fn read_full<R: Read + ?Sized>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        let n = read_some(r, &mut buf[got..])?;
        if n == 0 {
            break;
        }
        got += n;
    }
    Ok(got)
}

/// A regular-file header for one of our two entries. The name is one of our
/// constants, never input.
fn entry_header(name: &str, size: u64, mtime: u64) -> Result<tar::Header, PackError> {
    let mut h = tar::Header::new_gnu();
    h.set_path(name).map_err(PackError::Write)?;
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(ENTRY_MODE);
    h.set_uid(0);
    h.set_gid(0);
    h.set_size(size);
    h.set_mtime(mtime);
    h.set_cksum();
    Ok(h)
}

/// The db stream as the tar writer sees it: exactly `size` bytes, each
/// chunk also fed to the scanner and reported as progress. Ending early is
/// an error (the tar crate would otherwise pad a short entry silently); the
/// cause is kept so `pack` can tell a read failure from a write failure.
struct StrictDb<'a, R> {
    inner: R,
    size: u64,
    done: u64,
    scanner: DbScanner,
    progress: &'a mut dyn Progress,
    failure: Option<PackError>,
}

impl<R: Read> Read for StrictDb<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.size - self.done;
        if left == 0 {
            return Ok(0);
        }
        let want = usize::try_from(left).map_or(buf.len(), |l| l.min(buf.len()));
        let n = match read_some(&mut self.inner, &mut buf[..want]) {
            Ok(n) => n,
            Err(e) => {
                let msg = e.to_string();
                self.failure = Some(PackError::Read(e));
                return Err(io::Error::other(msg));
            }
        };
        if n == 0 {
            self.failure = Some(PackError::Short {
                expected: self.size,
                got: self.done,
            });
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        }
        self.scanner.update(&buf[..n]);
        self.done += n as u64;
        self.progress.advance(self.done, Some(self.size));
        Ok(n)
    }
}

/// The application's CA, carried in the archive by `include-pki=true`. Both
/// are PEM; the key is written 0600 like every entry and never logged.
#[derive(Clone, Copy)]
pub struct PkiFiles<'a> {
    pub ca_cert: &'a [u8],
    pub ca_key: &'a [u8],
}

impl std::fmt::Debug for PkiFiles<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PkiFiles")
            .field("ca_cert", &format_args!("{} bytes", self.ca_cert.len()))
            .field("ca_key", &format_args!("[redacted]"))
            .finish()
    }
}

/// Entry names of the CA in an archive.
pub const PKI_CERT_ENTRY: &str = "pki/ca.crt";
pub const PKI_KEY_ENTRY: &str = "pki/ca.key";

/// [`pack_with_pki`] without a CA.
pub fn pack<R: Read, W: Write>(
    db: R,
    db_size: u64,
    fields: ManifestFields,
    out: W,
    progress: &mut dyn Progress,
) -> Result<Packed, PackError> {
    pack_with_pki(db, db_size, fields, None, out, progress)
}

/// Streams etcd's snapshot into a gzip'd tar on `out` and returns the
/// archive's sha256 and size and the manifest written. With `pki`, the CA
/// goes in as `pki/ca.crt` and `pki/ca.key` between the db and the
/// manifest, and the manifest records their hashes.
///
/// `db` must yield exactly `db_size` bytes, exactly as etcd's Maintenance
/// snapshot stream does: the bbolt file followed by its 32-byte sha256.
/// With `etcd-client`, `db_size` is the first message's `blob().len()` plus
/// its `remaining_bytes()` (which count the bbolt file only) plus 32 for the
/// hash etcd sends last. A stream that is shorter or longer, whose trailing
/// hash does not match, or that is not a bbolt file is an error, and
/// whatever was written to `out` must then be discarded (write to
/// `*.partial` and remove it).
///
/// `out` is flushed but not synced; the caller fsyncs and renames. Progress
/// is reported in db bytes against `db_size`.
pub fn pack_with_pki<R: Read, W: Write>(
    db: R,
    db_size: u64,
    fields: ManifestFields,
    pki: Option<PkiFiles<'_>>,
    out: W,
    progress: &mut dyn Progress,
) -> Result<Packed, PackError> {
    pack_with(db, db_size, fields, pki, &mut || None, out, progress)
}

/// [`pack_with_pki`], and `after_db` is asked, once the whole db has been
/// read and verified and before the manifest is written, for the source's
/// `HashKV` at the manifest's revision (the caller pins it around the
/// stream; `None` leaves it out of the manifest).
pub fn pack_with<R: Read, W: Write>(
    db: R,
    db_size: u64,
    fields: ManifestFields,
    pki: Option<PkiFiles<'_>>,
    after_db: &mut dyn FnMut() -> Option<HashKv>,
    out: W,
    progress: &mut dyn Progress,
) -> Result<Packed, PackError> {
    let created = fields.validate()?;
    if db_size < MIN_DB_SIZE {
        return Err(PackError::TooSmall { size: db_size });
    }
    let mtime = u64::try_from(created).unwrap_or(0);
    let gz = ParGzWriter::new(
        HashingWriter::new(out),
        COMPRESSION_LEVEL,
        default_workers(),
    )
    .map_err(PackError::Write)?;
    let mut tar = tar::Builder::new(io::BufWriter::with_capacity(BUF_SIZE, gz));
    let w = PackError::Write;

    let mut strict = StrictDb {
        inner: db,
        size: db_size,
        done: 0,
        scanner: DbScanner::new(),
        progress,
        failure: None,
    };
    if let Err(e) = tar.append(&entry_header("db", db_size, mtime)?, &mut strict) {
        return Err(strict.failure.take().unwrap_or(PackError::Write(e)));
    }
    let mut probe = [0u8; 1];
    if read_some(&mut strict.inner, &mut probe).map_err(PackError::Read)? != 0 {
        return Err(PackError::Long { expected: db_size });
    }
    let digest = strict.scanner.finish();
    if !digest.has_magic {
        return Err(PackError::NotBbolt);
    }
    match digest.trailer {
        Trailer::Matches => {}
        Trailer::Mismatch { stored, computed } => {
            return Err(PackError::HashMismatch { stored, computed })
        }
        Trailer::TooShort => return Err(PackError::TooSmall { size: db_size }),
    }
    if db_size % HASH_ALIGN != ETCD_HASH_LEN as u64 {
        return Err(PackError::NotHashAligned { size: db_size });
    }

    let mut manifest = fields.into_manifest(digest.sha256, digest.size);
    if let Some(h) = after_db() {
        manifest.hashkv = Some(h.hash);
        manifest.hashkv_compact_revision = Some(h.compact_revision);
    }
    if let Some(p) = pki {
        for (name, data) in [(PKI_CERT_ENTRY, p.ca_cert), (PKI_KEY_ENTRY, p.ca_key)] {
            tar.append(&entry_header(name, data.len() as u64, mtime)?, data)
                .map_err(w)?;
        }
        manifest.pki = Some(super::manifest::PkiManifest {
            ca_cert_sha256: hex::encode(sha2::Sha256::digest(p.ca_cert)),
            ca_key_sha256: hex::encode(sha2::Sha256::digest(p.ca_key)),
        });
    }
    let json = manifest.to_json()?;
    tar.append(
        &entry_header("manifest.json", json.len() as u64, mtime)?,
        json.as_slice(),
    )
    .map_err(w)?;
    // Writes the end-of-archive blocks.
    let buffered = tar.into_inner().map_err(w)?;
    let gz = buffered
        .into_inner()
        .map_err(|e| PackError::Write(e.into_error()))?;
    let mut hashing = gz.finish().map_err(w)?;
    hashing.flush().map_err(w)?;
    let (archive_sha256, archive_size) = hashing.finish();
    Ok(Packed {
        archive_sha256,
        archive_size,
        manifest,
    })
}
