/*
 * cpeer: a cnlink peer in C, written from docs/PROTOCOL.md (wire protocol
 * version 1), to show that the document is enough to interoperate with the
 * Go implementation. One process, one socket, one session.
 *
 * Build: cc -std=c99 -O2 -Wall -Wextra -o cpeer cpeer.c
 *
 * Usage: cpeer [-bind PORT] (-accept | -dial PORT) [-channel IDX:VAL]
 *              [-send N] [-size B] [-vary] [-expect N] [-requests N] [-echo]
 *              [-close | -abort] [-idle SECONDS] [-want END]
 *              [-loss P -seed S] [-bad-crc N] [-bad-epoch N]
 *              [-window W] [-dgram BYTES] [-keepalive MS] [-max-time SECONDS] [-v]
 *
 * Prints "port N" once bound, then at the end one line of key=value results,
 * among them end=<how the session ended> and result=ok (exit 0) or the
 * reason it is not ok (exit 1). See README.md.
 *
 * Message i of a stream is 8 bytes of i (little endian) followed by
 * pattern(i, j) = byte(i * 0x9E3779B97F4A7C15 >> 8*(j%8)) ^ byte(j); requests
 * use i | 1<<63. Receivers check every byte, so loss, duplication,
 * reordering and corruption are all detected.
 *
 * Simplifications (allowed by the document: loss recovery is the sender's
 * business): an RTO retransmits everything unacknowledged and not SACKed
 * after the first expiry's PING probe (SACKed frames too after the third);
 * one session; no SO_PASSCRED pinning.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <linux/netlink.h>
#include <linux/connector.h>

/* ---- protocol constants (PROTOCOL.md §1, §2) ---- */

enum { T_SYN = 1, T_SYNACK, T_DATA, T_REPLY, T_ACK, T_PING, T_RST };
enum { F_REQUEST = 1, F_FIN = 2, F_STATUS_REQ = 4, F_DUP_VALID = 8 };
enum { RST_ABORT = 1, RST_NO_SESSION, RST_REFUSED, RST_BAD_HANDSHAKE, RST_CLOSING, RST_PROTOCOL };

#define NL_HDR 16        /* struct nlmsghdr */
#define CN_HDR 20        /* struct cn_msg without data */
#define HDR 48           /* nlmsghdr + cn_msg + cnlink header (version..arg) */
#define SYN_LEN 20
#define ACK_FIXED 12
#define MAX_RANGES 32    /* per ACK, received */
#define SEND_RANGES 16   /* per ACK, sent */
#define MAX_MESSAGE 16384
#define MAX_DATAGRAM 65536
#define DEFAULT_IDX 0x434e4c4bu /* "CNLK" */

typedef char check_nlmsghdr[sizeof(struct nlmsghdr) == NL_HDR ? 1 : -1];
typedef char check_cn_msg[sizeof(struct cn_msg) == CN_HDR ? 1 : -1];

/* ---- options ---- */

static struct {
	uint32_t bind_port, dial_port;
	int accept;
	uint32_t ch_idx, ch_val;
	long long send_n, expect_n, req_n;
	int size, vary, echo, do_close, do_abort, verbose;
	int oversize;            /* -oversize: ignore the peer's max_message (a protocol violation) */
	long syn_window;         /* -syn-window: the window announced in SYN/SYNACK (0 is invalid) */
	int rcvbuf;              /* -rcvbuf: SO_RCVBUF in bytes (default 4 MiB) */
	int examples;            /* -examples: print PROTOCOL.md §14's frames and exit */
	double idle_s, max_time, loss;
	uint64_t seed;
	long bad_crc, bad_epoch;
	uint32_t window, dgram;
	int64_t keepalive;       /* µs */
	const char *want;
} o = { .ch_idx = DEFAULT_IDX, .ch_val = 1, .expect_n = -1, .size = 128, .max_time = 60,
	.window = 1024, .dgram = 16384, .keepalive = 1000000, .syn_window = -1 };

/* ---- counters ---- */

static struct {
	unsigned long long sent, acked, received, verified, errors, requests, replies, answered;
	unsigned long long retransmits, rtos, dups, crc_bad, epoch_bad, malformed, forged, corrupted;
	unsigned long long dgrams_sent, dgrams_recv, lost_tx, lost_rx, eagain, pings, rsts_sent, status_reqs;
} st;

/* ---- small helpers ---- */

static int64_t now; /* µs on CLOCK_MONOTONIC; refreshed every loop turn */
static int64_t start_us;

static int64_t mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void dbg(const char *fmt, ...)
{
	va_list ap;
	if (!o.verbose)
		return;
	fprintf(stderr, "cpeer %9.6f ", (mono() - start_us) / 1e6);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void die(const char *what)
{
	fprintf(stderr, "cpeer: %s: %s\n", what, strerror(errno));
	exit(2);
}

/* Native byte order (PROTOCOL.md: netlink never leaves the machine). */
static uint16_t get16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static void put16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static size_t align4(size_t n) { return (n + 3) & ~(size_t)3; }

/* RFC 1982 serial arithmetic on u32 sequence numbers. */
static int slt(uint32_t a, uint32_t b) { return (int32_t)(a - b) < 0; }

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

static uint64_t mix64(uint64_t z)
{
	z += 0x9e3779b97f4a7c15ULL;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* The seeded loss generator (splitmix64). */
static uint64_t rng;
static int lose(void)
{
	if (o.loss <= 0)
		return 0;
	rng += 0x9e3779b97f4a7c15ULL;
	return (double)(mix64(rng) >> 11) * (1.0 / 9007199254740992.0) < o.loss;
}

static uint32_t random32(void)
{
	static int fd = -2;
	uint32_t v = 0;
	if (fd == -2)
		fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || read(fd, &v, sizeof v) != (ssize_t)sizeof v)
		v = (uint32_t)mix64((uint64_t)mono() ^ ((uint64_t)getpid() << 32));
	return v;
}

/* ---- CRC-32C (Castagnoli, reflected 0x82F63B78), PROTOCOL.md §1.1 ---- */

static uint32_t crc_tab[256];

static void crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
		crc_tab[i] = c;
	}
}

static uint32_t crc_update(uint32_t c, const uint8_t *p, size_t n)
{
	while (n--)
		c = crc_tab[(c ^ *p++) & 0xff] ^ (c >> 8);
	return c;
}

/* CRC of frame f: bytes [16, 36 + cn_msg.len) with the crc field as zero. */
static uint32_t frame_crc(const uint8_t *f)
{
	static const uint8_t zero[4];
	size_t end = 36 + get16(f + 32);
	uint32_t c = crc_update(0xFFFFFFFFu, f + 16, 24);
	c = crc_update(c, zero, 4);
	c = crc_update(c, f + 44, end - 44);
	return c ^ 0xFFFFFFFFu;
}

/* ---- messages: content that the receiver can verify ---- */

#define REQ_BIT (1ULL << 63)

static size_t msg_len(uint64_t idx)
{
	if (!o.vary || o.size <= 8)
		return (size_t)o.size;
	return 8 + (size_t)(mix64(idx) % (uint64_t)(o.size - 7));
}

