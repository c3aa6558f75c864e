// SPDX-License-Identifier: GPL-2.0
/*
 * xsc_ring_bench: batched XSC ring ops vs direct syscalls (KTAP v1).
 *
 * Build: gcc -static -O2 -Wall -pthread -o xsc_ring_bench xsc_ring_bench.c
 *
 * Measures, for batches of 64:
 *   nop:    64 XSC_OP_NOP per ENTER         vs 64 x syscall(SYS_getppid)
 *   getpid: 64 ring getpid per ENTER        vs 64 x syscall(SYS_getpid)
 * and prints "# ratio" diagnostics (direct time / ring time; > 1 means the
 * ring is faster).  The goal is >= 1.5x for getpid batches of 64; the
 * ratio is reported, never enforced: a case fails only if the ring does
 * not work.  Exit 0 iff both cases pass.
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

#define BATCH	64

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

struct ring {
	int fd;
	struct xsc_setup p;
	struct xsc_ring_hdr *hdr;
	struct xsc_sqe *sqes;
	struct xsc_cqe *cqes;
	uint32_t tail, head;
};

static int ring_init(struct ring *r)
{
	void *m;

	memset(r, 0, sizeof(*r));
	r->fd = open("/dev/xsc", O_RDWR | O_CLOEXEC);
	if (r->fd < 0)
		return -errno;
	r->p.sq_entries = BATCH;
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

/* one batch of BATCH ops through the ring; returns 0 if all CQEs match */
static int ring_batch(struct ring *r, unsigned int op, int64_t expect)
{
	struct xsc_enter e = { .to_submit = BATCH };
	uint32_t mask = r->p.sq_entries - 1, cmask = r->p.cq_entries - 1, t;
	int i, bad = 0;

	for (i = 0; i < BATCH; i++) {
		struct xsc_sqe *s = &r->sqes[(r->tail + i) & mask];

		s->opcode = op;
		s->flags = 0;
		s->__resv0 = 0;
		s->user_data = i;
	}
	r->tail += BATCH;
	__atomic_store_n(&r->hdr->sq_tail, r->tail, __ATOMIC_RELEASE);
	if (ioctl(r->fd, XSC_IOC_ENTER, &e) != BATCH)
		return -1;
	t = __atomic_load_n(&r->hdr->cq_tail, __ATOMIC_ACQUIRE);
	if (t - r->head != BATCH)
		return -1;
	for (; r->head != t; r->head++)
		bad |= r->cqes[r->head & cmask].res != expect;
	__atomic_store_n(&r->hdr->cq_head, r->head, __ATOMIC_RELEASE);
	return bad ? -1 : 0;
}

static int bench(int num, const char *name, struct ring *r, unsigned int op, int64_t expect,
		 long direct_nr, int iters)
{
	double t0, ring_ns, direct_ns, ratio;
	int i, j;
	volatile long sink = 0;

	for (i = 0; i < 20; i++)	/* warm up */
		if (ring_batch(r, op, expect)) {
			printf("# %s: ring batch failed\n", name);
			printf("not ok %d %s\n", num, name);
			return 1;
		}
	t0 = now_ns();
	for (i = 0; i < iters; i++)
		if (ring_batch(r, op, expect)) {
			printf("# %s: ring batch failed\n", name);
			printf("not ok %d %s\n", num, name);
			return 1;
		}
	ring_ns = (now_ns() - t0) / ((double)iters * BATCH);
	t0 = now_ns();
	for (i = 0; i < iters; i++)
		for (j = 0; j < BATCH; j++)
			sink += syscall(direct_nr);
	direct_ns = (now_ns() - t0) / ((double)iters * BATCH);
	(void)sink;
	ratio = direct_ns / ring_ns;
	printf("# %s: ring %.1f ns/op, direct %.1f ns/op (batch %d, %d batches)\n", name, ring_ns,
	       direct_ns, BATCH, iters);
	printf("# ratio %s batch=%d direct/ring=%.2fx (goal >= 1.50x: %s)\n", name, BATCH, ratio,
	       ratio >= 1.5 ? "met" : "not met");
	printf("ok %d %s\n", num, name);
	return 0;
}

int main(int argc, char **argv)
{
	struct ring r;
	int e, fails = 0, iters = argc > 1 ? atoi(argv[1]) : 2000;
	struct xsc_probe p;

	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("KTAP version 1\n1..2\n");
	if ((e = ring_init(&r)) < 0) {
		printf("# /dev/xsc unusable: %s\n", strerror(-e));
		printf("not ok 1 nop_batch64\nnot ok 2 getpid_batch64\n");
		printf("# Totals: pass:0 fail:2 xfail:0 xpass:0 skip:0 error:0\n");
		return 1;
	}
	fails += bench(1, "nop_batch64", &r, XSC_OP_NOP, 0, SYS_getppid, iters);
	if (ioctl(r.fd, XSC_IOC_PROBE, &p) == 0 && ((p.ops[SYS_getpid / 64] >> (SYS_getpid % 64)) & 1)) {
		fails += bench(2, "getpid_batch64", &r, SYS_getpid, getpid(), SYS_getpid, iters);
		printf("# Totals: pass:%d fail:%d xfail:0 xpass:0 skip:0 error:0\n", 2 - fails, fails);
	} else {
		printf("ok 2 getpid_batch64 # SKIP getpid not offered by PROBE\n");
		printf("# Totals: pass:%d fail:%d xfail:0 xpass:0 skip:1 error:0\n", 1 - fails, fails);
	}
	return fails ? 1 : 0;
}
