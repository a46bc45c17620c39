//! `juju-sim`: a Juju controller and unit-agent simulator for charm tests.
//!
//! One multicall binary whose role comes from argv[0]'s basename:
//! `juju-sim` is the operator CLI; a hook-tool name (see
//! [`tools::TOOL_NAMES`]) is that hook tool; `systemctl` is the systemd
//! stand-in. On deploy the simulator creates `$JUJU_SIM_HOME/tools/` with
//! symlinks to itself and puts it first in every hook's PATH.
//!
//! Juju verbs: `deploy CHARM [APP] [-n N] [--resource N=P]... [--config K=V]...`,
//! `add-unit APP [-n N]`, `remove-unit UNIT...`, `remove-application APP`,
//! `config APP [KEY | K=V... | --reset K]`, `attach-resource APP NAME=PATH`,
//! `run-action UNIT ACTION [K=V...] [--params F] [--string-args] [--wait]`
//! (2.9), `show-action-output ID` (aliases `show-task`, `show-operation`;
//! waits for the task), `run UNIT ACTION [K=V...] [--params F]
//! [--string-args] [--background] [--format plain|yaml|json]` (3.x; values
//! are parsed as YAML like Juju's, except that a string-typed parameter keeps
//! its text),
//! `status [--format json|yaml]`, `scp`, `debug-log [--replay] [--include U]
//! [--lines N]`, `destroy-model [-y] [--destroy-storage]`.
//!
//! Extras for tests (not Juju verbs): `run-hook UNIT HOOK`, `resolved UNIT`
//! (retries the failed hook), `exec --unit UNIT -- CMD...` (like `juju exec`).
//!
//! State: `$JUJU_SIM_HOME` (default `~/.local/share/juju-sim`) holds
//! `model.json` (under a flock on `model.lock`), `charms/`, `resources/`,
//! `tools/` and `units/<app>-<n>/{root,charm,agent.log,systemd,uniter.lock}`.
//! Hooks on a unit are serialized by `uniter.lock`; actions run without it
//! (so concurrent actions reach the charm's own lock). `run-action` runs the
//! action synchronously and always exits 0, also with `--wait` when the
//! action failed (Juju 2.9); `run` exits 1 when it failed (Juju 3).
//! `systemctl` does not emulate `Restart=`.

mod addr;
mod agent;
mod charm;
mod cli;
mod model;
mod systemctl;
mod timer;
mod tools;
mod util;

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
        cli::main(args)
    };
    ExitCode::from(u8::try_from(code.clamp(0, 255)).unwrap_or(1))
}
