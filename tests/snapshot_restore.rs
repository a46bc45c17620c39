//! End-to-end tests of the snapshot and restore actions, through the
//! `juju-sim` CLI as an operator drives Juju, on real etcd 3.4 (Debian) and
//! 3.5 (the official static binaries attached as the `etcd` resource).
//!
//! Every check is on a real outcome: every key and value read back from
//! etcd, sha256 compared with `sha256sum`, file modes, cluster and member
//! IDs, exit codes.

mod util;

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use util::act::{
    deploy_with_snapshot, failure, host_path, no_partials, result, run_action, sha256sum, sim_here,
};
use util::kv;
use util::{etcd35_dir, etcd35_resource, Model};

const KEYS: usize = 3000;
const BIG: usize = 600 << 10;

fn charm() -> String {
    util::charm_dir().display().to_string()
}

/// The unit's https endpoint with its application's client credentials.
fn endpoint(m: &Model, unit: &str) -> kv::Conn {
    kv::Conn::to(m, unit)
}

fn owner(path: &Path) -> u32 {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(path).unwrap().uid()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The seed's workflow, end to end. Returns the model for further checks.
fn seed_workflow(m: &Model, deploy: &[&str], etcdctl: &Path) {
    sim_here(m, deploy).ok();
    let ep = endpoint(m, "etcd/0");
    kv::fill(&ep, KEYS, BIG);
    let before = kv::digest(&ep);
    assert_eq!(before.len(), KEYS - 1);
    let (src_cluster, _, _) = kv::ids(&ep);

    // Step 1 and 2: snapshot, show-action-output.
    let out = run_action(m, "etcd/0", "snapshot", &[], &[]);
    assert_eq!(out["status"], "completed", "{out:?}");
    let path = result(&out, "snapshot.path").to_string();
    let name = path.rsplit('/').next().unwrap().to_string();
    assert!(
        path.starts_with("/home/ubuntu/etcd-snapshots/etcd-snapshot-"),
        "{path}"
    );
    assert!(
        name.ends_with(".tar.gz") && name.len() == "etcd-snapshot-2016-11-09-02.41.47.tar.gz".len(),
        "{name}"
    );
    let sha = result(&out, "snapshot.sha256").to_string();
    assert_eq!(
        result(&out, "copy.cmd"),
        format!("juju scp etcd/0:{path} .")
    );
    assert!(!result(&out, "snapshot.size").is_empty());
    assert!(result(&out, "snapshot.version").starts_with("3."));
    assert_eq!(result(&out, "snapshot.key-count"), (KEYS - 1).to_string());
    let on_unit = host_path(m, "etcd/0", &path);
    assert_eq!(mode(&on_unit), 0o600, "snapshots hold secrets");
    // juju scp logs in as ubuntu: the snapshot and its directory are that
    // user's alone.
    let ubuntu = m.download_uid("etcd/0");
    assert_eq!(owner(&on_unit), ubuntu);
    assert_eq!(owner(on_unit.parent().unwrap()), ubuntu);
    assert_eq!(mode(on_unit.parent().unwrap()), 0o700);
    assert_eq!(result(&out, "copy.owner"), "ubuntu");
    assert_eq!(
        result(&out, "snapshot.size-bytes"),
        fs::metadata(&on_unit).unwrap().len().to_string()
    );
    assert!(no_partials(on_unit.parent().unwrap()));

    // juju scp, then sha256sum, as the seed does.
    let copy_cmd = result(&out, "copy.cmd").to_string();
    let words: Vec<&str> = copy_cmd.split_whitespace().collect();
    assert_eq!(&words[..2], &["juju", "scp"]);
    sim_here(m, &words[1..]).ok();
    let local = m.scratch.path().join(&name);
    assert_eq!(
        sha256sum(&local),
        sha,
        "sha256sum disagrees with the action"
    );
    // Any tool reads the archive.
    let listing = Command::new("tar")
        .arg("tzvf")
        .arg(&local)
        .output()
        .unwrap();
    assert!(listing.status.success());
    // GNU tar and Python's tarfile both extract a db whose sha256 is the
    // manifest's (the gzip is written in parallel blocks; it must still be
    // one ordinary gzip stream).
    for how in ["gnu-tar", "python-tarfile"] {
        let out = m.scratch.path().join(format!("x-{how}"));
        fs::create_dir_all(&out).unwrap();
        let ok = match how {
            "gnu-tar" => Command::new("tar")
                .arg("xzf")
                .arg(&local)
                .arg("-C")
                .arg(&out)
                .status(),
            _ => Command::new("python3")
                .arg("-c")
                .arg("import sys, tarfile\nwith tarfile.open(sys.argv[1], 'r:gz') as t: t.extractall(sys.argv[2])")
                .arg(&local)
                .arg(&out)
                .status(),
        }
        .unwrap();
        assert!(ok.success(), "{how} cannot extract the archive");
        let manifest: serde_json::Value =
            serde_json::from_slice(&fs::read(out.join("manifest.json")).unwrap()).unwrap();
        assert_eq!(
            sha256sum(&out.join("db")),
            manifest["db-sha256"].as_str().unwrap(),
            "{how}"
        );
        fs::remove_dir_all(&out).unwrap();
    }

    // Step 3: deploy etcd new-etcd --resource snapshot=./file
    let mut d3 = vec!["deploy", "etcd", "new-etcd"];
    let extra: Vec<String> = deploy
        .iter()
        .skip_while(|a| **a != "--resource")
        .map(|s| s.to_string())
        .collect();
    let extra_refs: Vec<&str> = extra.iter().map(String::as_str).collect();
    d3.extend_from_slice(&extra_refs);
    let res = format!("snapshot=./{name}");
    d3.extend_from_slice(&["--resource", &res]);
    sim_here(m, &d3).ok();
    let (cur, msg) = m.workload("new-etcd/0");
    assert_eq!(cur, "active");
    assert!(msg.contains("ready to restore"), "{msg}");
    // Deploying with the resource restores nothing on its own.
    let new_ep = endpoint(m, "new-etcd/0");
    assert!(kv::digest(&new_ep).is_empty());

    // Step 4: restore.
    let out = run_action(m, "new-etcd/0", "restore", &[], &[]);
    assert_eq!(
        out["status"],
        "completed",
        "{}",
        serde_yaml::to_string(&out).unwrap()
    );
    assert_eq!(kv::digest(&new_ep), before, "restored keys differ");
    let (new_cluster, _, rev) = kv::ids(&new_ep);
    assert_ne!(new_cluster, src_cluster, "a restore makes a new cluster ID");
    assert_eq!(
        result(&out, "restore.cluster-id"),
        format!("{new_cluster:x}")
    );
    assert_eq!(result(&out, "restore.keys"), (KEYS - 1).to_string());
    assert_eq!(result(&out, "restore.revision"), rev.to_string());
    assert_eq!(result(&out, "restore.source.kind"), "charm");
    assert_eq!(result(&out, "restore.source.sha256"), sha);
    // No bump on 3.4.23 or 3.5.1: etcd's hashkv at the snapshot's revision
    // is the source's, as the manifest recorded it.
    assert_eq!(result(&out, "restore.hashkv-matched"), "true");
    assert_eq!(
        result(&out, "restore.revision-bump"),
        format!("unavailable with etcd {}", result(&out, "restore.version"))
    );
    let backup = host_path(m, "new-etcd/0", result(&out, "backup.path"));
    assert_eq!(mode(&backup), 0o600);
    assert_eq!(owner(&backup), m.download_uid("new-etcd/0"));
    assert_eq!(result(&out, "backup.copy.owner"), "ubuntu");
    assert_eq!(sha256sum(&backup), result(&out, "backup.sha256"));
    // The backup's copy command works as the ubuntu user.
    let words: Vec<String> = result(&out, "backup.copy.cmd")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let scp_dir = m.scratch.path().join("backup-copy");
    fs::create_dir_all(&scp_dir).unwrap();
    let args: Vec<&str> = vec![&words[1], &words[2], scp_dir.to_str().unwrap()];
    sim_here(m, &args).ok();
    let copied = scp_dir.join(backup.file_name().unwrap());
    assert_eq!(sha256sum(&copied), result(&out, "backup.sha256"));
    let (cur, msg) = m.workload("new-etcd/0");
    // Neither 3.4.23 nor 3.5.1 can bump the revision: status says what to
    // do about watchers.
    assert_eq!(cur, "active");
    assert!(
        msg.starts_with("Healthy with 1 known peer; revision not bumped")
            && msg.contains("restart watchers"),
        "{msg}"
    );
    // etcdctl agrees the restored member is healthy.
    let health = util::etcdctl_tls(
        etcdctl,
        &new_ep.endpoint,
        &new_ep.creds,
        &["endpoint", "health"],
    );
    assert!(
        health.status.success(),
        "{}",
        String::from_utf8_lossy(&health.stderr)
    );
    // The source is untouched.
    assert_eq!(kv::digest(&ep), before);

    // The restored application grows: every new member holds the restored
    // data (the original charm failed here, charmed-kubernetes bundle#577).
    sim_here(m, &["add-unit", "new-etcd", "-n", "2"]).ok();
    for unit in ["new-etcd/0", "new-etcd/1", "new-etcd/2"] {
        let ok = util::eventually(90, || {
            let (cur, msg) = m.workload(unit);
            // Exactly: a scaled application is never offered a restore.
            cur == "active" && msg == "Healthy with 3 known peers"
        });
        assert!(ok, "{unit}: {:?}\n{}", m.workload(unit), m.debug_log());
        let conn = new_ep.with_unit(m, unit);
        assert_eq!(kv::digest(&conn), before, "{unit} lacks restored keys");
        assert_eq!(
            kv::ids(&conn).0,
            new_cluster,
            "{unit} is in another cluster"
        );
    }
}

#[test]
fn seed_workflow_on_etcd_34() {
    let m = Model::new();
    seed_workflow(&m, &["deploy", &charm()], Path::new("/usr/bin/etcdctl"));
}

#[test]
fn seed_workflow_on_etcd_35() {
    let m = Model::new();
    let res = etcd35_resource(m.scratch.path());
    let etcd_res = format!("etcd={}", res.display());
    seed_workflow(
        &m,
        &["deploy", &charm(), "--resource", &etcd_res],
        &etcd35_dir().join("etcdctl"),
    );
}

/// A tar.gz with one entry named exactly `name` (raw header bytes, so `..`
/// and absolute names go in as given).
fn evil_tar_gz(name: &str, data: &[u8]) -> Vec<u8> {
    let mut header = [0u8; 512];
    header[..name.len()].copy_from_slice(name.as_bytes());
    header[100..108].copy_from_slice(b"0000600\0");
    header[108..116].copy_from_slice(b"0000000\0");
    header[116..124].copy_from_slice(b"0000000\0");
    header[124..136].copy_from_slice(format!("{:011o}\0", data.len()).as_bytes());
    header[136..148].copy_from_slice(b"00000000000\0");
    header[156] = b'0';
    header[257..263].copy_from_slice(b"ustar\0");
    header[263..265].copy_from_slice(b"00");
    header[148..156].copy_from_slice(b"        ");
    let sum: u32 = header.iter().map(|b| u32::from(*b)).sum();
    header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let mut tar = header.to_vec();
    tar.extend_from_slice(data);
    tar.resize(tar.len().div_ceil(512) * 512 + 1024, 0);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap()
}

fn gunzip(data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(data), &mut out).ok()?;
    Some(out)
}

