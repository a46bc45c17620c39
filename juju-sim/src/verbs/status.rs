//! `status` (tabular, YAML, and JSON in the shape of the model's Juju
//! version), `show-unit` and `version`.

use super::*;
use crate::util::{status_since, status_time};

pub(super) fn severity(s: &str) -> u8 {
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
pub(super) fn unit_statuses(u: &Unit, version: &str) -> (Value, Value) {
    let since = status_since(&u.workload.since);
    match &u.failed {
        Some(op) => {
            let msg = format!("hook failed: \"{}\"", op.hook);
            (
                json!({"current": "error", "message": msg, "since": since}),
                json!({"current": "error", "message": msg, "since": since, "version": version}),
            )
        }
        None => {
            let mut agent = json!({"current": if u.agent.is_empty() { "idle" } else { &u.agent }, "since": since, "version": version});
            // Juju says what the agent is doing.
            if let Some(op) = &u.running {
                agent["message"] = Value::from(format!("running {} hook", op.hook));
            } else if let Some(id) = u.running_action {
                agent["message"] = Value::from(format!("running action {id}"));
            }
            (
                json!({"current": u.workload.current, "message": u.workload.message, "since": since}),
                agent,
            )
        }
    }
}

fn model_name(agent: &Agent) -> String {
    agent
        .store
        .home()
        .file_name()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "sim".into())
}

/// `status --format=json` in the shape of the model's Juju version (what
/// `jubilant`'s status types parse on 3.x).
pub(super) fn status_json(agent: &Agent, m: &Model) -> Value {
    let profile = Profile::of(&m.version);
    let version = profile.version.clone();
    let (os_key, os) = profile.status_os();
    let mut machines = Map::new();
    let mut apps = Map::new();
    for (app_name, app) in &m.applications {
        let charm = app_charm_in(m, &agent.store, app_name).ok();
        let mut units = Map::new();
        let mut worst: Option<Value> = None;
        for un in m.app_units(app_name) {
            let Some(u) = m.units.get(&un) else { continue };
            let (w, j) = unit_statuses(u, &version);
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
            let since = status_since(&u.workload.since);
            let mut machine = json!({
                "juju-status": {"current": "started", "since": since, "version": version},
                "hostname": format!("juju-sim-{}", u.machine),
                "dns-name": u.address,
                "ip-addresses": [u.address],
                "instance-id": format!("juju-sim-{}", u.machine),
                "machine-status": {"current": "running", "since": since},
                "modification-status": {"current": "idle", "since": since},
                "hardware": "arch=amd64",
            });
            machine[os_key] = os.clone();
            machines.insert(u.machine.clone(), machine);
        }
        let app_status = match (&app.status, worst) {
            (Some(s), _) => {
                json!({"current": s.current, "message": s.message, "since": status_since(&s.since)})
            }
            (None, Some(w)) => w,
            (None, None) => json!({"current": "unknown", "message": ""}),
        };
        let mut rels: Map<String, Value> = Map::new();
        for id in m.app_relations(app_name) {
            if let Some(r) = m.relations.get(&id) {
                let ep = r.endpoint_of(app_name).to_string();
                let iface = charm
                    .as_ref()
                    .map(|c| c.interface_of(&ep))
                    .unwrap_or_default();
                let scope = "global";
                let entry = rels.entry(ep).or_insert_with(|| json!([]));
                if let Some(list) = entry.as_array_mut() {
                    list.push(profile.status_relation(r.other_app(app_name), &iface, scope));
                }
            }
        }
        let mut doc = json!({
            "charm": profile.status_charm(&app.charm, app.revision),
            "charm-name": app.charm,
            "charm-origin": "local",
            "charm-rev": app.revision,
            "exposed": false,
            "application-status": app_status,
            "version": app.version,
            "relations": rels,
            "units": units,
            "endpoint-bindings": {"": "alpha"},
        });
        doc[os_key] = os.clone();
        apps.insert(app_name.clone(), doc);
    }
    json!({
        "model": {
            "name": model_name(agent),
            "type": "iaas",
            "controller": "juju-sim",
            "cloud": "localhost",
            "region": "localhost",
            "version": version,
            "model-status": {"current": "available", "since": status_time(now_secs())},
            "sla": "unsupported",
        },
        "machines": machines,
        "applications": apps,
        "storage": {},
        "controller": {"timestamp": status_time(now_secs()).split(' ').nth(3).unwrap_or("").to_string()},
    })
}

