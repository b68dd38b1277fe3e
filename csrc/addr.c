/***
 * addr.c - interface addresses: h:addr_list, h:addr_add, h:addr_del.
 *
 * Result tables use the keys of the addr_info entries of `ip -j addr show`
 * (plus ifindex and dev), so they compare directly with iproute2's view.
 * Also home of the helpers route.c shares: link fields, families, scopes,
 * ifindex-to-name resolution.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <linux/if_addr.h>
#include <linux/rtnetlink.h>
#include "brisk.h"

/* --- arguments shared with route.c --- */

int brisk_field_link(lua_State *L, int t, const char *k, bool required, char *label, size_t len)
{
	int ty = brisk_rawfield(L, t, k);

	switch (ty) {
	case LUA_TNIL:
		if (required)
			luaL_error(L, "field '%s' is required", k);
		lua_pop(L, 1);
		snprintf(label, len, "%s", "");
		return 0;
	case LUA_TSTRING:
		snprintf(label, len, "%s", lua_tostring(L, -1));
		break;
	case LUA_TNUMBER: {
		int isint;
		lua_Integer i = lua_tointegerx(L, -1, &isint);
		if (!isint)
			luaL_error(L, "field '%s' must be an integer ifindex (got a float)", k);
		snprintf(label, len, "%lld", (long long)i);
		break;
	}
	case LUA_TTABLE:
		if (brisk_rawfield(L, -1, "ifname") == LUA_TSTRING)
			snprintf(label, len, "%s", lua_tostring(L, -1));
		else
			snprintf(label, len, "%s", "?");
		lua_pop(L, 1);
		break;
	default:
		luaL_error(L, "field '%s' must be a link name, an ifindex or a link table (got %s)",
			   k, lua_typename(L, ty));
	}
	return lua_gettop(L);
}

int brisk_optfamily(lua_State *L, int t, const char *k)
{
	const char *s = brisk_optstring(L, t, k, NULL);

	if (!s)
		return 0;
	if (!strcmp(s, "inet"))
		return AF_INET;
	if (!strcmp(s, "inet6"))
		return AF_INET6;
	return luaL_error(L, "field '%s' must be \"inet\" or \"inet6\" (got '%s')", k, s);
}

int brisk_dump_gave_up(struct brisk_nl *h)
{
	h->err = EAGAIN;
	snprintf(h->ext, sizeof(h->ext), "dump interrupted %d times", BRISK_DUMP_TRIES);
	return -1;
}

static void no_extra(lua_State *L, int n)
{
	if (lua_gettop(L) > n)
		luaL_argerror(L, n + 1, "no more arguments expected");
}

/* nil, "<op> <obj>: <fmt with arg>", EINVAL: bad input, nothing sent. */
static int bad_input(lua_State *L, const char *op, const char *obj, const char *fmt,
		     const char *arg)
{
	return brisk_failmsg(L, op, obj, EINVAL, lua_pushfstring(L, fmt, arg));
}

/* --- scopes --- */

static const struct { const char *name; unsigned int value; } scopes[] = {
	{ "global", RT_SCOPE_UNIVERSE },
	{ "site", RT_SCOPE_SITE },
	{ "link", RT_SCOPE_LINK },
	{ "host", RT_SCOPE_HOST },
	{ "nowhere", RT_SCOPE_NOWHERE },
	{ NULL, 0 }
};

const char *brisk_scope_name(unsigned int scope, char *buf)
{
	int i;

	for (i = 0; scopes[i].name; i++)
		if (scopes[i].value == scope)
			return scopes[i].name;
	snprintf(buf, 16, "%u", scope);
	return buf;
}

int brisk_optscope(lua_State *L, int t, const char *k, int def)
{
	int i, v = def, ty = brisk_rawfield(L, t, k);

	if (ty == LUA_TSTRING) {
		const char *s = lua_tostring(L, -1);
		for (i = 0; scopes[i].name; i++)
			if (!strcmp(s, scopes[i].name))
				break;
		if (!scopes[i].name)
			luaL_error(L, "field '%s': unknown scope '%s'", k, s);
		v = (int)scopes[i].value;
	} else if (ty == LUA_TNUMBER && lua_isinteger(L, -1)) {
		lua_Integer n = lua_tointeger(L, -1);
		if (n < 0 || n > 255)
			luaL_error(L, "field '%s' must be 0..255", k);
		v = (int)n;
	} else if (ty != LUA_TNIL) {
		luaL_error(L, "field '%s' must be a scope name or number (got %s)", k,
			   lua_typename(L, ty));
	}
	lua_pop(L, 1);
	return v;
}

