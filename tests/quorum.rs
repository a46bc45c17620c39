//! End-to-end tests of the cluster operations that keep quorum (issue 13),
//! through the `juju-sim` CLI on real etcd: space alarms, rolling restarts,
//! member replacement and recovery from a lost quorum.

mod util;

use std::path::Path;

use util::cluster::{
    all_healthy_with, assert_all_vote, assert_healthy_with, assert_kept_everywhere,
    assert_numbered, become_healthy, deploy_healthy, deploy_units, kill9, put_numbered, statuses,
    update_status,
};
use util::garage::{relate_garage, Garage};
use util::{etcdctl_tls, Creds, Model};

const ETCDCTL_34: &str = "/usr/bin/etcdctl";

fn charm() -> String {
    util::charm_dir().display().to_string()
}

/// `juju run UNIT ACTION k=v…` (Juju 3): 1 when the task failed (its
/// `status`), and the unit's part of the output. Juju's `run` exits 1 only
/// when the dispatch exited non-zero; the charm fails an action with
/// `action-fail` and exits 0, so the exit code must say 0 then.
fn run(m: &Model, unit: &str, action: &str, params: &[&str]) -> (i32, serde_json::Value) {
    let mut args = vec!["run", unit, action, "--format=json", "--wait=10m"];
    args.extend_from_slice(params);
    let r = m.sim(&args);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| {
        panic!(
            "{action} on {unit}: not JSON ({e}):\n{}\n{}",
            r.stdout, r.stderr
        )
    });
    let task = v[unit].clone();
    let return_code = task["results"]["return-code"].as_i64().unwrap_or(-1);
    assert_eq!(
        r.code,
        i32::from(return_code >= 1),
        "{action} on {unit}: exit {} with return code {return_code}\n{task}",
        r.code
    );
    (i32::from(task["status"] != "completed"), task)
}

