/* py_io_uring.h: the runtime's types and the interface between the
 * hand-written runtime (src/) and the code generated from ops.def. */
#ifndef PY_IO_URING_H
#define PY_IO_URING_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <liburing.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#define PU_VERSION "0.1.0"

struct pu_opdef;

/* ---------------------------------------------------------------- records
 *
 * Every operation has a record: the Sqe object itself.  From get_sqe()
 * until its final completion has been reaped the ring's slot table holds a
 * strong reference to it, so everything the kernel may read or write (the
 * pinned buffers, the timespec, the sockaddr, the path) lives in memory the
 * kernel owns a claim on, whatever the user drops.  The SQE's user_data is
 * (generation << 32 | slot), never a pointer: a stale cancel names a slot
 * whose generation moved on, and the kernel answers -ENOENT.
 */
enum pu_state {
    PU_NEW,        /* acquired: the SQE is a NOP carrying our user_data */
    PU_PREPARED,   /* a prep_* method filled the SQE */
    PU_SUBMITTED,  /* handed to the kernel; the SQE is no longer ours */
    PU_DONE,       /* final completion reaped; resources released */
    PU_PREPARING,  /* in a prep_* method: converters may run Python code */
};

#define PU_INLINE_PINS 2
#define PU_MAX_KEEP 4

/* memory the record owns until it is released (iovec arrays, msghdrs,
 * struct open_how, ...): a chain of blocks, freed together */
typedef struct pu_block {
    struct pu_block *next;
    /* the block's memory follows, aligned for any type */
} pu_block;

/* a pinned buffer beyond the inline ones, itself in a record block */
typedef struct pu_pin {
    struct pu_pin *next;
    Py_buffer view;
} pu_pin;

typedef struct SqeObject {
    PyObject_HEAD
    struct RingObject *ring;        /* strong */
    struct io_uring_sqe *sqe;       /* only while PU_NEW / PU_PREPARED */
    const struct pu_opdef *op;      /* the op prepared, NULL for the NOP */
    PyObject *data;                 /* set_data() */
    PyObject *result;               /* bytes the module allocated for output */
    pu_block *blocks;               /* owned memory (pu_rec_alloc) */
    pu_pin *pins;                   /* pinned buffers past the inline ones */
    void *op_state;                 /* a struct the op's result maker reads
                                       (in blocks; kept until the Sqe goes) */
    __u64 user_data;
    uint32_t life;                  /* the ring's life when acquired */
    uint8_t state;
    uint8_t nbufs;                  /* inline pins in use */
    uint8_t nkeep;
    uint8_t has_peer;               /* an accept wrote peer/peerlen */
    uint8_t leaked;                 /* teardown could not drain: never free */
    uint8_t sqe_flags;              /* IOSQE_* from set_flags() */
    uint16_t personality;
    uint16_t buf_group;
    __u64 chain_prev;               /* user_data of the linked entry before
                                       this one when that one skips its
                                       successful completion, else 0 */
    __u64 chain_next;               /* user_data of the next entry of its
                                       link chain, else 0 */
    uint8_t chain_broken;           /* an earlier entry of its chain failed:
                                       the kernel cancels this one and posts
                                       its completion whatever its flags */
    uint8_t hide_success;           /* IOSQE_CQE_SKIP_SUCCESS asked for but
                                       not given to the kernel (ring.c,
                                       prepare_chains): the reap drops a
                                       completion that did not fail */
    uint8_t op_flags;               /* IOSQE_* the op's prep set itself */
    uint32_t chain_min;             /* linked: a result below this fails the
                                       chain as an error does (a short read,
                                       write, splice, or MSG_WAITALL
                                       transfer); 0 when none can */
    uint8_t flushed_flags;          /* the SQE's flags as submitted */
    socklen_t peerlen;
    /* AsyncRing (src/async_ring.c): who is told of the completion */
    PyObject *waiter;               /* the future (strong), or the multishot
                                       iterator (borrowed, PU_AIO_ITER) */
    PyObject *waiter_cb;            /* the future's done callback (strong) */
    int32_t aio_res;                /* a first completion's res, kept when a
                                       later one ends the op (send_zc) */
    uint16_t aio;                   /* PU_AIO_* */
    PyObject *weakreflist;
    /* Everything above is touched by every op (made, prepared, reaped,
     * recycled) and fits in three cache lines; what follows only by the
     * ops that use it. */
    PyObject *keep[PU_MAX_KEEP];    /* objects the kernel reads (paths) */
    Py_buffer bufs[PU_INLINE_PINS]; /* pinned with the buffer protocol */
    struct __kernel_timespec ts;
    struct sockaddr_storage addr;   /* connect target or accept peer */
} SqeObject;

