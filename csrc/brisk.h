/***
 * brisk.h - helpers shared by the files of brisk.core.
 *
 * One file per object family (nl.c handles, link.c links, addr.c addresses,
 * route.c routes, netns.c namespaces, sysctl.c sysctls, fs.c store files,
 * steps.c bridge steps). Each family exports one `brisk_open_<family>`
 * function that registers its module functions and handle methods; core.c
 * composes them. No file reaches into another's statics: what is shared is
 * declared here.
 */
#ifndef BRISK_H
#define BRISK_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <net/if.h>
#include <libmnl/libmnl.h>
#include <lua.h>
#include <lauxlib.h>

#define BRISK_NL_MT   "brisk.nl"
#define BRISK_BUFSZ   32768          /* receive buffer; dumps fill it */
#define BRISK_EXTSZ   256            /* extended-ACK text */

/* A netlink handle bound to one network namespace. */
struct brisk_nl {
	struct mnl_socket *sock;     /* NULL once closed */
	unsigned int portid;
	unsigned int seq;            /* set once at open, incremented per request */
	int nsfd;                    /* the namespace the handle is bound to */
	int err;                     /* last request: positive errno, 0 on success */
	int dump_intr;               /* last dump saw NLM_F_DUMP_INTR */
	char ext[BRISK_EXTSZ];       /* last request: kernel extended-ACK text */
	char buf[BRISK_BUFSZ];
};

/* A family registers itself: `mod` is the module table, `meth` the handle
 * method table (both absolute stack indices). */
typedef void (*brisk_open_fn)(lua_State *L, int mod, int meth);

void brisk_open_nl(lua_State *L, int mod, int meth);
void brisk_open_link(lua_State *L, int mod, int meth);
void brisk_open_addr(lua_State *L, int mod, int meth);
void brisk_open_route(lua_State *L, int mod, int meth);
void brisk_open_netns(lua_State *L, int mod, int meth);
void brisk_open_sysctl(lua_State *L, int mod, int meth);
void brisk_open_fs(lua_State *L, int mod, int meth);
void brisk_open_json(lua_State *L, int mod, int meth);
void brisk_open_steps(lua_State *L, int mod, int meth);
void brisk_open_nft(lua_State *L, int mod, int meth);
void brisk_open_conntrack(lua_State *L, int mod, int meth);

/* --- handles (nl.c) --- */

/* The handle at `idx`; raises "attempt to use a closed netlink handle". */
struct brisk_nl *brisk_checknl(lua_State *L, int idx);
/* A socket of netlink family `proto` in namespace `nsfd`, beside a
 * handle's own (another namespace, another family), its requests numbered
 * from `seq`. NULL with *err set on failure; brisk_nl_temp_close frees it. */
struct brisk_nl *brisk_nl_temp(int nsfd, int proto, unsigned int seq, int *err);
void brisk_nl_temp_close(struct brisk_nl *t);

/* Start a request in h->buf: header with type, flags (NLM_F_REQUEST is
 * added) and a fresh seq. */
struct nlmsghdr *brisk_msg(struct brisk_nl *h, uint16_t type, uint16_t flags);

/* Send `nlh` and read replies until ACK/DONE or error, calling `cb` on each
 * data message. Returns 0, or -1 with h->err (positive errno) and h->ext
 * (extended-ACK text, maybe empty) set. Requests that change state must
 * carry NLM_F_ACK. A dump whose reply carried NLM_F_DUMP_INTR sets
 * h->dump_intr; the caller retries. */
int brisk_talk(struct brisk_nl *h, struct nlmsghdr *nlh, mnl_cb_t cb, void *data);

/* Push the failure triple nil, "<op> <obj>: <strerror> (kernel: <ext>)",
 * errno for h's last request; returns 3. */
int brisk_nlfail(lua_State *L, struct brisk_nl *h, const char *op, const char *obj);
/* The same with an explicit errno and no kernel text. */
int brisk_fail(lua_State *L, const char *op, const char *obj, int err);
/* The same with a message of its own: nil, "<op> <obj>: <msg>", err. */
int brisk_failmsg(lua_State *L, const char *op, const char *obj, int err, const char *msg);

/* Run `fn(ud)` with the calling thread switched into namespace `nsfd`, then
 * switch back (always). Returns fn's result, or -1 with errno set when the
 * switch failed. */
int brisk_in_netns(int nsfd, int (*fn)(void *), void *ud);

/* Open a namespace given as nil (current), a name under /run/netns, a path,
 * or a pid (number). Returns an O_CLOEXEC fd, or -1 with errno set. */
int brisk_netns_fd(lua_State *L, int idx);

/* --- arguments --- */

