//! The unit agent: builds each hook's or action's environment, runs the
//! charm's `dispatch` exactly as Juju's uniter does, and drains the model's
//! FIFO hook queue. Hooks on one unit are serialized with a per-unit flock
//! (`<unitdir>/uniter.lock`). Actions deliberately do NOT take that lock, so
//! two actions (or an action and a hook) may run at once on one unit and the
//! charm's own action lock gets exercised. A failing hook is retried twice
//! (1 s apart); after that the unit stays in `error` and its later hooks are
//! deferred until `juju-sim resolved`.

use crate::model::{Op, Status, Store, FINALIZE_REMOVE};
use crate::util::{now_secs, rfc3339};
use anyhow::{anyhow, bail, Context, Result};
use std::fs::{self, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Most hooks one drain may run before it reports a loop.
const MAX_HOOKS: usize = 500;

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

fn hook_timeout() -> Duration {
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
            ("JUJU_VERSION".into(), "3.5.0".into()),
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
        Ok(env)
    }

    /// A command for `unit` with a clean JUJU_* environment plus `env`.
    fn command(&self, unit: &str, program: &Path, env: &[(String, String)]) -> Command {
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
    /// returns its exit code, 0 when the charm has nothing to run.
    fn run_dispatch(
        &self,
        unit: &str,
        dispatch_path: &str,
        env: &[(String, String)],
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
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().context("cannot dup agent.log")?)
            .stderr(log)
            .process_group(0);
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
        let deadline = Instant::now() + hook_timeout();
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

    fn uniter_lock(&self, unit: &str) -> Result<fs::File> {
        use fs2::FileExt;
        let path = self.store.unit_dir(unit).join("uniter.lock");
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        FileExt::lock_exclusive(&f).with_context(|| format!("cannot lock {}", path.display()))?;
        Ok(f)
    }

    /// Whether the unit's uniter lock can be taken within `wait` (it is
    /// released again at once); false while another process runs a hook.
    pub fn uniter_free(&self, unit: &str, wait: Duration) -> bool {
        use fs2::FileExt;
        let path = self.store.unit_dir(unit).join("uniter.lock");
        let Ok(f) = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
        else {
            return false;
        };
        let deadline = Instant::now() + wait;
        loop {
            if FileExt::try_lock_exclusive(&f).is_ok() {
                let _ = FileExt::unlock(&f);
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs one hook with Juju's retries and status bookkeeping.
    pub fn run_hook(
        &self,
        op: &Op,
        retries: u32,
        timeout_override: Option<Duration>,
    ) -> Result<bool> {
        let unit = op.unit.as_str();
        if !self.store.unit_dir(unit).exists() {
            return Ok(true);
        }
        let _lock = self.uniter_lock(unit)?;
        let present = self.store.update(|m| -> Result<bool> {
            let Some(u) = m.units.get_mut(unit) else {
                return Ok(false);
            };
            u.agent = "executing".into();
            if op.hook == "install" {
                u.workload = status("maintenance", "installing charm software");
            }
            if let (Some(rel), Some(remote)) = (&op.relation, &op.remote_unit) {
                if let Some(r) = m.relations.get_mut(rel) {
                    let view = r.views.entry(unit.to_string()).or_default();
                    if op.hook.ends_with("-relation-joined") {
                        view.insert(remote.clone());
                    } else if op.hook.ends_with("-relation-departed") {
                        view.remove(remote);
                    }
                }
            }
            Ok(true)
        })?;
        if !present {
            return Ok(true);
        }
        let mut env = self.env(unit, &Ctx::Hook(op))?;
        if let Some(t) = timeout_override {
            env.push(("JUJU_SIM_HOOK_TIMEOUT".into(), t.as_secs().to_string()));
        }
        let mut ok = false;
        for attempt in 0..=retries {
            if attempt > 0 {
                std::thread::sleep(Duration::from_secs(1));
                log_line(
                    &self.store,
                    unit,
                    "INFO",
                    &format!("juju.worker.uniter retrying hook \"{}\"", op.hook),
                );
            }
            log_line(
                &self.store,
                unit,
                "INFO",
                &format!("juju.worker.uniter running \"{}\" hook", op.hook),
            );
            let code = match timeout_override {
                Some(t) => with_timeout_env(t, || {
                    self.run_dispatch(unit, &format!("hooks/{}", op.hook), &env)
                })?,
                None => self.run_dispatch(unit, &format!("hooks/{}", op.hook), &env)?,
            };
            log_line(
                &self.store,
                unit,
                if code == 0 { "INFO" } else { "ERROR" },
                &format!(
                    "juju.worker.uniter.operation ran \"{}\" hook (exit status {code})",
                    op.hook
                ),
            );
            if code == 0 {
                ok = true;
                break;
            }
            self.store.update(|m| -> Result<()> {
                if let Some(u) = m.units.get_mut(unit) {
                    u.failed = Some(op.clone());
                }
                Ok(())
            })?;
        }
        self.store.update(|m| -> Result<()> {
            if let Some(u) = m.units.get_mut(unit) {
                u.agent = "idle".into();
                if ok {
                    u.failed = None;
                    if op.hook == "install" && u.workload.message == "installing charm software" {
                        u.workload = status("unknown", "");
                    }
                } else {
                    u.failed = Some(op.clone());
                }
            }
            Ok(())
        })?;
        Ok(ok)
    }

    /// Runs queued hooks in FIFO order until the queue is empty.
    pub fn drain(&self) -> Result<()> {
        let mut count = 0usize;
        loop {
            let next = self.store.update(|m| -> Result<Option<Op>> {
                while let Some(op) = m.queue.pop_front() {
                    match m.units.get_mut(&op.unit) {
                        None => continue,
                        Some(u) if u.failed.is_some() => u.deferred.push(op),
                        Some(_) => return Ok(Some(op)),
                    }
                }
                Ok(None)
            })?;
            let Some(op) = next else { return Ok(()) };
            count += 1;
            if count > MAX_HOOKS {
                bail!("more than {MAX_HOOKS} hooks ran without the model settling: the charm loops on relation or leader data");
            }
            if op.hook == FINALIZE_REMOVE {
                self.finalize_remove(&op.unit)?;
            } else {
                self.run_hook(&op, 2, None)?;
            }
        }
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
            if app.leader.as_deref() == Some(unit) {
                app.leader = None;
                if !app.dying {
                    if let Some(new) = live.first() {
                        app.leader = Some(new.clone());
                        m.queue.push_back(Op::hook(new, "leader-elected"));
                        for other in live.iter().skip(1) {
                            m.queue
                                .push_back(Op::hook(other, "leader-settings-changed"));
                        }
                    }
                }
            }
            if app.dying && remaining.is_empty() {
                m.applications.remove(&u.app);
                m.relations.retain(|_, r| !r.involves(&u.app));
                return Ok(Some(u.app.clone()));
            }
            Ok(None)
        })?;
        let _ = fs::remove_dir_all(&udir);
        if let Some(app) = removed_app {
            let _ = fs::remove_dir_all(self.store.home().join("charms").join(&app));
            let _ = fs::remove_dir_all(self.store.home().join("resources").join(&app));
        }
        Ok(())
    }

    /// Records a pending action; returns its id (unique under the model
    /// lock, so concurrent `run-action`s never share one).
    pub fn enqueue_action(&self, unit: &str, name: &str, params: serde_json::Value) -> Result<u64> {
        self.store.update(|m| -> Result<u64> {
            if !m.units.contains_key(unit) {
                bail!("unit \"{unit}\" not found");
            }
            m.next_action += 1;
            let id = m.next_action;
            let now = now_secs();
            m.actions.insert(
                id,
                crate::model::Action {
                    id,
                    unit: unit.to_string(),
                    name: name.to_string(),
                    params,
                    status: "pending".into(),
                    enqueued: now,
                    ..Default::default()
                },
            );
            Ok(id)
        })
    }

    /// Runs a queued action to completion (without the uniter lock) and
    /// records its outcome.
    pub fn execute_action(&self, id: u64) -> Result<()> {
        let (unit, name) = self.store.update(|m| -> Result<(String, String)> {
            let a = m
                .actions
                .get_mut(&id)
                .ok_or_else(|| anyhow!("task {id} not found"))?;
            if a.status != "pending" {
                bail!("task {id} is already {}", a.status);
            }
            a.status = "running".into();
            a.started = Some(now_secs());
            Ok((a.unit.clone(), a.name.clone()))
        })?;
        let (unit, name) = (unit.as_str(), name.as_str());
        log_line(
            &self.store,
            unit,
            "INFO",
            &format!("juju.worker.uniter running action \"{name}\" (id {id})"),
        );
        let env = self.env(unit, &Ctx::Action { name, id })?;
        let code = self.run_dispatch(unit, &format!("actions/{name}"), &env)?;
        log_line(
            &self.store,
            unit,
            "INFO",
            &format!("juju.worker.uniter ran action \"{name}\" (id {id}, exit status {code})"),
        );
        self.store.update(|m| -> Result<()> {
            let a = m
                .actions
                .get_mut(&id)
                .ok_or_else(|| anyhow!("action {id} vanished"))?;
            a.code = Some(code);
            a.completed = Some(now_secs());
            if a.failed_by_charm {
                a.status = "failed".into();
            } else if code != 0 {
                a.status = "failed".into();
                a.message = Some(format!("exit status {code}"));
            } else {
                a.status = "completed".into();
            }
            Ok(())
        })?;
        self.drain()
    }

    /// Runs a command in `unit`'s hook context (like `juju exec`).
    pub fn exec(&self, unit: &str, args: &[String]) -> Result<i32> {
        if !self.store.read()?.units.contains_key(unit) {
            bail!("unit \"{unit}\" not found");
        }
        let _lock = self.uniter_lock(unit)?;
        let env = self.env(unit, &Ctx::Exec)?;
        let line = args.join(" ");
        let mut cmd = self.command(unit, Path::new("/bin/sh"), &env);
        cmd.arg("-c").arg(line);
        let st = cmd.status().context("cannot run command")?;
        Ok(exit_code(st))
    }

    /// Clears a unit's error and retries the failed hook, then the deferred
    /// ones.
    pub fn resolved(&self, unit: &str) -> Result<()> {
        self.store.update(|m| -> Result<()> {
            let u = m
                .units
                .get_mut(unit)
                .ok_or_else(|| anyhow!("unit \"{unit}\" not found"))?;
            let Some(failed) = u.failed.take() else {
                bail!("unit \"{unit}\" is not in an error state");
            };
            let deferred = std::mem::take(&mut u.deferred);
            for op in deferred.into_iter().rev() {
                m.queue.push_front(op);
            }
            m.queue.push_front(failed);
            Ok(())
        })?;
        self.drain()
    }
}

fn with_timeout_env<T>(t: Duration, f: impl FnOnce() -> T) -> T {
    // The timeout is read from the environment inside run_dispatch; a
    // scoped override keeps destroy-model's short timeouts local.
    let old = std::env::var_os("JUJU_SIM_HOOK_TIMEOUT");
    std::env::set_var("JUJU_SIM_HOOK_TIMEOUT", t.as_secs().to_string());
    let out = f();
    match old {
        Some(v) => std::env::set_var("JUJU_SIM_HOOK_TIMEOUT", v),
        None => std::env::remove_var("JUJU_SIM_HOOK_TIMEOUT"),
    }
    out
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

pub fn status(current: &str, message: &str) -> Status {
    Status {
        current: current.to_string(),
        message: message.to_string(),
        since: rfc3339(now_secs()),
    }
}

fn exit_code(st: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0))
}
