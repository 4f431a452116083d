/* async/links.c: timeouts and cancellation in AsyncRing.
 *
 *   - timeout= on every awaitable op (ops.def `async await`; the keyword is
 *     parsed with the shared ones, common_args.c): the op's SQE gets
 *     IOSQE_IO_LINK and is followed by an IORING_OP_LINK_TIMEOUT in a
 *     record of its own, in the same submission.  Both records have side
 *     table entries that name each other (partner); the future completes
 *     once both final completions were reaped, in whichever order the
 *     kernel posts them, so nothing is left in flight when the awaiter
 *     resumes, and each record pins its memory (the op's buffers, the
 *     timeout's timespec) until its own completion.  A failed op whose
 *     timeout fired raises TimeoutError (asyncio.TimeoutError: the builtin
 *     on 3.11+, what asyncio.wait_for() raises before that); an op that
 *     completed anyway keeps its result.
 *   - sleep(): IORING_OP_TIMEOUT whose -ETIME is its success.
 *   - cancel(awaitable): cancel the kernel op behind a future or iterator.
 *   - cancel_fd(fd): IORING_ASYNC_CANCEL_FD | IORING_ASYNC_CANCEL_ALL.
 * async_internal.h says how the files of src/async/ share the work. */
#include "async/async_internal.h"
#include "methods_doc.h"
#include "ops_gen.h"

#include <errno.h>

static PyObject *timeout_error;     /* asyncio.TimeoutError */

/* ---------------------------------------------------------------- entries */

/* Room for n adjacent SQEs: flush first when there is not. */
int
pu_aio_room(AsyncRingObject *self, unsigned n)
{
    if (io_uring_sq_space_left(&self->ring->ring) >= n)
        return 0;
    if (pu_aio_flush_now(self) < 0)
        return -1;
    if (io_uring_sq_space_left(&self->ring->ring) < n) {
        PyErr_Format(pu_SubmissionQueueFull, "%u linked entries do not fit the "
                     "submission queue (%u entries)", n, self->ring->ring.sq.ring_entries);
        return -1;
    }
    return 0;
}

/* Take back rec, prepared and not submitted (no Python code ran since):
 * out of the queue when it is the last entry, else a NOP holding nothing. */
void
pu_aio_unprepare(AsyncRingObject *self, SqeObject *rec)
{
    if (rec->state != PU_PREPARED || rec->sqe == NULL)
        return;
    if (pu_ring_unget_sqe(self->ring, rec))
        return;
    pu_sqe_reset(self->ring, rec->sqe, rec->user_data);
    pu_record_release(rec);
    rec->op = NULL;
    rec->state = PU_NEW;
}

/* The entry whose record has user_data ud, or NULL. */
static pu_aio_wait *
wait_by_ud(AsyncRingObject *self, __u64 ud)
{
    uint32_t slot = PU_UD_SLOT(ud);
    if (slot < self->nwaits && self->waits[slot].user_data == ud)
        return &self->waits[slot];
    return NULL;
}

/* A link timeout of `seconds` right after rec (prepared just now, the last
 * entry): its record, a new reference, with rec's SQE linked to it.  NULL
 * with an exception when it cannot be had, rec then taken back. */
SqeObject *
pu_aio_link_timeout(AsyncRingObject *self, SqeObject *rec, double seconds)
{
    RingObject *r = self->ring;
    SqeObject *t = NULL;
    PyObject *secs;

    /* code a converter of rec's ran may have taken entries after it: the
     * timeout would not follow it */
    if (r->npending == 0 || r->pending[r->npending - 1] != rec) {
        PyErr_SetString(PyExc_RuntimeError, "timeout: the ring was used while the "
                        "operation was being prepared");
        pu_aio_unprepare(self, rec);
        return NULL;
    }
    /* an exact float: the timespec converter runs no Python code */
    secs = PyFloat_FromDouble(seconds);
    if (secs != NULL)
        t = pu_ring_get_sqe(r);
    if (t != NULL && (pu_aio_wait_reserve(self, t) < 0 ||
                      pu_sqe_prep_entry(t, &pu_opdefs[PU_OP_LINK_TIMEOUT], &secs, 1,
                                        NULL) < 0)) {
        pu_aio_unprepare(self, t);
        if (t->state == PU_NEW)
            pu_ring_unget_sqe(self->ring, t);
        Py_CLEAR(t);
    }
    Py_XDECREF(secs);
    if (t == NULL) {
        pu_aio_unprepare(self, rec);
        return NULL;
    }
    rec->sqe->flags |= IOSQE_IO_LINK;
    return t;
}

