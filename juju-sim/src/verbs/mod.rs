//! The operator-facing CLI verbs (`juju-sim deploy`, `status`, `run`, …),
//! one file per family: `deploy` (deploy and units, relations), `config`
//! (config, resources, fault injection), `actions`, `status`, `transfer`
//! (scp; commands: 3's exec, 2.9's run; debug-log) and `model` (destroy,
//! upgrade, wait-idle, run-hook, resolved). A verb changes the model under
//! its lock and queues the hooks Juju would fire, in Juju's order; the
//! units' agents (`crate::uniter`) run them. Like Juju's, the verbs return
//! once the work is queued; `wait-idle` waits for it. Output imitates
//! Juju's wording; what differs between Juju 2.9 and 3.x comes from
//! `crate::profile`.

mod actions;
mod config;
mod deploy;
mod model;
mod status;
mod transfer;

use crate::charm::Charm;
use crate::model::{Action, Application, Model, Op, Relation, Store, Unit, FINALIZE_REMOVE};
use crate::profile::Profile;
use crate::uniter::{status, Agent};
use crate::util::{juju_time, now_secs, parse_unit};
use actions::ActionRequest;
use anyhow::{anyhow, bail, Context, Result};
use clap::{Parser, Subcommand};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::fs;
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
    /// The model (accepted on every verb, as Juju's global flag; a
    /// juju-sim home holds one model, chosen by JUJU_SIM_HOME).
    #[arg(short = 'm', long = "model", global = true)]
    model: Option<String>,
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
    /// Create the model now (else the first deploy does): its Juju version
    /// and settings are fixed from the environment. A juju-sim home holds
    /// one model; the name is accepted for Juju's syntax.
    AddModel {
        name: Option<String>,
        #[arg(long)]
        no_switch: bool,
        #[arg(long)]
        config: Vec<String>,
    },
    /// Add units to an application.
    AddUnit {
        app: String,
        #[arg(short = 'n', long = "num-units", default_value_t = 1)]
        n: u32,
    },
    /// Remove units (`--force --no-wait`: at once, without their hooks,
    /// as when a machine is lost).
    RemoveUnit {
        #[arg(required = true)]
        units: Vec<String>,
        #[arg(long)]
        force: bool,
        #[arg(long)]
        no_wait: bool,
        #[arg(long)]
        destroy_storage: bool,
        #[arg(long)]
        no_prompt: bool,
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
        #[arg(long)]
        no_prompt: bool,
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
    /// Upgrade an application's charm from a local charm (`--path`) and/or
    /// its resources (`--resource NAME=PATH`); each unit runs
    /// `upgrade-charm` then `config-changed`.
    Refresh(RefreshArgs),
    /// Juju 2.9's name for `refresh` (refused on 3.x, as Juju 3 has none).
    UpgradeCharm(RefreshArgs),
    /// Juju 2.9: queue an action; prints its id (`--wait`: its outcome).
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
    /// Juju 2.9: show an action's state now (`--wait D`: wait for it; 0 or
    /// empty waits without limit). Not a command on Juju 3.
    ShowActionOutput(ShowArgs),
    /// Show a task now, or with `--wait D` once it has finished (`--watch`:
    /// without limit): its results (`plain`, the default) or its document
    /// (`yaml`/`json`, Juju 3's shape).
    ShowTask(ShowArgs),
    /// An operation of one task, shown as that task's document (YAML by
    /// default; Juju's operation document is not simulated).
    ShowOperation(ShowArgs),
    /// Juju 3: run an action and print its results (`run UNIT ACTION
    /// [KEY=VALUE...]`; waits 60 s unless `--wait=D`; UNIT may be
    /// APP/leader). Juju 2.9: run a command in units' hook context (`run
    /// --unit UNIT|--application APP -- CMD`).
    Run(RunArgs),
    /// Show the model's status.
    Status {
        #[arg(long)]
        format: Option<String>,
        #[arg(long)]
        no_color: bool,
        #[arg(long)]
        color: bool,
    },
    /// Show units' details (Juju's show-unit).
    ShowUnit {
        #[arg(required = true)]
        units: Vec<String>,
        #[arg(long)]
        format: Option<String>,
    },
    /// Print the (simulated) Juju client version.
    Version {
        #[arg(long)]
        format: Option<String>,
        #[arg(long)]
        all: bool,
    },
    /// Copy files to or from a unit as its `ubuntu` user (UNIT:PATH).
    Scp {
        #[arg(long)]
        container: Option<String>,
        #[arg(long)]
        no_host_key_checks: bool,
        #[arg(required = true, num_args = 2.., allow_hyphen_values = true)]
        paths: Vec<String>,
    },
    /// Print the units' agent logs.
    DebugLog {
        #[arg(long)]
        replay: bool,
        #[arg(long, short = 'i')]
        include: Vec<String>,
        #[arg(long, short = 'n', alias = "limit")]
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
    /// Move the model to another Juju version (2.9 → 3.x): the next hooks
    /// see the new JUJU_VERSION (stands in for a model migration).
    UpgradeModel {
        #[arg(long)]
        agent_version: String,
    },
    /// (juju-sim extra) Fire one hook on a unit and wait for it, e.g.
    /// update-status; exits 1 when it failed.
    RunHook { unit: String, hook: String },
    /// (juju-sim extra) Clear a unit's hook error and retry the hook now.
    Resolved {
        unit: String,
        #[arg(long)]
        no_retry: bool,
    },
    /// Run a command in units' hook context (`juju exec`, Juju 3).
    Exec(ExecArgs),
    /// (juju-sim extra) Wait until every unit's agent is idle: nothing
    /// queued or running. A unit whose hook has failed 3 times in a row
    /// counts as settled; exits 3 when units are in error, 1 on timeout.
    WaitIdle {
        #[arg(long, default_value = "10m")]
        timeout: String,
    },
    /// (juju-sim extra) Make the next COUNT calls of a hook tool fail like
    /// a controller fault: `inject-fault resource-get APP|APP/N RESOURCE`.
    InjectFault {
        tool: String,
        target: String,
        resource: Option<String>,
        #[arg(long, default_value_t = 1)]
        count: u32,
    },
    /// (internal) A unit's agent; started by the verbs that create units.
    #[command(hide = true)]
    Agent { unit: String },
}

/// `show-action-output` (2.9), `show-task` and `show-operation` (3).
#[derive(clap::Args)]
struct ShowArgs {
    id: String,
    #[arg(long)]
    format: Option<String>,
    #[arg(long, num_args = 0..=1, default_missing_value = "0")]
    wait: Option<String>,
    #[arg(long)]
    utc: bool,
    #[arg(long)]
    watch: bool,
}

/// `run` in both of its shapes: Juju 3's `run UNIT ACTION [KEY=VALUE...]`
/// (an action) and Juju 2.9's `run --unit U|--application A|--machine
/// M|--all [--timeout D] -- CMD` (a command). Which one applies is the
/// model's Juju version; a flag of the other shape is refused as that
/// Juju refuses an unknown flag.
#[derive(clap::Args)]
pub(super) struct RunArgs {
    /// Juju 3: UNIT ACTION [KEY=VALUE...]. Juju 2.9: the command (one
    /// argument is a shell command line; several are quoted and joined).
    args: Vec<String>,
    /// (2.9) Units to run the command on (also APP/leader).
    #[arg(long, short = 'u', value_delimiter = ',')]
    unit: Vec<String>,
    /// (2.9) Applications whose units run the command.
    #[arg(
        long = "application",
        visible_alias = "app",
        short = 'a',
        value_delimiter = ','
    )]
    application: Vec<String>,
    /// (2.9) Machines (not simulated: the simulator runs commands in
    /// units' hook context only).
    #[arg(long, value_delimiter = ',')]
    machine: Vec<String>,
    /// (2.9) Every machine (not simulated, as --machine).
    #[arg(long)]
    all: bool,
    /// (2.9) How long to wait for the results (default 5m).
    #[arg(long)]
    timeout: Option<String>,
    /// Juju 3: plain|yaml|json (plain). Juju 2.9: default|yaml|json
    /// (default: one result as the command printed it).
    #[arg(long)]
    format: Option<String>,
    /// (3) How long to wait for the task (60s).
    #[arg(long)]
    wait: Option<String>,
    /// (3) Queue the task and return at once, printing its id.
    #[arg(long)]
    background: bool,
    /// (3) A YAML file of parameters; KEY=VALUE arguments override it.
    #[arg(long = "params")]
    params_file: Option<PathBuf>,
    /// (3) Keep KEY=VALUE values as strings instead of parsing them as YAML.
    #[arg(long)]
    string_args: bool,
    #[arg(long)]
    utc: bool,
    #[arg(long)]
    no_color: bool,
    #[arg(long)]
    color: bool,
}

