//! Test-only makers of other tools' formats, byte for byte: a port of Go's
//! `compress/lzw` writer (what Gardener's etcd-backup-restore uses for its
//! `.Z` snapshots), a single-entry zip written the way Go's `archive/zip`
//! writes it (k3s/RKE2: sizes in a data descriptor after the data), and
//! streaming gzip and zip bombs that expand to gigabytes of zeros without
//! anything of that size ever existing.
//!
//! Shared by the pure tests in `src/snapshot` (through `#[path]`) and the
//! end-to-end tests, so that both read the same bytes. Only std, flate2 and
//! crc32fast are used.

#![allow(dead_code)]

use std::io::{self, Write};

// ---- Go's compress/lzw writer (Go 1.17+, writer.go), LSB order ----------

const MAX_CODE: u32 = (1 << 12) - 1;
const INVALID_CODE: u32 = u32::MAX;
const TABLE_BITS: u32 = 12 + 2;
const TABLE_SIZE: usize = 1 << TABLE_BITS;
const TABLE_MASK: u32 = (TABLE_SIZE as u32) - 1;
const INVALID_ENTRY: u32 = 0;

/// `lzw.NewWriter(w, lzw.LSB, 8)`: the same codes, the same code-width
/// changes (the width grows when `hi` reaches `overflow`, after the code
/// that reached it; a clear code is sent when `hi` reaches 4095), the same
/// start (a clear code) and end (the saved code, the EOF code, the last
/// partial byte).
pub struct GoLzwWriter<W: Write> {
    w: W,
    lit_width: u32,
    bits: u32,
    n_bits: u32,
    width: u32,
    hi: u32,
    overflow: u32,
    saved_code: u32,
    table: Vec<u32>,
}

enum Inc {
    Ok,
    OutOfCodes,
}

impl<W: Write> GoLzwWriter<W> {
    pub fn new(w: W) -> Self {
        let lw = 8;
        GoLzwWriter {
            w,
            lit_width: lw,
            bits: 0,
            n_bits: 0,
            width: 1 + lw,
            hi: (1 << lw) + 1,
            overflow: 1 << (lw + 1),
            saved_code: INVALID_CODE,
            table: vec![INVALID_ENTRY; TABLE_SIZE],
        }
    }

    /// writeLSB.
    fn write_code(&mut self, c: u32) -> io::Result<()> {
        self.bits |= c << self.n_bits;
        self.n_bits += self.width;
        while self.n_bits >= 8 {
            self.w.write_all(&[self.bits as u8])?;
            self.bits >>= 8;
            self.n_bits -= 8;
        }
        Ok(())
    }

    /// incHi.
    fn inc_hi(&mut self) -> io::Result<Inc> {
        self.hi += 1;
        if self.hi == self.overflow {
            self.width += 1;
            self.overflow <<= 1;
        }
        if self.hi == MAX_CODE {
            let clear = 1u32 << self.lit_width;
            self.write_code(clear)?;
            self.width = self.lit_width + 1;
            self.hi = clear + 1;
            self.overflow = clear << 1;
            self.table.fill(INVALID_ENTRY);
            return Ok(Inc::OutOfCodes);
        }
        Ok(Inc::Ok)
    }

