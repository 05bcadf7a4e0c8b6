#!/bin/sh
# Builds bench/stackreach/stackreach.c and runs it against each module given (release
# builds: the shallow scrubs of the hot operations are measured for those), on a fresh
# token with a cheap PIN KDF. It prints, for each measured call, how far below the entry
# point the call left written stack and how far the guard wiped; it fails when a call
# that handled a secret left anything below its scrub.
#   ./bench/stackreach.sh target/release/libkmshsm.so    (needs cc, pkcs11-tool, p11-kit headers)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cc -O2 -Wall -I/usr/include/p11-kit-1 -o "$work/stackreach" "$here/stackreach/stackreach.c" -ldl
status=0
for module in "$@"; do
    mkdir -p "$work/tok"
    printf 'token_dir = "%s/tok"\nlog_level = "off"\n[kdf]\nmemory_kib = 1024\niterations = 1\nparallelism = 1\n' \
        "$work" >"$work/conf.toml"
    export KMSHSM_CONF="$work/conf.toml"
    pkcs11-tool --module "$module" --init-token --slot-index 0 --label reach --so-pin 12345678 >/dev/null 2>&1
    pkcs11-tool --module "$module" --token-label reach --init-pin --login --so-pin 12345678 --pin 1234 >/dev/null 2>&1
    echo "== $module"
    "$work/stackreach" "$module" 1234 || status=1
    rm -rf "$work/tok"
done
exit $status
