//! The Juju version the charm runs under, and what it can do.
//!
//! `JUJU_VERSION` (e.g. `2.9.49`, `3.6.12`, `3.1-beta1`) decides which hook
//! tools exist. This is the one place that maps a version to a capability,
//! so a handler asks "are there secrets?" and never compares versions
//! itself.

/// A parsed `JUJU_VERSION`: major, minor and patch (a tag such as `-beta1`
/// is ignored; a missing patch is 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct JujuVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl JujuVersion {
    /// Parses `JUJU_VERSION`; `None` for an empty or unreadable value.
    pub fn parse(s: &str) -> Option<JujuVersion> {
        let mut parts = s.trim().split(['.', '-']);
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let patch = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        Some(JujuVersion {
            major,
            minor,
            patch,
        })
    }

    /// Whether the `secret-*` hook tools are there for machine charms
    /// (application-owned secrets that every unit reads: Juju 3.1 on).
    /// Juju 2.9 has none.
    pub fn has_secrets(self) -> bool {
        (self.major, self.minor) >= (3, 1)
    }
}

/// What this Juju offers the charm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// `secret-add`, `secret-get`, `secret-set` and friends.
    pub secrets: bool,
}

impl Capabilities {
    /// From `JUJU_VERSION`. An unreadable version gets the 2.9 set, which
    /// works on every Juju.
    pub fn of(juju_version: &str) -> Capabilities {
        Capabilities {
            secrets: JujuVersion::parse(juju_version).is_some_and(JujuVersion::has_secrets),
        }
    }
}

/// An operator-facing message in the words of the Juju that runs the
/// charm: Juju 3 runs actions with `juju run` and shows them with `juju
/// show-task`; Juju 2.9 with `juju run-action` and `juju
/// show-action-output` (its `juju run` runs commands). Messages are written
/// in Juju 3's words; on 2.9 (or an unknown version) they are reworded.
pub fn operator_words(message: &str, juju_version: &str) -> String {
    let juju3 = JujuVersion::parse(juju_version).is_some_and(|v| v.major >= 3);
    if juju3 {
        message
            .replace("juju run-action ", "juju run ")
            .replace("juju show-action-output", "juju show-task")
    } else {
        message
            .replace("juju run-action ", "juju run ")
            .replace("juju run ", "juju run-action ")
            .replace("juju show-task", "juju show-action-output")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn messages_speak_the_running_jujus_verbs() {
        let m = "ready to restore: juju run-action etcd/0 restore; or juju run etcd/leader compact (see juju show-task 3)";
        assert_eq!(
            super::operator_words(m, "3.6.12"),
            "ready to restore: juju run etcd/0 restore; or juju run etcd/leader compact (see juju show-task 3)"
        );
        assert_eq!(
            super::operator_words(m, "2.9.49"),
            "ready to restore: juju run-action etcd/0 restore; or juju run-action etcd/leader compact (see juju show-action-output 3)"
        );
        assert_eq!(
            super::operator_words("no command here", "2.9.49"),
            "no command here"
        );
    }

    use super::*;

    #[test]
    fn versions_and_secrets() {
        assert!(!Capabilities::of("2.9.49").secrets);
        assert!(!Capabilities::of("3.0.3").secrets);
        assert!(Capabilities::of("3.1.0").secrets);
        assert!(Capabilities::of("3.6.12").secrets);
        assert!(Capabilities::of("4.0-beta2").secrets);
        assert!(!Capabilities::of("").secrets);
        assert!(!Capabilities::of("x.y").secrets);
        assert_eq!(
            JujuVersion::parse("3.1-rc1"),
            Some(JujuVersion {
                major: 3,
                minor: 1,
                patch: 0
            })
        );
    }
}
