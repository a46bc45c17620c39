//! End-to-end tests of the simulator itself: each test builds a tiny fixture
//! charm (a shell `dispatch` that records every hook and calls hook tools),
//! deploys it into its own temporary JUJU_SIM_HOME and JUJU_SIM_ADDR_DIR,
//! and asserts on exit codes, parsed JSON/YAML and files.

mod common;

use common::{Charm, Settle, Sim, JUJU_29};
use serde_json::Value;
use std::fs;
use std::path::Path;
use std::process::{Command, Output};

const DISPATCH: &str = r#"#!/bin/sh
echo "$JUJU_DISPATCH_PATH $JUJU_REMOTE_UNIT" >> "$ETCD_CHARM_ROOT/hooks.log"
case "$JUJU_DISPATCH_PATH" in
  hooks/install) status-set maintenance installing ;;
  hooks/start) status-set active ready; open-port 2379/tcp; application-version-set 1.2.3 ;;
  hooks/cluster-relation-joined) relation-set -r "$JUJU_RELATION_ID" joined-by="$JUJU_UNIT_NAME" ;;
  hooks/config-changed) [ -f "$ETCD_CHARM_ROOT/fail-config" ] && exit 3 ; true ;;
  actions/check)
    action-log "starting"
    action-set snapshot.path=/x copy.cmd="juju scp a b" || exit 1
    [ "$(action-get fail)" = "True" ] && action-fail "asked to fail"
    ;;
  actions/keys)
    for k in "$@"; do :; done
    ;;
  actions/boom) exit 7 ;;
esac
exit 0
"#;

const CHARM: Charm = Charm {
    metadata: "name: fix\npeers:\n  cluster:\n    interface: fix\nprovides:\n  db:\n    interface: fix\nresources:\n  blob:\n    type: file\n    filename: blob.bin\n",
    config: Some(common::CONFIG),
    actions: Some("check:\n  description: c\n  params:\n    fail:\n      type: boolean\n      default: false\n    count:\n      type: integer\n      default: 3\n    name:\n      type: string\n  additionalProperties: false\nboom:\n  description: b\nkeys:\n  description: k\n"),
    dispatch: Some(DISPATCH),
};

/// A model of the fixture charm on Juju 3; verbs settle.
fn new_sim() -> Sim {
    Sim::new(&CHARM, &[], Settle::Auto)
}

/// A model on Juju 2.9, for tests of 2.9's `run-action` and
/// `show-action-output` (not commands on Juju 3).
fn new_sim_29() -> Sim {
    Sim::new(&CHARM, &[JUJU_29], Settle::Auto)
}

#[test]
fn deploy_and_remove_hook_order() {
    let sim = new_sim();
    sim.deploy("2");
    let h0 = sim.hooks("fix/0");
    assert_eq!(
        &h0[..5],
        &[
            "hooks/install",
            "hooks/cluster-relation-created",
            "hooks/leader-elected",
            "hooks/config-changed",
            "hooks/start"
        ]
    );
    assert!(h0.contains(&"hooks/cluster-relation-joined fix/1".to_string()));
    assert!(h0.contains(&"hooks/cluster-relation-changed fix/1".to_string()));
    assert!(h0.contains(&"hooks/update-status".to_string()));
    let h1 = sim.hooks("fix/1");
    assert_eq!(h1[2], "hooks/leader-settings-changed");
    let j = h1
        .iter()
        .position(|l| l == "hooks/cluster-relation-joined fix/0")
        .unwrap();
    assert_eq!(h1[j + 1], "hooks/cluster-relation-changed fix/0");
    let st = sim.status();
    let units = &st["applications"]["fix"]["units"];
    assert_eq!(units["fix/0"]["leader"], true);
    assert_eq!(units["fix/0"]["workload-status"]["current"], "active");
    assert_eq!(units["fix/0"]["open-ports"][0], "2379/tcp");
    assert_eq!(st["applications"]["fix"]["version"], "1.2.3");
    // The data fix/0 set in joined reached fix/1.
    let o = sim.exec("fix/1", "relation-get --format=json -r cluster:0 - fix/0");
    let bag: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(bag["joined-by"], "fix/0");

    // Removing the leader: fix/1 sees it depart and becomes leader.
    let root0 = sim.root("fix/0");
    let log0 = fs::read_to_string(root0.join("hooks.log")).unwrap();
    sim.ok(&["remove-unit", "fix/0"]);
    assert!(!root0.exists());
    let _ = log0;
    let h1 = sim.hooks("fix/1");
    let dep = h1
        .iter()
        .position(|l| l == "hooks/cluster-relation-departed fix/0")
        .unwrap();
    let le = h1.iter().position(|l| l == "hooks/leader-elected").unwrap();
    assert!(dep < le);
    let st = sim.status();
    assert_eq!(st["applications"]["fix"]["units"]["fix/1"]["leader"], true);
    assert!(st["applications"]["fix"]["units"].get("fix/0").is_none());
}

