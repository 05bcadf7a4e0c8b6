#!/bin/sh
# The creators phase on a modelled slower disk: every fsync/fdatasync of the run (the
# bench, its creator processes, its PostgreSQL server) also waits for a device flush of
# SLOWFLUSH_US microseconds (default 1000), one flush at a time, a flush asked for during
# another served by the next (bench/slowflush/slowflush.c). This machine's disk flushes
# in ~0.1 ms, where group commit has little to share; the model shows what it shares
# where a flush costs what it does on a SATA SSD or a networked volume.
#   ./bench/slowflush.sh [--rounds N]      (results: bench/target/results-slowflush.md)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
mkdir -p "$here/target"
cc -O2 -Wall -shared -fPIC -o "$here/target/slowflush.so" "$here/slowflush/slowflush.c" -ldl -lpthread
(cd "$root" && cargo build --release --lib && cargo build --release -p kmshsm-bench)
state=$(mktemp)
trap 'rm -f "$state"' EXIT
# Every process of the run shares the device, the PostgreSQL server too, which runs as
# another user (runuser, tests/common/pg.rs): with the file private to root it could not
# open it, and its flushes went unmodelled.
chmod 0666 "$state"
SLOWFLUSH_US=${SLOWFLUSH_US:-1000} SLOWFLUSH_STATE="$state" LD_PRELOAD="$here/target/slowflush.so" \
    "$root/target/release/kmshsm-bench" --out "$here/target/results-slowflush.md" \
    --phases creators "$@"
