/***
 * image.c - the brisk program's start-up image: its Lua state with brisk's
 * modules loaded, made by the build and mapped back by every run.
 *
 * Loading brisk's modules is most of what a brisk process does before its
 * command: undumping ~200 KB of precompiled chunks (every constant string
 * interned), running their top levels, collecting the garbage that makes,
 * and the page faults of a fresh heap: ~1.3 ms of a ~7 ms `endpoint
 * create`. The image keeps that work done, as Java's class data sharing
 * and Emacs's dump file do: `brisk --write-image FILE` (run by `make`)
 * makes the state with every allocation of Lua's in one region at a fixed
 * address, loads the modules (main.c's list), collects the garbage and
 * writes the region to FILE; a run maps FILE at that address (private,
 * copy on write: a page is read from the page cache when first touched and
 * copied only when written) and goes on from there.
 *
 * This works because everything the state points to is in the region or
 * at an address that is the same in every run of this executable: it is
 * linked without PIE, Lua is linked in, and so are brisk.core and the
 * functions the state holds (no module is loaded with dlopen before the
 * image is written: main.c refuses). What is per process is set again
 * after mapping (main.c): the FILE pointers of io.stdin/stdout/stderr and
 * math.random's seed.
 *
 * An image is used only when it describes this run exactly; its key says
 * what it depends on and is checked first (one pread, a stat per file):
 *   V  the image layout, Lua's version, pointer size
 *   X  the executable (path, device, inode, size, mtime)
 *   E  LUA_PATH_5_4, LUA_PATH, LUA_CPATH_5_4, LUA_CPATH (package.path/cpath)
 *   F  every chunk and source the module searcher looked at (or its absence)
 * Anything else (no file, another build, an edited source, the address
 * taken, a short file) and the program starts the usual way. The build
 * replaces an image by rename, so a running process keeps the one it
 * mapped (a file cut short under a mapping is SIGBUS on its lost pages).
 *
 * The allocator: blocks of 16-byte classes up to 1 KiB and of powers of
 * two up to 64 KiB come from the region (free lists by class, the sizes
 * Lua passes back on free and realloc say the class, so blocks carry no
 * header); larger ones from malloc (while the image is being made, from
 * the region too, and an image that would hold a block from malloc is not
 * written). A loaded image has IMG_GROW of address space after it for new
 * blocks, then malloc; its free lists are dropped (below) and a large
 * block of it that is freed stays unused. A process that runs long calls
 * brisk_image_detach: the pages copied out of the file, malloc from then on.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lua.h>

#include "image.h"

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

#define IMG_BASE   ((uintptr_t)0x2b0000000000ULL)   /* far from the heap, libraries and stacks */
#define IMG_SPAN   ((size_t)64 << 20)                /* the region's addresses */
#define IMG_GROW   ((size_t)8 << 20)                 /* mapped after a loaded image for new blocks */
#define IMG_META   16384                             /* the header and key, then the heap */
#define IMG_MAGIC  "BRISKIM1"
#define IMG_PAGE   4096
#define NSMALL     64                                /* 16, 32, ... 1024 */
#define NMID       6                                 /* 2 KiB ... 64 KiB */
#define MAX_NOTES  256
#define IMG_STRT   4096                              /* string table buckets: see brisk_image_save */

/* Lua's own (lstring.c): not in its API, but the executable links Lua in,
 * so this is the very Lua the image was made with. */
void luaS_resize(lua_State *L, int newsize);

struct img_head {
	char magic[8];
	uint64_t base, span;
	uint64_t size;                    /* bytes in the file, whole pages */
	uint64_t bump;                    /* the next unused byte (offset) */
	void *free_list[NSMALL + NMID];
	lua_State *L;
	uint32_t key_len;
	char key[];                       /* up to IMG_META */
};

#define KEY_MAX (IMG_META - offsetof(struct img_head, key))

static struct img_head *H;            /* the region's header, NULL: none */
static uint64_t region_end;           /* offset where the region's mapping ends */
static int building, build_lost;      /* build_lost: a block of the build went to malloc */
static int detached;
static char *notes[MAX_NOTES];
static int nnotes, notes_lost;

/* --- the allocator --- */

static int in_region(const void *p)
{
	return H && (uintptr_t)p >= IMG_BASE && (uintptr_t)p < IMG_BASE + IMG_SPAN;
}

/* The class of an n-byte block and its size, or -1 (large). */
static int class_of(size_t n, size_t *size)
{
	size_t s;
	int c;

	if (n <= 1024) {
		c = n ? (int)((n + 15) >> 4) : 1;
		*size = (size_t)c << 4;
		return c - 1;
	}
	for (s = 2048, c = NSMALL; s < n; s <<= 1)
		c++;
	if (c >= NSMALL + NMID)
		return -1;
	*size = s;
	return c;
}

