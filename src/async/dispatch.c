/* async/dispatch.c: AsyncRing's driver.  An operation starts as a record of
 * the ring with a future (start_op); the first of a loop iteration schedules
 * one flush with loop.call_soon(); the eventfd's reader (and a flush that
 * saw completions) reaps in batches and hands each completion to its
 * waiter: a future gets the value or the OSError, a multishot iterator its
 * item (multishot.c), a send_all its next send (sock.c).
 * async_internal.h says how the files of src/async/ share the work. */
#include "async/async_internal.h"
#include "core/reap_sink.h"
#include "register/register.h"
#include "ops_gen.h"

#include <errno.h>
#include <unistd.h>

/* ---------------------------------------------------------------- submitting */

int
pu_aio_schedule_flush_now(AsyncRingObject *self)
{
    PyObject *h;
    if (self->selector_mode) {
        /* the loop's select() submits it (selector.c) */
        self->flush_scheduled = 1;
        return 0;
    }
    if (self->call_soon == NULL)
        return 0;   /* cleared by the GC: a cancel from an iterator's dealloc
                       has no loop left to go in with; the teardown ends it */
    h = PyObject_CallOneArg(self->call_soon, self->flush_cb);
    if (h == NULL)
        return -1;
    Py_DECREF(h);
    self->flush_scheduled = 1;
    return 0;
}

/* A ring set up disabled is enabled by its first submit, which makes this
 * thread a SINGLE_ISSUER ring's issuer: the event loop's ring is made when
 * the loop is, maybe in another thread than the one that runs it.  After
 * that, another thread is refused here, with what it means, rather than
 * by the kernel's bare EEXIST.  (Slow path of pu_aio_check_issuer().) */
int
pu_aio_check_issuer_slow(AsyncRingObject *self)
{
    RingObject *r = self->ring;

    if (r->disabled) {
        int ret = pu_ring_enable(r);
        if (ret < 0) {
            pu_err_errno(-ret);
            return -1;
        }
    }
    if (PU_ISSUER_HERE(r))
        return 0;
    PyErr_SetString(PyExc_RuntimeError, self->loop_owned || self->sel != NULL
                    ? "this event loop's ring was set up with "
                      "IORING_SETUP_SINGLE_ISSUER, and the kernel takes its "
                      "submissions only from the thread that first ran the "
                      "loop: run it there, or make the loop with "
                      "py_io_uring.EventLoop(single_issuer=False)"
                    : "this AsyncRing's ring was set up with "
                      "IORING_SETUP_SINGLE_ISSUER, and the kernel takes its "
                      "submissions only from the thread that first submitted");
    return -1;
}

int
pu_aio_flush_now(AsyncRingObject *self)
{
    int ret;
    if (self->ring->fork_generation != pu_fork_generation)
        return pu_ring_check_sq(self->ring);   /* a forked child's copy: its
                                                  memory is not mapped */
    if (io_uring_sq_ready(&self->ring->ring) == 0)
        return 0;
    if (pu_aio_check_issuer(self) < 0)
        return -1;
    ret = pu_ring_flush(self->ring, 0);
    if (ret < 0)
        return -1;
    self->submits++;
    return ret;
}

/* An SQE of the runtime's own (a cancel), whose completion nobody sees. */
int
pu_aio_internal_cancel(AsyncRingObject *self, __u64 target)
{
    struct io_uring_sqe *sqe = pu_get_sqe(self->ring);
    if (sqe == NULL) {
        if (pu_aio_flush_now(self) < 0)
            return -1;
        sqe = pu_get_sqe(self->ring);
        if (sqe == NULL) {
            PyErr_SetString(pu_SubmissionQueueFull, "no room for a cancel");
            return -1;
        }
    }
    pu_sqe_reset(self->ring, sqe, PU_UD_INTERNAL);
    io_uring_prep_cancel64(sqe, target, 0);
    sqe->user_data = PU_UD_INTERNAL;
    return pu_aio_schedule_flush(self);
}

/* ---------------------------------------------------------------- waiters */

