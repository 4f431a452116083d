/* async/ring.c: the AsyncRing type: making it (its ring and eventfd),
 * binding it to the running loop, aclose() and the close that follows the
 * last completion, dealloc, the small methods, and the type's method table
 * (these, sock.c's, then one per awaitable op of ops.def).
 * async_internal.h says how the files of src/async/ share the work. */
#include "async/async_internal.h"
#include "methods_doc.h"
#include "ops_gen.h"

#include <errno.h>
#include <sys/eventfd.h>
#include <unistd.h>

pu_aio_names pu_aio_s;
static PyObject *get_running_loop;  /* asyncio.get_running_loop */
static PyObject *kw_loop;           /* ("loop",): Future(loop=...) */

/* ---------------------------------------------------------------- binding */


/* A future of the bound loop: Future(loop=loop) built with one vectorcall
 * when that is what the loop's create_future() returns (asyncio, uvloop);
 * with fds, of its subclass for results that own fds (fd futures below). */
PyObject *
pu_aio_new_future(AsyncRingObject *self, int fds)
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
    return call0(self->loop, pu_aio_s.create_future);
}

int
pu_aio_check_open_fail(AsyncRingObject *self)
{
    PyErr_SetString(PyExc_RuntimeError, self->closed ? "AsyncRing is closed"
                                                     : "AsyncRing is closing");
    return -1;
}

/* asyncio.get_running_loop(): a new reference, or NULL with its
 * RuntimeError. */
static PyObject *
running_loop(void)
{
    if (get_running_loop == NULL) {
        PyObject *asyncio = PyImport_ImportModule("asyncio");
        if (asyncio == NULL)
            return NULL;
        get_running_loop = PyObject_GetAttrString(asyncio, "get_running_loop");
        Py_DECREF(asyncio);
        if (get_running_loop == NULL)
            return NULL;
    }
    return PyObject_CallNoArgs(get_running_loop);
}

static int
wrong_loop(AsyncRingObject *self)
{
    PyErr_SetString(PyExc_RuntimeError, self->loop_owned
                    ? "this AsyncRing is another event loop's own ring: "
                      "py_io_uring.get_running_ring() gives the running loop's"
                    : "AsyncRing is bound to another event loop (the one it "
                      "was first used on)");
    return -1;
}

/* Bind to loop (a new reference, stolen): its futures, its call_soon, the
 * eventfd's reader.  Needs no running loop (_loop_ring() binds a loop's own
 * ring before it runs); the thread is the caller's to set. */
static int
bind_to(AsyncRingObject *self, PyObject *loop)
{
    PyObject *fd, *r;

    self->loop = loop;
    {
        PyObject *probe = call0(loop, pu_aio_s.create_future), *asyncio, *ft;
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
            PyObject *t = pu_aio_fd_future_type(self->future_type);
            if (t == NULL)
                return -1;
            Py_INCREF(t);
            self->fd_future_type = t;
        }
    }
    self->call_soon = PyObject_GetAttr(loop, pu_aio_s.call_soon);
    self->flush_cb = PyCFunction_New(&pu_aio_flush_def, (PyObject *)self);
    self->ready_cb = PyCFunction_New(&pu_aio_ready_def, (PyObject *)self);
    if (self->call_soon == NULL || self->flush_cb == NULL || self->ready_cb == NULL)
        return -1;
    if (self->selector_mode)
        return 0;   /* the loop's select() reaps it (selector.c) */
    fd = PyLong_FromLong(self->efd);
    if (fd == NULL)
        return -1;
    r = PyObject_CallMethodObjArgs(loop, pu_aio_s.add_reader, fd, self->ready_cb, NULL);
    Py_DECREF(fd);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    self->reader_added = 1;
    return 0;
}

/* Bind to the running loop on first use; later uses must come from it.
 * (The inline pu_aio_bind_loop() answers for a use in a loop iteration that
 * was checked already.)  A loop's own ring was bound to it by _loop_ring()
 * with no thread yet: its first use running on that loop sets the thread. */
