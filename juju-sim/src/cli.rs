//! The operator-facing CLI verbs (`juju-sim deploy`, `status`, `run`, …).
//! Each verb changes the model under its lock, queues the hooks Juju would
//! fire in Juju's order, and drains the queue before returning, so a verb
//! returns when its hooks are done. Output imitates Juju's wording.

use crate::agent::{status, Agent};
use crate::charm::Charm;
use crate::model::{Action, Application, Model, Op, Relation, Store, Unit, FINALIZE_REMOVE};
use crate::util::{juju_time, now_secs, parse_unit, rfc3339};
use anyhow::{anyhow, bail, Context, Result};
use clap::{Parser, Subcommand};
use serde_json::{json, Map, Value};
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "juju-sim",
    about = "A Juju controller and unit-agent simulator",
    version
)]
pub struct Cli {
    /// Tee hook output to stderr (also JUJU_SIM_VERBOSE=1).
    #[arg(long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Deploy a .charm file or charm directory.
    Deploy {
        charm: PathBuf,
        app: Option<String>,
        #[arg(short = 'n', long = "num-units", default_value_t = 1)]
        n: u32,
        #[arg(long)]
        resource: Vec<String>,
        #[arg(long)]
        config: Vec<String>,
    },
    /// Add units to an application.
    AddUnit {
        app: String,
        #[arg(short = 'n', long = "num-units", default_value_t = 1)]
        n: u32,
    },
    /// Remove units.
    RemoveUnit {
        #[arg(required = true)]
        units: Vec<String>,
        #[arg(long)]
        force: bool,
        #[arg(long)]
        no_wait: bool,
        #[arg(long)]
        destroy_storage: bool,
    },
    /// Relate two applications (`APP[:ENDPOINT]` each; Juju 2.9: relate).
    #[command(alias = "relate", alias = "add-relation")]
    Integrate { a: String, b: String },
    /// Remove an application and all its units.
    RemoveApplication {
        app: String,
        #[arg(long)]
        force: bool,
        #[arg(long)]
        no_wait: bool,
        #[arg(long)]
        destroy_storage: bool,
    },
    /// Show or set application config.
    Config {
        app: String,
        args: Vec<String>,
        #[arg(long)]
        reset: Vec<String>,
        #[arg(long)]
        format: Option<String>,
    },
    /// Attach a resource file to an application.
    AttachResource {
        app: String,
        #[arg(required = true)]
        resources: Vec<String>,
    },
    /// Juju 2.9: queue an action (run synchronously here).
    RunAction {
        unit: String,
        action: String,
        params: Vec<String>,
        #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "")]
        wait: Option<String>,
        /// A YAML file of parameters; KEY=VALUE arguments override it.
        #[arg(long = "params")]
        params_file: Option<PathBuf>,
        /// Keep KEY=VALUE values as strings instead of parsing them as YAML.
        #[arg(long)]
        string_args: bool,
        #[arg(long)]
        format: Option<String>,
    },
    /// Juju 2.9: show an action's outcome (waits until it has finished).
    #[command(alias = "show-task", alias = "show-operation")]
    ShowActionOutput {
        id: String,
        #[arg(long)]
        format: Option<String>,
        #[arg(long)]
        wait: Option<String>,
        #[arg(long)]
        utc: bool,
        #[arg(long)]
        watch: bool,
    },
    /// Juju 3: run an action and print its results.
    Run {
        unit: String,
        action: String,
        params: Vec<String>,
        #[arg(long, default_value = "plain")]
        format: String,
        #[arg(long)]
        wait: Option<String>,
        /// Queue the task and return at once, printing its id.
        #[arg(long)]
        background: bool,
        #[arg(long = "params")]
        params_file: Option<PathBuf>,
        #[arg(long)]
        string_args: bool,
        #[arg(long)]
        utc: bool,
        #[arg(long)]
        no_color: bool,
        #[arg(long)]
        color: bool,
    },
    /// (internal) Run a queued task; `run --background` starts it.
    #[command(hide = true)]
    RunTask { id: u64 },
    /// Show the model's status.
    Status {
        #[arg(long)]
        format: Option<String>,
    },
    /// Copy files to or from a unit's root (UNIT:PATH).
    Scp { src: String, dst: String },
    /// Print the units' agent logs.
    DebugLog {
        #[arg(long)]
        replay: bool,
        #[arg(long, short = 'i')]
        include: Vec<String>,
        #[arg(long, short = 'n')]
        lines: Option<usize>,
        #[arg(long)]
        no_tail: bool,
    },
    /// Stop every unit, kill its processes and delete the model.
    DestroyModel {
        model: Option<String>,
        #[arg(short = 'y', long = "no-prompt")]
        yes: bool,
        #[arg(long)]
        destroy_storage: bool,
        #[arg(long)]
        force: bool,
    },
    /// (juju-sim extra) Fire one hook on a unit, e.g. update-status.
    RunHook { unit: String, hook: String },
    /// (juju-sim extra) Clear a unit's hook error and retry the hook.
    Resolved {
        unit: String,
        #[arg(long)]
        no_retry: bool,
    },
    /// (juju-sim extra, like `juju exec`) Run a command in a unit's hook context.
    Exec {
        #[arg(long)]
        unit: String,
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
}

fn home() -> Result<PathBuf> {
    let h = match std::env::var_os("JUJU_SIM_HOME") {
        Some(h) if !h.is_empty() => PathBuf::from(h),
        _ => {
            let base = std::env::var_os("HOME")
                .ok_or_else(|| anyhow!("neither JUJU_SIM_HOME nor HOME is set"))?;
            PathBuf::from(base).join(".local/share/juju-sim")
        }
    };
    if h.is_absolute() {
        Ok(h)
    } else {
        Ok(std::env::current_dir()
            .context("cannot read the current directory")?
            .join(h))
    }
}

/// Runs the CLI; returns the exit code.
pub fn main(args: Vec<String>) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ERROR {e:#}");
            1
        }
    }
}

