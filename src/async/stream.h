/* async/stream.h: the completion transport's stream (_UringStream),
 * shared by its read side (stream.c) and its write side (stream_write.c). */
#ifndef PU_ASYNC_STREAM_H
#define PU_ASYNC_STREAM_H

#include "async/async_internal.h"

typedef struct {
    PyObject_HEAD
    AsyncRingObject *aring;         /* strong */
    PyObject *transport;            /* strong, until detach() */
    PyObject *protocol;             /* strong: whom bytes go to */
    PyObject *rbuf;                 /* a buffered recv's buffer (strong) */
    PyObject *rproto;               /* the protocol that gave rbuf */
    PyObject *carry;                /* list of what came while stopped:
                                       bytes, b'' for EOF, an exception */
    PyObject *rearm_cb;             /* self._rearm, bound, for call_soon */
    SqeObject *rec;                 /* the armed receive (strong), or NULL */
    int fd;
    uint8_t buffered;               /* the protocol is a BufferedProtocol */
    uint8_t rec_buffered;           /* the armed receive is a single recv */
    uint8_t reading;                /* resumed, not stopped */
    uint8_t cancel_sent;            /* rec was cancelled in the kernel */
    uint8_t rearm_soon;             /* a deferred arming is scheduled */
    uint8_t ended;                  /* EOF or an error came: no more arming */
    uint32_t items;                 /* completions with bytes since arming */
    /* the write side (stream_write.c); the one place its state lives: the
     * Python transport reads it through the getters */
    PyObject *owner;                /* the transport (strong) until release():
                                       detach() ends only the read side, and
                                       close() waits for the queue */
    PyObject *loop;                 /* transport._loop (strong) */
    PyObject *wq;                   /* bytes queued behind the send in
                                       flight (list), or NULL */
    Py_ssize_t wq_size;             /* their bytes */
    SqeObject *wrec;                /* the send in flight (strong), or NULL */
    PyObject *wbuf;                 /* what it sends (strong; the record
                                       pins it for the kernel) */
    Py_ssize_t woff, wlen;          /* bytes of wbuf sent; its length */
    PyObject *empty_waiter;         /* sendfile's waiter (strong), or NULL */
    PyObject *send_queued_cb;       /* self._send_queued, for call_soon */
    Py_ssize_t conn_lost;           /* asyncio's _conn_lost */
    uint8_t eof;                    /* write_eof() was called */
    /* asyncio's flow control is the transport's (Python); these let the
     * write path skip calls whose answer is known: _maybe_pause_protocol()
     * is a no-op at or below the high-water mark (its mirror, -1 until the
     * transport gives it: always called), and _maybe_resume_protocol() and
     * the drained call's resume matter only after a pause may have
     * happened (pause_maybe, cleared when the queue drains) */
    Py_ssize_t high_water;
    uint8_t pause_maybe;
    uint8_t wsoon;                  /* _send_queued is scheduled */
    PyObject *weakreflist;
} StreamObject;

/* stream_write.c */
int pu_stream_write_deliver(StreamObject *s, SqeObject *rec, CqeObject *q);
int pu_stream_write_init(StreamObject *s);
int pu_stream_write_traverse(StreamObject *s, visitproc visit, void *arg);
void pu_stream_write_clear(StreamObject *s);
void pu_stream_write_end(StreamObject *s, SqeObject *rec);
extern PyMethodDef pu_stream_write_methods[];
extern PyGetSetDef pu_stream_write_getset[];
int pu_stream_write_names(void);

#endif