fn put(ctl: &Path, endpoint: &str, creds: &Creds, key: &str, value: &str) -> Result<(), String> {
    let out = etcdctl_tls(ctl, endpoint, creds, &["put", key, value]);
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn nospace_shows_in_status_and_its_advice_makes_writes_work_again() {
    let m = Model::new();
    // 16 MiB: bbolt grows the file by doubling up to 16 MiB, so a few
    // hundred 64 KiB puts reach it.
    let quota = 16 * 1024 * 1024;
    m.sim(&[
        "deploy",
        &charm(),
        "--config",
        &format!("quota-backend-bytes={quota}"),
    ])
    .ok();
    let conf = util::act::host_path(&m, "etcd/0", "/etc/etcd-charm/etcd.conf.yml");
    let text = std::fs::read_to_string(conf).unwrap();
    assert!(
        text.contains(&format!("quota-backend-bytes: {quota}")),
        "{text}"
    );
    let ctl = Path::new(ETCDCTL_34);
    let creds = m.credentials("etcd/0");
    let e0 = m.endpoint("etcd/0");
    put(ctl, &e0, &creds, "/keep/me", "yes").unwrap();
    // Overwrite one key until etcd refuses: history, not live data, fills
    // the backend, so compaction can free it.
    let big = "x".repeat(64 * 1024);
    let mut refused = None;
    for i in 0..2000 {
        if let Err(e) = put(ctl, &e0, &creds, "/fill", &format!("{i}{big}")) {
            refused = Some(e);
            break;
        }
    }
    let refused = refused.expect("etcd never refused a write under a 16 MiB quota");
    assert!(refused.contains("database space exceeded"), "{refused}");

    // alarm-list names the member and the alarm.
    let (code, out) = run(&m, "etcd/0", "alarm-list", &[]);
    assert_eq!(code, 0, "{out}");
    let alarms = &out["results"]["alarms"];
    assert_eq!(alarms["count"], "1", "{out}");
    assert_eq!(alarms["0"]["type"], "NOSPACE", "{out}");
    assert_eq!(alarms["0"]["member"], "etcd-0", "{out}");

    // update-status says so, and what to do.
    m.sim(&["run-hook", "etcd/0", "update-status"]).ok();
    let (cur, msg) = m.workload("etcd/0");
    assert_eq!(cur, "blocked", "{msg}\n{}", m.debug_log());
    for step in [
        "NOSPACE (etcd-0)",
        "compact",
        "defrag",
        "alarm-disarm",
        "quota-backend-bytes",
    ] {
        assert!(msg.contains(step), "{step} missing from: {msg}");
    }

    // Disarming first does not help: the database is still over quota.
    let (code, out) = run(&m, "etcd/0", "alarm-disarm", &[]);
    assert_ne!(code, 0, "{out}");
    assert!(
        out["message"]
            .as_str()
            .unwrap_or_default()
            .contains("still over quota-backend-bytes"),
        "{out}"
    );
    // and changed nothing: the alarm is still raised.
    let (_, out) = run(&m, "etcd/0", "alarm-list", &[]);
    assert_eq!(out["results"]["alarms"]["count"], "1", "{out}");

    // The advice, in order.
    let (code, out) = run(&m, "etcd/0", "compact", &["physical=true"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = run(&m, "etcd/0", "defrag", &[]);
    assert_eq!(code, 0, "{out}");
    let after: i64 = out["results"]["defrag"]["db-size-after"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(after < quota / 2, "{out}");
    let (code, out) = run(&m, "etcd/0", "alarm-disarm", &[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["results"]["disarmed"]["0"]["type"], "NOSPACE", "{out}");
    let (_, out) = run(&m, "etcd/0", "alarm-list", &[]);
    assert_eq!(out["results"]["alarms"]["count"], "0", "{out}");

    // Writes work again, and nothing was lost.
    put(ctl, &e0, &creds, "/after", "works").unwrap();
    assert_eq!(util::get(ctl, &e0, &creds, "/keep/me"), "yes");
    assert_eq!(util::get(ctl, &e0, &creds, "/after"), "works");
    m.sim(&["run-hook", "etcd/0", "update-status"]).ok();
    assert_healthy_with(&m, "etcd/0", 1);

    // A quota out of range is the operator's to fix: blocked, nothing restarted.
    m.sim(&["config", "etcd", "quota-backend-bytes=1000"]).ok();
    let (cur, msg) = m.workload("etcd/0");
    assert_eq!(cur, "blocked", "{msg}");
    assert!(msg.contains("quota-backend-bytes=1000"), "{msg}");
    assert_eq!(util::get(ctl, &e0, &creds, "/after"), "works");
}

/// A TLS client to `endpoints` with the packaged credentials.
async fn client_to(
    endpoints: &[String],
    creds: &Creds,
    timeout: std::time::Duration,
) -> Result<etcd_client::Client, etcd_client::Error> {
    use etcd_client::{Certificate, ConnectOptions, Identity, TlsOptions};
    let read = |p: std::path::PathBuf| std::fs::read(p).unwrap();
    let tls = TlsOptions::new()
        .ca_certificate(Certificate::from_pem(read(creds.ca())))
        .identity(Identity::from_pem(read(creds.cert()), read(creds.key())));
    let opts = ConnectOptions::new()
        .with_tls(tls)
        .with_connect_timeout(timeout)
        .with_timeout(timeout);
    etcd_client::Client::connect(endpoints, Some(opts)).await
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A writer putting `/w/NNNNNN` every ~50 ms through a client to every
/// endpoint, until stopped; returns the keys written and the failures.
struct Writer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: std::thread::JoinHandle<(Vec<String>, Vec<String>)>,
}

impl Writer {
    fn start(endpoints: Vec<String>, creds: Creds) -> Writer {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            rt().block_on(async {
                let t = std::time::Duration::from_secs(2);
                let mut c = client_to(&endpoints, &creds, t).await.unwrap();
                let (mut ok, mut failed) = (vec![], vec![]);
                let mut i = 0usize;
                while !flag.load(Ordering::Relaxed) {
                    let key = format!("/w/{i:06}");
                    // As etcd's own clientv3 does, a put that never left
                    // (the connection to a restarting member was refused)
                    // goes to another endpoint; anything else counts.
                    let mut attempt = 0;
                    loop {
                        attempt += 1;
                        let r = tokio::time::timeout(t, c.put(key.clone(), format!("v{i}"), None))
                            .await;
                        match r {
                            Ok(Ok(_)) => ok.push(key.clone()),
                            Ok(Err(e))
                                if attempt < 5 && e.to_string().contains("Connection refused") =>
                            {
                                continue
                            }
                            Ok(Err(e)) => failed.push(format!("{key}: {e}")),
                            Err(_) => failed.push(format!("{key}: timed out")),
                        }
                        break;
                    }
                    i += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                (ok, failed)
            })
        });
        Writer { stop, handle }
    }

    fn stop(self) -> (Vec<String>, Vec<String>) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.handle.join().unwrap()
    }
}

/// Samples every member's own answer (`Maintenance.Status`, which a
/// running member gives without raft) every ~200 ms, until stopped;
/// returns each round's down members that had more than one down, and
/// the number of rounds.
struct Sampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: std::thread::JoinHandle<(Vec<Vec<String>>, usize, usize)>,
}

impl Sampler {
    fn start(endpoints: Vec<String>, creds: Creds) -> Sampler {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            rt().block_on(async {
                let mut bad = vec![];
                let (mut rounds, mut any_down) = (0, 0);
                while !flag.load(Ordering::Relaxed) {
                    let mut set = tokio::task::JoinSet::new();
                    for ep in endpoints.clone() {
                        let creds = creds.clone();
                        set.spawn(async move {
                            let t = std::time::Duration::from_secs(2);
                            let up = tokio::time::timeout(t, async {
                                let mut c = client_to(std::slice::from_ref(&ep), &creds, t).await?;
                                c.status().await
                            })
                            .await;
                            match up {
                                Ok(Ok(_)) => None,
                                Ok(Err(e)) => Some(format!("{ep}: {e}")),
                                Err(_) => Some(format!("{ep}: timed out")),
                            }
                        });
                    }
                    let mut down = vec![];
                    while let Some(r) = set.join_next().await {
                        if let Some(d) = r.unwrap() {
                            down.push(d);
                        }
                    }
                    rounds += 1;
                    if !down.is_empty() {
                        any_down += 1;
                    }
                    if down.len() > 1 {
                        bad.push(down);
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                (bad, rounds, any_down)
            })
        });
        Sampler { stop, handle }
    }

    fn stop(self) -> (Vec<Vec<String>>, usize, usize) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.handle.join().unwrap()
    }
}

/// The PID of `unit`'s etcd (its command line names the unit's config).
fn etcd_pid(m: &Model, unit: &str) -> u32 {
    let conf = m.unit_root(unit).join("etc/etcd-charm/etcd.conf.yml");
    let pids = util::pids_mentioning(&conf.display().to_string());
    assert_eq!(pids.len(), 1, "{unit}: {pids:?}");
    pids[0]
}

/// Refused with `why`, and nothing was changed: the action failed and its
/// message says both. Returns the message.
fn refused(code: i32, out: &serde_json::Value, why: &str) -> String {
    assert_ne!(code, 0, "{out}");
    let msg = out["message"].as_str().unwrap_or_default().to_string();
    assert!(
        msg.contains(why) && msg.contains("Nothing was changed"),
        "{msg}"
    );
    msg
}

/// `unit`'s etcd killed and its backend overwritten with `byte`: a member
/// that cannot start again.
fn break_member(m: &Model, unit: &str, byte: u8) {
    kill9(etcd_pid(m, unit));
    let db = m
        .unit_root(unit)
        .join("var/lib/etcd-charm/data/member/snap/db");
    let len = std::fs::metadata(&db).unwrap().len() as usize;
    std::fs::write(&db, vec![byte; len]).unwrap();
}

/// `units`' machines gone for good: their etcd killed, their data
/// deleted, their units dropped without hooks (as when a machine is lost).
fn lose_machines(m: &Model, units: &[&str]) {
    for u in units {
        kill9(etcd_pid(m, u));
        std::fs::remove_dir_all(m.unit_root(u).join("var/lib/etcd-charm/data")).unwrap();
    }
    let mut args = vec!["remove-unit", "--force", "--no-wait"];
    args.extend_from_slice(units);
    m.sim(&args).ok();
}

/// What the writer and the sampler saw.
struct Load {
    written: Vec<String>,
    failed: Vec<String>,
    /// The sampler's rounds with more than one member down.
    bad: Vec<Vec<String>>,
    rounds: usize,
    /// The sampler's rounds with a member down.
    any_down: usize,
}

/// A second on, stops the writer and the sampler and prints what they
/// saw; then asserts the operation under load was `done`.
fn stop_load(writer: Writer, sampler: Sampler, done: bool, m: &Model) -> Load {
    std::thread::sleep(std::time::Duration::from_secs(1));
    let (written, failed) = writer.stop();
    let (bad, rounds, any_down) = sampler.stop();
    eprintln!(
        "writes: {} ok, {} failed {failed:?}; health rounds: {rounds}, {any_down} with a member down",
        written.len(),
        failed.len()
    );
    assert!(done, "{}\n{}", statuses(m), m.debug_log());
    Load {
        written,
        failed,
        bad,
        rounds,
        any_down,
    }
}

#[test]
fn a_config_change_restarts_five_members_one_at_a_time() {
    let m = Model::new();
    let units = ["etcd/0", "etcd/1", "etcd/2", "etcd/3", "etcd/4"];
    deploy_healthy(&m, 5, &[]);
    let creds = m.credentials("etcd/0");
    let endpoints: Vec<String> = units.iter().map(|u| m.endpoint(u)).collect();
    let before: Vec<u32> = units.iter().map(|u| etcd_pid(&m, u)).collect();

    let sampler = Sampler::start(endpoints.clone(), creds.clone());
    let writer = Writer::start(endpoints.clone(), creds.clone());
    std::thread::sleep(std::time::Duration::from_secs(1));
    let quota = 4u64 * 1024 * 1024 * 1024;
    m.sim(&["config", "etcd", &format!("quota-backend-bytes={quota}")])
        .ok();
    // The lock passes on through relation hooks; update-status finishes
    // whatever a hook left waiting.
    let done = become_healthy(&m, &units, 5, 240);
    let Load {
        written,
        failed,
        bad,
        rounds,
        any_down,
    } = stop_load(writer, sampler, done, &m);

    // Every unit restarted (a new etcd process) with the new quota.
    for (u, old) in units.iter().zip(&before) {
        let conf =
            std::fs::read_to_string(m.unit_root(u).join("etc/etcd-charm/etcd.conf.yml")).unwrap();
        assert!(
            conf.contains(&format!("quota-backend-bytes: {quota}")),
            "{u}"
        );
        assert_ne!(etcd_pid(&m, u), *old, "{u} was not restarted");
    }
    let log = m.debug_log();
    for u in units {
        assert!(
            log.contains(&format!("granted the rolling-restart lock to {u}")),
            "{u} never held the lock:\n{log}"
        );
    }
    assert!(
        log.contains("Waiting for the rolling-restart lock ("),
        "no unit showed it waiting its turn:\n{log}"
    );
    assert!(
        any_down >= 5,
        "the sampler never saw a restart ({any_down} rounds with a member down of {rounds})"
    );
    assert!(bad.is_empty(), "two members down at once: {bad:?}");
    assert!(
        failed.len() <= 3,
        "{} writes failed: {failed:?}",
        failed.len()
    );
    assert!(written.len() > 50, "{}", written.len());
    // Every key written is kept, on every member.
    let ctl = Path::new(ETCDCTL_34);
    assert_kept_everywhere(ctl, &endpoints, &creds, "/w/", &written);
}

/// (name, id) of every member, sorted by name.
fn members(ctl: &Path, endpoint: &str, creds: &Creds) -> Vec<(String, String)> {
    let mut m: Vec<(String, String)> = util::cluster::member_list(ctl, endpoint, creds)
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap_or_default().to_string(),
                format!("{:x}", m["ID"].as_u64().unwrap_or_default()),
            )
        })
        .collect();
    m.sort();
    m
}

