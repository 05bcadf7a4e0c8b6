//! A key object's material in usable form, built once per object version and cached.
//!
//! `Key::from_object` turns attributes (and opened secrets) into parsed crypto keys:
//! RSA components into an aws-lc key, EC scalars and points into checked keys. Parsing
//! an RSA key costs more than signing with it, so the result is cached in the object
//! (which is immutable; a change makes a new object). This module must not check usage
//! rights; the token does before handing a key out.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use crate::ck::*;
use zeroize::Zeroizing;

use super::attr::AttrType;
use super::Object;
use crate::crypto::aes;
use crate::crypto::curve25519::{self, Curve25519, Ed25519Private, X25519Private};
use crate::crypto::curve448::{self, Ed448Private, X448Private};
use crate::crypto::ec::{self, Curve, EcPrivateKey};
use crate::crypto::rsa::{RsaComponents, RsaPrivateKey, RsaPublicKey};
use crate::crypto::sm;
use crate::error::{Error, Result};
use crate::vendor;

pub const CKK_SM2: KeyType = vendor::CKK_KMSHSM_SM2;
pub const CKK_SM4: KeyType = vendor::CKK_KMSHSM_SM4;

#[derive(Debug)]
pub enum Material {
    Secret(Zeroizing<Vec<u8>>),
    RsaPrivate(RsaPrivateKey),
    RsaPublic(RsaPublicKey),
    EcPrivate(EcPrivateKey),
    EcPublic {
        curve: Curve,
        point: Vec<u8>,
    },
    Sm2Private {
        d: Zeroizing<Vec<u8>>,
        point: Vec<u8>,
    },
    Sm2Public {
        point: Vec<u8>,
    },
    Ed25519Private(Ed25519Private),
    Ed25519Public([u8; curve25519::KEY_LEN]),
    X25519Private(X25519Private),
    X25519Public([u8; curve25519::KEY_LEN]),
    Ed448Private(Ed448Private),
    Ed448Public([u8; curve448::ED448_KEY_LEN]),
    X448Private(X448Private),
    X448Public([u8; curve448::X448_KEY_LEN]),
}

#[derive(Debug)]
pub struct Key {
    pub class: ObjectClass,
    pub key_type: KeyType,
    pub material: Material,
    /// Per-mechanism forms of the material, built on first use and dropped with the key.
    pub prepared: Prepared,
}

/// Key schedules built from a key's material the first time a mechanism needs them, so
/// that each operation's init does not build them again. They live exactly as long as
/// the `Key` (a changed or destroyed object drops its key, and the schedules with it),
/// and are held in memory their library wipes on release.
#[derive(Debug, Default)]
pub struct Prepared {
    aes_gcm: OnceLock<aes::GcmKey>,
}

fn plain(object: &Object, ty: AttrType) -> Option<&[u8]> {
    object.value(ty).and_then(|v| v.as_bytes())
}

fn secret(secrets: &BTreeMap<AttrType, Zeroizing<Vec<u8>>>, ty: AttrType) -> &[u8] {
    secrets.get(&ty).map_or(&[], |v| v.as_slice())
}

