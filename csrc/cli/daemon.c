/***
 * daemon.c - the brisk program's client and server ends of `brisk daemon`.
 *
 * A container runtime starts one brisk process per endpoint; most of that
 * process's time is starting Lua and loading brisk, not the kernel work. A
 * long-running `brisk daemon` has brisk loaded once (and keeps the store's
 * parsed documents between commands, checked by the store's generation);
 * a `brisk` started with BRISK_HOST=PATH hands its command to it before it
 * creates a Lua state, and exits with the command's exit code.
 *
 * The request is one SOCK_SEQPACKET message: a header (magic, version, the
 * identity of the brisk program that sends it, counts), the arguments and
 * a few environment variables as NUL-terminated strings, and five
 * descriptors: the caller's stdin, stdout and stderr, its network
 * namespace and its working directory. The server runs the command in
 * that namespace and directory, with those descriptors as its 0, 1 and 2,
 * then puts its own back and answers with the exit code, or with "run it
 * yourself" (-1) when it will not serve it (the command's stdout and stderr
 * are memory files while it runs, copied to the caller's afterwards as its
 * reader takes them: see "output" below): a caller that could not do
 * what the daemon does (another user, fewer capabilities), one that sees
 * other paths (another mount, pid or user namespace, another root
 * directory: the names under /run/netns and the state directory would
 * differ), another build of brisk, a caller gone before its turn, a
 * command that is not served (see brisk.cli.daemon). What the caller is
 * comes from the kernel (SO_PEERCRED, /proc/<pid>), never from the
 * request. The client runs the command itself then, as it does when
 * nothing listens on PATH, or when what listens is not run by root or by
 * the caller's own user.
 *
 * Mechanism only: which commands are served, and running them, is the Lua
 * handler's (brisk.cli.daemon).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <lua.h>
#include <lauxlib.h>

#include "daemon.h"
#include "image.h"

#define REQ_MAGIC 0x4b535242u   /* "BRSK" */
#define REQ_VERSION 2u
#define REQ_MAX 65536           /* a request larger than this runs locally */
#define REQ_FDS 5               /* stdin, stdout, stderr, netns, cwd */
#define REPLY_LOCAL (-1)
#define MAX_PENDING 64          /* outputs waiting for their readers; then callers run theirs */

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77         /* Linux 6.5; older kernels refuse it */
#endif

struct req_hdr {
	uint32_t magic, version;
	uint64_t exe[4];             /* the sending program (program_id) */
	uint32_t argc, envc;
};

/* The variables a served command sees (all others read as unset): brisk's
 * own, and those the output and the help read. */
static int env_passed(const char *kv)
{
	static const char *const names[] = {
		"NO_COLOR=", "TERM=", "COLUMNS=", "LINES=", "HOME=", "PATH=", NULL
	};
	int i;

	if (!strncmp(kv, "BRISK_", 6))
		return strncmp(kv, "BRISK_HOST=", 11) != 0;
	for (i = 0; names[i]; i++)
		if (!strncmp(kv, names[i], strlen(names[i])))
			return 1;
	return 0;
}

/* The brisk program's identity: its file's device, inode and modification
 * time. A daemon serves only callers of the same build (the command runs
 * the daemon's code: a caller upgraded since would run an older brisk). */
static int program_id(uint64_t id[4])
{
	struct stat st;

	if (stat("/proc/self/exe", &st) < 0)
		return -1;
	id[0] = (uint64_t)st.st_dev;
	id[1] = (uint64_t)st.st_ino;
	id[2] = (uint64_t)st.st_mtim.tv_sec;
	id[3] = (uint64_t)st.st_mtim.tv_nsec;
	return 0;
}

