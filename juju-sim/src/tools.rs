//! Juju's hook tools, as run inside a hook or action (the binary invoked
//! under a tool's name). Each tool reads its context from the environment
//! the agent set (`JUJU_SIM_HOME`, `JUJU_UNIT_NAME`, `JUJU_RELATION_ID`,
//! `JUJU_REMOTE_UNIT`, `JUJU_ACTION_UUID`, `JUJU_SIM_CONTEXT`, …) and reads
//! or changes model.json under its lock. As in Juju, `relation-set`,
//! `open-port`/`close-port` and the `secret-*` writes are pending until the
//! hook exits 0 (see `uniter::pending`); `leader-set` and `status-set` take
//! effect at once (leader-set queues leader-settings-changed). A tool run
//! with a context that has ended fails; one run with no `JUJU_SIM_CONTEXT`
//! at all (a test driving the tools directly) commits at once. Tools the
//! model's Juju version lacks (`secret-*` on 2.9) fail like a missing
//! command (exit 127). Errors print `ERROR <message>` and exit 1; usage
//! errors exit 2. Output follows Juju: `--format=json` prints JSON, the
//! default ("smart") prints strings bare and maps as YAML.

use crate::charm::{insert_dotted, Charm};
use crate::model::{Model, Op, Status, Store, StoreError};
use crate::uniter::pending::{self, Pending, RelationSet, SecretChange, SecretDraft};
use crate::util::{now_secs, rfc3339, split_kv};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// The names the binary answers to as a hook tool.
pub const TOOL_NAMES: &[&str] = &[
    "action-get",
    "action-set",
    "action-fail",
    "action-log",
    "status-set",
    "status-get",
    "application-version-set",
    "config-get",
    "is-leader",
    "leader-get",
    "leader-set",
    "relation-ids",
    "relation-list",
    "relation-get",
    "relation-set",
    "resource-get",
    "network-get",
    "open-port",
    "close-port",
    "opened-ports",
    "juju-log",
    "secret-add",
    "secret-get",
    "secret-set",
    "secret-ids",
    "secret-remove",
    "secret-grant",
    "secret-revoke",
    "secret-info-get",
    "goal-state",
];

/// A hook tool failure.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Failed(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn failed<T>(msg: impl Into<String>) -> Result<T, ToolError> {
    Err(ToolError::Failed(msg.into()))
}

/// Parsed flags, options and positional arguments.
#[derive(Default)]
struct Args {
    flags: BTreeSet<String>,
    opts: BTreeMap<String, String>,
    pos: Vec<String>,
}

impl Args {
    fn flag(&self, f: &str) -> bool {
        self.flags.contains(f)
    }
    fn opt(&self, o: &str) -> Option<&str> {
        self.opts.get(o).map(String::as_str)
    }
    fn json(&self) -> bool {
        self.opt("format") == Some("json")
    }
}

/// Parses gnuflag-style arguments. `flags` and `opts` name the long forms
/// (without dashes); `aliases` maps short forms to long ones.
fn parse(
    args: &[String],
    flags: &[&str],
    opts: &[&str],
    aliases: &[(&str, &str)],
) -> Result<Args, ToolError> {
    let mut out = Args::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--" {
            out.pos.extend(it.by_ref().cloned());
            break;
        }
        if a.len() > 1 && a.starts_with('-') {
            let body = a.trim_start_matches('-');
            let (name, inline) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (body, None),
            };
            let name = aliases
                .iter()
                .find(|(s, _)| *s == name)
                .map(|(_, l)| *l)
                .unwrap_or(name);
            if flags.contains(&name) {
                // gnuflag bool flags take `--flag=true|false` too.
                match inline.as_deref() {
                    None | Some("true" | "True" | "TRUE" | "t" | "T" | "1") => {
                        out.flags.insert(name.to_string());
                    }
                    Some("false" | "False" | "FALSE" | "f" | "F" | "0") => {
                        out.flags.remove(name);
                    }
                    Some(v) => {
                        return Err(ToolError::Usage(format!(
                            "invalid boolean value \"{v}\" for -{name}: parse error"
                        )))
                    }
                }
            } else if opts.contains(&name) {
                let v = match inline {
                    Some(v) => v,
                    None => it
                        .next()
                        .cloned()
                        .ok_or_else(|| ToolError::Usage(format!("flag needs an argument: {a}")))?,
                };
                if name == "format" && !["json", "yaml", "smart"].contains(&v.as_str()) {
                    return Err(ToolError::Usage(format!(
                        "invalid value \"{v}\" for flag --format: unknown format \"{v}\""
                    )));
                }
                out.opts.insert(name.to_string(), v);
            } else {
                return Err(ToolError::Usage(format!(
                    "flag provided but not defined: {a}"
                )));
            }
        } else {
            out.pos.push(a.clone());
        }
    }
    Ok(out)
}

/// Prints a value in the requested format.
fn emit(v: &Value, a: &Args) {
    match a.opt("format") {
        Some("json") => println!("{v}"),
        Some("yaml") => print!("{}", serde_yaml::to_string(v).unwrap_or_default()),
        _ => match v {
            Value::Null => {}
            Value::String(s) => println!("{s}"),
            Value::Bool(b) => println!("{}", if *b { "True" } else { "False" }),
            Value::Number(n) => println!("{n}"),
            Value::Array(items) => {
                for i in items {
                    match i {
                        Value::String(s) => println!("{s}"),
                        other => println!("{other}"),
                    }
                }
            }
            other => print!("{}", serde_yaml::to_string(other).unwrap_or_default()),
        },
    }
}

/// The hook context from the environment.
struct Ctx {
    store: Store,
    unit: String,
    app: String,
    /// `JUJU_SIM_CONTEXT`: the hook, action or exec this tool runs in.
    context: Option<String>,
}

