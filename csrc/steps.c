/***
 * steps.c - the bridge network step functions (libnetwork's setup* steps).
 *
 * Each step is a single-purpose, re-runnable reconciler: it reads the
 * current state, and performs only the operations still needed. Steps never
 * talk netlink themselves: they call the methods of the handle they are
 * given (`h:link_get`, `h:addr_add`, `h:sysctl_set`, ...). A real brisk.nl
 * handle executes them; a recorder (dry run) or a journal (rollback) can
 * stand in for it, which is how plans and exact undo work.
 *
 * Every step is `core.steps.<name>(h, net)` where `net` is the network
 * configuration table built by brisk's Lua flow (bridge, address_ipv4,
 * address_ipv6, mtu, ...). It returns true, or nil, message, errno.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <arpa/inet.h>
#include "brisk.h"

#define H 1     /* the handle */
#define NET 2   /* the network table */

/* Call h:<m>(<argument on top of the stack>) and leave its first three
 * results on the stack (the argument is consumed). Returns whether the
 * first result is truthy. */
static int hcall(lua_State *L, const char *m)
{
	if (lua_getfield(L, H, m) != LUA_TFUNCTION)
		luaL_error(L, "handle has no method '%s'", m);
	lua_insert(L, -2);
	lua_pushvalue(L, H);
	lua_insert(L, -2);
	lua_call(L, 2, 3);
	return lua_toboolean(L, -3);
}

/* The same for a method with one string argument. */
static int hcall_s(lua_State *L, const char *m, const char *arg)
{
	lua_pushstring(L, arg);
	return hcall(L, m);
}

static int hcall_ss(lua_State *L, const char *m, const char *a, const char *b)
{
	if (lua_getfield(L, H, m) != LUA_TFUNCTION)
		luaL_error(L, "handle has no method '%s'", m);
	lua_pushvalue(L, H);
	lua_pushstring(L, a);
	lua_pushstring(L, b);
	lua_call(L, 3, 3);
	return lua_toboolean(L, -3);
}

/* Return the failure triple left by hcall. */
static int pass_fail(lua_State *L)
{
	return 3;
}

/* Every step takes (h, tbl). */
static void check_args(lua_State *L)
{
	if (lua_isnoneornil(L, H))
		luaL_argerror(L, H, "handle expected");
	luaL_checktype(L, NET, LUA_TTABLE);
}

static const char *net_string(lua_State *L, const char *k, int required)
{
	check_args(L);
	const char *s = brisk_optstring(L, NET, k, NULL);
	if (!s && required)
		luaL_error(L, "network table: field '%s' is required", k);
	return s;
}

/* An address table (from addr_list) at `idx` as "local/prefixlen". */
static const char *addr_cidr(lua_State *L, int idx, char *out, size_t len)
{
	const char *local;
	lua_Integer plen;

	idx = lua_absindex(L, idx);
	lua_getfield(L, idx, "local");
	local = lua_tostring(L, -1);
	lua_getfield(L, idx, "prefixlen");
	plen = lua_tointeger(L, -1);
	snprintf(out, len, "%s/%lld", local ? local : "?", (long long)plen);
	lua_pop(L, 2);
	return out;
}

struct pfx {
	int af;
	int plen;
	unsigned char a[16];
};

static int pfx_parse(const char *s, struct pfx *p)
{
	memset(p, 0, sizeof(*p));
	p->af = brisk_parse_prefix(s, p->a, &p->plen);
	if (!p->af)
		return -1;
	if (p->plen < 0)
		p->plen = p->af == AF_INET ? 32 : 128;
	return 0;
}

/* Is the address `b` inside the prefix `a` (a's prefix length)? */
static int pfx_contains(const struct pfx *a, const struct pfx *b)
{
	int i, bits = a->plen;

	if (a->af != b->af)
		return 0;
	for (i = 0; bits > 0; i++, bits -= 8) {
		unsigned char m = bits >= 8 ? 0xff : (unsigned char)(0xff << (8 - bits));
		if ((a->a[i] & m) != (b->a[i] & m))
			return 0;
	}
	return 1;
}

static int pfx_same_ip(const struct pfx *a, const struct pfx *b)
{
	return a->af == b->af && !memcmp(a->a, b->a, a->af == AF_INET ? 4 : 16);
}

/* The network of a prefix as "addr/plen" (host bits cleared). */
static const char *pfx_network(const struct pfx *p, char *out, size_t len)
{
	unsigned char n[16];
	char buf[INET6_ADDRSTRLEN];
	int i, bits = p->plen, bytes = p->af == AF_INET ? 4 : 16;

	for (i = 0; i < bytes; i++, bits -= 8) {
		unsigned char m = bits >= 8 ? 0xff : bits <= 0 ? 0 :
				  (unsigned char)(0xff << (8 - bits));
		n[i] = p->a[i] & m;
	}
	brisk_ntop(p->af, n, buf);
	snprintf(out, len, "%s/%d", buf, p->plen);
	return out;
}

