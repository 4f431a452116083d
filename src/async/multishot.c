/* async/multishot.c: the async iterator over a multishot operation's
 * completions (ops.def `async iter`): armed again when a buffer ring ran
 * dry, cancelled in the kernel when dropped.
 * async_internal.h says how the files of src/async/ share the work. */
#include "async/async_internal.h"

#include <errno.h>

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
    uint32_t arming_items;          /* completions with a result since the last arming */
    uint16_t buf_group, personality;
} AsyncIterObject;

static PyTypeObject AsyncIterType;
/* ---------------------------------------------------------------- multishot iterators */

static int
iter_arm(AsyncIterObject *it)
{
    AsyncRingObject *a = it->aring;
    SqeObject *rec;
    PyObject *r;

    if (pu_aio_check_open(a) < 0 || pu_aio_bind_loop(a) < 0)
        return -1;
    rec = pu_aio_new_record(a);
    if (rec == NULL)
        return -1;
    rec->sqe_flags = it->sqe_flags;
    rec->buf_group = it->buf_group;
    rec->personality = it->personality;
    r = pu_aio_wait_reserve(a, rec) < 0 ? NULL
        : pu_aio_prep(rec, it->op, &PyTuple_GET_ITEM(it->args, 0), it->nargs,
                      it->kwnames, NULL);
    if (r == NULL) {
        pu_aio_flush_orphan_nop(a);
        Py_DECREF(rec);
        return -1;
    }
    Py_DECREF(r);
    /* borrowed: the iterator empties the entry when it goes (its dealloc) */
    pu_aio_wait_set(a, rec, (PyObject *)it, PU_AIO_ITER);
    Py_XSETREF(it->rec, rec);
    it->arming_items = 0;
    a->ops++;
    return pu_aio_schedule_flush(a);
}

PyObject *
pu_async_iter(PyObject *self, const pu_opdef *op, PyObject *const *args,
              Py_ssize_t nargs, PyObject *kwnames)
{
    AsyncIterObject *it;
    pu_call_args ca;
    pu_common c;
    Py_ssize_t n;

    if (pu_split_common(args, nargs, kwnames, &ca, &c, &pu_aio_iter_rules) < 0) {
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
    done = truth0(w, pu_aio_s.done);
    if (done != 0) {             /* its task was cancelled: keep the items */
        if (done < 0)
            PyErr_Clear();
        Py_CLEAR(it->waiter);
        return;
    }
    if (it->head < PyList_GET_SIZE(it->items)) {
        v = PyList_GET_ITEM(it->items, it->head);
        it->head++;
        r = call1_void(w, pu_aio_s.set_result, v);
    } else if (it->error != NULL) {
        r = call1_void(w, pu_aio_s.set_exception, it->error);
        Py_CLEAR(it->error);
    } else if (it->ended) {
        v = PyObject_CallNoArgs(PyExc_StopAsyncIteration);
        r = v ? call1_void(w, pu_aio_s.set_exception, v) : -1;
        Py_XDECREF(v);
    } else {
        return;
    }
    if (r < 0)
        unraisable("AsyncRing: waking an async for");
    Py_CLEAR(it->waiter);
}

/* A completion of the armed operation (dispatch.c). */
void
pu_aio_iter_deliver(PyObject *itobj, SqeObject *rec, CqeObject *q)
{
    AsyncIterObject *it = (AsyncIterObject *)itobj;
    int more = (q->flags & IORING_CQE_F_MORE) != 0;
    PyObject *v;

    Py_INCREF(it);
    if (!more) {
        /* the last completion of this arming (dispatch() freed its entry) */
        if (it->rec == rec)
            Py_CLEAR(it->rec);
        if (q->res == -ENOBUFS && it->arming_items > 0 && !it->cancelled &&
            !it->aring->closing) {
            /* the buffer ring ran dry: the kernel stops; go on (reap gave
             * the buffers back).  Not when this arming got nothing: a group
             * with no buffers would have it re-armed for ever, and the
             * iterator raises OSError(ENOBUFS) instead */
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
    it->arming_items++;
    v = pu_aio_result_value(rec, q, PU_AIO_ITER);
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
        int done = truth0(it->waiter, pu_aio_s.done);
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
    if (pu_aio_bind_loop(it->aring) < 0)
        return NULL;
    fut = pu_aio_new_future(it->aring, 0);
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
    return pu_aio_internal_cancel(it->aring, it->rec->user_data);
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
    /* may run while an exception propagates: what runs below (the cancel,
     * closing fds, the references going) must neither see nor clear it */
    pu_exc_state saved;
    PyObject_GC_UnTrack(it);
    pu_exc_save(&saved);
    if (it->rec != NULL) {
        /* left behind (a `break` out of async for): stop the op; what still
         * completes has no taker, and new fds in it are closed */
        pu_aio_wait *w = pu_aio_wait_of(it->aring, it->rec);
        if (w != NULL)
            pu_aio_wait_take(w);   /* borrowed us: holds no reference */
        if (iter_cancel(it) < 0)
            unraisable("AsyncRing: cancelling a multishot operation");
        Py_CLEAR(it->rec);
    }
    if (it->items != NULL && it->aring != NULL) {
        /* results not taken: their fds would leak */
        for (Py_ssize_t i = it->head; i < PyList_GET_SIZE(it->items); i++) {
            PyObject *o = PyList_GET_ITEM(it->items, i);
            if (it->op->async_flags & PU_ASYNC_FD)
                pu_aio_close_fd(PyTuple_Check(o) ? PyTuple_GET_ITEM(o, 0) : o);
        }
    }
    Py_CLEAR(it->aring);
    Py_CLEAR(it->args);
    Py_CLEAR(it->kwnames);
    Py_CLEAR(it->items);
    Py_CLEAR(it->waiter);
    Py_CLEAR(it->error);
    pu_exc_restore(&saved);
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


/* The ring closes: the iteration ends after the items already made. */
void
pu_aio_iter_end(PyObject *itobj)
{
    AsyncIterObject *it = (AsyncIterObject *)itobj;
    Py_INCREF(it);
    it->ended = 1;
    Py_CLEAR(it->rec);
    iter_wake(it);
    Py_DECREF(it);
}

int
pu_aio_iter_init(void)
{
    return PyType_Ready(&AsyncIterType);
}
