/*
 * sanity: small honest libc / procfs / kernel checks of a booted guest,
 * reported as KTAP v1 with one nested subtest per area.
 *
 * Every case runs in its own forked process (so a crash or hang in one case
 * is reported as "not ok" for that case and does not lose the rest), with a
 * CASE_TIMEOUT_S deadline enforced by the parent.  Exit status is 0 iff no
 * case failed.
 *
 * Build: gcc -static -O2 -Wall -Wextra -Werror -pthread -o sanity sanity.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysinfo.h>
#include <sys/timerfd.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CASE_TIMEOUT_S 20
#define TMPFS_MAGIC_NUM 0x01021994

enum { PASS = 0, FAIL = 1, SKIP = 2 };

/* Diagnostic / skip reason of the running case (lives in the case child). */
static char g_msg[512];

__attribute__((format(printf, 1, 2)))
static int fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(g_msg, sizeof(g_msg), fmt, ap);
	va_end(ap);
	return FAIL;
}

__attribute__((format(printf, 1, 2)))
static int skip(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(g_msg, sizeof(g_msg), fmt, ap);
	va_end(ap);
	return SKIP;
}

/* "open /x: ENOENT (No such file or directory)" */
#define FAILE(what, ...) \
	fail(what ": %s (%s)", ##__VA_ARGS__, strerrorname_np(errno) ? \
	     strerrorname_np(errno) : "E?", strerror(errno))

/* ------------------------------------------------------------------ */
/* helpers                                                              */

