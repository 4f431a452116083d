/* async/stream_write.c: the completion transport's write side in C
 * (docs/loop.md, "Where step 4 stands").
 *
 * write(data), the transport's own `write` (an instance attribute of
 * _transports._UringSocketTransport):
 *   - asyncio's checks and messages first: the type, write after
 *     write_eof(), sendfile in progress, a lost connection's count and its
 *     warning;
 *   - with nothing queued or in flight, one send(2) at the call, GIL held,
 *     MSG_DONTWAIT (as asyncio's and uvloop's transports); most writes end
 *     here, with no operation;
 *   - what it could not take goes to the kernel as a `send` operation of
 *     the callback waiter kind (PU_AIO_CALLBACK: no future, no call_soon
 *     hop), MSG_WAITALL so the kernel finishes short sends itself; writes
 *     made meanwhile are queued and go out joined into one send when it
 *     completes.  A caller's mutable buffer is copied before it outlives
 *     the call; the record pins what the kernel reads until the send's
 *     final completion, an aborted one included.
 * The queue, the send in flight, eof, conn_lost and sendfile's waiter live
 * here only; the transport reads them through the getters.  What asyncio
 * does around them (flow control, close() after the queue drains,
 * write_eof()'s shutdown, _fatal_error) stays in Python: the stream calls
 * transport._maybe_pause_protocol(), _maybe_resume_protocol(),
 * _write_drained() and _write_failed(exc). */
#include "async/stream.h"
#include "ops_gen.h"

#include <errno.h>
#include <sys/socket.h>

#define PU_LOG_THRESHOLD_FOR_CONNLOST_WRITES 5   /* asyncio.constants' */

static const char MSG_WRITE[] = "Fatal write error on socket transport";

static struct {
    PyObject *fatal_error, *write_failed, *write_drained, *maybe_pause, *maybe_resume,
        *warning;
    PyObject *logger;               /* asyncio.log.logger, once needed */
    PyObject *get_running_loop;     /* asyncio.events._get_running_loop */
} W;

