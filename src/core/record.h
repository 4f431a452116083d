/* core/record.h: the record of one operation (the Sqe object) and the
 * completion object (Cqe); how records are made, pinned into, released and
 * recycled (core/record.c).  Everything the kernel may read or write for an
 * operation hangs off its record. */
#ifndef PU_CORE_RECORD_H
#define PU_CORE_RECORD_H

#include "compat.h"

#include <liburing.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

struct pu_opdef;
typedef struct RingObject RingObject;   /* core/ring.h */

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
    /* From here to weakreflist: the operation's state, all zeroed by
     * pu_record_new() (PU_RECORD_RESET_*), whatever a recycled record held */
    struct io_uring_sqe *sqe;       /* only while PU_NEW / PU_PREPARED */
    const struct pu_opdef *op;      /* the op prepared, NULL for the NOP */
    PyObject *data;                 /* set_data() */
    PyObject *result;               /* bytes the module allocated for output */
    PyObject *paths;                /* the path arguments as given, (filename,)
                                       or (filename, filename2): a failed
                                       completion's OSError names them, as
                                       os.open() and os.rename() do; kept
                                       until the Sqe goes */
    pu_block *blocks;               /* owned memory (pu_rec_alloc) */
    pu_pin *pins;                   /* pinned buffers past the inline ones */
    void *op_state;                 /* a struct the op's result maker reads
                                       (in blocks; kept until the Sqe goes) */
    __u64 user_data;
    long long data_int;             /* the user data when data_is_int */
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
                                       not given to the kernel (submit.c,
                                       prepare_chains_from): the reap drops a
                                       completion that did not fail */
    uint8_t op_flags;               /* IOSQE_* the op's prep set itself */
    uint32_t chain_min;             /* linked: a result below this fails the
                                       chain as an error does (a short read,
                                       write, splice, or MSG_WAITALL
                                       transfer); 0 when none can */
    uint8_t flushed_flags;          /* the SQE's flags as submitted */
    uint8_t defer_buf;              /* a buffer the kernel picks from a
                                       buffer ring stays out of the ring at
                                       the reap: the waiter copies it out
                                       and gives it back when it is told of
                                       the completion (pu_bufring_take(),
                                       stream.c), so a batch's bytes are
                                       made one at a time, not all at once */
    uint8_t data_is_int;            /* the user data is data_int, not yet an
                                       int object (prep_many() over a
                                       range: pu_rec_data()); data is NULL */
    socklen_t peerlen;
    PyObject *weakreflist;
    /* Everything above is touched by every op (made, prepared, reaped,
     * recycled) and fits in three cache lines; what follows only by the
     * ops that use it. */
    PyObject *keep[PU_MAX_KEEP];    /* objects the kernel reads (paths) */
    Py_buffer bufs[PU_INLINE_PINS]; /* pinned with the buffer protocol */
    struct __kernel_timespec ts;
    struct sockaddr_storage addr;   /* connect target or accept peer */
} SqeObject;

#define PU_RECORD_RESET_START offsetof(SqeObject, sqe)
#define PU_RECORD_RESET_END offsetof(SqeObject, weakreflist)
_Static_assert(PU_NEW == 0, "pu_record_new() zeroes the state to PU_NEW");

typedef struct CqeObject {
    PyObject_HEAD
    SqeObject *sqe;                 /* strong: user data, address; NULL for
                                       a message from another ring */
    const void *ring_id;            /* the reaping ring, compared only */
    PyObject *result;               /* per-completion result (bytes) */
    __u64 user_data;
    int32_t res;
    uint32_t flags;
    uint8_t has_big;                /* from a ring set up with IORING_SETUP_CQE32 */
    uint16_t nbufs;                 /* buffers of a buffer ring it used */
    uint32_t buf_off;               /* a deferred buffer's (defer_buf): where
                                       its bytes start, fixed at the reap */
    __u64 big[2];                   /* that entry's extra 16 bytes (big_cqe) */
} CqeObject;