/// The names of the voting members, sorted.
fn voters(ctl: &Path, endpoint: &str, creds: &Creds) -> Vec<String> {
    let mut names: Vec<String> = util::cluster::member_list(ctl, endpoint, creds)
        .iter()
        .filter(|m| m["isLearner"].as_bool() != Some(true))
        .map(|m| m["name"].as_str().unwrap_or_default().to_string())
        .collect();
    names.sort();
    names
}

/// Three healthy units of `etcd`.
fn three_units(m: &Model) -> [&'static str; 3] {
    deploy_healthy(m, 3, &[]);
    ["etcd/0", "etcd/1", "etcd/2"]
}

#[test]
fn replace_member_brings_back_a_member_whose_data_was_deleted() {
    let m = Model::new();
    let units = three_units(&m);
    let ctl = Path::new(ETCDCTL_34);
    let creds = m.credentials("etcd/0");
    let e0 = m.endpoint("etcd/0");
    put_numbered(ctl, &e0, &creds, "/r/", 50);
    let before = members(ctl, &e0, &creds);
    assert_eq!(before.len(), 3);

    // A healthy member is refused, and nothing changes.
    let pid1 = etcd_pid(&m, "etcd/1");
    let (code, out) = run(&m, "etcd/1", "replace-member", &[]);
    let msg = refused(code, &out, "is healthy");
    assert!(msg.contains("force=true"), "{msg}");
    assert_eq!(etcd_pid(&m, "etcd/1"), pid1);
    assert_eq!(members(ctl, &e0, &creds), before);

    // With etcd/0 down, replacing etcd/1 (even forced) would leave one of
    // three voters: refused, and nothing changes on etcd/1.
    let data1 = m.unit_root("etcd/1").join("var/lib/etcd-charm/data");
    kill9(etcd_pid(&m, "etcd/0"));
    let (code, out) = run(&m, "etcd/1", "replace-member", &["force=true"]);
    refused(code, &out, "would cost quorum");
    assert_eq!(etcd_pid(&m, "etcd/1"), pid1);
    assert!(data1.join("member").exists());
    let lib1 = m.unit_root("etcd/1").join("var/lib/etcd-charm");
    let aside: Vec<_> = std::fs::read_dir(&lib1)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("data.replaced"))
        .collect();
    assert!(aside.is_empty(), "{aside:?}");
    // etcd/0 comes back (update-status starts a dead etcd).
    m.sim(&["run-hook", "etcd/0", "update-status"]).ok();
    assert!(util::eventually(30, || members(ctl, &e0, &creds) == before));

    // etcd/2's etcd stops and its data is lost.
    kill9(etcd_pid(&m, "etcd/2"));
    let data2 = m.unit_root("etcd/2").join("var/lib/etcd-charm/data");
    std::fs::remove_dir_all(&data2).unwrap();

    // Now it is replaced, and copies every key.
    let (code, out) = run(&m, "etcd/2", "replace-member", &[]);
    assert_eq!(code, 0, "{out}\n{}", m.debug_log());
    let r = &out["results"]["replace"];
    assert_eq!(r["member"], "etcd-2", "{out}");
    assert_eq!(r["members"], "3", "{out}");
    let after = members(ctl, &e0, &creds);
    assert_eq!(after.len(), 3);
    let names: Vec<&str> = after.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["etcd-0", "etcd-1", "etcd-2"]);
    assert_ne!(after[2].1, before[2].1, "etcd-2 kept its old member id");
    assert_eq!(r["new-member-id"], after[2].1.as_str(), "{out}");
    let e2 = m.endpoint("etcd/2");
    assert_numbered(ctl, &e2, &creds, "/r/", 50);
    put(ctl, &e2, &creds, "/r/after", "yes").unwrap();
    // Voting, not a learner; the old data was deleted once it was healthy.
    assert_all_vote(ctl, &e0, &creds);
    assert!(data2.join("member").exists());
    update_status(&m, &units, 1);
    for u in units {
        assert_healthy_with(&m, u, 3);
    }
}

