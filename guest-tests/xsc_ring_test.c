// SPDX-License-Identifier: GPL-2.0
/*
 * xsc_ring_test: in-guest KTAP v1 test suite for the XSC ring interface
 * (/dev/xsc, ABI v1, see patches/kernel/README.md).
 *
 * Build: gcc -static -O2 -Wall -pthread -o xsc_ring_test xsc_ring_test.c
 *
 * One nested KTAP sub-suite per group.  Every case runs in its own forked
 * child with a watchdog, so a crash or hang costs one case, not the plan.
 * A group whose ops XSC_IOC_PROBE does not offer is reported as SKIP.
 * A missing /dev/xsc is a failure.  Exit status 0 iff no case failed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <net/if.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <grp.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/futex.h>
#include <linux/netlink.h>
#include <linux/seccomp.h>

#include "xsc_uapi.h"

#define XSC_DEV		"/dev/xsc"
#define CASE_TIMEOUT_S	90

enum { PASS = 0, FAIL = 1, SKIP = 2 };

static int g_diag = 2;			/* diag pipe in a case child */
static char *g_self;			/* argv[0] resolved, for re-exec */
static struct xsc_probe g_probe;
static int g_probe_ok;

static void diag(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (n > (int)sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	buf[n++] = '\n';
	if (write(g_diag, buf, n) < 0) {
		/* nothing sensible to do */
	}
}

#define CHECK(cond, ...) do {						\
	if (!(cond)) {							\
		diag("line %d: check failed: %s", __LINE__, #cond);	\
		diag(__VA_ARGS__);					\
		return FAIL;						\
	}								\
} while (0)
/* a SKIP needs a working device: without /dev/xsc everything fails */
#define SKIPIF(cond, ...) do {						\
	if (cond) {							\
		diag(__VA_ARGS__);					\
		if (!g_probe_ok) {					\
			diag("no usable " XSC_DEV ": not skipping");	\
			return FAIL;					\
		}							\
		return SKIP;						\
	}								\
} while (0)

#define U(x) ((uint64_t)(uintptr_t)(x))
#define KADDR 0xffff888000100000ULL	/* a kernel (direct map) address */

/* ---------------------------------------------------------------- ring */

struct ring {
	int fd;
	void *map;
	size_t size;
	struct xsc_setup p;
	struct xsc_ring_hdr *hdr;
	struct xsc_sqe *sqes;
	struct xsc_cqe *cqes;
	uint32_t sq_tail, cq_head;	/* user-side producer/consumer indices */
};

static int has_op(unsigned int nr)
{
	if (!g_probe_ok || nr >= XSC_NR_LIMIT)
		return 0;
	return (g_probe.ops[nr / 64] >> (nr % 64)) & 1;
}

static int ring_init_flags(struct ring *r, unsigned int sq, unsigned int cq, unsigned int flags)
{
	int e;

	memset(r, 0, sizeof(*r));
	r->fd = open(XSC_DEV, O_RDWR | O_CLOEXEC);
	if (r->fd < 0)
		return -errno;
	r->p.sq_entries = sq;
	r->p.cq_entries = cq;
	r->p.flags = flags;
	if (ioctl(r->fd, XSC_IOC_SETUP, &r->p)) {
		e = -errno;
		close(r->fd);
		return e;
	}
	r->size = r->p.ring_size;
	r->map = mmap(NULL, r->size, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, 0);
	if (r->map == MAP_FAILED) {
		e = -errno;
		close(r->fd);
		return e;
	}
	r->hdr = r->map;
	r->sqes = (struct xsc_sqe *)((char *)r->map + r->p.sqes_off);
	r->cqes = (struct xsc_cqe *)((char *)r->map + r->p.cqes_off);
	r->sq_tail = r->hdr->sq_tail;
	r->cq_head = r->hdr->cq_head;
	return 0;
}

static int ring_init(struct ring *r, unsigned int sq, unsigned int cq)
{
	return ring_init_flags(r, sq, cq, 0);
}

static void ring_fini(struct ring *r)
{
	if (r->map && r->map != MAP_FAILED)
		munmap(r->map, r->size);
	if (r->fd >= 0)
		close(r->fd);
	r->map = NULL;
	r->fd = -1;
}

#define RING(r, sq, cq) do {						\
	int __e = ring_init((r), (sq), (cq));				\
	CHECK(__e == 0, "ring_init(%u,%u) = %d (%s)", (unsigned)(sq),	\
	      (unsigned)(cq), __e, strerror(-__e));			\
} while (0)

static int sq_push6(struct ring *r, unsigned int op, uint64_t ud, const uint64_t *a)
{
	uint32_t head = __atomic_load_n(&r->hdr->sq_head, __ATOMIC_ACQUIRE);
	struct xsc_sqe *s;

	if (r->sq_tail - head >= r->p.sq_entries)
		return -1;		/* SQ full */
	s = &r->sqes[r->sq_tail & (r->p.sq_entries - 1)];
	memset(s, 0, sizeof(*s));
	s->opcode = op;
	s->user_data = ud;
	memcpy(s->args, a, sizeof(s->args));
	r->sq_tail++;
	__atomic_store_n(&r->hdr->sq_tail, r->sq_tail, __ATOMIC_RELEASE);
	return 0;
}
#define PUSH(r, op, ud, ...) sq_push6((r), (op), (ud), (const uint64_t[6]){ __VA_ARGS__ })

static long ring_enter(struct ring *r, uint32_t n)
{
	struct xsc_enter e = { .to_submit = n };
	long ret = ioctl(r->fd, XSC_IOC_ENTER, &e);

	return ret < 0 ? -errno : ret;
}

static int cq_pop(struct ring *r, struct xsc_cqe *out)
{
	uint32_t tail = __atomic_load_n(&r->hdr->cq_tail, __ATOMIC_ACQUIRE);

	if (r->cq_head == tail)
		return 0;
	*out = r->cqes[r->cq_head & (r->p.cq_entries - 1)];
	r->cq_head++;
	__atomic_store_n(&r->hdr->cq_head, r->cq_head, __ATOMIC_RELEASE);
	return 1;
}

#define BADRES ((int64_t)0x7eadbeefdeadbeefLL)
/* submit one op, wait for it, return its CQE result (BADRES on ring failure) */
static int64_t call6(struct ring *r, unsigned int op, const uint64_t *a)
{
	struct xsc_cqe c;
	long n;

	if (sq_push6(r, op, 0x5a5a, a)) {
		diag("call: SQ full");
		return BADRES;
	}
	n = ring_enter(r, 1);
	if (n != 1) {
		diag("call: enter returned %ld", n);
		return BADRES;
	}
	if (!cq_pop(r, &c)) {
		diag("call: no CQE");
		return BADRES;
	}
	if (c.user_data != 0x5a5a || c.opcode != op) {
		diag("call: CQE mismatch ud=%llx op=%u", (unsigned long long)c.user_data, c.opcode);
		return BADRES;
	}
	return c.res;
}
#define CALL(r, op, ...) call6((r), (op), (const uint64_t[6]){ __VA_ARGS__ })

static long sysret(long v)	/* traditional syscall, kernel-style result */
{
	return v < 0 ? -errno : v;
}

static int fdinfo_get(int fd, const char *key, unsigned long long *val)
{
	char path[64], line[256];
	FILE *f;
	size_t kl = strlen(key);
	int found = 0;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, key, kl) && line[kl] == ':' && line[kl + 1] == '\t') {
			*val = strtoull(line + kl + 2, NULL, 10);
			found = 1;
		}
	}
	fclose(f);
	return found ? 0 : -1;
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int child_status(pid_t pid)	/* exit code, or 1000+signal */
{
	int st;

	if (waitpid(pid, &st, 0) != pid)
		return -1;
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	if (WIFSIGNALED(st))
		return 1000 + WTERMSIG(st);
	return -1;
}

static long int80(long nr, long a, long b, long c)
{
	long ret;

	__asm__ volatile("int $0x80" : "=a"(ret) : "a"(nr), "b"(a), "c"(b), "d"(c)
			 : "memory", "r8", "r9", "r10", "r11");
	return ret;
}

static int install_seccomp_allow_all(void)
{
	struct sock_filter f[] = { BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW) };
	struct sock_fprog prog = { .len = 1, .filter = f };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return -errno;
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog))
		return -errno;
	return 0;
}

/* ========================================================= 1. setup */

static int t_open_dev(void)
{
	struct stat st;
	int fd;

	CHECK(stat(XSC_DEV, &st) == 0, "%s: %s (is CONFIG_XSC enabled?)", XSC_DEV, strerror(errno));
	CHECK(S_ISCHR(st.st_mode), "%s is not a character device", XSC_DEV);
	CHECK(major(st.st_rdev) == 10, "major %u is not the misc major", major(st.st_rdev));
	fd = open(XSC_DEV, O_RDWR);
	CHECK(fd >= 0, "open: %s", strerror(errno));
	close(fd);
	return PASS;
}

static int t_probe_basic(void)
{
	struct xsc_probe p;
	unsigned int i, n = 0;
	int fd = open(XSC_DEV, O_RDWR);

	CHECK(fd >= 0, "open: %s", strerror(errno));
	memset(&p, 0xff, sizeof(p));
	CHECK(ioctl(fd, XSC_IOC_PROBE, &p) == 0, "PROBE: %s", strerror(errno));
	CHECK(p.abi_version == XSC_ABI_VERSION, "abi %u", p.abi_version);
	CHECK(p.nr_limit == XSC_NR_LIMIT, "nr_limit %u", p.nr_limit);
	for (i = 0; i < XSC_NR_LIMIT / 64; i++)
		n += __builtin_popcountll(p.ops[i]);
	CHECK(n == p.nr_ops, "nr_ops %u but %u bits", p.nr_ops, n);
	CHECK(!(p.features & XSC_FEAT_SQPOLL), "SQPOLL advertised in v1");
	diag("features=0x%x nr_ops=%u", p.features, p.nr_ops);
	close(fd);
	return PASS;
}

static int t_setup_defaults(void)
{
	struct xsc_setup p = { .sq_entries = 100 };
	long pg = sysconf(_SC_PAGESIZE);
	int fd = open(XSC_DEV, O_RDWR);

	CHECK(fd >= 0, "open: %s", strerror(errno));
	CHECK(ioctl(fd, XSC_IOC_SETUP, &p) == 0, "SETUP: %s", strerror(errno));
	CHECK(p.sq_entries == 128, "sq %u", p.sq_entries);
	CHECK(p.cq_entries == 256, "cq %u", p.cq_entries);
	CHECK(p.abi_version == XSC_ABI_VERSION, "abi %u", p.abi_version);
	CHECK(p.sqes_off == pg, "sqes_off %u", p.sqes_off);
	CHECK(p.cqes_off == pg + 128 * 64, "cqes_off %u", p.cqes_off);
	CHECK(p.ring_size == (uint64_t)pg + 128 * 64 + 256 * 32, "ring_size %llu",
	      (unsigned long long)p.ring_size);
	CHECK(p.features == g_probe.features, "features 0x%x vs probe 0x%x", p.features, g_probe.features);
	close(fd);
	return PASS;
}

static int t_setup_cq_explicit(void)
{
	struct xsc_setup p = { .sq_entries = 8, .cq_entries = 20 };
	int fd = open(XSC_DEV, O_RDWR);

	CHECK(fd >= 0, "open: %s", strerror(errno));
	CHECK(ioctl(fd, XSC_IOC_SETUP, &p) == 0, "SETUP: %s", strerror(errno));
	CHECK(p.sq_entries == 8 && p.cq_entries == 32, "sq %u cq %u", p.sq_entries, p.cq_entries);
	close(fd);
	return PASS;
}

static int setup_errno(unsigned int sq, unsigned int cq, unsigned int flags, int resv)
{
	struct xsc_setup p = { .sq_entries = sq, .cq_entries = cq, .flags = flags };
	int fd = open(XSC_DEV, O_RDWR), r;

	if (fd < 0)
		return -10000;
	if (resv == 1)
		p.__resv0 = 1;
	if (resv == 2)
		p.__resv1[2] = 1;
	r = ioctl(fd, XSC_IOC_SETUP, &p) ? errno : 0;
	close(fd);
	return r;
}

static int t_setup_rejects_sizes(void)
{
	int e;

	CHECK((e = setup_errno(0, 0, 0, 0)) == EINVAL, "sq=0 -> %d", e);
	CHECK((e = setup_errno(4097, 0, 0, 0)) == EINVAL, "sq=4097 -> %d", e);
	CHECK((e = setup_errno(16, 8, 0, 0)) == EINVAL, "cq<sq -> %d", e);
	CHECK((e = setup_errno(16, 8193, 0, 0)) == EINVAL, "cq=8193 -> %d", e);
	CHECK((e = setup_errno(0xffffffffu, 0, 0, 0)) == EINVAL, "sq=UINT_MAX -> %d", e);
	CHECK((e = setup_errno(4096, 8192, 0, 0)) == 0, "sq=4096 cq=8192 -> %d", e);
	return PASS;
}

static int t_setup_rejects_flags_resv(void)
{
	int e;

	CHECK((e = setup_errno(8, 0, 1, 0)) == EINVAL, "flags=1 (SQPOLL) -> %d", e);
	CHECK((e = setup_errno(8, 0, 0x80000000u, 0)) == EINVAL, "flags=bit31 -> %d", e);
	CHECK((e = setup_errno(8, 0, 0, 1)) == EINVAL, "__resv0 -> %d", e);
	CHECK((e = setup_errno(8, 0, 0, 2)) == EINVAL, "__resv1 -> %d", e);
	return PASS;
}

static int t_setup_twice_ebusy(void)
{
	struct xsc_setup p = { .sq_entries = 8 };
	int fd = open(XSC_DEV, O_RDWR);

	CHECK(fd >= 0, "open: %s", strerror(errno));
	CHECK(ioctl(fd, XSC_IOC_SETUP, &p) == 0, "SETUP: %s", strerror(errno));
	memset(&p, 0, sizeof(p));
	p.sq_entries = 8;
	CHECK(ioctl(fd, XSC_IOC_SETUP, &p) == -1 && errno == EBUSY, "second SETUP: %s", strerror(errno));
	close(fd);
	return PASS;
}

static int t_enter_before_setup(void)
{
	struct xsc_enter e = { .to_submit = 1 };
	struct xsc_guard g = { .mode = XSC_GUARD_ERRNO };
	int fd = open(XSC_DEV, O_RDWR);

	CHECK(fd >= 0, "open: %s", strerror(errno));
	CHECK(ioctl(fd, XSC_IOC_ENTER, &e) == -1 && errno == EBADFD, "ENTER: %s", strerror(errno));
	if (g_probe.features & XSC_FEAT_TRAP_GUARD)
		CHECK(ioctl(fd, XSC_IOC_GUARD, &g) == -1 && errno == EBADFD, "GUARD: %s", strerror(errno));
	close(fd);
	return PASS;
}

static int t_mmap_before_setup(void)
{
	int fd = open(XSC_DEV, O_RDWR);
	void *m;

	CHECK(fd >= 0, "open: %s", strerror(errno));
	m = mmap(NULL, 4096 * 3, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(m == MAP_FAILED && errno == EBADFD, "mmap: %s", strerror(errno));
	close(fd);
	return PASS;
}

static int t_mmap_bad_args(void)
{
	struct ring r;
	void *m;

	RING(&r, 8, 0);
	m = mmap(NULL, r.size - 4096, PROT_READ | PROT_WRITE, MAP_SHARED, r.fd, 0);
	CHECK(m == MAP_FAILED && errno == EINVAL, "short mmap: %s", strerror(errno));
	m = mmap(NULL, r.size + 4096, PROT_READ | PROT_WRITE, MAP_SHARED, r.fd, 0);
	CHECK(m == MAP_FAILED && errno == EINVAL, "long mmap: %s", strerror(errno));
	m = mmap(NULL, r.size, PROT_READ | PROT_WRITE, MAP_SHARED, r.fd, 4096);
	CHECK(m == MAP_FAILED && errno == EINVAL, "offset mmap: %s", strerror(errno));
	m = mmap(NULL, r.size, PROT_READ | PROT_WRITE, MAP_PRIVATE, r.fd, 0);
	CHECK(m == MAP_FAILED && errno == EINVAL, "private mmap: %s", strerror(errno));
	m = mmap(NULL, r.size, PROT_READ | PROT_EXEC, MAP_SHARED, r.fd, 0);
	CHECK(m == MAP_FAILED && errno == EPERM, "exec mmap: %s", strerror(errno));
	m = mmap(NULL, r.size, PROT_READ, MAP_SHARED, r.fd, 0);
	CHECK(m != MAP_FAILED, "second mapping: %s", strerror(errno));
	CHECK(mprotect(m, r.size, PROT_READ | PROT_EXEC) == -1, "mprotect +x succeeded");
	munmap(m, r.size);
	ring_fini(&r);
	return PASS;
}

static int t_bad_ioctl_ptr(void)
{
	int fd = open(XSC_DEV, O_RDWR);
	struct xsc_setup p = { .sq_entries = 8 };

	CHECK(fd >= 0, "open: %s", strerror(errno));
	CHECK(ioctl(fd, XSC_IOC_PROBE, (void *)8) == -1 && errno == EFAULT, "PROBE: %s", strerror(errno));
	CHECK(ioctl(fd, XSC_IOC_SETUP, (void *)KADDR) == -1 && errno == EFAULT, "SETUP: %s", strerror(errno));
	CHECK(ioctl(fd, XSC_IOC_SETUP, &p) == 0, "SETUP: %s", strerror(errno));
	CHECK(ioctl(fd, XSC_IOC_ENTER, (void *)8) == -1 && errno == EFAULT, "ENTER: %s", strerror(errno));
	if (g_probe.features & XSC_FEAT_TRAP_GUARD)
		CHECK(ioctl(fd, XSC_IOC_GUARD, (void *)8) == -1 && errno == EFAULT, "GUARD: %s", strerror(errno));
	close(fd);
	return PASS;
}

static int t_unknown_ioctl(void)
{
	int fd = open(XSC_DEV, O_RDWR);
	struct { int x[16]; } t;

	CHECK(fd >= 0, "open: %s", strerror(errno));
	CHECK(ioctl(fd, _IO('x', 0x7f)) == -1 && errno == ENOTTY, "_IO('x',0x7f): %s", strerror(errno));
	CHECK(ioctl(fd, _IOR('x', 0x04, uint64_t), &t) == -1 && errno == ENOTTY, "wrong size: %s", strerror(errno));
	CHECK(ioctl(fd, 0x5401 /* TCGETS */, &t) == -1 && errno == ENOTTY, "TCGETS: %s", strerror(errno));
	CHECK(lseek(fd, 0, SEEK_SET) == -1 && errno == ESPIPE, "lseek: %s", strerror(errno));
	close(fd);
	return PASS;
}

static int t_header_fields(void)
{
	struct ring r;

	RING(&r, 32, 0);
	CHECK(r.hdr->sq_entries == 32 && r.hdr->sq_mask == 31, "sq %u/%u", r.hdr->sq_entries, r.hdr->sq_mask);
	CHECK(r.hdr->cq_entries == 64 && r.hdr->cq_mask == 63, "cq %u/%u", r.hdr->cq_entries, r.hdr->cq_mask);
	CHECK(r.hdr->sq_head == 0 && r.hdr->sq_tail == 0 && r.hdr->cq_head == 0 && r.hdr->cq_tail == 0,
	      "indices not zero");
	CHECK(r.hdr->cq_full == 0 && r.hdr->sq_flags == 0, "flags/cq_full not zero");
	ring_fini(&r);
	return PASS;
}

static int t_fdinfo_format(void)
{
	static const char *keys[] = { "xsc-abi", "xsc-sq-entries", "xsc-cq-entries", "xsc-submitted",
				      "xsc-completed", "xsc-errors", "xsc-cq-full" };
	unsigned long long v;
	struct ring r;
	unsigned int i;
	int fd = open(XSC_DEV, O_RDWR);

	CHECK(fd >= 0, "open: %s", strerror(errno));
	CHECK(fdinfo_get(fd, "xsc-sq-entries", &v) == 0 && v == 0, "unset ring sq-entries %llu", v);
	close(fd);
	RING(&r, 16, 64);
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		CHECK(fdinfo_get(r.fd, keys[i], &v) == 0, "fdinfo lacks '%s:\\t'", keys[i]);
	CHECK(fdinfo_get(r.fd, "xsc-abi", &v) == 0 && v == 1, "abi %llu", v);
	CHECK(fdinfo_get(r.fd, "xsc-sq-entries", &v) == 0 && v == 16, "sq %llu", v);
	CHECK(fdinfo_get(r.fd, "xsc-cq-entries", &v) == 0 && v == 64, "cq %llu", v);
	CHECK(fdinfo_get(r.fd, "xsc-submitted", &v) == 0 && v == 0, "submitted %llu", v);
	ring_fini(&r);
	return PASS;
}

/* ========================================================= 2. core */

static int t_nop_single(void)
{
	struct xsc_cqe c;
	struct ring r;

	RING(&r, 8, 0);
	memset(r.cqes, 0xff, r.p.cq_entries * sizeof(c));	/* resv fields must be rewritten */
	CHECK(PUSH(&r, XSC_OP_NOP, 0x1122334455667788ULL, 1, 2, 3) == 0, "push");
	CHECK(ring_enter(&r, 1) == 1, "enter");
	CHECK(cq_pop(&r, &c) == 1, "no CQE");
	CHECK(c.res == 0 && c.user_data == 0x1122334455667788ULL && c.opcode == XSC_OP_NOP,
	      "res %lld ud %llx op %x", (long long)c.res, (unsigned long long)c.user_data, c.opcode);
	CHECK(c.flags == 0 && c.__resv0 == 0 && c.__resv1 == 0, "CQE reserved fields not zero");
	CHECK(r.hdr->sq_head == 1 && r.hdr->cq_tail == 1, "head %u tail %u", r.hdr->sq_head, r.hdr->cq_tail);
	ring_fini(&r);
	return PASS;
}

static int t_nop_batch_order(void)
{
	struct xsc_cqe c;
	struct ring r;
	long n;
	int i;

	RING(&r, 64, 0);
	for (i = 0; i < 64; i++)
		CHECK(PUSH(&r, XSC_OP_NOP, i) == 0, "push %d", i);
	CHECK((n = ring_enter(&r, 64)) == 64, "enter -> %ld", n);
	for (i = 0; i < 64; i++) {
		CHECK(cq_pop(&r, &c) == 1, "missing CQE %d", i);
		CHECK(c.user_data == (uint64_t)i && c.res == 0, "CQE %d: ud %llu res %lld", i,
		      (unsigned long long)c.user_data, (long long)c.res);
	}
	CHECK(cq_pop(&r, &c) == 0, "extra CQE");
	ring_fini(&r);
	return PASS;
}

static int t_to_submit_partial(void)
{
	struct xsc_cqe c;
	struct ring r;
	long n;
	int i;

	RING(&r, 16, 0);
	for (i = 0; i < 10; i++)
		PUSH(&r, XSC_OP_NOP, i);
	CHECK((n = ring_enter(&r, 4)) == 4, "enter(4) -> %ld", n);
	CHECK(r.hdr->sq_head == 4, "sq_head %u", r.hdr->sq_head);
	CHECK((n = ring_enter(&r, 0)) == 0, "enter(0) -> %ld", n);
	CHECK((n = ring_enter(&r, 100)) == 6, "enter(100) -> %ld", n);
	CHECK((n = ring_enter(&r, 100)) == 0, "enter on empty SQ -> %ld", n);
	for (i = 0; i < 10; i++)
		CHECK(cq_pop(&r, &c) == 1 && c.user_data == (uint64_t)i, "CQE %d", i);
	ring_fini(&r);
	return PASS;
}

static int t_index_wraparound(void)
{
	struct xsc_cqe c;
	struct ring r;
	uint64_t ud = 0, expect = 0;
	int round, i;

	RING(&r, 8, 8);
	for (round = 0; round < 40; round++) {
		for (i = 0; i < 6; i++)
			CHECK(PUSH(&r, XSC_OP_NOP, ud++) == 0, "push round %d", round);
		CHECK(ring_enter(&r, 6) == 6, "enter round %d", round);
		for (i = 0; i < 6; i++) {
			CHECK(cq_pop(&r, &c) == 1, "missing CQE round %d", round);
			CHECK(c.user_data == expect, "round %d: ud %llu expected %llu", round,
			      (unsigned long long)c.user_data, (unsigned long long)expect);
			expect++;
		}
	}
	CHECK(r.hdr->sq_head == 240 && r.hdr->cq_tail == 240, "indices %u %u", r.hdr->sq_head, r.hdr->cq_tail);
	ring_fini(&r);
	return PASS;
}

static int t_poll_pollin(void)
{
	struct pollfd pfd;
	struct xsc_cqe c;
	struct ring r;

	RING(&r, 8, 0);
	pfd.fd = r.fd;
	pfd.events = POLLIN;
	CHECK(poll(&pfd, 1, 0) == 0, "POLLIN on empty CQ (revents %x)", pfd.revents);
	PUSH(&r, XSC_OP_NOP, 1);
	ring_enter(&r, 1);
	CHECK(poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLIN), "no POLLIN with a CQE");
	cq_pop(&r, &c);
	CHECK(poll(&pfd, 1, 0) == 0, "POLLIN after reaping");
	ring_fini(&r);
	return PASS;
}

static int t_fdinfo_counters(void)
{
	unsigned long long sub, comp, err, full;
	struct xsc_cqe c;
	struct ring r;
	int i;

	RING(&r, 16, 0);
	for (i = 0; i < 5; i++)
		PUSH(&r, XSC_OP_NOP, i);
	PUSH(&r, 0x7fff, 5);
	PUSH(&r, XSC_OP_NOP + 1, 6);
	CHECK(ring_enter(&r, 16) == 7, "enter");
	while (cq_pop(&r, &c))
		;
	CHECK(!fdinfo_get(r.fd, "xsc-submitted", &sub) && sub == 7, "submitted %llu", sub);
	CHECK(!fdinfo_get(r.fd, "xsc-completed", &comp) && comp == 7, "completed %llu", comp);
	CHECK(!fdinfo_get(r.fd, "xsc-errors", &err) && err == 2, "errors %llu", err);
	CHECK(!fdinfo_get(r.fd, "xsc-cq-full", &full) && full == 0, "cq-full %llu", full);
	ring_fini(&r);
	return PASS;
}

static int t_enter_args_checked(void)
{
	struct xsc_enter e = { .to_submit = 1, .flags = 1 };
	struct ring r;

	RING(&r, 8, 0);
	PUSH(&r, XSC_OP_NOP, 1);
	CHECK(ioctl(r.fd, XSC_IOC_ENTER, &e) == -1 && errno == EINVAL, "flags=1: %s", strerror(errno));
	e.flags = 0;
	e.__resv[1] = 1;
	CHECK(ioctl(r.fd, XSC_IOC_ENTER, &e) == -1 && errno == EINVAL, "resv: %s", strerror(errno));
	CHECK(r.hdr->sq_head == 0, "consumed despite EINVAL");
	CHECK(ring_enter(&r, 1) == 1, "valid enter");
	ring_fini(&r);
	return PASS;
}

static int t_getpid_batch(void)
{
	struct xsc_cqe c;
	struct ring r;
	int i;

	SKIPIF(!has_op(SYS_getpid), "getpid not offered");
	RING(&r, 64, 0);
	for (i = 0; i < 64; i++)
		PUSH(&r, i % 2 ? SYS_getpid : XSC_OP_NOP, i);
	CHECK(ring_enter(&r, 64) == 64, "enter");
	for (i = 0; i < 64; i++) {
		CHECK(cq_pop(&r, &c) == 1, "CQE %d", i);
		CHECK(c.res == (i % 2 ? getpid() : 0) && c.opcode == (i % 2 ? SYS_getpid : XSC_OP_NOP),
		      "CQE %d res %lld", i, (long long)c.res);
	}
	ring_fini(&r);
	return PASS;
}

/* ========================================================= 3. errors */

static int t_unknown_opcode(void)
{
	struct xsc_cqe c;
	struct ring r;

	RING(&r, 8, 0);
	PUSH(&r, 0x7fff, 1);
	PUSH(&r, XSC_OP_NOP, 2);
	CHECK(ring_enter(&r, 8) == 2, "enter");
	CHECK(cq_pop(&r, &c) && c.user_data == 1 && c.res == -EINVAL, "0x7fff res %lld", (long long)c.res);
	CHECK(cq_pop(&r, &c) && c.user_data == 2 && c.res == 0, "following NOP res %lld", (long long)c.res);
	ring_fini(&r);
	return PASS;
}

static int t_forbidden_syscalls(void)
{
	static const unsigned int nrs[] = { SYS_mmap, SYS_munmap, SYS_mprotect, SYS_ioctl, SYS_fork,
		SYS_vfork, SYS_clone, SYS_exit, SYS_rt_sigreturn, SYS_ptrace, SYS_arch_prctl,
		SYS_iopl, SYS_modify_ldt, SYS_clone3, SYS_setuid, SYS_reboot, SYS_init_module,
		SYS_seccomp, SYS_prctl, SYS_io_uring_setup };
	struct xsc_cqe c;
	struct ring r;
	unsigned int i, n = sizeof(nrs) / sizeof(nrs[0]);

	RING(&r, 32, 0);
	for (i = 0; i < n; i++) {
		CHECK(!has_op(nrs[i]), "syscall %u is offered by PROBE", nrs[i]);
		PUSH(&r, nrs[i], i, 0, 0, 0, 0, 0, 0);
	}
	CHECK(ring_enter(&r, n) == (long)n, "enter");
	for (i = 0; i < n; i++)
		CHECK(cq_pop(&r, &c) && c.res == -EINVAL, "syscall %u res %lld", nrs[i], (long long)c.res);
	ring_fini(&r);
	return PASS;
}

static int t_opcode_range(void)
{
	static const unsigned int ops[] = { 511, 512, 513, 0x7fff, 0x8001, 0x8fff, 0xfffe, 0xffff };
	struct xsc_cqe c;
	struct ring r;
	unsigned int i, n = sizeof(ops) / sizeof(ops[0]);

	RING(&r, 16, 0);
	for (i = 0; i < n; i++)
		PUSH(&r, ops[i], i);
	CHECK(ring_enter(&r, n) == (long)n, "enter");
	for (i = 0; i < n; i++)
		CHECK(cq_pop(&r, &c) && c.res == -EINVAL && c.opcode == ops[i], "op %#x res %lld",
		      ops[i], (long long)c.res);
	ring_fini(&r);
	return PASS;
}

static int t_sqe_flags_resv(void)
{
	struct xsc_cqe c;
	struct ring r;

	RING(&r, 8, 0);
	PUSH(&r, XSC_OP_NOP, 1);
	r.sqes[0].flags = 1;
	PUSH(&r, XSC_OP_NOP, 2);
	r.sqes[1].__resv0 = 0x80000000u;
	PUSH(&r, XSC_OP_NOP, 3);
	CHECK(ring_enter(&r, 3) == 3, "enter");
	CHECK(cq_pop(&r, &c) && c.res == -EINVAL, "flags: res %lld", (long long)c.res);
	CHECK(cq_pop(&r, &c) && c.res == -EINVAL, "resv0: res %lld", (long long)c.res);
	CHECK(cq_pop(&r, &c) && c.res == 0, "clean NOP: res %lld", (long long)c.res);
	ring_fini(&r);
	return PASS;
}

