//! What an etcd database looks like on the wire, checked while it streams.
//!
//! etcd's Maintenance snapshot stream (and so `etcdctl snapshot save`'s
//! file) is a bbolt database followed by 32 bytes: the sha256 of everything
//! before them. [`DbScanner`] sees every byte once, in chunks of any size,
//! and keeps a 32-byte lookbehind so that it can hash "everything but the
//! last 32 bytes" without knowing where the stream ends. It also keeps the
//! first bytes, to check bbolt's magic number at offset 16.

use super::hash::Sha256;

/// bbolt's magic number `0xED0CDAED`, little-endian, as it appears in the
/// meta page.
pub const BBOLT_MAGIC: [u8; 4] = [0xED, 0xDA, 0x0C, 0xED];
/// Where the magic number sits: right after the 16-byte page header of
/// page 0.
pub const MAGIC_OFFSET: usize = 16;
/// The length of etcd's trailing sha256.
pub const ETCD_HASH_LEN: usize = 32;
/// etcd decides that a snapshot file carries its trailing sha256 when
/// `size % 512 == 32` (a bbolt file is a whole number of pages).
pub(crate) const HASH_ALIGN: u64 = 512;

const HEAD_LEN: usize = MAGIC_OFFSET + BBOLT_MAGIC.len();

/// Whether the last 32 bytes are a sha256 of the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Trailer {
    Matches,
    Mismatch { stored: String, computed: String },
    TooShort,
}

/// What one pass over a db found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DbDigest {
    /// sha256 of every byte, the trailer included, as lowercase hex.
    pub sha256: String,
    pub size: u64,
    pub has_magic: bool,
    pub trailer: Trailer,
}

impl DbDigest {
    /// Whether etcd itself would see (and check) a trailing hash.
    pub fn hash_aligned(&self) -> bool {
        self.size % HASH_ALIGN == ETCD_HASH_LEN as u64
    }
}

/// Hashes a db as it streams by; see the module doc. Every byte is hashed
/// once: `body` sees all but the lookbehind, and the hash of everything is
/// a clone of `body` fed the last 32 bytes at the end.
pub(crate) struct DbScanner {
    body: Sha256,
    tail: [u8; ETCD_HASH_LEN],
    tail_len: usize,
    head: [u8; HEAD_LEN],
    head_len: usize,
    size: u64,
}

impl DbScanner {
    pub fn new() -> Self {
        DbScanner {
            body: Sha256::new(),
            tail: [0; ETCD_HASH_LEN],
            tail_len: 0,
            head: [0; HEAD_LEN],
            head_len: 0,
            size: 0,
        }
    }

    pub fn update(&mut self, chunk: &[u8]) {
        self.size += chunk.len() as u64;
        if self.head_len < HEAD_LEN {
            let n = (HEAD_LEN - self.head_len).min(chunk.len());
            self.head[self.head_len..self.head_len + n].copy_from_slice(&chunk[..n]);
            self.head_len += n;
        }
        if chunk.len() >= ETCD_HASH_LEN {
            // The whole lookbehind and all but the chunk's last 32 bytes are
            // certainly not the trailer.
            self.body.update(&self.tail[..self.tail_len]);
            let split = chunk.len() - ETCD_HASH_LEN;
            self.body.update(&chunk[..split]);
            self.tail.copy_from_slice(&chunk[split..]);
            self.tail_len = ETCD_HASH_LEN;
        } else {
            let total = self.tail_len + chunk.len();
            if total <= ETCD_HASH_LEN {
                self.tail[self.tail_len..total].copy_from_slice(chunk);
                self.tail_len = total;
            } else {
                // Less than 32 new bytes: push the oldest `spill` bytes of
                // the lookbehind into the body (spill < tail_len here).
                let spill = total - ETCD_HASH_LEN;
                self.body.update(&self.tail[..spill]);
                self.tail.copy_within(spill..self.tail_len, 0);
                let kept = self.tail_len - spill;
                self.tail[kept..].copy_from_slice(chunk);
                self.tail_len = ETCD_HASH_LEN;
            }
        }
    }

    pub fn finish(self) -> DbDigest {
        let has_magic = self.head_len == HEAD_LEN && self.head[MAGIC_OFFSET..] == BBOLT_MAGIC;
        let mut all = self.body.clone();
        all.update(&self.tail[..self.tail_len]);
        let trailer = if self.tail_len < ETCD_HASH_LEN {
            Trailer::TooShort
        } else {
            let computed: [u8; ETCD_HASH_LEN] = self.body.finish_bytes();
            if computed == self.tail {
                Trailer::Matches
            } else {
                Trailer::Mismatch {
                    stored: hex::encode(self.tail),
                    computed: hex::encode(computed),
                }
            }
        };
        DbDigest {
            sha256: all.finish_hex(),
            size: self.size,
            has_magic,
            trailer,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::testutil::{raw_db, synth_db};
    use sha2::Digest;

    fn scan_in_chunks(data: &[u8], sizes: &[usize]) -> DbDigest {
        let mut s = DbScanner::new();
        let mut pos = 0;
        let mut i = 0;
        while pos < data.len() {
            let n = sizes[i % sizes.len()].min(data.len() - pos);
            s.update(&data[pos..pos + n]);
            pos += n;
            i += 1;
        }
        s.finish()
    }

    #[test]
    fn trailer_verified_whatever_the_chunking() {
        let db = synth_db(3, 7);
        let want = hex::encode(sha2::Sha256::digest(&db));
        for sizes in [
            &[1usize][..],
            &[7],
            &[31],
            &[32],
            &[33],
            &[4096],
            &[1, 63, 2, 31, 32, 5000],
            &[db.len()],
        ] {
            let d = scan_in_chunks(&db, sizes);
            assert_eq!(d.trailer, Trailer::Matches, "chunks {sizes:?}");
            assert_eq!(d.sha256, want);
            assert_eq!(d.size, db.len() as u64);
            assert!(d.has_magic);
            assert!(d.hash_aligned());
        }
    }

    #[test]
    fn trailer_mismatch_and_raw_db_are_told_apart() {
        let mut db = synth_db(2, 1);
        let last = db.len() - 1;
        db[last] ^= 1;
        assert!(matches!(
            scan_in_chunks(&db, &[5, 100]).trailer,
            Trailer::Mismatch { .. }
        ));
        let mut db = synth_db(2, 1);
        db[100] ^= 0x40;
        assert!(matches!(
            scan_in_chunks(&db, &[3]).trailer,
            Trailer::Mismatch { .. }
        ));
        let raw = raw_db(2, 1);
        let d = scan_in_chunks(&raw, &[4096]);
        assert!(matches!(d.trailer, Trailer::Mismatch { .. }));
        assert!(!d.hash_aligned());
    }

    #[test]
    fn short_inputs() {
        let d = scan_in_chunks(&[0u8; 10], &[3]);
        assert_eq!(d.trailer, Trailer::TooShort);
        assert!(!d.has_magic);
        let d = DbScanner::new().finish();
        assert_eq!(d.size, 0);
        assert_eq!(d.trailer, Trailer::TooShort);
        // Exactly 32 bytes: the trailer is the sha256 of nothing.
        let empty: [u8; 32] = sha2::Sha256::digest(b"").into();
        assert_eq!(scan_in_chunks(&empty, &[1]).trailer, Trailer::Matches);
    }

    #[test]
    fn magic_needs_the_right_bytes_at_16() {
        let mut db = synth_db(1, 3);
        assert!(scan_in_chunks(&db, &[1]).has_magic);
        db[17] = 0;
        assert!(!scan_in_chunks(&db, &[1]).has_magic);
    }
}
