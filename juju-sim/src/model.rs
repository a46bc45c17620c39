//! The model's state and its on-disk store. Everything Juju's controller
//! would remember (applications, units, leadership, config, resources,
//! relations and their data bags, leader settings, secrets, action records,
//! statuses, ports, the pending hook queue) lives in one
//! `$JUJU_SIM_HOME/model.json`, changed only under an exclusive flock on
//! `model.lock` and written atomically (temp file + rename). The lock is held
//! for one read-modify-write, never while a hook runs, because the hook
//! tools the hook calls need it.

use fs2::FileExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Errors from reading or writing the model store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot parse {path}: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io {
        action,
        path,
        source,
    }
}

/// A workload or application status as set by `status-set`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Status {
    pub current: String,
    pub message: String,
    pub since: String,
}

/// One deployed application.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Application {
    /// The charm's `name` from metadata.yaml.
    pub charm: String,
    /// The stored, unpacked charm (`$JUJU_SIM_HOME/charms/<app>`).
    pub charm_dir: PathBuf,
    pub revision: u64,
    pub next_unit: u32,
    pub leader: Option<String>,
    /// Values set by the operator (not defaults).
    pub config: BTreeMap<String, Value>,
    /// Resource name → stored file path.
    pub resources: BTreeMap<String, PathBuf>,
    pub leader_settings: BTreeMap<String, String>,
    /// Set by the leader's `status-set --application`.
    pub status: Option<Status>,
    pub version: String,
    pub dying: bool,
}

/// One unit.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Unit {
    pub app: String,
    pub number: u32,
    pub machine: String,
    pub address: String,
    pub workload: Status,
    /// `idle` or `executing`; `error` is derived from `failed`.
    pub agent: String,
    /// The hook that failed all its retries; the unit waits for `resolved`.
    pub failed: Option<Op>,
    /// Hooks that arrived while the unit was in error.
    pub deferred: Vec<Op>,
    pub ports: BTreeSet<String>,
    pub dying: bool,
    /// The install hook has succeeded (actions wait for it, as Juju's do).
    pub installed: bool,
    /// The start hook has succeeded (update-status fires from then on).
    pub started: bool,
    /// The hook the agent runs now, if any.
    pub running: Option<Op>,
    /// The action the agent runs now, if any.
    pub running_action: Option<u64>,
    /// Failed attempts of `failed` in a row (the retry back-off doubles).
    pub failures: u32,
    /// When (unix ms) the agent retries `failed`.
    pub retry_at: u64,
    /// When (unix seconds) update-status fires next.
    pub next_update_status: u64,
    /// Writes of the running hook or action, committed when it exits 0.
    pub pending: crate::uniter::pending::Pending,
    /// The application's charm revision in the unit's charm directory
    /// (`refresh` moves the application on; the unit follows in its
    /// `upgrade-charm` hook, under its machine lock).
    pub charm_revision: u64,
}

/// A relation: a peer relation of one application, or a relation between
/// two applications (`juju integrate`). It is keyed by `endpoint:N` from
/// `app`'s side; each side sees the same number with its own endpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Relation {
    pub endpoint: String,
    pub app: String,
    /// The other application and its endpoint; `None` for a peer relation.
    pub remote_app: Option<String>,
    pub remote_endpoint: Option<String>,
    /// Per unit, the remote units it has seen join (what relation-list shows).
    pub views: BTreeMap<String, BTreeSet<String>>,
    pub unit_data: BTreeMap<String, BTreeMap<String, String>>,
    pub app_data: BTreeMap<String, BTreeMap<String, String>>,
}

impl Relation {
    /// Whether `app` is on either side.
    pub fn involves(&self, app: &str) -> bool {
        self.app == app || self.remote_app.as_deref() == Some(app)
    }

    /// `app`'s endpoint name in this relation.
    pub fn endpoint_of(&self, app: &str) -> &str {
        match (&self.remote_app, &self.remote_endpoint) {
            (Some(r), Some(ep)) if r == app => ep,
            _ => &self.endpoint,
        }
    }

    /// The application on the other side from `app` (itself for a peer relation).
    pub fn other_app(&self, app: &str) -> &str {
        match &self.remote_app {
            Some(r) if self.app == app => r,
            Some(_) => &self.app,
            None => &self.app,
        }
    }
}

/// The number of a relation key `endpoint:N`.
pub fn relation_number(key: &str) -> Option<&str> {
    key.rsplit_once(':').map(|(_, n)| n)
}

