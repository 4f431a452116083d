/* async/selector.c: AsyncRing's selector mode, for py_io_uring's EventLoop
 * (docs/loop.md, "The decision").  Why a mode of AsyncRing and not a ring
 * of its own: the loop has ONE ring.  The RingSelector's one-shot polls
 * (asyncio's add_reader/add_writer, the selector transports) and every
 * operation of the loop's AsyncRing (sock_*, the completion transport)
 * go on the same ring, and the selector's select() is the iteration's one
 * io_uring_enter: it submits what the iteration queued (polls armed and
 * removed, operations started) and waits for a completion with the loop's
 * timeout (an IORING_ENTER_EXT_ARG timespec), the GIL released; then it
 * reaps here, in C: an operation's completion goes to its waiter exactly
 * as the eventfd's reader would have handed it (dispatch.c), a poll's
 * becomes the (key, events) pair asyncio's _process_events() takes.  In
 * this mode the AsyncRing has no eventfd, adds no reader to the loop and
 * schedules no call_soon() flush: the next select() is the flush.
 *
 * The polls are the RingSelector's (loop.py), kept here by fd: its key,
 * the events it watches, the token of its poll in the kernel.  Level-
 * triggered, as asyncio needs: one one-shot POLL_ADD per registered fd;
 * one that fired is armed again by the next select(), and fires at once
 * when the fd is still ready (a multishot poll is edge-triggered and would
 * hang a reader that leaves bytes unread).  A token is generation << 32 |
 * fd, the generation (31 bits, never 0) new for every poll: under 2**63,
 * so no record's user_data (those carry PU_UD_TAG), with a low half that
 * is never the runtime's all-ones, so the reap hands it over with no
 * record behind it.  modify() with other events and unregister() remove
 * the poll (IORING_OP_POLL_REMOVE by token, whose own completion is the
 * runtime's, PU_UD_INTERNAL, never seen); the removed poll's -ECANCELED
 * then names a token that is no longer its fd's, and is dropped.  Polls
 * pin no memory: the ring's teardown (closing its fd) ends those armed. */
#include "async/async_internal.h"
#include "core/reap_sink.h"
#include "core/submit.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <unistd.h>

/* (key, events), an entry of select()'s list, made by hand:
 * Py_BuildValue() would parse its format for every ready fd */
static PyObject *
key_events(PyObject *key, int events)
{
    PyObject *ev = PyLong_FromLong(events), *t;
    if (ev == NULL)
        return NULL;
    t = PyTuple_Pack(2, key, ev);
    Py_DECREF(ev);
    return t;
}

/* The selector's state: by fd, and what the next select() sends. */
typedef struct {
    PyObject *key;          /* the selector's key (strong); NULL: none */
    __u64 token;            /* of its poll in the kernel; 0: none */
    uint8_t events;         /* EVENT_READ 1 | EVENT_WRITE 2 */
    uint8_t pending;        /* listed in arm[] */
    uint8_t held;           /* events reaped outside select() (listed in
                               held[]): the next select() reports them */
} pu_sel_fd;

struct pu_aio_selector {
    pu_sel_fd *fds;
    Py_ssize_t nfds;
    int *arm;               /* fds whose poll the next select() arms */
    Py_ssize_t narm, arm_cap;
    __u64 *rm;              /* tokens of polls it removes */
    Py_ssize_t nrm, rm_cap;
    int *held;              /* fds with held events */
    Py_ssize_t nheld, held_cap;
    uint32_t gen;           /* the last token's generation */
};

#define PU_SEL_READ 1       /* selectors.EVENT_READ */
#define PU_SEL_WRITE 2      /* selectors.EVENT_WRITE */

/* _selector_mode(): called once, before first use, by the RingSelector
 * that makes the ring: the eventfd goes (nothing reads it any more). */
