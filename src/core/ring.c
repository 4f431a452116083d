/* ring.c: the IoUring type: setup (queue_init, queue_exit), the probe,
 * the small queries, and the type itself, whose methods come from each
 * side: submit.c (submission), wait.c (completion), register/. */
#include "core/submit.h"
#include "register/register.h"
#include "core/reap_sink.h"
#include "methods_doc.h"
#include "ops/liburing_compat.h"
#include <unistd.h>

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

/* Setup flags newer than liburing 2.3's headers, by their kernel values */
#ifndef IORING_SETUP_NO_MMAP
#define IORING_SETUP_NO_MMAP (1U << 14)
#endif
#ifndef IORING_SETUP_REGISTERED_FD_ONLY
#define IORING_SETUP_REGISTERED_FD_ONLY (1U << 15)
#endif
#ifndef IORING_SETUP_NO_SQARRAY
#define IORING_SETUP_NO_SQARRAY (1U << 16)
#endif
#ifndef IORING_SETUP_HYBRID_IOPOLL
#define IORING_SETUP_HYBRID_IOPOLL (1U << 17)
#endif
#ifndef IORING_SETUP_CQE_MIXED
#define IORING_SETUP_CQE_MIXED (1U << 18)
#endif
#ifndef IORING_SETUP_SQE_MIXED
#define IORING_SETUP_SQE_MIXED (1U << 19)
#endif

#if defined(IO_URING_VERSION_MAJOR) && \
    (IO_URING_VERSION_MAJOR > 2 || (IO_URING_VERSION_MAJOR == 2 && IO_URING_VERSION_MINOR >= 6))
#define PU_LIBURING_NO_SQARRAY 1    /* liburing 2.6 maps rings without an SQ array */
#endif

/* The setup flags a ring runs correctly with: the kernel and liburing do
 * all the work.  Any other is refused before the kernel sees it, with why:
 * a flag liburing does not know sets up a ring liburing then drives wrong
 * (NO_SQARRAY under liburing 2.3 reaps phantom completions), and unknown
 * future flags may do the same. */
#define PU_SETUP_SUPPORTED                                                    \
    (IORING_SETUP_IOPOLL | IORING_SETUP_SQPOLL | IORING_SETUP_SQ_AFF |         \
     IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP | IORING_SETUP_ATTACH_WQ |       \
     IORING_SETUP_R_DISABLED | IORING_SETUP_SUBMIT_ALL |                       \
     IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG |                   \
     IORING_SETUP_SQE128 | IORING_SETUP_CQE32 | IORING_SETUP_SINGLE_ISSUER |    \
     IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_HYBRID_IOPOLL)

static int
check_setup_flags(const char *fname, unsigned flags)
{
    unsigned other = flags & ~(unsigned)PU_SETUP_SUPPORTED;
    const char *why;

#ifdef PU_LIBURING_NO_SQARRAY
    other &= ~(unsigned)IORING_SETUP_NO_SQARRAY;
#endif
    if (other == 0)
        return 0;
    if (other & (IORING_SETUP_NO_MMAP | IORING_SETUP_REGISTERED_FD_ONLY))
        why = "IORING_SETUP_NO_MMAP and IORING_SETUP_REGISTERED_FD_ONLY put the "
              "rings in memory the caller provides, which this call does not take "
              "(queue_init_mem() does, for IORING_SETUP_NO_MMAP)";
    else if (other & IORING_SETUP_NO_SQARRAY)
        why = "IORING_SETUP_NO_SQARRAY needs liburing 2.6 or later; this module "
              "was built with an older liburing, which would drive such a ring wrong";
    else if (other & (IORING_SETUP_CQE_MIXED | IORING_SETUP_SQE_MIXED))
        why = "IORING_SETUP_CQE_MIXED and IORING_SETUP_SQE_MIXED (entries of two "
              "sizes in one queue) are not supported; IORING_SETUP_SQE128 and "
              "IORING_SETUP_CQE32 make every entry big";
    else {
        PyErr_Format(PyExc_ValueError, "%s(): unknown setup flags 0x%x", fname, other);
        return -1;
    }
    PyErr_Format(PyExc_ValueError, "%s(): %s", fname, why);
    return -1;
}

