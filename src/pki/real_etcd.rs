//! The proof that matters: real etcd accepts these certificates. Two etcd
//! members on loopback run TLS for clients and peers with
//! `--client-cert-auth` and `--peer-client-cert-auth`, each with its own
//! server certificate (which it also presents when dialling the other
//! member), so the cluster only forms if serverAuth + clientAuth and the
//! SANs are right. Then etcdctl with a client certificate reads and writes
//! on both members, while no certificate, a certificate from a foreign CA
//! and plain HTTP are all refused. The module stays pure; only this test
//! runs processes and writes (0600) files.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::*;

use crate::testing::{free_port, require_etcd, wall_clock, write_private, Reaped, ETCD, ETCDCTL};

/// One etcd member, killed when dropped.
struct Member {
    _child: Reaped,
    client_url: String,
    log: PathBuf,
}

/// Client credentials as etcdctl flags; `None` parts are left out.
struct Creds {
    cacert: String,
    cert: Option<String>,
    key: Option<String>,
}

fn etcdctl(endpoints: &str, creds: &Creds, args: &[&str]) -> Output {
    let mut cmd = Command::new(ETCDCTL);
    cmd.env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoints}"))
        .args(["--dial-timeout=2s", "--command-timeout=5s"])
        .arg(format!("--cacert={}", creds.cacert));
    if let Some(cert) = &creds.cert {
        cmd.arg(format!("--cert={cert}"));
    }
    if let Some(key) = &creds.key {
        cmd.arg(format!("--key={key}"));
    }
    cmd.args(args).stdin(Stdio::null()).output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn logs(members: &[Member]) -> String {
    members
        .iter()
        .map(|m| fs::read_to_string(&m.log).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n----\n")
}

/// Starts `n` members, each with its own server certificate from `ca`.
fn start_cluster(dir: &Path, ca: &Ca, now: i64, n: usize) -> Vec<Member> {
    let ca_file = write_private(dir, "ca.crt", ca.cert_pem());
    let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
    let initial_cluster = ports
        .iter()
        .enumerate()
        .map(|(i, (_, peer))| format!("m{i}=https://127.0.0.1:{peer}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut members = Vec::new();
    for (i, (client, peer)) in ports.iter().enumerate() {
        let name = format!("m{i}");
        let mdir = dir.join(&name);
        fs::create_dir(&mdir).unwrap();
        let server = issue_server(
            ca,
            &name,
            &[San::parse("localhost").unwrap()],
            now,
            LEAF_VALIDITY_DAYS,
        )
        .unwrap();
        let cert = write_private(&mdir, "server.crt", &server.cert_pem);
        let key = write_private(&mdir, "server.key", server.key_pem.expose());
        let client_url = format!("https://127.0.0.1:{client}");
        let peer_url = format!("https://127.0.0.1:{peer}");
        let log = mdir.join("etcd.log");
        let child = Command::new(ETCD)
            .arg(format!("--name={name}"))
            .arg(format!("--data-dir={}", mdir.join("data").display()))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster={initial_cluster}"))
            .arg("--initial-cluster-state=new")
            .arg("--initial-cluster-token=pki-test")
            .arg(format!("--cert-file={cert}"))
            .arg(format!("--key-file={key}"))
            .arg(format!("--trusted-ca-file={ca_file}"))
            .arg("--client-cert-auth")
            .arg(format!("--peer-cert-file={cert}"))
            .arg(format!("--peer-key-file={key}"))
            .arg(format!("--peer-trusted-ca-file={ca_file}"))
            .arg("--peer-client-cert-auth")
            .stdin(Stdio::null())
            .stdout(File::create(&log).unwrap())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .unwrap();
        members.push(Member {
            _child: Reaped(child),
            client_url,
            log,
        });
    }
    members
}

/// What a plain-HTTP request to `url`'s port gets back within 3 s. The port
/// must accept the TCP connection: a refusal there would prove nothing.
fn plain_http(url: &str) -> String {
    let addr = url.trim_start_matches("https://").parse().unwrap();
    let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .unwrap_or_else(|e| panic!("{url} does not accept TCP: {e}"));
    conn.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let _ = conn.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    let mut reply = Vec::new();
    let _ = conn.read_to_end(&mut reply);
    String::from_utf8_lossy(&reply).into_owned()
}

#[test]
fn real_etcd_runs_tls_for_clients_and_peers_on_these_certificates() {
    require_etcd();
    let dir = tempfile::tempdir().unwrap();
    let now = wall_clock();
    let ca = Ca::generate("etcd-test CA", now, CA_VALIDITY_DAYS).unwrap();
    let members = start_cluster(dir.path(), &ca, now, 2);
    let endpoints = members
        .iter()
        .map(|m| m.client_url.as_str())
        .collect::<Vec<_>>()
        .join(",");

    let client = issue_client(&ca, "etcd-client", now, LEAF_VALIDITY_DAYS).unwrap();
    let good = Creds {
        cacert: write_private(dir.path(), "ca-for-client.crt", ca.cert_pem()),
        cert: Some(write_private(dir.path(), "client.crt", &client.cert_pem)),
        key: Some(write_private(
            dir.path(),
            "client.key",
            client.key_pem.expose(),
        )),
    };

    // Both members healthy means the peers accepted each other's
    // certificates in both directions.
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        let out = etcdctl(&endpoints, &good, &["endpoint", "health"]);
        if out.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the TLS cluster did not become healthy: {}\n{}",
            text(&out),
            logs(&members)
        );
        sleep(Duration::from_millis(300));
    }

    // Write on one member, read on the other.
    let out = etcdctl(&members[0].client_url, &good, &["put", "/pki/k", "v1"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = etcdctl(
        &members[1].client_url,
        &good,
        &["get", "/pki/k", "--print-value-only"],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "v1");
    let out = etcdctl(&members[0].client_url, &good, &["member", "list"]);
    assert!(out.status.success(), "{}", text(&out));
    let list = text(&out);
    assert_eq!(list.matches("https://127.0.0.1:").count(), 4, "{list}");

    // No client certificate: refused (--client-cert-auth).
    let bare = Creds {
        cacert: good.cacert.clone(),
        cert: None,
        key: None,
    };
    let out = etcdctl(&members[0].client_url, &bare, &["get", "/pki/k"]);
    assert!(
        !out.status.success(),
        "no client cert was accepted: {}",
        text(&out)
    );

    // A client certificate from a foreign CA (same name, other key): refused.
    let foreign_ca = Ca::generate("etcd-test CA", now, CA_VALIDITY_DAYS).unwrap();
    let foreign = issue_client(&foreign_ca, "etcd-client", now, LEAF_VALIDITY_DAYS).unwrap();
    let stranger = Creds {
        cacert: good.cacert.clone(),
        cert: Some(write_private(dir.path(), "foreign.crt", &foreign.cert_pem)),
        key: Some(write_private(
            dir.path(),
            "foreign.key",
            foreign.key_pem.expose(),
        )),
    };
    let out = etcdctl(&members[0].client_url, &stranger, &["get", "/pki/k"]);
    assert!(
        !out.status.success(),
        "a foreign client cert was accepted: {}",
        text(&out)
    );

    // A client that trusts only the foreign CA refuses our servers.
    let distrust = Creds {
        cacert: write_private(dir.path(), "foreign-ca.crt", foreign_ca.cert_pem()),
        cert: good.cert.clone(),
        key: good.key.clone(),
    };
    let out = etcdctl(&members[0].client_url, &distrust, &["get", "/pki/k"]);
    assert!(
        !out.status.success(),
        "a server passed a foreign CA: {}",
        text(&out)
    );

    // Plain HTTP is refused: etcd 3.4 closes the connection (a 400 would do
    // as well); it never answers the request.
    for m in &members {
        let reply = plain_http(&m.client_url);
        assert!(
            reply.is_empty()
                || reply.starts_with("HTTP/1.0 400")
                || reply.starts_with("HTTP/1.1 400"),
            "plain HTTP was served: {reply}"
        );
    }

    // Still healthy after all that, with the good credentials.
    let out = etcdctl(&endpoints, &good, &["endpoint", "health"]);
    assert!(out.status.success(), "{}", text(&out));
}
