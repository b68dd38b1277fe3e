/***
 * conntrack.c - the connection tracking table of a handle's namespace
 * (ctnetlink): list its entries, delete one. Which entries go when a port
 * or an endpoint goes is the caller's policy (brisk.ports, the endpoint
 * flow), as libnetwork's purgeConntrackState is the bridge driver's.
 *
 * An entry is { family = "inet"|"inet6", proto = N (IPPROTO_*), zone = N,
 * orig = {src=, dst=, sport=, dport=}, reply = {...} } (ports for TCP,
 * UDP, SCTP, UDPLITE and DCCP only).
 *
 * Misuse raises; operational failure returns nil, "<op> <obj>: <strerror>",
 * errno.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <netinet/in.h>
#include "brisk.h"

struct ct_tuple {
	int family;                  /* AF_INET, AF_INET6 */
	unsigned char src[16], dst[16];
	int proto;                   /* -1: none */
	int sport, dport;            /* -1: none */
	int icmp_id, icmp_type, icmp_code;   /* ICMP and ICMPv6; -1: none */
};

struct ct_entry {
	struct ct_tuple orig, reply;
	int zone;
};

/* A request to ctnetlink with its nfgenmsg header. */
static struct nlmsghdr *ct_msg(struct brisk_nl *t, uint8_t msg, uint16_t flags, int family)
{
	struct nlmsghdr *nlh = brisk_msg(t, (NFNL_SUBSYS_CTNETLINK << 8) | msg, flags);
	struct nfgenmsg *g = mnl_nlmsg_put_extra_header(nlh, sizeof(*g));

	g->nfgen_family = (uint8_t)family;
	g->version = NFNETLINK_V0;
	g->res_id = 0;
	return nlh;
}

static int nested_cb(const struct nlattr *a, void *data)
{
	const struct nlattr **tb = data;
	int type = mnl_attr_get_type(a);

	/* the types of every nest read here are below 16 */
	if (type < 16)
		tb[type] = a;
	return MNL_CB_OK;
}

static void icmp_field(const struct nlattr *a, size_t len, int *out)
{
	if (!a || mnl_attr_get_payload_len(a) < len)
		return;
	*out = len == 2 ? ntohs(mnl_attr_get_u16(a)) : mnl_attr_get_u8(a);
}

/* Parse a CTA_TUPLE_* nest; false when it lacks its addresses. */
static bool parse_tuple(const struct nlattr *nest, struct ct_tuple *t)
{
	const struct nlattr *tb[16] = { 0 }, *ip[16] = { 0 }, *pr[16] = { 0 };

	t->proto = t->sport = t->dport = t->icmp_id = t->icmp_type = t->icmp_code = -1;
	if (!nest || mnl_attr_parse_nested(nest, nested_cb, tb) < 0 || !tb[CTA_TUPLE_IP])
		return false;
	if (mnl_attr_parse_nested(tb[CTA_TUPLE_IP], nested_cb, ip) < 0)
		return false;
	if (ip[CTA_IP_V4_SRC] && ip[CTA_IP_V4_DST]) {
		t->family = AF_INET;
		if (!brisk_attr_addr(ip[CTA_IP_V4_SRC], 4, t->src) || !brisk_attr_addr(ip[CTA_IP_V4_DST], 4, t->dst))
			return false;
	} else if (ip[CTA_IP_V6_SRC] && ip[CTA_IP_V6_DST]) {
		t->family = AF_INET6;
		if (!brisk_attr_addr(ip[CTA_IP_V6_SRC], 16, t->src) || !brisk_attr_addr(ip[CTA_IP_V6_DST], 16, t->dst))
			return false;
	} else {
		return false;
	}
	if (tb[CTA_TUPLE_PROTO] && mnl_attr_parse_nested(tb[CTA_TUPLE_PROTO], nested_cb, pr) >= 0) {
		if (pr[CTA_PROTO_NUM] && mnl_attr_get_payload_len(pr[CTA_PROTO_NUM]) >= 1)
			t->proto = mnl_attr_get_u8(pr[CTA_PROTO_NUM]);
		if (pr[CTA_PROTO_SRC_PORT] && mnl_attr_get_payload_len(pr[CTA_PROTO_SRC_PORT]) >= 2)
			t->sport = ntohs(mnl_attr_get_u16(pr[CTA_PROTO_SRC_PORT]));
		if (pr[CTA_PROTO_DST_PORT] && mnl_attr_get_payload_len(pr[CTA_PROTO_DST_PORT]) >= 2)
			t->dport = ntohs(mnl_attr_get_u16(pr[CTA_PROTO_DST_PORT]));
		/* ICMP and ICMPv6 share the shape, not the attribute numbers */
		icmp_field(pr[CTA_PROTO_ICMP_ID] ? pr[CTA_PROTO_ICMP_ID] : pr[CTA_PROTO_ICMPV6_ID], 2, &t->icmp_id);
		icmp_field(pr[CTA_PROTO_ICMP_TYPE] ? pr[CTA_PROTO_ICMP_TYPE] : pr[CTA_PROTO_ICMPV6_TYPE], 1, &t->icmp_type);
		icmp_field(pr[CTA_PROTO_ICMP_CODE] ? pr[CTA_PROTO_ICMP_CODE] : pr[CTA_PROTO_ICMPV6_CODE], 1, &t->icmp_code);
	}
	return true;
}

