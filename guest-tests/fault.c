/*
 * fault: deliberate misbehaviour for the xsc-release harness's own tests.
 *
 *   fault pass            2 passing KTAP cases, exit 0
 *   fault fail            ok / not ok (with diagnostic) / ok, exit 1
 *   fault skip            1 ok + 1 SKIP, exit 0
 *   fault panic           "ok 1 before_panic", then sysrq 'c' -> kernel panic
 *   fault hang            KTAP header, then silence forever
 *   fault slow SECONDS    header, sleep SECONDS, "ok 1 slow"
 *   fault garbage         ~4 KiB of binary junk, newline, then valid KTAP
 *   fault segfault        "ok 1 before", then NULL dereference (SIGSEGV)
 *   fault flood N         N diagnostic lines, then one passing case
 *
 * "oops" (a non-fatal kernel WARN/oops) is deliberately not implemented:
 * without lkdtm (not built in Debian kernels) there is no reliable way to
 * trigger one from userspace.
 *
 * Build: gcc -static -O2 -Wall -Wextra -Werror -pthread -o fault fault.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void usage(void)
{
	fprintf(stderr,
		"usage: fault MODE [ARG]\n"
		"modes: pass | fail | skip | panic | hang | slow SECONDS |\n"
		"       garbage | segfault | flood N\n"
		"(oops is not supported: no reliable userspace WARN trigger)\n");
	exit(2);
}

static void header(int n)
{
	printf("KTAP version 1\n1..%d\n", n);
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

static int write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	int ret;

	if (fd < 0)
		return -1;
	ret = write_all(fd, s, strlen(s));
	if (close(fd) < 0)
		ret = -1;
	return ret;
}

static long parse_num(const char *s)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 0)
		usage();
	return v;
}

static int mode_panic(void)
{
	header(2);
	printf("ok 1 before_panic\n");
	fflush(stdout);
	if (write_file("/proc/sys/kernel/sysrq", "1") < 0) {
		printf("not ok 2 panic\n# panic: write /proc/sys/kernel/sysrq: %s\n",
		       strerror(errno));
		return 1;
	}
	sync();
	/* Our stdout is a pipe that PID 1 relays to the console: give it a moment to
	 * forward "ok 1" before the kernel stops, or the case is lost to a race. */
	usleep(500 * 1000);
	if (write_file("/proc/sysrq-trigger", "c") < 0) {
		printf("not ok 2 panic\n# panic: write /proc/sysrq-trigger: %s\n",
		       strerror(errno));
		return 1;
	}
	/* Only reached if the kernel did not crash. */
	sleep(5);
	printf("not ok 2 panic\n# panic: sysrq-trigger 'c' returned, no panic\n");
	return 1;
}

static int __attribute__((noreturn)) mode_hang(void)
{
	header(1);
	fflush(stdout);
	for (;;)
		pause();
}

static int mode_slow(long secs)
{
	struct timespec ts = { .tv_sec = secs, .tv_nsec = 0 };

	header(1);
	printf("# slow: sleeping %ld s\n", secs);
	fflush(stdout);
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
	printf("ok 1 slow\n");
	return 0;
}

static int mode_garbage(void)
{
	static const char *const specials[] = {
		"\x1b[2J", "\x1b[H", "\x1b]0;title\x07", "\x1b[31mred\x1b[0m",
		"\r", "\xc3\x28", "\xa0\xa1", "\xe2\x82", "\xf0\x28\x8c\xbc",
		"\xff\xfe", "\xed\xa0\x80", "]]>", "<tag>&", "&amp;<![CDATA[",
		"\"'\\", "\x7f\x08\x08",
	};
	char buf[4096];
	size_t len = 0, i;

	/* every byte value 0..255, twice */
	for (i = 0; i < 512; i++)
		buf[len++] = (char)(i & 0xff);
	/* escape sequences, invalid UTF-8, XML-hostile text */
	while (len < sizeof(buf) - 64) {
		for (i = 0; i < sizeof(specials) / sizeof(specials[0]) &&
			    len < sizeof(buf) - 64; i++) {
			size_t l = strlen(specials[i]);
			memcpy(buf + len, specials[i], l);
			len += l;
			/* and some pseudo-random bytes in between */
			buf[len] = (char)((len * 2654435761u) >> 13);
			len++;
			buf[len++] = '\0';
		}
	}
	memcpy(buf + len, "]]><tag>&\r", 10);
	len += 10;
	fflush(stdout);
	if (write_all(STDOUT_FILENO, buf, len) < 0 ||
	    write_all(STDOUT_FILENO, "\n", 1) < 0)
		return 1;
	header(2);
	printf("ok 1 after_garbage\nok 2 still_parsing\n");
	return 0;
}

static int mode_segfault(void)
{
	volatile int *volatile p = NULL;

	header(2);
	printf("ok 1 before\n");
	fflush(stdout);
	*p = 42;
	printf("not ok 2 segfault\n# segfault: NULL store did not fault\n");
	return 1;
}

static int mode_flood(long n)
{
	long k;

	header(1);
	for (k = 1; k <= n; k++)
		printf("# flood line %ld\n", k);
	printf("ok 1 flood\n");
	return 0;
}

int main(int argc, char **argv)
{
	const char *mode;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2)
		usage();
	mode = argv[1];

	if (!strcmp(mode, "pass") && argc == 2) {
		header(2);
		printf("ok 1 first\nok 2 second\n");
		return 0;
	}
	if (!strcmp(mode, "fail") && argc == 2) {
		header(3);
		printf("ok 1 first\n");
		printf("not ok 2 broken\n");
		printf("# broken: expected 42, got 41 (deliberate failure)\n");
		printf("ok 3 third\n");
		return 1;
	}
	if (!strcmp(mode, "skip") && argc == 2) {
		header(2);
		printf("ok 1 first\n");
		printf("ok 2 skipped # SKIP deliberately skipped\n");
		return 0;
	}
	if (!strcmp(mode, "panic") && argc == 2)
		return mode_panic();
	if (!strcmp(mode, "hang") && argc == 2)
		return mode_hang();
	if (!strcmp(mode, "slow") && argc == 3)
		return mode_slow(parse_num(argv[2]));
	if (!strcmp(mode, "garbage") && argc == 2)
		return mode_garbage();
	if (!strcmp(mode, "segfault") && argc == 2)
		return mode_segfault();
	if (!strcmp(mode, "flood") && argc == 3)
		return mode_flood(parse_num(argv[2]));
	usage();
}
