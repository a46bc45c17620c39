//! Getting at a unit: `scp` (as the unit's `ubuntu` user, uid 1000, would be
//! allowed), commands in units' hook context (Juju 3's `exec`, Juju 2.9's
//! `run --unit`: under the machine lock, their writes committed at exit)
//! and `debug-log`.

use super::*;

/// The uid and gid `juju scp` logs in as (Ubuntu's `ubuntu` user).
const SCP_UID: u32 = 1000;
const SCP_GID: u32 = 1000;

/// `UNIT:PATH` (or `USER@UNIT:PATH`) → (unit, unit path); `None` for a
/// local path.
fn remote(spec: &str) -> Option<(String, String)> {
    let (target, path) = spec.split_once(':')?;
    let unit = target.rsplit_once('@').map_or(target, |(_, u)| u);
    parse_unit(unit)?;
    Some((unit.to_string(), path.to_string()))
}

/// Whether uid/gid 1000 has `want` (4 read, 2 write, 1 search/execute)
/// on a file with this metadata, by its real owner, group and mode.
fn may(md: &fs::Metadata, want: u32) -> bool {
    use std::os::unix::fs::MetadataExt;
    let mode = md.mode();
    let bits = if md.uid() == SCP_UID {
        (mode >> 6) & 7
    } else if md.gid() == SCP_GID {
        (mode >> 3) & 7
    } else {
        mode & 7
    };
    bits & want == want
}

/// Checks, as uid 1000 would be checked, that every directory from the
/// unit's `/` down to `path`'s parent can be searched; returns the host
/// path, or scp's complaint.
fn walk(root: &Path, path: &str) -> std::result::Result<PathBuf, String> {
    let denied = || format!("scp: {path}: Permission denied");
    let mut host = root.to_path_buf();
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    for (i, part) in parts.iter().enumerate() {
        let md =
            fs::metadata(&host).map_err(|_| format!("scp: {path}: No such file or directory"))?;
        if !md.is_dir() {
            return Err(format!("scp: {path}: Not a directory"));
        }
        if !may(&md, 1) {
            return Err(denied());
        }
        if *part == ".." {
            if host != root {
                host.pop();
            }
        } else {
            host.push(part);
        }
        let _ = i;
    }
    Ok(host)
}

/// Checks that uid 1000 may read `host` (and, for a directory, everything
/// under it, as `scp -r` reads it).
fn readable(host: &Path, shown: &str) -> std::result::Result<(), String> {
    let md = fs::metadata(host).map_err(|_| format!("scp: {shown}: No such file or directory"))?;
    if md.is_dir() {
        if !may(&md, 4 | 1) {
            return Err(format!("scp: {shown}: Permission denied"));
        }
        let rd = fs::read_dir(host).map_err(|e| format!("scp: {shown}: {e}"))?;
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            readable(
                &e.path(),
                &format!("{}/{name}", shown.trim_end_matches('/')),
            )?;
        }
        Ok(())
    } else if may(&md, 4) {
        Ok(())
    } else {
        Err(format!("scp: {shown}: Permission denied"))
    }
}

/// Gives what scp wrote on a unit to uid 1000, as the login user's files.
fn chown_tree(p: &Path) {
    let _ = std::os::unix::fs::chown(p, Some(SCP_UID), Some(SCP_GID));
    if p.is_dir() {
        if let Ok(rd) = fs::read_dir(p) {
            for e in rd.flatten() {
                chown_tree(&e.path());
            }
        }
    }
}

