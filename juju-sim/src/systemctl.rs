//! The `systemctl` stand-in. Reads unit files from
//! `$ETCD_CHARM_ROOT/etc/systemd/system/`, runs `ExecStart` as a real
//! detached process (own session, stdin /dev/null, output appended to
//! `$ETCD_CHARM_ROOT/var/log/<name>.log`) and tracks it in
//! `<unitdir>/systemd/<name>.service.json` as {pid, start time from
//! /proc/<pid>/stat field 22, enabled, masked}; a zombie or a PID whose start
//! time differs counts as dead. `Restart=` is not emulated: a service that
//! dies stays dead (is-active reports `failed` only when start itself failed).
//! Starting a `.timer` starts its runner ([`crate::timer`]), tracked the
//! same way.

use serde::{Deserialize, Serialize};
use std::fs::{self, OpenOptions};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A failure with systemctl's message and exit code.
#[derive(Debug, thiserror::Error)]
#[error("{msg}")]
pub struct SystemctlError {
    pub msg: String,
    pub code: i32,
}

fn fail(code: i32, msg: impl Into<String>) -> SystemctlError {
    SystemctlError {
        msg: msg.into(),
        code,
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct State {
    pid: Option<i32>,
    start_time: Option<u64>,
    enabled: bool,
    masked: bool,
    failed: bool,
}

fn proc_start(pid: i32) -> Option<(char, u64)> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state); field 22 is fields[19].
    let state = fields.first()?.chars().next()?;
    Some((state, fields.get(19)?.parse().ok()?))
}

fn alive(pid: i32, start: Option<u64>) -> bool {
    match proc_start(pid) {
        Some((state, t)) => state != 'Z' && state != 'X' && start.is_none_or(|s| s == t),
        None => false,
    }
}

impl State {
    fn running(&self) -> bool {
        self.pid.is_some_and(|p| alive(p, self.start_time))
    }
}

/// Kills every process tracked under `state_dir` (and its process group);
/// returns how many were still alive.
pub fn kill_all(state_dir: &Path) -> usize {
    let mut n = 0;
    let Ok(entries) = fs::read_dir(state_dir) else {
        return 0;
    };
    for e in entries.flatten() {
        let Ok(s) = fs::read_to_string(e.path()) else {
            continue;
        };
        let Ok(st) = serde_json::from_str::<State>(&s) else {
            continue;
        };
        if let Some(pid) = st.pid {
            if alive(pid, st.start_time) {
                n += 1;
                // SAFETY: plain kill(2) calls.
                unsafe {
                    libc::kill(-pid, libc::SIGKILL);
                    libc::kill(pid, libc::SIGKILL);
                }
                let deadline = Instant::now() + Duration::from_secs(5);
                while alive(pid, st.start_time) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }
    n
}

struct Ctx {
    root: PathBuf,
    state_dir: PathBuf,
}

impl Ctx {
    fn from_env() -> Result<Ctx, SystemctlError> {
        let root = std::env::var_os("ETCD_CHARM_ROOT")
            .map(PathBuf::from)
            .ok_or_else(|| {
                fail(
                    1,
                    "juju-sim systemctl: ETCD_CHARM_ROOT is not set (run inside a juju-sim hook)",
                )
            })?;
        let state_dir = match (
            std::env::var_os("JUJU_SIM_HOME"),
            std::env::var("JUJU_UNIT_NAME"),
        ) {
            (Some(h), Ok(u)) => PathBuf::from(h)
                .join("units")
                .join(crate::util::unit_slug(&u))
                .join("systemd"),
            _ => root.join("run/juju-sim-systemd"),
        };
        Ok(Ctx { root, state_dir })
    }

    fn state_path(&self, name: &str) -> PathBuf {
        self.state_dir.join(format!("{name}.json"))
    }

    fn load(&self, name: &str) -> State {
        fs::read_to_string(self.state_path(name))
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default()
    }

    fn save(&self, name: &str, st: &State) -> Result<(), SystemctlError> {
        fs::create_dir_all(&self.state_dir).map_err(|e| {
            fail(
                1,
                format!("cannot create {}: {e}", self.state_dir.display()),
            )
        })?;
        let body = serde_json::to_string(st).map_err(|e| fail(1, e.to_string()))?;
        let tmp = self.state_path(&format!("{name}.tmp"));
        fs::write(&tmp, body)
            .and_then(|_| fs::rename(&tmp, self.state_path(name)))
            .map_err(|e| fail(1, format!("cannot save service state: {e}")))
    }

    fn unit_file(&self, name: &str) -> PathBuf {
        self.root.join("etc/systemd/system").join(name)
    }
}

fn normalize(name: &str) -> String {
    if name.contains('.') {
        name.to_string()
    } else {
        format!("{name}.service")
    }
}

/// Shell-like word splitting (single/double quotes, backslash escapes).
pub fn split_words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut have = false;
    let mut chars = s.chars();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                have = true;
            }
            (None, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                    have = true;
                }
            }
            (None, c) if c.is_whitespace() => {
                if have {
                    out.push(std::mem::take(&mut cur));
                    have = false;
                }
            }
            (None, c) => {
                cur.push(c);
                have = true;
            }
        }
    }
    if have {
        out.push(cur);
    }
    out
}