static void fill_msg(uint8_t *p, size_t len, uint64_t idx)
{
	for (size_t j = 0; j < len; j++)
		p[j] = j < 8 ? (uint8_t)(idx >> (8 * j))
			     : (uint8_t)((idx * 0x9E3779B97F4A7C15ULL) >> (8 * (j & 7))) ^ (uint8_t)j;
}

static int check_msg(const uint8_t *p, size_t len, uint64_t idx)
{
	if (len < 8)
		return 0;
	for (size_t j = 0; j < len; j++) {
		uint8_t want = j < 8 ? (uint8_t)(idx >> (8 * j))
				     : (uint8_t)((idx * 0x9E3779B97F4A7C15ULL) >> (8 * (j & 7))) ^ (uint8_t)j;
		if (p[j] != want)
			return 0;
	}
	return 1;
}

/* ---- session state ---- */

enum state { S_LISTEN, S_SYN_SENT, S_OPEN, S_TIME_WAIT, S_RESET_WAIT, S_DONE };
static const char *state_names[] = { "listen", "syn_sent", "open", "time_wait", "reset_wait", "done" };

static int fd;
static uint32_t my_port, peer_port;
static enum state state;
static const char *end_reason;      /* set once the session ended */
static uint32_t rw_reason;          /* RST reason answered in reset-wait */
static int64_t wait_until;          /* end of time-wait / reset-wait */

static uint32_t my_epoch, my_isn, peer_epoch;
static uint32_t peer_window, peer_max_msg, peer_max_dgram;
static int64_t last_heard, last_ping, hs_deadline, syn_next, syn_wait;

/* Our stream: a ring of the frames not yet cumulatively acknowledged. */
struct slot {
	uint8_t *data;
	uint16_t len, flags;
	uint8_t type, sacked, need_tx, is_msg;
	uint32_t rseq;              /* REPLY: the request's DSN */
	int xmits;
	int64_t tx_at;
	uint64_t tx_no;             /* transmission order, for RACK */
};
static struct slot *snd;
static uint32_t snd_mask, snd_win, snd_una, snd_nxt, snd_limit, need_tx_count;
static uint64_t tx_counter, rack_tx_no;
static int64_t rack_tx_at;
static int64_t srtt, rttvar, rto = 20000, rto_deadline, next_repair;
static int backoff, probes;
static int fin_queued, fin_acked;
static uint32_t fin_dsn;
static int64_t close_deadline;

/* The peer's stream: a reorder ring of the frames above the cumulative ack. */
struct rslot {
	uint8_t *data;
	uint16_t len, flags;
	uint8_t present, type;
	uint32_t rseq;
};
static struct rslot *rcv;
static uint32_t rcv_mask, rcv_nxt, rcv_hi; /* rcv_hi: highest DSN held + 1 */
static uint32_t rcv_last;                  /* the DSN received most recently */
static int ack_due, dup_valid, status_due, peer_fin;
static uint32_t ack_seq, dup_dsn;

/* Application side. */
static long long msgs_queued, reqs_queued;
static uint32_t *req_dsn;
static uint8_t *req_got;
struct pending_reply { uint32_t rseq; uint16_t len; uint8_t *data; struct pending_reply *next; };
static struct pending_reply *rq_head, *rq_tail;
static int64_t work_done_at;

/* Output: frames to the peer are coalesced into one datagram. */
static uint8_t obuf[MAX_DATAGRAM + 64];
static size_t olen, ocap = MAX_DATAGRAM;
static int opending;                 /* the peer's socket was full (EAGAIN) */
static int64_t oretry_at, oretry_wait;

/* Rate limit of RSTs to unknown sessions: 1000/s, bursts of 100. */
static double rst_tokens = 100;
static int64_t rst_refill;

static void session_end(const char *why, enum state next, uint32_t reason)
{
	if (end_reason)
		return;
	end_reason = why;
	state = next;
	rw_reason = reason;
	wait_until = now + 2 * o.keepalive;
	dbg("session ended: %s, now %s", why, state_names[next]);
}

/* ---- sending ---- */

static int send_dgram(uint32_t port, const uint8_t *buf, size_t len)
{
	struct sockaddr_nl to = { .nl_family = AF_NETLINK, .nl_pid = port, .nl_groups = 0 };
	if (sendto(fd, buf, len, 0, (struct sockaddr *)&to, sizeof to) < 0)
		return -1;
	st.dgrams_sent++;
	return 0;
}

static size_t encode(uint8_t *p, uint8_t type, uint16_t flags, uint32_t seq, uint32_t ack,
		     uint32_t arg, const uint8_t *body, size_t blen)
{
	size_t len = HDR + blen;
	put32(p, (uint32_t)len);
	put16(p + 4, NLMSG_DONE);
	put16(p + 6, 0);
	put32(p + 8, seq);           /* nlmsg_seq: copy of cn_msg.seq */
	put32(p + 12, my_port);
	put32(p + 16, o.ch_idx);
	put32(p + 20, o.ch_val);
	put32(p + 24, seq);
	put32(p + 28, ack);
	put16(p + 32, (uint16_t)(12 + blen));
	put16(p + 34, 0);
	p[36] = 1;                   /* version */
	p[37] = type;
	put16(p + 38, flags);
	put32(p + 40, 0);
	put32(p + 44, arg);
	if (blen)
		memcpy(p + 48, body, blen);
	put32(p + 40, frame_crc(p));
	return len;
}

/* -bad-crc N: every Nth frame is damaged after its CRC was computed: the
 * CRC itself, a body byte or the DSN, in turn. */
static void maybe_corrupt(uint8_t *f, size_t blen)
{
	static unsigned long long n;
	if (o.bad_crc <= 0 || ++n % (unsigned long long)o.bad_crc)
		return;
	unsigned long long k = st.corrupted++ % 3;
	if (k == 0)
		f[40] ^= 0x01;                /* the CRC */
	else if (k == 1 && blen)
		f[48 + blen / 2] ^= 0x80;     /* a body byte */
	else
		f[24] ^= 0x02;                /* the DSN (cn_msg.seq) */
}

static int flush(void)
{
	if (!olen)
		return 1;
	if (opending && now < oretry_at)
		return 0;
	if (!opending && lose()) {
		st.lost_tx++;
		olen = 0;
		return 1;
	}
	if (send_dgram(peer_port, obuf, olen) == 0) {
		olen = 0;
		opending = 0;
		oretry_wait = 0;
		return 1;
	}
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
		/* The peer's socket is full: keep the datagram, retry later. */
		st.eagain++;
		opending = 1;
		oretry_wait = oretry_wait ? min64(2 * oretry_wait, 20000) : 100;
		oretry_at = now + oretry_wait;
		return 0;
	}
	if (errno == ECONNREFUSED) { /* no socket holds the peer's port */
		olen = 0;
		opending = 0;
		session_end("gone", S_DONE, 0);
		return 0;
	}
	die("sendto");
	return 0;
}

/* put_frame appends a frame for the peer to the output datagram. */
static int put_frame(uint8_t type, uint16_t flags, uint32_t seq, uint32_t ack, uint32_t arg,
		     const uint8_t *body, size_t blen)
{
	size_t off = align4(olen), len = HDR + blen;
	if (olen && off + len > ocap) {
		if (!flush())
			return 0;
		off = 0;
	}
	memset(obuf + olen, 0, off - olen); /* padding */
	encode(obuf + off, type, flags, seq, ack, arg, body, blen);
	maybe_corrupt(obuf + off, blen);
	olen = off + len;
	return 1;
}

