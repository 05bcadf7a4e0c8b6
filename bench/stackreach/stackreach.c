/*
 * How far below a PKCS#11 entry point a call leaves bytes behind: the measurement behind
 * the stack-scrub depths of the hot operations (src/secret_use.rs, src/ffi/guard.rs).
 *
 * Before each measured call the stack below this program's frame is painted with a
 * pattern over 256 KiB; after it, the painted area is read back. A word that is neither
 * the pattern nor zero was written by the call and not wiped. The module's guard wipes
 * (writes zeros over) the stack below its entry frame after a call that handled a
 * secret, so after such a call every surviving word must lie above the deepest wiped
 * one (the entry frames themselves), or within SCRUB_CALL bytes below it (the scrub's own
 * call to memset). A surviving word further down means the call went deeper than its
 * scrub. Run through stackreach.sh on a release build of the module; it must not
 * be linked into anything, and it prints no key material (only depths).
 *
 * Reading below the stack pointer is outside the C standard; it is done by leaf calls
 * (memset, scan) whose own frames lie above the painted area, and no signal is expected.
 */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <p11-kit/pkcs11.h>

#define AREA (256 * 1024)
#define PATTERN 0xa5u
/* The scrub's own call to memset leaves a return address and a saved register or two just
 * below the wiped area: words there are the scrub's, not the call's. */
#define SCRUB_CALL 64

static CK_FUNCTION_LIST *f;
static int failures;

__attribute__((noinline)) static uint8_t *frame_here(void) {
    return (uint8_t *)__builtin_frame_address(0);
}

/* Below `top`, in bytes: the deepest word that is neither the pattern nor zero (written by
 * the call and left), and the bottom of the longest run of zero words (the scrub; the
 * call's own zero words make shorter runs). */
__attribute__((noinline)) static void scan(const uint8_t *top, size_t *left, size_t *wiped) {
    const volatile uint64_t *w = (const volatile uint64_t *)(top - AREA);
    uint64_t pat;
    memset(&pat, PATTERN, sizeof pat);
    size_t run = 0, best = 0;
    *left = 0;
    *wiped = 0;
    for (size_t i = 0; i < AREA / 8; i++) {
        uint64_t v = w[i];
        size_t depth = AREA - i * 8;
        if (v != 0 && v != pat && *left == 0)
            *left = depth;
        if (v == 0) {
            run++;
            if (run > best) {
                best = run;
                *wiped = depth + (run - 1) * 8;
            }
        } else {
            run = 0;
        }
    }
}

/* One measured call: `call` runs between painting and reading. `secret` says whether the
 * call is expected to be wiped after (it handled a secret). */
#define MEASURE(label, secret, call)                                                     \
    do {                                                                                 \
        uint8_t *top = frame_here() - 128;                                               \
        memset(top - AREA, PATTERN, AREA);                                               \
        CK_RV rv_ = (call);                                                              \
        size_t left_, wiped_;                                                            \
        scan(top, &left_, &wiped_);                                                      \
        const char *verdict_ = "no scrub expected";                                      \
        if (secret) {                                                                    \
            int ok_ = left_ <= wiped_ + SCRUB_CALL;                                       \
            verdict_ = ok_ ? "ok" : "LEFT BELOW THE SCRUB";                              \
            if (!ok_)                                                                    \
                failures++;                                                              \
        }                                                                                \
        printf("%-44s rv=%#lx  written and left: %6zu B  wiped down to: %6zu B  %s\n", \
               label, (unsigned long)rv_, left_, wiped_, verdict_);                      \
    } while (0)

static void check(CK_RV rv, const char *what) {
    if (rv != CKR_OK) {
        fprintf(stderr, "%s: %#lx\n", what, (unsigned long)rv);
        exit(2);
    }
}

/* The largest AES-GCM input measured, and the sizes measured (the scrub's depth is
 * chosen by input size, src/mechanism/aes.rs `gcm_reach`: each side of its bounds). */
#define GCM_MAX 65536
static const size_t gcm_sizes[] = {1, 16, 64, 128, 129, 256, 1024, 4096, GCM_MAX};

static void gcm(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key, size_t len) {
    static uint8_t data[GCM_MAX], out[GCM_MAX + 16], back[GCM_MAX];
    uint8_t iv[12] = {1};
    CK_GCM_PARAMS p = {iv, sizeof iv, 96, NULL, 0, 128};
    CK_MECHANISM m = {CKM_AES_GCM, &p, sizeof p};
    CK_ULONG n = sizeof out, k = sizeof back;
    char label[64];
    snprintf(label, sizeof label, "C_EncryptInit AES-GCM (%zu B)", len);
    MEASURE(label, 0, f->C_EncryptInit(s, &m, key));
    snprintf(label, sizeof label, "C_Encrypt AES-GCM %zu B", len);
    MEASURE(label, 1, f->C_Encrypt(s, data, len, out, &n));
    check(f->C_DecryptInit(s, &m, key), "C_DecryptInit");
    snprintf(label, sizeof label, "C_Decrypt AES-GCM %zu B", len);
    MEASURE(label, 1, f->C_Decrypt(s, out, n, back, &k));
}

