/* bench/clock.c: a monotonic wall clock for the Lua benchmark drivers
 * (Lua's os.clock is CPU time). Built by bench/run.sh into
 * build/bench/benchclock.so:
 *
 *     local now = require("benchclock").now   -- seconds, a float
 */
#include <time.h>
#include <lua.h>
#include <lauxlib.h>

static int l_now(lua_State *L)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
	return 1;
}

int luaopen_benchclock(lua_State *L)
{
	static const luaL_Reg f[] = { { "now", l_now }, { NULL, NULL } };

	luaL_newlib(L, f);
	return 1;
}
