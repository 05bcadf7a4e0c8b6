/*
 * kmshsm.h - vendor constants of the kmshsm PKCS#11 module.
 *
 * This header is the single source of truth: build.rs derives the Rust constants from
 * it, so the module and C callers can never disagree. Values, once published, never
 * change. Include it after your pkcs11.h (it only fills in the vendor bases when
 * pkcs11.h has not).
 *
 * Every kmshsm value lies in the PKCS#11 vendor-defined range of its kind, offset by
 * KMSHSM_VENDOR_TAG (ASCII "KM") so that it cannot collide with another vendor that
 * also starts at the bottom of the range.
 */
#ifndef KMSHSM_H
#define KMSHSM_H

#ifndef CKA_VENDOR_DEFINED
#define CKA_VENDOR_DEFINED 0x80000000UL
#endif
#ifndef CKM_VENDOR_DEFINED
#define CKM_VENDOR_DEFINED 0x80000000UL
#endif
#ifndef CKK_VENDOR_DEFINED
#define CKK_VENDOR_DEFINED 0x80000000UL
#endif
#ifndef CKR_VENDOR_DEFINED
#define CKR_VENDOR_DEFINED 0x80000000UL
#endif

#define KMSHSM_VENDOR_TAG 0x4B4D0000UL

/*
 * Attributes: CKA_VENDOR_DEFINED | KMSHSM_VENDOR_TAG | 0x0000..0x0EFF are public;
 * 0x0F00..0x0FFF are reserved for the module's internal bookkeeping in its token
 * files and never answered through C_GetAttributeValue.
 *
 * The KMS key model (docs/key-model.md):
 * CKA_KMSHSM_KEY_ID            CK_UTF8CHAR[36]  the key's KeyId, a lower-case UUID. Set by
 *                                               the module; shared by the private and
 *                                               public object of an asymmetric key.
 * CKA_KMSHSM_ORIGIN            CK_ULONG  KMSHSM_ORIGIN_*. Given at C_CreateObject
 *                                        (EXTERNAL); KMS for generated keys.
 * CKA_KMSHSM_KEY_STATE         CK_ULONG  KMSHSM_STATE_*. C_SetAttributeValue changes it:
 *                                        ENABLED, DISABLED, PENDING_IMPORT (deletes
 *                                        the key material: DeleteKeyMaterial),
 *                                        PENDING_DELETION (ScheduleKeyDeletion).
 * CKA_KMSHSM_KEY_SPEC          CK_ULONG  KMSHSM_SPEC_*.
 * CKA_KMSHSM_KEY_USAGE         CK_ULONG  KMSHSM_USAGE_*.
 * CKA_KMSHSM_MATERIAL_EXPIRY   CK_ULONG  unix seconds when imported material expires; 0
 *                                        never. In an import's unwrap template.
 * CKA_KMSHSM_IMPORT_TARGET     CK_UTF8CHAR[36]  on an import wrapping key pair: the
 *                                        KeyId it imports into. In the private
 *                                        template of C_GenerateKeyPair it asks for
 *                                        import parameters (GetParametersForImport);
 *                                        in any other template it is
 *                                        CKR_ATTRIBUTE_READ_ONLY (only the module
 *                                        makes import wrapping pairs).
 * CKA_KMSHSM_WRAPPING_ALGORITHM CK_ULONG KMSHSM_WRAP_*, with the import target (and,
 *                                        like it, set by the module only).
 * CKA_KMSHSM_IMPORT_TOKEN      CK_BYTE[] the import token of a wrapping key pair; given
 *                                        back in the unwrap template of the import.
 * CKA_KMSHSM_TOKEN_EXPIRY      CK_ULONG  unix seconds when the import token expires.
 * CKA_KMSHSM_DESCRIPTION       CK_UTF8CHAR[]  the key's description (CreateKey); modifiable.
 */
#define CKA_KMSHSM_KEY_ID             (CKA_VENDOR_DEFINED | KMSHSM_VENDOR_TAG | 0x0001UL)
#define CKA_KMSHSM_ORIGIN             (CKA_VENDOR_DEFINED | KMSHSM_VENDOR_TAG | 0x0002UL)
#define CKA_KMSHSM_KEY_STATE          (CKA_VENDOR_DEFINED | KMSHSM_VENDOR_TAG | 0x0003UL)
#define CKA_KMSHSM_KEY_SPEC           (CKA_VENDOR_DEFINED | KMSHSM_VENDOR_TAG | 0x0004UL)
#define CKA_KMSHSM_KEY_USAGE          (CKA_VENDOR_DEFINED | KMSHSM_VENDOR_TAG | 0x0005UL)
#define CKA_KMSHSM_MATERIAL_EXPIRY    (CKA_VENDOR_DEFINED | KMSHSM_VENDOR_TAG | 0x0006UL)
#define CKA_KMSHSM_IMPORT_TARGET      (CKA_VENDOR_DEFINED | KMSHSM_VENDOR_TAG | 0x0007UL)
#define CKA_KMSHSM_WRAPPING_ALGORITHM (CKA_VENDOR_DEFINED | KMSHSM_VENDOR_TAG | 0x0008UL)
#define CKA_KMSHSM_IMPORT_TOKEN       (CKA_VENDOR_DEFINED | KMSHSM_VENDOR_TAG | 0x0009UL)
#define CKA_KMSHSM_TOKEN_EXPIRY       (CKA_VENDOR_DEFINED | KMSHSM_VENDOR_TAG | 0x000AUL)
#define CKA_KMSHSM_DESCRIPTION        (CKA_VENDOR_DEFINED | KMSHSM_VENDOR_TAG | 0x000BUL)

