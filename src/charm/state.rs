//! The charm's own memory on the unit, kept in `/var/lib/etcd-charm/state.json`.
//!
//! Juju keeps no state for a machine charm between hooks; this file records
//! what the charm installed and what it last applied to etcd, so a hook can
//! tell whether a restart is needed. It is written atomically.

use std::fs;
use std::io;

use serde::{Deserialize, Serialize};

use crate::etcd::paths::{Root, STATE_FILE};
use crate::etcd::{Binaries, ClusterState};
use crate::fsutil;

/// What the charm last applied to the running etcd.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    pub client_url: String,
    pub peer_url: String,
    pub client_port: u16,
    /// sha256 of the rendered config and unit file, to detect changes that
    /// need a restart even when the files were written by an earlier hook.
    pub fingerprint: String,
}

/// The snapshot resource a restore last consumed, so that status stops
/// offering it once it has been restored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoredSnapshot {
    /// Size and the sha256 of the first and last MiB (see the restore
    /// action): cheap to recompute on every update-status.
    pub fingerprint: String,
    /// The whole input's sha256, for the record.
    pub sha256: String,
}

/// How this member first started: kept so that later renders of etcd's
/// config repeat it (etcd ignores `initial-*` once it has data, and a
/// changed config would otherwise look like a reason to restart).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bootstrap {
    pub initial_cluster: String,
    pub cluster_state: ClusterState,
}

/// The unit-local state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalState {
    /// The installed etcd, once installed.
    pub binaries: Option<Binaries>,
    /// Why the last install failed, shown until an install succeeds.
    pub install_error: Option<String>,
    /// Juju could not hand the `etcd` resource over (a controller fault,
    /// not "nothing uploaded"): every hook tries the install again, and
    /// nothing is installed from the archive meanwhile.
    #[serde(default)]
    pub resource_wait: Option<String>,
    /// The start hook has run and stop has not: etcd should be running.
    pub started: bool,
    /// What the running etcd was started with.
    pub applied: Option<Applied>,
    /// The snapshot resource last restored, if any.
    #[serde(default)]
    pub restored: Option<RestoredSnapshot>,
    /// How this member joined the cluster, once it has.
    pub bootstrap: Option<Bootstrap>,
    /// This unit left the cluster (it is being removed): etcd stays stopped.
    #[serde(default)]
    pub left: bool,
    /// The newest `recovered-at` of a peer's `recover-quorum` this unit
    /// has acted on (Unix seconds; see `recover.rs`).
    #[serde(default)]
    pub recovery_seen: i64,
    /// The leader's last `repair-order` for this unit that it carried out
    /// (see `repair.rs`), so that each order runs once.
    #[serde(default)]
    pub repair_taken: String,
}

impl LocalState {
    pub fn load(root: &Root) -> io::Result<Self> {
        match fs::read(root.at(STATE_FILE)) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| {
                io::Error::new(io::ErrorKind::InvalidData, format!("{STATE_FILE}: {e}"))
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(LocalState::default()),
            Err(e) => Err(e),
        }
    }

    pub fn save(&self, root: &Root) -> io::Result<()> {
        let body = serde_json::to_vec_pretty(self)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        fsutil::write_atomic(&root.at(STATE_FILE), &body, 0o600).map(drop)
    }
}
