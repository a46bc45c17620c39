//! The hook tools: one trait with a method per tool, and the real backend.
//!
//! [`CliHookTools`] is the only code in the charm that spawns a hook tool. It
//! has one [`CliHookTools::run`] that checks every exit status and turns a
//! failure into a [`HookToolError`] carrying the command, the exit code and
//! stderr, and it always asks for `--format=json` where Juju offers it.
//! Handlers take `&dyn HookTools`, so their tests can pass
//! [`super::fake::FakeHookTools`] instead.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// A hook tool that could not be run or that said no.
#[derive(Debug, thiserror::Error)]
pub enum HookToolError {
    #[error("cannot run hook tool {tool}: {source} (is this running under Juju?)")]
    Spawn {
        tool: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{command} exited with {code}: {stderr}")]
    Failed {
        command: String,
        code: i32,
        stderr: String,
    },
    #[error("{command} printed output that is not the expected JSON: {source}")]
    BadOutput {
        command: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot pass data to {tool}: {source}")]
    Io {
        tool: String,
        #[source]
        source: std::io::Error,
    },
}

impl HookToolError {
    /// True when the tool said the thing asked for does not exist
    /// (a resource, a secret, a relation).
    pub fn is_not_found(&self) -> bool {
        match self {
            HookToolError::Failed { stderr, .. } => {
                stderr.to_ascii_lowercase().contains("not found")
            }
            _ => false,
        }
    }

    /// True when `resource-get` said that nothing is uploaded for the
    /// resource (Juju: `resource#APP/NAME not found`), as opposed to a
    /// fault on the way to the controller.
    pub fn is_resource_absent(&self) -> bool {
        matches!(self, HookToolError::Failed { stderr, .. } if stderr.to_ascii_lowercase().contains("not found"))
    }

    /// True when the tool refused because this unit is not the leader.
    pub fn is_not_leader(&self) -> bool {
        matches!(self, HookToolError::Failed { stderr, .. } if stderr.contains("not the leader"))
    }
}

/// Juju's workload status values that a charm may set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StatusKind {
    Maintenance,
    Blocked,
    Waiting,
    Active,
}

impl StatusKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StatusKind::Maintenance => "maintenance",
            StatusKind::Blocked => "blocked",
            StatusKind::Waiting => "waiting",
            StatusKind::Active => "active",
        }
    }
}

/// A workload status with its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub kind: StatusKind,
    pub message: String,
}

impl Status {
    pub fn new(kind: StatusKind, message: impl Into<String>) -> Self {
        Status {
            kind,
            message: message.into(),
        }
    }
    pub fn active(m: impl Into<String>) -> Self {
        Self::new(StatusKind::Active, m)
    }
    pub fn blocked(m: impl Into<String>) -> Self {
        Self::new(StatusKind::Blocked, m)
    }
    pub fn waiting(m: impl Into<String>) -> Self {
        Self::new(StatusKind::Waiting, m)
    }
    pub fn maintenance(m: impl Into<String>) -> Self {
        Self::new(StatusKind::Maintenance, m)
    }
}

/// Log levels that `juju-log` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Debug,
    Info,
    Warning,
    Error,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "DEBUG",
            LogLevel::Info => "INFO",
            LogLevel::Warning => "WARNING",
            LogLevel::Error => "ERROR",
        }
    }
}

/// What `network-get` says about an endpoint's binding.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NetworkInfo {
    pub bind_addresses: Vec<String>,
    pub ingress_addresses: Vec<String>,
}

impl NetworkInfo {
    /// The address to advertise: the first ingress address, else the first bind address.
    pub fn primary(&self) -> Option<&str> {
        self.ingress_addresses
            .first()
            .or_else(|| self.bind_addresses.first())
            .map(String::as_str)
    }
}

/// Who owns a new secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretOwner {
    Application,
    Unit,
}