static int t_bad_user_pointer(void)
{
	struct ring r;
	int p[2];
	int64_t res;

	SKIPIF(!has_op(SYS_read) || !has_op(SYS_write), "read/write not offered");
	CHECK(pipe(p) == 0, "pipe");
	CHECK(write(p[1], "0123456789abcdef", 16) == 16, "fill pipe");
	RING(&r, 8, 0);
	CHECK((res = CALL(&r, SYS_read, p[0], 1, 16)) == -EFAULT, "read to (void*)1 -> %lld", (long long)res);
	CHECK((res = CALL(&r, SYS_write, p[1], 1, 16)) == -EFAULT, "write from (void*)1 -> %lld", (long long)res);
	CHECK((res = CALL(&r, SYS_read, p[0], 0x00007ffffffff000ULL, 16)) == -EFAULT, "unmapped -> %lld",
	      (long long)res);
	ring_fini(&r);
	return PASS;
}

static int t_kernel_pointer(void)
{
	struct ring r;
	int p[2];
	int64_t res;
	char buf[16];

	SKIPIF(!has_op(SYS_read) || !has_op(SYS_write), "read/write not offered");
	CHECK(pipe(p) == 0, "pipe");
	CHECK(write(p[1], "0123456789abcdef", 16) == 16, "fill pipe");
	RING(&r, 8, 0);
	CHECK((res = CALL(&r, SYS_read, p[0], KADDR, 16)) == -EFAULT, "read into kernel -> %lld", (long long)res);
	CHECK((res = CALL(&r, SYS_write, p[1], KADDR, 16)) == -EFAULT, "write from kernel -> %lld",
	      (long long)res);
	CHECK((res = CALL(&r, SYS_write, p[1], 0x8000000000000000ULL, 16)) == -EFAULT,
	      "non-canonical -> %lld", (long long)res);
	CHECK(read(p[0], buf, 16) == 16 && !memcmp(buf, "0123456789abcdef", 16), "pipe content changed");
	ring_fini(&r);
	return PASS;
}

static int t_bad_fd(void)
{
	struct ring r;
	int64_t res;
	char buf[4];

	SKIPIF(!has_op(SYS_read) || !has_op(SYS_close), "read/close not offered");
	RING(&r, 8, 0);
	CHECK((res = CALL(&r, SYS_read, -1, U(buf), 4)) == -EBADF, "read(-1) -> %lld", (long long)res);
	CHECK((res = CALL(&r, SYS_close, 9999)) == -EBADF, "close(9999) -> %lld", (long long)res);
	CHECK((res = CALL(&r, SYS_read, 0x7fffffff, U(buf), 4)) == -EBADF, "read(INT_MAX) -> %lld",
	      (long long)res);
	ring_fini(&r);
	return PASS;
}

static int t_errors_dont_stop_batch(void)
{
	struct xsc_cqe c;
	struct ring r;
	int i;

	RING(&r, 16, 0);
	for (i = 0; i < 12; i++)
		PUSH(&r, i % 3 == 0 ? 0x7ffe : XSC_OP_NOP, i);
	CHECK(ring_enter(&r, 12) == 12, "enter");
	for (i = 0; i < 12; i++)
		CHECK(cq_pop(&r, &c) && c.user_data == (uint64_t)i && c.res == (i % 3 == 0 ? -EINVAL : 0),
		      "CQE %d res %lld", i, (long long)c.res);
	ring_fini(&r);
	return PASS;
}

static int t_sq_tail_corrupt(void)
{
	struct xsc_cqe c;
	struct ring r;
	long n;

	RING(&r, 8, 0);
	PUSH(&r, XSC_OP_NOP, 1);
	r.hdr->sq_tail = 8 + 5;				/* tail - head > entries */
	CHECK((n = ring_enter(&r, 8)) == -EINVAL, "enter -> %ld", n);
	CHECK(r.hdr->sq_head == 0, "sq_head moved to %u", r.hdr->sq_head);
	r.hdr->sq_tail = r.sq_tail;			/* repair */
	CHECK((n = ring_enter(&r, 8)) == 1, "enter after repair -> %ld", n);
	CHECK(cq_pop(&r, &c) && c.user_data == 1, "CQE");
	ring_fini(&r);
	return PASS;
}

/* ========================================================= 4. fs */

static int tmpfile_fd(char *path, size_t len)
{
	static int seq;

	snprintf(path, len, "/tmp/xsc_test_%d_%d", getpid(), seq++);
	return open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
}

static int t_fs_pipe_roundtrip(void)
{
	struct ring r;
	char buf[32] = "";
	int p[2];
	int64_t res;

	CHECK(pipe(p) == 0, "pipe");
	RING(&r, 8, 0);
	CHECK((res = CALL(&r, SYS_write, p[1], U("hello ring"), 10)) == 10, "write -> %lld", (long long)res);
	CHECK((res = CALL(&r, SYS_read, p[0], U(buf), sizeof(buf))) == 10, "read -> %lld", (long long)res);
	CHECK(!memcmp(buf, "hello ring", 10), "data '%s'", buf);
	ring_fini(&r);
	return PASS;
}

static int t_fs_file_roundtrip(void)
{
	char path[64], buf[64] = "";
	struct ring r;
	int fd = tmpfile_fd(path, sizeof(path));
	int64_t res;

	CHECK(fd >= 0, "open %s: %s", path, strerror(errno));
	RING(&r, 8, 0);
	CHECK((res = CALL(&r, SYS_write, fd, U("abcdefgh"), 8)) == 8, "write -> %lld", (long long)res);
	CHECK((res = CALL(&r, SYS_lseek, fd, 2, SEEK_SET)) == 2, "lseek -> %lld", (long long)res);
	CHECK((res = CALL(&r, SYS_read, fd, U(buf), 64)) == 6, "read -> %lld", (long long)res);
	CHECK(!memcmp(buf, "cdefgh", 6), "data '%s'", buf);
	CHECK(lseek(fd, 0, SEEK_CUR) == 8, "f_pos not shared with the traditional view");
	unlink(path);
	ring_fini(&r);
	return PASS;
}

static int t_fs_pread_pwrite(void)
{
	char path[64], buf[8] = "";
	struct ring r;
	int fd = tmpfile_fd(path, sizeof(path));
	int64_t res;

	CHECK(fd >= 0, "open: %s", strerror(errno));
	CHECK(write(fd, "0123456789", 10) == 10, "prefill");
	lseek(fd, 3, SEEK_SET);
	RING(&r, 8, 0);
	CHECK((res = CALL(&r, SYS_pwrite64, fd, U("XY"), 2, 7)) == 2, "pwrite -> %lld", (long long)res);
	CHECK((res = CALL(&r, SYS_pread64, fd, U(buf), 4, 6)) == 4, "pread -> %lld", (long long)res);
	CHECK(!memcmp(buf, "6XY9", 4), "data '%.4s'", buf);
	CHECK(lseek(fd, 0, SEEK_CUR) == 3, "f_pos moved");
	CHECK((res = CALL(&r, SYS_pread64, fd, U(buf), 4, -1)) == -EINVAL, "negative offset -> %lld",
	      (long long)res);
	unlink(path);
	ring_fini(&r);
	return PASS;
}

static int t_fs_openat_close(void)
{
	char path[64];
	struct stat st;
	struct ring r;
	int64_t fd, res;

	snprintf(path, sizeof(path), "/tmp/xsc_open_%d", getpid());
	RING(&r, 8, 0);
	fd = CALL(&r, SYS_openat, AT_FDCWD, U(path), O_RDWR | O_CREAT | O_EXCL, 0640);
	CHECK(fd >= 0, "openat -> %lld", (long long)fd);
	CHECK(fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0777) == (0640 & ~umask(0)),
	      "fstat mode %o", st.st_mode);
	CHECK((res = CALL(&r, SYS_openat, AT_FDCWD, U(path), O_RDWR | O_CREAT | O_EXCL, 0640)) == -EEXIST,
	      "second O_EXCL -> %lld", (long long)res);
	CHECK((res = CALL(&r, SYS_close, fd)) == 0, "close -> %lld", (long long)res);
	CHECK(fcntl(fd, F_GETFD) == -1 && errno == EBADF, "fd still open");
	CHECK((res = CALL(&r, SYS_openat, AT_FDCWD, U("/nonexistent/x"), O_RDONLY)) == -ENOENT,
	      "ENOENT -> %lld", (long long)res);
	unlink(path);
	ring_fini(&r);
	return PASS;
}

static int t_fs_fstat(void)
{
	char path[64];
	struct stat st, st2;
	struct ring r;
	int fd = tmpfile_fd(path, sizeof(path));
	int64_t res;

	CHECK(fd >= 0, "open: %s", strerror(errno));
	CHECK(ftruncate(fd, 1234) == 0, "ftruncate");
	RING(&r, 8, 0);
	memset(&st, 0, sizeof(st));
	CHECK((res = CALL(&r, SYS_fstat, fd, U(&st))) == 0, "fstat -> %lld", (long long)res);
	CHECK(st.st_size == 1234, "size %lld", (long long)st.st_size);
	if (has_op(SYS_newfstatat)) {
		memset(&st2, 0, sizeof(st2));
		CHECK((res = CALL(&r, SYS_newfstatat, AT_FDCWD, U(path), U(&st2), 0)) == 0,
		      "newfstatat -> %lld", (long long)res);
		CHECK(st2.st_size == 1234 && st2.st_ino == st.st_ino, "newfstatat size %lld", (long long)st2.st_size);
	}
	CHECK((res = CALL(&r, SYS_fstat, fd, KADDR)) == -EFAULT, "fstat to kernel -> %lld", (long long)res);
	unlink(path);
	ring_fini(&r);
	return PASS;
}

static int t_fs_lseek_5gib(void)
{
	char path[64];
	struct ring r;
	int fd = tmpfile_fd(path, sizeof(path));
	int64_t res;

	CHECK(fd >= 0, "open: %s", strerror(errno));
	RING(&r, 8, 0);
	res = CALL(&r, SYS_lseek, fd, 5368709120ULL, SEEK_SET);
	CHECK(res == 5368709120LL, "lseek 5 GiB -> %lld (64-bit res?)", (long long)res);
	CHECK((res = CALL(&r, SYS_write, fd, U("z"), 1)) == 1, "write at 5 GiB -> %lld", (long long)res);
	CHECK((res = CALL(&r, SYS_lseek, fd, 0, SEEK_END)) == 5368709121LL, "SEEK_END -> %lld", (long long)res);
	CHECK((res = CALL(&r, SYS_lseek, fd, -1, SEEK_SET)) == -EINVAL, "negative -> %lld", (long long)res);
	unlink(path);
	ring_fini(&r);
	return PASS;
}

static int t_fs_readv_writev(void)
{
	char a[4] = "", b[8] = "";
	struct iovec wv[2] = { { "ring", 4 }, { "-vector", 7 } };
	struct iovec rv[2] = { { a, 4 }, { b, 8 } };
	struct ring r;
	int p[2];
	int64_t res;

	SKIPIF(!has_op(SYS_readv) || !has_op(SYS_writev), "readv/writev not offered");
	CHECK(pipe(p) == 0, "pipe");
	RING(&r, 8, 0);
	CHECK((res = CALL(&r, SYS_writev, p[1], U(wv), 2)) == 11, "writev -> %lld", (long long)res);
	CHECK((res = CALL(&r, SYS_readv, p[0], U(rv), 2)) == 11, "readv -> %lld", (long long)res);
	CHECK(!memcmp(a, "ring", 4) && !memcmp(b, "-vector", 7), "data");
	ring_fini(&r);
	return PASS;
}

static int t_fs_append_order(void)
{
	char path[64], buf[256] = "", expect[256] = "", num[64][3];
	struct xsc_cqe c;
	struct ring r;
	int fd, i;

	snprintf(path, sizeof(path), "/tmp/xsc_app_%d", getpid());
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_APPEND, 0600);
	CHECK(fd >= 0, "open: %s", strerror(errno));
	RING(&r, 64, 0);
	for (i = 0; i < 64; i++) {
		snprintf(num[i], 3, "%02d", i);
		strcat(expect, num[i]);
		PUSH(&r, SYS_write, i, fd, U(num[i]), 2);
	}
	CHECK(ring_enter(&r, 64) == 64, "enter");
	for (i = 0; i < 64; i++)
		CHECK(cq_pop(&r, &c) && c.res == 2 && c.user_data == (uint64_t)i, "CQE %d res %lld", i,
		      (long long)c.res);
	CHECK(pread(fd, buf, sizeof(buf), 0) == 128, "size");
	CHECK(!memcmp(buf, expect, 128), "order: %.40s...", buf);
	unlink(path);
	ring_fini(&r);
	return PASS;
}

static int t_fs_differential_errors(void)
{
	struct ring r;
	int p[2], ro;
	char buf[4];
	int64_t res;
	long tr;

	CHECK(pipe(p) == 0, "pipe");
	ro = open("/proc/self/stat", O_RDONLY);
	CHECK(ro >= 0, "open");
	RING(&r, 8, 0);
	tr = sysret(lseek(p[0], 0, SEEK_SET));
	CHECK((res = CALL(&r, SYS_lseek, p[0], 0, SEEK_SET)) == tr && tr == -ESPIPE, "lseek pipe %lld vs %ld",
	      (long long)res, tr);
	tr = sysret(write(ro, "x", 1));
	CHECK((res = CALL(&r, SYS_write, ro, U("x"), 1)) == tr && tr == -EBADF, "write to O_RDONLY %lld vs %ld",
	      (long long)res, tr);
	tr = sysret(read(p[1], buf, 1));
	CHECK((res = CALL(&r, SYS_read, p[1], U(buf), 1)) == tr && tr == -EBADF, "read write-end %lld vs %ld",
	      (long long)res, tr);
	tr = sysret(lseek(ro, 0, 42));
	CHECK((res = CALL(&r, SYS_lseek, ro, 0, 42)) == tr, "lseek whence 42 %lld vs %ld", (long long)res, tr);
	ring_fini(&r);
	return PASS;
}

static int t_fs_close_ring_fd(void)
{
	struct ring r;
	struct xsc_cqe c;
	long n;

	RING(&r, 8, 0);
	PUSH(&r, SYS_close, 1, r.fd);
	PUSH(&r, XSC_OP_NOP, 2);
	CHECK((n = ring_enter(&r, 8)) == 2, "enter -> %ld", n);
	CHECK(cq_pop(&r, &c) && c.res == 0, "close(ring fd) res %lld", (long long)c.res);
	CHECK(cq_pop(&r, &c) && c.res == 0, "NOP after close res %lld", (long long)c.res);
	CHECK(fcntl(r.fd, F_GETFD) == -1 && errno == EBADF, "ring fd still open");
	CHECK(r.hdr->sq_entries == 8, "mapping unreadable after close");
	r.fd = -1;
	ring_fini(&r);
	return PASS;
}

/* ========================================================= 5. net */

static socklen_t unix_addr(struct sockaddr_un *a, const char *tag)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	snprintf(a->sun_path + 1, sizeof(a->sun_path) - 1, "xsc-%s-%d", tag, getpid());
	return offsetof(struct sockaddr_un, sun_path) + 1 + strlen(a->sun_path + 1);
}

static int t_net_unix_stream(void)
{
	struct sockaddr_un a;
	socklen_t al = unix_addr(&a, "stream");
	struct xsc_cqe c[4];
	struct ring r;
	int64_t s, cl, ac, res;
	char buf[32] = "";
	int i;

	RING(&r, 16, 0);
	PUSH(&r, SYS_socket, 1, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	PUSH(&r, SYS_socket, 2, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(ring_enter(&r, 2) == 2, "enter sockets");
	CHECK(cq_pop(&r, &c[0]) && cq_pop(&r, &c[1]), "CQEs");
	s = c[0].res;
	cl = c[1].res;
	CHECK(s >= 0 && cl >= 0, "socket -> %lld %lld", (long long)s, (long long)cl);
	PUSH(&r, SYS_bind, 3, s, U(&a), al);
	PUSH(&r, SYS_listen, 4, s, 4);
	PUSH(&r, SYS_connect, 5, cl, U(&a), al);
	PUSH(&r, SYS_accept4, 6, s, 0, 0, SOCK_CLOEXEC);
	CHECK(ring_enter(&r, 4) == 4, "enter bind..accept");
	for (i = 0; i < 4; i++)
		CHECK(cq_pop(&r, &c[i]), "CQE %d", i);
	CHECK(c[0].res == 0 && c[1].res == 0 && c[2].res == 0, "bind %lld listen %lld connect %lld",
	      (long long)c[0].res, (long long)c[1].res, (long long)c[2].res);
	ac = c[3].res;
	CHECK(ac >= 0, "accept4 -> %lld", (long long)ac);
	PUSH(&r, SYS_sendto, 7, cl, U("ping over xsc"), 13, 0, 0, 0);
	PUSH(&r, SYS_recvfrom, 8, ac, U(buf), sizeof(buf), 0, 0, 0);
	PUSH(&r, SYS_shutdown, 9, cl, SHUT_WR);
	PUSH(&r, SYS_recvfrom, 10, ac, U(buf + 16), 8, 0, 0, 0);
	CHECK(ring_enter(&r, 4) == 4, "enter send/recv");
	for (i = 0; i < 4; i++)
		CHECK(cq_pop(&r, &c[i]), "CQE %d", i);
	CHECK(c[0].res == 13 && c[1].res == 13 && !memcmp(buf, "ping over xsc", 13), "send %lld recv %lld",
	      (long long)c[0].res, (long long)c[1].res);
	CHECK(c[2].res == 0 && c[3].res == 0, "shutdown %lld, recv after shutdown %lld (EOF expected)",
	      (long long)c[2].res, (long long)c[3].res);
	res = CALL(&r, SYS_close, ac);
	(void)res;
	ring_fini(&r);
	return PASS;
}

static int t_net_unix_dgram(void)
{
	struct sockaddr_un a, from;
	socklen_t al = unix_addr(&a, "dgram"), fl = sizeof(from);
	struct ring r;
	int64_t s, cl, res;
	char buf[16] = "";

	RING(&r, 8, 0);
	s = CALL(&r, SYS_socket, AF_UNIX, SOCK_DGRAM, 0);
	cl = CALL(&r, SYS_socket, AF_UNIX, SOCK_DGRAM, 0);
	CHECK(s >= 0 && cl >= 0, "socket");
	CHECK((res = CALL(&r, SYS_bind, s, U(&a), al)) == 0, "bind -> %lld", (long long)res);
	CHECK((res = CALL(&r, SYS_sendto, cl, U("dgram!"), 6, 0, U(&a), al)) == 6, "sendto -> %lld",
	      (long long)res);
	CHECK((res = CALL(&r, SYS_recvfrom, s, U(buf), 16, 0, U(&from), U(&fl))) == 6, "recvfrom -> %lld",
	      (long long)res);
	/* the sender is unbound: no address, fromlen 0 */
	CHECK(!memcmp(buf, "dgram!", 6) && (fl == 0 || from.sun_family == AF_UNIX), "data '%.6s' fromlen %u",
	      buf, fl);
	CHECK((res = CALL(&r, SYS_recvfrom, s, U(buf), 16, MSG_DONTWAIT, 0, 0)) == -EAGAIN,
	      "empty recv -> %lld", (long long)res);
	ring_fini(&r);
	return PASS;
}

static int t_net_errors(void)
{
	struct sockaddr_un a;
	socklen_t al = unix_addr(&a, "inuse");
	struct ring r;
	int64_t s1, s2, res;
	int p[2];
	char buf[4];
	long tr;

	CHECK(pipe(p) == 0, "pipe");
	RING(&r, 8, 0);
	s1 = CALL(&r, SYS_socket, AF_UNIX, SOCK_STREAM, 0);
	s2 = CALL(&r, SYS_socket, AF_UNIX, SOCK_STREAM, 0);
	CHECK(s1 >= 0 && s2 >= 0, "socket");
	CHECK((res = CALL(&r, SYS_bind, s1, U(&a), al)) == 0, "bind -> %lld", (long long)res);
	CHECK((res = CALL(&r, SYS_bind, s2, U(&a), al)) == -EADDRINUSE, "bind in use -> %lld", (long long)res);
	CHECK((res = CALL(&r, SYS_recvfrom, p[0], U(buf), 4, 0, 0, 0)) == -ENOTSOCK, "recvfrom pipe -> %lld",
	      (long long)res);
	tr = sysret(socket(9999, SOCK_STREAM, 0));
	CHECK((res = CALL(&r, SYS_socket, 9999, SOCK_STREAM, 0)) == tr, "bad family %lld vs %ld",
	      (long long)res, tr);
	CHECK((res = CALL(&r, SYS_listen, s2, 1)) == -EINVAL, "listen unbound -> %lld", (long long)res);
	ring_fini(&r);
	return PASS;
}

static int t_net_accept_nonblock(void)
{
	struct sockaddr_un a;
	socklen_t al = unix_addr(&a, "nb");
	struct ring r;
	int64_t s, res;

	RING(&r, 8, 0);
	s = CALL(&r, SYS_socket, AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
	CHECK(s >= 0, "socket");
	CHECK(CALL(&r, SYS_bind, s, U(&a), al) == 0 && CALL(&r, SYS_listen, s, 1) == 0, "bind/listen");
	CHECK((res = CALL(&r, SYS_accept4, s, 0, 0, 0)) == -EAGAIN, "accept4 empty -> %lld", (long long)res);
	CHECK((res = CALL(&r, SYS_accept4, s, 0, 0, 0x12345678)) == -EINVAL, "bad flags -> %lld", (long long)res);
	ring_fini(&r);
	return PASS;
}

static int lo_up(void)
{
	struct ifreq ifr;
	int s = socket(AF_INET, SOCK_DGRAM, 0), ok = 0;

	if (s < 0)
		return 0;
	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, "lo");
	if (ioctl(s, SIOCGIFFLAGS, &ifr) == 0) {
		if (ifr.ifr_flags & IFF_UP)
			ok = 1;
		else {
			ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
			ok = ioctl(s, SIOCSIFFLAGS, &ifr) == 0;
		}
	}
	close(s);
	return ok;
}

static int t_net_inet_loopback(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t al = sizeof(a);
	struct ring r;
	int64_t s, cl, ac, res;
	char buf[16] = "";

	SKIPIF(!lo_up(), "cannot bring up lo (not root?)");
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	RING(&r, 8, 0);
	s = CALL(&r, SYS_socket, AF_INET, SOCK_STREAM, 0);
	cl = CALL(&r, SYS_socket, AF_INET, SOCK_STREAM, 0);
	CHECK(s >= 0 && cl >= 0, "socket %lld %lld", (long long)s, (long long)cl);
	CHECK((res = CALL(&r, SYS_bind, s, U(&a), sizeof(a))) == 0, "bind -> %lld", (long long)res);
	CHECK(getsockname(s, (struct sockaddr *)&a, &al) == 0, "getsockname");
	CHECK((res = CALL(&r, SYS_listen, s, 4)) == 0, "listen -> %lld", (long long)res);
	CHECK((res = CALL(&r, SYS_connect, cl, U(&a), sizeof(a))) == 0, "connect -> %lld", (long long)res);
	CHECK((ac = CALL(&r, SYS_accept4, s, 0, 0, 0)) >= 0, "accept4 -> %lld", (long long)ac);
	CHECK((res = CALL(&r, SYS_sendto, ac, U("tcp-xsc"), 7, 0, 0, 0)) == 7, "send -> %lld", (long long)res);
	CHECK((res = CALL(&r, SYS_recvfrom, cl, U(buf), 16, 0, 0, 0)) == 7, "recv -> %lld", (long long)res);
	CHECK(!memcmp(buf, "tcp-xsc", 7), "data");
	CHECK((res = CALL(&r, SYS_shutdown, cl, SHUT_RDWR)) == 0, "shutdown -> %lld", (long long)res);
	CHECK((res = CALL(&r, SYS_recvfrom, ac, U(buf), 16, 0, 0, 0)) == 0, "EOF -> %lld", (long long)res);
	ring_fini(&r);
	return PASS;
}

/* ========================================================= 6. sync */

static int t_sync_fsync(void)
{
	char path[64];
	struct ring r;
	int fd = tmpfile_fd(path, sizeof(path)), p[2];
	int64_t res;
	long tr;

	CHECK(fd >= 0 && pipe(p) == 0, "setup");
	CHECK(write(fd, "data", 4) == 4, "write");
	RING(&r, 8, 0);
	CHECK((res = CALL(&r, SYS_fsync, fd)) == 0, "fsync -> %lld", (long long)res);
	CHECK((res = CALL(&r, SYS_fdatasync, fd)) == 0, "fdatasync -> %lld", (long long)res);
	tr = sysret(fsync(p[0]));
	CHECK((res = CALL(&r, SYS_fsync, p[0])) == tr && tr == -EINVAL, "fsync pipe %lld vs %ld",
	      (long long)res, tr);
	CHECK((res = CALL(&r, SYS_fdatasync, -1)) == -EBADF, "fdatasync(-1) -> %lld", (long long)res);
	unlink(path);
	ring_fini(&r);
	return PASS;
}

static int t_futex_basic(void)
{
	static uint32_t word = 7;
	struct timespec to = { 0, 10 * 1000 * 1000 };
	struct ring r;
	int64_t res;
	double t0;

	RING(&r, 8, 0);
	CHECK((res = CALL(&r, SYS_futex, U(&word), FUTEX_WAKE, 1)) == 0, "wake nobody -> %lld", (long long)res);
	CHECK((res = CALL(&r, SYS_futex, U(&word), FUTEX_WAIT, 8, 0)) == -EAGAIN, "wait wrong value -> %lld",
	      (long long)res);
	t0 = now_ms();
	CHECK((res = CALL(&r, SYS_futex, U(&word), FUTEX_WAIT_PRIVATE, 7, U(&to))) == -ETIMEDOUT,
	      "timed wait -> %lld", (long long)res);
	CHECK(now_ms() - t0 >= 9.0, "timed out too early: %.2f ms", now_ms() - t0);
	CHECK((res = CALL(&r, SYS_futex, U(&word), FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, 8, 0, 0, 1))
	      == -EAGAIN, "bitset wait -> %lld", (long long)res);
	CHECK((res = CALL(&r, SYS_futex, U(&word), FUTEX_WAKE_BITSET, 1, 0, 0, 0xffffffff)) == 0,
	      "bitset wake -> %lld", (long long)res);
	CHECK((res = CALL(&r, SYS_futex, KADDR, FUTEX_WAIT, 0, 0)) == -EFAULT, "kernel uaddr -> %lld",
	      (long long)res);
	ring_fini(&r);
	return PASS;
}

static uint32_t g_fword;
static volatile int g_fwaiting;
static int64_t g_fres = BADRES;

static void *futex_waiter(void *arg __attribute__((unused)))
{
	struct ring r;

	if (ring_init(&r, 8, 0))
		return NULL;
	g_fwaiting = 1;
	g_fres = CALL(&r, SYS_futex, U(&g_fword), FUTEX_WAIT, 0, 0);
	ring_fini(&r);
	return NULL;
}

static int t_futex_cross_thread(void)
{
	pthread_t th;
	long woken = 0;
	int i;

	g_fword = 0;
	CHECK(pthread_create(&th, NULL, futex_waiter, NULL) == 0, "pthread_create");
	for (i = 0; i < 2000 && woken == 0; i++) {
		usleep(5000);
		if (g_fwaiting)
			woken = syscall(SYS_futex, &g_fword, FUTEX_WAKE, 1, 0, 0, 0);
	}
	pthread_join(th, NULL);
	CHECK(woken == 1, "traditional FUTEX_WAKE woke %ld", woken);
	CHECK(g_fres == 0, "ring FUTEX_WAIT -> %lld", (long long)g_fres);
	return PASS;
}

static int t_futex_filtered(void)
{
	static const int ops[] = { FUTEX_LOCK_PI, FUTEX_UNLOCK_PI, FUTEX_TRYLOCK_PI, FUTEX_REQUEUE,
		FUTEX_CMP_REQUEUE, FUTEX_WAKE_OP, FUTEX_WAIT_REQUEUE_PI, FUTEX_CMP_REQUEUE_PI,
		FUTEX_FD, 13 /* FUTEX_LOCK_PI2 */, 99, FUTEX_WAKE | FUTEX_CLOCK_REALTIME, FUTEX_WAIT | 0x400 };
	static uint32_t word;
	struct ring r;
	unsigned int i;
	int64_t res;

	RING(&r, 8, 0);
	for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		CHECK((res = CALL(&r, SYS_futex, U(&word), ops[i], 1, 0, U(&word), 0)) == -EINVAL,
		      "futex op %#x -> %lld", ops[i], (long long)res);
	CHECK(word == 0, "futex word modified");
	ring_fini(&r);
	return PASS;
}

/* ========================================================= 7. timer */

static volatile int g_alarms;
static void on_alarm(int sig) { (void)sig; g_alarms++; }

static int t_timer_clock_gettime(void)
{
	struct timespec a, b, k, res_ts;
	struct ring r;
	int64_t res;

	RING(&r, 8, 0);
	clock_gettime(CLOCK_MONOTONIC, &a);
	CHECK((res = CALL(&r, SYS_clock_gettime, CLOCK_MONOTONIC, U(&k))) == 0, "clock_gettime -> %lld",
	      (long long)res);
	clock_gettime(CLOCK_MONOTONIC, &b);
	CHECK((k.tv_sec > a.tv_sec || (k.tv_sec == a.tv_sec && k.tv_nsec >= a.tv_nsec)) &&
	      (k.tv_sec < b.tv_sec || (k.tv_sec == b.tv_sec && k.tv_nsec <= b.tv_nsec)),
	      "ring time %ld.%09ld not within vDSO [%ld.%09ld, %ld.%09ld]", k.tv_sec, k.tv_nsec,
	      a.tv_sec, a.tv_nsec, b.tv_sec, b.tv_nsec);
	CHECK((res = CALL(&r, SYS_clock_gettime, 12345, U(&k))) == -EINVAL, "bad clock -> %lld", (long long)res);
	CHECK((res = CALL(&r, SYS_clock_gettime, CLOCK_REALTIME, KADDR)) == -EFAULT, "kernel ptr -> %lld",
	      (long long)res);
	if (has_op(SYS_clock_getres)) {
		CHECK((res = CALL(&r, SYS_clock_getres, CLOCK_MONOTONIC, U(&res_ts))) == 0 &&
		      res_ts.tv_sec == 0 && res_ts.tv_nsec > 0, "clock_getres -> %lld", (long long)res);
	}
	ring_fini(&r);
	return PASS;
}

static int t_timer_nanosleep(void)
{
	struct timespec ts = { 0, 20 * 1000 * 1000 }, bad = { 0, 2000000000L };
	struct ring r;
	int64_t res;
	double t0, dt;

	RING(&r, 8, 0);
	t0 = now_ms();
	CHECK((res = CALL(&r, SYS_nanosleep, U(&ts), 0)) == 0, "nanosleep -> %lld", (long long)res);
	dt = now_ms() - t0;
	CHECK(dt >= 19.9, "slept only %.2f ms", dt);
	CHECK((res = CALL(&r, SYS_nanosleep, U(&bad), 0)) == -EINVAL, "tv_nsec 2e9 -> %lld", (long long)res);
	CHECK((res = CALL(&r, SYS_nanosleep, KADDR, 0)) == -EFAULT, "kernel ptr -> %lld", (long long)res);
	ring_fini(&r);
	return PASS;
}

static int t_timer_clock_nanosleep_abs(void)
{
	struct timespec t;
	struct ring r;
	int64_t res;
	long tr;
	double t0;

	RING(&r, 8, 0);
	clock_gettime(CLOCK_MONOTONIC, &t);
	t.tv_nsec += 15 * 1000 * 1000;
	if (t.tv_nsec >= 1000000000L) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000L;
	}
	t0 = now_ms();
	CHECK((res = CALL(&r, SYS_clock_nanosleep, CLOCK_MONOTONIC, TIMER_ABSTIME, U(&t), 0)) == 0,
	      "clock_nanosleep -> %lld", (long long)res);
	CHECK(now_ms() - t0 >= 10.0, "returned after %.2f ms", now_ms() - t0);
	tr = sysret(syscall(SYS_clock_nanosleep, CLOCK_THREAD_CPUTIME_ID, 0, &t, NULL));
	CHECK((res = CALL(&r, SYS_clock_nanosleep, CLOCK_THREAD_CPUTIME_ID, 0, U(&t), 0)) == tr && tr < 0,
	      "thread cputime clock: ring %lld vs syscall %ld", (long long)res, tr);
	CHECK((res = CALL(&r, SYS_clock_nanosleep, 12345, 0, U(&t), 0)) == -EINVAL, "bad clock -> %lld",
	      (long long)res);
	ring_fini(&r);
	return PASS;
}

static int t_timer_sleep_batch(void)
{
	struct timespec ts = { 0, 5 * 1000 * 1000 };
	struct xsc_cqe c;
	struct ring r;
	double t0;
	int i;

	RING(&r, 8, 0);
	for (i = 0; i < 5; i++)
		PUSH(&r, SYS_nanosleep, i, U(&ts), 0);
	t0 = now_ms();
	CHECK(ring_enter(&r, 5) == 5, "enter");
	CHECK(now_ms() - t0 >= 24.9, "5 x 5 ms took %.2f ms", now_ms() - t0);
	for (i = 0; i < 5; i++)
		CHECK(cq_pop(&r, &c) && c.res == 0, "CQE %d", i);
	ring_fini(&r);
	return PASS;
}

static int t_timer_interrupted(void)
{
	struct sigaction sa;
	struct itimerval it = { .it_value = { 0, 200 * 1000 } };
	struct timespec ts = { 5, 0 }, rem = { 0, 0 };
	struct xsc_cqe c;
	struct ring r;
	long n;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;		/* no SA_RESTART */
	sigaction(SIGALRM, &sa, NULL);
	RING(&r, 8, 0);
	PUSH(&r, SYS_nanosleep, 1, U(&ts), U(&rem));
	PUSH(&r, XSC_OP_NOP, 2);
	setitimer(ITIMER_REAL, &it, NULL);
	n = ring_enter(&r, 2);
	CHECK(g_alarms == 1, "SIGALRM not delivered (%d)", g_alarms);
	CHECK(n == 1, "enter -> %ld (batch should stop after the interrupted op)", n);
	CHECK(cq_pop(&r, &c) && c.user_data == 1, "CQE");
	CHECK(c.res == -EINTR, "interrupted nanosleep res %lld (512..516 must never leak)", (long long)c.res);
	CHECK(rem.tv_sec > 0 || rem.tv_nsec > 0, "rem not filled");
	CHECK((n = ring_enter(&r, 1)) == 1 && cq_pop(&r, &c) && c.user_data == 2 && c.res == 0,
	      "remaining NOP -> %ld", n);
	ring_fini(&r);
	return PASS;
}

/*
 * Hardening (issue 11, finding 6): a ring clock_nanosleep interrupted by
 * SIGSTOP/SIGCONT (no handler) reports -EINTR in its CQE; it must not leave
 * current->restart_block armed, or a later restart_syscall would sleep the
 * remainder outside the ring.
 */
static int t_timer_restart_block_reset(void)
{
	struct timespec ts = { 3, 0 }, rem = { 0, 0 };
	struct xsc_cqe c;
	struct ring r;
	pid_t me = getpid(), helper;
	double t0, dt;
	long n, ret;
	int e, st;

	SKIPIF(!has_op(SYS_clock_nanosleep), "clock_nanosleep not offered");
	RING(&r, 8, 0);
	PUSH(&r, SYS_clock_nanosleep, 1, CLOCK_MONOTONIC, 0, U(&ts), U(&rem));
	fflush(stdout);
	helper = fork();
	if (helper == 0) {
		usleep(300 * 1000);
		kill(me, SIGSTOP);
		usleep(100 * 1000);
		kill(me, SIGCONT);
		_exit(0);
	}
	n = ring_enter(&r, 1);
	st = child_status(helper);
	CHECK(st == 0, "helper status %d", st);
	CHECK(n == 1, "enter -> %ld", n);
	CHECK(cq_pop(&r, &c) && c.user_data == 1, "CQE");
	CHECK(c.res == -EINTR, "stopped clock_nanosleep res %lld, expected -EINTR", (long long)c.res);
	CHECK(rem.tv_sec > 0 || rem.tv_nsec > 0, "rem not filled");
	t0 = now_ms();
	ret = syscall(SYS_restart_syscall);
	e = errno;
	dt = now_ms() - t0;
	CHECK(ret == -1 && e == EINTR && dt < 1000,
	      "restart_syscall after the ring op -> %ld errno %d after %.0f ms: "
	      "stale restart_block (expected -EINTR at once)", ret, ret == -1 ? e : 0, dt);
	ring_fini(&r);
	return PASS;
}

/* ========================================================= 8. exec */

static int t_exec_ids(void)
{
	struct ring r;
	int64_t res;

	RING(&r, 8, 0);
	CHECK((res = CALL(&r, SYS_getpid)) == getpid(), "getpid %lld vs %d", (long long)res, getpid());
	if (has_op(SYS_getppid))
		CHECK((res = CALL(&r, SYS_getppid)) == getppid(), "getppid %lld", (long long)res);
	CHECK((res = CALL(&r, SYS_gettid)) == syscall(SYS_gettid), "gettid %lld", (long long)res);
	ring_fini(&r);
	return PASS;
}

static int64_t g_thr_tid = BADRES;
static long g_thr_real;

static void *tid_thread(void *arg __attribute__((unused)))
{
	struct ring r;

	g_thr_real = syscall(SYS_gettid);
	if (ring_init(&r, 8, 0) == 0) {
		g_thr_tid = CALL(&r, SYS_gettid);
		ring_fini(&r);
	}
	return NULL;
}

static int t_exec_gettid_thread(void)
{
	pthread_t th;

	CHECK(pthread_create(&th, NULL, tid_thread, NULL) == 0, "pthread_create");
	pthread_join(th, NULL);
	CHECK(g_thr_tid == g_thr_real && g_thr_real != getpid(), "thread gettid %lld vs %ld",
	      (long long)g_thr_tid, g_thr_real);
	return PASS;
}

static int t_exec_kill(void)
{
	struct ring r;
	int64_t res;

	RING(&r, 8, 0);
	CHECK((res = CALL(&r, SYS_kill, getpid(), 0)) == 0, "kill(self,0) -> %lld", (long long)res);
	CHECK((res = CALL(&r, SYS_kill, 0x3ffffff0, 0)) == -ESRCH, "kill(nopid) -> %lld", (long long)res);
	CHECK((res = CALL(&r, SYS_kill, getpid(), 999)) == -EINVAL, "bad signal -> %lld", (long long)res);
	signal(SIGUSR1, SIG_IGN);
	CHECK((res = CALL(&r, SYS_kill, getpid(), SIGUSR1)) == 0, "kill(self,USR1) -> %lld", (long long)res);
	ring_fini(&r);
	return PASS;
}

static int t_exec_wait4(void)
{
	struct ring r;
	int st = 0;
	int64_t res;
	pid_t pid;

	RING(&r, 8, 0);
	CHECK((res = CALL(&r, SYS_wait4, -1, U(&st), WNOHANG, 0)) == -ECHILD, "no children -> %lld",
	      (long long)res);
	fflush(stdout);
	pid = fork();
	if (pid == 0)
		_exit(42);
	CHECK(pid > 0, "fork");
	CHECK((res = CALL(&r, SYS_wait4, pid, U(&st), 0, 0)) == pid, "wait4 -> %lld", (long long)res);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 42, "status %#x", st);
	ring_fini(&r);
	return PASS;
}

