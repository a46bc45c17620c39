//! Regression tests for the places where juju-sim used to differ from Juju:
//! action parameter parsing (YAML values, `--params`, `--string-args`),
//! `juju run` output formats and `--background`, `action-set` key
//! collisions, missing keys in `relation-get`/`leader-get`, `juju config`'s
//! document, relative `scp` destinations, old-style and non-executable
//! charms, and `destroy-model` with a hook that hangs.

mod common;

use common::{Charm, Settle, Sim, JUJU_29};
use serde_json::Value;
use std::fs;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const DISPATCH: &str = r#"#!/bin/sh
case "$JUJU_DISPATCH_PATH" in
  hooks/install) status-set maintenance "installing it now" ;;
  hooks/start) status-set active ;;
  hooks/config-changed) echo cc >> "$ETCD_CHARM_ROOT/config-changed" ;;
  hooks/hang) sleep 300 ;;
  hooks/bg) (sleep 300 &) ; echo started-bg ;;
  actions/check) action-get --format=json > "$ETCD_CHARM_ROOT/params-$JUJU_ACTION_UUID.json"; action-set out.v=1 ;;
  actions/sets) action-set a=1 a.b=2 c.d=3 c=4 e=x=y f= g=1 g=2 n=007 ;;
  actions/nested) action-set got="$(action-get p.q)" all="$(action-get --format=json)" ;;
  actions/slow) sleep 2; action-set done=yes ;;
  actions/fail) action-set partial=1; action-fail "it broke" ;;
  actions/tools)
    action-set rel="$(relation-get --format=json -r cluster:0 nokey "$JUJU_UNIT_NAME")" \
               lead="$(leader-get --format=json nokey)" ;;
esac
exit 0
"#;

const CHARM: Charm = Charm {
    metadata: "name: fix\npeers:\n  cluster:\n    interface: fix\nresources:\n  blob:\n    type: file\n    filename: blob.bin\n",
    config: Some(common::CONFIG),
    actions: Some("check:\n  description: c\n  params:\n    target:\n      type: string\n    revision:\n      type: string\n      default: \"\"\n    skip-backup:\n      type: boolean\n      default: false\n    count:\n      type: integer\n  additionalProperties: false\nsets:\n  description: s\nnested:\n  description: n\nslow:\n  description: s\nfail:\n  description: f\ntools:\n  description: t\n"),
    dispatch: Some(DISPATCH),
};

/// The fixture charm without its `dispatch` (old-style charms bring
/// their own hooks).
const CHARM_NO_DISPATCH: Charm = Charm {
    dispatch: None,
    ..CHARM
};

/// A model of the fixture charm on Juju 3; verbs settle.
fn new_sim() -> Sim {
    Sim::new(&CHARM, &[], Settle::Auto)
}

/// A model on Juju 2.9, for tests of 2.9's `run-action` (not a command
/// on Juju 3).
fn new_sim_29() -> Sim {
    Sim::new(&CHARM, &[JUJU_29], Settle::Auto)
}

/// This file's helpers on a model.
trait Hardening {
    /// The parameters action `id` saw (the fixture's `check` writes them).
    fn params(&self, id: &str) -> Value;
    /// Parsed YAML output; the task document is unwrapped from its unit
    /// key (see [`unwrap_unit`]).
    fn yaml(&self, args: &[&str]) -> Value;
}

impl Hardening for Sim {
    fn params(&self, id: &str) -> Value {
        let p = self.root("fix/0").join(format!("params-{id}.json"));
        serde_json::from_str(&fs::read_to_string(p).unwrap()).unwrap()
    }

    fn yaml(&self, args: &[&str]) -> Value {
        let v: Value = serde_yaml::from_str(&self.ok(args)).unwrap();
        unwrap_unit(v)
    }
}

/// The document under a single `unit-APP-N` key (2.9's `run-action
/// --wait`) or `APP/N` key (Juju 3's `run --format=yaml`), else the
/// document.
fn unwrap_unit(v: Value) -> Value {
    match v.as_object() {
        Some(m) if m.len() == 1 && m.keys().all(|k| k.starts_with("unit-") || k.contains('/')) => {
            m.values().next().cloned().unwrap_or(Value::Null)
        }
        _ => v,
    }
}