/* --- ifindex to name --- */

static int name_attr_cb(const struct nlattr *attr, void *data)
{
	const struct nlattr **name = data;

	if (mnl_attr_get_type(attr) == IFLA_IFNAME &&
	    mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) >= 0)
		*name = attr;
	return MNL_CB_OK;
}

struct name_ctx {
	char *name;
	bool found;
};

static int name_msg_cb(const struct nlmsghdr *nlh, void *data)
{
	struct name_ctx *c = data;
	const struct nlattr *name = NULL;

	if (nlh->nlmsg_type != RTM_NEWLINK ||
	    mnl_nlmsg_get_payload_len(nlh) < sizeof(struct ifinfomsg))
		return MNL_CB_OK;
	if (mnl_attr_parse(nlh, sizeof(struct ifinfomsg), name_attr_cb, &name) < 0 || !name)
		return MNL_CB_OK;
	snprintf(c->name, IFNAMSIZ, "%s", mnl_attr_get_str(name));
	c->found = true;
	return MNL_CB_OK;
}

int brisk_ifindex_name(struct brisk_nl *h, int ifindex, char *name)
{
	struct name_ctx c = { name, false };
	struct nlmsghdr *nlh = brisk_msg(h, RTM_GETLINK, NLM_F_ACK);
	struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));

	ifm->ifi_family = AF_UNSPEC;
	ifm->ifi_index = ifindex;
	mnl_attr_put_u32_check(nlh, BRISK_BUFSZ, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
	if (brisk_talk(h, nlh, name_msg_cb, &c) < 0)
		return -1;
	if (!c.found) {
		h->err = ENODEV;
		return -1;
	}
	return 0;
}

int brisk_fill_devnames(lua_State *L, struct brisk_nl *h, int list, const char *from, const char *to)
{
	char name[IFNAMSIZ];
	lua_Integer i, n, ifindex;
	int cache;

	list = lua_absindex(L, list);
	luaL_checkstack(L, 6, NULL);
	lua_newtable(L);
	cache = lua_gettop(L);
	n = (lua_Integer)lua_rawlen(L, list);
	for (i = 1; i <= n; i++) {
		lua_rawgeti(L, list, i);
		if (brisk_rawfield(L, -1, from) == LUA_TNUMBER && lua_isinteger(L, -1)) {
			ifindex = lua_tointeger(L, -1);
			if (lua_rawgeti(L, cache, ifindex) != LUA_TSTRING) {
				lua_pop(L, 1);
				if (ifindex <= 0 || ifindex > INT32_MAX ||
				    brisk_ifindex_name(h, (int)ifindex, name) < 0) {
					if (ifindex > 0 && h->err != ENODEV) {
						lua_settop(L, cache - 1);
						return -1;
					}
					snprintf(name, sizeof(name), "if%lld", (long long)ifindex);
				}
				lua_pushstring(L, name);
				lua_pushvalue(L, -1);
				lua_rawseti(L, cache, ifindex);
			}
			lua_setfield(L, -3, to);
		}
		lua_pop(L, 2);
	}
	lua_pop(L, 1);
	return 0;
}

/* --- reading addresses --- */

static int addr_attr_cb(const struct nlattr *attr, void *data)
{
	const struct nlattr **tb = data;
	int type = mnl_attr_get_type(attr);

	if (mnl_attr_type_valid(attr, IFA_MAX) < 0)
		return MNL_CB_OK;               /* newer than our headers */
	switch (type) {
	case IFA_ADDRESS:
	case IFA_LOCAL:
	case IFA_BROADCAST:
		break;                          /* length checked against the family */
	case IFA_LABEL:
		if (mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) < 0)
			return MNL_CB_OK;
		break;
	case IFA_CACHEINFO:
		if (mnl_attr_validate2(attr, MNL_TYPE_UNSPEC, sizeof(struct ifa_cacheinfo)) < 0)
			return MNL_CB_OK;
		break;
	case IFA_FLAGS:
	case IFA_RT_PRIORITY:
		if (mnl_attr_validate(attr, MNL_TYPE_U32) < 0)
			return MNL_CB_OK;
		break;
	default:
		return MNL_CB_OK;
	}
	tb[type] = attr;
	return MNL_CB_OK;
}