struct Service {
    exec: Vec<String>,
    env: Vec<(String, String)>,
    workdir: Option<String>,
}

fn parse_unit(text: &str) -> Service {
    let mut joined = Vec::new();
    let mut acc = String::new();
    for line in text.lines() {
        let t = line.trim_end();
        if let Some(stripped) = t.strip_suffix('\\') {
            acc.push_str(stripped);
            acc.push(' ');
        } else {
            acc.push_str(t);
            joined.push(std::mem::take(&mut acc));
        }
    }
    if !acc.is_empty() {
        joined.push(acc);
    }
    let mut section = String::new();
    let mut svc = Service {
        exec: Vec::new(),
        env: Vec::new(),
        workdir: None,
    };
    for line in joined {
        let l = line.trim();
        if l.starts_with('#') || l.starts_with(';') || l.is_empty() {
            continue;
        }
        if l.starts_with('[') {
            section = l.to_string();
            continue;
        }
        if section != "[Service]" {
            continue;
        }
        let Some((k, v)) = l.split_once('=') else {
            continue;
        };
        match k.trim() {
            "ExecStart" => {
                let v = v.trim().trim_start_matches(['-', '@', '+', '!', ':']);
                svc.exec = split_words(v);
            }
            "Environment" => {
                for w in split_words(v) {
                    if let Some((a, b)) = w.split_once('=') {
                        svc.env.push((a.to_string(), b.to_string()));
                    }
                }
            }
            "WorkingDirectory" => svc.workdir = Some(v.trim().trim_start_matches('-').to_string()),
            _ => {}
        }
    }
    svc
}

/// `ExecStart`'s words, `Environment=` and `WorkingDirectory=` of a unit.
pub(crate) fn parse_unit_pub(text: &str) -> (Vec<String>, Vec<(String, String)>, Option<String>) {
    let s = parse_unit(text);
    (s.exec, s.env, s.workdir)
}

fn start(ctx: &Ctx, name: &str) -> Result<(), SystemctlError> {
    let mut st = ctx.load(name);
    if st.masked {
        return Err(fail(
            1,
            format!("Failed to start {name}: Unit {name} is masked."),
        ));
    }
    let path = ctx.unit_file(name);
    let Ok(text) = fs::read_to_string(&path) else {
        return Err(fail(
            5,
            format!("Failed to start {name}: Unit {name} not found."),
        ));
    };
    if st.running() {
        return Ok(());
    }
    let mut svc = parse_unit(&text);
    if name.ends_with(".timer") {
        // The runner is this binary as `systemctl __run-timer NAME`.
        let me = std::env::current_exe()
            .map_err(|e| fail(1, format!("juju-sim systemctl: cannot find itself: {e}")))?;
        svc.exec = vec![
            me.display().to_string(),
            "__run-timer".to_string(),
            name.to_string(),
        ];
    }
    let Some((prog, args)) = svc.exec.split_first() else {
        return Err(fail(
            1,
            format!("Failed to start {name}: Unit {name} has no ExecStart=."),
        ));
    };
    let base = name.strip_suffix(".service").unwrap_or(name);
    let log_dir = ctx.root.join("var/log");
    let log_path = log_dir.join(format!("{base}.log"));
    let log = fs::create_dir_all(&log_dir)
        .and_then(|_| OpenOptions::new().create(true).append(true).open(&log_path))
        .map_err(|e| fail(1, format!("cannot open {}: {e}", log_path.display())))?;
    let log2 = log.try_clone().map_err(|e| fail(1, e.to_string()))?;
    let mut cmd = Command::new(prog);
    if name.ends_with(".timer") {
        cmd.arg0("systemctl");
    }
    cmd.args(args)
        .envs(svc.env.iter().map(|(a, b)| (a, b)))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    if let Some(w) = &svc.workdir {
        cmd.current_dir(w);
    }
    // SAFETY: setsid is async-signal-safe; it detaches the service into its
    // own session and process group.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let spawned = cmd.spawn();
    let job_failed = || {
        fail(
            1,
            format!("Job for {name} failed because the control process exited with error code.\nSee \"systemctl status {name}\" and \"journalctl -xeu {name}\" for details."),
        )
    };
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            st.pid = None;
            st.failed = true;
            ctx.save(name, &st)?;
            let _ = fs::write(&log_path, format!("{prog}: {e}\n"));
            return Err(job_failed());
        }
    };
    let pid = child.id() as i32;
    st.pid = Some(pid);
    st.start_time = proc_start(pid).map(|(_, t)| t);
    st.failed = false;
    ctx.save(name, &st)?;
    std::thread::sleep(Duration::from_millis(300));
    if let Ok(Some(_)) = child.try_wait() {
        st.pid = None;
        st.failed = true;
        ctx.save(name, &st)?;
        return Err(job_failed());
    }
    Ok(())
}

