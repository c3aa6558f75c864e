/* Copy of include/uapi/linux/xsc.h from patches/kernel/0002-xsc-add-uapi-headers.patch
 * (XSC ABI v1, frozen) for building the guest tests without XSC kernel headers. */
/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * XSC (eXtended SysCall) ring interface, ABI version 1.
 *
 * /dev/xsc: one open file is one ring context.  User space submits
 * system calls as 64-byte SQEs into a shared submission queue, issues one
 * ioctl(XSC_IOC_ENTER) per batch and reaps 32-byte CQEs from the shared
 * completion queue.  The kernel runs each SQE in the calling task's own
 * context with the caller's credentials, in submission order.
 *
 * This ABI is frozen: fields may only be given a meaning where they are
 * reserved (must be zero) today, announced by a new XSC_FEAT_* bit.
 */
#ifndef _UAPI_LINUX_XSC_H
#define _UAPI_LINUX_XSC_H

#include <linux/types.h>
#include <linux/ioctl.h>

#define XSC_ABI_VERSION		1

#define XSC_MAX_SQ_ENTRIES	4096
#define XSC_MAX_CQ_ENTRIES	8192

/*
 * Opcodes 0 .. XSC_NR_LIMIT-1 are native x86_64 system call numbers
 * (asm/unistd_64.h).  An opcode is accepted only if XSC_IOC_PROBE
 * reports it; any other opcode completes with res = -EINVAL.
 * Meta opcodes start at 0x8000.
 */
#define XSC_NR_LIMIT		512
#define XSC_OP_NOP		0x8000	/* completes with res = 0 */

/* Submission queue entry: 64 bytes, one cache line. */
struct xsc_sqe {
	__u16	opcode;
	__u16	flags;		/* must be 0 */
	__u32	__resv0;	/* must be 0 */
	__u64	user_data;	/* echoed in the CQE */
	__u64	args[6];	/* syscall arguments in rdi, rsi, rdx, r10, r8, r9 order */
};

/* Completion queue entry: 32 bytes. */
struct xsc_cqe {
	__u64	user_data;	/* copied from the SQE */
	__s64	res;		/* syscall return value or -errno (64-bit) */
	__u16	opcode;		/* copied from the SQE */
	__u16	__resv0;
	__u32	flags;		/* 0 in ABI v1 */
	__u64	__resv1;
};

/*
 * Ring header, at offset 0 of the mapping (128 bytes, page-aligned).
 * K = written by the kernel, U = written by user space, RO = set once by
 * XSC_IOC_SETUP.  The kernel keeps private copies of every K and RO value
 * and only ever *reads* sq_tail and cq_head from this page.
 */
struct xsc_ring_hdr {
	__u32	sq_head;	/* K: next SQE the kernel will consume */
	__u32	sq_tail;	/* U: one past the last SQE produced */
	__u32	sq_mask;	/* RO: sq_entries - 1 */
	__u32	sq_entries;	/* RO */
	__u32	sq_flags;	/* K: 0 in ABI v1 */
	__u32	__sq_resv[11];
	__u32	cq_head;	/* U: next CQE user space will reap */
	__u32	cq_tail;	/* K: one past the last CQE posted */
	__u32	cq_mask;	/* RO: cq_entries - 1 */
	__u32	cq_entries;	/* RO */
	__u32	cq_full;	/* K: number of ENTER calls stalled on a full CQ (wraps) */
	__u32	cq_flags;	/* K: 0 in ABI v1 */
	__u32	__cq_resv[10];
};

/* xsc_setup.features / xsc_probe.features */
#define XSC_FEAT_TRAP_GUARD	(1U << 0)	/* XSC_IOC_GUARD is available */
#define XSC_FEAT_SQPOLL		(1U << 1)	/* reserved, never set in ABI v1 */
#define XSC_FEAT_DEBUG		(1U << 2)	/* kernel built with CONFIG_XSC_DEBUG */
#define XSC_FEAT_SECCOMP	(1U << 3)	/* XSC_SETUP_SECCOMP is available */
#define XSC_FEAT_RESTART	(1U << 4)	/* XSC_SETUP_RESTART (ABI v2) is available */

/*
 * xsc_setup.flags.  Bit 0 is reserved (SQPOLL, not implemented).
 * XSC_SETUP_SECCOMP: the ring may be set up and entered by a task under
 * seccomp; each op is then run through the task's filters as if it were
 * the syscall (nr = opcode, arch = AUDIT_ARCH_X86_64, the ENTER's
 * instruction pointer, the SQE's args).  Without it, seccomp'd tasks get
 * -EPERM from SETUP and ENTER (ABI v1 behaviour).
 */
