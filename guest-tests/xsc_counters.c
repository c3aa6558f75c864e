// SPDX-License-Identifier: GPL-2.0
/*
 * xsc_counters: LD_PRELOAD library that reports how many system calls a
 * process (and its threads) submitted through XSC rings (/dev/xsc), read
 * from the kernel's own per-ring counters in /proc/self/fdinfo/<fd>
 * (`xsc-submitted:` etc., patches/kernel/README.md "fdinfo").
 *
 * Used by glibc_tests.c to prove that glibc's own tests, run against the
 * XSC glibc with GLIBC_TUNABLES=glibc.xsc.enable=1, went through the ring.
 *
 * Build (shared object; host glibc 2.36 == the XSC glibc's ABI, only
 * GLIBC_2.2.5/2.34 symbols are referenced):
 *     gcc -shared -fPIC -O2 -Wall -Wextra -Werror -pthread \
 *         -o xsc_counters.so xsc_counters.c
 *
 * Environment: XSC_COUNTERS_FILE=PATH.  Unset: the library does nothing.
 *
 * At process exit (ELF destructor, and an interposed _exit()/_Exit()) it
 * appends ONE line per process to PATH (O_APPEND, one write):
 *     xsc-counters pid=P ppid=Q how=exit|_exit inherited=I rings=R submitted=S completed=C errors=E
 * where the sums cover the R rings the process set up itself; I is the
 * number of ring fds it inherited through fork (never counted, see below).
 *
 * Rings are per thread and a thread's ring is closed by libc when the
 * thread exits, so samples are also taken at the end of every thread made
 * with pthread_create() (interposed: the start routine is wrapped and a
 * cleanup handler samples on return, pthread_exit() and cancellation,
 * while the thread's ring is still open).  Bookkeeping per fd number: the
 * largest `xsc-submitted` seen; a drop means the fd now names a new ring,
 * and the old maximum is banked.  That can only under-count (a ring
 * closed and replaced under the same fd number between two samples, or a
 * thread libc creates internally, e.g. the aio helpers), never count a
 * ring twice.  A fork child starts with empty bookkeeping; ring fds it
 * inherits (fd table copy: the parent's other threads' rings stay open in
 * the child, unusable there because ENTER from another mm is refused) are
 * listed as inherited and never counted, since anything they gain is the
 * parent's threads still using them.  (An inherited fd number closed and
 * reused for a new ring is recognised only when the new ring's counter
 * is below the inherited one's: under-count again, never double.)
 *
 * The library itself never makes a call that libc could route: all of its
 * I/O is done with syscall(2), which the XSC series never routes, so the
 * counters reflect the program's own calls only.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_FDS 1024

struct fdstat {
	unsigned long long sub, comp, err;		/* last seen */
	int seen, inherited;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct fdstat fds[MAX_FDS];
static unsigned long long bank_sub, bank_comp, bank_err;
static unsigned int bank_rings, bank_inherited;
static const char *out_path;
static int reported;

static long sys_open(const char *path, int flags, int mode)
{
	return syscall(SYS_openat, AT_FDCWD, path, flags, mode);
}

static void sys_close(int fd)
{
	syscall(SYS_close, fd);
}

static unsigned long long field(const char *text, const char *key)
{
	const char *p = strstr(text, key);

	if (!p)
		return 0;
	p += strlen(key);
	while (*p == ' ' || *p == '\t')
		p++;
	return strtoull(p, NULL, 10);
}

/* Read the counters of every /dev/xsc fd of this process.  Caller holds lock. */
static void sample_locked(void)
{
	char buf[4096], path[64], link[64];
	long dfd, n;

	dfd = sys_open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	if (dfd < 0)
		return;
	while ((n = syscall(SYS_getdents64, dfd, buf, sizeof(buf))) > 0) {
		long off = 0;

		while (off < n) {
			struct dirent64 *d = (struct dirent64 *)(buf + off);
			char info[1024];
			long fd, len, ifd;
			unsigned long long sub;

			off += d->d_reclen;
			if (d->d_name[0] < '0' || d->d_name[0] > '9')
				continue;
			fd = strtol(d->d_name, NULL, 10);
			if (fd < 0 || fd >= MAX_FDS || fd == dfd)
				continue;
			snprintf(path, sizeof(path), "/proc/self/fd/%ld", fd);
			len = syscall(SYS_readlinkat, AT_FDCWD, path, link, sizeof(link) - 1);
			if (len <= 0)
				continue;
			link[len] = 0;
			if (strcmp(link, "/dev/xsc"))
				continue;
			snprintf(path, sizeof(path), "/proc/self/fdinfo/%ld", fd);
			ifd = sys_open(path, O_RDONLY | O_CLOEXEC, 0);
			if (ifd < 0)
				continue;
			len = syscall(SYS_read, ifd, info, sizeof(info) - 1);
			sys_close(ifd);
			if (len <= 0)
				continue;
			info[len] = 0;
			if (!strstr(info, "xsc-submitted:"))
				continue;
			sub = field(info, "xsc-submitted:");
			if (fds[fd].seen && sub < fds[fd].sub) {
				/* the fd number now names another ring */
				struct fdstat *f = &fds[fd];

				if (f->inherited) {
					bank_inherited++;
				} else {
					bank_sub += f->sub;
					bank_comp += f->comp;
					bank_err += f->err;
					bank_rings++;
				}
				memset(f, 0, sizeof(*f));
			}
			fds[fd].seen = 1;
			fds[fd].sub = sub;
			fds[fd].comp = field(info, "xsc-completed:");
			fds[fd].err = field(info, "xsc-errors:");
		}
	}
	sys_close(dfd);
}