#[test]
fn removed_unit_runs_departure_hooks() {
    let sim = new_sim();
    sim.deploy("2");
    // Record fix/1's own hooks by copying its log aside from a hook.
    let keep = sim.dir.path().join("keep.log");
    fs::write(
        sim.charm.join("dispatch"),
        format!(
            "{}\ncat \"$ETCD_CHARM_ROOT/hooks.log\" > {} 2>/dev/null; exit 0\n",
            DISPATCH.trim_end().trim_end_matches("exit 0"),
            keep.display()
        ),
    )
    .unwrap();
    // The unit runs its own copy of the charm; update it.
    fs::copy(
        sim.charm.join("dispatch"),
        sim.home.join("units/fix-1/charm/dispatch"),
    )
    .unwrap();
    sim.ok(&["remove-unit", "fix/1"]);
    let log = fs::read_to_string(&keep).unwrap();
    let tail: Vec<&str> = log.lines().map(str::trim_end).collect();
    let n = tail.len();
    assert_eq!(
        &tail[n - 4..],
        &[
            "hooks/cluster-relation-departed fix/0",
            "hooks/cluster-relation-broken",
            "hooks/stop",
            "hooks/remove"
        ]
    );
}

#[test]
fn action_set_validation_and_outputs() {
    // run-action and show-action-output: a Juju 2.9 model.
    let sim = new_sim_29();
    sim.deploy("1");
    let out = sim.ok(&["run-action", "fix/0", "check", "--wait"]);
    let doc: Value = serde_yaml::from_str(&out).unwrap();
    // Juju 2.9's shape: under the unit's tag, ReturnCode only when non-zero.
    let doc = &doc["unit-fix-0"];
    assert_eq!(doc["status"], "completed");
    assert_eq!(doc["results"]["snapshot"]["path"], "/x");
    assert_eq!(doc["results"]["copy"]["cmd"], "juju scp a b");
    assert!(doc["results"].get("ReturnCode").is_none(), "{doc}");
    assert!(doc["log"][0].as_str().unwrap().ends_with("starting"));

    let queued = sim.ok(&["run-action", "fix/0", "check"]);
    assert_eq!(queued.trim(), "Action queued with id: \"2\"");
    let doc: Value = serde_yaml::from_str(&sim.ok(&["show-action-output", "\"2\""])).unwrap();
    assert_eq!(doc["id"], "2");
    assert_eq!(doc["UnitId"], "fix/0");

    // run-action --wait with action-fail exits 0 on 2.9 (Juju 3's run
    // exits 1: hardening.rs), the document says it failed.
    let o = sim.cmd(&[
        "run-action",
        "fix/0",
        "check",
        "fail=true",
        "--wait",
        "--format=json",
    ]);
    assert_eq!(o.status.code(), Some(0));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["unit-fix-0"]["status"], "failed");
    assert_eq!(j["unit-fix-0"]["message"], "asked to fail");
    assert!(
        j["unit-fix-0"]["results"].get("ReturnCode").is_none(),
        "{j}"
    );
    assert_eq!(j["unit-fix-0"]["id"], "3");

    // Non-zero exit without action-fail.
    let doc: Value =
        serde_yaml::from_str(&sim.ok(&["run-action", "fix/0", "boom", "--wait"])).unwrap();
    let doc = &doc["unit-fix-0"];
    assert_eq!(doc["status"], "failed");
    assert_eq!(doc["message"], "exit status 7");
    assert_eq!(doc["results"]["ReturnCode"], 7);

    // action-set key validation, from inside an action context.
    fs::write(
        sim.home.join("units/fix-0/charm/dispatch"),
        "#!/bin/sh\nfor a in good.nested-key=1 Foo=1 a..b=1 -a=1 stdout=1 nokey; do\n  if action-set -- \"$a\" 2>>\"$ETCD_CHARM_ROOT/err\"; then echo \"$a ok\"; else echo \"$a $?\"; fi >> \"$ETCD_CHARM_ROOT/res\"\ndone\n",
    )
    .unwrap();
    sim.ok(&["run-action", "fix/0", "keys"]);
    let res = fs::read_to_string(sim.root("fix/0").join("res")).unwrap();
    let lines: Vec<&str> = res.lines().collect();
    assert_eq!(lines[0], "good.nested-key=1 ok");
    for l in &lines[1..] {
        assert!(l.ends_with(" 1"), "{l} should have been refused");
    }
    let err = fs::read_to_string(sim.root("fix/0").join("err")).unwrap();
    assert!(err.contains("ERROR cannot set reserved action key \"stdout\""));
    assert!(err.contains("ERROR argument \"nokey\" must be of the form key...=value"));
    // Outside an action.
    let o = sim.exec("fix/0", "action-get");
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("ERROR not running an action"));
}

