//! Small filesystem helpers shared by every layer: atomic writes and
//! owner-only files.
//!
//! Secrets (keys, snapshots, credentials) are created 0600 from the first
//! byte, never chmod-ed after the fact, and files that other processes read
//! (etcd's config, the systemd unit) are replaced atomically so nobody ever
//! sees half a file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Creates (or truncates) `path` with mode 0600 and writes `data`.
pub fn write_private(path: &Path, data: &[u8]) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // An existing file keeps its old mode on open; force it.
    f.set_permissions(fs::Permissions::from_mode(0o600))?;
    f.write_all(data)?;
    f.sync_all()
}

/// Replaces `path` with `data` atomically: write `path.partial` with `mode`,
/// fsync, rename, fsync the directory. Returns whether the content changed.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> io::Result<bool> {
    if let Ok(old) = fs::read(path) {
        if old == data {
            fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
            return Ok(false);
        }
    }
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no parent"))?;
    fs::create_dir_all(dir)?;
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".partial");
    let tmp = Path::new(&tmp_name);
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(tmp)?;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    fs::rename(tmp, path)?;
    sync_dir(dir)?;
    Ok(true)
}

/// fsyncs a directory so a rename in it survives a crash.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates `dir` (and parents) and sets its mode.
pub fn create_dir_mode(dir: &Path, mode: u32) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(mode))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn private_files_are_0600_even_when_they_existed() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("k");
        fs::write(&p, b"old").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&p, b"secret").unwrap();
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
        assert_eq!(fs::read(&p).unwrap(), b"secret");
    }

    #[test]
    fn atomic_write_reports_change_and_leaves_no_partial() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/c.yml");
        assert!(write_atomic(&p, b"a", 0o644).unwrap());
        assert!(!write_atomic(&p, b"a", 0o644).unwrap());
        assert!(write_atomic(&p, b"b", 0o600).unwrap());
        assert_eq!(fs::read(&p).unwrap(), b"b");
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
        assert!(!d.path().join("sub/c.yml.partial").exists());
    }
}