/* Check an interface name: 1..15 bytes, no '/', ':', '%' or whitespace, not "."
 * or "..". Returns NULL when fine, else a static reason. */
const char *brisk_ifname_invalid(const char *name);

/* t[k] without metamethods, pushed; returns its type. Option tables are
 * read raw, as their keys are checked (lua_next): a string read from one
 * stays reachable from the table once popped, which a string an __index
 * function made would not (it could be collected while still in use). */
int brisk_rawfield(lua_State *L, int t, const char *k);

/* Read an optional field of the option table at `t`; raise naming the field
 * when it has the wrong type. */
const char *brisk_optstring(lua_State *L, int t, const char *k, const char *def);
lua_Integer brisk_optinteger(lua_State *L, int t, const char *k, lua_Integer def);
int brisk_optboolean(lua_State *L, int t, const char *k, int def);  /* -1 = absent when def is -1 */
/* Raise if the table at `t` holds a key not in `allowed` (NULL terminated). */
void brisk_checkkeys(lua_State *L, int t, const char *what, const char *const allowed[]);

/* Resolve a link reference at stack `idx` (a name, an ifindex, or a table
 * with `ifindex` or `ifname`) to an ifindex, asking the kernel by name when
 * needed. Returns the ifindex (>0), 0 when the name is unknown (h->err =
 * ENODEV), or -1 on another failure. `label` receives a printable form. */
int brisk_link_index(lua_State *L, struct brisk_nl *h, int idx, char *label, size_t labellen);
/* The link reference at `idx` (a name, an ifindex or a link table) without
 * asking the kernel: sets *ifindex (>0) or *name, and `label`. Raises on
 * misuse (messages start with `what: ` when it is not NULL); returns 0, or
 * an errno (EINVAL / ENAMETOOLONG, the reason in *why) for an invalid name. */
int brisk_link_arg(lua_State *L, int idx, const char *what, int *ifindex, const char **name,
		   char *label, size_t labellen, const char **why);

/* Parse "addr[/plen]" (IPv4 or IPv6). Returns the family (AF_INET/AF_INET6)
 * or 0 when invalid; plen is -1 when absent. */
int brisk_parse_prefix(const char *s, void *addr, int *plen);
/* Format an address of family `af` into `out` (INET6_ADDRSTRLEN). */
const char *brisk_ntop(int af, const void *addr, char *out);
/* Parse "aa:bb:cc:dd:ee:ff"; returns 0 or -1. */
int brisk_parse_mac(const char *s, unsigned char mac[6]);
void brisk_format_mac(const unsigned char *mac, size_t len, char *out);

/* Set t[k] for the table on top of the stack. */
void brisk_setint(lua_State *L, const char *k, lua_Integer v);
void brisk_setstr(lua_State *L, const char *k, const char *v);
void brisk_setbool(lua_State *L, const char *k, int v);

/* --- exports of link.c (keep each family's shared declarations here) --- */

/* What link_add / link_set change; brisk_link_attrs_init sets every field
 * to "leave as is" (-1, NULL, false). All these functions return -1 on
 * failure with h->err (positive errno) and h->ext (kernel text) set. */
struct brisk_link_attrs {
	const char *ifname;     /* add: the name; set: a new name */
	int up;                 /* -1 leave, 0 down, 1 up */
	int master;             /* -1 leave, 0 detach (set), >0 master ifindex */
	int64_t mtu;            /* -1 leave */
	int64_t txqlen;         /* -1 leave */
	bool has_address;
	unsigned char address[6];
	int addrgenmode;        /* -1 leave, else IN6_ADDR_GEN_MODE_* */
	int netns_fd;           /* -1 leave; set: move there; veth peer: create there */
};

struct brisk_bridge_attrs {     /* -1 leave; times in centiseconds */
	int64_t stp_state, vlan_filtering, ageing_time, forward_delay;
};

struct brisk_link_spec {
	const char *kind;       /* "bridge", "veth", "dummy" */
	struct brisk_link_attrs link;
	bool has_peer;          /* veth */
	struct brisk_link_attrs peer;   /* ifname, mtu, txqlen, address, netns_fd, addrgenmode */
	struct brisk_bridge_attrs bridge;
};

struct brisk_brport_attrs {     /* -1 leave, 0 off, 1 on */
	int hairpin, learning, flood, isolated;
};

void brisk_link_attrs_init(struct brisk_link_attrs *a);
void brisk_bridge_attrs_init(struct brisk_bridge_attrs *b);

/* Create a link (one RTM_NEWLINK with CREATE|EXCL; one more request per
 * addrgenmode, and `up` after them). Returns the new ifindex, or -1 (the
 * half-made link is deleted again). */
