/*
 * xsc-init: tiny static PID 1 for the xsc-release QEMU test harness.
 *
 * Mounts the pseudo filesystems, prints "xsc-init: ready", runs every
 * program listed in the plan file (/xsc/plan, or xsc.plan=PATH on the
 * kernel command line) with a per-program timeout, forwards the program's
 * output to the console indented by two spaces (so a program's own KTAP
 * becomes a KTAP subtest), prints one top-level KTAP result line per
 * program, and powers the machine off.
 *
 * Plan format: one program per line, TAB separated:
 *     NAME<TAB>TIMEOUT_SECONDS<TAB>ARGV0<TAB>ARGV1...
 * '#' lines and blank lines are ignored.  NAME is [a-z0-9_-]+,
 * TIMEOUT_SECONDS 0 means no limit.
 *
 * Build: gcc -static -O2 -Wall -Wextra -Werror -pthread -o init xsc-init.c
 *
 * When not running as PID 1 (host debugging), mounts and poweroff are
 * skipped, argv[1] may name the plan, and the exit status is 0 iff every
 * entry passed or skipped.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_PLAN "/xsc/plan"
#define MAX_PLAN_BYTES (1024 * 1024)
#define LINE_MAX_BYTES 8192
#define POST_EXIT_DRAIN_MS 1000

static int is_pid1;
static sigset_t mask_chld_blocked; /* normal mask: SIGCHLD blocked */
static sigset_t mask_orig;         /* mask used inside ppoll / restored in children */

/* ------------------------------------------------------------------ */
/* console output: write(2) directly, never stdio buffering            */

static void write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return; /* nothing sensible to do as PID 1 */
		}
		buf += n;
		len -= (size_t)n;
	}
}

__attribute__((format(printf, 1, 2)))
static void say(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(buf) - 2)
		n = (int)sizeof(buf) - 2;
	buf[n++] = '\n';
	write_all(STDOUT_FILENO, buf, (size_t)n);
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------ */
/* shutdown                                                             */

static void reap_all_nohang(void)
{
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
}

static void __attribute__((noreturn)) finish(int exit_code)
{
	if (!is_pid1)
		exit(exit_code);
	/* Kill whatever escaped its session and reap it. */
	kill(-1, SIGKILL);
	reap_all_nohang();
	sync();
	/*
	 * The console's tty still holds what we wrote last (a slow host under TCG drains the
	 * UART slowly) and poweroff does not wait for it: without this the verdict's last
	 * lines, even `xsc-init: done`, can be cut off after the kernel's own shutdown lines.
	 */
	tcdrain(STDOUT_FILENO);
	reboot(RB_POWER_OFF);
	say("xsc-init: warning: reboot(RB_POWER_OFF): %s", strerror(errno));
	for (;;) {
		pause();
		reap_all_nohang();
	}
}

/* ------------------------------------------------------------------ */
/* early setup                                                          */

static void ensure_stdio(void)
{
	int fd, i, missing = 0;

	for (i = 0; i < 3; i++)
		if (fcntl(i, F_GETFD) < 0)
			missing = 1;
	if (!missing)
		return;
	fd = open("/dev/console", O_RDWR | O_NOCTTY);
	if (fd < 0)
		return; /* retried after devtmpfs is mounted */
	for (i = 0; i < 3; i++)
		if (fcntl(i, F_GETFD) < 0 && i != fd)
			dup2(fd, i);
	if (fd > 2)
		close(fd);
}

static void mkdir_p(const char *path, mode_t mode)
{
	if (mkdir(path, mode) < 0 && errno != EEXIST)
		say("xsc-init: warning: mkdir %s: %s", path, strerror(errno));
}

static int do_mount(const char *src, const char *dst, const char *type,
		    unsigned long flags, const char *data, mode_t dirmode)
{
	mkdir_p(dst, dirmode);
	if (mount(src, dst, type, flags, data) < 0 && errno != EBUSY) {
		say("xsc-init: warning: mount %s on %s: %s", type, dst,
		    strerror(errno));
		return -1;
	}
	return 0;
}

