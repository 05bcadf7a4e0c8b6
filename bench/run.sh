#!/bin/sh
# Side-by-side benchmark of libkmshsm.so against SoftHSMv2 (see docs/performance.md).
# Builds the module and the benchmark in release mode, installs SoftHSMv2 and PostgreSQL if missing
# (Debian, as root), and prints the results table; arguments go to the benchmark
# (e.g. --quick, --rounds 7, --counts 1000,10000).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
if [ ! -e /usr/lib/softhsm/libsofthsm2.so ] || [ ! -x /usr/lib/postgresql/15/bin/initdb ]; then
    # SoftHSMv2, and PostgreSQL for phase `store` (a private server the bench starts).
    apt-get update -qq && apt-get install -y -qq softhsm2 postgresql-15 >/dev/null
fi
# Both into the workspace's target/ (the benchmark is a member of the root workspace);
# bench/target/ holds only what the benchmark writes: results, CSV data, token cache.
(cd "$root" && cargo build --release --lib && cargo build --release -p kmshsm-bench)
exec "$root/target/release/kmshsm-bench" --out "$here/target/results.md" "$@"
