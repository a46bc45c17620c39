//! An outside opinion: the `openssl` CLI checks what this module makes.
//! `openssl verify` must accept the chain for the right purpose (a server
//! certificate as sslserver, a client certificate as sslclient) and refuse
//! the wrong purpose and a foreign CA; the keys must match their
//! certificates. `openssl` must be installed (scripts/setup does it).
//! Only these tests touch files.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use super::*;
use crate::testing::{wall_clock, write_private};

/// The openssl CLI. The test command installs it (scripts/setup), so a
/// missing one is a broken setup, not a reason to pass quietly.
fn openssl() -> &'static str {
    ["/usr/bin/openssl", "/usr/local/bin/openssl"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or_else(|| panic!("openssl is not installed: run scripts/setup"))
}

fn run(openssl: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(openssl).args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn openssl_verifies_the_chain_for_the_right_purpose() {
    let openssl = openssl();
    let dir = tempfile::tempdir().unwrap();
    let now = wall_clock();
    let ca = Ca::generate("etcd-test CA", now, CA_VALIDITY_DAYS).unwrap();
    let foreign = Ca::generate("etcd-test CA", now, CA_VALIDITY_DAYS).unwrap();
    let server = issue_server(
        &ca,
        "etcd-0",
        &[
            San::parse("10.0.0.5").unwrap(),
            San::parse("etcd-0").unwrap(),
        ],
        now,
        LEAF_VALIDITY_DAYS,
    )
    .unwrap();
    let client = issue_client(&ca, "client", now, LEAF_VALIDITY_DAYS).unwrap();

    let ca_crt = write_private(dir.path(), "ca.crt", ca.cert_pem());
    let foreign_crt = write_private(dir.path(), "foreign.crt", foreign.cert_pem());
    let server_crt = write_private(dir.path(), "server.crt", &server.cert_pem);
    let client_crt = write_private(dir.path(), "client.crt", &client.cert_pem);

    let verify = |ca: &str, purpose: &str, cert: &str| {
        run(
            openssl,
            &["verify", "-CAfile", ca, "-purpose", purpose, cert],
        )
    };

    let (ok, out) = verify(&ca_crt, "sslserver", &server_crt);
    assert!(ok && out.contains("server.crt: OK"), "{out}");
    // etcd dials its peers with the same certificate.
    let (ok, out) = verify(&ca_crt, "sslclient", &server_crt);
    assert!(ok && out.contains("server.crt: OK"), "{out}");
    let (ok, out) = verify(&ca_crt, "sslclient", &client_crt);
    assert!(ok && out.contains("client.crt: OK"), "{out}");

    // Refusals: a client certificate cannot serve; a foreign CA (even with
    // the same name) does not vouch.
    let (ok, out) = verify(&ca_crt, "sslserver", &client_crt);
    assert!(!ok, "a client certificate passed as a server: {out}");
    let (ok, out) = verify(&foreign_crt, "sslserver", &server_crt);
    assert!(!ok, "a foreign CA vouched: {out}");

    // The CA is what it claims.
    let (ok, text) = run(openssl, &["x509", "-in", &ca_crt, "-noout", "-text"]);
    assert!(ok, "{text}");
    assert!(text.contains("CA:TRUE, pathlen:0"), "{text}");
    assert!(text.contains("Certificate Sign, CRL Sign"), "{text}");
    assert!(text.contains("prime256v1"), "{text}");
    let (ok, text) = run(openssl, &["x509", "-in", &server_crt, "-noout", "-text"]);
    assert!(ok, "{text}");
    assert!(
        text.contains("TLS Web Server Authentication, TLS Web Client Authentication"),
        "{text}"
    );
    assert!(text.contains("IP Address:10.0.0.5"), "{text}");
    assert!(text.contains("DNS:etcd-0"), "{text}");
    assert!(text.contains("DNS:localhost"), "{text}");
    assert!(text.contains("IP Address:127.0.0.1"), "{text}");

    // The fingerprint is openssl's, without colons and in lowercase.
    let (ok, text) = run(
        openssl,
        &["x509", "-in", &ca_crt, "-noout", "-fingerprint", "-sha256"],
    );
    assert!(ok, "{text}");
    let theirs = text
        .trim()
        .rsplit('=')
        .next()
        .unwrap()
        .replace(':', "")
        .to_lowercase();
    assert_eq!(theirs, ca.fingerprint_sha256());
}

#[test]
fn openssl_agrees_each_key_matches_its_certificate() {
    let openssl = openssl();
    let dir = tempfile::tempdir().unwrap();
    let now = wall_clock();
    let ca = Ca::generate("etcd-test CA", now, CA_VALIDITY_DAYS).unwrap();
    let server = issue_server(&ca, "etcd-0", &[], now, 30).unwrap();
    let client = issue_client(&ca, "client", now, 30).unwrap();
    let pairs = [
        ("ca", ca.cert_pem().to_string(), ca.key_pem().clone()),
        ("server", server.cert_pem.clone(), server.key_pem.clone()),
        ("client", client.cert_pem.clone(), client.key_pem.clone()),
    ];
    let mut pubkeys = Vec::new();
    for (name, cert, key) in &pairs {
        let crt = write_private(dir.path(), &format!("{name}.crt"), cert);
        let key_path = write_private(dir.path(), &format!("{name}.key"), key.expose());
        let (ok, from_cert) = run(openssl, &["x509", "-in", &crt, "-noout", "-pubkey"]);
        assert!(ok, "{from_cert}");
        let (ok, from_key) = run(openssl, &["pkey", "-in", &key_path, "-pubout"]);
        assert!(ok, "{from_key}");
        assert_eq!(from_cert, from_key, "{name}");
        let (ok, check) = run(openssl, &["pkey", "-in", &key_path, "-check", "-noout"]);
        assert!(ok, "{name}: {check}");
        assert_eq!(
            fs::metadata(&key_path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        pubkeys.push(from_cert);
    }
    // Three different keys.
    assert_ne!(pubkeys[0], pubkeys[1]);
    assert_ne!(pubkeys[1], pubkeys[2]);
}
