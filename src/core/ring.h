/* core/ring.h: the ring object (IoUring): its slot table of records, its
 * two sides and who holds them, the user_data layout, and the inline
 * checks every call makes before touching the ring (core/errors.c has
 * their error paths). */
#ifndef PU_CORE_RING_H
#define PU_CORE_RING_H

#include "core/record.h"

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
    /* registrations (register/register.c, register/tags.c) */
    struct pu_regbuf **buf_pins;       /* the registered buffer table: one pin
                                       (shared with clones) or NULL a slot */
    unsigned nbuf_pins;
    uint8_t bufs_registered;
    struct pu_rsrc_tag *tags;       /* tagged files and buffers whose tag
                                       CQE has not come yet (tags.c) */
    uint32_t ntags, tags_cap;
    uint32_t *tag_free;
    uint32_t ntag_free;
    Py_buffer *region;              /* register_region()'s, until teardown */
    Py_buffer *ring_mem;            /* queue_init_mem()'s: the rings live in
                                       it; released after the fd is closed */
    struct pu_bufring *bufrings;
    struct pu_zcrx *zcrx;           /* register_ifq()'s, until teardown */
    struct pu_provided *provided;   /* provide_buffers() memory the kernel
                                       holds, oldest first (register/) */
    /* completions reaped from the kernel and not yet marked seen */
    CqeObject **cq;
    Py_ssize_t cq_start, cq_end, cq_cap;
    struct AsyncRingObject *owner;  /* the AsyncRing driving this ring, or
                                       NULL; borrowed, cleared by its dealloc */
    /* A buffer group the ring's AsyncRing keeps for itself: the event
     * loop's ring reserves its transports' (stream.c), so a user of the
     * shared ring cannot set up, free or provide into it (register.c);
     * stream.c lifts the reservation around its own setup_buf_ring(). */
    uint8_t bgid_reserved;
    uint8_t bgid_reserve_lifted;
    uint16_t reserved_bgid;
    /* The threading model (docs/design.md, "Threads and signals"): each
     * side of the ring has at most one user at a time, as liburing
     * assumes.  A side is held, by the thread (pu_side_holder()), while
     * a call runs without the GIL (in io_uring_enter) or runs Python code
     * in the middle of changing that side (finalizers while reaping).
     * Holders save and restore the previous owner, so nested holds compose
     * and no call clears a hold it did not take. */
    uint64_t sq_owner;         /* 0: free */
    uint64_t cq_owner;
    /* Calls in progress that use the ring again after running Python code
     * (signal handlers, finalizers) or after a wait: queue_exit() asked
     * while one runs is deferred to the end of the last (PU_CLOSING_DEFERRED),
     * never run under it. */
    unsigned ncalls;
    /* The ring fd registered with register_ring_fd() (core/enter_fd.c,
     * register/ring_fd.c).  The kernel keeps registered ring fds per
     * thread, so only the registering thread may enter by the index. */
    uint8_t fd_registered;
    uint8_t fd_closed;              /* close_ring_fd(): only the index is left */
    uint8_t reg_bit;                /* liburing's int_flags bit: enter by index */
    uint8_t reg_reg_bit;            /* ... and register by index (liburing 2.4+) */
    int reg_index;
    uint64_t reg_thread;            /* pu_thread_token() of the registering thread */
    /* IORING_SETUP_SINGLE_ISSUER: the kernel takes submissions, waits and
     * registrations from one thread only (EEXIST from any other), the one
     * that set the ring up or, set up disabled (IORING_SETUP_R_DISABLED),
     * the one that enabled it.  issuer is its pu_thread_token(), 0 while
     * any thread may (no SINGLE_ISSUER, or not enabled yet). */
    uint64_t issuer;
    uint8_t disabled;               /* set up R_DISABLED, not enabled yet */
    /* reap_one()'s last (user_data, result, flags) tuple when all three
     * are ints: once the caller has dropped it (the ring's is the only
     * reference) the next reap_one() fills it again instead of making and
     * freeing a tuple per round trip, as zip() and enumerate() reuse
     * theirs (core/reap_sink.h, pu_sink_slot()).  Ints only, so keeping
     * the last items a while longer keeps nothing a user could see (no
     * finalizer, no weak reference) and the tuple is in no cycle.  Not
     * kept free-threaded, nor from 3.14 (PU_REFILL_TUPLES, reap_sink.h). */
    PyObject *one_tuple;
    /* reap()'s last list when every item is a tuple of exact ints: once
     * the caller has dropped it, the next reap() fills its tuples again
     * and returns it (pu_sink_new()), for the same reason.  The caller may
     * have changed the list before dropping it, so each tuple is checked
     * before it is refilled, and Ring_traverse() visits the list. */
    PyObject *last_list;
    /* The last result of 256 or more the ring made an int of, and that
     * int (pu_res_long()) */
    PyObject *res_int;
    int32_t res_int_val;
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
/* Tags of registered files and buffers (register/tags.c) are user_data the
 * kernel posts when it lets go of one: PU_UD_TAG | generation << 32 |
 * PU_SLOT_RSRC | id.  Record slots stay below PU_SLOT_RSRC (the slot table
 * never grows past it), so a tag never names a record, nor a record a tag. */
