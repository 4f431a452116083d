/* async_ring.c: AsyncRing, io_uring on the event loop a program already
 * runs (asyncio, uvloop), with the same operations as Sqe.prep_*.
 *
 * How it works:
 *   - An eventfd registered with the ring is watched with loop.add_reader();
 *     its callback reaps every ready completion and resolves the futures.
 *   - An operation is prepared at once (so bad arguments raise at the call)
 *     into a record of the ring's slot table; the record's `waiter` is the
 *     future the caller awaits.  The first operation of a loop iteration
 *     schedules one flush with loop.call_soon(): everything prepared before
 *     it runs goes to the kernel with one io_uring_submit().
 *   - A cancelled future (task.cancel(), wait_for(), timeout()) runs the
 *     done callback bound to its record, which asks the kernel to cancel
 *     the operation by user_data.  The record, and so every buffer the
 *     kernel may touch, stays in the table until the final completion.  A
 *     result nobody awaits any more is dropped; new fds in it are closed.
 *   - aclose() cancels everything in flight and completes once the table is
 *     empty; only then are the reader removed and the ring torn down.
 * The runtime underneath (records, reaping, teardown) is the one IoUring
 * uses, so AsyncRing keeps all of its guarantees. */
#include "ops/opdef.h"
#include "core/reap_sink.h"
#include "methods_doc.h"
#include "ops_gen.h"

#include <errno.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define PU_CLOSE_DEADLINE 10.0      /* seconds aclose() waits for the kernel */
#define PU_DRAIN_ROUNDS 8           /* reap rounds per wakeup, so a busy ring
                                       cannot starve the rest of the loop */

typedef struct AsyncRingObject {
    PyObject_HEAD
    RingObject *ring;               /* strong, private */
    PyObject *loop;                 /* the loop bound on first use */
    unsigned long thread;           /* the loop's thread */
    PyObject *call_soon;            /* loop.call_soon */
    PyObject *future_type;          /* asyncio.Future when the loop's
                                       create_future() makes exactly that:
                                       built directly, no method call */
    PyObject *fd_future_type;       /* its subclass for results that own
                                       fds (fd_future_type()), or NULL */
    PyObject *flush_cb;             /* self._flush as a callable */
    PyObject *ready_cb;             /* self._on_ready as a callable */
    PyObject *close_waiter;         /* aclose()'s future */
    PyObject *close_timer;          /* its deadline's TimerHandle */
    int efd;
    uint8_t flush_scheduled;
    uint8_t reader_added;
    uint8_t closing;
    uint8_t closed;
    unsigned long long submits, completions, ops;
    PyObject *weakreflist;
} AsyncRingObject;

/* An async iterator over a multishot operation's completions. */
typedef struct {
    PyObject_HEAD
    AsyncRingObject *aring;         /* strong */
    const pu_opdef *op;
    PyObject *args;                 /* the call's arguments, to re-arm */
    PyObject *kwnames;
    Py_ssize_t nargs;
    SqeObject *rec;                 /* the armed record, strong, or NULL */
    PyObject *items;                /* list of results not yet taken */
    Py_ssize_t head;
    PyObject *waiter;               /* the future of a pending __anext__ */
    PyObject *error;                /* raised after the items */
    uint8_t ended;
    uint8_t cancelled;
    uint8_t sqe_flags;              /* the shared SQE fields, for each arming */
    uint16_t buf_group, personality;
} AsyncIterObject;

static PyTypeObject AsyncIterType;

/* interned method names, and objects looked up once */
static PyObject *s_create_future, *s_add_done_callback, *s_remove_done_callback,
    *s_set_result, *s_set_exception, *s_done, *s_cancelled, *s_call_soon,
    *s_call_later, *s_add_reader, *s_remove_reader, *s_cancel, *s_is_closed,
    *s_fileno;
static PyObject *get_running_loop;  /* asyncio.get_running_loop */
static PyObject *kw_loop;           /* ("loop",): Future(loop=...) */
static PyObject *socket_type;       /* socket.socket */

static PyObject *
call0(PyObject *o, PyObject *name)
{
    return PyObject_CallMethodObjArgs(o, name, NULL);
}

static PyObject *
call1(PyObject *o, PyObject *name, PyObject *a)
{
    return PyObject_CallMethodObjArgs(o, name, a, NULL);
}

/* Call and drop the result: 0 or -1. */
static int
call1_void(PyObject *o, PyObject *name, PyObject *a)
{
    PyObject *r = call1(o, name, a);
    Py_XDECREF(r);
    return r == NULL ? -1 : 0;
}

static int
truth0(PyObject *o, PyObject *name)
{
    PyObject *r = call0(o, name);
    int t;
    if (r == NULL)
        return -1;
    t = PyObject_IsTrue(r);
    Py_DECREF(r);
    return t;
}

/* Report an error from a callback the loop runs without a caller to tell. */
static void
unraisable(const char *where)
{
    PyObject *ctx = PyUnicode_FromString(where);
    PyErr_WriteUnraisable(ctx);
    Py_XDECREF(ctx);
}

/* ---------------------------------------------------------------- binding */

/* A future of the bound loop: Future(loop=loop) built with one vectorcall
 * when that is what the loop's create_future() returns (asyncio, uvloop);
 * with fds, of its subclass for results that own fds (fd futures below). */
static PyObject *
new_future(struct AsyncRingObject *self, int fds)
{
    PyObject *type = fds && self->fd_future_type ? self->fd_future_type
                                                 : self->future_type;
#if PY_VERSION_HEX >= 0x03090000
    if (type != NULL) {
        PyObject *args[2] = {NULL, self->loop};
        return PyObject_Vectorcall(type, args + 1,
                                   0 | PY_VECTORCALL_ARGUMENTS_OFFSET, kw_loop);
    }
#else
    if (type != NULL && type == self->fd_future_type) {
        PyObject *kw = Py_BuildValue("{s:O}", "loop", self->loop);
        PyObject *empty = PyTuple_New(0), *f = NULL;
        if (kw != NULL && empty != NULL)
            f = PyObject_Call(type, empty, kw);
        Py_XDECREF(kw);
        Py_XDECREF(empty);
        return f;
    }
#endif
    return call0(self->loop, s_create_future);
}

static PyObject *fd_future_type(PyObject *base);

static int
check_open(AsyncRingObject *self)
{
    if (self->closing || self->closed) {
        PyErr_SetString(PyExc_RuntimeError, self->closed ? "AsyncRing is closed"
                                                         : "AsyncRing is closing");
        return -1;
    }
    return 0;
}

static PyObject *AsyncRing_flush_cb(PyObject *self, PyObject *unused);
static PyObject *AsyncRing_ready_cb(PyObject *self, PyObject *unused);
static PyMethodDef flush_def = {"_flush", AsyncRing_flush_cb, METH_NOARGS, NULL};
static PyMethodDef ready_def = {"_on_ready", AsyncRing_ready_cb, METH_NOARGS, NULL};