    /// Write.
    pub fn write_all(&mut self, mut p: &[u8]) -> io::Result<()> {
        if p.is_empty() {
            return Ok(());
        }
        let mut code = self.saved_code;
        if code == INVALID_CODE {
            let clear = 1u32 << self.lit_width;
            self.write_code(clear)?;
            code = u32::from(p[0]);
            p = &p[1..];
        }
        'outer: for &x in p {
            let literal = u32::from(x);
            let key = (code << 8) | literal;
            let mut hash = ((key >> 12) ^ key) & TABLE_MASK;
            let mut h = hash;
            let mut t = self.table[h as usize];
            while t != INVALID_ENTRY {
                if key == t >> 12 {
                    code = t & MAX_CODE;
                    continue 'outer;
                }
                h = (h + 1) & TABLE_MASK;
                t = self.table[h as usize];
            }
            self.write_code(code)?;
            code = literal;
            if let Inc::OutOfCodes = self.inc_hi()? {
                continue;
            }
            loop {
                if self.table[hash as usize] == INVALID_ENTRY {
                    self.table[hash as usize] = (key << 12) | self.hi;
                    break;
                }
                hash = (hash + 1) & TABLE_MASK;
            }
        }
        self.saved_code = code;
        Ok(())
    }

    /// Close: the saved code, the EOF code and the final bits.
    pub fn finish(mut self) -> io::Result<W> {
        if self.saved_code != INVALID_CODE {
            let c = self.saved_code;
            self.write_code(c)?;
            self.inc_hi()?;
        } else {
            let clear = 1u32 << self.lit_width;
            self.write_code(clear)?;
        }
        let eof = (1u32 << self.lit_width) + 1;
        self.write_code(eof)?;
        if self.n_bits > 0 {
            self.w.write_all(&[self.bits as u8])?;
        }
        Ok(self.w)
    }
}

/// `data` compressed as Gardener compresses a `.Z` snapshot.
pub fn go_lzw(data: &[u8]) -> Vec<u8> {
    let mut w = GoLzwWriter::new(Vec::new());
    // Several writes, as io.Copy makes them: the saved code carries over.
    for chunk in data.chunks(32 << 10) {
        w.write_all(chunk).unwrap();
    }
    w.finish().unwrap()
}

// ---- zip, as Go's archive/zip writes one deflated file ------------------

