//! Named failure points for fault-injection tests.
//!
//! `ETCD_CHARM_FAILPOINTS=restore-after-stop=kill,snapshot-mid-stream=error`
//! makes the named points misbehave; without the variable every point is a
//! no-op that costs one environment lookup. The variable is a test hook:
//! Juju never sets it, and the simulator passes the caller's environment
//! through to the charm so end-to-end tests can set it for one command.
//!
//! Actions:
//! - `error`: the point returns an error, as if the step itself failed;
//! - `kill`: the process kills itself with SIGKILL, as a crash or an OOM
//!   kill would, with no chance to clean up;
//! - `corrupt`: the call site damages what it just produced (each site
//!   documents what that means), so the next step fails for real.
//!
//! The points, in the order a run meets them (`tests/faults.rs` kills the
//! dispatcher at every one of them):
//!
//! | point | where | what a `kill` leaves |
//! |---|---|---|
//! | `snapshot-after-lock` | snapshot action: lock held, nothing written | nothing |
//! | `snapshot-mid-stream` | about half of the db streamed into `NAME.partial` | the partial file and `snapshot-partial.json` naming it |
//! | `snapshot-before-sync` | archive written, not fsynced (`corrupt`: one byte flipped) | the same |
//! | `snapshot-before-rename` | archive fsynced, still `NAME.partial` | the same |
//! | `snapshot-after-rename` | archive renamed and its directory fsynced; no results yet | a whole archive and the journal |
//! | `restore-after-verify` | restore action: archive verified into the staging db, space checked | the staging db |
//! | `restore-mid-backup` | about half of the current data streamed into the backup's partial file | the staging db, the partial backup and its journal |
//! | `restore-after-backup` | backup written; etcd not stopped yet | the staging db and a whole backup |
//! | `restore-mid-tool` | journal `replacing` written, `etcdutl`/`etcdctl snapshot restore` started into `data.restoring`, etcd not yet stopped | etcd on the old data; the tool dies with the charm (`PR_SET_PDEATHSIG`) |
//! | `restore-after-stop` | etcd stopped and the tool finished | etcd stopped on the old data, `data.restoring` |
//! | `restore-after-restore` | `data.restoring` made 0700 | the same |
//! | `restore-after-move-aside` | old data moved to `data.pre-restore` | no `data` at all |
//! | `restore-after-swap` | new data in place, etcd not started (`corrupt`: the db cut short) | etcd stopped on the new data |
//! | `restore-after-start` | etcd healthy on the new data, not yet checked | etcd serving the new data |
//! | `restore-after-verified` | journal `verified` written | the new data in service, `data.pre-restore` not yet removed |
//! | `restore-mid-adopt-pki` | `adopt-pki=true`: the secret holds the snapshot's CA, etcd not restarted | etcd on certificates from the old CA |
//!
//! The next hook, or the next snapshot or restore action, cleans up under
//! the unit's lock ([`crate::charm`]'s `recover_interrupted`): it removes the
//! partial file a snapshot journal names, rolls a `replacing` restore back
//! to the old data, finishes a `verified` one, and drops the staging db. An
//! interrupted CA adoption is completed by the hook's reconcile, which
//! reissues the unit's certificates from the CA the application's secret
//! holds.

/// The environment variable that arms failure points.
pub const ENV: &str = "ETCD_CHARM_FAILPOINTS";

/// What an armed point does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Error,
    Kill,
    Corrupt,
}

/// An armed `error` point.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("failure point {0} was triggered (ETCD_CHARM_FAILPOINTS)")]
pub struct Injected(pub String);

/// The action armed for `name`, if any.
pub fn armed(name: &str) -> Option<Action> {
    let spec = std::env::var(ENV).ok()?;
    parse(&spec, name)
}

fn parse(spec: &str, name: &str) -> Option<Action> {
    spec.split(',').find_map(|item| {
        let (n, a) = item.trim().split_once('=')?;
        if n.trim() != name {
            return None;
        }
        match a.trim() {
            "error" => Some(Action::Error),
            "kill" => Some(Action::Kill),
            "corrupt" => Some(Action::Corrupt),
            _ => None,
        }
    })
}

/// Evaluates the point `name`: kills the process for `kill`, returns an
/// error for `error`, and returns `Ok(true)` for `corrupt` so the call site
/// can do its damage. `Ok(false)` when the point is not armed.
pub fn hit(name: &str) -> Result<bool, Injected> {
    match armed(name) {
        None => Ok(false),
        Some(Action::Error) => Err(Injected(name.to_string())),
        Some(Action::Corrupt) => Ok(true),
        Some(Action::Kill) => {
            tracing::warn!("failure point {name}: killing this process");
            // SAFETY: kill(2) and getpid(2) have no memory-safety
            // preconditions.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
            // SIGKILL cannot be caught; this is not reached.
            std::process::abort()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_named_points_only() {
        let spec = "a=error, b = kill,c=corrupt,d=bogus,e";
        assert_eq!(parse(spec, "a"), Some(Action::Error));
        assert_eq!(parse(spec, "b"), Some(Action::Kill));
        assert_eq!(parse(spec, "c"), Some(Action::Corrupt));
        assert_eq!(parse(spec, "d"), None);
        assert_eq!(parse(spec, "e"), None);
        assert_eq!(parse(spec, "zz"), None);
        assert_eq!(parse("", "a"), None);
    }
}
