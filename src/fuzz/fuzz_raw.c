/* fuzz_raw.c: Sqe._fuzz_prep_raw(), random SQE field values for the fuzzer
 * (tests/fuzz_raw.py).  Compiled in only with -DPU_FUZZ_RAW (the fuzz
 * build, build-fuzz/); the normal build has no such method.
 *
 * The fuzzer gives every field of the SQE.  Fields the kernel reads as a
 * pointer are never taken as given: they become an address inside a
 * scratch block the record owns (pu_rec_alloc, released only after the
 * final completion, like any op's memory), so whatever the kernel does with
 * a random value it reads and writes only the scratch.  The scratch:
 *
 *   [0, 8 KiB)       DATA: zeros.  Direct pointers land in its first 4 KiB
 *                    and every byte length that goes with them is at most
 *                    4 KiB, so a write through them stays in DATA.  Paths
 *                    read from here are "" (they fail with ENOENT).
 *   [8 KiB, 36 KiB)  META: 8-byte words, alternately a pointer into the
 *                    first 4 KiB of DATA and a length of at most 4 KiB.
 *                    Pointers to arrays of structs (iovecs, msghdrs,
 *                    futex_waitv) land 8-aligned in its first 4 KiB, so
 *                    every word the kernel can read as a nested pointer is
 *                    either into DATA or a small number below
 *                    mmap_min_addr (EFAULT), and an array of up to 1024
 *                    iovecs read from any such pointer ends inside META.
 *
 * fds are the fuzzer's business: it passes only fds it owns.  Opcodes whose
 * effect could leave the fuzzer's sandbox are refused (see excluded()). */
#include "ops/opdef.h"

#ifdef PU_FUZZ_RAW

#define DATA_SIZE 8192u
#define DATA_REACH 4096u    /* direct pointers land below this */
#define LEN_MAX 4096u       /* byte lengths paired with DATA pointers */
#define META_SIZE 28672u    /* 4 KiB of landing room + 1024 iovecs + slack */
#define META_REACH 4096u
#define SCRATCH_SIZE (DATA_SIZE + META_SIZE)
#define SMALL_MAX (1u << 20) /* fallocate: never grow the tmp file much */

enum field { V, D, M, S };   /* value, DATA ptr, META ptr, small value */

struct rawop {
    uint8_t known;
    uint8_t addr, off, addr3;
    uint16_t len_max;          /* 0: len as given; else len % (max + 1) */
};

/* How each opcode (kernel 6.18 numbering) reads addr, off (addr2) and
 * addr3, and how big len may be.  Unsure means D: confining a value field
 * only costs coverage, trusting a pointer field could corrupt the fuzzer. */
