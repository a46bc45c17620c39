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

use super::cluster::{member_name_of, parse_initial_cluster, INITIAL_CLUSTER_KEY};
use super::lock::OpLock;
use super::rolling::Gate;
use super::state::{Applied, Bootstrap, LocalState};
use super::Charm;
use crate::etcd::client::{wait_ready, wait_serving, EtcdClient};
use crate::etcd::config::Tuning;
use crate::etcd::install::{self, sha256_file};
use crate::etcd::paths::{CONFIG_FILE, DATA_DIR, SERVER_CERT, UNIT_FILE};
use crate::etcd::{service, BinarySource, ClusterState, MemberConfig};
use crate::fsutil;
use crate::juju::Status;

pub use super::cluster::PEER;
use super::db::DB;
/// The leader setting holding the cluster token.
const TOKEN_KEY: &str = "cluster-token";
/// How long a hook waits for a running snapshot or restore.
const HOOK_LOCK_WAIT: Duration = Duration::from_secs(600);
/// How long a start may take before the unit is marked blocked.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a running cluster may take to settle (elect a leader) before
/// the unit reports it unhealthy.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Routes a hook. Unknown hooks are a successful no-op.
pub fn run(charm: &Charm<'_>, hook: &str) -> Result<()> {
    tracing::debug!("running hook {hook}");
    // No hook restarts etcd under a snapshot or restore; a restore that
    // was interrupted is rolled back before anything else.
    let _lock = OpLock::acquire(&charm.root, &format!("the {hook} hook"), HOOK_LOCK_WAIT)?;
    charm.recover_interrupted()?;
    // The backup settings and timer (src/charm/backup.rs) follow the config
    // and the s3-credentials relation on every hook but the last two.
    if hook != "stop" && hook != "remove" {
        charm.configure_backups()?;
    }
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
        h if h == format!("{PEER}-relation-departed") => {
            let departing = charm
                .ctx
                .relation
                .as_ref()
                .and_then(|r| r.departing_unit.clone());
            match departing {
                Some(u) if u == charm.ctx.unit_name => charm.leave(),
                Some(u) => {
                    if charm.tools.is_leader().context("cannot ask is-leader")? {
                        charm.forget_unit(&u)?;
                    }
                    let mut state = charm.load_state()?;
                    charm.reconcile(&mut state)
                }
                None => {
                    let mut state = charm.load_state()?;
                    charm.reconcile(&mut state)
                }
            }
        }
        h if h.starts_with(&format!("{PEER}-relation-"))
            || h == format!("{DB}-relation-joined")
            || h == format!("{DB}-relation-changed") =>
        {
            let mut state = charm.load_state()?;
            charm.reconcile(&mut state)
        }
        "update-status" => charm.update_status(),
        // A timer that will not stop must not keep the member from leaving.
        "stop" => {
            if let Err(e) = charm.disable_backup_timer() {
                tracing::warn!("{e:#}");
            }
            charm.stop()
        }
        "remove" => {
            if let Err(e) = charm.disable_backup_timer() {
                tracing::warn!("{e:#}");
            }
            charm.remove()
        }
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
        let resource = match self.tools.resource_get("etcd") {
            Ok(r) => {
                state.resource_wait = None;
                r
            }
            Err(e) => {
                // Not "nothing uploaded" but a fault on the way to the
                // controller: installing from the archive now could run an
                // etcd the operator did not choose. Wait; every later hook
                // (update-status at the latest) tries again.
                tracing::warn!(
                    "cannot fetch the etcd resource from the controller; not installing etcd until it can be read: {e}"
                );
                if state.binaries.is_none() {
                    state.resource_wait = Some(
                        "Waiting for the etcd resource: Juju could not hand it over (see juju debug-log); the next hook tries again".into(),
                    );
                }
                return self.save_state(state);
            }
        };
        // A resource that is attached but empty is Juju's placeholder.
        let resource = match resource {
            Some(host) => {
                if !host.is_absolute() {
                    anyhow::bail!("resource-get returned a relative path {host:?}");
                }
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
                match (install::stage_resource(&self.root, path), &state.applied) {
                    // A running member: the version step is checked
                    // before anything is replaced (see upgrade.rs).
                    (Ok(staged), Some(applied)) if installed.is_some() => {
                        match self.upgrade_refusal(&applied.client_url, &staged.version)? {
                            Some(why) => {
                                staged.discard();
                                tracing::error!("{why}");
                                state.install_error = Some(why);
                                return self.save_state(state);
                            }
                            None => staged.commit(),
                        }
                    }
                    (staged, _) => staged.and_then(install::Staged::commit),
                }
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

    /// Builds this unit's [`MemberConfig`]: the one place that decides the
    /// member's name, URLs, TLS files, data dir and how it joins. Creates
    /// the cluster token and the CA on the leader, and (re)issues this
    /// unit's certificates. `Ok(Err(status))` says what the unit waits for
    /// or what the operator must fix.
    ///
    /// How the member joins comes from `state.bootstrap` once it has
    /// started; a caller that replaces the data dir (a restore) sets
    /// `initial_cluster`/`initial_cluster_state` on the result itself and
    /// records the new [`Bootstrap`] in the state.
    pub fn member_config(
        &self,
        state: &LocalState,
    ) -> Result<std::result::Result<MemberConfig, Status>> {
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
        )
        .and_then(|t| {
            t.with_quota(config_int(
                &config,
                "quota-backend-bytes",
                crate::etcd::config::DEFAULT_QUOTA_BACKEND_BYTES as i64,
            ))
        }) {
            Ok(t) => t,
            Err(e) => return Ok(Err(Status::blocked(e.to_string()))),
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
            return Ok(Err(Status::waiting(
                "Waiting for the leader to create the cluster",
            )));
        };
        let Some(peer_id) = self.peer_relation()? else {
            return Ok(Err(Status::waiting(
                "Waiting for Juju to create the peer relation",
            )));
        };

        let net = self
            .tools
            .network_get(PEER)
            .context("cannot ask network-get for the cluster endpoint")?;
        let Some(address) = net.primary().map(str::to_string) else {
            return Ok(Err(Status::blocked(
                "network-get gave no address for the cluster endpoint; check the unit's network bindings",
            )));
        };
        let Some(ca) = self.ensure_ca(&peer_id, leader)? else {
            return Ok(Err(Status::waiting(
                "Waiting for the leader to create the cluster's CA",
            )));
        };
        let name = self.ctx.member_name();
        self.ensure_unit_certs(&ca, &name, &address)?;

        let data_dir = self.root.at(DATA_DIR);
        let mut member = MemberConfig {
            name: name.clone(),
            data_dir: data_dir.clone(),
            address,
            tuning,
            initial_cluster: String::new(),
            initial_cluster_state: ClusterState::New,
            initial_cluster_token: token,
            tls: self.server_tls_files(),
        };
        // Publish where this unit can be reached, so the leader can register it.
        let mut bag = BTreeMap::new();
        bag.insert("member-name".to_string(), name.clone());
        bag.insert("peer-url".to_string(), member.peer_url());
        bag.insert("client-url".to_string(), member.client_url());
        self.publish_unit(&peer_id, bag)?;
        let single = MemberConfig::single_member_cluster(&name, &member.peer_url());
        let (initial, cluster_state) = if let Some(b) = &state.bootstrap {
            (b.initial_cluster.clone(), b.cluster_state)
        } else if data_dir.join("member").exists() {
            (single, ClusterState::New)
        } else {
            let published = self
                .peer_app_data(&peer_id)?
                .get(INITIAL_CLUSTER_KEY)
                .cloned()
                .unwrap_or_default();
            let me = (name.clone(), member.peer_url());
            let registered = parse_initial_cluster(&published);
            // The published members that still have a unit: none means
            // the application lost every member (scaled to zero), and the
            // leader starts a new cluster.
            let peers: Vec<String> = self
                .tools
                .relation_list(&peer_id)
                .context("cannot list the peer units")?
                .iter()
                .map(|u| member_name_of(u))
                .collect();
            let alive = registered.iter().any(|(n, _)| peers.contains(n));
            if registered.contains(&me) {
                (published, ClusterState::Existing)
            } else if leader && !alive {
                if !registered.is_empty() {
                    tracing::warn!(
                        "no unit of the published cluster ({published}) is left; bootstrapping a new cluster"
                    );
                }
                (single, ClusterState::New)
            } else {
                // The leader without a running etcd of its own (it is
                // joining again after a recover-quorum, say) registers
                // itself through a member that votes.
                if leader {
                    if let Some(mut voter) = self.connect_to_a_voter(&peer_id)? {
                        self.register_peers(&peer_id, &mut voter)?;
                    }
                }
                return Ok(Err(Status::waiting(
                    "Waiting for the leader to add this unit to the etcd cluster",
                )));
            }
        };
        member.initial_cluster = initial;
        member.initial_cluster_state = cluster_state;
        Ok(Ok(member))
    }

    /// Brings the unit to the state the model asks for.
    pub(crate) fn reconcile(&self, state: &mut LocalState) -> Result<()> {
        if state.left {
            return self.set_status(Status::maintenance(
                "Left the etcd cluster; this unit is being removed",
            ));
        }
        if let Some(err) = &state.install_error {
            return self.set_status(Status::blocked(err.clone()));
        }
        if state.binaries.is_none() && state.resource_wait.is_some() {
            // The last try could not fetch the resource: try again.
            self.install(state)?;
        }
        if let Some(why) = &state.resource_wait {
            return self.set_status(Status::waiting(why.clone()));
        }
        let Some(binaries) = state.binaries.clone() else {
            return self.set_status(Status::maintenance("Waiting for etcd to be installed"));
        };
        self.tools
            .application_version_set(&binaries.version)
            .context("cannot set the application version")?;

        // A peer's recover-quorum dropped this member: join again, fresh.
        self.rejoin_after_recovery(state)?;
        // This member's health for the leader's automatic repair, and the
        // leader's order to replace it, if any (see repair.rs).
        self.report_member_health(state)?;
        if self.follow_repair_order(state)? {
            return Ok(());
        }
        let member = match self.member_config(state)? {
            Ok(m) => m,
            Err(status) => return self.set_status(status),
        };
        let data_dir = member.data_dir.clone();
        let config_text = member.render().context("cannot render etcd's config")?;
        let config_path = self.root.at(CONFIG_FILE);
        fsutil::create_dir_mode(&data_dir, 0o700)
            .with_context(|| format!("cannot create {}", data_dir.display()))?;
        let unit_text = service::render_unit(&binaries.etcd, &config_path);
        let unit_path = self.root.at(UNIT_FILE);
        // A running etcd that must restart to apply them gets its new files
        // only once it holds the rolling-restart lock: were it to crash and
        // be started again meanwhile, it would start on what it ran.
        let write_files = || -> Result<()> {
            fsutil::write_atomic(&config_path, config_text.as_bytes(), 0o600)
                .with_context(|| format!("cannot write {}", config_path.display()))?;
            if fsutil::write_atomic(&unit_path, unit_text.as_bytes(), 0o644)
                .with_context(|| format!("cannot write {}", unit_path.display()))?
            {
                self.service
                    .daemon_reload()
                    .context("systemctl daemon-reload failed")?;
            }
            self.service
                .enable()
                .context("systemctl enable etcd failed")
        };

        if !state.started {
            write_files()?;
            return self.set_status(Status::maintenance(format!(
                "etcd {} installed; waiting for the start hook",
                binaries.version
            )));
        }

        // The certificates are part of what etcd was started with: a
        // reissued one needs a restart.
        let cert = fs::read(self.root.at(SERVER_CERT)).unwrap_or_default();
        let mut hasher = Sha256::new();
        hasher.update(config_text.as_bytes());
        hasher.update(b"\0");
        hasher.update(unit_text.as_bytes());
        hasher.update(b"\0");
        hasher.update(&cert);
        // New binaries under the same path (a new `etcd` resource) need a
        // restart too, through the rolling lock like any other.
        hasher.update(b"\0");
        hasher.update(format!("{} {}", binaries.version, binaries.source).as_bytes());
        let fingerprint = hex::encode(hasher.finalize());
        let wanted = Applied {
            client_url: member.client_url(),
            peer_url: member.peer_url(),
            client_port: member.tuning.client_port,
            fingerprint,
        };
        let tls = self.client_tls()?;
        let running = self
            .service
            .is_active()
            .context("systemctl is-active failed")?;
        let changed = state.applied.as_ref() != Some(&wanted);
        // etcd died (or was stopped) before this unit's rolling-restart
        // turn for new binaries: start it again on the build it ran, which
        // the unit file on disk still names, and let the upgrade wait for
        // its turn and its backup like any other. Only if that build does
        // not come up does it start on the new one, as a dead member
        // always did.
        let mut running = running;
        if !running && changed && state.started && state.applied.is_some() {
            let ran = fs::read_to_string(&unit_path)
                .ok()
                .as_deref()
                .and_then(service::exec_start_binary)
                .filter(|b| *b != binaries.etcd && b.is_file());
            if let Some(ran) = ran {
                running = self.start_on_what_it_ran(
                    &ran,
                    &binaries.version,
                    &wanted.client_url,
                    &tls,
                    || {
                        fsutil::write_atomic(&config_path, config_text.as_bytes(), 0o600)
                            .with_context(|| format!("cannot write {}", config_path.display()))
                            .map(drop)
                    },
                )?;
            }
        }
        if !(running && changed) {
            write_files()?;
        }
        let mut started_now = false;
        let mut upgraded_to = None;
        if running && changed {
            // Every restart goes through the application's rolling lock
            // (see rolling.rs): one member at a time, only while the
            // others serve and keep quorum.
            let mut restarting =
                "Restarting etcd with the new configuration (holding the rolling-restart lock)"
                    .to_string();
            if let Some(old) = &state.applied {
                // The version etcd runs now: new binaries make this an
                // upgrade, with a backup first.
                let running_version =
                    EtcdClient::connect(&old.client_url, &tls, Duration::from_secs(3))
                        .and_then(|mut c| c.status())
                        .map(|s| s.version)
                        .ok();
                let upgrade = running_version
                    .as_ref()
                    .filter(|v| **v != binaries.version)
                    .map(|v| (v.clone(), binaries.version.clone()));
                let reason = if let Some((_, to)) = &upgrade {
                    format!("{}{to}", super::upgrade::UPGRADE_REASON)
                } else if old.client_port != wanted.client_port || old.peer_url != wanted.peer_url {
                    "new ports".to_string()
                } else {
                    "new config, binaries or certificates".to_string()
                };
                if let Gate::Wait(status) = self.restart_gate(&old.client_url, &tls, &reason)? {
                    return self.held_back(old.clone(), status);
                }
                if let Some((from, to)) = &upgrade {
                    self.set_status(Status::maintenance(format!(
                        "Backing up this member before upgrading etcd {from} to {to}"
                    )))?;
                    let backup = match self.backup_before_upgrade(&old.client_url) {
                        Ok(p) => p,
                        Err(e) => {
                            return self.set_status(Status::blocked(format!(
                                "{e:#}; free space in {} (or fix the error), the upgrade goes on at the next hook",
                                super::snapshot::DEFAULT_TARGET
                            )))
                        }
                    };
                    restarting = format!(
                        "Upgrading etcd {from} to {to} (holding the rolling-restart lock; backup: {backup})"
                    );
                    upgraded_to = Some(to.clone());
                }
                if old.peer_url != wanted.peer_url {
                    self.move_peer_url(old, &wanted)?;
                }
            }
            write_files()?;
            tracing::info!("{restarting}");
            self.set_status(Status::maintenance(restarting))?;
            self.service
                .restart()
                .context("systemctl restart etcd failed")?;
            started_now = true;
        } else if !running {
            self.set_status(Status::maintenance("Starting etcd"))?;
            if let Err(e) = self.service.start() {
                return self.set_status(Status::blocked(format!(
                    "etcd failed to start: {e}; check the config and the etcd log, then run: juju run {} health",
                    self.ctx.unit_name
                )));
            }
            started_now = true;
        }
        if started_now {
            // A new member is a learner until the leader promotes it: it
            // answers status but not a linearizable read, so only a voting
            // member is waited on until healthy.
            let ready = wait_ready(&wanted.client_url, &tls, START_TIMEOUT).and_then(|st| {
                if st.is_learner {
                    Ok(())
                } else {
                    // Serving, alarms or not: a raised alarm shows in the
                    // status below and is not the restart's fault.
                    wait_serving(&wanted.client_url, &tls, START_TIMEOUT).map(drop)
                }
            });
            if let Err(e) = ready {
                return self.set_status(Status::blocked(format!(
                    "etcd is not healthy at {}: {e}",
                    wanted.client_url
                )));
            }
        }
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
        if state.bootstrap.is_none() {
            state.bootstrap = Some(Bootstrap {
                initial_cluster: member.initial_cluster.clone(),
                cluster_state: member.initial_cluster_state,
            });
        }
        state.applied = Some(wanted.clone());
        self.save_state(state)?;
        // etcd runs what the unit file names (written above or at this
        // restart): builds nothing names any more can go.
        self.remove_unused_builds(&binaries.etcd, &unit_path);
        // A restart done under the lock (in this hook or one whose
        // catch-up did not finish) hands the lock on once this member has
        // caught up; a request no longer needed is withdrawn.
        if let Some(version) = &upgraded_to {
            self.publish_upgraded(version)?;
        }
        if let Err(e) = self.settle_restart_lock(&wanted.client_url, &tls) {
            tracing::warn!("{e:#}");
            return self.set_status(Status::waiting(format!(
                "Restarted etcd; holding the rolling-restart lock until this member catches up: {e:#}"
            )));
        }

        let mut client = match EtcdClient::connect(&wanted.client_url, &tls, Duration::from_secs(5))
        {
            Ok(c) => c,
            Err(e) => {
                return self.set_status(Status::blocked(format!(
                    "etcd is running but unreachable at {}: {e}",
                    wanted.client_url
                )))
            }
        };
        let Some(peer_id) = self.peer_relation()? else {
            return self.health_status(&mut client);
        };
        let own = client.status().ok();
        if let Some(st) = &own {
            let mut bag = BTreeMap::new();
            bag.insert("member-id".to_string(), format!("{:x}", st.member_id));
            self.publish_unit(&peer_id, bag)?;
        }
        // A learner answers neither member list nor a linearizable read.
        if own.as_ref().is_some_and(|st| st.is_learner) {
            // Juju may make a learner the leader (the old leader died before
            // promoting it); then nobody else will promote it, so it does
            // the leader's work through a voting member.
            if self.tools.is_leader().context("cannot ask is-leader")? {
                if let Some(mut voter) = self.connect_to_a_voter(&peer_id)? {
                    self.register_peers(&peer_id, &mut voter)?;
                }
            }
            return self.set_status(Status::waiting(
                "Joined the cluster as a learner; waiting for the leader to promote this member",
            ));
        }
        let leader = self.tools.is_leader().context("cannot ask is-leader")?;
        let members = if leader {
            let members = self.register_peers(&peer_id, &mut client)?;
            self.tend_restart_locks(&peer_id)?;
            if let Err(e) = self.tend_repairs(&peer_id, &wanted.client_url) {
                tracing::warn!("cannot tend the automatic repair: {e:#}");
            }
            members
        } else {
            client.members().context("cannot list etcd's members")?
        };
        self.update_db_relations()?;
        let pending: Vec<String> = members
            .iter()
            .filter(|m| m.name.is_empty() || m.is_learner)
            .filter_map(|m| m.peer_urls.first().cloned())
            .collect();
        if !pending.is_empty() {
            return self.set_status(Status::waiting(format!(
                "Waiting for the new member at {} to join the cluster",
                pending.join(", ")
            )));
        }
        self.health_status(&mut client)
    }

    /// Starts a stopped etcd on `ran` (the build the unit file on disk
    /// names) with the config `write_config` writes, and waits for it to
    /// serve at `client_url`. Whether it did; if not, etcd is stopped again
    /// so that the caller starts it on the new files.
    fn start_on_what_it_ran(
        &self,
        ran: &std::path::Path,
        new_version: &str,
        client_url: &str,
        tls: &crate::etcd::ClientTls,
        write_config: impl FnOnce() -> Result<()>,
    ) -> Result<bool> {
        let version = install::etcd_version(ran).unwrap_or_else(|_| "?".into());
        self.set_status(Status::maintenance(format!(
            "Starting etcd {version} again; etcd {new_version} waits for this unit's rolling-restart turn"
        )))?;
        tracing::warn!(
            "etcd is not running and has not had its turn for etcd {new_version} yet: starting it on {}",
            ran.display()
        );
        write_config()?;
        let ready = self
            .service
            .start()
            .map_err(anyhow::Error::from)
            .and_then(|()| {
                let st = wait_ready(client_url, tls, START_TIMEOUT)?;
                if !st.is_learner {
                    wait_serving(client_url, tls, START_TIMEOUT)?;
                }
                Ok(())
            });
        match ready {
            Ok(()) => Ok(true),
            Err(e) => {
                tracing::warn!(
                    "etcd {version} did not come up again ({e:#}); starting it on etcd {new_version} instead"
                );
                self.service.stop().context("systemctl stop etcd failed")?;
                Ok(false)
            }
        }
    }

    /// Removes the etcd builds in the charm's bin directory that neither
    /// the state nor the unit file on disk names (see
    /// [`install::remove_unused_builds`]). A failure only warns: a build
    /// left on disk harms nothing.
    fn remove_unused_builds(&self, installed: &std::path::Path, unit_path: &std::path::Path) {
        let Some(named) = fs::read_to_string(unit_path)
            .ok()
            .as_deref()
            .and_then(service::exec_start_binary)
        else {
            tracing::warn!(
                "cannot tell which etcd {} starts; keeping every build",
                unit_path.display()
            );
            return;
        };
        match install::remove_unused_builds(&self.root, &[installed, named.as_path()]) {
            Ok(removed) => {
                for p in removed {
                    tracing::info!("removed etcd binaries no longer in use: {}", p.display());
                }
            }
            Err(e) => tracing::warn!("cannot remove etcd binaries no longer in use: {e}"),
        }
    }

    /// A restart is needed but not allowed yet: etcd keeps running what it
    /// was started with, the leader still tends the cluster and the lock,
    /// and the status says what the unit waits for.
    fn held_back(&self, running: Applied, status: Status) -> Result<()> {
        if self.tools.is_leader().context("cannot ask is-leader")? {
            if let Some(peer_id) = self.peer_relation()? {
                let tls = self.client_tls()?;
                match EtcdClient::connect(&running.client_url, &tls, Duration::from_secs(5)) {
                    Ok(mut client) => {
                        self.register_peers(&peer_id, &mut client)?;
                    }
                    Err(e) => tracing::warn!("cannot reach this unit's etcd: {e}"),
                }
            }
        }
        self.update_db_relations()?;
        self.set_status(status)
    }

    /// Sets the status from one health check.
    fn health_status(&self, client: &mut EtcdClient) -> Result<()> {
        // An election (after a member left, say) makes etcd answer "leader
        // changed" or have no leader for a moment: look again before
        // calling it unhealthy.
        let deadline = std::time::Instant::now() + SETTLE_TIMEOUT;
        let health = loop {
            let h = client.health();
            if matches!(&h, Ok(h) if h.is_healthy()) || std::time::Instant::now() >= deadline {
                break h;
            }
            std::thread::sleep(Duration::from_millis(500));
        };
        match health {
            Ok(h) if h.is_healthy() => match self.backup_status() {
                Err(status) => self.set_status(status),
                Ok(extra) => {
                    let msg = self.active_message(h.members.len())?;
                    self.set_status(Status::active(match extra {
                        Some(e) => format!("{msg}; {e}"),
                        None => msg,
                    }))
                }
            },
            Ok(h) if !h.alarms.is_empty() => {
                let alarms = client.alarms().context("etcd did not list its alarms")?;
                self.set_status(Status::blocked(super::alarms::alarm_message(
                    &self.ctx.app_name,
                    &alarms,
                    &h.members,
                )))
            }
            Ok(_) => self.set_status(Status::blocked(format!(
                "etcd has no leader: the cluster has lost quorum; bring the other members back, \
                 or if a majority is gone for good: juju run {} recover-quorum",
                self.ctx.unit_name
            ))),
            Err(_) if client.status().is_ok_and(|s| s.leader == 0) => {
                self.set_status(Status::blocked(format!(
                    "etcd has no leader: the cluster has lost quorum; bring the other members back, \
                     or if a majority is gone for good: juju run {} recover-quorum",
                    self.ctx.unit_name
                )))
            }
            Err(e) => self.set_status(Status::blocked(format!(
                "etcd is running but unhealthy: {e}"
            ))),
        }
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
        let tls = self.client_tls()?;
        let mut client = EtcdClient::connect(&old.client_url, &tls, Duration::from_secs(5))
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

    /// A health check over etcd-client; restarts etcd if it should be
    /// running and is not, and renews certificates before they expire.
    fn update_status(&self) -> Result<()> {
        let mut state = self.load_state()?;
        if state.left
            || state.install_error.is_some()
            || state.binaries.is_none()
            || !state.started
            || state.applied.is_none()
        {
            return self.reconcile(&mut state);
        }
        if self.certs_need_renewal() {
            tracing::info!("a certificate expires soon; renewing it and restarting etcd");
            return self.reconcile(&mut state);
        }
        if !self
            .service
            .is_active()
            .context("systemctl is-active failed")?
        {
            tracing::warn!("etcd.service is not running; starting it");
        }
        // reconcile also lets the leader register units still waiting.
        self.reconcile(&mut state)
    }

    /// Stop runs when the unit is torn down: leave the cluster first.
    fn stop(&self) -> Result<()> {
        self.leave()
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