static int top_cb(const struct nlattr *a, void *data)
{
	const struct nlattr **tb = data;
	int type = mnl_attr_get_type(a);

	if (type <= CTA_MAX)
		tb[type] = a;
	return MNL_CB_OK;
}

static void push_tuple(lua_State *L, const struct ct_tuple *t)
{
	char buf[INET6_ADDRSTRLEN];

	lua_createtable(L, 0, 4);
	brisk_setstr(L, "src", brisk_ntop(t->family, t->src, buf));
	brisk_setstr(L, "dst", brisk_ntop(t->family, t->dst, buf));
	if (t->sport >= 0)
		brisk_setint(L, "sport", t->sport);
	if (t->dport >= 0)
		brisk_setint(L, "dport", t->dport);
	if (t->icmp_id >= 0)
		brisk_setint(L, "icmp_id", t->icmp_id);
	if (t->icmp_type >= 0)
		brisk_setint(L, "icmp_type", t->icmp_type);
	if (t->icmp_code >= 0)
		brisk_setint(L, "icmp_code", t->icmp_code);
}

struct list_ctx {
	lua_State *L;
	int list, n;
};

static int entry_cb(const struct nlmsghdr *nlh, void *data)
{
	struct list_ctx *c = data;
	const struct nlattr *tb[CTA_MAX + 1] = { 0 };
	struct ct_entry e;
	lua_State *L = c->L;

	if ((nlh->nlmsg_type & 0xff) != IPCTNL_MSG_CT_NEW ||
	    mnl_nlmsg_get_payload_len(nlh) < sizeof(struct nfgenmsg))
		return MNL_CB_OK;
	if (mnl_attr_parse(nlh, sizeof(struct nfgenmsg), top_cb, tb) < 0)
		return MNL_CB_OK;
	if (!parse_tuple(tb[CTA_TUPLE_ORIG], &e.orig) || !parse_tuple(tb[CTA_TUPLE_REPLY], &e.reply))
		return MNL_CB_OK;
	e.zone = tb[CTA_ZONE] && mnl_attr_get_payload_len(tb[CTA_ZONE]) >= 2 ?
		ntohs(mnl_attr_get_u16(tb[CTA_ZONE])) : 0;
	luaL_checkstack(L, 4, NULL);
	lua_createtable(L, 0, 5);
	brisk_setstr(L, "family", e.orig.family == AF_INET ? "inet" : "inet6");
	if (e.orig.proto >= 0)
		brisk_setint(L, "proto", e.orig.proto);
	brisk_setint(L, "zone", e.zone);
	push_tuple(L, &e.orig);
	lua_setfield(L, -2, "orig");
	push_tuple(L, &e.reply);
	lua_setfield(L, -2, "reply");
	lua_rawseti(L, c->list, ++c->n);
	return MNL_CB_OK;
}