/* rst_to answers a frame with RST at once, in a datagram of its own. */
static void rst_to(uint32_t port, uint32_t seq, uint32_t ack, uint32_t reason, int limited)
{
	uint8_t f[HDR];
	if (limited) {
		rst_tokens = rst_tokens + (now - rst_refill) / 1000.0;
		if (rst_tokens > 100)
			rst_tokens = 100;
		rst_refill = now;
		if (rst_tokens < 1)
			return;
		rst_tokens--;
	}
	encode(f, T_RST, 0, seq, ack, reason, NULL, 0);
	st.rsts_sent++;
	dbg("RST %u to port %u seq %u ack %u", reason, port, seq, ack);
	if (lose()) {
		st.lost_tx++;
		return;
	}
	send_dgram(port, f, sizeof f); /* best effort: a lost RST is answered again */
}

static void send_syn(uint8_t type, uint32_t seq, uint32_t ack)
{
	uint8_t b[SYN_LEN];
	put32(b, my_epoch);
	put32(b + 4, my_isn);
	put32(b + 8, o.syn_window >= 0 ? (uint32_t)o.syn_window : o.window);
	put32(b + 12, MAX_MESSAGE);
	put32(b + 16, MAX_DATAGRAM);
	put_frame(type, 0, seq, ack, 0, b, sizeof b);
}

static void send_ack(void)
{
	uint8_t b[ACK_FIXED + 8 * SEND_RANGES];
	uint16_t n = 0, flags = 0;
	put32(b, rcv_nxt + o.window); /* limit: we read at once, the window is the credit */
	put32(b + 4, dup_valid ? dup_dsn : 0);
	/* SACK ranges above the cumulative ack (§6.4): first the one holding
	 * the most recently received DSN, then the others from the highest
	 * down; the lowest are left out when they do not fit. */
	uint32_t first = 0;
	int has_first = 0;
	if (slt(rcv_nxt, rcv_last) && slt(rcv_last, rcv_hi) && rcv[rcv_last & rcv_mask].present) {
		uint32_t lo = rcv_last, up = rcv_last;
		while (slt(rcv_nxt, lo - 1) && rcv[(lo - 1) & rcv_mask].present)
			lo--;
		while (slt(up + 1, rcv_hi) && rcv[(up + 1) & rcv_mask].present)
			up++;
		put32(b + ACK_FIXED, lo);
		put32(b + ACK_FIXED + 4, up);
		first = lo;
		has_first = n = 1;
	}
	for (uint32_t d = rcv_hi; slt(rcv_nxt, d) && n < SEND_RANGES;) {
		while (slt(rcv_nxt, d) && !rcv[(d - 1) & rcv_mask].present)
			d--;
		if (!slt(rcv_nxt, d))
			break;
		uint32_t end = d - 1;
		while (slt(rcv_nxt, d) && rcv[(d - 1) & rcv_mask].present)
			d--;
		if (has_first && d == first)
			continue; /* already first */
		put32(b + ACK_FIXED + 8 * n, d);
		put32(b + ACK_FIXED + 8 * n + 4, end);
		n++;
	}
	put16(b + 8, n);
	put16(b + 10, 0);
	if (dup_valid)
		flags |= F_DUP_VALID;
	if (status_due)
		flags |= F_STATUS_REQ;
	if (o.verbose > 1)
		dbg("ACK cum %u limit %u ranges %u%s%s", rcv_nxt, rcv_nxt + o.window, n,
		    dup_valid ? " dup" : "", status_due ? " status_req" : "");
	if (put_frame(T_ACK, flags, ack_seq, peer_epoch + 1, rcv_nxt, b, ACK_FIXED + 8 * n))
		ack_due = dup_valid = status_due = 0;
}

/* -bad-epoch N: frames of this session with a wrong epoch, which the
 * peer must drop: a DATA with a bogus message at the DSN we send next,
 * an ACK acknowledging more than we hold, an RST. */
static void forge(uint32_t dsn)
{
	uint8_t junk[64], b[ACK_FIXED];
	memset(junk, 0xEE, sizeof junk);
	memset(junk, 0xFF, 8);
	switch (st.forged++ % 3) {
	case 0:
		put_frame(T_DATA, 0, dsn, my_epoch ^ 0x5a5a0001u, 0, junk, sizeof junk);
		break;
	case 1:
		put32(b, rcv_nxt + o.window);
		put32(b + 4, 0);
		put32(b + 8, 0);
		put_frame(T_ACK, 0, rcv_nxt - 1, (peer_epoch + 1) ^ 0x00010000u, rcv_hi + 1, b, sizeof b);
		break;
	default:
		put_frame(T_RST, 0, rcv_nxt - 1, (peer_epoch + 1) ^ 0x00020000u, RST_ABORT, NULL, 0);
		break;
	}
}

static void arm_rto(void)
{
	rto_deadline = now + min64(rto << backoff, 1000000);
}

static int send_slot(uint32_t dsn)
{
	struct slot *s = &snd[dsn & snd_mask];
	int first = s->xmits == 0;
	if (first && o.bad_epoch > 0 && s->type == T_DATA && !(s->flags & F_FIN) &&
	    (dsn - my_isn) % (uint32_t)o.bad_epoch == (uint32_t)o.bad_epoch - 1)
		forge(dsn);
	int ok = s->type == T_REPLY
		? put_frame(T_REPLY, s->flags, s->rseq, peer_epoch + 1, dsn, s->data, s->len)
		: put_frame(T_DATA, s->flags, dsn, my_epoch, 0, s->data, s->len);
	if (!ok)
		return 0;
	if (!first)
		st.retransmits++;
	s->xmits++;
	s->tx_at = now;
	s->tx_no = ++tx_counter;
	if (s->need_tx) {
		s->need_tx = 0;
		need_tx_count--;
	}
	if (!rto_deadline)
		arm_rto();
	return 1;
}

static void mark_lost(struct slot *s)
{
	if (!s->need_tx) {
		s->need_tx = 1;
		need_tx_count++;
	}
}

/* Takes the next DSN for a frame of our stream (data is copied). */
static void new_slot(uint8_t type, uint16_t flags, uint32_t rseq, const uint8_t *data, size_t len, int is_msg)
{
	struct slot *s = &snd[snd_nxt & snd_mask];
	memset(s, 0, sizeof *s);
	s->type = type;
	s->flags = flags;
	s->rseq = rseq;
	s->len = (uint16_t)len;
	s->is_msg = (uint8_t)is_msg;
	if (len) {
		s->data = malloc(len);
		if (!s->data)
			die("malloc");
		memcpy(s->data, data, len);
	}
	s->need_tx = 1;
	need_tx_count++;
	snd_nxt++;
}

static int room(void)
{
	return snd_nxt - snd_una < snd_win && slt(snd_nxt, snd_limit);
}

