/*
 * fuzz_lua.c - libFuzzer target: brisk's Lua parsers (brisk.ipnet CIDRs, IPs
 * and MACs, brisk.ports publish specs, the network and endpoint option
 * schemas, the store's JSON decoder).
 *
 * Embeds Lua 5.4 with brisk.core linked in, loads fuzz/lua_targets.lua
 * (from $BRISK_ROOT, default the source tree this was built from) and calls
 * one of its targets with the input text under pcall. A target raises only
 * when brisk broke a promise (a parser raised on a string instead of
 * returning nil, msg; a result that does not round-trip): that is the
 * finding, and it aborts.
 *
 * Input: byte 0 picks the target (modulo the count), the rest is the text.
 *
 * Coverage: libFuzzer sees only C code, and the interpreter is not built
 * for it; a Lua line hook feeds (chunk, previous line, line) edges into
 * libFuzzer's extra counters, so the fuzzer is guided by the Lua lines the
 * input reaches.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#ifndef BRISK_ROOT
#define BRISK_ROOT "."
#endif

int luaopen_brisk_core(lua_State *L);

#define COV_SIZE (1u << 16)
__attribute__((used, section("__libfuzzer_extra_counters")))
static uint8_t lua_cov[COV_SIZE];

static lua_State *L;
static int targets_ref, ntargets;
static uintptr_t prev_loc;

static void line_hook(lua_State *L1, lua_Debug *ar)
{
	uintptr_t loc;

	if (!lua_getinfo(L1, "S", ar))
		return;
	/* a chunk's source string is interned and lives as long as the chunk:
	 * its address names the chunk */
	loc = ((uintptr_t)ar->source * 2654435761u) ^ ((uintptr_t)ar->currentline * 40503u);
	lua_cov[(loc ^ prev_loc) & (COV_SIZE - 1)]++;
	prev_loc = loc >> 1;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *root = getenv("BRISK_ROOT");
	char path[4096];

	(void)argc;
	(void)argv;
	if (!root || !*root)
		root = BRISK_ROOT;
	L = luaL_newstate();
	luaL_openlibs(L);
	luaL_requiref(L, "brisk.core", luaopen_brisk_core, 0);
	lua_settop(L, 0);
	lua_getglobal(L, "package");
	lua_pushfstring(L, "%s/lua/?.lua;%s/lua/?/init.lua;%s/fuzz/?.lua", root, root, root);
	lua_setfield(L, -2, "path");
	/* package.cpath stays Lua's default (lua-cjson): brisk.core is linked
	 * in and already in package.loaded, so no other copy is loaded */
	lua_settop(L, 0);
	snprintf(path, sizeof(path), "%s/fuzz/lua_targets.lua", root);
	if (luaL_dofile(L, path) != LUA_OK || !lua_istable(L, -1)) {
		fprintf(stderr, "fuzz_lua: cannot load %s: %s\n", path, lua_tostring(L, -1));
		abort();
	}
	ntargets = (int)luaL_len(L, -1);
	if (ntargets <= 0)
		abort();
	targets_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_sethook(L, line_hook, LUA_MASKLINE, 0);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int t;

	if (size < 1)
		return 0;
	t = data[0] % ntargets + 1;
	prev_loc = 0;
	lua_settop(L, 0);
	lua_rawgeti(L, LUA_REGISTRYINDEX, targets_ref);
	lua_rawgeti(L, -1, t);                  /* {name, fn} */
	lua_rawgeti(L, -1, 2);
	lua_pushlstring(L, (const char *)data + 1, size - 1);
	if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
		lua_rawgeti(L, 2, 1);
		fprintf(stderr, "fuzz_lua: target %s: %s\n", lua_tostring(L, -1), lua_tostring(L, -2));
		abort();
	}
	lua_settop(L, 0);
	return 0;
}
