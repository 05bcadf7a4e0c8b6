#!/usr/bin/env bash
# The ecosystem's own PKCS#11 test suites, run against kmshsm and SoftHSMv2 side by side
# (issue 14; docs/conformance.md). scripts/test.sh runs it after the main test run.
#
#   suites   google/pkcs11test, OpenSC (p11test and tests/test-pkcs11-tool-*.sh),
#            latchset/pkcs11-provider (meson test), the cryptoki crate 0.12.1's tests
#   sources  ../shared/third-party/*.tar.gz beside the repository (CONFORMANCE_SRC
#            overrides); the cryptoki crate through cargo
#   builds   under target/conformance/<archive name>/, kept between runs (a build is
#            redone only when its archive name changes or its stamp file is missing)
#   modules  target/debug/libkmshsm.so (KMSHSM_CONFORMANCE_MODULE overrides; test.sh has
#            built it) and /usr/lib/softhsm/libsofthsm2.so, each on a fresh token per suite
#
# Prints one table: suite, SoftHSMv2 passed/failed, kmshsm passed/failed, difference. Exits
# non-zero when kmshsm does not pass a test that SoftHSMv2 passes and that test is not on
# the divergence list in docs/conformance.md (table rows between its divergences markers
# whose first cell names a suite). A suite
# that cannot be found, built or run prints NOT RUN with the reason and is not counted.
#
# PINs: only throwaway test PINs (this script's, and the suites' own built-in ones).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

src_dir=${CONFORMANCE_SRC:-$repo/../shared/third-party}
work=$repo/target/conformance
kmshsm_lib=${KMSHSM_CONFORMANCE_MODULE:-$repo/target/debug/libkmshsm.so}
softhsm_lib=/usr/lib/softhsm/libsofthsm2.so
doc=$repo/docs/conformance.md
jobs=${CONFORMANCE_JOBS:-2}

# Throwaway PINs for the tokens this script makes itself (pkcs11test).
so_pin="conf-so-0000"
user_pin="conf-user-1111"

# This run's scratch space, results and logs; builds live beside it and are kept.
run=$work/run
rm -rf "$run"
mkdir -p "$run/results" "$run/logs"
results=$run/results
notrun_file=$run/notrun
: >"$notrun_file"

start_all=$(date +%s)
say() { printf '\n=== conformance: %s\n' "$*"; }

# not_run SUITE REASON: records a suite that could not run; printed loudly at the end.
not_run() {
  printf '%s\t%s\n' "$1" "$2" >>"$notrun_file"
  printf '\n!!! conformance: %s NOT RUN: %s !!!\n' "$1" "$2" >&2
}

# ---------------------------------------------------------------------------------------
# Preconditions: build dependencies (installed when root), and both modules.
# ---------------------------------------------------------------------------------------
if ! "$repo/scripts/conformance-deps.sh"; then
  echo "conformance: build dependencies missing (see above); suites that need them will be NOT RUN" >&2
fi
if [ ! -e "$kmshsm_lib" ]; then
  echo "conformance: $kmshsm_lib does not exist; build it first (cargo build --lib)" >&2
  exit 1
fi
if [ ! -e "$softhsm_lib" ]; then
  echo "conformance: $softhsm_lib does not exist (apt-get install softhsm2)" >&2
  exit 1
fi
kmshsm_lib=$(realpath "$kmshsm_lib")

