//! One unit's agent: a detached `juju-sim agent UNIT` process that loops
//! over the unit's share of the model's queue, like Juju's uniter.
//!
//! What it takes next, under the model lock: a pending action (once the
//! unit is installed; actions run even while a hook is in error, as
//! Juju's do), else the retry of a failed hook when its back-off has passed
//! (5 s doubling to 5 min, from `retry_base_ms`), else the unit's next
//! queued hook, else update-status when it is due. Where Juju leaves the
//! order open (two `-relation-changed` hooks for different remote units or
//! relations) and for a small delay before each hook, it draws from an RNG
//! seeded by the model's seed and the unit's name. The hook runs under the
//! machine lock with a fresh set of pending writes, committed when it exits
//! 0 and dropped otherwise. The agent exits when its unit is gone (it runs
//! the unit's final removal step itself) or the model is destroyed. A
//! flock on `agent.lock` keeps it the only agent of its unit.

use super::pending::{commit, Pending};
use super::runner::{capture_paths, hook_timeout, log_line, now_ms, status, Agent, Ctx};
use crate::model::{Model, Op, Store, FINALIZE_REMOVE};
use crate::util::now_secs;
use anyhow::{Context, Result};
use fs2::FileExt;
use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The longest back-off between retries of a failed hook (Juju: 5 min).
const MAX_BACKOFF_MS: u64 = 300_000;

/// While the model is being destroyed, each stop/remove hook gets this long.
const DYING_HOOK_TIMEOUT: Duration = Duration::from_secs(30);

/// What the agent does next.
enum Step {
    Exit,
    Idle,
    Hook(Op),
    Action(u64),
    Finalize,
}

/// The back-off before retry number `failures` (1 = first retry).
pub fn backoff_ms(base: u64, failures: u32) -> u64 {
    let base = if base == 0 { 5_000 } else { base };
    let shift = failures.saturating_sub(1).min(16);
    base.saturating_mul(1 << shift).min(MAX_BACKOFF_MS)
}

/// Whether `unit` has anything to do at `now_ms` (a cheap read-only check).
fn has_work(m: &Model, unit: &str, now: u64) -> bool {
    let Some(u) = m.units.get(unit) else {
        return true; // exit
    };
    if u.installed
        && m.actions
            .values()
            .any(|a| a.unit == unit && a.status == "pending")
    {
        return true;
    }
    if u.failed.is_some() {
        return !m.dying && now >= u.retry_at;
    }
    m.queue.iter().any(|o| o.unit == unit)
        || (u.started && !m.dying && now / 1000 >= u.next_update_status)
}