#define CT_SOCK_MT "brisk.ct_socket"

/* The ctnetlink socket of one call, owned by a userdata on the stack: a
 * Lua error raised while it is open (memory, the stack) does not leak it. */
struct ct_box {
	struct brisk_nl *t;
};

static int ct_box_gc(lua_State *L)
{
	struct ct_box *b = luaL_checkudata(L, 1, CT_SOCK_MT);

	brisk_nl_temp_close(b->t);
	b->t = NULL;
	return 0;
}

/* Push a box holding a ctnetlink socket in h's namespace; NULL (the box
 * popped) after pushing the failure. */
static struct brisk_nl *ct_socket(lua_State *L, struct brisk_nl *h, const char *op, int *pushed)
{
	struct ct_box *b = lua_newuserdatauv(L, sizeof(*b), 0);
	int err = 0;

	b->t = NULL;
	luaL_setmetatable(L, CT_SOCK_MT);
	b->t = brisk_nl_temp(h->nsfd, NETLINK_NETFILTER, h->seq, &err);
	*pushed = 0;
	if (!b->t) {
		lua_pop(L, 1);
		*pushed = brisk_fail(L, op, "socket", err);
		return NULL;
	}
	h->seq += 1u << 20;          /* the two sockets' numbers apart */
	return b->t;
}

/* Close the socket of the box at `idx` now (its __gc finds it closed). */
static void ct_close(lua_State *L, int idx)
{
	struct ct_box *b = luaL_checkudata(L, idx, CT_SOCK_MT);

	brisk_nl_temp_close(b->t);
	b->t = NULL;
}

/***
 * The conntrack entries of the handle's namespace.
 * @function nl:conntrack_list
 * @param[opt] o {family = "inet"|"inet6"}
 * @return array of entries (see the top of this file)
 * @return[2] nil, "conntrack_list ...: <strerror>", errno
 */
static int l_conntrack_list(lua_State *L)
{
	static const char *const keys[] = { "family", NULL };
	struct brisk_nl *h = brisk_checknl(L, 1);
	struct list_ctx c = { L, 0, 0 };
	struct brisk_nl *t;
	int family = 0, pushed, tries, box;

	luaL_argcheck(L, lua_gettop(L) <= 2, 3, "no more arguments expected");
	if (!lua_isnoneornil(L, 2)) {
		luaL_checktype(L, 2, LUA_TTABLE);
		brisk_checkkeys(L, 2, "conntrack_list", keys);
		family = brisk_optfamily(L, 2, "family");
	}
	lua_settop(L, 2);
	t = ct_socket(L, h, "conntrack_list", &pushed);
	if (!t)
		return pushed;
	box = lua_gettop(L);
	for (tries = 1;; tries++) {
		lua_newtable(L);
		c.list = lua_gettop(L);
		c.n = 0;
		if (brisk_talk(t, ct_msg(t, IPCTNL_MSG_CT_GET, NLM_F_DUMP, family), entry_cb, &c) < 0) {
			/* no conntrack in this namespace (the module not loaded): no entries */
			if (t->err == ENOENT || t->err == EOPNOTSUPP || t->err == EPROTONOSUPPORT)
				break;
			pushed = brisk_nlfail(L, t, "conntrack_list", family == AF_INET6 ? "inet6" :
					      family == AF_INET ? "inet" : "all");
			ct_close(L, box);
			return pushed;
		}
		if (!t->dump_intr)
			break;
		lua_pop(L, 1);
		if (tries >= BRISK_DUMP_TRIES) {
			brisk_dump_gave_up(t);
			pushed = brisk_nlfail(L, t, "conntrack_list", family == AF_INET6 ? "inet6" :
					      family == AF_INET ? "inet" : "all");
			ct_close(L, box);
			return pushed;
		}
	}
	ct_close(L, box);
	return 1;
}

