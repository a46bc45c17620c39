//! The one error type of the PKI module, [`PkiError`].
//!
//! Rules: every message says what to do next, and no message ever carries
//! private-key material. Errors about keys therefore never pass on the text
//! of the underlying parser's error (a base64 error can quote a byte of the
//! key); they say which key was refused and how to give a usable one.
//! Certificates are public, so their parser's reasons are kept.

/// Everything that can go wrong building or reading certificates.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Text that should hold a PEM certificate does not.
    #[error(
        "{what} is not a usable PEM certificate ({reason}); pass the text that starts \
         with -----BEGIN CERTIFICATE-----"
    )]
    BadCertificate {
        /// Which input, e.g. "the CA certificate".
        what: &'static str,
        /// Why it was refused (never key material: certificates are public).
        reason: String,
    },

    /// Text that should hold a private key does not, or ring cannot use it.
    #[error(
        "{what} is not a usable private key; pass the unencrypted PKCS#8 PEM \
         (-----BEGIN PRIVATE KEY-----) that was generated together with its certificate \
         (convert other formats with `openssl pkcs8 -topk8 -nocrypt`)"
    )]
    BadKey {
        /// Which input, e.g. "the CA key".
        what: &'static str,
    },

    /// The CA key is a valid key, but not the one the CA certificate names.
    #[error(
        "the CA key does not belong to the CA certificate ({subject}); pass the key that \
         was generated together with this certificate"
    )]
    KeyMismatch {
        /// The CA certificate's subject.
        subject: String,
    },

    /// A certificate offered as the CA is not one.
    #[error(
        "the certificate {subject} is not a CA (its basicConstraints lacks CA:true); pass \
         the CA certificate, not a server or client certificate"
    )]
    NotACa {
        /// The certificate's subject.
        subject: String,
    },

    /// A CA whose keyUsage forbids signing certificates.
    #[error(
        "the CA certificate {subject} may not sign certificates (its keyUsage lacks \
         keyCertSign); generate a new CA"
    )]
    CaCannotSign {
        /// The CA certificate's subject.
        subject: String,
    },

    /// A CA that is not a self-signed root (an intermediate, or a forgery).
    #[error(
        "the CA certificate {subject} is not self-signed; pass the root CA that etcd \
         trusts (--trusted-ca-file), not an intermediate"
    )]
    NotSelfSigned {
        /// The CA certificate's subject.
        subject: String,
    },

    /// The CA cannot issue at this time: the clock is outside its validity.
    #[error(
        "the CA {subject} is not valid at {now}: it is valid from {not_before} to \
         {not_after}; {hint}"
    )]
    CaNotValid {
        /// The CA certificate's subject.
        subject: String,
        /// The time asked for (RFC 3339).
        now: String,
        /// The CA's notBefore (RFC 3339).
        not_before: String,
        /// The CA's notAfter (RFC 3339).
        not_after: String,
        /// What to do: fix the clock, or rotate the CA.
        hint: &'static str,
    },

    /// A subject alternative name that is neither an IP address nor a DNS name.
    #[error(
        "invalid subject alternative name {value:?}: {reason}; pass an IP address or a DNS name"
    )]
    BadSan {
        /// The refused text.
        value: String,
        /// Why it was refused.
        reason: &'static str,
    },

    /// A common name a certificate cannot carry.
    #[error("invalid common name {value:?}: {reason}; pass 1 to 64 printable characters")]
    BadCommonName {
        /// The refused text.
        value: String,
        /// Why it was refused.
        reason: &'static str,
    },

    /// A validity period of zero days, or one past what X.509 can express.
    #[error("a validity of {days} days is out of range; pass between 1 and {max} days")]
    BadValidity {
        /// The days asked for.
        days: u32,
        /// The largest accepted.
        max: u32,
    },

    /// A time (Unix seconds) outside what a certificate can carry.
    #[error(
        "the time {unix} (Unix seconds) is outside what a certificate can carry; check the \
         clock that produced it"
    )]
    BadTime {
        /// The refused time.
        unix: i64,
    },

    /// rcgen or ring failed while generating a key or signing.
    #[error(
        "could not generate {what}: {reason}; retry, and report it if it persists (the \
         system's random source may be broken)"
    )]
    Generate {
        /// What was being generated.
        what: &'static str,
        /// The library's reason (rcgen's messages carry no key material).
        reason: String,
    },

    /// A signature whose algorithm ring cannot verify.
    #[error(
        "cannot verify the signature of {what}: {reason}; only ECDSA P-256/P-384, RSA and \
         Ed25519 signatures are supported"
    )]
    Unverifiable {
        /// Which certificate.
        what: &'static str,
        /// The parser's reason.
        reason: String,
    },
}

/// The module's result type.
pub type Result<T, E = PkiError> = std::result::Result<T, E>;
