//! The model as a whole: `destroy-model`, `upgrade-model`, and the test
//! extras `wait-idle`, `run-hook` and `resolved`.

use super::*;

/// A unit whose hook has failed this many times in a row counts as settled
/// for `wait-idle` (Juju keeps retrying it with back-off).
const SETTLED_FAILURES: u32 = 3;

/// What keeps the model busy, and the units in error that have settled.
fn idle_state(m: &Model) -> (Vec<String>, Vec<String>) {
    let mut busy = Vec::new();
    let mut errors = Vec::new();
    for (name, u) in &m.units {
        if let Some(op) = &u.running {
            busy.push(format!("{name} (running the \"{}\" hook)", op.hook));
        } else if let Some(id) = u.running_action {
            busy.push(format!("{name} (running action {id})"));
        } else if let Some(f) = &u.failed {
            if u.failures >= SETTLED_FAILURES || m.dying {
                errors.push(format!(
                    "{name} is in error: hook failed: \"{}\" ({} attempts; Juju keeps retrying it; fix the cause or run juju-sim resolved {name})",
                    f.hook, u.failures
                ));
            } else {
                busy.push(format!("{name} (retrying the \"{}\" hook)", f.hook));
            }
        } else if let Some(op) = m.queue.iter().find(|o| o.unit == *name) {
            busy.push(format!("{name} (\"{}\" queued)", op.hook));
        } else if u.installed
            && m.actions
                .values()
                .any(|a| a.unit == *name && a.status == "pending")
        {
            busy.push(format!("{name} (an action queued)"));
        }
    }
    (busy, errors)
}