fn run(cli: Cli) -> Result<i32> {
    let verbose =
        cli.verbose || std::env::var("JUJU_SIM_VERBOSE").is_ok_and(|v| v == "1" || v == "true");
    let agent = Agent::new(Store::new(home()?), verbose);
    match cli.cmd {
        Cmd::Deploy {
            charm,
            app,
            n,
            resource,
            config,
        } => deploy(&agent, &charm, app, n, &resource, &config),
        Cmd::AddUnit { app, n } => {
            if !agent.store.read()?.applications.contains_key(&app) {
                bail!("application \"{app}\" not found");
            }
            add_units(&agent, &app, n)?;
            agent.drain()?;
            Ok(0)
        }
        Cmd::RemoveUnit { units, .. } => remove_units(&agent, &units),
        Cmd::RemoveApplication { app, .. } => remove_application(&agent, &app),
        Cmd::Integrate { a, b } => integrate(&agent, &a, &b),
        Cmd::Config {
            app,
            args,
            reset,
            format,
        } => config(&agent, &app, &args, &reset, format.as_deref()),
        Cmd::AttachResource { app, resources } => attach(&agent, &app, &resources),
        Cmd::RunAction {
            unit,
            action,
            params,
            wait,
            params_file,
            string_args,
            format,
        } => {
            check_format(format.as_deref(), &["yaml", "json"])?;
            let req = ActionRequest {
                unit: &unit,
                action: &action,
                args: &params,
                file: params_file.as_deref(),
                string_args,
            };
            let id = agent.run_action_now(&req)?;
            if wait.is_some() {
                let m = agent.store.read()?;
                let a = m
                    .actions
                    .get(&id)
                    .ok_or_else(|| anyhow!("action {id} not found"))?;
                print_doc(&action_yaml(a), format.as_deref())?;
            } else {
                println!("Action queued with id: \"{id}\"");
            }
            Ok(0)
        }
        Cmd::ShowActionOutput { id, format, .. } => {
            check_format(format.as_deref(), &["yaml", "json", "plain"])?;
            let id: u64 = id
                .trim()
                .trim_matches(|c| c == '"' || c == '\'')
                .parse()
                .map_err(|_| anyhow!("id \"{id}\" not found"))?;
            let a = wait_for_action(&agent, id)?;
            print_doc(&action_yaml(&a), format.as_deref())?;
            Ok(0)
        }
        Cmd::Run {
            unit,
            action,
            params,
            format,
            background,
            params_file,
            string_args,
            ..
        } => {
            check_format(Some(&format), &["plain", "yaml", "json"])?;
            let req = ActionRequest {
                unit: &unit,
                action: &action,
                args: &params,
                file: params_file.as_deref(),
                string_args,
            };
            run3(&agent, &req, &format, background)
        }
        Cmd::RunTask { id } => {
            agent.execute_action(id)?;
            Ok(0)
        }
        Cmd::Status { format } => status_cmd(&agent, format.as_deref()),
        Cmd::Scp { src, dst } => scp(&agent, &src, &dst),
        Cmd::DebugLog {
            replay,
            include,
            lines,
            ..
        } => debug_log(&agent, replay, &include, lines),
        Cmd::DestroyModel { .. } => destroy(&agent),
        Cmd::RunHook { unit, hook } => {
            if !agent.store.read()?.units.contains_key(&unit) {
                bail!("unit \"{unit}\" not found");
            }
            agent.store.update(|m| -> Result<()> {
                m.queue.push_back(Op::hook(&unit, &hook));
                Ok(())
            })?;
            agent.drain()?;
            let failed = agent
                .store
                .read()?
                .units
                .get(&unit)
                .is_some_and(|u| u.failed.is_some());
            Ok(i32::from(failed))
        }
        Cmd::Resolved { unit, no_retry } => {
            if no_retry {
                agent.store.update(|m| -> Result<()> {
                    let u = m
                        .units
                        .get_mut(&unit)
                        .ok_or_else(|| anyhow!("unit \"{unit}\" not found"))?;
                    u.failed = None;
                    let d = std::mem::take(&mut u.deferred);
                    for op in d.into_iter().rev() {
                        m.queue.push_front(op);
                    }
                    Ok(())
                })?;
                agent.drain()?;
            } else {
                agent.resolved(&unit)?;
            }
            Ok(0)
        }
        Cmd::Exec { unit, cmd } => {
            let code = agent.exec(&unit, &cmd)?;
            agent.drain()?;
            Ok(code)
        }
    }
}

fn ensure_tools(store: &Store) -> Result<()> {
    let dir = store.tools_dir();
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let exe = std::env::current_exe().context("cannot find juju-sim's own executable")?;
    for name in crate::tools::TOOL_NAMES
        .iter()
        .chain(["systemctl", "juju-sim"].iter())
    {
        let link = dir.join(name);
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(&exe, &link)
            .with_context(|| format!("cannot create {}", link.display()))?;
    }
    Ok(())
}

fn app_charm(store: &Store, app: &str) -> Result<Charm> {
    Ok(Charm::load(&store.home().join("charms").join(app))?)
}

/// Finds the charm `deploy` names. A path is used as it is. A bare name
/// (`etcd`, `ch:etcd`), as an operator types for Charmhub, resolves to
/// `<dir>/<name>.charm` or `<dir>/<name>/` in `$JUJU_SIM_CHARM_PATH`
/// (colon-separated), else to a charm of that name already deployed in this
/// model — the simulator has no Charmhub.
fn resolve_charm(home: &Path, src: &Path) -> Result<PathBuf> {
    if src.exists() {
        return Ok(src.to_path_buf());
    }
    let text = src.to_string_lossy();
    let name = text.strip_prefix("ch:").unwrap_or(&text);
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        bail!(
            "cannot read charm {}: no such file or directory",
            src.display()
        );
    }
    if let Some(path) = std::env::var_os("JUJU_SIM_CHARM_PATH") {
        for dir in std::env::split_paths(&path) {
            for cand in [dir.join(format!("{name}.charm")), dir.join(name)] {
                if cand.is_file() || cand.join("metadata.yaml").is_file() {
                    return Ok(cand);
                }
            }
        }
    }
    if let Ok(rd) = fs::read_dir(home.join("charms")) {
        let mut dirs: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        dirs.sort();
        for dir in dirs {
            let hidden = dir
                .file_name()
                .is_some_and(|f| f.to_string_lossy().starts_with('.'));
            if !hidden && Charm::load(&dir).is_ok_and(|c| c.name() == name) {
                return Ok(dir);
            }
        }
    }
    bail!(
        "cannot resolve charm or bundle \"{name}\": charm or bundle not found \
         (juju-sim has no Charmhub: deploy a .charm file or charm directory, \
         deploy it once in this model, or put {name}.charm in $JUJU_SIM_CHARM_PATH)"
    )
}