/* List the addresses of family `fam` on the bridge; leaves the array on top
 * of the stack. A missing bridge gives an empty list. */
static void bridge_addrs(lua_State *L, const char *bridge, const char *fam)
{
	lua_createtable(L, 0, 2);
	brisk_setstr(L, "dev", bridge);
	brisk_setstr(L, "family", fam);
	if (!hcall(L, "addr_list")) {
		lua_pop(L, 3);
		lua_newtable(L);
		return;
	}
	lua_pop(L, 2);
}

/* h:addr_add{dev=, address=, <flag>=true} ("broadcast" or "nodad"); the
 * results stay on the stack, as hcall leaves them. */
static int addr_add_flag(lua_State *L, const char *dev, const char *cidr, const char *flag)
{
	lua_createtable(L, 0, 3);
	brisk_setstr(L, "dev", dev);
	brisk_setstr(L, "address", cidr);
	brisk_setbool(L, flag, 1);
	return hcall(L, "addr_add");
}

/* h:addr_del{dev=, address=}; the same. */
static int addr_del(lua_State *L, const char *dev, const char *cidr)
{
	lua_createtable(L, 0, 2);
	brisk_setstr(L, "dev", dev);
	brisk_setstr(L, "address", cidr);
	return hcall(L, "addr_del");
}

/* Set sysctl `path` to `want` unless it already has that value. A failure
 * to read or write it returns -1 with the failure triple on the stack when
 * `must`, and is ignored otherwise. */
static int sysctl_ensure(lua_State *L, const char *path, const char *want, int must)
{
	const char *cur;
	int ok = hcall_s(L, "sysctl_get", path);

	if (ok) {
		cur = lua_tostring(L, -3);
		if (cur && !strcmp(cur, want)) {
			lua_pop(L, 3);
			return 0;
		}
		lua_pop(L, 3);
		ok = hcall_ss(L, "sysctl_set", path, want);
	}
	if (!ok && must)
		return -1;
	lua_pop(L, 3);
	return 0;
}

/***
 * setupDevice: create the bridge, down, with a random 02:42 MAC and
 * txqueuelen 0 in the same request. The ioctl path (SIOCBRADDBR) runs only
 * when netlink itself is unsupported, and the netlink error is kept.
 * @function steps.setup_device
 * @param h handle
 * @param net {bridge=, default_bridge=, mac=}
 * @return true, or nil, msg, errno
 */
static int setup_device(lua_State *L)
{
	check_args(L);
	const char *br = net_string(L, "bridge", 1);
	const char *mac = net_string(L, "mac", 0);
	unsigned char m[6];
	char macs[18];
	int err;

	if (brisk_optboolean(L, NET, "default_bridge", 0) && strcmp(br, "docker0"))
		return brisk_failmsg(L, "setup_device", br, EPERM,
				     "bridge device with non default name must be created manually");
	if (!mac) {
		m[0] = 0x02;
		m[1] = 0x42;
		if (getrandom(m + 2, 4, 0) != 4)
			return brisk_fail(L, "setup_device random mac", br, errno);
		brisk_format_mac(m, 6, macs);
		mac = macs;
	}
	lua_createtable(L, 0, 4);
	brisk_setstr(L, "ifname", br);
	brisk_setstr(L, "kind", "bridge");
	brisk_setstr(L, "address", mac);
	brisk_setint(L, "txqlen", 0);
	if (hcall(L, "link_add")) {
		lua_pop(L, 3);
		lua_pushboolean(L, 1);
		return 1;
	}
	err = (int)lua_tointeger(L, -1);
	if (err != EOPNOTSUPP && err != EPROTONOSUPPORT && err != EAFNOSUPPORT)
		return pass_fail(L);
	/* netlink cannot make bridges here: the ioctl path, as libnetwork. */
	const char *nlmsg = lua_pushfstring(L, "%s", lua_tostring(L, -2));
	if (!hcall_s(L, "ioctl_bridge_add", br)) {
		lua_pushnil(L);
		lua_pushfstring(L, "%s; ioctl fallback: %s", nlmsg, lua_tostring(L, -3));
		lua_pushvalue(L, -3);
		return 3;
	}
	lua_pop(L, 3);
	lua_createtable(L, 0, 2);
	brisk_setstr(L, "dev", br);
	brisk_setstr(L, "address", mac);
	if (!hcall(L, "link_set"))
		return pass_fail(L);
	lua_pushboolean(L, 1);
	return 1;
}

