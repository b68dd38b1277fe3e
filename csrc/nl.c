/***
 * nl.c - netlink handles and the helpers every family shares.
 *
 * A handle is a userdata (metatable "brisk.nl") holding one NETLINK_ROUTE
 * socket opened inside one network namespace. It is created closed, then
 * the socket is acquired; `__gc` and `__close` share one function and
 * closing twice is harmless.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <ctype.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include "brisk.h"

/* --- failure triples --- */

int brisk_failmsg(lua_State *L, const char *op, const char *obj, int err, const char *msg)
{
	luaL_checkstack(L, 3, NULL);
	lua_pushnil(L);
	if (obj && *obj)
		lua_pushfstring(L, "%s %s: %s", op, obj, msg);
	else
		lua_pushfstring(L, "%s: %s", op, msg);
	lua_pushinteger(L, err);
	return 3;
}

int brisk_fail(lua_State *L, const char *op, const char *obj, int err)
{
	return brisk_failmsg(L, op, obj, err, strerror(err));
}

int brisk_nlfail(lua_State *L, struct brisk_nl *h, const char *op, const char *obj)
{
	char msg[BRISK_EXTSZ + 128];
	int err = h->err ? h->err : EIO;

	if (h->ext[0])
		snprintf(msg, sizeof(msg), "%s (kernel: %s)", strerror(err), h->ext);
	else
		snprintf(msg, sizeof(msg), "%s", strerror(err));
	return brisk_failmsg(L, op, obj, err, msg);
}

/* --- namespaces --- */

int brisk_in_netns(int nsfd, int (*fn)(void *), void *ud)
{
	int self, ret, saved;

	if (nsfd < 0)
		return fn(ud);
	self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (self < 0)
		return -1;
	if (setns(nsfd, CLONE_NEWNET) < 0) {
		saved = errno;
		close(self);
		errno = saved;
		return -1;
	}
	ret = fn(ud);
	saved = errno;
	if (setns(self, CLONE_NEWNET) < 0) {
		/* Cannot happen for a namespace we were just in; never continue
		 * in the wrong namespace. */
		fprintf(stderr, "brisk: cannot return to the original network namespace\n");
		abort();
	}
	close(self);
	errno = saved;
	return ret;
}

int brisk_netns_fd(lua_State *L, int idx)
{
	char path[128];

	switch (lua_type(L, idx)) {
	case LUA_TNONE:
	case LUA_TNIL:
		return open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	case LUA_TNUMBER: {
		lua_Integer pid = luaL_checkinteger(L, idx);
		if (pid <= 0)
			luaL_argerror(L, idx, "pid must be positive");
		snprintf(path, sizeof(path), "/proc/%lld/ns/net", (long long)pid);
		return open(path, O_RDONLY | O_CLOEXEC);
	}
	case LUA_TSTRING: {
		const char *s = lua_tostring(L, idx);
		if (*s == '\0')
			luaL_argerror(L, idx, "empty namespace name");
		if (strchr(s, '/'))
			return open(s, O_RDONLY | O_CLOEXEC);
		if (!strcmp(s, ".") || !strcmp(s, "..") || strlen(s) > 64) {
			errno = EINVAL;
			return -1;
		}
		snprintf(path, sizeof(path), "/run/netns/%s", s);
		return open(path, O_RDONLY | O_CLOEXEC);
	}
	default:
		luaL_argerror(L, idx, "namespace must be a name, a path or a pid");
		return -1;
	}
}

/* --- handle --- */

struct open_ctx {
	struct brisk_nl *h;
	int proto;
	int err;
};

static int open_socket(void *ud)
{
	struct open_ctx *c = ud;
	struct brisk_nl *h = c->h;
	int one = 1;

	h->sock = mnl_socket_open2(c->proto, SOCK_CLOEXEC);
	if (!h->sock) {
		c->err = errno;
		return -1;
	}
	/* Best effort: old kernels lack these options. */
	mnl_socket_setsockopt(h->sock, NETLINK_EXT_ACK, &one, sizeof(one));
	if (c->proto == NETLINK_ROUTE)
		mnl_socket_setsockopt(h->sock, NETLINK_GET_STRICT_CHK, &one, sizeof(one));
	mnl_socket_setsockopt(h->sock, NETLINK_CAP_ACK, &one, sizeof(one));
	if (mnl_socket_bind(h->sock, 0, MNL_SOCKET_AUTOPID) < 0) {
		c->err = errno;
		mnl_socket_close(h->sock);
		h->sock = NULL;
		return -1;
	}
	return 0;
}