int
pu_aio_bind_loop_slow(AsyncRingObject *self)
{
    PyObject *loop;

    if (self->loop != NULL) {
        if (self->thread != 0 && PyThread_get_thread_ident() != self->thread) {
            /* a loop's own ring follows the loop: asyncio lets a stopped
             * loop run again in another thread (whether its ring's kernel
             * side does is pu_aio_check_issuer()'s) */
            if (self->loop_owned) {
                loop = running_loop();
                if (loop == NULL)
                    PyErr_Clear();      /* none running here: refused below */
                else
                    Py_DECREF(loop);
                if (loop != NULL && loop == self->loop) {
                    self->thread = PyThread_get_thread_ident();
                    return 0;
                }
            }
            PyErr_SetString(PyExc_RuntimeError, "AsyncRing used from another "
                            "thread than its event loop's");
            return -1;
        }
        /* futures of a finished loop would never complete: check once per
         * loop iteration (a pending flush means this one was checked;
         * get_running_loop() costs a getpid() on 3.11) */
        if (self->flush_scheduled && self->thread != 0)
            return 0;
        loop = running_loop();
        if (loop == NULL)
            return -1;
        Py_DECREF(loop);
        if (loop != self->loop)
            return wrong_loop(self);
        if (self->thread == 0)
            self->thread = PyThread_get_thread_ident();
        return 0;
    }
    loop = running_loop();
    if (loop == NULL)
        return -1;
    self->thread = PyThread_get_thread_ident();
    return bind_to(self, loop);
}

/* _loop_ring(loop): this AsyncRing is loop's own ring (the EventLoop's,
 * loop.py), shared by py_io_uring.get_running_ring(): bound to loop now,
 * whether or not it runs (a use while another loop runs is refused, not
 * bound there), its aclose() refused, the transports' buffer group
 * reserved.  _loop_ring(None): the loop closes it (EventLoop.close()),
 * from the thread that calls close(): asyncio lets a loop that ran in one
 * thread be closed from another once it stopped, and a stopped loop's ring
 * has no other user. */
static PyObject *
AsyncRing_loop_ring(AsyncRingObject *self, PyObject *loop)
{
    if (loop == Py_None) {
        self->loop_owned = 0;
        if (self->thread != 0)
            self->thread = PyThread_get_thread_ident();
        Py_RETURN_NONE;
    }
    if (pu_aio_check_open(self) < 0)
        return NULL;
    if (self->loop == NULL) {
        Py_INCREF(loop);
        self->thread = 0;
        if (bind_to(self, loop) < 0)
            return NULL;
    } else if (self->loop != loop) {
        PyErr_SetString(PyExc_RuntimeError, "_loop_ring(): the AsyncRing is bound "
                        "to another event loop");
        return NULL;
    }
    self->loop_owned = 1;
    pu_aio_reserve_stream_bgid(self);
    Py_RETURN_NONE;
}

/* aclose() and async with on a loop's own ring: the loop's to close. */
static int
check_not_loop_owned(AsyncRingObject *self, const char *what)
{
    if (!self->loop_owned)
        return 0;
    PyErr_Format(PyExc_RuntimeError, "%s: this AsyncRing is the event loop's own "
                 "ring (py_io_uring.get_running_ring()), shared by everything "
                 "on the loop, which closes it (loop.close()); make an "
                 "AsyncRing() of your own to close it", what);
    return -1;
}

/* Cancel every operation in flight, by user_data (any kernel). */
static int
cancel_everything(AsyncRingObject *self)
{
    RingObject *r = self->ring;
    if (pu_aio_flush_now(self) < 0)
        return -1;
    for (uint32_t s = 0; s < r->nslots; s++) {
        SqeObject *rec = r->slots[s];
        if (rec != NULL && rec->state == PU_SUBMITTED &&
            pu_aio_internal_cancel(self, rec->user_data) < 0)
            return -1;
    }
    return pu_aio_flush_now(self) < 0 ? -1 : 0;
}