/* Bind to the running loop on first use; later uses must come from it. */
static int
bind_loop(AsyncRingObject *self)
{
    PyObject *loop, *fd, *r;

    if (self->loop != NULL) {
        if (PyThread_get_thread_ident() != self->thread) {
            PyErr_SetString(PyExc_RuntimeError, "AsyncRing used from another "
                            "thread than its event loop's");
            return -1;
        }
        /* futures of a finished loop would never complete: check once per
         * loop iteration (a pending flush means this one was checked;
         * get_running_loop() costs a getpid() on 3.11) */
        if (self->flush_scheduled)
            return 0;
        loop = PyObject_CallNoArgs(get_running_loop);
        if (loop == NULL)
            return -1;
        Py_DECREF(loop);
        if (loop != self->loop) {
            PyErr_SetString(PyExc_RuntimeError, "AsyncRing is bound to another "
                            "event loop (the one it was first used on)");
            return -1;
        }
        return 0;
    }
    if (get_running_loop == NULL) {
        PyObject *asyncio = PyImport_ImportModule("asyncio");
        if (asyncio == NULL)
            return -1;
        get_running_loop = PyObject_GetAttrString(asyncio, "get_running_loop");
        Py_DECREF(asyncio);
        if (get_running_loop == NULL)
            return -1;
    }
    loop = PyObject_CallNoArgs(get_running_loop);
    if (loop == NULL)
        return -1;
    self->loop = loop;
    self->thread = PyThread_get_thread_ident();
    {
        PyObject *probe = call0(loop, s_create_future), *asyncio, *ft;
        if (probe == NULL)
            return -1;
        asyncio = PyImport_ImportModule("asyncio");
        ft = asyncio ? PyObject_GetAttrString(asyncio, "Future") : NULL;
        Py_XDECREF(asyncio);
        if (ft == NULL) {
            Py_DECREF(probe);
            return -1;
        }
        if ((PyObject *)Py_TYPE(probe) == ft)
            self->future_type = ft;
        else
            Py_DECREF(ft);
        Py_DECREF(probe);
        /* a loop with futures of its own keeps them: fds dropped only at
         * the completion, as before */
        if (self->future_type != NULL) {
            PyObject *t = fd_future_type(self->future_type);
            if (t == NULL)
                return -1;
            Py_INCREF(t);
            self->fd_future_type = t;
        }
    }
    self->call_soon = PyObject_GetAttr(loop, s_call_soon);
    self->flush_cb = PyCFunction_New(&flush_def, (PyObject *)self);
    self->ready_cb = PyCFunction_New(&ready_def, (PyObject *)self);
    if (self->call_soon == NULL || self->flush_cb == NULL || self->ready_cb == NULL)
        return -1;
    fd = PyLong_FromLong(self->efd);
    if (fd == NULL)
        return -1;
    r = PyObject_CallMethodObjArgs(loop, s_add_reader, fd, self->ready_cb, NULL);
    Py_DECREF(fd);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    self->reader_added = 1;
    return 0;
}

static int
schedule_flush(AsyncRingObject *self)
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

/* ---------------------------------------------------------------- submitting */

static int process(AsyncRingObject *self);

static int
flush_now(AsyncRingObject *self)
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
static SqeObject *
new_record(AsyncRingObject *self)
{
    if (io_uring_sq_space_left(&self->ring->ring) == 0 && flush_now(self) < 0)
        return NULL;
    return pu_ring_get_sqe(self->ring);
}

/* An SQE of the runtime's own (a cancel), whose completion nobody sees. */
static int
internal_cancel(AsyncRingObject *self, __u64 target)
{
    struct io_uring_sqe *sqe = pu_get_sqe(self->ring);
    if (sqe == NULL) {
        if (flush_now(self) < 0)
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
    return schedule_flush(self);
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
    c = truth0(fut, s_cancelled);
    if (c < 0)
        return NULL;
    if (c && internal_cancel(a, rec->user_data) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef record_done_def = {"_cancel_in_kernel", record_done_cb, METH_O, NULL};

/* ---------------------------------------------------------------- fd futures
 *
 * The result of accept, openat, socket, ... owns new fds.  When the task
 * awaiting it is cancelled after set_result() but before it resumed,
 * asyncio throws CancelledError into the coroutine instead of handing it
 * the result (Task.cancel() on a task whose future is done sets
 * _must_cancel), and the fds would stay open with nobody to close them.
 * Such ops get a future of a subclass of the loop's asyncio.Future whose
 * __await__ returns an FdAwait: the base's own iterator, wrapped.  An
 * exception thrown into it while the future holds a result it has not
 * returned means this awaiter will never get it: the fds are closed there
 * and result() raises CancelledError from then on, so nobody is handed a
 * closed (or reused) fd number.  A result taken with result() by other
 * code (a done callback, gather()) is that code's; a future nobody awaits
 * or asks is not looked at. */

static void drop_fds(PyObject *v);

static PyObject *fdfut_type;        /* the subclass, made by fd_future_type() */
static PyObject *fdfut_base;        /* the asyncio.Future it derives from */
static PyObject *fdfut_base_result; /* asyncio.Future.result, unbound */
static PyObject *s_throw;           /* "throw" */
static PyObject *cancelled_error;   /* asyncio.CancelledError */
static PyObject *s_dropped;         /* "_pu_dropped": set once the fds closed */
static PyObject *s_exception_attr;  /* "_exception" */

typedef struct {
    PyObject_HEAD
    PyObject *fut;                  /* the fd future */
    PyObject *inner;                /* the base class's iterator over it */
} FdAwaitObject;

static PyTypeObject FdAwaitType;

/* 1 once the fds of fut's result were closed, 0 before, -1 on error */
static int
fd_dropped(PyObject *fut)
{
    PyObject *d = PyObject_GetAttr(fut, s_dropped);
    if (d == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError))
            return -1;
        PyErr_Clear();
        return 0;
    }
    Py_DECREF(d);
    return 1;
}

static PyObject *
raise_dropped(void)
{
    PyErr_SetString(cancelled_error, "the task awaiting this result was "
                    "cancelled; its file descriptors were closed");
    return NULL;
}

static PyObject *
fdawait_inner(FdAwaitObject *self)
{
    if (self->inner == NULL) {
        unaryfunc am_await = ((PyTypeObject *)fdfut_base)->tp_as_async->am_await;
        self->inner = am_await(self->fut);
    }
    return self->inner;
}

static PyObject *
FdAwait_next(FdAwaitObject *self)
{
    int d = fd_dropped(self->fut);
    if (d != 0)
        return d < 0 ? NULL : raise_dropped();
    if (fdawait_inner(self) == NULL)
        return NULL;
    return Py_TYPE(self->inner)->tp_iternext(self->inner);
}

static PyObject *
FdAwait_send(FdAwaitObject *self, PyObject *Py_UNUSED(value))
{
    return FdAwait_next(self);
}

/* An exception for the awaiting coroutine: a result it will not get is
 * dropped, then the base iterator raises the exception as it would. */
static PyObject *
FdAwait_throw(FdAwaitObject *self, PyObject *args)
{
    PyObject *fut = self->fut, *m, *r;
    int done = truth0(fut, s_done), cancelled = 0, dropped = fd_dropped(fut);

    if (done < 0 || dropped < 0)
        return NULL;
    if (done && !dropped) {
        cancelled = truth0(fut, s_cancelled);
        if (cancelled < 0)
            return NULL;
    }
    if (done && !cancelled && !dropped) {
        /* read without result(): that would mark an exception retrieved */
        PyObject *exc = PyObject_GetAttr(fut, s_exception_attr);
        if (exc == NULL)
            return NULL;
        if (exc == Py_None) {
            PyObject *v = PyObject_CallOneArg(fdfut_base_result, fut);
            if (v == NULL) {
                Py_DECREF(exc);
                return NULL;
            }
            if (PyObject_SetAttr(fut, s_dropped, Py_True) < 0) {
                Py_DECREF(v);
                Py_DECREF(exc);
                return NULL;
            }
            drop_fds(v);
            Py_DECREF(v);
        }
        Py_DECREF(exc);
    }
    if (fdawait_inner(self) == NULL)
        return NULL;
    m = PyObject_GetAttr(self->inner, s_throw);
    if (m == NULL)
        return NULL;
    r = PyObject_Call(m, args, NULL);
    Py_DECREF(m);
    return r;
}

static PyObject *
FdAwait_close(FdAwaitObject *Py_UNUSED(self), PyObject *Py_UNUSED(ignored))
{
    Py_RETURN_NONE;
}

static int
FdAwait_traverse(FdAwaitObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->fut);
    Py_VISIT(self->inner);
    return 0;
}

