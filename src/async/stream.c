/* async/stream.c: the completion transport's read path in C (docs/loop.md,
 * "Where step 4 stands"), and the callback waiter kind it runs on.
 *
 * PU_AIO_CALLBACK: an entry of the side table whose waiter is an object
 * (strong) told of every completion of its op, during the reap, by
 * pu_aio_callback_deliver(): a _UringStream in C, anything else called
 * with the Cqe.  No future, no call_soon() hop.  What the callback raises
 * goes to loop.call_exception_handler() and the reap goes on.
 *
 * _UringStream(aring, fd, transport): the read side of one connection of
 * _transports._UringSocketTransport.
 *   - A Protocol: one multishot recv (IORING_RECV_MULTISHOT) from the
 *     AsyncRing's buffer ring (one per ring, set up by the first stream;
 *     incremental where the kernel has it, so the reads of every
 *     connection fill its buffers one after another); each completion's
 *     bytes are copied out when it is delivered (take_buffer()), so
 *     data_received() gets a bytes of exactly what came.
 *     Ended by the kernel without IORING_CQE_F_MORE (ENOBUFS when many
 *     connections drained the ring in one batch): armed again; right away
 *     when that arming got something, else from the loop's next iteration
 *     (call_soon), so a ring that stays dry costs one SQE an iteration, no
 *     spin inside the reap.
 *   - A BufferedProtocol: one recv at a time into get_buffer()'s buffer,
 *     pinned by the record until its completion.
 *   - stop() (pause_reading, close) cancels the recv in the kernel; bytes
 *     a completion brings after that, and an EOF, are kept in order
 *     (carry) and handed over by resume() before anything newer.
 *   - EOF calls transport._read_eof(), a failed receive
 *     transport._fatal_error(); a protocol that raises goes to
 *     transport._fatal_error() as asyncio's transports report it.
 * The write side is stream_write.c's; close, abort, write_eof's order
 * and the rest stay in Python. */
#include "async/stream.h"
#include "register/register.h"
#include "ops/liburing_compat.h"
#include "ops_gen.h"

#include <errno.h>

#define PU_STREAM_BGID 0x5354       /* the AsyncRing's ring is private: any id */
/* Buffers in the ring.  Incremental (IOU_PBUF_RING_INC): the reads of
 * every connection fill one buffer after another, so a few cover a batch of
 * small reads, and the kernel writes into memory used a moment ago, warm in
 * the cache.  Whole buffers: each read takes one, whatever its size, so a
 * batch of 64 connections needs 64, 4 MiB cycled through, cold by their
 * turn (a 64 KiB echo server: 0.89x uvloop per CPU-second with 64 whole
 * buffers, 0.96x with 16 incremental ones; docs/loop.md). */
#ifndef PU_STREAM_INC_BUFS
#define PU_STREAM_INC_BUFS 16
#endif
#ifndef PU_STREAM_BUFS
#define PU_STREAM_BUFS 64
#endif
#define PU_STREAM_BUF_SIZE 65536    /* bytes each: asyncio reads up to 256 KiB,
                                       the Python transport read 64 KiB */


static PyTypeObject StreamType;

static struct {
    PyObject *data_received, *buffer_updated, *get_buffer, *fatal_error,
        *read_eof, *feed, *call_exception_handler, *setup_buf_ring;
    PyObject *zero, *bundle;        /* recv_multishot's flags and ioprio */
} S;

static const char MSG_READ[] = "Fatal read error on socket transport";

/* ---------------------------------------------------------------- the callback kind */

/* What a completion callback raised: the loop's exception handler, as
 * asyncio reports an error nobody else can take. */
static void
report(AsyncRingObject *a, const char *what)
{
    PyObject *exc = pu_exc_take(), *ctx = NULL, *r = NULL;
    if (exc == NULL)
        return;
    if (a->loop != NULL)
        ctx = Py_BuildValue("{s:s,s:O}", "message", what, "exception", exc);
    if (ctx != NULL)
        r = PyObject_CallMethodObjArgs(a->loop, S.call_exception_handler, ctx, NULL);
    Py_XDECREF(ctx);
    if (r == NULL) {
        /* no handler to take it: never lost all the same */
        PyErr_Clear();
        pu_exc_give(exc);
        unraisable(what);
        return;
    }
    Py_DECREF(r);
    Py_DECREF(exc);
}

