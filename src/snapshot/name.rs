//! The archive's file name, from Unix seconds that the caller passes in (no
//! clock): `etcd-snapshot-YYYY-MM-DD-HH.MM.SS.tar.gz` in UTC, as the
//! original charm named them. RFC 3339 stamps come from [`crate::timefmt`].

pub use crate::timefmt::{parse_rfc3339, rfc3339};

/// The archive's file name for a snapshot taken at `unix_secs`, or `None`
/// for a time outside years 0–9999.
pub fn archive_name(unix_secs: i64) -> Option<String> {
    named_archive("etcd-snapshot", unix_secs)
}

/// `{prefix}-YYYY-MM-DD-HH.MM.SS.tar.gz`, e.g. the restore action's
/// `etcd-backup-…` archives of the data it replaces.
pub fn named_archive(prefix: &str, unix_secs: i64) -> Option<String> {
    // 2016-11-09T02:41:47Z → 2016-11-09-02.41.47
    rfc3339(unix_secs).map(|t| {
        let stamp = t.trim_end_matches('Z').replace('T', "-").replace(':', ".");
        format!("{prefix}-{stamp}.tar.gz")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_name_matches_the_seed() {
        assert_eq!(
            archive_name(1_478_659_307).as_deref(),
            Some("etcd-snapshot-2016-11-09-02.41.47.tar.gz")
        );
        assert_eq!(
            archive_name(0).as_deref(),
            Some("etcd-snapshot-1970-01-01-00.00.00.tar.gz")
        );
        assert_eq!(
            archive_name(951_868_799).as_deref(),
            Some("etcd-snapshot-2000-02-29-23.59.59.tar.gz")
        );
        assert_eq!(archive_name(i64::MAX), None);
    }
}
