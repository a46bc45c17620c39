//! The one place where errors become what Juju sees.
//!
//! - A hook error is returned, so `main` exits non-zero and Juju retries the
//!   hook. Only unexpected failures get here (a hook tool that broke, a disk
//!   that cannot be written); operator-fixable problems set `blocked` instead.
//! - An action error becomes `action-fail` with the whole error chain, which
//!   every error in this crate words as "what happened; what to do". The
//!   process then exits 0, as Juju expects after `action-fail`.

use anyhow::{Context as _, Result};

use crate::juju::HookTools;

/// The result of a hook handler.
pub fn hook(name: &str, result: Result<()>) -> Result<()> {
    result.with_context(|| format!("hook {name} failed; Juju will retry it"))
}

/// The result of an action handler.
pub fn action(tools: &dyn HookTools, name: &str, result: Result<()>) -> Result<()> {
    match result {
        Ok(()) => Ok(()),
        Err(e) => {
            let message = format!("{e:#}");
            tracing::error!("action {name} failed: {message}");
            tools
                .action_fail(&message)
                .context("cannot report the action's failure with action-fail")
        }
    }
}
