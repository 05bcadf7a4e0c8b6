//! The mechanism registry: what `C_GetMechanismList` and `C_GetMechanismInfo` report.
//!
//! The foundation implements no cryptographic mechanism yet, and the registry says so
//! truthfully: the list is empty and every mechanism is `CKR_MECHANISM_INVALID`.
//! Mechanism families join here, one file each, behind one trait.

use cryptoki_sys::{CK_MECHANISM_INFO, CK_MECHANISM_TYPE};

/// Every mechanism the module implements, with what it supports.
const REGISTRY: &[(CK_MECHANISM_TYPE, CK_MECHANISM_INFO)] = &[];

pub fn list() -> Vec<CK_MECHANISM_TYPE> {
    REGISTRY.iter().map(|(m, _)| *m).collect()
}

pub fn info(mechanism: CK_MECHANISM_TYPE) -> Option<CK_MECHANISM_INFO> {
    REGISTRY
        .iter()
        .find(|(m, _)| *m == mechanism)
        .map(|(_, i)| *i)
}
