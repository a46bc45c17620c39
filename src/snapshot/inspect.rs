//! Inspecting an input before a restore touches anything: one pass that
//! classifies it, verifies it in full and extracts its db.
//!
//! Three kinds of input are accepted (see [`Kind`]): our archives, the
//! original charm's archives (a tar.gz of `./db`, a raw bbolt file with no
//! hash) and plain `etcdctl snapshot save` files. Everything is read once
//! through a fixed buffer: the input is hashed as it is read, the gzip
//! stream is decoded to its very last byte (so a flipped byte or a
//! truncation anywhere is caught by gzip's CRC and length), tar headers are
//! read raw and only whitelisted names are accepted, compared as bytes and
//! never joined onto a path. The db is streamed into the caller's writer in
//! the same pass.
//!
//! Like rustic's `check`, problems become [`Finding`]s with a level and a
//! repair hint, and the scan carries on where that makes sense; any
//! [`Level::Error`] finding means the input must be refused. Only failures
//! of the caller's own IO are `Err`.

use std::fmt;
use std::io::{self, BufRead, BufReader, Chain, Cursor, Read, Write};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::db::{DbDigest, Trailer, BBOLT_MAGIC, HASH_ALIGN, MAGIC_OFFSET};
use super::foreign::{self, Bounded, Codec, Decompress, Meter, Shape};
use super::manifest::Manifest;
use super::pack::{read_full, read_some};
use super::sink::DbSink;
use super::{Progress, BUF_SIZE};

const HEAD_LEN: usize = MAGIC_OFFSET + BBOLT_MAGIC.len();
/// Decompressed bytes tolerated after the tar's end-of-archive blocks.
/// GNU tar pads to 10 KiB records; our archives have none.
const MAX_TAR_PADDING: u64 = 1 << 20;

const HINT_RECOPY: &str = "Copy the archive again from where it was made, check that its sha256 matches the one the snapshot action reported, and attach it again.";
const HINT_FOREIGN: &str = "Attach an archive made by the snapshot action or by the original etcd charm, or a file written by `etcdctl snapshot save`; do not repack or edit them.";
const HINT_NOT_ETCD: &str = "Attach a snapshot of an etcd v3 database: an archive made by the snapshot action or by the original etcd charm, or a file written by `etcdctl snapshot save`.";
const HINT_RELEASE: &str = "This is an etcd release tarball, not a snapshot: attach it as the etcd resource (juju attach-resource APP etcd=FILE), and attach a snapshot archive as the snapshot resource.";
/// Unexpected entries named one by one; the rest are counted.
const MAX_NAMED_UNEXPECTED: usize = 3;
const HINT_TOO_LARGE: &str =
    "Check that the right file is attached; etcd databases are at most a few GiB.";
const HINT_BOMB: &str = "Check that the right file is attached and where it came from. If it is genuine, decompress it yourself on a machine with room for it and attach the plain snapshot file, or free space next to etcd's data.";
const HINT_INCREMENTAL: &str = "Attach the full snapshot it builds on instead (Gardener's newest Full-<start>-<last>-<time> file at or before it); the events after that full snapshot are not restored. To keep them, restore with etcdbrctl, then take a snapshot of that etcd with `etcdctl snapshot save` and attach it.";
const HINT_V2: &str = "v2 data is not supported: etcd 3.4 and later keep everything in the v3 store. Take a v3 snapshot of the old cluster instead (the original charm's snapshot action with keys-version=v3, or `ETCDCTL_API=3 etcdctl snapshot save`) and attach that.";

/// What an input turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// An archive made by this charm: gzip'd tar with `db` and
    /// `manifest.json`.
    Charm,
    /// An archive made by the original Python charm: gzip'd tar holding
    /// `./db` (or `db`), a raw copy of `member/snap/db`.
    LegacyCharm,
    /// A plain `etcdctl snapshot save` file (or the Maintenance stream);
    /// also what charmed-etcd, k3s/RKE2 and Gardener write uncompressed.
    EtcdctlSnapshot,
    /// A plain snapshot gzip'd on its own: kops etcd-manager's
    /// `etcd.backup.gz`, Gardener's `Full-…gz`.
    GzipSnapshot,
    /// A plain snapshot in a zlib stream: Gardener's `Full-….zlib`.
    ZlibSnapshot,
    /// A plain snapshot in Go's `compress/lzw` stream: Gardener's
    /// `Full-….Z`.
    LzwSnapshot,
    /// A zip holding one plain snapshot: k3s and RKE2's `….zip`.
    ZipSnapshot,
    /// A tar.gz of kops etcd-manager's backup directory: `etcd.backup.gz`
    /// and `_etcd_backup.meta`.
    KopsBackup,
    /// Gardener's incremental snapshot (watch events); always refused.
    GardenerIncremental,
    /// The original charm's v2 backup (`member/snap/*.snap`,
    /// `member/wal/*.wal`); always refused.
    LegacyV2,
    /// None of the above; always comes with an error finding.
    Unknown,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Charm => "charm",
            Kind::LegacyCharm => "legacy-charm",
            Kind::EtcdctlSnapshot => "etcdctl-snapshot",
            Kind::GzipSnapshot => "gzip-snapshot",
            Kind::ZlibSnapshot => "zlib-snapshot",
            Kind::LzwSnapshot => "lzw-snapshot",
            Kind::ZipSnapshot => "zip-snapshot",
            Kind::KopsBackup => "kops-backup",
            Kind::GardenerIncremental => "gardener-incremental",
            Kind::LegacyV2 => "legacy-charm-v2",
            Kind::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How serious a finding is. Any `Error` means "refuse".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Level {
    Info,
    Warning,
    Error,
}

/// One thing the inspection noticed, with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub level: Level,
    pub message: String,
    /// What the operator should do; always present for errors.
    pub hint: Option<String>,
}

impl Finding {
    fn error(message: impl Into<String>, hint: &str) -> Finding {
        Finding {
            level: Level::Error,
            message: message.into(),
            hint: Some(hint.to_owned()),
        }
    }

    fn warning(message: impl Into<String>) -> Finding {
        Finding {
            level: Level::Warning,
            message: message.into(),
            hint: None,
        }
    }

    fn info(message: impl Into<String>) -> Finding {
        Finding {
            level: Level::Info,
            message: message.into(),
            hint: None,
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.level {
            Level::Info => "info",
            Level::Warning => "warning",
            Level::Error => "error",
        };
        write!(f, "{level}: {}", self.message)?;
        if let Some(h) = &self.hint {
            write!(f, " ({h})")?;
        }
        Ok(())
    }
}

/// Bounds on what an input may claim, so a hostile archive cannot make the
/// restore decompress or allocate without end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest db accepted (an entry's size, or a plain file's).
    pub max_db_size: u64,
    /// The largest `manifest.json` accepted; it is held in memory.
    pub max_manifest_size: u64,
    /// The most bytes a decompressor may write per input byte read, once
    /// it has written `ratio_floor` bytes. Real etcd databases compress
    /// 1-10 times; gzip's own limit is about 1,030.
    pub max_ratio: u64,
    /// Output below this size is never judged by its ratio (small dbs
    /// compress well).
    pub ratio_floor: u64,
}

