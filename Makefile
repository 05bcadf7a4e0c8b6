# Builds and installs kmshsm: the PKCS#11 module, the `kmshsm` command line, the vendor
# header and the p11-kit module file.
#
#   make                          build the release library and CLI
#   make install PREFIX=/usr      build (release) and install under $(DESTDIR)$(PREFIX)
#   make install-debug PREFIX=... install the debug build instead (what the test
#                                 tests/clients_install.rs runs: no release build needed)
#   make uninstall PREFIX=...
#   make test                     ./scripts/test.sh
#
# Installed files:
#   $(LIBDIR)/libkmshsm.so
#   $(BINDIR)/kmshsm
#   $(INCLUDEDIR)/kmshsm.h
#   $(P11KITDIR)/kmshsm.module    (packaging/kmshsm.module, @LIBDIR@ replaced by $(LIBDIR))

PREFIX ?= /usr/local
DESTDIR ?=
LIBDIR ?= $(PREFIX)/lib
BINDIR ?= $(PREFIX)/bin
INCLUDEDIR ?= $(PREFIX)/include
P11KITDIR ?= $(PREFIX)/share/p11-kit/modules
CARGO ?= cargo
CARGO_TARGET_DIR ?= target
INSTALL ?= install

.PHONY: all build build-debug install install-debug install-files uninstall test

all: build

build:
	$(CARGO) build --release --lib --bins

build-debug:
	$(CARGO) build --lib --bins

install: build
	$(MAKE) install-files PROFILE=release

install-debug: build-debug
	$(MAKE) install-files PROFILE=debug

# Copies the files of target/$(PROFILE); used by install and install-debug.
install-files:
	@test -n "$(PROFILE)" || { echo "use make install or make install-debug"; exit 1; }
	$(INSTALL) -d "$(DESTDIR)$(LIBDIR)" "$(DESTDIR)$(BINDIR)" \
		"$(DESTDIR)$(INCLUDEDIR)" "$(DESTDIR)$(P11KITDIR)"
	$(INSTALL) -m 0755 "$(CARGO_TARGET_DIR)/$(PROFILE)/libkmshsm.so" "$(DESTDIR)$(LIBDIR)/libkmshsm.so"
	$(INSTALL) -m 0755 "$(CARGO_TARGET_DIR)/$(PROFILE)/kmshsm" "$(DESTDIR)$(BINDIR)/kmshsm"
	$(INSTALL) -m 0644 include/kmshsm.h "$(DESTDIR)$(INCLUDEDIR)/kmshsm.h"
	sed 's|@LIBDIR@|$(LIBDIR)|g' packaging/kmshsm.module > "$(DESTDIR)$(P11KITDIR)/kmshsm.module"
	chmod 0644 "$(DESTDIR)$(P11KITDIR)/kmshsm.module"

uninstall:
	rm -f "$(DESTDIR)$(LIBDIR)/libkmshsm.so" "$(DESTDIR)$(BINDIR)/kmshsm" \
		"$(DESTDIR)$(INCLUDEDIR)/kmshsm.h" "$(DESTDIR)$(P11KITDIR)/kmshsm.module"

test:
	./scripts/test.sh