fn last_id(doc: &Value) -> String {
    doc["id"].as_str().unwrap().to_string()
}

#[test]
fn action_params_are_parsed_like_juju() {
    let sim = new_sim();
    sim.deploy("1");
    // YAML values: True is a boolean, /mnt/x a string, 5 an integer; a
    // string-typed parameter keeps digits as text.
    let d = sim.yaml(&[
        "run",
        "fix/0",
        "check",
        "target=/mnt/x",
        "skip-backup=True",
        "count=5",
        "--format=yaml",
    ]);
    assert_eq!(d["status"], "completed", "{d:?}");
    let p = sim.params(&last_id(&d));
    assert_eq!(p["target"], "/mnt/x");
    assert_eq!(p["skip-backup"], true);
    assert_eq!(p["count"], 5);

    // As in Juju, a value is YAML: 1234 is an integer, which a string-typed
    // parameter refuses; --string-args keeps it as text.
    let r = sim.cmd(&["run", "fix/0", "check", "revision=1234", "--format=yaml"]);
    assert_eq!(r.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&r.stderr).contains("Expected: string, given: integer"));
    let d = sim.yaml(&[
        "run",
        "fix/0",
        "check",
        "revision=1234",
        "--string-args",
        "--format=yaml",
    ]);
    assert_eq!(sim.params(&last_id(&d))["revision"], "1234");

    // yes/on are YAML 1.1 booleans, as in go-yaml v2.
    let d = sim.yaml(&["run", "fix/0", "check", "skip-backup=yes", "--format=yaml"]);
    assert_eq!(sim.params(&last_id(&d))["skip-backup"], true);

    // --params file, overridden by KEY=VALUE; a relative path.
    fs::write(
        sim.dir.path().join("p.yaml"),
        "target: /from/file\ncount: 9\n",
    )
    .unwrap();
    let o = sim
        .command(&[
            "run",
            "fix/0",
            "check",
            "--params",
            "p.yaml",
            "count=2",
            "--format=yaml",
        ])
        .current_dir(sim.dir.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let d = unwrap_unit(serde_yaml::from_slice(&o.stdout).unwrap());
    let p = sim.params(&last_id(&d));
    assert_eq!(p["target"], "/from/file");
    assert_eq!(p["count"], 2);

    // --string-args keeps strings: a boolean parameter then refuses "true".
    let o = sim.cmd(&["run", "fix/0", "check", "--string-args", "skip-backup=true"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("Expected: boolean, given: string"));
    // Integer where a string-only value is given; bad keys; no `=`.
    let o = sim.cmd(&["run", "fix/0", "check", "count=abc"]);
    assert_eq!(o.status.code(), Some(1));
    let o = sim.cmd(&["run", "fix/0", "check", "Bad=1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("key \"Bad\" must start and end"));
    let o = sim.cmd(&["run", "fix/0", "check", "count"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("must be of the form key.key.key...=value"));

    // Dotted keys nest; action-get of a nested key.
    let out = sim.ok(&[
        "run",
        "fix/0",
        "nested",
        "p.q=deep",
        "p.r=x",
        "--format=json",
    ]);
    let j: Value = serde_json::from_str(&out).unwrap();
    let r = &j["fix/0"]["results"];
    assert_eq!(r["got"], "deep");
    let all: Value = serde_json::from_str(r["all"].as_str().unwrap()).unwrap();
    assert_eq!(all["p"]["q"], "deep");
    assert_eq!(all["p"]["r"], "x");
    // No parameters: action-get prints {}.
    let j: Value =
        serde_json::from_str(&sim.ok(&["run", "fix/0", "nested", "--format=json"])).unwrap();
    assert_eq!(j["fix/0"]["results"]["all"], "{}");
}

#[test]
fn run_formats_background_and_show_task() {
    let sim = new_sim();
    sim.deploy("1");
    // Default (plain): the results map, as YAML, without return-code.
    let y: Value = serde_yaml::from_str(&sim.ok(&["run", "fix/0", "sets"])).unwrap();
    assert_eq!(y["e"], "x=y");
    assert!(y.get("return-code").is_none(), "{y:?}");
    // --format=yaml: the whole task keyed by unit.
    let y: Value =
        serde_yaml::from_str(&sim.ok(&["run", "fix/0", "sets", "--format=yaml"])).unwrap();
    let t = &y["fix/0"];
    assert_eq!(t["status"], "completed");
    assert_eq!(t["unit"], "fix/0");
    assert_eq!(t["results"]["return-code"], 0);
    assert!(t["timing"]["completed"].is_string());
    // action-set: first `=` splits, empty values, last key wins, values
    // stay strings, a value replaces a map and a map replaces a value.
    let r = &t["results"];
    assert_eq!(r["e"], "x=y");
    assert_eq!(r["f"], "");
    assert_eq!(r["g"], "2");
    assert_eq!(r["n"], "007");
    assert_eq!(r["a"]["b"], "2");
    assert_eq!(r["c"], "4");

    // A task failed by action-fail, whose dispatch exits 0: plain says why
    // on stdout, and the verb exits 0, as Juju's fails only on a return
    // code (an action that exits non-zero fails it: see controller.rs).
    let o = sim.cmd(&["run", "fix/0", "fail"]);
    assert_eq!(o.status.code(), Some(0));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("failed: it broke"), "{out}");
    assert!(!String::from_utf8_lossy(&o.stderr).contains("the following task failed"));

    // --background returns before the task is done; show-task waits.
    let start = Instant::now();
    let o = sim.cmd(&["run", "fix/0", "slow", "--background"]);
    assert!(o.status.success());
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    let id = err
        .split_whitespace()
        .skip_while(|w| *w != "task")
        .nth(1)
        .unwrap()
        .to_string();
    // Without --wait, show-task shows the task as it is now.
    let now: Value = serde_json::from_str(&sim.ok(&["show-task", &id, "--format=json"])).unwrap();
    assert!(
        now["status"] == "pending" || now["status"] == "running",
        "{now}"
    );
    assert!(now.get("results").is_none(), "{now}");
    let j: Value =
        serde_json::from_str(&sim.ok(&["show-task", &id, "--wait=1m", "--format=json"])).unwrap();
    assert_eq!(j["status"], "completed", "{j}");
    assert_eq!(j["results"]["done"], "yes");
    // An id in quotes, as `Action queued with id: "N"` prints it.
    let q = format!("\"{id}\"");
    assert_eq!(sim.yaml(&["show-operation", &q])["status"], "completed");
}

#[test]
fn concurrent_actions_get_distinct_ids() {
    // Two run-action --wait at once: a Juju 2.9 model.
    let sim = new_sim_29();
    sim.deploy("1");
    let kids: Vec<_> = (0..2)
        .map(|_| {
            sim.command(&["run-action", "fix/0", "slow", "--wait"])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let start = Instant::now();
    let mut ids = Vec::new();
    for k in kids {
        let o = k.wait_with_output().unwrap();
        assert!(o.status.success());
        let d = unwrap_unit(serde_yaml::from_slice(&o.stdout).unwrap());
        assert_eq!(d["status"], "completed");
        ids.push(last_id(&d));
    }
    // One after the other: actions take the machine lock, as Juju's do.
    assert!(
        start.elapsed() >= Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
    assert_ne!(ids[0], ids[1]);
    let m: Value =
        serde_json::from_str(&fs::read_to_string(sim.home.join("model.json")).unwrap()).unwrap();
    assert!(m["actions"][&ids[0]].is_object() && m["actions"][&ids[1]].is_object());
}

#[test]
fn hook_tools_missing_keys_and_no_context() {
    let sim = new_sim();
    sim.deploy("1");
    let j: Value =
        serde_json::from_str(&sim.ok(&["run", "fix/0", "tools", "--format=json"])).unwrap();
    assert_eq!(j["fix/0"]["results"]["rel"], "null");
    assert_eq!(j["fix/0"]["results"]["lead"], "null");
    // A hook tool outside a hook: a clear error and exit 1.
    let tool = sim.home.join("tools/status-set");
    for unit in [None, Some("")] {
        let mut c = Command::new(&tool);
        c.args(["active", "x"])
            .env("JUJU_SIM_HOME", &sim.home)
            .env_remove("JUJU_UNIT_NAME");
        if let Some(u) = unit {
            c.env("JUJU_UNIT_NAME", u);
        }
        let o = c.output().unwrap();
        assert_eq!(o.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&o.stderr).contains("JUJU_UNIT_NAME is not set"));
    }
    // status-set with spaces; status JSON keeps `since`.
    let st: Value = serde_json::from_str(&sim.ok(&["status", "--format=json"])).unwrap();
    let w = &st["applications"]["fix"]["units"]["fix/0"]["workload-status"];
    assert_eq!(w["current"], "active");
    assert!(w["since"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn config_document_and_refusals() {
    let sim = new_sim();
    sim.deploy("1");
    let cc = || {
        fs::read_to_string(sim.root("fix/0").join("config-changed"))
            .unwrap()
            .lines()
            .count()
    };
    let before = cc();
    let y = sim.yaml(&["config", "fix"]);
    assert_eq!(y["application"], "fix");
    assert_eq!(y["charm"], "fix");
    assert_eq!(y["application-config"]["trust"]["value"], false);
    let s = &y["settings"];
    assert_eq!(s["name"]["source"], "unset");
    assert!(s["name"].get("value").is_none());
    assert_eq!(s["port"]["source"], "default");
    assert_eq!(s["port"]["value"], 2379);
    assert_eq!(s["port"]["type"], "int");

    let o = sim.cmd(&["config", "fix", "port=abc"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("option \"port\" expected int, got \"abc\"")
    );
    assert_eq!(cc(), before, "a refused value fired config-changed");

    // A value equal to the default shows as the default.
    sim.ok(&["config", "fix", "port=2379"]);
    assert_eq!(
        sim.yaml(&["config", "fix"])["settings"]["port"]["source"],
        "default"
    );
    sim.ok(&["config", "fix", "port=2400", "on=1"]);
    let y = sim.yaml(&["config", "fix"]);
    assert_eq!(y["settings"]["port"]["source"], "user");
    assert_eq!(y["settings"]["port"]["value"], 2400);
    assert_eq!(y["settings"]["on"]["value"], true);
    assert_eq!(cc(), before + 1);
    sim.ok(&["config", "fix", "--reset", "port"]);
    assert_eq!(sim.ok(&["config", "fix", "port"]).trim(), "2379");
    // Go's ParseBool: `yes` is not a boolean for `juju config`.
    assert_eq!(sim.cmd(&["config", "fix", "on=yes"]).status.code(), Some(1));
}

#[test]
fn relative_paths_and_scp_destinations() {
    let sim = new_sim();
    let work = sim.dir.path().join("work");
    fs::create_dir_all(&work).unwrap();
    fs::write(work.join("x.bin"), "blob").unwrap();
    let run = |args: &[&str]| {
        let o = sim.command(args).current_dir(&work).output().unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    run(&["deploy", "../charm", "--resource", "blob=./x.bin"]);
    run(&["attach-resource", "fix", "blob=./x.bin"]);
    let f = sim.root("fix/0").join("tmp/f.txt");
    fs::create_dir_all(f.parent().unwrap()).unwrap();
    fs::write(&f, "data").unwrap();
    run(&["scp", "fix/0:/tmp/f.txt", "."]);
    assert_eq!(fs::read_to_string(work.join("f.txt")).unwrap(), "data");
    run(&["scp", "fix/0:/tmp/f.txt", "./dir/"]);
    assert_eq!(fs::read_to_string(work.join("dir/f.txt")).unwrap(), "data");
    fs::create_dir_all(work.join("d2")).unwrap();
    run(&["scp", "fix/0:/tmp/f.txt", "d2"]);
    assert_eq!(fs::read_to_string(work.join("d2/f.txt")).unwrap(), "data");
    run(&["scp", "./x.bin", "fix/0:/tmp/"]);
    assert_eq!(
        fs::read_to_string(sim.root("fix/0").join("tmp/x.bin")).unwrap(),
        "blob"
    );
    let o = sim.cmd(&["scp", "fix/0:/tmp/none", "."]);
    assert_eq!(o.status.code(), Some(1));
    let o = sim.cmd(&["deploy", "./does-not-exist.charm"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("does-not-exist.charm"));
}

#[test]
fn old_style_and_non_executable_charm_zips() {
    let sim = new_sim();
    let src = sim.dir.path().join("old");
    common::write_charm(&src, &CHARM_NO_DISPATCH);
    let zip_path = sim.dir.path().join("old.charm");
    let mut z = zip::ZipWriter::new(fs::File::create(&zip_path).unwrap());
    let plain = zip::write::SimpleFileOptions::default().unix_permissions(0o644);
    for f in ["metadata.yaml", "config.yaml", "actions.yaml"] {
        z.start_file(f, plain).unwrap();
        z.write_all(&fs::read(src.join(f)).unwrap()).unwrap();
    }
    z.start_file("hooks/install", plain).unwrap();
    z.write_all(b"#!/bin/sh\ntouch \"$ETCD_CHARM_ROOT/installed\"\n")
        .unwrap();
    z.finish().unwrap();
    let p = zip_path.to_string_lossy().to_string();
    sim.ok(&["deploy", &p, "old"]);
    assert!(sim.root("old/0").join("installed").exists());

    // A dispatch without its exec bit still runs.
    let zip2 = sim.dir.path().join("nox.charm");
    let mut z = zip::ZipWriter::new(fs::File::create(&zip2).unwrap());
    for f in ["metadata.yaml", "config.yaml", "actions.yaml"] {
        z.start_file(f, plain).unwrap();
        z.write_all(&fs::read(src.join(f)).unwrap()).unwrap();
    }
    z.start_file("dispatch", plain).unwrap();
    z.write_all(b"#!/bin/sh\necho \"$JUJU_DISPATCH_PATH\" >> \"$ETCD_CHARM_ROOT/seen\"\n")
        .unwrap();
    z.finish().unwrap();
    let p = zip2.to_string_lossy().to_string();
    sim.ok(&["deploy", &p, "nox"]);
    let seen = fs::read_to_string(sim.root("nox/0").join("seen")).unwrap();
    assert!(seen.starts_with("hooks/install"), "{seen}");
    // Remove, then deploy again under the same name; the claim is released.
    let addr = |sim: &Sim| {
        let st: Value = serde_json::from_str(&sim.ok(&["status", "--format=json"])).unwrap();
        st["applications"]["nox"]["units"]
            .as_object()
            .and_then(|u| u.values().next().cloned())
            .map(|u| u["public-address"].as_str().unwrap().to_string())
    };
    let a = addr(&sim).unwrap();
    sim.ok(&["remove-application", "nox"]);
    assert!(!sim.addrs.join(&a).exists());
    sim.ok(&["deploy", &p, "nox"]);
    assert!(addr(&sim).is_some());
    assert_eq!(sim.cmd(&["remove-unit", "nox/7"]).status.code(), Some(1));
    assert_eq!(sim.cmd(&["add-unit", "nope"]).status.code(), Some(1));
}

#[test]
fn hooks_with_background_children_and_hanging_hooks() {
    let sim = new_sim();
    sim.deploy("1");
    // A hook leaving a child with its stdout open returns promptly.
    let start = Instant::now();
    sim.ok(&["run-hook", "fix/0", "bg"]);
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
    let log = sim.ok(&["debug-log", "--replay", "--include", "unit-fix-0"]);
    assert!(log.contains("started-bg"), "{log}");
    assert_eq!(sim.ok(&["debug-log", "--replay", "-i", "fix/0"]), log);

    // destroy-model while another process runs a hook that hangs.
    let mut hung = sim
        .command(&["run-hook", "fix/0", "hang"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let start = Instant::now();
    sim.ok(&["destroy-model", "-y"]);
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "{:?}",
        start.elapsed()
    );
    assert!(!sim.home.exists());
    // The hook was killed, so the waiting CLI finishes too.
    let deadline = Instant::now() + Duration::from_secs(20);
    while hung.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "run-hook still waits on a killed hook"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = fs::remove_dir_all(&sim.home);
    assert!(fs::read_dir(&sim.addrs).map(|d| d.count()).unwrap_or(0) == 0);
}
