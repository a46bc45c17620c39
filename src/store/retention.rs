//! Retention: which backups to keep, and why, as restic's `ApplyPolicy`.
//!
//! Pure: a listing (IDs with the manifest's creation time) and a [`Policy`]
//! go in, a [`Decision`] comes out; no clock, no store. The list is sorted
//! newest first by time (ties broken by ID, never by name order alone);
//! every rule then walks it with its own counter and keeps the newest
//! backup of each new bucket (`last`: every backup; `hourly`:
//! YYYY-MM-DD-HH; `daily`: YYYY-MM-DD; `weekly`: ISO year and week;
//! `monthly`: YYYY-MM) until its count is used up. A bucket rule that still
//! has counts left when the list ends also keeps the oldest backup, so
//! history is as long as the policy allows. An empty policy keeps
//! everything, and the newest backup is never removed.

use std::collections::BTreeMap;
use std::fmt;

/// The default `backup-retention`.
pub const DEFAULT_POLICY: &str = "last=24,daily=7,weekly=4";

/// One keep rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    Last,
    Hourly,
    Daily,
    Weekly,
    Monthly,
}

impl Rule {
    pub const ALL: [Rule; 5] = [
        Rule::Last,
        Rule::Hourly,
        Rule::Daily,
        Rule::Weekly,
        Rule::Monthly,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Rule::Last => "last",
            Rule::Hourly => "hourly",
            Rule::Daily => "daily",
            Rule::Weekly => "weekly",
            Rule::Monthly => "monthly",
        }
    }

    /// The bucket a time falls in; `last` puts every backup in its own.
    fn bucket(self, unix: i64, index: usize) -> i64 {
        let Ok(t) = time::OffsetDateTime::from_unix_timestamp(unix) else {
            // Outside the representable range: a bucket of its own.
            return i64::MIN + index as i64;
        };
        let (y, m, d, h) = (
            i64::from(t.year()),
            i64::from(u8::from(t.month())),
            i64::from(t.day()),
            i64::from(t.hour()),
        );
        match self {
            Rule::Last => index as i64,
            Rule::Hourly => ((y * 100 + m) * 100 + d) * 100 + h,
            Rule::Daily => (y * 100 + m) * 100 + d,
            Rule::Weekly => {
                let (iy, w, _) = t.to_iso_week_date();
                i64::from(iy) * 100 + i64::from(w)
            }
            Rule::Monthly => y * 100 + m,
        }
    }
}

/// `last=N,hourly=N,daily=N,weekly=N,monthly=N`; a rule left out (or 0) is
/// off.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    pub counts: BTreeMap<Rule, u32>,
}

/// Why a `backup-retention` value is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error("backup-retention: {0:?} is not RULE=N; write it like {DEFAULT_POLICY} (rules: last, hourly, daily, weekly, monthly)")]
    Syntax(String),
    #[error("backup-retention: {0:?} is not a rule; the rules are last, hourly, daily, weekly and monthly (e.g. {DEFAULT_POLICY})")]
    UnknownRule(String),
    #[error("backup-retention: {rule}={value:?} is not a whole number from 0 to 100000")]
    BadCount { rule: String, value: String },
    #[error("backup-retention: {0} is given twice; give each rule once")]
    Twice(String),
}

impl Policy {
    /// Parses the config value. Spaces around items are allowed; an empty
    /// value is refused (say `last=1000000` is not what anyone means).
    pub fn parse(s: &str) -> Result<Policy, PolicyError> {
        let mut counts = BTreeMap::new();
        if s.trim().is_empty() {
            return Err(PolicyError::Syntax(s.to_string()));
        }
        for item in s.split(',') {
            let item = item.trim();
            let (k, v) = item
                .split_once('=')
                .ok_or_else(|| PolicyError::Syntax(item.to_string()))?;
            let (k, v) = (k.trim(), v.trim());
            let rule = Rule::ALL
                .into_iter()
                .find(|r| r.name() == k)
                .ok_or_else(|| PolicyError::UnknownRule(k.to_string()))?;
            let n: u32 =
                v.parse()
                    .ok()
                    .filter(|n| *n <= 100_000)
                    .ok_or_else(|| PolicyError::BadCount {
                        rule: k.to_string(),
                        value: v.to_string(),
                    })?;
            if counts.insert(rule, n).is_some() {
                return Err(PolicyError::Twice(k.to_string()));
            }
        }
        counts.retain(|_, n| *n > 0);
        Ok(Policy { counts })
    }

