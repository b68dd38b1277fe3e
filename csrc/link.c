/***
 * link.c - links: get, list, add, delete, set; bridge and bridge-port knobs.
 *
 * Result tables use the keys and value formats of `ip -j -d link show`
 * (iproute2 6.1), and `bridge -j -d link show` for bridge ports, so they
 * can be compared with iproute2 directly. Timer values are seconds (floats)
 * as ip prints them; ageing_time and forward_delay are in centiseconds, the
 * kernel's unit, exactly as ip prints and takes them.
 *
 * The C functions exported in brisk.h (brisk_link_add, brisk_link_set, ...)
 * take plain C structs so that the bridge steps can call them without Lua;
 * the handle methods at the bottom parse Lua options into those structs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include "brisk.h"   /* <net/if.h> before the <linux/...> headers */
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/if_link.h>
#include <linux/if_bridge.h>
#include <linux/if_arp.h>
#include <linux/veth.h>

/* glibc's <net/if.h> stops at IFF_DYNAMIC. */
#ifndef IFF_LOWER_UP
#define IFF_LOWER_UP 0x10000
#endif
#ifndef IFF_DORMANT
#define IFF_DORMANT 0x20000
#endif
#ifndef IFF_ECHO
#define IFF_ECHO 0x40000
#endif

#define DUMP_TRIES 4

/* --- attribute parsing through policy tables --- */

struct attr_pol {
	uint8_t known;
	uint8_t type;           /* enum mnl_attr_data_type */
	uint16_t len;           /* exact payload length for binary, 0 = any */
};

#define P(t)   { 1, (t), 0 }

struct parse_ctx {
	const struct nlattr **tb;
	const struct attr_pol *pol;
	unsigned int max;
};

/* Keep attributes the policy knows and that validate; skip the rest. */
static int cb_attr(const struct nlattr *a, void *data)
{
	struct parse_ctx *p = data;
	unsigned int type = mnl_attr_get_type(a);
	const struct attr_pol *ap;
	int ok;

	if (type > p->max || !p->pol[type].known)
		return MNL_CB_OK;
	ap = &p->pol[type];
	if (ap->len)
		ok = mnl_attr_validate2(a, ap->type, ap->len) >= 0;
	else
		ok = mnl_attr_validate(a, ap->type) >= 0;
	if (ok)
		p->tb[type] = a;
	return MNL_CB_OK;
}

static void parse_nested(const struct nlattr *nest, const struct attr_pol *pol,
			 unsigned int max, const struct nlattr **tb)
{
	struct parse_ctx p = { tb, pol, max };
	memset(tb, 0, (max + 1) * sizeof(*tb));
	if (nest)
		mnl_attr_parse_nested(nest, cb_attr, &p);
}

static const struct attr_pol ifla_pol[IFLA_MAX + 1] = {
	[IFLA_ADDRESS] = P(MNL_TYPE_BINARY),
	[IFLA_BROADCAST] = P(MNL_TYPE_BINARY),
	[IFLA_PERM_ADDRESS] = P(MNL_TYPE_BINARY),
	[IFLA_IFNAME] = P(MNL_TYPE_NUL_STRING),
	[IFLA_MTU] = P(MNL_TYPE_U32),
	[IFLA_LINK] = P(MNL_TYPE_U32),
	[IFLA_QDISC] = P(MNL_TYPE_NUL_STRING),
	[IFLA_MASTER] = P(MNL_TYPE_U32),
	[IFLA_TXQLEN] = P(MNL_TYPE_U32),
	[IFLA_OPERSTATE] = P(MNL_TYPE_U8),
	[IFLA_LINKMODE] = P(MNL_TYPE_U8),
	[IFLA_LINKINFO] = P(MNL_TYPE_NESTED),
	[IFLA_IFALIAS] = P(MNL_TYPE_NUL_STRING),
	[IFLA_AF_SPEC] = P(MNL_TYPE_NESTED),
	[IFLA_GROUP] = P(MNL_TYPE_U32),
	[IFLA_PROMISCUITY] = P(MNL_TYPE_U32),
	[IFLA_ALLMULTI] = P(MNL_TYPE_U32),
	[IFLA_NUM_TX_QUEUES] = P(MNL_TYPE_U32),
	[IFLA_NUM_RX_QUEUES] = P(MNL_TYPE_U32),
	[IFLA_LINK_NETNSID] = P(MNL_TYPE_U32),
	[IFLA_PROTO_DOWN] = P(MNL_TYPE_U8),
	[IFLA_GSO_MAX_SEGS] = P(MNL_TYPE_U32),
	[IFLA_GSO_MAX_SIZE] = P(MNL_TYPE_U32),
	[IFLA_MIN_MTU] = P(MNL_TYPE_U32),
	[IFLA_MAX_MTU] = P(MNL_TYPE_U32),
	[IFLA_PROP_LIST] = P(MNL_TYPE_NESTED),
	[IFLA_PARENT_DEV_NAME] = P(MNL_TYPE_NUL_STRING),
	[IFLA_PARENT_DEV_BUS_NAME] = P(MNL_TYPE_NUL_STRING),
	[IFLA_GRO_MAX_SIZE] = P(MNL_TYPE_U32),
	[IFLA_TSO_MAX_SIZE] = P(MNL_TYPE_U32),
	[IFLA_TSO_MAX_SEGS] = P(MNL_TYPE_U32),
};

static const struct attr_pol info_pol[IFLA_INFO_MAX + 1] = {
	[IFLA_INFO_KIND] = P(MNL_TYPE_NUL_STRING),
	[IFLA_INFO_DATA] = P(MNL_TYPE_NESTED),
	[IFLA_INFO_SLAVE_KIND] = P(MNL_TYPE_NUL_STRING),
	[IFLA_INFO_SLAVE_DATA] = P(MNL_TYPE_NESTED),
};

static const struct attr_pol inet6_pol[IFLA_INET6_MAX + 1] = {
	[IFLA_INET6_ADDR_GEN_MODE] = P(MNL_TYPE_U8),
};

/* Parse an RTM_NEWLINK message: header and top-level attributes. */
static const struct ifinfomsg *parse_link(const struct nlmsghdr *nlh,
					  const struct nlattr *tb[IFLA_MAX + 1])
{
	struct parse_ctx p = { tb, ifla_pol, IFLA_MAX };

	memset(tb, 0, (IFLA_MAX + 1) * sizeof(*tb));
	if (nlh->nlmsg_type != RTM_NEWLINK ||
	    mnl_nlmsg_get_payload_len(nlh) < sizeof(struct ifinfomsg))
		return NULL;
	if (mnl_attr_parse(nlh, sizeof(struct ifinfomsg), cb_attr, &p) < 0)
		return NULL;
	return mnl_nlmsg_get_payload(nlh);
}

/* --- value formats as iproute2 prints them --- */

static void push_flags(lua_State *L, unsigned int flags)
{
	static const struct { unsigned int bit; const char *name; } names[] = {
		{ IFF_LOOPBACK, "LOOPBACK" }, { IFF_BROADCAST, "BROADCAST" },
		{ IFF_POINTOPOINT, "POINTOPOINT" }, { IFF_MULTICAST, "MULTICAST" },
		{ IFF_NOARP, "NOARP" }, { IFF_ALLMULTI, "ALLMULTI" },
		{ IFF_PROMISC, "PROMISC" }, { IFF_MASTER, "MASTER" },
		{ IFF_SLAVE, "SLAVE" }, { IFF_DEBUG, "DEBUG" },
		{ IFF_DYNAMIC, "DYNAMIC" }, { IFF_AUTOMEDIA, "AUTOMEDIA" },
		{ IFF_PORTSEL, "PORTSEL" }, { IFF_NOTRAILERS, "NOTRAILERS" },
		{ IFF_UP, "UP" }, { IFF_LOWER_UP, "LOWER_UP" },
		{ IFF_DORMANT, "DORMANT" }, { IFF_ECHO, "ECHO" },
	};
	size_t i;
	int n = 0;

	lua_createtable(L, 6, 0);
	if ((flags & IFF_UP) && !(flags & IFF_RUNNING)) {
		lua_pushliteral(L, "NO-CARRIER");
		lua_rawseti(L, -2, ++n);
	}
	flags &= ~IFF_RUNNING;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (flags & names[i].bit) {
			flags &= ~names[i].bit;
			lua_pushstring(L, names[i].name);
			lua_rawseti(L, -2, ++n);
		}
	}
	if (flags) {
		/* what ip prints for the rest (lua_pushfstring has no %x) */
		char hex[16];
		snprintf(hex, sizeof(hex), "%x", flags);
		lua_pushstring(L, hex);
		lua_rawseti(L, -2, ++n);
	}
}

static const char *operstate_name(unsigned int s)
{
	static const char *const names[] = {
		"UNKNOWN", "NOTPRESENT", "DOWN", "LOWERLAYERDOWN",
		"TESTING", "DORMANT", "UP",
	};
	return s < sizeof(names) / sizeof(names[0]) ? names[s] : NULL;
}

static const char *link_type_name(unsigned int t)
{
	switch (t) {
	case ARPHRD_ETHER: return "ether";
	case ARPHRD_LOOPBACK: return "loopback";
	case ARPHRD_NONE: return "none";
	case ARPHRD_VOID: return "void";
	case ARPHRD_TUNNEL: return "ipip";
	case ARPHRD_TUNNEL6: return "tunnel6";
	case ARPHRD_SIT: return "sit";
	case ARPHRD_IPGRE: return "gre";
	case ARPHRD_IP6GRE: return "gre6";
	case ARPHRD_PPP: return "ppp";
	case ARPHRD_INFINIBAND: return "infiniband";
	default: return NULL;
	}
}

static void setbin_mac(lua_State *L, const char *k, const struct nlattr *a)
{
	char buf[3 * 32];
	size_t n = mnl_attr_get_payload_len(a);

	if (n == 0 || n > 32)
		return;
	brisk_format_mac(mnl_attr_get_payload(a), n, buf);
	brisk_setstr(L, k, buf);
}

static void setfloat(lua_State *L, const char *k, lua_Number v)
{
	lua_pushnumber(L, v);
	lua_setfield(L, -2, k);
}

/* ip's br_dump_bridge_id: priority bytes in hex, then ether_ntoa (no
 * zero padding), e.g. "8000.2:42:ac:11:0:2". */