static int t_exec_execve_enoent(void)
{
	char *argv[] = { "x", NULL };
	struct xsc_cqe c;
	struct ring r;

	SKIPIF(!has_op(SYS_execve), "execve not offered");
	RING(&r, 8, 0);
	PUSH(&r, SYS_execve, 1, U("/nonexistent/prog"), U(argv), U(environ));
	PUSH(&r, SYS_execve, 2, KADDR, U(argv), U(environ));
	PUSH(&r, XSC_OP_NOP, 3);
	CHECK(ring_enter(&r, 3) == 3, "enter");
	CHECK(cq_pop(&r, &c) && c.res == -ENOENT, "ENOENT -> %lld", (long long)c.res);
	CHECK(cq_pop(&r, &c) && c.res == -EFAULT, "kernel path -> %lld", (long long)c.res);
	CHECK(cq_pop(&r, &c) && c.res == 0 && c.user_data == 3, "NOP after failed execve");
	ring_fini(&r);
	return PASS;
}

static int t_exec_execve_replaces(void)
{
	char *argv[] = { g_self, "--exec-probe", NULL };
	struct ring r;
	pid_t pid;
	int st;

	SKIPIF(!has_op(SYS_execve), "execve not offered");
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		if (ring_init(&r, 8, 0))
			_exit(3);
		PUSH(&r, SYS_execve, 1, U(g_self), U(argv), U(environ));
		PUSH(&r, SYS_write, 2, 1, U("must-not-run\n"), 13);	/* after a successful execve */
		ring_enter(&r, 2);
		_exit(4);
	}
	st = child_status(pid);
	CHECK(st == 77, "child status %d (77 = new image ran)", st);
	return PASS;
}

static int t_exec_exit_group(void)
{
	struct ring r;
	int p[2], st;
	char buf[8];
	pid_t pid;

	SKIPIF(!has_op(SYS_exit_group), "exit_group not offered");
	CHECK(pipe(p) == 0, "pipe");
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		close(p[0]);
		if (ring_init(&r, 8, 0))
			_exit(3);
		PUSH(&r, SYS_exit_group, 1, 33);
		PUSH(&r, SYS_write, 2, p[1], U("X"), 1);		/* must not run */
		ring_enter(&r, 2);
		if (write(p[1], "Y", 1) < 0)	/* must not run either */
			_exit(5);
		_exit(4);
	}
	close(p[1]);
	st = child_status(pid);
	CHECK(st == 33, "child status %d, expected 33", st);
	CHECK(read(p[0], buf, sizeof(buf)) == 0, "code after exit_group ran");
	return PASS;
}

static int t_exec_exit_group_threads(void)
{
	struct ring r;
	pthread_t th;
	pid_t pid;
	int st;

	SKIPIF(!has_op(SYS_exit_group), "exit_group not offered");
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		/* a second thread parked in a ring futex wait must not keep the process alive */
		g_fword = 0;
		pthread_create(&th, NULL, futex_waiter, NULL);
		while (!g_fwaiting)
			usleep(1000);
		usleep(20000);
		if (ring_init(&r, 8, 0))
			_exit(3);
		PUSH(&r, SYS_exit_group, 1, 9);
		ring_enter(&r, 1);
		_exit(4);
	}
	st = child_status(pid);
	CHECK(st == 9, "child status %d, expected 9", st);
	return PASS;
}

/*
 * Hardening (issue 11, finding 2): close(fd) followed by exit_group in one
 * batch.  The close defers the final fput to task work; exit_group must not
 * run from inside task_work_run() (which has detached that work), or the
 * file is never released and the pipe reader never sees EOF.
 */
static int t_exec_exit_group_task_work(void)
{
	struct pollfd pfd;
	struct ring r;
	int p[2], st, pr;
	char buf[8];
	ssize_t got;
	pid_t pid;

	SKIPIF(!has_op(SYS_exit_group) || !has_op(SYS_close), "exit_group/close not offered");
	CHECK(pipe(p) == 0, "pipe");
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		close(p[0]);
		if (ring_init(&r, 8, 0))
			_exit(3);
		PUSH(&r, SYS_close, 1, p[1]);
		PUSH(&r, SYS_exit_group, 2, 21);
		ring_enter(&r, 2);
		_exit(4);
	}
	close(p[1]);
	pfd.fd = p[0];
	pfd.events = POLLIN;
	pfd.revents = 0;
	pr = poll(&pfd, 1, 5000);
	got = pr == 1 ? read(p[0], buf, sizeof(buf)) : -2;
	st = child_status(pid);
	CHECK(st == 21, "child status %d, expected 21", st);
	CHECK(pr == 1, "no EOF on the pipe 5 s after [close(write end), exit_group]: "
	      "the deferred fput was dropped (poll -> %d)", pr);
	CHECK(got == 0, "read after poll -> %zd, expected EOF", got);
	close(p[0]);
	return PASS;
}

/* ========================================================= 9. limits */

static int t_lim_sq_full(void)
{
	struct ring r;
	int i;

	RING(&r, 8, 0);
	for (i = 0; i < 8; i++)
		CHECK(PUSH(&r, XSC_OP_NOP, i) == 0, "push %d refused", i);
	CHECK(PUSH(&r, XSC_OP_NOP, 8) == -1, "9th SQE accepted by a full SQ");
	CHECK(ring_enter(&r, 100) == 8, "enter all 8");
	CHECK(PUSH(&r, XSC_OP_NOP, 9) == 0, "push after drain");
	ring_fini(&r);
	return PASS;
}

static int t_lim_cq_backpressure(void)
{
	unsigned long long full;
	struct xsc_cqe c;
	struct ring r;
	uint64_t expect = 0;
	long n;
	int i;

	RING(&r, 8, 8);
	for (i = 0; i < 8; i++)
		PUSH(&r, XSC_OP_NOP, i);
	CHECK((n = ring_enter(&r, 8)) == 8, "enter -> %ld", n);
	for (i = 8; i < 12; i++)
		PUSH(&r, XSC_OP_NOP, i);
	CHECK((n = ring_enter(&r, 4)) == -EBUSY, "enter with full CQ -> %ld", n);
	CHECK((n = ring_enter(&r, 4)) == -EBUSY, "again -> %ld", n);
	CHECK(r.hdr->cq_full == 2, "hdr cq_full %u", r.hdr->cq_full);
	CHECK(!fdinfo_get(r.fd, "xsc-cq-full", &full) && full == 2, "fdinfo cq-full %llu", full);
	CHECK(r.hdr->sq_head == 8, "SQEs consumed while CQ full (sq_head %u)", r.hdr->sq_head);
	for (i = 0; i < 8; i++) {
		CHECK(cq_pop(&r, &c) && c.user_data == expect, "CQE %d", i);
		expect++;
	}
	CHECK((n = ring_enter(&r, 8)) == 4, "enter after reaping -> %ld", n);
	while (cq_pop(&r, &c)) {
		CHECK(c.user_data == expect, "ud %llu expected %llu", (unsigned long long)c.user_data,
		      (unsigned long long)expect);
		expect++;
	}
	CHECK(expect == 12, "saw %llu CQEs, expected 12 (lost or duplicated)", (unsigned long long)expect);
	ring_fini(&r);
	return PASS;
}

static int t_lim_partial_batch(void)
{
	struct xsc_cqe c;
	struct ring r;
	int i, got = 0;
	long n;

	RING(&r, 16, 16);
	for (i = 0; i < 4; i++)
		PUSH(&r, XSC_OP_NOP, 100 + i);
	CHECK(ring_enter(&r, 4) == 4, "prefill");
	for (i = 0; i < 16; i++)
		PUSH(&r, XSC_OP_NOP, i);
	CHECK((n = ring_enter(&r, 16)) == 12, "batch of 16 with 12 free CQEs -> %ld", n);
	while (cq_pop(&r, &c))
		got++;
	CHECK(got == 16, "reaped %d", got);
	CHECK((n = ring_enter(&r, 16)) == 4, "rest -> %ld", n);
	ring_fini(&r);
	return PASS;
}

static int t_lim_max_entries(void)
{
	struct xsc_cqe c;
	struct ring r;
	long n;
	int i;

	RING(&r, 4096, 8192);
	CHECK(r.p.sq_entries == 4096 && r.p.cq_entries == 8192, "sizes %u %u", r.p.sq_entries, r.p.cq_entries);
	for (i = 0; i < 4096; i++)
		CHECK(PUSH(&r, XSC_OP_NOP, i) == 0, "push %d", i);
	CHECK((n = ring_enter(&r, 0xffffffffu)) == 4096, "enter -> %ld", n);
	for (i = 0; i < 4096; i++)
		CHECK(cq_pop(&r, &c) && c.user_data == (uint64_t)i, "CQE %d", i);
	ring_fini(&r);
	return PASS;
}

static int t_lim_many_rounds(void)
{
	unsigned long long sub, comp;
	struct xsc_cqe c;
	struct ring r;
	int round, i;

	RING(&r, 64, 64);
	for (round = 0; round < 100; round++) {
		for (i = 0; i < 64; i++)
			PUSH(&r, XSC_OP_NOP, i);
		CHECK(ring_enter(&r, 64) == 64, "round %d", round);
		for (i = 0; i < 64; i++)
			CHECK(cq_pop(&r, &c), "round %d CQE %d", round, i);
	}
	CHECK(!fdinfo_get(r.fd, "xsc-submitted", &sub) && sub == 6400, "submitted %llu", sub);
	CHECK(!fdinfo_get(r.fd, "xsc-completed", &comp) && comp == 6400, "completed %llu", comp);
	ring_fini(&r);
	return PASS;
}

/* ========================================================= 10. concurrency */

#define NTHR 4

struct own_arg {
	int id, ok;
	char why[96];
};

static void *own_ring_thread(void *p)
{
	struct own_arg *a = p;
	struct ring r;
	struct xsc_cqe c;
	int pp[2], i, k, done = 0;
	long total = 0;
	char byte = 'a' + a->id, buf[256];

	if (pipe(pp) || ring_init(&r, 64, 0)) {
		snprintf(a->why, sizeof(a->why), "setup failed");
		return NULL;
	}
	while (done < 2000) {
		for (k = 0; k < 50 && done + k < 2000; k++)
			PUSH(&r, SYS_write, done + k, pp[1], U(&byte), 1);
		if (ring_enter(&r, k) != k) {
			snprintf(a->why, sizeof(a->why), "enter failed at %d", done);
			return NULL;
		}
		for (i = 0; i < k; i++) {
			if (!cq_pop(&r, &c) || c.res != 1 || c.user_data != (uint64_t)(done + i)) {
				snprintf(a->why, sizeof(a->why), "bad CQE at %d", done + i);
				return NULL;
			}
		}
		done += k;
	}
	while (total < 2000 && (k = read(pp[0], buf, sizeof(buf))) > 0) {
		for (i = 0; i < k; i++)
			if (buf[i] != byte) {
				snprintf(a->why, sizeof(a->why), "foreign byte");
				return NULL;
			}
		total += k;
	}
	if (total != 2000) {
		snprintf(a->why, sizeof(a->why), "read %ld bytes", total);
		return NULL;
	}
	ring_fini(&r);
	a->ok = 1;
	return NULL;
}

static int t_conc_own_rings(void)
{
	struct own_arg a[NTHR];
	pthread_t th[NTHR];
	int i;

	SKIPIF(!has_op(SYS_write), "write not offered");
	for (i = 0; i < NTHR; i++) {
		memset(&a[i], 0, sizeof(a[i]));
		a[i].id = i;
		CHECK(pthread_create(&th[i], NULL, own_ring_thread, &a[i]) == 0, "pthread_create");
	}
	for (i = 0; i < NTHR; i++)
		pthread_join(th[i], NULL);
	for (i = 0; i < NTHR; i++)
		CHECK(a[i].ok, "thread %d: %s", i, a[i].why);
	return PASS;
}

#define SHARED_PER 600
static struct ring g_sr;
static pthread_mutex_t g_srlock = PTHREAD_MUTEX_INITIALIZER;
static unsigned char g_seen[NTHR][SHARED_PER];
static volatile int g_srerr;

static void shared_reap(void)
{
	struct xsc_cqe c;

	while (cq_pop(&g_sr, &c)) {
		unsigned int t = c.user_data >> 32, i = (uint32_t)c.user_data;

		if (t >= NTHR || i >= SHARED_PER || c.res != 0)
			g_srerr = 1;
		else
			g_seen[t][i]++;
	}
}

static void *shared_thread(void *p)
{
	long id = (long)p;
	int i = 0;

	while (i < SHARED_PER && !g_srerr) {
		int k = 0;

		pthread_mutex_lock(&g_srlock);
		while (k < 16 && i < SHARED_PER && PUSH(&g_sr, XSC_OP_NOP, ((uint64_t)id << 32) | i) == 0) {
			k++;
			i++;
		}
		pthread_mutex_unlock(&g_srlock);
		if (ring_enter(&g_sr, 16) < 0 && errno != EBUSY) {
			/* -EBUSY (CQ full) is fine; others reap */
		}
		pthread_mutex_lock(&g_srlock);
		shared_reap();
		pthread_mutex_unlock(&g_srlock);
	}
	return NULL;
}

static int t_conc_shared_ring(void)
{
	pthread_t th[NTHR];
	long i, j, n;

	CHECK(ring_init(&g_sr, 32, 64) == 0, "ring");
	for (i = 0; i < NTHR; i++)
		CHECK(pthread_create(&th[i], NULL, shared_thread, (void *)i) == 0, "pthread_create");
	for (i = 0; i < NTHR; i++)
		pthread_join(th[i], NULL);
	for (i = 0; i < 1000; i++) {
		n = ring_enter(&g_sr, 64);
		shared_reap();
		if (n == 0 && g_sr.hdr->sq_head == g_sr.sq_tail)
			break;
	}
	CHECK(!g_srerr, "bad CQE seen");
	for (i = 0; i < NTHR; i++)
		for (j = 0; j < SHARED_PER; j++)
			CHECK(g_seen[i][j] == 1, "user_data %ld/%ld seen %d times", i, j, g_seen[i][j]);
	return PASS;
}

static int t_conc_blocked_ring_isolated(void)
{
	struct ring r;
	pthread_t th;
	int i;

	SKIPIF(!has_op(SYS_futex), "futex not offered");
	g_fword = 0;
	CHECK(pthread_create(&th, NULL, futex_waiter, NULL) == 0, "pthread_create");
	while (!g_fwaiting)
		usleep(1000);
	usleep(20000);
	/* thread 1 is blocked inside ENTER on its ring: ours must still work */
	RING(&r, 8, 0);
	for (i = 0; i < 50; i++)
		CHECK(CALL(&r, XSC_OP_NOP) == 0, "NOP %d while another ring blocks", i);
	CHECK(CALL(&r, SYS_futex, U(&g_fword), FUTEX_WAKE, 1) == 1, "ring wake did not wake the waiter");
	pthread_join(th, NULL);
	CHECK(g_fres == 0, "waiter res %lld", (long long)g_fres);
	ring_fini(&r);
	return PASS;
}

static void *setup_churn(void *p __attribute__((unused)))
{
	struct ring r;
	int i;

	for (i = 0; i < 40; i++) {
		if (ring_init(&r, 16, 0))
			return (void *)1;
		PUSH(&r, XSC_OP_NOP, i);
		if (ring_enter(&r, 1) != 1)
			return (void *)2;
		ring_fini(&r);
	}
	return NULL;
}

static int t_conc_setup_churn(void)
{
	pthread_t th[NTHR];
	void *ret;
	int i, bad = 0;

	for (i = 0; i < NTHR; i++)
		CHECK(pthread_create(&th[i], NULL, setup_churn, NULL) == 0, "pthread_create");
	for (i = 0; i < NTHR; i++) {
		pthread_join(th[i], &ret);
		bad |= ret != NULL;
	}
	CHECK(!bad, "a thread failed");
	return PASS;
}

/*
 * Hardening (issue 11, finding 1): a sibling installs a TSYNC seccomp filter
 * while ENTER is (a) blocked inside an op of its batch and (b) waiting on the
 * ring mutex.  No op may start after the filter is in place: ENTER re-checks
 * seccomp after taking the ring mutex and before fetching each SQE, and stops
 * there (the SQE stays queued; -EPERM if nothing was consumed).  Both orders
 * are forced (pipes), so one iteration hits the window every time.
 */
struct tsync_arg {
	struct ring *r;
	uint32_t n;
	volatile int started;
	long ret;
};

static void *tsync_enter(void *p)
{
	struct tsync_arg *a = p;

	a->started = 1;
	a->ret = ring_enter(a->r, a->n);
	return NULL;
}

static int t_conc_seccomp_tsync(void)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getppid, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EACCES),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = 4, .filter = f };
	struct tsync_arg a1, a2, c2;
	pthread_t t1, t2, tc;
	struct ring r1, r2;
	struct xsc_cqe c;
	char b1[4], b2[4];
	int p1[2], p2[2], bad = 0;
	long ppid = getppid();

	SKIPIF(!has_op(SYS_read) || !has_op(SYS_getppid), "read/getppid not offered");
	CHECK(pipe(p1) == 0 && pipe(p2) == 0, "pipe");
	RING(&r1, 8, 0);
	RING(&r2, 8, 0);
	/* (a) one ENTER, blocked in the read, getppid queued behind it */
	PUSH(&r1, SYS_read, 1, p1[0], U(b1), 1);
	PUSH(&r1, SYS_getppid, 2);
	/* (b) ENTER(1) blocked in the read holds r2's mutex; a second ENTER(1) waits for it */
	PUSH(&r2, SYS_read, 3, p2[0], U(b2), 1);
	PUSH(&r2, SYS_getppid, 4);
	a1 = (struct tsync_arg){ .r = &r1, .n = 2 };
	a2 = (struct tsync_arg){ .r = &r2, .n = 1 };
	c2 = (struct tsync_arg){ .r = &r2, .n = 1 };
	CHECK(pthread_create(&t1, NULL, tsync_enter, &a1) == 0, "pthread_create");
	CHECK(pthread_create(&t2, NULL, tsync_enter, &a2) == 0, "pthread_create");
	while (!a1.started || !a2.started)
		usleep(1000);
	usleep(300 * 1000);		/* both are in their read now */
	CHECK(pthread_create(&tc, NULL, tsync_enter, &c2) == 0, "pthread_create");
	while (!c2.started)
		usleep(1000);
	usleep(300 * 1000);		/* the second ENTER sleeps on r2's mutex */
	CHECK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0, "no_new_privs");
	CHECK(syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog) == 0,
	      "seccomp TSYNC: %s", strerror(errno));
	CHECK(syscall(SYS_getppid) == -1 && errno == EACCES, "filter not active in this thread");
	CHECK(write(p1[1], "a", 1) == 1 && write(p2[1], "b", 1) == 1, "write");
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	pthread_join(tc, NULL);
	diag("enter (a) -> %ld, (b) first -> %ld, (b) waiting -> %ld", a1.ret, a2.ret, c2.ret);
	while (cq_pop(&r1, &c) || cq_pop(&r2, &c)) {
		diag("CQE ud=%llu op=%u res=%lld", (unsigned long long)c.user_data, c.opcode, (long long)c.res);
		if (c.opcode == SYS_getppid && c.res == ppid)
			bad++;
	}
	CHECK(!bad, "%d getppid op(s) ran unfiltered after the TSYNC filter was installed", bad);
	CHECK(a1.ret == 1 && a2.ret == 1, "the reads: enter -> %ld, %ld (expected 1, 1)", a1.ret, a2.ret);
	CHECK(c2.ret == -EPERM, "ENTER that waited on the mutex -> %ld, expected -EPERM", c2.ret);
	CHECK(r1.hdr->sq_head == 1 && r2.hdr->sq_head == 1, "getppid SQE consumed (sq_head %u, %u)",
	      r1.hdr->sq_head, r2.hdr->sq_head);
	ring_fini(&r1);
	ring_fini(&r2);
	return PASS;
}

/* ========================================================= 11. lifecycle */

static int t_life_fork_child(void)
{
	struct ring r;
	unsigned char vec[4];
	pid_t pid;
	int st;

	RING(&r, 8, 0);
	PUSH(&r, XSC_OP_NOP, 1);
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		struct xsc_enter e = { .to_submit = 1 };
		void *m;

		if (mincore(r.map, 4096, vec) == 0 || errno != ENOMEM)
			_exit(10);		/* mapping inherited */
		if (ioctl(r.fd, XSC_IOC_ENTER, &e) != -1 || errno != EPERM)
			_exit(11);
		m = mmap(NULL, r.size, PROT_READ | PROT_WRITE, MAP_SHARED, r.fd, 0);
		if (m != MAP_FAILED || errno != EPERM)
			_exit(12);
		_exit(0);
	}
	st = child_status(pid);
	CHECK(st == 0, "child: %s", st == 10 ? "ring mapping inherited across fork" :
	      st == 11 ? "ENTER from child not EPERM" : st == 12 ? "child mmap not EPERM" : "crashed");
	CHECK(ring_enter(&r, 1) == 1, "parent ring broken after fork");
	ring_fini(&r);
	return PASS;
}

static int t_life_close_keeps_mapping(void)
{
	struct ring r;

	RING(&r, 8, 0);
	close(r.fd);
	r.fd = -1;
	CHECK(r.hdr->sq_entries == 8 && r.hdr->cq_entries == 16, "header unreadable after close");
	r.sqes[7].user_data = 1;
	r.cqes[15].user_data = 2;
	ring_fini(&r);
	return PASS;
}

static int t_life_munmap_then_enter(void)
{
	struct ring r;
	long n;

	RING(&r, 8, 0);
	PUSH(&r, XSC_OP_NOP, 1);
	PUSH(&r, XSC_OP_NOP, 2);
	munmap(r.map, r.size);
	r.map = NULL;
	CHECK((n = ring_enter(&r, 8)) == 2, "enter after munmap -> %ld", n);
	ring_fini(&r);
	return PASS;
}

static long meminfo_kb(const char *key)
{
	char line[128];
	long v = -1;
	FILE *f = fopen("/proc/meminfo", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, strlen(key)))
			v = strtol(line + strlen(key) + 1, NULL, 10);
	fclose(f);
	return v;
}

static int t_life_setup_loop_no_leak(void)
{
	struct ring r;
	long before, after;
	int i;

	before = meminfo_kb("VmallocUsed");
	for (i = 0; i < 100; i++) {
		RING(&r, 256, 0);
		PUSH(&r, XSC_OP_NOP, i);
		CHECK(ring_enter(&r, 1) == 1, "iteration %d", i);
		ring_fini(&r);
	}
	after = meminfo_kb("VmallocUsed");
	diag("VmallocUsed %ld kB -> %ld kB", before, after);
	CHECK(before < 0 || after - before < 1024, "VmallocUsed grew by %ld kB", after - before);
	return PASS;
}

