//! The glue: hook and action handlers that compose the `juju` and `etcd`
//! layers. This is the only place where Juju meets etcd.
//!
//! [`dispatch`] routes on the context; the exit-code policy is in
//! [`outcome`]: a hook that fails returns an error (so Juju retries it), an
//! action that fails calls `action-fail` with a message that says what to do.
//! Problems an operator must fix are not errors: they become a `blocked`
//! status and the hook succeeds, so Juju does not retry in a loop.

pub mod actions;
pub mod hooks;
pub mod lock;
pub mod outcome;
pub mod restore;
pub mod snapshot;
pub mod state;

use anyhow::Result;

use crate::etcd::{Root, Service};
use crate::juju::{Context, Dispatch, HookTools};

/// Everything a handler needs.
pub struct Charm<'a> {
    pub ctx: &'a Context,
    pub tools: &'a dyn HookTools,
    pub root: Root,
    pub service: Service,
}

impl<'a> Charm<'a> {
    pub fn new(ctx: &'a Context, tools: &'a dyn HookTools, root: Root) -> Self {
        Charm {
            ctx,
            tools,
            root,
            service: Service::default(),
        }
    }
}

/// Runs the hook or action the context names.
pub fn dispatch(charm: &Charm<'_>) -> Result<()> {
    match &charm.ctx.dispatch {
        Dispatch::Hook(name) => outcome::hook(name, hooks::run(charm, name)),
        Dispatch::Action { name, .. } => {
            outcome::action(charm.tools, name, actions::run(charm, name))
        }
    }
}
