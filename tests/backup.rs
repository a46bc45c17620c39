//! Backups that outlive the unit (issue 11), end to end on real etcd and a
//! real S3 server (Garage on loopback): `create-backup` and `list-backups`
//! into both stores, scheduled backups through the charm's own systemd
//! timer (run for real by juju-sim's `systemctl`), one backup per tick
//! across three units and a leader removal, retention that spares another
//! writer's objects, an upload cut by killing Garage, and wrong
//! credentials.

mod util;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use util::act::{completed, deploy_on_juju29, failure, result, run_action, sha256sum, sim_here};
use util::cluster::deploy_n;
use util::garage::{deploy_provider, relate_garage, Garage};
use util::{kv, Model};

fn charm() -> String {
    util::charm_dir().display().to_string()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The object `key` of the bucket, downloaded into the scratch directory
/// as `name`.
fn download(m: &Model, g: &Garage, key: &str, name: &str) -> PathBuf {
    let file = m.scratch.path().join(name);
    fs::write(&file, g.get(key)).unwrap();
    file
}

/// Deploys `copy` with the scratch directory's `name` as its `snapshot`
/// resource, restores it and returns every key it then serves.
fn restore_into_copy(m: &Model, name: &str) -> BTreeMap<String, String> {
    sim_here(
        m,
        &[
            "deploy",
            &charm(),
            "copy",
            "--config",
            "backup-schedule=off",
            "--resource",
            &format!("snapshot=./{name}"),
        ],
    )
    .ok();
    let out = run_action(m, "copy/0", "restore", &[], &[]);
    completed(&out);
    kv::digest(&kv::Conn::to(m, "copy/0"))
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn backups_json(m: &Model, unit: &str) -> Vec<Value> {
    let out = run_action(m, unit, "list-backups", &[], &[]);
    completed(&out);
    serde_json::from_str(result(&out, "backups-json")).unwrap()
}

/// Archive keys of ours under `prefix` in the bucket.
fn archives(g: &Garage, prefix: &str) -> Vec<String> {
    g.list(prefix)
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| k.ends_with(".tar.gz") && k.contains("etcd-snapshot-"))
        .collect()
}

#[test]
fn create_and_list_backups_in_garage_and_on_disk() {
    let Some(g) = Garage::start("etcd-backups") else {
        return;
    };
    let m = Model::new();
    m.sim(&["deploy", &charm(), "--config", "backup-schedule=off"])
        .ok();
    let ep = kv::Conn::to(&m, "etcd/0");
    kv::fill(&ep, 200, 4096);
    let before = kv::digest(&ep);

    // No relation: the local store.
    let out = run_action(&m, "etcd/0", "create-backup", &[], &[]);
    completed(&out);
    let local = result(&out, "backup.location").to_string();
    assert!(
        local.starts_with("/var/lib/etcd-charm/backups/etcd-snapshot-"),
        "{local}"
    );
    let host = m.unit_root("etcd/0").join(local.trim_start_matches('/'));
    assert_eq!(mode(&host), 0o600);
    assert_eq!(sha256sum(&host), result(&out, "snapshot.sha256"));
    let sidecar: Value =
        serde_json::from_slice(&fs::read(format!("{}.json", host.display())).unwrap()).unwrap();
    assert_eq!(sidecar["sha256"], result(&out, "snapshot.sha256"));
    assert_eq!(result(&out, "snapshot.key-count"), before.len().to_string());
    std::thread::sleep(Duration::from_secs(1));

    // Related: S3 (auto).
    relate_garage(&m, &g, "etcd/prod", &g.secret);
    let out = run_action(&m, "etcd/0", "create-backup", &[], &[]);
    completed(&out);
    let id = result(&out, "backup.id").to_string();
    assert_eq!(
        result(&out, "backup.location"),
        format!("s3://etcd-backups/etcd/prod/{id}")
    );
    let key = format!("etcd/prod/{id}");
    let file = download(&m, &g, &key, &id);
    assert_eq!(sha256sum(&file), result(&out, "snapshot.sha256"));
    let side: Value = serde_json::from_slice(&g.get(&format!("{key}.json"))).unwrap();
    assert_eq!(side["sha256"], result(&out, "snapshot.sha256"));
    assert_eq!(side["size"], fs::metadata(&file).unwrap().len());
    assert_eq!(side["store"], "s3");
    // The secret is nowhere in the results or the logs.
    let all = format!("{out:?}{}", m.debug_log());
    assert!(!all.contains(&g.secret), "the secret key leaked");
    // Our own upload is recognised as ours (its ETag matches).
    assert!(!all.contains("another upload replaced"), "{all}");

    // list-backups: both stores, newest first.
    let list = backups_json(&m, "etcd/0");
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!(list[0]["store"], "s3");
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(list[1]["store"], "local");
    for b in &list {
        for f in [
            "time",
            "revision",
            "key-count",
            "size",
            "sha256",
            "etcd-version",
            "cluster-id",
            "retention",
        ] {
            assert!(!b[f].is_null(), "{f} missing in {b}");
        }
    }

    // The S3 archive restores every key into a new application.
    assert_eq!(restore_into_copy(&m, &id), before);
}

/// Every unit directory of `app` ever deployed in the model (removed ones
/// too), with its backup timer's log.
fn tick_logs(m: &Model, app: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for e in fs::read_dir(m.home.path().join("units")).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.rsplit_once('-').map(|(a, _)| a) == Some(app) {
            let log = e.path().join("root/var/log/etcd-charm-backup.log");
            out.push((name, fs::read_to_string(log).unwrap_or_default()));
        }
    }
    out.sort();
    out
}