#[test]
fn bad_restores_are_refused_and_change_nothing() {
    let m = Model::new();
    sim_here(&m, &["deploy", &charm()]).ok();
    let ep = endpoint(&m, "etcd/0");
    kv::fill(&ep, 200, 4096);
    let out = run_action(&m, "etcd/0", "snapshot", &[], &[]);
    let good = fs::read(host_path(&m, "etcd/0", result(&out, "snapshot.path"))).unwrap();

    sim_here(&m, &["deploy", "etcd", "new-etcd"]).ok();
    let new_ep = endpoint(&m, "new-etcd/0");
    kv::fill(&new_ep, 50, 100);
    let data = kv::digest(&new_ep);
    let ids = kv::ids(&new_ep);
    let unchanged = |why: &str| {
        assert_eq!(kv::digest(&new_ep), data, "{why}: data changed");
        let now = kv::ids(&new_ep);
        assert_eq!(
            (now.0, now.1),
            (ids.0, ids.1),
            "{why}: cluster or member changed"
        );
        let (cur, _) = m.workload("new-etcd/0");
        assert_eq!(cur, "active", "{why}");
    };

    // No resource attached.
    let msg = failure(&run_action(&m, "new-etcd/0", "restore", &[], &[]));
    assert!(
        msg.contains("no snapshot is attached") && msg.contains("attach-resource"),
        "{msg}"
    );
    unchanged("no resource");

    let attach = |name: &str, bytes: &[u8]| {
        fs::write(m.scratch.path().join(name), bytes).unwrap();
        sim_here(
            &m,
            &["attach-resource", "new-etcd", &format!("snapshot=./{name}")],
        )
        .ok();
    };

    // Juju's zero-byte placeholder.
    attach("empty.tar.gz", b"");
    let msg = failure(&run_action(&m, "new-etcd/0", "restore", &[], &[]));
    assert!(msg.contains("no snapshot is attached"), "{msg}");
    unchanged("empty resource");

    // One flipped byte (in a spot that changes the content, not a padding
    // bit deflate ignores).
    let plain = gunzip(&good).unwrap();
    let mut flipped = good.clone();
    let mut at = good.len() / 2;
    loop {
        flipped[at] ^= 0xff;
        if gunzip(&flipped).as_deref() != Some(&plain[..]) {
            break;
        }
        flipped[at] ^= 0xff;
        at += 1;
    }
    attach("flipped.tar.gz", &flipped);
    let msg = failure(&run_action(&m, "new-etcd/0", "restore", &[], &[]));
    assert!(
        msg.contains("cannot be restored") && msg.contains("Nothing was changed"),
        "{msg}"
    );
    unchanged("flipped byte");

    // Truncated.
    attach("truncated.tar.gz", &good[..good.len() * 2 / 3]);
    let msg = failure(&run_action(&m, "new-etcd/0", "restore", &[], &[]));
    assert!(msg.contains("cannot be restored"), "{msg}");
    unchanged("truncated");

    // Path traversal and absolute paths.
    for evil in ["../../../../tmp/evil-db", "/tmp/evil-db", "./../db"] {
        attach(
            "evil.tar.gz",
            &evil_tar_gz(evil, &plain[..plain.len().min(4096)]),
        );
        let msg = failure(&run_action(&m, "new-etcd/0", "restore", &[], &[]));
        assert!(msg.contains("cannot be restored"), "{evil}: {msg}");
        unchanged(evil);
    }
    assert!(!Path::new("/tmp/evil-db").exists());

    // Not a snapshot at all.
    attach("notes.txt", b"hello, this is not an etcd snapshot\n");
    let msg = failure(&run_action(&m, "new-etcd/0", "restore", &[], &[]));
    assert!(msg.contains("cannot be restored"), "{msg}");
    unchanged("text file");

    // keys-version=v2 is refused with a reason.
    let msg = failure(&run_action(
        &m,
        "etcd/0",
        "snapshot",
        &["keys-version=v2"],
        &[],
    ));
    assert!(msg.contains("v2") && msg.contains("not supported"), "{msg}");

    // A target that is not a directory: a clear failure and no partial.
    let msg = failure(&run_action(
        &m,
        "etcd/0",
        "snapshot",
        &["target=/etc/etcd-charm/etcd.conf.yml"],
        &[],
    ));
    assert!(msg.contains("not a directory"), "{msg}");

    // A scaled application: a good archive, still refused.
    attach("good.tar.gz", &good);
    sim_here(&m, &["add-unit", "new-etcd", "-n", "2"]).ok();
    let msg = failure(&run_action(&m, "new-etcd/0", "restore", &[], &[]));
    assert!(
        msg.contains("single-unit")
            && msg.contains("juju deploy etcd")
            && msg.contains("Nothing was changed"),
        "{msg}"
    );
    unchanged("scaled application");
    assert!(no_partials(&m.unit_root("new-etcd/0")));
}

