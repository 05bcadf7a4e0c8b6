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
# Exit status: 0 clean; 1 a race, a failed test, or a run that did not happen although its
# toolchain could be had (rustup's server answers); 2 the toolchain cannot be had here
# (no nightly and no rustup, or nightly/rust-src missing and rustup's server unreachable:
# not run).
# Needs: cargo-nextest, and the nightly toolchain with rust-src (`rustup toolchain install nightly` and
# `rustup component add rust-src --toolchain nightly`); the script tries both itself.
set -eu
cd "$(dirname "$0")/.."
target=x86_64-unknown-linux-gnu
# Status 2 ("not run", which scripts/test.sh reports loudly but does not fail on) only
# when the toolchain truly cannot be had: no rustup to install it, or rustup's
# distribution server does not answer (offline). If the server answers and the toolchain
# still is not there (an install that failed), or anything later stops the run (a build
# failure, a canary that stays silent), the status is 1, a failure.
dist=${RUSTUP_DIST_SERVER:-https://static.rust-lang.org}
dist_reachable() {
    if command -v curl >/dev/null 2>&1; then
        curl -fsS --max-time 20 -o /dev/null "$dist/dist/channel-rust-nightly.toml.sha256"
    else
        host=$(printf '%s\n' "$dist" | sed 's|^[a-z]*://||; s|[:/].*||')
        getent hosts "$host" >/dev/null 2>&1
    fi
}
# not_had WHAT: the toolchain piece WHAT could not be installed; status 2 if offline, else 1.
not_had() {
    if dist_reachable; then
        echo "scripts/tsan.sh: FAILED: $1 could not be installed although $dist answers" >&2
        exit 1
    fi
    echo "scripts/tsan.sh: NOT RUN: $1 missing and $dist unreachable (offline)" >&2
    exit 2
}
if ! rustc +nightly --version >/dev/null 2>&1; then
    if ! command -v rustup >/dev/null 2>&1; then
        echo "scripts/tsan.sh: NOT RUN: no nightly toolchain, and no rustup to install one" >&2
        exit 2
    fi
    rustup toolchain install nightly --profile minimal >/dev/null 2>&1 ||
        not_had "the nightly toolchain"
    rustc +nightly --version >/dev/null 2>&1 || {
        echo "scripts/tsan.sh: FAILED: rustup installed nightly but rustc +nightly does not run" >&2
        exit 1
    }
fi
if ! rustup component list --toolchain nightly --installed 2>/dev/null | grep -q '^rust-src'; then
    rustup component add rust-src --toolchain nightly >/dev/null 2>&1 ||
        not_had "rust-src for nightly (needed to rebuild std under the sanitizer)"
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
