//! UTC timestamps from Unix seconds that the caller passes in: pure, no
//! clock. One strict textual form, `YYYY-MM-DDTHH:MM:SSZ`, for manifests
//! and messages; the calendar is the `time` crate's.
//!
//! Shared by `snapshot` (archive names, manifests) and `pki` (messages).

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

/// `unix` as a UTC date-time with a four-digit year, or `None` out of range.
pub fn utc(unix: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .filter(|t| (0..=9999).contains(&t.year()))
}

/// `unix` as RFC 3339 in UTC: `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339(unix: i64) -> Option<String> {
    utc(unix).map(|t| {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        )
    })
}

/// Parses exactly the form [`rfc3339`] writes back to Unix seconds.
/// Anything else (offsets, fractions, a space) is `None`.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let layout_ok = b.len() == 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'Z';
    if !layout_ok {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<u16> {
        b[from..to].iter().try_fold(0u16, |acc, d| {
            d.is_ascii_digit().then(|| acc * 10 + u16::from(d - b'0'))
        })
    };
    let month = Month::try_from(u8::try_from(num(5, 7)?).ok()?).ok()?;
    let date = Date::from_calendar_date(
        i32::from(num(0, 4)?),
        month,
        u8::try_from(num(8, 10)?).ok()?,
    )
    .ok()?;
    let time = Time::from_hms(
        u8::try_from(num(11, 13)?).ok()?,
        u8::try_from(num(14, 16)?).ok()?,
        u8::try_from(num(17, 19)?).ok()?,
    )
    .ok()?;
    Some(
        PrimitiveDateTime::new(date, time)
            .assume_utc()
            .unix_timestamp(),
    )
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
            assert_eq!(rfc3339(secs).as_deref(), Some(want), "{secs}");
            assert_eq!(parse_rfc3339(want), Some(secs), "{want}");
        }
        assert_eq!(rfc3339(253_402_300_800), None, "year 10000");
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
            "2100-02-29T00:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(s), None, "{s:?}");
        }
        assert!(parse_rfc3339("2000-02-29T00:00:00Z").is_some());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn rfc3339_round_trips(secs in -62_167_219_200i64..253_402_300_800i64) {
            // 0000-01-01 .. 9999-12-31
            let s = rfc3339(secs).unwrap();
            prop_assert_eq!(parse_rfc3339(&s), Some(secs));
        }
    }
}
