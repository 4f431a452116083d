/* async/dispatch.c: AsyncRing's driver.  An operation starts as a record of
 * the ring with a future (start_op); the first of a loop iteration schedules
 * one flush with loop.call_soon(); the eventfd's reader (and a flush that
 * saw completions) reaps in batches and hands each completion to its
 * waiter: a future gets the value or the OSError, a multishot iterator its
 * item (multishot.c), a send_all its next send (sock.c).
 * async_internal.h says how the files of src/async/ share the work. */
#include "async/async_internal.h"
#include "core/reap_sink.h"
#include "ops_gen.h"

#include <errno.h>
#include <unistd.h>

/* ---------------------------------------------------------------- submitting */

int
pu_aio_schedule_flush(AsyncRingObject *self)
{
    PyObject *h;
    if (self->flush_scheduled)
        return 0;
    h = PyObject_CallOneArg(self->call_soon, self->flush_cb);
    if (h == NULL)
        return -1;
    Py_DECREF(h);
    self->flush_scheduled = 1;
    return 0;
}

int
pu_aio_flush_now(AsyncRingObject *self)
{
    int ret;
    if (io_uring_sq_ready(&self->ring->ring) == 0)
        return 0;
    ret = pu_ring_flush(self->ring, 0);
    if (ret < 0)
        return -1;
    self->submits++;
    return ret;
}

/* A record for the next SQE; a full SQ is flushed first. */
SqeObject *
pu_aio_new_record(AsyncRingObject *self)
{
    if (io_uring_sq_space_left(&self->ring->ring) == 0 && pu_aio_flush_now(self) < 0)
        return NULL;
    return pu_ring_get_sqe(self->ring);
}

/* An SQE of the runtime's own (a cancel), whose completion nobody sees. */
int
pu_aio_internal_cancel(AsyncRingObject *self, __u64 target)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&self->ring->ring);
    if (sqe == NULL) {
        if (pu_aio_flush_now(self) < 0)
            return -1;
        sqe = io_uring_get_sqe(&self->ring->ring);
        if (sqe == NULL) {
            PyErr_SetString(pu_SubmissionQueueFull, "no room for a cancel");
            return -1;
        }
    }
    io_uring_prep_cancel64(sqe, target, 0);
    sqe->user_data = PU_UD_INTERNAL;
    return pu_aio_schedule_flush(self);
}

/* The done callback of every operation's future: a cancelled future
 * cancels its operation in the kernel.  Bound to the record. */
static PyObject *
record_done_cb(PyObject *recobj, PyObject *fut)
{
    SqeObject *rec = (SqeObject *)recobj;
    AsyncRingObject *a = rec->ring ? rec->ring->owner : NULL;
    int c;

    if (rec->waiter != fut || rec->state == PU_DONE || a == NULL || a->closed)
        Py_RETURN_NONE;
    c = truth0(fut, pu_aio_s.cancelled);
    if (c < 0)
        return NULL;
    if (c && pu_aio_internal_cancel(a, rec->user_data) < 0)
        return NULL;
    Py_RETURN_NONE;
}

PyMethodDef pu_aio_record_done_def = {"_cancel_in_kernel", record_done_cb, METH_O, NULL};
/* A failed prep leaves its entry a NOP nobody waits for: it still has to
 * go in, and the exception being raised must survive scheduling that. */
void
pu_aio_flush_orphan_nop(AsyncRingObject *self)
{
    pu_exc_state saved;
    pu_exc_save(&saved);
    if (pu_aio_schedule_flush(self) < 0)
        PyErr_Clear();
    pu_exc_restore(&saved);
}

/* link flags would tie the op to whatever happens to be prepared next */
const pu_common_rules pu_aio_rules = {
    0, IOSQE_FIXED_FILE | IOSQE_ASYNC | IOSQE_BUFFER_SELECT,
    "sqe_flags: only IOSQE_FIXED_FILE, IOSQE_ASYNC and IOSQE_BUFFER_SELECT "
    "apply to an AsyncRing operation"};