#[test]
fn a_failed_restore_rolls_back_and_an_interrupted_one_recovers() {
    let m = Model::new();
    sim_here(&m, &["deploy", &charm()]).ok();
    let ep = endpoint(&m, "etcd/0");
    kv::fill(&ep, 300, 1000);
    let snap = run_action(&m, "etcd/0", "snapshot", &[], &[]);
    let src = kv::digest(&ep);
    let archive = host_path(&m, "etcd/0", result(&snap, "snapshot.path"));

    deploy_with_snapshot(&m, "new-etcd", &archive);
    let new_ep = endpoint(&m, "new-etcd/0");
    kv::fill(&new_ep, 20, 10);
    let old = kv::digest(&new_ep);
    let old_ids = kv::ids(&new_ep);

    // etcd cannot open the restored data: the old data is back in service.
    let out = run_action(
        &m,
        "new-etcd/0",
        "restore",
        &[],
        &[("ETCD_CHARM_FAILPOINTS", "restore-after-swap=corrupt")],
    );
    let msg = failure(&out);
    assert!(msg.contains("rolled back"), "{msg}");
    assert_eq!(kv::digest(&new_ep), old);
    let ids = kv::ids(&new_ep);
    assert_eq!((ids.0, ids.1), (old_ids.0, old_ids.1));
    assert_eq!(m.workload("new-etcd/0").0, "active");

    // The action is killed after etcd was stopped: the next hook puts the
    // old data back, and a rerun of the action succeeds.
    let out = run_action(
        &m,
        "new-etcd/0",
        "restore",
        &["skip-backup=true"],
        &[("ETCD_CHARM_FAILPOINTS", "restore-after-move-aside=kill")],
    );
    assert_eq!(out["status"], "failed");
    sim_here(&m, &["run-hook", "new-etcd/0", "update-status"]).ok();
    assert_eq!(kv::digest(&new_ep), old);
    assert_eq!(m.workload("new-etcd/0").0, "active");

    let out = run_action(&m, "new-etcd/0", "restore", &["skip-backup=true"], &[]);
    assert_eq!(out["status"], "completed", "{out:?}");
    assert_eq!(result(&out, "backup.skipped"), "true");
    assert_eq!(kv::digest(&new_ep), src);
    let data_parent = m.unit_root("new-etcd/0").join("var/lib/etcd-charm");
    assert!(!data_parent.join("data.pre-restore").exists());
    assert!(!data_parent.join("restore.json").exists());
}