static ssize_t read_text(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t got = 0;

	if (fd < 0)
		return -1;
	while (got < len - 1) {
		ssize_t n = read(fd, buf + got, len - 1 - got);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			int e = errno;
			close(fd);
			errno = e;
			return -1;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	buf[got] = '\0';
	return (ssize_t)got;
}

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static ssize_t read_full(int fd, void *buf, size_t len)
{
	char *p = buf;
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, p + got, len - got);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

static double mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Per-case scratch directory under /tmp. */
static char g_dir[64];

static int make_scratch(void)
{
	snprintf(g_dir, sizeof(g_dir), "/tmp/sanity.XXXXXX");
	return mkdtemp(g_dir) ? 0 : -1;
}

static void path_in(char *out, size_t len, const char *name)
{
	snprintf(out, len, "%s/%s", g_dir, name);
}

/* ------------------------------------------------------------------ */
/* proc                                                                 */

static int t_getpid_matches_stat(void)
{
	char buf[1024], comm[64];
	int pid, ppid;
	char state;

	if (read_text("/proc/self/stat", buf, sizeof(buf)) < 0)
		return FAILE("open /proc/self/stat");
	/* comm may contain spaces; it is enclosed by the first '(' and last ')' */
	if (sscanf(buf, "%d", &pid) != 1 || !strrchr(buf, ')'))
		return fail("cannot parse /proc/self/stat: %.60s", buf);
	if (sscanf(strrchr(buf, ')') + 1, " %c %d", &state, &ppid) != 2)
		return fail("cannot parse state/ppid in /proc/self/stat");
	if (pid != getpid())
		return fail("stat pid %d != getpid() %d", pid, (int)getpid());
	if (ppid != getppid())
		return fail("stat ppid %d != getppid() %d", ppid, (int)getppid());
	if (state != 'R')
		return fail("own state is '%c', expected 'R'", state);
	if (read_text("/proc/self/comm", comm, sizeof(comm)) < 0)
		return FAILE("open /proc/self/comm");
	comm[strcspn(comm, "\n")] = '\0';
	{
		const char *open_paren = strchr(buf, '(');
		const char *close_paren = strrchr(buf, ')');
		size_t len = strlen(comm);

		if (!open_paren || (size_t)(close_paren - open_paren - 1) != len ||
		    strncmp(open_paren + 1, comm, len) != 0)
			return fail("/proc/self/comm '%s' does not match stat", comm);
	}
	return PASS;
}

static int t_status_readable(void)
{
	char buf[4096], want[64];

	if (read_text("/proc/self/status", buf, sizeof(buf)) < 0)
		return FAILE("open /proc/self/status");
	snprintf(want, sizeof(want), "\nPid:\t%d\n", (int)getpid());
	if (!strstr(buf, want))
		return fail("no 'Pid:\\t%d' line in /proc/self/status", (int)getpid());
	if (!strstr(buf, "\nVmRSS:"))
		return fail("no VmRSS line in /proc/self/status");
	return PASS;
}

static int t_cmdline_console(void)
{
	char buf[4096];

	if (read_text("/proc/cmdline", buf, sizeof(buf)) < 0)
		return FAILE("open /proc/cmdline");
	if (strlen(buf) == 0)
		return fail("/proc/cmdline is empty");
	if (!strstr(buf, "console="))
		return skip("no console= on cmdline");
	return PASS;
}

static int t_mounts_present(void)
{
	static char buf[65536];
	const char *need[] = { " /proc proc ", " /sys sysfs ", " tmpfs " };
	size_t i;

	if (read_text("/proc/mounts", buf, sizeof(buf)) < 0)
		return FAILE("open /proc/mounts");
	for (i = 0; i < sizeof(need) / sizeof(need[0]); i++)
		if (!strstr(buf, need[i]))
			return fail("/proc/mounts lacks '%s'", need[i]);
	return PASS;
}

static int t_self_exe_link(void)
{
	char target[PATH_MAX];
	struct stat a, b;
	ssize_t n = readlink("/proc/self/exe", target, sizeof(target) - 1);

	if (n < 0)
		return FAILE("readlink /proc/self/exe");
	target[n] = '\0';
	if (target[0] != '/')
		return fail("/proc/self/exe -> '%s' is not absolute", target);
	if (stat("/proc/self/exe", &a) < 0)
		return FAILE("stat /proc/self/exe");
	if (stat(target, &b) < 0)
		return FAILE("stat %s", target);
	if (a.st_ino != b.st_ino || a.st_dev != b.st_dev)
		return fail("/proc/self/exe inode differs from %s", target);
	return PASS;
}

static int t_uname_osrelease(void)
{
	struct utsname u;
	char rel[256];

	if (uname(&u) < 0)
		return FAILE("uname");
	if (strcmp(u.sysname, "Linux") != 0)
		return fail("sysname '%s' != Linux", u.sysname);
	if (read_text("/proc/sys/kernel/osrelease", rel, sizeof(rel)) < 0)
		return FAILE("open /proc/sys/kernel/osrelease");
	rel[strcspn(rel, "\n")] = '\0';
	if (strcmp(rel, u.release) != 0)
		return fail("uname release '%s' != osrelease '%s'", u.release, rel);
	return PASS;
}

static int t_sysfs_cpu0(void)
{
	struct stat st;
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	if (stat("/sys/devices/system/cpu/cpu0", &st) < 0)
		return FAILE("stat /sys/devices/system/cpu/cpu0");
	if (!S_ISDIR(st.st_mode))
		return fail("/sys/devices/system/cpu/cpu0 is not a directory");
	if (n < 1)
		return fail("sysconf(_SC_NPROCESSORS_ONLN) = %ld", n);
	return PASS;
}

/* ------------------------------------------------------------------ */
/* fs                                                                   */

static int t_tmp_is_tmpfs(void)
{
	struct statfs sf;

	if (statfs("/tmp", &sf) < 0)
		return FAILE("statfs /tmp");
	if ((unsigned long)sf.f_type != TMPFS_MAGIC_NUM)
		return skip("/tmp is not tmpfs (f_type 0x%lx)", (unsigned long)sf.f_type);
	return PASS;
}

static int t_write_read(void)
{
	char p[PATH_MAX], buf[64];
	const char msg[] = "hello from the xsc guest\n";
	int fd;
	ssize_t n;

	if (make_scratch() < 0)
		return FAILE("mkdtemp");
	path_in(p, sizeof(p), "a.txt");
	fd = open(p, O_CREAT | O_WRONLY | O_TRUNC, 0644);
	if (fd < 0)
		return FAILE("open %s", p);
	if (write_all(fd, msg, sizeof(msg) - 1) < 0)
		return FAILE("write");
	if (fsync(fd) < 0)
		return FAILE("fsync");
	close(fd);
	fd = open(p, O_RDONLY);
	if (fd < 0)
		return FAILE("reopen %s", p);
	n = read_full(fd, buf, sizeof(buf));
	if (n < 0)
		return FAILE("read");
	if ((size_t)n != sizeof(msg) - 1 || memcmp(buf, msg, (size_t)n) != 0)
		return fail("read back %zd bytes, content mismatch", n);
	close(fd);
	return PASS;
}

static int t_lseek_fstat_size(void)
{
	char p[PATH_MAX], buf[10000], c;
	struct stat st;
	int fd, i;
	off_t off;

	if (make_scratch() < 0)
		return FAILE("mkdtemp");
	path_in(p, sizeof(p), "b.bin");
	for (i = 0; i < (int)sizeof(buf); i++)
		buf[i] = (char)(i % 251);
	fd = open(p, O_CREAT | O_RDWR | O_TRUNC, 0600);
	if (fd < 0)
		return FAILE("open %s", p);
	if (write_all(fd, buf, sizeof(buf)) < 0)
		return FAILE("write");
	if (fstat(fd, &st) < 0)
		return FAILE("fstat");
	if (st.st_size != (off_t)sizeof(buf))
		return fail("fstat size %lld != %zu", (long long)st.st_size, sizeof(buf));
	off = lseek(fd, 0, SEEK_END);
	if (off != (off_t)sizeof(buf))
		return fail("lseek(SEEK_END) = %lld", (long long)off);
	off = lseek(fd, 7777, SEEK_SET);
	if (off != 7777)
		return fail("lseek(7777, SEEK_SET) = %lld", (long long)off);
	if (read(fd, &c, 1) != 1)
		return FAILE("read at 7777");
	if (c != (char)(7777 % 251))
		return fail("byte at 7777 is %d, expected %d", c, 7777 % 251);
	if (pread(fd, &c, 1, 123) != 1 || c != (char)(123 % 251))
		return fail("pread at 123 wrong");
	if (lseek(fd, 0, SEEK_CUR) != 7778)
		return fail("pread moved the file offset");
	close(fd);
	return PASS;
}

static int t_ftruncate(void)
{
	char p[PATH_MAX], buf[8192];
	struct stat st;
	int fd, i;

	if (make_scratch() < 0)
		return FAILE("mkdtemp");
	path_in(p, sizeof(p), "c.bin");
	memset(buf, 'x', sizeof(buf));
	fd = open(p, O_CREAT | O_RDWR | O_TRUNC, 0600);
	if (fd < 0)
		return FAILE("open %s", p);
	if (write_all(fd, buf, sizeof(buf)) < 0)
		return FAILE("write");
	if (ftruncate(fd, 100) < 0)
		return FAILE("ftruncate(100)");
	if (fstat(fd, &st) < 0 || st.st_size != 100)
		return fail("size after shrink: %lld", (long long)st.st_size);
	if (ftruncate(fd, 8192) < 0)
		return FAILE("ftruncate(8192)");
	if (pread(fd, buf, sizeof(buf), 0) != (ssize_t)sizeof(buf))
		return FAILE("pread");
	for (i = 0; i < 8192; i++) {
		char want = i < 100 ? 'x' : '\0';
		if (buf[i] != want)
			return fail("byte %d is 0x%02x after shrink+grow, expected 0x%02x",
				    i, (unsigned char)buf[i], (unsigned char)want);
	}
	close(fd);
	return PASS;
}

static int t_rename_unlink(void)
{
	char a[PATH_MAX], b[PATH_MAX];
	struct stat st;
	int fd;

	if (make_scratch() < 0)
		return FAILE("mkdtemp");
	path_in(a, sizeof(a), "old");
	path_in(b, sizeof(b), "new");
	fd = open(a, O_CREAT | O_WRONLY, 0600);
	if (fd < 0)
		return FAILE("open %s", a);
	if (write_all(fd, "abc", 3) < 0)
		return FAILE("write");
	close(fd);
	if (rename(a, b) < 0)
		return FAILE("rename");
	if (stat(a, &st) == 0 || errno != ENOENT)
		return fail("old name still present after rename");
	if (stat(b, &st) < 0)
		return FAILE("stat new name");
	if (st.st_size != 3)
		return fail("renamed file has size %lld", (long long)st.st_size);
	if (unlink(b) < 0)
		return FAILE("unlink");
	if (stat(b, &st) == 0 || errno != ENOENT)
		return fail("file still present after unlink");
	return PASS;
}

static int t_o_excl(void)
{
	char p[PATH_MAX];
	int fd, fd2;

	if (make_scratch() < 0)
		return FAILE("mkdtemp");
	path_in(p, sizeof(p), "excl");
	fd = open(p, O_CREAT | O_EXCL | O_WRONLY, 0600);
	if (fd < 0)
		return FAILE("first O_EXCL open");
	fd2 = open(p, O_CREAT | O_EXCL | O_WRONLY, 0600);
	if (fd2 >= 0)
		return fail("second O_CREAT|O_EXCL open succeeded");
	if (errno != EEXIST)
		return FAILE("second O_EXCL open: expected EEXIST");
	close(fd);
	return PASS;
}

static int t_mmap_file(void)
{
	char p[PATH_MAX], buf[16];
	size_t len = 3 * 4096;
	char *m;
	int fd;

	if (make_scratch() < 0)
		return FAILE("mkdtemp");
	path_in(p, sizeof(p), "map");
	fd = open(p, O_CREAT | O_RDWR | O_TRUNC, 0600);
	if (fd < 0)
		return FAILE("open %s", p);
	if (ftruncate(fd, (off_t)len) < 0)
		return FAILE("ftruncate");
	m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED)
		return FAILE("mmap MAP_SHARED");
	memcpy(m + 8190, "mapped!", 8);
	if (msync(m, len, MS_SYNC) < 0)
		return FAILE("msync");
	if (pread(fd, buf, 8, 8190) != 8)
		return FAILE("pread");
	if (memcmp(buf, "mapped!", 8) != 0)
		return fail("write through mapping not visible via read()");
	if (pwrite(fd, "file->map", 9, 100) != 9)
		return FAILE("pwrite");
	if (memcmp(m + 100, "file->map", 9) != 0)
		return fail("write() not visible through the shared mapping");
	munmap(m, len);
	close(fd);
	return PASS;
}