/* Copy the payload of `attr` (which may be NULL) into `out` when it is
 * exactly `alen` bytes long; returns whether it did. */
bool brisk_attr_addr(const struct nlattr *attr, size_t alen, unsigned char *out)
{
	if (!attr || mnl_attr_get_payload_len(attr) != alen)
		return false;
	memcpy(out, mnl_attr_get_payload(attr), alen);
	return true;
}

struct addr_dump {
	int family, ifindex;
	brisk_addr_fn fn;
	void *ud;
};

static int addr_msg_cb(const struct nlmsghdr *nlh, void *data)
{
	struct addr_dump *d = data;
	const struct nlattr *tb[IFA_MAX + 1] = { NULL };
	const struct ifaddrmsg *ifa;
	struct brisk_addr a;
	unsigned char other[16];
	size_t alen;

	if (nlh->nlmsg_type != RTM_NEWADDR ||
	    mnl_nlmsg_get_payload_len(nlh) < sizeof(*ifa))
		return MNL_CB_OK;
	ifa = mnl_nlmsg_get_payload(nlh);
	if (ifa->ifa_family == AF_INET)
		alen = 4;
	else if (ifa->ifa_family == AF_INET6)
		alen = 16;
	else
		return MNL_CB_OK;
	/* The kernel filters already (strict check); old kernels do not. */
	if ((d->family && ifa->ifa_family != d->family) ||
	    (d->ifindex && (int)ifa->ifa_index != d->ifindex))
		return MNL_CB_OK;
	if (mnl_attr_parse(nlh, sizeof(*ifa), addr_attr_cb, tb) < 0)
		return MNL_CB_OK;
	memset(&a, 0, sizeof(a));
	a.family = ifa->ifa_family;
	a.ifindex = (int)ifa->ifa_index;
	a.prefixlen = ifa->ifa_prefixlen;
	a.scope = ifa->ifa_scope;
	a.flags = tb[IFA_FLAGS] ? mnl_attr_get_u32(tb[IFA_FLAGS]) : ifa->ifa_flags;
	if (brisk_attr_addr(tb[IFA_LOCAL], alen, a.local)) {
		if (brisk_attr_addr(tb[IFA_ADDRESS], alen, other) && memcmp(other, a.local, alen)) {
			memcpy(a.peer, other, alen);
			a.has_peer = true;
		}
	} else if (!brisk_attr_addr(tb[IFA_ADDRESS], alen, a.local)) {
		return MNL_CB_OK;               /* no address at all */
	}
	if (a.family == AF_INET && brisk_attr_addr(tb[IFA_BROADCAST], 4, a.broadcast))
		a.has_broadcast = true;
	if (tb[IFA_LABEL])
		snprintf(a.label, sizeof(a.label), "%s", mnl_attr_get_str(tb[IFA_LABEL]));
	if (tb[IFA_CACHEINFO]) {
		const struct ifa_cacheinfo *ci = mnl_attr_get_payload(tb[IFA_CACHEINFO]);
		a.valid_lft = ci->ifa_valid;
		a.preferred_lft = ci->ifa_prefered;
		a.has_lifetime = true;
	}
	if (tb[IFA_RT_PRIORITY]) {
		a.metric = mnl_attr_get_u32(tb[IFA_RT_PRIORITY]);
		a.has_metric = true;
	}
	d->fn(&a, d->ud);
	return MNL_CB_OK;
}

int brisk_addr_dump(struct brisk_nl *h, int family, int ifindex, brisk_addr_fn fn, void *ud)
{
	struct addr_dump d = { family, ifindex, fn, ud };
	struct nlmsghdr *nlh = brisk_msg(h, RTM_GETADDR, NLM_F_DUMP);
	struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));

	ifa->ifa_family = (unsigned char)family;
	ifa->ifa_index = (unsigned int)ifindex;
	return brisk_talk(h, nlh, addr_msg_cb, &d);
}

