/* async/async_internal.h: AsyncRing's own declarations, shared by the files
 * of src/async/ and by nothing else.
 *
 *   ring.c       the type: init, binding to the loop, aclose() and closing,
 *                dealloc, the small methods
 *   dispatch.c   the driver: starting an operation, submitting (one flush
 *                per loop iteration), reaping and handing each completion
 *                to its waiter, the value a future gets
 *   fd_future.c  the future subclass whose await closes the fds of a result
 *                its cancelled awaiter will never get
 *   multishot.c  the async iterator over a multishot operation
 *   sock.c       send_all() and the loop.sock_* shapes
 *   recv.c       receives that lose nothing when cancelled: the per-fd
 *                carry-over of bytes a cancelled receive got, settling a
 *                socket's cancelled receives before the next one
 *   links.c      timeout= (a linked IORING_OP_LINK_TIMEOUT), sleep(),
 *                cancel(), cancel_fd()
 *   chain.c      chain(): linked operations in one submission
 *   selector.c   selector mode: the ring of py_io_uring's EventLoop, whose
 *                RingSelector polls live on it too and whose select() is
 *                the one io_uring_enter of the iteration (submit, wait,
 *                reap, dispatch); no eventfd
 *   stream.c     the callback waiter kind (PU_AIO_CALLBACK) and the
 *                completion transport's read path (_UringStream)
 *   stream_write.c  its write path: write(), the direct send(2), the
 *                queue's ring sends (stream.h: the struct both share)
 *   watch.c      _watch(): any op under the callback kind, a Python
 *                callable told of each completion (the loop's multishot
 *                accept)
 *
 * How it works (docs/async.md has the user's view):
 *   - An eventfd registered with the ring is watched with loop.add_reader();
 *     its callback reaps every ready completion and resolves the futures.
 *   - An operation is prepared at once (so bad arguments raise at the call)
 *     into a record of the ring's slot table; the AsyncRing's side table
 *     (below) names the future the caller awaits.  The first operation of a loop iteration
 *     schedules one flush with loop.call_soon(): everything prepared before
 *     it runs goes to the kernel with one io_uring_submit().
 *   - A cancelled future (task.cancel(), wait_for(), timeout()) runs the
 *     done callback bound to its record, which asks the kernel to cancel
 *     the operation by user_data, submitted at once (before the task that
 *     awaited it resumes).  The record, and so every buffer the
 *     kernel may touch, stays in the table until the final completion.  A
 *     result nobody awaits any more is dropped; new fds in it are closed.
 *   - aclose() cancels everything in flight and completes once the table is
 *     empty; only then are the reader removed and the ring torn down.  The
 *     futures of ops it cancelled are cancelled (never an OSError nobody
 *     may retrieve).
 * The runtime underneath (records, reaping, teardown) is the one IoUring
 * uses, so AsyncRing keeps all of its guarantees. */
#ifndef PU_ASYNC_INTERNAL_H
#define PU_ASYNC_INTERNAL_H

#include "async/async.h"
#include "ops/opdef.h"

#define PU_CLOSE_DEADLINE 10.0      /* seconds aclose() waits for the kernel */
#define PU_DRAIN_ROUNDS 8           /* reap rounds per wakeup, so a busy ring
                                       cannot starve the rest of the loop */

typedef struct AsyncRingObject {
    PyObject_HEAD
    RingObject *ring;               /* strong, private */
    PyObject *loop;                 /* the loop bound on first use */
    unsigned long thread;           /* the loop's thread */
    PyObject *call_soon;            /* loop.call_soon */
    PyObject *future_type;          /* asyncio.Future when the loop's
                                       create_future() makes exactly that:
                                       built directly, no method call */
    PyObject *fd_future_type;       /* its subclass for results that own
                                       fds (fd_future.c), or NULL */
    PyObject *carry;                /* {fd: (file id, bytes)}: what cancelled
                                       receives got (recv.c), or NULL */
    PyObject *flush_cb;             /* self._flush as a callable */
    PyObject *ready_cb;             /* self._on_ready as a callable */
    PyObject *close_waiter;         /* aclose()'s future */
    PyObject *close_timer;          /* its deadline's TimerHandle */
    int efd;
    uint8_t flush_scheduled;
    uint8_t reader_added;
    uint8_t closing;
    uint8_t closed;
    uint8_t selector_mode;          /* the loop's own ring (selector.c): its
                                       _select() submits and reaps; no
                                       eventfd, reader or call_soon flush */
    struct pu_aio_selector *sel;    /* the selector's polls (selector.c) */
    uint8_t loop_owned;             /* an event loop's own ring, which
                                       py_io_uring.get_running_ring() shares:
                                       the loop closes it, its users may
                                       not (aclose(), async with); bound to
                                       that loop by _loop_ring(), its thread
                                       set at the first use on it (ring.c) */
    uint8_t stream_bufs;            /* stream.c's buffer ring is set up:
                                       1 whole buffers, 2 incremental */
    PyObject *cb_queue;             /* PU_AIO_CALLBACK completions of the
                                       batch being dispatched: a list of
                                       (waiter, Cqe, final), or NULL */
    unsigned long long submits, completions, ops;
    struct pu_aio_wait *waits;      /* the side table, by record slot */
    uint32_t nwaits;
    PyObject *weakreflist;
} AsyncRingObject;

