//! [`Ca`]: the application's certificate authority, generated once by the
//! leader or read back from where Juju keeps it.
//!
//! A `Ca` is always valid by construction: [`Ca::generate`] goes through
//! [`Ca::from_pem`], which checks that the text holds exactly one
//! self-signed CA certificate (basicConstraints CA:true, keyUsage with
//! keyCertSign when present) and the private key that belongs to it. The
//! key is kept as a [`SecretPem`]; `Debug` shows the subject, fingerprint
//! and validity only.

use std::fmt;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber, PKCS_ECDSA_P256_SHA256,
};
use ring::rand::{SecureRandom, SystemRandom};
use x509_parser::error::X509Error;

use super::error::{PkiError, Result};
use super::parse::{self, datetime, DAY};
use super::secret::SecretPem;

/// A new CA's validity: 10 years.
pub const CA_VALIDITY_DAYS: u32 = 3650;
/// The longest validity accepted for any certificate: 100 years.
pub const MAX_VALIDITY_DAYS: u32 = 36_500;
/// How far `notBefore` is set before `now`, so that a unit whose clock is a
/// little behind the issuer's still accepts a fresh certificate.
pub const BACKDATE_SECS: i64 = 3600;

const WHAT_CERT: &str = "the CA certificate";
const WHAT_KEY: &str = "the CA key";

/// A CA certificate and its private key.
#[derive(Clone)]
pub struct Ca {
    cert_pem: String,
    key_pem: SecretPem,
    der: Vec<u8>,
    subject: String,
    not_before: i64,
    not_after: i64,
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ca")
            .field("subject", &self.subject)
            .field("fingerprint_sha256", &self.fingerprint_sha256())
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .field("key_pem", &self.key_pem)
            .finish()
    }
}

