//! SP 800-108 key-based key derivation (PKCS#11 3.0 Current Mechanisms §2.42):
//! `CKM_SP800_108_COUNTER_KDF`, `CKM_SP800_108_FEEDBACK_KDF` and
//! `CKM_SP800_108_DOUBLE_PIPELINE_KDF`, with HMAC-SHA-1/SHA-2 or AES-CMAC as the PRF.
//!
//! The PRF input is the caller's `CK_PRF_DATA_PARAM` list concatenated in order, the
//! iteration variable, counter and DKM length encoded as the list says. Several keys may
//! be derived at once (`CK_DERIVED_KEY`); each starts on a fresh PRF output segment
//! (§2.42.7). The checks of §2.42 on the data list (which fields each mode requires,
//! allows once, or forbids) answer `CKR_MECHANISM_PARAM_INVALID`. Derived keys take the
//! base key's `CKA_SENSITIVE`/`CKA_EXTRACTABLE` when their template is silent
//! (`DeriveRule::InheritBase`, §2.42.8). This module must not touch sessions or the store.

use crate::ck::*;
use aws_lc_rs::hmac;
use zeroize::Zeroizing;

use super::params::{IntFormat, KbkdfParams, PrfData};
use super::{info, DeriveInput, DeriveRule, Mechanism, Param};
use crate::crypto::aes::Cmac;
use crate::error::{Error, Result};
use crate::object::key::Key;

/// Most derived keying material one call makes, in bytes (all keys together).
const MAX_DKM_LEN: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Counter,
    Feedback,
    Pipeline,
}

#[derive(Debug)]
pub(super) struct Kbkdf {
    kind: MechType,
    mode: Mode,
}

pub(super) static MECHANISMS: &[&dyn Mechanism] = &[
    &Kbkdf {
        kind: CKM_SP800_108_COUNTER_KDF,
        mode: Mode::Counter,
    },
    &Kbkdf {
        kind: CKM_SP800_108_FEEDBACK_KDF,
        mode: Mode::Feedback,
    },
    &Kbkdf {
        kind: CKM_SP800_108_DOUBLE_PIPELINE_KDF,
        mode: Mode::Pipeline,
    },
];

/// The pseudorandom function, keyed with the base key.
enum Prf {
    Hmac(Box<hmac::Key>),
    Cmac(Zeroizing<Vec<u8>>),
}

impl Prf {
    fn new(prf: MechType, base: &Key) -> Result<Prf> {
        let algorithm = match prf {
            CKM_AES_CMAC => {
                let key = base.secret_of(CKK_AES, &[16, 24, 32])?;
                return Ok(Prf::Cmac(Zeroizing::new(key.to_vec())));
            }
            CKM_SHA_1_HMAC => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            CKM_SHA224_HMAC => hmac::HMAC_SHA224,
            CKM_SHA256_HMAC => hmac::HMAC_SHA256,
            CKM_SHA384_HMAC => hmac::HMAC_SHA384,
            CKM_SHA512_HMAC => hmac::HMAC_SHA512,
            _ => return Err(Error::MechanismParamInvalid),
        };
        let secret = base.secret()?;
        if secret.is_empty() {
            return Err(Error::KeySizeRange);
        }
        Ok(Prf::Hmac(Box::new(hmac::Key::new(algorithm, secret))))
    }

    fn output_len(&self) -> usize {
        match self {
            Prf::Hmac(k) => k.algorithm().digest_algorithm().output_len(),
            Prf::Cmac(_) => 16,
        }
    }

    fn run(&self, input: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        match self {
            Prf::Hmac(k) => Ok(Zeroizing::new(hmac::sign(k, input).as_ref().to_vec())),
            Prf::Cmac(k) => {
                let mut mac = Cmac::new(k)?;
                mac.update(input)?;
                Ok(Zeroizing::new(mac.finalize()?.to_vec()))
            }
        }
    }
}

/// `value` in `format` (a width of whole bytes); a value that does not fit is refused.
fn encode(value: u64, format: IntFormat) -> Result<Vec<u8>> {
    let bytes = usize::try_from(format.width_bits / 8).map_err(|_| Error::MechanismParamInvalid)?;
    if bytes < 8 && value >> (bytes * 8) != 0 {
        return Err(Error::MechanismParamInvalid);
    }
    let be = value.to_be_bytes();
    let mut out = be[8 - bytes..].to_vec();
    if format.little_endian {
        out.reverse();
    }
    Ok(out)
}

/// The data list checked against §2.42's rules for `mode`: the iteration variable once
/// (with a counter format in counter mode, without one otherwise), an optional counter
/// at most once (never in counter mode), a DKM length at most once, and widths that are
/// whole bytes (counters 8 to 32 bits, DKM lengths 8 to 64 bits).
fn check_data(mode: Mode, data: &[PrfData]) -> Result<()> {
    let bad = Err(Error::MechanismParamInvalid);
    let (mut iterations, mut counters, mut dkms) = (0, 0, 0);
    for d in data {
        match d {
            PrfData::Iteration(format) => {
                iterations += 1;
                match (mode, format) {
                    (Mode::Counter, Some(f)) if counter_width_ok(*f) => {}
                    (Mode::Feedback | Mode::Pipeline, None) => {}
                    _ => return bad,
                }
            }
            PrfData::Counter(f) => {
                counters += 1;
                if mode == Mode::Counter || !counter_width_ok(*f) {
                    return bad;
                }
            }
            PrfData::DkmLength { method, format } => {
                dkms += 1;
                let method_ok = matches!(
                    *method as CK_ULONG,
                    CK_SP800_108_DKM_LENGTH_SUM_OF_KEYS | CK_SP800_108_DKM_LENGTH_SUM_OF_SEGMENTS
                );
                let w = format.width_bits;
                if !method_ok || w == 0 || w > 64 || w % 8 != 0 {
                    return bad;
                }
            }
            PrfData::Bytes(_) => {}
        }
    }
    if iterations != 1 || counters > 1 || dkms > 1 {
        return bad;
    }
    Ok(())
}

