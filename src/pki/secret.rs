//! [`SecretPem`]: private-key PEM text that cannot leak by accident.
//!
//! Its `Debug` prints `[redacted]`, it has no `Display` and no serde
//! implementations, and its memory is zeroed when dropped. The only way to
//! the text is [`SecretPem::expose`], so every place that writes a key to a
//! file or a Juju secret is a visible, greppable call.

use std::fmt;

use zeroize::Zeroizing;

/// A PEM-encoded private key. Debug output is `SecretPem([redacted])`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretPem(Zeroizing<String>);

impl SecretPem {
    /// Wraps PEM text (for example read back from a Juju secret).
    pub fn new(pem: impl Into<String>) -> Self {
        Self(Zeroizing::new(pem.into()))
    }

    /// The PEM text. Write it only to 0600 files or Juju secrets; never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretPem([redacted])")
    }
}

impl From<String> for SecretPem {
    fn from(pem: String) -> Self {
        Self::new(pem)
    }
}
