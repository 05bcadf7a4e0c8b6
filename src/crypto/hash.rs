//! The SHA-1 and SHA-2 hashes (aws-lc-rs), their DigestInfo prefixes for PKCS#1 v1.5
//! signatures (RFC 8017 §9.2 note 1), and a streaming context.
//! This module must not know about PKCS#11 mechanism numbers.

use aws_lc_rs::digest;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlg {
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlg {
    pub const ALL: [HashAlg; 5] = [
        HashAlg::Sha1,
        HashAlg::Sha224,
        HashAlg::Sha256,
        HashAlg::Sha384,
        HashAlg::Sha512,
    ];

    pub fn algorithm(self) -> &'static digest::Algorithm {
        match self {
            HashAlg::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
            HashAlg::Sha224 => &digest::SHA224,
            HashAlg::Sha256 => &digest::SHA256,
            HashAlg::Sha384 => &digest::SHA384,
            HashAlg::Sha512 => &digest::SHA512,
        }
    }

    /// The output length in bytes.
    pub(crate) fn output_len(self) -> usize {
        self.algorithm().output_len()
    }

    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        self.hash(data).as_ref().to_vec()
    }

    /// The hash of `data` in one call, held inline: no streaming context is set up and
    /// nothing is allocated (aws-lc's one-shot function for the algorithm).
    pub(crate) fn hash(self, data: &[u8]) -> HashValue {
        HashValue(digest::digest(self.algorithm(), data))
    }

    /// The DER DigestInfo header that precedes the hash in EMSA-PKCS1-v1_5.
    pub(crate) fn digest_info_prefix(self) -> &'static [u8] {
        match self {
            HashAlg::Sha1 => &[
                0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04,
                0x14,
            ],
            HashAlg::Sha224 => &[
                0x30, 0x2d, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x04, 0x05, 0x00, 0x04, 0x1c,
            ],
            HashAlg::Sha256 => &[
                0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x01, 0x05, 0x00, 0x04, 0x20,
            ],
            HashAlg::Sha384 => &[
                0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x02, 0x05, 0x00, 0x04, 0x30,
            ],
            HashAlg::Sha512 => &[
                0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x03, 0x05, 0x00, 0x04, 0x40,
            ],
        }
    }

    pub fn context(self) -> HashContext {
        HashContext(digest::Context::new(self.algorithm()))
    }
}

/// A streaming hash.
#[derive(Clone)]
pub struct HashContext(digest::Context);

impl std::fmt::Debug for HashContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HashContext")
    }
}

impl HashContext {
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    pub fn finish(self) -> Vec<u8> {
        self.finish_value().as_ref().to_vec()
    }

    /// The hash, held inline rather than in a new allocation.
    pub(crate) fn finish_value(self) -> HashValue {
        HashValue(self.0.finish())
    }
}

/// A hash value of any of the algorithms, held inline (no allocation).
#[derive(Clone, Copy)]
pub(crate) struct HashValue(digest::Digest);

impl AsRef<[u8]> for HashValue {
    fn as_ref(&self) -> &[u8] {
        self.0.as_ref()
    }
}

/// MGF1 (RFC 8017 B.2.1): `len` bytes of mask from `seed`.
pub(crate) fn mgf1(hash: HashAlg, seed: &[u8], len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + hash.output_len());
    let mut counter: u32 = 0;
    while out.len() < len {
        let mut ctx = hash.context();
        ctx.update(seed);
        ctx.update(&counter.to_be_bytes());
        out.extend_from_slice(&ctx.finish());
        counter = counter.wrapping_add(1);
    }
    out.truncate(len);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_abc_matches_fips_180() {
        let d = HashAlg::Sha256.digest(b"abc");
        assert_eq!(
            d[..4],
            [0xba, 0x78, 0x16, 0xbf],
            "FIPS 180-4 example: SHA-256(\"abc\") = ba7816bf..."
        );
    }

    #[test]
    fn digest_info_prefixes_announce_the_hash_length() {
        for h in HashAlg::ALL {
            let p = h.digest_info_prefix();
            assert_eq!(usize::from(p[p.len() - 1]), h.output_len());
            assert_eq!(usize::from(p[1]), p.len() - 2 + h.output_len());
        }
    }

    #[test]
    fn streaming_equals_one_shot() {
        for h in HashAlg::ALL {
            let mut c = h.context();
            c.update(b"ab");
            c.update(b"c");
            let inline = c.clone().finish_value();
            assert_eq!(c.finish(), h.digest(b"abc"));
            assert_eq!(inline.as_ref(), h.hash(b"abc").as_ref());
            assert_eq!(inline.as_ref().len(), h.output_len());
        }
    }
}