impl Ctx {
    fn from_env() -> Result<Ctx, ToolError> {
        let home = std::env::var_os("JUJU_SIM_HOME").ok_or_else(|| {
            ToolError::Failed(
                "JUJU_SIM_HOME is not set: hook tools run only inside a juju-sim hook".into(),
            )
        })?;
        let unit = std::env::var("JUJU_UNIT_NAME")
            .ok()
            .filter(|u| crate::util::parse_unit(u).is_some())
            .ok_or_else(|| {
                ToolError::Failed(
                    "JUJU_UNIT_NAME is not set: hook tools run only inside a juju-sim hook".into(),
                )
            })?;
        if home.is_empty() {
            return failed("JUJU_SIM_HOME is not set: hook tools run only inside a juju-sim hook");
        }
        let app = unit.split('/').next().unwrap_or("").to_string();
        Ok(Ctx {
            store: Store::new(PathBuf::from(home)),
            unit,
            app,
            context: std::env::var("JUJU_SIM_CONTEXT")
                .ok()
                .filter(|c| !c.is_empty()),
        })
    }

    /// Records a held-back write: into this context's pending writes, or
    /// (no context: a test driving the tools directly) committed at once.
    fn record(&self, m: &mut Model, f: impl FnOnce(&mut Pending)) -> Result<(), ToolError> {
        match &self.context {
            None => {
                let mut p = Pending::default();
                f(&mut p);
                pending::commit(m, &self.unit, p);
                Ok(())
            }
            Some(c) => {
                let u = m
                    .units
                    .get_mut(&self.unit)
                    .ok_or_else(|| ToolError::Failed(format!("unit {} not found", self.unit)))?;
                if u.pending.context != *c {
                    return failed(format!(
                        "the hook context {c} has ended: hook tools work only while their hook, action or exec command runs"
                    ));
                }
                f(&mut u.pending);
                Ok(())
            }
        }
    }

    /// This context's pending writes, if it is still running.
    fn pending<'a>(&self, m: &'a Model) -> Option<&'a Pending> {
        let c = self.context.as_ref()?;
        m.units
            .get(&self.unit)
            .map(|u| &u.pending)
            .filter(|p| p.context == *c)
    }

    fn charm(&self) -> Result<Charm, ToolError> {
        Charm::load(&self.store.unit_dir(&self.unit).join("charm"))
            .map_err(|e| ToolError::Failed(e.to_string()))
    }

    fn action_id(&self) -> Result<u64, ToolError> {
        std::env::var("JUJU_ACTION_UUID")
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| ToolError::Failed("not running an action".into()))
    }

    fn relation_id(&self, a: &Args, m: &Model) -> Result<String, ToolError> {
        let id = match a.opt("relation") {
            Some(r) => r.to_string(),
            None => std::env::var("JUJU_RELATION_ID")
                .ok()
                .filter(|s| !s.is_empty())
                .ok_or_else(|| ToolError::Failed("no relation id specified".into()))?,
        };
        // Accept a bare number as Juju does; each side names the relation
        // with its own endpoint.
        match m.relation_key(&id, &self.app) {
            Some(key) => Ok(key),
            None => failed(format!(
                "invalid value \"{id}\" for option -r: relation not found"
            )),
        }
    }
}

/// Runs the tool `name` with `args`; returns the exit code.
pub fn main(name: &str, args: &[String]) -> i32 {
    if let Ok(ctx) = Ctx::from_env() {
        if let Ok(m) = ctx.store.read() {
            if !crate::profile::Profile::of(&m.version).has_tool(name) {
                // Juju 2.9 has no such tool: the shell cannot find it.
                eprintln!("{name}: command not found");
                return 127;
            }
        }
    }
    match run(name, args) {
        Ok(()) => 0,
        Err(ToolError::Usage(m)) => {
            eprintln!("ERROR {m}");
            2
        }
        Err(e) => {
            eprintln!("ERROR {e}");
            1
        }
    }
}

const F: &[&str] = &["format"];
const R: (&str, &str) = ("r", "relation");

