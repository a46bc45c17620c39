//! The PKI wired to Juju: the application's CA lives in an
//! application-owned Juju secret whose URI is in the peer relation's
//! application data (Juju 3.1 and later), or in leader settings where Juju
//! has no secrets (2.9); each unit issues its own server/peer and client
//! certificates from it and keeps them under `/etc/etcd-charm/pki`.
//!
//! - Only the leader creates the CA, and only when the peer data names none,
//!   so a new leader reuses the CA the old one made.
//! - The CA key is read from the secret whenever a certificate is issued and
//!   never written to the unit's disk; unit keys are 0600 files.
//! - A certificate is reissued when it is missing, no longer signed by the
//!   CA, lacks this unit's address, or is within
//!   [`crate::pki::RENEW_WITHIN_DAYS`] of expiry.
//! - No key material reaches a log line, a status or an action result.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use anyhow::{anyhow, Context as _, Result};

use super::Charm;
use crate::etcd::paths::{CA_CERT, CLIENT_CERT, CLIENT_KEY, PKI_DIR, SERVER_CERT, SERVER_KEY};
use crate::etcd::{ClientTls, TlsFiles};
use crate::fsutil;
use crate::juju::SecretOwner;
use crate::pki::{self, Ca, San};

/// Peer application-data key holding the CA secret's URI.
pub const CA_SECRET_KEY: &str = "ca-secret-id";
/// The CA secret's label and content keys.
const CA_LABEL: &str = "etcd-ca";
const SECRET_CERT: &str = "ca-cert";
const SECRET_KEY: &str = "ca-key";

/// Leader-settings keys holding the CA where Juju has no secrets (2.9).
/// Leader settings are readable by every unit of the application and
/// writable only by the leader.
const LEADER_CA_CERT: &str = "ca-cert";
const LEADER_CA_KEY: &str = "ca-key";

/// Where the application's CA lives.
#[derive(Debug, Clone, PartialEq, Eq)]
enum CaHome {
    /// An application-owned Juju secret (Juju 3.1 and later).
    Secret(String),
    /// Leader settings (Juju 2.9; kept after an upgrade to 3.x).
    LeaderSettings,
}

impl CaHome {
    fn describe(&self) -> String {
        match self {
            CaHome::Secret(uri) => format!("secret {uri}"),
            CaHome::LeaderSettings => "the leader settings".to_string(),
        }
    }
}

/// The CA as secret content.
fn ca_content(ca: &Ca) -> BTreeMap<String, String> {
    let mut content = BTreeMap::new();
    content.insert(SECRET_CERT.to_string(), ca.cert_pem().to_string());
    content.insert(SECRET_KEY.to_string(), ca.key_pem().expose().to_string());
    content
}

/// Zeroes secret content read from or written to a Juju secret.
fn wipe(content: &mut BTreeMap<String, String>) {
    use zeroize::Zeroize;
    for v in content.values_mut() {
        v.zeroize();
    }
}

/// The current time, Unix seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The machine's hostname, when it is a usable DNS SAN.
fn hostname() -> Option<San> {
    let h = fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    San::parse(h.trim()).ok()
}

/// Whether a leaf certificate should be reissued: it is unreadable, or it
/// is within [`pki::RENEW_WITHIN_DAYS`] of expiry and a new one would last
/// longer (a leaf never outlives its CA, so one that already ends with the
/// CA is as good as it gets; reissuing it on every hook would only churn).
pub(crate) fn leaf_needs_renewal(cert_pem: &str, ca_not_after: i64, now: i64) -> bool {
    match (
        pki::needs_renewal(cert_pem, now, pki::RENEW_WITHIN_DAYS),
        pki::inspect_cert(cert_pem),
    ) {
        (Ok(soon), Ok(info)) => soon && info.not_after < ca_not_after,
        _ => true,
    }
}

