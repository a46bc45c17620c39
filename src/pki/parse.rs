//! Shared plumbing: PEM → DER → `x509-parser` certificate with errors that
//! say which input was wrong, the facts this module reads from a parsed
//! certificate, and Unix seconds ↔ `time` conversions.
//!
//! Nothing here reads the clock: every time is passed in.

use std::net::IpAddr;

use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::pem::parse_x509_pem;
use x509_parser::x509::X509Name;

use super::error::{PkiError, Result};
use super::san::San;

/// Seconds in a day.
pub const DAY: i64 = 86_400;

/// The DER bytes of the first `CERTIFICATE` block in `pem`, and whether
/// another PEM block follows it.
pub fn cert_der(what: &'static str, pem: &str) -> Result<(Vec<u8>, bool)> {
    let bad = |reason: String| PkiError::BadCertificate { what, reason };
    let (rest, block) = parse_x509_pem(pem.as_bytes()).map_err(|e| {
        bad(match e {
            x509_parser::nom::Err::Error(e) | x509_parser::nom::Err::Failure(e) => {
                format!("no PEM block: {e}")
            }
            x509_parser::nom::Err::Incomplete(_) => "the PEM block is incomplete".to_string(),
        })
    })?;
    if block.label != "CERTIFICATE" {
        // The label is not secret; the contents may be, and stay out.
        return Err(bad(format!("it is a {} block", block.label)));
    }
    let more = String::from_utf8_lossy(rest).contains("-----BEGIN");
    Ok((block.contents, more))
}

/// Parses DER, refusing trailing bytes.
pub fn parse_der<'a>(what: &'static str, der: &'a [u8]) -> Result<X509Certificate<'a>> {
    let bad = |reason: String| PkiError::BadCertificate { what, reason };
    let (rest, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| bad(format!("not an X.509 certificate: {e}")))?;
    if !rest.is_empty() {
        return Err(bad(format!(
            "{} stray bytes follow the certificate",
            rest.len()
        )));
    }
    Ok(cert)
}

/// The first common name of a name, or its full text when it has none.
pub fn common_name(name: &X509Name<'_>) -> String {
    name.iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| name.to_string())
}

/// Lowercase hex of the SHA-256 of `der`, without colons.
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// Whether basicConstraints says CA:true.
pub fn is_ca(what: &'static str, cert: &X509Certificate<'_>) -> Result<bool> {
    let bc = cert
        .basic_constraints()
        .map_err(|e| PkiError::BadCertificate {
            what,
            reason: format!("unreadable basicConstraints: {e}"),
        })?;
    Ok(bc.is_some_and(|bc| bc.value.ca))
}

/// The IP and DNS subject alternative names, in certificate order.
pub fn sans(what: &'static str, cert: &X509Certificate<'_>) -> Result<Vec<San>> {
    let ext = cert
        .subject_alternative_name()
        .map_err(|e| PkiError::BadCertificate {
            what,
            reason: format!("unreadable subjectAltName: {e}"),
        })?;
    let Some(ext) = ext else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for name in &ext.value.general_names {
        match name {
            GeneralName::DNSName(dns) => out.push(San::Dns(dns.to_string())),
            GeneralName::IPAddress(bytes) => {
                let ip = match bytes.len() {
                    4 => <[u8; 4]>::try_from(*bytes).ok().map(IpAddr::from),
                    16 => <[u8; 16]>::try_from(*bytes).ok().map(IpAddr::from),
                    _ => None,
                };
                match ip {
                    Some(ip) => out.push(San::Ip(ip)),
                    None => {
                        return Err(PkiError::BadCertificate {
                            what,
                            reason: format!("an IP SAN of {} bytes", bytes.len()),
                        })
                    }
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Unix seconds → `OffsetDateTime`, refusing what a certificate cannot carry
/// (X.509 times end at 9999-12-31).
pub fn datetime(unix: i64) -> Result<OffsetDateTime> {
    let dt = OffsetDateTime::from_unix_timestamp(unix).map_err(|_| PkiError::BadTime { unix })?;
    if !(0..=9999).contains(&dt.year()) {
        return Err(PkiError::BadTime { unix });
    }
    Ok(dt)
}

/// `2026-11-21T21:45:11Z`, for messages; the raw number if out of range.
pub fn rfc3339(unix: i64) -> String {
    crate::timefmt::rfc3339(unix).unwrap_or_else(|| format!("{unix} (Unix seconds)"))
}
