//! The Juju version a model runs, and every difference between Juju 2.9 and
//! 3.x the simulator knows about, in one place. A model's version comes from
//! `JUJU_SIM_AGENT_VERSION` when it is created (default
//! [`DEFAULT_VERSION`]) and changes only through `juju-sim upgrade-model`.
//! Hooks see it as `JUJU_VERSION`; `status` shows it as `model.version`.

use serde_json::{json, Value};

/// The version a model gets when `JUJU_SIM_AGENT_VERSION` is unset.
pub const DEFAULT_VERSION: &str = "3.6.12";

/// Hook tools that Juju 2.9 does not have at all.
const SECRET_TOOLS: &[&str] = &[
    "secret-add",
    "secret-get",
    "secret-set",
    "secret-ids",
    "secret-remove",
    "secret-grant",
    "secret-revoke",
    "secret-info-get",
];

/// A model's Juju version and what follows from it.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub version: String,
    major: u32,
    minor: u32,
}

impl Profile {
    /// Parses `2.9.49` or `3.6.12`; only 2.9 and 3.x are simulated.
    pub fn parse(version: &str) -> Result<Profile, String> {
        let v = version.trim();
        let mut it = v.split('.');
        let major = it.next().and_then(|x| x.parse::<u32>().ok());
        let minor = it.next().and_then(|x| x.parse::<u32>().ok());
        let patch_ok = it
            .next()
            .is_none_or(|p| !p.is_empty() && p.chars().next().is_some_and(|c| c.is_ascii_digit()));
        match (major, minor) {
            (Some(2), Some(9)) | (Some(3), Some(_)) if patch_ok => Ok(Profile {
                version: v.to_string(),
                major: major.unwrap_or(3),
                minor: minor.unwrap_or(0),
            }),
            _ => Err(format!(
                "unsupported Juju agent version \"{v}\": juju-sim simulates 2.9.x and 3.x (e.g. 2.9.49, 3.6.12)"
            )),
        }
    }

    /// The profile of a stored model (an old model.json without a version
    /// is treated as the default).
    pub fn of(version: &str) -> Profile {
        Profile::parse(version).unwrap_or_else(|_| Profile {
            version: DEFAULT_VERSION.to_string(),
            major: 3,
            minor: 6,
        })
    }

    /// From `JUJU_SIM_AGENT_VERSION`, for a new model.
    pub fn from_env() -> Result<Profile, String> {
        match std::env::var("JUJU_SIM_AGENT_VERSION") {
            Ok(v) if !v.trim().is_empty() => Profile::parse(&v),
            _ => Profile::parse(DEFAULT_VERSION),
        }
    }

    pub fn is_29(&self) -> bool {
        self.major == 2
    }

    /// Juju has `secret-*` hook tools from 3.0 (usable by charms from 3.1).
    pub fn has_secrets(&self) -> bool {
        self.major >= 3
    }

    /// Whether hook tool `name` exists under this version.
    pub fn has_tool(&self, name: &str) -> bool {
        self.has_secrets() || !SECRET_TOOLS.contains(&name)
    }

    /// The hint after 2.9's target error when `juju run UNIT ACTION` was
    /// typed as on Juju 3: 2.9's `run` runs commands, its actions run with
    /// `run-action`.
    pub fn run_action_hint(&self, unit: &str, action: &str) -> String {
        format!(
            "(`juju run` on Juju {} runs commands: juju run --unit {unit} -- CMD; \
             to run the action use: juju run-action {unit} {action} --wait)",
            self.version
        )
    }

