//! What the BYOK import looks like to tools that know no vendor attribute
//! (docs/key-model.md, "The import with unmodified tools"): the label and id of an import
//! wrapping pair, derived from its target, and the material expiry an `END_DATE` day
//! means.

use super::key::KeyId;
use super::KmsError;

/// What every import wrapping pair's default label starts with.
pub const WRAPPING_LABEL_PREFIX: &str = "import:";

/// The label of every import wrapping pair of `target`: `import:<KeyId>`.
pub fn wrapping_label(target: &KeyId) -> String {
    format!("{WRAPPING_LABEL_PREFIX}{}", target.as_str())
}

/// Whether `label` is in the import wrapping pairs' namespace (`import:...`), which no
/// other object may use: tools find a key's pairs by it.
pub fn is_wrapping_label(label: &[u8]) -> bool {
    label.starts_with(WRAPPING_LABEL_PREFIX.as_bytes())
}

/// Bytes of randomness after the KeyId in a wrapping pair's id.
pub const ID_NONCE_LEN: usize = 8;

/// The id of one import wrapping pair: the target's KeyId as its 16 UUID bytes, then
/// `nonce`, so the id names the target and differs between pairs of one key.
pub fn wrapping_id(target: &KeyId, nonce: &[u8; ID_NONCE_LEN]) -> Result<Vec<u8>, KmsError> {
    let uuid = uuid::Uuid::parse_str(target.as_str())
        .map_err(|_| KmsError::InvalidParameter("KeyId is not a UUID"))?;
    let mut id = uuid.as_bytes().to_vec();
    id.extend_from_slice(nonce);
    Ok(id)
}

/// The expiry (unix seconds) meant by an end date `YYYYMMDD` (PKCS#11 `CK_DATE`): the
/// material may be used through that whole day in UTC and expires at 00:00:00 UTC of the
/// day after. An empty date means no expiry (`None`).
pub fn end_date_expiry(date: &[u8]) -> Result<Option<i64>, KmsError> {
    if date.is_empty() {
        return Ok(None);
    }
    let invalid = KmsError::InvalidParameter("the end date is not a YYYYMMDD day");
    if date.len() != 8 || !date.iter().all(u8::is_ascii_digit) {
        return Err(invalid);
    }
    let num = |r: std::ops::Range<usize>| {
        date[r]
            .iter()
            .fold(0i64, |n, d| n * 10 + i64::from(d - b'0'))
    };
    let (y, m, d) = (num(0..4), num(4..6), num(6..8));
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if y < 1970 || !(1..=12).contains(&m) || d < 1 || d > month_days[(m - 1) as usize] {
        return Err(invalid);
    }
    Ok(Some((days_from_civil(y, m, d) + 1) * 86_400))
}

/// Days from 1970-01-01 to the proleptic Gregorian date (y, m, d).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_date_is_the_start_of_the_next_day_utc() {
        assert_eq!(end_date_expiry(b"19700101").unwrap(), Some(86_400));
        // 2030-12-31 ends at 2031-01-01T00:00:00Z.
        assert_eq!(end_date_expiry(b"20301231").unwrap(), Some(1_924_992_000));
        assert_eq!(end_date_expiry(b"20240229").unwrap(), Some(1_709_251_200));
        assert_eq!(end_date_expiry(b"").unwrap(), None);
        for bad in [
            &b"20230229"[..],
            b"20241301",
            b"2024010",
            b"2024-1-1",
            b"19691231",
        ] {
            assert!(end_date_expiry(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ids_name_the_target_and_differ_per_pair() {
        let key = KeyId::parse("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0").unwrap();
        assert_eq!(
            wrapping_label(&key),
            "import:0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
        );
        let a = wrapping_id(&key, &[1; ID_NONCE_LEN]).unwrap();
        let b = wrapping_id(&key, &[2; ID_NONCE_LEN]).unwrap();
        assert_eq!(a.len(), 24);
        assert_eq!(a[..16], b[..16]);
        assert_eq!(a[..4], [0x0f, 0x1e, 0x2d, 0x3c]);
        assert_ne!(a, b);
    }
}