static void setup_mounts(void)
{
	const unsigned long common = MS_NOSUID | MS_NODEV | MS_NOEXEC;

	if (do_mount("proc", "/proc", "proc", common, NULL, 0555) < 0) {
		say("xsc-init: error: cannot mount /proc, giving up");
		finish(1);
	}
	do_mount("sysfs", "/sys", "sysfs", common, NULL, 0555);
	do_mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755", 0755);
	ensure_stdio();
	do_mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777", 01777);
	do_mount("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755", 0755);
	/* Optional extra: POSIX shm for test programs; quiet if /dev is odd. */
	if (mkdir("/dev/shm", 01777) == 0 || errno == EEXIST)
		mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
}

static void on_sigchld(int sig)
{
	(void)sig; /* only here so that ppoll() returns EINTR */
}

static void setup_signals(void)
{
	static const int ignored[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT,
				       SIGUSR1, SIGUSR2, SIGPIPE, SIGTSTP,
				       SIGTTIN, SIGTTOU, SIGALRM, SIGPWR };
	struct sigaction sa;
	size_t i;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < sizeof(ignored) / sizeof(ignored[0]); i++)
		sigaction(ignored[i], &sa, NULL);

	sa.sa_handler = on_sigchld;
	sa.sa_flags = SA_NOCLDSTOP;
	sigaction(SIGCHLD, &sa, NULL);

	sigprocmask(SIG_SETMASK, NULL, &mask_orig);
	sigdelset(&mask_orig, SIGCHLD);
	mask_chld_blocked = mask_orig;
	sigaddset(&mask_chld_blocked, SIGCHLD);
	sigprocmask(SIG_SETMASK, &mask_chld_blocked, NULL);

	if (is_pid1)
		reboot(RB_DISABLE_CAD); /* Ctrl-Alt-Del -> SIGINT, ignored */
}

/* ------------------------------------------------------------------ */
/* plan                                                                 */

struct entry {
	char *name;
	unsigned long timeout_s;
	char **argv;       /* NULL-terminated; NULL if the line was invalid */
	const char *error; /* set for an invalid line */
};

