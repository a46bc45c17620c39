//! Real clients against the simulator: Canonical's `jubilant` (the CLI
//! wrapper charm integration tests use) drives `juju-sim` as `juju`,
//! through `tests/clients/jubilant_smoke.py`. It needs a Python with
//! jubilant installed, named by `JUBILANT_PYTHON` (e.g. a venv's
//! `bin/python` after `pip install jubilant`); without it the test says so
//! and passes, as it cannot run.

mod common;

use common::Charm;
use std::fs;
use std::path::Path;
use std::process::Command;

/// The jubilant smoke test's charm.
const CHARM: Charm = Charm {
    metadata: "name: fix\npeers:\n  cluster:\n    interface: fix\n",
    config: Some("options:\n  name:\n    type: string\n    default: ''\n    description: n\n"),
    actions: Some("sleep:\n  description: s\n  params:\n    seconds:\n      type: number\npeek:\n  description: p\n  params:\n    fail:\n      type: boolean\n"),
    dispatch: Some("#!/bin/sh\ncase \"$JUJU_DISPATCH_PATH\" in\n  hooks/start|hooks/config-changed) status-set active ready ;;\n  actions/sleep) sleep \"$(action-get seconds)\"; echo slept ;;\n  actions/peek) [ \"$(action-get fail)\" = True ] && action-fail \"asked to fail\" ;;\nesac\nexit 0\n"),
};