static int t_mkdir_readdir(void)
{
	char p[PATH_MAX], d[128];
	struct dirent *de;
	DIR *dir;
	int i, found = 0;

	if (make_scratch() < 0)
		return FAILE("mkdtemp");
	path_in(d, sizeof(d), "sub");
	if (mkdir(d, 0755) < 0)
		return FAILE("mkdir %s", d);
	for (i = 0; i < 3; i++) {
		int fd;
		snprintf(p, sizeof(p), "%s/f%d", d, i);
		fd = open(p, O_CREAT | O_WRONLY, 0600);
		if (fd < 0)
			return FAILE("create %s", p);
		close(fd);
	}
	dir = opendir(d);
	if (!dir)
		return FAILE("opendir");
	while ((de = readdir(dir)) != NULL)
		if (de->d_name[0] == 'f')
			found++;
	closedir(dir);
	if (found != 3)
		return fail("readdir found %d files, expected 3", found);
	if (rmdir(d) == 0)
		return fail("rmdir of non-empty directory succeeded");
	if (errno != ENOTEMPTY && errno != EEXIST)
		return FAILE("rmdir non-empty: expected ENOTEMPTY");
	return PASS;
}

/* ------------------------------------------------------------------ */
/* process                                                              */

static int t_fork_exit_codes(void)
{
	const int codes[] = { 0, 1, 42, 255 };
	size_t i;

	for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		int st;
		pid_t pid = fork();
		if (pid < 0)
			return FAILE("fork");
		if (pid == 0)
			_exit(codes[i]);
		if (waitpid(pid, &st, 0) != pid)
			return FAILE("waitpid");
		if (!WIFEXITED(st) || WEXITSTATUS(st) != codes[i])
			return fail("child exit %d reported as status 0x%x", codes[i], st);
	}
	return PASS;
}

