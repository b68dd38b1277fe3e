/***
 * sysctl.c - the kernel's older interfaces, used inside a namespace:
 * sysctls under /proc/sys/net and the bridge ioctls libnetwork falls back
 * on (SIOCBRADDBR, SIOCBRDELBR, SIOCBRADDIF).
 *
 * Both are bound to the network namespace of the thread that opens the
 * file or socket, so the open happens inside brisk_in_netns; reading and
 * writing an fd opened there can happen anywhere.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <ctype.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <linux/mount.h>
#include <linux/sockios.h>
#include "brisk.h"

#define SYSCTL_ROOT  "/proc/sys/"
#define SYSCTL_VALSZ 8192

/* --- sysctl paths --- */

/* Check the sysctl path at `idx` and write "/proc/sys/<path>" to `out`;
 * `rel` points at the canonical (slash) form inside it. The dotted form
 * "net.ipv4.ip_forward" is taken only when the path holds no '/' (names of
 * interfaces may contain dots). Raises unless the path is under net/ and
 * free of empty, "." and ".." components. */
static const char *sysctl_checkpath(lua_State *L, int idx, char *out, size_t outlen)
{
	const size_t pre = sizeof(SYSCTL_ROOT) - 1;
	const char *s, *p, *end;
	char *rel;
	size_t n;

	luaL_checktype(L, idx, LUA_TSTRING);
	s = lua_tolstring(L, idx, &n);
	if (strlen(s) != n)
		luaL_argerror(L, idx, "sysctl path contains a NUL byte");
	if (pre + n + 1 > outlen)
		luaL_argerror(L, idx, "sysctl path too long");
	memcpy(out, SYSCTL_ROOT, pre);
	rel = out + pre;
	memcpy(rel, s, n + 1);
	if (!strchr(rel, '/'))
		for (char *q = rel; *q; q++)
			if (*q == '.')
				*q = '/';
	if (strncmp(rel, "net/", 4))
		luaL_argerror(L, idx, "sysctl path must be under net/");
	for (p = rel; ; p = end + 1) {
		end = strchrnul(p, '/');
		if (end == p || (end - p == 1 && p[0] == '.') ||
		    (end - p == 2 && p[0] == '.' && p[1] == '.'))
			luaL_argerror(L, idx, "sysctl path has an empty, '.' or '..' component");
		if (!*end)
			break;
	}
	return rel;
}

/* --- opening inside the namespace --- */

struct sysctl_ctx {
	const char *path;
	int want_write;
	int fd;
	int err;
};

/*
 * brisk's own procfs instance. /proc/sys/net/ipv6 (like every directory
 * that exists only per namespace) is a dentry of its own for every
 * namespace that ever looked it up, all under the one /proc/sys/net
 * dentry and in one hash chain, newest first, which a lookup walks
 * comparing each (under a spinlock): the first open of
 * /proc/sys/net/ipv6/... in a new namespace took ~0.65 ms with 500
 * namespaces that had done so before (~1.2 us each), and in an old one
 * (the host's, at the chain's end) as long. An endpoint create sets
 * disable_ipv6 in a namespace it just made, so its cost grew with every
 * endpoint. A procfs superblock of our own (fsopen, fsmount: attached
 * nowhere, gone with its descriptor) has dentries of its own: the walk
 * finds the few this process made (~0.1 ms to make and drop one, ~40 us a
 * lookup, whatever the count). It is made anew after OWN_PROC_USES opens,
 * so that a long-lived process does not grow the same chain in it. A
 * kernel or sandbox without the new mount API, or a caller without
 * CAP_SYS_ADMIN, gets the usual /proc/sys; so does one whose /proc/sys is
 * mounted read-only (systemd's ProtectKernelTunables=, a container's
 * runtime): a procfs of its own would not be, and brisk does not go
 * around that.
 */
#define OWN_PROC_USES 64

static int own_proc = -1, own_proc_uses, own_proc_off;

static int own_proc_fd(void)
{
	struct statvfs sv;
	int fs, err;

	if (own_proc_off)
		return -1;
	if (own_proc >= 0 && own_proc_uses >= OWN_PROC_USES) {
		close(own_proc);
		own_proc = -1;
	}
	if (own_proc < 0) {
		if (statvfs("/proc/sys", &sv) == 0 && (sv.f_flag & ST_RDONLY)) {
			own_proc_off = 1;
			return -1;
		}
		fs = (int)syscall(SYS_fsopen, "proc", FSOPEN_CLOEXEC);
		if (fs >= 0 && syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) == 0)
			own_proc = (int)syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, 0);
		err = errno;
		if (fs >= 0)
			close(fs);
		if (own_proc < 0) {
			/* for good when it is not to be had; out of descriptors or
			 * memory, the usual /proc this time only */
			if (err != EMFILE && err != ENFILE && err != ENOMEM)
				own_proc_off = 1;
			return -1;
		}
		own_proc_uses = 0;
	}
	own_proc_uses++;
	return own_proc;
}

