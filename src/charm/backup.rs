//! Backups that outlive the unit: the `create-backup` and `list-backups`
//! actions, the backup settings that hooks write for the timer, the timer's
//! tick, and the backup part of the status.
//!
//! Hooks ([`Charm::configure_backups`]) turn the config (`backup-store`,
//! `backup-dir`, `backup-schedule`, `backup-retention`, `backup-verify`) and
//! the `s3-credentials` relation into [`BackupConfig`], written 0600 to
//! `/var/lib/etcd-charm/backup.json`, and install or remove the charm's own
//! systemd timer ([`crate::etcd::timer`]). The timer runs `dispatch
//! backup-tick` outside hook context ([`tick_main`]): it reads that file,
//! needs no hook tool, and writes each outcome to
//! `/var/lib/etcd-charm/backup-state.json` ([`BackupState`], 0600, no
//! credentials), which `update-status` reports.
//!
//! One backup per tick per application, with nothing written to etcd's
//! keyspace: every unit's timer fires at the same wall-clock ticks, only
//! the unit whose member is etcd's raft leader takes the backup (a leader
//! is a healthy voting member), and the archive is named after the tick,
//! so a second taker during a leadership change finds the name already
//! there and stops. Retention runs after a successful backup, by the same
//! unit. The action, the timer and the `snapshot` action share one
//! pipeline ([`Charm::stream_packed`]).

use std::fs;
use std::io;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::lock::OpLock;
use super::snapshot::{archive_results, human_size, now_unix};
use super::Charm;
use crate::etcd::{timer, Root};
use crate::fsutil;
use crate::juju::Status;
use crate::schedule::{human_duration, Schedule};
use crate::snapshot;
use crate::store::retention::{self, Candidate, Policy};
use crate::store::s3::SecretString;
use crate::store::{BackupStore, Listed, LocalStore, S3Settings, S3Store, Sidecar};

/// The requirer's endpoint for an S3 provider (s3-integrator).
pub const S3_ENDPOINT: &str = "s3-credentials";
/// The settings the timer reads.
pub const BACKUP_CONFIG: &str = "/var/lib/etcd-charm/backup.json";
/// The outcome of the last ticks.
pub const BACKUP_STATE: &str = "/var/lib/etcd-charm/backup-state.json";
/// `backup-dir`'s default.
pub const DEFAULT_BACKUP_DIR: &str = "/var/lib/etcd-charm/backups";
/// `backup-schedule`'s default.
pub const DEFAULT_SCHEDULE: &str = "1h";
/// The s3 interface library version we speak (v1 with secrets).
const S3_LIB_VERSION: &str = "1.0";
/// How long a tick waits for a hook or action to release the unit's lock.
const TICK_LOCK_WAIT: Duration = Duration::from_secs(120);

/// What the hooks decided, for the timer and the actions.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct BackupConfig {
    pub unit: String,
    pub application: String,
    /// `local` or `s3`: where scheduled and on-demand backups go.
    pub store: String,
    /// The local store's directory (a unit path).
    pub backup_dir: String,
    /// The S3 settings, when related (credentials included: the file is
    /// 0600 and root's).
    #[serde(default)]
    pub s3: Option<S3Settings>,
    pub schedule: String,
    pub retention: String,
    pub verify: bool,
    /// A configuration problem that stops backups; the status shows it.
    #[serde(default)]
    pub problem: Option<String>,
    /// When these settings were written (Unix seconds).
    pub written: i64,
}

/// What the ticks did. Never holds credentials.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case", default)]
pub struct BackupState {
    pub last_success: Option<i64>,
    pub last_store: Option<String>,
    pub last_location: Option<String>,
    pub last_error: Option<String>,
    pub last_error_at: Option<i64>,
    /// The first failure of the current run of failures.
    pub failing_since: Option<i64>,
    /// The last tick this unit looked at, and what it did.
    pub last_tick: Option<i64>,
    pub last_tick_outcome: Option<String>,
    /// The last scheduled verification (`backup-verify`): what was
    /// verified, skipped or failed, and when.
    pub last_verify: Option<String>,
    pub last_verify_at: Option<i64>,
}

