#!/bin/sh
# Instruction counts per call, independent of machine load: runs bench/percall.py (N x a
# loop of PKCS#11 calls through python-pkcs11) under callgrind at two values of N for each
# module given, and prints the instructions per iteration (the difference divided by the
# difference of N, so start-up and key generation cancel out).
#   ./bench/percall.sh OLD.so NEW.so ...          (needs valgrind and python-pkcs11)
#   PERCALL_LOOP=gcm64 ./bench/percall.sh ...     (one loop only: gcm64, gcm64d, gcm4k, gcm4kd, ecdsa;
#                                                  default `both`, see percall.py)
#   PERCALL_MODULE_ONLY=1 ...                     count only inside the loops' own entry
#                                                 points (C_Encrypt*, C_Decrypt*, C_Sign*):
#                                                 python-pkcs11's work and the set-up calls
#                                                 left out
set -eu
# The toggle patterns below are not file names.
set -f
here=$(cd "$(dirname "$0")" && pwd)
py=$(python3 -c 'import sys; print(sys.executable)')
loop=${PERCALL_LOOP:-both}
toggle=
if [ -n "${PERCALL_MODULE_ONLY:-}" ]; then
    # Not every C_*: the first C_GenerateKey seeds aws-lc's jitter entropy, ~420 million
    # instructions whose count follows timer readings and swamped the difference under
    # load (docs/performance.md, "Sixth pass").
    toggle='--toggle-collect=kmshsm::ffi::C_Encrypt* --toggle-collect=kmshsm::ffi::C_Decrypt* --toggle-collect=kmshsm::ffi::C_Sign*'
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
small=100
large=600
i=0
for module in "$@"; do
    i=$((i + 1))
    mkdir -p "$work/tok$i"
    printf 'token_dir = "%s/tok%s"\nlog_level = "off"\n[kdf]\nmemory_kib = 1024\niterations = 1\nparallelism = 1\n' \
        "$work" "$i" >"$work/$i.toml"
    export KMSHSM_CONF="$work/$i.toml"
    pkcs11-tool --module "$module" --init-token --slot-index 0 --label cg --so-pin 12345678 >/dev/null 2>&1
    pkcs11-tool --module "$module" --token-label cg --init-pin --login --so-pin 12345678 --pin 1234 >/dev/null 2>&1
    count() {
        # shellcheck disable=SC2086
        valgrind --tool=callgrind $toggle --callgrind-out-file="$work/cg.out" "$py" "$here/percall.py" "$module" "$1" "$loop" 2>&1 |
            sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
    }
    a=$(count $small)
    b=$(count $large)
    echo "$module: $(( (b - a) / (large - small) )) instructions per iteration (loop $loop)"
done
