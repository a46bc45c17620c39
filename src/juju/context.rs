//! The `JUJU_*` environment, read once into a frozen [`Context`].
//!
//! Juju tells the charm what to do through the environment and the path it
//! was invoked under. Everything else in the charm receives this context
//! instead of reading the environment itself, so a handler test can build one
//! by hand.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// What Juju asked the charm to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dispatch {
    /// `hooks/<name>`
    Hook(String),
    /// `actions/<name>` with its id (`JUJU_ACTION_UUID`).
    Action { name: String, id: String },
}

/// The relation a relation hook is about.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RelationContext {
    /// The endpoint name, e.g. `cluster`.
    pub endpoint: String,
    /// The relation id, e.g. `cluster:0`.
    pub id: String,
    pub remote_unit: Option<String>,
    pub remote_app: Option<String>,
    pub departing_unit: Option<String>,
}

/// The environment Juju set for this hook or action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    pub dispatch: Dispatch,
    /// e.g. `etcd/0`
    pub unit_name: String,
    /// e.g. `etcd`
    pub app_name: String,
    pub charm_dir: PathBuf,
    pub model_name: String,
    pub juju_version: String,
    pub relation: Option<RelationContext>,
}

/// Why the environment could not be understood.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ContextError {
    #[error("JUJU_UNIT_NAME is not set: dispatch must be run by Juju")]
    NoUnit,
    #[error("JUJU_UNIT_NAME {0:?} is not of the form app/N")]
    BadUnit(String),
    #[error("cannot tell which hook or action to run: JUJU_DISPATCH_PATH is not set and the program name {0:?} names none")]
    NoDispatch(String),
    #[error("JUJU_DISPATCH_PATH {0:?} is neither hooks/<name> nor actions/<name>")]
    BadDispatch(String),
}

impl Context {
    /// Reads the process environment. `argv0` is the name the binary was
    /// invoked as, used when `JUJU_DISPATCH_PATH` is absent (old Juju runs
    /// `hooks/<name>` symlinks).
    pub fn from_env(argv0: &str) -> Result<Self, ContextError> {
        let env: HashMap<String, String> = std::env::vars().collect();
        Self::from_map(&env, argv0)
    }