/* io_uring_queue_exit(), or for a ring in the caller's memory
 * (queue_init_mem()) only the close: liburing before 2.5 would munmap that
 * memory.  The memory's pin is released later, by teardown. */
void
pu_ring_close(RingObject *r)
{
    if (r->ring_mem != NULL) {
        if (r->ring.ring_fd >= 0)      /* (-1 after close_ring_fd()) */
            close(r->ring.ring_fd);
    } else
        io_uring_queue_exit(&r->ring);
}

/* Set the ring up; with mem, in that memory (IORING_SETUP_NO_MMAP): on
 * success the ring keeps mem (the caller's PyMem Py_buffer) until
 * teardown. */
int
pu_ring_setup(RingObject *r, const char *fname, long long entries,
              struct io_uring_params *p, Py_buffer *mem)
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
    if (check_setup_flags(fname, mem != NULL ? flags & ~(unsigned)IORING_SETUP_NO_MMAP
                                             : flags) < 0)
        return -1;
    if (mem != NULL)
        ret = io_uring_queue_init_mem((unsigned)entries, &r->ring, p, mem->buf,
                                      (size_t)mem->len);
    else
        ret = io_uring_queue_init_params((unsigned)entries, &r->ring, p);
    if (ret < 0) {
        pu_err_setup(-ret);
        return -1;
    }
    if (mem != NULL)
        flags |= IORING_SETUP_NO_MMAP;
    r->ring_mem = mem;
    /* a forked child must not write into the parent's rings (not in the
     * caller's memory: that would take it from the child altogether) */
    if (mem == NULL)
        (void)io_uring_ring_dontfork(&r->ring);
    r->features = r->ring.features;
    r->setup_flags = flags;
    r->disabled = (flags & IORING_SETUP_R_DISABLED) != 0;
    r->issuer = (flags & IORING_SETUP_SINGLE_ISSUER) && !r->disabled
                ? pu_thread_token() : 0;
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
        pu_ring_close(r);
        r->ring_mem = NULL;   /* the caller's again */
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
    return pu_ring_setup(self, new_spec.fname, count, &p, NULL);
}