    /// True when no rule is on: everything is kept.
    pub fn is_empty(&self) -> bool {
        self.counts.values().all(|n| *n == 0)
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .counts
            .iter()
            .map(|(r, n)| format!("{}={n}", r.name()))
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// A backup as retention sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub id: String,
    /// The manifest's `created`, as Unix seconds.
    pub time: i64,
}

/// What to keep (with the reasons) and what to remove, both newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    pub keep: Vec<(Candidate, Vec<String>)>,
    pub remove: Vec<Candidate>,
}

impl Decision {
    /// The reasons a backup is kept, joined (`last, daily`), or `None` if it
    /// is to be removed or unknown.
    pub fn reason(&self, id: &str) -> Option<String> {
        self.keep
            .iter()
            .find(|(c, _)| c.id == id)
            .map(|(_, r)| r.join(", "))
    }
}

/// Applies `policy` to `items`.
pub fn apply_policy(items: &[Candidate], policy: &Policy) -> Decision {
    let mut list: Vec<Candidate> = items.to_vec();
    list.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| b.id.cmp(&a.id)));
    list.dedup_by(|a, b| a.id == b.id);
    let mut out = Decision::default();
    if policy.is_empty() {
        out.keep = list
            .into_iter()
            .map(|c| (c, vec!["no policy".to_string()]))
            .collect();
        return out;
    }
    let mut left: BTreeMap<Rule, u32> = policy.counts.clone();
    let mut last_bucket: BTreeMap<Rule, i64> = BTreeMap::new();
    let n = list.len();
    for (i, c) in list.into_iter().enumerate() {
        let mut reasons = Vec::new();
        for (rule, count) in left.iter_mut() {
            if *count == 0 {
                continue;
            }
            let b = rule.bucket(c.time, i);
            let new_bucket = last_bucket.get(rule) != Some(&b);
            let oldest = i + 1 == n;
            if new_bucket || (oldest && *rule != Rule::Last) {
                *count -= 1;
                last_bucket.insert(*rule, b);
                reasons.push(if new_bucket {
                    rule.name().to_string()
                } else {
                    format!("oldest ({})", rule.name())
                });
            }
        }
        if i == 0 && reasons.is_empty() {
            // Unreachable with a non-empty policy; kept as the invariant.
            reasons.push("newest".to_string());
        }
        if reasons.is_empty() {
            out.remove.push(c);
        } else {
            out.keep.push((c, reasons));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn c(id: &str, time: i64) -> Candidate {
        Candidate {
            id: id.into(),
            time,
        }
    }

    const H: i64 = 3600;
    const D: i64 = 86_400;
    /// 2026-11-30T00:00:00Z, a Monday.
    const T0: i64 = 1_795_996_800;

    #[test]
    fn parses_and_refuses_with_advice() {
        let p = Policy::parse(DEFAULT_POLICY).unwrap();
        assert_eq!(p.counts[&Rule::Last], 24);
        assert_eq!(p.counts[&Rule::Daily], 7);
        assert_eq!(p.counts[&Rule::Weekly], 4);
        assert_eq!(p.to_string(), "last=24,daily=7,weekly=4");
        assert_eq!(
            Policy::parse(" last = 3 , monthly=2").unwrap().to_string(),
            "last=3,monthly=2"
        );
        assert!(Policy::parse("last=0").unwrap().is_empty());
        for bad in ["", "last", "yearly=1", "last=-1", "last=x", "last=1,last=2"] {
            let e = Policy::parse(bad).unwrap_err();
            assert!(e.to_string().starts_with("backup-retention"), "{e}");
        }
    }

    #[test]
    fn last_keeps_the_n_newest_by_time_not_name() {
        // Names sort the other way round from times.
        let items = [
            c("z", T0),
            c("a", T0 + 3 * H),
            c("m", T0 + H),
            c("b", T0 + 2 * H),
        ];
        let d = apply_policy(&items, &Policy::parse("last=3").unwrap());
        let kept: Vec<&str> = d.keep.iter().map(|(c, _)| c.id.as_str()).collect();
        assert_eq!(kept, ["a", "b", "m"]);
        assert_eq!(d.remove, vec![c("z", T0)]);
        assert_eq!(d.reason("a").as_deref(), Some("last"));
        assert_eq!(d.reason("z"), None);
    }

    #[test]
    fn daily_keeps_the_newest_of_each_day_and_the_oldest() {
        // Two backups a day for 4 days.
        let mut items = Vec::new();
        for day in 0..4 {
            items.push(c(&format!("d{day}-am"), T0 + day * D + 6 * H));
            items.push(c(&format!("d{day}-pm"), T0 + day * D + 18 * H));
        }
        let d = apply_policy(&items, &Policy::parse("daily=2").unwrap());
        let kept: Vec<&str> = d.keep.iter().map(|(c, _)| c.id.as_str()).collect();
        assert_eq!(kept, ["d3-pm", "d2-pm"]);
        // With counts left at the end, the oldest stays.
        let d = apply_policy(&items, &Policy::parse("daily=10").unwrap());
        let kept: Vec<&str> = d.keep.iter().map(|(c, _)| c.id.as_str()).collect();
        assert_eq!(kept, ["d3-pm", "d2-pm", "d1-pm", "d0-pm", "d0-am"]);
        assert_eq!(d.reason("d0-am").as_deref(), Some("oldest (daily)"));
    }

    #[test]
    fn weekly_and_monthly_use_iso_weeks_and_months() {
        // Sunday 2026-11-29 and Monday 2026-11-30 are in different ISO weeks
        // and the same month.
        let items = [c("sun", T0 - 12 * H), c("mon", T0 + 12 * H)];
        let d = apply_policy(&items, &Policy::parse("weekly=5").unwrap());
        assert_eq!(d.keep.len(), 2);
        let d = apply_policy(&items, &Policy::parse("monthly=1").unwrap());
        let kept: Vec<&str> = d.keep.iter().map(|(c, _)| c.id.as_str()).collect();
        assert_eq!(kept, ["mon"]);
        let both = apply_policy(&items, &Policy::parse("last=1,weekly=2").unwrap());
        assert_eq!(both.reason("mon").as_deref(), Some("last, weekly"));
        assert_eq!(both.reason("sun").as_deref(), Some("weekly"));
    }

    #[test]
    fn empty_policy_keeps_everything() {
        let items = [c("a", 1), c("b", 2)];
        let d = apply_policy(&items, &Policy::default());
        assert_eq!(d.keep.len(), 2);
        assert!(d.remove.is_empty());
    }

    fn arb_policy() -> impl Strategy<Value = Policy> {
        proptest::collection::btree_map(
            prop_oneof![
                Just(Rule::Last),
                Just(Rule::Hourly),
                Just(Rule::Daily),
                Just(Rule::Weekly),
                Just(Rule::Monthly)
            ],
            0u32..6,
            0..5,
        )
        .prop_map(|mut counts| {
            counts.retain(|_, n| *n > 0);
            Policy { counts }
        })
    }

    proptest! {
        #[test]
        fn partition_newest_kept_and_bounded(
            times in proptest::collection::vec(T0 - 400 * D..T0 + 400 * D, 0..60),
            policy in arb_policy(),
        ) {
            let items: Vec<Candidate> = times
                .iter()
                .enumerate()
                .map(|(i, t)| c(&format!("b{i:03}"), *t))
                .collect();
            let d = apply_policy(&items, &policy);
            // Every item is either kept or removed, once.
            prop_assert_eq!(d.keep.len() + d.remove.len(), items.len());
            let mut ids: Vec<&str> = d.keep.iter().map(|(c, _)| c.id.as_str())
                .chain(d.remove.iter().map(|c| c.id.as_str())).collect();
            ids.sort_unstable();
            ids.dedup();
            prop_assert_eq!(ids.len(), items.len());
            // The newest is never removed.
            if let Some(newest) = items.iter().max_by(|a, b| a.time.cmp(&b.time).then_with(|| a.id.cmp(&b.id))) {
                prop_assert!(d.reason(&newest.id).is_some());
            }
            // Every kept backup has a reason; no more are kept than the
            // rules allow (plus one oldest per bucket rule).
            prop_assert!(d.keep.iter().all(|(_, r)| !r.is_empty()));
            if !policy.is_empty() {
                let bound: u32 = policy.counts.values().sum::<u32>() + policy.counts.len() as u32;
                prop_assert!(d.keep.len() as u32 <= bound);
            }
            // last=N alone keeps exactly the N newest.
            if policy.counts.len() == 1 {
                if let Some(n) = policy.counts.get(&Rule::Last) {
                    prop_assert_eq!(d.keep.len(), items.len().min(*n as usize));
                    let newest_removed = d.remove.iter().map(|c| c.time).max();
                    let oldest_kept = d.keep.iter().map(|(c, _)| c.time).min();
                    if let (Some(r), Some(k)) = (newest_removed, oldest_kept) {
                        prop_assert!(r <= k);
                    }
                }
            }
            // Both lists are newest first.
            prop_assert!(d.keep.windows(2).all(|w| w[0].0.time >= w[1].0.time));
        }
    }
}
