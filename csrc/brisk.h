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
void brisk_open_steps(lua_State *L, int mod, int meth);
void brisk_open_nft(lua_State *L, int mod, int meth);

/* --- handles (nl.c) --- */

/* The handle at `idx`; raises "attempt to use a closed netlink handle". */
struct brisk_nl *brisk_checknl(lua_State *L, int idx);

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

/* Check an interface name: 1..15 bytes, no '/', ':' or whitespace, not "."
 * or "..". Returns NULL when fine, else a static reason. */
const char *brisk_ifname_invalid(const char *name);

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

/* --- exports of addr.c / route.c --- */

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
