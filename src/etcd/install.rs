//! Installing etcd: from the `etcd` resource tarball when one is attached,
//! else from the Ubuntu archive.
//!
//! A resource is verified before anything is replaced: the gzip stream must
//! be intact to its last byte, every entry we take must be a regular file at
//! a plain relative path, and the unpacked `etcd` must run and report a
//! version. Files are written under names we choose (`etcd`, `etcdctl`,
//! `etcdutl`), never by joining an entry's name onto a directory.
//!
//! Each resource gets a directory of its own under `BIN_DIR`, named by its
//! version and sha256 ([`build_dir_name`]); a commit renames the staged
//! directory there and never touches the one a running etcd was started
//! from. Which build runs is the systemd unit's `ExecStart`, which the
//! charm rewrites only at the unit's rolling-restart turn, so an etcd that
//! crashes and is started again before its turn runs what it ran.
//! [`remove_unused_builds`] drops the builds nothing names any more.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use flate2::read::GzDecoder;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::paths::{build_dir_name, Root, BIN_DIR, DAMAGED_BUILD_DIR, STAGING_DIR};
use super::process::{self, CommandError};

/// The largest binary we accept from a resource (official ones are ~25 MB).
const MAX_BINARY_SIZE: u64 = 512 * 1024 * 1024;

/// The binaries a resource may carry, and whether each is required.
const BINARIES: [(&str, bool); 3] = [("etcd", true), ("etcdctl", true), ("etcdutl", false)];

/// Where the Ubuntu archive's packages put etcd.
const ARCHIVE_ETCD: &str = "/usr/bin/etcd";
const ARCHIVE_ETCDCTL: &str = "/usr/bin/etcdctl";
const ARCHIVE_ETCDUTL: &str = "/usr/bin/etcdutl";

/// Where the installed binaries came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum BinarySource {
    /// The `etcd` resource, identified by its sha256.
    Resource { sha256: String },
    /// Debian/Ubuntu's `etcd-server` and `etcd-client` packages.
    Archive,
}

impl std::fmt::Display for BinarySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BinarySource::Resource { sha256 } => {
                write!(
                    f,
                    "the etcd resource (sha256 {})",
                    &sha256[..sha256.len().min(12)]
                )
            }
            BinarySource::Archive => f.write_str("the Ubuntu archive"),
        }
    }
}

/// The installed etcd.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binaries {
    pub etcd: PathBuf,
    pub etcdctl: PathBuf,
    pub etcdutl: Option<PathBuf>,
    pub version: String,
    pub source: BinarySource,
}

