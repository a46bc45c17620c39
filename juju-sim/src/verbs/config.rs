//! Application config (`config`), resources (`attach-resource`) and the
//! `inject-fault` extra that makes a hook tool fail like a controller fault.

use super::*;

pub(super) fn config(
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
        let since = m.next_op;
        if changed {
            for u in m.live_units(app) {
                m.push(Op::hook(&u, "config-changed"));
            }
        }
        tag_env(m, since);
        Ok(changed)
    })?;
    if changed {
        kick(agent)?;
    }
    Ok(0)
}

pub(super) fn attach(agent: &Agent, app: &str, resources: &[String]) -> Result<i32> {
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
            super::deploy::store_resource(&agent.store, app, name, &filename, Path::new(path))?,
        ));
    }
    super::deploy::upgrade_units(&agent.store, app, None, stored)?;
    kick(agent)?;
    Ok(0)
}

/// `inject-fault TOOL TARGET [RESOURCE] --count N`: the next N calls of
/// TOOL by TARGET's units (APP or APP/N) fail like a controller fault.
/// Only `resource-get` can be faulted today.
pub(super) fn inject_fault(
    agent: &Agent,
    tool: &str,
    target: &str,
    resource: Option<&str>,
    count: u32,
) -> Result<i32> {
    if tool != "resource-get" {
        bail!("cannot inject a fault into \"{tool}\": only resource-get can be faulted");
    }
    agent.store.update(|m| -> Result<()> {
        let app = target.split('/').next().unwrap_or(target);
        if !m.applications.contains_key(app) {
            bail!("application \"{app}\" not found");
        }
        if target.contains('/') && !m.units.contains_key(target) {
            bail!("unit \"{target}\" not found");
        }
        if let Some(r) = resource {
            let charm = app_charm_in(m, &agent.store, app)?;
            if !charm.resources().iter().any(|(n, _)| n == r) {
                bail!("application \"{app}\" has no resource \"{r}\"");
            }
        }
        m.faults.push(crate::model::Fault {
            tool: tool.to_string(),
            target: target.to_string(),
            resource: resource.unwrap_or("").to_string(),
            count,
        });
        Ok(())
    })?;
    eprintln!(
        "the next {count} {tool} call(s) by {target} for {} will fail",
        resource.unwrap_or("any resource")
    );
    Ok(0)
}
