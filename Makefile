# sesh — build, test and run.  `make help` lists the targets.
#
# Build outputs live under $(BUILD) in the same layout as an installed prefix
# (bin/, lib/, include/, share/sesh/), so the host finds its Lua libraries and
# the pool binary the same way in the build tree and after `make install`.

BUILD     ?= build
PREFIX    ?= /usr/local
CC        ?= cc
PYTHON    ?= /usr/bin/python3
OPT       ?= -O2
SANITIZE  ?=
# One version, written in the public header; everything else takes it from there.
VERSION   := $(shell sed -n 's/^\#define SESH_VERSION "\([^"]*\)".*/\1/p' host/sesh.h)

PKGS      := lua5.4 libcurl libmicrohttpd libseccomp jansson
CFLAGS    ?= $(OPT) -g
CFLAGS    += -std=gnu11 -Wall -Wextra -Wshadow -Wno-unused-parameter -fPIC \
             -D_GNU_SOURCE -DSESH_VERSION='"$(VERSION)"' -MMD -MP -Ihost $(SANITIZE)
LDFLAGS   += $(SANITIZE)

# pkg-config is asked only when building, so `make deps` works on a bare machine.
pc = $(shell pkg-config $(1) $(2) 2>/dev/null)

LUA_CFLAGS   = $(call pc,--cflags,lua5.4)
LUA_LIBS     = $(call pc,--libs,lua5.4)
CURL_CFLAGS  = $(call pc,--cflags,libcurl)
CURL_LIBS    = $(call pc,--libs,libcurl)
MHD_CFLAGS   = $(call pc,--cflags,libmicrohttpd)
MHD_LIBS     = $(call pc,--libs,libmicrohttpd)
SECCOMP_LIBS = $(call pc,--libs,libseccomp)
JANSSON_LIBS = $(call pc,--libs,jansson)
CJSON_LIBS   = -llua5.4-cjson

BIN   := $(BUILD)/bin
LIB   := $(BUILD)/lib
OBJ   := $(BUILD)/obj
SHARE := $(BUILD)/share/sesh

.PHONY: all deps run test bench install uninstall clean help check-deps
all:

# Each layer owns its fragment: what it compiles and what it produces. The
# common helpers come first: every binary links them.
include host/common/common.mk
include host/transport/transport.mk
include host/binding/binding.mk
include host/host.mk
include host/pool/pool.mk

all: $(SHARE)/lua

# The Lua libraries are linked, not copied, so an edit needs no rebuild.
$(SHARE)/lua:
	@mkdir -p $(SHARE)
	ln -sfn $(abspath lua) $@

$(OBJ)/%.o: host/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LUA_CFLAGS) $(CURL_CFLAGS) $(MHD_CFLAGS) -c $< -o $@

-include $(shell find $(OBJ) -name '*.d' 2>/dev/null)

deps:
	@sh tests/support/deps.sh

run: deps
	@$(MAKE) --no-print-directory all
	$(BIN)/sesh scripts/quickstart.lua $(BUILD)

test: deps
	@$(MAKE) --no-print-directory all
	@sh tests/run.sh

clean:
	rm -rf $(BUILD) build-*

help:
	@echo "make deps     install the Debian packages sesh needs (apt-get)"
	@echo "make          build sesh, sesh-pool, sessions.so and libsesh under $(BUILD)/"
	@echo "make run      set up, build and run scripts/quickstart.lua on the local pool"
	@echo "make test     set up, build and run every test suite"
	@echo "make bench    measure sesh and sesh-pool against the alternatives"
	@echo "make install  install under PREFIX (default $(PREFIX)); make uninstall removes"

# The benchmark owns its fragment (optimized build in its own folder, then the driver).
-include tests/bench/bench.mk