#define PU_SLOT_RSRC 0x80000000u
#define PU_UD_IS_RSRC(ud) \
    (((ud) & PU_UD_TAG) && PU_UD_SLOT(ud) >= PU_SLOT_RSRC && \
     PU_UD_SLOT(ud) < PU_SLOT_RSRC + 0x7fff0000u)
#define PU_UD_GEN(ud) ((uint32_t)((ud) >> 32) & PU_GEN_MASK)


uint64_t pu_thread_token(void);   /* core/enter_fd.c */

extern PyTypeObject pu_RingType;
extern PyTypeObject pu_SqeType;
extern PyTypeObject pu_CqeType;
extern PyObject *pu_SubmissionQueueFull;
extern volatile unsigned pu_fork_generation;


/* The live record a completion's user_data names, or NULL: not the
 * library's, or a slot whose generation moved on.  Inline: the reaping
 * loop calls it once per completion. */
static inline SqeObject *
pu_record_lookup(RingObject *r, __u64 ud)
{
    uint32_t slot = PU_UD_SLOT(ud);
    SqeObject *rec;

    if (slot >= r->nslots)
        return NULL;
    rec = r->slots[slot];
    return rec != NULL && rec->user_data == ud ? rec : NULL;
}
int pu_ring_table_grow(RingObject *r);

/* the types (sqe.c, cqe.c, ring.c) and the submission side (submit.c) */
int pu_sqe_type_init(void);
PyObject *pu_sqe_peer(SqeObject *self);
PyObject *pu_cqe_result(CqeObject *q);
PyObject *pu_cqe_value(CqeObject *q);
int pu_cqe_parts(CqeObject *q, PyObject **d, PyObject **v, PyObject **f);
int pu_ring_unget_sqe(RingObject *r, SqeObject *rec);
int pu_ring_flush(RingObject *r, unsigned wait_nr);
int pu_ring_type_init(void);
int pu_ring_setup(RingObject *r, const char *fname, long long entries,
                  struct io_uring_params *p, Py_buffer *mem);
void pu_ring_close(RingObject *r);
extern PyMethodDef pu_module_methods[];   /* memsize.c: module-level functions */

/* teardown (teardown.c) */
void pu_ring_teardown(RingObject *r);


/* checks and errors (errors.c).  pu_ring_check*() return 0 when the
 * ring may be used (the submission side / the completion side too), else
 * -1 with the exception set.  The test that passes is inline: these run
 * several times per operation; the error paths are in errors.c. */
int pu_ring_check_fail(RingObject *r, int side);   /* side: 0, 's', 'c' */

/* (after close_ring_fd() only the registering thread may use the ring:
 * core/enter_fd.c) */
#define PU_RING_USABLE(r) \
    ((r)->initialised && !(r)->closing && \
     (r)->fork_generation == pu_fork_generation && \
     (!(r)->fd_closed || (r)->reg_thread == pu_thread_token()))

/* Zero the record's per-operation fields (PU_RECORD_RESET_*): 8-byte
 * stores the compiler unrolls, where one memset() of the 150-odd bytes
 * becomes a `rep stos`, slow to start on every x86. */
_Static_assert(PU_RECORD_RESET_START % 8 == 0 && PU_RECORD_RESET_END % 8 == 0,
               "the reset region is whole 8-byte words");
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("no-tree-loop-distribute-patterns")))
#endif
static inline void
pu_record_zero(SqeObject *rec)
{
    uint64_t *w = (uint64_t *)((char *)rec + PU_RECORD_RESET_START);

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll 32
#endif
    for (size_t i = 0; i < (PU_RECORD_RESET_END - PU_RECORD_RESET_START) / 8; i++)
        w[i] = 0;
}

/* Put a record (pooled, live and tracked; or just allocated) in a free
 * slot, every per-operation field reset.  The table holds the returned
 * reference; the caller adds its own if it hands the record out. */
