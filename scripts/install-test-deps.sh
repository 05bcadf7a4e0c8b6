#!/usr/bin/env bash
# Installs the real PKCS#11 clients that the tests/clients_*.rs tests drive, on Debian
# (as root). Idempotent: when everything is present it only checks and returns.
#
#   apt: opensc (pkcs11-tool), softhsm2, sqlite3, libengine-pkcs11-openssl (the libp11
#        engine for OpenSSL 3), gnutls-bin (p11tool), p11-kit, p11-kit-modules, openssh-client
#        (ssh-keygen -D), default-jdk-headless (java, javac, keytool), python3-pip,
#        postgresql-15 (initdb, pg_ctl, postgres: the tests start a private server of
#        their own, tests/common/pg.rs; the package's system service is not used),
#        iproute2 (ip netns: tests/many_hosts.rs puts hosts in network namespaces),
#        strace (tests/group_commit.rs checks under it that every acknowledged creation
#        was fsync'd after its WAL write), libp11-kit-dev (the PKCS#11 header
#        bench/stackreach.c is built with: CI checks the shallow stack scrubs with it)
#   pip: python-pkcs11 (and cryptography) for the python3 found first on PATH
set -euo pipefail

engine_dir=$(openssl version -e 2>/dev/null | sed -n 's/^ENGINESDIR: "\(.*\)"$/\1/p')
engine_dir=${engine_dir:-/usr/lib/x86_64-linux-gnu/engines-3}

need_apt=()
command -v pkcs11-tool >/dev/null || need_apt+=(opensc)
[ -e /usr/lib/softhsm/libsofthsm2.so ] || need_apt+=(softhsm2)
command -v sqlite3 >/dev/null || need_apt+=(sqlite3)
command -v openssl >/dev/null || need_apt+=(openssl)
[ -e "$engine_dir/pkcs11.so" ] || need_apt+=(libengine-pkcs11-openssl)
command -v p11tool >/dev/null || need_apt+=(gnutls-bin)
command -v p11-kit >/dev/null || need_apt+=(p11-kit)
# p11-kit's client module, for the remoting test (tests/clients_p11kit_remote.rs).
[ -e /usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so ] || need_apt+=(p11-kit-modules)
command -v ssh-keygen >/dev/null || need_apt+=(openssh-client)
{ command -v java && command -v javac && command -v keytool; } >/dev/null || need_apt+=(default-jdk-headless)
command -v python3 >/dev/null || need_apt+=(python3)
[ -x /usr/lib/postgresql/15/bin/initdb ] || need_apt+=(postgresql-15)
python3 -m pip --version >/dev/null 2>&1 || need_apt+=(python3-pip)
command -v ip >/dev/null || need_apt+=(iproute2)
command -v strace >/dev/null || need_apt+=(strace)
[ -e /usr/include/p11-kit-1/p11-kit/pkcs11.h ] || need_apt+=(libp11-kit-dev)

if [ ${#need_apt[@]} -gt 0 ]; then
  echo "install-test-deps: apt-get install ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${need_apt[@]}"
fi

# python-pkcs11 builds a Cython extension when no wheel fits; a C compiler is present.
if ! python3 -c 'import pkcs11, cryptography' >/dev/null 2>&1; then
  echo "install-test-deps: pip install python-pkcs11 cryptography"
  # Debian's own python3 is "externally managed"; a pyenv or venv python is not.
  python3 -m pip install -q python-pkcs11 cryptography ||
    python3 -m pip install -q --break-system-packages python-pkcs11 cryptography
fi