static int t_life_seccomp_refused(void)
{
	struct xsc_setup p = { .sq_entries = 8 };
	struct xsc_probe pr;
	struct ring r;
	long n;
	int e, fd;

	RING(&r, 8, 0);
	PUSH(&r, XSC_OP_NOP, 1);
	CHECK((e = install_seccomp_allow_all()) == 0, "seccomp: %s", strerror(-e));
	CHECK((n = ring_enter(&r, 1)) == -EPERM, "ENTER under seccomp -> %ld", n);
	CHECK(r.hdr->sq_head == 0, "SQE consumed under seccomp");
	fd = open(XSC_DEV, O_RDWR);
	CHECK(fd >= 0, "open under seccomp");
	CHECK(ioctl(fd, XSC_IOC_SETUP, &p) == -1 && errno == EPERM, "SETUP under seccomp: %s", strerror(errno));
	CHECK(ioctl(fd, XSC_IOC_PROBE, &pr) == 0, "PROBE under seccomp: %s", strerror(errno));
	ring_fini(&r);
	return PASS;
}

static int t_life_exec_inherited_fd(void)
{
	char fdstr[16], *argv[] = { g_self, "--exec-enter", fdstr, NULL };
	struct ring r;
	pid_t pid;
	int st, fd;

	RING(&r, 8, 0);
	PUSH(&r, XSC_OP_NOP, 1);
	fd = fcntl(r.fd, F_DUPFD, 10);		/* without O_CLOEXEC */
	CHECK(fd >= 0, "dup");
	snprintf(fdstr, sizeof(fdstr), "%d", fd);
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		execv(g_self, argv);
		_exit(3);
	}
	st = child_status(pid);
	CHECK(st == 0, "exec'd image: ENTER on inherited ring not refused (status %d)", st);
	CHECK(ring_enter(&r, 1) == 1, "own ring");
	ring_fini(&r);
	return PASS;
}

static int t_life_mremap_refused(void)
{
	struct ring r;
	void *m;

	RING(&r, 8, 0);
	m = mremap(r.map, r.size, r.size + 4096, MREMAP_MAYMOVE);
	CHECK(m == MAP_FAILED, "mremap grew the ring mapping");
	ring_fini(&r);
	return PASS;
}

/*
 * Issue 11 finding 4: madvise(MADV_DOFORK) clears VM_DONTCOPY.  The ring
 * must still not be shared with a fork child: the child's copy has no
 * pages (SIGBUS), so its write never reaches the parent's ring.
 */
static int t_life_madv_dofork(void)
{
	volatile struct xsc_sqe *slot;
	struct ring r;
	pid_t pid;
	int st;

	RING(&r, 8, 0);
	slot = &r.sqes[5];
	slot->user_data = 0;
	CHECK(madvise(r.map, r.size, MADV_DOFORK) == 0 || errno == EINVAL,
	      "madvise(MADV_DOFORK): %s", strerror(errno));
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		slot->user_data = 0x600dbadULL;		/* SIGBUS when harmless */
		_exit(0);
	}
	st = child_status(pid);
	CHECK(slot->user_data == 0, "fork child wrote into the parent's ring after MADV_DOFORK");
	CHECK(st == 1000 + SIGBUS || st == 1000 + SIGSEGV,
	      "child status %d: it reached the inherited ring mapping", st);
	PUSH(&r, XSC_OP_NOP, 1);
	CHECK(ring_enter(&r, 1) == 1, "parent ring broken after fork");
	ring_fini(&r);
	return PASS;
}

static int drop_to_nobody(const gid_t *groups, size_t ngroups)
{
	if (setgroups(ngroups, groups) || setresgid(65534, 65534, 65534) ||
	    setresuid(65534, 65534, 65534))
		return -errno;
	return 0;
}

/* 3 pages: header + one SQE page + one CQE page */
#define SMALL_RING_PAGES 3

static int memlock_unprivileged(void)
{
	struct rlimit rl = { 16 * 4096, 16 * 4096 };	/* 16 pages */
	struct ring big, r[6];
	int e, i;

	CHECK(sysconf(_SC_PAGESIZE) == 4096, "page size");
	CHECK(setrlimit(RLIMIT_MEMLOCK, &rl) == 0, "setrlimit: %s", strerror(errno));
	/* root keeps CAP_IPC_LOCK: exempt, like io_uring */
	CHECK((e = ring_init(&big, 4096, 0)) == 0, "root with CAP_IPC_LOCK: big ring -> %d", e);
	ring_fini(&big);
	CHECK((e = drop_to_nobody(NULL, 0)) == 0, "drop to uid 65534: %s", strerror(-e));
	CHECK((e = ring_init(&big, 4096, 0)) == -ENOMEM,
	      "516 KiB ring over a 64 KiB RLIMIT_MEMLOCK -> %d (want -ENOMEM)", e);
	for (i = 0; i < 5; i++)
		CHECK((e = ring_init(&r[i], 1, 0)) == 0, "small ring %d (%d pages charged) -> %d",
		      i, i * SMALL_RING_PAGES, e);
	CHECK((e = ring_init(&r[5], 1, 0)) == -ENOMEM,
	      "sixth small ring (18 pages > 16) -> %d (want -ENOMEM)", e);
	ring_fini(&r[0]);		/* released: its 3 pages are uncharged */
	CHECK((e = ring_init(&r[5], 1, 0)) == 0, "after closing one ring -> %d", e);
	PUSH(&r[5], XSC_OP_NOP, 1);
	CHECK(ring_enter(&r[5], 1) == 1, "charged ring works");
	for (i = 1; i < 6; i++)
		ring_fini(&r[i]);
	return PASS;
}

/* Issue 11 finding 3: ring memory is charged against RLIMIT_MEMLOCK */
static int t_life_memlock_limit(void)
{
	pid_t pid;
	int st;

	fflush(stdout);
	pid = fork();
	if (pid == 0)
		_exit(memlock_unprivileged());
	st = child_status(pid);
	CHECK(st == PASS, "unprivileged child status %d", st);
	return PASS;
}

/* ========================================================= 12. guard */

static int guard_on(struct ring *r, unsigned int mode)
{
	struct xsc_guard g = { .mode = mode };

	return ioctl(r->fd, XSC_IOC_GUARD, &g) ? -errno : 0;
}

/* run fn in a forked child: guard state is per thread and one-way */
static int in_child(int (*fn)(void))
{
	pid_t pid;
	int st;

	fflush(stdout);
	pid = fork();
	if (pid == 0)
		_exit(fn());
	st = child_status(pid);
	if (st >= 1000) {
		diag("guard child killed by signal %d", st - 1000);
		return FAIL;
	}
	return st;
}

static int g_errno_mode(void)
{
	struct ring r;
	int p[2], e;
	long ret;
	char buf[4];
	int64_t res;
	void *m;

	CHECK(pipe(p) == 0, "pipe");
	RING(&r, 8, 0);
	CHECK(syscall(SYS_write, p[1], "a", 1) == 1, "write before guard");
	CHECK((e = guard_on(&r, XSC_GUARD_ERRNO)) == 0, "GUARD: %d", e);
	errno = 0;
	ret = syscall(SYS_write, p[1], "b", 1);
	CHECK(ret == -1 && errno == EPERM, "guarded write -> %ld errno %d", ret, errno);
	ret = syscall(SYS_getpid);
	CHECK(ret == -1 && errno == EPERM, "guarded getpid -> %ld", ret);
	CHECK((res = CALL(&r, SYS_write, p[1], U("c"), 1)) == 1, "ring write -> %lld", (long long)res);
	CHECK((res = CALL(&r, SYS_read, p[0], U(buf), 4)) == 2 && !memcmp(buf, "ac", 2),
	      "pipe holds '%.2s' (res %lld), expected 'ac'", buf, (long long)res);
	/* syscalls XSC does not serve keep working */
	m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(m != MAP_FAILED && munmap(m, 4096) == 0, "mmap/munmap under guard");
	CHECK(syscall(SYS_getuid) == (long)getuid(), "getuid under guard");
	CHECK(syscall(SYS_sched_yield) == 0, "sched_yield under guard");
	CHECK(fcntl(p[0], F_GETFD) >= 0, "fcntl under guard");
	return PASS;
}

static int t_guard_errno(void) { return in_child(g_errno_mode); }

static int g_one_way(void)
{
	struct xsc_guard g = { .mode = 0 };
	struct ring r;
	int e;

	RING(&r, 8, 0);
	CHECK((e = guard_on(&r, 0)) == -EINVAL, "mode 0 before guard -> %d", e);
	CHECK((e = guard_on(&r, 3)) == -EINVAL, "mode 3 -> %d", e);
	g.mode = XSC_GUARD_ERRNO;
	g.__resv1 = 1;
	CHECK(ioctl(r.fd, XSC_IOC_GUARD, &g) == -1 && errno == EINVAL, "resv -> %s", strerror(errno));
	CHECK((e = guard_on(&r, XSC_GUARD_ERRNO)) == 0, "GUARD -> %d", e);
	CHECK((e = guard_on(&r, XSC_GUARD_ERRNO)) == 0, "same mode again -> %d", e);
	CHECK((e = guard_on(&r, 0)) == -EPERM, "clear -> %d", e);
	CHECK((e = guard_on(&r, XSC_GUARD_SIGSYS)) == -EPERM, "mode change -> %d", e);
	return PASS;
}

static int t_guard_one_way(void) { return in_child(g_one_way); }

static int t_guard_requires_setup(void)
{
	struct xsc_guard g = { .mode = XSC_GUARD_ERRNO };
	int fd = open(XSC_DEV, O_RDWR);

	CHECK(fd >= 0, "open");
	CHECK(ioctl(fd, XSC_IOC_GUARD, &g) == -1 && errno == EBADFD, "GUARD without ring: %s", strerror(errno));
	close(fd);
	return PASS;
}

static int g_int80(void)
{
	struct ring r;
	long ret;

	ret = int80(20 /* ia32 getpid */, 0, 0, 0);
	SKIPIF(ret == -ENOSYS || ret < 0, "int $0x80 unavailable (%ld), no IA32_EMULATION", ret);
	CHECK(ret == getpid(), "int80 getpid %ld", ret);
	RING(&r, 8, 0);
	CHECK(guard_on(&r, XSC_GUARD_ERRNO) == 0, "GUARD");
	CHECK((ret = int80(20, 0, 0, 0)) == -EPERM, "int80 getpid under guard -> %ld", ret);
	CHECK((ret = int80(4 /* ia32 write */, 1, (long)"", 0)) == -EPERM, "int80 write -> %ld", ret);
	CHECK((ret = int80(24 /* ia32 getuid, not served */, 0, 0, 0)) == -EPERM, "int80 getuid -> %ld", ret);
	return PASS;
}

static int t_guard_int80(void) { return in_child(g_int80); }

static long g_thread_write;
static volatile int g_thread_done;

static void *unguarded_thread(void *p)
{
	g_thread_write = syscall(SYS_write, (long)p, "t", 1);
	g_thread_done = 1;
	return NULL;
}

static int g_thread(void)
{
	struct ring r;
	pthread_t th;
	int p[2];

	CHECK(pipe(p) == 0, "pipe");
	RING(&r, 8, 0);
	CHECK(guard_on(&r, XSC_GUARD_ERRNO) == 0, "GUARD");
	CHECK(pthread_create(&th, NULL, unguarded_thread, (void *)(long)p[1]) == 0, "pthread_create");
	/* no pthread_join: its futex wait is a guarded syscall in this thread */
	while (!g_thread_done)
		sched_yield();
	CHECK(g_thread_write == 1, "new thread's write -> %ld (guard must be per thread)", g_thread_write);
	CHECK(syscall(SYS_write, p[1], "x", 1) == -1 && errno == EPERM, "guarding thread lost its guard");
	return PASS;
}

static int t_guard_new_thread(void) { return in_child(g_thread); }

static int t_guard_fork_child(void)
{
	pid_t pid;
	int st;

	/* child of a guarded process: its syscalls must work; reap via waitid (not served) */
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		struct ring r;
		siginfo_t si;
		pid_t c;

		if (ring_init(&r, 8, 0) || guard_on(&r, XSC_GUARD_ERRNO))
			_exit(2);
		c = fork();
		if (c < 0)
			_exit(3);
		if (c == 0)
			_exit(syscall(SYS_getpid) > 0 && syscall(SYS_write, 1, "", 0) == 0 ? 0 : 1);
		memset(&si, 0, sizeof(si));
		if (waitid(P_PID, c, &si, WEXITED))
			_exit(4);
		_exit(si.si_status == 0 ? 0 : 5);
	}
	st = child_status(pid);
	CHECK(st == 0, "status %d (1: grandchild still guarded)", st);
	return PASS;
}

static int g_exec(void)
{
	char *argv[] = { g_self, "--guard-probe", NULL };
	struct ring r;

	RING(&r, 8, 0);
	CHECK(guard_on(&r, XSC_GUARD_ERRNO) == 0, "GUARD");
	CHECK(syscall(SYS_execve, g_self, argv, environ) == -1 && errno == EPERM, "traditional execve not refused");
	CALL(&r, SYS_execve, U(g_self), U(argv), U(environ));
	diag("ring execve returned");
	return FAIL;
}

static int t_guard_cleared_on_exec(void)
{
	int st;

	SKIPIF(!has_op(SYS_execve), "execve not offered");
	st = in_child(g_exec);
	CHECK(st == 78, "status %d (78 = new image runs unguarded)", st);
	return PASS;
}

static volatile int g_sig_code = -1, g_sig_nr = -1, g_sig_errno = -1, g_sig_count;

static void on_sigsys(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	g_sig_code = si->si_code;
	g_sig_nr = si->si_syscall;
	g_sig_errno = si->si_errno;
	g_sig_count++;
}

static int g_sigsys(void)
{
	struct sigaction sa;
	struct ring r;
	char buf[4];
	int p[2];
	long ret;

	CHECK(pipe(p) == 0, "pipe");
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigsys;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGSYS, &sa, NULL);
	RING(&r, 8, 0);
	CHECK(guard_on(&r, XSC_GUARD_SIGSYS) == 0, "GUARD(SIGSYS)");
	ret = syscall(SYS_write, p[1], "z", 1);
	CHECK(g_sig_count == 1, "SIGSYS count %d (ret %ld)", g_sig_count, ret);
	CHECK(g_sig_code == 1 /* SYS_SECCOMP */, "si_code %d", g_sig_code);
	CHECK(g_sig_nr == SYS_write, "si_syscall %d", g_sig_nr);
	CHECK(g_sig_errno == XSC_GUARD_SIGSYS_ERRNO, "si_errno %d", g_sig_errno);
	CHECK(fcntl(p[0], F_SETFL, O_NONBLOCK) == 0, "fcntl under guard");
	CHECK(CALL(&r, SYS_read, p[0], U(buf), 4) == -EAGAIN, "guarded write reached the pipe");
	return PASS;
}

static int t_guard_sigsys(void) { return in_child(g_sigsys); }

static int t_guard_exit_group_allowed(void)
{
	pid_t pid;
	int st;

	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		struct ring r;

		if (ring_init(&r, 8, 0) || guard_on(&r, XSC_GUARD_ERRNO))
			_exit(2);
		syscall(SYS_exit_group, 7);
		_exit(3);
	}
	st = child_status(pid);
	CHECK(st == 7, "status %d, expected 7", st);
	return PASS;
}

/*
 * Hardening (issue 11, finding 5): a tracer that skips a syscall of a
 * guarded thread (orig_rax = -1 at the syscall-entry stop) chooses its
 * return value; the guard must not write -EPERM over it.
 */
#define PTRACE_SKIP_VALUE 4242
static int t_guard_ptrace_skip(void)
{
	struct user_regs_struct regs;
	int st, in_sys = 0, skipped = 0, stops = 0;
	pid_t pid;

	SKIPIF(!has_op(SYS_getppid), "getppid not offered");
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		struct ring r;
		long v;

		if (ptrace(PTRACE_TRACEME, 0, NULL, NULL))
			_exit(10);
		raise(SIGSTOP);
		if (ring_init(&r, 8, 0) || guard_on(&r, XSC_GUARD_ERRNO))
			_exit(11);
		v = syscall(SYS_getppid);
		if (v == PTRACE_SKIP_VALUE)
			_exit(0);
		if (v == -1 && errno == EPERM)
			_exit(12);	/* the guard overrode the tracer */
		_exit(13);
	}
	CHECK(waitpid(pid, &st, 0) == pid && WIFSTOPPED(st) && WSTOPSIG(st) == SIGSTOP,
	      "child did not stop (status 0x%x)", st);
	CHECK(ptrace(PTRACE_SETOPTIONS, pid, NULL, (void *)PTRACE_O_TRACESYSGOOD) == 0,
	      "PTRACE_SETOPTIONS: %s", strerror(errno));
	CHECK(ptrace(PTRACE_SYSCALL, pid, NULL, NULL) == 0, "PTRACE_SYSCALL: %s", strerror(errno));
	for (;;) {
		int sig = 0;

		CHECK(waitpid(pid, &st, 0) == pid, "waitpid: %s", strerror(errno));
		if (WIFEXITED(st) || WIFSIGNALED(st))
			break;
		CHECK(++stops < 10000, "too many stops");
		if (WIFSTOPPED(st) && WSTOPSIG(st) == (SIGTRAP | 0x80)) {
			in_sys = !in_sys;
			if (in_sys) {
				CHECK(ptrace(PTRACE_GETREGS, pid, NULL, &regs) == 0, "GETREGS: %s", strerror(errno));
				if (regs.orig_rax == SYS_getppid && !skipped) {
					regs.orig_rax = -1;	/* skip the syscall ... */
					regs.rax = PTRACE_SKIP_VALUE;	/* ... with this result */
					CHECK(ptrace(PTRACE_SETREGS, pid, NULL, &regs) == 0, "SETREGS: %s",
					      strerror(errno));
					skipped = 1;
				}
			}
		} else if (WIFSTOPPED(st)) {
			sig = WSTOPSIG(st);
		}
		CHECK(ptrace(PTRACE_SYSCALL, pid, NULL, (void *)(long)sig) == 0, "PTRACE_SYSCALL: %s",
		      strerror(errno));
	}
	CHECK(skipped, "never saw the getppid entry stop");
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "tracee status 0x%x (exit 12: the guard wrote -EPERM over the tracer's skip value %d)",
	      st, PTRACE_SKIP_VALUE);
	return PASS;
}

/* ========================================================= 13. hostile */

static uint64_t rnd_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return rnd_state;
}

static int t_host_random_opcodes(void)
{
	struct xsc_cqe c;
	struct ring r;
	int round, i, errs = 0;

	RING(&r, 64, 0);
	for (round = 0; round < 50; round++) {
		for (i = 0; i < 64; i++) {
			unsigned int op;
			struct xsc_sqe *s;

			do
				op = rnd() & 0xffff;
			while (op == XSC_OP_NOP || has_op(op));
			PUSH(&r, op, i, rnd(), rnd(), rnd(), rnd(), rnd(), rnd());
			s = &r.sqes[(r.sq_tail - 1) & 63];
			if (rnd() & 1) {
				s->opcode = XSC_OP_NOP;	/* NOP with garbage flags/resv */
				s->flags = rnd() | 1;
				s->__resv0 = rnd();
			}
		}
		CHECK(ring_enter(&r, 64) == 64, "round %d", round);
		for (i = 0; i < 64; i++) {
			CHECK(cq_pop(&r, &c), "CQE");
			errs += c.res == -EINVAL;
		}
	}
	CHECK(errs == 50 * 64, "%d of %d random SQEs were not -EINVAL", 50 * 64 - errs, 50 * 64);
	ring_fini(&r);
	return PASS;
}

static int t_host_random_args(void)
{
	static const uint64_t bad[] = { 0, 1, 0xfff, KADDR, 0xffffffffffffffffULL, 0x8000000000000000ULL,
					0x00007ffffffff000ULL, 0xffffffff81000000ULL };
	struct xsc_cqe c;
	struct ring r;
	int dz, i, round;

	dz = open("/dev/null", O_RDWR);
	CHECK(dz >= 0, "/dev/null");
	RING(&r, 64, 0);
	for (round = 0; round < 20; round++) {
		for (i = 0; i < 64; i++) {
			uint64_t p = bad[rnd() % 8], n = rnd() % 4096 + 1;

			switch (rnd() % 5) {
			case 0: PUSH(&r, has_op(SYS_read) ? SYS_read : XSC_OP_NOP, i, rnd() & 1 ? dz : -1, p, n); break;
			case 1: PUSH(&r, has_op(SYS_write) ? SYS_write : XSC_OP_NOP, i, 1000 + rnd() % 100, p, n); break;
			case 2: PUSH(&r, has_op(SYS_clock_gettime) ? SYS_clock_gettime : XSC_OP_NOP, i, rnd() % 16, p); break;
			case 3: PUSH(&r, has_op(SYS_fstat) ? SYS_fstat : XSC_OP_NOP, i, dz, p); break;
			default: PUSH(&r, has_op(SYS_nanosleep) ? SYS_nanosleep : XSC_OP_NOP, i, p, p); break;
			}
		}
		CHECK(ring_enter(&r, 64) == 64, "round %d", round);
		for (i = 0; i < 64; i++) {
			CHECK(cq_pop(&r, &c), "CQE");
			CHECK(c.res <= 0 && c.res > -4096 && !(c.res <= -512 && c.res >= -516),
			      "op %u res %lld", c.opcode, (long long)c.res);
		}
	}
	ring_fini(&r);
	return PASS;
}

static int t_host_tampered_indices(void)
{
	struct xsc_cqe c;
	struct ring r;
	long n;

	RING(&r, 8, 8);
	PUSH(&r, XSC_OP_NOP, 1);
	r.hdr->sq_tail = 0x80000000u;
	CHECK((n = ring_enter(&r, 1)) == -EINVAL, "sq_tail far ahead -> %ld", n);
	r.hdr->sq_tail = 0xffffffffu;				/* behind head */
	CHECK((n = ring_enter(&r, 1)) == -EINVAL, "sq_tail behind -> %ld", n);
	r.hdr->sq_tail = r.sq_tail;
	r.hdr->cq_head = 5;					/* ahead of cq_tail */
	CHECK((n = ring_enter(&r, 1)) == -EINVAL, "cq_head ahead -> %ld", n);
	r.hdr->cq_head = 0x80000000u;
	CHECK((n = ring_enter(&r, 1)) == -EINVAL, "cq_head far -> %ld", n);
	r.hdr->cq_head = 0;
	r.hdr->sq_head = 12345;					/* kernel-owned: ignored */
	r.hdr->cq_tail = 777;
	CHECK((n = ring_enter(&r, 1)) == 1, "after repair -> %ld", n);
	CHECK(r.hdr->sq_head == 1 && r.hdr->cq_tail == 1, "kernel trusted user indices: %u %u",
	      r.hdr->sq_head, r.hdr->cq_tail);
	CHECK(cq_pop(&r, &c) && c.user_data == 1, "CQE");
	ring_fini(&r);
	return PASS;
}

static int t_host_tampered_ro_fields(void)
{
	struct xsc_cqe c;
	struct ring r;
	int round, i;

	RING(&r, 8, 8);
	for (round = 0; round < 5; round++) {
		r.hdr->sq_mask = 0xffffffffu;
		r.hdr->sq_entries = 0xffffffffu;
		r.hdr->cq_mask = 0xffffffffu;
		r.hdr->cq_entries = 0xffffffffu;
		for (i = 0; i < 8; i++) {
			r.sqes[r.sq_tail & 7] = (struct xsc_sqe){ .opcode = XSC_OP_NOP, .user_data = round * 8 + i };
			r.sq_tail++;
		}
		__atomic_store_n(&r.hdr->sq_tail, r.sq_tail, __ATOMIC_RELEASE);
		CHECK(ring_enter(&r, 8) == 8, "round %d", round);
		for (i = 0; i < 8; i++) {
			c = r.cqes[r.cq_head & 7];
			CHECK(c.user_data == (uint64_t)(round * 8 + i), "CQE outside the ring? ud %llu",
			      (unsigned long long)c.user_data);
			r.cq_head++;
		}
		r.hdr->cq_head = r.cq_head;
	}
	ring_fini(&r);
	return PASS;
}

static volatile int g_stop;
static struct ring g_hr;

static void *scribbler(void *p __attribute__((unused)))
{
	static const unsigned int ops[] = { XSC_OP_NOP, 0x7fff, SYS_mmap, SYS_getpid, SYS_fork };
	uint64_t s = 88172645463325252ULL;

	while (!g_stop) {
		struct xsc_sqe *q = &g_hr.sqes[s & 15];

		s ^= s << 13; s ^= s >> 7; s ^= s << 17;
		q->opcode = ops[s % 5];
		q->flags = (s >> 8) & 1;
		q->args[0] = s;
		if ((s & 0xff) == 0)
			g_hr.hdr->sq_tail = (uint32_t)(s >> 16);
		if ((s & 0xff) == 1)
			g_hr.hdr->cq_head = (uint32_t)(s >> 20);
	}
	return NULL;
}

static int t_host_concurrent_scribble(void)
{
	pthread_t th;
	double t0;
	long n, calls = 0, bad = 0;

	CHECK(ring_init(&g_hr, 16, 16) == 0, "ring");
	CHECK(pthread_create(&th, NULL, scribbler, NULL) == 0, "pthread_create");
	t0 = now_ms();
	while (now_ms() - t0 < 700) {
		/* keep the SQ plausibly populated and the CQ drained */
		__atomic_store_n(&g_hr.hdr->sq_tail, g_hr.hdr->sq_head + 8, __ATOMIC_RELEASE);
		__atomic_store_n(&g_hr.hdr->cq_head, g_hr.hdr->cq_tail, __ATOMIC_RELEASE);
		n = ring_enter(&g_hr, 16);
		calls++;
		if (n < 0 && n != -EINVAL && n != -EBUSY)
			bad++;
		if (n > 16)
			bad++;
	}
	g_stop = 1;
	pthread_join(th, NULL);
	diag("%ld ENTER calls under concurrent tampering", calls);
	CHECK(!bad, "%ld unexpected ENTER results", bad);
	CHECK(getppid() > 0, "still alive");
	ring_fini(&g_hr);
	return PASS;
}

static int t_host_huge_counts(void)
{
	struct xsc_setup p;
	struct ring r;
	long n;
	int fd;

	RING(&r, 8, 0);
	CHECK((n = ring_enter(&r, 0xffffffffu)) == 0, "empty ring, huge count -> %ld", n);
	PUSH(&r, XSC_OP_NOP, 1);
	CHECK((n = ring_enter(&r, 0xffffffffu)) == 1, "one SQE, huge count -> %ld", n);
	ring_fini(&r);
	fd = open(XSC_DEV, O_RDWR);
	CHECK(fd >= 0, "open");
	memset(&p, 0, sizeof(p));
	p.sq_entries = 8;
	p.cq_entries = 0xffffffffu;
	CHECK(ioctl(fd, XSC_IOC_SETUP, &p) == -1 && errno == EINVAL, "cq UINT_MAX: %s", strerror(errno));
	p.sq_entries = 0x80000000u;
	p.cq_entries = 0;
	CHECK(ioctl(fd, XSC_IOC_SETUP, &p) == -1 && errno == EINVAL, "sq 2^31: %s", strerror(errno));
	close(fd);
	return PASS;
}

static int t_host_fd_exhaustion(void)
{
	struct ring r[64];
	int i, n = 0;

	for (i = 0; i < 64; i++) {
		if (ring_init(&r[i], 4096, 8192))
			break;
		n++;
	}
	diag("%d max-size rings", n);
	CHECK(n == 64, "only %d rings", n);
	for (i = 0; i < n; i++) {
		PUSH(&r[i], XSC_OP_NOP, i);
		CHECK(ring_enter(&r[i], 1) == 1, "ring %d", i);
	}
	for (i = 0; i < n; i++)
		ring_fini(&r[i]);
	return PASS;
}

/* ========================================================= 14. admin */

static int sysctl_set(const char *name, int val)
{
	char path[96], buf[16];
	int fd, n, e = 0;

	snprintf(path, sizeof(path), "/proc/sys/kernel/%s", name);
	fd = open(path, O_WRONLY);
	if (fd < 0)
		return -errno;
	n = snprintf(buf, sizeof(buf), "%d\n", val);
	if (write(fd, buf, n) != n)
		e = -errno;
	close(fd);
	return e;
}

/* kernel.xsc_disabled = 2: nobody sets up rings, existing rings stop */
static int t_admin_sysctl_disabled(void)
{
	struct ring r, r2;
	long n;
	int e, set;

	RING(&r, 8, 0);
	PUSH(&r, XSC_OP_NOP, 1);
	set = sysctl_set("xsc_disabled", 2);
	CHECK(set == 0, "write kernel.xsc_disabled=2: %s", strerror(-set));
	e = ring_init(&r2, 8, 0);
	n = ring_enter(&r, 1);
	set = sysctl_set("xsc_disabled", 0);	/* restore before judging */
	if (e == 0)
		ring_fini(&r2);
	CHECK(set == 0, "restore kernel.xsc_disabled=0: %s", strerror(-set));
	CHECK(e == -EPERM, "SETUP as root with xsc_disabled=2 -> %d (want -EPERM)", e);
	CHECK(n == -EPERM, "ENTER with xsc_disabled=2 -> %ld (want -EPERM)", n);
	CHECK(r.hdr->sq_head == 0, "SQE consumed while disabled");
	CHECK((n = ring_enter(&r, 1)) == 1, "ENTER after re-enabling -> %ld", n);
	CHECK(sysctl_set("xsc_disabled", 3) == -EINVAL, "xsc_disabled=3 accepted");
	ring_fini(&r);
	return PASS;
}

/* SETUP result (0 or -errno) in a child with the given credentials */
static int setup_as(int drop, const gid_t *groups, size_t ngroups)
{
	pid_t pid;
	int st;

	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		struct ring r;

		if (drop && drop_to_nobody(groups, ngroups))
			_exit(200);
		_exit(-ring_init(&r, 8, 0));
	}
	st = child_status(pid);
	return st == 200 || st >= 1000 || st < 0 ? -1000 : -st;
}

/* kernel.xsc_disabled = 1: CAP_SYS_ADMIN or kernel.xsc_group only */
static int t_admin_sysctl_group(void)
{
	const gid_t member[] = { 4242 };
	int root, nobody, grp, set1, set2;

	set1 = sysctl_set("xsc_group", 4242);
	set2 = sysctl_set("xsc_disabled", 1);
	root = setup_as(0, NULL, 0);
	nobody = setup_as(1, NULL, 0);
	grp = setup_as(1, member, 1);
	sysctl_set("xsc_disabled", 0);
	sysctl_set("xsc_group", -1);
	CHECK(set1 == 0 && set2 == 0, "sysctl writes: %s / %s", strerror(-set1), strerror(-set2));
	CHECK(root == 0, "root (CAP_SYS_ADMIN) -> %d", root);
	CHECK(nobody == -EPERM, "uid 65534 outside xsc_group -> %d (want -EPERM)", nobody);
	CHECK(grp == 0, "uid 65534 in xsc_group 4242 -> %d", grp);
	CHECK(setup_as(1, NULL, 0) == 0, "uid 65534 with xsc_disabled=0 (default) refused");
	return PASS;
}

static unsigned int g_nlseq;