static void nl_release(struct brisk_nl *h)
{
	if (h->sock) {
		mnl_socket_close(h->sock);
		h->sock = NULL;
	}
	if (h->nsfd >= 0) {
		close(h->nsfd);
		h->nsfd = -1;
	}
}

/***
 * Open a netlink handle.
 * @function open
 * @param[opt] netns nil for the current namespace, a name under /run/netns,
 *   a path such as /proc/PID/ns/net, or a pid
 * @return handle
 * @return[2] nil, "open netns X: <strerror>", errno
 */
static int l_open(lua_State *L)
{
	struct brisk_nl *h;
	struct open_ctx c;
	char label[96];

	lua_settop(L, 1);
	h = lua_newuserdatauv(L, sizeof(*h), 0);
	h->sock = NULL;
	h->nsfd = -1;
	h->err = 0;
	h->ext[0] = '\0';
	luaL_setmetatable(L, BRISK_NL_MT);

	h->nsfd = brisk_netns_fd(L, 1);
	/* luaL_tolstring works on a copy: lua_tostring would turn a pid into
	 * a string in place. */
	snprintf(label, sizeof(label), "%s", lua_isnil(L, 1) ? "current" :
		 luaL_tolstring(L, 1, NULL));
	lua_pop(L, lua_isnil(L, 1) ? 0 : 1);
	if (h->nsfd < 0)
		return brisk_fail(L, "open netns", label, errno);
	c.h = h;
	c.proto = NETLINK_ROUTE;
	c.err = 0;
	if (brisk_in_netns(h->nsfd, open_socket, &c) < 0) {
		int err = c.err ? c.err : errno;
		nl_release(h);
		return brisk_fail(L, "open netlink in netns", label, err);
	}
	h->portid = mnl_socket_get_portid(h->sock);
	h->seq = (unsigned int)time(NULL) ^ ((unsigned int)getpid() << 16);
	return 1;
}

struct brisk_nl *brisk_nl_temp(int nsfd, int proto, unsigned int seq, int *err)
{
	struct open_ctx c = { NULL, proto, 0 };

	c.h = calloc(1, sizeof(*c.h));
	if (!c.h) {
		*err = ENOMEM;
		return NULL;
	}
	c.h->nsfd = -1;
	if (brisk_in_netns(nsfd, open_socket, &c) < 0) {
		*err = c.err ? c.err : errno;
		free(c.h);
		return NULL;
	}
	c.h->portid = mnl_socket_get_portid(c.h->sock);
	c.h->seq = seq;
	return c.h;
}

void brisk_nl_temp_close(struct brisk_nl *t)
{
	if (!t)
		return;
	if (t->sock)
		mnl_socket_close(t->sock);
	free(t);
}

struct brisk_nl *brisk_checknl(lua_State *L, int idx)
{
	struct brisk_nl *h = luaL_checkudata(L, idx, BRISK_NL_MT);
	if (!h->sock)
		luaL_error(L, "attempt to use a closed netlink handle");
	return h;
}

/***
 * Close the handle; closing twice is harmless.
 * @function nl:close
 * @return true
 */
static int l_close(lua_State *L)
{
	struct brisk_nl *h = luaL_checkudata(L, 1, BRISK_NL_MT);
	nl_release(h);
	lua_pushboolean(L, 1);
	return 1;
}

static int l_tostring(lua_State *L)
{
	struct brisk_nl *h = luaL_checkudata(L, 1, BRISK_NL_MT);
	if (h->sock)
		lua_pushfstring(L, "brisk.nl (%p)", (void *)h);
	else
		lua_pushliteral(L, "brisk.nl (closed)");
	return 1;
}

/***
 * The namespace fd the handle is bound to (for namespace-aware helpers).
 * @function nl:netns_fd
 * @return integer fd, owned by the handle
 */
static int l_netns_fd(lua_State *L)
{
	struct brisk_nl *h = brisk_checknl(L, 1);
	lua_pushinteger(L, h->nsfd);
	return 1;
}

/* --- the talk loop --- */