fn run(name: &str, args: &[String]) -> Result<(), ToolError> {
    let ctx = Ctx::from_env()?;
    match name {
        "secret-info-get" => secret_info_get(&ctx, &parse(args, &[], &["format", "label"], &[])?),
        "secret-grant" => secret_grant(&ctx, &parse(args, &[], &["relation", "unit"], &[R])?, true),
        "secret-revoke" => secret_grant(
            &ctx,
            &parse(args, &[], &["relation", "unit", "app"], &[R])?,
            false,
        ),
        "goal-state" => goal_state(&ctx, &parse(args, &[], F, &[])?),
        "action-get" => action_get(&ctx, &parse(args, &[], F, &[])?),
        "action-set" => action_set(&ctx, &parse(args, &[], &[], &[])?),
        "action-fail" => action_fail(&ctx, &parse(args, &[], &[], &[])?),
        "action-log" => action_log(&ctx, &parse(args, &[], &[], &[])?),
        "status-set" => status_set(&ctx, &parse(args, &["application"], &[], &[])?),
        "status-get" => status_get(
            &ctx,
            &parse(args, &["application", "include-data"], F, &[])?,
        ),
        "application-version-set" => version_set(&ctx, &parse(args, &[], &[], &[])?),
        "config-get" => config_get(&ctx, &parse(args, &["all"], F, &[("a", "all")])?),
        "is-leader" => {
            let a = parse(args, &[], F, &[])?;
            emit(&Value::Bool(ctx.store.read()?.is_leader(&ctx.unit)), &a);
            Ok(())
        }
        "leader-get" => leader_get(&ctx, &parse(args, &[], F, &[])?),
        "leader-set" => leader_set(&ctx, &parse(args, &[], &[], &[])?),
        "relation-ids" => relation_ids(&ctx, &parse(args, &[], F, &[])?),
        "relation-list" => {
            relation_list(&ctx, &parse(args, &["app"], &["format", "relation"], &[R])?)
        }
        "relation-get" => {
            relation_get(&ctx, &parse(args, &["app"], &["format", "relation"], &[R])?)
        }
        "relation-set" => relation_set(
            &ctx,
            &parse(args, &["app"], &["format", "relation", "file"], &[R])?,
        ),
        "resource-get" => resource_get(&ctx, &parse(args, &[], &[], &[])?),
        "network-get" => network_get(
            &ctx,
            &parse(
                args,
                &[
                    "primary-address",
                    "bind-address",
                    "ingress-address",
                    "egress-subnets",
                ],
                &["format", "relation"],
                &[R],
            )?,
        ),
        "open-port" | "close-port" => ports(
            &ctx,
            name == "open-port",
            &parse(args, &[], &["endpoints", "format"], &[])?,
        ),
        "opened-ports" => {
            let a = parse(args, &["endpoints"], F, &[])?;
            let m = ctx.store.read()?;
            let mut ports = m
                .units
                .get(&ctx.unit)
                .map(|u| u.ports.clone())
                .unwrap_or_default();
            for (open, p) in ctx.pending(&m).map(|p| p.ports.clone()).unwrap_or_default() {
                if open {
                    ports.insert(p);
                } else {
                    ports.remove(&p);
                }
            }
            let p: Vec<Value> = ports.into_iter().map(Value::from).collect();
            emit(&Value::Array(p), &a);
            Ok(())
        }
        "juju-log" => juju_log(
            &ctx,
            &parse(
                args,
                &["debug"],
                &["log-level", "format"],
                &[("l", "log-level")],
            )?,
        ),
        "secret-add" => secret_add(
            &ctx,
            &parse(
                args,
                &[],
                &["label", "owner", "description", "expire", "rotate"],
                &[],
            )?,
        ),
        "secret-get" => secret_get(
            &ctx,
            &parse(args, &["refresh", "peek"], &["format", "label"], &[])?,
        ),
        "secret-set" => secret_set(
            &ctx,
            &parse(
                args,
                &[],
                &["label", "description", "expire", "rotate", "owner"],
                &[],
            )?,
        ),
        "secret-ids" => {
            let a = parse(args, &[], F, &[])?;
            let m = ctx.store.read()?;
            let mut ids: Vec<Value> = m
                .secrets
                .values()
                .filter(|s| owns(&ctx, &s.owner_kind, &s.owner))
                .map(|s| Value::from(format!("secret:{}", s.id)))
                .collect();
            if let Some(p) = ctx.pending(&m) {
                for c in &p.secrets {
                    if let SecretChange::Add { secret } = c {
                        ids.push(Value::from(format!("secret:{}", secret.id)));
                    }
                }
            }
            emit(&Value::Array(ids), &a);
            Ok(())
        }
        "secret-remove" => secret_remove(&ctx, &parse(args, &[], &["revision"], &[])?),
        other => failed(format!("unknown hook tool \"{other}\"")),
    }
}

fn action_get(ctx: &Ctx, a: &Args) -> Result<(), ToolError> {
    let id = ctx.action_id()?;
    let m = ctx.store.read()?;
    let act = m
        .actions
        .get(&id)
        .ok_or_else(|| ToolError::Failed("not running an action".into()))?;
    let mut v = act.params.clone();
    if let Some(key) = a.pos.first() {
        for seg in key.split('.') {
            v = v.get(seg).cloned().unwrap_or(Value::Null);
        }
    }
    emit(&v, a);
    Ok(())
}

/// Juju's action key rule: `^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$` per segment.
fn valid_segment(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty()
        && b.first().is_some_and(alnum)
        && b.last().is_some_and(alnum)
        && b.iter().all(|c| alnum(c) || *c == b'-')
}

fn action_set(ctx: &Ctx, a: &Args) -> Result<(), ToolError> {
    let id = ctx.action_id()?;
    if a.pos.is_empty() {
        return Err(ToolError::Usage("no action results specified".into()));
    }
    let mut pairs = Vec::new();
    for arg in &a.pos {
        let Some((k, v)) = split_kv(arg) else {
            return failed(format!(
                "argument \"{arg}\" must be of the form key...=value"
            ));
        };
        if !k.split('.').all(valid_segment) {
            return failed(format!(
                "key \"{k}\" must start and end with lowercase alphanumeric, and contain only lowercase alphanumeric, hyphens and periods"
            ));
        }
        let top = k.split('.').next().unwrap_or(k);
        if ["stdout", "stderr", "stdout-encoding", "stderr-encoding"].contains(&top) {
            return failed(format!("cannot set reserved action key \"{top}\""));
        }
        pairs.push((k.to_string(), v.to_string()));
    }
    ctx.store.update(|m| -> Result<(), ToolError> {
        let act = m
            .actions
            .get_mut(&id)
            .ok_or_else(|| ToolError::Failed("not running an action".into()))?;
        // Like Juju's addValueToMap: the later key wins, a value replaces a
        // map and a map replaces a value.
        for (k, v) in pairs {
            insert_dotted(&mut act.results, &k, Value::String(v));
        }
        Ok(())
    })
}

fn action_fail(ctx: &Ctx, a: &Args) -> Result<(), ToolError> {
    let id = ctx.action_id()?;
    let msg = if a.pos.is_empty() {
        "action failed without reason given".to_string()
    } else {
        a.pos.join(" ")
    };
    ctx.store.update(|m| -> Result<(), ToolError> {
        let act = m
            .actions
            .get_mut(&id)
            .ok_or_else(|| ToolError::Failed("not running an action".into()))?;
        act.failed_by_charm = true;
        act.message = Some(msg);
        Ok(())
    })
}

fn action_log(ctx: &Ctx, a: &Args) -> Result<(), ToolError> {
    let id = ctx.action_id()?;
    let msg = a.pos.join(" ");
    ctx.store.update(|m| -> Result<(), ToolError> {
        let act = m
            .actions
            .get_mut(&id)
            .ok_or_else(|| ToolError::Failed("not running an action".into()))?;
        act.log.push((now_secs(), msg.clone()));
        Ok(())
    })?;
    crate::uniter::log_line(&ctx.store, &ctx.unit, "INFO", &format!("action-log: {msg}"));
    Ok(())
}

