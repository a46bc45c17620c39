//! Action handlers. Each returns an error worded for the operator; the
//! caller turns it into `action-fail` (see [`super::outcome`]).

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Context as _, Result};
use flate2::write::GzEncoder;
use serde_json::Value;
use std::os::unix::fs::OpenOptionsExt;

use super::download::Owner;
use super::hooks::healthy_message;
use super::tls::now;
use super::Charm;
use crate::etcd::paths::CREDENTIALS_DIR;
use crate::pki;

/// Routes an action.
pub fn run(charm: &Charm<'_>, action: &str) -> Result<()> {
    match action {
        "health" => charm.health_action(),
        "compact" => charm.compact_action(),
        "defrag" => charm.defrag_action(),
        "snapshot" => charm.snapshot_action(),
        "restore" => charm.restore_action(),
        "create-backup" => charm.create_backup_action(),
        "list-backups" => charm.list_backups_action(),
        "verify-backup" => charm.verify_backup_action(),
        "package-client-credentials" => charm.package_client_credentials(),
        // Cluster operations that keep quorum (issue 13).
        "alarm-list" => charm.alarm_list_action(),
        "alarm-disarm" => charm.alarm_disarm_action(),
        "replace-member" => charm.replace_member_action(),
        "recover-quorum" => charm.recover_quorum_action(),
        "resume-upgrade" => charm.resume_upgrade_action(),
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

    fn health_action(&self) -> Result<()> {
        let mut client = self.connect()?;
        let h = client
            .health()
            .context("etcd did not answer the health check")?;
        let mut r = vec![
            ("health.healthy", h.is_healthy().to_string()),
            ("health.message", healthy_message(h.members.len())),
            ("health.members", h.members.len().to_string()),
            ("health.version", h.status.version.clone()),
            ("health.cluster-id", format!("{:x}", h.status.cluster_id)),
            ("health.member-id", format!("{:x}", h.status.member_id)),
            ("health.leader", format!("{:x}", h.status.leader)),
            ("health.revision", h.status.revision.to_string()),
            ("health.db-size", h.status.db_size.to_string()),
        ];
        if !h.alarms.is_empty() {
            r.push(("health.alarms", h.alarms.join(",")));
        }
        self.set_results(r)?;
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
        self.set_results(vec![("compact.revision", revision.to_string())])
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
        self.set_results(vec![
            ("defrag.db-size-before", before.to_string()),
            ("defrag.db-size-after", after.to_string()),
        ])
    }
}

/// Appends one 0600 file to a tar archive.
fn append_private(
    tar: &mut tar::Builder<GzEncoder<std::fs::File>>,
    name: &str,
    data: &[u8],
    mtime: i64,
) -> std::io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o600);
    h.set_size(data.len() as u64);
    h.set_mtime(u64::try_from(mtime).unwrap_or(0));
    h.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut h, name, data)
}

impl Charm<'_> {
    /// Issues a client certificate from the cluster's CA and packs it with
    /// the CA certificate into a 0600 tar.gz for the operator to copy off.
    fn package_client_credentials(&self) -> Result<()> {
        let ca = self.current_ca()?;
        let now = now();
        let issued = pki::issue_client(&ca, "etcd-operator", now, pki::LEAF_VALIDITY_DAYS)
            .context("cannot issue a client certificate")?;
        let dir_unit = CREDENTIALS_DIR;
        let dir = self.root.at(CREDENTIALS_DIR);
        // `juju scp` logs in as the download user: the directory and the
        // archive are that user's, 0700 and 0600.
        let owner = Owner::for_downloads(&self.root);
        owner
            .take_dir(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let file = format!(
            "etcd-client-credentials-{}-{}.tar.gz",
            self.ctx.member_name(),
            crate::timefmt::rfc3339(now)
                .map(|t| t.replace([':', '-'], ""))
                .unwrap_or_else(|| now.to_string())
        );
        let path = dir.join(&file);
        let partial = dir.join(format!("{file}.partial"));
        let write = || -> std::io::Result<()> {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&partial)?;
            owner.take(&f)?;
            let mut tar = tar::Builder::new(GzEncoder::new(f, flate2::Compression::default()));
            append_private(&mut tar, "ca.crt", ca.cert_pem().as_bytes(), now)?;
            append_private(&mut tar, "client.crt", issued.cert_pem.as_bytes(), now)?;
            append_private(
                &mut tar,
                "client.key",
                issued.key_pem.expose().as_bytes(),
                now,
            )?;
            let f = tar.into_inner()?.finish()?;
            f.sync_all()?;
            std::fs::rename(&partial, &path)
        };
        write().with_context(|| format!("cannot write {}", path.display()))?;
        let unit_path = format!("{dir_unit}/{file}");
        let endpoints = self
            .load_state()?
            .applied
            .map(|a| a.client_url)
            .unwrap_or_default();
        self.set_results(vec![
            ("credentials.path", unit_path.clone()),
            (
                "credentials.command",
                format!("juju scp {}:{unit_path} .", self.ctx.unit_name),
            ),
            (
                "credentials.owner",
                owner.note(&self.ctx.unit_name, &unit_path),
            ),
            ("credentials.ca-fingerprint", ca.fingerprint_sha256()),
            ("credentials.endpoints", endpoints),
        ])
    }
}
