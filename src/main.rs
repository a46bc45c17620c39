//! `dispatch`: the one binary Juju runs for every hook and action.
//!
//! It reads the context, routes to a handler and owns the exit-code policy:
//! 0 when the hook succeeded or the action ran (even if it reported
//! `action-fail`), 1 when a hook failed and Juju should retry it.

use std::process::ExitCode;

use etcd_charm::charm::{self, Charm};
use etcd_charm::etcd::Root;
use etcd_charm::juju::{log, CliHookTools, Context};

fn main() -> ExitCode {
    let argv0 = std::env::args().next().unwrap_or_default();
    // The backup timer's service: one tick, outside hook context.
    if std::env::args().nth(1).as_deref() == Some(etcd_charm::etcd::timer::TICK_ARG) {
        // INFO and above only: the HTTP stack's DEBUG/TRACE lines are noise
        // (and may show request headers).
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_writer(std::io::stderr)
            .with_target(false)
            .try_init();
        return charm::backup::tick_main(Root::from_env());
    }
    let ctx = match Context::from_env(&argv0) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("etcd charm: {e}");
            return ExitCode::from(2);
        }
    };
    log::init(true);
    let tools = CliHookTools::default();
    let charm = Charm::new(&ctx, &tools, Root::from_env());
    match charm::dispatch(&charm) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}