/* Queues the application's next item if the window and limit allow. */
static int next_item(void)
{
	uint8_t buf[MAX_MESSAGE];
	if (!room())
		return 0;
	if (rq_head) { /* replies first: the peer waits for them */
		struct pending_reply *r = rq_head;
		rq_head = r->next;
		if (!rq_head)
			rq_tail = NULL;
		new_slot(T_REPLY, 0, r->rseq, r->data, r->len, 0);
		free(r->data);
		free(r);
		st.answered++;
		return 1;
	}
	if (fin_queued || state != S_OPEN)
		return 0;
	if (msgs_queued < o.send_n) {
		size_t len = msg_len((uint64_t)msgs_queued);
		fill_msg(buf, len, (uint64_t)msgs_queued);
		new_slot(T_DATA, 0, 0, buf, len, 1);
		msgs_queued++;
		st.sent++;
		return 1;
	}
	if (reqs_queued < o.req_n) {
		uint64_t idx = (uint64_t)reqs_queued | REQ_BIT;
		size_t len = msg_len(idx);
		fill_msg(buf, len, idx);
		req_dsn[reqs_queued] = snd_nxt;
		new_slot(T_DATA, F_REQUEST, 0, buf, len, 1);
		reqs_queued++;
		st.requests++;
		return 1;
	}
	return 0;
}

static void queue_fin(void)
{
	if (fin_queued || !room())
		return;
	fin_dsn = snd_nxt;
	new_slot(T_DATA, F_FIN, 0, NULL, 0, 0);
	fin_queued = 1;
	dbg("FIN queued at DSN %u", fin_dsn);
}

/* The transmit phase of a loop turn: ACK, retransmissions, new frames. */
static void transmit(void)
{
	if (opending && !flush())
		return;
	if (state != S_OPEN && state != S_TIME_WAIT)
		goto out;
	if (ack_due)
		send_ack();
	if (state == S_OPEN) {
		for (uint32_t d = snd_una; need_tx_count && d != snd_nxt; d++)
			if (snd[d & snd_mask].need_tx && !send_slot(d))
				goto out;
		while (next_item())
			if (!send_slot(snd_nxt - 1))
				goto out;
		if (close_deadline && !fin_queued) {
			queue_fin();
			if (fin_queued)
				send_slot(fin_dsn);
		}
	}
out:
	flush();
}

/* ---- receiving ---- */

static void rtt_sample(int64_t r)
{
	r = max64(r, 1);
	if (!srtt) {
		srtt = r;
		rttvar = r / 2;
	} else {
		rttvar = (3 * rttvar + (srtt > r ? srtt - r : r - srtt)) / 4;
		srtt = (7 * srtt + r) / 8;
	}
	rto = srtt + max64(4 * rttvar, 1000);
	rto = rto < 5000 ? 5000 : rto > 1000000 ? 1000000 : rto;
}

/* Marks s delivered to the peer (cumulatively or SACKed) for RACK. */
static void rack_note(struct slot *s)
{
	if (s->tx_no > rack_tx_no) {
		rack_tx_no = s->tx_no;
		rack_tx_at = s->tx_at;
	}
}

static void free_slot(struct slot *s)
{
	if (s->need_tx) {
		s->need_tx = 0;
		need_tx_count--;
	}
	free(s->data);
	s->data = NULL;
}

/* STATUS_REQ (§4.6): the peer overran. Resend what it has not acknowledged
 * and was last sent at least a round trip ago, at most once per round trip. */
static void status_repair(void)
{
	int64_t rtt = srtt ? srtt : rto;
	if (now < next_repair)
		return;
	next_repair = now + rtt;
	for (uint32_t d = snd_una; d != snd_nxt; d++) {
		struct slot *s = &snd[d & snd_mask];
		if (!s->sacked && s->xmits && s->tx_at <= now - rtt)
			mark_lost(s);
	}
}

static void on_ack(const uint8_t *f, const uint8_t *body, size_t blen)
{
	uint32_t cum = get32(f + 44), n, hi;
	uint16_t flags = get16(f + 38);
	int64_t sample = -1;
	if (blen < ACK_FIXED || (n = get16(body + 8)) > MAX_RANGES || blen < ACK_FIXED + 8 * n) {
		st.malformed++;
		return;
	}
	if (slt(snd_nxt, cum)) { /* acknowledges what we never sent */
		st.malformed++;
		return;
	}
	int stale = slt(cum, snd_una), advanced = 0;
	while (slt(snd_una, cum)) {
		struct slot *s = &snd[snd_una & snd_mask];
		if (s->xmits == 1 && !s->sacked)
			sample = now - s->tx_at;
		rack_note(s);
		if (s->is_msg)
			st.acked++;
		free_slot(s);
		snd_una++;
		advanced = 1;
	}
	hi = snd_una - 1;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t a = get32(body + ACK_FIXED + 8 * i), b = get32(body + ACK_FIXED + 8 * i + 4);
		uint32_t span = snd_nxt - snd_una;
		if (slt(b, a))
			continue;
		uint32_t lo = a - snd_una, up = b - snd_una; /* offsets from una, clamped */
		if (lo > up)
			lo = 0;
		if (lo >= span)
			continue;
		if (up >= span)
			up = span - 1;
		for (uint32_t d = snd_una + lo; d != snd_una + up + 1; d++) {
			struct slot *s = &snd[d & snd_mask];
			if (!s->sacked) {
				s->sacked = 1;
				if (s->xmits == 1)
					sample = now - s->tx_at;
				if (s->need_tx) {
					s->need_tx = 0;
					need_tx_count--;
				}
			}
			rack_note(s);
		}
		if (slt(hi, snd_una + up))
			hi = snd_una + up;
	}
	if (!stale) {
		uint32_t limit = get32(body);
		snd_limit = slt(limit, cum) ? cum : limit;
	}
	if (sample >= 0)
		rtt_sample(sample);
	if (advanced || sample >= 0)
		probes = 0; /* something was acknowledged */
	if (advanced || snd_una == snd_nxt) {
		if (advanced)
			backoff = 0;
		rto_deadline = 0;
		if (snd_una != snd_nxt)
			arm_rto();
	}
	/* Loss detection: 3 DSNs later acknowledged, or (RACK) a frame sent
	 * later was acknowledged and this one is older than the reordering
	 * window. Only frames sent before the newest acknowledged one. */
	int64_t reo = max64(srtt / 4, 250);
	for (uint32_t d = snd_una; d != snd_nxt && !slt(hi, d); d++) {
		struct slot *s = &snd[d & snd_mask];
		if (s->sacked || s->need_tx || !s->xmits || s->tx_no >= rack_tx_no)
			continue;
		if ((int32_t)(hi - d) >= 3 || rack_tx_at - s->tx_at > reo)
			mark_lost(s);
	}
	if (flags & F_STATUS_REQ) {
		status_repair();
		if (!ack_due) {
			ack_due = 1;
			ack_seq = rcv_nxt - 1;
		}
	}
	if (fin_queued && !fin_acked && slt(fin_dsn, snd_una)) {
		fin_acked = 1;
		session_end("closed", S_TIME_WAIT, 0);
	}
}

