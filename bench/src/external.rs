//! EXTERNAL keys with imported material and an expiry, made the way a KMS client makes them
//! through kmshsm's PKCS#11 interface (docs/key-model.md): CreateKey (C_CreateObject, origin
//! EXTERNAL, no value: PendingImport), GetParametersForImport (C_GenerateKeyPair of an SM2
//! wrapping pair naming the target), the material encrypted to the wrapping public key,
//! ImportKeyMaterial (C_UnwrapKey with the import token and CKA_KMSHSM_MATERIAL_EXPIRY),
//! then the wrapping pair destroyed (it serves one import only).
//!
//! The encryption step uses the module too (CKM_KMSHSM_SM2_ENCRYPT with a session public
//! key object built from the pair's CKA_PUBLIC_KEY_INFO): any SM2 implementation would do,
//! and this one needs no other library. kmshsm only: SoftHSMv2 has no such interface.
//! Nothing here is timed, and nothing here may write the token other than through
//! PKCS#11 calls.

use cryptoki::mechanism::vendor_defined::VendorDefinedMechanism;
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;

use crate::keys::id_bytes;
use crate::{err, Res};

const VENDOR: u64 = 0x8000_0000 | 0x4B4D_0000;
const CKA_KEY_ID: u64 = VENDOR | 0x01;
const CKA_ORIGIN: u64 = VENDOR | 0x02;
pub(crate) const CKA_KEY_STATE: u64 = VENDOR | 0x03;
const CKA_KEY_SPEC: u64 = VENDOR | 0x04;
const CKA_MATERIAL_EXPIRY: u64 = VENDOR | 0x06;
const CKA_IMPORT_TARGET: u64 = VENDOR | 0x07;
const CKA_WRAPPING_ALGORITHM: u64 = VENDOR | 0x08;
const CKA_IMPORT_TOKEN: u64 = VENDOR | 0x09;
const CKM_SM2_KEY_PAIR_GEN: u64 = VENDOR | 0x01;
const CKM_SM2_ENCRYPT: u64 = VENDOR | 0x03;
const CKK_SM2: u64 = VENDOR | 0x01;
const ORIGIN_EXTERNAL: u64 = 2;
const SPEC_AES_256: u64 = 1;
const WRAP_SM2PKE: u64 = 7;
pub(crate) const STATE_PENDING_IMPORT: u64 = 3;
/// DER of the SM2 curve OID 1.2.156.10197.1.301.
const SM2_OID: [u8; 10] = [0x06, 0x08, 0x2a, 0x81, 0x1c, 0xcf, 0x55, 0x01, 0x82, 0x2d];
/// 2100-01-01T00:00:00Z: the expiry of the cached tokens' imported keys (they must not
/// expire while a cached token is in use).
pub(crate) const FAR_EXPIRY: u64 = 4_102_444_800;

pub(crate) fn vbytes(ty: u64, v: &[u8]) -> Attribute {
    Attribute::VendorDefined((AttributeType::VendorDefined(ty as _), v.to_vec()))
}

pub(crate) fn vulong(ty: u64, v: u64) -> Attribute {
    vbytes(ty, &(v as std::os::raw::c_ulong).to_ne_bytes())
}

fn vmech(m: u64) -> Res<Mechanism<'static>> {
    let t = MechanismType::new_vendor_defined(m as _).map_err(err("vendor mechanism"))?;
    Ok(Mechanism::VendorDefined(VendorDefinedMechanism::new::<()>(
        t, None,
    )))
}

fn read(s: &Session, h: ObjectHandle, ty: u64) -> Res<Vec<u8>> {
    let a = s
        .get_attributes(h, &[AttributeType::VendorDefined(ty as _)])
        .map_err(err("C_GetAttributeValue"))?;
    match a.into_iter().next() {
        Some(Attribute::VendorDefined((_, v))) => Ok(v),
        Some(Attribute::PublicKeyInfo(v)) => Ok(v),
        other => Err(format!("attribute {ty:#x}: {other:?}")),
    }
}

