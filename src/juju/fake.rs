//! An in-memory [`HookTools`] for handler tests: state in, state out.
//!
//! It records every status, action result, log line and leader/relation
//! write, so a test can run a handler and assert on what Juju would have
//! seen. It follows the same rules as the real tools where a handler could
//! notice the difference (leader-only writes, resource-get without an
//! attachment).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{Map, Value};

use super::tools::{HookToolError, HookTools, LogLevel, NetworkInfo, SecretOwner, Status};

/// Everything the fake remembers. Public so tests can set it up and read it.
#[derive(Debug, Default, Clone)]
pub struct FakeState {
    pub leader: bool,
    /// This unit's name (`etcd/0`) and application, for relation bags.
    pub unit_name: String,
    pub app_name: String,
    pub config: Map<String, Value>,
    pub action_params: Map<String, Value>,
    pub action_results: BTreeMap<String, String>,
    pub action_failed: Option<String>,
    pub action_logs: Vec<String>,
    pub statuses: Vec<Status>,
    pub app_statuses: Vec<Status>,
    pub version: Option<String>,
    pub leader_settings: BTreeMap<String, String>,
    /// relation id → remote units
    pub relations: BTreeMap<String, Vec<String>>,
    /// (relation id, unit or app) → bag
    pub relation_data: BTreeMap<(String, String), BTreeMap<String, String>>,
    /// resource name → unit path
    pub resources: BTreeMap<String, PathBuf>,
    /// resource name → the stderr of a failing `resource-get` (a
    /// controller fault, not "not uploaded")
    pub resource_faults: BTreeMap<String, String>,
    pub address: String,
    pub open_ports: Vec<u16>,
    pub logs: Vec<(LogLevel, String)>,
    pub secrets: BTreeMap<String, BTreeMap<String, String>>,
}

/// The fake itself; interior mutability because handlers take `&dyn HookTools`.
#[derive(Debug, Default)]
pub struct FakeHookTools {
    pub state: RefCell<FakeState>,
}

impl FakeHookTools {
    pub fn new(state: FakeState) -> Self {
        FakeHookTools {
            state: RefCell::new(state),
        }
    }

    /// The last unit status set, if any.
    pub fn last_status(&self) -> Option<Status> {
        self.state.borrow().statuses.last().cloned()
    }
}

fn refuse(command: &str, stderr: &str) -> HookToolError {
    HookToolError::Failed {
        command: command.to_string(),
        code: 1,
        stderr: stderr.to_string(),
    }
}