/// `refresh`'s flags (Juju 2.9's `upgrade-charm`).
#[derive(clap::Args, Debug)]
pub(super) struct RefreshArgs {
    app: String,
    /// A local charm (.charm file or directory) of the same name.
    #[arg(long)]
    path: Option<PathBuf>,
    /// NAME=PATH: a new revision of a resource.
    #[arg(long = "resource")]
    resources: Vec<String>,
    /// Charmhub only (refused).
    #[arg(long)]
    switch: Option<String>,
    /// Charmhub only (refused).
    #[arg(long)]
    channel: Option<String>,
    /// Charmhub only (refused).
    #[arg(long)]
    revision: Option<String>,
    /// Accepted for Juju's CLI.
    #[arg(long)]
    force: bool,
    /// Accepted for Juju's CLI.
    #[arg(long)]
    force_units: bool,
}

/// `juju exec`'s flags (Juju 3, cmd/juju/action/exec.go).
#[derive(clap::Args, Debug)]
pub(super) struct ExecArgs {
    /// Units to run the command on (also APP/leader).
    #[arg(long, short = 'u', value_delimiter = ',')]
    unit: Vec<String>,
    /// Applications whose units run the command.
    #[arg(
        long = "application",
        visible_alias = "app",
        short = 'a',
        value_delimiter = ','
    )]
    application: Vec<String>,
    /// Machines (not simulated: the simulator runs commands in units' hook
    /// context only).
    #[arg(long, value_delimiter = ',')]
    machine: Vec<String>,
    /// Every machine (not simulated, as --machine).
    #[arg(long)]
    all: bool,
    /// plain|yaml|json (plain).
    #[arg(long)]
    format: Option<String>,
    /// How long to wait for the results (5m).
    #[arg(long)]
    wait: Option<String>,
    /// Queue the tasks and return at once (not simulated; refused).
    #[arg(long)]
    background: bool,
    /// Accepted for Juju's CLI; units' commands always take their machine
    /// lock, as Juju's do.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    parallel: Option<bool>,
    /// Accepted for Juju's CLI (machine commands only).
    #[arg(long)]
    execution_group: Option<String>,
    /// Accepted for Juju's CLI (k8s models only; no effect here, as on IAAS).
    #[arg(long)]
    operator: bool,
    #[arg(long)]
    utc: bool,
    #[arg(long)]
    no_color: bool,
    #[arg(long)]
    color: bool,
    /// The command: one argument is a shell command line; several are
    /// quoted and joined as Juju joins them.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    cmd: Vec<String>,
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
    let _ = &cli.model;
    let agent = Agent::new(Store::new(home()?), verbose);
    // Juju 3 has no `run-action` or `show-action-output`, Juju 2.9 no
    // `exec`: refused as that Juju's CLI refuses an unknown command, before
    // anything is queued.
    let verb = match cli.cmd {
        Cmd::RunAction { .. } => Some("run-action"),
        Cmd::ShowActionOutput(_) => Some("show-action-output"),
        Cmd::Exec { .. } => Some("exec"),
        Cmd::UpgradeCharm(_) => Some("upgrade-charm"),
        _ => None,
    };
    if let Some(verb) = verb {
        if let Some(msg) = model_profile(&agent)?.unknown_verb(verb) {
            eprintln!("ERROR {msg}");
            return Ok(1);
        }
    }
    match cli.cmd {
        Cmd::Deploy {
            charm,
            app,
            n,
            resource,
            config,
        } => deploy::deploy(&agent, &charm, app, n, &resource, &config),
        Cmd::AddModel { .. } => {
            let p = deploy::ensure_model(&agent.store)?;
            eprintln!("Added model on juju-sim with Juju {}", p.version);
            Ok(0)
        }
        Cmd::AddUnit { app, n } => {
            if !agent.store.read()?.applications.contains_key(&app) {
                bail!("application \"{app}\" not found");
            }
            deploy::add_units(&agent, &app, n)?;
            kick(&agent)?;
            Ok(0)
        }
        Cmd::RemoveUnit {
            units,
            force,
            no_wait,
            ..
        } => {
            if force && no_wait {
                deploy::remove_units_now(&agent, &units)
            } else {
                deploy::remove_units(&agent, &units)
            }
        }
        Cmd::RemoveApplication {
            app,
            force,
            no_wait,
            ..
        } => deploy::remove_application(&agent, &app, force && no_wait),
        Cmd::Integrate { a, b } => deploy::integrate(&agent, &a, &b),
        Cmd::Config {
            app,
            args,
            reset,
            format,
        } => config::config(&agent, &app, &args, &reset, format.as_deref()),
        Cmd::AttachResource { app, resources } => config::attach(&agent, &app, &resources),
        Cmd::Refresh(r) | Cmd::UpgradeCharm(r) => {
            if r.switch.is_some() || r.channel.is_some() || r.revision.is_some() {
                bail!(
                    "juju-sim has no Charmhub: --switch, --channel and --revision are not \
                     simulated; refresh from a local charm with --path CHARM"
                );
            }
            if r.path.is_none() && r.resources.is_empty() {
                bail!(
                    "juju-sim has no Charmhub: refresh \"{}\" with --path CHARM and/or \
                     --resource NAME=PATH",
                    r.app
                );
            }
            deploy::refresh(&agent, &r.app, r.path.as_deref(), &r.resources)
        }
        Cmd::InjectFault {
            tool,
            target,
            resource,
            count,
        } => config::inject_fault(&agent, &tool, &target, resource.as_deref(), count),
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
            actions::run_action(&agent, &req, wait.as_deref(), format.as_deref())
        }
        Cmd::ShowActionOutput(a) => {
            actions::show_action_output(&agent, &a.id, a.wait.as_deref(), a.format.as_deref())
        }
        Cmd::ShowTask(a) => show_task(&agent, a, "plain"),
        Cmd::ShowOperation(a) => show_task(&agent, a, "yaml"),
        Cmd::Run(r) => run_verb(&agent, r),
        Cmd::Status { format, .. } => status::status_cmd(&agent, format.as_deref()),
        Cmd::ShowUnit { units, format } => status::show_unit(&agent, &units, format.as_deref()),
        Cmd::Version { format, all } => status::version(&agent, format.as_deref(), all),
        Cmd::Scp { paths, .. } => transfer::scp(&agent, &paths),
        Cmd::DebugLog {
            replay,
            include,
            lines,
            ..
        } => transfer::debug_log(&agent, replay, &include, lines),
        Cmd::DestroyModel { .. } => model::destroy(&agent),
        Cmd::UpgradeModel { agent_version } => model::upgrade(&agent, &agent_version),
        Cmd::RunHook { unit, hook } => model::run_hook(&agent, &unit, &hook),
        Cmd::Resolved { unit, no_retry } => model::resolved(&agent, &unit, no_retry),
        Cmd::Exec(e) => {
            if e.operator {
                bail!("only k8s models support the --operator flag");
            }
            let profile = model_profile(&agent)?;
            let targets = transfer::Targets {
                units: &e.unit,
                applications: &e.application,
                machines: &e.machine,
                all: e.all,
            };
            let options = transfer::ExecOptions {
                format: e.format.as_deref(),
                wait: e.wait.as_deref(),
                background: e.background,
            };
            transfer::exec(&agent, &profile, &targets, &options, &e.cmd)
        }
        Cmd::WaitIdle { timeout } => model::wait_idle(&agent, &timeout),
        Cmd::Agent { unit } => {
            crate::uniter::agent::run(agent.store.clone(), &unit)?;
            Ok(0)
        }
    }
}

