#!/usr/bin/env python3
# Per-call work of the module, through python-pkcs11, to be run under callgrind with two
# builds of the module and their instruction counts compared (bench/percall.sh).
#   percall.py MODULE N [LOOP]
# LOOP is one of:
#   both    (default) N x (C_EncryptInit + C_Encrypt) of 64 bytes with AES-256-CBC-PAD, then
#           N x ECDSA-P256 signatures (init + sign)
#   gcm64   N x (C_EncryptInit + C_Encrypt) of 64 bytes with AES-256-GCM (12-byte IV)
#   gcm64d  N x (C_DecryptInit + C_Decrypt) of the same 64 bytes' ciphertext
#   gcm4k, gcm4kd  the same two loops with 4 KiB
#   ecdsa   N x (C_SignInit + C_Sign) with CKM_ECDSA_SHA256, P-256, 64 bytes
import sys, pkcs11
from pkcs11 import Mechanism, KeyType
from pkcs11.mechanisms import GCMParams
from pkcs11.util.ec import encode_named_curve_parameters
lib = pkcs11.lib(sys.argv[1])
n = int(sys.argv[2])
loop = sys.argv[3] if len(sys.argv) > 3 else 'both'
token = lib.get_token(token_label='cg')
with token.open(rw=True, user_pin='1234') as s:
    key = s.generate_key(KeyType.AES, 256, store=False)
    params = s.create_domain_parameters(KeyType.EC, {pkcs11.Attribute.EC_PARAMS: encode_named_curve_parameters('secp256r1')}, local=True)
    pub, priv = params.generate_keypair(store=False)
    data = b'x' * 64
    if loop == 'both':
        iv = bytes(16)
        for _ in range(n):
            key.encrypt(data, mechanism=Mechanism.AES_CBC_PAD, mechanism_param=iv)
        for _ in range(n):
            priv.sign(data, mechanism=Mechanism.ECDSA_SHA256)
    elif loop in ('gcm64', 'gcm4k'):
        if loop == 'gcm4k':
            data = b'x' * 4096
        for i in range(n):
            gcm = GCMParams(i.to_bytes(12, 'big'), None, 128)
            key.encrypt(data, mechanism=Mechanism.AES_GCM, mechanism_param=gcm)
    elif loop in ('gcm64d', 'gcm4kd'):
        if loop == 'gcm4kd':
            data = b'x' * 4096
        gcm = GCMParams(bytes(12), None, 128)
        ct = key.encrypt(data, mechanism=Mechanism.AES_GCM, mechanism_param=gcm)
        for _ in range(n):
            if key.decrypt(ct, mechanism=Mechanism.AES_GCM, mechanism_param=gcm) != data:
                raise SystemExit('GCM decryption gave other bytes')
    elif loop == 'ecdsa':
        for _ in range(n):
            priv.sign(data, mechanism=Mechanism.ECDSA_SHA256)
    else:
        raise SystemExit(f'unknown loop {loop}')
