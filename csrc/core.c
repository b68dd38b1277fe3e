/***
 * core.c - luaopen_brisk_core: composes the families, exports errno names
 * and the kernel version.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include "brisk.h"

static const struct { const char *name; brisk_open_fn open; } families[] = {
	{ "nl", brisk_open_nl },
	{ "link", brisk_open_link },
	{ "addr", brisk_open_addr },
	{ "route", brisk_open_route },
	{ "netns", brisk_open_netns },
	{ "sysctl", brisk_open_sysctl },
	{ "fs", brisk_open_fs },
	{ "json", brisk_open_json },
	{ "steps", brisk_open_steps },
	{ "nft", brisk_open_nft },
	{ "conntrack", brisk_open_conntrack },
	{ NULL, NULL }
};

#define E(x) { #x, x }
static const struct { const char *name; int value; } errnos[] = {
	E(EPERM), E(ENOENT), E(ESRCH), E(EINTR), E(EIO), E(ENXIO), E(E2BIG),
	E(EBADF), E(EAGAIN), E(ENOMEM), E(EACCES), E(EFAULT), E(EBUSY),
	E(EEXIST), E(EXDEV), E(ENODEV), E(ENOTDIR), E(EISDIR), E(EINVAL),
	E(ENFILE), E(EMFILE), E(ENOSPC), E(EROFS), E(EPIPE), E(EDOM), E(ERANGE),
	E(EDEADLK), E(ENAMETOOLONG), E(ENOLCK), E(ENOSYS), E(ENOTEMPTY),
	E(ELOOP), E(ENODATA), E(ETIME), E(EPROTO), E(EBADMSG), E(EOVERFLOW),
	E(EILSEQ), E(ENOTSOCK), E(EMSGSIZE), E(EPROTONOSUPPORT), E(EOPNOTSUPP),
	E(EAFNOSUPPORT), E(EADDRINUSE), E(EADDRNOTAVAIL), E(ENETDOWN),
	E(ENETUNREACH), E(ENOBUFS), E(EISCONN), E(ENOTCONN), E(ETIMEDOUT),
	E(ECONNREFUSED), E(EHOSTUNREACH), E(EALREADY), E(EINPROGRESS),
	E(ECANCELED), E(ENOTSUP), E(ENOTTY),
	{ NULL, 0 }
};

/***
 * The running kernel's version.
 * @function kernel_version
 * @return major, minor, patch (integers), release string
 */
static int l_kernel_version(lua_State *L)
{
	struct utsname u;
	int maj = 0, min = 0, pat = 0;

	if (uname(&u) < 0)
		return brisk_fail(L, "uname", NULL, errno);
	sscanf(u.release, "%d.%d.%d", &maj, &min, &pat);
	lua_pushinteger(L, maj);
	lua_pushinteger(L, min);
	lua_pushinteger(L, pat);
	lua_pushstring(L, u.release);
	return 4;
}

/***
 * The message for an errno number.
 * @function strerror
 * @tparam integer errno
 * @return string
 */
static int l_strerror(lua_State *L)
{
	lua_pushstring(L, strerror((int)luaL_checkinteger(L, 1)));
	return 1;
}

/***
 * Seconds from a monotonic clock (for timing; no meaning as a date).
 * @function now
 * @return number
 */
static int l_now(lua_State *L)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
	return 1;
}

static const luaL_Reg core_mod[] = {
	{ "now", l_now },
	{ "kernel_version", l_kernel_version },
	{ "strerror", l_strerror },
	{ NULL, NULL }
};

int luaopen_brisk_core(lua_State *L)
{
	int mod, meth, i;

	lua_newtable(L);
	mod = lua_gettop(L);
	luaL_setfuncs(L, core_mod, 0);

	lua_newtable(L);
	for (i = 0; errnos[i].name; i++) {
		lua_pushinteger(L, errnos[i].value);
		lua_setfield(L, -2, errnos[i].name);
	}
	lua_setfield(L, mod, "errno");

	luaL_newmetatable(L, BRISK_NL_MT);
	lua_newtable(L);
	meth = lua_gettop(L);
	lua_pushvalue(L, meth);
	lua_setfield(L, meth - 1, "__index");
	lua_pushliteral(L, "locked");
	lua_setfield(L, meth - 1, "__metatable");

	for (i = 0; families[i].name; i++)
		families[i].open(L, mod, meth);

	lua_settop(L, mod);
	return 1;
}