static const struct rawop rawops[] = {
    [IORING_OP_NOP] = {1, D, D, D, 0},
    [IORING_OP_READV] = {1, M, V, D, 1025},       /* 1025: > UIO_MAXIOV */
    [IORING_OP_WRITEV] = {1, M, V, D, 1025},
    [IORING_OP_FSYNC] = {1, D, V, D, 0},
    [IORING_OP_READ_FIXED] = {1, D, V, D, LEN_MAX},
    [IORING_OP_WRITE_FIXED] = {1, D, V, D, LEN_MAX},
    [IORING_OP_POLL_ADD] = {1, D, D, D, 0},
    [IORING_OP_POLL_REMOVE] = {1, V, V, D, 0},    /* addr: a user_data */
    [IORING_OP_SYNC_FILE_RANGE] = {1, D, V, D, 0},
    [IORING_OP_SENDMSG] = {1, M, D, D, 0},
    [IORING_OP_RECVMSG] = {1, M, D, D, 0},
    [IORING_OP_TIMEOUT] = {1, D, V, D, 0},        /* off: a count */
    [IORING_OP_TIMEOUT_REMOVE] = {1, V, D, D, 0},
    [IORING_OP_ACCEPT] = {1, D, D, D, 0},
    [IORING_OP_ASYNC_CANCEL] = {1, V, D, D, 0},
    [IORING_OP_LINK_TIMEOUT] = {1, D, V, D, 0},
    [IORING_OP_CONNECT] = {1, D, V, D, 0},        /* off: addrlen */
    [IORING_OP_FALLOCATE] = {1, S, S, D, 0},      /* addr: the length */
    [IORING_OP_OPENAT] = {1, D, D, D, 0},
    [IORING_OP_FILES_UPDATE] = {1, M, V, D, 1024},
    [IORING_OP_STATX] = {1, D, D, D, 0},
    [IORING_OP_READ] = {1, D, V, D, LEN_MAX},
    [IORING_OP_WRITE] = {1, D, V, D, LEN_MAX},
    [IORING_OP_FADVISE] = {1, D, V, D, 0},
    [IORING_OP_SEND] = {1, D, D, D, LEN_MAX},
    [IORING_OP_RECV] = {1, D, D, D, LEN_MAX},
    [IORING_OP_OPENAT2] = {1, D, D, D, LEN_MAX},
    [IORING_OP_EPOLL_CTL] = {1, D, V, D, 0},      /* off: the target fd */
    [IORING_OP_SPLICE] = {1, V, V, D, 0},         /* addr: off_in */
    [IORING_OP_REMOVE_BUFFERS] = {1, D, D, D, 0},
    [IORING_OP_TEE] = {1, D, D, D, 0},
    [IORING_OP_SHUTDOWN] = {1, D, D, D, 0},
    [IORING_OP_MSG_RING] = {1, V, V, V, 0},       /* no pointers */
    [IORING_OP_FSETXATTR] = {1, D, D, D, LEN_MAX},
    [IORING_OP_FGETXATTR] = {1, D, D, D, LEN_MAX},
    [IORING_OP_SEND_ZC] = {1, D, D, D, LEN_MAX},
    [IORING_OP_SENDMSG_ZC] = {1, M, D, D, 0},
    [49] = {1, D, V, D, LEN_MAX},                 /* READ_MULTISHOT */
    [51] = {1, D, V, V, 0},                       /* FUTEX_WAIT: val, mask */
    [52] = {1, D, V, V, 0},                       /* FUTEX_WAKE */
    [53] = {1, M, D, D, 128},                     /* FUTEX_WAITV */
    [55] = {1, D, V, D, 0},                       /* FTRUNCATE: sparse */
    [56] = {1, D, V, D, 0},                       /* BIND: off is addrlen */
    [57] = {1, D, D, D, 0},                       /* LISTEN */
    [59] = {1, D, D, D, 341},                     /* EPOLL_WAIT: 12 bytes
                                                     an event, <= 4 KiB */
    [60] = {1, M, V, D, 1025},                    /* READV_FIXED */
    [61] = {1, M, V, D, 1025},                    /* WRITEV_FIXED */
    [63] = {1, D, D, D, LEN_MAX},                 /* NOP128: EINVAL here */
};

/* Opcodes never prepared, and why:
 *   CLOSE (19)            closes an fd of the fuzzer's set; the number is
 *                         then reused by whatever the process opens next,
 *                         which later fuzzed ops would reach
 *   MADVISE (25)          as root the advice may be MADV_HWPOISON or
 *                         MADV_SOFT_OFFLINE: real pages, not the scratch
 *   PROVIDE_BUFFERS (31)  the kernel keeps the memory after the op
 *                         completes; the record's scratch is freed then
 *   RENAMEAT..LINKAT (35-39), SETXATTR (42), GETXATTR (44)
 *                         change or read the file system by name; the name
 *                         is always "" from DATA, but a mistake here must
 *                         never touch the host's files
 *   SOCKET (45), FIXED_FD_INSTALL (54), PIPE (62)
 *                         make fds outside the fuzzer's set
 *   URING_CMD (46), URING_CMD128 (64)
 *                         a driver-defined command with its own pointers
 *   WAITID (50)           reaps children of this process, not the fuzzer's
 *   RECV_ZC (58)          needs a registered zero-copy area; its fields
 *                         name memory this file cannot confine
 * Opcodes from 65 on are unknown to 6.18 (EINVAL before any field is
 * read); they are allowed with every field confined. */
static int
excluded(unsigned op)
{
    if (op >= sizeof(rawops) / sizeof(rawops[0]))
        return op > 255 || op < 65;
    return !rawops[op].known;
}

static __u64
confine(uint8_t kind, __u64 v, char *scratch)
{
    switch (kind) {
    case D:
        return (__u64)(uintptr_t)(scratch + v % DATA_REACH);
    case M:
        return (__u64)(uintptr_t)(scratch + DATA_SIZE + (v % META_REACH & ~(__u64)7));
    case S:
        return v % (SMALL_MAX + 1);
    default:
        return v;
    }
}

/* META: pointers into DATA and small lengths, from the fuzzer's seed. */
static void
fill_meta(char *scratch, __u64 seed)
{
    __u64 *w = (__u64 *)(void *)(scratch + DATA_SIZE);
    for (size_t i = 0; i < META_SIZE / 8; i++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        w[i] = (i % 2 == 0) ? (__u64)(uintptr_t)(scratch + (seed >> 33) % DATA_REACH)
                            : (seed >> 33) % (LEN_MAX + 1);
    }
}