static char *read_file(const char *path, size_t max, int *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	char *buf;
	size_t len = 0;

	if (fd < 0) {
		*err = errno;
		return NULL;
	}
	buf = malloc(max + 1);
	if (!buf) {
		*err = ENOMEM;
		close(fd);
		return NULL;
	}
	while (len < max) {
		ssize_t n = read(fd, buf + len, max - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			*err = errno;
			free(buf);
			close(fd);
			return NULL;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	return buf;
}

/* xsc.plan=PATH on the kernel command line overrides the plan path. */
static const char *plan_path_from_cmdline(void)
{
	static char path[PATH_MAX];
	int err;
	char *cmd = read_file("/proc/cmdline", 65536, &err);
	char *p, *tok, *save = NULL;

	if (!cmd)
		return NULL;
	p = NULL;
	for (tok = strtok_r(cmd, " \t\n", &save); tok;
	     tok = strtok_r(NULL, " \t\n", &save))
		if (strncmp(tok, "xsc.plan=", 9) == 0 && tok[9])
			p = tok + 9; /* last one wins */
	if (p)
		snprintf(path, sizeof(path), "%s", p);
	free(cmd);
	return p ? path : NULL;
}

static int valid_name(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (!(islower((unsigned char)*s) || isdigit((unsigned char)*s) ||
		      *s == '_' || *s == '-'))
			return 0;
	return 1;
}

/* Parse the plan in place.  Returns the number of entries. */
static size_t parse_plan(char *text, struct entry **out)
{
	size_t cap = 16, n = 0, lineno = 0;
	struct entry *ents = calloc(cap, sizeof(*ents));
	char *line = text;

	while (ents && line && *line) {
		char *next = strchr(line, '\n');
		char *fields[256];
		size_t nf = 0, i;
		char *f, *end;
		struct entry *e;

		if (next)
			*next++ = '\0';
		lineno++;
		if (*line && line[strlen(line) - 1] == '\r')
			line[strlen(line) - 1] = '\0';
		if (line[0] == '#' || line[strspn(line, " \t")] == '\0') {
			line = next;
			continue;
		}
		if (n == cap) {
			struct entry *t = realloc(ents, 2 * cap * sizeof(*ents));
			if (!t)
				break;
			ents = t;
			cap *= 2;
		}
		e = &ents[n++];
		memset(e, 0, sizeof(*e));
		for (f = line; f && nf < sizeof(fields) / sizeof(fields[0]) - 1;) {
			char *tab = strchr(f, '\t');
			if (tab)
				*tab++ = '\0';
			fields[nf++] = f;
			f = tab;
		}
		fields[nf] = NULL;

		if (valid_name(fields[0])) {
			e->name = fields[0];
		} else {
			if (asprintf(&e->name, "plan_line_%zu", lineno) < 0)
				e->name = "plan_line";
			e->error = "invalid NAME (want [a-z0-9_-]+)";
			line = next;
			continue;
		}
		if (nf < 3 || !*fields[2]) {
			e->error = "need NAME, TIMEOUT_SECONDS and ARGV0";
			line = next;
			continue;
		}
		errno = 0;
		e->timeout_s = strtoul(fields[1], &end, 10);
		if (errno || end == fields[1] || *end || fields[1][0] == '-') {
			e->error = "invalid TIMEOUT_SECONDS";
			line = next;
			continue;
		}
		e->argv = calloc(nf - 1, sizeof(char *));
		if (!e->argv) {
			e->error = "out of memory";
			line = next;
			continue;
		}
		for (i = 2; i < nf; i++)
			e->argv[i - 2] = fields[i];
		line = next;
	}
	*out = ents;
	return ents ? n : 0;
}

/* ------------------------------------------------------------------ */
/* running one entry                                                    */

struct linebuf {
	char buf[LINE_MAX_BYTES + 3]; /* "  " + line + "\n" */
	size_t len;                   /* bytes of line content, after the "  " */
};

static void lb_flush(struct linebuf *lb)
{
	lb->buf[0] = ' ';
	lb->buf[1] = ' ';
	lb->buf[2 + lb->len] = '\n';
	write_all(STDOUT_FILENO, lb->buf, lb->len + 3);
	lb->len = 0;
}

static void lb_feed(struct linebuf *lb, const char *data, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (data[i] == '\n') {
			lb_flush(lb);
			continue;
		}
		lb->buf[2 + lb->len++] = data[i];
		if (lb->len == LINE_MAX_BYTES)
			lb_flush(lb); /* overlong line: split it */
	}
}

/* Read what is available; returns 1 on EOF/error, 0 otherwise. */
static int pump(int fd, struct linebuf *lb)
{
	char chunk[4096];

	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n > 0) {
			lb_feed(lb, chunk, (size_t)n);
			continue;
		}
		if (n == 0)
			return 1;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN)
			return 0;
		return 1;
	}
}

/* Reap every zombie; remember the status of `pid` if it is among them. */
static void reap(pid_t pid, int *status, int *reaped)
{
	for (;;) {
		int st;
		pid_t r = waitpid(-1, &st, WNOHANG);
		if (r <= 0)
			return;
		if (r == pid) {
			*status = st;
			*reaped = 1;
		}
	}
}