#[test]
fn jubilant_drives_the_simulator() {
    let Some(python) = std::env::var_os("JUBILANT_PYTHON") else {
        eprintln!("JUBILANT_PYTHON is not set: the jubilant client test cannot run");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_juju-sim"), bin.join("juju")).unwrap();
    let charm = dir.path().join("charm");
    common::write_charm(&charm, &CHARM);
    let home = dir.path().join("sim");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/jubilant_smoke.py");
    let out = Command::new(python)
        .arg(&script)
        .arg(&charm)
        .env("PATH", path)
        .env("JUJU_SIM_HOME", &home)
        .env("JUJU_SIM_ADDR_DIR", dir.path().join("addrs"))
        .env("JUJU_SIM_RETRY_DELAY", "1s")
        .output()
        .unwrap();
    let _ = Command::new(env!("CARGO_BIN_EXE_juju-sim"))
        .args(["destroy-model", "-y"])
        .env("JUJU_SIM_HOME", &home)
        .env("JUJU_SIM_ADDR_DIR", dir.path().join("addrs"))
        .output();
    assert!(
        out.status.success(),
        "jubilant failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("jubilant OK"));
}

/// Runs juju-sim for the ops tests' model.
fn sim(home: &Path, addrs: &Path, env: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_juju-sim"))
        .args(args)
        .env("JUJU_SIM_HOME", home)
        .env("JUJU_SIM_ADDR_DIR", addrs)
        .env("JUJU_SIM_RETRY_DELAY", "1s")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn ok(o: std::process::Output) -> String {
    assert!(
        o.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A Python `ops` charm (tests/clients/opscharm) on Juju 3.x and 2.9: it
/// needs `OPS_PYTHON`, a Python with `ops` installed (PyPI).
#[test]
fn an_ops_charm_deploys_on_3x_and_29() {
    let Some(python) = std::env::var("OPS_PYTHON").ok() else {
        eprintln!("OPS_PYTHON is not set: the ops charm test cannot run");
        return;
    };
    let charm = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/opscharm");
    let charm = charm.to_string_lossy().to_string();
    let dir = tempfile::tempdir().unwrap();
    let addrs = dir.path().join("addrs");
    let blob = dir.path().join("blob.bin");
    fs::write(&blob, "blob").unwrap();

    // Juju 3: secrets, resources, statuses, ports, actions, peer data.
    let home = dir.path().join("m3");
    let env3 = [("OPS_PYTHON", python.as_str())];
    let res = format!("blob={}", blob.display());
    ok(sim(
        &home,
        &addrs,
        &env3,
        &["deploy", &charm, "-n", "2", "--resource", &res],
    ));
    ok(sim(&home, &addrs, &env3, &["wait-idle", "--timeout", "5m"]));
    let st: serde_json::Value =
        serde_json::from_str(&ok(sim(&home, &addrs, &env3, &["status", "--format=json"]))).unwrap();
    let app = &st["applications"]["opsfix"];
    assert_eq!(app["application-status"]["message"], "app ok", "{st}");
    for u in ["opsfix/0", "opsfix/1"] {
        let w = &app["units"][u]["workload-status"];
        assert_eq!(w["current"], "active", "{st}");
        assert!(
            w["message"].as_str().unwrap().starts_with("ready 127."),
            "{st}"
        );
        assert_eq!(app["units"][u]["open-ports"][0], "8080/tcp", "{st}");
    }
    let root = home.join("units/opsfix-0/root");
    assert_eq!(
        fs::read_to_string(root.join("juju-version")).unwrap(),
        "3.6.12"
    );
    assert_eq!(
        fs::read_to_string(root.join("resource")).unwrap(),
        "blob.bin:blob",
        "the charm reads the resource at the path resource-get printed"
    );
    assert!(fs::read_to_string(root.join("secret"))
        .unwrap()
        .starts_with("secret:"));
    ok(sim(&home, &addrs, &env3, &["config", "opsfix", "name=bob"]));
    ok(sim(&home, &addrs, &env3, &["wait-idle", "--timeout", "5m"]));
    let st: serde_json::Value =
        serde_json::from_str(&ok(sim(&home, &addrs, &env3, &["status", "--format=json"]))).unwrap();
    let msg = st["applications"]["opsfix"]["units"]["opsfix/1"]["workload-status"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(msg.ends_with("for bob"), "{msg}");
    let r: serde_json::Value = serde_json::from_str(&ok(sim(
        &home,
        &addrs,
        &env3,
        &["run", "opsfix/leader", "greet", "who=ann", "--format=json"],
    )))
    .unwrap();
    assert_eq!(r["opsfix/0"]["results"]["greeting"], "hello ann", "{r}");
    let o = sim(
        &home,
        &addrs,
        &env3,
        &["run", "opsfix/1", "fail-me", "--format=json"],
    );
    // event.fail() and a clean exit: the task failed, its return code is
    // 0, and Juju's `run` exits 0 (it fails the verb on return codes).
    assert_eq!(o.status.code(), Some(0));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["opsfix/1"]["message"], "asked to fail", "{r}");
    assert_eq!(r["opsfix/1"]["status"], "failed", "{r}");
    assert_eq!(r["opsfix/1"]["results"]["return-code"], 0, "{r}");
    let r: serde_json::Value = serde_json::from_str(&ok(sim(
        &home,
        &addrs,
        &env3,
        &["run", "opsfix/1", "secret-info", "--format=json"],
    )))
    .unwrap_or_default();
    assert_eq!(r["opsfix/1"]["results"]["token"], "abc123", "{r}");
    let peer = ok(sim(
        &home,
        &addrs,
        &env3,
        &[
            "exec",
            "--unit",
            "opsfix/1",
            "--",
            "relation-get --app -r cluster:0 leader-says opsfix",
        ],
    ));
    assert_eq!(peer.trim(), "hi");
    ok(sim(&home, &addrs, &env3, &["destroy-model", "-y"]));

    // Juju 2.9: no secrets (the charm sees has_secrets false), run-action.
    let home = dir.path().join("m29");
    let env29 = [
        ("OPS_PYTHON", python.as_str()),
        ("JUJU_SIM_AGENT_VERSION", "2.9.49"),
    ];
    ok(sim(&home, &addrs, &env29, &["deploy", &charm]));
    ok(sim(
        &home,
        &addrs,
        &env29,
        &["wait-idle", "--timeout", "5m"],
    ));
    let root = home.join("units/opsfix-0/root");
    assert_eq!(
        fs::read_to_string(root.join("juju-version")).unwrap(),
        "2.9.49"
    );
    assert_eq!(
        fs::read_to_string(root.join("secret")).unwrap(),
        "unavailable"
    );
    assert!(fs::read_to_string(root.join("resource"))
        .unwrap()
        .starts_with("absent"));
    let d: serde_yaml::Value = serde_yaml::from_str(&ok(sim(
        &home,
        &addrs,
        &env29,
        &["run-action", "opsfix/0", "greet", "who=zed", "--wait"],
    )))
    .unwrap();
    assert_eq!(
        d["unit-opsfix-0"]["results"]["greeting"], "hello zed",
        "{d:?}"
    );
    ok(sim(&home, &addrs, &env29, &["destroy-model", "-y"]));
}
