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
PREFIX ?= /usr/local
config ?= release
LUACFLAGS ?=
LUAC = lua5.4 scripts/luac.lua $(LUACFLAGS)

LUA_SOURCES := $(wildcard lua/*.lua lua/*/*.lua lua/*/*/*.lua)
CHUNKS := $(patsubst lua/%.lua,build/lua/%.luac,$(LUA_SOURCES))
# chunks whose source is gone: removed, so that the program cannot load them
ORPHANS := $(filter-out $(CHUNKS),$(shell find build/lua -name '*.luac' 2>/dev/null))

# premake expands the csrc/*.c globs when it runs, so it runs on every build.
all: chunks
	@premake4 --file=premake5.lua gmake >/dev/null
	$(MAKE) -C build config=$(config)

chunks: $(CHUNKS)
ifneq ($(ORPHANS),)
	rm -f $(ORPHANS)
endif

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

.PHONY: all chunks test clean install