/* Integer field `k` of the table at idx, 0..max, or -1 when absent
 * (checked before it is narrowed). */
static int field_in(lua_State *L, int idx, const char *k, lua_Integer max, const char *what)
{
	int present = brisk_rawfield(L, idx, k) != LUA_TNIL;
	lua_Integer v;

	lua_pop(L, 1);
	if (!present)
		return -1;
	v = brisk_optinteger(L, idx, k, 0);
	if (v < 0 || v > max)
		luaL_error(L, "conntrack_del: %s: %s must be 0..%d", what, k, (int)max);
	return (int)v;
}

/* Read a tuple table {src=, dst=, sport=, dport=} at idx into t. */
static void check_tuple(lua_State *L, int idx, const char *what, struct ct_tuple *t)
{
	static const char *const keys[] = { "src", "dst", "sport", "dport", "icmp_id", "icmp_type",
		"icmp_code", NULL };
	const char *src, *dst;
	int fs, fd;

	if (lua_type(L, idx) != LUA_TTABLE)
		luaL_error(L, "conntrack_del: %s must be a table", what);
	brisk_checkkeys(L, idx, "conntrack_del", keys);
	brisk_rawfield(L, idx, "src");
	brisk_rawfield(L, idx, "dst");
	src = lua_tostring(L, -2);
	dst = lua_tostring(L, -1);
	if (!src || !dst)
		luaL_error(L, "conntrack_del: %s needs src and dst", what);
	fs = inet_pton(AF_INET, src, t->src) == 1 ? AF_INET : inet_pton(AF_INET6, src, t->src) == 1 ? AF_INET6 : 0;
	fd = inet_pton(AF_INET, dst, t->dst) == 1 ? AF_INET : inet_pton(AF_INET6, dst, t->dst) == 1 ? AF_INET6 : 0;
	if (!fs || fs != fd)
		luaL_error(L, "conntrack_del: %s: src and dst must be addresses of one family", what);
	lua_pop(L, 2);
	t->family = fs;
	t->sport = field_in(L, idx, "sport", 65535, what);
	t->dport = field_in(L, idx, "dport", 65535, what);
	t->icmp_id = field_in(L, idx, "icmp_id", 65535, what);
	t->icmp_type = field_in(L, idx, "icmp_type", 255, what);
	t->icmp_code = field_in(L, idx, "icmp_code", 255, what);
}

static void put_tuple(struct nlmsghdr *nlh, int type, const struct ct_tuple *t)
{
	struct nlattr *tup = mnl_attr_nest_start(nlh, type), *ip, *pr;
	size_t alen = t->family == AF_INET ? 4 : 16;
	bool v6 = t->family == AF_INET6;

	ip = mnl_attr_nest_start(nlh, CTA_TUPLE_IP);
	mnl_attr_put(nlh, t->family == AF_INET ? CTA_IP_V4_SRC : CTA_IP_V6_SRC, alen, t->src);
	mnl_attr_put(nlh, t->family == AF_INET ? CTA_IP_V4_DST : CTA_IP_V6_DST, alen, t->dst);
	mnl_attr_nest_end(nlh, ip);
	pr = mnl_attr_nest_start(nlh, CTA_TUPLE_PROTO);
	mnl_attr_put_u8(nlh, CTA_PROTO_NUM, (uint8_t)t->proto);
	if (t->sport >= 0)
		mnl_attr_put_u16(nlh, CTA_PROTO_SRC_PORT, htons((uint16_t)t->sport));
	if (t->dport >= 0)
		mnl_attr_put_u16(nlh, CTA_PROTO_DST_PORT, htons((uint16_t)t->dport));
	if (t->icmp_id >= 0)
		mnl_attr_put_u16(nlh, v6 ? CTA_PROTO_ICMPV6_ID : CTA_PROTO_ICMP_ID, htons((uint16_t)t->icmp_id));
	if (t->icmp_type >= 0)
		mnl_attr_put_u8(nlh, v6 ? CTA_PROTO_ICMPV6_TYPE : CTA_PROTO_ICMP_TYPE, (uint8_t)t->icmp_type);
	if (t->icmp_code >= 0)
		mnl_attr_put_u8(nlh, v6 ? CTA_PROTO_ICMPV6_CODE : CTA_PROTO_ICMP_CODE, (uint8_t)t->icmp_code);
	mnl_attr_nest_end(nlh, pr);
	mnl_attr_nest_end(nlh, tup);
}