impl Default for Limits {
    /// 16 GiB of db (etcd's own quota tops out at 8 GiB), 64 KiB of
    /// manifest, and at most 100 bytes out per byte in past 64 MiB.
    fn default() -> Self {
        Limits {
            max_db_size: 16 << 30,
            max_manifest_size: 64 << 10,
            max_ratio: 100,
            ratio_floor: 64 << 20,
        }
    }
}

impl Limits {
    /// `None` while a decompressor that has written `out` bytes from
    /// `input` bytes read is within bounds; otherwise the finding that
    /// stops it, before the disk fills.
    pub fn check_output(&self, what: &str, out: u64, input: u64) -> Option<Finding> {
        if out > self.max_db_size {
            return Some(Finding::error(
                format!(
                    "{what} decompresses to more than {} bytes, more than the {} bytes the restore may write (the free space next to etcd's data, at most 16 GiB); it was not expanded further",
                    self.max_db_size, self.max_db_size
                ),
                HINT_BOMB,
            ));
        }
        if out > self.ratio_floor && out / input.max(1) >= self.max_ratio {
            return Some(Finding::error(
                format!(
                    "{what} expands more than {} times ({out} bytes out of the first {input} bytes read), which no etcd database does; it looks like a decompression bomb and was not expanded further",
                    self.max_ratio
                ),
                HINT_BOMB,
            ));
        }
        None
    }
}

/// The CA an archive carries (`include-pki=true`), verified against the
/// manifest. The key's bytes are zeroed on drop and never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct CarriedPki {
    pub ca_cert: Vec<u8>,
    pub ca_key: zeroize::Zeroizing<Vec<u8>>,
}

impl fmt::Debug for CarriedPki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CarriedPki")
            .field("ca_cert", &format_args!("{} bytes", self.ca_cert.len()))
            .field("ca_key", &format_args!("[redacted]"))
            .finish()
    }
}

/// The largest `pki/` entry accepted; a PEM CA is a few KiB.
const MAX_PKI_ENTRY: u64 = 64 << 10;

/// The outcome of [`inspect`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    pub kind: Kind,
    /// The manifest, for [`Kind::Charm`] when it could be read.
    pub manifest: Option<Manifest>,
    /// sha256 of the db actually read, lowercase hex; empty when no whole
    /// db was read.
    pub db_sha256: String,
    /// Size of the db actually read; 0 when no whole db was read.
    pub db_size: u64,
    /// sha256 of the whole input as read, lowercase hex (what `sha256sum`
    /// prints for the file).
    pub input_sha256: String,
    pub input_size: u64,
    /// The db ends in etcd's sha256 and it matches.
    pub has_etcd_hash: bool,
    /// The db carries no hash: restore with `--skip-hash-check`.
    pub needs_skip_hash_check: bool,
    /// The CA the archive carries, when it carries one and it matches the
    /// manifest.
    pub pki: Option<CarriedPki>,
    /// What another tool's metadata says about the snapshot (kops
    /// etcd-manager's `_etcd_backup.meta`).
    pub source_meta: Option<SourceMeta>,
    pub findings: Vec<Finding>,
}

/// Another tool's record of where a snapshot came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceMeta {
    /// The etcd version the tool recorded, e.g. `3.4.13`.
    pub etcd_version: Option<String>,
    /// When the snapshot was taken, Unix seconds.
    pub timestamp: Option<i64>,
}

impl Inspection {
    /// The error findings.
    pub fn errors(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.level == Level::Error)
    }

    /// `None` when the input may be restored; otherwise one paragraph for
    /// the operator: what is wrong and what to do.
    pub fn refused(&self) -> Option<String> {
        let errors: Vec<&Finding> = self.errors().collect();
        if errors.is_empty() {
            return None;
        }
        let what: Vec<&str> = errors.iter().map(|f| f.message.as_str()).collect();
        let mut hints: Vec<&str> = Vec::new();
        for h in errors.iter().filter_map(|f| f.hint.as_deref()) {
            if !hints.contains(&h) {
                hints.push(h);
            }
        }
        let mut msg = format!(
            "The snapshot ({} bytes, sha256 {}) cannot be restored: {}.",
            self.input_size,
            self.input_sha256,
            what.join("; ")
        );
        for h in hints {
            msg.push(' ');
            msg.push_str(h);
        }
        Some(msg)
    }
}

/// Why an inspection could not be carried out at all: the caller's own IO
/// failed. (A damaged input is not an error; it is a refused inspection.)
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error("cannot read the snapshot: {0}; check that the attached resource is readable and run the action again")]
    Read(#[source] io::Error),
    #[error("cannot write the extracted database: {0}; check that the disk has room for the database and run the action again")]
    WriteDb(#[source] io::Error),
}

/// Hashes and counts the raw input, reports progress, and remembers whether
/// the underlying reader failed (so that its errors are not mistaken for a
/// damaged archive once they come out of the gzip decoder).
struct Tap<'p, R> {
    inner: R,
    hasher: super::hash::Sha256,
    count: u64,
    /// `count`, shared with the decompressors' bounds.
    meter: Meter,
    progress: &'p mut dyn Progress,
    failed: Option<io::Error>,
}

impl<R: Read> Read for Tap<'_, R> {
    /// Retries `Interrupted` here, so the layers above (gzip, tar) never
    /// see it.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match read_some(&mut self.inner, buf) {
            Ok(n) => {
                self.hasher.update(&buf[..n]);
                self.count += n as u64;
                self.meter.add(n as u64);
                if n > 0 {
                    self.progress.advance(self.count, None);
                }
                Ok(n)
            }
            Err(e) => {
                self.failed = Some(io::Error::new(e.kind(), e.to_string()));
                Err(e)
            }
        }
    }
}

type Source<'p, R> = Chain<Cursor<Vec<u8>>, Tap<'p, R>>;

/// What the pass found, before it becomes an [`Inspection`].
struct Report {
    kind: Kind,
    meter: Meter,
    source_meta: Option<SourceMeta>,
    pki: Option<CarriedPki>,
    manifest: Option<Manifest>,
    db: Option<DbDigest>,
    has_etcd_hash: bool,
    needs_skip_hash_check: bool,
    findings: Vec<Finding>,
}

/// Reads `input` once, classifies and verifies it, and streams its db into
/// `db_out` when one is given.
///
/// When the inspection is refused ([`Inspection::refused`]), whatever was
/// written to `db_out` must be discarded. `input_sha256` and `input_size`
/// always cover the whole input. Progress counts input bytes; the total is
/// not known.
pub fn inspect<R: Read>(
    input: R,
    db_out: Option<&mut (dyn Write + Send)>,
    limits: Limits,
    progress: &mut dyn Progress,
) -> Result<Inspection, InspectError> {
    std::thread::scope(|scope| {
        let mut sink = DbSink::spawn(scope, db_out);
        inspect_into(input, &mut sink, limits, progress)
    })
}

