//! The etcd charm: one dispatcher for every Juju hook and action.
//!
//! The layers, each in its own folder (see `ARCHITECTURE.md`):
//! - [`juju`]: the single door to Juju's hook tools and environment;
//! - [`etcd`]: the workload (install, config, systemd unit, etcd-client);
//! - [`charm`]: the handlers that compose the two, the only place where Juju
//!   meets etcd.

pub mod charm;
pub mod etcd;
pub mod fsutil;
pub mod juju;
