# hypersdk — build, test, demo, install.
#   make            release build of libhypersdk (.so + .a), every provider (~17 min on 2 cores)
#   make test       every test (Rust, C under ASan, header freshness) — what CI runs
#   make demo       the multi-cloud demo: local AWS, vSphere, Azure, GCP, Hyper-V and HTTP peers,
#                   one `hypersdk batch` exporting from all of them at once, outputs checked
#   make demo-c     the C demo: several downloads at once from a local server, live progress
#   make install PREFIX=/usr/local   library (.so.X.Y.Z + links, .a), header, hypersdk.pc for
#                   pkg-config, CMake package config (find_package(hypersdk))
#   make dist       dist/hypersdk-VERSION-linux-ARCH.tar.gz (+ .sha256): the same tree, relocatable,
#                   with LICENSE and README, and runtimes/linux-ARCH/native/ for the .NET package
#   make windows    release build for x86_64-pc-windows-gnu (MinGW-w64 + nasm for aws-lc), every
#                   provider: hypersdk.dll, its import library, the static library, hypersdk.exe
#   make dist-windows  dist/hypersdk-VERSION-windows-x86_64.zip (+ .sha256): bin/ (hypersdk.dll,
#                   hypersdk.exe), lib/ (import and static libraries), include/, LICENSE, README,
#                   runtimes/win-x64/native/hypersdk.dll (also beside it in dist/runtimes/ for .NET)

PREFIX ?= /usr/local
CARGO ?= cargo
export CARGO_TARGET_DIR ?= $(HOME)/.cache/hypersdk-target
RELEASE_DIR := $(CARGO_TARGET_DIR)/release
DEBUG_DIR := $(CARGO_TARGET_DIR)/debug
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
MAJOR := $(firstword $(subst ., ,$(VERSION)))

.PHONY: all release test demo demo-c install install-files dist dist-files dist-extras clean header \
  windows dist-windows dist-windows-files

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

# What the static library needs from the system (rustc --print native-static-libs, minus libc
# and libgcc_s, which every C link brings); in hypersdk.pc's Libs.private and the CMake target.
LIBS_PRIVATE := -lpthread -ldl -lm -lrt -lutil
empty :=
space := $(empty) $(empty)
CMAKE_LIBS_PRIVATE := Threads::Threads;$(subst $(space),;,$(patsubst -l%,%,$(filter-out -lpthread,$(LIBS_PRIVATE))))
ARCH := $(shell uname -m)
# .NET runtime identifier of this machine.
RID := linux-$(subst x86_64,x64,$(subst aarch64,arm64,$(ARCH)))
# install-files copies from BUILD_DIR (the tests install the debug build into a temp prefix).
BUILD_DIR ?= $(RELEASE_DIR)
# The .pc's prefix: the install prefix, or for dist a path relative to the .pc file itself.
PC_PREFIX ?= $(PREFIX)
LIBDIR := $(DESTDIR)$(PREFIX)/lib

install: release install-files

install-files:
	install -d $(LIBDIR)/pkgconfig $(LIBDIR)/cmake/hypersdk $(DESTDIR)$(PREFIX)/include
	install -m 0755 $(BUILD_DIR)/libhypersdk.so $(LIBDIR)/libhypersdk.so.$(VERSION)
	ln -sf libhypersdk.so.$(VERSION) $(LIBDIR)/libhypersdk.so.$(MAJOR)
	ln -sf libhypersdk.so.$(MAJOR) $(LIBDIR)/libhypersdk.so
	install -m 0644 $(BUILD_DIR)/libhypersdk.a $(LIBDIR)/
	install -m 0644 include/hypersdk.h $(DESTDIR)$(PREFIX)/include/
	sed -e 's|@PREFIX@|$(PC_PREFIX)|' -e 's|@VERSION@|$(VERSION)|' -e 's|@LIBS_PRIVATE@|$(LIBS_PRIVATE)|' \
	  hypersdk.pc.in > $(LIBDIR)/pkgconfig/hypersdk.pc
	sed -e 's|@VERSION@|$(VERSION)|g' -e 's|@MAJOR@|$(MAJOR)|g' -e 's|@CMAKE_LIBS_PRIVATE@|$(CMAKE_LIBS_PRIVATE)|' \
	  cmake/hypersdk-config.cmake.in > $(LIBDIR)/cmake/hypersdk/hypersdk-config.cmake
	sed -e 's|@VERSION@|$(VERSION)|g' -e 's|@MAJOR@|$(MAJOR)|g' \
	  cmake/hypersdk-config-version.cmake.in > $(LIBDIR)/cmake/hypersdk/hypersdk-config-version.cmake

DIST_NAME := hypersdk-$(VERSION)-linux-$(ARCH)
DIST_DIR ?= dist

dist: release dist-files