/***
 * setupDefaultSysctl: accept_ra=0 on the bridge when the file exists.
 * Never fails.
 * @function steps.setup_default_sysctl
 * @return true
 */
static int setup_default_sysctl(lua_State *L)
{
	check_args(L);
	const char *br = net_string(L, "bridge", 1);
	char path[128];

	snprintf(path, sizeof(path), "net/ipv6/conf/%s/accept_ra", br);
	sysctl_ensure(L, path, "0", 0);
	lua_pushboolean(L, 1);
	return 1;
}

/***
 * setupBridgeIPv4: make address_ipv4 (gateway/pool mask, with broadcast) the
 * bridge's IPv4 address. The address picked is the one inside the subnet,
 * else the first; when it differs it is replaced. Other addresses stay.
 * @function steps.setup_bridge_ipv4
 * @param net {bridge=, address_ipv4=CIDR}
 * @return true, or nil, msg, errno
 */
static int setup_bridge_ipv4(lua_State *L)
{
	check_args(L);
	const char *br = net_string(L, "bridge", 1);
	const char *want = net_string(L, "address_ipv4", 1);
	struct pfx w, a;
	char cidr[64];
	int list, i, n, pick = 0;

	if (pfx_parse(want, &w) < 0 || w.af != AF_INET)
		return brisk_failmsg(L, "setup_bridge_ipv4", br, EINVAL, "invalid address_ipv4");
	bridge_addrs(L, br, "inet");
	list = lua_gettop(L);
	n = (int)lua_rawlen(L, list);
	for (i = 1; i <= n && !pick; i++) {
		lua_rawgeti(L, list, i);
		addr_cidr(L, -1, cidr, sizeof(cidr));
		if (!pfx_parse(cidr, &a) && pfx_contains(&w, &a))
			pick = i;
		lua_pop(L, 1);
	}
	if (!pick && n > 0)
		pick = 1;
	if (pick) {
		lua_rawgeti(L, list, pick);
		addr_cidr(L, -1, cidr, sizeof(cidr));
		lua_pop(L, 1);
		pfx_parse(cidr, &a);
		if (pfx_same_ip(&a, &w) && a.plen == w.plen) {
			lua_pushboolean(L, 1);
			return 1;
		}
		if (!addr_del(L, br, cidr))
			return pass_fail(L);
		lua_pop(L, 3);
	}
	if (!addr_add_flag(L, br, want, "broadcast"))
		return pass_fail(L);
	lua_pushboolean(L, 1);
	return 1;
}

/* Is `want` ("addr/plen") among the addresses in the list on top? */
static int has_addr(lua_State *L, const char *want)
{
	struct pfx w, a;
	char cidr[64];
	int i, n = (int)lua_rawlen(L, -1), found = 0;

	if (pfx_parse(want, &w) < 0)
		return 0;
	for (i = 1; i <= n && !found; i++) {
		lua_rawgeti(L, -1, i);
		addr_cidr(L, -1, cidr, sizeof(cidr));
		found = !pfx_parse(cidr, &a) && pfx_same_ip(&a, &w) && a.plen == w.plen;
		lua_pop(L, 1);
	}
	return found;
}


/***
 * setupBridgeIPv6: disable_ipv6=0 on the bridge, fe80::1/64, and, when set,
 * address_ipv6 with a route to its subnet through the bridge. Both
 * addresses are added with nodad: IPAM already guarantees they are unique,
 * and duplicate address detection would leave the gateway unreachable for
 * the first seconds after the bridge comes up (libnetwork waits out DAD).
 * @function steps.setup_bridge_ipv6
 * @param net {bridge=, address_ipv6=CIDR|nil}
 * @return true, or nil, msg, errno
 */
