#!/usr/bin/env bash
# Token driver for latchset/pkcs11-provider's test suite, describing a kmshsm token
# (scripts/conformance.sh). Not run directly: the suite's tests/setup.sh sources
# "$TESTSSRCDIR/<tokentype>-init.sh"; for the kmshsm run conformance.sh points TESTSSRCDIR
# at a directory of links to the suite's tests/ in which this file stands in for the
# SoftHSM driver, so the suite's unmodified setup and tests drive kmshsm.
#
# Inputs from setup.sh: TMPPDIR, TOKDIR, PINVALUE and the title helper. Outputs, as setup.sh
# expects of a driver: P11LIB, TOKENLABEL, TOKENLABELURI, TOKENOPTIONS, TOKENCONFIGVARS,
# TESTPORT and the SUPPORT_* switches. The module comes from KMSHSM_CONFORMANCE_MODULE.
#
# Being sourced into the suite's own script, this file sets no shell options of its own
# (no `set -euo pipefail`): it must not change how setup.sh runs.
# shellcheck disable=SC2034 # the SUPPORT_* variables are read by setup.sh

title SECTION "kmshsm token (scripts/conformance/pkcs11-provider-kmshsm.sh)"

P11LIB=${KMSHSM_CONFORMANCE_MODULE:?conformance.sh sets KMSHSM_CONFORMANCE_MODULE}
export P11LIB

# The module is configured the way a user would: a TOML file named by KMSHSM_CONF
# (docs/configuration.md). Only the KDF is made cheap, as in kmshsm's own tests, since the
# suite logs in hundreds of times; lockout is off because the token is thrown away.
cat >"$TMPPDIR/kmshsm.toml" <<EOF
token_dir = "$TOKDIR"
max_pin_failures = 0

[kdf]
memory_kib = 1024
iterations = 1
parallelism = 1
EOF
export KMSHSM_CONF="$TMPPDIR/kmshsm.toml"

export TOKENLABEL="kmshsm conformance"
export TOKENLABELURI="kmshsm%20conformance"

# A fresh token; the suite uses one PIN value for the SO and the user.
pkcs11-tool --module "$P11LIB" --init-token --label "$TOKENLABEL" --so-pin "$PINVALUE"
pkcs11-tool --module "$P11LIB" --token-label "$TOKENLABEL" --login --login-type so \
  --so-pin "$PINVALUE" --init-pin --pin "$PINVALUE"

# Every test sources testvars; this line gives them the module's configuration.
export TOKENCONFIGVARS="export KMSHSM_CONF=$TMPPDIR/kmshsm.toml"

# Not the SoftHSM driver's port, so both runs never meet on one port.
export TESTPORT="32100"

# What kmshsm does, taken from the module's own mechanism list rather than assumed: a
# mechanism added later turns its tests on without editing this file. The switches are only
# ever turned off here, so setup.sh's own checks (OpenSC version, FIPS) still apply.
mechs=$(pkcs11-tool --module "$P11LIB" --list-mechanisms 2>/dev/null || true)
if ! grep -qi 'EC-EDWARDS-KEY-PAIR-GEN' <<<"$mechs"; then
  SUPPORT_ED25519=0
  SUPPORT_ED448=0
fi
if ! grep -qi 'EC-MONTGOMERY-KEY-PAIR-GEN' <<<"$mechs"; then
  SUPPORT_X25519=0
  SUPPORT_X448=0
fi
# kmshsm has Ed448 and X448 only where the system's libcrypto.so.3 gives them
# (docs/mechanisms.md): the key pair generators then show 448 bits as their largest key.
if ! grep -Eqi 'EDDSA, keySize=\{[0-9]+,448\}' <<<"$mechs"; then
  SUPPORT_ED448=0
fi
if ! grep -Eqi 'EC-MONTGOMERY-KEY-PAIR-GEN, keySize=\{[0-9]+,448\}' <<<"$mechs"; then
  SUPPORT_X448=0
fi

# The suite's tls test puts "?x25519_mlkem768:?x25519:" in front of its -groups list when
# SUPPORT_X25519 is on. The "?" (skip an unknown group) syntax is newer than OpenSSL 3.0:
# there s_server refuses the list and exits before it prints ACCEPT, and the test then
# waits on its ready fifo until meson's 60 s timeout (SoftHSMv2 never meets this: its
# driver turns X25519 off). The suite's own switch for this is NO_ECX_IN_TLS, which its
# upstream CI sets too; it is set here only when this OpenSSL rejects that group list, so
# the X25519 TLS groups are tested again as soon as the OpenSSL on the machine allows.
# (By hand, `s_server/s_client -groups x25519` with the key in kmshsm completes, also with
# every server operation forced onto the token.)
if "${OPENSSL:-openssl}" s_client -groups '?x25519_mlkem768:?x25519:secp256r1' \
  -connect 127.0.0.1:1 </dev/null 2>&1 | grep -q 'SSL_CONF_cmd'; then
  TOKENCONFIGVARS="$TOKENCONFIGVARS
export NO_ECX_IN_TLS=1"
fi
# kmshsm stores CKA_ALLOWED_MECHANISMS and does AES itself (no SoftHSM-style quirks).
export SUPPORT_ALLOWED_MECHANISMS=1
export SUPPORT_SYMMETRIC=1
# No post-quantum mechanisms.
export SUPPORT_ML_DSA=0
export SUPPORT_ML_KEM=0
