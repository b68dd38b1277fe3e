/***
 * route.c - routes: h:route_list, h:route_add, h:route_replace, h:route_del.
 *
 * Result tables use the keys of `ip -j route show`, so they compare
 * directly with iproute2's view. Requests are built the way `ip route`
 * builds them (same defaults for protocol, scope, type and table).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <linux/icmpv6.h>
#include <linux/rtnetlink.h>
#include "brisk.h"

struct name_val {
	const char *name;
	unsigned int value;
};

/* /etc/iproute2/rt_protos, rt_tables; rtnl_rtntype_n2a. */
static const struct name_val protocols[] = {
	{ "unspec", RTPROT_UNSPEC }, { "redirect", RTPROT_REDIRECT },
	{ "kernel", RTPROT_KERNEL }, { "boot", RTPROT_BOOT },
	{ "static", RTPROT_STATIC }, { "gated", RTPROT_GATED }, { "ra", RTPROT_RA },
	{ "mrt", RTPROT_MRT }, { "zebra", RTPROT_ZEBRA }, { "bird", RTPROT_BIRD },
	{ "dnrouted", RTPROT_DNROUTED }, { "xorp", RTPROT_XORP }, { "ntk", RTPROT_NTK },
	{ "dhcp", RTPROT_DHCP }, { "keepalived", 18 }, { "babel", 42 },
	{ "openr", 99 }, { "bgp", 186 }, { "isis", 187 }, { "ospf", 188 },
	{ "rip", 189 }, { "eigrp", 192 },
	{ NULL, 0 }
};

static const struct name_val tables[] = {
	{ "main", RT_TABLE_MAIN }, { "local", RT_TABLE_LOCAL },
	{ "default", RT_TABLE_DEFAULT },
	{ NULL, 0 }
};

static const struct name_val types[] = {
	{ "unspec", RTN_UNSPEC }, { "unicast", RTN_UNICAST }, { "local", RTN_LOCAL },
	{ "broadcast", RTN_BROADCAST }, { "anycast", RTN_ANYCAST },
	{ "multicast", RTN_MULTICAST }, { "blackhole", RTN_BLACKHOLE },
	{ "unreachable", RTN_UNREACHABLE }, { "prohibit", RTN_PROHIBIT },
	{ "throw", RTN_THROW }, { "nat", RTN_NAT }, { "xresolve", RTN_XRESOLVE },
	{ NULL, 0 }
};

/* iproute2's print_rt_flags, in its order. */
static const struct name_val rt_flags[] = {
	{ "dead", RTNH_F_DEAD }, { "onlink", RTNH_F_ONLINK },
	{ "pervasive", RTNH_F_PERVASIVE }, { "offload", RTNH_F_OFFLOAD },
	{ "trap", RTNH_F_TRAP }, { "notify", RTM_F_NOTIFY },
	{ "linkdown", RTNH_F_LINKDOWN }, { "unresolved", RTNH_F_UNRESOLVED },
	{ "rt_offload", RTM_F_OFFLOAD }, { "rt_trap", RTM_F_TRAP },
	{ "rt_offload_failed", RTM_F_OFFLOAD_FAILED },
	{ NULL, 0 }
};

static const char *name_of(const struct name_val *t, unsigned int v, char *buf)
{
	int i;

	for (i = 0; t[i].name; i++)
		if (t[i].value == v)
			return t[i].name;
	snprintf(buf, 16, "%u", v);
	return buf;
}

static int value_of(const struct name_val *t, const char *s, unsigned int *v)
{
	int i;

	for (i = 0; t[i].name; i++) {
		if (!strcmp(t[i].name, s)) {
			*v = t[i].value;
			return 0;
		}
	}
	return -1;
}

static void no_extra(lua_State *L, int n)
{
	if (lua_gettop(L) > n)
		luaL_argerror(L, n + 1, "no more arguments expected");
}