/// `scp [OPTIONS] SRC DST`: copies from or to a unit as its `ubuntu` user
/// would be allowed to (read access on every file, search access on every
/// directory on the way, write access where it writes), failing with
/// scp's `Permission denied` (exit 1) like `juju scp`.
pub(super) fn scp(agent: &Agent, paths: &[String]) -> Result<i32> {
    let plain: Vec<&String> = paths.iter().filter(|p| !p.starts_with('-')).collect();
    let [src, dst] = plain.as_slice() else {
        bail!("scp needs a source and a destination, e.g. juju scp etcd/0:/path/file .");
    };
    let (src, dst) = (src.as_str(), dst.as_str());
    let m = agent.store.read()?;
    let root_of = |unit: &str| -> Result<PathBuf> {
        if !m.units.contains_key(unit) {
            bail!("unit \"{unit}\" not found");
        }
        Ok(agent.store.unit_dir(unit).join("root"))
    };
    let denied = |msg: String| {
        eprintln!("{msg}");
        eprintln!("ERROR exit status 1");
        Ok(1)
    };
    let from = match remote(src) {
        Some((unit, path)) => {
            let root = root_of(&unit)?;
            let host = match walk(&root, &path) {
                Ok(h) => h,
                Err(msg) => return denied(msg),
            };
            if let Err(msg) = readable(&host, &path) {
                return denied(msg);
            }
            host
        }
        None => PathBuf::from(src),
    };
    if !from.exists() {
        return denied(format!("scp: {src}: No such file or directory"));
    }
    // scp copies a directory only with -r.
    let recursive = paths
        .iter()
        .any(|p| p.starts_with('-') && !p.starts_with("--") && p.contains('r'));
    if from.is_dir() && !recursive {
        let shown = remote(src).map_or_else(|| src.to_string(), |(_, p)| p);
        return denied(format!("scp: {shown}: not a regular file"));
    }
    let (mut to, on_unit) = match remote(dst) {
        Some((unit, path)) => {
            let root = root_of(&unit)?;
            let host = match walk(&root, &path) {
                Ok(h) => h,
                Err(msg) => return denied(msg),
            };
            // Writing needs write and search access on the directory the
            // file lands in, and write access on a file it replaces.
            let dir = if host.is_dir() {
                host.clone()
            } else {
                host.parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| root.clone())
            };
            let dir_ok = fs::metadata(&dir).is_ok_and(|md| md.is_dir() && may(&md, 2 | 1));
            let target = if host.is_dir() {
                from.file_name().map(|n| host.join(n))
            } else {
                Some(host.clone())
            };
            let file_ok = target
                .as_ref()
                .and_then(|t| fs::metadata(t).ok())
                .is_none_or(|md| may(&md, 2));
            if !dir_ok || !file_ok {
                return denied(format!("scp: {path}: Permission denied"));
            }
            (host, true)
        }
        None => (PathBuf::from(dst), false),
    };
    // `DIR/` names a directory: copy into it (created when missing), keeping
    // the file name, as `juju scp` does into an existing directory.
    if dst.ends_with('/') && !to.is_dir() && !on_unit {
        fs::create_dir_all(&to).with_context(|| format!("cannot create {dst}"))?;
    }
    if to.is_dir() {
        let name = from
            .file_name()
            .ok_or_else(|| anyhow!("invalid source path \"{src}\""))?;
        to = to.join(name);
    }
    if from.is_dir() {
        crate::util::copy_tree(&from, &to)
            .with_context(|| format!("cannot copy {src} to {dst}"))?;
    } else {
        if let Some(p) = to.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(p).with_context(|| format!("cannot create {}", p.display()))?;
        }
        fs::copy(&from, &to).with_context(|| format!("cannot copy {src} to {dst}"))?;
    }
    if on_unit {
        chown_tree(&to);
    }
    Ok(0)
}