#[test]
fn recover_quorum_from_the_last_survivor_then_scale_back_to_three() {
    use std::os::unix::fs::MetadataExt;
    let m = Model::new();
    three_units(&m);
    let ctl = Path::new(ETCDCTL_34);
    let creds = m.credentials("etcd/0");
    let e0 = m.endpoint("etcd/0");
    put_numbered(ctl, &e0, &creds, "/q/", 30);
    let backups = m.unit_root("etcd/0").join("home/ubuntu/etcd-snapshots");
    let list = |d: &Path| -> Vec<String> {
        std::fs::read_dir(d)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };

    // While quorum holds: refused, nothing changed.
    let pid0 = etcd_pid(&m, "etcd/0");
    let (code, out) = run(&m, "etcd/0", "recover-quorum", &[]);
    refused(code, &out, "has quorum");
    assert_eq!(etcd_pid(&m, "etcd/0"), pid0);
    assert_eq!(members(ctl, &e0, &creds).len(), 3);
    assert!(list(&backups).is_empty(), "{:?}", list(&backups));

    // Two machines gone for good.
    lose_machines(&m, &["etcd/1", "etcd/2"]);
    m.sim(&["run-hook", "etcd/0", "update-status"]).ok();
    let (cur, msg) = m.workload("etcd/0");
    assert_eq!(cur, "blocked", "{msg}\n{}", m.debug_log());
    assert!(
        msg.contains("lost quorum") && msg.contains("recover-quorum"),
        "{msg}"
    );

    let (code, out) = run(&m, "etcd/0", "recover-quorum", &[]);
    assert_eq!(code, 0, "{out}\n{}", m.debug_log());
    let r = &out["results"];
    assert_eq!(r["recover"]["members"], "1", "{out}");
    assert_eq!(r["recover"]["removed"], "etcd-1,etcd-2", "{out}");
    let keys: u64 = r["recover"]["keys"].as_str().unwrap().parse().unwrap();
    assert_eq!(keys, 30, "{out}");
    let path = r["backup"]["path"].as_str().unwrap();
    let host = m.unit_root("etcd/0").join(path.trim_start_matches('/'));
    let meta = std::fs::metadata(&host).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o600);
    assert!(meta.len() > 0);
    assert_eq!(voters(ctl, &e0, &creds), ["etcd-0"]);
    assert_eq!(members(ctl, &e0, &creds).len(), 1);
    assert_numbered(ctl, &e0, &creds, "/q/", 30);
    put(ctl, &e0, &creds, "/q/after", "yes").unwrap();
    m.sim(&["run-hook", "etcd/0", "update-status"]).ok();
    assert_healthy_with(&m, "etcd/0", 1);

    // Back to three.
    m.sim(&["add-unit", "etcd", "-n", "2"]).ok();
    let units = ["etcd/0", "etcd/3", "etcd/4"];
    let healthy = become_healthy(&m, &units, 3, 120);
    assert!(healthy, "{}\n{}", statuses(&m), m.debug_log());
    let names: Vec<String> = members(ctl, &e0, &creds)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, ["etcd-0", "etcd-3", "etcd-4"]);
    let e4 = m.endpoint("etcd/4");
    assert_numbered(ctl, &e4, &creds, "/q/", 30);
    assert_eq!(util::get(ctl, &e4, &creds, "/q/after"), "yes");
}

/// etcd's `/version` of `endpoint`: (server, cluster).
fn versions(endpoint: &str, creds: &Creds) -> (String, String) {
    let out = std::process::Command::new("curl")
        .args(["-s", "--max-time", "5", "--cacert"])
        .arg(creds.ca())
        .arg("--cert")
        .arg(creds.cert())
        .arg("--key")
        .arg(creds.key())
        .arg(format!("{endpoint}/version"))
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    (
        v["etcdserver"].as_str().unwrap_or_default().to_string(),
        v["etcdcluster"].as_str().unwrap_or_default().to_string(),
    )
}

