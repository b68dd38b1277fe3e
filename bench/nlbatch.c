/*
 * bench/nlbatch.c - what batching rtnetlink requests would save.
 *
 *     scripts/isolate.sh build/bench/nlbatch [-n COUNT] [-b BATCH] [-r REPS]
 *
 * brisk sends one request and reads its answer before the next (one
 * round trip each), so that every step's answer is known before the next
 * step runs and a failure is rolled back exactly. The issue asks for a
 * batched path (many requests per sendmsg, mnl_nlmsg_batch) if one request
 * per round trip is the limit. This measures whether it is: the same
 * requests, each acked, sent one per round trip and then BATCH per sendmsg
 * (every ack read back and matched to its request by sequence number), on
 * a bridge with no ports in the caller's namespace (which must be a private one):
 *
 *   getlink   RTM_GETLINK of the bridge by index (the kernel's least work)
 *   addr_add  RTM_NEWADDR of COUNT /32 addresses, then
 *   addr_del  RTM_DELADDR of the same
 *   mtu       RTM_NEWLINK setting the MTU, a different one each time
 *
 * Each pass runs REPS times, one-by-one and batched alternately; the
 * median of each is printed as microseconds per request:
 *
 *   NLBATCH op=addr_add n=1000 batch=16 single_us=3.1 batched_us=2.4
 *
 * The difference is the most a batched path could save per request: the
 * kernel's own work is the same either way.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <net/if.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <libmnl/libmnl.h>

#define DEV "nlb0"
#define MAXBATCH 64
#define MSGSZ 256              /* room for each request in a batch */

enum op { OP_GETLINK, OP_ADDR_ADD, OP_ADDR_DEL, OP_MTU, OP_COUNT };
static const char *const op_name[OP_COUNT] = { "getlink", "addr_add", "addr_del", "mtu" };

static struct mnl_socket *nl;
static unsigned int portid, seq;    /* seq: the last request's, from 0 */
static int ifindex;
static char rbuf[1 << 16];

static void die(const char *what)
{
	fprintf(stderr, "nlbatch: %s: %s\n", what, strerror(errno));
	exit(1);
}

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* Request i of `op` at buf (MSGSZ bytes of room); its sequence number is s. */
static void build(void *buf, enum op op, int i, unsigned int s)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	bool ok;

	nlh->nlmsg_seq = s;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	if (op == OP_GETLINK || op == OP_MTU) {
		struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
		ifi->ifi_family = AF_UNSPEC;
		ifi->ifi_index = ifindex;
		if (op == OP_GETLINK) {
			nlh->nlmsg_type = RTM_GETLINK;
			ok = mnl_attr_put_u32_check(nlh, MSGSZ, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
		} else {
			nlh->nlmsg_type = RTM_NEWLINK;
			ok = mnl_attr_put_u32_check(nlh, MSGSZ, IFLA_MTU, 1280 + (unsigned int)(i % 200));
		}
	} else {
		struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
		uint32_t a = htonl(0x0a630000u + 1 + (uint32_t)i);   /* 10.99.0.1 on */
		nlh->nlmsg_type = op == OP_ADDR_ADD ? RTM_NEWADDR : RTM_DELADDR;
		if (op == OP_ADDR_ADD)
			nlh->nlmsg_flags |= NLM_F_CREATE | NLM_F_EXCL;
		ifa->ifa_family = AF_INET;
		ifa->ifa_prefixlen = 32;
		ifa->ifa_index = (unsigned int)ifindex;
		ok = mnl_attr_put_check(nlh, MSGSZ, IFA_LOCAL, 4, &a) &&
		     mnl_attr_put_check(nlh, MSGSZ, IFA_ADDRESS, 4, &a);
	}
	if (!ok) {
		fprintf(stderr, "nlbatch: request too long\n");
		exit(1);
	}
}

struct acks {
	unsigned int first;    /* sequence number of the first request */
	int count;             /* requests in flight */
	int done;              /* acks seen */
	char seen[MAXBATCH];
};

static int cb_err(const struct nlmsghdr *nlh, void *data)
{
	struct acks *a = data;
	const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);
	unsigned int k = nlh->nlmsg_seq - a->first;

	if (k >= (unsigned int)a->count || a->seen[k]) {
		fprintf(stderr, "nlbatch: stray ack for seq %u\n", nlh->nlmsg_seq);
		exit(1);
	}
	if (e->error) {
		fprintf(stderr, "nlbatch: request %u of the batch failed: %s\n", k,
			strerror(-e->error));
		exit(1);
	}
	a->seen[k] = 1;
	a->done++;
	return a->done == a->count ? MNL_CB_STOP : MNL_CB_OK;
}

static int cb_skip(const struct nlmsghdr *nlh, void *data)
{
	(void)nlh;
	(void)data;
	return MNL_CB_OK;
}

/* Read until every request in `a` is acked (a reply before its ack is read
 * and dropped). */
