//! End-to-end tests: the charm deployed through the `juju-sim` CLI, as an
//! operator drives Juju, on real etcd 3.4 (Debian's packages) and 3.5 (the
//! official static binaries as an `etcd` resource).

mod util;

use std::fs;
use std::path::Path;

use util::{
    etcd35_dir, etcd35_resource, etcdctl, eventually, listening, pids_mentioning, put_get, Model,
};

const ETCDCTL_34: &str = "/usr/bin/etcdctl";

fn charm() -> String {
    util::charm_dir().display().to_string()
}

/// `juju deploy ./charm --resource etcd=PATH`
fn deploy_with_etcd_resource(m: &Model, resource: &Path) {
    m.sim(&[
        "deploy",
        &charm(),
        "--resource",
        &format!("etcd={}", resource.display()),
    ])
    .ok();
}

fn assert_active(m: &Model, unit: &str) {
    let (cur, msg) = m.workload(unit);
    assert_eq!(
        (cur.as_str(), msg.as_str()),
        ("active", "Healthy with 1 known peer"),
        "{unit} is not healthy; debug-log:\n{}",
        m.debug_log()
    );
}

#[test]
fn deploy_etcd_34_from_the_ubuntu_archive() {
    let m = Model::new();
    m.sim(&["deploy", &charm()]).ok();
    assert_active(&m, "etcd/0");
    let status = m.status();
    assert_eq!(status["applications"]["etcd"]["version"], "3.4.23");
    let unit = Model::unit(&status, "etcd/0");
    assert_eq!(unit["leader"], true);
    assert!(
        unit["open-ports"].to_string().contains("2379/tcp"),
        "{unit}"
    );
    let addr = m.address("etcd/0");
    assert!(
        addr.starts_with("127.") && !addr.starts_with("127.0.0."),
        "{addr}"
    );
    put_get(
        Path::new(ETCDCTL_34),
        &format!("http://{addr}:2379"),
        "/k8s/ns/default",
        "v34",
    );

    // The health action reads the same cluster back.
    let out = m
        .sim(&["run", "etcd/0", "health", "--format=json"])
        .ok()
        .json();
    let r = &out["etcd/0"]["results"]["health"];
    assert_eq!(r["healthy"], "true", "{out}");
    assert_eq!(r["version"], "3.4.23");
    assert_eq!(r["members"], "1");
}

#[test]
fn deploy_etcd_35_from_the_etcd_resource() {
    let m = Model::new();
    let res = etcd35_resource(m.scratch.path());
    deploy_with_etcd_resource(&m, &res);
    assert_active(&m, "etcd/0");
    assert_eq!(m.status()["applications"]["etcd"]["version"], "3.5.1");
    let addr = m.address("etcd/0");
    put_get(
        &etcd35_dir().join("etcdctl"),
        &format!("http://{addr}:2379"),
        "k35",
        "v35",
    );
    // It runs the resource's binary, not the archive's.
    let root = m.unit_root("etcd/0");
    let unit = fs::read_to_string(root.join("etc/systemd/system/etcd.service")).unwrap();
    assert!(
        unit.contains(
            &root
                .join("var/lib/etcd-charm/bin/etcd")
                .display()
                .to_string()
        ),
        "{unit}"
    );
}

#[test]
fn config_port_moves_etcd_and_keeps_data() {
    let m = Model::new();
    m.sim(&["deploy", &charm(), "new-etcd"]).ok();
    assert_active(&m, "new-etcd/0");
    let addr = m.address("new-etcd/0");
    let ctl = Path::new(ETCDCTL_34);
    put_get(ctl, &format!("http://{addr}:2379"), "before", "moved");

    m.sim(&["config", "new-etcd", "port=23790", "management_port=23800"])
        .ok();
    assert_active(&m, "new-etcd/0");
    assert!(listening(&format!("{addr}:23790")));
    assert!(
        !listening(&format!("{addr}:2379")),
        "etcd still serves the old port"
    );
    let out = etcdctl(
        ctl,
        &format!("http://{addr}:23790"),
        &["get", "before", "--print-value-only"],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "moved");
    let out = etcdctl(
        ctl,
        &format!("http://{addr}:23790"),
        &["member", "list", "-w", "json"],
    );
    let members: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        members["members"][0]["peerURLs"][0],
        format!("http://{addr}:23800"),
        "the member's peer URL was not moved"
    );
    let unit = m.status()["applications"]["new-etcd"]["units"]["new-etcd/0"].clone();
    let ports = unit["open-ports"].to_string();
    assert!(
        ports.contains("23790/tcp") && !ports.contains("\"2379/tcp\""),
        "{ports}"
    );

    // Juju shows the value as set by the user.
    let v = m.sim(&["config", "new-etcd", "port"]).ok();
    assert_eq!(v.stdout.trim(), "23790");
}

