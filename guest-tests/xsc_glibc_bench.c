// SPDX-License-Identifier: GPL-2.0
/*
 * xsc_glibc_bench: cost per call of glibc wrappers routed through the XSC
 * ring (GLIBC_TUNABLES=glibc.xsc.enable=1) versus the trap path
 * (syscall(), never routed), in the same process.  KTAP v1, one case per
 * measurement, diagnostics "# ratio routed/trap = X.XX".
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
#include <sys/syscall.h>

#define TUN "GLIBC_TUNABLES=glibc.xsc.enable=1"

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

/* xsc-submitted of the process's /dev/xsc fd; -1 if none. Walks /proc/self/fd with raw
 * getdents64: the library places its ring fd high (3/4 of the fd limit), so no fixed
 * bound on fd numbers would do. */
static long long submitted(void)
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
			s = ring_submitted(atoi(d->d_name));
			if (s >= 0)
				v = s;
		}
	}
	syscall(SYS_close, dir);
	return v;
}

enum { OP_WRITE_NULL, OP_READ_ZERO, OP_PIPE };

/* one measurement; routed = libc wrappers, else syscall(); returns ns/iteration or -1 */
static double run(int op, int routed, int nullfd, int zerofd, const int *p)
{
	char buf[64];
	double t0 = now_ns();

	memset(buf, 'b', sizeof(buf));
	for (long i = 0; i < iters; i++) {
		long r;

		switch (op) {
		case OP_WRITE_NULL:
			r = routed ? write(nullfd, buf, 64) : syscall(SYS_write, nullfd, buf, 64);
			break;
		case OP_READ_ZERO:
			r = routed ? read(zerofd, buf, 64) : syscall(SYS_read, zerofd, buf, 64);
			break;
		default:
			r = routed ? write(p[1], buf, 64) : syscall(SYS_write, p[1], buf, 64);
			if (r == 64)
				r = routed ? read(p[0], buf, 64) : syscall(SYS_read, p[0], buf, 64);
			break;
		}
		if (r != 64) {
			printf("# %s iteration %ld: %ld (%s)\n", routed ? "routed" : "trap", i, r, strerror(errno));
			return -1;
		}
	}
	return (now_ns() - t0) / iters;
}

static void bench(int num, const char *name, int op, int nullfd, int zerofd, const int *p)
{
	long calls = op == OP_PIPE ? 2 * iters : iters;
	double trap, routed;
	long long s0, s1;

	run(op, 0, nullfd, zerofd, p);		/* warm up */
	trap = run(op, 0, nullfd, zerofd, p);
	s0 = submitted();
	routed = run(op, 1, nullfd, zerofd, p);
	s1 = submitted();
	if (trap < 0 || routed < 0) {
		printf("not ok %d %s\n", num, name);
		n_fail++;
		return;
	}
	printf("# %s: %ld iterations, trap %.0f ns/iter, routed %.0f ns/iter\n", name, iters, trap, routed);
	printf("# ratio routed/trap = %.2f\n", routed / trap);
	if (s0 < 0 || s1 - s0 != calls) {
		printf("# NOT ROUTED: /dev/xsc xsc-submitted %lld -> %lld, expected +%ld (stock glibc, tunable "
		       "ignored or no /dev/xsc)\n", s0, s1, calls);
		printf("not ok %d %s\n", num, name);
		n_fail++;
		return;
	}
	printf("ok %d %s\n", num, name);
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
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("KTAP version 1\n1..3\n");
	printf("# xsc_glibc_bench: %s, 64-byte buffers\n", getenv("GLIBC_TUNABLES") ? getenv("GLIBC_TUNABLES") : "no tunable");
	nullfd = syscall(SYS_openat, AT_FDCWD, "/dev/null", O_WRONLY | O_CLOEXEC, 0);
	zerofd = syscall(SYS_openat, AT_FDCWD, "/dev/zero", O_RDONLY | O_CLOEXEC, 0);
	if (nullfd < 0 || zerofd < 0 || pipe(p)) {
		printf("# setup: %s\n", strerror(errno));
		printf("not ok 1 write_devnull_64\nnot ok 2 read_devzero_64\nnot ok 3 pipe_write_read_64\n");
		return 1;
	}
	if (write(nullfd, "", 0) != 0)	/* first routed call sets the ring up outside the timing */
		printf("# write: %s\n", strerror(errno));
	bench(1, "write_devnull_64", OP_WRITE_NULL, nullfd, zerofd, p);
	bench(2, "read_devzero_64", OP_READ_ZERO, nullfd, zerofd, p);
	bench(3, "pipe_write_read_64", OP_PIPE, nullfd, zerofd, p);
	printf("# Totals: pass:%d fail:%d xfail:0 xpass:0 skip:0 error:0\n", 3 - n_fail, n_fail);
	return n_fail ? 1 : 0;
}
