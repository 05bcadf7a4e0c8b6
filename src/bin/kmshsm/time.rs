//! Unix seconds as the ISO 8601 UTC text the kms-docs show (`2018-01-25T00:01:02Z`), and
//! that text read back, through the `time` crate (proleptic Gregorian calendar, years
//! 0000 to 9999). The seconds themselves come from the callers, as before.

use ::time::format_description::BorrowedFormatItem;
use ::time::macros::format_description;
use ::time::{Date, OffsetDateTime, PrimitiveDateTime};

/// `2018-01-25T00:01:02Z`.
const INSTANT: &[BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
/// `2018-01-25`.
const DAY: &[BorrowedFormatItem<'_>] = format_description!("[year]-[month]-[day]");

/// `YYYY-MM-DDTHH:MM:SSZ` or `YYYY-MM-DD` (midnight UTC) as unix seconds; `None` for
/// anything else, a day the month does not have included.
pub(crate) fn parse_iso8601(text: &str) -> Option<i64> {
    if let Ok(t) = PrimitiveDateTime::parse(text, INSTANT) {
        return Some(t.assume_utc().unix_timestamp());
    }
    let day = Date::parse(text, DAY).ok()?;
    Some(day.midnight().assume_utc().unix_timestamp())
}

/// `unix` as `YYYY-MM-DDTHH:MM:SSZ`; an instant outside the years 0000 to 9999, which no
/// such text can show, as its unix seconds.
pub(crate) fn iso8601(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(INSTANT).ok())
        .unwrap_or_else(|| unix.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_instants_format_as_the_kms_docs_do() {
        assert_eq!(super::iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::iso8601(1_516_838_462), "2018-01-25T00:01:02Z");
        assert_eq!(super::iso8601(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(super::iso8601(4_102_444_799), "2099-12-31T23:59:59Z");
        assert_eq!(super::iso8601(-1), "1969-12-31T23:59:59Z");
        assert_eq!(super::iso8601(i64::MAX), i64::MAX.to_string());
    }

    #[test]
    fn iso8601_text_reads_back() {
        for t in [0, 951_782_400, 1_516_838_462, 4_102_444_799, -86_400] {
            assert_eq!(super::parse_iso8601(&super::iso8601(t)), Some(t));
        }
        assert_eq!(super::parse_iso8601("2018-01-25"), Some(1_516_838_400));
        assert_eq!(
            super::parse_iso8601("2026-01-31T12:00:00Z"),
            Some(1_769_860_800)
        );
        for bad in [
            "2018-13-01",
            "2018-02-30",
            "2018-01-25T24:00:00Z",
            "2018-01-25T12:00:00",
            "2018-01-25T12:00Z",
            "2018-01-25 12:00:00Z",
            "2018-1-25",
            "yesterday",
            "",
        ] {
            assert_eq!(super::parse_iso8601(bad), None, "{bad}");
        }
    }
}