dist-files:
	rm -rf $(DIST_DIR)/$(DIST_NAME) $(DIST_DIR)/$(DIST_NAME).tar.gz $(DIST_DIR)/runtimes/$(RID)
	$(MAKE) --no-print-directory install-files DESTDIR= PREFIX=$(abspath $(DIST_DIR))/$(DIST_NAME) PC_PREFIX='$$$${pcfiledir}/../..'
	$(MAKE) --no-print-directory dist-extras DIST_ROOT=$(abspath $(DIST_DIR))/$(DIST_NAME)
	cd $(DIST_DIR) && tar --owner=0 --group=0 --sort=name -czf $(DIST_NAME).tar.gz.tmp $(DIST_NAME) \
	  && mv $(DIST_NAME).tar.gz.tmp $(DIST_NAME).tar.gz \
	  && sha256sum $(DIST_NAME).tar.gz > $(DIST_NAME).tar.gz.sha256
	@echo "$(DIST_DIR)/$(DIST_NAME).tar.gz"

# LICENSE, README, and the native library where the .NET package takes it from
# (bindings/csharp/HyperSdk.csproj packs DIST_DIR/runtimes/<rid>/native/*).
dist-extras:
	install -m 0644 LICENSE README.md $(DIST_ROOT)/
	install -d $(DIST_ROOT)/runtimes/$(RID)/native
	cp $(DIST_ROOT)/lib/libhypersdk.so.$(VERSION) $(DIST_ROOT)/runtimes/$(RID)/native/libhypersdk.so
	install -d $(DIST_ROOT)/../runtimes/$(RID)/native
	cp $(DIST_ROOT)/lib/libhypersdk.so.$(VERSION) $(DIST_ROOT)/../runtimes/$(RID)/native/libhypersdk.so

# Windows (x86_64-pc-windows-gnu): its own target folder beside the Linux one, so neither build
# invalidates the other. The linker is MinGW-w64's gcc (Rust's default for the target); aws-lc's
# C and assembly build with x86_64-w64-mingw32-gcc and nasm.
WIN_TARGET := x86_64-pc-windows-gnu
WIN_TARGET_DIR := $(CARGO_TARGET_DIR)/windows
WIN_RELEASE_DIR := $(WIN_TARGET_DIR)/$(WIN_TARGET)/release
WIN_DIST_NAME := hypersdk-$(VERSION)-windows-x86_64

windows:
	rustup target list --installed | grep -qx $(WIN_TARGET) || rustup target add $(WIN_TARGET)
	$(CARGO) build --release --target $(WIN_TARGET) --target-dir $(WIN_TARGET_DIR) --workspace --lib --bins

dist-windows: windows dist-windows-files

# WIN_BUILD_DIR: which build to pack; ZIPFLAGS: zip's extra flags (the tests pack the debug
# build with -0, stored, to check the layout in a second instead of compressing 140 MB).
WIN_BUILD_DIR ?= $(WIN_RELEASE_DIR)
ZIPFLAGS ?=
dist-windows-files:
	rm -rf $(DIST_DIR)/$(WIN_DIST_NAME) $(DIST_DIR)/$(WIN_DIST_NAME).zip $(DIST_DIR)/runtimes/win-x64
	install -d $(DIST_DIR)/$(WIN_DIST_NAME)/bin $(DIST_DIR)/$(WIN_DIST_NAME)/lib $(DIST_DIR)/$(WIN_DIST_NAME)/include \
	  $(DIST_DIR)/$(WIN_DIST_NAME)/runtimes/win-x64/native $(DIST_DIR)/runtimes/win-x64/native
	install -m 0755 $(WIN_BUILD_DIR)/hypersdk.dll $(WIN_BUILD_DIR)/hypersdk.exe $(DIST_DIR)/$(WIN_DIST_NAME)/bin/
	install -m 0644 $(WIN_BUILD_DIR)/libhypersdk.dll.a $(WIN_BUILD_DIR)/libhypersdk.a $(DIST_DIR)/$(WIN_DIST_NAME)/lib/
	install -m 0644 include/hypersdk.h $(DIST_DIR)/$(WIN_DIST_NAME)/include/
	install -m 0644 LICENSE README.md $(DIST_DIR)/$(WIN_DIST_NAME)/
	install -m 0755 $(WIN_BUILD_DIR)/hypersdk.dll $(DIST_DIR)/$(WIN_DIST_NAME)/runtimes/win-x64/native/
	install -m 0755 $(WIN_BUILD_DIR)/hypersdk.dll $(DIST_DIR)/runtimes/win-x64/native/
	cd $(DIST_DIR) && rm -f $(WIN_DIST_NAME).zip.tmp && find $(WIN_DIST_NAME) | LC_ALL=C sort \
	  | TZ=UTC zip -X -q $(ZIPFLAGS) -@ $(WIN_DIST_NAME).zip.tmp && mv $(WIN_DIST_NAME).zip.tmp $(WIN_DIST_NAME).zip \
	  && sha256sum $(WIN_DIST_NAME).zip > $(WIN_DIST_NAME).zip.sha256
	@echo "$(DIST_DIR)/$(WIN_DIST_NAME).zip"

clean:
	$(CARGO) clean
