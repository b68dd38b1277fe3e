# Top-level convenience wrapper around premake (Debian ships premake4 only).
#   make                 build brisk.core and bin/brisk (release)
#   make config=debug    build with symbols
#   make test            run the whole suite (in a private network namespace)
#   make install PREFIX=/usr/local
PREFIX ?= /usr/local
config ?= release

# premake expands the csrc/*.c globs when it runs, so it runs on every build.
all:
	@premake4 --file=premake5.lua gmake >/dev/null
	$(MAKE) -C build config=$(config)

test: all
	lua5.4 spec/run.lua

clean:
	rm -rf build

install: all
	install -d $(DESTDIR)$(PREFIX)/lib/lua/5.4/brisk $(DESTDIR)$(PREFIX)/share/lua/5.4/brisk/cli $(DESTDIR)$(PREFIX)/bin
	install -m 0755 build/lib/brisk/core.so $(DESTDIR)$(PREFIX)/lib/lua/5.4/brisk/core.so
	install -m 0644 lua/brisk/*.lua $(DESTDIR)$(PREFIX)/share/lua/5.4/brisk/
	if ls lua/brisk/cli/*.lua >/dev/null 2>&1; then install -m 0644 lua/brisk/cli/*.lua $(DESTDIR)$(PREFIX)/share/lua/5.4/brisk/cli/; fi
	install -m 0755 build/bin/brisk $(DESTDIR)$(PREFIX)/bin/brisk

.PHONY: all test clean install
