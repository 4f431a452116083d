/* async/selector.c: AsyncRing's selector mode, for py_io_uring's EventLoop
 * (docs/loop.md, "The decision").  Why a mode of AsyncRing and not a ring
 * of its own: the loop has ONE ring.  The RingSelector's one-shot polls
 * (asyncio's add_reader/add_writer, the selector transports) and every
 * operation of the loop's AsyncRing (sock_*, the completion transport)
 * go on the same ring, and the selector's select() is the iteration's one
 * io_uring_enter: it submits what the iteration queued (polls armed and
 * removed, operations started) and waits for a completion with the loop's
 * timeout (an IORING_ENTER_EXT_ARG timespec), the GIL released; then it
 * reaps here, in C: an operation's completion goes to its waiter exactly
 * as the eventfd's reader would have handed it (dispatch.c), a poll's is
 * returned to the RingSelector, which keeps the fd <-> token bookkeeping
 * in Python (loop.py).  In this mode the AsyncRing has no eventfd, adds no
 * reader to the loop and schedules no call_soon() flush: the next select()
 * is the flush.
 *
 * A poll is a bare SQE whose user_data is the selector's token: a positive
 * number under 2**63 (no record's: those carry PU_UD_TAG) whose low half is
 * not all ones (the runtime's own), so the reap hands it over with no
 * record behind it.  A removal is an IORING_OP_POLL_REMOVE of the token,
 * whose own completion is the runtime's (PU_UD_INTERNAL, never seen); the
 * removed poll's -ECANCELED comes back with a token the selector no longer
 * knows, and is dropped there.  Polls pin no memory: the ring's teardown
 * (closing its fd) ends those still armed. */
#include "async/async_internal.h"
#include "core/reap_sink.h"
#include "core/submit.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <unistd.h>

/* _selector_mode(): called once, before first use, by the RingSelector
 * that makes the ring: the eventfd goes (nothing reads it any more). */
static PyObject *
AsyncRing_selector_mode(AsyncRingObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->ring == NULL || !self->ring->initialised || self->closed) {
        PyErr_SetString(PyExc_RuntimeError, "AsyncRing is closed");
        return NULL;
    }
    if (self->loop != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_selector_mode(): the AsyncRing is "
                        "bound to a loop already");
        return NULL;
    }
    if (!self->selector_mode) {
        if (self->efd >= 0) {
            int ret = io_uring_unregister_eventfd(&self->ring->ring);
            if (ret < 0)
                return pu_err_errno(-ret);
            close(self->efd);
            self->efd = -1;
        }
        self->selector_mode = 1;
    }
    Py_RETURN_NONE;
}

/* A bare SQE (no record), the SQ flushed first when full. */
static struct io_uring_sqe *
bare_sqe(AsyncRingObject *self, __u64 ud)
{
    struct io_uring_sqe *sqe = pu_get_sqe(self->ring);
    if (sqe == NULL) {
        if (pu_aio_flush_now(self) < 0)
            return NULL;
        sqe = pu_get_sqe(self->ring);
        if (sqe == NULL) {
            PyErr_SetString(pu_SubmissionQueueFull, "_select(): no room for a poll");
            return NULL;
        }
    }
    pu_sqe_reset(self->ring, sqe, ud);
    return sqe;
}

static int
token_of(PyObject *o, __u64 *token)
{
    unsigned long long t = PyLong_AsUnsignedLongLong(o);
    if (t == (unsigned long long)-1 && PyErr_Occurred())
        return -1;
    if (t == 0 || (t >> 63) || (t & 0xffffffffu) == 0xffffffffu) {
        PyErr_SetString(PyExc_ValueError, "_select(): a poll token must be "
                        "positive, under 2**63, and its low 32 bits not all ones");
        return -1;
    }
    *token = (__u64)t;
    return 0;
}

/* Arm the polls (fd, mask, token) and remove the polls of the tokens. */
static int
queue_polls(AsyncRingObject *self, PyObject *arm, PyObject *remove)
{
    PyObject *seq;
    Py_ssize_t n;

    seq = PySequence_Fast(remove, "_select(): remove must be a sequence of tokens");
    if (seq == NULL)
        return -1;
    n = PySequence_Fast_GET_SIZE(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        struct io_uring_sqe *sqe;
        __u64 token;
        if (token_of(PySequence_Fast_GET_ITEM(seq, i), &token) < 0 ||
            (sqe = bare_sqe(self, PU_UD_INTERNAL)) == NULL) {
            Py_DECREF(seq);
            return -1;
        }
        io_uring_prep_poll_remove(sqe, token);
        sqe->user_data = PU_UD_INTERNAL;
    }
    Py_DECREF(seq);
    seq = PySequence_Fast(arm, "_select(): arm must be a sequence of (fd, mask, token)");
    if (seq == NULL)
        return -1;
    n = PySequence_Fast_GET_SIZE(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *t = PySequence_Fast_GET_ITEM(seq, i);
        struct io_uring_sqe *sqe;
        __u64 token;
        int fd;
        unsigned mask;
        if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) != 3) {
            PyErr_SetString(PyExc_TypeError, "_select(): arm must be a sequence of "
                            "(fd, mask, token)");
            goto fail;
        }
        {
            long v = PyLong_AsLong(PyTuple_GET_ITEM(t, 0));
            if (v == -1 && PyErr_Occurred())
                goto fail;
            if (v < 0 || v > INT_MAX) {
                PyErr_SetString(PyExc_ValueError, "_select(): bad file descriptor");
                goto fail;
            }
            fd = (int)v;
        }
        mask = (unsigned)PyLong_AsUnsignedLong(PyTuple_GET_ITEM(t, 1));
        if (mask == (unsigned)-1 && PyErr_Occurred())
            goto fail;
        if (token_of(PyTuple_GET_ITEM(t, 2), &token) < 0 ||
            (sqe = bare_sqe(self, token)) == NULL)
            goto fail;
        io_uring_prep_poll_add(sqe, fd, mask);
        sqe->user_data = token;
    }
    Py_DECREF(seq);
    return 0;