/* rec's entry (set) and its link timeout t's name each other. */
void
pu_aio_link_entries(AsyncRingObject *self, SqeObject *rec, SqeObject *t)
{
    pu_aio_wait *wr = wait_by_ud(self, rec->user_data);
    pu_aio_wait *wt = &self->waits[PU_UD_SLOT(t->user_data)];
    if (wr == NULL)
        return;   /* nobody waits: both completions are dropped */
    memset(wt, 0, sizeof(*wt));
    wt->user_data = t->user_data;
    wt->flags = PU_AIO_LTIMEOUT;
    wt->partner = rec->user_data;
    wr->partner = t->user_data;
    wr->flags |= PU_AIO_LINKED;
}

/* The final completion *q of one half of a linked pair, its entry taken.
 * 1 when the other half is still to come (what the future needs was kept),
 * 0 when the caller finishes the future with *rec, *q and taken now: after
 * the timeout's completion when the op's came first, those are the op's
 * record and completion (a reference the caller drops). */
int
pu_aio_link_completion(AsyncRingObject *self, SqeObject **rec, CqeObject **qp,
                       pu_aio_wait *taken)
{
    CqeObject *q = *qp;
    pu_aio_wait *w;

    if (taken->flags & PU_AIO_LTIMEOUT) {
        /* -ETIME: it fired and cancelled the op; -EALREADY: it fired while
         * the op ran and interrupted it; -ECANCELED: the op ended first */
        int fired = q->res == -ETIME || q->res == -EALREADY;
        CqeObject *oq = (CqeObject *)taken->held;
        if (oq == NULL) {
            /* before the op's end: tell its entry */
            w = wait_by_ud(self, taken->partner);
            if (w != NULL) {
                w->flags &= (uint16_t)~PU_AIO_LINKED;
                if (fired)
                    w->flags |= PU_AIO_TIMED_OUT;
            }
            return 1;
        }
        /* after it: the future now, from the op's completion */
        taken->held = NULL;
        taken->flags &= (uint16_t)~PU_AIO_LTIMEOUT;
        if (fired)
            taken->flags |= PU_AIO_TIMED_OUT;
        *rec = oq->sqe;
        *qp = oq;
        return 0;
    }
    /* the op's end, its timeout's still to come: what the future needs
     * waits in the timeout's entry (the op's slot is free from now on) */
    w = wait_by_ud(self, taken->partner);
    taken->flags &= (uint16_t)~PU_AIO_LINKED;
    if (w == NULL)
        return 0;
    w->waiter = taken->waiter;
    w->cb = taken->cb;
    w->res = taken->res;
    w->flags = taken->flags | PU_AIO_LTIMEOUT;
    Py_INCREF(q);
    w->held = (PyObject *)q;
    return 1;
}

/* Set TimeoutError for the method called name. */
void
pu_aio_timeout_error(const char *name)
{
    if (timeout_error == NULL) {
        PyObject *m = PyImport_ImportModule("asyncio");
        if (m == NULL)
            return;
        timeout_error = PyObject_GetAttrString(m, "TimeoutError");
        Py_DECREF(m);
        if (timeout_error == NULL)
            return;
    }
    PyErr_Format(timeout_error, "%s() timed out", name);
}

/* ---------------------------------------------------------------- methods */

static PyObject *
AsyncRing_sleep(PyObject *self, PyObject *seconds)
{
    return pu_aio_sleep((AsyncRingObject *)self, seconds);
}