/// An action record (Juju 2.9's "action", Juju 3's "task").
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Action {
    pub id: u64,
    pub unit: String,
    pub name: String,
    pub params: Value,
    /// pending, running, completed or failed.
    pub status: String,
    pub message: Option<String>,
    pub failed_by_charm: bool,
    pub results: serde_json::Map<String, Value>,
    /// (unix seconds, message)
    pub log: Vec<(u64, String)>,
    pub enqueued: u64,
    pub started: Option<u64>,
    pub completed: Option<u64>,
    pub code: Option<i32>,
    /// The action's own stdout and stderr (kept as Juju does).
    pub stdout: String,
    pub stderr: String,
    /// Environment the operator's command carried beyond the model's base.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
}

/// One secret and its revisions.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Secret {
    pub id: String,
    /// `application` or `unit`.
    pub owner_kind: String,
    /// The owning application or unit name.
    pub owner: String,
    pub label: Option<String>,
    pub description: Option<String>,
    pub revisions: Vec<BTreeMap<String, String>>,
    /// Applications or units granted read access (`secret-grant`).
    pub grants: BTreeSet<String>,
}

/// What the agent does next for a unit: a hook, or the final removal step.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Op {
    pub unit: String,
    /// A hook name, or `@finalize-remove` for the last step of remove-unit.
    pub hook: String,
    pub relation: Option<String>,
    pub remote_unit: Option<String>,
    pub remote_app: Option<String>,
    pub departing: Option<String>,
    /// Model-wide sequence number (`run-hook` waits for its own).
    pub seq: u64,
    /// Environment the operator's command carried beyond the model's base.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
}

pub const FINALIZE_REMOVE: &str = "@finalize-remove";

impl Op {
    pub fn hook(unit: &str, hook: &str) -> Op {
        Op {
            unit: unit.to_string(),
            hook: hook.to_string(),
            ..Op::default()
        }
    }

    pub fn relation(unit: &str, hook: &str, rel: &str, app: &str, remote: Option<&str>) -> Op {
        Op {
            unit: unit.to_string(),
            hook: hook.to_string(),
            relation: Some(rel.to_string()),
            remote_unit: remote.map(str::to_string),
            remote_app: Some(app.to_string()),
            ..Op::default()
        }
    }
}

/// The whole model.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Model {
    pub uuid: String,
    pub next_action: u64,
    pub next_machine: u64,
    pub next_relation: u64,
    pub applications: BTreeMap<String, Application>,
    pub units: BTreeMap<String, Unit>,
    pub relations: BTreeMap<String, Relation>,
    pub actions: BTreeMap<u64, Action>,
    pub secrets: BTreeMap<String, Secret>,
    pub queue: VecDeque<Op>,
    /// The Juju agent version (`JUJU_SIM_AGENT_VERSION` at creation).
    pub version: String,
    /// Seeds the simulator's own choices (`JUJU_SIM_SEED`).
    pub seed: u64,
    /// Seconds between update-status hooks.
    pub update_status_secs: u64,
    /// First hook-retry delay in ms (doubles up to 5 minutes).
    pub retry_base_ms: u64,
    /// Most random delay in ms before a hook.
    pub max_delay_ms: u64,
    pub next_op: u64,
    /// The environment of the command that created the model; agents run
    /// with it, and each operator command adds only what differs.
    pub base_env: BTreeMap<String, String>,
    /// Injected faults (`juju-sim inject-fault`).
    pub faults: Vec<Fault>,
    /// destroy-model is under way.
    pub dying: bool,
}

/// A fault injected into a hook tool: the next `count` calls of `tool`
/// for `resource` by units matching `target` (APP or APP/N) fail.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Fault {
    pub tool: String,
    pub target: String,
    pub resource: String,
    pub count: u32,
}

impl Model {
    /// Queues one op, giving it the next sequence number; returns it.
    pub fn push(&mut self, mut op: Op) -> u64 {
        self.next_op += 1;
        op.seq = self.next_op;
        self.queue.push_back(op);
        self.next_op
    }

    /// Queues what Juju fires on `unit` when `remote` enters relation
    /// `rel` (seen on `unit`'s side as `endpoint`): joined, then changed.
    pub fn queue_joined(
        &mut self,
        unit: &str,
        endpoint: &str,
        rel: &str,
        remote_app: &str,
        remote: &str,
    ) {
        for kind in ["joined", "changed"] {
            self.push(Op::relation(
                unit,
                &format!("{endpoint}-relation-{kind}"),
                rel,
                remote_app,
                Some(remote),
            ));
        }
    }

    /// Units of `app`, ordered by number.
    pub fn app_units(&self, app: &str) -> Vec<String> {
        let mut v: Vec<(u32, String)> = self
            .units
            .iter()
            .filter(|(_, u)| u.app == app)
            .map(|(n, u)| (u.number, n.clone()))
            .collect();
        v.sort();
        v.into_iter().map(|(_, n)| n).collect()
    }

    /// Live (not dying) units of `app`, ordered by number.
    pub fn live_units(&self, app: &str) -> Vec<String> {
        self.app_units(app)
            .into_iter()
            .filter(|u| self.units.get(u).is_some_and(|x| !x.dying))
            .collect()
    }