/// Inputs made by other tools restore: a plain `etcdctl snapshot save`
/// file, and the original charm's archive (a tar.gz of `./db`, a raw copy
/// of the live `member/snap/db` with no hash) made by GNU tar or by
/// Python's tarfile.
fn other_tools_inputs_restore(etcd_res: Option<&str>, etcdctl: &Path, tool: &str) {
    let m = Model::new();
    let mut deploy = vec!["deploy".to_string(), charm()];
    let mut extra = Vec::new();
    if let Some(r) = etcd_res {
        extra = vec!["--resource".to_string(), r.to_string()];
    }
    deploy.extend(extra.iter().cloned());
    let d: Vec<&str> = deploy.iter().map(String::as_str).collect();
    sim_here(&m, &d).ok();
    let ep = endpoint(&m, "etcd/0");
    kv::fill(&ep, 500, 20_000);
    let src = kv::digest(&ep);

    let saved = m.scratch.path().join("plain.db");
    util::act::etcdctl_snapshot_save(etcdctl, &ep, &saved);

    // The live db file, copied raw as the original charm did (no writes
    // are in flight, so the copy is consistent).
    let raw_dir = m.scratch.path().join("legacy");
    fs::create_dir_all(&raw_dir).unwrap();
    let live = m
        .unit_root("etcd/0")
        .join("var/lib/etcd-charm/data/member/snap/db");
    fs::copy(&live, raw_dir.join("db")).unwrap();
    let legacy = m
        .scratch
        .path()
        .join("etcd-snapshot-2016-11-09-02.41.47.tar.gz");
    let st = match tool {
        "gnu-tar" => Command::new("tar")
            .arg("czf")
            .arg(&legacy)
            .arg("-C")
            .arg(&raw_dir)
            .arg("./db")
            .status()
            .unwrap(),
        _ => Command::new("python3")
            .arg("-c")
            .arg("import sys, tarfile\nwith tarfile.open(sys.argv[1], 'w:gz') as t: t.add(sys.argv[2], arcname='./db')")
            .arg(&legacy)
            .arg(raw_dir.join("db"))
            .status()
            .unwrap(),
    };
    assert!(st.success());

    // The plain file gzip'd on its own, as kops' etcd-manager
    // (`etcd.backup.gz`) and Gardener's etcd-backup-restore store them.
    let gzipped = m.scratch.path().join("etcd.backup.gz");
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "gzip -c '{}' > '{}'",
            saved.display(),
            gzipped.display()
        ))
        .status()
        .unwrap();
    assert!(out.success());

    for (i, (file, kind, skip)) in [
        (&saved, "etcdctl-snapshot", "false"),
        (&legacy, "legacy-charm", "true"),
        (&gzipped, "gzip-snapshot", "false"),
    ]
    .into_iter()
    .enumerate()
    {
        let app = format!("restored{i}");
        let snap = format!("snapshot={}", file.display());
        let mut args = vec!["deploy", "etcd", &app];
        args.extend(extra.iter().map(String::as_str));
        args.extend(["--resource", &snap]);
        sim_here(&m, &args).ok();
        let unit = format!("{app}/0");
        let out = run_action(&m, &unit, "restore", &[], &[]);
        assert_eq!(
            out["status"],
            "completed",
            "{}",
            serde_yaml::to_string(&out).unwrap()
        );
        assert_eq!(result(&out, "restore.source.kind"), kind);
        assert_eq!(result(&out, "restore.skip-hash-check"), skip);
        let want_tool = if etcd_res.is_some() {
            "etcdutl"
        } else {
            "etcdctl"
        };
        assert_eq!(result(&out, "restore.tool"), want_tool);
        assert_eq!(kv::digest(&endpoint(&m, &unit)), src, "{kind}");
    }
}

