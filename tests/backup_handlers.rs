//! Handler tests of the backup settings (issue 11), state in and state out
//! against the fake hook tools and a fake `systemctl`: the s3-credentials
//! relation (v1: credentials from a secret) becomes a 0600 settings file
//! and the backup timer's units; `off` and bad config remove the timer and
//! say why; no credential reaches a log.

mod util;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use etcd_charm::juju::fake::{FakeHookTools, FakeState};
use serde_json::{json, Value};
use util::world::{hook, run, unit_state, world, World};

const SECRET: &str = "s3cr3t-value-that-must-not-leak";

fn state() -> FakeState {
    let mut s = unit_state(true);
    s.config = json!({"backup-schedule": "15m", "backup-store": "auto"})
        .as_object()
        .unwrap()
        .clone();
    s.relations
        .insert("s3-credentials:7".into(), vec!["s3/0".into()]);
    s.relation_data.insert(
        ("s3-credentials:7".into(), "s3".into()),
        [
            ("bucket", "b1"),
            ("path", "/etcd/prod/"),
            ("endpoint", "https://s3.example.com"),
            ("region", "eu-1"),
            ("s3-uri-style", "host"),
            ("secret-extra", "secret:abc"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
    );
    s.secrets.insert(
        "secret:abc".into(),
        [("access-key", "AK1"), ("secret-key", SECRET)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    s
}

fn settings(w: &World) -> Value {
    let p = w.root.base().join("var/lib/etcd-charm/backup.json");
    assert_eq!(
        fs::metadata(&p).unwrap().permissions().mode() & 0o777,
        0o600,
        "the settings hold credentials"
    );
    serde_json::from_slice(&fs::read(p).unwrap()).unwrap()
}

#[test]
fn v1_relation_becomes_private_settings_and_a_timer() {
    let w = world();
    let tools = FakeHookTools::new(state());
    run(&w, &tools, &hook("config-changed")).unwrap();
    let s = settings(&w);
    assert_eq!(s["store"], "s3");
    assert_eq!(s["s3"]["bucket"], "b1");
    assert_eq!(s["s3"]["path"], "etcd/prod");
    assert_eq!(s["s3"]["uri-style"], "host");
    assert_eq!(s["s3"]["secret-key"], SECRET);
    assert!(s["problem"].is_null(), "{s}");
    // The leader asked for the secret fields (interface v1).
    let ours =
        &tools.state.borrow().relation_data[&("s3-credentials:7".to_string(), "etcd".to_string())];
    assert_eq!(ours["requested-secrets"], r#"["access-key", "secret-key"]"#);
    assert!(ours.contains_key("lib-version"));
    // The timer: every 15 minutes on the clock, running dispatch backup-tick.
    let timer = fs::read_to_string(
        w.root
            .base()
            .join("etc/systemd/system/etcd-charm-backup.timer"),
    )
    .unwrap();
    assert!(
        timer.contains("\nOnCalendar=*-*-* *:00,15,30,45:00 UTC\n"),
        "{timer}"
    );
    let svc = fs::read_to_string(
        w.root
            .base()
            .join("etc/systemd/system/etcd-charm-backup.service"),
    )
    .unwrap();
    assert!(
        svc.contains(" backup-tick\n") && svc.contains("Type=oneshot"),
        "{svc}"
    );
    let calls = fs::read_to_string(&w.log).unwrap();
    assert!(calls.contains("enable etcd-charm-backup.timer"), "{calls}");
    // No credential in any log line or status.
    let st = tools.state.borrow();
    for (_, l) in &st.logs {
        assert!(!l.contains(SECRET), "{l}");
    }
    for s in &st.statuses {
        assert!(!s.message.contains(SECRET));
    }
}

#[test]
fn off_and_bad_values_stop_the_timer_and_say_why() {
    let w = world();
    let tools = FakeHookTools::new(state());
    run(&w, &tools, &hook("config-changed")).unwrap();
    tools
        .state
        .borrow_mut()
        .config
        .insert("backup-schedule".into(), "off".into());
    run(&w, &tools, &hook("config-changed")).unwrap();
    let calls = fs::read_to_string(&w.log).unwrap();
    assert!(calls.contains("stop etcd-charm-backup.timer"), "{calls}");
    assert!(calls.contains("disable etcd-charm-backup.timer"), "{calls}");

    for (key, value, says) in [
        ("backup-schedule", "7m", "divide a day"),
        ("backup-retention", "forever=1", "not a rule"),
        ("backup-store", "tape", "not auto, local or s3"),
    ] {
        let tools = FakeHookTools::new(state());
        tools
            .state
            .borrow_mut()
            .config
            .insert(key.into(), value.into());
        run(&w, &tools, &hook("config-changed")).unwrap();
        let p = settings(&w)["problem"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(p.contains(says), "{key}={value}: {p}");
    }

    // backup-store=s3 without a relation: the fix is named.
    let mut st = state();
    st.relations.remove("s3-credentials:7");
    st.config.insert("backup-store".into(), "s3".into());
    let tools = FakeHookTools::new(st);
    run(&w, &tools, &hook("config-changed")).unwrap();
    let p = settings(&w)["problem"].as_str().unwrap().to_string();
    assert!(p.contains("juju integrate etcd s3-integrator"), "{p}");
    // auto without a relation: the local store, no problem.
    let mut st = state();
    st.relations.remove("s3-credentials:7");
    let tools = FakeHookTools::new(st);
    run(&w, &tools, &hook("config-changed")).unwrap();
    let s = settings(&w);
    assert_eq!(s["store"], "local");
    assert_eq!(s["backup-dir"], "/var/lib/etcd-charm/backups");
    assert!(s["problem"].is_null());
}