static int unix_addr(const char *path, struct sockaddr_un *sa)
{
	if (!strncmp(path, "unix://", 7))
		path += 7;
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (!*path || strlen(path) >= sizeof(sa->sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(sa->sun_path, path);
	return 0;
}

/* Append a string and its NUL to buf; false when it does not fit. */
static int put_str(char *buf, size_t *len, const char *s)
{
	size_t n = strlen(s) + 1;

	if (*len + n > REQ_MAX)
		return 0;
	memcpy(buf + *len, s, n);
	*len += n;
	return 1;
}

static int send_with_fds(int sock, const void *buf, size_t len, const int *fds, int nfds)
{
	struct iovec iov = { (void *)buf, len };
	union {
		char buf[CMSG_SPACE(sizeof(int) * REQ_FDS)];
		struct cmsghdr align;
	} u;
	struct msghdr msg = { 0 };
	struct cmsghdr *c;

	memset(&u, 0, sizeof(u));
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = u.buf;
	msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
	c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
	memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	return sendmsg(sock, &msg, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -1;
}

static int debug_on(void)
{
	const char *d = getenv("BRISK_DEBUG");

	return d && *d && strcmp(d, "0");
}

/* --- the client ------------------------------------------------------ */

int brisk_forward(const char *host, int argc, char **argv)
{
	extern char **environ;
	static char buf[REQ_MAX];
	struct req_hdr h = { REQ_MAGIC, REQ_VERSION, { 0, 0, 0, 0 }, 0, 0 };
	struct ucred server = { 0, 0, 0 };
	socklen_t slen = sizeof(server);
	struct sockaddr_un sa;
	size_t len = sizeof(h);
	int fds[REQ_FDS] = { 0, 1, 2, -1, -1 };
	int sock = -1, i, code = REPLY_LOCAL;
	int32_t reply;
	ssize_t n;
	char **e;

	if (unix_addr(host, &sa) < 0 || program_id(h.exe) < 0)
		return REPLY_LOCAL;
	for (i = 0; i < argc; i++)
		if (!put_str(buf, &len, argv[i]))
			return REPLY_LOCAL;
	h.argc = (uint32_t)argc;
	for (e = environ; e && *e; e++) {
		if (!env_passed(*e))
			continue;
		if (!put_str(buf, &len, *e))
			return REPLY_LOCAL;
		h.envc++;
	}
	memcpy(buf, &h, sizeof(h));
	fds[3] = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	fds[4] = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fds[3] < 0 || fds[4] < 0 || sock < 0)
		goto out;
	if (connect(sock, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (debug_on())
			fprintf(stderr, "brisk: no daemon at %s (%s): running the command here\n",
				sa.sun_path, strerror(errno));
		goto out;
	}
	/* what listens gets our descriptors and says how we exit: only a
	 * server of root's or of our own user */
	if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &server, &slen) < 0 ||
	    (server.uid != 0 && server.uid != geteuid())) {
		if (debug_on())
			fprintf(stderr, "brisk: %s is served by uid %d, neither root nor us: "
				"running the command here\n", sa.sun_path, (int)server.uid);
		goto out;
	}
	if (send_with_fds(sock, buf, len, fds, REQ_FDS) < 0)
		goto out;
	do
		n = recv(sock, &reply, sizeof(reply), 0);
	while (n < 0 && errno == EINTR);
	if (n == (ssize_t)sizeof(reply)) {
		code = reply < 0 ? REPLY_LOCAL : reply;
		if (code == REPLY_LOCAL && debug_on())
			fprintf(stderr, "brisk: the daemon at %s leaves this command to the caller\n",
				sa.sun_path);
	} else {
		/* The request was taken: whatever the command did stays done,
		 * so running it again here could do it twice. */
		fprintf(stderr, "brisk: the daemon at %s closed the connection before it "
			"answered; the command may have run in part (see 'brisk network check')\n",
			sa.sun_path);
		code = 1;
	}
out:
	if (sock >= 0)
		close(sock);
	if (fds[3] >= 0)
		close(fds[3]);
	if (fds[4] >= 0)
		close(fds[4]);
	return code;
}

/* --- the server ------------------------------------------------------ */

static volatile sig_atomic_t stop_signal;

static void on_stop(int sig)
{
	stop_signal = sig;
}

/* Write a log line to the daemon's own stderr (fd 2 is its own again). */
static void log_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void log_line(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("brisk daemon: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	fflush(stderr);
	va_end(ap);
}

/* What confines a process besides its namespaces: effective capabilities,
 * seccomp mode, no_new_privs (from /proc/<who>/status, read whole: a long
 * Groups: line can push them past any fixed buffer) and its LSM label
 * (/proc/<who>/attr/current; empty where no LSM gives one). */
struct confinement {
	uint64_t caps;
	int seccomp, nnp;
	char label[256];
};

struct served {
	int own[3];     /* the daemon's own 0, 1, 2 */
	int own_net;    /* its own network namespace */
	int own_cwd;    /* its own working directory */
	struct stat ns[3];      /* its mount, pid and user namespaces (NS_NAMES) */
	struct stat root;       /* its root directory */
	struct confinement conf; /* its capabilities, seccomp, no_new_privs, LSM label */
	uint64_t exe[4];        /* its program (program_id) */
	int quiet;
};

static const char *const NS_NAMES[3] = { "mnt", "pid", "user" };
static const char *const NS_OTHER[3] = {
	"another mount namespace", "another pid namespace", "another user namespace"
};

static int read_confinement(const char *who, struct confinement *c)
{
	char path[64], *line = NULL;
	size_t cap = 0;
	unsigned long long v;
	int got = 0, fd;
	ssize_t n;
	FILE *f;

	memset(c, 0, sizeof(*c));
	snprintf(path, sizeof(path), "/proc/%s/status", who);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (getline(&line, &cap, f) > 0) {
		if (sscanf(line, "CapEff:\t%llx", &v) == 1) {
			c->caps = (uint64_t)v;
			got |= 1;
		} else if (sscanf(line, "NoNewPrivs:\t%d", &c->nnp) == 1) {
			got |= 2;
		} else if (sscanf(line, "Seccomp:\t%d", &c->seccomp) == 1) {
			got |= 4;
		}
	}
	free(line);
	fclose(f);
	if (!(got & 1))
		return -1;
	snprintf(path, sizeof(path), "/proc/%s/attr/current", who);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, c->label, sizeof(c->label) - 1);
		close(fd);
		c->label[n > 0 ? n : 0] = '\0';
	}
	return 0;
}

static int same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

/* The daemon's own namespaces, root, capabilities and program. */
static int own_identity(struct served *s)
{
	char path[64];
	int i;

	for (i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "/proc/self/ns/%s", NS_NAMES[i]);
		if (stat(path, &s->ns[i]) < 0)
			return -1;
	}
	if (stat("/", &s->root) < 0 || program_id(s->exe) < 0)
		return -1;
	return read_confinement("self", &s->conf);
}

/* Why the caller (its pid as SO_PEERCRED gives it, and its pidfd, or -1
 * where the kernel has none) is not served, or NULL. Read from
 * /proc/<pid>, not from the request, which the caller writes: the same
 * mount, pid and user namespaces and root directory as the daemon's (so
 * that paths, /run/netns names and pids mean the same), every capability
 * the daemon has, no seccomp filter (its rules cannot be compared), no
 * no_new_privs the daemon lacks, and the daemon's LSM label (a root process
 * that dropped capabilities, or a service kept from netlink by a filter,
 * must not get them back through it). The pidfd, still naming
 * a live process after the reads, proves the pid was not reused
 * meanwhile. */
