/*
 * disk_marker: the guest side of the harness's multi-phase scenario test
 * (tests/fixtures/scenarios-phases/disk-phases.toml). Each phase is a separate QEMU
 * process on the same qcow2 disk, so a marker one phase writes and a later phase reads
 * can only have come through that disk.
 *
 *   disk_marker blank DEV   the first two sectors are all zeros (a fresh disk)
 *   disk_marker write DEV   writes "XSC-PHASE-MARKER v1 token=<32 hex>" to sector 1 and
 *                           a BIOS boot sector to sector 0, syncs and reads them back;
 *                           prints the token
 *   disk_marker check DEV   sector 1 holds a well-formed marker; prints its token
 *
 * The boot sector makes the disk bootable for a `boot = "disk"` phase (no kernel): it
 * reads sector 1 with int 13h and prints, on COM1, the harness's ready marker and one KTAP
 * case with the marker line as its diagnostic, then powers the machine off (ACPI S5 at
 * QEMU q35's PM1a_CNT, port 0x604). Its source, assembled with GNU as and ld:
 *   as --32 -o bs.o bs.S && ld -m elf_i386 -Ttext 0x7c00 --oformat binary -o bs.bin bs.o
 *
 *     .code16
 *     .globl _start
 * _start:
 *     cli
 *     xor %ax, %ax
 *     mov %ax, %ds
 *     mov %ax, %es
 *     mov %ax, %ss
 *     mov $0x7c00, %sp
 *     # sector 2 (LBA 1) of the boot drive (dl from the BIOS) to 0x7e00
 *     mov $0x0201, %ax
 *     mov $0x0002, %cx
 *     xor %dh, %dh
 *     mov $0x7e00, %bx
 *     int $0x13
 *     mov $head - _start + 0x7c00, %si
 *     call puts
 *     mov $0x7e00, %si
 *     call putline
 *     mov $tail - _start + 0x7c00, %si
 *     call puts
 *     # ACPI S5 on QEMU's q35 (PM1a_CNT at 0x604): power off
 *     mov $0x604, %dx
 *     mov $0x2000, %ax
 *     out %ax, %dx
 * 1:  hlt
 *     jmp 1b
 * puts:
 *     lodsb
 *     test %al, %al
 *     jz 2f
 *     mov $0x3f8, %dx
 *     out %al, %dx
 *     jmp puts
 * 2:  ret
 * # the marker line at si, up to its newline (at most 80 bytes), then a newline
 * putline:
 *     mov $80, %cx
 * 3:  lodsb
 *     cmp $0x0a, %al
 *     je 4f
 *     mov $0x3f8, %dx
 *     out %al, %dx
 *     loop 3b
 * 4:  mov $0x0a, %al
 *     mov $0x3f8, %dx
 *     out %al, %dx
 *     ret
 * head:
 *     .asciz "xsc-init: ready\nKTAP version 1\n1..1\n# "
 * tail:
 *     .asciz "ok 1 booted_from_disk\n"
 *     .org 510
 *     .byte 0x55, 0xaa
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

/* bs.bin above up to its last non-zero byte before the 0x55 0xaa signature. */
static const unsigned char boot_code[] = {
	0xfa, 0x31, 0xc0, 0x8e, 0xd8, 0x8e, 0xc0, 0x8e, 0xd0, 0xbc, 0x00, 0x7c,
	0xb8, 0x01, 0x02, 0xb9, 0x02, 0x00, 0x30, 0xf6, 0xbb, 0x00, 0x7e, 0xcd,
	0x13, 0xbe, 0x56, 0x7c, 0xe8, 0x16, 0x00, 0xbe, 0x00, 0x7e, 0xe8, 0x1c,
	0x00, 0xbe, 0x7d, 0x7c, 0xe8, 0x0a, 0x00, 0xba, 0x04, 0x06, 0xb8, 0x00,
	0x20, 0xef, 0xf4, 0xeb, 0xfd, 0xac, 0x84, 0xc0, 0x74, 0x06, 0xba, 0xf8,
	0x03, 0xee, 0xeb, 0xf5, 0xc3, 0xb9, 0x50, 0x00, 0xac, 0x3c, 0x0a, 0x74,
	0x06, 0xba, 0xf8, 0x03, 0xee, 0xe2, 0xf5, 0xb0, 0x0a, 0xba, 0xf8, 0x03,
	0xee, 0xc3, 0x78, 0x73, 0x63, 0x2d, 0x69, 0x6e, 0x69, 0x74, 0x3a, 0x20,
	0x72, 0x65, 0x61, 0x64, 0x79, 0x0a, 0x4b, 0x54, 0x41, 0x50, 0x20, 0x76,
	0x65, 0x72, 0x73, 0x69, 0x6f, 0x6e, 0x20, 0x31, 0x0a, 0x31, 0x2e, 0x2e,
	0x31, 0x0a, 0x23, 0x20, 0x00, 0x6f, 0x6b, 0x20, 0x31, 0x20, 0x62, 0x6f,
	0x6f, 0x74, 0x65, 0x64, 0x5f, 0x66, 0x72, 0x6f, 0x6d, 0x5f, 0x64, 0x69,
	0x73, 0x6b, 0x0a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
};

static int result(const char *name, int ok, const char *why)
{
	if (!ok && why)
		printf("# %s\n", why);
	printf("%s 1 %s\n", ok ? "ok" : "not ok", name);
	fflush(stdout);
	return ok ? 0 : 1;
}

static int read_sector(const char *dev, unsigned char *buf, off_t sector)
{
	int fd = open(dev, O_RDONLY);
	if (fd < 0) {
		printf("# open %s: %s\n", dev, strerror(errno));
		return -1;
	}
	ssize_t n = pread(fd, buf, SECTOR, sector * SECTOR);
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
		for (off_t sector = 0; sector < 2; sector++) {
			if (read_sector(dev, buf, sector) != 0)
				return result("disk_is_blank", 0, "cannot read the disk");
			for (size_t i = 0; i < SECTOR; i++)
				if (buf[i] != 0)
					return result("disk_is_blank", 0, "a sector is not zero");
		}
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
		unsigned char boot[SECTOR] = { 0 };
		memcpy(boot, boot_code, sizeof boot_code);
		boot[510] = 0x55;
		boot[511] = 0xaa;
		int fd = open(dev, O_RDWR);
		if (fd < 0)
			return result("marker_written", 0, strerror(errno));
		if (pwrite(fd, buf, SECTOR, SECTOR) != SECTOR ||
		    pwrite(fd, boot, SECTOR, 0) != SECTOR || fsync(fd) != 0) {
			close(fd);
			return result("marker_written", 0, strerror(errno));
		}
		close(fd);
		unsigned char back[SECTOR];
		if (read_sector(dev, back, 1) != 0 || memcmp(buf, back, SECTOR) != 0 ||
		    read_sector(dev, back, 0) != 0 || memcmp(boot, back, SECTOR) != 0)
			return result("marker_written", 0, "read-back differs");
		printf("# token %.*s\n", TOKEN_HEX, (char *)buf + strlen(MAGIC));
		return result("marker_written", 1, NULL);
	}
	if (strcmp(mode, "check") == 0) {
		if (read_sector(dev, buf, 1) != 0)
			return result("marker_seen", 0, "cannot read the disk");
		if (!well_formed(buf))
			return result("marker_seen", 0, "no marker in sector 1: the disk did not keep the earlier phase's write");
		printf("# token %.*s\n", TOKEN_HEX, (char *)buf + strlen(MAGIC));
		return result("marker_seen", 1, NULL);
	}
	return result("usage", 0, "unknown mode");
}