/* iproute2's order and names; IFA_F_PERMANENT is shown inverted as
 * "dynamic", IFA_F_SECONDARY as "temporary" on IPv6. */
static const struct { const char *name; uint32_t mask; } ifa_flags[] = {
	{ "secondary", IFA_F_SECONDARY },
	{ "nodad", IFA_F_NODAD },
	{ "optimistic", IFA_F_OPTIMISTIC },
	{ "dadfailed", IFA_F_DADFAILED },
	{ "home", IFA_F_HOMEADDRESS },
	{ "deprecated", IFA_F_DEPRECATED },
	{ "tentative", IFA_F_TENTATIVE },
	{ "mngtmpaddr", IFA_F_MANAGETEMPADDR },
	{ "noprefixroute", IFA_F_NOPREFIXROUTE },
	{ "autojoin", IFA_F_MCAUTOJOIN },
	{ "stable-privacy", IFA_F_STABLE_PRIVACY },
	{ NULL, 0 }
};

void brisk_addr_push(lua_State *L, const struct brisk_addr *a)
{
	char buf[INET6_ADDRSTRLEN];
	int i;

	luaL_checkstack(L, 3, NULL);
	lua_createtable(L, 0, 12);
	brisk_setstr(L, "family", a->family == AF_INET ? "inet" : "inet6");
	brisk_setstr(L, "local", brisk_ntop(a->family, a->local, buf));
	if (a->has_peer)
		brisk_setstr(L, "address", brisk_ntop(a->family, a->peer, buf));
	brisk_setint(L, "prefixlen", a->prefixlen);
	if (a->has_broadcast)
		brisk_setstr(L, "broadcast", brisk_ntop(AF_INET, a->broadcast, buf));
	brisk_setstr(L, "scope", brisk_scope_name(a->scope, buf));
	if (!(a->flags & IFA_F_PERMANENT))
		brisk_setbool(L, "dynamic", 1);
	for (i = 0; ifa_flags[i].name; i++) {
		if (!(a->flags & ifa_flags[i].mask))
			continue;
		if (ifa_flags[i].mask == IFA_F_SECONDARY && a->family == AF_INET6)
			brisk_setbool(L, "temporary", 1);
		else
			brisk_setbool(L, ifa_flags[i].name, 1);
	}
	if (a->label[0])
		brisk_setstr(L, "label", a->label);
	if (a->has_lifetime) {
		brisk_setint(L, "valid_life_time", a->valid_lft);
		brisk_setint(L, "preferred_life_time", a->preferred_lft);
	}
	if (a->has_metric)
		brisk_setint(L, "metric", a->metric);
	brisk_setint(L, "ifindex", a->ifindex);
}

static void addr_push_cb(const struct brisk_addr *a, void *ud)
{
	struct brisk_list_push *p = ud;

	brisk_addr_push(p->L, a);
	lua_rawseti(p->L, p->list, ++p->n);
}

int brisk_addr_push_list(lua_State *L, struct brisk_nl *h, int family, int ifindex)
{
	struct brisk_list_push p = { L, 0, 0 };
	int tries;

	for (tries = 1;; tries++) {
		lua_newtable(L);
		p.list = lua_gettop(L);
		p.n = 0;
		if (brisk_addr_dump(h, family, ifindex, addr_push_cb, &p) < 0) {
			lua_pop(L, 1);
			return -1;
		}
		if (!h->dump_intr)
			break;
		lua_pop(L, 1);
		if (tries >= BRISK_DUMP_TRIES)
			return brisk_dump_gave_up(h);
	}
	if (brisk_fill_devnames(L, h, p.list, "ifindex", "dev") < 0) {
		lua_pop(L, 1);
		return -1;
	}
	return 0;
}

/* --- changing addresses --- */