static void *region_take(size_t n)
{
	uint64_t at = H->bump;

	if (n > region_end - at)
		return NULL;
	H->bump = at + n;
	return (char *)IMG_BASE + at;
}

static void *img_new(size_t n)
{
	size_t size;
	int c = class_of(n, &size);
	void *p;

	if (c < 0 && !building)
		return malloc(n);
	if (c >= 0 && (p = H->free_list[c]) != NULL) {
		H->free_list[c] = *(void **)p;
		return p;
	}
	if ((p = region_take(c < 0 ? (n + IMG_PAGE - 1) & ~(size_t)(IMG_PAGE - 1) : size)) != NULL)
		return p;
	build_lost |= building;               /* an image holding it could not be written */
	return malloc(n);
}

static void img_free(void *p, size_t osize)
{
	size_t size;
	int c;

	if (!in_region(p)) {
		free(p);
		return;
	}
	if ((c = class_of(osize, &size)) < 0)
		return;
	*(void **)p = H->free_list[c];
	H->free_list[c] = p;
}

/* lua_Alloc. A block is at least as large as its class says: a shrink
 * keeps the block, and its size class can only be smaller than the one
 * it was made for. */
static void *img_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	size_t size;
	void *n;

	(void)ud;
	if (nsize == 0) {
		if (ptr)
			img_free(ptr, osize);
		return NULL;
	}
	if (ptr == NULL)
		return img_new(nsize);
	if (!in_region(ptr))
		return realloc(ptr, nsize);
	if (nsize <= osize || (class_of(osize, &size) >= 0 && nsize <= size))
		return ptr;
	if ((n = img_new(nsize)) == NULL)
		return NULL;
	memcpy(n, ptr, osize);
	img_free(ptr, osize);
	return n;
}

/* lua_Alloc once the state is detached (brisk_image_detach): new blocks
 * from malloc; a block of the region that is freed is left (the region is
 * as large as the image and IMG_GROW at most), one that grows is moved. */
static void *detached_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	void *n;

	(void)ud;
	if (!in_region(ptr)) {
		if (nsize == 0) {
			free(ptr);
			return NULL;
		}
		return realloc(ptr, nsize);
	}
	if (nsize == 0)
		return NULL;
	if (nsize <= osize)
		return ptr;
	if ((n = malloc(nsize)) != NULL)
		memcpy(n, ptr, osize);
	return n;
}

/* lauxlib's panic and warning functions are its own statics: these do
 * the same for a state made here */
static int img_panic(lua_State *L)
{
	const char *msg = lua_tostring(L, -1);

	fprintf(stderr, "PANIC: unprotected error in call to Lua API (%s)\n",
		msg ? msg : "error object is not a string");
	return 0;
}

static void warn_on(void *ud, const char *msg, int tocont);

static void warn_off(void *ud, const char *msg, int tocont)
{
	if (!tocont && msg[0] == '@' && strcmp(msg, "@on") == 0)
		lua_setwarnf((lua_State *)ud, warn_on, ud);
}

static void warn_cont(void *ud, const char *msg, int tocont)
{
	fputs(msg, stderr);
	if (!tocont) {
		fputc('\n', stderr);
		lua_setwarnf((lua_State *)ud, warn_on, ud);
	} else {
		lua_setwarnf((lua_State *)ud, warn_cont, ud);
	}
}

static void warn_on(void *ud, const char *msg, int tocont)
{
	if (!tocont && msg[0] == '@') {
		if (strcmp(msg, "@off") == 0)
			lua_setwarnf((lua_State *)ud, warn_off, ud);
		return;
	}
	fputs("Lua warning: ", stderr);
	warn_cont(ud, msg, tocont);
}

/* --- the key --- */

struct key {
	char *p;
	size_t len, cap;
	int bad;
};

static void kput(struct key *k, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (k->bad)
		return;
	va_start(ap, fmt);
	n = vsnprintf(k->p + k->len, k->cap - k->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= k->cap - k->len)
		k->bad = 1;
	else
		k->len += (size_t)n;
}

/* "<tag> <dev> <ino> <size> <mtime> <path>" for `st` (NULL: "<tag> - <path>",
 * no such file). */