/* Waiters left when the ring goes: their ops will never be reported.
 * Futures are cancelled (an OSError there would be logged as never
 * retrieved for every future nobody awaits), iterators end. */
static void
fail_waiters(AsyncRingObject *self)
{
    /* by index: the code these calls run may grow the table */
    for (uint32_t s = 0; s < self->nwaits; s++) {
        pu_aio_wait taken;
        PyObject *fut;
        if (self->waits[s].user_data == 0)
            continue;
        taken = pu_aio_wait_take(&self->waits[s]);
        if (taken.flags & PU_AIO_ITER) {
            pu_aio_iter_end(taken.waiter);
            continue;
        }
        if (taken.flags & PU_AIO_CALLBACK) {
            SqeObject *rec = PU_UD_SLOT(taken.user_data) < self->ring->nslots
                ? self->ring->slots[PU_UD_SLOT(taken.user_data)] : NULL;
            pu_aio_callback_end(taken.waiter, rec);
            Py_DECREF(taken.waiter);
            continue;
        }
        if (taken.waiter == NULL) {
            pu_aio_wait_release(&taken);   /* a link timeout's, alone */
            continue;
        }
        fut = taken.waiter;
        Py_INCREF(fut);
        pu_aio_wait_release(&taken);
        pu_aio_cancel_future(fut);   /* a done future refuses: harmless */
        Py_DECREF(fut);
    }
}

/* Empty the side table calling nothing (the GC's clear, dealloc): the
 * references just go. */
