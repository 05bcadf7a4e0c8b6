"""ImportKeyMaterial with python-pkcs11 (PyPI) as it comes: no vendor attribute at all.

Run by tests/clients_python.rs as

    python3 byok_standard.py <module> <token label> <user PIN> <wrapping key id, hex> \
        <wrapped file> aes <iv hex> <ciphertext file>
    python3 byok_standard.py <module> <token label> <user PIN> <wrapping key id, hex> \
        <wrapped file> ec <message file>

with KMSHSM_CONF naming the token directory. The key and its import parameters were
made by `kmshsm create-key` and `kmshsm get-parameters-for-import`, and the material
wrapped by openssl. This script finds the wrapping private key by the CKA_ID the CLI
printed and calls `unwrap_key` with python-pkcs11's own default template (class, key
type, label, id, token, usage flags...): the module imports into the existing key and
answers its handle. Then, with that handle:

- aes: the material was wrapped with RSAES_OAEP_SHA_256; AES-CBC-PAD decryption of the
  ciphertext; prints "plain <hex>";
- ec: the material (PKCS#8 EC key) was wrapped with RSA_AES_KEY_WRAP_SHA_256, whose
  mechanism python-pkcs11 0.10 has neither a constant nor a parameter type for: the
  number is given as a Mechanism instance and the CK_RSA_AES_KEY_WRAP_PARAMS go through
  its raw bytes parameter; ECDSA-SHA256 signature of the message; prints "signature <hex>" (r||s).

Any failure raises (exit status 1).
"""

import ctypes
import struct
import sys

import pkcs11
from pkcs11 import MGF, KeyType, Mechanism, ObjectClass, Attribute


def _mechanism(value, name):
    """A Mechanism python-pkcs11 0.10 has no member for (it accepts only Mechanism
    values): an instance of its enum class carrying the number."""
    m = int.__new__(Mechanism, value)
    m._value_, m._name_ = value, name
    return m


CKM_RSA_AES_KEY_WRAP = _mechanism(0x00001054, "RSA_AES_KEY_WRAP")
CKM_SHA256 = 0x00000250
CKG_MGF1_SHA256 = 0x00000002
CKZ_DATA_SPECIFIED = 0x00000001


class OaepParams(ctypes.Structure):
    """CK_RSA_PKCS_OAEP_PARAMS."""

    _fields_ = [
        ("hashAlg", ctypes.c_ulong),
        ("mgf", ctypes.c_ulong),
        ("source", ctypes.c_ulong),
        ("pSourceData", ctypes.c_void_p),
        ("ulSourceDataLen", ctypes.c_ulong),
    ]


def main(module, token_label, user_pin, wrapping_id, wrapped_file, mode, *rest):
    wrapped = open(wrapped_file, "rb").read()
    token = pkcs11.lib(module).get_token(token_label=token_label)
    with token.open(rw=True, user_pin=user_pin) as session:
        wrapping = session.get_key(
            object_class=ObjectClass.PRIVATE_KEY, id=bytes.fromhex(wrapping_id)
        )
        if mode == "aes":
            iv, ciphertext_file = bytes.fromhex(rest[0]), rest[1]
            key = wrapping.unwrap_key(
                ObjectClass.SECRET_KEY,
                KeyType.AES,
                wrapped,
                label="python-label-is-ignored",
                mechanism=Mechanism.RSA_PKCS_OAEP,
                mechanism_param=(Mechanism.SHA256, MGF.SHA256, None),
            )
            plain = key.decrypt(
                open(ciphertext_file, "rb").read(),
                mechanism=Mechanism.AES_CBC_PAD,
                mechanism_param=iv,
            )
            print("label", key[Attribute.LABEL])
            print("plain", plain.hex())
        elif mode == "ec":
            oaep = OaepParams(CKM_SHA256, CKG_MGF1_SHA256, CKZ_DATA_SPECIFIED, None, 0)
            # CK_RSA_AES_KEY_WRAP_PARAMS: ulAESKeyBits, pOAEPParams (oaep stays alive).
            raw = struct.pack("LP", 256, ctypes.addressof(oaep))
            key = wrapping.unwrap_key(
                ObjectClass.PRIVATE_KEY,
                KeyType.EC,
                wrapped,
                mechanism=CKM_RSA_AES_KEY_WRAP,
                mechanism_param=raw,
            )
            signature = key.sign(open(rest[0], "rb").read(), mechanism=Mechanism.ECDSA_SHA256)
            print("label", key[Attribute.LABEL])
            print("signature", signature.hex())
        else:
            raise ValueError(f"unknown mode {mode}")


if __name__ == "__main__":
    main(*sys.argv[1:])