/// The Juju version of the model, or of the model a verb would create.
fn model_profile(agent: &Agent) -> Result<Profile> {
    if agent.store.exists() {
        Ok(Profile::of(&agent.store.read()?.version))
    } else {
        Profile::from_env().map_err(|e| anyhow!(e))
    }
}

/// `show-task`/`show-operation` (`default_format` when `--format` is
/// absent; `--watch` waits without limit).
fn show_task(agent: &Agent, a: ShowArgs, default_format: &str) -> Result<i32> {
    let wait = if a.watch {
        Some("0".to_string())
    } else {
        a.wait
    };
    let format = a.format.unwrap_or_else(|| default_format.into());
    actions::show_task(agent, &a.id, wait.as_deref(), &format)
}

/// `run`: Juju 3 runs an action, Juju 2.9 a command. A flag only the
/// other shape has is refused as gnuflag refuses an undefined one (exit 2,
/// Juju's code for a command's usage errors).
fn run_verb(agent: &Agent, r: RunArgs) -> Result<i32> {
    let profile = model_profile(agent)?;
    let flags_29 = [
        ("--unit", !r.unit.is_empty()),
        ("--application", !r.application.is_empty()),
        ("--machine", !r.machine.is_empty()),
        ("--all", r.all),
        ("--timeout", r.timeout.is_some()),
    ];
    let flags_3 = [
        ("--wait", r.wait.is_some()),
        ("--background", r.background),
        ("--params", r.params_file.is_some()),
        ("--string-args", r.string_args),
        ("--utc", r.utc),
        ("--no-color", r.no_color),
        ("--color", r.color),
    ];
    let (foreign, hint) = if profile.is_29() {
        (
            &flags_3[..],
            "Juju 2.9 runs actions with: juju run-action UNIT ACTION [KEY=VALUE...] --wait",
        )
    } else {
        (
            &flags_29[..],
            "Juju 3 runs commands with: juju exec --unit UNIT -- CMD",
        )
    };
    if let Some((flag, _)) = foreign.iter().find(|(_, set)| *set) {
        eprintln!(
            "ERROR option provided but not defined: {flag}\n{hint} (this model runs Juju {})",
            profile.version
        );
        return Ok(2);
    }
    if profile.is_29() {
        let targets = transfer::Targets {
            units: &r.unit,
            applications: &r.application,
            machines: &r.machine,
            all: r.all,
        };
        return transfer::run_commands(
            agent,
            &profile,
            &targets,
            r.timeout.as_deref(),
            r.format.as_deref(),
            &r.args,
        );
    }
    let format = r.format.unwrap_or_else(|| "plain".into());
    check_format(Some(&format), &["plain", "yaml", "json"])?;
    // Juju 3's Init errors (exit 2).
    let (unit, action, params) = match r.args.as_slice() {
        [] => {
            eprintln!("ERROR no unit specified");
            return Ok(2);
        }
        [_] => {
            eprintln!("ERROR no action specified");
            return Ok(2);
        }
        [unit, action, params @ ..] => (unit, action, params),
    };
    let req = ActionRequest {
        unit,
        action,
        args: params,
        file: r.params_file.as_deref(),
        string_args: r.string_args,
    };
    actions::run3(agent, &req, &format, r.background, r.wait.as_deref())
}

