//! Machine-wide claims on loopback addresses. Every unit gets its own
//! `127.x.y.z` (never `127.0.0.x`). A claim is a file created with O_EXCL in
//! `${JUJU_SIM_ADDR_DIR:-/tmp/juju-sim-addresses}/<addr>` holding the
//! claiming home and unit, so two models (two homes) never share an address.
//! A claim whose home no longer exists is stale and is taken over.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};

/// Errors from claiming an address.
#[derive(Debug, thiserror::Error)]
pub enum AddrError {
    #[error("cannot use address claim directory {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no free loopback address left")]
    Exhausted,
}

pub fn claim_dir() -> PathBuf {
    std::env::var_os("JUJU_SIM_ADDR_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/juju-sim-addresses"))
}

const SPACE: u64 = 254 * 256 * 254;

fn nth(i: u64) -> String {
    let x = 1 + i / (256 * 254);
    let y = (i / 254) % 256;
    let z = 1 + i % 254;
    format!("127.{x}.{y}.{z}")
}

fn stale(path: &Path) -> bool {
    match fs::read_to_string(path) {
        Ok(s) => {
            let home = s.lines().next().unwrap_or("");
            !home.is_empty() && !Path::new(home).exists()
        }
        Err(_) => false,
    }
}

fn bindable(addr: &str) -> bool {
    [2379u16, 2380]
        .iter()
        .all(|p| TcpListener::bind((addr, *p)).is_ok())
}

/// Claims a free address for `unit` of the model at `home`.
pub fn claim(home: &Path, unit: &str) -> Result<String, AddrError> {
    let dir = claim_dir();
    fs::create_dir_all(&dir).map_err(|source| AddrError::Io {
        path: dir.clone(),
        source,
    })?;
    let start = crate::util::fnv(home.to_string_lossy().as_bytes()) % SPACE;
    for k in 0..SPACE.min(100_000) {
        let addr = nth((start + k) % SPACE);
        let path = dir.join(&addr);
        if path.exists() {
            if stale(&path) {
                let _ = fs::remove_file(&path);
            } else {
                continue;
            }
        }
        if !bindable(&addr) {
            continue;
        }
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(mut f) => {
                let _ = writeln!(f, "{}\n{}", home.display(), unit);
                return Ok(addr);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(source) => return Err(AddrError::Io { path, source }),
        }
    }
    Err(AddrError::Exhausted)
}

/// Releases `addr` if this home holds its claim.
pub fn release(home: &Path, addr: &str) {
    if addr.is_empty() {
        return;
    }
    let path = claim_dir().join(addr);
    if let Ok(s) = fs::read_to_string(&path) {
        if s.lines().next() == Some(&*home.to_string_lossy()) {
            let _ = fs::remove_file(&path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_127_0_0() {
        assert_eq!(nth(0), "127.1.0.1");
        assert_eq!(nth(SPACE - 1), "127.254.255.254");
    }
}
