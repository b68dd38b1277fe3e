/***
 * netns.c - named network namespaces (what `ip netns` does) and running
 * Lua code inside a namespace.
 *
 * A named namespace is a file under /run/netns with the namespace's nsfs
 * inode bind-mounted on it; /run/netns itself is made a shared mount so
 * that unmounts propagate between mount namespaces, exactly as iproute2's
 * netns_add does. Every switch of namespace goes through brisk_in_netns
 * (nl.c), which always switches back.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <linux/nsfs.h>
#include "brisk.h"

#define NETNS_RUN_DIR  "/run/netns"
#define NETNS_NAME_MAX 64
#define NETNS_SELF     "/proc/thread-self/ns/net"

/* --- arguments --- */

/* NULL when the `len` bytes of `name` can name a file directly under
 * /run/netns: iproute2's rules (not empty, no '/', not . or ..; brisk's
 * limit is 64 bytes rather than NAME_MAX), and no leading '-', which
 * command lines (brisk's --netns, ip's arguments) read as an option or a
 * negative number. */
static const char *netns_name_invalid(const char *name, size_t len)
{
	if (len == 0)
		return "empty namespace name";
	if (strlen(name) != len)
		return "namespace name contains a NUL byte";
	if (len > NETNS_NAME_MAX)
		return "namespace name longer than 64 bytes";
	if (!strcmp(name, ".") || !strcmp(name, ".."))
		return "namespace name cannot be . or ..";
	if (strchr(name, '/'))
		return "namespace name contains '/'";
	if (name[0] == '-')
		return "namespace name cannot start with '-'";
	return NULL;
}

/* The name argument at `idx` (raises unless a string) and its path under
 * /run/netns. Returns NULL when valid, else the reason. */
static const char *netns_checkname(lua_State *L, int idx, const char **name,
				   char *path, size_t pathlen)
{
	const char *why;
	size_t len;

	luaL_checktype(L, idx, LUA_TSTRING);
	*name = lua_tolstring(L, idx, &len);
	if ((why = netns_name_invalid(*name, len)))
		return why;
	snprintf(path, pathlen, "%s/%s", NETNS_RUN_DIR, *name);
	return NULL;
}

int brisk_is_netns_fd(int fd)
{
	int type = ioctl(fd, NS_GET_NSTYPE);

	if (type == CLONE_NEWNET)
		return 1;
	errno = EINVAL;
	return 0;
}

int brisk_netns_arg(lua_State *L, int idx, int *owned, char *label, size_t labellen)
{
	struct brisk_nl *h;
	int fd;

	idx = lua_absindex(L, idx);
	*owned = 0;
	switch (lua_type(L, idx)) {
	case LUA_TNONE:
	case LUA_TNIL:
		snprintf(label, labellen, "current");
		break;
	case LUA_TNUMBER:
	case LUA_TSTRING:
		/* luaL_tolstring works on a copy: lua_tostring would turn a
		 * pid into a string in place. */
		snprintf(label, labellen, "%s", luaL_tolstring(L, idx, NULL));
		lua_pop(L, 1);
		break;
	case LUA_TUSERDATA:
		if (luaL_testudata(L, idx, BRISK_NL_MT)) {
			h = brisk_checknl(L, idx);
			snprintf(label, labellen, "(handle)");
			return h->nsfd;
		}
		/* fall through */
	default:
		luaL_argerror(L, idx, "namespace must be nil, a name, a path, a pid "
			      "or a netlink handle");
		return -1;
	}
	fd = brisk_netns_fd(L, idx);
	if (fd < 0)
		return -1;
	/* A path may name any file, and a stale file under /run/netns is no
	 * namespace: refuse both here, before anyone trusts the fd. */
	if (!brisk_is_netns_fd(fd)) {
		close(fd);
		errno = EINVAL;
		return -1;
	}
	*owned = 1;
	return fd;
}

/* --- named namespaces --- */

/* Make /run/netns exist and be a shared mount (bind-mounting it on itself
 * when it is no mount point yet), as iproute2 does. */
static int netns_run_dir_shared(void)
{
	int made = 0;

	if (mkdir(NETNS_RUN_DIR, 0755) < 0 && errno != EEXIST)
		return -1;
	while (mount("", NETNS_RUN_DIR, "none", MS_SHARED | MS_REC, NULL) < 0) {
		if (errno != EINVAL || made)
			return -1;
		if (mount(NETNS_RUN_DIR, NETNS_RUN_DIR, "none", MS_BIND | MS_REC, NULL) < 0)
			return -1;
		made = 1;
	}
	return 0;
}

struct add_ctx {
	const char *path;
	int err;
};

/* Push a namespace's identity, "st_dev:st_ino" of its nsfs inode (what
 * netns_id returns); 0 when fstat fails (errno set). */