/* AUDIT_SET; returns the ACK's error (0 or -errno) */
static int audit_set(int s, uint32_t mask, uint32_t enabled, uint32_t pid)
{
	struct {
		struct nlmsghdr h;
		struct audit_status st;
	} m;
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	char buf[8192];
	int i;

	memset(&m, 0, sizeof(m));
	m.h.nlmsg_len = NLMSG_LENGTH(sizeof(m.st));
	m.h.nlmsg_type = AUDIT_SET;
	m.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	m.h.nlmsg_seq = ++g_nlseq;
	m.st.mask = mask;
	m.st.enabled = enabled;
	m.st.pid = pid;
	if (sendto(s, &m, m.h.nlmsg_len, 0, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -errno;
	for (i = 0; i < 100; i++) {
		ssize_t n = recv(s, buf, sizeof(buf), 0);
		struct nlmsghdr *h = (struct nlmsghdr *)buf;

		if (n < 0)
			return -errno;
		for (; NLMSG_OK(h, n); h = NLMSG_NEXT(h, n))
			if (h->nlmsg_type == NLMSG_ERROR && h->nlmsg_seq == g_nlseq)
				return ((struct nlmsgerr *)NLMSG_DATA(h))->error;
	}
	return -ETIMEDOUT;
}

/* look for an XSC_AUDIT_OP record naming getppid with our marker a0 */
static int audit_find_op(int s, char *seen, size_t seenlen)
{
	char buf[8192];
	int i;

	seen[0] = 0;
	for (i = 0; i < 200; i++) {
		ssize_t n = recv(s, buf, sizeof(buf) - 1, 0);
		struct nlmsghdr *h = (struct nlmsghdr *)buf;

		if (n < 0)
			return 0;	/* SO_RCVTIMEO: nothing more came */
		buf[n] = 0;
		for (; NLMSG_OK(h, n); h = NLMSG_NEXT(h, n)) {
			int len = h->nlmsg_len - NLMSG_HDRLEN;

			if (h->nlmsg_type != XSC_AUDIT_OP)
				continue;
			/* the text is not NUL-terminated; op= and a0= lead it */
			snprintf(seen, seenlen, "%.*s", len, (char *)NLMSG_DATA(h));
			if (strstr(seen, "op=110 ") && strstr(seen, "a0=5eed1234 "))
				return 1;
		}
	}
	return 0;
}

/* with audit enabled every ring op leaves an XSC_AUDIT_OP record */
static int t_admin_audit_op(void)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	struct timeval tv = { .tv_sec = 3 };
	char seen[512];
	struct ring r;
	int64_t res;
	int s, e, found;

	RING(&r, 8, 0);
	s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_AUDIT);
	CHECK(s >= 0, "netlink audit socket: %s (CONFIG_AUDIT?)", strerror(errno));
	CHECK(bind(s, (struct sockaddr *)&sa, sizeof(sa)) == 0, "bind: %s", strerror(errno));
	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	/* become the audit daemon: records come to this socket, not the console */
	e = audit_set(s, AUDIT_STATUS_ENABLED | AUDIT_STATUS_PID, 1, getpid());
	CHECK(e == 0, "AUDIT_SET enable: %s", strerror(-e));
	res = CALL(&r, SYS_getppid, 0x5eed1234);
	found = audit_find_op(s, seen, sizeof(seen));
	e = audit_set(s, AUDIT_STATUS_ENABLED | AUDIT_STATUS_PID, 0, 0);
	close(s);
	CHECK(res == getppid(), "getppid through the ring -> %lld", (long long)res);
	CHECK(e == 0, "AUDIT_SET disable: %s", strerror(-e));
	CHECK(found, "no XSC_AUDIT_OP (%d) record for the ring getppid (last seen: %s)",
	      XSC_AUDIT_OP, seen[0] ? seen : "none");
	diag("record: %s", seen);
	ring_fini(&r);
	return PASS;
}

/* ========================================================= 15. seccomp */

/* a ring whose ops the task's seccomp filters judge one by one */
#define SC_RING(r) do {							\
	int __e = ring_init_flags((r), 8, 0, XSC_SETUP_SECCOMP);	\
	CHECK(__e == 0, "SETUP with XSC_SETUP_SECCOMP -> %d (%s)", __e,	\
	      strerror(-__e));						\
} while (0)

#define NF(f) (unsigned short)(sizeof(f) / sizeof((f)[0]))

static int install_filter(struct sock_filter *f, unsigned short len, unsigned int flags)
{
	struct sock_fprog prog = { .len = len, .filter = f };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return -errno;
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog))
		return -errno;
	return 0;
}

/* getppid -> @ret; everything else allowed; a foreign arch -> EXDEV */
#define SC_FILTER(ret)								\
	struct sock_filter f[] = {						\
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)), \
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),	\
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EXDEV),		\
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)), \
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getppid, 0, 1),		\
		BPF_STMT(BPF_RET | BPF_K, (ret)),				\
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getpid, 0, 3),		\
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])), \
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x77, 0, 1),		\
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EOPNOTSUPP),	\
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),			\
	}

/* ERRNO lands in the op's CQE; the rest of the batch runs; args and arch are seen */
static int t_sc_filter_errno(void)
{
	SC_FILTER(SECCOMP_RET_ERRNO | EACCES);
	struct ring r, plain;
	struct xsc_cqe c[5];
	long n;
	int e, i;

	SC_RING(&r);
	CHECK((e = install_filter(f, NF(f), 0)) == 0, "seccomp: %s", strerror(-e));
	CHECK(syscall(SYS_getppid) == -1 && errno == EACCES, "filter not active for the trap path");
	PUSH(&r, SYS_getppid, 1);
	PUSH(&r, SYS_getpid, 2, 0);
	PUSH(&r, XSC_OP_NOP, 3);
	PUSH(&r, SYS_getpid, 4, 0x77);
	PUSH(&r, SYS_getppid, 5);
	CHECK((n = ring_enter(&r, 5)) == 5, "ENTER under a filter -> %ld (want 5)", n);
	for (i = 0; i < 5; i++)
		CHECK(cq_pop(&r, &c[i]) && c[i].user_data == (uint64_t)i + 1, "CQE %d missing", i);
	CHECK(c[0].res == -EACCES, "getppid -> %lld (want -EACCES)", (long long)c[0].res);
	CHECK(c[1].res == getpid(), "getpid(0) -> %lld", (long long)c[1].res);
	CHECK(c[2].res == 0, "NOP -> %lld", (long long)c[2].res);
	CHECK(c[3].res == -EOPNOTSUPP, "getpid(0x77) -> %lld: the filter did not see the SQE's args",
	      (long long)c[3].res);
	CHECK(c[4].res == -EACCES, "second getppid -> %lld", (long long)c[4].res);
	/* a ring without the flag keeps ABI v1: seccomp'd tasks are refused */
	CHECK((e = ring_init(&plain, 8, 0)) == -EPERM, "plain SETUP under seccomp -> %d", e);
	ring_fini(&r);
	return PASS;
}

/* @wfd: the write end of the parent's pipe */
static int sc_kill_process(int wfd)
{
	SC_FILTER(SECCOMP_RET_KILL_PROCESS);
	struct ring r;
	int e;

	SC_RING(&r);
	CHECK((e = install_filter(f, NF(f), 0)) == 0, "seccomp: %s", strerror(-e));
	PUSH(&r, SYS_write, 1, wfd, U("k"), 1);
	PUSH(&r, SYS_getppid, 2);
	PUSH(&r, SYS_write, 3, wfd, U("z"), 1);
	ring_enter(&r, 3);
	return 42;			/* survived */
}

static struct ring g_kt_ring;
static volatile long g_kt_ret = BADRES;

static void *kt_thread(void *arg __attribute__((unused)))
{
	g_kt_ret = ring_enter(&g_kt_ring, 1);
	return NULL;
}

static int sc_kill_thread(void)
{
	SC_FILTER(SECCOMP_RET_KILL_THREAD);
	pthread_t t;
	int e;

	if (ring_init_flags(&g_kt_ring, 8, 0, XSC_SETUP_SECCOMP))
		return 40;
	if ((e = install_filter(f, NF(f), SECCOMP_FILTER_FLAG_TSYNC)))
		return 41;
	PUSH(&g_kt_ring, SYS_getppid, 1);
	if (pthread_create(&t, NULL, kt_thread, NULL))
		return 43;
	pthread_join(t, NULL);		/* the thread died in its ENTER */
	if (g_kt_ret != BADRES)
		return 44;		/* its ENTER returned */
	return g_kt_ring.hdr->sq_head == 1 && g_kt_ring.hdr->cq_tail == 0 ? 0 : 45;
}

/* KILL_PROCESS kills the process before the next op; KILL_THREAD only the thread */
static int t_sc_filter_kill(void)
{
	char buf[8];
	pid_t pid;
	int p[2], st;
	ssize_t n;

	CHECK(pipe(p) == 0, "pipe");
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		close(p[0]);
		_exit(sc_kill_process(p[1]));
	}
	close(p[1]);
	st = child_status(pid);
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	n = read(p[0], buf, sizeof(buf));
	CHECK(st == 1000 + SIGSYS, "KILL_PROCESS: child status %d (want SIGSYS)", st);
	CHECK(n == 1 && buf[0] == 'k', "KILL_PROCESS: pipe got %zd bytes: the op before ran? the one after must not", n);
	pid = fork();
	if (pid == 0)
		_exit(sc_kill_thread());
	st = child_status(pid);
	CHECK(st == 0, "KILL_THREAD: child status %d (0 = only the thread died, before any CQE)", st);
	return PASS;
}

static volatile siginfo_t g_sc_si;
static volatile int g_sc_sigs;

static void on_sc_sigsys(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	g_sc_si = *si;
	g_sc_sigs++;
}

/* TRAP: SIGSYS naming the op, CQE -ENOSYS, the batch ends there */
static int t_sc_filter_trap(void)
{
	SC_FILTER(SECCOMP_RET_TRAP | 7);
	struct sigaction sa = { .sa_sigaction = on_sc_sigsys, .sa_flags = SA_SIGINFO };
	struct xsc_cqe c;
	struct ring r;
	long n;
	int e;

	CHECK(sigaction(SIGSYS, &sa, NULL) == 0, "sigaction");
	SC_RING(&r);
	CHECK((e = install_filter(f, NF(f), 0)) == 0, "seccomp: %s", strerror(-e));
	PUSH(&r, SYS_getppid, 1);
	PUSH(&r, XSC_OP_NOP, 2);
	n = ring_enter(&r, 2);
	CHECK(n == 1, "ENTER -> %ld (want 1: the batch ends at the trapped op)", n);
	CHECK(cq_pop(&r, &c) && c.user_data == 1 && c.res == -ENOSYS, "trapped op's CQE res %lld",
	      (long long)c.res);
	CHECK(r.hdr->sq_head == 1, "NOP after the trap consumed");
	CHECK(g_sc_sigs == 1, "%d SIGSYS", g_sc_sigs);
	CHECK(g_sc_si.si_code == 1 /* SYS_SECCOMP */ && g_sc_si.si_syscall == SYS_getppid &&
	      g_sc_si.si_errno == 7 && g_sc_si.si_arch == AUDIT_ARCH_X86_64 && g_sc_si.si_call_addr,
	      "siginfo code %d syscall %d errno %d arch %x addr %p", g_sc_si.si_code, g_sc_si.si_syscall,
	      g_sc_si.si_errno, g_sc_si.si_arch, g_sc_si.si_call_addr);
	ring_fini(&r);
	return PASS;
}

/*
 * The TSYNC race of finding 1 on a filtered ring: a filter a sibling
 * installs while ENTER is blocked in an op, or asleep on the ring mutex,
 * judges every later op.  Deterministic ordering (pipes + 300 ms
 * settling), 1 iteration: both getppid ops must get the filter's errno.
 */
static int t_sc_filter_tsync(void)
{
	SC_FILTER(SECCOMP_RET_ERRNO | EACCES);
	struct tsync_arg a1, a2, c2;
	pthread_t t1, t2, tc;
	struct ring r1, r2;
	struct xsc_cqe c;
	char b1[4], b2[4];
	int p1[2], p2[2], e, bad = 0, denied = 0;
	long ppid = getppid();

	CHECK(pipe(p1) == 0 && pipe(p2) == 0, "pipe");
	SC_RING(&r1);
	SC_RING(&r2);
	PUSH(&r1, SYS_read, 1, p1[0], U(b1), 1);
	PUSH(&r1, SYS_getppid, 2);
	PUSH(&r2, SYS_read, 3, p2[0], U(b2), 1);
	PUSH(&r2, SYS_getppid, 4);
	a1 = (struct tsync_arg){ .r = &r1, .n = 2 };
	a2 = (struct tsync_arg){ .r = &r2, .n = 1 };
	c2 = (struct tsync_arg){ .r = &r2, .n = 1 };
	CHECK(pthread_create(&t1, NULL, tsync_enter, &a1) == 0, "pthread_create");
	CHECK(pthread_create(&t2, NULL, tsync_enter, &a2) == 0, "pthread_create");
	while (!a1.started || !a2.started)
		usleep(1000);
	usleep(300 * 1000);		/* both are in their read now */
	CHECK(pthread_create(&tc, NULL, tsync_enter, &c2) == 0, "pthread_create");
	while (!c2.started)
		usleep(1000);
	usleep(300 * 1000);		/* the second ENTER sleeps on r2's mutex */
	CHECK((e = install_filter(f, NF(f), SECCOMP_FILTER_FLAG_TSYNC)) == 0, "TSYNC: %s", strerror(-e));
	CHECK(write(p1[1], "a", 1) == 1 && write(p2[1], "b", 1) == 1, "write");
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	pthread_join(tc, NULL);
	diag("enter (a) -> %ld, (b) first -> %ld, (b) waiting -> %ld", a1.ret, a2.ret, c2.ret);
	while (cq_pop(&r1, &c) || cq_pop(&r2, &c)) {
		if (c.opcode == SYS_getppid && c.res == ppid)
			bad++;
		if (c.opcode == SYS_getppid && c.res == -EACCES)
			denied++;
	}
	CHECK(!bad, "%d getppid op(s) ran past the TSYNC filter", bad);
	CHECK(a1.ret == 2 && a2.ret == 1 && c2.ret == 1, "ENTERs -> %ld, %ld, %ld (want 2, 1, 1)",
	      a1.ret, a2.ret, c2.ret);
	CHECK(denied == 2, "%d getppid CQEs with the filter's EACCES (want 2)", denied);
	ring_fini(&r1);
	ring_fini(&r2);
	return PASS;
}

/* ========================================================= 16. restart (ABI v2) */

#define RS_RING(r) do {							\
	int __e = ring_init_flags((r), 8, 0, XSC_SETUP_RESTART);	\
	CHECK(__e == 0, "SETUP with XSC_SETUP_RESTART -> %d (%s)", __e,	\
	      strerror(-__e));						\
	CHECK((r)->p.abi_version == XSC_ABI_VERSION_RESTART &&		\
	      ((r)->p.features & XSC_FEAT_RESTART), "abi %u features %x",	\
	      (r)->p.abi_version, (r)->p.features);			\
} while (0)

static volatile int g_rs_sigs;
static void on_rs_sig(int sig) { (void)sig; g_rs_sigs++; }

struct rs_arg {
	struct ring *r;
	struct xsc_enter e;
	volatile int started;
	long ret;
};

static void *rs_enter(void *p)
{
	struct rs_arg *a = p;

	a->started = 1;
	a->ret = ioctl(a->r->fd, XSC_IOC_ENTER, &a->e) < 0 ? -errno : 0;
	if (a->ret == 0)
		a->ret = a->r->hdr->sq_head;	/* ioctl's value is the count; sq_head says the same */
	return NULL;
}

/* an SA_RESTART handler during a blocking ring read: the read returns the data */
static int t_rs_sa_restart_read(void)
{
	struct sigaction sa = { .sa_handler = on_rs_sig, .sa_flags = SA_RESTART };
	struct rs_arg a;
	struct xsc_cqe c;
	struct ring r;
	char buf[4] = "";
	pthread_t t;
	int p[2];

	CHECK(sigaction(SIGUSR1, &sa, NULL) == 0 && pipe(p) == 0, "setup");
	RS_RING(&r);
	PUSH(&r, SYS_read, 1, p[0], U(buf), 1);
	a = (struct rs_arg){ .r = &r, .e = { .to_submit = 1 } };
	CHECK(pthread_create(&t, NULL, rs_enter, &a) == 0, "pthread_create");
	while (!a.started)
		usleep(1000);
	usleep(300 * 1000);		/* the thread is in the read */
	pthread_kill(t, SIGUSR1);
	usleep(300 * 1000);		/* handler ran, ENTER restarted */
	CHECK(write(p[1], "d", 1) == 1, "write");
	pthread_join(t, NULL);
	CHECK(g_rs_sigs == 1, "%d handler runs", g_rs_sigs);
	CHECK(a.ret == 1, "ENTER -> %ld (want the read completed, not EINTR)", a.ret);
	CHECK(cq_pop(&r, &c) && c.user_data == 1 && c.res == 1 && buf[0] == 'd',
	      "read CQE res %lld buf '%c'", (long long)c.res, buf[0]);
	CHECK(!cq_pop(&r, &c), "a second CQE (op run twice?)");
	ring_fini(&r);
	return PASS;
}

/* SIGSTOP/SIGCONT during a blocking ring read: the read returns the data */
static int t_rs_stop_cont_read(void)
{
	int p[2], st;
	pid_t pid;

	CHECK(pipe(p) == 0, "pipe");
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		struct xsc_enter e = { .to_submit = 1 };
		struct xsc_cqe c;
		struct ring r;
		char buf[4] = "";

		if (ring_init_flags(&r, 8, 0, XSC_SETUP_RESTART))
			_exit(10);
		PUSH(&r, SYS_read, 1, p[0], U(buf), 1);
		if (ioctl(r.fd, XSC_IOC_ENTER, &e) != 1)
			_exit(11);	/* EINTR: the stop leaked into the op */
		if (!cq_pop(&r, &c) || c.res != 1 || buf[0] != 's')
			_exit(12);
		_exit(cq_pop(&r, &c) ? 13 : 0);
	}
	usleep(300 * 1000);
	kill(pid, SIGSTOP);
	usleep(300 * 1000);
	kill(pid, SIGCONT);
	usleep(300 * 1000);
	CHECK(write(p[1], "s", 1) == 1, "write");
	st = child_status(pid);
	CHECK(st == 0, "child status %d (10 setup, 11 ENTER not 1, 12 bad CQE, 13 two CQEs)", st);
	return PASS;
}

/* a handler without SA_RESTART: ENTER -> EINTR, earlier ops ran once, the read stays queued */
static int t_rs_no_restart_eintr(void)
{
	struct sigaction sa = { .sa_handler = on_rs_sig, .sa_flags = 0 };
	struct rs_arg a;
	struct xsc_cqe c;
	struct ring r;
	char buf[8] = "", got[8];
	pthread_t t;
	int p[2], q[2];
	long n;

	CHECK(sigaction(SIGUSR1, &sa, NULL) == 0 && pipe(p) == 0 && pipe(q) == 0, "setup");
	RS_RING(&r);
	PUSH(&r, SYS_write, 1, q[1], U("x"), 1);
	PUSH(&r, SYS_read, 2, p[0], U(buf), 1);
	a = (struct rs_arg){ .r = &r, .e = { .to_submit = 2 } };
	CHECK(pthread_create(&t, NULL, rs_enter, &a) == 0, "pthread_create");
	while (!a.started)
		usleep(1000);
	usleep(300 * 1000);
	pthread_kill(t, SIGUSR1);
	pthread_join(t, NULL);
	CHECK(a.ret == -EINTR, "ENTER -> %ld (want -EINTR)", a.ret);
	CHECK(a.e.to_submit == 1, "to_submit written back as %u (want 1)", a.e.to_submit);
	CHECK(r.hdr->sq_head == 1, "sq_head %u (want 1: the read stays queued)", r.hdr->sq_head);
	CHECK(cq_pop(&r, &c) && c.user_data == 1 && c.res == 1, "write CQE");
	CHECK(!cq_pop(&r, &c), "a CQE for the interrupted read (ud %llu res %lld)",
	      (unsigned long long)c.user_data, (long long)c.res);
	CHECK(write(p[1], "y", 1) == 1, "write");
	CHECK((n = ring_enter(&r, 1)) == 1, "ENTER again -> %ld", n);
	CHECK(cq_pop(&r, &c) && c.user_data == 2 && c.res == 1 && buf[0] == 'y', "read CQE");
	fcntl(q[0], F_SETFL, O_NONBLOCK);
	CHECK((n = read(q[0], got, sizeof(got))) == 1, "the write op ran %ld times", n);
	ring_fini(&r);
	return PASS;
}

/*
 * A relative ring clock_nanosleep(2 s) stopped at 0.3 s and continued at
 * 1.0 s (no handler): the ENTER restarts and the sleep ends at its
 * original expiry, inside the ring -- not from scratch (>= SIGCONT + 2 s),
 * not early (< 2 s), not with -EINTR, and no restart_syscall left armed.
 */
static int t_rs_clock_nanosleep_stop(void)
{
	struct timespec ts = { 2, 0 }, rem = { 0, 0 };
	struct xsc_enter e = { .to_submit = 1 };
	struct xsc_cqe c;
	struct ring r;
	pid_t me = getpid(), helper;
	double t0, t1, cont = 0, dt;
	long n, ret;
	int p[2], st, err;

	SKIPIF(!has_op(SYS_clock_nanosleep), "clock_nanosleep not offered");
	CHECK(pipe(p) == 0, "pipe");
	RS_RING(&r);
	PUSH(&r, SYS_clock_nanosleep, 1, CLOCK_MONOTONIC, 0, U(&ts), U(&rem));
	fflush(stdout);
	t0 = now_ms();
	helper = fork();
	if (helper == 0) {
		double at;

		usleep(300 * 1000);
		kill(me, SIGSTOP);
		while ((at = now_ms()) < t0 + 1000)
			usleep(10 * 1000);
		kill(me, SIGCONT);
		_exit(write(p[1], &at, sizeof(at)) == sizeof(at) ? 0 : 1);
	}
	n = ioctl(r.fd, XSC_IOC_ENTER, &e);
	err = errno;
	t1 = now_ms();
	st = child_status(helper);
	CHECK(st == 0 && read(p[0], &cont, sizeof(cont)) == sizeof(cont), "helper status %d", st);
	CHECK(n == 1, "ENTER -> %ld errno %d (want 1: restarted, the sleep completed)", n,
	      n < 0 ? err : 0);
	CHECK(cq_pop(&r, &c) && c.user_data == 1, "no CQE");
	CHECK(c.res == 0, "clock_nanosleep CQE res %lld (want 0)", (long long)c.res);
	CHECK(t1 - t0 >= 1999, "woke after %.0f ms: undersleep of a 2 s sleep", t1 - t0);
	CHECK(t1 - cont < 1500,
	      "woke %.0f ms after SIGCONT (%.0f ms after start): restarted from scratch "
	      "(a from-scratch sleep ends >= 2000 ms after SIGCONT)", t1 - cont, t1 - t0);
	CHECK(!cq_pop(&r, &c), "a second CQE (op run twice?)");
	t0 = now_ms();
	ret = syscall(SYS_restart_syscall);
	err = errno;
	dt = now_ms() - t0;
	CHECK(ret == -1 && err == EINTR && dt < 1000,
	      "restart_syscall afterwards -> %ld errno %d after %.0f ms (want EINTR at once)",
	      ret, ret == -1 ? err : 0, dt);
	ring_fini(&r);
	return PASS;
}

/*
 * The same sleep interrupted by a handler (SA_RESTART, which nanosleep
 * ignores): ENTER -> EINTR, rem written, no CQE, the SQE still queued
 * (to_submit written back), restart_syscall -> EINTR (nothing finishes
 * outside the ring); the caller retracts the SQE.
 */
static int t_rs_clock_nanosleep_handler(void)
{
	struct sigaction sa = { .sa_handler = on_rs_sig, .sa_flags = SA_RESTART };
	struct timespec ts = { 2, 0 }, rem = { 0, 0 };
	struct xsc_enter e = { .to_submit = 1 };
	struct xsc_cqe c;
	struct ring r;
	pid_t me = getpid(), helper;
	long n, ret;
	int st, err;

	SKIPIF(!has_op(SYS_clock_nanosleep), "clock_nanosleep not offered");
	CHECK(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction");
	RS_RING(&r);
	PUSH(&r, SYS_clock_nanosleep, 1, CLOCK_MONOTONIC, 0, U(&ts), U(&rem));
	fflush(stdout);
	helper = fork();
	if (helper == 0) {
		usleep(300 * 1000);
		kill(me, SIGUSR1);
		_exit(0);
	}
	n = ioctl(r.fd, XSC_IOC_ENTER, &e);
	err = errno;
	st = child_status(helper);
	CHECK(st == 0, "helper status %d", st);
	CHECK(g_rs_sigs == 1, "%d handler runs", g_rs_sigs);
	CHECK(n == -1 && err == EINTR, "ENTER -> %ld errno %d (want -1 EINTR, nanosleep's rule)",
	      n, n < 0 ? err : 0);
	CHECK(e.to_submit == 1, "to_submit written back as %u (want 1)", e.to_submit);
	CHECK(r.hdr->sq_head == 0, "sq_head %u (want 0: the sleep stays queued)", r.hdr->sq_head);
	CHECK(!cq_pop(&r, &c), "a CQE for the interrupted sleep (res %lld)", (long long)c.res);
	CHECK(rem.tv_sec < 2 && (rem.tv_sec > 0 || rem.tv_nsec > 0), "rem %ld.%09ld",
	      (long)rem.tv_sec, rem.tv_nsec);
	ret = syscall(SYS_restart_syscall);
	err = errno;
	CHECK(ret == -1 && err == EINTR, "restart_syscall -> %ld errno %d (want EINTR)", ret,
	      ret == -1 ? err : 0);
	/* v2: the caller may retract the unconsumed SQE */
	__atomic_store_n(&r.hdr->sq_tail, r.hdr->sq_head, __ATOMIC_RELEASE);
	r.sq_tail = r.hdr->sq_head;
	CHECK((n = ring_enter(&r, 1)) == 0, "ENTER after retracting -> %ld (want 0)", n);
	ring_fini(&r);
	return PASS;
}

static int cg_write(const char *dir, const char *file, const char *val)
{
	char path[128];
	int fd, e = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fd = open(path, O_WRONLY);
	if (fd < 0)
		return -errno;
	if (write(fd, val, strlen(val)) < 0)
		e = -errno;
	close(fd);
	return e;
}

static int cg_frozen(const char *dir)
{
	char path[128], buf[256];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/cgroup.events", dir);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = 0;
	return strstr(buf, "frozen 1") != NULL;
}

/* the cgroup v2 freezer (freeze, thaw) during a blocking ring read: the read returns the data */
static int t_rs_freezer_read(void)
{
	const char *root = "/tmp/xsc-cg", *dir = "/tmp/xsc-cg/rs";
	char pidstr[16];
	int p[2], st, e, i, frozen = 0;
	pid_t pid;

	CHECK(pipe(p) == 0, "pipe");
	mkdir(root, 0755);
	CHECK(mount("none", root, "cgroup2", 0, NULL) == 0 || errno == EBUSY,
	      "mount cgroup2: %s (CONFIG_CGROUPS?)", strerror(errno));
	mkdir(dir, 0755);
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		struct xsc_enter en = { .to_submit = 1 };
		struct xsc_cqe c;
		struct ring r;
		char buf[4] = "";

		if (ring_init_flags(&r, 8, 0, XSC_SETUP_RESTART))
			_exit(10);
		PUSH(&r, SYS_read, 1, p[0], U(buf), 1);
		if (ioctl(r.fd, XSC_IOC_ENTER, &en) != 1)
			_exit(11);
		if (!cq_pop(&r, &c) || c.res != 1 || buf[0] != 'f')
			_exit(12);
		_exit(cq_pop(&r, &c) ? 13 : 0);
	}
	snprintf(pidstr, sizeof(pidstr), "%d", pid);
	usleep(300 * 1000);		/* the child is in the read */
	e = cg_write(dir, "cgroup.procs", pidstr);
	if (e == 0)
		e = cg_write(dir, "cgroup.freeze", "1");
	for (i = 0; e == 0 && i < 500 && !(frozen = cg_frozen(dir)); i++)
		usleep(10 * 1000);
	cg_write(dir, "cgroup.freeze", "0");
	usleep(300 * 1000);
	CHECK(write(p[1], "f", 1) == 1, "write");
	st = child_status(pid);
	rmdir(dir);
	umount(root);
	CHECK(e == 0, "cgroup setup: %s", strerror(-e));
	CHECK(frozen == 1, "the cgroup never reported frozen");
	CHECK(st == 0, "child status %d (10 setup, 11 ENTER not 1, 12 bad CQE, 13 two CQEs)", st);
	return PASS;
}

/* ========================================================= 17. hostile_input */
/*
 * A hostile-input group beyond the seed's `hostile` cases (issue 11): races
 * between ENTER and close/dup2, munmap/mmap/mremap/mprotect/madvise, fork,
 * vfork, execve, exit and SCM_RIGHTS; signal storms during ENTER; handlers
 * that re-enter the ring; concurrent ENTERs on one ring; and ops whose
 * buffers are the ring itself, so the kernel writes into its own SQ, CQ and
 * header.  Every SQE carries a tag and every CQE is checked against it:
 * the failure conditions are a lost or duplicated CQE, a wrong result, a
 * child that ends differently than stated, or (judged by the harness) an
 * oops/BUG/WARNING on the console or a hang (the case watchdog).  Race cases
 * name their iteration count (`_xN`).  Timing only paces the races; no
 * assertion depends on it.
 */

#define HI_PAGE 4096UL
#define HI_N(a) (int)(sizeof(a) / sizeof(a[0]))

/* the ring, mapped inside a PROT_NONE reservation: pokes past either end hit no other mapping */
static int hi_ring(struct ring *r, unsigned int sq, unsigned int cq, unsigned int flags)
{
	char *res;
	void *m;
	int e = ring_init_flags(r, sq, cq, flags);

	if (e)
		return e;
	res = mmap(NULL, r->size + 2 * HI_PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (res == MAP_FAILED)
		return -errno;
	m = mmap(res + HI_PAGE, r->size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, r->fd, 0);
	if (m == MAP_FAILED)
		return -errno;
	munmap(r->map, r->size);
	r->map = m;
	r->hdr = m;
	r->sqes = (struct xsc_sqe *)((char *)m + r->p.sqes_off);
	r->cqes = (struct xsc_cqe *)((char *)m + r->p.cqes_off);
	return 0;
}

#define HI_RING(r, sq, cq, fl) do {					\
	int __e = hi_ring((r), (sq), (cq), (fl));			\
	CHECK(__e == 0, "ring(%u,%u,flags %#x) = %d (%s)", (unsigned)(sq), \
	      (unsigned)(cq), (unsigned)(fl), __e, strerror(-__e));	\
} while (0)