/* Hands one message of the peer's stream, in order, to the application. */
static void deliver(struct rslot *r, uint32_t dsn)
{
	if (r->type == T_DATA && (r->flags & F_FIN)) {
		peer_fin = 1;
		session_end("peer_closed", S_TIME_WAIT, 0);
		return;
	}
	if (r->type == T_REPLY) {
		/* Find our request by its DSN: requests took increasing DSNs. */
		long long lo = 0, hi = reqs_queued - 1, k = -1;
		while (lo <= hi) {
			long long mid = (lo + hi) / 2;
			uint32_t off = req_dsn[mid] - req_dsn[0], want = r->rseq - req_dsn[0];
			if (off == want) { k = mid; break; }
			if (off < want) lo = mid + 1; else hi = mid - 1;
		}
		uint64_t idx = (uint64_t)k | REQ_BIT;
		if (k < 0 || req_got[k] || r->len != msg_len(idx) || !check_msg(r->data, r->len, idx)) {
			st.errors++;
			fprintf(stderr, "cpeer: bad reply at DSN %u for request DSN %u\n", dsn, r->rseq);
			return;
		}
		req_got[k] = 1;
		st.replies++;
		return;
	}
	if (r->flags & F_REQUEST && o.echo) {
		struct pending_reply *p = calloc(1, sizeof *p);
		if (!p || (r->len && !(p->data = malloc(r->len))))
			die("malloc");
		if (r->len)
			memcpy(p->data, r->data, r->len);
		p->len = r->len;
		p->rseq = dsn;
		if (rq_tail) rq_tail->next = p; else rq_head = p;
		rq_tail = p;
		return;
	}
	if (check_msg(r->data, r->len, st.received)) {
		st.verified++;
	} else {
		if (st.errors < 10)
			fprintf(stderr, "cpeer: message %llu (DSN %u, %u bytes) does not verify\n",
				st.received, dsn, r->len);
		st.errors++;
	}
	st.received++;
}

static void on_data(uint32_t dsn, const uint8_t *f, const uint8_t *body, size_t blen)
{
	uint8_t type = f[37];
	uint16_t flags = get16(f + 38);
	uint32_t off = dsn - rcv_nxt;
	ack_due = 1;
	ack_seq = dsn;
	if (slt(dsn, rcv_nxt) || (off < o.window && rcv[dsn & rcv_mask].present)) {
		st.dups++;
		dup_valid = 1;
		dup_dsn = dsn;
		return;
	}
	if (blen > MAX_MESSAGE) { /* it could never be acknowledged: RST 6 */
		st.malformed++;
		rst_to(peer_port, rcv_nxt - 1, peer_epoch + 1, RST_PROTOCOL, 0);
		session_end("protocol", S_RESET_WAIT, RST_PROTOCOL);
		return;
	}
	if (off >= o.window) { /* beyond the credit we advertised */
		st.malformed++;
		return;
	}
	if (type == T_DATA && (flags & F_FIN))
		blen = 0; /* a FIN's body is ignored */
	struct rslot *r = &rcv[dsn & rcv_mask];
	r->present = 1;
	r->type = type;
	r->flags = flags;
	r->rseq = get32(f + 24);
	r->len = (uint16_t)blen;
	r->data = NULL;
	if (blen) {
		r->data = malloc(blen);
		if (!r->data)
			die("malloc");
		memcpy(r->data, body, blen);
	}
	if (!slt(dsn, rcv_hi))
		rcv_hi = dsn + 1;
	rcv_last = dsn;
	while (rcv[rcv_nxt & rcv_mask].present && !peer_fin) {
		r = &rcv[rcv_nxt & rcv_mask];
		deliver(r, rcv_nxt);
		free(r->data);
		r->data = NULL;
		r->present = 0;
		rcv_nxt++;
	}
	if (peer_fin) { /* anything of the stream after the FIN is dropped */
		for (uint32_t d = rcv_nxt; slt(d, rcv_hi); d++) {
			free(rcv[d & rcv_mask].data);
			rcv[d & rcv_mask].data = NULL;
			rcv[d & rcv_mask].present = 0;
		}
		rcv_hi = rcv_nxt;
	}
}

static void establish(const uint8_t *syn)
{
	peer_epoch = get32(syn);
	rcv_nxt = rcv_hi = get32(syn + 4);
	peer_window = get32(syn + 8);
	peer_max_msg = get32(syn + 12);
	peer_max_dgram = get32(syn + 16);
	snd_win = o.window < peer_window ? o.window : peer_window;
	snd_una = snd_nxt = my_isn;
	snd_limit = my_isn + snd_win; /* until the first ACK says otherwise */
	ocap = o.dgram < peer_max_dgram ? o.dgram : peer_max_dgram;
	state = S_OPEN;
	last_heard = now;
	dbg("open: peer port %u epoch %u isn %u window %u max_message %u max_datagram %u",
	    peer_port, peer_epoch, rcv_nxt, peer_window, peer_max_msg, peer_max_dgram);
	if ((o.send_n || o.req_n) && (uint32_t)o.size > peer_max_msg && !o.oversize) { /* §6.3 */
		fprintf(stderr, "cpeer: -size %d is above the peer's max_message %u\n", o.size, peer_max_msg);
		rst_to(peer_port, rcv_nxt - 1, peer_epoch + 1, RST_ABORT, 0);
		session_end("too_large", S_DONE, 0);
	}
}

static int syn_valid(const uint8_t *syn)
{
	return get32(syn) != 0 && get32(syn + 8) != 0 && get32(syn + 12) != 0 &&
	       get32(syn + 16) >= HDR + SYN_LEN;
}

static void on_syn(uint32_t from, const uint8_t *f, const uint8_t *body, size_t blen)
{
	uint32_t seq = get32(f + 24), ack = get32(f + 28);
	if (blen < SYN_LEN || get32(body) != ack || ack == 0) {
		st.malformed++;
		return;
	}
	if (from == peer_port && state != S_LISTEN) {
		if (state == S_SYN_SENT) { /* simultaneous open */
			if (!syn_valid(body)) {
				rst_to(from, seq, ack + 1, RST_BAD_HANDSHAKE, 0);
				session_end("reset", S_DONE, 0);
				return;
			}
			establish(body);
			send_syn(T_SYNACK, seq, ack + 1);
		} else if (ack == peer_epoch && state == S_OPEN) {
			last_heard = now;
			send_syn(T_SYNACK, seq, ack + 1); /* our SYNACK was lost */
		} else if (ack == peer_epoch && state == S_RESET_WAIT) {
			rst_to(from, seq, ack + 1, rw_reason, 0);
		} else if (ack != peer_epoch && state == S_OPEN) {
			/* Only one socket holds a port: the old peer is gone. */
			session_end("reset", S_DONE, 0);
			rst_to(from, seq, ack + 1, RST_REFUSED, 1);
		} else if (ack != peer_epoch) {
			rst_to(from, seq, ack + 1, RST_REFUSED, 1); /* we serve one session */
		}
		return;
	}
	if (state != S_LISTEN) { /* we serve one session */
		rst_to(from, seq, ack + 1, RST_REFUSED, 1);
		return;
	}
	if (!syn_valid(body)) {
		rst_to(from, seq, ack + 1, RST_BAD_HANDSHAKE, 1);
		return;
	}
	peer_port = from;
	my_epoch = 0;
	while (!my_epoch)
		my_epoch = random32();
	my_isn = random32();
	establish(body);
	send_syn(T_SYNACK, seq, ack + 1);
}

