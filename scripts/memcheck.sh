#!/bin/sh
# Runs a representative subset of the integration tests with every test process under
# valgrind memcheck: no invalid read or write, no use of uninitialised memory, and no
# definite leak (the tests finalise the library, so a definite leak is the module's or
# the test's). Each test binary is run through nextest with valgrind as the target
# runner, so every test gets its own valgrind process.
#
# Usage: scripts/memcheck.sh [--test NAME ...] [nextest filter]
#   default: --test session --test find --test login --test hostile_params --test kms_create
# Output: target/valgrind/memcheck-<pid>.log per test process; exit status 1 on any error.
# Needs: valgrind (`apt-get install -y valgrind`) and cargo-nextest.
set -eu
cd "$(dirname "$0")/.."
if ! command -v valgrind >/dev/null 2>&1; then
    echo "scripts/memcheck.sh: valgrind is not installed; run: apt-get install -y valgrind" >&2
    exit 1
fi
if ! command -v cargo-nextest >/dev/null 2>&1; then
    echo "scripts/memcheck.sh: cargo-nextest is missing; run: cargo install cargo-nextest" >&2
    exit 1
fi
[ $# -gt 0 ] || set -- --test session --test find --test login --test hostile_params --test kms_create
mkdir -p target/valgrind
rm -f target/valgrind/memcheck-*.log
cargo build --quiet
runner="valgrind --tool=memcheck --error-exitcode=1 --leak-check=full \
--errors-for-leak-kinds=definite --show-leak-kinds=definite --num-callers=40 \
--log-file=$(pwd)/target/valgrind/memcheck-%p.log"
status=0
CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER="$runner" \
    cargo nextest run --no-fail-fast "$@" || status=$?
logs=$(ls target/valgrind/memcheck-*.log 2>/dev/null | wc -l)
bad=$(grep -L "ERROR SUMMARY: 0 errors" target/valgrind/memcheck-*.log 2>/dev/null || true)
echo "memcheck: $logs valgrind processes"
if [ -n "$bad" ]; then
    echo "memcheck: errors in:"
    for f in $bad; do
        echo "  $f: $(grep 'ERROR SUMMARY' "$f")"
    done
    status=1
fi
exit $status