/* pop one CQE and compare it field by field (the reserved fields must be 0) */
static int hi_expect(struct ring *r, uint64_t ud, unsigned int op, int64_t res)
{
	struct xsc_cqe c;

	if (!cq_pop(r, &c)) {
		diag("no CQE for ud %#llx (lost)", (unsigned long long)ud);
		return 0;
	}
	if (c.user_data != ud || c.opcode != op || c.res != res || c.__resv0 || c.flags || c.__resv1) {
		diag("CQE ud %#llx op %u res %lld resv %u/%u/%llu, want ud %#llx op %u res %lld",
		     (unsigned long long)c.user_data, c.opcode, (long long)c.res, c.__resv0, c.flags,
		     (unsigned long long)c.__resv1, (unsigned long long)ud, op, (long long)res);
		return 0;
	}
	return 1;
}

static int hi_no_more(struct ring *r)
{
	struct xsc_cqe c;

	if (cq_pop(r, &c)) {
		diag("extra CQE ud %#llx op %u res %lld (duplicated?)", (unsigned long long)c.user_data,
		     c.opcode, (long long)c.res);
		return 0;
	}
	return 1;
}

static const unsigned int hi_flag_sets[] = { 0, XSC_SETUP_RESTART };
#define HI_V(fl) ((fl) & XSC_SETUP_RESTART ? "v2" : "v1")
/* v2 rings where the kernel offers them (every kernel this repository builds does) */
static int hi_v2(void)
{
	if (g_probe.features & XSC_FEAT_RESTART)
		return 1;
	diag("XSC_FEAT_RESTART not offered: v2 parts not run");
	return 0;
}
#define HI_FLAG_SETS (hi_v2() ? HI_N(hi_flag_sets) : 1)

/*
 * An op rewrites the SQE the kernel fetches next (that SQE must run with the
 * new contents: SQEs are snapshotted when their turn comes) and another op
 * rewrites its own, already snapshotted slot (its CQE must carry the old tag).
 */
static int t_hi_self_write_sq(void)
{
	struct xsc_sqe inj = { .opcode = SYS_getpid, .user_data = 0x77 };
	struct xsc_sqe own = { .opcode = XSC_OP_NOP, .user_data = 0x99 };
	unsigned int k;

	for (k = 0; k < HI_FLAG_SETS; k++) {
		struct ring r;
		int p[2], q[2];
		long n;

		CHECK(pipe(p) == 0 && pipe(q) == 0, "pipe");
		HI_RING(&r, 8, 0, hi_flag_sets[k]);
		CHECK(write(p[1], &inj, 64) == 64 && write(q[1], &own, 64) == 64, "write");
		PUSH(&r, SYS_read, 1, p[0], U(&r.sqes[1]), 64);	/* slot 0: rewrites slot 1 */
		PUSH(&r, XSC_OP_NOP, 2);			/* slot 1: becomes getpid/0x77 */
		PUSH(&r, SYS_read, 3, q[0], U(&r.sqes[2]), 64);	/* slot 2: rewrites itself */
		PUSH(&r, XSC_OP_NOP, 4);
		CHECK((n = ring_enter(&r, 8)) == 4, "%s: ENTER -> %ld", HI_V(hi_flag_sets[k]), n);
		CHECK(hi_expect(&r, 1, SYS_read, 64) && hi_expect(&r, 0x77, SYS_getpid, getpid()) &&
		      hi_expect(&r, 3, SYS_read, 64) && hi_expect(&r, 4, XSC_OP_NOP, 0) && hi_no_more(&r),
		      "%s: CQEs", HI_V(hi_flag_sets[k]));
		CHECK(r.hdr->sq_head == 4 && r.hdr->cq_tail == 4, "%s: sq_head %u cq_tail %u",
		      HI_V(hi_flag_sets[k]), r.hdr->sq_head, r.hdr->cq_tail);
		ring_fini(&r);
		close(p[0]); close(p[1]); close(q[0]); close(q[1]);
	}
	return PASS;
}

/*
 * Ops write the header mid-batch: a cq_head out of range is refused at the
 * kernel's next read of it (the batch runs on inside the CQ room ENTER
 * already saw, never past it; the next ENTER is -EINVAL); an sq_tail out of
 * range does not extend the running batch (the tail was read once) and makes
 * the next ENTER -EINVAL; garbage in the kernel-owned sq_head/cq_tail copies
 * is overwritten by the next consume/post.
 */
static int t_hi_self_write_hdr(void)
{
	unsigned int k;

	for (k = 0; k < HI_FLAG_SETS; k++) {
		const char *v = HI_V(hi_flag_sets[k]);
		uint32_t bad = 0x40000000u, junk = 0xdead;
		struct ring r;
		int p[2];
		long n;

		CHECK(pipe(p) == 0, "pipe");
		HI_RING(&r, 8, 16, hi_flag_sets[k]);
		/* cq_head */
		CHECK(write(p[1], &bad, 4) == 4, "write");
		PUSH(&r, SYS_read, 1, p[0], U(&r.hdr->cq_head), 4);
		PUSH(&r, XSC_OP_NOP, 2);
		PUSH(&r, XSC_OP_NOP, 3);
		/*
		 * ENTER reads cq_head once and spends the room it showed (the
		 * fast path, like io_uring's cached CQ space): the running batch
		 * finishes inside that room; the next read of cq_head refuses.
		 */
		CHECK((n = ring_enter(&r, 8)) == 3, "%s: ENTER with cq_head rewritten mid-batch -> %ld", v, n);
		CHECK(r.hdr->sq_head == 3 && r.hdr->cq_tail == 3, "%s: sq_head %u cq_tail %u", v,
		      r.hdr->sq_head, r.hdr->cq_tail);
		PUSH(&r, XSC_OP_NOP, 10);
		CHECK((n = ring_enter(&r, 8)) == -EINVAL, "%s: ENTER on the tampered cq_head -> %ld", v, n);
		CHECK(r.hdr->sq_head == 3 && r.hdr->cq_tail == 3, "%s: after refusal sq_head %u cq_tail %u",
		      v, r.hdr->sq_head, r.hdr->cq_tail);
		r.hdr->cq_head = r.cq_head;
		CHECK((n = ring_enter(&r, 8)) == 1, "%s: ENTER after repair -> %ld", v, n);
		CHECK(hi_expect(&r, 1, SYS_read, 4) && hi_expect(&r, 2, XSC_OP_NOP, 0) &&
		      hi_expect(&r, 3, XSC_OP_NOP, 0) && hi_expect(&r, 10, XSC_OP_NOP, 0) &&
		      hi_no_more(&r), "%s: CQEs (cq_head)", v);
		/* sq_tail */
		bad = r.sq_tail + 3 + 0x1000;
		CHECK(write(p[1], &bad, 4) == 4, "write");
		PUSH(&r, SYS_read, 4, p[0], U(&r.hdr->sq_tail), 4);
		PUSH(&r, XSC_OP_NOP, 5);
		PUSH(&r, XSC_OP_NOP, 6);
		CHECK((n = ring_enter(&r, 8)) == 3, "%s: ENTER with sq_tail rewritten mid-batch -> %ld", v, n);
		CHECK((n = ring_enter(&r, 8)) == -EINVAL, "%s: ENTER on the tampered sq_tail -> %ld", v, n);
		CHECK(r.hdr->sq_head == 7, "%s: sq_head %u", v, r.hdr->sq_head);
		r.hdr->sq_tail = r.sq_tail;
		CHECK((n = ring_enter(&r, 8)) == 0, "%s: ENTER after repair -> %ld", v, n);
		CHECK(hi_expect(&r, 4, SYS_read, 4) && hi_expect(&r, 5, XSC_OP_NOP, 0) &&
		      hi_expect(&r, 6, XSC_OP_NOP, 0) && hi_no_more(&r), "%s: CQEs (sq_tail)", v);
		/* the kernel-owned copies */
		CHECK(write(p[1], &junk, 4) == 4 && write(p[1], &junk, 4) == 4, "write");
		PUSH(&r, SYS_read, 7, p[0], U(&r.hdr->sq_head), 4);
		PUSH(&r, SYS_read, 8, p[0], U(&r.hdr->cq_tail), 4);
		PUSH(&r, XSC_OP_NOP, 9);
		CHECK((n = ring_enter(&r, 8)) == 3, "%s: ENTER -> %ld", v, n);
		CHECK(r.hdr->sq_head == 10 && r.hdr->cq_tail == 10, "%s: header sq_head %u cq_tail %u (want 10 10)",
		      v, r.hdr->sq_head, r.hdr->cq_tail);
		CHECK(hi_expect(&r, 7, SYS_read, 4) && hi_expect(&r, 8, SYS_read, 4) &&
		      hi_expect(&r, 9, XSC_OP_NOP, 0) && hi_no_more(&r), "%s: CQEs (copies)", v);
		ring_fini(&r);
		close(p[0]);
		close(p[1]);
	}
	return PASS;
}

/*
 * Ops write into the CQ: a read into the slot its own CQE will take, a readv
 * whose iovec array sits in its own CQE slot and whose buffers are the slots
 * of the next two CQEs, a clock_gettime into its own slot.  Each CQE must be
 * complete and exact afterwards (the kernel posts after the op).
 */
static int t_hi_self_write_cq(void)
{
	unsigned int k;

	for (k = 0; k < HI_FLAG_SETS; k++) {
		const char *v = HI_V(hi_flag_sets[k]);
		unsigned char junk[96];
		struct iovec *iov;
		struct ring r;
		int p[2];
		long n;

		memset(junk, 0xee, sizeof(junk));
		CHECK(pipe(p) == 0 && write(p[1], junk, 96) == 96, "pipe");
		HI_RING(&r, 8, 16, hi_flag_sets[k]);
		iov = (struct iovec *)&r.cqes[1];
		iov[0] = (struct iovec){ &r.cqes[2], 32 };
		iov[1] = (struct iovec){ &r.cqes[3], 32 };
		PUSH(&r, SYS_read, 1, p[0], U(&r.cqes[0]), 32);
		PUSH(&r, SYS_readv, 2, p[0], U(iov), 2);
		PUSH(&r, XSC_OP_NOP, 3);
		PUSH(&r, SYS_clock_gettime, 4, CLOCK_MONOTONIC, U(&r.cqes[3]));
		CHECK((n = ring_enter(&r, 8)) == 4, "%s: ENTER -> %ld", v, n);
		CHECK(hi_expect(&r, 1, SYS_read, 32) && hi_expect(&r, 2, SYS_readv, 64) &&
		      hi_expect(&r, 3, XSC_OP_NOP, 0) && hi_expect(&r, 4, SYS_clock_gettime, 0) &&
		      hi_no_more(&r), "%s: CQEs", v);
		ring_fini(&r);
		close(p[0]);
		close(p[1]);
	}
	return PASS;
}

static void *hi_futex_waiter(void *word)
{
	struct timespec ts = { 5, 0 };

	return (void *)sysret(syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, 0, &ts));
}

/*
 * Differential: ops on the ring's own fd and ops whose buffers are the ring
 * (the header page's unused tail, a read across the header/SQ page boundary,
 * a futex word in the ring, paths stored in the ring) must give through the
 * ring exactly what the syscall gives.
 */
static int t_hi_ring_as_buffer(void)
{
	struct ring r;
	char *pad, *path;
	int p[2], bad = 0, i, mem;
	struct iovec iov;
	uint64_t hdrw;
	pthread_t th;
	void *wret;
	long n;

	CHECK(pipe(p) == 0, "pipe");
	mem = open("/proc/self/mem", O_RDWR);
	CHECK(mem >= 0, "/proc/self/mem: %s", strerror(errno));
	HI_RING(&r, 8, 0, 0);
	pad = (char *)r.map + 1024;
	path = (char *)r.map + 3072;
	iov = (struct iovec){ pad, 8 };
	hdrw = U(&r.hdr->__sq_resv[0]);
	{
		const struct { const char *what; unsigned int nr; uint64_t a[6]; } ops[] = {
			{ "read(ring fd)", SYS_read, { r.fd, U(pad), 8 } },
			{ "write(ring fd)", SYS_write, { r.fd, U(pad), 8 } },
			{ "lseek(ring fd)", SYS_lseek, { r.fd, 0, SEEK_SET } },
			{ "pread64(ring fd)", SYS_pread64, { r.fd, U(pad), 8, 0 } },
			{ "pwrite64(ring fd)", SYS_pwrite64, { r.fd, U(pad), 8, 0 } },
			{ "readv(ring fd)", SYS_readv, { r.fd, U(&iov), 1 } },
			{ "writev(ring fd)", SYS_writev, { r.fd, U(&iov), 1 } },
			{ "fsync(ring fd)", SYS_fsync, { r.fd } },
			{ "fdatasync(ring fd)", SYS_fdatasync, { r.fd } },
			{ "fstat(ring fd) into the ring", SYS_fstat, { r.fd, U(pad) } },
			{ "clock_gettime into the ring", SYS_clock_gettime, { CLOCK_MONOTONIC, U(pad) } },
			{ "write(pipe) from the whole ring", SYS_write, { p[1], U(r.map), r.size } },
			{ "read(pipe) across the header/SQ page", SYS_read, { p[0], U((char *)r.map + 4090), 12 } },
			{ "read(pipe) past the ring's end", SYS_read, { p[0], U((char *)r.map + r.size - 8), 16 } },
			{ "private futex WAIT, stale value, in the ring", SYS_futex,
			  { hdrw, FUTEX_WAIT_PRIVATE, 0x5eed, 0 } },
			{ "shared futex WAIT, stale value, in the ring", SYS_futex, { hdrw, FUTEX_WAIT, 0x5eed, 0 } },
			{ "shared futex WAKE in the ring", SYS_futex, { hdrw, FUTEX_WAKE, 1 } },
			{ "execve(path and argv in the ring)", SYS_execve, { U(path), U(r.map) + 3584, 0 } },
			{ "openat(path in the ring)", SYS_openat, { AT_FDCWD, U(path), O_RDONLY } },
			{ "pread64(/proc/self/mem) of the ring into the ring", SYS_pread64,
			  { mem, U(pad), 64, U(r.map) } },
			{ "pwrite64(/proc/self/mem) into the ring", SYS_pwrite64, { mem, U(path), 16, U(pad) } },
			{ "pwrite64(/proc/self/mem) past the ring's end", SYS_pwrite64,
			  { mem, U(path), 16, U((char *)r.map + r.size - 8) } },
		};

		strcpy(path, "/nonexistent/xsc-hostile");
		((char **)((char *)r.map + 3584))[0] = path;	/* argv = { path, NULL }, in the ring */
		for (i = 0; i < HI_N(ops); i++) {
			long direct;
			int64_t ring;
			char drain[16384];

			if (!has_op(ops[i].nr))
				continue;
			/* the pipe holds the same data for both calls */
			fcntl(p[0], F_SETFL, O_NONBLOCK);
			while (read(p[0], drain, sizeof(drain)) > 0)
				;
			fcntl(p[0], F_SETFL, 0);
			if (write(p[1], "0123456789abcdef", 16) != 16)
				return FAIL;
			direct = sysret(syscall(ops[i].nr, ops[i].a[0], ops[i].a[1], ops[i].a[2], ops[i].a[3],
						ops[i].a[4], ops[i].a[5]));
			fcntl(p[0], F_SETFL, O_NONBLOCK);
			while (read(p[0], drain, sizeof(drain)) > 0)
				;
			fcntl(p[0], F_SETFL, 0);
			if (write(p[1], "0123456789abcdef", 16) != 16)
				return FAIL;
			ring = call6(&r, ops[i].nr, ops[i].a);
			if (ops[i].nr == SYS_openat && direct >= 0 && ring >= 0) {
				close(direct);
				close(ring);
				direct = ring = 0;
			}
			if (ring != direct) {
				diag("%s: ring %lld, syscall %ld", ops[i].what, (long long)ring, direct);
				bad++;
			}
		}
		strcpy(path, "/dev/null");
		CHECK(CALL(&r, SYS_openat, AT_FDCWD, U(path), O_RDONLY) >= 0, "openat(/dev/null in the ring)");
	}
	CHECK(!bad, "%d ops differ between the ring and the syscall", bad);
	/* a private futex word in the ring: a thread waits by syscall, a ring op wakes it */
	r.hdr->__sq_resv[0] = 0;
	CHECK(pthread_create(&th, NULL, hi_futex_waiter, &r.hdr->__sq_resv[0]) == 0, "pthread_create");
	for (i = 0, n = 0; i < 500 && n == 0; i++) {
		usleep(10 * 1000);
		n = CALL(&r, SYS_futex, hdrw, FUTEX_WAKE_PRIVATE, 1);
	}
	pthread_join(th, &wret);
	CHECK(n == 1 && wret == NULL, "ring FUTEX_WAKE on a word in the ring -> %ld, the waiter got %ld", n,
	      (long)wret);
	ring_fini(&r);
	return PASS;
}

static sigjmp_buf g_hi_jb;
static volatile int g_hi_sigbus;

static void hi_on_sigbus(int sig)
{
	(void)sig;
	g_hi_sigbus++;
	siglongjmp(g_hi_jb, 1);
}

/* read a u32 that may SIGBUS; 1 and *out on success, 0 after SIGBUS */
static int hi_peek(volatile uint32_t *a, uint32_t *out)
{
	if (sigsetjmp(g_hi_jb, 1))
		return 0;
	*out = *a;
	return 1;
}

/*
 * The user's mapping is played with while the ring is in use: mprotect,
 * madvise (DONTNEED, COLD, PAGEOUT, WILLNEED, POPULATE), mlock, mremap of
 * the whole ring and of one page, partial munmap.  ENTER keeps working (the
 * kernel writes through its own mapping), the ring's contents are the same
 * through every mapping that can read them, ring ops into a protected
 * mapping fail with what the syscall gives.
 */