impl HookTools for FakeHookTools {
    fn action_get(&self) -> Result<Map<String, Value>, HookToolError> {
        Ok(self.state.borrow().action_params.clone())
    }
    fn action_set(&self, results: &BTreeMap<String, String>) -> Result<(), HookToolError> {
        self.state
            .borrow_mut()
            .action_results
            .extend(results.clone());
        Ok(())
    }
    fn action_fail(&self, message: &str) -> Result<(), HookToolError> {
        self.state.borrow_mut().action_failed = Some(message.to_string());
        Ok(())
    }
    fn action_log(&self, message: &str) -> Result<(), HookToolError> {
        self.state
            .borrow_mut()
            .action_logs
            .push(message.to_string());
        Ok(())
    }
    fn status_set(&self, status: &Status, application: bool) -> Result<(), HookToolError> {
        let mut s = self.state.borrow_mut();
        if application {
            if !s.leader {
                return Err(refuse("status-set", "ERROR this unit is not the leader"));
            }
            s.app_statuses.push(status.clone());
        } else {
            s.statuses.push(status.clone());
        }
        Ok(())
    }
    fn application_version_set(&self, version: &str) -> Result<(), HookToolError> {
        self.state.borrow_mut().version = Some(version.to_string());
        Ok(())
    }
    fn config_get(&self) -> Result<Map<String, Value>, HookToolError> {
        Ok(self.state.borrow().config.clone())
    }
    fn is_leader(&self) -> Result<bool, HookToolError> {
        Ok(self.state.borrow().leader)
    }
    fn leader_get(&self) -> Result<BTreeMap<String, String>, HookToolError> {
        Ok(self.state.borrow().leader_settings.clone())
    }
    fn leader_set(&self, settings: &BTreeMap<String, String>) -> Result<(), HookToolError> {
        let mut s = self.state.borrow_mut();
        if !s.leader {
            return Err(refuse(
                "leader-set",
                "ERROR cannot write leadership settings: cannot write settings: not the leader",
            ));
        }
        for (k, v) in settings {
            if v.is_empty() {
                s.leader_settings.remove(k);
            } else {
                s.leader_settings.insert(k.clone(), v.clone());
            }
        }
        Ok(())
    }
    fn relation_ids(&self, endpoint: &str) -> Result<Vec<String>, HookToolError> {
        let prefix = format!("{endpoint}:");
        Ok(self
            .state
            .borrow()
            .relations
            .keys()
            .filter(|k| k.starts_with(&prefix))
            .cloned()
            .collect())
    }
    fn relation_list(&self, relation_id: &str) -> Result<Vec<String>, HookToolError> {
        self.state
            .borrow()
            .relations
            .get(relation_id)
            .cloned()
            .ok_or_else(|| refuse("relation-list", "ERROR relation not found"))
    }
    fn relation_get(
        &self,
        relation_id: &str,
        unit_or_app: &str,
        _app: bool,
    ) -> Result<BTreeMap<String, String>, HookToolError> {
        Ok(self
            .state
            .borrow()
            .relation_data
            .get(&(relation_id.to_string(), unit_or_app.to_string()))
            .cloned()
            .unwrap_or_default())
    }
    fn relation_set(
        &self,
        relation_id: &str,
        app: bool,
        settings: &BTreeMap<String, String>,
    ) -> Result<(), HookToolError> {
        let mut s = self.state.borrow_mut();
        if app && !s.leader {
            return Err(refuse(
                "relation-set",
                "ERROR cannot write relation settings: not the leader",
            ));
        }
        let owner = if app {
            s.app_name.clone()
        } else {
            s.unit_name.clone()
        };
        let key = (relation_id.to_string(), owner);
        let bag = s.relation_data.entry(key).or_default();
        for (k, v) in settings {
            if v.is_empty() {
                bag.remove(k);
            } else {
                bag.insert(k.clone(), v.clone());
            }
        }
        Ok(())
    }
    fn resource_get(&self, name: &str) -> Result<Option<PathBuf>, HookToolError> {
        let s = self.state.borrow();
        if let Some(fault) = s.resource_faults.get(name) {
            return Err(refuse("resource-get", fault));
        }
        Ok(s.resources.get(name).cloned())
    }
    fn network_get(&self, _endpoint: &str) -> Result<NetworkInfo, HookToolError> {
        let a = self.state.borrow().address.clone();
        Ok(NetworkInfo {
            bind_addresses: vec![a.clone()],
            ingress_addresses: vec![a],
        })
    }
    fn open_port(&self, port: u16) -> Result<(), HookToolError> {
        let mut s = self.state.borrow_mut();
        if !s.open_ports.contains(&port) {
            s.open_ports.push(port);
        }
        Ok(())
    }
    fn close_port(&self, port: u16) -> Result<(), HookToolError> {
        self.state.borrow_mut().open_ports.retain(|p| *p != port);
        Ok(())
    }
    fn juju_log(&self, level: LogLevel, message: &str) -> Result<(), HookToolError> {
        self.state
            .borrow_mut()
            .logs
            .push((level, message.to_string()));
        Ok(())
    }
    fn secret_add(
        &self,
        content: &BTreeMap<String, String>,
        _label: Option<&str>,
        owner: SecretOwner,
    ) -> Result<String, HookToolError> {
        let mut s = self.state.borrow_mut();
        if owner == SecretOwner::Application && !s.leader {
            return Err(refuse("secret-add", "ERROR this unit is not the leader"));
        }
        let uri = format!("secret:fake{:016}", s.secrets.len());
        s.secrets.insert(uri.clone(), content.clone());
        Ok(uri)
    }
    fn secret_ids(&self) -> Result<Vec<String>, HookToolError> {
        Ok(self.state.borrow().secrets.keys().cloned().collect())
    }
    fn secret_get(&self, uri: &str) -> Result<BTreeMap<String, String>, HookToolError> {
        self.state
            .borrow()
            .secrets
            .get(uri)
            .cloned()
            .ok_or_else(|| refuse("secret-get", &format!("ERROR secret {uri:?} not found")))
    }
    fn secret_set(
        &self,
        uri: &str,
        content: &BTreeMap<String, String>,
    ) -> Result<(), HookToolError> {
        let mut s = self.state.borrow_mut();
        match s.secrets.get_mut(uri) {
            Some(c) => {
                *c = content.clone();
                Ok(())
            }
            None => Err(refuse(
                "secret-set",
                &format!("ERROR secret {uri:?} not found"),
            )),
        }
    }
}
