/* async/fd_future.c: the futures of results that own file descriptors
 * (ops.def `async ... fd`), and closing the fds of a result nobody takes.
 * async_internal.h says how the files of src/async/ share the work. */
#include "async/async_internal.h"

#include <unistd.h>

PyObject *pu_aio_socket_type;       /* socket.socket */

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


static PyObject *fdfut_type;        /* the subclass, made by pu_aio_fd_future_type() */
static PyObject *fdfut_base;        /* the asyncio.Future it derives from */
static PyObject *fdfut_base_result; /* asyncio.Future.result, unbound */
static PyObject *cancelled_error;   /* asyncio.CancelledError */

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
    PyObject *d = PyObject_GetAttr(fut, pu_aio_s.dropped);
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
    int done = truth0(fut, pu_aio_s.done), cancelled = 0, dropped = fd_dropped(fut);

    if (done < 0 || dropped < 0)
        return NULL;
    if (done && !dropped) {
        cancelled = truth0(fut, pu_aio_s.cancelled);
        if (cancelled < 0)
            return NULL;
    }
    if (done && !cancelled && !dropped) {
        /* read without result(): that would mark an exception retrieved */
        PyObject *exc = PyObject_GetAttr(fut, pu_aio_s.exception_attr);
        if (exc == NULL)
            return NULL;
        if (exc == Py_None) {
            PyObject *v = PyObject_CallOneArg(fdfut_base_result, fut);
            if (v == NULL) {
                Py_DECREF(exc);
                return NULL;
            }
            if (PyObject_SetAttr(fut, pu_aio_s.dropped, Py_True) < 0) {
                Py_DECREF(v);
                Py_DECREF(exc);
                return NULL;
            }
            pu_aio_drop_fds(v);
            Py_DECREF(v);
        }
        Py_DECREF(exc);
    }
    if (fdawait_inner(self) == NULL)
        return NULL;
    m = PyObject_GetAttr(self->inner, pu_aio_s.throw);
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
PyObject *
pu_aio_fd_future_type(PyObject *base)
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

int
pu_aio_fd_future_init(void)
{
    return PyType_Ready(&FdAwaitType);
}

/* ---------------------------------------------------------------- dropping fds */

/* An int result is a new fd: close it. */
void
pu_aio_close_fd(PyObject *o)
{
    if (PyLong_Check(o)) {
        long fd = PyLong_AsLong(o);
        if (fd >= 0)
            close((int)fd);
    }
}

/* A value already made that nobody will take: its ints are fds, a socket
 * closes. */
void
pu_aio_drop_fds(PyObject *v)
{
    if (!PyTuple_Check(v)) {
        pu_aio_close_fd(v);
        return;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(v); i++) {
        PyObject *o = PyTuple_GET_ITEM(v, i);
        if (PyLong_Check(o)) {
            pu_aio_close_fd(o);
        } else if (pu_aio_socket_type != NULL && PyObject_TypeCheck(o, (PyTypeObject *)pu_aio_socket_type)) {
            PyObject *r = PyObject_CallMethod(o, "close", NULL);
            if (r == NULL)
                PyErr_Clear();
            Py_XDECREF(r);
        }
    }
}

