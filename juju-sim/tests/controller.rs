//! The simulator as strict as a real controller (issue 10): concurrent unit
//! agents, the machine lock, commit at hook exit, `secret-get --peek`, the
//! Juju 2.9 and 3.x profiles, hook retries and update-status, `scp` as the
//! `ubuntu` user, resource faults, and the verbs real clients call. Each
//! test deploys a small shell charm into its own JUJU_SIM_HOME and asserts
//! on timestamps, files, exit codes and parsed output; each would fail on
//! the old synchronous, commit-at-once simulator.

mod common;

use common::{stderr, write_charm, Charm, Settle, Sim, JUJU_29};
use serde_json::Value;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const DISPATCH: &str = r#"#!/bin/sh
now() { date +%s.%N; }
log() { echo "$(now) $JUJU_UNIT_NAME $*" >> "$JUJU_SIM_HOME/../events.log"; }
log "start $JUJU_DISPATCH_PATH $JUJU_REMOTE_UNIT"
case "$JUJU_DISPATCH_PATH" in
  hooks/install)
    [ -f "$JUJU_SIM_HOME/../slow-install" ] && sleep 3
    echo "$JUJU_VERSION" > "$ETCD_CHARM_ROOT/juju-version" ;;
  hooks/start) status-set active ready ;;
  hooks/update-status) echo "$JUJU_VERSION" > "$ETCD_CHARM_ROOT/juju-version" ;;
  hooks/set-then-fail)
    relation-set -r cluster:0 doomed=yes
    open-port 9999/tcp
    [ "$(relation-get -r cluster:0 doomed "$JUJU_UNIT_NAME")" = yes ] || exit 9
    exit 1 ;;
  hooks/set-then-pass)
    relation-set -r cluster:0 kept=yes
    open-port 8888/tcp ;;
  hooks/flaky)
    n=$(cat "$ETCD_CHARM_ROOT/flaky" 2>/dev/null || echo 0)
    echo $((n + 1)) > "$ETCD_CHARM_ROOT/flaky"
    [ "$n" -ge 2 ] || exit 1 ;;
  hooks/broken) exit 1 ;;
  actions/sleep)
    sleep "$(action-get seconds)"
    echo "slept"
    echo "to stderr" >&2 ;;
  actions/peek)
    uri=$(cat "$JUJU_SIM_HOME/../secret-uri")
    secret-set "$uri" value=new || exit 3
    action-set plain="$(secret-get "$uri" value)" peek="$(secret-get "$uri" value --peek)" \
      refresh="$(secret-get "$uri" value --refresh)"
    [ "$(action-get fail)" = "True" ] && exit 1
    true ;;
esac
log "end $JUJU_DISPATCH_PATH"
exit 0
"#;

const CHARM: Charm = Charm {
    metadata: "name: fix\npeers:\n  cluster:\n    interface: fix\nprovides:\n  db:\n    interface: fixdb\nresources:\n  blob:\n    type: file\n    filename: blob.bin\n",
    config: None,
    actions: Some("sleep:\n  description: s\n  params:\n    seconds:\n      type: number\n      default: 2\npeek:\n  description: p\n  params:\n    fail:\n      type: boolean\n      default: false\n"),
    dispatch: Some(DISPATCH),
};

/// A model of the fixture charm with `env`; verbs return at once, as
/// Juju's do (the tests settle where they mean to).
fn new_sim(env: &[(&str, &str)]) -> Sim {
    Sim::new(&CHARM, env, Settle::Manual).settle_timeout("3m")
}

/// The fixture charm's event log.
trait Events {
    /// (time, unit, "start"|"end", what) from the charm's event log.
    fn events(&self) -> Vec<(f64, String, String, String)>;
    /// When `unit` started and ended `what` (the first time).
    fn span(&self, unit: &str, what: &str) -> (f64, f64);
}

impl Events for Sim {
    fn events(&self) -> Vec<(f64, String, String, String)> {
        fs::read_to_string(self.dir.path().join("events.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let mut it = l.split_whitespace();
                Some((
                    it.next()?.parse().ok()?,
                    it.next()?.to_string(),
                    it.next()?.to_string(),
                    it.next()?.to_string(),
                ))
            })
            .collect()
    }

    fn span(&self, unit: &str, what: &str) -> (f64, f64) {
        let ev = self.events();
        let at = |kind: &str| {
            ev.iter()
                .find(|(_, u, k, w)| u == unit && k == kind && w == what)
                .map(|e| e.0)
                .unwrap_or_else(|| panic!("no {kind} of {what} on {unit}: {ev:?}"))
        };
        (at("start"), at("end"))
    }
}

