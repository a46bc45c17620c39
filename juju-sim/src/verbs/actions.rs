//! Actions: `run-action` and `show-action-output` (Juju 2.9's verbs: queue,
//! then look), `run` (Juju 3: queue and wait, 60 s by default), their
//! output shapes, and parameter validation against `actions.yaml`. The
//! unit's agent runs the action; these verbs only queue and watch it.

use super::*;

/// What the operator asked to run.
pub(super) struct ActionRequest<'a> {
    pub(super) unit: &'a str,
    pub(super) action: &'a str,
    pub(super) args: &'a [String],
    pub(super) file: Option<&'a Path>,
    pub(super) string_args: bool,
}

/// `APP/leader` → the leader's unit name; other names unchanged.
pub(super) fn resolve_target(m: &Model, unit: &str) -> Result<String> {
    match unit.strip_suffix("/leader") {
        Some(app) => m
            .applications
            .get(app)
            .ok_or_else(|| anyhow!("application \"{app}\" not found"))?
            .leader
            .clone()
            .ok_or_else(|| anyhow!("application \"{app}\" has no leader")),
        None => Ok(unit.to_string()),
    }
}

/// Validates the parameters and queues the action; returns its id and
/// the unit it runs on.
fn enqueue(agent: &Agent, req: &ActionRequest) -> Result<(u64, String)> {
    let unit = resolve_target(&agent.store.read()?, req.unit)?;
    let (app, _) = parse_unit(&unit).ok_or_else(|| anyhow!("invalid unit name \"{unit}\""))?;
    if !agent.store.read()?.units.contains_key(&unit) {
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
    let charm = app_charm(&agent.store, &app)?;
    let params = charm.action_params(&unit, req.action, req.args, file, req.string_args)?;
    let id = agent.store.update(|m| -> Result<u64> {
        if !m.units.contains_key(&unit) {
            bail!("unit \"{unit}\" not found");
        }
        let env = env_diff(m);
        m.next_action += 1;
        let id = m.next_action;
        m.actions.insert(
            id,
            Action {
                id,
                unit: unit.clone(),
                name: req.action.to_string(),
                params,
                status: "pending".into(),
                enqueued: now_secs(),
                env,
                ..Default::default()
            },
        );
        Ok(id)
    })?;
    kick(agent)?;
    Ok((id, unit))
}

/// Waits until the action has finished or `limit` passes (`None`: no
/// limit); returns it and whether it finished.
fn wait_for_action(agent: &Agent, id: u64, limit: Option<Duration>) -> Result<(Action, bool)> {
    let deadline = limit.map(|l| std::time::Instant::now() + l);
    loop {
        let m = agent.store.read()?;
        let a = m
            .actions
            .get(&id)
            .cloned()
            .ok_or_else(|| anyhow!("id \"{id}\" not found"))?;
        let done = a.status != "pending" && a.status != "running";
        if done || deadline.is_some_and(|d| std::time::Instant::now() > d) {
            return Ok((a, done));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A `--wait` value: empty or 0 waits without limit, a negative one not at all.
fn wait_limit(wait: &str) -> Result<Option<Option<Duration>>> {
    if wait.trim().is_empty() {
        return Ok(Some(None));
    }
    Ok(match parse_duration(wait)? {
        None => None,
        Some(d) if d.is_zero() => Some(None),
        Some(d) => Some(Some(d)),
    })
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

/// The Juju 2.9 `show-action-output` document: results only once the
/// action has finished, with `Stdout`/`Stderr` when it printed anything
/// and `ReturnCode` only when it is non-zero (2.9's formatter).
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
    if let Some(code) = a.code {
        let mut results = a.results.clone();
        if !a.stdout.is_empty() {
            results.insert("Stdout".into(), Value::from(a.stdout.clone()));
        }
        if !a.stderr.is_empty() {
            results.insert("Stderr".into(), Value::from(a.stderr.clone()));
        }
        if code != 0 {
            results.insert("ReturnCode".into(), Value::from(code));
        }
        m.insert("results".into(), Value::Object(results));
    }
    m.insert("status".into(), Value::from(a.status.clone()));
    m.insert("timing".into(), timing(a));
    Value::Object(m)
}

/// The Juju 3 task document (`run --format json|yaml`, `show-task`):
/// results carry `return-code`, and `stdout`/`stderr` when not empty.
pub(super) fn task_doc(a: &Action) -> Value {
    let mut task = Map::new();
    task.insert("id".into(), Value::from(a.id.to_string()));
    if let Some(log) = log_lines(a) {
        task.insert("log".into(), log);
    }
    if let Some(msg) = &a.message {
        task.insert("message".into(), Value::from(msg.clone()));
    }
    if let Some(code) = a.code {
        let mut results = a.results.clone();
        results.insert("return-code".into(), Value::from(code));
        if !a.stdout.is_empty() {
            results.insert("stdout".into(), Value::from(a.stdout.clone()));
        }
        if !a.stderr.is_empty() {
            results.insert("stderr".into(), Value::from(a.stderr.clone()));
        }
        task.insert("results".into(), Value::Object(results));
    }
    task.insert("status".into(), Value::from(a.status.clone()));
    task.insert("timing".into(), timing(a));
    task.insert("unit".into(), Value::from(a.unit.clone()));
    Value::Object(task)
}

/// `run-action UNIT ACTION [K=V…] [--wait[=D]]` (Juju 2.9): queues the
/// action and prints its id at once; with `--wait`, waits and prints the
/// outcome under the `unit-APP-N` key. Exits 0 also when the action failed.
pub(super) fn run_action(
    agent: &Agent,
    req: &ActionRequest,
    wait: Option<&str>,
    format: Option<&str>,
) -> Result<i32> {
    let (id, unit) = enqueue(agent, req)?;
    let Some(wait) = wait else {
        println!("Action queued with id: \"{id}\"");
        return Ok(0);
    };
    let Some(limit) = wait_limit(wait)? else {
        println!("Action queued with id: \"{id}\"");
        return Ok(0);
    };
    let (a, done) = wait_for_action(agent, id, limit)?;
    let mut out = Map::new();
    out.insert(
        format!("unit-{}", crate::util::unit_slug(&unit)),
        action_yaml(&a),
    );
    print_doc(&Value::Object(out), format)?;
    if !done {
        bail!("timed out waiting for results from: action {id}");
    }
    Ok(0)
}

/// `show-action-output ID` (Juju 2.9): the action's state now, or with `--wait D` once it has finished.
pub(super) fn show_action_output(
    agent: &Agent,
    id: &str,
    wait: Option<&str>,
    format: Option<&str>,
) -> Result<i32> {
    check_format(format, &["yaml", "json", "plain"])?;
    let id: u64 = id
        .trim()
        .trim_matches(|c| c == '"' || c == '\'')
        .parse()
        .map_err(|_| anyhow!("id \"{id}\" not found"))?;
    let limit = match wait {
        None => Some(Duration::ZERO),
        Some(w) => wait_limit(w)?.unwrap_or(Some(Duration::ZERO)),
    };
    let (a, done) = wait_for_action(agent, id, limit)?;
    print_doc(&action_yaml(&a), format)?;
    if !done && limit.is_some_and(|l| !l.is_zero()) {
        bail!("timed out waiting for results from: action {id}");
    }
    Ok(0)
}

/// `show-task ID` (also `show-operation`): the task as it is now (while
/// pending or running: its status, no results), as Juju 3 prints it
/// (cmd/juju/action/showtask.go): `plain` prints the results as `run`
/// does, `yaml`/`json` the task document (the shape `run --format
/// yaml|json` prints per task, not keyed). With `--wait D` it waits for the
/// task to finish (0 or empty: no limit) and fails if it has not by then.
pub(super) fn show_task(agent: &Agent, id: &str, wait: Option<&str>, format: &str) -> Result<i32> {
    check_format(Some(format), &["yaml", "json", "plain"])?;
    let id: u64 = id
        .trim()
        .trim_matches(|c| c == '"' || c == '\'')
        .parse()
        .map_err(|_| anyhow!("task \"{id}\" not found"))?;
    let limit = match wait {
        None => Some(Duration::ZERO),
        Some(w) => wait_limit(w)?.unwrap_or(Some(Duration::ZERO)),
    };
    let (a, done) = wait_for_action(agent, id, limit)?;
    if !done && limit.is_some_and(|l| !l.is_zero()) {
        bail!("timed out waiting for results from: task {id}");
    }
    if format == "plain" {
        print_plain(&a)?;
    } else {
        print_doc(&task_doc(&a), Some(format))?;
    }
    Ok(0)
}

/// Juju 3's `run`: queues the task and waits (60 s unless `--wait=D`) for
/// it, then prints it in `format` (`plain`: the results map as YAML;
/// `yaml`/`json`: the task keyed by unit). A timeout fails while the task
/// carries on; `--background` prints the ids and returns at once. (On
/// Juju 2.9, `run` runs commands: `transfer::run_commands`.)
pub(super) fn run3(
    agent: &Agent,
    req: &ActionRequest,
    format: &str,
    background: bool,
    wait: Option<&str>,
) -> Result<i32> {
    let limit = match wait {
        None => Some(Duration::from_secs(60)),
        Some(w) => wait_limit(w)?.unwrap_or(Some(Duration::ZERO)),
    };
    let (id, unit) = enqueue(agent, req)?;
    if background {
        eprintln!("Scheduled operation {id} with task {id}");
        eprintln!("Check operation status with 'juju show-operation {id}'");
        eprintln!("Check task status with 'juju show-task {id}'");
        return Ok(0);
    }
    eprintln!(
        "Running operation {id} with 1 task\n  - task {id} on unit-{}\n",
        crate::util::unit_slug(&unit)
    );
    eprintln!("Waiting for task {id}...");
    let (a, done) = wait_for_action(agent, id, limit)?;
    if !done {
        bail!(
            "timed out waiting for results from: unit {unit}\n(the task carries on: juju show-task {id})"
        );
    }
    for (t, msg) in &a.log {
        eprintln!("{} {msg}", juju_time(*t));
    }
    if format == "plain" {
        print_plain(&a)?;
    } else {
        let mut out = Map::new();
        out.insert(unit.clone(), task_doc(&a));
        print_doc(&Value::Object(out), Some(format))?;
    }
    // Juju's CLI fails the verb on the task's return code (the dispatch
    // process's exit code), not on its status (runCommandBase.waitForTasks:
    // "resultExitCode < 1" passes): an action that ran `action-fail` and
    // exited 0 is printed as failed, and the verb exits 0.
    if let Some(code) = a.code.filter(|c| *c >= 1) {
        eprintln!(
            "ERROR the following task failed:\n - id \"{id}\" with return code {code}\n\nuse 'juju show-task' to inspect the failure"
        );
        return Ok(1);
    }
    Ok(0)
}

/// A task in Juju 3's `plain` format: why it failed, its results without
/// the return code and output, then what the action printed.
fn print_plain(a: &Action) -> Result<()> {
    {
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
                "Action id {} failed: {}",
                a.id,
                a.message.clone().unwrap_or_default()
            );
        }
        if !shown.is_empty() {
            print!("{}", serde_yaml::to_string(&Value::Object(shown))?);
        }
        if !a.stdout.is_empty() {
            print!("{}", a.stdout);
        }
    }
    Ok(())
}