/// The archive names each unit's ticks reported taking ("Backed up to").
fn taken(m: &Model, app: &str) -> Vec<(String, String)> {
    let mut v = Vec::new();
    for (unit, log) in tick_logs(m, app) {
        for l in log.lines() {
            if let Some(rest) = l.split("Backed up to ").nth(1) {
                let loc = rest.split_whitespace().next().unwrap_or_default();
                let name = loc.rsplit('/').next().unwrap_or_default().to_string();
                v.push((name, unit.clone()));
            }
        }
    }
    v.sort();
    v
}

/// The minute ticks strictly after `from` and up to `to`, as archive names.
fn minute_names(from: u64, to: u64) -> Vec<String> {
    let mut t = (from / 60 + 1) * 60;
    let mut v = Vec::new();
    while t <= to {
        v.push(name_at(t));
        t += 60;
    }
    v
}

fn name_at(t: u64) -> String {
    let out = std::process::Command::new("date")
        .args([
            "-u",
            "-d",
            &format!("@{t}"),
            "+etcd-snapshot-%Y-%m-%d-%H.%M.%S.tar.gz",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Sleeps until `secs` past the next minute.
fn sleep_past_minute(secs: u64) {
    let n = now();
    let target = (n / 60 + 1) * 60 + secs;
    std::thread::sleep(Duration::from_secs(target - n));
}

/// The unit whose tick took the newest backup.
fn last_taker(m: &Model, app: &str) -> String {
    let t = taken(m, app);
    let newest = t.iter().map(|(n, _)| n.clone()).max().unwrap();
    let unit = t.into_iter().find(|(n, _)| *n == newest).unwrap().1;
    let (a, n) = unit.rsplit_once('-').unwrap();
    format!("{a}/{n}")
}

#[test]
fn scheduled_backups_one_per_tick_through_leader_loss_with_retention() {
    let Some(g) = Garage::start("etcd-sched") else {
        return;
    };
    let m = Model::new();
    // S3: three units. Local: two units of another application.
    deploy_n(&m, "etcd", 3, &["--config", "backup-schedule=off"]);
    deploy_n(
        &m,
        "loc",
        2,
        &[
            "--config",
            "backup-schedule=off",
            "--config",
            "backup-store=local",
        ],
    );
    for u in ["etcd/0", "etcd/1", "etcd/2", "loc/0", "loc/1"] {
        let ok = util::eventually(120, || {
            m.sim(&["run-hook", u, "update-status"]);
            m.workload(u).0 == "active"
        });
        assert!(ok, "{u}: {:?}\n{}", m.workload(u), m.debug_log());
    }
    let ep = kv::Conn::to(&m, "etcd/0");
    kv::fill(&ep, 300, 2048);
    let before = kv::digest(&ep);
    relate_garage(&m, &g, "prod", &g.secret);
    // Another writer's objects in the same bucket and prefix.
    let foreign = "prod/etcd-snapshot-2001-01-01-00.00.00.tar.gz";
    g.put(foreign, b"not ours");
    g.put(
        &format!("{foreign}.json"),
        br#"{"name":"etcd-snapshot-2001-01-01-00.00.00.tar.gz","application":"other"}"#,
    );
    g.put("prod/notes.txt", b"keep me");

    m.sim(&["config", "etcd", "backup-schedule=1m"]).ok();
    m.sim(&["config", "loc", "backup-schedule=1m"]).ok();
    // Ticks from the first whole minute after both timers run.
    let start = now();
    // Two ticks, then the unit taking the backups goes away.
    sleep_past_minute(25);
    sleep_past_minute(25);
    // A removed unit's directory goes with it: keep what its log said.
    let mut seen: std::collections::BTreeMap<&str, Vec<(String, String)>> = Default::default();
    let first = last_taker(&m, "etcd");
    seen.insert("etcd", taken(&m, "etcd"));
    m.sim(&["remove-unit", &first]).ok();
    let local_first = last_taker(&m, "loc");
    seen.insert("loc", taken(&m, "loc"));
    m.sim(&["remove-unit", &local_first]).ok();
    sleep_past_minute(25);
    sleep_past_minute(25);
    let end = now() - 25;

    let want = minute_names(start, end);
    assert!(want.len() >= 4, "{want:?}");
    for app in ["etcd", "loc"] {
        let mut t = seen[app].clone();
        for x in taken(&m, app) {
            if !t.contains(&x) {
                t.push(x);
            }
        }
        t.sort();
        // A tick in the second the timers started may or may not count.
        t.retain(|(n, _)| *n >= want[0]);
        let names: Vec<String> = t.iter().map(|(n, _)| n.clone()).collect();
        assert_eq!(
            names,
            want,
            "{app}: not exactly one backup per tick: {t:?}\n{:?}",
            tick_logs(&m, app)
        );
        let takers: std::collections::BTreeSet<&String> = t.iter().map(|(_, u)| u).collect();
        assert!(
            takers.len() >= 2,
            "{app}: the leader's removal moved nothing: {t:?}"
        );
    }
    let stored: Vec<String> = archives(&g, "prod")
        .into_iter()
        .filter(|k| !k.contains("2001-01-01"))
        .map(|k| k.trim_start_matches("prod/").to_string())
        .filter(|n| *n >= want[0])
        .collect();
    assert_eq!(stored, want, "the bucket holds other than one per tick");
    // Each archive's sha256 is its sidecar's.
    for n in &want {
        let f = download(&m, &g, &format!("prod/{n}"), n);
        let side: Value = serde_json::from_slice(&g.get(&format!("prod/{n}.json"))).unwrap();
        assert_eq!(side["sha256"].as_str().unwrap(), sha256sum(&f), "{n}");
    }
    // Locally, the archives sit on the units that took them, 0600.
    for (n, unit) in taken(&m, "loc") {
        let p: PathBuf = m
            .home
            .path()
            .join("units")
            .join(&unit)
            .join("root/var/lib/etcd-charm/backups")
            .join(&n);
        let side: Value =
            serde_json::from_slice(&fs::read(format!("{}.json", p.display())).unwrap()).unwrap();
        assert_eq!(side["sha256"].as_str().unwrap(), sha256sum(&p), "{n}");
        assert_eq!(mode(&p), 0o600);
    }
    // update-status reports the newest backup on the unit that took it.
    let taker = last_taker(&m, "etcd");
    m.sim(&["run-hook", &taker, "update-status"]).ok();
    let (cur, msg) = m.workload_raw(&taker);
    assert_eq!(cur, "active", "{msg}");
    assert!(
        msg.contains("last backup") && msg.contains("ago, s3"),
        "{msg}"
    );

    // Retention last=3: exactly the 3 newest of ours after the next tick;
    // the other writer's objects stay.
    m.sim(&["config", "etcd", "backup-retention=last=3"]).ok();
    sleep_past_minute(25);
    let ours = archives(&g, "prod");
    let mut newest = minute_names(start, now() - 25);
    let newest: Vec<String> = newest.split_off(newest.len() - 3);
    let kept: Vec<String> = ours
        .iter()
        .filter(|k| !k.contains("2001-01-01"))
        .map(|k| k.trim_start_matches("prod/").to_string())
        .collect();
    assert_eq!(kept, newest);
    let all: Vec<String> = g.list("prod").into_iter().map(|(k, _)| k).collect();
    for k in [
        foreign.to_string(),
        format!("{foreign}.json"),
        "prod/notes.txt".into(),
    ] {
        assert!(all.contains(&k), "{k} was deleted: {all:?}");
    }
    let list = backups_json(&m, &taker);
    let s3: Vec<&Value> = list.iter().filter(|b| b["store"] == "s3").collect();
    assert_eq!(s3.len(), 3, "{list:?}");
    assert_eq!(s3[0]["id"], newest[2].as_str());
    assert!(s3.iter().all(|b| b["retention"] == "last"), "{list:?}");

    // A scheduled backup restores every key.
    let n = &newest[2];
    download(&m, &g, &format!("prod/{n}"), n);
    assert_eq!(restore_into_copy(&m, n), before);
}

/// The unit's backup state file.
fn backup_state(m: &Model, unit: &str) -> Value {
    let p = m
        .unit_root(unit)
        .join("var/lib/etcd-charm/backup-state.json");
    fs::read(p)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null)
}

fn tick_log(m: &Model, unit: &str) -> String {
    fs::read_to_string(m.unit_root(unit).join("var/log/etcd-charm-backup.log")).unwrap_or_default()
}

#[test]
fn upload_cut_by_a_dead_server_and_wrong_credentials() {
    let Some(mut g) = Garage::start("etcd-faults") else {
        return;
    };
    let m = Model::new();
    m.sim(&["deploy", &charm(), "--config", "backup-schedule=off"])
        .ok();
    let ep = kv::Conn::to(&m, "etcd/0");
    // About 200 MB that gzip cannot shrink.
    kv::fill_bulk(&ep, 190, 1 << 20);
    relate_garage(&m, &g, "big", &g.secret);
    m.sim(&["config", "etcd", "backup-schedule=1m"]).ok();

    // Kill Garage once a quarter of the db has gone up.
    let ok = util::eventually(150, || tick_log(&m, "etcd/0").contains("25% ("));
    assert!(
        ok,
        "the upload never got going:\n{}",
        tick_log(&m, "etcd/0")
    );
    g.kill();
    let ok = util::eventually(180, || !backup_state(&m, "etcd/0")["last-error"].is_null());
    assert!(ok, "no failure recorded:\n{}", tick_log(&m, "etcd/0"));
    let err = backup_state(&m, "etcd/0")["last-error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(err.contains("s3"), "{err}");
    m.sim(&["run-hook", "etcd/0", "update-status"]).ok();
    let (_, msg) = m.workload("etcd/0");
    assert!(
        msg.contains("backup failed") || msg.contains("no backup for"),
        "{msg}"
    );
    assert!(msg.contains("s3 endpoint"), "{msg}");
    g.restart();
    // Nothing of the cut upload is listed.
    assert!(archives(&g, "big").is_empty(), "{:?}", g.list("big"));

    // The next tick succeeds.
    let ok = util::eventually(150, || {
        !backup_state(&m, "etcd/0")["last-success"].is_null()
    });
    assert!(
        ok,
        "no backup after Garage came back:\n{}",
        tick_log(&m, "etcd/0")
    );
    let stored = archives(&g, "big");
    assert_eq!(stored.len(), 1, "{stored:?}");
    let side: Value = serde_json::from_slice(&g.get(&format!("{}.json", stored[0]))).unwrap();
    let f = download(&m, &g, &stored[0], "big.tar.gz");
    assert_eq!(side["sha256"].as_str().unwrap(), sha256sum(&f));
    assert!(side["size"].as_u64().unwrap() > 190 << 20);
    fs::remove_file(&f).unwrap();

    // Wrong credentials: blocked, naming the problem, never the secret.
    let wrong = "WRONG-secret-0123456789abcdef";
    m.sim(&["config", "s3", &format!("secret-key={wrong}")])
        .ok();
    let ok = util::eventually(150, || {
        backup_state(&m, "etcd/0")["last-error"]
            .as_str()
            .is_some_and(|e| e.contains("credentials"))
    });
    assert!(ok, "{}", tick_log(&m, "etcd/0"));
    m.sim(&["run-hook", "etcd/0", "update-status"]).ok();
    let (cur, msg) = m.workload("etcd/0");
    assert_eq!(cur, "blocked", "{msg}");
    assert!(msg.contains("refused the credentials"), "{msg}");
    let everything = format!(
        "{msg}{}{}{}",
        m.debug_log(),
        tick_log(&m, "etcd/0"),
        backup_state(&m, "etcd/0")
    );
    for secret in [wrong, g.secret.as_str()] {
        assert!(!everything.contains(secret), "a secret leaked");
    }
    // The settings file that holds them is root's alone.
    let settings = m.unit_root("etcd/0").join("var/lib/etcd-charm/backup.json");
    assert_eq!(mode(&settings), 0o600);
    // Fixed credentials heal it.
    m.sim(&["config", "s3", &format!("secret-key={}", g.secret)])
        .ok();
    m.sim(&["config", "etcd", "backup-schedule=off"]).ok();
}

/// The s3 interface v1: the credentials come in a Juju secret whose URI is
/// `secret-extra`, granted to this application by the provider.
/// Juju 2.9 has no secrets: the provider hands the credentials over in
/// the relation data (the s3 interface's v0 fields), and backups go to the
/// bucket all the same.
#[test]
fn s3_on_juju_29_with_the_v0_relation_fields() {
    let Some(g) = Garage::start("etcd-v0-29") else {
        return;
    };
    let m = Model::new();
    deploy_on_juju29(&m, &[&charm(), "--config", "backup-schedule=off"]);
    relate_garage(&m, &g, "etcd29", &g.secret);
    let out = run_action(&m, "etcd/0", "create-backup", &[], &[]);
    completed(&out);
    let location = result(&out, "backup.location").to_string();
    assert!(
        location.starts_with("s3://etcd-v0-29/etcd29/"),
        "{location}"
    );
    let names = archives(&g, "etcd29/");
    assert_eq!(names.len(), 1, "{names:?}");
    let listed = backups_json(&m, "etcd/0");
    assert!(
        listed.iter().any(|b| b["store"] == "s3"),
        "list-backups does not show the S3 backup: {listed:?}"
    );
    assert!(!m.debug_log().contains(&g.secret));
}

#[test]
fn s3_interface_v1_credentials_from_a_secret() {
    let Some(g) = Garage::start("etcd-v1") else {
        return;
    };
    let m = Model::new();
    m.sim(&["deploy", &charm(), "--config", "backup-schedule=off"])
        .ok();
    deploy_provider(&m, &g, &g.secret, &[("interface", "v1")]);
    let out = run_action(&m, "etcd/0", "create-backup", &[], &[]);
    completed(&out);
    assert!(result(&out, "backup.location").starts_with("s3://etcd-v1/"));
    assert_eq!(archives(&g, "").len(), 1);
    assert!(!m.debug_log().contains(&g.secret));
}

/// The measured pair for bench: one backup of a `BACKUP_BENCH_MB` (default
/// 1024) MiB db to Garage through the charm's pipeline (its peak RSS and
/// time, from `/usr/bin/time -v`), against `etcdctl snapshot save` then
/// `rclone copyto` of the same file to the same bucket. Run by hand:
/// `cargo test --release --test backup measure -- --ignored --nocapture`.
#[test]
#[ignore = "a benchmark: several minutes and a GiB of disk"]
fn measure_backup_to_garage_against_etcdctl_and_rclone() {
    let Some(g) = Garage::start("etcd-bench") else {
        return;
    };
    let mb: usize = std::env::var("BACKUP_BENCH_MB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1024);
    let m = Model::new();
    let res = util::etcd35_resource(m.scratch.path());
    m.sim(&[
        "deploy",
        &charm(),
        "--config",
        "backup-schedule=1d",
        "--resource",
        &format!("etcd={}", res.display()),
    ])
    .ok();
    let ep = kv::Conn::to(&m, "etcd/0");
    kv::fill_bulk(&ep, mb, 1 << 20);
    relate_garage(&m, &g, "bench", &g.secret);

    // The charm: one tick by hand (the timer fires only at midnight).
    let root = m.unit_root("etcd/0");
    let dispatch = m.home.path().join("units/etcd-0/charm/dispatch");
    let t0 = std::time::Instant::now();
    let out = std::process::Command::new("/usr/bin/time")
        .arg("-v")
        .arg(&dispatch)
        .arg("backup-tick")
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("ETCD_CHARM_ROOT", &root)
        .output()
        .unwrap();
    let charm_secs = t0.elapsed().as_secs_f64();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let rss_kb: u64 = err
        .lines()
        .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes):"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(archives(&g, "bench").len(), 1, "{err}");
    println!(
        "BENCH charm backup of {mb} MiB to Garage: {charm_secs:.1}s, peak RSS {:.1} MiB",
        rss_kb as f64 / 1024.0
    );

    // etcdctl snapshot save, then rclone copyto of that file.
    let creds = m.credentials("etcd/0");
    let file = m.scratch.path().join("db");
    let t0 = std::time::Instant::now();
    let save = util::etcdctl_tls(
        &util::etcd35_dir().join("etcdctl"),
        &ep.endpoint,
        &creds,
        &[
            "--command-timeout=30m",
            "snapshot",
            "save",
            &file.display().to_string(),
        ],
    );
    assert!(
        save.status.success(),
        "{}",
        String::from_utf8_lossy(&save.stderr)
    );
    let save_secs = t0.elapsed().as_secs_f64();
    let rclone = std::process::Command::new("rclone")
        .args([
            "copyto",
            "--s3-provider=Other",
            &format!("--s3-endpoint={}", g.endpoint()),
            "--s3-region=garage",
            &format!("--s3-access-key-id={}", g.key_id),
            &format!("--s3-secret-access-key={}", g.secret),
            "--s3-force-path-style=true",
        ])
        .arg(&file)
        .arg(format!(":s3:{}/rclone/db", g.bucket))
        .env_remove("AWS_CA_BUNDLE")
        .output();
    let total_secs = t0.elapsed().as_secs_f64();
    let rclone_ok = rclone.as_ref().is_ok_and(|o| o.status.success());
    println!(
        "BENCH backup-to-garage db={mb}MiB charm={charm_secs:.1}s peak-rss={:.1}MiB | etcdctl-save={save_secs:.1}s +rclone={:.1}s (rclone ok: {rclone_ok}) | ratio={:.2}",
        rss_kb as f64 / 1024.0,
        total_secs - save_secs,
        charm_secs / total_secs
    );
    assert!(rss_kb <= 64 * 1024, "peak RSS {rss_kb} KiB > 64 MiB");
}

/// A tiny archive of our format (a fake db and a manifest) for store tests.
fn tiny_archive(unit: &str, revision: i64) -> (Vec<u8>, etcd_charm::snapshot::Manifest) {
    let manifest = etcd_charm::snapshot::ManifestFields {
        etcd_version: "3.5.1".into(),
        cluster_id: "a1".into(),
        member_id: "b2".into(),
        revision,
        key_count: 1,
        created: "2026-11-30T17:00:00Z".into(),
        source_unit: unit.into(),
    }
    .into_manifest("cd".repeat(32), 4);
    let json = manifest.to_json().unwrap();
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    for (name, data) in [("db", &b"dbdb"[..]), ("manifest.json", &json[..])] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o600);
        h.set_cksum();
        b.append_data(&mut h, name, data).unwrap();
    }
    (b.into_inner().unwrap().finish().unwrap(), manifest)
}

/// Two units upload the same tick's name (a leadership race) and write
/// their sidecars in the unlucky order: the loser's check finds the
/// archive replaced and rebuilds the sidecar from the archive that won.
#[test]
fn a_same_name_race_leaves_a_sidecar_that_describes_the_archive() {
    use etcd_charm::store::s3::SecretString;
    use etcd_charm::store::{BackupStore, S3Settings, S3Store, Sidecar, StoreError};
    let Some(g) = Garage::start("etcd-race") else {
        return;
    };
    let settings = S3Settings {
        bucket: g.bucket.clone(),
        path: "race".into(),
        endpoint: g.endpoint(),
        region: "garage".into(),
        uri_style: "path".into(),
        access_key: SecretString(g.key_id.clone()),
        secret_key: SecretString(g.secret.clone()),
        ..Default::default()
    };
    let store = |s: &S3Settings| BackupStore::S3(Box::new(S3Store::new(s.clone()).unwrap()));
    let a = store(&settings);
    let b = store(&settings);
    let name = "etcd-snapshot-2026-11-30-17.00.00.tar.gz";
    let upload = |s: &BackupStore, bytes: &[u8]| {
        s.put_archive::<_, StoreError>(name, |w| {
            w.write_all(bytes).unwrap();
            Ok(())
        })
    };
    let put = |s: &BackupStore, bytes: &[u8], m: etcd_charm::snapshot::Manifest| {
        upload(s, bytes).unwrap();
        Sidecar {
            name: name.into(),
            sha256: sha256sum_bytes(bytes),
            size: bytes.len() as u64,
            application: "etcd".into(),
            store: "s3".into(),
            manifest: m,
            verified: None,
        }
    };
    let (bytes_a, m_a) = tiny_archive("etcd/0", 10);
    let (bytes_b, m_b) = tiny_archive("etcd/1", 11);
    let side_a = put(&a, &bytes_a, m_a);
    let side_b = put(&b, &bytes_b, m_b.clone()); // B's upload completes last: it wins
    b.put_sidecar(&side_b).unwrap();
    assert_eq!(
        b.confirm_sidecar(&side_b).unwrap(),
        None,
        "B's archive is B's"
    );
    a.put_sidecar(&side_a).unwrap(); // A's late sidecar would lie...
    let fixed = a
        .confirm_sidecar(&side_a)
        .unwrap()
        .expect("A must see it lost");
    assert_eq!(fixed.sha256, side_b.sha256);
    assert_eq!(fixed.manifest, m_b);
    let (listed, _) = a.list("etcd").unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].sidecar.sha256, side_b.sha256);
    assert_eq!(g.get(&format!("race/{name}")), bytes_b);

    // A bucket that does not exist is named as such, with the fix.
    let mut missing = S3Settings {
        bucket: "no-such-bucket".into(),
        path: S3Settings::default().path,
        ..settings.clone()
    };
    let e = upload(&store(&missing), &bytes_a).unwrap_err().to_string();
    assert!(
        e.contains("s3 bucket \"no-such-bucket\" does not exist"),
        "{e}"
    );
    assert!(!e.contains(&g.secret));
    // Wrong credentials are named as such.
    missing.bucket = g.bucket.clone();
    missing.secret_key = SecretString("wrong".into());
    let e = store(&missing).list("etcd").unwrap_err().to_string();
    assert!(e.contains("refused the credentials"), "{e}");
}

