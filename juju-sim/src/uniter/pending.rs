//! A hook's (or action's) writes that Juju holds back until it exits:
//! `relation-set`, `open-port`/`close-port` and the `secret-*` changes are
//! recorded here by the hook tools and applied by [`commit`] when the hook
//! exits 0, or thrown away when it fails (Juju's `HookContext.Flush`).
//! `leader-set`, `status-set` and `action-set` are not pending: Juju sends
//! them at once.

use crate::model::{Model, Op, Secret};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One `relation-set` call.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct RelationSet {
    /// The relation's key in the model.
    pub relation: String,
    /// Whether the application bag was written (`--app`).
    pub app: bool,
    pub pairs: Vec<(String, String)>,
}

/// One secret change.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum SecretChange {
    Add {
        secret: SecretDraft,
    },
    Set {
        id: String,
        content: Option<BTreeMap<String, String>>,
        label: Option<String>,
        description: Option<String>,
    },
    Remove {
        id: String,
        revision: Option<usize>,
    },
    Grant {
        id: String,
        to: String,
    },
    Revoke {
        id: String,
        from: String,
    },
}

/// A secret created in this hook (serialisable copy of [`Secret`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct SecretDraft {
    pub id: String,
    pub owner_kind: String,
    pub owner: String,
    pub label: Option<String>,
    pub description: Option<String>,
    pub content: BTreeMap<String, String>,
}

/// Everything one hook or action context has written but not committed.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Pending {
    /// The context that owns these writes (`JUJU_SIM_CONTEXT`); tools of
    /// any other context (a process left over from an ended hook) are
    /// refused.
    pub context: String,
    pub relation_sets: Vec<RelationSet>,
    /// (open?, `PORT[-PORT]/PROTO` or `icmp`)
    pub ports: Vec<(bool, String)>,
    pub secrets: Vec<SecretChange>,
}

impl Pending {
    /// A fresh, empty set of writes for `context`.
    pub fn new(context: &str) -> Pending {
        Pending {
            context: context.to_string(),
            ..Pending::default()
        }
    }

    /// The bag `unit` would read back for its own side of `relation`,
    /// with this context's writes laid over what is committed.
    pub fn overlay(&self, relation: &str, app: bool, bag: &mut BTreeMap<String, String>) {
        for rs in self
            .relation_sets
            .iter()
            .filter(|r| r.relation == relation && r.app == app)
        {
            apply_pairs(bag, &rs.pairs);
        }
    }

    /// The secret content this context would see with `--peek`/`--refresh`:
    /// the newest pending revision, if any.
    pub fn secret_content(&self, id: &str) -> Option<BTreeMap<String, String>> {
        let mut out = None;
        for c in &self.secrets {
            match c {
                SecretChange::Add { secret } if secret.id == id => {
                    out = Some(secret.content.clone())
                }
                SecretChange::Set {
                    id: i,
                    content: Some(content),
                    ..
                } if i == id => out = Some(content.clone()),
                _ => {}
            }
        }
        out
    }

    /// The secret created in this context with `id`, if any.
    pub fn draft(&self, id: &str) -> Option<&SecretDraft> {
        self.secrets.iter().find_map(|c| match c {
            SecretChange::Add { secret } if secret.id == id => Some(secret),
            _ => None,
        })
    }

    /// The id of a secret created here with `label`, if any.
    pub fn draft_by_label(&self, label: &str) -> Option<&SecretDraft> {
        self.secrets.iter().find_map(|c| match c {
            SecretChange::Add { secret } if secret.label.as_deref() == Some(label) => Some(secret),
            _ => None,
        })
    }
}

/// Applies `key=value` pairs to a bag (an empty value deletes the key);
/// true when the bag changed.
pub fn apply_pairs(bag: &mut BTreeMap<String, String>, pairs: &[(String, String)]) -> bool {
    let before = bag.clone();
    for (k, v) in pairs {
        if v.is_empty() {
            bag.remove(k);
        } else {
            bag.insert(k.clone(), v.clone());
        }
    }
    *bag != before
}

/// Applies `unit`'s pending writes to the model, queueing the hooks they
/// cause on other units (relation-changed), in the order they were made.
pub fn commit(m: &mut Model, unit: &str, pending: Pending) {
    let app = unit.split('/').next().unwrap_or("").to_string();
    for rs in pending.relation_sets {
        commit_relation_set(m, unit, &app, &rs);
    }
    if let Some(u) = m.units.get_mut(unit) {
        for (open, p) in pending.ports {
            if open {
                u.ports.insert(p);
            } else {
                u.ports.remove(&p);
            }
        }
    }
    for c in pending.secrets {
        commit_secret(m, c);
    }
}

fn commit_relation_set(m: &mut Model, unit: &str, app: &str, rs: &RelationSet) {
    let Some(other_app) = m
        .relations
        .get(&rs.relation)
        .map(|r| r.other_app(app).to_string())
    else {
        return; // the relation went away while the hook ran
    };
    let others: Vec<String> = m
        .live_units(&other_app)
        .into_iter()
        .filter(|u| u != unit)
        .collect();
    let Some(rel) = m.relations.get_mut(&rs.relation) else {
        return;
    };
    let their_ep = rel.endpoint_of(&other_app).to_string();
    let mut events = Vec::new();
    if rs.app {
        if apply_pairs(rel.app_data.entry(app.to_string()).or_default(), &rs.pairs) {
            for u in &others {
                events.push(Op::relation(
                    u,
                    &format!("{their_ep}-relation-changed"),
                    &rs.relation,
                    app,
                    None,
                ));
            }
        }
    } else if apply_pairs(
        rel.unit_data.entry(unit.to_string()).or_default(),
        &rs.pairs,
    ) {
        for u in &others {
            if rel.views.get(u).is_some_and(|v| v.contains(unit)) {
                events.push(Op::relation(
                    u,
                    &format!("{their_ep}-relation-changed"),
                    &rs.relation,
                    app,
                    Some(unit),
                ));
            }
        }
    }
    for e in events {
        m.push(e);
    }
}

fn commit_secret(m: &mut Model, c: SecretChange) {
    match c {
        SecretChange::Add { secret } => {
            m.secrets.insert(
                secret.id.clone(),
                Secret {
                    id: secret.id,
                    owner_kind: secret.owner_kind,
                    owner: secret.owner,
                    label: secret.label,
                    description: secret.description,
                    revisions: vec![secret.content],
                    grants: Default::default(),
                },
            );
        }
        SecretChange::Set {
            id,
            content,
            label,
            description,
        } => {
            if let Some(s) = m.secrets.get_mut(&id) {
                if let Some(c) = content {
                    s.revisions.push(c);
                }
                if label.is_some() {
                    s.label = label;
                }
                if description.is_some() {
                    s.description = description;
                }
            }
        }
        SecretChange::Remove { id, revision } => match revision {
            None => {
                m.secrets.remove(&id);
            }
            Some(r) => {
                if let Some(s) = m.secrets.get_mut(&id) {
                    // Revisions are numbered from 1; a removed one reads
                    // back as empty content, never as another revision.
                    if let Some(slot) = r.checked_sub(1).and_then(|i| s.revisions.get_mut(i)) {
                        slot.clear();
                    }
                }
            }
        },
        SecretChange::Grant { id, to } => {
            if let Some(s) = m.secrets.get_mut(&id) {
                s.grants.insert(to);
            }
        }
        SecretChange::Revoke { id, from } => {
            if let Some(s) = m.secrets.get_mut(&id) {
                s.grants.remove(&from);
            }
        }
    }
}
