//! End-to-end tests of `verify-backup`: a backup restored into a scratch
//! etcd and checked there (revision, key count, and hashkv against what the
//! source member had), while the unit's own etcd keeps serving a writer
//! that must see no failed write. A flipped byte and a db that does not
//! match its recorded hashkv fail, with the reason; nothing is left behind.
//! Backups in the store (`backup-id=`) are marked in their sidecars, only
//! when proven, and the timer verifies what it takes. A flipped byte in a
//! stored archive fails the same way in the local store and in S3
//! (Garage, on loopback).

mod util;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use util::act::{
    bump_manifest_hashkv, completed, etcdctl_snapshot_save, failure, flip_middle_byte, host_path,
    result, run_action, sim_here,
};
use util::garage::{relate_garage, Garage};
use util::kv;
use util::Model;

fn charm() -> String {
    util::charm_dir().display().to_string()
}

/// Deploys etcd (3.4, or the resource given), fills it, takes a snapshot;
/// returns the archive's unit path and the snapshot's output.
fn snapshot(m: &Model, resource: Option<&Path>) -> (String, serde_yaml::Value) {
    let mut args = vec!["deploy".to_string(), charm()];
    if let Some(r) = resource {
        args.extend(["--resource".to_string(), format!("etcd={}", r.display())]);
    }
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    sim_here(m, &a).ok();
    let ep = kv::Conn::to(m, "etcd/0");
    kv::fill(&ep, 300, 20_000);
    // Some history, and a compaction, so hashkv covers both.
    for i in 0..50 {
        kv::put(&ep, &format!("hist/{}", i % 5), &format!("v{i}"));
    }
    let out = run_action(m, "etcd/0", "compact", &[], &[]);
    completed(&out);
    for i in 0..20 {
        kv::put(&ep, &format!("after/{i}"), "x");
    }
    let out = run_action(m, "etcd/0", "snapshot", &[], &[]);
    completed(&out);
    (result(&out, "snapshot.path").to_string(), out)
}

fn scratch_dir(m: &Model) -> PathBuf {
    m.unit_root("etcd/0")
        .join("var/lib/etcd-charm/verify-scratch")
}

/// `verify-backup PARAM` on etcd/0.
fn verify_backup(m: &Model, param: &str) -> serde_yaml::Value {
    run_action(m, "etcd/0", "verify-backup", &[param], &[])
}

/// Nothing of a verification is left: no scratch directory, no scratch
/// etcd running.
fn no_scratch_left(m: &Model) {
    assert!(!scratch_dir(m).exists(), "the scratch directory is left");
    assert!(
        util::pids_mentioning(&scratch_dir(m).display().to_string()).is_empty(),
        "a scratch etcd is left running"
    );
}

/// A writer against the unit's etcd, counting successes and failures.
struct Writer {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    fn start(ep: kv::Conn) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let (s, o, f) = (stop.clone(), ok.clone(), failed.clone());
        let handle = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let mut c = ep.client().await;
                let mut i = 0u64;
                while !s.load(Ordering::Relaxed) {
                    let put = c.put(format!("live/{}", i % 100), format!("{i}"), None);
                    match tokio::time::timeout(Duration::from_secs(5), put).await {
                        Ok(Ok(_)) => o.fetch_add(1, Ordering::Relaxed),
                        _ => f.fetch_add(1, Ordering::Relaxed),
                    };
                    i += 1;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            });
        });
        Writer {
            stop,
            ok,
            failed,
            handle: Some(handle),
        }
    }

    fn finish(mut self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            h.join().unwrap();
        }
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}