#define KMSHSM_INTERNAL_SECRET_TYPES       (CKA_VENDOR_DEFINED | KMSHSM_VENDOR_TAG | 0x0F00UL)
#define KMSHSM_INTERNAL_MATERIAL_FINGERPRINT (CKA_VENDOR_DEFINED | KMSHSM_VENDOR_TAG | 0x0F01UL)
/* The record format of a stored object: 2 when the record is authenticated under the
 * token master key (docs/security.md, "Records at rest"). Never visible to callers. */
#define KMSHSM_INTERNAL_RECORD_FORMAT      (CKA_VENDOR_DEFINED | KMSHSM_VENDOR_TAG | 0x0F02UL)

/* Values of CKA_KMSHSM_ORIGIN. */
#define KMSHSM_ORIGIN_KMS      1UL
#define KMSHSM_ORIGIN_EXTERNAL 2UL

/* Values of CKA_KMSHSM_KEY_STATE. */
#define KMSHSM_STATE_ENABLED          1UL
#define KMSHSM_STATE_DISABLED         2UL
#define KMSHSM_STATE_PENDING_IMPORT   3UL
#define KMSHSM_STATE_PENDING_DELETION 4UL

/* Values of CKA_KMSHSM_KEY_SPEC. */
#define KMSHSM_SPEC_AES_256   1UL
#define KMSHSM_SPEC_SM4       2UL
#define KMSHSM_SPEC_RSA_2048  3UL
#define KMSHSM_SPEC_RSA_3072  4UL
#define KMSHSM_SPEC_RSA_4096  5UL
#define KMSHSM_SPEC_EC_P256   6UL
#define KMSHSM_SPEC_EC_P256K  7UL
#define KMSHSM_SPEC_EC_SM2    8UL

/* Values of CKA_KMSHSM_KEY_USAGE. */
#define KMSHSM_USAGE_ENCRYPT_DECRYPT 1UL
#define KMSHSM_USAGE_SIGN_VERIFY     2UL

/* Values of CKA_KMSHSM_WRAPPING_ALGORITHM (the kms-docs names). */
#define KMSHSM_WRAP_RSAES_PKCS1_V1_5                         1UL
#define KMSHSM_WRAP_RSAES_OAEP_SHA_1                         2UL
#define KMSHSM_WRAP_RSAES_OAEP_SHA_256                       3UL
#define KMSHSM_WRAP_RSA_AES_KEY_WRAP_SHA_1                   4UL
#define KMSHSM_WRAP_RSA_AES_KEY_WRAP_SHA_256                 5UL
#define KMSHSM_WRAP_RSAES_OAEP_SHA_256_AES_256_ECB_PKCS7_PAD 6UL
#define KMSHSM_WRAP_SM2PKE                                   7UL
#define KMSHSM_WRAP_SM2PKE_SM4_ECB                           8UL

/*
 * Key types. SM2 keys carry CKA_EC_PARAMS (the DER OID 1.2.156.10197.1.301) and
 * CKA_EC_POINT / CKA_VALUE like EC keys; SM4 keys carry a 16-byte CKA_VALUE.
 */
#define CKK_KMSHSM_SM2 (CKK_VENDOR_DEFINED | KMSHSM_VENDOR_TAG | 0x0001UL)
#define CKK_KMSHSM_SM4 (CKK_VENDOR_DEFINED | KMSHSM_VENDOR_TAG | 0x0002UL)

/*
 * Mechanisms for the Chinese algorithms (GB/T 32905 SM3, GB/T 32907 SM4,
 * GB/T 32918 SM2).
 *
 * CKM_KMSHSM_SM2_SM3: SM2 signature over Z_A || message with SM3; the optional
 *   parameter is the signer's distinguishing identifier (default "1234567812345678").
 *   Signatures are r || s, 32 bytes each.
 * CKM_KMSHSM_SM2_ENCRYPT: SM2 public-key encryption, ciphertext C1 || C3 || C2 with
 *   C1 an uncompressed point. Also the SM2PKE wrapping algorithm of C_UnwrapKey.
 * CKM_KMSHSM_SM4_CBC / _CBC_PAD: parameter is the 16-byte IV.
 * CKM_KMSHSM_SM4_GCM: parameter is a CK_GCM_PARAMS.
 */
