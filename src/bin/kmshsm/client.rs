//! The command line's view of a token: one logged-in read/write session, and the KMS
//! operations of the kms-docs expressed with the library's PKCS#11 semantics (the same
//! calls the C ABI makes, without the ABI).

use std::sync::Arc;

use kmshsm::ck::*;
use kmshsm::error::{Error, Result};
use kmshsm::ids::{ObjectHandle, SlotId};
use kmshsm::kms::blob::{self, CiphertextBlob};
use kmshsm::kms::import::WrappingAlgorithm;
use kmshsm::kms::key::{KeyId, KeySpec, KeyState, KeyUsage, Origin};
use kmshsm::kms::KmsError;
use kmshsm::mechanism::params::{GcmParams, Iv, OaepParams, PssParams};
use kmshsm::mechanism::{sm as sm_mech, MechanismArg, Param};
use kmshsm::operation::Output;
use kmshsm::provider::{self, InitOptions, Provider};
use kmshsm::session::crypto::Direction;
use kmshsm::session::Session;
use kmshsm::token::shape;
use kmshsm::token::UserKind;
use kmshsm::vendor as v;

use crate::attrs::{boolean, bytes, ulong, ulong_of, value_of};

/// How to find the token.
pub(crate) enum TokenChoice {
    Label(String),
    Slot(SlotId),
    /// The only initialised token.
    Only,
}

pub(crate) struct Client {
    _provider: Arc<Provider>,
    pub session: Arc<Session>,
}

/// What GetParametersForImport gives: the wrapping public key (DER SPKI), the import
/// token and its expiry (unix seconds), and the wrapping pair's `CKA_LABEL` and `CKA_ID`.
pub(crate) struct ImportParameters {
    pub public_key: Vec<u8>,
    pub token: Vec<u8>,
    pub expiry: u64,
    pub label: String,
    pub id: Vec<u8>,
}

/// What DescribeKey shows.
pub(crate) struct KeyMetadata {
    pub key_id: String,
    pub key_spec: Option<KeySpec>,
    pub key_usage: Option<KeyUsage>,
    pub origin: Option<Origin>,
    pub state: Option<KeyState>,
    pub alias: String,
    pub description: String,
    pub material_expiry: u64,
}

fn pkcs11_label(label: &[u8; 32]) -> String {
    String::from_utf8_lossy(label).trim_end().to_string()
}

impl Client {
    pub(crate) fn open(choice: TokenChoice, pin: &[u8]) -> Result<Client> {
        provider::initialize(InitOptions::default())?;
        let p = provider::get()?;
        p.rescan()?;
        let mut slots = Vec::new();
        for id in p.slot_ids() {
            let view = p.slot(id)?;
            if let Some(token) = view.token {
                let label = pkcs11_label(&token.status()?.label);
                slots.push((id, label));
            }
        }
        let slot = match choice {
            TokenChoice::Slot(s) => slots.iter().find(|(id, _)| *id == s).map(|(id, _)| *id),
            TokenChoice::Label(l) => slots
                .iter()
                .find(|(_, label)| *label == l)
                .map(|(id, _)| *id),
            TokenChoice::Only if slots.len() == 1 => Some(slots[0].0),
            TokenChoice::Only => None,
        }
        .ok_or(Error::SlotIdInvalid)?;
        let handle = p.open_session(slot, true)?;
        let session = p.session(handle)?;
        session.token.login(session.handle, UserKind::User, pin)?;
        Ok(Client {
            _provider: p,
            session,
        })
    }

    fn caller(&self) -> kmshsm::token::Caller {
        self.session.caller()
    }

    /// The handles of the key `key_id`: (private or secret, public).
    pub(crate) fn key(&self, key_id: &str) -> Result<(ObjectHandle, Option<ObjectHandle>)> {
        let found = self
            .session
            .token
            .find(&[bytes(v::CKA_KMSHSM_KEY_ID, key_id.as_bytes())])?;
        let mut main = None;
        let mut public = None;
        for h in found {
            let class = self.ulong(h, CKA_CLASS)?;
            if self.bytes(h, v::CKA_KMSHSM_IMPORT_TARGET)?.is_some() {
                continue;
            }
            match class.map(ObjectClass::new) {
                Some(CKO_PUBLIC_KEY) => public = Some(h),
                Some(_) => main = Some(h),
                None => {}
            }
        }
        match (main, public) {
            (Some(m), p) => Ok((m, p)),
            (None, Some(p)) => Ok((p, Some(p))),
            (None, None) => Err(Error::Kms(kmshsm::kms::KmsError::NotFound)),
        }
    }

