/* async/watch.c: an operation whose every completion goes to a Python
 * callable during the reap, for the event loop's own long-lived
 * operations (a server's multishot accept, _transports.py).  Private:
 *
 *   AsyncRing._watch(callback, op_name, *args) -> handle
 *       prepares ops.def's op_name with args (its converters, its errors
 *       naming op_name) under the callback waiter kind (stream.c): after
 *       each reaped batch, callback(cqe) for every completion of the op, the
 *       last one without IORING_CQE_F_MORE.  No future, no call_soon() hop,
 *       no task: the loop's accept path costs a call per connection.  What
 *       the callback raises goes to the loop's exception handler.  The
 *       callback owns what a completion hands over (an accepted fd).
 *   AsyncRing._unwatch(handle)
 *       cancels it in the kernel; completions the kernel made before the
 *       cancel still reach the callback, then a final -ECANCELED.  A handle
 *       whose op has ended names nothing (its slot's generation moved on:
 *       the kernel answers -ENOENT, dropped).  The loop's thread only,
 *       running or not: another thread gets the RuntimeError every use of
 *       the ring from it gets, before anything reaches the ring
 *       (test_loop_accept.py).
 *
 * The ring's slot table holds the record until the final completion, as
 * for every operation; a ring closed with it in flight drops the callback
 * without calling it (ring.c, fail_waiters). */
#include "async/async_internal.h"
#include "ops_gen.h"

#include <string.h>

static const pu_opdef *
op_named(PyObject *name)
{
    const char *s = PyUnicode_Check(name) ? PyUnicode_AsUTF8(name) : NULL;
    if (s == NULL) {
        if (!PyErr_Occurred())
            PyErr_Format(PyExc_TypeError, "_watch(): op_name must be str, not %.100s",
                         Py_TYPE(name)->tp_name);
        return NULL;
    }
    for (int i = 0; i < pu_nopdefs; i++) {
        if (strcmp(pu_opdefs[i].name, s) == 0)
            return &pu_opdefs[i];
    }
    PyErr_Format(PyExc_ValueError, "_watch(): no operation named %R", name);
    return NULL;
}

static PyObject *
AsyncRing_watch(AsyncRingObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    const pu_opdef *op;
    SqeObject *rec;
    PyObject *r;
    __u64 ud;

    if (nargs < 2) {
        PyErr_SetString(PyExc_TypeError, "_watch(callback, op_name, *args)");
        return NULL;
    }
    if (!PyCallable_Check(args[0])) {
        PyErr_Format(PyExc_TypeError, "_watch(): callback must be callable, not %.100s",
                     Py_TYPE(args[0])->tp_name);
        return NULL;
    }
    if ((op = op_named(args[1])) == NULL)
        return NULL;
    if (pu_aio_check_open(self) < 0 || pu_aio_bind_loop(self) < 0)
        return NULL;
    rec = pu_aio_new_record(self);
    if (rec == NULL)
        return NULL;
    /* a failure from here to the prep leaves a harmless NOP with no waiter */
    if (pu_aio_wait_reserve(self, rec) < 0)
        goto fail;
    r = pu_aio_prep(rec, op, args + 2, nargs - 2, NULL, op->name);
    if (r == NULL)
        goto fail;
    Py_DECREF(r);
    if (pu_aio_wait_set(self, rec, args[0], PU_AIO_CALLBACK) < 0)
        goto fail;
    ud = rec->user_data;
    self->ops++;
    Py_DECREF(rec);
    /* prepared and owned by its callback: if the flush cannot be scheduled
     * the next one submits it */
    if (pu_aio_schedule_flush(self) < 0)
        return NULL;
    return PyLong_FromUnsignedLongLong(ud);
fail:
    pu_aio_flush_orphan_nop(self);
    Py_DECREF(rec);
    return NULL;
}

static PyObject *
AsyncRing_unwatch(AsyncRingObject *self, PyObject *handle)
{
    unsigned long long ud = PyLong_AsUnsignedLongLong(handle);
    if (ud == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    if (self->closing || self->closed)
        Py_RETURN_NONE;   /* the close cancels everything */
    /* a server closed outside run() (loop.run_until_complete() done, then
     * server.close()): from the loop's thread that is fine */
    if (self->loop == NULL || PyThread_get_thread_ident() != self->thread) {
        if (pu_aio_bind_loop(self) < 0)
            return NULL;
    }
    /* submitted now: the kernel lets go of what the op holds (a server's
     * listening socket, which must refuse connections once server.close()
     * has closed it, as asyncio's does) before this returns */
    if (pu_aio_internal_cancel(self, (__u64)ud) < 0 || pu_aio_flush_now(self) < 0)
        return NULL;
    if ((self->ring->setup_flags & IORING_SETUP_DEFER_TASKRUN) &&
        self->ring->fork_generation == pu_fork_generation)
        io_uring_get_events(&self->ring->ring);   /* the cancel's task work */
    Py_RETURN_NONE;
}

PyMethodDef pu_aio_watch_methods[] = {
    {"_watch", (PyCFunction)(void (*)(void))AsyncRing_watch, METH_FASTCALL, NULL},
    {"_unwatch", (PyCFunction)AsyncRing_unwatch, METH_O, NULL},
    {NULL, NULL, 0, NULL},
};
