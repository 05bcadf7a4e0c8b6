#!/usr/bin/env bash
# Installs what scripts/conformance.sh needs to build the third-party PKCS#11 suites
# (google/pkcs11test, OpenSC, latchset/pkcs11-provider) on Debian, as root.
# Idempotent: when everything is present it only checks and returns. When not root and
# something is missing it says what and returns non-zero; conformance.sh then marks the
# suites it cannot build as NOT RUN.
#
#   apt: autoconf automake libtool pkg-config make g++ (build tools), libssl-dev zlib1g-dev
#        libreadline-dev libpcsclite-dev (OpenSC), libcmocka-dev libjson-c-dev (OpenSC's
#        p11test), meson ninja-build expect (pkcs11-provider and its tests), softhsm2 and
#        opensc (the reference module and Debian's pkcs11-tool, for token set-up)
set -euo pipefail

# Debian package name -> a file whose presence says the package is installed. Checking
# files rather than dpkg keeps this fast and also works where a tool came from elsewhere.
declare -A probe=(
  [autoconf]=/usr/bin/autoconf
  [automake]=/usr/bin/automake
  [libtool]=/usr/bin/libtoolize
  [pkg-config]=/usr/bin/pkg-config
  [make]=/usr/bin/make
  [g++]=/usr/bin/g++
  [libssl-dev]=/usr/include/openssl/ssl.h
  [zlib1g-dev]=/usr/include/zlib.h
  [libreadline-dev]=/usr/include/readline/readline.h
  [libpcsclite-dev]=/usr/include/PCSC/winscard.h
  [libcmocka-dev]=/usr/include/cmocka.h
  [libjson-c-dev]=/usr/include/json-c/json.h
  [meson]=/usr/bin/meson
  [ninja-build]=/usr/bin/ninja
  [expect]=/usr/bin/expect
  [softhsm2]=/usr/lib/softhsm/libsofthsm2.so
  [opensc]=/usr/bin/pkcs11-tool
)

need_apt=()
for pkg in "${!probe[@]}"; do
  [ -e "${probe[$pkg]}" ] || need_apt+=("$pkg")
done

if [ ${#need_apt[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "conformance-deps: missing ${need_apt[*]} and not root: cannot install" >&2
  exit 1
fi
echo "conformance-deps: apt-get install ${need_apt[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${need_apt[@]}"