/* Field `k`: a name of `t` or an integer in 0..max; `def` when absent. */
static lua_Integer opt_named(lua_State *L, int t, const char *k, const struct name_val *names,
			     lua_Integer max, lua_Integer def)
{
	lua_Integer v = def;
	unsigned int u = 0;
	int ty = brisk_rawfield(L, t, k);

	if (ty == LUA_TSTRING) {
		if (value_of(names, lua_tostring(L, -1), &u) < 0)
			luaL_error(L, "field '%s': unknown name '%s'", k, lua_tostring(L, -1));
		v = u;
	} else if (ty == LUA_TNUMBER && lua_isinteger(L, -1)) {
		v = lua_tointeger(L, -1);
		if (v < 0 || v > max)
			luaL_error(L, "field '%s' must be 0..%I", k, max);
	} else if (ty != LUA_TNIL) {
		luaL_error(L, "field '%s' must be a name or a number (got %s)", k,
			   lua_typename(L, ty));
	}
	lua_pop(L, 1);
	return v;
}

/* Field "table": a number 1..2^32-1, "main", "local", "default", a number
 * as a string (as `ip -j` prints it), or with `all` "all" (-> 0). */
static uint32_t opt_table(lua_State *L, int t, bool all)
{
	lua_Integer v = RT_TABLE_MAIN;
	unsigned int u = 0;
	int ty = brisk_rawfield(L, t, "table");

	if (ty == LUA_TSTRING) {
		const char *s = lua_tostring(L, -1);
		char *end;
		if (all && !strcmp(s, "all")) {
			v = 0;
		} else if (value_of(tables, s, &u) == 0) {
			v = u;
		} else {
			errno = 0;
			v = (lua_Integer)strtoul(s, &end, 10);
			if (!*s || *end || errno || *s == '-' || *s == '+')
				v = -1;
		}
	} else if (ty == LUA_TNUMBER && lua_isinteger(L, -1)) {
		v = lua_tointeger(L, -1);
	} else if (ty != LUA_TNIL) {
		luaL_error(L, "field 'table' must be a table number or name (got %s)",
			   lua_typename(L, ty));
	}
	if (v < (all ? 0 : 1) || v > (lua_Integer)UINT32_MAX)
		luaL_error(L, "field 'table' must be 1..4294967295, \"main\", \"local\", "
			   "\"default\"%s", all ? " or \"all\"" : "");
	lua_pop(L, 1);
	return (uint32_t)v;
}

/* --- reading routes --- */

static int route_attr_cb(const struct nlattr *attr, void *data)
{
	const struct nlattr **tb = data;
	int type = mnl_attr_get_type(attr);

	if (mnl_attr_type_valid(attr, RTA_MAX) < 0)
		return MNL_CB_OK;               /* newer than our headers */
	switch (type) {
	case RTA_DST:
	case RTA_SRC:
	case RTA_GATEWAY:
	case RTA_PREFSRC:
		break;                          /* length checked against the family */
	case RTA_OIF:
	case RTA_PRIORITY:
	case RTA_TABLE:
	case RTA_NH_ID:
		if (mnl_attr_validate(attr, MNL_TYPE_U32) < 0)
			return MNL_CB_OK;
		break;
	case RTA_PREF:
		if (mnl_attr_validate(attr, MNL_TYPE_U8) < 0)
			return MNL_CB_OK;
		break;
	case RTA_CACHEINFO:
		if (mnl_attr_validate2(attr, MNL_TYPE_UNSPEC, sizeof(struct rta_cacheinfo)) < 0)
			return MNL_CB_OK;
		break;
	default:
		return MNL_CB_OK;
	}
	tb[type] = attr;
	return MNL_CB_OK;
}

struct route_dump {
	int family, oif;
	uint32_t table;
	long hz;
	brisk_route_fn fn;
	void *ud;
};

