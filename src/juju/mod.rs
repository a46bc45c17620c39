//! The single door to Juju: the hook-tool client and the hook environment.
//!
//! **API boundary.** Nothing outside this module spawns a hook tool or reads
//! a `JUJU_*` variable, and nothing in it knows about etcd. See
//! `ARCHITECTURE.md`.

pub mod context;
pub mod fake;
pub mod log;
pub mod tools;
pub mod version;

pub use context::{Context, ContextError, Dispatch, RelationContext};
pub use tools::{
    CliHookTools, HookToolError, HookTools, LogLevel, NetworkInfo, SecretOwner, Status, StatusKind,
};
pub use version::{Capabilities, JujuVersion};