#[test]
fn other_tools_inputs_restore_on_etcd_34() {
    other_tools_inputs_restore(None, Path::new("/usr/bin/etcdctl"), "python-tarfile");
}

#[test]
fn other_tools_inputs_restore_on_etcd_35() {
    let dir = tempfile::tempdir().unwrap();
    let res = etcd35_resource(dir.path());
    other_tools_inputs_restore(
        Some(&format!("etcd={}", res.display())),
        &etcd35_dir().join("etcdctl"),
        "gnu-tar",
    );
}

#[test]
fn one_snapshot_or_restore_at_a_time_and_a_full_disk_loses_nothing() {
    use fs2::FileExt;
    let m = Model::new();
    sim_here(&m, &["deploy", &charm()]).ok();
    let ep = endpoint(&m, "etcd/0");
    kv::fill(&ep, 1500, BIG);

    // Another operation holds the unit's lock: the action fails at once.
    let lock_path = m.unit_root("etcd/0").join("var/lib/etcd-charm/charm.lock");
    let held = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&lock_path)
        .unwrap();
    held.lock_exclusive().unwrap();
    let started = std::time::Instant::now();
    let msg = failure(&run_action(&m, "etcd/0", "snapshot", &[], &[]));
    assert!(msg.contains("already running"), "{msg}");
    assert!(started.elapsed().as_secs() < 20);
    FileExt::unlock(&held).unwrap();

    // A target on a filesystem too small for the snapshot.
    let small = m.unit_root("etcd/0").join("mnt/small");
    fs::create_dir_all(&small).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(&small)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !mounted {
        eprintln!("skipping the full-disk part: cannot mount a tmpfs here (not root?)");
        return;
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _u = Unmount(small.clone());
    let msg = failure(&run_action(
        &m,
        "etcd/0",
        "snapshot",
        &["target=/mnt/small"],
        &[],
    ));
    assert!(msg.contains("full") || msg.contains("space"), "{msg}");
    assert_eq!(
        fs::read_dir(&small).unwrap().count(),
        0,
        "a partial file was left behind"
    );
    assert!(
        !m.unit_root("etcd/0")
            .join("var/lib/etcd-charm/snapshot-partial.json")
            .exists(),
        "the failed run left its journal"
    );
    // etcd still serves, and a snapshot elsewhere works.
    let out = run_action(&m, "etcd/0", "snapshot", &[], &[]);
    assert_eq!(out["status"], "completed");

    // A restore whose backup cannot fit in its target is refused before
    // anything is touched.
    let archive = host_path(&m, "etcd/0", result(&out, "snapshot.path"));
    sim_here(
        &m,
        &[
            "attach-resource",
            "etcd",
            &format!("snapshot={}", archive.display()),
        ],
    )
    .ok();
    kv::fill(&ep, 10, 10);
    let data = kv::digest(&ep);
    let ids = kv::ids(&ep);
    let msg = failure(&run_action(
        &m,
        "etcd/0",
        "restore",
        &["target=/mnt/small"],
        &[],
    ));
    assert!(
        msg.contains("skip-backup=true") && msg.contains("Nothing was changed"),
        "{msg}"
    );
    assert_eq!(kv::digest(&ep), data);
    assert_eq!(kv::ids(&ep).0, ids.0);
    assert_eq!(fs::read_dir(&small).unwrap().count(), 0);
}

