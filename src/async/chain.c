/* async/chain.c: AsyncRing.chain(), linked operations in one submission.
 *
 *   async with ring.chain(timeout=5) as c:
 *       c.openat_direct(AT_FDCWD, path, os.O_RDONLY, file_index=0)
 *       r = c.read(0, 4096, sqe_flags=IOSQE_FIXED_FILE)
 *       c.close_direct(0)
 *
 * The chain has the AsyncRing's awaitable methods (the generated ones:
 * pu_async_op() sends a call on a chain here); each returns a future at
 * once and records the call.  Leaving the block prepares every call into
 * adjacent entries, links each to the next (IOSQE_IO_LINK), and awaits
 * them all: nothing is prepared before, so no flush of the loop iteration
 * can submit half a chain linked to whatever comes next.  The block's end
 * raises the first error (the kernel cancels the rest: -ECANCELED), or
 * TimeoutError once timeout= seconds passed (a sleep() of the ring's,
 * never early, whose expiry cancels what is in flight in the kernel; the
 * ops ending first cancel it); either only once every operation's final
 * completion, and the timeout's, were reaped.  async_internal.h says how the files of
 * src/async/ share the work. */
#include "async/async_internal.h"
#include "methods_doc.h"
#include "ops_gen.h"

#include <errno.h>

typedef struct {
    const pu_opdef *op;
    PyObject *args;                 /* positional then keyword values */
    PyObject *kwnames;              /* or NULL */
    Py_ssize_t nargs;
    pu_common common;
    __u64 user_data;                /* the record's, once prepared */
} chain_call;

enum { CH_OPEN, CH_RUNNING, CH_DONE };

typedef struct {
    PyObject_HEAD
    AsyncRingObject *aring;         /* strong */
    chain_call *calls;
    Py_ssize_t ncalls, cap;
    PyObject *futures;              /* list: one future per call */
    PyObject *results;              /* list once every op ended, else NULL */
    PyObject *done;                 /* __aexit__'s future */
    PyObject *timer;                /* the timeout's sleep() future, or NULL */
    double timeout;                 /* < 0: none */
    Py_ssize_t pending;             /* ops whose future is not done */
    uint8_t timer_pending;          /* the sleep's future is not done */
    uint8_t state;
    uint8_t timed_out;
} ChainObject;


/* no link flags of the user's; timeout= is taken only to be refused at
 * the call (the chain has one) */
static const pu_common_rules chain_rules = {
    0, IOSQE_FIXED_FILE | IOSQE_ASYNC | IOSQE_BUFFER_SELECT,
    "sqe_flags: only IOSQE_FIXED_FILE, IOSQE_ASYNC and IOSQE_BUFFER_SELECT "
    "apply to an operation of a chain", 1};

PyObject *
pu_aio_chain_new(AsyncRingObject *self, PyObject *timeout)
{
    ChainObject *c;
    double t = -1.0;

    if (timeout != Py_None) {
        if (!PyFloat_Check(timeout) && !PyLong_Check(timeout)) {
            PyErr_Format(PyExc_TypeError, "chain(): timeout must be a number of "
                         "seconds or None, not %.100s", Py_TYPE(timeout)->tp_name);
            return NULL;
        }
        t = PyFloat_AsDouble(timeout);
        if (t == -1.0 && PyErr_Occurred())
            return NULL;
        if (!(t >= 0.0) || t > 9.2e18) {
            PyErr_SetString(PyExc_ValueError, "chain(): timeout must be a finite "
                            "number of seconds >= 0, or None");
            return NULL;
        }
    }
    if (pu_aio_check_open(self) < 0)
        return NULL;
    c = PyObject_GC_New(ChainObject, &pu_AsyncChainType);
    if (c == NULL)
        return NULL;
    Py_INCREF(self);
    c->aring = self;
    c->calls = NULL;
    c->ncalls = c->cap = 0;
    c->futures = PyList_New(0);
    c->results = NULL;
    c->done = NULL;
    c->timer = NULL;
    c->timeout = t;
    c->pending = 0;
    c->timer_pending = 0;
    c->state = CH_OPEN;
    c->timed_out = 0;
    PyObject_GC_Track(c);
    if (c->futures == NULL) {
        Py_DECREF(c);
        return NULL;
    }
    return (PyObject *)c;
}