#[test]
fn action_params_typing() {
    // run-action and show-action-output: a Juju 2.9 model.
    let sim = new_sim_29();
    sim.deploy("1");
    fs::write(
        sim.home.join("units/fix-0/charm/dispatch"),
        "#!/bin/sh\naction-get --format=json > \"$ETCD_CHARM_ROOT/params.json\"\n",
    )
    .unwrap();
    sim.ok(&[
        "run-action",
        "fix/0",
        "check",
        "count=5",
        "name=007",
        "--wait",
    ]);
    let p: Value =
        serde_json::from_str(&fs::read_to_string(sim.root("fix/0").join("params.json")).unwrap())
            .unwrap();
    assert_eq!(p["count"], 5);
    assert_eq!(p["name"], "007");
    assert_eq!(p["fail"], false);
    let o = sim.cmd(&["run-action", "fix/0", "check", "foo=1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("additional property \"foo\" is not allowed")
    );
    // `yes` is a YAML 1.1 boolean (Juju parses values with go-yaml v2);
    // `maybe` is a string, refused for a boolean parameter.
    let o = sim.cmd(&["run-action", "fix/0", "check", "fail=maybe"]);
    assert_eq!(o.status.code(), Some(1));
    let o = sim.cmd(&["run-action", "fix/0", "nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr)
        .contains("ERROR action \"nope\" not defined on unit \"fix/0\""));
    // No action record was created by the refusals.
    let o = sim.cmd(&["show-action-output", "2"]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn hook_tools() {
    let sim = new_sim();
    sim.deploy("2");
    let o = sim.exec("fix/1", "leader-set a=b");
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not the leader"));
    assert_eq!(
        String::from_utf8_lossy(&sim.exec("fix/1", "is-leader --format=json").stdout).trim(),
        "false"
    );
    assert_eq!(
        String::from_utf8_lossy(&sim.exec("fix/0", "is-leader --format json").stdout).trim(),
        "true"
    );

    let cfg: Value =
        serde_json::from_slice(&sim.exec("fix/0", "config-get --format=json").stdout).unwrap();
    assert_eq!(cfg["port"], 2379);
    assert_eq!(cfg["on"], false);
    assert!(cfg.get("name").is_none());
    let cfg: Value =
        serde_json::from_slice(&sim.exec("fix/0", "config-get --format=json --all").stdout)
            .unwrap();
    assert!(cfg["name"].is_null() && cfg.as_object().unwrap().contains_key("name"));

    // relation-set from fix/0 fires relation-changed on fix/1.
    let before = sim.hooks("fix/1").len();
    let o = sim.exec("fix/0", "relation-set -r cluster:0 k=v");
    assert!(o.status.success());
    // exec commits at exit 0; fix/1's agent then runs relation-changed.
    sim.settle();
    let after = sim.hooks("fix/1");
    assert!(
        after[before..].contains(&"hooks/cluster-relation-changed fix/0".to_string()),
        "{after:?}"
    );
    let v = sim.exec("fix/1", "relation-get -r cluster:0 k fix/0");
    assert_eq!(String::from_utf8_lossy(&v.stdout).trim(), "v");
    let ids: Value = serde_json::from_slice(
        &sim.exec("fix/0", "relation-ids --format=json cluster")
            .stdout,
    )
    .unwrap();
    assert_eq!(ids, serde_json::json!(["cluster:0"]));
    let l: Value = serde_json::from_slice(
        &sim.exec("fix/0", "relation-list --format=json -r cluster:0")
            .stdout,
    )
    .unwrap();
    assert_eq!(l, serde_json::json!(["fix/1"]));

    let ng: Value = serde_json::from_slice(
        &sim.exec("fix/0", "network-get --format=json cluster")
            .stdout,
    )
    .unwrap();
    let addr = ng["ingress-addresses"][0].as_str().unwrap().to_string();
    assert!(addr.starts_with("127.") && !addr.starts_with("127.0.0."));
    assert_eq!(
        ng["bind-addresses"][0]["addresses"][0]["value"],
        addr.as_str()
    );
    assert_eq!(
        sim.status()["applications"]["fix"]["units"]["fix/0"]["public-address"],
        addr.as_str()
    );
    let o = sim.exec("fix/0", "network-get nope");
    assert_eq!(o.status.code(), Some(1));

    let o = sim.exec("fix/0", "resource-get blob");
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("resource#fix/blob not found"));
    let blob = sim.dir.path().join("b");
    fs::write(&blob, "data").unwrap();
    let before = sim.hooks("fix/0").len();
    sim.ok(&[
        "attach-resource",
        "fix",
        &format!("blob={}", blob.display()),
    ]);
    let h = sim.hooks("fix/0");
    assert_eq!(
        &h[before..before + 2],
        &["hooks/upgrade-charm", "hooks/config-changed"]
    );
    let o = sim.exec("fix/0", "resource-get blob");
    // The path on this machine: the unit's path under its root.
    let p = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert_eq!(
        Path::new(&p),
        sim.root("fix/0")
            .join("var/lib/juju/agents/unit-fix-0/resources/blob/blob.bin")
    );
    assert_eq!(fs::read_to_string(&p).unwrap(), "data");

    // Secrets round trip.
    let o = sim.exec("fix/0", "secret-add --label l pass-word=s3cret");
    let uri = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert!(uri.starts_with("secret:") && uri.len() == 27, "{uri}");
    let got: Value = serde_json::from_slice(
        &sim.exec("fix/1", &format!("secret-get --format=json {uri}"))
            .stdout,
    )
    .unwrap();
    assert_eq!(got["pass-word"], "s3cret");

    // config: set, no change → no hook; failing hook → error + resolved.
    let before = sim.hooks("fix/0").len();
    sim.ok(&["config", "fix", "port=2379"]);
    assert_eq!(sim.hooks("fix/0").len(), before);
    assert_eq!(sim.ok(&["config", "fix", "port"]).trim(), "2379");
    assert_eq!(
        sim.cmd(&["config", "fix", "port=abc"]).status.code(),
        Some(1)
    );
    fs::write(sim.root("fix/0").join("fail-config"), "").unwrap();
    sim.ok(&["config", "fix", "port=2400"]);
    let st = sim.status();
    assert_eq!(
        st["applications"]["fix"]["units"]["fix/0"]["workload-status"]["current"],
        "error"
    );
    assert_eq!(
        st["applications"]["fix"]["units"]["fix/0"]["workload-status"]["message"],
        "hook failed: \"config-changed\""
    );
    fs::remove_file(sim.root("fix/0").join("fail-config")).unwrap();
    sim.ok(&["resolved", "fix/0"]);
    let st = sim.status();
    assert_eq!(
        st["applications"]["fix"]["units"]["fix/0"]["workload-status"]["current"],
        "active"
    );
}

const SLEEP_UNIT: &str = "[Unit]\nDescription=s\n[Service]\nExecStart=/bin/sleep \\\n  300\n";

fn pid_alive(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            let st = s
                .rsplit(')')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .next()
                .unwrap_or("");
            st != "Z"
        })
        .unwrap_or(false)
}

