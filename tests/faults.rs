//! Fault injection, end to end on real etcd 3.4 through `juju-sim`:
//! `kill -9` at every step of the snapshot and restore actions (armed with
//! `ETCD_CHARM_FAILPOINTS` for one command at a time), damaged archives fed
//! to the restore action, and a snapshot taken under a sustained write load.
//!
//! What each kill must leave: etcd serving the data it had (or a status
//! that says what happens next), nothing under `target` that could pass for
//! a snapshot, and an action that succeeds when run again.

mod util;

use std::collections::BTreeMap;
use std::fs;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_charm::snapshot::{self, Inspection, Limits};
use util::act::{
    completed, deploy_with_snapshot, failure, host_path, no_partials, partials, result, run_action,
    sha256sum, sim_here,
};
use util::{kv, Model};

const FAILPOINTS: &str = "ETCD_CHARM_FAILPOINTS";

fn charm() -> String {
    util::charm_dir().display().to_string()
}

/// The charm's own directory on the unit.
fn state_dir(m: &Model, unit: &str) -> PathBuf {
    m.unit_root(unit).join("var/lib/etcd-charm")
}

/// The journal naming the partial archive being written.
fn snapshot_journal(m: &Model, unit: &str) -> PathBuf {
    state_dir(m, unit).join("snapshot-partial.json")
}

/// The running etcd of `unit`: the PIDs of the processes whose command
/// line names its config file, and what the `systemctl` stand-in records
/// (PID and start time). Equal before and after means etcd was never
/// stopped or restarted in between.
fn etcd_process(m: &Model, unit: &str) -> (Vec<u32>, serde_json::Value) {
    let conf = m.unit_root(unit).join("etc/etcd-charm/etcd.conf.yml");
    let mut pids = util::pids_mentioning(conf.to_str().unwrap());
    pids.sort();
    let record = m
        .home
        .path()
        .join("units")
        .join(unit.replace('/', "-"))
        .join("systemd/etcd.service.json");
    let rec: serde_json::Value = serde_json::from_slice(&fs::read(&record).unwrap()).unwrap();
    (pids, rec)
}

/// The `etcd-*.tar.gz` archives (final names only) in `dir`.
fn archives(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    let n = p.file_name().unwrap().to_string_lossy();
                    n.starts_with("etcd-") && n.ends_with(".tar.gz")
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Reads an archive in full with the charm's own verifier (every entry,
/// the db's sha256 against the manifest and etcd's trailer) and panics if
/// it would be refused.
fn verify_archive(path: &Path) -> Inspection {
    let f = fs::File::open(path).unwrap();
    let ins = snapshot::inspect(
        BufReader::new(f),
        None,
        Limits::default(),
        &mut snapshot::NoProgress,
    )
    .unwrap_or_else(|e| panic!("{} does not verify: {e}", path.display()));
    assert!(
        ins.refused().is_none(),
        "{} would be refused: {:?}",
        path.display(),
        ins.refused()
    );
    ins
}

/// Nothing a restore works with is left next to etcd's data.
fn assert_no_restore_leftovers(m: &Model, unit: &str, why: &str) {
    let dir = state_dir(m, unit);
    for name in [
        "data.restoring",
        "data.pre-restore",
        "data.failed-restore",
        "restore.json",
        "restore-staging",
        "snapshot-partial.json",
    ] {
        assert!(!dir.join(name).exists(), "{why}: {name} is left");
    }
    assert!(dir.join("data/member").is_dir(), "{why}: no data dir");
}

/// What a killed snapshot leaves before any clean-up.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Left {
    /// Nothing: the kill came before any file was written.
    Nothing,
    /// `NAME.partial` and the journal naming it.
    Partial,
    /// The whole archive under its final name (written, fsynced, renamed,
    /// the directory fsynced) and the journal, whose partial is gone.
    Archive,
}

