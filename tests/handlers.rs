//! Handler tests: state in, state out, against the in-memory hook tools.
//!
//! These run the real handlers and the real etcd layer (install, config
//! rendering, unit file), with only Juju's hook tools and `systemctl` faked.
//! Starting etcd itself is covered by the end-to-end tests.

mod util;

use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use etcd_charm::etcd::paths::{BIN_DIR, CONFIG_FILE, UNIT_FILE};
use etcd_charm::juju::fake::{FakeHookTools, FakeState};
use etcd_charm::juju::{Context, Dispatch, StatusKind};
use serde_json::json;
use util::world::{ctx, hook, run, unit_state, world, World};

fn state(leader: bool) -> FakeState {
    let mut s = unit_state(leader);
    s.config = json!({"port": 2379, "management_port": 2380, "heartbeat_interval": 100,
                      "election_timeout": 1000, "bind_to_all_interfaces": false, "channel": "auto"})
    .as_object()
    .unwrap()
    .clone();
    s
}

/// A release-shaped tarball whose `etcd` is a script printing a version.
fn resource(w: &World, body: &[u8]) -> PathBuf {
    let unit_path = PathBuf::from("/var/lib/juju/agents/unit-etcd-0/resources/etcd/etcd.tar.gz");
    let host = w.root.resolve(&unit_path).unwrap();
    fs::create_dir_all(host.parent().unwrap()).unwrap();
    fs::File::create(&host).unwrap().write_all(body).unwrap();
    // resource-get prints the path on the machine.
    host
}