fn write_unit(root: &Path, name: &str, text: &str) {
    let d = root.join("etc/systemd/system");
    fs::create_dir_all(&d).unwrap();
    fs::write(d.join(name), text).unwrap();
}

fn tracked_pid(sim: &Sim, unit: &str, svc: &str) -> i32 {
    let s = fs::read_to_string(
        sim.home
            .join("units")
            .join(unit.replace('/', "-"))
            .join("systemd")
            .join(format!("{svc}.json")),
    )
    .unwrap();
    let v: Value = serde_json::from_str(&s).unwrap();
    v["pid"].as_i64().unwrap() as i32
}

#[test]
fn systemctl_stand_in() {
    let sim = new_sim();
    sim.deploy("1");
    let root = sim.root("fix/0");
    write_unit(&root, "sl.service", SLEEP_UNIT);
    write_unit(&root, "bad.service", "[Service]\nExecStart=/bin/false\n");
    assert_eq!(
        sim.exec("fix/0", "systemctl is-active sl").status.code(),
        Some(3)
    );
    assert!(sim
        .exec("fix/0", "systemctl enable --now sl.service")
        .status
        .success());
    assert_eq!(
        sim.exec("fix/0", "systemctl is-active --quiet sl")
            .status
            .code(),
        Some(0)
    );
    assert_eq!(
        String::from_utf8_lossy(&sim.exec("fix/0", "systemctl is-enabled sl").stdout).trim(),
        "enabled"
    );
    let pid = tracked_pid(&sim, "fix/0", "sl.service");
    assert!(pid_alive(pid));
    assert!(sim.exec("fix/0", "systemctl start sl").status.success());
    assert_eq!(tracked_pid(&sim, "fix/0", "sl.service"), pid);
    assert!(sim.exec("fix/0", "systemctl stop sl").status.success());
    assert_eq!(
        sim.exec("fix/0", "systemctl is-active sl").status.code(),
        Some(3)
    );
    assert!(!pid_alive(pid));
    let o = sim.exec("fix/0", "systemctl start bad");
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("Job for bad.service failed"));
    let o = sim.exec("fix/0", "systemctl start missing");
    assert_eq!(o.status.code(), Some(5));
    assert!(sim.exec("fix/0", "systemctl mask sl").status.success());
    assert_eq!(
        sim.exec("fix/0", "systemctl start sl").status.code(),
        Some(1)
    );
}