/* SqeObject.aio bits */
#define PU_AIO_ITER      0x01       /* waiter is a borrowed iterator */
#define PU_AIO_STASHED   0x02       /* aio_res holds the first result */
#define PU_AIO_FD        0x04       /* a result holds new fds (ops.def `fd`) */
#define PU_AIO_PEER      0x08       /* result is (fd, peer address) */
#define PU_AIO_NONE      0x10       /* the future's result is None */
#define PU_AIO_SOCKET    0x20       /* (socket.socket, address): sock_accept */
#define PU_AIO_SENDALL   0x40       /* data holds (fd, data, flags, offset) */

typedef struct CqeObject {
    PyObject_HEAD
    SqeObject *sqe;                 /* strong: user data, address; NULL for
                                       a message from another ring */
    const void *ring_id;            /* the reaping ring, compared only */
    PyObject *result;               /* per-completion result (bytes) */
    __u64 user_data;
    int32_t res;
    uint32_t flags;
} CqeObject;

/* Records kept for reuse per ring (pu_record_recycle).  0 under
 * AddressSanitizer, which must see a record used after its end. */
#ifdef __SANITIZE_ADDRESS__
#define PU_RECORD_POOL 0
#else
#define PU_RECORD_POOL 128
#endif

typedef struct RingObject {
    PyObject_HEAD
    struct io_uring ring;
    uint8_t initialised;
    uint8_t closing;                /* PU_CLOSING_*: refuse every call */
    uint8_t wait_combined;          /* waits left that submit and wait in
                                       one call: pu_ring_flush() */
    unsigned fork_generation;
    uint32_t life;                  /* queue_init() count: slot generations
                                       restart with each life */
    unsigned features;
    unsigned setup_flags;
    unsigned sq_entries;
    uint8_t supported[256 / 8];     /* the kernel's probe, one bit per opcode */
    /* the slot table: records from get_sqe() until their final completion */
    SqeObject **slots;
    uint32_t *slot_gen;
    uint32_t *free_slots;
    uint32_t nslots, nfree;
    Py_ssize_t nrecords;            /* records in the table */
    Py_ssize_t nhidden;             /* of those, with hide_success: their
                                       completions in the CQ may not count */
    /* records whose operation ended while nothing but the table held
     * them, kept for reuse (pu_record_recycle) */
    SqeObject *pool[PU_RECORD_POOL + 1];
    unsigned npool;
    /* records acquired since the last submit, in SQ order */
    SqeObject **pending;
    unsigned npending;
    /* registrations (src/register.c) */
    Py_buffer *reg_bufs;
    unsigned nreg_bufs;
    struct pu_bufring *bufrings;
    struct pu_provided *provided;   /* provide_buffers() memory the kernel
                                       holds, oldest first (register.c) */
    /* completions reaped from the kernel and not yet marked seen */
    CqeObject **cq;
    Py_ssize_t cq_start, cq_end, cq_cap;
    struct AsyncRingObject *owner;  /* the AsyncRing driving this ring, or
                                       NULL; borrowed, cleared by its dealloc */
    /* The threading model (docs/design.md, "Threads and signals"): each
     * side of the ring has at most one user at a time, as liburing
     * assumes.  A side is held, by the thread's ident, while a call runs
     * without the GIL (in io_uring_enter) or runs Python code in the
     * middle of changing that side (finalizers while reaping).  Holders
     * save and restore the previous owner, so nested holds compose and
     * no call clears a hold it did not take. */
    unsigned long sq_owner;         /* 0: free */
    unsigned long cq_owner;
    /* Calls in progress that use the ring again after running Python code
     * (signal handlers, finalizers) or after a wait: queue_exit() asked
     * while one runs is deferred to the end of the last (PU_CLOSING_DEFERRED),
     * never run under it. */
    unsigned ncalls;
    PyObject *weakreflist;
} RingObject;

/* RingObject.closing */
#define PU_CLOSING_NOW 0x01         /* pu_ring_teardown() is running */
#define PU_CLOSING_DEFERRED 0x02    /* queue_exit() waits for ncalls == 0 */

