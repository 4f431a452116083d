/* wait.c: the completion side of IoUring: the waits (wait_cqe,
 * wait_cqe_nr, wait_cqes), peek_cqe and cqe_seen over the queue of reaped
 * completions not yet seen, and the batch forms (peek_batch_cqe,
 * cq_advance, reap, reap_columns, reap_one) over reap.c's sink. */
#include "core/submit.h"
#include "core/reap_sink.h"
#include "ops/opdef.h"     /* the argument parser */
#include "ops/liburing_compat.h"   /* PU_LIBURING_AT_LEAST */
#include "methods_doc.h"

#include <errno.h>
#include <math.h>
#include <signal.h>

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
 * With min_deadline >= 0 (the min-timeout waits): once that time has
 * passed, one completion is enough (1 as well).  This is the kernel's
 * IORING_FEAT_MIN_TIMEOUT meaning (io_uring_wait_cqes_min_timeout(3)),
 * done here in two waits (up to min_deadline for `want`, then for one)
 * so that it is the same with liburing 2.3 and on every kernel, and so
 * that completions already reaped into the queue, which the kernel cannot
 * see, count too.  The second wait costs an io_uring_enter only when the
 * minimum passes with nothing ready.
 *
 * It blocks as liburing does, also with nothing of this ring in flight:
 * another thread may submit, another ring may post a message.  Only where
 * the wait is certainly a mistake, entries prepared and never submitted
 * with nothing in flight and no other thread in the interpreter, it raises
 * at once; elsewhere a Ctrl-C says so on its KeyboardInterrupt. */