/* ---------------------------------------------------------------- waiters
 *
 * Who is told of an operation's completion lives in the AsyncRing, not in
 * the record: a side table indexed by the record's slot in the ring's slot
 * table (PU_UD_SLOT of its user_data), grown to the ring's slot count as
 * the ring's table grows.  An entry names its record by the full user_data
 * (slot and generation), so an entry can never be taken for the next
 * occupant of its slot.  It is filled once the op is prepared and emptied
 * at the record's final completion (dispatch.c), or when the ring closes
 * (fail_waiters), is cleared by the GC or deallocated (ring.c), or its
 * iterator goes (multishot.c).  Whoever empties an entry copies it out
 * first and then owns its references: nothing runs Python code with a
 * pointer into the table, which may move when it grows.  The AsyncRing's
 * traverse visits the futures and callbacks; the record knows nothing of
 * them (its traverse, clear and recycling have nothing to account for). */
typedef struct pu_aio_wait {
    __u64 user_data;                /* the record's while in use; 0: free */
    PyObject *waiter;               /* the future (strong), or the multishot
                                       iterator (borrowed, PU_AIO_ITER: it
                                       empties the entry when it goes) */
    PyObject *cb;                   /* the future's done callback (strong),
                                       bound to the record */
    int32_t res;                    /* a first completion's res, kept when
                                       a later one ends the op (send_zc);
                                       a receive's fd (PU_AIO_CARRY) */
    uint16_t flags;                 /* PU_AIO_* */
    __u64 partner;                  /* PU_AIO_LINKED: its link timeout's
                                       user_data; PU_AIO_LTIMEOUT: the op's */
    PyObject *held;                 /* PU_AIO_LTIMEOUT: the op's final Cqe
                                       (strong) when it came before the
                                       timeout's; waiter and cb moved here */
} pu_aio_wait;

/* pu_aio_wait.flags.  What the op's result holds (new fds, a peer address)
 * is the op table's to say: rec->op->async_flags. */
#define PU_AIO_ITER      0x01       /* waiter is a borrowed iterator */
#define PU_AIO_STASHED   0x02       /* res holds the first result */
#define PU_AIO_NONE      0x10       /* the future's result is None */
#define PU_AIO_SOCKET    0x20       /* (socket.socket, address): sock_accept */
#define PU_AIO_SENDALL   0x40       /* data holds (fd, data, flags, offset) */
#define PU_AIO_CARRY     0x80       /* a receive: res holds its fd, the
                                       record's data its buffer (or none);
                                       bytes a cancelled one got go to the
                                       carry-over (recv.c) */
#define PU_AIO_CANCEL_SENT 0x100    /* the kernel was asked to cancel it */
/* timeout= (links.c): the op's SQE is linked to an IORING_OP_LINK_TIMEOUT
 * of its own record; the future completes once both final completions
 * were reaped, whichever comes first */
#define PU_AIO_LINKED    0x200      /* the op's entry: its timeout's end is
                                       still to come */
#define PU_AIO_LTIMEOUT  0x400      /* the link timeout's entry */
#define PU_AIO_TIMED_OUT 0x800      /* the timeout fired: a failed op raises
                                       TimeoutError */
#define PU_AIO_SLEEP     0x1000     /* a timeout's -ETIME is its success */
#define PU_AIO_USER_CANCEL 0x2000   /* AsyncRing.cancel(): -ECANCELED cancels
                                       the future */
#define PU_AIO_CALLBACK  0x4000     /* waiter (strong) is told of every
                                       completion during the reap, no future
                                       (stream.c); cb is NULL */

/* The entry of a live record, or NULL. */
static inline pu_aio_wait *
pu_aio_wait_of(AsyncRingObject *a, const SqeObject *rec)
{
    uint32_t slot = PU_UD_SLOT(rec->user_data);
    if (slot < a->nwaits && a->waits[slot].user_data == rec->user_data)
        return &a->waits[slot];
    return NULL;
}

/* Copy the entry out and free it: the copy's references are the caller's. */
static inline pu_aio_wait
pu_aio_wait_take(pu_aio_wait *w)
{
    pu_aio_wait t = *w;
    memset(w, 0, sizeof(*w));
    return t;
}