/* A record's user_data is PU_UD_TAG | generation << 32 | slot.  The top
 * bit is the library's: prep_msg_ring() refuses to post it, so a message
 * from another ring can never name, and end, a live record (msg_ring's
 * user_data is whatever the sender chose).  user_data whose low half is all
 * ones belongs to the runtime itself. */
#define PU_UD_TAG ((__u64)1 << 63)
#define PU_GEN_MASK 0x7fffffffu     /* generations: 31 bits under the tag */
#define PU_SLOT_INTERNAL 0xffffffffu
#define PU_UD_INTERNAL ((__u64)0xfffffffeffffffffULL)
#define PU_UD_STALE ((__u64)0xfffffffdffffffffULL)  /* matches nothing */
#define PU_UD_SLOT(ud) ((uint32_t)((ud) & 0xffffffffu))
#define PU_UD_GEN(ud) ((uint32_t)((ud) >> 32) & PU_GEN_MASK)

extern PyTypeObject pu_RingType;
extern PyTypeObject pu_SqeType;
extern PyTypeObject pu_CqeType;
extern PyObject *pu_SubmissionQueueFull;
extern volatile unsigned pu_fork_generation;

/* ---------------------------------------------------------------- op table
 *
 * One entry per operation, generated from ops.def (build/gen/ops_gen.c). */
typedef int (*pu_prep_fn)(SqeObject *rec, struct io_uring_sqe *sqe,
                          PyObject *const *args, Py_ssize_t nargs,
                          PyObject *kwnames);

/* A Cqe's result in Python's terms, made when getresult() asks (res >= 0):
 * statx's stat_result, recvmsg's tuple, pipe's pair of fds. */
typedef PyObject *(*pu_result_fn)(struct CqeObject *q);

typedef struct pu_opdef {
    const char *name;               /* "read": Sqe.prep_read */
    int opcode;                     /* for the probe */
    const char *opcode_name;        /* "IORING_OP_READ", for messages */
    pu_prep_fn prep;
    pu_result_fn result;            /* NULL: bytes read, or the int res */
    uint8_t async_mode;             /* PU_ASYNC_AWAIT / _ITER / _NONE */
    uint8_t async_flags;            /* PU_ASYNC_FD | PU_ASYNC_PEER */
} pu_opdef;

enum { PU_ASYNC_NONE, PU_ASYNC_AWAIT, PU_ASYNC_ITER };
#define PU_ASYNC_FD 0x01            /* ops.def `async ... fd` */
#define PU_ASYNC_PEER 0x02          /* ops.def `async ... peer` */

#define PU_SUPPORTED(r, op) (((r)->supported[(op) / 8] >> ((op) % 8)) & 1)

extern const pu_opdef pu_opdefs[];
extern const int pu_nopdefs;
extern const char *const pu_op_kernels[];   /* "5.6": the Linux that added it */
extern PyMethodDef pu_generated_sqe_methods[];
extern PyMethodDef pu_generated_async_methods[];
extern PyMethodDef pu_generated_ring_methods[];
int pu_add_generated_constants(PyObject *module);
int pu_add_info(PyObject *module);  /* src/info.c */

/* ---------------------------------------------------------------- arguments
 *
 * The converters: one C function per argument kind of gen/kinds.py.  Each
 * returns 0 or -1 with an exception set.  Converters that pin something put
 * it in the record, which releases it at the final completion (or at once
 * when the prep fails). */
typedef struct pu_argspec {
    const char *fname;              /* "prep_read" */
    const char *const *kwlist;      /* NULL-terminated argument names */
    Py_ssize_t nreq, nmax;
    Py_ssize_t kwonly;              /* the last kwonly names are keyword-only */
} pu_argspec;

int pu_parse_args_full(const pu_argspec *sp, PyObject *const *args,
                       Py_ssize_t nargs, PyObject *kwnames, PyObject **out);

/* Fill out[0..nmax) from a vectorcall's arguments (NULL: not given).  The
 * usual call, positional arguments only with every required one given, is
 * handled inline; keywords and errors in args.c. */
static inline int
pu_parse_args(const pu_argspec *sp, PyObject *const *args, Py_ssize_t nargs,
              PyObject *kwnames, PyObject **out)
{
    Py_ssize_t i;

    if (kwnames != NULL || nargs < sp->nreq || nargs > sp->nmax - sp->kwonly)
        return pu_parse_args_full(sp, args, nargs, kwnames, out);
    for (i = 0; i < nargs; i++)
        out[i] = args[i];
    for (; i < sp->nmax; i++)
        out[i] = NULL;
    return 0;
}

