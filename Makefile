# Top-level convenience wrapper around premake (Debian ships premake4 only).
#   make                 build brisk.core, bin/brisk and the precompiled Lua
#                        chunks build/lua/**/*.luac (release)
#   make config=debug    build with symbols (config=asan: ASan+UBSan)
#   make chunks          only the precompiled chunks
#   make test            run the whole suite (in a private network namespace)
#   make install PREFIX=/usr/local
#
# The brisk program loads lua/X.lua from its precompiled chunk build/lua/X.luac
# (installed: PREFIX/lib/lua/5.4/X.luac) unless the source is newer. The chunks
# keep their source names and lines, so that errors name file and line, but
# not the names of locals and upvalues (~0.4 ms of every run's start-up);
# `make LUACFLAGS=-g` keeps those too, `make LUACFLAGS=-s` strips everything
# (brisk's own frames lose file:line). See scripts/luac.lua.
#
# A release build also writes build/lua/brisk.image (installed: PREFIX/lib/
# lua/5.4/brisk.image): the program's Lua state with brisk's modules loaded,
# which every run maps instead of loading them (csrc/cli/image.c; ~1.3 ms of
# each run). It names the executable, the chunks and the sources it was made
# from; when any of them changes it is not used (`make`, or `make image`
# after `make chunks`, writes it again). BRISK_NO_IMAGE=1 in the environment
# starts without it.
PREFIX ?= /usr/local
config ?= release
LUACFLAGS ?=
LUAC = lua5.4 scripts/luac.lua $(LUACFLAGS)

LUA_SOURCES := $(wildcard lua/*.lua lua/*/*.lua lua/*/*/*.lua)
CHUNKS := $(patsubst lua/%.lua,build/lua/%.luac,$(LUA_SOURCES))
IMAGE := build/lua/brisk.image
# chunks whose source is gone: removed, so that the program cannot load them
ORPHANS := $(filter-out $(CHUNKS),$(shell find build/lua -name '*.luac' 2>/dev/null))

# premake expands the csrc/*.c globs when it runs, so it runs on every build.
all: chunks
	@premake4 --file=premake5.lua gmake >/dev/null
	$(MAKE) -C build config=$(config)
ifeq ($(config),release)
	@$(MAKE) --no-print-directory image
endif

chunks: $(CHUNKS)
ifneq ($(ORPHANS),)
	rm -f $(ORPHANS)
endif

# Made by the program itself, with the modules its list in csrc/cli/main.c
# names; every time (~5 ms: what it names is paths and inodes, which make's
# dates do not show). Without one the program starts the usual way: a
# failure is a warning, and a stale image goes.
image:
	@build/bin/brisk --write-image $(IMAGE) || { rm -f $(IMAGE); \
		echo "make: warning: no start-up image (brisk starts without it)" >&2; }

build/lua/%.luac: lua/%.lua scripts/luac.lua
	@mkdir -p $(@D)
	$(LUAC) lua build/lua $(CURDIR)/lua $*.lua

test: all
	lua5.4 spec/run.lua

clean:
	rm -rf build

# The installed chunks are compiled again, named after where their sources
# are installed (PREFIX/share/lua/5.4), and installed after them (a chunk
# older than its source is not used).
install: all
	install -d $(DESTDIR)$(PREFIX)/lib/lua/5.4/brisk/cli $(DESTDIR)$(PREFIX)/share/lua/5.4/brisk/cli $(DESTDIR)$(PREFIX)/bin
	install -m 0755 build/lib/brisk/core.so $(DESTDIR)$(PREFIX)/lib/lua/5.4/brisk/core.so
	install -m 0644 lua/brisk/*.lua $(DESTDIR)$(PREFIX)/share/lua/5.4/brisk/
	if ls lua/brisk/cli/*.lua >/dev/null 2>&1; then install -m 0644 lua/brisk/cli/*.lua $(DESTDIR)$(PREFIX)/share/lua/5.4/brisk/cli/; fi
	rm -rf build/install-lua && mkdir -p build/install-lua/brisk/cli
	$(LUAC) lua build/install-lua $(PREFIX)/share/lua/5.4 $(patsubst lua/%,%,$(LUA_SOURCES))
	install -m 0644 build/install-lua/brisk/*.luac $(DESTDIR)$(PREFIX)/lib/lua/5.4/brisk/
	if ls build/install-lua/brisk/cli/*.luac >/dev/null 2>&1; then install -m 0644 build/install-lua/brisk/cli/*.luac $(DESTDIR)$(PREFIX)/lib/lua/5.4/brisk/cli/; fi
	install -m 0755 build/bin/brisk $(DESTDIR)$(PREFIX)/bin/brisk
	# the image names the installed program and chunks: made where they are
	# (not under a DESTDIR, where they are not yet)
	if [ -z "$(DESTDIR)" ]; then $(PREFIX)/bin/brisk --write-image $(PREFIX)/lib/lua/5.4/brisk.image || \
		rm -f $(PREFIX)/lib/lua/5.4/brisk.image; fi

.PHONY: all chunks image test clean install