static int
FdAwait_clear(FdAwaitObject *self)
{
    Py_CLEAR(self->fut);
    Py_CLEAR(self->inner);
    return 0;
}

static void
FdAwait_dealloc(FdAwaitObject *self)
{
    PyObject_GC_UnTrack(self);
    FdAwait_clear(self);
    PyObject_GC_Del(self);
}

static PyMethodDef FdAwait_methods[] = {
    {"send", (PyCFunction)FdAwait_send, METH_O, NULL},
    {"throw", (PyCFunction)FdAwait_throw, METH_VARARGS, NULL},
    {"close", (PyCFunction)FdAwait_close, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject FdAwaitType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "py_io_uring._FdAwait",
    .tp_basicsize = sizeof(FdAwaitObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_traverse = (traverseproc)FdAwait_traverse,
    .tp_clear = (inquiry)FdAwait_clear,
    .tp_dealloc = (destructor)FdAwait_dealloc,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)FdAwait_next,
    .tp_methods = FdAwait_methods,
};

/* __await__ and __iter__ of the fd future */
static PyObject *
fdfut_await(PyObject *Py_UNUSED(unused), PyObject *fut)
{
    FdAwaitObject *it = PyObject_GC_New(FdAwaitObject, &FdAwaitType);
    if (it == NULL)
        return NULL;
    Py_INCREF(fut);
    it->fut = fut;
    it->inner = NULL;
    PyObject_GC_Track(it);
    return (PyObject *)it;
}

/* result(): the base's, unless the fds were closed */
static PyObject *
fdfut_result(PyObject *Py_UNUSED(unused), PyObject *fut)
{
    int d = fd_dropped(fut);
    if (d != 0)
        return d < 0 ? NULL : raise_dropped();
    return PyObject_CallOneArg(fdfut_base_result, fut);
}

static PyMethodDef fdfut_await_def = {"__await__", fdfut_await, METH_O, NULL};
static PyMethodDef fdfut_iter_def = {"__iter__", fdfut_await, METH_O, NULL};
static PyMethodDef fdfut_result_def = {"result", fdfut_result, METH_O, NULL};

/* The subclass of base (the loop's asyncio.Future), made once. */
static PyObject *
fd_future_type(PyObject *base)
{
    PyMethodDef *defs[] = {&fdfut_await_def, &fdfut_iter_def, &fdfut_result_def};
    PyObject *dict, *type = NULL, *asyncio;

    if (fdfut_type != NULL && fdfut_base == base)
        return fdfut_type;
    if (((PyTypeObject *)base)->tp_as_async == NULL ||
        ((PyTypeObject *)base)->tp_as_async->am_await == NULL) {
        PyErr_SetString(PyExc_TypeError, "asyncio.Future has no __await__");
        return NULL;
    }
    if (cancelled_error == NULL) {
        asyncio = PyImport_ImportModule("asyncio");
        if (asyncio == NULL)
            return NULL;
        cancelled_error = PyObject_GetAttrString(asyncio, "CancelledError");
        Py_DECREF(asyncio);
        if (cancelled_error == NULL)
            return NULL;
    }
    dict = PyDict_New();
    if (dict == NULL)
        return NULL;
    for (size_t i = 0; i < sizeof(defs) / sizeof(defs[0]); i++) {
        PyObject *f = PyCFunction_New(defs[i], NULL), *m;
        m = f ? PyInstanceMethod_New(f) : NULL;   /* binds like a def */
        Py_XDECREF(f);
        if (m == NULL || PyDict_SetItemString(dict, defs[i]->ml_name, m) < 0) {
            Py_XDECREF(m);
            goto done;
        }
        Py_DECREF(m);
    }
    {
        PyObject *mod = PyUnicode_FromString("py_io_uring");
        int r = mod ? PyDict_SetItemString(dict, "__module__", mod) : -1;
        Py_XDECREF(mod);
        if (r < 0)
            goto done;
    }
    type = PyObject_CallFunction((PyObject *)&PyType_Type, "s(O)O", "_FdFuture",
                                 base, dict);
    if (type == NULL)
        goto done;
    if (fdfut_base_result == NULL || fdfut_base != base) {
        PyObject *res = PyObject_GetAttrString(base, "result");
        if (res == NULL) {
            Py_CLEAR(type);
            goto done;
        }
        Py_XSETREF(fdfut_base_result, res);
    }
    Py_INCREF(base);
    Py_XSETREF(fdfut_base, base);
    Py_XSETREF(fdfut_type, type);
done:
    Py_DECREF(dict);
    return type;   /* borrowed: fdfut_type keeps it */
}

/* A failed prep leaves its entry a NOP nobody waits for: it still has to
 * go in, and the exception being raised must survive scheduling that. */
static void
flush_orphan_nop(AsyncRingObject *self)
{
    pu_exc_state saved;
    pu_exc_save(&saved);
    if (schedule_flush(self) < 0)
        PyErr_Clear();
    pu_exc_restore(&saved);
}

/* link flags would tie the op to whatever happens to be prepared next */
static const pu_common_rules aio_rules = {
    0, IOSQE_FIXED_FILE | IOSQE_ASYNC | IOSQE_BUFFER_SELECT,
    "sqe_flags: only IOSQE_FIXED_FILE, IOSQE_ASYNC and IOSQE_BUFFER_SELECT "
    "apply to an AsyncRing operation"};

/* Prepare op into a new record whose waiter is a new future; the future,
 * or NULL with the exception the prep raised. */
static PyObject *
start_op(AsyncRingObject *self, const pu_opdef *op, PyObject *const *args,
         Py_ssize_t nargs, PyObject *kwnames, uint16_t aio, PyObject *data,
         const pu_common *common)
{
    SqeObject *rec;
    PyObject *fut, *r, *cb;

    if (check_open(self) < 0 || bind_loop(self) < 0)
        return NULL;
    fut = new_future(self, (op->async_flags & PU_ASYNC_FD) != 0);
    if (fut == NULL)
        return NULL;
    rec = new_record(self);
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
    cb = PyCFunction_New(&record_done_def, (PyObject *)rec);
    if (cb == NULL || call1_void(fut, s_add_done_callback, cb) < 0) {
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
    if (schedule_flush(self) < 0) {
        Py_DECREF(rec);
        Py_DECREF(fut);
        return NULL;
    }
    Py_DECREF(rec);
    return fut;
fail:
    flush_orphan_nop(self);
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
    if (pu_split_common(args, nargs, kwnames, &ca, &c, &aio_rules) < 0) {
        Py_XDECREF(ca.owned);
        return NULL;
    }
    fut = start_op((AsyncRingObject *)self, op, ca.args, nargs, ca.kwnames,
                   0, NULL, &c);
    Py_XDECREF(ca.owned);
    return fut;
}

/* ---------------------------------------------------------------- results */

static void
close_fd_object(PyObject *o)
{
    if (PyLong_Check(o)) {
        long fd = PyLong_AsLong(o);
        if (fd >= 0)
            close((int)fd);
    }
}

/* A result nobody will take: close the fds it holds (ops.def `fd`). */
static void
drop_result(SqeObject *rec, CqeObject *q)
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
            close_fd_object(PyTuple_GET_ITEM(v, i));
    } else {
        close_fd_object(v);
    }
    Py_DECREF(v);
}