    /// The verbs one Juju has and the other has not, refused as that
    /// Juju's CLI refuses an unknown command: Juju 3 renamed `run-action`
    /// to `run` and `show-action-output` to `show-task`; Juju 2.9 has no
    /// `exec` (its `run` runs commands). The refusal's first line is Juju's
    /// for an unknown command (`notFoundCommandMessage` in
    /// cmd/juju/commands/main.go; the error comes from the command's Run,
    /// so the exit code is 1). Juju then lists its closest commands by
    /// edit distance; the simulator gives instead a hint naming the other
    /// version's verb. `None` where the verb exists.
    pub fn unknown_verb(&self, verb: &str) -> Option<String> {
        let (new, hint) = match (self.is_29(), verb) {
            (false, "run-action") => (
                "run",
                "Juju 3 runs actions with: juju run UNIT ACTION [KEY=VALUE...] [--wait=30m]",
            ),
            (false, "show-action-output") => (
                "show-task",
                "Juju 3 shows an action's results with: juju show-task ID [--wait=30m]",
            ),
            (false, "upgrade-charm") => (
                "refresh",
                "Juju 3 upgrades a charm with: juju refresh APP --path CHARM [--resource NAME=PATH]",
            ),
            (true, "exec") => (
                "run",
                "Juju 2.9 runs commands with: juju run --unit UNIT -- CMD",
            ),
            _ => return None,
        };
        let (verb_of, new_of) = if self.is_29() {
            ("Juju 3's", "Juju 2.9's")
        } else {
            ("Juju 2.9's", "Juju 3's")
        };
        Some(format!(
            "juju: \"{verb}\" is not a juju command. See \"juju --help\".\n\n\
             {hint} (`{verb}` is {verb_of} verb, `{new}` {new_of}; this model runs Juju {})",
            self.version
        ))
    }

    /// An application's `relations` in `status --format=json`: Juju 3
    /// lists objects, Juju 2.9 lists the related applications' names.
    pub fn status_relation(&self, related: &str, interface: &str, scope: &str) -> Value {
        if self.is_29() {
            Value::from(related)
        } else {
            json!({"related-application": related, "interface": interface, "scope": scope})
        }
    }

    /// The `charm` field of an application in status.
    pub fn status_charm(&self, name: &str, revision: u64) -> String {
        if self.is_29() {
            format!("local:focal/{name}-{revision}")
        } else {
            format!("local:{name}-{revision}")
        }
    }

    /// Where status puts the OS: 3.x `base`, 2.9 `series`.
    pub fn status_os(&self) -> (&'static str, Value) {
        if self.is_29() {
            ("series", Value::from("jammy"))
        } else {
            ("base", json!({"name": "ubuntu", "channel": "22.04"}))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert!(Profile::parse("2.9.49").is_ok_and(|p| p.is_29() && !p.has_secrets()));
        assert!(Profile::parse("3.6.12").is_ok_and(|p| !p.is_29() && p.has_secrets()));
        assert!(Profile::parse("3.6").is_ok());
        assert!(Profile::parse("2.8.1").is_err());
        assert!(Profile::parse("4.0.0").is_err());
        assert!(Profile::parse("banana").is_err());
        let p = Profile::parse("2.9.49").unwrap_or_else(|e| panic!("{e}"));
        assert!(!p.has_tool("secret-get"));
        assert!(p.has_tool("leader-set"));
        assert!(p.unknown_verb("run-action").is_none());
        assert!(p.unknown_verb("run").is_none());
        assert!(p.unknown_verb("exec").is_some_and(|m| m
            .starts_with("juju: \"exec\" is not a juju command. See \"juju --help\".")
            && m.contains("juju run --unit UNIT -- CMD")));
        let p3 = Profile::parse("3.6.12").unwrap_or_else(|e| panic!("{e}"));
        assert!(p3.unknown_verb("run-action").is_some_and(|m| m
            .contains("\"run-action\" is not a juju command")
            && m.contains("juju run ")));
        assert!(p3
            .unknown_verb("show-action-output")
            .is_some_and(|m| m.contains("juju show-task")));
        assert!(p3.unknown_verb("run").is_none());
        assert!(p3.unknown_verb("exec").is_none());
    }
}
