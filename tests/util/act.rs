//! The operator's verbs as the snapshot and restore tests use them:
//! `juju run … --wait` (Juju 3; on 2.9 `run-action` then
//! `show-action-output`), deploying with the
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
    let exec = |args: &[&str]| {
        let out = m
            .cmd()
            .current_dir(m.scratch.path())
            .envs(env.iter().copied())
            .args(args)
            .output()
            .expect("cannot run juju-sim");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    };
    if let Some(run) = super::juju29_run(m.home.path(), args, exec) {
        m.settle();
        return run;
    }
    let run = exec(args);
    if run.code == 0 && super::settles(args) {
        m.settle();
    }
    run
}

/// Runs an action as the operator does and returns its task document
/// (`results`, `status`, `message`, …). Juju 3: `juju run UNIT ACTION
/// [k=v…] --format=yaml --wait=30m`, the task under the unit's key (it
/// exits 1 when the action's dispatch exited non-zero, 0 when it ran and
/// called `action-fail`: the callers judge from `status`).
/// Juju 2.9 (see [`super::juju29`]): the seed's two steps, `juju
/// run-action UNIT ACTION [k=v…]` then `juju show-action-output ID --wait`.
pub fn run_action(
    m: &Model,
    unit: &str,
    action: &str,
    params: &[&str],
    env: &[(&str, &str)],
) -> Yaml {
    if super::juju29_at(m.home.path()) {
        let mut args = vec!["run-action", unit, action];
        args.extend_from_slice(params);
        let q = sim_env(m, &args, env).ok();
        let id = q.action_id();
        // run-action only queues; show-action-output --wait waits for it.
        let shown = sim_here(m, &["show-action-output", &id, "--wait=30m"]).ok();
        return serde_yaml::from_str(&shown.stdout).unwrap();
    }
    let mut args = vec!["run", unit, action];
    args.extend_from_slice(params);
    args.extend(["--format=yaml", "--wait=30m"]);
    let run = sim_env(m, &args, env);
    // 0: completed; 1: the action failed (the document says so) or the
    // verb was refused (no document: the parse below fails loudly).
    assert!(
        run.code == 0 || run.code == 1,
        "juju run {unit} {action}: exit {}\n{}{}",
        run.code,
        run.stdout,
        run.stderr
    );
    if run.code != 0 {
        m.settle(); // (sim_env settles after a run that exited 0)
    }
    let doc: Yaml = serde_yaml::from_str(&run.stdout).unwrap_or_else(|e| {
        panic!(
            "juju run {unit} {action} printed no task ({e}):\nstdout:\n{}\nstderr:\n{}",
            run.stdout, run.stderr
        )
    });
    // Keyed by the unit that ran it (APP/leader resolves to a unit).
    match doc.as_mapping() {
        Some(map) if map.len() == 1 => map.values().next().cloned().unwrap(),
        _ => panic!("juju run {unit} {action}: not one task:\n{}", run.stdout),
    }
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

/// `juju deploy ARGS…` into a model made on Juju 2.9 (the simulator reads
/// `JUJU_SIM_AGENT_VERSION` when the deploy creates the model); waits for
/// it to settle and asserts the model runs 2.9.49.
pub fn deploy_on_juju29(m: &Model, args: &[&str]) {
    let mut all = vec!["deploy"];
    all.extend_from_slice(args);
    sim_env(m, &all, &[("JUJU_SIM_AGENT_VERSION", "2.9.49")]).ok();
    assert_eq!(m.status()["model"]["version"], "2.9.49");
}

/// A plain `etcdctl snapshot save` of `conn`'s etcd into `to`, with the
/// `etcdctl` given; panics with etcdctl's words if it fails.
pub fn etcdctl_snapshot_save(etcdctl: &Path, conn: &super::kv::Conn, to: &Path) {
    let out = super::etcdctl_tls(
        etcdctl,
        &conn.endpoint,
        &conn.creds,
        &["snapshot", "save", &to.display().to_string()],
    );
    assert!(
        out.status.success(),
        "etcdctl snapshot save {}: {}",
        to.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Flips one bit of the byte in the middle of `bytes`.
pub fn flip_middle_byte(bytes: &mut [u8]) {
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
}

/// Copies our `src` archive to `dst` with its manifest's `hashkv` one more
/// (mod 2^32) and everything else as it was: an intact db under a
/// manifest that does not match it, which only a restored etcd can tell.
/// (Python's tarfile, as another writer would.)
pub fn bump_manifest_hashkv(src: &Path, dst: &Path) {
    let st = Command::new("python3")
        .arg("-c")
        .arg(
            "import io, json, sys, tarfile\n\
             src = tarfile.open(sys.argv[1], 'r:gz')\n\
             out = tarfile.open(sys.argv[2], 'w:gz', format=tarfile.GNU_FORMAT)\n\
             for m in src.getmembers():\n\
             \x20   data = src.extractfile(m).read()\n\
             \x20   if m.name == 'manifest.json':\n\
             \x20       j = json.loads(data)\n\
             \x20       j['hashkv'] = (j['hashkv'] + 1) % (1 << 32)\n\
             \x20       data = json.dumps(j).encode()\n\
             \x20       m.size = len(data)\n\
             \x20   out.addfile(m, io.BytesIO(data))\n\
             out.close()",
        )
        .arg(src)
        .arg(dst)
        .status()
        .unwrap();
    assert!(st.success(), "python3 could not rewrite {}", src.display());
}
