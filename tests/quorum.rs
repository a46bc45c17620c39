//! End-to-end tests of the cluster operations that keep quorum (issue 13),
//! through the `juju-sim` CLI on real etcd: space alarms, rolling restarts,
//! member replacement and recovery from a lost quorum.

mod util;

use std::path::Path;

use util::{etcdctl_tls, Creds, Model};

const ETCDCTL_34: &str = "/usr/bin/etcdctl";

fn charm() -> String {
    util::charm_dir().display().to_string()
}

fn statuses(m: &Model) -> String {
    m.status()["applications"].to_string()
}

/// `juju run UNIT ACTION k=v…` (Juju 3), the unit's part of the output.
fn run(m: &Model, unit: &str, action: &str, params: &[&str]) -> (i32, serde_json::Value) {
    let mut args = vec!["run", unit, action, "--format=json"];
    args.extend_from_slice(params);
    let r = m.sim(&args);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| {
        panic!(
            "{action} on {unit}: not JSON ({e}):\n{}\n{}",
            r.stdout, r.stderr
        )
    });
    (r.code, v[unit].clone())
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
    assert_eq!(cur, "blocked", "{msg}");
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
    let (cur, msg) = m.workload("etcd/0");
    assert_eq!(
        (cur.as_str(), msg.as_str()),
        ("active", "Healthy with 1 known peer"),
        "{}",
        statuses(&m)
    );

    // A quota out of range is the operator's to fix: blocked, nothing restarted.
    m.sim(&["config", "etcd", "quota-backend-bytes=1000"]).ok();
    let (cur, msg) = m.workload("etcd/0");
    assert_eq!(cur, "blocked", "{msg}");
    assert!(msg.contains("quota-backend-bytes=1000"), "{msg}");
    assert_eq!(util::get(ctl, &e0, &creds, "/after"), "works");
}