/* One open, read-write for a set, through brisk's own procfs when it can
 * be had (a failure there other than the key's own is tried again on the
 * usual /proc). Runs inside the namespace: /proc/sys shows the sysctls of
 * the namespace the opening thread is in. */
static int sysctl_open_cb(void *ud)
{
	struct sysctl_ctx *c = ud;
	int flags = (c->want_write ? O_RDWR : O_RDONLY) | O_CLOEXEC;
	int proc = own_proc_fd();

	c->fd = -1;
	if (proc >= 0) {
		c->fd = openat(proc, c->path + sizeof("/proc/") - 1, flags);
		if (c->fd < 0 && (errno == ENOENT || errno == ENOTDIR))
			goto fail;
	}
	if (c->fd < 0)
		c->fd = open(c->path, flags);
	if (c->fd >= 0)
		return 0;
fail:
	c->err = errno;
	return -1;
}

/* Open the sysctl `path` in the namespace given at `nsidx` (nil: stay in
 * the current one). Returns 0, or -1 with c->err set and a failure triple
 * pushed (*pushed = 3). */
static int sysctl_open(lua_State *L, int nsidx, struct sysctl_ctx *c,
		       const char *op, const char *rel, int *pushed)
{
	char label[96];
	int fd = -1, owned = 0, ret;

	c->fd = -1;
	c->err = 0;
	if (!lua_isnoneornil(L, nsidx)) {
		fd = brisk_netns_arg(L, nsidx, &owned, label, sizeof(label));
		if (fd < 0) {
			*pushed = brisk_fail(L, "open netns", label, errno);
			return -1;
		}
	}
	ret = brisk_in_netns(fd, sysctl_open_cb, c);
	if (ret < 0 && !c->err)
		c->err = errno;         /* the switch itself failed */
	if (owned)
		close(fd);
	if (ret < 0) {
		*pushed = brisk_fail(L, op, rel, c->err);
		return -1;
	}
	return 0;
}

/* Read the whole value from `fd` into `buf`, trimmed of surrounding
 * whitespace. Returns its length, or -1 with errno set. */