/// (Re)creates the tools directory: one symlink per hook tool the model's
/// Juju version has (2.9 has no `secret-*`), `systemctl` and `juju-sim`.
pub(super) fn ensure_tools(store: &Store, profile: &Profile) -> Result<()> {
    let dir = store.tools_dir();
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let exe = std::env::current_exe().context("cannot find juju-sim's own executable")?;
    for name in crate::tools::TOOL_NAMES
        .iter()
        .chain(["systemctl", "juju-sim"].iter())
    {
        let link = dir.join(name);
        let _ = fs::remove_file(&link);
        if !profile.has_tool(name) {
            continue;
        }
        std::os::unix::fs::symlink(&exe, &link)
            .with_context(|| format!("cannot create {}", link.display()))?;
    }
    Ok(())
}

/// The environment a new model records as its agents' base: everything
/// but Juju's own `JUJU_*` variables (the simulator's `JUJU_SIM_*` stay).
pub(super) fn current_env() -> BTreeMap<String, String> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| !k.starts_with("JUJU_") || k.starts_with("JUJU_SIM_"))
        .filter(|(k, _)| k != "JUJU_SIM_HOME")
        .collect()
}

/// What this command's environment adds to the model's base environment:
/// it travels with the hooks and actions the command queues (a test's
/// `ETCD_CHARM_FAILPOINTS=… juju-sim run-action …` reaches that action).
pub(super) fn env_diff(m: &Model) -> BTreeMap<String, String> {
    current_env()
        .into_iter()
        .filter(|(k, v)| m.base_env.get(k) != Some(v))
        .collect()
}

