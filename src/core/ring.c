/* ring.c: the IoUring type: setup, the submission side, waiting and the
 * queue of reaped completions not yet marked seen. */
#include "register/register.h"
#include "core/reap_sink.h"
#include "methods_doc.h"

#include <errno.h>
#include <math.h>

/* Which opcodes this kernel has, asked once: a prep of a missing op then
 * fails with a clear error instead of a -EINVAL completion. */
static void
probe_opcodes(RingObject *r)
{
    struct io_uring_probe *p = io_uring_get_probe_ring(&r->ring);

    memset(r->supported, 0, sizeof(r->supported));
    if (p == NULL) {   /* before 5.6 there is no probe: assume all */
        memset(r->supported, 0xff, sizeof(r->supported));
        return;
    }
    for (int op = 0; op <= p->last_op && op < 256; op++) {
        if (io_uring_opcode_supported(p, op))
            r->supported[op / 8] |= (uint8_t)(1u << (op % 8));
    }
    io_uring_free_probe(p);
}

static int
ring_setup(RingObject *r, long long entries, struct io_uring_params *p)
{
    int ret;
    unsigned flags = p->flags;

    if (r->initialised) {
        PyErr_SetString(PyExc_ValueError, "IoUring is already initialised");
        return -1;
    }
    if (entries < 1 || entries > UINT32_MAX) {
        pu_err_setup(EINVAL);
        return -1;
    }
    ret = io_uring_queue_init_params((unsigned)entries, &r->ring, p);
    if (ret < 0) {
        pu_err_setup(-ret);
        return -1;
    }
    /* a forked child must not write into the parent's rings */
    (void)io_uring_ring_dontfork(&r->ring);
    r->features = r->ring.features;
    r->setup_flags = flags;
    r->sq_entries = *r->ring.sq.kring_entries;
    r->pending = PyMem_Malloc(r->sq_entries * sizeof(*r->pending));
    r->npending = 0;
    r->nrecords = 0;
    r->nhidden = 0;
    r->cq_start = r->cq_end = 0;
    if (r->pending == NULL || pu_ring_table_grow(r) < 0) {
        if (r->pending == NULL)
            PyErr_NoMemory();
        PyMem_Free(r->pending);
        r->pending = NULL;
        io_uring_queue_exit(&r->ring);
        return -1;
    }
    probe_opcodes(r);
    r->fork_generation = pu_fork_generation;
    r->life++;
    r->initialised = 1;
    return 0;
}

/* queue_init()'s arguments: the seed's (entries, flags) and, by keyword,
 * the rest of struct io_uring_params. */
static const char *const init_kw[] = {"entries", "flags", "sq_thread_idle",
                                      "sq_thread_cpu", "cq_entries", "wq_fd",
                                      NULL};
static const pu_argspec init_spec = {"queue_init", init_kw, 1, 6, 4};

static int
parse_init(const pu_argspec *sp, PyObject *const *args, Py_ssize_t nargs,
           PyObject *kwnames, long long *entries, struct io_uring_params *p)
{
    PyObject *argv[6];
    int cpu, wq;

    memset(p, 0, sizeof(*p));
    if (pu_parse_args(sp, args, nargs, kwnames, argv) < 0)
        return -1;
    *entries = PyLong_AsLongLong(argv[0]);
    if (*entries == -1 && PyErr_Occurred())
        return -1;
    if ((argv[1] && pu_conv_u32(sp, 1, argv[1], &p->flags) < 0) ||
        (argv[2] && pu_conv_u32(sp, 2, argv[2], &p->sq_thread_idle) < 0) ||
        (argv[4] && pu_conv_u32(sp, 4, argv[4], &p->cq_entries) < 0))
        return -1;
    if (argv[3] != NULL && argv[3] != Py_None) {
        if (pu_conv_i32(sp, 3, argv[3], &cpu) < 0)
            return -1;
        p->sq_thread_cpu = (unsigned)cpu;
        p->flags |= IORING_SETUP_SQ_AFF;
    }
    if (argv[4] != NULL && p->cq_entries)
        p->flags |= IORING_SETUP_CQSIZE;
    if (argv[5] != NULL && argv[5] != Py_None) {
        if (pu_conv_fd(sp, 5, argv[5], &wq) < 0)
            return -1;
        p->wq_fd = (unsigned)wq;
        p->flags |= IORING_SETUP_ATTACH_WQ;
    }
    return 0;
}

static const pu_argspec new_spec = {"IoUring", init_kw, 0, 6, 4};

static int
Ring_init(RingObject *self, PyObject *args, PyObject *kwds)
{
    PyObject *stack[6], *names = NULL, *key, *value, *entries;
    Py_ssize_t n = PyTuple_GET_SIZE(args), pos = 0, k = 0;
    Py_ssize_t nkw = kwds != NULL ? PyDict_GET_SIZE(kwds) : 0;
    struct io_uring_params p;
    long long count;
    int ret;

    if (n + nkw > 6) {
        PyErr_SetString(PyExc_TypeError, "IoUring() takes at most 6 arguments");
        return -1;
    }
    /* IoUring() or IoUring(None): initialise later with queue_init() */
    entries = n > 0 ? PyTuple_GET_ITEM(args, 0)
                    : (kwds != NULL ? PyDict_GetItemString(kwds, "entries") : NULL);
    if (entries == NULL || entries == Py_None) {
        if (n + nkw > (entries != NULL ? 1 : 0)) {
            PyErr_SetString(PyExc_TypeError,
                            "IoUring(): setup arguments need entries");
            return -1;
        }
        return 0;
    }
    for (Py_ssize_t i = 0; i < n; i++)
        stack[i] = PyTuple_GET_ITEM(args, i);
    if (nkw > 0) {
        names = PyTuple_New(nkw);
        if (names == NULL)
            return -1;
        while (PyDict_Next(kwds, &pos, &key, &value)) {
            Py_INCREF(key);
            PyTuple_SET_ITEM(names, k, key);
            stack[n + k++] = value;
        }
    }
    ret = parse_init(&new_spec, stack, n, names, &count, &p);
    Py_XDECREF(names);
    if (ret < 0)
        return -1;
    return ring_setup(self, count, &p);
}