static void put_stat(struct key *k, char tag, const struct stat *st, const char *path)
{
	if (strchr(path, '\n'))
		k->bad = 1;
	else if (!st)
		kput(k, "%c - %s\n", tag, path);
	else
		kput(k, "%c %lu %lu %lld %lld.%09ld %s\n", tag, (unsigned long)st->st_dev,
		     (unsigned long)st->st_ino, (long long)st->st_size, (long long)st->st_mtim.tv_sec,
		     st->st_mtim.tv_nsec, path);
}

static void stat_line(struct key *k, char tag, const char *path)
{
	struct stat st;

	put_stat(k, tag, stat(path, &st) == 0 ? &st : NULL, path);
}

static const char *const env_names[] = { "LUA_PATH_5_4", "LUA_PATH", "LUA_CPATH_5_4", "LUA_CPATH", NULL };

static void env_line(struct key *k, const char *name)
{
	const char *v = getenv(name);

	if (v && strchr(v, '\n'))
		k->bad = 1;
	else if (v)
		kput(k, "E %s=%s\n", name, v);
	else
		kput(k, "E %s\n", name);
}

static void version_line(struct key *k)
{
	kput(k, "V brisk-image 1 lua %d ptr %zu base %#llx\n", LUA_VERSION_NUM, sizeof(void *),
	     (unsigned long long)IMG_BASE);
}

/* The executable: its path `exe` (what the program's paths derive from)
 * and the identity of the very file running (stat of /proc/self/exe). */
static void exe_line(struct key *k, const char *exe)
{
	struct stat st;

	if (stat("/proc/self/exe", &st) != 0)
		k->bad = 1;
	else
		put_stat(k, 'X', &st, exe);
}

/* The key of this run for the lines of `stored` (the same lines, with
 * what is true now). */
static void key_again(struct key *k, const char *stored, size_t len, const char *exe)
{
	const char *line = stored, *end = stored + len;

	while (line < end && !k->bad) {
		const char *nl = memchr(line, '\n', (size_t)(end - line));
		char buf[PATH_MAX + 64];
		size_t n;

		if (!nl || (n = (size_t)(nl - line)) >= sizeof(buf)) {
			k->bad = 1;
			return;
		}
		memcpy(buf, line, n);
		buf[n] = '\0';
		if (buf[0] == 'V') {
			version_line(k);
		} else if (buf[0] == 'X') {
			exe_line(k, exe);
		} else if (buf[0] == 'E' && buf[1] == ' ') {
			buf[strcspn(buf, "=")] = '\0';
			env_line(k, buf + 2);
		} else if (buf[0] == 'F' && buf[1] == ' ') {
			char *path = buf + 2;
			int i;

			if (path[0] == '-' && path[1] == ' ') {
				path += 2;
			} else {
				for (i = 0; i < 4 && path; i++)
					if ((path = strchr(path, ' ')) != NULL)
						path++;
			}
			if (!path) {
				k->bad = 1;
				return;
			}
			stat_line(k, 'F', path);
		} else {
			k->bad = 1;
		}
		line = nl + 1;
	}
}

/* --- making one --- */

