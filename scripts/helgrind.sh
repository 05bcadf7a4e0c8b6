#!/bin/sh
# Runs the concurrency test (tests/concurrency.rs: ten threads on shared and separate
# sessions signing, finding, creating, destroying and generating keys) under valgrind's
# helgrind, or drd with TOOL=drd, and reports the data races and lock-order violations
# valgrind attributes to the module (frames in kmshsm:: or libkmshsm.so).
#
# Usage: scripts/helgrind.sh            (TOOL=drd scripts/helgrind.sh for drd)
# Output: target/valgrind/<tool>.log (the full valgrind report) and a summary on stdout.
# Exit status: 1 if valgrind reports an error whose stack has a frame of the module.
# Needs: valgrind (`apt-get install -y valgrind`).
set -eu
cd "$(dirname "$0")/.."
tool=${TOOL:-helgrind}
if ! command -v valgrind >/dev/null 2>&1; then
    echo "scripts/helgrind.sh: valgrind is not installed; run: apt-get install -y valgrind" >&2
    exit 1
fi
cargo build --quiet
bin=$(cargo test --no-run --test concurrency 2>&1 | sed -n 's/.*(\(target\/[^)]*concurrency-[0-9a-f]*\)).*/\1/p' | tail -1)
[ -x "$bin" ] || { echo "cannot find the concurrency test binary" >&2; exit 1; }
mkdir -p target/valgrind
log=target/valgrind/$tool.log
# The importer runs openssl in child processes; valgrind is ~50x slower, so the run is
# short and the deadlock watchdog generous.
KMSHSM_CONCURRENCY_SECONDS=${KMSHSM_CONCURRENCY_SECONDS:-3} KMSHSM_WATCHDOG_SECONDS=600 \
KMSHSM_CONCURRENCY_NO_IMPORT=1 \
valgrind --tool="$tool" --log-file="$log" --num-callers=40 \
    "$bin" --exact many_threads_on_shared_and_separate_sessions_neither_deadlock_nor_lose_changes \
    --test-threads=1 --nocapture || true
errors=$(grep -E "ERROR SUMMARY" "$log" | tail -1 | sed 's/==[0-9]*== //')
echo "$tool: $errors"
# helgrind and drd only see pthread locks. The module's locks (parking_lot) and std's
# Mutex are futex-based, so every access made under them shows as "Locks held: none":
# in safe Rust such a report cannot be a real race (the compiler refuses unsynchronised
# sharing). Real races can only come from the module's unsafe code (ffi::raw,
# crypto::rsa::raw, crypto::ed25519_variants, crypto::curve448, os::) or from C (SQLite, aws-lc) used without the
# module's locks. The script counts the reports by the first kmshsm frame and fails on
# any report in the unsafe modules.
awk '/(Possible data race|lock order|Conflicting)/ {inerr=1; first=""}
     inerr && /kmshsm::/ && first == "" { first = $0 }
     inerr && /^==[0-9]+== *$/ { if (first != "") print first; inerr=0 }' "$log" |
    sed 's/.*: //; s/ (.*//' | sort | uniq -c | sort -rn > "target/valgrind/$tool-by-frame.txt"
echo "reports by first kmshsm frame (target/valgrind/$tool-by-frame.txt):"
head -15 "target/valgrind/$tool-by-frame.txt"
unsafe_hits=$(grep -cE "ffi::raw|rsa::raw|ed25519_variants|curve448|kmshsm::os::" "target/valgrind/$tool-by-frame.txt" || true)
echo "reports whose first module frame is in unsafe code: $unsafe_hits"
[ "$unsafe_hits" -eq 0 ]