/// The etcd binary `unit`'s systemd unit file starts.
fn unit_etcd(m: &Model, unit: &str) -> std::path::PathBuf {
    let text =
        std::fs::read_to_string(m.unit_root(unit).join("etc/systemd/system/etcd.service")).unwrap();
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    line.split_whitespace().next().unwrap().into()
}

/// The etcd builds in `unit`'s bin directory (names of its entries).
fn builds(m: &Model, unit: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(m.unit_root(unit).join("var/lib/etcd-charm/bin"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A release-shaped tarball of the Debian etcd 3.4 binaries.
fn etcd34_resource(into: &Path) -> std::path::PathBuf {
    let out = into.join("etcd-v3.4.23-linux-amd64.tar.gz");
    let top = "etcd-v3.4.23-linux-amd64";
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
        std::fs::File::create(&out).unwrap(),
        flate2::Compression::fast(),
    ));
    for name in ["etcd", "etcdctl"] {
        b.append_path_with_name(format!("/usr/bin/{name}"), format!("{top}/{name}"))
            .unwrap();
    }
    b.into_inner().unwrap().finish().unwrap();
    out
}

#[test]
fn attaching_etcd_3530_upgrades_a_34_cluster_member_by_member_with_a_pause() {
    let m = Model::new();
    let units = ["etcd/0", "etcd/1", "etcd/2"];
    deploy_units(
        &m,
        "etcd",
        3,
        &["--config", "pause-after-unit-upgrade=first"],
    );
    let creds = m.credentials("etcd/0");
    let endpoints: Vec<String> = units.iter().map(|u| m.endpoint(u)).collect();
    for ep in &endpoints {
        assert_eq!(versions(ep, &creds).0, "3.4.23");
    }
    let sampler = Sampler::start(endpoints.clone(), creds.clone());
    let writer = Writer::start(endpoints.clone(), creds.clone());
    let res = util::etcd3530_resource(m.scratch.path());
    m.sim(&[
        "attach-resource",
        "etcd",
        &format!("etcd={}", res.display()),
    ])
    .ok();
    update_status(&m, &units, 2);
    // Paused after the first unit: one member runs 3.5.30, the others wait.
    let running: Vec<String> = endpoints.iter().map(|ep| versions(ep, &creds).0).collect();
    assert_eq!(
        running.iter().filter(|v| *v == "3.5.30").count(),
        1,
        "{running:?}\n{}\n{}",
        statuses(&m),
        m.debug_log()
    );
    let st = statuses(&m);
    assert!(st.contains("The upgrade is paused after"), "{st}");
    assert!(st.contains("resume-upgrade"), "{st}");
    let (code, out) = run(&m, "etcd/0", "resume-upgrade", &[]);
    assert_eq!(code, 0, "{out}");
    let done = util::eventually(240, || {
        update_status(&m, &units, 1);
        endpoints
            .iter()
            .all(|ep| versions(ep, &creds).0 == "3.5.30")
            && all_healthy_with(&m, &units, 3)
    });
    let Load {
        written,
        failed,
        bad,
        any_down,
        ..
    } = stop_load(writer, sampler, done, &m);
    // The cluster version follows once every member runs 3.5.
    assert!(util::eventually(30, || versions(&endpoints[0], &creds)
        .1
        .starts_with("3.5")));
    assert!(bad.is_empty(), "two members down at once: {bad:?}");
    assert!(failed.len() <= 3, "{failed:?}");
    assert!(any_down >= 3, "the sampler never saw the restarts");
    let ctl = util::etcd35_dir().join("etcdctl");
    assert_kept_everywhere(&ctl, &endpoints, &creds, "/w/", &written);
    // Each unit saved its data before it upgraded, and said where.
    let log = m.debug_log();
    for u in units {
        let dir = m.unit_root(u).join("home/ubuntu/etcd-snapshots");
        let backups: Vec<String> = std::fs::read_dir(&dir)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with("etcd-backup-"))
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(backups.len(), 1, "{u}: {backups:?}");
        assert!(log.contains("saved this member's data before the upgrade to /home/ubuntu/etcd-snapshots/etcd-backup-"));
    }

    // Back to 3.4 would downgrade the cluster: refused, nothing changed.
    let pids: Vec<u32> = units.iter().map(|u| etcd_pid(&m, u)).collect();
    let old = etcd34_resource(m.scratch.path());
    m.sim(&[
        "attach-resource",
        "etcd",
        &format!("etcd={}", old.display()),
    ])
    .ok();
    for u in units {
        let (cur, msg) = m.workload(u);
        assert_eq!(cur, "blocked", "{u}: {msg}");
        assert!(
            msg.contains("downgrade") && msg.contains("Nothing was changed"),
            "{msg}"
        );
    }
    for ep in &endpoints {
        assert_eq!(versions(ep, &creds).0, "3.5.30");
    }
    let after: Vec<u32> = units.iter().map(|u| etcd_pid(&m, u)).collect();
    assert_eq!(pids, after);
    for u in units {
        // The unit runs its 3.5.30 build; the refused 3.4 left nothing.
        let etcd = unit_etcd(&m, u);
        let bin = m.unit_root(u).join("var/lib/etcd-charm/bin");
        assert!(etcd.starts_with(&bin), "{u}: {}", etcd.display());
        assert_eq!(std::fs::read_dir(&bin).unwrap().count(), 1, "{u}");
        let out = std::process::Command::new(&etcd)
            .arg("--version")
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("3.5.30"),
            "{u}"
        );
    }
}