static int stream_deliver(StreamObject *s, SqeObject *rec, CqeObject *q, int final);
static void report(AsyncRingObject *a, const char *what);

static void
deliver(AsyncRingObject *a, PyObject *cb, CqeObject *q, int final)
{
    int r;
    if (Py_TYPE(cb) == &StreamType && q->sqe->op == &pu_opdefs[PU_OP_SEND]) {
        r = pu_stream_write_deliver((StreamObject *)cb, q->sqe, q);
    } else if (Py_TYPE(cb) == &StreamType) {
        r = stream_deliver((StreamObject *)cb, q->sqe, q, final);
    } else {
        PyObject *v = PyObject_CallOneArg(cb, (PyObject *)q);
        Py_XDECREF(v);
        r = v == NULL ? -1 : 0;
    }
    if (r < 0)
        report(a, "py_io_uring: a completion callback raised");
}

/* dispatch(): cb's completion q, told after the batch.  Steals cb. */
void
pu_aio_callback_queue(AsyncRingObject *a, PyObject *cb, CqeObject *q, int final)
{
    PyObject *t;
    if (a->cb_queue == NULL && (a->cb_queue = PyList_New(0)) == NULL) {
        Py_DECREF(cb);
        unraisable("AsyncRing: queueing a completion");
        return;
    }
    /* a tuple made by hand: Py_BuildValue() parses its format each time,
     * once per completion (a few hundred instructions a request) */
    if ((t = PyTuple_New(3)) == NULL) {
        Py_DECREF(cb);
    } else {
        PyObject *f = final ? Py_True : Py_False;
        PyTuple_SET_ITEM(t, 0, cb);
        Py_INCREF(q);
        PyTuple_SET_ITEM(t, 1, (PyObject *)q);
        Py_INCREF(f);
        PyTuple_SET_ITEM(t, 2, f);
    }
    if (t == NULL || PyList_Append(a->cb_queue, t) < 0)
        unraisable("AsyncRing: queueing a completion");
    Py_XDECREF(t);
}

/* pu_aio_process(), after each batch: tell the callbacks, in order. */
void
pu_aio_callback_run(AsyncRingObject *a)
{
    while (a->cb_queue != NULL) {
        PyObject *list = a->cb_queue;
        a->cb_queue = NULL;   /* what the callbacks queue goes to a new one */
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(list); i++) {
            PyObject *t = PyList_GET_ITEM(list, i);
            deliver(a, PyTuple_GET_ITEM(t, 0), (CqeObject *)PyTuple_GET_ITEM(t, 1),
                    PyTuple_GET_ITEM(t, 2) == Py_True);
        }
        Py_DECREF(list);
    }
}

/* The ring closes with cb's op in flight (fail_waiters): it ends. */
void
pu_aio_callback_end(PyObject *cb, SqeObject *rec)
{
    if (Py_TYPE(cb) == &StreamType) {
        StreamObject *s = (StreamObject *)cb;
        if (s->rec == rec)
            Py_CLEAR(s->rec);
        pu_stream_write_end(s, rec);
    }
}

/* ---------------------------------------------------------------- arming */

/* The loop's ring (ring.c's _loop_ring()) keeps the transports' buffer
 * group for them: its other users get a ValueError naming it. */
void
pu_aio_reserve_stream_bgid(AsyncRingObject *a)
{
    a->ring->reserved_bgid = PU_STREAM_BGID;
    a->ring->bgid_reserved = 1;
}

/* The ring's buffer group, set up once: IOU_PBUF_RING_INC where the
 * kernel has it (6.12), else whole buffers (docs/loop.md, "Incremental
 * buffers").  -DPU_STREAM_NO_INC builds whole buffers only, to measure. */