static PyObject *
Ring_queue_init(RingObject *self, PyObject *const *args, Py_ssize_t nargs,
                PyObject *kwnames)
{
    struct io_uring_params p;
    long long entries;

    if (parse_init(&init_spec, args, nargs, kwnames, &entries, &p) < 0 ||
        ring_setup(self, entries, &p) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* queue_exit() and the context manager: cancel, drain, release, unmap.
 * Never under a call that is using the ring: from a signal handler or a
 * finalizer that runs inside one of this ring's calls, the teardown is
 * deferred until that call returns (the ring refuses everything
 * meanwhile); while another thread waits or submits in the kernel it is
 * refused. */
static PyObject *
Ring_queue_exit(RingObject *self, PyObject *Py_UNUSED(ignored))
{
    unsigned long me = PyThread_get_thread_ident();

    if (self->owner != NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "queue_exit(): this IoUring is driven by an AsyncRing: "
                        "close the AsyncRing instead (await aclose())");
        return NULL;
    }
    if ((self->sq_owner != 0 && self->sq_owner != me) ||
        (self->cq_owner != 0 && self->cq_owner != me)) {
        PyErr_SetString(PyExc_RuntimeError,
                        "queue_exit(): another thread is using this IoUring "
                        "(submitting, waiting or reaping): stop it first");
        return NULL;
    }
    if (self->ncalls > 0) {
        if (self->initialised)
            self->closing |= PU_CLOSING_DEFERRED;
        Py_RETURN_NONE;
    }
    pu_ring_teardown(self);
    if (PyErr_Occurred())
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
Ring_get_sqe(RingObject *self, PyObject *Py_UNUSED(ignored))
{
    return (PyObject *)pu_ring_get_sqe(self);
}

/* A new record on the next SQE, as a NOP; a new reference. */
SqeObject *
pu_ring_get_sqe(RingObject *self)
{
    struct io_uring_sqe *sqe;
    SqeObject *rec;

    if (pu_ring_check_sq(self) < 0)
        return NULL;
    if (io_uring_sq_space_left(&self->ring) == 0) {
        PyErr_SetString(pu_SubmissionQueueFull,
                        "the submission queue is full: call submit() and "
                        "try again");
        return NULL;
    }
    rec = pu_record_new(self);
    if (rec == NULL)
        return NULL;
    sqe = io_uring_get_sqe(&self->ring);
    /* an entry nobody prepares still completes, harmlessly, as a NOP */
    pu_sqe_reset(self, sqe, rec->user_data);
    rec->sqe = sqe;
    self->pending[self->npending++] = rec;
    Py_INCREF(rec);   /* the caller's; the table keeps its own */
    return rec;
}

/* Give back the entry pu_ring_get_sqe() just handed out, unsubmitted, with
 * its record: 1 when done, 0 when something took an entry after it (code a
 * converter ran), which leaves it in the queue as the harmless NOP it is. */
int
pu_ring_unget_sqe(RingObject *self, SqeObject *rec)
{
    struct io_uring_sq *sq = &self->ring.sq;
    unsigned shift = (self->ring.flags & IORING_SETUP_SQE128) ? 1 : 0;

    if (self->npending == 0 || self->pending[self->npending - 1] != rec ||
        sq->sqe_tail == sq->sqe_head ||
        rec->sqe != &sq->sqes[((sq->sqe_tail - 1) & sq->ring_mask) << shift])
        return 0;
    self->npending--;
    self->ring.sq.sqe_tail--;   /* never flushed, so the kernel never saw it */
    pu_record_finish(self, rec);
    pu_record_release(rec);
    Py_DECREF(rec);             /* the table's reference */
    return 1;
}

/* Does the link chain starting at pending[i] hold an IOSQE_IO_HARDLINK? */
static int
chain_has_hardlink(RingObject *r, unsigned i)
{
    for (; i < r->npending && r->pending[i]->sqe != NULL; i++) {
        uint8_t f = r->pending[i]->sqe->flags;
        if (f & IOSQE_IO_HARDLINK)
            return 1;
        if (!(f & IOSQE_IO_LINK))
            break;
    }
    return 0;
}

/* The least result with which a linked entry does not fail its chain:
 * the kernel fails a link on a transfer shorter than asked for these ops
 * (io_uring/rw.c compares the result with the request's byte count;
 * net.c with it under MSG_WAITALL; splice.c with the length).  0 where a
 * short result is no failure, or where the count is not known here (a
 * buffer the kernel picks): there a short result is taken as success,
 * which can only leave a record waiting for its completion (and teardown
 * to cancel it), never end one whose completion is still to come. */
static uint32_t
iov_total(const struct iovec *iov, size_t n)
{
    unsigned long long t = 0;
    for (size_t i = 0; i < n; i++)
        t += iov[i].iov_len;
    return t > UINT32_MAX ? UINT32_MAX : (uint32_t)t;
}

static uint32_t
chain_min(const SqeObject *rec, const struct io_uring_sqe *sqe)
{
    /* pointers in the entry are read only where its op's converters made
     * them (not in the fuzz build's raw entries, whose op is another) */
    int own = rec->op != NULL && rec->op->opcode == sqe->opcode;
    const struct msghdr *msg;

    if (sqe->flags & IOSQE_BUFFER_SELECT)
        return 0;
    switch (sqe->opcode) {
    case IORING_OP_READ:
    case IORING_OP_WRITE:
    case IORING_OP_READ_FIXED:
    case IORING_OP_WRITE_FIXED:
    case IORING_OP_SPLICE:
    case IORING_OP_TEE:
        return sqe->len;
    case IORING_OP_READV:
    case IORING_OP_WRITEV:
        if (!own)
            return 0;
        return iov_total((const struct iovec *)(uintptr_t)sqe->addr, sqe->len);
    case IORING_OP_SEND:
    case IORING_OP_RECV:
    case IORING_OP_SEND_ZC:
        return (sqe->msg_flags & MSG_WAITALL) ? sqe->len : 0;
    case IORING_OP_SENDMSG:
    case IORING_OP_RECVMSG:
    case IORING_OP_SENDMSG_ZC:
        msg = (const struct msghdr *)(uintptr_t)sqe->addr;
        if (!(sqe->msg_flags & MSG_WAITALL) || msg == NULL || !own)
            return 0;
        return iov_total(msg->msg_iov, msg->msg_iovlen);
    default:
        return 0;
    }
}

/* Before the flush: IOSQE_CQE_SKIP_SUCCESS is kept only where a linked
 * successor's completion will prove the entry done, and never in a chain
 * that holds an IOSQE_IO_HARDLINK.  There, when an entry fails as it is
 * submitted (its prep's -EINVAL), the kernel fails the whole chain as if
 * it were IOSQE_IO_LINK, and a head with CQE_SKIP_SUCCESS silences every
 * completion after its own; when a hard-linked entry fails as it runs, the
 * rest runs and completes.  No completion tells the two apart, so in such a
 * chain every entry posts its own.
 *
 * Nor is it kept on an entry whose short transfer fails the chain
 * (chain_min() > 0): the kernel would then silence the rest of the chain
 * on a result >= 0, and ending their records would rest on knowing
 * exactly which results the kernel counts as short.  The entry posts its
 * completion instead, and the reap hides it when the transfer was whole
 * (hide_success), so the user sees what the flag promises; when it was
 * short, the rest of the chain posts its -ECANCELED completions and every
 * record ends by a completion of its own. */
static void
prepare_chains(RingObject *r)
{
    int in_chain = 0;   /* the previous entry links to this one */
    int hard = -1;      /* the current chain holds a hard link (-1: not
                           looked at yet, as most entries need not) */
    unsigned start = 0; /* where the current chain starts */

    for (unsigned i = 0; i < r->npending; i++) {
        SqeObject *rec = r->pending[i];
        struct io_uring_sqe *sqe = rec->sqe;
        int linked;
        if (sqe == NULL) {
            in_chain = 0;
            continue;
        }
        rec->flushed_flags = sqe->flags;
        if (!(sqe->flags & (IOSQE_IO_LINK | IOSQE_IO_HARDLINK | IOSQE_CQE_SKIP_SUCCESS))) {
            in_chain = 0;   /* the usual entry: no chain starts or goes on */
            continue;
        }
        if (!in_chain) {
            hard = -1;
            start = i;
        }
        linked = (sqe->flags & (IOSQE_IO_LINK | IOSQE_IO_HARDLINK)) && i + 1 < r->npending;
        if (linked) {
            rec->chain_next = r->pending[i + 1]->user_data;
            rec->chain_min = chain_min(rec, sqe);
        }
        if (sqe->flags & IOSQE_CQE_SKIP_SUCCESS) {
            if (linked && hard < 0)
                hard = chain_has_hardlink(r, start);
            if (linked && !hard && rec->chain_min == 0) {
                r->pending[i + 1]->chain_prev = rec->user_data;
            } else {
                sqe->flags &= (uint8_t)~IOSQE_CQE_SKIP_SUCCESS;
                rec->hide_success = linked && !hard;
                r->nhidden += rec->hide_success;
            }
        }
        rec->flushed_flags = sqe->flags;
        in_chain = linked;
    }
}

/* Entries about to be flushed to the kernel are no longer ours to write.
 * Called before the GIL is released for the submit: from then on another
 * thread may reap their completions and free their records, so the
 * submitting thread must not touch them again (pending[] holds borrowed
 * pointers). */
static void
mark_submitted(RingObject *r)
{
    for (unsigned i = 0; i < r->npending; i++) {
        SqeObject *rec = r->pending[i];
        rec->state = PU_SUBMITTED;
        rec->sqe = NULL;
    }
    r->npending = 0;
}

static PyObject *
ring_submit(RingObject *r, unsigned wait_nr)
{
    int ret;

    pu_call_enter(r);
    ret = pu_ring_flush(r, wait_nr);
    return pu_call_return(r, ret < 0 ? NULL : PyLong_FromLong(ret));
}

/* May a submit alone leave completions in the CQ, so that a wait after it
 * can be skipped?  A NOP, a read from the page cache, a send with room in
 * the socket buffer all complete inside the submit; then the wait's own
 * path in the kernel (the GETEVENTS half of io_uring_enter) is pure cost,
 * ~15% of a one-NOP round trip.  Not with DEFER_TASKRUN (completions are
 * posted only by the waiting call), IOPOLL (only that call polls) or
 * SQPOLL (the kernel thread submits): there the one combined call stays.
 * When a submit alone fell short (disk or network I/O still in flight)
 * the next PU_WAIT_COMBINED waits go back to the combined call, so such
 * a loop pays the second system call once in that many waits. */
#define PU_WAIT_COMBINED 64

static int
submit_may_complete(RingObject *r)
{
    if (r->wait_combined > 0) {
        r->wait_combined--;
        return 0;
    }
    return io_uring_sq_ready(&r->ring) > 0 &&
           !(r->ring.flags & (IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_IOPOLL |
                              IORING_SETUP_SQPOLL));
}

/* Is this the interpreter's only thread?  Then nothing but this thread
 * (or another process) can submit on the ring while it waits. */
static int
only_thread(void)
{
    PyThreadState *ts = PyThreadState_Get();
#if PY_VERSION_HEX >= 0x03090000
    PyInterpreterState *interp = PyThreadState_GetInterpreter(ts);
#else
    PyInterpreterState *interp = ts->interp;
#endif
    PyThreadState *head = PyInterpreterState_ThreadHead(interp);
    return head != NULL && PyThreadState_Next(head) == NULL;
}

/* A signal handler raised during a wait (Ctrl-C: KeyboardInterrupt).  When
 * nothing of this ring was in flight, only another thread's submit or a
 * message from another ring could have ended the wait: say so on the
 * exception, as a note (3.11 and later). */
static void
note_idle_wait(RingObject *r)
{
#if PY_VERSION_HEX >= 0x030B0000
    const char *note;
    PyObject *value, *ret;

    if (!PU_RING_USABLE(r) || r->nrecords - (Py_ssize_t)r->npending > 0)
        return;
    note = r->npending > 0
        ? "py_io_uring: the wait had no operation of this IoUring in flight: "
          "entries were prepared but not submitted (call submit())"
        : "py_io_uring: the wait had no operation of this IoUring in flight: "
          "only another thread's submit or a msg_ring from another ring "
          "could have ended it";
    value = pu_exc_take();
    if (value == NULL)
        return;
    ret = PyObject_CallMethod(value, "add_note", "s", note);
    if (ret == NULL)
        PyErr_Clear();
    Py_XDECREF(ret);
    pu_exc_give(value);
#else
    (void)r;
#endif
}

/* After signal handlers ran (PyErr_CheckSignals() passed) inside a call:
 * they may have closed the ring (queue_exit() is then deferred and the
 * ring refuses everything) or forked.  0 when the call may go on. */
static int
still_usable(RingObject *r)
{
    return pu_ring_check(r);
}

/* A submission the kernel refused: OSError from errno, with what it means
 * where the errno alone would mislead. */
static void
submit_error(RingObject *r, int err)
{
    if (err == EEXIST && (r->setup_flags & IORING_SETUP_SINGLE_ISSUER)) {
        pu_err_errno_msg(err, "this IoUring was set up with "
                         "IORING_SETUP_SINGLE_ISSUER: only the thread that "
                         "first submitted on it may submit");
        return;
    }
    pu_err_errno(err);
}

/* submit() and submit_and_wait(): the number submitted, or -1 with an
 * exception set.  With wait_nr > 0 it blocks, as liburing does, until that
 * many completions are there, even with nothing of this ring in flight
 * (another thread may submit, another ring may send a message); a signal
 * interrupts it (the entries went in; Ctrl-C raises KeyboardInterrupt and
 * leaves the ring usable). */
int
pu_ring_flush(RingObject *r, unsigned wait_nr)
{
    int ret, total = 0;

    if (pu_ring_check_sq(r) < 0 || (wait_nr && pu_ring_check_cq(r) < 0))
        return -1;
    prepare_chains(r);
    /* before the GIL goes: see mark_submitted() */
    mark_submitted(r);
    for (;;) {
        int split = wait_nr > 0 && submit_may_complete(r), fell_short = 0;
        unsigned long sq_prev, cq_prev = 0;

        sq_prev = pu_side_take(&r->sq_owner);
        if (wait_nr > 0)
            cq_prev = pu_side_take(&r->cq_owner);
        Py_BEGIN_ALLOW_THREADS
        if (split) {
            /* As C does with io_uring_submit() and io_uring_wait_cqe():
             * submit alone, and enter again to wait only when the
             * completions are not there yet. */
            ret = io_uring_submit(&r->ring);
            if (ret >= 0 && io_uring_cq_ready(&r->ring) < wait_nr) {
                int more = io_uring_submit_and_wait(&r->ring, wait_nr);
                fell_short = 1;
                if (more < 0 && ret > 0)
                    total += ret;   /* those went in; report the error */
                ret = more < 0 ? more : ret + more;
            }
        } else {
            ret = wait_nr ? io_uring_submit_and_wait(&r->ring, wait_nr)
                          : io_uring_submit(&r->ring);
        }
        Py_END_ALLOW_THREADS
        if (wait_nr > 0)
            pu_side_put(&r->cq_owner, cq_prev);
        pu_side_put(&r->sq_owner, sq_prev);
        if (fell_short)
            r->wait_combined = PU_WAIT_COMBINED;
        if (ret == -EINTR) {
            if (PyErr_CheckSignals() < 0) {
                if (wait_nr > 0)
                    note_idle_wait(r);
                return -1;
            }
            if (still_usable(r) < 0)
                return -1;
            wait_nr = 0;   /* the entries went in; the caller may wait again */
            continue;
        }
        if (ret < 0)
            break;
        total += ret;
        /* The kernel stops at an entry that fails as it is submitted (an
         * unknown personality, say): it posts that entry's completion and
         * leaves the rest in the SQ, without waiting.  Every record is
         * marked submitted, and a wait would never see the rest complete:
         * submit them too, as the caller asked.  Each round consumes at
         * least the failing entry.  (With SQPOLL the kernel thread takes
         * them.) */
        if (ret == 0 || (r->ring.flags & IORING_SETUP_SQPOLL) ||
            IO_URING_READ_ONCE(*r->ring.sq.khead) == *r->ring.sq.ktail)
            break;
    }
    if (ret < 0 && total == 0) {
        submit_error(r, -ret);
        return -1;
    }
    return total;
}

static PyObject *
Ring_submit(RingObject *self, PyObject *Py_UNUSED(ignored))
{
    return ring_submit(self, 0);
}

static PyObject *
Ring_submit_and_wait(RingObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    long n = 1;
    if (nargs > 1) {
        PyErr_SetString(PyExc_TypeError, "submit_and_wait() takes at most 1 argument");
        return NULL;
    }
    if (nargs == 1) {
        n = PyLong_AsLong(args[0]);
        if (n == -1 && PyErr_Occurred())
            return NULL;
        if (n < 0) {
            PyErr_SetString(PyExc_ValueError,
                            "submit_and_wait(): wait_nr must be >= 0");
            return NULL;
        }
        if (n > INT32_MAX) {
            PyErr_SetString(PyExc_OverflowError,
                            "submit_and_wait(): wait_nr must be at most 2**31-1");
            return NULL;
        }
    }
    return ring_submit(self, (unsigned)n);
}

static int
parse_timeout(PyObject *o, double *deadline)
{
    double t;
    *deadline = -1.0;
    if (o == NULL || o == Py_None)
        return 0;
    t = PyFloat_AsDouble(o);
    if (t == -1.0 && PyErr_Occurred())
        return -1;
    if (!(t >= 0.0) || isinf(t)) {
        PyErr_SetString(PyExc_ValueError, "timeout must be a finite number >= 0 or None");
        return -1;
    }
    *deadline = pu_monotonic() + t;
    return 0;
}

/* Wait until `want` completions are reaped and unseen.  Returns 1 when
 * they are, 0 when the deadline passed first, -1 with an exception.
 *
 * It blocks as liburing does, also with nothing of this ring in flight:
 * another thread may submit, another ring may post a message.  Only where
 * the wait is certainly a mistake, entries prepared and never submitted
 * with nothing in flight and no other thread in the interpreter, it raises
 * at once; elsewhere a Ctrl-C says so on its KeyboardInterrupt. */
static int
ring_wait_full(RingObject *r, Py_ssize_t want, double deadline, int in_kernel_cq)
{
    for (;;) {
        struct io_uring_cqe *c;
        struct __kernel_timespec ts;
        Py_ssize_t need;
        unsigned long sq_prev = 0, cq_prev;
        int ret, touch_sq;

        if (PU_CQ_LEN(r) >= want)
            return 1;
        if (in_kernel_cq && r->nhidden == 0) {
            /* reap() takes them from the kernel's CQ itself: count them
             * there instead of moving them into Cqe objects, unless the CQ
             * is full or overflowed: then only moving them makes room (or
             * some may be successes nobody is shown: hide_success) */
            unsigned ready = io_uring_cq_ready(&r->ring);
            if (PU_CQ_LEN(r) + (Py_ssize_t)ready >= want)
                return 1;
            if ((ready > 0 && ready >= *r->ring.cq.kring_entries) ||
                (IO_URING_READ_ONCE(*r->ring.sq.kflags) & IORING_SQ_CQ_OVERFLOW)) {
                if (pu_reap(r) < 0)
                    return -1;
            }
        } else if (pu_reap(r) < 0) {
            return -1;
        }
        if (PU_CQ_LEN(r) >= want)
            return 1;
        /* code run by the reap (a finalizer) may have closed the ring */
        if (still_usable(r) < 0)
            return -1;
        if (r->nrecords == (Py_ssize_t)r->npending && r->npending > 0 &&
            deadline < 0 && only_thread()) {
            PyErr_Format(PyExc_RuntimeError,
                         "waiting would block forever: %zd more completion(s) "
                         "wanted, no operation is in flight and %u entr%s "
                         "prepared but not submitted: call submit() first, "
                         "or submit_and_wait()",
                         want - PU_CQ_LEN(r), r->npending,
                         r->npending == 1 ? "y is" : "ies are");
            return -1;
        }
        need = want - PU_CQ_LEN(r);
        if (need > (Py_ssize_t)*r->ring.cq.kring_entries)
            need = *r->ring.cq.kring_entries;
        if (deadline >= 0) {
            double left = deadline - pu_monotonic();
            if (left <= 0)
                return 0;
            ts.tv_sec = (long long)left;
            ts.tv_nsec = (long long)((left - (double)ts.tv_sec) * 1e9);
        }
        /* without IORING_FEAT_EXT_ARG liburing queues a timeout SQE, and
         * submits what is queued with it */
        touch_sq = deadline >= 0 && !(r->features & IORING_FEAT_EXT_ARG);
        if (touch_sq) {
            if (pu_ring_check_sq(r) < 0)
                return -1;
            prepare_chains(r);
            mark_submitted(r);
            sq_prev = pu_side_take(&r->sq_owner);
        }
        cq_prev = pu_side_take(&r->cq_owner);
        Py_BEGIN_ALLOW_THREADS
        if (deadline >= 0)
            ret = io_uring_wait_cqes(&r->ring, &c, (unsigned)need, &ts, NULL);
        else
            ret = io_uring_wait_cqe_nr(&r->ring, &c, (unsigned)need);
        Py_END_ALLOW_THREADS
        pu_side_put(&r->cq_owner, cq_prev);
        if (touch_sq)
            pu_side_put(&r->sq_owner, sq_prev);
        if (ret == -EINTR) {
            /* run the handlers (Ctrl-C raises here); nothing was consumed */
            if (PyErr_CheckSignals() < 0) {
                note_idle_wait(r);
                return -1;
            }
            if (still_usable(r) < 0)
                return -1;
            continue;
        }
        if (ret < 0 && ret != -ETIME && ret != -EAGAIN) {
            pu_err_errno(-ret);
            return -1;
        }
    }
}

static int
ring_wait(RingObject *r, Py_ssize_t want, double deadline)
{
    return ring_wait_full(r, want, deadline, 0);
}

/* A list of the (up to) n oldest unseen Cqe, not marked seen.  The list's
 * allocation may run the GC and finalizers: they find the queue busy. */
static PyObject *
cq_list(RingObject *self, Py_ssize_t n)
{
    Py_ssize_t got = PU_CQ_LEN(self) < n ? PU_CQ_LEN(self) : n;
    PyObject *list;

    unsigned long held = pu_side_take(&self->cq_owner);
    list = PyList_New(got);
    pu_side_put(&self->cq_owner, held);
    if (list == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < got; i++) {
        PyObject *q = (PyObject *)self->cq[self->cq_start + i];
        Py_INCREF(q);
        PyList_SET_ITEM(list, i, q);
    }
    return list;
}

static const char *const wait_kw[] = {"timeout", NULL};
static const pu_argspec wait_cqe_spec = {"wait_cqe", wait_kw, 0, 1, 0};
static const char *const wait_nr_kw[] = {"wait_nr", "timeout", NULL};
static const pu_argspec wait_nr_spec = {"wait_cqe_nr", wait_nr_kw, 1, 2, 0};

static PyObject *
Ring_wait_cqe(RingObject *self, PyObject *const *args, Py_ssize_t nargs,
              PyObject *kwnames)
{
    PyObject *argv[1], *q;
    double deadline;
    int ret;

    if (pu_parse_args(&wait_cqe_spec, args, nargs, kwnames, argv) < 0 ||
        parse_timeout(argv[0], &deadline) < 0 || pu_ring_check_cq(self) < 0)
        return NULL;
    pu_call_enter(self);
    ret = ring_wait(self, 1, deadline);
    if (ret < 0)
        q = NULL;
    else if (ret == 0)
        q = Py_None;
    else
        q = (PyObject *)self->cq[self->cq_start];
    Py_XINCREF(q);
    return pu_call_return(self, q);
}

static PyObject *
Ring_wait_cqe_nr(RingObject *self, PyObject *const *args, Py_ssize_t nargs,
                 PyObject *kwnames)
{
    PyObject *argv[2];
    double deadline;
    long n;

    if (pu_parse_args(&wait_nr_spec, args, nargs, kwnames, argv) < 0)
        return NULL;
    n = PyLong_AsLong(argv[0]);
    if (n == -1 && PyErr_Occurred())
        return NULL;
    if (n < 0) {
        PyErr_SetString(PyExc_ValueError, "wait_nr must be >= 0");
        return NULL;
    }
    if (parse_timeout(argv[1], &deadline) < 0 || pu_ring_check_cq(self) < 0)
        return NULL;
    pu_call_enter(self);
    if (n > 0 && ring_wait(self, n, deadline) < 0)
        return pu_call_return(self, NULL);
    return pu_call_return(self, cq_list(self, n));
}

static PyObject *
Ring_peek_cqe(RingObject *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *q;

    if (pu_ring_check_cq(self) < 0)
        return NULL;
    pu_call_enter(self);
    if (PU_CQ_LEN(self) == 0 && pu_reap(self) < 0)
        q = NULL;
    else if (PU_CQ_LEN(self) == 0)
        q = Py_None;
    else
        q = (PyObject *)self->cq[self->cq_start];
    Py_XINCREF(q);
    return pu_call_return(self, q);
}

static PyObject *
Ring_cqe_seen(RingObject *self, PyObject *arg)
{
    CqeObject *q;

    if (!PyObject_TypeCheck(arg, &pu_CqeType)) {
        PyErr_Format(PyExc_TypeError, "cqe_seen() argument must be a Cqe, not %.100s",
                     Py_TYPE(arg)->tp_name);
        return NULL;
    }
    if (pu_ring_check(self) < 0)
        return NULL;
    q = (CqeObject *)arg;
    if (self->cq_end > self->cq_start && self->cq[self->cq_start] == q) {
        self->cq_start++;   /* the usual case: the oldest completion */
        Py_DECREF(q);
        Py_RETURN_NONE;
    }
    for (Py_ssize_t i = self->cq_start; i < self->cq_end; i++) {
        if (self->cq[i] == q) {
            memmove(self->cq + i, self->cq + i + 1,
                    (size_t)(self->cq_end - i - 1) * sizeof(*self->cq));
            self->cq_end--;
            Py_DECREF(q);
            Py_RETURN_NONE;
        }
    }
    if (q->ring_id != self) {
        PyErr_SetString(PyExc_ValueError,
                        "cqe_seen(): this Cqe belongs to another IoUring");
        return NULL;
    }
    Py_RETURN_NONE;   /* already seen */
}

/* ---- batch reaping: peek_batch_cqe() and cq_advance() ---- */

static int
batch_count(PyObject *arg, const char *what, Py_ssize_t *out)
{
    Py_ssize_t n = PyLong_AsSsize_t(arg);
    if (n == -1 && PyErr_Occurred())
        return -1;
    if (n < 0) {
        PyErr_Format(PyExc_ValueError, "%s must be >= 0", what);
        return -1;
    }
    *out = n;
    return 0;
}

/* Mark the n oldest unseen completions seen (n <= PU_CQ_LEN). */
static int
cq_take(RingObject *self, Py_ssize_t n)
{
    CqeObject *local[64], **taken = local;

    if (n == 0)
        return 0;   /* (the queue may not exist yet: no memcpy from NULL) */
    if (n > (Py_ssize_t)(sizeof(local) / sizeof(local[0]))) {
        taken = PyMem_Malloc((size_t)n * sizeof(*taken));
        if (taken == NULL) {
            PyErr_NoMemory();
            return -1;
        }
    }
    /* take them all out of the queue first: a release below may run code
     * (a finalizer of some user data) that uses this ring */
    memcpy(taken, self->cq + self->cq_start, (size_t)n * sizeof(*taken));
    self->cq_start += n;
    for (Py_ssize_t i = 0; i < n; i++)
        Py_DECREF(taken[i]);
    if (taken != local)
        PyMem_Free(taken);
    return 0;
}

static PyObject *
Ring_peek_batch_cqe(RingObject *self, PyObject *arg)
{
    Py_ssize_t n;

    if (batch_count(arg, "peek_batch_cqe(): count", &n) < 0 ||
        pu_ring_check_cq(self) < 0)
        return NULL;
    pu_call_enter(self);
    if (PU_CQ_LEN(self) < n && pu_reap(self) < 0)
        return pu_call_return(self, NULL);
    return pu_call_return(self, cq_list(self, n));
}

static PyObject *
Ring_cq_advance(RingObject *self, PyObject *arg)
{
    Py_ssize_t n;

    if (batch_count(arg, "cq_advance(): nr", &n) < 0 || pu_ring_check(self) < 0)
        return NULL;
    if (n > PU_CQ_LEN(self)) {
        PyErr_Format(PyExc_ValueError,
                     "cq_advance(%zd): only %zd completion(s) are reaped and "
                     "not yet seen (nothing was marked)", n, PU_CQ_LEN(self));
        return NULL;
    }
    if (cq_take(self, n) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static const char *const reap_kw[] = {"count", "wait_nr", "submit", NULL};
static const pu_argspec reap_spec = {"reap", reap_kw, 1, 3, 0};
static const pu_argspec reap_columns_spec = {"reap_columns", reap_kw, 1, 3, 0};
static const char *const reap_one_kw[] = {"wait", "submit", NULL};
static const pu_argspec reap_one_spec = {"reap_one", reap_one_kw, 0, 2, 0};

/* reap(count, wait_nr=0, submit=False): up to count completions as
 * (user_data, result, flags) tuples, marked seen; reap_columns() gives the
 * same as three lists, reap_one() the one tuple (or None).  Completions
 * already in the queue (reaped by peek_cqe() and friends) come first; the
 * rest go from the kernel's CQ straight into the sink (pu_reap_direct),
 * except those whose value needs a Cqe, which pass through the queue.  A
 * failure returns what was already taken, or raises with nothing taken. */
static PyObject *
reap_to_sink_impl(RingObject *self, int kind, Py_ssize_t n, Py_ssize_t wait_nr,
                  int submit)
{
    pu_reap_sink sink;
    Py_ssize_t cap, got = 0;

    if (pu_ring_check_cq(self) < 0)
        return NULL;
    /* submit=True: what is queued goes in with the same io_uring_enter()
     * that waits, as submit_and_wait() does */
    if (submit && self->npending > 0 &&
        pu_ring_flush(self, (unsigned)(wait_nr > PU_CQ_LEN(self) ? wait_nr - PU_CQ_LEN(self) : 0)) < 0)
        return NULL;
    if (wait_nr > 0 && ring_wait_full(self, wait_nr, -1.0, 1) < 0)
        return NULL;
    if (io_uring_cq_ready(&self->ring) == 0 && pu_reap(self) < 0)
        return NULL;    /* (completions the kernel kept aside: see pu_reap) */
    cap = PU_CQ_LEN(self) + (Py_ssize_t)io_uring_cq_ready(&self->ring);
    if (cap > n)
        cap = n;
    if (pu_sink_new(&sink, kind, cap) < 0)
        return NULL;
    while (got < cap) {
        Py_ssize_t k = PU_CQ_LEN(self);
        if (k > 0) {
            if (k > cap - got)
                k = cap - got;
            /* the allocations below may run the GC and finalizers: keep
             * them off the queue being read */
            unsigned long held = pu_side_take(&self->cq_owner);
            for (Py_ssize_t i = 0; i < k; i++) {
                PyObject *t, *d, *v, *f;
                if (pu_sink_slot(&sink, &t) < 0 ||
                    pu_cqe_parts(self->cq[self->cq_start + i], &d, &v, &f) < 0) {
                    Py_XDECREF(t);
                    pu_side_put(&self->cq_owner, held);
                    pu_sink_unput(&sink, got, got + i);
                    goto fail;
                }
                pu_sink_put(&sink, got + i, t, d, v, f);
            }
            pu_side_put(&self->cq_owner, held);
            if (cq_take(self, k) < 0) {
                pu_sink_unput(&sink, got, got + k);
                goto fail;
            }
            got += k;
            continue;
        }
        k = pu_reap_direct(self, &sink, got, cap - got);
        if (k < 0)
            goto fail;
        got += k;
        if (got == cap)
            break;
        /* stopped before a completion that needs a Cqe (queue it), or the
         * CQ held fewer than counted (the runtime's own completions) */
        if (pu_reap(self) < 0)
            goto fail;
        if (PU_CQ_LEN(self) == 0)
            break;
    }
    return pu_sink_finish(&sink, got);
fail:
    if (got == 0) {
        Py_XDECREF(pu_sink_finish(&sink, 0));
        return NULL;
    }
    PyErr_Clear();   /* what was taken is returned; the failure comes again */
    return pu_sink_finish(&sink, got);
}

static PyObject *
reap_to_sink(RingObject *self, int kind, Py_ssize_t n, Py_ssize_t wait_nr,
             int submit)
{
    if (pu_ring_check_cq(self) < 0)
        return NULL;
    pu_call_enter(self);
    return pu_call_return(self, reap_to_sink_impl(self, kind, n, wait_nr, submit));
}

/* reap()'s and reap_columns()' arguments */
static PyObject *
reap_parse(RingObject *self, const pu_argspec *spec, int kind,
           PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    static const char *const what[2][2] = {
        [PU_SINK_LIST] = {"reap(): count", "reap(): wait_nr"},
        [PU_SINK_COLUMNS] = {"reap_columns(): count", "reap_columns(): wait_nr"}};
    PyObject *argv[3];
    Py_ssize_t n, wait_nr = 0;
    int submit = 0;

    if (pu_parse_args(spec, args, nargs, kwnames, argv) < 0 ||
        batch_count(argv[0], what[kind][0], &n) < 0 ||
        (argv[1] != NULL && batch_count(argv[1], what[kind][1], &wait_nr) < 0) ||
        (argv[2] != NULL && (submit = PyObject_IsTrue(argv[2])) < 0))
        return NULL;
    if (wait_nr > n) {
        PyErr_Format(PyExc_ValueError, "%s(): wait_nr must be <= count", spec->fname);
        return NULL;
    }
    if (wait_nr > UINT32_MAX) {
        PyErr_Format(PyExc_OverflowError, "%s(): wait_nr is too large", spec->fname);
        return NULL;
    }
    return reap_to_sink(self, kind, n, wait_nr, submit);
}

static PyObject *
Ring_reap(RingObject *self, PyObject *const *args, Py_ssize_t nargs,
          PyObject *kwnames)
{
    return reap_parse(self, &reap_spec, PU_SINK_LIST, args, nargs, kwnames);
}

static PyObject *
Ring_reap_columns(RingObject *self, PyObject *const *args, Py_ssize_t nargs,
                  PyObject *kwnames)
{
    return reap_parse(self, &reap_columns_spec, PU_SINK_COLUMNS, args, nargs, kwnames);
}

/* reap_one(wait=False, submit=False): reap(1, wait, submit)'s item without
 * the list, or None: one operation at a time pays no list per round trip */
static PyObject *
Ring_reap_one(RingObject *self, PyObject *const *args, Py_ssize_t nargs,
              PyObject *kwnames)
{
    PyObject *argv[2];
    int wait = 0, submit = 0;

    if (pu_parse_args(&reap_one_spec, args, nargs, kwnames, argv) < 0 ||
        (argv[0] != NULL && (wait = PyObject_IsTrue(argv[0])) < 0) ||
        (argv[1] != NULL && (submit = PyObject_IsTrue(argv[1])) < 0))
        return NULL;
    return reap_to_sink(self, PU_SINK_ONE, 1, wait, submit);
}

/* ---- end of batch reaping ---- */

static PyObject *
Ring_sq_ready(RingObject *self, PyObject *Py_UNUSED(ignored))
{
    if (pu_ring_check(self) < 0)
        return NULL;
    return PyLong_FromUnsignedLong(io_uring_sq_ready(&self->ring));
}

static PyObject *
Ring_sq_space_left(RingObject *self, PyObject *Py_UNUSED(ignored))
{
    if (pu_ring_check(self) < 0)
        return NULL;
    return PyLong_FromUnsignedLong(io_uring_sq_space_left(&self->ring));
}

static PyObject *
Ring_cq_ready(RingObject *self, PyObject *Py_UNUSED(ignored))
{
    if (pu_ring_check(self) < 0)
        return NULL;
    return PyLong_FromSsize_t(PU_CQ_LEN(self) +
                              (Py_ssize_t)io_uring_cq_ready(&self->ring));
}

static PyObject *
Ring_cq_event_fd_enabled(RingObject *self, PyObject *Py_UNUSED(ignored))
{
    if (pu_ring_check(self) < 0)
        return NULL;
    return PyBool_FromLong(io_uring_cq_eventfd_enabled(&self->ring));
}

static PyObject *
Ring_register_eventfd(RingObject *self, PyObject *arg)
{
    int fd, ret;
    if (pu_ring_check(self) < 0)
        return NULL;
    fd = PyObject_AsFileDescriptor(arg);
    if (fd < 0)
        return NULL;
    ret = io_uring_register_eventfd(&self->ring, fd);
    if (ret < 0)
        return pu_err_errno(-ret);
    Py_RETURN_NONE;
}

static PyObject *
Ring_unregister_eventfd(RingObject *self, PyObject *Py_UNUSED(ignored))
{
    int ret;
    if (pu_ring_check(self) < 0)
        return NULL;
    ret = io_uring_unregister_eventfd(&self->ring);
    if (ret < 0)
        return pu_err_errno(-ret);
    Py_RETURN_NONE;
}

static PyObject *
Ring_fileno(RingObject *self, PyObject *Py_UNUSED(ignored))
{
    if (pu_ring_check(self) < 0)
        return NULL;
    return PyLong_FromLong(self->ring.ring_fd);
}

static PyObject *
Ring_in_flight(RingObject *self, PyObject *Py_UNUSED(ignored))
{
    if (pu_ring_check(self) < 0)
        return NULL;
    return PyLong_FromSsize_t(self->nrecords);
}

static PyObject *
Ring_features(RingObject *self, PyObject *Py_UNUSED(ignored))
{
    if (pu_ring_check(self) < 0)
        return NULL;
    return PyLong_FromUnsignedLong(self->features);
}

static PyObject *
Ring_probe(RingObject *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *names, *result;

    if (pu_ring_check(self) < 0)
        return NULL;
    names = PySet_New(NULL);
    for (int i = 0; names != NULL && i < pu_nopdefs; i++) {
        PyObject *s;
        if (!PU_SUPPORTED(self, pu_opdefs[i].opcode))
            continue;
        s = PyUnicode_FromString(pu_opdefs[i].name);
        if (s == NULL || PySet_Add(names, s) < 0)
            Py_CLEAR(names);
        Py_XDECREF(s);
    }
    if (names == NULL)
        return NULL;
    result = PyFrozenSet_New(names);
    Py_DECREF(names);
    return result;
}

static PyObject *
Ring_enter(RingObject *self, PyObject *Py_UNUSED(ignored))
{
    Py_INCREF(self);
    return (PyObject *)self;
}

static PyObject *
Ring_exit(RingObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)args;
    (void)nargs;
    return Ring_queue_exit(self, NULL);
}

static int
Ring_traverse(RingObject *self, visitproc visit, void *arg)
{
    for (uint32_t s = 0; s < self->nslots; s++)
        Py_VISIT(self->slots[s]);
    for (Py_ssize_t i = self->cq_start; i < self->cq_end; i++)
        Py_VISIT(self->cq[i]);
    return 0;
}

/* The GC found the ring unreachable (a cycle through its in-flight
 * operations or their user data): close it as queue_exit() would. */
static int
Ring_clear(RingObject *self)
{
    pu_exc_state saved;

    /* a call still using the ring (the collection ran inside it): as a
     * queue_exit() from there, when it returns */
    if (self->ncalls > 0) {
        if (self->initialised)
            self->closing |= PU_CLOSING_DEFERRED;
        return 0;
    }
    /* may run while an exception propagates: keep it intact */
    pu_exc_save(&saved);
    pu_ring_teardown(self);
    if (PyErr_Occurred())
        PyErr_WriteUnraisable(NULL);
    pu_exc_restore(&saved);
    return 0;
}

static void
Ring_dealloc(RingObject *self)
{
    PyObject_GC_UnTrack(self);
    if (self->weakreflist != NULL)
        PyObject_ClearWeakRefs((PyObject *)self);
    /* no record can be in flight here: each holds a reference to the
     * ring; this closes the fd and unmaps the ring */
    Ring_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
Ring_repr(RingObject *self)
{
    if (!self->initialised)
        return PyUnicode_FromString("<py_io_uring.IoUring closed>");
    return PyUnicode_FromFormat("<py_io_uring.IoUring fd=%d entries=%u in_flight=%zd>",
                                self->ring.ring_fd, self->sq_entries,
                                self->nrecords);
}

static PyMethodDef Ring_methods[] = {
    {"queue_init", (PyCFunction)(void (*)(void))Ring_queue_init,
     METH_FASTCALL | METH_KEYWORDS, PU_DOC_IoUring_queue_init},
    {"queue_exit", (PyCFunction)Ring_queue_exit, METH_NOARGS,
     PU_DOC_IoUring_queue_exit},
    {"get_sqe", (PyCFunction)Ring_get_sqe, METH_NOARGS, PU_DOC_IoUring_get_sqe},
    {"submit", (PyCFunction)Ring_submit, METH_NOARGS, PU_DOC_IoUring_submit},
    {"submit_and_wait", (PyCFunction)(void (*)(void))Ring_submit_and_wait,
     METH_FASTCALL, PU_DOC_IoUring_submit_and_wait},
    {"wait_cqe", (PyCFunction)(void (*)(void))Ring_wait_cqe,
     METH_FASTCALL | METH_KEYWORDS, PU_DOC_IoUring_wait_cqe},
    {"wait_cqe_nr", (PyCFunction)(void (*)(void))Ring_wait_cqe_nr,
     METH_FASTCALL | METH_KEYWORDS, PU_DOC_IoUring_wait_cqe_nr},
    {"wait_cqes", (PyCFunction)(void (*)(void))Ring_wait_cqe_nr,
     METH_FASTCALL | METH_KEYWORDS, PU_DOC_IoUring_wait_cqes},
    {"peek_cqe", (PyCFunction)Ring_peek_cqe, METH_NOARGS, PU_DOC_IoUring_peek_cqe},
    {"cqe_seen", (PyCFunction)Ring_cqe_seen, METH_O, PU_DOC_IoUring_cqe_seen},
    {"sq_ready", (PyCFunction)Ring_sq_ready, METH_NOARGS, PU_DOC_IoUring_sq_ready},
    {"sq_space_left", (PyCFunction)Ring_sq_space_left, METH_NOARGS,
     PU_DOC_IoUring_sq_space_left},
    {"cq_ready", (PyCFunction)Ring_cq_ready, METH_NOARGS, PU_DOC_IoUring_cq_ready},
    {"cq_event_fd_enabled", (PyCFunction)Ring_cq_event_fd_enabled, METH_NOARGS,
     PU_DOC_IoUring_cq_event_fd_enabled},
    {"register_eventfd", (PyCFunction)Ring_register_eventfd, METH_O,
     PU_DOC_IoUring_register_eventfd},
    {"unregister_eventfd", (PyCFunction)Ring_unregister_eventfd, METH_NOARGS,
     PU_DOC_IoUring_unregister_eventfd},
    {"fileno", (PyCFunction)Ring_fileno, METH_NOARGS, PU_DOC_IoUring_fileno},
    {"in_flight", (PyCFunction)Ring_in_flight, METH_NOARGS, PU_DOC_IoUring_in_flight},
    {"probe", (PyCFunction)Ring_probe, METH_NOARGS, PU_DOC_IoUring_probe},
    {"features", (PyCFunction)Ring_features, METH_NOARGS, PU_DOC_IoUring_features},
    {"__enter__", (PyCFunction)Ring_enter, METH_NOARGS, PU_DOC_IoUring___enter__},
    {"__exit__", (PyCFunction)(void (*)(void))Ring_exit, METH_FASTCALL,
     PU_DOC_IoUring___exit__},
    /* batch reaping */
    {"peek_batch_cqe", (PyCFunction)Ring_peek_batch_cqe, METH_O,
     PU_DOC_IoUring_peek_batch_cqe},
    {"cq_advance", (PyCFunction)Ring_cq_advance, METH_O,
     PU_DOC_IoUring_cq_advance},
    {"reap", (PyCFunction)(void (*)(void))Ring_reap, METH_FASTCALL | METH_KEYWORDS,
     PU_DOC_IoUring_reap},
    {"reap_columns", (PyCFunction)(void (*)(void))Ring_reap_columns,
     METH_FASTCALL | METH_KEYWORDS, PU_DOC_IoUring_reap_columns},
    {"reap_one", (PyCFunction)(void (*)(void))Ring_reap_one,
     METH_FASTCALL | METH_KEYWORDS, PU_DOC_IoUring_reap_one},
    {"prep_many", (PyCFunction)(void (*)(void))pu_ring_prep_many,
     METH_FASTCALL | METH_KEYWORDS, PU_DOC_IoUring_prep_many},
    {NULL, NULL, 0, NULL},
};

/* The ring's method table: these, the registration methods and the
 * generated prep_* fast forms. */
int
pu_ring_type_init(void)
{
    size_t n1 = sizeof(Ring_methods) / sizeof(PyMethodDef) - 1, n2 = 0, n3 = 0;
    PyMethodDef *all;

    while (pu_register_methods[n2].ml_name != NULL)
        n2++;
    while (pu_generated_ring_methods[n3].ml_name != NULL)
        n3++;
    all = PyMem_RawCalloc(n1 + n2 + n3 + 1, sizeof(PyMethodDef));
    if (all == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memcpy(all, Ring_methods, n1 * sizeof(PyMethodDef));
    memcpy(all + n1, pu_register_methods, n2 * sizeof(PyMethodDef));
    memcpy(all + n1 + n2, pu_generated_ring_methods, n3 * sizeof(PyMethodDef));
    pu_RingType.tp_methods = all;
    return PyType_Ready(&pu_RingType);
}

PyTypeObject pu_RingType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "py_io_uring.IoUring",
    .tp_basicsize = sizeof(RingObject),
    .tp_dealloc = (destructor)Ring_dealloc,
    .tp_repr = (reprfunc)Ring_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = PU_DOC_IoUring,
    .tp_traverse = (traverseproc)Ring_traverse,
    .tp_clear = (inquiry)Ring_clear,
    .tp_weaklistoffset = offsetof(RingObject, weakreflist),
    .tp_init = (initproc)Ring_init,
    .tp_new = PyType_GenericNew,
};