fn release_tarball() -> Vec<u8> {
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    for (name, data) in [
        (
            "etcd-v3.5.9-linux-amd64/etcd",
            &b"#!/bin/sh\necho 'etcd Version: 3.5.9'\n"[..],
        ),
        ("etcd-v3.5.9-linux-amd64/etcdctl", &b"#!/bin/sh\n"[..]),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_path(name).unwrap();
        h.set_size(data.len() as u64);
        h.set_mode(0o755);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap()
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().mode() & 0o777
}

/// The leader's state with a good release tarball as its `etcd` resource.
fn leader_with_release(w: &World) -> FakeState {
    let mut s = state(true);
    s.resources
        .insert("etcd".into(), resource(w, &release_tarball()));
    s
}

/// The model as a second unit, `etcd/1` at 127.9.9.10 and not the leader,
/// sees it, with its resource in `w1`.
fn become_second_unit(tools: &FakeHookTools, w1: &World) {
    let mut st = tools.state.borrow_mut();
    st.leader = false;
    st.unit_name = "etcd/1".into();
    st.address = "127.9.9.10".into();
    st.resources
        .insert("etcd".into(), resource(w1, &release_tarball()));
}

/// The CA secret's ID in the peer relation's application data, if any.
fn ca_secret_id(st: &FakeState) -> Option<String> {
    st.relation_data
        .get(&("cluster:0".to_string(), "etcd".to_string()))
        .and_then(|d| d.get("ca-secret-id").cloned())
}

#[test]
fn corrupt_resource_blocks_without_failing_the_hook() {
    let w = world();
    let mut s = state(true);
    s.resources
        .insert("etcd".into(), resource(&w, b"this is not a tarball"));
    let tools = FakeHookTools::new(s);
    run(&w, &tools, &hook("install")).expect("an operator problem is not a hook error");
    let st = tools.last_status().unwrap();
    assert_eq!(st.kind, StatusKind::Blocked);
    assert!(st.message.contains("not a valid .tar.gz"), "{}", st.message);
    // Later hooks keep saying so and do not fail either (no crash loop).
    for h in ["leader-elected", "config-changed", "start", "update-status"] {
        run(&w, &tools, &hook(h)).unwrap();
        assert_eq!(
            tools.last_status().unwrap().kind,
            StatusKind::Blocked,
            "{h}"
        );
    }
    assert!(!w.root.at(UNIT_FILE).exists());
}

#[test]
fn good_resource_installs_and_renders_config_and_unit() {
    let w = world();
    let tools = FakeHookTools::new(leader_with_release(&w));
    run(&w, &tools, &hook("install")).unwrap();
    let st = tools.last_status().unwrap();
    assert_eq!(st.kind, StatusKind::Maintenance);
    assert!(st.message.contains("3.5.9 installed"), "{}", st.message);
    let fs_state = tools.state.borrow().clone();
    assert_eq!(fs_state.version.as_deref(), Some("3.5.9"));
    assert!(fs_state.leader_settings.contains_key("cluster-token"));

    let config = w.root.at(CONFIG_FILE);
    assert_eq!(mode(&config), 0o600);
    let y: serde_yaml::Value = serde_yaml::from_str(&fs::read_to_string(&config).unwrap()).unwrap();
    assert_eq!(y["listen-client-urls"], "https://127.9.9.9:2379");
    assert_eq!(y["name"], "etcd-0");
    assert_eq!(y["client-transport-security"]["client-cert-auth"], true);
    assert_eq!(y["peer-transport-security"]["client-cert-auth"], true);

    // The leader made the CA, kept it in an application-owned secret and
    // shared its ID through the peer relation's application data.
    let uri = ca_secret_id(&fs_state).expect("no CA secret ID in the peer data");
    let secret = &fs_state.secrets[&uri];
    let ca = etcd_charm::pki::Ca::from_pem(&secret["ca-cert"], &secret["ca-key"]).unwrap();
    // Its own certificates are signed by that CA; keys are 0600.
    let pki_dir = w.root.base().join("etc/etcd-charm/pki");
    for (cert, key) in [("server.crt", "server.key"), ("client.crt", "client.key")] {
        let pem = fs::read_to_string(pki_dir.join(cert)).unwrap();
        assert!(etcd_charm::pki::verify_signed_by(&pem, ca.cert_pem()).unwrap());
        assert_eq!(mode(&pki_dir.join(key)), 0o600, "{key}");
    }
    let server =
        etcd_charm::pki::inspect_cert(&fs::read_to_string(pki_dir.join("server.crt")).unwrap())
            .unwrap();
    let sans: Vec<String> = server.sans.iter().map(|s| s.to_string()).collect();
    for want in ["IP:127.9.9.9", "DNS:localhost", "IP:127.0.0.1"] {
        assert!(sans.iter().any(|s| s == want), "{sans:?}");
    }
    // No key material in any log line or status.
    let key_text = fs::read_to_string(pki_dir.join("server.key")).unwrap();
    let key_body = key_text.lines().nth(1).unwrap();
    for (_, line) in &fs_state.logs {
        assert!(!line.contains(key_body) && !line.contains(&secret["ca-key"][30..60]));
    }
    let unit = fs::read_to_string(w.root.at(UNIT_FILE)).unwrap();
    // The resource's own build directory: <version>-<sha256's first 12>.
    let tarball = w
        .root
        .resolve("/var/lib/juju/agents/unit-etcd-0/resources/etcd/etcd.tar.gz")
        .unwrap();
    let sha = etcd_charm::etcd::install::sha256_file(&tarball).unwrap();
    let bin = w
        .root
        .at(BIN_DIR)
        .join(format!("3.5.9-{}", &sha[..12]))
        .join("etcd");
    assert!(bin.is_file(), "{}", bin.display());
    assert!(unit.contains(&format!(
        "ExecStart={} --config-file {}",
        bin.display(),
        config.display()
    )));
    let calls = fs::read_to_string(&w.log).unwrap();
    assert!(
        calls.contains("daemon-reload") && calls.contains("enable etcd.service"),
        "{calls}"
    );
    // Not started before the start hook.
    assert!(!calls.contains("start etcd.service"), "{calls}");
}

#[test]
fn bad_config_blocks_with_the_fix() {
    let w = world();
    let mut s = leader_with_release(&w);
    s.config.insert("management_port".into(), json!(2379));
    let tools = FakeHookTools::new(s);
    run(&w, &tools, &hook("install")).unwrap();
    let st = tools.last_status().unwrap();
    assert_eq!(st.kind, StatusKind::Blocked);
    assert!(st.message.contains("juju config"), "{}", st.message);
}

#[test]
fn non_leader_waits_to_be_registered_and_a_new_leader_reuses_the_ca() {
    // The leader's first hooks make the CA.
    let w0 = world();
    let tools = FakeHookTools::new(leader_with_release(&w0));
    run(&w0, &tools, &hook("install")).unwrap();
    let uri = ca_secret_id(&tools.state.borrow())
        .unwrap_or_else(|| panic!("no CA after install; status {:?}", tools.last_status()));

    // Another unit (not the leader) with the same model state.
    let w1 = world();
    become_second_unit(&tools, &w1);
    let c1 = |name: &str| Context {
        unit_name: "etcd/1".into(),
        ..hook(name)
    };
    run(&w1, &tools, &c1("install")).unwrap();
    run(&w1, &tools, &c1("start")).unwrap();
    let st = tools.last_status().unwrap();
    assert_eq!(st.kind, StatusKind::Waiting, "{}", st.message);
    assert!(st.message.contains("add this unit"), "{}", st.message);
    let calls = fs::read_to_string(&w1.log).unwrap_or_default();
    assert!(!calls.contains("start etcd.service"), "{calls}");
    // It published where the leader can reach it, and holds certificates
    // from the same CA.
    let bag = tools.state.borrow().relation_data[&("cluster:0".to_string(), "etcd/1".to_string())]
        .clone();
    assert_eq!(bag["peer-url"], "https://127.9.9.10:2380");
    assert_eq!(bag["member-name"], "etcd-1");
    let ca0 = fs::read_to_string(w0.root.base().join("etc/etcd-charm/pki/ca.crt")).unwrap();
    let ca1 = fs::read_to_string(w1.root.base().join("etc/etcd-charm/pki/ca.crt")).unwrap();
    assert_eq!(ca0, ca1);

    // etcd/1 becomes the leader (the old one had bootstrapped the
    // cluster): the same CA, no second secret.
    {
        let mut st = tools.state.borrow_mut();
        st.leader = true;
        st.relations
            .insert("cluster:0".into(), vec!["etcd/2".into()]);
        st.relation_data
            .get_mut(&("cluster:0".to_string(), "etcd".to_string()))
            .unwrap()
            .insert(
                "initial-cluster".into(),
                "etcd-0=https://127.9.9.9:2380,etcd-2=https://127.9.9.11:2380".into(),
            );
    }
    run(&w1, &tools, &c1("leader-elected")).unwrap();
    // Members of the cluster are alive, so it does not bootstrap another.
    let calls = fs::read_to_string(&w1.log).unwrap_or_default();
    assert!(!calls.contains("start etcd.service"), "{calls}");
    assert_eq!(tools.last_status().unwrap().kind, StatusKind::Waiting);
    let st = tools.state.borrow();
    assert_eq!(st.secrets.len(), 1);
    assert_eq!(ca_secret_id(&st), Some(uri));
}

#[test]
fn unknown_hook_is_a_no_op_and_actions_fail_with_a_next_step() {
    let w = world();
    let tools = FakeHookTools::new(state(true));
    run(&w, &tools, &hook("secret-rotate")).unwrap();
    assert!(tools.state.borrow().statuses.is_empty());

    let health = ctx(Dispatch::Action {
        name: "health".into(),
        id: "1".into(),
    });
    run(&w, &tools, &health).unwrap();
    let failed = tools.state.borrow().action_failed.clone().unwrap();
    assert!(
        failed.contains("not running") && failed.contains("juju status"),
        "{failed}"
    );

    let nope = ctx(Dispatch::Action {
        name: "nope".into(),
        id: "2".into(),
    });
    run(&w, &tools, &nope).unwrap();
    let failed = tools.state.borrow().action_failed.clone().unwrap();
    assert!(failed.contains("no action \"nope\""), "{failed}");
}

#[test]
fn an_unexpected_failure_fails_the_hook_so_juju_retries() {
    let w = world();
    let tools = FakeHookTools::new(state(true));
    let state_file = w.root.at(etcd_charm::etcd::paths::STATE_FILE);
    fs::create_dir_all(state_file.parent().unwrap()).unwrap();
    fs::write(&state_file, b"{not json").unwrap();
    let err = run(&w, &tools, &hook("config-changed")).unwrap_err();
    let text = format!("{err:#}");
    assert!(
        text.contains("config-changed") && text.contains("retry"),
        "{text}"
    );
}

#[test]
fn a_leader_reuses_an_unpublished_ca_secret_instead_of_making_a_second() {
    let w = world();
    let mut s = leader_with_release(&w);
    // A CA secret exists (its ID never reached the peer data).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let ca = etcd_charm::pki::Ca::generate("etcd etcd CA", now, 3650).unwrap();
    let mut content = std::collections::BTreeMap::new();
    content.insert("ca-cert".to_string(), ca.cert_pem().to_string());
    content.insert("ca-key".to_string(), ca.key_pem().expose().to_string());
    s.secrets.insert("secret:orphan".into(), content);
    let tools = FakeHookTools::new(s);
    run(&w, &tools, &hook("install")).unwrap();
    let st = tools.state.borrow();
    assert_eq!(st.secrets.len(), 1);
    assert_eq!(ca_secret_id(&st).as_deref(), Some("secret:orphan"));
    let on_disk = fs::read_to_string(w.root.base().join("etc/etcd-charm/pki/ca.crt")).unwrap();
    assert_eq!(on_disk, ca.cert_pem());
}

/// Juju 2.9 has no secrets: the CA goes into leader settings, every unit
/// reads the same one, a new leader reuses it, and the model keeps it when
/// the controller moves to 3.x.
#[test]
fn on_juju_29_the_ca_lives_in_leader_settings_and_survives_leader_loss_and_upgrade() {
    let on = |version: &str, unit: &str, name: &str| Context {
        juju_version: version.into(),
        unit_name: unit.into(),
        ..hook(name)
    };
    let w0 = world();
    let tools = FakeHookTools::new(leader_with_release(&w0));
    run(&w0, &tools, &on("2.9.49", "etcd/0", "install")).unwrap();
    {
        let st = tools.state.borrow();
        assert!(st.secrets.is_empty(), "no secret on 2.9");
        assert!(st.leader_settings["ca-cert"].contains("BEGIN CERTIFICATE"));
        assert!(st.leader_settings["ca-key"].contains("PRIVATE KEY"));
        assert_eq!(ca_secret_id(&st), None);
    }
    let ca0 = fs::read_to_string(w0.root.at("/etc/etcd-charm/pki/ca.crt")).unwrap();
    assert_eq!(ca0, tools.state.borrow().leader_settings["ca-cert"]);

    // A non-leader gets the same CA from leader-get.
    let w1 = world();
    become_second_unit(&tools, &w1);
    run(&w1, &tools, &on("2.9.49", "etcd/1", "install")).unwrap();
    let ca1 = fs::read_to_string(w1.root.at("/etc/etcd-charm/pki/ca.crt")).unwrap();
    assert_eq!(ca0, ca1);

    // etcd/1 becomes the leader: no second CA.
    tools.state.borrow_mut().leader = true;
    run(&w1, &tools, &on("2.9.49", "etcd/1", "leader-elected")).unwrap();
    assert_eq!(tools.state.borrow().leader_settings["ca-cert"], ca0);
    assert!(tools.state.borrow().secrets.is_empty());

    // The controller is upgraded to 3.6: the model keeps its CA, and no
    // secret appears beside it.
    run(&w1, &tools, &on("3.6.12", "etcd/1", "upgrade-charm")).unwrap();
    run(&w1, &tools, &on("3.6.12", "etcd/1", "config-changed")).unwrap();
    assert!(tools.state.borrow().secrets.is_empty());
    assert_eq!(
        fs::read_to_string(w1.root.at("/etc/etcd-charm/pki/ca.crt")).unwrap(),
        ca0
    );
}

/// A `resource-get` that fails for any reason but "not uploaded" is a
/// controller fault: the unit waits (every later hook tries again) and
/// never falls back to installing the archive's etcd.
#[test]
fn a_resource_get_fault_waits_and_never_installs_the_archive_etcd() {
    let w = world();
    let mut s = state(true);
    s.resource_faults.insert(
        "etcd".into(),
        "ERROR could not download resource: HTTP request failed: Get https://10.0.0.1:17070/units/unit-etcd-0/resources/etcd: dial tcp 10.0.0.1:17070: connect: connection refused".into(),
    );
    let tools = FakeHookTools::new(s);
    run(&w, &tools, &hook("install")).expect("waiting is not a hook error");
    let st = tools.last_status().unwrap();
    assert_eq!(st.kind, StatusKind::Waiting, "{}", st.message);
    assert!(st.message.contains("etcd resource"), "{}", st.message);
    let saved = fs::read_to_string(w.root.at("/var/lib/etcd-charm/state.json")).unwrap();
    let saved: serde_json::Value = serde_json::from_str(&saved).unwrap();
    assert!(
        saved["resource_wait"]
            .as_str()
            .is_some_and(|w| w.starts_with("Waiting for the etcd resource")),
        "{saved}"
    );
    // Later hooks keep waiting (and keep trying) while the fault lasts.
    run(&w, &tools, &hook("config-changed")).unwrap();
    assert_eq!(tools.last_status().unwrap().kind, StatusKind::Waiting);
    assert!(!w.root.at(UNIT_FILE).exists());
    assert!(
        !w.root.at("/var/lib/etcd-charm/state.json").exists() || {
            let state = fs::read_to_string(w.root.at("/var/lib/etcd-charm/state.json")).unwrap();
            !state.contains("\"binaries\":{")
        }
    );

    // The fault clears and the retried hook installs the resource.
    {
        let mut st = tools.state.borrow_mut();
        st.resource_faults.clear();
        st.resources
            .insert("etcd".into(), resource(&w, &release_tarball()));
    }
    run(&w, &tools, &hook("update-status")).unwrap();
    assert!(w.root.at(UNIT_FILE).exists());
    assert_ne!(tools.last_status().unwrap().kind, StatusKind::Waiting);
}