/* If fut, the future of rec's op, was cancelled, cancel the op in the
 * kernel, once, submitted now rather than at the next flush: the code the
 * cancellation resumes may make a peer send more, which a receive still
 * armed would take.  0, or -1 with an exception. */
int
pu_aio_cancel_in_kernel(SqeObject *rec, PyObject *fut)
{
    AsyncRingObject *a = rec->ring ? rec->ring->owner : NULL;
    pu_aio_wait *w;
    int c;

    if (a == NULL || a->closed || rec->state == PU_DONE)
        return 0;
    w = pu_aio_wait_of(a, rec);
    if (w == NULL || w->waiter != fut || (w->flags & PU_AIO_CANCEL_SENT))
        return 0;   /* the op ended, its future moved on (send_all), or
                       the cancel went already (a receive's cancel()) */
    c = truth0(fut, pu_aio_s.cancelled);
    if (c <= 0)
        return c;
    if (pu_aio_internal_cancel(a, rec->user_data) < 0)
        return -1;
    w = pu_aio_wait_of(a, rec);   /* Python code ran: the table may have moved */
    if (w != NULL)
        w->flags |= PU_AIO_CANCEL_SENT;
    return pu_aio_flush_now(a) < 0 ? -1 : 0;
}

/* The done callback of every operation's future: a cancelled future
 * cancels its operation in the kernel.  Bound to the record.  asyncio runs
 * it with call_soon(), before the task that awaited the future resumes
 * (it was added first); a coroutine that cancels a future by hand and
 * awaits it resumes at once, before this (recv.c settles receives then). */
static PyObject *
record_done_cb(PyObject *recobj, PyObject *fut)
{
    if (pu_aio_cancel_in_kernel((SqeObject *)recobj, fut) < 0)
        return NULL;
    Py_RETURN_NONE;
}

PyMethodDef pu_aio_record_done_def = {"_cancel_in_kernel", record_done_cb, METH_O, NULL};

/* Make room in the side table for rec's entry, before its prep (which may
 * run Python code that starts other ops): -1 with MemoryError. */
