/***
 * nft.c - nftables scripts through libnftables.
 *
 * `core.nft(script [, ns [, opts]])` hands one script to libnftables as one
 * netlink batch, so a script either applies whole or leaves the ruleset
 * exactly as it was.
 *
 * The script is written to a memfd and run with nft_run_cmd_from_filename
 * rather than nft_run_cmd_from_buffer: libnftables 1.0.6 quotes the FIRST
 * line of a buffer under every error, whatever line failed, while for a
 * file it names the line ("<file>:3:29-39: Error: ...") and quotes it. The
 * file name is replaced by "line " in the message.
 *
 * The context is made per call, inside the target namespace (libnftables
 * opens its NETLINK_NETFILTER socket in nft_ctx_new, and the socket belongs
 * to the namespace it was opened in). Measured on this kernel (nftables
 * 1.0.6, 1000 rules in the table): nft_ctx_new + nft_ctx_free cost ~30 us,
 * an `add rule` ~110 us with a fresh context against ~70 us with a cached
 * one. A cached context would also pin every namespace it ever saw (its
 * socket holds a reference) after `ip netns del`, so brisk does not cache.
 * What does matter: re-sending `add chain` for a chain that already exists
 * costs ~15 ms per batch (the kernel waits for an RCU grace period), so the
 * firewall policy only sends chain definitions when they are missing.
 *
 * libnftables (and libnftnl, libxtables, libjansson, libgmp behind it) is
 * opened with dlopen on the first nft call rather than linked: loading it
 * costs ~1 ms and some RSS, and most runs of the brisk program never touch
 * the firewall. The header still gives the prototypes: each pointer is
 * declared with typeof, so the compiler checks every call.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <linux/netlink.h>
#include <nftables/libnftables.h>
#include "brisk.h"

#define BRISK_NFTCTX_MT "brisk.nftctx"
#define BRISK_LIBNFTABLES "libnftables.so.1"

/* libnftables' functions, once nftlib_load() found them. Process-wide, as
 * the mapping is; written once under pthread_once, read-only afterwards,
 * and never unloaded. */
static struct {
	pthread_once_t once;
	int ok;
	char why[256];          /* dlerror() text when !ok */
	typeof(nft_ctx_new) *ctx_new;
	typeof(nft_ctx_free) *ctx_free;
	typeof(nft_ctx_buffer_output) *ctx_buffer_output;
	typeof(nft_ctx_buffer_error) *ctx_buffer_error;
	typeof(nft_ctx_get_output_buffer) *ctx_get_output_buffer;
	typeof(nft_ctx_get_error_buffer) *ctx_get_error_buffer;
	typeof(nft_ctx_output_set_flags) *ctx_output_set_flags;
	typeof(nft_ctx_set_dry_run) *ctx_set_dry_run;
	typeof(nft_run_cmd_from_filename) *run_cmd_from_filename;
} nftlib = { .once = PTHREAD_ONCE_INIT };

static void nftlib_open(void)
{
	/* each symbol and where its address goes (POSIX's idiom for
	 * function pointers: the void * is copied into the pointer) */
	const struct { const char *name; void *to; } syms[] = {
		{ "nft_ctx_new", &nftlib.ctx_new },
		{ "nft_ctx_free", &nftlib.ctx_free },
		{ "nft_ctx_buffer_output", &nftlib.ctx_buffer_output },
		{ "nft_ctx_buffer_error", &nftlib.ctx_buffer_error },
		{ "nft_ctx_get_output_buffer", &nftlib.ctx_get_output_buffer },
		{ "nft_ctx_get_error_buffer", &nftlib.ctx_get_error_buffer },
		{ "nft_ctx_output_set_flags", &nftlib.ctx_output_set_flags },
		{ "nft_ctx_set_dry_run", &nftlib.ctx_set_dry_run },
		{ "nft_run_cmd_from_filename", &nftlib.run_cmd_from_filename },
	};
	const char *why;
	void *lib, *p;
	size_t i;

	lib = dlopen(BRISK_LIBNFTABLES, RTLD_NOW | RTLD_LOCAL);
	if (lib == NULL) {
		why = dlerror();
		snprintf(nftlib.why, sizeof(nftlib.why), "%s", why ? why : "dlopen failed");
		return;
	}
	for (i = 0; i < sizeof(syms) / sizeof(syms[0]); i++) {
		p = dlsym(lib, syms[i].name);
		if (p == NULL) {
			why = dlerror();
			snprintf(nftlib.why, sizeof(nftlib.why), "%s",
				 why ? why : "missing symbol");
			dlclose(lib);
			return;
		}
		memcpy(syms[i].to, &p, sizeof(p));
	}
	nftlib.ok = 1;
}

/*
 * Open libnftables and resolve its functions, once per process. Returns
 * false when it cannot be loaded; nftlib.why then says why, every time (a
 * failed load is not retried).
 */
static bool nftlib_load(void)
{
	pthread_once(&nftlib.once, nftlib_open);
	return nftlib.ok;
}