    pub(crate) fn bytes(&self, h: ObjectHandle, ty: AttrType) -> Result<Option<Vec<u8>>> {
        let reads = self.session.token.attributes(h, &[ty])?;
        Ok(reads.first().and_then(value_of).map(<[u8]>::to_vec))
    }

    pub(crate) fn ulong(&self, h: ObjectHandle, ty: AttrType) -> Result<Option<u64>> {
        let reads = self.session.token.attributes(h, &[ty])?;
        Ok(reads.first().and_then(ulong_of))
    }

    pub(crate) fn describe(&self, h: ObjectHandle) -> Result<KeyMetadata> {
        let text = |b: Option<Vec<u8>>| {
            b.map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default()
        };
        Ok(KeyMetadata {
            key_id: text(self.bytes(h, v::CKA_KMSHSM_KEY_ID)?),
            key_spec: self
                .ulong(h, v::CKA_KMSHSM_KEY_SPEC)?
                .and_then(KeySpec::from_code),
            key_usage: self
                .ulong(h, v::CKA_KMSHSM_KEY_USAGE)?
                .and_then(KeyUsage::from_code),
            origin: self
                .ulong(h, v::CKA_KMSHSM_ORIGIN)?
                .and_then(Origin::from_code),
            state: self
                .ulong(h, v::CKA_KMSHSM_KEY_STATE)?
                .and_then(KeyState::from_code),
            alias: text(self.bytes(h, CKA_LABEL)?),
            description: text(self.bytes(h, v::CKA_KMSHSM_DESCRIPTION)?),
            material_expiry: self.ulong(h, v::CKA_KMSHSM_MATERIAL_EXPIRY)?.unwrap_or(0),
        })
    }

    /// Every KMS key (its private or secret object), not import wrapping keys.
    pub(crate) fn list(&self) -> Result<Vec<KeyMetadata>> {
        let mut out = Vec::new();
        for h in self.session.token.find(&[])? {
            let class = self.ulong(h, CKA_CLASS)?.map(ObjectClass::new);
            if !matches!(class, Some(CKO_SECRET_KEY | CKO_PRIVATE_KEY)) {
                continue;
            }
            if self.bytes(h, v::CKA_KMSHSM_IMPORT_TARGET)?.is_some()
                || self.bytes(h, v::CKA_KMSHSM_KEY_ID)?.is_none()
            {
                continue;
            }
            out.push(self.describe(h)?);
        }
        Ok(out)
    }

