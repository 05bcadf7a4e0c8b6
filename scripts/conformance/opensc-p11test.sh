#!/usr/bin/env bash
# Runs OpenSC's p11test once against CONF_MODULE_LIB and leaves its JSON report at $1
# (scripts/conformance.sh). It uses OpenSC's own tests/common.sh for the key set-up that
# upstream's test-p11test.sh does (card_setup: RSA, EC and HMAC keys), with our
# opensc-token.sh as the token init, but not upstream's comparison with a SoftHSM
# reference file: conformance.sh compares kmshsm with SoftHSMv2 run side by side instead.
#
# Environment (set by conformance.sh): SOURCE_PATH (links to OpenSC's tests/ with
# opensc-token.sh as init-softhsm.sh), BUILD_PATH (the OpenSC build), CONF_MODULE_LIB,
# CONF_MODULE_KIND. The working directory is a scratch directory for keys and tokens.
set -euo pipefail

out=${1:?usage: opensc-p11test.sh OUT.json}

# common.sh reads $1 as the token type; "softhsm" selects the init script that
# opensc-token.sh stands in for. It is not written for set -u or set -e.
set +eu
set -- softhsm
# shellcheck source=/dev/null
source "$SOURCE_PATH/tests/common.sh" softhsm
card_setup
setup_status=$?
set -eu
if [ "$setup_status" -ne 0 ]; then
  echo "opensc-p11test: key set-up failed (status $setup_status); running p11test anyway" >&2
fi

# The first slot with a token is the one initialize_token made; p11test picks it itself.
status=0
"$BUILD_PATH/src/tests/p11test/p11test" -m "$P11LIB" -p "$PIN" -o "$out" </dev/null || status=$?
echo "opensc-p11test: p11test exited with status $status"
card_cleanup
exit "$status"