fn deploy(
    agent: &Agent,
    src: &Path,
    app: Option<String>,
    n: u32,
    resources: &[String],
    config: &[String],
) -> Result<i32> {
    let store = &agent.store;
    let src = resolve_charm(store.home(), src)?;
    let src =
        fs::canonicalize(&src).with_context(|| format!("cannot read charm {}", src.display()))?;
    let staging = store
        .home()
        .join("charms")
        .join(format!(".staging-{}", std::process::id()));
    crate::charm::unpack(&src, &staging)?;
    let charm = Charm::load(&staging)?;
    let app = app.unwrap_or_else(|| charm.name());
    let cleanup = |e: anyhow::Error| {
        let _ = fs::remove_dir_all(&staging);
        e
    };
    if store.read()?.applications.contains_key(&app) {
        return Err(cleanup(anyhow!(
            "cannot add application \"{app}\": application already exists"
        )));
    }
    let mut user_config = std::collections::BTreeMap::new();
    for kv in config {
        let (k, v) = kv.split_once('=').ok_or_else(|| {
            cleanup(anyhow!(
                "invalid --config value \"{kv}\": expected KEY=VALUE"
            ))
        })?;
        let v = charm
            .parse_config_value(k, v)
            .map_err(|e| cleanup(e.into()))?;
        user_config.insert(k.to_string(), v);
    }
    let mut res = Vec::new();
    for r in resources {
        let (name, path) = r
            .split_once('=')
            .ok_or_else(|| cleanup(anyhow!("invalid --resource \"{r}\": expected NAME=PATH")))?;
        let Some((_, filename)) = charm.resources().into_iter().find(|(n, _)| n == name) else {
            return Err(cleanup(anyhow!("unrecognized resource \"{name}\"")));
        };
        res.push((name.to_string(), PathBuf::from(path), filename));
    }
    let dest = store.home().join("charms").join(&app);
    let _ = fs::remove_dir_all(&dest);
    fs::rename(&staging, &dest)
        .with_context(|| format!("cannot store charm in {}", dest.display()))?;
    ensure_tools(store)?;
    let mut stored = std::collections::BTreeMap::new();
    for (name, path, filename) in res {
        stored.insert(
            name.clone(),
            store_resource(store, &app, &name, &filename, &path)?,
        );
    }
    let home = store.home().display().to_string();
    store.update(|m| -> Result<()> {
        if m.applications.contains_key(&app) {
            bail!("cannot add application \"{app}\": application already exists");
        }
        if m.uuid.is_empty() {
            let h = crate::util::fnv(format!("{home}{}", now_secs()).as_bytes());
            let h2 = crate::util::fnv(format!("{h}{home}").as_bytes());
            m.uuid = format!(
                "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
                h >> 32,
                (h >> 16) & 0xffff,
                h & 0xfff,
                h2 >> 52,
                h2 & 0xffff_ffff_ffff
            );
        }
        m.applications.insert(
            app.clone(),
            Application {
                charm: charm.name(),
                charm_dir: dest.clone(),
                config: user_config,
                resources: stored,
                ..Application::default()
            },
        );
        for ep in charm.peers() {
            let id = format!("{ep}:{}", m.next_relation);
            m.next_relation += 1;
            m.relations.insert(
                id,
                Relation {
                    endpoint: ep,
                    app: app.clone(),
                    ..Relation::default()
                },
            );
        }
        Ok(())
    })?;
    eprintln!("Located local charm \"{}\", revision 0", charm.name());
    eprintln!(
        "Deploying \"{app}\" from local charm \"{}\", revision 0 on ubuntu@22.04/stable",
        charm.name()
    );
    add_units(agent, &app, n)?;
    agent.drain()?;
    println!(
        "Deployed \"{app}\" from local charm \"{}\", revision 0",
        charm.name()
    );
    Ok(0)
}

fn store_resource(
    store: &Store,
    app: &str,
    name: &str,
    filename: &str,
    src: &Path,
) -> Result<PathBuf> {
    let dir = store.home().join("resources").join(app).join(name);
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dest = dir.join(filename);
    fs::copy(src, &dest).with_context(|| format!("cannot read resource {}", src.display()))?;
    Ok(dest)
}