fn status_set(ctx: &Ctx, a: &Args) -> Result<(), ToolError> {
    let Some((st, rest)) = a.pos.split_first() else {
        return Err(ToolError::Usage(
            "invalid args, require <status> [message] [data]".into(),
        ));
    };
    if !["maintenance", "blocked", "waiting", "active"].contains(&st.as_str()) {
        return failed(format!(
            "invalid status \"{st}\", expected one of [maintenance blocked waiting active]"
        ));
    }
    let status = Status {
        current: st.clone(),
        message: rest.join(" "),
        since: rfc3339(now_secs()),
    };
    ctx.store.update(|m| -> Result<(), ToolError> {
        if a.flag("application") {
            if !m.is_leader(&ctx.unit) {
                return failed("this unit is not the leader");
            }
            if let Some(app) = m.applications.get_mut(&ctx.app) {
                app.status = Some(status);
            }
        } else if let Some(u) = m.units.get_mut(&ctx.unit) {
            u.workload = status;
        }
        Ok(())
    })
}

fn status_get(ctx: &Ctx, a: &Args) -> Result<(), ToolError> {
    let m = ctx.store.read()?;
    let st = if a.flag("application") {
        if !m.is_leader(&ctx.unit) {
            return failed("finding application status: this unit is not the leader");
        }
        m.applications
            .get(&ctx.app)
            .and_then(|x| x.status.clone())
            .unwrap_or_else(|| Status {
                current: "unknown".into(),
                ..Status::default()
            })
    } else {
        m.units
            .get(&ctx.unit)
            .map(|u| u.workload.clone())
            .unwrap_or_default()
    };
    let v = json!({"message": st.message, "status": st.current, "status-data": {}});
    if a.json() || a.flag("include-data") || a.opt("format") == Some("yaml") {
        emit(&v, a);
    } else {
        println!("{}", st.current);
    }
    Ok(())
}

fn version_set(ctx: &Ctx, a: &Args) -> Result<(), ToolError> {
    let [v] = a.pos.as_slice() else {
        return Err(ToolError::Usage(
            "application-version-set requires exactly one version".into(),
        ));
    };
    ctx.store.update(|m| -> Result<(), ToolError> {
        if let Some(app) = m.applications.get_mut(&ctx.app) {
            app.version = v.clone();
        }
        Ok(())
    })
}

fn config_get(ctx: &Ctx, a: &Args) -> Result<(), ToolError> {
    if a.flag("all") && !a.pos.is_empty() {
        return Err(ToolError::Usage(
            "cannot use argument --all together with key".into(),
        ));
    }
    let m = ctx.store.read()?;
    let user = m
        .applications
        .get(&ctx.app)
        .map(|x| x.config.clone())
        .unwrap_or_default();
    let mut cfg = ctx.charm()?.effective_config(&user);
    if let Some(k) = a.pos.first() {
        emit(&cfg.get(k).cloned().unwrap_or(Value::Null), a);
        return Ok(());
    }
    if !a.flag("all") {
        cfg.retain(|_, v| !v.is_null());
    }
    emit(&Value::Object(cfg), a);
    Ok(())
}

fn leader_get(ctx: &Ctx, a: &Args) -> Result<(), ToolError> {
    let m = ctx.store.read()?;
    let settings = m
        .applications
        .get(&ctx.app)
        .map(|x| x.leader_settings.clone())
        .unwrap_or_default();
    match a.pos.first().map(String::as_str) {
        None | Some("-") => emit(&json!(settings), a),
        Some(k) => emit(
            &settings.get(k).cloned().map_or(Value::Null, Value::from),
            a,
        ),
    }
    Ok(())
}

fn parse_pairs(pos: &[String]) -> Result<Vec<(String, String)>, ToolError> {
    pos.iter()
        .map(|p| {
            split_kv(p)
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| ToolError::Failed(format!("expected \"key=value\", got \"{p}\"")))
        })
        .collect()
}

fn apply(bag: &mut BTreeMap<String, String>, pairs: &[(String, String)]) -> bool {
    let before = bag.clone();
    for (k, v) in pairs {
        if v.is_empty() {
            bag.remove(k);
        } else {
            bag.insert(k.clone(), v.clone());
        }
    }
    *bag != before
}

fn leader_set(ctx: &Ctx, a: &Args) -> Result<(), ToolError> {
    let pairs = parse_pairs(&a.pos)?;
    ctx.store.update(|m| -> Result<(), ToolError> {
        if !m.is_leader(&ctx.unit) {
            return failed(
                "cannot write leadership settings: cannot write settings: not the leader",
            );
        }
        let others: Vec<String> = m
            .live_units(&ctx.app)
            .into_iter()
            .filter(|u| *u != ctx.unit)
            .collect();
        let Some(app) = m.applications.get_mut(&ctx.app) else {
            return failed("application not found");
        };
        if apply(&mut app.leader_settings, &pairs) {
            for u in others {
                m.push(Op::hook(&u, "leader-settings-changed"));
            }
        }
        Ok(())
    })
}

fn relation_ids(ctx: &Ctx, a: &Args) -> Result<(), ToolError> {
    let name = match a.pos.first() {
        Some(n) => n.clone(),
        None => std::env::var("JUJU_RELATION")
            .ok()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ToolError::Usage("no endpoint name specified".into()))?,
    };
    let m = ctx.store.read()?;
    let ids: Vec<Value> = m
        .app_relations(&ctx.app)
        .into_iter()
        .filter(|id| {
            m.relations
                .get(id)
                .is_some_and(|r| r.endpoint_of(&ctx.app) == name)
        })
        .map(|id| Value::from(m.relation_id_for(&id, &ctx.app)))
        .collect();
    emit(&Value::Array(ids), a);
    Ok(())
}