static void on_frame(uint32_t from, const uint8_t *f)
{
	uint8_t type = f[37];
	uint16_t flags = get16(f + 38);
	uint32_t seq = get32(f + 24), ack = get32(f + 28), arg = get32(f + 44);
	const uint8_t *body = f + HDR;
	size_t blen = get16(f + 32) - 12;

	if (get32(f + 16) != o.ch_idx || get32(f + 20) != o.ch_val) {
		if (type == T_DATA || type == T_PING)
			rst_to(from, seq, ack + 1, RST_NO_SESSION, 1); /* no session on that channel */
		return;
	}
	if (type == T_SYN) {
		on_syn(from, f, body, blen);
		return;
	}
	if (from != peer_port || state == S_LISTEN || state == S_DONE) {
		if (type == T_DATA || type == T_PING)
			rst_to(from, seq, ack + 1, RST_NO_SESSION, 1);
		return;
	}
	switch (state) {
	case S_SYN_SENT:
		if (type == T_SYNACK && seq == my_isn && ack == my_epoch + 1 && blen >= SYN_LEN) {
			if (!syn_valid(body)) {
				rst_to(from, seq, get32(body) + 1, RST_BAD_HANDSHAKE, 0);
				session_end("bad_handshake", S_DONE, 0);
			} else {
				establish(body);
			}
		} else if (type == T_RST && ack == my_epoch + 1) {
			session_end(arg == RST_REFUSED ? "refused" : "reset", S_DONE, 0);
		} /* DATA and PING before our SYNACK: dropped silently */
		return;
	case S_RESET_WAIT:
		if ((type == T_DATA || type == T_PING) && ack == peer_epoch)
			rst_to(from, seq, ack + 1, rw_reason, 1);
		return;
	default:
		break;
	}
	/* Originated frames carry the peer's epoch, answers our epoch + 1. */
	if (type == T_DATA || type == T_PING) {
		if (ack != peer_epoch) {
			st.epoch_bad++;
			rst_to(from, seq, ack + 1, RST_NO_SESSION, 1);
			return;
		}
	} else if (ack != my_epoch + 1) {
		st.epoch_bad++;
		return;
	}
	last_heard = now;
	if (state == S_TIME_WAIT) {
		if (type == T_DATA && (flags & F_FIN) && !peer_fin && seq == rcv_nxt) {
			rcv_nxt++; /* the peer's FIN overtaken by the ACK of ours */
			peer_fin = 1;
		}
		if (type == T_DATA || type == T_REPLY || type == T_PING || (flags & F_STATUS_REQ)) {
			ack_due = 1;
			ack_seq = type == T_REPLY ? arg : seq;
		}
		return;
	}
	switch (type) {
	case T_DATA:
		on_data(seq, f, body, blen);
		if (peer_fin && fin_queued && !fin_acked)
			dbg("simultaneous close");
		break;
	case T_REPLY:
		on_data(arg, f, body, blen);
		break;
	case T_ACK:
		on_ack(f, body, blen);
		break;
	case T_PING:
		ack_due = 1;
		ack_seq = seq;
		if (flags & F_STATUS_REQ)
			status_repair();
		break;
	case T_RST:
		dbg("RST reason %u", arg);
		session_end("reset", S_RESET_WAIT, RST_NO_SESSION);
		break;
	case T_SYNACK:
		if (blen >= SYN_LEN && get32(body) != peer_epoch) {
			/* The peer answered a late SYN with a new session: ours is gone there. */
			rst_to(from, seq, get32(body) + 1, RST_NO_SESSION, 0);
			session_end("reset", S_RESET_WAIT, RST_NO_SESSION);
		}
		break;
	default:
		break; /* unknown types are dropped */
	}
}

static void on_datagram(uint32_t from, const uint8_t *buf, size_t n)
{
	size_t off = 0;
	st.dgrams_recv++;
	if (lose()) {
		st.lost_rx++;
		if (o.verbose > 1)
			dbg("dropped a datagram of %zu bytes", n);
		return;
	}
	if (o.verbose > 1 && n >= HDR)
		dbg("datagram of %zu bytes: first frame type %u seq %u arg %u", n, buf[37], get32(buf + 24), get32(buf + 44));
	while (off + NL_HDR <= n) {
		const uint8_t *f = buf + off;
		uint32_t len = get32(f);
		if (len < 36 || len > n - off || 36 + (uint32_t)get16(f + 32) > len) {
			st.malformed++; /* drop the rest of the datagram */
			return;
		}
		if (get16(f + 4) != NLMSG_DONE || get16(f + 32) < 12 || f[36] != 1) {
			st.malformed++;
		} else if (get32(f + 40) != frame_crc(f)) {
			st.crc_bad++; /* dropped, never acknowledged */
		} else {
			on_frame(from, f);
		}
		off += align4(len);
	}
}

static void read_socket(void)
{
	static uint8_t buf[MAX_DATAGRAM + 64];
	for (int i = 0; i < 32; i++) {
		struct sockaddr_nl from;
		struct iovec iov = { buf, sizeof buf };
		struct msghdr m = { .msg_name = &from, .msg_namelen = sizeof from, .msg_iov = &iov, .msg_iovlen = 1 };
		ssize_t n = recvmsg(fd, &m, MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
				return;
			if (errno == ENOBUFS) { /* overrun: ask the peer to repair at once */
				st.status_reqs++;
				if (state == S_OPEN) {
					status_due = ack_due = 1;
					ack_seq = rcv_nxt - 1;
				}
				continue;
			}
			die("recvmsg");
		}
		now = mono();
		if ((m.msg_flags & MSG_TRUNC) || from.nl_groups != 0)
			continue; /* truncated, or a multicast */
		on_datagram(from.nl_pid, buf, (size_t)n);
		if (ack_due && (state == S_OPEN || state == S_TIME_WAIT))
			send_ack(); /* one ACK per datagram (§6.4), coalesced in obuf */
	}
}

/* ---- timers and the application's progress ---- */

static int work_done(void)
{
	return msgs_queued == o.send_n && reqs_queued == o.req_n && (long long)st.replies == o.req_n &&
	       (o.expect_n < 0 || (long long)st.received >= o.expect_n);
}

