/*
 * fuzz_netlink.c - libFuzzer target: brisk.core's netlink reply parsing.
 *
 * The whole of brisk.core (every csrc file, unchanged) is linked in, with the libmnl
 * socket calls and setns() redirected here by the linker (-Wl,--wrap=...):
 * a request goes nowhere, and the "kernel's" replies are the fuzzer's bytes.
 * So every byte goes through the real path: brisk_talk's loop, mnl_cb_run2,
 * the error/extended-ACK and DONE callbacks of nl.c, and the validating
 * attribute callbacks of link.c, addr.c and route.c, up to the Lua tables
 * they build.
 *
 * Input: byte 0 picks a call from netlink_ops.h; byte 1 bit 0 set leaves the
 * replies' seq and portid as given (else they are patched to match the
 * request, so the parsers are reached); then chunks, each a little-endian
 * u16 length and that many bytes, one per recvfrom(). When the chunks run
 * out, recvfrom fails with ENOBUFS.
 *
 * A crash, a sanitizer report, a Lua error raised by the call, or a result
 * that is neither a value nor the failure triple (nil, string, integer) is
 * a finding. Seeds are real kernel replies, captured by record_netlink.c.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <libmnl/libmnl.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include "netlink_ops.h"

int luaopen_brisk_core(lua_State *L);

#define FAKE_PORTID 4242u

static struct {
	const uint8_t *data;
	size_t size, off;
	int patch;
	uint32_t seq;           /* of the last request sent */
} q;

static char fake_sock;

struct mnl_socket *__wrap_mnl_socket_open2(int bus, int flags)
{
	(void)bus;
	(void)flags;
	return (struct mnl_socket *)&fake_sock;
}

int __wrap_mnl_socket_bind(struct mnl_socket *nl, unsigned int groups, pid_t pid)
{
	(void)nl;
	(void)groups;
	(void)pid;
	return 0;
}

int __wrap_mnl_socket_setsockopt(const struct mnl_socket *nl, int type, void *buf, socklen_t len)
{
	(void)nl;
	(void)type;
	(void)buf;
	(void)len;
	return 0;
}

unsigned int __wrap_mnl_socket_get_portid(const struct mnl_socket *nl)
{
	(void)nl;
	return FAKE_PORTID;
}

int __wrap_mnl_socket_close(struct mnl_socket *nl)
{
	(void)nl;
	return 0;
}

int __wrap_setns(int fd, int nstype)
{
	(void)fd;
	(void)nstype;
	return 0;
}

ssize_t __wrap_mnl_socket_sendto(const struct mnl_socket *nl, const void *req, size_t siz)
{
	const struct nlmsghdr *nlh = req;

	(void)nl;
	if (siz < sizeof(*nlh) || nlh->nlmsg_len > siz)
		abort();        /* brisk built a request it then sent short */
	q.seq = nlh->nlmsg_seq;
	return (ssize_t)siz;
}

static int strict(void)
{
	const char *s = getenv("BRISK_FUZZ_STRICT");
	return s && *s == '1';
}

/* Known bug (fuzz/README.md): nl.c's cb_error and cb_done negate the error
 * code of an NLMSG_ERROR or NLMSG_DONE, which is undefined for INT_MIN (the
 * kernel sends -4095..0). Unless BRISK_FUZZ_STRICT=1, such a code becomes
 * -EPROTO here so that the run goes on to find other things. */
static void mask_known_ub(struct nlmsghdr *nlh)
{
	static int told;
	int32_t e;

	if (strict() || (nlh->nlmsg_type != NLMSG_ERROR && nlh->nlmsg_type != NLMSG_DONE) ||
	    nlh->nlmsg_len < sizeof(*nlh) + sizeof(e))
		return;
	memcpy(&e, mnl_nlmsg_get_payload(nlh), sizeof(e));
	if (e != INT32_MIN)
		return;
	e = -EPROTO;
	memcpy(mnl_nlmsg_get_payload(nlh), &e, sizeof(e));
	if (!told++)
		fprintf(stderr, "fuzz_netlink: known bug, masked: csrc/nl.c cb_error/cb_done "
			"negate an error code of INT_MIN\n");
}

