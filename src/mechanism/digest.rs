//! Message digests: `CKM_SHA_1`, `CKM_SHA224`, `CKM_SHA256`, `CKM_SHA384`, `CKM_SHA512`.

use crate::ck::*;

use super::{info, no_param, Mechanism, Param};
use crate::crypto::hash::{HashAlg, HashContext};
use crate::error::Result;
use crate::operation::Digester;

/// The hash of a digest or hash-and-sign mechanism.
pub(crate) fn hash_of(kind: MechType) -> Option<HashAlg> {
    Some(match kind {
        CKM_SHA_1 => HashAlg::Sha1,
        CKM_SHA224 => HashAlg::Sha224,
        CKM_SHA256 => HashAlg::Sha256,
        CKM_SHA384 => HashAlg::Sha384,
        CKM_SHA512 => HashAlg::Sha512,
        _ => return None,
    })
}

#[derive(Debug)]
pub(crate) struct Sha(pub MechType, pub HashAlg);

pub(crate) static MECHANISMS: &[&dyn Mechanism] = &[
    &Sha(CKM_SHA_1, HashAlg::Sha1),
    &Sha(CKM_SHA224, HashAlg::Sha224),
    &Sha(CKM_SHA256, HashAlg::Sha256),
    &Sha(CKM_SHA384, HashAlg::Sha384),
    &Sha(CKM_SHA512, HashAlg::Sha512),
];

impl Mechanism for Sha {
    fn kind(&self) -> MechType {
        self.0
    }
    fn info(&self) -> CK_MECHANISM_INFO {
        info(0, 0, CKF_DIGEST)
    }
    fn digest(&self, param: &Param) -> Result<Box<dyn Digester>> {
        no_param(param)?;
        Ok(Box::new(HashDigester::new(self.1)))
    }
}

/// A streaming SHA digest.
#[derive(Debug)]
pub(crate) struct HashDigester {
    alg: HashAlg,
    ctx: Option<HashContext>,
}

impl HashDigester {
    pub(crate) fn new(alg: HashAlg) -> HashDigester {
        HashDigester {
            alg,
            ctx: Some(alg.context()),
        }
    }
}

impl Digester for HashDigester {
    fn update(&mut self, data: &[u8]) {
        if let Some(ctx) = self.ctx.as_mut() {
            ctx.update(data);
        }
    }
    fn finish(&mut self) -> Vec<u8> {
        self.ctx.take().map(HashContext::finish).unwrap_or_default()
    }
    fn output_len(&self) -> usize {
        self.alg.output_len()
    }
}