fn inspect_into<R: Read>(
    input: R,
    sink: &mut DbSink,
    limits: Limits,
    progress: &mut dyn Progress,
) -> Result<Inspection, InspectError> {
    let meter = Meter::default();
    let mut tap = Tap {
        inner: input,
        hasher: super::hash::Sha256::new(),
        count: 0,
        meter: meter.clone(),
        progress,
        failed: None,
    };
    let mut head = [0u8; HEAD_LEN];
    let head_len = read_full(&mut tap, &mut head).map_err(InspectError::Read)?;
    let head = &head[..head_len];
    let mut report = Report {
        kind: Kind::Unknown,
        meter,
        source_meta: None,
        pki: None,
        manifest: None,
        db: None,
        has_etcd_hash: false,
        needs_skip_hash_check: false,
        findings: Vec::new(),
    };
    let mut prefix = head.to_vec();
    let raw = head.len() == HEAD_LEN && head[MAGIC_OFFSET..] == BBOLT_MAGIC;
    if !raw && !head.is_empty() {
        // Enough of a compressed stream to see what it holds: a tar, or a
        // plain snapshot compressed on its own (as etcd-manager and
        // etcd-backup-restore store them).
        let mut more = vec![0u8; PEEK];
        let got = read_full(&mut tap, &mut more).map_err(InspectError::Read)?;
        prefix.extend_from_slice(&more[..got]);
    }
    let shape = if head.is_empty() {
        Shape::Unknown
    } else {
        foreign::sniff(&prefix)
    };
    let src: Source<'_, R> = Cursor::new(prefix).chain(tap);
    let mut src = match shape {
        Shape::Raw => plain(src, sink, limits, &mut report)?,
        Shape::Compressed(codec) => compressed_plain(src, codec, sink, limits, &mut report)?,
        Shape::TarGz => tar_gz(src, sink, limits, &mut report)?,
        Shape::Zip => zip_single(src, sink, limits, &mut report)?,
        Shape::Incremental(codec) => {
            report.kind = Kind::GardenerIncremental;
            let how = codec.map_or(String::new(), |c| format!(" ({} compressed)", c.name()));
            report.findings.push(Finding::error(
                format!("it is an incremental snapshot from Gardener's etcd-backup-restore{how}: a list of watch events that can only be replayed on top of the full snapshot it follows, not a snapshot of its own"),
                HINT_INCREMENTAL,
            ));
            src
        }
        Shape::Unknown => {
            let message = if head.is_empty() {
                "it is empty (0 bytes), a placeholder rather than a snapshot".to_owned()
            } else {
                "it is neither a gzip archive nor an etcd database (no bbolt magic number at offset 16), nor a zlib, LZW or zip stream holding one"
                    .to_owned()
            };
            report.findings.push(Finding::error(message, HINT_NOT_ETCD));
            src
        }
    };
    // Whatever was not needed is still hashed, so input_sha256 is the
    // file's.
    let mut buf = vec![0u8; BUF_SIZE];
    while read_some(&mut src, &mut buf).map_err(InspectError::Read)? != 0 {}
    let (_, mut tap) = src.into_inner();
    if let Some(e) = tap.failed.take() {
        return Err(InspectError::Read(e));
    }
    let (db_sha256, db_size) = match &report.db {
        Some(d) => (d.sha256.clone(), d.size),
        None => (String::new(), 0),
    };
    Ok(Inspection {
        kind: report.kind,
        manifest: report.manifest,
        db_sha256,
        db_size,
        input_sha256: tap.hasher.finish_hex(),
        input_size: tap.count,
        has_etcd_hash: report.has_etcd_hash,
        needs_skip_hash_check: report.needs_skip_hash_check,
        pki: report.pki,
        source_meta: report.source_meta,
        findings: report.findings,
    })
}

fn too_large(what: &str, size: u64, limit: u64) -> Finding {
    Finding::error(
        format!("{what} is {size} bytes or more, larger than the {limit} bytes accepted"),
        HINT_TOO_LARGE,
    )
}

/// Compressed input read to tell what a stream holds.
const PEEK: usize = 64 << 10;

/// Reads what follows the end of a compressed stream: anything there is an
/// error finding. Returns the error if reading it failed.
fn check_after_stream<B: BufRead>(
    buffered: &mut B,
    stream: &str,
    findings: &mut Vec<Finding>,
) -> Option<io::Error> {
    let mut extra = 0u64;
    loop {
        let n = match buffered.fill_buf() {
            Ok(b) => b.len(),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Some(e),
        };
        if n == 0 {
            break;
        }
        extra += n as u64;
        buffered.consume(n);
    }
    if extra > 0 {
        findings.push(Finding::error(
            format!("{extra} bytes follow the end of the {stream} stream"),
            HINT_RECOPY,
        ));
    }
    None
}

fn check_after_gzip<B: BufRead>(
    buffered: &mut B,
    findings: &mut Vec<Finding>,
) -> Option<io::Error> {
    check_after_stream(buffered, "gzip", findings)
}

/// Streams `r` (a decompressor) into the sink to its end, within the
/// limits. `Ok(Err(e))`: the stream itself is damaged; `Ok(Ok(false))`:
/// stopped at a bound (the finding is in `findings`).
fn stream_db(
    r: &mut impl Read,
    what: &'static str,
    sink: &mut DbSink,
    limits: Limits,
    meter: &Meter,
    findings: &mut Vec<Finding>,
) -> Result<Result<(u64, bool), io::Error>, InspectError> {
    sink.begin()?;
    let mut buf = vec![0u8; BUF_SIZE];
    let mut size = 0u64;
    loop {
        match read_some(r, &mut buf) {
            Ok(0) => return Ok(Ok((size, true))),
            Ok(n) => {
                size += n as u64;
                if let Some(f) = limits.check_output(what, size, meter.get()) {
                    findings.push(f);
                    return Ok(Ok((size, false)));
                }
                sink.chunk(&buf[..n])?;
            }
            Err(e) => return Ok(Err(e)),
        }
    }
}

/// A plain snapshot compressed on its own (gzip: `etcd.backup.gz`,
/// `Full-…gz`; zlib: `Full-….zlib`; LZW: `Full-….Z`): decompressed to its
/// last byte (gzip's CRC and length, zlib's Adler-32 and LZW's end code are
/// checked there) within the limits, then judged as a plain `etcdctl
/// snapshot save` file.
fn compressed_plain<'p, R: Read>(
    src: Source<'p, R>,
    codec: Codec,
    sink: &mut DbSink,
    limits: Limits,
    report: &mut Report,
) -> Result<Source<'p, R>, InspectError> {
    report.kind = match codec {
        Codec::Gzip => Kind::GzipSnapshot,
        Codec::Zlib => Kind::ZlibSnapshot,
        Codec::Lzw => Kind::LzwSnapshot,
    };
    let what = match codec {
        Codec::Gzip => "the gzip stream",
        Codec::Zlib => "the zlib stream",
        Codec::Lzw => "the LZW stream",
    };
    let mut dec = Decompress::new(codec, BufReader::with_capacity(BUF_SIZE, src));
    let meter = report.meter.clone();
    let streamed = stream_db(&mut dec, what, sink, limits, &meter, &mut report.findings)?;
    let mut buffered = dec.into_inner();
    let mut damaged = match streamed {
        Err(e) => Some(e),
        Ok((_, false)) => return Ok(buffered.into_inner()),
        Ok((_, true)) => None,
    };
    if damaged.is_none() {
        damaged = check_after_stream(&mut buffered, codec.name(), &mut report.findings);
    }
    let src = buffered.into_inner();
    if src.get_ref().1.failed.is_some() {
        return Ok(src); // `inspect` turns it into InspectError::Read.
    }
    if let Some(e) = damaged {
        report.findings.push(Finding::error(
            format!(
                "the {}-compressed snapshot is damaged or truncated ({e})",
                codec.name()
            ),
            HINT_RECOPY,
        ));
        return Ok(src);
    }
    report.findings.push(Finding::info(format!(
        "a {}-compressed etcdctl snapshot file: it has no manifest, so the revision and key count cannot be checked after the restore",
        codec.name()
    )));
    check_db(report, sink.end()?);
    Ok(src)
}