/***
 * Delete one conntrack entry, named by its original tuple (an entry as
 * conntrack_list gives it: its reply tuple is not needed).
 * @function nl:conntrack_del
 * @tparam table e {proto=N, zone=N, orig={src=, dst=, sport=, dport=}}
 * @return true
 * @return[2] nil, "conntrack_del <src> -> <dst>: <strerror>", errno
 *   (ENOENT: it was gone already)
 */
static int l_conntrack_del(lua_State *L)
{
	static const char *const keys[] = { "family", "proto", "zone", "orig", "reply", NULL };
	struct brisk_nl *h = brisk_checknl(L, 1);
	struct ct_tuple o;
	struct brisk_nl *t;
	struct nlmsghdr *nlh;
	char label[2 * INET6_ADDRSTRLEN + 8], a[INET6_ADDRSTRLEN], b[INET6_ADDRSTRLEN];
	lua_Integer proto, zone;
	int pushed, box;

	luaL_argcheck(L, lua_gettop(L) <= 2, 3, "no more arguments expected");
	luaL_checktype(L, 2, LUA_TTABLE);
	brisk_checkkeys(L, 2, "conntrack_del", keys);
	proto = brisk_optinteger(L, 2, "proto", -1);
	zone = brisk_optinteger(L, 2, "zone", 0);
	if (proto < 0 || proto > 255)
		luaL_error(L, "conntrack_del: proto must be 0..255");
	if (zone < 0 || zone > 65535)
		luaL_error(L, "conntrack_del: zone must be 0..65535");
	brisk_rawfield(L, 2, "orig");
	check_tuple(L, lua_gettop(L), "orig", &o);
	lua_pop(L, 1);
	o.proto = (int)proto;
	snprintf(label, sizeof(label), "%s -> %s", brisk_ntop(o.family, o.src, a), brisk_ntop(o.family, o.dst, b));
	t = ct_socket(L, h, "conntrack_del", &pushed);
	if (!t)
		return pushed;
	box = lua_gettop(L);
	nlh = ct_msg(t, IPCTNL_MSG_CT_DELETE, NLM_F_ACK, o.family);
	put_tuple(nlh, CTA_TUPLE_ORIG, &o);
	if (zone)
		mnl_attr_put_u16(nlh, CTA_ZONE, htons((uint16_t)zone));
	if (brisk_talk(t, nlh, NULL, NULL) < 0) {
		pushed = brisk_nlfail(L, t, "conntrack_del", label);
		ct_close(L, box);
		return pushed;
	}
	ct_close(L, box);
	lua_pushboolean(L, 1);
	return 1;
}

static const luaL_Reg methods[] = {
	{ "conntrack_list", l_conntrack_list },
	{ "conntrack_del", l_conntrack_del },
	{ NULL, NULL }
};

void brisk_open_conntrack(lua_State *L, int mod, int meth)
{
	(void)mod;
	if (luaL_newmetatable(L, CT_SOCK_MT)) {
		lua_pushcfunction(L, ct_box_gc);
		lua_setfield(L, -2, "__gc");
	}
	lua_pop(L, 1);
	lua_pushvalue(L, meth);
	luaL_setfuncs(L, methods, 0);
	lua_pop(L, 1);
}