/// Why etcd could not be installed. Each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("cannot read the etcd resource {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the etcd resource is not a valid .tar.gz ({0}); attach an official etcd-vX.Y.Z-linux-amd64.tar.gz")]
    NotTarGz(String),
    #[error("the etcd resource has an unsafe entry {0:?} (absolute path, '..', or not a regular file); refusing it")]
    UnsafeEntry(String),
    #[error("the etcd resource holds {0} twice; attach an official release tarball")]
    Duplicate(&'static str),
    #[error("the etcd resource's {0} is larger than {MAX_BINARY_SIZE} bytes; attach an official release tarball")]
    TooLarge(String),
    #[error("the etcd resource holds no {0} binary (expected etcd-vX.Y.Z-linux-amd64/{0}); attach an official release tarball")]
    Missing(&'static str),
    #[error("the etcd binary from the resource does not run on this machine ({0}); attach the linux-amd64 release")]
    DoesNotRun(String),
    #[error("cannot install etcd from the Ubuntu archive ({0}); attach the etcd resource instead")]
    Archive(String),
    #[error("cannot tell etcd's version from {path}: {output:?}")]
    Version { path: PathBuf, output: String },
    #[error("cannot write etcd's binaries to {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The sha256 of a file, as lowercase hex.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// Splits a tar entry name into its components, refusing absolute paths and
/// `..`. Empty and `.` components are dropped.
fn safe_components(name: &[u8]) -> Option<Vec<&[u8]>> {
    if name.first() == Some(&b'/') {
        return None;
    }
    let mut out = Vec::new();
    for c in name.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

/// Verifies the resource tarball and installs its binaries under the unit
/// root's `BIN_DIR`. Nothing is replaced unless every check passes.
pub fn install_from_resource(root: &Root, tarball: &Path) -> Result<Binaries, InstallError> {
    stage_resource(root, tarball)?.commit()
}

/// Binaries unpacked and verified in `STAGING_DIR`, not in use yet: the
/// caller looks at the version, then commits or discards them.
#[derive(Debug)]
pub struct Staged {
    staging: PathBuf,
    bin_dir: PathBuf,
    damaged: PathBuf,
    /// What `etcd --version` says of the staged binary.
    pub version: String,
    sha256: String,
}

/// Verifies the resource tarball and unpacks it beside the installed
/// binaries; nothing in use changes.
pub fn stage_resource(root: &Root, tarball: &Path) -> Result<Staged, InstallError> {
    let read_err = |source| InstallError::Read {
        path: tarball.to_path_buf(),
        source,
    };
    let sha256 = sha256_file(tarball).map_err(read_err)?;
    let bin_dir = root.at(BIN_DIR);
    let staging = root.at(STAGING_DIR);
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| InstallError::Write { path, source }
    };
    if staging.exists() {
        fs::remove_dir_all(&staging).map_err(write_err(&staging))?;
    }
    fs::create_dir_all(&staging).map_err(write_err(&staging))?;
    let result = unpack_into(tarball, &staging).and_then(|_found| {
        let etcd = staging.join("etcd");
        let version = etcd_version(&etcd).map_err(|e| match e {
            InstallError::Version { output, .. } => InstallError::DoesNotRun(output),
            other => other,
        })?;
        Ok(version)
    });
    let version = match result {
        Ok(v) => v,
        Err(e) => {
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    Ok(Staged {
        staging,
        bin_dir,
        damaged: root.at(DAMAGED_BUILD_DIR),
        version,
        sha256,
    })
}

impl Staged {
    /// Moves the staged binaries to their own build directory
    /// (`BIN_DIR/<version>-<sha12>`) and returns where they are. Nothing in
    /// use is replaced: the build a running etcd was started from stays.
    /// The same tarball again (a rollback to a build still on disk) reuses
    /// its directory, which may be the one running.
    pub fn commit(self) -> Result<Binaries, InstallError> {
        let write_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| InstallError::Write { path, source }
        };
        let bin_dir = &self.bin_dir;
        fs::create_dir_all(bin_dir).map_err(write_err(bin_dir))?;
        let dir = bin_dir.join(build_dir_name(&self.version, &self.sha256));
        let existing = fs::symlink_metadata(&dir).ok();
        let intact = existing.as_ref().is_some_and(|m| m.is_dir())
            && etcd_version(&dir.join("etcd")).is_ok_and(|v| v == self.version);
        if intact {
            let _ = fs::remove_dir_all(&self.staging);
        } else {
            if let Some(m) = existing {
                // Something we did not leave (a damaged copy): set it
                // aside. A process running from it keeps its open file,
                // and the path gets the same tarball's binaries again.
                let aside = &self.damaged;
                if m.is_dir() {
                    if aside.exists() {
                        fs::remove_dir_all(aside).map_err(write_err(aside))?;
                    }
                    fs::rename(&dir, aside).map_err(write_err(&dir))?;
                    let _ = fs::remove_dir_all(aside);
                } else {
                    fs::remove_file(&dir).map_err(write_err(&dir))?;
                }
            }
            fs::rename(&self.staging, &dir).map_err(write_err(&dir))?;
            // The rename is durable once the directory entry is.
            if let Ok(d) = File::open(bin_dir) {
                let _ = d.sync_all();
            }
        }
        let etcdutl = dir.join("etcdutl");
        Ok(Binaries {
            etcd: dir.join("etcd"),
            etcdctl: dir.join("etcdctl"),
            etcdutl: etcdutl.is_file().then_some(etcdutl),
            version: self.version,
            source: BinarySource::Resource {
                sha256: self.sha256,
            },
        })
    }

    /// Drops the staged binaries; the installed ones stay as they are.
    pub fn discard(self) {
        let _ = fs::remove_dir_all(&self.staging);
    }
}

/// Removes what `BIN_DIR` holds that none of `keep` (paths of binaries
/// in use: the state's and the systemd unit's) lies in: build directories,
/// and the flat `etcd`/`etcdctl`/`etcdutl` of the layout before build
/// directories. With nothing to keep it removes nothing. Returns what it
/// removed. Anything else in `BIN_DIR` is left alone.
pub fn remove_unused_builds(root: &Root, keep: &[&Path]) -> Result<Vec<PathBuf>, InstallError> {
    let bin_dir = root.at(BIN_DIR);
    let mut removed = Vec::new();
    if keep.is_empty() {
        return Ok(removed);
    }
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| InstallError::Write { path, source }
    };
    let entries = match fs::read_dir(&bin_dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(removed),
        Err(e) => return Err(err(&bin_dir)(e)),
    };
    let flat_in_use = keep.iter().any(|k| k.parent() == Some(bin_dir.as_path()));
    for entry in entries {
        let entry = entry.map_err(err(&bin_dir))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(err(&path))?;
        if kind.is_dir() {
            if keep.iter().any(|k| k.starts_with(&path)) {
                continue;
            }
            fs::remove_dir_all(&path).map_err(err(&path))?;
            removed.push(path);
        } else if kind.is_file()
            && !flat_in_use
            && BINARIES
                .iter()
                .any(|(n, _)| entry.file_name() == std::ffi::OsStr::new(n))
        {
            fs::remove_file(&path).map_err(err(&path))?;
            removed.push(path);
        }
    }
    Ok(removed)
}

/// Streams the tarball once, writing the wanted binaries into `dir`, and
/// reads the gzip stream to its end so a truncated or corrupt file fails.
fn unpack_into(tarball: &Path, dir: &Path) -> Result<Vec<&'static str>, InstallError> {
    let file = File::open(tarball).map_err(|source| InstallError::Read {
        path: tarball.to_path_buf(),
        source,
    })?;
    let bad = |e: io::Error| InstallError::NotTarGz(e.to_string());
    let mut archive = tar::Archive::new(GzDecoder::new(io::BufReader::new(file)));
    let mut found: Vec<&'static str> = Vec::new();
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let comps =
            safe_components(&raw).ok_or_else(|| InstallError::UnsafeEntry(shown.clone()))?;
        let Some(last) = comps.last() else { continue };
        let Some(&(name, _)) = BINARIES.iter().find(|(n, _)| n.as_bytes() == *last) else {
            continue;
        };
        // Only the release layout (top/etcd) or a flat tarball (etcd).
        if comps.len() > 2 {
            continue;
        }
        let kind = entry.header().entry_type();
        if !kind.is_file() {
            return Err(InstallError::UnsafeEntry(shown));
        }
        if found.contains(&name) {
            return Err(InstallError::Duplicate(name));
        }
        if entry.size() > MAX_BINARY_SIZE {
            return Err(InstallError::TooLarge(shown));
        }
        let dest = dir.join(name);
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o755)
            .open(&dest)
            .map_err(|source| InstallError::Write {
                path: dest.clone(),
                source,
            })?;
        let copied =
            io::copy(&mut (&mut entry).take(MAX_BINARY_SIZE + 1), &mut out).map_err(bad)?;
        if copied > MAX_BINARY_SIZE {
            return Err(InstallError::TooLarge(shown));
        }
        out.sync_all().map_err(|source| InstallError::Write {
            path: dest.clone(),
            source,
        })?;
        found.push(name);
    }
    // The tar reader stops at the end-of-archive blocks; the gzip trailer
    // (CRC and length) comes after. Read it so corruption there is caught.
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(bad)?;
    for (name, required) in BINARIES {
        if required && !found.contains(&name) {
            return Err(InstallError::Missing(name));
        }
    }
    Ok(found)
}