int brisk_addr_modify(struct brisk_nl *h, uint16_t cmd, uint16_t flags, const struct brisk_addr *a)
{
	size_t alen = a->family == AF_INET ? 4 : 16;
	struct nlmsghdr *nlh = brisk_msg(h, cmd, flags | NLM_F_ACK);
	struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));

	ifa->ifa_family = (unsigned char)a->family;
	ifa->ifa_prefixlen = (unsigned char)a->prefixlen;
	ifa->ifa_flags = (unsigned char)(a->flags & 0xff);
	ifa->ifa_scope = (unsigned char)a->scope;
	ifa->ifa_index = (unsigned int)a->ifindex;
	mnl_attr_put_check(nlh, BRISK_BUFSZ, IFA_LOCAL, alen, a->local);
	if (a->has_peer)
		mnl_attr_put_check(nlh, BRISK_BUFSZ, IFA_ADDRESS, alen, a->peer);
	else if (!(cmd == RTM_DELADDR && a->wildcard_prefix))
		mnl_attr_put_check(nlh, BRISK_BUFSZ, IFA_ADDRESS, alen, a->local);
	if (cmd == RTM_NEWADDR) {
		if (a->flags & ~0xffu)
			mnl_attr_put_u32_check(nlh, BRISK_BUFSZ, IFA_FLAGS, a->flags);
		if (a->has_broadcast && a->family == AF_INET)
			mnl_attr_put_check(nlh, BRISK_BUFSZ, IFA_BROADCAST, 4, a->broadcast);
		if (a->label[0])
			mnl_attr_put_strz_check(nlh, BRISK_BUFSZ, IFA_LABEL, a->label);
		if (a->has_lifetime) {
			struct ifa_cacheinfo ci;
			memset(&ci, 0, sizeof(ci));
			ci.ifa_valid = a->valid_lft;
			ci.ifa_prefered = a->preferred_lft;
			mnl_attr_put_check(nlh, BRISK_BUFSZ, IFA_CACHEINFO, sizeof(ci), &ci);
		}
		if (a->has_metric)
			mnl_attr_put_u32_check(nlh, BRISK_BUFSZ, IFA_RT_PRIORITY, a->metric);
	}
	return brisk_talk(h, nlh, NULL, NULL);
}

/* --- Lua methods --- */

static const char *required_string(lua_State *L, int t, const char *k)
{
	const char *s = brisk_optstring(L, t, k, NULL);

	if (!s)
		luaL_error(L, "field '%s' is required", k);
	return s;
}

/* Field `k`: an integer 0..2^32-1, or -1 when absent. */
static lua_Integer opt_u32(lua_State *L, int t, const char *k)
{
	lua_Integer v;
	bool absent = brisk_rawfield(L, t, k) == LUA_TNIL;

	lua_pop(L, 1);
	if (absent)
		return -1;
	v = brisk_optinteger(L, t, k, 0);
	if (v < 0 || v > (lua_Integer)UINT32_MAX)
		luaL_error(L, "field '%s' must be 0..4294967295", k);
	return v;
}

/***
 * The addresses of one link or of all links.
 * @function nl:addr_list
 * @tparam[opt] table opts `dev` (name, ifindex or link table), `family`
 *   ("inet" or "inet6"; default both)
 * @return array of tables with the keys of `ip -j addr show`'s addr_info
 *   entries (family, local, address (peer), prefixlen, broadcast, scope,
 *   dynamic, secondary, temporary, nodad, tentative, deprecated,
 *   noprefixroute, ..., label, valid_life_time, preferred_life_time,
 *   metric) plus ifindex and dev; in kernel order (IPv4 first)
 * @return[2] nil, "addr_list <dev>: <strerror>", errno (ENODEV for a
 *   missing dev, EINVAL/ENAMETOOLONG for a malformed name)
 */
static int l_addr_list(lua_State *L)
{
	static const char *const keys[] = { "dev", "family", NULL };
	struct brisk_nl *h = brisk_checknl(L, 1);
	char label[64] = "";
	int family = 0, ifindex = 0, dev;

	no_extra(L, 2);
	if (!lua_isnoneornil(L, 2)) {
		luaL_checktype(L, 2, LUA_TTABLE);
		brisk_checkkeys(L, 2, "addr_list", keys);
		family = brisk_optfamily(L, 2, "family");
		dev = brisk_field_link(L, 2, "dev", false, label, sizeof(label));
		if (dev) {
			ifindex = brisk_link_index(L, h, dev, label, sizeof(label));
			if (ifindex <= 0)
				return brisk_nlfail(L, h, "addr_list", label);
		}
	}
	if (brisk_addr_push_list(L, h, family, ifindex) < 0)
		return brisk_nlfail(L, h, "addr_list", label);
	return 1;
}