static int cb_error(const struct nlmsghdr *nlh, void *data)
{
	struct brisk_nl *h = data;
	const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *attr;
	size_t off;

	if (nlh->nlmsg_len < mnl_nlmsg_size(sizeof(*e))) {
		h->err = EBADMSG;
		errno = EBADMSG;
		return MNL_CB_ERROR;
	}
	if (e->error == 0)
		return MNL_CB_STOP;
	/* a code outside -4095..-1 is no errno (and -INT_MIN overflows) */
	h->err = e->error < 0 && e->error >= -4095 ? -e->error : EPROTO;
	if (nlh->nlmsg_flags & NLM_F_ACK_TLVS) {
		off = sizeof(*e);
		if (!(nlh->nlmsg_flags & NLM_F_CAPPED))
			off += e->msg.nlmsg_len - sizeof(struct nlmsghdr);
		off = MNL_ALIGN(off);
		if (mnl_nlmsg_size(off) <= nlh->nlmsg_len) {
			mnl_attr_for_each(attr, nlh, off) {
				if (mnl_attr_get_type(attr) == NLMSGERR_ATTR_MSG &&
				    mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) >= 0) {
					snprintf(h->ext, sizeof(h->ext), "%s",
						 mnl_attr_get_str(attr));
					/* drop a trailing newline some kernels add */
					size_t n = strlen(h->ext);
					while (n && isspace((unsigned char)h->ext[n - 1]))
						h->ext[--n] = '\0';
				}
			}
		}
	}
	errno = h->err;
	return MNL_CB_ERROR;
}

static int cb_noop(const struct nlmsghdr *nlh, void *data)
{
	(void)nlh;
	(void)data;
	return MNL_CB_OK;
}

struct talk_ctx {
	struct brisk_nl *h;
	mnl_cb_t cb;
	void *data;
};

static int cb_data(const struct nlmsghdr *nlh, void *data)
{
	struct talk_ctx *t = data;
	if (nlh->nlmsg_flags & NLM_F_DUMP_INTR)
		t->h->dump_intr = 1;
	return t->cb ? t->cb(nlh, t->data) : MNL_CB_OK;
}

static int cb_err_wrap(const struct nlmsghdr *nlh, void *data)
{
	struct talk_ctx *t = data;
	return cb_error(nlh, t->h);
}

static int cb_done(const struct nlmsghdr *nlh, void *data)
{
	struct talk_ctx *t = data;
	/* A dump may end with an error code in DONE. */
	if (mnl_nlmsg_get_payload_len(nlh) >= sizeof(int)) {
		int e = *(int *)mnl_nlmsg_get_payload(nlh);
		if (e < 0) {
			t->h->err = e >= -4095 ? -e : EPROTO;
			errno = t->h->err;
			return MNL_CB_ERROR;
		}
	}
	return MNL_CB_STOP;
}

struct nlmsghdr *brisk_msg(struct brisk_nl *h, uint16_t type, uint16_t flags)
{
	struct nlmsghdr *nlh;

	/* libmnl 1.0.4 leaves attribute padding as it finds it: start every
	 * request on zeroed bytes so nothing stale goes to the kernel. */
	memset(h->buf, 0, 2048);
	nlh = mnl_nlmsg_put_header(h->buf);
	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = NLM_F_REQUEST | flags;
	nlh->nlmsg_seq = ++h->seq;
	return nlh;
}

int brisk_talk(struct brisk_nl *h, struct nlmsghdr *nlh, mnl_cb_t cb, void *data)
{
	struct talk_ctx t = { h, cb, data };
	mnl_cb_t ctl[NLMSG_MIN_TYPE];
	unsigned int seq = nlh->nlmsg_seq;
	ssize_t n;
	int ret, i;

	for (i = 0; i < NLMSG_MIN_TYPE; i++)
		ctl[i] = cb_noop;
	ctl[NLMSG_ERROR] = cb_err_wrap;
	ctl[NLMSG_DONE] = cb_done;

	h->err = 0;
	h->ext[0] = '\0';
	h->dump_intr = 0;
	if (mnl_socket_sendto(h->sock, nlh, nlh->nlmsg_len) < 0) {
		h->err = errno;
		return -1;
	}
	for (;;) {
		n = mnl_socket_recvfrom(h->sock, h->buf, sizeof(h->buf));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			h->err = errno;
			return -1;
		}
		ret = mnl_cb_run2(h->buf, n, seq, h->portid, cb_data, &t,
				  ctl, NLMSG_MIN_TYPE);
		if (ret == MNL_CB_ERROR) {
			if (!h->err)
				h->err = errno ? errno : EIO;
			return -1;
		}
		if (ret <= MNL_CB_STOP)
			return 0;
	}
}

/* --- arguments --- */