/* The failure triple of a library that could not be loaded. */
static int nftlib_fail(lua_State *L)
{
	return brisk_failmsg(L, "nft: cannot load", BRISK_LIBNFTABLES, ENOENT, nftlib.why);
}

/* A context in a userdata, so a Lua error between nft_ctx_new and
 * nft_ctx_free (a failed push) cannot leak it: __gc frees it. */
struct nft_box {
	struct nft_ctx *ctx;
	int fd;                 /* the memfd holding the script, or -1 */
};

struct nft_job {
	struct nft_box *box;
	const char *path;       /* /proc/self/fd/N of the script */
	unsigned int oflags;
	bool dry_run;
	int rc;                 /* nft_run_cmd_from_filename's result */
	int err;                /* positive errno when no context could be made */
};

static void box_release(struct nft_box *b)
{
	if (b->ctx) {
		nftlib.ctx_free(b->ctx);
		b->ctx = NULL;
	}
	if (b->fd >= 0) {
		close(b->fd);
		b->fd = -1;
	}
}

static int nftctx_gc(lua_State *L)
{
	box_release(luaL_checkudata(L, 1, BRISK_NFTCTX_MT));
	return 0;
}

/* Write the script to a memfd; returns 0 or -1 with errno set. */
static int nft_script_fd(struct nft_box *b, const char *script, size_t len)
{
	ssize_t n;

	b->fd = memfd_create("brisk-nft", MFD_CLOEXEC);
	if (b->fd < 0)
		return -1;
	while (len > 0) {
		n = write(b->fd, script, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		script += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Runs inside the target namespace. */
static int nft_job_run(void *ud)
{
	struct nft_job *j = ud;
	struct nft_ctx *ctx;
	int fd;

	/* libnftables 1.0.x calls exit() when it cannot open its netlink
	 * socket. Open one first, so that failure is ours to report. */
	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
	if (fd < 0) {
		j->err = errno;
		return -1;
	}
	close(fd);
	ctx = nftlib.ctx_new(NFT_CTX_DEFAULT);
	if (!ctx) {
		j->err = errno ? errno : ENOMEM;
		return -1;
	}
	j->box->ctx = ctx;
	if (nftlib.ctx_buffer_output(ctx) || nftlib.ctx_buffer_error(ctx)) {
		j->err = errno ? errno : ENOMEM;
		return -1;
	}
	nftlib.ctx_output_set_flags(ctx, j->oflags);
	nftlib.ctx_set_dry_run(ctx, j->dry_run);
	j->rc = nftlib.run_cmd_from_filename(ctx, j->path);
	return 0;
}

/* libnftables reports kernel errors as text ("Could not process rule: File
 * exists"); recover the errno from the first strerror text that occurs, so
 * callers can tell EEXIST/ENOENT from a syntax error (EINVAL). */
static int nft_errno(const char *text)
{
	static const int known[] = {
		ENOENT, EEXIST, EBUSY, EPERM, EACCES, ENOMEM, EOPNOTSUPP,
		ENOSPC, ERANGE, E2BIG, EMSGSIZE, ENOBUFS, ENFILE, EMFILE,
		EINVAL, 0
	};
	const char *best = NULL, *p;
	int i, err = EINVAL;

	for (i = 0; known[i]; i++) {
		p = strstr(text, strerror(known[i]));
		if (p && (!best || p < best)) {
			best = p;
			err = known[i];
		}
	}
	return err;
}

static const char *const nft_opt_keys[] = { "json", "dry_run", "handle", "echo", NULL };

/* The shared body of core.nft and nl:nft: script at `si`, namespace at
 * `ni` (0 = current), options at `oi` (0 = none). */
static int nft_call(lua_State *L, int si, int ni, int oi)
{
	struct nft_job j = { 0 };
	struct { int fd; bool own; } ns = { -1, false };
	char label[96] = "current";
	char path[64], tag[72];
	const char *script, *out, *errtext;
	size_t len, n;
	int err;

	script = luaL_checklstring(L, si, &len);
	if (strlen(script) != len)
		luaL_argerror(L, si, "script contains a NUL byte");
	if (oi && !lua_isnoneornil(L, oi)) {
		luaL_checktype(L, oi, LUA_TTABLE);
		brisk_checkkeys(L, oi, "nft options", nft_opt_keys);
		if (brisk_optboolean(L, oi, "json", 0))
			j.oflags |= NFT_CTX_OUTPUT_JSON;
		if (brisk_optboolean(L, oi, "handle", 0))
			j.oflags |= NFT_CTX_OUTPUT_HANDLE;
		if (brisk_optboolean(L, oi, "echo", 0))
			j.oflags |= NFT_CTX_OUTPUT_ECHO;
		j.dry_run = brisk_optboolean(L, oi, "dry_run", 0);
	}
	if (ni && luaL_testudata(L, ni, BRISK_NL_MT)) {
		ns.fd = brisk_checknl(L, ni)->nsfd;
		snprintf(label, sizeof(label), "handle");
	} else if (ni && !lua_isnoneornil(L, ni)) {
		/* luaL_tolstring on a copy: lua_tostring would turn a pid
		 * into a string in place. */
		snprintf(label, sizeof(label), "%s", luaL_tolstring(L, ni, NULL));
		lua_pop(L, 1);
		ns.fd = brisk_netns_fd(L, ni);
		if (ns.fd < 0)
			return brisk_fail(L, "nft netns", label, errno);
		ns.own = true;
	}
	/* after the arguments are checked, so misuse raises whether or not
	 * libnftables is there */
	if (!nftlib_load()) {
		if (ns.own)
			close(ns.fd);
		return nftlib_fail(L);
	}

	j.box = lua_newuserdatauv(L, sizeof(*j.box), 0);
	j.box->ctx = NULL;
	j.box->fd = -1;
	luaL_setmetatable(L, BRISK_NFTCTX_MT);

	if (nft_script_fd(j.box, script, len) < 0) {
		err = errno;
		if (ns.own)
			close(ns.fd);
		return brisk_fail(L, "nft", "script", err);
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", j.box->fd);
	j.path = path;
	err = brisk_in_netns(ns.fd, nft_job_run, &j) < 0 ? (j.err ? j.err : errno) : 0;
	if (ns.own)
		close(ns.fd);
	if (err) {
		box_release(j.box);
		return brisk_fail(L, "nft in netns", label, err);
	}

	if (j.rc != 0) {
		errtext = nftlib.ctx_get_error_buffer(j.box->ctx);
		if (!errtext || !*errtext)
			errtext = "command failed";
		n = strlen(errtext);
		while (n && (errtext[n - 1] == '\n' || errtext[n - 1] == ' '))
			n--;
		lua_pushnil(L);
		lua_pushliteral(L, "nft: ");
		lua_pushlstring(L, errtext, n);
		snprintf(tag, sizeof(tag), "%s:", path);
		luaL_gsub(L, lua_tostring(L, -1), tag, "line ");
		lua_remove(L, -2);
		lua_concat(L, 2);
		lua_pushinteger(L, nft_errno(errtext));
	} else {
		out = nftlib.ctx_get_output_buffer(j.box->ctx);
		lua_pushstring(L, out ? out : "");
	}
	/* free the context and the memfd now rather than at the next GC */
	box_release(j.box);
	return j.rc != 0 ? 3 : 1;
}

/***
 * Run an nft script as one transaction.
 * @function nft
 * @tparam string script nft commands, as `nft -f` reads them
 * @param[opt] ns nil (current), a name under /run/netns, a path, a pid or
 *   a brisk.nl handle: the namespace whose ruleset the script acts on
 * @tparam[opt] table opts `json` (output as JSON), `handle` (rule handles
 *   in text output), `echo` (print what was added), `dry_run` (parse and
 *   check, commit nothing); unknown keys raise
 * @return the output text ("" for commands that print nothing)
 * @return[2] nil, "nft: line N:C-C: Error: ...<the line>", errno (taken
 *   from the kernel's error text: ENOENT, EEXIST, ...; EINVAL for syntax
 *   errors); the ruleset is unchanged
 * @return[3] nil, "nft netns X: <strerror>", errno when the namespace
 *   cannot be opened or entered
 * @return[4] nil, "nft: cannot load libnftables.so.1: <dlerror text>",
 *   ENOENT when libnftables (opened on the first call) is missing or
 *   lacks a function brisk uses
 */
static int l_nft(lua_State *L)
{
	return nft_call(L, 1, 2, 3);
}

/***
 * Run an nft script in the handle's namespace (core.nft(script, h, opts)).
 * @function nl:nft
 * @tparam string script
 * @tparam[opt] table opts as for core.nft
 * @return as core.nft
 */
static int l_nl_nft(lua_State *L)
{
	brisk_checknl(L, 1);
	return nft_call(L, 2, 1, 3);
}

/***
 * Whether nftables can be used: opens libnftables (once per process, as the
 * first nft call would) and resolves the functions brisk uses. A program
 * that will run nft scripts later (brisk daemon) calls it ahead of time.
 * @function nft_available
 * @return true
 * @return[2] nil, "nft: cannot load libnftables.so.1: <dlerror text>", ENOENT
 */
static int l_nft_available(lua_State *L)
{
	if (!nftlib_load())
		return nftlib_fail(L);
	lua_pushboolean(L, 1);
	return 1;
}

static const luaL_Reg nft_mod[] = {
	{ "nft", l_nft },
	{ "nft_available", l_nft_available },
	{ NULL, NULL }
};

static const luaL_Reg nft_meth[] = {
	{ "nft", l_nl_nft },
	{ NULL, NULL }
};

void brisk_open_nft(lua_State *L, int mod, int meth)
{
	luaL_newmetatable(L, BRISK_NFTCTX_MT);
	lua_pushcfunction(L, nftctx_gc);
	lua_setfield(L, -2, "__gc");
	lua_pop(L, 1);
	lua_pushvalue(L, mod);
	luaL_setfuncs(L, nft_mod, 0);
	lua_pop(L, 1);
	lua_pushvalue(L, meth);
	luaL_setfuncs(L, nft_meth, 0);
	lua_pop(L, 1);
}
