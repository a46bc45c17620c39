//! Hook handlers. Most hooks end in [`reconcile`], which brings the unit to
//! the state the model asks for (binaries, config, unit file, running etcd,
//! open port, status) and is safe to run any number of times.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::time::Duration;

use anyhow::{Context as _, Result};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::lock::OpLock;
use super::state::{Applied, LocalState};
use super::Charm;
use crate::etcd::client::{wait_healthy, EtcdClient};
use crate::etcd::config::Tuning;
use crate::etcd::install::{self, sha256_file};
use crate::etcd::paths::{CONFIG_FILE, DATA_DIR, UNIT_FILE};
use crate::etcd::{service, BinarySource, ClusterState, MemberConfig};
use crate::fsutil;
use crate::juju::Status;

/// The peer relation's endpoint name.
pub const PEER: &str = "cluster";
/// The leader setting holding the cluster token.
const TOKEN_KEY: &str = "cluster-token";
/// How long a hook waits for a running snapshot or restore.
const HOOK_LOCK_WAIT: Duration = Duration::from_secs(600);
/// How long a start may take before the unit is marked blocked.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Routes a hook. Unknown hooks are a successful no-op.
pub fn run(charm: &Charm<'_>, hook: &str) -> Result<()> {
    tracing::debug!("running hook {hook}");
    // No hook restarts etcd under a snapshot or restore; a restore that
    // was interrupted is rolled back before anything else.
    let _lock = OpLock::acquire(&charm.root, &format!("the {hook} hook"), HOOK_LOCK_WAIT)?;
    charm.recover_interrupted_restore()?;
    match hook {
        "install" => {
            let mut state = charm.load_state()?;
            charm.install(&mut state)?;
            charm.reconcile(&mut state)
        }
        "upgrade-charm" => {
            let mut state = charm.load_state()?;
            charm.install(&mut state)?;
            charm.reconcile(&mut state)
        }
        "start" => {
            let mut state = charm.load_state()?;
            state.started = true;
            charm.save_state(&state)?;
            charm.reconcile(&mut state)
        }
        "leader-elected" | "leader-settings-changed" | "config-changed" => {
            let mut state = charm.load_state()?;
            charm.reconcile(&mut state)
        }
        h if h.starts_with(&format!("{PEER}-relation-")) => {
            let mut state = charm.load_state()?;
            charm.reconcile(&mut state)
        }
        "update-status" => charm.update_status(),
        "stop" => charm.stop(),
        "remove" => charm.remove(),
        other => {
            tracing::debug!("no handler for hook {other}; nothing to do");
            Ok(())
        }
    }
}

/// Reads a config value as an integer, whatever JSON type Juju used.
fn config_int(config: &serde_json::Map<String, Value>, key: &str, default: i64) -> i64 {
    match config.get(key) {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(default),
        Some(Value::String(s)) => s.trim().parse().unwrap_or(default),
        _ => default,
    }
}

fn config_bool(config: &serde_json::Map<String, Value>, key: &str, default: bool) -> bool {
    match config.get(key) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true",
        _ => default,
    }
}

/// A random hex token from the kernel's generator.
pub(crate) fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .context("cannot read /dev/urandom")?;
    Ok(hex::encode(buf))
}

/// "Healthy with 1 known peer" / "Healthy with 3 known peers", as the
/// original charm said it.
pub fn healthy_message(members: usize) -> String {
    format!(
        "Healthy with {members} known peer{}",
        if members == 1 { "" } else { "s" }
    )
}

