//! `backup-schedule`: an interval (`15m`, `1h`, `1d`) aligned to wall-clock
//! multiples of itself in UTC, or a 5-field cron expression (minute hour
//! day-of-month month day-of-week, UTC), or `off`.
//!
//! Pure (times are passed in). Every unit's timer fires at the same
//! wall-clock ticks ([`Schedule::on_calendar`] renders them for systemd),
//! and the unit that takes the backup names it after the tick
//! ([`Schedule::tick_at_or_before`]), so two takers in a leadership race
//! write the same name.

use std::fmt::Write as _;

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// Every `n` seconds from midnight UTC; `n` divides a day and is a
    /// whole number of minutes.
    Interval(i64),
    Cron(Cron),
}

/// A cron expression, each field the set of allowed values (`None`: any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minute: Option<Vec<u32>>,
    hour: Option<Vec<u32>>,
    dom: Option<Vec<u32>>,
    month: Option<Vec<u32>>,
    /// 0 = Sunday … 6 = Saturday.
    dow: Option<Vec<u32>>,
}

/// Why a `backup-schedule` value is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScheduleError {
    #[error("backup-schedule {0:?} is not an interval (15m, 1h, 1d), a 5-field cron expression (\"0 */6 * * *\") or off")]
    Syntax(String),
    #[error("backup-schedule {0:?}: an interval must be whole minutes that divide a day evenly (1m, 5m, 15m, 30m, 1h, 2h, 6h, 12h, 1d); use a cron expression for other times")]
    Uneven(String),
    #[error(
        "backup-schedule {spec:?}: the cron field {field} ({value:?}) is out of range or malformed"
    )]
    CronField {
        spec: String,
        field: &'static str,
        value: String,
    },
}

const DAY: i64 = 86_400;

fn cron_field(
    spec: &str,
    field: &'static str,
    s: &str,
    min: u32,
    max: u32,
) -> Result<Option<Vec<u32>>, ScheduleError> {
    let bad = || ScheduleError::CronField {
        spec: spec.to_string(),
        field,
        value: s.to_string(),
    };
    if s == "*" {
        return Ok(None);
    }
    let mut out = Vec::new();
    for item in s.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, st)) => (
                r,
                st.parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(bad)?,
            ),
            None => (item, 1),
        };
        let (a, b) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?)
        } else {
            let v: u32 = range.parse().map_err(|_| bad())?;
            (v, if item.contains('/') { max } else { v })
        };
        if a < min || b > max || a > b {
            return Err(bad());
        }
        out.extend((a..=b).step_by(step as usize));
    }
    out.sort_unstable();
    out.dedup();
    Ok(Some(out))
}

/// (year, month, day) of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn list(v: &Option<Vec<u32>>, width: usize) -> String {
    match v {
        None => "*".to_string(),
        Some(v) => v
            .iter()
            .map(|n| format!("{n:0width$}"))
            .collect::<Vec<_>>()
            .join(","),
    }
}

impl Cron {
    fn matches_minute(&self, t: i64) -> bool {
        let days = t.div_euclid(DAY);
        let (_, month, dom) = civil_from_days(days);
        // 1970-01-01 was a Thursday (4 with Sunday = 0).
        let dow = (days + 4).rem_euclid(7) as u32;
        let secs = t.rem_euclid(DAY);
        let (h, m) = ((secs / 3600) as u32, ((secs % 3600) / 60) as u32);
        let ok = |f: &Option<Vec<u32>>, v: u32| f.as_ref().is_none_or(|f| f.contains(&v));
        // Cron: when both day fields are restricted, either may match.
        let day_ok = match (&self.dom, &self.dow) {
            (Some(_), Some(_)) => ok(&self.dom, dom) || ok(&self.dow, dow),
            _ => ok(&self.dom, dom) && ok(&self.dow, dow),
        };
        ok(&self.minute, m) && ok(&self.hour, h) && ok(&self.month, month) && day_ok
    }
}