static ssize_t sysctl_read(int fd, char *buf, size_t len)
{
	size_t got = 0, start = 0;
	ssize_t r;

	for (;;) {
		if (got == len) {
			errno = EOVERFLOW;
			return -1;
		}
		r = read(fd, buf + got, len - got);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	while (got && isspace((unsigned char)buf[got - 1]))
		got--;
	while (start < got && isspace((unsigned char)buf[start]))
		start++;
	memmove(buf, buf + start, got - start);
	return (ssize_t)(got - start);
}

static int sysctl_get(lua_State *L, int pathidx, int nsidx)
{
	struct sysctl_ctx c = { 0 };
	char path[PATH_MAX], val[SYSCTL_VALSZ];
	const char *rel;
	ssize_t n;
	int pushed, err;

	rel = sysctl_checkpath(L, pathidx, path, sizeof(path));
	c.path = path;
	if (sysctl_open(L, nsidx, &c, "get sysctl", rel, &pushed) < 0)
		return pushed;
	n = sysctl_read(c.fd, val, sizeof(val));
	err = errno;
	close(c.fd);
	if (n < 0)
		return brisk_fail(L, "get sysctl", rel, err);
	lua_pushlstring(L, val, (size_t)n);
	return 1;
}

static int sysctl_set(lua_State *L, int pathidx, int validx, int nsidx)
{
	struct sysctl_ctx c = { 0 };
	char path[PATH_MAX], old[SYSCTL_VALSZ];
	const char *rel, *v;
	size_t vlen;
	ssize_t n, w;
	int pushed, err = 0;

	rel = sysctl_checkpath(L, pathidx, path, sizeof(path));
	if (lua_type(L, validx) != LUA_TSTRING && lua_type(L, validx) != LUA_TNUMBER)
		luaL_typeerror(L, validx, "string or number");
	v = lua_tolstring(L, validx, &vlen);     /* a number turns into a string in place: fine */
	c.path = path;
	c.want_write = 1;
	if (sysctl_open(L, nsidx, &c, "set sysctl", rel, &pushed) < 0)
		return pushed;
	n = sysctl_read(c.fd, old, sizeof(old));
	if (n < 0) {
		err = errno;
	} else {
		/* at offset 0: the read left the file position at the end */
		w = pwrite(c.fd, v, vlen, 0);
		if (w < 0)
			err = errno;
		else if ((size_t)w != vlen)
			err = EIO;
	}
	close(c.fd);
	if (err)
		return brisk_fail(L, "set sysctl", rel, err);
	lua_pushlstring(L, old, (size_t)n);
	return 1;
}

/***
 * Read a sysctl under /proc/sys/net.
 * @function sysctl_get
 * @tparam string path "net/ipv6/conf/br0/accept_ra" (canonical) or
 *   "net.ipv4.ip_forward" (dotted, only when it holds no '/'); raises unless
 *   under net/ and free of "..", "." and empty components
 * @param[opt] ns nil (current), a name, a path, a pid or a netlink handle
 * @return string value, surrounding whitespace trimmed
 * @return[2] nil, "get sysctl PATH: <strerror>", errno (ENOENT when the key
 *   does not exist; "open netns NS: ..." when the namespace is missing)
 */
static int l_sysctl_get(lua_State *L)
{
	lua_settop(L, 2);
	return sysctl_get(L, 1, 2);
}

/***
 * Write a sysctl under /proc/sys/net, from inside the namespace.
 * @function sysctl_set
 * @tparam string path as for sysctl_get
 * @tparam string|number value
 * @param[opt] ns nil (current), a name, a path, a pid or a netlink handle
 * @return string the old value (trimmed), so the caller can undo
 * @return[2] nil, "set sysctl PATH: <strerror>", errno (ENOENT for a
 *   missing key, EINVAL for a value the kernel refuses); nothing changed
 */
static int l_sysctl_set(lua_State *L)
{
	lua_settop(L, 3);
	return sysctl_set(L, 1, 2, 3);
}

/***
 * Read a sysctl in the handle's namespace.
 * @function nl:sysctl_get
 * @tparam string path as for core.sysctl_get
 * @return string value
 * @return[2] nil, "get sysctl PATH: <strerror>", errno
 */
static int m_sysctl_get(lua_State *L)
{
	brisk_checknl(L, 1);
	lua_settop(L, 2);
	return sysctl_get(L, 2, 1);
}

/***
 * Write a sysctl in the handle's namespace.
 * @function nl:sysctl_set
 * @tparam string path as for core.sysctl_get
 * @tparam string|number value
 * @return string the old value
 * @return[2] nil, "set sysctl PATH: <strerror>", errno
 */
static int m_sysctl_set(lua_State *L)
{
	brisk_checknl(L, 1);
	lua_settop(L, 3);
	return sysctl_set(L, 2, 3, 1);
}

/* --- bridge ioctls --- */

struct br_ctx {
	unsigned long req;
	char name[IFNAMSIZ];   /* the kernel copies IFNAMSIZ bytes: keep a full buffer */
	int bridx, linkidx;
	int err;
};

static int br_cb(void *ud)
{
	struct br_ctx *c = ud;
	struct ifreq ifr;
	int s, ret;

	s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0) {
		c->err = errno;
		return -1;
	}
	if (c->req == SIOCBRADDIF) {
		memset(&ifr, 0, sizeof(ifr));
		ifr.ifr_ifindex = c->bridx;
		ret = ioctl(s, SIOCGIFNAME, &ifr);
		if (ret == 0) {
			ifr.ifr_ifindex = c->linkidx;
			ret = ioctl(s, SIOCBRADDIF, &ifr);
		}
	} else {
		ret = ioctl(s, c->req, c->name);
	}
	if (ret < 0)
		c->err = errno;
	close(s);
	return ret < 0 ? -1 : 0;
}

/* Run the ioctl in `c` inside h's namespace; pushes true or a failure. */
static int br_ioctl(lua_State *L, struct brisk_nl *h, struct br_ctx *c,
		    const char *op, const char *obj)
{
	c->err = 0;
	if (brisk_in_netns(h->nsfd, br_cb, c) < 0) {
		int err = c->err ? c->err : errno;
		/* br_del_bridge says ENXIO for "no such device"; netlink says
		 * ENODEV: give callers one errno for one condition. */
		if (c->req == SIOCBRDELBR && err == ENXIO)
			err = ENODEV;
		return brisk_fail(L, op, obj, err);
	}
	lua_pushboolean(L, 1);
	return 1;
}

/* The bridge name at `idx` copied into c->name; returns NULL, or the reason
 * it is invalid with *err set. */