    /// CreateKey. KMS keys are generated; EXTERNAL keys wait for their material.
    pub(crate) fn create_key(
        &self,
        spec: KeySpec,
        usage: KeyUsage,
        origin: Origin,
        alias: &str,
        description: &str,
    ) -> Result<ObjectHandle> {
        if !spec.allows(usage) {
            return Err(Error::Kms(kmshsm::kms::KmsError::InvalidParameter(
                "the key usage does not fit the key spec",
            )));
        }
        let sign = usage == KeyUsage::SignVerify;
        // Clients such as OpenSSL's libp11 pair a private key with its public key by
        // CKA_ID; 16 random bytes name the pair.
        let mut id = [0u8; 16];
        kmshsm::crypto::rand::random_fill(&mut id)?;
        let mut common = vec![
            boolean(CKA_TOKEN, true),
            boolean(CKA_PRIVATE, true),
            boolean(CKA_SENSITIVE, true),
            bytes(CKA_ID, &id),
            bytes(CKA_LABEL, alias.as_bytes()),
            bytes(v::CKA_KMSHSM_DESCRIPTION, description.as_bytes()),
            ulong(v::CKA_KMSHSM_KEY_USAGE, usage.code()),
        ];
        let shape = shape::shape_of(spec);
        let (key_type, class) = (shape.key_type, shape.class);
        if class == CKO_SECRET_KEY {
            common.extend([boolean(CKA_ENCRYPT, true), boolean(CKA_DECRYPT, true)]);
        } else {
            common.extend([boolean(CKA_SIGN, sign), boolean(CKA_DECRYPT, !sign)]);
        }
        let token = &self.session.token;
        if origin == Origin::External {
            let mut t = vec![
                ulong(CKA_CLASS, class.get()),
                ulong(CKA_KEY_TYPE, key_type.get()),
                ulong(v::CKA_KMSHSM_ORIGIN, Origin::External.code()),
                ulong(v::CKA_KMSHSM_KEY_SPEC, spec.code()),
            ];
            t.extend(common);
            return token.create_object(self.caller(), &t);
        }
        let mech = |kind| MechanismArg {
            kind,
            param: Param::None,
        };
        let generation = mech(shape.generation);
        if class == CKO_SECRET_KEY {
            let mut t = Vec::new();
            if key_type == CKK_AES {
                let len = spec.symmetric_len().unwrap_or(32);
                t.push(ulong(CKA_VALUE_LEN, len as u64));
            }
            t.extend(common);
            return token.generate_key(self.caller(), &generation, &t);
        }
        let mut public = Vec::new();
        if let Some(bits) = spec.rsa_bits() {
            public.push(ulong(CKA_MODULUS_BITS, bits as u64));
        }
        if let (Some(params), true) = (shape.ec_params, key_type == CKK_EC) {
            public.push(bytes(CKA_EC_PARAMS, params));
        }
        public.extend([
            boolean(CKA_TOKEN, true),
            bytes(CKA_ID, &id),
            bytes(CKA_LABEL, alias.as_bytes()),
            boolean(CKA_VERIFY, sign),
            boolean(CKA_ENCRYPT, !sign),
        ]);
        let (_, private) = token.generate_key_pair(self.caller(), &generation, &public, &common)?;
        Ok(private)
    }

    /// GetParametersForImport: the new wrapping pair's public key, token and names.
    pub(crate) fn parameters_for_import(
        &self,
        key_id: &str,
        alg: WrappingAlgorithm,
    ) -> Result<ImportParameters> {
        let (_, mech) = shape::wrapping_key(alg);
        let private_template = [
            bytes(v::CKA_KMSHSM_IMPORT_TARGET, key_id.as_bytes()),
            ulong(v::CKA_KMSHSM_WRAPPING_ALGORITHM, alg.code()),
        ];
        let (public, private) = self.session.token.generate_key_pair(
            self.caller(),
            &MechanismArg {
                kind: mech,
                param: Param::None,
            },
            &[],
            &private_template,
        )?;
        let spki = self.bytes(public, CKA_PUBLIC_KEY_INFO)?.unwrap_or_default();
        let token = self
            .bytes(private, v::CKA_KMSHSM_IMPORT_TOKEN)?
            .unwrap_or_default();
        let expiry = self
            .ulong(private, v::CKA_KMSHSM_TOKEN_EXPIRY)?
            .unwrap_or(0);
        let label = self.bytes(private, CKA_LABEL)?.unwrap_or_default();
        let id = self.bytes(private, CKA_ID)?.unwrap_or_default();
        Ok(ImportParameters {
            public_key: spki,
            token,
            expiry,
            label: String::from_utf8_lossy(&label).into_owned(),
            id,
        })
    }

    /// ImportKeyMaterial: finds the wrapping key the token belongs to and unwraps.
    pub(crate) fn import(
        &self,
        key_id: &str,
        material: &[u8],
        token: &[u8],
        expiry: u64,
    ) -> Result<()> {
        let wrapping = self.session.token.find(&[
            bytes(v::CKA_KMSHSM_IMPORT_TOKEN, token),
            ulong(CKA_CLASS, CKO_PRIVATE_KEY.get()),
        ])?;
        let Some(&wrapping) = wrapping.first() else {
            return Err(self.no_wrapping_key(material, token));
        };
        let alg = self
            .ulong(wrapping, v::CKA_KMSHSM_WRAPPING_ALGORITHM)?
            .and_then(WrappingAlgorithm::from_code)
            .ok_or(Error::Kms(kmshsm::kms::KmsError::InvalidImportToken))?;
        let mech = unwrap_mechanism(alg);
        let template = [
            bytes(v::CKA_KMSHSM_IMPORT_TOKEN, token),
            bytes(v::CKA_KMSHSM_KEY_ID, key_id.as_bytes()),
            ulong(v::CKA_KMSHSM_MATERIAL_EXPIRY, expiry),
        ];
        self.session
            .token
            .unwrap_key(self.caller(), &mech, wrapping, material, &template)?;
        Ok(())
    }

