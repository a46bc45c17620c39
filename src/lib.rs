//! The etcd charm: one dispatcher for every Juju hook and action.
//!
//! The layers, each in its own folder (see `ARCHITECTURE.md`):
//! - [`juju`]: the single door to Juju's hook tools and environment;
//! - [`etcd`]: the workload (install, config, systemd unit, etcd-client);
//! - [`snapshot`]: the snapshot archive format (pack, inspect, verify); pure;
//! - [`pki`]: the CA and the certificates etcd and its clients use; pure, and
//!   not yet used by a hook;
//! - [`charm`]: the handlers that compose the others, the only place where
//!   Juju meets etcd;
//! - [`failpoint`]: named failure points, armed only by an environment
//!   variable in fault-injection tests.

pub mod charm;
pub mod etcd;
pub mod failpoint;
pub mod fsutil;
pub mod juju;
pub mod pki;
pub mod schedule;
pub mod snapshot;
pub mod store;
pub mod timefmt;

#[cfg(test)]
mod testing;
