//! The charm's own backup timer: `etcd-charm-backup.timer` fires at the
//! schedule's wall-clock ticks (`OnCalendar=`, UTC, `AccuracySec=1s` so
//! every unit fires together, `Persistent=true` so a tick missed while the
//! machine was down runs at boot) and starts `etcd-charm-backup.service`
//! (`Type=oneshot`), which runs the charm's own `dispatch` binary as
//! `dispatch backup-tick`, outside any hook: it needs no hook tool and
//! never holds Juju's machine lock.

use std::path::Path;

use super::process::CommandError;
use super::Service;

/// The timer's and the service's unit names.
pub const TIMER: &str = "etcd-charm-backup.timer";
pub const SERVICE: &str = "etcd-charm-backup.service";
/// Their unit paths.
pub const TIMER_FILE: &str = "/etc/systemd/system/etcd-charm-backup.timer";
pub const SERVICE_FILE: &str = "/etc/systemd/system/etcd-charm-backup.service";
/// The argument that makes `dispatch` run one tick.
pub const TICK_ARG: &str = "backup-tick";

/// The service unit: `dispatch backup-tick` with the unit's root.
pub fn render_service(dispatch: &Path, root: &Path) -> String {
    format!(
        "# Written by the etcd charm; changes here are overwritten.\n\
         [Unit]\n\
         Description=etcd backup tick (managed by the etcd charm)\n\
         After=etcd.service\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         Environment=ETCD_CHARM_ROOT={}\n\
         ExecStart={} {TICK_ARG}\n\
         Nice=10\n\
         IOSchedulingClass=best-effort\n\
         IOSchedulingPriority=7\n",
        quote(root),
        quote(dispatch)
    )
}

/// The timer unit for `OnCalendar=` lines.
pub fn render_timer(on_calendar: &[String]) -> String {
    let mut t = String::from(
        "# Written by the etcd charm; changes here are overwritten.\n\
         [Unit]\n\
         Description=etcd backups on the charm's backup-schedule\n\
         \n\
         [Timer]\n",
    );
    for c in on_calendar {
        t.push_str(&format!("OnCalendar={c}\n"));
    }
    t.push_str(
        "AccuracySec=1s\n\
         RandomizedDelaySec=0\n\
         Persistent=true\n\
         Unit=etcd-charm-backup.service\n\
         \n\
         [Install]\n\
         WantedBy=timers.target\n",
    );
    t
}

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

/// (Re)starts the timer after its files changed.
pub fn enable(service: &Service) -> Result<(), CommandError> {
    service.daemon_reload()?;
    service.unit_verb("enable", TIMER)?;
    service.unit_verb("restart", TIMER)
}

/// Stops and disables the timer (the files may stay).
pub fn disable(service: &Service) -> Result<(), CommandError> {
    service.unit_verb("stop", TIMER)?;
    service.unit_verb("disable", TIMER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_run_the_tick_at_the_ticks() {
        let s = render_service(Path::new("/charm/dispatch"), Path::new("/"));
        assert!(s.contains("\nType=oneshot\n"));
        assert!(s.contains("\nExecStart=/charm/dispatch backup-tick\n"));
        let t = render_timer(&["*-*-* *:*:00 UTC".into()]);
        assert!(t.contains("\nOnCalendar=*-*-* *:*:00 UTC\n"));
        assert!(t.contains("\nPersistent=true\n"));
    }
}