#[test]
fn every_snapshot_step_survives_kill_9() {
    let m = Model::new();
    sim_here(&m, &["deploy", &charm()]).ok();
    let unit = "etcd/0";
    let ep = kv::Conn::to(&m, unit);
    kv::fill(&ep, 600, 300_000);
    let data = kv::digest(&ep);
    let ids = kv::ids(&ep);
    let process = etcd_process(&m, unit);
    assert_eq!(process.0.len(), 1, "one etcd process: {:?}", process.0);
    let journal = snapshot_journal(&m, unit);
    // Killed runs write to their own directory and reruns to the default
    // one, so only the journal can lead the next run to a killed partial.
    let killed_dir = host_path(&m, unit, "/srv/killed");
    let default_dir = host_path(&m, unit, "/home/ubuntu/etcd-snapshots");
    let untouched = |why: &str| {
        assert_eq!(kv::digest(&ep), data, "{why}: data changed");
        let now = kv::ids(&ep);
        assert_eq!((now.0, now.1), (ids.0, ids.1), "{why}: ids changed");
        assert_eq!(etcd_process(&m, unit), process, "{why}: etcd restarted");
        assert_eq!(m.workload(unit).0, "active", "{why}");
    };

    // An `error` in the middle of the stream: the run removes its own
    // partial file and journal.
    let msg = failure(&run_action(
        &m,
        unit,
        "snapshot",
        &["target=/srv/killed"],
        &[(FAILPOINTS, "snapshot-mid-stream=error")],
    ));
    assert!(msg.contains("snapshot-mid-stream"), "{msg}");
    assert!(no_partials(&killed_dir) && !journal.exists());
    assert!(archives(&killed_dir).is_empty());
    untouched("error mid-stream");

    let steps = [
        ("snapshot-after-lock", Left::Nothing),
        ("snapshot-mid-stream", Left::Partial),
        ("snapshot-before-sync", Left::Partial),
        ("snapshot-before-rename", Left::Partial),
        ("snapshot-after-rename", Left::Archive),
    ];
    let mut whole_after_kill = None;
    for (i, (point, left)) in steps.into_iter().enumerate() {
        let before = archives(&killed_dir);
        let spec = format!("{point}=kill");
        let out = run_action(
            &m,
            unit,
            "snapshot",
            &["target=/srv/killed"],
            &[(FAILPOINTS, &spec)],
        );
        failure(&out);
        untouched(point);
        let new: Vec<PathBuf> = archives(&killed_dir)
            .into_iter()
            .filter(|a| !before.contains(a))
            .collect();
        let parts = partials(&killed_dir);
        match left {
            Left::Nothing => {
                assert!(parts.is_empty() && new.is_empty(), "{point}: {parts:?}");
                assert!(!journal.exists(), "{point}: a journal without a file");
            }
            Left::Partial => {
                assert_eq!(parts.len(), 1, "{point}: {parts:?}");
                assert!(new.is_empty(), "{point}: {new:?}");
                let j: serde_json::Value =
                    serde_json::from_slice(&fs::read(&journal).unwrap()).unwrap();
                assert_eq!(
                    Path::new(j["partial"].as_str().unwrap()),
                    parts[0],
                    "{point}: the journal names another file"
                );
            }
            Left::Archive => {
                assert!(parts.is_empty(), "{point}: {parts:?}");
                assert_eq!(new.len(), 1, "{point}");
                assert!(journal.exists(), "{point}");
                whole_after_kill = Some(new[0].clone());
            }
        }

        // The clean-up: the update-status hook, or (every other step) the
        // next action itself.
        if i % 2 == 0 {
            sim_here(&m, &["run-hook", unit, "update-status"]).ok();
            assert!(!journal.exists(), "{point}: the hook left the journal");
            assert!(no_partials(&killed_dir), "{point}: the hook left a partial");
        }
        let rerun = run_action(&m, unit, "snapshot", &[], &[]);
        completed(&rerun);
        assert!(!journal.exists(), "{point}");
        assert!(
            no_partials(&killed_dir),
            "{point}: {:?}",
            partials(&killed_dir)
        );
        assert!(no_partials(&default_dir), "{point}");
        let path = host_path(&m, unit, result(&rerun, "snapshot.path"));
        assert_eq!(sha256sum(&path), result(&rerun, "snapshot.sha256"));
        let ins = verify_archive(&path);
        assert_eq!(ins.manifest.unwrap().key_count, data.len() as u64);
        // Whatever carries a final name, the killed runs' included, is a
        // whole archive.
        for a in archives(&killed_dir) {
            verify_archive(&a);
        }
        untouched(point);
    }

    // The archive a kill after the rename left is whole: it restores.
    let whole = whole_after_kill.expect("snapshot-after-rename left no archive");
    deploy_with_snapshot(&m, "from-killed", &whole);
    let out = run_action(&m, "from-killed/0", "restore", &["skip-backup=true"], &[]);
    completed(&out);
    assert_eq!(kv::digest(&kv::Conn::to(&m, "from-killed/0")), data);
}