static const char *peer_refused(const struct served *s, pid_t pid, int pidfd)
{
	char path[64], who[24];
	struct stat st;
	struct confinement c;
	int i;

	if (pid <= 0)
		return "a caller outside the daemon's pid namespace";
	for (i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "/proc/%d/ns/%s", (int)pid, NS_NAMES[i]);
		if (stat(path, &st) < 0)
			return errno == ENOENT ? "the caller is gone" : "cannot read the caller's namespaces";
		if (!same_file(&st, &s->ns[i]))
			return NS_OTHER[i];
	}
	snprintf(path, sizeof(path), "/proc/%d/root", (int)pid);
	if (stat(path, &st) < 0)
		return "cannot read the caller's root directory";
	if (!same_file(&st, &s->root))
		return "another root directory";
	snprintf(who, sizeof(who), "%d", (int)pid);
	if (read_confinement(who, &c) < 0)
		return "cannot read the caller's capabilities";
	if ((s->conf.caps & ~c.caps) != 0)
		return "fewer capabilities than the daemon";
	/* a filter's rules cannot be compared: any filter is refused; and
	 * no_new_privs the daemon does not have */
	if (c.seccomp != 0)
		return "a seccomp filter";
	if (c.nnp && !s->conf.nnp)
		return "no_new_privs";
	if (strcmp(c.label, s->conf.label) != 0)
		return "another security label";
	if (pidfd >= 0 && syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) < 0)
		return "the caller is gone";
	return NULL;
}

static void reply_to(int c, int32_t code)
{
	(void)send(c, &code, sizeof(code), MSG_NOSIGNAL);
}

/* Answer a connection "run it yourself" without serving it. The request
 * is read (and dropped, its descriptors with it) before the answer: a
 * socket closed with a request unread is reset, and the caller would lose
 * the answer. */
static void leave_to_caller(int c, int wait_ms)
{
	struct timeval tv = { wait_ms / 1000, (wait_ms % 1000) * 1000 };
	char drop[64];

	setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	(void)recv(c, drop, sizeof(drop), 0);
	reply_to(c, REPLY_LOCAL);
}

/* Put the daemon's own descriptors, directory and namespace back; 0, or
 * the errno of a directory or namespace that cannot be re-entered. */
static int restore_own(struct served *s)
{
	int i, err = 0;

	fflush(stdout);
	fflush(stderr);
	__fpurge(stdin);
	clearerr(stdin);
	clearerr(stdout);
	clearerr(stderr);
	for (i = 0; i < 3; i++)
		dup2(s->own[i], i);
	if (fchdir(s->own_cwd) < 0)
		err = errno;
	if (setns(s->own_net, CLONE_NEWNET) < 0)
		err = errno;
	return err;
}