impl BackupState {
    pub fn load(root: &Root) -> BackupState {
        fs::read(root.at(BACKUP_STATE))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    pub fn save(&self, root: &Root) -> io::Result<()> {
        let body = serde_json::to_vec_pretty(self).map_err(io::Error::other)?;
        fsutil::write_atomic(&root.at(BACKUP_STATE), &body, 0o600).map(drop)
    }
}

impl BackupConfig {
    pub fn load(root: &Root) -> Result<Option<BackupConfig>> {
        match fs::read(root.at(BACKUP_CONFIG)) {
            Ok(b) => Ok(Some(
                serde_json::from_slice(&b).context("the backup settings file is unreadable")?,
            )),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(anyhow!("cannot read the backup settings: {e}")),
        }
    }
}

/// A backup taken into a store.
#[derive(Debug, Clone)]
pub struct BackupTaken {
    pub name: String,
    pub location: String,
    pub store: &'static str,
    pub sidecar: Sidecar,
}

fn cfg_str(config: &serde_json::Map<String, Value>, key: &str, default: &str) -> String {
    match config.get(key) {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
        _ => default.to_string(),
    }
}

fn cfg_bool(config: &serde_json::Map<String, Value>, key: &str, default: bool) -> bool {
    match config.get(key) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true",
        _ => default,
    }
}

/// The provider's data, or why it cannot be used yet.
enum S3Relation {
    Absent,
    Incomplete(String),
    Ready(S3Settings),
}

/// The order backups are listed and `latest` picked in: newest first by
/// the manifest's time, then by name.
fn newest_first(a: &Listed, b: &Listed) -> std::cmp::Ordering {
    let t = |l: &Listed| l.sidecar.manifest.created_unix().unwrap_or(0);
    t(b).cmp(&t(a))
        .then_with(|| b.sidecar.name.cmp(&a.sidecar.name))
}

/// This application's backups in `store`, newest first (by the
/// manifest's time, then by name), and the one `id` names (`latest`: the
/// newest), if it is there. Callers word a missing one themselves.
pub(crate) fn lookup_backup(
    store: &BackupStore,
    application: &str,
    id: &str,
) -> Result<(Option<Listed>, Vec<Listed>)> {
    let (mut listed, warnings) = store
        .list(application)
        .with_context(|| format!("cannot list the {} backup store", store.kind()))?;
    for w in warnings {
        tracing::warn!("{w}");
    }
    listed.sort_by(newest_first);
    let found = if id == "latest" {
        listed.first().cloned()
    } else {
        listed.iter().find(|l| l.sidecar.name == id).cloned()
    };
    Ok((found, listed))
}