/* Parse `s` as an address with an optional prefix length into `a`
 * (family, local, prefixlen). Returns false when invalid. */
static bool parse_local(const char *s, struct brisk_addr *a, bool *had_plen)
{
	int plen;

	a->family = brisk_parse_prefix(s, a->local, &plen);
	if (!a->family)
		return false;
	*had_plen = plen >= 0;
	a->prefixlen = plen >= 0 ? (unsigned int)plen : a->family == AF_INET ? 32 : 128;
	return true;
}

/***
 * Add an address to a link (`ip addr add`, or `ip addr replace`).
 * @function nl:addr_add
 * @tparam table opts `dev` (required: name, ifindex or link table),
 *   `address` (required: "10.0.0.1/24", "2001:db8::1/64"; no prefix means
 *   /32 or /128), `broadcast` (IPv4: an address, or true to derive it from
 *   the prefix like `brd +`; nothing for /31 and /32), `nodad`,
 *   `noprefixroute` (booleans), `scope` (name or number; default global,
 *   host for 127/8), `label` (IPv4), `valid_lft`, `preferred_lft` (seconds;
 *   default forever; preferred defaults to valid), `metric` (of the prefix
 *   route), `replace` (boolean: NLM_F_REPLACE instead of NLM_F_EXCL)
 * @return true
 * @return[2] nil, "addr_add <dev>: invalid address 'x'", EINVAL for bad
 *   input (nothing is sent); nil, "addr_add <dev> <address>: <strerror>
 *   (kernel: ...)", errno (EEXIST for a duplicate, ENODEV for a missing dev)
 */
static int l_addr_add(lua_State *L)
{
	static const char *const keys[] = { "dev", "address", "broadcast", "nodad",
		"noprefixroute", "scope", "label", "replace", "valid_lft", "preferred_lft",
		"metric", NULL };
	struct brisk_nl *h = brisk_checknl(L, 1);
	struct brisk_addr a;
	char label[64], obj[160];
	const char *addr, *lbl, *brds = NULL;
	lua_Integer valid, preferred, metric;
	int dev, brd = 0, scope, replace;
	bool had_plen;

	luaL_checktype(L, 2, LUA_TTABLE);
	no_extra(L, 2);
	brisk_checkkeys(L, 2, "addr_add", keys);
	memset(&a, 0, sizeof(a));
	addr = required_string(L, 2, "address");
	switch (brisk_rawfield(L, 2, "broadcast")) {
	case LUA_TNIL:
		break;
	case LUA_TBOOLEAN:
		brd = lua_toboolean(L, -1);
		break;
	case LUA_TSTRING:
		brd = 2;
		brds = lua_tostring(L, -1);
		break;
	default:
		luaL_error(L, "field 'broadcast' must be an address or true (got %s)",
			   luaL_typename(L, -1));
	}
	lua_pop(L, 1);
	if (brisk_optboolean(L, 2, "nodad", 0))
		a.flags |= IFA_F_NODAD;
	if (brisk_optboolean(L, 2, "noprefixroute", 0))
		a.flags |= IFA_F_NOPREFIXROUTE;
	replace = brisk_optboolean(L, 2, "replace", 0);
	scope = brisk_optscope(L, 2, "scope", -1);
	lbl = brisk_optstring(L, 2, "label", NULL);
	valid = opt_u32(L, 2, "valid_lft");
	preferred = opt_u32(L, 2, "preferred_lft");
	metric = opt_u32(L, 2, "metric");
	dev = brisk_field_link(L, 2, "dev", true, label, sizeof(label));

	/* Bad input is answered before anything is sent. */
	if (!parse_local(addr, &a, &had_plen))
		return bad_input(L, "addr_add", label, "invalid address '%s'", addr);
	if (brd && a.family != AF_INET)
		return brisk_failmsg(L, "addr_add", label, EINVAL, "broadcast is IPv4 only");
	if (brd == 2) {
		unsigned char tmp[16];
		int blen;
		if (brisk_parse_prefix(brds, tmp, &blen) != AF_INET || blen >= 0)
			return bad_input(L, "addr_add", label, "invalid broadcast '%s'", brds);
		memcpy(a.broadcast, tmp, 4);
		a.has_broadcast = true;
	} else if (brd && a.prefixlen <= 30) {
		uint32_t ip, host = a.prefixlen ? 0xffffffffu >> a.prefixlen : 0xffffffffu;
		memcpy(&ip, a.local, 4);
		ip |= htonl(host);
		memcpy(a.broadcast, &ip, 4);
		a.has_broadcast = true;
	}
	if (lbl) {
		if (a.family != AF_INET)
			return brisk_failmsg(L, "addr_add", label, EINVAL, "a label is IPv4 only");
		if (!*lbl || strlen(lbl) >= IFNAMSIZ)
			return bad_input(L, "addr_add", label, "invalid label '%s'", lbl);
		snprintf(a.label, sizeof(a.label), "%s", lbl);
	}
	if (scope >= 0)
		a.scope = (unsigned int)scope;
	else if (a.family == AF_INET && a.local[0] == 127)
		a.scope = RT_SCOPE_HOST;
	if (valid >= 0 || preferred >= 0) {
		a.has_lifetime = true;
		a.valid_lft = valid >= 0 ? (uint32_t)valid : 0xffffffffu;
		a.preferred_lft = preferred >= 0 ? (uint32_t)preferred : a.valid_lft;
	}
	if (metric >= 0) {
		a.metric = (uint32_t)metric;
		a.has_metric = true;
	}

	a.ifindex = brisk_link_index(L, h, dev, label, sizeof(label));
	if (a.ifindex <= 0)
		return brisk_nlfail(L, h, "addr_add", label);
	snprintf(obj, sizeof(obj), "%s %s", label, addr);
	if (brisk_addr_modify(h, RTM_NEWADDR,
			      NLM_F_CREATE | (replace ? NLM_F_REPLACE : NLM_F_EXCL), &a) < 0)
		return brisk_nlfail(L, h, "addr_add", obj);
	lua_pushboolean(L, 1);
	return 1;
}