static inline SqeObject *
pu_record_enter(RingObject *r, SqeObject *rec)
{
    uint32_t slot = r->free_slots[--r->nfree];

    Py_INCREF(r);
    rec->ring = r;
    /* every per-operation field at once (record.h): a field added there
     * cannot be forgotten here.  PU_NEW is 0. */
    pu_record_zero(rec);
    r->slots[slot] = rec;
    rec->user_data = PU_UD_TAG | ((__u64)r->slot_gen[slot] << 32) | slot;
    rec->life = r->life;
    r->nrecords++;
    return rec;
}

SqeObject *pu_record_new(RingObject *r);   /* record.c: allocates, grows */

/* A new record: a pooled one when there is one and a free slot (every
 * fast-form op after the first few), else pu_record_new().  NULL with an
 * exception. */
static inline SqeObject *
pu_record_take(RingObject *r)
{
    if (r->npool > 0 && r->nfree > 0)
        return pu_record_enter(r, r->pool[--r->npool]);
    return pu_record_new(r);
}

/* Take a record out of the table after its final completion: its slot is
 * free again, under the next generation.  The table's reference passes to
 * the caller.  Inline: every completion ends a record. */
static inline void
pu_record_finish(RingObject *r, SqeObject *rec)
{
    uint32_t slot = PU_UD_SLOT(rec->user_data);

    rec->state = PU_DONE;
    rec->sqe = NULL;
    if (rec->hide_success) {
        rec->hide_success = 0;
        r->nhidden--;
    }
    r->slots[slot] = NULL;
    r->slot_gen[slot] = (PU_UD_GEN(rec->user_data) + 1) & PU_GEN_MASK;
    r->free_slots[r->nfree++] = slot;
    r->nrecords--;
}

/* Drop the table's reference to a record whose final completion was
 * reaped and whose resources are released (pu_record_release(): the
 * reap's callers release before they drop).  When nothing else holds it
 * (no Sqe object in Python's hands, no Cqe, no weak reference) it is not
 * freed but kept, live and empty, for the next pu_record_new(): a
 * fast-form operation then costs no allocation, no GC tracking and no
 * dealloc.  The kernel is done with it either way.  A pooled record holds
 * nothing: not the ring (so dropping a ring still frees it at once), not
 * its user data; queue_exit() and the ring's dealloc free the pool. */
static inline void
pu_record_recycle(RingObject *r, SqeObject *rec)
{
    PyObject *data;

    /* (a ring being closed empties its pool: pu_record_pool_clear()) */
    if (Py_REFCNT(rec) != 1 || rec->weakreflist != NULL ||
        r->npool == PU_RECORD_POOL || rec->ring != r || r->closing ||
        !r->initialised) {
        Py_DECREF(rec);
        return;
    }
    data = rec->data;
    rec->data = NULL;
    rec->ring = NULL;
    r->pool[r->npool++] = rec;
    /* both may run Python code (a finalizer): the record is already in
     * its pooled state; the caller holds the ring */
    Py_DECREF(r);
    Py_XDECREF(data);
}

/* May this thread submit, wait and register (IORING_SETUP_SINGLE_ISSUER)? */
#define PU_ISSUER_HERE(r) ((r)->issuer == 0 || (r)->issuer == pu_thread_token())

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

/* Who holds a side: the calling thread's state, by its address.  Under
 * the GIL, as every side is taken, it names one live thread for as long
 * as the call holding the side runs, and it costs a fifth of
 * pu_thread_token()'s thread-local lookup (or of the thread's ident) on a
 * path every submit and reap takes.  (pu_thread_token() stays what the
 * registered ring fd needs: a thread that is never confused with a later
 * one.) */
static inline uint64_t
pu_side_holder(void)
{
    return (uint64_t)(uintptr_t)PyThreadState_Get();
}

/* Hold a side (&r->sq_owner or &r->cq_owner) for this thread; give back
 * what pu_side_take() returned. */
static inline uint64_t
pu_side_take_as(uint64_t *side, uint64_t holder)
{
    uint64_t prev = *side;
    *side = holder;
    return prev;
}

static inline uint64_t
pu_side_take(uint64_t *side)
{
    return pu_side_take_as(side, pu_side_holder());
}

static inline void
pu_side_put(uint64_t *side, uint64_t prev)
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
PyObject *pu_err_errno_rec(const SqeObject *rec, int err);
int pu_err_entry_lost(SqeObject *rec, const char *fname);


/* The entry as a NOP carrying ud, every other byte zero: what each prep
 * starts from.  The module owns the SQE's contents: liburing 2.3's
 * io_uring_prep_rw() writes every field, later ones only five (and
 * io_uring_get_sqe() clears the rest), so nothing is left to either. */
