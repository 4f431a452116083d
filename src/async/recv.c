/* async/recv.c: receives that lose nothing when cancelled.
 *
 * A receive (recv, sock_recv, sock_recv_into) whose future is cancelled
 * must stop in the kernel before its awaiter runs again: that code may
 * make the peer send more, which a receive still armed would take.  A
 * done callback is too late (asyncio runs it with call_soon(), and `await`
 * on a future cancelled already returns at once), so these ops get a
 * future of a subclass of the loop's asyncio.Future whose cancel()
 * submits IORING_OP_ASYNC_CANCEL in the same call.  On a loop with futures
 * of its own the done callback does it, one loop iteration later.
 *
 * A receive can still complete with data before its cancel reaches it.
 * Those bytes are kept, per fd, in the AsyncRing's carry-over: the next
 * sock_recv() or sock_recv_into() on that socket returns them first, as
 * loop.sock_recv() loses nothing; take_partial(fd) hands them to a caller
 * of the raw recv.  An entry remembers the socket's inode, so a new socket
 * that reuses the fd number never gets an old socket's bytes.
 * async_internal.h says how the files of src/async/ share the work. */
#include "async/async_internal.h"
#include "methods_doc.h"

#include <structmember.h>
#include <sys/socket.h>
#include <sys/stat.h>

static PyObject *recvfut_type;      /* the subclass, made once */
static PyObject *recvfut_base;      /* the asyncio.Future it derives from */
static PyObject *recvfut_base_cancel;   /* asyncio.Future.cancel, unbound */
static Py_ssize_t recvfut_rec_offset;   /* where its `_pu_rec` slot lives */

/* ---------------------------------------------------------------- receive futures */

/* The record a receive future's op runs in (borrowed), or NULL. */
static inline PyObject **
rec_slot(PyObject *fut)
{
    return (PyObject **)((char *)fut + recvfut_rec_offset);
}

int
pu_aio_is_recv_future(PyObject *fut)
{
    return recvfut_type != NULL && Py_TYPE(fut) == (PyTypeObject *)recvfut_type;
}

void
pu_aio_recv_future_bind(PyObject *fut, SqeObject *rec)
{
    if (pu_aio_is_recv_future(fut)) {
        Py_INCREF(rec);
        Py_XSETREF(*rec_slot(fut), (PyObject *)rec);
    }
}

/* At the final completion: the record goes back to the pool, not kept by
 * the future. */
void
pu_aio_recv_future_unbind(PyObject *fut)
{
    if (pu_aio_is_recv_future(fut))
        Py_CLEAR(*rec_slot(fut));
}

/* cancel(): the base's, then the kernel's cancel, submitted now. */
static PyObject *
recvfut_cancel(PyObject *Py_UNUSED(unused), PyObject *args, PyObject *kwargs)
{
    PyObject *r, *fut, *rec;
    int t;

    if (PyTuple_GET_SIZE(args) < 1) {
        PyErr_SetString(PyExc_TypeError, "cancel() needs its future");
        return NULL;
    }
    r = PyObject_Call(recvfut_base_cancel, args, kwargs);
    if (r == NULL)
        return NULL;
    t = PyObject_IsTrue(r);
    if (t <= 0) {
        if (t < 0)
            Py_CLEAR(r);
        return r;   /* done already: nothing to stop */
    }
    fut = PyTuple_GET_ITEM(args, 0);
    rec = pu_aio_is_recv_future(fut) ? *rec_slot(fut) : NULL;
    if (rec != NULL) {
        Py_INCREF(rec);
        if (pu_aio_cancel_in_kernel((SqeObject *)rec, fut) < 0) {
            /* the done callback tries again; this call succeeded */
            unraisable("AsyncRing: cancelling a receive");
        }
        Py_DECREF(rec);
    }
    return r;
}

static PyMethodDef recvfut_cancel_def = {"cancel", (PyCFunction)(void (*)(void))recvfut_cancel,
                                         METH_VARARGS | METH_KEYWORDS, NULL};

/* The subclass of base (the loop's asyncio.Future), made once:
 * class _RecvFuture(base): __slots__ = ("_pu_rec",); cancel = ... */