static int t_pipe_roundtrip(void)
{
	enum { N = 256 * 1024 };
	static unsigned char buf[N];
	int p[2], st;
	ssize_t n;
	pid_t pid;
	size_t i;

	if (pipe(p) < 0)
		return FAILE("pipe");
	pid = fork();
	if (pid < 0)
		return FAILE("fork");
	if (pid == 0) {
		close(p[0]);
		for (i = 0; i < N; i++)
			buf[i] = (unsigned char)(i * 7 + (i >> 10));
		_exit(write_all(p[1], buf, N) < 0 ? 1 : 0);
	}
	close(p[1]);
	n = read_full(p[0], buf, N);
	if (n != N)
		return fail("read %zd of %d bytes from pipe", n, N);
	for (i = 0; i < N; i++)
		if (buf[i] != (unsigned char)(i * 7 + (i >> 10)))
			return fail("pipe data mismatch at byte %zu", i);
	if (read(p[0], buf, 1) != 0)
		return fail("no EOF after writer exited");
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st))
		return fail("writer child status 0x%x", st);
	return PASS;
}

static int t_execve_self(void)
{
	char *argv[] = { "sanity", "--echo-arg", "xsc-arg-123", NULL };
	char *envp[] = { "SANITY_ENV=env-456", NULL };
	char buf[128] = "";
	int p[2], st;
	ssize_t n;
	pid_t pid;

	if (pipe(p) < 0)
		return FAILE("pipe");
	pid = fork();
	if (pid < 0)
		return FAILE("fork");
	if (pid == 0) {
		dup2(p[1], STDOUT_FILENO);
		close(p[0]);
		close(p[1]);
		execve("/proc/self/exe", argv, envp);
		_exit(99);
	}
	close(p[1]);
	n = read_full(p[0], buf, sizeof(buf) - 1);
	if (n < 0)
		return FAILE("read");
	buf[n] = '\0';
	if (waitpid(pid, &st, 0) != pid)
		return FAILE("waitpid");
	if (WIFEXITED(st) && WEXITSTATUS(st) == 99)
		return fail("execve(/proc/self/exe) failed in child");
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 7)
		return fail("exec'd child status 0x%x, expected exit 7", st);
	if (strcmp(buf, "arg=xsc-arg-123 env=env-456\n") != 0)
		return fail("exec'd child printed '%.60s'", buf);
	return PASS;
}

static volatile sig_atomic_t g_sig;

static void on_usr1(int sig)
{
	g_sig = sig;
}

static int t_signal_handler(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL) < 0)
		return FAILE("sigaction");
	g_sig = 0;
	if (kill(getpid(), SIGUSR1) < 0)
		return FAILE("kill(self, SIGUSR1)");
	/* a signal sent to oneself is delivered before kill() returns */
	if (g_sig != SIGUSR1)
		return fail("handler not run (g_sig=%d)", (int)g_sig);
	return PASS;
}

static int t_kill_child(void)
{
	int p[2], st;
	char c;
	pid_t pid;

	if (pipe(p) < 0)
		return FAILE("pipe");
	pid = fork();
	if (pid < 0)
		return FAILE("fork");
	if (pid == 0) {
		close(p[0]);
		if (write(p[1], "r", 1) != 1)
			_exit(3);
		for (;;)
			pause();
	}
	close(p[1]);
	if (read(p[0], &c, 1) != 1)
		return fail("child did not report ready");
	if (kill(pid, SIGTERM) < 0)
		return FAILE("kill(child, SIGTERM)");
	if (waitpid(pid, &st, 0) != pid)
		return FAILE("waitpid");
	if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGTERM)
		return fail("child status 0x%x, expected killed by SIGTERM", st);
	return PASS;
}

enum { NTHREADS = 4, NITER = 200000 };
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static long g_counter;