fn relation_list(ctx: &Ctx, a: &Args) -> Result<(), ToolError> {
    let m = ctx.store.read()?;
    let id = ctx.relation_id(a, &m)?;
    let rel = &m.relations[&id];
    if a.flag("app") {
        emit(&Value::from(rel.other_app(&ctx.app).to_string()), a);
        return Ok(());
    }
    let mut units: Vec<(u32, String)> = rel
        .views
        .get(&ctx.unit)
        .map(|v| {
            v.iter()
                .map(|u| {
                    (
                        crate::util::parse_unit(u).map(|x| x.1).unwrap_or(0),
                        u.clone(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    units.sort();
    emit(
        &Value::Array(units.into_iter().map(|(_, u)| Value::from(u)).collect()),
        a,
    );
    Ok(())
}

fn relation_get(ctx: &Ctx, a: &Args) -> Result<(), ToolError> {
    let m = ctx.store.read()?;
    let id = ctx.relation_id(a, &m)?;
    let rel = &m.relations[&id];
    let key = a.pos.first().cloned().unwrap_or_else(|| "-".into());
    let target = match a.pos.get(1) {
        Some(t) => t.clone(),
        None => {
            let var = if a.flag("app") {
                "JUJU_REMOTE_APP"
            } else {
                "JUJU_REMOTE_UNIT"
            };
            std::env::var(var)
                .ok()
                .filter(|s| !s.is_empty())
                .ok_or_else(|| ToolError::Failed("no unit or application specified".into()))?
        }
    };
    let bag = if a.flag("app") || !target.contains('/') {
        if target != rel.other_app(&ctx.app) && target != ctx.app {
            return failed(format!(
                "permission denied: cannot read application \"{target}\" settings"
            ));
        }
        let mut bag = rel.app_data.get(&target).cloned().unwrap_or_default();
        if target == ctx.app {
            if let Some(p) = ctx.pending(&m) {
                p.overlay(&id, true, &mut bag);
            }
        }
        bag
    } else {
        let known =
            target == ctx.unit || m.units.get(&target).is_some_and(|u| rel.involves(&u.app));
        if !known {
            return failed(format!(
                "cannot read settings for unit \"{target}\" in relation \"{id}\": unit not found"
            ));
        }
        let mut bag = rel.unit_data.get(&target).cloned().unwrap_or_default();
        if target == ctx.unit {
            // A hook reads back its own writes before they are committed.
            if let Some(p) = ctx.pending(&m) {
                p.overlay(&id, false, &mut bag);
            }
        }
        bag
    };
    if key == "-" {
        emit(&json!(bag), a);
    } else {
        // A missing key is nil in Juju: `null` in JSON, nothing otherwise.
        emit(&bag.get(&key).cloned().map_or(Value::Null, Value::from), a);
    }
    Ok(())
}

fn yaml_pairs(text: &str) -> Result<Vec<(String, String)>, ToolError> {
    let v: Value = serde_yaml::from_str(text)
        .map_err(|e| ToolError::Failed(format!("cannot parse settings: {e}")))?;
    let Value::Object(map) = v else {
        if v.is_null() {
            return Ok(Vec::new());
        }
        return failed("expected a YAML map of settings");
    };
    Ok(map
        .into_iter()
        .map(|(k, v)| {
            let s = match v {
                Value::String(s) => s,
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (k, s)
        })
        .collect())
}

fn relation_set(ctx: &Ctx, a: &Args) -> Result<(), ToolError> {
    let mut pairs = Vec::new();
    if let Some(f) = a.opt("file") {
        let text = if f == "-" {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                .map_err(|e| ToolError::Failed(format!("cannot read stdin: {e}")))?;
            s
        } else {
            std::fs::read_to_string(f)
                .map_err(|e| ToolError::Failed(format!("cannot read {f}: {e}")))?
        };
        pairs.extend(yaml_pairs(&text)?);
    }
    pairs.extend(parse_pairs(&a.pos)?);
    ctx.store.update(|m| -> Result<(), ToolError> {
        let id = ctx.relation_id(a, m)?;
        if !m.relations.contains_key(&id) {
            return failed(format!("relation {id} not found"));
        }
        if a.flag("app") && !m.is_leader(&ctx.unit) {
            return failed(format!(
                "cannot write relation settings: cannot write application settings for relation \"{id}\": this unit is not the leader"
            ));
        }
        ctx.record(m, |p| {
            p.relation_sets.push(RelationSet {
                relation: id.clone(),
                app: a.flag("app"),
                pairs,
            })
        })
    })
}

fn resource_get(ctx: &Ctx, a: &Args) -> Result<(), ToolError> {
    let [name] = a.pos.as_slice() else {
        return Err(ToolError::Usage(
            "resource-get requires exactly one resource name".into(),
        ));
    };
    let charm = ctx.charm()?;
    let Some((_, filename)) = charm.resources().into_iter().find(|(n, _)| n == name) else {
        return failed(format!(
            "could not download resource: resource \"{name}\" not found in metadata.yaml"
        ));
    };
    // An injected fault fails the download the way a controller or network
    // fault does, not the way a missing upload does.
    let faulted = ctx.store.update(|m| -> Result<bool, ToolError> {
        let hit = m.faults.iter_mut().find(|f| {
            f.tool == "resource-get"
                && f.count > 0
                && (f.target == ctx.unit || f.target == ctx.app)
                && (f.resource == *name || f.resource.is_empty())
        });
        Ok(match hit {
            Some(f) => {
                f.count -= 1;
                true
            }
            None => false,
        })
    })?;
    if faulted {
        return failed(format!(
            "could not download resource: HTTP request failed: Get https://10.140.0.1:17070/model/{}/units/unit-{}/resources/{name}: dial tcp 10.140.0.1:17070: connect: connection refused",
            ctx.store.read()?.uuid,
            crate::util::unit_slug(&ctx.unit)
        ));
    }
    let m = ctx.store.read()?;
    let Some(stored) = m
        .applications
        .get(&ctx.app)
        .and_then(|x| x.resources.get(name))
        .cloned()
    else {
        return failed(format!(
            "could not download resource: HTTP request failed: Get https://juju-sim/units/unit-{}/resources/{name}: resource#{}/{name} not found",
            crate::util::unit_slug(&ctx.unit),
            ctx.app
        ));
    };
    let unit_path = format!(
        "/var/lib/juju/agents/unit-{}/resources/{name}/{filename}",
        crate::util::unit_slug(&ctx.unit)
    );
    let local = ctx
        .store
        .unit_dir(&ctx.unit)
        .join("root")
        .join(unit_path.trim_start_matches('/'));
    if let Some(parent) = local.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| ToolError::Failed(format!("cannot create {}: {e}", parent.display())))?;
    }
    std::fs::copy(&stored, &local)
        .map_err(|e| ToolError::Failed(format!("could not download resource: {e}")))?;
    println!("{unit_path}");
    Ok(())
}

fn network_get(ctx: &Ctx, a: &Args) -> Result<(), ToolError> {
    let Some(ep) = a.pos.first() else {
        return Err(ToolError::Usage("no arguments specified".into()));
    };
    let charm = ctx.charm()?;
    if !charm.endpoints().contains(ep) {
        return failed(format!("no network config found for binding \"{ep}\""));
    }
    let m = ctx.store.read()?;
    let addr = m
        .units
        .get(&ctx.unit)
        .map(|u| u.address.clone())
        .unwrap_or_default();
    let cidr = format!("{addr}/32");
    if a.flag("primary-address") || a.flag("bind-address") {
        emit(&Value::from(addr), a);
        return Ok(());
    }
    if a.flag("ingress-address") {
        emit(&json!([addr]), a);
        return Ok(());
    }
    if a.flag("egress-subnets") {
        emit(&json!([cidr]), a);
        return Ok(());
    }
    let v = json!({
        "bind-addresses": [{
            "mac-address": "",
            "interface-name": "lo",
            "addresses": [{"hostname": "", "value": addr, "cidr": cidr, "address": addr}],
            "macaddress": "",
            "interfacename": "lo"
        }],
        "egress-subnets": [cidr],
        "ingress-addresses": [addr]
    });
    emit(&v, a);
    Ok(())
}

fn ports(ctx: &Ctx, open: bool, a: &Args) -> Result<(), ToolError> {
    let [spec] = a.pos.as_slice() else {
        return Err(ToolError::Usage(
            "expected exactly one port or range".into(),
        ));
    };
    let (range, proto) = match spec.split_once('/') {
        Some((r, p)) => (r.to_string(), p.to_lowercase()),
        None if spec == "icmp" => (String::new(), "icmp".to_string()),
        None => (spec.clone(), "tcp".to_string()),
    };
    if !["tcp", "udp", "icmp"].contains(&proto.as_str())
        || (proto != "icmp"
            && !range
                .split('-')
                .all(|p| p.parse::<u16>().is_ok_and(|n| n > 0)))
    {
        return failed(format!("invalid port \"{spec}\""));
    }
    let norm = if proto == "icmp" {
        "icmp".to_string()
    } else {
        format!("{range}/{proto}")
    };
    ctx.store
        .update(|m| -> Result<(), ToolError> { ctx.record(m, |p| p.ports.push((open, norm))) })
}

fn juju_log(ctx: &Ctx, a: &Args) -> Result<(), ToolError> {
    let level = if a.flag("debug") {
        "DEBUG".to_string()
    } else {
        a.opt("log-level").unwrap_or("INFO").to_uppercase()
    };
    crate::uniter::log_line(
        &ctx.store,
        &ctx.unit,
        &level,
        &format!("juju-log: {}", a.pos.join(" ")),
    );
    Ok(())
}

fn owns(ctx: &Ctx, kind: &str, owner: &str) -> bool {
    if kind == "unit" {
        owner == ctx.unit
    } else {
        owner == ctx.app
    }
}

fn valid_secret_key(k: &str) -> bool {
    // ^[a-z](?:-?[a-z0-9]){2,}$
    let b = k.as_bytes();
    if !b.first().is_some_and(u8::is_ascii_lowercase) {
        return false;
    }
    let mut groups = 0;
    let mut i = 1;
    while i < b.len() {
        if b[i] == b'-' {
            i += 1;
        }
        match b.get(i) {
            Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit() => groups += 1,
            _ => return false,
        }
        i += 1;
    }
    groups >= 2
}

fn secret_content(pos: &[String]) -> Result<BTreeMap<String, String>, ToolError> {
    let mut out = BTreeMap::new();
    for p in pos {
        let Some((k, v)) = split_kv(p) else {
            return failed(format!("invalid key value \"{p}\""));
        };
        let (key, value) = if let Some(key) = k.strip_suffix("#file") {
            let s = std::fs::read_to_string(v)
                .map_err(|e| ToolError::Failed(format!("cannot read {v}: {e}")))?;
            (key.to_string(), s)
        } else if let Some(key) = k.strip_suffix("#base64") {
            (key.to_string(), v.to_string())
        } else {
            (k.to_string(), v.to_string())
        };
        if !valid_secret_key(&key) {
            return failed(format!("invalid key \"{key}\""));
        }
        out.insert(key, value);
    }
    if out.is_empty() {
        return Err(ToolError::Usage("missing secret value".into()));
    }
    Ok(out)
}

fn new_secret_id(m: &Model) -> String {
    const ALPHA: &[u8] = b"0123456789abcdefghijklmnopqrstuv";
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let seed = format!(
        "{}{}{}{}",
        m.uuid,
        m.secrets.len(),
        nanos,
        std::process::id()
    );
    let mut h = crate::util::fnv(seed.as_bytes());
    let mut h2 = crate::util::fnv(format!("{seed}x").as_bytes());
    (0..20)
        .map(|i| {
            let src = if i < 12 { &mut h } else { &mut h2 };
            let c = ALPHA[(*src & 31) as usize] as char;
            *src >>= 5;
            c
        })
        .collect()
}

/// A secret as this context sees it: committed, or created in this
/// context (pending).
struct SecretView {
    id: String,
    kind: String,
    owner: String,
    label: Option<String>,
    description: Option<String>,
    /// Committed revisions (empty for a secret created in this context).
    revisions: Vec<BTreeMap<String, String>>,
    grants: BTreeSet<String>,
    /// Created in this context, not committed yet.
    draft: bool,
}

fn secret_id_of(uri: &str) -> String {
    uri.trim_start_matches("secret:")
        .trim_start_matches("//")
        .rsplit('/')
        .next()
        .unwrap_or(uri)
        .to_string()
}

/// Finds a secret by URI or label (owned, or granted to this unit or its
/// application); a secret created in this context counts only with
/// `with_drafts` (Juju: `--peek`/`--refresh` or the owner's own tools).
fn find_secret(
    ctx: &Ctx,
    m: &Model,
    uri: Option<&str>,
    label: Option<&str>,
    with_drafts: bool,
) -> Result<SecretView, ToolError> {
    let pending = ctx.pending(m);
    let draft_view = |d: &SecretDraft| SecretView {
        id: d.id.clone(),
        kind: d.owner_kind.clone(),
        owner: d.owner.clone(),
        label: d.label.clone(),
        description: d.description.clone(),
        revisions: Vec::new(),
        grants: BTreeSet::new(),
        draft: true,
    };
    let committed = |s: &crate::model::Secret| SecretView {
        id: s.id.clone(),
        kind: s.owner_kind.clone(),
        owner: s.owner.clone(),
        label: s.label.clone(),
        description: s.description.clone(),
        revisions: s.revisions.clone(),
        grants: s.grants.clone(),
        draft: false,
    };
    let visible = |v: &SecretView| {
        owns(ctx, &v.kind, &v.owner) || v.grants.contains(&ctx.app) || v.grants.contains(&ctx.unit)
    };
    let found = match (uri, label) {
        (Some(u), _) => {
            let id = secret_id_of(u);
            m.secrets.get(&id).map(committed).or_else(|| {
                pending
                    .filter(|_| with_drafts)
                    .and_then(|p| p.draft(&id))
                    .map(draft_view)
            })
        }
        (None, Some(l)) => m
            .secrets
            .values()
            .find(|s| s.label.as_deref() == Some(l) && owns(ctx, &s.owner_kind, &s.owner))
            .map(committed)
            .or_else(|| {
                pending
                    .filter(|_| with_drafts)
                    .and_then(|p| p.draft_by_label(l))
                    .map(draft_view)
            }),
        (None, None) => {
            return Err(ToolError::Usage(
                "require either a secret URI or label".into(),
            ))
        }
    };
    let shown = uri.map_or_else(
        || format!("with label \"{}\"", label.unwrap_or("")),
        |u| format!("\"{u}\""),
    );
    match found {
        Some(v) if visible(&v) => Ok(v),
        _ => failed(format!("secret {shown} not found")),
    }
}

/// Only the owner manages a secret: its unit, or the leader for an
/// application-owned one.
fn check_manage(ctx: &Ctx, m: &Model, v: &SecretView) -> Result<(), ToolError> {
    if !owns(ctx, &v.kind, &v.owner) {
        return failed(format!(
            "permission denied: secret:{} is not owned by {}",
            v.id, ctx.unit
        ));
    }
    if v.kind == "application" && !m.is_leader(&ctx.unit) {
        return failed("this unit is not the leader");
    }
    Ok(())
}

fn secret_add(ctx: &Ctx, a: &Args) -> Result<(), ToolError> {
    let content = secret_content(&a.pos)?;
    let kind = a.opt("owner").unwrap_or("application").to_string();
    if kind != "application" && kind != "unit" {
        return Err(ToolError::Usage(format!(
            "invalid value \"{kind}\" for --owner"
        )));
    }
    let id = ctx.store.update(|m| -> Result<String, ToolError> {
        if kind == "application" && !m.is_leader(&ctx.unit) {
            return failed("this unit is not the leader");
        }
        let id = new_secret_id(m);
        let draft = SecretDraft {
            id: id.clone(),
            owner_kind: kind.clone(),
            owner: if kind == "unit" {
                ctx.unit.clone()
            } else {
                ctx.app.clone()
            },
            label: a.opt("label").map(str::to_string),
            description: a.opt("description").map(str::to_string),
            content,
        };
        ctx.record(m, |p| p.secrets.push(SecretChange::Add { secret: draft }))?;
        Ok(id)
    })?;
    println!("secret:{id}");
    Ok(())
}

fn secret_get(ctx: &Ctx, a: &Args) -> Result<(), ToolError> {
    let m = ctx.store.read()?;
    let latest = a.flag("peek") || a.flag("refresh");
    let v = find_secret(
        ctx,
        &m,
        a.pos.first().map(String::as_str),
        a.opt("label"),
        latest,
    )?;
    // A plain secret-get returns the last committed revision; only
    // --peek/--refresh see what this hook has set but not committed.
    let pending = if latest {
        ctx.pending(&m).and_then(|p| p.secret_content(&v.id))
    } else {
        None
    };
    let content = pending
        .or_else(|| v.revisions.last().cloned())
        .unwrap_or_default();
    match a.pos.get(1) {
        Some(k) => emit(&Value::from(content.get(k).cloned().unwrap_or_default()), a),
        None => emit(&json!(content), a),
    }
    Ok(())
}

fn secret_set(ctx: &Ctx, a: &Args) -> Result<(), ToolError> {
    let (uri, rest) = match a.pos.split_first() {
        Some((u, r)) if u.starts_with("secret:") || a.opt("label").is_none() => {
            (Some(u.as_str()), r)
        }
        _ => (None, a.pos.as_slice()),
    };
    if uri.is_none() && a.opt("label").is_none() {
        return Err(ToolError::Usage("missing secret URI".into()));
    }
    let content = if rest.is_empty() {
        None
    } else {
        Some(secret_content(rest)?)
    };
    ctx.store.update(|m| -> Result<(), ToolError> {
        let v = find_secret(
            ctx,
            m,
            uri,
            if uri.is_some() { None } else { a.opt("label") },
            true,
        )?;
        check_manage(ctx, m, &v)?;
        let change = SecretChange::Set {
            id: v.id.clone(),
            content,
            label: if uri.is_some() {
                a.opt("label").map(str::to_string)
            } else {
                None
            },
            description: a.opt("description").map(str::to_string),
        };
        ctx.record(m, |p| p.secrets.push(change))
    })
}

fn secret_remove(ctx: &Ctx, a: &Args) -> Result<(), ToolError> {
    let Some(uri) = a.pos.first() else {
        return Err(ToolError::Usage("missing secret URI".into()));
    };
    let revision = match a.opt("revision") {
        None => None,
        Some(r) => Some(r.parse::<usize>().map_err(|_| {
            ToolError::Usage(format!("invalid value \"{r}\" for option --revision"))
        })?),
    };
    ctx.store.update(|m| -> Result<(), ToolError> {
        let v = find_secret(ctx, m, Some(uri), None, true)?;
        check_manage(ctx, m, &v)?;
        ctx.record(m, |p| {
            p.secrets.push(SecretChange::Remove {
                id: v.id.clone(),
                revision,
            })
        })
    })
}

/// `secret-grant URI -r REL [--unit U]` / `secret-revoke URI [-r REL]
/// [--app A] [--unit U]`: read access for the other side of a relation.
fn secret_grant(ctx: &Ctx, a: &Args, grant: bool) -> Result<(), ToolError> {
    let Some(uri) = a.pos.first() else {
        return Err(ToolError::Usage("missing secret URI".into()));
    };
    ctx.store.update(|m| -> Result<(), ToolError> {
        let v = find_secret(ctx, m, Some(uri), None, true)?;
        check_manage(ctx, m, &v)?;
        let who = if let Some(u) = a.opt("unit") {
            u.to_string()
        } else if let Some(app) = a.opt("app") {
            app.to_string()
        } else if a.opt("relation").is_some() {
            let key = ctx.relation_id(a, m)?;
            m.relations
                .get(&key)
                .map(|r| r.other_app(&ctx.app).to_string())
                .ok_or_else(|| ToolError::Failed(format!("relation {key} not found")))?
        } else {
            return Err(ToolError::Usage("missing relation or application".into()));
        };
        let id = v.id.clone();
        ctx.record(m, |p| {
            p.secrets.push(if grant {
                SecretChange::Grant { id, to: who }
            } else {
                SecretChange::Revoke { id, from: who }
            })
        })
    })
}

/// `secret-info-get URI|--label L`: metadata of a secret this unit owns.
fn secret_info_get(ctx: &Ctx, a: &Args) -> Result<(), ToolError> {
    let m = ctx.store.read()?;
    let v = find_secret(
        ctx,
        &m,
        a.pos.first().map(String::as_str),
        a.opt("label"),
        true,
    )?;
    if !owns(ctx, &v.kind, &v.owner) {
        return failed(format!("secret \"secret:{}\" not found", v.id));
    }
    let mut info = serde_json::Map::new();
    info.insert("revision".into(), Value::from(v.revisions.len().max(1)));
    if let Some(l) = &v.label {
        info.insert("label".into(), Value::from(l.clone()));
    }
    if let Some(d) = &v.description {
        info.insert("description".into(), Value::from(d.clone()));
    }
    info.insert("owner".into(), Value::from(v.kind.clone()));
    info.insert("rotation".into(), Value::from("never"));
    let _ = v.draft;
    emit(&json!({ v.id.clone(): info }), a);
    Ok(())
}

/// `goal-state`: the units of this application and, per relation
/// endpoint, the remote units and application, as Juju reports them.
fn goal_state(ctx: &Ctx, a: &Args) -> Result<(), ToolError> {
    let m = ctx.store.read()?;
    let since = rfc3339(now_secs());
    let entry =
        |dying: bool| json!({"status": if dying { "dying" } else { "active" }, "since": since});
    let mut units = serde_json::Map::new();
    for u in m.app_units(&ctx.app) {
        let dying = m.units.get(&u).is_some_and(|x| x.dying);
        units.insert(u, entry(dying));
    }
    let mut relations = serde_json::Map::new();
    for key in m.app_relations(&ctx.app) {
        let Some(r) = m.relations.get(&key) else {
            continue;
        };
        let ep = r.endpoint_of(&ctx.app).to_string();
        let other = r.other_app(&ctx.app).to_string();
        let bag = relations.entry(ep).or_insert_with(|| json!({}));
        if let Some(obj) = bag.as_object_mut() {
            for u in m.app_units(&other) {
                if u != ctx.unit {
                    let dying = m.units.get(&u).is_some_and(|x| x.dying);
                    obj.insert(
                        u,
                        json!({"status": if dying { "dying" } else { "joined" }, "since": since}),
                    );
                }
            }
            if other != ctx.app {
                obj.insert(other, json!({"status": "joined", "since": since}));
            }
        }
    }
    emit(&json!({"units": units, "relations": relations}), a);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments() {
        assert!(valid_segment("a"));
        assert!(valid_segment("a-b9"));
        assert!(!valid_segment("Foo"));
        assert!(!valid_segment("-a"));
        assert!(!valid_segment(""));
    }

    #[test]
    fn secret_keys() {
        assert!(valid_secret_key("abc"));
        assert!(valid_secret_key("ca-cert"));
        assert!(!valid_secret_key("ab"));
        assert!(!valid_secret_key("a--b"));
        assert!(!valid_secret_key("abc-"));
    }
}
