//! Test-only helpers for the few unit tests that run real etcd on loopback:
//! where Debian's etcd lives, a free port, and a child process that is
//! killed when dropped, so a failing test never leaves etcd behind.

use std::net::TcpListener;
use std::path::Path;
use std::process::Child;

pub const ETCD: &str = "/usr/bin/etcd";
pub const ETCDCTL: &str = "/usr/bin/etcdctl";

/// Panics with the fix when Debian's etcd is missing: the test command
/// installs it, so its absence is a broken setup, not a reason to pass.
pub fn require_etcd() {
    assert!(
        Path::new(ETCD).exists() && Path::new(ETCDCTL).exists(),
        "{ETCD} or {ETCDCTL} is not installed: run scripts/setup"
    );
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port on 127.0.0.1")
}

/// A child process, killed and reaped when dropped.
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The wall clock in Unix seconds. The library never reads the clock; tests
/// whose outside checker does (etcd, openssl validate certificates against
/// it) pass this in.
pub fn wall_clock() -> i64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is before 1970")
        .as_secs();
    i64::try_from(secs).expect("the clock is past year 292 billion")
}

/// Writes `text` to `dir/name` with mode 0600 and returns the path.
pub fn write_private(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    crate::fsutil::write_private(&path, text.as_bytes()).expect("cannot write a test file");
    path.to_str().expect("a UTF-8 temp path").to_string()
}