static double ms_since(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

/* --- output ---------------------------------------------------------
 *
 * A served command writes its stdout and stderr into memory files
 * (memfd), not into the caller's descriptors: a caller whose output nobody
 * reads (a pipe whose reader stopped, `| less` left open) would otherwise
 * stop the daemon in a write, every other caller and the stop signals with
 * it. Once the command is done, its text goes to the caller's descriptors
 * without blocking, and the exit code after it, so the caller exits with
 * its output delivered. What its reader does not take at once waits in
 * `pending`, which the serving loop polls with the socket, and goes as the
 * reader takes it (stdout and stderr each as theirs does); a caller gone
 * meanwhile drops it; a stop signal answers every waiting caller with its
 * exit code and drops what its reader had not taken. A stdout and stderr
 * that are one file (2>&1) share one memory file, so their lines keep
 * their order. The output comes when the command is done, not as it runs
 * (a served command sees no terminal: no progress bar).
 *
 * Without blocking, through the descriptors the request brought (the
 * caller's own description: its offset, its O_APPEND; its flags are left
 * as they are): a pipe or socket with pwritev2(RWF_NOWAIT); a terminal or a
 * FIFO, which refuse that, with a 20 ms timer that cuts a write short (then
 * the rest waits for room: a reader that takes a little at a time costs
 * the daemon up to 20 ms a time); a regular file with plain writes (a file
 * write waits for no reader, though a stalled network file system would
 * hold the daemon). SIGTTOU is ignored while serving: a daemon started in
 * the background of a terminal with `stty tostop` writes to it as well.
 */

enum { OUT_FILE, OUT_NOWAIT, OUT_TIMED };

struct out {
	int mem;        /* the memory file with the text, or -1 */
	int fd;         /* the caller's descriptor the request brought, or -1 */
	int how;        /* OUT_FILE, OUT_NOWAIT or OUT_TIMED */
	off_t off, len;
};

struct delivery {
	int c;          /* the caller's connection: the exit code goes there last */
	int32_t code;
	pid_t pid;
	struct out out[2];      /* stdout (or both), stderr */
};

static struct delivery pending[MAX_PENDING];
static int npending;

static void on_alarm(int sig)
{
	(void)sig;      /* only cuts a terminal write short (no SA_RESTART) */
}

/* Whether two descriptors name one file (2>&1, or both the same pipe). */
static int one_file(int a, int b)
{
	struct stat sa, sb;

	return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && same_file(&sa, &sb);
}

/* Set o up to copy memory file `mem` to the caller's descriptor *fd (the
 * one the request brought: taken, *fd becomes -1, when there is text for
 * it). */
static void out_open(struct out *o, int mem, int *fd)
{
	struct stat st;

	o->mem = mem;
	o->fd = -1;
	o->off = 0;
	o->len = mem >= 0 ? lseek(mem, 0, SEEK_END) : 0;
	if (o->len <= 0) {
		o->len = 0;
		return;
	}
	o->how = fstat(*fd, &st) == 0 && S_ISREG(st.st_mode) ? OUT_FILE : OUT_NOWAIT;
	o->fd = *fd;
	*fd = -1;
}

/* One write of o's that does not wait for a reader (a terminal's or a
 * FIFO's: not more than 20 ms). */
static ssize_t out_write(struct out *o, const char *buf, size_t n)
{
	struct iovec iov = { (void *)buf, n };
	/* every 20 ms until disarmed: a signal that came before the write
	 * began (the daemon off the CPU) would leave it waiting, the next one
	 * does not */
	struct itimerval t = { { 0, 20000 }, { 0, 20000 } }, off = { { 0, 0 }, { 0, 0 } };
	ssize_t w;
	int saved;

	if (o->how == OUT_FILE)
		return write(o->fd, buf, n);
	if (o->how == OUT_NOWAIT) {
		w = pwritev2(o->fd, &iov, 1, -1, RWF_NOWAIT);
		if (w >= 0 || errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ||
		    errno == EPIPE || errno == ECONNRESET)
			return w;
		/* refused (EOPNOTSUPP: a terminal, a FIFO; or a filter's
		 * ENOSYS, EPERM): timed writes from now on */
		o->how = OUT_TIMED;
	}
	setitimer(ITIMER_REAL, &t, NULL);
	w = write(o->fd, buf, n);
	saved = errno;
	setitimer(ITIMER_REAL, &off, NULL);
	if (w < 0 && saved == EINTR)
		saved = EAGAIN;         /* cut short before a byte went */
	errno = saved;
	return w;
}

/* Write what o has left: 1 when all of it went (or there is nowhere for it
 * to go), 0 when its reader must take some first, -1 when its reader is
 * gone (the rest is dropped). */
static int out_push(struct out *o)
{
	static char buf[65536];

	if (o->fd < 0) {
		o->off = o->len;        /* (cannot happen: out_open takes one) */
		return 1;
	}
	while (o->off < o->len) {
		size_t want = (size_t)(o->len - o->off) < sizeof(buf) ? (size_t)(o->len - o->off) : sizeof(buf);
		ssize_t n, w;

		n = pread(o->mem, buf, want, o->off);
		if (n <= 0) {
			o->off = o->len;        /* (cannot happen: the file is ours) */
			return 1;
		}
		w = out_write(o, buf, (size_t)n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (w <= 0) {
			o->off = o->len;
			return errno == EPIPE || errno == ECONNRESET ? -1 : 1;
		}
		o->off += w;
		if (o->how == OUT_TIMED && w < n)
			return 0;       /* the timer cut it short: the rest waits for room */
	}
	return 1;
}

static void out_close(struct out *o)
{
	if (o->mem >= 0)
		close(o->mem);
	if (o->fd >= 0)
		close(o->fd);
	o->mem = o->fd = -1;
}

/* Push d's outputs (`ready`: which may take some now); 1 when both are
 * done. A reader gone makes the exit code 128 + SIGPIPE: run in the
 * caller, the command would have died of it, stdout's or stderr's. */
static int delivery_push(struct delivery *d, const int ready[2])
{
	int i, r, done = 1;

	for (i = 0; i < 2; i++) {
		if (d->out[i].off >= d->out[i].len)
			continue;
		r = ready[i] ? out_push(&d->out[i]) : 0;
		if (r == 0)
			done = 0;
		else if (r < 0)
			d->code = 128 + SIGPIPE;
	}
	return done;
}

static void delivery_end(struct delivery *d, int answer)
{
	if (answer)
		reply_to(d->c, d->code);
	close(d->c);
	out_close(&d->out[0]);
	out_close(&d->out[1]);
}

/* The output a command left in mem[0] (stdout, or both) and mem[1]
 * (stderr, or -1): delivered at once, or parked in `pending`. Takes the
 * memory files; the caller's connection c too when parked (and then
 * answers it later). Returns 1 when parked; else *code is the exit code to
 * answer with. */
static int deliver(int c, int32_t *code, pid_t pid, int *fds, const int *mem)
{
	static const int now[2] = { 1, 1 };
	struct delivery d;

	d.c = c;
	d.code = *code;
	d.pid = pid;
	out_open(&d.out[0], mem[0], &fds[1]);
	out_open(&d.out[1], mem[1], &fds[2]);
	if (delivery_push(&d, now) || npending >= MAX_PENDING) {
		/* (a full list cannot happen: no request is served then) */
		*code = d.code;
		out_close(&d.out[0]);
		out_close(&d.out[1]);
		return 0;
	}
	pending[npending++] = d;
	return 1;
}

/* Poll entries for the pending deliveries, three each from pfd[0]: their
 * outputs that wait (fd -1 for one that is done: poll skips it) and the
 * caller's connection (gone: dropped). */
static int pending_pollfds(struct pollfd *pfd)
{
	int i, j, n = 0;

	for (i = 0; i < npending; i++) {
		struct delivery *d = &pending[i];
		for (j = 0; j < 2; j++) {
			pfd[n].fd = d->out[j].off < d->out[j].len ? d->out[j].fd : -1;
			pfd[n].events = POLLOUT;
			pfd[n++].revents = 0;
		}
		pfd[n].fd = d->c;
		pfd[n].events = POLLRDHUP;
		pfd[n++].revents = 0;
	}
	return n;
}

/* After a poll over pending_pollfds' entries: push what can go, end what
 * is done or whose caller is gone. */
static void pending_run(const struct pollfd *pfd, int quiet)
{
	int i, j = 0, n = npending;

	for (i = 0; i < n; i++) {
		struct delivery *d = &pending[i];
		const struct pollfd *p = &pfd[3 * i];
		int ready[2] = { p[0].revents != 0, p[1].revents != 0 };

		if (p[2].revents & (POLLHUP | POLLRDHUP | POLLERR | POLLNVAL)) {
			if (!quiet)
				log_line("pid %d: gone before its output was read; the rest dropped", (int)d->pid);
			delivery_end(d, 0);
			continue;
		}
		if ((ready[0] || ready[1]) && delivery_push(d, ready)) {
			if (!quiet)
				log_line("pid %d: its output was read: exit %d", (int)d->pid, (int)d->code);
			delivery_end(d, 1);
			continue;
		}
		pending[j++] = *d;
	}
	npending = j;
}

/* At a stop: every waiting caller gets its exit code; what its reader has
 * not taken is dropped. */
static void pending_drop(int quiet)
{
	int i;

	for (i = 0; i < npending; i++) {
		struct delivery *d = &pending[i];
		if (!quiet)
			log_line("pid %d: stopping: %lld bytes of its output not read, dropped", (int)d->pid,
				 (long long)(d->out[0].len - d->out[0].off + d->out[1].len - d->out[1].off));
		delivery_end(d, 1);
	}
	npending = 0;
}

/*
 * One request on the accepted connection c: check it, switch to the
 * caller's stdin, directory and namespace (its stdout and stderr are
 * memory files), call the handler (at stack index hidx) with the arguments
 * and the environment, switch back, deliver the output and answer.
 * Returns 1 when the output waits for its reader (the connection is then
 * `pending`'s), -1 only when the daemon cannot go on (its namespace could
 * not be restored), else 0.
 */
static int serve_one(lua_State *L, int hidx, struct served *s, int c)
{
	static char buf[REQ_MAX + 1];
	union {
		char buf[CMSG_SPACE(sizeof(int) * REQ_FDS)];
		struct cmsghdr align;
	} u;
	struct iovec iov = { buf, REQ_MAX + 1 };
	struct msghdr msg = { 0 };
	struct cmsghdr *cm;
	struct req_hdr h;
	struct ucred cred = { 0, 0, 0 };
	socklen_t clen = sizeof(cred), plen = sizeof(int);
	struct timespec t0;
	struct pollfd gone = { c, POLLRDHUP, 0 };
	int fds[REQ_FDS], nfds = 0, i, ret = 0, peer_ok, rerr = 0, pidfd = -1, mem[2] = { -1, -1 }, parked = 0, one;
	int32_t code = REPLY_LOCAL;
	const char *p, *end, *why = NULL, *label = "?";
	ssize_t n;

	int base = lua_gettop(L);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = u.buf;
	msg.msg_controllen = sizeof(u.buf);
	n = recvmsg(c, &msg, MSG_CMSG_CLOEXEC);
	if (n < 0)
		msg.msg_controllen = 0;    /* the kernel left it as it was: u.buf holds no descriptor */
	peer_ok = getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0 && cred.uid == geteuid();
	/* (a kernel without SO_PEERPIDFD says ENOPROTOOPT; any other failure,
	 * e.g. a caller already reaped, is not served) */
	if (getsockopt(c, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &plen) < 0) {
		pidfd = errno == ENOPROTOOPT ? -1 : -2;
	}
	for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm))
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
			int k = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
			for (i = 0; i < k; i++) {
				int fd;
				memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
				if (nfds < REQ_FDS)
					fds[nfds++] = fd;
				else
					close(fd);
			}
		}
	if (n < (ssize_t)sizeof(h) || n > REQ_MAX || (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) ||
	    nfds != REQ_FDS) {
		why = "malformed request";
		goto answer;
	}
	memcpy(&h, buf, sizeof(h));
	if (h.magic != REQ_MAGIC || h.version != REQ_VERSION || h.argc > REQ_MAX || h.envc > REQ_MAX) {
		why = "malformed request";
		goto answer;
	}
	if (!peer_ok) {
		why = "another user";
		goto answer;
	}
	if (memcmp(h.exe, s->exe, sizeof(h.exe)) != 0) {
		why = "another brisk program";
		goto answer;
	}
	/* a caller that gave up waiting (timed out, killed) is not served
	 * later: its command would run for no one */
	if (poll(&gone, 1, 0) == 1 && (gone.revents & (POLLHUP | POLLRDHUP | POLLERR))) {
		why = "the caller is gone";
		goto answer;
	}
	if (pidfd == -2) {
		why = "the caller is gone";
		goto answer;
	}
	if ((why = peer_refused(s, cred.pid, pidfd)) != NULL)
		goto answer;
	buf[n] = '\0';
	p = buf + sizeof(h);
	end = buf + n;
	lua_pushvalue(L, hidx);
	lua_createtable(L, (int)h.argc, 0);
	for (i = 0; i < (int)h.argc; i++) {
		if (p >= end) {
			lua_pop(L, 2);
			why = "malformed request";
			goto answer;
		}
		lua_pushstring(L, p);
		lua_rawseti(L, -2, i);
		p += strlen(p) + 1;
	}
	lua_createtable(L, 0, (int)h.envc);
	for (i = 0; i < (int)h.envc; i++) {
		const char *eq;
		if (p >= end || !(eq = strchr(p, '='))) {
			lua_pop(L, 3);
			why = "malformed request";
			goto answer;
		}
		lua_pushlstring(L, p, (size_t)(eq - p));
		lua_pushstring(L, eq + 1);
		lua_rawset(L, -3);
		p += strlen(p) + 1;
	}
	if (setns(fds[3], CLONE_NEWNET) < 0) {
		lua_pop(L, 3);
		why = "cannot enter the caller's network namespace";
		goto answer;
	}
	fflush(stdout);
	fflush(stderr);
	mem[0] = memfd_create("brisk-stdout", MFD_CLOEXEC);
	one = one_file(fds[1], fds[2]);
	if (!one)
		mem[1] = memfd_create("brisk-stderr", MFD_CLOEXEC);
	if (mem[0] < 0 || (mem[1] < 0 && !one) || fchdir(fds[4]) < 0 ||
	    dup2(fds[0], 0) < 0 || dup2(mem[0], 1) < 0 || dup2(mem[1] >= 0 ? mem[1] : mem[0], 2) < 0) {
		lua_pop(L, 3);
		why = "cannot take the caller's descriptors";
		if ((rerr = restore_own(s)) != 0)
			ret = -1;
		goto answer;
	}
	/* handler(argv, env) -> exit code (integer) and the command's name,
	 * or nil: not served */
	if (lua_pcall(L, 2, 2, 0) != LUA_OK) {
		fprintf(stderr, "brisk: %s\n", lua_isstring(L, -1) ? lua_tostring(L, -1)
			: "(an error object that is not a string)");
		lua_pop(L, 1);
		code = 1;
		label = "(error)";
	} else {
		if (lua_isinteger(L, -2))
			code = (int32_t)lua_tointeger(L, -2);
		if (code < REPLY_LOCAL || code > 255)
			code = 1;
		/* the label stays on the stack until the log line is written */
		label = lua_isstring(L, -1) ? lua_tostring(L, -1) : "?";
	}
	if ((rerr = restore_own(s)) != 0)
		ret = -1;
	if (code == REPLY_LOCAL)
		why = "not served";
	/* its output, delivered now or parked: a reader gone (stdout's or
	 * stderr's) makes the exit code 128 + SIGPIPE (run in the caller, the
	 * command would have died of it) */
	if (!why && ret == 0) {
		parked = deliver(c, &code, cred.pid, fds, mem);
		mem[0] = mem[1] = -1;
	}
