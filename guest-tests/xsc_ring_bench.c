// SPDX-License-Identifier: GPL-2.0
/*
 * xsc_ring_bench: cost per op of XSC ring batches vs direct syscalls (KTAP v1).
 *
 * Build: gcc -static -O2 -Wall -pthread -o xsc_ring_bench xsc_ring_bench.c
 * Usage: xsc_ring_bench [OPS]   (ops per figure, default 4096)
 *
 * Curves: for each op — NOP, getpid, read of 64 B from a pipe, write of 64 B
 * to /dev/null — the ring's cost per op at batch sizes 1, 8, 64 and 512
 * (filling the SQEs, one ENTER, reaping the CQEs), and the direct syscall's
 * cost per call (syscall(2); getppid stands in for NOP: the cheapest trap).
 *
 * Each figure is the median over timed regions (one batch, or 64 direct
 * calls) of CLOCK_MONOTONIC nanoseconds per op, minus the median cost of an
 * empty region (the two clock reads). The median keeps an interrupt that
 * lands in one region out of the op's cost. Under the harness's icount clock
 * one guest nanosecond is one guest instruction, so the figures are
 * instructions per op; under the host clock they are wall time and move with
 * the host's load (docs/bench.md).
 *
 * Nothing is printed until every region has been timed: console output
 * drives UART interrupts whose timing comes from the host.
 *
 * Figures are reported in the harness's bench format, after the cases:
 *   # bench: NAME VALUE UNIT better=lower
 * A case fails only if the ring gives a wrong result, never on speed.
 * Exit 0 iff no case failed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include "xsc_uapi.h"

#define MAX_BATCH	512
#define DIRECT_BATCH	64
#define MAX_REGIONS	8192
#define MIN_REGIONS	16
#define NR_OPS		4
#define NR_BATCHES	4

static const unsigned int batches[NR_BATCHES] = { 1, 8, 64, 512 };

struct op {
	const char *name;
	unsigned int opcode;	/* ring opcode */
	long direct_nr;		/* the trap it is compared with */
	int needs_probe;	/* opcode must be offered by PROBE */
};

static const struct op ops[NR_OPS] = {
	{ "nop", XSC_OP_NOP, SYS_getppid, 0 },
	{ "getpid", SYS_getpid, SYS_getpid, 1 },
	{ "read64", SYS_read, SYS_read, 1 },
	{ "write64", SYS_write, SYS_write, 1 },
};

struct ring {
	int fd;
	struct xsc_setup p;
	struct xsc_ring_hdr *hdr;
	struct xsc_sqe *sqes;
	struct xsc_cqe *cqes;
	uint32_t tail, head;
};

static int pipefd[2], nullfd;
static char buf[64 * MAX_BATCH];
static int64_t samples[MAX_REGIONS];

static inline int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

