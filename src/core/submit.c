/* submit.c: the submission side of IoUring: get_sqe(), the link chains'
 * bookkeeping before a flush (pu_seal_pending), and the flush itself
 * (pu_ring_flush: submit(), submit_and_wait(), and every wait that
 * submits first). */
#include "core/submit.h"
#include "ops/opdef.h"
#include "methods_doc.h"

#include <errno.h>

static PyObject *
Ring_get_sqe(RingObject *self, PyObject *Py_UNUSED(ignored))
{
    return (PyObject *)pu_ring_get_sqe(self);
}

/* get_sqe128(): liburing's io_uring_get_sqe128().  Every entry of an
 * SQE128 ring is 128 bytes; mixed rings are refused at setup, so any other
 * ring has none. */
static PyObject *
Ring_get_sqe128(RingObject *self, PyObject *Py_UNUSED(ignored))
{
    if (pu_ring_check(self) < 0)
        return NULL;
    if (!(self->ring.flags & IORING_SETUP_SQE128)) {
        PyErr_SetString(PyExc_ValueError, "get_sqe128(): this ring's entries are "
                        "64 bytes; set it up with IORING_SETUP_SQE128");
        return NULL;
    }
    return (PyObject *)pu_ring_get_sqe(self);
}

/* pu_ring_get_sqe()'s error when the SQ has no free entry */
SqeObject *
pu_err_sq_full(void)
{
    PyErr_SetString(pu_SubmissionQueueFull,
                    "the submission queue is full: call submit() and "
                    "try again");
    return NULL;
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
prepare_chains_from(RingObject *r, unsigned from)
{
    int in_chain = 0;   /* the previous entry links to this one */
    int hard = -1;      /* the current chain holds a hard link (-1: not
                           looked at yet, as most entries need not) */
    unsigned start = from; /* where the current chain starts */

    for (unsigned i = from; i < r->npending; i++) {
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

/* Before the flush: the chains prepared (above), and the entries about to
 * go to the kernel marked as no longer ours to write.  Called before the
 * GIL is released for the submit: from then on another thread may reap
 * their completions and free their records, so the submitting thread must
 * not touch them again (pending[] holds borrowed pointers).
 *
 * One pass while no entry carries a link or skip flag (the usual batch,
 * and a one-op round trip: two loops and a call cost it 56 instructions);
 * from the first entry that does, the chains' own pass, which no earlier
 * entry can be part of. */
void
pu_seal_pending(RingObject *r)
{
    unsigned i, n = r->npending;

    for (i = 0; i < n; i++) {
        SqeObject *rec = r->pending[i];
        struct io_uring_sqe *sqe = rec->sqe;

        if (sqe != NULL) {
            if (sqe->flags & (IOSQE_IO_LINK | IOSQE_IO_HARDLINK | IOSQE_CQE_SKIP_SUCCESS))
                break;
            rec->flushed_flags = sqe->flags;
        }
        rec->state = PU_SUBMITTED;
        rec->sqe = NULL;
    }
    if (i < n) {
        prepare_chains_from(r, i);
        for (; i < n; i++) {
            SqeObject *rec = r->pending[i];
            rec->state = PU_SUBMITTED;
            rec->sqe = NULL;
        }
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
only_thread(const PyThreadState *ts)
{
    /* The interpreter's thread states form a list linked through prev and
     * next: alone in it means neither is set.  (What PyThreadState_Next()
     * of the list's head tells, without three calls into libpython on a
     * path every submit takes.) */
    return ts->prev == NULL && ts->next == NULL;
}

int
pu_only_thread(void)
{
    return only_thread(PyThreadState_Get());
}

/* A signal handler raised during a wait (Ctrl-C: KeyboardInterrupt).  When
 * nothing of this ring was in flight, only another thread's submit or a
 * message from another ring could have ended the wait: say so on the
 * exception, as a note (3.11 and later). */
void
pu_note_idle_wait(RingObject *r)
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

/* Can nobody be waiting for the GIL?  No other thread state in this
 * interpreter, and no other interpreter (which may share the GIL).  A
 * racy read: a thread state a foreign thread makes meanwhile waits for
 * the GIL as long as the system call takes. */
static int
gil_uncontended(const PyThreadState *me)
{
    return only_thread(me) && PyInterpreterState_Next(PyInterpreterState_Head()) == NULL;
}

/* The system calls of one round of pu_ring_flush(): the submit's result,
 * or the wait's when it waits.  A submit alone does not block (the kernel
 * issues each entry non-blocking and hands what would block to io-wq; its
 * inline copies, however long, keep no other thread waiting when there is
 * none), so with nobody to give the GIL to it keeps it: its release and retake
 * (two mutexes and a condition variable) cost more than a NOP's round trip
 * in user space (callgrind, batch 1: about 400 instructions of 2,750).  A
 * wait always lets the GIL go: a thread made while it waits may be the one
 * that ends it. */
static int
flush_round(RingObject *r, PyThreadState *me, unsigned wait_nr, int split,
            int *fell_short, int *total)
{
    PyThreadState *ts = NULL;
    int ret;

    if ((wait_nr > 0 && !split) || !gil_uncontended(me))
        ts = PyEval_SaveThread();
    if (wait_nr > 0 && !split) {
        ret = io_uring_submit_and_wait(&r->ring, wait_nr);
    } else {
        /* As C does with io_uring_submit() and io_uring_wait_cqe():
         * submit alone, and enter again to wait only when the
         * completions are not there yet. */
        ret = io_uring_submit(&r->ring);
        if (wait_nr > 0 && ret >= 0 && io_uring_cq_ready(&r->ring) < wait_nr) {
            int more;
            if (ts == NULL)
                ts = PyEval_SaveThread();
            more = io_uring_submit_and_wait(&r->ring, wait_nr);
            *fell_short = 1;
            if (more < 0 && ret > 0)
                *total += ret;   /* those went in; report the error */
            ret = more < 0 ? more : ret + more;
        }
    }
    if (ts != NULL)
        PyEval_RestoreThread(ts);
    return ret;
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

    /* this thread's state, once for the sides and the GIL's test (each
     * PyThreadState_Get() is a thread-local lookup in libpython) */
    PyThreadState *me = PyThreadState_Get();

    if (pu_ring_check_sq(r) < 0 || (wait_nr && pu_ring_check_cq(r) < 0))
        return -1;
    pu_seal_pending(r);   /* before the GIL goes */
    for (;;) {
        int split = wait_nr > 0 && submit_may_complete(r), fell_short = 0;
        int by_index = 0;
        uint64_t sq_prev, cq_prev = 0;

        sq_prev = pu_side_take_as(&r->sq_owner, (uint64_t)(uintptr_t)me);
        if (wait_nr > 0)
            cq_prev = pu_side_take_as(&r->cq_owner, (uint64_t)(uintptr_t)me);
        /* both sides held, neither by another call: nobody else is in
         * liburing on this ring, so it may enter by the registered index
         * (core/enter_fd.c) */
        if (wait_nr > 0 && sq_prev == 0 && cq_prev == 0)
            by_index = pu_enter_by_index(r);
        ret = flush_round(r, me, wait_nr, split, &fell_short, &total);
        pu_enter_by_fd(r, by_index);
        if (wait_nr > 0)
            pu_side_put(&r->cq_owner, cq_prev);
        pu_side_put(&r->sq_owner, sq_prev);
        if (fell_short)
            r->wait_combined = PU_WAIT_COMBINED;
        if (ret == -EINTR) {
            if (PyErr_CheckSignals() < 0) {
                if (wait_nr > 0)
                    pu_note_idle_wait(r);
                return -1;
            }
            if (pu_still_usable(r) < 0)
                return -1;
            wait_nr = 0;   /* the entries went in; the caller may wait again */
            /* the handlers ran Python code, which may have let another
             * thread start a submit: it holds the SQ side now and flushes
             * what is left; taking the side again would put two threads in
             * liburing's SQ at once */
            if (r->sq_owner != 0)
                return total;
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

/* The start of a call that submits, then waits or reaps (inside the
 * caller's pu_call_enter()): flush, then check the completion side again,
 * since a signal handler run during the flush may have closed the ring or
 * let another thread start a wait.  The number submitted, or -1. */
int
pu_ring_flush_then_check_cq(RingObject *r)
{
    int n = pu_ring_flush(r, 0);

    if (n < 0 || pu_ring_check_cq(r) < 0)
        return -1;
    return n;
}

static PyObject *
Ring_submit(RingObject *self, PyObject *Py_UNUSED(ignored))
{
    return ring_submit(self, 0);
}

/* submit_and_get_events(): submit, then have the kernel post what has
 * completed, without waiting (io_uring_submit_and_get_events(); here two
 * steps, the submit being pu_ring_flush() with its chains and signals) */
static PyObject *
Ring_submit_and_get_events(RingObject *self, PyObject *Py_UNUSED(ignored))
{
    int n, ret;

    if (pu_ring_check_cq(self) < 0)
        return NULL;
    pu_call_enter(self);
    n = pu_ring_flush_then_check_cq(self);
    if (n < 0)
        return pu_call_return(self, NULL);
    ret = io_uring_get_events(&self->ring);
    if (ret < 0 && ret != -EINTR) {
        pu_err_errno(-ret);
        return pu_call_return(self, NULL);
    }
    return pu_call_return(self, PyLong_FromLong(n));
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


/* sqring_wait(): io_uring_sqring_wait(): on an IORING_SETUP_SQPOLL ring
 * whose SQ is full, wait (the GIL released) until the kernel thread has
 * taken entries and get_sqe() can hand out one again; at once when there
 * is room, or on any other ring (liburing returns 0 there too) */
static PyObject *
Ring_sqring_wait(RingObject *self, PyObject *Py_UNUSED(ignored))
{
    int ret;

    if (pu_ring_check_sq(self) < 0)
        return NULL;
    if (!(self->ring.flags & IORING_SETUP_SQPOLL))
        Py_RETURN_NONE;
    pu_call_enter(self);
    for (;;) {
        uint64_t sq_prev;

        if (io_uring_sq_space_left(&self->ring) > 0)
            break;
        /* as liburing's: the kernel waits on the entries submitted; those
         * queued and not submitted it does not see (submit() them) */
        sq_prev = pu_side_take(&self->sq_owner);
        Py_BEGIN_ALLOW_THREADS
        ret = io_uring_sqring_wait(&self->ring);
        Py_END_ALLOW_THREADS
        pu_side_put(&self->sq_owner, sq_prev);
        if (ret < 0 && ret != -EINTR) {
            pu_err_errno(-ret);
            return pu_call_return(self, NULL);
        }
        /* interrupted, or 0 with the SQ still full (the kernel returns so
         * when the task has a signal pending: it checks signal_pending(),
         * not -EINTR): run Python's handlers and look again, unless they
         * let another thread take the SQ side meanwhile */
        if (PyErr_CheckSignals() < 0 || pu_ring_check_sq(self) < 0)
            return pu_call_return(self, NULL);
    }
    Py_INCREF(Py_None);
    return pu_call_return(self, Py_None);
}

/* IoUring's methods of the submission side (ring.c puts them in the type) */
PyMethodDef pu_submit_methods[] = {
    {"get_sqe", (PyCFunction)Ring_get_sqe, METH_NOARGS, PU_DOC_IoUring_get_sqe},
    {"get_sqe128", (PyCFunction)Ring_get_sqe128, METH_NOARGS, PU_DOC_IoUring_get_sqe128},
    {"submit", (PyCFunction)Ring_submit, METH_NOARGS, PU_DOC_IoUring_submit},
    {"submit_and_get_events", (PyCFunction)Ring_submit_and_get_events, METH_NOARGS,
     PU_DOC_IoUring_submit_and_get_events},
    {"submit_and_wait", (PyCFunction)(void (*)(void))Ring_submit_and_wait,
     METH_FASTCALL, PU_DOC_IoUring_submit_and_wait},
    {"sqring_wait", (PyCFunction)Ring_sqring_wait, METH_NOARGS,
     PU_DOC_IoUring_sqring_wait},
    {NULL, NULL, 0, NULL},
};
