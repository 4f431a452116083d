/* async/recv.c: receives that lose nothing when cancelled.
 *
 * A receive (recv, sock_recv, sock_recv_into) whose future is cancelled
 * must stop in the kernel before its awaiter runs again: that code may
 * make the peer send more, which a receive still armed would take.  The
 * future's done callback submits the kernel's cancel at once
 * (dispatch.c); asyncio runs it before the task that awaited the future
 * resumes (task.cancel(), wait_for(), timeout()).  A future cancelled by
 * hand and awaited at once resumes its coroutine first: sock_recv() and
 * sock_recv_into() then settle the socket's cancelled receives before
 * reading (settle_cancelled() below).
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

#include <sys/socket.h>
#include <sys/stat.h>

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
 * is the record's data). */
static PyObject *
received_bytes(SqeObject *rec, CqeObject *q, PyObject *value)
{
    Py_buffer view;
    PyObject *b;

    if (PyBytes_Check(value))
        return (Py_INCREF(value), value);
    if (rec->data == NULL || PyObject_GetBuffer(rec->data, &view, PyBUF_SIMPLE) < 0) {
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
pu_aio_carry_stash(AsyncRingObject *self, SqeObject *rec, CqeObject *q, PyObject *value,
                   int fd)
{
    pu_exc_state saved;
    PyObject *key = NULL, *data, *old, *entry = NULL;
    unsigned long long id;

    if (q->res <= 0 || fd < 0)
        return;
    pu_exc_save(&saved);
    data = received_bytes(rec, q, value);
    if (data == NULL || (id = file_id(fd)) == 0 || (key = PyLong_FromLong(fd)) == NULL)
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
    Py_XDECREF(key);
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

/* What a recv(fd, buf, flags) needs for its carry-over: its fd and its
 * buffer (borrowed; NULL when buf is a length).  1, or 0 when there is
 * nothing to keep (MSG_PEEK consumes nothing; bad arguments, which the
 * prep reports).  Never raises. */
int
pu_aio_recv_target(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                   int *fd, PyObject **buf)
{
    PyObject *fdo = arg_at(args, nargs, kwnames, 0, "fd");
    PyObject *bufo = arg_at(args, nargs, kwnames, 1, "buf");
    PyObject *flo = arg_at(args, nargs, kwnames, 2, "flags");

    if (fdo == NULL || bufo == NULL)
        return 0;
    if (flo != NULL) {
        long f = PyLong_Check(flo) ? PyLong_AsLong(flo) : 0;
        if (f == -1 && PyErr_Occurred()) {
            PyErr_Clear();
            return 0;
        }
        if (f & MSG_PEEK)
            return 0;
    }
    *fd = PyObject_AsFileDescriptor(fdo);
    if (*fd < 0) {
        PyErr_Clear();
        return 0;
    }
    *buf = PyLong_Check(bufo) ? NULL : bufo;
    return 1;
}

/* ---------------------------------------------------------------- settling */

/* Before a sock_recv*() on fd: a receive on fd whose future was cancelled
 * but whose done callback has not run yet (a future cancelled by hand and
 * awaited at once) is cancelled in the kernel now, and what is ready is
 * delivered, so bytes it took reach the carry-over first.  One pass over
 * the side table, comparing ints; a call only for a receive on fd. */
int
pu_aio_settle_cancelled(AsyncRingObject *self, int fd)
{
    int sent = 0;
    if (self->closed || self->ring == NULL || self->ring->nrecords == 0)
        return 0;
    for (uint32_t s = 0; s < self->nwaits; s++) {
        pu_aio_wait *w = &self->waits[s];
        SqeObject *rec;
        PyObject *fut;
        int c;
        if (w->user_data == 0 ||
            (w->flags & (PU_AIO_CARRY | PU_AIO_CANCEL_SENT | PU_AIO_LTIMEOUT)) != PU_AIO_CARRY ||
            w->res != fd)
            continue;
        rec = self->ring->slots[s];
        fut = w->waiter;
        if (rec == NULL || rec->user_data != w->user_data)
            continue;
        Py_INCREF(fut);
        Py_INCREF(rec);
        c = truth0(fut, pu_aio_s.cancelled);
        if (c > 0) {
            c = pu_aio_cancel_in_kernel(rec, fut);
            sent = 1;
        }
        Py_DECREF(rec);
        Py_DECREF(fut);
        if (c < 0)
            return -1;
    }
    return sent ? pu_aio_process(self) : 0;
}