static int
ring_wait_full(RingObject *r, Py_ssize_t want, double deadline, int in_kernel_cq,
               sigset_t *sigmask, double min_deadline)
{
    for (;;) {
        struct io_uring_cqe *c;
        struct __kernel_timespec ts;
        Py_ssize_t need;
        double until;
        uint64_t sq_prev = 0, cq_prev;
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
        if (min_deadline >= 0 && PU_CQ_LEN(r) > 0 && pu_monotonic() >= min_deadline)
            return 1;
        /* code run by the reap (a finalizer) may have closed the ring */
        if (pu_still_usable(r) < 0)
            return -1;
        if (r->nrecords == (Py_ssize_t)r->npending && r->npending > 0 &&
            deadline < 0 && pu_only_thread()) {
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
        until = deadline;
        if (min_deadline >= 0) {
            if (pu_monotonic() >= min_deadline)
                need = 1;   /* the minimum passed with nothing ready */
            else if (deadline < 0 || min_deadline < deadline)
                until = min_deadline;
        }
        if (deadline >= 0 && deadline - pu_monotonic() <= 0)
            return 0;
        if (until >= 0) {
            double left = until - pu_monotonic();
            if (left < 0)
                left = 0;
            ts.tv_sec = (long long)left;
            ts.tv_nsec = (long long)((left - (double)ts.tv_sec) * 1e9);
        }
        /* without IORING_FEAT_EXT_ARG liburing queues a timeout SQE, and
         * submits what is queued with it */
        touch_sq = until >= 0 && !(r->features & IORING_FEAT_EXT_ARG);
        if (touch_sq) {
            if (pu_ring_check_sq(r) < 0)
                return -1;
            pu_seal_pending(r);
            sq_prev = pu_side_take(&r->sq_owner);
        }
        cq_prev = pu_side_take(&r->cq_owner);
        Py_BEGIN_ALLOW_THREADS
        if (until >= 0 || sigmask != NULL)
            ret = io_uring_wait_cqes(&r->ring, &c, (unsigned)need,
                                     until >= 0 ? &ts : NULL, sigmask);
        else
            ret = io_uring_wait_cqe_nr(&r->ring, &c, (unsigned)need);
        Py_END_ALLOW_THREADS
        pu_side_put(&r->cq_owner, cq_prev);
        if (touch_sq)
            pu_side_put(&r->sq_owner, sq_prev);
        if (ret == -EINTR) {
            /* run the handlers (Ctrl-C raises here); nothing was consumed */
            if (PyErr_CheckSignals() < 0) {
                pu_note_idle_wait(r);
                return -1;
            }
            /* the handlers ran Python code, which may have let another
             * thread start a wait (or closed the ring): check the side as
             * the call did before taking it again */
            if (pu_ring_check_cq(r) < 0)
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
    return ring_wait_full(r, want, deadline, 0, NULL, -1.0);
}

/* A list of the (up to) n oldest unseen Cqe, not marked seen.  The list's
 * allocation may run the GC and finalizers: they find the queue busy. */
static PyObject *
cq_list(RingObject *self, Py_ssize_t n)
{
    Py_ssize_t got = PU_CQ_LEN(self) < n ? PU_CQ_LEN(self) : n;
    PyObject *list;

    uint64_t held = pu_side_take(&self->cq_owner);
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

/* wait_cqe_nr()'s and wait_cqes()' wait_nr: 0 to 2**32-1 */
static int
parse_wait_nr(const pu_argspec *sp, PyObject *o, long *out)
{
    long n = PyLong_AsLong(o);
    if (n == -1 && PyErr_Occurred())
        return -1;
    if (n < 0) {
        PyErr_Format(PyExc_ValueError, "%s(): wait_nr must be >= 0", sp->fname);
        return -1;
    }
    if (n > UINT32_MAX) {
        PyErr_Format(PyExc_OverflowError, "%s(): wait_nr is too large", sp->fname);
        return -1;
    }
    *out = n;
    return 0;
}

static PyObject *
Ring_wait_cqe_nr(RingObject *self, PyObject *const *args, Py_ssize_t nargs,
                 PyObject *kwnames)
{
    PyObject *argv[2];
    double deadline;
    long n;

    if (pu_parse_args(&wait_nr_spec, args, nargs, kwnames, argv) < 0 ||
        parse_wait_nr(&wait_nr_spec, argv[0], &n) < 0)
        return NULL;
    if (parse_timeout(argv[1], &deadline) < 0 || pu_ring_check_cq(self) < 0)
        return NULL;
    pu_call_enter(self);
    if (n > 0 && ring_wait(self, n, deadline) < 0)
        return pu_call_return(self, NULL);
    return pu_call_return(self, cq_list(self, n));
}

/* signal.pthread_sigmask()'s argument: an iterable of signal numbers */
static int
parse_sigmask(const char *fname, PyObject *o, sigset_t *set)
{
    PyObject *it, *item;

    if (sigemptyset(set) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    it = PyObject_GetIter(o);
    if (it == NULL) {
        if (PyErr_ExceptionMatches(PyExc_TypeError))
            PyErr_Format(PyExc_TypeError, "%s(): sigmask must be an iterable "
                         "of signal numbers, not %.100s", fname, Py_TYPE(o)->tp_name);
        return -1;
    }
    while ((item = PyIter_Next(it)) != NULL) {
        long signum = PyLong_AsLong(item);
        Py_DECREF(item);
        if (signum == -1 && PyErr_Occurred())
            break;
        if (signum <= 0 || signum >= NSIG) {
            PyErr_Format(PyExc_ValueError, "%s(): signal number %ld out of "
                         "range [1; %d]", fname, signum, NSIG - 1);
            break;
        }
        sigaddset(set, (int)signum);
    }
    Py_DECREF(it);
    return PyErr_Occurred() ? -1 : 0;
}

/* min_wait_usec of the min-timeout waits: 0 to 2**32-1 microseconds (the
 * kernel's io_uring_getevents_arg.min_wait_usec); a deadline from now */
static int
parse_min_wait(const char *fname, PyObject *o, double *min_deadline)
{
    unsigned long long us = PyLong_AsUnsignedLongLong(o);

    if (us == (unsigned long long)-1 && PyErr_Occurred()) {
        if (PyErr_ExceptionMatches(PyExc_OverflowError)) {
            PyErr_Clear();
            PyErr_Format(PyExc_ValueError, "%s(): min_wait_usec must be 0 to "
                         "2**32-1 microseconds", fname);
        }
        return -1;
    }
    if (us > UINT32_MAX) {
        PyErr_Format(PyExc_ValueError, "%s(): min_wait_usec must be 0 to "
                     "2**32-1 microseconds", fname);
        return -1;
    }
    *min_deadline = us > 0 ? pu_monotonic() + (double)us / 1e6 : -1.0;
    return 0;
}

/* The arguments every liburing-tier wait shares: wait_nr (argv[0]),
 * timeout (argv[1]), min_wait_usec (argv[imin], when imin > 0) and
 * sigmask (argv[isig], when isig > 0; *sigmask NULL when not given). */
typedef struct {
    long n;
    double deadline, min_deadline;
    sigset_t set, *sigmask;
} wait_args;

static int
parse_wait(const pu_argspec *sp, PyObject *const *args, Py_ssize_t nargs,
           PyObject *kwnames, int imin, int isig, wait_args *w)
{
    PyObject *argv[4] = {NULL, NULL, NULL, NULL};

    w->sigmask = NULL;
    w->min_deadline = -1.0;
    if (pu_parse_args(sp, args, nargs, kwnames, argv) < 0 ||
        parse_wait_nr(sp, argv[0], &w->n) < 0)
        return -1;
    if (parse_timeout(argv[1], &w->deadline) < 0)
        return -1;
    if (imin > 0 && parse_min_wait(sp->fname, argv[imin], &w->min_deadline) < 0)
        return -1;
    if (isig > 0 && argv[isig] != NULL && argv[isig] != Py_None) {
        if (parse_sigmask(sp->fname, argv[isig], &w->set) < 0)
            return -1;
        w->sigmask = &w->set;
    }
    return 0;
}

/* The oldest unseen completion once w->n are ready (or the timeout
 * passed: then maybe fewer, maybe None); a new reference, or NULL.  Runs
 * inside pu_call_enter(). */
static PyObject *
wait_oldest(RingObject *self, const wait_args *w)
{
    PyObject *q;

    if (w->n > 0 && ring_wait_full(self, w->n, w->deadline, 0, w->sigmask,
                                   w->min_deadline) < 0)
        return NULL;
    if (PU_CQ_LEN(self) == 0 && pu_reap(self) < 0)
        return NULL;
    q = PU_CQ_LEN(self) > 0 ? (PyObject *)self->cq[self->cq_start] : Py_None;
    Py_INCREF(q);
    return q;
}

static const char *const wait_cqes_kw[] = {"wait_nr", "timeout", "sigmask", NULL};
static const pu_argspec wait_cqes_spec = {"wait_cqes", wait_cqes_kw, 1, 3, 0};
static const char *const wait_min_kw[] = {"wait_nr", "timeout", "min_wait_usec",
                                          "sigmask", NULL};
static const pu_argspec wait_min_spec = {"wait_cqes_min_timeout", wait_min_kw, 3, 4, 0};

/* io_uring_wait_cqes(): the oldest unseen completion once wait_nr are
 * ready (or the timeout passed: then maybe fewer, maybe None) */
static PyObject *
Ring_wait_cqes(RingObject *self, PyObject *const *args, Py_ssize_t nargs,
               PyObject *kwnames)
{
    wait_args w;

    if (parse_wait(&wait_cqes_spec, args, nargs, kwnames, 0, 2, &w) < 0 ||
        pu_ring_check_cq(self) < 0)
        return NULL;
    pu_call_enter(self);
    return pu_call_return(self, wait_oldest(self, &w));
}

/* io_uring_wait_cqes_min_timeout(): as wait_cqes(), but once
 * min_wait_usec have passed one completion is enough */
static PyObject *
Ring_wait_cqes_min_timeout(RingObject *self, PyObject *const *args, Py_ssize_t nargs,
                           PyObject *kwnames)
{
    wait_args w;

    if (parse_wait(&wait_min_spec, args, nargs, kwnames, 2, 3, &w) < 0 ||
        pu_ring_check_cq(self) < 0)
        return NULL;
    pu_call_enter(self);
    return pu_call_return(self, wait_oldest(self, &w));
}

static const char *const wait_timeout_kw[] = {"timeout", NULL};
static const pu_argspec wait_timeout_spec = {"wait_cqe_timeout", wait_timeout_kw, 1, 1, 0};

/* io_uring_wait_cqe_timeout(): wait_cqe() whose timeout is not optional
 * (None still means none, as liburing's NULL ts) */
static PyObject *
Ring_wait_cqe_timeout(RingObject *self, PyObject *const *args, Py_ssize_t nargs,
                      PyObject *kwnames)
{
    PyObject *argv[1];
    wait_args w;

    if (pu_parse_args(&wait_timeout_spec, args, nargs, kwnames, argv) < 0 ||
        parse_timeout(argv[0], &w.deadline) < 0 || pu_ring_check_cq(self) < 0)
        return NULL;
    w.n = 1;
    w.min_deadline = -1.0;
    w.sigmask = NULL;
    pu_call_enter(self);
    return pu_call_return(self, wait_oldest(self, &w));
}

static const char *const submit_timeout_kw[] = {"wait_nr", "timeout", "sigmask", NULL};
static const pu_argspec submit_timeout_spec = {"submit_and_wait_timeout",
                                               submit_timeout_kw, 2, 3, 0};
static const pu_argspec submit_min_spec = {"submit_and_wait_min_timeout",
                                           wait_min_kw, 3, 4, 0};

/* io_uring_submit_and_wait_timeout() and _min_timeout(): submit what is
 * queued, then wait as wait_cqes() (_min_timeout()) does.  The number
 * submitted, or None when the timeout passed with no completion ready
 * (liburing's -ETIME: the entries went in all the same).  The submit goes
 * alone first, as pu_ring_flush() does for submit_and_wait() when it may
 * complete the entries, so the wait is its own io_uring_enter. */
static PyObject *
submit_wait_timeout(RingObject *self, const wait_args *w)
{
    int n;

    if (pu_ring_check_cq(self) < 0)
        return NULL;
    pu_call_enter(self);
    n = pu_ring_flush_then_check_cq(self);
    if (n < 0)
        return pu_call_return(self, NULL);
    if (w->n > 0) {
        int ret = ring_wait_full(self, w->n, w->deadline, 0, w->sigmask,
                                 w->min_deadline);
        if (ret < 0)
            return pu_call_return(self, NULL);
        if (ret == 0 && PU_CQ_LEN(self) == 0) {
            Py_INCREF(Py_None);
            return pu_call_return(self, Py_None);
        }
    }
    return pu_call_return(self, PyLong_FromLong(n));
}

/* submit_and_wait_reg(wait_nr, reg_index): io_uring_submit_and_wait_reg():
 * submit what is queued, then wait for wait_nr completions with the wait
 * arguments (timeout, min wait) the caller wrote at reg_index of the ring's
 * wait region (register_region(buf, IORING_MEM_REGION_REG_WAIT_ARG)), the
 * kernel reading them from there (IORING_ENTER_EXT_ARG_REG, Linux 6.13).
 * The wait is a raw io_uring_enter: liburing before 2.9 has no helper, and
 * the module's waits keep their own accounting of what is reaped. */
#define PU_REG_WAIT_SIZE 64             /* sizeof(struct io_uring_reg_wait) */
#ifndef IORING_ENTER_EXT_ARG_REG
#define IORING_ENTER_EXT_ARG_REG (1U << 6)
#endif
#ifndef IORING_ENTER_REGISTERED_RING
#define IORING_ENTER_REGISTERED_RING (1U << 4)
#endif

static const char *const wait_reg_kw[] = {"wait_nr", "reg_index", NULL};
static const pu_argspec wait_reg_spec = {"submit_and_wait_reg", wait_reg_kw, 2, 2, 0};

static PyObject *
Ring_submit_and_wait_reg(RingObject *self, PyObject *const *args, Py_ssize_t nargs,
                         PyObject *kwnames)
{
    PyObject *argv[2];
    long n;
    Py_ssize_t index;
    int submitted;

    if (pu_parse_args(&wait_reg_spec, args, nargs, kwnames, argv) < 0 ||
        parse_wait_nr(&wait_reg_spec, argv[0], &n) < 0)
        return NULL;
    index = PyNumber_AsSsize_t(argv[1], PyExc_OverflowError);
    if (index == -1 && PyErr_Occurred())
        return NULL;
    if (pu_ring_check_cq(self) < 0)
        return NULL;
    if (self->region == NULL) {
        PyErr_SetString(PyExc_ValueError, "submit_and_wait_reg(): the ring has no wait "
                        "region: register_region(buf, IORING_MEM_REGION_REG_WAIT_ARG) "
                        "on the ring set up with IORING_SETUP_R_DISABLED, then "
                        "enable_rings()");
        return NULL;
    }
    if (index < 0 || index >= self->region->len / PU_REG_WAIT_SIZE) {
        PyErr_Format(PyExc_IndexError, "submit_and_wait_reg(): reg_index %zd is not "
                     "in the region (%zd entries of %d bytes)", index,
                     self->region->len / PU_REG_WAIT_SIZE, PU_REG_WAIT_SIZE);
        return NULL;
    }
    if (!(self->features & IORING_FEAT_EXT_ARG)) {
        pu_err_errno_msg(EINVAL, "submit_and_wait_reg(): the kernel lacks "
                         "IORING_FEAT_EXT_ARG");
        return NULL;
    }
    pu_call_enter(self);
    submitted = pu_ring_flush_then_check_cq(self);
    if (submitted < 0)
        return pu_call_return(self, NULL);
    for (;;) {
        Py_ssize_t have = PU_CQ_LEN(self) + (Py_ssize_t)io_uring_cq_ready(&self->ring);
        unsigned flags = IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG |
                         IORING_ENTER_EXT_ARG_REG;
        unsigned fd = (unsigned)self->ring.ring_fd;
        uint64_t prev;
        int ret;

        if (have >= n)
            break;
        if (self->fd_closed) {          /* only the registering thread gets here */
            fd = self->reg_index;
            flags |= IORING_ENTER_REGISTERED_RING;
        }
        prev = pu_side_take(&self->cq_owner);
        Py_BEGIN_ALLOW_THREADS
        ret = io_uring_enter2(fd, 0, (unsigned)(n - PU_CQ_LEN(self)), flags,
                              (sigset_t *)(uintptr_t)((size_t)index * PU_REG_WAIT_SIZE),
                              PU_REG_WAIT_SIZE);
        Py_END_ALLOW_THREADS
        pu_side_put(&self->cq_owner, prev);
        if (ret == -EINTR) {
            if (PyErr_CheckSignals() < 0) {
                pu_note_idle_wait(self);
                return pu_call_return(self, NULL);
            }
            if (pu_ring_check_cq(self) < 0)
                return pu_call_return(self, NULL);
            continue;
        }
        if (ret == -ETIME) {
            if (PU_CQ_LEN(self) + io_uring_cq_ready(&self->ring) > 0)
                break;
            Py_INCREF(Py_None);
            return pu_call_return(self, Py_None);
        }
        if (ret < 0) {
            pu_err_errno(-ret);
            return pu_call_return(self, NULL);
        }
        break;
    }
    return pu_call_return(self, PyLong_FromLong(submitted));
}

static PyObject *
Ring_submit_and_wait_timeout(RingObject *self, PyObject *const *args, Py_ssize_t nargs,
                             PyObject *kwnames)
{
    wait_args w;

    if (parse_wait(&submit_timeout_spec, args, nargs, kwnames, 0, 2, &w) < 0)
        return NULL;
    return submit_wait_timeout(self, &w);
}

static PyObject *
Ring_submit_and_wait_min_timeout(RingObject *self, PyObject *const *args,
                                 Py_ssize_t nargs, PyObject *kwnames)
{
    wait_args w;

    if (parse_wait(&submit_min_spec, args, nargs, kwnames, 2, 3, &w) < 0)
        return NULL;
    return submit_wait_timeout(self, &w);
}

#ifndef IORING_FEAT_NO_IOWAIT
#define IORING_FEAT_NO_IOWAIT (1U << 17)
#endif

/* set_iowait(enabled): io_uring_set_iowait(): whether this ring's waits
 * count as iowait for the CPU (IORING_ENTER_NO_IOWAIT when not, Linux
 * 6.15).  liburing keeps it in the ring's flags and passes it with every
 * wait; before liburing 2.10 it cannot pass it at all. */
static PyObject *
Ring_set_iowait(RingObject *self, PyObject *arg)
{
    int enabled = PyObject_IsTrue(arg);

    if (enabled < 0 || pu_ring_check(self) < 0)
        return NULL;
    if (!(self->features & IORING_FEAT_NO_IOWAIT))
        return pu_err_errno_msg(EOPNOTSUPP, "set_iowait(): this kernel always "
                                "counts waits as iowait (IORING_FEAT_NO_IOWAIT: "
                                "Linux 6.15)");
#if PU_LIBURING_AT_LEAST(2, 10)
    {
        int ret = io_uring_set_iowait(&self->ring, enabled != 0);
        if (ret < 0)
            return pu_err_errno(-ret);
    }
    Py_RETURN_NONE;
#else
    return pu_err_errno_msg(EOPNOTSUPP, "set_iowait(): needs liburing 2.10 or "
                            "later: the liburing this module was built with "
                            "cannot pass IORING_ENTER_NO_IOWAIT to its waits");
#endif
}

/* get_events(): io_uring_get_events(): the kernel posts what has completed
 * (runs deferred task work, flushes overflowed completions) without
 * waiting; the next reap or peek sees them */
static PyObject *
Ring_get_events(RingObject *self, PyObject *Py_UNUSED(ignored))
{
    int ret;

    if (pu_ring_check_cq(self) < 0)
        return NULL;
    ret = io_uring_get_events(&self->ring);
    if (ret < 0 && ret != -EINTR)
        return pu_err_errno(-ret);
    Py_RETURN_NONE;
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
batch_count(PyObject *arg, const char *fname, const char *name, Py_ssize_t *out)
{
    Py_ssize_t n = PyLong_AsSsize_t(arg);
    if (n == -1 && PyErr_Occurred())
        return -1;
    if (n < 0) {
        PyErr_Format(PyExc_ValueError, "%s(): %s must be >= 0", fname, name);
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

    if (batch_count(arg, "peek_batch_cqe", "count", &n) < 0 ||
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

    if (batch_count(arg, "cq_advance", "nr", &n) < 0 || pu_ring_check(self) < 0)
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

static const char *const reap_kw[] = {"count", "wait_nr", "submit", "columns", NULL};
static const pu_argspec reap_spec = {"reap", reap_kw, 1, 4, 1};
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

    /* (reap_to_sink() checked the completion side) */
    /* submit=True: what is queued goes in with the same io_uring_enter()
     * that waits, as submit_and_wait() does */
    if (submit && self->npending > 0 &&
        pu_ring_flush(self, (unsigned)(wait_nr > PU_CQ_LEN(self) ? wait_nr - PU_CQ_LEN(self) : 0)) < 0)
        return NULL;
    /* (ring_wait_full()'s own first test, inline: at batch 1 the
     * completion is usually there, from the submit) */
    if (wait_nr > 0 &&
        !(self->nhidden == 0 &&
          PU_CQ_LEN(self) + (Py_ssize_t)io_uring_cq_ready(&self->ring) >= wait_nr) &&
        ring_wait_full(self, wait_nr, -1.0, 1, NULL, -1.0) < 0)
        return NULL;
    if (io_uring_cq_ready(&self->ring) == 0 && pu_reap(self) < 0)
        return NULL;    /* (completions the kernel kept aside: see pu_reap) */
    if (kind == PU_SINK_ONE && PU_CQ_LEN(self) == 0) {
        /* one plain completion first in the CQ: no sink, no loop */
        PyObject *one = pu_reap_one_plain(self);
        if (one != NULL || PyErr_Occurred())
            return one;
    }
    cap = PU_CQ_LEN(self) + (Py_ssize_t)io_uring_cq_ready(&self->ring);
    if (cap > n)
        cap = n;
    if (pu_sink_new(&sink, kind, cap, pu_sink_spare(self, kind)) < 0)
        return NULL;
    while (got < cap) {
        Py_ssize_t k = PU_CQ_LEN(self);
        if (k > 0) {
            if (k > cap - got)
                k = cap - got;
            /* the allocations below may run the GC and finalizers: keep
             * them off the queue being read */
            uint64_t held = pu_side_take(&self->cq_owner);
            for (Py_ssize_t i = 0; i < k; i++) {
                PyObject *t, *d, *v, *f;
                if (pu_sink_slot(&sink, got + i, NULL, &t) < 0 ||
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

/* reap()'s arguments (and the deprecated reap_columns()', the same but
 * columns=True) */
static PyObject *
reap_parse(RingObject *self, const pu_argspec *spec, int columns,
           PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *argv[4];
    Py_ssize_t n, wait_nr = 0;
    int submit = 0;

    if (pu_parse_args(spec, args, nargs, kwnames, argv) < 0)
        return NULL;
    if (batch_count(argv[0], spec->fname, "count", &n) < 0 ||
        (argv[1] != NULL && batch_count(argv[1], spec->fname, "wait_nr", &wait_nr) < 0) ||
        (argv[2] != NULL && (submit = PyObject_IsTrue(argv[2])) < 0) ||
        (spec->nmax > 3 && argv[3] != NULL && (columns = PyObject_IsTrue(argv[3])) < 0))
        return NULL;
    if (wait_nr > n) {
        PyErr_Format(PyExc_ValueError, "%s(): wait_nr must be <= count", spec->fname);
        return NULL;
    }
    if (wait_nr > UINT32_MAX) {
        PyErr_Format(PyExc_OverflowError, "%s(): wait_nr is too large", spec->fname);
        return NULL;
    }
    return reap_to_sink(self, columns ? PU_SINK_COLUMNS : PU_SINK_LIST, n, wait_nr,
                        submit);
}

static PyObject *
Ring_reap(RingObject *self, PyObject *const *args, Py_ssize_t nargs,
          PyObject *kwnames)
{
    return reap_parse(self, &reap_spec, 0, args, nargs, kwnames);
}

static PyObject *
Ring_reap_columns(RingObject *self, PyObject *const *args, Py_ssize_t nargs,
                  PyObject *kwnames)
{
    if (PyErr_WarnEx(PyExc_DeprecationWarning, PU_DEPRECATED_IoUring_reap_columns, 1) < 0)
        return NULL;
    return reap_parse(self, &reap_columns_spec, 1, args, nargs, kwnames);
}

/* reap_one(wait=False, submit=False): reap(1, wait, submit)'s item without
 * the list, or None: one operation at a time pays no list per round trip */
static PyObject *
Ring_reap_one(RingObject *self, PyObject *const *args, Py_ssize_t nargs,
              PyObject *kwnames)
{
    PyObject *argv[2];
    int wait = 0, submit = 0;

    /* reap_one(True, True) or reap_one(False) as one round trip at a time
     * writes it: bools by position need no parsing */
    if (kwnames == NULL && nargs <= 2 &&
        (nargs < 1 || PyBool_Check(args[0])) &&
        (nargs < 2 || PyBool_Check(args[1])))
        return reap_to_sink(self, PU_SINK_ONE, 1,
                            nargs >= 1 && args[0] == Py_True,
                            nargs >= 2 && args[1] == Py_True);
    if (pu_parse_args(&reap_one_spec, args, nargs, kwnames, argv) < 0 ||
        (argv[0] != NULL && (wait = PyObject_IsTrue(argv[0])) < 0) ||
        (argv[1] != NULL && (submit = PyObject_IsTrue(argv[1])) < 0))
        return NULL;
    return reap_to_sink(self, PU_SINK_ONE, 1, wait, submit);
}

/* ---- end of batch reaping ---- */

/* IoUring's methods of the completion side (ring.c puts them in the type) */
PyMethodDef pu_wait_methods[] = {
    {"wait_cqe", (PyCFunction)(void (*)(void))Ring_wait_cqe,
     METH_FASTCALL | METH_KEYWORDS, PU_DOC_IoUring_wait_cqe},
    {"wait_cqe_nr", (PyCFunction)(void (*)(void))Ring_wait_cqe_nr,
     METH_FASTCALL | METH_KEYWORDS, PU_DOC_IoUring_wait_cqe_nr},
    {"wait_cqes", (PyCFunction)(void (*)(void))Ring_wait_cqes,
     METH_FASTCALL | METH_KEYWORDS, PU_DOC_IoUring_wait_cqes},
    {"wait_cqe_timeout", (PyCFunction)(void (*)(void))Ring_wait_cqe_timeout,
     METH_FASTCALL | METH_KEYWORDS, PU_DOC_IoUring_wait_cqe_timeout},
    {"wait_cqes_min_timeout", (PyCFunction)(void (*)(void))Ring_wait_cqes_min_timeout,
     METH_FASTCALL | METH_KEYWORDS, PU_DOC_IoUring_wait_cqes_min_timeout},
    {"submit_and_wait_reg", (PyCFunction)(void (*)(void))Ring_submit_and_wait_reg,
     METH_FASTCALL | METH_KEYWORDS, PU_DOC_IoUring_submit_and_wait_reg},
    {"submit_and_wait_timeout", (PyCFunction)(void (*)(void))Ring_submit_and_wait_timeout,
     METH_FASTCALL | METH_KEYWORDS, PU_DOC_IoUring_submit_and_wait_timeout},
    {"submit_and_wait_min_timeout",
     (PyCFunction)(void (*)(void))Ring_submit_and_wait_min_timeout,
     METH_FASTCALL | METH_KEYWORDS, PU_DOC_IoUring_submit_and_wait_min_timeout},
    {"peek_cqe", (PyCFunction)Ring_peek_cqe, METH_NOARGS, PU_DOC_IoUring_peek_cqe},
    {"get_events", (PyCFunction)Ring_get_events, METH_NOARGS, PU_DOC_IoUring_get_events},
    {"set_iowait", (PyCFunction)Ring_set_iowait, METH_O, PU_DOC_IoUring_set_iowait},
    {"cqe_seen", (PyCFunction)Ring_cqe_seen, METH_O, PU_DOC_IoUring_cqe_seen},
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
    {NULL, NULL, 0, NULL},
};