/* records (record.c) */
void pu_record_pool_clear(RingObject *r);
void pu_record_release_full(SqeObject *rec);
void pu_record_release_pins(SqeObject *rec);
void *pu_rec_alloc(SqeObject *rec, size_t size);
int pu_rec_keep(SqeObject *rec, PyObject *o);
int pu_rec_paths(SqeObject *rec, PyObject *filename, PyObject *filename2);
void pu_record_finish_skipped(RingObject *r, SqeObject *rec);
void pu_record_finish_suppressed(RingObject *r, SqeObject *rec, int32_t res);

/* Did this completion break the entry's link chain?  The kernel fails a
 * chain on an error and also on a transfer shorter than asked where the
 * op says so (req_set_fail() in io_uring/rw.c, net.c, splice.c): the rest
 * is cancelled, and their completions suppressed when this entry had
 * IOSQE_CQE_SKIP_SUCCESS.  chain_min is set at submission (submit.c). */
static inline int
pu_chain_failed(const SqeObject *rec, int32_t res)
{
    return res < 0 || (uint32_t)res < rec->chain_min;
}
/* Release everything the record holds (pins, kept objects, the output
 * bytes, its blocks): only once the kernel is done with it.  Inline, the
 * usual case: nothing is held. */
static inline void
pu_record_release(SqeObject *rec)
{
    if (rec->blocks == NULL && rec->result == NULL && rec->nbufs == 0 &&
        rec->pins == NULL && rec->nkeep == 0 && rec->paths == NULL) {
        rec->op_state = NULL;
        return;
    }
    pu_record_release_full(rec);
}


/* The record's user data as a new reference: the object set, the int
 * prep_many() stored as a C integer (made only now: a batch numbered by a
 * range makes its ints when reaped, not when queued), or None.  NULL with
 * an exception when the int cannot be made. */
static inline PyObject *
pu_rec_data(const SqeObject *rec)
{
    if (rec->data != NULL) {
        Py_INCREF(rec->data);
        return rec->data;
    }
    if (rec->data_is_int)
        return PyLong_FromLongLong(rec->data_int);
    Py_INCREF(Py_None);
    return Py_None;
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


/* Free lists of Sqe and Cqe objects (record.c): a dealloc'ed object's
 * memory is kept for the next get_sqe() or reaped completion instead of
 * going back to the allocator.  An Sqe reaches its dealloc only after the
 * slot table dropped it, i.e. after its final completion, so the kernel is
 * done with it as surely as if it were freed.  Off under AddressSanitizer
 * (which must see every use after free), in free-threaded builds
 * (Py_GIL_DISABLED: the lists are process-wide and unlocked, guarded by
 * the GIL alone), and from 3.14, whose _Py_NewReference() this module has
 * not been tested with (3.13 exports it from cpython/object.h). */
#if !defined(__SANITIZE_ADDRESS__) && PY_VERSION_HEX < 0x030E0000 && \
    !defined(Py_GIL_DISABLED) && !defined(PU_NO_FREELISTS)
#define PU_FREELISTS 1
#endif
#define PU_FREELIST_MAX 256
SqeObject *pu_sqe_alloc(void);        /* refcount 1, not tracked, fields unset */
void pu_sqe_free(SqeObject *rec);     /* untracked and cleared already */
CqeObject *pu_cqe_alloc(void);
void pu_cqe_free(CqeObject *q);

/* A view of the caller's memory held on the heap for the ring's life (a
 * register_region() region, a queue_init_mem() ring): release it and free
 * it, and empty *slot; nothing when *slot is empty. */
static inline void
pu_heap_view_release(Py_buffer **slot)
{
    Py_buffer *view = *slot;

    *slot = NULL;
    if (view != NULL) {
        PyBuffer_Release(view);
        PyMem_Free(view);
    }
}

#endif