const char *brisk_ifname_invalid(const char *name)
{
	size_t n = strlen(name);
	const char *p;

	if (n == 0)
		return "empty interface name";
	if (n >= IFNAMSIZ)
		return "interface name longer than 15 bytes";
	if (!strcmp(name, ".") || !strcmp(name, ".."))
		return "interface name cannot be . or ..";
	for (p = name; *p; p++) {
		if (*p == '/' || *p == ':' || isspace((unsigned char)*p))
			return "interface name contains '/', ':' or whitespace";
		/* the kernel reads '%d' as a template and makes a name of its own */
		if (*p == '%')
			return "interface name contains '%' (a kernel name template)";
	}
	return NULL;
}

int brisk_rawfield(lua_State *L, int t, const char *k)
{
	t = lua_absindex(L, t);
	lua_pushstring(L, k);
	return lua_rawget(L, t);
}

const char *brisk_optstring(lua_State *L, int t, const char *k, const char *def)
{
	const char *s = def;
	int ty = brisk_rawfield(L, t, k);
	if (ty == LUA_TSTRING)
		s = lua_tostring(L, -1);
	else if (ty != LUA_TNIL)
		luaL_error(L, "field '%s' must be a string (got %s)", k, lua_typename(L, ty));
	lua_pop(L, 1);          /* the string stays reachable from the table */
	return s;
}

lua_Integer brisk_optinteger(lua_State *L, int t, const char *k, lua_Integer def)
{
	lua_Integer v = def;
	int isnum, ty = brisk_rawfield(L, t, k);
	if (ty != LUA_TNIL) {
		v = lua_tointegerx(L, -1, &isnum);
		if (!isnum)
			luaL_error(L, "field '%s' must be an integer (got %s)", k,
				   ty == LUA_TNUMBER ? "a float" : lua_typename(L, ty));
	}
	lua_pop(L, 1);
	return v;
}

int brisk_optboolean(lua_State *L, int t, const char *k, int def)
{
	int v = def, ty = brisk_rawfield(L, t, k);
	if (ty == LUA_TBOOLEAN)
		v = lua_toboolean(L, -1);
	else if (ty != LUA_TNIL)
		luaL_error(L, "field '%s' must be a boolean (got %s)", k, lua_typename(L, ty));
	lua_pop(L, 1);
	return v;
}

void brisk_checkkeys(lua_State *L, int t, const char *what, const char *const allowed[])
{
	int i;

	t = lua_absindex(L, t);
	lua_pushnil(L);
	while (lua_next(L, t)) {
		lua_pop(L, 1);
		if (lua_type(L, -1) != LUA_TSTRING)
			luaL_error(L, "%s: keys must be strings", what);
		const char *k = lua_tostring(L, -1);
		for (i = 0; allowed[i]; i++)
			if (!strcmp(k, allowed[i]))
				break;
		if (!allowed[i])
			luaL_error(L, "%s: unknown field '%s'", what, k);
	}
}

/* "what: " before a message, or nothing */
#define W(what) (what) ? (what) : "", (what) ? ": " : ""

int brisk_link_arg(lua_State *L, int idx, const char *what, int *ifindex, const char **name,
		   char *label, size_t labellen, const char **why)
{
	lua_Integer i = 0;
	const char *s = NULL;
	int isint;

	idx = lua_absindex(L, idx);
	*ifindex = 0;
	*name = NULL;
	switch (lua_type(L, idx)) {
	case LUA_TNUMBER:
		i = lua_tointegerx(L, idx, &isint);
		if (!isint)
			luaL_error(L, "%s%sifindex must be an integer", W(what));
		break;
	case LUA_TSTRING:
		s = lua_tostring(L, idx);
		break;
	case LUA_TTABLE:
		if (brisk_rawfield(L, idx, "ifindex") == LUA_TNUMBER) {
			i = lua_tointegerx(L, -1, &isint);
			if (!isint)
				luaL_error(L, "%s%sifindex must be an integer", W(what));
		} else if (brisk_rawfield(L, idx, "ifname") == LUA_TSTRING)
			s = lua_tostring(L, -1);     /* stays reachable from the table */
		else
			luaL_error(L, "%s%slink table needs 'ifindex' or 'ifname'", W(what));
		lua_settop(L, lua_gettop(L) - (s ? 2 : 1));
		break;
	default:
		luaL_error(L, "%s%slink must be a name, an ifindex or a link table (got %s)",
			   W(what), luaL_typename(L, idx));
	}
	if (s) {
		snprintf(label, labellen, "%s", s);
		*name = s;
		if ((*why = brisk_ifname_invalid(s)))
			return strlen(s) >= IFNAMSIZ ? ENAMETOOLONG : EINVAL;
		return 0;
	}
	if (i <= 0 || i > INT32_MAX)
		luaL_error(L, "%s%sifindex must be a positive integer", W(what));
	snprintf(label, labellen, "%lld", (long long)i);
	*ifindex = (int)i;
	return 0;
}