static void sign(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key, CK_MECHANISM_TYPE mech,
                 const char *name) {
    uint8_t data[64] = {7}, sig[132];
    CK_MECHANISM m = {mech, NULL, 0};
    CK_ULONG n = sizeof sig;
    char label[64];
    snprintf(label, sizeof label, "C_SignInit %s", name);
    MEASURE(label, 0, f->C_SignInit(s, &m, key));
    snprintf(label, sizeof label, "C_Sign %s, 64 B", name);
    MEASURE(label, 1, f->C_Sign(s, data, mech == CKM_ECDSA ? 32 : 64, sig, &n));
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: stackreach MODULE.so USER_PIN\n");
        return 2;
    }
    void *lib = dlopen(argv[1], RTLD_NOW);
    if (!lib) {
        fprintf(stderr, "%s\n", dlerror());
        return 2;
    }
    CK_C_GetFunctionList get = (CK_C_GetFunctionList)dlsym(lib, "C_GetFunctionList");
    check(get(&f), "C_GetFunctionList");
    check(f->C_Initialize(NULL), "C_Initialize");
    CK_SLOT_ID slots[8];
    CK_ULONG nslots = 8;
    check(f->C_GetSlotList(CK_TRUE, slots, &nslots), "C_GetSlotList");
    CK_SESSION_HANDLE s;
    check(f->C_OpenSession(slots[0], CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s),
          "C_OpenSession");
    check(f->C_Login(s, CKU_USER, (CK_UTF8CHAR *)argv[2], strlen(argv[2])), "C_Login");

    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_ULONG len32 = 32;
    CK_ATTRIBUTE aes_t[] = {{CKA_TOKEN, &no, 1}, {CKA_ENCRYPT, &yes, 1},
                            {CKA_DECRYPT, &yes, 1}, {CKA_VALUE_LEN, &len32, sizeof len32}};
    CK_MECHANISM kg = {CKM_AES_KEY_GEN, NULL, 0};
    CK_OBJECT_HANDLE aes;
    check(f->C_GenerateKey(s, &kg, aes_t, 4, &aes), "C_GenerateKey");
    static uint8_t oids[4][10] = {
        {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}, /* P-256 */
        {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22},                   /* P-384 */
        {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23},                   /* P-521 */
        {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a},                   /* secp256k1 */
    };
    static const CK_ULONG oid_len[4] = {10, 7, 7, 7};
    static const char *curve[4] = {"P-256", "P-384", "P-521", "secp256k1"};
    CK_OBJECT_HANDLE priv[4];
    for (int c = 0; c < 4; c++) {
        CK_ATTRIBUTE pub_t[] = {{CKA_TOKEN, &no, 1}, {CKA_VERIFY, &yes, 1},
                                {CKA_EC_PARAMS, oids[c], oid_len[c]}};
        CK_ATTRIBUTE priv_t[] = {{CKA_TOKEN, &no, 1}, {CKA_SIGN, &yes, 1}};
        CK_MECHANISM kpg = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
        CK_OBJECT_HANDLE pub;
        check(f->C_GenerateKeyPair(s, &kpg, pub_t, 3, priv_t, 2, &pub, &priv[c]),
              "C_GenerateKeyPair");
    }

    /* First uses (key parse, prepared key schedule) are measured too: they scrub fully. */
    printf("first use of each key:\n");
    gcm(s, aes, 64);
    char name[64];
    for (int c = 0; c < 4; c++) {
        snprintf(name, sizeof name, "ECDSA-SHA256 %s", curve[c]);
        sign(s, priv[c], CKM_ECDSA_SHA256, name);
    }
    printf("later uses:\n");
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < sizeof gcm_sizes / sizeof gcm_sizes[0]; i++)
            gcm(s, aes, gcm_sizes[i]);
        for (int c = 0; c < 4; c++) {
            snprintf(name, sizeof name, "ECDSA-SHA256 %s", curve[c]);
            sign(s, priv[c], CKM_ECDSA_SHA256, name);
            snprintf(name, sizeof name, "ECDSA %s", curve[c]);
            sign(s, priv[c], CKM_ECDSA, name);
            snprintf(name, sizeof name, "ECDSA-SHA512 %s", curve[c]);
            sign(s, priv[c], CKM_ECDSA_SHA512, name);
        }
    }
    f->C_Logout(s);
    f->C_CloseSession(s);
    f->C_Finalize(NULL);
    if (failures) {
        printf("%d call(s) left written stack below their scrub\n", failures);
        return 1;
    }
    printf("every secret-handling call was wiped below its entry frames\n");
    return 0;
}