fail:
    Py_DECREF(seq);
    return -1;
}

/* Submit what is queued and wait for one completion, timeout seconds at
 * most (< 0: no limit; 0: submit only), in one io_uring_enter: liburing's
 * submit_and_wait(_timeout) with the kernel's EXT_ARG (Linux 5.11; older
 * kernels get liburing's timeout SQE, in the same enter).  No wait when
 * completions are there already.  A signal: its handlers run (an
 * exception from one is raised), then the wait goes on; asyncio's handlers
 * write to the self-pipe, whose poll ends it. */
static int
enter(AsyncRingObject *self, double timeout)
{
    RingObject *r = self->ring;
    double deadline = timeout > 0 ? pu_monotonic() + timeout : -1.0;
    int wait = timeout != 0.0;

    if (pu_ring_check_sq(r) < 0)
        return -1;
    if (r->cq_owner != 0) {
        PyErr_SetString(PyExc_RuntimeError, "_select(): another thread is waiting "
                        "on the loop's ring");
        return -1;
    }
    for (;;) {
        struct io_uring_cqe *cqe;
        struct __kernel_timespec ts;
        unsigned long sq_prev, cq_prev;
        int ret;

        if (!wait || PU_CQ_LEN(r) > 0 || io_uring_cq_ready(&r->ring) > 0)
            return pu_aio_flush_now(self) < 0 ? -1 : 0;
        if (deadline >= 0) {
            double left = deadline - pu_monotonic();
            if (left <= 0)
                return pu_aio_flush_now(self) < 0 ? -1 : 0;
            ts.tv_sec = (long long)left;
            ts.tv_nsec = (long long)((left - (double)ts.tv_sec) * 1e9);
        }
        pu_prepare_chains(r);
        pu_mark_submitted(r);   /* before the GIL goes */
        if (io_uring_sq_ready(&r->ring) > 0)
            self->submits++;
        sq_prev = pu_side_take(&r->sq_owner);
        cq_prev = pu_side_take(&r->cq_owner);
        Py_BEGIN_ALLOW_THREADS
        if (deadline >= 0)
            ret = io_uring_submit_and_wait_timeout(&r->ring, &cqe, 1, &ts, NULL);
        else
            ret = io_uring_submit_and_wait(&r->ring, 1);
        Py_END_ALLOW_THREADS
        pu_side_put(&r->cq_owner, cq_prev);
        pu_side_put(&r->sq_owner, sq_prev);
        if (ret == -EINTR) {
            if (PyErr_CheckSignals() < 0 || pu_still_usable(r) < 0)
                return -1;
            continue;
        }
        if (ret < 0 && ret != -ETIME && ret != -EAGAIN) {
            pu_err_errno(-ret);
            return -1;
        }
        return 0;
    }
}

/* _select(arm, remove, timeout): arm the polls of arm ((fd, poll mask,
 * token) each), remove the polls of the tokens of remove, submit them with
 * every operation queued, wait up to timeout (None: no limit; <= 0: not at
 * all), hand the operations' completions to their waiters, and return the
 * polls' as [(token, res), ...]. */
static PyObject *
AsyncRing_select(AsyncRingObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    double timeout = -1.0;
    PyObject *polls;

    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "_select() takes exactly 3 arguments");
        return NULL;
    }
    if (!self->selector_mode) {
        PyErr_SetString(PyExc_RuntimeError, "_select(): the AsyncRing is not in "
                        "selector mode");
        return NULL;
    }
    if (pu_aio_check_open(self) < 0)
        return NULL;
    if (args[2] != Py_None) {
        timeout = PyFloat_AsDouble(args[2]);
        if (timeout == -1.0 && PyErr_Occurred())
            return NULL;
        if (isnan(timeout)) {
            PyErr_SetString(PyExc_ValueError, "_select(): timeout is NaN");
            return NULL;
        }
        if (timeout <= 0)
            timeout = 0.0;
        else if (isinf(timeout))
            timeout = -1.0;
    }
    if (queue_polls(self, args[0], args[1]) < 0)
        return NULL;
    /* a new iteration: the next operation checks the running loop again */
    self->flush_scheduled = 0;
    if (enter(self, timeout) < 0)
        return NULL;
    polls = PyList_New(0);
    if (polls == NULL)
        return NULL;
    if (pu_aio_process_into(self, polls) < 0) {
        if (!PyErr_Occurred())
            return polls;   /* reported as unraisable already */
        Py_DECREF(polls);
        return NULL;
    }
    return polls;
}

/* _close_now(): close a ring no loop will close (a RingSelector used on
 * its own, or one whose loop never used its AsyncRing): what is in flight
 * is cancelled, waited for (bounded) and dropped. */
static PyObject *
AsyncRing_close_now(AsyncRingObject *self, PyObject *Py_UNUSED(ignored))
{
    if (!self->closed) {
        self->closing = 1;
        pu_aio_finish_close(self);
    }
    Py_RETURN_NONE;
}

PyMethodDef pu_aio_selector_methods[] = {
    {"_selector_mode", (PyCFunction)AsyncRing_selector_mode, METH_NOARGS, NULL},
    {"_select", (PyCFunction)(void (*)(void))AsyncRing_select, METH_FASTCALL, NULL},
    {"_close_now", (PyCFunction)AsyncRing_close_now, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};