static void *thread_fn(void *arg)
{
	int i;

	(void)arg;
	for (i = 0; i < NITER; i++) {
		pthread_mutex_lock(&g_lock);
		g_counter++;
		pthread_mutex_unlock(&g_lock);
	}
	return (void *)(intptr_t)gettid();
}

static int t_pthread_counter(void)
{
	pthread_t th[NTHREADS];
	void *ret;
	int i, rc;

	g_counter = 0;
	for (i = 0; i < NTHREADS; i++) {
		rc = pthread_create(&th[i], NULL, thread_fn, NULL);
		if (rc) {
			errno = rc;
			return FAILE("pthread_create");
		}
	}
	for (i = 0; i < NTHREADS; i++) {
		rc = pthread_join(th[i], &ret);
		if (rc) {
			errno = rc;
			return FAILE("pthread_join");
		}
		if ((pid_t)(intptr_t)ret == getpid())
			return fail("thread %d ran with the main thread's tid", i);
	}
	if (g_counter != (long)NTHREADS * NITER)
		return fail("counter %ld, expected %ld", g_counter,
			    (long)NTHREADS * NITER);
	return PASS;
}

/* ------------------------------------------------------------------ */
/* time                                                                 */

static int t_monotonic_advances(void)
{
	struct timespec a, b, d = { 0, 5 * 1000 * 1000 };

	if (clock_gettime(CLOCK_MONOTONIC, &a) < 0)
		return FAILE("clock_gettime(MONOTONIC)");
	nanosleep(&d, NULL);
	if (clock_gettime(CLOCK_MONOTONIC, &b) < 0)
		return FAILE("clock_gettime(MONOTONIC)");
	if (b.tv_sec < a.tv_sec || (b.tv_sec == a.tv_sec && b.tv_nsec <= a.tv_nsec))
		return fail("monotonic did not advance: %lld.%09ld -> %lld.%09ld",
			    (long long)a.tv_sec, a.tv_nsec, (long long)b.tv_sec, b.tv_nsec);
	return PASS;
}

static int t_nanosleep_min(void)
{
	struct timespec req = { 0, 50 * 1000 * 1000 };
	double t0 = mono_s(), dt;

	if (nanosleep(&req, NULL) < 0)
		return FAILE("nanosleep");
	dt = mono_s() - t0;
	if (dt < 0.050)
		return fail("nanosleep(50ms) returned after %.3f ms", dt * 1000);
	if (dt > 5.0)
		return fail("nanosleep(50ms) took %.3f s", dt);
	return PASS;
}

static int t_realtime_sane(void)
{
	struct timespec ts;
	time_t t;

	if (clock_gettime(CLOCK_REALTIME, &ts) < 0)
		return FAILE("clock_gettime(REALTIME)");
	/* 2020-01-01 .. 2100-01-01 */
	if (ts.tv_sec < 1577836800 || ts.tv_sec > 4102444800LL)
		return fail("CLOCK_REALTIME %lld is not between 2020 and 2100",
			    (long long)ts.tv_sec);
	/*
	 * time() reads the tick-updated coarse clock, clock_gettime the precise
	 * one: just after a second boundary time() is still in the old second
	 * until the next tick, so it may trail a clock_gettime read before it
	 * by one second (seen under a loaded host).
	 */
	t = time(NULL);
	if (t < ts.tv_sec - 1 || t > ts.tv_sec + 5)
		return fail("time() %lld disagrees with clock_gettime %lld",
			    (long long)t, (long long)ts.tv_sec);
	return PASS;
}

static int t_timerfd_fires(void)
{
	struct itimerspec its = { { 0, 0 }, { 0, 20 * 1000 * 1000 } };
	uint64_t exp = 0;
	double t0;
	int fd;

	fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
	if (fd < 0)
		return FAILE("timerfd_create");
	t0 = mono_s();
	if (timerfd_settime(fd, 0, &its, NULL) < 0)
		return FAILE("timerfd_settime");
	if (read(fd, &exp, sizeof(exp)) != sizeof(exp))
		return FAILE("read timerfd");
	if (exp != 1)
		return fail("timerfd expirations %llu, expected 1",
			    (unsigned long long)exp);
	if (mono_s() - t0 < 0.020)
		return fail("timerfd fired early after %.3f ms", (mono_s() - t0) * 1000);
	close(fd);
	return PASS;
}

/* ------------------------------------------------------------------ */
/* memory                                                               */

static int t_malloc_large(void)
{
	size_t len = 64u << 20, i;
	unsigned char *p = malloc(len);

	if (!p)
		return FAILE("malloc(64 MiB)");
	for (i = 0; i < len; i += 4096)
		p[i] = (unsigned char)(i >> 12);
	for (i = 0; i < len; i += 4096)
		if (p[i] != (unsigned char)(i >> 12))
			return fail("malloc'd memory mismatch at offset %zu", i);
	free(p);
	return PASS;
}