static int64_t median(int64_t *v, int n)
{
	qsort(v, n, sizeof(*v), cmp64);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int ring_init(struct ring *r)
{
	void *m;

	memset(r, 0, sizeof(*r));
	r->fd = open("/dev/xsc", O_RDWR | O_CLOEXEC);
	if (r->fd < 0)
		return -errno;
	r->p.sq_entries = MAX_BATCH;
	if (ioctl(r->fd, XSC_IOC_SETUP, &r->p))
		return -errno;
	m = mmap(NULL, r->p.ring_size, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, 0);
	if (m == MAP_FAILED)
		return -errno;
	r->hdr = m;
	r->sqes = (void *)((char *)m + r->p.sqes_off);
	r->cqes = (void *)((char *)m + r->p.cqes_off);
	return 0;
}

/* The untimed setup of one region: a read needs its bytes in the pipe. */
static int prepare(const struct op *o, unsigned int n)
{
	if (o->opcode == SYS_read)
		return write(pipefd[1], buf, 64 * n) == (ssize_t)(64 * n) ? 0 : -1;
	return 0;
}

static int64_t expected(const struct op *o)
{
	switch (o->opcode) {
	case SYS_getpid:
		return getpid();
	case SYS_read:
	case SYS_write:
		return 64;
	default:
		return 0;
	}
}

/* One batch of n ops through the ring (the timed work); 0 if every CQE is right. */
static int ring_batch(struct ring *r, const struct op *o, unsigned int n, int64_t expect)
{
	struct xsc_enter e = { .to_submit = n };
	uint32_t mask = r->p.sq_entries - 1, cmask = r->p.cq_entries - 1, t;
	int fd = o->opcode == SYS_read ? pipefd[0] : nullfd;
	unsigned int i;
	int bad = 0;

	for (i = 0; i < n; i++) {
		struct xsc_sqe *s = &r->sqes[(r->tail + i) & mask];

		s->opcode = o->opcode;
		s->flags = 0;
		s->__resv0 = 0;
		s->user_data = i;
		s->args[0] = fd;
		s->args[1] = (uintptr_t)buf;
		s->args[2] = 64;
	}
	r->tail += n;
	__atomic_store_n(&r->hdr->sq_tail, r->tail, __ATOMIC_RELEASE);
	if (ioctl(r->fd, XSC_IOC_ENTER, &e) != (int)n)
		return -1;
	t = __atomic_load_n(&r->hdr->cq_tail, __ATOMIC_ACQUIRE);
	if (t - r->head != n)
		return -1;
	for (; r->head != t; r->head++)
		bad |= r->cqes[r->head & cmask].res != expect;
	__atomic_store_n(&r->hdr->cq_head, r->head, __ATOMIC_RELEASE);
	return bad ? -1 : 0;
}

static int regions_for(unsigned int batch, int ops_per_figure)
{
	int n = ops_per_figure / (int)batch;

	return n < MIN_REGIONS ? MIN_REGIONS : n > MAX_REGIONS ? MAX_REGIONS : n;
}

/* Median ns of an empty timed region: the clock's own cost, subtracted from every region. */
static int64_t clock_cost(void)
{
	int i;

	for (i = 0; i < MAX_REGIONS; i++) {
		int64_t t0 = now_ns();

		samples[i] = now_ns() - t0;
	}
	return median(samples, MAX_REGIONS);
}

/* Ring cost per op at batch n, in ns x 10 (one decimal); -1 if the ring misbehaved. */
static long ring_figure(struct ring *r, const struct op *o, unsigned int n, int ops_per_figure,
			int64_t clk)
{
	int64_t expect = expected(o);
	int i, regions = regions_for(n, ops_per_figure);

	for (i = 0; i < 4; i++)	/* warm up: caches, page tables, the ring's pages */
		if (prepare(o, n) || ring_batch(r, o, n, expect))
			return -1;
	for (i = 0; i < regions; i++) {
		int64_t t0;

		if (prepare(o, n))
			return -1;
		t0 = now_ns();
		if (ring_batch(r, o, n, expect))
			return -1;
		samples[i] = now_ns() - t0 - clk;
	}
	return (long)(median(samples, regions) * 10 / n);
}

/* Direct cost per call, in ns x 10; -1 if a call failed. */
static long direct_figure(const struct op *o, int ops_per_figure, int64_t clk)
{
	int64_t expect = o->opcode == XSC_OP_NOP ? getppid() : expected(o);
	int i, j, bad = 0, regions = regions_for(DIRECT_BATCH, ops_per_figure);
	int fd = o->opcode == SYS_read ? pipefd[0] : nullfd;

	for (i = 0; i < regions; i++) {
		int64_t t0;

		if (prepare(o, DIRECT_BATCH))
			return -1;
		t0 = now_ns();
		for (j = 0; j < DIRECT_BATCH; j++)
			bad |= syscall(o->direct_nr, fd, buf, 64) != expect;
		samples[i] = now_ns() - t0 - clk;
	}
	return bad ? -1 : (long)(median(samples, regions) * 10 / DIRECT_BATCH);
}

static int offered(struct ring *r, unsigned int opcode)
{
	struct xsc_probe p;

	if (opcode >= XSC_NR_LIMIT)
		return 1;
	return ioctl(r->fd, XSC_IOC_PROBE, &p) == 0 && ((p.ops[opcode / 64] >> (opcode % 64)) & 1);
}

int main(int argc, char **argv)
{
	static const char *const direct_name[NR_OPS] = { "getppid", "getpid", "read64", "write64" };
	long ring[NR_OPS][NR_BATCHES], direct[NR_OPS];
	int status[NR_OPS];	/* 0 ok, 1 failed, 2 skipped */
	int o, b, e, pass = 0, fail = 0, skip = 0;
	int ops_per_figure = argc > 1 ? atoi(argv[1]) : 4096;
	int64_t clk;
	struct ring r;

	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("KTAP version 1\n1..%d\n", NR_OPS);
	if (ops_per_figure < 1)
		ops_per_figure = 4096;
	if ((e = ring_init(&r)) < 0 || pipe(pipefd) || (nullfd = open("/dev/null", O_WRONLY)) < 0) {
		printf("# setup failed: %s\n", strerror(e < 0 ? -e : errno));
		for (o = 0; o < NR_OPS; o++)
			printf("not ok %d %s\n", o + 1, ops[o].name);
		printf("# Totals: pass:0 fail:%d xfail:0 xpass:0 skip:0 error:0\n", NR_OPS);
		return 1;
	}
	memset(buf, 'x', sizeof(buf));
	clk = clock_cost();

	/* Every timed region runs before anything is printed. */
	for (o = 0; o < NR_OPS; o++) {
		status[o] = ops[o].needs_probe && !offered(&r, ops[o].opcode) ? 2 : 0;
		for (b = 0; b < NR_BATCHES && status[o] == 0; b++)
			if ((ring[o][b] = ring_figure(&r, &ops[o], batches[b], ops_per_figure, clk)) < 0)
				status[o] = 1;
		if (status[o] == 0 && (direct[o] = direct_figure(&ops[o], ops_per_figure, clk)) < 0)
			status[o] = 1;
	}

	for (o = 0; o < NR_OPS; o++) {
		if (status[o] == 2) {
			printf("ok %d %s # SKIP %s not offered by PROBE\n", o + 1, ops[o].name,
			       ops[o].name);
			skip++;
		} else if (status[o] == 1) {
			printf("# %s: a ring batch or a direct call returned a wrong result\n",
			       ops[o].name);
			printf("not ok %d %s\n", o + 1, ops[o].name);
			fail++;
		} else {
			printf("ok %d %s\n", o + 1, ops[o].name);
			pass++;
		}
	}
	printf("# clock read pair: %lld ns (subtracted from every region)\n", (long long)clk);
	for (o = 0; o < NR_OPS; o++) {
		if (status[o])
			continue;
		for (b = 0; b < NR_BATCHES; b++)
			printf("# bench: ring.%s.b%u %ld.%ld ns/op better=lower\n", ops[o].name,
			       batches[b], ring[o][b] / 10, ring[o][b] % 10);
		printf("# bench: direct.%s %ld.%ld ns/op better=lower\n", direct_name[o],
		       direct[o] / 10, direct[o] % 10);
	}
	printf("# Totals: pass:%d fail:%d xfail:0 xpass:0 skip:%d error:0\n", pass, fail, skip);
	return fail ? 1 : 0;
}