#define XSC_SETUP_SECCOMP	(1U << 1)
/*
 * XSC_SETUP_RESTART: ABI v2 ring (SETUP reports abi_version 2).  An op
 * interrupted with a restartable code gets no CQE and stays queued; ENTER
 * writes the remaining count back into xsc_enter.to_submit and returns the
 * restart code, so the signal path restarts ENTER (no handler, SIGSTOP,
 * ptrace, freezer, SA_RESTART) or ENTER fails with EINTR, as a syscall
 * would.  See patches/kernel/README.md.
 */
#define XSC_SETUP_RESTART	(1U << 2)
#define XSC_ABI_VERSION_RESTART	2

/* XSC_IOC_SETUP argument: 64 bytes. */
struct xsc_setup {
	__u32	sq_entries;	/* in: 1..4096, rounded up to 2^n; out: actual */
	__u32	cq_entries;	/* in: 0 => 2 * sq; else sq..8192, rounded up to 2^n; out */
	__u32	flags;		/* in: 0 or XSC_SETUP_SECCOMP | XSC_SETUP_RESTART */
	__u32	features;	/* out: XSC_FEAT_* */
	__u32	abi_version;	/* out: XSC_ABI_VERSION */
	__u32	sqes_off;	/* out: offset of the SQE array (= page size) */
	__u32	cqes_off;	/* out: sqes_off + PAGE_ALIGN(sq_entries * 64) */
	__u32	__resv0;	/* must be 0 */
	__u64	ring_size;	/* out: cqes_off + PAGE_ALIGN(cq_entries * 32) */
	__u64	__resv1[3];	/* must be 0 */
};

/* XSC_IOC_ENTER argument: 32 bytes. */
struct xsc_enter {
	__u32	to_submit;	/* maximum number of SQEs to consume */
	__u32	flags;		/* must be 0 in ABI v1 */
	__u64	__resv[3];	/* must be 0 */
};

/* XSC_IOC_GUARD argument: 16 bytes. */
#define XSC_GUARD_ERRNO		1	/* guarded syscalls fail with -EPERM */
#define XSC_GUARD_SIGSYS	2	/* guarded syscalls raise SIGSYS (si_code SYS_SECCOMP) */
struct xsc_guard {
	__u32	mode;		/* XSC_GUARD_ERRNO or XSC_GUARD_SIGSYS */
	__u32	__resv0;	/* must be 0 */
	__u64	__resv1;	/* must be 0 */
};
/* si_errno of the SIGSYS raised by the trap guard (seccomp uses RET_DATA) */
#define XSC_GUARD_SIGSYS_ERRNO	1	/* == EPERM */

/* XSC_IOC_PROBE result: 80 bytes. */
struct xsc_probe {
	__u32	abi_version;	/* XSC_ABI_VERSION */
	__u32	features;	/* XSC_FEAT_* */
	__u32	nr_limit;	/* XSC_NR_LIMIT */
	__u32	nr_ops;		/* number of bits set in ops[] */
	__u64	ops[XSC_NR_LIMIT / 64];	/* bit n set => opcode n accepted */
};

#define XSC_IOC_MAGIC	'x'
#define XSC_IOC_SETUP	_IOWR(XSC_IOC_MAGIC, 0x01, struct xsc_setup)	/* 0xc0407801 */
#define XSC_IOC_ENTER	_IOW(XSC_IOC_MAGIC, 0x02, struct xsc_enter)	/* 0x40207802 */
#define XSC_IOC_GUARD	_IOW(XSC_IOC_MAGIC, 0x03, struct xsc_guard)	/* 0x40107803 */
#define XSC_IOC_PROBE	_IOR(XSC_IOC_MAGIC, 0x04, struct xsc_probe)	/* 0x80507804 */

/* mmap offset of the ring (header + SQE array + CQE array, MAP_SHARED) */
#define XSC_OFF_RING	0ULL

/*
 * Audit record type of one ring op (netlink audit message type), emitted
 * while audit is enabled.  XSC's own number, not io_uring's URINGOP (1336);
 * chosen high in the 1300-1399 event block, away from where upstream
 * allocates sequentially.  Body:
 *   op=<opcode> a0=<hex> a1=<hex> a2=<hex> a3=<hex> res=<dec> <task info>
 */
#define XSC_AUDIT_OP	1390

#endif /* _UAPI_LINUX_XSC_H */
