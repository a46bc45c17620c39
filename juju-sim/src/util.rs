//! Small helpers shared by every role of the binary: UTC timestamps in Juju's
//! formats (no date crate needed), unit-name parsing, recursive copies and
//! the `key=value` argument splitter. Kept here so the CLI, the agent and the
//! hook tools format things identically.

use std::fs;
use std::io;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, now.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// (year, month, day, hour, minute, second) in UTC for `secs`.
fn civil(secs: u64) -> (i64, u32, u32, u64, u64, u64) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = if m <= 2 { y + 1 } else { y };
    (y, m, d, rem / 3600, (rem / 60) % 60, rem % 60)
}

/// `2026-11-21 21:10:54 +0000 UTC`, as Juju 2.9 prints action timings.
pub fn juju_time(secs: u64) -> String {
    let (y, mo, d, h, mi, s) = civil(secs);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02} +0000 UTC")
}

/// `2026-11-21T21:10:54Z`, RFC 3339, for status `since` and log lines.
pub fn rfc3339(secs: u64) -> String {
    let (y, mo, d, h, mi, s) = civil(secs);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// `24 Feb 2025 12:02:57Z`, as Juju's status prints times, from Unix seconds.
pub fn status_time(secs: u64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (y, mo, d, h, mi, s) = civil(secs);
    let month = MONTHS
        .get((mo as usize).saturating_sub(1))
        .copied()
        .unwrap_or("Jan");
    format!("{d:02} {month} {y:04} {h:02}:{mi:02}:{s:02}Z")
}

/// Unix seconds from our own RFC 3339 form (`2026-11-21T21:10:54Z`).
pub fn parse_rfc3339(t: &str) -> Option<u64> {
    let b = t.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| t.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    // Howard Hinnant's days-from-civil.
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + h * 3600 + mi * 60 + s).ok()
}

/// A stored RFC 3339 time in Juju's status format (unchanged if unparsable).
pub fn status_since(t: &str) -> String {
    parse_rfc3339(t).map_or_else(|| t.to_string(), status_time)
}

/// Splits `etcd/0` into (`etcd`, 0); `None` when it is not a unit name.
pub fn parse_unit(name: &str) -> Option<(String, u32)> {
    let (app, n) = name.rsplit_once('/')?;
    if app.is_empty() {
        return None;
    }
    Some((app.to_string(), n.parse().ok()?))
}

/// `etcd/0` → `etcd-0` (the unit's directory name).
pub fn unit_slug(unit: &str) -> String {
    unit.replace('/', "-")
}

/// Splits `key=value`; `None` when there is no `=`.
pub fn split_kv(arg: &str) -> Option<(&str, &str)> {
    arg.split_once('=')
}

/// Copies a directory tree, keeping file modes; symlinks are followed.
pub fn copy_tree(src: &Path, dst: &Path) -> io::Result<()> {
    fs::create_dir_all(dst)?;
    for entry in fs::read_dir(src)? {
        let entry = entry?;
        let from = entry.path();
        let to = dst.join(entry.file_name());
        if fs::metadata(&from)?.is_dir() {
            copy_tree(&from, &to)?;
        } else {
            fs::copy(&from, &to)?;
        }
    }
    Ok(())
}

/// A cheap stable hash (FNV-1a) used to spread address searches and make ids.
pub fn fnv(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Removes an application's stored charm: `charms/APP` and the revisions
/// `refresh` added (`charms/.APP-revN`).
pub fn remove_charm_dirs(home: &Path, app: &str) {
    let charms = home.join("charms");
    let _ = fs::remove_dir_all(charms.join(app));
    let prefix = format!(".{app}-rev");
    if let Ok(rd) = fs::read_dir(&charms) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name
                .strip_prefix(&prefix)
                .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
            {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_epoch_dates() {
        assert_eq!(juju_time(0), "1970-01-01 00:00:00 +0000 UTC");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(status_time(1_700_000_000), "14 Nov 2023 22:13:20Z");
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20Z"), Some(1_700_000_000));
        assert_eq!(parse_rfc3339("2024-02-29T00:00:00Z"), Some(1_709_164_800));
    }

    #[test]
    fn parses_units() {
        assert_eq!(parse_unit("etcd/12"), Some(("etcd".into(), 12)));
        assert_eq!(parse_unit("etcd"), None);
    }
}
