//! The charm's hook-tool client against the simulator's hook tools: the
//! boundary between the two, exercised for every tool the client wraps.
//!
//! Two units of a charm with the etcd charm's metadata and a do-nothing
//! dispatch are deployed, a hook environment is taken from `juju-sim exec`,
//! and `CliHookTools` (the production client) runs with that environment.

mod util;

use std::collections::BTreeMap;

use etcd_charm::juju::{CliHookTools, HookTools, LogLevel, SecretOwner, Status, StatusKind};
use util::Model;

/// The hook environment of `unit`, as `juju-sim exec` sets it up.
fn hook_env(m: &Model, unit: &str) -> Vec<(String, String)> {
    let out = m.sim(&["exec", "--unit", unit, "--", "env", "-0"]).ok();
    out.stdout
        .split('\0')
        .filter_map(|kv| kv.split_once('='))
        // Not the exec's own context: that ended with the exec, and the
        // client here runs outside any hook (its writes commit at once).
        .filter(|(k, _)| *k != "JUJU_SIM_CONTEXT")
        .filter(|(k, _)| k.starts_with("JUJU_") || *k == "PATH" || *k == "ETCD_CHARM_ROOT")
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn the_client_speaks_the_simulators_hook_tools() {
    let m = Model::new();
    // The charm's metadata with a dispatch that does nothing: the probe
    // writes made-up relation data, leader settings and statuses, and with
    // concurrent unit agents the real charm would react to them (its hooks
    // run as soon as they are queued) and race the assertions.
    let charm = m.scratch.path().join("noop-charm");
    std::fs::create_dir_all(&charm).unwrap();
    for f in ["metadata.yaml", "actions.yaml", "config.yaml"] {
        std::fs::copy(util::repo().join(f), charm.join(f)).unwrap();
    }
    std::fs::write(charm.join("dispatch"), "#!/bin/sh\nexit 0\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            charm.join("dispatch"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
    }
    m.sim(&["deploy", &charm.display().to_string(), "-n", "2"])
        .ok();
    let leader = CliHookTools::with_env(hook_env(&m, "etcd/0"));
    let follower = CliHookTools::with_env(hook_env(&m, "etcd/1"));

    assert!(leader.is_leader().unwrap());
    assert!(!follower.is_leader().unwrap());

    // config-get --all: defaults are typed JSON.
    let config = leader.config_get().unwrap();
    assert_eq!(config["port"], 2379);
    assert_eq!(config["bind_to_all_interfaces"], false);

    // leader-set / leader-get, and the non-leader's refusal.
    leader
        .leader_set(&map(&[("probe", "one two=three")]))
        .unwrap();
    assert_eq!(
        follower
            .leader_get()
            .unwrap()
            .get("probe")
            .map(String::as_str),
        Some("one two=three")
    );
    let err = follower.leader_set(&map(&[("probe", "x")])).unwrap_err();
    assert!(err.is_not_leader(), "{err}");

    // The peer relation: ids, remote units, unit and app bags.
    let ids = leader.relation_ids("cluster").unwrap();
    assert_eq!(ids, ["cluster:0"]);
    assert_eq!(leader.relation_list("cluster:0").unwrap(), ["etcd/1"]);
    follower
        .relation_set("cluster:0", false, &map(&[("peer-url", "http://x:2380")]))
        .unwrap();
    assert_eq!(
        leader.relation_get("cluster:0", "etcd/1", false).unwrap()["peer-url"],
        "http://x:2380"
    );
    leader
        .relation_set("cluster:0", true, &map(&[("ca-secret", "secret:abc")]))
        .unwrap();
    assert_eq!(
        follower.relation_get("cluster:0", "etcd", true).unwrap()["ca-secret"],
        "secret:abc"
    );
    assert!(follower
        .relation_set("cluster:0", true, &map(&[("x", "y")]))
        .is_err());

    // Secrets: content goes through files; the app's units can read it.
    // Juju 2.9 has no secret tools: the client's call fails to spawn.
    if util::juju29_at(m.home.path()) {
        let err = leader
            .secret_add(&map(&[("k", "v")]), Some("ca"), SecretOwner::Application)
            .unwrap_err();
        assert!(err.to_string().contains("secret-add"), "{err}");
    } else {
        let uri = leader
            .secret_add(
                &map(&[("ca-key", "-----BEGIN KEY-----\nabc\n")]),
                Some("ca"),
                SecretOwner::Application,
            )
            .unwrap();
        assert!(uri.starts_with("secret:"), "{uri}");
        assert_eq!(
            follower.secret_get(&uri).unwrap()["ca-key"],
            "-----BEGIN KEY-----\nabc\n"
        );
        leader
            .secret_set(&uri, &map(&[("ca-key", "rotated")]))
            .unwrap();
        assert!(leader.secret_ids().unwrap().contains(&uri));
        let err = leader.secret_get("secret:doesnotexist0000000").unwrap_err();
        assert!(err.is_not_found(), "{err}");
    }

    // network-get gives the unit's own loopback address.
    let net = leader.network_get("cluster").unwrap();
    assert_eq!(net.primary(), Some(m.address("etcd/0").as_str()));
    assert!(leader.network_get("no-such-endpoint").is_err());

    // resource-get: nothing attached is an answer, not an error.
    assert_eq!(leader.resource_get("snapshot").unwrap(), None);

    // The writes above fired hooks on the units (leader-settings-changed,
    // relation-changed), which their agents run now; let them finish so
    // that the charm's own status-set does not race the probe's.
    m.settle();

    // Statuses, ports, version and logs land in the model.
    follower
        .status_set(&Status::new(StatusKind::Waiting, "probe: waiting"), false)
        .unwrap();
    assert!(follower
        .status_set(&Status::blocked("not mine"), true)
        .is_err());
    leader.open_port(4001).unwrap();
    leader.close_port(4001).unwrap();
    leader.application_version_set("9.9.9").unwrap();
    leader
        .juju_log(LogLevel::Warning, "probe log line")
        .unwrap();
    let status = m.status();
    assert_eq!(status["applications"]["etcd"]["version"], "9.9.9");
    let u1 = Model::unit(&status, "etcd/1");
    assert_eq!(u1["workload-status"]["current"], "waiting");
    assert_eq!(u1["workload-status"]["message"], "probe: waiting");
    assert!(!Model::unit(&status, "etcd/0")["open-ports"]
        .to_string()
        .contains("4001"));
    assert!(m.debug_log().contains("probe log line"));

    // The action tools refuse to run outside an action.
    assert!(leader.action_get().is_err());
}
