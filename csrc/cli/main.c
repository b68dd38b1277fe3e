/***
 * main.c - the brisk program: a small host that embeds Lua 5.4.
 *
 * It finds brisk's Lua code next to the executable (from the source tree or
 * from an installed prefix), preloads `brisk.host` (line editing through
 * libedit, opened on first use, history, completion, isatty; `exe`, `root`
 * and `chunks`, the directories it found) and `brisk.core`, which the build
 * links in (lua5.4 scripts load the same code from core.so), then runs
 * `require("brisk.cli").main(args)` under a message handler and exits with
 * the code it returns (0 ok, 1 failure, 2 usage).
 *
 * Layout it looks for, from /proc/self/exe:
 *   <root>/build/bin/brisk  ->  <root>/lua/?.lua, <root>/lua/?/init.lua,
 *                               <root>/build/lib/?.so,
 *                               chunks <root>/build/lua/?.luac
 *   <prefix>/bin/brisk      ->  <prefix>/share/lua/5.4/?.lua (and ?/init.lua),
 *                               <prefix>/lib/lua/5.4/?.so,
 *                               chunks <prefix>/lib/lua/5.4/?.luac
 * Lua's default paths (LUA_PATH_5_4, LUA_CPATH_5_4 or the built-in ones)
 * stay after these.
 *
 * Chunks are the Lua sources precompiled by the build (scripts/luac.lua): a
 * searcher put before Lua's own file searcher loads module X from
 * <chunks>/X.luac (or X/init.luac) unless the source the file searcher
 * would find at the same place (<lua dir>/X.lua) is newer, so an edited
 * source is used until `make` compiles it again. A chunk that is missing or
 * does not load leaves the module to the other searchers. package.path is
 * unchanged: package.searchpath and scripts see the sources.
 *
 * Before all that, it maps the start-up image <chunks>/brisk.image when
 * there is one that describes this run (image.c): a state with those steps
 * done and image_modules loaded; then only after_image's per-process fix-ups
 * are left. `brisk --write-image FILE` makes one (the build does);
 * BRISK_NO_IMAGE=1 starts without.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

/* For libedit's types only: the program does not link libedit (its load,
 * with libtinfo and libbsd, costs a few tenths of a millisecond per run);
 * it is opened with dlopen when the REPL first edits a line. */
#include <editline/readline.h>

#include "daemon.h"
#include "image.h"

#ifdef BRISK_CORE_BUILTIN
int luaopen_brisk_core(lua_State *L);
#endif

#define HISTORY_MAX 1000
#define IMAGE_FILE "brisk.image"          /* in the chunk directory */
#define IMAGE_SERVED "brisk.image.served" /* registry: modules the chunk searcher loaded */

#ifndef BRISK_LIBEDIT
#define BRISK_LIBEDIT "libedit.so.2"   /* the build passes libedit's soname */
#endif

/* libedit's functions and variables, once edit_open() found them. */
static struct {
	int tried, ok;
	char *(*readline)(const char *);
	int (*add_history)(const char *);
	void (*stifle_history)(int);
	int (*read_history)(const char *);
	int (*write_history)(const char *);
	char **(*completion_matches)(const char *, rl_compentry_func_t *);
	char **line_buffer;
	int *attempted_completion_over;
} ed;

/*
 * readline's completion hooks carry no user data, so the state they need
 * lives here: the Lua state, a registry reference to the completer function
 * and, while one completion runs, to its candidate array.
 */
static struct {
	lua_State *L;
	int fn;          /* completer, or LUA_NOREF */
	int cands;       /* candidates of the completion in progress */
	lua_Integer next;
} comp = { NULL, LUA_NOREF, LUA_NOREF, 0 };

/* Characters that end a word for completion: Lua operators and brackets,
 * but not '.' or ':' so that "string.fo" and "s:up" reach the completer
 * whole. */
static char word_breaks[] = " \t\n\"'`@$><=;|&{}()[],+-*/%^~#";

/* --- libedit, opened on first use --- */

static char **complete(const char *text, int start, int end);

/*
 * Open libedit and set it up (program name, word breaks, completion), once;
 * the history limit is set then too, so that a run that never edits a line
 * never touches the terminal. Returns false, having said why on stderr,
 * when it is not there: the host then reads plain lines without history.
 */