# ---------------------------------------------------------------------------------------
# Module configuration. Each call makes a fresh token directory and configuration under
# DIR and exports the variable the module reads (KMSHSM_CONF or SOFTHSM2_CONF), as a user
# would configure it. kmshsm gets a cheap KDF (as its own tests do; the suites log in
# hundreds of times), no PIN lockout (the suites try wrong PINs on purpose), and
# legacy_algorithms on: the suites use RSA-1024 and DES/3DES keys throughout, and a user
# who needs them turns on that documented switch (docs/security.md). Its warning at each
# C_Initialize goes to a log file, not into the suites' output the script parses.
# ---------------------------------------------------------------------------------------
configure_module() {
  local kind=$1 dir=$2
  rm -rf "$dir"
  mkdir -p "$dir/tokens"
  if [ "$kind" = kmshsm ]; then
    cat >"$dir/kmshsm.toml" <<EOF
token_dir = "$dir/tokens"
log_file = "$dir/kmshsm.log"
max_pin_failures = 0
legacy_algorithms = true

[kdf]
memory_kib = 1024
iterations = 1
parallelism = 1
EOF
    export KMSHSM_CONF="$dir/kmshsm.toml"
  else
    printf 'directories.tokendir = %s\nobjectstore.backend = file\n' "$dir/tokens" >"$dir/softhsm2.conf"
    export SOFTHSM2_CONF="$dir/softhsm2.conf"
  fi
}

lib_of() { if [ "$1" = kmshsm ]; then echo "$kmshsm_lib"; else echo "$softhsm_lib"; fi; }