int
pu_aio_wait_reserve(AsyncRingObject *self, SqeObject *rec)
{
    uint32_t slot = PU_UD_SLOT(rec->user_data);

    if (slot >= self->nwaits) {
        uint32_t n = self->ring->nslots > slot ? self->ring->nslots : slot + 1;
        pu_aio_wait *t = PyMem_Realloc(self->waits, (size_t)n * sizeof(*t));
        if (t == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        memset(t + self->nwaits, 0, (size_t)(n - self->nwaits) * sizeof(*t));
        self->waits = t;
        self->nwaits = n;
    }
    if (self->waits[slot].user_data != 0) {
        /* an earlier occupant's, whose end nobody handed out (cannot
         * happen: dispatch() frees it at the final completion, and
         * pu_aio_new_record() passes over a slot whose entry is still to
         * be told) */
        pu_aio_wait old = pu_aio_wait_take(&self->waits[slot]);
        pu_aio_wait_release(&old);
    }
    return 0;
}

/* Fill rec's entry (reserved, and free): the waiter is a future (a new
 * reference is taken, and a done callback bound to rec cancels the op when
 * the future is cancelled) or, with PU_AIO_ITER, a borrowed iterator.
 * -1 with the exception set, the entry left free. */
int
pu_aio_wait_set(AsyncRingObject *self, SqeObject *rec, PyObject *waiter,
                uint16_t flags)
{
    PyObject *cb = NULL;
    pu_aio_wait *w;

    if (flags & PU_AIO_CALLBACK) {
        Py_INCREF(waiter);   /* told of each completion: no done callback */
    } else if (!(flags & PU_AIO_ITER)) {
        cb = PyCFunction_New(&pu_aio_record_done_def, (PyObject *)rec);
        if (cb == NULL)
            return -1;
        if (call1_void(waiter, pu_aio_s.add_done_callback, cb) < 0) {
            Py_DECREF(cb);
            return -1;
        }
        Py_INCREF(waiter);
    }
    /* looked up after the call above: Python code may have grown the table */
    w = &self->waits[PU_UD_SLOT(rec->user_data)];
    w->user_data = rec->user_data;
    w->waiter = waiter;
    w->cb = cb;
    w->res = 0;
    w->flags = flags;
    return 0;
}

/* Drop what a taken entry holds, its done callback off its future first. */
void
pu_aio_wait_release(pu_aio_wait *taken)
{
    if (taken->flags & PU_AIO_ITER)
        return;   /* borrowed */
    Py_CLEAR(taken->held);
    if (taken->cb != NULL) {
        pu_exc_state saved;
        pu_exc_save(&saved);
        if (call1_void(taken->waiter, pu_aio_s.remove_done_callback, taken->cb) < 0)
            PyErr_Clear();
        pu_exc_restore(&saved);
        Py_CLEAR(taken->cb);
    }
    Py_CLEAR(taken->waiter);
}

/* ---------------------------------------------------------------- starting */

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

/* The converters and the prep name the Sqe method (prep_read()); an
 * AsyncRing caller called read() or sock_recv(): the error says so.  Only
 * a message that starts with "prep_NAME(" is renamed (one a converter's
 * Python code raised for something else is not); the error path only. */
static void
rename_error(const pu_opdef *op, const char *called)
{
    PyObject *exc, *args, *msg, *renamed;
    char prefix[64];
    Py_ssize_t n;

    n = PyOS_snprintf(prefix, sizeof(prefix), "prep_%s(", op->name);
    if (n <= 0 || (size_t)n >= sizeof(prefix))
        return;
    exc = pu_exc_take();
    if (exc == NULL)
        return;
    args = PyObject_GetAttrString(exc, "args");
    if (args == NULL) {
        PyErr_Clear();
        goto out;
    }
    /* (message,), or an OSError's (errno, message): the op unsupported */
    if (PyTuple_Check(args) && (PyTuple_GET_SIZE(args) == 1 || PyTuple_GET_SIZE(args) == 2) &&
        PyUnicode_Check(msg = PyTuple_GET_ITEM(args, PyTuple_GET_SIZE(args) - 1))) {
        const char *m = PyUnicode_AsUTF8(msg);
        int oserr = PyTuple_GET_SIZE(args) == 2;
        if (m != NULL && strncmp(m, prefix, (size_t)n) == 0 &&
            (!oserr || PyObject_TypeCheck(exc, (PyTypeObject *)PyExc_OSError))) {
            renamed = PyUnicode_FromFormat("%s(%s", called, m + n);
            if (renamed != NULL) {
                PyObject *t = oserr ? PyTuple_Pack(2, PyTuple_GET_ITEM(args, 0), renamed)
                                    : PyTuple_Pack(1, renamed);
                if (t == NULL || PyObject_SetAttrString(exc, "args", t) < 0 ||
                    (oserr && PyObject_SetAttrString(exc, "strerror", renamed) < 0))
                    PyErr_Clear();
                Py_XDECREF(t);
                Py_DECREF(renamed);
            } else {
                PyErr_Clear();
            }
        } else if (m == NULL) {
            PyErr_Clear();
        }
    }
    Py_DECREF(args);
out:
    pu_exc_give(exc);
}

/* pu_sqe_prep() for an AsyncRing method named called (NULL: the op's own
 * name, AsyncRing.NAME): the prep's errors name it. */
PyObject *
pu_aio_prep(SqeObject *rec, const pu_opdef *op, PyObject *const *args,
            Py_ssize_t nargs, PyObject *kwnames, const char *called)
{
    PyObject *r = pu_sqe_prep(rec, op, args, nargs, kwnames);
    if (r == NULL)
        rename_error(op, called != NULL ? called : op->name);
    return r;
}

/* link flags would tie the op to whatever happens to be prepared next
 * (chain() and timeout= link, the runtime's own way); multishot iterators
 * take no timeout= (its own parser refuses it, naming the method) */
const pu_common_rules pu_aio_rules = {
    0, IOSQE_FIXED_FILE | IOSQE_ASYNC | IOSQE_BUFFER_SELECT,
    "sqe_flags: only IOSQE_FIXED_FILE, IOSQE_ASYNC and IOSQE_BUFFER_SELECT "
    "apply to an AsyncRing operation", 1};
const pu_common_rules pu_aio_iter_rules = {
    0, IOSQE_FIXED_FILE | IOSQE_ASYNC | IOSQE_BUFFER_SELECT,
    "sqe_flags: only IOSQE_FIXED_FILE, IOSQE_ASYNC and IOSQE_BUFFER_SELECT "
    "apply to an AsyncRing operation", 0};

/* Prepare op into a new record whose waiter is a new future; the future,
 * or NULL with the exception the prep raised.  data, if given, becomes the
 * record's user data (send_all's state; a receive's buffer); called names
 * the method in errors (NULL: the op's name); carry_fd is a receive's fd
 * (PU_AIO_CARRY).  common's timeout (>= 0) links an IORING_OP_LINK_TIMEOUT
 * right after the op's SQE (links.c). */
PyObject *
pu_aio_start_op(AsyncRingObject *self, const pu_opdef *op, PyObject *const *args,
                Py_ssize_t nargs, PyObject *kwnames, uint16_t aio, PyObject *data,
                const pu_common *common, const char *called, int carry_fd)
{
    SqeObject *rec, *lt = NULL;
    PyObject *fut, *r;
    int timed = common != NULL && common->timeout >= 0.0;

    if (pu_aio_check_open(self) < 0 || pu_aio_bind_loop(self) < 0)
        return NULL;
    fut = pu_aio_new_future(self, (op->async_flags & PU_ASYNC_FD) != 0);
    if (fut == NULL)
        return NULL;
    /* the op and its timeout go into adjacent entries */
    if (timed && pu_aio_room(self, 2) < 0) {
        Py_DECREF(fut);
        return NULL;
    }
    rec = pu_aio_new_record(self);
    if (rec == NULL) {
        Py_DECREF(fut);
        return NULL;
    }
    /* a failure from here to the prep leaves a harmless NOP with no waiter */
    if (pu_aio_wait_reserve(self, rec) < 0)
        goto fail;
    if (common != NULL)
        pu_common_apply(rec, common);
    r = pu_aio_prep(rec, op, args, nargs, kwnames, called);
    if (r == NULL)
        goto fail;
    Py_DECREF(r);
    if (timed && (lt = pu_aio_link_timeout(self, rec, common->timeout)) == NULL)
        goto fail;   /* the op was taken back: nothing runs */
    /* prepared: if no future can be attached the op still runs, and its
     * result, having no taker, is dropped (fds closed) by dispatch() */
    if (pu_aio_wait_set(self, rec, fut, aio) < 0)
        goto fail;
    if (lt != NULL) {
        pu_aio_link_entries(self, rec, lt);
        Py_CLEAR(lt);
    }
    Py_XINCREF(data);
    Py_XSETREF(rec->data, data);
    if (aio & PU_AIO_CARRY) {
        /* the receive's fd: its carry-over's key (recv.c) */
        pu_aio_wait *w = pu_aio_wait_of(self, rec);
        if (w != NULL)
            w->res = carry_fd;
    }
    self->ops++;
    Py_DECREF(rec);
    if (pu_aio_schedule_flush(self) < 0) {
        Py_DECREF(fut);
        return NULL;
    }
    return fut;
fail:
    pu_aio_flush_orphan_nop(self);
    Py_XDECREF(lt);
    Py_DECREF(rec);
    Py_DECREF(fut);
    return NULL;
}

PyObject *
pu_async_op(PyObject *self, const pu_opdef *op, PyObject *const *args,
            Py_ssize_t nargs, PyObject *kwnames)
{
    /* the chain builder shares the generated methods (chain.c) */
    if (Py_TYPE(self) != &pu_AsyncRingType)
        return pu_aio_chain_add(self, op, args, nargs, kwnames);
    return pu_aio_op_named(self, op, args, nargs, kwnames, NULL);
}

/* AsyncRing.NAME(...), or an alias of it named called (close_fd) */
PyObject *
pu_aio_op_named(PyObject *self, const pu_opdef *op, PyObject *const *args,
                Py_ssize_t nargs, PyObject *kwnames, const char *called)
{
    pu_call_args ca;
    pu_common c;
    PyObject *fut, *buf = NULL;
    uint16_t aio = 0;
    int fd = -1;
    if (pu_split_common(args, nargs, kwnames, &ca, &c, &pu_aio_rules) < 0) {
        Py_XDECREF(ca.owned);
        return NULL;
    }
    /* what a cancelled recv got is kept (recv.c): its fd, and its buffer
     * as the record's data */
    if ((op->async_flags & PU_ASYNC_CARRY) && !(c.sqe_flags & IOSQE_FIXED_FILE) &&
        pu_aio_recv_target(ca.args, nargs, ca.kwnames, &fd, &buf))
        aio = PU_AIO_CARRY;
    fut = pu_aio_start_op((AsyncRingObject *)self, op, ca.args, nargs, ca.kwnames,
                          aio, buf, &c, called, fd);
    Py_XDECREF(ca.owned);
    return fut;
}

/* ---------------------------------------------------------------- results */

/* A result nobody will take: close the fds it holds (ops.def `fd`). */
void
pu_aio_drop_result(SqeObject *rec, CqeObject *q)
{
    PyObject *v;
    if (!pu_aio_has_fds(rec) || q->res < 0)
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
 * exception set (an OSError for a failed operation).  flags: the entry's
 * PU_AIO_*; the op table says whether a peer address comes with it. */
PyObject *
pu_aio_result_value(SqeObject *rec, CqeObject *q, uint16_t flags)
{
    PyObject *v, *peer, *sock;
    int with_peer = rec->op != NULL && (rec->op->async_flags & PU_ASYNC_PEER);

    if (flags & PU_AIO_NONE) {
        if (q->res < 0 && !(q->res == -ETIME && (flags & PU_AIO_SLEEP)))
            return pu_err_errno_rec(rec, -q->res);
        Py_RETURN_NONE;
    }
    v = pu_cqe_result(q);
    if (v == NULL || !(with_peer || (flags & PU_AIO_SOCKET)))
        return v;
    peer = peer_of(rec, q->res);
    if (peer == NULL)
        goto fail;
    if (flags & PU_AIO_SOCKET) {
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

/* Hand value (NULL: the exception set) to fut.  A cancelled future refuses
 * it (no done() call per op for the rare case): nobody takes it then, and
 * fds in it are closed.  Steals value. */
static void
resolve(SqeObject *rec, PyObject *fut, PyObject *value)
{
    int r;
    if (value != NULL) {
        r = call1_void(fut, pu_aio_s.set_result, value);
    } else {
        PyObject *exc = pu_exc_take();
        r = exc != NULL ? call1_void(fut, pu_aio_s.set_exception, exc) : -1;
        Py_XDECREF(exc);
    }
    if (r < 0) {
        PyErr_Clear();
        if (value != NULL && pu_aio_has_fds(rec))
            pu_aio_drop_fds(value);
    }
    Py_XDECREF(value);
}

/* send_all's value once every byte went: len(data), or None (sock_sendall) */
static PyObject *
sent_all_value(SqeObject *rec, uint16_t flags)
{
    Py_ssize_t n;
    if (flags & PU_AIO_NONE)
        Py_RETURN_NONE;
    n = PyObject_Length(PyTuple_GET_ITEM(rec->data, 1));
    return n < 0 ? NULL : PyLong_FromSsize_t(n);
}

/* Cancel fut (a future of a closing ring): its awaiter sees CancelledError,
 * and a future nobody awaits logs nothing ("exception was never
 * retrieved" under -X dev, for an OSError(ECANCELED) it never asked for). */
void
pu_aio_cancel_future(PyObject *fut)
{
    PyObject *r = call0(fut, pu_aio_s.cancel);
    if (r == NULL)
        PyErr_Clear();
    Py_XDECREF(r);
}

/* The final completion of an op a future waits for.  Takes the future and
 * its done callback (the entry they came from is free already). */
static void
finish_future(AsyncRingObject *self, SqeObject *rec, CqeObject *q, pu_aio_wait *taken)
{
    PyObject *value;

    if ((self->closing || (taken->flags & PU_AIO_USER_CANCEL)) && q->res == -ECANCELED) {
        /* cancelled by aclose() or AsyncRing.cancel(): as the ring's other
         * waiters are (an op that completed first keeps its result) */
        PyObject *fut = taken->waiter;
        Py_INCREF(fut);
        pu_aio_wait_release(taken);
        pu_aio_cancel_future(fut);
        Py_DECREF(fut);
        return;
    }
    if ((taken->flags & PU_AIO_TIMED_OUT) && q->res < 0) {
        /* its timeout fired and stopped it: -ECANCELED, or -EINTR from a
         * worker it interrupted */
        pu_aio_timeout_error(rec->op != NULL ? rec->op->name : "operation");
        value = NULL;
    } else if ((taken->flags & PU_AIO_SENDALL) && q->res >= 0) {
        SqeObject *next = NULL;
        int r = pu_aio_continue_send_all(self, rec, q, taken->waiter, &next);
        if (r == 2) {
            /* the ring closes with data left to send */
            PyObject *fut = taken->waiter;
            Py_INCREF(fut);
            pu_aio_wait_release(taken);
            pu_aio_cancel_future(fut);
            Py_DECREF(fut);
            return;
        }
        if (r == 0) {
            /* the rest goes in a new send: the future, and a new done
             * callback bound to that record, move to its entry */
            r = pu_aio_wait_set(self, next, taken->waiter, taken->flags);
            Py_DECREF(next);
            if (r == 0) {
                pu_aio_wait_release(taken);   /* the old callback, our reference */
                return;
            }
            /* the send runs unwatched; the future learns why */
        }
        value = r < 0 ? NULL : sent_all_value(rec, taken->flags);
    } else {
        value = pu_aio_result_value(rec, q, taken->flags);
    }
    /* the callback comes off before the future is resolved, so it never
     * runs for a future that completed (the exception, if any, waits) */
    {
        PyObject *fut = taken->waiter;
        Py_INCREF(fut);
        pu_aio_wait_release(taken);   /* the callback, the entry's reference */
        if (taken->flags & PU_AIO_CARRY) {
            if (value != NULL && q->res > 0) {
                /* a future that refuses the bytes was cancelled: they go
                 * to the next read of the socket, not away */
                if (call1_void(fut, pu_aio_s.set_result, value) < 0) {
                    PyErr_Clear();
                    pu_aio_carry_stash(self, rec, q, value, taken->res);
                }
                Py_DECREF(value);
                Py_DECREF(fut);
                return;
            }
        }
        resolve(rec, fut, value);
        Py_DECREF(fut);
    }
}

/* One completion: tell its waiter. */
static void
dispatch(AsyncRingObject *self, CqeObject *q)
{
    SqeObject *rec = q->sqe;
    CqeObject *const qin = q;
    pu_aio_wait *w, taken;
    int final;

    self->completions++;
    if (rec == NULL)
        return;   /* a message from another ring: AsyncRing has no taker */
    final = !(q->flags & IORING_CQE_F_MORE);
    w = pu_aio_wait_of(self, rec);
    if (w == NULL) {
        /* nobody waits: a NOP left by a failed prep, the op of an iterator
         * that went, a future given up when the ring closed */
        pu_aio_drop_result(rec, q);
        return;
    }
    if (w->flags & PU_AIO_ITER) {
        PyObject *it = w->waiter;     /* borrowed: alive while its entry is */
        if (final)
            pu_aio_wait_take(w);      /* holds no reference */
        pu_aio_iter_deliver(it, rec, q);
        return;
    }
    if (w->flags & PU_AIO_CALLBACK) {
        /* a transport's (stream.c): told once this batch is dispatched */
        PyObject *cb = w->waiter;
        if (final)
            pu_aio_wait_take(w);       /* its reference passes to the queue */
        else
            Py_INCREF(cb);
        pu_aio_callback_queue(self, cb, q, final);
        return;
    }
    if (!final) {
        /* the result comes first, the end later (send_zc's notification) */
        if (!(w->flags & PU_AIO_STASHED)) {
            w->res = q->res;
            w->flags |= PU_AIO_STASHED;
        }
        return;
    }
    /* the final completion: the entry is free, its references ours */
    taken = pu_aio_wait_take(w);
    if ((taken.flags & PU_AIO_STASHED) && (q->flags & IORING_CQE_F_NOTIF))
        q->res = taken.res;
    if ((taken.flags & (PU_AIO_LINKED | PU_AIO_LTIMEOUT)) &&
        pu_aio_link_completion(self, &rec, &q, &taken))
        return;   /* the other half is still to come */
    /* one call site: the compiler inlines it (~40 instructions per op) */
    finish_future(self, rec, q, &taken);
    if (q != qin)
        Py_DECREF(q);   /* the op's, kept by its timeout's entry */
}


/* Reap and dispatch what is ready, in batches. */
int
pu_aio_process(AsyncRingObject *self)
{
    return pu_aio_process_into(self, NULL);
}

/* ... and with polls a list: a completion no record names (a poll of the
 * loop's selector) goes to selector.c, which appends the (key, events) it
 * means to the list. */
int
pu_aio_process_into(AsyncRingObject *self, PyObject *polls)
{
    RingObject *r = self->ring;
    PyObject *perr = NULL;
    int err = 0;

    if (!r->initialised || r->fork_generation != pu_fork_generation)
        return 0;   /* a forked child's copy: the ring is not mapped here */
    /* a DEFER_TASKRUN ring posts completions only when its issuer asks:
     * asked when the kernel flags work waiting (IORING_SETUP_TASKRUN_FLAG),
     * else every time (the eventfd was only a hint) */
    if ((r->setup_flags & IORING_SETUP_DEFER_TASKRUN) && PU_ISSUER_HERE(r) &&
        (!(r->setup_flags & IORING_SETUP_TASKRUN_FLAG) ||
         (IO_URING_READ_ONCE(*r->ring.sq.kflags) &
          (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW))))
        io_uring_get_events(&r->ring);
    /* The loop's select() (polls given) reaps once: what was there when
     * its wait ended, as epoll_wait() hands asyncio one set of events per
     * iteration.  More rounds would also deliver what the callbacks of the
     * first caused (the answer to a request a transport's data_received()
     * just sent), one loop iteration sooner than asyncio's transports do:
     * 3.8's sslproto, told of the answer and the peer's close there,
     * forgot its transport before create_connection()'s caller ran.  The
     * rest is the next iteration's, whose wait does not block then. */
    int rounds = polls != NULL ? 1 : PU_DRAIN_ROUNDS;
    for (int round = 0; round < rounds; round++) {
        if (pu_reap(r) < 0)
            err = -1;
        if (PU_CQ_LEN(r) == 0)
            break;
        while (r->cq_start < r->cq_end) {
            CqeObject *q = r->cq[r->cq_start];
            r->cq[r->cq_start++] = NULL;
            if (self->sel != NULL && q->sqe == NULL) {
                /* a poll of the loop's selector: listed for the select()
                 * reaping (polls), held for the next one otherwise; an
                 * error is raised at the end: the rest still go to their
                 * waiters */
                if (pu_aio_sel_complete(self, polls, q->user_data, q->res) < 0) {
                    if (perr == NULL)
                        perr = pu_exc_take();
                    else
                        PyErr_Clear();
                }
                Py_DECREF(q);
                continue;
            }
            dispatch(self, q);
            if (PyErr_Occurred())
                unraisable("AsyncRing: delivering a completion");
            Py_DECREF(q);
        }
        r->cq_start = r->cq_end = 0;
        /* callbacks start ops: only once every completion of the batch
         * was dispatched (the reap freed their slots, and a new op in a
         * slot whose completion is still to come would take its entry) */
        pu_aio_callback_run(self);
        if (err)
            break;
    }
    if (self->closing && !self->closed && r->nrecords == 0)
        pu_aio_finish_close(self);
    if (perr != NULL) {
        PyErr_Clear();
        pu_exc_give(perr);
        return -1;
    }
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
