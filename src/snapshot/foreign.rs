//! Other tools' snapshot containers, told apart by their content: the
//! streams that wrap a plain etcd snapshot (gzip, zlib, Go's LZW, a
//! single-entry zip), Gardener's incremental snapshots (refused), and the
//! bounds that keep a hostile stream from expanding without end.
//!
//! Which tool makes what (the name is never trusted, only the bytes):
//! - gzip of a plain snapshot: kops etcd-manager's `etcd.backup.gz`,
//!   Gardener etcd-backup-restore's `Full-…gz`, a hand-`gzip`'d file;
//! - zlib: Gardener's `Full-….zlib`;
//! - LZW: Gardener's `Full-….Z`, Go's `compress/lzw` (LSB first, 8-bit
//!   literals, no header; the GIF variant, not TIFF's early change and not
//!   Unix `compress`'s `.Z`), read with `weezl`'s default decoder;
//! - zip with one deflate entry: k3s and RKE2 with
//!   `--etcd-snapshot-compress`. Go's `archive/zip` writes the sizes in a
//!   data descriptor after the data, so the entry is read as a stream: the
//!   deflate stream ends itself, then the descriptor and the central
//!   directory are checked (the `zip` crate's stream reader needs the sizes
//!   up front, so it cannot read these).
//!
//! Everything here is pure: bytes in through `Read`/`BufRead`, findings out.

use std::cell::Cell;
use std::io::{self, BufRead, Read};
use std::rc::Rc;

use super::db::{BBOLT_MAGIC, MAGIC_OFFSET};

const HEAD_LEN: usize = MAGIC_OFFSET + BBOLT_MAGIC.len();

/// A stream that wraps a plain snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Codec {
    Gzip,
    Zlib,
    Lzw,
}

impl Codec {
    pub fn name(self) -> &'static str {
        match self {
            Codec::Gzip => "gzip",
            Codec::Zlib => "zlib",
            Codec::Lzw => "LZW",
        }
    }
}

/// What the first bytes of an input say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// A bbolt file: a plain `etcdctl snapshot save` file.
    Raw,
    /// A plain snapshot inside a compressed stream.
    Compressed(Codec),
    /// A gzip'd tar (ours, the original charm's, kops' backup directory).
    TarGz,
    /// A zip archive.
    Zip,
    /// Gardener's incremental snapshot (a JSON list of watch events),
    /// compressed or not.
    Incremental(Option<Codec>),
    Unknown,
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
pub(crate) const ZIP_LOCAL: [u8; 4] = *b"PK\x03\x04";
const ZIP_CENTRAL: [u8; 4] = *b"PK\x01\x02";
const ZIP_EOCD: [u8; 4] = *b"PK\x05\x06";
const ZIP_DESCRIPTOR: [u8; 4] = *b"PK\x07\x08";

/// Whether decoded bytes start like bbolt or like Gardener's events.
#[derive(PartialEq, Eq)]
enum Content {
    Bbolt,
    Events,
    Other,
}

fn content_of(head: &[u8]) -> Content {
    if head.len() >= HEAD_LEN && head[MAGIC_OFFSET..HEAD_LEN] == BBOLT_MAGIC {
        return Content::Bbolt;
    }
    if looks_like_events(head) {
        return Content::Events;
    }
    Content::Other
}

/// Gardener's incremental snapshot is `json.Marshal([]*event)` with its
/// sha256 appended: `[{"etcdEvent":{…},"time":"…"},…]`.
fn looks_like_events(head: &[u8]) -> bool {
    let compact: Vec<u8> = head
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .take(16)
        .collect();
    compact.starts_with(b"[{\"etcdEvent\"")
}

