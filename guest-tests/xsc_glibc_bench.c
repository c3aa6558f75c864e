// SPDX-License-Identifier: GPL-2.0
/*
 * xsc_glibc_bench: cost per call of glibc wrappers routed through the XSC
 * ring (GLIBC_TUNABLES=glibc.xsc.enable=1) versus the trap path
 * (syscall(), never routed) and versus the floor of any one-op ring call
 * (this program's own ring: fill one SQE, one ENTER, reap one CQE, no
 * libc bookkeeping), in the same process.  KTAP v1, one case per
 * measurement, diagnostics "# ratio routed/trap = X.XX", and the figures
 * as "# bench: glibc.OP.{trap,routed,floor} VALUE ns/op better=lower"
 * (docs/bench.md; under the icount clock a nanosecond is an instruction)
 * plus "glibc.trap.getppid", the cheapest trap round trip, and
 * "glibc.trap.fcntl_getown", the identity check the library makes per routed call.  Each figure is
 * the median of 16 timed regions (a timer interrupt lands in few of them).
 *
 * Case 4, batch_getpid_read_write: the batch entry point xsc_batch (<sys/xsc.h>) at batch
 * sizes 1, 8 and 64 for getpid, read of 64 B from a pipe and write of 64 B to /dev/null (the
 * kernel bench's ops), as "glibc.batch.OP.bN" per call, against the trap per call measured the
 * same way ("glibc.batch.OP.trap": regions of 64 syscall() calls).  Each figure is the median
 * over regions of one batch (read: its bytes written into the pipe before the region, untimed)
 * minus the median of an empty region (the two clock reads).  The ring has 64 entries
 * (glibc.xsc.entries=64 in the re-executed environment), so a batch of 64 is one ENTER.
 *
 * Build: gcc --sysroot=SYSROOT -BSYSROOT/usr/lib64/ -LSYSROOT/usr/lib64 \
 *            -static -O2 -Wall -Wextra -Werror -pthread -o xsc_glibc_bench xsc_glibc_bench.c
 * Usage: xsc_glibc_bench [ITERATIONS]   (default 20000)
 *
 * Started without the tunable (the guest's PID 1 clears the environment),
 * it re-executes itself with it.  Never fails on speed; a case fails only
 * on an I/O error or when the libc calls were not routed (no /dev/xsc fd,
 * or its xsc-submitted counter did not move by the number of calls), so a
 * stock glibc or a kernel without /dev/xsc does not pass.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/xsc.h>

#include "xsc_uapi.h"

#define TUN "GLIBC_TUNABLES=glibc.xsc.enable=1:glibc.xsc.entries=64"

static long iters = 20000;
static int n_fail;

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* xsc-submitted of one /dev/xsc fd, raw syscalls only (libc's open/read would be routed
 * and move the very counter being read); -1 if it is not a ring. */
static long long ring_submitted(int fd)
{
	char path[64], lnk[64], txt[1024];
	long n;
	int f;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = syscall(SYS_readlinkat, AT_FDCWD, path, lnk, sizeof(lnk) - 1);
	if (n < 0)
		return -1;
	lnk[n] = 0;
	if (strcmp(lnk, "/dev/xsc"))
		return -1;
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC, 0);
	if (f < 0)
		return -1;
	n = syscall(SYS_read, f, txt, sizeof(txt) - 1);
	syscall(SYS_close, f);
	if (n <= 0)
		return -1;
	txt[n] = 0;
	char *p = strstr(txt, "xsc-submitted:");
	return p ? strtoll(p + 14, NULL, 10) : -1;
}

/* xsc-submitted of the library's /dev/xsc fd (not SKIP, the floor's ring); -1 if none. Walks /proc/self/fd with raw
 * getdents64: the library places its ring fd high (3/4 of the fd limit), so no fixed
 * bound on fd numbers would do. */