static int route_msg_cb(const struct nlmsghdr *nlh, void *data)
{
	struct route_dump *d = data;
	const struct nlattr *tb[RTA_MAX + 1] = { NULL };
	const struct rtmsg *rtm;
	struct brisk_route r;
	size_t alen;

	if (nlh->nlmsg_type != RTM_NEWROUTE ||
	    mnl_nlmsg_get_payload_len(nlh) < sizeof(*rtm))
		return MNL_CB_OK;
	rtm = mnl_nlmsg_get_payload(nlh);
	if (rtm->rtm_family != d->family || (rtm->rtm_flags & RTM_F_CLONED))
		return MNL_CB_OK;
	alen = rtm->rtm_family == AF_INET ? 4 : 16;
	if (mnl_attr_parse(nlh, sizeof(*rtm), route_attr_cb, tb) < 0)
		return MNL_CB_OK;
	memset(&r, 0, sizeof(r));
	r.family = rtm->rtm_family;
	r.dst_len = rtm->rtm_dst_len;
	r.src_len = rtm->rtm_src_len;
	r.tos = rtm->rtm_tos;
	r.protocol = rtm->rtm_protocol;
	r.scope = rtm->rtm_scope;
	r.type = rtm->rtm_type;
	r.flags = rtm->rtm_flags;
	r.table = tb[RTA_TABLE] ? mnl_attr_get_u32(tb[RTA_TABLE]) : rtm->rtm_table;
	/* The kernel filters already (strict check); old kernels do not. */
	if (d->table && r.table != d->table)
		return MNL_CB_OK;
	r.has_dst = brisk_attr_addr(tb[RTA_DST], alen, r.dst);
	r.has_src = brisk_attr_addr(tb[RTA_SRC], alen, r.src);
	r.has_gateway = brisk_attr_addr(tb[RTA_GATEWAY], alen, r.gateway);
	r.has_prefsrc = brisk_attr_addr(tb[RTA_PREFSRC], alen, r.prefsrc);
	if (tb[RTA_OIF])
		r.oif = (int)mnl_attr_get_u32(tb[RTA_OIF]);
	if (d->oif && r.oif != d->oif)
		return MNL_CB_OK;
	if (tb[RTA_PRIORITY]) {
		r.metric = mnl_attr_get_u32(tb[RTA_PRIORITY]);
		r.has_metric = true;
	}
	if (tb[RTA_PREF]) {
		r.pref = mnl_attr_get_u8(tb[RTA_PREF]);
		r.has_pref = true;
	}
	if (tb[RTA_NH_ID]) {
		r.nhid = mnl_attr_get_u32(tb[RTA_NH_ID]);
		r.has_nhid = true;
	}
	if (tb[RTA_CACHEINFO]) {
		const struct rta_cacheinfo *ci = mnl_attr_get_payload(tb[RTA_CACHEINFO]);
		r.expires = (uint32_t)(ci->rta_expires / d->hz);
	}
	d->fn(&r, d->ud);
	return MNL_CB_OK;
}

int brisk_route_dump(struct brisk_nl *h, int family, uint32_t table, int oif, brisk_route_fn fn, void *ud)
{
	struct route_dump d = { family, oif, table, sysconf(_SC_CLK_TCK), fn, ud };
	struct nlmsghdr *nlh = brisk_msg(h, RTM_GETROUTE, NLM_F_DUMP);
	struct rtmsg *rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));

	if (d.hz <= 0)
		d.hz = 100;
	rtm->rtm_family = (unsigned char)family;
	if (table)
		mnl_attr_put_u32_check(nlh, BRISK_BUFSZ, RTA_TABLE, table);
	if (oif)
		mnl_attr_put_u32_check(nlh, BRISK_BUFSZ, RTA_OIF, (uint32_t)oif);
	if (brisk_talk(h, nlh, route_msg_cb, &d) < 0) {
		/* A table nobody has created yet is simply empty. */
		if (h->err == ENOENT && table) {
			h->err = 0;
			h->ext[0] = '\0';
			return 0;
		}
		return -1;
	}
	return 0;
}