#[test]
fn destroy_model_kills_everything() {
    let sim = new_sim();
    sim.deploy("1");
    write_unit(&sim.root("fix/0"), "sl.service", SLEEP_UNIT);
    assert!(sim.exec("fix/0", "systemctl start sl").status.success());
    let pid = tracked_pid(&sim, "fix/0", "sl.service");
    assert!(pid_alive(pid));
    let addr = sim.status()["applications"]["fix"]["units"]["fix/0"]["public-address"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(sim.addrs.join(&addr).exists());
    sim.ok(&["destroy-model", "-y"]);
    assert!(!pid_alive(pid));
    assert!(!sim.home.exists());
    assert!(!sim.addrs.join(&addr).exists());
}

#[test]
fn parallel_models_get_distinct_addresses() {
    let a = new_sim();
    let mut b = new_sim();
    b.addrs = a.addrs.clone();
    let (ca, cb) = (
        a.charm.to_string_lossy().to_string(),
        b.charm.to_string_lossy().to_string(),
    );
    let ta = std::thread::spawn({
        let home = a.home.clone();
        let addrs = a.addrs.clone();
        move || {
            Command::new(env!("CARGO_BIN_EXE_juju-sim"))
                .args(["deploy", &ca, "-n", "2"])
                .env("JUJU_SIM_HOME", home)
                .env("JUJU_SIM_ADDR_DIR", addrs)
                .status()
                .unwrap()
        }
    });
    b.ok(&["deploy", &cb, "-n", "2"]);
    assert!(ta.join().unwrap().success());
    let mut all = Vec::new();
    for s in [&a, &b] {
        let st = s.status();
        for (_, u) in st["applications"]["fix"]["units"].as_object().unwrap() {
            all.push(u["public-address"].as_str().unwrap().to_string());
        }
    }
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), n, "addresses clash: {all:?}");
    assert_eq!(n, 4);
}