answer:
	/* the line first: when the caller exits, its command is in the log */
	if (!s->quiet) {
		if (why)
			log_line("pid %d: left to the caller (%s)", (int)cred.pid, why);
		else
			log_line("pid %d: %s: exit %d, %.2f ms%s", (int)cred.pid, label, (int)code, ms_since(&t0),
				 parked ? " (its output waits for its reader)" : "");
	}
	if (!parked)
		reply_to(c, code);
	lua_settop(L, base);
	for (i = 0; i < 2; i++)
		if (mem[i] >= 0)
			close(mem[i]);
	for (i = 0; i < nfds; i++)
		if (fds[i] >= 0)        /* (stdout's and stderr's may be deliver's now) */
			close(fds[i]);
	if (pidfd >= 0)
		close(pidfd);
	if (ret < 0)
		log_line("cannot return to its own namespace or directory: %s", strerror(rerr));
	return ret < 0 ? ret : parked;
}

static long long mono_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* The time a wait of run_idle's (ms, -1: none) ends. */
static long long idle_due(int wait)
{
	return wait < 0 ? -1 : mono_ms() + wait;
}

/* opts.idle(timed_out), if given: the daemon's work between requests (in
 * its own namespace and directory, once the last caller has its answer).
 * It may return a number of seconds: when no request has come by then, it
 * is called again with true. Returns that wait in milliseconds, or -1 for
 * none. An error is logged, not fatal. */