/* Cancel the kernel op whose waiter aw is (a future or an iterator of this
 * ring): 1 when it was in flight, 0 when not, -1 with an exception. */
int
pu_aio_cancel_waiter(AsyncRingObject *self, PyObject *aw)
{
    RingObject *r = self->ring;

    if (self->closed || r == NULL || r->nrecords == 0)
        return 0;
    for (uint32_t s = 0; s < self->nwaits; s++) {
        pu_aio_wait *w = &self->waits[s];
        SqeObject *rec;
        PyObject *res;
        if (w->user_data == 0 || w->waiter != aw)
            continue;
        if (w->flags & PU_AIO_LTIMEOUT)
            return 0;   /* the op ended; its timeout's end is near */
        if (w->flags & PU_AIO_ITER) {
            /* the iterator's own cancel(): it ends after what came */
            res = PyObject_CallMethod(aw, "cancel", NULL);
            Py_XDECREF(res);
            return res == NULL ? -1 : 1;
        }
        rec = s < r->nslots ? r->slots[s] : NULL;
        if (rec == NULL || rec->user_data != w->user_data)
            return 0;
        if (!(w->flags & PU_AIO_CANCEL_SENT)) {
            w->flags |= PU_AIO_CANCEL_SENT | PU_AIO_USER_CANCEL;
            if (pu_aio_internal_cancel(self, rec->user_data) < 0 || pu_aio_flush_now(self) < 0)
                return -1;
        }
        return 1;
    }
    return 0;
}

static PyObject *
AsyncRing_cancel(PyObject *self, PyObject *aw)
{
    int r = pu_aio_cancel_waiter((AsyncRingObject *)self, aw);
    return r < 0 ? NULL : PyBool_FromLong(r);
}

/* sleep(seconds)'s future (chain.c's timeout uses one too) */
PyObject *
pu_aio_sleep(AsyncRingObject *self, PyObject *seconds)
{
    return pu_aio_start_op(self, &pu_opdefs[PU_OP_TIMEOUT], &seconds, 1, NULL,
                           PU_AIO_NONE | PU_AIO_SLEEP, NULL, NULL, "sleep", -1);
}

static PyObject *
AsyncRing_cancel_fd(PyObject *self, PyObject *args, PyObject *kwds)
{
    static char *kw[] = {"fd", "flags", NULL};
    PyObject *fd, *argv[2], *fut;
    unsigned int flags = 0;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|I:cancel_fd", kw, &fd, &flags))
        return NULL;
    argv[0] = fd;
    argv[1] = PyLong_FromUnsignedLong(flags | IORING_ASYNC_CANCEL_ALL);
    if (argv[1] == NULL)
        return NULL;
    fut = pu_aio_start_op((AsyncRingObject *)self, &pu_opdefs[PU_OP_CANCEL_FD], argv, 2,
                          NULL, 0, NULL, NULL, "cancel_fd", -1);
    Py_DECREF(argv[1]);
    return fut;
}

static PyObject *
AsyncRing_chain(PyObject *self, PyObject *args, PyObject *kwds)
{
    static char *kw[] = {"timeout", NULL};
    PyObject *timeout = Py_None;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|$O:chain", kw, &timeout))
        return NULL;
    return pu_aio_chain_new((AsyncRingObject *)self, timeout);
}

PyMethodDef pu_aio_links_methods[] = {
    {"sleep", (PyCFunction)AsyncRing_sleep, METH_O, PU_DOC_AsyncRing_sleep},
    {"cancel", (PyCFunction)AsyncRing_cancel, METH_O, PU_DOC_AsyncRing_cancel},
    {"cancel_fd", (PyCFunction)(void (*)(void))AsyncRing_cancel_fd,
     METH_VARARGS | METH_KEYWORDS, PU_DOC_AsyncRing_cancel_fd},
    {"chain", (PyCFunction)(void (*)(void))AsyncRing_chain, METH_VARARGS | METH_KEYWORDS,
     PU_DOC_AsyncRing_chain},
    {NULL, NULL, 0, NULL},
};