/// `wait-idle [--timeout D]`: returns once no unit has anything queued or
/// running. Exits 3 (listing them) when units are left in error, and
/// fails after the timeout naming what is still busy.
pub(super) fn wait_idle(agent: &Agent, timeout: &str) -> Result<i32> {
    let limit = parse_duration(timeout)?.unwrap_or(Duration::ZERO);
    let start = std::time::Instant::now();
    let mut last_kick = start;
    kick(agent)?;
    loop {
        let m = agent.store.read()?;
        let (busy, errors) = idle_state(&m);
        if busy.is_empty() {
            if errors.is_empty() {
                return Ok(0);
            }
            for e in &errors {
                eprintln!("ERROR {e}");
            }
            return Ok(3);
        }
        if start.elapsed() > limit {
            bail!(
                "timed out after {timeout} waiting for the model to settle; still busy: {}",
                busy.join(", ")
            );
        }
        if last_kick.elapsed() > Duration::from_secs(2) {
            // An agent that died is restarted, as Juju's would be.
            kick(agent)?;
            last_kick = std::time::Instant::now();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `run-hook UNIT HOOK`: queues the hook and waits for its first attempt;
/// exits 1 when it failed (the unit is then in error and retrying) or when
/// the unit is in error already (the hook waits behind the failed one).
pub(super) fn run_hook(agent: &Agent, unit: &str, hook: &str) -> Result<i32> {
    let seq = agent.store.update(|m| -> Result<u64> {
        if !m.units.contains_key(unit) {
            bail!("unit \"{unit}\" not found");
        }
        let since = m.next_op;
        let seq = m.push(Op::hook(unit, hook));
        tag_env(m, since);
        Ok(seq)
    })?;
    kick(agent)?;
    let deadline = std::time::Instant::now()
        + crate::uniter::runner::hook_timeout()
        + Duration::from_secs(120);
    loop {
        let m = agent.store.read()?;
        let Some(u) = m.units.get(unit) else {
            return Ok(0);
        };
        let queued = m.queue.iter().any(|o| o.seq == seq);
        let running = u.running.as_ref().is_some_and(|o| o.seq == seq);
        if !queued && !running {
            return Ok(i32::from(u.failed.as_ref().is_some_and(|o| o.seq == seq)));
        }
        if queued && u.running.is_none() {
            if let Some(f) = u.failed.as_ref().filter(|_| u.failures >= SETTLED_FAILURES) {
                eprintln!(
                    "ERROR {unit} is in error (hook failed: \"{}\"); \"{hook}\" waits behind it until it is resolved",
                    f.hook
                );
                return Ok(1);
            }
        }
        if std::time::Instant::now() > deadline {
            bail!("timed out waiting for the \"{hook}\" hook on {unit}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `resolved UNIT [--no-retry]`: retries the failed hook now, or marks it
/// resolved without running it again.
pub(super) fn resolved(agent: &Agent, unit: &str, no_retry: bool) -> Result<i32> {
    agent.store.update(|m| -> Result<()> {
        let u = m
            .units
            .get_mut(unit)
            .ok_or_else(|| anyhow!("unit \"{unit}\" not found"))?;
        if u.failed.is_none() {
            bail!("unit \"{unit}\" is not in an error state");
        }
        if no_retry {
            u.failed = None;
            u.failures = 0;
        } else {
            // Counted afresh, so wait-idle waits for the retry.
            u.failures = 0;
            u.retry_at = 0;
        }
        Ok(())
    })?;
    kick(agent)?;
    Ok(0)
}

/// `upgrade-model --agent-version V`: the model's Juju version becomes V
/// (2.9 → 3.x stands in for migrating a 2.9 model to a 3.x controller);
/// the next hooks see it in JUJU_VERSION, and the tools follow it.
pub(super) fn upgrade(agent: &Agent, version: &str) -> Result<i32> {
    let new = Profile::parse(version).map_err(|e| anyhow!("{e}"))?;
    let old = agent.store.update(|m| -> Result<Profile> {
        if m.uuid.is_empty() {
            bail!("no model here: deploy a charm first");
        }
        let old = Profile::of(&m.version);
        if old.is_29() == new.is_29() && old.version == new.version {
            bail!(
                "no upgrades available: the model already runs {}",
                new.version
            );
        }
        if !old.is_29() && new.is_29() {
            bail!(
                "cannot change the model from {} to {}: downgrades are not supported",
                old.version,
                new.version
            );
        }
        m.version = new.version.clone();
        Ok(old)
    })?;
    ensure_tools(&agent.store, &new)?;
    eprintln!("started upgrade from {} to {}", old.version, new.version);
    Ok(0)
}

/// `destroy-model`: the healthy units run stop and remove (each at most
/// 30 s, all together at most 60 s), then every agent, hook and service
/// process of the model is killed and its home deleted.
pub(super) fn destroy(agent: &Agent) -> Result<i32> {
    let home = agent.store.home().to_path_buf();
    if !agent.store.exists() && !home.exists() {
        bail!("model at {} not found", home.display());
    }
    let queued = agent.store.update(|m| -> Result<Vec<String>> {
        m.dying = true;
        // Units in error, or busy with a hook or action right now, get
        // no stop/remove: they are killed with the rest.
        let healthy: Vec<String> = m
            .units
            .iter()
            .filter(|(_, u)| {
                u.failed.is_none() && u.running.is_none() && u.running_action.is_none()
            })
            .map(|(n, _)| n.clone())
            .collect();
        m.queue.retain(|o| !healthy.contains(&o.unit));
        let since = m.next_op;
        for name in &healthy {
            m.push(Op::hook(name, "stop"));
            m.push(Op::hook(name, "remove"));
        }
        tag_env(m, since);
        Ok(healthy)
    });
    if let Ok(healthy) = queued {
        let budget = std::time::Instant::now() + Duration::from_secs(60);
        while std::time::Instant::now() < budget {
            let Ok(m) = agent.store.read() else { break };
            let busy = healthy.iter().any(|n| {
                // A unit whose stop or remove failed goes no further.
                m.units.get(n).is_some_and(|u| {
                    u.running.is_some()
                        || (u.failed.is_none()
                            && m.queue.iter().any(|o| o.unit == *n)
                            && crate::uniter::agent::alive(&agent.store, n))
                })
            });
            if !busy {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let m = agent.store.read().unwrap_or_default();
    crate::uniter::agent::kill_all(&agent.store);
    if let Ok(rd) = fs::read_dir(home.join("units")) {
        for e in rd.flatten() {
            crate::uniter::kill_running(&e.path());
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
    // A process whose hook was just killed may still write a last line
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