static int edit_open(void)
{
	const char **name = NULL, **basic = NULL;
	char **breaks = NULL;
	int *append = NULL;
	rl_completion_func_t **attempted = NULL;
	/* each symbol and where its address goes (POSIX's idiom for
	 * function pointers: the void * is copied into the pointer) */
	const struct { const char *name; void *to; } syms[] = {
		{ "readline", &ed.readline },
		{ "add_history", &ed.add_history },
		{ "stifle_history", &ed.stifle_history },
		{ "read_history", &ed.read_history },
		{ "write_history", &ed.write_history },
		{ "rl_completion_matches", &ed.completion_matches },
		{ "rl_line_buffer", &ed.line_buffer },
		{ "rl_attempted_completion_over", &ed.attempted_completion_over },
		{ "rl_readline_name", &name },
		{ "rl_basic_word_break_characters", &basic },
		{ "rl_completer_word_break_characters", &breaks },
		{ "rl_completion_append_character", &append },
		{ "rl_attempted_completion_function", &attempted },
	};
	void *lib;
	size_t i;

	if (ed.tried)
		return ed.ok;
	ed.tried = 1;
	lib = dlopen(BRISK_LIBEDIT, RTLD_NOW | RTLD_LOCAL);
	if (lib == NULL) {
		fprintf(stderr, "brisk: no line editing: %s\n", dlerror());
		return 0;
	}
	for (i = 0; i < sizeof(syms) / sizeof(syms[0]); i++) {
		void *p = dlsym(lib, syms[i].name);

		if (p == NULL) {
			fprintf(stderr, "brisk: no line editing: %s has no %s\n",
				BRISK_LIBEDIT, syms[i].name);
			dlclose(lib);
			return 0;
		}
		memcpy(syms[i].to, &p, sizeof(p));
	}
	*name = "brisk";
	*basic = word_breaks;
	*breaks = word_breaks;
	*append = '\0';
	*attempted = complete;
	ed.stifle_history(HISTORY_MAX);
	ed.ok = 1;
	return 1;
}

/* --- brisk.host --- */

/* A line from stdin without editing (libedit is missing). */
static int plain_readline(lua_State *L, const char *prompt)
{
	luaL_Buffer b;
	int c = EOF;

	fputs(prompt, stdout);
	fflush(stdout);
	luaL_buffinit(L, &b);
	while ((c = getchar()) != EOF && c != '\n')
		luaL_addchar(&b, (char)c);
	luaL_pushresult(&b);
	if (c == EOF && lua_rawlen(L, -1) == 0)
		lua_pushnil(L);
	return 1;
}

/***
 * Read one line with line editing (without, when libedit is missing).
 * @tparam[opt=""] string prompt
 * @treturn string|nil the line without its newline; nil at end of input
 */
static int host_readline(lua_State *L)
{
	const char *prompt = luaL_optstring(L, 1, "");
	char *line;

	lua_settop(L, 1);
	if (!edit_open())
		return plain_readline(L, prompt);
	line = ed.readline(prompt);
	if (line == NULL) {
		lua_pushnil(L);
		return 1;
	}
	lua_pushstring(L, line);
	free(line);
	return 1;
}

/***
 * Add a line to the in-memory history (empty lines are ignored).
 * @tparam string line
 * @treturn true
 */
static int host_add_history(lua_State *L)
{
	const char *line = luaL_checkstring(L, 1);

	if (*line != '\0' && edit_open())
		ed.add_history(line);
	lua_pushboolean(L, 1);
	return 1;
}

static int history_result(lua_State *L, int err, const char *op,
			  const char *path)
{
	if (err == 0) {
		lua_pushboolean(L, 1);
		return 1;
	}
	lua_pushnil(L);
	lua_pushfstring(L, "%s %s: %s", op, path, strerror(err));
	lua_pushinteger(L, err);
	return 3;
}

/***
 * Load a history file (libedit's format) into the in-memory history.
 * @tparam string path
 * @treturn true
 * @return nil, "read history PATH: <strerror>", errno on failure
 */
static int host_read_history(lua_State *L)
{
	const char *path = luaL_checkstring(L, 1);

	if (!edit_open())
		return history_result(L, 0, "read history", path);
	return history_result(L, ed.read_history(path), "read history", path);
}

/***
 * Write the in-memory history (at most 1000 entries) to a file.
 * @tparam string path
 * @treturn true
 * @return nil, "write history PATH: <strerror>", errno on failure
 */
static int host_write_history(lua_State *L)
{
	const char *path = luaL_checkstring(L, 1);

	if (!edit_open())
		return history_result(L, 0, "write history", path);
	return history_result(L, ed.write_history(path), "write history", path);
}

