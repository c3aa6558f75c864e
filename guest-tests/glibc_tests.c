// SPDX-License-Identifier: GPL-2.0
/*
 * glibc_tests: runs a list of glibc's own test programs (built against the
 * XSC glibc) inside the XSC guest, once with routing on
 * (GLIBC_TUNABLES=glibc.xsc.enable=1) and once with routing off (tunable
 * unset), and proves with the kernel's ring counters that the routed run
 * went through /dev/xsc.  Prints KTAP v1, one case per test.
 *
 * Build: gcc -static -O2 -Wall -Wextra -Werror -pthread -o glibc_tests glibc_tests.c
 *
 * Usage: glibc_tests [options] LIST_FILE
 *   -l LOADER    dynamic loader of the XSC glibc
 *                (default /xsc/glibc/lib64/ld-linux-x86-64.so.2)
 *   -L DIRS      its --library-path (default /xsc/glibc/lib64:/xsc/glibc/usr/lib64)
 *   -d DIR       root of the test binaries (default /xsc/glibc-tests);
 *                a list entry "io/tst-openat" runs DIR/io/tst-openat
 *   -p SO        counter preload (default DIR/xsc_counters.so, see xsc_counters.c)
 *   -w DIR       scratch directory (default /tmp/glibc-tests); each run gets
 *                a fresh DIR/<name>.<mode>/ as cwd and TMPDIR, and its counter
 *                file DIR/<name>.<mode>.counters
 *   -t SECONDS   hard timeout per run, whole process group killed (default 300)
 *   -f N         TIMEOUTFACTOR for glibc's test driver (default 10: 20 s -> 200 s)
 *   -r           routed run only (skip the routing-off comparison)
 *
 * LIST_FILE: one test per line, "SUBDIR/TEST [@FLAG|+FILE...] [ARG...]", '#'
 * starts a comment (the reason the test is on the list); blank lines ignored.
 *   +NAME            create an empty file NAME in the run's cwd first (make
 *                    check runs a test in its source subdirectory;
 *                    nptl/tst-cancel4 opens "Makefile" there)
 *   @routed-only     no routing-off run (misc/tst-xsc: glibc runs it only
 *                    with the tunable set; without it, it re-executes
 *                    /proc/self/exe, which is ld.so here)
 *   @route-optional  no counter check (a test that may legitimately not route)
 *
 * Each run: LOADER --library-path DIRS DIR/SUBDIR/TEST ARG..., i.e. what
 * glibc's testrun.sh does; the test driver's default fork mode is kept (the
 * test body runs in a fork child, which exercises the series' fork hook).
 * Environment (the runner's own is ignored; PID 1 gives it none):
 *     [GLIBC_TUNABLES=glibc.xsc.enable=1]   routed run only
 *     LD_PRELOAD=SO XSC_COUNTERS_FILE=...   per-process ring counters
 *     TMPDIR=<run dir> TIMEOUTFACTOR=N LC_ALL=C PATH=/bin:/sbin:/xsc/bin HOME=/
 * stdin is /dev/null, stdout+stderr are captured.  Before the first test the
 * runner brings the loopback interface up (socket tests use 127.0.0.1).
 *
 * Verdict per test:
 *   ok        routed exit 0, >= 1 counter line and submitted > 0 (unless '?');
 *             routing off: exit 0, >= 1 counter line, no ring at all
 *             (rings=0 inherited=0)
 *   ok # SKIP both runs exit 77 (UNSUPPORTED); reason = last output line
 *   not ok    anything else; the outputs of the failing runs follow as "# "
 *             lines (last 60 lines each)
 * Every case is preceded by one "# NAME: MODE: ..." line per run with the
 * exit status, elapsed time and counter sums over the processes that
 * reported (procs, rings set up, ring fds inherited through fork, submitted,
 * completed, errors); a run still going prints "# NAME: MODE: still running
 * after Ns" every 30 s (the harness has a console silence timeout).
 * Exit status 0 iff no case failed.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_TESTS	256
#define MAX_ARGS	32
#define OUT_MAX		(256 * 1024)
#define DIAG_LINES	60
#define HEARTBEAT_S	30

static const char *loader = "/xsc/glibc/lib64/ld-linux-x86-64.so.2";
static const char *libpath = "/xsc/glibc/lib64:/xsc/glibc/usr/lib64";
static const char *testdir = "/xsc/glibc-tests";
static const char *preload;
static const char *workdir = "/tmp/glibc-tests";
static int timeout_s = 300;
static int timeoutfactor = 10;
static int routed_only;

struct test {
	char *path;		/* SUBDIR/TEST */
	char *name;		/* KTAP name: '/' -> '_' */
	char *args[MAX_ARGS];
	int nargs;
	char *files[MAX_ARGS];	/* '+NAME': empty file in the cwd */
	int nfiles;
	int optional;		/* @route-optional: routing not required */
	int routed_only;	/* @routed-only: no routing-off run */
};

