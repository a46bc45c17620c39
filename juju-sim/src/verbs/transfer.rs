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

/// `exec --unit U… [--format json|yaml] -- CMD…`: runs CMD with `sh -c` in
/// each unit's hook context, under the machine lock, committing the
/// command's hook-tool writes when it exits 0. Without `--format` and with
/// one unit, output passes through and the exit code is the command's; with
/// `--format`, Juju 3's per-unit task documents are printed and a failed
/// command fails the verb with Juju's "task failed" error.
pub(super) fn exec(
    agent: &Agent,
    units: &[String],
    format: Option<&str>,
    args: &[String],
) -> Result<i32> {
    check_format(format, &["json", "yaml", "plain"])?;
    if units.is_empty() {
        bail!("you must specify a target, either through --unit, --machine or --application");
    }
    let m = agent.store.read()?;
    let mut targets = Vec::new();
    for u in units {
        let unit = super::actions::resolve_target(&m, u)?;
        if !m.units.contains_key(&unit) {
            bail!("unit \"{unit}\" not found");
        }
        targets.push(unit);
    }
    let passthrough = format.is_none() && targets.len() == 1;
    let command = command_string(args);
    let mut docs = Map::new();
    let mut failed = Vec::new();
    let mut last_code = 0;
    for unit in &targets {
        let id = agent.store.update(|m| -> Result<u64> {
            m.next_action += 1;
            Ok(m.next_action)
        })?;
        let enqueued = now_secs();
        let Some(out) = exec_one(agent, unit, &command, !passthrough, None)? else {
            bail!("timed out waiting for results from: unit {unit}");
        };
        let code = out.code;
        last_code = code;
        if code != 0 {
            failed.push((id, code));
        }
        let mut results = Map::new();
        results.insert("return-code".into(), Value::from(code));
        if !out.stdout.is_empty() {
            results.insert("stdout".into(), Value::from(out.stdout));
        }
        if !out.stderr.is_empty() {
            results.insert("stderr".into(), Value::from(out.stderr));
        }
        let done = now_secs();
        docs.insert(
            unit.clone(),
            json!({
                "id": id.to_string(),
                "results": results,
                "status": if code == 0 { "completed" } else { "failed" },
                "timing": {
                    "enqueued": juju_time(enqueued),
                    "started": juju_time(enqueued),
                    "completed": juju_time(done),
                },
                "unit": unit,
            }),
        );
    }
    if passthrough {
        return Ok(last_code);
    }
    match format {
        Some("json") | Some("yaml") => print_doc(&Value::Object(docs), format)?,
        _ => {
            for doc in docs.values() {
                if let Some(out) = doc["results"]["stdout"].as_str() {
                    print!("{out}");
                }
                if let Some(err) = doc["results"]["stderr"].as_str() {
                    eprint!("{err}");
                }
            }
        }
    }
    if !failed.is_empty() {
        let lines: Vec<String> = failed
            .iter()
            .map(|(id, code)| format!(" - id \"{id}\" with return code {code}"))
            .collect();
        eprintln!(
            "ERROR the following task failed:\n{}\n\nuse 'juju show-task' to inspect the failure",
            lines.join("\n")
        );
        return Ok(1);
    }
    Ok(0)
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
    let usage = |msg: String| {
        eprintln!("ERROR {msg}");
        Ok(2)
    };
    if args.is_empty() {
        return usage("no commands specified".into());
    }
    if t.all {
        for (given, what) in [
            (t.machines, "machines"),
            (t.applications, "applications"),
            (t.units, "units"),
        ] {
            if !given.is_empty() {
                return usage(format!("You cannot specify --all and individual {what}"));
            }
        }
    } else if t.machines.is_empty() && t.applications.is_empty() && t.units.is_empty() {
        let mut msg =
            "You must specify a target, either through --all, --machine, --application or --unit"
                .to_string();
        // `juju run UNIT ACTION` typed as on Juju 3.
        if let [unit, action, ..] = args {
            if parse_unit(unit).is_some() || unit.ends_with("/leader") {
                msg.push('\n');
                msg.push_str(&profile.run_action_hint(unit, action));
            }
        }
        return usage(msg);
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
        return usage(format!(
            "The following exec targets are not valid:\n{}",
            bad.join("\n")
        ));
    }
    let format = format.unwrap_or("default");
    check_format(Some(format), &["default", "yaml", "json"])?;
    let timeout = match timeout {
        None => Duration::from_secs(300),
        Some(t) => parse_duration(t)?.unwrap_or(Duration::ZERO),
    };
    if t.all || !t.machines.is_empty() {
        bail!(
            "juju-sim runs commands in units' hook context only; --machine and --all \
             (as root on machines, outside any hook context) are not simulated: \
             use juju run --unit UNIT or --application APP"
        );
    }
    // The target units, as Juju's controller resolves them: named units
    // (APP/leader: the leader) and every unit of the named applications,
    // once each, in name order.
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
    drop(m);
    if units.is_empty() {
        bail!("no actions were successfully enqueued, aborting");
    }
    let command = command_string(args);
    let deadline = std::time::Instant::now() + timeout;
    let outcomes: Vec<(String, Result<Option<ExecOutput>>)> = std::thread::scope(|s| {
        let running: Vec<_> = units
            .iter()
            .map(|unit| {
                let command = &command;
                let handle = s.spawn(move || exec_one(agent, unit, command, true, Some(deadline)));
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
    });
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
/// its machine lock, committing its hook-tool writes when it exits 0.
/// `capture` keeps stdout and stderr (else they pass through). Past
/// `deadline` the command's process group is killed, nothing is committed
/// and the answer is `None`.
fn exec_one(
    agent: &Agent,
    unit: &str,
    command: &str,
    capture: bool,
    deadline: Option<std::time::Instant>,
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
        .process_group(0);
    if capture {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    }
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
        if deadline.is_some_and(|d| std::time::Instant::now() > d) {
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
        if code == Some(0) && pending.context == context {
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