static void setbridge_id(lua_State *L, const char *k, const struct nlattr *a)
{
	const unsigned char *b = mnl_attr_get_payload(a);
	char buf[48];

	snprintf(buf, sizeof(buf), "%.2x%.2x.%x:%x:%x:%x:%x:%x", b[0], b[1],
		 b[2], b[3], b[4], b[5], b[6], b[7]);
	brisk_setstr(L, k, buf);
}

static void set0xhex(lua_State *L, const char *k, unsigned int v)
{
	char buf[16];
	snprintf(buf, sizeof(buf), "%#x", v);
	brisk_setstr(L, k, buf);
}

/* --- bridge (IFLA_BR_*) and bridge port (IFLA_BRPORT_*) data, table
 * driven: one row per attribute, the ip key and how ip prints it --- */

enum fmt {
	F_U8 = 1, F_U16, F_U32, F_U64, F_BOOL, F_HEX16, F_TIMER, F_BRID,
	F_MAC, F_VLANPROTO, F_PORTSTATE, F_FWDMASK, F_BOOLOPT,
};

struct field {
	unsigned int attr;
	const char *key;
	enum fmt fmt;
};

static const struct field br_fields[] = {
	{ IFLA_BR_FORWARD_DELAY, "forward_delay", F_U32 },
	{ IFLA_BR_HELLO_TIME, "hello_time", F_U32 },
	{ IFLA_BR_MAX_AGE, "max_age", F_U32 },
	{ IFLA_BR_AGEING_TIME, "ageing_time", F_U32 },
	{ IFLA_BR_STP_STATE, "stp_state", F_U32 },
	{ IFLA_BR_PRIORITY, "priority", F_U16 },
	{ IFLA_BR_VLAN_FILTERING, "vlan_filtering", F_U8 },
	{ IFLA_BR_VLAN_PROTOCOL, "vlan_protocol", F_VLANPROTO },
	{ IFLA_BR_BRIDGE_ID, "bridge_id", F_BRID },
	{ IFLA_BR_ROOT_ID, "root_id", F_BRID },
	{ IFLA_BR_ROOT_PORT, "root_port", F_U16 },
	{ IFLA_BR_ROOT_PATH_COST, "root_path_cost", F_U32 },
	{ IFLA_BR_TOPOLOGY_CHANGE, "topology_change", F_U8 },
	{ IFLA_BR_TOPOLOGY_CHANGE_DETECTED, "topology_change_detected", F_U8 },
	{ IFLA_BR_HELLO_TIMER, "hello_timer", F_TIMER },
	{ IFLA_BR_TCN_TIMER, "tcn_timer", F_TIMER },
	{ IFLA_BR_TOPOLOGY_CHANGE_TIMER, "topology_change_timer", F_TIMER },
	{ IFLA_BR_GC_TIMER, "gc_timer", F_TIMER },
	{ IFLA_BR_VLAN_DEFAULT_PVID, "vlan_default_pvid", F_U16 },
	{ IFLA_BR_VLAN_STATS_ENABLED, "vlan_stats_enabled", F_U8 },
	{ IFLA_BR_VLAN_STATS_PER_PORT, "vlan_stats_per_port", F_U8 },
	{ IFLA_BR_GROUP_FWD_MASK, "group_fwd_mask", F_HEX16 },
	{ IFLA_BR_GROUP_ADDR, "group_addr", F_MAC },
	{ IFLA_BR_MCAST_SNOOPING, "mcast_snooping", F_U8 },
	{ IFLA_BR_MULTI_BOOLOPT, NULL, F_BOOLOPT },
	{ IFLA_BR_MCAST_ROUTER, "mcast_router", F_U8 },
	{ IFLA_BR_MCAST_QUERY_USE_IFADDR, "mcast_query_use_ifaddr", F_U8 },
	{ IFLA_BR_MCAST_QUERIER, "mcast_querier", F_U8 },
	{ IFLA_BR_MCAST_HASH_ELASTICITY, "mcast_hash_elasticity", F_U32 },
	{ IFLA_BR_MCAST_HASH_MAX, "mcast_hash_max", F_U32 },
	{ IFLA_BR_MCAST_LAST_MEMBER_CNT, "mcast_last_member_cnt", F_U32 },
	{ IFLA_BR_MCAST_STARTUP_QUERY_CNT, "mcast_startup_query_cnt", F_U32 },
	{ IFLA_BR_MCAST_LAST_MEMBER_INTVL, "mcast_last_member_intvl", F_U64 },
	{ IFLA_BR_MCAST_MEMBERSHIP_INTVL, "mcast_membership_intvl", F_U64 },
	{ IFLA_BR_MCAST_QUERIER_INTVL, "mcast_querier_intvl", F_U64 },
	{ IFLA_BR_MCAST_QUERY_INTVL, "mcast_query_intvl", F_U64 },
	{ IFLA_BR_MCAST_QUERY_RESPONSE_INTVL, "mcast_query_response_intvl", F_U64 },
	{ IFLA_BR_MCAST_STARTUP_QUERY_INTVL, "mcast_startup_query_intvl", F_U64 },
	{ IFLA_BR_MCAST_STATS_ENABLED, "mcast_stats_enabled", F_U8 },
	{ IFLA_BR_MCAST_IGMP_VERSION, "mcast_igmp_version", F_U8 },
	{ IFLA_BR_MCAST_MLD_VERSION, "mcast_mld_version", F_U8 },
	{ IFLA_BR_NF_CALL_IPTABLES, "nf_call_iptables", F_U8 },
	{ IFLA_BR_NF_CALL_IP6TABLES, "nf_call_ip6tables", F_U8 },
	{ IFLA_BR_NF_CALL_ARPTABLES, "nf_call_arptables", F_U8 },
	{ 0, NULL, 0 }
};

static const struct field brport_fields[] = {
	{ IFLA_BRPORT_STATE, "state", F_PORTSTATE },
	{ IFLA_BRPORT_PRIORITY, "priority", F_U16 },
	{ IFLA_BRPORT_COST, "cost", F_U32 },
	{ IFLA_BRPORT_MODE, "hairpin", F_BOOL },
	{ IFLA_BRPORT_GUARD, "guard", F_BOOL },
	{ IFLA_BRPORT_PROTECT, "root_block", F_BOOL },
	{ IFLA_BRPORT_FAST_LEAVE, "fastleave", F_BOOL },
	{ IFLA_BRPORT_LEARNING, "learning", F_BOOL },
	{ IFLA_BRPORT_UNICAST_FLOOD, "flood", F_BOOL },
	{ IFLA_BRPORT_ID, "id", F_HEX16 },
	{ IFLA_BRPORT_NO, "no", F_HEX16 },
	{ IFLA_BRPORT_DESIGNATED_PORT, "designated_port", F_U16 },
	{ IFLA_BRPORT_DESIGNATED_COST, "designated_cost", F_U16 },
	{ IFLA_BRPORT_BRIDGE_ID, "bridge_id", F_BRID },
	{ IFLA_BRPORT_ROOT_ID, "root_id", F_BRID },
	{ IFLA_BRPORT_HOLD_TIMER, "hold_timer", F_TIMER },
	{ IFLA_BRPORT_MESSAGE_AGE_TIMER, "message_age_timer", F_TIMER },
	{ IFLA_BRPORT_FORWARD_DELAY_TIMER, "forward_delay_timer", F_TIMER },
	{ IFLA_BRPORT_TOPOLOGY_CHANGE_ACK, "topology_change_ack", F_U8 },
	{ IFLA_BRPORT_CONFIG_PENDING, "config_pending", F_U8 },
	{ IFLA_BRPORT_PROXYARP, "proxy_arp", F_BOOL },
	{ IFLA_BRPORT_PROXYARP_WIFI, "proxy_arp_wifi", F_BOOL },
	{ IFLA_BRPORT_MULTICAST_ROUTER, "multicast_router", F_U8 },
	{ IFLA_BRPORT_MCAST_FLOOD, "mcast_flood", F_BOOL },
	{ IFLA_BRPORT_BCAST_FLOOD, "bcast_flood", F_BOOL },
	{ IFLA_BRPORT_MCAST_TO_UCAST, "mcast_to_unicast", F_BOOL },
	{ IFLA_BRPORT_NEIGH_SUPPRESS, "neigh_suppress", F_BOOL },
	{ IFLA_BRPORT_GROUP_FWD_MASK, "group_fwd_mask", F_FWDMASK },
	{ IFLA_BRPORT_VLAN_TUNNEL, "vlan_tunnel", F_BOOL },
	{ IFLA_BRPORT_ISOLATED, "isolated", F_BOOL },
	{ IFLA_BRPORT_LOCKED, "locked", F_BOOL },
	{ 0, NULL, 0 }
};

static struct attr_pol fmt_pol(enum fmt f)
{
	struct attr_pol p = { 1, MNL_TYPE_U8, 0 };

	switch (f) {
	case F_U8: case F_BOOL: case F_PORTSTATE:
		p.type = MNL_TYPE_U8;
		break;
	case F_U16: case F_HEX16: case F_VLANPROTO: case F_FWDMASK:
		p.type = MNL_TYPE_U16;
		break;
	case F_U32:
		p.type = MNL_TYPE_U32;
		break;
	case F_U64: case F_TIMER:
		p.type = MNL_TYPE_U64;
		break;
	case F_BRID:
		p.type = MNL_TYPE_BINARY;
		p.len = sizeof(struct ifla_bridge_id);
		break;
	case F_MAC:
		p.type = MNL_TYPE_BINARY;
		p.len = 6;
		break;
	case F_BOOLOPT:
		p.type = MNL_TYPE_BINARY;
		p.len = sizeof(struct br_boolopt_multi);
		break;
	}
	return p;
}

