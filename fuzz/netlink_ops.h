/*
 * netlink_ops.h - the brisk.core calls the netlink fuzz target drives, shared
 * with the recorder that captures real kernel replies as seeds.
 *
 * Each is a Lua chunk run with `h`, a brisk.nl handle, as its only global.
 * An input's first byte picks one (modulo the count), so a seed recorded for
 * call N replays against call N.
 */
#ifndef BRISK_FUZZ_NETLINK_OPS_H
#define BRISK_FUZZ_NETLINK_OPS_H

static const struct {
	const char *name;
	const char *lua;
} netlink_ops[] = {
	{ "link_get_name", "return h:link_get('br0')" },
	{ "link_get_index", "return h:link_get(1)" },
	{ "link_get_port", "return h:link_get('vp0')" },
	{ "link_list", "return h:link_list()" },
	{ "link_list_kind", "return h:link_list{kind = 'bridge'}" },
	{ "link_list_master", "return h:link_list{master = 'br0'}" },
	{ "brport_get", "return h:brport_get('vp0')" },
	{ "addr_list", "return h:addr_list()" },
	{ "addr_list_inet6", "return h:addr_list{family = 'inet6'}" },
	{ "addr_list_dev", "return h:addr_list{dev = 'br0'}" },
	{ "route_list", "return h:route_list()" },
	{ "route_list_all4", "return h:route_list{family = 'inet', table = 'all'}" },
	{ "route_list_all6", "return h:route_list{family = 'inet6', table = 'all'}" },
	{ "route_list_dev", "return h:route_list{dev = 'br0'}" },
	{ "link_get_missing", "return h:link_get('nosuch0')" },
	{ "link_del_missing", "return h:link_del('nosuch0')" },
	{ "addr_add", "return h:addr_add{dev = 'br0', address = '10.99.0.1/24'}" },
	{ "addr_add_again", "return h:addr_add{dev = 'br0', address = '10.99.0.1/24'}" },
	{ "route_add_bad", "return h:route_add{dst = '10.98.0.0/24', gateway = '10.97.0.1'}" },
	{ "link_set_mtu_bad", "return h:link_set{dev = 'br0', mtu = 100000}" },
	{ "conntrack_list", "return h:conntrack_list()" },
	{ "conntrack_del", "return h:conntrack_del{proto = 17, orig = {src = '10.90.0.1', dst = '10.90.0.2', "
	  "sport = 40000, dport = 53}}" },
};

#define NETLINK_NOPS (sizeof(netlink_ops) / sizeof(netlink_ops[0]))

#endif