int brisk_link_add(struct brisk_nl *h, const struct brisk_link_spec *s);
/* Change the link ifindex (or `name` when ifindex is 0). Returns 0 or -1. */
int brisk_link_set(struct brisk_nl *h, int ifindex, const char *name,
		   const struct brisk_link_attrs *a);
/* Delete the link ifindex (or `name` when ifindex is 0). Returns 0 or -1. */
int brisk_link_del(struct brisk_nl *h, int ifindex, const char *name);
/* Bridge options (IFLA_INFO_DATA) of ifindex or `name`. Returns 0 or -1. */
int brisk_bridge_set(struct brisk_nl *h, int ifindex, const char *name,
		     const struct brisk_bridge_attrs *b);
/* Bridge port flags of ifindex (IFLA_PROTINFO). Returns 0 or -1. */
int brisk_brport_set(struct brisk_nl *h, int ifindex, const struct brisk_brport_attrs *p);
/* The ifindex of `name` by a GET (no Lua): >0, 0 when absent, -1 on error. */
int brisk_link_ifindex(struct brisk_nl *h, const char *name);
/* Push the link table of ifindex (keys of `ip -j -d link show`). Returns 0
 * with the table pushed, or -1 with nothing pushed (h->err, ENODEV when
 * absent). */
int brisk_link_push(lua_State *L, struct brisk_nl *h, int ifindex);

/* --- exports of addr.c / route.c --- */

/* How many times a dump that saw NLM_F_DUMP_INTR is restarted before the
 * list functions give up with EAGAIN. */
#define BRISK_DUMP_TRIES 8

/* Option-table fields shared by addr.c and route.c (defined in addr.c). */

/* Push field `k` of the table at `t`, a link given as a name, an ifindex or
 * a link table, and return its stack index for brisk_link_index; `label`
 * gets a printable form before anything is resolved. Absent: returns 0
 * (pushes nothing), or raises when `required`. A wrong type raises. */
int brisk_field_link(lua_State *L, int t, const char *k, bool required, char *label, size_t len);
/* Field `k`: nil -> 0, "inet" -> AF_INET, "inet6" -> AF_INET6; else raises. */
int brisk_optfamily(lua_State *L, int t, const char *k);
/* Give up on a dump interrupted BRISK_DUMP_TRIES times: h->err = EAGAIN,
 * h->ext says why; returns -1. */
int brisk_dump_gave_up(struct brisk_nl *h);
/* Copy the payload of `attr` (may be NULL) into `out` when it is exactly
 * `alen` bytes (an address of the family's length); returns whether it did. */
bool brisk_attr_addr(const struct nlattr *attr, size_t alen, unsigned char *out);
/* What a dump callback appends to: the array at stack index `list` of `L`,
 * holding `n` entries so far. */
struct brisk_list_push {
	lua_State *L;
	int list;
	lua_Integer n;
};

/* One interface address (addr.c). As read from RTM_NEWADDR, and as the
 * request for brisk_addr_modify. */
struct brisk_addr {
	int family;                     /* AF_INET or AF_INET6 */
	int ifindex;
	unsigned int prefixlen;
	unsigned int scope;             /* RT_SCOPE_* */
	uint32_t flags;                 /* IFA_F_*, all 32 bits */
	unsigned char local[16];        /* IFA_LOCAL (else IFA_ADDRESS) */
	unsigned char peer[16];         /* IFA_ADDRESS when it differs from local */
	unsigned char broadcast[4];     /* IPv4 only */
	bool has_peer, has_broadcast;
	bool has_lifetime;              /* valid_lft/preferred_lft meaningful */
	bool has_metric;
	bool wildcard_prefix;           /* RTM_DELADDR, IPv4: any prefix length */
	uint32_t valid_lft, preferred_lft;  /* seconds, 0xffffffff = forever */
	uint32_t metric;                /* IFA_RT_PRIORITY */
	char label[IFNAMSIZ];           /* IFA_LABEL (IPv4), "" when none */
};

/* Called once per address of a dump; must not talk to the kernel (the
 * receive buffer is in use). */
typedef void (*brisk_addr_fn)(const struct brisk_addr *a, void *ud);

/* Dump the addresses of `family` (0 = both) on `ifindex` (0 = every link),
 * calling `fn` for each. Returns 0, or -1 with h->err set (ENODEV for a
 * missing ifindex). One attempt: when h->dump_intr is set afterwards the
 * caller discards what it got and dumps again. */
int brisk_addr_dump(struct brisk_nl *h, int family, int ifindex, brisk_addr_fn fn, void *ud);

/* Push the array addr_list returns for `family` (0 = both) on `ifindex`
 * (0 = all): tables with the keys of `ip -j addr` addr_info plus ifindex and
 * dev, restarting interrupted dumps. Returns 0 with the array pushed, or -1
 * with nothing pushed and h->err/h->ext set. */
