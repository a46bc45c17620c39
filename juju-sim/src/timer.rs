//! systemd timers for the `systemctl` stand-in: starting `X.timer` starts a
//! detached runner (this binary as `systemctl __run-timer X.timer`), tracked
//! like a service, that sleeps until each trigger time and then runs the
//! timer's service (`Unit=`, default `X.service`) to completion, as
//! `Type=oneshot`: a trigger due while the service still runs waits for it.
//! The service runs with a clean environment (a plain `PATH` plus its
//! `Environment=`), as systemd gives it, never the hook's.
//!
//! Supported: `OnCalendar=` (UTC; `[DOW ]Y-M-D H:M[:S]` whose fields are
//! `*`, numbers, `a..b` ranges, `a/step` and comma lists, and `minutely`,
//! `hourly`, `daily`), `OnBootSec=` (from the runner's start) and
//! `OnUnitActiveSec=` (after the last run started). Several `OnCalendar=`
//! lines are allowed. Stopping the timer kills the runner and a run in
//! progress.

use std::fs::{self, OpenOptions};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A timer unit's `[Timer]` section.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct TimerSpec {
    pub calendars: Vec<Calendar>,
    pub on_boot: Option<u64>,
    pub on_unit_active: Option<u64>,
    pub unit: Option<String>,
}

/// One `OnCalendar=` expression; each field is the set of allowed values
/// (`None` = any).
#[derive(Debug, Default, PartialEq, Eq, Clone)]
pub struct Calendar {
    dow: Option<Vec<u32>>,
    year: Option<Vec<u32>>,
    month: Option<Vec<u32>>,
    day: Option<Vec<u32>>,
    hour: Option<Vec<u32>>,
    minute: Option<Vec<u32>>,
    second: Option<Vec<u32>>,
}

fn parse_secs(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().ok()?;
    let mult = match unit.trim() {
        "" | "s" | "sec" | "secs" | "second" | "seconds" => 1,
        "m" | "min" | "mins" | "minute" | "minutes" => 60,
        "h" | "hr" | "hour" | "hours" => 3600,
        "d" | "day" | "days" => 86_400,
        _ => return None,
    };
    Some(n * mult)
}

const DOWS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// A field: `*` or a comma list of `v`, `a..b` and `a/step`.
fn parse_field(s: &str, max: u32, dow: bool) -> Option<Option<Vec<u32>>> {
    if s == "*" {
        return Some(None);
    }
    let value = |v: &str| -> Option<u32> {
        if dow {
            DOWS.iter()
                .position(|d| d.eq_ignore_ascii_case(&v[..v.len().min(3)]))
                .map(|p| p as u32)
        } else {
            v.parse().ok()
        }
    };
    let mut out = Vec::new();
    for item in s.split(',') {
        if let Some((a, step)) = item.split_once('/') {
            let start = if a == "*" { 0 } else { value(a)? };
            let step: u32 = step.parse().ok().filter(|s| *s > 0)?;
            let mut v = start;
            while v <= max {
                out.push(v);
                v += step;
            }
        } else if let Some((a, b)) =
            item.split_once("..")
                .or_else(|| if dow { item.split_once('-') } else { None })
        {
            let (a, b) = (value(a)?, value(b)?);
            out.extend(a..=b);
        } else {
            out.push(value(item)?);
        }
    }
    out.sort_unstable();
    out.dedup();
    Some(Some(out))
}

impl Calendar {
    pub fn parse(s: &str) -> Option<Calendar> {
        let s = s.trim();
        let s = s.strip_suffix(" UTC").unwrap_or(s).trim();
        match s {
            "minutely" => return Calendar::parse("*-*-* *:*:00"),
            "hourly" => return Calendar::parse("*-*-* *:00:00"),
            "daily" => return Calendar::parse("*-*-* 00:00:00"),
            _ => {}
        }
        let words: Vec<&str> = s.split_whitespace().collect();
        let (dow, date, time) = match words.as_slice() {
            [d, date, time] => (Some(*d), *date, *time),
            [date, time] if date.contains('-') => (None, *date, *time),
            [time] => (None, "*-*-*", *time),
            _ => return None,
        };
        let mut c = Calendar::default();
        if let Some(d) = dow {
            c.dow = parse_field(d, 6, true)?;
        }
        let dp: Vec<&str> = date.split('-').collect();
        let [y, m, d] = dp.as_slice() else {
            return None;
        };
        c.year = parse_field(y, 9999, false)?;
        c.month = parse_field(m, 12, false)?;
        c.day = parse_field(d, 31, false)?;
        let tp: Vec<&str> = time.split(':').collect();
        let (h, mi, se) = match tp.as_slice() {
            [h, m] => (*h, *m, "00"),
            [h, m, s] => (*h, *m, *s),
            _ => return None,
        };
        c.hour = parse_field(h, 23, false)?;
        c.minute = parse_field(mi, 59, false)?;
        c.second = parse_field(se, 59, false)?;
        Some(c)
    }