# init_token LIB LABEL: initialises the first uninitialised slot with LABEL and sets the
# user PIN, with pkcs11-tool (the same for both modules); prints the slot ID in decimal.
init_token() {
  local lib=$1 label=$2 hex
  pkcs11-tool --module "$lib" --init-token --label "$label" --so-pin "$so_pin" >/dev/null
  pkcs11-tool --module "$lib" --token-label "$label" --login --login-type so \
    --so-pin "$so_pin" --init-pin --pin "$user_pin" >/dev/null
  hex=$(pkcs11-tool --module "$lib" --list-slots 2>/dev/null | awk -v want="$label" '
    /^Slot [0-9]+ \(0x[0-9a-fA-F]+\)/ { match($0, /\(0x[0-9a-fA-F]+\)/); id = substr($0, RSTART + 1, RLENGTH - 2) }
    /token label *:/ { l = $0; sub(/^[^:]*: /, "", l); sub(/ +$/, "", l); if (l == want) { print id; exit } }')
  [ -n "$hex" ] || { echo "conformance: no slot with token label $label" >&2; return 1; }
  echo $((hex))
}

# ---------------------------------------------------------------------------------------
# Building a suite from its archive, cached by archive name.
# ---------------------------------------------------------------------------------------

# archive_for PREFIX: the archive in src_dir whose name starts with PREFIX-, or nothing.
archive_for() {
  local f
  for f in "$src_dir/$1"-*.tar.gz; do
    [ -e "$f" ] && { echo "$f"; return 0; }
  done
  return 0
}

# prepare SUITE PREFIX BUILD-FUNCTION: finds the archive, and unless
# target/conformance/<archive name>/.built exists, unpacks it into .../src and runs
# BUILD-FUNCTION there (output to .../build.log). Prints the directory; on failure records
# NOT RUN and returns 1.
prepare() {
  local suite=$1 prefix=$2 build=$3 archive base dir
  archive=$(archive_for "$prefix")
  if [ -z "$archive" ]; then
    not_run "$suite" "source missing: no $src_dir/$prefix-*.tar.gz"
    return 1
  fi
  base=$(basename "$archive" .tar.gz)
  dir=$work/$base
  if [ ! -e "$dir/.built" ]; then
    say "building $base (log: $dir/build.log)" >&2
    rm -rf "$dir"
    mkdir -p "$dir/src"
    # The archives hold one top-level folder; it becomes .../src.
    tar xzf "$archive" -C "$dir/src" --strip-components=1
    if ! (cd "$dir/src" && "$build" "$dir") >"$dir/build.log" 2>&1 </dev/null; then
      tail -n 20 "$dir/build.log" >&2
      not_run "$suite" "build failed (see $dir/build.log)"
      return 1
    fi
    touch "$dir/.built"
  fi
  echo "$dir"
}

build_pkcs11test() { make -j"$jobs"; }
build_opensc() { ./bootstrap && ./configure --disable-doc --enable-tests && make -j"$jobs"; }
build_provider() { meson setup "$1/build" . && meson compile -C "$1/build" -j "$jobs"; }

# `conformance.sh --build-opensc`: only builds (or finds) OpenSC and exits; scripts/test.sh
# calls it before the main test run, whose tests/kms_byok_tools.rs needs a current
# pkcs11-tool (Debian's 0.23 sends no OAEP parameters with --unwrap).
if [ "${1:-}" = "--build-opensc" ]; then
  prepare OpenSC OpenSC build_opensc
  exit
fi

# ---------------------------------------------------------------------------------------
# Result files: results/<suite>.<module> holds one line per test, "STATUS<TAB>name", with
# STATUS one of PASS, FAIL, CRASH (counted as failed), SKIP.
# ---------------------------------------------------------------------------------------

# gtest_parse: reads gtest's console output; prints result lines, and for a test that
# started but never finished (the process died) a CRASH line.
gtest_parse() {
  awk '
    function done(status, n) { sub(/,$/, "", n); if (n == cur) { print status "\t" cur; cur = "" } }
    /^\[ RUN      \] / { cur = $4; next }
    /^\[       OK \] / { done("PASS", $4); next }
    /^\[  FAILED  \] / { done("FAIL", $4); next }
    /^\[  SKIPPED \] / { done("SKIP", $4); next }
    END { if (cur != "") print "CRASH\t" cur }'
}

# ---------------------------------------------------------------------------------------
# google/pkcs11test
# ---------------------------------------------------------------------------------------
run_pkcs11test() {
  local kind=$1 bindir=$2 dir lib slot out attempt=0 status excluded="" filter
  dir=$run/pkcs11test-$kind
  lib=$(lib_of "$kind")
  configure_module "$kind" "$dir"
  slot=$(init_token "$lib" "pkcs11test") || return 1
  out=$results/pkcs11test.$kind
  : >"$out"
  # A crash of the suite process (kmshsm: Init.InitArgsBadReserved before its fix) must
  # not lose the rest: the test that was running is recorded as CRASH, and the suite is
  # started again without every test that already has a result. A hang (10 minutes) is
  # treated the same way.
  while :; do
    filter='*'
    [ -n "$excluded" ] && filter="-$excluded"
    status=0
    (cd "$dir" && timeout 600 "$bindir/pkcs11test" -m "$(basename "$lib")" -l "$(dirname "$lib")" \
      -s "$slot" -u "$user_pin" -o "$so_pin" --gtest_filter="$filter") \
      >"$run/logs/pkcs11test-$kind.$attempt.log" 2>&1 </dev/null || status=$?
    gtest_parse <"$run/logs/pkcs11test-$kind.$attempt.log" >>"$out"
    if ! grep -q '^\[==========\] .* ran\.' "$run/logs/pkcs11test-$kind.$attempt.log"; then
      echo "conformance: pkcs11test against $kind died (status $status) in attempt $attempt; restarting without the finished tests" >&2
      attempt=$((attempt + 1))
      if [ "$attempt" -ge 25 ]; then
        echo "conformance: pkcs11test against $kind: too many crashes, the rest counts as not run" >&2
        break
      fi
      excluded=$(cut -f2 "$out" | paste -sd: -)
      # No progress at all (it dies before any test): stop.
      [ -n "$excluded" ] || break
      continue
    fi
    break
  done
}

# ---------------------------------------------------------------------------------------
# OpenSC: p11test and tests/test-pkcs11-tool-*.sh, through a directory of links to OpenSC's
# tests/ in which scripts/conformance/opensc-token.sh stands in for init-softhsm.sh (the
# scripts source "$SOURCE_PATH/tests/init-<type>.sh"; with type "softhsm" they follow their
# SoftHSM branches for both modules).
# ---------------------------------------------------------------------------------------
opensc_scripts=(
  test-pkcs11-tool-test-threads.sh
  test-pkcs11-tool-allowed-mechanisms.sh
  test-pkcs11-tool-sym-crypt-test.sh
  test-pkcs11-tool-test.sh
  test-pkcs11-tool-sign-verify.sh
  test-pkcs11-tool-unwrap-wrap-test.sh
  test-pkcs11-tool-import.sh
  test-pkcs11-tool-uri-with-slot-id.sh
)

opensc_shim() {
  local opensc=$1 shim=$run/opensc-shim f
  mkdir -p "$shim/tests"
  for f in "$opensc/src/tests/"*; do
    ln -sf "$f" "$shim/tests/"
  done
  ln -sf "$repo/scripts/conformance/opensc-token.sh" "$shim/tests/init-softhsm.sh"
  echo "$shim"
}

run_opensc() {
  local kind=$1 opensc=$2 shim=$3 dir lib status script out path=$PATH
  lib=$(lib_of "$kind")
  # The scripts' SoftHSM branches call softhsm2-util; for kmshsm a stand-in runs it with
  # --module (scripts/conformance/bin/softhsm2-util).
  [ "$kind" = kmshsm ] && path=$repo/scripts/conformance/bin:$PATH
  # p11test: one result per test in its JSON report.
  dir=$run/p11test-$kind
  mkdir -p "$dir"
  status=0
  (cd "$dir" && SOURCE_PATH=$shim BUILD_PATH=$opensc/src CONF_MODULE_LIB=$lib \
    CONF_MODULE_KIND=$kind timeout 600 "$repo/scripts/conformance/opensc-p11test.sh" "$dir/p11test.json") \
    >"$run/logs/p11test-$kind.log" 2>&1 </dev/null || status=$?
  out=$results/p11test.$kind
  if [ -s "$dir/p11test.json" ] && python3 - "$dir/p11test.json" >"$out" <<'EOF'
import json, sys
for t in json.load(open(sys.argv[1]))["results"]:
    status = {"pass": "PASS", "skip": "SKIP"}.get(t.get("result"), "FAIL")
    print(f"{status}\t{t['test_id']}")
EOF
  then :; else
    # No report: p11test died; one CRASH line keeps it visible.
    printf 'CRASH\tp11test (status %s, no report)\n' "$status" >"$out"
  fi

  # The pkcs11-tool scripts: one result per script (exit 0 pass, 77 skip, else fail).
  out=$results/pkcs11-tool-scripts.$kind
  : >"$out"
  for script in "${opensc_scripts[@]}"; do
    dir=$run/opensc-$kind/${script%.sh}
    mkdir -p "$dir"
    status=0
    (cd "$dir" && PATH=$path SOURCE_PATH=$shim BUILD_PATH=$opensc/src CONF_MODULE_LIB=$lib \
      CONF_MODULE_KIND=$kind timeout 600 bash "$shim/tests/$script" softhsm) \
      >"$run/logs/opensc-$kind-${script%.sh}.log" 2>&1 </dev/null || status=$?
    case $status in
      0) printf 'PASS\t%s\n' "$script" ;;
      77) printf 'SKIP\t%s\n' "$script" ;;
      *) printf 'FAIL\t%s\n' "$script" ;;
    esac >>"$out"
  done
}