/// Juju 3's `juju exec --unit U|--application A [--wait D] [--format
/// plain|yaml|json] -- CMD` (cmd/juju/action/exec.go): CMD runs in every
/// target unit's hook context at once, each under its machine lock, as a
/// task (Juju's `juju-exec` action) that `show-task` shows afterwards. The
/// plain format prints each unit's stdout and stderr (on stdout, each ending
/// in a newline, under a `UNIT:` heading when there are several); yaml and
/// json print the tasks keyed by unit. A non-zero return code fails the verb
/// with Juju's "the following task failed" error (exit 1), after the output;
/// the task itself is `completed`, with its `return-code`, and its hook-tool
/// writes are committed as Juju's uniter commits them (Flush with no error).
/// Units that have not finished by `--wait` (5m) are killed, nothing of
/// theirs is committed, and they are named in Juju's "timed out" error.
pub(super) fn exec(
    agent: &Agent,
    profile: &Profile,
    t: &Targets,
    o: &ExecOptions,
    args: &[String],
) -> Result<i32> {
    if let Some(msg) = init_error(profile, t, args, false) {
        eprintln!("ERROR {msg}");
        return Ok(2);
    }
    let format = o.format.unwrap_or("plain");
    check_format(Some(format), &["plain", "yaml", "json"])?;
    let timeout = match o.wait {
        None => Duration::from_secs(300),
        Some(w) => parse_duration(w)?.unwrap_or(Duration::ZERO),
    };
    if o.background {
        bail!(
            "juju-sim runs exec in the foreground only; --background is not simulated: \
             run without it (juju run UNIT ACTION --background queues actions)"
        );
    }
    refuse_machines(t, "juju exec --unit UNIT or --application APP")?;
    let units = target_units(agent, t)?;
    let command = command_string(args);
    // One task per unit, recorded as Juju records its juju-exec actions.
    let enqueued = now_secs();
    let ids: Vec<(String, u64)> = agent.store.update(|m| -> Result<Vec<(String, u64)>> {
        let mut ids = Vec::new();
        for unit in &units {
            m.next_action += 1;
            let id = m.next_action;
            m.actions.insert(
                id,
                Action {
                    id,
                    unit: unit.clone(),
                    name: "juju-exec".into(),
                    params: json!({
                        "command": command,
                        "timeout": timeout.as_nanos() as u64,
                    }),
                    status: "running".into(),
                    enqueued,
                    started: Some(enqueued),
                    ..Default::default()
                },
            );
            ids.push((unit.clone(), id));
        }
        Ok(ids)
    })?;
    let deadline = std::time::Instant::now() + timeout;
    let outcomes = run_everywhere(agent, &units, &command, deadline);
    let mut docs = Map::new();
    let mut failed = Vec::new();
    let mut timed_out = Vec::new();
    let mut errors = Vec::new();
    for ((unit, outcome), (_, id)) in outcomes.into_iter().zip(ids) {
        let done = now_secs();
        let record = |status: &str, msg: Option<String>, out: Option<&ExecOutput>| {
            agent.store.update(|m| -> Result<Action> {
                let a = m
                    .actions
                    .get_mut(&id)
                    .ok_or_else(|| anyhow!("task {id} vanished"))?;
                a.status = status.into();
                a.message = msg;
                a.completed = Some(done);
                if let Some(out) = out {
                    a.code = Some(out.code);
                    a.stdout = out.stdout.clone();
                    a.stderr = out.stderr.clone();
                }
                Ok(a.clone())
            })
        };
        match outcome {
            Ok(Some(out)) => {
                let a = record("completed", None, Some(&out))?;
                if out.code != 0 {
                    failed.push((id, out.code));
                }
                docs.insert(unit, super::actions::task_doc(&a));
            }
            Ok(None) => {
                record(
                    "failed",
                    Some(format!(
                        "timed out after {}; the command was killed",
                        humantime(timeout)
                    )),
                    None,
                )?;
                timed_out.push(format!("unit {unit}"));
            }
            Err(e) => {
                record("failed", Some(format!("{e:#}")), None)?;
                errors.push(format!("{unit}: {e:#}"));
            }
        }
    }
    if !errors.is_empty() {
        bail!("{}", errors.join("\n"));
    }
    if !timed_out.is_empty() {
        let s = if timed_out.len() > 1 { "s" } else { "" };
        bail!(
            "timed out waiting for result{s} from: {}",
            timed_out.join(", ")
        );
    }
    match format {
        "json" | "yaml" => print_doc(&Value::Object(docs), Some(format))?,
        _ => {
            use std::io::Write as _;
            let several = docs.len() > 1;
            let mut out = String::new();
            for (unit, doc) in &docs {
                if several {
                    out.push_str(unit);
                    out.push_str(":\n");
                }
                for key in ["stdout", "stderr"] {
                    if let Some(text) = doc["results"][key].as_str().filter(|t| !t.is_empty()) {
                        out.push_str(text);
                        if !text.ends_with('\n') {
                            out.push('\n');
                        }
                    }
                }
                if several {
                    out.push('\n');
                }
            }
            std::io::stdout().write_all(out.as_bytes())?;
            std::io::stdout().flush()?;
        }
    }
    if !failed.is_empty() {
        let s = if failed.len() > 1 { "s" } else { "" };
        let mut lines: Vec<String> = failed
            .iter()
            .map(|(id, code)| format!(" - id \"{id}\" with return code {code}"))
            .collect();
        lines.sort();
        eprintln!(
            "ERROR the following task{s} failed:\n{}\n\nuse 'juju show-task' to inspect the failure{s}",
            lines.join("\n")
        );
        return Ok(1);
    }
    Ok(0)
}

/// `exec`'s options beyond its targets.
pub(super) struct ExecOptions<'a> {
    pub(super) format: Option<&'a str>,
    pub(super) wait: Option<&'a str>,
    pub(super) background: bool,
}

