/* reap.c: moving completions out of the kernel's CQ.
 *
 * pu_reap() copies every ready CQE into a Cqe object, appends it to the
 * ring's queue of unseen completions and advances the kernel's CQ head once
 * for the whole batch.  A final completion ends its record: the pinned
 * buffers are released, the module-allocated output becomes the Cqe's
 * result, and the table's reference to the record passes to the Cqe. */
#include "register/register.h"
#include "core/reap_sink.h"

/* Room for `extra` more Cqe at the end of the queue. */
static int
cq_reserve(RingObject *r, Py_ssize_t extra)
{
    Py_ssize_t len = PU_CQ_LEN(r);
    if (r->cq_end + extra <= r->cq_cap)
        return 0;
    if (r->cq_start > 0) {
        memmove(r->cq, r->cq + r->cq_start, (size_t)len * sizeof(*r->cq));
        r->cq_start = 0;
        r->cq_end = len;
    }
    if (len + extra > r->cq_cap) {
        Py_ssize_t cap = r->cq_cap ? r->cq_cap : 64;
        CqeObject **q;
        while (cap < len + extra)
            cap *= 2;
        q = PyMem_Realloc(r->cq, (size_t)cap * sizeof(*q));
        if (q == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        r->cq = q;
        r->cq_cap = cap;
    }
    return 0;
}

/* Records ended per round before their references are dropped: a drop
 * may run code (a finalizer), which must find the CQ head moved. */
#define PU_REAP_CHUNK 64

/* The final completion of an entry whose IOSQE_CQE_SKIP_SUCCESS the
 * runtime kept from the kernel (submit.c, prepare_chains_from), when the entry
 * did not fail: nobody is shown it. */
static inline int
pu_cqe_hidden(const SqeObject *rec, const struct io_uring_cqe *c)
{
    return rec->hide_success && !(c->flags & IORING_CQE_F_MORE) &&
           !pu_chain_failed(rec, c->res);
}

/* End such a record as its completion would: the table's reference passes
 * to the caller, who drops it after the CQ head moved. */
static void
pu_end_hidden(RingObject *r, SqeObject *rec)
{
    pu_record_finish(r, rec);
    pu_record_release(rec);
    if (rec->chain_prev != 0)
        pu_record_finish_skipped(r, rec);
}

/* The output bytes hold exactly what the kernel wrote. */
static PyObject *
take_result(SqeObject *rec, int32_t res)
{
    PyObject *b = rec->result;
    rec->result = NULL;
    if (b == NULL || res < 0) {
        Py_XDECREF(b);
        return NULL;
    }
    if (res < PyBytes_GET_SIZE(b) && _PyBytes_Resize(&b, res) < 0) {
        PyErr_Clear();   /* shrinking failed: b is gone; report the count */
        return NULL;
    }
    return b;
}

/* A record whose final completion needs nothing but its slot freed and
 * its inline buffer pins released (rec_end_plain()): it holds nothing else
 * (no pin list, blocks, kept objects, output bytes or paths), its op has
 * no result maker and no completion hook, and it is in no link chain.  The
 * fast forms' and prep_many()'s usual entry (a NOP, a read into a buffer
 * or a registered one, a send, a close, an fsync): one test of fields in
 * the record's first cache lines instead of each in turn. */
static inline int
rec_plain(const SqeObject *rec)
{
    const pu_opdef *op = rec->op;

    return ((uintptr_t)rec->blocks | (uintptr_t)rec->result |
            (uintptr_t)rec->pins | (uintptr_t)rec->paths |
            rec->chain_prev | rec->chain_next |
            rec->nkeep | rec->hide_success) == 0 &&
           (op == NULL || ((uintptr_t)op->result | (uintptr_t)op->complete) == 0);
}

/* All pu_record_release() does for a plain record, once finished: the
 * buffers it pinned go.  PyBuffer_Release() may run Python code, as any
 * release at a reap may; no exception is set here for it to keep (the
 * callers stop at the first error), and CPython reports what a
 * __release_buffer__ raises as unraisable. */
static inline void
rec_end_plain(SqeObject *rec)
{
    while (rec->nbufs > 0)
        PyBuffer_Release(&rec->bufs[--rec->nbufs]);
    rec->op_state = NULL;
}

int
pu_reap(RingObject *r)
{
    struct io_uring_cqe *c;
    unsigned head, ready, n = 0, nquiet = 0;
    SqeObject *quiet[PU_REAP_CHUNK];
    uint64_t held;
    int err = 0;

    ready = io_uring_cq_ready(&r->ring);
    if (ready == 0) {
        /* completions the kernel kept aside (IORING_FEAT_NODROP) are only
         * moved into the CQ when we enter the kernel */
        if (!(IO_URING_READ_ONCE(*r->ring.sq.kflags) & IORING_SQ_CQ_OVERFLOW))
            return 0;
        io_uring_get_events(&r->ring);
        ready = io_uring_cq_ready(&r->ring);
        if (ready == 0)
            return 0;
    }
    if (cq_reserve(r, ready) < 0)
        return -1;
    /* allocation below may run the GC and finalizers: keep them off the CQ */
    held = pu_side_take(&r->cq_owner);
    io_uring_for_each_cqe(&r->ring, head, c) {
        SqeObject *rec = pu_record_lookup(r, c->user_data);
        if (rec != NULL && pu_cqe_hidden(rec, c)) {
            /* a success the user asked not to see (prepare_chains_from): the
             * record ends; it is dropped once the CQ head has moved */
            pu_end_hidden(r, rec);
            quiet[nquiet++] = rec;
        /* a completion no record of ours names (a msg_ring message from
         * another ring) is delivered too, with no Sqe behind it */
        } else if (rec != NULL || PU_UD_SLOT(c->user_data) != PU_SLOT_INTERNAL) {
            CqeObject *q = pu_cqe_alloc();
            if (q == NULL) {
                err = -1;   /* this CQE stays in the ring for next time */
                break;
            }
            q->user_data = c->user_data;
            q->res = c->res;
            q->flags = c->flags;
            q->result = NULL;
            q->ring_id = r;
            q->nbufs = 0;
            /* a CQE32 ring's entries carry 16 more bytes (a uring_cmd's
             * second result, a TX timestamp) */
            q->has_big = (r->ring.flags & IORING_SETUP_CQE32) != 0;
            if (q->has_big) {
                q->big[0] = c->big_cqe[0];
                q->big[1] = c->big_cqe[1];
            } else {
                q->big[0] = q->big[1] = 0;
            }
            /* a buffer the kernel picked from one of our rings or
             * provided groups: copy the bytes out and give the buffer
             * back (or let go of it), also when the op failed */
            if (rec != NULL && (c->flags & IORING_CQE_F_BUFFER) && rec->defer_buf) {
                /* left in the buffer for the waiter (nbufs 0 until taken);
                 * where its bytes start is fixed now, in the kernel's order */
                pu_bufring_defer(r, rec->buf_group, c->flags, c->res, &q->buf_off);
            } else if (rec != NULL && (c->flags & IORING_CQE_F_BUFFER)) {
                q->result = pu_bufring_take(r, rec->buf_group, c->flags, c->res,
                                            &q->nbufs, NULL);
                if (q->result == NULL && PyErr_Occurred()) {
                    q->sqe = NULL;
                    Py_DECREF(q);
                    err = -1;   /* the CQE stays for the next reap */
                    break;
                }
            } else if (r->zcrx != NULL && rec != NULL &&
                       pu_zcrx_take(r, rec, c, &q->result) < 0) {
                q->sqe = NULL;   /* (register/zcrx.c: a RECV_ZC chunk's bytes) */
                Py_DECREF(q);
                err = -1;
                break;
            }
            if (rec == NULL) {
                /* a file or buffer the kernel let go of (tags.c): the
                 * Cqe carries the user's tag; its pin goes once the Cqe
                 * is queued */
                PyObject *tag = pu_rsrc_tag_peek(r, c->user_data);
                q->sqe = NULL;
                if (tag != NULL) {
                    Py_INCREF(tag);
                    q->result = tag;
                }
            } else if (c->flags & IORING_CQE_F_MORE) {
                Py_INCREF(rec);
                q->sqe = rec;
            } else if (!(c->flags & IORING_CQE_F_BUFFER) && rec_plain(rec)) {
                /* the usual final completion: nothing but the end */
                pu_record_finish(r, rec);
                q->sqe = rec;            /* the table's reference */
                rec_end_plain(rec);
            } else {
                pu_record_finish(r, rec);
                q->sqe = rec;            /* the table's reference */
                if (c->flags & IORING_CQE_F_BUFFER) {
                    Py_CLEAR(rec->result);   /* the kernel wrote its own pick */
                } else {
                    q->result = take_result(rec, c->res);
                }
                pu_op_complete(r, rec, c->res);
                if (rec->op != NULL && rec->op->result != NULL) {
                    pu_record_release_pins(rec);   /* its state stays */
                } else if (rec->paths != NULL && c->res < 0) {
                    /* a failure's OSError names the paths (getresult()) */
                    PyObject *paths = rec->paths;
                    rec->paths = NULL;
                    pu_record_release(rec);
                    rec->paths = paths;
                } else {
                    pu_record_release(rec);
                }
                if (rec->chain_prev != 0)   /* both end at once otherwise */
                    pu_record_finish_skipped(r, rec);
                if (pu_chain_failed(rec, c->res))
                    pu_record_finish_suppressed(r, rec, c->res);
            }
            PyObject_GC_Track(q);
            r->cq[r->cq_end++] = q;
            if (rec == NULL && q->result != NULL)
                pu_rsrc_tag_done(r, c->user_data);
        }
        if (++n == ready || nquiet == PU_REAP_CHUNK)
            break;
    }
    io_uring_cq_advance(&r->ring, n);
    pu_side_put(&r->cq_owner, held);
    for (unsigned i = 0; i < nquiet; i++)
        Py_DECREF(quiet[i]);   /* the table's reference */
    return err;
}

/* Teardown's reaping: completions are dropped, records end.  One CQE at a
 * time, marked seen before anything is released, so that code run by a
 * release (a finalizer) never sees a half-consumed ring. */
void
pu_reap_discard(RingObject *r, int *cancel_einval)
{
    struct io_uring_cqe *c;

    while (io_uring_peek_cqe(&r->ring, &c) == 0 && c != NULL) {
        __u64 ud = c->user_data;
        int32_t res = c->res;
        uint32_t flags = c->flags;
        SqeObject *rec;

        io_uring_cqe_seen(&r->ring, c);
        if (PU_UD_SLOT(ud) == PU_SLOT_INTERNAL) {
            if (ud == PU_UD_INTERNAL && res == -EINVAL && cancel_einval)
                *cancel_einval = 1;
            continue;
        }
        rec = pu_record_lookup(r, ud);
        if (rec == NULL || (flags & IORING_CQE_F_MORE))
            continue;
        pu_record_finish(r, rec);
        pu_record_release(rec);
        pu_record_finish_skipped(r, rec);
        pu_record_finish_suppressed(r, rec, res);
        Py_DECREF(rec);
    }
}

void
pu_cq_clear(RingObject *r)
{
    while (r->cq_end > r->cq_start) {
        CqeObject *q = r->cq[--r->cq_end];
        Py_DECREF(q);
    }
    r->cq_start = r->cq_end = 0;
}

/* ---- the sink: where reap(), reap_columns() and reap_one() put completions ----
 *
 * The lists are made at their full size up front and cut to what was
 * reaped, so putting an item never fails: every allocation a completion
 * needs happens before its CQE is consumed. */

int
pu_sink_new(pu_reap_sink *s, int kind, Py_ssize_t cap, PyObject **spare)
{
    s->kind = kind;
    s->lists[0] = s->lists[1] = s->lists[2] = NULL;
    s->spare = spare;
    s->nreuse = 0;
    s->keep = 1;
    if (kind == PU_SINK_ONE)
        return 0;   /* the item's own tuple is all it makes */
    if (kind == PU_SINK_LIST && spare != NULL && *spare != NULL && cap > 0 &&
        Py_REFCNT(*spare) == 1 && ((PyListObject *)*spare)->allocated >= cap) {
        /* the list reap() returned last time, dropped by the caller since:
         * it is this call's, its tuples refilled in place (pu_sink_slot()),
         * as zip() and enumerate() reuse their tuple */
        PyListObject *l = (PyListObject *)*spare;
        Py_ssize_t n = Py_SIZE(l);

        *spare = NULL;
        for (Py_ssize_t i = n; i < cap; i++)
            l->ob_item[i] = NULL;
        if (n < cap)
            Py_SET_SIZE(l, cap);
        s->lists[0] = (PyObject *)l;
        s->nreuse = n;
        return 0;
    }
    for (int i = 0; i < (kind == PU_SINK_COLUMNS ? 3 : 1); i++) {
        s->lists[i] = PyList_New(cap);
        if (s->lists[i] == NULL) {
            Py_CLEAR(s->lists[0]);
            Py_CLEAR(s->lists[1]);
            return -1;
        }
    }
    return 0;
}

/* Drop items [from, to) again */
void
pu_sink_unput(pu_reap_sink *s, Py_ssize_t from, Py_ssize_t to)
{
    if (s->kind == PU_SINK_ONE) {
        if (from < to)
            Py_CLEAR(s->lists[0]);
        return;
    }
    for (int k = 0; k < 3 && s->lists[k] != NULL; k++)
        for (Py_ssize_t i = from; i < to; i++)
            Py_CLEAR(((PyListObject *)s->lists[k])->ob_item[i]);
}

/* The lists cut to `got` items: the list, the tuple of three lists, or
 * the one item (None without one).  Consumes the sink, also on failure. */
PyObject *
pu_sink_finish(pu_reap_sink *s, Py_ssize_t got)
{
    PyObject *ret;

    if (s->kind == PU_SINK_ONE) {
        if (got == 0 || s->lists[0] == NULL) {
            Py_XDECREF(s->lists[0]);
            Py_RETURN_NONE;
        }
        return s->lists[0];
    }
    if (s->kind == PU_SINK_LIST) {
        PyListObject *l = (PyListObject *)s->lists[0];
        /* a reused list's tuples past the last item go (NULL otherwise) */
        for (Py_ssize_t i = Py_SIZE(l); i > got; i--)
            Py_CLEAR(l->ob_item[i - 1]);
        Py_SET_SIZE(l, got);
        if (s->spare != NULL && s->keep && got > 0) {
            /* only exact ints in it: keeping it until the next reap()
             * keeps nothing a user could see (no finalizer, no weak
             * reference), and the ring's traverse visits it */
            Py_INCREF(l);
            Py_XSETREF(*s->spare, (PyObject *)l);
        }
        return (PyObject *)l;
    }
    for (int k = 0; k < 3 && s->lists[k] != NULL; k++)
        Py_SET_SIZE(s->lists[k], got);
    ret = PyTuple_New(3);
    for (int k = 0; k < 3; k++) {
        if (ret != NULL)
            PyTuple_SET_ITEM(ret, k, s->lists[k]);
        else
            Py_DECREF(s->lists[k]);
    }
    return ret;
}

PyObject *
pu_res_long_new(RingObject *r, int32_t res)
{
    PyObject *v = PyLong_FromLong(res);

#ifndef Py_GIL_DISABLED
    if (v != NULL) {
        Py_INCREF(v);
        Py_XSETREF(r->res_int, v);   /* an int: its release runs no code */
        r->res_int_val = res;
    }
#else
    (void)r;
#endif
    return v;
}

/* The objects of one completion's item, new references: the tuple the
 * sink needs (NULL for columns), the user data, the result and the flags.
 * 0, or -1 with an exception and nothing made. */
static inline __attribute__((always_inline)) int
item_objects(RingObject *r, SqeObject *rec, const struct io_uring_cqe *c,
             const pu_reap_sink *s, Py_ssize_t at, PyObject **t, PyObject **d,
             PyObject **v, PyObject **f)
{
    *v = pu_res_long(r, c->res);
    *f = c->flags < PU_SMALL_INTS ? pu_long((long)c->flags)
                                  : PyLong_FromUnsignedLong(c->flags);
    if (rec != NULL) {
        *d = pu_rec_data(rec);
    } else if ((*d = pu_rsrc_tag_peek(r, c->user_data)) != NULL) {
        Py_INCREF(*d);   /* a tag's completion (tags.c) */
    } else {
        *d = PyLong_FromUnsignedLongLong(c->user_data);
    }
    if (pu_sink_slot(s, at, *d, t) < 0 || *v == NULL || *f == NULL || *d == NULL) {
        Py_XDECREF(*t);
        Py_XDECREF(*v);
        Py_XDECREF(*f);
        Py_XDECREF(*d);
        return -1;
    }
    return 0;
}

/* One plain final completion (rec_plain()) made into item `at` and its
 * record ended as the general loop of pu_reap_direct() would (it finds
 * nothing to do for it but end the record): 1, with the table's reference
 * in *ended; 0 when c is not plain; -1 when its item could not be made
 * (the CQE stays in the ring). */
static inline __attribute__((always_inline)) int
plain_item(RingObject *r, pu_reap_sink *s, Py_ssize_t at,
           const struct io_uring_cqe *c, SqeObject **ended)
{
    SqeObject *rec = pu_record_lookup(r, c->user_data);
    PyObject *t, *d, *v, *f;

    if (rec == NULL || (c->flags & (IORING_CQE_F_MORE | IORING_CQE_F_BUFFER)) ||
        !rec_plain(rec))
        return 0;
    if (item_objects(r, rec, c, s, at, &t, &d, &v, &f) < 0)
        return -1;
    pu_record_finish(r, rec);
    rec_end_plain(rec);
    *ended = rec;            /* the table's reference */
    pu_sink_put(s, at, t, d, v, f);
    return 1;
}

/* The run of plain final completions from the CQ's entry `head` on, made
 * into items at, at+1, ... within room items and room_ended records,
 * before tail.  A loop of its own: with the general path's variables out
 * of the way, it keeps what it uses in registers.  Returns how many CQEs
 * it took (the first is plain: the caller checked); *err set when an item
 * could not be made (that CQE stays in the ring). */
static __attribute__((noinline)) unsigned
plain_run(RingObject *r, pu_reap_sink *s, Py_ssize_t at, Py_ssize_t room,
          unsigned head, unsigned tail, SqeObject **ended, unsigned room_ended,
          int *err)
{
    unsigned mask = r->ring.cq.ring_mask, shift = io_uring_cqe_shift(&r->ring);
    const struct io_uring_cqe *cqes = r->ring.cq.cqes;
    unsigned lim = tail - head, k;

    if ((Py_ssize_t)lim > room)
        lim = (unsigned)room;
    if (lim > room_ended)
        lim = room_ended;
    for (k = 0; k < lim; k++) {
        int got = plain_item(r, s, at + k, &cqes[((head + k) & mask) << shift],
                             ended + k);
        if (got <= 0) {
            *err = got < 0;
            break;
        }
    }
    return k;
}

/* reap_one()'s usual case: the CQ's first entry is a plain final
 * completion (rec_plain()).  Its tuple, made and the record ended as
 * pu_reap_direct() would, without the sink's list or the chunk loop
 * (about a fifth of a one-NOP round trip's instructions at batch 1).
 * NULL without an exception when the CQ is empty or its first entry is
 * not plain: the caller takes the general path. */
PyObject *
pu_reap_one_plain(RingObject *r)
{
    pu_reap_sink s;
    SqeObject *ended;
    unsigned head = *r->ring.cq.khead;
    unsigned tail = io_uring_smp_load_acquire(r->ring.cq.ktail);
    uint64_t held;
    int got;

    if (head == tail)
        return NULL;
    s.kind = PU_SINK_ONE;
    s.lists[0] = s.lists[1] = s.lists[2] = NULL;
    s.nreuse = 0;
    s.keep = 1;
#ifdef PU_REFILL_TUPLES
    s.spare = &r->one_tuple;
#else
    s.spare = NULL;
#endif
    /* the tuple's allocation may run the GC and finalizers: keep them off
     * the CQ until the head has moved */
    held = pu_side_take(&r->cq_owner);
    got = plain_item(r, &s, 0, &r->ring.cq.cqes[(head & r->ring.cq.ring_mask)
                                                << io_uring_cqe_shift(&r->ring)],
                     &ended);
    if (got == 1)
        io_uring_cq_advance(&r->ring, 1);
    pu_side_put(&r->cq_owner, held);
    if (got <= 0)
        return NULL;    /* not plain, or it failed: the exception is set */
    pu_record_recycle(r, ended);   /* the table's reference */
    return s.lists[0];
}

/* reap()'s direct path, without Cqe objects: each ready CQE becomes item
 * at, at+1, ... of the sink, up to max items.  It stops before a
 * CQE whose value needs more (a result maker such as statx's, or a buffer
 * picked from a buffer ring): the caller moves those through pu_reap() and
 * the queue.  An item's objects are made before its CQE is consumed, so
 * a failure consumes nothing.  Returns how many were made (0 when the CQ is
 * empty or starts with such a CQE), or -1 with an exception when none was.
 * Records that end are dropped after the CQ head moves, in chunks, so code
 * their release runs never sees a half-consumed ring. */
Py_ssize_t
pu_reap_direct(RingObject *r, pu_reap_sink *s, Py_ssize_t at, Py_ssize_t max)
{
    Py_ssize_t got = 0;
    int err = 0, stop = 0;

    while (got < max && !err && !stop) {
        SqeObject *ended[PU_REAP_CHUNK];
        /* io_uring_for_each_cqe(), with the tail read once: what
         * arrives meanwhile is taken by the next round */
        unsigned head = *r->ring.cq.khead, n = 0, nended = 0;
        unsigned tail = io_uring_smp_load_acquire(r->ring.cq.ktail);
        unsigned mask = r->ring.cq.ring_mask, shift = io_uring_cqe_shift(&r->ring);
        /* in a local: the stores below through other pointers would make
         * the compiler load it from the ring again for every CQE */
        struct io_uring_cqe *cqes = r->ring.cq.cqes;
        uint64_t held = pu_side_take(&r->cq_owner);

        for (; head != tail; head++) {
            struct io_uring_cqe *c = &cqes[(head & mask) << shift];
            SqeObject *rec = pu_record_lookup(r, c->user_data);
            PyObject *t, *d, *v, *f, *b;

            if (got == max || nended == PU_REAP_CHUNK)
                break;
            if (rec != NULL && !(c->flags & (IORING_CQE_F_MORE | IORING_CQE_F_BUFFER)) &&
                rec_plain(rec)) {
                /* the usual final completion, and likely a run of them */
                unsigned k = plain_run(r, s, at + got, max - got, head, tail,
                                       ended + nended, PU_REAP_CHUNK - nended, &err);
                got += k;
                nended += k;
                n += k;
                if (err || k == 0)   /* (k is at least 1 without an error) */
                    break;
                head += k - 1;       /* (the loop's head++) */
                continue;
            }
            if (rec == NULL && PU_UD_SLOT(c->user_data) == PU_SLOT_INTERNAL) {
                n++;        /* the runtime's own (a cancel): nobody sees it */
                continue;
            }
            if (rec != NULL && pu_cqe_hidden(rec, c)) {
                pu_end_hidden(r, rec);
                ended[nended++] = rec;
                n++;
                continue;
            }
            if ((c->flags & IORING_CQE_F_BUFFER) ||
                (rec != NULL && rec->op != NULL && rec->op->result != NULL)) {
                stop = 1;
                break;
            }
            if (item_objects(r, rec, c, s, at + got, &t, &d, &v, &f) < 0) {
                err = 1;    /* this CQE stays in the ring */
                break;
            }
            if (rec != NULL && !(c->flags & IORING_CQE_F_MORE)) {
                /* the final completion: as pu_reap() ends a record */
                pu_record_finish(r, rec);
                b = rec->result != NULL ? take_result(rec, c->res) : NULL;
                if (b != NULL)
                    Py_SETREF(v, b);
                pu_op_complete(r, rec, c->res);
                pu_record_release(rec);
                if (rec->chain_prev != 0)
                    pu_record_finish_skipped(r, rec);
                if (pu_chain_failed(rec, c->res))
                    pu_record_finish_suppressed(r, rec, c->res);
                ended[nended++] = rec;   /* the table's reference */
            }
            pu_sink_put(s, at + got++, t, d, v, f);
            if (rec == NULL && PU_UD_IS_RSRC(c->user_data))
                pu_rsrc_tag_done(r, c->user_data);   /* its pin goes */
            n++;
        }
        io_uring_cq_advance(&r->ring, n);
        pu_side_put(&r->cq_owner, held);
        for (unsigned i = 0; i < nended; i++)
            pu_record_recycle(r, ended[i]);   /* the table's reference */
        if (n == 0)
            break;
    }
    if (err) {
        if (got == 0)
            return -1;
        PyErr_Clear();   /* what was made is returned; the failure comes again */
    }
    return got;
}