#[test]
fn remove_unit_stops_etcd_and_destroy_model_leaves_nothing() {
    let m = Model::new();
    m.sim(&["deploy", &charm()]).ok();
    assert_active(&m, "etcd/0");
    let home = m.home.path().display().to_string();
    let root = m.unit_root("etcd/0").display().to_string();
    let running = pids_mentioning(&root);
    assert!(!running.is_empty(), "no etcd process found for the unit");
    let addr = m.address("etcd/0");

    m.sim(&["remove-unit", "etcd/0"]).ok();
    assert!(
        eventually(15, || pids_mentioning(&root).is_empty()),
        "etcd still runs after remove-unit: {:?}",
        pids_mentioning(&root)
    );
    assert!(!listening(&format!("{addr}:2379")));
    // The charm stopped it; the simulator did not have to.
    assert!(
        !m.debug_log().contains("processes running; killed"),
        "the unit left processes behind:\n{}",
        m.debug_log()
    );

    m.sim(&["add-unit", "etcd"]).ok();
    assert!(!pids_mentioning(&home).is_empty());
    m.sim(&["destroy-model", "--no-prompt"]).ok();
    assert!(
        eventually(15, || pids_mentioning(&home).is_empty()),
        "processes left after destroy-model: {:?}",
        pids_mentioning(&home)
    );
    assert!(!m.home.path().join("model.json").exists());
}

#[test]
fn a_corrupt_etcd_resource_blocks_without_a_crash_loop() {
    let m = Model::new();
    let bad = m.scratch.path().join("etcd.tar.gz");
    fs::write(&bad, b"\x1f\x8b this is not really gzip").unwrap();
    deploy_with_etcd_resource(&m, &bad);
    let (cur, msg) = m.workload("etcd/0");
    assert_eq!(cur, "blocked", "{msg}");
    assert!(
        msg.contains("etcd resource") && msg.contains("tar.gz"),
        "{msg}"
    );
    let juju = Model::unit(&m.status(), "etcd/0")["juju-status"]["current"].clone();
    assert_ne!(juju, "error", "the hook failed instead of blocking");
    let log = m.debug_log();
    assert!(!log.contains("hook failed"), "{log}");
    assert!(pids_mentioning(&m.unit_root("etcd/0").display().to_string()).is_empty());

    // Attaching a good resource fixes it (attach-resource fires upgrade-charm).
    let good = etcd35_resource(m.scratch.path());
    m.sim(&[
        "attach-resource",
        "etcd",
        &format!("etcd={}", good.display()),
    ])
    .ok();
    assert_active(&m, "etcd/0");
    assert_eq!(m.status()["applications"]["etcd"]["version"], "3.5.1");
}

#[test]
fn a_wrong_etcd_resource_says_what_is_wrong() {
    let m = Model::new();
    // A valid tar.gz that is not an etcd release.
    let wrong = m.scratch.path().join("wrong.tar.gz");
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
        fs::File::create(&wrong).unwrap(),
        flate2::Compression::fast(),
    ));
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_size(1);
    b.append_data(&mut h, "kubernetes/server/bin/kube-apiserver", &b"x"[..])
        .unwrap();
    b.into_inner().unwrap().finish().unwrap();
    deploy_with_etcd_resource(&m, &wrong);
    let (cur, msg) = m.workload("etcd/0");
    assert_eq!(cur, "blocked");
    assert!(msg.contains("no etcd binary"), "{msg}");
}

