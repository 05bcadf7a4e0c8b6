#!/usr/bin/env python3
# Per-call work of the module: N x (C_EncryptInit + C_Encrypt) of 64 bytes with
# AES-256-CBC-PAD and N x ECDSA-P256 signatures, through python-pkcs11; run under callgrind
# with two builds of the module to compare their instruction counts.
import os, sys, pkcs11
from pkcs11 import Mechanism, KeyType
from pkcs11.util.ec import encode_named_curve_parameters
lib = pkcs11.lib(sys.argv[1])
n = int(sys.argv[2])
token = lib.get_token(token_label='cg')
with token.open(rw=True, user_pin='1234') as s:
    key = s.generate_key(KeyType.AES, 256, store=False)
    params = s.create_domain_parameters(KeyType.EC, {pkcs11.Attribute.EC_PARAMS: encode_named_curve_parameters('secp256r1')}, local=True)
    pub, priv = params.generate_keypair(store=False)
    data = b'x' * 64
    iv = bytes(16)
    for _ in range(n):
        key.encrypt(data, mechanism=Mechanism.AES_CBC_PAD, mechanism_param=iv)
    for _ in range(n):
        priv.sign(data, mechanism=Mechanism.ECDSA_SHA256)