# ---------------------------------------------------------------------------------------
# latchset/pkcs11-provider: `meson test --suite softhsm`. SoftHSMv2 runs with the suite's
# own SoftHSM driver, unmodified; kmshsm runs with TESTSSRCDIR pointing at links to the
# suite's tests/ in which scripts/conformance/pkcs11-provider-kmshsm.sh stands in for the
# SoftHSM driver (meson's --wrapper sets it, since meson's own test environment would
# override an exported one).
# ---------------------------------------------------------------------------------------
run_provider() {
  local kind=$1 prov=$2 shim wrapper=() status=0 log
  if [ "$kind" = kmshsm ]; then
    shim=$run/provider-shim
    mkdir -p "$shim"
    for f in "$prov/src/tests/"*; do ln -sf "$f" "$shim/"; done
    ln -sf "$repo/scripts/conformance/pkcs11-provider-kmshsm.sh" "$shim/softhsm-init.sh"
    wrapper=(--wrapper "env TESTSSRCDIR=$shim KMSHSM_CONFORMANCE_MODULE=$kmshsm_lib")
  fi
  rm -f "$prov/build/meson-logs/testlog-$kind"*
  # The suite's set-up makes its keys with whatever pkcs11-tool is on PATH; Debian's 0.23
  # cannot name X25519, the OpenSC this script builds can: it goes first, for both modules.
  local tools
  tools=$(find "$work" -maxdepth 4 -path '*/OpenSC-*/src/src/tools' -type d 2>/dev/null | head -n 1)
  (if [ -n "$tools" ] && [ -x "$tools/pkcs11-tool" ]; then export PATH="$tools:$PATH"; fi
    cd "$prov/build" && meson test --suite softhsm --num-processes 1 --no-rebuild \
    --logbase "testlog-$kind" "${wrapper[@]}") >"$run/logs/pkcs11-provider-$kind.log" 2>&1 </dev/null || status=$?
  # Meson also writes each test's own output into testlog.json; keep it for reading.
  # Meson appends the wrapper's name to the log name (testlog-kmshsm-env.json).
  log=$(find "$prov/build/meson-logs" -name "testlog-$kind*.json" | head -n 1)
  if [ -n "$log" ] && [ -s "$log" ]; then
    cp "$log" "$run/logs/pkcs11-provider-$kind.testlog.json"
    python3 - "$log" >"$results/pkcs11-provider.$kind" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    t = json.loads(line)
    status = {"OK": "PASS", "SKIP": "SKIP", "EXPECTEDFAIL": "PASS"}.get(t["result"], "FAIL")
    # "pkcs11-provider:softhsm / basic" -> "basic"
    print(f"{status}\t{t['name'].split(' / ')[-1]}")
EOF
  else
    printf 'CRASH\tmeson test (status %s, no test log)\n' "$status" >"$results/pkcs11-provider.$kind"
  fi
}