impl Charm<'_> {
    /// Reads the `s3-credentials` relation (v0 fields or a v1 secret). On
    /// the leader, asks for the secret fields (v1).
    fn read_s3_relation(&self) -> Result<S3Relation> {
        let ids = self
            .tools
            .relation_ids(S3_ENDPOINT)
            .context("cannot list the s3-credentials relation")?;
        // In its -broken hook the relation is going away: treat it as gone.
        let broken = self
            .ctx
            .hook_name()
            .is_some_and(|h| h == format!("{S3_ENDPOINT}-relation-broken"));
        let gone = self.ctx.relation.as_ref().map(|r| r.id.clone());
        let Some(id) = ids
            .into_iter()
            .find(|id| !(broken && Some(id) == gone.as_ref()))
        else {
            return Ok(S3Relation::Absent);
        };
        if self.tools.is_leader().context("cannot ask is-leader")? {
            let mut ours = std::collections::BTreeMap::new();
            ours.insert(
                "requested-secrets".to_string(),
                r#"["access-key", "secret-key"]"#.to_string(),
            );
            ours.insert("lib-version".to_string(), S3_LIB_VERSION.to_string());
            let current = self
                .tools
                .relation_get(&id, &self.ctx.app_name, true)
                .unwrap_or_default();
            if ours.iter().any(|(k, v)| current.get(k) != Some(v)) {
                self.tools
                    .relation_set(&id, true, &ours)
                    .context("cannot set our s3-credentials application data")?;
            }
        }
        let units = self
            .tools
            .relation_list(&id)
            .context("cannot list the s3 provider's units")?;
        let remote_app = match self
            .ctx
            .relation
            .as_ref()
            .filter(|r| r.id == id)
            .and_then(|r| r.remote_app.clone())
        {
            Some(a) => a,
            None => match units.first().and_then(|u| u.split('/').next()) {
                Some(a) => a.to_string(),
                None => {
                    return Ok(S3Relation::Incomplete(
                        "the s3 provider has no units yet".into(),
                    ))
                }
            },
        };
        let data = self
            .tools
            .relation_get(&id, &remote_app, true)
            .context("cannot read the s3 provider's application data")?;
        let get = |k: &str| {
            data.get(k)
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        let (mut access, mut secret) = (get("access-key"), get("secret-key"));
        let extra = get("secret-extra");
        if !extra.is_empty() {
            match self.tools.secret_get(&extra) {
                Ok(content) => {
                    access = content.get("access-key").cloned().unwrap_or_default();
                    secret = content.get("secret-key").cloned().unwrap_or_default();
                }
                // Not granted yet, or revoked: wait for the provider.
                Err(e) => {
                    return Ok(S3Relation::Incomplete(format!(
                        "cannot read the s3 credentials secret of {remote_app} ({e}); it must grant it to {}",
                        self.ctx.app_name
                    )))
                }
            }
        }
        let bucket = get("bucket");
        if bucket.is_empty() || access.is_empty() || secret.is_empty() {
            return Ok(S3Relation::Incomplete(format!(
                "{remote_app} has not given a bucket and credentials yet (set them there, e.g. run its sync-s3-credentials action)"
            )));
        }
        let tls_ca_chain = match get("tls-ca-chain") {
            s if s.is_empty() => Vec::new(),
            s => serde_json::from_str::<Vec<String>>(&s).unwrap_or_else(|_| vec![s]),
        };
        Ok(S3Relation::Ready(S3Settings {
            bucket,
            path: get("path").trim_matches('/').to_string(),
            endpoint: get("endpoint"),
            region: get("region"),
            uri_style: get("s3-uri-style"),
            tls_ca_chain,
            storage_class: get("storage-class"),
            access_key: SecretString(access),
            secret_key: SecretString(secret),
        }))
    }

    /// The backup settings from the config and the relation, with any
    /// problem that stops backups in `problem`.
    pub(crate) fn backup_config(&self) -> Result<BackupConfig> {
        let config = self.tools.config_get().context("cannot read the config")?;
        let store_choice = cfg_str(&config, "backup-store", "auto");
        let backup_dir = cfg_str(&config, "backup-dir", DEFAULT_BACKUP_DIR);
        let schedule = cfg_str(&config, "backup-schedule", DEFAULT_SCHEDULE);
        let retention_s = cfg_str(&config, "backup-retention", retention::DEFAULT_POLICY);
        let verify = cfg_bool(&config, "backup-verify", true);
        let relation = self.read_s3_relation()?;
        let mut problem = None;
        let (store, s3) = match (store_choice.as_str(), relation) {
            ("local", S3Relation::Ready(s)) => ("local", Some(s)),
            ("local", _) => ("local", None),
            ("auto", S3Relation::Ready(s)) | ("s3", S3Relation::Ready(s)) => ("s3", Some(s)),
            ("auto", S3Relation::Absent) => ("local", None),
            ("auto", S3Relation::Incomplete(why)) | ("s3", S3Relation::Incomplete(why)) => {
                problem = Some(format!("backups wait for s3: {why}"));
                ("s3", None)
            }
            ("s3", S3Relation::Absent) => {
                problem = Some(format!(
                    "backup-store=s3 but no s3 provider is related: juju integrate {} s3-integrator (or set backup-store=local)",
                    self.ctx.app_name
                ));
                ("s3", None)
            }
            (other, _) => {
                problem = Some(format!(
                    "backup-store={other:?} is not auto, local or s3; set one of them"
                ));
                ("local", None)
            }
        };
        if !backup_dir.starts_with('/') {
            problem.get_or_insert(format!(
                "backup-dir {backup_dir:?} must be an absolute directory, such as {DEFAULT_BACKUP_DIR}"
            ));
        }
        if let Err(e) = Schedule::parse(&schedule) {
            problem.get_or_insert(e.to_string());
        }
        if let Err(e) = Policy::parse(&retention_s) {
            problem.get_or_insert(e.to_string());
        }
        Ok(BackupConfig {
            unit: self.ctx.unit_name.clone(),
            application: self.ctx.app_name.clone(),
            store: store.to_string(),
            backup_dir,
            s3,
            schedule,
            retention: retention_s,
            verify,
            problem,
            written: now_unix(),
        })
    }

    /// From hooks: writes the settings for the timer and installs, updates
    /// or removes the timer. Problems end up in the status, not in a
    /// failed hook.
    pub(crate) fn configure_backups(&self) -> Result<()> {
        // A relation or config we cannot read stops backups, not etcd's
        // hooks: it becomes the problem the status shows.
        let cfg = match self.backup_config() {
            Ok(c) => c,
            Err(e) => BackupConfig {
                unit: self.ctx.unit_name.clone(),
                application: self.ctx.app_name.clone(),
                store: "local".into(),
                backup_dir: DEFAULT_BACKUP_DIR.into(),
                s3: None,
                schedule: "off".into(),
                retention: retention::DEFAULT_POLICY.into(),
                verify: true,
                problem: Some(format!("cannot read the backup settings: {e:#}")),
                written: now_unix(),
            },
        };
        let body = serde_json::to_vec_pretty(&cfg).context("cannot encode the backup settings")?;
        let path = self.root.at(BACKUP_CONFIG);
        // The file is 0600; its directory is the charm's state directory,
        // whose mode is not ours to change here (`juju scp` of the client
        // credentials walks through it).
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        // `written` changes each time; compare the rest to avoid churn.
        let old = BackupConfig::load(&self.root).ok().flatten();
        let same = old.as_ref().is_some_and(|o| {
            let mut o = o.clone();
            o.written = cfg.written;
            o == cfg
        });
        if !same {
            fsutil::write_atomic(&path, &body, 0o600)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        let schedule = match (&cfg.problem, Schedule::parse(&cfg.schedule)) {
            (None, Ok(Some(s))) => Some(s),
            _ => None,
        };
        let timer_path = self.root.at(timer::TIMER_FILE);
        match schedule {
            Some(s) => {
                let dispatch = self.dispatch_path();
                let svc = timer::render_service(&dispatch, self.root.base());
                let tmr = timer::render_timer(&s.on_calendar());
                let svc_path = self.root.at(timer::SERVICE_FILE);
                let a = fsutil::write_atomic(&svc_path, svc.as_bytes(), 0o644)
                    .with_context(|| format!("cannot write {}", svc_path.display()))?;
                let b = fsutil::write_atomic(&timer_path, tmr.as_bytes(), 0o644)
                    .with_context(|| format!("cannot write {}", timer_path.display()))?;
                let enabled = self.root.at(BACKUP_STATE).with_file_name("backup-timer.on");
                if a || b || !enabled.exists() {
                    timer::enable(&self.service).context("cannot start the backup timer")?;
                    fsutil::write_atomic(&enabled, cfg.schedule.as_bytes(), 0o600)
                        .context("cannot record the backup timer")?;
                }
            }
            None => self.disable_backup_timer()?,
        }
        Ok(())
    }

    /// Stops and disables the backup timer, if it was installed.
    pub(crate) fn disable_backup_timer(&self) -> Result<()> {
        let enabled = self.root.at(BACKUP_STATE).with_file_name("backup-timer.on");
        if self.root.at(timer::TIMER_FILE).exists() && enabled.exists() {
            timer::disable(&self.service).context("cannot stop the backup timer")?;
        }
        match fs::remove_file(&enabled) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                tracing::warn!("cannot remove {}: {e}", enabled.display())
            }
            _ => {}
        }
        Ok(())
    }

    /// The `dispatch` binary the timer runs: the charm's own.
    fn dispatch_path(&self) -> PathBuf {
        let p = self.ctx.charm_dir.join("dispatch");
        let p = if p.is_absolute() {
            p
        } else {
            std::env::current_dir().map(|d| d.join(&p)).unwrap_or(p)
        };
        if p.exists() {
            p
        } else {
            std::env::current_exe().unwrap_or(p)
        }
    }

    /// The store `cfg` names.
    pub(crate) fn open_store(&self, cfg: &BackupConfig) -> Result<BackupStore> {
        match (cfg.store.as_str(), &cfg.s3) {
            ("s3", Some(s)) => Ok(BackupStore::S3(Box::new(S3Store::new(s.clone())?))),
            ("s3", None) => bail!(
                "{}",
                cfg.problem
                    .clone()
                    .unwrap_or_else(|| "no s3 provider is related".into())
            ),
            _ => Ok(BackupStore::Local(self.local_store(cfg)?)),
        }
    }

    fn local_store(&self, cfg: &BackupConfig) -> Result<LocalStore> {
        let host = self
            .root
            .resolve(&cfg.backup_dir)
            .map_err(|e| anyhow!("backup-dir: {e}"))?;
        Ok(LocalStore::new(host, &cfg.backup_dir))
    }

    /// Takes a backup named after `tick` into `store`; `Ok(None)` when a
    /// backup of that name is already there (another unit took it).
    pub(crate) fn take_backup(
        &self,
        cfg: &BackupConfig,
        store: &BackupStore,
        tick: i64,
    ) -> Result<Option<BackupTaken>> {
        let name = snapshot::archive_name(tick)
            .ok_or_else(|| anyhow!("the clock is outside years 0-9999"))?;
        if store.exists(&name)? {
            return Ok(None);
        }
        let mut client = self.connect()?;
        let status = client.status().context("cannot read etcd's status")?;
        let key_count = client
            .key_count(status.revision)
            .context("cannot count etcd's keys")?;
        let fields = self.manifest_fields(&status, key_count, now_unix())?;
        let location = store.location(&name);
        let packed = store.put_archive(&name, |out| {
            self.stream_packed(&mut client, fields, None, None, &location, out)
                .map_err(|e| match e {
                    snapshot::PackError::Write(io) => anyhow!("cannot write {location}: {io}"),
                    other => anyhow!(other),
                })
        })?;
        let mut sidecar = Sidecar {
            name: name.clone(),
            sha256: packed.archive_sha256.clone(),
            size: packed.archive_size,
            application: cfg.application.clone(),
            store: store.kind().to_string(),
            manifest: packed.manifest,
            verified: None,
        };
        store.put_sidecar(&sidecar)?;
        // Two units racing on one tick's name (a leadership change) upload
        // the same name; the sidecar must describe the archive that won.
        if let Some(fresh) = store.confirm_sidecar(&sidecar)? {
            sidecar = fresh;
        }
        self.log_progress(&format!(
            "Backed up to {location} ({}, sha256 {})",
            human_size(sidecar.size),
            sidecar.sha256
        ));
        Ok(Some(BackupTaken {
            name,
            location,
            store: store.kind(),
            sidecar,
        }))
    }

    /// The backup `id` in `store` (`latest`: the newest of this
    /// application's), or an error that names the IDs that are there.
    pub(crate) fn find_backup(
        &self,
        cfg: &BackupConfig,
        store: &BackupStore,
        id: &str,
    ) -> Result<Listed> {
        let (found, listed) = lookup_backup(store, &cfg.application, id)?;
        if let Some(l) = found {
            return Ok(l);
        }
        let ids: Vec<&str> = listed.iter().map(|l| l.sidecar.name.as_str()).collect();
        let there = if ids.is_empty() {
            format!(
                "the {} store holds no backups of {}",
                store.kind(),
                cfg.application
            )
        } else {
            let shown = ids.iter().take(10).copied().collect::<Vec<_>>().join(", ");
            let more = if ids.len() > 10 {
                format!(" and {} more", ids.len() - 10)
            } else {
                String::new()
            };
            format!("the {} store holds {shown}{more}", store.kind())
        };
        bail!(
            "no backup {id:?} in the {} store ({}): {there}. See them all with: juju run {} list-backups. Nothing was changed.",
            store.kind(),
            store.location(""),
            self.ctx.unit_name
        )
    }

    /// Applies the retention policy to `store`: deletes what it does not
    /// keep (ours only) and returns how many were deleted.
    pub(crate) fn apply_retention(&self, cfg: &BackupConfig, store: &BackupStore) -> Result<usize> {
        let policy = Policy::parse(&cfg.retention)?;
        let (listed, warnings) = store.list(&cfg.application)?;
        for w in warnings {
            tracing::warn!("{w}");
        }
        let decision = retention::apply_policy(&candidates(&listed), &policy);
        let mut n = 0;
        for c in &decision.remove {
            store.delete(&c.id)?;
            tracing::info!("retention ({policy}) removed {}", store.location(&c.id));
            n += 1;
        }
        Ok(n)
    }

    /// The `create-backup` action.
    pub(crate) fn create_backup_action(&self) -> Result<()> {
        let _lock = OpLock::try_acquire(&self.root, "the create-backup action")?;
        self.recover_interrupted()?;
        let cfg = self.backup_config()?;
        if let Some(p) = &cfg.problem {
            bail!("{p}");
        }
        let store = self.open_store(&cfg)?;
        // A name that is not taken yet (two backups in one second wait).
        let mut taken = None;
        for _ in 0..3 {
            if let Some(t) = self.take_backup(&cfg, &store, now_unix())? {
                taken = Some(t);
                break;
            }
            std::thread::sleep(Duration::from_millis(1000));
        }
        let t = taken.ok_or_else(|| {
            anyhow!("a backup of this second already exists; run the action again")
        })?;
        let removed = self.apply_retention(&cfg, &store)?;
        let m = &t.sidecar.manifest;
        let mut results = vec![
            ("backup.id", t.name.clone()),
            ("backup.location", t.location.clone()),
            ("backup.store", t.store.to_string()),
            ("backup.retention-removed", removed.to_string()),
        ];
        results.extend(archive_results(&t.sidecar.sha256, t.sidecar.size, m));
        if t.store == "local" {
            results.push(("snapshot.path", t.location.clone()));
        }
        self.set_results(results)
    }

    /// The `list-backups` action: both stores, newest first.
    pub(crate) fn list_backups_action(&self) -> Result<()> {
        let cfg = self.backup_config()?;
        let policy = Policy::parse(&cfg.retention).unwrap_or_default();
        let mut stores = vec![BackupStore::Local(self.local_store(&cfg)?)];
        let mut warnings = Vec::new();
        if let Some(s) = &cfg.s3 {
            match S3Store::new(s.clone()) {
                Ok(st) => stores.push(BackupStore::S3(Box::new(st))),
                Err(e) => warnings.push(format!("the s3 store is not usable: {e}")),
            }
        }
        let mut rows: Vec<(Listed, String)> = Vec::new();
        for store in &stores {
            // One store being down does not hide the other's backups.
            let (listed, w) = match store.list(&cfg.application) {
                Ok(x) => x,
                Err(e) => {
                    warnings.push(format!("cannot list the {} store: {e}", store.kind()));
                    continue;
                }
            };
            warnings.extend(w);
            let decision = retention::apply_policy(&candidates(&listed), &policy);
            for l in listed {
                let reason = decision
                    .reason(&l.sidecar.name)
                    .unwrap_or_else(|| "to remove".to_string());
                rows.push((l, reason));
            }
        }
        rows.sort_by(|a, b| newest_first(&a.0, &b.0));
        let json: Vec<Value> = rows
            .iter()
            .map(|(l, reason)| {
                let s = &l.sidecar;
                serde_json::json!({
                    "id": s.name,
                    "time": s.manifest.created,
                    "revision": s.manifest.revision,
                    "key-count": s.manifest.key_count,
                    "size": s.size,
                    "sha256": s.sha256,
                    "etcd-version": s.manifest.etcd_version,
                    "cluster-id": s.manifest.cluster_id,
                    "store": s.store,
                    "location": l.location,
                    "retention": reason,
                    "verified": s.verified,
                })
            })
            .collect();
        let mut results = vec![
            ("backups", backups_table(&rows)),
            (
                "backups-json",
                serde_json::to_string(&json).context("cannot encode the list")?,
            ),
            ("count", rows.len().to_string()),
        ];
        if !warnings.is_empty() {
            results.push(("warnings", warnings.join("; ")));
        }
        self.set_results(results)
    }

    /// The backup part of the status: `Ok(Some(text))` to add to an active
    /// status, `Err(status)` for a blocked or waiting one instead.
    pub(crate) fn backup_status(&self) -> std::result::Result<Option<String>, Status> {
        let Ok(Some(cfg)) = BackupConfig::load(&self.root) else {
            return Ok(None);
        };
        if let Some(p) = cfg.problem {
            // A provider still setting up is waited for; the rest is ours
            // to fix.
            return Err(if p.starts_with("backups wait for") {
                Status::waiting(p)
            } else {
                Status::blocked(p)
            });
        }
        let update_status = self.ctx.hook_name() == Some("update-status");
        let Ok(Some(schedule)) = Schedule::parse(&cfg.schedule) else {
            return Ok(update_status.then(|| "scheduled backups off".into()));
        };
        let now = now_unix();
        let st = BackupState::load(&self.root);
        let period = schedule.period_at(now);
        if let (Some(err), Some(since)) = (&st.last_error, st.failing_since) {
            let from = st.last_success.unwrap_or(since).min(since);
            let without = now - st.last_success.unwrap_or(from);
            // Wrong credentials or a missing bucket do not heal by waiting.
            let permanent =
                err.contains("refused the credentials") || err.contains("does not exist");
            if permanent || now - since >= 2 * period {
                return Err(Status::blocked(format!(
                    "no backup for {} (schedule {}): {err}",
                    human_duration(without),
                    cfg.schedule
                )));
            }
            if !update_status {
                return Ok(None);
            }
            return Ok(Some(format!(
                "last backup failed {} ago: {err}",
                human_duration(now - st.last_error_at.unwrap_or(now))
            )));
        }
        // Only the unit that took a backup says so (the others' ticks defer
        // to etcd's leader), and only in update-status, so the other hooks'
        // messages stay as they were.
        if !update_status {
            return Ok(None);
        }
        Ok(match (st.last_success, &st.last_store) {
            (Some(t), Some(s)) => Some(format!("last backup {} ago, {s}", human_duration(now - t))),
            _ => None,
        })
    }
}

