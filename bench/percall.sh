#!/bin/sh
# Instruction counts per call, independent of machine load: runs bench/percall.py (N x
# C_EncryptInit+C_Encrypt of 64 bytes with AES-256-CBC-PAD and N x ECDSA-P256 signing,
# through python-pkcs11) under callgrind at two values of N for each module given, and
# prints the instructions per iteration (the difference divided by the difference of N,
# so start-up and key generation cancel out).
#   ./bench/percall.sh OLD.so NEW.so ...     (needs valgrind and python-pkcs11)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
py=$(python3 -c 'import sys; print(sys.executable)')
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
        valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" "$py" "$here/percall.py" "$module" "$1" 2>&1 |
            sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
    }
    a=$(count $small)
    b=$(count $large)
    echo "$module: $(( (b - a) / (large - small) )) instructions per iteration (one 64-byte encrypt with its init, one ECDSA signature with its init)"
done
