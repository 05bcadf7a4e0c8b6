//! Helpers for the SM unit tests.

/// Decodes hex, ignoring whitespace; panics on bad input (test vectors are literals).
pub(super) fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    assert!(digits.len() % 2 == 0, "odd-length hex literal");
    digits
        .chunks(2)
        .map(|pair| {
            let text = std::str::from_utf8(pair).expect("hex literal is ASCII");
            u8::from_str_radix(text, 16).expect("hex literal has only hex digits")
        })
        .collect()
}

/// Asserts that `$result` is `Err(Error::$variant)`, showing what it was otherwise.
macro_rules! assert_err {
    ($result:expr, $variant:ident) => {
        assert_err!($result, $variant, "")
    };
    ($result:expr, $variant:ident, $($context:tt)+) => {
        match $result {
            Err($crate::error::Error::$variant) => {}
            other => panic!(
                "{} gave {:?}, expected Err({}) {}",
                stringify!($result),
                other.map(|_| "Ok(..)"),
                stringify!($variant),
                format!($($context)+)
            ),
        }
    };
}
pub(crate) use assert_err;
