//! Deploying and scaling: `deploy` (finding the charm, storing it and its
//! resources, creating the model on first use), `add-unit`, `remove-unit`
//! (and `--force --no-wait`), `remove-application` and `integrate`. Each
//! queues the hooks Juju fires, in Juju's order, for the units' agents and
//! returns at once, as Juju's verbs do.

use super::*;

/// Finds the charm `deploy` names. A path is used as it is. A bare name
/// (`etcd`, `ch:etcd`), as an operator types for Charmhub, resolves to
/// `<dir>/<name>.charm` or `<dir>/<name>/` in `$JUJU_SIM_CHARM_PATH`
/// (colon-separated), else to a charm of that name already deployed in this
/// model — the simulator has no Charmhub.
pub(super) fn resolve_charm(home: &Path, src: &Path) -> Result<PathBuf> {
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

pub(super) fn deploy(
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
    ensure_model(store)?;
    let mut stored = std::collections::BTreeMap::new();
    for (name, path, filename) in res {
        stored.insert(
            name.clone(),
            store_resource(store, &app, &name, &filename, &path)?,
        );
    }
    store.update(|m| -> Result<()> {
        if m.applications.contains_key(&app) {
            bail!("cannot add application \"{app}\": application already exists");
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
    kick(agent)?;
    println!(
        "Deployed \"{app}\" from local charm \"{}\", revision 0",
        charm.name()
    );
    Ok(0)
}

/// `refresh APP [--path CHARM] [--resource NAME=PATH…]` (Juju 2.9's
/// `upgrade-charm`): a new charm of the same name is stored as the
/// application's next revision (its config keeps the operator's values),
/// new resources are stored, and every live unit queues `upgrade-charm`
/// then `config-changed`. A unit's charm directory is replaced only when
/// its agent runs that `upgrade-charm`, under its machine lock, as Juju's
/// uniter deploys a new charm before the hook; revisions are never
/// deleted, so a unit copying one is never cut short.
pub(super) fn refresh(
    agent: &Agent,
    app: &str,
    path: Option<&Path>,
    resources: &[String],
) -> Result<i32> {
    let store = &agent.store;
    let current = {
        let m = store.read()?;
        let a = m
            .applications
            .get(app)
            .ok_or_else(|| anyhow!("application \"{app}\" not found"))?;
        (a.charm.clone(), a.revision)
    };
    let mut new_dir = None;
    let charm = match path {
        Some(src) => {
            let src = fs::canonicalize(src)
                .with_context(|| format!("cannot read charm {}", src.display()))?;
            let revision = current.1 + 1;
            let dest = store
                .home()
                .join("charms")
                .join(format!(".{app}-rev{revision}"));
            let _ = fs::remove_dir_all(&dest);
            crate::charm::unpack(&src, &dest)?;
            let charm = Charm::load(&dest)?;
            if charm.name() != current.0 {
                let _ = fs::remove_dir_all(&dest);
                bail!(
                    "cannot refresh \"{app}\" to charm \"{}\": the application runs charm \"{}\"; \
                     a charm of another name needs --switch, which juju-sim does not simulate",
                    charm.name(),
                    current.0
                );
            }
            new_dir = Some((dest, revision));
            charm
        }
        None => app_charm(store, app)?,
    };
    let mut stored = Vec::new();
    for r in resources {
        let (name, path) = r
            .split_once('=')
            .ok_or_else(|| anyhow!("invalid --resource \"{r}\": expected NAME=PATH"))?;
        let Some((_, filename)) = charm.resources().into_iter().find(|(n, _)| n == name) else {
            bail!("unrecognized resource \"{name}\"");
        };
        stored.push((
            name.to_string(),
            store_resource(store, app, name, &filename, Path::new(path))?,
        ));
    }
    upgrade_units(store, app, new_dir.clone(), stored)?;
    if let Some((_, revision)) = new_dir {
        eprintln!(
            "Added local charm \"{}\", revision {revision}, to the model",
            charm.name()
        );
    }
    kick(agent)?;
    Ok(0)
}

/// Moves the application to `new_charm` (its directory and revision), if
/// any, and to the `stored` resources, then queues `upgrade-charm` and
/// `config-changed` on every live unit: what `refresh` and
/// `attach-resource` share.
pub(super) fn upgrade_units(
    store: &Store,
    app: &str,
    new_charm: Option<(PathBuf, u64)>,
    stored: Vec<(String, PathBuf)>,
) -> Result<()> {
    store.update(|m| -> Result<()> {
        let a = m
            .applications
            .get_mut(app)
            .ok_or_else(|| anyhow!("application \"{app}\" not found"))?;
        if let Some((dir, revision)) = new_charm {
            a.charm_dir = dir;
            a.revision = revision;
        }
        for (n, p) in stored {
            a.resources.insert(n, p);
        }
        let since = m.next_op;
        for u in m.live_units(app) {
            m.push(Op::hook(&u, "upgrade-charm"));
            m.push(Op::hook(&u, "config-changed"));
        }
        tag_env(m, since);
        Ok(())
    })
}

/// Creates the model when there is none yet (`add-model`, or the first
/// `deploy`): its Juju version and the simulator's settings come from the
/// environment now and stay fixed for its life; the seed is printed. Then
/// (re)creates the tools for its version; returns its profile.
pub(super) fn ensure_model(store: &Store) -> Result<Profile> {
    fs::create_dir_all(store.home())
        .with_context(|| format!("cannot create {}", store.home().display()))?;
    let home = store.home().display().to_string();
    let created = store.update(|m| -> Result<Option<ModelSettings>> {
        if !m.uuid.is_empty() {
            return Ok(None);
        }
        let s = ModelSettings::from_env()?;
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
        m.version = s.profile.version.clone();
        m.seed = s.seed;
        m.update_status_secs = s.update_status_secs;
        m.retry_base_ms = s.retry_base_ms;
        m.max_delay_ms = s.max_delay_ms;
        m.base_env = current_env();
        Ok(Some(s))
    })?;
    if let Some(s) = &created {
        eprintln!(
            "Created model on Juju {} with JUJU_SIM_SEED={} (update-status every {} s)",
            s.profile.version, s.seed, s.update_status_secs
        );
    }
    let profile = Profile::of(&store.read()?.version);
    ensure_tools(store, &profile)?;
    Ok(profile)
}

/// What a new model fixes from the environment.
struct ModelSettings {
    profile: Profile,
    seed: u64,
    update_status_secs: u64,
    retry_base_ms: u64,
    max_delay_ms: u64,
}

impl ModelSettings {
    fn from_env() -> Result<ModelSettings> {
        let profile = Profile::from_env().map_err(|e| anyhow!("JUJU_SIM_AGENT_VERSION: {e}"))?;
        let seed = match std::env::var("JUJU_SIM_SEED") {
            Ok(v) if !v.trim().is_empty() => v.trim().parse::<u64>().map_err(|_| {
                anyhow!("JUJU_SIM_SEED=\"{v}\" is not a number: set it to an unsigned integer (or unset it for a random seed)")
            })?,
            _ => fastrand::u64(..),
        };
        let dur = |var: &str, default: Duration| -> Result<Duration> {
            match std::env::var(var) {
                Ok(v) if !v.trim().is_empty() => {
                    parse_duration(&v)?.ok_or_else(|| anyhow!("{var}=\"{v}\" must not be negative"))
                }
                _ => Ok(default),
            }
        };
        Ok(ModelSettings {
            profile,
            seed,
            update_status_secs: dur("JUJU_SIM_UPDATE_STATUS_INTERVAL", Duration::from_secs(300))?
                .as_secs()
                .max(1),
            retry_base_ms: dur("JUJU_SIM_RETRY_DELAY", Duration::from_secs(5))?.as_millis() as u64,
            max_delay_ms: dur("JUJU_SIM_MAX_HOOK_DELAY", Duration::from_millis(100))?.as_millis()
                as u64,
        })
    }
}

pub(super) fn store_resource(
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

/// The application's current charm directory (`charms/APP` until a
/// `refresh`).
pub(crate) fn charm_dir_of(m: &Model, store: &Store, app: &str) -> PathBuf {
    m.applications
        .get(app)
        .map(|a| a.charm_dir.clone())
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or_else(|| store.home().join("charms").join(app))
}

/// Adds `n` units and queues their hooks in Juju's order.
pub(super) fn add_units(agent: &Agent, app: &str, n: u32) -> Result<Vec<String>> {
    let store = &agent.store;
    let home = store.home().to_path_buf();
    store.update(|m| -> Result<Vec<String>> {
        let since = m.next_op;
        let charm_src = charm_dir_of(m, store, app);
        let new = add_units_in(m, store, &charm_src, &home, app, n)?;
        tag_env(m, since);
        Ok(new)
    })
}

fn add_units_in(
    m: &mut Model,
    store: &Store,
    charm_src: &Path,
    home: &Path,
    app: &str,
    n: u32,
) -> Result<Vec<String>> {
    {
        let existing = m.live_units(app);
        let rels = m.app_relations(app);
        let mut new = Vec::new();
        for _ in 0..n {
            let a = m
                .applications
                .get_mut(app)
                .ok_or_else(|| anyhow!("application \"{app}\" not found"))?;
            let number = a.next_unit;
            let charm_revision = a.revision;
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
            write_users(&udir.join("root"))?;
            crate::util::copy_tree(charm_src, &udir.join("charm"))
                .with_context(|| format!("cannot copy the charm into {}", udir.display()))?;
            let address = crate::addr::claim(home, &name)?;
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
                    charm_revision,
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
            m.push(Op::hook(u, "install"));
            for r in &rels {
                let (ep, other) = m
                    .relations
                    .get(r)
                    .map(|x| (x.endpoint_of(app).to_string(), x.other_app(app).to_string()))
                    .unwrap_or_default();
                m.push(Op::relation(
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
            m.push(Op::hook(u, hook));
            m.push(Op::hook(u, "config-changed"));
            m.push(Op::hook(u, "start"));
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
            m.push(Op::hook(u, "update-status"));
        }
        Ok(new)
    }
}

/// The unit's user database, as on an Ubuntu cloud image: `root` and the
/// `ubuntu` user (uid and gid 1000) that `juju scp` and `juju ssh` log in
/// as, with its home directory.
fn write_users(root: &Path) -> Result<()> {
    let etc = root.join("etc");
    fs::create_dir_all(&etc).with_context(|| format!("cannot create {}", etc.display()))?;
    fs::write(
        etc.join("passwd"),
        "root:x:0:0:root:/root:/bin/bash\nubuntu:x:1000:1000:Ubuntu:/home/ubuntu:/bin/bash\n",
    )
    .with_context(|| format!("cannot write {}", etc.join("passwd").display()))?;
    fs::write(etc.join("group"), "root:x:0:\nubuntu:x:1000:\n")
        .with_context(|| format!("cannot write {}", etc.join("group").display()))?;
    let tmp = root.join("tmp");
    fs::create_dir_all(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o1777))
            .with_context(|| format!("cannot set the mode of {}", tmp.display()))?;
    }
    let home = root.join("home/ubuntu");
    fs::create_dir_all(&home).with_context(|| format!("cannot create {}", home.display()))?;
    // Owned by uid 1000 where the simulator may chown (it runs as root).
    let _ = std::os::unix::fs::chown(&home, Some(1000), Some(1000));
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&home, fs::Permissions::from_mode(0o750))
            .with_context(|| format!("cannot set the mode of {}", home.display()))?;
    }
    Ok(())
}

/// Queues the departure hooks of `unit` (the remaining units see it leave).
pub(super) fn queue_removal(m: &mut Model, unit: &str) -> Result<()> {
    queue_departure(m, unit, true)
}

/// The departure hooks of `unit`: on the units that saw it, and (unless it
/// is lost at once, `own` false) its own departed/broken, stop and remove.
fn queue_departure(m: &mut Model, unit: &str, own: bool) -> Result<()> {
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
                m.push(op);
            }
        }
        if !own {
            continue;
        }
        for o in &remaining {
            if seen_by(m, unit, o) {
                let mut op = Op::relation(unit, &departed, r, &other, Some(o));
                op.departing = Some(unit.to_string());
                m.push(op);
            }
        }
        m.push(Op::relation(
            unit,
            &format!("{ep}-relation-broken"),
            r,
            &other,
            None,
        ));
    }
    if own {
        m.push(Op::hook(unit, "stop"));
        m.push(Op::hook(unit, "remove"));
        m.push(Op::hook(unit, FINALIZE_REMOVE));
    }
    Ok(())
}

pub(super) fn remove_units(agent: &Agent, units: &[String]) -> Result<i32> {
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
        let since = m.next_op;
        for u in units {
            queue_removal(m, u)?;
        }
        tag_env(m, since);
        Ok(())
    })?;
    for u in units {
        eprintln!("will remove unit {u}");
    }
    kick(agent)?;
    Ok(0)
}