/* A value already made that nobody will take: its ints are fds, a socket
 * closes. */
static void
drop_fds(PyObject *v)
{
    if (!PyTuple_Check(v)) {
        close_fd_object(v);
        return;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(v); i++) {
        PyObject *o = PyTuple_GET_ITEM(v, i);
        if (PyLong_Check(o)) {
            close_fd_object(o);
        } else if (socket_type != NULL && PyObject_TypeCheck(o, (PyTypeObject *)socket_type)) {
            PyObject *r = PyObject_CallMethod(o, "close", NULL);
            if (r == NULL)
                PyErr_Clear();
            Py_XDECREF(r);
        }
    }
}

/* The same for an op's result (ops.def `fd`) */
static void
drop_value(SqeObject *rec, PyObject *v)
{
    if (v != NULL && (rec->aio & PU_AIO_FD))
        drop_fds(v);
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
static PyObject *
result_value(SqeObject *rec, CqeObject *q)
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
        if (socket_type == NULL) {
            PyObject *m = PyImport_ImportModule("socket");
            if (m == NULL)
                goto fail;
            socket_type = PyObject_GetAttrString(m, "socket");
            Py_DECREF(m);
            if (socket_type == NULL)
                goto fail;
        }
        {
            PyObject *kw = Py_BuildValue("{s:O}", "fileno", v);
            PyObject *empty = PyTuple_New(0);
            sock = (kw && empty) ? PyObject_Call(socket_type, empty, kw) : NULL;
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
        close_fd_object(v);   /* an int not yet wrapped: nobody else will */
    Py_XDECREF(v);
    return NULL;
}

static int
resolve(PyObject *fut, PyObject *value)
{
    if (value != NULL)
        return call1_void(fut, s_set_result, value);
    value = pu_exc_take();
    if (value == NULL)
        return -1;
    {
        int r = call1_void(fut, s_set_exception, value);
        Py_DECREF(value);
        return r;
    }
}

static int continue_send_all(AsyncRingObject *self, SqeObject *rec, CqeObject *q,
                             PyObject *fut, PyObject *cb);
static void iter_deliver(AsyncIterObject *it, SqeObject *rec, CqeObject *q);

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
            iter_deliver((AsyncIterObject *)rec->waiter, rec, q);
        else
            drop_result(rec, q);   /* its iterator is gone */
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
        int r = continue_send_all(self, rec, q, fut, cb);
        if (r == 0)
            return 0;             /* the next send carries fut and cb on */
        if (r < 0) {
            value = NULL;
            goto resolve_it;      /* keep the exception for the future */
        }
    }
    /* before the value is made: making it may leave an exception set */
    if (cb != NULL && call1_void(fut, s_remove_done_callback, cb) < 0)
        PyErr_Clear();
    Py_CLEAR(cb);
    if (!(rec->aio & PU_AIO_SENDALL) || q->res < 0)
        value = result_value(rec, q);
    else if (rec->aio & PU_AIO_NONE)
        value = (Py_INCREF(Py_None), Py_None);
    else
        value = PyLong_FromSsize_t(PyObject_Length(PyTuple_GET_ITEM(rec->data, 1)));
resolve_it:
    if (cb != NULL) {
        pu_exc_state saved;
        pu_exc_save(&saved);
        if (call1_void(fut, s_remove_done_callback, cb) < 0)
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

static void finish_close(AsyncRingObject *self);

/* Reap and dispatch what is ready, in batches. */
static int
process(AsyncRingObject *self)
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
        finish_close(self);
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
    if (flush_now(self) < 0)
        return NULL;
    /* ops that completed while being submitted need no trip through epoll:
     * take the eventfd's count first (so nothing later is missed), then
     * deliver, and the reader is not woken for what was delivered here */
    if (io_uring_cq_ready(&self->ring->ring) > 0) {
        uint64_t v;
        if (read(self->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
            return pu_err_errno(errno);
        if (process(self) < 0)
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
    if (process(self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* ---------------------------------------------------------------- send_all */

/* The op `send` with MSG_WAITALL: the kernel itself retries short sends on
 * stream sockets; if one still comes back short, the rest goes in a new
 * send that carries the future (fut and cb, owned by the caller) on.
 * 1: finished, all sent or the future cancelled; 0: continued, fut and cb
 * were handed on; -1: an error, set. */
static int
continue_send_all(AsyncRingObject *self, SqeObject *rec, CqeObject *q,
                  PyObject *fut, PyObject *cb)
{
    PyObject *st = rec->data, *mv, *rest, *argv[3], *ncb, *r;
    Py_ssize_t offset, total;
    SqeObject *next;
    int done;

    offset = PyLong_AsSsize_t(PyTuple_GET_ITEM(st, 3)) + q->res;
    total = PyObject_Length(PyTuple_GET_ITEM(st, 1));
    if (total < 0)
        return -1;
    if (offset >= total)
        return 1;
    if (q->res == 0 || self->closing) {
        /* nothing more goes out: the peer is gone, or the ring closes */
        pu_err_errno(q->res == 0 ? EPIPE : ECANCELED);
        return -1;
    }
    done = truth0(fut, s_done);
    if (done != 0)
        return done < 0 ? -1 : 1;   /* cancelled: send no more */
    mv = PyMemoryView_FromObject(PyTuple_GET_ITEM(st, 1));
    if (mv == NULL)
        return -1;
    rest = PySequence_GetSlice(mv, offset, total);
    Py_DECREF(mv);
    if (rest == NULL)
        return -1;
    next = new_record(self);
    if (next == NULL) {
        Py_DECREF(rest);
        return -1;
    }
    argv[0] = PyTuple_GET_ITEM(st, 0);
    argv[1] = rest;
    argv[2] = PyTuple_GET_ITEM(st, 2);
    r = pu_sqe_prep(next, &pu_opdefs[PU_OP_SEND], argv, 3, NULL);
    Py_DECREF(rest);
    if (r == NULL)
        goto fail;
    Py_DECREF(r);
    next->data = Py_BuildValue("(OOOn)", PyTuple_GET_ITEM(st, 0),
                               PyTuple_GET_ITEM(st, 1), PyTuple_GET_ITEM(st, 2),
                               offset);
    if (next->data == NULL)
        goto fail;
    /* the future's cancel callback now names the new record */
    ncb = PyCFunction_New(&record_done_def, (PyObject *)next);
    if (ncb == NULL)
        goto fail;
    if ((cb != NULL && call1_void(fut, s_remove_done_callback, cb) < 0) ||
        call1_void(fut, s_add_done_callback, ncb) < 0) {
        Py_DECREF(ncb);
        goto fail;
    }
    Py_XDECREF(cb);
    next->aio = rec->aio;
    next->waiter = fut;           /* the caller's reference */
    next->waiter_cb = ncb;
    Py_DECREF(next);
    if (schedule_flush(self) < 0)
        PyErr_Clear();            /* the flush of the next op will take it */
    return 0;
fail:
    flush_orphan_nop(self);
    Py_DECREF(next);
    return -1;
}

static PyObject *
send_all_common(AsyncRingObject *self, PyObject *const *args, Py_ssize_t nargs,
                PyObject *kwnames, uint16_t aio, const char *name)
{
    static const char *const kw[] = {"fd", "data", "flags", NULL};
    pu_argspec spec = {name, kw, 2, 3, 0};
    PyObject *argv[3], *fut, *flags, *call[3], *state;
    long f = 0;

    if (pu_parse_args(&spec, args, nargs, kwnames, argv) < 0)
        return NULL;
    if (argv[2] != NULL) {
        f = PyLong_AsLong(argv[2]);
        if (f == -1 && PyErr_Occurred())
            return NULL;
    }
    flags = PyLong_FromLong(f | MSG_WAITALL);
    if (flags == NULL)
        return NULL;
    call[0] = argv[0];
    call[1] = argv[1];
    call[2] = flags;
    /* what a short send needs to go on: (fd, data, flags, bytes sent) */
    state = Py_BuildValue("(OOOi)", argv[0], argv[1], flags, 0);
    fut = state ? start_op(self, &pu_opdefs[PU_OP_SEND], call, 3, NULL,
                           (uint16_t)(aio | PU_AIO_SENDALL), state, NULL) : NULL;
    Py_XDECREF(state);
    Py_DECREF(flags);
    return fut;
}

static PyObject *
AsyncRing_send_all(AsyncRingObject *self, PyObject *const *args, Py_ssize_t nargs,
                   PyObject *kwnames)
{
    return send_all_common(self, args, nargs, kwnames, 0, "send_all");
}

/* ---------------------------------------------------------------- loop.sock_* shapes */

static PyObject *
AsyncRing_sock_recv(AsyncRingObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "sock_recv(sock, nbytes) takes 2 arguments");
        return NULL;
    }
    if (!PyLong_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "sock_recv(): nbytes must be an int");
        return NULL;
    }
    return start_op(self, &pu_opdefs[PU_OP_RECV], args, 2, NULL, 0, NULL, NULL);
}

static PyObject *
AsyncRing_sock_recv_into(AsyncRingObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "sock_recv_into(sock, buf) takes 2 arguments");
        return NULL;
    }
    if (PyLong_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "sock_recv_into(): buf must be a "
                        "writable buffer, not an int");
        return NULL;
    }
    return start_op(self, &pu_opdefs[PU_OP_RECV], args, 2, NULL, 0, NULL, NULL);
}

