//! Pure tests of the PKI: CAs round-trip and are refused when they should
//! be, leaf certificates carry the right SANs, key usages, issuer and
//! validity, renewal windows hold at their edges, and no key material shows
//! in `Debug` output or error messages.

use std::net::IpAddr;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use x509_parser::pem::parse_x509_pem;

use super::parse::{rfc3339, DAY};
use super::*;

/// 2026-05-28T20:26:40Z.
const NOW: i64 = 1_780_000_000;

fn ca() -> Ca {
    Ca::generate("etcd-test CA", NOW, CA_VALIDITY_DAYS).unwrap()
}

fn sans(texts: &[&str]) -> Vec<San> {
    texts.iter().map(|t| San::parse(t).unwrap()).collect()
}

fn ip(text: &str) -> San {
    San::Ip(text.parse::<IpAddr>().unwrap())
}

fn dns(text: &str) -> San {
    San::Dns(text.to_string())
}

/// The base64 lines of a PEM block (its secret body, for a key).
fn body_lines(pem: &str) -> Vec<&str> {
    pem.lines()
        .filter(|l| !l.starts_with("-----") && !l.is_empty())
        .collect()
}

/// ring's PKCS#8 for a P-256 key, up to the private scalar: 36 bytes, which
/// are exactly the first 48 base64 characters of the body.
const P256_PKCS8_PREFIX: &str = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg";

/// Asserts that `text` shows no part of `key`'s secret: no PEM block (the
/// label followed by a line break) and no 16-character run of the base64
/// that encodes only the private scalar (body characters 48..88, bytes
/// 36..66). The rest of the body is the public algorithm header and the
/// public key, which the certificate shows anyway.
fn assert_no_key(text: &str, key: &SecretPem) {
    assert!(
        !text.contains("PRIVATE KEY-----\n") && !text.contains("PRIVATE KEY-----\\n"),
        "a key PEM block leaked: {text}"
    );
    let body: String = body_lines(key.expose()).concat();
    assert!(body.starts_with(P256_PKCS8_PREFIX), "not a ring P-256 key");
    let secret = &body[48..88];
    for start in 0..=secret.len() - 16 {
        let run = &secret[start..start + 16];
        assert!(!text.contains(run), "key bytes {run:?} leaked: {text}");
    }
}

