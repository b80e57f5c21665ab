# hypersdk — build, test, demo, install.
#   make            release build of libhypersdk (.so + .a)
#   make test       every test (Rust, C under ASan, header freshness) — what CI runs
#   make demo       the multi-cloud demo: local AWS, vSphere, Azure, GCP, Hyper-V and HTTP peers,
#                   one `hypersdk batch` exporting from all of them at once, outputs checked
#   make demo-c     the C demo: several downloads at once from a local server, live progress
#   make install PREFIX=/usr/local   library, header and hypersdk.pc for pkg-config

PREFIX ?= /usr/local
CARGO ?= cargo
export CARGO_TARGET_DIR ?= $(HOME)/.cache/hypersdk-target
RELEASE_DIR := $(CARGO_TARGET_DIR)/release
DEBUG_DIR := $(CARGO_TARGET_DIR)/debug
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
MAJOR := $(firstword $(subst ., ,$(VERSION)))

.PHONY: all release test demo demo-c install clean header

all: release

release:
	$(CARGO) build --release --lib

header:
	HS_UPDATE_HEADER=1 $(CARGO) test --test header

test:
	./scripts/test.sh

demo:
	./scripts/demo.py

demo-c:
	./scripts/demo.sh

install: release
	install -d $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include
	install -m 0755 $(RELEASE_DIR)/libhypersdk.so $(DESTDIR)$(PREFIX)/lib/libhypersdk.so.$(VERSION)
	ln -sf libhypersdk.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libhypersdk.so.$(MAJOR)
	ln -sf libhypersdk.so.$(MAJOR) $(DESTDIR)$(PREFIX)/lib/libhypersdk.so
	install -m 0644 $(RELEASE_DIR)/libhypersdk.a $(DESTDIR)$(PREFIX)/lib/
	install -m 0644 include/hypersdk.h $(DESTDIR)$(PREFIX)/include/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' hypersdk.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/hypersdk.pc

clean:
	$(CARGO) clean