fn good_backup_verifies(resource: Option<&Path>, etcdctl: &Path) {
    let m = Model::new();
    let (path, snap) = snapshot(&m, resource);
    let rev = result(&snap, "snapshot.revision").to_string();
    let recorded = result(&snap, "snapshot.hashkv").to_string();
    // The recorded hashkv is etcd's own at that revision.
    let ep = kv::Conn::to(&m, "etcd/0");
    let out = util::etcdctl_tls(
        etcdctl,
        &ep.endpoint,
        &ep.creds,
        &["endpoint", "hashkv", &format!("--rev={rev}"), "-w", "json"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["HashKV"]["hash"].to_string(), recorded, "{v}");

    let writer = Writer::start(ep.clone());
    std::thread::sleep(Duration::from_millis(500));
    let out = verify_backup(&m, &format!("path={path}"));
    let (ok, failed) = writer.finish();
    completed(&out);
    assert_eq!(result(&out, "verify.result"), "verified");
    assert_eq!(result(&out, "verify.kind"), "charm");
    assert_eq!(result(&out, "verify.hashkv-matched"), "true");
    assert_eq!(result(&out, "verify.hashkv"), recorded);
    assert_eq!(result(&out, "verify.checked-at-revision"), rev);
    assert_eq!(
        result(&out, "verify.keys"),
        result(&snap, "snapshot.key-count")
    );
    assert_eq!(failed, 0, "the writer saw {failed} failed writes ({ok} ok)");
    assert!(ok > 20, "the writer made only {ok} writes");
    no_scratch_left(&m);
    // The unit's etcd is as it was, plus the writer's keys.
    assert_eq!(kv::read_prefix(&ep, "after/").len(), 20);
}

#[test]
fn a_good_backup_verifies_while_etcd_serves_on_etcd_34() {
    good_backup_verifies(None, Path::new("/usr/bin/etcdctl"));
}

#[test]
fn a_good_backup_verifies_while_etcd_serves_on_etcd_3530() {
    let dir = tempfile::tempdir().unwrap();
    let res = util::etcd3530_resource(dir.path());
    good_backup_verifies(Some(&res), &util::etcd3530_dir().join("etcdctl"));
}

#[test]
fn damaged_backups_fail_with_the_reason() {
    let m = Model::new();
    let (path, _) = snapshot(&m, None);
    let archive = host_path(&m, "etcd/0", &path);
    let dir = archive.parent().unwrap().to_path_buf();

    // One flipped byte in the middle.
    let mut bytes = fs::read(&archive).unwrap();
    flip_middle_byte(&mut bytes);
    let flipped = dir.join("flipped.tar.gz");
    fs::write(&flipped, &bytes).unwrap();
    let out = verify_backup(&m, "path=/home/ubuntu/etcd-snapshots/flipped.tar.gz");
    let msg = failure(&out);
    assert!(msg.contains("not restorable"), "{msg}");
    assert!(msg.contains("damaged") || msg.contains("sha256"), "{msg}");
    no_scratch_left(&m);

    // An intact db under a manifest whose hashkv is not the source's: the
    // archive passes every hash, only the scratch etcd can tell.
    let other = dir.join("other-hashkv.tar.gz");
    bump_manifest_hashkv(&archive, &other);
    let out = verify_backup(&m, "path=/home/ubuntu/etcd-snapshots/other-hashkv.tar.gz");
    let msg = failure(&out);
    assert!(msg.contains("does not match the source: hashkv"), "{msg}");
    no_scratch_left(&m);

    // backup-id= names a backup in the store; there is none yet.
    let out = verify_backup(&m, "backup-id=latest");
    let msg = failure(&out);
    assert!(
        msg.contains("holds no backups") && msg.contains("list-backups"),
        "{msg}"
    );
}

fn sidecar(m: &Model, id: &str) -> serde_json::Value {
    Stored::Local(m).sidecar(id)
}

/// A store's objects, reached behind the charm's back: the unit's local
/// store, or Garage's bucket under the relation's `path`.
enum Stored<'a> {
    Local(&'a Model),
    S3(&'a Garage, &'a str),
}

impl Stored<'_> {
    fn read(&self, name: &str) -> Vec<u8> {
        match self {
            Stored::Local(m) => fs::read(
                m.unit_root("etcd/0")
                    .join("var/lib/etcd-charm/backups")
                    .join(name),
            )
            .unwrap(),
            Stored::S3(g, path) => g.get(&format!("{path}/{name}")),
        }
    }

    /// Overwrites the object `name` with `body`.
    fn write(&self, name: &str, body: &[u8]) {
        match self {
            Stored::Local(m) => fs::write(
                m.unit_root("etcd/0")
                    .join("var/lib/etcd-charm/backups")
                    .join(name),
                body,
            )
            .unwrap(),
            Stored::S3(g, path) => g.put(&format!("{path}/{name}"), body),
        }
    }

    fn sidecar(&self, id: &str) -> serde_json::Value {
        serde_json::from_slice(&self.read(&format!("{id}.json"))).unwrap()
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// `list-backups`' rows (JSON) and table.
fn list_backups(m: &Model) -> (Vec<serde_json::Value>, String) {
    let out = run_action(m, "etcd/0", "list-backups", &[], &[]);
    completed(&out);
    (
        serde_json::from_str(result(&out, "backups-json")).unwrap(),
        result(&out, "backups").to_string(),
    )
}

/// One bit flipped in the middle of the stored archive `flipped`:
/// `verify-backup backup-id=` fails naming the backup and the damage, its
/// sidecar records the failure (never `ok: true`), list-backups shows it
/// FAILED, the unit's etcd serves exactly what it did, and nothing is
/// left. The untouched backup `good` in the same store still verifies and
/// is marked, so the check tells one from the other.
fn flipped_byte_fails_and_is_never_marked(m: &Model, store: &Stored, good: &str, flipped: &str) {
    let ep = kv::Conn::to(m, "etcd/0");
    let before = kv::digest(&ep);
    let recorded = store.sidecar(flipped)["sha256"]
        .as_str()
        .unwrap()
        .to_string();
    let mut bytes = store.read(flipped);
    assert_eq!(sha256_hex(&bytes), recorded);
    flip_middle_byte(&mut bytes);
    store.write(flipped, &bytes);
    assert_eq!(sha256_hex(&store.read(flipped)), sha256_hex(&bytes));
    assert_ne!(sha256_hex(&bytes), recorded, "the flip did not land");

    let out = verify_backup(m, &format!("backup-id={flipped}"));
    let msg = failure(&out);
    assert!(
        msg.contains(flipped) && msg.contains("failed verification"),
        "{msg}"
    );
    assert!(msg.contains("damaged") || msg.contains("sha256"), "{msg}");
    let sc = store.sidecar(flipped);
    assert_eq!(sc["verified"]["ok"], false, "{sc}");
    assert!(
        sc["verified"]["result"]
            .as_str()
            .is_some_and(|r| r.starts_with("failed")),
        "{sc}"
    );
    // The sidecar still describes the archive as it was written.
    assert_eq!(sc["sha256"], recorded.as_str(), "{sc}");
    no_scratch_left(m);
    assert_eq!(kv::digest(&ep), before, "the unit's etcd changed");

    let (rows, table) = list_backups(m);
    let row = |id: &str| rows.iter().find(|r| r["id"] == id).unwrap().clone();
    assert_eq!(row(flipped)["verified"]["ok"], false, "{rows:?}");
    let line = table.lines().find(|l| l.contains(flipped)).unwrap();
    assert!(line.contains("FAILED"), "{table}");
    assert!(!line.contains("verified"), "{table}");

    // The untouched backup beside it is proven and marked.
    let out = verify_backup(m, &format!("backup-id={good}"));
    completed(&out);
    assert_eq!(result(&out, "verify.backup-id"), good);
    assert_eq!(result(&out, "verify.result"), "verified");
    assert_eq!(result(&out, "verify.marked"), "true");
    assert_eq!(result(&out, "verify.hashkv-matched"), "true");
    assert_eq!(store.sidecar(good)["verified"]["ok"], true);
    assert_eq!(store.sidecar(flipped)["verified"]["ok"], false);
    no_scratch_left(m);
    assert_eq!(kv::digest(&ep), before, "the unit's etcd changed");
}

fn create_backup(m: &Model) -> (String, serde_yaml::Value) {
    // Backups are named by the second.
    std::thread::sleep(Duration::from_millis(1100));
    let out = run_action(m, "etcd/0", "create-backup", &[], &[]);
    completed(&out);
    (result(&out, "backup.id").to_string(), out)
}

/// `verify-backup backup-id=` through the local store: a good backup is
/// proven while the unit serves a writer and is marked in its sidecar
/// (list-backups shows it); a flipped byte and a db that does not match
/// its recorded hashkv fail and are never marked verified; the timer with
/// `backup-verify` (the default) verifies what it took.
#[test]
fn stored_backups_are_verified_and_marked_only_when_proven() {
    let m = Model::new();
    sim_here(&m, &["deploy", &charm(), "--config", "backup-schedule=off"]).ok();
    let ep = kv::Conn::to(&m, "etcd/0");
    kv::fill(&ep, 200, 5_000);
    for i in 0..30 {
        kv::put(&ep, &format!("hist/{}", i % 3), &format!("v{i}"));
    }
    let (good, made) = create_backup(&m);

    let writer = Writer::start(ep.clone());
    std::thread::sleep(Duration::from_millis(300));
    let out = verify_backup(&m, "backup-id=latest");
    let (ok, failed) = writer.finish();
    completed(&out);
    assert_eq!(result(&out, "verify.backup-id"), good);
    assert_eq!(result(&out, "verify.result"), "verified");
    assert_eq!(result(&out, "verify.marked"), "true");
    assert_eq!(result(&out, "verify.hashkv-matched"), "true");
    assert_eq!(
        result(&out, "verify.keys"),
        result(&made, "snapshot.key-count")
    );
    assert_eq!(
        result(&out, "verify.checked-at-revision"),
        result(&made, "snapshot.revision")
    );
    assert_eq!(failed, 0, "the writer saw {failed} failed writes ({ok} ok)");
    assert!(ok > 10, "the writer made only {ok} writes");
    let sc = sidecar(&m, &good);
    assert_eq!(sc["verified"]["ok"], true, "{sc}");
    assert!(
        sc["verified"]["at"].as_str().unwrap().ends_with('Z'),
        "{sc}"
    );
    let dir = m.unit_root("etcd/0").join("var/lib/etcd-charm/backups");
    let mode = |p: &Path| {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    };
    assert_eq!(mode(&dir.join(format!("{good}.json"))), 0o600);
    no_scratch_left(&m);

    // One flipped byte in the stored archive.
    let (flipped, _) = create_backup(&m);
    flipped_byte_fails_and_is_never_marked(&m, &Stored::Local(&m), &good, &flipped);

    // An intact db under a manifest whose hashkv is not the source's, and
    // a sidecar that describes the archive as it now is: only the scratch
    // etcd can tell.
    let (other, _) = create_backup(&m);
    let archive = dir.join(&other);
    let tmp = dir.join("rewritten.tmp");
    bump_manifest_hashkv(&archive, &tmp);
    fs::rename(&tmp, &archive).unwrap();
    let mut sc = sidecar(&m, &other);
    sc["sha256"] = util::act::sha256sum(&archive).into();
    sc["size"] = fs::metadata(&archive).unwrap().len().into();
    sc["manifest"]["hashkv"] = (sc["manifest"]["hashkv"].as_u64().unwrap() + 1).into();
    fs::write(
        dir.join(format!("{other}.json")),
        serde_json::to_vec(&sc).unwrap(),
    )
    .unwrap();
    let out = verify_backup(&m, &format!("backup-id={other}"));
    let msg = failure(&out);
    assert!(msg.contains("does not match the source: hashkv"), "{msg}");
    assert_ne!(sidecar(&m, &other)["verified"]["ok"], true);
    no_scratch_left(&m);

    // list-backups shows the marks.
    let out = run_action(&m, "etcd/0", "list-backups", &[], &[]);
    completed(&out);
    let rows: Vec<serde_json::Value> = serde_json::from_str(result(&out, "backups-json")).unwrap();
    let row = |id: &str| rows.iter().find(|r| r["id"] == id).unwrap().clone();
    assert_eq!(row(&good)["verified"]["ok"], true);
    assert_eq!(row(&flipped)["verified"]["ok"], false);
    assert_eq!(row(&other)["verified"]["ok"], false);
    let table = result(&out, "backups");
    let line = |id: &str| table.lines().find(|l| l.contains(id)).unwrap().to_string();
    assert!(line(&good).contains("verified 20"), "{table}");
    assert!(line(&flipped).contains("FAILED"), "{table}");

    // The timer verifies each backup it takes (backup-verify defaults to
    // true) and records it in the backup state.
    sim_here(&m, &["config", "etcd", "backup-schedule=1m"]).ok();
    let state = || {
        fs::read(
            m.unit_root("etcd/0")
                .join("var/lib/etcd-charm/backup-state.json"),
        )
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .unwrap_or_default()
    };
    let ok = util::eventually(150, || !state()["last-verify"].is_null());
    sim_here(&m, &["config", "etcd", "backup-schedule=off"]).ok();
    let st = state();
    assert!(ok, "no scheduled verification: {st}");
    let note = st["last-verify"].as_str().unwrap();
    assert!(note.starts_with("verified "), "{st}");
    let taken = st["last-location"].as_str().unwrap();
    let id = taken.rsplit('/').next().unwrap();
    assert_eq!(sidecar(&m, id)["verified"]["ok"], true);
}

/// The flipped byte of the local store's test, in an S3 bucket (Garage):
/// the archive object is rewritten behind the charm's back, and the
/// verification streamed from the bucket must catch it.
#[test]
fn a_flipped_byte_in_an_s3_backup_fails_and_is_never_marked() {
    let Some(g) = Garage::start("etcd-verify") else {
        return;
    };
    let m = Model::new();
    sim_here(&m, &["deploy", &charm(), "--config", "backup-schedule=off"]).ok();
    let ep = kv::Conn::to(&m, "etcd/0");
    kv::fill(&ep, 200, 5_000);
    for i in 0..30 {
        kv::put(&ep, &format!("hist/{}", i % 3), &format!("v{i}"));
    }
    relate_garage(&m, &g, "etcd/verify", &g.secret);
    let (good, made) = create_backup(&m);
    assert_eq!(
        result(&made, "backup.location"),
        format!("s3://etcd-verify/etcd/verify/{good}")
    );
    let (flipped, _) = create_backup(&m);
    // Both are in the bucket, and not on the unit.
    let keys: Vec<String> = g.list("etcd/verify").into_iter().map(|(k, _)| k).collect();
    for id in [&good, &flipped] {
        assert!(keys.contains(&format!("etcd/verify/{id}")), "{keys:?}");
        assert!(keys.contains(&format!("etcd/verify/{id}.json")), "{keys:?}");
    }
    let local = m.unit_root("etcd/0").join("var/lib/etcd-charm/backups");
    assert!(!local.join(&good).exists());
    flipped_byte_fails_and_is_never_marked(&m, &Stored::S3(&g, "etcd/verify"), &good, &flipped);
}

/// Another tool's backup (Gardener's `.Z` here) has no manifest: it is
/// proven to restore and serve, and the results say what could not be
/// compared.
#[test]
fn another_tools_backup_verifies_with_what_can_be_checked() {
    let m = Model::new();
    sim_here(&m, &["deploy", &charm()]).ok();
    let ep = kv::Conn::to(&m, "etcd/0");
    kv::fill(&ep, 120, 5_000);
    let keys = kv::digest(&ep).len();
    let dir = m.unit_root("etcd/0").join("home/ubuntu/etcd-snapshots");
    fs::create_dir_all(&dir).unwrap();
    let plain = dir.join("plain.db");
    etcdctl_snapshot_save(Path::new("/usr/bin/etcdctl"), &ep, &plain);
    fs::write(
        dir.join("Full-00000000-00000121-1704067200.Z"),
        util::makers::go_lzw(&fs::read(&plain).unwrap()),
    )
    .unwrap();
    let out = verify_backup(
        &m,
        "path=/home/ubuntu/etcd-snapshots/Full-00000000-00000121-1704067200.Z",
    );
    completed(&out);
    assert_eq!(result(&out, "verify.kind"), "lzw-snapshot");
    assert_eq!(result(&out, "verify.hashkv-matched"), "not recorded");
    assert_eq!(result(&out, "verify.keys"), keys.to_string());
    assert!(result(&out, "verify.note").contains("no manifest"));
    no_scratch_left(&m);
}