struct run {
	int status;		/* wait status */
	int timed_out;
	int exec_failed;
	double ms;
	char *out;
	size_t len;
	int truncated;
	/* counters */
	int procs;
	unsigned long long inherited, rings, sub, comp, err;
};

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void die(const char *fmt, ...)
{
	va_list ap;

	printf("KTAP version 1\n1..0\n# glibc_tests: error: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	exit(2);
}

static char *xstrdup(const char *s)
{
	char *p = strdup(s);

	if (!p)
		die("out of memory");
	return p;
}

static int parse_list(const char *file, struct test *t, int max)
{
	FILE *f = fopen(file, "r");
	char line[1024];
	int n = 0, lineno = 0;

	if (!f)
		die("cannot open list %s: %s", file, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		char *p = strchr(line, '#'), *tok, *save = NULL;

		lineno++;
		if (p)
			*p = 0;
		tok = strtok_r(line, " \t\r\n", &save);
		if (!tok)
			continue;
		if (n == max)
			die("%s: more than %d tests", file, max);
		memset(&t[n], 0, sizeof(t[n]));
		if (!*tok || *tok == '/' || strstr(tok, ".."))
			die("%s:%d: bad test path", file, lineno);
		t[n].path = xstrdup(tok);
		t[n].name = xstrdup(tok);
		for (p = t[n].name; *p; p++)
			if (*p == '/')
				*p = '_';
		while ((tok = strtok_r(NULL, " \t\r\n", &save))) {
			if (!strcmp(tok, "@routed-only") && !t[n].nargs) {
				t[n].routed_only = 1;
				continue;
			}
			if (!strcmp(tok, "@route-optional") && !t[n].nargs) {
				t[n].optional = 1;
				continue;
			}
			if (*tok == '@' && !t[n].nargs)
				die("%s:%d: unknown flag %s", file, lineno, tok);
			if (*tok == '+' && !t[n].nargs) {
				if (!tok[1] || strchr(tok, '/') || t[n].nfiles == MAX_ARGS)
					die("%s:%d: bad +FILE", file, lineno);
				t[n].files[t[n].nfiles++] = xstrdup(tok + 1);
				continue;
			}
			if (t[n].nargs == MAX_ARGS - 1)
				die("%s:%d: too many arguments", file, lineno);
			t[n].args[t[n].nargs++] = xstrdup(tok);
		}
		n++;
	}
	fclose(f);
	return n;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

/* a previous run's directory (the test driver deletes its own temp files) */
static void rm_rf(const char *path)
{
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void read_counters(const char *file, struct run *r)
{
	FILE *f = fopen(file, "r");
	char line[512];

	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long inh, rings, sub, comp, err;
		char *p = strstr(line, "inherited=");

		if (strncmp(line, "xsc-counters ", 13) || !p)
			continue;
		if (sscanf(p, "inherited=%llu rings=%llu submitted=%llu completed=%llu errors=%llu",
			   &inh, &rings, &sub, &comp, &err) != 5)
			continue;
		r->procs++;
		r->inherited += inh;
		r->rings += rings;
		r->sub += sub;
		r->comp += comp;
		r->err += err;
	}
	fclose(f);
}

static void run_test(const struct test *t, int routed, struct run *r)
{
	char exe[1024], rundir[1024], cfile[1100], *argv[MAX_ARGS + 8], *envp[16];
	char e_cnt[1200], e_pre[1100], e_tmp[1100], e_tf[64];
	int p[2], i, ac = 0, ec = 0, status = 0;
	const char *mode = routed ? "routed" : "unrouted";
	double t0, deadline, next_beat;
	pid_t pid;

	memset(r, 0, sizeof(*r));
	r->out = malloc(OUT_MAX + 1);
	if (!r->out)
		die("out of memory");
	r->out[0] = 0;

	snprintf(exe, sizeof(exe), "%s/%s", testdir, t->path);
	snprintf(rundir, sizeof(rundir), "%s/%s.%s", workdir, t->name, mode);
	snprintf(cfile, sizeof(cfile), "%s/%s.%s.counters", workdir, t->name, mode);
	unlink(cfile);
	rm_rf(rundir);
	if (mkdir(rundir, 0755) && errno != EEXIST) {
		r->exec_failed = 1;
		r->len = snprintf(r->out, OUT_MAX, "mkdir %s: %s\n", rundir, strerror(errno));
		return;
	}
	for (i = 0; i < t->nfiles; i++) {
		char f[2048];
		int fd;

		snprintf(f, sizeof(f), "%s/%s", rundir, t->files[i]);
		fd = open(f, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd >= 0)
			close(fd);
	}

	argv[ac++] = (char *)loader;
	argv[ac++] = "--library-path";
	argv[ac++] = (char *)libpath;
	argv[ac++] = exe;
	for (i = 0; i < t->nargs; i++)
		argv[ac++] = t->args[i];
	argv[ac] = NULL;

	snprintf(e_cnt, sizeof(e_cnt), "XSC_COUNTERS_FILE=%s", cfile);
	snprintf(e_pre, sizeof(e_pre), "LD_PRELOAD=%s", preload);
	snprintf(e_tmp, sizeof(e_tmp), "TMPDIR=%s", rundir);
	snprintf(e_tf, sizeof(e_tf), "TIMEOUTFACTOR=%d", timeoutfactor);
	if (routed)
		envp[ec++] = "GLIBC_TUNABLES=glibc.xsc.enable=1";
	envp[ec++] = e_pre;
	envp[ec++] = e_cnt;
	envp[ec++] = e_tmp;
	envp[ec++] = e_tf;
	envp[ec++] = "LC_ALL=C";
	envp[ec++] = "PATH=/bin:/sbin:/xsc/bin";
	envp[ec++] = "HOME=/";
	envp[ec] = NULL;

	if (pipe2(p, O_CLOEXEC)) {
		r->exec_failed = 1;
		r->len = snprintf(r->out, OUT_MAX, "pipe: %s\n", strerror(errno));
		return;
	}
	fflush(stdout);
	t0 = now_ms();
	pid = fork();
	if (pid < 0) {
		r->exec_failed = 1;
		r->len = snprintf(r->out, OUT_MAX, "fork: %s\n", strerror(errno));
		close(p[0]);
		close(p[1]);
		return;
	}
	if (pid == 0) {
		int nul = open("/dev/null", O_RDONLY);
		sigset_t none;

		setpgid(0, 0);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (nul >= 0 && nul != 0) {
			dup2(nul, 0);
			close(nul);
		}
		dup2(p[1], 1);
		dup2(p[1], 2);
		if (chdir(rundir)) {
			dprintf(2, "chdir %s: %s\n", rundir, strerror(errno));
			_exit(126);
		}
		if (access(exe, X_OK)) {
			dprintf(2, "test binary %s: %s\n", exe, strerror(errno));
			_exit(126);
		}
		execve(loader, argv, envp);
		dprintf(2, "execve %s: %s\n", loader, strerror(errno));
		_exit(127);
	}
	setpgid(pid, pid);	/* both sides: no race with the kill below */
	close(p[1]);
	deadline = t0 + timeout_s * 1000.0;
	next_beat = t0 + HEARTBEAT_S * 1000.0;
	/* collect output until every writer is gone or the deadline passes */
	for (;;) {
		struct pollfd pfd = { .fd = p[0], .events = POLLIN };
		double left = deadline - now_ms();
		char buf[4096];
		ssize_t n;
		int rc;

		if (left <= 0) {
			r->timed_out = 1;
			break;
		}
		if (now_ms() >= next_beat) {
			/* keep the console alive: the harness has a silence timeout */
			printf("# %s: %s: still running after %.0fs\n", t->name, mode,
			       (now_ms() - t0) / 1000);
			next_beat += HEARTBEAT_S * 1000.0;
		}
		rc = poll(&pfd, 1, left > 1000 ? 1000 : (int)left + 1);
		if (rc < 0 && errno != EINTR)
			break;
		if (rc <= 0)
			continue;
		n = read(p[0], buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if ((size_t)n > OUT_MAX - r->len) {
			r->truncated = 1;
			n = OUT_MAX - r->len;
		}
		memcpy(r->out + r->len, buf, n);
		r->len += n;
	}
	/* the test itself: wait for it until the deadline */
	while (!r->timed_out && waitpid(pid, &status, WNOHANG) != pid) {
		if (now_ms() > deadline) {
			r->timed_out = 1;
			break;
		}
		usleep(10000);
	}
	kill(-pid, SIGKILL);	/* on timeout, and stray grandchildren of a finished test */
	if (r->timed_out)
		waitpid(pid, &status, 0);
	/* drain what is left (non-blocking, writers are gone or dead) */
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	for (;;) {
		char buf[4096];
		ssize_t n = read(p[0], buf, sizeof(buf));
		size_t room = OUT_MAX - r->len;

		if (n <= 0)
			break;
		if ((size_t)n > room) {
			r->truncated = 1;
			n = room;
		}
		memcpy(r->out + r->len, buf, n);
		r->len += n;
	}
	close(p[0]);
	r->out[r->len] = 0;
	r->ms = now_ms() - t0;
	r->status = status;
	if (!r->timed_out && WIFEXITED(status) &&
	    (WEXITSTATUS(status) == 126 || WEXITSTATUS(status) == 127) &&
	    (strstr(r->out, "execve ") || strstr(r->out, "test binary ")))
		r->exec_failed = 1;
	read_counters(cfile, r);
}

/* exit code of a run, or -1 for signal/timeout */
static int run_code(const struct run *r)
{
	if (r->timed_out || !WIFEXITED(r->status))
		return -1;
	return WEXITSTATUS(r->status);
}

static const char *describe(const struct run *r, char *buf, size_t len)
{
	if (r->timed_out)
		snprintf(buf, len, "TIMEOUT after %ds", timeout_s);
	else if (WIFSIGNALED(r->status))
		snprintf(buf, len, "signal=%d (%s)", WTERMSIG(r->status), strsignal(WTERMSIG(r->status)));
	else
		snprintf(buf, len, "exit=%d", WEXITSTATUS(r->status));
	return buf;
}

static void print_summary(const struct test *t, const char *mode, const struct run *r)
{
	char st[64];

	printf("# %s: %s: %s elapsed=%.0fms procs=%d rings=%llu inherited=%llu submitted=%llu completed=%llu errors=%llu\n",
	       t->name, mode, describe(r, st, sizeof(st)), r->ms, r->procs, r->rings, r->inherited,
	       r->sub, r->comp, r->err);
}

static void print_output(const struct test *t, const char *mode, const struct run *r)
{
	int lines = 0, skip;
	char *p, *save = NULL, *copy;

	for (p = r->out; *p; p++)
		if (*p == '\n')
			lines++;
	if (r->len && r->out[r->len - 1] != '\n')
		lines++;
	skip = lines > DIAG_LINES ? lines - DIAG_LINES : 0;
	printf("# %s: %s output (%zu bytes%s%s):\n", t->name, mode, r->len,
	       r->truncated ? ", truncated" : "", skip ? ", last lines only" : "");
	copy = r->out;
	for (p = strtok_r(copy, "\n", &save); p; p = strtok_r(NULL, "\n", &save)) {
		char *c;

		if (skip-- > 0)
			continue;
		for (c = p; *c; c++)	/* keep the console and the KTAP parser sane */
			if ((unsigned char)*c < 0x20 && *c != '\t')
				*c = '?';
		printf("#   %s\n", p);
	}
}

static void last_line(const struct run *r, char *buf, size_t len)
{
	const char *end = r->out + r->len, *start;

	while (end > r->out && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' '))
		end--;
	start = end;
	while (start > r->out && start[-1] != '\n')
		start--;
	if (end == start) {
		snprintf(buf, len, "exit 77 (UNSUPPORTED)");
		return;
	}
	snprintf(buf, len, "%.*s", (int)(end - start), start);
	for (char *c = buf; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == '#')
			*c = ' ';
}

/* loopback up (socket tests connect to 127.0.0.1); the initramfs leaves it down */
static const char *lo_up(void)
{
	struct ifreq ifr;
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	const char *res = "down (cannot bring it up)";

	if (s < 0)
		return "unavailable (no AF_INET)";
	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, "lo");
	if (ioctl(s, SIOCGIFFLAGS, &ifr) == 0) {
		if (ifr.ifr_flags & IFF_UP) {
			res = "up";
		} else {
			ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
			if (ioctl(s, SIOCSIFFLAGS, &ifr) == 0)
				res = "brought up";
		}
	}
	close(s);
	return res;
}

static void usage(const char *argv0)
{
	fprintf(stderr,
		"usage: %s [-l LOADER] [-L LIBDIRS] [-d TESTDIR] [-p PRELOAD.so] [-w WORKDIR]\n"
		"          [-t TIMEOUT_S] [-f TIMEOUTFACTOR] [-r] LIST_FILE\n", argv0);
	exit(2);
}

int main(int argc, char **argv)
{
	static struct test tests[MAX_TESTS];
	static char preload_buf[1024];
	int opt, n, i, n_pass = 0, n_fail = 0, n_skip = 0;
	struct stat st;

	setvbuf(stdout, NULL, _IOLBF, 0);
	while ((opt = getopt(argc, argv, "l:L:d:p:w:t:f:rh")) != -1) {
		switch (opt) {
		case 'l': loader = optarg; break;
		case 'L': libpath = optarg; break;
		case 'd': testdir = optarg; break;
		case 'p': preload = optarg; break;
		case 'w': workdir = optarg; break;
		case 't': timeout_s = atoi(optarg); break;
		case 'f': timeoutfactor = atoi(optarg); break;
		case 'r': routed_only = 1; break;
		default: usage(argv[0]);
		}
	}
	if (optind != argc - 1 || timeout_s <= 0 || timeoutfactor <= 0)
		usage(argv[0]);
	if (!preload) {
		snprintf(preload_buf, sizeof(preload_buf), "%s/xsc_counters.so", testdir);
		preload = preload_buf;
	}
	/* SIGPIPE from a dead console must not kill the runner mid-report */
	signal(SIGPIPE, SIG_IGN);

	n = parse_list(argv[optind], tests, MAX_TESTS);
	if (mkdir(workdir, 0755) && errno != EEXIST)
		die("mkdir %s: %s", workdir, strerror(errno));

	printf("KTAP version 1\n");
	printf("# glibc_tests: loader %s, library path %s, tests %s, preload %s\n", loader, libpath,
	       testdir, preload);
	printf("# glibc_tests: /dev/xsc %s; lo %s; run timeout %ds, TIMEOUTFACTOR=%d%s\n",
	       stat("/dev/xsc", &st) ? "MISSING" : "present", lo_up(), timeout_s, timeoutfactor,
	       routed_only ? ", routed run only" : "");
	if (stat(loader, &st))
		printf("# glibc_tests: loader %s: %s (every case will fail)\n", loader, strerror(errno));
	if (stat(preload, &st))
		printf("# glibc_tests: preload %s: %s (no counter evidence: every case will fail)\n",
		       preload, strerror(errno));
	printf("1..%d\n", n);

	for (i = 0; i < n; i++) {
		const struct test *t = &tests[i];
		struct run ron, roff;
		char why[512];
		int con, coff, fail = 0, skip = 0, off = !routed_only && !t->routed_only;

		why[0] = 0;
		run_test(t, 1, &ron);
		print_summary(t, "routed", &ron);
		con = run_code(&ron);

		if (off) {
			run_test(t, 0, &roff);
			print_summary(t, "unrouted", &roff);
			coff = run_code(&roff);
		} else {
			memset(&roff, 0, sizeof(roff));
			coff = con;
		}

		if (ron.exec_failed) {
			fail = 1;
			snprintf(why, sizeof(why), "cannot run");
		} else if (con == 77 && coff == 77) {
			skip = 1;
			last_line(&ron, why, sizeof(why));
		} else if (con != 0) {
			fail = 1;
			snprintf(why, sizeof(why), "routed run failed");
		} else if (!ron.procs) {
			fail = 1;
			snprintf(why, sizeof(why), "no counter report from the routed run (preload not loaded?)");
		} else if (!t->optional && ron.sub == 0) {
			fail = 1;
			snprintf(why, sizeof(why), "routed run submitted nothing through the ring");
		} else if (off && coff != con) {
			fail = 1;
			snprintf(why, sizeof(why), "routing off gives a different result");
		} else if (off && !roff.procs) {
			fail = 1;
			snprintf(why, sizeof(why), "no counter report from the unrouted run");
		} else if (off && (roff.rings || roff.inherited)) {
			fail = 1;
			snprintf(why, sizeof(why), "unrouted run opened a ring (routing must be off by default)");
		}

		if (fail) {
			if (con != 0 || ron.exec_failed || (!ron.procs && ron.len))
				print_output(t, "routed", &ron);
			if (off && (coff != 0 || roff.exec_failed))
				print_output(t, "unrouted", &roff);
			printf("# %s: %s\n", t->name, why);
			printf("not ok %d %s\n", i + 1, t->name);
			n_fail++;
		} else if (skip) {
			printf("ok %d %s # SKIP %s\n", i + 1, t->name, why);
			n_skip++;
		} else {
			printf("ok %d %s\n", i + 1, t->name);
			n_pass++;
		}
		free(ron.out);
		if (off)
			free(roff.out);
	}
	printf("# Totals: pass:%d fail:%d xfail:0 xpass:0 skip:%d error:0\n", n_pass, n_fail, n_skip);
	return n_fail ? 1 : 0;
}
