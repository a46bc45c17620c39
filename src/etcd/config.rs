//! etcd's YAML config file, rendered from a typed [`MemberConfig`].
//!
//! The charm passes only `--config-file` to etcd, so everything etcd is told
//! lives in one file that an operator can read. Validation happens here, so
//! a bad charm config becomes a clear `blocked` status instead of an etcd
//! that will not start.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Whether this member starts a new cluster or joins an existing one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClusterState {
    New,
    Existing,
}

/// The operator-facing knobs, from the charm's `config.yaml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tuning {
    pub client_port: u16,
    pub peer_port: u16,
    pub heartbeat_interval: u32,
    pub election_timeout: u32,
    pub bind_to_all_interfaces: bool,
    /// etcd's backend quota (`quota-backend-bytes`): past it etcd raises
    /// the `NOSPACE` alarm and refuses writes.
    pub quota_backend_bytes: u64,
}

/// etcd's own default backend quota, 2 GiB.
pub const DEFAULT_QUOTA_BACKEND_BYTES: u64 = 2 * 1024 * 1024 * 1024;
/// The smallest quota accepted: below it etcd cannot hold its own metadata.
pub const MIN_QUOTA_BACKEND_BYTES: u64 = 1024 * 1024;
/// The largest quota accepted (etcd's documented maximum is 8 GiB; more
/// works but etcd warns).
pub const MAX_QUOTA_BACKEND_BYTES: u64 = 100 * 1024 * 1024 * 1024;

/// A config value the operator must change.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("config {key}={value} is not a valid port (1-65535); set it with: juju config <app> {key}=<port>")]
    Port { key: &'static str, value: i64 },
    #[error("port and management_port are both {0}; give them different values with juju config")]
    SamePort(u16),
    #[error("config {key}={value} is out of range ({range}); change it with juju config")]
    Range {
        key: &'static str,
        value: i64,
        range: &'static str,
    },
    #[error("cannot render etcd's config: {0}")]
    Render(String),
    #[error("config quota-backend-bytes={0} is out of range (1048576-107374182400 bytes; etcd's default is 2147483648, Kubernetes clusters often use 8589934592); change it with juju config")]
    Quota(i64),
    #[error("election_timeout ({election}) must be at least 5 × heartbeat_interval ({heartbeat}); raise it with juju config")]
    Election { election: u32, heartbeat: u32 },
}

impl Tuning {
    /// Validates raw config values.
    pub fn new(
        port: i64,
        management_port: i64,
        heartbeat_interval: i64,
        election_timeout: i64,
        bind_to_all_interfaces: bool,
    ) -> Result<Self, ConfigError> {
        let port_of = |key, value: i64| {
            u16::try_from(value)
                .ok()
                .filter(|p| *p > 0)
                .ok_or(ConfigError::Port { key, value })
        };
        let client_port = port_of("port", port)?;
        let peer_port = port_of("management_port", management_port)?;
        if client_port == peer_port {
            return Err(ConfigError::SamePort(client_port));
        }
        let heartbeat_interval = u32::try_from(heartbeat_interval)
            .ok()
            .filter(|h| (10..=10_000).contains(h))
            .ok_or(ConfigError::Range {
                key: "heartbeat_interval",
                value: heartbeat_interval,
                range: "10-10000 ms",
            })?;
        let election_timeout = u32::try_from(election_timeout)
            .ok()
            .filter(|e| (50..=50_000).contains(e))
            .ok_or(ConfigError::Range {
                key: "election_timeout",
                value: election_timeout,
                range: "50-50000 ms",
            })?;
        if election_timeout < 5 * heartbeat_interval {
            return Err(ConfigError::Election {
                election: election_timeout,
                heartbeat: heartbeat_interval,
            });
        }
        Ok(Tuning {
            client_port,
            peer_port,
            heartbeat_interval,
            election_timeout,
            bind_to_all_interfaces,
            quota_backend_bytes: DEFAULT_QUOTA_BACKEND_BYTES,
        })
    }