/* Prepare op into a new record whose waiter is a new future; the future,
 * or NULL with the exception the prep raised. */
PyObject *
pu_aio_start_op(AsyncRingObject *self, const pu_opdef *op, PyObject *const *args,
         Py_ssize_t nargs, PyObject *kwnames, uint16_t aio, PyObject *data,
         const pu_common *common)
{
    SqeObject *rec;
    PyObject *fut, *r, *cb;

    if (pu_aio_check_open(self) < 0 || pu_aio_bind_loop(self) < 0)
        return NULL;
    fut = pu_aio_new_future(self, (op->async_flags & PU_ASYNC_FD) != 0);
    if (fut == NULL)
        return NULL;
    rec = pu_aio_new_record(self);
    if (rec == NULL) {
        Py_DECREF(fut);
        return NULL;
    }
    if (common != NULL)
        pu_common_apply(rec, common);
    /* a failed prep leaves a harmless NOP with no waiter */
    r = pu_sqe_prep(rec, op, args, nargs, kwnames);
    if (r == NULL)
        goto fail;
    Py_DECREF(r);
    cb = PyCFunction_New(&pu_aio_record_done_def, (PyObject *)rec);
    if (cb == NULL || call1_void(fut, pu_aio_s.add_done_callback, cb) < 0) {
        Py_XDECREF(cb);
        goto fail;
    }
    rec->aio = aio;
    if (op->async_flags & PU_ASYNC_FD)
        rec->aio |= PU_AIO_FD;
    if (op->async_flags & PU_ASYNC_PEER)
        rec->aio |= PU_AIO_PEER;
    Py_XINCREF(data);
    Py_XSETREF(rec->data, data);
    Py_INCREF(fut);
    rec->waiter = fut;
    rec->waiter_cb = cb;
    self->ops++;
    if (pu_aio_schedule_flush(self) < 0) {
        Py_DECREF(rec);
        Py_DECREF(fut);
        return NULL;
    }
    Py_DECREF(rec);
    return fut;
fail:
    pu_aio_flush_orphan_nop(self);
    Py_DECREF(rec);
    Py_DECREF(fut);
    return NULL;
}

PyObject *
pu_async_op(PyObject *self, const pu_opdef *op, PyObject *const *args,
            Py_ssize_t nargs, PyObject *kwnames)
{
    pu_call_args ca;
    pu_common c;
    PyObject *fut;
    if (pu_split_common(args, nargs, kwnames, &ca, &c, &pu_aio_rules) < 0) {
        Py_XDECREF(ca.owned);
        return NULL;
    }
    fut = pu_aio_start_op((AsyncRingObject *)self, op, ca.args, nargs, ca.kwnames,
                   0, NULL, &c);
    Py_XDECREF(ca.owned);
    return fut;
}
/* ---------------------------------------------------------------- results */

/* A result nobody will take: close the fds it holds (ops.def `fd`). */
void
pu_aio_drop_result(SqeObject *rec, CqeObject *q)
{
    PyObject *v;
    if (!(rec->aio & PU_AIO_FD) || q->res < 0)
        return;
    v = pu_cqe_result(q);
    if (v == NULL) {
        PyErr_Clear();
        return;
    }
    if (PyTuple_Check(v)) {
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(v); i++)
            pu_aio_close_fd(PyTuple_GET_ITEM(v, i));
    } else {
        pu_aio_close_fd(v);
    }
    Py_DECREF(v);
}

/* The same for an op's result (ops.def `fd`) */
static void
drop_value(SqeObject *rec, PyObject *v)
{
    if (v != NULL && (rec->aio & PU_AIO_FD))
        pu_aio_drop_fds(v);
}

/* The peer of a new connection: the record's, or getpeername()'s. */
static PyObject *
peer_of(SqeObject *rec, int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (rec->has_peer)
        return pu_sqe_peer(rec);
    /* a peer that already reset has no name left; the fd is still news */
    if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0)
        Py_RETURN_NONE;
    return pu_sockaddr_to_python((struct sockaddr *)&ss, len);
}