enum { A_OPCODE, A_FLAGS, A_IOPRIO, A_FD, A_OFF, A_ADDR, A_LEN, A_OP_FLAGS,
       A_BUF_INDEX, A_PERSONALITY, A_SPLICE_FD_IN, A_ADDR3, A_SEED, A_N };

static int
raw_prep(SqeObject *rec, struct io_uring_sqe *sqe, PyObject *const *args,
         Py_ssize_t nargs, PyObject *kwnames)
{
    __u64 a[A_N];
    const struct rawop *op, unknown = {1, D, D, D, LEN_MAX};
    char *scratch;

    if (nargs != A_N || (kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 0)) {
        PyErr_Format(PyExc_TypeError, "_fuzz_prep_raw() takes %d positional "
                     "int arguments", A_N);
        return -1;
    }
    for (int i = 0; i < A_N; i++) {
        /* any int, truncated to 64 bits: the fuzzer picks the bits */
        a[i] = PyLong_AsUnsignedLongLongMask(args[i]);
        if (PyErr_Occurred())
            return -1;
    }
    if (excluded((unsigned)a[A_OPCODE])) {
        PyErr_Format(PyExc_ValueError, "_fuzz_prep_raw(): opcode %llu is "
                     "excluded", (unsigned long long)a[A_OPCODE]);
        return -1;
    }
    op = a[A_OPCODE] < sizeof(rawops) / sizeof(rawops[0]) ? &rawops[a[A_OPCODE]]
                                                         : &unknown;
    /* messages to our own ring would post completions with any user_data,
     * including a live record's: the fuzzer's fd set has no ring, and this
     * keeps it so */
    if (a[A_OPCODE] == IORING_OP_MSG_RING &&
        (int)a[A_FD] == rec->ring->ring.ring_fd) {
        PyErr_SetString(PyExc_ValueError, "_fuzz_prep_raw(): msg_ring to itself");
        return -1;
    }
    scratch = pu_rec_alloc(rec, SCRATCH_SIZE);
    if (scratch == NULL)
        return -1;
    fill_meta(scratch, a[A_SEED]);

    memset(sqe, 0, sizeof(*sqe));
    sqe->opcode = (__u8)a[A_OPCODE];
    sqe->flags = (__u8)a[A_FLAGS];
    sqe->ioprio = (__u16)a[A_IOPRIO];
    sqe->fd = (__s32)a[A_FD];
    sqe->off = confine(op->off, a[A_OFF], scratch);
    sqe->addr = confine(op->addr, a[A_ADDR], scratch);
    sqe->len = (__u32)a[A_LEN];
    if (op->len_max)
        sqe->len %= (__u32)op->len_max + 1;
    sqe->rw_flags = (__kernel_rwf_t)a[A_OP_FLAGS];
    sqe->buf_index = (__u16)a[A_BUF_INDEX];
    sqe->personality = (__u16)a[A_PERSONALITY];
    sqe->splice_fd_in = (__s32)a[A_SPLICE_FD_IN];
    sqe->addr3 = confine(op->addr3, a[A_ADDR3], scratch);
    /* a poll update may give the target another user_data: its completion
     * would then name no record, and its record would never end */
    if (sqe->opcode == IORING_OP_POLL_REMOVE)
        sqe->len &= ~(__u32)IORING_POLL_UPDATE_USER_DATA;
    return 0;
}

static const pu_opdef raw_opdef = {
    /* opcode NOP for the probe check: the real one is the fuzzer's and may
     * well be one the kernel lacks (an EINVAL completion) */
    .name = "_fuzz_prep_raw", .opcode = IORING_OP_NOP, .opcode_name = "raw",
    .prep = raw_prep, .async_mode = PU_ASYNC_NONE,
};

static PyObject *
Sqe_fuzz_prep_raw(SqeObject *self, PyObject *const *args, Py_ssize_t nargs,
                  PyObject *kwnames)
{
    return pu_sqe_prep(self, &raw_opdef, args, nargs, kwnames);
}

PyMethodDef pu_fuzz_raw_methods[] = {
    {"_fuzz_prep_raw", (PyCFunction)(void (*)(void))Sqe_fuzz_prep_raw,
     METH_FASTCALL | METH_KEYWORDS,
     "_fuzz_prep_raw(opcode, flags, ioprio, fd, off, addr, len, op_flags, "
     "buf_index, personality, splice_fd_in, addr3, seed)\n--\n\n"
     "Fuzz builds only: fill the entry with these field values, every "
     "pointer field confined to a scratch block the record owns."},
    {NULL, NULL, 0, NULL},
};

#else
/* the normal build: nothing (ISO C wants a declaration in every file) */
typedef int pu_fuzz_raw_absent;
#endif
