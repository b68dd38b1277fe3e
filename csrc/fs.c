/***
 * fs.c - the file primitives the store is built on: atomic replacement of a
 * file, advisory locks, directories, randomness.
 *
 * A lock is a userdata (metatable "brisk.lock") holding one O_CLOEXEC fd
 * with flock(LOCK_EX) on it. It is created unlocked before the fd is
 * acquired; `unlock`, `__close` and `__gc` share one function and
 * unlocking twice is harmless.
 *
 * Misuse (wrong argument types, unknown option keys, out-of-range modes)
 * raises; operational failure returns nil, "<op> <path>: <strerror>", errno.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include "brisk.h"

#define BRISK_LOCK_MT "brisk.lock"
#define BRISK_DIR_MT  "brisk.dir"
#define RANDOM_MAX    (1 << 20)        /* random_bytes: at most 1 MiB */

struct brisk_lock {
	int fd;                          /* -1 once unlocked */
};

/* A non-empty path argument without NUL bytes. */
static const char *check_path(lua_State *L, int idx)
{
	size_t n;
	const char *p = luaL_checklstring(L, idx, &n);

	luaL_argcheck(L, n > 0, idx, "empty path");
	luaL_argcheck(L, strlen(p) == n, idx, "path contains a NUL byte");
	return p;
}

static mode_t check_mode(lua_State *L, int idx, lua_Integer def)
{
	lua_Integer m = luaL_optinteger(L, idx, def);

	luaL_argcheck(L, m >= 0 && m <= 07777, idx, "mode must be 0..07777");
	return (mode_t)m;
}

static int write_all(int fd, const char *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* fsync the directory holding `path` (a writable copy is made in `dir`). */
static int fsync_parent(char *dir)
{
	char *slash = strrchr(dir, '/');
	int fd, ret, saved;

	if (!slash)
		strcpy(dir, ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ret = fsync(fd);
	saved = errno;
	close(fd);
	errno = saved;
	return ret;
}

/* Fill the "XXXXXX" that ends the template `tmp` with random hex digits,
 * as mkostemp would, without making the file (the spare is renamed to it). */
static void fill_xs(char *tmp)
{
	static const char hexd[] = "0123456789abcdef";
	unsigned char r[6];
	char *x = tmp + strlen(tmp) - 6;
	int i;

	if (getrandom(r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r))
		for (i = 0; i < 6; i++)
			r[i] = (unsigned char)(rand() ^ (getpid() >> i));
	for (i = 0; i < 6; i++)
		x[i] = hexd[r[i] & 15];
}

/* Take the spare inode (rename it to `tmp`) and open it for writing,
 * emptied when `empty`; -1 when there is none, or it is not a plain file of
 * ours with one name that no one has open (it is then left, or removed when
 * taken).
 *
 * A durable write empties it, not writes over it: new data in blocks
 * allocated anew is ordered before the exchange that names it by ext4's
 * journal (data=ordered, and the truncate to zero makes it allocate at
 * close), as a new file's data is before its rename; data written over
 * blocks the file has would not be, and after a power failure the name
 * could show the spare's old bytes. A write of data that need not survive
 * a power failure (`over`) writes over the old bytes and cuts the rest: freeing the
 * blocks and allocating them again costs ext4 ~150 us a write (measured:
 * ~180 us against ~40 us on this machine's ext4), and after a power
 * failure such a file may show its spare's old bytes (brisk.store asks
 * this for the documents of kinds that describe kernel state, which a
 * power failure takes too, and for its index, which names the boot it was
 * written in; a document names its id, checked against its file name). A reader still holding the spare open
 * from when it was a document (two writes ago) would see it change under
 * it: the write lease, which the kernel grants only to the only opener,
 * says no one does. */
static int take_spare(const char *spare, const char *tmp, int empty)
{
	struct stat st;
	int fd;

	if (lstat(spare, &st) != 0 || !S_ISREG(st.st_mode))
		return -1;
	if (renameat2(AT_FDCWD, spare, AT_FDCWD, tmp, RENAME_NOREPLACE) < 0)
		return -1;
	fd = open(tmp, O_WRONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
	if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 1 &&
	    st.st_uid == geteuid() && fcntl(fd, F_SETLEASE, F_WRLCK) == 0) {
		fcntl(fd, F_SETLEASE, F_UNLCK);
		if (!empty || ftruncate(fd, 0) == 0)
			return fd;
	}
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return -1;
}

/* Put `tmp` (written) in place of `path`. With a spare, the two are
 * exchanged and the old inode, now named `tmp`, becomes the spare (or goes
 * when there is one already); without, or where the file system cannot
 * exchange, a plain rename. */
static int put_in_place(const char *tmp, const char *path, const char *spare)
{
	struct stat st;

	/* only a plain file is exchanged (an exchange would take a directory
	 * or a symlink aside where a rename fails or replaces it) */
	if (spare && lstat(path, &st) == 0 && S_ISREG(st.st_mode)) {
		if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_EXCHANGE) == 0) {
			if (renameat2(AT_FDCWD, tmp, AT_FDCWD, spare, RENAME_NOREPLACE) < 0)
				unlink(tmp);
			return 0;
		}
		/* (a failed exchange changed nothing: whatever the reason, a
		 * rename does what it can) */
	}
	return rename(tmp, path);
}

