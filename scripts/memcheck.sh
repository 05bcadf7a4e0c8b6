#!/bin/sh
# Runs the integration suite with every test process under valgrind memcheck: no invalid
# read or write, no use of uninitialised memory, and no definite leak (the tests finalise
# the library, so a definite leak is the module's or the test's). nextest runs each test
# in its own process with valgrind as the target runner; child processes the tests start
# from the build tree (the test binary re-run as a second process, the kmshsm command)
# are traced too, system programs are not.
#
# Usage: scripts/memcheck.sh [nextest arguments]
#   default: every test binary except those below, with the memcheck nextest profile.
#   Left out, and why: kill_test and crash_safety SIGKILL their children by design (a
#   killed process leaves no valgrind summary); clients_* , pkcs11_tool, mech_pkcs11_tool*
#   and kms_pkcs11_tool load the module inside system programs (pkcs11-tool, openssl,
#   java, ssh-keygen, python, p11tool), which valgrind is not asked to trace;
#   memory_secrets scans its own process's memory for key bytes, and under valgrind that
#   memory holds valgrind's copies of the guest registers and its own arenas.
#   Valgrind is ~50x slower, so the timed suites get more time: the many-process workers
#   run 60 s (KMSHSM_PROCESS_SECONDS) and the deadlock watchdog waits 600 s.
# Leaks that belong to the tests themselves are suppressed in scripts/memcheck.supp, each
# with its reason. A log without a summary is a child that replaced itself with an
# untraced system program (exec), or one a test killed; those are counted, not judged.
# Output: target/valgrind/memcheck-<pid>.log per process; exit status 1 on any error.
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
[ $# -gt 0 ] || set -- --profile memcheck -E \
    'not binary(/^(kill_test|crash_safety|clients_.*|pkcs11_tool|mech_pkcs11_tool.*|kms_pkcs11_tool|memory_secrets|tsan_canary)$/)'
export KMSHSM_PROCESS_SECONDS="${KMSHSM_PROCESS_SECONDS:-60}"
export KMSHSM_WATCHDOG_SECONDS="${KMSHSM_WATCHDOG_SECONDS:-600}"
mkdir -p target/valgrind
rm -f target/valgrind/memcheck-*.log
cargo build --quiet
runner="valgrind --tool=memcheck --error-exitcode=1 --leak-check=full \
--errors-for-leak-kinds=definite --show-leak-kinds=definite --num-callers=40 \
--trace-children=yes --trace-children-skip=/usr/*,/bin/*,/sbin/* \
--suppressions=$(pwd)/scripts/memcheck.supp \
--log-file=$(pwd)/target/valgrind/memcheck-%p.log"
status=0
CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER="$runner" \
    cargo nextest run --no-fail-fast "$@" || status=$?
logs=$(ls target/valgrind/memcheck-*.log 2>/dev/null | wc -l)
summarised=$(grep -l "ERROR SUMMARY" target/valgrind/memcheck-*.log 2>/dev/null | wc -l)
bad=$(grep -L "ERROR SUMMARY: 0 errors" $(grep -l "ERROR SUMMARY" target/valgrind/memcheck-*.log) 2>/dev/null || true)
echo "memcheck: $logs valgrind logs, $summarised with a summary," \
    "$((logs - summarised)) without (exec'd a system program, or killed by a test)"
if [ -n "$bad" ]; then
    echo "memcheck: errors in:"
    for f in $bad; do
        echo "  $f: $(grep 'ERROR SUMMARY' "$f") ($(sed -n 's/.*Command: //p' "$f" | head -1))"
    done
    status=1
fi
exit $status
