/* register.c: resources registered with the ring: fixed files, fixed
 * buffers and provided-buffer rings.
 *
 * Registered buffers stay pinned (Py_buffer) from register_buffers() until
 * unregister_buffers() or teardown; an op that reads or writes one pins its
 * own slice too, so unregistering while it runs frees nothing in use.
 * Buffer rings are memory the module owns: the kernel picks a buffer for
 * each receive, reaping copies the bytes out into the Cqe's result and puts
 * the buffer back in the ring at once. */
#include "py_io_uring.h"
#include "methods_doc.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <unistd.h>

struct pu_bufring {
    struct pu_bufring *next;
    struct io_uring_buf_ring *br;
    char *bufs;
    unsigned entries, size;
    uint16_t bgid;
};

/* Each method below converts its arguments (fileno(), __index__, a
 * __buffer__ method: Python code, which may close the ring, register on it
 * or open another ring under the same fd number) before it checks the ring
 * and calls into liburing: a check made before the conversions would be
 * stale by then. */

static const char *const files_kw[] = {"fds", NULL};
static const pu_argspec files_spec = {"register_files", files_kw, 1, 1, 0};

static PyObject *
Ring_register_files(RingObject *self, PyObject *arg)
{
    int *fds, ret;
    unsigned n;
    if (pu_fds_from(&files_spec, 0, arg, &fds, &n) < 0)
        return NULL;
    if (pu_ring_check(self) < 0) {
        PyMem_Free(fds);
        return NULL;
    }
    ret = io_uring_register_files(&self->ring, fds, n);
    PyMem_Free(fds);
    if (ret < 0)
        return pu_err_errno(-ret);
    Py_RETURN_NONE;
}

static PyObject *
Ring_register_files_sparse(RingObject *self, PyObject *arg)
{
    unsigned long n;
    int ret;
    n = PyLong_AsUnsignedLong(arg);
    if (n == (unsigned long)-1 && PyErr_Occurred())
        return NULL;
    if (n > UINT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "too many slots");
        return NULL;
    }
    if (pu_ring_check(self) < 0)
        return NULL;
    ret = io_uring_register_files_sparse(&self->ring, (unsigned)n);
    if (ret < 0)
        return pu_err_errno(-ret);
    Py_RETURN_NONE;
}

static const char *const files_update_kw[] = {"offset", "fds", NULL};
static const pu_argspec files_update_spec = {"register_files_update",
                                             files_update_kw, 2, 2, 0};

static PyObject *
Ring_register_files_update(RingObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    long off;
    int *fds, ret;
    unsigned n;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "register_files_update() takes 2 arguments");
        return NULL;
    }
    off = PyLong_AsLong(args[0]);
    if (off == -1 && PyErr_Occurred())
        return NULL;
    if (off < 0 || off > INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "offset must be >= 0");
        return NULL;
    }
    if (pu_fds_from(&files_update_spec, 1, args[1], &fds, &n) < 0)
        return NULL;
    if (pu_ring_check(self) < 0) {
        PyMem_Free(fds);
        return NULL;
    }
    ret = io_uring_register_files_update(&self->ring, (unsigned)off, fds, n);
    PyMem_Free(fds);
    if (ret < 0)
        return pu_err_errno(-ret);
    return PyLong_FromLong(ret);
}

static PyObject *
Ring_unregister_files(RingObject *self, PyObject *Py_UNUSED(ignored))
{
    int ret;
    if (pu_ring_check(self) < 0)
        return NULL;
    ret = io_uring_unregister_files(&self->ring);
    if (ret < 0)
        return pu_err_errno(-ret);
    Py_RETURN_NONE;
}

void
pu_release_registered_buffers(RingObject *r)
{
    for (unsigned k = 0; k < r->nreg_bufs; k++)
        PyBuffer_Release(&r->reg_bufs[k]);
    PyMem_Free(r->reg_bufs);
    r->reg_bufs = NULL;
    r->nreg_bufs = 0;
}

static const char *const buffers_kw[] = {"buffers", NULL};
static const pu_argspec buffers_spec = {"register_buffers", buffers_kw, 1, 1, 0};