/// Picks and claims the next step for `unit` (under the model lock).
fn pick(m: &mut Model, unit: &str, now: u64, rng: &mut fastrand::Rng) -> Step {
    let interval = m.update_status_secs.max(1);
    let dying = m.dying;
    let Some(u) = m.units.get(unit) else {
        return Step::Exit;
    };
    if u.installed {
        let next_action = m
            .actions
            .values()
            .filter(|a| a.unit == unit && a.status == "pending")
            .map(|a| a.id)
            .min();
        if let Some(id) = next_action {
            if let Some(a) = m.actions.get_mut(&id) {
                a.status = "running".into();
                a.started = Some(now_secs());
            }
            if let Some(u) = m.units.get_mut(unit) {
                u.running_action = Some(id);
                u.agent = "executing".into();
            }
            return Step::Action(id);
        }
    }
    if let Some(failed) = u.failed.clone() {
        if dying || now < u.retry_at {
            return Step::Idle;
        }
        if let Some(u) = m.units.get_mut(unit) {
            u.running = Some(failed.clone());
            u.agent = "executing".into();
        }
        return Step::Hook(failed);
    }
    let mine: Vec<usize> = m
        .queue
        .iter()
        .enumerate()
        .filter(|(_, o)| o.unit == unit)
        .map(|(i, _)| i)
        .take(2)
        .collect();
    let Some(&first) = mine.first() else {
        if u.started && !dying && now / 1000 >= u.next_update_status {
            m.next_op += 1;
            let mut op = Op::hook(unit, "update-status");
            op.seq = m.next_op;
            if let Some(u) = m.units.get_mut(unit) {
                u.next_update_status = now / 1000 + interval;
                u.running = Some(op.clone());
                u.agent = "executing".into();
            }
            return Step::Hook(op);
        }
        return Step::Idle;
    };
    // Juju does not order relation-changed hooks of different remote units
    // or relations among themselves: let the seed choose.
    let idx = match mine.get(1) {
        Some(&second) => {
            let (a, b) = (&m.queue[first], &m.queue[second]);
            let free = a.hook.ends_with("-relation-changed")
                && b.hook.ends_with("-relation-changed")
                && (a.relation != b.relation || a.remote_unit != b.remote_unit);
            if free && rng.bool() {
                second
            } else {
                first
            }
        }
        None => first,
    };
    let Some(op) = m.queue.remove(idx) else {
        return Step::Idle;
    };
    if op.hook == FINALIZE_REMOVE {
        return Step::Finalize;
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
    if let Some(u) = m.units.get_mut(unit) {
        u.running = Some(op.clone());
        u.agent = "executing".into();
        if op.hook == "install" {
            u.workload = status("maintenance", "installing charm software");
        }
    }
    Step::Hook(op)
}

/// A cheap fingerprint of model.json: changes whenever it is rewritten.
fn stamp(store: &Store) -> Option<(u64, i64, i64)> {
    let md = fs::metadata(store.home().join("model.json")).ok()?;
    Some((md.ino(), md.mtime(), md.mtime_nsec()))
}

/// The agent process's main loop for `unit`.
pub fn run(store: Store, unit: &str) -> Result<()> {
    let udir = store.unit_dir(unit);
    let lock_path = udir.join("agent.lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("cannot open {}", lock_path.display()))?;
    if FileExt::try_lock_exclusive(&lock).is_err() {
        return Ok(()); // another agent already runs this unit
    }
    let _ = fs::write(udir.join("agent.pid"), std::process::id().to_string());
    recover(&store, unit)?;
    let seed = store.read()?.seed ^ crate::util::fnv(unit.as_bytes());
    let mut rng = fastrand::Rng::with_seed(seed);
    let agent = Agent::new(store.clone(), false);
    let mut last = None;
    let mut next_check = 0u64;
    loop {
        if !store.home().is_dir() || !udir.is_dir() {
            return Ok(());
        }
        let now = now_ms();
        let st = stamp(&store);
        if st == last && now < next_check {
            std::thread::sleep(Duration::from_millis(40));
            continue;
        }
        last = st;
        // Timers (retries, update-status) are checked at least every 0.5 s.
        next_check = now + 500;
        let Ok(m) = store.read() else {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        if !has_work(&m, unit, now) {
            continue;
        }
        let step = match store.update(|m| -> Result<Step> { Ok(pick(m, unit, now, &mut rng)) }) {
            Ok(s) => s,
            Err(_) if !store.home().is_dir() => return Ok(()),
            Err(e) => {
                log_line(&store, unit, "ERROR", &format!("juju.worker.uniter {e:#}"));
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
        };
        let dying = m.dying;
        let max_delay = m.max_delay_ms;
        match step {
            Step::Exit => return Ok(()),
            Step::Idle => {}
            Step::Finalize => {
                agent.finalize_remove(unit)?;
                return Ok(());
            }
            Step::Hook(op) => {
                if max_delay > 0 {
                    std::thread::sleep(Duration::from_millis(rng.u64(0..=max_delay)));
                }
                let timeout = if dying {
                    DYING_HOOK_TIMEOUT
                } else {
                    hook_timeout()
                };
                if let Err(e) = run_hook(&agent, &m, &op, timeout) {
                    log_line(&store, unit, "ERROR", &format!("juju.worker.uniter {e:#}"));
                }
            }
            Step::Action(id) => {
                if let Err(e) = run_action(&agent, &m, unit, id) {
                    log_line(&store, unit, "ERROR", &format!("juju.worker.uniter {e:#}"));
                }
            }
        }
        last = None;
    }
}

/// A restarted agent (the previous one died mid-way): the hook it was
/// running is run again first, as Juju's uniter re-runs an interrupted
/// hook; the action it was running is failed; uncommitted writes are lost.
fn recover(store: &Store, unit: &str) -> Result<()> {
    store.update(|m| -> Result<()> {
        let Some(u) = m.units.get_mut(unit) else {
            return Ok(());
        };
        u.pending = Pending::default();
        u.agent = "idle".into();
        let hook = u.running.take();
        let action = u.running_action.take();
        if let Some(op) = hook {
            if u.failed.as_ref() != Some(&op) {
                m.queue.push_front(op);
            }
        }
        if let Some(a) = action.and_then(|id| m.actions.get_mut(&id)) {
            a.status = "failed".into();
            a.message = Some("the unit agent was restarted while the action ran".into());
            a.completed = Some(now_secs());
        }
        Ok(())
    })
}

/// Before `upgrade-charm`, under the machine lock: when the application's
/// charm has moved on (`refresh`), the unit's charm directory is replaced
/// by the new revision, as Juju's uniter deploys the charm before the hook.
fn deploy_new_charm(store: &Store, unit: &str) -> Result<()> {
    let m = store.read()?;
    let Some(u) = m.units.get(unit) else {
        return Ok(());
    };
    let Some(app) = m.applications.get(&u.app) else {
        return Ok(());
    };
    if u.charm_revision >= app.revision || app.charm_dir.as_os_str().is_empty() {
        return Ok(());
    }
    let (src, revision) = (app.charm_dir.clone(), app.revision);
    drop(m);
    let udir = store.unit_dir(unit);
    let (new, old) = (udir.join("charm.new"), udir.join("charm.old"));
    let _ = fs::remove_dir_all(&new);
    let _ = fs::remove_dir_all(&old);
    crate::util::copy_tree(&src, &new)
        .with_context(|| format!("cannot copy charm revision {revision} for {unit}"))?;
    fs::rename(udir.join("charm"), &old).context("cannot move the old charm aside")?;
    fs::rename(&new, udir.join("charm")).context("cannot put the new charm in place")?;
    let _ = fs::remove_dir_all(&old);
    store.update(|m| -> Result<()> {
        if let Some(u) = m.units.get_mut(unit) {
            u.charm_revision = revision;
        }
        Ok(())
    })?;
    log_line(
        store,
        unit,
        "INFO",
        &format!("juju.worker.uniter upgraded the charm to revision {revision}"),
    );
    Ok(())
}

/// Runs one hook under the machine lock, then commits or drops its writes
/// and records the outcome (error state and back-off on failure).
fn run_hook(agent: &Agent, m: &Model, op: &Op, timeout: Duration) -> Result<()> {
    let store = &agent.store;
    let unit = op.unit.as_str();
    let machine = m
        .units
        .get(unit)
        .map(|u| u.machine.clone())
        .unwrap_or_default();
    let _machine = super::lock::acquire(store, &machine)?;
    if op.hook == "upgrade-charm" {
        deploy_new_charm(store, unit)?;
    }
    let context = format!("{unit}-hook-{}-{}", op.seq, now_ms());
    store.update(|m| -> Result<()> {
        if let Some(u) = m.units.get_mut(unit) {
            u.pending = Pending::new(&context);
        }
        Ok(())
    })?;
    let mut env = agent.env(unit, &Ctx::Hook(op))?;
    env.push(("JUJU_SIM_CONTEXT".into(), context.clone()));
    env.push(("JUJU_CONTEXT_ID".into(), context.clone()));
    let retry = m.units.get(unit).is_some_and(|u| u.failed.is_some());
    log_line(
        store,
        unit,
        "INFO",
        &format!(
            "juju.worker.uniter {} \"{}\" hook",
            if retry { "retrying" } else { "running" },
            op.hook
        ),
    );
    let code = agent.run_dispatch(unit, &format!("hooks/{}", op.hook), &env, timeout, None)?;
    log_line(
        store,
        unit,
        if code == 0 { "INFO" } else { "ERROR" },
        &format!(
            "juju.worker.uniter.operation ran \"{}\" hook (exit status {code})",
            op.hook
        ),
    );
    store.update(|m| -> Result<()> {
        let interval = m.update_status_secs.max(1);
        let base = m.retry_base_ms;
        let Some(u) = m.units.get_mut(unit) else {
            return Ok(());
        };
        let pending = std::mem::take(&mut u.pending);
        u.running = None;
        u.agent = "idle".into();
        if code == 0 {
            u.failed = None;
            u.failures = 0;
            if op.hook == "install" {
                u.installed = true;
                if u.workload.message == "installing charm software" {
                    u.workload = status("unknown", "");
                }
            }
            if op.hook == "start" && !u.started {
                u.started = true;
                u.next_update_status = now_secs() + interval;
            }
            if pending.context == context {
                commit(m, unit, pending);
            }
        } else {
            u.failed = Some(op.clone());
            u.failures += 1;
            u.retry_at = now_ms() + backoff_ms(base, u.failures);
        }
        Ok(())
    })?;
    Ok(())
}

/// Runs one action under the machine lock; its stdout and stderr are kept.
fn run_action(agent: &Agent, m: &Model, unit: &str, id: u64) -> Result<()> {
    let store = &agent.store;
    let Some(action) = m.actions.get(&id).cloned() else {
        return Ok(());
    };
    let machine = m
        .units
        .get(unit)
        .map(|u| u.machine.clone())
        .unwrap_or_default();
    let _machine = super::lock::acquire(store, &machine)?;
    let context = format!("{unit}-action-{id}");
    store.update(|m| -> Result<()> {
        if let Some(u) = m.units.get_mut(unit) {
            u.pending = Pending::new(&context);
        }
        Ok(())
    })?;
    log_line(
        store,
        unit,
        "INFO",
        &format!(
            "juju.worker.uniter running action \"{}\" (id {id})",
            action.name
        ),
    );
    let mut env = agent.env(
        unit,
        &Ctx::Action {
            name: &action.name,
            id,
        },
    )?;
    env.extend(action.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    env.push(("JUJU_SIM_CONTEXT".into(), context.clone()));
    env.push(("JUJU_CONTEXT_ID".into(), context.clone()));
    let udir = store.unit_dir(unit);
    let (out, err) = capture_paths(&udir, id);
    let code = agent.run_dispatch(
        unit,
        &format!("actions/{}", action.name),
        &env,
        hook_timeout(),
        Some((&out, &err)),
    )?;
    let read = |p: &std::path::Path| {
        let bytes = fs::read(p).unwrap_or_default();
        let _ = fs::remove_file(p);
        String::from_utf8_lossy(&bytes).into_owned()
    };
    let (stdout, stderr) = (read(&out), read(&err));
    log_line(
        store,
        unit,
        "INFO",
        &format!(
            "juju.worker.uniter ran action \"{}\" (id {id}, exit status {code})",
            action.name
        ),
    );
    store.update(|m| -> Result<()> {
        let pending = m
            .units
            .get_mut(unit)
            .map(|u| {
                u.running_action = None;
                u.agent = "idle".into();
                std::mem::take(&mut u.pending)
            })
            .unwrap_or_default();
        if code == 0 && pending.context == context {
            commit(m, unit, pending);
        }
        if let Some(a) = m.actions.get_mut(&id) {
            a.code = Some(code);
            a.completed = Some(now_secs());
            a.stdout = stdout;
            a.stderr = stderr;
            if a.failed_by_charm {
                a.status = "failed".into();
            } else if code != 0 {
                a.status = "failed".into();
                a.message = Some(format!("exit status {code}"));
            } else {
                a.status = "completed".into();
            }
        }
        Ok(())
    })?;
    Ok(())
}

/// Starts `unit`'s agent, detached, with the model's base environment.
pub fn spawn(store: &Store, unit: &str, base_env: &BTreeMap<String, String>) -> Result<()> {
    let exe = std::env::current_exe().context("cannot find juju-sim's own executable")?;
    let udir = store.unit_dir(unit);
    let errlog = OpenOptions::new()
        .create(true)
        .append(true)
        .open(udir.join("agent.err"))
        .with_context(|| format!("cannot open {}", udir.join("agent.err").display()))?;
    let mut cmd = Command::new(exe);
    cmd.arg("agent")
        .arg(unit)
        .env_clear()
        .envs(base_env)
        .env("JUJU_SIM_HOME", store.home())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(errlog)
        .process_group(0);
    cmd.spawn()
        .with_context(|| format!("cannot start the agent of {unit}"))?;
    Ok(())
}

/// Whether `unit`'s agent runs (it holds its agent.lock).
pub fn alive(store: &Store, unit: &str) -> bool {
    let path = store.unit_dir(unit).join("agent.lock");
    let Ok(f) = OpenOptions::new().write(true).open(path) else {
        return false;
    };
    if FileExt::try_lock_exclusive(&f).is_ok() {
        let _ = FileExt::unlock(&f);
        return false;
    }
    true
}

/// Starts the agent of every unit that has none (a new unit, or one whose
/// agent died), as Juju's machine agent restarts a unit agent.
pub fn ensure_all(store: &Store) -> Result<()> {
    let m = store.read()?;
    if m.dying {
        return Ok(());
    }
    for unit in m.units.keys() {
        if store.unit_dir(unit).is_dir() && !alive(store, unit) {
            spawn(store, unit, &m.base_env)?;
        }
    }
    Ok(())
}

/// Kills every agent of the model (destroy-model; the hooks they run are
/// killed separately through their markers).
pub fn kill_all(store: &Store) -> usize {
    let mut n = 0;
    if let Ok(rd) = fs::read_dir(store.home().join("units")) {
        for e in rd.flatten() {
            n += kill_agent_dir(&e.path());
        }
    }
    n
}

/// Kills the agent whose unit directory is `udir`, if it runs.
pub fn kill_agent_dir(udir: &std::path::Path) -> usize {
    let Ok(text) = fs::read_to_string(udir.join("agent.pid")) else {
        return 0;
    };
    let Ok(pid) = text.trim().parse::<libc::pid_t>() else {
        return 0;
    };
    if pid <= 1 {
        return 0;
    }
    // Only if that process still holds the agent lock: the pid may have
    // been reused since the agent exited.
    let held = OpenOptions::new()
        .write(true)
        .open(udir.join("agent.lock"))
        .map(|f| {
            let free = FileExt::try_lock_exclusive(&f).is_ok();
            if free {
                let _ = FileExt::unlock(&f);
            }
            !free
        })
        .unwrap_or(false);
    if !held {
        return 0;
    }
    // SAFETY: kill(2) on the agent process we started.
    let killed = unsafe { libc::kill(pid, libc::SIGKILL) } == 0;
    // Wait until the lock is released (the agent is gone).
    for _ in 0..100 {
        let Ok(f) = OpenOptions::new().write(true).open(udir.join("agent.lock")) else {
            break;
        };
        if FileExt::try_lock_exclusive(&f).is_ok() {
            let _ = FileExt::unlock(&f);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    usize::from(killed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_cap() {
        assert_eq!(backoff_ms(5000, 1), 5000);
        assert_eq!(backoff_ms(5000, 2), 10_000);
        assert_eq!(backoff_ms(5000, 3), 20_000);
        assert_eq!(backoff_ms(5000, 30), MAX_BACKOFF_MS);
    }
}