/// Where in the restore a kill lands.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// Before the journal: etcd was never stopped.
    Checks,
    /// The journal says `replacing`: the next hook rolls back.
    Replacing,
    /// The new data passed every check: the next hook finishes.
    Verified,
    /// Inside the CA adoption, after the secret holds the new CA.
    AdoptingCa,
}

#[test]
fn every_restore_step_survives_kill_9() {
    let m = Model::new();
    sim_here(&m, &["deploy", &charm()]).ok();
    let src = kv::Conn::to(&m, "etcd/0");
    kv::fill(&src, 300, 20_000);
    let want = kv::digest(&src);
    let snap = run_action(&m, "etcd/0", "snapshot", &["include-pki=true"], &[]);
    completed(&snap);
    let archive = host_path(&m, "etcd/0", result(&snap, "snapshot.path"));

    let unit = "new-etcd/0";
    deploy_with_snapshot(&m, "new-etcd", &archive);
    let mut ep = kv::Conn::to(&m, unit);
    let backups = host_path(&m, unit, "/srv/backups");
    let with_backup: &[&str] = &["target=/srv/backups"];
    let skip: &[&str] = &["skip-backup=true"];
    let adopt: &[&str] = &["skip-backup=true", "adopt-pki=true"];

    // (point, phase, parameters, cleaned up by the hook (else by the rerun))
    let cases: [(&str, Phase, &[&str], bool); 11] = [
        ("restore-after-verify", Phase::Checks, with_backup, true),
        ("restore-mid-backup", Phase::Checks, with_backup, true),
        ("restore-after-backup", Phase::Checks, with_backup, true),
        ("restore-mid-tool", Phase::Replacing, skip, true),
        ("restore-after-stop", Phase::Replacing, skip, true),
        ("restore-after-restore", Phase::Replacing, skip, false),
        ("restore-after-move-aside", Phase::Replacing, skip, true),
        ("restore-after-swap", Phase::Replacing, skip, true),
        ("restore-after-start", Phase::Replacing, skip, true),
        ("restore-after-verified", Phase::Verified, skip, true),
        ("restore-mid-adopt-pki", Phase::AdoptingCa, adopt, true),
    ];
    for (i, (point, phase, params, by_hook)) in cases.into_iter().enumerate() {
        // The unit's data differs from the snapshot's, so the old data and
        // the restored data are told apart.
        kv::put(&ep, "/fault/before", point);
        let old = kv::digest(&ep);
        assert_ne!(old, want);
        let old_ids = kv::ids(&ep);
        let spec = format!("{point}=kill");
        let out = run_action(&m, unit, "restore", params, &[(FAILPOINTS, &spec)]);
        failure(&out);

        let (cur, msg) = m.workload(unit);
        match phase {
            Phase::Checks => {
                assert_eq!(kv::digest(&ep), old, "{point}");
                assert_eq!(kv::ids(&ep).0, old_ids.0, "{point}");
                assert_eq!(cur, "active", "{point}: {msg}");
                assert!(!state_dir(&m, unit).join("restore.json").exists());
                if point == "restore-mid-backup" {
                    assert_eq!(partials(&backups).len(), 1, "{point}");
                    assert!(snapshot_journal(&m, unit).exists(), "{point}");
                }
            }
            Phase::Replacing => {
                assert_eq!(cur, "maintenance", "{point}");
                assert!(
                    msg.contains("If this status stays, the restore was interrupted")
                        && msg.contains("the next hook rolls it back to the old data")
                        && msg.contains(if util::juju29_at(m.home.path()) {
                            "juju run-action new-etcd/0 restore"
                        } else {
                            "juju run new-etcd/0 restore"
                        }),
                    "{point}: {msg}"
                );
                assert!(state_dir(&m, unit).join("restore.json").exists());
                if point == "restore-mid-tool" {
                    // etcd's restore tool was running; it dies with the
                    // charm rather than go on writing into data.restoring.
                    let root = m.unit_root(unit).display().to_string();
                    let tool_alive = || {
                        util::pids_mentioning(&root).into_iter().any(|pid| {
                            fs::read(format!("/proc/{pid}/cmdline"))
                                .map(|c| String::from_utf8_lossy(&c).contains("restoring"))
                                .unwrap_or(false)
                        })
                    };
                    assert!(
                        util::eventually(5, || !tool_alive()),
                        "the restore tool outlived the killed charm"
                    );
                }
            }
            Phase::Verified => {
                assert_eq!(cur, "maintenance", "{point}");
                assert!(
                    msg.contains("restored and etcd serves it")
                        && msg.contains("the next hook finishes the clean-up"),
                    "{point}: {msg}"
                );
                assert_eq!(kv::digest(&ep), want, "{point}");
            }
            Phase::AdoptingCa => {
                assert_eq!(cur, "maintenance", "{point}");
                assert!(
                    msg.contains("Adopting the snapshot's CA")
                        && msg.contains("the next hook reissues")
                        && msg.contains("adopt-pki=true"),
                    "{point}: {msg}"
                );
                // The data is restored; etcd still runs on the old
                // certificates.
                assert_eq!(kv::digest(&ep), want, "{point}");
            }
        }

        if by_hook {
            sim_here(&m, &["run-hook", unit, "update-status"]).ok();
            if phase == Phase::AdoptingCa {
                let own = ep.creds.ca_fingerprint.clone();
                ep = kv::Conn::to(&m, unit);
                if util::juju29_at(m.home.path()) {
                    // leader-set is immediate: the CA the killed action
                    // wrote stands, and the hook finished the adoption.
                    assert_eq!(ep.creds.ca_fingerprint, src.creds.ca_fingerprint);
                    assert_eq!(kv::digest(&src.with_unit(&m, unit)), want);
                } else {
                    // Juju drops a killed action's secret-set: the
                    // application's own CA stands, and the hook reissued
                    // the unit's certificates from it.
                    assert_eq!(ep.creds.ca_fingerprint, own, "{point}");
                    assert_ne!(own, src.creds.ca_fingerprint);
                }
            }
            let now = kv::digest(&ep);
            let ids = kv::ids(&ep);
            match phase {
                Phase::Checks | Phase::Replacing => {
                    assert_eq!(now, old, "{point}: not the old data after the hook");
                    assert_eq!((ids.0, ids.1), (old_ids.0, old_ids.1), "{point}");
                }
                Phase::Verified | Phase::AdoptingCa => {
                    assert_eq!(now, want, "{point}: not the restored data");
                    assert_ne!(ids.0, old_ids.0, "{point}");
                }
            }
            let (cur, msg) = m.workload(unit);
            assert_eq!(cur, "active", "{point}: {msg}");
            assert_no_restore_leftovers(&m, unit, point);
            assert!(no_partials(&backups), "{point}: {:?}", partials(&backups));
        }

        // The rerun: once with a backup, else without, for speed.
        let rerun: &[&str] = if i == 0 {
            with_backup
        } else if phase == Phase::AdoptingCa {
            adopt
        } else {
            skip
        };
        let out = run_action(&m, unit, "restore", rerun, &[]);
        completed(&out);
        if i == 0 {
            let b = host_path(&m, unit, result(&out, "backup.path"));
            assert_eq!(sha256sum(&b), result(&out, "backup.sha256"));
            verify_archive(&b);
        }
        if phase == Phase::AdoptingCa {
            assert_eq!(result(&out, "restore.pki"), "adopted");
            // The snapshot's CA is the application's now (committed when
            // the rerun exited).
            ep = kv::Conn::to(&m, unit);
            assert_eq!(ep.creds.ca_fingerprint, src.creds.ca_fingerprint);
        }
        assert_eq!(kv::digest(&ep), want, "{point}: the rerun");
        let (cur, msg) = m.workload(unit);
        assert_eq!(cur, "active", "{point}: {msg}");
        assert_no_restore_leftovers(&m, unit, point);
        assert!(no_partials(&backups), "{point}");
        for a in archives(&backups) {
            verify_archive(&a);
        }
    }
}

