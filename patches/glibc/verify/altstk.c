/* sigaltstack carved from main's own frame (above the interrupted routed
   call): the handler's routed write must take the trap path (nested), the
   interrupted read must end with EINTR, and routing must go on.  Also a
   static (.bss) altstack.  KTAP-ish output.  */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>
#include <dirent.h>

static int hfd, hok;
static long long sub(int fd)
{
	char p[64], b[1024];
	snprintf(p, sizeof p, "/proc/self/fdinfo/%d", fd);
	int f = syscall(SYS_open, p, O_RDONLY);
	long n = syscall(SYS_read, f, b, sizeof b - 1);
	syscall(SYS_close, f);
	if (n <= 0) return -1;
	b[n] = 0;
	char *s = strstr(b, "xsc-submitted:");
	return s ? atoll(s + 14) : -1;
}
static int ringfd(void)
{
	char p[64], t[64];
	for (int fd = 0; fd < 1024; fd++) {
		snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
		ssize_t n = readlink(p, t, sizeof t - 1);
		if (n > 0) { t[n] = 0; if (!strcmp(t, "/dev/xsc")) return fd; }
	}
	return -1;
}
static void h(int sig) { (void)sig; hok = write(hfd, "h", 1) == 1; }
static char bss_alt[65536];

static int __attribute__((noinline)) deep_read(int fd, char *b)
{
	volatile char pad[4096]; pad[0] = 0; (void)pad;
	struct itimerval it = { .it_value = { 0, 100000 } };
	setitimer(ITIMER_REAL, &it, NULL);
	errno = 0;
	return read(fd, b, 1);
}

static int run(const char *name, void *alt)
{
	int p[2], q[2], fails = 0;
	char b[8];
	stack_t ss = { .ss_sp = alt, .ss_size = 65536 };
	if (sigaltstack(&ss, NULL)) { perror("sigaltstack"); return 1; }
	struct sigaction sa = { .sa_handler = h, .sa_flags = SA_ONSTACK };
	sigaction(SIGALRM, &sa, NULL);
	if (pipe(p) || pipe(q)) return 1;
	hfd = q[1]; hok = 0;
	int r = ringfd();
	long long s0 = sub(r);
	int rr = deep_read(p[0], b);
	int e = errno;
	long long s1 = sub(r);
	/* only the interrupted read is on the ring; the handler's write trapped */
	if (!(rr == -1 && e == EINTR && hok == 1 && s1 - s0 == 1)) {
		printf("# %s: read %d errno %d hok %d ring %+lld\n", name, rr, e, hok, s1 - s0); fails++;
	}
	if (!(syscall(SYS_read, q[0], b, 8) == 1 && b[0] == 'h')) { printf("# %s: handler data\n", name); fails++; }
	if (!(write(p[1], "ok", 2) == 2 && read(p[0], b, 8) == 2 && ringfd() == r && sub(r) - s1 == 2)) {
		printf("# %s: routing after: ring %d->%d sub %+lld\n", name, r, ringfd(), sub(r) - s1); fails++;
	}
	static int n; printf("# altstack at %p, read frame near %p\n%s %d %s\n", alt, (void *)&b, fails ? "not ok" : "ok", ++n, name); fflush(stdout);
	close(p[0]); close(p[1]); close(q[0]); close(q[1]);
	return fails;
}

int main(void)
{
	char frame_alt[65536 + 64];
	int f = 0;
	if (!getenv("GLIBC_TUNABLES")) {
		setenv("GLIBC_TUNABLES", "glibc.xsc.enable=1", 1);
		char *av[] = { "altstk", NULL };
		execv("/proc/self/exe", av);
		return 1;
	}
	printf("KTAP version 1\n1..2\n");
	fflush(stdout);
	if (write(1, "", 0) != 0) return 1;	/* sets up the ring */
	if (ringfd() < 0) { printf("not ok no ring (tunable?)\n"); return 1; }
	f += run("altstack_in_main_frame", frame_alt);
	f += run("altstack_in_bss", bss_alt);
	printf("# altstk: %s\n", f ? "FAIL" : "PASS");
	return f != 0;
}
