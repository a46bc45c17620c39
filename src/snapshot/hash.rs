//! sha256 for the streaming passes, from `ring`.
//!
//! Hashing is a large share of a snapshot's CPU time (every db byte is
//! hashed once, every archive byte once). On machines without the SHA
//! extensions `ring`'s assembly is about 1.6× faster than the pure-Rust
//! `sha2` (measured in `bench/RESULTS.md`), and its state can be cloned, so
//! one pass can yield both "everything but the trailer" and "everything".

/// A running sha256.
#[derive(Clone)]
pub(crate) struct Sha256(ring::digest::Context);

impl Sha256 {
    pub fn new() -> Self {
        Sha256(ring::digest::Context::new(&ring::digest::SHA256))
    }

    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// The digest's 32 bytes.
    pub fn finish_bytes(self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.0.finish().as_ref());
        out
    }

    /// The digest as lowercase hex, as `sha256sum` prints it.
    pub fn finish_hex(self) -> String {
        hex::encode(self.finish_bytes())
    }
}

impl Default for Sha256 {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest;

    #[test]
    fn agrees_with_sha2_and_clones() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut h = Sha256::new();
        h.update(&data[..500]);
        let mut fork = h.clone();
        h.update(&data[500..]);
        fork.update(&data[500..]);
        let want = hex::encode(sha2::Sha256::digest(&data));
        assert_eq!(h.finish_hex(), want);
        assert_eq!(fork.finish_hex(), want);
        assert_eq!(
            Sha256::new().finish_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