fn deflate_raw(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A zip with one deflated entry `name`. `descriptor`: the sizes and CRC
/// follow the data in a signed data descriptor and the local header holds
/// zeros (Go's `archive/zip`, so k3s and RKE2); otherwise they are in the
/// local header (Python's `zipfile` on a seekable file).
pub fn zip_one(name: &str, data: &[u8], descriptor: bool) -> Vec<u8> {
    let comp = deflate_raw(data);
    zip_with(
        name,
        &comp,
        data.len() as u64,
        crc32fast::hash(data),
        descriptor,
    )
}

/// A zip around an already-deflated entry (sizes < 4 GiB are written in
/// 32 bits; a larger `size` gets a zip64 data descriptor as Go writes it).
pub fn zip_with(name: &str, comp: &[u8], size: u64, crc: u32, descriptor: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let flags: u16 = if descriptor { 0x8 } else { 0 };
    let (h_crc, h_c, h_u) = if descriptor {
        (0u32, 0u32, 0u32)
    } else {
        (crc, comp.len() as u32, size as u32)
    };
    out.extend_from_slice(b"PK\x03\x04");
    out.extend_from_slice(&20u16.to_le_bytes());
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend_from_slice(&8u16.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&0x21u16.to_le_bytes());
    out.extend_from_slice(&h_crc.to_le_bytes());
    out.extend_from_slice(&h_c.to_le_bytes());
    out.extend_from_slice(&h_u.to_le_bytes());
    out.extend_from_slice(&(name.len() as u16).to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(comp);
    let zip64 = size >= u64::from(u32::MAX);
    if descriptor {
        out.extend_from_slice(b"PK\x07\x08");
        out.extend_from_slice(&crc.to_le_bytes());
        if zip64 {
            out.extend_from_slice(&(comp.len() as u64).to_le_bytes());
            out.extend_from_slice(&size.to_le_bytes());
        } else {
            out.extend_from_slice(&(comp.len() as u32).to_le_bytes());
            out.extend_from_slice(&(size as u32).to_le_bytes());
        }
    }
    let cd_at = out.len() as u32;
    let mut cd = Vec::new();
    cd.extend_from_slice(b"PK\x01\x02");
    cd.extend_from_slice(&20u16.to_le_bytes());
    cd.extend_from_slice(&20u16.to_le_bytes());
    cd.extend_from_slice(&flags.to_le_bytes());
    cd.extend_from_slice(&8u16.to_le_bytes());
    cd.extend_from_slice(&0u16.to_le_bytes());
    cd.extend_from_slice(&0x21u16.to_le_bytes());
    cd.extend_from_slice(&crc.to_le_bytes());
    cd.extend_from_slice(&(comp.len() as u32).to_le_bytes());
    cd.extend_from_slice(&(size.min(u64::from(u32::MAX)) as u32).to_le_bytes());
    cd.extend_from_slice(&(name.len() as u16).to_le_bytes());
    cd.extend_from_slice(&[0u8; 12]);
    cd.extend_from_slice(&0u32.to_le_bytes());
    cd.extend_from_slice(name.as_bytes());
    out.extend_from_slice(&cd);
    out.extend_from_slice(b"PK\x05\x06");
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&(cd.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_at.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

// ---- bombs ---------------------------------------------------------------

const MIB: usize = 1 << 20;

/// `data` as raw deflate blocks that end in a full flush: the blocks refer
/// to nothing before them, so copies in a row are a valid deflate stream of
/// the copies' content. Also returns the stream's final (empty) block.
fn flushed_chunk(data: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut c = flate2::Compress::new(flate2::Compression::best(), false);
    let mut chunk = Vec::with_capacity(data.len() + (64 << 10));
    c.compress_vec(data, &mut chunk, flate2::FlushCompress::Full)
        .unwrap();
    assert_eq!(c.total_in(), data.len() as u64, "one call takes it all");
    let mut end = Vec::with_capacity(64);
    c.compress_vec(&[], &mut end, flate2::FlushCompress::Finish)
        .unwrap();
    (chunk, end)
}

/// The CRC-32 of `first` followed by `mib` MiB of zeros, by combining (no
/// pass over the zeros).
fn bomb_crc(first: &[u8], mib: u64) -> u32 {
    let mut one = crc32fast::Hasher::new();
    one.update(&vec![0u8; MIB]);
    let mut acc = crc32fast::Hasher::new();
    acc.update(first);
    let mut pow = one;
    let mut n = mib;
    while n > 0 {
        if n & 1 == 1 {
            acc.combine(&pow);
        }
        let p2 = pow.clone();
        pow.combine(&p2);
        n >>= 1;
    }
    acc.finalize()
}

/// The deflate stream of `first` then `mib` MiB of zeros, written to `out`
/// as it is made (about 1 KiB per MiB of zeros); returns the content's
/// CRC-32 and length.
fn deflate_bomb(out: &mut impl Write, first: &[u8], mib: u64) -> io::Result<(u32, u64)> {
    let (head, _) = flushed_chunk(first);
    let (zeros, end) = flushed_chunk(&vec![0u8; MIB]);
    out.write_all(&head)?;
    for _ in 0..mib {
        out.write_all(&zeros)?;
    }
    out.write_all(&end)?;
    Ok((bomb_crc(first, mib), first.len() as u64 + mib * MIB as u64))
}

/// Writes a gzip file of `first` followed by `mib` MiB of zeros,
/// streaming. Its CRC-32 and length are right: it is a valid gzip, only a
/// huge one. With a bbolt page as `first` it looks like a gzip'd snapshot.
pub fn gzip_bomb(out: &mut impl Write, first: &[u8], mib: u64) -> io::Result<()> {
    out.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3])?;
    let (crc, len) = deflate_bomb(out, first, mib)?;
    out.write_all(&crc.to_le_bytes())?;
    out.write_all(&(len as u32).to_le_bytes())?;
    Ok(())
}

/// A zip with one entry of `first` then `mib` MiB of zeros, sizes in a
/// data descriptor as Go writes them.
pub fn zip_bomb(first: &[u8], mib: u64) -> Vec<u8> {
    let mut comp = Vec::new();
    let (crc, len) = deflate_bomb(&mut comp, first, mib).unwrap();
    zip_with("etcd-snapshot-node1-1704067200", &comp, len, crc, true)
}