static void __attribute__((noreturn)) child_exec(const struct entry *e, int wfd)
{
	struct sigaction sa;
	sigset_t none;
	int sig, fd;

	setsid();
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	for (sig = 1; sig < NSIG; sig++)
		sigaction(sig, &sa, NULL); /* errors for SIGKILL etc. are fine */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);

	fd = open("/dev/null", O_RDONLY);
	if (fd >= 0 && fd != STDIN_FILENO) {
		dup2(fd, STDIN_FILENO);
		close(fd);
	}
	dup2(wfd, STDOUT_FILENO);
	dup2(wfd, STDERR_FILENO);
	if (wfd > 2)
		close(wfd);
	if (chdir("/tmp") < 0 && chdir("/") < 0) {
		/* keep going */
	}
	clearenv();
	setenv("PATH", "/bin:/sbin:/xsc/bin", 1);
	setenv("HOME", "/", 1);
	setenv("TERM", "dumb", 1);
	if (strchr(e->argv[0], '/'))
		execv(e->argv[0], e->argv);
	else
		execvp(e->argv[0], e->argv);
	dprintf(STDOUT_FILENO, "xsc-init: exec %s: %s\n", e->argv[0],
		strerror(errno));
	_exit(127);
}

static const char *signame(int sig, char *buf, size_t len)
{
	const char *abbr = sigabbrev_np(sig);

	if (abbr)
		snprintf(buf, len, "SIG%s", abbr);
	else
		snprintf(buf, len, "SIG%d", sig);
	return buf;
}

enum result { R_PASS, R_FAIL, R_SKIP };

static enum result run_entry(size_t idx, const struct entry *e)
{
	int pfd[2], status = 0, reaped = 0, eof = 0, timed_out = 0;
	long long start, deadline = 0, drain_deadline = 0;
	struct linebuf *lb;
	char sbuf[32];
	pid_t pid;

	if (e->error) {
		say("# %s: bad plan line: %s", e->name, e->error);
		say("not ok %zu %s # bad plan line", idx, e->name);
		return R_FAIL;
	}
	/* Names the nested block before the program prints anything, so a run cut off
	 * mid-program (panic, hang) still attributes its unreported cases to NAME. */
	say("  # Subtest: %s", e->name);
	lb = calloc(1, sizeof(*lb));
	if (!lb || pipe2(pfd, O_CLOEXEC) < 0) {
		say("# %s: pipe: %s", e->name, strerror(errno));
		say("not ok %zu %s # xsc-init: pipe failed", idx, e->name);
		free(lb);
		return R_FAIL;
	}
	start = now_ms();
	pid = fork();
	if (pid < 0) {
		say("# %s: fork: %s", e->name, strerror(errno));
		say("not ok %zu %s # xsc-init: fork failed", idx, e->name);
		close(pfd[0]);
		close(pfd[1]);
		free(lb);
		return R_FAIL;
	}
	if (pid == 0)
		child_exec(e, pfd[1]);
	close(pfd[1]);
	fcntl(pfd[0], F_SETFL, fcntl(pfd[0], F_GETFL) | O_NONBLOCK);
	if (e->timeout_s)
		deadline = start + (long long)e->timeout_s * 1000;

	/*
	 * Loop until the child is reaped and its output pipe hit EOF.  Once
	 * the child itself has exited, its process group is killed and the
	 * pipe is drained for at most POST_EXIT_DRAIN_MS (a grandchild that
	 * escaped into its own session could otherwise hold it open forever).
	 */
	while (!(reaped && eof)) {
		struct pollfd pf = { .fd = pfd[0], .events = POLLIN };
		struct timespec ts, *tsp = NULL;
		long long limit = 0, now;
		int r;

		reap(pid, &status, &reaped);
		if (reaped && !drain_deadline) {
			kill(-pid, SIGKILL);
			drain_deadline = now_ms() + POST_EXIT_DRAIN_MS;
		}
		if (reaped && eof)
			break;
		now = now_ms();
		if (drain_deadline)
			limit = drain_deadline;
		else if (deadline)
			limit = deadline;
		if (limit) {
			if (now >= limit) {
				if (drain_deadline)
					break;
				timed_out = 1;
				break;
			}
			ts.tv_sec = (limit - now) / 1000;
			ts.tv_nsec = ((limit - now) % 1000) * 1000000;
			tsp = &ts;
		}
		r = ppoll(eof ? NULL : &pf, eof ? 0 : 1, tsp, &mask_orig);
		if (r < 0 && errno != EINTR) {
			say("# xsc-init: ppoll: %s", strerror(errno));
			break;
		}
		if (!eof && r > 0 && (pf.revents & (POLLIN | POLLHUP | POLLERR)))
			eof = pump(pfd[0], lb);
	}