static int setup_bridge_ipv6(lua_State *L)
{
	check_args(L);
	const char *br = net_string(L, "bridge", 1);
	const char *v6 = net_string(L, "address_ipv6", 0);
	char path[128], net[80];
	struct pfx p;

	if (v6 && (pfx_parse(v6, &p) < 0 || p.af != AF_INET6))
		return brisk_failmsg(L, "setup_bridge_ipv6", br, EINVAL, "invalid address_ipv6");
	snprintf(path, sizeof(path), "net/ipv6/conf/%s/disable_ipv6", br);
	if (sysctl_ensure(L, path, "0", 1) < 0)
		return pass_fail(L);
	bridge_addrs(L, br, "inet6");
	if (!has_addr(L, "fe80::1/64")) {
		if (!addr_add_flag(L, br, "fe80::1/64", "nodad"))
			return pass_fail(L);
		lua_pop(L, 3);
	}
	if (!v6) {
		lua_pushboolean(L, 1);
		return 1;
	}
	if (!has_addr(L, v6)) {
		if (!addr_add_flag(L, br, v6, "nodad"))
			return pass_fail(L);
		lua_pop(L, 3);
	}
	/* The route to the subnet: the address brings it (proto kernel) once
	 * the bridge is up; add it only when it is missing. As in libnetwork,
	 * a failure to add it is not an error (the bridge is still down here,
	 * and the kernel adds the prefix route when it comes up). */
	pfx_network(&p, net, sizeof(net));
	lua_createtable(L, 0, 3);
	brisk_setstr(L, "family", "inet6");
	brisk_setstr(L, "dev", br);
	if (!hcall(L, "route_list"))
		return pass_fail(L);
	lua_pop(L, 2);
	int i, n = (int)lua_rawlen(L, -1), found = 0;
	for (i = 1; i <= n && !found; i++) {
		lua_rawgeti(L, -1, i);
		lua_getfield(L, -1, "dst");
		found = lua_isstring(L, -1) && !strcmp(lua_tostring(L, -1), net);
		lua_pop(L, 2);
	}
	lua_pop(L, 1);
	if (!found) {
		lua_createtable(L, 0, 2);
		brisk_setstr(L, "dst", net);
		brisk_setstr(L, "dev", br);
		hcall(L, "route_add");
		lua_pop(L, 3);
	}
	lua_pushboolean(L, 1);
	return 1;
}

/* fe80::/10, ff00::/8, ::1 and :: are not global unicast (Go's notion). */
static int is_global_unicast6(const struct pfx *p)
{
	static const unsigned char zero[16];
	if (p->a[0] == 0xfe && (p->a[1] & 0xc0) == 0x80)
		return 0;
	if (p->a[0] == 0xff)
		return 0;
	if (!memcmp(p->a, zero, 15) && (p->a[15] == 0 || p->a[15] == 1))
		return 0;
	return 1;
}

/***
 * setupVerifyAndReconcile: an existing bridge must carry address_ipv4 (and
 * fe80::1/64 with IPv6); every other global-unicast IPv6 address is removed.
 * @function steps.setup_verify_and_reconcile
 * @param net {bridge=, address_ipv4=, enable_ipv6=, address_ipv6=}
 * @return true, or nil, msg, errno
 */
static int setup_verify_and_reconcile(lua_State *L)
{
	check_args(L);
	const char *br = net_string(L, "bridge", 1);
	const char *want = net_string(L, "address_ipv4", 1);
	const char *v6 = net_string(L, "address_ipv6", 0);
	int ipv6 = brisk_optboolean(L, NET, "enable_ipv6", 0);
	struct pfx w, a, keep;
	char cidr[64], msg[160];
	int i, n, pick = 0;

	if (pfx_parse(want, &w) < 0)
		return brisk_failmsg(L, "setup_verify_and_reconcile", br, EINVAL, "invalid address_ipv4");
	bridge_addrs(L, br, "inet");
	n = (int)lua_rawlen(L, -1);
	if (n == 0)
		return brisk_failmsg(L, "setup_verify_and_reconcile", br, EADDRNOTAVAIL,
				     "bridge has no IPv4 address configured");
	for (i = 1; i <= n && !pick; i++) {
		lua_rawgeti(L, -1, i);
		addr_cidr(L, -1, cidr, sizeof(cidr));
		if (!pfx_parse(cidr, &a) && pfx_contains(&w, &a))
			pick = i;
		lua_pop(L, 1);
	}
	lua_rawgeti(L, -1, pick ? pick : 1);
	addr_cidr(L, -1, cidr, sizeof(cidr));
	lua_pop(L, 2);
	pfx_parse(cidr, &a);
	if (!pfx_same_ip(&a, &w)) {
		snprintf(msg, sizeof(msg), "bridge IPv4 (%s) does not match requested configuration %s",
			 cidr, want);
		return brisk_failmsg(L, "setup_verify_and_reconcile", br, EADDRNOTAVAIL, msg);
	}
	if (!ipv6) {
		lua_pushboolean(L, 1);
		return 1;
	}
	bridge_addrs(L, br, "inet6");
	if (!has_addr(L, "fe80::1/64"))
		return brisk_failmsg(L, "setup_verify_and_reconcile", br, EADDRNOTAVAIL,
				     "bridge IPv6 addresses do not match the expected bridge configuration fe80::1/64");
	if (pfx_parse(v6 ? v6 : "fe80::1/64", &keep) < 0)
		return brisk_failmsg(L, "setup_verify_and_reconcile", br, EINVAL, "invalid address_ipv6");
	n = (int)lua_rawlen(L, -1);
	for (i = 1; i <= n; i++) {
		lua_rawgeti(L, -1, i);
		addr_cidr(L, -1, cidr, sizeof(cidr));
		lua_pop(L, 1);
		if (pfx_parse(cidr, &a) < 0 || !is_global_unicast6(&a) || pfx_same_ip(&a, &keep))
			continue;
		if (!addr_del(L, br, cidr))
			return pass_fail(L);
		lua_pop(L, 3);
	}
	lua_pushboolean(L, 1);
	return 1;
}