static int t_hi_mapping_games(void)
{
	static const int advice[] = { MADV_COLD, MADV_PAGEOUT, MADV_WILLNEED, 22 /* POPULATE_READ */,
				      23 /* POPULATE_WRITE */, MADV_NORMAL, MADV_RANDOM, MADV_SEQUENTIAL };
	struct sigaction sa = { .sa_handler = hi_on_sigbus, .sa_flags = SA_NODEFER };
	struct xsc_ring_hdr *h2;
	struct ring r;
	char *m2, *m3, *res;
	uint32_t v;
	int p[2], i, seen;
	long n, direct;
	uint64_t ud = 1;

	CHECK(sigaction(SIGBUS, &sa, NULL) == 0 && pipe(p) == 0, "setup");
	HI_RING(&r, 8, 16, 0);
	m2 = mmap(NULL, r.size, PROT_READ | PROT_WRITE, MAP_SHARED, r.fd, 0);
	CHECK(m2 != MAP_FAILED, "second mapping: %s", strerror(errno));
	h2 = (struct xsc_ring_hdr *)m2;
	/* PROT_NONE / PROT_READ on the first mapping: the kernel's posts still land */
	for (i = 0; i < 2; i++) {
		int prot = i ? PROT_READ : PROT_NONE;

		PUSH(&r, XSC_OP_NOP, ud);
		PUSH(&r, SYS_read, ud + 1, p[0], U(r.map) + 2048, 4);
		CHECK(write(p[1], "abcd", 4) == 4, "write");
		CHECK(mprotect(r.map, r.size, prot) == 0, "mprotect: %s", strerror(errno));
		direct = sysret(read(p[0], (char *)r.map + 2048, 4));
		n = ioctl(r.fd, XSC_IOC_ENTER, &(struct xsc_enter){ .to_submit = 2 });
		CHECK(mprotect(r.map, r.size, PROT_READ | PROT_WRITE) == 0, "mprotect back");
		CHECK(n == 2, "ENTER under prot %d -> %ld", prot, n);
		CHECK(hi_expect(&r, ud, XSC_OP_NOP, 0) && hi_expect(&r, ud + 1, SYS_read, direct),
		      "CQEs under prot %d (syscall gave %ld)", prot, direct);
		CHECK(read(p[0], &v, 4) == 4, "pipe lost its data");
		ud += 2;
	}
	/* madvise on the second mapping: nothing may change what either mapping shows */
	for (i = 0; i < HI_N(advice); i++) {
		int e = madvise(m2, r.size, advice[i]) ? errno : 0;

		PUSH(&r, SYS_getpid, ud);
		CHECK((n = ring_enter(&r, 1)) == 1, "ENTER after madvise(%d) (-> %s) -> %ld", advice[i],
		      strerror(e), n);
		CHECK(hi_expect(&r, ud, SYS_getpid, getpid()), "CQE after madvise(%d)", advice[i]);
		CHECK(h2->cq_tail == r.hdr->cq_tail && h2->sq_head == r.hdr->sq_head,
		      "mappings disagree after madvise(%d): %u/%u vs %u/%u", advice[i], h2->cq_tail,
		      h2->sq_head, r.hdr->cq_tail, r.hdr->sq_head);
		ud++;
	}
	CHECK(mlock(m2, r.size) == 0 || errno == EPERM || errno == ENOMEM, "mlock: %s", strerror(errno));
	munlock(m2, r.size);
	/* DONTNEED: the first mapping loses its pages; reading it is SIGBUS or the truth, never stale */
	CHECK(madvise(r.map, r.size, MADV_DONTNEED) == 0 || errno == EINVAL || errno == ENOSYS, "DONTNEED: %s",
	      strerror(errno));
	seen = hi_peek(&r.hdr->cq_tail, &v);
	CHECK(!seen || v == h2->cq_tail, "first mapping shows cq_tail %u, the ring has %u", v, h2->cq_tail);
	diag("after MADV_DONTNEED the first mapping %s", seen ? "still reads" : "raises SIGBUS");
	/* mremap the whole ring elsewhere, then one page (the CQ) elsewhere again */
	res = mmap(NULL, r.size + 2 * HI_PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(res != MAP_FAILED, "reserve");
	munmap(r.map, r.size);
	r.map = mmap(NULL, r.size, PROT_READ | PROT_WRITE, MAP_SHARED, r.fd, 0);
	CHECK(r.map != MAP_FAILED, "remap after DONTNEED: %s", strerror(errno));
	m3 = mremap(r.map, r.size, r.size, MREMAP_MAYMOVE | MREMAP_FIXED, res + HI_PAGE);
	CHECK(m3 == res + HI_PAGE, "mremap the ring: %s", strerror(errno));
	r.map = m3;
	r.hdr = (struct xsc_ring_hdr *)m3;
	r.sqes = (struct xsc_sqe *)(m3 + r.p.sqes_off);
	r.cqes = (struct xsc_cqe *)(m3 + r.p.cqes_off);
	CHECK(!memcmp(m3, m2, r.size), "moved mapping differs from the second mapping");
	PUSH(&r, XSC_OP_NOP, ud);
	CHECK((n = ring_enter(&r, 8)) == 1, "ENTER through the moved mapping -> %ld", n);
	CHECK(hi_expect(&r, ud, XSC_OP_NOP, 0), "NOP CQE through the moved mapping");
	ud++;
	{
		char *cqpage = mremap(m3 + r.p.cqes_off, HI_PAGE, HI_PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, res);
		struct xsc_cqe *cq = (struct xsc_cqe *)cqpage;
		uint32_t slot = r.cq_head & (r.p.cq_entries - 1);

		CHECK(cqpage == res, "mremap one page: %s", strerror(errno));
		PUSH(&r, SYS_getpid, ud);
		CHECK((n = ring_enter(&r, 1)) == 1, "ENTER with the CQ page moved -> %ld", n);
		CHECK(cq[slot].user_data == ud && cq[slot].res == getpid(), "CQE in the moved CQ page: ud %llu",
		      (unsigned long long)cq[slot].user_data);
		r.cq_head++;
		r.hdr->cq_head = r.cq_head;
		ud++;
	}
	/* the SQ page unmapped from this mapping: produce through m2, ENTER still works */
	CHECK(munmap(m3 + r.p.sqes_off, HI_PAGE) == 0, "partial munmap");
	{
		struct xsc_sqe *s2 = (struct xsc_sqe *)(m2 + r.p.sqes_off);

		s2[r.sq_tail & 7] = (struct xsc_sqe){ .opcode = XSC_OP_NOP, .user_data = ud };
		r.sq_tail++;
		__atomic_store_n(&r.hdr->sq_tail, r.sq_tail, __ATOMIC_RELEASE);
	}
	CHECK((n = ring_enter(&r, 1)) == 1, "ENTER with the SQ page unmapped -> %ld", n);
	{
		struct xsc_cqe *c2 = (struct xsc_cqe *)(m2 + r.p.cqes_off);

		CHECK(c2[r.cq_head & 15].user_data == ud, "CQE after the partial munmap");
	}
	return PASS;
}

/*
 * Race: one thread ENTERs batches whose ops write through a second address
 * of the ring (clock_gettime, a read from /dev/zero) while another thread
 * keeps replacing what is mapped there: the ring (MAP_FIXED), a PROT_NONE
 * reservation, read-only, MADV_DONTNEED, an mremap away and back.  Each of
 * those ops must give 0/64 or -EFAULT, every other op its exact result,
 * every tag exactly one CQE, in order.
 */
#define HI_REMAP_ITERS 300
static struct ring g_hi_rr;
static char *g_hi_z, *g_hi_z2;
static volatile int g_hi_stop;

static void *hi_remapper(void *arg)
{
	size_t sz = g_hi_rr.size;
	long i, *errs = arg;

	for (i = 0; i < HI_REMAP_ITERS; i++) {
		void *m = NULL;

		switch (i % 6) {
		case 0:
		case 3:
			m = mmap(g_hi_z, sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, g_hi_rr.fd, 0);
			break;
		case 1:
			mprotect(g_hi_z, sz, PROT_READ);
			break;
		case 2:
			madvise(g_hi_z, sz, MADV_DONTNEED);
			break;
		case 4:
			m = mremap(g_hi_z, sz, sz, MREMAP_MAYMOVE | MREMAP_FIXED, g_hi_z2);
			if (m != MAP_FAILED)
				m = mremap(g_hi_z2, sz, sz, MREMAP_MAYMOVE | MREMAP_FIXED, g_hi_z);
			if (m != MAP_FAILED)
				m = mmap(g_hi_z2, sz, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
			break;
		default:
			m = mmap(g_hi_z, sz, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
			break;
		}
		if (m == MAP_FAILED)
			(*errs)++;
		sched_yield();
	}
	g_hi_stop = 1;
	return NULL;
}

static int t_hi_remap_race_x300(void)
{
	struct ring *r = &g_hi_rr;
	pthread_t th;
	long remap_errs = 0, batches = 0, faults = 0, n;
	uint64_t ud = 0;
	char *res;
	int zfd, i;

	zfd = open("/dev/zero", O_RDONLY);
	CHECK(zfd >= 0, "/dev/zero: %s", strerror(errno));
	HI_RING(r, 8, 16, 0);
	res = mmap(NULL, 2 * r->size + 3 * HI_PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(res != MAP_FAILED, "reserve");
	g_hi_z = res + HI_PAGE;
	g_hi_z2 = res + 2 * HI_PAGE + r->size;
	g_hi_stop = 0;
	CHECK(pthread_create(&th, NULL, hi_remapper, &remap_errs) == 0, "pthread_create");
	while (!g_hi_stop) {
		struct xsc_cqe c;

		PUSH(r, XSC_OP_NOP, ud);
		PUSH(r, SYS_clock_gettime, ud + 1, CLOCK_MONOTONIC, U(g_hi_z + 2048));
		PUSH(r, SYS_getpid, ud + 2);
		PUSH(r, SYS_read, ud + 3, zfd, U(g_hi_z + 3000), 64);
		CHECK((n = ring_enter(r, 4)) == 4, "batch %ld: ENTER -> %ld", batches, n);
		for (i = 0; i < 4; i++) {
			CHECK(cq_pop(r, &c), "batch %ld: CQE %d lost", batches, i);
			CHECK(c.user_data == ud + i, "batch %ld: CQE ud %llu, want %llu", batches,
			      (unsigned long long)c.user_data, (unsigned long long)(ud + i));
			switch (i) {
			case 0: CHECK(c.res == 0, "NOP res %lld", (long long)c.res); break;
			case 1: CHECK(c.res == 0 || c.res == -EFAULT, "clock_gettime res %lld", (long long)c.res); break;
			case 2: CHECK(c.res == getpid(), "getpid res %lld", (long long)c.res); break;
			/* a mapping replaced mid-copy gives a short read, as for the syscall */
			default: CHECK((c.res > 0 && c.res <= 64) || c.res == -EFAULT, "read res %lld",
				       (long long)c.res); break;
			}
			faults += c.res == -EFAULT;
		}
		CHECK(hi_no_more(r), "batch %ld", batches);
		ud += 4;
		batches++;
	}
	pthread_join(th, NULL);
	diag("%d remaps, %ld batches, %ld ops got EFAULT, %ld remap calls failed", HI_REMAP_ITERS, batches,
	     faults, remap_errs);
	CHECK(remap_errs == 0, "%ld mmap/mremap calls on the ring failed", remap_errs);
	return PASS;
}

/*
 * Race: the ring's fd number is closed, dup2'ed over with a new ring, or with
 * /dev/null, while another thread ENTERs through that number.  Every ring is
 * pre-filled with 16 tagged NOPs; once the ENTER thread has provably left an
 * old ring, its kernel-written header must show as many CQEs as consumed
 * SQEs, tagged in order.  Half the rings lose fd and mapping while ENTER may
 * still hold them (released by ENTER's own file reference).
 */
#define HI_CLOSE_ITERS 200
#define HI_FD 200
static volatile long g_hi_gen, g_hi_total, g_hi_bad;

static void *hi_close_enterer(void *arg)
{
	(void)arg;
	while (!g_hi_stop) {
		struct xsc_enter e = { .to_submit = 2 };
		long n = ioctl(HI_FD, XSC_IOC_ENTER, &e);

		if (n < 0)
			n = -errno;
		if (n >= 0 && n <= 2)
			g_hi_total += n;
		else if (n != -EBADF && n != -ENOTTY)
			g_hi_bad = n;
		__atomic_add_fetch(&g_hi_gen, 1, __ATOMIC_SEQ_CST);
	}
	return NULL;
}

static void hi_wait_gen(long g)
{
	while (__atomic_load_n(&g_hi_gen, __ATOMIC_SEQ_CST) < g)
		sched_yield();
}

static int hi_verify_old(struct ring *o, int id, long *consumed)
{
	uint32_t h = o->hdr->sq_head, t = o->hdr->cq_tail, j;

	if (h != t || h > 16) {
		diag("ring %d: sq_head %u but cq_tail %u", id, h, t);
		return 0;
	}
	for (j = 0; j < t; j++) {
		struct xsc_cqe *c = &o->cqes[j & (o->p.cq_entries - 1)];

		if (c->user_data != ((uint64_t)id << 8 | j) || c->res != 0 || c->opcode != XSC_OP_NOP) {
			diag("ring %d: CQE %u has ud %#llx res %lld", id, j, (unsigned long long)c->user_data,
			     (long long)c->res);
			return 0;
		}
	}
	*consumed += h;
	return 1;
}

static int t_hi_close_vs_enter_x200(void)
{
	struct ring prev = { .fd = -1 }, cur;
	long verified = 0, unverified = 0, g;
	int i, j, prev_mapped = 0, devnull;
	pthread_t th;

	devnull = open("/dev/null", O_RDWR);
	CHECK(devnull >= 0, "/dev/null");
	g_hi_stop = 0;
	g_hi_gen = g_hi_total = g_hi_bad = 0;
	CHECK(pthread_create(&th, NULL, hi_close_enterer, NULL) == 0, "pthread_create");
	for (i = 0; i < HI_CLOSE_ITERS; i++) {
		CHECK(ring_init(&cur, 16, 16) == 0, "ring %d", i);
		for (j = 0; j < 16; j++)
			PUSH(&cur, XSC_OP_NOP, (uint64_t)i << 8 | j);
		g = __atomic_load_n(&g_hi_gen, __ATOMIC_SEQ_CST);
		if (i % 5 == 4) {		/* a gap: the number is closed or not a ring */
			if (i % 10 == 4)
				close(HI_FD);
			else
				dup2(devnull, HI_FD);
			hi_wait_gen(g + 2);
			g = __atomic_load_n(&g_hi_gen, __ATOMIC_SEQ_CST);
		}
		if (i % 2) {			/* only the fd (and ENTER) keep this one */
			munmap(cur.map, cur.size);
			cur.map = NULL;
		}
		CHECK(dup2(cur.fd, HI_FD) == HI_FD, "dup2: %s", strerror(errno));
		close(cur.fd);
		cur.fd = -1;
		hi_wait_gen(g + 2);		/* the ENTER thread has left the old ring */
		if (prev_mapped) {
			CHECK(hi_verify_old(&prev, i - 1, &verified), "ring %d", i - 1);
			ring_fini(&prev);
		} else if (i) {
			unverified++;
		}
		prev = cur;
		prev_mapped = cur.map != NULL;
	}
	g = __atomic_load_n(&g_hi_gen, __ATOMIC_SEQ_CST);
	close(HI_FD);
	hi_wait_gen(g + 2);
	g_hi_stop = 1;
	pthread_join(th, NULL);
	if (prev_mapped)
		CHECK(hi_verify_old(&prev, i - 1, &verified), "ring %d", i - 1);
	else
		unverified++;
	diag("%ld ops consumed by the ENTER thread; %ld on the %d verified rings", g_hi_total, verified,
	     HI_CLOSE_ITERS - (int)unverified);
	CHECK(!g_hi_bad, "ENTER returned %ld", g_hi_bad);
	CHECK(g_hi_total >= verified && g_hi_total <= verified + 16 * unverified,
	      "the ENTER thread counted %ld ops, the verified rings hold %ld CQEs", g_hi_total, verified);
	return PASS;
}

/*
 * Race: fork children while a thread ENTERs; the ring is also mapped a second
 * time with MADV_DOFORK.  Each child: ENTER and mmap on the inherited fd are
 * -EPERM, SETUP is -EBUSY, the VM_DONTCOPY mapping is absent and the DOFORK
 * one raises SIGBUS.  The parent's ring stays exact.
 */
#define HI_FORK_ITERS 40
static struct ring g_hi_fr;

static void *hi_nop_getpid_loop(void *arg)
{
	struct ring *r = arg;
	uint64_t ud = 0;
	struct xsc_cqe c;

	while (!g_hi_stop) {
		PUSH(r, XSC_OP_NOP, ud);
		PUSH(r, SYS_getpid, ud + 1);
		if (ring_enter(r, 2) != 2)
			g_hi_bad = 1;
		if (!cq_pop(r, &c) || c.user_data != ud || c.res != 0)
			g_hi_bad = 2;
		if (!cq_pop(r, &c) || c.user_data != ud + 1 || c.res != getpid())
			g_hi_bad = 3;
		if (cq_pop(r, &c))
			g_hi_bad = 4;
		ud += 2;
		g_hi_total += 2;
	}
	return NULL;
}

static int t_hi_fork_vs_enter_x40(void)
{
	struct sigaction sa = { .sa_handler = hi_on_sigbus, .sa_flags = SA_NODEFER };
	struct ring r2;
	pthread_t th;
	char *dofork;
	int i, st;

	CHECK(sigaction(SIGBUS, &sa, NULL) == 0, "sigaction");
	HI_RING(&g_hi_fr, 8, 16, 0);
	HI_RING(&r2, 8, 16, 0);
	dofork = mmap(NULL, r2.size, PROT_READ | PROT_WRITE, MAP_SHARED, r2.fd, 0);
	CHECK(dofork != MAP_FAILED, "second mapping");
	/* without CONFIG_ADVISE_SYSCALLS the mapping simply stays DONTCOPY (the child checks that too) */
	CHECK(madvise(dofork, r2.size, MADV_DOFORK) == 0 || errno == ENOSYS, "MADV_DOFORK: %s", strerror(errno));
	g_hi_stop = 0;
	g_hi_bad = g_hi_total = 0;
	CHECK(pthread_create(&th, NULL, hi_nop_getpid_loop, &g_hi_fr) == 0, "pthread_create");
	for (i = 0; i < HI_FORK_ITERS; i++) {
		pid_t pid;

		fflush(stdout);
		pid = fork();
		if (pid == 0) {
			struct xsc_setup p = { .sq_entries = 8 };
			struct xsc_enter e = { .to_submit = 1 };
			unsigned char vec[1];
			uint32_t v;

			if (ioctl(g_hi_fr.fd, XSC_IOC_ENTER, &e) != -1 || errno != EPERM)
				_exit(10);
			if (mmap(NULL, g_hi_fr.size, PROT_READ, MAP_SHARED, g_hi_fr.fd, 0) != MAP_FAILED ||
			    errno != EPERM)
				_exit(11);
			if (ioctl(r2.fd, XSC_IOC_SETUP, &p) != -1 || errno != EBUSY)
				_exit(12);
			if (mincore(g_hi_fr.map, HI_PAGE, vec) == 0)
				_exit(13);		/* the DONTCOPY mapping was inherited */
			if (mincore(dofork, HI_PAGE, vec) == 0 &&
			    hi_peek(&((struct xsc_ring_hdr *)dofork)->sq_entries, &v))
				_exit(14);		/* the DOFORK copy has pages */
			_exit(0);
		}
		st = child_status(pid);
		CHECK(st == 0, "fork %d: child status %d (10 ENTER, 11 mmap, 12 SETUP, 13 mapping inherited, "
		      "14 DOFORK copy readable)", i, st);
	}
	g_hi_stop = 1;
	pthread_join(th, NULL);
	diag("%ld ring ops ran during %d forks", g_hi_total, HI_FORK_ITERS);
	CHECK(!g_hi_bad, "the ENTER thread saw a bad ENTER/CQE (%ld)", g_hi_bad);
	CHECK(ring_enter(&r2, 1) == 0, "DOFORK ring broken");
	return PASS;
}

/*
 * vfork children share the parent's mm, so they may use its ring: the child
 * ENTERs [getpid, execve(self --exec-probe)] or [getpid, exit_group(40+k)]
 * on a ring the parent set up, while a parent thread keeps ENTERing another
 * ring.  The getpid CQE must carry the child's pid, the execve/exit_group
 * none, the child must exit 77 / 40+k.
 */
#define HI_VFORK_ITERS 30
static int t_hi_vfork_enter_x30(void)
{
	char *argv[] = { g_self, "--exec-probe", NULL };
	struct ring r1, r2;
	pthread_t th;
	int i, st;

	HI_RING(&r1, 8, 16, 0);
	HI_RING(&r2, 8, 16, 0);
	g_hi_stop = 0;
	g_hi_bad = g_hi_total = 0;
	CHECK(pthread_create(&th, NULL, hi_nop_getpid_loop, &r1) == 0, "pthread_create");
	for (i = 0; i < HI_VFORK_ITERS; i++) {
		int want = i % 2 ? 77 : 40 + i % 8;
		pid_t pid;

		PUSH(&r2, SYS_getpid, 2 * i);
		if (i % 2)
			PUSH(&r2, SYS_execve, 2 * i + 1, U(g_self), U(argv), 0);
		else
			PUSH(&r2, SYS_exit_group, 2 * i + 1, want);
		fflush(stdout);
		pid = vfork();
		if (pid == 0) {
			struct xsc_enter e = { .to_submit = 2 };

			ioctl(r2.fd, XSC_IOC_ENTER, &e);
			_exit(99);
		}
		CHECK(pid > 0, "vfork: %s", strerror(errno));
		st = child_status(pid);
		CHECK(st == want, "vfork %d: child status %d, want %d", i, st, want);
		CHECK(r2.hdr->sq_head == r2.sq_tail, "vfork %d: sq_head %u tail %u", i, r2.hdr->sq_head, r2.sq_tail);
		CHECK(hi_expect(&r2, 2 * i, SYS_getpid, pid) && hi_no_more(&r2), "vfork %d: CQEs", i);
	}
	g_hi_stop = 1;
	pthread_join(th, NULL);
	diag("%ld ring ops ran in a parent thread during %d vforks", g_hi_total, HI_VFORK_ITERS);
	CHECK(!g_hi_bad, "the ENTER thread saw a bad ENTER/CQE (%ld)", g_hi_bad);
	return PASS;
}

static int hi_send_fd(int sock, int fd)
{
	char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { "f", 1 };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			    .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);

	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	return sendmsg(sock, &m, 0) == 1 ? 0 : -1;
}

static int hi_recv_fd(int sock)
{
	char cbuf[CMSG_SPACE(sizeof(int))], b;
	struct iovec iov = { &b, 1 };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			    .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c;
	int fd;

	if (recvmsg(sock, &m, 0) != 1)
		return -1;
	c = CMSG_FIRSTHDR(&m);
	if (!c || c->cmsg_type != SCM_RIGHTS)
		return -1;
	memcpy(&fd, CMSG_DATA(c), sizeof(int));
	return fd;
}

static long hi_vmpin_kb(void)
{
	char line[128];
	long v = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "VmPin:", 6))
			v = strtol(line + 6, NULL, 10);
	fclose(f);
	return v;
}

/* VmPin may lag a deferred fput by a return to user mode: poll it, 2 s at most */
static long hi_vmpin_settle(long want)
{
	long v = -1;
	int i;

	for (i = 0; i < 200 && (v = hi_vmpin_kb()) != want; i++)
		usleep(10 * 1000);
	return v;
}

/*
 * SCM_RIGHTS: the ring fd in another process (ENTER/mmap -EPERM, SETUP
 * -EBUSY, fdinfo readable), passed back and used; the last reference dropped
 * in the other process, and in a unix-socket garbage cycle: the SETUP mm's
 * VmPin must be charged exactly as long as the ring lives.  An fd passed
 * before SETUP belongs to whoever sets it up.
 */
static int t_hi_scm_rights(void)
{
	struct xsc_setup ps = { .sq_entries = 8 };
	struct ring r;
	long base, v, n;
	int sv[2], fd2, st, raw;
	unsigned long long sqe;
	char b;
	pid_t pid;

	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
	base = hi_vmpin_kb();
	CHECK(base >= 0, "no VmPin in /proc/self/status");
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		struct xsc_setup p = { .sq_entries = 8 };
		struct xsc_enter e = { .to_submit = 1 };
		unsigned long long q;
		int fd = hi_recv_fd(sv[1]);

		if (fd < 0)
			_exit(10);
		if (ioctl(fd, XSC_IOC_ENTER, &e) != -1 || errno != EPERM)
			_exit(11);
		if (mmap(NULL, 3 * HI_PAGE, PROT_READ, MAP_SHARED, fd, 0) != MAP_FAILED || errno != EPERM)
			_exit(12);
		if (ioctl(fd, XSC_IOC_SETUP, &p) != -1 || errno != EBUSY)
			_exit(13);
		if (fdinfo_get(fd, "xsc-sq-entries", &q) || q != 8)
			_exit(14);
		if (hi_send_fd(sv[1], fd))
			_exit(15);
		if (read(sv[1], &b, 1) != 1)	/* the parent dropped all its references */
			_exit(16);
		close(fd);
		if (write(sv[1], "c", 1) != 1)
			_exit(17);
		/* an fd passed before SETUP: this process sets it up */
		fd = hi_recv_fd(sv[1]);
		if (fd < 0 || ioctl(fd, XSC_IOC_SETUP, &p))
			_exit(18);
		if (write(sv[1], "s", 1) != 1 || read(sv[1], &b, 1) != 1)
			_exit(19);
		_exit(0);
	}
	HI_RING(&r, 8, 16, 0);
	CHECK((v = hi_vmpin_kb()) == base + (long)(r.size / 1024), "VmPin %ld kB after SETUP, want %ld", v,
	      base + (long)(r.size / 1024));
	CHECK(hi_send_fd(sv[0], r.fd) == 0, "send");
	fd2 = hi_recv_fd(sv[0]);
	CHECK(fd2 >= 0 && fd2 != r.fd, "the ring fd did not come back (child status %d)",
	      fd2 < 0 ? child_status(pid) : 0);
	PUSH(&r, SYS_getpid, 5);
	CHECK((n = ioctl(fd2, XSC_IOC_ENTER, &(struct xsc_enter){ .to_submit = 1 })) == 1,
	      "ENTER through the returned fd -> %ld", n < 0 ? -(long)errno : n);
	CHECK(hi_expect(&r, 5, SYS_getpid, getpid()), "CQE");
	close(fd2);
	ring_fini(&r);
	CHECK((v = hi_vmpin_kb()) == base + (long)(r.size / 1024),
	      "VmPin %ld kB while the other process still holds the ring, want %ld", v,
	      base + (long)(r.size / 1024));
	CHECK(write(sv[0], "x", 1) == 1 && read(sv[0], &b, 1) == 1, "the child closed (status %d)",
	      child_status(pid));
	CHECK((v = hi_vmpin_settle(base)) == base, "VmPin %ld kB after the other process closed, want %ld",
	      v, base);
	/* not set up yet: the receiver's SETUP makes it the receiver's ring */
	raw = open(XSC_DEV, O_RDWR | O_CLOEXEC);
	CHECK(raw >= 0 && hi_send_fd(sv[0], raw) == 0, "send raw");
	CHECK(read(sv[0], &b, 1) == 1 && b == 's', "child SETUP (status %d)", child_status(pid));
	CHECK(ioctl(raw, XSC_IOC_SETUP, &ps) == -1 && errno == EBUSY, "SETUP after the child's: %s",
	      strerror(errno));
	CHECK(ioctl(raw, XSC_IOC_ENTER, &(struct xsc_enter){ .to_submit = 1 }) == -1 && errno == EPERM,
	      "ENTER on the child's ring: %s", strerror(errno));
	CHECK(mmap(NULL, 3 * HI_PAGE, PROT_READ, MAP_SHARED, raw, 0) == MAP_FAILED && errno == EPERM,
	      "mmap of the child's ring: %s", strerror(errno));
	CHECK(fdinfo_get(raw, "xsc-sq-entries", &sqe) == 0 && sqe == 8, "fdinfo");
	CHECK(write(sv[0], "e", 1) == 1, "write");
	st = child_status(pid);
	CHECK(st == 0, "child status %d (10 recv, 11 ENTER, 12 mmap, 13 SETUP, 14 fdinfo, 15 send, 16-19 "
	      "protocol)", st);
	close(raw);			/* the last reference, its mm is gone */
	/* a garbage cycle: the ring and a socket in flight to that socket */
	{
		int s[2];

		CHECK(socketpair(AF_UNIX, SOCK_DGRAM, 0, s) == 0, "socketpair");
		HI_RING(&r, 8, 16, 0);
		CHECK(hi_send_fd(s[0], r.fd) == 0 && hi_send_fd(s[0], s[1]) == 0, "send into the cycle");
		ring_fini(&r);
		close(s[0]);
		close(s[1]);
		close(socket(AF_UNIX, SOCK_DGRAM, 0));	/* a unix release runs the collector */
		CHECK((v = hi_vmpin_settle(base)) == base, "VmPin %ld kB after the cycle was collected, want %ld",
		      v, base);
	}
	return PASS;
}

/*
 * A signal storm (SIGUSR1 and a queued real-time signal, in bursts) at a
 * thread that ENTERs batches of [write tag, blocking read of a sequenced
 * record, NOP] while a writer feeds the records slowly, so reads block and
 * get interrupted.  Variants: v1 (handler without SA_RESTART), v2 with an
 * SA_RESTART handler, v2 without.  Every tag gets exactly one CQE; each
 * ENTER's count equals the CQEs it posted (v2: to_submit written back says
 * the same); the records read are 0..N-1 in order (no read ran twice or
 * lost data); the write pipe holds exactly the tags whose write succeeded;
 * an interrupted read is a v1 -EINTR CQE only (v2 leaves it queued).
 */
#define HI_STORM_READS 1000
#define HI_STORM_MAXTAG (16 * HI_STORM_READS)
static volatile long g_hi_sigs;
static volatile pid_t g_hi_tid;

static void hi_on_storm(int sig)
{
	(void)sig;
	g_hi_sigs++;
}

static void *hi_stormer(void *arg)
{
	pid_t pid = getpid();

	(void)arg;
	while (!g_hi_stop) {
		syscall(SYS_tgkill, pid, g_hi_tid, SIGUSR1);
		syscall(SYS_tgkill, pid, g_hi_tid, SIGRTMIN);
		usleep(100);
	}
	return NULL;
}

static int g_hi_recw;

static void *hi_record_writer(void *arg)
{
	uint32_t i;

	(void)arg;
	for (i = 0; i < HI_STORM_READS; i++) {
		if (write(g_hi_recw, &i, 4) != 4)
			return (void *)1;
		if (i % 4 == 0)
			usleep(50);
	}
	return NULL;
}

static int hi_storm_one(unsigned int flags, int sa_flags)
{
	static unsigned char ncqe[HI_STORM_MAXTAG];
	static uint32_t rec[HI_STORM_MAXTAG], wtag[HI_STORM_MAXTAG];
	static char kind[HI_STORM_MAXTAG];
	struct sigaction sa = { .sa_handler = hi_on_storm, .sa_flags = sa_flags };
	const char *v = flags ? (sa_flags ? "v2+SA_RESTART" : "v2") : "v1";
	long enters = 0, eintr = 0, read_eintr = 0, pending_reads = 0;
	uint32_t tag = 0, next_rec = 0, t, got;
	int pp[2], pq[2], reads_ok = 0, nw = 0;
	pthread_t ts, tw;
	struct ring r;
	void *wret;

	memset(ncqe, 0, sizeof(ncqe));
	CHECK(sigaction(SIGUSR1, &sa, NULL) == 0 && sigaction(SIGRTMIN, &sa, NULL) == 0, "sigaction");
	CHECK(pipe(pp) == 0 && pipe(pq) == 0, "pipe");
	HI_RING(&r, 8, 16, flags);
	g_hi_recw = pp[1];
	g_hi_tid = syscall(SYS_gettid);
	g_hi_stop = 0;
	g_hi_sigs = 0;
	CHECK(pthread_create(&tw, NULL, hi_record_writer, NULL) == 0, "pthread_create");
	CHECK(pthread_create(&ts, NULL, hi_stormer, NULL) == 0, "pthread_create");
	while (reads_ok < HI_STORM_READS) {
		struct xsc_enter e;
		struct xsc_cqe c;
		uint32_t queued = r.sq_tail - r.hdr->sq_head, posted = 0;
		long n;

		/* top the SQ up to 6: write, read (only as many as records remain), NOP */
		while (queued < 6 && tag < HI_STORM_MAXTAG) {
			int k = tag % 3;

			if (k == 1 && reads_ok + pending_reads >= HI_STORM_READS)
				k = 2;
			kind[tag] = k;
			wtag[tag] = tag;
			if (k == 0)
				PUSH(&r, SYS_write, tag, pq[1], U(&wtag[tag]), 4);
			else if (k == 1)
				PUSH(&r, SYS_read, tag, pp[0], U(&rec[tag]), 4);
			else
				PUSH(&r, XSC_OP_NOP, tag);
			pending_reads += k == 1;
			tag++;
			queued++;
		}
		CHECK(tag < HI_STORM_MAXTAG, "%s: ran out of tags", v);
		e = (struct xsc_enter){ .to_submit = 6 };
		n = ioctl(r.fd, XSC_IOC_ENTER, &e);
		if (n < 0)
			n = -errno;
		enters++;
		while (cq_pop(&r, &c)) {
			posted++;
			t = c.user_data;
			CHECK(t < tag && ++ncqe[t] == 1, "%s: CQE for tag %u (count %d)", v, t, t < tag ? ncqe[t] : -1);
			CHECK(c.opcode == (kind[t] == 0 ? SYS_write : kind[t] == 1 ? SYS_read : XSC_OP_NOP),
			      "%s: tag %u opcode %u", v, t, c.opcode);
			if (kind[t] == 1) {
				pending_reads--;
				if (c.res == -EINTR && !flags) {
					read_eintr++;
					continue;
				}
				CHECK(c.res == 4, "%s: read tag %u res %lld", v, t, (long long)c.res);
				CHECK(rec[t] == next_rec, "%s: read tag %u got record %u, want %u", v, t, rec[t],
				      next_rec);
				next_rec++;
				reads_ok++;
			} else if (kind[t] == 0) {
				CHECK(c.res == 4 || (!flags && c.res == -EINTR), "%s: write tag %u res %lld", v, t,
				      (long long)c.res);
				nw += c.res == 4;
				if (c.res != 4)
					wtag[t] = ~0u;
			} else {
				CHECK(c.res == 0, "%s: NOP res %lld", v, (long long)c.res);
			}
		}
		/*
		 * v2 writes to_submit - done back at each interruption and a
		 * restarted ENTER returns only its own count: either way the
		 * CQEs posted are (6 - to_submit) + the count returned.
		 */
		CHECK(n >= 0 || n == -EINTR, "%s: ENTER -> %ld", v, n);
		CHECK(n != -EINTR || !(flags && sa_flags), "%s: ENTER -EINTR under SA_RESTART", v);
		CHECK(flags || e.to_submit == 6, "%s: v1 ENTER rewrote to_submit (%u)", v, e.to_submit);
		CHECK(posted == 6 - e.to_submit + (n > 0 ? n : 0),
		      "%s: ENTER -> %ld with to_submit written back %u, but %u CQEs posted", v, n, e.to_submit,
		      posted);
		CHECK(r.hdr->sq_head == r.sq_tail - (queued - posted), "%s: sq_head %u, tail %u, %u queued, "
		      "%u posted", v, r.hdr->sq_head, r.sq_tail, queued, posted);
		eintr += n == -EINTR;
	}
	g_hi_stop = 1;
	pthread_join(ts, NULL);
	pthread_join(tw, &wret);
	CHECK(wret == NULL, "record writer failed");
	/* the writes that succeeded are in the pipe, once each, in tag order */
	fcntl(pq[0], F_SETFL, O_NONBLOCK);
	for (t = 0; t < tag; t++) {
		if (kind[t] != 0 || !ncqe[t] || wtag[t] == ~0u)
			continue;
		CHECK(read(pq[0], &got, 4) == 4 && got == t, "%s: write pipe holds %u, want tag %u", v, got, t);
	}
	CHECK(read(pq[0], &got, 4) == -1, "%s: write pipe holds an extra tag %u (an op ran twice)", v, got);
	diag("%s: %ld signals, %ld ENTERs (%ld -EINTR), %ld reads -EINTR, %u tags, %d writes", v, g_hi_sigs,
	     enters, eintr, read_eintr, tag, nw);
	CHECK(g_hi_sigs > 0, "%s: no signal arrived", v);
	signal(SIGUSR1, SIG_IGN);
	signal(SIGRTMIN, SIG_IGN);
	ring_fini(&r);
	close(pp[0]); close(pp[1]); close(pq[0]); close(pq[1]);
	return PASS;
}

static int t_hi_signal_storm_3x1000(void)
{
	if (hi_storm_one(0, 0) != PASS)
		return FAIL;
	if (!hi_v2())
		return PASS;
	if (hi_storm_one(XSC_SETUP_RESTART, SA_RESTART) != PASS)
		return FAIL;
	return hi_storm_one(XSC_SETUP_RESTART, 0);
}

/*
 * A signal handler ENTERs the ring its thread was blocked in: main ENTERs
 * [read(empty pipe), NOP, NOP]; the handler writes the byte and ENTERs one.
 * Every tag exactly one CQE, the read run once: v2 (SA_RESTART) -- the
 * handler's ENTER completes the queued read, the restarted ENTER the NOPs
 * (returns 2); v1 -- the read is an -EINTR CQE and the byte stays in the pipe,
 * the handler's ENTER runs the first NOP, main's returns 1.
 */
static struct ring g_hi_hr;
static int g_hi_hpipe;
static volatile long g_hi_hret = 12345;

static void hi_on_reenter(int sig)
{
	int saved = errno;
	struct xsc_enter e = { .to_submit = 1 };

	(void)sig;
	if (write(g_hi_hpipe, "h", 1) == 1)
		g_hi_hret = ioctl(g_hi_hr.fd, XSC_IOC_ENTER, &e) < 0 ? -errno : 1;
	errno = saved;
}

static void *hi_kick(void *arg)
{
	usleep(300 * 1000);
	pthread_kill(*(pthread_t *)arg, SIGUSR1);
	return NULL;
}