static const char *br_checkname(lua_State *L, int idx, struct br_ctx *c, int *err)
{
	const char *name, *why;

	luaL_checktype(L, idx, LUA_TSTRING);
	name = lua_tostring(L, idx);
	if ((why = brisk_ifname_invalid(name))) {
		*err = strlen(name) >= IFNAMSIZ ? ENAMETOOLONG : EINVAL;
		return why;
	}
	memset(c->name, 0, sizeof(c->name));
	memcpy(c->name, name, strlen(name));
	return NULL;
}

/***
 * Create a bridge with the SIOCBRADDBR ioctl (libnetwork's fallback when
 * netlink cannot), in the handle's namespace.
 * @function nl:ioctl_bridge_add
 * @tparam string name interface name
 * @return true
 * @return[2] nil, "ioctl add bridge NAME: <strerror>", errno (EEXIST;
 *   EINVAL/ENAMETOOLONG for a bad name, checked before the ioctl)
 */
static int m_ioctl_bridge_add(lua_State *L)
{
	struct brisk_nl *h = brisk_checknl(L, 1);
	struct br_ctx c = { .req = SIOCBRADDBR };
	const char *why;
	int err;

	if ((why = br_checkname(L, 2, &c, &err)))
		return brisk_failmsg(L, "ioctl add bridge", lua_tostring(L, 2), err, why);
	return br_ioctl(L, h, &c, "ioctl add bridge", c.name);
}

/***
 * Delete a bridge with the SIOCBRDELBR ioctl, in the handle's namespace.
 * @function nl:ioctl_bridge_del
 * @tparam string name
 * @return true
 * @return[2] nil, "ioctl del bridge NAME: <strerror>", errno (ENODEV when
 *   absent, EBUSY while it is up, EPERM when it is no bridge;
 *   EINVAL/ENAMETOOLONG for a bad name)
 */
static int m_ioctl_bridge_del(lua_State *L)
{
	struct brisk_nl *h = brisk_checknl(L, 1);
	struct br_ctx c = { .req = SIOCBRDELBR };
	const char *why;
	int err;

	if ((why = br_checkname(L, 2, &c, &err)))
		return brisk_failmsg(L, "ioctl del bridge", lua_tostring(L, 2), err, why);
	return br_ioctl(L, h, &c, "ioctl del bridge", c.name);
}

/***
 * Enslave a link to a bridge with the SIOCBRADDIF ioctl, in the handle's
 * namespace.
 * @function nl:ioctl_bridge_addif
 * @param bridge name, ifindex or link table
 * @param link name, ifindex or link table
 * @return true
 * @return[2] nil, "ioctl add bridge port LINK to BRIDGE: <strerror>", errno
 *   (ENODEV when either is missing, EOPNOTSUPP when `bridge` is no bridge,
 *   EBUSY when the link already has a master; EINVAL/ENAMETOOLONG for a bad
 *   name)
 */
static int m_ioctl_bridge_addif(lua_State *L)
{
	struct brisk_nl *h = brisk_checknl(L, 1);
	struct br_ctx c = { .req = SIOCBRADDIF };
	char brlabel[64], linklabel[64], obj[140];

	lua_settop(L, 3);
	c.bridx = brisk_link_index(L, h, 2, brlabel, sizeof(brlabel));
	if (c.bridx <= 0)
		return brisk_nlfail(L, h, "ioctl add bridge port to", brlabel);
	c.linkidx = brisk_link_index(L, h, 3, linklabel, sizeof(linklabel));
	snprintf(obj, sizeof(obj), "%s to %s", linklabel, brlabel);
	if (c.linkidx <= 0)
		return brisk_nlfail(L, h, "ioctl add bridge port", obj);
	return br_ioctl(L, h, &c, "ioctl add bridge port", obj);
}

static const luaL_Reg sysctl_mod[] = {
	{ "sysctl_get", l_sysctl_get },
	{ "sysctl_set", l_sysctl_set },
	{ NULL, NULL }
};

static const luaL_Reg sysctl_meth[] = {
	{ "sysctl_get", m_sysctl_get },
	{ "sysctl_set", m_sysctl_set },
	{ "ioctl_bridge_add", m_ioctl_bridge_add },
	{ "ioctl_bridge_del", m_ioctl_bridge_del },
	{ "ioctl_bridge_addif", m_ioctl_bridge_addif },
	{ NULL, NULL }
};

void brisk_open_sysctl(lua_State *L, int mod, int meth)
{
	lua_pushvalue(L, mod);
	luaL_setfuncs(L, sysctl_mod, 0);
	lua_pop(L, 1);
	lua_pushvalue(L, meth);
	luaL_setfuncs(L, sysctl_meth, 0);
	lua_pop(L, 1);
}