static void wait_acks(struct acks *a)
{
	static mnl_cb_t ctl[NLMSG_MIN_TYPE] = { [NLMSG_ERROR] = cb_err };
	while (a->done < a->count) {
		ssize_t n = mnl_socket_recvfrom(nl, rbuf, sizeof(rbuf));
		if (n < 0)
			die("recv");
		/* seq 0: each message is checked by cb_err against the batch */
		if (mnl_cb_run2(rbuf, (size_t)n, 0, portid, cb_skip, a, ctl, NLMSG_MIN_TYPE) < 0)
			die("parse");
	}
}

/* COUNT requests of `op`, `batch` per sendmsg; microseconds per request. */
static double pass(enum op op, int count, int batch)
{
	static char sbuf[MAXBATCH * MSGSZ];
	double t0 = now_us();
	int i = 0;

	while (i < count) {
		/* libmnl writes a message past the limit before it notices: the
		 * buffer is twice the limit, as its documentation asks */
		struct mnl_nlmsg_batch *b = mnl_nlmsg_batch_start(sbuf, sizeof(sbuf) / 2);
		struct acks a = { .first = seq + 1 };
		int k;

		if (!b)
			die("batch");
		for (k = 0; k < batch && i < count; k++, i++) {
			build(mnl_nlmsg_batch_current(b), op, i, ++seq);
			if (!mnl_nlmsg_batch_next(b)) {
				fprintf(stderr, "nlbatch: batch buffer full\n");
				exit(1);
			}
		}
		a.count = k;
		if (mnl_socket_sendto(nl, mnl_nlmsg_batch_head(b), mnl_nlmsg_batch_size(b)) < 0)
			die("send");
		mnl_nlmsg_batch_stop(b);
		wait_acks(&a);
	}
	return (now_us() - t0) / count;
}

static int cmp(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;
	return (a > b) - (a < b);
}

static void setup(void)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	struct nlattr *info;
	struct acks a = { .count = 1 };
	int rcv = 1 << 20;

	nl = mnl_socket_open(NETLINK_ROUTE);
	if (!nl)
		die("socket");
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0)
		die("bind");
	portid = mnl_socket_get_portid(nl);
	setsockopt(mnl_socket_get_fd(nl), SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));

	nlh->nlmsg_type = RTM_NEWLINK;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
	nlh->nlmsg_seq = a.first = ++seq;
	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_change = ifi->ifi_flags = IFF_UP;
	if (!mnl_attr_put_strz_check(nlh, sizeof(buf), IFLA_IFNAME, DEV) ||
	    !(info = mnl_attr_nest_start_check(nlh, sizeof(buf), IFLA_LINKINFO)) ||
	    !mnl_attr_put_strz_check(nlh, sizeof(buf), IFLA_INFO_KIND, "bridge")) {
		fprintf(stderr, "nlbatch: request too long\n");
		exit(1);
	}
	mnl_attr_nest_end(nlh, info);
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
		die("send");
	wait_acks(&a);
	ifindex = (int)if_nametoindex(DEV);
	if (!ifindex)
		die("if_nametoindex " DEV);
}

int main(int argc, char **argv)
{
	int count = 1000, batch = 16, reps = 5, c;
	const char *iso = getenv("BRISK_ISOLATED");

	while ((c = getopt(argc, argv, "n:b:r:")) != -1) {
		switch (c) {
		case 'n': count = atoi(optarg); break;
		case 'b': batch = atoi(optarg); break;
		case 'r': reps = atoi(optarg); break;
		default:
			fprintf(stderr, "usage: nlbatch [-n COUNT] [-b BATCH] [-r REPS]\n");
			return 2;
		}
	}
	if (count < 1 || count > 60000 || batch < 2 || batch > MAXBATCH || reps < 1 || reps > 99) {
		fprintf(stderr, "nlbatch: need 1 <= COUNT <= 60000, 2 <= BATCH <= %d, 1 <= REPS <= 99\n",
			MAXBATCH);
		return 2;
	}
	if (!iso || strcmp(iso, "1")) {
		fprintf(stderr, "nlbatch: run me through scripts/isolate.sh (a private network namespace)\n");
		return 2;
	}
	setup();
	static double one[OP_COUNT][99], many[OP_COUNT][99];
	for (int op = OP_GETLINK; op < OP_COUNT; op++) {
		if (op == OP_ADDR_DEL)
			continue;     /* each addr_add pass is undone by an addr_del pass */
		for (int r = 0; r < reps; r++) {
			/* alternate which goes first, so that a drift in the machine
			 * falls on both */
			for (int k = 0; k < 2; k++) {
				int b = (k ^ (r & 1)) ? batch : 1;
				double (*into)[99] = b > 1 ? many : one;
				into[op][r] = pass((enum op)op, count, b);
				if (op == OP_ADDR_ADD)
					into[OP_ADDR_DEL][r] = pass(OP_ADDR_DEL, count, b);
			}
		}
	}
	for (int op = OP_GETLINK; op < OP_COUNT; op++) {
		qsort(one[op], (size_t)reps, sizeof(double), cmp);
		qsort(many[op], (size_t)reps, sizeof(double), cmp);
		printf("NLBATCH op=%s n=%d batch=%d single_us=%.2f batched_us=%.2f\n",
		       op_name[op], count, batch, one[op][reps / 2], many[op][reps / 2]);
	}
	return 0;
}
