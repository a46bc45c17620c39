//! A `tracing` subscriber that writes to stderr and forwards INFO and above
//! to `juju-log`, so `juju debug-log` shows what the charm did.
//!
//! The forwarding layer spawns `juju-log` directly rather than going through
//! `tracing` again, so a failing `juju-log` cannot recurse.

use std::fmt::Write as _;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context as LayerContext, SubscriberExt};
use tracing_subscriber::Layer;

use super::tools::{CliHookTools, HookTools, LogLevel};

/// Forwards events to `juju-log`.
struct JujuLogLayer {
    tools: CliHookTools,
}

#[derive(Default)]
struct MessageVisitor {
    text: String,
}

impl Visit for MessageVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.text, "{value:?}");
        } else {
            let _ = write!(self.text, " {}={value:?}", field.name());
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.text.push_str(value);
        } else {
            let _ = write!(self.text, " {}={value}", field.name());
        }
    }
}

impl<S: Subscriber> Layer<S> for JujuLogLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: LayerContext<'_, S>) {
        let level = match *event.metadata().level() {
            Level::ERROR => LogLevel::Error,
            Level::WARN => LogLevel::Warning,
            Level::INFO => LogLevel::Info,
            _ => return,
        };
        let mut v = MessageVisitor::default();
        event.record(&mut v);
        if let Err(e) = self.tools.juju_log(level, &v.text) {
            eprintln!("juju-log failed: {e}");
        }
    }
}

/// Installs the subscriber. Under Juju (`to_juju`), INFO and above go to
/// `juju-log` only: Juju also logs a hook's stderr, so writing both would
/// show every line twice. Outside Juju, everything goes to stderr.
pub fn init(to_juju: bool) {
    let registry = tracing_subscriber::registry();
    let result = if to_juju {
        tracing::subscriber::set_global_default(registry.with(JujuLogLayer {
            tools: CliHookTools::default(),
        }))
    } else {
        let fmt = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_target(false)
            .without_time();
        tracing::subscriber::set_global_default(registry.with(fmt))
    };
    if let Err(e) = result {
        eprintln!("cannot install the log subscriber: {e}");
    }
}