fn counter_width_ok(f: IntFormat) -> bool {
    matches!(f.width_bits, 8 | 16 | 24 | 32)
}

impl Kbkdf {
    /// The PRF input for iteration `i` (from 1), the iteration variable's bytes being
    /// `chained` in feedback and pipeline modes; `None` for `i` builds the pipeline's
    /// A(0), which leaves out the iteration variable and the counter (§2.42.6).
    fn input(
        &self,
        data: &[PrfData],
        i: Option<u64>,
        chained: &[u8],
        dkm_bits: u64,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let mut out = Zeroizing::new(Vec::new());
        for d in data {
            match (d, i) {
                (PrfData::Iteration(Some(f)), Some(i)) => out.extend(encode(i, *f)?),
                (PrfData::Iteration(None), Some(_)) => out.extend_from_slice(chained),
                (PrfData::Counter(f), Some(i)) => out.extend(encode(i, *f)?),
                (PrfData::Iteration(_) | PrfData::Counter(_), None) => {}
                (PrfData::DkmLength { format, .. }, _) => out.extend(encode(dkm_bits, *format)?),
                (PrfData::Bytes(b), _) => out.extend_from_slice(b),
            }
        }
        Ok(out)
    }

    fn run(&self, p: &KbkdfParams, base: &Key, lens: &[usize]) -> Result<Vec<Zeroizing<Vec<u8>>>> {
        check_data(self.mode, &p.data)?;
        if self.mode != Mode::Feedback && !p.iv.is_empty() {
            return Err(Error::MechanismParamInvalid);
        }
        let prf = Prf::new(p.prf, base)?;
        let h = prf.output_len();
        // Each length is the caller's CKA_VALUE_LEN (up to 2^64 - 1): bounded before any
        // arithmetic on it, so that no sum or product can overflow.
        if lens.iter().any(|n| *n > MAX_DKM_LEN) {
            return Err(Error::KeySizeRange);
        }
        let segments: Vec<usize> = lens.iter().map(|n| n.div_ceil(h)).collect();
        let blocks: usize = segments.iter().sum();
        if blocks * h > MAX_DKM_LEN {
            return Err(Error::KeySizeRange);
        }
        // The counter must not wrap: at most 2^r - 1 iterations (§2.42.4-6).
        for d in &p.data {
            if let PrfData::Iteration(Some(f)) | PrfData::Counter(f) = d {
                if (blocks as u64) >> f.width_bits != 0 {
                    return Err(Error::MechanismParamInvalid);
                }
            }
        }
        let dkm_bits = p
            .data
            .iter()
            .find_map(|d| match d {
                PrfData::DkmLength { method, .. } => Some(*method),
                _ => None,
            })
            .map_or(0, |method| {
                if method as CK_ULONG == CK_SP800_108_DKM_LENGTH_SUM_OF_KEYS {
                    lens.iter().sum::<usize>() as u64 * 8
                } else {
                    (blocks * h) as u64 * 8
                }
            });
        let mut dkm = Zeroizing::new(Vec::with_capacity(blocks * h));
        let mut chained = Zeroizing::new(match self.mode {
            Mode::Counter => Vec::new(),
            Mode::Feedback => p.iv.clone(),
            Mode::Pipeline => self.input(&p.data, None, &[], dkm_bits)?.to_vec(),
        });
        for i in 1..=blocks as u64 {
            if self.mode == Mode::Pipeline {
                chained = prf.run(&chained)?;
            }
            let k = prf.run(&self.input(&p.data, Some(i), &chained, dkm_bits)?)?;
            dkm.extend_from_slice(&k);
            if self.mode == Mode::Feedback {
                chained = k;
            }
        }
        let mut keys = Vec::with_capacity(lens.len());
        let mut at = 0;
        for (len, segs) in lens.iter().zip(&segments) {
            keys.push(Zeroizing::new(dkm[at..at + len].to_vec()));
            at += segs * h;
        }
        Ok(keys)
    }
}

impl Mechanism for Kbkdf {
    fn kind(&self) -> MechType {
        self.kind
    }
    fn info(&self) -> CK_MECHANISM_INFO {
        // Base key sizes in bits (§2.42): generic secrets from 8 bits, AES to 256.
        info(8, 4096, CKF_DERIVE)
    }
    fn derive_keys(
        &self,
        param: &Param,
        base: &Key,
        input: &DeriveInput,
    ) -> Result<Vec<Zeroizing<Vec<u8>>>> {
        let Param::Kbkdf(p) = param else {
            return Err(Error::MechanismParamInvalid);
        };
        if input.other.is_some() || input.lens.len() != 1 + p.additional_keys {
            return Err(Error::MechanismParamInvalid);
        }
        let lens = input
            .lens
            .iter()
            .map(|l| l.filter(|n| *n > 0).ok_or(Error::TemplateIncomplete))
            .collect::<Result<Vec<_>>>()?;
        self.run(p, base, &lens)
    }
    fn derive_rule(&self) -> DeriveRule {
        DeriveRule::InheritBase
    }
}

#[cfg(test)]
mod tests;