/// Adds `n` units and queues their hooks in Juju's order.
fn add_units(agent: &Agent, app: &str, n: u32) -> Result<Vec<String>> {
    let store = &agent.store;
    let charm_src = store.home().join("charms").join(app);
    let home = store.home().to_path_buf();
    store.update(|m| -> Result<Vec<String>> {
        let existing = m.live_units(app);
        let rels = m.app_relations(app);
        let mut new = Vec::new();
        for _ in 0..n {
            let a = m
                .applications
                .get_mut(app)
                .ok_or_else(|| anyhow!("application \"{app}\" not found"))?;
            let number = a.next_unit;
            a.next_unit += 1;
            let name = format!("{app}/{number}");
            if a.leader.is_none() {
                a.leader = Some(name.clone());
            }
            let udir = store.unit_dir(&name);
            let _ = fs::remove_dir_all(&udir);
            for sub in ["root", "systemd"] {
                fs::create_dir_all(udir.join(sub))
                    .with_context(|| format!("cannot create {}", udir.display()))?;
            }
            crate::util::copy_tree(&charm_src, &udir.join("charm"))
                .with_context(|| format!("cannot copy the charm into {}", udir.display()))?;
            let address = crate::addr::claim(&home, &name)?;
            let machine = m.next_machine.to_string();
            m.next_machine += 1;
            m.units.insert(
                name.clone(),
                Unit {
                    app: app.to_string(),
                    number,
                    machine,
                    address,
                    workload: status("waiting", "agent initialising"),
                    agent: "idle".into(),
                    ..Unit::default()
                },
            );
            for r in &rels {
                if let Some(rel) = m.relations.get_mut(r) {
                    rel.views.insert(name.clone(), Default::default());
                }
            }
            new.push(name);
        }
        for u in &new {
            m.queue.push_back(Op::hook(u, "install"));
            for r in &rels {
                let (ep, other) = m
                    .relations
                    .get(r)
                    .map(|x| (x.endpoint_of(app).to_string(), x.other_app(app).to_string()))
                    .unwrap_or_default();
                m.queue.push_back(Op::relation(
                    u,
                    &format!("{ep}-relation-created"),
                    r,
                    &other,
                    None,
                ));
            }
            let hook = if m.is_leader(u) {
                "leader-elected"
            } else {
                "leader-settings-changed"
            };
            m.queue.push_back(Op::hook(u, hook));
            m.queue.push_back(Op::hook(u, "config-changed"));
            m.queue.push_back(Op::hook(u, "start"));
        }
        // Units of another application on a relation meet the new units
        // as soon as those have started.
        for nu in &new {
            for r in &rels {
                let Some(rel) = m.relations.get(r).filter(|x| x.remote_app.is_some()) else {
                    continue;
                };
                let other = rel.other_app(app).to_string();
                let (mine, theirs) = (
                    rel.endpoint_of(app).to_string(),
                    rel.endpoint_of(&other).to_string(),
                );
                for o in m.live_units(&other) {
                    for (on, remote, ep, remote_app) in
                        [(&o, nu, &theirs, app), (nu, &o, &mine, other.as_str())]
                    {
                        m.queue_joined(on, ep, r, remote_app, remote);
                    }
                }
            }
        }
        let mut before = existing;
        for nu in &new {
            for e in &before {
                for r in &rels {
                    let Some(ep) = m
                        .relations
                        .get(r)
                        .filter(|x| x.remote_app.is_none())
                        .map(|x| x.endpoint.clone())
                    else {
                        continue;
                    };
                    for (on, remote) in [(e, nu), (nu, e)] {
                        m.queue_joined(on, &ep, r, app, remote);
                    }
                }
            }
            before.push(nu.clone());
        }
        for u in &new {
            m.queue.push_back(Op::hook(u, "update-status"));
        }
        Ok(new)
    })
}

/// Queues the departure hooks of `unit` (the remaining units see it leave).
fn queue_removal(m: &mut Model, unit: &str) -> Result<()> {
    let u = m
        .units
        .get_mut(unit)
        .ok_or_else(|| anyhow!("unit \"{unit}\" not found"))?;
    u.dying = true;
    let app = u.app.clone();
    let rels = m.app_relations(&app);
    for r in &rels {
        let Some((ep, their_ep, other)) = m.relations.get(r).map(|x| {
            let other = x.other_app(&app).to_string();
            (
                x.endpoint_of(&app).to_string(),
                x.endpoint_of(&other).to_string(),
                other,
            )
        }) else {
            continue;
        };
        // The units on the other side: the remaining peers, or the other
        // application's units.
        let remaining: Vec<String> = m
            .live_units(&other)
            .into_iter()
            .filter(|o| o != unit)
            .collect();
        let departed = format!("{ep}-relation-departed");
        let their_departed = format!("{their_ep}-relation-departed");
        let seen_by = |m: &Model, a: &str, b: &str| {
            m.relations
                .get(r)
                .is_some_and(|x| x.views.get(a).is_some_and(|v| v.contains(b)))
        };
        for o in &remaining {
            if seen_by(m, o, unit) {
                let mut op = Op::relation(o, &their_departed, r, &app, Some(unit));
                op.departing = Some(unit.to_string());
                m.queue.push_back(op);
            }
        }
        for o in &remaining {
            if seen_by(m, unit, o) {
                let mut op = Op::relation(unit, &departed, r, &other, Some(o));
                op.departing = Some(unit.to_string());
                m.queue.push_back(op);
            }
        }
        m.queue.push_back(Op::relation(
            unit,
            &format!("{ep}-relation-broken"),
            r,
            &other,
            None,
        ));
    }
    m.queue.push_back(Op::hook(unit, "stop"));
    m.queue.push_back(Op::hook(unit, "remove"));
    m.queue.push_back(Op::hook(unit, FINALIZE_REMOVE));
    Ok(())
}

fn remove_units(agent: &Agent, units: &[String]) -> Result<i32> {
    for u in units {
        if parse_unit(u).is_none() {
            bail!("invalid unit name \"{u}\"");
        }
    }
    agent.store.update(|m| -> Result<()> {
        for u in units {
            if !m.units.contains_key(u) {
                bail!("unit \"{u}\" does not exist");
            }
        }
        for u in units {
            queue_removal(m, u)?;
        }
        Ok(())
    })?;
    for u in units {
        eprintln!("removing unit {u}");
    }
    agent.drain()?;
    Ok(0)
}