/// Juju's contract for application-owned secrets: only the leader creates
/// and updates them; every unit of the application reads them by URI;
/// units of another application cannot see them; a unit-owned secret stays
/// with its unit; a new leader manages the secret the old one made.
#[test]
fn application_secrets_are_shared_by_the_application_and_managed_by_the_leader() {
    let sim = new_sim();
    sim.deploy("3");
    let charm = sim.charm.to_string_lossy().to_string();
    sim.ok(&["deploy", &charm, "other"]);
    let out = |o: Output| {
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).trim().to_string(),
            String::from_utf8_lossy(&o.stderr).trim().to_string(),
        )
    };

    // A non-leader cannot create an application-owned secret.
    let (code, _, err) = out(sim.exec("fix/1", "secret-add --owner application ca-key=k1"));
    assert_ne!(code, Some(0));
    assert!(err.contains("not the leader"), "{err}");

    let (code, uri, err) = out(sim.exec(
        "fix/0",
        "secret-add --owner application --label ca ca-cert=c1 ca-key=k1",
    ));
    assert_eq!(code, Some(0), "{err}");
    assert!(uri.starts_with("secret:"), "{uri}");
    for unit in ["fix/0", "fix/1", "fix/2"] {
        let (code, got, err) = out(sim.exec(unit, &format!("secret-get --format=json {uri}")));
        assert_eq!(code, Some(0), "{unit}: {err}");
        let got: Value = serde_json::from_str(&got).unwrap();
        assert_eq!(got["ca-key"], "k1", "{unit}");
        assert_eq!(got["ca-cert"], "c1", "{unit}");
    }
    // Another application's unit does not see it.
    let (code, _, err) = out(sim.exec("other/0", &format!("secret-get {uri}")));
    assert_ne!(code, Some(0));
    assert!(err.contains("not found"), "{err}");
    // Only the leader writes a new revision.
    let (code, _, err) = out(sim.exec("fix/1", &format!("secret-set {uri} ca-key=k2")));
    assert_ne!(code, Some(0));
    assert!(err.contains("not the leader"), "{err}");

    // A unit-owned secret is its unit's alone.
    let (code, mine, _) = out(sim.exec("fix/1", "secret-add --owner unit own-key=u1"));
    assert_eq!(code, Some(0));
    let (code, _, _) = out(sim.exec("fix/2", &format!("secret-get {mine}")));
    assert_ne!(code, Some(0));

    // The leader goes away: the new leader manages the same secret.
    sim.ok(&["remove-unit", "fix/0"]);
    let st = sim.status();
    let leader = ["fix/1", "fix/2"]
        .into_iter()
        .find(|u| st["applications"]["fix"]["units"][u]["leader"] == true)
        .expect("a new leader");
    let (code, _, err) = out(sim.exec(leader, &format!("secret-set {uri} ca-key=k2")));
    assert_eq!(code, Some(0), "{err}");
    for unit in ["fix/1", "fix/2"] {
        let (_, got, _) = out(sim.exec(unit, &format!("secret-get --format=json {uri}")));
        let got: Value = serde_json::from_str(&got).unwrap();
        assert_eq!(got["ca-key"], "k2", "{unit}");
    }
}

