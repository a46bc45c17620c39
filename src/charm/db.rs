//! The `db` relation (interface `etcd`): what a consumer needs to talk to
//! the cluster, in this unit's bag, as the original etcd charm gave it:
//! `connection_string` (every registered member's client URL), `client_ca`,
//! `client_cert` and `client_key`.
//!
//! Each relation gets its own client certificate from the cluster's CA
//! (common name `<remote app>-client`), kept on the unit (key 0600) and
//! reissued only when it nears expiry or the CA changed, so the relation
//! data does not churn. The key is the consumer's credential by design of
//! the interface; it is never logged.

use std::collections::BTreeMap;
use std::fs;

use anyhow::{Context as _, Result};

use super::cluster::{parse_initial_cluster, INITIAL_CLUSTER_KEY};
use super::tls::{leaf_needs_renewal, now};
use super::Charm;
use crate::etcd::paths::PKI_DIR;
use crate::fsutil;
use crate::pki;

/// The provides endpoint.
pub const DB: &str = "db";

impl Charm<'_> {
    /// Publishes the connection details on every `db` relation. Does
    /// nothing until this unit runs etcd with its certificates.
    pub(crate) fn update_db_relations(&self) -> Result<()> {
        let ids = self
            .tools
            .relation_ids(DB)
            .context("cannot list the db relations")?;
        if ids.is_empty() {
            return Ok(());
        }
        let state = self.load_state()?;
        let Some(applied) = state.applied.filter(|_| !state.left) else {
            return Ok(());
        };
        let Some(peer) = self.peer_relation()? else {
            return Ok(());
        };
        let ca = self.current_ca()?;
        let connection_string = self.connection_string(&peer, &applied.client_url)?;
        for id in ids {
            let remote_app = self
                .tools
                .relation_list(&id)
                .context("cannot list the db relation's units")?
                .first()
                .and_then(|u| u.split('/').next().map(str::to_string))
                .unwrap_or_else(|| "consumer".to_string());
            let (cert, key) = self.relation_client_cert(&ca, &id, &remote_app)?;
            let mut data = BTreeMap::new();
            data.insert("connection_string".to_string(), connection_string.clone());
            data.insert("client_ca".to_string(), ca.cert_pem().to_string());
            data.insert("client_cert".to_string(), cert);
            data.insert("client_key".to_string(), key.expose().to_string());
            let mine = self
                .tools
                .relation_get(&id, &self.ctx.unit_name, false)
                .with_context(|| format!("cannot read this unit's data on {id}"))?;
            if data.iter().all(|(k, v)| mine.get(k) == Some(v)) {
                continue;
            }
            self.tools
                .relation_set(&id, false, &data)
                .with_context(|| format!("cannot publish the connection details on {id}"))?;
            tracing::info!("published etcd's connection details on {id} for {remote_app}");
        }
        Ok(())
    }

    /// This unit's client URL and those of the other registered members.
    fn connection_string(&self, peer: &str, own: &str) -> Result<String> {
        let registered: Vec<String> = parse_initial_cluster(
            self.peer_app_data(peer)?
                .get(INITIAL_CLUSTER_KEY)
                .map(String::as_str)
                .unwrap_or_default(),
        )
        .into_iter()
        .map(|(name, _)| name)
        .collect();
        let mut urls = vec![own.to_string()];
        for other in self.peer_bags(peer)? {
            let (_, bag) = other?;
            if let (Some(name), Some(url)) = (bag.get("member-name"), bag.get("client-url")) {
                if registered.contains(name) && !urls.contains(url) {
                    urls.push(url.clone());
                }
            }
        }
        Ok(urls.join(","))
    }

    /// The relation's client certificate and key, reissued when missing,
    /// from another CA, or near expiry.
    fn relation_client_cert(
        &self,
        ca: &pki::Ca,
        relation_id: &str,
        remote_app: &str,
    ) -> Result<(String, pki::SecretPem)> {
        let base = self
            .root
            .at(PKI_DIR)
            .join(format!("db-{}", relation_id.replace(':', "-")));
        let cert_path = base.with_extension("crt");
        let key_path = base.with_extension("key");
        let now = now();
        if let (Ok(cert), Ok(key)) = (
            fs::read_to_string(&cert_path),
            fs::read_to_string(&key_path),
        ) {
            let current = pki::verify_signed_by(&cert, ca.cert_pem()).unwrap_or(false)
                && !leaf_needs_renewal(&cert, ca.not_after(), now);
            if current {
                return Ok((cert, pki::SecretPem::new(key)));
            }
        }
        let issued = pki::issue_client(
            ca,
            &format!("{remote_app}-client"),
            now,
            pki::LEAF_VALIDITY_DAYS,
        )
        .with_context(|| format!("cannot issue a client certificate for {relation_id}"))?;
        fsutil::write_atomic(&key_path, issued.key_pem.expose().as_bytes(), 0o600)
            .with_context(|| format!("cannot write {}", key_path.display()))?;
        fsutil::write_atomic(&cert_path, issued.cert_pem.as_bytes(), 0o644)
            .with_context(|| format!("cannot write {}", cert_path.display()))?;
        Ok((issued.cert_pem, issued.key_pem))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::charm::state::{Applied, LocalState};
    use crate::etcd::Root;
    use crate::juju::fake::{FakeHookTools, FakeState};
    use crate::juju::{Context, Dispatch};

    #[test]
    fn db_consumers_get_the_connection_string_and_their_own_client_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let ca = pki::Ca::generate("etcd CA", now(), 30).unwrap();
        let mut s = FakeState {
            unit_name: "etcd/0".into(),
            app_name: "etcd".into(),
            ..FakeState::default()
        };
        s.relations
            .insert("cluster:0".into(), vec!["etcd/1".into()]);
        s.relations.insert("db:7".into(), vec!["kube/0".into()]);
        let mut secret = BTreeMap::new();
        secret.insert("ca-cert".to_string(), ca.cert_pem().to_string());
        secret.insert("ca-key".to_string(), ca.key_pem().expose().to_string());
        s.secrets.insert("secret:ca".into(), secret);
        let mut app = BTreeMap::new();
        app.insert("ca-secret-id".to_string(), "secret:ca".to_string());
        app.insert(
            INITIAL_CLUSTER_KEY.to_string(),
            "etcd-0=https://10.0.0.1:2380,etcd-1=https://10.0.0.2:2380".to_string(),
        );
        s.relation_data
            .insert(("cluster:0".into(), "etcd".into()), app);
        let mut peer = BTreeMap::new();
        peer.insert("member-name".to_string(), "etcd-1".to_string());
        peer.insert(
            "client-url".to_string(),
            "https://10.0.0.2:2379".to_string(),
        );
        s.relation_data
            .insert(("cluster:0".into(), "etcd/1".into()), peer);
        let tools = FakeHookTools::new(s);
        let state = LocalState {
            applied: Some(Applied {
                client_url: "https://10.0.0.1:2379".into(),
                ..Applied::default()
            }),
            ..LocalState::default()
        };
        state.save(&root).unwrap();
        let ctx = Context {
            dispatch: Dispatch::Hook("db-relation-joined".into()),
            unit_name: "etcd/0".into(),
            app_name: "etcd".into(),
            charm_dir: ".".into(),
            model_name: "m".into(),
            juju_version: "3.5.0".into(),
            relation: None,
        };
        let charm = Charm::new(&ctx, &tools, root.clone());
        charm.update_db_relations().unwrap();
        let bag =
            tools.state.borrow().relation_data[&("db:7".to_string(), "etcd/0".to_string())].clone();
        assert_eq!(
            bag["connection_string"],
            "https://10.0.0.1:2379,https://10.0.0.2:2379"
        );
        assert_eq!(bag["client_ca"], ca.cert_pem());
        assert!(pki::verify_signed_by(&bag["client_cert"], ca.cert_pem()).unwrap());
        let info = pki::inspect_cert(&bag["client_cert"]).unwrap();
        assert!(info.client_auth && !info.server_auth);
        assert_eq!(info.subject_cn, "kube-client");
        assert!(bag["client_key"].contains("PRIVATE KEY"));
        let key_file = root.at(PKI_DIR).join("db-db-7.key");
        use std::os::unix::fs::MetadataExt;
        assert_eq!(fs::metadata(&key_file).unwrap().mode() & 0o777, 0o600);
        // The same certificate on the next hook: the data does not churn.
        charm.update_db_relations().unwrap();
        let again =
            tools.state.borrow().relation_data[&("db:7".to_string(), "etcd/0".to_string())].clone();
        assert_eq!(again, bag);
        // No key material in the logs.
        for (_, line) in &tools.state.borrow().logs {
            assert!(!line.contains("PRIVATE KEY"), "{line}");
        }
    }
}
