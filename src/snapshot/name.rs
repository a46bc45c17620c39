//! Times without a clock: the archive's file name and RFC 3339 stamps from
//! Unix seconds that the caller passes in.
//!
//! The calendar conversion is Howard Hinnant's `civil_from_days` /
//! `days_from_civil` (proleptic Gregorian, exact for any `i64` day count we
//! can meet), so no date crate is needed and the module stays pure.

/// A UTC calendar time, to the second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
}

const SECS_PER_DAY: i64 = 86_400;

/// Days since 1970-01-01 → (year, month 1..=12, day 1..=31).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March-based
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// (year, month, day) → days since 1970-01-01.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

impl Civil {
    fn from_unix(secs: i64) -> Civil {
        let days = secs.div_euclid(SECS_PER_DAY);
        let rem = secs.rem_euclid(SECS_PER_DAY) as u32;
        let (year, month, day) = civil_from_days(days);
        Civil {
            year,
            month,
            day,
            hour: rem / 3600,
            minute: rem / 60 % 60,
            second: rem % 60,
        }
    }
}

/// The archive's file name for a snapshot taken at `unix_secs`, in UTC:
/// `etcd-snapshot-YYYY-MM-DD-HH.MM.SS.tar.gz`, as the original charm named
/// them.
pub fn archive_name(unix_secs: i64) -> String {
    let c = Civil::from_unix(unix_secs);
    format!(
        "etcd-snapshot-{:04}-{:02}-{:02}-{:02}.{:02}.{:02}.tar.gz",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// `unix_secs` as RFC 3339 in UTC: `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339(unix_secs: i64) -> String {
    let c = Civil::from_unix(unix_secs);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// Parses exactly the form [`rfc3339`] writes (`YYYY-MM-DDTHH:MM:SSZ`, a
/// four-digit year) back to Unix seconds. Anything else is `None`.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'Z'
    {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<u32> {
        b[from..to].iter().try_fold(0u32, |acc, d| {
            d.is_ascii_digit().then(|| acc * 10 + u32::from(d - b'0'))
        })
    };
    let year = i64::from(num(0, 4)?);
    let month = num(5, 7)?;
    let day = num(8, 10)?;
    let hour = num(11, 13)?;
    let minute = num(14, 16)?;
    let second = num(17, 19)?;
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(days * SECS_PER_DAY + i64::from(hour * 3600 + minute * 60 + second))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // Each checked against `date -u -d @SECS`.
    const KNOWN: &[(i64, &str)] = &[
        (0, "1970-01-01T00:00:00Z"),
        (-1, "1969-12-31T23:59:59Z"),
        (1_478_659_307, "2016-11-09T02:41:47Z"),
        (951_868_799, "2000-02-29T23:59:59Z"),
        (951_868_800, "2000-03-01T00:00:00Z"),
        (1_709_208_000, "2024-02-29T12:00:00Z"),
        (4_107_542_400, "2100-03-01T00:00:00Z"),
        (-2_203_977_600, "1900-02-28T00:00:00Z"),
        (946_684_799, "1999-12-31T23:59:59Z"),
        (253_402_300_799, "9999-12-31T23:59:59Z"),
    ];

    #[test]
    fn known_dates() {
        for &(secs, want) in KNOWN {
            assert_eq!(rfc3339(secs), want, "{secs}");
            assert_eq!(parse_rfc3339(want), Some(secs), "{want}");
        }
    }

    #[test]
    fn archive_name_matches_the_seed() {
        assert_eq!(
            archive_name(1_478_659_307),
            "etcd-snapshot-2016-11-09-02.41.47.tar.gz"
        );
        assert_eq!(archive_name(0), "etcd-snapshot-1970-01-01-00.00.00.tar.gz");
    }

    #[test]
    fn leap_years() {
        assert!(is_leap(2000) && is_leap(2024) && is_leap(1600));
        assert!(!is_leap(1900) && !is_leap(2100) && !is_leap(2023));
        // Day after Feb 28 in a non-leap century year is March 1.
        let feb28_2100 = days_from_civil(2100, 2, 28);
        assert_eq!(civil_from_days(feb28_2100 + 1), (2100, 3, 1));
        let feb28_2000 = days_from_civil(2000, 2, 28);
        assert_eq!(civil_from_days(feb28_2000 + 1), (2000, 2, 29));
        assert_eq!(parse_rfc3339("2100-02-29T00:00:00Z"), None);
        assert!(parse_rfc3339("2000-02-29T00:00:00Z").is_some());
    }

    #[test]
    fn parse_refuses_other_forms() {
        for s in [
            "",
            "2016-11-09 02:41:47Z",
            "2016-11-09T02:41:47",
            "2016-11-09T02:41:47+00:00",
            "2016-11-09T02:41:47.5Z",
            "2016-13-09T02:41:47Z",
            "2016-11-31T02:41:47Z",
            "2016-11-00T02:41:47Z",
            "2016-11-09T24:00:00Z",
            "2016-11-09T02:60:00Z",
            "2016-11-09T02:41:60Z",
            "20a6-11-09T02:41:47Z",
            "+016-11-09T02:41:47Z",
        ] {
            assert_eq!(parse_rfc3339(s), None, "{s:?}");
        }
    }

    #[test]
    fn every_day_for_eight_centuries_is_consecutive() {
        let mut prev = civil_from_days(days_from_civil(1600, 1, 1) - 1);
        assert_eq!(prev, (1599, 12, 31));
        for days in days_from_civil(1600, 1, 1)..days_from_civil(2400, 1, 1) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
            let next_ok = if d == 1 {
                prev.2 == days_in_month(prev.0, prev.1)
                    && (m == prev.1 + 1 && y == prev.0 || m == 1 && prev.1 == 12 && y == prev.0 + 1)
            } else {
                (y, m, d - 1) == prev
            };
            assert!(next_ok, "{prev:?} -> {:?}", (y, m, d));
            prev = (y, m, d);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn rfc3339_round_trips(secs in -62_167_219_200i64..253_402_300_800i64) {
            // 0000-01-01 .. 9999-12-31
            let s = rfc3339(secs);
            prop_assert_eq!(parse_rfc3339(&s), Some(secs));
            let name = archive_name(secs);
            prop_assert_eq!(name.len(), "etcd-snapshot-YYYY-MM-DD-HH.MM.SS.tar.gz".len());
        }
    }
}