lua_State *brisk_image_newstate(void)
{
	void *p = mmap((void *)IMG_BASE, IMG_SPAN, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
	lua_State *L;

	if (p == MAP_FAILED)
		return NULL;
	if (p != (void *)IMG_BASE) {        /* a kernel that knows no NOREPLACE */
		munmap(p, IMG_SPAN);
		errno = EEXIST;
		return NULL;
	}
	H = p;
	region_end = IMG_SPAN;
	memcpy(H->magic, IMG_MAGIC, 8);
	H->base = IMG_BASE;
	H->span = IMG_SPAN;
	H->bump = IMG_META;
	building = 1;
	L = lua_newstate(img_alloc, NULL);
	if (L) {
		lua_atpanic(L, img_panic);
		lua_setwarnf(L, warn_off, L);
	}
	return L;
}

int brisk_image_building(void)
{
	return building;
}

void brisk_image_note(const char *path)
{
	int i;

	if (!building)
		return;
	for (i = 0; i < nnotes; i++)
		if (strcmp(notes[i], path) == 0)
			return;
	if (nnotes == MAX_NOTES || (notes[nnotes] = strdup(path)) == NULL)
		notes_lost = 1;
	else
		nnotes++;
}

int brisk_image_save(lua_State *L, const char *path, const char *exe, char *err, size_t errlen)
{
	struct key k = { H->key, 0, KEY_MAX, 0 };
	char tmp[PATH_MAX];
	size_t off;
	int fd, i;

	lua_settop(L, 0);
	lua_gc(L, LUA_GCCOLLECT);
	lua_gc(L, LUA_GCCOLLECT);
	/* Room in the string table for what a run adds: when it fills up,
	 * Lua rehashes every string into a table twice the size, writing to
	 * each, and every page of the image that holds one is copied. The
	 * modules make ~1500 strings (2048 buckets); 4096 leaves room for
	 * ~2500 more and is not so large that a collection shrinks it (Lua
	 * halves a table less than a quarter full). */
	luaS_resize(L, IMG_STRT);
	version_line(&k);
	exe_line(&k, exe);
	for (i = 0; env_names[i]; i++)
		env_line(&k, env_names[i]);
	for (i = 0; i < nnotes; i++)
		stat_line(&k, 'F', notes[i]);
	if (k.bad || notes_lost) {
		snprintf(err, errlen, "the image's key does not fit (%d files)", nnotes);
		return -1;
	}
	if (build_lost) {
		snprintf(err, errlen, "the state outgrew the image's %zu MiB", IMG_SPAN >> 20);
		return -1;
	}
	H->key_len = (uint32_t)k.len;
	H->L = L;
	H->size = (H->bump + IMG_PAGE - 1) & ~(uint64_t)(IMG_PAGE - 1);
	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof(tmp)) {
		snprintf(err, errlen, "%s: name too long", path);
		return -1;
	}
	/* read-only: a process that has it mapped must not see it change
	 * (replace it by rename, as this does) */
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0444)) < 0) {
		snprintf(err, errlen, "open %s: %s", tmp, strerror(errno));
		return -1;
	}
	for (off = 0; off < H->size;) {
		ssize_t w = write(fd, (char *)IMG_BASE + off, H->size - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			snprintf(err, errlen, "write %s: %s", tmp, w < 0 ? strerror(errno) : "short write");
			close(fd);
			unlink(tmp);
			return -1;
		}
		off += (size_t)w;
	}
	if (fsync(fd) != 0 || close(fd) != 0 || rename(tmp, path) != 0) {
		snprintf(err, errlen, "write %s: %s", path, strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
}

/* --- using one --- */

lua_State *brisk_image_load(const char *path, const char *exe)
{
	static char meta[IMG_META];
	const struct img_head *h = (const struct img_head *)meta;
	char again[KEY_MAX];
	struct key k = { again, 0, sizeof(again), 0 };
	struct stat st;
	void *p, *q;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return NULL;
	if (pread(fd, meta, IMG_META, 0) != IMG_META || fstat(fd, &st) != 0 ||
	    memcmp(h->magic, IMG_MAGIC, 8) != 0 || h->base != IMG_BASE || h->span != IMG_SPAN ||
	    h->size != (uint64_t)st.st_size || h->size % IMG_PAGE != 0 || h->size > IMG_SPAN ||
	    h->bump < IMG_META || h->bump > h->size || h->key_len > KEY_MAX ||
	    (uintptr_t)h->L < IMG_BASE + IMG_META || (uintptr_t)h->L >= IMG_BASE + h->bump ||
	    h->size + IMG_GROW > IMG_SPAN)
		goto no;
	key_again(&k, h->key, h->key_len, exe);
	if (k.bad || k.len != h->key_len || memcmp(again, h->key, k.len) != 0)
		goto no;
	p = mmap((void *)IMG_BASE, h->size, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_FIXED_NOREPLACE, fd, 0);
	if (p == MAP_FAILED)
		goto no;
	if (p != (void *)IMG_BASE) {
		munmap(p, h->size);
		goto no;
	}
	q = mmap((char *)IMG_BASE + h->size, IMG_GROW, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
	if (q != (char *)IMG_BASE + h->size) {
		if (q != MAP_FAILED)
			munmap(q, IMG_GROW);
		munmap(p, h->size);
		goto no;
	}
	close(fd);
	H = p;
	region_end = h->size + IMG_GROW;
	building = 0;
	/* the image's free blocks are left unused: they are spread over its
	 * pages, and writing one (a free list is a chain through them) copies
	 * its page */
	memset(H->free_list, 0, sizeof(H->free_list));
	return H->L;
no:
	close(fd);
	return NULL;
}

/* --- long-running processes --- */

void brisk_image_detach(lua_State *L)
{
	void *copy, *p;

	if (!H || building || detached)
		return;
	detached = 1;
	/* the file's pages into memory of the process's own: the file may
	 * then be truncated or written over without this process noticing */
	if ((copy = malloc(H->size)) != NULL) {
		size_t size = H->size;

		memcpy(copy, (void *)IMG_BASE, size);
		p = mmap((void *)IMG_BASE, size, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		if (p == (void *)IMG_BASE)
			memcpy(p, copy, size);
		free(copy);
	}
	lua_setallocf(L, detached_alloc, NULL);
}