static int push_ns_id(lua_State *L, int fd)
{
	char id[48];
	struct stat st;

	if (fstat(fd, &st) < 0)
		return 0;
	snprintf(id, sizeof(id), "%llu:%llu", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino);
	lua_pushstring(L, id);
	return 1;
}

/* The spare: one unnamed namespace made ahead of time by netns_prepare,
 * for the next netns_add of this process made from the same namespace
 * while the spare is fresh. Making a namespace is most of the cost of
 * netns_add (the kernel sets up its loopback, sysctls and per-namespace
 * state: about 0.8 ms); a long-running brisk (brisk daemon) makes the
 * spare between requests, so that a request only binds it.
 *
 * `wanted` keeps a process that does not add namespaces from making and
 * dropping one after every request: a spare that went stale unused is not
 * replaced until a netns_add has had to make its own namespace. */
static struct {
	int fd;                 /* -1: none */
	int origin;             /* the namespace it was made from (held open) */
	pid_t pid;              /* the process that made it (not a fork) */
	double made, ttl;       /* CLOCK_MONOTONIC seconds */
	int wanted;
} spare = { -1, -1, 0, 0, 0, 1 };

static double mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void spare_drop(void)
{
	if (spare.fd >= 0 && spare.pid == getpid()) {
		close(spare.fd);
		close(spare.origin);
	}
	spare.fd = spare.origin = -1;
}