/* The completion's value as the awaiting code gets it; NULL with an
 * exception set (an OSError for a failed operation). */
PyObject *
pu_aio_result_value(SqeObject *rec, CqeObject *q)
{
    PyObject *v, *peer, *sock;

    if (rec->aio & PU_AIO_NONE) {
        if (q->res < 0)
            return pu_err_errno(-q->res);
        Py_RETURN_NONE;
    }
    v = pu_cqe_result(q);
    if (v == NULL || !(rec->aio & (PU_AIO_PEER | PU_AIO_SOCKET)))
        return v;
    peer = peer_of(rec, q->res);
    if (peer == NULL)
        goto fail;
    if (rec->aio & PU_AIO_SOCKET) {
        if (pu_aio_socket_type == NULL) {
            PyObject *m = PyImport_ImportModule("socket");
            if (m == NULL)
                goto fail;
            pu_aio_socket_type = PyObject_GetAttrString(m, "socket");
            Py_DECREF(m);
            if (pu_aio_socket_type == NULL)
                goto fail;
        }
        {
            PyObject *kw = Py_BuildValue("{s:O}", "fileno", v);
            PyObject *empty = PyTuple_New(0);
            sock = (kw && empty) ? PyObject_Call(pu_aio_socket_type, empty, kw) : NULL;
            Py_XDECREF(kw);
            Py_XDECREF(empty);
        }
        if (sock == NULL)
            goto fail;
        Py_SETREF(v, sock);
        /* the fd is O_NONBLOCK already; the object learns it here */
        sock = PyObject_CallMethod(v, "setblocking", "O", Py_False);
        if (sock == NULL) {
            Py_DECREF(peer);
            Py_DECREF(v);   /* the socket object closes the fd */
            return NULL;
        }
        Py_DECREF(sock);
    }
    return Py_BuildValue("(NN)", v, peer);
fail:
    Py_XDECREF(peer);
    if (v != NULL)
        pu_aio_close_fd(v);   /* an int not yet wrapped: nobody else will */
    Py_XDECREF(v);
    return NULL;
}

static int
resolve(PyObject *fut, PyObject *value)
{
    if (value != NULL)
        return call1_void(fut, pu_aio_s.set_result, value);
    value = pu_exc_take();
    if (value == NULL)
        return -1;
    {
        int r = call1_void(fut, pu_aio_s.set_exception, value);
        Py_DECREF(value);
        return r;
    }
}


/* One completion: tell its waiter. */
static int
dispatch(AsyncRingObject *self, CqeObject *q)
{
    SqeObject *rec = q->sqe;
    PyObject *fut, *cb, *value;
    int more;

    self->completions++;
    if (rec == NULL)
        return 0;   /* a message from another ring: AsyncRing has no taker */
    more = (q->flags & IORING_CQE_F_MORE) != 0;
    if (rec->aio & PU_AIO_ITER) {
        if (rec->waiter != NULL)
            pu_aio_iter_deliver(rec->waiter, rec, q);
        else
            pu_aio_drop_result(rec, q);   /* its iterator is gone */
        return 0;
    }
    fut = rec->waiter;
    if (fut == NULL)
        return 0;   /* a NOP left by a failed prep */
    if (more) {
        /* the result comes first, the end later (send_zc's notification) */
        if (!(rec->aio & PU_AIO_STASHED)) {
            rec->aio_res = q->res;
            rec->aio |= PU_AIO_STASHED;
        }
        return 0;
    }
    if ((rec->aio & PU_AIO_STASHED) && (q->flags & IORING_CQE_F_NOTIF))
        q->res = rec->aio_res;
    /* the final completion: the record is out of the table */
    rec->waiter = NULL;
    cb = rec->waiter_cb;
    rec->waiter_cb = NULL;
    if ((rec->aio & PU_AIO_SENDALL) && q->res >= 0) {
        int r = pu_aio_continue_send_all(self, rec, q, fut, cb);
        if (r == 0)
            return 0;             /* the next send carries fut and cb on */
        if (r < 0) {
            value = NULL;
            goto resolve_it;      /* keep the exception for the future */
        }
    }
    /* before the value is made: making it may leave an exception set */
    if (cb != NULL && call1_void(fut, pu_aio_s.remove_done_callback, cb) < 0)
        PyErr_Clear();
    Py_CLEAR(cb);
    if (!(rec->aio & PU_AIO_SENDALL) || q->res < 0)
        value = pu_aio_result_value(rec, q);
    else if (rec->aio & PU_AIO_NONE)
        value = (Py_INCREF(Py_None), Py_None);
    else
        value = PyLong_FromSsize_t(PyObject_Length(PyTuple_GET_ITEM(rec->data, 1)));
resolve_it:
    if (cb != NULL) {
        pu_exc_state saved;
        pu_exc_save(&saved);
        if (call1_void(fut, pu_aio_s.remove_done_callback, cb) < 0)
            PyErr_Clear();
        pu_exc_restore(&saved);
        Py_DECREF(cb);
    }
    /* a cancelled future refuses the result (no done() call per op for
     * the rare case): nobody takes it, and fds in it are closed */
    if (resolve(fut, value) < 0) {
        PyErr_Clear();
        drop_value(rec, value);
    }
    Py_XDECREF(value);
    Py_DECREF(fut);
    return 0;
}


