//! The harness the simulator's own tests share (`sim.rs`, `hardening.rs`,
//! `controller.rs`): a fixture charm written from a [`Charm`], and [`Sim`],
//! one model in its own temporary `JUJU_SIM_HOME` and `JUJU_SIM_ADDR_DIR`,
//! driven through the real `juju-sim` binary and destroyed on drop. Each
//! test file configures it: its charm, extra environment, and whether verbs
//! that queue work wait for the model to settle ([`Settle::Auto`], for
//! files written against a simulator that ran everything before
//! returning) or return at once as Juju's do ([`Settle::Manual`],
//! `controller.rs`, which tests exactly that).
#![allow(dead_code)]

use serde_json::Value;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `JUJU_SIM_AGENT_VERSION` for a model on Juju 2.9.
pub const JUJU_29: (&str, &str) = ("JUJU_SIM_AGENT_VERSION", "2.9.49");

/// The fixture charms' `config.yaml`: an int, a string and a boolean.
pub const CONFIG: &str = "options:\n  port:\n    type: int\n    default: 2379\n    description: p\n  name:\n    type: string\n    description: n\n  on:\n    type: boolean\n    default: false\n    description: o\n";

/// A fixture charm's files; `None` leaves a file out.
pub struct Charm<'a> {
    pub metadata: &'a str,
    pub config: Option<&'a str>,
    pub actions: Option<&'a str>,
    /// The `dispatch` script, written executable.
    pub dispatch: Option<&'a str>,
}