/// Runs `etcd --version` and returns the version (`3.5.1`).
pub fn etcd_version(etcd: &Path) -> Result<String, InstallError> {
    // A binary written a moment ago can still be open for writing in a
    // child that another thread forked meanwhile ("Text file busy"); that
    // passes as soon as the child execs, so try again briefly.
    let mut tries = 0;
    let out = loop {
        match process::run(Command::new(etcd).arg("--version")) {
            Err(CommandError::Spawn { source, .. })
                if source.raw_os_error() == Some(libc::ETXTBSY) && tries < 20 =>
            {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => {
                break other.map_err(|e| InstallError::Version {
                    path: etcd.to_path_buf(),
                    output: e.to_string(),
                })?
            }
        }
    };
    let text = String::from_utf8_lossy(&out.stdout);
    parse_version(&text).ok_or_else(|| InstallError::Version {
        path: etcd.to_path_buf(),
        output: text.trim().to_string(),
    })
}

/// Finds `etcd Version: X.Y.Z` in `etcd --version` output.
pub fn parse_version(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix("etcd Version:"))
        .map(|v| v.trim().to_string())
        .filter(|v| {
            v.split('.').count() >= 2 && v.chars().next().is_some_and(|c| c.is_ascii_digit())
        })
}

/// Uses the Ubuntu archive's etcd, installing `etcd-server` and `etcd-client`
/// if they are not there yet. The package's own `etcd.service` must not start
/// beside ours, so a policy-rc.d that refuses service starts is in place
/// while apt runs. Our unit in /etc/systemd/system shadows the package's.
pub fn install_from_archive() -> Result<Binaries, InstallError> {
    let etcd = PathBuf::from(ARCHIVE_ETCD);
    let etcdctl = PathBuf::from(ARCHIVE_ETCDCTL);
    if !etcd.exists() || !etcdctl.exists() {
        apt_install(&["etcd-server", "etcd-client"])?;
    }
    if !etcd.exists() || !etcdctl.exists() {
        return Err(InstallError::Archive(
            "the packages did not provide /usr/bin/etcd and /usr/bin/etcdctl".into(),
        ));
    }
    let version = etcd_version(&etcd)?;
    let etcdutl = Path::new(ARCHIVE_ETCDUTL);
    Ok(Binaries {
        etcd,
        etcdctl,
        etcdutl: etcdutl.exists().then(|| etcdutl.to_path_buf()),
        version,
        source: BinarySource::Archive,
    })
}