int brisk_addr_push_list(lua_State *L, struct brisk_nl *h, int family, int ifindex);

/* Push one address table (without dev: see brisk_fill_devnames). */
void brisk_addr_push(lua_State *L, const struct brisk_addr *a);

/* Send RTM_NEWADDR (`flags` e.g. NLM_F_CREATE|NLM_F_EXCL, or
 * NLM_F_CREATE|NLM_F_REPLACE) or RTM_DELADDR for `a` (family, ifindex,
 * local, prefixlen, and the optional parts flagged in it). NLM_F_ACK is
 * added. Returns 0, or -1 with h->err/h->ext set. */
int brisk_addr_modify(struct brisk_nl *h, uint16_t cmd, uint16_t flags, const struct brisk_addr *a);

/* The name of link `ifindex` into `name` (IFNAMSIZ) by RTM_GETLINK.
 * Returns 0, or -1 with h->err set (ENODEV when there is no such link). */
int brisk_ifindex_name(struct brisk_nl *h, int ifindex, char *name);

/* For each table of the array at `list` whose field `from` is an integer
 * ifindex, set field `to` to that link's name ("if<N>" for a link that has
 * gone), asking the kernel once per ifindex. Returns 0, or -1 with h->err
 * set. */
int brisk_fill_devnames(lua_State *L, struct brisk_nl *h, int list, const char *from, const char *to);

/* Route/address scopes as iproute2 names them ("global", "site", "link",
 * "host", "nowhere", else the number). `buf` holds at least 16 bytes. */
const char *brisk_scope_name(unsigned int scope, char *buf);
/* Read a scope (name or 0..255) from field `k` of the table at `t`;
 * returns `def` when absent, raises naming the field when invalid. */
int brisk_optscope(lua_State *L, int t, const char *k, int def);

/* One route (route.c). As read from RTM_NEWROUTE, and as the request for
 * brisk_route_modify (there a zero protocol/type means "any" for deletes). */
struct brisk_route {
	int family;                     /* AF_INET or AF_INET6 */
	uint8_t dst_len, src_len, tos, protocol, scope, type;
	uint32_t flags;                 /* rtm_flags: RTNH_F_ONLINK, ... */
	uint32_t table;                 /* RT_TABLE_MAIN, ... (RTA_TABLE) */
	unsigned char dst[16], src[16], gateway[16], prefsrc[16];
	bool has_dst, has_src, has_gateway, has_prefsrc, has_metric, has_pref, has_nhid;
	int oif;                        /* 0 = none */
	uint32_t metric;                /* RTA_PRIORITY */
	uint8_t pref;                   /* RTA_PREF (IPv6 router preference) */
	uint32_t nhid;
	uint32_t expires;               /* seconds, 0 = none */
};

typedef void (*brisk_route_fn)(const struct brisk_route *r, void *ud);

/* Dump the routes of `family` (AF_INET or AF_INET6) in `table` (0 = all
 * tables) through `oif` (0 = any), skipping cloned entries; calls `fn` for
 * each. Returns 0 (a table that does not exist is empty), or -1 with h->err
 * set. One attempt: see brisk_addr_dump for h->dump_intr. */
int brisk_route_dump(struct brisk_nl *h, int family, uint32_t table, int oif, brisk_route_fn fn, void *ud);

/* Push one route table with the keys of `ip -j route`; its dev is the
 * ifindex until brisk_fill_devnames(L, h, list, "dev", "dev") names it. */
void brisk_route_push(lua_State *L, const struct brisk_route *r);

/* Send RTM_NEWROUTE (`flags` e.g. NLM_F_CREATE|NLM_F_EXCL) or RTM_DELROUTE
 * for `r`. NLM_F_ACK is added. Returns 0, or -1 with h->err/h->ext set. */
int brisk_route_modify(struct brisk_nl *h, uint16_t cmd, uint16_t flags, const struct brisk_route *r);

/* --- exports of netns.c / sysctl.c --- */

/* A namespace argument at `idx`: nil (the current one), a name under
 * /run/netns, a path, a pid, or a brisk.nl handle (its bound namespace).
 * Returns an fd that is checked to be a network namespace, and sets *owned
 * when the caller must close it (a handle keeps its own); -1 with errno set
 * on failure (ENOENT when missing, EINVAL when no network namespace).
 * Raises for other types. `label` receives a printable form for messages.
 * The stack is left as it was. */
int brisk_netns_arg(lua_State *L, int idx, int *owned, char *label, size_t labellen);

/* 1 when `fd` is a network namespace (nsfs), else 0 with errno EINVAL. */
int brisk_is_netns_fd(int fd);

/* --- exports of fs.c --- */

/* --- exports of nft.c --- */

#endif