/// `remove-unit --force --no-wait`: the units go at once, as when their
/// machines are lost. Their agents and every process they started are
/// killed, no hook of theirs runs; the units that saw them get
/// `-relation-departed`, and a new leader is elected if needed.
pub(super) fn remove_units_now(agent: &Agent, units: &[String]) -> Result<i32> {
    for u in units {
        if parse_unit(u).is_none() {
            bail!("invalid unit name \"{u}\"");
        }
    }
    let m = agent.store.read()?;
    for u in units {
        if !m.units.contains_key(u) {
            bail!("unit \"{u}\" does not exist");
        }
    }
    for u in units {
        let udir = agent.store.unit_dir(u);
        crate::uniter::agent::kill_agent_dir(&udir);
        crate::uniter::kill_running(&udir);
        crate::systemctl::kill_all(&udir.join("systemd"));
    }
    agent.store.update(|m| -> Result<()> {
        let since = m.next_op;
        for u in units {
            queue_departure(m, u, false)?;
            if let Some(x) = m.units.get_mut(u) {
                x.dying = true;
            }
        }
        tag_env(m, since);
        Ok(())
    })?;
    for u in units {
        agent.finalize_remove(u)?;
        eprintln!("will remove unit {u}");
    }
    kick(agent)?;
    Ok(0)
}