static void timers(void)
{
	if (state == S_SYN_SENT) {
		if (now >= hs_deadline) {
			session_end("timeout", S_DONE, 0);
		} else if (now >= syn_next) {
			send_syn(T_SYN, my_isn, my_epoch);
			syn_next = now + syn_wait;
			syn_wait = min64(2 * syn_wait, 200000);
		}
		return;
	}
	if ((state == S_TIME_WAIT || state == S_RESET_WAIT) && now >= wait_until) {
		state = S_DONE;
		return;
	}
	if (state != S_OPEN)
		return;
	if (now - last_heard >= 5 * o.keepalive) {
		session_end("gone", S_RESET_WAIT, RST_NO_SESSION);
		return;
	}
	if (now - last_heard >= o.keepalive && now - last_ping >= o.keepalive) {
		put_frame(T_PING, 0, snd_nxt, my_epoch, 0, NULL, 0); /* keepalive */
		last_ping = now;
		st.pings++;
	}
	if (rto_deadline && now >= rto_deadline) {
		if (snd_una != snd_nxt && probes++ == 0) {
			/* §7.1: the first expiry probes (a slow receiver answers
			 * with an ACK covering everything), later ones retransmit. */
			put_frame(T_PING, 0, snd_nxt, my_epoch, 0, NULL, 0);
			st.pings++;
		} else if (snd_una != snd_nxt) {
			for (uint32_t d = snd_una; d != snd_nxt; d++)
				if (!snd[d & snd_mask].sacked || backoff >= 2)
					mark_lost(&snd[d & snd_mask]);
			st.rtos++;
		} else {
			/* Nothing in flight but blocked by the peer's limit: probe it. */
			put_frame(T_PING, 0, snd_nxt, my_epoch, 0, NULL, 0);
			st.pings++;
		}
		if (backoff < 8)
			backoff++;
		arm_rto();
	}
	if (!rto_deadline && snd_una == snd_nxt && !slt(snd_nxt, snd_limit) &&
	    (rq_head || msgs_queued < o.send_n || reqs_queued < o.req_n || (close_deadline && !fin_queued)))
		arm_rto(); /* window probe */
	if (close_deadline && now >= close_deadline) {
		rst_to(peer_port, rcv_nxt - 1, peer_epoch + 1, RST_ABORT, 0);
		session_end("timeout", S_RESET_WAIT, RST_ABORT);
		return;
	}
	if (work_done() && !rq_head) {
		if (!work_done_at)
			work_done_at = now;
		if (now - work_done_at < (int64_t)(o.idle_s * 1e6))
			return;
		if (o.do_close && !close_deadline) {
			close_deadline = now + 5 * o.keepalive;
			dbg("closing");
		}
		if (o.do_abort && snd_una == snd_nxt) {
			rst_to(peer_port, rcv_nxt - 1, peer_epoch + 1, RST_ABORT, 0);
			session_end("aborted", S_RESET_WAIT, RST_ABORT);
		}
	}
}

static int64_t next_deadline(void)
{
	int64_t t = now + 1000000;
	if (olen && opending)
		t = min64(t, oretry_at);
	if (state == S_SYN_SENT)
		return min64(t, min64(syn_next, hs_deadline));
	if (state == S_TIME_WAIT || state == S_RESET_WAIT)
		return min64(t, wait_until);
	if (state != S_OPEN)
		return t;
	t = min64(t, last_heard + 5 * o.keepalive);
	t = min64(t, max64(last_heard, last_ping) + o.keepalive);
	if (rto_deadline)
		t = min64(t, rto_deadline);
	if (close_deadline)
		t = min64(t, close_deadline);
	if (work_done_at && o.idle_s > 0)
		t = min64(t, work_done_at + (int64_t)(o.idle_s * 1e6));
	return t;
}

/* ---- main ---- */

static void usage(void)
{
	fprintf(stderr,
		"usage: cpeer [-bind PORT] (-accept | -dial PORT) [-channel IDX:VAL]\n"
		"             [-send N] [-size B] [-vary] [-expect N] [-requests N] [-echo]\n"
		"             [-close | -abort] [-idle S] [-want END] [-loss P -seed S]\n"
		"             [-bad-crc N] [-bad-epoch N] [-window W] [-dgram BYTES]\n"
		"             [-keepalive MS] [-rcvbuf BYTES] [-max-time S] [-v | -vv]\n"
		"  for tests of the peer: [-oversize] [-syn-window N] [-examples]\n");
	exit(2);
}

/* -examples: encode the worked examples of PROTOCOL.md §14 with this
 * peer's own encoder and print each as "name hex", so that a test can
 * check that the C peer and the document (and so the Go encoder, which
 * the document is checked against) agree byte for byte. The frames are
 * padded to 4 bytes, as in the document. */
static void print_example(const char *name, uint32_t port, uint8_t type, uint16_t flags,
			  uint32_t seq, uint32_t ack, uint32_t arg, const uint8_t *body, size_t blen)
{
	uint8_t f[HDR + 64] = { 0 };
	my_port = port;
	size_t len = align4(encode(f, type, flags, seq, ack, arg, body, blen));
	printf("%s ", name);
	for (size_t i = 0; i < len; i++)
		printf("%02x", f[i]);
	printf("\n");
}

static void syn_body(uint8_t *b, uint32_t epoch, uint32_t isn, uint32_t win, uint32_t msg, uint32_t dgram)
{
	put32(b, epoch);
	put32(b + 4, isn);
	put32(b + 8, win);
	put32(b + 12, msg);
	put32(b + 16, dgram);
}

static void examples(void)
{
	const uint32_t E = 0xAABBCCDDu, I = 0x01020304u, P = 0x11223344u, Q = 0x55667788u;
	uint8_t b[ACK_FIXED + 8];
	o.ch_idx = DEFAULT_IDX;
	o.ch_val = 1;
	syn_body(b, E, I, 4096, 16384, 65536);
	print_example("syn", 0x1234, T_SYN, 0, I, E, 0, b, SYN_LEN);
	syn_body(b, P, Q, 1024, 4096, 8192);
	print_example("synack", 0x5678, T_SYNACK, 0, I, E + 1, 0, b, SYN_LEN);
	print_example("data", 0x1234, T_DATA, 0, I, E, 0, (const uint8_t *)"hello", 5);
	print_example("request", 0x1234, T_DATA, F_REQUEST, I + 1, E, 0, (const uint8_t *)"time?", 5);
	print_example("reply", 0x5678, T_REPLY, 0, I + 1, E + 1, Q, (const uint8_t *)"noon", 4);
	put32(b, I + 2 + 1024);      /* limit */
	put32(b + 4, I + 1);         /* dup */
	put16(b + 8, 1);             /* one SACK range */
	put16(b + 10, 0);
	put32(b + 12, I + 4);
	put32(b + 16, I + 4);
	print_example("ack", 0x5678, T_ACK, F_DUP_VALID, I + 4, E + 1, I + 2, b, ACK_FIXED + 8);
	print_example("ping", 0x1234, T_PING, F_STATUS_REQ, I + 5, E, 0, NULL, 0);
	print_example("fin", 0x1234, T_DATA, F_FIN, I + 5, E, 0, NULL, 0);
	print_example("rst", 0x1234, T_RST, 0, Q, P + 1, RST_ABORT, NULL, 0);
}