# ---------------------------------------------------------------------------------------
# The cryptoki crate's integration tests (0.12.1), from the published crate. kmshsm and
# SoftHSMv2 both as a generic module (the crate treats any module path containing
# "softhsm" as SoftHSM, so SoftHSMv2 is reached through a link with a neutral name), and
# SoftHSMv2 once more with the crate's SoftHSM profile, for reference.
# ---------------------------------------------------------------------------------------
cryptoki_version=0.12.1

prepare_cryptoki() {
  local dir=$work/cryptoki-$cryptoki_version manifest
  if [ ! -e "$dir/.built" ]; then
    say "fetching and building the cryptoki $cryptoki_version tests (log: $dir/build.log)" >&2
    rm -rf "$dir"
    mkdir -p "$dir/fetch/src"
    # A throwaway crate whose only purpose is to make cargo fetch the published crate.
    printf '[package]\nname = "cryptoki-fetch"\nversion = "0.0.0"\nedition = "2021"\npublish = false\n\n[dependencies]\ncryptoki = "=%s"\n\n[workspace]\n' \
      "$cryptoki_version" >"$dir/fetch/Cargo.toml"
    : >"$dir/fetch/src/lib.rs"
    if ! manifest=$(cd "$dir/fetch" && cargo fetch -q && cargo metadata -q --format-version 1 |
      python3 -c 'import json, sys; print([p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"] == "cryptoki"][0])'); then
      not_run cryptoki "cargo could not fetch cryptoki $cryptoki_version"
      return 1
    fi
    # Copied out of cargo's registry so that building it writes nothing there; the
    # [workspace] line keeps cargo from taking kmshsm's Cargo.toml above for its workspace.
    cp -r "$(dirname "$manifest")" "$dir/crate"
    chmod -R u+w "$dir/crate"
    printf '\n[workspace]\n' >>"$dir/crate/Cargo.toml"
    if ! (cd "$dir/crate" && CARGO_TARGET_DIR=$dir/target cargo test --tests --no-run -j "$jobs") \
      >"$dir/build.log" 2>&1 </dev/null; then
      tail -n 20 "$dir/build.log" >&2
      not_run cryptoki "the crate's tests did not build (see $dir/build.log)"
      return 1
    fi
    touch "$dir/.built"
  fi
  echo "$dir"
}