/// `juju integrate A[:EP] B[:EP]`: one side provides what the other
/// requires, on the same interface. Queues `-relation-created` on every unit
/// of both sides, then `-joined`/`-changed` for each pair, as Juju does.
fn integrate(agent: &Agent, a: &str, b: &str) -> Result<i32> {
    let split = |spec: &str| -> (String, Option<String>) {
        match spec.split_once(':') {
            Some((app, ep)) => (app.to_string(), Some(ep.to_string())),
            None => (spec.to_string(), None),
        }
    };
    let ((app_a, ep_a), (app_b, ep_b)) = (split(a), split(b));
    let model = agent.store.read()?;
    for app in [&app_a, &app_b] {
        if !model.applications.contains_key(app) {
            bail!("application \"{app}\" not found");
        }
    }
    if app_a == app_b {
        bail!("cannot relate an application to itself; peer relations are made by deploy");
    }
    let (ca, cb) = (
        app_charm(&agent.store, &app_a)?,
        app_charm(&agent.store, &app_b)?,
    );
    // (provider app, provider endpoint, requirer app, requirer endpoint)
    let mut candidates = Vec::new();
    for (pa, pc, pep, ra, rc, rep) in [
        (&app_a, &ca, &ep_a, &app_b, &cb, &ep_b),
        (&app_b, &cb, &ep_b, &app_a, &ca, &ep_a),
    ] {
        for (p_ep, p_if) in pc.relation_endpoints(true) {
            for (r_ep, r_if) in rc.relation_endpoints(false) {
                let named =
                    |want: &Option<String>, got: &str| want.as_deref().is_none_or(|w| w == got);
                if p_if == r_if && named(pep, &p_ep) && named(rep, &r_ep) {
                    candidates.push((pa.clone(), p_ep.clone(), ra.clone(), r_ep.clone()));
                }
            }
        }
    }
    let (prov, prov_ep, req, req_ep) = match candidates.as_slice() {
        [one] => one.clone(),
        [] => bail!("no relations found between \"{a}\" and \"{b}\": no provides/requires endpoints share an interface"),
        _ => bail!("ambiguous relation: \"{a} {b}\" could refer to several endpoint pairs; name the endpoints as APP:ENDPOINT"),
    };
    agent.store.update(|m| -> Result<()> {
        if m.relations.values().any(|r| {
            r.app == prov && r.endpoint == prov_ep && r.remote_app.as_deref() == Some(req.as_str())
        }) {
            bail!("relation {prov}:{prov_ep} {req}:{req_ep} already exists");
        }
        let key = format!("{prov_ep}:{}", m.next_relation);
        m.next_relation += 1;
        let mut rel = Relation {
            endpoint: prov_ep.clone(),
            app: prov.clone(),
            remote_app: Some(req.clone()),
            remote_endpoint: Some(req_ep.clone()),
            ..Relation::default()
        };
        let (pu, ru) = (m.live_units(&prov), m.live_units(&req));
        for u in pu.iter().chain(&ru) {
            rel.views.insert(u.clone(), Default::default());
        }
        m.relations.insert(key.clone(), rel);
        for (units, ep, other) in [(&pu, &prov_ep, &req), (&ru, &req_ep, &prov)] {
            for u in units {
                m.queue.push_back(Op::relation(
                    u,
                    &format!("{ep}-relation-created"),
                    &key,
                    other,
                    None,
                ));
            }
        }
        for p in &pu {
            for r in &ru {
                for (on, remote, ep, remote_app) in [(p, r, &prov_ep, &req), (r, p, &req_ep, &prov)]
                {
                    m.queue_joined(on, ep, &key, remote_app, remote);
                }
            }
        }
        Ok(())
    })?;
    agent.drain()?;
    Ok(0)
}

fn remove_application(agent: &Agent, app: &str) -> Result<i32> {
    agent.store.update(|m| -> Result<()> {
        let a = m
            .applications
            .get_mut(app)
            .ok_or_else(|| anyhow!("application \"{app}\" not found"))?;
        a.dying = true;
        let units = m.app_units(app);
        if units.is_empty() {
            m.applications.remove(app);
            m.relations.retain(|_, r| !r.involves(app));
        }
        for u in units {
            queue_removal(m, &u)?;
        }
        Ok(())
    })?;
    eprintln!("will remove application {app}");
    agent.drain()?;
    if !agent.store.read()?.applications.contains_key(app) {
        let _ = fs::remove_dir_all(agent.store.home().join("charms").join(app));
        let _ = fs::remove_dir_all(agent.store.home().join("resources").join(app));
    }
    Ok(0)
}

fn config(
    agent: &Agent,
    app: &str,
    args: &[String],
    reset: &[String],
    format: Option<&str>,
) -> Result<i32> {
    let m = agent.store.read()?;
    let a = m
        .applications
        .get(app)
        .ok_or_else(|| anyhow!("application \"{app}\" not found"))?;
    let charm = app_charm(&agent.store, app)?;
    let sets: Vec<&String> = args.iter().filter(|x| x.contains('=')).collect();
    if sets.is_empty() && reset.is_empty() {
        let eff = charm.effective_config(&a.config);
        if let Some(k) = args.first() {
            if !charm.options().contains_key(k) {
                bail!("key \"{k}\" not found in \"{app}\" application config or charm settings.");
            }
            match eff.get(k) {
                Some(Value::String(s)) => println!("{s}"),
                Some(Value::Null) | None => println!(),
                Some(v) => println!("{v}"),
            }
            return Ok(0);
        }
        let mut settings = Map::new();
        for (k, opt) in charm.options() {
            let mut s = Map::new();
            if let Some(d) = opt.get("default") {
                s.insert("default".into(), d.clone());
            }
            s.insert(
                "description".into(),
                opt.get("description").cloned().unwrap_or(Value::from("")),
            );
            // Juju's describe(): a user value equal to the default shows as
            // the default; an option with neither is "unset".
            let default = opt.get("default").filter(|d| !d.is_null());
            let user = a
                .config
                .get(&k)
                .filter(|v| !v.is_null() && Some(*v) != default);
            let source = match (user, default) {
                (Some(_), _) => "user",
                (None, Some(_)) => "default",
                (None, None) => "unset",
            };
            s.insert("source".into(), Value::from(source));
            s.insert(
                "type".into(),
                opt.get("type").cloned().unwrap_or(Value::from("string")),
            );
            if let Some(v) = eff.get(&k).filter(|v| !v.is_null()) {
                s.insert("value".into(), v.clone());
            }
            settings.insert(k, Value::Object(s));
        }
        let out = json!({
            "application": app,
            "application-config": {"trust": {
                "default": false,
                "description": "Does this application have access to trusted credentials",
                "source": "default",
                "type": "bool",
                "value": false,
            }},
            "charm": a.charm,
            "settings": settings,
        });
        if format == Some("json") {
            println!("{out}");
        } else {
            print!("{}", serde_yaml::to_string(&out)?);
        }
        return Ok(0);
    }
    if sets.len() != args.len() {
        bail!("cannot mix getting and setting config values");
    }
    let mut parsed = Vec::new();
    for kv in sets {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        parsed.push((k.to_string(), charm.parse_config_value(k, v)?));
    }
    for k in reset {
        for k in k.split(',') {
            if !charm.options().contains_key(k) {
                bail!("unknown option \"{k}\"");
            }
        }
    }
    let changed = agent.store.update(|m| -> Result<bool> {
        let before = {
            let a = m
                .applications
                .get(app)
                .ok_or_else(|| anyhow!("application \"{app}\" not found"))?;
            charm.effective_config(&a.config)
        };
        let a = m
            .applications
            .get_mut(app)
            .ok_or_else(|| anyhow!("application \"{app}\" not found"))?;
        for (k, v) in parsed {
            a.config.insert(k, v);
        }
        for k in reset.iter().flat_map(|r| r.split(',')) {
            a.config.remove(k);
        }
        let changed = charm.effective_config(&a.config) != before;
        if changed {
            for u in m.live_units(app) {
                m.queue.push_back(Op::hook(&u, "config-changed"));
            }
        }
        Ok(changed)
    })?;
    if changed {
        agent.drain()?;
    }
    Ok(0)
}

