/* async/sock.c: send_all(), which finishes partial sends, and the
 * loop.sock_* shapes over recv, send_all, connect and accept.
 * async_internal.h says how the files of src/async/ share the work. */
#include "async/async_internal.h"
#include "methods_doc.h"
#include "ops_gen.h"

#include <errno.h>
#include <sys/socket.h>

/* ---------------------------------------------------------------- send_all */

/* The op `send` with MSG_WAITALL: the kernel itself retries short sends on
 * stream sockets; if one still comes back short, the rest goes in a new
 * send, prepared here, to which dispatch() moves the future fut.
 * 1: finished, all sent or the future cancelled; 0: continued, *next is
 * the new send's record (a new reference); 2: not finished, and the ring
 * closes (the future is to be cancelled); -1: an error, set. */
int
pu_aio_continue_send_all(AsyncRingObject *self, SqeObject *rec, CqeObject *q,
                         PyObject *fut, SqeObject **next)
{
    PyObject *st = rec->data, *mv, *rest, *argv[3], *r;
    Py_ssize_t offset, total;
    SqeObject *n;
    int done;

    offset = PyLong_AsSsize_t(PyTuple_GET_ITEM(st, 3)) + q->res;
    total = PyObject_Length(PyTuple_GET_ITEM(st, 1));
    if (total < 0)
        return -1;
    if (offset >= total)
        return 1;
    if (self->closing)
        return 2;   /* nothing more goes out: the ring closes */
    if (q->res == 0) {
        pu_err_errno(EPIPE);   /* the peer is gone */
        return -1;
    }
    done = truth0(fut, pu_aio_s.done);
    if (done != 0)
        return done < 0 ? -1 : 1;   /* cancelled: send no more */
    mv = PyMemoryView_FromObject(PyTuple_GET_ITEM(st, 1));
    if (mv == NULL)
        return -1;
    rest = PySequence_GetSlice(mv, offset, total);
    Py_DECREF(mv);
    if (rest == NULL)
        return -1;
    n = pu_aio_new_record(self);
    if (n == NULL) {
        Py_DECREF(rest);
        return -1;
    }
    if (pu_aio_wait_reserve(self, n) < 0) {
        Py_DECREF(rest);
        goto fail;
    }
    argv[0] = PyTuple_GET_ITEM(st, 0);
    argv[1] = rest;
    argv[2] = PyTuple_GET_ITEM(st, 2);
    r = pu_aio_prep(n, &pu_opdefs[PU_OP_SEND], argv, 3, NULL, "send_all");
    Py_DECREF(rest);
    if (r == NULL)
        goto fail;
    Py_DECREF(r);
    n->data = Py_BuildValue("(OOOn)", PyTuple_GET_ITEM(st, 0),
                            PyTuple_GET_ITEM(st, 1), PyTuple_GET_ITEM(st, 2),
                            offset);
    if (n->data == NULL)
        goto fail;   /* the send runs unwatched */
    if (pu_aio_schedule_flush(self) < 0)
        PyErr_Clear();            /* the flush of the next op will take it */
    *next = n;
    return 0;
fail:
    pu_aio_flush_orphan_nop(self);
    Py_DECREF(n);
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
    fut = state ? pu_aio_start_op(self, &pu_opdefs[PU_OP_SEND], call, 3, NULL,
                           (uint16_t)(aio | PU_AIO_SENDALL), state, NULL, name, -1) : NULL;
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

/* A future done with value (the carry-over's bytes, or their count). */
static PyObject *
done_with(AsyncRingObject *self, PyObject *value)
{
    PyObject *fut;
    if (pu_aio_check_open(self) < 0 || pu_aio_bind_loop(self) < 0)
        return NULL;
    fut = pu_aio_new_future(self, 0);
    if (fut != NULL && call1_void(fut, pu_aio_s.set_result, value) < 0)
        Py_CLEAR(fut);
    return fut;
}

/* A receive on sock: its carry-over first (bytes a cancelled receive got,
 * recv.c), else a recv whose own cancellation keeps what it got. */
static PyObject *
sock_receive(AsyncRingObject *self, PyObject *const *args, const char *name, int into)
{
    int n = PyObject_AsFileDescriptor(args[0]);

    if (n < 0)
        return NULL;
    /* a receive on this socket cancelled by hand, its cancel not sent yet,
     * may hold bytes sent since: they come first */
    if (pu_aio_settle_cancelled(self, n) < 0)
        return NULL;
    if (self->carry != NULL && PyDict_GET_SIZE(self->carry) > 0) {
        Py_buffer view = {0};
        Py_ssize_t max;
        PyObject *got, *value;
        if (into) {
            if (PyObject_GetBuffer(args[1], &view, PyBUF_WRITABLE) < 0)
                return NULL;
            max = view.len;
        } else {
            max = PyLong_AsSsize_t(args[1]);
            if (max == -1 && PyErr_Occurred())
                return NULL;
        }
        got = max > 0 ? pu_aio_carry_take(self, n, max) : NULL;
        if (got == NULL) {
            if (into)
                PyBuffer_Release(&view);
            if (PyErr_Occurred())
                return NULL;
        } else {
            if (into) {
                memcpy(view.buf, PyBytes_AS_STRING(got), (size_t)PyBytes_GET_SIZE(got));
                PyBuffer_Release(&view);
                value = PyLong_FromSsize_t(PyBytes_GET_SIZE(got));
                Py_DECREF(got);
            } else {
                value = got;
            }
            if (value == NULL)
                return NULL;
            {
                PyObject *fut = done_with(self, value);
                Py_DECREF(value);
                return fut;
            }
        }
    }
    /* the buffer is the record's data: a cancelled receive's bytes are
     * copied from it */
    return pu_aio_start_op(self, &pu_opdefs[PU_OP_RECV], args, 2, NULL, PU_AIO_CARRY,
                           into ? args[1] : NULL, NULL, name, n);
}

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
    return sock_receive(self, args, "sock_recv", 0);
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
    return sock_receive(self, args, "sock_recv_into", 1);
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
    return pu_aio_start_op(self, &pu_opdefs[PU_OP_CONNECT], args, 2, NULL, PU_AIO_NONE, NULL, NULL,
                           "sock_connect", -1);
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
    fut = pu_aio_start_op(self, &pu_opdefs[PU_OP_ACCEPT], call, 2, NULL, PU_AIO_SOCKET, NULL, NULL,
                          "sock_accept", -1);
    Py_DECREF(call[1]);
    return fut;
}

PyMethodDef pu_aio_sock_methods[] = {
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
    {NULL, NULL, 0, NULL},
};