/// Decodes the start of `prefix` with `codec`; up to 64 bytes.
fn decode_head(prefix: &[u8], codec: Codec) -> Vec<u8> {
    let mut out = vec![0u8; 64];
    let mut got = 0;
    let mut read = |r: &mut dyn Read| {
        while got < out.len() {
            match r.read(&mut out[got..]) {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
    };
    match codec {
        Codec::Gzip => read(&mut flate2::bufread::GzDecoder::new(prefix)),
        Codec::Zlib => read(&mut flate2::bufread::ZlibDecoder::new(prefix)),
        Codec::Lzw => read(&mut LzwReader::new(prefix)),
    }
    out.truncate(got);
    out
}

/// A zlib header (RFC 1950): deflate, a window of at most 32 KiB, no
/// preset dictionary, and the check bits right.
fn zlib_header(p: &[u8]) -> bool {
    p.len() >= 2
        && p[0] & 0x0f == 8
        && p[0] >> 4 <= 7
        && p[1] & 0x20 == 0
        && (u16::from(p[0]) << 8 | u16::from(p[1])) % 31 == 0
}

/// Classifies an input from its first bytes (`prefix`: the head plus a
/// peek of the compressed stream).
pub(crate) fn sniff(prefix: &[u8]) -> Shape {
    match content_of(prefix) {
        Content::Bbolt => return Shape::Raw,
        Content::Events => return Shape::Incremental(None),
        Content::Other => {}
    }
    if prefix.starts_with(&GZIP_MAGIC) {
        return match content_of(&decode_head(prefix, Codec::Gzip)) {
            Content::Bbolt => Shape::Compressed(Codec::Gzip),
            Content::Events => Shape::Incremental(Some(Codec::Gzip)),
            Content::Other => Shape::TarGz,
        };
    }
    if prefix.starts_with(&ZIP_LOCAL) {
        return Shape::Zip;
    }
    let mut codecs = Vec::with_capacity(2);
    if zlib_header(prefix) {
        codecs.push(Codec::Zlib);
    }
    codecs.push(Codec::Lzw);
    for codec in codecs {
        match content_of(&decode_head(prefix, codec)) {
            Content::Bbolt => return Shape::Compressed(codec),
            Content::Events => return Shape::Incremental(Some(codec)),
            Content::Other => {}
        }
    }
    Shape::Unknown
}

/// Go's `compress/lzw` stream (LSB, 8-bit literals) as a `Read`. It ends at
/// the stream's end code; input that ends before it is an error.
pub(crate) struct LzwReader<B> {
    inner: B,
    dec: weezl::decode::Decoder,
    done: bool,
}

impl<B: BufRead> LzwReader<B> {
    pub fn new(inner: B) -> Self {
        LzwReader {
            inner,
            dec: weezl::decode::Decoder::new(weezl::BitOrder::Lsb, 8),
            done: false,
        }
    }

    pub fn into_inner(self) -> B {
        self.inner
    }
}

impl<B: BufRead> Read for LzwReader<B> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.done || out.is_empty() {
            return Ok(0);
        }
        loop {
            let input = self.inner.fill_buf()?;
            let eof = input.is_empty();
            let r = self.dec.decode_bytes(input, out);
            self.inner.consume(r.consumed_in);
            match r.status {
                Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string())),
                Ok(weezl::LzwStatus::Done) => {
                    self.done = true;
                    return Ok(r.consumed_out);
                }
                Ok(_) if r.consumed_out > 0 => return Ok(r.consumed_out),
                Ok(_) if eof => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the LZW stream ends before its end code",
                    ))
                }
                Ok(weezl::LzwStatus::NoProgress) if r.consumed_in == 0 => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "the LZW decoder made no progress",
                    ))
                }
                Ok(_) => {}
            }
        }
    }
}

/// One of the streams that wrap a plain snapshot, over a `BufRead` that
/// can be had back to check what follows the stream.
pub(crate) enum Decompress<B: BufRead> {
    Gzip(flate2::bufread::GzDecoder<B>),
    Zlib(flate2::bufread::ZlibDecoder<B>),
    Lzw(LzwReader<B>),
}

impl<B: BufRead> Decompress<B> {
    pub fn new(codec: Codec, inner: B) -> Self {
        match codec {
            Codec::Gzip => Decompress::Gzip(flate2::bufread::GzDecoder::new(inner)),
            Codec::Zlib => Decompress::Zlib(flate2::bufread::ZlibDecoder::new(inner)),
            Codec::Lzw => Decompress::Lzw(LzwReader::new(inner)),
        }
    }