int
pu_stream_write_names(void)
{
    static const struct {
        PyObject **slot;
        const char *name;
    } names[] = {
        {&W.fatal_error, "_fatal_error"}, {&W.write_failed, "_write_failed"},
        {&W.write_drained, "_write_drained"}, {&W.maybe_pause, "_maybe_pause_protocol"},
        {&W.maybe_resume, "_maybe_resume_protocol"}, {&W.warning, "warning"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (*names[i].slot == NULL &&
            (*names[i].slot = PyUnicode_InternFromString(names[i].name)) == NULL)
            return -1;
    return 0;
}

/* The exception set goes to transport._fatal_error(exc, MSG_WRITE):
 * 0, or -1 when that raised. */
static int
wfatal(StreamObject *s)
{
    PyObject *exc = pu_exc_take(), *m, *r;
    if (exc == NULL)
        return 0;
    if (s->owner == NULL) {
        Py_DECREF(exc);     /* released: nobody is left to tell */
        return 0;
    }
    m = PyUnicode_FromString(MSG_WRITE);
    r = m ? PyObject_CallMethodObjArgs(s->owner, W.fatal_error, exc, m, NULL) : NULL;
    Py_XDECREF(m);
    Py_DECREF(exc);
    Py_XDECREF(r);
    return r == NULL ? -1 : 0;
}

static int
call_owner(StreamObject *s, PyObject *name)
{
    PyObject *r;
    if (s->owner == NULL)
        return 0;
    r = PyObject_CallMethodObjArgs(s->owner, name, NULL);
    Py_XDECREF(r);
    return r == NULL ? -1 : 0;
}

/* After a write queued bytes: the transport's _maybe_pause_protocol(),
 * unless the buffer is at or below the high-water mark it gave. */
static int
maybe_pause(StreamObject *s)
{
    if (s->high_water >= 0 && s->wq_size + (s->wlen - s->woff) <= s->high_water)
        return 0;
    s->pause_maybe = 1;
    return call_owner(s, W.maybe_pause);
}

/* Is s's loop the one running in this thread?  The ring takes operations
 * only from it; else a queued send starts from the loop (call_soon). */
static int
loop_running(StreamObject *s)
{
    PyObject *running;
    if (W.get_running_loop == NULL) {
        PyObject *ev = PyImport_ImportModule("asyncio.events");
        W.get_running_loop = ev ? PyObject_GetAttrString(ev, "_get_running_loop") : NULL;
        Py_XDECREF(ev);
        if (W.get_running_loop == NULL)
            return -1;
    }
    running = PyObject_CallNoArgs(W.get_running_loop);
    if (running == NULL)
        return -1;
    Py_DECREF(running);
    return running == s->loop && s->loop != NULL;
}

/* Start the send of buf[off:] (buf a bytes, kept by s and pinned by the
 * record): 0, or -1 with the exception set and nothing in flight. */
static int
start_send(StreamObject *s, PyObject *buf, Py_ssize_t off)
{
    AsyncRingObject *a = s->aring;
    SqeObject *rec;
    PyObject *args[3], *r = NULL, *mv = NULL;
    Py_ssize_t len = PyBytes_GET_SIZE(buf);

    if (pu_aio_check_open(a) < 0 || pu_aio_bind_loop(a) < 0)
        return -1;
    if (off > 0) {
        PyObject *whole = PyMemoryView_FromObject(buf);
        mv = whole ? PySequence_GetSlice(whole, off, len) : NULL;
        Py_XDECREF(whole);
        if (mv == NULL)
            return -1;
    }
    rec = pu_aio_new_record(a);
    if (rec == NULL) {
        Py_XDECREF(mv);
        return -1;
    }
    args[0] = PyLong_FromLong(s->fd);
    args[1] = mv != NULL ? mv : buf;
    args[2] = PyLong_FromLong(MSG_WAITALL | MSG_NOSIGNAL);
    if (args[0] != NULL && args[2] != NULL && pu_aio_wait_reserve(a, rec) == 0)
        r = pu_aio_prep(rec, &pu_opdefs[PU_OP_SEND], args, 3, NULL, "send");
    Py_XDECREF(args[0]);
    Py_XDECREF(args[2]);
    Py_XDECREF(mv);
    if (r == NULL || pu_aio_wait_set(a, rec, (PyObject *)s, PU_AIO_CALLBACK) < 0) {
        Py_XDECREF(r);
        pu_aio_flush_orphan_nop(a);
        Py_DECREF(rec);
        return -1;
    }
    Py_DECREF(r);
    Py_XSETREF(s->wrec, rec);
    Py_INCREF(buf);
    Py_XSETREF(s->wbuf, buf);
    s->woff = off;
    s->wlen = len;
    a->ops++;
    return pu_aio_schedule_flush(a);
}

/* The buffers of seq (a list or tuple) joined into one new bytes. */
static PyObject *
join(PyObject *seq)
{
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq), total = 0;
    PyObject *out;
    char *p;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_buffer v;
        if (PyObject_GetBuffer(PySequence_Fast_GET_ITEM(seq, i), &v, PyBUF_SIMPLE) < 0)
            return NULL;
        total += v.len;
        PyBuffer_Release(&v);
    }
    out = PyBytes_FromStringAndSize(NULL, total);
    if (out == NULL)
        return NULL;
    p = PyBytes_AS_STRING(out);
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_buffer v;
        if (PyObject_GetBuffer(PySequence_Fast_GET_ITEM(seq, i), &v, PyBUF_SIMPLE) < 0) {
            Py_DECREF(out);
            return NULL;
        }
        if (v.len > total) {    /* a buffer grew in between: never past the end */
            PyBuffer_Release(&v);
            Py_DECREF(out);
            PyErr_SetString(PyExc_BufferError, "a buffer changed size during writelines()");
            return NULL;
        }
        memcpy(p, v.buf, (size_t)v.len);
        p += v.len;
        total -= v.len;
        PyBuffer_Release(&v);
    }
    if (total != 0 && _PyBytes_Resize(&out, PyBytes_GET_SIZE(out) - total) < 0)
        return NULL;
    return out;
}