# cargo_test_parse: libtest's output of `cargo test -- --test-threads=1` to result lines,
# names prefixed with the test file; a test that started and never finished is a CRASH.
cargo_test_parse() {
  awk '
    /^ *Running / { if (cur != "") { print "CRASH\t" cur; cur = "" }
                    bin = $2; sub(/^.*\//, "", bin); sub(/\.rs$/, "", bin); next }
    /^test .* \.\.\. / {
      name = $2; res = $0; sub(/^.* \.\.\. /, "", res)
      if (res == "ok") print "PASS\t" bin "::" name
      else if (res == "ignored" || res ~ /^ignored/) print "SKIP\t" bin "::" name
      else if (res == "FAILED") print "FAIL\t" bin "::" name
      else cur = bin "::" name
      next }
    END { if (cur != "") print "CRASH\t" cur }'
}

run_cryptoki() {
  local label=$1 kind=$2 dir=$3 module pretend="" status=0 tdir
  tdir=$run/cryptoki-$label
  configure_module "$kind" "$tdir"
  module=$(lib_of "$kind")
  case $label in
    softhsm-generic)
      # A path without "softhsm" in it, so the crate does not recognise SoftHSMv2.
      mkdir -p "$run/generic"
      ln -sf "$softhsm_lib" "$run/generic/libgeneric-pkcs11.so"
      module=$run/generic/libgeneric-pkcs11.so ;;
    softhsm-profile) pretend=softhsm ;;
  esac
  # The crate's tests initialise the first slot's token themselves, with their own PINs.
  (cd "$dir/crate" && CARGO_TARGET_DIR=$dir/target TEST_PKCS11_MODULE=$module \
    TEST_PRETEND_LIBRARY=$pretend timeout 1200 cargo test --tests --no-fail-fast -j "$jobs" -- \
    --test-threads=1) >"$run/logs/cryptoki-$label.log" 2>&1 </dev/null || status=$?
  cargo_test_parse <"$run/logs/cryptoki-$label.log" >"$results/cryptoki.$label"
  if [ ! -s "$results/cryptoki.$label" ]; then
    printf 'CRASH\tcargo test (status %s, no results)\n' "$status" >"$results/cryptoki.$label"
  fi
}

# ---------------------------------------------------------------------------------------
# Run everything. Each suite runs against SoftHSMv2 first, then kmshsm.
# ---------------------------------------------------------------------------------------
declare -A suite_seconds=()
timed() { # timed SUITE COMMAND...: runs COMMAND, adds its wall time to SUITE's
  local s=$1 t0
  shift
  t0=$(date +%s)
  "$@"
  suite_seconds[$s]=$((${suite_seconds[$s]:-0} + $(date +%s) - t0))
}

if [ ! -d "$src_dir" ]; then
  echo "!!! conformance: $src_dir does not exist: the three GitHub suites are NOT RUN !!!" >&2
fi

if dir=$(prepare pkcs11test pkcs11test build_pkcs11test); then
  for kind in softhsm kmshsm; do
    say "pkcs11test against $kind"
    timed pkcs11test run_pkcs11test "$kind" "$dir/src" ||
      not_run pkcs11test "harness error against $kind (see $run/logs)"
  done