int brisk_link_index(lua_State *L, struct brisk_nl *h, int idx, char *label, size_t labellen)
{
	const char *name, *why;
	int ifindex, err, top = lua_gettop(L);

	err = brisk_link_arg(L, idx, NULL, &ifindex, &name, label, labellen, &why);
	if (err) {
		h->err = err;
		snprintf(h->ext, sizeof(h->ext), "%s", why);
		lua_settop(L, top);
		return -1;
	}
	/* a name stays reachable (from the stack or the link table) */
	if (!ifindex)
		ifindex = brisk_link_ifindex(h, name);
	lua_settop(L, top);
	return ifindex;
}

int brisk_parse_prefix(const char *s, void *addr, int *plen)
{
	char tmp[INET6_ADDRSTRLEN + 8];
	char *slash, *end;
	long p;
	int af;
	size_t n = strlen(s);

	*plen = -1;
	if (n == 0 || n >= sizeof(tmp))
		return 0;
	memcpy(tmp, s, n + 1);
	slash = strchr(tmp, '/');
	if (slash) {
		*slash++ = '\0';
		if (!*slash || !isdigit((unsigned char)*slash))
			return 0;
		errno = 0;
		p = strtol(slash, &end, 10);
		if (*end || errno || p < 0 || p > 128)
			return 0;
		*plen = (int)p;
	}
	if (inet_pton(AF_INET, tmp, addr) == 1)
		af = AF_INET;
	else if (inet_pton(AF_INET6, tmp, addr) == 1)
		af = AF_INET6;
	else
		return 0;
	if (af == AF_INET && *plen > 32)
		return 0;
	return af;
}

const char *brisk_ntop(int af, const void *addr, char *out)
{
	return inet_ntop(af, addr, out, INET6_ADDRSTRLEN);
}

int brisk_parse_mac(const char *s, unsigned char mac[6])
{
	unsigned int b[6];
	char tail;
	int i;

	if (strlen(s) != 17)
		return -1;
	for (i = 0; i < 6; i++) {
		if (!isxdigit((unsigned char)s[3 * i]) || !isxdigit((unsigned char)s[3 * i + 1]))
			return -1;
		if (i < 5 && s[3 * i + 2] != ':')
			return -1;
	}
	if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3],
		   &b[4], &b[5], &tail) != 6)
		return -1;
	for (i = 0; i < 6; i++)
		mac[i] = (unsigned char)b[i];
	return 0;
}

void brisk_format_mac(const unsigned char *mac, size_t len, char *out)
{
	size_t i;
	static const char hex[] = "0123456789abcdef";

	for (i = 0; i < len; i++) {
		*out++ = hex[mac[i] >> 4];
		*out++ = hex[mac[i] & 15];
		if (i + 1 < len)
			*out++ = ':';
	}
	*out = '\0';
}

void brisk_setint(lua_State *L, const char *k, lua_Integer v)
{
	lua_pushinteger(L, v);
	lua_setfield(L, -2, k);
}

void brisk_setstr(lua_State *L, const char *k, const char *v)
{
	lua_pushstring(L, v);
	lua_setfield(L, -2, k);
}

void brisk_setbool(lua_State *L, const char *k, int v)
{
	lua_pushboolean(L, v);
	lua_setfield(L, -2, k);
}

static const luaL_Reg nl_mod[] = {
	{ "open", l_open },
	{ NULL, NULL }
};

static const luaL_Reg nl_meth[] = {
	{ "close", l_close },
	{ "netns_fd", l_netns_fd },
	{ NULL, NULL }
};

void brisk_open_nl(lua_State *L, int mod, int meth)
{
	lua_pushvalue(L, mod);
	luaL_setfuncs(L, nl_mod, 0);
	lua_pop(L, 1);
	lua_pushvalue(L, meth);
	luaL_setfuncs(L, nl_meth, 0);
	lua_pop(L, 1);
	/* metamethods live on the metatable itself */
	luaL_getmetatable(L, BRISK_NL_MT);
	lua_pushcfunction(L, l_close);
	lua_setfield(L, -2, "__gc");
	lua_pushcfunction(L, l_close);
	lua_setfield(L, -2, "__close");
	lua_pushcfunction(L, l_tostring);
	lua_setfield(L, -2, "__tostring");
	lua_pop(L, 1);
}
