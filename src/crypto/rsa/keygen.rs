//! RSA key generation of any modulus length, including lengths that are not a multiple
//! of 128 (or of 8) bits, which aws-lc's own generator rounds down.
//!
//! FIPS 186-4 §B.3.3 in outline: two probable primes of ⌈bits/2⌉ and ⌊bits/2⌋ bits from
//! aws-lc (top two bits set, so n has exactly `bits` bits), each with p−1 prime to e,
//! |p−q| > 2^(bits/2−100), d = e⁻¹ mod lcm(p−1, q−1) > 2^(bits/2). The result is then
//! checked by aws-lc's `RSA_check_key` through `RsaPrivateKey::new` by the caller.
//! Public exponent 65537 only. This module must not know about PKCS#11 and must not
//! use `unsafe` (the `BIGNUM` calls are in `raw.rs`).

use std::cmp::Ordering;

use super::raw::{Bn, BnCtx};
use super::RsaComponents;
use crate::error::{Error, Result};

/// The public exponent generated keys get.
const E: u64 = 65537;

/// Attempts at a prime before giving up (each fails with probability about 1/65537,
/// from p−1 being a multiple of e).
const PRIME_TRIES: usize = 64;

/// A prime of `bits` bits with p−1 prime to e (65537 is prime: p−1 ≢ 0 mod e).
fn prime(bits: usize) -> Result<Bn> {
    for _ in 0..PRIME_TRIES {
        let p = Bn::random_prime(bits)?;
        if p.mod_u64(E)? != 1 {
            return Ok(p);
        }
    }
    Err(Error::Internal("RSA prime generation"))
}

/// A key pair whose modulus has exactly `bits` bits (at least 1024), e = 65537.
pub(super) fn generate(bits: usize) -> Result<RsaComponents> {
    if bits < 1024 {
        return Err(Error::KeySizeRange);
    }
    let mut ctx = BnCtx::new()?;
    let one = Bn::from_u64(1)?;
    let e = Bn::from_u64(E)?;
    for _ in 0..PRIME_TRIES {
        let (mut p, mut q) = (prime(bits.div_ceil(2))?, prime(bits / 2)?);
        // FIPS 186-4 §B.3.3 step 5.4: p and q must not be too close.
        if p.sub(&q)?.bits() <= bits / 2 - 100 {
            continue;
        }
        if p.cmp(&q) == Ordering::Less {
            std::mem::swap(&mut p, &mut q);
        }
        let (pm1, qm1) = (p.sub(&one)?, q.sub(&one)?);
        let phi = pm1.mul(&qm1, &mut ctx)?;
        let (lcm, _) = phi.div_rem(&pm1.gcd(&qm1, &mut ctx)?, &mut ctx)?;
        let d = e.mod_inverse(&lcm, &mut ctx)?;
        // FIPS 186-4 §B.3.1 criterion 3(b): d > 2^(nlen/2).
        if d.bits() <= bits / 2 {
            continue;
        }
        let n = p.mul(&q, &mut ctx)?;
        if n.bits() != bits {
            return Err(Error::Internal("RSA modulus length"));
        }
        let (_, dp) = d.div_rem(&pm1, &mut ctx)?;
        let (_, dq) = d.div_rem(&qm1, &mut ctx)?;
        let qinv = q.mod_inverse(&p, &mut ctx)?;
        return Ok(RsaComponents {
            n: n.to_be_bytes()?.to_vec(),
            e: e.to_be_bytes()?.to_vec(),
            d: d.to_be_bytes()?,
            p: p.to_be_bytes()?,
            q: q.to_be_bytes()?,
            dp: dp.to_be_bytes()?,
            dq: dq.to_be_bytes()?,
            qinv: qinv.to_be_bytes()?,
        });
    }
    Err(Error::Internal("RSA key generation"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::hash::HashAlg;
    use crate::crypto::rsa::{bit_len, RsaPrivateKey, RsaPublicKey};

    #[test]
    fn odd_lengths_have_exactly_the_requested_bits_and_work() {
        for bits in [1027, 2056, 2057] {
            let c = generate(bits).unwrap();
            assert_eq!(bit_len(&c.n), bits);
            assert_eq!(c.e, vec![1, 0, 1]);
            // aws-lc's RSA_check_key accepts it.
            let private = RsaPrivateKey::new(&c).unwrap();
            let public = RsaPublicKey::new(&c.n, &c.e).unwrap();
            assert_eq!(private.size(), bits.div_ceil(8));
            let m = HashAlg::Sha256.digest(b"odd");
            let sig = private.sign_pss(&m, HashAlg::Sha256, 32).unwrap();
            public.verify_pss(&m, &sig, HashAlg::Sha256, 32).unwrap();
            let di = [HashAlg::Sha256.digest_info_prefix(), &m].concat();
            let sig = private.sign_pkcs1(&di).unwrap();
            public.verify_pkcs1(&di, &sig).unwrap();
        }
    }

    #[test]
    fn too_small_is_refused() {
        assert!(matches!(generate(1023), Err(Error::KeySizeRange)));
    }
}