impl Charm<'_> {
    pub(crate) fn load_state(&self) -> Result<LocalState> {
        LocalState::load(&self.root).context("cannot read the charm's state file")
    }

    pub(crate) fn save_state(&self, state: &LocalState) -> Result<()> {
        state
            .save(&self.root)
            .context("cannot write the charm's state file")
    }

    fn set_status(&self, status: Status) -> Result<()> {
        tracing::info!("status: {} {}", status.kind.as_str(), status.message);
        self.tools
            .status_set(&status, false)
            .context("cannot set the unit's status")
    }

    /// Installs etcd from the resource, else the archive. An invalid
    /// resource is the operator's to fix: it sets `blocked` and returns Ok.
    fn install(&self, state: &mut LocalState) -> Result<()> {
        let resource = self
            .tools
            .resource_get("etcd")
            .context("cannot ask Juju for the etcd resource")?;
        // A resource that is attached but empty is Juju's placeholder.
        let resource = match resource {
            Some(unit_path) => {
                let host = self
                    .root
                    .resolve(&unit_path)
                    .context("resource-get returned an unusable path")?;
                match fs::metadata(&host) {
                    Ok(m) if m.len() > 0 => Some(host),
                    _ => None,
                }
            }
            None => None,
        };
        let result = match (&resource, &state.binaries) {
            (Some(path), installed) => {
                // The same resource as the binaries we run: nothing to do.
                if let Some(b) = installed {
                    let sha = sha256_file(path).context("cannot read the etcd resource")?;
                    if b.source == (BinarySource::Resource { sha256: sha }) {
                        return Ok(());
                    }
                }
                self.set_status(Status::maintenance(
                    "Installing etcd from the etcd resource",
                ))?;
                install::install_from_resource(&self.root, path)
            }
            // Already installed, no (new) resource: keep what runs.
            (None, Some(_)) => return Ok(()),
            (None, None) => {
                self.set_status(Status::maintenance(
                    "Installing etcd-server and etcd-client from the Ubuntu archive",
                ))?;
                install::install_from_archive()
            }
        };
        match result {
            Ok(b) => {
                tracing::info!("installed etcd {} from {}", b.version, b.source);
                state.binaries = Some(b);
                state.install_error = None;
            }
            Err(e) => {
                tracing::error!("etcd install failed: {e}");
                state.install_error = Some(e.to_string());
            }
        }
        self.save_state(state)
    }

    /// Brings the unit to the state the model asks for.
    fn reconcile(&self, state: &mut LocalState) -> Result<()> {
        if let Some(err) = &state.install_error {
            return self.set_status(Status::blocked(err.clone()));
        }
        let Some(binaries) = state.binaries.clone() else {
            return self.set_status(Status::maintenance("Waiting for etcd to be installed"));
        };
        self.tools
            .application_version_set(&binaries.version)
            .context("cannot set the application version")?;

        let config = self
            .tools
            .config_get()
            .context("cannot read the charm config")?;
        let tuning = match Tuning::new(
            config_int(&config, "port", 2379),
            config_int(&config, "management_port", 2380),
            config_int(&config, "heartbeat_interval", 100),
            config_int(&config, "election_timeout", 1000),
            config_bool(&config, "bind_to_all_interfaces", false),
        ) {
            Ok(t) => t,
            Err(e) => return self.set_status(Status::blocked(e.to_string())),
        };

        let leader = self.tools.is_leader().context("cannot ask is-leader")?;
        let mut settings = self
            .tools
            .leader_get()
            .context("cannot read leader settings")?;
        if !settings.contains_key(TOKEN_KEY) && leader {
            let token = format!("etcd-{}", random_hex(8)?);
            let mut new = BTreeMap::new();
            new.insert(TOKEN_KEY.to_string(), token.clone());
            self.tools
                .leader_set(&new)
                .context("cannot store the cluster token")?;
            settings.insert(TOKEN_KEY.to_string(), token);
        }
        let Some(token) = settings.get(TOKEN_KEY).cloned() else {
            return self.set_status(Status::waiting(
                "Waiting for the leader to create the cluster",
            ));
        };
        let data_dir = self.root.at(DATA_DIR);
        let bootstrapped = data_dir.join("member").exists();
        if !leader && !bootstrapped {
            return self.set_status(Status::blocked(format!(
                "Not part of the cluster: this release runs etcd on the leader only; remove this unit with: juju remove-unit {}",
                self.ctx.unit_name
            )));
        }

        let net = self
            .tools
            .network_get(PEER)
            .context("cannot ask network-get for the cluster endpoint")?;
        let Some(address) = net.primary().map(str::to_string) else {
            return self.set_status(Status::blocked(
                "network-get gave no address for the cluster endpoint; check the unit's network bindings",
            ));
        };
        let name = self.ctx.member_name();
        let mut member = MemberConfig {
            name: name.clone(),
            data_dir: data_dir.clone(),
            address,
            tuning,
            initial_cluster: String::new(),
            initial_cluster_state: ClusterState::New,
            initial_cluster_token: token,
        };
        member.initial_cluster = MemberConfig::single_member_cluster(&name, &member.peer_url());
        let config_text = member.render().context("cannot render etcd's config")?;
        let config_path = self.root.at(CONFIG_FILE);
        fsutil::write_atomic(&config_path, config_text.as_bytes(), 0o600)
            .with_context(|| format!("cannot write {}", config_path.display()))?;
        fsutil::create_dir_mode(&data_dir, 0o700)
            .with_context(|| format!("cannot create {}", data_dir.display()))?;
        let unit_text = service::render_unit(&binaries.etcd, &config_path);
        let unit_path = self.root.at(UNIT_FILE);
        if fsutil::write_atomic(&unit_path, unit_text.as_bytes(), 0o644)
            .with_context(|| format!("cannot write {}", unit_path.display()))?
        {
            self.service
                .daemon_reload()
                .context("systemctl daemon-reload failed")?;
        }
        self.service
            .enable()
            .context("systemctl enable etcd failed")?;

        if !state.started {
            return self.set_status(Status::maintenance(format!(
                "etcd {} installed; waiting for the start hook",
                binaries.version
            )));
        }

        let fingerprint = hex::encode(Sha256::digest(format!("{config_text}\0{unit_text}")));
        let wanted = Applied {
            client_url: member.client_url(),
            peer_url: member.peer_url(),
            client_port: member.tuning.client_port,
            fingerprint,
        };
        let running = self
            .service
            .is_active()
            .context("systemctl is-active failed")?;
        let changed = state.applied.as_ref() != Some(&wanted);
        if running && changed {
            if let Some(old) = &state.applied {
                if old.peer_url != wanted.peer_url {
                    self.move_peer_url(old, &wanted)?;
                }
            }
            self.set_status(Status::maintenance(
                "Restarting etcd with the new configuration",
            ))?;
            self.service
                .restart()
                .context("systemctl restart etcd failed")?;
        } else if !running {
            self.set_status(Status::maintenance("Starting etcd"))?;
            if let Err(e) = self.service.start() {
                return self.set_status(Status::blocked(format!(
                    "etcd failed to start: {e}; check the config and the etcd log, then run: juju run {} health",
                    self.ctx.unit_name
                )));
            }
        }
        let health = match wait_healthy(&wanted.client_url, START_TIMEOUT) {
            Ok(h) => h,
            Err(e) => {
                return self.set_status(Status::blocked(format!(
                    "etcd is not healthy at {}: {e}",
                    wanted.client_url
                )))
            }
        };
        if let Some(old) = &state.applied {
            if old.client_port != wanted.client_port {
                self.tools
                    .close_port(old.client_port)
                    .context("cannot close the old client port")?;
            }
        }
        self.tools
            .open_port(wanted.client_port)
            .context("cannot open the client port")?;
        state.applied = Some(wanted);
        self.save_state(state)?;
        self.set_status(Status::active(self.active_message(health.members.len())?))
    }

    /// The active status: healthy, and whether a snapshot waits to be
    /// restored.
    fn active_message(&self, members: usize) -> Result<String> {
        let healthy = healthy_message(members);
        Ok(match self.snapshot_waiting()? {
            Some(size) => format!(
                "{healthy}; snapshot resource attached ({}), ready to restore: juju run-action {} restore",
                super::snapshot::human_size(size),
                self.ctx.unit_name
            ),
            None => healthy,
        })
    }

    /// Tells the cluster this member's new peer URL before restarting on it.
    fn move_peer_url(&self, old: &Applied, wanted: &Applied) -> Result<()> {
        let mut client = EtcdClient::connect(&old.client_url, Duration::from_secs(5))
            .context("cannot reach etcd to change its peer URL")?;
        let status = client.status().context("cannot read etcd's member id")?;
        client
            .member_update(status.member_id, vec![wanted.peer_url.clone()])
            .context("cannot change this member's peer URL")?;
        tracing::info!(
            "peer URL changed from {} to {}",
            old.peer_url,
            wanted.peer_url
        );
        Ok(())
    }

    /// A health check over etcd-client; restarts etcd once if it should be
    /// running and is not.
    fn update_status(&self) -> Result<()> {
        let mut state = self.load_state()?;
        if state.install_error.is_some() || state.binaries.is_none() || !state.started {
            return self.reconcile(&mut state);
        }
        let Some(applied) = state.applied.clone() else {
            return self.reconcile(&mut state);
        };
        if !self
            .service
            .is_active()
            .context("systemctl is-active failed")?
        {
            tracing::warn!("etcd.service is not running; starting it");
            return self.reconcile(&mut state);
        }
        let result = EtcdClient::connect(&applied.client_url, Duration::from_secs(3))
            .and_then(|mut c| c.health());
        match result {
            Ok(h) if h.is_healthy() => {
                self.set_status(Status::active(self.active_message(h.members.len())?))
            }
            Ok(h) if !h.alarms.is_empty() => self.set_status(Status::blocked(format!(
                "etcd raised alarms {}: free space, then run: juju run {} compact, then defrag",
                h.alarms.join(", "),
                self.ctx.unit_name
            ))),
            Ok(_) => self.set_status(Status::blocked(
                "etcd has no leader: the cluster has lost quorum",
            )),
            Err(e) => self.set_status(Status::blocked(format!(
                "etcd is running but unhealthy: {e}"
            ))),
        }
    }

    fn stop(&self) -> Result<()> {
        let mut state = self.load_state()?;
        state.started = false;
        self.save_state(&state)?;
        if state.binaries.is_some() && self.root.at(UNIT_FILE).exists() {
            self.service.stop().context("systemctl stop etcd failed")?;
        }
        self.set_status(Status::maintenance("etcd stopped"))
    }

    /// The unit is going away. etcd is stopped and disabled; its data stays
    /// on disk, because deleting data is never the charm's call.
    fn remove(&self) -> Result<()> {
        let state = self.load_state()?;
        if state.binaries.is_some() && self.root.at(UNIT_FILE).exists() {
            self.service.stop().context("systemctl stop etcd failed")?;
            self.service
                .disable()
                .context("systemctl disable etcd failed")?;
        }
        Ok(())
    }
}
