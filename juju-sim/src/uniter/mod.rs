//! The unit agents. Each unit has its own agent process (`juju-sim agent
//! UNIT`, started when the unit is created) that runs the unit's hooks and
//! actions one at a time, concurrently with every other unit's agent:
//! - `agent`: the loop (what runs next, retries with back-off,
//!   update-status, commit at exit) and starting/stopping agents;
//! - `runner`: running one hook, action or exec for a unit;
//! - `lock`: the machine lock hooks, actions and exec share;
//! - `pending`: the writes a hook holds until it exits 0.

pub mod agent;
pub mod lock;
pub mod pending;
pub mod runner;

pub use runner::{kill_running, log_line, status, Agent, Ctx};