    pub fn into_inner(self) -> B {
        match self {
            Decompress::Gzip(d) => d.into_inner(),
            Decompress::Zlib(d) => d.into_inner(),
            Decompress::Lzw(d) => d.into_inner(),
        }
    }
}

impl<B: BufRead> Read for Decompress<B> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decompress::Gzip(d) => d.read(buf),
            Decompress::Zlib(d) => d.read(buf),
            Decompress::Lzw(d) => d.read(buf),
        }
    }
}

/// Counts the input bytes read so far, shared between the reader that
/// counts them and the bounds that compare output against them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Meter(Rc<Cell<u64>>);

impl Meter {
    pub fn add(&self, n: u64) {
        self.0.set(self.0.get().saturating_add(n));
    }

    pub fn get(&self) -> u64 {
        self.0.get()
    }
}

/// A bounded decompressing reader: its output is counted and the read fails
/// once it passes the limits (see [`super::Limits::check_output`]); the
/// reason is kept in `tripped` so that it is not mistaken for damage.
pub(crate) struct Bounded<D> {
    pub inner: D,
    pub out: u64,
    pub meter: Meter,
    pub limits: super::Limits,
    pub what: &'static str,
    pub tripped: Option<super::Finding>,
}

impl<D: Read> Read for Bounded<D> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.tripped.is_some() {
            return Err(io::Error::other("decompression stopped at its bound"));
        }
        let n = self.inner.read(buf)?;
        self.out += n as u64;
        if let Some(f) = self
            .limits
            .check_output(self.what, self.out, self.meter.get())
        {
            self.tripped = Some(f);
            return Err(io::Error::other("decompression stopped at its bound"));
        }
        Ok(n)
    }
}

