//! Automatic repair of a failed member (config
//! `auto-replace-failed-members`, default true, and
//! `failed-member-timeout`, default `10m`), after kube-aws' `etcdadm
//! check`.
//!
//! - Every unit reports its own member's health in its peer bag on each
//!   hook: `member-health` (`ok`, or why not) and, while it fails,
//!   `member-failed-since` (Unix seconds, kept from the first failure).
//! - The leader orders the replacement of a member that has failed for
//!   longer than the timeout by writing `repair-order=UNIT@TIME` in the
//!   peer application bag: never more than one at a time, and only when
//!   the others keep quorum without it. The order stays until the unit
//!   reports its member healthy again (or is gone).
//! - The ordered unit replaces its own member exactly as the
//!   `replace-member` action does (`replace.rs`, with `force`), once per
//!   order. Its status, its log and the leader's log say what was replaced
//!   and why.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context as _, Result};

use super::replace::quorum_view;
use super::state::LocalState;
use super::Charm;
use crate::etcd::EtcdClient;
use crate::juju::Status;

/// Unit-bag keys of the health report.
pub const HEALTH_KEY: &str = "member-health";
pub const FAILED_SINCE_KEY: &str = "member-failed-since";
/// Application-bag key of the leader's order.
pub const ORDER_KEY: &str = "repair-order";
const OK: &str = "ok";

/// `10m`, `30s`, `1h`, `90` (seconds) → seconds.
pub fn parse_duration(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num.parse().ok()?;
    let mult = match unit.trim() {
        "s" | "sec" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        _ => return None,
    };
    n.checked_mul(mult)
}

fn unix_now() -> i64 {
    super::snapshot::now_unix()
}