void brisk_route_push(lua_State *L, const struct brisk_route *r)
{
	char buf[INET6_ADDRSTRLEN + 8], a[INET6_ADDRSTRLEN];
	unsigned int host = r->family == AF_INET ? 32 : 128;
	lua_Integer n = 0;
	int i;

	luaL_checkstack(L, 4, NULL);
	lua_createtable(L, 0, 12);
	if (r->type != RTN_UNICAST)
		brisk_setstr(L, "type", name_of(types, r->type, buf));
	if (r->has_dst) {
		brisk_ntop(r->family, r->dst, a);
		if (r->dst_len != host)
			snprintf(buf, sizeof(buf), "%s/%u", a, r->dst_len);
		else
			snprintf(buf, sizeof(buf), "%s", a);
		brisk_setstr(L, "dst", buf);
	} else if (r->dst_len) {
		snprintf(buf, sizeof(buf), "0/%u", r->dst_len);
		brisk_setstr(L, "dst", buf);
	} else {
		brisk_setstr(L, "dst", "default");
	}
	if (r->has_src) {
		brisk_ntop(r->family, r->src, a);
		if (r->src_len != host)
			snprintf(buf, sizeof(buf), "%s/%u", a, r->src_len);
		else
			snprintf(buf, sizeof(buf), "%s", a);
		brisk_setstr(L, "from", buf);
	}
	if (r->has_nhid)
		brisk_setint(L, "nhid", r->nhid);
	if (r->has_gateway)
		brisk_setstr(L, "gateway", brisk_ntop(r->family, r->gateway, a));
	if (r->oif)
		brisk_setint(L, "dev", r->oif);
	if (r->table != RT_TABLE_MAIN)
		brisk_setstr(L, "table", name_of(tables, r->table, buf));
	if (r->protocol != RTPROT_BOOT)
		brisk_setstr(L, "protocol", name_of(protocols, r->protocol, buf));
	if (r->scope != RT_SCOPE_UNIVERSE)
		brisk_setstr(L, "scope", brisk_scope_name(r->scope, buf));
	if (r->has_prefsrc)
		brisk_setstr(L, "prefsrc", brisk_ntop(r->family, r->prefsrc, a));
	if (r->has_metric)
		brisk_setint(L, "metric", r->metric);
	lua_newtable(L);
	for (i = 0; rt_flags[i].name; i++) {
		if (r->flags & rt_flags[i].value) {
			lua_pushstring(L, rt_flags[i].name);
			lua_rawseti(L, -2, ++n);
		}
	}
	lua_setfield(L, -2, "flags");
	if (r->expires)
		brisk_setint(L, "expires", r->expires);
	if (r->has_pref) {
		switch (r->pref) {
		case ICMPV6_ROUTER_PREF_LOW:
			brisk_setstr(L, "pref", "low");
			break;
		case ICMPV6_ROUTER_PREF_MEDIUM:
			brisk_setstr(L, "pref", "medium");
			break;
		case ICMPV6_ROUTER_PREF_HIGH:
			brisk_setstr(L, "pref", "high");
			break;
		default:
			brisk_setint(L, "pref", r->pref);
		}
	}
}

static void route_push_cb(const struct brisk_route *r, void *ud)
{
	struct brisk_list_push *p = ud;

	brisk_route_push(p->L, r);
	lua_rawseti(p->L, p->list, ++p->n);
}

/* --- changing routes --- */

