//! The PKI: the application's CA and the certificates etcd and its clients
//! use, and nothing else.
//!
//! This module is pure: no files, no processes, no network, no clock and no
//! Juju. PEM text and the current time (Unix seconds) come in, PEM text
//! comes out; randomness (keys, serial numbers) comes from ring's system
//! source. Where the CA is kept (a Juju secret), who makes it (the leader),
//! where keys are written (0600 files) and when etcd restarts all belong to
//! the glue in `src/charm`.
//!
//! - [`Ca`]: generate a CA (ECDSA P-256, CA:true, keyCertSign + cRLSign) or
//!   read one back and check it, and its fingerprint;
//! - [`issue_server`] / [`issue_client`]: leaf certificates signed by the CA;
//!   server certificates serve and dial (serverAuth + clientAuth), since
//!   etcd uses one certificate for its peer traffic both ways;
//! - [`inspect_cert`], [`needs_renewal`], [`verify_signed_by`]: reading
//!   certificates back to decide whether to reissue.
//!
//! Private keys only ever travel as [`SecretPem`], whose `Debug` prints
//! `[redacted]`; no error message carries key material.

mod ca;
mod error;
mod inspect;
mod issue;
mod parse;
mod san;
mod secret;

#[cfg(test)]
mod outside;
#[cfg(test)]
mod real_etcd;
#[cfg(test)]
mod tests;

pub use ca::{Ca, BACKDATE_SECS, CA_VALIDITY_DAYS, MAX_VALIDITY_DAYS};
pub use error::{PkiError, Result};
pub use inspect::{inspect_cert, needs_renewal, verify_signed_by, CertInfo};
pub use issue::{issue_client, issue_server, server_sans, Issued, LEAF_VALIDITY_DAYS};
pub use san::San;
pub use secret::SecretPem;

/// Renew a leaf certificate when it has fewer than this many days left.
pub const RENEW_WITHIN_DAYS: u32 = 30;