/// Deploys etcd (3.4, or the `etcd` resource given), takes one backup into
/// the local store and one into Garage, changes the data, then restores
/// each by `backup-id=` (streamed from its store) and reads every key back.
/// An unknown ID fails naming the IDs there; with `attach`, a resource
/// attached too is not used, and the results say so.
fn restore_by_id_from_both_stores(resource: Option<&Path>, bucket: &str, attach: bool) {
    let Some(g) = Garage::start(bucket) else {
        return;
    };
    let m = Model::new();
    let mut args = vec![
        "deploy".to_string(),
        charm(),
        "--config".into(),
        "backup-schedule=off".into(),
    ];
    if let Some(r) = resource {
        args.extend(["--resource".into(), format!("etcd={}", r.display())]);
    }
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    sim_here(&m, &a).ok();
    let ep = kv::Conn::to(&m, "etcd/0");
    kv::fill(&ep, 150, 3000);
    let at_local = kv::digest(&ep);
    let out = run_action(&m, "etcd/0", "create-backup", &[], &[]);
    completed(&out);
    let local_id = result(&out, "backup.id").to_string();

    relate_garage(&m, &g, "etcd/restore", &g.secret);
    kv::put(&ep, "between", "in the s3 backup only");
    let at_s3 = kv::digest(&ep);
    let out = run_action(&m, "etcd/0", "create-backup", &[], &[]);
    completed(&out);
    assert_eq!(result(&out, "backup.store"), "s3");
    let s3_id = result(&out, "backup.id").to_string();
    kv::put(&ep, "later", "in no backup");
    if attach {
        // verify-backup through the bucket marks the sidecar there.
        let out = run_action(&m, "etcd/0", "verify-backup", &["backup-id=latest"], &[]);
        completed(&out);
        assert_eq!(result(&out, "verify.backup-id"), s3_id);
        assert_eq!(result(&out, "verify.marked"), "true");
        let sc: Value =
            serde_json::from_slice(&g.get(&format!("etcd/restore/{s3_id}.json"))).unwrap();
        assert_eq!(sc["verified"]["ok"], true, "{sc}");
        let listed = backups_json(&m, "etcd/0");
        let row = listed.iter().find(|r| r["id"] == s3_id.as_str()).unwrap();
        assert_eq!(row["verified"]["ok"], true, "{row}");
    }

    // An unknown ID: refused, naming what is there; nothing changed.
    let out = run_action(
        &m,
        "etcd/0",
        "restore",
        &["backup-id=etcd-snapshot-2000-01-01-00.00.00.tar.gz"],
        &[],
    );
    let msg = failure(&out);
    assert!(
        msg.contains(&s3_id) && msg.contains("Nothing was changed"),
        "{msg}"
    );
    assert_eq!(kv::read_prefix(&ep, "later").len(), 1);

    // From Garage (the current data saved first, as for a resource).
    let out = run_action(
        &m,
        "etcd/0",
        "restore",
        &[&format!("backup-id={s3_id}")],
        &[],
    );
    completed(&out);
    let from = result(&out, "restore.source.from");
    assert!(from.contains(&s3_id) && from.contains("s3://"), "{from}");
    assert_eq!(
        result(&out, "restore.source.sha256"),
        sha256sum_bytes(&g.get(&format!("etcd/restore/{s3_id}")))
    );
    let ep = kv::Conn::to(&m, "etcd/0");
    assert_eq!(kv::digest(&ep), at_s3);

    // From the local store; a resource attached too (the s3 archive) is
    // not what is restored.
    m.sim(&["config", "etcd", "backup-store=local"]).ok();
    if attach {
        let res = download(&m, &g, &format!("etcd/restore/{s3_id}"), "other.tar.gz");
        m.sim(&[
            "attach-resource",
            "etcd",
            &format!("snapshot={}", res.display()),
        ])
        .ok();
    }
    let out = run_action(
        &m,
        "etcd/0",
        "restore",
        &[&format!("backup-id={local_id}"), "skip-backup=true"],
        &[],
    );
    completed(&out);
    let from = result(&out, "restore.source.from");
    assert!(from.contains(&local_id), "{from}");
    assert_eq!(
        from.contains("the attached snapshot resource was not used"),
        attach,
        "{from}"
    );
    let ep = kv::Conn::to(&m, "etcd/0");
    assert_eq!(kv::digest(&ep), at_local);
}

fn sha256sum_bytes(b: &[u8]) -> String {
    let f = tempfile::NamedTempFile::new().unwrap();
    fs::write(f.path(), b).unwrap();
    sha256sum(f.path())
}

#[test]
fn restore_by_backup_id_from_garage_and_disk_on_etcd_34() {
    restore_by_id_from_both_stores(None, "etcd-restore-34", true);
}

#[test]
fn restore_by_backup_id_from_garage_and_disk_on_etcd_351() {
    let dir = tempfile::tempdir().unwrap();
    let res = util::etcd35_resource(dir.path());
    restore_by_id_from_both_stores(Some(&res), "etcd-restore-351", false);
}

#[test]
fn restore_by_backup_id_from_garage_and_disk_on_etcd_3530() {
    let dir = tempfile::tempdir().unwrap();
    let res = util::etcd3530_resource(dir.path());
    restore_by_id_from_both_stores(Some(&res), "etcd-restore-3530", false);
}
