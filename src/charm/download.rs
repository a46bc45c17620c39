//! Files the operator copies off the unit with `juju scp`.
//!
//! `juju scp` logs in as the unit's `ubuntu` user, never as root, so every
//! file this charm prints a `juju scp` command for (snapshots, the
//! restore's backups, client-credential bundles) is owned by that user,
//! mode 0600, in a directory that user owns (0700) or can at least enter.
//! The user's uid and gid come from the unit's own passwd and group
//! databases (`/etc/passwd` under the unit root), so nothing assumes 1000.
//! Where the unit has no `ubuntu` user the files stay root's and the
//! action's results say so, with a way to fetch them anyway.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::etcd::paths::Root;
use crate::fsutil;

/// The account `juju scp` logs in as.
pub const DOWNLOAD_USER: &str = "ubuntu";

/// Who owns the files the operator downloads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub user: String,
    pub uid: u32,
    pub gid: u32,
    /// True when the unit has no `ubuntu` user and root keeps the files.
    pub fallback: bool,
}

impl Owner {
    /// Root, for units without an `ubuntu` user.
    fn root() -> Owner {
        Owner {
            user: "root".into(),
            uid: 0,
            gid: 0,
            fallback: true,
        }
    }

    /// The `ubuntu` user of the unit's passwd database, else root.
    pub fn for_downloads(root: &Root) -> Owner {
        fs::read_to_string(root.at("/etc/passwd"))
            .ok()
            .and_then(|text| passwd_entry(&text, DOWNLOAD_USER))
            .map(|(uid, gid)| Owner {
                user: DOWNLOAD_USER.into(),
                uid,
                gid,
                fallback: false,
            })
            .unwrap_or_else(Owner::root)
    }

    /// Hands an open file to this owner (before it gets its final name, so
    /// a file under its final name is always the owner's).
    pub fn take(&self, file: &File) -> io::Result<()> {
        std::os::unix::fs::fchown(file, Some(self.uid), Some(self.gid))
    }

    /// Makes `dir` this owner's, mode 0700, creating it (and parents)
    /// when missing.
    pub fn take_dir(&self, dir: &Path) -> io::Result<()> {
        fsutil::create_dir_mode(dir, 0o700)?;
        std::os::unix::fs::chown(dir, Some(self.uid), Some(self.gid))
    }

    /// Whether this owner can enter every directory from the unit root down
    /// to `dir` (the unit root's own ancestors are the machine's, not the
    /// unit's, and are not judged).
    pub fn can_enter(&self, root: &Root, dir: &Path) -> bool {
        if self.uid == 0 {
            return true;
        }
        let Ok(rel) = dir.strip_prefix(root.base()) else {
            return false;
        };
        let mut p = root.base().to_path_buf();
        let check = |p: &Path| {
            fs::metadata(p).is_ok_and(|m| {
                let mode = m.mode();
                let bit = if m.uid() == self.uid {
                    0o100
                } else if m.gid() == self.gid {
                    0o010
                } else {
                    0o001
                };
                m.is_dir() && mode & bit != 0
            })
        };
        if !check(&p) {
            return false;
        }
        for c in rel.components() {
            p.push(c);
            if !check(&p) {
                return false;
            }
        }
        true
    }

    /// A result line for the operator: who can copy the file, and how when
    /// `juju scp` cannot.
    pub fn note(&self, unit: &str, unit_path: &str) -> String {
        if self.fallback {
            format!(
                "root (this unit has no {DOWNLOAD_USER} user, so juju scp cannot read it; copy it with: juju ssh {unit} sudo cat {unit_path} > {})",
                unit_path.rsplit('/').next().unwrap_or(unit_path)
            )
        } else {
            self.user.clone()
        }
    }
}

/// The uid and gid of `user` in a passwd database's text.
fn passwd_entry(text: &str, user: &str) -> Option<(u32, u32)> {
    text.lines().find_map(|line| {
        let mut f = line.split(':');
        if f.next()? != user {
            return None;
        }
        let _password = f.next()?;
        let uid = f.next()?.trim().parse().ok()?;
        let gid = f.next()?.trim().parse().ok()?;
        Some((uid, gid))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn passwd_lookup() {
        let text = "root:x:0:0:root:/root:/bin/bash\n# comment\nubuntu:x:1000:1001:Ubuntu:/home/ubuntu:/bin/bash\n";
        assert_eq!(passwd_entry(text, "ubuntu"), Some((1000, 1001)));
        assert_eq!(passwd_entry(text, "ubunt"), None);
        assert_eq!(passwd_entry("ubuntu:x:abc:1:::\n", "ubuntu"), None);
    }

    #[test]
    fn owner_from_the_unit_root_else_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = Root::new(tmp.path());
        let o = Owner::for_downloads(&root);
        assert!(o.fallback);
        assert_eq!(o.uid, 0);
        assert!(o.note("etcd/0", "/x/y.tar.gz").contains("juju ssh etcd/0"));
        fs::create_dir_all(tmp.path().join("etc")).unwrap();
        fs::write(
            tmp.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nubuntu:x:1000:1000::/home/ubuntu:/bin/sh\n",
        )
        .unwrap();
        let o = Owner::for_downloads(&root);
        assert_eq!((o.uid, o.gid, o.fallback), (1000, 1000, false));
        assert_eq!(o.note("etcd/0", "/x"), "ubuntu");
    }

    #[test]
    fn takes_dirs_and_files_and_judges_entry() {
        let tmp = tempfile::tempdir().unwrap();
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let root = Root::new(tmp.path());
        let o = Owner {
            user: "ubuntu".into(),
            uid: 1000,
            gid: 1000,
            fallback: false,
        };
        let dir = tmp.path().join("home/ubuntu/etcd-snapshots");
        o.take_dir(&dir).unwrap();
        let m = fs::metadata(&dir).unwrap();
        assert_eq!((m.uid(), m.gid(), m.mode() & 0o777), (1000, 1000, 0o700));
        assert!(o.can_enter(&root, &dir));
        let f = File::create(dir.join("f")).unwrap();
        o.take(&f).unwrap();
        assert_eq!(fs::metadata(dir.join("f")).unwrap().uid(), 1000);
        // A root 0700 directory on the way shuts the user out.
        let shut = tmp.path().join("srv/private");
        fsutil::create_dir_mode(&shut, 0o700).unwrap();
        fs::set_permissions(tmp.path().join("srv"), fs::Permissions::from_mode(0o700)).unwrap();
        assert!(!o.can_enter(&root, &shut));
    }
}