    fn ok(field: &Option<Vec<u32>>, v: u32) -> bool {
        field.as_ref().is_none_or(|f| f.contains(&v))
    }

    /// The first matching second strictly after `t` (Unix seconds, UTC),
    /// within a year.
    pub fn next_after(&self, t: i64) -> Option<i64> {
        let mut minute_start = t.div_euclid(60) * 60;
        for _ in 0..(366 * 24 * 60 + 1) {
            let days = minute_start.div_euclid(86_400);
            let (y, m, d) = civil_from_days(days);
            // 1970-01-01 was a Thursday (index 3 from Monday).
            let dow = (days + 3).rem_euclid(7) as u32;
            let secs = minute_start.rem_euclid(86_400);
            let (hh, mm) = ((secs / 3600) as u32, ((secs % 3600) / 60) as u32);
            if Self::ok(&self.dow, dow)
                && Self::ok(&self.year, y as u32)
                && Self::ok(&self.month, m)
                && Self::ok(&self.day, d)
                && Self::ok(&self.hour, hh)
                && Self::ok(&self.minute, mm)
            {
                let seconds: Vec<u32> = match &self.second {
                    None => (0..60).collect(),
                    Some(v) => v.clone(),
                };
                if let Some(s) = seconds
                    .into_iter()
                    .map(|s| minute_start + i64::from(s))
                    .find(|x| *x > t)
                {
                    return Some(s);
                }
            }
            minute_start += 60;
        }
        None
    }
}

/// (year, month, day) of a day count since 1970-01-01 (H. Hinnant's
/// algorithm).
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

/// Parses a timer unit's `[Timer]` section.
pub fn parse_timer(text: &str) -> TimerSpec {
    let mut spec = TimerSpec::default();
    let mut section = String::new();
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with('[') {
            section = l.to_string();
            continue;
        }
        if section != "[Timer]" {
            continue;
        }
        let Some((k, v)) = l.split_once('=') else {
            continue;
        };
        let v = v.trim();
        match k.trim() {
            "OnCalendar" => {
                if let Some(c) = Calendar::parse(v) {
                    spec.calendars.push(c);
                } else {
                    eprintln!("juju-sim systemctl: cannot parse OnCalendar={v}; ignored");
                }
            }
            "OnBootSec" | "OnActiveSec" | "OnStartupSec" => spec.on_boot = parse_secs(v),
            "OnUnitActiveSec" => spec.on_unit_active = parse_secs(v),
            "Unit" => spec.unit = Some(v.to_string()),
            _ => {}
        }
    }
    spec
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl TimerSpec {
    /// The next trigger after `t`, given when the runner started and when
    /// the service last started.
    pub fn next_after(&self, t: i64, started: i64, last_run: Option<i64>) -> Option<i64> {
        let mut cands: Vec<i64> = self
            .calendars
            .iter()
            .filter_map(|c| c.next_after(t))
            .collect();
        if let Some(b) = self.on_boot {
            let at = started + b as i64;
            if last_run.is_none() && at > t {
                cands.push(at);
            }
        }
        if let Some(a) = self.on_unit_active {
            if let Some(l) = last_run {
                cands.push((l + a as i64).max(t + 1));
            }
        }
        cands.into_iter().min()
    }
}