/// A zip holding one plain snapshot (k3s and RKE2): the local header, the
/// entry's deflate stream (bounded; its CRC-32 and sizes checked against
/// the header or the data descriptor), and a central directory that lists
/// that one entry.
fn zip_single<'p, R: Read>(
    src: Source<'p, R>,
    sink: &mut DbSink,
    limits: Limits,
    report: &mut Report,
) -> Result<Source<'p, R>, InspectError> {
    report.kind = Kind::ZipSnapshot;
    let mut buffered = BufReader::with_capacity(BUF_SIZE, src);
    let problem = match zip_entry(&mut buffered, sink, limits, report)? {
        ZipOutcome::Ok => None,
        ZipOutcome::Stopped => return Ok(buffered.into_inner()),
        ZipOutcome::Problem(p) => Some(p),
    };
    let src = buffered.into_inner();
    if src.get_ref().1.failed.is_some() {
        return Ok(src); // `inspect` turns it into InspectError::Read.
    }
    if let Some(p) = problem {
        report.findings.push(Finding::error(
            format!("the zip cannot be used: {p}"),
            "Copy the zip again from where k3s or RKE2 wrote it, or unzip it and attach the snapshot file inside.",
        ));
        return Ok(src);
    }
    report.findings.push(Finding::info(
        "a zip holding one etcdctl snapshot file (k3s/RKE2): it has no manifest, so the revision and key count cannot be checked after the restore",
    ));
    check_db(report, sink.end()?);
    Ok(src)
}

enum ZipOutcome {
    Ok,
    Stopped,
    Problem(foreign::ZipProblem),
}

fn zip_entry<B: BufRead>(
    r: &mut B,
    sink: &mut DbSink,
    limits: Limits,
    report: &mut Report,
) -> Result<ZipOutcome, InspectError> {
    let entry = match foreign::zip_local_header(r) {
        Ok(e) => e,
        Err(p) => return Ok(ZipOutcome::Problem(p)),
    };
    if entry.name.ends_with('/') {
        return Ok(ZipOutcome::Problem(format!(
            "its first entry {:?} is a directory, not a snapshot file",
            entry.name
        )));
    }
    let meter = report.meter.clone();
    let mut crc = crc32fast::Hasher::new();
    let (size, compressed) = match entry.method {
        8 => {
            let mut dec = flate2::bufread::DeflateDecoder::new(&mut *r);
            let mut hashing = CrcRead {
                inner: &mut dec,
                crc: &mut crc,
            };
            let streamed = stream_db(
                &mut hashing,
                "the zip's entry",
                sink,
                limits,
                &meter,
                &mut report.findings,
            )?;
            let size = match streamed {
                Err(e) => {
                    return Ok(ZipOutcome::Problem(format!(
                        "its entry is damaged or truncated ({e})"
                    )))
                }
                Ok((_, false)) => return Ok(ZipOutcome::Stopped),
                Ok((size, true)) => size,
            };
            (size, dec.total_in())
        }
        0 if !entry.descriptor => {
            let mut stored = (&mut *r).take(entry.compressed);
            let mut hashing = CrcRead {
                inner: &mut stored,
                crc: &mut crc,
            };
            let streamed = stream_db(
                &mut hashing,
                "the zip's entry",
                sink,
                limits,
                &meter,
                &mut report.findings,
            )?;
            match streamed {
                Err(e) => {
                    return Ok(ZipOutcome::Problem(format!(
                        "its entry cannot be read ({e})"
                    )))
                }
                Ok((_, false)) => return Ok(ZipOutcome::Stopped),
                Ok((size, true)) => (size, size),
            }
        }
        m => {
            return Ok(ZipOutcome::Problem(format!(
                "its entry uses compression method {m}; only deflate (8) and stored (0) are read"
            )))
        }
    };
    let (want_crc, want_compressed, want_size) = if entry.descriptor {
        let zip64 = entry.zip64 || size >= u64::from(u32::MAX) || compressed >= u64::from(u32::MAX);
        match foreign::zip_descriptor(r, zip64) {
            Ok(d) => d,
            Err(p) => return Ok(ZipOutcome::Problem(p)),
        }
    } else {
        (entry.crc32, entry.compressed, entry.size)
    };
    let got_crc = crc.finalize();
    if got_crc != want_crc || size != want_size || compressed != want_compressed {
        return Ok(ZipOutcome::Problem(format!(
            "its entry {:?} does not match what the zip records (CRC-32 {got_crc:08x}, {size} bytes from {compressed}; recorded CRC-32 {want_crc:08x}, {want_size} bytes from {want_compressed}); it is damaged",
            entry.name
        )));
    }
    if let Err(p) = foreign::zip_tail(r) {
        return Ok(ZipOutcome::Problem(p));
    }
    Ok(ZipOutcome::Ok)
}

/// A reader that feeds a CRC-32 with what it reads.
struct CrcRead<'a, R> {
    inner: &'a mut R,
    crc: &'a mut crc32fast::Hasher,
}

impl<R: Read> Read for CrcRead<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.crc.update(&buf[..n]);
        Ok(n)
    }
}

/// A plain `etcdctl snapshot save` file: the input is the db.
fn plain<'p, R: Read>(
    mut src: Source<'p, R>,
    sink: &mut DbSink,
    limits: Limits,
    report: &mut Report,
) -> Result<Source<'p, R>, InspectError> {
    report.kind = Kind::EtcdctlSnapshot;
    sink.begin()?;
    let mut buf = vec![0u8; BUF_SIZE];
    let mut size = 0u64;
    loop {
        let n = read_some(&mut src, &mut buf).map_err(InspectError::Read)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        if size > limits.max_db_size {
            report
                .findings
                .push(too_large("the file", size, limits.max_db_size));
            return Ok(src);
        }
        sink.chunk(&buf[..n])?;
    }
    report.findings.push(Finding::info(
        "a plain etcdctl snapshot file: it has no manifest, so the revision and key count cannot be checked after the restore",
    ));
    check_db(report, sink.end()?);
    Ok(src)
}