/// splitmix64: a fixed seed gives the same cases on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One random mutation of `good`, and its name.
fn mutate(good: &[u8], rng: &mut Rng) -> (String, Vec<u8>) {
    let mut v = good.to_vec();
    let at = rng.below(v.len());
    let name = match rng.below(7) {
        0 => {
            let bit = rng.below(8);
            v[at] ^= 1 << bit;
            format!("bit {bit} of byte {at} flipped")
        }
        1 => {
            let b = rng.next() as u8;
            v[at] = b;
            format!("byte {at} set to {b:#04x}")
        }
        2 => {
            v.truncate(at);
            format!("truncated to {at} bytes")
        }
        3 => {
            let n = 1 + rng.below(64);
            let junk: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            v.splice(at..at, junk);
            format!("{n} random bytes inserted at {at}")
        }
        4 => {
            let n = (1 + rng.below(512)).min(v.len() - at);
            v.drain(at..at + n);
            format!("{n} bytes removed at {at}")
        }
        5 => {
            let n = (1 + rng.below(4096)).min(v.len() - at);
            let copy = v[at..at + n].to_vec();
            v.splice(at..at, copy);
            format!("{n} bytes at {at} repeated")
        }
        _ => {
            let n = 1 + rng.below(1024);
            v.extend((0..n).map(|_| rng.next() as u8));
            format!("{n} random bytes appended")
        }
    };
    (name, v)
}

