//! The `systemctl` stand-in's timers, through the real binary invoked as
//! `systemctl`: a `.timer` with `OnCalendar=` every second runs its oneshot
//! service at those times, with a clean environment plus `Environment=`,
//! and stopping the timer stops the runs.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

fn systemctl(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_juju-sim"))
        .arg0("systemctl")
        .args(args)
        .env("ETCD_CHARM_ROOT", root)
        .env_remove("JUJU_SIM_HOME")
        // A hook's variable must not reach the service.
        .env("JUJU_UNIT_NAME", "leaky/0")
        .output()
        .unwrap()
}

fn lines(p: &Path) -> Vec<String> {
    fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn a_timer_runs_its_service_at_its_times_until_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let units = root.join("etc/systemd/system");
    fs::create_dir_all(&units).unwrap();
    let ticks = root.join("ticks");
    fs::write(
        units.join("t.service"),
        format!(
            "[Service]\nType=oneshot\nEnvironment=FOO=bar\nExecStart=/bin/sh -c 'echo \"$FOO|$JUJU_UNIT_NAME\" >> {}'\n",
            ticks.display()
        ),
    )
    .unwrap();
    fs::write(
        units.join("t.timer"),
        "[Timer]\nOnCalendar=*-*-* *:*:* UTC\nAccuracySec=1s\n[Install]\nWantedBy=timers.target\n",
    )
    .unwrap();
    let out = systemctl(root, &["enable", "--now", "t.timer"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        systemctl(root, &["is-active", "t.timer"]).status.code(),
        Some(0)
    );
    std::thread::sleep(Duration::from_millis(3500));
    let got = lines(&ticks);
    assert!(got.len() >= 2, "{got:?}");
    assert!(got.iter().all(|l| l == "bar|"), "{got:?}");
    assert!(systemctl(root, &["stop", "t.timer"]).status.success());
    assert_eq!(
        systemctl(root, &["is-active", "t.timer"]).status.code(),
        Some(3)
    );
    let n = lines(&ticks).len();
    std::thread::sleep(Duration::from_millis(2000));
    assert_eq!(lines(&ticks).len(), n, "the timer still fires after stop");
    assert!(systemctl(root, &["disable", "t.timer"]).status.success());
}