/***
 * Replace a file atomically: write a temporary file in the same directory
 * (O_CLOEXEC), fsync it, rename it over `path`, fsync the directory. Readers
 * see the old contents or the new, never a mix; no temporary file is left
 * behind on failure.
 *
 * With `spare` (a path in the same directory, e.g. "<dir>/.spare") the
 * inode a write replaces is kept under that name, and the next write takes
 * it as its temporary file instead of making one: a store that
 * rewrites its documents then neither allocates nor frees an inode per
 * write. (ext4 skips the inodes freed in the last minute when it looks for
 * a free one, so a burst of replacements makes every new file slower to
 * create: ~1 ms more per write after a thousand.) The exchange is atomic,
 * as the rename is; at most one spare is kept, and one that is not a plain
 * file of the caller's with a single name, or that anyone has open, is
 * never written.
 * @function file_write_atomic
 * @tparam string path
 * @tparam string data
 * @tparam[opt=0600] integer mode permission bits of the new file (set with
 *   fchmod, so the umask does not apply)
 * @tparam[opt=true] boolean sync false: skip both fsyncs (still atomic, not
 *   yet durable; a later `syncfs` makes a whole batch durable at once)
 * @tparam[opt] string spare where to keep the replaced inode for the next write
 * @tparam[opt=false] boolean over with sync false and a spare: write over
 *   the spare's bytes instead of emptying it first (~150 us less a write on
 *   ext4; after a power failure the file may show some of the bytes the
 *   spare had, so only for data that need not survive one)
 * @return true
 * @return[2] nil, "write <path>: <strerror>", errno (ENOENT when the
 *   directory is missing, EISDIR when path is a directory, ...)
 */