/// Every input either restores exactly the original's keys, or is refused
/// before etcd is stopped: the action fails saying nothing was changed, and
/// the data, the cluster and member IDs and the etcd process are the same.
#[test]
fn damaged_archives_restore_exactly_or_change_nothing() {
    let m = Model::new();
    sim_here(&m, &["deploy", &charm()]).ok();
    let src = kv::Conn::to(&m, "etcd/0");
    kv::fill(&src, 200, 3000);
    let want = kv::digest(&src);
    let snap = run_action(&m, "etcd/0", "snapshot", &[], &[]);
    completed(&snap);
    let good = fs::read(host_path(&m, "etcd/0", result(&snap, "snapshot.path"))).unwrap();
    assert_eq!(&good[..3], &[0x1f, 0x8b, 8], "not a gzip");

    sim_here(&m, &["deploy", "etcd", "new-etcd"]).ok();
    let unit = "new-etcd/0";
    let ep = kv::Conn::to(&m, unit);

    // Known harmless: the gzip header's mtime and OS bytes are not data.
    let mut cases = Vec::new();
    let mut mtime = good.clone();
    mtime[4..8].copy_from_slice(&0x5f5e_1000u32.to_le_bytes());
    cases.push(("gzip header mtime changed".to_string(), mtime, true));
    let mut os = good.clone();
    os[9] = if os[9] == 3 { 255 } else { 3 };
    cases.push(("gzip header OS byte changed".to_string(), os, true));
    let mut rng = Rng(0x00c0_ffee_5eed);
    for _ in 0..10 {
        let (name, bytes) = mutate(&good, &mut rng);
        cases.push((name, bytes, false));
    }

    let (mut restored, mut refused) = (0, 0);
    for (i, (name, bytes, harmless)) in cases.iter().enumerate() {
        let file = format!("case-{i}.tar.gz");
        fs::write(m.scratch.path().join(&file), bytes).unwrap();
        sim_here(
            &m,
            &["attach-resource", "new-etcd", &format!("snapshot=./{file}")],
        )
        .ok();
        kv::put(&ep, "/fault/case", name);
        let before = kv::digest(&ep);
        assert_ne!(before, want);
        let ids = kv::ids(&ep);
        let process = etcd_process(&m, unit);
        assert_eq!(process.0.len(), 1, "{name}: {:?}", process.0);

        let out = run_action(&m, unit, "restore", &["skip-backup=true"], &[]);
        if out["status"] == "completed" {
            restored += 1;
            assert_eq!(kv::digest(&ep), want, "{name}: restored other keys");
            assert_eq!(result(&out, "restore.keys"), want.len().to_string());
        } else {
            refused += 1;
            assert!(!harmless, "{name} was refused: {out:?}");
            let msg = failure(&out);
            assert!(msg.contains("Nothing was changed"), "{name}: {msg}");
            assert_eq!(kv::digest(&ep), before, "{name}: data changed");
            let now = kv::ids(&ep);
            assert_eq!((now.0, now.1), (ids.0, ids.1), "{name}: ids changed");
            assert_eq!(
                etcd_process(&m, unit),
                process,
                "{name}: etcd was stopped or restarted"
            );
        }
        let (cur, msg) = m.workload(unit);
        assert_eq!(cur, "active", "{name}: {msg}");
        assert_no_restore_leftovers(&m, unit, name);
    }
    assert!(restored >= 2, "the harmless cases did not restore");
    assert!(refused >= 1, "no mutation was refused");
    eprintln!("{restored} restored, {refused} refused");
}