/// Removes the policy-rc.d we wrote, on every path out.
struct PolicyGuard(Option<PathBuf>);

impl Drop for PolicyGuard {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = fs::remove_file(p);
        }
    }
}

fn apt_install(packages: &[&str]) -> Result<(), InstallError> {
    let policy = Path::new("/usr/sbin/policy-rc.d");
    let guard = if policy.exists() {
        PolicyGuard(None)
    } else {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o755)
            .open(policy)
            .and_then(|mut f| {
                io::Write::write_all(
                    &mut f,
                    b"#!/bin/sh\n# etcd charm: no service starts while apt runs\nexit 101\n",
                )
            })
            .map_err(|e| {
                InstallError::Archive(format!("cannot write {}: {e}", policy.display()))
            })?;
        PolicyGuard(Some(policy.to_path_buf()))
    };
    let apt = |args: &[&str]| -> Result<(), CommandError> {
        process::run(
            Command::new("apt-get")
                .args(args)
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )
        .map(drop)
    };
    let mut install = vec!["install", "-y", "-q", "--no-install-recommends"];
    install.extend_from_slice(packages);
    if apt(&install).is_err() {
        apt(&["update", "-q"]).map_err(|e| InstallError::Archive(e.to_string()))?;
        apt(&install).map_err(|e| InstallError::Archive(e.to_string()))?;
    }
    drop(guard);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use flate2::Compression;
    use std::io::Write;

    fn fake_etcd(version: &str) -> Vec<u8> {
        format!("#!/bin/sh\necho 'etcd Version: {version}'\necho 'Git SHA: x'\n").into_bytes()
    }

    fn targz(entries: &[(&str, &[u8], tar::EntryType)]) -> Vec<u8> {
        let mut b = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
        for (name, data, kind) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_size(data.len() as u64);
            h.set_mode(0o755);
            // set_path refuses '..'; write the raw name like a hostile tool would.
            let bytes = name.as_bytes();
            h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap().finish().unwrap()
    }

    fn write(dir: &Path, data: &[u8]) -> PathBuf {
        let p = dir.join("etcd.tar.gz");
        fs::File::create(&p).unwrap().write_all(data).unwrap();
        p
    }

    #[test]
    fn installs_release_layout() {
        let d = tempfile::tempdir().unwrap();
        let root = Root::new(d.path().join("root"));
        let etcd = fake_etcd("3.5.9");
        let tgz = targz(&[
            ("etcd-v3.5.9-linux-amd64/", b"", tar::EntryType::Directory),
            (
                "etcd-v3.5.9-linux-amd64/etcd",
                &etcd,
                tar::EntryType::Regular,
            ),
            (
                "etcd-v3.5.9-linux-amd64/etcdctl",
                b"#!/bin/sh\n",
                tar::EntryType::Regular,
            ),
            (
                "etcd-v3.5.9-linux-amd64/etcdutl",
                b"#!/bin/sh\n",
                tar::EntryType::Regular,
            ),
            (
                "etcd-v3.5.9-linux-amd64/README.md",
                b"hi",
                tar::EntryType::Regular,
            ),
        ]);
        let p = write(d.path(), &tgz);
        let b = install_from_resource(&root, &p).unwrap();
        assert_eq!(b.version, "3.5.9");
        assert!(b.etcdutl.is_some());
        let sha = sha256_file(&p).unwrap();
        let dir = root.at(BIN_DIR).join(format!("3.5.9-{}", &sha[..12]));
        assert_eq!(b.etcd, dir.join("etcd"));
        assert_eq!(b.etcdctl, dir.join("etcdctl"));
        assert_eq!(b.etcdutl, Some(dir.join("etcdutl")));
        assert!(b.etcd.exists());
        assert!(!dir.join("README.md").exists());
        assert!(!root.at(STAGING_DIR).exists());
        assert_eq!(
            b.source,
            BinarySource::Resource {
                sha256: sha256_file(&p).unwrap()
            }
        );
    }

    #[test]
    fn refuses_bad_resources_and_keeps_old_binaries() {
        let d = tempfile::tempdir().unwrap();
        let root = Root::new(d.path().join("root"));
        let etcd = fake_etcd("3.5.9");
        let good = targz(&[
            ("e/etcd", &etcd, tar::EntryType::Regular),
            ("e/etcdctl", b"x", tar::EntryType::Regular),
        ]);
        let installed = install_from_resource(&root, &write(d.path(), &good)).unwrap();

        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"not a tarball at all".to_vec(), "not a valid .tar.gz"),
            (good[..good.len() / 2].to_vec(), "not a valid .tar.gz"),
            (
                targz(&[("e/etcdctl", b"x", tar::EntryType::Regular)]),
                "no etcd binary",
            ),
            (
                targz(&[("../etcd", &etcd, tar::EntryType::Regular)]),
                "unsafe entry",
            ),
            (
                targz(&[("/etcd", &etcd, tar::EntryType::Regular)]),
                "unsafe entry",
            ),
            (
                targz(&[("e/etcd", b"", tar::EntryType::Symlink)]),
                "unsafe entry",
            ),
            (
                targz(&[
                    ("e/etcd", b"#!/bin/sh\nexit 3\n", tar::EntryType::Regular),
                    ("e/etcdctl", b"x", tar::EntryType::Regular),
                ]),
                "does not run",
            ),
        ];
        for (data, want) in cases {
            let err = install_from_resource(&root, &write(d.path(), &data)).unwrap_err();
            assert!(err.to_string().contains(want), "{err} should say {want}");
            // The earlier install is untouched.
            assert_eq!(etcd_version(&installed.etcd).unwrap(), "3.5.9");
            assert_eq!(fs::read_dir(root.at(BIN_DIR)).unwrap().count(), 1);
        }
        let mut corrupt = good.clone();
        let n = corrupt.len();
        corrupt[n - 6] ^= 0xff; // inside the gzip trailer's CRC
        let err = install_from_resource(&root, &write(d.path(), &corrupt)).unwrap_err();
        assert!(matches!(err, InstallError::NotTarGz(_)), "{err}");
    }

    /// The flat layout of charm revisions before build directories.
    fn flat_install(root: &Root, version: &str) -> PathBuf {
        let bin = root.at(BIN_DIR);
        fs::create_dir_all(&bin).unwrap();
        for (name, _) in BINARIES {
            let p = bin.join(name);
            fs::write(&p, fake_etcd(version)).unwrap();
            fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        }
        bin.join("etcd")
    }

    #[test]
    fn a_new_resource_never_replaces_the_binaries_in_use() {
        let d = tempfile::tempdir().unwrap();
        let root = Root::new(d.path().join("root"));
        let flat = flat_install(&root, "3.4.23");
        let tgz = |v: &str| {
            targz(&[
                ("e/etcd", &fake_etcd(v), tar::EntryType::Regular),
                ("e/etcdctl", b"x", tar::EntryType::Regular),
            ])
        };
        let r1 = d.path().join("r1.tar.gz");
        fs::write(&r1, tgz("3.5.9")).unwrap();
        let r2 = d.path().join("r2.tar.gz");
        fs::write(&r2, tgz("3.5.10")).unwrap();
        let a = install_from_resource(&root, &r1).unwrap();
        // The old layout's flat binaries are still there and unchanged.
        assert_eq!(etcd_version(&flat).unwrap(), "3.4.23");
        let b = install_from_resource(&root, &r2).unwrap();
        assert_ne!(a.etcd.parent(), b.etcd.parent());
        assert_eq!(etcd_version(&a.etcd).unwrap(), "3.5.9");
        assert_eq!(etcd_version(&b.etcd).unwrap(), "3.5.10");
        assert_eq!(b.etcdutl, None);
        // The same tarball again reuses its directory, same inode.
        let ino = |p: &Path| std::os::unix::fs::MetadataExt::ino(&fs::metadata(p).unwrap());
        let before = ino(&a.etcd);
        let again = install_from_resource(&root, &r1).unwrap();
        assert_eq!(again, a);
        assert_eq!(ino(&again.etcd), before);
        // A damaged copy of the same build is replaced by a good one.
        fs::write(&a.etcd, b"#!/bin/sh\nexit 1\n").unwrap();
        let fixed = install_from_resource(&root, &r1).unwrap();
        assert_eq!(etcd_version(&fixed.etcd).unwrap(), "3.5.9");

        // Clean-up keeps what is named, flat files included...
        let removed = remove_unused_builds(&root, &[&b.etcd, &flat]).unwrap();
        assert_eq!(removed, vec![a.etcd.parent().unwrap().to_path_buf()]);
        assert!(flat.exists() && b.etcd.exists() && !a.etcd.exists());
        // ...removes nothing when told of nothing in use...
        assert!(remove_unused_builds(&root, &[]).unwrap().is_empty());
        assert!(flat.exists() && b.etcd.exists());
        // ...and drops the flat files once nothing names them.
        fs::write(root.at(BIN_DIR).join("notes"), b"mine").unwrap();
        let removed = remove_unused_builds(&root, &[&b.etcd]).unwrap();
        assert_eq!(removed.len(), 3, "{removed:?}");
        assert!(!flat.exists() && b.etcd.exists());
        assert!(root.at(BIN_DIR).join("notes").exists());
    }

    #[test]
    fn parses_versions() {
        assert_eq!(
            parse_version("etcd Version: 3.4.23\nGit SHA: Not provided\n").as_deref(),
            Some("3.4.23")
        );
        assert_eq!(parse_version("nonsense"), None);
    }
}