/***
 * setupIPv6Forwarding: net.ipv6.conf.{default,all}.forwarding = 1.
 * @function steps.setup_ipv6_forwarding
 * @return true, or nil, msg, errno (when it cannot be read)
 */
static int setup_ipv6_forwarding(lua_State *L)
{
	check_args(L);
	if (sysctl_ensure(L, "net/ipv6/conf/default/forwarding", "1", 1) < 0)
		return pass_fail(L);
	if (sysctl_ensure(L, "net/ipv6/conf/all/forwarding", "1", 1) < 0)
		return pass_fail(L);
	lua_pushboolean(L, 1);
	return 1;
}

/***
 * setupLoopbackAddressesRouting: route_localnet=1 on the bridge.
 * @function steps.setup_loopback_addresses_routing
 * @return true, or nil, msg, errno
 */
static int setup_loopback_addresses_routing(lua_State *L)
{
	check_args(L);
	const char *br = net_string(L, "bridge", 1);
	char path[128];

	snprintf(path, sizeof(path), "net/ipv4/conf/%s/route_localnet", br);
	if (sysctl_ensure(L, path, "1", 1) < 0)
		return pass_fail(L);
	lua_pushboolean(L, 1);
	return 1;
}

static int gateway_check(lua_State *L, const char *step, const char *gw, const char *subnet,
			 const char *nosubnet_msg)
{
	struct pfx g, s;
	const char *br = net_string(L, "bridge", 0);

	if (!gw) {
		lua_pushboolean(L, 1);
		return 1;
	}
	if (!subnet)
		return brisk_failmsg(L, step, br, EINVAL, nosubnet_msg);
	if (pfx_parse(gw, &g) < 0 || pfx_parse(subnet, &s) < 0 || !pfx_contains(&s, &g))
		return brisk_failmsg(L, step, br, EINVAL, "default gateway ip must be part of the network");
	lua_pushboolean(L, 1);
	return 1;
}

/***
 * setupGatewayIPv4: the default gateway (aux DefaultGatewayIPv4) must lie
 * inside the bridge's IPv4 subnet.
 * @function steps.setup_gateway_ipv4
 * @return true, or nil, msg, EINVAL
 */
static int setup_gateway_ipv4(lua_State *L)
{
	check_args(L);
	return gateway_check(L, "setup_gateway_ipv4", net_string(L, "default_gateway_ipv4", 0),
			     net_string(L, "address_ipv4", 0),
			     "container subnet must be a subset of bridge network");
}

/***
 * setupGatewayIPv6: the same for IPv6; a network without address_ipv6
 * cannot take one.
 * @function steps.setup_gateway_ipv6
 * @return true, or nil, msg, EINVAL
 */
static int setup_gateway_ipv6(lua_State *L)
{
	check_args(L);
	return gateway_check(L, "setup_gateway_ipv6", net_string(L, "default_gateway_ipv6", 0),
			     net_string(L, "address_ipv6", 0),
			     "container subnet must be a subset of bridge network");
}

/***
 * setupBridgeNetFiltering: bridge-nf-call-ip{,6}tables = 1 when br_netfilter
 * is loaded. brisk's own ICC rules live in a bridge-family nftables table
 * and do not need it, so an absent br_netfilter is not an error.
 * @function steps.setup_bridge_netfiltering
 * @return true, or nil, msg, errno
 */
static int setup_bridge_netfiltering(lua_State *L)
{
	check_args(L);
	int ipv6 = brisk_optboolean(L, NET, "enable_ipv6", 0);

	if (sysctl_ensure(L, "net/bridge/bridge-nf-call-iptables", "1", 0) < 0)
		return pass_fail(L);
	if (ipv6 && sysctl_ensure(L, "net/bridge/bridge-nf-call-ip6tables", "1", 0) < 0)
		return pass_fail(L);
	lua_pushboolean(L, 1);
	return 1;
}

static int link_field(lua_State *L, const char *br, const char *field)
{
	/* pushes link[field] (or nil); returns 0 when the link is missing,
	 * leaving the failure triple instead */
	if (!hcall_s(L, "link_get", br))
		return 0;
	lua_pop(L, 2);
	lua_getfield(L, -1, field);
	lua_remove(L, -2);
	return 1;
}