/* The queue, joined into one bytes, as the send in flight. */
static int
send_queue(StreamObject *s)
{
    PyObject *buf;
    Py_ssize_t n = PyList_GET_SIZE(s->wq);
    int r;
    if (n == 1) {
        buf = PyList_GET_ITEM(s->wq, 0);
        Py_INCREF(buf);
    } else {
        buf = join(s->wq);
        if (buf == NULL)
            return -1;
    }
    if (PyList_SetSlice(s->wq, 0, n, NULL) < 0) {
        Py_DECREF(buf);
        return -1;
    }
    s->wq_size = 0;
    r = start_send(s, buf, 0);
    Py_DECREF(buf);
    return r;
}

/* Queue buf (a bytes), and have it sent from the loop unless a send is in
 * flight (its completion takes the queue). */
static int
enqueue(StreamObject *s, PyObject *buf)
{
    if (s->wq == NULL && (s->wq = PyList_New(0)) == NULL)
        return -1;
    if (PyList_Append(s->wq, buf) < 0)
        return -1;
    s->wq_size += PyBytes_GET_SIZE(buf);
    if (s->wrec == NULL && !s->wsoon) {
        AsyncRingObject *a = s->aring;
        PyObject *call_soon = a->call_soon, *h;
        if (call_soon == NULL) {
            PyObject *cs = s->loop ? PyObject_GetAttrString(s->loop, "call_soon") : NULL;
            if (cs == NULL)
                return -1;
            h = PyObject_CallOneArg(cs, s->send_queued_cb);
            Py_DECREF(cs);
        } else {
            h = PyObject_CallOneArg(call_soon, s->send_queued_cb);
        }
        if (h == NULL)
            return -1;
        Py_DECREF(h);
        s->wsoon = 1;
    }
    return 0;
}

static int
writable_buffer(PyObject *data)
{
    return PyBytes_Check(data) || PyByteArray_Check(data) || PyMemoryView_Check(data);
}

static PyObject *
type_error(PyObject *data)
{
    /* asyncio's: "... not %r" % type(data).__name__ */
    PyObject *name = PyObject_GetAttrString((PyObject *)Py_TYPE(data), "__name__");
    if (name != NULL)
        PyErr_Format(PyExc_TypeError, "data argument must be a bytes-like object, not %R",
                     name);
    Py_XDECREF(name);
    return NULL;
}