impl Schedule {
    /// Parses the config value; `Ok(None)` for `off`.
    pub fn parse(s: &str) -> Result<Option<Schedule>, ScheduleError> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        let fields: Vec<&str> = t.split_whitespace().collect();
        if fields.len() == 5 {
            let f = |i: usize, name, min, max| cron_field(t, name, fields[i], min, max);
            let mut dow = f(4, "day-of-week", 0, 7)?;
            if let Some(d) = dow.as_mut() {
                for v in d.iter_mut() {
                    if *v == 7 {
                        *v = 0;
                    }
                }
                d.sort_unstable();
                d.dedup();
            }
            return Ok(Some(Schedule::Cron(Cron {
                minute: f(0, "minute", 0, 59)?,
                hour: f(1, "hour", 0, 23)?,
                dom: f(2, "day-of-month", 1, 31)?,
                month: f(3, "month", 1, 12)?,
                dow,
            })));
        }
        let split = t
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(|| ScheduleError::Syntax(s.to_string()))?;
        let (n, unit) = t.split_at(split);
        let n: i64 = n
            .parse()
            .map_err(|_| ScheduleError::Syntax(s.to_string()))?;
        let mult = match unit {
            "m" | "min" => 60,
            "h" => 3600,
            "d" => DAY,
            _ => return Err(ScheduleError::Syntax(s.to_string())),
        };
        let secs = n * mult;
        if secs <= 0 || secs > DAY || DAY % secs != 0 {
            return Err(ScheduleError::Uneven(s.to_string()));
        }
        Ok(Some(Schedule::Interval(secs)))
    }

    /// The latest tick at or before `t` (within a year for cron).
    pub fn tick_at_or_before(&self, t: i64) -> Option<i64> {
        match self {
            Schedule::Interval(n) => Some(t.div_euclid(*n) * n),
            Schedule::Cron(c) => {
                let mut m = t.div_euclid(60) * 60;
                for _ in 0..(366 * 24 * 60) {
                    if c.matches_minute(m) {
                        return Some(m);
                    }
                    m -= 60;
                }
                None
            }
        }
    }

    /// The first tick strictly after `t`.
    pub fn tick_after(&self, t: i64) -> Option<i64> {
        match self {
            Schedule::Interval(n) => Some((t.div_euclid(*n) + 1) * n),
            Schedule::Cron(c) => {
                let mut m = (t.div_euclid(60) + 1) * 60;
                for _ in 0..(366 * 24 * 60) {
                    if c.matches_minute(m) {
                        return Some(m);
                    }
                    m += 60;
                }
                None
            }
        }
    }

    /// The gap between the ticks around `t`: what "a missed tick" means.
    pub fn period_at(&self, t: i64) -> i64 {
        match self {
            Schedule::Interval(n) => *n,
            Schedule::Cron(_) => match (self.tick_at_or_before(t), self.tick_after(t)) {
                (Some(a), Some(b)) => b - a,
                _ => DAY,
            },
        }
    }

    /// `OnCalendar=` values (UTC) that fire at exactly these ticks.
    pub fn on_calendar(&self) -> Vec<String> {
        match self {
            Schedule::Interval(n) => {
                let n = *n;
                if n >= 3600 {
                    let hours: Vec<String> = (0..24)
                        .step_by((n / 3600) as usize)
                        .map(|h| format!("{h:02}"))
                        .collect();
                    vec![format!("*-*-* {}:00:00 UTC", hours.join(","))]
                } else {
                    let mins: Vec<String> = (0..60)
                        .step_by((n / 60) as usize)
                        .map(|m| format!("{m:02}"))
                        .collect();
                    let mins = if n == 60 {
                        "*".to_string()
                    } else {
                        mins.join(",")
                    };
                    vec![format!("*-*-* *:{mins}:00 UTC")]
                }
            }
            Schedule::Cron(c) => {
                const NAMES: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
                let time = format!("{}:{}:00", list(&c.hour, 2), list(&c.minute, 2));
                let dows = c.dow.as_ref().map(|d| {
                    d.iter()
                        .map(|v| NAMES[*v as usize % 7])
                        .collect::<Vec<_>>()
                        .join(",")
                });
                let month = list(&c.month, 2);
                let mut out = Vec::new();
                match (&c.dom, dows) {
                    (Some(_), Some(d)) => {
                        out.push(format!("{d} *-{month}-* {time} UTC"));
                        out.push(format!("*-{month}-{} {time} UTC", list(&c.dom, 2)));
                    }
                    (_, Some(d)) => out.push(format!("{d} *-{month}-* {time} UTC")),
                    (dom, None) => {
                        let mut s = String::new();
                        let _ = write!(s, "*-{month}-{} {time} UTC", list(dom, 2));
                        out.push(s);
                    }
                }
                out
            }
        }
    }
}

