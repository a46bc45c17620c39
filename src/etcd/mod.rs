//! The workload: etcd's binaries, its config, its systemd unit and the
//! connection to the running server.
//!
//! Invariant: nothing here knows about Juju. This is the only module that
//! runs etcd, etcdctl/etcdutl, apt-get or systemctl, and its errors keep the
//! child's stderr so the operator sees what the tool said.

pub mod client;
pub mod config;
pub mod install;
pub mod paths;
pub mod process;
pub mod restore;
pub mod scratch;
pub mod service;
pub mod timer;

pub use client::{ClientError, ClientTls, EtcdClient, Health, Member, MemberStatus};
pub use config::{ClusterState, ConfigError, MemberConfig, TlsFiles};
pub use install::{Binaries, BinarySource, InstallError};
pub use paths::Root;
pub use process::CommandError;
pub use service::Service;