static void
drop_waits(AsyncRingObject *self)
{
    for (uint32_t s = 0; s < self->nwaits; s++) {
        pu_aio_wait taken;
        if (self->waits[s].user_data == 0)
            continue;
        taken = pu_aio_wait_take(&self->waits[s]);
        if (!(taken.flags & PU_AIO_ITER)) {
            Py_XDECREF(taken.cb);
            Py_XDECREF(taken.waiter);
            Py_XDECREF(taken.held);
        }
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
void
pu_aio_finish_close(AsyncRingObject *self)
{
    pu_exc_state saved;
    pu_exc_save(&saved);
    self->closed = 1;
    if (self->reader_added) {
        PyObject *fd = PyLong_FromLong(self->efd);
        if (fd == NULL || call1_void(self->loop, pu_aio_s.remove_reader, fd) < 0)
            PyErr_Clear();
        Py_XDECREF(fd);
        self->reader_added = 0;
    }
    if (self->close_timer != NULL) {
        PyObject *r = call0(self->close_timer, pu_aio_s.cancel);
        if (r == NULL)
            PyErr_Clear();
        Py_XDECREF(r);
        Py_CLEAR(self->close_timer);
    }
    fail_waiters(self);
    release_ring(self);
    if (self->close_waiter != NULL) {
        if (truth0(self->close_waiter, pu_aio_s.done) == 0) {
            if (call1_void(self->close_waiter, pu_aio_s.set_result, Py_None) < 0)
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
        pu_aio_finish_close(self);
    }
    Py_RETURN_NONE;
}

static PyMethodDef deadline_def = {"_deadline", AsyncRing_deadline_cb, METH_NOARGS, NULL};

static PyObject *
done_future(AsyncRingObject *self, PyObject *value)
{
    PyObject *fut = pu_aio_new_future(self, 0);
    if (fut != NULL && call1_void(fut, pu_aio_s.set_result, value) < 0)
        Py_CLEAR(fut);
    return fut;
}

static PyObject *
AsyncRing_aclose(AsyncRingObject *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *cb, *delay;
    int reachable;

    if (check_not_loop_owned(self, "aclose()") < 0)
        return NULL;
    if (self->closing || self->closed) {
        if (self->close_waiter != NULL) {
            Py_INCREF(self->close_waiter);
            return self->close_waiter;
        }
    }
    if (pu_aio_bind_loop(self) < 0)
        return NULL;
    if (self->closed)
        return done_future(self, Py_None);
    self->closing = 1;
    self->close_waiter = pu_aio_new_future(self, 0);
    if (self->close_waiter == NULL)
        return NULL;
    /* a forked child's copy has nothing of its own in flight, and no
     * mapping of the ring to cancel through: the teardown lets it go; nor
     * can a thread the kernel takes no submissions from (a SINGLE_ISSUER
     * ring's other threads) cancel: the teardown leaks what is in flight */
    reachable = self->ring->fork_generation == pu_fork_generation &&
                PU_ISSUER_HERE(self->ring);
    if (reachable && cancel_everything(self) < 0)
        unraisable("AsyncRing.aclose(): cancelling");
    if (self->ring->nrecords == 0 || !reachable) {
        pu_aio_finish_close(self);
    } else {
        cb = PyCFunction_New(&deadline_def, (PyObject *)self);
        delay = PyFloat_FromDouble(PU_CLOSE_DEADLINE);
        if (cb != NULL && delay != NULL)
            self->close_timer = PyObject_CallMethodObjArgs(self->loop, pu_aio_s.call_later,
                                                           delay, cb, NULL);
        Py_XDECREF(cb);
        Py_XDECREF(delay);
        if (self->close_timer == NULL)
            return NULL;
        /* completions may already be waiting */
        if (pu_aio_process(self) < 0)
            unraisable("AsyncRing.aclose(): reaping");
    }
    Py_INCREF(self->close_waiter);
    return self->close_waiter;
}

static PyObject *
AsyncRing_aenter(AsyncRingObject *self, PyObject *Py_UNUSED(ignored))
{
    if (check_not_loop_owned(self, "async with") < 0 ||
        pu_aio_check_open(self) < 0 || pu_aio_bind_loop(self) < 0)
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
    if (pu_aio_check_open(self) < 0)
        return NULL;
    n = pu_aio_flush_now(self);
    return n < 0 ? NULL : PyLong_FromLong(n);
}

static PyObject *
AsyncRing_process_completions(AsyncRingObject *self, PyObject *Py_UNUSED(ignored))
{
    unsigned long long before = self->completions;
    if (self->closed)
        return PyLong_FromLong(0);
    if (pu_aio_bind_loop(self) < 0 || pu_aio_process(self) < 0)
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
        PyErr_SetString(PyExc_ValueError, self->selector_mode && !self->closed
                        ? "AsyncRing.fileno(): the event loop's ring has no "
                          "eventfd (the loop's select() reaps it)"
                        : "AsyncRing is closed");
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
AsyncRing_closed(AsyncRingObject *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(self->closed);
}

static PyObject *
AsyncRing_take_partial(AsyncRingObject *self, PyObject *fd)
{
    return pu_aio_take_partial(self, fd);
}

static PyGetSetDef AsyncRing_getset[] = {
    {"closed", (getter)AsyncRing_closed, NULL, PU_DOC_AsyncRing_closed, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

/* close() is liburing's name for IORING_OP_CLOSE (generated from ops.def);
 * close_fd() says it closes an fd, not the ring (aclose()) */
static PyObject *
AsyncRing_close_fd(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                   PyObject *kwnames)
{
    return pu_aio_op_named(self, &pu_opdefs[PU_OP_CLOSE], args, nargs, kwnames,
                           "close_fd");
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
    Py_VISIT(self->carry);
    Py_VISIT(self->flush_cb);
    Py_VISIT(self->ready_cb);
    Py_VISIT(self->close_waiter);
    Py_VISIT(self->close_timer);
    {
        int v = pu_aio_sel_traverse(self, visit, arg);
        if (v != 0)
            return v;
    }
    Py_VISIT(self->cb_queue);
    for (uint32_t s = 0; s < self->nwaits; s++) {
        const pu_aio_wait *w = &self->waits[s];
        if (w->user_data != 0 && !(w->flags & PU_AIO_ITER)) {
            Py_VISIT(w->waiter);
            Py_VISIT(w->cb);
            Py_VISIT(w->held);
        }
    }
    return 0;
}

static int
AsyncRing_clear(AsyncRingObject *self)
{
    /* the ring stays until dealloc: its records may still be in the kernel;
     * what completes from now on has no taker (fds in it are closed) */
    drop_waits(self);
    Py_CLEAR(self->loop);
    Py_CLEAR(self->call_soon);
    Py_CLEAR(self->future_type);
    Py_CLEAR(self->fd_future_type);
    Py_CLEAR(self->carry);
    Py_CLEAR(self->flush_cb);
    Py_CLEAR(self->cb_queue);
    Py_CLEAR(self->ready_cb);
    Py_CLEAR(self->close_waiter);
    Py_CLEAR(self->close_timer);
    pu_aio_sel_clear(self);
    return 0;
}

static void
AsyncRing_dealloc(AsyncRingObject *self)
{
    /* may run while an exception propagates (an AsyncRing() dropped by the
     * call that raised): the warning and the teardown below must neither
     * see nor clear it */
    pu_exc_state saved;
    PyObject_GC_UnTrack(self);
    pu_exc_save(&saved);
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
    PyMem_Free(self->waits);
    pu_aio_sel_free(self);
    self->waits = NULL;
    self->nwaits = 0;
    pu_exc_restore(&saved);
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

/* open(file, mode="r", ...): py_io_uring.open(file, ..., ring=self).  The
 * async file object is Python above this tier (afile.py, imported here at
 * the call): this is only its way in from a ring, as the issue's users
 * look for it. */
static PyObject *
AsyncRing_open(AsyncRingObject *self, PyObject *args, PyObject *kwargs)
{
    PyObject *key, *mod, *fn = NULL, *kw = NULL, *res = NULL;
    int has = 0;

    if ((key = PyUnicode_FromString("ring")) == NULL)
        return NULL;
    if (kwargs != NULL && (has = PyDict_Contains(kwargs, key)) != 0) {
        if (has > 0)
            PyErr_SetString(PyExc_TypeError,
                            "AsyncRing.open() got an unexpected keyword argument 'ring'");
        goto done;
    }
    if ((mod = PyImport_ImportModule("py_io_uring.afile")) == NULL)
        goto done;
    fn = PyObject_GetAttrString(mod, "open");
    Py_DECREF(mod);
    if (fn == NULL)
        goto done;
    kw = kwargs != NULL ? PyDict_Copy(kwargs) : PyDict_New();
    if (kw != NULL && PyDict_SetItem(kw, key, (PyObject *)self) == 0)
        res = PyObject_Call(fn, args, kw);
done:
    Py_XDECREF(kw);
    Py_XDECREF(fn);
    Py_DECREF(key);
    return res;
}

static PyMethodDef AsyncRing_methods[] = {
    {"aclose", (PyCFunction)AsyncRing_aclose, METH_NOARGS, PU_DOC_AsyncRing_aclose},
    {"open", (PyCFunction)(void (*)(void))AsyncRing_open, METH_VARARGS | METH_KEYWORDS,
     PU_DOC_AsyncRing_open},
    {"__aenter__", (PyCFunction)AsyncRing_aenter, METH_NOARGS, PU_DOC_AsyncRing___aenter__},
    {"__aexit__", (PyCFunction)(void (*)(void))AsyncRing_aexit, METH_FASTCALL,
     PU_DOC_AsyncRing___aexit__},
    {"flush", (PyCFunction)AsyncRing_flush, METH_NOARGS, PU_DOC_AsyncRing_flush},
    {"process_completions", (PyCFunction)AsyncRing_process_completions, METH_NOARGS,
     PU_DOC_AsyncRing_process_completions},
    {"stats", (PyCFunction)AsyncRing_stats, METH_NOARGS, PU_DOC_AsyncRing_stats},
    {"in_flight", (PyCFunction)AsyncRing_in_flight, METH_NOARGS,
     PU_DOC_AsyncRing_in_flight},
    {"fileno", (PyCFunction)AsyncRing_fileno, METH_NOARGS, PU_DOC_AsyncRing_fileno},
    {"get_ring", (PyCFunction)AsyncRing_get_ring, METH_NOARGS, PU_DOC_AsyncRing_get_ring},
    {"_loop_ring", (PyCFunction)AsyncRing_loop_ring, METH_O, NULL},
    {"take_partial", (PyCFunction)AsyncRing_take_partial, METH_O,
     PU_DOC_AsyncRing_take_partial},
    {"close_fd", (PyCFunction)(void (*)(void))AsyncRing_close_fd,
     METH_FASTCALL | METH_KEYWORDS, PU_DOC_AsyncRing_close_fd},
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
    .tp_getset = AsyncRing_getset,
    .tp_weaklistoffset = offsetof(AsyncRingObject, weakreflist),
    .tp_init = (initproc)AsyncRing_init,
    .tp_new = AsyncRing_new,
};

static size_t
count_methods(const PyMethodDef *defs)
{
    size_t n = 0;
    while (defs[n].ml_name != NULL)
        n++;
    return n;
}

/* The hand-written methods (these, sock.c's), then one per awaitable op of
 * ops.def. */
int
pu_async_type_init(void)
{
    static PyMethodDef *all;
    struct { PyObject **slot; const char *name; } names[] = {
        {&pu_aio_s.create_future, "create_future"}, {&pu_aio_s.add_done_callback, "add_done_callback"},
        {&pu_aio_s.remove_done_callback, "remove_done_callback"}, {&pu_aio_s.set_result, "set_result"},
        {&pu_aio_s.set_exception, "set_exception"}, {&pu_aio_s.done, "done"},
        {&pu_aio_s.cancelled, "cancelled"}, {&pu_aio_s.call_soon, "call_soon"},
        {&pu_aio_s.call_later, "call_later"}, {&pu_aio_s.add_reader, "add_reader"},
        {&pu_aio_s.remove_reader, "remove_reader"}, {&pu_aio_s.cancel, "cancel"},
        {&pu_aio_s.is_closed, "is_closed"}, {&pu_aio_s.fileno, "fileno"},
        {&pu_aio_s.dropped, "_pu_dropped"}, {&pu_aio_s.exception_attr, "_exception"},
        {&pu_aio_s.throw, "throw"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (*names[i].slot == NULL &&
            (*names[i].slot = PyUnicode_InternFromString(names[i].name)) == NULL)
            return -1;
    }
    if (kw_loop == NULL && (kw_loop = Py_BuildValue("(s)", "loop")) == NULL)
        return -1;
    if (all == NULL) {
        const PyMethodDef *parts[] = {AsyncRing_methods, pu_aio_sock_methods,
                                      pu_aio_links_methods, pu_aio_selector_methods,
                                      pu_aio_watch_methods, pu_generated_async_methods};
        size_t n = 0;
        for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
            n += count_methods(parts[i]);
        all = PyMem_Calloc(n + 1, sizeof(*all));
        if (all == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        n = 0;
        for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
            size_t k = count_methods(parts[i]);
            memcpy(all + n, parts[i], k * sizeof(*all));
            n += k;
        }
        pu_AsyncRingType.tp_methods = all;
    }
    if (pu_aio_iter_init() < 0 || pu_aio_stream_init() < 0 || pu_aio_fd_future_init() < 0 || pu_aio_chain_init() < 0)
        return -1;
    return PyType_Ready(&pu_AsyncRingType);
}
