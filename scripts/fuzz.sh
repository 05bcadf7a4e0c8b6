#!/bin/sh
# Builds every cargo-fuzz target in fuzz/ and runs each for FUZZ_SECONDS seconds
# (default 60; FUZZ_SECONDS=600 for the full run of docs/reliability.md). A target that
# crashes, panics, leaks (AddressSanitizer/LeakSanitizer), runs out of memory (2 GiB) or
# hangs (one input longer than 10 s) fails the script; libFuzzer leaves the input in
# fuzz/artifacts/<target>/. Copy it to fuzz/regressions/<target>/ so that
# tests/fuzz_regressions.rs replays it forever.
#
# Usage: scripts/fuzz.sh [target ...]       (default: every target)
# Needs: cargo-fuzz (`cargo install cargo-fuzz`); the stable toolchain is used with
# RUSTC_BOOTSTRAP=1 because cargo-fuzz passes nightly-only flags (-Zsanitizer).
set -eu
cd "$(dirname "$0")/../fuzz"
seconds=${FUZZ_SECONDS:-60}
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "scripts/fuzz.sh: cargo-fuzz is not installed; run: cargo install cargo-fuzz" >&2
    exit 1
fi
export RUSTC_BOOTSTRAP=1
# The root's release profile links with fat LTO and one codegen unit (Cargo.toml);
# SanitizerCoverage's per-module counters do not survive that link (undefined
# `__sancov_gen_*` symbols), so the fuzz builds use the usual per-crate units.
export CARGO_PROFILE_RELEASE_LTO=false
export CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
targets=${*:-$(cargo fuzz list)}
cargo fuzz build
mkdir -p logs
status=0
for target in $targets; do
    mkdir -p "corpus/$target"
    set -- "corpus/$target"
    [ -d "seeds/$target" ] && set -- "$@" "seeds/$target"
    [ -d "regressions/$target" ] && set -- "$@" "regressions/$target"
    echo "== $target: $seconds s"
    if cargo fuzz run "$target" "$@" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"logs/$target.log" 2>&1; then
        grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "logs/$target.log" | tr '\n' ' '
        echo "-> ok"
    else
        status=1
        tail -40 "logs/$target.log"
        echo "-> FAILED (fuzz/logs/$target.log, fuzz/artifacts/$target/)"
    fi
done
exit $status