static PyObject *
AsyncRing_sock_sendall(AsyncRingObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "sock_sendall(sock, data) takes 2 arguments");
        return NULL;
    }
    return send_all_common(self, args, 2, NULL, PU_AIO_NONE, "sock_sendall");
}

static PyObject *
AsyncRing_sock_connect(AsyncRingObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "sock_connect(sock, address) takes 2 arguments");
        return NULL;
    }
    return start_op(self, &pu_opdefs[PU_OP_CONNECT], args, 2, NULL, PU_AIO_NONE, NULL, NULL);
}

static PyObject *
AsyncRing_sock_accept(AsyncRingObject *self, PyObject *sock)
{
    PyObject *call[2], *fut;
    /* non-blocking and close-on-exec, as loop.sock_accept() gives them */
    call[0] = sock;
    call[1] = PyLong_FromLong(SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (call[1] == NULL)
        return NULL;
    fut = start_op(self, &pu_opdefs[PU_OP_ACCEPT], call, 2, NULL, PU_AIO_SOCKET, NULL, NULL);
    Py_DECREF(call[1]);
    return fut;
}

/* ---------------------------------------------------------------- multishot iterators */

static int
iter_arm(AsyncIterObject *it)
{
    AsyncRingObject *a = it->aring;
    SqeObject *rec;
    PyObject *r;

    if (check_open(a) < 0 || bind_loop(a) < 0)
        return -1;
    rec = new_record(a);
    if (rec == NULL)
        return -1;
    rec->sqe_flags = it->sqe_flags;
    rec->buf_group = it->buf_group;
    rec->personality = it->personality;
    r = pu_sqe_prep(rec, it->op, &PyTuple_GET_ITEM(it->args, 0), it->nargs,
                    it->kwnames);
    if (r == NULL) {
        flush_orphan_nop(a);
        Py_DECREF(rec);
        return -1;
    }
    Py_DECREF(r);
    rec->aio = PU_AIO_ITER;
    if (it->op->async_flags & PU_ASYNC_FD)
        rec->aio |= PU_AIO_FD;
    if (it->op->async_flags & PU_ASYNC_PEER)
        rec->aio |= PU_AIO_PEER;
    rec->waiter = (PyObject *)it;   /* borrowed: the iterator's dealloc clears it */
    Py_XSETREF(it->rec, rec);
    a->ops++;
    return schedule_flush(a);
}

PyObject *
pu_async_iter(PyObject *self, const pu_opdef *op, PyObject *const *args,
              Py_ssize_t nargs, PyObject *kwnames)
{
    AsyncIterObject *it;
    pu_call_args ca;
    pu_common c;
    Py_ssize_t n;

    if (pu_split_common(args, nargs, kwnames, &ca, &c, &aio_rules) < 0) {
        Py_XDECREF(ca.owned);
        return NULL;
    }
    args = ca.args;
    kwnames = ca.kwnames;
    n = nargs + (kwnames ? PyTuple_GET_SIZE(kwnames) : 0);
    it = PyObject_GC_New(AsyncIterObject, &AsyncIterType);
    if (it == NULL) {
        Py_XDECREF(ca.owned);
        return NULL;
    }
    it->sqe_flags = c.sqe_flags;
    it->buf_group = c.buf_group;
    it->personality = c.personality;
    Py_INCREF(self);
    it->aring = (AsyncRingObject *)self;
    it->op = op;
    it->nargs = nargs;
    Py_XINCREF(kwnames);
    it->kwnames = kwnames;
    it->args = PyTuple_New(n);
    it->rec = NULL;
    it->items = PyList_New(0);
    it->head = 0;
    it->waiter = NULL;
    it->error = NULL;
    it->ended = 0;
    it->cancelled = 0;
    Py_XDECREF(ca.owned);   /* it->kwnames took its own */
    PyObject_GC_Track(it);
    if (it->args == NULL || it->items == NULL) {
        Py_DECREF(it);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_INCREF(args[i]);
        PyTuple_SET_ITEM(it->args, i, args[i]);
    }
    if (iter_arm(it) < 0) {
        it->ended = 1;
        Py_DECREF(it);
        return NULL;
    }
    return (PyObject *)it;
}

/* Hand what is queued to a waiting __anext__. */
static void
iter_wake(AsyncIterObject *it)
{
    PyObject *w = it->waiter, *v;
    int done, r = 0;

    if (w == NULL)
        return;
    done = truth0(w, s_done);
    if (done != 0) {             /* its task was cancelled: keep the items */
        if (done < 0)
            PyErr_Clear();
        Py_CLEAR(it->waiter);
        return;
    }
    if (it->head < PyList_GET_SIZE(it->items)) {
        v = PyList_GET_ITEM(it->items, it->head);
        it->head++;
        r = call1_void(w, s_set_result, v);
    } else if (it->error != NULL) {
        r = call1_void(w, s_set_exception, it->error);
        Py_CLEAR(it->error);
    } else if (it->ended) {
        v = PyObject_CallNoArgs(PyExc_StopAsyncIteration);
        r = v ? call1_void(w, s_set_exception, v) : -1;
        Py_XDECREF(v);
    } else {
        return;
    }
    if (r < 0)
        unraisable("AsyncRing: waking an async for");
    Py_CLEAR(it->waiter);
}

static void
iter_deliver(AsyncIterObject *it, SqeObject *rec, CqeObject *q)
{
    int more = (q->flags & IORING_CQE_F_MORE) != 0;
    PyObject *v;

    Py_INCREF(it);
    if (!more) {
        /* the last completion of this arming */
        rec->waiter = NULL;
        if (it->rec == rec)
            Py_CLEAR(it->rec);
        if (q->res == -ENOBUFS && !it->cancelled && !it->aring->closing) {
            /* the buffer ring ran dry: the kernel stops; go on */
            if (iter_arm(it) < 0) {
                it->error = pu_exc_take();
                it->ended = 1;
            }
            goto out;
        }
        it->ended = 1;
        if (q->res == 0 || (q->res == -ECANCELED && (it->cancelled || it->aring->closing)))
            goto out;   /* end of stream, or cancelled: stop quietly */
    }
    v = result_value(rec, q);
    if (v == NULL) {
        it->error = pu_exc_take();
        it->ended = 1;
    } else if (PyList_Append(it->items, v) < 0) {
        PyErr_Clear();
    }
    Py_XDECREF(v);
out:
    iter_wake(it);
    Py_DECREF(it);
}

static PyObject *
AsyncIter_anext(AsyncIterObject *it)
{
    PyObject *fut;

    if (it->waiter != NULL) {
        int done = truth0(it->waiter, s_done);
        if (done < 0)
            return NULL;
        if (!done) {
            PyErr_SetString(PyExc_RuntimeError, "another task is already "
                            "waiting on this multishot iterator");
            return NULL;
        }
        Py_CLEAR(it->waiter);
    }
    if (it->head >= PyList_GET_SIZE(it->items) && it->error == NULL && it->ended) {
        PyErr_SetNone(PyExc_StopAsyncIteration);
        return NULL;
    }
    if (bind_loop(it->aring) < 0)
        return NULL;
    fut = new_future(it->aring, 0);
    if (fut == NULL)
        return NULL;
    Py_INCREF(fut);
    it->waiter = fut;
    iter_wake(it);
    /* drop taken items now and then, not on every call */
    if (it->head > 64 && it->head * 2 > PyList_GET_SIZE(it->items)) {
        if (PyList_SetSlice(it->items, 0, it->head, NULL) < 0) {
            Py_DECREF(fut);
            return NULL;
        }
        it->head = 0;
    }
    return fut;
}

static PyObject *
AsyncIter_aiter(PyObject *it)
{
    Py_INCREF(it);
    return it;
}

/* Cancel the armed operation in the kernel; the iteration ends when its
 * last completion comes. */
static int
iter_cancel(AsyncIterObject *it)
{
    it->cancelled = 1;
    if (it->rec == NULL || it->rec->state == PU_DONE || it->aring->closed ||
        it->aring->closing)
        return 0;
    return internal_cancel(it->aring, it->rec->user_data);
}

static PyObject *
AsyncIter_cancel(AsyncIterObject *it, PyObject *Py_UNUSED(ignored))
{
    if (iter_cancel(it) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static int
AsyncIter_traverse(AsyncIterObject *it, visitproc visit, void *arg)
{
    Py_VISIT(it->aring);
    Py_VISIT(it->args);
    Py_VISIT(it->rec);
    Py_VISIT(it->items);
    Py_VISIT(it->waiter);
    Py_VISIT(it->error);
    return 0;
}

static void
AsyncIter_dealloc(AsyncIterObject *it)
{
    PyObject_GC_UnTrack(it);
    if (it->rec != NULL) {
        /* left behind (a `break` out of async for): stop the op; what still
         * completes has no taker, and new fds in it are closed */
        pu_exc_state saved;
        pu_exc_save(&saved);
        it->rec->waiter = NULL;
        if (iter_cancel(it) < 0)
            unraisable("AsyncRing: cancelling a multishot operation");
        pu_exc_restore(&saved);
        Py_CLEAR(it->rec);
    }
    if (it->items != NULL && it->aring != NULL) {
        /* results not taken: their fds would leak */
        for (Py_ssize_t i = it->head; i < PyList_GET_SIZE(it->items); i++) {
            PyObject *o = PyList_GET_ITEM(it->items, i);
            if (it->op->async_flags & PU_ASYNC_FD)
                close_fd_object(PyTuple_Check(o) ? PyTuple_GET_ITEM(o, 0) : o);
        }
    }
    Py_CLEAR(it->aring);
    Py_CLEAR(it->args);
    Py_CLEAR(it->kwnames);
    Py_CLEAR(it->items);
    Py_CLEAR(it->waiter);
    Py_CLEAR(it->error);
    PyObject_GC_Del(it);
}

static PyMethodDef AsyncIter_methods[] = {
    {"cancel", (PyCFunction)AsyncIter_cancel, METH_NOARGS,
     "cancel($self)\n--\n\nCancel the multishot operation in the kernel; the "
     "iteration ends\nafter the completions already made."},
    {NULL, NULL, 0, NULL},
};

static PyAsyncMethods AsyncIter_async = {
    .am_aiter = (unaryfunc)AsyncIter_aiter,
    .am_anext = (unaryfunc)AsyncIter_anext,
};

static PyTypeObject AsyncIterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "py_io_uring.MultishotIterator",
    .tp_basicsize = sizeof(AsyncIterObject),
    .tp_dealloc = (destructor)AsyncIter_dealloc,
    .tp_as_async = &AsyncIter_async,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "An async iterator over a multishot operation's completions.",
    .tp_traverse = (traverseproc)AsyncIter_traverse,
    .tp_methods = AsyncIter_methods,
};

/* ---------------------------------------------------------------- closing */

/* Cancel every operation in flight, by user_data (any kernel). */
static int
cancel_everything(AsyncRingObject *self)
{
    RingObject *r = self->ring;
    if (flush_now(self) < 0)
        return -1;
    for (uint32_t s = 0; s < r->nslots; s++) {
        SqeObject *rec = r->slots[s];
        if (rec != NULL && rec->state == PU_SUBMITTED &&
            internal_cancel(self, rec->user_data) < 0)
            return -1;
    }
    return flush_now(self) < 0 ? -1 : 0;
}

/* Futures still waiting when the ring goes: they will never complete. */
static void
fail_waiters(AsyncRingObject *self)
{
    RingObject *r = self->ring;
    for (uint32_t s = 0; s < r->nslots; s++) {
        SqeObject *rec = r->slots != NULL ? r->slots[s] : NULL;
        PyObject *fut;
        if (rec == NULL || rec->waiter == NULL)
            continue;
        if (rec->aio & PU_AIO_ITER) {
            AsyncIterObject *it = (AsyncIterObject *)rec->waiter;
            rec->waiter = NULL;
            it->ended = 1;
            Py_CLEAR(it->rec);
            iter_wake(it);
            continue;
        }
        fut = rec->waiter;
        rec->waiter = NULL;
        Py_CLEAR(rec->waiter_cb);
        if (truth0(fut, s_done) == 0) {
            PyObject *e = pu_oserror_new(ECANCELED);
            if (e == NULL || call1_void(fut, s_set_exception, e) < 0)
                PyErr_Clear();
            Py_XDECREF(e);
        } else {
            PyErr_Clear();
        }
        Py_DECREF(fut);
    }
}

static void
release_ring(AsyncRingObject *self)
{
    if (self->ring != NULL && self->ring->initialised) {
        pu_ring_teardown(self->ring);   /* cancels, drains; leaks past its deadline */
        if (PyErr_Occurred())
            unraisable("AsyncRing: tearing down the ring");
    }
    if (self->efd >= 0) {
        close(self->efd);
        self->efd = -1;
    }
}

/* Everything is done: remove the reader, then tear the ring down. */
static void
finish_close(AsyncRingObject *self)
{
    pu_exc_state saved;
    pu_exc_save(&saved);
    self->closed = 1;
    if (self->reader_added) {
        PyObject *fd = PyLong_FromLong(self->efd);
        if (fd == NULL || call1_void(self->loop, s_remove_reader, fd) < 0)
            PyErr_Clear();
        Py_XDECREF(fd);
        self->reader_added = 0;
    }
    if (self->close_timer != NULL) {
        PyObject *r = call0(self->close_timer, s_cancel);
        if (r == NULL)
            PyErr_Clear();
        Py_XDECREF(r);
        Py_CLEAR(self->close_timer);
    }
    fail_waiters(self);
    release_ring(self);
    if (self->close_waiter != NULL) {
        if (truth0(self->close_waiter, s_done) == 0) {
            if (call1_void(self->close_waiter, s_set_result, Py_None) < 0)
                PyErr_Clear();
        } else {
            PyErr_Clear();
        }
    }
    pu_exc_restore(&saved);
}

/* aclose()'s deadline: the kernel kept something past it. */
static PyObject *
AsyncRing_deadline_cb(PyObject *op, PyObject *Py_UNUSED(unused))
{
    AsyncRingObject *self = (AsyncRingObject *)op;
    if (!self->closed) {
        Py_CLEAR(self->close_timer);
        finish_close(self);
    }
    Py_RETURN_NONE;
}

static PyMethodDef deadline_def = {"_deadline", AsyncRing_deadline_cb, METH_NOARGS, NULL};

static PyObject *
done_future(AsyncRingObject *self, PyObject *value)
{
    PyObject *fut = new_future(self, 0);
    if (fut != NULL && call1_void(fut, s_set_result, value) < 0)
        Py_CLEAR(fut);
    return fut;
}

static PyObject *
AsyncRing_aclose(AsyncRingObject *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *cb, *delay;

    if (self->closing || self->closed) {
        if (self->close_waiter != NULL) {
            Py_INCREF(self->close_waiter);
            return self->close_waiter;
        }
    }
    if (bind_loop(self) < 0)
        return NULL;
    if (self->closed)
        return done_future(self, Py_None);
    self->closing = 1;
    self->close_waiter = new_future(self, 0);
    if (self->close_waiter == NULL)
        return NULL;
    if (cancel_everything(self) < 0)
        unraisable("AsyncRing.aclose(): cancelling");
    if (self->ring->nrecords == 0) {
        finish_close(self);
    } else {
        cb = PyCFunction_New(&deadline_def, (PyObject *)self);
        delay = PyFloat_FromDouble(PU_CLOSE_DEADLINE);
        if (cb != NULL && delay != NULL)
            self->close_timer = PyObject_CallMethodObjArgs(self->loop, s_call_later,
                                                           delay, cb, NULL);
        Py_XDECREF(cb);
        Py_XDECREF(delay);
        if (self->close_timer == NULL)
            return NULL;
        /* completions may already be waiting */
        if (process(self) < 0)
            unraisable("AsyncRing.aclose(): reaping");
    }
    Py_INCREF(self->close_waiter);
    return self->close_waiter;
}

static PyObject *
AsyncRing_aenter(AsyncRingObject *self, PyObject *Py_UNUSED(ignored))
{
    if (check_open(self) < 0 || bind_loop(self) < 0)
        return NULL;
    return done_future(self, (PyObject *)self);
}

static PyObject *
AsyncRing_aexit(AsyncRingObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)args;
    (void)nargs;
    return AsyncRing_aclose(self, NULL);
}

/* ---------------------------------------------------------------- the rest */

static PyObject *
AsyncRing_flush(AsyncRingObject *self, PyObject *Py_UNUSED(ignored))
{
    int n;
    if (check_open(self) < 0)
        return NULL;
    n = flush_now(self);
    return n < 0 ? NULL : PyLong_FromLong(n);
}

static PyObject *
AsyncRing_process_completions(AsyncRingObject *self, PyObject *Py_UNUSED(ignored))
{
    unsigned long long before = self->completions;
    if (self->closed)
        return PyLong_FromLong(0);
    if (bind_loop(self) < 0 || process(self) < 0)
        return NULL;
    return PyLong_FromUnsignedLongLong(self->completions - before);
}

static PyObject *
AsyncRing_stats(AsyncRingObject *self, PyObject *Py_UNUSED(ignored))
{
    return Py_BuildValue("{s:K,s:K,s:K,s:n}", "submits", self->submits,
                         "completions", self->completions, "ops", self->ops,
                         "in_flight", self->ring ? self->ring->nrecords : 0);
}

static PyObject *
AsyncRing_in_flight(AsyncRingObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromSsize_t(self->ring ? self->ring->nrecords : 0);
}

static PyObject *
AsyncRing_fileno(AsyncRingObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->efd < 0) {
        PyErr_SetString(PyExc_ValueError, "AsyncRing is closed");
        return NULL;
    }
    return PyLong_FromLong(self->efd);
}