    /// Why no wrapping key carries `token`. The sweep purges a wrapping key once its
    /// token expires, so an expired token finds none. `C_UnwrapKey` naming no key
    /// (`CK_INVALID_HANDLE`) with the token in its template lets the token layer say
    /// whether the token is authentic and expired (ExpiredImportToken), as a PKCS#11
    /// caller still holding the purged handle hears; anything else is InvalidImportToken.
    fn no_wrapping_key(&self, material: &[u8], token: &[u8]) -> Error {
        let template = [bytes(v::CKA_KMSHSM_IMPORT_TOKEN, token)];
        // The mechanism only has to exist: the missing key is refused before it is used.
        let mech = unwrap_mechanism(WrappingAlgorithm::RsaesOaepSha256);
        match self.session.token.unwrap_key(
            self.caller(),
            &mech,
            ObjectHandle::from_raw(CK_INVALID_HANDLE),
            material,
            &template,
        ) {
            Err(Error::Kms(KmsError::ExpiredImportToken)) => {
                Error::Kms(KmsError::ExpiredImportToken)
            }
            // Handles start at 1, so nothing is unwrapped with handle 0; whatever the
            // answer, the token names no wrapping key here.
            _ => Error::Kms(KmsError::InvalidImportToken),
        }
    }

    /// Enable/DisableKey, DeleteKeyMaterial, ScheduleKeyDeletion.
    pub(crate) fn set_state(&self, key_id: &str, state: KeyState) -> Result<()> {
        let (main, _) = self.key(key_id)?;
        self.session.token.set_attributes(
            self.caller(),
            main,
            &[ulong(v::CKA_KMSHSM_KEY_STATE, state.code())],
        )
    }

    fn run_cipher(
        &self,
        dir: Direction,
        mech: &MechanismArg,
        key: ObjectHandle,
        input: &[u8],
    ) -> Result<Vec<u8>> {
        self.session.cipher_init(dir, mech, key)?;
        match self.session.cipher_once(dir, input, Some(usize::MAX))? {
            Output::Data(d) => Ok(d.to_vec()),
            _ => Err(Error::Internal("cipher produced no data")),
        }
    }

    /// The key's spec, if it has one.
    pub(crate) fn spec(&self, key_id: &str) -> Result<Option<KeySpec>> {
        let (main, _) = self.key(key_id)?;
        Ok(self
            .ulong(main, v::CKA_KMSHSM_KEY_SPEC)?
            .and_then(KeySpec::from_code))
    }

    /// Encrypt: a symmetric key writes a version-1 CiphertextBlob (`kms::blob`: GCM with
    /// the key's own KeyId in the blob and in the AAD); RSA and SM2 keys their public-key
    /// encryption.
    pub(crate) fn encrypt(&self, key_id: &str, plaintext: &[u8]) -> Result<Vec<u8>> {
        let (main, public) = self.key(key_id)?;
        let spec = self
            .ulong(main, v::CKA_KMSHSM_KEY_SPEC)?
            .and_then(KeySpec::from_code);
        match spec {
            Some(spec @ (KeySpec::Aes256 | KeySpec::Sm4)) => {
                // The id the key carries, not the text the caller typed.
                let key_id = KeyId::from_bytes(
                    &self
                        .bytes(main, v::CKA_KMSHSM_KEY_ID)?
                        .ok_or(Error::KeyTypeInconsistent)?,
                )
                .map_err(Error::Kms)?;
                let mut iv = [0u8; blob::IV_LEN];
                kmshsm::crypto::rand::random_fill(&mut iv)?;
                let mech = gcm(spec, &iv, &key_id);
                let sealed = self.run_cipher(Direction::Encrypt, &mech, main, plaintext)?;
                Ok(CiphertextBlob { key_id, iv, sealed }.encode())
            }
            _ => {
                let public = public.ok_or(Error::KeyTypeInconsistent)?;
                self.run_cipher(Direction::Encrypt, &public_cipher(spec), public, plaintext)
            }
        }
    }

