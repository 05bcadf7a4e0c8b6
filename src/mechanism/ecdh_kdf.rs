//! The key derivation functions of `CK_ECDH1_DERIVE_PARAMS` (PKCS#11 3.0 §2.3.11), shared
//! by ECDH on the NIST curves (`ec`) and on X25519 (`montgomery`): `CKD_NULL`, the ANSI X9.63
//! hash KDFs and the SP 800-56A concatenation KDFs. It turns a shared secret into key bytes
//! and must not know which curve produced it.

use crate::ck::*;
use zeroize::Zeroizing;

use super::params::Ecdh1Params;
use crate::crypto::hash::HashAlg;
use crate::error::{Error, Result};

/// The hash KDFs of `CK_ECDH1_DERIVE_PARAMS` (PKCS#11 3.0 §2.3.11): ANSI X9.63
/// (`CKD_SHAn_KDF`: `H(Z || counter || shared_info)`) and the SP 800-56A concatenation
/// KDF (`CKD_SHAn_KDF_SP800`: `H(counter || Z || other_info)`), 32-bit counter from 1.
fn hash_kdf(
    hash: HashAlg,
    counter_first: bool,
    z: &[u8],
    shared_info: &[u8],
    len: usize,
) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(len + hash.output_len()));
    let mut counter: u32 = 1;
    while out.len() < len {
        let mut ctx = hash.context();
        if counter_first {
            ctx.update(&counter.to_be_bytes());
            ctx.update(z);
        } else {
            ctx.update(z);
            ctx.update(&counter.to_be_bytes());
        }
        ctx.update(shared_info);
        out.extend_from_slice(&ctx.finish());
        counter = counter.wrapping_add(1);
    }
    out.truncate(len);
    out
}

/// The derived secret from the shared secret `z` by the KDF `p` names (NIST curves and
/// X25519 alike): `CKD_NULL` gives `z` or its leftmost `len` bytes (§6.3.14), a hash
/// KDF `len` bytes (one `z` long without a length).
pub(super) fn apply_kdf(
    p: &Ecdh1Params,
    z: Zeroizing<Vec<u8>>,
    len: Option<usize>,
) -> Result<Zeroizing<Vec<u8>>> {
    let (hash, counter_first) = match p.kdf {
        CKD_NULL => {
            if !p.shared_data.is_empty() {
                return Err(Error::MechanismParamInvalid);
            }
            return match len {
                None => Ok(z),
                Some(n) if n <= z.len() => Ok(Zeroizing::new(z[..n].to_vec())),
                Some(_) => Err(Error::TemplateInconsistent),
            };
        }
        CKD_SHA1_KDF => (HashAlg::Sha1, false),
        CKD_SHA224_KDF => (HashAlg::Sha224, false),
        CKD_SHA256_KDF => (HashAlg::Sha256, false),
        CKD_SHA384_KDF => (HashAlg::Sha384, false),
        CKD_SHA512_KDF => (HashAlg::Sha512, false),
        CKD_SHA1_KDF_SP800 => (HashAlg::Sha1, true),
        CKD_SHA224_KDF_SP800 => (HashAlg::Sha224, true),
        CKD_SHA256_KDF_SP800 => (HashAlg::Sha256, true),
        CKD_SHA384_KDF_SP800 => (HashAlg::Sha384, true),
        CKD_SHA512_KDF_SP800 => (HashAlg::Sha512, true),
        _ => return Err(Error::MechanismParamInvalid),
    };
    let n = len.unwrap_or(z.len());
    if n == 0 || n > 64 * 1024 {
        return Err(Error::TemplateInconsistent);
    }
    Ok(hash_kdf(hash, counter_first, &z, &p.shared_data, n))
}
