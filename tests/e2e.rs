//! End-to-end tests: the charm deployed through the `juju-sim` CLI, as an
//! operator drives Juju, on real etcd 3.4 (Debian's packages) and 3.5 (the
//! official static binaries as an `etcd` resource).

mod util;

use std::fs;
use std::path::Path;

use util::cluster::{
    assert_all_vote, assert_healthy_with, assert_numbered, deploy_healthy, kill9, member_names,
    put_numbered, statuses, update_status,
};
use util::{
    etcd35_dir, etcd35_resource, etcdctl_tls, eventually, listening, pids_mentioning, put_get,
    Model,
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

/// `unit` is active and healthy on its own.
fn assert_active(m: &Model, unit: &str) {
    assert_healthy_with(m, unit, 1);
}

/// `juju deploy ./charm`: one healthy unit, etcd/0.
fn deploy_one(m: &Model) {
    m.sim(&["deploy", &charm()]).ok();
    assert_active(m, "etcd/0");
}

/// [`deploy_one`], then etcd/0's endpoint and packaged client credentials.
fn deploy_one_client(m: &Model) -> (String, util::Creds) {
    deploy_one(m);
    (m.endpoint("etcd/0"), m.credentials("etcd/0"))
}

#[test]
fn deploy_etcd_34_from_the_ubuntu_archive() {
    let m = Model::new();
    deploy_one(&m);
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
    let creds = m.credentials("etcd/0");
    put_get(
        Path::new(ETCDCTL_34),
        &format!("https://{addr}:2379"),
        &creds,
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
    let creds = m.credentials("etcd/0");
    put_get(
        &etcd35_dir().join("etcdctl"),
        &format!("https://{addr}:2379"),
        &creds,
        "k35",
        "v35",
    );
    // It runs the resource's binary, not the archive's.
    let root = m.unit_root("etcd/0");
    let unit = fs::read_to_string(root.join("etc/systemd/system/etcd.service")).unwrap();
    let sha = String::from_utf8(
        std::process::Command::new("sha256sum")
            .arg(&res)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let build = root.join(format!("var/lib/etcd-charm/bin/3.5.1-{}/etcd", &sha[..12]));
    assert!(
        unit.contains(&format!("ExecStart={} ", build.display())),
        "{unit}"
    );
}

/// The PID of `unit`'s etcd (its command line names the unit's config).
fn etcd_pid(m: &Model, unit: &str) -> u32 {
    let conf = m.unit_root(unit).join("etc/etcd-charm/etcd.conf.yml");
    let pids = pids_mentioning(&conf.display().to_string());
    assert_eq!(pids.len(), 1, "{unit}: {pids:?}");
    pids[0]
}

/// The entries of `dir`, sorted.
fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A unit installed by a charm revision before build directories runs the
/// flat `bin/etcd`. upgrade-charm with the same resource keeps etcd running
/// as it is; a new resource moves it to a build directory of its own, and
/// the flat files go once nothing runs them.
#[test]
fn a_unit_on_the_flat_resource_layout_keeps_running_then_takes_a_new_resource() {
    use sha2::{Digest, Sha256};
    let m = Model::new();
    let res = etcd35_resource(m.scratch.path());
    deploy_with_etcd_resource(&m, &res);
    assert_active(&m, "etcd/0");
    let (ep, creds) = (m.endpoint("etcd/0"), m.credentials("etcd/0"));
    let ctl = etcd35_dir().join("etcdctl");
    put_get(&ctl, &ep, &creds, "/flat", "kept");

    // What the earlier revision left: bin/{etcd,etcdctl,etcdutl}, named by
    // the unit file and the state, and etcd running bin/etcd.
    let root = m.unit_root("etcd/0");
    let bin = root.join("var/lib/etcd-charm/bin");
    let builds = names_in(&bin);
    assert!(
        builds.len() == 1 && builds[0].starts_with("3.5.1-"),
        "{builds:?}"
    );
    let build = bin.join(&builds[0]);
    kill9(etcd_pid(&m, "etcd/0"));
    for n in ["etcd", "etcdctl", "etcdutl"] {
        fs::rename(build.join(n), bin.join(n)).unwrap();
    }
    fs::remove_dir(&build).unwrap();
    let flat = |text: String| {
        text.replace(
            &format!("{}/", build.display()),
            &format!("{}/", bin.display()),
        )
    };
    let unit_path = root.join("etc/systemd/system/etcd.service");
    let unit = flat(fs::read_to_string(&unit_path).unwrap());
    fs::write(&unit_path, &unit).unwrap();
    let state_path = root.join("var/lib/etcd-charm/state.json");
    let mut state: serde_json::Value =
        serde_json::from_str(&flat(fs::read_to_string(&state_path).unwrap())).unwrap();
    // The fingerprint of what it runs (see hooks.rs): config, unit file,
    // certificate, binaries.
    let sha = state["binaries"]["source"]["sha256"]
        .as_str()
        .unwrap()
        .to_string();
    let mut h = Sha256::new();
    h.update(fs::read(root.join("etc/etcd-charm/etcd.conf.yml")).unwrap());
    h.update(b"\0");
    h.update(unit.as_bytes());
    h.update(b"\0");
    h.update(fs::read(root.join("etc/etcd-charm/pki/server.crt")).unwrap());
    h.update(b"\0");
    h.update(format!("3.5.1 the etcd resource (sha256 {})", &sha[..12]).as_bytes());
    state["applied"]["fingerprint"] = hex::encode(h.finalize()).into();
    fs::write(&state_path, serde_json::to_vec_pretty(&state).unwrap()).unwrap();
    m.sim(&["run-hook", "etcd/0", "update-status"]).ok();
    assert_active(&m, "etcd/0");
    let pid = etcd_pid(&m, "etcd/0");
    let exe = |pid: u32| fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert_eq!(exe(pid), bin.join("etcd"));

    // upgrade-charm with the same resource: nothing moves, nothing restarts.
    m.sim(&["run-hook", "etcd/0", "upgrade-charm"]).ok();
    m.sim(&["run-hook", "etcd/0", "update-status"]).ok();
    assert_active(&m, "etcd/0");
    assert_eq!(etcd_pid(&m, "etcd/0"), pid);
    assert_eq!(fs::read_to_string(&unit_path).unwrap(), unit);
    assert_eq!(names_in(&bin), ["etcd", "etcdctl", "etcdutl"]);

    // A new resource: its own build directory; the flat files go after
    // the restart onto it.
    let res3530 = util::etcd3530_resource(m.scratch.path());
    m.sim(&[
        "attach-resource",
        "etcd",
        &format!("etcd={}", res3530.display()),
    ])
    .ok();
    m.sim(&["run-hook", "etcd/0", "update-status"]).ok();
    assert_active(&m, "etcd/0");
    let left = names_in(&bin);
    assert!(
        left.len() == 1 && left[0].starts_with("3.5.30-"),
        "{left:?}"
    );
    assert_eq!(exe(etcd_pid(&m, "etcd/0")), bin.join(&left[0]).join("etcd"));
    assert_eq!(m.status()["applications"]["etcd"]["version"], "3.5.30");
    let got = etcdctl_tls(&ctl, &ep, &creds, &["get", "/flat", "--print-value-only"]);
    assert_eq!(String::from_utf8_lossy(&got.stdout).trim(), "kept");
}

#[test]
fn config_port_moves_etcd_and_keeps_data() {
    let m = Model::new();
    m.sim(&["deploy", &charm(), "new-etcd"]).ok();
    assert_active(&m, "new-etcd/0");
    let addr = m.address("new-etcd/0");
    let ctl = Path::new(ETCDCTL_34);
    let creds = m.credentials("new-etcd/0");
    put_get(
        ctl,
        &format!("https://{addr}:2379"),
        &creds,
        "before",
        "moved",
    );

    m.sim(&["config", "new-etcd", "port=23790", "management_port=23800"])
        .ok();
    assert_active(&m, "new-etcd/0");
    assert!(listening(&format!("{addr}:23790")));
    assert!(
        !listening(&format!("{addr}:2379")),
        "etcd still serves the old port"
    );
    let out = etcdctl_tls(
        ctl,
        &format!("https://{addr}:23790"),
        &creds,
        &["get", "before", "--print-value-only"],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "moved");
    let out = etcdctl_tls(
        ctl,
        &format!("https://{addr}:23790"),
        &creds,
        &["member", "list", "-w", "json"],
    );
    let members: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        members["members"][0]["peerURLs"][0],
        format!("https://{addr}:23800"),
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
    deploy_one(&m);
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
    deploy_one(&m);
    let addr = m.address("etcd/0");
    let ctl = Path::new(ETCDCTL_34);
    let creds = m.credentials("etcd/0");
    for i in 0..5 {
        put_get(
            ctl,
            &format!("https://{addr}:2379"),
            &creds,
            "churn",
            &i.to_string(),
        );
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
    let old = etcdctl_tls(
        ctl,
        &format!("https://{addr}:2379"),
        &creds,
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

    // A failing action says why in `run`'s plain output. The charm fails
    // it with action-fail and exits 0, so `run` exits 0 as Juju's does (it
    // fails the verb only on a non-zero return code); the task is failed.
    let r = m.sim(&["run", "etcd/0", "compact", "revision=999999"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.starts_with("Action id ") && r.stdout.contains(" failed: "),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("in the future"), "{}", r.stdout);
    let r = m
        .sim(&[
            "run",
            "etcd/0",
            "compact",
            "revision=999999",
            "--format=json",
        ])
        .json();
    assert_eq!(r["etcd/0"]["status"], "failed", "{r}");

    // Queued, then looked at by id: Juju 2.9's run-action and
    // show-action-output; Juju 3's run --background and show-task --wait.
    let shown = if util::juju29_at(m.home.path()) {
        let q = m.sim(&["run-action", "etcd/0", "defrag"]).ok();
        let id = q.action_id();
        m.sim(&["show-action-output", &id]).ok()
    } else {
        let q = m.sim(&["run", "etcd/0", "defrag", "--background"]).ok();
        // "Scheduled operation N with task N"
        let id = q
            .stderr
            .split_whitespace()
            .skip_while(|w| *w != "task")
            .nth(1)
            .unwrap_or_else(|| panic!("no task id in: {}", q.stderr))
            .to_string();
        m.sim(&["show-task", &id, "--wait=30m", "--format=yaml"])
            .ok()
    };
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
    deploy_one(&m);
    let addr = m.address("etcd/0");
    let root = m.unit_root("etcd/0").display().to_string();
    for pid in pids_mentioning(&root) {
        // SIGKILL: a crash, not a clean stop.
        kill9(pid);
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
    let path = repo.display().to_string();
    // deploy returns once the hooks are queued, as Juju's does: this waits.
    util::act::sim_env(&m, &["deploy", "etcd"], &[("JUJU_SIM_CHARM_PATH", &path)]).ok();
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

#[test]
fn etcd_refuses_plaintext_and_foreign_certificates() {
    let m = Model::new();
    let ctl = Path::new(ETCDCTL_34);
    let (endpoint, creds) = deploy_one_client(&m);
    put_get(ctl, &endpoint, &creds, "secret/key", "v");
    // The packaged credentials work with the 3.5 etcdctl too.
    put_get(
        &etcd35_dir().join("etcdctl"),
        &endpoint,
        &creds,
        "k35",
        "v35",
    );

    // Plain HTTP to the client port: refused, whatever the scheme.
    let plain = endpoint.replace("https://", "http://");
    let out = util::etcdctl(ctl, &plain, &["get", "secret/key"]);
    assert!(!out.status.success(), "plain HTTP read a key");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("secret/key"));
    // A raw HTTP request gets no HTTP answer.
    let addr = endpoint.trim_start_matches("https://").to_string();
    let reply = {
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect(&addr).unwrap();
        c.set_read_timeout(Some(std::time::Duration::from_secs(3)))
            .unwrap();
        let _ = c.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let mut buf = Vec::new();
        let _ = c.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    };
    assert!(
        !reply.contains("\"health\""),
        "plain HTTP got health: {reply}"
    );
    // The peer port is TLS with client-cert auth too.
    let peer = endpoint
        .replace(":2379", ":2380")
        .replace("https://", "http://");
    let out = util::etcdctl(ctl, &peer, &["get", "secret/key"]);
    assert!(!out.status.success(), "plain HTTP on the peer port");

    // TLS without a client certificate: refused.
    let out = util::etcdctl(
        ctl,
        &endpoint,
        &[
            &format!("--cacert={}", creds.ca().display()),
            "get",
            "secret/key",
        ],
    );
    assert!(
        !out.status.success(),
        "no client certificate, yet a key was read"
    );

    // A client certificate from a foreign CA: refused.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let foreign = etcd_charm::pki::Ca::generate("foreign CA", now, 30).unwrap();
    let leaf = etcd_charm::pki::issue_client(&foreign, "intruder", now, 30).unwrap();
    let dir = m.scratch.path().join("foreign");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("client.crt"), &leaf.cert_pem).unwrap();
    fs::write(dir.join("client.key"), leaf.key_pem.expose()).unwrap();
    fs::copy(creds.ca(), dir.join("ca.crt")).unwrap();
    let intruder = util::Creds {
        dir,
        ca_fingerprint: String::new(),
    };
    let out = etcdctl_tls(ctl, &endpoint, &intruder, &["get", "secret/key"]);
    assert!(!out.status.success(), "a foreign CA's client read a key");
    assert!(!String::from_utf8_lossy(&out.stdout).contains('v'));
    // While the right credentials still read it.
    assert_eq!(util::get(ctl, &endpoint, &creds, "secret/key"), "v");
}

#[test]
fn scaling_1_to_3_to_1_keeps_every_key() {
    let m = Model::new();
    let ctl = Path::new(ETCDCTL_34);
    let (e0, creds) = deploy_one_client(&m);
    put_numbered(ctl, &e0, &creds, "/scale/", 20);

    m.sim(&["add-unit", "etcd", "-n", "2"]).ok();
    // Every unit reaches the settled state once the hooks are done; an
    // update-status round lets the leader report after the last join.
    update_status(&m, &["etcd/0", "etcd/1", "etcd/2"], 1);
    for u in ["etcd/0", "etcd/1", "etcd/2"] {
        assert_healthy_with(&m, u, 3);
    }
    assert_eq!(
        member_names(ctl, &e0, &creds),
        ["etcd-0", "etcd-1", "etcd-2"]
    );
    // Each joined as a learner (costing no quorum) and now votes.
    let log = m.debug_log();
    for (added, promoted) in [("etcd/1", "etcd-1"), ("etcd/2", "etcd-2")] {
        assert!(
            log.contains(&format!("added {added} to the etcd cluster")),
            "{log}"
        );
        assert!(
            log.contains(&format!("promoted {promoted} to a voting member")),
            "{log}"
        );
    }
    assert_all_vote(ctl, &e0, &creds);
    // Each new member serves every key to the same credentials.
    for u in ["etcd/1", "etcd/2"] {
        assert_numbered(ctl, &m.endpoint(u), &creds, "/scale/", 20);
    }
    put_get(
        ctl,
        &m.endpoint("etcd/2"),
        &creds,
        "/scale/added-at-3",
        "yes",
    );

    // A registered member that no unit stands for (it never started): the
    // leader takes it out on its next hook.
    // (etcd refuses it for a few seconds after the last member joined.)
    let add_ghost = || {
        let args = [
            "member",
            "add",
            "ghost",
            "--peer-urls=https://127.0.0.1:12380",
        ];
        etcdctl_tls(ctl, &e0, &creds, &args).status.success()
    };
    assert!(
        eventually(20, add_ghost),
        "etcdctl member add ghost kept failing"
    );
    assert_eq!(member_names(ctl, &e0, &creds).len(), 4);
    m.sim(&["run-hook", "etcd/0", "update-status"]).ok();
    assert_eq!(
        member_names(ctl, &e0, &creds),
        ["etcd-0", "etcd-1", "etcd-2"]
    );
    assert_healthy_with(&m, "etcd/0", 3);

    m.sim(&["remove-unit", "etcd/1", "etcd/2"]).ok();
    m.sim(&["run-hook", "etcd/0", "update-status"]).ok();
    assert_healthy_with(&m, "etcd/0", 1);
    assert_eq!(member_names(ctl, &e0, &creds), ["etcd-0"]);
    assert_numbered(ctl, &e0, &creds, "/scale/", 20);
    assert_eq!(util::get(ctl, &e0, &creds, "/scale/added-at-3"), "yes");
    // The departed units' etcd is gone and they left nothing running.
    assert!(
        !m.debug_log().contains("processes running; killed"),
        "{}",
        m.debug_log()
    );
}

#[test]
fn losing_the_leader_keeps_the_ca_and_every_key() {
    let m = Model::new();
    deploy_healthy(&m, 3, &[]);
    let ctl = Path::new(ETCDCTL_34);
    let old = m.credentials("etcd/0");
    put_numbered(ctl, &m.endpoint("etcd/1"), &old, "/k/", 10);
    assert_eq!(Model::unit(&m.status(), "etcd/0")["leader"], true);

    m.sim(&["remove-unit", "etcd/0"]).ok();
    let status = m.status();
    let leader = ["etcd/1", "etcd/2"]
        .into_iter()
        .find(|u| Model::unit(&status, u)["leader"] == true)
        .unwrap_or_else(|| panic!("no new leader: {status}"));
    for u in ["etcd/1", "etcd/2"] {
        assert_healthy_with(&m, u, 2);
    }
    // Same CA: the new leader packages credentials from the same CA.
    let new = m.credentials(leader);
    assert_eq!(new.ca_fingerprint, old.ca_fingerprint);
    assert_eq!(fs::read(new.ca()).unwrap(), fs::read(old.ca()).unwrap());
    // The old credentials still read every key, from every member.
    for u in ["etcd/1", "etcd/2"] {
        let e = m.endpoint(u);
        assert_numbered(ctl, &e, &old, "/k/", 10);
        assert_eq!(member_names(ctl, &e, &old), ["etcd-1", "etcd-2"]);
    }
}

/// `juju refresh etcd --path ./etcd.charm` (2.9: `upgrade-charm`): every
/// unit runs the new revision's upgrade-charm and config-changed, and the
/// cluster keeps its members, its CA and every key.
#[test]
fn refresh_keeps_the_cluster_its_ca_and_every_key() {
    let m = Model::new();
    deploy_healthy(&m, 3, &[]);
    let ctl = Path::new(ETCDCTL_34);
    let creds = m.credentials("etcd/0");
    put_numbered(ctl, &m.endpoint("etcd/1"), &creds, "/r/", 10);
    let verb = if util::juju29_at(m.home.path()) {
        "upgrade-charm"
    } else {
        "refresh"
    };
    let r = m.sim(&[verb, "etcd", "--path", &charm()]).ok();
    assert!(r.stderr.contains("revision 1"), "{}", r.stderr);
    assert_eq!(m.status()["applications"]["etcd"]["charm-rev"], 1);
    for u in ["etcd/0", "etcd/1", "etcd/2"] {
        assert_healthy_with(&m, u, 3);
    }
    let new = m.credentials("etcd/0");
    assert_eq!(new.ca_fingerprint, creds.ca_fingerprint);
    for u in ["etcd/0", "etcd/1", "etcd/2"] {
        let e = m.endpoint(u);
        assert_numbered(ctl, &e, &creds, "/r/", 10);
        assert_eq!(
            member_names(ctl, &e, &creds),
            ["etcd-0", "etcd-1", "etcd-2"]
        );
    }
    let log = m.debug_log();
    assert_eq!(
        log.matches("upgraded the charm to revision 1").count(),
        3,
        "{log}"
    );
}

#[test]
fn update_status_renews_a_certificate_near_expiry_and_restarts_etcd() {
    let m = Model::new();
    let ctl = Path::new(ETCDCTL_34);
    let (endpoint, creds) = deploy_one_client(&m);
    put_get(ctl, &endpoint, &creds, "renew/key", "kept");

    // Read the CA back the way a unit does: the secret named in the peer
    // relation's application data (Juju 3), or leader settings (2.9).
    let exec = |cmd: &str| {
        let r = m.sim(&["exec", "--unit", "etcd/0", "--", cmd]).ok();
        r.stdout.trim().to_string()
    };
    let secret: serde_json::Value = if util::juju29_at(m.home.path()) {
        serde_json::from_str(&exec("leader-get --format=json")).unwrap()
    } else {
        let app: serde_json::Value = serde_json::from_str(&exec(
            "relation-get --format=json -r cluster:0 --app - etcd",
        ))
        .unwrap();
        let uri = app["ca-secret-id"].as_str().unwrap().to_string();
        serde_json::from_str(&exec(&format!("secret-get --format=json {uri}"))).unwrap()
    };
    let ca = etcd_charm::pki::Ca::from_pem(
        secret["ca-cert"].as_str().unwrap(),
        secret["ca-key"].as_str().unwrap(),
    )
    .unwrap();
    assert_eq!(ca.fingerprint_sha256(), creds.ca_fingerprint);

    // Put a server certificate with 10 days left in place.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let addr = m.address("etcd/0");
    let short = etcd_charm::pki::issue_server(
        &ca,
        "etcd-0",
        &[etcd_charm::pki::San::parse(&addr).unwrap()],
        now,
        10,
    )
    .unwrap();
    let pki = m.unit_root("etcd/0").join("etc/etcd-charm/pki");
    fs::write(pki.join("server.key"), short.key_pem.expose()).unwrap();
    fs::write(pki.join("server.crt"), &short.cert_pem).unwrap();
    let root = m.unit_root("etcd/0").display().to_string();
    let before = pids_mentioning(&root);
    assert!(!before.is_empty());

    m.sim(&["run-hook", "etcd/0", "update-status"]).ok();
    assert_active(&m, "etcd/0");
    let renewed = fs::read_to_string(pki.join("server.crt")).unwrap();
    let info = etcd_charm::pki::inspect_cert(&renewed).unwrap();
    assert!(
        info.not_after > now + 300 * 86_400,
        "not renewed: not_after {}",
        info.not_after
    );
    assert!(etcd_charm::pki::verify_signed_by(&renewed, ca.cert_pem()).unwrap());
    {
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            fs::metadata(pki.join("server.key")).unwrap().mode() & 0o777,
            0o600
        );
    }
    // etcd was restarted onto it, and the data and credentials still work.
    let after = pids_mentioning(&root);
    assert!(
        !after.is_empty() && after.iter().all(|p| !before.contains(p)),
        "etcd was not restarted: {before:?} -> {after:?}"
    );
    assert_eq!(util::get(ctl, &endpoint, &creds, "renew/key"), "kept");
    assert!(m.debug_log().contains("renewing it"), "{}", m.debug_log());
}

#[test]
fn a_three_member_cluster_on_etcd_35_loses_a_follower_cleanly() {
    let m = Model::new();
    let res = etcd35_resource(m.scratch.path());
    deploy_healthy(&m, 3, &["--resource", &format!("etcd={}", res.display())]);
    assert_eq!(m.status()["applications"]["etcd"]["version"], "3.5.1");
    let ctl = etcd35_dir().join("etcdctl");
    let creds = m.credentials("etcd/2");
    put_get(&ctl, &m.endpoint("etcd/0"), &creds, "/v35/a", "1");
    assert_eq!(
        util::get(&ctl, &m.endpoint("etcd/2"), &creds, "/v35/a"),
        "1"
    );

    // A follower leaves: it is out of the membership, the others are healthy.
    let root1 = m.unit_root("etcd/1").display().to_string();
    m.sim(&["remove-unit", "etcd/1"]).ok();
    assert!(eventually(15, || pids_mentioning(&root1).is_empty()));
    for u in ["etcd/0", "etcd/2"] {
        m.sim(&["run-hook", u, "update-status"]).ok();
        assert_healthy_with(&m, u, 2);
    }
    assert_eq!(
        member_names(&ctl, &m.endpoint("etcd/2"), &creds),
        ["etcd-0", "etcd-2"]
    );
    assert_eq!(
        util::get(&ctl, &m.endpoint("etcd/0"), &creds, "/v35/a"),
        "1"
    );
    assert!(
        !m.debug_log().contains("processes running; killed"),
        "{}",
        m.debug_log()
    );

    // Both members move to a new peer port and keep their membership.
    m.sim(&["config", "etcd", "management_port=23800"]).ok();
    for u in ["etcd/0", "etcd/2"] {
        assert_healthy_with(&m, u, 2);
    }
    let members = util::cluster::member_list(&ctl, &m.endpoint("etcd/0"), &creds);
    let peers: Vec<String> = members
        .iter()
        .map(|m| m["peerURLs"][0].as_str().unwrap().to_string())
        .collect();
    assert_eq!(peers.len(), 2, "{members:?}");
    assert!(peers.iter().all(|p| p.ends_with(":23800")), "{peers:?}");
    assert_eq!(
        util::get(&ctl, &m.endpoint("etcd/2"), &creds, "/v35/a"),
        "1"
    );
}

/// A consumer charm that only requires `etcd` over the `etcd` interface.
fn consumer_charm(m: &Model) -> String {
    let dir = m.scratch.path().join("kube");
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join("metadata.yaml"),
        "name: kube\nsummary: s\ndescription: d\nrequires:\n  etcd:\n    interface: etcd\n",
    )
    .unwrap();
    fs::write(dir.join("dispatch"), "#!/bin/sh\nexit 0\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(dir.join("dispatch"), fs::Permissions::from_mode(0o755)).unwrap();
    dir.display().to_string()
}

#[test]
fn db_consumers_get_working_credentials_and_every_member() {
    let m = Model::new();
    deploy_one(&m);
    m.sim(&["deploy", &consumer_charm(&m), "kube"]).ok();
    m.sim(&["integrate", "etcd:db", "kube:etcd"]).ok();
    m.sim(&["add-unit", "etcd", "-n", "2"]).ok();
    update_status(&m, &["etcd/0", "etcd/1", "etcd/2"], 1);
    let exec = |cmd: &str| {
        m.sim(&["exec", "--unit", "kube/0", "--", cmd])
            .ok()
            .stdout
            .trim()
            .to_string()
    };
    let ids: Vec<String> = serde_json::from_str(&exec("relation-ids --format=json etcd")).unwrap();
    let data: serde_json::Value = serde_json::from_str(&exec(&format!(
        "relation-get --format=json -r {} - etcd/0",
        ids[0]
    )))
    .unwrap();
    let conn = data["connection_string"]
        .as_str()
        .unwrap_or_else(|| panic!("{data}"));
    let urls: Vec<&str> = conn.split(',').collect();
    assert_eq!(urls.len(), 3, "{conn}");
    for u in ["etcd/0", "etcd/1", "etcd/2"] {
        assert!(urls.contains(&m.endpoint(u).as_str()), "{conn}");
    }
    // The consumer's credentials work against every member.
    let dir = m.scratch.path().join("kube-creds");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("ca.crt"), data["client_ca"].as_str().unwrap()).unwrap();
    fs::write(
        dir.join("client.crt"),
        data["client_cert"].as_str().unwrap(),
    )
    .unwrap();
    fs::write(dir.join("client.key"), data["client_key"].as_str().unwrap()).unwrap();
    let creds = util::Creds {
        dir,
        ca_fingerprint: String::new(),
    };
    let ctl = Path::new(ETCDCTL_34);
    put_get(ctl, urls[0], &creds, "/registry/ns/kube", "ok");
    for url in &urls {
        assert_eq!(util::get(ctl, url, &creds, "/registry/ns/kube"), "ok");
    }
    // The key never reached the log.
    let key_line = data["client_key"]
        .as_str()
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .to_string();
    assert!(!m.debug_log().contains(&key_line));
}

/// A `resource-get` that fails with a controller fault while a unit
/// installs leaves it waiting for the resource (the hook fails and Juju
/// retries it); it never installs the Ubuntu archive's etcd in its place,
/// and once the fault clears it runs the resource's etcd.
#[test]
fn a_resource_get_fault_during_install_waits_and_never_runs_the_archive_etcd() {
    let m = Model::new();
    let resource = util::etcd35_resource(m.scratch.path());
    let res = format!("etcd={}", resource.display());
    util::act::sim_env(
        &m,
        &["deploy", &charm(), "--resource", &res],
        &[("JUJU_SIM_UPDATE_STATUS_INTERVAL", "10s")],
    )
    .ok();
    assert_active(&m, "etcd/0");
    // Enough faults for the install hook and the hooks that follow it;
    // update-status (every 10 s here) uses up the rest.
    m.sim(&[
        "inject-fault",
        "resource-get",
        "etcd",
        "etcd",
        "--count",
        "12",
    ])
    .ok();
    // Not m.sim: add-unit would settle, and the point is what the unit
    // says while its install hook is failing.
    let out = m.cmd().args(["add-unit", "etcd"]).output().unwrap();
    assert!(out.status.success());
    let mut seen = None;
    assert!(
        util::eventually(120, || {
            let (cur, msg) = m.workload("etcd/1");
            let waiting = cur == "waiting" && msg.contains("etcd resource");
            if waiting {
                seen = Some(msg);
            }
            waiting
        }),
        "etcd/1 never said it waits for the etcd resource: {}\n{}",
        statuses(&m),
        m.debug_log()
    );
    let log = m.debug_log();
    assert!(
        log.contains("cannot fetch the etcd resource"),
        "the unit's log says why: {log}"
    );
    // The faults run out, and a later hook installs the resource's etcd.
    assert!(
        util::eventually(180, || m.workload("etcd/1").1.starts_with("Healthy with 2")),
        "{}\n{}",
        statuses(&m),
        m.debug_log()
    );
    let log = m.debug_log();
    assert!(
        !log.contains("from the Ubuntu archive"),
        "etcd/1 fell back to the archive: {seen:?}\n{log}"
    );
    // The unit runs the resource's etcd (3.5.1), not the archive's 3.4.23.
    let creds = m.credentials("etcd/0");
    let out = util::etcdctl_tls(
        Path::new(ETCDCTL_34),
        &m.endpoint("etcd/1"),
        &creds,
        &["endpoint", "status", "-w", "json"],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("\"version\":\"3.5.1\""), "{text}");
}

/// A model made on Juju 2.9 keeps its CA in leader settings (2.9 has no
/// secrets); after the controller moves to 3.x the next hooks see the new
/// JUJU_VERSION, a new unit gets certificates from the same CA, and the old
/// clients still get in.
#[test]
fn a_juju_29_model_keeps_its_ca_after_the_move_to_3x() {
    let m = Model::new();
    util::act::deploy_on_juju29(&m, &[&charm(), "-n", "2"]);
    for u in ["etcd/0", "etcd/1"] {
        assert_healthy_with(&m, u, 2);
    }
    let ca = |u: &str| fs::read(m.unit_root(u).join("etc/etcd-charm/pki/ca.crt")).unwrap();
    let ca29 = ca("etcd/0");
    assert_eq!(ca("etcd/1"), ca29);
    // The CA is in leader settings, where every unit reads it.
    let got = m
        .sim(&["exec", "--unit", "etcd/1", "--", "leader-get", "ca-cert"])
        .ok();
    assert_eq!(got.stdout.trim(), String::from_utf8_lossy(&ca29).trim());

    m.sim(&["upgrade-model", "--agent-version", "3.6.12"]).ok();
    assert_eq!(m.status()["model"]["version"], "3.6.12");
    m.sim(&["add-unit", "etcd"]).ok();
    for u in ["etcd/0", "etcd/1", "etcd/2"] {
        m.sim(&["run-hook", u, "update-status"]).ok();
        assert_healthy_with(&m, u, 3);
        assert_eq!(ca(u), ca29, "{u} has another CA after the upgrade");
    }
    let creds = m.credentials("etcd/2");
    put_get(
        Path::new(ETCDCTL_34),
        &m.endpoint("etcd/0"),
        &creds,
        "/after/upgrade",
        "ok",
    );
}