static PyObject *
Ring_register_buffers(RingObject *self, PyObject *arg)
{
    PyObject *seq;
    Py_ssize_t n, k, pinned = 0;
    Py_buffer *views = NULL;
    struct iovec *iov = NULL;
    int ret;

    if (pu_ring_check(self) < 0)
        return NULL;
    if (self->nreg_bufs > 0) {
        PyErr_SetString(PyExc_ValueError, "buffers are already registered: "
                        "unregister_buffers() first");
        return NULL;
    }
    /* a __buffer__ method (3.12) runs Python code: walk a copy */
    seq = pu_seq_tuple(&buffers_spec, 0, arg, "a sequence of writable "
                       "bytes-like objects");
    if (seq == NULL)
        return NULL;
    n = PyTuple_GET_SIZE(seq);
    if (n == 0 || n > 16384) {
        Py_DECREF(seq);
        PyErr_SetString(PyExc_ValueError, "register_buffers() takes 1 to 16384 buffers");
        return NULL;
    }
    /* pinned into our own array, not the ring's: that Python code may
     * register, unregister or tear down meanwhile */
    views = PyMem_Calloc((size_t)n, sizeof(Py_buffer));
    iov = PyMem_Calloc((size_t)n, sizeof(*iov));
    if (views == NULL || iov == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    for (k = 0; k < n; k++) {
        PyObject *item = PyTuple_GET_ITEM(seq, k);
        if (PyObject_GetBuffer(item, &views[k], PyBUF_WRITABLE) < 0) {
            pu_buffer_refused(&buffers_spec, 0, k, item,
                              "a writable C-contiguous bytes-like object");
            goto fail;
        }
        pinned++;
        iov[k].iov_base = views[k].buf;
        iov[k].iov_len = (size_t)views[k].len;
    }
    if (pu_ring_check(self) < 0)
        goto fail;
    if (self->nreg_bufs > 0) {
        PyErr_SetString(PyExc_ValueError, "buffers are already registered: "
                        "unregister_buffers() first");
        goto fail;
    }
    ret = io_uring_register_buffers(&self->ring, iov, (unsigned)n);
    if (ret < 0) {
        pu_err_errno(-ret);
        goto fail;
    }
    self->reg_bufs = views;
    self->nreg_bufs = (unsigned)n;
    PyMem_Free(iov);
    Py_DECREF(seq);
    Py_RETURN_NONE;
fail:
    while (pinned > 0)
        PyBuffer_Release(&views[--pinned]);
    PyMem_Free(views);
    PyMem_Free(iov);
    Py_DECREF(seq);
    return NULL;
}

static PyObject *
Ring_unregister_buffers(RingObject *self, PyObject *Py_UNUSED(ignored))
{
    int ret;
    if (pu_ring_check(self) < 0)
        return NULL;
    ret = io_uring_unregister_buffers(&self->ring);
    if (ret < 0)
        return pu_err_errno(-ret);
    /* ops still using a registered buffer pinned their own slice */
    pu_release_registered_buffers(self);
    Py_RETURN_NONE;
}

/* ---- personalities ---- */

static PyObject *
Ring_register_personality(RingObject *self, PyObject *Py_UNUSED(ignored))
{
    int ret;
    if (pu_ring_check(self) < 0)
        return NULL;
    ret = io_uring_register_personality(&self->ring);
    if (ret < 0)
        return pu_err_errno(-ret);
    return PyLong_FromLong(ret);
}

static PyObject *
Ring_unregister_personality(RingObject *self, PyObject *arg)
{
    long id;
    int ret;
    id = PyLong_AsLong(arg);   /* __index__: before the ring check */
    if (id == -1 && PyErr_Occurred())
        return NULL;
    if (id < 0 || id > 0xffff) {
        PyErr_SetString(PyExc_OverflowError, "personality must be 0-65535");
        return NULL;
    }
    if (pu_ring_check(self) < 0)
        return NULL;
    ret = io_uring_unregister_personality(&self->ring, (int)id);
    if (ret < 0)
        return pu_err_errno(-ret);
    Py_RETURN_NONE;
}

/* ---- buffer rings ---- */

static struct pu_bufring *
find_bufring(RingObject *r, unsigned bgid)
{
    for (struct pu_bufring *b = r->bufrings; b != NULL; b = b->next)
        if (b->bgid == bgid)
            return b;
    return NULL;
}

static void
free_bufring(struct pu_bufring *b)
{
    free(b->br);
    free(b->bufs);
    PyMem_Free(b);
}

static const char *const bufring_kw[] = {"bgid", "entries", "size", NULL};
static const pu_argspec bufring_spec = {"setup_buf_ring", bufring_kw, 3, 3, 0};

static PyObject *
Ring_setup_buf_ring(RingObject *self, PyObject *const *args, Py_ssize_t nargs,
                    PyObject *kwnames)
{
    PyObject *argv[3];
    unsigned bgid, entries, size;
    struct io_uring_buf_reg reg;
    struct pu_bufring *b;
    long page = sysconf(_SC_PAGESIZE);
    int ret;

    /* __index__ runs Python code: convert before the ring check */
    if (pu_parse_args(&bufring_spec, args, nargs, kwnames, argv) < 0 ||
        pu_conv_u32(&bufring_spec, 0, argv[0], &bgid) < 0 ||
        pu_conv_u32(&bufring_spec, 1, argv[1], &entries) < 0 ||
        pu_conv_u32(&bufring_spec, 2, argv[2], &size) < 0 ||
        pu_ring_check(self) < 0)
        return NULL;
    if (bgid > 0xffff || entries == 0 || entries > 32768 ||
        (entries & (entries - 1)) != 0 || size == 0 || size > (1u << 30) ||
        (unsigned long long)entries * size > (1ull << 32)) {
        PyErr_SetString(PyExc_ValueError, "setup_buf_ring(): bgid must be "
                        "0-65535, entries a power of two up to 32768, size > 0");
        return NULL;
    }
    if (find_bufring(self, bgid) != NULL) {
        PyErr_Format(PyExc_ValueError, "buffer group %u already has a ring", bgid);
        return NULL;
    }
    b = PyMem_Calloc(1, sizeof(*b));
    if (b == NULL)
        return PyErr_NoMemory();
    if (posix_memalign((void **)&b->br, (size_t)page,
                       entries * sizeof(struct io_uring_buf)) != 0 ||
        (b->bufs = malloc((size_t)entries * size)) == NULL) {
        free(b->br);
        PyMem_Free(b);
        return PyErr_NoMemory();
    }
    memset(b->br, 0, entries * sizeof(struct io_uring_buf));
    b->entries = entries;
    b->size = size;
    b->bgid = (uint16_t)bgid;
    memset(&reg, 0, sizeof(reg));
    reg.ring_addr = (unsigned long)b->br;
    reg.ring_entries = entries;
    reg.bgid = (uint16_t)bgid;
    ret = io_uring_register_buf_ring(&self->ring, &reg, 0);
    if (ret < 0) {
        free_bufring(b);
        return pu_err_errno(-ret);
    }
    io_uring_buf_ring_init(b->br);
    for (unsigned k = 0; k < entries; k++)
        io_uring_buf_ring_add(b->br, b->bufs + (size_t)k * size, size, (unsigned short)k,
                              io_uring_buf_ring_mask(entries), (int)k);
    io_uring_buf_ring_advance(b->br, (int)entries);
    b->next = self->bufrings;
    self->bufrings = b;
    Py_RETURN_NONE;
}

static PyObject *
Ring_free_buf_ring(RingObject *self, PyObject *arg)
{
    unsigned long bgid;
    struct pu_bufring **pp, *b;
    int ret;

    if (pu_ring_check(self) < 0)
        return NULL;
    bgid = PyLong_AsUnsignedLong(arg);
    if (bgid == (unsigned long)-1 && PyErr_Occurred())
        return NULL;
    for (pp = &self->bufrings; *pp != NULL && (*pp)->bgid != bgid; pp = &(*pp)->next)
        ;
    if (*pp == NULL) {
        PyErr_Format(PyExc_ValueError, "buffer group %lu has no ring", bgid);
        return NULL;
    }
    /* the kernel may still pick buffers for an op of this group */
    for (uint32_t s = 0; s < self->nslots; s++) {
        SqeObject *rec = self->slots[s];
        if (rec != NULL && rec->buf_group == bgid &&
            ((rec->flushed_flags | rec->op_flags | rec->sqe_flags) & IOSQE_BUFFER_SELECT)) {
            PyErr_Format(PyExc_RuntimeError, "buffer group %lu is in use by an "
                         "operation in flight; cancel it first", bgid);
            return NULL;
        }
    }
    ret = io_uring_unregister_buf_ring(&self->ring, (int)bgid);
    if (ret < 0)
        return pu_err_errno(-ret);
    b = *pp;
    *pp = b->next;
    free_bufring(b);
    Py_RETURN_NONE;
}

static PyObject *provided_take(RingObject *r, unsigned bgid, unsigned bid,
                               int32_t res);

/* A completion that used a buffer of a module-owned ring: its bytes, and
 * the buffer goes back into the ring.  NULL with no exception when the
 * group has no ring of ours (the caller then reports the count). */
PyObject *
pu_bufring_take(RingObject *r, unsigned bgid, uint32_t cqe_flags, int32_t res)
{
    struct pu_bufring *b = find_bufring(r, bgid);
    unsigned bid = cqe_flags >> IORING_CQE_BUFFER_SHIFT;
    PyObject *data;

    if (b == NULL)
        return provided_take(r, bgid, bid, res);
    if (bid >= b->entries)
        return NULL;
    if (res > (int32_t)b->size)
        res = (int32_t)b->size;
    data = PyBytes_FromStringAndSize(b->bufs + (size_t)bid * b->size,
                                     res > 0 ? res : 0);
    if (data == NULL)
        return NULL;
    io_uring_buf_ring_add(b->br, b->bufs + (size_t)bid * b->size, b->size,
                          (unsigned short)bid, io_uring_buf_ring_mask(b->entries), 0);
    io_uring_buf_ring_advance(b->br, 1);
    return data;
}

/* provide_buffers(): the kernel may write into this memory until a receive
 * uses it or remove_buffers() takes it back, long after this op completes,
 * so the pin belongs to the ring and lasts until teardown. */
typedef struct pu_provided {
    pu_pin pin;                     /* first: the ring's list is of pu_pin */
    unsigned each, nr, bid0, bgid;  /* the group this memory was split into */
} pu_provided;

int
pu_conv_provided(const pu_argspec *sp, int i, SqeObject *rec, PyObject *o,
                 void **buf, unsigned *len)
{
    RingObject *r = rec->ring;
    pu_pin *p = PyMem_Calloc(1, sizeof(pu_provided));

    if (p == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    if (PyObject_GetBuffer(o, &p->view, PyBUF_WRITABLE) < 0) {
        PyMem_Free(p);
        if (PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "%s() argument '%s' must be a writable "
                         "bytes-like object, not %.100s", sp->fname, sp->kwlist[i],
                         Py_TYPE(o)->tp_name);
        } else {
            pu_buffer_refused(sp, i, -1, o, "a writable C-contiguous bytes-like "
                              "object");
        }
        return -1;
    }
    /* a __buffer__ method (3.12) may have torn the ring down: its list of
     * provided memory is gone, and a pin put there would last forever */
    if (pu_ring_check(r) < 0) {
        PyBuffer_Release(&p->view);
        PyMem_Free(p);
        return -1;
    }
    p->next = r->provided;
    r->provided = p;
    *buf = p->view.buf;
    *len = p->view.len > INT32_MAX ? (unsigned)INT32_MAX : (unsigned)p->view.len;
    return 0;
}

/* The provide_buffers call line describes the memory its converter pinned
 * (at buf), so that a receive that picks one of its buffers yields bytes.
 * Not simply the newest: the converters of the later arguments (__index__)
 * may have run another provide_buffers on this ring.  The newest memory
 * at buf not described yet is this op's (or, the same memory pinned by a
 * prep that failed, as good). */
void
pu_provided_describe(RingObject *r, const void *buf, int each, int nr, int bgid,
                     int bid)
{
    pu_provided *p = NULL;
    for (pu_pin *n = r->provided; n != NULL; n = n->next) {
        if (n->view.buf == buf && ((pu_provided *)n)->nr == 0) {
            p = (pu_provided *)n;
            break;
        }
    }
    if (p == NULL || each <= 0 || nr <= 0)
        return;
    p->each = (unsigned)each;
    p->nr = (unsigned)nr;
    p->bgid = (unsigned)bgid;
    p->bid0 = (unsigned)bid;
}

static PyObject *
provided_take(RingObject *r, unsigned bgid, unsigned bid, int32_t res)
{
    /* newest first: a group re-provided later wins */
    for (pu_pin *n = r->provided; n != NULL; n = n->next) {
        pu_provided *p = (pu_provided *)n;
        if (p->nr == 0 || p->bgid != bgid || bid < p->bid0 || bid >= p->bid0 + p->nr)
            continue;
        if (res > (int32_t)p->each)
            res = (int32_t)p->each;
        return PyBytes_FromStringAndSize((char *)n->view.buf +
                                         (size_t)(bid - p->bid0) * p->each, res);
    }
    return NULL;
}

/* At teardown, after the drain: the kernel has let go of everything. */
void
pu_release_registrations(RingObject *r)
{
    pu_release_registered_buffers(r);
    while (r->provided != NULL) {
        pu_pin *p = r->provided;
        r->provided = p->next;
        PyBuffer_Release(&p->view);
        PyMem_Free(p);
    }
    while (r->bufrings != NULL) {
        struct pu_bufring *b = r->bufrings;
        r->bufrings = b->next;
        free_bufring(b);
    }
}

/* ---- the ring's async workers (io-wq) ---- */

/* register_iowq_max_workers(bounded, unbounded): cap the kernel's worker
 * threads for this ring; 0 leaves a cap as it is.  Returns the old caps. */
static PyObject *
Ring_register_iowq_max_workers(RingObject *self, PyObject *const *args,
                               Py_ssize_t nargs)
{
    unsigned int vals[2];
    unsigned long v;
    int ret;

    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "register_iowq_max_workers() takes 2 "
                     "arguments (bounded, unbounded), %zd given", nargs);
        return NULL;
    }
    for (int i = 0; i < 2; i++) {
        if (pu_small_uint(args[i], UINT32_MAX, i ? "unbounded" : "bounded", &v) < 0)
            return NULL;
        vals[i] = (unsigned int)v;
    }
    if (pu_ring_check(self) < 0)
        return NULL;
    ret = io_uring_register_iowq_max_workers(&self->ring, vals);
    if (ret < 0)
        return pu_err_errno(-ret);
    return Py_BuildValue("(II)", vals[0], vals[1]);
}