int brisk_route_modify(struct brisk_nl *h, uint16_t cmd, uint16_t flags, const struct brisk_route *r)
{
	size_t alen = r->family == AF_INET ? 4 : 16;
	struct nlmsghdr *nlh = brisk_msg(h, cmd, flags | NLM_F_ACK);
	struct rtmsg *rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));

	rtm->rtm_family = (unsigned char)r->family;
	rtm->rtm_dst_len = r->dst_len;
	rtm->rtm_src_len = r->src_len;
	rtm->rtm_tos = r->tos;
	rtm->rtm_table = r->table < 256 ? (unsigned char)r->table : RT_TABLE_UNSPEC;
	rtm->rtm_protocol = r->protocol;
	rtm->rtm_scope = r->scope;
	rtm->rtm_type = r->type;
	rtm->rtm_flags = r->flags;
	if (r->has_dst)
		mnl_attr_put_check(nlh, BRISK_BUFSZ, RTA_DST, alen, r->dst);
	if (r->has_src)
		mnl_attr_put_check(nlh, BRISK_BUFSZ, RTA_SRC, alen, r->src);
	if (r->has_gateway)
		mnl_attr_put_check(nlh, BRISK_BUFSZ, RTA_GATEWAY, alen, r->gateway);
	if (r->has_prefsrc)
		mnl_attr_put_check(nlh, BRISK_BUFSZ, RTA_PREFSRC, alen, r->prefsrc);
	if (r->oif)
		mnl_attr_put_u32_check(nlh, BRISK_BUFSZ, RTA_OIF, (uint32_t)r->oif);
	if (r->has_metric)
		mnl_attr_put_u32_check(nlh, BRISK_BUFSZ, RTA_PRIORITY, r->metric);
	if (r->table >= 256)
		mnl_attr_put_u32_check(nlh, BRISK_BUFSZ, RTA_TABLE, r->table);
	if (r->has_pref)
		mnl_attr_put_u8_check(nlh, BRISK_BUFSZ, RTA_PREF, r->pref);
	if (r->has_nhid)
		mnl_attr_put_u32_check(nlh, BRISK_BUFSZ, RTA_NH_ID, r->nhid);
	return brisk_talk(h, nlh, NULL, NULL);
}

/* --- Lua methods --- */

/***
 * The routes of one table (default main), like `ip -j route show`.
 * @function nl:route_list
 * @tparam[opt] table opts `family` ("inet" or "inet6"; default both, IPv4
 *   first), `table` (number, "main", "local", "default" or "all"), `dev`
 *   (only routes through this link)
 * @return array of tables with the keys of `ip -j route show`: type (when
 *   not unicast), dst ("default", "10.0.0.0/24", a host route without /32),
 *   gateway, dev (name), table (when not main; a string as ip prints it),
 *   protocol (when not "boot"), scope (when not global), prefsrc, metric,
 *   flags (array, e.g. {"onlink"}), pref (IPv6), expires, nhid, from
 * @return[2] nil, "route_list <dev>: <strerror>", errno (ENODEV for a
 *   missing dev)
 */
static int l_route_list(lua_State *L)
{
	static const char *const keys[] = { "family", "table", "dev", NULL };
	static const int families[] = { AF_INET, AF_INET6 };
	struct brisk_nl *h = brisk_checknl(L, 1);
	struct brisk_list_push p = { L, 0, 0 };
	char label[64] = "";
	int family = 0, oif = 0, dev, tries, i;
	uint32_t table = RT_TABLE_MAIN;

	no_extra(L, 2);
	if (!lua_isnoneornil(L, 2)) {
		luaL_checktype(L, 2, LUA_TTABLE);
		brisk_checkkeys(L, 2, "route_list", keys);
		family = brisk_optfamily(L, 2, "family");
		table = opt_table(L, 2, true);
		dev = brisk_field_link(L, 2, "dev", false, label, sizeof(label));
		if (dev) {
			oif = brisk_link_index(L, h, dev, label, sizeof(label));
			if (oif <= 0)
				return brisk_nlfail(L, h, "route_list", label);
		}
	}
	for (tries = 1;; tries++) {
		bool intr = false;
		lua_newtable(L);
		p.list = lua_gettop(L);
		p.n = 0;
		for (i = 0; i < 2; i++) {
			if (family && families[i] != family)
				continue;
			if (brisk_route_dump(h, families[i], table, oif, route_push_cb, &p) < 0)
				return brisk_nlfail(L, h, "route_list", label);
			intr = intr || h->dump_intr;
		}
		if (!intr)
			break;
		lua_pop(L, 1);
		if (tries >= BRISK_DUMP_TRIES) {
			brisk_dump_gave_up(h);
			return brisk_nlfail(L, h, "route_list", label);
		}
	}
	if (brisk_fill_devnames(L, h, p.list, "dev", "dev") < 0)
		return brisk_nlfail(L, h, "route_list", label);
	return 1;
}