/// Which whitelisted entry a tar name is, judged on its bytes alone.
enum Name {
    Db,
    Manifest,
    PkiCert,
    PkiKey,
    /// `pki/`: the directory of the two entries above.
    PkiDir,
    /// `.` or `./`: the directory the original charm's `tar cvfz … .` adds.
    Root,
    /// kops etcd-manager's `[DIR/]etcd.backup.gz`: the gzip'd snapshot.
    KopsDb,
    /// kops etcd-manager's `[DIR/]_etcd_backup.meta`: protojson metadata.
    KopsMeta,
    /// One path component: kops' backup directory when it is a directory.
    TopDir,
    /// Under a `member/` directory: an etcd data dir, as the original
    /// charm's v2 backups hold (`v2_file`: a `snap/*.snap` or `wal/*.wal`).
    Member {
        v2_file: bool,
    },
    Unsafe(&'static str),
    Other,
}

fn classify(name: &[u8]) -> Name {
    if name.first() == Some(&b'/') {
        return Name::Unsafe("an absolute path");
    }
    if name.split(|b| *b == b'/').any(|c| c == b"..") {
        return Name::Unsafe("a '..' component");
    }
    let n = name.strip_prefix(b"./").unwrap_or(name);
    match n {
        b"db" => return Name::Db,
        b"manifest.json" => return Name::Manifest,
        b"pki/ca.crt" => return Name::PkiCert,
        b"pki/ca.key" => return Name::PkiKey,
        b"pki" | b"pki/" => return Name::PkiDir,
        b"" | b"." => return Name::Root,
        _ => {}
    }
    let parts: Vec<&[u8]> = n
        .split(|b| *b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .collect();
    let last = parts.last().copied().unwrap_or_default();
    if let Some(at) = parts.iter().position(|c| *c == b"member") {
        // The original charm's v2 backup: `etcdctl backup`'s data dir.
        let v2_file = match parts.get(at + 1).copied() {
            Some(b"snap") => parts.len() == at + 3 && last.ends_with(b".snap"),
            Some(b"wal") => parts.len() == at + 3 && last.ends_with(b".wal"),
            _ => false,
        };
        return Name::Member { v2_file };
    }
    match (parts.len(), last) {
        (1 | 2, b"etcd.backup.gz") => Name::KopsDb,
        (1 | 2, b"_etcd_backup.meta") => Name::KopsMeta,
        (1, _) => Name::TopDir,
        _ => Name::Other,
    }
}

fn describe(t: tar::EntryType) -> &'static str {
    use tar::EntryType as T;
    match t {
        T::Regular => "a regular file",
        T::Directory => "a directory",
        T::Symlink => "a symbolic link",
        T::Link => "a hard link",
        T::Char => "a character device",
        T::Block => "a block device",
        T::Fifo => "a FIFO",
        T::GNULongName | T::GNULongLink => "a GNU long-name header",
        T::XHeader | T::XGlobalHeader => "a pax extended header",
        _ => "a special entry",
    }
}

/// Headers that describe the next entry (or the archive) rather than
/// being entries themselves.
fn is_extension(t: tar::EntryType) -> bool {
    t.is_gnu_longname()
        || t.is_gnu_longlink()
        || t.is_pax_local_extensions()
        || t.is_pax_global_extensions()
        || t == tar::EntryType::GNUSparse
}

/// The largest pax or GNU long-name header read; real ones are a few
/// hundred bytes.
const MAX_EXTENSION_SIZE: u64 = 64 << 10;

/// What extension headers say about the entry that follows them. Python's
/// `tarfile` writes a pax header for nearly every file (fractional mtimes),
/// GNU tar writes long-name headers and, with `--format=pax`, pax headers;
/// all are honoured so that the name checked is the name a tar tool would
/// extract, never a different one hidden in the raw header.
#[derive(Debug, Default)]
struct Pending {
    path: Option<Vec<u8>>,
    size: Option<u64>,
}

/// One pax record: key and value, as bytes.
type PaxRecord<'a> = (&'a [u8], &'a [u8]);

/// Parses pax records (`LEN key=value\n`, LEN counting the whole record).
fn parse_pax(data: &[u8]) -> Result<Vec<PaxRecord<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        if rest.iter().all(|b| *b == 0) {
            break;
        }
        let sp = rest
            .iter()
            .position(|b| *b == b' ')
            .ok_or("a pax record has no length")?;
        let len: usize = std::str::from_utf8(&rest[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or("a pax record's length is not a number")?;
        if len <= sp + 1 || len > rest.len() || rest[len - 1] != b'\n' {
            return Err("a pax record's length does not match its content".into());
        }
        let record = &rest[sp + 1..len - 1];
        let eq = record
            .iter()
            .position(|b| *b == b'=')
            .ok_or("a pax record has no '='")?;
        out.push((&record[..eq], &record[eq + 1..]));
        rest = &rest[len..];
    }
    Ok(out)
}

/// Reads an extension header's content and records what it says about the
/// next entry. Errors become findings.
fn read_extension(
    entry: &mut impl Read,
    etype: tar::EntryType,
    size: u64,
    pending: &mut Pending,
) -> Result<(), String> {
    if size > MAX_EXTENSION_SIZE {
        return Err(format!(
            "is {} of {size} bytes, more than any real one",
            describe(etype)
        ));
    }
    let mut data = Vec::new();
    entry
        .take(size)
        .read_to_end(&mut data)
        .map_err(|e| format!("cannot be read: {e}"))?;
    if etype.is_gnu_longname() {
        let end = data.iter().position(|b| *b == 0).unwrap_or(data.len());
        pending.path = Some(data[..end].to_vec());
        return Ok(());
    }
    let records = parse_pax(&data)?;
    let global = etype.is_pax_global_extensions();
    for (k, v) in records {
        match k {
            b"path" | b"size" if global => {
                return Err(format!(
                    "is a global pax header that sets {:?} for every entry",
                    String::from_utf8_lossy(k)
                ))
            }
            b"path" => pending.path = Some(v.to_vec()),
            b"size" => {
                let s = std::str::from_utf8(v)
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
                    .ok_or("sets a size that is not a number")?;
                pending.size = Some(s);
            }
            b"linkpath"
            | b"GNU.sparse.map"
            | b"GNU.sparse.size"
            | b"GNU.sparse.name"
            | b"GNU.sparse.major"
            | b"GNU.sparse.offset"
            | b"GNU.sparse.numblocks" => {
                return Err(format!(
                    "sets {:?}, which snapshot archives never need",
                    String::from_utf8_lossy(k)
                ))
            }
            // mtime, atime, ctime, uid, gid, uname, gname, charset,
            // comment, SCHILY.*, LIBARCHIVE.*: metadata, harmless here.
            _ => {}
        }
    }
    Ok(())
}

/// Counts what follows the tar's end-of-archive blocks.
#[derive(Default)]
struct AfterEnd {
    total: u64,
    nonzero: u64,
}

impl Write for AfterEnd {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.total += buf.len() as u64;
        self.nonzero += buf.iter().filter(|b| **b != 0).count() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What reading one tar entry means for the rest of the scan.
enum Flow {
    /// Go on with the next entry.
    Next,
    /// Stop reading: going on would be pointless or unbounded.
    Stop,
    /// The stream itself is damaged.
    Damaged(io::Error),
}

/// The state of one pass over a tar's entries: what has been found so far
/// and what extension headers said about the next entry.
struct TarScan {
    limits: Limits,
    findings: Vec<Finding>,
    pending: Pending,
    entries_seen: usize,
    db: Option<DbDigest>,
    db_entries: usize,
    manifest: Option<Manifest>,
    manifest_entries: usize,
    pki_cert: Option<zeroize::Zeroizing<Vec<u8>>>,
    pki_key: Option<zeroize::Zeroizing<Vec<u8>>>,
    unexpected: usize,
    /// The unexpected entries' findings, held back until the end: in a v2
    /// archive they say less than the one finding that it is v2.
    unexpected_msgs: Vec<String>,
    looks_like_release: bool,
    buf: Vec<u8>,
    meter: Meter,
    kops_db_entries: usize,
    kops_meta_entries: usize,
    kops_meta: Option<SourceMeta>,
    /// One-component directory entries: kops' backup directory, or else
    /// unexpected.
    top_dirs: Vec<Vec<u8>>,
    v2_files: usize,
}

impl TarScan {
    fn new(limits: Limits, meter: Meter) -> Self {
        TarScan {
            meter,
            kops_db_entries: 0,
            kops_meta_entries: 0,
            kops_meta: None,
            top_dirs: Vec::new(),
            v2_files: 0,
            unexpected_msgs: Vec::new(),
            limits,
            findings: Vec::new(),
            pending: Pending::default(),
            entries_seen: 0,
            db: None,
            db_entries: 0,
            manifest: None,
            manifest_entries: 0,
            pki_cert: None,
            pki_key: None,
            unexpected: 0,
            looks_like_release: false,
            buf: vec![0u8; BUF_SIZE],
        }
    }