/* register_iowq_aff(cpus): the CPUs the ring's async workers may run on */
static PyObject *
Ring_register_iowq_aff(RingObject *self, PyObject *arg)
{
    PyObject *seq = PySequence_Fast(arg, "register_iowq_aff() takes a sequence of CPU numbers");
    cpu_set_t set;
    int ret;

    if (seq == NULL)
        return NULL;
    CPU_ZERO(&set);
    for (Py_ssize_t k = 0; k < PySequence_Fast_GET_SIZE(seq); k++) {
        unsigned long cpu;
        if (pu_small_uint(PySequence_Fast_GET_ITEM(seq, k), CPU_SETSIZE - 1,
                          "a CPU number", &cpu) < 0) {
            Py_DECREF(seq);
            return NULL;
        }
        CPU_SET(cpu, &set);
    }
    Py_DECREF(seq);
    if (CPU_COUNT(&set) == 0) {
        PyErr_SetString(PyExc_ValueError, "register_iowq_aff() needs at least one CPU");
        return NULL;
    }
    if (pu_ring_check(self) < 0)
        return NULL;
    ret = io_uring_register_iowq_aff(&self->ring, sizeof(set), &set);
    if (ret < 0)
        return pu_err_errno(-ret);
    Py_RETURN_NONE;
}

