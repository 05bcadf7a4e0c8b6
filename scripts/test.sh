#!/usr/bin/env bash
# The README's test command: installs what the tests need on a fresh Debian machine,
# checks formatting and lints, builds the module, and runs every test with nextest.
# .ci/run calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v pkcs11-tool >/dev/null || need_apt+=(opensc)
[ -e /usr/lib/softhsm/libsofthsm2.so ] || need_apt+=(softhsm2)
command -v sqlite3 >/dev/null || need_apt+=(sqlite3)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing: ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q "${need_apt[@]}"
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install cargo-nextest --locked
fi

cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
# The integration tests load target/debug/libkmshsm.so, the cdylib, as clients do.
cargo build --lib
cargo nextest run --no-fail-fast "$@"