static int t_mmap_anon(void)
{
	size_t len = 1u << 20, i;
	unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return FAILE("mmap anonymous");
	for (i = 0; i < len; i++)
		if (p[i])
			return fail("fresh anonymous mapping not zero at %zu", i);
	memset(p, 0xa5, len);
	if (p[len - 1] != 0xa5)
		return fail("write to anonymous mapping lost");
	if (munmap(p, len) < 0)
		return FAILE("munmap");
	return PASS;
}

static sigjmp_buf g_jmp;

static void on_segv(int sig)
{
	siglongjmp(g_jmp, sig);
}

static int t_mprotect_readonly(void)
{
	struct sigaction sa;
	volatile char *p;
	int sig;

	p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		 -1, 0);
	if (p == MAP_FAILED)
		return FAILE("mmap");
	p[0] = 'w';
	if (mprotect((void *)p, 4096, PROT_READ) < 0)
		return FAILE("mprotect(PROT_READ)");
	if (p[0] != 'w')
		return fail("content changed after mprotect");
	/* Handled SIGSEGV: no "segfault at" line in the kernel log. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_segv;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
	sig = sigsetjmp(g_jmp, 1);
	if (sig == 0) {
		p[0] = 'x';
		return fail("write to PROT_READ page did not fault");
	}
	if (sig != SIGSEGV)
		return fail("write to PROT_READ page raised signal %d, not SIGSEGV", sig);
	if (mprotect((void *)p, 4096, PROT_READ | PROT_WRITE) < 0)
		return FAILE("mprotect(PROT_READ|PROT_WRITE)");
	p[0] = 'y';
	if (p[0] != 'y')
		return fail("write after restoring PROT_WRITE lost");
	return PASS;
}

static int t_mremap_grow(void)
{
	size_t a = 4 * 4096, b = 64 * 4096, i;
	unsigned char *p = mmap(NULL, a, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), *q;

	if (p == MAP_FAILED)
		return FAILE("mmap");
	for (i = 0; i < a; i++)
		p[i] = (unsigned char)(i % 253);
	q = mremap(p, a, b, MREMAP_MAYMOVE);
	if (q == MAP_FAILED)
		return FAILE("mremap");
	for (i = 0; i < a; i++)
		if (q[i] != (unsigned char)(i % 253))
			return fail("mremap lost content at %zu", i);
	for (i = a; i < b; i++)
		if (q[i])
			return fail("grown part not zero at %zu", i);
	munmap(q, b);
	return PASS;
}

static int t_meminfo_sane(void)
{
	char buf[8192], *m;
	unsigned long long kb;
	struct sysinfo si;

	if (read_text("/proc/meminfo", buf, sizeof(buf)) < 0)
		return FAILE("open /proc/meminfo");
	m = strstr(buf, "MemTotal:");
	if (!m || sscanf(m, "MemTotal: %llu kB", &kb) != 1)
		return fail("no MemTotal in /proc/meminfo");
	if (sysinfo(&si) < 0)
		return FAILE("sysinfo");
	if (kb == 0 || (unsigned long long)si.totalram * si.mem_unit / 1024 != kb)
		return fail("MemTotal %llu kB != sysinfo %llu kB", kb,
			    (unsigned long long)si.totalram * si.mem_unit / 1024);
	return PASS;
}

/* ------------------------------------------------------------------ */
/* net                                                                  */

static int t_socketpair_unix(void)
{
	int sv[2];
	char buf[32];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return FAILE("socketpair");
	if (write_all(sv[0], "ping", 4) < 0)
		return FAILE("send ping");
	if (read_full(sv[1], buf, 4) != 4 || memcmp(buf, "ping", 4))
		return fail("ping not received");
	if (write_all(sv[1], "pong", 4) < 0)
		return FAILE("send pong");
	if (read_full(sv[0], buf, 4) != 4 || memcmp(buf, "pong", 4))
		return fail("pong not received");
	close(sv[0]);
	if (read(sv[1], buf, 1) != 0)
		return fail("no EOF after peer close");
	close(sv[1]);
	return PASS;
}

static int t_unix_path_dgram(void)
{
	struct sockaddr_un sa;
	char buf[32];
	int s, c;
	ssize_t n;

	if (make_scratch() < 0)
		return FAILE("mkdtemp");
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/sock", g_dir);
	s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	c = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0 || c < 0)
		return FAILE("socket(AF_UNIX, SOCK_DGRAM)");
	if (bind(s, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return FAILE("bind %s", sa.sun_path);
	if (sendto(c, "datagram", 8, 0, (struct sockaddr *)&sa, sizeof(sa)) != 8)
		return FAILE("sendto");
	n = recv(s, buf, sizeof(buf), 0);
	if (n != 8 || memcmp(buf, "datagram", 8))
		return fail("recv got %zd bytes", n);
	return PASS;
}

/* Bring `lo` up.  Returns 0, or -1 with errno set. */
static int lo_up(void)
{
	struct ifreq ifr;
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (s < 0)
		return -1;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, IFNAMSIZ, "lo");
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		goto err;
	if (!(ifr.ifr_flags & IFF_UP)) {
		ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
		if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
			goto err;
		if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
			goto err;
		if (!(ifr.ifr_flags & IFF_UP)) {
			errno = EIO;
			goto err;
		}
	}
	close(s);
	return 0;
err:
	{
		int e = errno;
		close(s);
		errno = e;
	}
	return -1;
}