static char *complete_next(const char *text, int state)
{
	lua_State *L = comp.L;
	char *s = NULL;

	(void)text;
	if (state == 0)
		comp.next = 1;
	if (L == NULL || comp.cands == LUA_NOREF)
		return NULL;
	lua_rawgeti(L, LUA_REGISTRYINDEX, comp.cands);
	while (s == NULL) {
		if (lua_rawgeti(L, -1, comp.next++) == LUA_TNIL) {
			lua_pop(L, 1);
			break;
		}
		if (lua_type(L, -1) == LUA_TSTRING)
			s = strdup(lua_tostring(L, -1));
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
	return s;
}

static char **complete(const char *text, int start, int end)
{
	lua_State *L = comp.L;
	char **matches = NULL;
	int top;

	const char *line = *ed.line_buffer ? *ed.line_buffer : "";
	size_t upto = strlen(line);

	(void)start;
	if (end >= 0 && (size_t)end < upto)
		upto = (size_t)end;              /* the line up to the cursor */
	*ed.attempted_completion_over = 1;   /* never fall back to file names */
	if (L == NULL || comp.fn == LUA_NOREF)
		return NULL;
	top = lua_gettop(L);
	if (!lua_checkstack(L, 8))
		return NULL;
	lua_rawgeti(L, LUA_REGISTRYINDEX, comp.fn);
	lua_pushstring(L, text);
	lua_pushlstring(L, line, upto);
	/* A Lua error must not unwind through libedit: protected call only. */
	if (lua_pcall(L, 2, 1, 0) == LUA_OK && lua_istable(L, -1)) {
		comp.cands = luaL_ref(L, LUA_REGISTRYINDEX);
		matches = ed.completion_matches(text, complete_next);
		luaL_unref(L, LUA_REGISTRYINDEX, comp.cands);
		comp.cands = LUA_NOREF;
	}
	lua_settop(L, top);
	return matches;
}

/***
 * Set the completion function used by readline.
 * @tparam function|nil fn called as fn(text, line) with the word being
 *   completed and the whole line; returns an array of candidates. Errors in
 *   it are ignored (no completion). nil removes the completer.
 * @treturn true
 */
static int host_set_completer(lua_State *L)
{
	if (!lua_isnoneornil(L, 1))
		luaL_checktype(L, 1, LUA_TFUNCTION);
	luaL_unref(L, LUA_REGISTRYINDEX, comp.fn);
	comp.fn = LUA_NOREF;
	if (!lua_isnoneornil(L, 1)) {
		lua_pushvalue(L, 1);
		comp.fn = luaL_ref(L, LUA_REGISTRYINDEX);
		comp.L = L;
	}
	lua_pushboolean(L, 1);
	return 1;
}

/***
 * Whether a file descriptor is a terminal.
 * @tparam integer fd
 * @treturn boolean
 */
static int host_isatty(lua_State *L)
{
	lua_Integer fd = luaL_checkinteger(L, 1);

	luaL_argcheck(L, fd >= 0 && fd <= INT_MAX, 1, "not a file descriptor");
	lua_pushboolean(L, isatty((int)fd));
	return 1;
}

/* --- Ctrl-C in user code --- */

/* While a script of the user's (brisk run) or a REPL line runs, SIGINT
 * raises "interrupted" in it, as lua.c does, so that its error handling
 * (a topology's teardown) runs; a second SIGINT ends the process. It is
 * raised only where no function of brisk's own is running between the
 * run and the running function: inside a brisk call, and in a user's
 * function that brisk called (a step hook, a log function), brisk
 * finishes first, so that no store lock, journal entry or topology record
 * is left half made. brisk's functions are told by their source names
 * (`lib`: the directories brisk's modules were loaded from, "=?" for
 * stripped chunks). Only the main thread is interrupted (as lua.c does);
 * while an interrupt waits, the hook runs when a function returns, and
 * looks again at the next instruction when it returns into a Lua function
 * that is not brisk's. Runs nest (a script that runs another): each disarm
 * puts the outer run's depth back. */
#define MAX_LIB 6
#define MAX_RUNS 8
#define MAX_LOOK 64          /* frames looked at: deeper waits */
static lua_State *sig_L;             /* the thread SIGINT interrupts */
static char lib[MAX_LIB][PATH_MAX + 16];
static int nlib;
static int runs[MAX_RUNS], nruns;   /* frames below each run's user code */
static lua_State *run_L[MAX_RUNS];  /* and its thread */

static int is_lib(const char *source)
{
	int i;

	for (i = 0; i < nlib; i++) {
		size_t n = strlen(lib[i]);
		if (lib[i][n - 1] == '/' ? !strncmp(source, lib[i], n) : !strcmp(source, lib[i]))
			return 1;
	}
	return 0;
}

/* Whether the main thread runs the user's code: up to the run's own
 * frames, none of brisk's, and a Lua function on top. */
static int stack_depth(lua_State *L, int max)
{
	lua_Debug d;
	int n = 0;

	while (n < max && lua_getstack(L, n, &d))
		n++;
	return n;
}

static int in_user_code(lua_State *L)
{
	lua_Debug d;
	int level, inside = stack_depth(L, runs[nruns - 1] + MAX_LOOK + 1) - runs[nruns - 1];

	if (inside <= 0 || inside > MAX_LOOK)
		return 0;
	for (level = 0; level < inside; level++) {
		if (!lua_getstack(L, level, &d) || !lua_getinfo(L, "S", &d))
			return 0;
		if (d.what[0] == 'C') {
			if (level == 0)
				return 0;      /* wait for Lua code */
			continue;              /* pcall, table.sort: the user's own */
		}
		if (is_lib(d.source))
			return 0;
	}
	return 1;
}

static void interrupt_hook(lua_State *L, lua_Debug *ar)
{
	if (L != sig_L || nruns == 0) {
		lua_sethook(L, NULL, 0, 0);    /* a coroutine (it took the hook along) */
		return;
	}
	if (ar->event == LUA_HOOKRET) {
		lua_Debug d;
		if (lua_getstack(L, 1, &d) && lua_getinfo(L, "S", &d) && d.what[0] != 'C' && !is_lib(d.source))
			lua_sethook(L, interrupt_hook, LUA_MASKRET | LUA_MASKCOUNT, 1);
		return;
	}
	if (!in_user_code(L)) {
		lua_sethook(L, interrupt_hook, LUA_MASKRET, 0);
		return;
	}
	lua_sethook(L, NULL, 0, 0);
	lua_pushliteral(L, "interrupted");
	lua_error(L);
}

static void on_sigint(int sig)
{
	signal(sig, SIG_DFL);
	if (sig_L)
		lua_sethook(sig_L, interrupt_hook, LUA_MASKRET | LUA_MASKCOUNT, 1);
}

/* host.interrupts(true, {source prefix or name, ...}): until the matching
 * host.interrupts(false), SIGINT raises "interrupted" in the user's code
 * that the caller is about to run (its frames are those above the
 * caller's). host.interrupts(false) returns whether an interrupt was still
 * waiting; after the outermost run, SIGINT ends the process again (the
 * default), and a user's own debug hook is kept. */
static int host_interrupts(lua_State *L)
{
	int pending = 0;

	luaL_checktype(L, 1, LUA_TBOOLEAN);
	if (lua_toboolean(L, 1)) {
		lua_Integer i, n;
		luaL_checktype(L, 2, LUA_TTABLE);
		if (nruns == MAX_RUNS)
			return luaL_error(L, "interrupts: runs nested too deep");
		n = (lua_Integer)lua_rawlen(L, 2);
		for (i = 1, nlib = 0; i <= n && nlib < MAX_LIB; i++) {
			lua_rawgeti(L, 2, i);
			if (lua_type(L, -1) == LUA_TSTRING && lua_rawlen(L, -1) > 0)
				snprintf(lib[nlib++], sizeof(lib[0]), "%s", lua_tostring(L, -1));
			lua_pop(L, 1);
		}
		/* the user's code runs now (`run`, the REPL), maybe for long: the
		 * state leaves the image's file (image.h) */
		brisk_image_detach(L);
		run_L[nruns] = L;
		runs[nruns++] = stack_depth(L, INT_MAX) - 1;   /* less this function's own frame */
		sig_L = L;
		signal(SIGINT, on_sigint);
	} else {
		if (lua_gethook(L) == interrupt_hook) {
			pending = 1;
			lua_sethook(L, NULL, 0, 0);
		}
		if (nruns > 0)
			nruns--;
		/* the outer run, if any, catches the next one, in its thread */
		sig_L = nruns > 0 ? run_L[nruns - 1] : NULL;
		signal(SIGINT, nruns > 0 ? on_sigint : SIG_DFL);
	}
	lua_pushboolean(L, pending);
	return 1;
}

static const luaL_Reg host_funcs[] = {
	{ "interrupts", host_interrupts },
	{ "readline", host_readline },
	{ "add_history", host_add_history },
	{ "read_history", host_read_history },
	{ "write_history", host_write_history },
	{ "set_completer", host_set_completer },
	{ "isatty", host_isatty },
	{ "serve", brisk_host_serve },
	{ NULL, NULL }
};

static int luaopen_brisk_host(lua_State *L)
{
	luaL_newlib(L, host_funcs);
	/* upvalues of this opener: the executable's path, the root and the
	 * chunk directory it found (each may be nil) */
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_setfield(L, -2, "exe");
	lua_pushvalue(L, lua_upvalueindex(2));
	lua_setfield(L, -2, "root");
	lua_pushvalue(L, lua_upvalueindex(3));
	lua_setfield(L, -2, "chunks");
	return 1;
}

/* --- paths --- */

/* Replace the last path component of `path` (in place) by nothing; returns
 * false when there is none. */
static int strip_last(char *path)
{
	char *slash = strrchr(path, '/');

	if (slash == NULL || slash == path)
		return 0;
	*slash = '\0';
	return 1;
}

static int has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int exists(const char *dir, const char *rest)
{
	char p[PATH_MAX];

	if (snprintf(p, sizeof(p), "%s%s", dir, rest) >= (int)sizeof(p))
		return 0;
	return access(p, F_OK) == 0;
}

/* Prepend `front` to package[field], separated by ';'. */
static void prepend(lua_State *L, const char *field, const char *front)
{
	lua_getglobal(L, "package");
	lua_getfield(L, -1, field);
	lua_pushfstring(L, "%s;%s", front, lua_tostring(L, -1));
	lua_setfield(L, -3, field);
	lua_pop(L, 2);
}

/* --- precompiled chunks --- */

/* Whether file a was modified after file b. */
static int newer(const struct stat *a, const struct stat *b)
{
	if (a->st_mtim.tv_sec != b->st_mtim.tv_sec)
		return a->st_mtim.tv_sec > b->st_mtim.tv_sec;
	return a->st_mtim.tv_nsec > b->st_mtim.tv_nsec;
}

/*
 * Load the binary chunk at `path` as luaL_loadfilex(L, path, "b") would
 * (chunk name "@path"), reading the file whole in one read: the stdio
 * reader would read it 4 KB at a time after opening it twice. Pushes the
 * function, or an error message, and returns the load status.
 */
static int load_chunk(lua_State *L, const char *path)
{
	struct stat st;
	char *buf;
	ssize_t got = 0, r;
	int fd = open(path, O_RDONLY | O_CLOEXEC), status;

	if (fd < 0 || fstat(fd, &st) != 0 || st.st_size <= 0 || st.st_size > (64 << 20)) {
		if (fd >= 0)
			close(fd);
		lua_pushfstring(L, "cannot read %s: %s", path, strerror(fd < 0 ? errno : EIO));
		return LUA_ERRFILE;
	}
	buf = lua_newuserdatauv(L, (size_t)st.st_size, 0);
	while (got < st.st_size && ((r = read(fd, buf + got, (size_t)(st.st_size - got))) > 0 ||
				    (r < 0 && errno == EINTR)))
		if (r > 0)
			got += r;
	close(fd);
	if (got != st.st_size) {
		lua_pop(L, 1);
		lua_pushfstring(L, "cannot read %s", path);
		return LUA_ERRFILE;
	}
	lua_pushfstring(L, "@%s", path);
	status = luaL_loadbufferx(L, buf, (size_t)got, lua_tostring(L, -1), "b");
	lua_replace(L, -3);         /* the function (or message) takes the buffer's slot */
	lua_pop(L, 1);              /* the chunk name */
	return status;
}

/*
 * package.searchers entry (upvalues: the chunk directory, the source
 * directory): finds module `name` as a precompiled chunk. Returns the
 * loader and the chunk's path, or a string saying what it tried.
 */
static int search_chunk(lua_State *L)
{
	static const char *const forms[] = { "%s/%s.lua%s", "%s/%s/init.lua%s" };
	const char *name = luaL_checkstring(L, 1);
	const char *cdir = lua_tostring(L, lua_upvalueindex(1));
	const char *sdir = lua_tostring(L, lua_upvalueindex(2));
	const char *rel = luaL_gsub(L, name, ".", "/");
	int top = lua_gettop(L);
	size_t i;

	for (i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		struct stat cst, sst;
		const char *chunk = lua_pushfstring(L, forms[i], cdir, rel, "c");
		int at = lua_gettop(L);

		const char *src;

		brisk_image_note(chunk);
		if (stat(chunk, &cst) != 0) {
			lua_pushfstring(L, "no file '%s'", chunk);
		} else if (brisk_image_note(src = lua_pushfstring(L, forms[i], sdir, rel, "")),
			   stat(src, &sst) == 0 && newer(&sst, &cst)) {
			lua_pushfstring(L, "chunk '%s' is older than its source", chunk);
		} else if (load_chunk(L, chunk) == LUA_OK) {
			if (brisk_image_building()) {   /* main's check: loaded from a chunk */
				lua_getfield(L, LUA_REGISTRYINDEX, IMAGE_SERVED);
				if (lua_istable(L, -1)) {
					lua_pushboolean(L, 1);
					lua_setfield(L, -2, name);
				}
				lua_pop(L, 1);
			}
			lua_pushvalue(L, at);
			return 2;                /* loader, chunk path */
		}
		/* what was tried: the message on top takes the chunk's slot */
		lua_replace(L, at);
		lua_settop(L, at);
	}
	lua_pushfstring(L, "%s\n\t%s", lua_tostring(L, top + 1), lua_tostring(L, top + 2));
	return 1;
}

/* Put the chunk searcher (over chunk directory `cdir`, sources in `sdir`)
 * second in package.searchers: after preload, before the file searchers. */
static void add_chunk_searcher(lua_State *L, const char *cdir, const char *sdir)
{
	lua_Integer i;

	lua_getglobal(L, "package");
	lua_getfield(L, -1, "searchers");
	for (i = (lua_Integer)lua_rawlen(L, -1); i >= 2; i--) {
		lua_rawgeti(L, -1, i);
		lua_rawseti(L, -2, i + 1);
	}
	lua_pushstring(L, cdir);
	lua_pushstring(L, sdir);
	lua_pushcclosure(L, search_chunk, 2);
	lua_rawseti(L, -2, 2);
	lua_pop(L, 2);
}

/* Where the program found itself and brisk's Lua code (empty: not found). */
struct paths {
	char exe[PATH_MAX], root[PATH_MAX];
	char luadir[PATH_MAX], sodir[PATH_MAX], cdir[PATH_MAX];
};

static int path_join(char *out, const char *a, const char *b)
{
	return snprintf(out, PATH_MAX, "%s%s", a, b) < PATH_MAX;
}

/* Fill `p` from /proc/self/exe (the layouts in the comment at the top). */
static void find_paths(struct paths *p)
{
	char *root = p->root;
	ssize_t n;

	memset(p, 0, sizeof(*p));
	n = readlink("/proc/self/exe", p->exe, sizeof(p->exe) - 1);
	if (n <= 0)
		return;
	p->exe[n] = '\0';
	memcpy(root, p->exe, (size_t)n + 1);
	if (!strip_last(root)) {            /* root = the bin directory */
		root[0] = '\0';
		return;
	}
	/* the source tree: its lua/, or only its chunks when lua/ is gone */
	if (has_suffix(root, "/build/bin") && strip_last(root) && strip_last(root) &&
	    (exists(root, "/lua/brisk/cli.lua") || exists(root, "/build/lua/brisk/cli.luac"))) {
		if (path_join(p->luadir, root, "/lua") && path_join(p->sodir, root, "/build/lib") &&
		    path_join(p->cdir, root, "/build/lua"))
			return;
	} else {
		memcpy(root, p->exe, (size_t)n + 1);
		if (strip_last(root) && has_suffix(root, "/bin") && strip_last(root) &&
		    path_join(p->luadir, root, "/share/lua/5.4") &&
		    path_join(p->sodir, root, "/lib/lua/5.4") && path_join(p->cdir, root, "/lib/lua/5.4"))
			return;
	}
	root[0] = p->luadir[0] = p->sodir[0] = p->cdir[0] = '\0';
}

static void push_or_nil(lua_State *L, const char *s)
{
	if (*s)
		lua_pushstring(L, s);
	else
		lua_pushnil(L);
}

/* Set package.path/cpath and the chunk searcher from `p`, and push the
 * executable's path, the root and the chunk directory (each, or nil). */
static void set_paths(lua_State *L, const struct paths *p)
{
	if (p->cdir[0]) {
		prepend(L, "path", lua_pushfstring(L, "%s/?.lua;%s/?/init.lua", p->luadir, p->luadir));
		prepend(L, "cpath", lua_pushfstring(L, "%s/?.so", p->sodir));
		lua_pop(L, 2);
		add_chunk_searcher(L, p->cdir, p->luadir);
	}
	push_or_nil(L, p->exe);
	push_or_nil(L, p->root);
	push_or_nil(L, p->cdir);
}

/* --- running --- */

static int debug_enabled(void)
{
	const char *d = getenv("BRISK_DEBUG");

	return d != NULL && *d != '\0' && strcmp(d, "0") != 0;
}

/*
 * Message handler: turns what was raised into the text to print. An error
 * object (a table) gives its `message` field or its __tostring; a traceback
 * is added only with BRISK_DEBUG set.
 */
static int msghandler(lua_State *L)
{
	const char *msg = NULL;

	if (lua_type(L, 1) == LUA_TTABLE &&
	    lua_getfield(L, 1, "message") == LUA_TSTRING)
		msg = lua_tostring(L, -1);
	else if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
		msg = lua_tostring(L, -1);
	else if (lua_type(L, 1) == LUA_TSTRING || lua_type(L, 1) == LUA_TNUMBER)
		msg = lua_tostring(L, 1);
	if (msg == NULL)
		msg = lua_pushfstring(L, "(error object is a %s value)",
				      luaL_typename(L, 1));
	if (debug_enabled())
		luaL_traceback(L, L, msg, 1);
	else
		lua_pushstring(L, msg);
	return 1;
}

/* The modules the start-up image holds loaded (image.c): the CLI, the
 * endpoint and network commands and everything they require. Not the
 * firewall (it loads lua-cjson with dlopen: not at the same address in the
 * next run), the REPL, the topology or the graph code. */
static const char *const image_modules[] = {
	"brisk", "brisk.cli", "brisk.cliutil", "brisk.cli.endpoint", "brisk.cli.network",
	"brisk.driver", "brisk.store", "brisk.endpoint", "brisk.handle", "brisk.ipnet",
	"brisk.schema", "brisk.netopts", "brisk.pretty", "brisk.ports", NULL
};

/* A new state made ready: libraries, paths, preloads. */
static int init_state(lua_State *L, const struct paths *p)
{
	luaL_checkversion(L);
	luaL_openlibs(L);
	lua_gc(L, LUA_GCGEN, 0, 0);

	set_paths(L, p);                     /* pushes exe, root, chunks */
	lua_getglobal(L, "package");
	lua_getfield(L, -1, "preload");
	lua_pushvalue(L, -5);
	lua_pushvalue(L, -5);
	lua_pushvalue(L, -5);
	lua_pushcclosure(L, luaopen_brisk_host, 3);
	lua_setfield(L, -2, "brisk.host");
#ifdef BRISK_CORE_BUILTIN
	lua_pushcfunction(L, luaopen_brisk_core);
	lua_setfield(L, -2, "brisk.core");
#endif
	lua_pop(L, 5);
	return 0;
}

/* A state mapped from the image: what is per process set again. */
static void after_image(lua_State *L)
{
	static const char *const std[] = { "stdin", "stdout", "stderr" };
	FILE *const files[] = { stdin, stdout, stderr };
	uint64_t seed[2];
	int i;

	lua_getglobal(L, "io");
	for (i = 0; i < 3; i++) {
		luaL_Stream *f;

		lua_getfield(L, -1, std[i]);
		f = luaL_testudata(L, -1, LUA_FILEHANDLE);
		if (f && f->closef)
			f->f = files[i];
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
	/* a seed of its own: Lua's default one is the time in seconds and the
	 * state's address, which the image makes the same in every run */
	if (getrandom(seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed)) {
		seed[0] = (uint64_t)time(NULL);
		seed[1] = (uint64_t)getpid();
	}
	lua_getglobal(L, "math");
	lua_getfield(L, -1, "randomseed");
	lua_pushinteger(L, (lua_Integer)seed[0]);
	lua_pushinteger(L, (lua_Integer)seed[1]);
	lua_call(L, 2, 0);
	lua_pop(L, 1);
}

/* The protected body: the state made ready (or mapped), brisk.cli.main
 * run. */
static int pmain(lua_State *L)
{
	int argc = (int)lua_tointeger(L, 1);
	char **argv = (char **)lua_touserdata(L, 2);
	const struct paths *p = lua_touserdata(L, 3);
	int i, cli;

	if (p)
		init_state(L, p);
	else
		after_image(L);
	lua_getglobal(L, "require");
	lua_pushliteral(L, "brisk.cli");
	lua_call(L, 1, 1);
	cli = lua_gettop(L);
	lua_getfield(L, cli, "main");
	lua_createtable(L, argc, 1);
	for (i = 0; i < argc; i++) {
		lua_pushstring(L, argv[i]);
		lua_rawseti(L, -2, i);
	}
	lua_call(L, 1, 1);
	if (!lua_isinteger(L, -1))
		lua_pushinteger(L, lua_isnil(L, -1) || lua_toboolean(L, -1) ? 0 : 1);
	/* and whether the state may be left as it is (brisk.cli.quick_exit) */
	lua_getfield(L, cli, "quick_exit");
	return 2;
}

/* The image's body: the state made ready, the modules loaded, and a check
 * that every module came from a chunk (those are in the image's key) or
 * is Lua's or built in, and that no C library was opened. */
static int pimage(lua_State *L)
{
	static const char *const builtin[] = { "_G", "package", "coroutine", "table", "io", "os",
		"string", "math", "utf8", "debug", "brisk.core", NULL };
	const struct paths *p = lua_touserdata(L, 1);
	int i;

	lua_newtable(L);
	lua_setfield(L, LUA_REGISTRYINDEX, IMAGE_SERVED);
	init_state(L, p);
	for (i = 0; image_modules[i]; i++) {
		lua_getglobal(L, "require");
		lua_pushstring(L, image_modules[i]);
		lua_call(L, 1, 0);
	}
	lua_getfield(L, LUA_REGISTRYINDEX, IMAGE_SERVED);
	lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
	lua_pushnil(L);
	while (lua_next(L, -2)) {
		const char *name = lua_tostring(L, -2);

		lua_pop(L, 1);
		for (i = 0; builtin[i] && strcmp(builtin[i], name) != 0; i++)
			;
		if (builtin[i])
			continue;
		if (lua_getfield(L, -3, name) != LUA_TBOOLEAN)
			return luaL_error(L, "module %s was not loaded from a precompiled chunk", name);
		lua_pop(L, 1);
	}
	lua_getfield(L, LUA_REGISTRYINDEX, "_CLIBS");
	lua_pushnil(L);
	if (lua_istable(L, -2) && lua_next(L, -2))
		return luaL_error(L, "a C library was opened");
	lua_pushnil(L);
	lua_setfield(L, LUA_REGISTRYINDEX, IMAGE_SERVED);
	lua_settop(L, 0);
	return 0;
}

/* brisk --write-image FILE: make the start-up image (the build does). */
static int write_image(const char *file, const struct paths *p)
{
	char err[PATH_MAX + 128];
	lua_State *L;

	if (!p->cdir[0]) {
		fputs("brisk: --write-image: brisk's Lua code was not found\n", stderr);
		return 1;
	}
	if ((L = brisk_image_newstate()) == NULL) {
		fprintf(stderr, "brisk: --write-image: no room at the image's address: %s\n",
			strerror(errno));
		return 1;
	}
	lua_pushcfunction(L, msghandler);
	lua_pushcfunction(L, pimage);
	lua_pushlightuserdata(L, (void *)p);
	if (lua_pcall(L, 1, 0, 1) != LUA_OK) {
		fprintf(stderr, "brisk: --write-image: %s\n", lua_tostring(L, -1));
		return 1;
	}
	if (brisk_image_save(L, file, p->exe, err, sizeof(err)) != 0) {
		fprintf(stderr, "brisk: --write-image: %s\n", err);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static struct paths paths;
	lua_State *L = NULL;
	lua_Integer code = 1;
	int status, quick = 0, mapped = 0;
	const char *host = getenv("BRISK_HOST"), *noimage = getenv("BRISK_NO_IMAGE");
	char image[PATH_MAX];

	/* A daemon named by $BRISK_HOST runs the command (brisk daemon). */
	if (host && *host && (code = brisk_forward(host, argc, argv)) >= 0)
		return (int)code;
	if (argc == 3 && strcmp(argv[1], "--write-image") == 0) {
		find_paths(&paths);
		return write_image(argv[2], &paths);
	}
#ifndef BRISK_NO_IMAGE
	if (!noimage || !*noimage || strcmp(noimage, "0") == 0) {
		find_paths(&paths);
		if (paths.cdir[0] && path_join(image, paths.cdir, "/" IMAGE_FILE))
			mapped = (L = brisk_image_load(image, paths.exe)) != NULL;
	}
#endif
	if (L == NULL) {
		if (!paths.exe[0])
			find_paths(&paths);
		if ((L = luaL_newstate()) == NULL) {
			fputs("brisk: cannot create Lua state: not enough memory\n", stderr);
			return 1;
		}
	}
	lua_pushcfunction(L, msghandler);
	lua_pushcfunction(L, pmain);
	lua_pushinteger(L, argc);
	lua_pushlightuserdata(L, argv);
	lua_pushlightuserdata(L, mapped ? NULL : &paths);
	status = lua_pcall(L, 3, 2, 1);
	if (status == LUA_OK) {
		code = lua_tointeger(L, -2);
		quick = lua_toboolean(L, -1);
	} else {
		fprintf(stderr, "brisk: %s\n", lua_tostring(L, -1));
		code = 1;
	}
	fflush(stdout);
	comp.L = NULL;
	/* a command that ran no code of the user's leaves the state to the
	 * exit: no object is freed one by one, no finalizer runs (theirs only
	 * close what the exit closes) */
	if (!quick)
		lua_close(L);
	if (code < 0 || code > 255)
		code = 1;
	return (int)code;
}