int pu_conv_fd(const pu_argspec *sp, int i, PyObject *o, int *out);
int pu_conv_dirfd(const pu_argspec *sp, int i, PyObject *o, int *out);
int pu_conv_u32(const pu_argspec *sp, int i, PyObject *o, unsigned *out);
int pu_conv_i32(const pu_argspec *sp, int i, PyObject *o, int *out);
int pu_conv_u64(const pu_argspec *sp, int i, PyObject *o, __u64 *out);
int pu_conv_msg_data(const pu_argspec *sp, int i, PyObject *o, __u64 *out);
int pu_conv_offset(const pu_argspec *sp, int i, PyObject *o, __u64 *out);
int pu_conv_buffer_in(const pu_argspec *sp, int i, SqeObject *rec,
                      PyObject *o, const void **buf, unsigned *len);
int pu_conv_buffer_out(const pu_argspec *sp, int i, SqeObject *rec,
                       PyObject *o, void **buf, unsigned *len);
int pu_conv_path(const pu_argspec *sp, int i, SqeObject *rec, PyObject *o,
                 const char **out);
int pu_conv_timespec(const pu_argspec *sp, int i, SqeObject *rec,
                     PyObject *o, struct __kernel_timespec **out);
int pu_conv_target(const pu_argspec *sp, int i, SqeObject *rec, PyObject *o,
                   __u64 *out);
int pu_conv_sockaddr(const pu_argspec *sp, int i, SqeObject *rec,
                     PyObject *o, int fd, const struct sockaddr **out,
                     socklen_t *outlen);

int pu_conv_iovecs_in(const pu_argspec *sp, int i, SqeObject *rec,
                      PyObject *o, struct iovec **out, unsigned *count);
int pu_conv_iovecs_out(const pu_argspec *sp, int i, SqeObject *rec,
                       PyObject *o, struct iovec **out, unsigned *count);
int pu_conv_provided(const pu_argspec *sp, int i, SqeObject *rec, PyObject *o,
                     void **buf, unsigned *len);
int pu_conv_fd_list(const pu_argspec *sp, int i, SqeObject *rec, PyObject *o,
                    int **out, unsigned *count);
int pu_conv_sockaddr_opt(const pu_argspec *sp, int i, SqeObject *rec,
                         PyObject *o, int fd, const struct sockaddr **out,
                         socklen_t *outlen);
int pu_conv_pages(const pu_argspec *sp, int i, SqeObject *rec, PyObject *o,
                  void **buf, unsigned *len);
int pu_conv_futex(const pu_argspec *sp, int i, SqeObject *rec, PyObject *o,
                  const void **buf, unsigned *len);
int pu_check_futex(const pu_argspec *sp, int i, const void *buf, unsigned len,
                   unsigned flags);

/* Helpers of the converters, for the hand-written ones (src/op_helpers.c,
 * src/register.c): a sequence argument as a tuple copy (converters of its
 * items run Python code, which may change a list); an int field of item k
 * of argument i; the TypeError for a buffer the exporter refused; a futex
 * word's size and alignment; file descriptors into PyMem memory; a pin
 * into the record that stays sound whatever the exporter's code does. */
Py_buffer *pu_conv_pin(SqeObject *rec, PyObject *o, int flags);
PyObject *pu_seq_tuple(const pu_argspec *sp, int i, PyObject *o,
                       const char *expected);
int pu_conv_item_int(const pu_argspec *sp, int i, Py_ssize_t k, const char *field,
                     PyObject *o, long long lo, long long hi, long long *out);
int pu_conv_item_u64(const pu_argspec *sp, int i, Py_ssize_t k, const char *field,
                     PyObject *o, __u64 *out);
void pu_buffer_refused(const pu_argspec *sp, int i, Py_ssize_t k, PyObject *o,
                       const char *expected);
int pu_check_futex_word(const pu_argspec *sp, int i, Py_ssize_t k, const void *buf,
                        size_t len, unsigned long long flags);
int pu_fds_from(const pu_argspec *sp, int i, PyObject *o, int **out,
                unsigned *count);