static int run_idle(lua_State *L, const struct served *s, int timed_out)
{
	int wait = -1;

	if (!lua_istable(L, 3))
		return -1;
	lua_getfield(L, 3, "idle");
	if (!lua_isfunction(L, -1)) {
		lua_pop(L, 1);
		return -1;
	}
	lua_pushboolean(L, timed_out);
	if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
		if (!s->quiet)
			log_line("idle: %s", lua_isstring(L, -1) ? lua_tostring(L, -1) : "(error)");
	} else if (lua_type(L, -1) == LUA_TNUMBER) {
		double secs = lua_tonumber(L, -1);

		/* (at least 1 ms: no spinning; at most a day) */
		if (secs >= 0)
			wait = secs < 86400 ? (int)(secs * 1000 + 0.5) : 86400000;
		if (wait == 0)
			wait = 1;
	}
	lua_pop(L, 1);
	return wait;
}

/* Bind PATH (mode 0600): a socket file no one listens on is replaced. Its
 * directory must be the daemon user's (or root's) and writable by no one
 * else: another user could otherwise replace the socket between two
 * requests, or after the daemon stops, and get the callers' descriptors. */
static int listen_on(lua_State *L, const char *path, struct sockaddr_un *sa)
{
	int fd, probe, err;
	mode_t old;
	struct stat st;
	char dir[sizeof(sa->sun_path)], *slash;

	if (unix_addr(path, sa) < 0) {
		lua_pushnil(L);
		lua_pushfstring(L, "daemon: socket path '%s' is empty or longer than %d bytes",
			path, (int)sizeof(sa->sun_path) - 1);
		return -1;
	}
	strcpy(dir, sa->sun_path);
	slash = strrchr(dir, '/');
	if (!slash)
		strcpy(dir, ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	if (stat(dir, &st) < 0) {
		lua_pushnil(L);
		lua_pushfstring(L, "daemon: %s: %s", dir, strerror(errno));
		return -1;
	}
	if ((st.st_uid != geteuid() && st.st_uid != 0) || (st.st_mode & (S_IWGRP | S_IWOTH))) {
		char mode[8];
		snprintf(mode, sizeof(mode), "%04o", (unsigned)(st.st_mode & 07777));
		lua_pushnil(L);
		lua_pushfstring(L, "daemon: the socket's directory %s is writable by another user "
			"(owner uid %d, mode %s): choose one only its owner can write", dir, (int)st.st_uid, mode);
		return -1;
	}
	if (lstat(sa->sun_path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			lua_pushnil(L);
			lua_pushfstring(L, "daemon: %s exists and is not a socket", sa->sun_path);
			return -1;
		}
		probe = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
		if (probe >= 0 && connect(probe, (struct sockaddr *)sa, sizeof(*sa)) == 0) {
			close(probe);
			lua_pushnil(L);
			lua_pushfstring(L, "daemon: a daemon already listens on %s", sa->sun_path);
			return -1;
		}
		if (probe >= 0)
			close(probe);
		unlink(sa->sun_path);
	}
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	old = umask(0177);
	if (bind(fd, (struct sockaddr *)sa, sizeof(*sa)) < 0) {
		err = errno;
		umask(old);
		close(fd);
		errno = err;
		goto fail;
	}
	umask(old);
	if (listen(fd, 128) < 0) {
		err = errno;
		close(fd);
		unlink(sa->sun_path);
		errno = err;
		goto fail;
	}
	return fd;
fail:
	lua_pushnil(L);
	lua_pushfstring(L, "daemon: cannot listen on %s: %s", sa->sun_path, strerror(errno));
	return -1;
}

/***
 * Serve requests on a unix socket until SIGINT, SIGTERM or SIGHUP.
 * Each request calls handler(argv, env) with the caller's stdin, stdout
 * and stderr as 0, 1 and 2, in its network namespace and working
 * directory; the handler returns the exit code and the command's name (for
 * the log line on the daemon's stderr), or nil to leave the command to the
 * caller. One request at a time: a signal waits for the running one.
 * @function serve
 * @tparam string path the socket (created mode 0600; a stale one replaced)
 * @tparam function handler
 * @tparam[opt] table opts `quiet` (no log lines), `ready` (a function called
 *   once listening), `idle` (a function called once listening and after
 *   each request, in the daemon's own namespace: work done between
 *   requests; it may return seconds after which, no request having come,
 *   it is called again with true; an error is logged)
 * @return the signal's number
 * @return[2] nil, message
 */
int brisk_host_serve(lua_State *L)
{
	struct served s;
	struct sockaddr_un sa;
	struct sigaction act, old_int, old_term, old_hup, old_pipe, old_alrm, old_ttou;
	sigset_t block, old_mask, wait_mask;
	struct stat mine;
	int lfd, i, fatal = 0, hidx = 2, reserve;
	long long idle_at;
	struct pollfd pfd[1 + 3 * MAX_PENDING];

	luaL_checkstring(L, 1);
	luaL_checktype(L, 2, LUA_TFUNCTION);
	brisk_image_detach(L);               /* it runs long: see image.h */
	lua_settop(L, 3);
	s.quiet = 0;
	if (lua_istable(L, 3)) {
		lua_getfield(L, 3, "quiet");
		s.quiet = lua_toboolean(L, -1);
		lua_pop(L, 1);
	}
	if (own_identity(&s) < 0)
		return luaL_fileresult(L, 0, "/proc/self");
	lfd = listen_on(L, lua_tostring(L, 1), &sa);
	if (lfd < 0)
		return 2;
	if (stat(sa.sun_path, &mine) < 0)
		memset(&mine, 0, sizeof(mine));
	for (i = 0; i < 3; i++)
		s.own[i] = fcntl(i, F_DUPFD_CLOEXEC, 10);
	s.own_net = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	s.own_cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (s.own[0] < 0 || s.own[1] < 0 || s.own[2] < 0 || s.own_net < 0 || s.own_cwd < 0) {
		int err = errno;
		for (i = 0; i < 3; i++)
			if (s.own[i] >= 0)
				close(s.own[i]);
		if (s.own_net >= 0)
			close(s.own_net);
		if (s.own_cwd >= 0)
			close(s.own_cwd);
		close(lfd);
		unlink(sa.sun_path);
		lua_pushnil(L);
		lua_pushfstring(L, "daemon: %s", strerror(err));
		return 2;
	}

	/* SIGINT, SIGTERM and SIGHUP are taken only while waiting for a
	 * connection (ppoll unblocks them); SIGPIPE is ignored, so a caller
	 * gone away makes writes fail, not the daemon die. */
	stop_signal = 0;
	memset(&act, 0, sizeof(act));
	act.sa_handler = on_stop;
	sigemptyset(&act.sa_mask);
	sigaction(SIGINT, &act, &old_int);
	sigaction(SIGTERM, &act, &old_term);
	sigaction(SIGHUP, &act, &old_hup);
	act.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &act, &old_pipe);
	sigaction(SIGTTOU, &act, &old_ttou);
	act.sa_handler = on_alarm;      /* out_write's timer: no SA_RESTART */
	sigaction(SIGALRM, &act, &old_alrm);
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGHUP);
	sigprocmask(SIG_BLOCK, &block, &old_mask);
	{
		sigset_t alrm;          /* the timer must cut a write short */
		sigemptyset(&alrm);
		sigaddset(&alrm, SIGALRM);
		sigprocmask(SIG_UNBLOCK, &alrm, NULL);
	}
	wait_mask = old_mask;
	sigdelset(&wait_mask, SIGINT);
	sigdelset(&wait_mask, SIGTERM);
	sigdelset(&wait_mask, SIGHUP);

	if (lua_istable(L, 3)) {
		lua_getfield(L, 3, "ready");
		if (lua_isfunction(L, -1))
			lua_call(L, 0, 0);
		else
			lua_pop(L, 1);
	}
	pfd[0].fd = lfd;
	pfd[0].events = POLLIN;
	npending = 0;
	reserve = open("/dev/null", O_RDONLY | O_CLOEXEC);
	/* when the idle work is due again (CLOCK_MONOTONIC ms; -1: not):
	 * outputs taken meanwhile do not put it off */
	idle_at = idle_due(run_idle(L, &s, 0));
	while (!stop_signal && !fatal) {
		int c, r, np, perr;
		struct timeval tv = { 2, 0 };
		long long left = idle_at < 0 ? -1 : idle_at - mono_ms();
		struct timespec ts;

		if (left < 0 && idle_at >= 0)
			left = 0;
		ts.tv_sec = (time_t)(left / 1000);
		ts.tv_nsec = (long)(left % 1000) * 1000000L;
		np = pending_pollfds(pfd + 1);
		r = ppoll(pfd, (nfds_t)(1 + np), left >= 0 ? &ts : NULL, &wait_mask);
		perr = errno;
		/* a ppoll that finds a caller waiting puts the mask back without
		 * taking a pending stop signal: under steady load the signal
		 * would wait forever */
		if (r > 0) {
			sigset_t pend;
			if (sigpending(&pend) == 0 && (sigismember(&pend, SIGINT) ||
			    sigismember(&pend, SIGTERM) || sigismember(&pend, SIGHUP)))
				break;
		}
		if (r == 0 || (idle_at >= 0 && mono_ms() >= idle_at)) {
			idle_at = idle_due(run_idle(L, &s, 1));
			if (r == 0)
				continue;
		}
		if (r < 0) {
			if (perr == EINTR)
				continue;
			break;
		}
		if (np > 0)
			pending_run(pfd + 1, s.quiet);
		if (!(pfd[0].revents & POLLIN))
			continue;
		c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0) {
			/* The connection stays queued, and ppoll would report it
			 * at once, forever (the stop signals pending but never let
			 * in). Out of descriptors, the reserve one makes room to
			 * take it and tell the caller to run its command itself;
			 * otherwise a pause in which the signals can come. */
			if ((errno == EMFILE || errno == ENFILE) && reserve >= 0) {
				close(reserve);
				c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
				if (c >= 0) {
					leave_to_caller(c, 2000);
					close(c);
				}
				reserve = open("/dev/null", O_RDONLY | O_CLOEXEC);
				if (!s.quiet)
					log_line("out of file descriptors: a caller was left to run its command");
			} else if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED) {
				struct timespec pause = { 0, 10 * 1000000L };
				ppoll(NULL, 0, &pause, &wait_mask);
			}
			continue;
		}
		/* with as many outputs waiting as can, a caller runs its own */
		if (npending >= MAX_PENDING) {
			leave_to_caller(c, 100);
			close(c);
			if (!s.quiet)
				log_line("%d outputs wait for their readers: a caller was left to run its command",
					 npending);
			continue;
		}
		/* a caller that connects and sends nothing cannot hold it */
		setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		r = serve_one(L, hidx, &s, c);
		if (r < 0)
			fatal = 1;
		if (r <= 0)
			close(c);
		if (!fatal)
			idle_at = idle_due(run_idle(L, &s, 0));
	}

	/* callers whose output waits get their exit codes; the socket goes
	 * (still ours: no caller can connect now), then callers already
	 * queued are told to run their commands themselves:
	 * closing the socket under them would make them report a connection
	 * lost mid-command. One second at most, whatever they do. */
	pending_drop(s.quiet);
	{
		struct stat now;
		if (stat(sa.sun_path, &now) == 0 && now.st_ino == mine.st_ino && now.st_dev == mine.st_dev)
			unlink(sa.sun_path);
	}
	if (!fatal) {
		struct timespec t0;
		int c, fl = fcntl(lfd, F_GETFL);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		if (fl >= 0 && fcntl(lfd, F_SETFL, fl | O_NONBLOCK) == 0)
			while (ms_since(&t0) < 1000 && (c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
				leave_to_caller(c, 100);
				close(c);
			}
	}
	close(lfd);
	if (reserve >= 0)
		close(reserve);
	sigprocmask(SIG_SETMASK, &old_mask, NULL);
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	sigaction(SIGHUP, &old_hup, NULL);
	sigaction(SIGPIPE, &old_pipe, NULL);
	sigaction(SIGALRM, &old_alrm, NULL);
	sigaction(SIGTTOU, &old_ttou, NULL);
	for (i = 0; i < 3; i++)
		close(s.own[i]);
	close(s.own_net);
	close(s.own_cwd);
	if (fatal) {
		lua_pushnil(L);
		lua_pushliteral(L, "daemon: cannot return to its own network namespace; stopped");
		return 2;
	}
	lua_pushinteger(L, stop_signal);
	return 1;
}