fn stop(ctx: &Ctx, name: &str) -> Result<(), SystemctlError> {
    let mut st = ctx.load(name);
    if let Some(pid) = st.pid {
        if alive(pid, st.start_time) {
            let timeout = std::env::var("JUJU_SIM_STOP_TIMEOUT")
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .unwrap_or(10);
            // SAFETY: plain kill(2) calls on the service's process group.
            unsafe {
                libc::kill(-pid, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(timeout);
            while alive(pid, st.start_time) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if alive(pid, st.start_time) {
                // SAFETY: as above.
                unsafe {
                    libc::kill(-pid, libc::SIGKILL);
                    libc::kill(pid, libc::SIGKILL);
                }
                while alive(pid, st.start_time) {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }
    st.pid = None;
    st.failed = false;
    ctx.save(name, &st)
}

/// Runs the stand-in with `args` (argv without argv[0]); returns the exit
/// code.
pub fn main(args: &[String]) -> i32 {
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{}", e.msg);
            e.code
        }
    }
}

fn run(args: &[String]) -> Result<i32, SystemctlError> {
    let mut now = false;
    let mut quiet = false;
    let mut words = Vec::new();
    for a in args {
        match a.as_str() {
            "--now" => now = true,
            "--quiet" | "-q" => quiet = true,
            "--no-block" | "--no-pager" | "--system" | "--no-ask-password" | "--full" | "-l" => {}
            s if s.starts_with("--") => {}
            _ => words.push(a.clone()),
        }
    }
    let Some((verb, names)) = words.split_first() else {
        return Err(fail(1, "juju-sim systemctl: no verb given"));
    };
    let ctx = Ctx::from_env()?;
    if verb == "__run-timer" {
        let Some(name) = names.first() else {
            return Err(fail(1, "juju-sim systemctl: __run-timer needs a timer"));
        };
        return Ok(crate::timer::run_timer(&ctx.root, name));
    }
    if verb == "daemon-reload" || verb == "reset-failed" && names.is_empty() {
        return Ok(0);
    }
    if names.is_empty() {
        return Err(fail(1, format!("Too few arguments for {verb}.")));
    }
    let mut code = 0;
    for raw in names {
        let name = normalize(raw);
        match verb.as_str() {
            "start" => start(&ctx, &name)?,
            "stop" => stop(&ctx, &name)?,
            "restart" => {
                stop(&ctx, &name)?;
                start(&ctx, &name)?;
            }
            "try-restart" => {
                if ctx.load(&name).running() {
                    stop(&ctx, &name)?;
                    start(&ctx, &name)?;
                }
            }
            "enable" | "disable" | "mask" | "unmask" => {
                if verb != "mask" && verb != "unmask" && !ctx.unit_file(&name).exists() {
                    return Err(fail(
                        1,
                        format!("Failed to {verb} unit: Unit file {name} does not exist."),
                    ));
                }
                let mut st = ctx.load(&name);
                match verb.as_str() {
                    "enable" => st.enabled = true,
                    "disable" => st.enabled = false,
                    "mask" => st.masked = true,
                    _ => st.masked = false,
                }
                ctx.save(&name, &st)?;
                if now && verb == "enable" {
                    start(&ctx, &name)?;
                } else if now && verb == "disable" {
                    stop(&ctx, &name)?;
                }
            }
            "is-active" | "status" => {
                let st = ctx.load(&name);
                let state = if st.running() {
                    "active"
                } else if st.failed {
                    "failed"
                } else {
                    "inactive"
                };
                if verb == "status" {
                    if !quiet {
                        println!(
                            "● {name}\n     Loaded: loaded ({})\n     Active: {state}",
                            ctx.unit_file(&name).display()
                        );
                        if let (Some(pid), true) = (st.pid, state == "active") {
                            println!("   Main PID: {pid}");
                        }
                    }
                    if state != "active" {
                        code = 3;
                    }
                } else {
                    if !quiet {
                        println!("{state}");
                    }
                    if state != "active" {
                        code = 3;
                    }
                }
            }
            "is-enabled" => {
                let st = ctx.load(&name);
                let state = if st.masked {
                    "masked"
                } else if st.enabled {
                    "enabled"
                } else {
                    "disabled"
                };
                if !quiet {
                    println!("{state}");
                }
                if state != "enabled" {
                    code = 1;
                }
            }
            "reset-failed" => {
                let mut st = ctx.load(&name);
                st.failed = false;
                ctx.save(&name, &st)?;
            }
            other => return Err(fail(1, format!("Unknown command verb {other}."))),
        }
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exec_start_with_continuations() {
        let svc = parse_unit("[Unit]\nX=1\n[Service]\nEnvironment=\"A=b c\" D=e\nExecStart=/bin/echo \\\n  'x y' z\n");
        assert_eq!(svc.exec, vec!["/bin/echo", "x y", "z"]);
        assert_eq!(
            svc.env,
            vec![("A".into(), "b c".into()), ("D".into(), "e".into())]
        );
    }
}
