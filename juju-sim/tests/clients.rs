//! Real clients against the simulator: Canonical's `jubilant` (the CLI
//! wrapper charm integration tests use) drives `juju-sim` as `juju`,
//! through `tests/clients/jubilant_smoke.py`. It needs a Python with
//! jubilant installed, named by `JUBILANT_PYTHON` (e.g. a venv's
//! `bin/python` after `pip install jubilant`); without it the test says so
//! and passes, as it cannot run.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

fn write_charm(dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    fs::write(
        dir.join("metadata.yaml"),
        "name: fix\npeers:\n  cluster:\n    interface: fix\n",
    )
    .unwrap();
    fs::write(
        dir.join("config.yaml"),
        "options:\n  name:\n    type: string\n    default: ''\n    description: n\n",
    )
    .unwrap();
    fs::write(
        dir.join("actions.yaml"),
        "sleep:\n  description: s\n  params:\n    seconds:\n      type: number\npeek:\n  description: p\n  params:\n    fail:\n      type: boolean\n",
    )
    .unwrap();
    fs::write(
        dir.join("dispatch"),
        "#!/bin/sh\ncase \"$JUJU_DISPATCH_PATH\" in\n  hooks/start|hooks/config-changed) status-set active ready ;;\n  actions/sleep) sleep \"$(action-get seconds)\"; echo slept ;;\n  actions/peek) [ \"$(action-get fail)\" = True ] && action-fail \"asked to fail\" ;;\nesac\nexit 0\n",
    )
    .unwrap();
    fs::set_permissions(dir.join("dispatch"), fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn jubilant_drives_the_simulator() {
    let Some(python) = std::env::var_os("JUBILANT_PYTHON") else {
        eprintln!("JUBILANT_PYTHON is not set: the jubilant client test cannot run");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_juju-sim"), bin.join("juju")).unwrap();
    let charm = dir.path().join("charm");
    write_charm(&charm);
    let home = dir.path().join("sim");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/jubilant_smoke.py");
    let out = Command::new(python)
        .arg(&script)
        .arg(&charm)
        .env("PATH", path)
        .env("JUJU_SIM_HOME", &home)
        .env("JUJU_SIM_ADDR_DIR", dir.path().join("addrs"))
        .env("JUJU_SIM_RETRY_DELAY", "1s")
        .output()
        .unwrap();
    let _ = Command::new(env!("CARGO_BIN_EXE_juju-sim"))
        .args(["destroy-model", "-y"])
        .env("JUJU_SIM_HOME", &home)
        .env("JUJU_SIM_ADDR_DIR", dir.path().join("addrs"))
        .output();
    assert!(
        out.status.success(),
        "jubilant failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("jubilant OK"));
}