static PyObject *
Ring_unregister_iowq_aff(RingObject *self, PyObject *Py_UNUSED(ignored))
{
    int ret;
    if (pu_ring_check(self) < 0)
        return NULL;
    ret = io_uring_unregister_iowq_aff(&self->ring);
    if (ret < 0)
        return pu_err_errno(-ret);
    Py_RETURN_NONE;
}

PyMethodDef pu_register_methods[] = {
    {"register_files", (PyCFunction)Ring_register_files, METH_O,
     PU_DOC_IoUring_register_files},
    {"register_files_sparse", (PyCFunction)Ring_register_files_sparse, METH_O,
     PU_DOC_IoUring_register_files_sparse},
    {"register_files_update", (PyCFunction)(void (*)(void))Ring_register_files_update,
     METH_FASTCALL, PU_DOC_IoUring_register_files_update},
    {"unregister_files", (PyCFunction)Ring_unregister_files, METH_NOARGS,
     PU_DOC_IoUring_unregister_files},
    {"register_buffers", (PyCFunction)Ring_register_buffers, METH_O,
     PU_DOC_IoUring_register_buffers},
    {"unregister_buffers", (PyCFunction)Ring_unregister_buffers, METH_NOARGS,
     PU_DOC_IoUring_unregister_buffers},
    {"register_personality", (PyCFunction)Ring_register_personality, METH_NOARGS,
     PU_DOC_IoUring_register_personality},
    {"unregister_personality", (PyCFunction)Ring_unregister_personality, METH_O,
     PU_DOC_IoUring_unregister_personality},
    {"setup_buf_ring", (PyCFunction)(void (*)(void))Ring_setup_buf_ring,
     METH_FASTCALL | METH_KEYWORDS, PU_DOC_IoUring_setup_buf_ring},
    {"free_buf_ring", (PyCFunction)Ring_free_buf_ring, METH_O,
     PU_DOC_IoUring_free_buf_ring},
    {"register_iowq_max_workers", (PyCFunction)(void (*)(void))Ring_register_iowq_max_workers,
     METH_FASTCALL, PU_DOC_IoUring_register_iowq_max_workers},
    {"register_iowq_aff", (PyCFunction)Ring_register_iowq_aff, METH_O,
     PU_DOC_IoUring_register_iowq_aff},
    {"unregister_iowq_aff", (PyCFunction)Ring_unregister_iowq_aff, METH_NOARGS,
     PU_DOC_IoUring_unregister_iowq_aff},
    {NULL, NULL, 0, NULL},
};