#define FIELDS_MAX 64
/* Push a table with the fields of `nest` described by `fields`. */
static void push_fields(lua_State *L, const struct nlattr *nest, const struct field *fields)
{
	struct attr_pol pol[FIELDS_MAX + 1];
	const struct nlattr *tb[FIELDS_MAX + 1];
	const struct field *f;
	const struct nlattr *a;
	char buf[128];

	memset(pol, 0, sizeof(pol));
	for (f = fields; f->fmt; f++)
		if (f->attr <= FIELDS_MAX)
			pol[f->attr] = fmt_pol(f->fmt);
	parse_nested(nest, pol, FIELDS_MAX, tb);

	lua_createtable(L, 0, 48);
	for (f = fields; f->fmt; f++) {
		if (f->attr > FIELDS_MAX || !(a = tb[f->attr]))
			continue;
		switch (f->fmt) {
		case F_U8:
			brisk_setint(L, f->key, mnl_attr_get_u8(a));
			break;
		case F_U16:
			brisk_setint(L, f->key, mnl_attr_get_u16(a));
			break;
		case F_U32:
			brisk_setint(L, f->key, mnl_attr_get_u32(a));
			break;
		case F_U64:
			brisk_setint(L, f->key, (lua_Integer)mnl_attr_get_u64(a));
			break;
		case F_BOOL:
			brisk_setbool(L, f->key, mnl_attr_get_u8(a));
			break;
		case F_HEX16:
			set0xhex(L, f->key, mnl_attr_get_u16(a));
			break;
		case F_TIMER:   /* centiseconds (USER_HZ) printed as seconds */
			setfloat(L, f->key, (lua_Number)mnl_attr_get_u64(a) / 100.0);
			break;
		case F_BRID:
			setbridge_id(L, f->key, a);
			break;
		case F_MAC:
			setbin_mac(L, f->key, a);
			break;
		case F_VLANPROTO: {
			unsigned int p = ntohs(mnl_attr_get_u16(a));
			if (p == 0x8100)
				brisk_setstr(L, f->key, "802.1Q");
			else if (p == 0x88a8)
				brisk_setstr(L, f->key, "802.1ad");
			else
				set0xhex(L, f->key, p);
			break;
		}
		case F_PORTSTATE: {
			static const char *const st[] = {
				"disabled", "listening", "learning", "forwarding", "blocking",
			};
			unsigned int s = mnl_attr_get_u8(a);
			if (s < sizeof(st) / sizeof(st[0]))
				brisk_setstr(L, f->key, st[s]);
			else
				brisk_setint(L, "state_index", s);
			break;
		}
		case F_FWDMASK: {
			static const char *const bits[16] = { [0] = "stp", [2] = "lacp", [14] = "lldp" };
			unsigned int m = mnl_attr_get_u16(a), i;
			size_t len = 0;

			set0xhex(L, f->key, m);
			buf[0] = '\0';
			for (i = 0; i < 16; i++) {
				if (!(m & (1u << i)))
					continue;
				if (bits[i])
					len += snprintf(buf + len, sizeof(buf) - len, "%s,", bits[i]);
				else
					len += snprintf(buf + len, sizeof(buf) - len, "0x%x,", 1u << i);
			}
			if (len)
				buf[len - 1] = '\0';
			brisk_setstr(L, "group_fwd_mask_str", len ? buf : "0x0");
			break;
		}
		case F_BOOLOPT: {
			struct br_boolopt_multi bm;
			memcpy(&bm, mnl_attr_get_payload(a), sizeof(bm));
			if (bm.optmask & (1u << BR_BOOLOPT_NO_LL_LEARN))
				brisk_setint(L, "no_linklocal_learn",
					     !!(bm.optval & (1u << BR_BOOLOPT_NO_LL_LEARN)));
			if (bm.optmask & (1u << BR_BOOLOPT_MCAST_VLAN_SNOOPING))
				brisk_setint(L, "mcast_vlan_snooping",
					     !!(bm.optval & (1u << BR_BOOLOPT_MCAST_VLAN_SNOOPING)));
			break;
		}
		}
	}
}

static void push_linkinfo(lua_State *L, const struct nlattr *nest)
{
	const struct nlattr *li[IFLA_INFO_MAX + 1];
	const char *kind = NULL, *skind = NULL;

	parse_nested(nest, info_pol, IFLA_INFO_MAX, li);
	lua_createtable(L, 0, 4);
	if (li[IFLA_INFO_KIND]) {
		kind = mnl_attr_get_str(li[IFLA_INFO_KIND]);
		brisk_setstr(L, "info_kind", kind);
		if (li[IFLA_INFO_DATA] && !strcmp(kind, "bridge")) {
			push_fields(L, li[IFLA_INFO_DATA], br_fields);
			lua_setfield(L, -2, "info_data");
		}
	}
	if (li[IFLA_INFO_SLAVE_KIND]) {
		skind = mnl_attr_get_str(li[IFLA_INFO_SLAVE_KIND]);
		brisk_setstr(L, "info_slave_kind", skind);
		if (li[IFLA_INFO_SLAVE_DATA] && !strcmp(skind, "bridge")) {
			push_fields(L, li[IFLA_INFO_SLAVE_DATA], brport_fields);
			lua_setfield(L, -2, "info_slave_data");
		}
	}
}

static const char *const addrgenmodes[] = { "eui64", "none", "stable_secret", "random", NULL };

static void set_addrgenmode(lua_State *L, const struct nlattr *afspec)
{
	const struct nlattr *a, *in6[IFLA_INET6_MAX + 1];
	unsigned int mode;

	mnl_attr_for_each_nested(a, afspec) {
		if (mnl_attr_get_type(a) != AF_INET6 ||
		    mnl_attr_validate(a, MNL_TYPE_NESTED) < 0)
			continue;
		parse_nested(a, inet6_pol, IFLA_INET6_MAX, in6);
		if (!in6[IFLA_INET6_ADDR_GEN_MODE])
			continue;
		mode = mnl_attr_get_u8(in6[IFLA_INET6_ADDR_GEN_MODE]);
		if (mode < 4)
			brisk_setstr(L, "inet6_addr_gen_mode", addrgenmodes[mode]);
		else
			brisk_setint(L, "inet6_addr_gen_mode", mode);
	}
}

static void set_u32(lua_State *L, const char *k, const struct nlattr *a)
{
	if (a)
		brisk_setint(L, k, mnl_attr_get_u32(a));
}

/* Push the link table for one parsed message. "master" and "link" hold
 * ifindexes (integers) until resolve_names() turns them into names. */
static void push_link(lua_State *L, const struct ifinfomsg *ifm, const struct nlattr **tb)
{
	const char *s;
	char buf[64];
	unsigned int v;

	luaL_checkstack(L, 8, NULL);
	lua_createtable(L, 0, 36);
	brisk_setint(L, "ifindex", ifm->ifi_index);
	if (tb[IFLA_LINK] && (v = mnl_attr_get_u32(tb[IFLA_LINK])) != 0)
		brisk_setint(L, tb[IFLA_LINK_NETNSID] ? "link_index" : "link", v);
	if (tb[IFLA_IFNAME])
		brisk_setstr(L, "ifname", mnl_attr_get_str(tb[IFLA_IFNAME]));
	push_flags(L, ifm->ifi_flags);
	lua_setfield(L, -2, "flags");
	set_u32(L, "mtu", tb[IFLA_MTU]);
	if (tb[IFLA_QDISC])
		brisk_setstr(L, "qdisc", mnl_attr_get_str(tb[IFLA_QDISC]));
	set_u32(L, "master", tb[IFLA_MASTER]);
	if (tb[IFLA_OPERSTATE]) {
		v = mnl_attr_get_u8(tb[IFLA_OPERSTATE]);
		if ((s = operstate_name(v)))
			brisk_setstr(L, "operstate", s);
		else
			brisk_setint(L, "operstate_index", v);
	}
	if (tb[IFLA_LINKMODE]) {
		v = mnl_attr_get_u8(tb[IFLA_LINKMODE]);
		if (v == IF_LINK_MODE_DEFAULT)
			brisk_setstr(L, "linkmode", "DEFAULT");
		else if (v == IF_LINK_MODE_DORMANT)
			brisk_setstr(L, "linkmode", "DORMANT");
		else if (v == IF_LINK_MODE_TESTING)
			brisk_setstr(L, "linkmode", "TESTING");
		else
			brisk_setint(L, "linkmode_index", v);
	}
	if (tb[IFLA_GROUP]) {
		v = mnl_attr_get_u32(tb[IFLA_GROUP]);
		if (v == 0)
			brisk_setstr(L, "group", "default");
		else {
			snprintf(buf, sizeof(buf), "%u", v);
			brisk_setstr(L, "group", buf);
		}
	}
	set_u32(L, "txqlen", tb[IFLA_TXQLEN]);
	if ((s = link_type_name(ifm->ifi_type)))
		brisk_setstr(L, "link_type", s);
	else {
		snprintf(buf, sizeof(buf), "[%u]", ifm->ifi_type);
		brisk_setstr(L, "link_type", buf);
	}
	if (tb[IFLA_ADDRESS])
		setbin_mac(L, "address", tb[IFLA_ADDRESS]);
	if (tb[IFLA_PERM_ADDRESS] &&
	    (!tb[IFLA_ADDRESS] ||
	     mnl_attr_get_payload_len(tb[IFLA_ADDRESS]) != mnl_attr_get_payload_len(tb[IFLA_PERM_ADDRESS]) ||
	     memcmp(mnl_attr_get_payload(tb[IFLA_ADDRESS]), mnl_attr_get_payload(tb[IFLA_PERM_ADDRESS]),
		    mnl_attr_get_payload_len(tb[IFLA_ADDRESS]))))
		setbin_mac(L, "permaddr", tb[IFLA_PERM_ADDRESS]);
	if (tb[IFLA_BROADCAST])
		setbin_mac(L, "broadcast", tb[IFLA_BROADCAST]);
	if (tb[IFLA_LINK_NETNSID])
		brisk_setint(L, "link_netnsid", (int32_t)mnl_attr_get_u32(tb[IFLA_LINK_NETNSID]));
	set_u32(L, "promiscuity", tb[IFLA_PROMISCUITY]);
	set_u32(L, "allmulti", tb[IFLA_ALLMULTI]);
	set_u32(L, "min_mtu", tb[IFLA_MIN_MTU]);
	set_u32(L, "max_mtu", tb[IFLA_MAX_MTU]);
	if (tb[IFLA_LINKINFO]) {
		push_linkinfo(L, tb[IFLA_LINKINFO]);
		lua_setfield(L, -2, "linkinfo");
	}
	if (tb[IFLA_AF_SPEC])
		set_addrgenmode(L, tb[IFLA_AF_SPEC]);
	set_u32(L, "num_tx_queues", tb[IFLA_NUM_TX_QUEUES]);
	set_u32(L, "num_rx_queues", tb[IFLA_NUM_RX_QUEUES]);
	set_u32(L, "gso_max_size", tb[IFLA_GSO_MAX_SIZE]);
	set_u32(L, "gso_max_segs", tb[IFLA_GSO_MAX_SEGS]);
	set_u32(L, "tso_max_size", tb[IFLA_TSO_MAX_SIZE]);
	set_u32(L, "tso_max_segs", tb[IFLA_TSO_MAX_SEGS]);
	set_u32(L, "gro_max_size", tb[IFLA_GRO_MAX_SIZE]);
	if (tb[IFLA_PARENT_DEV_BUS_NAME])
		brisk_setstr(L, "parentbus", mnl_attr_get_str(tb[IFLA_PARENT_DEV_BUS_NAME]));
	if (tb[IFLA_PARENT_DEV_NAME])
		brisk_setstr(L, "parentdev", mnl_attr_get_str(tb[IFLA_PARENT_DEV_NAME]));
	if (tb[IFLA_PROTO_DOWN] && mnl_attr_get_u8(tb[IFLA_PROTO_DOWN]))
		brisk_setbool(L, "proto_down", 1);
	if (tb[IFLA_IFALIAS])
		brisk_setstr(L, "ifalias", mnl_attr_get_str(tb[IFLA_IFALIAS]));
	if (tb[IFLA_PROP_LIST]) {
		const struct nlattr *a;
		int n = 0;

		lua_newtable(L);
		mnl_attr_for_each_nested(a, tb[IFLA_PROP_LIST]) {
			if (mnl_attr_get_type(a) == IFLA_ALT_IFNAME &&
			    mnl_attr_validate(a, MNL_TYPE_NUL_STRING) >= 0) {
				lua_pushstring(L, mnl_attr_get_str(a));
				lua_rawseti(L, -2, ++n);
			}
		}
		if (n)
			lua_setfield(L, -2, "altnames");
		else
			lua_pop(L, 1);
	}
}