/// PIDs of `juju-sim agent` processes serving the model at `home`.
fn agents_of(home: &Path) -> Vec<u32> {
    let want = format!("JUJU_SIM_HOME={}", home.display());
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmd = fs::read(e.path().join("cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
        if args.get(1) != Some(&&b"agent"[..]) {
            continue;
        }
        let env = fs::read(e.path().join("environ")).unwrap_or_default();
        if env.split(|b| *b == 0).any(|kv| kv == want.as_bytes()) {
            out.push(pid);
        }
    }
    out
}

#[test]
fn units_run_their_hooks_concurrently_and_verbs_return_at_once() {
    let sim = new_sim(&[("JUJU_SIM_SEED", "7")]);
    fs::write(sim.dir.path().join("slow-install"), "").unwrap();
    let charm = sim.charm.to_string_lossy().to_string();
    let start = Instant::now();
    let out = sim.cmd(&["deploy", &charm, "-n", "3"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // deploy returns once the hooks are queued, before a 3 s install ends.
    assert!(
        start.elapsed() < Duration::from_millis(2500),
        "{:?}",
        start.elapsed()
    );
    assert!(stderr(&out).contains("JUJU_SIM_SEED=7"), "{}", stderr(&out));
    sim.settle();
    // Three 3 s installs overlapped in time: each unit has its own agent.
    let spans: Vec<(f64, f64)> = ["fix/0", "fix/1", "fix/2"]
        .iter()
        .map(|u| sim.span(u, "hooks/install"))
        .collect();
    let latest_start = spans.iter().map(|s| s.0).fold(f64::MIN, f64::max);
    let earliest_end = spans.iter().map(|s| s.1).fold(f64::MAX, f64::min);
    assert!(
        latest_start < earliest_end,
        "installs ran one after another: {spans:?}"
    );
    let st = sim.status();
    for u in ["fix/0", "fix/1", "fix/2"] {
        assert_eq!(
            st["applications"]["fix"]["units"][u]["workload-status"]["current"],
            "active"
        );
    }
    // One agent per unit; destroy-model leaves none running.
    assert_eq!(agents_of(&sim.home).len(), 3);
    sim.ok(&["destroy-model", "-y"]);
    assert_eq!(agents_of(&sim.home), Vec::<u32>::new());
}

#[test]
fn actions_take_the_machine_lock_and_keep_their_output() {
    // run-action queues and show-action-output looks: Juju 2.9's verbs.
    let sim = new_sim(&[JUJU_29]);
    sim.deploy("1");
    // The action is queued; run-action returns at once.
    let start = Instant::now();
    let q = sim.ok(&["run-action", "fix/0", "sleep", "seconds=3"]);
    assert!(start.elapsed() < Duration::from_millis(2500));
    assert_eq!(q.trim(), "Action queued with id: \"1\"");
    // show-action-output without --wait: the state now, no results.
    std::thread::sleep(Duration::from_millis(700));
    let now: serde_yaml::Value =
        serde_yaml::from_str(&sim.ok(&["show-action-output", "1"])).unwrap();
    assert!(
        now["status"] == "running" || now["status"] == "pending",
        "{now:?}"
    );
    assert!(now.get("results").is_none(), "{now:?}");
    // A hook queued meanwhile waits for the action: one machine lock.
    let o = sim.cmd(&["run-hook", "fix/0", "update-status"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (_, action_end) = sim.span("fix/0", "actions/sleep");
    let ev = sim.events();
    let hook_start = ev
        .iter()
        .filter(|(_, u, k, w)| u == "fix/0" && k == "start" && w == "hooks/update-status")
        .map(|e| e.0)
        .fold(f64::MIN, f64::max);
    assert!(
        hook_start >= action_end,
        "the hook ran during the action: {ev:?}"
    );
    // 2.9's --wait output, with the action's stdout and stderr kept.
    let done: serde_yaml::Value =
        serde_yaml::from_str(&sim.ok(&["show-action-output", "1", "--wait=1m"])).unwrap();
    assert_eq!(done["status"], "completed");
    assert_eq!(done["results"]["Stdout"], "slept\n");
    assert_eq!(done["results"]["Stderr"], "to stderr\n");
}

#[test]
fn juju_3_refuses_the_29_action_verbs_and_show_task_prints_the_task() {
    let sim = new_sim(&[]);
    sim.deploy("1");
    // run-action and show-action-output are not Juju 3 commands: refused
    // in Juju 3's words, with the new verb named, and nothing queued.
    let o = sim.cmd(&["run-action", "fix/0", "sleep", "seconds=0"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(o.stdout.is_empty());
    let e = stderr(&o);
    assert!(
        e.contains("juju: \"run-action\" is not a juju command. See \"juju --help\".")
            && e.contains("juju run UNIT ACTION"),
        "{e}"
    );
    let o = sim.cmd(&["run-action", "fix/0", "sleep", "seconds=0", "--wait"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let o = sim.cmd(&["show-action-output", "1", "--wait=1m"]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("\"show-action-output\" is not a juju command") && e.contains("juju show-task"),
        "{e}"
    );
    let m: Value =
        serde_json::from_str(&fs::read_to_string(sim.home.join("model.json")).unwrap()).unwrap();
    assert!(
        m["actions"].as_object().is_none_or(|a| a.is_empty()),
        "{}",
        m["actions"]
    );
    sim.settle();
    assert!(
        !sim.events().iter().any(|e| e.3.starts_with("actions/")),
        "an action ran: {:?}",
        sim.events()
    );

    // Juju 3's run keeps the action's stdout and stderr under results.
    let j: Value =
        serde_json::from_str(&sim.ok(&["run", "fix/0", "sleep", "seconds=0", "--format=json"]))
            .unwrap();
    let t = &j["fix/0"];
    assert_eq!(t["id"], "1", "the refused verbs queued nothing: {j}");
    assert_eq!(t["results"]["stdout"], "slept\n");
    assert_eq!(t["results"]["stderr"], "to stderr\n");
    assert_eq!(t["results"]["return-code"], 0);
    // show-task --format=yaml prints that same task document (not 2.9's);
    // its default, plain, prints the results and the action's stdout.
    let y: serde_yaml::Value =
        serde_yaml::from_str(&sim.ok(&["show-task", "1", "--format=yaml"])).unwrap();
    let y: Value = serde_json::to_value(y).unwrap();
    assert_eq!(&y, t, "show-task and run --format=json disagree");
    assert_eq!(y["unit"], "fix/0");
    assert_eq!(y["status"], "completed");
    assert!(y["timing"]["completed"].is_string(), "{y}");
    assert!(
        y.get("UnitId").is_none() && y["results"].get("Stdout").is_none(),
        "{y}"
    );
}

#[test]
fn run_times_out_while_the_task_carries_on_and_takes_app_leader() {
    let sim = new_sim(&[]);
    sim.deploy("2");
    let o = sim.cmd(&["run", "fix/leader", "sleep", "seconds=3", "--wait=1s"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("timed out"), "{}", stderr(&o));
    // The task carried on and completed on the leader, fix/0.
    let t: Value =
        serde_json::from_str(&sim.ok(&["show-task", "1", "--wait=1m", "--format=json"])).unwrap();
    assert_eq!(t["status"], "completed", "{t}");
    assert_eq!(t["unit"], "fix/0");
}

#[test]
fn hook_writes_are_committed_at_exit_and_dropped_on_failure() {
    let sim = new_sim(&[]);
    sim.deploy("2");
    // The hook reads back its own relation-set (checked inside: else exit
    // 9), then fails: nothing it wrote reaches the model.
    let o = sim.cmd(&["run-hook", "fix/0", "set-then-fail"]);
    assert_eq!(o.status.code(), Some(1));
    sim.cmd(&["resolved", "fix/0", "--no-retry"]);
    sim.settle();
    let seen = sim.out("fix/1", "relation-get -r cluster:0 - fix/0 --format=json");
    let bag: Value = serde_json::from_str(&seen).unwrap();
    assert!(bag.get("doomed").is_none(), "{bag}");
    let st = sim.status();
    assert!(
        st["applications"]["fix"]["units"]["fix/0"]["open-ports"]
            .as_array()
            .is_some_and(|p| !p.iter().any(|x| x == "9999/tcp")),
        "{st}"
    );
    let log = sim.events();
    let before = log
        .iter()
        .filter(|(_, u, k, w)| {
            u == "fix/1" && k == "start" && w == "hooks/cluster-relation-changed"
        })
        .count();
    // The same writes from a hook that exits 0 are committed, and the peer
    // gets relation-changed.
    sim.ok(&["run-hook", "fix/0", "set-then-pass"]);
    sim.settle();
    let bag: Value =
        serde_json::from_str(&sim.out("fix/1", "relation-get -r cluster:0 - fix/0 --format=json"))
            .unwrap();
    assert_eq!(bag["kept"], "yes");
    let after = sim
        .events()
        .iter()
        .filter(|(_, u, k, w)| {
            u == "fix/1" && k == "start" && w == "hooks/cluster-relation-changed"
        })
        .count();
    assert_eq!(after, before + 1);
    let st = sim.status();
    assert_eq!(
        st["applications"]["fix"]["units"]["fix/0"]["open-ports"][0],
        "8888/tcp"
    );
}

#[test]
fn secret_get_sees_an_uncommitted_revision_only_with_peek_or_refresh() {
    let sim = new_sim(&[]);
    sim.deploy("1");
    let uri = sim.out("fix/0", "secret-add --label ca value=old");
    fs::write(sim.dir.path().join("secret-uri"), &uri).unwrap();
    let j: Value =
        serde_json::from_str(&sim.ok(&["run", "fix/0", "peek", "--format=json"])).unwrap();
    let r = &j["fix/0"]["results"];
    assert_eq!(r["plain"], "old", "{j}");
    assert_eq!(r["peek"], "new", "{j}");
    assert_eq!(r["refresh"], "new", "{j}");
    assert_eq!(sim.out("fix/0", &format!("secret-get {uri} value")), "new");
    // A failed action's secret-set is dropped; its non-zero exit fails
    // the verb.
    fs::write(sim.dir.path().join("secret-uri"), &uri).unwrap();
    sim.out("fix/0", &format!("secret-set {uri} value=kept"));
    let o = sim.cmd(&["run", "fix/0", "peek", "fail=true"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(sim.out("fix/0", &format!("secret-get {uri} value")), "kept");
    // secret-info-get.
    let info: Value =
        serde_json::from_str(&sim.out("fix/0", &format!("secret-info-get {uri} --format=json")))
            .unwrap();
    let id = uri.trim_start_matches("secret:");
    assert_eq!(info[id]["label"], "ca", "{info}");
    assert_eq!(info[id]["owner"], "application");
    // (A command run with exec is committed whatever its exit code, as
    // Juju commits it: see exec_is_juju_3s.)
}

#[test]
fn juju_29_has_no_secret_tools_queues_actions_and_upgrades_to_3() {
    let sim = new_sim(&[JUJU_29]);
    sim.deploy("1");
    let st = sim.status();
    assert_eq!(st["model"]["version"], "2.9.49");
    // 2.9's status: relations as names.
    assert_eq!(st["applications"]["fix"]["relations"]["cluster"][0], "fix");
    assert_eq!(
        fs::read_to_string(sim.root("fix/0").join("juju-version"))
            .unwrap()
            .trim(),
        "2.9.49"
    );
    for tool in ["secret-add", "secret-get", "secret-ids", "secret-set"] {
        let o = sim.exec("fix/0", &format!("{tool} --label x value=1"));
        assert_eq!(o.status.code(), Some(127), "{tool}: {}", stderr(&o));
        assert!(stderr(&o).contains("not found"), "{}", stderr(&o));
    }
    // `juju run` on 2.9 runs commands: `run UNIT ACTION` has no target
    // (Juju's Init error, exit 2), with the run-action hint.
    let o = sim.cmd(&["run", "fix/0", "sleep"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).starts_with(
            "ERROR You must specify a target, either through --all, --machine, --application or --unit\n"
        ) && stderr(&o).contains("juju run-action fix/0 sleep"),
        "{}",
        stderr(&o)
    );
    // run-action --wait: the 2.9 shape under the unit's tag.
    let d: serde_yaml::Value =
        serde_yaml::from_str(&sim.ok(&["run-action", "fix/0", "sleep", "seconds=0", "--wait"]))
            .unwrap();
    assert_eq!(d["unit-fix-0"]["status"], "completed");
    assert_eq!(d["unit-fix-0"]["UnitId"], "fix/0");
    // Migrating to a 3.x controller: the next hooks see 3.6.12 and secrets.
    sim.ok(&["upgrade-model", "--agent-version", "3.6.12"]);
    sim.ok(&["run-hook", "fix/0", "update-status"]);
    assert_eq!(
        fs::read_to_string(sim.root("fix/0").join("juju-version"))
            .unwrap()
            .trim(),
        "3.6.12"
    );
    assert!(sim
        .out("fix/0", "secret-add value=1")
        .starts_with("secret:"));
    assert_eq!(sim.status()["model"]["version"], "3.6.12");
}

/// Juju 2.9's `juju run` runs commands (its `exec` is not a command): in
/// the units' hook context, under the machine lock, writes committed only
/// at exit 0; one result passes through with the command's exit code,
/// several (or `--format`) are 2.9's compat maps; Juju's Init errors and
/// timeout. After the move to 3.x, `exec` runs commands and `run` takes no
/// `--unit`.
#[test]
fn juju_29_run_runs_commands_and_has_no_exec() {
    let sim = new_sim(&[JUJU_29]);
    sim.deploy("2");
    let o = sim.cmd(&["run", "--unit", "fix/0", "--", "echo hi; exit 3"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "hi\n");
    // Hook context: the unit's environment and tools. Relation data is
    // committed whatever the exit code, as Juju's uniter flushes the
    // context of a command that ran (utils/exec: "a non-zero return code
    // isn't considered an error").
    let o = sim.cmd(&[
        "run",
        "-u",
        "fix/leader",
        "--",
        "echo $JUJU_UNIT_NAME $JUJU_VERSION; relation-set -r cluster:0 kept=yes",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "fix/0 2.9.49\n");
    let o = sim.cmd(&[
        "run",
        "--unit",
        "fix/0",
        "--",
        "relation-set -r cluster:0 also=yes; exit 1",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        sim.out("fix/1", "relation-get -r cluster:0 kept fix/0"),
        "yes"
    );
    assert_eq!(
        sim.out("fix/1", "relation-get -r cluster:0 also fix/0"),
        "yes"
    );
    // Several arguments are one quoted command line, as Juju joins them.
    let o = sim.cmd(&["run", "--unit", "fix/1", "--", "echo", "a  b", "$HOME"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "a  b $HOME\n");
    // --application: every unit; JSON list of 2.9's compat keys, Stdout
    // always, Stderr when not empty, ReturnCode only when not 0; exit 0.
    let o = sim.cmd(&[
        "run",
        "--application",
        "fix",
        "--format=json",
        "--",
        "echo $JUJU_UNIT_NAME; [ $JUJU_UNIT_NAME = fix/0 ] && echo oops >&2; [ $JUJU_UNIT_NAME = fix/1 ] && exit 4; true",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let list: Value = serde_json::from_slice(&o.stdout).unwrap();
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(list.as_array().map(Vec::len), Some(2), "{list}");
    assert_eq!(keys(&list[0]), ["Stderr", "Stdout", "UnitId"], "{list}");
    assert_eq!(list[0]["UnitId"], "fix/0");
    assert_eq!(list[0]["Stdout"], "fix/0\n");
    assert_eq!(list[0]["Stderr"], "oops\n");
    assert_eq!(keys(&list[1]), ["ReturnCode", "Stdout", "UnitId"], "{list}");
    assert_eq!(list[1]["UnitId"], "fix/1");
    assert_eq!(list[1]["ReturnCode"], 4);
    // One result with --format=yaml is the list too, with an empty Stdout.
    let y: serde_yaml::Value =
        serde_yaml::from_str(&sim.ok(&["run", "--unit", "fix/0", "--format=yaml", "--", "true"]))
            .unwrap();
    assert_eq!(y[0]["UnitId"], "fix/0");
    assert_eq!(y[0]["Stdout"], "");
    assert!(y[0].get("ReturnCode").is_none(), "{y:?}");
    // The machine lock: a command waits for the action holding it.
    sim.ok(&["run-action", "fix/0", "sleep", "seconds=2"]);
    let until = Instant::now() + Duration::from_secs(60);
    while !sim
        .events()
        .iter()
        .any(|(_, u, k, w)| u == "fix/0" && k == "start" && w == "actions/sleep")
    {
        assert!(Instant::now() < until, "the action never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let at: f64 = sim.out("fix/0", "date +%s.%N").parse().unwrap();
    let (_, end) = sim.span("fix/0", "actions/sleep");
    assert!(
        at >= end,
        "the command ran at {at}, inside the action (ended {end})"
    );
    // Juju's errors: no command, bad targets, --machine (not simulated),
    // a timeout that kills the command.
    let o = sim.cmd(&["run", "--unit", "fix/0"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stderr(&o), "ERROR no commands specified\n");
    let o = sim.cmd(&["run", "--unit", "Fix/x", "--", "true"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("\"Fix/x\" is not a valid unit name"),
        "{}",
        stderr(&o)
    );
    let o = sim.cmd(&["run", "--all", "--unit", "fix/0", "--", "true"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("You cannot specify --all and individual units"));
    let o = sim.cmd(&["run", "--machine", "0", "--", "true"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("use juju run --unit UNIT"),
        "{}",
        stderr(&o)
    );
    let start = Instant::now();
    let o = sim.cmd(&[
        "run",
        "--unit",
        "fix/1",
        "--timeout",
        "1s",
        "--",
        "echo $$ > \"$ETCD_CHARM_ROOT/tmp/sleeper\"; exec sleep 60",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "ERROR timed out waiting for result from: unit fix/1\n"
    );
    assert!(start.elapsed() < Duration::from_secs(20));
    let pid = fs::read_to_string(sim.root("fix/1").join("tmp/sleeper")).unwrap();
    assert!(
        !Path::new(&format!("/proc/{}", pid.trim())).exists(),
        "the timed-out command still runs"
    );
    // `exec` is not a 2.9 command, refused as Juju refuses one.
    let o = sim.cmd(&["exec", "--unit", "fix/0", "--", "true"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o)
            .starts_with("ERROR juju: \"exec\" is not a juju command. See \"juju --help\".\n")
            && stderr(&o).contains("juju run --unit UNIT -- CMD"),
        "{}",
        stderr(&o)
    );
    // On 3.x: exec runs commands, run takes no --unit.
    sim.ok(&["upgrade-model", "--agent-version", "3.6.12"]);
    sim.settle();
    exec_is_juju_3s(&sim);
    let o = sim.cmd(&["run", "--unit", "fix/0", "--", "true"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).starts_with("ERROR option provided but not defined: --unit\n"),
        "{}",
        stderr(&o)
    );
}

/// Juju 3's `exec` (cmd/juju/action/exec.go, runCommandBase): each unit's
/// command is a `juju-exec` task that `show-task` shows; plain output is
/// stdout then stderr, on stdout, under `UNIT:` headings when there are
/// several; a non-zero return code fails the verb (exit 1) with Juju's
/// "task failed" error, while the task itself completes and its writes are
/// committed. Machines and --operator are refused.
fn exec_is_juju_3s(sim: &Sim) {
    let o = sim.cmd(&[
        "exec",
        "--unit",
        "fix/0",
        "--",
        "echo $JUJU_VERSION; echo oops >&2; relation-set -r cluster:0 late=yes; exit 5",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "3.6.12\noops\n");
    let err = stderr(&o);
    let id = err
        .split('"')
        .nth(1)
        .unwrap_or_else(|| panic!("no task id in: {err}"))
        .to_string();
    assert_eq!(
        err,
        format!(
            "ERROR the following task failed:\n - id \"{id}\" with return code 5\n\nuse 'juju show-task' to inspect the failure\n"
        )
    );
    let task: Value =
        serde_json::from_str(&sim.ok(&["show-task", &id, "--format", "json"])).unwrap();
    assert_eq!(task["status"], "completed", "{task}");
    assert_eq!(task["unit"], "fix/0", "{task}");
    assert_eq!(task["results"]["return-code"], 5, "{task}");
    assert_eq!(task["results"]["stdout"], "3.6.12\n", "{task}");
    assert_eq!(task["results"]["stderr"], "oops\n", "{task}");
    assert_eq!(
        sim.out("fix/1", "relation-get -r cluster:0 late fix/0"),
        "yes"
    );
    // --application: every unit, at once, under headings; no `--` needed.
    let o = sim.cmd(&["exec", "-a", "fix", "echo", "$JUJU_UNIT_NAME"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "fix/0:\n$JUJU_UNIT_NAME\n\nfix/1:\n$JUJU_UNIT_NAME\n\n"
    );
    let j: Value = serde_json::from_str(&sim.ok(&[
        "exec",
        "--app",
        "fix",
        "--format",
        "json",
        "--",
        "echo $JUJU_UNIT_NAME",
    ]))
    .unwrap();
    assert_eq!(j["fix/1"]["results"]["stdout"], "fix/1\n", "{j}");
    assert_eq!(j["fix/0"]["status"], "completed", "{j}");
    // Juju's Init errors (exit 2) and what the simulator does not do.
    let o = sim.cmd(&["exec", "--unit", "fix/0"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stderr(&o), "ERROR no commands specified\n");
    let o = sim.cmd(&["exec", "--", "true"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("You must specify a target"),
        "{}",
        stderr(&o)
    );
    let o = sim.cmd(&["exec", "--machine", "0", "--", "true"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not simulated"), "{}", stderr(&o));
    let o = sim.cmd(&["exec", "--operator", "-u", "fix/0", "--", "true"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("only k8s models"), "{}", stderr(&o));
}

#[test]
fn failed_hooks_are_retried_with_back_off_and_update_status_keeps_firing() {
    let sim = new_sim(&[("JUJU_SIM_UPDATE_STATUS_INTERVAL", "1s")]);
    sim.deploy("1");
    // Fails twice, then passes on the second retry (1 s, then 2 s later).
    let o = sim.cmd(&["run-hook", "fix/0", "flaky"]);
    assert_eq!(o.status.code(), Some(1));
    let st = sim.status();
    assert_eq!(
        st["applications"]["fix"]["units"]["fix/0"]["workload-status"]["message"],
        "hook failed: \"flaky\""
    );
    sim.settle();
    assert_eq!(
        fs::read_to_string(sim.root("fix/0").join("flaky"))
            .unwrap()
            .trim(),
        "3"
    );
    let st = sim.status();
    assert_eq!(
        st["applications"]["fix"]["units"]["fix/0"]["workload-status"]["current"],
        "active"
    );
    // update-status fires again and again.
    let count = || {
        sim.events()
            .iter()
            .filter(|(_, _, k, w)| k == "start" && w == "hooks/update-status")
            .count()
    };
    let before = count();
    std::thread::sleep(Duration::from_secs(5));
    assert!(count() >= before + 2, "{} → {}", before, count());
    // A hook that always fails leaves the unit in error; wait-idle says so.
    let o = sim.cmd(&["run-hook", "fix/0", "broken"]);
    assert_eq!(o.status.code(), Some(1));
    let w = sim.cmd(&["wait-idle", "--timeout", "1m"]);
    assert_eq!(w.status.code(), Some(3), "{}", stderr(&w));
    assert!(
        stderr(&w).contains("hook failed: \"broken\""),
        "{}",
        stderr(&w)
    );
}

fn write_mode(path: &Path, text: &str, mode: u32, owner: u32) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    std::os::unix::fs::chown(path, Some(owner), Some(owner)).unwrap();
}

#[test]
fn scp_reads_and_writes_only_what_the_ubuntu_user_may() {
    let sim = new_sim(&[]);
    sim.deploy("1");
    let root = sim.root("fix/0");
    let passwd = fs::read_to_string(root.join("etc/passwd")).unwrap();
    assert!(passwd.contains("ubuntu:x:1000:1000:"), "{passwd}");
    let dst = sim.dir.path().join("dst");
    fs::create_dir_all(&dst).unwrap();
    let d = format!("{}/", dst.display());
    // Root-owned 0600: Permission denied, as scp words it.
    write_mode(&root.join("var/lib/x/secret"), "s", 0o600, 0);
    let o = sim.cmd(&["scp", "fix/0:/var/lib/x/secret", &d]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("scp: /var/lib/x/secret: Permission denied"),
        "{}",
        stderr(&o)
    );
    assert!(!dst.join("secret").exists());
    // Readable to all, but inside a root 0700 directory: denied too.
    write_mode(&root.join("var/lib/private/open"), "o", 0o644, 0);
    fs::set_permissions(
        root.join("var/lib/private"),
        fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    let o = sim.cmd(&["scp", "fix/0:/var/lib/private/open", &d]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    // uid 1000's own 0600 file in its home: copied.
    write_mode(&root.join("home/ubuntu/mine"), "m", 0o600, 1000);
    sim.ok(&["scp", "fix/0:/home/ubuntu/mine", &d]);
    assert_eq!(fs::read_to_string(dst.join("mine")).unwrap(), "m");
    // A directory needs -r, as with scp.
    let o = sim.cmd(&["scp", "fix/0:/home/ubuntu", &d]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not a regular file"), "{}", stderr(&o));
    sim.ok(&["scp", "--", "-r", "fix/0:/home/ubuntu", &d]);
    assert_eq!(fs::read_to_string(dst.join("ubuntu/mine")).unwrap(), "m");
    // To the unit: into ubuntu's home yes (owned by uid 1000), into /etc no.
    let local = sim.dir.path().join("up.txt");
    fs::write(&local, "up").unwrap();
    let l = local.to_string_lossy().to_string();
    sim.ok(&["scp", &l, "fix/0:/home/ubuntu/"]);
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        fs::metadata(root.join("home/ubuntu/up.txt")).unwrap().uid(),
        1000
    );
    let o = sim.cmd(&["scp", &l, "fix/0:/etc/"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(!root.join("etc/up.txt").exists());
}

#[test]
fn a_resource_get_fault_is_not_a_missing_resource() {
    let sim = new_sim(&[]);
    sim.deploy("1");
    // Nothing uploaded: Juju's not-found wording.
    let o = sim.exec("fix/0", "resource-get blob");
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not found"), "{}", stderr(&o));
    let blob = sim.dir.path().join("blob.bin");
    fs::write(&blob, "data").unwrap();
    sim.ok(&[
        "attach-resource",
        "fix",
        &format!("blob={}", blob.display()),
    ]);
    sim.settle();
    sim.ok(&[
        "inject-fault",
        "resource-get",
        "fix/0",
        "blob",
        "--count",
        "1",
    ]);
    let o = sim.exec("fix/0", "resource-get blob");
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("connection refused") && !e.contains("not found"),
        "{e}"
    );
    // The fault was used up: the next call gets the file.
    // (resource-get prints the path on this machine, under the unit's root.)
    let path = sim.out("fix/0", "resource-get blob");
    assert!(
        Path::new(&path).starts_with(sim.root("fix/0")),
        "{path} is not under the unit's root"
    );
    assert_eq!(fs::read_to_string(&path).unwrap(), "data");
}

#[test]
fn remove_unit_force_no_wait_drops_a_unit_at_once() {
    let sim = new_sim(&[]);
    sim.deploy("2");
    let start = Instant::now();
    sim.ok(&[
        "remove-unit",
        "--force",
        "--no-wait",
        "--no-prompt",
        "fix/0",
    ]);
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(!sim.home.join("units/fix-0").exists());
    sim.settle();
    let ev = sim.events();
    assert!(
        !ev.iter()
            .any(|(_, u, _, w)| u == "fix/0" && (w == "hooks/stop" || w == "hooks/remove")),
        "the lost unit ran its hooks: {ev:?}"
    );
    assert!(ev.iter().any(|(_, u, k, w)| u == "fix/1"
        && k == "start"
        && w == "hooks/cluster-relation-departed"));
    assert!(ev
        .iter()
        .any(|(_, u, k, w)| u == "fix/1" && k == "start" && w == "hooks/leader-elected"));
    let st = sim.status();
    assert!(
        st["applications"]["fix"]["units"].get("fix/0").is_none(),
        "{st}"
    );
    assert_eq!(st["applications"]["fix"]["units"]["fix/1"]["leader"], true);
    // remove-application --force --no-wait: the application is gone when
    // the verb returns, its last unit's hooks never ran.
    sim.ok(&["remove-application", "fix", "--force", "--no-wait"]);
    assert!(sim.status()["applications"].get("fix").is_none());
    assert!(!sim.home.join("units/fix-1").exists());
    assert_eq!(agents_of(&sim.home), Vec::<u32>::new());
    sim.settle();
    assert!(!sim
        .events()
        .iter()
        .any(|(_, u, _, w)| u == "fix/1" && w == "hooks/stop"));
}

#[test]
fn what_real_clients_call() {
    let sim = new_sim(&[]);
    sim.deploy("2");
    // --model is accepted on every verb; version; show-unit.
    let v: Value =
        serde_json::from_str(&sim.ok(&["version", "--format", "json", "--all"])).unwrap();
    assert_eq!(v["version"], "3.6.12-ubuntu-amd64");
    let u: Value = serde_json::from_str(&sim.ok(&[
        "--model",
        "model",
        "show-unit",
        "fix/0",
        "--format",
        "json",
    ]))
    .unwrap();
    assert_eq!(u["fix/0"]["leader"], true);
    assert_eq!(u["fix/0"]["charm"], "local:fix-0");
    // exec --format json: Juju 3's task per unit; a failure fails the verb.
    let j: Value = serde_json::from_str(&sim.ok(&[
        "exec",
        "--format",
        "json",
        "--unit",
        "fix/leader",
        "--",
        "echo",
        "hi",
    ]))
    .unwrap();
    assert_eq!(j["fix/0"]["results"]["stdout"], "hi\n");
    assert_eq!(j["fix/0"]["results"]["return-code"], 0);
    assert_eq!(j["fix/0"]["status"], "completed");
    let o = sim.cmd(&[
        "exec", "--format", "json", "--unit", "fix/1", "--", "exit 4",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("task failed"));
    // status-set --application=False sets the unit's status.
    sim.out("fix/0", "status-set --application=False blocked hello");
    sim.out("fix/0", "status-set --application=True waiting app-wide");
    let st = sim.status();
    assert_eq!(
        st["applications"]["fix"]["units"]["fix/0"]["workload-status"]["message"],
        "hello"
    );
    assert_eq!(
        st["applications"]["fix"]["application-status"]["message"],
        "app-wide"
    );
    assert_eq!(
        sim.out("fix/0", "status-get --application=False"),
        "blocked"
    );
    // Juju 3's status shape and time format.
    let since = st["applications"]["fix"]["units"]["fix/0"]["workload-status"]["since"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        since.ends_with('Z') && since.split(' ').count() == 4,
        "{since}"
    );
    assert_eq!(st["applications"]["fix"]["charm"], "local:fix-0");
    // goal-state: the peers.
    let g: Value = serde_json::from_str(&sim.out("fix/0", "goal-state --format=json")).unwrap();
    assert_eq!(g["units"]["fix/1"]["status"], "active");
    assert_eq!(g["relations"]["cluster"]["fix/1"]["status"], "joined");
    // remove-unit --no-prompt, as jubilant calls it.
    sim.ok(&["remove-unit", "--no-prompt", "fix/1"]);
    sim.settle();
    assert!(sim.status()["applications"]["fix"]["units"]
        .get("fix/1")
        .is_none());
}

#[test]
fn secrets_are_granted_and_revoked_over_a_relation() {
    let sim = new_sim(&[]);
    sim.deploy("1");
    let cons = sim.dir.path().join("cons");
    fs::create_dir_all(&cons).unwrap();
    fs::write(
        cons.join("metadata.yaml"),
        "name: cons\nrequires:\n  backend:\n    interface: fixdb\n",
    )
    .unwrap();
    fs::write(cons.join("dispatch"), "#!/bin/sh\nexit 0\n").unwrap();
    fs::set_permissions(cons.join("dispatch"), fs::Permissions::from_mode(0o755)).unwrap();
    sim.ok(&["deploy", &cons.to_string_lossy(), "cons"]);
    sim.ok(&["integrate", "fix", "cons"]);
    sim.settle();
    let uri = sim.out("fix/0", "secret-add value=shared");
    let rel = sim.out("fix/0", "relation-ids db");
    let get = format!("secret-get {uri} value");
    assert_eq!(sim.exec("cons/0", &get).status.code(), Some(1));
    sim.out("fix/0", &format!("secret-grant {uri} -r {rel}"));
    assert_eq!(sim.out("cons/0", &get), "shared");
    // The consumer reads but cannot manage it.
    let o = sim.exec("cons/0", &format!("secret-set {uri} value=mine"));
    assert_eq!(o.status.code(), Some(1));
    sim.out("fix/0", &format!("secret-revoke {uri} -r {rel}"));
    assert_eq!(sim.exec("cons/0", &get).status.code(), Some(1));
    sim.out("fix/0", &format!("secret-remove {uri}"));
    assert_eq!(sim.exec("fix/0", &get).status.code(), Some(1));
}

#[test]
fn the_version_is_fixed_when_the_model_is_created() {
    let sim = new_sim(&[JUJU_29]);
    let o = sim.cmd(&["add-model", "m", "--no-switch"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("JUJU_SIM_SEED="), "{}", stderr(&o));
    assert_eq!(sim.status()["model"]["version"], "2.9.49");
    // A later command's JUJU_SIM_AGENT_VERSION changes nothing.
    let charm = sim.charm.to_string_lossy().to_string();
    let o = Command::new(env!("CARGO_BIN_EXE_juju-sim"))
        .args(["deploy", &charm])
        .env("JUJU_SIM_HOME", &sim.home)
        .env("JUJU_SIM_ADDR_DIR", &sim.addrs)
        .env("JUJU_SIM_AGENT_VERSION", "3.6.12")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    sim.settle();
    assert_eq!(sim.status()["model"]["version"], "2.9.49");
    assert_eq!(
        fs::read_to_string(sim.root("fix/0").join("juju-version"))
            .unwrap()
            .trim(),
        "2.9.49"
    );
    // A version the simulator does not know is refused with the choices.
    let o = sim.cmd(&["upgrade-model", "--agent-version", "4.0.0"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("2.9.x and 3.x"), "{}", stderr(&o));
}

#[test]
fn a_dead_agent_is_restarted_and_reruns_the_interrupted_hook() {
    let sim = new_sim(&[]);
    sim.deploy("1");
    fs::write(sim.dir.path().join("slow-install"), "").unwrap();
    // install sleeps 3 s when slow-install exists: run it again as a hook.
    let mut waiting = Command::new(env!("CARGO_BIN_EXE_juju-sim"))
        .args(["run-hook", "fix/0", "install"])
        .env("JUJU_SIM_HOME", &sim.home)
        .env("JUJU_SIM_ADDR_DIR", &sim.addrs)
        .spawn()
        .unwrap();
    let pid_file = sim.home.join("units/fix-0/agent.pid");
    let started = |n: usize| {
        sim.events()
            .iter()
            .filter(|(_, _, k, w)| k == "start" && w == "hooks/install")
            .count()
            >= n
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !started(2) {
        assert!(Instant::now() < deadline, "the hook never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid: i32 = fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SAFETY: kill(2) on the agent this test's model started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    // wait-idle restarts the agent, which runs the interrupted hook again.
    sim.settle();
    let new_pid: i32 = fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_ne!(new_pid, pid);
    assert!(started(3), "{:?}", sim.events());
    let _ = waiting.wait();
}

/// `refresh --path` (2.9: `upgrade-charm`): the application moves to the
/// next revision; each unit gets the new charm only when its agent runs
/// `upgrade-charm` (then `config-changed`), so the hook is the new
/// charm's. A charm of another name, Charmhub flags and 3.x's missing
/// `upgrade-charm` are refused with nothing changed.
#[test]
fn refresh_upgrades_each_unit_in_its_upgrade_charm_hook() {
    for env in [&[][..], &[JUJU_29][..]] {
        let sim = new_sim(env);
        sim.deploy("2");
        let v2 = sim.dir.path().join("charm-v2");
        let dispatch = DISPATCH.replacen(
            "case \"$JUJU_DISPATCH_PATH\" in\n",
            "case \"$JUJU_DISPATCH_PATH\" in\n  hooks/upgrade-charm) echo v2 > \"$ETCD_CHARM_ROOT/upgraded\" ;;\n",
            1,
        );
        write_charm(
            &v2,
            &Charm {
                dispatch: Some(&dispatch),
                ..CHARM
            },
        );
        let path = v2.to_string_lossy().to_string();
        let verb = if sim.is_29() {
            "upgrade-charm"
        } else {
            "refresh"
        };
        let o = sim.cmd(&[verb, "fix", "--path", &path]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(
            stderr(&o).contains("Added local charm \"fix\", revision 1"),
            "{}",
            stderr(&o)
        );
        sim.settle();
        for u in ["fix/0", "fix/1"] {
            assert_eq!(
                fs::read_to_string(sim.root(u).join("upgraded"))
                    .unwrap_or_default()
                    .trim(),
                "v2",
                "{u} did not run the new charm's upgrade-charm"
            );
            let hooks: Vec<String> = sim
                .events()
                .into_iter()
                .filter(|(_, unit, k, _)| unit == u && k == "start")
                .map(|(_, _, _, w)| w)
                .collect();
            let up = hooks.iter().rposition(|h| h == "hooks/upgrade-charm");
            assert!(
                up.is_some_and(
                    |i| hooks.get(i + 1).map(String::as_str) == Some("hooks/config-changed")
                ),
                "{u}: {hooks:?}"
            );
        }
        let st = sim.status();
        assert_eq!(st["applications"]["fix"]["charm-rev"], 1, "{st}");
        // A unit added later starts on the new revision.
        sim.ok(&["add-unit", "fix"]);
        sim.settle();
        let charm = sim.home.join("units/fix-2/charm/dispatch");
        assert!(
            fs::read_to_string(&charm)
                .unwrap()
                .contains("hooks/upgrade-charm)"),
            "fix/2 got the old charm"
        );
        // Refusals.
        let other = sim.dir.path().join("other");
        write_charm(
            &other,
            &Charm {
                metadata: "name: other\nsummary: s\ndescription: d\n",
                ..CHARM
            },
        );
        let o = sim.cmd(&[verb, "fix", "--path", &other.to_string_lossy()]);
        assert_eq!(o.status.code(), Some(1));
        assert!(stderr(&o).contains("runs charm \"fix\""), "{}", stderr(&o));
        let o = sim.cmd(&[verb, "fix", "--channel", "3.5/stable"]);
        assert_eq!(o.status.code(), Some(1));
        assert!(stderr(&o).contains("no Charmhub"), "{}", stderr(&o));
        assert_eq!(sim.status()["applications"]["fix"]["charm-rev"], 1);
        if !sim.is_29() {
            let o = sim.cmd(&["upgrade-charm", "fix", "--path", &path]);
            assert_eq!(o.status.code(), Some(1));
            assert!(
                stderr(&o).contains("is not a juju command"),
                "{}",
                stderr(&o)
            );
        }
    }
}