static PyObject *
AsyncRing_selector_mode(AsyncRingObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->ring == NULL || !self->ring->initialised || self->closed) {
        PyErr_SetString(PyExc_RuntimeError, "AsyncRing is closed");
        return NULL;
    }
    if (self->loop != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_selector_mode(): the AsyncRing is "
                        "bound to a loop already");
        return NULL;
    }
    if (!self->selector_mode) {
        self->sel = PyMem_Calloc(1, sizeof(*self->sel));
        if (self->sel == NULL)
            return PyErr_NoMemory();
        if (self->efd >= 0) {
            int ret = io_uring_unregister_eventfd(&self->ring->ring);
            if (ret < 0)
                return pu_err_errno(-ret);
            close(self->efd);
            self->efd = -1;
        }
        self->selector_mode = 1;
    }
    Py_RETURN_NONE;
}

static int
grow(void **p, Py_ssize_t *cap, Py_ssize_t need, size_t size)
{
    Py_ssize_t n;
    void *q;
    if (need <= *cap)
        return 0;
    n = *cap ? *cap : 16;
    while (n < need)
        n *= 2;
    q = PyMem_Realloc(*p, (size_t)n * size);
    if (q == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    *p = q;
    *cap = n;
    return 0;
}

static int
push_arm(struct pu_aio_selector *sel, int fd)
{
    if (sel->fds[fd].pending)
        return 0;
    if (grow((void **)&sel->arm, &sel->arm_cap, sel->narm + 1, sizeof(int)) < 0)
        return -1;
    sel->arm[sel->narm++] = fd;
    sel->fds[fd].pending = 1;
    return 0;
}

/* The poll of e goes: its removal is sent by the next select() (none once
 * the ring is closing: the teardown ends it). */
static int
drop_poll(AsyncRingObject *self, pu_sel_fd *e)
{
    struct pu_aio_selector *sel = self->sel;
    __u64 token = e->token;
    if (token == 0)
        return 0;
    e->token = 0;
    if (self->closed || self->closing)
        return 0;
    if (grow((void **)&sel->rm, &sel->rm_cap, sel->nrm + 1, sizeof(__u64)) < 0)
        return -1;
    sel->rm[sel->nrm++] = token;
    return 0;
}

static int
fd_arg(AsyncRingObject *self, PyObject *o, const char *name)
{
    long fd;
    if (self->sel == NULL) {
        PyErr_Format(PyExc_RuntimeError, "%s(): the AsyncRing is not in selector "
                     "mode", name);
        return -1;
    }
    fd = PyLong_AsLong(o);
    if (fd == -1 && PyErr_Occurred())
        return -1;
    if (fd < 0 || fd > INT_MAX) {
        PyErr_Format(PyExc_ValueError, "%s(): bad file descriptor %ld", name, fd);
        return -1;
    }
    return (int)fd;
}

/* _sel_set(fd, events, key): the selector registered fd, or changed its
 * key: with other events than before, its poll is removed and a new one
 * armed by the next select(). */
static PyObject *
AsyncRing_sel_set(AsyncRingObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    struct pu_aio_selector *sel;
    pu_sel_fd *e;
    long events;
    int fd;

    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "_sel_set() takes exactly 3 arguments");
        return NULL;
    }
    if ((fd = fd_arg(self, args[0], "_sel_set")) < 0)
        return NULL;
    events = PyLong_AsLong(args[1]);
    if (events == -1 && PyErr_Occurred())
        return NULL;
    if (events <= 0 || events > (PU_SEL_READ | PU_SEL_WRITE)) {
        PyErr_Format(PyExc_ValueError, "_sel_set(): invalid events: %ld", events);
        return NULL;
    }
    sel = self->sel;
    if (fd >= sel->nfds) {
        Py_ssize_t old = sel->nfds, cap = sel->nfds;
        if (grow((void **)&sel->fds, &cap, (Py_ssize_t)fd + 1, sizeof(pu_sel_fd)) < 0)
            return NULL;
        memset(sel->fds + old, 0, (size_t)(cap - old) * sizeof(pu_sel_fd));
        sel->nfds = cap;
    }
    e = &sel->fds[fd];
    if (e->events != (uint8_t)events || e->key == NULL) {
        if (drop_poll(self, e) < 0 || push_arm(sel, fd) < 0)
            return NULL;
        e->events = (uint8_t)events;
    }
    Py_INCREF(args[2]);
    Py_XSETREF(e->key, args[2]);   /* last: the old key's release may run code */
    Py_RETURN_NONE;
}