static int l_file_write_atomic(lua_State *L)
{
	size_t plen, dlen;
	const char *path = check_path(L, 1);
	const char *data = luaL_checklstring(L, 2, &dlen);
	mode_t mode = check_mode(L, 3, 0600);
	int sync = lua_isnoneornil(L, 4) ? 1 : (luaL_checktype(L, 4, LUA_TBOOLEAN), lua_toboolean(L, 4));
	const char *spare = lua_isnoneornil(L, 5) ? NULL : check_path(L, 5);
	int over = lua_isnoneornil(L, 6) ? 0 : (luaL_checktype(L, 6, LUA_TBOOLEAN), lua_toboolean(L, 6));
	const char *base, *slash;
	char *tmp, *dir;
	int fd, err;

	plen = strlen(path);
	/* Scratch buffers are userdata, so a Lua error cannot leak them. */
	tmp = lua_newuserdatauv(L, plen + 16, 0);
	dir = lua_newuserdatauv(L, plen + 2, 0);
	slash = strrchr(path, '/');
	base = slash ? slash + 1 : path;
	luaL_argcheck(L, *base != '\0', 1, "path names a directory");
	luaL_argcheck(L, !spare || strcmp(spare, path) != 0, 5, "the spare must not be the file");
	/* "<dir>/.<base>.XXXXXX": hidden, so listings skip it */
	snprintf(tmp, plen + 16, "%.*s.%s.XXXXXX", (int)(base - path), path, base);
	fd = -1;
	if (spare) {
		fill_xs(tmp);
		over = over && !sync;
		fd = take_spare(spare, tmp, !over);
		if (fd < 0)
			memcpy(tmp + strlen(tmp) - 6, "XXXXXX", 6);     /* mkostemp's template again */
	}
	if (fd < 0) {
		over = 0;
		fd = mkostemp(tmp, O_CLOEXEC);
	}
	if (fd < 0)
		return brisk_fail(L, "write", path, errno);
	if (fchmod(fd, mode) < 0 || write_all(fd, data, dlen) < 0 ||
	    (over && ftruncate(fd, (off_t)dlen) < 0) || (sync && fsync(fd) < 0)) {
		err = errno;
		close(fd);
		unlink(tmp);
		return brisk_fail(L, "write", path, err);
	}
	if (close(fd) < 0 || put_in_place(tmp, path, spare) < 0) {
		err = errno;
		unlink(tmp);
		return brisk_fail(L, "write", path, err);
	}
	memcpy(dir, path, plen + 1);
	if (sync && fsync_parent(dir) < 0)
		return brisk_fail(L, "sync directory of", path, errno);
	lua_pushboolean(L, 1);
	return 1;
}

/* --- locks --- */

static int lock_release(struct brisk_lock *k)
{
	int ret = 0;

	if (k->fd >= 0) {
		ret = flock(k->fd, LOCK_UN);
		close(k->fd);
		k->fd = -1;
	}
	return ret;
}

/***
 * Take an exclusive advisory lock (flock) on a file, created 0600 when
 * absent. The lock is held until `lock:unlock()`, the end of a `<close>`
 * scope, or garbage collection. The fd is O_CLOEXEC: programs started
 * while it is held do not inherit it.
 * @function lock
 * @tparam string path
 * @tparam[opt] table opts `nonblock` (boolean): fail at once instead of
 *   waiting when another holder has it
 * @return lock (userdata "brisk.lock")
 * @return[2] nil, "lock <path>: <strerror>", errno (EWOULDBLOCK when held
 *   and nonblock, ENOENT when the directory is missing, ...)
 */
static int l_lock(lua_State *L)
{
	static const char *const keys[] = { "nonblock", NULL };
	const char *path = check_path(L, 1);
	struct brisk_lock *k;
	int nonblock = 0, err;

	if (!lua_isnoneornil(L, 2)) {
		luaL_checktype(L, 2, LUA_TTABLE);
		brisk_checkkeys(L, 2, "lock options", keys);
		nonblock = brisk_optboolean(L, 2, "nonblock", 0);
	}
	k = lua_newuserdatauv(L, sizeof(*k), 0);
	k->fd = -1;
	luaL_setmetatable(L, BRISK_LOCK_MT);

	k->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
	if (k->fd < 0)
		return brisk_fail(L, "lock", path, errno);
	while (flock(k->fd, LOCK_EX | (nonblock ? LOCK_NB : 0)) < 0) {
		if (errno == EINTR)
			continue;
		err = errno;
		lock_release(k);
		return brisk_fail(L, "lock", path, err);
	}
	return 1;
}

/***
 * Release the lock; unlocking twice is harmless. Also `__close` and `__gc`.
 * @function lock:unlock
 * @return true
 */
static int l_unlock(lua_State *L)
{
	struct brisk_lock *k = luaL_checkudata(L, 1, BRISK_LOCK_MT);

	lock_release(k);
	lua_pushboolean(L, 1);
	return 1;
}

/***
 * Whether the lock is still held.
 * @function lock:held
 * @return boolean
 */
