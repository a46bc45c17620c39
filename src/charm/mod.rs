//! The glue: hook and action handlers that compose the `juju` and `etcd`
//! layers. This is the only place where Juju meets etcd.
//!
//! [`dispatch`] routes on the context; the exit-code policy is in
//! [`outcome`]: a hook that fails returns an error (so Juju retries it), an
//! action that fails calls `action-fail` with a message that says what to do.
//! Problems an operator must fix are not errors: they become a `blocked`
//! status and the hook succeeds, so Juju does not retry in a loop.

pub mod actions;
pub mod alarms;
pub mod backup;
pub mod cluster;
pub mod db;
pub mod download;
pub mod hooks;
pub mod lock;
pub mod outcome;
pub mod recover;
pub mod repair;
pub mod replace;
pub mod restore;
pub mod rolling;
pub mod snapshot;
pub mod state;
pub mod tls;
pub mod upgrade;
pub mod verify;

use std::time::Duration;

use anyhow::{anyhow, Context as _, Result};

use crate::etcd::{EtcdClient, Root, Service};
use crate::juju::{Context, Dispatch, HookTools};

/// Everything a handler needs.
pub struct Charm<'a> {
    pub ctx: &'a Context,
    pub tools: &'a dyn HookTools,
    pub root: Root,
    pub service: Service,
    /// The CA this dispatch has written (a new one, an adopted one, or one
    /// put back). Juju commits a `secret-set` only when the hook or action
    /// exits, and a plain `secret-get` until then returns the committed
    /// revision, so the charm keeps what it wrote in hand instead of
    /// reading it back.
    pub(crate) ca_in_hand: std::cell::RefCell<Option<crate::pki::Ca>>,
}

impl<'a> Charm<'a> {
    pub fn new(ctx: &'a Context, tools: &'a dyn HookTools, root: Root) -> Self {
        Charm {
            ctx,
            tools,
            root,
            service: Service::default(),
            ca_in_hand: std::cell::RefCell::new(None),
        }
    }
}

impl Charm<'_> {
    /// A ready TLS client to this unit's etcd, or an error that says why
    /// there is none. Every caller that talks to this unit's etcd uses it.
    pub fn connect(&self) -> Result<EtcdClient> {
        let state = self.load_state()?;
        let applied = state.applied.ok_or_else(|| {
            anyhow!(
                "etcd is not running on {} yet; check `juju status` and wait for the unit to be active",
                self.ctx.unit_name
            )
        })?;
        let tls = self.client_tls()?;
        EtcdClient::connect(&applied.client_url, &tls, Duration::from_secs(5))
            .with_context(|| format!("cannot reach this unit's etcd at {}", applied.client_url))
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
