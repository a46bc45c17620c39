//! `charm/pack` builds a `.charm` that Juju accepts: the right files, and a
//! `dispatch` that is a static executable, so it runs on any Ubuntu base.
//! The packed charm is then deployed in the simulator and reaches active.

mod util;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use util::Model;

#[test]
fn packed_charm_has_the_layout_and_a_static_dispatch() {
    let out = tempfile::tempdir().unwrap();
    let charm = out.path().join("etcd.charm");
    let st = Command::new(util::repo().join("charm/pack"))
        .arg(&charm)
        .status()
        .expect("cannot run charm/pack");
    assert!(st.success(), "charm/pack failed");

    let unpacked = out.path().join("unpacked");
    let st = Command::new("unzip")
        .args(["-q", "-d"])
        .arg(&unpacked)
        .arg(&charm)
        .status()
        .unwrap();
    assert!(st.success());
    let mut names: Vec<String> = fs::read_dir(&unpacked)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "LICENSE",
            "README.md",
            "actions.yaml",
            "config.yaml",
            "dispatch",
            "manifest.yaml",
            "metadata.yaml"
        ]
    );
    let dispatch = unpacked.join("dispatch");
    assert_ne!(
        fs::metadata(&dispatch).unwrap().permissions().mode() & 0o111,
        0
    );
    let file = Command::new("file").arg(&dispatch).output().unwrap();
    let file = String::from_utf8_lossy(&file.stdout);
    assert!(
        file.contains("ELF 64-bit") && file.contains("x86-64"),
        "{file}"
    );
    assert!(
        file.contains("statically linked") || file.contains("static-pie linked"),
        "dispatch is not static: {file}"
    );
    let manifest: serde_yaml::Value =
        serde_yaml::from_str(&fs::read_to_string(unpacked.join("manifest.yaml")).unwrap()).unwrap();
    let channels: Vec<&str> = manifest["bases"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|b| b["channel"].as_str().unwrap())
        .collect();
    assert_eq!(channels, ["22.04", "24.04"]);
    let meta: serde_yaml::Value =
        serde_yaml::from_str(&fs::read_to_string(unpacked.join("metadata.yaml")).unwrap()).unwrap();
    assert_eq!(meta["name"], "etcd");
    assert_eq!(meta["peers"]["cluster"]["interface"], "etcd");
    assert_eq!(meta["provides"]["db"]["interface"], "etcd");
    assert_eq!(meta["resources"]["etcd"]["type"], "file");
    assert_eq!(meta["resources"]["snapshot"]["filename"], "snapshot.tar.gz");

    // The packed charm itself deploys and runs.
    let m = Model::new();
    m.sim(&["deploy", &charm.display().to_string()]).ok();
    let (cur, msg) = m.workload("etcd/0");
    assert_eq!(
        (cur.as_str(), msg.as_str()),
        ("active", "Healthy with 1 known peer")
    );
}