    fn refuse(&mut self, message: String) {
        self.findings.push(Finding::error(message, HINT_FOREIGN));
    }

    /// Reads one raw entry: an extension header, or an entry judged by the
    /// name a tar tool would extract it as.
    fn entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        sink: &mut DbSink,
    ) -> Result<Flow, InspectError> {
        self.entries_seen += 1;
        let raw_name = entry.path_bytes().into_owned();
        let etype = entry.header().entry_type();
        let size = entry.size();
        if is_extension(etype) && etype != tar::EntryType::GNUSparse && !etype.is_gnu_longlink() {
            return Ok(
                match read_extension(entry, etype, size, &mut self.pending) {
                    Ok(()) => Flow::Next,
                    Err(why) => {
                        self.refuse(format!(
                            "entry {:?} {why}",
                            String::from_utf8_lossy(&raw_name)
                        ));
                        // What it said about the next entry cannot be trusted.
                        Flow::Stop
                    }
                },
            );
        }
        let over = std::mem::take(&mut self.pending);
        if let Name::Unsafe(why) = classify(&raw_name) {
            self.refuse(format!(
                "entry {:?} has {why}, which is never safe to extract",
                String::from_utf8_lossy(&raw_name)
            ));
            return Ok(Flow::Next);
        }
        let name = over.path.unwrap_or(raw_name);
        let shown = format!("{:?}", String::from_utf8_lossy(&name));
        if let Some(s) = over.size.filter(|s| *s != size) {
            self.refuse(format!(
                "entry {shown} has a pax size {s} that differs from its header's {size}"
            ));
            return Ok(Flow::Stop);
        }
        if size > self.limits.max_db_size {
            // Skipping it would mean decompressing all of it.
            self.findings.push(too_large(
                &format!("entry {shown}"),
                size,
                self.limits.max_db_size,
            ));
            return Ok(Flow::Stop);
        }
        if is_extension(etype) {
            self.refuse(format!(
                "entry {shown} is {}, which snapshot archives never need",
                describe(etype)
            ));
            return Ok(Flow::Next);
        }
        match classify(&name) {
            Name::Unsafe(why) => {
                self.refuse(format!(
                    "entry {shown} has {why}, which is never safe to extract"
                ));
                Ok(Flow::Next)
            }
            Name::Root | Name::PkiDir if etype.is_dir() => Ok(Flow::Next),
            Name::TopDir if etype.is_dir() => {
                self.top_dirs.push(name);
                Ok(Flow::Next)
            }
            Name::Member { v2_file } => {
                self.v2_files += usize::from(v2_file);
                self.unexpected(&name, &shown, etype);
                Ok(Flow::Next)
            }
            Name::Root | Name::Other | Name::PkiDir | Name::TopDir => {
                self.unexpected(&name, &shown, etype);
                Ok(Flow::Next)
            }
            _ if !etype.is_file() => {
                self.refuse(format!(
                    "entry {shown} is {}, not a regular file",
                    describe(etype)
                ));
                Ok(Flow::Next)
            }
            Name::PkiCert => Ok(self.pki_entry(entry, false, &shown, size)),
            Name::PkiKey => Ok(self.pki_entry(entry, true, &shown, size)),
            Name::Db => self.content_entry(entry, true, &shown, size, sink),
            Name::Manifest => self.content_entry(entry, false, &shown, size, sink),
            Name::KopsDb => self.kops_db_entry(entry, &shown, sink),
            Name::KopsMeta => Ok(self.kops_meta_entry(entry, &shown, size)),
        }
    }

    /// kops' `etcd.backup.gz`: a gzip'd snapshot inside the tar, streamed
    /// to the sink (bounded) and decoded to its last byte.
    fn kops_db_entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        shown: &str,
        sink: &mut DbSink,
    ) -> Result<Flow, InspectError> {
        self.kops_db_entries += 1;
        if self.kops_db_entries > 1 {
            self.refuse(format!(
                "the archive holds {shown} more than once; which copy is meant cannot be told"
            ));
            return Ok(Flow::Next);
        }
        let mut dec =
            flate2::bufread::GzDecoder::new(BufReader::with_capacity(64 << 10, &mut *entry));
        let meter = self.meter.clone();
        match stream_db(
            &mut dec,
            "etcd.backup.gz",
            sink,
            self.limits,
            &meter,
            &mut self.findings,
        )? {
            Ok((_, false)) => return Ok(Flow::Stop),
            Err(e) => {
                self.findings.push(Finding::error(
                    format!("{shown} is damaged or truncated ({e})"),
                    HINT_RECOPY,
                ));
                return Ok(Flow::Next);
            }
            Ok((_, true)) => {}
        }
        let mut rest = dec.into_inner();
        if let Some(e) = check_after_stream(&mut rest, "etcd.backup.gz's gzip", &mut self.findings)
        {
            return Ok(Flow::Damaged(e));
        }
        self.db = Some(sink.end()?);
        Ok(Flow::Next)
    }