    /// Builds a context from an explicit environment map (for tests).
    pub fn from_map(env: &HashMap<String, String>, argv0: &str) -> Result<Self, ContextError> {
        let get = |k: &str| env.get(k).filter(|v| !v.is_empty()).cloned();
        let unit_name = get("JUJU_UNIT_NAME").ok_or(ContextError::NoUnit)?;
        let app_name = match unit_name.split_once('/') {
            Some((app, n)) if !app.is_empty() && n.parse::<u32>().is_ok() => app.to_string(),
            _ => return Err(ContextError::BadUnit(unit_name)),
        };
        let dispatch = match get("JUJU_DISPATCH_PATH") {
            Some(p) => parse_dispatch_path(&p, get("JUJU_ACTION_UUID"))?,
            None => dispatch_from_argv0(argv0, get("JUJU_ACTION_UUID"))?,
        };
        let relation = get("JUJU_RELATION_ID").map(|id| RelationContext {
            endpoint: get("JUJU_RELATION")
                .unwrap_or_else(|| id.split(':').next().unwrap_or_default().to_string()),
            id,
            remote_unit: get("JUJU_REMOTE_UNIT"),
            remote_app: get("JUJU_REMOTE_APP"),
            departing_unit: get("JUJU_DEPARTING_UNIT"),
        });
        Ok(Context {
            dispatch,
            unit_name,
            app_name,
            charm_dir: get("JUJU_CHARM_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(".")),
            model_name: get("JUJU_MODEL_NAME").unwrap_or_default(),
            juju_version: get("JUJU_VERSION").unwrap_or_default(),
            relation,
        })
    }

    /// The unit's number: `etcd/3` → 3.
    pub fn unit_number(&self) -> u32 {
        self.unit_name
            .rsplit_once('/')
            .and_then(|(_, n)| n.parse().ok())
            .unwrap_or(0)
    }

    /// A name that is safe as an etcd member name and in file names: `etcd/0` → `etcd-0`.
    pub fn member_name(&self) -> String {
        self.unit_name.replace('/', "-")
    }

    /// What the Juju running this charm offers (secrets or not).
    pub fn capabilities(&self) -> super::Capabilities {
        super::Capabilities::of(&self.juju_version)
    }

    /// The hook name, or `None` for an action.
    pub fn hook_name(&self) -> Option<&str> {
        match &self.dispatch {
            Dispatch::Hook(h) => Some(h),
            Dispatch::Action { .. } => None,
        }
    }
}

fn parse_dispatch_path(path: &str, action_id: Option<String>) -> Result<Dispatch, ContextError> {
    match path.split_once('/') {
        Some(("hooks", name)) if !name.is_empty() && !name.contains('/') => {
            Ok(Dispatch::Hook(name.to_string()))
        }
        Some(("actions", name)) if !name.is_empty() && !name.contains('/') => {
            Ok(Dispatch::Action {
                name: name.to_string(),
                id: action_id.unwrap_or_default(),
            })
        }
        _ => Err(ContextError::BadDispatch(path.to_string())),
    }
}

fn dispatch_from_argv0(argv0: &str, action_id: Option<String>) -> Result<Dispatch, ContextError> {
    let p = Path::new(argv0);
    let name = p
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| !n.is_empty() && *n != "dispatch" && *n != "etcd-charm")
        .ok_or_else(|| ContextError::NoDispatch(argv0.to_string()))?;
    let parent = p
        .parent()
        .and_then(|d| d.file_name())
        .and_then(|d| d.to_str());
    if parent == Some("actions") || action_id.is_some() {
        Ok(Dispatch::Action {
            name: name.to_string(),
            id: action_id.unwrap_or_default(),
        })
    } else {
        Ok(Dispatch::Hook(name.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn hook_from_dispatch_path() {
        let c = Context::from_map(
            &env(&[
                ("JUJU_UNIT_NAME", "new-etcd/12"),
                ("JUJU_DISPATCH_PATH", "hooks/config-changed"),
            ]),
            "./dispatch",
        )
        .unwrap();
        assert_eq!(c.dispatch, Dispatch::Hook("config-changed".into()));
        assert_eq!(c.app_name, "new-etcd");
        assert_eq!(c.unit_number(), 12);
        assert_eq!(c.member_name(), "new-etcd-12");
    }

    #[test]
    fn action_from_dispatch_path() {
        let c = Context::from_map(
            &env(&[
                ("JUJU_UNIT_NAME", "etcd/0"),
                ("JUJU_DISPATCH_PATH", "actions/snapshot"),
                ("JUJU_ACTION_UUID", "7"),
            ]),
            "dispatch",
        )
        .unwrap();
        assert_eq!(
            c.dispatch,
            Dispatch::Action {
                name: "snapshot".into(),
                id: "7".into()
            }
        );
    }

    #[test]
    fn falls_back_to_argv0() {
        let e = env(&[("JUJU_UNIT_NAME", "etcd/0")]);
        let c = Context::from_map(&e, "/var/lib/juju/charm/hooks/install").unwrap();
        assert_eq!(c.dispatch, Dispatch::Hook("install".into()));
        let c = Context::from_map(&e, "actions/health").unwrap();
        assert!(matches!(c.dispatch, Dispatch::Action { ref name, .. } if name == "health"));
        assert!(matches!(
            Context::from_map(&e, "./dispatch"),
            Err(ContextError::NoDispatch(_))
        ));
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(Context::from_map(&env(&[]), "x"), Err(ContextError::NoUnit));
        assert!(matches!(
            Context::from_map(&env(&[("JUJU_UNIT_NAME", "etcd")]), "hooks/install"),
            Err(ContextError::BadUnit(_))
        ));
        assert!(matches!(
            Context::from_map(
                &env(&[
                    ("JUJU_UNIT_NAME", "etcd/0"),
                    ("JUJU_DISPATCH_PATH", "hooks/../x")
                ]),
                "dispatch"
            ),
            Err(ContextError::BadDispatch(_))
        ));
    }

    #[test]
    fn relation_context() {
        let c = Context::from_map(
            &env(&[
                ("JUJU_UNIT_NAME", "etcd/0"),
                ("JUJU_DISPATCH_PATH", "hooks/cluster-relation-joined"),
                ("JUJU_RELATION", "cluster"),
                ("JUJU_RELATION_ID", "cluster:0"),
                ("JUJU_REMOTE_UNIT", "etcd/1"),
            ]),
            "dispatch",
        )
        .unwrap();
        let r = c.relation.unwrap();
        assert_eq!(r.id, "cluster:0");
        assert_eq!(r.endpoint, "cluster");
        assert_eq!(r.remote_unit.as_deref(), Some("etcd/1"));
    }
}