/// `show-unit UNIT… [--format json|yaml]`: each unit's details, as
/// jubilant's `show_unit` reads them.
pub(super) fn show_unit(agent: &Agent, units: &[String], format: Option<&str>) -> Result<i32> {
    check_format(format, &["json", "yaml"])?;
    let m = agent.store.read()?;
    let mut out = Map::new();
    for name in units {
        let u = m
            .units
            .get(name)
            .ok_or_else(|| anyhow!("unit \"{name}\" not found"))?;
        let app = m
            .applications
            .get(&u.app)
            .ok_or_else(|| anyhow!("application \"{}\" not found", u.app))?;
        let mut rel_info = Vec::new();
        for key in m.app_relations(&u.app) {
            let Some(r) = m.relations.get(&key) else {
                continue;
            };
            let other = r.other_app(&u.app).to_string();
            let mut related = Map::new();
            for o in r.views.get(name).into_iter().flatten() {
                related.insert(
                    o.clone(),
                    json!({"in-scope": true, "data": r.unit_data.get(o).cloned().unwrap_or_default()}),
                );
            }
            rel_info.push(json!({
                "relation-id": crate::model::relation_number(&key).and_then(|n| n.parse::<u64>().ok()).unwrap_or(0),
                "endpoint": r.endpoint_of(&u.app),
                "related-endpoint": r.endpoint_of(&other),
                "application-data": r.app_data.get(&other).cloned().unwrap_or_default(),
                "local-unit": {"in-scope": true, "data": r.unit_data.get(name).cloned().unwrap_or_default()},
                "related-units": related,
            }));
        }
        out.insert(
            name.clone(),
            json!({
                "workload-version": app.version,
                "machine": u.machine,
                "opened-ports": u.ports.iter().cloned().collect::<Vec<_>>(),
                "public-address": u.address,
                "charm": Profile::of(&m.version).status_charm(&app.charm, app.revision),
                "leader": app.leader.as_deref() == Some(name.as_str()),
                "life": if u.dying { "dying" } else { "alive" },
                "relation-info": rel_info,
            }),
        );
    }
    print_doc(&Value::Object(out), format.or(Some("yaml")))?;
    Ok(0)
}

/// `version [--format json|yaml] [--all]`: the Juju client version this
/// model simulates (`3.6.12-ubuntu-amd64`).
pub(super) fn version(agent: &Agent, format: Option<&str>, all: bool) -> Result<i32> {
    let m = agent.store.read().unwrap_or_default();
    let v = if m.version.is_empty() {
        Profile::from_env().map_err(|e| anyhow!("{e}"))?.version
    } else {
        m.version
    };
    let full = format!("{v}-ubuntu-amd64");
    match format {
        Some("json") | Some("yaml") if all => print_doc(
            &json!({"version": full, "git-commit": "juju-sim", "git-tree-state": "clean", "compiler": "rustc", "official": false}),
            format,
        )?,
        Some("json") => println!("{}", Value::from(full)),
        _ => println!("{full}"),
    }
    Ok(0)
}

pub(super) fn status_cmd(agent: &Agent, format: Option<&str>) -> Result<i32> {
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

pub(super) fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

pub(super) fn print_table(v: &Value) {
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
        s(&v["model"]["version"]),
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

pub(super) fn table(rows: &[Vec<String>]) -> String {
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