#define CKM_KMSHSM_SM2_KEY_PAIR_GEN (CKM_VENDOR_DEFINED | KMSHSM_VENDOR_TAG | 0x0001UL)
#define CKM_KMSHSM_SM2_SM3          (CKM_VENDOR_DEFINED | KMSHSM_VENDOR_TAG | 0x0002UL)
#define CKM_KMSHSM_SM2_ENCRYPT      (CKM_VENDOR_DEFINED | KMSHSM_VENDOR_TAG | 0x0003UL)
#define CKM_KMSHSM_SM3              (CKM_VENDOR_DEFINED | KMSHSM_VENDOR_TAG | 0x0004UL)
#define CKM_KMSHSM_SM4_KEY_GEN      (CKM_VENDOR_DEFINED | KMSHSM_VENDOR_TAG | 0x0005UL)
#define CKM_KMSHSM_SM4_ECB          (CKM_VENDOR_DEFINED | KMSHSM_VENDOR_TAG | 0x0006UL)
#define CKM_KMSHSM_SM4_CBC          (CKM_VENDOR_DEFINED | KMSHSM_VENDOR_TAG | 0x0007UL)
#define CKM_KMSHSM_SM4_CBC_PAD      (CKM_VENDOR_DEFINED | KMSHSM_VENDOR_TAG | 0x0008UL)
#define CKM_KMSHSM_SM4_GCM          (CKM_VENDOR_DEFINED | KMSHSM_VENDOR_TAG | 0x0009UL)

/*
 * Import envelopes (unwrap only, kms-docs "importing asymmetric material"):
 * CKM_KMSHSM_RSAES_OAEP_SHA_256_AES_256_ECB_PKCS7_PAD: Cipher(ESK) || Cipher(TAKpriv),
 *   ESK a 32-byte AES key under RSA-OAEP (SHA-256, MGF1-SHA-256, no label), TAKpriv the
 *   PKCS#8 private key under AES-256-ECB with PKCS#7 padding. No parameter.
 * CKM_KMSHSM_SM2PKE_SM4_ECB: Cipher(ESK) || Cipher(d), ESK a 16-byte SM4 key under SM2
 *   encryption (C1C3C2), d the 32-byte SM2 private scalar under SM4-ECB, no padding.
 * Their payload has no integrity: a C_UnwrapKey outside an import, with a key whose
 * CKA_UNWRAP_TEMPLATE makes what it unwraps unextractable (or sensitive and
 * wrapped under trusted keys only) is
 * CKR_MECHANISM_INVALID (as for ECB, CBC and CBC-PAD: docs/security.md).
 */
#define CKM_KMSHSM_RSAES_OAEP_SHA_256_AES_256_ECB_PKCS7_PAD (CKM_VENDOR_DEFINED | KMSHSM_VENDOR_TAG | 0x0010UL)
#define CKM_KMSHSM_SM2PKE_SM4_ECB   (CKM_VENDOR_DEFINED | KMSHSM_VENDOR_TAG | 0x0011UL)

/*
 * Return codes for the KMS rules where no standard code says the same thing
 * (docs/errors.md has the whole table).
 */
#define CKR_KMSHSM_INVALID_KEY_MATERIAL (CKR_VENDOR_DEFINED | KMSHSM_VENDOR_TAG | 0x0001UL)
#define CKR_KMSHSM_INVALID_IMPORT_TOKEN (CKR_VENDOR_DEFINED | KMSHSM_VENDOR_TAG | 0x0002UL)
#define CKR_KMSHSM_EXPIRED_IMPORT_TOKEN (CKR_VENDOR_DEFINED | KMSHSM_VENDOR_TAG | 0x0003UL)
#define CKR_KMSHSM_UNSUPPORTED_ORIGIN   (CKR_VENDOR_DEFINED | KMSHSM_VENDOR_TAG | 0x0004UL)
#define CKR_KMSHSM_KEY_NOT_FOUND        (CKR_VENDOR_DEFINED | KMSHSM_VENDOR_TAG | 0x0005UL)
#define CKR_KMSHSM_INCORRECT_KEY_STATE  (CKR_VENDOR_DEFINED | KMSHSM_VENDOR_TAG | 0x0006UL)
/* A stored record failed authentication under the token master key: it was changed
 * outside the module (docs/security.md, "Records at rest"). The object is not used. */
#define CKR_KMSHSM_RECORD_TAMPERED      (CKR_VENDOR_DEFINED | KMSHSM_VENDOR_TAG | 0x0007UL)

#endif /* KMSHSM_H */