/* The keyword-only arguments every op shares where no Sqe object is made
 * (src/common_args.c): IoUring.prep_NAME()'s user_data, sqe_flags,
 * buf_group and personality; AsyncRing.NAME()'s same but user_data. */
#define PU_MAX_CALL_ARGS 16
typedef struct {
    PyObject *data;                 /* user_data=, borrowed; NULL: not given */
    uint8_t sqe_flags;
    uint16_t buf_group, personality;
} pu_common;

/* the call with the shared keywords taken out */
typedef struct {
    PyObject *stack[PU_MAX_CALL_ARGS];
    PyObject *const *args;
    PyObject *kwnames;              /* borrowed: the caller's or `owned` */
    PyObject *owned;                /* a new kwnames tuple, or NULL */
} pu_call_args;

/* what a form accepts: user_data or not, which IOSQE_* flags */
typedef struct {
    int with_data;
    unsigned allowed_flags;
    const char *flags_error;        /* the ValueError for another flag */
} pu_common_rules;

int pu_common_args_init(void);
/* Take the shared keywords out of a vectorcall: 0, or -1 with an exception
 * set.  Py_XDECREF(out->owned) afterwards, in both cases. */
int pu_split_common(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                    pu_call_args *out, pu_common *c, const pu_common_rules *rules);
int pu_small_uint(PyObject *o, unsigned long max, const char *what,
                  unsigned long *out);

/* pu_sqe_prep() applies these after the op's own prep */
static inline void
pu_common_apply(SqeObject *rec, const pu_common *c)
{
    rec->sqe_flags = c->sqe_flags;
    rec->buf_group = c->buf_group;
    rec->personality = c->personality;
}

/* storage for an accept's peer address, used in ops.def call lines */
struct sockaddr *pu_rec_peer_addr(SqeObject *rec);
socklen_t *pu_rec_peer_addrlen(SqeObject *rec);

/* ---------------------------------------------------------------- runtime */
/* records (src/record.c) */
SqeObject *pu_record_new(RingObject *r);
void pu_record_recycle(RingObject *r, SqeObject *rec);
void pu_record_pool_clear(RingObject *r);
void pu_record_release_full(SqeObject *rec);
void pu_record_release_pins(SqeObject *rec);
void *pu_rec_alloc(SqeObject *rec, size_t size);
int pu_rec_keep(SqeObject *rec, PyObject *o);
void pu_record_finish(RingObject *r, SqeObject *rec);
void pu_record_finish_skipped(RingObject *r, SqeObject *rec);
void pu_record_finish_suppressed(RingObject *r, SqeObject *rec, int32_t res);

/* Did this completion break the entry's link chain?  The kernel fails a
 * chain on an error and also on a transfer shorter than asked where the
 * op says so (req_set_fail() in io_uring/rw.c, net.c, splice.c): the rest
 * is cancelled, and their completions suppressed when this entry had
 * IOSQE_CQE_SKIP_SUCCESS.  chain_min is set at submission (ring.c). */
static inline int
pu_chain_failed(const SqeObject *rec, int32_t res)
{
    return res < 0 || (uint32_t)res < rec->chain_min;
}
SqeObject *pu_record_lookup(RingObject *r, __u64 ud);
/* Release everything the record holds (pins, kept objects, the output
 * bytes, its blocks): only once the kernel is done with it.  Inline, the
 * usual case: nothing is held. */
static inline void
pu_record_release(SqeObject *rec)
{
    if (rec->blocks == NULL && rec->result == NULL && rec->nbufs == 0 &&
        rec->pins == NULL && rec->nkeep == 0) {
        rec->op_state = NULL;
        return;
    }
    pu_record_release_full(rec);
}

/* Results and flags are mostly small: 0..PU_SMALL_INTS-1 come from a
 * table of CPython's own cached ints (the same objects PyLong_FromLong
 * gives), without a call into libpython per completion. */
#define PU_SMALL_INTS 256
extern PyObject *pu_small_ints[PU_SMALL_INTS];
int pu_small_ints_init(void);

static inline PyObject *
pu_long(long v)
{
    if ((unsigned long)v < PU_SMALL_INTS) {
        Py_INCREF(pu_small_ints[v]);
        return pu_small_ints[v];
    }
    return PyLong_FromLong(v);
}