fn attach(agent: &Agent, app: &str, resources: &[String]) -> Result<i32> {
    if !agent.store.read()?.applications.contains_key(app) {
        bail!("application \"{app}\" not found");
    }
    let charm = app_charm(&agent.store, app)?;
    let mut stored = Vec::new();
    for r in resources {
        let (name, path) = r
            .split_once('=')
            .ok_or_else(|| anyhow!("invalid resource \"{r}\": expected NAME=PATH"))?;
        let Some((_, filename)) = charm.resources().into_iter().find(|(n, _)| n == name) else {
            bail!("unrecognized resource \"{name}\"");
        };
        stored.push((
            name.to_string(),
            store_resource(&agent.store, app, name, &filename, Path::new(path))?,
        ));
    }
    agent.store.update(|m| -> Result<()> {
        let a = m
            .applications
            .get_mut(app)
            .ok_or_else(|| anyhow!("application \"{app}\" not found"))?;
        for (n, p) in stored {
            a.resources.insert(n, p);
        }
        for u in m.live_units(app) {
            m.queue.push_back(Op::hook(&u, "upgrade-charm"));
            m.queue.push_back(Op::hook(&u, "config-changed"));
        }
        Ok(())
    })?;
    agent.drain()?;
    Ok(0)
}

/// What the operator asked to run.
struct ActionRequest<'a> {
    unit: &'a str,
    action: &'a str,
    args: &'a [String],
    file: Option<&'a Path>,
    string_args: bool,
}

impl Agent {
    /// Validates the parameters and queues the action; returns its id.
    fn enqueue(&self, req: &ActionRequest) -> Result<u64> {
        let unit = req.unit;
        let (app, _) = parse_unit(unit).ok_or_else(|| anyhow!("invalid unit name \"{unit}\""))?;
        if !self.store.read()?.units.contains_key(unit) {
            bail!("unit \"{unit}\" not found");
        }
        let file = match req.file {
            None => None,
            Some(p) => {
                let text = fs::read_to_string(p)
                    .with_context(|| format!("cannot read params file {}", p.display()))?;
                let v: Value = serde_yaml::from_str(&text)
                    .with_context(|| format!("cannot parse params file {}", p.display()))?;
                match v {
                    Value::Object(m) => Some(m),
                    Value::Null => Some(Map::new()),
                    _ => bail!("params must contain a YAML map with string keys"),
                }
            }
        };
        let charm = app_charm(&self.store, &app)?;
        let params = charm.action_params(unit, req.action, req.args, file, req.string_args)?;
        self.enqueue_action(unit, req.action, params)
    }

    /// Queues and runs the action in this process; returns its id.
    fn run_action_now(&self, req: &ActionRequest) -> Result<u64> {
        let id = self.enqueue(req)?;
        self.execute_action(id)?;
        Ok(id)
    }
}

fn check_format(format: Option<&str>, allowed: &[&str]) -> Result<()> {
    match format {
        Some(f) if !allowed.contains(&f) => {
            bail!("invalid value \"{f}\" for option --format: unknown format \"{f}\"")
        }
        _ => Ok(()),
    }
}

/// Prints a document as YAML (the default) or JSON.
fn print_doc(v: &Value, format: Option<&str>) -> Result<()> {
    if format == Some("json") {
        println!("{v}");
    } else {
        print!("{}", serde_yaml::to_string(v)?);
    }
    Ok(())
}

