//! The operator's verbs as the snapshot and restore tests use them:
//! `juju run-action` then `show-action-output`, deploying with the
//! `snapshot` resource, reading results, and looking at a unit's files.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_yaml::Value as Yaml;

use super::{Model, Run};

/// Runs juju-sim in the model's scratch directory, where `./file` paths
/// are resolved, as an operator's shell would.
pub fn sim_here(m: &Model, args: &[&str]) -> Run {
    sim_env(m, args, &[])
}

/// The same, with extra environment (such as `ETCD_CHARM_FAILPOINTS`).
/// (The environment reaches the hooks and actions the verb queues: the
/// simulator hands each one what its command's environment adds.)
pub fn sim_env(m: &Model, args: &[&str], env: &[(&str, &str)]) -> Run {
    let out = m
        .cmd()
        .current_dir(m.scratch.path())
        .envs(env.iter().copied())
        .args(args)
        .output()
        .expect("cannot run juju-sim");
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    if run.code == 0 && super::settles(args) {
        m.settle();
    }
    run
}

/// `juju run-action UNIT ACTION [k=v…]`, then `juju show-action-output ID
/// --wait`: the seed's two steps. Returns the parsed output.
pub fn run_action(
    m: &Model,
    unit: &str,
    action: &str,
    params: &[&str],
    env: &[(&str, &str)],
) -> Yaml {
    let mut args = vec!["run-action", unit, action];
    args.extend_from_slice(params);
    let q = sim_env(m, &args, env).ok();
    let id = q.action_id();
    // run-action only queues; show-action-output --wait waits for it.
    let shown = sim_here(m, &["show-action-output", &id, "--wait=30m"]).ok();
    serde_yaml::from_str(&shown.stdout).unwrap()
}

/// `juju deploy etcd APP --resource snapshot=ARCHIVE`
pub fn deploy_with_snapshot(m: &Model, app: &str, archive: &Path) {
    let res = format!("snapshot={}", archive.display());
    sim_here(m, &["deploy", "etcd", app, "--resource", &res]).ok();
}

/// The result at the dotted `path`; panics with the whole output if absent.
pub fn result<'a>(out: &'a Yaml, path: &str) -> &'a str {
    let mut v = &out["results"];
    for p in path.split('.') {
        v = &v[p];
    }
    v.as_str().unwrap_or_else(|| {
        panic!(
            "no result {path} in {}",
            serde_yaml::to_string(out).unwrap()
        )
    })
}

/// The message of a failed action; panics if it did not fail.
pub fn failure(out: &Yaml) -> String {
    assert_eq!(
        out["status"],
        "failed",
        "expected a failed action: {}",
        serde_yaml::to_string(out).unwrap()
    );
    out["message"].as_str().unwrap_or_default().to_string()
}

/// Panics with the whole output unless the action completed.
pub fn completed(out: &Yaml) {
    assert_eq!(
        out["status"],
        "completed",
        "{}",
        serde_yaml::to_string(out).unwrap()
    );
}

/// What `sha256sum` prints for `path`.
pub fn sha256sum(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// A unit path on `unit`, as a host path.
pub fn host_path(m: &Model, unit: &str, unit_path: &str) -> PathBuf {
    m.unit_root(unit).join(unit_path.trim_start_matches('/'))
}

/// No file under `dir` (recursively) ends in `.partial`.
pub fn no_partials(dir: &Path) -> bool {
    partials(dir).is_empty()
}

/// Every file under `dir` (recursively) whose name ends in `.partial`.
pub fn partials(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    let Ok(rd) = fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(partials(&p));
        } else if p.to_string_lossy().ends_with(".partial") {
            out.push(p);
        }
    }
    out
}
