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

#endif /* KMSHSM_H */