    /// Decrypt of a symmetric key's CiphertextBlob, by the key the blob names: the tag
    /// covers that KeyId, so a blob naming another key than the one that made it fails.
    pub(crate) fn decrypt_blob(&self, blob: &CiphertextBlob) -> Result<Vec<u8>> {
        let (main, _) = self.key(blob.key_id.as_str())?;
        let spec = self
            .ulong(main, v::CKA_KMSHSM_KEY_SPEC)?
            .and_then(KeySpec::from_code);
        match spec {
            Some(spec @ (KeySpec::Aes256 | KeySpec::Sm4)) => {
                let mech = gcm(spec, &blob.iv, &blob.key_id);
                self.run_cipher(Direction::Decrypt, &mech, main, &blob.sealed)
            }
            _ => Err(Error::KeyTypeInconsistent),
        }
    }

    /// Decrypt with an RSA or SM2 key: its public-key encryption, as Encrypt made it.
    pub(crate) fn decrypt_public_key(&self, key_id: &str, data: &[u8]) -> Result<Vec<u8>> {
        let (main, _) = self.key(key_id)?;
        let spec = self
            .ulong(main, v::CKA_KMSHSM_KEY_SPEC)?
            .and_then(KeySpec::from_code);
        if spec.is_some_and(|s| s.symmetric_len().is_some()) {
            return Err(Error::KeyTypeInconsistent);
        }
        self.run_cipher(Direction::Decrypt, &public_cipher(spec), main, data)
    }

    /// GetPublicKey: the key's public half as DER SubjectPublicKeyInfo.
    pub(crate) fn public_key_der(&self, key_id: &str) -> Result<Vec<u8>> {
        use kmshsm::crypto::pkcs8::{encode_spki, KeyAlgorithm};
        let (_, public) = self.key(key_id)?;
        let public = public.ok_or(Error::KeyTypeInconsistent)?;
        let get = |ty: AttrType| -> Result<Vec<u8>> {
            self.bytes(public, ty)?.ok_or(Error::KeyTypeInconsistent)
        };
        match self.ulong(public, CKA_KEY_TYPE)?.map(KeyType::new) {
            Some(CKK_RSA) => {
                let der = kmshsm::crypto::rsa::RsaComponents::public_der(
                    &get(CKA_MODULUS)?,
                    &get(CKA_PUBLIC_EXPONENT)?,
                )?;
                encode_spki(&KeyAlgorithm::Rsa, &der)
            }
            Some(_) => {
                let point = kmshsm::crypto::ec::point_from_attribute(&get(CKA_EC_POINT)?);
                encode_spki(
                    &KeyAlgorithm::Ec {
                        curve_oid: get(CKA_EC_PARAMS)?,
                    },
                    &point,
                )
            }
            None => Err(Error::KeyTypeInconsistent),
        }
    }

    /// AsymmetricSign over a message (the mechanism hashes it).
    pub(crate) fn sign(&self, key_id: &str, algorithm: &str, message: &[u8]) -> Result<Vec<u8>> {
        let (main, _) = self.key(key_id)?;
        self.session.sign_init(&sign_mechanism(algorithm)?, main)?;
        match self.session.sign_once(message, Some(usize::MAX))? {
            Output::Data(d) => Ok(d.to_vec()),
            _ => Err(Error::Internal("sign produced no data")),
        }
    }