/* Whether two fds are the same namespace. */
static int same_ns(int a, int b)
{
	struct stat sa, sb;

	return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 &&
	       sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* Drop a spare that is stale (or another process's); true when one was. */
static int spare_expire(void)
{
	if (spare.fd < 0)
		return 0;
	if (spare.pid == getpid() && mono_now() - spare.made <= spare.ttl)
		return 0;
	spare_drop();
	return 1;
}

/* The spare's fd when it may stand for a namespace made now from the
 * namespace `self` (an fd of it), else -1. */
static int spare_take(int self)
{
	spare_expire();
	if (spare.fd < 0 || !same_ns(self, spare.origin))
		return -1;      /* none, or kept: made from another namespace */
	return spare.fd;
}

/* Runs inside brisk_in_netns: a new namespace, its fd in *ud. */
static int spare_cb(void *ud)
{
	int *fd = ud;

	if (unshare(CLONE_NEWNET) < 0)
		return -1;
	*fd = open(NETNS_SELF, O_RDONLY | O_CLOEXEC);
	return *fd < 0 ? -1 : 0;
}

/* Runs inside brisk_in_netns, which puts the thread back afterwards. */
static int add_cb(void *ud)
{
	struct add_ctx *c = ud;

	if (unshare(CLONE_NEWNET) < 0) {
		c->err = errno;
		return -1;
	}
	if (mount(NETNS_SELF, c->path, "none", MS_BIND, NULL) < 0) {
		c->err = errno;
		return -1;
	}
	return 0;
}

/***
 * Create a named network namespace, like `ip netns add NAME`.
 * The new namespace is bound on /run/netns/NAME; the calling thread stays
 * in its own namespace. Its loopback is down, as with iproute2.
 * @function netns_add
 * @tparam string name 1..64 bytes, no '/' or NUL, not . or .., not
 *   starting with '-'
 * @return true, and "spare" when it bound the spare of netns_prepare
 * @return[2] nil, "add netns NAME: <strerror>", errno (EEXIST when the file
 *   exists; EINVAL for a bad name, "add netns NAME: <reason>", before
 *   anything is made)
 */
static int l_netns_add(lua_State *L)
{
	char path[sizeof(NETNS_RUN_DIR) + NETNS_NAME_MAX + 2];
	struct add_ctx c = { path, 0 };
	const char *name, *why;
	int fd, self, ret, err;

	if ((why = netns_checkname(L, 1, &name, path, sizeof(path))))
		return brisk_failmsg(L, "add netns", name, EINVAL, why);
	if (netns_run_dir_shared() < 0)
		return brisk_fail(L, "add netns", name, errno);
	fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
	if (fd < 0)
		return brisk_fail(L, "add netns", name, errno);
	close(fd);
	self = open(NETNS_SELF, O_RDONLY | O_CLOEXEC);
	if (self < 0) {
		err = errno;
		unlink(path);
		return brisk_fail(L, "add netns", name, err);
	}
	spare.wanted = 1;       /* used now, or missed: worth one next time */
	if ((fd = spare_take(self)) >= 0) {
		char src[32];

		snprintf(src, sizeof(src), "/proc/self/fd/%d", fd);
		ret = mount(src, path, "none", MS_BIND, NULL);
		spare_drop();   /* used, or not usable: made anew next time */
		if (ret == 0) {
			close(self);
			lua_pushboolean(L, 1);
			lua_pushliteral(L, "spare");
			return 2;
		}
	}
	ret = brisk_in_netns(self, add_cb, &c);
	err = c.err ? c.err : errno;
	close(self);
	if (ret < 0) {
		umount2(path, MNT_DETACH);
		unlink(path);
		return brisk_fail(L, "add netns", name, err);
	}
	lua_pushboolean(L, 1);
	return 1;
}

/***
 * Make a spare namespace ahead of time, so that the next netns_add of this
 * process binds it instead of making one (most of netns_add's time). The
 * spare is taken only by a netns_add made from the namespace the calling
 * thread is in now, within `ttl` seconds: a namespace takes some settings
 * when it is made (IPv4 conf/all and conf/default from the initial
 * namespace, or from the one it is made from, as
 * net.core.devconf_inherit_init_net says), so an old spare could differ
 * from a namespace made later. One spare at most: a fresh one is kept. A
 * stale one is dropped, and replaced only when a netns_add has been made
 * since the last spare was made (a process that adds no namespaces does
 * not make one after another).
 * @function netns_prepare
 * @tparam[opt=1] number ttl seconds the spare stays usable; false drops
 *   the spare (and makes none)
 * @return true, and the spare's identity ("st_dev:st_ino", as netns_id)
 *   and the seconds it stays usable, or nothing more when none is kept
 *   (none wanted)
 * @return[2] nil, "prepare netns spare: <strerror>", errno
 */
static int l_netns_prepare(lua_State *L)
{
	double ttl;
	int self, fd = -1, err;

	if (lua_isboolean(L, 1) && !lua_toboolean(L, 1)) {
		spare_drop();
		lua_pushboolean(L, 1);
		return 1;
	}
	ttl = luaL_optnumber(L, 1, 1.0);
	luaL_argcheck(L, ttl >= 0, 1, "ttl must be >= 0");
	if (spare_expire())
		spare.wanted = 0;       /* went stale unused */
	self = open(NETNS_SELF, O_RDONLY | O_CLOEXEC);
	if (self < 0)
		return brisk_fail(L, "prepare netns", "spare", errno);
	if (spare.fd >= 0 && !same_ns(self, spare.origin))
		spare_drop();           /* made from another namespace: replaced */
	if (spare.fd < 0 && spare.wanted) {
		if (brisk_in_netns(self, spare_cb, &fd) < 0) {
			err = errno;
			if (fd >= 0)
				close(fd);
			close(self);
			return brisk_fail(L, "prepare netns", "spare", err);
		}
		spare.fd = fd;
		spare.origin = self;    /* held: its inode cannot name another */
		spare.pid = getpid();
		spare.made = mono_now();
		spare.wanted = 0;
		self = -1;
	}
	if (self >= 0)
		close(self);
	spare.ttl = ttl;
	lua_pushboolean(L, 1);
	if (spare.fd < 0)
		return 1;
	if (!push_ns_id(L, spare.fd))
		lua_pushnil(L);
	lua_pushnumber(L, spare.made + spare.ttl - mono_now());
	return 3;
}

/***
 * Delete a named network namespace, like `ip netns del NAME`: detach the
 * bind mount and remove the file. The namespace itself lives on while a
 * process or handle still uses it.
 * @function netns_del
 * @tparam string name (as for netns_add)
 * @return true
 * @return[2] nil, "del netns NAME: <strerror>", errno (ENOENT when absent,
 *   EINVAL for a bad name)
 */
static int l_netns_del(lua_State *L)
{
	char path[sizeof(NETNS_RUN_DIR) + NETNS_NAME_MAX + 2];
	const char *name, *why;

	if ((why = netns_checkname(L, 1, &name, path, sizeof(path))))
		return brisk_failmsg(L, "del netns", name, EINVAL, why);
	umount2(path, MNT_DETACH);      /* a stale file has no mount: fine */
	if (unlink(path) < 0)
		return brisk_fail(L, "del netns", name, errno);
	lua_pushboolean(L, 1);
	return 1;
}

static int skip_dots(const struct dirent *d)
{
	return strcmp(d->d_name, ".") && strcmp(d->d_name, "..");
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

/***
 * The named namespaces, like `ip netns list` (every file under /run/netns).
 * @function netns_list
 * @return array of names, sorted bytewise (empty when /run/netns is absent)
 * @return[2] nil, "list netns /run/netns: <strerror>", errno
 */
static int l_netns_list(lua_State *L)
{
	struct dirent **ents;
	int n, i;

	n = scandir(NETNS_RUN_DIR, &ents, skip_dots, by_name);
	if (n < 0) {
		if (errno == ENOENT) {
			lua_newtable(L);
			return 1;
		}
		return brisk_fail(L, "list netns", NETNS_RUN_DIR, errno);
	}
	lua_createtable(L, n, 0);
	for (i = 0; i < n; i++) {
		lua_pushstring(L, ents[i]->d_name);
		lua_rawseti(L, -2, i + 1);
		free(ents[i]);
	}
	free(ents);
	return 1;
}

/***
 * Whether a named namespace exists: /run/netns/NAME has a network
 * namespace bound on it (a stale file left without a mount does not count).
 * @function netns_exists
 * @tparam string name (as for netns_add)
 * @return boolean
 * @return[2] nil, "netns_exists NAME: <reason>", EINVAL for a bad name
 */
static int l_netns_exists(lua_State *L)
{
	char path[sizeof(NETNS_RUN_DIR) + NETNS_NAME_MAX + 2];
	const char *name, *why;
	int fd;

	if ((why = netns_checkname(L, 1, &name, path, sizeof(path))))
		return brisk_failmsg(L, "netns_exists", name, EINVAL, why);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			goto no;
		return brisk_fail(L, "netns_exists", name, errno);
	}
	lua_pushboolean(L, brisk_is_netns_fd(fd));
	close(fd);
	return 1;
no:
	lua_pushboolean(L, 0);
	return 1;
}

/***
 * An identity for a network namespace, to compare namespaces.
 * @function netns_id
 * @param[opt] ns nil (the current one), a name under /run/netns, a path,
 *   a pid or a netlink handle (its bound namespace)
 * @return string "st_dev:st_ino" of the namespace's nsfs inode
 * @return[2] nil, "open netns NS: <strerror>", errno (ENOENT when missing,
 *   EINVAL when the path is no network namespace)
 */
static int l_netns_id(lua_State *L)
{
	char label[96];
	int fd, owned, err, ok;

	lua_settop(L, 1);
	fd = brisk_netns_arg(L, 1, &owned, label, sizeof(label));
	if (fd < 0)
		return brisk_fail(L, "open netns", label, errno);
	ok = push_ns_id(L, fd);
	err = errno;
	if (owned)
		close(fd);
	if (!ok)
		return brisk_fail(L, "stat netns", label, err);
	return 1;
}

/* --- running code in a namespace --- */

struct run_ctx {
	lua_State *L;
	int nargs;
	int status;
};

/* Runs inside brisk_in_netns. lua_pcall catches every error (and a yield
 * across it), so control always comes back here and the thread always
 * returns to its namespace. */
static int run_cb(void *ud)
{
	struct run_ctx *c = ud;

	c->status = lua_pcall(c->L, c->nargs, LUA_MULTRET, 0);
	return 0;
}

/***
 * Call `fn(...)` with the calling thread inside a network namespace, then
 * switch back (always, also when fn fails). Processes started by fn (for
 * example with os.execute) run in that namespace.
 * @function netns_run
 * @param ns nil (current), a name under /run/netns, a path, a pid or a
 *   netlink handle (its bound namespace)
 * @tparam function fn
 * @param ... arguments for fn
 * @return fn's results; fn's error is raised again, unchanged
 * @return[2] nil, "enter netns NS: <strerror>", errno when the namespace
 *   cannot be opened or entered (ENOENT when missing); fn is not called
 */
static int l_netns_run(lua_State *L)
{
	struct run_ctx c = { L, 0, LUA_OK };
	char label[96];
	int fd, owned, ret, err;

	luaL_checktype(L, 2, LUA_TFUNCTION);
	fd = brisk_netns_arg(L, 1, &owned, label, sizeof(label));
	if (fd < 0)
		return brisk_fail(L, "enter netns", label, errno);
	/* stack: ns, fn, args... */
	c.nargs = lua_gettop(L) - 2;
	ret = brisk_in_netns(fd, run_cb, &c);
	err = errno;
	if (owned)
		close(fd);
	if (ret < 0)
		return brisk_fail(L, "enter netns", label, err);
	if (c.status != LUA_OK)
		return lua_error(L);
	return lua_gettop(L) - 1;
}

static const luaL_Reg netns_mod[] = {
	{ "netns_add", l_netns_add },
	{ "netns_prepare", l_netns_prepare },
	{ "netns_del", l_netns_del },
	{ "netns_list", l_netns_list },
	{ "netns_exists", l_netns_exists },
	{ "netns_id", l_netns_id },
	{ "netns_run", l_netns_run },
	{ NULL, NULL }
};

void brisk_open_netns(lua_State *L, int mod, int meth)
{
	(void)meth;
	lua_pushvalue(L, mod);
	luaL_setfuncs(L, netns_mod, 0);
	lua_pop(L, 1);
}
