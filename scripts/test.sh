#!/usr/bin/env bash
# The README's test command: installs what the tests need on a fresh Debian machine,
# checks formatting and lints, builds the module, and runs every test with nextest.
# .ci/run calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

# Disk: a cold run left 13 GB under target/. In CI (CI=true, a throwaway clone)
# incremental state is not written, and the sanitizer and fuzz builds are deleted once
# they have run, which leaves 5 GB; a developer's tree keeps them for the next warm run.
df -h . | sed 's/^/disk: /'
in_ci=false
if [ "${CI:-}" = true ]; then
  in_ci=true
  export CARGO_INCREMENTAL=0
fi

# pkcs11-tool, SoftHSMv2, sqlite3 and the real clients the tests drive (libp11 engine,
# p11tool, Java, ssh-keygen, python-pkcs11).
./scripts/install-test-deps.sh
if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install cargo-nextest --locked
fi

# The README's first command, first: in CI's fresh clone nothing has built the module
# yet, so this proves that `cargo run --example demo` works on a machine that never
# built the project (the example builds the cdylib it loads; examples/demo.rs).
cargo run --example demo

# Formatting and lints over the whole workspace: the module crate, softhsm-compat/, bench/
# and fuzz/ (the benchmark is type-checked and linted here, not run: it needs a long run
# to mean anything).
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# The SoftHSMv2 drop-in tool and the differential suite against libsofthsm2.so (a member
# of the workspace: it builds into target/ with the rest).
cargo nextest run -p kmshsm-softhsm2-util --no-fail-fast
# Fuzz smoke: every cargo-fuzz target for FUZZ_SECONDS (default 20) seconds under
# AddressSanitizer; the full 10-minute runs are scripts/fuzz.sh by hand (docs/reliability.md).
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
FUZZ_SECONDS=${FUZZ_SECONDS:-20} ./scripts/fuzz.sh
if $in_ci; then rm -rf target/x86_64-unknown-linux-gnu; fi
# Data races: the threaded suites under ThreadSanitizer (nightly, std rebuilt with the
# sanitizer; about 4 minutes). Status 2 means the sanitizer toolchain cannot be had here
# (no rustup, or rustup's server unreachable): reported loudly, not fatal. Any race or
# failure is fatal, and so is a toolchain that could be had but was not (status 1).
tsan_status=0
./scripts/tsan.sh || tsan_status=$?
if [ "$tsan_status" -eq 2 ]; then
  echo "!!! scripts/tsan.sh NOT RUN: no ThreadSanitizer toolchain here (see above) !!!" >&2
elif [ "$tsan_status" -ne 0 ]; then
  exit "$tsan_status"
fi
if $in_ci; then rm -rf target/tsan/x86_64-unknown-linux-gnu target/tsan/debug; fi
# The integration tests load target/debug/libkmshsm.so, the cdylib, as clients do.
cargo build --lib --bins
# The hot steps of release builds (AES-GCM, ECDSA) wipe a measured depth of stack, not
# 48 KiB (src/secret_use.rs): checked here on this machine's CPU, whose code paths in
# aws-lc decide how deep they write. Any call that leaves bytes below its wipe fails CI.
cargo build --release --lib
./bench/stackreach.sh target/release/libkmshsm.so
# And for what those depths hold: no copy of a key on the caller's stack right after
# the calls, nor anywhere after destroy and C_Finalize (tests/memory_secrets.rs), on the
# release build, whose scrubs are the measured ones.
KMSHSM_TEST_MODULE="$PWD/target/release/libkmshsm.so" cargo nextest run --test memory_secrets
# OpenSC's current pkcs11-tool for tests/kms_byok_tools.rs (the BYOK import with
# unmodified tools), built from ../shared/third-party/ where the conformance run below
# finds it again. Without it that test fails and says what to build.
./scripts/conformance.sh --build-opensc ||
  echo "!!! OpenSC not built: tests/kms_byok_tools.rs will fail (see above) !!!" >&2
# The runner's summary is printed again at the very end, after the conformance table.
mkdir -p target
cargo nextest run --no-fail-fast "$@" 2>&1 | tee target/nextest-output.log
# The ecosystem's own PKCS#11 suites (pkcs11test, OpenSC, pkcs11-provider, the cryptoki
# crate's tests) against target/debug/libkmshsm.so and SoftHSMv2 side by side; fails on a
# kmshsm failure that SoftHSMv2 passes and docs/conformance.md does not list. About 9
# minutes cold (building the suites), 2 warm (docs/conformance.md).
./scripts/conformance.sh
df -h . | sed 's/^/disk: /'
# The main test run's closing line, last (the conformance table printed above it).
grep -E '^ +Summary \[' target/nextest-output.log | tail -n 1