static int t_hi_handler_reenters(void)
{
	struct sigaction sa = { .sa_handler = hi_on_reenter, .sa_flags = SA_RESTART };
	unsigned int k;

	CHECK(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction");
	for (k = 0; k < HI_FLAG_SETS; k++) {
		const char *v = HI_V(hi_flag_sets[k]);
		pthread_t self = pthread_self(), th;
		char buf[2] = "", left;
		int p[2], v2 = hi_flag_sets[k] != 0;
		long n, m;

		CHECK(pipe(p) == 0, "pipe");
		HI_RING(&g_hi_hr, 8, 16, hi_flag_sets[k]);
		g_hi_hpipe = p[1];
		g_hi_hret = 12345;
		PUSH(&g_hi_hr, SYS_read, 1, p[0], U(buf), 1);
		PUSH(&g_hi_hr, XSC_OP_NOP, 2);
		PUSH(&g_hi_hr, XSC_OP_NOP, 3);
		CHECK(pthread_create(&th, NULL, hi_kick, &self) == 0, "pthread_create");
		n = ring_enter(&g_hi_hr, 3);
		pthread_join(th, NULL);
		m = g_hi_hr.hdr->sq_head == g_hi_hr.sq_tail ? 0 : ring_enter(&g_hi_hr, 8);
		diag("%s: main ENTER %ld, handler ENTER %ld, then %ld", v, n, g_hi_hret, m);
		CHECK(g_hi_hret == 1, "%s: handler ENTER -> %ld", v, g_hi_hret);
		CHECK(n >= 0 && m >= 0 && n + g_hi_hret + m == 3, "%s: ENTERs consumed %ld+%ld+%ld, want 3", v, n,
		      g_hi_hret, m);
		if (v2) {
			CHECK(n == 2 && hi_expect(&g_hi_hr, 1, SYS_read, 1) && buf[0] == 'h',
			      "%s: the handler's ENTER should complete the queued read (buf '%c')", v, buf[0]);
		} else {
			CHECK(n == 1 && hi_expect(&g_hi_hr, 1, SYS_read, -EINTR), "%s: read CQE", v);
			fcntl(p[0], F_SETFL, O_NONBLOCK);
			CHECK(read(p[0], &left, 1) == 1 && left == 'h', "%s: the interrupted read consumed data", v);
		}
		CHECK(hi_expect(&g_hi_hr, 2, XSC_OP_NOP, 0) && hi_expect(&g_hi_hr, 3, XSC_OP_NOP, 0) &&
		      hi_no_more(&g_hi_hr), "%s: NOP CQEs", v);
		ring_fini(&g_hi_hr);
		close(p[0]);
		close(p[1]);
	}
	return PASS;
}

/*
 * Concurrent ENTERs on one ring: a producer thread fills the SQ, two threads
 * ENTER in a loop, a reaper thread drains the CQ, no user-side lock between
 * them.  The CQEs must come out in SQE order, each exactly once, with the
 * op's result (a stale SQE or a CQE published before it was written would
 * show as a wrong tag or result); fdinfo must agree at the end.
 */
#define HI_MPMC_OPS 20000
static struct ring g_hi_mr;
static volatile long g_hi_reaped, g_hi_mbad, g_hi_menter;

static void *hi_mpmc_producer(void *arg)
{
	struct ring *r = &g_hi_mr;
	uint32_t seq;

	(void)arg;
	for (seq = 0; seq < HI_MPMC_OPS && !g_hi_mbad; seq++) {
		struct xsc_sqe *s;

		while (r->sq_tail - __atomic_load_n(&r->hdr->sq_head, __ATOMIC_ACQUIRE) >= r->p.sq_entries)
			sched_yield();
		s = &r->sqes[r->sq_tail & (r->p.sq_entries - 1)];
		memset(s, 0, sizeof(*s));
		s->opcode = seq % 4 == 3 ? SYS_getpid : XSC_OP_NOP;
		s->user_data = seq;
		r->sq_tail++;
		__atomic_store_n(&r->hdr->sq_tail, r->sq_tail, __ATOMIC_RELEASE);
	}
	return NULL;
}

static void *hi_mpmc_enterer(void *arg)
{
	(void)arg;
	while (g_hi_reaped < HI_MPMC_OPS && !g_hi_mbad) {
		struct xsc_enter e = { .to_submit = 8 };
		long n = ioctl(g_hi_mr.fd, XSC_IOC_ENTER, &e);

		if (n < 0)
			n = -errno;
		if (n > 8 || (n < 0 && n != -EBUSY)) {
			g_hi_menter = n;
			g_hi_mbad = -1;
		}
		if (n <= 0)
			sched_yield();
	}
	return NULL;
}

static void *hi_mpmc_reaper(void *arg)
{
	struct ring *r = &g_hi_mr;
	pid_t pid = getpid();

	(void)arg;
	while (g_hi_reaped < HI_MPMC_OPS && !g_hi_mbad) {
		struct xsc_cqe c;
		uint32_t want = g_hi_reaped;

		if (!cq_pop(r, &c)) {
			sched_yield();
			continue;
		}
		if (c.user_data != want || c.opcode != (want % 4 == 3 ? SYS_getpid : XSC_OP_NOP) ||
		    c.res != (want % 4 == 3 ? pid : 0))
			g_hi_mbad = 1 + want;
		g_hi_reaped++;
	}
	return NULL;
}

static int t_hi_shared_ring_mpmc_x20000(void)
{
	unsigned long long sub = 0, comp = 0, err = 0;
	pthread_t tp, te1, te2, tr;

	HI_RING(&g_hi_mr, 16, 32, 0);
	g_hi_reaped = g_hi_mbad = g_hi_menter = 0;
	CHECK(pthread_create(&tp, NULL, hi_mpmc_producer, NULL) == 0 &&
	      pthread_create(&te1, NULL, hi_mpmc_enterer, NULL) == 0 &&
	      pthread_create(&te2, NULL, hi_mpmc_enterer, NULL) == 0 &&
	      pthread_create(&tr, NULL, hi_mpmc_reaper, NULL) == 0, "pthread_create");
	pthread_join(tp, NULL);
	pthread_join(tr, NULL);
	pthread_join(te1, NULL);
	pthread_join(te2, NULL);
	CHECK(!g_hi_menter, "ENTER -> %ld", g_hi_menter);
	CHECK(!g_hi_mbad, "CQE %ld out of order, duplicated or wrong", g_hi_mbad - 1);
	CHECK(g_hi_reaped == HI_MPMC_OPS, "reaped %ld", g_hi_reaped);
	CHECK(fdinfo_get(g_hi_mr.fd, "xsc-submitted", &sub) == 0 &&
	      fdinfo_get(g_hi_mr.fd, "xsc-completed", &comp) == 0 && fdinfo_get(g_hi_mr.fd, "xsc-errors", &err) == 0,
	      "fdinfo");
	CHECK(sub == HI_MPMC_OPS && comp == HI_MPMC_OPS && err == 0, "fdinfo submitted %llu completed %llu "
	      "errors %llu", sub, comp, err);
	return PASS;
}

/*
 * Hostile ioctl arguments.  SETUP whose struct sits in a read-only page: the
 * copy-out fails after the ring was allocated and charged, so SETUP must fail
 * with nothing left behind (VmPin back, not set up, a later SETUP works).
 * v2 ENTER of [NOP, blocking read, NOP] with to_submit 2, interrupted in the
 * read by an SA_RESTART handler: (a) the struct in a read-only page, so
 * to_submit cannot be written back; (b) the struct inside the ring itself,
 * so the kernel's write-back lands in its own ring.  Either way the call
 * chain may consume at most 2 SQEs (the third NOP stays queued), the read
 * runs once, every tag gets exactly one CQE.
 */
static void *hi_kick_later(void *arg)
{
	usleep(300 * 1000);
	pthread_kill(*(pthread_t *)arg, SIGUSR1);
	usleep(300 * 1000);
	if (write(g_hi_hpipe, "w", 1) != 1)
		return (void *)1;
	return NULL;
}

static int t_hi_ioctl_args(void)
{
	struct sigaction sa = { .sa_handler = hi_on_storm, .sa_flags = SA_RESTART };
	struct xsc_setup *ro;
	long base, v, n;
	unsigned long long q;
	int fd, k;

	base = hi_vmpin_kb();
	CHECK(base >= 0, "no VmPin");
	ro = mmap(NULL, HI_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(ro != MAP_FAILED, "mmap");
	*ro = (struct xsc_setup){ .sq_entries = 64 };
	CHECK(mprotect(ro, HI_PAGE, PROT_READ) == 0, "mprotect");
	fd = open(XSC_DEV, O_RDWR | O_CLOEXEC);
	CHECK(fd >= 0, "open");
	CHECK(ioctl(fd, XSC_IOC_SETUP, ro) == -1 && errno == EFAULT, "SETUP with a read-only struct: %s",
	      strerror(errno));
	CHECK((v = hi_vmpin_kb()) == base, "VmPin %ld kB after the failed SETUP, want %ld", v, base);
	CHECK(fdinfo_get(fd, "xsc-sq-entries", &q) == 0 && q == 0, "failed SETUP left a ring (%llu)", q);
	CHECK(ioctl(fd, XSC_IOC_ENTER, &(struct xsc_enter){ .to_submit = 1 }) == -1 && errno == EBADFD,
	      "ENTER after the failed SETUP: %s", strerror(errno));
	CHECK(mprotect(ro, HI_PAGE, PROT_READ | PROT_WRITE) == 0, "mprotect");
	CHECK(ioctl(fd, XSC_IOC_SETUP, ro) == 0 && ro->sq_entries == 64, "SETUP after the failed one: %s",
	      strerror(errno));
	close(fd);
	if (!hi_v2())
		return PASS;
	CHECK(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction");
	for (k = 0; k < 2; k++) {
		const char *where = k ? "in the ring" : "read-only";
		pthread_t self = pthread_self(), th;
		struct xsc_enter *e;
		struct ring r;
		char buf[2] = "";
		void *kret;
		int p[2];

		CHECK(pipe(p) == 0, "pipe");
		HI_RING(&r, 8, 16, XSC_SETUP_RESTART);
		e = k ? (struct xsc_enter *)((char *)r.map + 512) : (struct xsc_enter *)ro;
		CHECK(mprotect(ro, HI_PAGE, PROT_READ | PROT_WRITE) == 0, "mprotect");
		*e = (struct xsc_enter){ .to_submit = 2 };
		if (!k)
			CHECK(mprotect(ro, HI_PAGE, PROT_READ) == 0, "mprotect");
		PUSH(&r, XSC_OP_NOP, 1);
		PUSH(&r, SYS_read, 2, p[0], U(buf), 1);
		PUSH(&r, XSC_OP_NOP, 3);
		g_hi_hpipe = p[1];
		g_hi_sigs = 0;
		CHECK(pthread_create(&th, NULL, hi_kick_later, &self) == 0, "pthread_create");
		n = ioctl(r.fd, XSC_IOC_ENTER, e);
		if (n < 0)
			n = -errno;
		pthread_join(th, &kret);
		diag("%s: ENTER -> %ld, sq_head %u, to_submit now %u, %ld signal(s)", where, n, r.hdr->sq_head,
		     e->to_submit, g_hi_sigs);
		CHECK(kret == NULL && g_hi_sigs == 1, "%s: kick", where);
		CHECK(r.hdr->sq_head <= 2, "%s: ENTER(to_submit 2) consumed %u SQEs", where, r.hdr->sq_head);
		if (k)
			CHECK(n == 1 && e->to_submit == 1, "%s: the restarted ENTER -> %ld, to_submit %u (want 1, 1)",
			      where, n, e->to_submit);
		else
			CHECK(n == -EFAULT || n == 1, "%s: ENTER -> %ld", where, n);
		while (r.hdr->sq_head < 2) {
			CHECK((n = ring_enter(&r, 1)) == 1, "%s: ENTER for the read -> %ld", where, n);
		}
		CHECK(r.hdr->sq_head == 2, "%s: sq_head %u", where, r.hdr->sq_head);
		CHECK((n = ring_enter(&r, 8)) == 1, "%s: ENTER for the last NOP -> %ld", where, n);
		CHECK(hi_expect(&r, 1, XSC_OP_NOP, 0) && hi_expect(&r, 2, SYS_read, 1) && buf[0] == 'w' &&
		      hi_expect(&r, 3, XSC_OP_NOP, 0) && hi_no_more(&r), "%s: CQEs", where);
		ring_fini(&r);
		close(p[0]);
		close(p[1]);
	}
	signal(SIGUSR1, SIG_IGN);
	return PASS;
}

/*
 * Readiness across the ring's lifetime.  A registration made after SETUP
 * reports EPOLLIN once a CQE is posted and not after it is reaped; a thread
 * blocked in epoll_wait while the ring's last reference goes away just
 * returns.  A registration made before SETUP (an event loop adds the fd
 * first, then sets the ring up) must report EPOLLIN the same way: this part
 * fails on the current series, whose poll op registers no wait queue before
 * SETUP, so that epoll item is never woken (kernel-fixes/001-*).
 */
static int g_hi_ep;

static void *hi_epoll_waiter(void *arg)
{
	struct epoll_event out;

	(void)arg;
	return (void *)(long)epoll_wait(g_hi_ep, &out, 1, 500);
}

static int t_hi_epoll_lifetime(void)
{
	struct epoll_event ev = { .events = EPOLLIN }, out;
	struct ring r;
	pthread_t th;
	void *wret;
	long n;
	int ep, fd;

	/* registered after SETUP */
	ep = epoll_create1(EPOLL_CLOEXEC);
	CHECK(ep >= 0, "epoll_create1: %s", strerror(errno));
	HI_RING(&r, 8, 16, 0);
	CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, r.fd, &ev) == 0, "EPOLL_CTL_ADD: %s", strerror(errno));
	CHECK(epoll_wait(ep, &out, 1, 0) == 0, "EPOLLIN on an empty CQ");
	PUSH(&r, XSC_OP_NOP, 1);
	CHECK(ring_enter(&r, 1) == 1, "ENTER");
	CHECK(epoll_wait(ep, &out, 1, 1000) == 1 && (out.events & EPOLLIN), "no EPOLLIN after a CQE");
	CHECK(hi_expect(&r, 1, XSC_OP_NOP, 0), "CQE");
	CHECK(epoll_wait(ep, &out, 1, 0) == 0, "EPOLLIN after the CQ was reaped");
	/* the last reference goes while a thread waits */
	g_hi_ep = ep;
	CHECK(pthread_create(&th, NULL, hi_epoll_waiter, NULL) == 0, "pthread_create");
	usleep(100 * 1000);
	ring_fini(&r);
	pthread_join(th, &wret);
	CHECK((long)wret == 0, "epoll_wait on a released ring -> %ld", (long)wret);
	close(ep);
	/* registered before SETUP */
	ep = epoll_create1(EPOLL_CLOEXEC);
	fd = open(XSC_DEV, O_RDWR | O_CLOEXEC);
	CHECK(ep >= 0 && fd >= 0, "open");
	CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0, "EPOLL_CTL_ADD before SETUP: %s", strerror(errno));
	memset(&r, 0, sizeof(r));
	r.fd = fd;
	r.p.sq_entries = 8;
	CHECK(ioctl(fd, XSC_IOC_SETUP, &r.p) == 0, "SETUP: %s", strerror(errno));
	r.size = r.p.ring_size;
	r.map = mmap(NULL, r.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(r.map != MAP_FAILED, "mmap: %s", strerror(errno));
	r.hdr = r.map;
	r.sqes = (struct xsc_sqe *)((char *)r.map + r.p.sqes_off);
	r.cqes = (struct xsc_cqe *)((char *)r.map + r.p.cqes_off);
	PUSH(&r, XSC_OP_NOP, 2);
	CHECK((n = ring_enter(&r, 1)) == 1, "ENTER -> %ld", n);
	CHECK(epoll_wait(ep, &out, 1, 1000) == 1 && (out.events & EPOLLIN),
	      "epoll registered before SETUP never reports EPOLLIN (poll() registered no wait queue then)");
	CHECK(hi_expect(&r, 2, XSC_OP_NOP, 0), "CQE");
	ring_fini(&r);
	close(ep);
	return PASS;
}

/*
 * Signals the batch sends itself.  [write a, kill(self, SIGSTOP), write b, c,
 * d]: ENTER stops after the kill (a signal is pending), the process stops,
 * and after SIGCONT the caller's next ENTER runs b, c, d -- each write once
 * (v1, v2).  [write a, kill(self, SIGKILL), write b] and [write a,
 * exit_group(9), write b]: nothing after the kill/exit runs (the pipe holds
 * exactly "a"), the status is SIGKILL / 9.
 */
static int hi_stop_child(int wfd, unsigned int flags)
{
	struct ring r;
	long n, m;

	if (ring_init_flags(&r, 8, 0, flags))
		return 10;
	PUSH(&r, SYS_write, 1, wfd, U("a"), 1);
	PUSH(&r, SYS_kill, 2, getpid(), SIGSTOP);
	PUSH(&r, SYS_write, 3, wfd, U("b"), 1);
	PUSH(&r, SYS_write, 4, wfd, U("c"), 1);
	PUSH(&r, SYS_write, 5, wfd, U("d"), 1);
	n = ring_enter(&r, 8);		/* stops here, continues after SIGCONT */
	m = r.hdr->sq_head == r.sq_tail ? 0 : ring_enter(&r, 8);
	if (n != 2 || m != 3)
		return 11;
	if (!hi_expect(&r, 1, SYS_write, 1) || !hi_expect(&r, 2, SYS_kill, 0) ||
	    !hi_expect(&r, 3, SYS_write, 1) || !hi_expect(&r, 4, SYS_write, 1) ||
	    !hi_expect(&r, 5, SYS_write, 1) || !hi_no_more(&r))
		return 12;
	return 0;
}

static int t_hi_self_signal_mid_batch(void)
{
	unsigned int k;
	int mode;

	for (k = 0; k < HI_FLAG_SETS; k++) {
		const char *v = HI_V(hi_flag_sets[k]);
		char buf[16];
		int p[2], st;
		ssize_t got;
		pid_t pid;

		CHECK(pipe(p) == 0, "pipe");
		fflush(stdout);
		pid = fork();
		if (pid == 0)
			_exit(hi_stop_child(p[1], hi_flag_sets[k]));
		CHECK(waitpid(pid, &st, WUNTRACED) == pid && WIFSTOPPED(st), "%s: the child did not stop "
		      "(status %#x)", v, st);
		CHECK(read(p[0], buf, 1) == 1 && buf[0] == 'a', "%s: before the stop", v);
		fcntl(p[0], F_SETFL, O_NONBLOCK);
		CHECK(read(p[0], buf, 1) == -1, "%s: '%c' written while stopped (ran past the kill)", v, buf[0]);
		kill(pid, SIGCONT);
		st = child_status(pid);
		CHECK(st == 0, "%s: child status %d (10 setup, 11 ENTER counts, 12 CQEs)", v, st);
		got = read(p[0], buf, sizeof(buf));
		CHECK(got == 3 && !memcmp(buf, "bcd", 3), "%s: after SIGCONT the pipe holds %zd bytes", v, got);
		close(p[0]);
		close(p[1]);
	}
	for (mode = 0; mode < 2; mode++) {
		char buf[8];
		int p[2], st, want = mode ? 9 : 1000 + SIGKILL;
		ssize_t got;
		pid_t pid;

		CHECK(pipe(p) == 0, "pipe");
		fflush(stdout);
		pid = fork();
		if (pid == 0) {
			struct ring r;

			if (ring_init(&r, 8, 0))
				_exit(10);
			PUSH(&r, SYS_write, 1, p[1], U("a"), 1);
			if (mode)
				PUSH(&r, SYS_exit_group, 2, 9);
			else
				PUSH(&r, SYS_kill, 2, getpid(), SIGKILL);
			PUSH(&r, SYS_write, 3, p[1], U("b"), 1);
			ring_enter(&r, 8);
			_exit(11);
		}
		close(p[1]);
		st = child_status(pid);
		got = read(p[0], buf, sizeof(buf));
		CHECK(st == want, "%s: status %d, want %d", mode ? "exit_group" : "SIGKILL", st, want);
		CHECK(got == 1 && buf[0] == 'a', "%s: the pipe holds %zd bytes (an op ran after it?)",
		      mode ? "exit_group" : "SIGKILL", got);
		close(p[0]);
	}
	return PASS;
}

/*
 * The process dies while its threads sit in ENTER: one blocked in a read
 * holding a v1 ring's mutex, one asleep on that mutex, one blocked in a read
 * on a v2 ring.  Death by SIGKILL from outside, by exit_group(42) through a
 * third ring, by execve(self --exec-probe) through it (status 77).  The
 * process must end with exactly that status (no hang: the watchdog), and the
 * rings must not leak (VmallocUsed).
 */
#define HI_DEATH_ITERS 30
static void *hi_enter_thread(void *arg)
{
	ring_enter(arg, 1);
	return NULL;
}

static int t_hi_death_in_enter_x30(void)
{
	long before, after;
	int i;

	before = meminfo_kb("VmallocUsed");
	for (i = 0; i < HI_DEATH_ITERS; i++) {
		int mode = i % 3, want = mode == 0 ? 1000 + SIGKILL : mode == 1 ? 42 : 77;
		int ready[2], st;
		pid_t pid;
		char b;

		CHECK(pipe(ready) == 0, "pipe");
		fflush(stdout);
		pid = fork();
		if (pid == 0) {
			char *argv[] = { g_self, "--exec-probe", NULL };
			struct ring r1, r2, r3, r4;
			pthread_t t;
			int pe[2];

			if (pipe(pe) || ring_init(&r1, 256, 0) ||
			    ring_init_flags(&r2, 256, 0, g_probe.features & XSC_FEAT_RESTART ? XSC_SETUP_RESTART : 0) ||
			    ring_init(&r3, 8, 0) || ring_init(&r4, XSC_MAX_SQ_ENTRIES, XSC_MAX_CQ_ENTRIES))
				_exit(10);
			PUSH(&r1, SYS_read, 1, pe[0], U(&b), 1);
			PUSH(&r1, SYS_read, 2, pe[0], U(&b), 1);
			PUSH(&r2, SYS_read, 3, pe[0], U(&b), 1);
			if (pthread_create(&t, NULL, hi_enter_thread, &r1) ||
			    pthread_create(&t, NULL, hi_enter_thread, &r1) ||
			    pthread_create(&t, NULL, hi_enter_thread, &r2))
				_exit(11);
			usleep(20 * 1000);
			if (write(ready[1], "r", 1) != 1)
				_exit(12);
			if (mode == 0)
				for (;;)
					pause();
			/*
			 * Closing the last reference of a 516 kB ring queues its
			 * deferred fput; the exit/exec behind it must not lose it
			 * (issue 11 finding 2 leaked exactly this).
			 */
			munmap(r4.map, r4.size);
			PUSH(&r3, SYS_close, 4, r4.fd);
			if (mode == 1)
				PUSH(&r3, SYS_exit_group, 5, 42);
			else
				PUSH(&r3, SYS_execve, 5, U(g_self), U(argv), 0);
			ring_enter(&r3, 2);
			_exit(13);
		}
		close(ready[1]);
		CHECK(read(ready[0], &b, 1) == 1, "iteration %d: child not ready (status %d)", i, child_status(pid));
		close(ready[0]);
		if (mode == 0)
			kill(pid, SIGKILL);
		st = child_status(pid);
		CHECK(st == want, "iteration %d (mode %d): status %d, want %d", i, mode, st, want);
	}
	after = meminfo_kb("VmallocUsed");
	diag("VmallocUsed %ld kB -> %ld kB over %d deaths", before, after, HI_DEATH_ITERS);
	CHECK(before < 0 || after - before < 2048, "VmallocUsed grew by %ld kB (a 516 kB ring closed in the "
	      "exit/exec batch each time)", after - before);
	return PASS;
}

/* ========================================================= runner */

struct tcase {
	const char *name;
	int (*fn)(void);
};

struct tgroup {
	const char *name;
	const struct tcase *cases;
	int ncases;
	const unsigned int *req_ops;	/* terminated by ~0u */
	unsigned int req_feat;
};

#define C(n) { #n, t_##n }
#define N(a) (int)(sizeof(a) / sizeof(a[0]))
#define END ~0u

static const struct tcase setup_cases[] = {
	C(open_dev), C(probe_basic), C(setup_defaults), C(setup_cq_explicit), C(setup_rejects_sizes),
	C(setup_rejects_flags_resv), C(setup_twice_ebusy), C(enter_before_setup), C(mmap_before_setup),
	C(mmap_bad_args), C(bad_ioctl_ptr), C(unknown_ioctl), C(header_fields), C(fdinfo_format),
};
static const struct tcase core_cases[] = {
	C(nop_single), C(nop_batch_order), C(to_submit_partial), C(index_wraparound), C(poll_pollin),
	C(fdinfo_counters), C(enter_args_checked), C(getpid_batch),
};
static const struct tcase errors_cases[] = {
	C(unknown_opcode), C(forbidden_syscalls), C(opcode_range), C(sqe_flags_resv), C(bad_user_pointer),
	C(kernel_pointer), C(bad_fd), C(errors_dont_stop_batch), C(sq_tail_corrupt),
};
static const struct tcase fs_cases[] = {
	C(fs_pipe_roundtrip), C(fs_file_roundtrip), C(fs_pread_pwrite), C(fs_openat_close), C(fs_fstat),
	C(fs_lseek_5gib), C(fs_readv_writev), C(fs_append_order), C(fs_differential_errors),
	C(fs_close_ring_fd),
};
static const struct tcase net_cases[] = {
	C(net_unix_stream), C(net_unix_dgram), C(net_errors), C(net_accept_nonblock), C(net_inet_loopback),
};
static const struct tcase sync_cases[] = {
	C(sync_fsync), C(futex_basic), C(futex_cross_thread), C(futex_filtered),
};
static const struct tcase timer_cases[] = {
	C(timer_clock_gettime), C(timer_nanosleep), C(timer_clock_nanosleep_abs), C(timer_sleep_batch),
	C(timer_interrupted), C(timer_restart_block_reset),
};
static const struct tcase exec_cases[] = {
	C(exec_ids), C(exec_gettid_thread), C(exec_kill), C(exec_wait4), C(exec_execve_enoent),
	C(exec_execve_replaces), C(exec_exit_group), C(exec_exit_group_threads),
	C(exec_exit_group_task_work),
};
static const struct tcase limits_cases[] = {
	C(lim_sq_full), C(lim_cq_backpressure), C(lim_partial_batch), C(lim_max_entries), C(lim_many_rounds),
};
static const struct tcase conc_cases[] = {
	C(conc_own_rings), C(conc_shared_ring), C(conc_blocked_ring_isolated), C(conc_setup_churn),
	C(conc_seccomp_tsync),
};
static const struct tcase life_cases[] = {
	C(life_fork_child), C(life_close_keeps_mapping), C(life_munmap_then_enter), C(life_setup_loop_no_leak),
	C(life_seccomp_refused), C(life_exec_inherited_fd), C(life_mremap_refused), C(life_madv_dofork),
	C(life_memlock_limit),
};
static const struct tcase guard_cases[] = {
	C(guard_errno), C(guard_one_way), C(guard_requires_setup), C(guard_int80), C(guard_new_thread),
	C(guard_fork_child), C(guard_cleared_on_exec), C(guard_sigsys), C(guard_exit_group_allowed),
	C(guard_ptrace_skip),
};
static const struct tcase hostile_cases[] = {
	C(host_random_opcodes), C(host_random_args), C(host_tampered_indices), C(host_tampered_ro_fields),
	C(host_concurrent_scribble), C(host_huge_counts), C(host_fd_exhaustion),
};
static const struct tcase admin_cases[] = {
	C(admin_sysctl_disabled), C(admin_sysctl_group), C(admin_audit_op),
};
static const struct tcase seccomp_cases[] = {
	C(sc_filter_errno), C(sc_filter_kill), C(sc_filter_trap), C(sc_filter_tsync),
};
static const struct tcase restart_cases[] = {
	C(rs_sa_restart_read), C(rs_stop_cont_read), C(rs_no_restart_eintr), C(rs_freezer_read),
	C(rs_clock_nanosleep_stop), C(rs_clock_nanosleep_handler),
};
static const struct tcase hostile_input_cases[] = {
	C(hi_self_write_sq), C(hi_self_write_hdr), C(hi_self_write_cq), C(hi_ring_as_buffer),
	C(hi_mapping_games), C(hi_remap_race_x300), C(hi_close_vs_enter_x200), C(hi_fork_vs_enter_x40),
	C(hi_vfork_enter_x30), C(hi_scm_rights), C(hi_signal_storm_3x1000), C(hi_handler_reenters),
	C(hi_shared_ring_mpmc_x20000), C(hi_death_in_enter_x30), C(hi_ioctl_args), C(hi_epoll_lifetime),
	C(hi_self_signal_mid_batch),
};

static const unsigned int req_none[] = { END };
static const unsigned int req_fs[] = { SYS_read, SYS_write, SYS_close, SYS_fstat, SYS_lseek, SYS_pread64,
				       SYS_pwrite64, SYS_openat, END };
static const unsigned int req_net[] = { SYS_socket, SYS_bind, SYS_listen, SYS_accept4, SYS_connect,
					SYS_sendto, SYS_recvfrom, SYS_shutdown, SYS_close, END };
static const unsigned int req_sync[] = { SYS_fsync, SYS_fdatasync, SYS_futex, END };
static const unsigned int req_timer[] = { SYS_nanosleep, SYS_clock_gettime, SYS_clock_nanosleep, END };
static const unsigned int req_exec[] = { SYS_getpid, SYS_gettid, SYS_wait4, SYS_kill, END };
static const unsigned int req_guard[] = { SYS_read, SYS_write, SYS_getpid, END };
static const unsigned int req_admin[] = { SYS_getppid, END };
static const unsigned int req_seccomp[] = { SYS_read, SYS_write, SYS_getpid, SYS_getppid, END };
static const unsigned int req_hostile_input[] = { SYS_read, SYS_readv, SYS_write, SYS_getpid,
						  SYS_clock_gettime, SYS_futex, SYS_openat, SYS_execve,
						  SYS_exit_group, SYS_kill, END };

static const struct tgroup groups[] = {
	{ "setup", setup_cases, N(setup_cases), req_none, 0 },
	{ "core", core_cases, N(core_cases), req_none, 0 },
	{ "errors", errors_cases, N(errors_cases), req_none, 0 },
	{ "fs", fs_cases, N(fs_cases), req_fs, 0 },
	{ "net", net_cases, N(net_cases), req_net, 0 },
	{ "sync", sync_cases, N(sync_cases), req_sync, 0 },
	{ "timer", timer_cases, N(timer_cases), req_timer, 0 },
	{ "exec", exec_cases, N(exec_cases), req_exec, 0 },
	{ "limits", limits_cases, N(limits_cases), req_none, 0 },
	{ "concurrency", conc_cases, N(conc_cases), req_none, 0 },
	{ "lifecycle", life_cases, N(life_cases), req_none, 0 },
	{ "trap_guard", guard_cases, N(guard_cases), req_guard, XSC_FEAT_TRAP_GUARD },
	{ "hostile", hostile_cases, N(hostile_cases), req_none, 0 },
	{ "admin", admin_cases, N(admin_cases), req_admin, 0 },
	{ "seccomp", seccomp_cases, N(seccomp_cases), req_seccomp, 0 },
	{ "restart", restart_cases, N(restart_cases), req_fs, 0 },
	{ "hostile_input", hostile_input_cases, N(hostile_input_cases), req_hostile_input, 0 },
};

static int n_pass, n_fail, n_skip;

/* print the diag text of a case, one '# ' line per line, at indent */
static void print_diag(const char *indent, char *text)
{
	char *line, *save = NULL;

	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		printf("%s# %s\n", indent, line);
}

static int run_case(const struct tcase *tc, char *dbuf, size_t dsz, int *timed_out)
{
	int p[2], st = 0, res;
	size_t len = 0;
	double deadline;
	pid_t pid;
	ssize_t n;

	*timed_out = 0;
	dbuf[0] = 0;
	if (pipe2(p, O_CLOEXEC)) {
		snprintf(dbuf, dsz, "pipe: %s", strerror(errno));
		return FAIL;
	}
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		snprintf(dbuf, dsz, "fork: %s", strerror(errno));
		return FAIL;
	}
	if (pid == 0) {
		close(p[0]);
		g_diag = p[1];
		_exit(tc->fn());
	}
	close(p[1]);
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	deadline = now_ms() + CASE_TIMEOUT_S * 1000.0;
	for (;;) {
		pid_t w = waitpid(pid, &st, WNOHANG);

		while (len < dsz - 1 && (n = read(p[0], dbuf + len, dsz - 1 - len)) > 0)
			len += n;
		if (w == pid)
			break;
		if (now_ms() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			*timed_out = 1;
			break;
		}
		usleep(2000);
	}
	while (len < dsz - 1 && (n = read(p[0], dbuf + len, dsz - 1 - len)) > 0)
		len += n;
	dbuf[len] = 0;
	close(p[0]);
	if (*timed_out)
		return FAIL;
	if (WIFSIGNALED(st)) {
		snprintf(dbuf + len, dsz - len, "case killed by signal %d\n", WTERMSIG(st));
		return FAIL;
	}
	res = WEXITSTATUS(st);
	if (res != PASS && res != SKIP)
		res = FAIL;
	return res;
}

static const char *group_skip_reason(const struct tgroup *g, char *buf, size_t len)
{
	int i;

	if (!g_probe_ok)
		return NULL;		/* no device: run and fail loudly */
	if (g->req_feat && !(g_probe.features & g->req_feat)) {
		snprintf(buf, len, "kernel lacks feature 0x%x (CONFIG_XSC_TRAP_GUARD?)", g->req_feat);
		return buf;
	}
	for (i = 0; g->req_ops[i] != END; i++) {
		if (!has_op(g->req_ops[i])) {
			snprintf(buf, len, "PROBE does not offer syscall %u", g->req_ops[i]);
			return buf;
		}
	}
	return NULL;
}

static int helper_main(int argc, char **argv)
{
	if (!strcmp(argv[1], "--exec-probe"))
		_exit(77);
	if (!strcmp(argv[1], "--guard-probe"))
		_exit(syscall(SYS_getpid) == getpid() && syscall(SYS_write, 2, "", 0) == 0 ? 78 : 1);
	if (!strcmp(argv[1], "--exec-enter") && argc > 2) {
		struct xsc_enter e = { .to_submit = 1 };
		int fd = atoi(argv[2]);

		if (ioctl(fd, XSC_IOC_ENTER, &e) != -1 || errno != EPERM)
			_exit(1);
		if (mmap(NULL, 4096 * 3, PROT_READ, MAP_SHARED, fd, 0) != MAP_FAILED)
			_exit(2);
		_exit(0);
	}
	return -1;
}

int main(int argc, char **argv)
{
	static char dbuf[16384];
	char why[128];
	int gi, ci, fd;

	if (argc > 1 && helper_main(argc, argv) >= 0)
		return 0;
	setvbuf(stdout, NULL, _IOLBF, 0);
	g_self = "/proc/self/exe";

	fd = open(XSC_DEV, O_RDWR | O_CLOEXEC);
	if (fd >= 0 && ioctl(fd, XSC_IOC_PROBE, &g_probe) == 0)
		g_probe_ok = 1;
	printf("KTAP version 1\n");
	printf("1..%d\n", N(groups));
	if (g_probe_ok)
		printf("# xsc: abi %u, features 0x%x, %u ops\n", g_probe.abi_version, g_probe.features,
		       g_probe.nr_ops);
	else
		printf("# xsc: %s unavailable (%s): every case will fail\n", XSC_DEV,
		       fd < 0 ? strerror(errno) : "PROBE failed");
	if (fd >= 0)
		close(fd);

	for (gi = 0; gi < N(groups); gi++) {
		const struct tgroup *g = &groups[gi];
		const char *skip = group_skip_reason(g, why, sizeof(why));
		int gfail = 0, gpass = 0;

		printf("  KTAP version 1\n");
		printf("  # Subtest: %s\n", g->name);
		printf("  1..%d\n", g->ncases);
		for (ci = 0; ci < g->ncases; ci++) {
			const struct tcase *tc = &g->cases[ci];
			int to, res;

			if (skip) {
				printf("  ok %d %s # SKIP %s\n", ci + 1, tc->name, skip);
				n_skip++;
				continue;
			}
			res = run_case(tc, dbuf, sizeof(dbuf), &to);
			if (res == SKIP) {
				char *nl = strchr(dbuf, '\n');

				if (nl)
					*nl = 0;
				printf("  ok %d %s # SKIP %s\n", ci + 1, tc->name, dbuf[0] ? dbuf : "skipped");
				n_skip++;
				continue;
			}
			print_diag("  ", dbuf);
			if (to) {
				printf("  not ok %d %s # TIMEOUT %d seconds\n", ci + 1, tc->name, CASE_TIMEOUT_S);
				n_fail++;
				gfail++;
			} else if (res == PASS) {
				printf("  ok %d %s\n", ci + 1, tc->name);
				n_pass++;
				gpass++;
			} else {
				printf("  not ok %d %s\n", ci + 1, tc->name);
				n_fail++;
				gfail++;
			}
		}
		if (skip)
			printf("ok %d %s # SKIP %s\n", gi + 1, g->name, skip);
		else if (gfail)
			printf("not ok %d %s\n", gi + 1, g->name);
		else if (!gpass)
			printf("ok %d %s # SKIP all cases skipped\n", gi + 1, g->name);
		else
			printf("ok %d %s\n", gi + 1, g->name);
	}
	printf("# Totals: pass:%d fail:%d xfail:0 xpass:0 skip:%d error:0\n", n_pass, n_fail, n_skip);
	return n_fail ? 1 : 0;
}
