//! Leaf certificates signed by a [`Ca`]: [`issue_server`] for a unit's
//! etcd (client and peer listeners) and [`issue_client`] for whoever talks
//! to etcd (the charm itself, `db` relation consumers, packaged
//! credentials).
//!
//! Each call generates a fresh ECDSA P-256 key, so a renewal is also a key
//! rotation. A leaf never outlives its CA: `notAfter` is clamped to the
//! CA's, and issuing outside the CA's validity is refused.

use rcgen::{CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType};

use super::ca::{check_common_name, distinguished_name, random_serial, window, Ca};
use super::error::{PkiError, Result};
use super::parse::{datetime, rfc3339};
use super::san::San;
use super::secret::SecretPem;

/// A new leaf certificate's validity: 1 year.
pub const LEAF_VALIDITY_DAYS: u32 = 365;

/// A freshly issued certificate and its private key.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// Its private key, PKCS#8 PEM.
    pub key_pem: SecretPem,
    /// The end of validity, Unix seconds.
    pub not_after: i64,
}

/// The SANs a server certificate carries: `sans` in order, then
/// `localhost` and `127.0.0.1`, without duplicates.
pub fn server_sans(sans: &[San]) -> Vec<San> {
    let mut out: Vec<San> = Vec::new();
    for san in sans
        .iter()
        .cloned()
        .chain([San::localhost(), San::loopback()])
    {
        if !out.iter().any(|s| s.same_as(&san)) {
            out.push(san);
        }
    }
    out
}

/// A certificate for etcd's client and peer listeners: extended key usage
/// serverAuth and clientAuth (etcd presents the same certificate when it
/// dials other members), SANs from [`server_sans`].
pub fn issue_server(
    ca: &Ca,
    common_name: &str,
    sans: &[San],
    now: i64,
    validity_days: u32,
) -> Result<Issued> {
    issue(
        ca,
        common_name,
        &server_sans(sans),
        &[
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
        now,
        validity_days,
    )
}

/// A client certificate: extended key usage clientAuth only, no SANs.
pub fn issue_client(ca: &Ca, common_name: &str, now: i64, validity_days: u32) -> Result<Issued> {
    issue(
        ca,
        common_name,
        &[],
        &[ExtendedKeyUsagePurpose::ClientAuth],
        now,
        validity_days,
    )
}

fn issue(
    ca: &Ca,
    common_name: &str,
    sans: &[San],
    usages: &[ExtendedKeyUsagePurpose],
    now: i64,
    validity_days: u32,
) -> Result<Issued> {
    check_common_name(common_name)?;
    let (not_before, not_after) = window(now, validity_days)?;
    if now < ca.not_before() || now >= ca.not_after() {
        return Err(PkiError::CaNotValid {
            subject: ca.subject().to_string(),
            now: rfc3339(now),
            not_before: rfc3339(ca.not_before()),
            not_after: rfc3339(ca.not_after()),
            hint: if now < ca.not_before() {
                "this machine's clock is behind the one that made the CA: fix its time (NTP)"
            } else {
                "the CA has expired: generate a new CA and reissue every certificate"
            },
        });
    }
    let not_before = not_before.max(ca.not_before());
    let not_after = not_after.min(ca.not_after());

    let mut subject_alt_names = Vec::with_capacity(sans.len());
    for san in sans {
        subject_alt_names.push(match san {
            San::Ip(ip) => SanType::IpAddress(*ip),
            San::Dns(name) => {
                SanType::DnsName(name.clone().try_into().map_err(|_| PkiError::BadSan {
                    value: name.clone(),
                    reason: "a DNS name must be ASCII",
                })?)
            }
        });
    }

    let key =
        KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| PkiError::Generate {
            what: "a certificate key",
            reason: e.to_string(),
        })?;
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(common_name);
    params.subject_alt_names = subject_alt_names;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = usages.to_vec();
    params.use_authority_key_identifier_extension = true;
    params.not_before = datetime(not_before)?;
    params.not_after = datetime(not_after)?;
    params.serial_number = Some(random_serial()?);
    let cert = params
        .signed_by(&key, &ca.issuer()?)
        .map_err(|e| PkiError::Generate {
            what: "a certificate",
            reason: e.to_string(),
        })?;
    Ok(Issued {
        cert_pem: cert.pem(),
        key_pem: SecretPem::new(key.serialize_pem()),
        not_after,
    })
}
