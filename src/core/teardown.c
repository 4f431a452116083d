/* teardown.c: closing a ring without ever freeing memory the kernel may
 * still use.
 *
 * io_uring_queue_exit() alone only unmaps the ring and closes its fd; the
 * kernel cancels in-flight requests in the background and some complete
 * after close returns.  So: turn entries not yet submitted into NOPs,
 * cancel everything with IORING_ASYNC_CANCEL_ANY | _ALL, and reap until the
 * slot table is empty.  Records whose completion never comes within the
 * deadline are leaked on purpose, with a warning: leaking is safe, freeing
 * is not (CPython's Overlapped does the same). */
#include "register/register.h"
#include "core/reap_sink.h"

#include <errno.h>
#include <unistd.h>

#define PU_TEARDOWN_DEADLINE 10.0   /* seconds before we give up and leak */
#define PU_RECANCEL_EVERY 0.5       /* seconds between cancel rounds */

static struct io_uring_sqe *
internal_sqe(RingObject *r, int *cancel_einval)
{
    struct io_uring_sqe *sqe = pu_get_sqe(r);
    if (sqe == NULL) {
        io_uring_submit(&r->ring);
        pu_reap_discard(r, cancel_einval);
        sqe = pu_get_sqe(r);
    }
    if (sqe != NULL)
        pu_sqe_reset(r, sqe, PU_UD_INTERNAL);
    return sqe;
}

/* Ask the kernel to cancel everything; on kernels before 5.19 (no
 * IORING_ASYNC_CANCEL_ANY) cancel each record by its user_data. */
static void
cancel_all(RingObject *r, int *cancel_einval)
{
    struct io_uring_sqe *sqe;

    if (!*cancel_einval) {
        sqe = internal_sqe(r, cancel_einval);
        if (sqe != NULL) {
            io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY |
                                           IORING_ASYNC_CANCEL_ALL);
            sqe->user_data = PU_UD_INTERNAL;
        }
        return;
    }
    for (uint32_t s = 0; s < r->nslots; s++) {
        SqeObject *rec = r->slots[s];
        if (rec == NULL || rec->state != PU_SUBMITTED)
            continue;
        sqe = internal_sqe(r, cancel_einval);
        if (sqe == NULL)
            return;
        io_uring_prep_cancel64(sqe, rec->user_data, 0);
        sqe->user_data = PU_UD_INTERNAL - 1;
    }
}

static Py_ssize_t
leak_remaining(RingObject *r, const char *why)
{
    Py_ssize_t n = 0;
    for (uint32_t s = 0; s < r->nslots; s++) {
        SqeObject *rec = r->slots[s];
        if (rec == NULL)
            continue;
        /* the table's reference is never dropped: the record, its buffers
         * and its user data stay allocated for the life of the process */
        rec->leaked = 1;
        r->slots[s] = NULL;
        n++;
    }
    r->nrecords = 0;
    if (n > 0)
        PyErr_WarnFormat(PyExc_ResourceWarning, 1,
                         "IoUring teardown: %zd operation(s) %s; their buffers "
                         "are leaked rather than freed while the kernel may "
                         "still use them", n, why);
    return n;
}

/* Drain the ring: afterwards no record is in the table.  Returns how many
 * records were leaked because their completions never came. */
static Py_ssize_t
drain(RingObject *r)
{
    Py_ssize_t leaked = 0;
    double start = pu_monotonic(), last_cancel = -1.0;
    int cancel_einval = 0;

    /* entries acquired but not submitted: make them harmless NOPs that
     * still carry their user_data, so their records end like the others */
    for (unsigned i = 0; i < r->npending; i++) {
        SqeObject *rec = r->pending[i];
        if (rec->sqe != NULL) {
            pu_sqe_reset(r, rec->sqe, rec->user_data);
            rec->sqe = NULL;
        }
        rec->state = PU_SUBMITTED;
    }
    r->npending = 0;

    while (r->nrecords > 0) {
        double now = pu_monotonic();
        struct __kernel_timespec ts = {0, 20 * 1000 * 1000};
        struct io_uring_cqe *c;
        int ret;

        if (now - start > PU_TEARDOWN_DEADLINE) {
            leaked = leak_remaining(r, "did not complete after cancellation");
            break;
        }
        if (last_cancel < 0 || now - last_cancel >= PU_RECANCEL_EVERY) {
            cancel_all(r, &cancel_einval);
            last_cancel = now;
        }
        do {
            ret = io_uring_submit(&r->ring);
        } while (ret == -EINTR);
        pu_reap_discard(r, &cancel_einval);
        if (r->nrecords == 0)
            break;
        Py_BEGIN_ALLOW_THREADS
        ret = io_uring_wait_cqe_timeout(&r->ring, &c, &ts);
        Py_END_ALLOW_THREADS
        (void)ret;
        pu_reap_discard(r, &cancel_einval);
    }
    return leaked;
}