/* Parse a plain address (no prefix length) into `out`; the family or 0. */
static int parse_host(const char *s, unsigned char *out)
{
	int plen, af = brisk_parse_prefix(s, out, &plen);

	return plen >= 0 ? 0 : af;
}

static int route_modify(lua_State *L, const char *op, uint16_t cmd, uint16_t flags)
{
	static const char *const keys[] = { "dst", "gateway", "dev", "onlink", "table",
		"scope", "metric", "protocol", "prefsrc", "type", "family", NULL };
	struct brisk_nl *h = brisk_checknl(L, 1);
	struct brisk_route r;
	const char *dst, *gw, *src;
	char label[64];
	lua_Integer metric, protocol, type;
	int dev, scope, plen, fam, af;
	bool del = cmd == RTM_DELROUTE;

	luaL_checktype(L, 2, LUA_TTABLE);
	no_extra(L, 2);
	brisk_checkkeys(L, 2, op, keys);
	memset(&r, 0, sizeof(r));
	dst = brisk_optstring(L, 2, "dst", NULL);
	if (!dst)
		luaL_error(L, "field 'dst' is required");
	gw = brisk_optstring(L, 2, "gateway", NULL);
	src = brisk_optstring(L, 2, "prefsrc", NULL);
	fam = brisk_optfamily(L, 2, "family");
	if (brisk_optboolean(L, 2, "onlink", 0))
		r.flags |= RTNH_F_ONLINK;
	r.table = opt_table(L, 2, false);
	scope = brisk_optscope(L, 2, "scope", -1);
	metric = -1;
	if (brisk_rawfield(L, 2, "metric") != LUA_TNIL) {
		metric = brisk_optinteger(L, 2, "metric", 0);
		if (metric < 0 || metric > (lua_Integer)UINT32_MAX)
			luaL_error(L, "field 'metric' must be 0..4294967295");
	}
	lua_pop(L, 1);
	protocol = opt_named(L, 2, "protocol", protocols, 255, del ? RTPROT_UNSPEC : RTPROT_BOOT);
	type = opt_named(L, 2, "type", types, 255, del ? RTN_UNSPEC : RTN_UNICAST);
	dev = brisk_field_link(L, 2, "dev", false, label, sizeof(label));

	/* Bad input is answered before anything is sent. */
	if (strcmp(dst, "default")) {
		af = brisk_parse_prefix(dst, r.dst, &plen);
		if (!af)
			return brisk_failmsg(L, op, dst, EINVAL, "invalid destination");
		if (fam && fam != af)
			return brisk_failmsg(L, op, dst, EINVAL, "destination is not of the given family");
		fam = af;
		r.dst_len = (uint8_t)(plen >= 0 ? plen : af == AF_INET ? 32 : 128);
		r.has_dst = true;
	}
	if (gw) {
		af = parse_host(gw, r.gateway);
		if (!af)
			return brisk_failmsg(L, op, dst, EINVAL,
					     lua_pushfstring(L, "invalid gateway '%s'", gw));
		if (fam && fam != af)
			return brisk_failmsg(L, op, dst, EINVAL,
					     "gateway and destination families differ");
		fam = af;
		r.has_gateway = true;
	}
	if (src) {
		af = parse_host(src, r.prefsrc);
		if (!af)
			return brisk_failmsg(L, op, dst, EINVAL,
					     lua_pushfstring(L, "invalid prefsrc '%s'", src));
		if (fam && fam != af)
			return brisk_failmsg(L, op, dst, EINVAL,
					     "prefsrc and destination families differ");
		fam = af;
		r.has_prefsrc = true;
	}
	r.family = fam ? fam : AF_INET;
	r.protocol = (uint8_t)protocol;
	r.type = (uint8_t)type;
	if (metric >= 0) {
		r.metric = (uint32_t)metric;
		r.has_metric = true;
	}
	/* iproute2's default scope. */
	if (scope >= 0)
		r.scope = (uint8_t)scope;
	else if (del)
		r.scope = RT_SCOPE_NOWHERE;
	else if (r.family == AF_INET6)
		r.scope = RT_SCOPE_UNIVERSE;
	else if (r.type == RTN_LOCAL || r.type == RTN_NAT)
		r.scope = RT_SCOPE_HOST;
	else if (r.type == RTN_BROADCAST || r.type == RTN_MULTICAST || r.type == RTN_ANYCAST)
		r.scope = RT_SCOPE_LINK;
	else if (r.type == RTN_UNICAST && !r.has_gateway)
		r.scope = RT_SCOPE_LINK;
	else
		r.scope = RT_SCOPE_UNIVERSE;

	if (dev) {
		r.oif = brisk_link_index(L, h, dev, label, sizeof(label));
		if (r.oif <= 0)
			return brisk_nlfail(L, h, op, lua_pushfstring(L, "%s dev %s", dst, label));
	}
	if (brisk_route_modify(h, cmd, flags, &r) < 0)
		return brisk_nlfail(L, h, op, dst);
	lua_pushboolean(L, 1);
	return 1;
}