/// Runs `f` on a parsed certificate.
fn with_x509<T>(
    pem: &str,
    f: impl FnOnce(&x509_parser::certificate::X509Certificate<'_>) -> T,
) -> T {
    let (_, block) = parse_x509_pem(pem.as_bytes()).unwrap();
    let cert = block.parse_x509().unwrap();
    f(&cert)
}

// ---------------------------------------------------------------- the CA

#[test]
fn generated_ca_round_trips_with_the_same_fingerprint() {
    let ca = ca();
    let back = Ca::from_pem(ca.cert_pem(), ca.key_pem().expose()).unwrap();
    assert_eq!(back.fingerprint_sha256(), ca.fingerprint_sha256());
    assert_eq!(back.cert_pem(), ca.cert_pem());
    assert_eq!(back.key_pem(), ca.key_pem());
    assert_eq!(back.subject(), "etcd-test CA");

    let fp = ca.fingerprint_sha256();
    assert_eq!(fp.len(), 64);
    assert!(
        fp.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "{fp}"
    );

    let info = inspect_cert(ca.cert_pem()).unwrap();
    assert_eq!(info.fingerprint_sha256, fp);
    assert!(info.is_ca);
    assert_eq!(info.subject_cn, "etcd-test CA");
    assert_eq!(info.issuer_cn, "etcd-test CA");
    assert_eq!(info.not_after, NOW + i64::from(CA_VALIDITY_DAYS) * DAY);
    assert_eq!(info.not_before, NOW - BACKDATE_SECS);
    assert_eq!(
        (ca.not_before(), ca.not_after()),
        (info.not_before, info.not_after)
    );
    assert!(verify_signed_by(ca.cert_pem(), ca.cert_pem()).unwrap());
}

#[test]
fn generated_ca_is_p256_with_ca_constraints_and_usages() {
    let ca = ca();
    with_x509(ca.cert_pem(), |cert| {
        let bc = cert.basic_constraints().unwrap().unwrap();
        assert!(bc.critical);
        assert!(bc.value.ca);
        assert_eq!(bc.value.path_len_constraint, Some(0));
        let ku = cert.key_usage().unwrap().unwrap().value;
        assert!(ku.key_cert_sign() && ku.crl_sign(), "{ku:?}");
        assert!(!ku.digital_signature());
        assert_eq!(
            cert.public_key().algorithm.algorithm,
            x509_parser::oid_registry::OID_KEY_TYPE_EC_PUBLIC_KEY
        );
        let curve = cert.public_key().algorithm.parameters.as_ref().unwrap();
        assert_eq!(
            curve.as_oid().unwrap(),
            x509_parser::oid_registry::OID_EC_P256
        );
        assert_eq!(
            cert.signature_algorithm.algorithm,
            x509_parser::oid_registry::OID_SIG_ECDSA_WITH_SHA256
        );
        // A random, positive serial of 16 bytes.
        assert_eq!(cert.raw_serial().len(), 16);
    });
}

#[test]
fn two_cas_differ() {
    let (a, b) = (ca(), ca());
    assert_ne!(a.fingerprint_sha256(), b.fingerprint_sha256());
    assert_ne!(a.key_pem(), b.key_pem());
    let (ia, ib) = (
        inspect_cert(a.cert_pem()).unwrap(),
        inspect_cert(b.cert_pem()).unwrap(),
    );
    assert_ne!(ia.serial_hex, ib.serial_hex);
}

#[test]
fn ca_validity_follows_the_days_asked_for() {
    let ca = Ca::generate("short", NOW, 2).unwrap();
    assert_eq!(ca.not_after(), NOW + 2 * DAY);
    assert!(matches!(
        Ca::generate("zero", NOW, 0),
        Err(PkiError::BadValidity { days: 0, .. })
    ));
    assert!(matches!(
        Ca::generate("long", NOW, MAX_VALIDITY_DAYS + 1),
        Err(PkiError::BadValidity { .. })
    ));
}

#[test]
fn from_pem_refuses_garbage() {
    let ca = ca();
    let key = ca.key_pem().expose();
    for cert in [
        "",
        "hello",
        "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
    ] {
        let err = Ca::from_pem(cert, key).unwrap_err();
        assert!(matches!(err, PkiError::BadCertificate { .. }), "{err}");
        assert!(
            err.to_string().contains("-----BEGIN CERTIFICATE-----"),
            "{err}"
        );
    }
    // Valid base64, not a certificate.
    let not_x509 = "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n";
    let err = Ca::from_pem(not_x509, key).unwrap_err();
    assert!(
        err.to_string().contains("not an X.509 certificate"),
        "{err}"
    );

    for bad_key in ["", "hello", ca.cert_pem()] {
        let err = Ca::from_pem(ca.cert_pem(), bad_key).unwrap_err();
        assert!(
            matches!(err, PkiError::BadKey { what: "the CA key" }),
            "{err}"
        );
        assert!(err.to_string().contains("PKCS#8"), "{err}");
    }
}

#[test]
fn from_pem_refuses_the_key_where_the_certificate_goes() {
    let ca = ca();
    let err = Ca::from_pem(ca.key_pem().expose(), ca.key_pem().expose()).unwrap_err();
    assert!(
        err.to_string().contains("it is a PRIVATE KEY block"),
        "{err}"
    );
    // The label is named; the key itself is not.
    let body: String = body_lines(ca.key_pem().expose()).concat();
    assert!(!err.to_string().contains(&body[..16]), "{err}");
}

#[test]
fn from_pem_refuses_a_key_that_does_not_match() {
    let (a, b) = (ca(), ca());
    let err = Ca::from_pem(a.cert_pem(), b.key_pem().expose()).unwrap_err();
    assert!(matches!(err, PkiError::KeyMismatch { .. }), "{err}");
    assert!(err.to_string().contains("does not belong"), "{err}");
    assert_no_key(&err.to_string(), b.key_pem());
    assert_no_key(&format!("{err:?}"), b.key_pem());
}

#[test]
fn from_pem_refuses_a_leaf_posing_as_ca() {
    let ca = ca();
    for leaf in [
        issue_server(&ca, "etcd-0", &[], NOW, LEAF_VALIDITY_DAYS).unwrap(),
        issue_client(&ca, "client", NOW, LEAF_VALIDITY_DAYS).unwrap(),
    ] {
        let err = Ca::from_pem(&leaf.cert_pem, leaf.key_pem.expose()).unwrap_err();
        assert!(matches!(err, PkiError::NotACa { .. }), "{err}");
        assert!(err.to_string().contains("not a CA"), "{err}");
    }
}

#[test]
fn from_pem_refuses_a_bundle() {
    let ca = ca();
    let leaf = issue_client(&ca, "client", NOW, 30).unwrap();
    let bundle = format!("{}{}", ca.cert_pem(), leaf.cert_pem);
    let err = Ca::from_pem(&bundle, ca.key_pem().expose()).unwrap_err();
    assert!(err.to_string().contains("more than one PEM block"), "{err}");
}

#[test]
fn from_pem_refuses_an_intermediate_and_a_ca_that_cannot_sign() {
    let root = ca();
    let root_issuer = Issuer::from_ca_cert_pem(
        root.cert_pem(),
        KeyPair::from_pem(root.key_pem().expose()).unwrap(),
    )
    .unwrap();

    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let intermediate = params.signed_by(&key, &root_issuer).unwrap();
    let err = Ca::from_pem(&intermediate.pem(), &key.serialize_pem()).unwrap_err();
    assert!(matches!(err, PkiError::NotSelfSigned { .. }), "{err}");

    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let cannot_sign = params.self_signed(&key).unwrap();
    let err = Ca::from_pem(&cannot_sign.pem(), &key.serialize_pem()).unwrap_err();
    assert!(matches!(err, PkiError::CaCannotSign { .. }), "{err}");

    // The same CA with keyCertSign is accepted: the refusals above are
    // about what they say, not about rcgen-made certificates in general.
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let fine = params.self_signed(&key).unwrap();
    Ca::from_pem(&fine.pem(), &key.serialize_pem()).unwrap();
}

#[test]
fn from_pem_accepts_surrounding_whitespace() {
    let ca = ca();
    let padded = format!("\n\n{}\n\n", ca.cert_pem());
    let back = Ca::from_pem(&padded, ca.key_pem().expose()).unwrap();
    assert_eq!(back.fingerprint_sha256(), ca.fingerprint_sha256());
    assert_eq!(back.cert_pem(), ca.cert_pem());
}

// ---------------------------------------------------------------- leaves

#[test]
fn server_cert_has_exactly_the_sans_asked_for_plus_loopback() {
    let ca = ca();
    let given = sans(&[
        "10.1.2.3",
        "fd00::7",
        "etcd-0.lxd",
        "10.1.2.3",
        "LOCALHOST",
        "127.0.0.1",
    ]);
    let server = issue_server(&ca, "etcd-0", &given, NOW, LEAF_VALIDITY_DAYS).unwrap();
    let info = inspect_cert(&server.cert_pem).unwrap();
    assert_eq!(
        info.sans,
        vec![
            ip("10.1.2.3"),
            ip("fd00::7"),
            dns("etcd-0.lxd"),
            dns("localhost"),
            ip("127.0.0.1"),
        ]
    );

    // With nothing given, the loopback names alone.
    let bare = issue_server(&ca, "etcd-0", &[], NOW, LEAF_VALIDITY_DAYS).unwrap();
    assert_eq!(
        inspect_cert(&bare.cert_pem).unwrap().sans,
        vec![dns("localhost"), ip("127.0.0.1")]
    );
}

#[test]
fn server_sans_dedups_without_case() {
    let out = server_sans(&[
        dns("Etcd-0"),
        dns("etcd-0"),
        ip("127.0.0.1"),
        dns("LocalHost"),
    ]);
    assert_eq!(out, vec![dns("Etcd-0"), ip("127.0.0.1"), dns("LocalHost")]);
}

#[test]
fn server_cert_serves_and_dials_and_is_signed_by_the_ca() {
    let ca = ca();
    let server =
        issue_server(&ca, "etcd-0", &sans(&["10.0.0.5"]), NOW, LEAF_VALIDITY_DAYS).unwrap();
    let info = inspect_cert(&server.cert_pem).unwrap();
    assert!(info.server_auth, "{info:?}");
    assert!(info.client_auth, "{info:?}");
    assert!(!info.is_ca);
    assert_eq!(info.subject_cn, "etcd-0");
    assert_eq!(info.issuer_cn, ca.subject());
    assert_eq!(info.not_after, NOW + 365 * DAY);
    assert_eq!(server.not_after, info.not_after);
    assert_eq!(info.not_before, NOW - BACKDATE_SECS);
    assert!(verify_signed_by(&server.cert_pem, ca.cert_pem()).unwrap());

    with_x509(ca.cert_pem(), |ca_cert| {
        with_x509(&server.cert_pem, |cert| {
            assert_eq!(cert.issuer().as_raw(), ca_cert.subject().as_raw());
            // basicConstraints present and CA:false; digitalSignature only.
            let bc = cert.basic_constraints().unwrap().unwrap();
            assert!(!bc.value.ca);
            let ku = cert.key_usage().unwrap().unwrap().value;
            assert!(ku.digital_signature() && !ku.key_cert_sign());
            // The authority key identifier names the CA's subject key id.
            let aki = cert
                .iter_extensions()
                .find_map(|e| match e.parsed_extension() {
                    x509_parser::extensions::ParsedExtension::AuthorityKeyIdentifier(a) => {
                        a.key_identifier.as_ref().map(|k| k.0.to_vec())
                    }
                    _ => None,
                })
                .unwrap();
            let ski = ca_cert
                .iter_extensions()
                .find_map(|e| match e.parsed_extension() {
                    x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(k) => {
                        Some(k.0.to_vec())
                    }
                    _ => None,
                })
                .unwrap();
            assert_eq!(aki, ski);
        });
    });

    // The key is a PKCS#8 P-256 key that matches the certificate.
    let key = KeyPair::from_pem(server.key_pem.expose()).unwrap();
    assert_eq!(key.algorithm(), &rcgen::PKCS_ECDSA_P256_SHA256);
    with_x509(&server.cert_pem, |cert| {
        assert_eq!(
            key.public_key_raw(),
            &*cert.public_key().subject_public_key.data
        );
    });
}

#[test]
fn client_cert_is_client_auth_only() {
    let ca = ca();
    let client = issue_client(&ca, "etcd-client", NOW, LEAF_VALIDITY_DAYS).unwrap();
    let info = inspect_cert(&client.cert_pem).unwrap();
    assert!(info.client_auth, "{info:?}");
    assert!(!info.server_auth, "{info:?}");
    assert!(!info.is_ca);
    assert!(info.sans.is_empty(), "{:?}", info.sans);
    assert_eq!(info.subject_cn, "etcd-client");
    assert_eq!(info.issuer_cn, ca.subject());
    assert!(verify_signed_by(&client.cert_pem, ca.cert_pem()).unwrap());
}

#[test]
fn each_leaf_has_its_own_key_and_serial() {
    let ca = ca();
    let a = issue_client(&ca, "c", NOW, 30).unwrap();
    let b = issue_client(&ca, "c", NOW, 30).unwrap();
    assert_ne!(a.key_pem, b.key_pem);
    assert_ne!(
        inspect_cert(&a.cert_pem).unwrap().serial_hex,
        inspect_cert(&b.cert_pem).unwrap().serial_hex
    );
}

#[test]
fn verify_signed_by_refuses_another_ca_even_with_the_same_name() {
    let (ca, twin) = (ca(), ca());
    assert_eq!(ca.subject(), twin.subject());
    let server = issue_server(&ca, "etcd-0", &[], NOW, 30).unwrap();
    // Same issuer name, other key: only the signature check can tell.
    assert!(!verify_signed_by(&server.cert_pem, twin.cert_pem()).unwrap());
    let other = Ca::generate("another CA", NOW, 30).unwrap();
    assert!(!verify_signed_by(&server.cert_pem, other.cert_pem()).unwrap());
    assert!(verify_signed_by(&server.cert_pem, ca.cert_pem()).unwrap());
    assert!(matches!(
        verify_signed_by("junk", ca.cert_pem()),
        Err(PkiError::BadCertificate {
            what: "the certificate",
            ..
        })
    ));
    assert!(matches!(
        verify_signed_by(&server.cert_pem, "junk"),
        Err(PkiError::BadCertificate {
            what: "the CA certificate",
            ..
        })
    ));
}

#[test]
fn a_leaf_never_outlives_its_ca() {
    let ca = Ca::generate("short CA", NOW, 10).unwrap();
    let later = NOW + 3 * DAY;
    let server = issue_server(&ca, "etcd-0", &[], later, LEAF_VALIDITY_DAYS).unwrap();
    assert_eq!(server.not_after, ca.not_after());
    let info = inspect_cert(&server.cert_pem).unwrap();
    assert_eq!(info.not_after, ca.not_after());
    assert_eq!(info.not_before, later - BACKDATE_SECS);
    // And never starts before it.
    let early = issue_client(&ca, "c", NOW - BACKDATE_SECS + 10, 1).unwrap();
    assert_eq!(
        inspect_cert(&early.cert_pem).unwrap().not_before,
        ca.not_before()
    );
}

#[test]
fn issuing_outside_the_cas_validity_is_refused() {
    let ca = Ca::generate("short CA", NOW, 10).unwrap();
    let err = issue_client(&ca, "c", ca.not_after(), 1).unwrap_err();
    assert!(matches!(err, PkiError::CaNotValid { .. }), "{err}");
    assert!(err.to_string().contains("expired"), "{err}");
    let err = issue_server(&ca, "s", &[], ca.not_before() - 1, 1).unwrap_err();
    assert!(err.to_string().contains("clock is behind"), "{err}");
    assert!(err.to_string().contains(&rfc3339(ca.not_before())), "{err}");
}

#[test]
fn bad_names_validity_and_times_are_refused() {
    let ca = ca();
    for cn in ["", "   ", &"x".repeat(65), "a\nb"] {
        let err = issue_client(&ca, cn, NOW, 1).unwrap_err();
        assert!(
            matches!(err, PkiError::BadCommonName { .. }),
            "{cn:?}: {err}"
        );
    }
    issue_client(&ca, &"x".repeat(64), NOW, 1).unwrap();
    assert!(matches!(
        issue_client(&ca, "c", NOW, 0),
        Err(PkiError::BadValidity { .. })
    ));
    for now in [i64::MAX, i64::MIN, 253_402_300_800 /* year 10000 */] {
        let err = Ca::generate("CA", now, 1).unwrap_err();
        assert!(matches!(err, PkiError::BadTime { .. }), "{now}: {err}");
    }
}

// ---------------------------------------------------------------- renewal

#[test]
fn needs_renewal_only_within_the_window() {
    let ca = ca();
    let server = issue_server(&ca, "etcd-0", &[], NOW, LEAF_VALIDITY_DAYS).unwrap();
    let end = server.not_after;
    let window = i64::from(RENEW_WITHIN_DAYS) * DAY;
    let at = |now| needs_renewal(&server.cert_pem, now, RENEW_WITHIN_DAYS).unwrap();
    assert!(!at(NOW));
    assert!(!at(end - window - 1));
    assert!(at(end - window));
    assert!(at(end - DAY));
    assert!(at(end));
    assert!(at(end + 365 * DAY));
    // Not valid yet (the clock went back): reissue.
    assert!(at(NOW - BACKDATE_SECS - 1));
    assert!(!at(NOW - BACKDATE_SECS));
    // A window of zero renews only once expired.
    assert!(!needs_renewal(&server.cert_pem, end - 1, 0).unwrap());
    assert!(needs_renewal(&server.cert_pem, end, 0).unwrap());
    assert!(matches!(
        needs_renewal("junk", NOW, 30),
        Err(PkiError::BadCertificate { .. })
    ));
}

// ---------------------------------------------------------------- SANs

#[test]
fn san_parse_picks_ip_when_it_is_one() {
    assert_eq!(San::parse("10.0.0.1").unwrap(), ip("10.0.0.1"));
    assert_eq!(San::parse(" 10.0.0.1\n").unwrap(), ip("10.0.0.1"));
    assert_eq!(San::parse("fe80::1").unwrap(), ip("fe80::1"));
    assert_eq!(San::parse("[2001:db8::1]").unwrap(), ip("2001:db8::1"));
    assert_eq!(San::parse("Etcd-0.LXD").unwrap(), dns("etcd-0.lxd"));
    assert_eq!(San::parse("juju-abc-0.").unwrap(), dns("juju-abc-0"));
    assert_eq!(San::parse("under_score").unwrap(), dns("under_score"));
    // Looks numeric, is not an IP: a DNS name.
    assert_eq!(San::parse("10.0.0").unwrap(), dns("10.0.0"));
    assert_eq!(San::parse("10.0.0.1").unwrap().to_string(), "IP:10.0.0.1");
    assert_eq!(San::parse("host").unwrap().to_string(), "DNS:host");
    for bad in [
        "",
        " ",
        "a..b",
        ".a",
        "-a.b",
        "a-.b",
        "a b",
        "héllo",
        "a/b",
        "*.x",
        &"a".repeat(64),
    ] {
        let err = San::parse(bad).unwrap_err();
        assert!(matches!(err, PkiError::BadSan { .. }), "{bad:?}: {err}");
        assert!(
            err.to_string().contains("pass an IP address or a DNS name"),
            "{err}"
        );
    }
}

// ---------------------------------------------------------------- secrets

#[test]
fn debug_never_shows_a_key() {
    let ca = ca();
    let server = issue_server(&ca, "etcd-0", &sans(&["10.0.0.1"]), NOW, 30).unwrap();
    let client = issue_client(&ca, "c", NOW, 30).unwrap();

    let shown = format!("{ca:?} {ca:#?}");
    assert!(!shown.contains("PRIVATE KEY"), "{shown}");
    assert_no_key(&shown, ca.key_pem());
    assert!(shown.contains("[redacted]"), "{shown}");
    assert!(shown.contains(&ca.fingerprint_sha256()), "{shown}");

    for leaf in [&server, &client] {
        let shown = format!("{leaf:?} {leaf:#?} {:?}", leaf.key_pem);
        assert!(!shown.contains("PRIVATE KEY"), "{shown}");
        assert_no_key(&shown, &leaf.key_pem);
        assert!(shown.contains("[redacted]"), "{shown}");
        // The certificate is public and may show.
        assert!(shown.contains("BEGIN CERTIFICATE"), "{shown}");
    }
    // The check itself can fail: the exposed text does hold the key.
    assert!(ca.key_pem().expose().contains("PRIVATE KEY"));
    let leaked = std::panic::catch_unwind(|| assert_no_key(ca.key_pem().expose(), ca.key_pem()));
    assert!(leaked.is_err());
    let scalar_only = body_lines(ca.key_pem().expose()).concat()[50..70].to_string();
    let leaked = std::panic::catch_unwind(|| assert_no_key(&scalar_only, ca.key_pem()));
    assert!(leaked.is_err());
}

#[test]
fn errors_never_show_a_key() {
    let ca = ca();
    let key = ca.key_pem();
    // A key with a corrupted body: parsers fail on it, and their messages
    // (which may quote the offending bytes) must not come through.
    let mut lines: Vec<String> = key.expose().lines().map(str::to_string).collect();
    lines[1].replace_range(10..12, "!!");
    let corrupted = SecretPem::new(lines.join("\n"));
    let truncated = SecretPem::new(key.expose()[..key.expose().len() / 2].to_string());
    let other = ca_key_of_another();
    for bad in [&corrupted, &truncated, &other] {
        let err = Ca::from_pem(ca.cert_pem(), bad.expose()).unwrap_err();
        for text in [err.to_string(), format!("{err:?}")] {
            // corrupted and truncated carry `key`'s secret.
            assert_no_key(&text, key);
            assert_no_key(&text, &other);
        }
    }
    // A key handed in where the certificate goes.
    let err = Ca::from_pem(key.expose(), key.expose()).unwrap_err();
    for text in [err.to_string(), format!("{err:?}")] {
        assert!(
            !text.contains(&body_lines(key.expose()).concat()[..16]),
            "{text}"
        );
    }
}

fn ca_key_of_another() -> SecretPem {
    ca().key_pem().clone()
}
