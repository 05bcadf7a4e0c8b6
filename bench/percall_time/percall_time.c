/* Time per iteration of a PKCS#11 call sequence on one module, with nothing between the
 * loop and the module (no wrapper library): C_EncryptInit/C_DecryptInit + C_Encrypt/
 * C_Decrypt with AES-256-GCM (12-byte IV, no AAD, 128-bit tag) on a session key.
 *
 *   percall_time MODULE LOOP [ITERATIONS [ROUNDS]]
 *   LOOP: enc64, dec64, enc4k, dec4k       two calls: init, then the call into a buffer
 *                                          of the output's size
 *         enc64q, dec64q, enc4kq, dec4kq   three calls: init, a length query (NULL
 *                                          output), then the call (what cryptoki's and
 *                                          python-pkcs11's one-shot helpers do)
 *   PIN from PERCALL_PIN (default 1234); the token in slot 0 must be initialised.
 * Prints the median of ROUNDS rounds in ns per iteration, and each round's figure.
 *
 * Issue 18 item 1; see docs/performance.md. Built by bench/percall_time.sh. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <p11-kit/pkcs11.h>

static CK_FUNCTION_LIST_PTR f;

static void check(CK_RV rv, const char *what) {
    if (rv != CKR_OK) {
        fprintf(stderr, "%s: CK_RV 0x%lx\n", what, (unsigned long)rv);
        exit(1);
    }
}

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODULE LOOP [ITERATIONS [ROUNDS]]\n", argv[0]);
        return 2;
    }
    const char *loop = argv[2];
    long iterations = argc > 3 ? atol(argv[3]) : 20000;
    int rounds = argc > 4 ? atoi(argv[4]) : 21;
    if (iterations < 1 || rounds < 1 || rounds > 1000) {
        fprintf(stderr, "bad ITERATIONS or ROUNDS\n");
        return 2;
    }
    int decrypt = strncmp(loop, "dec", 3) == 0;
    if (!decrypt && strncmp(loop, "enc", 3) != 0) {
        fprintf(stderr, "unknown loop %s\n", loop);
        return 2;
    }
    size_t size = strncmp(loop + 3, "64", 2) == 0 ? 64 : strncmp(loop + 3, "4k", 2) == 0 ? 4096 : 0;
    if (size == 0) {
        fprintf(stderr, "unknown loop %s\n", loop);
        return 2;
    }
    int query = loop[strlen(loop) - 1] == 'q';

    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 1;
    }
    CK_RV (*get)(CK_FUNCTION_LIST_PTR_PTR) = (CK_RV(*)(CK_FUNCTION_LIST_PTR_PTR))dlsym(lib, "C_GetFunctionList");
    if (!get) {
        fprintf(stderr, "no C_GetFunctionList\n");
        return 1;
    }
    check(get(&f), "C_GetFunctionList");
    check(f->C_Initialize(NULL), "C_Initialize");
    CK_SLOT_ID slots[16];
    CK_ULONG n = 16;
    check(f->C_GetSlotList(CK_TRUE, slots, &n), "C_GetSlotList");
    if (n == 0) {
        fprintf(stderr, "no token\n");
        return 1;
    }
    CK_SESSION_HANDLE s;
    check(f->C_OpenSession(slots[0], CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s), "C_OpenSession");
    const char *pin = getenv("PERCALL_PIN") ? getenv("PERCALL_PIN") : "1234";
    check(f->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin)), "C_Login");

    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE kt = CKK_AES;
    CK_ULONG len = 32;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof cls}, {CKA_KEY_TYPE, &kt, sizeof kt},
        {CKA_VALUE_LEN, &len, sizeof len}, {CKA_TOKEN, &no, sizeof no},
        {CKA_ENCRYPT, &yes, sizeof yes}, {CKA_DECRYPT, &yes, sizeof yes},
    };
    CK_MECHANISM gen = {CKM_AES_KEY_GEN, NULL, 0};
    CK_OBJECT_HANDLE key;
    check(f->C_GenerateKey(s, &gen, t, 6, &key), "C_GenerateKey");

    unsigned char iv[12] = {0};
    CK_GCM_PARAMS gcm = {iv, sizeof iv, 96, NULL, 0, 128};
    CK_MECHANISM mech = {CKM_AES_GCM, &gcm, sizeof gcm};
    unsigned char *plain = calloc(size + 16, 1), *sealed = calloc(size + 16, 1), *out = calloc(size + 16, 1);
    if (!plain || !sealed || !out) return 1;
    memset(plain, 0xa5, size);
    CK_ULONG sealed_len = size + 16;
    check(f->C_EncryptInit(s, &mech, key), "C_EncryptInit");
    check(f->C_Encrypt(s, plain, size, sealed, &sealed_len), "C_Encrypt");

    CK_RV (*init)(CK_SESSION_HANDLE, CK_MECHANISM_PTR, CK_OBJECT_HANDLE) =
        decrypt ? f->C_DecryptInit : f->C_EncryptInit;
    CK_RV (*call)(CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG_PTR) =
        decrypt ? f->C_Decrypt : f->C_Encrypt;
    unsigned char *in = decrypt ? sealed : plain;
    CK_ULONG in_len = decrypt ? sealed_len : size;
    CK_ULONG out_size = decrypt ? size : size + 16;
    unsigned long long counter = 0;

    double *per = calloc((size_t)rounds, sizeof *per);
    if (!per) return 1;
    for (int r = 0; r < rounds; r++) {
        double start = now_ns();
        for (long i = 0; i < iterations; i++) {
            if (!decrypt) {
                counter++;
                memcpy(iv + 4, &counter, sizeof counter);
            }
            check(init(s, &mech, key), "init");
            CK_ULONG out_len = out_size;
            if (query) {
                check(call(s, in, in_len, NULL, &out_len), "length query");
            }
            check(call(s, in, in_len, out, &out_len), "call");
        }
        per[r] = (now_ns() - start) / (double)iterations;
    }
    double *sorted = calloc((size_t)rounds, sizeof *sorted);
    if (!sorted) return 1;
    memcpy(sorted, per, (size_t)rounds * sizeof *per);
    qsort(sorted, (size_t)rounds, sizeof *sorted, cmp);
    printf("%s %s median %.1f ns/iteration (rounds:", argv[1], loop, sorted[rounds / 2]);
    for (int r = 0; r < rounds; r++) printf(" %.1f", per[r]);
    printf(")\n");
    f->C_CloseSession(s);
    f->C_Finalize(NULL);
    return 0;
}