/// The runner: `systemctl __run-timer NAME.timer`. Runs until killed.
pub fn run_timer(root: &Path, name: &str) -> i32 {
    let path = root.join("etc/systemd/system").join(name);
    let Ok(text) = fs::read_to_string(&path) else {
        eprintln!("juju-sim systemctl: {name} not found");
        return 1;
    };
    let spec = parse_timer(&text);
    let service = spec
        .unit
        .clone()
        .unwrap_or_else(|| format!("{}.service", name.strip_suffix(".timer").unwrap_or(name)));
    let started = now();
    let mut last_run: Option<i64> = None;
    let mut t = started;
    loop {
        let Some(next) = spec.next_after(t, started, last_run) else {
            eprintln!("juju-sim systemctl: {name} has no next trigger; the runner ends");
            return 0;
        };
        // Sleep until `next` on the wall clock.
        loop {
            let now_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0);
            let left = next * 1000 - now_ms;
            if left <= 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(left.min(1000) as u64));
        }
        last_run = Some(now());
        run_service_once(root, &service);
        // A trigger due while the service ran is not lost (systemd starts
        // it again once it is done); later ones are computed from now.
        t = next;
        let after = now();
        if let Some(n) = spec.next_after(t, started, last_run) {
            if n <= after {
                t = n - 1;
            }
        }
    }
}

/// Runs the service's `ExecStart` to completion, output appended to its log.
fn run_service_once(root: &Path, service: &str) {
    let path = root.join("etc/systemd/system").join(service);
    let Ok(text) = fs::read_to_string(&path) else {
        eprintln!("juju-sim systemctl: {service} not found; the timer fired for nothing");
        return;
    };
    let svc = super::systemctl::parse_unit_pub(&text);
    let Some((prog, args)) = svc.0.split_first() else {
        eprintln!("juju-sim systemctl: {service} has no ExecStart=");
        return;
    };
    let base = service.strip_suffix(".service").unwrap_or(service);
    let log_dir = root.join("var/log");
    let log_path = log_dir.join(format!("{base}.log"));
    let Ok(log) = fs::create_dir_all(&log_dir)
        .and_then(|_| OpenOptions::new().create(true).append(true).open(&log_path))
    else {
        return;
    };
    let Ok(log2) = log.try_clone() else {
        return;
    };
    let mut cmd = Command::new(prog);
    cmd.args(args)
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .envs(svc.1.iter().map(|(a, b)| (a, b)))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    if let Some(w) = &svc.2 {
        cmd.current_dir(w);
    }
    match cmd.status() {
        Ok(s) if !s.success() => eprintln!("juju-sim systemctl: {service} exited with {s}"),
        Ok(_) => {}
        Err(e) => eprintln!("juju-sim systemctl: cannot run {service}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-11-30T17:23:10Z, a Monday.
    const T: i64 = 1_796_059_390;

    #[test]
    fn calendars_find_the_next_time() {
        let every_minute = Calendar::parse("*-*-* *:*:00 UTC").unwrap();
        assert_eq!(every_minute.next_after(T), Some(T - 10 + 60));
        let quarter = Calendar::parse("*-*-* *:00,15,30,45:00").unwrap();
        assert_eq!(quarter.next_after(T), Some(T - 23 * 60 - 10 + 30 * 60));
        let step = Calendar::parse("*-*-* *:0/15:00").unwrap();
        assert_eq!(step, quarter);
        let hourly = Calendar::parse("hourly").unwrap();
        assert_eq!(hourly.next_after(T), Some(T - 23 * 60 - 10 + 3600));
        // Tuesday 02:00.
        let tue = Calendar::parse("Tue *-*-* 02:00:00").unwrap();
        let next = tue.next_after(T).unwrap();
        assert_eq!(next, T - (17 * 3600 + 23 * 60 + 10) + 86_400 + 2 * 3600);
        let range = Calendar::parse("Mon..Fri *-*-* 18:00").unwrap();
        assert_eq!(
            range.next_after(T),
            Some(T - (17 * 3600 + 23 * 60 + 10) + 18 * 3600)
        );
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_787), (2026, 11, 30));
    }

    #[test]
    fn timer_sections_parse() {
        let s = parse_timer(
            "[Unit]\nDescription=x\n[Timer]\nOnCalendar=*-*-* *:*:00 UTC\nOnCalendar=daily\nOnBootSec=5min\nOnUnitActiveSec=90\nUnit=b.service\n",
        );
        assert_eq!(s.calendars.len(), 2);
        assert_eq!(s.on_boot, Some(300));
        assert_eq!(s.on_unit_active, Some(90));
        assert_eq!(s.unit.as_deref(), Some("b.service"));
        assert_eq!(s.next_after(T, T, None), Some(T + 50));
        let boot = parse_timer("[Timer]\nOnBootSec=3\nOnUnitActiveSec=10\n");
        assert_eq!(boot.next_after(T, T, None), Some(T + 3));
        assert_eq!(boot.next_after(T + 3, T, Some(T + 3)), Some(T + 13));
    }
}