/* pu_record_lookup(), inline, for the reaping loop */
#define PU_RECORD_LOOKUP(r, ud)                                            \
    (PU_UD_SLOT(ud) < (r)->nslots && (r)->slots[PU_UD_SLOT(ud)] != NULL && \
     (r)->slots[PU_UD_SLOT(ud)]->user_data == (ud)                        \
         ? (r)->slots[PU_UD_SLOT(ud)] : NULL)
int pu_ring_table_grow(RingObject *r);
PyObject *pu_sqe_prep(SqeObject *self, const pu_opdef *op,
                      PyObject *const *args, Py_ssize_t nargs,
                      PyObject *kwnames);
int pu_sqe_prep_entry(SqeObject *self, const pu_opdef *op,
                      PyObject *const *args, Py_ssize_t nargs,
                      PyObject *kwnames);

/* Free lists of Sqe and Cqe objects (src/record.c): a dealloc'ed object's
 * memory is kept for the next get_sqe() or reaped completion instead of
 * going back to the allocator.  An Sqe reaches its dealloc only after the
 * slot table dropped it, i.e. after its final completion, so the kernel is
 * done with it as surely as if it were freed.  Off under AddressSanitizer
 * (which must see every use after free) and where CPython has no
 * _Py_NewReference() for extensions (3.13 on). */
#if !defined(__SANITIZE_ADDRESS__) && PY_VERSION_HEX < 0x030D0000
#define PU_FREELISTS 1
#endif
#define PU_FREELIST_MAX 256
SqeObject *pu_sqe_alloc(void);        /* refcount 1, not tracked, fields unset */
void pu_sqe_free(SqeObject *rec);     /* untracked and cleared already */
CqeObject *pu_cqe_alloc(void);
void pu_cqe_free(CqeObject *q);

/* the types (src/sqe.c, src/cqe.c, src/ring.c) */
int pu_sqe_type_init(void);
PyObject *pu_sqe_peer(SqeObject *self);
PyObject *pu_cqe_result(CqeObject *q);
PyObject *pu_cqe_value(CqeObject *q);
int pu_cqe_parts(CqeObject *q, PyObject **d, PyObject **v, PyObject **f);
SqeObject *pu_ring_get_sqe(RingObject *r);
int pu_ring_unget_sqe(RingObject *r, SqeObject *rec);
PyObject *pu_ring_prep(PyObject *self, const pu_opdef *op, PyObject *const *args,
                       Py_ssize_t nargs, PyObject *kwnames);
PyObject *pu_ring_prep_many(PyObject *self, PyObject *const *args,
                           Py_ssize_t nargs, PyObject *kwnames);
int pu_ring_flush(RingObject *r, unsigned wait_nr);

/* AsyncRing (src/async_ring.c) */
extern PyTypeObject pu_AsyncRingType;
int pu_async_type_init(void);
PyObject *pu_async_op(PyObject *self, const pu_opdef *op, PyObject *const *args,
                      Py_ssize_t nargs, PyObject *kwnames);
PyObject *pu_async_iter(PyObject *self, const pu_opdef *op, PyObject *const *args,
                        Py_ssize_t nargs, PyObject *kwnames);

/* completions (src/reap.c) */
int pu_reap(RingObject *r);
/* Where reaped completions go: reap()'s list of (user_data, result, flags)
 * tuples, reap_columns()'s three lists, or reap_one()'s single tuple. */
enum { PU_SINK_LIST, PU_SINK_COLUMNS, PU_SINK_ONE };

typedef struct pu_reap_sink {
    PyObject *lists[3];             /* PU_SINK_ONE: lists[0] is the tuple */
    int kind;
} pu_reap_sink;
int pu_sink_new(pu_reap_sink *s, int kind, Py_ssize_t cap);

/* What one more item needs beforehand: its tuple (NULL for columns) */
static inline int
pu_sink_slot(const pu_reap_sink *s, PyObject **t)
{
    if (s->kind == PU_SINK_COLUMNS) {
        *t = NULL;
        return 0;
    }
    *t = PyTuple_New(3);
    return *t != NULL ? 0 : -1;
}

/* Item i: steals t (from pu_sink_slot), d, v and f.  Never fails: the
 * lists were made at full size. */