/// The key material of key `i` (distinct per key; what it is does not matter).
fn material(i: usize) -> [u8; 32] {
    let mut v = [0x5cu8; 32];
    v[..8].copy_from_slice(&(i as u64).to_le_bytes());
    v[8] = 0xe7;
    v
}

/// An EXTERNAL key waiting for its material, with the material already wrapped.
pub(crate) struct Pending {
    key: ObjectHandle,
    wpub: ObjectHandle,
    wpriv: ObjectHandle,
    token: Vec<u8>,
    wrapped: Vec<u8>,
}

/// CreateKey + GetParametersForImport + wrapping, for key `i` (label `k<i>`, id `i`).
pub(crate) fn prepare_external(s: &Session, i: usize) -> Res<Pending> {
    let key = s
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Label(format!("k{i}").into_bytes()),
            Attribute::Id(id_bytes(i)),
            vulong(CKA_ORIGIN, ORIGIN_EXTERNAL),
            vulong(CKA_KEY_SPEC, SPEC_AES_256),
        ])
        .map_err(err("C_CreateObject(EXTERNAL)"))?;
    let key_id = read(s, key, CKA_KEY_ID)?;
    let (wpub, wpriv) = s
        .generate_key_pair(
            &vmech(CKM_SM2_KEY_PAIR_GEN)?,
            &[Attribute::Token(true)],
            &[
                Attribute::Token(true),
                vbytes(CKA_IMPORT_TARGET, &key_id),
                vulong(CKA_WRAPPING_ALGORITHM, WRAP_SM2PKE),
            ],
        )
        .map_err(err("GetParametersForImport"))?;
    let token = read(s, wpriv, CKA_IMPORT_TOKEN)?;
    let spki = s
        .get_attributes(wpub, &[AttributeType::PublicKeyInfo])
        .map_err(err("C_GetAttributeValue(CKA_PUBLIC_KEY_INFO)"))?;
    let Some(Attribute::PublicKeyInfo(spki)) = spki.into_iter().next() else {
        return Err("no CKA_PUBLIC_KEY_INFO".into());
    };
    // The SPKI ends with the BIT STRING of the uncompressed point (0x04 || X || Y).
    if spki.len() < 65 || spki[spki.len() - 65] != 0x04 {
        return Err("unexpected SM2 SubjectPublicKeyInfo".into());
    }
    let mut point = vec![0x04, 65];
    point.extend_from_slice(&spki[spki.len() - 65..]);
    let enc = s
        .create_object(&[
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::KeyType(KeyType::new_vendor_defined(CKK_SM2 as _).map_err(err("CKK"))?),
            Attribute::Token(false),
            Attribute::Encrypt(true),
            Attribute::EcParams(SM2_OID.to_vec()),
            Attribute::EcPoint(point),
        ])
        .map_err(err("C_CreateObject(SM2 public, session)"))?;
    let wrapped = s
        .encrypt(&vmech(CKM_SM2_ENCRYPT)?, enc, &material(i))
        .map_err(err("C_Encrypt(SM2)"))?;
    s.destroy_object(enc).map_err(err("C_DestroyObject"))?;
    Ok(Pending {
        key,
        wpub,
        wpriv,
        token,
        wrapped,
    })
}

/// ImportKeyMaterial with `expiry` (unix seconds), then (with `tidy`) the wrapping pair is
/// destroyed; else it stays until the module purges it when its import token expires.
pub(crate) fn import(s: &Session, p: Pending, expiry: u64, tidy: bool) -> Res<ObjectHandle> {
    let h = s
        .unwrap_key(
            &vmech(CKM_SM2_ENCRYPT)?,
            p.wpriv,
            &p.wrapped,
            &[
                vbytes(CKA_IMPORT_TOKEN, &p.token),
                vulong(CKA_MATERIAL_EXPIRY, expiry),
            ],
        )
        .map_err(err("ImportKeyMaterial (C_UnwrapKey)"))?;
    if h != p.key {
        return Err("the import returned another handle than its target's".into());
    }
    if tidy {
        s.destroy_object(p.wpriv).map_err(err("C_DestroyObject"))?;
        s.destroy_object(p.wpub).map_err(err("C_DestroyObject"))?;
    }
    Ok(h)
}