/// `juju integrate`: one application provides what the other requires.
/// Each side names the relation with its own endpoint and the same number,
/// sees the other side's units join, change, and depart, and reads the
/// data they set.
#[test]
fn integrate_relates_two_applications() {
    let sim = new_sim();
    sim.deploy("2");
    let cons = sim.charm.parent().unwrap().join("consumer");
    common::write_charm(
        &cons,
        &Charm {
            metadata: "name: cons\nrequires:\n  backend:\n    interface: fix\n",
            config: None,
            actions: None,
            dispatch: Some(DISPATCH),
        },
    );
    sim.ok(&["deploy", &cons.to_string_lossy(), "cons"]);

    // No shared interface with the wrong endpoint named.
    assert_ne!(
        sim.cmd(&["integrate", "fix:cluster", "cons"]).status.code(),
        Some(0)
    );
    sim.ok(&["integrate", "fix", "cons"]);
    assert_ne!(
        sim.cmd(&["relate", "fix", "cons"]).status.code(),
        Some(0),
        "a second identical relation"
    );
    let hooks = sim.hooks("cons/0");
    for want in [
        "hooks/backend-relation-created",
        "hooks/backend-relation-joined fix/0",
        "hooks/backend-relation-changed fix/1",
    ] {
        assert!(hooks.iter().any(|h| h == want), "{want}: {hooks:?}");
    }
    assert!(sim
        .hooks("fix/1")
        .iter()
        .any(|h| h == "hooks/db-relation-joined cons/0"));

    let out = |unit: &str, cmd: &str| {
        let o = sim.exec(unit, cmd);
        assert!(
            o.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    let ids: Vec<String> =
        serde_json::from_str(&out("cons/0", "relation-ids --format=json backend")).unwrap();
    let db: Vec<String> =
        serde_json::from_str(&out("fix/0", "relation-ids --format=json db")).unwrap();
    assert_eq!(ids.len(), 1);
    assert_eq!(
        ids[0].split_once(':').unwrap().1,
        db[0].split_once(':').unwrap().1
    );
    assert!(ids[0].starts_with("backend:") && db[0].starts_with("db:"));
    let listed: Vec<String> = serde_json::from_str(&out(
        "cons/0",
        &format!("relation-list --format=json -r {}", ids[0]),
    ))
    .unwrap();
    assert_eq!(listed, ["fix/0", "fix/1"]);
    assert_eq!(
        out("cons/0", &format!("relation-list -r {} --app", ids[0])),
        "fix"
    );

    // Data set by a provider unit reaches the consumer, with a changed hook.
    let before = sim.hooks("cons/0").len();
    out(
        "fix/0",
        &format!("relation-set -r {} url=https://x:2379", db[0]),
    );
    sim.ok(&["run-hook", "fix/0", "update-status"]);
    let got: Value = serde_json::from_str(&out(
        "cons/0",
        &format!("relation-get --format=json -r {} - fix/0", ids[0]),
    ))
    .unwrap();
    assert_eq!(got["url"], "https://x:2379");
    assert!(sim.hooks("cons/0")[before..]
        .iter()
        .any(|h| h == "hooks/backend-relation-changed fix/0"));

    // New provider units join; removed ones depart.
    sim.ok(&["add-unit", "fix"]);
    assert!(sim
        .hooks("cons/0")
        .iter()
        .any(|h| h == "hooks/backend-relation-joined fix/2"));
    sim.ok(&["remove-unit", "fix/1"]);
    assert!(sim
        .hooks("cons/0")
        .iter()
        .any(|h| h == "hooks/backend-relation-departed fix/1"));
    let listed: Vec<String> = serde_json::from_str(&out(
        "cons/0",
        &format!("relation-list --format=json -r {}", ids[0]),
    ))
    .unwrap();
    assert_eq!(listed, ["fix/0", "fix/2"]);
    let st = sim.status();
    // Juju 3's shape: a list of objects per endpoint.
    let rel = &st["applications"]["cons"]["relations"]["backend"][0];
    assert_eq!(rel["related-application"], "fix");
    assert_eq!(rel["interface"], "fix");
    assert_eq!(rel["scope"], "global");
}

/// The harness settles after the verbs that queue work: 2.9's `run` in its
/// command shape (it may queue hooks on other units, as `exec` does), not
/// Juju 3's `run UNIT ACTION`, and not a `config` that only reads.
#[test]
fn the_harness_settles_after_verbs_that_queue_work() {
    use common::settles;
    assert!(settles(&["exec", "--unit", "fix/0", "--", "true"]));
    assert!(settles(&["run-hook", "fix/0", "update-status"]));
    assert!(settles(&["run", "--unit", "fix/0", "--", "true"]));
    assert!(settles(&["run", "-u", "fix/0", "--", "true"]));
    assert!(settles(&["run", "--app=fix", "--", "true"]));
    assert!(!settles(&["run", "fix/0", "check"]));
    assert!(settles(&["config", "fix", "port=1"]));
    assert!(!settles(&["config", "fix", "port"]));
    assert!(!settles(&["status"]));
}
