#!/bin/sh
# Time per iteration of AES-256-GCM one-shot calls on one or more modules, alternated
# (bench/percall_time/percall_time.c: no wrapper library between the loop and the module).
#   ./bench/percall_time.sh OLD.so NEW.so ...
#   PERCALL_LOOPS="enc64 dec64 enc4k dec4k" (default; a q suffix adds cryptoki's length query)
#   PERCALL_PAIRS=5 (alternations), PERCALL_ITERATIONS=20000, PERCALL_ROUNDS=21
# Needs gcc, the PKCS#11 header of p11-kit (Debian: p11-kit-modules' libp11-kit-dev) and
# pkcs11-tool (OpenSC) to initialise each module's token.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cc -O2 -Wall -Wextra -I/usr/include/p11-kit-1 -o "$work/percall_time" "$here/percall_time/percall_time.c" -ldl
i=0
for module in "$@"; do
    i=$((i + 1))
    mkdir -p "$work/tok$i"
    printf 'token_dir = "%s/tok%s"\nlog_level = "off"\n[kdf]\nmemory_kib = 1024\niterations = 1\nparallelism = 1\n' \
        "$work" "$i" >"$work/$i.toml"
    KMSHSM_CONF="$work/$i.toml" pkcs11-tool --module "$module" --init-token --slot-index 0 --label pt --so-pin 12345678 >/dev/null 2>&1
    KMSHSM_CONF="$work/$i.toml" pkcs11-tool --module "$module" --token-label pt --init-pin --login --so-pin 12345678 --pin 1234 >/dev/null 2>&1
done
for pair in $(seq "${PERCALL_PAIRS:-5}"); do
    for loop in ${PERCALL_LOOPS:-enc64 dec64 enc4k dec4k}; do
        i=0
        for module in "$@"; do
            i=$((i + 1))
            printf 'pair %s module %s: ' "$pair" "$i"
            KMSHSM_CONF="$work/$i.toml" "$work/percall_time" "$module" "$loop" \
                "${PERCALL_ITERATIONS:-20000}" "${PERCALL_ROUNDS:-21}" | sed 's/ (rounds:.*//'
        done
    done
done