fi

if dir=$(prepare "OpenSC" OpenSC build_opensc); then
  shim=$(opensc_shim "$dir")
  for kind in softhsm kmshsm; do
    say "OpenSC p11test and pkcs11-tool scripts against $kind"
    timed opensc run_opensc "$kind" "$dir" "$shim" ||
      not_run p11test "harness error against $kind (see $run/logs)"
  done
else
  # One source, two result rows.
  not_run p11test "OpenSC not available (above)"
  not_run pkcs11-tool-scripts "OpenSC not available (above)"
fi

if dir=$(prepare pkcs11-provider pkcs11-provider build_provider); then
  for kind in softhsm kmshsm; do
    say "pkcs11-provider meson test against $kind"
    timed pkcs11-provider run_provider "$kind" "$dir" ||
      not_run pkcs11-provider "harness error against $kind (see $run/logs)"
  done
fi

if dir=$(prepare_cryptoki); then
  for label in softhsm-profile softhsm-generic kmshsm; do
    kind=softhsm
    [ "$label" = kmshsm ] && kind=kmshsm
    say "cryptoki $cryptoki_version tests against $label"
    timed cryptoki run_cryptoki "$label" "$kind" "$dir" ||
      not_run cryptoki "harness error against $label (see $run/logs)"
  done
  # The comparison uses the generic SoftHSMv2 run: both modules then face the same tests.
  cp "$results/cryptoki.softhsm-generic" "$results/cryptoki.softhsm"
fi