static PyObject *
AsyncRing_get_ring(AsyncRingObject *self, PyObject *Py_UNUSED(ignored))
{
    Py_INCREF(self->ring);
    return (PyObject *)self->ring;
}

static PyObject *
AsyncRing_closed(AsyncRingObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(self->closed);
}

static int
AsyncRing_init(AsyncRingObject *self, PyObject *args, PyObject *kwds)
{
    PyObject *ringargs;
    RingObject *ring;

    if (self->ring != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "AsyncRing is already initialised");
        return -1;
    }
    /* the ring's own parser checks the arguments; 256 entries by default */
    if (PyTuple_GET_SIZE(args) == 0 &&
        (kwds == NULL || PyDict_GetItemString(kwds, "entries") == NULL))
        ringargs = Py_BuildValue("(i)", 256);
    else
        ringargs = (Py_INCREF(args), args);
    if (ringargs == NULL)
        return -1;
    ring = (RingObject *)PyObject_Call((PyObject *)&pu_RingType, ringargs, kwds);
    Py_DECREF(ringargs);
    if (ring == NULL)
        return -1;
    if (!ring->initialised) {
        Py_DECREF(ring);
        PyErr_SetString(PyExc_ValueError, "AsyncRing(): entries must be a number");
        return -1;
    }
    self->ring = ring;
    self->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (self->efd < 0) {
        pu_err_errno(errno);
        return -1;
    }
    {
        int ret = io_uring_register_eventfd(&ring->ring, self->efd);
        if (ret < 0) {
            pu_err_errno(-ret);
            return -1;
        }
    }
    ring->owner = self;
    return 0;
}