    /// kops' `_etcd_backup.meta` (protojson of its BackupInfo): the etcd
    /// version and the time, for the results. Unreadable metadata is a
    /// warning: the snapshot's own hash proves the data.
    fn kops_meta_entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        shown: &str,
        size: u64,
    ) -> Flow {
        self.kops_meta_entries += 1;
        if self.kops_meta_entries > 1 || size > self.limits.max_manifest_size {
            self.findings.push(Finding::warning(format!(
                "{shown} was ignored (a second copy, or larger than {} bytes)",
                self.limits.max_manifest_size
            )));
            return Flow::Next;
        }
        let mut data = Vec::new();
        if let Err(e) = entry.take(size).read_to_end(&mut data) {
            return Flow::Damaged(e);
        }
        match parse_kops_meta(&data) {
            Some(m) => self.kops_meta = Some(m),
            None => self.findings.push(Finding::warning(format!(
                "{shown} is not the JSON etcd-manager writes; the etcd version and time it records are not reported"
            ))),
        }
        Flow::Next
    }

    /// An entry no snapshot archive holds; the first few are named.
    fn unexpected(&mut self, name: &[u8], shown: &str, etype: tar::EntryType) {
        self.unexpected += 1;
        let base = name.rsplit(|b| *b == b'/').next().unwrap_or(name);
        self.looks_like_release |= base == b"etcd" && name.starts_with(b"etcd-v");
        if self.unexpected <= MAX_NAMED_UNEXPECTED {
            self.unexpected_msgs.push(format!(
                "unexpected entry {shown} ({}); a snapshot archive holds only db and manifest.json",
                describe(etype)
            ));
        }
    }

    /// `pki/ca.crt` or `pki/ca.key`, held (bounded) until the manifest says
    /// what they must hash to.
    fn pki_entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        is_key: bool,
        shown: &str,
        size: u64,
    ) -> Flow {
        let taken = if is_key {
            self.pki_key.is_some()
        } else {
            self.pki_cert.is_some()
        };
        if taken {
            self.refuse(format!(
                "the archive holds {shown} more than once; which copy is meant cannot be told"
            ));
            return Flow::Next;
        }
        if size > MAX_PKI_ENTRY {
            self.findings
                .push(too_large(&format!("entry {shown}"), size, MAX_PKI_ENTRY));
            return Flow::Stop;
        }
        let mut data = zeroize::Zeroizing::new(Vec::new());
        if let Err(e) = entry.take(size).read_to_end(&mut data) {
            return Flow::Damaged(e);
        }
        if data.len() as u64 != size {
            return Flow::Damaged(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "entry {shown} ends after {} of its {size} bytes",
                    data.len()
                ),
            ));
        }
        if is_key {
            self.pki_key = Some(data);
        } else {
            self.pki_cert = Some(data);
        }
        Flow::Next
    }

    /// `db` (streamed to `db_out` and scanned) or `manifest.json` (held,
    /// bounded, and parsed).
    fn content_entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        is_db: bool,
        shown: &str,
        size: u64,
        sink: &mut DbSink,
    ) -> Result<Flow, InspectError> {
        let seen = if is_db {
            &mut self.db_entries
        } else {
            &mut self.manifest_entries
        };
        *seen += 1;
        if *seen > 1 {
            self.refuse(format!(
                "the archive holds {shown} more than once; which copy is meant cannot be told"
            ));
            return Ok(Flow::Next);
        }
        if !is_db && size > self.limits.max_manifest_size {
            self.findings.push(too_large(
                "manifest.json",
                size,
                self.limits.max_manifest_size,
            ));
            return Ok(Flow::Next);
        }
        if is_db {
            sink.begin()?;
        }
        let mut json = Vec::new();
        let mut got = 0u64;
        loop {
            let n = match read_some(entry, &mut self.buf) {
                Ok(n) => n,
                Err(e) => return Ok(Flow::Damaged(e)),
            };
            if n == 0 {
                break;
            }
            got += n as u64;
            if is_db {
                sink.chunk(&self.buf[..n])?;
            } else {
                json.extend_from_slice(&self.buf[..n]);
            }
        }
        if got != size {
            return Ok(Flow::Damaged(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("entry {shown} ends after {got} of its {size} bytes"),
            )));
        }
        if is_db {
            self.db = Some(sink.end()?);
        } else {
            match Manifest::from_json(&json) {
                Ok(m) => self.manifest = Some(m),
                Err(e) => self.refuse(e.to_string()),
            }
        }
        Ok(Flow::Next)
    }

    /// Findings about the entries as a whole.
    fn summarize(&mut self) {
        if self.v2_files > 0 {
            self.findings.push(Finding::error(
                format!(
                    "it is the original charm's v2 backup ({} member/snap/*.snap and member/wal/*.wal files): v2 data is not supported",
                    self.v2_files
                ),
                HINT_V2,
            ));
            return;
        }
        if self.kops_db_entries == 0 {
            for name in std::mem::take(&mut self.top_dirs) {
                let shown = format!("{:?}", String::from_utf8_lossy(&name));
                self.unexpected(&name, &shown, tar::EntryType::Directory);
            }
        }
        for m in std::mem::take(&mut self.unexpected_msgs) {
            self.refuse(m);
        }
        if self.unexpected > MAX_NAMED_UNEXPECTED {
            self.refuse(format!(
                "and {} more unexpected entries",
                self.unexpected - MAX_NAMED_UNEXPECTED
            ));
        }
        if self.looks_like_release {
            self.findings.push(Finding::error(
                "the archive holds an etcd binary",
                HINT_RELEASE,
            ));
        }
    }
}

/// Our archive or the original charm's: a gzip'd tar.
fn tar_gz<'p, R: Read>(
    src: Source<'p, R>,
    sink: &mut DbSink,
    limits: Limits,
    report: &mut Report,
) -> Result<Source<'p, R>, InspectError> {
    let buffered = BufReader::with_capacity(BUF_SIZE, src);
    // The tar holds the db plus headers and a manifest: a little room over
    // the db's own limit.
    let outer = Limits {
        max_db_size: limits.max_db_size.saturating_add(2 << 20),
        ..limits
    };
    let mut archive = tar::Archive::new(Bounded {
        inner: flate2::bufread::GzDecoder::new(buffered),
        out: 0,
        meter: report.meter.clone(),
        limits: outer,
        what: "the tar.gz",
        tripped: None,
    });
    let mut scan = TarScan::new(limits, report.meter.clone());
    let (mut damaged, mut stopped) = match archive.entries().map(|e| e.raw(true)) {
        Err(e) => (Some(e), false),
        Ok(mut entries) => loop {
            let mut entry = match entries.next() {
                None => break (None, false),
                Some(Ok(e)) => e,
                Some(Err(e)) => break (Some(e), false),
            };
            match scan.entry(&mut entry, sink)? {
                Flow::Next => {}
                Flow::Stop => break (None, true),
                Flow::Damaged(e) => break (Some(e), false),
            }
        },
    };
    scan.summarize();
    report.findings.append(&mut scan.findings);
    report.manifest = scan.manifest.take();
    let TarScan {
        entries_seen,
        db,
        db_entries,
        manifest_entries,
        pki_cert,
        pki_key,
        kops_db_entries,
        kops_meta,
        v2_files,
        ..
    } = scan;
    let findings = &mut report.findings;
    let mut decoder = archive.into_inner();
    if let Some(f) = decoder.tripped.take() {
        findings.push(f);
        damaged = None;
        stopped = true;
    }
    if damaged.is_none() && !stopped {
        // Decode to the gzip stream's last byte: its CRC and length are
        // only checked there.
        let mut after = AfterEnd::default();
        match io::copy(&mut (&mut decoder).take(MAX_TAR_PADDING + 1), &mut after) {
            Err(e) => damaged = Some(e),
            Ok(_) if after.total > MAX_TAR_PADDING => {
                findings.push(Finding::error(
                    format!("more than {MAX_TAR_PADDING} bytes follow the end of the tar archive"),
                    HINT_FOREIGN,
                ));
                stopped = true;
            }
            Ok(_) if after.nonzero > 0 => findings.push(Finding::warning(format!(
                "{} bytes of data after the end of the tar archive were ignored",
                after.total
            ))),
            Ok(_) => {}
        }
    }
    let mut buffered = decoder.inner.into_inner();
    if damaged.is_none() && !stopped {
        damaged = check_after_gzip(&mut buffered, findings);
    }
    // Hand the raw input back; unread buffered bytes were already hashed.
    let src = buffered.into_inner();
    if src.get_ref().1.failed.is_some() {
        return Ok(src); // `inspect` turns it into InspectError::Read.
    }

    report.kind = if v2_files > 0 {
        Kind::LegacyV2
    } else if kops_db_entries > 0 {
        if manifest_entries + db_entries > 0 {
            findings.push(Finding::error(
                "the archive holds both this charm's db and kops' etcd.backup.gz; which one is meant cannot be told",
                HINT_FOREIGN,
            ));
        }
        Kind::KopsBackup
    } else if manifest_entries > 0 {
        Kind::Charm
    } else if db_entries > 0 {
        Kind::LegacyCharm
    } else {
        Kind::Unknown
    };
    if report.kind == Kind::LegacyV2 {
        return Ok(src);
    }
    if let Some(e) = damaged {
        let mut hint = HINT_RECOPY.to_owned();
        if entries_seen == 0 {
            hint.push_str(" If it is a gzip-compressed snapshot file rather than a tar.gz, decompress it and attach the plain file.");
        }
        findings.push(Finding {
            level: Level::Error,
            message: format!("the archive is damaged or truncated ({e})"),
            hint: Some(hint),
        });
        return Ok(src);
    }
    if stopped {
        return Ok(src);
    }
    if report.kind == Kind::KopsBackup {
        match &kops_meta {
            Some(m) => findings.push(Finding::info(format!(
                "a kops etcd-manager backup of etcd {} taken at Unix time {}",
                m.etcd_version.as_deref().unwrap_or("(version not recorded)"),
                m.timestamp.map_or("(not recorded)".to_owned(), |t| t.to_string())
            ))),
            None => findings.push(Finding::warning(
                "a kops etcd-manager backup without its _etcd_backup.meta; the etcd version and time are not known",
            )),
        }
        report.source_meta = kops_meta;
    }
    let Some(db) = db else {
        if db_entries == 0 && kops_db_entries == 0 {
            findings.push(Finding::error(
                "the archive holds no db entry",
                HINT_FOREIGN,
            ));
        }
        return Ok(src);
    };
    if report.kind == Kind::Charm {
        if let Some(m) = &report.manifest {
            if m.db_sha256 != db.sha256 || m.db_size != db.size {
                findings.push(Finding::error(
                    format!(
                        "the manifest describes a db of {} bytes with sha256 {}, but the archive's db is {} bytes with sha256 {}",
                        m.db_size, m.db_sha256, db.size, db.sha256
                    ),
                    HINT_RECOPY,
                ));
            }
            if m.created_unix().is_none() {
                findings.push(Finding::warning(format!(
                    "the manifest's creation time {:?} is not RFC 3339 UTC",
                    m.created
                )));
            }
            findings.push(Finding::info(format!(
                "made by {} at {} from etcd {} (cluster {}, revision {}, {} keys)",
                m.source_unit, m.created, m.etcd_version, m.cluster_id, m.revision, m.key_count
            )));
        }
    }
    check_pki(report, pki_cert, pki_key);
    check_db(report, db);
    Ok(src)
}