    /// Sets the backend quota from the raw config value.
    pub fn with_quota(mut self, quota_backend_bytes: i64) -> Result<Self, ConfigError> {
        self.quota_backend_bytes = u64::try_from(quota_backend_bytes)
            .ok()
            .filter(|q| (MIN_QUOTA_BACKEND_BYTES..=MAX_QUOTA_BACKEND_BYTES).contains(q))
            .ok_or(ConfigError::Quota(quota_backend_bytes))?;
        Ok(self)
    }
}

/// The files etcd serves and dials with. One certificate (serverAuth and
/// clientAuth) serves clients and peers, and is presented when this member
/// dials the others; `ca` is the only CA trusted on either side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Everything one etcd member is told at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberConfig {
    pub name: String,
    pub data_dir: PathBuf,
    /// The unit's own address (from network-get).
    pub address: String,
    pub tuning: Tuning,
    /// `name=peerURL,…` for a new cluster.
    pub initial_cluster: String,
    pub initial_cluster_state: ClusterState,
    pub initial_cluster_token: String,
    /// TLS for clients and peers, both with client-certificate auth.
    pub tls: TlsFiles,
}

/// etcd's `client-transport-security` / `peer-transport-security` block.
#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct TransportYaml {
    cert_file: String,
    key_file: String,
    trusted_ca_file: String,
    client_cert_auth: bool,
    auto_tls: bool,
}

impl TransportYaml {
    fn new(tls: &TlsFiles) -> Self {
        TransportYaml {
            cert_file: tls.cert.display().to_string(),
            key_file: tls.key.display().to_string(),
            trusted_ca_file: tls.ca.display().to_string(),
            client_cert_auth: true,
            auto_tls: false,
        }
    }
}

/// The YAML etcd reads; field names are etcd's own config keys.
#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct EtcdYaml<'a> {
    name: &'a str,
    data_dir: String,
    listen_client_urls: String,
    advertise_client_urls: String,
    listen_peer_urls: String,
    initial_advertise_peer_urls: String,
    initial_cluster: &'a str,
    initial_cluster_state: ClusterState,
    initial_cluster_token: &'a str,
    heartbeat_interval: u32,
    election_timeout: u32,
    quota_backend_bytes: u64,
    enable_v2: bool,
    logger: &'static str,
    log_outputs: Vec<&'static str>,
    client_transport_security: TransportYaml,
    peer_transport_security: TransportYaml,
}

/// The only scheme the charm's etcd speaks, to clients and to peers.
pub const SCHEME: &str = "https";

/// Formats `host:port` as a URL, bracketing IPv6 literals.
fn url(scheme: &str, host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("{scheme}://[{host}]:{port}")
    } else {
        format!("{scheme}://{host}:{port}")
    }
}

impl MemberConfig {
    /// The URL clients use to reach this member.
    pub fn client_url(&self) -> String {
        url(SCHEME, &self.address, self.tuning.client_port)
    }

    /// The URL other members use to reach this one.
    pub fn peer_url(&self) -> String {
        url(SCHEME, &self.address, self.tuning.peer_port)
    }

    /// `name=peerURL` for a one-member cluster of this unit.
    pub fn single_member_cluster(name: &str, peer_url: &str) -> String {
        format!("{name}={peer_url}")
    }