/* Set `dev` up without reading it first: for the endpoint's own links,
 * which the flow made down (setting UP on a link that is up changes
 * nothing; a journal over a link it made records no undo, and over
 * another reads the link for it). Returns -1 with the failure triple on
 * the stack when the call fails. */
static int set_up(lua_State *L, const char *dev)
{
	lua_createtable(L, 0, 2);
	brisk_setstr(L, "dev", dev);
	brisk_setbool(L, "up", 1);
	if (!hcall(L, "link_set"))
		return -1;
	lua_pop(L, 3);
	return 0;
}

/* Bring `dev` up unless its flags say UP; with `readback`, read the link
 * again after setting it. Returns -1 with the failure triple on the stack
 * when a call fails. */
static int ensure_up(lua_State *L, const char *dev, int readback)
{
	int i, n, up = 0;

	if (!link_field(L, dev, "flags"))
		return -1;
	n = lua_istable(L, -1) ? (int)lua_rawlen(L, -1) : 0;
	for (i = 1; i <= n; i++) {
		lua_rawgeti(L, -1, i);
		up |= lua_isstring(L, -1) && !strcmp(lua_tostring(L, -1), "UP");
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
	if (up)
		return 0;
	if (set_up(L, dev) < 0)
		return -1;
	if (readback && !link_field(L, dev, "flags"))
		return -1;
	return 0;
}

/***
 * setupMTU: give the bridge the network's MTU (libnetwork leaves it at
 * 1500, moby#37937).
 * @function steps.setup_mtu
 * @param net {bridge=, mtu=}
 * @return true, or nil, msg, errno
 */
static int setup_mtu(lua_State *L)
{
	check_args(L);
	const char *br = net_string(L, "bridge", 1);
	lua_Integer mtu = brisk_optinteger(L, NET, "mtu", 0);

	if (mtu <= 0) {
		lua_pushboolean(L, 1);
		return 1;
	}
	if (!link_field(L, br, "mtu"))
		return pass_fail(L);
	if (lua_tointeger(L, -1) == mtu) {
		lua_pushboolean(L, 1);
		return 1;
	}
	lua_createtable(L, 0, 2);
	brisk_setstr(L, "dev", br);
	brisk_setint(L, "mtu", mtu);
	if (!hcall(L, "link_set"))
		return pass_fail(L);
	lua_pushboolean(L, 1);
	return 1;
}

/***
 * setupDeviceUp: bring the bridge up, then read it back.
 * @function steps.setup_device_up
 * @return true, or nil, msg, errno
 */
static int setup_device_up(lua_State *L)
{
	check_args(L);
	if (ensure_up(L, net_string(L, "bridge", 1), 1) < 0)
		return pass_fail(L);
	lua_pushboolean(L, 1);
	return 1;
}

/* --- endpoint steps: (h, ep) where ep is the endpoint table --- */

static int ep_fail_wrap(lua_State *L, const char *fmt, const char *a, const char *b)
{
	/* failure triple on top: rewrite its message as fmt(a, b, msg) */
	const char *msg = lua_tostring(L, -2);
	lua_pushfstring(L, fmt, a, b, msg ? msg : "?");
	lua_replace(L, -3);
	return 3;
}

/***
 * Create the endpoint's veth pair in one request: the host side (no IPv6
 * address of its own, txqueuelen 0, attached to the bridge when
 * `ep.bridge` is set) and the container side, created directly inside
 * `ep.sandbox` with its final name when the namespace is known. One
 * attempt: a name that is taken fails with EEXIST (the create flow's step
 * draws new generated names, records them and tries again; see
 * brisk.endpoint).
 * @function steps.create_veth
 * @param h handle
 * @param ep {host_ifname=, peer_ifname=, mtu=, mac=, sandbox=, bridge=}
 * @return true, or nil, msg, errno
 */
static int create_veth(lua_State *L)
{
	check_args(L);
	const char *host = net_string(L, "host_ifname", 1);
	const char *peer = net_string(L, "peer_ifname", 1);
	const char *mac = net_string(L, "mac", 0);
	const char *bridge = net_string(L, "bridge", 0);
	lua_Integer mtu = brisk_optinteger(L, NET, "mtu", 0);
	int sandbox;

	lua_getfield(L, NET, "sandbox");
	sandbox = lua_gettop(L);
	lua_createtable(L, 0, 8);
	brisk_setstr(L, "ifname", host);
	brisk_setstr(L, "kind", "veth");
	brisk_setint(L, "txqlen", 0);
	brisk_setstr(L, "addrgenmode", "none");
	if (mtu > 0)
		brisk_setint(L, "mtu", mtu);
	if (bridge)
		brisk_setstr(L, "master", bridge);
	lua_createtable(L, 0, 5);
	brisk_setstr(L, "ifname", peer);
	brisk_setint(L, "txqlen", 0);
	if (mtu > 0)
		brisk_setint(L, "mtu", mtu);
	if (mac)
		brisk_setstr(L, "address", mac);
	if (!lua_isnil(L, sandbox)) {
		lua_pushvalue(L, sandbox);
		lua_setfield(L, -2, "netns");
	}
	lua_setfield(L, -2, "peer");
	if (!hcall(L, "link_add"))
		return ep_fail_wrap(L, "failed to add the host (%s) <=> sandbox (%s) pair interfaces: %s",
				    host, peer);
	lua_pushboolean(L, 1);
	return 1;
}

/***
 * Attach the host side to the bridge (IFLA_MASTER; SIOCBRADDIF when that
 * fails), unless it already is.
 * @function steps.add_to_bridge
 * @param ep {host_ifname=, bridge=}
 * @return true, or nil, msg, errno
 */
static int add_to_bridge(lua_State *L)
{
	check_args(L);
	const char *host = net_string(L, "host_ifname", 1);
	const char *bridge = net_string(L, "bridge", 1);
	int top;

	if (!link_field(L, host, "master"))
		return pass_fail(L);
	if (lua_isstring(L, -1) && !strcmp(lua_tostring(L, -1), bridge)) {
		lua_pushboolean(L, 1);
		return 1;
	}
	lua_pop(L, 1);
	lua_createtable(L, 0, 2);
	brisk_setstr(L, "dev", host);
	brisk_setstr(L, "master", bridge);
	if (hcall(L, "link_set")) {
		lua_pushboolean(L, 1);
		return 1;
	}
	top = lua_gettop(L);
	if (!hcall_ss(L, "ioctl_bridge_addif", bridge, host)) {
		lua_settop(L, top);
		lua_pushfstring(L, "adding interface %s to bridge %s failed: %s", host, bridge,
				lua_tostring(L, -2));
		lua_replace(L, -3);
		return 3;
	}
	lua_pushboolean(L, 1);
	return 1;
}

/***
 * Hairpin on the host side's bridge port (IFLA_BRPORT_MODE), when asked.
 * @function steps.set_hairpin
 * @param ep {host_ifname=, hairpin=bool}
 * @return true, or nil, msg, errno
 */
static int set_hairpin(lua_State *L)
{
	check_args(L);
	const char *host = net_string(L, "host_ifname", 1);

	if (!brisk_optboolean(L, NET, "hairpin", 0)) {
		lua_pushboolean(L, 1);
		return 1;
	}
	lua_createtable(L, 0, 2);
	brisk_setstr(L, "dev", host);
	brisk_setbool(L, "hairpin", 1);
	if (!hcall(L, "brport_set"))
		return pass_fail(L);
	lua_pushboolean(L, 1);
	return 1;
}


/***
 * Bring the host side up.
 * @function steps.host_up
 * @param ep {host_ifname=}
 * @return true, or nil, msg, errno
 */
static int host_up(lua_State *L)
{
	check_args(L);
	if (set_up(L, net_string(L, "host_ifname", 1)) < 0)
		return pass_fail(L);
	lua_pushboolean(L, 1);
	return 1;
}

/***
 * Inside the sandbox (h is a handle in the endpoint's namespace): name the
 * container side `ep.ifname` and give it the MAC and MTU, when it still
 * carries another name (the move-then-rename path of join).
 * @function steps.sandbox_rename
 * @param ep {peer_ifname=, ifname=, mac=, mtu=}
 * @return true, or nil, msg, errno
 */
static int sandbox_rename(lua_State *L)
{
	check_args(L);
	const char *peer = net_string(L, "peer_ifname", 1);
	const char *ifname = net_string(L, "ifname", 1);
	const char *mac = net_string(L, "mac", 0);
	lua_Integer mtu = brisk_optinteger(L, NET, "mtu", 0);

	if (!strcmp(peer, ifname)) {
		lua_pushboolean(L, 1);
		return 1;
	}
	lua_createtable(L, 0, 4);
	brisk_setstr(L, "dev", peer);
	brisk_setstr(L, "ifname", ifname);
	if (mac)
		brisk_setstr(L, "address", mac);
	if (mtu > 0)
		brisk_setint(L, "mtu", mtu);
	if (!hcall(L, "link_set"))
		return pass_fail(L);
	lua_pushboolean(L, 1);
	return 1;
}

/***
 * Inside the sandbox: the endpoint's addresses. IPv4 with its broadcast;
 * IPv6 with nodad, as Docker does. On an IPv4-only network the interface
 * gets disable_ipv6=1 (the namespace-wide settings are left alone).
 * @function steps.sandbox_addresses
 * @param ep {ifname=, ipv4=CIDR, ipv6=CIDR|nil, enable_ipv6=bool}
 * @return true, or nil, msg, errno
 */
static int sandbox_addresses(lua_State *L)
{
	check_args(L);
	const char *ifname = net_string(L, "ifname", 1);
	const char *v4 = net_string(L, "ipv4", 0);
	const char *v6 = net_string(L, "ipv6", 0);
	char path[128];

	if (!brisk_optboolean(L, NET, "enable_ipv6", 0)) {
		/* a fresh interface: written without reading first (sysctl_set
		 * returns the old value for the undo); a kernel without IPv6 has
		 * no such file, which is fine */
		snprintf(path, sizeof(path), "net/ipv6/conf/%s/disable_ipv6", ifname);
		if (!hcall_ss(L, "sysctl_set", path, "1") && lua_tointeger(L, -1) != ENOENT)
			return pass_fail(L);
		lua_pop(L, 3);
	}
	if (v4) {
		if (!addr_add_flag(L, ifname, v4, "broadcast"))
			return pass_fail(L);
		lua_pop(L, 3);
	}
	if (v6) {
		if (!addr_add_flag(L, ifname, v6, "nodad"))
			return pass_fail(L);
		lua_pop(L, 3);
	}
	lua_pushboolean(L, 1);
	return 1;
}

/***
 * Inside the sandbox: the interface and lo up.
 * @function steps.sandbox_up
 * @param ep {ifname=}
 * @return true, or nil, msg, errno
 */
static int sandbox_up(lua_State *L)
{
	check_args(L);
	/* lo only when it is down: the namespace may be someone else's */
	if (ensure_up(L, "lo", 0) < 0 || set_up(L, net_string(L, "ifname", 1)) < 0)
		return pass_fail(L);
	lua_pushboolean(L, 1);
	return 1;
}

static int default_route(lua_State *L, const char *family, const char *gw, const char *dev)
{
	lua_createtable(L, 0, 4);
	brisk_setstr(L, "dst", "default");
	brisk_setstr(L, "family", family);
	brisk_setstr(L, "gateway", gw);
	brisk_setstr(L, "dev", dev);
	if (!hcall(L, "route_add") && lua_tointeger(L, -1) != EEXIST)
		return -1;
	lua_pop(L, 3);
	return 0;
}

/***
 * Inside the sandbox: default routes through the network's gateways (none
 * for an internal network).
 * @function steps.sandbox_routes
 * @param ep {ifname=, gateway4=, gateway6=, internal=bool}
 * @return true, or nil, msg, errno
 */
static int sandbox_routes(lua_State *L)
{
	check_args(L);
	const char *ifname = net_string(L, "ifname", 1);
	const char *gw4 = net_string(L, "gateway4", 0);
	const char *gw6 = net_string(L, "gateway6", 0);

	if (!brisk_optboolean(L, NET, "internal", 0)) {
		if (gw4 && default_route(L, "inet", gw4, ifname) < 0)
			return pass_fail(L);
		if (gw6 && default_route(L, "inet6", gw6, ifname) < 0)
			return pass_fail(L);
	}
	lua_pushboolean(L, 1);
	return 1;
}

static const luaL_Reg steps[] = {
	{ "setup_device", setup_device },
	{ "setup_default_sysctl", setup_default_sysctl },
	{ "setup_bridge_ipv4", setup_bridge_ipv4 },
	{ "setup_bridge_ipv6", setup_bridge_ipv6 },
	{ "setup_verify_and_reconcile", setup_verify_and_reconcile },
	{ "setup_ipv6_forwarding", setup_ipv6_forwarding },
	{ "setup_loopback_addresses_routing", setup_loopback_addresses_routing },
	{ "setup_gateway_ipv4", setup_gateway_ipv4 },
	{ "setup_gateway_ipv6", setup_gateway_ipv6 },
	{ "setup_bridge_netfiltering", setup_bridge_netfiltering },
	{ "setup_mtu", setup_mtu },
	{ "setup_device_up", setup_device_up },
	{ "create_veth", create_veth },
	{ "add_to_bridge", add_to_bridge },
	{ "set_hairpin", set_hairpin },
	{ "host_up", host_up },
	{ "sandbox_rename", sandbox_rename },
	{ "sandbox_addresses", sandbox_addresses },
	{ "sandbox_up", sandbox_up },
	{ "sandbox_routes", sandbox_routes },
	{ NULL, NULL }
};

void brisk_open_steps(lua_State *L, int mod, int meth)
{
	(void)meth;
	luaL_newlib(L, steps);
	lua_setfield(L, mod, "steps");
}