/***
 * Add a route (`ip route add`).
 * @function nl:route_add
 * @tparam table opts `dst` (required: "default", "10.0.0.0/24", an address
 *   for a host route, IPv6 alike), `gateway`, `dev` (name, ifindex or link
 *   table), `onlink` (boolean), `table` (number, "main", "local",
 *   "default"; default main), `scope` (name or number; default as ip: link
 *   for a unicast route without gateway, else global), `metric`, `protocol`
 *   (name or number; default "boot"), `prefsrc`, `type` ("unicast",
 *   "blackhole", "unreachable", "prohibit", "throw", "local", ...), `family`
 *   ("inet" or "inet6": for "default" without gateway; default inet)
 * @return true
 * @return[2] nil, "route_add <dst>: invalid destination", EINVAL for bad
 *   input (nothing sent); nil, "route_add <dst>: <strerror> (kernel: ...)",
 *   errno (EEXIST for a duplicate, ENODEV for a missing dev, ENETUNREACH
 *   for an unreachable gateway)
 */
static int l_route_add(lua_State *L)
{
	return route_modify(L, "route_add", RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL);
}

/***
 * Add or replace a route (`ip route replace`).
 * @function nl:route_replace
 * @tparam table opts as for route_add
 * @return true
 * @return[2] nil, msg, errno as for route_add (never EEXIST)
 */
static int l_route_replace(lua_State *L)
{
	return route_modify(L, "route_replace", RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE);
}

/***
 * Delete a route (`ip route del`). Fields left out match any value, except
 * table (default main).
 * @function nl:route_del
 * @tparam table opts as for route_add
 * @return true
 * @return[2] nil, "route_del <dst>: No such process", ESRCH when no route
 *   matches; EINVAL for bad input (nothing sent); ENODEV for a missing dev
 */
static int l_route_del(lua_State *L)
{
	return route_modify(L, "route_del", RTM_DELROUTE, 0);
}

static const luaL_Reg route_meth[] = {
	{ "route_list", l_route_list },
	{ "route_add", l_route_add },
	{ "route_replace", l_route_replace },
	{ "route_del", l_route_del },
	{ NULL, NULL }
};

void brisk_open_route(lua_State *L, int mod, int meth)
{
	(void)mod;
	lua_pushvalue(L, meth);
	luaL_setfuncs(L, route_meth, 0);
	lua_pop(L, 1);
}