/// One put a writer made: the key, its value and the revision etcd
/// answered with.
struct Put {
    key: String,
    value: String,
    revision: i64,
    at: Instant,
}

/// `threads` threads of `tasks` concurrent writers each, every put to a
/// new key, until `stop`.
fn start_writers(
    conn: &kv::Conn,
    threads: usize,
    tasks: usize,
    stop: &Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<Vec<Put>>> {
    (0..threads)
        .map(|th| {
            let conn = conn.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let client = conn.client().await;
                    let handles: Vec<_> = (0..tasks)
                        .map(|t| {
                            let mut c = client.clone();
                            let stop = stop.clone();
                            tokio::spawn(async move {
                                let mut done = Vec::new();
                                let mut seq = 0u64;
                                while !stop.load(Ordering::Relaxed) {
                                    let key = format!("/writers/{th:02}-{t:03}/{seq:09}");
                                    let value = format!("{th}-{t}-{seq}-{}", "v".repeat(64));
                                    let r = c.put(key.as_str(), value.as_str(), None).await;
                                    let r = r.unwrap_or_else(|e| panic!("put {key}: {e}"));
                                    done.push(Put {
                                        key,
                                        value,
                                        revision: r.header().unwrap().revision(),
                                        at: Instant::now(),
                                    });
                                    seq += 1;
                                }
                                done
                            })
                        })
                        .collect();
                    let mut all = Vec::new();
                    for h in handles {
                        all.extend(h.await.unwrap());
                    }
                    all
                })
            })
        })
        .collect()
}