static inline void
pu_sqe_reset(RingObject *r, struct io_uring_sqe *sqe, __u64 ud)
{
#if !(defined(PU_POISON_SQE) && defined(PU_POISON_SKIP_RESET))
    /* two constant sizes, so the compiler writes the zeroes inline rather
     * than calling memset() for every entry */
    if (r->ring.flags & IORING_SETUP_SQE128)
        memset(sqe, 0, 2 * sizeof(*sqe));
    else
        memset(sqe, 0, sizeof(*sqe));
#else
    (void)r;   /* the test's broken variant: proves the poison is seen */
#endif
    sqe->opcode = IORING_OP_NOP;
    sqe->user_data = ud;
}

/* io_uring_get_sqe() for the module: every entry it takes comes from here,
 * and each is pu_sqe_reset() before anything else writes it.  The
 * PU_POISON_SQE build (tests/test_liburing_compat.py) first fills the entry
 * with 0xff bytes, whatever liburing's io_uring_get_sqe() cleared, so an op
 * that relied on a field being zero fails there on every liburing;
 * PU_POISON_SKIP_RESET, with it, leaves out the reset's zeroing, to show
 * that the poison breaks ops. */
static inline struct io_uring_sqe *
pu_get_sqe(RingObject *r)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
#ifdef PU_POISON_SQE
    if (sqe != NULL)
        memset(sqe, 0xff, (r->ring.flags & IORING_SETUP_SQE128) ? 2 * sizeof(*sqe)
                                                                : sizeof(*sqe));
#endif
    return sqe;
}


/* A new record on the next SQE, as a NOP; a new reference.  Inline: the
 * fast forms and prep_many() take one per entry. */
SqeObject *pu_err_sq_full(void);

static inline __attribute__((always_inline)) SqeObject *
pu_ring_get_sqe(RingObject *r)
{
    struct io_uring_sqe *sqe;
    SqeObject *rec;

    if (pu_ring_check_sq(r) < 0)
        return NULL;
    sqe = pu_get_sqe(r);
    if (sqe == NULL)
        return pu_err_sq_full();
    rec = pu_record_take(r);
    if (rec == NULL) {
        r->ring.sq.sqe_tail--;   /* the entry back: nobody wrote it */
        return NULL;
    }
    /* an entry nobody prepares still completes, harmlessly, as a NOP */
    pu_sqe_reset(r, sqe, rec->user_data);
    rec->sqe = sqe;
    r->pending[r->npending++] = rec;
    Py_INCREF(rec);   /* the caller's; the table keeps its own */
    return rec;
}

PyObject *pu_oserror_new(int err);
PyObject *pu_err_setup(int err);
PyObject *pu_err_unsupported(const struct pu_opdef *op);


/* time */
double pu_monotonic(void);

/* The registered ring fd (enter_fd.c).  pu_thread_token(): this thread's
 * number, never reused (a thread ident is, once its thread ends).
 * pu_enter_by_index()/pu_enter_by_fd(): around a liburing call that both
 * submits and waits, holding both sides (nobody else is in liburing on
 * the ring), have liburing enter by the registered index when this is the
 * registering thread; 1 when it switched.  Only then: a thread that holds
 * one side must find the ring fd in the struct, valid for every thread. */
int pu_enter_by_index(RingObject *r);
void pu_enter_by_fd(RingObject *r, int switched);
int pu_ring_reachable(RingObject *r);
unsigned pu_register_fd(RingObject *r, unsigned *op);
void pu_ring_fd_release(RingObject *r);


#ifdef PU_FUZZ_RAW
/* Sqe._fuzz_prep_raw, in the fuzz build only (fuzz_raw.c) */
extern PyMethodDef pu_fuzz_raw_methods[];
#endif

/* A completion's result as an int: 0..255 from the small-int table, a
 * larger one made once and given again while the results repeat (reads of
 * one block size: one int per run of completions, not one made and freed
 * per completion).  Ints are immutable: sharing one shows only to `is`,
 * as CPython's own caches do.  Not free-threaded, where two threads may
 * reap the same ring's completions at once (pu_res_long_new() in reap.c). */
PyObject *pu_res_long_new(RingObject *r, int32_t res);

static inline PyObject *
pu_res_long(RingObject *r, int32_t res)
{
    if ((uint32_t)res < PU_SMALL_INTS) {
        Py_INCREF(pu_small_ints[res]);
        return pu_small_ints[res];
    }
#ifndef Py_GIL_DISABLED
    if (r->res_int != NULL && r->res_int_val == res) {
        Py_INCREF(r->res_int);
        return r->res_int;
    }
#endif
    return pu_res_long_new(r, res);
}

#endif