static void parse_args(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(name) (!strcmp(a, name) && (v || (usage(), 0)) && ++i)
		if (!strcmp(a, "-examples")) o.examples = 1;
		else if (!strcmp(a, "-accept")) o.accept = 1;
		else if (!strcmp(a, "-echo")) o.echo = 1;
		else if (!strcmp(a, "-vary")) o.vary = 1;
		else if (!strcmp(a, "-close")) o.do_close = 1;
		else if (!strcmp(a, "-abort")) o.do_abort = 1;
		else if (!strcmp(a, "-v")) o.verbose = o.verbose > 1 ? o.verbose : 1;
		else if (!strcmp(a, "-vv")) o.verbose = 2;
		else if (ARG("-bind")) o.bind_port = (uint32_t)strtoul(v, NULL, 0);
		else if (ARG("-dial")) o.dial_port = (uint32_t)strtoul(v, NULL, 0);
		else if (ARG("-channel")) {
			char *end;
			o.ch_idx = (uint32_t)strtoul(v, &end, 0);
			if (*end != ':')
				usage();
			o.ch_val = (uint32_t)strtoul(end + 1, NULL, 0);
		}
		else if (ARG("-send")) o.send_n = atoll(v);
		else if (ARG("-size")) o.size = atoi(v);
		else if (ARG("-expect")) o.expect_n = atoll(v);
		else if (ARG("-requests")) o.req_n = atoll(v);
		else if (ARG("-idle")) o.idle_s = atof(v);
		else if (ARG("-want")) o.want = v;
		else if (ARG("-loss")) o.loss = atof(v);
		else if (ARG("-seed")) o.seed = strtoull(v, NULL, 0);
		else if (ARG("-bad-crc")) o.bad_crc = atol(v);
		else if (ARG("-bad-epoch")) o.bad_epoch = atol(v);
		else if (ARG("-window")) o.window = (uint32_t)atol(v);
		else if (ARG("-syn-window")) o.syn_window = atol(v);
		else if (!strcmp(a, "-oversize")) o.oversize = 1;
		else if (ARG("-rcvbuf")) o.rcvbuf = atoi(v);
		else if (ARG("-dgram")) o.dgram = (uint32_t)atol(v);
		else if (ARG("-keepalive")) o.keepalive = atoll(v) * 1000;
		else if (ARG("-max-time")) o.max_time = atof(v);
		else usage();
#undef ARG
	}
	if (o.examples)
		return;
	if (o.accept == !!o.dial_port || (o.do_close && o.do_abort) || o.size < 8 || o.size > MAX_MESSAGE ||
	    o.window < 1 || o.window > (1u << 20) || o.dgram < HDR + (uint32_t)o.size || o.dgram > MAX_DATAGRAM ||
	    o.keepalive <= 0 || o.send_n < 0 || o.req_n < 0)
		usage();
	if (!o.want)
		o.want = o.do_close ? "closed" : o.do_abort ? "aborted" : "peer_closed";
}

static void open_socket(void)
{
	int big = 4 << 20, rb = o.rcvbuf ? o.rcvbuf : big;
	struct sockaddr_nl a = { .nl_family = AF_NETLINK, .nl_pid = o.bind_port };
	socklen_t alen = sizeof a;
	fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_CONNECTOR);
	if (fd < 0)
		die("socket");
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rb, sizeof rb) < 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rb, sizeof rb);
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof big) < 0)
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
	if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0)
		die("bind");
	if (getsockname(fd, (struct sockaddr *)&a, &alen) < 0)
		die("getsockname");
	my_port = a.nl_pid;
}

int main(int argc, char **argv)
{
	parse_args(argc, argv);
	crc_init();
	if (crc_update(0xFFFFFFFFu, (const uint8_t *)"123456789", 9) != ~0xE3069283u) {
		fprintf(stderr, "cpeer: crc32c self-test failed\n");
		return 2;
	}
	if (o.examples) {
		examples();
		return 0;
	}
	rng = o.seed;
	start_us = now = mono();
	uint32_t ring = 1;
	while (ring < o.window)
		ring <<= 1;
	snd = calloc(ring, sizeof *snd);
	rcv = calloc(ring, sizeof *rcv);
	req_dsn = calloc((size_t)o.req_n + 1, sizeof *req_dsn);
	req_got = calloc((size_t)o.req_n + 1, 1);
	if (!snd || !rcv || !req_dsn || !req_got)
		die("calloc");
	snd_mask = rcv_mask = ring - 1;

	open_socket();
	printf("port %u\n", my_port);
	fflush(stdout);

	int64_t deadline = start_us + (int64_t)(o.max_time * 1e6);
	if (o.accept) {
		state = S_LISTEN;
	} else {
		peer_port = o.dial_port;
		while (!my_epoch)
			my_epoch = random32();
		my_isn = random32();
		state = S_SYN_SENT;
		hs_deadline = now + 5000000;
		syn_next = now;
		syn_wait = 1000;
	}
	while (state != S_DONE) {
		now = mono();
		if (now >= deadline) {
			if (state == S_OPEN)
				rst_to(peer_port, rcv_nxt - 1, peer_epoch + 1, RST_ABORT, 0);
			session_end("timeout", S_DONE, 0);
			break;
		}
		int64_t wait = min64(next_deadline(), deadline) - now;
		if (!opending && ((ack_due && (state == S_OPEN || state == S_TIME_WAIT)) ||
				  (need_tx_count && state == S_OPEN)))
			wait = 0;
		struct timespec ts = { (time_t)(max64(wait, 0) / 1000000), (long)(max64(wait, 0) % 1000000) * 1000 };
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (ppoll(&p, 1, &ts, NULL) < 0 && errno != EINTR)
			die("ppoll");
		now = mono();
		if (p.revents & (POLLIN | POLLERR))
			read_socket();
		now = mono();
		timers();
		transmit();
	}

	/* A closer whose peer's FIN came first (simultaneous close) is done
	 * if every message before its own FIN was acknowledged (§4.9). */
	int ended_as_wanted = end_reason && (!strcmp(end_reason, o.want) ||
		(!strcmp(o.want, "closed") && !strcmp(end_reason, "peer_closed")));
	int ok = ended_as_wanted && st.errors == 0 &&
		 (o.expect_n < 0 || (long long)st.received == o.expect_n);
	if (strcmp(o.want, "reset") && strcmp(o.want, "gone") && strcmp(o.want, "timeout"))
		ok = ok && (long long)st.acked == o.send_n + o.req_n && (long long)st.replies == o.req_n;
	const char *result = ok ? "ok" : st.errors ? "corrupt" :
			     !ended_as_wanted ? (end_reason ? end_reason : "none") : "incomplete";
	double secs = (mono() - start_us) / 1e6;
	printf("port=%u sent=%llu acked=%llu received=%llu verified=%llu errors=%llu requests=%llu replies=%llu "
	       "answered=%llu retransmits=%llu rtos=%llu dups=%llu crc_bad=%llu epoch_bad=%llu malformed=%llu "
	       "forged=%llu corrupted=%llu dgrams_sent=%llu dgrams_recv=%llu lost_tx=%llu lost_rx=%llu "
	       "eagain=%llu pings=%llu rsts_sent=%llu status_reqs=%llu srtt_us=%lld secs=%.3f end=%s result=%s\n",
	       my_port, st.sent, st.acked, st.received, st.verified, st.errors, st.requests, st.replies,
	       st.answered, st.retransmits, st.rtos, st.dups, st.crc_bad, st.epoch_bad, st.malformed,
	       st.forged, st.corrupted, st.dgrams_sent, st.dgrams_recv, st.lost_tx, st.lost_rx,
	       st.eagain, st.pings, st.rsts_sent, st.status_reqs, (long long)srtt, secs,
	       end_reason ? end_reason : "none", result);
	fflush(stdout);
	return ok ? 0 : 1;
}
