//! Reading certificates back: [`inspect_cert`] for the facts the charm
//! decides on (validity, SANs, CA or not, key usages), [`needs_renewal`] for
//! "renew before expiry" on update-status, and [`verify_signed_by`] to check
//! that a certificate on disk still belongs to the current CA (ring verifies
//! the signature through `x509-parser`'s `verify` feature).

use x509_parser::error::X509Error;

use super::error::{PkiError, Result};
use super::parse::{self, DAY};
use super::san::San;

/// The public facts of a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// The subject's common name (or the whole subject if it has none).
    pub subject_cn: String,
    /// The issuer's common name (or the whole issuer if it has none).
    pub issuer_cn: String,
    /// The serial number, lowercase hex.
    pub serial_hex: String,
    /// Lowercase hex SHA-256 of the DER, without colons.
    pub fingerprint_sha256: String,
    /// Start of validity, Unix seconds.
    pub not_before: i64,
    /// End of validity, Unix seconds.
    pub not_after: i64,
    /// IP and DNS subject alternative names, in certificate order.
    pub sans: Vec<San>,
    /// basicConstraints CA:true.
    pub is_ca: bool,
    /// Extended key usage includes serverAuth.
    pub server_auth: bool,
    /// Extended key usage includes clientAuth.
    pub client_auth: bool,
}

const WHAT: &str = "the certificate";

/// The facts of the first certificate in `pem`.
pub fn inspect_cert(pem: &str) -> Result<CertInfo> {
    let (der, _) = parse::cert_der(WHAT, pem)?;
    let cert = parse::parse_der(WHAT, &der)?;
    let eku = cert
        .extended_key_usage()
        .map_err(|e| PkiError::BadCertificate {
            what: WHAT,
            reason: format!("unreadable extendedKeyUsage: {e}"),
        })?;
    let (server_auth, client_auth) = match eku {
        Some(eku) => (eku.value.server_auth, eku.value.client_auth),
        None => (false, false),
    };
    Ok(CertInfo {
        subject_cn: parse::common_name(cert.subject()),
        issuer_cn: parse::common_name(cert.issuer()),
        serial_hex: hex::encode(cert.raw_serial()),
        fingerprint_sha256: parse::fingerprint(&der),
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        sans: parse::sans(WHAT, &cert)?,
        is_ca: parse::is_ca(WHAT, &cert)?,
        server_auth,
        client_auth,
    })
}

/// Whether the certificate should be replaced at `now`: it expires within
/// `within_days` days (or has expired), or it is not valid yet.
pub fn needs_renewal(cert_pem: &str, now: i64, within_days: u32) -> Result<bool> {
    let info = inspect_cert(cert_pem)?;
    let horizon = now.saturating_add(i64::from(within_days) * DAY);
    Ok(info.not_after <= horizon || now < info.not_before)
}

/// Whether `cert_pem` was issued by `ca_cert_pem`: its issuer is the CA's
/// subject and the CA's key verifies its signature. `Ok(false)` for a
/// certificate from another CA; `Err` when either is unreadable or the
/// signature algorithm is one ring cannot check.
pub fn verify_signed_by(cert_pem: &str, ca_cert_pem: &str) -> Result<bool> {
    let (der, _) = parse::cert_der(WHAT, cert_pem)?;
    let cert = parse::parse_der(WHAT, &der)?;
    let (ca_der, _) = parse::cert_der("the CA certificate", ca_cert_pem)?;
    let ca = parse::parse_der("the CA certificate", &ca_der)?;
    if cert.issuer().as_raw() != ca.subject().as_raw() {
        return Ok(false);
    }
    match cert.verify_signature(Some(ca.public_key())) {
        Ok(()) => Ok(true),
        Err(X509Error::SignatureVerificationError) => Ok(false),
        Err(e) => Err(PkiError::Unverifiable {
            what: WHAT,
            reason: e.to_string(),
        }),
    }
}
