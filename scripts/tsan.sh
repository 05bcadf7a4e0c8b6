#!/bin/sh
# Runs the module's threaded tests with the module and the test binaries built under
# ThreadSanitizer (nightly Rust, std rebuilt with the sanitizer), after checking that the
# same build reports a planted race (tests/tsan_canary.rs). Any ThreadSanitizer report
# from the suites fails the run.
#
# Usage: scripts/tsan.sh [--test NAME ...]
#   default: --test concurrency --test hostile_finalize --test general --test persistence
#            --test many_processes
# Output: target/tsan/report.log (everything the runs printed) and a summary on stdout.
# Exit status: 0 clean; 1 a race, a failed test, or a sanitizer build that could not be
# made although a nightly toolchain is there; 2 no nightly toolchain to be had (not run).
# Needs: cargo-nextest, and the nightly toolchain with rust-src (`rustup toolchain install nightly` and
# `rustup component add rust-src --toolchain nightly`); the script tries the second itself.
set -eu
cd "$(dirname "$0")/.."
target=x86_64-unknown-linux-gnu
# Status 2 ("not run", which scripts/test.sh reports loudly but does not fail on) only
# when no nightly toolchain can be had at all (none installed, and rustup cannot install
# one: offline, or no rustup). Once a nightly toolchain is there, anything that stops the
# run (rust-src not installable, a build failure) is status 1, a failure.
if ! rustc +nightly --version >/dev/null 2>&1; then
    if ! command -v rustup >/dev/null 2>&1 ||
        ! rustup toolchain install nightly --profile minimal >/dev/null 2>&1; then
        echo "scripts/tsan.sh: NOT RUN: no nightly toolchain, and rustup could not install one" >&2
        exit 2
    fi
fi
if ! rustup component list --toolchain nightly --installed 2>/dev/null | grep -q '^rust-src'; then
    rustup component add rust-src --toolchain nightly >/dev/null 2>&1 || {
        echo "scripts/tsan.sh: FAILED: nightly is installed but rust-src (needed to rebuild std under the sanitizer) cannot be added" >&2
        exit 1
    }
fi
[ $# -gt 0 ] || set -- --test concurrency --test hostile_finalize --test general \
    --test persistence --test many_processes
# --export-dynamic: the test binaries carry the sanitizer runtime, and the module they
# dlopen resolves its __tsan_* hooks against them.
export RUSTFLAGS="-Zsanitizer=thread -Clink-arg=-Wl,--export-dynamic"
export CARGO_TARGET_DIR=target/tsan
# scripts/tsan.supp: SQLite's lock-free WAL-index header protocol, nothing of the module's.
export TSAN_OPTIONS="halt_on_error=0 second_deadlock_stack=1 suppressions=$(pwd)/scripts/tsan.supp ${TSAN_OPTIONS:-}"
cargo="cargo +nightly"
log=target/tsan/report.log
mkdir -p target/tsan
: > "$log"
$cargo build --quiet -Zbuild-std --target $target --lib
echo "tsan: canary (a planted race must be reported)"
$cargo test --quiet -Zbuild-std --target $target --test tsan_canary -- --ignored \
    > target/tsan/canary.log 2>&1 || true
if ! grep -q "WARNING: ThreadSanitizer: data race" target/tsan/canary.log; then
    echo "scripts/tsan.sh: the sanitizer build did not report the planted race; its silence below would mean nothing" >&2
    exit 1
fi
status=0
# nextest gives every test its own process, as the suites expect (one C_Initialize each).
$cargo nextest run -Z build-std --target $target --no-fail-fast --no-capture "$@" \
    >> "$log" 2>&1 || status=1
reports=$(grep -c "WARNING: ThreadSanitizer" "$log" || true)
grep -E "^ *Summary|^ *FAIL" "$log" || true
echo "tsan: $reports ThreadSanitizer report(s) in the suites (full output: $log)"
if [ "$reports" -ne 0 ]; then
    grep -A12 "WARNING: ThreadSanitizer" "$log" | head -60
    status=1
fi
exit $status