#[test]
fn actions_are_typed_and_compact_works() {
    let m = Model::new();
    m.sim(&["deploy", &charm()]).ok();
    assert_active(&m, "etcd/0");
    let addr = m.address("etcd/0");
    let ctl = Path::new(ETCDCTL_34);
    for i in 0..5 {
        put_get(ctl, &format!("http://{addr}:2379"), "churn", &i.to_string());
    }
    let out = m
        .sim(&["run", "etcd/0", "compact", "physical=true", "--format=json"])
        .ok()
        .json();
    let rev: i64 = out["etcd/0"]["results"]["compact"]["revision"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(rev >= 6, "{out}");
    // History below the compacted revision is gone.
    let old = etcdctl(
        ctl,
        &format!("http://{addr}:2379"),
        &["get", "churn", "--rev=2"],
    );
    assert!(!old.status.success());
    assert!(String::from_utf8_lossy(&old.stderr).contains("compacted"));

    // Unknown parameters and bad types are refused before the charm runs.
    let r = m.sim(&["run", "etcd/0", "compact", "bogus=1"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("bogus"), "{}", r.stderr);
    let r = m.sim(&["run", "etcd/0", "compact", "physical=maybe"]);
    assert_ne!(r.code, 0);

    // A failing action exits non-zero under `run` and says why.
    let r = m.sim(&["run", "etcd/0", "compact", "revision=999999"]);
    assert_ne!(r.code, 0);
    assert!(
        format!("{}{}", r.stdout, r.stderr).contains("in the future"),
        "{} {}",
        r.stdout,
        r.stderr
    );

    // Juju 2.9 style: queued id, then show-action-output.
    let q = m.sim(&["run-action", "etcd/0", "defrag"]).ok();
    let id = q.action_id();
    let shown = m.sim(&["show-action-output", &id]).ok();
    let y: serde_yaml::Value = serde_yaml::from_str(&shown.stdout).unwrap();
    assert_eq!(y["status"], "completed", "{}", shown.stdout);
    assert!(
        y["results"]["defrag"]["db-size-after"].is_string(),
        "{}",
        shown.stdout
    );
}

#[test]
fn update_status_restarts_a_dead_etcd_and_logs_reach_juju() {
    let m = Model::new();
    m.sim(&["deploy", &charm()]).ok();
    assert_active(&m, "etcd/0");
    let addr = m.address("etcd/0");
    let root = m.unit_root("etcd/0").display().to_string();
    for pid in pids_mentioning(&root) {
        // SIGKILL: a crash, not a clean stop.
        unsafe_kill(pid);
    }
    assert!(eventually(10, || !listening(&format!("{addr}:2379"))));
    m.sim(&["run-hook", "etcd/0", "update-status"]).ok();
    assert_active(&m, "etcd/0");
    assert!(listening(&format!("{addr}:2379")));
    let log = m.debug_log();
    // tracing output reaches juju-log.
    assert!(
        log.contains("juju-log") && log.contains("installed etcd 3.4.23"),
        "{log}"
    );
    assert!(log.contains("not running; starting it"), "{log}");
}

#[test]
fn extra_units_do_not_start_a_second_cluster() {
    let m = Model::new();
    m.sim(&["deploy", &charm(), "-n", "2"]).ok();
    assert_active(&m, "etcd/0");
    let (cur, msg) = m.workload("etcd/1");
    assert_eq!(cur, "blocked");
    assert!(msg.contains("juju remove-unit etcd/1"), "{msg}");
    assert!(pids_mentioning(&m.unit_root("etcd/1").display().to_string()).is_empty());
    assert!(!listening(&format!("{}:2379", m.address("etcd/1"))));
}

fn unsafe_kill(pid: u32) {
    let st = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn deploy_by_charm_name_as_the_seed_does() {
    let m = Model::new();
    // No such charm anywhere: Juju's words, and a hint.
    let r = m.sim(&["deploy", "etcd"]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("charm or bundle not found"),
        "{}",
        r.stderr
    );
    // From a charm repository on JUJU_SIM_CHARM_PATH ...
    let repo = m.scratch.path().join("charms");
    fs::create_dir_all(&repo).unwrap();
    std::os::unix::fs::symlink(util::charm_dir(), repo.join("etcd")).unwrap();
    let out = m
        .cmd()
        .env("JUJU_SIM_CHARM_PATH", &repo)
        .args(["deploy", "etcd"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_active(&m, "etcd/0");
    // ... and, as in the seed's step 3, the charm already in the model.
    m.sim(&["deploy", "etcd", "new-etcd"]).ok();
    assert_active(&m, "new-etcd/0");
    assert_ne!(m.address("etcd/0"), m.address("new-etcd/0"));
}

#[test]
fn an_empty_etcd_resource_is_a_placeholder_and_the_archive_is_used() {
    let m = Model::new();
    let empty = m.scratch.path().join("etcd.tar.gz");
    fs::write(&empty, b"").unwrap();
    deploy_with_etcd_resource(&m, &empty);
    assert_active(&m, "etcd/0");
    assert_eq!(m.status()["applications"]["etcd"]["version"], "3.4.23");
}