/// Whether the certificate at `cert_path` is signed by `ca`, carries
/// `want_sans` and is not due for renewal.
fn cert_is_current(
    cert_path: &Path,
    ca: &Ca,
    want_sans: &[San],
    now: i64,
) -> Result<bool, pki::PkiError> {
    let Ok(pem) = fs::read_to_string(cert_path) else {
        return Ok(false);
    };
    if !pki::verify_signed_by(&pem, ca.cert_pem()).unwrap_or(false) {
        return Ok(false);
    }
    if leaf_needs_renewal(&pem, ca.not_after(), now) {
        return Ok(false);
    }
    let info = pki::inspect_cert(&pem)?;
    Ok(want_sans
        .iter()
        .all(|w| info.sans.iter().any(|s| s.same_as(w))))
}

impl Charm<'_> {
    /// The files etcd serves and dials with.
    pub fn server_tls_files(&self) -> TlsFiles {
        TlsFiles {
            ca: self.root.at(CA_CERT),
            cert: self.root.at(SERVER_CERT),
            key: self.root.at(SERVER_KEY),
        }
    }

    /// The files the charm connects to etcd with.
    pub fn client_tls_files(&self) -> TlsFiles {
        TlsFiles {
            ca: self.root.at(CA_CERT),
            cert: self.root.at(CLIENT_CERT),
            key: self.root.at(CLIENT_KEY),
        }
    }

    /// The charm's client credentials, read from disk.
    pub fn client_tls(&self) -> Result<ClientTls> {
        ClientTls::load(&self.client_tls_files()).context(
            "this unit has no client certificate yet; wait for it to be active (see juju status)",
        )
    }

    /// The application's CA. On the leader it is created the first time;
    /// elsewhere `None` means the leader has not made it yet.
    ///
    /// Where it lives depends on the Juju (see [`CaHome`]): an
    /// application-owned secret whose URI is in the peer application data
    /// (Juju 3.1 and later), or leader settings (Juju 2.9, which has no
    /// secrets). A CA already in leader settings is used on any Juju, so a
    /// model upgraded from 2.9 keeps the CA it has.
    pub(crate) fn ensure_ca(&self, peer_id: &str, leader: bool) -> Result<Option<Ca>> {
        if let Some(ca) = self.ca_in_hand.borrow().as_ref() {
            return Ok(Some(ca.clone()));
        }
        match self.find_ca(peer_id)? {
            Some((ca, _)) => return Ok(Some(ca)),
            None if !leader => return Ok(None),
            None => {}
        }
        if self.ctx.capabilities().secrets {
            // A CA secret this application already owns (say, the hook
            // that made it failed before publishing its ID): publish and
            // reuse it, never make a second CA.
            for uri in self
                .tools
                .secret_ids()
                .context("cannot list the application's secrets")?
            {
                let Ok(mut content) = self.tools.secret_get(&uri) else {
                    continue;
                };
                let is_ca = content.contains_key(SECRET_CERT) && content.contains_key(SECRET_KEY);
                wipe(&mut content);
                if is_ca {
                    let ca = self.read_ca(&uri)?;
                    self.publish_ca_id(peer_id, &uri)?;
                    tracing::info!("reusing the cluster CA in secret {uri}");
                    return Ok(Some(ca));
                }
            }
        }
        let ca = Ca::generate(
            &format!("{} etcd CA", self.ctx.app_name),
            now(),
            pki::CA_VALIDITY_DAYS,
        )
        .context("cannot generate the cluster's CA")?;
        let home = if self.ctx.capabilities().secrets {
            let mut content = ca_content(&ca);
            let uri = self
                .tools
                .secret_add(&content, Some(CA_LABEL), SecretOwner::Application);
            wipe(&mut content);
            let uri = uri.context("cannot store the CA in a Juju secret")?;
            self.publish_ca_id(peer_id, &uri)?;
            CaHome::Secret(uri)
        } else {
            self.write_leader_ca(&ca)?;
            CaHome::LeaderSettings
        };
        tracing::info!(
            "created the cluster CA (sha256 {}) in {}",
            ca.fingerprint_sha256(),
            home.describe()
        );
        *self.ca_in_hand.borrow_mut() = Some(ca.clone());
        Ok(Some(ca))
    }

    /// The committed CA and where it lives, if there is one.
    fn find_ca(&self, peer_id: &str) -> Result<Option<(Ca, CaHome)>> {
        let mut leader = self
            .tools
            .leader_get()
            .context("cannot read the leader settings")?;
        let found = match (leader.get(LEADER_CA_CERT), leader.get(LEADER_CA_KEY)) {
            (Some(cert), Some(key)) if !cert.is_empty() && !key.is_empty() => Some(
                Ca::from_pem(cert, key)
                    .context("the CA in the leader settings is unusable; the leader must put a valid one back (restore adopt-pki=true) before units can get certificates"),
            ),
            _ => None,
        };
        wipe(&mut leader);
        if let Some(ca) = found {
            return Ok(Some((ca?, CaHome::LeaderSettings)));
        }
        if !self.ctx.capabilities().secrets {
            return Ok(None);
        }
        let app = self
            .tools
            .relation_get(peer_id, &self.ctx.app_name, true)
            .context("cannot read the peer relation's application data")?;
        match app.get(CA_SECRET_KEY).filter(|u| !u.is_empty()) {
            Some(uri) => Ok(Some((self.read_ca(uri)?, CaHome::Secret(uri.clone())))),
            None => Ok(None),
        }
    }

    fn write_leader_ca(&self, ca: &Ca) -> Result<()> {
        let mut settings = BTreeMap::new();
        settings.insert(LEADER_CA_CERT.to_string(), ca.cert_pem().to_string());
        settings.insert(LEADER_CA_KEY.to_string(), ca.key_pem().expose().to_string());
        let r = self.tools.leader_set(&settings);
        wipe(&mut settings);
        r.context("cannot store the CA in the leader settings")
    }

    fn publish_ca_id(&self, peer_id: &str, uri: &str) -> Result<()> {
        let mut data = BTreeMap::new();
        data.insert(CA_SECRET_KEY.to_string(), uri.to_string());
        self.tools
            .relation_set(peer_id, true, &data)
            .context("cannot publish the CA secret's ID in the peer relation")
    }

    fn read_ca(&self, uri: &str) -> Result<Ca> {
        let mut content = self
            .tools
            .secret_get(uri)
            .with_context(|| format!("cannot read the CA secret {uri}"))?;
        let ca = match (content.get(SECRET_CERT), content.get(SECRET_KEY)) {
            (Some(cert), Some(key)) => Ca::from_pem(cert, key)
                .with_context(|| format!("the CA in secret {uri} is unusable")),
            _ => Err(anyhow!(
                "the CA secret {uri} lacks {SECRET_CERT} or {SECRET_KEY}; restore it with juju secret-set or remove it so the leader makes a new CA"
            )),
        };
        wipe(&mut content);
        ca
    }

    /// Writes the CA certificate and (re)issues this unit's server and
    /// client certificates when needed. Returns whether anything changed.
    pub(crate) fn ensure_unit_certs(&self, ca: &Ca, name: &str, address: &str) -> Result<bool> {
        let now = now();
        let dir = self.root.at(PKI_DIR);
        fsutil::create_dir_mode(&dir, 0o700)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let mut changed =
            fsutil::write_atomic(&self.root.at(CA_CERT), ca.cert_pem().as_bytes(), 0o644)
                .context("cannot write the CA certificate")?;

        let mut sans = vec![San::parse(address)
            .with_context(|| format!("network-get gave an unusable address {address:?}"))?];
        sans.extend(hostname());
        if !cert_is_current(
            &self.root.at(SERVER_CERT),
            ca,
            &pki::server_sans(&sans),
            now,
        )? {
            let issued = pki::issue_server(ca, name, &sans, now, pki::LEAF_VALIDITY_DAYS)
                .context("cannot issue this unit's server certificate")?;
            self.write_pair(SERVER_CERT, SERVER_KEY, &issued)?;
            tracing::info!("issued the server certificate for {name} ({address})");
            changed = true;
        }
        if !cert_is_current(&self.root.at(CLIENT_CERT), ca, &[], now)? {
            let issued =
                pki::issue_client(ca, &format!("{name}-client"), now, pki::LEAF_VALIDITY_DAYS)
                    .context("cannot issue this unit's client certificate")?;
            self.write_pair(CLIENT_CERT, CLIENT_KEY, &issued)?;
            tracing::info!("issued the client certificate for {name}");
            changed = true;
        }
        Ok(changed)
    }

    /// Key first (0600 from its first byte), then the certificate.
    fn write_pair(
        &self,
        cert: &'static str,
        key: &'static str,
        issued: &pki::Issued,
    ) -> Result<()> {
        fsutil::write_atomic(
            &self.root.at(key),
            issued.key_pem.expose().as_bytes(),
            0o600,
        )
        .with_context(|| format!("cannot write {key}"))?;
        fsutil::write_atomic(&self.root.at(cert), issued.cert_pem.as_bytes(), 0o644)
            .with_context(|| format!("cannot write {cert}"))?;
        Ok(())
    }

    /// Whether this unit's certificates must be reissued now.
    pub(crate) fn certs_need_renewal(&self) -> bool {
        let now = now();
        let ca_not_after = fs::read_to_string(self.root.at(CA_CERT))
            .ok()
            .and_then(|pem| pki::inspect_cert(&pem).ok())
            .map_or(i64::MAX, |info| info.not_after);
        [SERVER_CERT, CLIENT_CERT]
            .into_iter()
            .any(|c| match fs::read_to_string(self.root.at(c)) {
                Ok(pem) => leaf_needs_renewal(&pem, ca_not_after, now),
                Err(_) => true,
            })
    }

    /// Replaces the application's CA where it lives (the leader only; used
    /// by `restore adopt-pki=true`) and returns the CA it replaced. The new
    /// CA is kept in hand for the rest of this dispatch, since a secret
    /// revision is committed only when the action exits. The caller
    /// reissues the unit's certificates and restarts etcd.
    pub(crate) fn replace_ca(&self, new: &Ca) -> Result<Ca> {
        let peer = self.peer_relation()?.ok_or_else(|| {
            anyhow!("the peer relation does not exist yet; wait for the unit to be active")
        })?;
        let (committed, home) = self.find_ca(&peer)?.ok_or_else(|| {
            anyhow!("the application has no CA yet; wait for the leader to be active")
        })?;
        let old = self.ca_in_hand.borrow().clone().unwrap_or(committed);
        match &home {
            CaHome::Secret(uri) => {
                let mut content = ca_content(new);
                let r = self.tools.secret_set(uri, &content);
                wipe(&mut content);
                r.with_context(|| format!("cannot write the CA to secret {uri}"))?;
            }
            CaHome::LeaderSettings => self.write_leader_ca(new)?,
        }
        *self.ca_in_hand.borrow_mut() = Some(new.clone());
        tracing::info!(
            "the application's CA is now sha256 {} (was {}), in {}",
            new.fingerprint_sha256(),
            old.fingerprint_sha256(),
            home.describe()
        );
        Ok(old)
    }

    /// The CA, for actions: read through the peer data, never created here.
    pub(crate) fn current_ca(&self) -> Result<Ca> {
        let peer = self.peer_relation()?.ok_or_else(|| {
            anyhow!("the peer relation does not exist yet; wait for the unit to be active")
        })?;
        self.ensure_ca(&peer, false)?.ok_or_else(|| {
            anyhow!(
                "the leader has not created the cluster's CA yet; wait for the leader to be active"
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_only_when_a_new_certificate_would_last_longer() {
        let t = now();
        let ca = Ca::generate("ca", t, pki::CA_VALIDITY_DAYS).unwrap();
        let fresh = pki::issue_client(&ca, "c", t, pki::LEAF_VALIDITY_DAYS).unwrap();
        assert!(!leaf_needs_renewal(&fresh.cert_pem, ca.not_after(), t));
        let short = pki::issue_client(&ca, "c", t, 10).unwrap();
        assert!(leaf_needs_renewal(&short.cert_pem, ca.not_after(), t));
        assert!(leaf_needs_renewal("not a certificate", ca.not_after(), t));
        // A CA with 20 days left: its leaves end with it, and reissuing
        // them on every hook would change nothing.
        let old_ca = Ca::generate("old", t, 20).unwrap();
        let leaf = pki::issue_client(&old_ca, "c", t, pki::LEAF_VALIDITY_DAYS).unwrap();
        assert!(!leaf_needs_renewal(&leaf.cert_pem, old_ca.not_after(), t));
    }
}