static int l_held(lua_State *L)
{
	struct brisk_lock *k = luaL_checkudata(L, 1, BRISK_LOCK_MT);

	lua_pushboolean(L, k->fd >= 0);
	return 1;
}

static int l_lock_tostring(lua_State *L)
{
	struct brisk_lock *k = luaL_checkudata(L, 1, BRISK_LOCK_MT);

	if (k->fd >= 0)
		lua_pushfstring(L, "brisk.lock (%p)", (void *)k);
	else
		lua_pushliteral(L, "brisk.lock (unlocked)");
	return 1;
}

/* --- directories --- */

/***
 * Create a directory and its missing parents, like `mkdir -p`. Existing
 * directories are left as they are.
 * @function mkdir_p
 * @tparam string path
 * @tparam[opt=0700] integer mode for the directories created (the umask
 *   applies, as with mkdir(2))
 * @return true
 * @return[2] nil, "mkdir <dir>: <strerror>", errno (ENOTDIR or EEXIST when a
 *   component is not a directory, EACCES, ...)
 */
static int l_mkdir_p(lua_State *L)
{
	const char *path = check_path(L, 1);
	mode_t mode = check_mode(L, 2, 0700);
	size_t n = strlen(path);
	char *buf = lua_newuserdatauv(L, n + 1, 0);
	struct stat st;
	char *p;

	/* the common case, a directory that is there: one stat, no walk */
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
		lua_pushboolean(L, 1);
		return 1;
	}
	memcpy(buf, path, n + 1);
	for (p = buf + 1; ; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		if (p[-1] != '/') {     /* skip "//" and a trailing '/' */
			char c = *p;
			*p = '\0';
			if (mkdir(buf, mode) < 0) {
				int err = errno;
				if (err != EEXIST)
					return brisk_fail(L, "mkdir", buf, err);
				if (stat(buf, &st) < 0)
					return brisk_fail(L, "mkdir", buf, errno);
				if (!S_ISDIR(st.st_mode))
					return brisk_fail(L, "mkdir", buf, ENOTDIR);
			}
			*p = c;
		}
		if (*p == '\0')
			break;
	}
	lua_pushboolean(L, 1);
	return 1;
}