impl Ca {
    /// Generates a new CA: an ECDSA P-256 key and a self-signed certificate
    /// with CA:true (path length 0: it signs leaf certificates only),
    /// keyUsage keyCertSign + cRLSign, valid from `now` (less
    /// [`BACKDATE_SECS`]) for `validity_days` (see [`CA_VALIDITY_DAYS`]).
    pub fn generate(common_name: &str, now: i64, validity_days: u32) -> Result<Ca> {
        check_common_name(common_name)?;
        let (not_before, not_after) = window(now, validity_days)?;
        let key =
            KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|e| PkiError::Generate {
                what: "the CA key",
                reason: e.to_string(),
            })?;
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = datetime(not_before)?;
        params.not_after = datetime(not_after)?;
        params.serial_number = Some(random_serial()?);
        let cert = params.self_signed(&key).map_err(|e| PkiError::Generate {
            what: "the CA certificate",
            reason: e.to_string(),
        })?;
        let key_pem = SecretPem::new(key.serialize_pem());
        Ca::from_pem(&cert.pem(), key_pem.expose())
    }

    /// Reads a CA back from its PEM texts (from a Juju secret or a snapshot
    /// archive) and checks that it can be used: one self-signed CA
    /// certificate, and the PKCS#8 key that belongs to it.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Ca> {
        let (der, more) = parse::cert_der(WHAT_CERT, cert_pem)?;
        if more {
            return Err(PkiError::BadCertificate {
                what: WHAT_CERT,
                reason: "it holds more than one PEM block".to_string(),
            });
        }
        let cert = parse::parse_der(WHAT_CERT, &der)?;
        let subject = parse::common_name(cert.subject());
        if !parse::is_ca(WHAT_CERT, &cert)? {
            return Err(PkiError::NotACa { subject });
        }
        let usage = cert.key_usage().map_err(|e| PkiError::BadCertificate {
            what: WHAT_CERT,
            reason: format!("unreadable keyUsage: {e}"),
        })?;
        if usage.is_some_and(|u| !u.value.key_cert_sign()) {
            return Err(PkiError::CaCannotSign { subject });
        }
        if cert.issuer().as_raw() != cert.subject().as_raw() {
            return Err(PkiError::NotSelfSigned { subject });
        }
        match cert.verify_signature(None) {
            Ok(()) => {}
            Err(X509Error::SignatureVerificationError) => {
                return Err(PkiError::NotSelfSigned { subject })
            }
            Err(e) => {
                return Err(PkiError::Unverifiable {
                    what: WHAT_CERT,
                    reason: e.to_string(),
                })
            }
        }
        // The parser's error text is dropped on purpose: it could quote the key.
        let key = KeyPair::from_pem(key_pem).map_err(|_| PkiError::BadKey { what: WHAT_KEY })?;
        if key.public_key_raw() != &*cert.public_key().subject_public_key.data {
            return Err(PkiError::KeyMismatch { subject });
        }
        let not_before = cert.validity().not_before.timestamp();
        let not_after = cert.validity().not_after.timestamp();
        let mut cert_pem = cert_pem.trim().to_string();
        cert_pem.push('\n');
        Ok(Ca {
            cert_pem,
            key_pem: SecretPem::new(key.serialize_pem()),
            der,
            subject,
            not_before,
            not_after,
        })
    }

    /// The CA certificate (public: etcd's `--trusted-ca-file`, clients' CA).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA's private key, as PKCS#8 PEM.
    pub fn key_pem(&self) -> &SecretPem {
        &self.key_pem
    }

    /// Lowercase hex SHA-256 of the certificate's DER, without colons.
    pub fn fingerprint_sha256(&self) -> String {
        parse::fingerprint(&self.der)
    }

    /// The certificate's common name.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The start of validity, Unix seconds.
    pub fn not_before(&self) -> i64 {
        self.not_before
    }

    /// The end of validity, Unix seconds.
    pub fn not_after(&self) -> i64 {
        self.not_after
    }

    /// The rcgen issuer that signs with this CA's key.
    pub(super) fn issuer(&self) -> Result<Issuer<'static, KeyPair>> {
        let key = KeyPair::from_pem(self.key_pem.expose())
            .map_err(|_| PkiError::BadKey { what: WHAT_KEY })?;
        Issuer::from_ca_cert_der(&self.der.as_slice().into(), key).map_err(|e| {
            PkiError::BadCertificate {
                what: WHAT_CERT,
                reason: e.to_string(),
            }
        })
    }
}

/// `[now - BACKDATE_SECS, now + days]`, after checking `days`.
pub(super) fn window(now: i64, validity_days: u32) -> Result<(i64, i64)> {
    if validity_days == 0 || validity_days > MAX_VALIDITY_DAYS {
        return Err(PkiError::BadValidity {
            days: validity_days,
            max: MAX_VALIDITY_DAYS,
        });
    }
    let not_before = now.checked_sub(BACKDATE_SECS);
    let not_after = now.checked_add(i64::from(validity_days) * DAY);
    match (not_before, not_after) {
        (Some(b), Some(a)) => {
            datetime(b)?;
            datetime(a)?;
            Ok((b, a))
        }
        _ => Err(PkiError::BadTime { unix: now }),
    }
}

/// Refuses names a certificate's CN cannot carry (RFC 5280: at most 64).
pub(super) fn check_common_name(name: &str) -> Result<()> {
    let bad = |reason| PkiError::BadCommonName {
        value: name.to_string(),
        reason,
    };
    if name.trim().is_empty() {
        return Err(bad("it is empty"));
    }
    if name.chars().count() > 64 {
        return Err(bad("it is longer than 64 characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(bad("it holds control characters"));
    }
    Ok(())
}

/// A subject with only a common name.
pub(super) fn distinguished_name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

/// 128 random bits, positive, with no leading zero byte.
pub(super) fn random_serial() -> Result<SerialNumber> {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| PkiError::Generate {
            what: "a serial number",
            reason: "the system random source failed".to_string(),
        })?;
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}