ssize_t __wrap_mnl_socket_recvfrom(const struct mnl_socket *nl, void *buf, size_t siz)
{
	size_t len, off, mlen;
	struct nlmsghdr *nlh;

	(void)nl;
	if (q.size - q.off < 2) {
		errno = ENOBUFS;
		return -1;
	}
	len = q.data[q.off] | (size_t)q.data[q.off + 1] << 8;
	q.off += 2;
	if (len > q.size - q.off)
		len = q.size - q.off;
	memcpy(buf, q.data + q.off, len < siz ? len : siz);
	q.off += len;
	if (len > siz)
		len = siz;      /* a datagram longer than the buffer is cut */
	/* Walk the whole messages (unsigned: no length makes this loop or step
	 * outside the datagram), patching seq and portid. A message claiming
	 * 2 GiB or more ends the datagram there: the kernel never frames one,
	 * and libmnl 1.0.4's mnl_nlmsg_ok() casts the length to int, so
	 * mnl_cb_run2() would walk off the buffer (fuzz/README.md). */
	for (off = 0; off + sizeof(*nlh) <= len; off += MNL_ALIGN(mlen)) {
		nlh = (struct nlmsghdr *)((char *)buf + off);
		mlen = nlh->nlmsg_len;
		if (mlen >= 0x80000000u) {
			len = off;
			break;
		}
		if (mlen < sizeof(*nlh) || mlen > len - off)
			break;
		if (q.patch) {
			nlh->nlmsg_seq = q.seq;
			nlh->nlmsg_pid = FAKE_PORTID;
		}
		mask_known_ub(nlh);
	}
	return (ssize_t)len;
}

static lua_State *L;
static int op_ref[NETLINK_NOPS];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	size_t i;

	(void)argc;
	(void)argv;
	L = luaL_newstate();
	luaL_openlibs(L);
	luaL_requiref(L, "brisk.core", luaopen_brisk_core, 0);
	lua_getfield(L, -1, "open");
	if (lua_pcall(L, 0, 1, 0) != LUA_OK || !lua_isuserdata(L, -1)) {
		fprintf(stderr, "fuzz_netlink: core.open failed: %s\n", lua_tostring(L, -1));
		abort();
	}
	lua_setglobal(L, "h");
	lua_settop(L, 0);
	for (i = 0; i < NETLINK_NOPS; i++) {
		if (luaL_loadstring(L, netlink_ops[i].lua) != LUA_OK) {
			fprintf(stderr, "fuzz_netlink: %s: %s\n", netlink_ops[i].name, lua_tostring(L, -1));
			abort();
		}
		op_ref[i] = luaL_ref(L, LUA_REGISTRYINDEX);
	}
	return 0;
}

/* Findings already reported, each with the bug it is (fuzz/README.md):
 * matched against the Lua error text, they are counted and not aborted on,
 * so the run goes on to find others. BRISK_FUZZ_STRICT=1 aborts on them
 * too. Delete an entry once its bug is fixed. */
static const struct {
	const char *match;
	const char *bug;
} known[] = {
	{ "invalid option '%x' to 'lua_pushfstring'",
	  "csrc/link.c push_flags(): lua_pushfstring has no %x, so a link flag bit brisk "
	  "does not name raises instead of being printed in hex" },
};

static int known_bug(const char *msg)
{
	static unsigned long seen[sizeof(known) / sizeof(known[0])];
	size_t i;

	if (!msg || strict())
		return 0;
	for (i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
		if (strstr(msg, known[i].match)) {
			if (seen[i]++ == 0)
				fprintf(stderr, "fuzz_netlink: known bug, not a new finding: %s\n",
					known[i].bug);
			return 1;
		}
	}
	return 0;
}

static void finding(size_t op, const char *what)
{
	fprintf(stderr, "fuzz_netlink: %s: %s\n", netlink_ops[op].name, what);
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t op;
	int n;

	if (size < 2)
		return 0;
	op = data[0] % NETLINK_NOPS;
	q.patch = !(data[1] & 1);
	q.data = data + 2;
	q.size = size - 2;
	q.off = 0;
	lua_settop(L, 0);
	lua_rawgeti(L, LUA_REGISTRYINDEX, op_ref[op]);
	if (lua_pcall(L, 0, LUA_MULTRET, 0) != LUA_OK) {
		if (known_bug(lua_tostring(L, -1))) {
			lua_settop(L, 0);
			return 0;
		}
		finding(op, lua_tostring(L, -1));
	}
	n = lua_gettop(L);
	if (n >= 1 && lua_isnil(L, 1)) {
		/* the failure triple */
		if (n != 3 || lua_type(L, 2) != LUA_TSTRING || !lua_isinteger(L, 3))
			finding(op, "failure is not nil, string, integer");
	} else if (n != 1 || !(lua_istable(L, 1) || lua_toboolean(L, 1))) {
		finding(op, "result is neither a table, true, nor a failure");
	}
	lua_settop(L, 0);
	return 0;
}