static int l_dir_gc(lua_State *L)
{
	DIR **d = luaL_checkudata(L, 1, BRISK_DIR_MT);

	if (*d) {
		closedir(*d);
		*d = NULL;
	}
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/***
 * The names in a directory, without "." and "..", sorted bytewise.
 * @function listdir
 * @tparam string path
 * @return array of names
 * @return[2] nil, "listdir <path>: <strerror>", errno (ENOENT, ENOTDIR, ...)
 */
static int l_listdir(lua_State *L)
{
	const char *path = check_path(L, 1);
	const char **names;
	struct dirent *e;
	DIR **d;
	int n = 0, i, err, t;

	/* The DIR lives in a userdata so an out-of-memory error cannot leak it. */
	d = lua_newuserdatauv(L, sizeof(*d), 0);
	*d = NULL;
	luaL_setmetatable(L, BRISK_DIR_MT);
	*d = opendir(path);
	if (!*d)
		return brisk_fail(L, "listdir", path, errno);
	lua_newtable(L);
	t = lua_gettop(L);
	for (;;) {
		errno = 0;
		e = readdir(*d);
		if (!e)
			break;
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		lua_pushstring(L, e->d_name);
		lua_rawseti(L, t, ++n);
	}
	err = errno;
	closedir(*d);
	*d = NULL;
	if (err)
		return brisk_fail(L, "listdir", path, err);

	/* Sort pointers to the strings (anchored by table t), then build the
	 * result in a new table so none of them is unreferenced meanwhile. */
	names = lua_newuserdatauv(L, (n ? n : 1) * sizeof(*names), 0);
	for (i = 0; i < n; i++) {
		lua_rawgeti(L, t, i + 1);
		names[i] = lua_tostring(L, -1);
		lua_pop(L, 1);
	}
	qsort(names, n, sizeof(*names), cmp_str);
	lua_createtable(L, n, 0);
	for (i = 0; i < n; i++) {
		lua_pushstring(L, names[i]);
		lua_rawseti(L, -2, i + 1);
	}
	return 1;
}

/***
 * Remove a file (not a directory).
 * @function unlink
 * @tparam string path
 * @return true
 * @return[2] nil, "unlink <path>: <strerror>", errno (ENOENT, EISDIR, ...)
 */
static int l_unlink(lua_State *L)
{
	const char *path = check_path(L, 1);

	if (unlink(path) < 0)
		return brisk_fail(L, "unlink", path, errno);
	lua_pushboolean(L, 1);
	return 1;
}

/***
 * The calling process's working directory (getcwd(3)).
 * @function getcwd
 * @return string, an absolute path
 * @return[2] nil, "getcwd: <strerror>", errno
 */
static int l_getcwd(lua_State *L)
{
	char buf[PATH_MAX];

	if (getcwd(buf, sizeof(buf)) == NULL)
		return brisk_fail(L, "getcwd", NULL, errno);
	lua_pushstring(L, buf);
	return 1;
}

/* The descriptor of a to-be-closed slot (file_read's): closed when the
 * function returns or raises (out of memory while the buffer grows). */
static int fdguard_close(lua_State *L)
{
	int *fd = lua_touserdata(L, 1);

	if (fd && *fd >= 0) {
		close(*fd);
		*fd = -1;
	}
	return 0;
}

/***
 * A whole file's bytes, read in one go: its size from fstat, the buffer
 * made one byte larger, so that the read that fills less of it is the end
 * (files of /proc say size 0: read in pages until a read returns 0, as
 * when a file grew meanwhile). What io.open and read("a") do with a
 * growing buffer and two more system calls; the store reads its index
 * and documents with it.
 * @function file_read
 * @tparam string path
 * @return string
 * @return[2] nil, "open <path>: <strerror>" or "read <path>: <strerror>", errno
 */
static int l_file_read(lua_State *L)
{
	const char *path = check_path(L, 1);
	int *fd = lua_newuserdatauv(L, sizeof(int), 0);
	struct stat st;
	luaL_Buffer b;
	size_t want, got = 0;
	int sized;
	ssize_t r;
	char *p;

	*fd = -1;
	if (luaL_newmetatable(L, "brisk.fdguard")) {
		lua_pushcfunction(L, fdguard_close);
		lua_setfield(L, -2, "__close");
	}
	lua_setmetatable(L, -2);
	lua_toclose(L, -1);
	*fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (*fd < 0)
		return brisk_fail(L, "open", path, errno);
	if (fstat(*fd, &st) < 0)
		return brisk_fail(L, "read", path, errno);
	sized = S_ISREG(st.st_mode) && st.st_size > 0;
	want = sized ? (size_t)st.st_size + 1 : 4096;
	luaL_buffinit(L, &b);
	for (;;) {
		p = luaL_prepbuffsize(&b, want);
		r = read(*fd, p, want);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return brisk_fail(L, "read", path, errno);
		}
		if (r == 0)
			break;
		luaL_addsize(&b, (size_t)r);
		got += (size_t)r;
		/* short of the extra byte of a file whose size said so: its end */
		if (sized && (size_t)r < want && got >= (size_t)st.st_size)
			break;
		want = got < 4096 ? 4096 : got;
	}
	luaL_pushresult(&b);
	return 1;
}

/***
 * A file's last modification time (lstat), in seconds since the epoch.
 * @function file_mtime
 * @tparam string path
 * @return number (fractional: nanoseconds kept)
 * @return[2] nil, "stat <path>: <strerror>", errno
 */
static int l_file_mtime(lua_State *L)
{
	const char *path = check_path(L, 1);
	struct stat st;

	if (lstat(path, &st) < 0)
		return brisk_fail(L, "stat", path, errno);
	lua_pushnumber(L, (lua_Number)st.st_mtim.tv_sec + (lua_Number)st.st_mtim.tv_nsec / 1e9);
	return 1;
}