    /// Renders etcd's config file.
    pub fn render(&self) -> Result<String, ConfigError> {
        let listen_host = if self.tuning.bind_to_all_interfaces {
            "0.0.0.0"
        } else {
            self.address.as_str()
        };
        let y = EtcdYaml {
            name: &self.name,
            data_dir: self.data_dir.display().to_string(),
            listen_client_urls: url(SCHEME, listen_host, self.tuning.client_port),
            advertise_client_urls: self.client_url(),
            listen_peer_urls: url(SCHEME, listen_host, self.tuning.peer_port),
            initial_advertise_peer_urls: self.peer_url(),
            initial_cluster: &self.initial_cluster,
            initial_cluster_state: self.initial_cluster_state,
            initial_cluster_token: &self.initial_cluster_token,
            heartbeat_interval: self.tuning.heartbeat_interval,
            election_timeout: self.tuning.election_timeout,
            quota_backend_bytes: self.tuning.quota_backend_bytes,
            enable_v2: false,
            logger: "zap",
            log_outputs: vec!["stderr"],
            client_transport_security: TransportYaml::new(&self.tls),
            peer_transport_security: TransportYaml::new(&self.tls),
        };
        let body = serde_yaml::to_string(&y).map_err(|e| ConfigError::Render(e.to_string()))?;
        Ok(format!(
            "# Written by the etcd charm; changes here are overwritten.\n{body}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tuning() -> Tuning {
        Tuning::new(2379, 2380, 100, 1000, false).unwrap()
    }

    #[test]
    fn renders_etcd_keys() {
        let c = MemberConfig {
            name: "etcd-0".into(),
            data_dir: "/var/lib/etcd-charm/data".into(),
            address: "127.1.2.3".into(),
            tuning: tuning(),
            initial_cluster: MemberConfig::single_member_cluster(
                "etcd-0",
                "https://127.1.2.3:2380",
            ),
            initial_cluster_state: ClusterState::New,
            initial_cluster_token: "tok".into(),
            tls: TlsFiles {
                ca: "/p/ca.crt".into(),
                cert: "/p/server.crt".into(),
                key: "/p/server.key".into(),
            },
        };
        let y: serde_yaml::Value = serde_yaml::from_str(&c.render().unwrap()).unwrap();
        assert_eq!(y["listen-client-urls"], "https://127.1.2.3:2379");
        assert_eq!(y["listen-peer-urls"], "https://127.1.2.3:2380");
        assert_eq!(y["initial-cluster"], "etcd-0=https://127.1.2.3:2380");
        for side in ["client-transport-security", "peer-transport-security"] {
            assert_eq!(y[side]["client-cert-auth"], true, "{side}");
            assert_eq!(y[side]["trusted-ca-file"], "/p/ca.crt", "{side}");
            assert_eq!(y[side]["cert-file"], "/p/server.crt", "{side}");
            assert_eq!(y[side]["key-file"], "/p/server.key", "{side}");
            assert_eq!(y[side]["auto-tls"], false, "{side}");
        }
        assert_eq!(y["initial-cluster-state"], "new");
        assert_eq!(y["heartbeat-interval"], 100);
        assert_eq!(y["quota-backend-bytes"], 2u64 * 1024 * 1024 * 1024);
        assert_eq!(y["data-dir"], "/var/lib/etcd-charm/data");
        let all = MemberConfig {
            tuning: Tuning {
                bind_to_all_interfaces: true,
                ..tuning()
            },
            ..c
        };
        let y: serde_yaml::Value = serde_yaml::from_str(&all.render().unwrap()).unwrap();
        assert_eq!(y["listen-client-urls"], "https://0.0.0.0:2379");
        assert_eq!(y["advertise-client-urls"], "https://127.1.2.3:2379");
    }

    #[test]
    fn validates_tuning() {
        assert!(matches!(
            Tuning::new(0, 2380, 100, 1000, false),
            Err(ConfigError::Port { key: "port", .. })
        ));
        assert!(matches!(
            Tuning::new(2379, 70000, 100, 1000, false),
            Err(ConfigError::Port {
                key: "management_port",
                ..
            })
        ));
        assert_eq!(
            Tuning::new(2379, 2379, 100, 1000, false),
            Err(ConfigError::SamePort(2379))
        );
        assert!(matches!(
            Tuning::new(2379, 2380, 300, 1000, false),
            Err(ConfigError::Election { .. })
        ));
        assert_eq!(
            tuning().with_quota(1000).unwrap_err(),
            ConfigError::Quota(1000)
        );
        assert_eq!(tuning().with_quota(-1).unwrap_err(), ConfigError::Quota(-1));
        assert_eq!(
            tuning()
                .with_quota(8 * 1024 * 1024 * 1024)
                .unwrap()
                .quota_backend_bytes,
            8 * 1024 * 1024 * 1024
        );
    }

    #[test]
    fn ipv6_urls_are_bracketed() {
        assert_eq!(url("http", "fd00::1", 2379), "http://[fd00::1]:2379");
    }
}
