/*
 * disk_marker: the guest side of the harness's multi-phase scenario test
 * (tests/fixtures/scenarios-phases/disk-phases.toml). Each phase is a separate QEMU
 * process on the same qcow2 disk, so a marker one phase writes and a later phase reads
 * can only have come through that disk.
 *
 *   disk_marker blank DEV   the first sector is all zeros (a fresh disk)
 *   disk_marker write DEV   writes "XSC-PHASE-MARKER v1 token=<32 hex>" to sector 0, syncs
 *                           and reads it back; prints the token
 *   disk_marker check DEV   sector 0 holds a well-formed marker; prints its token
 *
 * Output is KTAP v1 (one case); exit 0 when it passed, 1 when not.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#define SECTOR 512
#define MAGIC "XSC-PHASE-MARKER v1 token="
#define TOKEN_HEX 32

static int result(const char *name, int ok, const char *why)
{
	if (!ok && why)
		printf("# %s\n", why);
	printf("%s 1 %s\n", ok ? "ok" : "not ok", name);
	fflush(stdout);
	return ok ? 0 : 1;
}

static int read_sector(const char *dev, unsigned char *buf)
{
	int fd = open(dev, O_RDONLY);
	if (fd < 0) {
		printf("# open %s: %s\n", dev, strerror(errno));
		return -1;
	}
	ssize_t n = pread(fd, buf, SECTOR, 0);
	close(fd);
	if (n != SECTOR) {
		printf("# read %s: %s\n", dev, n < 0 ? strerror(errno) : "short read");
		return -1;
	}
	return 0;
}

static int well_formed(const unsigned char *buf)
{
	if (memcmp(buf, MAGIC, strlen(MAGIC)) != 0)
		return 0;
	for (size_t i = 0; i < TOKEN_HEX; i++) {
		unsigned char c = buf[strlen(MAGIC) + i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return 0;
	}
	return 1;
}

int main(int argc, char **argv)
{
	unsigned char buf[SECTOR];
	printf("KTAP version 1\n1..1\n");
	if (argc != 3)
		return result("usage", 0, "usage: disk_marker blank|write|check DEV");
	const char *mode = argv[1], *dev = argv[2];

	if (strcmp(mode, "blank") == 0) {
		if (read_sector(dev, buf) != 0)
			return result("disk_is_blank", 0, "cannot read the disk");
		for (size_t i = 0; i < SECTOR; i++)
			if (buf[i] != 0)
				return result("disk_is_blank", 0, "sector 0 is not zero");
		return result("disk_is_blank", 1, NULL);
	}
	if (strcmp(mode, "write") == 0) {
		unsigned char rnd[TOKEN_HEX / 2];
		if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
			return result("marker_written", 0, "getrandom failed");
		memset(buf, 0, sizeof buf);
		int len = snprintf((char *)buf, sizeof buf, MAGIC);
		for (size_t i = 0; i < sizeof rnd; i++)
			len += snprintf((char *)buf + len, sizeof buf - len, "%02x", rnd[i]);
		buf[len] = '\n';
		int fd = open(dev, O_RDWR);
		if (fd < 0)
			return result("marker_written", 0, strerror(errno));
		if (pwrite(fd, buf, SECTOR, 0) != SECTOR || fsync(fd) != 0) {
			close(fd);
			return result("marker_written", 0, strerror(errno));
		}
		close(fd);
		unsigned char back[SECTOR];
		if (read_sector(dev, back) != 0 || memcmp(buf, back, SECTOR) != 0)
			return result("marker_written", 0, "read-back differs");
		printf("# token %.*s\n", TOKEN_HEX, (char *)buf + strlen(MAGIC));
		return result("marker_written", 1, NULL);
	}
	if (strcmp(mode, "check") == 0) {
		if (read_sector(dev, buf) != 0)
			return result("marker_seen", 0, "cannot read the disk");
		if (!well_formed(buf))
			return result("marker_seen", 0, "no marker in sector 0: the disk did not keep the earlier phase's write");
		printf("# token %.*s\n", TOKEN_HEX, (char *)buf + strlen(MAGIC));
		return result("marker_seen", 1, NULL);
	}
	return result("usage", 0, "unknown mode");
}