/* Reap and dispatch what is ready, in batches. */
int
pu_aio_process(AsyncRingObject *self)
{
    RingObject *r = self->ring;
    int err = 0;

    if (!r->initialised)
        return 0;
    if (r->setup_flags & IORING_SETUP_DEFER_TASKRUN)
        io_uring_get_events(&r->ring);   /* the eventfd was only a hint */
    for (int round = 0; round < PU_DRAIN_ROUNDS; round++) {
        if (pu_reap(r) < 0)
            err = -1;
        if (PU_CQ_LEN(r) == 0)
            break;
        while (r->cq_start < r->cq_end) {
            CqeObject *q = r->cq[r->cq_start];
            r->cq[r->cq_start++] = NULL;
            if (dispatch(self, q) < 0)
                unraisable("AsyncRing: delivering a completion");
            Py_DECREF(q);
        }
        r->cq_start = r->cq_end = 0;
        if (err)
            break;
    }
    if (self->closing && !self->closed && r->nrecords == 0)
        pu_aio_finish_close(self);
    return err;
}

/* The loop's call_soon(): submit everything prepared since the last one. */
static PyObject *
AsyncRing_flush_cb(PyObject *op, PyObject *Py_UNUSED(unused))
{
    AsyncRingObject *self = (AsyncRingObject *)op;
    self->flush_scheduled = 0;
    if (self->closed || !self->ring->initialised)
        Py_RETURN_NONE;
    if (pu_aio_flush_now(self) < 0)
        return NULL;
    /* ops that completed while being submitted need no trip through epoll:
     * take the eventfd's count first (so nothing later is missed), then
     * deliver, and the reader is not woken for what was delivered here */
    if (io_uring_cq_ready(&self->ring->ring) > 0) {
        uint64_t v;
        if (read(self->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
            return pu_err_errno(errno);
        if (pu_aio_process(self) < 0)
            return NULL;
    }
    Py_RETURN_NONE;
}

/* The eventfd's reader. */
static PyObject *
AsyncRing_ready_cb(PyObject *op, PyObject *Py_UNUSED(unused))
{
    AsyncRingObject *self = (AsyncRingObject *)op;
    uint64_t v;
    if (self->efd >= 0 && read(self->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        return pu_err_errno(errno);
    if (self->closed)
        Py_RETURN_NONE;
    if (pu_aio_process(self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

PyMethodDef pu_aio_flush_def = {"_flush", AsyncRing_flush_cb, METH_NOARGS, NULL};
PyMethodDef pu_aio_ready_def = {"_on_ready", AsyncRing_ready_cb, METH_NOARGS, NULL};
