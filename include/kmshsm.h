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
 * Attributes: CKA_VENDOR_DEFINED | KMSHSM_VENDOR_TAG | 0x0000..0x0EFF are public
 * (the KMS key model will be published here); 0x0F00..0x0FFF are reserved for the
 * module's internal bookkeeping in its token files and never answered through
 * C_GetAttributeValue.
 */
#define KMSHSM_INTERNAL_SECRET_TYPES (CKA_VENDOR_DEFINED | KMSHSM_VENDOR_TAG | 0x0F00UL)

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

#endif /* KMSHSM_H */