/***
 * The absolute path of a file with every symlink, "." and ".." resolved
 * (realpath(3)): one name per file.
 * @function realpath
 * @tparam string path
 * @return string
 * @return[2] nil, "realpath <path>: <strerror>", errno (ENOENT, ...)
 */
static int l_realpath(lua_State *L)
{
	const char *path = check_path(L, 1);
	char buf[PATH_MAX];

	if (realpath(path, buf) == NULL)
		return brisk_fail(L, "realpath", path, errno);
	lua_pushstring(L, buf);
	return 1;
}

/***
 * Random bytes from the kernel (getrandom(2), blocking until the pool is
 * initialised).
 * @function random_bytes
 * @tparam integer n 0..1048576
 * @return string of n bytes
 * @return[2] nil, "getrandom: <strerror>", errno
 */
static int l_random_bytes(lua_State *L)
{
	lua_Integer n = luaL_checkinteger(L, 1);
	luaL_Buffer b;
	char *p;
	size_t got = 0;
	ssize_t r;

	luaL_argcheck(L, n >= 0 && n <= RANDOM_MAX, 1, "byte count must be 0..1048576");
	p = luaL_buffinitsize(L, &b, (size_t)n);
	while (got < (size_t)n) {
		r = getrandom(p + got, (size_t)n - got, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return brisk_fail(L, "getrandom", NULL, errno);
		}
		got += (size_t)r;
	}
	luaL_pushresultsize(&b, (size_t)n);
	return 1;
}

/***
 * Flush the whole filesystem holding `path` to disk (syncfs(2)): one
 * journal commit for everything written since, instead of one per file.
 * @function syncfs
 * @tparam string path a file or directory on that filesystem
 * @return true
 * @return[2] nil, "syncfs <path>: <strerror>", errno
 */
static int l_syncfs(lua_State *L)
{
	const char *path = check_path(L, 1);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int err;

	if (fd < 0)
		return brisk_fail(L, "syncfs", path, errno);
	if (syncfs(fd) < 0) {
		err = errno;
		close(fd);
		return brisk_fail(L, "syncfs", path, err);
	}
	close(fd);
	lua_pushboolean(L, 1);
	return 1;
}

static const luaL_Reg fs_mod[] = {
	{ "file_write_atomic", l_file_write_atomic },
	{ "syncfs", l_syncfs },
	{ "lock", l_lock },
	{ "mkdir_p", l_mkdir_p },
	{ "listdir", l_listdir },
	{ "unlink", l_unlink },
	{ "random_bytes", l_random_bytes },
	{ "getcwd", l_getcwd },
	{ "realpath", l_realpath },
	{ "file_mtime", l_file_mtime },
	{ "file_read", l_file_read },
	{ NULL, NULL }
};

static const luaL_Reg lock_meth[] = {
	{ "unlock", l_unlock },
	{ "held", l_held },
	{ NULL, NULL }
};

void brisk_open_fs(lua_State *L, int mod, int meth)
{
	(void)meth;
	lua_pushvalue(L, mod);
	luaL_setfuncs(L, fs_mod, 0);
	/* flock reports EWOULDBLOCK: name it next to EAGAIN */
	if (lua_getfield(L, -1, "errno") == LUA_TTABLE) {
		lua_pushinteger(L, EWOULDBLOCK);
		lua_setfield(L, -2, "EWOULDBLOCK");
	}
	lua_pop(L, 2);

	luaL_newmetatable(L, BRISK_LOCK_MT);
	lua_newtable(L);
	luaL_setfuncs(L, lock_meth, 0);
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, l_unlock);
	lua_setfield(L, -2, "__gc");
	lua_pushcfunction(L, l_unlock);
	lua_setfield(L, -2, "__close");
	lua_pushcfunction(L, l_lock_tostring);
	lua_setfield(L, -2, "__tostring");
	lua_pushliteral(L, "locked");
	lua_setfield(L, -2, "__metatable");
	lua_pop(L, 1);

	luaL_newmetatable(L, BRISK_DIR_MT);
	lua_pushcfunction(L, l_dir_gc);
	lua_setfield(L, -2, "__gc");
	lua_pop(L, 1);
}