/* Does the op's result hold new fds (ops.def `fd`)? */
static inline int
pu_aio_has_fds(const SqeObject *rec)
{
    return rec->op != NULL && (rec->op->async_flags & PU_ASYNC_FD);
}

/* interned method and attribute names (ring.c makes them) */
typedef struct {
    PyObject *create_future, *add_done_callback, *remove_done_callback,
        *set_result, *set_exception, *done, *cancelled, *call_soon, *call_later,
        *add_reader, *remove_reader, *cancel, *is_closed, *fileno, *dropped,
        *exception_attr, *throw;
} pu_aio_names;
extern pu_aio_names pu_aio_s;

static inline PyObject *
call0(PyObject *o, PyObject *name)
{
    return PyObject_CallMethodObjArgs(o, name, NULL);
}

static inline PyObject *
call1(PyObject *o, PyObject *name, PyObject *a)
{
    return PyObject_CallMethodObjArgs(o, name, a, NULL);
}

/* Call and drop the result: 0 or -1. */
static inline int
call1_void(PyObject *o, PyObject *name, PyObject *a)
{
    PyObject *r = call1(o, name, a);
    Py_XDECREF(r);
    return r == NULL ? -1 : 0;
}

static inline int
truth0(PyObject *o, PyObject *name)
{
    PyObject *r = call0(o, name);
    int t;
    if (r == NULL)
        return -1;
    t = PyObject_IsTrue(r);
    Py_DECREF(r);
    return t;
}

/* Report an error from a callback the loop runs without a caller to tell. */
static inline void
unraisable(const char *where)
{
    PyObject *ctx = PyUnicode_FromString(where);
    PyErr_WriteUnraisable(ctx);
    Py_XDECREF(ctx);
}

/* ring.c */
PyObject *pu_aio_new_future(AsyncRingObject *self, int fds);
int pu_aio_check_open_fail(AsyncRingObject *self);
int pu_aio_bind_loop_slow(AsyncRingObject *self);
void pu_aio_finish_close(AsyncRingObject *self);

/* dispatch.c */
extern PyMethodDef pu_aio_flush_def, pu_aio_ready_def, pu_aio_record_done_def;
extern const pu_common_rules pu_aio_rules, pu_aio_iter_rules;
int pu_aio_schedule_flush_now(AsyncRingObject *self);
int pu_aio_check_issuer_slow(AsyncRingObject *self);

/* May this thread submit on the ring (enabling a disabled one)?  0, or -1
 * with RuntimeError. */
static inline int
pu_aio_check_issuer(AsyncRingObject *self)
{
    RingObject *r = self->ring;
    if (r->issuer == 0 ? !r->disabled : r->issuer == pu_thread_token())
        return 0;
    return pu_aio_check_issuer_slow(self);
}
int pu_aio_flush_now(AsyncRingObject *self);
int pu_aio_internal_cancel(AsyncRingObject *self, __u64 target);
int pu_aio_cancel_in_kernel(SqeObject *rec, PyObject *fut);
int pu_aio_wait_reserve(AsyncRingObject *self, SqeObject *rec);
int pu_aio_wait_set(AsyncRingObject *self, SqeObject *rec, PyObject *waiter,
                    uint16_t flags);
void pu_aio_wait_release(pu_aio_wait *taken);
void pu_aio_cancel_future(PyObject *fut);
void pu_aio_flush_orphan_nop(AsyncRingObject *self);
PyObject *pu_aio_start_op(AsyncRingObject *self, const pu_opdef *op,
                          PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                          uint16_t aio, PyObject *data, const pu_common *common,
                          const char *called, int carry_fd);
PyObject *pu_aio_op_named(PyObject *self, const pu_opdef *op, PyObject *const *args,
                          Py_ssize_t nargs, PyObject *kwnames, const char *called);
PyObject *pu_aio_prep(SqeObject *rec, const pu_opdef *op, PyObject *const *args,
                      Py_ssize_t nargs, PyObject *kwnames, const char *called);
PyObject *pu_aio_result_value(SqeObject *rec, CqeObject *q, uint16_t flags);
void pu_aio_drop_result(SqeObject *rec, CqeObject *q);
int pu_aio_process(AsyncRingObject *self);
int pu_aio_process_into(AsyncRingObject *self, PyObject *polls);

/* fd_future.c */
extern PyObject *pu_aio_socket_type;    /* socket.socket, once imported */
PyObject *pu_aio_fd_future_type(PyObject *base);
void pu_aio_close_fd(PyObject *o);
void pu_aio_drop_fds(PyObject *v);
int pu_aio_fd_future_init(void);

/* recv.c */
int pu_aio_settle_cancelled(AsyncRingObject *self, int fd);
void pu_aio_carry_stash(AsyncRingObject *self, SqeObject *rec, CqeObject *q, PyObject *value,
                        int fd);