/// A snapshot taken while writers put at least 1,000 keys a second
/// restores to one consistent revision: exactly the puts up to some
/// revision R, R at or above the manifest's, each with its value.
#[test]
fn a_snapshot_under_live_writers_restores_a_consistent_prefix() {
    let m = Model::new();
    sim_here(&m, &["deploy", &charm()]).ok();
    let unit = "etcd/0";
    let ep = kv::Conn::to(&m, unit);
    // About 150 MB that gzip cannot shrink, so the snapshot takes a while.
    let (bulk, size) = (300, 512 << 10);
    let t = Instant::now();
    kv::fill_bulk(&ep, bulk, size);
    eprintln!("prefilled {} MB in {:?}", (bulk * size) >> 20, t.elapsed());

    let stop = Arc::new(AtomicBool::new(false));
    let writers = start_writers(&ep, 2, 48, &stop);
    std::thread::sleep(Duration::from_secs(2));
    let t0 = Instant::now();
    let snap = run_action(&m, unit, "snapshot", &[], &[]);
    let t1 = Instant::now();
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let puts: Vec<Put> = writers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    completed(&snap);

    let window = t1 - t0;
    let during = puts.iter().filter(|p| p.at >= t0 && p.at <= t1).count();
    let rate = during as f64 / window.as_secs_f64();
    eprintln!(
        "snapshot took {window:?}; {during} puts during it ({rate:.0}/s), {} in all",
        puts.len()
    );
    // At least a second's worth of writes landed while it ran.
    assert!(
        window >= Duration::from_secs(1) && during >= 1000,
        "the snapshot was too quick ({window:?}, {during} puts) to be taken under load"
    );
    assert!(rate >= 1000.0, "only {rate:.0} puts/s during the snapshot");

    // Restore the archive into a new application.
    let archive = host_path(&m, unit, result(&snap, "snapshot.path"));
    let manifest_rev: i64 = result(&snap, "snapshot.revision").parse().unwrap();
    deploy_with_snapshot(&m, "new-etcd", &archive);
    let out = run_action(&m, "new-etcd/0", "restore", &["skip-backup=true"], &[]);
    completed(&out);
    let new_ep = kv::Conn::to(&m, "new-etcd/0");
    assert_eq!(kv::count_prefix(&new_ep, "/bulk/"), bulk as i64);
    let present = kv::read_prefix(&new_ep, "/writers/");

    // Every put at or below the manifest's revision is there, with its
    // value.
    let mut by_rev: Vec<&Put> = puts.iter().collect();
    by_rev.sort_by_key(|p| p.revision);
    for p in by_rev.iter().filter(|p| p.revision <= manifest_rev) {
        assert_eq!(
            present.get(&p.key),
            Some(&p.value),
            "{} (revision {}) is missing at manifest revision {manifest_rev}",
            p.key,
            p.revision
        );
    }
    // Exactly the puts up to one revision R: no holes, nothing after.
    let index: BTreeMap<&str, &Put> = puts.iter().map(|p| (p.key.as_str(), p)).collect();
    for k in present.keys() {
        assert!(index.contains_key(k.as_str()), "{k} was never written");
    }
    let r = present
        .keys()
        .map(|k| index[k.as_str()].revision)
        .max()
        .unwrap_or(manifest_rev)
        .max(manifest_rev);
    let upto: Vec<&&Put> = by_rev.iter().filter(|p| p.revision <= r).collect();
    assert_eq!(
        present.len(),
        upto.len(),
        "the restored writes are not the puts up to revision {r}"
    );
    for p in upto {
        assert_eq!(present.get(&p.key), Some(&p.value), "{}", p.key);
    }
    let after = by_rev.iter().filter(|p| p.revision > r).count();
    eprintln!(
        "manifest revision {manifest_rev}; restored the {} puts up to revision {r}; {after} later puts are not in the snapshot",
        present.len()
    );
}