impl Key {
    /// Builds the key of `object`; `secrets` are its opened secret attributes.
    pub(crate) fn from_object(
        object: &Object,
        secrets: &BTreeMap<AttrType, Zeroizing<Vec<u8>>>,
    ) -> Result<Key> {
        let key_type = object.key_type.ok_or(Error::KeyHandleInvalid)?;
        let broken = || Error::KeyTypeInconsistent;
        let material = match (object.class, key_type) {
            (CKO_SECRET_KEY, _) => {
                Material::Secret(Zeroizing::new(secret(secrets, CKA_VALUE).to_vec()))
            }
            (CKO_PRIVATE_KEY, CKK_RSA) => {
                let c = RsaComponents {
                    n: plain(object, CKA_MODULUS).unwrap_or(&[]).to_vec(),
                    e: plain(object, CKA_PUBLIC_EXPONENT).unwrap_or(&[]).to_vec(),
                    d: Zeroizing::new(secret(secrets, CKA_PRIVATE_EXPONENT).to_vec()),
                    p: Zeroizing::new(secret(secrets, CKA_PRIME_1).to_vec()),
                    q: Zeroizing::new(secret(secrets, CKA_PRIME_2).to_vec()),
                    dp: Zeroizing::new(secret(secrets, CKA_EXPONENT_1).to_vec()),
                    dq: Zeroizing::new(secret(secrets, CKA_EXPONENT_2).to_vec()),
                    qinv: Zeroizing::new(secret(secrets, CKA_COEFFICIENT).to_vec()),
                };
                Material::RsaPrivate(RsaPrivateKey::new(&c).map_err(|_| broken())?)
            }
            (CKO_PUBLIC_KEY, CKK_RSA) => Material::RsaPublic(
                RsaPublicKey::new(
                    plain(object, CKA_MODULUS).unwrap_or(&[]),
                    plain(object, CKA_PUBLIC_EXPONENT).unwrap_or(&[]),
                )
                .map_err(|_| broken())?,
            ),
            (CKO_PRIVATE_KEY, CKK_EC) => {
                let curve = Curve::from_oid(plain(object, CKA_EC_PARAMS).unwrap_or(&[]))?;
                Material::EcPrivate(
                    EcPrivateKey::new(curve, secret(secrets, CKA_VALUE)).map_err(|_| broken())?,
                )
            }
            (CKO_PUBLIC_KEY, CKK_EC) => {
                let curve = Curve::from_oid(plain(object, CKA_EC_PARAMS).unwrap_or(&[]))?;
                let point = ec::point_from_attribute(plain(object, CKA_EC_POINT).unwrap_or(&[]));
                Material::EcPublic { curve, point }
            }
            (CKO_PRIVATE_KEY, CKK_SM2) => {
                let d = Zeroizing::new(secret(secrets, CKA_VALUE).to_vec());
                // The point the signature's Z_A needs is derived from d, never trusted
                // from an attribute that could disagree with it.
                let point = sm::sm2_public_from_private(&d)
                    .map_err(|_| broken())?
                    .to_vec();
                Material::Sm2Private { d, point }
            }
            (CKO_PUBLIC_KEY, CKK_SM2) => {
                // A point off the curve is no key (review 23b: it answered
                // CKR_ATTRIBUTE_VALUE_INVALID from C_VerifyInit and C_Encrypt).
                let point = ec::point_from_attribute(plain(object, CKA_EC_POINT).unwrap_or(&[]));
                sm::sm2_check_public(&point).map_err(|_| broken())?;
                Material::Sm2Public { point }
            }
            (class @ (CKO_PRIVATE_KEY | CKO_PUBLIC_KEY), CKK_EC_EDWARDS)
                if curve448::is_ed448_params(plain(object, CKA_EC_PARAMS).unwrap_or(&[])) =>
            {
                if class == CKO_PUBLIC_KEY {
                    Material::Ed448Public(
                        curve448::public_from_attribute(plain(object, CKA_EC_POINT).unwrap_or(&[]))
                            .map_err(|_| broken())?,
                    )
                } else {
                    // Without libcrypto.so.3 the key stays unusable: CKR_CURVE_NOT_SUPPORTED.
                    Material::Ed448Private(
                        Ed448Private::from_seed(secret(secrets, CKA_VALUE)).map_err(
                            |e| match e {
                                Error::CurveNotSupported => e,
                                _ => broken(),
                            },
                        )?,
                    )
                }
            }
            (class @ (CKO_PRIVATE_KEY | CKO_PUBLIC_KEY), CKK_EC_MONTGOMERY)
                if curve448::is_x448_params(plain(object, CKA_EC_PARAMS).unwrap_or(&[])) =>
            {
                if class == CKO_PUBLIC_KEY {
                    Material::X448Public(
                        curve448::public_from_attribute(plain(object, CKA_EC_POINT).unwrap_or(&[]))
                            .map_err(|_| broken())?,
                    )
                } else {
                    // Without libcrypto.so.3 the key stays unusable: CKR_CURVE_NOT_SUPPORTED.
                    Material::X448Private(
                        X448Private::from_scalar(secret(secrets, CKA_VALUE)).map_err(
                            |e| match e {
                                Error::CurveNotSupported => e,
                                _ => broken(),
                            },
                        )?,
                    )
                }
            }
            (class @ (CKO_PRIVATE_KEY | CKO_PUBLIC_KEY), CKK_EC_EDWARDS | CKK_EC_MONTGOMERY) => {
                let curve = Curve25519::from_params(plain(object, CKA_EC_PARAMS).unwrap_or(&[]))?;
                let edwards = key_type == CKK_EC_EDWARDS;
                if edwards != (curve == Curve25519::Edwards) {
                    return Err(broken());
                }
                if class == CKO_PUBLIC_KEY {
                    let public = curve25519::public_from_attribute(
                        plain(object, CKA_EC_POINT).unwrap_or(&[]),
                    )
                    .map_err(|_| broken())?;
                    if edwards {
                        Material::Ed25519Public(public)
                    } else {
                        Material::X25519Public(public)
                    }
                } else {
                    let value = secret(secrets, CKA_VALUE);
                    if edwards {
                        Material::Ed25519Private(
                            Ed25519Private::from_seed(value).map_err(|_| broken())?,
                        )
                    } else {
                        Material::X25519Private(
                            X25519Private::from_scalar(value).map_err(|_| broken())?,
                        )
                    }
                }
            }
            _ => return Err(broken()),
        };
        Ok(Key {
            class: object.class,
            key_type,
            material,
            prepared: Prepared::default(),
        })
    }

    /// A secret key's value, checked to be of `key_type` and one of `lens` bytes long.
    pub(crate) fn secret_of(&self, key_type: KeyType, lens: &[usize]) -> Result<&[u8]> {
        if self.key_type != key_type {
            return Err(Error::KeyTypeInconsistent);
        }
        let value = self.secret()?;
        if !lens.contains(&value.len()) {
            return Err(Error::KeySizeRange);
        }
        Ok(value)
    }

    /// An AES key's value and the key prepared for GCM, built on first use. Building it
    /// computes with the secret on the stack, so the call that does is noted
    /// (`secret_use`).
    pub fn aes_gcm(&self) -> Result<(&[u8], &aes::GcmKey)> {
        let value = self.secret_of(CKK_AES, &[16, 24, 32])?;
        if let Some(prepared) = self.prepared.aes_gcm.get() {
            return Ok((value, prepared));
        }
        crate::secret_use::note();
        let built = aes::GcmKey::new(value)?;
        // A concurrent first use may have won; either schedule is of the same key.
        Ok((value, self.prepared.aes_gcm.get_or_init(|| built)))
    }

    pub fn secret(&self) -> Result<&[u8]> {
        match &self.material {
            Material::Secret(v) => Ok(v),
            _ => Err(Error::KeyTypeInconsistent),
        }
    }
}
