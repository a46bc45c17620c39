//! `juju-sim`: a Juju controller and unit-agent simulator for charm tests.
//!
//! One multicall binary whose role comes from argv[0]'s basename:
//! `juju-sim` is the operator CLI; a hook-tool name (see
//! [`tools::TOOL_NAMES`]) is that hook tool; `systemctl` is the systemd
//! stand-in. On deploy the simulator creates `$JUJU_SIM_HOME/tools/` with
//! symlinks to itself and puts it first in every hook's PATH.
//!
//! Juju verbs (see `verbs/`): `deploy`, `add-unit`, `remove-unit`
//! (`--force --no-wait`, `--no-prompt`), `remove-application`, `integrate`
//! (`relate`), `config`, `attach-resource`, `run-action`,
//! `show-action-output` (`show-task`, `show-operation`), `run` (Juju 3:
//! an action; Juju 2.9: a command), `exec` (Juju 3),
//! `status`, `show-unit`, `version`, `scp`, `debug-log`, `destroy-model`,
//! `upgrade-model`; `--model M` is accepted on every verb. Verbs return
//! once their work is queued; each unit's agent (`juju-sim agent UNIT`, a
//! detached process, see `uniter/`) runs it.
//!
//! Extras for tests (not Juju verbs): `wait-idle [--timeout D]`,
//! `run-hook UNIT HOOK`, `resolved UNIT [--no-retry]`,
//! `inject-fault resource-get APP|APP/N [RESOURCE] --count N`.
//!
//! State: `$JUJU_SIM_HOME` (default `~/.local/share/juju-sim`) holds
//! `model.json` (0600, under a flock on `model.lock`), `charms/`,
//! `resources/`, `tools/`, `machines/<n>.lock` (the machine locks) and
//! `units/<app>-<n>/{root,charm,agent.log,agent.pid,agent.lock,systemd}`.
//! What differs between Juju 2.9 and 3.x lives in `profile.rs`.
//! `systemctl` does not emulate `Restart=`.

mod addr;
mod charm;
mod model;
mod profile;
mod systemctl;
mod timer;
mod tools;
mod uniter;
mod util;
mod verbs;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let argv0 = args.first().cloned().unwrap_or_default();
    let base = std::path::Path::new(&argv0)
        .file_name()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    let rest = args.get(1..).unwrap_or_default();
    let code = if base == "systemctl" {
        systemctl::main(rest)
    } else if tools::TOOL_NAMES.contains(&base.as_str()) {
        tools::main(&base, rest)
    } else {
        verbs::main(args)
    };
    ExitCode::from(u8::try_from(code.clamp(0, 255)).unwrap_or(1))
}