static int
buffer_ring(AsyncRingObject *a)
{
    PyObject *r;
    uint8_t kind = 2;
    if (a->stream_bufs)
        return 0;
    /* the group is reserved on the loop's ring (pu_aio_reserve_stream_bgid)
     * against its other users, not against this */
    a->ring->bgid_reserve_lifted = 1;
    r = NULL;
#ifndef PU_STREAM_NO_INC
    r = PyObject_CallMethod((PyObject *)a->ring, "setup_buf_ring", "IIII",
                            (unsigned)PU_STREAM_BGID, (unsigned)PU_STREAM_INC_BUFS,
                            (unsigned)PU_STREAM_BUF_SIZE, (unsigned)IOU_PBUF_RING_INC);
    if (r == NULL && PyErr_ExceptionMatches(PyExc_OSError))
        PyErr_Clear();   /* EINVAL before 6.12: the flag is unknown */
#endif
    if (r == NULL && !PyErr_Occurred()) {
        kind = 1;
        r = PyObject_CallMethod((PyObject *)a->ring, "setup_buf_ring", "III",
                                (unsigned)PU_STREAM_BGID, (unsigned)PU_STREAM_BUFS,
                                (unsigned)PU_STREAM_BUF_SIZE);
    }
    a->ring->bgid_reserve_lifted = 0;
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    a->stream_bufs = kind;
    return 0;
}

/* The protocol's next buffer (get_buffer(-1)): a new reference, or NULL
 * with the protocol's exception set. */
static PyObject *
next_buffer(StreamObject *s)
{
    PyObject *m1, *buf;
    Py_ssize_t n;
    m1 = PyLong_FromLong(-1);
    if (m1 == NULL)
        return NULL;
    buf = PyObject_CallMethodObjArgs(s->protocol, S.get_buffer, m1, NULL);
    Py_DECREF(m1);
    if (buf == NULL)
        return NULL;
    n = PyObject_Length(buf);
    if (n <= 0) {
        Py_DECREF(buf);
        if (n == 0)
            PyErr_SetString(PyExc_RuntimeError, "get_buffer() returned an empty buffer");
        return NULL;
    }
    return buf;
}

/* Prepare s's next receive: 0; -1 with the ring's exception set; -2 with
 * the protocol's (get_buffer()). */
static int
arm(StreamObject *s)
{
    AsyncRingObject *a = s->aring;
    SqeObject *rec;
    PyObject *r, *args[3], *buf = NULL;
    int buffered = s->buffered;

    if (pu_aio_check_open(a) < 0 || pu_aio_bind_loop(a) < 0)
        return -1;
    if (buffered) {
        if ((buf = next_buffer(s)) == NULL)
            return -2;
    } else if (buffer_ring(a) < 0) {
        return -1;
    }
    rec = pu_aio_new_record(a);
    if (rec == NULL) {
        Py_XDECREF(buf);
        return -1;
    }
    args[0] = PyLong_FromLong(s->fd);
    args[1] = buf;
    if (args[0] == NULL) {
        r = NULL;
    } else if (buffered) {
        r = pu_aio_wait_reserve(a, rec) < 0 ? NULL
            : pu_aio_prep(rec, &pu_opdefs[PU_OP_RECV], args, 2, NULL, "recv");
    } else {
        /* applied by the prep after the op's own fields */
        rec->sqe_flags = IOSQE_BUFFER_SELECT;
        rec->buf_group = PU_STREAM_BGID;
        /* each completion's bytes copied out when it is delivered, one
         * at a time: copied at the reap, a batch of 64 KiB reads made
         * megabytes of bytes at once, which glibc gave back to the
         * kernel and faulted in again every batch (docs/loop.md) */
        rec->defer_buf = 1;
        /* a bundle: data that runs past a buffer's end comes in one
         * completion over the next buffer too, not cut in two at the
         * boundary of an incremental ring's buffers */
        args[1] = S.zero;
        args[2] = S.bundle;   /* (6.10; an incremental ring is 6.12's) */
        r = pu_aio_wait_reserve(a, rec) < 0 ? NULL
            : pu_aio_prep(rec, &pu_opdefs[PU_OP_RECV_MULTISHOT], args,
                          a->stream_bufs == 2 ? 3 : 1, NULL,
                          "recv_multishot");
    }
    Py_XDECREF(args[0]);
    if (r == NULL || pu_aio_wait_set(a, rec, (PyObject *)s, PU_AIO_CALLBACK) < 0) {
        Py_XDECREF(r);
        Py_XDECREF(buf);
        pu_aio_flush_orphan_nop(a);
        Py_DECREF(rec);
        return -1;
    }
    Py_DECREF(r);
    Py_XSETREF(s->rec, rec);
    Py_XSETREF(s->rbuf, buf);
    if (buffered) {
        Py_INCREF(s->protocol);
        Py_XSETREF(s->rproto, s->protocol);
    }
    s->rec_buffered = (uint8_t)buffered;
    s->cancel_sent = 0;
    s->items = 0;
    a->ops++;
    return pu_aio_schedule_flush(a);
}