/// One method per hook tool. Implemented by [`CliHookTools`] in production
/// and by the in-memory fake in tests.
pub trait HookTools {
    /// `action-get --format=json`: every parameter, defaults included.
    fn action_get(&self) -> Result<Map<String, Value>, HookToolError>;
    /// `action-set k=v …`; keys are dotted, values strings.
    fn action_set(&self, results: &BTreeMap<String, String>) -> Result<(), HookToolError>;
    /// `action-fail -- message`
    fn action_fail(&self, message: &str) -> Result<(), HookToolError>;
    /// `action-log -- message`: progress the operator sees live.
    fn action_log(&self, message: &str) -> Result<(), HookToolError>;
    /// `status-set [--application] kind -- message`
    fn status_set(&self, status: &Status, application: bool) -> Result<(), HookToolError>;
    /// `application-version-set -- version`
    fn application_version_set(&self, version: &str) -> Result<(), HookToolError>;
    /// `config-get --format=json --all`
    fn config_get(&self) -> Result<Map<String, Value>, HookToolError>;
    /// `is-leader --format=json`
    fn is_leader(&self) -> Result<bool, HookToolError>;
    /// `leader-get --format=json`
    fn leader_get(&self) -> Result<BTreeMap<String, String>, HookToolError>;
    /// `leader-set k=v …` (an empty value deletes the key)
    fn leader_set(&self, settings: &BTreeMap<String, String>) -> Result<(), HookToolError>;
    /// `relation-ids --format=json endpoint`
    fn relation_ids(&self, endpoint: &str) -> Result<Vec<String>, HookToolError>;
    /// `relation-list --format=json -r id`: the remote units.
    fn relation_list(&self, relation_id: &str) -> Result<Vec<String>, HookToolError>;
    /// `relation-get --format=json -r id [--app] - unit_or_app`
    fn relation_get(
        &self,
        relation_id: &str,
        unit_or_app: &str,
        app: bool,
    ) -> Result<BTreeMap<String, String>, HookToolError>;
    /// `relation-set -r id [--app] --file -`
    fn relation_set(
        &self,
        relation_id: &str,
        app: bool,
        settings: &BTreeMap<String, String>,
    ) -> Result<(), HookToolError>;
    /// `resource-get name`: where the resource's file is on this machine
    /// (opened as it is, never moved under the charm's root), or `None`
    /// when nothing is uploaded.
    fn resource_get(&self, name: &str) -> Result<Option<PathBuf>, HookToolError>;
    /// `network-get --format=json endpoint`
    fn network_get(&self, endpoint: &str) -> Result<NetworkInfo, HookToolError>;
    /// `open-port port/tcp`
    fn open_port(&self, port: u16) -> Result<(), HookToolError>;
    /// `close-port port/tcp`
    fn close_port(&self, port: u16) -> Result<(), HookToolError>;
    /// `juju-log --log-level L -- message`
    fn juju_log(&self, level: LogLevel, message: &str) -> Result<(), HookToolError>;
    /// `secret-add --owner … [--label L] key#file=…`: returns the secret URI.
    /// Content goes through 0600 files, never the command line.
    fn secret_add(
        &self,
        content: &BTreeMap<String, String>,
        label: Option<&str>,
        owner: SecretOwner,
    ) -> Result<String, HookToolError>;
    /// `secret-get --format=json URI`
    fn secret_get(&self, uri: &str) -> Result<BTreeMap<String, String>, HookToolError>;
    /// `secret-ids --format=json`: the URIs of the secrets this unit (and,
    /// on the leader, its application) owns.
    fn secret_ids(&self) -> Result<Vec<String>, HookToolError>;
    /// `secret-set URI key#file=…`: a new revision.
    fn secret_set(
        &self,
        uri: &str,
        content: &BTreeMap<String, String>,
    ) -> Result<(), HookToolError>;
}

/// The real hook tools, found on `PATH` as Juju arranges.
#[derive(Debug, Default, Clone)]
pub struct CliHookTools {
    /// Extra environment for every tool (empty under Juju, where the hook's
    /// own environment is right). Tests use it to aim at a unit's context.
    env: Vec<(String, String)>,
}

impl CliHookTools {
    /// Tools that run with `env` on top of this process's environment.
    pub fn with_env(env: Vec<(String, String)>) -> Self {
        CliHookTools { env }
    }

    /// What the operator reads (statuses, action failures and progress),
    /// in the verbs of the Juju that runs the charm
    /// ([`super::version::operator_words`]).
    fn operator_words(&self, message: &str) -> String {
        let version = self
            .env
            .iter()
            .find(|(k, _)| k == "JUJU_VERSION")
            .map(|(_, v)| v.clone())
            .or_else(|| std::env::var("JUJU_VERSION").ok())
            .unwrap_or_default();
        super::version::operator_words(message, &version)
    }