	if (timed_out) {
		kill(-pid, SIGKILL);
		kill(pid, SIGKILL);
		while (!reaped) {
			int st;
			pid_t r = waitpid(pid, &st, 0);
			if (r == pid) {
				status = st;
				reaped = 1;
			} else if (r < 0 && errno != EINTR) {
				break;
			}
		}
	}
	if (!eof)
		pump(pfd[0], lb); /* whatever is already buffered */
	if (lb->len)
		lb_flush(lb); /* partial final line */
	close(pfd[0]);
	free(lb);
	reap_all_nohang();

	if (timed_out) {
		say("# %s: timeout elapsed=%lldms", e->name, now_ms() - start);
		say("not ok %zu %s # TIMEOUT after %lus", idx, e->name, e->timeout_s);
		return R_FAIL;
	}
	if (!reaped) {
		say("# %s: lost track of pid %d", e->name, (int)pid);
		say("not ok %zu %s # xsc-init: child not reaped", idx, e->name);
		return R_FAIL;
	}
	if (WIFEXITED(status)) {
		int code = WEXITSTATUS(status);
		say("# %s: exit=%d elapsed=%lldms", e->name, code, now_ms() - start);
		if (code == 0) {
			say("ok %zu %s", idx, e->name);
			return R_PASS;
		}
		if (code == 4) {
			say("ok %zu %s # SKIP exit 4", idx, e->name);
			return R_SKIP;
		}
		say("not ok %zu %s # exit=%d", idx, e->name, code);
		return R_FAIL;
	}
	if (WIFSIGNALED(status)) {
		int sig = WTERMSIG(status);
		say("# %s: signal=%d%s elapsed=%lldms", e->name, sig,
		    WCOREDUMP(status) ? " (core)" : "", now_ms() - start);
		say("not ok %zu %s # signal=%d (%s)", idx, e->name, sig,
		    signame(sig, sbuf, sizeof(sbuf)));
		return R_FAIL;
	}
	say("not ok %zu %s # unexpected wait status 0x%x", idx, e->name, status);
	return R_FAIL;
}

/* ------------------------------------------------------------------ */

int main(int argc, char **argv)
{
	const char *plan_path = DEFAULT_PLAN, *p;
	struct entry *ents = NULL;
	size_t n, i, pass = 0, fail = 0, skip = 0;
	char *plan;
	int err = 0;

	is_pid1 = (getpid() == 1);
	ensure_stdio();
	setup_signals();
	if (is_pid1) {
		umask(022);
		if (chdir("/") < 0) {
			/* ignore */
		}
		setup_mounts();
	} else if (argc > 1) {
		plan_path = argv[1];
	}
	say("xsc-init: ready");

	p = plan_path_from_cmdline();
	if (p && (is_pid1 || argc <= 1))
		plan_path = p;
	plan = read_file(plan_path, MAX_PLAN_BYTES, &err);
	if (!plan) {
		say("xsc-init: error: cannot read plan %s: %s", plan_path,
		    strerror(err));
		finish(1);
	}
	n = parse_plan(plan, &ents);

	say("KTAP version 1");
	say("1..%zu", n);
	for (i = 0; i < n; i++) {
		switch (run_entry(i + 1, &ents[i])) {
		case R_PASS: pass++; break;
		case R_SKIP: skip++; break;
		default:     fail++; break;
		}
	}
	say("# xsc-init: totals pass:%zu fail:%zu skip:%zu", pass, fail, skip);
	say("xsc-init: done");
	finish(fail ? 1 : 0);
}