/* --- small requests that need no Lua --- */

struct idx_ctx {
	const char *want;       /* match IFLA_IFNAME when set */
	int ifindex;
	unsigned int flags;
	char name[IFNAMSIZ];
};

static int cb_idx(const struct nlmsghdr *nlh, void *data)
{
	struct idx_ctx *c = data;
	const struct nlattr *tb[IFLA_MAX + 1];
	const struct ifinfomsg *ifm = parse_link(nlh, tb);

	if (!ifm || !tb[IFLA_IFNAME])
		return MNL_CB_OK;
	if (c->want && strcmp(c->want, mnl_attr_get_str(tb[IFLA_IFNAME])))
		return MNL_CB_OK;
	c->ifindex = ifm->ifi_index;
	c->flags = ifm->ifi_flags;
	snprintf(c->name, sizeof(c->name), "%s", mnl_attr_get_str(tb[IFLA_IFNAME]));
	return MNL_CB_OK;
}

/* Link requests are small; libmnl 1.0.4 leaves attribute padding
 * uninitialised, so clear the area they are built in first. */
#define LINK_MSG_MAX 1024

static struct nlmsghdr *link_msg(struct brisk_nl *h, uint16_t type, uint16_t flags,
				 int family, int ifindex, struct ifinfomsg **ifmp)
{
	struct nlmsghdr *nlh;
	struct ifinfomsg *ifm;

	memset(h->buf, 0, LINK_MSG_MAX);
	nlh = brisk_msg(h, type, flags);
	ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));

	ifm->ifi_family = family;
	ifm->ifi_index = ifindex;
	if (ifmp)
		*ifmp = ifm;
	return nlh;
}

/* GET one link by index or name into c. Returns 0, or -1 (h->err).
 * A GET needs NLM_F_ACK: without it the answer ends with no ACK or DONE
 * and brisk_talk would wait for one. */
