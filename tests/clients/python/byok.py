"""A "bring your own key" import with python-pkcs11 (PyPI), then encryption with the key.

Run by tests/clients_python.rs as

    python3 byok.py <module path> <token label> <user PIN>

with KMSHSM_CONF naming the token directory. Steps, each with python-pkcs11 only:

1. CreateKey, Origin EXTERNAL: C_CreateObject of an AES secret key with the kmshsm
   vendor attributes and no value (state PendingImport);
2. GetParametersForImport: C_GenerateKeyPair (RSA 2048) whose private template names the
   key (CKA_KMSHSM_IMPORT_TARGET) and RSAES_OAEP_SHA_256; read the wrapping public key
   (CKA_PUBLIC_KEY_INFO) and the import token;
3. wrap 32 random bytes with the `cryptography` package (RSA-OAEP, SHA-256);
4. ImportKeyMaterial: C_UnwrapKey with the import token; the answer is the same key;
5. encrypt with the token (AES-CBC-PAD and AES-GCM) and decrypt with `cryptography`
   using the material, and the reverse.

Prints one line "ok <KeyId>" on success; any failure raises (exit status 1).
"""

import os
import struct
import sys

import pkcs11
from pkcs11 import (
    DEFAULT,
    MGF,
    Attribute,
    GCMParams,
    KeyType,
    Mechanism,
    MechanismFlag,
    ObjectClass,
)
from pkcs11.attributes import AttributeMapper
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

# Vendor values, as in include/kmshsm.h.
_VENDOR = 0x80000000 | 0x4B4D0000
CKA_KMSHSM_KEY_ID = _VENDOR | 0x0001
CKA_KMSHSM_ORIGIN = _VENDOR | 0x0002
CKA_KMSHSM_KEY_STATE = _VENDOR | 0x0003
CKA_KMSHSM_KEY_SPEC = _VENDOR | 0x0004
CKA_KMSHSM_KEY_USAGE = _VENDOR | 0x0005
CKA_KMSHSM_MATERIAL_EXPIRY = _VENDOR | 0x0006
CKA_KMSHSM_IMPORT_TARGET = _VENDOR | 0x0007
CKA_KMSHSM_WRAPPING_ALGORITHM = _VENDOR | 0x0008
CKA_KMSHSM_IMPORT_TOKEN = _VENDOR | 0x0009
CKA_KMSHSM_TOKEN_EXPIRY = _VENDOR | 0x000A
# PKCS#11 2.40's CKA_PUBLIC_KEY_INFO, which python-pkcs11 has no name for.
CKA_PUBLIC_KEY_INFO = 0x00000129

ORIGIN_EXTERNAL = 2
STATE_ENABLED = 1
STATE_PENDING_IMPORT = 3
SPEC_AES_256 = 1
USAGE_ENCRYPT_DECRYPT = 1
WRAP_RSAES_OAEP_SHA_256 = 3


def mapper():
    """python-pkcs11's attribute mapper taught the vendor attributes (integer keys)."""
    m = AttributeMapper()
    ulong = (lambda v: struct.pack("L", v), lambda b: struct.unpack("L", b)[0])
    raw = (bytes, bytes)
    for attr in (
        CKA_KMSHSM_ORIGIN,
        CKA_KMSHSM_KEY_STATE,
        CKA_KMSHSM_KEY_SPEC,
        CKA_KMSHSM_KEY_USAGE,
        CKA_KMSHSM_MATERIAL_EXPIRY,
        CKA_KMSHSM_WRAPPING_ALGORITHM,
        CKA_KMSHSM_TOKEN_EXPIRY,
    ):
        m.register_handler(attr, *ulong)
    for attr in (
        CKA_KMSHSM_KEY_ID,
        CKA_KMSHSM_IMPORT_TARGET,
        CKA_KMSHSM_IMPORT_TOKEN,
        CKA_PUBLIC_KEY_INFO,
    ):
        m.register_handler(attr, *raw)
    return m


def check(condition, what):
    if not condition:
        raise AssertionError(what)


