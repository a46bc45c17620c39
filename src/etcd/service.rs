//! Our own `etcd.service` systemd unit and the `systemctl` calls around it.
//!
//! The unit lives in `/etc/systemd/system`, where it shadows the unit that
//! Debian's `etcd-server` package ships, so only one etcd ever runs. Its
//! `ExecStart` names resolved paths, so whatever runs it needs to know
//! nothing about the unit root.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::process::{self, CommandError};

/// The systemd unit name.
pub const UNIT_NAME: &str = "etcd.service";

/// Quotes a path for `ExecStart` when it needs it.
fn quote(p: &Path) -> String {
    let s = p.display().to_string();
    if s.chars()
        .any(|c| c.is_whitespace() || c == '"' || c == '\\')
    {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        s
    }
}

/// Renders the unit file.
pub fn render_unit(etcd: &Path, config_file: &Path) -> String {
    format!(
        "# Written by the etcd charm; changes here are overwritten.\n\
         [Unit]\n\
         Description=etcd key-value store (managed by the etcd charm)\n\
         Documentation=https://etcd.io/docs/\n\
         After=network-online.target\n\
         Wants=network-online.target\n\
         \n\
         [Service]\n\
         Type=notify\n\
         ExecStart={} --config-file {}\n\
         Restart=on-failure\n\
         RestartSec=5s\n\
         TimeoutStartSec=120\n\
         LimitNOFILE=65536\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n",
        quote(etcd),
        quote(config_file)
    )
}

/// The binary a unit file's `ExecStart=` runs (its first word, unquoted
/// as [`render_unit`] quotes it): which etcd build the unit starts.
pub fn exec_start_binary(unit_text: &str) -> Option<PathBuf> {
    let line = unit_text
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("ExecStart="))?
        .trim_start();
    let word = if let Some(rest) = line.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = rest.chars();
        loop {
            match chars.next()? {
                '"' => break out,
                '\\' => out.push(chars.next()?),
                c => out.push(c),
            }
        }
    } else {
        line.split_whitespace().next()?.to_string()
    };
    (!word.is_empty()).then(|| PathBuf::from(word))
}

/// `systemctl` for our unit.
#[derive(Debug, Clone)]
pub struct Service {
    systemctl: PathBuf,
}

impl Default for Service {
    fn default() -> Self {
        Service {
            systemctl: PathBuf::from("systemctl"),
        }
    }
}

impl Service {
    /// A `Service` that runs the given `systemctl` (the default finds it on PATH).
    pub fn with_systemctl(systemctl: impl Into<PathBuf>) -> Self {
        Service {
            systemctl: systemctl.into(),
        }
    }

    fn run(&self, args: &[&str]) -> Result<(), CommandError> {
        process::run(Command::new(&self.systemctl).args(args)).map(drop)
    }

    /// `systemctl VERB UNIT` for another unit of the charm's own (the
    /// backup timer, [`super::timer`]).
    pub fn unit_verb(&self, verb: &str, unit: &str) -> Result<(), CommandError> {
        self.run(&[verb, unit])
    }

    pub fn daemon_reload(&self) -> Result<(), CommandError> {
        self.run(&["daemon-reload"])
    }
    pub fn enable(&self) -> Result<(), CommandError> {
        self.run(&["enable", UNIT_NAME])
    }
    pub fn disable(&self) -> Result<(), CommandError> {
        self.run(&["disable", UNIT_NAME])
    }
    pub fn start(&self) -> Result<(), CommandError> {
        self.run(&["start", UNIT_NAME])
    }
    pub fn stop(&self) -> Result<(), CommandError> {
        self.run(&["stop", UNIT_NAME])
    }
    pub fn restart(&self) -> Result<(), CommandError> {
        self.run(&["restart", UNIT_NAME])
    }

    /// `systemctl is-active`: exit 0 means active; anything else is not.
    pub fn is_active(&self) -> Result<bool, CommandError> {
        let mut cmd = Command::new(&self.systemctl);
        cmd.args(["is-active", "--quiet", UNIT_NAME]);
        let status = cmd.status().map_err(|source| CommandError::Spawn {
            command: format!("{} is-active {UNIT_NAME}", self.systemctl.display()),
            source,
        })?;
        Ok(status.success())
    }

    /// Waits until the unit is no longer active, up to `timeout`.
    pub fn wait_inactive(&self, timeout: Duration) -> Result<bool, CommandError> {
        let deadline = Instant::now() + timeout;
        loop {
            if !self.is_active()? {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_runs_etcd_with_the_config_file() {
        let etcd = Path::new("/var/lib/etcd-charm/bin/3.5.30-0123456789ab/etcd");
        let u = render_unit(etcd, Path::new("/etc/etcd-charm/etcd.conf.yml"));
        assert!(u.contains(
            "\nExecStart=/var/lib/etcd-charm/bin/3.5.30-0123456789ab/etcd --config-file /etc/etcd-charm/etcd.conf.yml\n"
        ));
        assert!(u.contains("WantedBy=multi-user.target"));
        assert_eq!(exec_start_binary(&u).as_deref(), Some(etcd));
        let odd = Path::new("/a b/\"q\"\\/etcd");
        let q = render_unit(odd, Path::new("/c"));
        assert!(
            q.contains("ExecStart=\"/a b/\\\"q\\\"\\\\/etcd\" --config-file /c"),
            "{q}"
        );
        assert_eq!(exec_start_binary(&q).as_deref(), Some(odd));
        assert_eq!(exec_start_binary("[Service]\nType=notify\n"), None);
    }
}