/***
 * Remove an address from a link (`ip addr del`).
 * @function nl:addr_del
 * @tparam table opts `dev` (required), `address` (required; an IPv4
 *   address without a prefix length matches any, IPv6 needs the exact one)
 * @return true
 * @return[2] nil, "addr_del <dev>: invalid address 'x'", EINVAL (nothing
 *   sent); nil, "addr_del <dev> <address>: <strerror> (kernel: ...)", errno
 *   (EADDRNOTAVAIL when the link has no such address, ENODEV)
 */
static int l_addr_del(lua_State *L)
{
	static const char *const keys[] = { "dev", "address", NULL };
	struct brisk_nl *h = brisk_checknl(L, 1);
	struct brisk_addr a;
	char label[64], obj[160];
	const char *addr;
	bool had_plen;
	int dev;

	luaL_checktype(L, 2, LUA_TTABLE);
	no_extra(L, 2);
	brisk_checkkeys(L, 2, "addr_del", keys);
	memset(&a, 0, sizeof(a));
	addr = required_string(L, 2, "address");
	dev = brisk_field_link(L, 2, "dev", true, label, sizeof(label));
	if (!parse_local(addr, &a, &had_plen))
		return bad_input(L, "addr_del", label, "invalid address '%s'", addr);
	a.wildcard_prefix = !had_plen && a.family == AF_INET;

	a.ifindex = brisk_link_index(L, h, dev, label, sizeof(label));
	if (a.ifindex <= 0)
		return brisk_nlfail(L, h, "addr_del", label);
	snprintf(obj, sizeof(obj), "%s %s", label, addr);
	if (brisk_addr_modify(h, RTM_DELADDR, 0, &a) < 0)
		return brisk_nlfail(L, h, "addr_del", obj);
	lua_pushboolean(L, 1);
	return 1;
}

static const luaL_Reg addr_meth[] = {
	{ "addr_list", l_addr_list },
	{ "addr_add", l_addr_add },
	{ "addr_del", l_addr_del },
	{ NULL, NULL }
};

void brisk_open_addr(lua_State *L, int mod, int meth)
{
	(void)mod;
	lua_pushvalue(L, meth);
	luaL_setfuncs(L, addr_meth, 0);
	lua_pop(L, 1);
}