/* c.NAME(...): record the call, return its future. */
PyObject *
pu_aio_chain_add(PyObject *co, const pu_opdef *op, PyObject *const *args,
                 Py_ssize_t nargs, PyObject *kwnames)
{
    ChainObject *c = (ChainObject *)co;
    AsyncRingObject *a = c->aring;
    pu_call_args ca;
    pu_common common;
    chain_call *call;
    PyObject *fut = NULL, *t = NULL;
    Py_ssize_t n;

    if (c->state != CH_OPEN) {
        PyErr_Format(PyExc_RuntimeError, "%s(): this chain was submitted already; "
                     "start another with AsyncRing.chain()", op->name);
        return NULL;
    }
    if (pu_split_common(args, nargs, kwnames, &ca, &common, &chain_rules) < 0)
        goto out;
    if (common.timeout >= 0.0) {
        PyErr_Format(PyExc_TypeError, "%s(): an operation of a chain takes no "
                     "timeout; give the chain one (AsyncRing.chain(timeout=...))",
                     op->name);
        goto out;
    }
    if (pu_aio_check_open(a) < 0 || pu_aio_bind_loop(a) < 0)
        goto out;
    if (c->ncalls == c->cap) {
        Py_ssize_t cap = c->cap ? 2 * c->cap : 4;
        chain_call *m = PyMem_Realloc(c->calls, (size_t)cap * sizeof(*m));
        if (m == NULL) {
            PyErr_NoMemory();
            goto out;
        }
        c->calls = m;
        c->cap = cap;
    }
    n = nargs + (ca.kwnames ? PyTuple_GET_SIZE(ca.kwnames) : 0);
    t = PyTuple_New(n);
    if (t == NULL)
        goto out;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_INCREF(ca.args[i]);
        PyTuple_SET_ITEM(t, i, ca.args[i]);
    }
    fut = pu_aio_new_future(a, (op->async_flags & PU_ASYNC_FD) != 0);
    if (fut == NULL || PyList_Append(c->futures, fut) < 0) {
        Py_CLEAR(fut);
        goto out;
    }
    call = &c->calls[c->ncalls++];
    call->op = op;
    call->args = t;
    t = NULL;
    Py_XINCREF(ca.kwnames);
    call->kwnames = ca.kwnames;
    call->nargs = nargs;
    call->common = common;
    call->user_data = 0;
out:
    Py_XDECREF(t);
    Py_XDECREF(ca.owned);
    return fut;
}

/* ---------------------------------------------------------------- ending */

static void
cancel_futures(ChainObject *c)
{
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(c->futures); i++)
        pu_aio_cancel_future(PyList_GET_ITEM(c->futures, i));
}

/* Ask the kernel to cancel every op of the chain still in flight (a stale
 * user_data names a slot whose generation moved on: -ENOENT). */
static int
cancel_in_kernel(ChainObject *c)
{
    AsyncRingObject *a = c->aring;
    if (a->closed)
        return 0;
    for (Py_ssize_t i = 0; i < c->ncalls; i++) {
        __u64 ud = c->calls[i].user_data;
        uint32_t s = PU_UD_SLOT(ud);
        if (ud != 0 && s < a->ring->nslots && a->ring->slots[s] != NULL &&
            a->ring->slots[s]->user_data == ud && pu_aio_internal_cancel(a, ud) < 0)
            return -1;
    }
    return pu_aio_flush_now(a) < 0 ? -1 : 0;
}

/* Every op ended: the results, and the block's outcome. */
static void
chain_finish(ChainObject *c)
{
    PyObject *results, *first = NULL;
    Py_ssize_t n = PyList_GET_SIZE(c->futures);

    c->state = CH_DONE;
    Py_CLEAR(c->timer);
    results = PyList_New(n);
    if (results == NULL) {
        PyErr_Clear();
        return;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *f = PyList_GET_ITEM(c->futures, i), *v = NULL, *exc;
        int cancelled = truth0(f, pu_aio_s.cancelled);
        if (cancelled != 0) {
            PyErr_Clear();
        } else if ((exc = PyObject_CallMethod(f, "exception", NULL)) == NULL) {
            PyErr_Clear();
        } else if (exc != Py_None) {
            /* retrieved: asyncio logs nothing for it */
            if (first == NULL)
                first = exc;
            else
                Py_DECREF(exc);
        } else {
            Py_DECREF(exc);
            v = PyObject_CallMethod(f, "result", NULL);
            if (v == NULL)
                PyErr_Clear();
        }
        PyList_SET_ITEM(results, i, v ? v : (Py_INCREF(Py_None), Py_None));
    }
    Py_XSETREF(c->results, results);
    if (c->done == NULL || truth0(c->done, pu_aio_s.done) != 0) {
        PyErr_Clear();
        Py_XDECREF(first);
        return;
    }
    if (first != NULL && c->timed_out) {
        /* what the timeout's cancel made the ops fail with is its cause */
        PyObject *te;
        pu_aio_timeout_error("chain");
        te = pu_exc_take();
        if (te != NULL) {
            Py_INCREF(first);
            PyException_SetCause(te, first);
            Py_SETREF(first, te);
        } else {
            PyErr_Clear();
        }
    }
    if (first != NULL) {
        if (call1_void(c->done, pu_aio_s.set_exception, first) < 0)
            PyErr_Clear();
        Py_DECREF(first);
    } else if (call1_void(c->done, pu_aio_s.set_result, Py_None) < 0) {
        PyErr_Clear();
    }
}