/// Gives the ops queued since sequence number `since` this command's
/// environment beyond the model's base (see [`env_diff`]).
pub(super) fn tag_env(m: &mut Model, since: u64) {
    let diff = env_diff(m);
    if diff.is_empty() {
        return;
    }
    for op in m.queue.iter_mut().filter(|o| o.seq > since) {
        op.env.extend(diff.clone());
    }
}

/// After a verb has queued work: starts the agents of new units (and
/// restarts any that died).
pub(super) fn kick(agent: &Agent) -> Result<()> {
    crate::uniter::agent::ensure_all(&agent.store)
}

/// Parses a Go-style duration (`90s`, `10m`, `1h30m`, `500ms`, or bare
/// seconds); `None` for a negative one.
pub(super) fn parse_duration(s: &str) -> Result<Option<Duration>> {
    let t = s.trim();
    if t.starts_with('-') {
        return Ok(None);
    }
    if let Ok(secs) = t.parse::<f64>() {
        return Ok(Some(Duration::from_secs_f64(secs)));
    }
    let mut total = 0f64;
    let mut num = String::new();
    let mut chars = t.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let mut unit = c.to_string();
        while let Some(&n) = chars.peek() {
            if n.is_ascii_alphabetic() {
                unit.push(n);
                chars.next();
            } else {
                break;
            }
        }
        let n: f64 = num
            .parse()
            .map_err(|_| anyhow!("invalid duration \"{s}\""))?;
        num.clear();
        total += n * match unit.as_str() {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => bail!("invalid duration \"{s}\""),
        };
    }
    if !num.is_empty() {
        bail!("invalid duration \"{s}\": missing unit");
    }
    Ok(Some(Duration::from_secs_f64(total)))
}

/// The application's current charm. Reads the model: never call it inside
/// `Store::update` (use [`app_charm_in`] there).
pub(super) fn app_charm(store: &Store, app: &str) -> Result<Charm> {
    app_charm_in(&store.read()?, store, app)
}

/// [`app_charm`] for a model already in hand.
pub(super) fn app_charm_in(m: &Model, store: &Store, app: &str) -> Result<Charm> {
    Ok(Charm::load(&deploy::charm_dir_of(m, store, app))?)
}

pub(super) fn check_format(format: Option<&str>, allowed: &[&str]) -> Result<()> {
    match format {
        Some(f) if !allowed.contains(&f) => {
            bail!("invalid value \"{f}\" for option --format: unknown format \"{f}\"")
        }
        _ => Ok(()),
    }
}

/// Prints a document as YAML (the default) or JSON.
pub(super) fn print_doc(v: &Value, format: Option<&str>) -> Result<()> {
    if format == Some("json") {
        println!("{v}");
    } else {
        print!("{}", serde_yaml::to_string(v)?);
    }
    Ok(())
}