/// A duration as people say it: `2h10m`, `12m`, `45s`, `3d4h`.
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    let (d, h, m) = (s / DAY, (s % DAY) / 3600, (s % 3600) / 60);
    if d > 0 {
        format!("{d}d{h}h")
    } else if h > 0 {
        format!("{h}h{m}m")
    } else if m > 0 {
        format!("{m}m")
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-11-30T17:23:10Z, a Monday.
    const T: i64 = 1_796_059_390;
    const MIDNIGHT: i64 = 1_795_996_800;

    #[test]
    fn intervals_align_to_the_clock() {
        let s = Schedule::parse("15m").unwrap().unwrap();
        assert_eq!(s.tick_at_or_before(T), Some(MIDNIGHT + 17 * 3600 + 15 * 60));
        assert_eq!(s.tick_after(T), Some(MIDNIGHT + 17 * 3600 + 30 * 60));
        assert_eq!(s.on_calendar(), ["*-*-* *:00,15,30,45:00 UTC"]);
        assert_eq!(
            Schedule::parse("1m").unwrap().unwrap().on_calendar(),
            ["*-*-* *:*:00 UTC"]
        );
        assert_eq!(
            Schedule::parse("6h").unwrap().unwrap().on_calendar(),
            ["*-*-* 00,06,12,18:00:00 UTC"]
        );
        assert_eq!(Schedule::parse("1h").unwrap().unwrap().period_at(T), 3600);
        assert_eq!(Schedule::parse("off").unwrap(), None);
        for bad in ["7m", "25h", "0m", "1x", "m", "", "1 2 3"] {
            assert!(Schedule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cron_expressions() {
        let s = Schedule::parse("*/20 9-17 * * 1-5").unwrap().unwrap();
        assert_eq!(s.tick_at_or_before(T), Some(MIDNIGHT + 17 * 3600 + 20 * 60));
        assert_eq!(s.tick_after(T), Some(MIDNIGHT + 17 * 3600 + 40 * 60));
        assert_eq!(
            s.on_calendar(),
            ["Mon,Tue,Wed,Thu,Fri *-*-* 09,10,11,12,13,14,15,16,17:00,20,40:00 UTC"]
        );
        // Sunday = 0 or 7; the next Sunday 03:00 after Monday.
        let sun = Schedule::parse("0 3 * * 7").unwrap().unwrap();
        assert_eq!(sun.tick_after(T), Some(MIDNIGHT + 6 * DAY + 3 * 3600));
        // Both day fields: either matches (the 1st, or Tuesdays).
        let both = Schedule::parse("0 0 1 * 2").unwrap().unwrap();
        assert_eq!(both.tick_after(T), Some(MIDNIGHT + DAY));
        assert_eq!(both.on_calendar().len(), 2);
        for bad in [
            "60 * * * *",
            "* 24 * * *",
            "* * 0 * *",
            "* * * 13 *",
            "a * * * *",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_read_like_the_status() {
        assert_eq!(human_duration(2 * 3600 + 10 * 60 + 5), "2h10m");
        assert_eq!(human_duration(12 * 60), "12m");
        assert_eq!(human_duration(45), "45s");
        assert_eq!(human_duration(3 * DAY + 4 * 3600), "3d4h");
    }
}
