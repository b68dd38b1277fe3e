/*
 * record_netlink.c - capture real kernel replies as seeds for fuzz_netlink.
 *
 *   record_netlink OUTDIR
 *
 * Runs each call of netlink_ops.h once against the kernel (in the current
 * network namespace: scripts/fuzz.sh runs it inside a private one made for
 * it, with a bridge br0 and a port vp0) and writes OUTDIR/NN-name in
 * fuzz_netlink's input format: the call's index, a flags byte, then each
 * reply datagram as a little-endian u16 length and its bytes. Linked with
 * -Wl,--wrap=mnl_socket_recvfrom so that the datagrams pass through here.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <libmnl/libmnl.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include "netlink_ops.h"

int luaopen_brisk_core(lua_State *L);
ssize_t __real_mnl_socket_recvfrom(const struct mnl_socket *nl, void *buf, size_t siz);

static struct {
	unsigned char *buf;
	size_t len, cap;
} rec;

static void rec_put(const void *p, size_t n)
{
	if (rec.len + n > rec.cap) {
		rec.cap = (rec.len + n) * 2;
		rec.buf = realloc(rec.buf, rec.cap);
		if (!rec.buf)
			abort();
	}
	memcpy(rec.buf + rec.len, p, n);
	rec.len += n;
}

ssize_t __wrap_mnl_socket_recvfrom(const struct mnl_socket *nl, void *buf, size_t siz)
{
	ssize_t n = __real_mnl_socket_recvfrom(nl, buf, siz);
	unsigned char hdr[2];

	if (n >= 0) {
		if (n > 0xffff)
			abort();
		hdr[0] = (unsigned char)(n & 0xff);
		hdr[1] = (unsigned char)(n >> 8);
		rec_put(hdr, 2);
		rec_put(buf, (size_t)n);
	}
	return n;
}

int main(int argc, char **argv)
{
	lua_State *L;
	char path[4096];
	unsigned char head[2];
	size_t i;
	FILE *f;

	if (argc != 2) {
		fprintf(stderr, "usage: record_netlink OUTDIR\n");
		return 2;
	}
	L = luaL_newstate();
	luaL_openlibs(L);
	luaL_requiref(L, "brisk.core", luaopen_brisk_core, 0);
	lua_getfield(L, -1, "open");
	if (lua_pcall(L, 0, 1, 0) != LUA_OK || !lua_isuserdata(L, -1)) {
		fprintf(stderr, "record_netlink: core.open failed\n");
		return 1;
	}
	lua_setglobal(L, "h");
	for (i = 0; i < NETLINK_NOPS; i++) {
		rec.len = 0;
		head[0] = (unsigned char)i;
		head[1] = 0;
		rec_put(head, 2);
		if (luaL_dostring(L, netlink_ops[i].lua) != LUA_OK) {
			fprintf(stderr, "record_netlink: %s: %s\n", netlink_ops[i].name,
				lua_tostring(L, -1));
			return 1;
		}
		lua_settop(L, 0);
		snprintf(path, sizeof(path), "%s/%02zu-%s", argv[1], i, netlink_ops[i].name);
		f = fopen(path, "wb");
		if (!f || fwrite(rec.buf, 1, rec.len, f) != rec.len || fclose(f) != 0) {
			fprintf(stderr, "record_netlink: cannot write %s\n", path);
			return 1;
		}
	}
	lua_close(L);
	free(rec.buf);
	return 0;
}
