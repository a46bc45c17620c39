//! Test fixtures: synthetic etcd databases shaped like etcd's snapshot
//! stream, hand-built (and hostile) tar.gz archives, and awkward readers.
//!
//! etcd cannot run in unit tests, so a "db" here is what matters to this
//! module: 4096-byte pages, bbolt's magic at offset 16 of the meta pages,
//! pseudo-random content, and (for a snapshot) the sha256 of all of it
//! appended, exactly as etcd's Maintenance stream ends.

use std::io::{self, Read, Write};

use flate2::write::GzEncoder;
use flate2::Compression;
use sha2::{Digest, Sha256};

use super::db::BBOLT_MAGIC;
use super::inspect::{inspect, Inspection, Limits};
use super::manifest::ManifestFields;
use super::pack::{pack, Packed};
use super::NoProgress;

pub const PAGE: usize = 4096;

pub fn fields() -> ManifestFields {
    ManifestFields {
        etcd_version: "3.5.1".into(),
        cluster_id: "cdf818194e3a8c32".into(),
        member_id: "8e9e05c52164694d".into(),
        revision: 4242,
        key_count: 1000,
        created: "2016-11-09T02:41:47Z".into(),
        source_unit: "etcd/0".into(),
    }
}

/// xorshift64*: deterministic and cheap even unoptimised.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Fills one page: a page header, bbolt's magic on the two meta pages, a
/// pseudo-random first quarter and zeros (free space) after it.
fn fill_page(page: &mut [u8], id: u64, rng: &mut Rng) {
    page.fill(0);
    page[..8].copy_from_slice(&id.to_le_bytes());
    for chunk in page[16..PAGE / 4].chunks_mut(8) {
        let v = rng.next().to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
    if id < 2 {
        page[16..20].copy_from_slice(&BBOLT_MAGIC);
    }
}

/// A raw bbolt-shaped file of `pages` pages (what `member/snap/db` is).
pub fn raw_db(pages: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed | 1);
    let mut out = vec![0u8; pages * PAGE];
    for (id, page) in out.chunks_mut(PAGE).enumerate() {
        fill_page(page, id as u64, &mut rng);
    }
    out
}

/// What etcd's snapshot stream yields: the raw file plus its sha256.
pub fn synth_db(pages: usize, seed: u64) -> Vec<u8> {
    let mut db = raw_db(pages, seed);
    let h: [u8; 32] = Sha256::digest(&db).into();
    db.extend_from_slice(&h);
    db
}

/// `synth_db(pages, seed)` generated on the fly, never held in memory.
pub struct SynthDb {
    rng: Rng,
    pages: u64,
    next_page: u64,
    page: Vec<u8>,
    pos: usize,
    body: Sha256,
    trailer: Option<([u8; 32], usize)>,
}

impl SynthDb {
    pub fn new(pages: u64, seed: u64) -> Self {
        SynthDb {
            rng: Rng(seed | 1),
            pages,
            next_page: 0,
            page: vec![0; PAGE],
            pos: PAGE,
            body: Sha256::new(),
            trailer: None,
        }
    }

    pub fn size(&self) -> u64 {
        self.pages * PAGE as u64 + 32
    }
}

impl Read for SynthDb {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos == PAGE && self.next_page < self.pages {
            fill_page(&mut self.page, self.next_page, &mut self.rng);
            self.body.update(&self.page);
            self.next_page += 1;
            self.pos = 0;
        }
        if self.pos < PAGE {
            let n = buf.len().min(PAGE - self.pos);
            buf[..n].copy_from_slice(&self.page[self.pos..self.pos + n]);
            self.pos += n;
            return Ok(n);
        }
        let (hash, at) = self.trailer.get_or_insert_with(|| {
            let h = std::mem::take(&mut self.body);
            (h.finalize().into(), 0)
        });
        let n = buf.len().min(32 - *at);
        buf[..n].copy_from_slice(&hash[*at..*at + n]);
        *at += n;
        Ok(n)
    }
}

/// A reader that hands out 1 to 7 bytes at a time, sometimes after an
/// `Interrupted`.
pub struct TinyChunks<R> {
    pub inner: R,
    pub rng: Rng,
}

impl<R: Read> Read for TinyChunks<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.rng.below(5) == 0 {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "again"));
        }
        let n = (1 + self.rng.below(7) as usize).min(buf.len());
        self.inner.read(&mut buf[..n])
    }
}

/// A reader or writer that fails after `after` bytes.
pub struct FailAfter {
    pub after: usize,
    pub kind: io::ErrorKind,
}

impl Write for FailAfter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.after == 0 {
            return Err(io::Error::new(self.kind, "No space left on device"));
        }
        let n = buf.len().min(self.after);
        self.after -= n;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

pub fn pack_vec(db: &[u8]) -> (Vec<u8>, Packed) {
    let mut out = Vec::new();
    let packed = pack(db, db.len() as u64, fields(), &mut out, &mut NoProgress).unwrap();
    (out, packed)
}

/// Inspects `input` with `limits`, returning the extracted db too.
pub fn inspect_with(input: &[u8], limits: Limits) -> (Inspection, Vec<u8>) {
    let mut db = Vec::new();
    let i = inspect(input, Some(&mut db), limits, &mut NoProgress).unwrap();
    (i, db)
}

pub fn inspect_vec(input: &[u8]) -> (Inspection, Vec<u8>) {
    inspect_with(input, Limits::default())
}

/// One raw tar entry: the name and link name written into the header
/// bytes as given (the `tar` crate would refuse the hostile ones).
pub fn raw_entry(name: &[u8], kind: tar::EntryType, data: &[u8], link: Option<&[u8]>) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    {
        let old = h.as_old_mut();
        old.name[..name.len()].copy_from_slice(name);
        if let Some(l) = link {
            old.linkname[..l.len()].copy_from_slice(l);
        }
    }
    h.set_entry_type(kind);
    h.set_mode(0o600);
    h.set_size(data.len() as u64);
    h.set_mtime(1_478_659_307);
    h.set_cksum();
    let mut out = h.as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

/// A regular-file entry.
pub fn file(name: &[u8], data: &[u8]) -> Vec<u8> {
    raw_entry(name, tar::EntryType::Regular, data, None)
}

/// The entries, the end-of-archive blocks, gzip'd.
pub fn tar_gz(parts: &[Vec<u8>]) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    for p in parts {
        gz.write_all(p).unwrap();
    }
    gz.write_all(&[0u8; 1024]).unwrap();
    gz.finish().unwrap()
}

/// Our archive's two entries for `db`, with the manifest `pack` would write.
pub fn charm_parts(db: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let m = fields().into_manifest(hex::encode(Sha256::digest(db)), db.len() as u64);
    (
        file(b"db", db),
        file(b"manifest.json", &m.to_json().unwrap()),
    )
}