void
pu_ring_teardown(RingObject *r)
{
    Py_ssize_t leaked = 0;

    if (!r->initialised || (r->closing & PU_CLOSING_NOW))
        return;
    r->closing = PU_CLOSING_NOW;
    /* a ring set up disabled and never enabled takes no submission: to
     * drain what was queued on it, enable it (this thread its issuer) */
    if (r->disabled && r->nrecords > 0 && r->fork_generation == pu_fork_generation &&
        pu_ring_reachable(r))
        (void)pu_ring_enable(r);
    if (r->fork_generation == pu_fork_generation &&
        (!pu_ring_reachable(r) || !PU_ISSUER_HERE(r))) {
        /* close_ring_fd() left only the registering thread's index, or the
         * ring is SINGLE_ISSUER and its issuer another thread, and this
         * thread cannot enter it: nothing here can cancel or reap, so what
         * is in flight is leaked (the kernel cancels it when the ring's
         * last fd and mapping go; with close_ring_fd(), when that thread
         * ends or tears the ring down) */
        r->npending = 0;
        leaked = leak_remaining(r, PU_ISSUER_HERE(r)
                                   ? "in flight could not be cancelled from this "
                                     "thread (the ring fd is registered by another)"
                                   : "in flight could not be cancelled from this "
                                     "thread (IORING_SETUP_SINGLE_ISSUER: the kernel "
                                     "takes the ring's submissions from another)");
    } else if (r->fork_generation == pu_fork_generation) {
        leaked = drain(r);
    } else {
        /* a child after fork(): the ring's memory is not mapped here
         * (MADV_DONTFORK) and the requests are the parent's; only our copy
         * of the fd and our copies of the records go */
        for (uint32_t s = 0; s < r->nslots; s++) {
            SqeObject *rec = r->slots[s];
            if (rec == NULL)
                continue;
            r->slots[s] = NULL;
            rec->state = PU_DONE;
            rec->sqe = NULL;
            pu_record_release(rec);
            Py_DECREF(rec);
        }
        r->nrecords = 0;
        r->npending = 0;
        /* no munmap: those addresses may hold the child's own mappings */
        if (r->ring.ring_fd >= 0)      /* (-1 after close_ring_fd()) */
            close(r->ring.ring_fd);
    }
    if (r->fork_generation == pu_fork_generation) {
        pu_ring_fd_release(r);
        pu_ring_close(r);
    }
    r->fd_registered = r->fd_closed = 0;
    if (leaked > 0)
        pu_leak_registrations(r);  /* a leaked op may still use them */
    else
        pu_release_registrations(r);   /* the kernel let go with the ring */
    r->initialised = 0;
    PyMem_Free(r->slots);
    PyMem_Free(r->slot_gen);
    PyMem_Free(r->free_slots);
    PyMem_Free(r->pending);
    r->slots = NULL;
    r->slot_gen = NULL;
    r->free_slots = NULL;
    r->pending = NULL;
    r->nslots = r->nfree = 0;
    pu_cq_clear(r);
    PyMem_Free(r->cq);
    r->cq = NULL;
    r->cq_cap = 0;
    pu_record_pool_clear(r);
    Py_CLEAR(r->one_tuple);
    Py_CLEAR(r->res_int);
    r->nhidden = 0;
    r->closing = 0;
    /* last, with the ring's state final: the caller may have put anything
     * into reap()'s last list, whose release may run code */
    Py_CLEAR(r->last_list);
}

/* The queue_exit() a signal handler or finalizer asked for inside a call
 * on the ring, now that the last such call ends (pu_call_leave()).  The
 * exception the call is raising, if any, goes on; a failure of the
 * teardown itself (its ResourceWarning as an error) is then unraisable. */
int
pu_ring_deferred_exit(RingObject *r)
{
    pu_exc_state saved;
    int had = PyErr_Occurred() != NULL;

    pu_exc_save(&saved);
    pu_ring_teardown(r);
    if (PyErr_Occurred()) {
        if (!had)
            return -1;
        PyErr_WriteUnraisable((PyObject *)r);
    }
    pu_exc_restore(&saved);
    return 0;
}