/// A duration as Juju prints one (`5m0s`, `30s`).
fn humantime(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 {
        format!("{}m{}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// The targets of Juju 2.9's `juju run`.
pub(super) struct Targets<'a> {
    pub(super) units: &'a [String],
    pub(super) applications: &'a [String],
    pub(super) machines: &'a [String],
    pub(super) all: bool,
}

/// Juju 2.9's `juju run --unit U|--application A [--timeout D]
/// [--format default|yaml|json] -- CMD` (execCommand in its "compat" form,
/// cmd/juju/commands/exec.go of the 2.9 branch): CMD runs in every target
/// unit's hook context at once, each under its machine lock. One result in
/// the `default` format is printed as the command printed it, and the exit
/// code is the command's; otherwise a list of `UnitId`, `Stdout`, `Stderr`
/// (when not empty) and `ReturnCode` (when not 0) maps, exit 0. Units that
/// have not finished by the timeout (5m) are killed and named in Juju's
/// "timed out" error. Machines (`--machine`, `--all`) are refused: the
/// simulator runs commands in units' hook context only.
pub(super) fn run_commands(
    agent: &Agent,
    profile: &Profile,
    t: &Targets,
    timeout: Option<&str>,
    format: Option<&str>,
    args: &[String],
) -> Result<i32> {
    // Juju's Init errors (exit 2), in its order.
    if let Some(msg) = init_error(profile, t, args, true) {
        eprintln!("ERROR {msg}");
        return Ok(2);
    }
    let format = format.unwrap_or("default");
    check_format(Some(format), &["default", "yaml", "json"])?;
    let timeout = match timeout {
        None => Duration::from_secs(300),
        Some(t) => parse_duration(t)?.unwrap_or(Duration::ZERO),
    };
    refuse_machines(t, "juju run --unit UNIT or --application APP")?;
    let units = target_units(agent, t)?;
    let command = command_string(args);
    let deadline = std::time::Instant::now() + timeout;
    let outcomes = run_everywhere(agent, &units, &command, deadline);
    let mut values = Vec::new();
    let mut timed_out = Vec::new();
    for (unit, outcome) in outcomes {
        let mut v = Map::new();
        v.insert("UnitId".into(), Value::from(unit.clone()));
        match outcome {
            Err(e) => {
                v.insert("Error".into(), Value::from(format!("{e:#}")));
            }
            Ok(None) => {
                timed_out.push(format!("unit {unit}"));
                continue;
            }
            Ok(Some(out)) => {
                // 2.9's ConvertActionOutput in compat form: Stdout always,
                // Stderr when not empty, ReturnCode when not 0.
                v.insert("Stdout".into(), Value::from(out.stdout));
                if !out.stderr.is_empty() {
                    v.insert("Stderr".into(), Value::from(out.stderr));
                }
                if out.code != 0 {
                    v.insert("ReturnCode".into(), Value::from(out.code));
                }
            }
        }
        values.push(Value::Object(v));
    }
    if timed_out.is_empty() && values.len() == 1 && format == "default" {
        let v = &values[0];
        if let Some(e) = v["Error"].as_str() {
            bail!("{e}");
        }
        use std::io::Write as _;
        std::io::stdout().write_all(v["Stdout"].as_str().unwrap_or_default().as_bytes())?;
        std::io::stderr().write_all(v["Stderr"].as_str().unwrap_or_default().as_bytes())?;
        std::io::stdout().flush()?;
        return Ok(v["ReturnCode"].as_i64().map_or(0, |c| c as i32));
    }
    if !values.is_empty() {
        let list = Value::Array(values);
        if format == "json" {
            println!("{list}");
        } else {
            print!("{}", serde_yaml::to_string(&list)?);
        }
    }
    if !timed_out.is_empty() {
        let s = if timed_out.len() > 1 { "s" } else { "" };
        bail!(
            "timed out waiting for result{s} from: {}",
            timed_out.join(", ")
        );
    }
    Ok(0)
}

/// The usage error Juju's Init gives `exec` (and 2.9's `run`) for these
/// targets and arguments, if any (exit 2), in Juju's order. `run29` adds
/// the hint for a Juju 3 `run UNIT ACTION` typed on 2.9.
fn init_error(profile: &Profile, t: &Targets, args: &[String], run29: bool) -> Option<String> {
    if args.is_empty() {
        return Some("no commands specified".into());
    }
    if t.all {
        for (given, what) in [
            (t.machines, "machines"),
            (t.applications, "applications"),
            (t.units, "units"),
        ] {
            if !given.is_empty() {
                return Some(format!("You cannot specify --all and individual {what}"));
            }
        }
    } else if t.machines.is_empty() && t.applications.is_empty() && t.units.is_empty() {
        let mut msg =
            "You must specify a target, either through --all, --machine, --application or --unit"
                .to_string();
        // `juju run UNIT ACTION` typed as on Juju 3.
        if let ([unit, action, ..], true) = (args, run29) {
            if parse_unit(unit).is_some() || unit.ends_with("/leader") {
                msg.push('\n');
                msg.push_str(&profile.run_action_hint(unit, action));
            }
        }
        return Some(msg);
    }
    let mut bad = Vec::new();
    for mch in t.machines {
        if mch.is_empty() || !mch.chars().all(|c| c.is_ascii_digit()) {
            bad.push(format!("  \"{mch}\" is not a valid machine id"));
        }
    }
    for app in t.applications {
        if !valid_app(app) {
            bad.push(format!("  \"{app}\" is not a valid application name"));
        }
    }
    for unit in t.units {
        let ok = match unit.strip_suffix("/leader") {
            Some(app) => valid_app(app),
            None => parse_unit(unit).is_some_and(|(app, _)| valid_app(&app)),
        };
        if !ok {
            bad.push(format!("  \"{unit}\" is not a valid unit name"));
        }
    }
    if !bad.is_empty() {
        return Some(format!(
            "The following exec targets are not valid:\n{}",
            bad.join("\n")
        ));
    }
    None
}

/// Machines (`--machine`, `--all`) are refused: the simulator runs commands
/// in units' hook context only.
fn refuse_machines(t: &Targets, instead: &str) -> Result<()> {
    if t.all || !t.machines.is_empty() {
        bail!(
            "juju-sim runs commands in units' hook context only; --machine and --all \
             (as root on machines, outside any hook context) are not simulated: use {instead}"
        );
    }
    Ok(())
}

/// The target units, as Juju's controller resolves them: named units
/// (APP/leader: the leader) and every unit of the named applications, once
/// each, in name order.
fn target_units(agent: &Agent, t: &Targets) -> Result<Vec<String>> {
    let m = agent.store.read()?;
    let mut units = std::collections::BTreeSet::new();
    for app in t.applications {
        if !m.applications.contains_key(app) {
            bail!("application \"{app}\" not found");
        }
        units.extend(
            m.units
                .iter()
                .filter(|(_, u)| &u.app == app)
                .map(|(name, _)| name.clone()),
        );
    }
    for u in t.units {
        let unit = super::actions::resolve_target(&m, u)?;
        if !m.units.contains_key(&unit) {
            bail!("unit \"{unit}\" not found");
        }
        units.insert(unit);
    }
    if units.is_empty() {
        bail!("no actions were successfully enqueued, aborting");
    }
    Ok(units.into_iter().collect())
}

/// Runs `command` on every unit at once (each under its own machine lock),
/// killing what runs past `deadline`; the outcomes in `units`' order.
fn run_everywhere(
    agent: &Agent,
    units: &[String],
    command: &str,
    deadline: std::time::Instant,
) -> Vec<(String, Result<Option<ExecOutput>>)> {
    std::thread::scope(|s| {
        let running: Vec<_> = units
            .iter()
            .map(|unit| {
                let handle = s.spawn(move || exec_one(agent, unit, command, deadline));
                (unit.clone(), handle)
            })
            .collect();
        running
            .into_iter()
            .map(|(unit, h)| {
                let r = h
                    .join()
                    .unwrap_or_else(|_| Err(anyhow!("the command's runner panicked")));
                (unit, r)
            })
            .collect()
    })
}

/// Juju's application-name rule (names.IsValidApplication): lower-case
/// letters, digits and hyphens, starting with a letter, no part after a
/// hyphen made of digits only.
fn valid_app(app: &str) -> bool {
    app.starts_with(|c: char| c.is_ascii_lowercase())
        && app
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && app
            .split('-')
            .all(|part| !part.is_empty() && !part.chars().all(|c| c.is_ascii_digit()))
}

/// The shell command line of `exec`'s and 2.9 `run`'s arguments, as Juju
/// builds it (utils.CommandString): one argument as it is; several joined
/// with spaces, each double-quoted when it holds whitespace, `"`, `$` or
/// `\\`, those three escaped with a backslash.
fn command_string(args: &[String]) -> String {
    if let [one] = args {
        return one.clone();
    }
    let quoted: Vec<String> = args
        .iter()
        .map(|arg| {
            let mut needs_quotes = false;
            let mut out = String::new();
            for c in arg.chars() {
                if c.is_whitespace() {
                    needs_quotes = true;
                } else if matches!(c, '"' | '$' | '\\') {
                    needs_quotes = true;
                    out.push('\\');
                }
                out.push(c);
            }
            if needs_quotes {
                format!("\"{out}\"")
            } else {
                out
            }
        })
        .collect();
    quoted.join(" ")
}

/// What one command printed and its exit code.
struct ExecOutput {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs one command line with `sh -c` on `unit`, in its hook context under
/// its machine lock, and keeps its stdout and stderr. Its hook-tool writes
/// are committed when it exits, whatever its exit code, as Juju's uniter
/// flushes a juju-exec (or 2.9 juju-run) context that ran without error.
/// Past `deadline` the command's process group is killed, nothing is
/// committed and the answer is `None`.
fn exec_one(
    agent: &Agent,
    unit: &str,
    command: &str,
    deadline: std::time::Instant,
) -> Result<Option<ExecOutput>> {
    use crate::uniter::pending::{commit, Pending};
    use std::io::Read;
    use std::os::unix::process::CommandExt as _;
    use std::process::Stdio;
    let machine = agent
        .store
        .read()?
        .units
        .get(unit)
        .map(|u| u.machine.clone())
        .ok_or_else(|| anyhow!("unit \"{unit}\" not found"))?;
    let _lock = crate::uniter::lock::acquire(&agent.store, &machine)?;
    let context = format!(
        "{unit}-exec-{}-{}",
        std::process::id(),
        crate::uniter::runner::now_ms()
    );
    agent.store.update(|m| -> Result<()> {
        if let Some(u) = m.units.get_mut(unit) {
            u.pending = Pending::new(&context);
        }
        Ok(())
    })?;
    let mut env = agent.env(unit, &crate::uniter::Ctx::Exec)?;
    env.push(("JUJU_SIM_CONTEXT".into(), context.clone()));
    env.push(("JUJU_CONTEXT_ID".into(), context.clone()));
    let mut cmd = agent.command(unit, Path::new("/bin/sh"), &env);
    cmd.arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().context("cannot run /bin/sh")?;
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = reader(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = reader(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let code = loop {
        if let Some(st) = child.try_wait().context("cannot wait for the command")? {
            break Some(crate::uniter::runner::exit_code(st));
        }
        if std::time::Instant::now() > deadline {
            // SAFETY: kill(2) on the process group this command leads.
            unsafe {
                libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL);
            }
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    agent.store.update(|m| -> Result<()> {
        let pending = m
            .units
            .get_mut(unit)
            .map(|u| std::mem::take(&mut u.pending))
            .unwrap_or_default();
        if code.is_some() && pending.context == context {
            commit(m, unit, pending);
        }
        Ok(())
    })?;
    kick(agent)?;
    Ok(code.map(|code| ExecOutput {
        code,
        stdout,
        stderr,
    }))
}

pub(super) fn debug_log(
    agent: &Agent,
    replay: bool,
    include: &[String],
    lines: Option<usize>,
) -> Result<i32> {
    let dir = agent.store.home().join("units");
    let mut slugs: Vec<(String, u32, String)> = fs::read_dir(&dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let n = e.file_name().to_string_lossy().to_string();
                    let (app, num) = n.rsplit_once('-')?;
                    Some((app.to_string(), num.parse().ok()?, n))
                })
                .collect()
        })
        .unwrap_or_default();
    slugs.sort();
    let mut out = Vec::new();
    for (app, num, slug) in slugs {
        let unit = format!("{app}/{num}");
        let tag = format!("unit-{slug}");
        if !include.is_empty()
            && !include
                .iter()
                .any(|i| *i == unit || *i == tag || *i == app || *i == slug)
        {
            continue;
        }
        let Ok(text) = fs::read_to_string(dir.join(&slug).join("agent.log")) else {
            continue;
        };
        out.extend(text.lines().map(|l| format!("{tag}: {l}")));
    }
    let keep = match (lines, replay) {
        (Some(n), _) => n,
        (None, true) => out.len(),
        (None, false) => 10,
    };
    for l in &out[out.len().saturating_sub(keep)..] {
        println!("{l}");
    }
    Ok(0)
}