/// `snapshot include-pki=true`, restored with `adopt-pki=true` into a new
/// application: the old application's client credentials work against the
/// new one, and its CA fingerprint is the old one.
#[test]
fn a_snapshot_with_the_ca_moves_the_pki_to_the_new_application() {
    let m = Model::new();
    sim_here(&m, &["deploy", &charm()]).ok();
    let old = endpoint(&m, "etcd/0");
    kv::fill(&old, 300, 5000);
    let before = kv::digest(&old);

    let out = run_action(&m, "etcd/0", "snapshot", &["include-pki=true"], &[]);
    assert_eq!(out["status"], "completed", "{out:?}");
    assert_eq!(result(&out, "snapshot.pki"), "included");
    assert_eq!(
        result(&out, "snapshot.ca-fingerprint"),
        old.creds.ca_fingerprint
    );
    let archive = host_path(&m, "etcd/0", result(&out, "snapshot.path"));
    assert_eq!(mode(&archive), 0o600);
    // The key is in the archive, and nowhere in what Juju shows.
    let key = fs::read_to_string(old.creds.dir.join("client.key")).unwrap();
    let shown = serde_yaml::to_string(&out).unwrap();
    assert!(!shown.contains("PRIVATE KEY"), "{shown}");
    assert!(!m.debug_log().contains("PRIVATE KEY"));
    assert!(!key.is_empty());

    // Without adopt-pki the new application keeps its own CA.
    let plain = run_action(&m, "etcd/0", "snapshot", &[], &[]);
    let plain_archive = host_path(&m, "etcd/0", result(&plain, "snapshot.path"));
    deploy_with_snapshot(&m, "new-etcd", &plain_archive);
    let own = endpoint(&m, "new-etcd/0");
    assert_ne!(own.creds.ca_fingerprint, old.creds.ca_fingerprint);
    // adopt-pki on an archive without a CA: refused, nothing changed.
    let ids = kv::ids(&own);
    let msg = failure(&run_action(
        &m,
        "new-etcd/0",
        "restore",
        &["adopt-pki=true"],
        &[],
    ));
    assert!(
        msg.contains("carries no CA") && msg.contains("Nothing was changed"),
        "{msg}"
    );
    assert_eq!(kv::ids(&own).0, ids.0);

    // With the CA: adopted.
    sim_here(
        &m,
        &[
            "attach-resource",
            "new-etcd",
            &format!("snapshot={}", archive.display()),
        ],
    )
    .ok();
    // The adoption forced to fail once the CA is replaced: the old CA is
    // back in force, in Juju and on the unit, through the next hooks.
    let msg = failure(&run_action(
        &m,
        "new-etcd/0",
        "restore",
        &["adopt-pki=true", "skip-backup=true"],
        &[("ETCD_CHARM_FAILPOINTS", "restore-mid-adopt-pki=error")],
    ));
    assert!(msg.contains("the CA was not adopted"), "{msg}");
    sim_here(&m, &["run-hook", "new-etcd/0", "update-status"]).ok();
    sim_here(&m, &["run-hook", "new-etcd/0", "config-changed"]).ok();
    let kept = endpoint(&m, "new-etcd/0");
    assert_eq!(kept.creds.ca_fingerprint, own.creds.ca_fingerprint);
    assert_eq!(kv::digest(&own.with_unit(&m, "new-etcd/0")), before);
    let out = util::etcdctl_tls(
        Path::new("/usr/bin/etcdctl"),
        &kept.endpoint,
        &old.creds,
        &["get", "x"],
    );
    assert!(
        !out.status.success(),
        "the CA whose adoption failed let a client in"
    );

    let out = run_action(&m, "new-etcd/0", "restore", &["adopt-pki=true"], &[]);
    assert_eq!(
        out["status"],
        "completed",
        "{}",
        serde_yaml::to_string(&out).unwrap()
    );
    assert_eq!(result(&out, "restore.pki"), "adopted");
    assert_eq!(
        result(&out, "restore.ca-fingerprint"),
        old.creds.ca_fingerprint
    );
    // The OLD application's credentials read every key from the new one.
    let via_old_creds = old.with_unit(&m, "new-etcd/0");
    assert_eq!(kv::digest(&via_old_creds), before);
    let now = endpoint(&m, "new-etcd/0");
    assert_eq!(now.creds.ca_fingerprint, old.creds.ca_fingerprint);
    let (cur, msg) = m.workload("new-etcd/0");
    assert_eq!(cur, "active");
    assert!(msg.starts_with("Healthy with 1 known peer"), "{msg}");
    // Credentials issued by the new application's former CA no longer work.
    let out = util::etcdctl_tls(
        Path::new("/usr/bin/etcdctl"),
        &now.endpoint,
        &own.creds,
        &["get", "x"],
    );
    assert!(
        !out.status.success(),
        "a client of the replaced CA was let in"
    );
}