def main(module, token_label, user_pin):
    lib = pkcs11.lib(module)
    token = lib.get_token(token_label=token_label)
    with token.open(rw=True, user_pin=user_pin, attribute_mapper=mapper()) as session:
        # 1. CreateKey, Origin EXTERNAL.
        key = session.create_object(
            {
                Attribute.CLASS: ObjectClass.SECRET_KEY,
                Attribute.KEY_TYPE: KeyType.AES,
                Attribute.TOKEN: True,
                Attribute.PRIVATE: True,
                Attribute.ENCRYPT: True,
                Attribute.DECRYPT: True,
                Attribute.LABEL: "python-byok",
                Attribute.ID: b"\x70\x79",
                CKA_KMSHSM_ORIGIN: ORIGIN_EXTERNAL,
                CKA_KMSHSM_KEY_SPEC: SPEC_AES_256,
                CKA_KMSHSM_KEY_USAGE: USAGE_ENCRYPT_DECRYPT,
            }
        )
        key_id = key[CKA_KMSHSM_KEY_ID]
        check(len(key_id) == 36, f"KeyId {key_id!r} is not a UUID")
        check(key[CKA_KMSHSM_ORIGIN] == ORIGIN_EXTERNAL, "origin")
        check(key[CKA_KMSHSM_KEY_STATE] == STATE_PENDING_IMPORT, "a new EXTERNAL key waits for material")

        # 2. GetParametersForImport (RSA_2048, RSAES_OAEP_SHA_256).
        public, private = session.generate_keypair(
            KeyType.RSA,
            2048,
            store=True,
            capabilities=MechanismFlag.WRAP | MechanismFlag.UNWRAP,
            private_template={
                CKA_KMSHSM_IMPORT_TARGET: key_id,
                CKA_KMSHSM_WRAPPING_ALGORITHM: WRAP_RSAES_OAEP_SHA_256,
                # python-pkcs11 adds an empty ID and label by default; leave them out.
                Attribute.ID: DEFAULT,
                Attribute.LABEL: DEFAULT,
            },
            public_template={Attribute.ID: DEFAULT, Attribute.LABEL: DEFAULT},
        )
        spki = public[CKA_PUBLIC_KEY_INFO]
        import_token = private[CKA_KMSHSM_IMPORT_TOKEN]
        check(len(import_token) > 0, "no import token")
        check(private[CKA_KMSHSM_TOKEN_EXPIRY] > 0, "no token expiry")

        # 3. The user's side: wrap the material with `cryptography`.
        material = os.urandom(32)
        wrapping_key = serialization.load_der_public_key(spki)
        wrapped = wrapping_key.encrypt(
            material,
            asym_padding.OAEP(
                mgf=asym_padding.MGF1(algorithm=hashes.SHA256()),
                algorithm=hashes.SHA256(),
                label=None,
            ),
        )

        # 4. ImportKeyMaterial: C_UnwrapKey with the import token.
        imported = private.unwrap_key(
            ObjectClass.SECRET_KEY,
            KeyType.AES,
            wrapped,
            mechanism=Mechanism.RSA_PKCS_OAEP,
            mechanism_param=(Mechanism.SHA256, MGF.SHA256, None),
            template={
                CKA_KMSHSM_IMPORT_TOKEN: import_token,
                CKA_KMSHSM_MATERIAL_EXPIRY: 0,
                # Only the import token and expiry: the key's other attributes were fixed
                # when it was created.
                Attribute.CLASS: DEFAULT,
                Attribute.KEY_TYPE: DEFAULT,
                Attribute.TOKEN: DEFAULT,
                Attribute.PRIVATE: DEFAULT,
                Attribute.SENSITIVE: DEFAULT,
                Attribute.ID: DEFAULT,
                Attribute.LABEL: DEFAULT,
                Attribute.ENCRYPT: DEFAULT,
                Attribute.DECRYPT: DEFAULT,
                Attribute.SIGN: DEFAULT,
                Attribute.VERIFY: DEFAULT,
                Attribute.WRAP: DEFAULT,
                Attribute.UNWRAP: DEFAULT,
                Attribute.DERIVE: DEFAULT,
            },
        )
        check(imported[CKA_KMSHSM_KEY_ID] == key_id, "the import answered another key")
        key = imported
        check(key[CKA_KMSHSM_KEY_STATE] == STATE_ENABLED, "the imported key is Enabled")
        check(key[Attribute.LABEL] == "python-byok", "the key keeps its label")

        # 5. Encryption with the imported key, checked against the material.
        message = b"encrypted under material imported through python-pkcs11"

        iv = os.urandom(16)
        token_ct = key.encrypt(message, mechanism=Mechanism.AES_CBC_PAD, mechanism_param=iv)
        decryptor = Cipher(algorithms.AES(material), modes.CBC(iv)).decryptor()
        unpadder = padding.PKCS7(128).unpadder()
        plain = unpadder.update(decryptor.update(token_ct) + decryptor.finalize()) + unpadder.finalize()
        check(plain == message, "AES-CBC-PAD from the token does not decrypt with the material")
        padder = padding.PKCS7(128).padder()
        encryptor = Cipher(algorithms.AES(material), modes.CBC(iv)).encryptor()
        soft_ct = encryptor.update(padder.update(message) + padder.finalize()) + encryptor.finalize()
        check(soft_ct == token_ct, "AES-CBC-PAD differs from software")
        check(
            key.decrypt(soft_ct, mechanism=Mechanism.AES_CBC_PAD, mechanism_param=iv) == message,
            "the token does not decrypt AES-CBC-PAD made in software",
        )

        nonce = os.urandom(12)
        aad = b"kmshsm"
        gcm = GCMParams(nonce, aad, 128)
        token_ct = key.encrypt(message, mechanism=Mechanism.AES_GCM, mechanism_param=gcm)
        check(
            AESGCM(material).decrypt(nonce, token_ct, aad) == message,
            "AES-GCM from the token does not decrypt with the material",
        )
        soft_ct = AESGCM(material).encrypt(nonce, message, aad)
        check(
            key.decrypt(soft_ct, mechanism=Mechanism.AES_GCM, mechanism_param=GCMParams(nonce, aad, 128))
            == message,
            "the token does not decrypt AES-GCM made in software",
        )

    print("ok " + key_id.decode("ascii"))


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: byok.py <module> <token label> <user PIN>")
    main(*sys.argv[1:])