static inline void
pu_sink_put(pu_reap_sink *s, Py_ssize_t i, PyObject *t, PyObject *d,
            PyObject *v, PyObject *f)
{
    if (s->kind == PU_SINK_COLUMNS) {
        PyList_SET_ITEM(s->lists[0], i, d);
        PyList_SET_ITEM(s->lists[1], i, v);
        PyList_SET_ITEM(s->lists[2], i, f);
        return;
    }
    PyTuple_SET_ITEM(t, 0, d);
    PyTuple_SET_ITEM(t, 1, v);
    PyTuple_SET_ITEM(t, 2, f);
    if (s->kind == PU_SINK_ONE)
        s->lists[0] = t;            /* i is 0: its capacity is one */
    else
        PyList_SET_ITEM(s->lists[0], i, t);
}
void pu_sink_unput(pu_reap_sink *s, Py_ssize_t from, Py_ssize_t to);
PyObject *pu_sink_finish(pu_reap_sink *s, Py_ssize_t got);
Py_ssize_t pu_reap_direct(RingObject *r, pu_reap_sink *s, Py_ssize_t at,
                          Py_ssize_t max);
void pu_reap_discard(RingObject *r, int *cancel_einval);
void pu_cq_clear(RingObject *r);
#define PU_CQ_LEN(r) ((r)->cq_end - (r)->cq_start)

/* registrations (src/register.c) */
extern PyMethodDef pu_register_methods[];
PyObject *pu_bufring_take(RingObject *r, unsigned bgid, uint32_t cqe_flags,
                          int32_t res);
void pu_release_registrations(RingObject *r);
void pu_leak_registrations(RingObject *r);
int pu_provided_describe(SqeObject *rec, int each, int nr, int bgid, int bid);
int pu_provided_describe_remove(SqeObject *rec, int bgid);
void pu_provided_complete(RingObject *r, SqeObject *rec, int32_t res);
int pu_provided_unget_sqe(RingObject *r, SqeObject *rec);

/* Reaping calls this at every final completion, before the record's
 * release: provide_buffers and remove_buffers change which provided
 * buffers the kernel holds, and the order of their completions among the
 * receives' is the kernel's. */
static inline void
pu_provided_reaped(RingObject *r, SqeObject *rec, int32_t res)
{
    if (rec->op != NULL && (rec->op->opcode == IORING_OP_PROVIDE_BUFFERS ||
                            rec->op->opcode == IORING_OP_REMOVE_BUFFERS))
        pu_provided_complete(r, rec, res);
}
int pu_ring_type_init(void);

#ifdef PU_FUZZ_RAW
/* Sqe._fuzz_prep_raw, in the fuzz build only (src/fuzz_raw.c) */
extern PyMethodDef pu_fuzz_raw_methods[];
#endif

/* teardown (src/teardown.c) */
void pu_ring_teardown(RingObject *r);

/* checks and errors (src/errors.c).  pu_ring_check*() return 0 when the
 * ring may be used (the submission side / the completion side too), else
 * -1 with the exception set.  The test that passes is inline: these run
 * several times per operation; the error paths are in errors.c. */
int pu_ring_check_fail(RingObject *r, int side);   /* side: 0, 's', 'c' */

#define PU_RING_USABLE(r) \
    ((r)->initialised && !(r)->closing && \
     (r)->fork_generation == pu_fork_generation)

static inline int
pu_ring_check(RingObject *r)
{
    return PU_RING_USABLE(r) ? 0 : pu_ring_check_fail(r, 0);
}

static inline int
pu_ring_check_sq(RingObject *r)
{
    return (PU_RING_USABLE(r) && r->sq_owner == 0) ? 0 : pu_ring_check_fail(r, 's');
}

/* The completion side is also refused to everyone but the AsyncRing that
 * drives the ring: it reaps there itself (and does not come through here). */
static inline int
pu_ring_check_cq(RingObject *r)
{
    return (PU_RING_USABLE(r) && r->cq_owner == 0 && r->owner == NULL)
               ? 0 : pu_ring_check_fail(r, 'c');
}

/* Hold a side (&r->sq_owner or &r->cq_owner) for this thread; give back
 * what pu_side_take() returned. */
static inline unsigned long
pu_side_take(unsigned long *side)
{
    unsigned long prev = *side;
    *side = PyThread_get_thread_ident();
    return prev;
}

static inline void
pu_side_put(unsigned long *side, unsigned long prev)
{
    *side = prev;
}

/* Around a call that uses the ring again after Python code may have run
 * (see RingObject.ncalls).  pu_call_leave() runs a deferred queue_exit()
 * when the last call ends: 0, or -1 when that raised (the exception set;
 * the caller drops its result). */
int pu_ring_deferred_exit(RingObject *r);