static void sample(void)
{
	if (!out_path)
		return;
	pthread_mutex_lock(&lock);
	sample_locked();
	pthread_mutex_unlock(&lock);
}

static void report(const char *how)
{
	unsigned long long sub, comp, err;
	unsigned int rings, inherited, i;
	char line[256];
	long fd;
	int n;

	if (!out_path)
		return;
	pthread_mutex_lock(&lock);
	if (reported) {
		pthread_mutex_unlock(&lock);
		return;
	}
	reported = 1;
	sample_locked();
	sub = bank_sub;
	comp = bank_comp;
	err = bank_err;
	rings = bank_rings;
	inherited = bank_inherited;
	for (i = 0; i < MAX_FDS; i++) {
		if (!fds[i].seen)
			continue;
		if (fds[i].inherited) {
			inherited++;
			continue;
		}
		sub += fds[i].sub;
		comp += fds[i].comp;
		err += fds[i].err;
		rings++;
	}
	pthread_mutex_unlock(&lock);
	n = snprintf(line, sizeof(line),
		     "xsc-counters pid=%ld ppid=%ld how=%s inherited=%u rings=%u submitted=%llu completed=%llu errors=%llu\n",
		     syscall(SYS_getpid), syscall(SYS_getppid), how, inherited, rings, sub, comp, err);
	if (n <= 0 || n >= (int)sizeof(line))
		return;
	fd = sys_open(out_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	syscall(SYS_write, fd, line, (size_t)n);
	sys_close(fd);
}

static void atfork_child(void)
{
	unsigned int i;

	/* the parent's bookkeeping is not ours; the lock was taken in prepare */
	memset(fds, 0, sizeof(fds));
	bank_sub = bank_comp = bank_err = 0;
	bank_rings = bank_inherited = 0;
	reported = 0;
	pthread_mutex_init(&lock, NULL);
	/* ring fds still open here were inherited: the parent's other threads'
	 * rings (libc closes only the forking thread's one, before the atfork
	 * handlers run).  The child cannot use them (ENTER from another mm is
	 * refused), whatever they gain is the parent's doing: never counted.
	 * A later drop of the counter means the fd number was reused for a
	 * ring of the child's own. */
	sample_locked();
	for (i = 0; i < MAX_FDS; i++)
		if (fds[i].seen)
			fds[i].inherited = 1;
}

static void atfork_prepare(void)
{
	pthread_mutex_lock(&lock);
}

static void atfork_parent(void)
{
	pthread_mutex_unlock(&lock);
}

__attribute__((constructor))
static void xsc_counters_init(void)
{
	const char *p = getenv("XSC_COUNTERS_FILE");

	if (!p || !*p)
		return;
	out_path = strdup(p);
	if (out_path)
		pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

__attribute__((destructor))
static void xsc_counters_fini(void)
{
	report("exit");
}

/* ---- interposed symbols ------------------------------------------------ */

typedef void (*exit_fn)(int);

void _exit(int status)
{
	exit_fn real = (exit_fn)dlsym(RTLD_NEXT, "_exit");

	report("_exit");
	if (real)
		real(status);
	syscall(SYS_exit_group, status);
	__builtin_unreachable();
}

void _Exit(int status)
{
	_exit(status);
}

struct start {
	void *(*fn)(void *);
	void *arg;
};

static void thread_end(void *unused)
{
	(void)unused;
	sample();
}

static void *start_wrapper(void *p)
{
	struct start s = *(struct start *)p;
	void *ret;

	free(p);
	pthread_cleanup_push(thread_end, NULL);
	ret = s.fn(s.arg);
	pthread_cleanup_pop(1);
	return ret;
}

typedef int (*create_fn)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);

int pthread_create(pthread_t *th, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
	static create_fn real;
	struct start *s;
	int ret;

	if (!real)
		real = (create_fn)dlvsym(RTLD_NEXT, "pthread_create", "GLIBC_2.34");
	if (!real)
		real = (create_fn)dlsym(RTLD_NEXT, "pthread_create");
	if (!real)
		return EAGAIN;
	if (!out_path)
		return real(th, attr, fn, arg);
	s = malloc(sizeof(*s));
	if (!s)
		return EAGAIN;
	s->fn = fn;
	s->arg = arg;
	ret = real(th, attr, start_wrapper, s);
	if (ret)
		free(s);
	return ret;
}
