//! [`San`]: a subject alternative name, an IP address or a DNS name.
//!
//! [`San::parse`] takes what Juju hands out (`network-get` ingress
//! addresses, the hostname) and picks IP when the text parses as one, so a
//! unit's address ends up as an IP SAN, which is what etcd checks peers
//! against. DNS names are checked for the characters a hostname can hold and
//! lowercased, so that duplicates compare equal.

use std::fmt;
use std::net::IpAddr;

use super::error::{PkiError, Result};

/// A subject alternative name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum San {
    /// An IP address SAN (`IP:10.0.0.1`).
    Ip(IpAddr),
    /// A DNS name SAN (`DNS:etcd-0.lxd`), lowercase.
    Dns(String),
}

/// The longest DNS name (RFC 1035), without a trailing dot.
const MAX_DNS_LEN: usize = 253;
/// The longest label of a DNS name.
const MAX_LABEL_LEN: usize = 63;

impl San {
    /// Parses an IP address (IPv6 may be bracketed: `[::1]`) or a DNS name.
    pub fn parse(text: &str) -> Result<San> {
        let trimmed = text.trim();
        let unbracketed = trimmed
            .strip_prefix('[')
            .and_then(|t| t.strip_suffix(']'))
            .unwrap_or(trimmed);
        if let Ok(ip) = unbracketed.parse::<IpAddr>() {
            return Ok(San::Ip(ip));
        }
        let bad = |reason| PkiError::BadSan {
            value: text.to_string(),
            reason,
        };
        let name = trimmed.strip_suffix('.').unwrap_or(trimmed);
        if name.is_empty() {
            return Err(bad("it is empty"));
        }
        if name.len() > MAX_DNS_LEN {
            return Err(bad("it is longer than 253 characters"));
        }
        for label in name.split('.') {
            if label.is_empty() {
                return Err(bad("it has an empty label (two dots in a row)"));
            }
            if label.len() > MAX_LABEL_LEN {
                return Err(bad("a label is longer than 63 characters"));
            }
            if !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(bad(
                    "a DNS name holds only letters, digits, '-', '_' and dots",
                ));
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(bad("a label may not start or end with '-'"));
            }
        }
        Ok(San::Dns(name.to_ascii_lowercase()))
    }

    /// `localhost`, which every server certificate carries.
    pub fn localhost() -> San {
        San::Dns("localhost".to_string())
    }

    /// `127.0.0.1`, which every server certificate carries.
    pub fn loopback() -> San {
        San::Ip(IpAddr::from([127, 0, 0, 1]))
    }

    /// Whether two SANs name the same thing (DNS names compare without case).
    pub fn same_as(&self, other: &San) -> bool {
        match (self, other) {
            (San::Ip(a), San::Ip(b)) => a == b,
            (San::Dns(a), San::Dns(b)) => a.eq_ignore_ascii_case(b),
            _ => false,
        }
    }
}

impl fmt::Display for San {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            San::Ip(ip) => write!(f, "IP:{ip}"),
            San::Dns(name) => write!(f, "DNS:{name}"),
        }
    }
}
