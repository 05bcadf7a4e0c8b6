#!/bin/sh
# Instructions per lifecycle operation with and without the audit trail, independent of
# machine load: runs tests/audit_cost.rs under callgrind at two round counts for each
# module and phase, and prints (difference of instructions) / (difference of operations),
# so setup cancels out. Each state-change round is 2 operations, each create round 2
# (C_CreateObject, C_DestroyObject), each encrypt round 1.
#   ./bench/audit_cost.sh OLD.so NEW.so ...   (needs valgrind; builds the test binary)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cargo test --test audit_cost --no-run 2>/dev/null
bin=$(ls -t target/debug/deps/audit_cost-* | grep -v '\.d$' | head -1)
small=10
large=60
for module in "$@"; do
    for phase in state create encrypt; do
        count() {
            KMSHSM_TEST_MODULE="$module" KMSHSM_COST_PHASE=$phase KMSHSM_COST_ROUNDS=$1 \
                valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" --ignored \
                --exact lifecycle_operations_per_second 2>&1 |
                sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
        }
        a=$(count $small)
        b=$(count $large)
        ops=2
        [ "$phase" = encrypt ] && ops=1
        echo "$module $phase: $(( (b - a) / ((large - small) * ops) )) instructions per operation"
    done
done