/// `juju integrate A[:EP] B[:EP]`: one side provides what the other
/// requires, on the same interface. Queues `-relation-created` on every unit
/// of both sides, then `-joined`/`-changed` for each pair, as Juju does.
pub(super) fn integrate(agent: &Agent, a: &str, b: &str) -> Result<i32> {
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
        let since = m.next_op;
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
                m.push(Op::relation(
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
        tag_env(m, since);
        Ok(())
    })?;
    kick(agent)?;
    Ok(0)
}

/// `remove-application APP`: every unit leaves as with remove-unit, then
/// the application goes; `--force --no-wait` drops its units at once.
pub(super) fn remove_application(agent: &Agent, app: &str, now: bool) -> Result<i32> {
    if now {
        let units = agent.store.update(|m| -> Result<Vec<String>> {
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
            Ok(units)
        })?;
        if !units.is_empty() {
            remove_units_now(agent, &units)?;
        }
        crate::util::remove_charm_dirs(agent.store.home(), app);
        let _ = fs::remove_dir_all(agent.store.home().join("resources").join(app));
        eprintln!("will remove application {app}");
        return Ok(0);
    }
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
        let since = m.next_op;
        for u in units {
            queue_removal(m, &u)?;
        }
        tag_env(m, since);
        Ok(())
    })?;
    eprintln!("will remove application {app}");
    kick(agent)?;
    if !agent.store.read()?.applications.contains_key(app) {
        crate::util::remove_charm_dirs(agent.store.home(), app);
        let _ = fs::remove_dir_all(agent.store.home().join("resources").join(app));
    }
    Ok(0)
}
