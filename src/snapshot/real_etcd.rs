//! A check against the real thing, when `/usr/bin/etcd` and
//! `/usr/bin/etcdctl` are installed: a throwaway etcd on loopback, an
//! `etcdctl snapshot save`, then inspect and pack → inspect, and etcdctl
//! must accept the db we extract. etcd must be installed
//! (scripts/setup does it). The module itself stays pure; only this test runs processes.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::testutil::{fields, raw_entry, tar_gz};
use super::*;

use crate::testing::{free_port, require_etcd, Reaped, ETCD, ETCDCTL};

/// etcd, killed when dropped.
struct Etcd {
    _child: Reaped,
    endpoint: String,
    data: PathBuf,
    log: PathBuf,
}

fn etcdctl(endpoint: &str, args: &[&str]) -> std::process::Output {
    Command::new(ETCDCTL)
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .args(["--dial-timeout=1s", "--command-timeout=5s"])
        .args(args)
        .output()
        .unwrap()
}

fn start(dir: &Path) -> Etcd {
    let (client, peer) = (free_port(), free_port());
    let endpoint = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let data = dir.join("data");
    let log = dir.join("etcd.log");
    let child = Command::new(ETCD)
        .arg("--name=t")
        .arg(format!("--data-dir={}", data.display()))
        .arg(format!("--listen-client-urls={endpoint}"))
        .arg(format!("--advertise-client-urls={endpoint}"))
        .arg(format!("--listen-peer-urls={peer_url}"))
        .arg(format!("--initial-advertise-peer-urls={peer_url}"))
        .arg(format!("--initial-cluster=t={peer_url}"))
        .stdin(Stdio::null())
        .stdout(File::create(&log).unwrap())
        .stderr(File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let etcd = Etcd {
        _child: Reaped(child),
        endpoint,
        data,
        log,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if etcdctl(&etcd.endpoint, &["endpoint", "health"])
            .status
            .success()
        {
            return etcd;
        }
        assert!(
            Instant::now() < deadline,
            "etcd did not become healthy: {}",
            fs::read_to_string(&etcd.log).unwrap_or_default()
        );
        sleep(Duration::from_millis(200));
    }
}

fn status_json(file: &Path) -> serde_json::Value {
    let out = Command::new(ETCDCTL)
        .env("ETCDCTL_API", "3")
        .args(["snapshot", "status", "-w", "json"])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "etcdctl snapshot status {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn real_etcd_snapshot_round_trip() {
    require_etcd();
    let dir = tempfile::tempdir().unwrap();
    let etcd = start(dir.path());
    let big = "v".repeat(100_000);
    for i in 0..20 {
        let value = if i % 5 == 0 { big.as_str() } else { "small" };
        let out = etcdctl(&etcd.endpoint, &["put", &format!("/k/{i}"), value]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let saved = dir.path().join("saved.db");
    let out = etcdctl(
        &etcd.endpoint,
        &["snapshot", "save", saved.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = status_json(&saved);
    let bytes = fs::read(&saved).unwrap();

    // The plain file: our assumptions about its shape hold.
    let (i, extracted) = testutil::inspect_vec(&bytes);
    assert_eq!(i.refused(), None, "{:#?}", i.findings);
    assert_eq!(i.kind, Kind::EtcdctlSnapshot);
    assert!(i.has_etcd_hash);
    assert_eq!(extracted, bytes);

    // pack → inspect, then etcdctl reads the db we extracted.
    let mut archive = Vec::new();
    let packed = pack(
        File::open(&saved).unwrap(),
        bytes.len() as u64,
        fields(),
        &mut archive,
        &mut NoProgress,
    )
    .unwrap();
    assert_eq!(packed.archive_sha256, hex::encode(Sha256::digest(&archive)));
    let (i, extracted) = testutil::inspect_vec(&archive);
    assert_eq!(i.refused(), None, "{:#?}", i.findings);
    assert_eq!(i.kind, Kind::Charm);
    assert_eq!(extracted, bytes);
    let restored = dir.path().join("extracted.db");
    fs::write(&restored, &extracted).unwrap();
    let got = status_json(&restored);
    assert_eq!(got, want);
    assert!(got["totalKey"].as_u64().unwrap() >= 20, "{got}");

    // The original charm's way: a raw copy of member/snap/db in a tar.gz.
    let etcd_data = etcd.data.clone();
    drop(etcd);
    let raw = fs::read(etcd_data.join("member/snap/db")).unwrap();
    let legacy = tar_gz(&[
        raw_entry(b"./", tar::EntryType::Directory, b"", None),
        testutil::file(b"./db", &raw),
    ]);
    let (i, extracted) = testutil::inspect_vec(&legacy);
    assert_eq!(i.refused(), None, "{:#?}", i.findings);
    assert_eq!(i.kind, Kind::LegacyCharm);
    assert!(i.needs_skip_hash_check);
    assert_eq!(extracted, raw);
}