PyObject *pu_aio_carry_take(AsyncRingObject *self, int fd, Py_ssize_t maxlen);
PyObject *pu_aio_take_partial(AsyncRingObject *self, PyObject *fdobj);
int pu_aio_recv_target(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                       int *fd, PyObject **buf);

/* multishot.c */
void pu_aio_iter_deliver(PyObject *it, SqeObject *rec, CqeObject *q);
void pu_aio_iter_end(PyObject *it);
int pu_aio_iter_init(void);

/* stream.c */
void pu_aio_callback_queue(AsyncRingObject *a, PyObject *cb, CqeObject *q, int final);
void pu_aio_callback_run(AsyncRingObject *a);
void pu_aio_callback_end(PyObject *cb, SqeObject *rec);
void pu_aio_reserve_stream_bgid(AsyncRingObject *a);
int pu_aio_stream_init(void);

/* links.c */
extern PyMethodDef pu_aio_links_methods[];
SqeObject *pu_aio_link_timeout(AsyncRingObject *self, SqeObject *rec, double seconds);
void pu_aio_link_entries(AsyncRingObject *self, SqeObject *rec, SqeObject *t);
int pu_aio_link_completion(AsyncRingObject *self, SqeObject **rec, CqeObject **q,
                           pu_aio_wait *taken);
void pu_aio_timeout_error(const char *name);
int pu_aio_room(AsyncRingObject *self, unsigned n);
void pu_aio_unprepare(AsyncRingObject *self, SqeObject *rec);
int pu_aio_cancel_waiter(AsyncRingObject *self, PyObject *aw);
PyObject *pu_aio_sleep(AsyncRingObject *self, PyObject *seconds);

/* chain.c */
PyObject *pu_aio_chain_new(AsyncRingObject *self, PyObject *timeout);
PyObject *pu_aio_chain_add(PyObject *chain, const pu_opdef *op, PyObject *const *args,
                           Py_ssize_t nargs, PyObject *kwnames);
int pu_aio_chain_init(void);

/* selector.c */
extern PyMethodDef pu_aio_selector_methods[];
int pu_aio_sel_complete(AsyncRingObject *self, PyObject *ready, __u64 ud, int res);
int pu_aio_sel_traverse(AsyncRingObject *self, visitproc visit, void *arg);
void pu_aio_sel_clear(AsyncRingObject *self);
void pu_aio_sel_free(AsyncRingObject *self);

/* watch.c */
extern PyMethodDef pu_aio_watch_methods[];

/* sock.c */
extern PyMethodDef pu_aio_sock_methods[];
int pu_aio_continue_send_all(AsyncRingObject *self, SqeObject *rec, CqeObject *q,
                             PyObject *fut, SqeObject **next);

/* The checks and steps every operation makes, inline (they were one file's
 * statics before the split); the rest of each is out of line. */
static inline int
pu_aio_check_open(AsyncRingObject *self)
{
    return (self->closing || self->closed) ? pu_aio_check_open_fail(self) : 0;
}

/* Bound, and this loop iteration checked (a pending flush says so), from
 * the loop's thread: nothing more to ask. */
static inline int
pu_aio_bind_loop(AsyncRingObject *self)
{
    if (self->loop != NULL && self->flush_scheduled &&
        PyThread_get_thread_ident() == self->thread)
        return 0;
    return pu_aio_bind_loop_slow(self);
}

static inline int
pu_aio_schedule_flush(AsyncRingObject *self)
{
    return self->flush_scheduled ? 0 : pu_aio_schedule_flush_now(self);
}

/* A record for the next SQE; a full SQ is flushed first.
 *
 * The reap frees a record's slot at its final completion, before the batch
 * is dispatched; an op started while it is (a send_all's next send, a
 * multishot re-armed, a transport's callback) may get the slot of a
 * completion still to be told, whose side-table entry it would take.  Such
 * a slot is passed over: its fresh entry goes to the kernel as the NOP it
 * is (no taker: its completion is dropped), which keeps the slot busy
 * until the batch is done, and the next entry is taken. */
static inline SqeObject *
pu_aio_new_record(AsyncRingObject *self)
{
    for (;;) {
        SqeObject *rec;
        uint32_t slot;

        if (io_uring_sq_space_left(&self->ring->ring) == 0 && pu_aio_flush_now(self) < 0)
            return NULL;
        rec = pu_ring_get_sqe(self->ring);
        if (rec == NULL)
            return NULL;
        slot = PU_UD_SLOT(rec->user_data);
        if (slot >= self->nwaits || self->waits[slot].user_data == 0)
            return rec;
        Py_DECREF(rec);
    }
}

#endif