    /// Runs one hook tool and returns its stdout. Every call goes through
    /// here, so every exit status is checked.
    pub fn run(
        &self,
        tool: &str,
        args: &[&str],
        stdin: Option<&[u8]>,
    ) -> Result<String, HookToolError> {
        let command = format!("{tool} {}", args.join(" "));
        let mut child = Command::new(tool)
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| HookToolError::Spawn {
                tool: tool.to_string(),
                source,
            })?;
        if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(data).map_err(|source| HookToolError::Io {
                tool: tool.to_string(),
                source,
            })?;
        }
        let out = child
            .wait_with_output()
            .map_err(|source| HookToolError::Io {
                tool: tool.to_string(),
                source,
            })?;
        if !out.status.success() {
            return Err(HookToolError::Failed {
                command,
                code: out.status.code().unwrap_or(-1),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn run_json<T: DeserializeOwned>(&self, tool: &str, args: &[&str]) -> Result<T, HookToolError> {
        let mut full = vec!["--format=json"];
        full.extend_from_slice(args);
        let out = self.run(tool, &full, None)?;
        let text = if out.trim().is_empty() {
            "null"
        } else {
            out.trim()
        };
        serde_json::from_str(text).map_err(|source| HookToolError::BadOutput {
            command: format!("{tool} {}", full.join(" ")),
            source,
        })
    }

    /// Runs `tool args… key#file=PATH…` with each value in its own 0600 file,
    /// so secret content never appears on a command line.
    fn run_with_content_files(
        &self,
        tool: &str,
        args: &[&str],
        content: &BTreeMap<String, String>,
    ) -> Result<String, HookToolError> {
        let io = |source| HookToolError::Io {
            tool: tool.to_string(),
            source,
        };
        let dir = tempfile::Builder::new()
            .prefix("secret-")
            .tempdir()
            .map_err(io)?;
        let mut kv = Vec::with_capacity(content.len());
        for (i, (k, v)) in content.iter().enumerate() {
            let path = dir.path().join(format!("v{i}"));
            crate::fsutil::write_private(&path, v.as_bytes()).map_err(io)?;
            kv.push(format!("{k}#file={}", path.display()));
        }
        let mut full: Vec<&str> = args.to_vec();
        full.extend(kv.iter().map(String::as_str));
        self.run(tool, &full, None)
    }
}

/// Flattens `relation-get`/`leader-get` JSON (a map of strings) into a map.
fn string_map(v: Option<Map<String, Value>>) -> BTreeMap<String, String> {
    v.unwrap_or_default()
        .into_iter()
        .map(|(k, v)| {
            let s = match v {
                Value::String(s) => s,
                other => other.to_string(),
            };
            (k, s)
        })
        .collect()
}

fn kv_args(map: &BTreeMap<String, String>) -> Vec<String> {
    map.iter().map(|(k, v)| format!("{k}={v}")).collect()
}

impl HookTools for CliHookTools {
    fn action_get(&self) -> Result<Map<String, Value>, HookToolError> {
        let v: Option<Map<String, Value>> = self.run_json("action-get", &[])?;
        Ok(v.unwrap_or_default())
    }

    fn action_set(&self, results: &BTreeMap<String, String>) -> Result<(), HookToolError> {
        if results.is_empty() {
            return Ok(());
        }
        let args = kv_args(results);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        self.run("action-set", &refs, None).map(drop)
    }

    fn action_fail(&self, message: &str) -> Result<(), HookToolError> {
        let message = self.operator_words(message);
        self.run("action-fail", &["--", &message], None).map(drop)
    }

    fn action_log(&self, message: &str) -> Result<(), HookToolError> {
        let message = self.operator_words(message);
        self.run("action-log", &["--", &message], None).map(drop)
    }

    fn status_set(&self, status: &Status, application: bool) -> Result<(), HookToolError> {
        let message = self.operator_words(&status.message);
        let mut args = vec![];
        if application {
            args.push("--application");
        }
        args.extend([status.kind.as_str(), "--", message.as_str()]);
        self.run("status-set", &args, None).map(drop)
    }

    fn application_version_set(&self, version: &str) -> Result<(), HookToolError> {
        self.run("application-version-set", &["--", version], None)
            .map(drop)
    }

    fn config_get(&self) -> Result<Map<String, Value>, HookToolError> {
        let v: Option<Map<String, Value>> = self.run_json("config-get", &["--all"])?;
        Ok(v.unwrap_or_default())
    }

    fn is_leader(&self) -> Result<bool, HookToolError> {
        self.run_json("is-leader", &[])
    }

    fn leader_get(&self) -> Result<BTreeMap<String, String>, HookToolError> {
        Ok(string_map(self.run_json("leader-get", &[])?))
    }

    fn leader_set(&self, settings: &BTreeMap<String, String>) -> Result<(), HookToolError> {
        let args = kv_args(settings);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        self.run("leader-set", &refs, None).map(drop)
    }

    fn relation_ids(&self, endpoint: &str) -> Result<Vec<String>, HookToolError> {
        let v: Option<Vec<String>> = self.run_json("relation-ids", &[endpoint])?;
        Ok(v.unwrap_or_default())
    }

    fn relation_list(&self, relation_id: &str) -> Result<Vec<String>, HookToolError> {
        let v: Option<Vec<String>> = self.run_json("relation-list", &["-r", relation_id])?;
        Ok(v.unwrap_or_default())
    }

    fn relation_get(
        &self,
        relation_id: &str,
        unit_or_app: &str,
        app: bool,
    ) -> Result<BTreeMap<String, String>, HookToolError> {
        let mut args = vec!["-r", relation_id];
        if app {
            args.push("--app");
        }
        args.extend(["-", unit_or_app]);
        Ok(string_map(self.run_json("relation-get", &args)?))
    }

    fn relation_set(
        &self,
        relation_id: &str,
        app: bool,
        settings: &BTreeMap<String, String>,
    ) -> Result<(), HookToolError> {
        let mut args = vec!["-r", relation_id];
        if app {
            args.push("--app");
        }
        args.extend(["--file", "-"]);
        let body = serde_json::to_vec(settings).map_err(|source| HookToolError::BadOutput {
            command: "relation-set".into(),
            source,
        })?;
        self.run("relation-set", &args, Some(&body)).map(drop)
    }

    fn resource_get(&self, name: &str) -> Result<Option<PathBuf>, HookToolError> {
        match self.run("resource-get", &[name], None) {
            Ok(out) => {
                let p = out.trim();
                Ok((!p.is_empty()).then(|| PathBuf::from(p)))
            }
            // Only "not found" (nothing uploaded) means absent. Juju's
            // every resource-get failure starts "could not download
            // resource", a controller or network fault included, and
            // those must not pass for "no resource".
            Err(e) if e.is_resource_absent() => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn network_get(&self, endpoint: &str) -> Result<NetworkInfo, HookToolError> {
        #[derive(serde::Deserialize)]
        struct Addr {
            value: Option<String>,
            address: Option<String>,
        }
        #[derive(serde::Deserialize)]
        struct Bind {
            #[serde(default)]
            addresses: Vec<Addr>,
        }
        #[derive(serde::Deserialize)]
        struct Net {
            #[serde(rename = "bind-addresses", default)]
            bind: Vec<Bind>,
            #[serde(rename = "ingress-addresses", default)]
            ingress: Vec<String>,
        }
        let n: Net = self.run_json("network-get", &[endpoint])?;
        Ok(NetworkInfo {
            bind_addresses: n
                .bind
                .into_iter()
                .flat_map(|b| b.addresses)
                .filter_map(|a| a.value.or(a.address))
                .collect(),
            ingress_addresses: n.ingress,
        })
    }

    fn open_port(&self, port: u16) -> Result<(), HookToolError> {
        self.run("open-port", &[&format!("{port}/tcp")], None)
            .map(drop)
    }

    fn close_port(&self, port: u16) -> Result<(), HookToolError> {
        self.run("close-port", &[&format!("{port}/tcp")], None)
            .map(drop)
    }

    fn juju_log(&self, level: LogLevel, message: &str) -> Result<(), HookToolError> {
        self.run(
            "juju-log",
            &["--log-level", level.as_str(), "--", message],
            None,
        )
        .map(drop)
    }

    fn secret_add(
        &self,
        content: &BTreeMap<String, String>,
        label: Option<&str>,
        owner: SecretOwner,
    ) -> Result<String, HookToolError> {
        let mut args = vec![
            "--owner",
            match owner {
                SecretOwner::Application => "application",
                SecretOwner::Unit => "unit",
            },
        ];
        if let Some(l) = label {
            args.extend(["--label", l]);
        }
        let out = self.run_with_content_files("secret-add", &args, content)?;
        Ok(out.trim().to_string())
    }

    fn secret_get(&self, uri: &str) -> Result<BTreeMap<String, String>, HookToolError> {
        Ok(string_map(self.run_json("secret-get", &[uri])?))
    }

    fn secret_ids(&self) -> Result<Vec<String>, HookToolError> {
        let v: Option<Vec<String>> = self.run_json("secret-ids", &[])?;
        Ok(v.unwrap_or_default())
    }

    fn secret_set(
        &self,
        uri: &str,
        content: &BTreeMap<String, String>,
    ) -> Result<(), HookToolError> {
        self.run_with_content_files("secret-set", &[uri], content)
            .map(drop)
    }
}