PyObject *
pu_aio_recv_future_type(PyObject *base)
{
    PyObject *dict = NULL, *type = NULL, *f = NULL, *m = NULL, *slots = NULL, *d = NULL;

    if (recvfut_type != NULL && recvfut_base == base)
        return recvfut_type;
    dict = PyDict_New();
    f = PyCFunction_New(&recvfut_cancel_def, NULL);
    m = f ? PyInstanceMethod_New(f) : NULL;   /* binds like a def */
    slots = Py_BuildValue("(s)", "_pu_rec");
    if (dict == NULL || m == NULL || slots == NULL ||
        PyDict_SetItemString(dict, "cancel", m) < 0 ||
        PyDict_SetItemString(dict, "__slots__", slots) < 0)
        goto done;
    {
        PyObject *mod = PyUnicode_FromString("py_io_uring");
        int r = mod ? PyDict_SetItemString(dict, "__module__", mod) : -1;
        Py_XDECREF(mod);
        if (r < 0)
            goto done;
    }
    type = PyObject_CallFunction((PyObject *)&PyType_Type, "s(O)O", "_RecvFuture",
                                 base, dict);
    if (type == NULL)
        goto done;
    /* the slot's offset, from its member descriptor: set and cleared per
     * op without an attribute lookup */
    d = PyObject_GetAttrString(type, "_pu_rec");
    if (d == NULL || Py_TYPE(d) != &PyMemberDescr_Type) {
        if (d != NULL)
            PyErr_SetString(PyExc_TypeError, "_RecvFuture._pu_rec is no slot");
        Py_CLEAR(type);
        goto done;
    }
    recvfut_rec_offset = ((PyMemberDescrObject *)d)->d_member->offset;
    {
        PyObject *c = PyObject_GetAttrString(base, "cancel");
        if (c == NULL) {
            Py_CLEAR(type);
            goto done;
        }
        Py_XSETREF(recvfut_base_cancel, c);
    }
    Py_INCREF(base);
    Py_XSETREF(recvfut_base, base);
    Py_XSETREF(recvfut_type, type);
done:
    Py_XDECREF(d);
    Py_XDECREF(dict);
    Py_XDECREF(f);
    Py_XDECREF(m);
    Py_XDECREF(slots);
    return type;   /* borrowed: recvfut_type keeps it */
}

/* ---------------------------------------------------------------- the carry-over */

/* The inode of fd's open file (a socket's is its own), or 0. */
static unsigned long long
file_id(int fd)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return 0;
    return (unsigned long long)st.st_ino ^ ((unsigned long long)st.st_dev << 40);
}

/* What the record's receive got, as bytes (a new reference), or NULL
 * (no exception) when there is nothing to keep.  value: the result made
 * for the future (bytes, or the count of a receive into a buffer, which
 * rec->data names). */
static PyObject *
received_bytes(SqeObject *rec, CqeObject *q, PyObject *value)
{
    PyObject *buf;
    Py_buffer view;
    PyObject *b;

    if (PyBytes_Check(value))
        return (Py_INCREF(value), value);
    if (rec->data == NULL || !PyTuple_Check(rec->data) || PyTuple_GET_SIZE(rec->data) != 2)
        return NULL;
    buf = PyTuple_GET_ITEM(rec->data, 1);
    if (buf == Py_None || PyObject_GetBuffer(buf, &view, PyBUF_SIMPLE) < 0) {
        PyErr_Clear();
        return NULL;
    }
    /* the kernel is done with the buffer (the final completion) */
    b = q->res <= view.len ? PyBytes_FromStringAndSize(view.buf, q->res) : NULL;
    PyBuffer_Release(&view);
    if (b == NULL)
        PyErr_Clear();
    return b;
}

/* A cancelled receive completed with data (value, the future's result it
 * did not take): keep the bytes for the next read of its socket. */
void
pu_aio_carry_stash(AsyncRingObject *self, SqeObject *rec, CqeObject *q, PyObject *value)
{
    pu_exc_state saved;
    PyObject *key, *data, *old, *entry = NULL;
    unsigned long long id;
    int fd;

    if (q->res <= 0 || rec->data == NULL || !PyTuple_Check(rec->data))
        return;
    pu_exc_save(&saved);
    key = PyTuple_GET_ITEM(rec->data, 0);
    fd = (int)PyLong_AsLong(key);
    data = received_bytes(rec, q, value);
    if (data == NULL || fd < 0 || (id = file_id(fd)) == 0)
        goto out;
    if (self->carry == NULL && (self->carry = PyDict_New()) == NULL)
        goto out;
    old = PyDict_GetItemWithError(self->carry, key);
    if (old != NULL && PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(old, 0)) == id) {
        /* an earlier cancelled receive's bytes come first */
        PyObject *joined = PyBytes_FromStringAndSize(NULL, 0);
        if (joined == NULL)
            goto out;
        PyBytes_Concat(&joined, PyTuple_GET_ITEM(old, 1));
        if (joined != NULL)
            PyBytes_Concat(&joined, data);
        if (joined == NULL)
            goto out;
        Py_SETREF(data, joined);
    }
    entry = Py_BuildValue("(KO)", id, data);
    if (entry != NULL)
        PyDict_SetItem(self->carry, key, entry);