static PyObject *
AsyncRing_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    AsyncRingObject *self = (AsyncRingObject *)type->tp_alloc(type, 0);
    (void)args;
    (void)kwds;
    if (self != NULL)
        self->efd = -1;
    return (PyObject *)self;
}

static int
AsyncRing_traverse(AsyncRingObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->ring);
    Py_VISIT(self->loop);
    Py_VISIT(self->call_soon);
    Py_VISIT(self->future_type);
    Py_VISIT(self->fd_future_type);
    Py_VISIT(self->flush_cb);
    Py_VISIT(self->ready_cb);
    Py_VISIT(self->close_waiter);
    Py_VISIT(self->close_timer);
    return 0;
}

static int
AsyncRing_clear(AsyncRingObject *self)
{
    /* the ring stays until dealloc: its records may still be in the kernel */
    Py_CLEAR(self->loop);
    Py_CLEAR(self->call_soon);
    Py_CLEAR(self->future_type);
    Py_CLEAR(self->fd_future_type);
    Py_CLEAR(self->flush_cb);
    Py_CLEAR(self->ready_cb);
    Py_CLEAR(self->close_waiter);
    Py_CLEAR(self->close_timer);
    return 0;
}

static void
AsyncRing_dealloc(AsyncRingObject *self)
{
    PyObject_GC_UnTrack(self);
    if (self->weakreflist != NULL)
        PyObject_ClearWeakRefs((PyObject *)self);
    if (self->ring != NULL) {
        if (!self->closed && self->ring->nrecords > 0 &&
            PyErr_WarnEx(PyExc_ResourceWarning, "AsyncRing was not closed with "
                         "aclose() and had operations in flight", 1) < 0)
            unraisable("AsyncRing.__del__");
        self->ring->owner = NULL;
        self->closed = 1;
        /* the reader holds this object, so the loop no longer watches the
         * eventfd: the futures' loop may be closed, do not touch it */
        release_ring(self);
        Py_CLEAR(self->ring);
    } else if (self->efd >= 0) {
        close(self->efd);
    }
    AsyncRing_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
AsyncRing_repr(AsyncRingObject *self)
{
    return PyUnicode_FromFormat("<py_io_uring.AsyncRing %s in_flight=%zd>",
                                self->closed ? "closed" : self->closing ? "closing"
                                : self->loop ? "bound" : "unbound",
                                self->ring ? self->ring->nrecords : (Py_ssize_t)0);
}

static PyMethodDef AsyncRing_methods[] = {
    {"aclose", (PyCFunction)AsyncRing_aclose, METH_NOARGS, PU_DOC_AsyncRing_aclose},
    {"__aenter__", (PyCFunction)AsyncRing_aenter, METH_NOARGS, PU_DOC_AsyncRing___aenter__},
    {"__aexit__", (PyCFunction)(void (*)(void))AsyncRing_aexit, METH_FASTCALL,
     PU_DOC_AsyncRing___aexit__},
    {"send_all", (PyCFunction)(void (*)(void))AsyncRing_send_all,
     METH_FASTCALL | METH_KEYWORDS, PU_DOC_AsyncRing_send_all},
    {"sock_recv", (PyCFunction)(void (*)(void))AsyncRing_sock_recv, METH_FASTCALL,
     PU_DOC_AsyncRing_sock_recv},
    {"sock_recv_into", (PyCFunction)(void (*)(void))AsyncRing_sock_recv_into,
     METH_FASTCALL, PU_DOC_AsyncRing_sock_recv_into},
    {"sock_sendall", (PyCFunction)(void (*)(void))AsyncRing_sock_sendall,
     METH_FASTCALL, PU_DOC_AsyncRing_sock_sendall},
    {"sock_connect", (PyCFunction)(void (*)(void))AsyncRing_sock_connect,
     METH_FASTCALL, PU_DOC_AsyncRing_sock_connect},
    {"sock_accept", (PyCFunction)AsyncRing_sock_accept, METH_O,
     PU_DOC_AsyncRing_sock_accept},
    {"flush", (PyCFunction)AsyncRing_flush, METH_NOARGS, PU_DOC_AsyncRing_flush},
    {"process_completions", (PyCFunction)AsyncRing_process_completions, METH_NOARGS,
     PU_DOC_AsyncRing_process_completions},
    {"stats", (PyCFunction)AsyncRing_stats, METH_NOARGS, PU_DOC_AsyncRing_stats},
    {"in_flight", (PyCFunction)AsyncRing_in_flight, METH_NOARGS,
     PU_DOC_AsyncRing_in_flight},
    {"fileno", (PyCFunction)AsyncRing_fileno, METH_NOARGS, PU_DOC_AsyncRing_fileno},
    {"get_ring", (PyCFunction)AsyncRing_get_ring, METH_NOARGS, PU_DOC_AsyncRing_get_ring},
    {"closed", (PyCFunction)AsyncRing_closed, METH_NOARGS, PU_DOC_AsyncRing_closed},
    {NULL, NULL, 0, NULL},
};

PyTypeObject pu_AsyncRingType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "py_io_uring.AsyncRing",
    .tp_basicsize = sizeof(AsyncRingObject),
    .tp_dealloc = (destructor)AsyncRing_dealloc,
    .tp_repr = (reprfunc)AsyncRing_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = PU_DOC_AsyncRing,
    .tp_traverse = (traverseproc)AsyncRing_traverse,
    .tp_clear = (inquiry)AsyncRing_clear,
    .tp_weaklistoffset = offsetof(AsyncRingObject, weakreflist),
    .tp_init = (initproc)AsyncRing_init,
    .tp_new = AsyncRing_new,
};