static int t_lo_up(void)
{
	int s = socket(AF_INET, SOCK_DGRAM, 0);

	if (s < 0 && errno == EAFNOSUPPORT)
		return skip("AF_INET not supported by this kernel");
	if (s >= 0)
		close(s);
	if (lo_up() < 0) {
		if (errno == EPERM)
			return skip("not allowed to bring lo up (EPERM)");
		return FAILE("bring lo up");
	}
	return PASS;
}

static int t_tcp_loopback(void)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	char buf[64];
	int ls, cs, as, one = 1;

	ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (ls < 0 && errno == EAFNOSUPPORT)
		return skip("AF_INET not supported by this kernel");
	if (ls < 0)
		return FAILE("socket(AF_INET, SOCK_STREAM)");
	if (lo_up() < 0 && errno != EPERM)
		return FAILE("bring lo up");
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = 0;
	if (bind(ls, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return FAILE("bind 127.0.0.1:0");
	if (listen(ls, 1) < 0)
		return FAILE("listen");
	if (getsockname(ls, (struct sockaddr *)&sa, &sl) < 0)
		return FAILE("getsockname");
	if (sa.sin_port == 0)
		return fail("kernel assigned port 0");
	cs = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (cs < 0)
		return FAILE("socket");
	if (connect(cs, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (errno == ENETUNREACH)
			return skip("lo is down and could not be brought up");
		return FAILE("connect 127.0.0.1:%d", ntohs(sa.sin_port));
	}
	as = accept(ls, NULL, NULL);
	if (as < 0)
		return FAILE("accept");
	if (send(cs, "hello tcp", 9, 0) != 9)
		return FAILE("send");
	if (read_full(as, buf, 9) != 9 || memcmp(buf, "hello tcp", 9))
		return fail("server did not receive 'hello tcp'");
	if (send(as, "reply", 5, 0) != 5)
		return FAILE("send reply");
	if (read_full(cs, buf, 5) != 5 || memcmp(buf, "reply", 5))
		return fail("client did not receive 'reply'");
	shutdown(cs, SHUT_WR);
	if (read(as, buf, 1) != 0)
		return fail("server saw no EOF after client shutdown");
	close(as);
	close(cs);
	close(ls);
	return PASS;
}

static int t_udp_loopback(void)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	char buf[64];
	int s, c;
	ssize_t n;

	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0 && errno == EAFNOSUPPORT)
		return skip("AF_INET not supported by this kernel");
	if (s < 0)
		return FAILE("socket(AF_INET, SOCK_DGRAM)");
	if (lo_up() < 0 && errno != EPERM)
		return FAILE("bring lo up");
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(s, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return FAILE("bind");
	if (getsockname(s, (struct sockaddr *)&sa, &sl) < 0)
		return FAILE("getsockname");
	c = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (c < 0)
		return FAILE("socket");
	if (sendto(c, "udp!", 4, 0, (struct sockaddr *)&sa, sizeof(sa)) != 4) {
		if (errno == ENETUNREACH)
			return skip("lo is down and could not be brought up");
		return FAILE("sendto");
	}
	n = recv(s, buf, sizeof(buf), 0);
	if (n != 4 || memcmp(buf, "udp!", 4))
		return fail("recv got %zd bytes", n);
	return PASS;
}

/* ------------------------------------------------------------------ */
/* runner                                                               */

struct tcase {
	const char *name;
	int (*fn)(void);
};

struct tsuite {
	const char *name;
	const struct tcase *cases;
	size_t n;
};

#define CASE(x) { #x, t_##x }
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static const struct tcase proc_cases[] = {
	CASE(getpid_matches_stat), CASE(status_readable), CASE(cmdline_console),
	CASE(mounts_present), CASE(self_exe_link), CASE(uname_osrelease),
	CASE(sysfs_cpu0),
};
static const struct tcase fs_cases[] = {
	CASE(tmp_is_tmpfs), CASE(write_read), CASE(lseek_fstat_size),
	CASE(ftruncate), CASE(rename_unlink), CASE(o_excl), CASE(mmap_file),
	CASE(mkdir_readdir),
};
static const struct tcase process_cases[] = {
	CASE(fork_exit_codes), CASE(pipe_roundtrip), CASE(execve_self),
	CASE(signal_handler), CASE(kill_child), CASE(pthread_counter),
};
static const struct tcase time_cases[] = {
	CASE(monotonic_advances), CASE(nanosleep_min), CASE(realtime_sane),
	CASE(timerfd_fires),
};
static const struct tcase memory_cases[] = {
	CASE(malloc_large), CASE(mmap_anon), CASE(mprotect_readonly),
	CASE(mremap_grow), CASE(meminfo_sane),
};
static const struct tcase net_cases[] = {
	CASE(socketpair_unix), CASE(unix_path_dgram), CASE(lo_up),
	CASE(tcp_loopback), CASE(udp_loopback),
};

static const struct tsuite suites[] = {
	{ "proc", proc_cases, NELEM(proc_cases) },
	{ "fs", fs_cases, NELEM(fs_cases) },
	{ "process", process_cases, NELEM(process_cases) },
	{ "time", time_cases, NELEM(time_cases) },
	{ "memory", memory_cases, NELEM(memory_cases) },
	{ "net", net_cases, NELEM(net_cases) },
};

static void rm_scratch(const char *dir)
{
	struct dirent *de;
	DIR *d = opendir(dir);

	if (d) {
		while ((de = readdir(d)) != NULL) {
			char p[PATH_MAX];

			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
			if (unlink(p) < 0 && errno == EISDIR)
				rm_scratch(p);
		}
		closedir(d);
	}
	rmdir(dir);
}

/* Run one case in a child; returns PASS/FAIL/SKIP and fills msg. */
static int run_case(const struct tcase *tc, char *msg, size_t msglen)
{
	int p[2], st, res = FAIL;
	char buf[1 + sizeof(g_msg)];
	ssize_t n = 0;
	double deadline;
	pid_t pid;

	msg[0] = '\0';
	if (pipe2(p, O_CLOEXEC) < 0) {
		snprintf(msg, msglen, "pipe: %s", strerror(errno));
		return FAIL;
	}
	pid = fork();
	if (pid < 0) {
		snprintf(msg, msglen, "fork: %s", strerror(errno));
		close(p[0]);
		close(p[1]);
		return FAIL;
	}
	if (pid == 0) {
		int r;
		close(p[0]);
		g_msg[0] = '\0';
		g_dir[0] = '\0';
		r = tc->fn();
		if (g_dir[0])
			rm_scratch(g_dir);
		buf[0] = (char)r;
		memcpy(buf + 1, g_msg, strlen(g_msg) + 1);
		write_all(p[1], buf, 1 + strlen(g_msg) + 1);
		_exit(0);
	}
	close(p[1]);

	deadline = mono_s() + CASE_TIMEOUT_S;
	for (;;) {
		struct pollfd pf = { .fd = p[0], .events = POLLIN };
		double left = deadline - mono_s();
		ssize_t r;

		if (left <= 0) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			close(p[0]);
			snprintf(msg, msglen, "timed out after %d s", CASE_TIMEOUT_S);
			return FAIL;
		}
		if (poll(&pf, 1, (int)(left * 1000) + 1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (!pf.revents)
			continue;
		r = read(p[0], buf + n, sizeof(buf) - 1 - (size_t)n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += r;
		if ((size_t)n >= sizeof(buf) - 1)
			break;
	}
	close(p[0]);
	buf[n] = '\0';
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (WIFSIGNALED(st)) {
		snprintf(msg, msglen, "case process killed by signal %d (%s)",
			 WTERMSIG(st), strsignal(WTERMSIG(st)));
		return FAIL;
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || n < 1) {
		snprintf(msg, msglen, "case process died without a result (status 0x%x)",
			 st);
		return FAIL;
	}
	res = buf[0];
	snprintf(msg, msglen, "%s", buf + 1);
	if (res != PASS && res != FAIL && res != SKIP) {
		snprintf(msg, msglen, "bogus result %d", res);
		return FAIL;
	}
	return res;
}

int main(int argc, char **argv)
{
	size_t s, c;
	int pass = 0, failed = 0, skipped = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);

	/* helper mode for t_execve_self */
	if (argc == 3 && strcmp(argv[1], "--echo-arg") == 0) {
		const char *e = getenv("SANITY_ENV");
		printf("arg=%s env=%s\n", argv[2], e ? e : "(null)");
		return 7;
	}
	if (argc != 1) {
		fprintf(stderr, "usage: sanity\n");
		return 2;
	}

	printf("KTAP version 1\n1..%zu\n", NELEM(suites));
	for (s = 0; s < NELEM(suites); s++) {
		const struct tsuite *su = &suites[s];
		int suite_failed = 0;

		printf("  KTAP version 1\n  1..%zu\n", su->n);
		for (c = 0; c < su->n; c++) {
			char msg[600];
			int r = run_case(&su->cases[c], msg, sizeof(msg));

			switch (r) {
			case PASS:
				printf("  ok %zu %s\n", c + 1, su->cases[c].name);
				pass++;
				break;
			case SKIP:
				printf("  ok %zu %s # SKIP %s\n", c + 1,
				       su->cases[c].name, msg[0] ? msg : "skipped");
				skipped++;
				break;
			default:
				printf("  not ok %zu %s\n", c + 1, su->cases[c].name);
				printf("  # %s: %s\n", su->cases[c].name,
				       msg[0] ? msg : "failed");
				failed++;
				suite_failed = 1;
				break;
			}
		}
		printf("%sok %zu %s\n", suite_failed ? "not " : "", s + 1, su->name);
	}
	printf("# Totals: pass:%d fail:%d xfail:0 xpass:0 skip:%d error:0\n",
	       pass, failed, skipped);
	return failed ? 1 : 0;
}
