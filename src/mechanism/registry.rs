//! The one list of mechanisms, gathered from each family.

use std::sync::LazyLock;

use crate::ids::MechType;

use super::params::Layout;
use super::Mechanism;
use crate::object::handle_hash::HandleMap;

/// Every mechanism, and an index from mechanism type to position.
type Registry = (
    Vec<&'static dyn Mechanism>,
    // The module's own list: `object::handle_hash` says why no SipHash is needed.
    HandleMap<MechType, usize>,
);

static REGISTRY: LazyLock<Registry> = LazyLock::new(|| {
    let all: Vec<&'static dyn Mechanism> = [
        super::digest::MECHANISMS,
        super::aes::MECHANISMS,
        super::hmac::MECHANISMS,
        super::rsa::MECHANISMS,
        super::rsa_raw::MECHANISMS,
        super::ec::MECHANISMS,
        super::eddsa::MECHANISMS,
        super::montgomery::MECHANISMS,
        super::sm::MECHANISMS,
        super::wrap::MECHANISMS,
        super::envelope::MECHANISMS,
        super::des::MECHANISMS,
        super::simple_derive::MECHANISMS,
        super::kbkdf::MECHANISMS,
        super::hkdf::MECHANISMS,
        super::aes_derive::MECHANISMS,
    ]
    .concat();
    let index = all.iter().enumerate().map(|(i, m)| (m.kind(), i)).collect();
    (all, index)
});

/// Whether `m` is available now: legacy mechanisms only with `legacy_algorithms` on.
fn available(m: &&'static dyn Mechanism) -> bool {
    !m.legacy() || crate::legacy::enabled()
}

pub fn all() -> impl Iterator<Item = &'static dyn Mechanism> {
    REGISTRY.0.iter().copied().filter(available)
}

pub fn find(kind: MechType) -> Option<&'static dyn Mechanism> {
    REGISTRY
        .1
        .get(&kind)
        .map(|i| REGISTRY.0[*i])
        .filter(available)
}

/// The parameter structure of a mechanism the module has (and has turned on); `None` for
/// any other, which the caller answers with `CKR_MECHANISM_INVALID`.
pub(crate) fn parameter_layout(kind: MechType) -> Option<Layout> {
    find(kind).map(|_| super::params::layout(kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mechanism_is_listed_once_and_claims_a_function() {
        let mut seen = std::collections::HashSet::new();
        for m in REGISTRY.0.iter() {
            assert!(seen.insert(m.kind()), "{:#x} listed twice", m.kind());
            assert_ne!(m.info().flags, 0, "{:#x} claims no function", m.kind());
        }
    }
}