fn le16(b: &[u8]) -> u16 {
    u16::from_le_bytes([b[0], b[1]])
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

fn le64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

/// A zip's single entry, as its local header describes it.
#[derive(Debug)]
pub(crate) struct ZipEntry {
    pub name: String,
    pub method: u16,
    pub descriptor: bool,
    pub crc32: u32,
    pub compressed: u64,
    pub size: u64,
    pub zip64: bool,
}

/// Why a zip cannot be read: a finding's message (never an IO error of the
/// caller's: those are told apart by the caller).
pub(crate) type ZipProblem = String;

fn read_exact_or(r: &mut impl Read, buf: &mut [u8], what: &str) -> Result<(), ZipProblem> {
    r.read_exact(buf)
        .map_err(|e| format!("the zip ends inside {what} ({e})"))
}

/// Reads the local file header (the signature included).
pub(crate) fn zip_local_header(r: &mut impl Read) -> Result<ZipEntry, ZipProblem> {
    let mut h = [0u8; 30];
    read_exact_or(r, &mut h, "its first header")?;
    if h[..4] != ZIP_LOCAL {
        return Err("it does not start with a zip local file header".into());
    }
    let flags = le16(&h[6..]);
    let method = le16(&h[8..]);
    let nlen = usize::from(le16(&h[26..]));
    let xlen = usize::from(le16(&h[28..]));
    let mut name = vec![0u8; nlen];
    read_exact_or(r, &mut name, "the entry's name")?;
    let mut extra = vec![0u8; xlen];
    read_exact_or(r, &mut extra, "the entry's extra fields")?;
    if flags & 1 != 0 {
        return Err("its entry is encrypted".into());
    }
    let mut e = ZipEntry {
        name: String::from_utf8_lossy(&name).into_owned(),
        method,
        descriptor: flags & 8 != 0,
        crc32: le32(&h[14..]),
        compressed: u64::from(le32(&h[18..])),
        size: u64::from(le32(&h[22..])),
        zip64: false,
    };
    // The zip64 extra field: the 64-bit sizes, in this order, for those
    // the header sets to 0xffffffff.
    let mut x = &extra[..];
    while x.len() >= 4 {
        let id = le16(x);
        let len = usize::from(le16(&x[2..])).min(x.len() - 4);
        let body = &x[4..4 + len];
        if id == 1 {
            e.zip64 = true;
            let mut b = body;
            if le32(&h[22..]) == u32::MAX && b.len() >= 8 {
                e.size = le64(b);
                b = &b[8..];
            }
            if le32(&h[18..]) == u32::MAX && b.len() >= 8 {
                e.compressed = le64(b);
            }
        }
        x = &x[4 + len..];
    }
    Ok(e)
}

/// Reads the data descriptor that follows the entry's data when the local
/// header left the sizes out: `(crc32, compressed, size)`. Its signature is
/// optional; its sizes are 64-bit when the entry is zip64 or too large for
/// 32 bits (Go's `archive/zip` and Python's `zipfile` both do so).
pub(crate) fn zip_descriptor(
    r: &mut impl Read,
    zip64: bool,
) -> Result<(u32, u64, u64), ZipProblem> {
    let mut first = [0u8; 4];
    read_exact_or(r, &mut first, "the data descriptor")?;
    let crc = if first == ZIP_DESCRIPTOR {
        let mut c = [0u8; 4];
        read_exact_or(r, &mut c, "the data descriptor")?;
        le32(&c)
    } else {
        le32(&first)
    };
    if zip64 {
        let mut s = [0u8; 16];
        read_exact_or(r, &mut s, "the data descriptor")?;
        Ok((crc, le64(&s), le64(&s[8..])))
    } else {
        let mut s = [0u8; 8];
        read_exact_or(r, &mut s, "the data descriptor")?;
        Ok((crc, u64::from(le32(&s)), u64::from(le32(&s[4..]))))
    }
}

/// The largest central directory (with its end record and comment) read
/// after a single entry.
const MAX_ZIP_TAIL: u64 = 1 << 20;

/// Checks what follows the entry: exactly one central directory header and
/// an end-of-central-directory record. Reads to the end (bounded).
pub(crate) fn zip_tail(r: &mut impl Read) -> Result<(), ZipProblem> {
    let mut tail = Vec::new();
    r.take(MAX_ZIP_TAIL + 1)
        .read_to_end(&mut tail)
        .map_err(|e| format!("the zip's central directory cannot be read ({e})"))?;
    if tail.len() as u64 > MAX_ZIP_TAIL {
        return Err(format!(
            "more than {MAX_ZIP_TAIL} bytes follow the zip's entry"
        ));
    }
    if tail.starts_with(&ZIP_LOCAL) {
        return Err(
            "the zip holds more than one file; a k3s or RKE2 snapshot zip holds exactly one".into(),
        );
    }
    if !tail.starts_with(&ZIP_CENTRAL) || tail.len() < 46 {
        return Err("the zip's entry is not followed by its central directory".into());
    }
    let skip = 46
        + usize::from(le16(&tail[28..]))
        + usize::from(le16(&tail[30..]))
        + usize::from(le16(&tail[32..]));
    let rest = tail.get(skip..).unwrap_or_default();
    if rest.starts_with(&ZIP_CENTRAL) {
        return Err("the zip's central directory lists more than one file; a k3s or RKE2 snapshot zip holds exactly one".into());
    }
    if !rest.windows(4).any(|w| w == ZIP_EOCD) {
        return Err("the zip has no end-of-central-directory record; it is truncated".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zlib_headers() {
        assert!(zlib_header(&[0x78, 0x9c]));
        assert!(zlib_header(&[0x78, 0x01]));
        assert!(zlib_header(&[0x78, 0xda]));
        assert!(!zlib_header(&[0x78, 0x9d]));
        assert!(!zlib_header(&[0x1f, 0x8b]));
        assert!(!zlib_header(&[0x78]));
    }

    #[test]
    fn events_are_recognised_with_or_without_spaces() {
        assert!(looks_like_events(br#"[{"etcdEvent":{"type":0}}]"#));
        assert!(looks_like_events(b"[ {\n \"etcdEvent\" : {}}]"));
        assert!(!looks_like_events(br#"[{"etcd":1}]"#));
        assert!(!looks_like_events(b""));
    }
}