/// The CA entries must come as a pair that the manifest records.
fn check_pki(
    report: &mut Report,
    cert: Option<zeroize::Zeroizing<Vec<u8>>>,
    key: Option<zeroize::Zeroizing<Vec<u8>>>,
) {
    let recorded = report.manifest.as_ref().and_then(|m| m.pki.clone());
    let findings = &mut report.findings;
    match (recorded, cert, key) {
        (None, None, None) => {}
        (Some(m), Some(cert), Some(key)) => {
            let cert_ok = hex::encode(Sha256::digest(&cert[..])) == m.ca_cert_sha256;
            let key_ok = hex::encode(Sha256::digest(&key[..])) == m.ca_key_sha256;
            if cert_ok && key_ok {
                findings.push(Finding::info(
                    "the archive carries the application's CA (pki/ca.crt, pki/ca.key)",
                ));
                report.pki = Some(CarriedPki {
                    ca_cert: cert.to_vec(),
                    ca_key: key,
                });
            } else {
                findings.push(Finding::error(
                    "the CA in the archive does not match the hashes its manifest records",
                    HINT_RECOPY,
                ));
            }
        }
        (Some(_), _, _) => findings.push(Finding::error(
            "the manifest records a CA, but the archive does not hold both pki/ca.crt and pki/ca.key",
            HINT_RECOPY,
        )),
        (None, _, _) => findings.push(Finding::error(
            "the archive holds pki/ entries that no manifest records",
            HINT_FOREIGN,
        )),
    }
}

/// The checks every kind of db gets once it has been read whole: bbolt's
/// magic, and etcd's trailing hash where the kind requires one.
fn check_db(report: &mut Report, db: DbDigest) {
    let findings = &mut report.findings;
    if !db.has_magic {
        findings.push(Finding::error(
            "the db is not an etcd database (no bbolt magic number at offset 16)",
            HINT_NOT_ETCD,
        ));
    }
    let trailer_ok = db.trailer == Trailer::Matches && db.hash_aligned();
    match report.kind {
        Kind::Charm
        | Kind::EtcdctlSnapshot
        | Kind::GzipSnapshot
        | Kind::ZlibSnapshot
        | Kind::LzwSnapshot
        | Kind::ZipSnapshot
        | Kind::KopsBackup => {
            if trailer_ok {
                report.has_etcd_hash = true;
            } else {
                let detail = match &db.trailer {
                    Trailer::Mismatch { stored, computed } if db.hash_aligned() => {
                        format!("it carries {stored}, the data hashes to {computed}")
                    }
                    Trailer::TooShort => "it is shorter than the hash itself".to_owned(),
                    _ => format!("{} bytes is not where etcd puts its hash", db.size),
                };
                findings.push(Finding::error(
                    format!("the db fails etcd's own sha256 check ({detail}); it is corrupt or truncated"),
                    if report.kind == Kind::Charm {
                        HINT_RECOPY
                    } else {
                        "Take the snapshot again with `etcdctl snapshot save` and attach the file it writes (a raw copy of member/snap/db is accepted only inside the original charm's tar.gz)."
                    },
                ));
            }
        }
        Kind::LegacyCharm => {
            if db.hash_aligned() {
                if trailer_ok {
                    report.has_etcd_hash = true;
                    findings.push(Finding::info(
                        "the original charm's archive, but its db carries etcd's sha256 and it matches",
                    ));
                } else {
                    findings.push(Finding::error(
                        "the db's size says it ends in etcd's sha256, but the hash does not match; it is corrupt or truncated",
                        HINT_RECOPY,
                    ));
                }
            } else if db.size.is_multiple_of(HASH_ALIGN) {
                report.needs_skip_hash_check = true;
                findings.push(Finding::info(
                    "the original charm's archive: a raw copy of the db with no sha256, so the restore will use --skip-hash-check",
                ));
            } else {
                findings.push(Finding::error(
                    format!(
                        "the db is {} bytes, not a whole number of pages; it is truncated",
                        db.size
                    ),
                    HINT_RECOPY,
                ));
            }
        }
        Kind::GardenerIncremental | Kind::LegacyV2 | Kind::Unknown => {}
    }
    report.db = Some(db);
}

/// Reads kops etcd-manager's `_etcd_backup.meta`: protojson, so the int64
/// `timestamp` is a string (`{"etcdVersion":"3.4.13","timestamp":"1704067200",…}`).
fn parse_kops_meta(data: &[u8]) -> Option<SourceMeta> {
    let v: serde_json::Value = serde_json::from_slice(data).ok()?;
    let o = v.as_object()?;
    let etcd_version = o
        .get("etcdVersion")
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    let timestamp = match o.get("timestamp") {
        Some(serde_json::Value::String(s)) => s.parse().ok(),
        Some(serde_json::Value::Number(n)) => n.as_i64(),
        _ => None,
    };
    Some(SourceMeta {
        etcd_version,
        timestamp,
    })
}
