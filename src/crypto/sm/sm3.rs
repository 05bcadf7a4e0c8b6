//! SM3 (GB/T 32905-2016), the 256-bit hash: one-shot and streaming.

use ::sm3::Digest as _;

/// A streaming SM3 computation. Its state is wiped when dropped, since the data being
/// hashed may be secret (C_DigestKey).
#[derive(Clone, Default)]
pub(crate) struct Sm3 {
    inner: ::sm3::Sm3,
}

impl std::fmt::Debug for Sm3 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sm3(..)")
    }
}

impl Sm3 {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn update(&mut self, data: &[u8]) {
        self.inner.update(data);
    }

    pub(crate) fn finalize(self) -> [u8; 32] {
        self.inner.finalize().into()
    }
}

/// SM3 of `data` in one call.
pub fn sm3(data: &[u8]) -> [u8; 32] {
    ::sm3::Sm3::digest(data).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::sm::test_support::hex;

    // GB/T 32905-2016 Annex A.1 and A.2.
    const ABC_DIGEST: &str = "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0";
    const ABCD16_DIGEST: &str = "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732";

    #[test]
    fn sm3_of_abc_matches_the_standard_example() {
        assert_eq!(sm3(b"abc").to_vec(), hex(ABC_DIGEST));
    }

    #[test]
    fn sm3_of_abcd_repeated_sixteen_times_matches_the_standard_example() {
        let data = b"abcd".repeat(16);
        assert_eq!(sm3(&data).to_vec(), hex(ABCD16_DIGEST));
    }

    #[test]
    fn streaming_sm3_in_uneven_pieces_equals_the_one_shot_digest() {
        let data = b"abcd".repeat(16);
        let mut h = Sm3::new();
        for piece in data.chunks(7) {
            h.update(piece);
        }
        assert_eq!(h.finalize().to_vec(), hex(ABCD16_DIGEST));
    }
}