    pub(crate) fn verify(
        &self,
        key_id: &str,
        algorithm: &str,
        message: &[u8],
        signature: &[u8],
    ) -> Result<bool> {
        let (_, public) = self.key(key_id)?;
        let public = public.ok_or(Error::KeyTypeInconsistent)?;
        self.session
            .verify_init(&sign_mechanism(algorithm)?, public)?;
        match self.session.verify_once(message, signature) {
            Ok(()) => Ok(true),
            Err(Error::SignatureInvalid | Error::SignatureLenRange) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// GCM for a CiphertextBlob of `key_id`: AES-256-GCM or SM4-GCM, 128-bit tag, AAD
/// `version || KeyId`.
fn gcm(spec: KeySpec, iv: &[u8; blob::IV_LEN], key_id: &KeyId) -> MechanismArg {
    let kind = if spec == KeySpec::Sm4 {
        sm_mech::CKM_SM4_GCM
    } else {
        CKM_AES_GCM
    };
    MechanismArg {
        kind,
        param: Param::Gcm(GcmParams {
            iv: Iv::new(iv),
            aad: blob::aad(key_id),
            tag_bits: (blob::TAG_LEN * 8) as u64,
        }),
    }
}

fn public_cipher(spec: Option<KeySpec>) -> MechanismArg {
    match spec {
        Some(KeySpec::EcSm2) => MechanismArg {
            kind: sm_mech::CKM_SM2_ENCRYPT,
            param: Param::None,
        },
        _ => MechanismArg {
            kind: CKM_RSA_PKCS_OAEP,
            param: Param::Oaep(oaep(CKM_SHA256)),
        },
    }
}

fn oaep(hash: MechType) -> OaepParams {
    let mgf = if hash == CKM_SHA_1 {
        CKG_MGF1_SHA1
    } else {
        CKG_MGF1_SHA256
    };
    OaepParams {
        hash,
        mgf,
        source: CKZ_DATA_SPECIFIED,
        label: Vec::new(),
    }
}

/// The `C_UnwrapKey` mechanism of a wrapping algorithm (docs/key-model.md).
pub(crate) fn unwrap_mechanism(alg: WrappingAlgorithm) -> MechanismArg {
    use WrappingAlgorithm::*;
    let (kind, param) = match alg {
        RsaesPkcs1V15 => (CKM_RSA_PKCS, Param::None),
        RsaesOaepSha1 => (CKM_RSA_PKCS_OAEP, Param::Oaep(oaep(CKM_SHA_1))),
        RsaesOaepSha256 => (CKM_RSA_PKCS_OAEP, Param::Oaep(oaep(CKM_SHA256))),
        RsaAesKeyWrapSha1 => (
            CKM_RSA_AES_KEY_WRAP,
            Param::RsaAesKeyWrap {
                aes_key_bits: 256,
                oaep: oaep(CKM_SHA_1),
            },
        ),
        RsaAesKeyWrapSha256 => (
            CKM_RSA_AES_KEY_WRAP,
            Param::RsaAesKeyWrap {
                aes_key_bits: 256,
                oaep: oaep(CKM_SHA256),
            },
        ),
        RsaesOaepSha256Aes256EcbPkcs7Pad => (
            v::CKM_KMSHSM_RSAES_OAEP_SHA_256_AES_256_ECB_PKCS7_PAD,
            Param::None,
        ),
        Sm2Pke => (sm_mech::CKM_SM2_ENCRYPT, Param::None),
        Sm2PkeSm4Ecb => (v::CKM_KMSHSM_SM2PKE_SM4_ECB, Param::None),
    };
    MechanismArg { kind, param }
}

/// The signing algorithms of the kms-docs (AsymmetricSign).
fn sign_mechanism(algorithm: &str) -> Result<MechanismArg> {
    let pss = |hash, mgf| {
        Param::Pss(PssParams {
            hash,
            mgf,
            salt_len: 32,
        })
    };
    let (kind, param) = match algorithm {
        "RSA_PKCS1_SHA_256" => (CKM_SHA256_RSA_PKCS, Param::None),
        "RSA_PSS_SHA_256" => (CKM_SHA256_RSA_PKCS_PSS, pss(CKM_SHA256, CKG_MGF1_SHA256)),
        "ECDSA_SHA_256" => (CKM_ECDSA_SHA256, Param::None),
        "SM2DSA" => (sm_mech::CKM_SM2_SM3, Param::None),
        _ => {
            return Err(Error::Kms(kmshsm::kms::KmsError::InvalidParameter(
                "unknown signing algorithm",
            )))
        }
    };
    Ok(MechanismArg { kind, param })
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = provider::finalize();
    }
}
