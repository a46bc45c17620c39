//! Multi-unit cluster helpers for the end-to-end tests (e2e, quorum,
//! backup): deploying N units and letting them report, asserting every
//! unit's "Healthy with N known peers", numbered keys written and read back
//! through real `etcdctl`, the membership etcd itself lists, and killing an
//! etcd as a crash would. Nothing here fakes etcd.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use super::{etcdctl_tls, get, put_get, Creds, Model};

/// The applications' statuses, for failure messages.
pub fn statuses(m: &Model) -> String {
    m.status()["applications"].to_string()
}

/// The workload message of a healthy unit that knows `peers` members.
pub fn healthy_message(peers: usize) -> String {
    if peers == 1 {
        "Healthy with 1 known peer".to_string()
    } else {
        format!("Healthy with {peers} known peers")
    }
}

/// Whether `unit` is active and healthy with `peers` known members.
pub fn is_healthy_with(m: &Model, unit: &str, peers: usize) -> bool {
    m.workload(unit) == ("active".to_string(), healthy_message(peers))
}

/// Whether every one of `units` is active and healthy with `peers`.
pub fn all_healthy_with(m: &Model, units: &[&str], peers: usize) -> bool {
    units.iter().all(|u| is_healthy_with(m, u, peers))
}

/// Asserts `unit` is active and healthy with `peers` known members;
/// the failure shows every status and the debug log.
pub fn assert_healthy_with(m: &Model, unit: &str, peers: usize) {
    let want = healthy_message(peers);
    let (cur, msg) = m.workload(unit);
    assert_eq!(
        (cur.as_str(), msg.as_str()),
        ("active", want.as_str()),
        "{unit}: {}\ndebug-log:\n{}",
        statuses(m),
        m.debug_log()
    );
}

/// `rounds` rounds of `update-status` on every one of `units`.
pub fn update_status(m: &Model, units: &[&str], rounds: usize) {
    for _ in 0..rounds {
        for u in units {
            m.sim(&["run-hook", u, "update-status"]).ok();
        }
    }
}

/// Runs `update-status` rounds on `units` until every one is healthy with
/// `peers`, for at most `secs`; whether they got there.
pub fn become_healthy(m: &Model, units: &[&str], peers: usize, secs: u64) -> bool {
    super::eventually(secs, || {
        update_status(m, units, 1);
        all_healthy_with(m, units, peers)
    })
}

/// `juju deploy ./charm APP -n N EXTRA…` (EXTRA such as `--config k=v`),
/// waiting for the model to settle; returns the unit names.
pub fn deploy_n(m: &Model, app: &str, n: usize, extra: &[&str]) -> Vec<String> {
    let charm = super::charm_dir().display().to_string();
    let n_text = n.to_string();
    let mut args = vec!["deploy", &charm, app, "-n", &n_text];
    args.extend_from_slice(extra);
    m.sim(&args).ok();
    (0..n).map(|i| format!("{app}/{i}")).collect()
}

/// [`deploy_n`], then one `update-status` round so that every unit
/// reports after the last join; returns the unit names.
pub fn deploy_units(m: &Model, app: &str, n: usize, extra: &[&str]) -> Vec<String> {
    let units = deploy_n(m, app, n, extra);
    let names: Vec<&str> = units.iter().map(String::as_str).collect();
    update_status(m, &names, 1);
    units
}

/// [`deploy_units`] of `etcd`, then asserts every unit is healthy with
/// all `n`.
pub fn deploy_healthy(m: &Model, n: usize, extra: &[&str]) -> Vec<String> {
    let units = deploy_units(m, "etcd", n, extra);
    for u in &units {
        assert_healthy_with(m, u, n);
    }
    units
}

/// The numbered keys `PREFIX000`, `PREFIX001`… and their values `v0`,
/// `v1`…
fn numbered(prefix: &str, n: usize) -> impl Iterator<Item = (String, String)> + '_ {
    (0..n).map(move |i| (format!("{prefix}{i:03}"), format!("v{i}")))
}

/// Puts `n` numbered keys under `prefix` through `endpoint`, each read
/// back.
pub fn put_numbered(ctl: &Path, endpoint: &str, creds: &Creds, prefix: &str, n: usize) {
    for (k, v) in numbered(prefix, n) {
        put_get(ctl, endpoint, creds, &k, &v);
    }
}

/// Asserts `endpoint` serves every one of the `n` numbered keys under
/// `prefix` with its value.
pub fn assert_numbered(ctl: &Path, endpoint: &str, creds: &Creds, prefix: &str, n: usize) {
    for (k, v) in numbered(prefix, n) {
        assert_eq!(get(ctl, endpoint, creds, &k), v, "{k} at {endpoint}");
    }
}

/// `etcdctl member list -w json` through `endpoint`: the `members` array.
pub fn member_list(ctl: &Path, endpoint: &str, creds: &Creds) -> Vec<Value> {
    let out = etcdctl_tls(ctl, endpoint, creds, &["member", "list", "-w", "json"]);
    assert!(
        out.status.success(),
        "etcdctl member list at {endpoint}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["members"]
        .as_array()
        .unwrap_or_else(|| panic!("no members in {v}"))
        .clone()
}

/// The names of every member, sorted.
pub fn member_names(ctl: &Path, endpoint: &str, creds: &Creds) -> Vec<String> {
    let mut names: Vec<String> = member_list(ctl, endpoint, creds)
        .iter()
        .map(|m| m["name"].as_str().unwrap_or_default().to_string())
        .collect();
    names.sort();
    names
}

/// Asserts no member is a learner: every one votes.
pub fn assert_all_vote(ctl: &Path, endpoint: &str, creds: &Creds) {
    let members = member_list(ctl, endpoint, creds);
    assert!(
        members
            .iter()
            .all(|m| m["isLearner"].as_bool() != Some(true)),
        "{members:?}"
    );
}

/// The keys under `prefix`, through `endpoint`.
pub fn keys_under(ctl: &Path, endpoint: &str, creds: &Creds, prefix: &str) -> BTreeSet<String> {
    let out = etcdctl_tls(
        ctl,
        endpoint,
        creds,
        &["get", prefix, "--prefix", "--keys-only"],
    );
    assert!(
        out.status.success(),
        "etcdctl get {prefix} --prefix at {endpoint}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// Asserts every one of `endpoints` holds every key in `written` (all
/// under `prefix`).
pub fn assert_kept_everywhere(
    ctl: &Path,
    endpoints: &[String],
    creds: &Creds,
    prefix: &str,
    written: &[String],
) {
    for ep in endpoints {
        let keys = keys_under(ctl, ep, creds, prefix);
        for k in written {
            assert!(keys.contains(k), "{ep} lost {k}");
        }
    }
}

/// SIGKILL to `pid` (a crash, not a clean stop); waits until it is gone
/// or a zombie.
pub fn kill9(pid: u32) {
    let st = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    assert!(super::eventually(10, || !Path::new(&format!(
        "/proc/{pid}"
    ))
    .exists()
        || std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.contains(") Z "))
            .unwrap_or(true)));
}