    /// Relation ids of `app`, ordered.
    pub fn app_relations(&self, app: &str) -> Vec<String> {
        let mut v: Vec<(u64, String)> = self
            .relations
            .iter()
            .filter(|(_, r)| r.involves(app))
            .map(|(id, _)| {
                let n = id
                    .rsplit_once(':')
                    .and_then(|(_, n)| n.parse().ok())
                    .unwrap_or(0);
                (n, id.clone())
            })
            .collect();
        v.sort();
        v.into_iter().map(|(_, id)| id).collect()
    }

    /// The id `app`'s units see for the relation keyed `key`: `endpoint:N`
    /// with `app`'s own endpoint.
    pub fn relation_id_for(&self, key: &str, app: &str) -> String {
        match (self.relations.get(key), relation_number(key)) {
            (Some(r), Some(n)) => format!("{}:{n}", r.endpoint_of(app)),
            _ => key.to_string(),
        }
    }

    /// The key of the relation a unit of `app` calls `id` (or `N`).
    pub fn relation_key(&self, id: &str, app: &str) -> Option<String> {
        let n = relation_number(id).unwrap_or(id);
        self.relations
            .iter()
            .find(|(k, r)| relation_number(k) == Some(n) && r.involves(app))
            .filter(|(_, r)| !id.contains(':') || format!("{}:{n}", r.endpoint_of(app)) == id)
            .map(|(k, _)| k.clone())
    }

    pub fn is_leader(&self, unit: &str) -> bool {
        self.units
            .get(unit)
            .and_then(|u| self.applications.get(&u.app))
            .and_then(|a| a.leader.as_deref())
            == Some(unit)
    }
}

/// The on-disk store rooted at `$JUJU_SIM_HOME`.
#[derive(Debug, Clone)]
pub struct Store {
    home: PathBuf,
}

impl Store {
    pub fn new(home: PathBuf) -> Store {
        Store { home }
    }

    pub fn home(&self) -> &Path {
        &self.home
    }

    pub fn unit_dir(&self, unit: &str) -> PathBuf {
        self.home.join("units").join(crate::util::unit_slug(unit))
    }

    pub fn tools_dir(&self) -> PathBuf {
        self.home.join("tools")
    }

    fn model_path(&self) -> PathBuf {
        self.home.join("model.json")
    }

    fn lock(&self, exclusive: bool) -> Result<File, StoreError> {
        // The home is created by deploy (which unpacks the charm into it)
        // and never re-created here: a process still running when
        // destroy-model removed the home must not bring the model back.
        if !self.home.is_dir() {
            return Err(StoreError::Io {
                action: "use model",
                path: self.home.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no model here (destroyed?); deploy a charm first",
                ),
            });
        }
        let path = self.home.join("model.lock");
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err("open", &path))?;
        if exclusive {
            FileExt::lock_exclusive(&f).map_err(io_err("lock", &path))?;
        } else {
            FileExt::lock_shared(&f).map_err(io_err("lock", &path))?;
        }
        Ok(f)
    }

    fn load(&self) -> Result<Model, StoreError> {
        let path = self.model_path();
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| StoreError::Parse {
                path: path.clone(),
                source,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Model::default()),
            Err(e) => Err(io_err("read", &path)(e)),
        }
    }

    fn save(&self, model: &Model) -> Result<(), StoreError> {
        let path = self.model_path();
        let tmp = self
            .home
            .join(format!("model.json.tmp.{}", std::process::id()));
        let bytes = serde_json::to_vec_pretty(model).map_err(|source| StoreError::Parse {
            path: path.clone(),
            source,
        })?;
        // 0600: the model holds secret content and the operator's environment.
        let mut f = {
            use std::os::unix::fs::OpenOptionsExt;
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(io_err("create", &tmp))?
        };
        f.write_all(&bytes).map_err(io_err("write", &tmp))?;
        f.sync_all().map_err(io_err("sync", &tmp))?;
        fs::rename(&tmp, &path).map_err(io_err("rename", &tmp))?;
        Ok(())
    }

    /// Whether a model exists here.
    pub fn exists(&self) -> bool {
        self.model_path().exists()
    }

    /// Reads the model (an empty one when none exists yet).
    pub fn read(&self) -> Result<Model, StoreError> {
        if !self.home.exists() {
            return Ok(Model::default());
        }
        let _lock = self.lock(false)?;
        self.load()
    }

    /// Read-modify-write under the exclusive lock; saved only when `f`
    /// succeeds.
    pub fn update<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&mut Model) -> Result<T, E>,
    ) -> Result<T, E> {
        let _lock = self.lock(true)?;
        let mut model = self.load()?;
        let out = f(&mut model)?;
        self.save(&model)?;
        Ok(out)
    }
}