/* The exception set goes to transport._fatal_error(exc, msg): 0, or -1
 * when that raised (or no transport is left to take it). */
static int
fatal(StreamObject *s, const char *msg)
{
    PyObject *exc = pu_exc_take(), *m, *r;
    if (exc == NULL)
        return 0;
    if (s->transport == NULL) {
        pu_exc_give(exc);
        return -1;
    }
    s->ended = 1;
    m = PyUnicode_FromString(msg);
    r = m ? PyObject_CallMethodObjArgs(s->transport, S.fatal_error, exc, m, NULL) : NULL;
    Py_XDECREF(m);
    Py_DECREF(exc);
    Py_XDECREF(r);
    return r == NULL ? -1 : 0;
}

/* Arm s's next receive if it reads and nothing is armed. */
static int
arm_if_reading(StreamObject *s)
{
    int r;
    if (!s->reading || s->ended || s->rec != NULL || s->transport == NULL ||
        s->aring->closing || s->aring->closed)
        return 0;
    r = arm(s);
    if (r == -2)
        return fatal(s, "Fatal error: protocol.get_buffer() call failed.");
    if (r < 0)
        return fatal(s, MSG_READ);
    return 0;
}

/* Hand item to the protocol: bytes, b'' for EOF, or an exception. */
static int
feed(StreamObject *s, PyObject *item)
{
    PyObject *r;
    if (s->transport == NULL)
        return 0;   /* detached: the transport is gone */
    if (PyExceptionInstance_Check(item)) {
        Py_INCREF(item);
        pu_exc_give(item);
        return fatal(s, MSG_READ);
    }
    if (PyBytes_GET_SIZE(item) == 0) {
        s->ended = 1;
        r = PyObject_CallMethodObjArgs(s->transport, S.read_eof, NULL);
    } else if (s->buffered) {
        /* bytes for a BufferedProtocol (it replaced a Protocol meanwhile,
         * or they were kept while paused): asyncio's copy into its buffers */
        r = PyObject_CallMethodObjArgs(s->transport, S.feed, item, NULL);
    } else {
        r = PyObject_CallMethodObjArgs(s->protocol, S.data_received, item, NULL);
        if (r == NULL)
            return fatal(s, "Fatal error: protocol.data_received() call failed.");
    }
    Py_XDECREF(r);
    return r == NULL ? -1 : 0;
}