static int remove_now(AsyncRingObject *self);

/* _sel_del(fd): the selector unregistered fd: its poll goes, now. */
static PyObject *
AsyncRing_sel_del(AsyncRingObject *self, PyObject *arg)
{
    pu_sel_fd *e;
    int fd = fd_arg(self, arg, "_sel_del");

    if (fd < 0)
        return NULL;
    if (fd >= self->sel->nfds)
        Py_RETURN_NONE;
    e = &self->sel->fds[fd];
    if (drop_poll(self, e) < 0)
        return NULL;
    e->events = 0;
    e->held = 0;
    Py_CLEAR(e->key);
    if (remove_now(self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* A bare SQE (no record), the SQ flushed first when full. */
static struct io_uring_sqe *
bare_sqe(AsyncRingObject *self, __u64 ud)
{
    struct io_uring_sqe *sqe = pu_get_sqe(self->ring);
    if (sqe == NULL) {
        if (pu_aio_flush_now(self) < 0)
            return NULL;
        sqe = pu_get_sqe(self->ring);
        if (sqe == NULL) {
            PyErr_SetString(pu_SubmissionQueueFull, "select(): no room for a poll");
            return NULL;
        }
    }
    pu_sqe_reset(self->ring, sqe, ud);
    return sqe;
}

/* Queue the removals.  On failure what is left stays listed. */
static int
queue_removals(AsyncRingObject *self)
{
    struct pu_aio_selector *sel = self->sel;
    Py_ssize_t i;

    for (i = 0; i < sel->nrm; i++) {
        struct io_uring_sqe *sqe = bare_sqe(self, PU_UD_INTERNAL);
        if (sqe == NULL) {
            memmove(sel->rm, sel->rm + i, (size_t)(sel->nrm - i) * sizeof(__u64));
            sel->nrm -= i;
            return -1;
        }
        io_uring_prep_poll_remove(sqe, sel->rm[i]);
        sqe->user_data = PU_UD_INTERNAL;
    }
    sel->nrm = 0;
    return 0;
}

/* The removal of an unregistered fd's poll, in the kernel before
 * _sel_del() returns: a poll holds a reference to the fd's file, and
 * asyncio closes the fd next (server.close(): a connect right after must
 * be refused; test_events' test_server_close).  Submitted alone, a poll
 * that fired would still hold it: the kernel posts its completion, and
 * lets go, only when the ring's issuer asks on a DEFER_TASKRUN ring, or
 * at the thread's next system call otherwise, so it is asked for here
 * (the cost of epoll's EPOLL_CTL_DEL: one system call).  From a thread the
 * ring takes nothing from (a loop closed from another), or a ring never
 * enabled, it is left to the next select() or to the teardown; so it is
 * while another thread holds a side of the ring (the loop waiting in
 * select() while a thread it does not own unregisters: asyncio does not
 * check, and the removal never raised there). */
static int
remove_now(AsyncRingObject *self)
{
    RingObject *r = self->ring;

    if (self->sel->nrm == 0 || r->disabled || !PU_ISSUER_HERE(r) ||
        r->fork_generation != pu_fork_generation || !PU_RING_USABLE(r) ||
        r->sq_owner != 0 || r->cq_owner != 0)
        return 0;
    if (queue_removals(self) < 0 || pu_aio_flush_now(self) < 0)
        return -1;
    if (r->setup_flags & IORING_SETUP_DEFER_TASKRUN)
        io_uring_get_events(&r->ring);
    return 0;
}

/* Queue the removals and the polls to arm.  On failure what is left stays
 * listed for the next select(). */
static int
queue_polls(AsyncRingObject *self)
{
    struct pu_aio_selector *sel = self->sel;
    Py_ssize_t i;

    if (queue_removals(self) < 0)
        return -1;
    for (i = 0; i < sel->narm; i++) {
        int fd = sel->arm[i];
        pu_sel_fd *e = &sel->fds[fd];
        struct io_uring_sqe *sqe;
        unsigned mask = 0;
        __u64 token;

        if (e->key == NULL || e->token != 0) {
            e->pending = 0;     /* unregistered since, or armed */
            continue;
        }
        if (e->events & PU_SEL_READ)
            mask |= POLLIN | POLLPRI;
        if (e->events & PU_SEL_WRITE)
            mask |= POLLOUT;
        if (++sel->gen > PU_GEN_MASK)
            sel->gen = 1;
        token = (__u64)sel->gen << 32 | (uint32_t)fd;
        if ((sqe = bare_sqe(self, token)) == NULL)
            goto fail_arm;
        io_uring_prep_poll_add(sqe, fd, mask);
        sqe->user_data = token;
        e->token = token;
        e->pending = 0;
    }
    sel->narm = 0;
    return 0;
fail_arm:
    memmove(sel->arm, sel->arm + i, (size_t)(sel->narm - i) * sizeof(int));
    sel->narm -= i;
    return -1;
}

/* A completion no record names (dispatch.c): a poll of ours, or stale (a
 * removed poll: its token is no longer its fd's), or a message nobody
 * takes.  A live poll's fd is armed again by the next select(), and what
 * it reports goes to ready as (key, events), or is held for the next
 * select() when ready is NULL.  0, or -1 with an exception. */
int
pu_aio_sel_complete(AsyncRingObject *self, PyObject *ready, __u64 ud, int res)
{
    struct pu_aio_selector *sel = self->sel;
    uint32_t fd = (uint32_t)(ud & 0xffffffffu);
    pu_sel_fd *e;
    int events = 0;
    PyObject *t;

    if (sel == NULL || (ud >> 63) || fd >= (uint64_t)sel->nfds)
        return 0;
    e = &sel->fds[fd];
    if (e->token != ud || e->key == NULL)
        return 0;
    e->token = 0;
    if (res < 0 || (res & (POLLIN | POLLPRI | POLLERR | POLLHUP)))
        events |= PU_SEL_READ;
    if (res < 0 || (res & (POLLOUT | POLLERR | POLLHUP)))
        events |= PU_SEL_WRITE;
    events &= e->events;
    if (res != -ECANCELED && events != 0 && ready == NULL) {
        /* reaped outside select() (process_completions(), a receive
         * settling its cancelled predecessor: pu_aio_process()): held for
         * the next select(), which reports them and only then arms the fd
         * again, as for a poll it reaped itself (armed now, a poll of an
         * fd still ready would fire in that same select: two reports) */
        if (!e->held) {
            if (grow((void **)&sel->held, &sel->held_cap, sel->nheld + 1,
                     sizeof(int)) < 0)
                return -1;
            sel->held[sel->nheld++] = (int)fd;
        }
        e->held |= (uint8_t)events;
        return 0;
    }
    if (push_arm(sel, (int)fd) < 0)
        return -1;
    if (res == -ECANCELED || events == 0)
        return 0;   /* cancelled by someone else: armed again, nothing to say */
    t = key_events(e->key, events);
    if (t == NULL)
        return -1;
    res = PyList_Append(ready, t);
    Py_DECREF(t);
    return res;
}

int
pu_aio_sel_traverse(AsyncRingObject *self, visitproc visit, void *arg)
{
    if (self->sel != NULL) {
        for (Py_ssize_t i = 0; i < self->sel->nfds; i++)
            Py_VISIT(self->sel->fds[i].key);
    }
    return 0;
}

/* The keys go (the GC's clear, closing): no poll is left to report. */
void
pu_aio_sel_clear(AsyncRingObject *self)
{
    struct pu_aio_selector *sel = self->sel;
    if (sel == NULL)
        return;
    for (Py_ssize_t i = 0; i < sel->nfds; i++) {
        sel->fds[i].token = 0;
        sel->fds[i].events = 0;
        sel->fds[i].pending = 0;
        sel->fds[i].held = 0;
        Py_CLEAR(sel->fds[i].key);
    }
    sel->narm = sel->nrm = sel->nheld = 0;
}

void
pu_aio_sel_free(AsyncRingObject *self)
{
    struct pu_aio_selector *sel = self->sel;
    if (sel == NULL)
        return;
    pu_aio_sel_clear(self);
    self->sel = NULL;
    PyMem_Free(sel->fds);
    PyMem_Free(sel->arm);
    PyMem_Free(sel->rm);
    PyMem_Free(sel->held);
    PyMem_Free(sel);
}

/* Submit what is queued and wait for one completion, timeout seconds at
 * most (< 0: no limit; 0: submit only), in one io_uring_enter: liburing's
 * submit_and_wait(_timeout) with the kernel's EXT_ARG (Linux 5.11; older
 * kernels get liburing's timeout SQE, in the same enter).  No wait when
 * completions are there already.  A signal: its handlers run (an
 * exception from one is raised), then the wait goes on; asyncio's handlers
 * write to the self-pipe, whose poll ends it. */
static int
enter(AsyncRingObject *self, double timeout)
{
    RingObject *r = self->ring;
    double deadline = timeout > 0 ? pu_monotonic() + timeout : -1.0;
    int wait = timeout != 0.0;

    if (pu_ring_check_sq(r) < 0 || pu_aio_check_issuer(self) < 0)
        return -1;
    if (r->cq_owner != 0) {
        PyErr_SetString(PyExc_RuntimeError, "select(): another thread is waiting "
                        "on the loop's ring");
        return -1;
    }
    for (;;) {
        struct io_uring_cqe *cqe;
        struct __kernel_timespec ts;
        uint64_t sq_prev, cq_prev;
        int ret;

        if (!wait || PU_CQ_LEN(r) > 0 || io_uring_cq_ready(&r->ring) > 0)
            return pu_aio_flush_now(self) < 0 ? -1 : 0;
        if (deadline >= 0) {
            double left = deadline - pu_monotonic();
            if (left <= 0)
                return pu_aio_flush_now(self) < 0 ? -1 : 0;
            ts.tv_sec = (long long)left;
            ts.tv_nsec = (long long)((left - (double)ts.tv_sec) * 1e9);
        }
        pu_seal_pending(r);   /* before the GIL goes */
        if (io_uring_sq_ready(&r->ring) > 0)
            self->submits++;
        sq_prev = pu_side_take(&r->sq_owner);
        cq_prev = pu_side_take(&r->cq_owner);
        Py_BEGIN_ALLOW_THREADS
        if (deadline >= 0)
            ret = io_uring_submit_and_wait_timeout(&r->ring, &cqe, 1, &ts, NULL);
        else
            ret = io_uring_submit_and_wait(&r->ring, 1);
        Py_END_ALLOW_THREADS
        pu_side_put(&r->cq_owner, cq_prev);
        pu_side_put(&r->sq_owner, sq_prev);
        if (ret == -EINTR) {
            if (PyErr_CheckSignals() < 0 || pu_still_usable(r) < 0)
                return -1;
            continue;
        }
        if (ret < 0 && ret != -ETIME && ret != -EAGAIN) {
            pu_err_errno(-ret);
            return -1;
        }
        return 0;
    }
}

/* The events held since the last select(), first (they came first), for
 * the fds still registered; on failure what is left stays held. */
static int
take_held(struct pu_aio_selector *sel, PyObject *ready)
{
    Py_ssize_t i;
    for (i = 0; i < sel->nheld; i++) {
        pu_sel_fd *e = &sel->fds[sel->held[i]];
        int events = e->held & e->events;
        PyObject *t;
        if (e->key == NULL || events == 0) {
            e->held = 0;
            continue;
        }
        t = key_events(e->key, events);
        if (t == NULL || PyList_Append(ready, t) < 0) {
            Py_XDECREF(t);
            memmove(sel->held, sel->held + i, (size_t)(sel->nheld - i) * sizeof(int));
            sel->nheld -= i;
            return -1;
        }
        Py_DECREF(t);
        e->held = 0;
        if (push_arm(sel, sel->held[i]) < 0) {
            /* reported, not armed: lost until re-registered; say so */
            memmove(sel->held, sel->held + i + 1,
                    (size_t)(sel->nheld - i - 1) * sizeof(int));
            sel->nheld -= i + 1;
            return -1;
        }
    }
    sel->nheld = 0;
    return 0;
}

/* _select(timeout): arm and remove what the selector changed, submit it
 * with every operation queued, wait up to timeout seconds (None: no limit;
 * <= 0: not at all), hand the operations' completions to their waiters,
 * and return the polls' as asyncio's [(key, events), ...]. */
static PyObject *
AsyncRing_select(AsyncRingObject *self, PyObject *arg)
{
    double timeout = -1.0;
    PyObject *ready;

    if (self->sel == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_select(): the AsyncRing is not in "
                        "selector mode");
        return NULL;
    }
    if (pu_aio_check_open(self) < 0 || pu_ring_check(self->ring) < 0)
        return NULL;    /* (a forked child's copy is refused here) */
    if (arg != Py_None) {
        timeout = PyFloat_AsDouble(arg);
        if (timeout == -1.0 && PyErr_Occurred())
            return NULL;
        if (isnan(timeout)) {
            PyErr_SetString(PyExc_ValueError, "select(): timeout is NaN");
            return NULL;
        }
        if (timeout <= 0)
            timeout = 0.0;
        else if (isinf(timeout))
            timeout = -1.0;
    }
    if (queue_polls(self) < 0)
        return NULL;
    if (self->sel->nheld > 0)
        timeout = 0.0;      /* held events are ready now */
    /* a new iteration: the next operation checks the running loop again */
    self->flush_scheduled = 0;
    if (enter(self, timeout) < 0)
        return NULL;
    ready = PyList_New(0);
    if (ready == NULL || take_held(self->sel, ready) < 0) {
        Py_XDECREF(ready);
        return NULL;
    }
    if (pu_aio_process_into(self, ready) < 0 && PyErr_Occurred()) {
        Py_DECREF(ready);
        return NULL;
    }
    return ready;
}

/* _close_now(): close a ring no loop closes (a RingSelector used on its
 * own, or one whose loop never used its AsyncRing): what is in flight is
 * cancelled, waited for (bounded) and dropped; the selector's keys go. */
static PyObject *
AsyncRing_close_now(AsyncRingObject *self, PyObject *Py_UNUSED(ignored))
{
    if (!self->closed) {
        self->closing = 1;
        pu_aio_finish_close(self);
    }
    pu_aio_sel_clear(self);
    Py_RETURN_NONE;
}

PyMethodDef pu_aio_selector_methods[] = {
    {"_selector_mode", (PyCFunction)AsyncRing_selector_mode, METH_NOARGS, NULL},
    {"_sel_set", (PyCFunction)(void (*)(void))AsyncRing_sel_set, METH_FASTCALL, NULL},
    {"_sel_del", (PyCFunction)AsyncRing_sel_del, METH_O, NULL},
    {"_select", (PyCFunction)AsyncRing_select, METH_O, NULL},
    {"_close_now", (PyCFunction)AsyncRing_close_now, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};