static long long submitted(int skip)
{
	char buf[4096];
	long long v = -1;
	int dir = syscall(SYS_openat, AT_FDCWD, "/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);

	if (dir < 0)
		return -1;
	for (;;) {
		long n = syscall(SYS_getdents64, dir, buf, sizeof(buf));

		if (n <= 0)
			break;
		for (long off = 0; off < n;) {
			struct linux_dirent64 {
				unsigned long long d_ino;
				long long d_off;
				unsigned short d_reclen;
				unsigned char d_type;
				char d_name[];
			} *d = (void *)(buf + off);
			long long s;

			off += d->d_reclen;
			if (d->d_name[0] < '0' || d->d_name[0] > '9')
				continue;
			if (atoi(d->d_name) == skip)
				continue;
			s = ring_submitted(atoi(d->d_name));
			if (s >= 0)
				v = s;
		}
	}
	syscall(SYS_close, dir);
	return v;
}

enum { OP_WRITE_NULL, OP_READ_ZERO, OP_PIPE };
enum { TRAP, ROUTED, FLOOR };
static const char *const way_name[] = { "trap", "routed", "floor" };

/* The floor: a one-op ring call with nothing around it, on a ring of this program's own
 * (raw syscalls), as any routed call must do at least: write one SQE, publish the tail,
 * one ENTER, reap one CQE.  */
static struct {
	int fd;
	struct xsc_ring_hdr *h;
	struct xsc_sqe *sq;
	struct xsc_cqe *cq;
	unsigned sqm, cqm, tail, head;
} fl = { .fd = -1 };

static int floor_setup(void)
{
	struct xsc_setup su = { .sq_entries = 8 };
	void *m;

	fl.fd = syscall(SYS_openat, AT_FDCWD, "/dev/xsc", O_RDWR | O_CLOEXEC, 0);
	if (fl.fd < 0 || syscall(SYS_ioctl, fl.fd, XSC_IOC_SETUP, &su))
		return -1;
	m = mmap(NULL, su.ring_size, PROT_READ | PROT_WRITE, MAP_SHARED, fl.fd, 0);
	if (m == MAP_FAILED)
		return -1;
	fl.h = m;
	fl.sq = (void *)((char *)m + su.sqes_off);
	fl.cq = (void *)((char *)m + su.cqes_off);
	fl.sqm = su.sq_entries - 1;
	fl.cqm = su.cq_entries - 1;
	return 0;
}

static long floor_call(int nr, long a0, long a1, long a2)
{
	struct xsc_sqe *s = &fl.sq[fl.tail & fl.sqm];
	struct xsc_enter e = { .to_submit = 1 };
	long r;

	s->opcode = nr;
	s->flags = 0;
	s->__resv0 = 0;
	s->user_data = fl.tail;
	s->args[0] = a0;
	s->args[1] = a1;
	s->args[2] = a2;
	s->args[3] = s->args[4] = s->args[5] = 0;
	__atomic_store_n(&fl.h->sq_tail, ++fl.tail, __ATOMIC_RELEASE);
	r = syscall(SYS_ioctl, fl.fd, XSC_IOC_ENTER, &e);
	if (r != 1)
		return r < 0 ? -errno : -EIO;
	r = fl.cq[fl.head & fl.cqm].res;
	__atomic_store_n(&fl.h->cq_head, ++fl.head, __ATOMIC_RELEASE);
	return r;
}

static long call(int way, int nr, long a0, void *a1, long a2)
{
	switch (way) {
	case TRAP:
		return syscall(nr, a0, a1, a2);
	case FLOOR:
		return floor_call(nr, a0, (long)a1, a2);
	default:
		return nr == SYS_write ? write(a0, a1, a2) : read(a0, a1, a2);
	}
}

#define REGIONS 16

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* one measurement: the median over REGIONS timed regions of ns per call, or -1 */
static double run(int op, int way, int nullfd, int zerofd, const int *p)
{
	long per = iters / REGIONS > 0 ? iters / REGIONS : 1;
	double ns[REGIONS];
	char buf[64];

	memset(buf, 'b', sizeof(buf));
	for (int k = 0; k < REGIONS; k++) {
		double t0 = now_ns();

		for (long i = 0; i < per; i++) {
			long r;

			switch (op) {
			case OP_WRITE_NULL:
				r = call(way, SYS_write, nullfd, buf, 64);
				break;
			case OP_READ_ZERO:
				r = call(way, SYS_read, zerofd, buf, 64);
				break;
			default:
				r = call(way, SYS_write, p[1], buf, 64);
				if (r == 64)
					r = call(way, SYS_read, p[0], buf, 64);
				break;
			}
			if (r != 64) {
				printf("# %s iteration %ld: %ld (%s)\n", way_name[way], i, r,
				       strerror(r < 0 && way == FLOOR ? (int)-r : errno));
				return -1;
			}
		}
		ns[k] = (now_ns() - t0) / per / (op == OP_PIPE ? 2 : 1);
	}
	qsort(ns, REGIONS, sizeof(ns[0]), cmp_d);
	return (ns[REGIONS / 2 - 1] + ns[REGIONS / 2]) / 2;
}

static void bench(int num, const char *name, const char *fig, int op, int nullfd, int zerofd, const int *p)
{
	long per = iters / REGIONS > 0 ? iters / REGIONS : 1;
	long calls = (op == OP_PIPE ? 2 : 1) * per * REGIONS;
	double trap, routed, flo;
	long long s0, s1;

	run(op, TRAP, nullfd, zerofd, p);		/* warm up */
	trap = run(op, TRAP, nullfd, zerofd, p);
	flo = run(op, FLOOR, nullfd, zerofd, p);
	s0 = submitted(fl.fd);
	routed = run(op, ROUTED, nullfd, zerofd, p);
	s1 = submitted(fl.fd);
	if (trap < 0 || routed < 0 || flo < 0) {
		printf("not ok %d %s\n", num, name);
		n_fail++;
		return;
	}
	printf("# %s: %ld calls, trap %.1f ns/call, routed %.1f ns/call, one-op ring floor %.1f ns/call\n", name,
	       calls, trap, routed, flo);
	printf("# ratio routed/trap = %.2f; routed above the floor %.1f ns/call\n", routed / trap, routed - flo);
	printf("# bench: glibc.%s.trap %.1f ns/op better=lower\n", fig, trap);
	printf("# bench: glibc.%s.routed %.1f ns/op better=lower\n", fig, routed);
	printf("# bench: glibc.%s.floor %.1f ns/op better=lower\n", fig, flo);
	if (s0 < 0 || s1 - s0 != calls) {
		printf("# NOT ROUTED: /dev/xsc xsc-submitted %lld -> %lld, expected +%ld (stock glibc, tunable "
		       "ignored or no /dev/xsc)\n", s0, s1, calls);
		printf("not ok %d %s\n", num, name);
		n_fail++;
		return;
	}
	printf("ok %d %s\n", num, name);
}

/* ---------------------------------------------------------------- batch (case 4) */

#define B_MAX 64
#define B_REGIONS_MAX 4096
enum { B_GETPID, B_READ, B_WRITE, B_OPS };
static const char *const b_name[B_OPS] = { "getpid", "read64", "write64" };
static const long b_nr[B_OPS] = { SYS_getpid, SYS_read, SYS_write };
static const unsigned int b_sizes[] = { 1, 8, 64 };
static double b_samples[B_REGIONS_MAX];
static char b_buf[64 * B_MAX];

static double b_median(int n)
{
	qsort(b_samples, n, sizeof(b_samples[0]), cmp_d);
	return (b_samples[(n - 1) / 2] + b_samples[n / 2]) / 2;
}

static int b_regions(unsigned int size)
{
	long n = iters / size;

	return n < REGIONS ? REGIONS : n > B_REGIONS_MAX ? B_REGIONS_MAX : (int)n;
}

/* the untimed setup of a region: a read needs its bytes in the pipe (raw write) */
static int b_prepare(int op, unsigned int n, const int *p)
{
	if (op != B_READ)
		return 0;
	return syscall(SYS_write, p[1], b_buf, 64 * n) == (long)(64 * n) ? 0 : -1;
}

/* cost per call of xsc_batch at SIZE (or, size 0, of syscall() in regions of 64), in ns;
 * -1 on a wrong result */
static double b_figure(int op, unsigned int size, int nullfd, const int *p, double clk)
{
	static struct xsc_call c[B_MAX];
	unsigned int n = size ? size : B_MAX;
	long expect = op == B_GETPID ? (long)getpid() : 64;
	int fd = op == B_READ ? p[0] : nullfd, regions = b_regions(n);

	for (unsigned int i = 0; i < n; i++) {
		memset(&c[i], 0, sizeof(c[i]));
		c[i].nr = b_nr[op];
		c[i].args[0] = fd;
		c[i].args[1] = (long)b_buf;
		c[i].args[2] = 64;
	}
	for (int k = -4; k < regions; k++) {	/* 4 warm-up regions */
		int bad = 0;
		double t0;

		if (b_prepare(op, n, p))
			return -1;
		t0 = now_ns();
		if (size) {
			if (xsc_batch(c, n, 0) != (int)n)
				return -1;
		} else {
			for (unsigned int i = 0; i < n; i++)
				bad |= syscall(b_nr[op], fd, b_buf, 64) != expect;
		}
		if (k >= 0)
			b_samples[k] = now_ns() - t0 - clk;
		for (unsigned int i = 0; size && i < n; i++)
			bad |= c[i].res != expect;
		if (bad)
			return -1;
	}
	return b_median(regions) / n;
}

static void bench_batch(int num, int nullfd)
{
	double fig[B_OPS][4], clk;
	unsigned int nsz = sizeof(b_sizes) / sizeof(b_sizes[0]);
	long long calls = 0, s0, s1;
	int p[2], bad = 0;

	if (pipe(p)) {
		printf("# pipe: %s\nnot ok %d batch_getpid_read_write\n", strerror(errno), num);
		n_fail++;
		return;
	}
	for (int k = 0; k < B_REGIONS_MAX; k++) {	/* the clock's own cost */
		double t0 = now_ns();

		b_samples[k] = now_ns() - t0;
	}
	clk = b_median(B_REGIONS_MAX);
	/* Every timed region runs before anything is printed (console output drives
	 * interrupts whose timing comes from the host). */
	s0 = submitted(fl.fd);
	for (int op = 0; op < B_OPS && !bad; op++)
		for (unsigned int z = 0; z < nsz && !bad; z++) {
			fig[op][z] = b_figure(op, b_sizes[z], nullfd, p, clk);
			bad = fig[op][z] < 0;
			calls += (long long)b_regions(b_sizes[z]) * b_sizes[z] + 4LL * b_sizes[z];
		}
	s1 = submitted(fl.fd);
	for (int op = 0; op < B_OPS && !bad; op++)
		bad = (fig[op][3] = b_figure(op, 0, nullfd, p, clk)) < 0;
	if (bad) {
		printf("# a batch or a direct call returned a wrong result\n");
		printf("not ok %d batch_getpid_read_write\n", num);
		n_fail++;
		return;
	}
	printf("# xsc_batch, sizes 1/8/64, per call; clock read pair %.1f ns subtracted\n", clk);
	for (int op = 0; op < B_OPS; op++) {
		for (unsigned int z = 0; z < nsz; z++)
			printf("# bench: glibc.batch.%s.b%u %.1f ns/op better=lower\n", b_name[op], b_sizes[z],
			       fig[op][z]);
		printf("# bench: glibc.batch.%s.trap %.1f ns/op better=lower\n", b_name[op], fig[op][3]);
		printf("# ratio %s batch64/trap = %.2f\n", b_name[op], fig[op][2] / fig[op][3]);
	}
	if (s0 < 0 || s1 - s0 != calls) {
		printf("# NOT ROUTED: /dev/xsc xsc-submitted %lld -> %lld, expected +%lld\n", s0, s1, calls);
		printf("not ok %d batch_getpid_read_write\n", num);
		n_fail++;
		return;
	}
	printf("ok %d batch_getpid_read_write\n", num);
}

int main(int argc, char **argv)
{
	int nullfd, zerofd, p[2];

	if (!getenv("GLIBC_TUNABLES")) {
		char *env[] = { TUN, "PATH=/bin:/sbin:/xsc/bin", NULL };

		execve("/proc/self/exe", argv, env);
		/* fall through: measure anyway, the cases will say "not routed" */
	}
	if (argc > 1 && atol(argv[1]) > 0)
		iters = atol(argv[1]);
	/* Start after the kernel's late boot messages (the PS/2 mouse probe prints at ~1 guest
	 * second): one of them once landed inside a figure line on the shared console and the
	 * figure was lost. Under the icount clock (sleep=off) the idle wait costs no host time. */
	{
		struct timespec bt, until = { 2, 0 };

		if (clock_gettime(CLOCK_BOOTTIME, &bt) == 0 && bt.tv_sec < 2)
			clock_nanosleep(CLOCK_BOOTTIME, TIMER_ABSTIME, &until, NULL);
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("KTAP version 1\n1..4\n");
	printf("# xsc_glibc_bench: %s, 64-byte buffers\n", getenv("GLIBC_TUNABLES") ? getenv("GLIBC_TUNABLES") : "no tunable");
	nullfd = syscall(SYS_openat, AT_FDCWD, "/dev/null", O_WRONLY | O_CLOEXEC, 0);
	zerofd = syscall(SYS_openat, AT_FDCWD, "/dev/zero", O_RDONLY | O_CLOEXEC, 0);
	if (nullfd < 0 || zerofd < 0 || pipe(p)) {
		printf("# setup: %s\n", strerror(errno));
		printf("not ok 1 write_devnull_64\nnot ok 2 read_devzero_64\nnot ok 3 pipe_write_read_64\n");
		printf("not ok 4 batch_getpid_read_write\n");
		return 1;
	}
	if (write(nullfd, "", 0) != 0)	/* first routed call sets the ring up outside the timing */
		printf("# write: %s\n", strerror(errno));
	if (floor_setup()) {
		printf("# floor ring: %s\n", strerror(errno));
		printf("not ok 1 write_devnull_64\nnot ok 2 read_devzero_64\nnot ok 3 pipe_write_read_64\n");
		printf("not ok 4 batch_getpid_read_write\n");
		return 1;
	}
	/* the cheapest trap round trip (for "overhead above the floor <= half a trap"), and the
	 * fcntl(F_GETOWN_EX) the library spends per routed call on the ring fd's identity */
	for (int w = 0; w < 2; w++) {
		struct f_owner_ex own;
		double ns[REGIONS];
		long per = iters / REGIONS > 0 ? iters / REGIONS : 1;

		for (int k = 0; k < REGIONS; k++) {
			double t0 = now_ns();

			for (long i = 0; i < per; i++)
				if (w == 0)
					syscall(SYS_getppid);
				else
					syscall(SYS_fcntl, fl.fd, F_GETOWN_EX, &own);
			ns[k] = (now_ns() - t0) / per;
		}
		qsort(ns, REGIONS, sizeof(ns[0]), cmp_d);
		printf("# bench: glibc.trap.%s %.1f ns/op better=lower\n", w ? "fcntl_getown" : "getppid",
		       (ns[REGIONS / 2 - 1] + ns[REGIONS / 2]) / 2);
	}
	bench(1, "write_devnull_64", "write64", OP_WRITE_NULL, nullfd, zerofd, p);
	bench(2, "read_devzero_64", "read64", OP_READ_ZERO, nullfd, zerofd, p);
	bench(3, "pipe_write_read_64", "pipe64", OP_PIPE, nullfd, zerofd, p);
	bench_batch(4, nullfd);
	printf("# Totals: pass:%d fail:%d xfail:0 xpass:0 skip:0 error:0\n", 4 - n_fail, n_fail);
	return n_fail ? 1 : 0;
}
