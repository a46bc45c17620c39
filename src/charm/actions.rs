//! Action handlers. Each returns an error worded for the operator; the
//! caller turns it into `action-fail` (see [`super::outcome`]).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _, Result};
use serde_json::Value;

use super::hooks::healthy_message;
use super::Charm;
use crate::etcd::EtcdClient;

/// Routes an action.
pub fn run(charm: &Charm<'_>, action: &str) -> Result<()> {
    match action {
        "health" => charm.health_action(),
        "compact" => charm.compact_action(),
        "defrag" => charm.defrag_action(),
        "snapshot" => charm.snapshot_action(),
        "restore" => charm.restore_action(),
        other => bail!(
            "this charm has no action {other:?}; see the actions it offers with: juju actions {}",
            charm.ctx.app_name
        ),
    }
}

impl Charm<'_> {
    /// Sets the action's results from `(key, value)` pairs.
    pub(crate) fn set_results(&self, pairs: Vec<(&str, String)>) -> Result<()> {
        let r: BTreeMap<String, String> =
            pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        self.tools
            .action_set(&r)
            .context("cannot set the action's results")
    }

    /// Connects to this unit's etcd, or says why it cannot.
    pub(crate) fn connect(&self) -> Result<EtcdClient> {
        let state = self.load_state()?;
        let applied = state.applied.ok_or_else(|| {
            anyhow!(
                "etcd is not running on {} yet; check `juju status` and wait for the unit to be active",
                self.ctx.unit_name
            )
        })?;
        EtcdClient::connect(&applied.client_url, Duration::from_secs(5))
            .with_context(|| format!("cannot reach this unit's etcd at {}", applied.client_url))
    }

    fn health_action(&self) -> Result<()> {
        let mut client = self.connect()?;
        let h = client
            .health()
            .context("etcd did not answer the health check")?;
        let mut r = BTreeMap::new();
        r.insert("health.healthy".to_string(), h.is_healthy().to_string());
        r.insert(
            "health.message".to_string(),
            healthy_message(h.members.len()),
        );
        r.insert("health.members".to_string(), h.members.len().to_string());
        r.insert("health.version".to_string(), h.status.version.clone());
        r.insert(
            "health.cluster-id".to_string(),
            format!("{:x}", h.status.cluster_id),
        );
        r.insert(
            "health.member-id".to_string(),
            format!("{:x}", h.status.member_id),
        );
        r.insert(
            "health.leader".to_string(),
            format!("{:x}", h.status.leader),
        );
        r.insert("health.revision".to_string(), h.status.revision.to_string());
        r.insert("health.db-size".to_string(), h.status.db_size.to_string());
        if !h.alarms.is_empty() {
            r.insert("health.alarms".to_string(), h.alarms.join(","));
        }
        self.tools
            .action_set(&r)
            .context("cannot set the action's results")?;
        if !h.is_healthy() {
            bail!(
                "etcd is unhealthy (alarms: {:?}, leader: {:x}); see the results and the etcd log",
                h.alarms,
                h.status.leader
            );
        }
        Ok(())
    }

    fn compact_action(&self) -> Result<()> {
        let params = self
            .tools
            .action_get()
            .context("cannot read the action's parameters")?;
        let physical = matches!(params.get("physical"), Some(Value::Bool(true)));
        let mut client = self.connect()?;
        let current = client
            .status()
            .context("cannot read etcd's revision")?
            .revision;
        let revision = match params.get("revision") {
            None | Some(Value::Null) => current,
            Some(v) => v.as_i64().filter(|r| *r > 0).ok_or_else(|| {
                anyhow!("revision {v} is not a positive whole number; give one like revision=1234, or leave it out")
            })?,
        };
        if revision > current {
            bail!("revision {revision} is in the future (the current revision is {current}); give a revision up to {current}");
        }
        self.tools
            .action_log(&format!("Compacting history up to revision {revision}"))
            .context("cannot log progress")?;
        client
            .compact(revision, physical)
            .with_context(|| format!("etcd refused to compact to revision {revision}"))?;
        let mut r = BTreeMap::new();
        r.insert("compact.revision".to_string(), revision.to_string());
        self.tools
            .action_set(&r)
            .context("cannot set the action's results")
    }

    fn defrag_action(&self) -> Result<()> {
        let mut client = self.connect()?;
        let before = client
            .status()
            .context("cannot read etcd's db size")?
            .db_size;
        self.tools
            .action_log("Defragmenting this member's backend database")
            .context("cannot log progress")?;
        client.defragment().context("etcd refused to defragment")?;
        let after = client
            .status()
            .context("cannot read etcd's db size")?
            .db_size;
        let mut r = BTreeMap::new();
        r.insert("defrag.db-size-before".to_string(), before.to_string());
        r.insert("defrag.db-size-after".to_string(), after.to_string());
        self.tools
            .action_set(&r)
            .context("cannot set the action's results")
    }
}