static int get_idx(struct brisk_nl *h, int ifindex, const char *name, struct idx_ctx *c)
{
	struct nlmsghdr *nlh = link_msg(h, RTM_GETLINK, NLM_F_ACK, AF_UNSPEC, ifindex > 0 ? ifindex : 0, NULL);

	c->want = NULL;
	c->ifindex = 0;
	c->flags = 0;
	c->name[0] = '\0';
	if (ifindex <= 0 && !name) {    /* a reply's bad master/link index */
		h->err = ENODEV;
		return -1;
	}
	if (ifindex <= 0 && !mnl_attr_put_strz_check(nlh, BRISK_BUFSZ, IFLA_IFNAME, name)) {
		h->err = EMSGSIZE;
		return -1;
	}
	mnl_attr_put_u32_check(nlh, BRISK_BUFSZ, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
	if (brisk_talk(h, nlh, cb_idx, c) < 0)
		return -1;
	if (!c->ifindex) {
		h->err = ENODEV;
		return -1;
	}
	return 0;
}

int brisk_link_ifindex(struct brisk_nl *h, const char *name)
{
	struct idx_ctx c;

	if (get_idx(h, 0, name, &c) < 0)
		return h->err == ENODEV ? 0 : -1;
	return c.ifindex;
}

/* --- resolving master / link indexes into names, after parsing --- */

struct names {
	int names;      /* stack index: ifindex -> name, or false when absent */
	int flags;      /* stack index: ifindex -> ifi_flags */
};

static void names_new(lua_State *L, struct names *n)
{
	lua_newtable(L);
	n->names = lua_gettop(L);
	lua_newtable(L);
	n->flags = lua_gettop(L);
}

static void names_add(lua_State *L, struct names *n, int ifindex, const char *name,
		      unsigned int flags)
{
	if (name)
		lua_pushstring(L, name);
	else
		lua_pushboolean(L, 0);
	lua_rawseti(L, n->names, ifindex);
	lua_pushinteger(L, flags);
	lua_rawseti(L, n->flags, ifindex);
}

/* Push the name of ifindex (iproute2's "if%d" when there is none) and
 * return its flags (0 when absent). */
static unsigned int names_lookup(lua_State *L, struct brisk_nl *h, struct names *n, int ifindex)
{
	struct idx_ctx c;
	unsigned int flags;

	if (lua_rawgeti(L, n->names, ifindex) == LUA_TNIL) {
		lua_pop(L, 1);
		if (get_idx(h, ifindex, NULL, &c) == 0)
			names_add(L, n, ifindex, c.name, c.flags);
		else
			names_add(L, n, ifindex, NULL, 0);
		lua_rawgeti(L, n->names, ifindex);
	}
	if (lua_type(L, -1) != LUA_TSTRING) {
		lua_pop(L, 1);
		lua_pushfstring(L, "if%d", ifindex);
	}
	lua_rawgeti(L, n->flags, ifindex);
	flags = (unsigned int)lua_tointeger(L, -1);
	lua_pop(L, 1);
	return flags;
}

/* Turn the integer "master" and "link" of the link table at t into names,
 * and, like iproute2, add "M-DOWN" to its flags when the link it sits on
 * (in this namespace: not link_index/link_netnsid) is not up. */
static void resolve_names(lua_State *L, struct brisk_nl *h, struct names *n, int t)
{
	unsigned int lflags;

	t = lua_absindex(L, t);
	if (brisk_rawfield(L, t, "master") == LUA_TNUMBER) {
		names_lookup(L, h, n, (int)lua_tointeger(L, -1));
		lua_setfield(L, t, "master");
	}
	lua_pop(L, 1);
	if (brisk_rawfield(L, t, "link") == LUA_TNUMBER) {
		lflags = names_lookup(L, h, n, (int)lua_tointeger(L, -1));
		lua_setfield(L, t, "link");
		if (!(lflags & IFF_UP)) {
			brisk_rawfield(L, t, "flags");
			lua_pushliteral(L, "M-DOWN");
			lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
			lua_pop(L, 1);
		}
	}
	lua_pop(L, 1);
}

/* --- get --- */

struct get_ctx {
	lua_State *L;
	struct names *names;
	int list;               /* result array (stack index), 0 for a single GET */
	int n;                  /* links pushed */
	const char *kind;       /* filters, NULL/0 for none */
	int master;
};

static int cb_link(const struct nlmsghdr *nlh, void *data)
{
	struct get_ctx *g = data;
	lua_State *L = g->L;
	const struct nlattr *tb[IFLA_MAX + 1];
	const struct ifinfomsg *ifm = parse_link(nlh, tb);

	if (!ifm)
		return MNL_CB_OK;
	if (g->master && (!tb[IFLA_MASTER] || (int)mnl_attr_get_u32(tb[IFLA_MASTER]) != g->master))
		return MNL_CB_OK;
	if (g->kind) {
		const struct nlattr *li[IFLA_INFO_MAX + 1];
		parse_nested(tb[IFLA_LINKINFO], info_pol, IFLA_INFO_MAX, li);
		if (!li[IFLA_INFO_KIND] || strcmp(mnl_attr_get_str(li[IFLA_INFO_KIND]), g->kind))
			return MNL_CB_OK;
	}
	if (!g->list && g->n)
		return MNL_CB_OK;       /* a GET has one answer */
	push_link(L, ifm, tb);
	names_add(L, g->names, ifm->ifi_index,
		  tb[IFLA_IFNAME] ? mnl_attr_get_str(tb[IFLA_IFNAME]) : NULL, ifm->ifi_flags);
	g->n++;
	if (g->list)
		lua_rawseti(L, g->list, g->n);
	return MNL_CB_OK;
}

/* Push the link table of ifindex (or name when ifindex is 0). Returns 0
 * with the table pushed, or -1 with nothing pushed and h->err set. */
static int get_link(lua_State *L, struct brisk_nl *h, int ifindex, const char *name)
{
	struct nlmsghdr *nlh;
	struct names n;
	struct get_ctx g;
	int top = lua_gettop(L);

	names_new(L, &n);
	memset(&g, 0, sizeof(g));
	g.L = L;
	g.names = &n;
	nlh = link_msg(h, RTM_GETLINK, NLM_F_ACK, AF_UNSPEC, ifindex > 0 ? ifindex : 0, NULL);
	if (ifindex <= 0 && !mnl_attr_put_strz_check(nlh, BRISK_BUFSZ, IFLA_IFNAME, name)) {
		h->err = EMSGSIZE;
		goto fail;
	}
	mnl_attr_put_u32_check(nlh, BRISK_BUFSZ, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
	if (brisk_talk(h, nlh, cb_link, &g) < 0)
		goto fail;
	if (!g.n) {
		h->err = ENODEV;
		goto fail;
	}
	resolve_names(L, h, &n, -1);
	lua_replace(L, top + 1);
	lua_settop(L, top + 1);
	return 0;
fail:
	lua_settop(L, top);
	return -1;
}

int brisk_link_push(lua_State *L, struct brisk_nl *h, int ifindex)
{
	if (ifindex <= 0) {
		h->err = ENODEV;
		h->ext[0] = '\0';
		return -1;
	}
	return get_link(L, h, ifindex, NULL);
}

/* --- building requests --- */

void brisk_link_attrs_init(struct brisk_link_attrs *a)
{
	memset(a, 0, sizeof(*a));
	a->up = -1;
	a->master = -1;
	a->mtu = -1;
	a->txqlen = -1;
	a->addrgenmode = -1;
	a->netns_fd = -1;
}

void brisk_bridge_attrs_init(struct brisk_bridge_attrs *b)
{
	b->stp_state = -1;
	b->vlan_filtering = -1;
	b->ageing_time = -1;
	b->forward_delay = -1;
}

static bool bridge_attrs_any(const struct brisk_bridge_attrs *b)
{
	return b->stp_state >= 0 || b->vlan_filtering >= 0 || b->ageing_time >= 0 ||
	       b->forward_delay >= 0;
}

/* The plain attributes every link request may carry (not flags, not
 * AF_SPEC). `name` is IFLA_IFNAME: the new name on add and rename, the
 * lookup key otherwise. */
static bool put_attrs(struct nlmsghdr *nlh, const char *name, const struct brisk_link_attrs *a)
{
	bool ok = true;

	if (name)
		ok = ok && mnl_attr_put_strz_check(nlh, BRISK_BUFSZ, IFLA_IFNAME, name);
	if (a->mtu >= 0)
		ok = ok && mnl_attr_put_u32_check(nlh, BRISK_BUFSZ, IFLA_MTU, (uint32_t)a->mtu);
	if (a->txqlen >= 0)
		ok = ok && mnl_attr_put_u32_check(nlh, BRISK_BUFSZ, IFLA_TXQLEN, (uint32_t)a->txqlen);
	if (a->has_address)
		ok = ok && mnl_attr_put_check(nlh, BRISK_BUFSZ, IFLA_ADDRESS, 6, a->address);
	if (a->master >= 0)
		ok = ok && mnl_attr_put_u32_check(nlh, BRISK_BUFSZ, IFLA_MASTER, (uint32_t)a->master);
	if (a->netns_fd >= 0)
		ok = ok && mnl_attr_put_u32_check(nlh, BRISK_BUFSZ, IFLA_NET_NS_FD, (uint32_t)a->netns_fd);
	return ok;
}

static bool put_bridge_data(struct nlmsghdr *nlh, const struct brisk_bridge_attrs *b)
{
	struct nlattr *data = mnl_attr_nest_start_check(nlh, BRISK_BUFSZ, IFLA_INFO_DATA);
	bool ok = data != NULL;

	if (ok && b->forward_delay >= 0)
		ok = mnl_attr_put_u32_check(nlh, BRISK_BUFSZ, IFLA_BR_FORWARD_DELAY, (uint32_t)b->forward_delay);
	if (ok && b->ageing_time >= 0)
		ok = mnl_attr_put_u32_check(nlh, BRISK_BUFSZ, IFLA_BR_AGEING_TIME, (uint32_t)b->ageing_time);
	if (ok && b->stp_state >= 0)
		ok = mnl_attr_put_u32_check(nlh, BRISK_BUFSZ, IFLA_BR_STP_STATE, (uint32_t)b->stp_state);
	if (ok && b->vlan_filtering >= 0)
		ok = mnl_attr_put_u8_check(nlh, BRISK_BUFSZ, IFLA_BR_VLAN_FILTERING, (uint8_t)b->vlan_filtering);
	if (ok)
		mnl_attr_nest_end(nlh, data);
	return ok;
}

/* IFLA_AF_SPEC / AF_INET6 / IFLA_INET6_ADDR_GEN_MODE */
static bool put_addrgenmode(struct nlmsghdr *nlh, int mode)
{
	struct nlattr *spec, *in6;

	if (!(spec = mnl_attr_nest_start_check(nlh, BRISK_BUFSZ, IFLA_AF_SPEC)))
		return false;
	if (!(in6 = mnl_attr_nest_start_check(nlh, BRISK_BUFSZ, AF_INET6)))
		return false;
	if (!mnl_attr_put_u8_check(nlh, BRISK_BUFSZ, IFLA_INET6_ADDR_GEN_MODE, (uint8_t)mode))
		return false;
	mnl_attr_nest_end(nlh, in6);
	mnl_attr_nest_end(nlh, spec);
	return true;
}

static int too_big(struct brisk_nl *h)
{
	h->err = EMSGSIZE;
	h->ext[0] = '\0';
	return -1;
}

static void set_updown(struct ifinfomsg *ifm, int up)
{
	if (up < 0)
		return;
	ifm->ifi_change |= IFF_UP;
	if (up)
		ifm->ifi_flags |= IFF_UP;
}

/* One RTM_NEWLINK on an existing link: by ifindex, or by name when ifindex
 * is 0. `rename` is a new name (needs ifindex). `with_flags` says whether
 * a->up goes in this request. */
static int setlink_once(struct brisk_nl *h, int ifindex, const char *name,
			const struct brisk_link_attrs *a, bool with_flags, bool with_agm)
{
	struct ifinfomsg *ifm;
	struct nlmsghdr *nlh = link_msg(h, RTM_NEWLINK, NLM_F_ACK, AF_UNSPEC, ifindex, &ifm);
	const char *ifname = ifindex > 0 ? a->ifname : name;

	if (with_flags)
		set_updown(ifm, a->up);
	if (!put_attrs(nlh, ifname, a))
		return too_big(h);
	if (with_agm && a->addrgenmode >= 0 && !put_addrgenmode(nlh, a->addrgenmode))
		return too_big(h);
	return brisk_talk(h, nlh, NULL, NULL);
}

/* The one request a veth peer created in another namespace may need (its
 * addrgenmode), through a socket there. */
static int peer_addrgenmode(struct brisk_nl *h, const struct brisk_link_attrs *p)
{
	struct brisk_link_attrs only;
	struct brisk_nl *t;
	int ret, err = 0;

	brisk_link_attrs_init(&only);
	only.addrgenmode = p->addrgenmode;
	if (p->netns_fd < 0)
		return setlink_once(h, 0, p->ifname, &only, false, true);
	t = brisk_nl_temp(p->netns_fd, NETLINK_ROUTE, h->seq, &err);
	if (!t) {
		h->err = err;
		h->ext[0] = '\0';
		return -1;
	}
	ret = setlink_once(t, 0, p->ifname, &only, false, true);
	if (ret < 0) {
		h->err = t->err;
		memcpy(h->ext, t->ext, sizeof(h->ext));
	}
	brisk_nl_temp_close(t);
	return ret;
}

int brisk_link_del(struct brisk_nl *h, int ifindex, const char *name)
{
	struct nlmsghdr *nlh = link_msg(h, RTM_DELLINK, NLM_F_ACK, AF_UNSPEC,
					ifindex > 0 ? ifindex : 0, NULL);

	if (ifindex <= 0 && !mnl_attr_put_strz_check(nlh, BRISK_BUFSZ, IFLA_IFNAME, name))
		return too_big(h);
	return brisk_talk(h, nlh, NULL, NULL);
}

/* Undo a half-made link_add, keeping the error that caused it. */
static int add_rollback(struct brisk_nl *h, int ifindex)
{
	int err = h->err;
	char ext[BRISK_EXTSZ];

	memcpy(ext, h->ext, sizeof(ext));
	brisk_link_del(h, ifindex, NULL);
	h->err = err;
	memcpy(h->ext, ext, sizeof(ext));
	return -1;
}

int brisk_link_add(struct brisk_nl *h, const struct brisk_link_spec *s)
{
	const struct brisk_link_attrs *a = &s->link;
	struct ifinfomsg *ifm, *pifm;
	struct nlmsghdr *nlh;
	struct nlattr *info, *data, *peer;
	struct idx_ctx c;
	/* The kernel refuses IFLA_AF_SPEC while creating a link (the new
	 * device has no inet6 state yet: EAFNOSUPPORT), so addrgenmode is a
	 * second request, and "up" waits for it so that no link-local
	 * address is made in between. */
	bool late_up = a->up == 1 && a->addrgenmode >= 0;
	int ifindex;

	nlh = link_msg(h, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK | NLM_F_ECHO,
		       AF_UNSPEC, 0, &ifm);
	if (!late_up)
		set_updown(ifm, a->up == 1 ? 1 : -1);
	if (!put_attrs(nlh, a->ifname, a))
		return too_big(h);
	if (!(info = mnl_attr_nest_start_check(nlh, BRISK_BUFSZ, IFLA_LINKINFO)) ||
	    !mnl_attr_put_strz_check(nlh, BRISK_BUFSZ, IFLA_INFO_KIND, s->kind))
		return too_big(h);
	if (bridge_attrs_any(&s->bridge) && !put_bridge_data(nlh, &s->bridge))
		return too_big(h);
	if (s->has_peer) {
		if (!(data = mnl_attr_nest_start_check(nlh, BRISK_BUFSZ, IFLA_INFO_DATA)) ||
		    !(peer = mnl_attr_nest_start_check(nlh, BRISK_BUFSZ, VETH_INFO_PEER)))
			return too_big(h);
		if (nlh->nlmsg_len + MNL_ALIGN(sizeof(*pifm)) > BRISK_BUFSZ)
			return too_big(h);
		pifm = mnl_nlmsg_get_payload_tail(nlh);
		memset(pifm, 0, sizeof(*pifm));
		pifm->ifi_family = AF_UNSPEC;
		nlh->nlmsg_len += MNL_ALIGN(sizeof(*pifm));
		if (!put_attrs(nlh, s->peer.ifname, &s->peer))
			return too_big(h);
		mnl_attr_nest_end(nlh, peer);
		mnl_attr_nest_end(nlh, data);
	}
	mnl_attr_nest_end(nlh, info);

	/* NLM_F_ECHO: kernels since 6.2 send the new link back; older ones
	 * ignore the flag and we ask by name. */
	memset(&c, 0, sizeof(c));
	c.want = a->ifname;
	if (brisk_talk(h, nlh, cb_idx, &c) < 0)
		return -1;
	ifindex = c.ifindex;
	if (!ifindex) {
		if (get_idx(h, 0, a->ifname, &c) < 0)
			return -1;
		ifindex = c.ifindex;
	}

	if (a->addrgenmode >= 0) {
		struct brisk_link_attrs only;
		brisk_link_attrs_init(&only);
		only.addrgenmode = a->addrgenmode;
		if (setlink_once(h, ifindex, NULL, &only, false, true) < 0)
			return add_rollback(h, ifindex);
	}
	if (s->has_peer && s->peer.addrgenmode >= 0 && s->peer.ifname &&
	    peer_addrgenmode(h, &s->peer) < 0)
		return add_rollback(h, ifindex);
	if (late_up) {
		struct brisk_link_attrs only;
		brisk_link_attrs_init(&only);
		only.up = 1;
		if (setlink_once(h, ifindex, NULL, &only, true, false) < 0)
			return add_rollback(h, ifindex);
	}
	return ifindex;
}

int brisk_link_set(struct brisk_nl *h, int ifindex, const char *name,
		   const struct brisk_link_attrs *a)
{
	bool late_up = a->up == 1 && a->addrgenmode >= 0;
	struct brisk_link_attrs up;

	if (late_up && a->netns_fd >= 0) {
		/* the second request would have to be sent in the new namespace */
		h->err = EINVAL;
		snprintf(h->ext, sizeof(h->ext),
			 "up with addrgenmode cannot be combined with netns: bring the link up there");
		return -1;
	}
	if (a->ifname && ifindex <= 0) {
		ifindex = brisk_link_ifindex(h, name);
		if (ifindex <= 0)
			return -1;
	}
	if (!late_up)
		return setlink_once(h, ifindex, name, a, true, true);
	/* Flags are applied before IFLA_AF_SPEC inside one request: bring
	 * the link up only once its addrgenmode is in place. */
	if (setlink_once(h, ifindex, name, a, false, true) < 0)
		return -1;
	brisk_link_attrs_init(&up);
	up.up = 1;
	return setlink_once(h, ifindex, ifindex > 0 ? NULL : name, &up, true, false);
}

int brisk_bridge_set(struct brisk_nl *h, int ifindex, const char *name,
		     const struct brisk_bridge_attrs *b)
{
	struct nlmsghdr *nlh = link_msg(h, RTM_NEWLINK, NLM_F_ACK, AF_UNSPEC,
					ifindex > 0 ? ifindex : 0, NULL);
	struct nlattr *info;

	if (ifindex <= 0 && !mnl_attr_put_strz_check(nlh, BRISK_BUFSZ, IFLA_IFNAME, name))
		return too_big(h);
	if (!(info = mnl_attr_nest_start_check(nlh, BRISK_BUFSZ, IFLA_LINKINFO)) ||
	    !mnl_attr_put_strz_check(nlh, BRISK_BUFSZ, IFLA_INFO_KIND, "bridge") ||
	    !put_bridge_data(nlh, b))
		return too_big(h);
	mnl_attr_nest_end(nlh, info);
	return brisk_talk(h, nlh, NULL, NULL);
}

int brisk_brport_set(struct brisk_nl *h, int ifindex, const struct brisk_brport_attrs *p)
{
	struct nlmsghdr *nlh = link_msg(h, RTM_SETLINK, NLM_F_ACK, AF_BRIDGE, ifindex, NULL);
	struct nlattr *pi;
	bool ok;

	/* mnl_attr_nest_start sets NLA_F_NESTED: the kernel then reads
	 * IFLA_BRPORT_* attributes rather than the old one-byte state. */
	ok = (pi = mnl_attr_nest_start_check(nlh, BRISK_BUFSZ, IFLA_PROTINFO)) != NULL;
	if (ok && p->hairpin >= 0)
		ok = mnl_attr_put_u8_check(nlh, BRISK_BUFSZ, IFLA_BRPORT_MODE, (uint8_t)p->hairpin);
	if (ok && p->learning >= 0)
		ok = mnl_attr_put_u8_check(nlh, BRISK_BUFSZ, IFLA_BRPORT_LEARNING, (uint8_t)p->learning);
	if (ok && p->flood >= 0)
		ok = mnl_attr_put_u8_check(nlh, BRISK_BUFSZ, IFLA_BRPORT_UNICAST_FLOOD, (uint8_t)p->flood);
	if (ok && p->isolated >= 0)
		ok = mnl_attr_put_u8_check(nlh, BRISK_BUFSZ, IFLA_BRPORT_ISOLATED, (uint8_t)p->isolated);
	if (!ok)
		return too_big(h);
	mnl_attr_nest_end(nlh, pi);
	return brisk_talk(h, nlh, NULL, NULL);
}

/* --- Lua: arguments --- */

static void noextra(lua_State *L, int last)
{
	if (lua_gettop(L) > last)
		luaL_argerror(L, last + 1, "no more arguments expected");
}

/* The spec table of a setter, {dev=LINK, ...} at index 2 and the last
 * argument: raises naming `what` when it is not a table, has a key not in
 * `keys` or has no dev. Leaves the table's dev on the stack. */
static void setter_spec(lua_State *L, const char *what, const char *const keys[])
{
	luaL_checktype(L, 2, LUA_TTABLE);
	noextra(L, 2);
	brisk_checkkeys(L, 2, what, keys);
	if (brisk_rawfield(L, 2, "dev") == LUA_TNIL)
		luaL_error(L, "%s: field 'dev' is required", what);
}

/* A link argument that must become an ifindex (GET by name when needed).
 * Returns the ifindex, or 0 after pushing the failure triple. */
static int link_arg_index(lua_State *L, struct brisk_nl *h, int idx, const char *op,
			  const char *what, char *label, size_t labellen, int *pushed)
{
	const char *name, *why;
	int ifindex, err;

	*pushed = 0;
	err = brisk_link_arg(L, idx, what, &ifindex, &name, label, labellen, &why);
	if (err) {
		*pushed = brisk_failmsg(L, op, label, err, why);
		return 0;
	}
	if (ifindex)
		return ifindex;
	ifindex = brisk_link_ifindex(h, name);
	if (ifindex <= 0) {
		if (ifindex == 0) {
			h->err = ENODEV;
			h->ext[0] = '\0';
		}
		*pushed = brisk_nlfail(L, h, op, label);
		return 0;
	}
	return ifindex;
}

static bool opt_present(lua_State *L, int t, const char *k)
{
	bool p = brisk_rawfield(L, t, k) != LUA_TNIL;
	lua_pop(L, 1);
	return p;
}

static int64_t opt_u32(lua_State *L, int t, const char *what, const char *k)
{
	lua_Integer v;

	if (!opt_present(L, t, k))
		return -1;
	v = brisk_optinteger(L, t, k, 0);
	if (v < 0 || v > (lua_Integer)UINT32_MAX)
		luaL_error(L, "%s: field '%s' out of range (0..4294967295)", what, k);
	return v;
}

/* A boolean, or 0/1, as 0/1; -1 when absent. */
static int opt_flag(lua_State *L, int t, const char *what, const char *k)
{
	int ty = brisk_rawfield(L, t, k), v = -1;

	if (ty == LUA_TBOOLEAN)
		v = lua_toboolean(L, -1);
	else if (ty == LUA_TNUMBER && lua_isinteger(L, -1) &&
		 (lua_tointeger(L, -1) == 0 || lua_tointeger(L, -1) == 1))
		v = (int)lua_tointeger(L, -1);
	else if (ty != LUA_TNIL)
		luaL_error(L, "%s: field '%s' must be a boolean or 0/1", what, k);
	lua_pop(L, 1);
	return v;
}

static int opt_addrgenmode(lua_State *L, int t, const char *what)
{
	const char *s = brisk_optstring(L, t, "addrgenmode", NULL);
	int i;

	if (!s)
		return -1;
	for (i = 0; addrgenmodes[i]; i++)
		if (!strcmp(s, addrgenmodes[i]))
			return i;
	return luaL_error(L, "%s: field 'addrgenmode' must be eui64, none, stable_secret or random (got '%s')",
			  what, s);
}

static void opt_address(lua_State *L, int t, const char *what, struct brisk_link_attrs *a)
{
	const char *s = brisk_optstring(L, t, "address", NULL);

	if (!s)
		return;
	if (brisk_parse_mac(s, a->address) < 0)
		luaL_error(L, "%s: field 'address' must be a MAC address like 02:42:ac:11:00:02 (got '%s')",
			   what, s);
	a->has_address = true;
}

/* A namespace field must be a name, a path or a pid: checked here so that
 * misuse raises naming the field; opened later by brisk_netns_fd. */
static bool opt_netns_check(lua_State *L, int t, const char *what)
{
	int ty = brisk_rawfield(L, t, "netns");
	bool present = ty != LUA_TNIL;

	if (ty == LUA_TSTRING && lua_rawlen(L, -1) == 0)
		luaL_error(L, "%s: field 'netns' is empty", what);
	else if (ty == LUA_TNUMBER && (!lua_isinteger(L, -1) || lua_tointeger(L, -1) <= 0))
		luaL_error(L, "%s: field 'netns' pid must be a positive integer", what);
	else if (present && ty != LUA_TSTRING && ty != LUA_TNUMBER)
		luaL_error(L, "%s: field 'netns' must be a name, a path or a pid (got %s)", what,
			   lua_typename(L, ty));
	lua_pop(L, 1);
	return present;
}

/* Open the namespace in t.netns; returns the fd or -1 (errno set). */
static int opt_netns_open(lua_State *L, int t, char *label, size_t labellen)
{
	int fd;

	brisk_rawfield(L, t, "netns");
	snprintf(label, labellen, "%s", luaL_tolstring(L, -1, NULL));
	lua_pop(L, 1);
	fd = brisk_netns_fd(L, lua_gettop(L));
	lua_pop(L, 1);
	return fd;
}

static void check_ifname(lua_State *L, int t, const char *what, const char **name, int *err,
			 const char **why)
{
	*name = brisk_optstring(L, t, "ifname", NULL);
	if (*name && !*err && (*why = brisk_ifname_invalid(*name)))
		*err = strlen(*name) >= IFNAMSIZ ? ENAMETOOLONG : EINVAL;
}

/* --- Lua: methods --- */

/***
 * One link, by a GET on its name or index (never a dump).
 * @function nl:link_get
 * @param link a name, an ifindex or a link table
 * @return link table with the keys of `ip -j -d link show`
 * @return[2] nil, "link_get X: <strerror>", errno (ENODEV when absent,
 *   EINVAL / ENAMETOOLONG for an invalid name, before any request)
 */
static int l_link_get(lua_State *L)
{
	struct brisk_nl *h = brisk_checknl(L, 1);
	char label[64];
	const char *name, *why;
	int ifindex, err;

	luaL_checkany(L, 2);
	noextra(L, 2);
	err = brisk_link_arg(L, 2, "link_get", &ifindex, &name, label, sizeof(label), &why);
	if (err)
		return brisk_failmsg(L, "link_get", label, err, why);
	if (get_link(L, h, ifindex, name) < 0)
		return brisk_nlfail(L, h, "link_get", label);
	return 1;
}

/***
 * All links, or those matching a filter, by one dump (retried whole when
 * the kernel marks it interrupted). The kernel filters when it can (strict
 * checking: IFLA_MASTER, IFLA_INFO_KIND); brisk filters again in C, since
 * a kernel that does not know the kind returns everything.
 * @function nl:link_list
 * @tparam[opt] table filter {kind = STRING, master = LINK}
 * @return array of link tables
 * @return[2] nil, "link_list: <strerror>", errno (ENODEV for a missing
 *   master, EAGAIN when every try was interrupted)
 */
static int l_link_list(lua_State *L)
{
	static const char *const keys[] = { "kind", "master", NULL };
	struct brisk_nl *h = brisk_checknl(L, 1);
	struct nlmsghdr *nlh;
	struct ifinfomsg *ifm;
	struct names n;
	struct get_ctx g;
	struct idx_ctx master;
	char label[64];
	const char *mname, *why;
	int i, tries, err, mindex;

	memset(&g, 0, sizeof(g));
	if (!lua_isnoneornil(L, 2)) {
		luaL_checktype(L, 2, LUA_TTABLE);
		brisk_checkkeys(L, 2, "link_list", keys);
		g.kind = brisk_optstring(L, 2, "kind", NULL);
		if (opt_present(L, 2, "master")) {
			brisk_rawfield(L, 2, "master");
			err = brisk_link_arg(L, -1, "link_list: field 'master'", &mindex, &mname,
				       label, sizeof(label), &why);
			if (err)
				return brisk_failmsg(L, "link_list master", label, err, why);
			if (get_idx(h, mindex, mname, &master) < 0)
				return brisk_nlfail(L, h, "link_list master", label);
			g.master = master.ifindex;
			lua_pop(L, 1);
		}
	}
	noextra(L, 2);
	lua_settop(L, 2);

	for (tries = 0; tries < DUMP_TRIES; tries++) {
		lua_settop(L, 2);
		lua_newtable(L);                /* 3: result */
		names_new(L, &n);               /* 4, 5 */
		if (g.master)
			names_add(L, &n, master.ifindex, master.name, master.flags);
		g.L = L;
		g.names = &n;
		g.list = 3;
		g.n = 0;
		nlh = link_msg(h, RTM_GETLINK, NLM_F_DUMP, AF_UNSPEC, 0, &ifm);
		mnl_attr_put_u32_check(nlh, BRISK_BUFSZ, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
		if (g.master)
			mnl_attr_put_u32_check(nlh, BRISK_BUFSZ, IFLA_MASTER, (uint32_t)g.master);
		if (g.kind) {
			struct nlattr *info = mnl_attr_nest_start_check(nlh, BRISK_BUFSZ, IFLA_LINKINFO);
			if (!info || !mnl_attr_put_strz_check(nlh, BRISK_BUFSZ, IFLA_INFO_KIND, g.kind)) {
				too_big(h);
				return brisk_nlfail(L, h, "link_list", NULL);
			}
			mnl_attr_nest_end(nlh, info);
		}
		if (brisk_talk(h, nlh, cb_link, &g) < 0)
			return brisk_nlfail(L, h, "link_list", NULL);
		if (!h->dump_intr)
			break;
	}
	if (tries == DUMP_TRIES)
		return brisk_failmsg(L, "link_list", NULL, EAGAIN,
				     "dump interrupted by concurrent changes, every try");
	for (i = 1; i <= g.n; i++) {
		lua_rawgeti(L, 3, i);
		resolve_names(L, h, &n, -1);
		lua_pop(L, 1);
	}
	lua_settop(L, 3);
	return 1;
}

/* Parse the attributes link_add and link_set share (not ifname, master,
 * netns). */
static void parse_common(lua_State *L, int t, const char *what, struct brisk_link_attrs *a)
{
	a->up = brisk_optboolean(L, t, "up", -1);
	a->mtu = opt_u32(L, t, what, "mtu");
	a->txqlen = opt_u32(L, t, what, "txqlen");
	opt_address(L, t, what, a);
	a->addrgenmode = opt_addrgenmode(L, t, what);
}

static void parse_bridge(lua_State *L, int t, const char *what, struct brisk_bridge_attrs *b)
{
	b->stp_state = opt_u32(L, t, what, "stp_state");
	b->vlan_filtering = opt_flag(L, t, what, "vlan_filtering");
	b->ageing_time = opt_u32(L, t, what, "ageing_time");
	b->forward_delay = opt_u32(L, t, what, "forward_delay");
}

/***
 * Create a link in one RTM_NEWLINK (NLM_F_CREATE|NLM_F_EXCL). A veth peer
 * given a netns is created directly in that namespace. addrgenmode needs
 * one more request per link (the kernel refuses IFLA_AF_SPEC at creation),
 * and `up` then waits for it; on any later failure the new link is
 * deleted again.
 * @function nl:link_add
 * @tparam table spec {ifname=, kind="bridge"|"veth"|"dummy", mtu=, address=,
 *   txqlen=, up=bool, master=LINK, addrgenmode="eui64"|"none"|"stable_secret"|"random",
 *   bridge={stp_state=, vlan_filtering=, ageing_time=, forward_delay=},
 *   peer={ifname=, address=, mtu=, txqlen=, netns=NAME|PATH|PID, addrgenmode=}}
 * @return ifindex of the new link
 * @return[2] nil, "link_add X: <strerror> (kernel: ...)", errno (EEXIST,
 *   ENODEV for a missing master, ENOENT for a missing peer namespace,
 *   EINVAL / ENAMETOOLONG for an invalid name before any request)
 */
static int l_link_add(lua_State *L)
{
	static const char *const keys[] = {
		"ifname", "kind", "mtu", "address", "txqlen", "up", "master",
		"addrgenmode", "bridge", "peer", NULL
	};
	static const char *const peer_keys[] = {
		"ifname", "address", "mtu", "txqlen", "netns", "addrgenmode", NULL
	};
	static const char *const bridge_keys[] = {
		"stp_state", "vlan_filtering", "ageing_time", "forward_delay", NULL
	};
	static const char *const kinds[] = { "bridge", "veth", "dummy", NULL };
	struct brisk_nl *h = brisk_checknl(L, 1);
	struct brisk_link_spec s;
	char label[64], nslabel[128];
	const char *why = NULL, *pwhy = NULL;
	int err = 0, perr = 0, i, pushed, ret, peer_netns = 0;

	luaL_checktype(L, 2, LUA_TTABLE);
	noextra(L, 2);
	brisk_checkkeys(L, 2, "link_add", keys);
	memset(&s, 0, sizeof(s));
	brisk_link_attrs_init(&s.link);
	brisk_link_attrs_init(&s.peer);
	brisk_bridge_attrs_init(&s.bridge);

	s.kind = brisk_optstring(L, 2, "kind", NULL);
	if (!s.kind)
		return luaL_error(L, "link_add: field 'kind' is required");
	for (i = 0; kinds[i] && strcmp(kinds[i], s.kind); i++)
		;
	if (!kinds[i])
		return luaL_error(L, "link_add: field 'kind' must be bridge, veth or dummy (got '%s')", s.kind);
	check_ifname(L, 2, "link_add", &s.link.ifname, &err, &why);
	if (!s.link.ifname)
		return luaL_error(L, "link_add: field 'ifname' is required");
	parse_common(L, 2, "link_add", &s.link);
	if (s.link.up == 0)
		s.link.up = -1;         /* a new link is down anyway */

	if (brisk_rawfield(L, 2, "bridge") != LUA_TNIL) {
		if (!lua_istable(L, -1))
			return luaL_error(L, "link_add: field 'bridge' must be a table");
		if (strcmp(s.kind, "bridge"))
			return luaL_error(L, "link_add: field 'bridge' needs kind 'bridge'");
		brisk_checkkeys(L, -1, "link_add bridge", bridge_keys);
		parse_bridge(L, lua_gettop(L), "link_add bridge", &s.bridge);
	}
	lua_pop(L, 1);

	if (brisk_rawfield(L, 2, "peer") != LUA_TNIL) {
		int p = lua_gettop(L);
		if (!lua_istable(L, p))
			return luaL_error(L, "link_add: field 'peer' must be a table");
		if (strcmp(s.kind, "veth"))
			return luaL_error(L, "link_add: field 'peer' needs kind 'veth'");
		brisk_checkkeys(L, p, "link_add peer", peer_keys);
		s.has_peer = true;
		check_ifname(L, p, "link_add peer", &s.peer.ifname, &perr, &pwhy);
		s.peer.mtu = opt_u32(L, p, "link_add peer", "mtu");
		s.peer.txqlen = opt_u32(L, p, "link_add peer", "txqlen");
		opt_address(L, p, "link_add peer", &s.peer);
		s.peer.addrgenmode = opt_addrgenmode(L, p, "link_add peer");
		if (s.peer.addrgenmode >= 0 && !s.peer.ifname)
			return luaL_error(L, "link_add peer: field 'addrgenmode' needs 'ifname'");
		peer_netns = opt_netns_check(L, p, "link_add peer");
	}
	lua_pop(L, 1);

	/* everything below may fail without raising */
	snprintf(label, sizeof(label), "%s", s.link.ifname);
	if (err)
		return brisk_failmsg(L, "link_add", label, err, why);
	if (perr)
		return brisk_failmsg(L, "link_add peer", s.peer.ifname, perr, pwhy);
	if (opt_present(L, 2, "master")) {
		brisk_rawfield(L, 2, "master");
		s.link.master = link_arg_index(L, h, -1, "link_add master", "link_add: field 'master'",
					       nslabel, sizeof(nslabel), &pushed);
		if (!s.link.master)
			return pushed;
		lua_pop(L, 1);
	}
	if (peer_netns) {
		brisk_rawfield(L, 2, "peer");
		s.peer.netns_fd = opt_netns_open(L, lua_gettop(L), nslabel, sizeof(nslabel));
		lua_pop(L, 1);
		if (s.peer.netns_fd < 0)
			return brisk_fail(L, "link_add peer netns", nslabel, errno);
	}
	ret = brisk_link_add(h, &s);
	if (s.peer.netns_fd >= 0)
		close(s.peer.netns_fd);
	if (ret < 0)
		return brisk_nlfail(L, h, "link_add", label);
	lua_pushinteger(L, ret);
	return 1;
}

/***
 * Delete a link (a veth takes its peer along).
 * @function nl:link_del
 * @param link a name, an ifindex or a link table
 * @return true
 * @return[2] nil, "link_del X: <strerror>", errno (ENODEV when absent,
 *   EINVAL / ENAMETOOLONG for an invalid name, before any request)
 */
static int l_link_del(lua_State *L)
{
	struct brisk_nl *h = brisk_checknl(L, 1);
	char label[64];
	const char *name, *why;
	int ifindex, err;

	luaL_checkany(L, 2);
	noextra(L, 2);
	err = brisk_link_arg(L, 2, "link_del", &ifindex, &name, label, sizeof(label), &why);
	if (err)
		return brisk_failmsg(L, "link_del", label, err, why);
	if (brisk_link_del(h, ifindex, name) < 0)
		return brisk_nlfail(L, h, "link_del", label);
	lua_pushboolean(L, 1);
	return 1;
}

/***
 * Change a link in one RTM_NEWLINK (two when both `up` and `addrgenmode`
 * are given: the mode first, so that no link-local address is made).
 * @function nl:link_set
 * @tparam table spec {dev=LINK, up=bool, mtu=, address=, master=LINK|false,
 *   ifname=NEWNAME, txqlen=, addrgenmode=, netns=NAME|PATH|PID}
 *   (master=false detaches; netns moves the link there)
 * @return true
 * @return[2] nil, "link_set X: <strerror> (kernel: ...)", errno (ENODEV,
 *   ENOENT for a missing namespace, EINVAL / ENAMETOOLONG for an invalid
 *   name, before any request)
 */
static int l_link_set(lua_State *L)
{
	static const char *const keys[] = {
		"dev", "up", "mtu", "address", "master", "ifname", "txqlen",
		"addrgenmode", "netns", NULL
	};
	struct brisk_nl *h = brisk_checknl(L, 1);
	struct brisk_link_attrs a;
	char label[64], mlabel[64], nslabel[128];
	const char *name, *why = NULL, *nwhy = NULL;
	int ifindex, err, nerr = 0, pushed, ret, netns;

	setter_spec(L, "link_set", keys);
	brisk_link_attrs_init(&a);
	err = brisk_link_arg(L, -1, "link_set: field 'dev'", &ifindex, &name, label, sizeof(label), &why);
	lua_pop(L, 1);
	check_ifname(L, 2, "link_set", &a.ifname, &nerr, &nwhy);
	parse_common(L, 2, "link_set", &a);
	netns = opt_netns_check(L, 2, "link_set");
	if (brisk_rawfield(L, 2, "master") == LUA_TBOOLEAN && lua_toboolean(L, -1))
		return luaL_error(L, "link_set: field 'master' must be a link or false");
	lua_pop(L, 1);

	if (err)
		return brisk_failmsg(L, "link_set", label, err, why);
	if (nerr)
		return brisk_failmsg(L, "link_set ifname", a.ifname, nerr, nwhy);
	if (brisk_rawfield(L, 2, "master") == LUA_TBOOLEAN) {
		a.master = 0;
	} else if (!lua_isnil(L, -1)) {
		a.master = link_arg_index(L, h, -1, "link_set master", "link_set: field 'master'",
					  mlabel, sizeof(mlabel), &pushed);
		if (!a.master)
			return pushed;
	}
	lua_pop(L, 1);
	if (netns) {
		a.netns_fd = opt_netns_open(L, 2, nslabel, sizeof(nslabel));
		if (a.netns_fd < 0)
			return brisk_fail(L, "link_set netns", nslabel, errno);
	}
	ret = brisk_link_set(h, ifindex, name, &a);
	if (a.netns_fd >= 0)
		close(a.netns_fd);
	if (ret < 0)
		return brisk_nlfail(L, h, "link_set", label);
	lua_pushboolean(L, 1);
	return 1;
}

/***
 * Set bridge options (IFLA_LINKINFO kind bridge, IFLA_INFO_DATA).
 * @function nl:bridge_set
 * @tparam table spec {dev=LINK, stp_state=, vlan_filtering=bool|0|1,
 *   ageing_time=CENTISECONDS, forward_delay=CENTISECONDS}
 * @return true
 * @return[2] nil, "bridge_set X: <strerror> (kernel: ...)", errno (ENODEV,
 *   EOPNOTSUPP when X is not a bridge or the kernel lacks the option)
 */
static int l_bridge_set(lua_State *L)
{
	static const char *const keys[] = {
		"dev", "stp_state", "vlan_filtering", "ageing_time", "forward_delay", NULL
	};
	struct brisk_nl *h = brisk_checknl(L, 1);
	struct brisk_bridge_attrs b;
	char label[64];
	const char *name, *why;
	int ifindex, err;

	setter_spec(L, "bridge_set", keys);
	err = brisk_link_arg(L, -1, "bridge_set: field 'dev'", &ifindex, &name, label, sizeof(label), &why);
	lua_pop(L, 1);
	brisk_bridge_attrs_init(&b);
	parse_bridge(L, 2, "bridge_set", &b);
	if (err)
		return brisk_failmsg(L, "bridge_set", label, err, why);
	if (brisk_bridge_set(h, ifindex, name, &b) < 0)
		return brisk_nlfail(L, h, "bridge_set", label);
	lua_pushboolean(L, 1);
	return 1;
}

/***
 * A bridge port's settings, with the keys of `bridge -j -d link show`.
 * @function nl:brport_get
 * @param link a name, an ifindex or a link table
 * @return table {ifindex, ifname, flags, mtu, master, link, state, priority,
 *   cost, hairpin, guard, root_block, fastleave, learning, flood,
 *   mcast_flood, bcast_flood, mcast_router, mcast_to_unicast,
 *   neigh_suppress, vlan_tunnel, isolated, locked}
 * @return[2] nil, "brport_get X: <strerror>", errno (ENODEV; EOPNOTSUPP
 *   when X is not a bridge port)
 */
static int l_brport_get(lua_State *L)
{
	static const char *const link_keys[] = {
		"ifindex", "link", "ifname", "flags", "mtu", "master", NULL
	};
	static const struct { const char *from, *to; } port_keys[] = {
		{ "state", "state" }, { "priority", "priority" }, { "cost", "cost" },
		{ "hairpin", "hairpin" }, { "guard", "guard" }, { "root_block", "root_block" },
		{ "fastleave", "fastleave" }, { "learning", "learning" }, { "flood", "flood" },
		{ "mcast_flood", "mcast_flood" }, { "bcast_flood", "bcast_flood" },
		{ "multicast_router", "mcast_router" }, { "mcast_to_unicast", "mcast_to_unicast" },
		{ "neigh_suppress", "neigh_suppress" }, { "vlan_tunnel", "vlan_tunnel" },
		{ "isolated", "isolated" }, { "locked", "locked" },
	};
	struct brisk_nl *h = brisk_checknl(L, 1);
	char label[64];
	const char *name, *why;
	int ifindex, err, t, out, data;
	size_t i;

	luaL_checkany(L, 2);
	noextra(L, 2);
	err = brisk_link_arg(L, 2, "brport_get", &ifindex, &name, label, sizeof(label), &why);
	if (err)
		return brisk_failmsg(L, "brport_get", label, err, why);
	if (get_link(L, h, ifindex, name) < 0)
		return brisk_nlfail(L, h, "brport_get", label);
	t = lua_gettop(L);
	brisk_rawfield(L, t, "linkinfo");
	if (!lua_istable(L, -1) || brisk_rawfield(L, -1, "info_slave_kind") != LUA_TSTRING ||
	    strcmp(lua_tostring(L, -1), "bridge") ||
	    brisk_rawfield(L, -2, "info_slave_data") != LUA_TTABLE)
		return brisk_failmsg(L, "brport_get", label, EOPNOTSUPP, "not a bridge port");
	data = lua_gettop(L);
	lua_createtable(L, 0, 24);
	out = lua_gettop(L);
	for (i = 0; link_keys[i]; i++) {
		brisk_rawfield(L, t, link_keys[i]);
		lua_setfield(L, out, link_keys[i]);
	}
	for (i = 0; i < sizeof(port_keys) / sizeof(port_keys[0]); i++) {
		brisk_rawfield(L, data, port_keys[i].from);
		lua_setfield(L, out, port_keys[i].to);
	}
	return 1;
}

/***
 * Change a bridge port's flags via RTM_SETLINK (AF_BRIDGE) with
 * IFLA_PROTINFO|NLA_F_NESTED and IFLA_BRPORT_* (not sysfs).
 * @function nl:brport_set
 * @tparam table spec {dev=LINK, hairpin=bool, learning=bool, flood=bool,
 *   isolated=bool}
 * @return true
 * @return[2] nil, "brport_set X: <strerror> (kernel: ...)", errno (ENODEV;
 *   EOPNOTSUPP when X is not a bridge port)
 */
static int l_brport_set(lua_State *L)
{
	static const char *const keys[] = {
		"dev", "hairpin", "learning", "flood", "isolated", NULL
	};
	struct brisk_nl *h = brisk_checknl(L, 1);
	struct brisk_brport_attrs p;
	char label[64];
	int ifindex, pushed;

	setter_spec(L, "brport_set", keys);
	p.hairpin = opt_flag(L, 2, "brport_set", "hairpin");
	p.learning = opt_flag(L, 2, "brport_set", "learning");
	p.flood = opt_flag(L, 2, "brport_set", "flood");
	p.isolated = opt_flag(L, 2, "brport_set", "isolated");
	ifindex = link_arg_index(L, h, 3, "brport_set", "brport_set: field 'dev'", label,
				 sizeof(label), &pushed);
	if (!ifindex)
		return pushed;
	if (brisk_brport_set(h, ifindex, &p) < 0)
		return brisk_nlfail(L, h, "brport_set", label);
	lua_pushboolean(L, 1);
	return 1;
}

static const luaL_Reg link_meth[] = {
	{ "link_get", l_link_get },
	{ "link_list", l_link_list },
	{ "link_add", l_link_add },
	{ "link_del", l_link_del },
	{ "link_set", l_link_set },
	{ "bridge_set", l_bridge_set },
	{ "brport_get", l_brport_get },
	{ "brport_set", l_brport_set },
	{ NULL, NULL }
};

void brisk_open_link(lua_State *L, int mod, int meth)
{
	(void)mod;
	lua_pushvalue(L, meth);
	luaL_setfuncs(L, link_meth, 0);
	lua_pop(L, 1);
}