/* Bytes of a buffer a recv filled, copied. */
static PyObject *
copy_out(PyObject *buf, Py_ssize_t n)
{
    Py_buffer view;
    PyObject *b;
    if (PyObject_GetBuffer(buf, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    b = PyBytes_FromStringAndSize(view.buf, n < view.len ? n : view.len);
    PyBuffer_Release(&view);
    return b;
}

/* The bytes of q's buffer, left in the stream's buffer ring at the reap
 * (rec->defer_buf): copied out and the buffer given back, once. */
static PyObject *
take_buffer(AsyncRingObject *a, CqeObject *q)
{
    if (!(q->flags & IORING_CQE_F_BUFFER) || q->nbufs != 0)
        return pu_cqe_result(q);   /* no buffer, or taken already */
    return pu_bufring_take(a->ring, PU_STREAM_BGID, q->flags, q->res, &q->nbufs,
                           &q->buf_off);
}

/* Deferred arming (a dry buffer ring), from the loop's next iteration. */
static PyObject *
Stream_rearm(StreamObject *s, PyObject *Py_UNUSED(unused))
{
    s->rearm_soon = 0;
    if (arm_if_reading(s) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* One completion of s's receive (dispatch.c, through the callback kind). */
static int
stream_deliver(StreamObject *s, SqeObject *rec, CqeObject *q, int final)
{
    AsyncRingObject *a = s->aring;
    int res = q->res, buffered = s->rec_buffered, r = 0;
    PyObject *item = NULL, *buf = NULL, *proto = NULL;

    Py_INCREF(s);
    if (final && s->rec == rec) {
        Py_CLEAR(s->rec);
        buf = s->rbuf;            /* ours now */
        s->rbuf = NULL;
        proto = s->rproto;
        s->rproto = NULL;
    }
    if (res > 0) {
        s->items++;
        if (buffered) {
            if (s->reading && s->transport != NULL && proto == s->protocol &&
                (s->carry == NULL || PyList_GET_SIZE(s->carry) == 0)) {
                /* the hot path of a BufferedProtocol */
                PyObject *n = PyLong_FromLong(res), *v;
                v = n ? PyObject_CallMethodObjArgs(proto, S.buffer_updated, n, NULL) : NULL;
                Py_XDECREF(n);
                if (v == NULL)
                    r = fatal(s, "Fatal error: protocol.buffer_updated() call failed.");
                Py_XDECREF(v);
                goto rearm;
            }
            item = buf != NULL ? copy_out(buf, res) : NULL;
        } else {
            item = take_buffer(a, q);  /* copied out of the buffer ring now */
        }
        if (item == NULL) {
            r = fatal(s, MSG_READ);
            goto rearm;
        }
    } else if (res == 0) {
        item = PyBytes_FromStringAndSize(NULL, 0);
    } else if (res == -ENOBUFS && !buffered) {
        /* the buffer ring ran dry: armed again below */
    } else if (res == -ECANCELED && (s->cancel_sent || a->closing || a->closed)) {
        /* stopped: quietly */
    } else {
        PyObject *none = pu_err_errno(-res);
        Py_XDECREF(none);
        item = pu_exc_take();
    }
    if (item != NULL) {
        if (s->reading && (s->carry == NULL || PyList_GET_SIZE(s->carry) == 0)) {
            r = feed(s, item);
        } else if (s->transport != NULL) {
            /* stopped (paused, or a cancel in flight): kept, in order */
            if (s->carry == NULL && (s->carry = PyList_New(0)) == NULL)
                r = -1;
            else if (PyList_Append(s->carry, item) < 0)
                r = -1;
            if (PyBytes_Check(item) && PyBytes_GET_SIZE(item) == 0)
                s->ended = 1;
            else if (PyExceptionInstance_Check(item))
                s->ended = 1;
        }
    }
rearm:
    if (final && r == 0 && s->rec == NULL && s->reading && !s->ended) {
        if (res == -ENOBUFS && s->items == 0) {
            /* nothing since the last arming: the next iteration, not now */
            if (!s->rearm_soon && a->call_soon != NULL) {
                PyObject *h = PyObject_CallOneArg(a->call_soon, s->rearm_cb);
                if (h == NULL)
                    r = -1;
                else
                    s->rearm_soon = 1;
                Py_XDECREF(h);
            }
        } else {
            r = arm_if_reading(s);
        }
    }
    Py_XDECREF(item);
    Py_XDECREF(buf);
    Py_XDECREF(proto);
    Py_DECREF(s);
    return r;
}

/* ---------------------------------------------------------------- the type */

static PyObject *
Stream_new(PyTypeObject *type, PyObject *args, PyObject *Py_UNUSED(kwds))
{
    PyObject *aring, *transport;
    int fd;
    StreamObject *s;
    static PyMethodDef rearm_def = {"_rearm", (PyCFunction)Stream_rearm, METH_NOARGS, NULL};

    if (!PyArg_ParseTuple(args, "O!iO:_UringStream", &pu_AsyncRingType, &aring, &fd,
                          &transport))
        return NULL;
    s = (StreamObject *)type->tp_alloc(type, 0);
    if (s == NULL)
        return NULL;
    Py_INCREF(aring);
    s->aring = (AsyncRingObject *)aring;
    Py_INCREF(transport);
    s->transport = transport;
    s->fd = fd;
    s->rearm_cb = PyCFunction_New(&rearm_def, (PyObject *)s);
    if (s->rearm_cb == NULL || pu_stream_write_init(s) < 0) {
        Py_DECREF(s);
        return NULL;
    }
    return (PyObject *)s;
}

/* Cancel the armed receive in the kernel, once: its completions still
 * come (what it took before the cancel, then the final one).  0, or -1
 * with an exception set. */
static int
cancel_armed(StreamObject *s)
{
    AsyncRingObject *a = s->aring;
    if (s->rec != NULL && !s->cancel_sent && !a->closed) {
        pu_aio_wait *w = pu_aio_wait_of(a, s->rec);
        s->cancel_sent = 1;
        if (w != NULL && !(w->flags & PU_AIO_CANCEL_SENT)) {
            w->flags |= PU_AIO_CANCEL_SENT;
            /* now, not at the next flush: a peer the caller wakes next
             * could send bytes a receive still armed would take */
            if (pu_aio_internal_cancel(a, s->rec->user_data) < 0 || pu_aio_flush_now(a) < 0)
                return -1;
        }
    }
    return 0;
}

/* set_protocol(protocol, buffered): bytes not yet handed to a protocol
 * go to this one, as asyncio's selector transport hands its next read to
 * the protocol of the moment.
 *   - To a BufferedProtocol while the multishot receive is armed: it is
 *     cancelled in the kernel (left armed, it would bring copies until the
 *     kernel ends it); what it took before the cancel goes to the new
 *     protocol through get_buffer()/buffer_updated() (transport._feed),
 *     in order, and a single recv into get_buffer() is armed after its
 *     final completion, so nothing newer comes first.
 *   - To a Protocol while a single recv is in flight: the kernel writes
 *     into the buffer the old protocol gave (pinned by the record); the
 *     bytes are copied out at the completion and go to data_received(),
 *     the old protocol told nothing, then the multishot receive is armed. */
static PyObject *
Stream_set_protocol(StreamObject *s, PyObject *args)
{
    PyObject *p;
    int buffered;
    if (!PyArg_ParseTuple(args, "Op:set_protocol", &p, &buffered))
        return NULL;
    Py_INCREF(p);
    Py_XSETREF(s->protocol, p);
    s->buffered = (uint8_t)buffered;
    if (buffered && s->rec != NULL && !s->rec_buffered && s->transport != NULL &&
        cancel_armed(s) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* resume(): hand over what was kept, then receive. */
static PyObject *
Stream_resume(StreamObject *s, PyObject *Py_UNUSED(unused))
{
    if (s->transport == NULL || s->protocol == NULL)
        Py_RETURN_NONE;
    s->reading = 1;
    while (s->reading && s->transport != NULL && s->carry != NULL &&
           PyList_GET_SIZE(s->carry) > 0) {
        PyObject *item = PyList_GET_ITEM(s->carry, 0);
        int r;
        Py_INCREF(item);
        if (PyList_SetSlice(s->carry, 0, 1, NULL) < 0) {
            Py_DECREF(item);
            return NULL;
        }
        r = feed(s, item);
        Py_DECREF(item);
        if (r < 0)
            return NULL;
    }
    if (arm_if_reading(s) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* stop(): cancel the receive in the kernel; what it still brings is kept. */
static PyObject *
Stream_stop(StreamObject *s, PyObject *Py_UNUSED(unused))
{
    s->reading = 0;
    if (cancel_armed(s) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* detach(): stop, and let go of the transport (close, abort). */
static PyObject *
Stream_detach(StreamObject *s, PyObject *Py_UNUSED(unused))
{
    PyObject *r = Stream_stop(s, NULL);
    Py_CLEAR(s->transport);
    Py_CLEAR(s->protocol);
    Py_CLEAR(s->carry);
    Py_CLEAR(s->rproto);
    return r;
}

static PyObject *
Stream_armed(StreamObject *s, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(s->rec != NULL);
}

static int
Stream_traverse(StreamObject *s, visitproc visit, void *arg)
{
    Py_VISIT(s->aring);
    Py_VISIT(s->transport);
    Py_VISIT(s->protocol);
    Py_VISIT(s->rbuf);
    Py_VISIT(s->rproto);
    Py_VISIT(s->carry);
    Py_VISIT(s->rearm_cb);
    Py_VISIT(s->rec);
    return pu_stream_write_traverse(s, visit, arg);
}

static int
Stream_clear(StreamObject *s)
{
    Py_CLEAR(s->transport);
    Py_CLEAR(s->protocol);
    Py_CLEAR(s->rproto);
    Py_CLEAR(s->carry);
    Py_CLEAR(s->rearm_cb);
    pu_stream_write_clear(s);
    /* the records and their buffers stay: the kernel may still use them */
    return 0;
}

static void
Stream_dealloc(StreamObject *s)
{
    PyObject_GC_UnTrack(s);
    if (s->weakreflist != NULL)
        PyObject_ClearWeakRefs((PyObject *)s);
    Stream_clear(s);
    Py_CLEAR(s->rbuf);   /* the entry held s while the op was in flight */
    Py_CLEAR(s->rec);
    Py_CLEAR(s->wbuf);
    Py_CLEAR(s->wrec);
    Py_CLEAR(s->aring);
    Py_TYPE(s)->tp_free((PyObject *)s);
}

/* room for stream_write.c's, appended by pu_aio_stream_init() */
static PyMethodDef Stream_methods[16] = {
    {"set_protocol", (PyCFunction)Stream_set_protocol, METH_VARARGS, NULL},
    {"resume", (PyCFunction)Stream_resume, METH_NOARGS, NULL},
    {"stop", (PyCFunction)Stream_stop, METH_NOARGS, NULL},
    {"detach", (PyCFunction)Stream_detach, METH_NOARGS, NULL},
};

static PyGetSetDef Stream_getset[16] = {
    {"armed", (getter)Stream_armed, NULL, NULL, NULL},
};

static PyTypeObject StreamType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "py_io_uring._core._UringStream",
    .tp_basicsize = sizeof(StreamObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The read side of py_io_uring's completion transport (private).",
    .tp_new = Stream_new,
    .tp_dealloc = (destructor)Stream_dealloc,
    .tp_traverse = (traverseproc)Stream_traverse,
    .tp_clear = (inquiry)Stream_clear,
    .tp_methods = Stream_methods,
    .tp_getset = Stream_getset,
    .tp_weaklistoffset = offsetof(StreamObject, weakreflist),
};

PyTypeObject *pu_aio_stream_type = &StreamType;

int
pu_aio_stream_init(void)
{
    static const struct {
        PyObject **slot;
        const char *name;
    } names[] = {
        {&S.data_received, "data_received"}, {&S.buffer_updated, "buffer_updated"},
        {&S.get_buffer, "get_buffer"}, {&S.fatal_error, "_fatal_error"},
        {&S.read_eof, "_read_eof"}, {&S.feed, "_feed"},
        {&S.call_exception_handler, "call_exception_handler"},
        {&S.setup_buf_ring, "setup_buf_ring"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (*names[i].slot == NULL &&
            (*names[i].slot = PyUnicode_InternFromString(names[i].name)) == NULL)
            return -1;
    size_t m = 0, g = 0;
    if (S.zero == NULL && (S.zero = PyLong_FromLong(0)) == NULL)
        return -1;
    if (S.bundle == NULL && (S.bundle = PyLong_FromLong(IORING_RECVSEND_BUNDLE)) == NULL)
        return -1;
    if (pu_stream_write_names() < 0)
        return -1;
    while (Stream_methods[m].ml_name != NULL)
        m++;
    for (size_t i = 0; pu_stream_write_methods[i].ml_name != NULL; i++)
        Stream_methods[m++] = pu_stream_write_methods[i];
    while (Stream_getset[g].name != NULL)
        g++;
    for (size_t i = 0; pu_stream_write_getset[i].name != NULL; i++)
        Stream_getset[g++] = pu_stream_write_getset[i];
    return PyType_Ready(&StreamType);
}