impl Charm<'_> {
    /// `auto-replace-failed-members` and `failed-member-timeout` (seconds).
    fn repair_config(&self) -> Result<(bool, u64)> {
        let config = self
            .tools
            .config_get()
            .context("cannot read the charm config")?;
        let auto = match config.get("auto-replace-failed-members") {
            Some(serde_json::Value::Bool(b)) => *b,
            Some(serde_json::Value::String(s)) => s != "false",
            _ => true,
        };
        let raw = config
            .get("failed-member-timeout")
            .and_then(|v| v.as_str())
            .unwrap_or("10m");
        let timeout = parse_duration(raw).unwrap_or_else(|| {
            tracing::warn!(
                "failed-member-timeout={raw:?} is not a duration such as 10m, 90s or 1h; using 10m"
            );
            600
        });
        Ok((auto, timeout))
    }

    /// Why this unit's member is not healthy, or `None` when it is: etcd
    /// runs, serves, and no CORRUPT alarm names it.
    fn own_member_failure(&self, state: &LocalState) -> Result<Option<String>> {
        let Some(applied) = &state.applied else {
            return Ok(None);
        };
        if !self
            .service
            .is_active()
            .context("systemctl is-active failed")?
        {
            return Ok(Some("etcd is not running".into()));
        }
        let tls = self.client_tls()?;
        let mut c = match EtcdClient::connect(&applied.client_url, &tls, Duration::from_secs(3)) {
            Ok(c) => c,
            Err(e) => return Ok(Some(format!("etcd does not answer: {e}"))),
        };
        let st = match c.status() {
            Ok(s) => s,
            Err(e) => return Ok(Some(format!("etcd does not answer: {e}"))),
        };
        if st.is_learner {
            return Ok(None);
        }
        if let Err(e) = c.serving() {
            return Ok(Some(format!("etcd does not serve: {e}")));
        }
        if c.alarms()
            .map(|a| {
                a.iter()
                    .any(|a| a.member_id == st.member_id && a.kind == "CORRUPT")
            })
            .unwrap_or(false)
        {
            return Ok(Some("etcd raised CORRUPT for this member".into()));
        }
        Ok(None)
    }

    /// Publishes this unit's member health in its peer bag.
    pub(crate) fn report_member_health(&self, state: &LocalState) -> Result<()> {
        let Some(peer_id) = self.peer_relation()? else {
            return Ok(());
        };
        if state.applied.is_none() || state.left {
            return Ok(());
        }
        let failure = self.own_member_failure(state)?;
        let mine = self
            .tools
            .relation_get(&peer_id, &self.ctx.unit_name, false)
            .context("cannot read this unit's peer data")?;
        let mut bag = BTreeMap::new();
        match failure {
            None => {
                bag.insert(HEALTH_KEY.to_string(), OK.to_string());
                bag.insert(FAILED_SINCE_KEY.to_string(), String::new());
            }
            Some(why) => {
                bag.insert(HEALTH_KEY.to_string(), why);
                let since = mine
                    .get(FAILED_SINCE_KEY)
                    .filter(|s| !s.is_empty())
                    .cloned()
                    .unwrap_or_else(|| unix_now().to_string());
                bag.insert(FAILED_SINCE_KEY.to_string(), since);
            }
        }
        // The bag reads back without empty keys.
        let same = bag
            .iter()
            .all(|(k, v)| mine.get(k).map(String::as_str).unwrap_or("") == v);
        if !same {
            self.tools
                .relation_set(&peer_id, false, &bag)
                .context("cannot publish this member's health")?;
        }
        Ok(())
    }

    /// On the leader: clears a fulfilled order, or orders the replacement
    /// of the member that has failed longest past the timeout.
    pub(crate) fn tend_repairs(&self, peer_id: &str, own_url: &str) -> Result<()> {
        let (auto, timeout) = self.repair_config()?;
        let app = self.peer_app_data(peer_id)?;
        let units = self
            .tools
            .relation_list(peer_id)
            .context("cannot list the peer units")?;
        let mut bags = BTreeMap::new();
        for u in units.iter().chain(std::iter::once(&self.ctx.unit_name)) {
            let bag = self.peer_bag(peer_id, u)?;
            bags.insert(u.clone(), bag);
        }
        if let Some(order) = app.get(ORDER_KEY).filter(|o| !o.is_empty()) {
            let unit = order.split('@').next().unwrap_or_default();
            let done = match bags.get(unit) {
                None => true,
                Some(b) => b.get(HEALTH_KEY).map(String::as_str) == Some(OK),
            };
            if done {
                tracing::info!("the ordered replacement of {unit}'s member is done: it is healthy");
                let mut data = BTreeMap::new();
                data.insert(ORDER_KEY.to_string(), String::new());
                self.tools
                    .relation_set(peer_id, true, &data)
                    .context("cannot clear the repair order")?;
            }
            // One at a time.
            return Ok(());
        }
        if !auto {
            return Ok(());
        }
        let now = unix_now();
        let due = bags
            .iter()
            .filter_map(|(u, b)| {
                let since: i64 = b.get(FAILED_SINCE_KEY)?.parse().ok()?;
                (now - since >= i64::try_from(timeout).unwrap_or(i64::MAX)).then(|| {
                    (
                        since,
                        u.clone(),
                        b.get(HEALTH_KEY).cloned().unwrap_or_default(),
                        b.get("member-name").cloned().unwrap_or_default(),
                    )
                })
            })
            .min();
        let Some((since, unit, why, member)) = due else {
            return Ok(());
        };
        // Only when the others keep quorum without it.
        let tls = self.client_tls()?;
        let mut c = EtcdClient::connect(own_url, &tls, Duration::from_secs(5))
            .context("cannot reach this unit's etcd")?;
        let members = c.members().context("cannot list etcd's members")?;
        let id = members.iter().find(|m| m.name == member).map(|m| m.id);
        let view = quorum_view(&members, id, &tls);
        let learner = members.iter().any(|m| Some(m.id) == id && m.is_learner);
        if !(view.can_lose() || (learner && view.serving.len() * 2 > view.voters)) {
            tracing::warn!(
                "not replacing {unit}'s failed member {member}: the others would lose quorum ({} of {} voters serve)",
                view.serving.len(),
                view.voters
            );
            return Ok(());
        }
        tracing::warn!(
            "replacing {unit}'s member {member}: it has failed since {} s ago ({why}), longer than failed-member-timeout ({timeout} s)",
            now - since
        );
        let mut data = BTreeMap::new();
        data.insert(ORDER_KEY.to_string(), format!("{unit}@{now}"));
        self.tools
            .relation_set(peer_id, true, &data)
            .context("cannot order the replacement")?;
        Ok(())
    }

    /// On every unit, early in reconcile: carries out the leader's order
    /// to replace this unit's member, once per order. Returns whether it
    /// acted (the caller then has nothing more to do in this hook).
    pub(crate) fn follow_repair_order(&self, state: &mut LocalState) -> Result<bool> {
        let Some(peer_id) = self.peer_relation()? else {
            return Ok(false);
        };
        let app = self.peer_app_data(&peer_id)?;
        let Some(order) = app.get(ORDER_KEY).filter(|o| !o.is_empty()).cloned() else {
            return Ok(false);
        };
        let (unit, _) = order.split_once('@').unwrap_or((order.as_str(), ""));
        if unit != self.ctx.unit_name || state.repair_taken == order {
            return Ok(false);
        }
        let previous = std::mem::replace(&mut state.repair_taken, order.clone());
        self.save_state(state)?;
        let why = self
            .tools
            .relation_get(&peer_id, &self.ctx.unit_name, false)
            .ok()
            .and_then(|b| b.get(HEALTH_KEY).cloned())
            .unwrap_or_default();
        tracing::warn!("the leader ordered the replacement of this unit's failed member ({why})");
        self.tools
            .status_set(
                &Status::maintenance(format!(
                    "Replacing this unit's failed member ({why}), as ordered by the leader"
                )),
                false,
            )
            .context("cannot set the unit's status")?;
        match self.replace_own_member(true) {
            Ok(results) => {
                let detail: Vec<String> = results.iter().map(|(k, v)| format!("{k}={v}")).collect();
                tracing::warn!("replaced this unit's failed member: {}", detail.join(" "));
                *state = self.load_state()?;
                Ok(true)
            }
            Err(e) => {
                // Another order (or this one, after the leader renews it)
                // tries again.
                let mut s = self.load_state()?;
                s.repair_taken = previous;
                self.save_state(&s)?;
                *state = s;
                tracing::error!("cannot replace this unit's failed member: {e:#}");
                self.tools
                    .status_set(
                        &Status::blocked(format!(
                            "Cannot replace this unit's failed member: {e:#}"
                        )),
                        false,
                    )
                    .context("cannot set the unit's status")?;
                Ok(true)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10m"), Some(600));
        assert_eq!(parse_duration("30s"), Some(30));
        assert_eq!(parse_duration("1h"), Some(3600));
        assert_eq!(parse_duration("90"), Some(90));
        assert_eq!(parse_duration("ten"), None);
        assert_eq!(parse_duration("5d"), None);
    }
}
