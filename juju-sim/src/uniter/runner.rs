//! Running one hook, action or `exec` command for a unit exactly as Juju's
//! uniter does: the `JUJU_*` environment, the charm directory as working
//! directory, `dispatch` (or the legacy `hooks/`/`actions/` file), output to
//! the unit's `agent.log`, a timeout, and the marker that lets
//! destroy-model kill what is still running. Also the last step of a unit's
//! removal. The agent loop that decides what to run is in `uniter::agent`.

use crate::model::{Op, Status, Store};
use crate::util::{now_secs, rfc3339};
use anyhow::{Context, Result};
use std::fs::{self, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What the process runs for.
pub enum Ctx<'a> {
    Hook(&'a Op),
    Action { name: &'a str, id: u64 },
    Exec,
}

/// The agent of one model.
pub struct Agent {
    pub store: Store,
    pub verbose: bool,
}

/// The longest a hook or action may run (`JUJU_SIM_HOOK_TIMEOUT` seconds,
/// default 600) before it is killed.
pub fn hook_timeout() -> Duration {
    let secs = std::env::var("JUJU_SIM_HOOK_TIMEOUT")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(600);
    Duration::from_secs(secs)
}

/// Appends one timestamped line to a unit's agent.log.
pub fn log_line(store: &Store, unit: &str, level: &str, msg: &str) {
    let path = store.unit_dir(unit).join("agent.log");
    if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(path) {
        let _ = writeln!(f, "{} {level} {msg}", rfc3339(now_secs()));
    }
}

impl Agent {
    pub fn new(store: Store, verbose: bool) -> Agent {
        Agent { store, verbose }
    }

    /// The environment of a hook, action or exec on `unit`.
    pub fn env(&self, unit: &str, ctx: &Ctx) -> Result<Vec<(String, String)>> {
        let model = self.store.read()?;
        let home = self.store.home();
        let udir = self.store.unit_dir(unit);
        let charm_dir = udir.join("charm");
        let model_name = home
            .file_name()
            .map(|s| s.to_string_lossy().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "sim".to_string());
        let path = format!(
            "{}:{}",
            self.store.tools_dir().display(),
            std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into())
        );
        let mut env = vec![
            ("JUJU_UNIT_NAME".to_string(), unit.to_string()),
            ("JUJU_CHARM_DIR".into(), charm_dir.display().to_string()),
            ("JUJU_MODEL_NAME".into(), model_name),
            ("JUJU_MODEL_UUID".into(), model.uuid.clone()),
            (
                "JUJU_VERSION".into(),
                crate::profile::Profile::of(&model.version).version,
            ),
            (
                "JUJU_MACHINE_ID".into(),
                model
                    .units
                    .get(unit)
                    .map(|u| u.machine.clone())
                    .unwrap_or_default(),
            ),
            ("JUJU_PRINCIPAL_UNIT".into(), String::new()),
            (
                "ETCD_CHARM_ROOT".into(),
                udir.join("root").display().to_string(),
            ),
            ("JUJU_SIM_HOME".into(), home.display().to_string()),
            ("PATH".into(), path),
        ];
        match ctx {
            Ctx::Hook(op) => {
                env.push(("JUJU_DISPATCH_PATH".into(), format!("hooks/{}", op.hook)));
                env.push(("JUJU_HOOK_NAME".into(), op.hook.clone()));
                if let Some(rel) = &op.relation {
                    // Each side names the relation with its own endpoint.
                    let app = model
                        .units
                        .get(unit)
                        .map(|u| u.app.clone())
                        .unwrap_or_default();
                    let id = model.relation_id_for(rel, &app);
                    let ep = id.split(':').next().unwrap_or(&id).to_string();
                    env.push(("JUJU_RELATION".into(), ep));
                    env.push(("JUJU_RELATION_ID".into(), id));
                }
                if let Some(r) = &op.remote_unit {
                    env.push(("JUJU_REMOTE_UNIT".into(), r.clone()));
                }
                if let Some(r) = &op.remote_app {
                    env.push(("JUJU_REMOTE_APP".into(), r.clone()));
                }
                if let Some(r) = &op.departing {
                    env.push(("JUJU_DEPARTING_UNIT".into(), r.clone()));
                }
            }
            Ctx::Action { name, id } => {
                env.push(("JUJU_DISPATCH_PATH".into(), format!("actions/{name}")));
                env.push(("JUJU_ACTION_NAME".into(), name.to_string()));
                env.push(("JUJU_ACTION_UUID".into(), id.to_string()));
            }
            Ctx::Exec => {}
        }
        if let Ctx::Hook(op) = ctx {
            env.extend(op.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        Ok(env)
    }

    /// A command for `unit` with a clean JUJU_* environment plus `env`.
    pub fn command(&self, unit: &str, program: &Path, env: &[(String, String)]) -> Command {
        let mut cmd = Command::new(program);
        for (k, _) in std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v))) {
            if k.starts_with("JUJU_") && !k.starts_with("JUJU_SIM_") {
                cmd.env_remove(k);
            }
        }
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        cmd.current_dir(self.store.unit_dir(unit).join("charm"));
        cmd
    }

    /// Runs dispatch (or the legacy hooks/ or actions/ file) for `unit`;
    /// returns its exit code, 0 when the charm has nothing to run. With
    /// `capture`, stdout and stderr go to those two files (an action's
    /// output is kept in its results) and are then appended to agent.log.
    pub fn run_dispatch(
        &self,
        unit: &str,
        dispatch_path: &str,
        env: &[(String, String)],
        timeout: Duration,
        capture: Option<(&Path, &Path)>,
    ) -> Result<i32> {
        let charm = self.store.unit_dir(unit).join("charm");
        let program = if charm.join("dispatch").exists() {
            charm.join("dispatch")
        } else if charm.join(dispatch_path).exists() {
            charm.join(dispatch_path)
        } else {
            return Ok(0);
        };
        let log_path = self.store.unit_dir(unit).join("agent.log");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("cannot open {}", log_path.display()))?;
        let start_len = log.metadata().map(|m| m.len()).unwrap_or(0);
        let mut cmd = self.command(unit, &program, env);
        cmd.stdin(Stdio::null()).process_group(0);
        match capture {
            Some((out, err)) => {
                let create = |p: &Path| {
                    fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))
                };
                cmd.stdout(create(out)?).stderr(create(err)?);
            }
            None => {
                cmd.stdout(log.try_clone().context("cannot dup agent.log")?)
                    .stderr(log);
            }
        }
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                // Like Juju: a charm file that cannot be executed fails the
                // hook (the unit goes to error) instead of the agent.
                log_line(
                    &self.store,
                    unit,
                    "ERROR",
                    &format!("cannot run {}: {e}", program.display()),
                );
                return Ok(1);
            }
        };
        let running = self.store.unit_dir(unit).join("running");
        let marker = running.join(child.id().to_string());
        let _ = fs::create_dir_all(&running).and_then(|()| fs::write(&marker, dispatch_path));
        let deadline = Instant::now() + timeout;
        let code = loop {
            if let Some(st) = child.try_wait().context("cannot wait for dispatch")? {
                break exit_code(st);
            }
            if Instant::now() > deadline {
                let pid = child.id() as libc::pid_t;
                // SAFETY: kill(2) on a process group we created.
                unsafe {
                    libc::kill(-pid, libc::SIGKILL);
                }
                let st = child.wait().context("cannot wait for dispatch")?;
                log_line(
                    &self.store,
                    unit,
                    "ERROR",
                    &format!("{dispatch_path} timed out; killed"),
                );
                break exit_code(st).max(1);
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let _ = fs::remove_file(&marker);
        if let Some((out, err)) = capture {
            if let Ok(mut log) = OpenOptions::new().append(true).open(&log_path) {
                for p in [out, err] {
                    if let Ok(bytes) = fs::read(p) {
                        let _ = log.write_all(&bytes);
                    }
                }
            }
        }
        if self.verbose {
            if let Ok(mut f) = fs::File::open(&log_path) {
                let mut s = String::new();
                if f.seek(SeekFrom::Start(start_len)).is_ok() && f.read_to_string(&mut s).is_ok() {
                    for line in s.lines() {
                        eprintln!("{unit}: {line}");
                    }
                }
            }
        }
        Ok(code)
    }

    /// The last step of remove-unit: kill what the unit left running,
    /// release its address, delete its directory, re-elect a leader.
    pub fn finalize_remove(&self, unit: &str) -> Result<()> {
        let udir = self.store.unit_dir(unit);
        let killed = crate::systemctl::kill_all(&udir.join("systemd"));
        if killed > 0 {
            log_line(
                &self.store,
                unit,
                "WARNING",
                &format!("unit left {killed} processes running; killed"),
            );
            eprintln!("WARNING {unit} left {killed} processes running; killed");
        }
        let home = self.store.home().to_path_buf();
        let removed_app = self.store.update(|m| -> Result<Option<String>> {
            let Some(u) = m.units.remove(unit) else {
                return Ok(None);
            };
            m.queue.retain(|o| o.unit != unit);
            for a in m.actions.values_mut() {
                if a.unit == unit && (a.status == "pending" || a.status == "running") {
                    a.status = "failed".into();
                    a.message = Some(format!("unit {unit} was removed"));
                    a.completed = Some(now_secs());
                }
            }
            crate::addr::release(&home, &u.address);
            for r in m.relations.values_mut() {
                r.views.remove(unit);
                r.unit_data.remove(unit);
                for v in r.views.values_mut() {
                    v.remove(unit);
                }
            }
            let live = m.live_units(&u.app);
            let remaining = m.app_units(&u.app);
            let Some(app) = m.applications.get_mut(&u.app) else {
                return Ok(None);
            };
            let mut elected = Vec::new();
            if app.leader.as_deref() == Some(unit) {
                app.leader = None;
                if !app.dying {
                    if let Some(new) = live.first() {
                        app.leader = Some(new.clone());
                        elected.push(Op::hook(new, "leader-elected"));
                        for other in live.iter().skip(1) {
                            elected.push(Op::hook(other, "leader-settings-changed"));
                        }
                    }
                }
            }
            let gone = app.dying && remaining.is_empty();
            for op in elected {
                m.push(op);
            }
            if gone {
                m.applications.remove(&u.app);
                m.relations.retain(|_, r| !r.involves(&u.app));
                return Ok(Some(u.app.clone()));
            }
            Ok(None)
        })?;
        let _ = fs::remove_dir_all(&udir);
        if let Some(app) = removed_app {
            crate::util::remove_charm_dirs(self.store.home(), &app);
            let _ = fs::remove_dir_all(self.store.home().join("resources").join(&app));
        }
        Ok(())
    }
}

/// SIGKILLs the process group of every hook or action still running in the
/// unit directory `udir` (each is recorded in `udir/running/<pgid>`).
pub fn kill_running(udir: &Path) -> usize {
    let mut n = 0;
    if let Ok(rd) = fs::read_dir(udir.join("running")) {
        for e in rd.flatten() {
            if let Ok(pid) = e.file_name().to_string_lossy().parse::<libc::pid_t>() {
                if pid > 1 {
                    // SAFETY: kill(2) on a process group the agent created.
                    if unsafe { libc::kill(-pid, libc::SIGKILL) } == 0 {
                        n += 1;
                    }
                }
            }
            let _ = fs::remove_file(e.path());
        }
    }
    n
}

/// Unix milliseconds, now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The per-unit files of a running action's captured output.
pub fn capture_paths(udir: &Path, id: u64) -> (PathBuf, PathBuf) {
    (
        udir.join(format!("action-{id}.stdout")),
        udir.join(format!("action-{id}.stderr")),
    )
}

pub fn status(current: &str, message: &str) -> Status {
    Status {
        current: current.to_string(),
        message: message.to_string(),
        since: rfc3339(now_secs()),
    }
}

pub fn exit_code(st: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0))
}