/* The hand-written methods, then one per awaitable op of ops.def. */
int
pu_async_type_init(void)
{
    static PyMethodDef *all;
    size_t nh = 0, ng = 0;
    struct { PyObject **slot; const char *name; } names[] = {
        {&s_create_future, "create_future"}, {&s_add_done_callback, "add_done_callback"},
        {&s_remove_done_callback, "remove_done_callback"}, {&s_set_result, "set_result"},
        {&s_set_exception, "set_exception"}, {&s_done, "done"},
        {&s_cancelled, "cancelled"}, {&s_call_soon, "call_soon"},
        {&s_call_later, "call_later"}, {&s_add_reader, "add_reader"},
        {&s_remove_reader, "remove_reader"}, {&s_cancel, "cancel"},
        {&s_is_closed, "is_closed"}, {&s_fileno, "fileno"},
        {&s_dropped, "_pu_dropped"}, {&s_exception_attr, "_exception"},
        {&s_throw, "throw"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (*names[i].slot == NULL &&
            (*names[i].slot = PyUnicode_InternFromString(names[i].name)) == NULL)
            return -1;
    }
    if (kw_loop == NULL && (kw_loop = Py_BuildValue("(s)", "loop")) == NULL)
        return -1;
    if (all == NULL) {
        while (AsyncRing_methods[nh].ml_name != NULL)
            nh++;
        while (pu_generated_async_methods[ng].ml_name != NULL)
            ng++;
        all = PyMem_Calloc(nh + ng + 1, sizeof(*all));
        if (all == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        memcpy(all, AsyncRing_methods, nh * sizeof(*all));
        memcpy(all + nh, pu_generated_async_methods, ng * sizeof(*all));
        pu_AsyncRingType.tp_methods = all;
    }
    if (PyType_Ready(&AsyncIterType) < 0 || PyType_Ready(&FdAwaitType) < 0)
        return -1;
    return PyType_Ready(&pu_AsyncRingType);
}