/* write(data) */
static PyObject *
Stream_write(StreamObject *s, PyObject *data)
{
    Py_buffer view;
    Py_ssize_t n;
    PyObject *rest;
    int r;

    if (!writable_buffer(data))
        return type_error(data);
    if (s->eof) {
        PyErr_SetString(PyExc_RuntimeError, "Cannot call write() after write_eof()");
        return NULL;
    }
    if (s->empty_waiter != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "unable to write; sendfile is in progress");
        return NULL;
    }
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
        /* a non-contiguous memoryview: sock.send() would raise this, and
         * the transport report it (as before, and as asyncio's) */
        if (s->conn_lost) {
            PyErr_Clear();
            s->conn_lost++;
            Py_RETURN_NONE;
        }
        return wfatal(s) < 0 ? NULL : (Py_INCREF(Py_None), Py_None);
    }
    if (view.len == 0) {
        PyBuffer_Release(&view);
        Py_RETURN_NONE;
    }
    if (s->conn_lost) {
        PyBuffer_Release(&view);
        if (s->conn_lost >= PU_LOG_THRESHOLD_FOR_CONNLOST_WRITES) {
            PyObject *v;
            if (W.logger == NULL) {
                PyObject *log = PyImport_ImportModule("asyncio.log");
                W.logger = log ? PyObject_GetAttrString(log, "logger") : NULL;
                Py_XDECREF(log);
                if (W.logger == NULL)
                    return NULL;
            }
            v = PyObject_CallMethod(W.logger, "warning", "s", "socket.send() raised exception.");
            if (v == NULL)
                return NULL;
            Py_DECREF(v);
        }
        s->conn_lost++;
        Py_RETURN_NONE;
    }
    n = 0;
    if (s->wrec == NULL && (s->wq == NULL || PyList_GET_SIZE(s->wq) == 0)) {
        /* nothing queued: one send(2) now; non-blocking, so the GIL stays */
        do
            n = send(s->fd, view.buf, (size_t)view.len, MSG_DONTWAIT | MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                PyBuffer_Release(&view);
                PyErr_SetFromErrno(PyExc_OSError);
                if (wfatal(s) < 0)
                    return NULL;
                Py_RETURN_NONE;
            }
            n = 0;
        }
        if (n == view.len) {
            PyBuffer_Release(&view);
            Py_RETURN_NONE;
        }
    }
    /* the kernel reads the rest later: a bytes is kept as it is, anything
     * else copied (it could change, or be resized while pinned) */
    if (PyBytes_CheckExact(data) && n > 0 && s->wrec == NULL &&
        (r = loop_running(s)) != 0) {
        PyBuffer_Release(&view);
        if (r < 0 || start_send(s, data, n) < 0)
            return wfatal(s) < 0 ? NULL : (Py_INCREF(Py_None), Py_None);
        if (maybe_pause(s) < 0)
            return NULL;
        Py_RETURN_NONE;
    }
    if (PyBytes_CheckExact(data) && n == 0) {
        rest = data;
        Py_INCREF(rest);
    } else {
        rest = PyBytes_FromStringAndSize((const char *)view.buf + n, view.len - n);
    }
    PyBuffer_Release(&view);
    if (rest == NULL)
        return NULL;
    if (s->wrec == NULL && (s->wq == NULL || PyList_GET_SIZE(s->wq) == 0) &&
        (r = loop_running(s)) != 0)
        r = r < 0 ? -1 : start_send(s, rest, 0);
    else
        r = enqueue(s, rest);   /* behind a send in flight, or from off the loop */
    Py_DECREF(rest);
    if (r < 0)
        return wfatal(s) < 0 ? NULL : (Py_INCREF(Py_None), Py_None);
    if (maybe_pause(s) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* writelines(list_of_data): one write of the items joined (one send(2)). */
static PyObject *
Stream_writelines(StreamObject *s, PyObject *iterable)
{
    PyObject *seq = PySequence_Fast(iterable, "writelines() argument must be iterable");
    PyObject *joined, *r;
    Py_ssize_t n;
    if (seq == NULL)
        return NULL;
    n = PySequence_Fast_GET_SIZE(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
        if (!writable_buffer(item)) {
            Py_DECREF(seq);
            return type_error(item);
        }
    }
    if (n == 1) {
        joined = PySequence_Fast_GET_ITEM(seq, 0);
        Py_INCREF(joined);
    } else {
        joined = join(seq);
    }
    Py_DECREF(seq);
    if (joined == NULL)
        return NULL;
    r = Stream_write(s, joined);
    Py_DECREF(joined);
    return r;
}

/* _send_queued(): from the loop, what was queued off it. */
static PyObject *
Stream_send_queued(StreamObject *s, PyObject *Py_UNUSED(unused))
{
    s->wsoon = 0;
    if (s->wrec == NULL && s->wq != NULL && PyList_GET_SIZE(s->wq) > 0 && !s->conn_lost &&
        s->owner != NULL) {
        if (send_queue(s) < 0 && wfatal(s) < 0)
            return NULL;
    }
    Py_RETURN_NONE;
}

/* A completion of the send in flight (stream.c's deliver, by the op). */
int
pu_stream_write_deliver(StreamObject *s, SqeObject *rec, CqeObject *q)
{
    PyObject *buf;
    int res = q->res, r = 0;

    if (rec != s->wrec)
        return 0;   /* aborted: only the record's pin was waited for */
    Py_INCREF(s);
    Py_CLEAR(s->wrec);
    buf = s->wbuf;  /* ours now */
    s->wbuf = NULL;
    if (res > 0)
        s->woff += res;
    if (res < 0 || (res == 0 && s->woff < s->wlen)) {
        s->woff = s->wlen = 0;
        if (s->owner != NULL) {
            PyObject *none = pu_err_errno(res < 0 ? -res : EPIPE), *exc;
            Py_XDECREF(none);
            exc = pu_exc_take();
            if (exc != NULL) {
                PyObject *v = PyObject_CallMethodObjArgs(s->owner, W.write_failed, exc, NULL);
                Py_DECREF(exc);
                Py_XDECREF(v);
                r = v == NULL ? -1 : 0;
            } else {
                r = -1;
            }
        }
    } else if (s->woff < s->wlen) {
        /* short even with MSG_WAITALL (a signal): the rest */
        if (s->owner != NULL && start_send(s, buf, s->woff) < 0)
            r = wfatal(s);
    } else {
        s->woff = s->wlen = 0;
        if (s->owner == NULL) {
            /* released */
        } else if (s->wq != NULL && PyList_GET_SIZE(s->wq) > 0 && !s->conn_lost) {
            if (send_queue(s) < 0)
                r = wfatal(s);
            else if (s->pause_maybe)
                r = call_owner(s, W.maybe_resume);
        } else if (s->pause_maybe || s->empty_waiter != NULL || s->eof ||
                   s->transport == NULL) {
            /* _write_drained(): a resume, sendfile's waiter, write_eof()'s
             * shutdown, or close()'s connection_lost (close() detached the
             * read side): none of these, nothing to do */
            s->pause_maybe = 0;
            r = call_owner(s, W.write_drained);
        }
    }
    Py_XDECREF(buf);
    Py_DECREF(s);
    return r;
}

/* The ring closes with rec in flight (fail_waiters): it ended. */
void
pu_stream_write_end(StreamObject *s, SqeObject *rec)
{
    if (s->wrec == rec) {
        Py_CLEAR(s->wrec);
        Py_CLEAR(s->wbuf);
        s->woff = s->wlen = 0;
    }
}

/* _write_abort(): drop the queue and cancel the send in flight in the
 * kernel; its record keeps the buffer pinned until the final completion. */
static PyObject *
Stream_write_abort(StreamObject *s, PyObject *Py_UNUSED(unused))
{
    AsyncRingObject *a = s->aring;
    SqeObject *rec = s->wrec;
    if (s->wq != NULL && PyList_SetSlice(s->wq, 0, PyList_GET_SIZE(s->wq), NULL) < 0)
        return NULL;
    s->wq_size = 0;
    s->woff = s->wlen = 0;
    Py_CLEAR(s->wbuf);
    if (rec == NULL)
        Py_RETURN_NONE;
    s->wrec = NULL;
    if (!a->closed) {
        pu_aio_wait *w = pu_aio_wait_of(a, rec);
        if (w != NULL && !(w->flags & PU_AIO_CANCEL_SENT)) {
            w->flags |= PU_AIO_CANCEL_SENT;
            if (pu_aio_internal_cancel(a, rec->user_data) < 0) {
                Py_DECREF(rec);
                return NULL;
            }
        }
    }
    Py_DECREF(rec);
    Py_RETURN_NONE;
}

/* _release(): the connection is lost; let go of the transport. */
static PyObject *
Stream_release(StreamObject *s, PyObject *Py_UNUSED(unused))
{
    Py_CLEAR(s->owner);
    Py_CLEAR(s->empty_waiter);
    Py_CLEAR(s->wq);
    s->wq_size = 0;
    Py_RETURN_NONE;
}

PyMethodDef pu_stream_write_methods[] = {
    {"write", (PyCFunction)Stream_write, METH_O, NULL},
    {"writelines", (PyCFunction)Stream_writelines, METH_O, NULL},
    {"_send_queued", (PyCFunction)Stream_send_queued, METH_NOARGS, NULL},
    {"_write_abort", (PyCFunction)Stream_write_abort, METH_NOARGS, NULL},
    {"_release", (PyCFunction)Stream_release, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

/* ---------------------------------------------------------------- the state, read by Python */

static PyObject *
get_buffer_size(StreamObject *s, void *Py_UNUSED(c))
{
    return PyLong_FromSsize_t(s->wq_size + (s->wlen - s->woff));
}

static PyObject *
get_idle(StreamObject *s, void *Py_UNUSED(c))
{
    return PyBool_FromLong(s->wrec == NULL && (s->wq == NULL || PyList_GET_SIZE(s->wq) == 0));
}

static PyObject *
get_in_flight(StreamObject *s, void *Py_UNUSED(c))
{
    return PyBool_FromLong(s->wrec != NULL);
}

static PyObject *
get_eof(StreamObject *s, void *Py_UNUSED(c))
{
    return PyBool_FromLong(s->eof);
}

static int
set_eof(StreamObject *s, PyObject *v, void *Py_UNUSED(c))
{
    int t = v == NULL ? 0 : PyObject_IsTrue(v);
    if (t < 0)
        return -1;
    s->eof = (uint8_t)t;
    return 0;
}

static PyObject *
get_conn_lost(StreamObject *s, void *Py_UNUSED(c))
{
    return PyLong_FromSsize_t(s->conn_lost);
}

static int
set_conn_lost(StreamObject *s, PyObject *v, void *Py_UNUSED(c))
{
    Py_ssize_t n = v == NULL ? 0 : PyLong_AsSsize_t(v);
    if (n == -1 && PyErr_Occurred())
        return -1;
    s->conn_lost = n;
    return 0;
}

static PyObject *
get_empty_waiter(StreamObject *s, void *Py_UNUSED(c))
{
    PyObject *w = s->empty_waiter ? s->empty_waiter : Py_None;
    Py_INCREF(w);
    return w;
}

static int
set_empty_waiter(StreamObject *s, PyObject *v, void *Py_UNUSED(c))
{
    if (v == Py_None)
        v = NULL;
    Py_XINCREF(v);
    Py_XSETREF(s->empty_waiter, v);
    return 0;
}

/* The transport's set_write_buffer_limits() (and its __init__) give the
 * high-water mark; the limits changed, a pause may have happened. */
static PyObject *
get_high_water(StreamObject *s, void *Py_UNUSED(c))
{
    return PyLong_FromSsize_t(s->high_water);
}

static int
set_high_water(StreamObject *s, PyObject *v, void *Py_UNUSED(c))
{
    Py_ssize_t n;
    if (v == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete high_water");
        return -1;
    }
    n = PyNumber_AsSsize_t(v, PyExc_OverflowError);
    if (n == -1 && PyErr_Occurred())
        return -1;
    s->high_water = n < 0 ? -1 : n;
    s->pause_maybe = 1;
    return 0;
}

PyGetSetDef pu_stream_write_getset[] = {
    {"high_water", (getter)get_high_water, (setter)set_high_water, NULL, NULL},
    {"write_buffer_size", (getter)get_buffer_size, NULL, NULL, NULL},
    {"write_idle", (getter)get_idle, NULL, NULL, NULL},
    {"send_in_flight", (getter)get_in_flight, NULL, NULL, NULL},
    {"eof", (getter)get_eof, (setter)set_eof, NULL, NULL},
    {"conn_lost", (getter)get_conn_lost, (setter)set_conn_lost, NULL, NULL},
    {"empty_waiter", (getter)get_empty_waiter, (setter)set_empty_waiter, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

/* ---------------------------------------------------------------- life */

int
pu_stream_write_init(StreamObject *s)
{
    static PyMethodDef def = {"_send_queued", (PyCFunction)Stream_send_queued, METH_NOARGS,
                              NULL};
    Py_INCREF(s->transport);
    s->owner = s->transport;
    s->high_water = -1;
    s->pause_maybe = 1;
    s->loop = PyObject_GetAttrString(s->transport, "_loop");
    if (s->loop == NULL)
        return -1;
    s->send_queued_cb = PyCFunction_New(&def, (PyObject *)s);
    return s->send_queued_cb == NULL ? -1 : 0;
}

int
pu_stream_write_traverse(StreamObject *s, visitproc visit, void *arg)
{
    Py_VISIT(s->owner);
    Py_VISIT(s->loop);
    Py_VISIT(s->wq);
    Py_VISIT(s->wbuf);
    Py_VISIT(s->wrec);
    Py_VISIT(s->empty_waiter);
    Py_VISIT(s->send_queued_cb);
    return 0;
}

/* tp_clear: the send in flight and its buffer stay (dealloc drops them:
 * the record pins the buffer for the kernel on its own) */
void
pu_stream_write_clear(StreamObject *s)
{
    Py_CLEAR(s->owner);
    Py_CLEAR(s->loop);
    Py_CLEAR(s->wq);
    s->wq_size = 0;
    Py_CLEAR(s->empty_waiter);
    Py_CLEAR(s->send_queued_cb);
}