/// Waits (like Juju's default `--wait`) until the action has finished.
fn wait_for_action(agent: &Agent, id: u64) -> Result<Action> {
    let deadline = std::time::Instant::now() + Duration::from_secs(700);
    loop {
        let m = agent.store.read()?;
        let a = m
            .actions
            .get(&id)
            .cloned()
            .ok_or_else(|| anyhow!("id \"{id}\" not found"))?;
        let done = a.status != "pending" && a.status != "running";
        if done || std::time::Instant::now() > deadline {
            return Ok(a);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn timing(a: &Action) -> Value {
    let mut t = Map::new();
    if let Some(c) = a.completed {
        t.insert("completed".into(), Value::from(juju_time(c)));
    }
    t.insert("enqueued".into(), Value::from(juju_time(a.enqueued)));
    if let Some(s) = a.started {
        t.insert("started".into(), Value::from(juju_time(s)));
    }
    Value::Object(t)
}

/// An action's `action-log` lines as Juju prints them, if it logged any.
fn log_lines(a: &Action) -> Option<Value> {
    (!a.log.is_empty()).then(|| {
        a.log
            .iter()
            .map(|(t, msg)| Value::from(format!("{} {msg}", juju_time(*t))))
            .collect()
    })
}

/// The Juju 2.9 `show-action-output` document.
fn action_yaml(a: &Action) -> Value {
    let mut m = Map::new();
    m.insert("UnitId".into(), Value::from(a.unit.clone()));
    m.insert("id".into(), Value::from(a.id.to_string()));
    if let Some(log) = log_lines(a) {
        m.insert("log".into(), log);
    }
    if a.status == "failed" {
        if let Some(msg) = &a.message {
            m.insert("message".into(), Value::from(msg.clone()));
        }
    }
    let mut results = a.results.clone();
    if let Some(c) = a.code {
        results.insert("Code".into(), Value::from(c.to_string()));
    }
    m.insert("results".into(), Value::Object(results));
    m.insert("status".into(), Value::from(a.status.clone()));
    m.insert("timing".into(), timing(a));
    Value::Object(m)
}

/// Juju 3's `run`: waits for the task and prints it in `format` (`plain`
/// prints the results map as YAML, `yaml`/`json` the whole task keyed by
/// unit); `--background` prints the ids on stderr and returns at once.
fn run3(agent: &Agent, req: &ActionRequest, format: &str, background: bool) -> Result<i32> {
    let unit = req.unit;
    if background {
        let id = agent.enqueue(req)?;
        let exe = std::env::current_exe().context("cannot find juju-sim's own executable")?;
        let mut cmd = std::process::Command::new(exe);
        cmd.arg("run-task")
            .arg(id.to_string())
            .env("JUJU_SIM_HOME", agent.store.home())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0);
        cmd.spawn().context("cannot start the task")?;
        eprintln!("Scheduled operation {id} with task {id}");
        eprintln!("Check operation status with 'juju show-operation {id}'");
        eprintln!("Check task status with 'juju show-task {id}'");
        return Ok(0);
    }
    let id = agent.run_action_now(req)?;
    let m = agent.store.read()?;
    let a = m
        .actions
        .get(&id)
        .ok_or_else(|| anyhow!("task {id} not found"))?;
    eprintln!(
        "Running operation {id} with 1 task\n  - task {id} on unit-{}\n",
        crate::util::unit_slug(unit)
    );
    eprintln!("Waiting for task {id}...");
    for (t, msg) in &a.log {
        eprintln!("{} {msg}", juju_time(*t));
    }
    if format == "plain" {
        let shown: Map<String, Value> = a
            .results
            .iter()
            .filter(|(k, _)| {
                ![
                    "return-code",
                    "stdout",
                    "stderr",
                    "stdout-encoding",
                    "stderr-encoding",
                ]
                .contains(&k.to_lowercase().as_str())
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if a.status == "failed" {
            println!(
                "Action id {id} failed: {}",
                a.message.clone().unwrap_or_default()
            );
        }
        if !shown.is_empty() {
            print!("{}", serde_yaml::to_string(&Value::Object(shown))?);
        }
    } else {
        let mut results = a.results.clone();
        results.insert("return-code".into(), Value::from(a.code.unwrap_or(0)));
        let mut task = Map::new();
        task.insert("id".into(), Value::from(id.to_string()));
        if let Some(log) = log_lines(a) {
            task.insert("log".into(), log);
        }
        if let Some(msg) = &a.message {
            task.insert("message".into(), Value::from(msg.clone()));
        }
        task.insert("results".into(), Value::Object(results));
        task.insert("status".into(), Value::from(a.status.clone()));
        task.insert("timing".into(), timing(a));
        task.insert("unit".into(), Value::from(unit));
        let mut out = Map::new();
        out.insert(unit.to_string(), Value::Object(task));
        print_doc(&Value::Object(out), Some(format))?;
    }
    if a.status == "failed" {
        eprintln!(
            "ERROR the following task failed:\n - id \"{id}\" with return code {}\n\nuse 'juju show-task' to inspect the failure",
            a.code.unwrap_or(0)
        );
        return Ok(1);
    }
    Ok(0)
}

fn severity(s: &str) -> u8 {
    match s {
        "error" => 5,
        "blocked" => 4,
        "maintenance" => 3,
        "waiting" => 2,
        "active" => 1,
        _ => 0,
    }
}

/// A unit's (workload, agent) statuses as status shows them.
fn unit_statuses(u: &Unit) -> (Value, Value) {
    match &u.failed {
        Some(op) => {
            let msg = format!("hook failed: \"{}\"", op.hook);
            (
                json!({"current": "error", "message": msg, "since": u.workload.since}),
                json!({"current": "error", "message": msg, "since": u.workload.since, "version": "3.5.0"}),
            )
        }
        None => (
            json!({"current": u.workload.current, "message": u.workload.message, "since": u.workload.since}),
            json!({"current": if u.agent.is_empty() { "idle" } else { &u.agent }, "since": u.workload.since, "version": "3.5.0"}),
        ),
    }
}

fn status_json(agent: &Agent, m: &Model) -> Value {
    let name = agent
        .store
        .home()
        .file_name()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "sim".into());
    let mut machines = Map::new();
    let mut apps = Map::new();
    for (app_name, app) in &m.applications {
        let mut units = Map::new();
        let mut worst: Option<Value> = None;
        for un in m.app_units(app_name) {
            let Some(u) = m.units.get(&un) else { continue };
            let (w, j) = unit_statuses(u);
            if worst.as_ref().is_none_or(|x| {
                severity(w["current"].as_str().unwrap_or(""))
                    > severity(x["current"].as_str().unwrap_or(""))
            }) {
                worst = Some(w.clone());
            }
            units.insert(
                un.clone(),
                json!({
                    "workload-status": w,
                    "juju-status": j,
                    "leader": app.leader.as_deref() == Some(un.as_str()),
                    "machine": u.machine,
                    "public-address": u.address,
                    "open-ports": u.ports.iter().cloned().collect::<Vec<_>>(),
                }),
            );
            machines.insert(
                u.machine.clone(),
                json!({
                    "juju-status": {"current": "started"},
                    "dns-name": u.address,
                    "ip-addresses": [u.address],
                    "instance-id": format!("juju-sim-{}", u.machine),
                    "machine-status": {"current": "running"},
                    "base": {"name": "ubuntu", "channel": "22.04"},
                }),
            );
        }
        let app_status = match (&app.status, worst) {
            (Some(s), _) => json!({"current": s.current, "message": s.message, "since": s.since}),
            (None, Some(w)) => w,
            (None, None) => json!({"current": "unknown", "message": ""}),
        };
        let mut rels = Map::new();
        for id in m.app_relations(app_name) {
            if let Some(r) = m.relations.get(&id) {
                rels.insert(
                    r.endpoint_of(app_name).to_string(),
                    json!([r.other_app(app_name)]),
                );
            }
        }
        apps.insert(
            app_name.clone(),
            json!({
                "charm": app.charm,
                "charm-name": app.charm,
                "charm-origin": "local",
                "charm-rev": app.revision,
                "exposed": false,
                "base": {"name": "ubuntu", "channel": "22.04"},
                "application-status": app_status,
                "version": app.version,
                "relations": rels,
                "units": units,
            }),
        );
    }
    json!({
        "model": {"name": name, "type": "iaas", "controller": "juju-sim", "cloud": "localhost", "version": "3.5.0", "model-status": {"current": "available"}},
        "machines": machines,
        "applications": apps,
        "controller": {"timestamp": rfc3339(now_secs())},
    })
}

fn status_cmd(agent: &Agent, format: Option<&str>) -> Result<i32> {
    let m = agent.store.read()?;
    let v = status_json(agent, &m);
    match format {
        Some("json") => println!("{v}"),
        Some("yaml") => print!("{}", serde_yaml::to_string(&v)?),
        Some("tabular") | None => print_table(&v),
        Some(other) => {
            bail!("invalid value \"{other}\" for option --format: unknown format \"{other}\"")
        }
    }
    Ok(0)
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn print_table(v: &Value) {
    let mut rows = vec![vec![
        "Model".to_string(),
        "Controller".into(),
        "Cloud/Region".into(),
        "Version".into(),
    ]];
    rows.push(vec![
        s(&v["model"]["name"]),
        "juju-sim".into(),
        "localhost/localhost".into(),
        "3.5.0".into(),
    ]);
    let mut out = table(&rows);
    let mut apps = vec![vec![
        "App", "Version", "Status", "Scale", "Charm", "Rev", "Message",
    ]
    .into_iter()
    .map(String::from)
    .collect::<Vec<_>>()];
    let mut units = vec![vec![
        "Unit",
        "Workload",
        "Agent",
        "Machine",
        "Public address",
        "Ports",
        "Message",
    ]
    .into_iter()
    .map(String::from)
    .collect::<Vec<_>>()];
    if let Some(map) = v["applications"].as_object() {
        for (name, a) in map {
            let scale = a["units"].as_object().map(|u| u.len()).unwrap_or(0);
            apps.push(vec![
                name.clone(),
                s(&a["version"]),
                s(&a["application-status"]["current"]),
                scale.to_string(),
                s(&a["charm"]),
                s(&a["charm-rev"]),
                s(&a["application-status"]["message"]),
            ]);
            if let Some(us) = a["units"].as_object() {
                for (un, u) in us {
                    let star = if u["leader"] == Value::Bool(true) {
                        "*"
                    } else {
                        ""
                    };
                    let ports: Vec<String> = u["open-ports"]
                        .as_array()
                        .map(|p| p.iter().map(s).collect())
                        .unwrap_or_default();
                    units.push(vec![
                        format!("{un}{star}"),
                        s(&u["workload-status"]["current"]),
                        s(&u["juju-status"]["current"]),
                        s(&u["machine"]),
                        s(&u["public-address"]),
                        ports.join(","),
                        s(&u["workload-status"]["message"]),
                    ]);
                }
            }
        }
    }
    out.push('\n');
    out.push_str(&table(&apps));
    out.push('\n');
    out.push_str(&table(&units));
    print!("{out}");
}

fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .map(|r| r.get(c).map_or(0, |x| x.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn unit_path(agent: &Agent, spec: &str) -> Result<Option<PathBuf>> {
    let Some((unit, path)) = spec.split_once(':') else {
        return Ok(None);
    };
    if parse_unit(unit).is_none() {
        return Ok(None);
    }
    if !agent.store.read()?.units.contains_key(unit) {
        bail!("unit \"{unit}\" not found");
    }
    let root = agent.store.unit_dir(unit).join("root");
    Ok(Some(root.join(path.trim_start_matches('/'))))
}

fn scp(agent: &Agent, src: &str, dst: &str) -> Result<i32> {
    let from = unit_path(agent, src)?.unwrap_or_else(|| PathBuf::from(src));
    let mut to = unit_path(agent, dst)?.unwrap_or_else(|| PathBuf::from(dst));
    if !from.exists() {
        bail!("cannot copy {src}: no such file or directory");
    }
    // `DIR/` names a directory: copy into it (created when missing), keeping
    // the file name, as `juju scp` does into an existing directory.
    if dst.ends_with('/') && !to.is_dir() {
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
    Ok(0)
}

fn debug_log(agent: &Agent, replay: bool, include: &[String], lines: Option<usize>) -> Result<i32> {
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

fn destroy(agent: &Agent) -> Result<i32> {
    let home = agent.store.home().to_path_buf();
    if !agent.store.exists() && !home.exists() {
        bail!("model at {} not found", home.display());
    }
    let m = agent.store.read().unwrap_or_default();
    // Bounded: each stop/remove hook gets at most 30 s, all of them together
    // at most 60 s; a unit whose hook is still running elsewhere (its
    // uniter lock is held) or that is in error gets none.
    let budget = std::time::Instant::now() + Duration::from_secs(60);
    for (name, u) in &m.units {
        if u.failed.is_some() || !agent.uniter_free(name, Duration::from_secs(2)) {
            continue;
        }
        for hook in ["stop", "remove"] {
            let left = budget.saturating_duration_since(std::time::Instant::now());
            if left.as_secs() < 1 {
                break;
            }
            let t = Some(left.min(Duration::from_secs(30)));
            if let Err(e) = agent.run_hook(&Op::hook(name, hook), 0, t) {
                eprintln!("WARNING {name}: {hook} hook: {e:#}");
            }
        }
    }
    if let Ok(rd) = fs::read_dir(home.join("units")) {
        for e in rd.flatten() {
            crate::agent::kill_running(&e.path());
        }
    }
    if let Ok(rd) = fs::read_dir(home.join("units")) {
        for e in rd.flatten() {
            crate::systemctl::kill_all(&e.path().join("systemd"));
        }
    }
    for u in m.units.values() {
        crate::addr::release(&home, &u.address);
    }
    // Any claim this home still holds (e.g. from an interrupted add-unit).
    if let Ok(rd) = fs::read_dir(crate::addr::claim_dir()) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            crate::addr::release(&home, &name);
        }
    }
    // A CLI process whose hook was just killed may still write a last line
    // into the home while it winds down; retry briefly instead of failing.
    let mut tries = 0;
    loop {
        match fs::remove_dir_all(&home) {
            Ok(()) => break,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
            Err(_) if tries < 25 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => return Err(e).with_context(|| format!("cannot remove {}", home.display())),
        }
    }
    eprintln!("Destroying model\nModel destroyed.");
    Ok(0)
}