static inline void
pu_call_enter(RingObject *r)
{
    r->ncalls++;
}

static inline int
pu_call_leave(RingObject *r)
{
    if (--r->ncalls == 0 && (r->closing & PU_CLOSING_DEFERRED))
        return pu_ring_deferred_exit(r);
    return 0;
}

/* A method's result passed through pu_call_leave() */
static inline PyObject *
pu_call_return(RingObject *r, PyObject *result)
{
    if (pu_call_leave(r) < 0)
        Py_CLEAR(result);
    return result;
}
PyObject *pu_err_errno(int err);
PyObject *pu_err_errno_msg(int err, const char *message);
int pu_err_entry_lost(SqeObject *rec, const char *fname);

/* The entry as a NOP carrying ud, every other byte zero: what each prep
 * starts from.  The module owns the SQE's contents: liburing 2.3's
 * io_uring_prep_rw() writes every field, later ones only five (and
 * io_uring_get_sqe() clears the rest), so nothing is left to either. */
static inline void
pu_sqe_reset(RingObject *r, struct io_uring_sqe *sqe, __u64 ud)
{
    memset(sqe, 0, (r->ring.flags & IORING_SETUP_SQE128) ? 2 * sizeof(*sqe)
                                                          : sizeof(*sqe));
    sqe->opcode = IORING_OP_NOP;
    sqe->user_data = ud;
}

/* Converters run Python code (fileno(), __index__, __fspath__, buffer
 * exporters) that may submit the entry being prepared, hand its SQ slot to
 * another entry, or close the ring.  Each generated prep calls this between
 * its conversions and its liburing call: the SQE is written only while it
 * is still this record's. */
static inline int
pu_prep_entry_check(SqeObject *rec, struct io_uring_sqe *sqe, const char *fname)
{
    /* sq_owner: another thread is submitting without the GIL (a converter
     * let it run) */
    if (rec->sqe == sqe && rec->state == PU_PREPARING && PU_RING_USABLE(rec->ring) &&
        rec->ring->sq_owner == 0)
        return 0;
    return pu_err_entry_lost(rec, fname);
}
PyObject *pu_oserror_new(int err);
PyObject *pu_err_setup(int err);
PyObject *pu_err_unsupported(const pu_opdef *op);

/* addresses (src/sockaddr.c) */
int pu_sockaddr_from_python(PyObject *o, int family, struct sockaddr_storage *ss,
                            socklen_t *len);
PyObject *pu_sockaddr_to_python(const struct sockaddr *sa, socklen_t len);

/* time */
double pu_monotonic(void);

/* The exception being raised, kept across code that may raise and clear
 * (3.12 deprecated PyErr_Fetch() for PyErr_GetRaisedException()). */
typedef struct { PyObject *type, *value, *tb; } pu_exc_state;

static inline void
pu_exc_save(pu_exc_state *s)
{
#if PY_VERSION_HEX >= 0x030C0000
    s->type = s->tb = NULL;
    s->value = PyErr_GetRaisedException();
#else
    PyErr_Fetch(&s->type, &s->value, &s->tb);
#endif
}

static inline void
pu_exc_restore(pu_exc_state *s)
{
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(s->value);
#else
    PyErr_Restore(s->type, s->value, s->tb);
#endif
}

/* The exception now set, as one normalized object with its traceback (a
 * new reference; the indicator is cleared), and back again (stolen). */
static inline PyObject *
pu_exc_take(void)
{
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    PyErr_NormalizeException(&t, &v, &tb);
    if (tb != NULL && v != NULL)
        PyException_SetTraceback(v, tb);
    Py_XDECREF(t);
    Py_XDECREF(tb);
    return v;
#endif
}

static inline void
pu_exc_give(PyObject *v)
{
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(v);
#else
    Py_INCREF(Py_TYPE(v));
    PyErr_Restore((PyObject *)Py_TYPE(v), v, PyException_GetTraceback(v));
#endif
}

/* 3.8 lacks the one- and no-argument call shortcuts and Py_SET_SIZE() */
#if PY_VERSION_HEX < 0x03090000
#define PyObject_CallNoArgs(f) PyObject_CallFunctionObjArgs((f), NULL)
#define PyObject_CallOneArg(f, a) PyObject_CallFunctionObjArgs((f), (a), NULL)
#define Py_SET_SIZE(o, n) (Py_SIZE(o) = (n))
#endif

#endif