out:
    Py_XDECREF(entry);
    Py_XDECREF(data);
    PyErr_Clear();   /* nowhere to report: the receive was given up */
    pu_exc_restore(&saved);
}

/* Up to maxlen (-1: all) carried-over bytes of fd, taken out: a new
 * reference, NULL with nothing kept (no exception), or NULL with an
 * exception.  A dict lookup when nothing was ever carried: no fstat. */
PyObject *
pu_aio_carry_take(AsyncRingObject *self, int fd, Py_ssize_t maxlen)
{
    PyObject *key, *entry, *data, *rest;
    Py_ssize_t n;

    if (self->carry == NULL || PyDict_GET_SIZE(self->carry) == 0)
        return NULL;
    key = PyLong_FromLong(fd);
    if (key == NULL)
        return NULL;
    entry = PyDict_GetItemWithError(self->carry, key);
    if (entry == NULL)
        goto none;
    Py_INCREF(entry);
    if (PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(entry, 0)) != file_id(fd)) {
        /* the fd now names another file: the old socket's bytes are void */
        Py_DECREF(entry);
        if (PyDict_DelItem(self->carry, key) < 0)
            goto fail;
        goto none;
    }
    data = PyTuple_GET_ITEM(entry, 1);
    n = PyBytes_GET_SIZE(data);
    if (maxlen < 0 || maxlen >= n) {
        Py_INCREF(data);
        Py_DECREF(entry);
        if (PyDict_DelItem(self->carry, key) < 0) {
            Py_DECREF(data);
            goto fail;
        }
        Py_DECREF(key);
        return data;
    }
    rest = Py_BuildValue("(Ky#)", PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(entry, 0)),
                         PyBytes_AS_STRING(data) + maxlen, n - maxlen);
    data = PyBytes_FromStringAndSize(PyBytes_AS_STRING(data), maxlen);
    Py_DECREF(entry);
    if (rest == NULL || data == NULL || PyDict_SetItem(self->carry, key, rest) < 0) {
        Py_XDECREF(rest);
        Py_XDECREF(data);
        goto fail;
    }
    Py_DECREF(rest);
    Py_DECREF(key);
    return data;
none:
    Py_DECREF(key);
    return NULL;   /* with the lookup's exception, if it raised */
fail:
    Py_DECREF(key);
    return NULL;
}

/* AsyncRing.take_partial(fd) */
PyObject *
pu_aio_take_partial(AsyncRingObject *self, PyObject *fdobj)
{
    PyObject *b;
    int fd = PyObject_AsFileDescriptor(fdobj);
    if (fd < 0)
        return NULL;
    b = pu_aio_carry_take(self, fd, -1);
    if (b == NULL && !PyErr_Occurred())
        return PyBytes_FromStringAndSize(NULL, 0);
    return b;
}

/* ---------------------------------------------------------------- receive state */

/* The argument at position i or keyword name, or NULL. */
static PyObject *
arg_at(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames, Py_ssize_t i,
       const char *name)
{
    if (i < nargs)
        return args[i];
    if (kwnames != NULL) {
        for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(kwnames); k++) {
            if (PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, k), name) == 0)
                return args[nargs + k];
        }
    }
    return NULL;
}

/* What a recv(fd, buf, flags) needs kept for its carry-over: (fd, buffer
 * or None), as a new reference; Py_None (a new reference) when there is
 * nothing to keep (MSG_PEEK consumes nothing; bad arguments, which the
 * prep reports); NULL with an exception. */
PyObject *
pu_aio_recv_state(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *fdo = arg_at(args, nargs, kwnames, 0, "fd");
    PyObject *bufo = arg_at(args, nargs, kwnames, 1, "buf");
    PyObject *flo = arg_at(args, nargs, kwnames, 2, "flags");
    PyObject *fd, *r;
    int n;

    if (fdo == NULL || bufo == NULL)
        Py_RETURN_NONE;
    if (flo != NULL) {
        long f = PyLong_Check(flo) ? PyLong_AsLong(flo) : 0;
        if (f == -1 && PyErr_Occurred()) {
            PyErr_Clear();
            Py_RETURN_NONE;
        }
        if (f & MSG_PEEK)
            Py_RETURN_NONE;
    }
    if (PyLong_CheckExact(fdo)) {
        fd = (Py_INCREF(fdo), fdo);
    } else {
        n = PyObject_AsFileDescriptor(fdo);
        if (n < 0) {
            PyErr_Clear();
            Py_RETURN_NONE;
        }
        fd = PyLong_FromLong(n);
        if (fd == NULL)
            return NULL;
    }
    r = PyTuple_Pack(2, fd, PyLong_Check(bufo) ? Py_None : bufo);
    Py_DECREF(fd);
    return r;
}
