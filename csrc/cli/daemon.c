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
 * caller's mount namespace, counts), the arguments and a few environment
 * variables as NUL-terminated strings, and five descriptors: the caller's
 * stdin, stdout and stderr, its network namespace and its working
 * directory. The server runs the command in that namespace and directory,
 * with those descriptors as its 0, 1 and 2, then puts its own back and
 * answers with the exit code, or with "run it yourself" (-1) when it will
 * not serve it: another user, another mount namespace (the names under
 * /run/netns would differ), a command that is not served (see
 * brisk.cli.daemon). The client runs the command itself then, as it does
 * when nothing listens on PATH.
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
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <lua.h>
#include <lauxlib.h>

#include "daemon.h"

#define REQ_MAGIC 0x4b535242u   /* "BRSK" */
#define REQ_VERSION 1u
#define REQ_MAX 65536           /* a request larger than this runs locally */
#define REQ_FDS 5               /* stdin, stdout, stderr, netns, cwd */
#define REPLY_LOCAL (-1)

struct req_hdr {
	uint32_t magic, version;
	uint64_t mnt_dev, mnt_ino;   /* the caller's mount namespace */
	uint64_t pid_dev, pid_ino;   /* and pid namespace */
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

/* The namespaces a served command must share with its caller: the mount
 * namespace (/run/netns, the state directory) and the pid namespace (a
 * --netns PID). */
static int namespaces(uint64_t *mdev, uint64_t *mino, uint64_t *pdev, uint64_t *pino)
{
	struct stat m, p;

	if (stat("/proc/self/ns/mnt", &m) < 0 || stat("/proc/self/ns/pid", &p) < 0)
		return -1;
	*mdev = (uint64_t)m.st_dev;
	*mino = (uint64_t)m.st_ino;
	*pdev = (uint64_t)p.st_dev;
	*pino = (uint64_t)p.st_ino;
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
	struct req_hdr h = { REQ_MAGIC, REQ_VERSION, 0, 0, 0, 0, 0, 0 };
	struct sockaddr_un sa;
	size_t len = sizeof(h);
	int fds[REQ_FDS] = { 0, 1, 2, -1, -1 };
	int sock = -1, i, code = REPLY_LOCAL;
	int32_t reply;
	ssize_t n;
	char **e;

	if (unix_addr(host, &sa) < 0 || namespaces(&h.mnt_dev, &h.mnt_ino, &h.pid_dev, &h.pid_ino) < 0)
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

struct served {
	int own[3];     /* the daemon's own 0, 1, 2 */
	int own_net;    /* its own network namespace */
	int own_cwd;    /* its own working directory */
	uint64_t mnt_dev, mnt_ino, pid_dev, pid_ino;
	int quiet;
};

static void reply_to(int c, int32_t code)
{
	(void)send(c, &code, sizeof(code), MSG_NOSIGNAL);
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

/*
 * One request on the accepted connection c: check it, switch to the
 * caller's descriptors, directory and namespace, call the handler (at
 * stack index hidx) with the arguments and the environment, switch back,
 * answer. Returns -1 only when the daemon cannot go on (its namespace
 * could not be restored).
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
	socklen_t clen = sizeof(cred);
	struct timespec t0;
	int fds[REQ_FDS], nfds = 0, i, ret = 0, peer_ok, rerr = 0;
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
	if (h.mnt_dev != s->mnt_dev || h.mnt_ino != s->mnt_ino) {
		why = "another mount namespace";
		goto answer;
	}
	if (h.pid_dev != s->pid_dev || h.pid_ino != s->pid_ino) {
		why = "another pid namespace";
		goto answer;
	}
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
	if (fchdir(fds[4]) < 0 || dup2(fds[0], 0) < 0 || dup2(fds[1], 1) < 0 || dup2(fds[2], 2) < 0) {
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
	if (code != REPLY_LOCAL) {
		/* Its output went to a pipe nobody reads any more: run in the
		 * caller, the command would have died of SIGPIPE (which the
		 * daemon ignores), so the caller exits as a shell reports that */
		struct pollfd out = { 1, POLLOUT, 0 };
		int failed = fflush(stdout) == EOF || ferror(stdout);
		if (failed && poll(&out, 1, 0) == 1 && (out.revents & POLLERR))
			code = 128 + SIGPIPE;
	}
	if ((rerr = restore_own(s)) != 0)
		ret = -1;
	if (code == REPLY_LOCAL)
		why = "not served";
answer:
	/* the line first: when the caller exits, its command is in the log */
	if (!s->quiet) {
		if (why)
			log_line("pid %d: left to the caller (%s)", (int)cred.pid, why);
		else
			log_line("pid %d: %s: exit %d, %.2f ms", (int)cred.pid, label, (int)code, ms_since(&t0));
	}
	reply_to(c, code);
	lua_settop(L, base);
	for (i = 0; i < nfds; i++)
		close(fds[i]);
	if (ret < 0)
		log_line("cannot return to its own namespace or directory: %s", strerror(rerr));
	return ret;
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

/* Bind PATH (mode 0600): a socket file no one listens on is replaced. */
static int listen_on(lua_State *L, const char *path, struct sockaddr_un *sa)
{
	int fd, probe, err;
	mode_t old;
	struct stat st;

	if (unix_addr(path, sa) < 0) {
		lua_pushnil(L);
		lua_pushfstring(L, "daemon: socket path '%s' is empty or longer than %d bytes",
			path, (int)sizeof(sa->sun_path) - 1);
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
	struct sigaction act, old_int, old_term, old_hup, old_pipe;
	sigset_t block, old_mask, wait_mask;
	struct stat mine;
	int lfd, i, fatal = 0, hidx = 2, wait, reserve;
	struct pollfd pfd;

	luaL_checkstring(L, 1);
	luaL_checktype(L, 2, LUA_TFUNCTION);
	lua_settop(L, 3);
	s.quiet = 0;
	if (lua_istable(L, 3)) {
		lua_getfield(L, 3, "quiet");
		s.quiet = lua_toboolean(L, -1);
		lua_pop(L, 1);
	}
	if (namespaces(&s.mnt_dev, &s.mnt_ino, &s.pid_dev, &s.pid_ino) < 0)
		return luaL_fileresult(L, 0, "/proc/self/ns");
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
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGHUP);
	sigprocmask(SIG_BLOCK, &block, &old_mask);
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
	pfd.fd = lfd;
	pfd.events = POLLIN;
	reserve = open("/dev/null", O_RDONLY | O_CLOEXEC);
	wait = run_idle(L, &s, 0);
	while (!stop_signal && !fatal) {
		int c, r;
		struct timeval tv = { 2, 0 };
		struct timespec ts = { wait / 1000, (long)(wait % 1000) * 1000000L };

		r = ppoll(&pfd, 1, wait >= 0 ? &ts : NULL, &wait_mask);
		if (r == 0) {
			wait = run_idle(L, &s, 1);
			continue;
		}
		if (r < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
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
					/* the request is read (and dropped, its
					 * descriptors with it) before the answer: a
					 * socket closed with a request unread is reset,
					 * and the caller would lose the answer */
					char drop[64];
					setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
					(void)recv(c, drop, sizeof(drop), 0);
					reply_to(c, REPLY_LOCAL);
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
		/* a caller that connects and sends nothing cannot hold it */
		setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		if (serve_one(L, hidx, &s, c) < 0)
			fatal = 1;
		close(c);
		if (!fatal)
			wait = run_idle(L, &s, 0);
	}

	close(lfd);
	if (reserve >= 0)
		close(reserve);
	{
		struct stat now;
		if (stat(sa.sun_path, &now) == 0 && now.st_ino == mine.st_ino && now.st_dev == mine.st_dev)
			unlink(sa.sun_path);
	}
	sigprocmask(SIG_SETMASK, &old_mask, NULL);
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	sigaction(SIGHUP, &old_hup, NULL);
	sigaction(SIGPIPE, &old_pipe, NULL);
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