static PyObject *
Ring_queue_init(RingObject *self, PyObject *const *args, Py_ssize_t nargs,
                PyObject *kwnames)
{
    struct io_uring_params p;
    long long entries;

    if (parse_init(&init_spec, args, nargs, kwnames, &entries, &p) < 0 ||
        pu_ring_setup(self, init_spec.fname, entries, &p, NULL) < 0)
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
    uint64_t me = pu_side_holder();

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

/* cq_eventfd_toggle(enabled): whether the registered eventfd is signalled
 * (IORING_CQ_EVENTFD_DISABLED in the CQ ring's flags) */
static PyObject *
Ring_cq_eventfd_toggle(RingObject *self, PyObject *arg)
{
    int enabled = PyObject_IsTrue(arg), ret;

    if (enabled < 0 || pu_ring_check(self) < 0)
        return NULL;
    ret = io_uring_cq_eventfd_toggle(&self->ring, enabled != 0);
    if (ret < 0)
        return pu_err_errno(-ret);
    Py_RETURN_NONE;
}

/* register_eventfd() and register_eventfd_async() (the eventfd is then
 * signalled only for completions of operations that went async, not for
 * those completed inline at submit) */
static PyObject *
register_eventfd(RingObject *self, PyObject *arg,
                 int (*reg)(struct io_uring *, int))
{
    int fd, ret;
    if (pu_ring_check(self) < 0)
        return NULL;
    fd = PyObject_AsFileDescriptor(arg);
    if (fd < 0)
        return NULL;
    ret = reg(&self->ring, fd);
    if (ret < 0)
        return pu_err_errno(-ret);
    Py_RETURN_NONE;
}

static PyObject *
Ring_register_eventfd(RingObject *self, PyObject *arg)
{
    return register_eventfd(self, arg, io_uring_register_eventfd);
}

static PyObject *
Ring_register_eventfd_async(RingObject *self, PyObject *arg)
{
    return register_eventfd(self, arg, io_uring_register_eventfd_async);
}

/* cq_has_overflow(): completions the kernel holds aside because the CQ was
 * full (IORING_SQ_CQ_OVERFLOW); the next reap or wait brings them in */
static PyObject *
Ring_cq_has_overflow(RingObject *self, PyObject *Py_UNUSED(ignored))
{
    if (pu_ring_check(self) < 0)
        return NULL;
    return PyBool_FromLong(io_uring_cq_has_overflow(&self->ring));
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
    if (self->fd_closed) {
        PyErr_Format(PyExc_ValueError, "fileno(): the ring's fd was closed by "
                     "close_ring_fd(); the ring is reachable only from the "
                     "thread that registered it, by its registered index %d",
                     self->reg_index);
        return NULL;
    }
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

/* opcode_supported(op): io_uring_opcode_supported() on the probe taken at
 * setup, by IORING_OP_* number (any opcode, also one no prep_* uses) or by
 * prep_* name */
static PyObject *
Ring_opcode_supported(RingObject *self, PyObject *op)
{
    long opcode;

    if (PyUnicode_Check(op)) {
        for (int i = 0; i < pu_nopdefs; i++) {
            if (PyUnicode_CompareWithASCIIString(op, pu_opdefs[i].name) == 0) {
                if (pu_ring_check(self) < 0)
                    return NULL;
                return PyBool_FromLong(PU_SUPPORTED(self, pu_opdefs[i].opcode));
            }
        }
        PyErr_Format(PyExc_ValueError, "opcode_supported(): no operation named %R "
                     "(the names are prep_*'s without prep_)", op);
        return NULL;
    }
    if (!PyLong_Check(op)) {
        PyErr_Format(PyExc_TypeError, "opcode_supported() takes an IORING_OP_* "
                     "number or an operation's name, not %.100s", Py_TYPE(op)->tp_name);
        return NULL;
    }
    opcode = PyLong_AsLong(op);
    if (opcode == -1 && PyErr_Occurred())
        return NULL;
    if (pu_ring_check(self) < 0)
        return NULL;
    /* numbers past the probe's range are opcodes no kernel has */
    return PyBool_FromLong(opcode >= 0 && opcode < 256 && PU_SUPPORTED(self, opcode));
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
    Py_VISIT(self->last_list);   /* the caller may have put anything in it */
    return pu_rsrc_traverse(self, visit, arg);
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
    Py_CLEAR(self->one_tuple);   /* (teardown may not have run) */
    Py_CLEAR(self->last_list);
    Py_CLEAR(self->res_int);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
Ring_repr(RingObject *self)
{
    if (!self->initialised)
        return PyUnicode_FromString("<py_io_uring.IoUring closed>");
    if (self->fd_closed)
        return PyUnicode_FromFormat("<py_io_uring.IoUring fd=closed "
                                    "registered_index=%d entries=%u in_flight=%zd>",
                                    self->reg_index, self->sq_entries,
                                    self->nrecords);
    return PyUnicode_FromFormat("<py_io_uring.IoUring fd=%d entries=%u in_flight=%zd>",
                                self->ring.ring_fd, self->sq_entries,
                                self->nrecords);
}

static PyMethodDef Ring_methods[] = {
    {"queue_init", (PyCFunction)(void (*)(void))Ring_queue_init,
     METH_FASTCALL | METH_KEYWORDS, PU_DOC_IoUring_queue_init},
    {"queue_exit", (PyCFunction)Ring_queue_exit, METH_NOARGS,
     PU_DOC_IoUring_queue_exit},
    {"sq_ready", (PyCFunction)Ring_sq_ready, METH_NOARGS, PU_DOC_IoUring_sq_ready},
    {"sq_space_left", (PyCFunction)Ring_sq_space_left, METH_NOARGS,
     PU_DOC_IoUring_sq_space_left},
    {"cq_ready", (PyCFunction)Ring_cq_ready, METH_NOARGS, PU_DOC_IoUring_cq_ready},
    {"cq_event_fd_enabled", (PyCFunction)Ring_cq_event_fd_enabled, METH_NOARGS,
     PU_DOC_IoUring_cq_event_fd_enabled},
    {"register_eventfd", (PyCFunction)Ring_register_eventfd, METH_O,
     PU_DOC_IoUring_register_eventfd},
    {"cq_eventfd_toggle", (PyCFunction)Ring_cq_eventfd_toggle, METH_O,
     PU_DOC_IoUring_cq_eventfd_toggle},
    {"register_eventfd_async", (PyCFunction)Ring_register_eventfd_async, METH_O,
     PU_DOC_IoUring_register_eventfd_async},
    {"cq_has_overflow", (PyCFunction)Ring_cq_has_overflow, METH_NOARGS,
     PU_DOC_IoUring_cq_has_overflow},
    {"unregister_eventfd", (PyCFunction)Ring_unregister_eventfd, METH_NOARGS,
     PU_DOC_IoUring_unregister_eventfd},
    {"fileno", (PyCFunction)Ring_fileno, METH_NOARGS, PU_DOC_IoUring_fileno},
    {"in_flight", (PyCFunction)Ring_in_flight, METH_NOARGS, PU_DOC_IoUring_in_flight},
    {"probe", (PyCFunction)Ring_probe, METH_NOARGS, PU_DOC_IoUring_probe},
    {"opcode_supported", (PyCFunction)Ring_opcode_supported, METH_O,
     PU_DOC_IoUring_opcode_supported},
    {"features", (PyCFunction)Ring_features, METH_NOARGS, PU_DOC_IoUring_features},
    {"__enter__", (PyCFunction)Ring_enter, METH_NOARGS, PU_DOC_IoUring___enter__},
    {"__exit__", (PyCFunction)(void (*)(void))Ring_exit, METH_FASTCALL,
     PU_DOC_IoUring___exit__},
    {"prep_many", (PyCFunction)(void (*)(void))pu_ring_prep_many,
     METH_FASTCALL | METH_KEYWORDS, PU_DOC_IoUring_prep_many},
    {NULL, NULL, 0, NULL},
};

/* The ring's method table, put together from each layer's own: these
 * (setup, probe, the small queries, prep_many), the submission side
 * (submit.c), the completion side (wait.c), the registrations
 * (register/register.c) and the generated prep_* fast forms. */
int
pu_ring_type_init(void)
{
    PyMethodDef *const tables[] = {Ring_methods, pu_submit_methods, pu_wait_methods,
                                   pu_register_methods, pu_restrict_methods, pu_ring_fd_methods,
                                   pu_napi_methods, pu_sync_methods, pu_query_methods,
                                   pu_tags_methods, pu_clone_methods, pu_resize_methods,
                                   pu_ring_mem_methods, pu_region_methods, pu_zcrx_methods,
                                   pu_generated_ring_methods};
    size_t ntables = sizeof(tables) / sizeof(tables[0]), n = 0, k;
    PyMethodDef *all, *m;

    for (k = 0; k < ntables; k++)
        for (m = tables[k]; m->ml_name != NULL; m++)
            n++;
    all = PyMem_RawCalloc(n + 1, sizeof(PyMethodDef));
    if (all == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    n = 0;
    for (k = 0; k < ntables; k++)
        for (m = tables[k]; m->ml_name != NULL; m++)
            all[n++] = *m;
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