# ---------------------------------------------------------------------------------------
# The divergence list: table rows in docs/conformance.md, between the markers
# <!-- divergences:begin --> and <!-- divergences:end -->, whose first cell is a suite name;
# the second cell is the test name (a shell glob), in backquotes.
# ---------------------------------------------------------------------------------------
suites=(pkcs11test p11test pkcs11-tool-scripts pkcs11-provider cryptoki)
declare -A allowed=()
if [ -e "$doc" ]; then
  while IFS=$'\t' read -r s t; do
    allowed[$s]+="$t"$'\n'
  done < <(awk -F'|' '
    /<!-- divergences:begin -->/ { on = 1; next }
    /<!-- divergences:end -->/ { on = 0; next }
    on && /^\| *(pkcs11test|p11test|pkcs11-tool-scripts|pkcs11-provider|cryptoki) *\|/ {
      s = $2; t = $3; gsub(/[ `]/, "", s); gsub(/^ +| +$/, "", t); gsub(/`/, "", t)
      print s "\t" t }' "$doc")
fi

# is_allowed SUITE TEST: the test matches a divergence row of SUITE.
is_allowed() {
  local p
  while IFS= read -r p; do
    [ -n "$p" ] || continue
    # shellcheck disable=SC2053 # the row is a glob on purpose
    [[ $2 == $p ]] && return 0
  done <<<"${allowed[$1]:-}"
  return 1
}

skipped() { [ "$1" -gt 0 ] && echo " ($1 skipped)"; return 0; }

count() { # count FILE: "passed failed skipped"
  awk -F'\t' '$1 == "PASS" { p++ } $1 == "FAIL" || $1 == "CRASH" { f++ } $1 == "SKIP" { s++ }
    END { printf "%d %d %d\n", p, f, s }' "$1"
}

# ---------------------------------------------------------------------------------------
# The table, the unexpected failures, and the verdict.
# ---------------------------------------------------------------------------------------
unexpected=$run/unexpected
stale=$run/stale
: >"$unexpected"
: >"$stale"
table=$run/table.md
{
  echo "| suite | SoftHSMv2 passed / failed | kmshsm passed / failed | difference (kmshsm − SoftHSMv2 passed) | kmshsm fails, SoftHSMv2 passes: listed / not listed |"
  echo "|---|---|---|---|---|"
} >"$table"
for s in "${suites[@]}"; do
  if grep -q "^$s	" "$notrun_file" || [ ! -e "$results/$s.softhsm" ] || [ ! -e "$results/$s.kmshsm" ]; then
    reason=$(awk -F'\t' -v s="$s" '$1 == s { print $2; exit }' "$notrun_file")
    echo "| $s | **NOT RUN** | **NOT RUN** | — | ${reason:-no results} |" >>"$table"
    continue
  fi
  read -r sp sf ss < <(count "$results/$s.softhsm")
  read -r kp kf ks < <(count "$results/$s.kmshsm")
  listed=0 unlisted=0
  divs=()
  # Tests SoftHSMv2 passes that kmshsm does not pass (failed, crashed, skipped or not run).
  while IFS= read -r t; do
    divs+=("$t")
    if is_allowed "$s" "$t"; then
      listed=$((listed + 1))
    else
      unlisted=$((unlisted + 1))
      kst=$(awk -F'\t' -v t="$t" '$2 == t { print $1; exit }' "$results/$s.kmshsm")
      printf '%s\t%s\t%s\n' "$s" "$t" "${kst:-NOT RUN}" >>"$unexpected"
    fi
  done < <(comm -23 <(awk -F'\t' '$1 == "PASS" { print $2 }' "$results/$s.softhsm" | sort -u) \
    <(awk -F'\t' '$1 == "PASS" { print $2 }' "$results/$s.kmshsm" | sort -u))
  # Divergence rows that match none of those tests (kmshsm passes it now, or SoftHSMv2
  # does not pass it either): not needed, so the list should lose them.
  while IFS= read -r p; do
    [ -n "$p" ] || continue
    hit=0
    for t in "${divs[@]}"; do
      # shellcheck disable=SC2053
      [[ $t == $p ]] && { hit=1; break; }
    done
    [ "$hit" = 1 ] || printf '%s\t%s\n' "$s" "$p" >>"$stale"
  done <<<"${allowed[$s]:-}"
  diff=$((kp - sp))
  [ "$diff" -gt 0 ] && diff="+$diff"
  echo "| $s | $sp / $sf$(skipped "$ss") | $kp / $kf$(skipped "$ks") | $diff | $listed / $unlisted |" >>"$table"
done
if [ -e "$results/cryptoki.softhsm-profile" ]; then
  read -r cp cf cs < <(count "$results/cryptoki.softhsm-profile")
  echo "| cryptoki (SoftHSMv2 with the crate's SoftHSM profile, reference only) | $cp / $cf$(skipped "$cs") | — | — | — |" >>"$table"
fi

say "results (logs: $run/logs)"
cat "$table"
echo
for s in "${!suite_seconds[@]}"; do printf '  %-16s %4d s\n' "$s" "${suite_seconds[$s]}"; done
echo "  whole step       $(($(date +%s) - start_all)) s"

if [ -s "$notrun_file" ]; then
  echo
  echo "!!! conformance: NOT RUN:" >&2
  sed 's/^/!!!   /' "$notrun_file" >&2
fi
if [ -s "$stale" ]; then
  echo
  echo "conformance: divergence rows in docs/conformance.md that match no test kmshsm fails and SoftHSMv2 passes (remove them):"
  sed 's/^/    /' "$stale"
fi
if [ -s "$unexpected" ]; then
  echo
  echo "conformance: FAILED: kmshsm does not pass these tests that SoftHSMv2 passes, and docs/conformance.md does not list them:" >&2
  sed 's/^/    /' "$unexpected" >&2
  exit 1
fi
echo
if [ -s "$notrun_file" ]; then
  echo "conformance: no unlisted divergence from SoftHSMv2 in the suites that ran; $(cut -f1 "$notrun_file" | sort -u | wc -l) NOT RUN (above)"
else
  echo "conformance: no unlisted divergence from SoftHSMv2"
fi