/* Each op's future's done callback. */
static PyObject *
chain_op_done(PyObject *co, PyObject *Py_UNUSED(fut))
{
    ChainObject *c = (ChainObject *)co;
    if (c->pending == 0 || --c->pending > 0)
        Py_RETURN_NONE;
    if (!c->timer_pending) {
        chain_finish(c);
    } else if (pu_aio_cancel_waiter(c->aring, c->timer) < 0) {
        /* its cancel completes the chain (chain_timeout_cb) */
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef chain_op_done_def = {"_op_done", chain_op_done, METH_O, NULL};

/* The timeout's sleep ended: expired with ops in flight, cancel them (the
 * block raises TimeoutError once every op ended); cancelled by the ops'
 * end (or the ring closing), the chain is complete. */
static PyObject *
chain_timeout_cb(PyObject *co, PyObject *fut)
{
    ChainObject *c = (ChainObject *)co;
    int cancelled = truth0(fut, pu_aio_s.cancelled);
    c->timer_pending = 0;
    if (cancelled == 0) {
        PyObject *exc = PyObject_CallMethod(fut, "exception", NULL);   /* retrieved */
        if (exc == NULL)
            PyErr_Clear();
        else if (exc == Py_None && c->state == CH_RUNNING && c->pending > 0)
            c->timed_out = 1;
        Py_XDECREF(exc);
    }
    PyErr_Clear();
    if (c->state != CH_RUNNING)
        Py_RETURN_NONE;
    if (c->pending == 0)
        chain_finish(c);
    else if (c->timed_out && cancel_in_kernel(c) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef chain_timeout_def = {"_timeout", chain_timeout_cb, METH_O, NULL};

/* __aexit__'s future was cancelled (the awaiting task was): cancel the ops
 * in the kernel, as a cancelled op future does. */
static PyObject *
chain_done_cb(PyObject *co, PyObject *fut)
{
    ChainObject *c = (ChainObject *)co;
    int cancelled;
    if (c->state != CH_RUNNING)
        Py_RETURN_NONE;
    cancelled = truth0(fut, pu_aio_s.cancelled);
    if (cancelled < 0)
        return NULL;
    if (cancelled) {
        cancel_futures(c);
        if (c->timer != NULL)
            pu_aio_cancel_future(c->timer);
    }
    Py_RETURN_NONE;
}

static PyMethodDef chain_done_def = {"_done", chain_done_cb, METH_O, NULL};

/* ---------------------------------------------------------------- submitting */

/* Take back records[0..k) (prepared, maybe submitted by code a converter
 * ran), newest first. */
static void
rollback(ChainObject *c, SqeObject **recs, Py_ssize_t k)
{
    for (Py_ssize_t i = k - 1; i >= 0; i--) {
        if (recs[i]->state == PU_SUBMITTED) {
            if (pu_aio_internal_cancel(c->aring, recs[i]->user_data) < 0)
                PyErr_Clear();
        } else {
            pu_aio_unprepare(c->aring, recs[i]);
        }
    }
}

static PyObject *
new_done_future(AsyncRingObject *a, PyObject *value)
{
    PyObject *f = pu_aio_new_future(a, 0);
    if (f != NULL && call1_void(f, pu_aio_s.set_result, value) < 0)
        Py_CLEAR(f);
    return f;
}

/* Prepare every call, link them, attach the futures: the future the block's
 * end awaits, or NULL with the first prep's error (nothing then runs). */
static PyObject *
chain_submit(ChainObject *c)
{
    AsyncRingObject *a = c->aring;
    Py_ssize_t n = c->ncalls, k;
    SqeObject **recs;
    PyObject *cb = NULL, *done;

    if (pu_aio_check_open(a) < 0 || pu_aio_bind_loop(a) < 0 ||
        pu_aio_room(a, (unsigned)n) < 0)
        return NULL;
    recs = PyMem_Calloc((size_t)n, sizeof(*recs));
    if (recs == NULL)
        return PyErr_NoMemory();
    for (k = 0; k < n; k++) {
        chain_call *call = &c->calls[k];
        PyObject *r;
        recs[k] = pu_aio_new_record(a);
        if (recs[k] == NULL)
            break;
        if (pu_aio_wait_reserve(a, recs[k]) < 0)
            r = NULL;
        else {
            pu_common_apply(recs[k], &call->common);
            r = pu_aio_prep(recs[k], call->op, &PyTuple_GET_ITEM(call->args, 0), call->nargs,
                            call->kwnames, NULL);
        }
        if (r == NULL) {
            pu_ring_unget_sqe(a->ring, recs[k]);   /* a NOP when it cannot */
            Py_DECREF(recs[k]);
            break;
        }
        Py_DECREF(r);
        call->user_data = recs[k]->user_data;
    }
    /* converters may have run code that submitted part of it, or took
     * entries in between (they would be linked in): a chain that is not
     * the last n entries, whole and unsubmitted, is not run */
    if (k == n) {
        RingObject *r = a->ring;
        for (Py_ssize_t i = 0; i < n; i++) {
            if (recs[i]->state != PU_PREPARED || recs[i]->sqe == NULL ||
                r->npending < (unsigned)n || r->pending[r->npending - n + i] != recs[i]) {
                PyErr_SetString(PyExc_RuntimeError, "chain(): the ring was used "
                                "while the chain was being prepared");
                k = n + 1;
                break;
            }
        }
    }
    if (k != n) {
        Py_ssize_t made = k > n ? n : k;
        pu_exc_state saved;
        pu_exc_save(&saved);
        rollback(c, recs, made);
        for (Py_ssize_t i = 0; i < made; i++) {
            c->calls[i].user_data = 0;
            Py_DECREF(recs[i]);
        }
        PyMem_Free(recs);
        cancel_futures(c);
        pu_aio_flush_orphan_nop(a);
        pu_exc_restore(&saved);
        return NULL;
    }
    for (Py_ssize_t i = 0; i + 1 < n; i++)
        recs[i]->sqe->flags |= IOSQE_IO_LINK;
    /* linked and whole: from here on it runs */
    c->state = CH_RUNNING;
    c->pending = n;
    done = pu_aio_new_future(a, 0);
    cb = PyCFunction_New(&chain_op_done_def, (PyObject *)c);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *fut = PyList_GET_ITEM(c->futures, i);
        /* a future that cannot be attached leaves its op to run
         * unwatched; the chain then never ends: cancel it in the kernel */
        if (pu_aio_wait_set(a, recs[i], fut, 0) < 0 ||
            (cb != NULL && call1_void(fut, pu_aio_s.add_done_callback, cb) < 0)) {
            PyErr_Clear();
            c->pending--;
        }
        a->ops++;
        Py_DECREF(recs[i]);
    }
    PyMem_Free(recs);
    Py_XDECREF(cb);
    if (done == NULL || pu_aio_schedule_flush(a) < 0) {
        cancel_futures(c);
        Py_XDECREF(done);
        return NULL;
    }
    c->done = done;
    cb = PyCFunction_New(&chain_done_def, (PyObject *)c);
    if (cb == NULL || call1_void(done, pu_aio_s.add_done_callback, cb) < 0)
        PyErr_Clear();
    Py_XDECREF(cb);
    if (c->timeout >= 0.0) {
        /* after the chain's entries, in the same submission */
        PyObject *delay = PyFloat_FromDouble(c->timeout);
        cb = PyCFunction_New(&chain_timeout_def, (PyObject *)c);
        if (delay != NULL && cb != NULL)
            c->timer = pu_aio_sleep(a, delay);
        if (c->timer != NULL && call1_void(c->timer, pu_aio_s.add_done_callback, cb) == 0)
            c->timer_pending = 1;
        else
            unraisable("AsyncRing.chain(): its timeout");
        Py_XDECREF(delay);
        Py_XDECREF(cb);
    }
    if (c->pending == 0 && !c->timer_pending)
        chain_finish(c);
    Py_INCREF(done);
    return done;
}

static PyObject *
Chain_aenter(ChainObject *c, PyObject *Py_UNUSED(ignored))
{
    if (pu_aio_check_open(c->aring) < 0 || pu_aio_bind_loop(c->aring) < 0)
        return NULL;
    return new_done_future(c->aring, (PyObject *)c);
}

static PyObject *
Chain_aexit(ChainObject *c, PyObject *const *args, Py_ssize_t nargs)
{
    if (c->state != CH_OPEN) {
        PyErr_SetString(PyExc_RuntimeError, "chain(): submitted already");
        return NULL;
    }
    PyObject *r;
    pu_exc_state saved;

    if ((nargs > 0 && args[0] != Py_None) || c->ncalls == 0) {
        /* the block raised: nothing goes to the kernel */
        c->state = CH_DONE;
        cancel_futures(c);
        if (c->ncalls == 0)
            Py_XSETREF(c->results, PyList_New(0));
        return new_done_future(c->aring, Py_None);
    }
    r = chain_submit(c);
    if (r == NULL && c->state == CH_OPEN) {
        /* nothing runs: nor does anyone wait */
        c->state = CH_DONE;
        pu_exc_save(&saved);
        cancel_futures(c);
        pu_exc_restore(&saved);
    }
    return r;
}

static PyObject *
Chain_get_results(ChainObject *c, void *Py_UNUSED(closure))
{
    if (c->results == NULL) {
        PyErr_SetString(PyExc_AttributeError, "results: the chain has not ended");
        return NULL;
    }
    Py_INCREF(c->results);
    return c->results;
}

static PyObject *
Chain_get_futures(ChainObject *c, void *Py_UNUSED(closure))
{
    return PyList_GetSlice(c->futures, 0, PyList_GET_SIZE(c->futures));
}

static int
Chain_traverse(ChainObject *c, visitproc visit, void *arg)
{
    Py_VISIT(c->aring);
    Py_VISIT(c->futures);
    Py_VISIT(c->results);
    Py_VISIT(c->done);
    Py_VISIT(c->timer);
    for (Py_ssize_t i = 0; i < c->ncalls; i++) {
        Py_VISIT(c->calls[i].args);
        Py_VISIT(c->calls[i].kwnames);
    }
    return 0;
}

static int
Chain_clear(ChainObject *c)
{
    for (Py_ssize_t i = 0; i < c->ncalls; i++) {
        Py_CLEAR(c->calls[i].args);
        Py_CLEAR(c->calls[i].kwnames);
    }
    c->ncalls = 0;
    Py_CLEAR(c->futures);
    Py_CLEAR(c->results);
    Py_CLEAR(c->done);
    Py_CLEAR(c->timer);
    Py_CLEAR(c->aring);
    return 0;
}

static void
Chain_dealloc(ChainObject *c)
{
    pu_exc_state saved;
    PyObject_GC_UnTrack(c);
    pu_exc_save(&saved);
    if (c->state == CH_OPEN && c->futures != NULL)
        cancel_futures(c);   /* never submitted: nobody waits forever */
    Chain_clear(c);
    PyMem_Free(c->calls);
    pu_exc_restore(&saved);
    PyObject_GC_Del(c);
}

static PyMethodDef Chain_methods[] = {
    {"__aenter__", (PyCFunction)Chain_aenter, METH_NOARGS, PU_DOC_AsyncChain___aenter__},
    {"__aexit__", (PyCFunction)(void (*)(void))Chain_aexit, METH_FASTCALL,
     PU_DOC_AsyncChain___aexit__},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Chain_getset[] = {
    {"results", (getter)Chain_get_results, NULL, PU_DOC_AsyncChain_results, NULL},
    {"futures", (getter)Chain_get_futures, NULL, PU_DOC_AsyncChain_futures, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject pu_AsyncChainType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "py_io_uring.AsyncChain",
    .tp_basicsize = sizeof(ChainObject),
    .tp_dealloc = (destructor)Chain_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = PU_DOC_AsyncChain,
    .tp_traverse = (traverseproc)Chain_traverse,
    .tp_clear = (inquiry)Chain_clear,
    .tp_getset = Chain_getset,
};

int
pu_aio_chain_init(void)
{
    static PyMethodDef *all;
    if (all == NULL) {
        /* its own methods, then the generated awaitable forms */
        size_t n1 = 0, n2 = 0;
        while (Chain_methods[n1].ml_name != NULL)
            n1++;
        while (pu_generated_chain_methods[n2].ml_name != NULL)
            n2++;
        all = PyMem_Calloc(n1 + n2 + 1, sizeof(*all));
        if (all == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        memcpy(all, Chain_methods, n1 * sizeof(*all));
        memcpy(all + n1, pu_generated_chain_methods, n2 * sizeof(*all));
        pu_AsyncChainType.tp_methods = all;
    }
    return PyType_Ready(&pu_AsyncChainType);
}