fn candidates(listed: &[Listed]) -> Vec<Candidate> {
    listed
        .iter()
        .map(|l| Candidate {
            id: l.sidecar.name.clone(),
            time: l.sidecar.manifest.created_unix().unwrap_or(0),
        })
        .collect()
}

/// A table like the PostgreSQL and MySQL charms print.
fn backups_table(rows: &[(Listed, String)]) -> String {
    let header = [
        "backup-id",
        "time",
        "store",
        "revision",
        "keys",
        "size",
        "etcd",
        "cluster-id",
        "retention",
        "verified",
        "sha256",
    ];
    let mut lines: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for (l, reason) in rows {
        let s = &l.sidecar;
        lines.push(vec![
            s.name.clone(),
            s.manifest.created.clone(),
            s.store.clone(),
            s.manifest.revision.to_string(),
            s.manifest.key_count.to_string(),
            human_size(s.size),
            s.manifest.etcd_version.clone(),
            s.manifest.cluster_id.clone(),
            reason.clone(),
            s.verified
                .as_ref()
                .map_or_else(|| "-".into(), |m| m.summary()),
            s.sha256.clone(),
        ]);
    }
    if rows.is_empty() {
        return "no backups (local store and s3)\n".to_string();
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|i| lines.iter().map(|l| l[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for (n, l) in lines.iter().enumerate() {
        let cells: Vec<String> = l
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(cells.join(" | ").trim_end());
        out.push('\n');
        if n == 0 {
            let dashes: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            out.push_str(&dashes.join("-|-"));
            out.push('\n');
        }
    }
    out
}

/// One tick of the timer, outside hook context: `dispatch backup-tick`.
pub fn tick_main(root: Root) -> ExitCode {
    let cfg = match BackupConfig::load(&root) {
        Ok(Some(c)) => c,
        Ok(None) => {
            eprintln!("backup tick: no backup settings yet; nothing to do");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("backup tick: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let env: std::collections::HashMap<String, String> = [
        ("JUJU_UNIT_NAME".to_string(), cfg.unit.clone()),
        (
            "JUJU_DISPATCH_PATH".to_string(),
            "hooks/backup-tick".to_string(),
        ),
    ]
    .into_iter()
    .collect();
    let ctx = match crate::juju::Context::from_map(&env, "dispatch") {
        Ok(c) => c,
        Err(e) => {
            eprintln!("backup tick: {e}");
            return ExitCode::FAILURE;
        }
    };
    // No hook tool is ever called from here; these would fail cleanly.
    let tools = crate::juju::CliHookTools::default();
    let charm = Charm::new(&ctx, &tools, root);
    match charm.tick(&cfg) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("backup tick: {e:#}");
            ExitCode::FAILURE
        }
    }
}

impl Charm<'_> {
    /// One tick: only etcd's leader takes the backup named after the tick;
    /// every outcome goes to the state file.
    fn tick(&self, cfg: &BackupConfig) -> Result<()> {
        if cfg.problem.is_some() {
            return Ok(());
        }
        let Some(schedule) = Schedule::parse(&cfg.schedule)? else {
            return Ok(());
        };
        let now = now_unix();
        let tick = schedule
            .tick_at_or_before(now)
            .ok_or_else(|| anyhow!("no tick of {} in the last year", cfg.schedule))?;
        let mut state = BackupState::load(&self.root);
        state.last_tick = Some(tick);
        let result = self.tick_inner(cfg, tick);
        let now = now_unix();
        match &result {
            Ok(TickOutcome::Took(t)) => {
                state.last_success = Some(now);
                state.last_store = Some(t.store.to_string());
                state.last_location = Some(t.location.clone());
                state.last_error = None;
                state.last_error_at = None;
                state.failing_since = None;
                state.last_tick_outcome = Some(format!("took {}", t.name));
            }
            Ok(TickOutcome::NotLeader) => {
                // A unit that is not the leader says nothing about failures.
                state.last_error = None;
                state.failing_since = None;
                state.last_tick_outcome =
                    Some("backups are taken by the etcd leader's unit".to_string());
            }
            Ok(TickOutcome::AlreadyThere(name)) => {
                state.last_tick_outcome = Some(format!("{name} was already taken"));
            }
            Ok(TickOutcome::NotRunning) => {}
            Err(e) => {
                state.last_error = Some(format!("{e:#}"));
                state.last_error_at = Some(now);
                state.failing_since.get_or_insert(now);
            }
        }
        state
            .save(&self.root)
            .context("cannot write the backup state")?;
        let taken = result?;
        if let TickOutcome::Took(t) = taken {
            if cfg.verify {
                // The backup is recorded; its verification is a second
                // step whose failure does not fail the tick.
                let (note, level_warn) = self.verify_after_tick(cfg, &t, &schedule, tick);
                if level_warn {
                    tracing::warn!("backup-verify: {note}");
                } else {
                    tracing::info!("backup-verify: {note}");
                }
                let mut state = BackupState::load(&self.root);
                state.last_verify = Some(note);
                state.last_verify_at = Some(now_unix());
                state
                    .save(&self.root)
                    .context("cannot write the backup state")?;
            }
        }
        Ok(())
    }

    /// `backup-verify`: verifies the backup this tick took, on this unit,
    /// under the unit's lock (so one at a time), unless the disk lacks the
    /// room for a scratch restore or the next tick is too close. Returns
    /// what happened, and whether it is worth a warning.
    fn verify_after_tick(
        &self,
        cfg: &BackupConfig,
        taken: &BackupTaken,
        schedule: &Schedule,
        tick: i64,
    ) -> (String, bool) {
        let sc = &taken.sidecar;
        if let Some(why) = self.scratch_space_problem(sc.manifest.db_size) {
            return (format!("skipped verifying {}: {why}", taken.location), true);
        }
        // A verification restores the db and starts a member: seconds,
        // plus about a second per 16 MiB. It must be done before the next
        // tick, so that the next backup is not delayed (systemd does not
        // start a tick while the last one still runs).
        let estimate = 15 + i64::try_from(sc.manifest.db_size >> 24).unwrap_or(i64::MAX / 2);
        let next = tick + schedule.period_at(tick);
        let left = next - now_unix();
        if left < 2 * estimate {
            return (
                format!(
                    "skipped verifying {}: the next backup is due in {} s, too soon for a scratch restore (about {} s); verify it with: juju run {} verify-backup backup-id={}",
                    taken.location, left, estimate, cfg.unit, taken.name
                ),
                true,
            );
        }
        let _lock = match OpLock::acquire(&self.root, "the backup timer", TICK_LOCK_WAIT) {
            Ok(l) => l,
            Err(e) => return (format!("skipped verifying {}: {e:#}", taken.location), true),
        };
        let store = match self.open_store(cfg) {
            Ok(s) => s,
            Err(e) => return (format!("skipped verifying {}: {e:#}", taken.location), true),
        };
        match self.verify_stored(&store, sc) {
            (Ok(_), Ok(())) => (format!("verified {}", taken.location), false),
            (Ok(_), Err(e)) => (
                format!("verified {} but could not mark it: {e:#}", taken.location),
                true,
            ),
            (Err(e), _) => (format!("{e:#}"), true),
        }
    }

    fn tick_inner(&self, cfg: &BackupConfig, tick: i64) -> Result<TickOutcome> {
        let state = self.load_state()?;
        if state.applied.is_none() || state.left {
            return Ok(TickOutcome::NotRunning);
        }
        let _lock = OpLock::acquire(&self.root, super::lock::BACKUP_TIMER, TICK_LOCK_WAIT)
            .context("a hook or action held the unit's lock through the whole tick")?;
        self.recover_interrupted_snapshot();
        let mut client = self.connect()?;
        let st = client.status().context("cannot read etcd's status")?;
        drop(client);
        if st.leader == 0 || st.leader != st.member_id {
            return Ok(TickOutcome::NotLeader);
        }
        let store = self.open_store(cfg)?;
        let Some(taken) = self.take_backup(cfg, &store, tick)? else {
            let name = snapshot::archive_name(tick).unwrap_or_default();
            return Ok(TickOutcome::AlreadyThere(name));
        };
        if let Err(e) = self.apply_retention(cfg, &store) {
            // The backup is good; retention tries again next tick.
            tracing::warn!("retention failed: {e:#}");
        }
        Ok(TickOutcome::Took(Box::new(taken)))
    }
}

enum TickOutcome {
    Took(Box<BackupTaken>),
    NotLeader,
    AlreadyThere(String),
    NotRunning,
}
