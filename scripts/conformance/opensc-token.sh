#!/usr/bin/env bash
# Token set-up for OpenSC's tests/test-pkcs11-tool-*.sh and for our p11test driver, written
# for kmshsm's conformance run (scripts/conformance.sh). Not run directly: OpenSC's
# tests/common.sh sources "$SOURCE_PATH/tests/init-<tokentype>.sh"; conformance.sh points
# SOURCE_PATH at a directory of links to OpenSC's tests/ in which this file stands in for
# the init script, so the same unmodified test scripts drive whichever module
# CONF_MODULE_LIB names (kmshsm or SoftHSMv2).
#
# It defines what common.sh expects of an init script: P11LIB, initialize_token,
# token_cleanup, and the PUB_ARGS / PRIV_ARGS arrays. The token is made with pkcs11-tool
# alone (no softhsm2-util), so both modules are set up the same way; the PINs are the
# throwaway ones common.sh exports ($SOPIN, $PIN).
#
# Being sourced into OpenSC's scripts, this file sets no shell options of its own (no
# `set -euo pipefail`): the scripts count failures themselves and must keep running.

: "${CONF_MODULE_LIB:?conformance.sh sets CONF_MODULE_LIB to the module under test}"
: "${CONF_MODULE_KIND:?conformance.sh sets CONF_MODULE_KIND to kmshsm or softhsm}"
export P11LIB="$CONF_MODULE_LIB"

# The label the scripts' SoftHSM branches look the token up by (softhsm2-util --token).
CONF_TOKEN_LABEL="SC test"

initialize_token() {
  local tokdir
  rm -rf .tokens
  mkdir .tokens
  tokdir=$(realpath .tokens)
  # Each module reads its own configuration file; both keep their tokens in ./.tokens.
  if [ "$CONF_MODULE_KIND" = kmshsm ]; then
    # A cheap KDF (as kmshsm's own tests use) and no PIN lockout: the scripts try wrong
    # PINs on purpose, and the token is thrown away afterwards. legacy_algorithms: the
    # scripts' keys include RSA-1024 (docs/security.md).
    cat >.kmshsm.toml <<EOF
token_dir = "$tokdir"
max_pin_failures = 0
legacy_algorithms = true

[kdf]
memory_kib = 1024
iterations = 1
parallelism = 1
EOF
    KMSHSM_CONF=$(realpath .kmshsm.toml)
    export KMSHSM_CONF
  else
    printf 'directories.tokendir = %s\nobjectstore.backend = file\n' "$tokdir" >.softhsm2.conf
    SOFTHSM2_CONF=$(realpath .softhsm2.conf)
    export SOFTHSM2_CONF
  fi

  # Both modules list an uninitialised slot first; pkcs11-tool initialises it, and later
  # calls without --slot find it again as the first slot with a token.
  $PKCS11_TOOL --module "$P11LIB" --init-token --label "$CONF_TOKEN_LABEL" --so-pin "$SOPIN"
  $PKCS11_TOOL --module "$P11LIB" --token-label "$CONF_TOKEN_LABEL" \
    --login --login-type so --so-pin "$SOPIN" --init-pin --pin "$PIN"

  export PUB_ARGS=("--module=${P11LIB}")
  export PRIV_ARGS=("${PUB_ARGS[@]}" "--login" "--pin=${PIN}")
  export PRIV_ARGS_SOFTHSM=("${PRIV_ARGS[@]}")
}

token_cleanup() {
  rm -rf .tokens .kmshsm.toml .softhsm2.conf
}
