//! The unit root: every absolute path the charm owns goes through [`Root`].
//!
//! In production the root is `/`. The simulator sets `ETCD_CHARM_ROOT` per
//! unit so that several units share one machine. Paths rendered into files
//! (the systemd unit's `ExecStart`, etcd's `data-dir`) are resolved before
//! rendering, so whatever reads those files needs no knowledge of the root.

use std::path::{Component, Path, PathBuf};

/// The environment variable that moves the root (set by the simulator).
pub const ROOT_ENV: &str = "ETCD_CHARM_ROOT";

/// Unit paths the charm owns.
pub const CONFIG_FILE: &str = "/etc/etcd-charm/etcd.conf.yml";
pub const DATA_DIR: &str = "/var/lib/etcd-charm/data";
/// Binaries from the `etcd` resource: one directory per build,
/// `BIN_DIR/<version>-<first 12 hex of the tarball's sha256>/` (see
/// [`build_dir_name`]), so new binaries never replace the ones a running
/// etcd was started from. Units installed by charm revisions before this
/// layout have flat `BIN_DIR/{etcd,etcdctl,etcdutl}`; both coexist.
pub const BIN_DIR: &str = "/var/lib/etcd-charm/bin";
/// Where a resource is unpacked and checked before it becomes a build
/// directory (same filesystem as `BIN_DIR`, so the move is a rename).
pub const STAGING_DIR: &str = "/var/lib/etcd-charm/bin.new";
/// Where a damaged copy of a build is moved before the same tarball's
/// binaries take its place (removed right after).
pub const DAMAGED_BUILD_DIR: &str = "/var/lib/etcd-charm/bin.damaged";
pub const STATE_FILE: &str = "/var/lib/etcd-charm/state.json";
pub const LOCK_FILE: &str = "/var/lib/etcd-charm/charm.lock";
pub const UNIT_FILE: &str = "/etc/systemd/system/etcd.service";
/// TLS material: the CA certificate, this unit's server/peer certificate
/// and its client certificate. Keys are 0600.
pub const PKI_DIR: &str = "/etc/etcd-charm/pki";
pub const CA_CERT: &str = "/etc/etcd-charm/pki/ca.crt";
pub const SERVER_CERT: &str = "/etc/etcd-charm/pki/server.crt";
pub const SERVER_KEY: &str = "/etc/etcd-charm/pki/server.key";
pub const CLIENT_CERT: &str = "/etc/etcd-charm/pki/client.crt";
pub const CLIENT_KEY: &str = "/etc/etcd-charm/pki/client.key";
/// Where `package-client-credentials` leaves its archives (0700).
pub const CREDENTIALS_DIR: &str = "/var/lib/etcd-charm/credentials";

/// The name of one build's directory under `BIN_DIR`:
/// `<version>-<first 12 hex of sha256>`, e.g. `3.5.30-0123456789ab`. The
/// version comes from the binary itself, so anything but
/// `[A-Za-z0-9._+-]` in it becomes `_` (no `/`, no way out of `BIN_DIR`).
pub fn build_dir_name(version: &str, sha256: &str) -> String {
    let version: String = version
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let version = if version.is_empty() || version.starts_with('.') {
        format!("v{version}")
    } else {
        version
    };
    let sha: String = sha256
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(12)
        .collect();
    format!("{version}-{sha}")
}

/// A path that cannot be a unit path.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "{path:?} is not an absolute path without '..': refusing to resolve it under the unit root"
)]
pub struct PathError {
    pub path: PathBuf,
}

/// The filesystem root the charm's paths live under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    base: PathBuf,
}

impl Root {
    /// `/`, or `$ETCD_CHARM_ROOT` when set.
    pub fn from_env() -> Self {
        match std::env::var_os(ROOT_ENV) {
            Some(v) if !v.is_empty() => Root::new(v),
            _ => Root::new("/"),
        }
    }

    pub fn new(base: impl Into<PathBuf>) -> Self {
        Root { base: base.into() }
    }

    pub fn base(&self) -> &Path {
        &self.base
    }

    /// Resolves a unit path (absolute, no `..`) to a host path.
    pub fn resolve(&self, unit_path: impl AsRef<Path>) -> Result<PathBuf, PathError> {
        let p = unit_path.as_ref();
        let mut out = self.base.clone();
        let mut comps = p.components();
        if comps.next() != Some(Component::RootDir) {
            return Err(PathError { path: p.into() });
        }
        for c in comps {
            match c {
                Component::Normal(n) => out.push(n),
                Component::CurDir => {}
                _ => return Err(PathError { path: p.into() }),
            }
        }
        Ok(out)
    }

    /// Resolves one of the charm's own constant paths (always valid).
    pub fn at(&self, constant: &'static str) -> PathBuf {
        let rel = constant.trim_start_matches('/');
        self.base.join(rel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn production_root_is_identity() {
        let r = Root::new("/");
        assert_eq!(r.at(CONFIG_FILE), PathBuf::from(CONFIG_FILE));
        assert_eq!(r.resolve("/a/b").unwrap(), PathBuf::from("/a/b"));
    }

    #[test]
    fn moved_root() {
        let r = Root::new("/tmp/u0/root");
        assert_eq!(
            r.at(DATA_DIR),
            PathBuf::from("/tmp/u0/root/var/lib/etcd-charm/data")
        );
        assert_eq!(
            r.resolve("/home/ubuntu/./x").unwrap(),
            PathBuf::from("/tmp/u0/root/home/ubuntu/x")
        );
    }

    #[test]
    fn build_dirs_are_one_plain_component() {
        assert_eq!(
            build_dir_name("3.5.30", "0123456789abcdef0123"),
            "3.5.30-0123456789ab"
        );
        assert_eq!(build_dir_name("3.5/../x", "ab"), "3.5_.._x-ab");
        assert_eq!(build_dir_name("..", "ab"), "v..-ab");
    }

    #[test]
    fn refuses_escapes() {
        let r = Root::new("/tmp/u0/root");
        assert!(r.resolve("/a/../../etc/passwd").is_err());
        assert!(r.resolve("relative").is_err());
    }
}