/// A member whose turn in a paused upgrade has not come yet dies: started
/// again, it runs the version it ran (not the attached one, out of order
/// and without its backup); once resumed, it upgrades in its turn.
#[test]
fn a_member_that_dies_before_its_upgrade_turn_comes_back_on_its_old_version() {
    let m = Model::new();
    let units = ["etcd/0", "etcd/1", "etcd/2"];
    let r34 = etcd34_resource(m.scratch.path());
    deploy_units(
        &m,
        "etcd",
        3,
        &[
            "--resource",
            &format!("etcd={}", r34.display()),
            "--config",
            "pause-after-unit-upgrade=first",
        ],
    );
    let creds = m.credentials("etcd/0");
    let endpoints: Vec<String> = units.iter().map(|u| m.endpoint(u)).collect();
    put_numbered(Path::new(ETCDCTL_34), &endpoints[0], &creds, "/k/", 20);
    let res = util::etcd3530_resource(m.scratch.path());
    m.sim(&[
        "attach-resource",
        "etcd",
        &format!("etcd={}", res.display()),
    ])
    .ok();
    update_status(&m, &units, 2);
    let running: Vec<String> = endpoints.iter().map(|ep| versions(ep, &creds).0).collect();
    assert_eq!(
        running.iter().filter(|v| *v == "3.5.30").count(),
        1,
        "{running:?}\n{}",
        statuses(&m)
    );
    // A member that has not had its turn dies, and a hook starts it again.
    let i = running.iter().position(|v| v == "3.4.23").unwrap();
    let (waiting, ep) = (units[i], &endpoints[i]);
    kill9(etcd_pid(&m, waiting));
    m.sim(&["run-hook", waiting, "update-status"]).ok();
    assert!(
        util::eventually(30, || versions(ep, &creds).0 == "3.4.23"),
        "{waiting} did not come back on 3.4.23: {:?}\n{}\n{}",
        versions(ep, &creds),
        statuses(&m),
        m.debug_log()
    );
    let (_, msg) = m.workload(waiting);
    assert!(msg.contains("paused"), "{waiting}: {msg}");
    // Both builds are on disk; the unit file still names the old one.
    let two = builds(&m, waiting);
    assert_eq!(two.len(), 2, "{two:?}");
    assert!(unit_etcd(&m, waiting)
        .parent()
        .unwrap()
        .ends_with(two.iter().find(|b| b.starts_with("3.4.23-")).unwrap()));

    let (code, out) = run(&m, "etcd/0", "resume-upgrade", &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        util::eventually(240, || {
            update_status(&m, &units, 1);
            endpoints
                .iter()
                .all(|ep| versions(ep, &creds).0 == "3.5.30")
                && all_healthy_with(&m, &units, 3)
        }),
        "{}\n{}",
        statuses(&m),
        m.debug_log()
    );
    let ctl = util::etcd3530_dir().join("etcdctl");
    for ep in &endpoints {
        assert_numbered(&ctl, ep, &creds, "/k/", 20);
    }
    for u in units {
        // It upgraded in its turn, after its backup; the 3.4 build is gone.
        let backups = std::fs::read_dir(m.unit_root(u).join("home/ubuntu/etcd-snapshots"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("etcd-backup-"))
            .count();
        assert_eq!(backups, 1, "{u}");
        let left = builds(&m, u);
        assert!(
            left.len() == 1 && left[0].starts_with("3.5.30-"),
            "{u}: {left:?}"
        );
        assert!(unit_etcd(&m, u).starts_with(m.unit_root(u)));
    }
}

#[test]
fn a_member_killed_with_its_data_corrupted_is_replaced_automatically() {
    let m = Model::new();
    let units = ["etcd/0", "etcd/1", "etcd/2"];
    // update-status every 10 s, as Juju fires it every 5 minutes.
    util::act::sim_env(
        &m,
        &[
            "deploy",
            &charm(),
            "-n",
            "3",
            "--config",
            "failed-member-timeout=20s",
        ],
        &[("JUJU_SIM_UPDATE_STATUS_INTERVAL", "10s")],
    )
    .ok();
    update_status(&m, &units, 1);
    let ctl = Path::new(ETCDCTL_34);
    let creds = m.credentials("etcd/0");
    let e0 = m.endpoint("etcd/0");
    put_numbered(ctl, &e0, &creds, "/a/", 40);
    let before = members(ctl, &e0, &creds);

    // etcd/2's etcd killed and its backend overwritten with garbage.
    break_member(&m, "etcd/2", 0xA5);

    // Left alone: update-status keeps firing, and the member is replaced
    // within the timeout plus a minute.
    let start = std::time::Instant::now();
    let healthy = util::eventually(20 + 60, || {
        let log = m.debug_log();
        log.contains("replaced this unit's failed member") && all_healthy_with(&m, &units, 3)
    });
    let took = start.elapsed();
    assert!(healthy, "{}\n{}", statuses(&m), m.debug_log());
    m.settle();
    eprintln!("replaced and healthy after {took:?}");
    let log = m.debug_log();
    assert!(
        log.contains("replacing etcd/2's member etcd-2: it has failed since"),
        "{log}"
    );
    assert!(log.contains("replaced this unit's failed member"), "{log}");
    let after = members(ctl, &e0, &creds);
    assert_eq!(after.len(), 3);
    assert_ne!(after[2].1, before[2].1, "etcd-2 was not replaced");
    let e2 = m.endpoint("etcd/2");
    assert_numbered(ctl, &e2, &creds, "/a/", 40);
    // Only that one was replaced.
    assert_eq!(after[0], before[0]);
    assert_eq!(after[1], before[1]);
}

#[test]
fn units_left_behind_by_recover_quorum_join_again_as_new_members() {
    let m = Model::new();
    let units = three_units(&m);
    let ctl = Path::new(ETCDCTL_34);
    let creds = m.credentials("etcd/0");
    let e0 = m.endpoint("etcd/0");
    put_numbered(ctl, &e0, &creds, "/j/", 20);
    let before = members(ctl, &e0, &creds);
    // Two members broken for good (killed, their backends overwritten),
    // but their units are still in the model.
    for u in ["etcd/1", "etcd/2"] {
        break_member(&m, u, 0x5A);
    }
    let (code, out) = run(&m, "etcd/0", "recover-quorum", &[]);
    assert_eq!(code, 0, "{out}\n{}", m.debug_log());
    assert_eq!(
        out["results"]["recover"]["removed"], "etcd-1,etcd-2",
        "{out}"
    );
    // They set their old data aside and join the recovered cluster afresh.
    let back = become_healthy(&m, &units, 3, 180);
    assert!(back, "{}\n{}", statuses(&m), m.debug_log());
    let after = members(ctl, &e0, &creds);
    let names: Vec<&str> = after.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["etcd-0", "etcd-1", "etcd-2"]);
    assert_eq!(after[0], before[0]);
    assert_ne!(after[1].1, before[1].1);
    assert_ne!(after[2].1, before[2].1);
    assert_eq!(voters(ctl, &e0, &creds), ["etcd-0", "etcd-1", "etcd-2"]);
    for u in ["etcd/1", "etcd/2"] {
        assert_numbered(ctl, &m.endpoint(u), &creds, "/j/", 20);
        let kept: Vec<String> = std::fs::read_dir(m.unit_root(u).join("var/lib/etcd-charm"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("data.pre-recovery-"))
            .collect();
        assert_eq!(kept.len(), 1, "{u}: the old data was not kept aside");
    }
}

#[test]
fn no_member_restarts_while_another_is_down() {
    let m = Model::new();
    let units = three_units(&m);
    // etcd/2 broken (killed, its backend overwritten): it cannot start.
    break_member(&m, "etcd/2", 0x3C);
    let pids: Vec<u32> = ["etcd/0", "etcd/1"]
        .iter()
        .map(|u| etcd_pid(&m, u))
        .collect();
    m.sim(&["config", "etcd", "heartbeat_interval=150"]).ok();
    update_status(&m, &units, 1);
    // The one holding the lock waits for etcd-2; nobody restarts.
    let st = statuses(&m);
    assert!(
        st.contains("Holding the rolling-restart lock; waiting for etcd-2 to be healthy"),
        "{st}\n{}",
        m.debug_log()
    );
    assert!(
        st.contains("Waiting for the rolling-restart lock (1 ahead)"),
        "{st}"
    );
    let now: Vec<u32> = ["etcd/0", "etcd/1"]
        .iter()
        .map(|u| etcd_pid(&m, u))
        .collect();
    assert_eq!(pids, now, "a member restarted while etcd-2 was down");
    for u in ["etcd/0", "etcd/1"] {
        let conf =
            std::fs::read_to_string(m.unit_root(u).join("etc/etcd-charm/etcd.conf.yml")).unwrap();
        assert!(
            conf.contains("heartbeat-interval: 100"),
            "{u} got its new config before its turn"
        );
    }
}

/// Every key of the cluster, through `endpoint`.
fn all_keys(ctl: &Path, endpoint: &str, creds: &Creds) -> Vec<String> {
    let out = etcdctl_tls(
        ctl,
        endpoint,
        creds,
        &["get", "", "--from-key", "--keys-only"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut keys: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    keys.sort();
    keys
}

/// The cluster ID `endpoint` reports, in hex (as the results give it).
fn cluster_id(ctl: &Path, endpoint: &str, creds: &Creds) -> String {
    let out = etcdctl_tls(ctl, endpoint, creds, &["endpoint", "status", "-w", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = v[0]["Status"]["header"]["cluster_id"]
        .as_u64()
        .unwrap_or_else(|| panic!("no cluster_id in {v}"));
    format!("{id:x}")
}

/// `recover-quorum from-backup=latest` on a three-unit cluster that lost
/// two machines: the backup is in the local store (on the surviving unit)
/// or, with `garage`, in S3; etcd is 3.4.23 or, with `etcd3530`, 3.5.30
/// (its etcdutl bumps the revision). Refused while quorum holds and for an
/// unknown backup; a failure after the swap rolls back; then a healthy
/// one-member cluster with a new ID serves exactly the backup's keys, and
/// the old data is kept aside.
fn recover_from_the_latest_backup(etcd3530: bool, garage: Option<&Garage>) {
    let m = Model::new();
    let mut extra = vec!["--config".to_string(), "backup-schedule=off".to_string()];
    let (ctl, version) = if etcd3530 {
        let res = util::etcd3530_resource(m.scratch.path());
        extra.extend(["--resource".to_string(), format!("etcd={}", res.display())]);
        (util::etcd3530_dir().join("etcdctl"), "3.5.30")
    } else {
        (Path::new(ETCDCTL_34).to_path_buf(), "3.4.23")
    };
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    deploy_units(&m, "etcd", 3, &extra);
    let ctl = ctl.as_path();
    let creds = m.credentials("etcd/0");
    let e0 = m.endpoint("etcd/0");
    assert_eq!(versions(&e0, &creds).0, version);
    put_numbered(ctl, &e0, &creds, "/b/", 20);
    let backed_up = all_keys(ctl, &e0, &creds);
    // The local store: the backup is on the unit that will survive. S3:
    // in the bucket (relating it makes it the store).
    if let Some(g) = garage {
        relate_garage(&m, g, "etcd/recover", &g.secret);
    }
    let (code, out) = run(&m, "etcd/0", "create-backup", &[]);
    assert_eq!(code, 0, "{out}\n{}", m.debug_log());
    let id = out["results"]["backup"]["id"].as_str().unwrap().to_string();
    let location = out["results"]["backup"]["location"]
        .as_str()
        .unwrap()
        .to_string();
    match garage {
        Some(g) => {
            assert_eq!(location, format!("s3://{}/etcd/recover/{id}", g.bucket));
            let keys: Vec<String> = g.list("etcd/recover").into_iter().map(|(k, _)| k).collect();
            assert!(keys.contains(&format!("etcd/recover/{id}")), "{keys:?}");
        }
        None => assert_eq!(location, format!("/var/lib/etcd-charm/backups/{id}")),
    }
    for i in 0..10 {
        put(ctl, &e0, &creds, &format!("/late/{i}"), "after the backup").unwrap();
    }
    assert_eq!(all_keys(ctl, &e0, &creds).len(), backed_up.len() + 10);

    // While quorum holds: refused, nothing changed.
    let pid0 = etcd_pid(&m, "etcd/0");
    let (code, out) = run(&m, "etcd/0", "recover-quorum", &["from-backup=latest"]);
    refused(code, &out, "has quorum");
    assert_eq!(etcd_pid(&m, "etcd/0"), pid0);
    assert_eq!(members(ctl, &e0, &creds).len(), 3);
    assert_eq!(all_keys(ctl, &e0, &creds).len(), backed_up.len() + 10);

    let old_cluster = cluster_id(ctl, &e0, &creds);

    // Two machines gone for good.
    lose_machines(&m, &["etcd/1", "etcd/2"]);
    let state_dir = m.unit_root("etcd/0").join("var/lib/etcd-charm");
    let kept = || -> Vec<String> {
        std::fs::read_dir(&state_dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("data.pre-"))
            .collect()
    };
    // etcd without quorum serves no reads: the old data is told by its
    // db file, which a rollback moves back, never rewrites.
    let db_inode = || {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(state_dir.join("data/member/snap/db"))
            .map(|m| m.ino())
            .ok()
    };

    // An unknown backup: refused, nothing changed.
    let pid0 = etcd_pid(&m, "etcd/0");
    let (code, out) = run(
        &m,
        "etcd/0",
        "recover-quorum",
        &["from-backup=etcd-snapshot-2000-01-01-00.00.00.tar.gz"],
    );
    refused(code, &out, &id);
    assert_eq!(etcd_pid(&m, "etcd/0"), pid0);

    let old_db = db_inode();
    assert!(old_db.is_some());
    // A failure after the swap (the restored db cut short, so etcd cannot
    // start on it) puts the old data back.
    let out = util::act::run_action(
        &m,
        "etcd/0",
        "recover-quorum",
        &["from-backup=latest"],
        &[("ETCD_CHARM_FAILPOINTS", "restore-after-swap=corrupt")],
    );
    assert_eq!(out["status"], "failed", "{out:?}");
    let msg = out["message"].as_str().unwrap_or_default().to_string();
    assert!(msg.contains("was rolled back"), "{msg}");
    assert!(kept().is_empty(), "{:?}", kept());
    assert!(!state_dir.join("restore.json").exists());
    assert_eq!(db_inode(), old_db, "the old data is not back");
    etcd_pid(&m, "etcd/0");

    let (code, out) = run(&m, "etcd/0", "recover-quorum", &["from-backup=latest"]);
    assert_eq!(code, 0, "{out}\n{}", m.debug_log());
    let r = &out["results"]["recover"];
    assert_eq!(r["backup"]["id"], id.as_str(), "{out}");
    let store = if garage.is_some() { "s3" } else { "local" };
    assert_eq!(r["backup"]["store"], store, "{out}");
    assert_eq!(r["backup"]["location"], location.as_str(), "{out}");
    assert_eq!(
        r["backup"]["keys"],
        backed_up.len().to_string().as_str(),
        "{out}"
    );
    assert_eq!(r["keys"], backed_up.len().to_string().as_str(), "{out}");
    assert_eq!(r["removed"], "etcd-1,etcd-2", "{out}");
    // A new cluster, as etcd itself reports. (previous-cluster-id is in
    // the results only when this unit's etcd still answered; after the
    // rollback above it restarted without quorum and serves nothing.)
    assert_ne!(r["cluster-id"], old_cluster.as_str(), "{out}");
    if let Some(prev) = r["previous-cluster-id"].as_str() {
        assert_eq!(prev, old_cluster, "{out}");
    }
    // etcd 3.5.30's etcdutl moves the revision past any a client saw.
    let bump = r["revision-bump"].as_str().unwrap_or_default();
    if etcd3530 {
        assert_eq!(bump, "1000000000", "{out}");
    } else {
        assert_eq!(bump, "unavailable with etcd 3.4.23", "{out}");
    }
    // The old data is kept where the results say.
    let old = r["old-data"].as_str().unwrap();
    let old_host = m.unit_root("etcd/0").join(old.trim_start_matches('/'));
    assert!(
        old_host.join("member/snap/db").is_file(),
        "{}",
        old_host.display()
    );
    assert_eq!(kept(), [old.rsplit('/').next().unwrap()]);
    {
        use std::os::unix::fs::MetadataExt;
        let ino = std::fs::metadata(old_host.join("member/snap/db"))
            .unwrap()
            .ino();
        assert_eq!(Some(ino), old_db, "the kept data is not the old data");
    }

    // A healthy one-member cluster with exactly the backup's keys.
    assert_eq!(voters(ctl, &e0, &creds), ["etcd-0"]);
    assert_eq!(members(ctl, &e0, &creds).len(), 1);
    assert_eq!(
        cluster_id(ctl, &e0, &creds),
        r["cluster-id"].as_str().unwrap()
    );
    assert_eq!(all_keys(ctl, &e0, &creds), backed_up);
    assert_numbered(ctl, &e0, &creds, "/b/", 20);
    put(ctl, &e0, &creds, "/b/after", "yes").unwrap();
    m.sim(&["run-hook", "etcd/0", "update-status"]).ok();
    let (cur, msg) = m.workload("etcd/0");
    assert_eq!(cur, "active", "{msg}\n{}", m.debug_log());
    assert!(msg.starts_with("Healthy with 1 known peer"), "{msg}");
    assert_eq!(versions(&e0, &creds).0, version);
}

#[test]
fn recover_quorum_from_the_latest_backup() {
    recover_from_the_latest_backup(false, None);
}

/// The same recovery on etcd 3.5.30, from a backup in S3 (Garage).
#[test]
fn recover_quorum_from_the_latest_backup_in_s3_on_etcd_3530() {
    let Some(g) = Garage::start("etcd-recover") else {
        return;
    };
    recover_from_the_latest_backup(true, Some(&g));
}