/// Writes `charm` into `dir` (created if missing).
pub fn write_charm(dir: &Path, charm: &Charm) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join("metadata.yaml"), charm.metadata).unwrap();
    if let Some(c) = charm.config {
        fs::write(dir.join("config.yaml"), c).unwrap();
    }
    if let Some(a) = charm.actions {
        fs::write(dir.join("actions.yaml"), a).unwrap();
    }
    if let Some(d) = charm.dispatch {
        fs::write(dir.join("dispatch"), d).unwrap();
        fs::set_permissions(dir.join("dispatch"), fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// Verbs that queue hooks or actions and return at once, as Juju's do; an
/// auto-settling [`Sim`] waits for the model to settle after them
/// (`juju-sim wait-idle`). `run-hook`, `exec` and 2.9's `run --unit` wait
/// for their own work, but queue hooks on other units (relation-changed
/// after a `relation-set`), which the settle lets run.
const SETTLES: &[&str] = &[
    "deploy",
    "add-unit",
    "remove-unit",
    "remove-application",
    "integrate",
    "relate",
    "config",
    "attach-resource",
    "refresh",
    "upgrade-charm",
    "resolved",
    "run-action",
    "run-hook",
    "exec",
    "upgrade-model",
];

/// Whether `args` is a verb after which an auto-settling [`Sim`] settles:
/// a `config` that only reads does not count; `run` counts in 2.9's
/// command shape (`run --unit U -- CMD`), not as Juju 3's action (whose
/// tests look at a task while it runs).
pub fn settles(args: &[&str]) -> bool {
    const TARGETS: &[&str] = &["--unit", "-u", "--application", "--app", "-a"];
    match args.first() {
        Some(&"config") => args
            .iter()
            .skip(2)
            .any(|a| a.contains('=') || a.starts_with("--reset")),
        Some(&"run") => args.iter().any(|a| {
            TARGETS.contains(a) || TARGETS.iter().any(|t| a.starts_with(&format!("{t}=")))
        }),
        Some(v) => SETTLES.contains(v),
        None => false,
    }
}

/// Whether a [`Sim`]'s verbs wait for the work they queue.
#[derive(Clone, Copy, PartialEq)]
pub enum Settle {
    /// After every verb in [`settles`], wait for the model to settle.
    Auto,
    /// Verbs return at once; the test calls [`Sim::settle`].
    Manual,
}

/// One model of the simulator, in a temporary directory of its own.
pub struct Sim {
    pub dir: tempfile::TempDir,
    pub home: PathBuf,
    pub addrs: PathBuf,
    pub charm: PathBuf,
    /// Environment of every command (beyond `JUJU_SIM_HOME` and
    /// `JUJU_SIM_ADDR_DIR`): retries after 1 s, stops within 5 s, plus what
    /// the test file asked for (e.g. `JUJU_SIM_AGENT_VERSION`).
    env: Vec<(String, String)>,
    settle: Settle,
    /// `wait-idle --timeout` of [`Sim::settle`].
    settle_timeout: &'static str,
}

impl Sim {
    /// A model (created by the first verb) for `charm`, written to
    /// `<dir>/charm`.
    pub fn new(charm: &Charm, env: &[(&str, &str)], settle: Settle) -> Sim {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("model");
        let addrs = dir.path().join("addrs");
        let path = dir.path().join("charm");
        write_charm(&path, charm);
        let mut all = vec![
            ("JUJU_SIM_RETRY_DELAY".to_string(), "1s".to_string()),
            ("JUJU_SIM_STOP_TIMEOUT".to_string(), "5".to_string()),
        ];
        all.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Sim {
            dir,
            home,
            addrs,
            charm: path,
            env: all,
            settle,
            settle_timeout: "5m",
        }
    }

    /// The same, with another `wait-idle` timeout for [`Sim::settle`].
    pub fn settle_timeout(mut self, timeout: &'static str) -> Sim {
        self.settle_timeout = timeout;
        self
    }

    /// The `juju-sim` command for `args`, with this model's environment
    /// (and no `JUJU_UNIT_NAME` a hook might have left).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_juju-sim"));
        c.args(args)
            .env("JUJU_SIM_HOME", &self.home)
            .env("JUJU_SIM_ADDR_DIR", &self.addrs)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env_remove("JUJU_UNIT_NAME");
        c
    }

    /// Runs a verb and returns as the verb does (queued work may still run).
    pub fn raw(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs a verb; an auto-settling model then waits for what it queued.
    pub fn cmd(&self, args: &[&str]) -> Output {
        let o = self.raw(args);
        if self.settle == Settle::Auto && o.status.success() && settles(args) {
            self.settle();
        }
        o
    }

    /// `wait-idle`: every unit's queue drained (units in error are fine,
    /// a timeout is not).
    pub fn settle(&self) -> Output {
        let o = self.raw(&["wait-idle", "--timeout", self.settle_timeout]);
        assert_ne!(
            o.status.code(),
            Some(1),
            "wait-idle: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        o
    }

    /// Runs a verb (see [`Sim::cmd`]) that must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.cmd(args);
        assert!(
            o.status.success(),
            "{args:?} failed: {}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).to_string()
    }

    /// Deploys the charm with `n` units and waits for them to settle.
    pub fn deploy(&self, n: &str) {
        let charm = self.charm.to_string_lossy().to_string();
        self.ok(&["deploy", &charm, "-n", n]);
        if self.settle == Settle::Manual {
            self.settle();
        }
    }

    /// The unit's filesystem root.
    pub fn root(&self, unit: &str) -> PathBuf {
        self.home
            .join("units")
            .join(unit.replace('/', "-"))
            .join("root")
    }

    /// The lines of the fixture charm's `hooks.log` on `unit`.
    pub fn hooks(&self, unit: &str) -> Vec<String> {
        fs::read_to_string(self.root(unit).join("hooks.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| l.trim_end().to_string())
            .collect()
    }

    /// Whether the model runs Juju 2.9 (its own version once it exists).
    pub fn is_29(&self) -> bool {
        let version = fs::read_to_string(self.home.join("model.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .and_then(|m| m["version"].as_str().map(str::to_string))
            .or_else(|| {
                self.env
                    .iter()
                    .rev()
                    .find(|(k, _)| k == "JUJU_SIM_AGENT_VERSION")
                    .map(|(_, v)| v.clone())
            });
        version.is_some_and(|v| v.starts_with("2."))
    }

    /// Runs a shell command in `unit`'s hook context: `exec --unit U --
    /// CMD` on Juju 3, `run --unit U -- CMD` on Juju 2.9 (which has no
    /// `exec`).
    pub fn exec(&self, unit: &str, cmd: &str) -> Output {
        if self.is_29() {
            return self.cmd(&["run", "--unit", unit, "--", cmd]);
        }
        // Juju 3's exec folds stderr into stdout and any failure into exit
        // 1; the task keeps them apart, so read it as jubilant does.
        let o = self.cmd(&["exec", "--format", "json", "--unit", unit, "--", cmd]);
        let Ok(doc) = serde_json::from_slice::<Value>(&o.stdout) else {
            return o;
        };
        let results = &doc[unit]["results"];
        let Some(code) = results["return-code"].as_i64() else {
            return o;
        };
        use std::os::unix::process::ExitStatusExt as _;
        let text = |k: &str| results[k].as_str().unwrap_or_default().as_bytes().to_vec();
        Output {
            status: std::process::ExitStatus::from_raw((code as i32) << 8),
            stdout: text("stdout"),
            stderr: text("stderr"),
        }
    }

    /// [`Sim::exec`] that must succeed; its stdout, trimmed.
    pub fn out(&self, unit: &str, cmd: &str) -> String {
        let o = self.exec(unit, cmd);
        assert!(
            o.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    /// `status --format=json`.
    pub fn status(&self) -> Value {
        serde_json::from_str(&self.ok(&["status", "--format=json"])).unwrap()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if self.home.exists() {
            let _ = self.raw(&["destroy-model", "-y"]);
        }
    }
}

/// A command's stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}
