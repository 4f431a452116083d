/* register.c: resources registered with the ring: fixed files, fixed
 * buffers and provided-buffer rings.
 *
 * Registered buffers stay pinned (Py_buffer) from register_buffers() until
 * unregister_buffers() or teardown; an op that reads or writes one pins its
 * own slice too, so unregistering while it runs frees nothing in use.
 * Buffer rings are memory the module owns: the kernel picks a buffer for
 * each receive, reaping copies the bytes out into the Cqe's result and puts
 * the buffer back in the ring at once. */
#include "register/register.h"
#include "methods_doc.h"
#include "ops/liburing_compat.h"

#include <errno.h>
#include <sched.h>
#include <sys/mman.h>
#include <stdlib.h>
#include <unistd.h>

/* A buffer ring the module owns.  The kernel takes buffers from the ring's
 * head in the order they were added, so `next_bid` records that order: the
 * buffer added right after each one.  A bundle completion names its first
 * buffer only and spans the ones after it; their `next_bid` entries cannot
 * change before the completion is reaped (an entry changes only when its
 * buffer is added again, i.e. after its own completion).  `off` is, for an
 * IOU_PBUF_RING_INC ring, how much of each buffer the kernel already
 * consumed: a buffer it keeps (IORING_CQE_F_BUF_MORE) goes on at that
 * offset in the next completion. */
struct pu_bufring {
    struct pu_bufring *next;
    struct io_uring_buf_ring *br;
    char *bufs;
    unsigned entries, size;
    unsigned flags;                 /* IOU_PBUF_RING_* */
    size_t ring_bytes;              /* mapped from the kernel (MMAP) */
    uint32_t *off;                  /* per buffer: bytes consumed (INC) */
    uint16_t *next_bid;             /* per buffer: the one added after it */
    uint16_t last;                  /* the buffer added last */
    uint16_t bgid;
    /* a send ring (setup_buf_ring(send=True)) starts empty: buf_ring_add()
     * copies data into a free buffer and queues it; a completion that sent
     * from it puts it back on the free list, not in the ring */
    int send;
    uint32_t *len;                  /* per buffer: bytes queued, 0 when free */
    uint16_t *free_bids;            /* stack of free buffers */
    unsigned nfree;
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

/* register_file_alloc_range(offset, length): the slots of the registered
 * file table that IORING_FILE_INDEX_ALLOC (the *_direct ops' default)
 * picks from */
static PyObject *
Ring_register_file_alloc_range(RingObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    unsigned long v[2];
    int ret;

    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "register_file_alloc_range() takes 2 "
                     "arguments (offset, length), %zd given", nargs);
        return NULL;
    }
    if (pu_small_uint(args[0], UINT32_MAX, "offset", &v[0]) < 0 ||
        pu_small_uint(args[1], UINT32_MAX, "length", &v[1]) < 0 ||
        pu_ring_check(self) < 0)
        return NULL;
    ret = io_uring_register_file_alloc_range(&self->ring, (unsigned)v[0], (unsigned)v[1]);
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

static const char *const buffers_kw[] = {"buffers", NULL};
static const pu_argspec buffers_spec = {"register_buffers", buffers_kw, 1, 1, 0};

/* register_buffers() and its tagged forms: one buffer table per ring */
int
pu_refuse_bufs_registered(RingObject *r)
{
    if (!r->bufs_registered)
        return 0;
    PyErr_SetString(PyExc_ValueError, "buffers are already registered: "
                    "unregister_buffers() first");
    return -1;
}

static PyObject *
Ring_register_buffers(RingObject *self, PyObject *arg)
{
    PyObject *seq;
    Py_ssize_t n;
    pu_regbuf **pins = NULL;
    struct iovec *iov = NULL;
    int ret;

    if (pu_ring_check(self) < 0 || pu_refuse_bufs_registered(self) < 0)
        return NULL;
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
    if (pu_pins_from(&buffers_spec, 0, seq, 0, &pins, &iov) < 0)
        goto fail;
    if (pu_ring_check(self) < 0 || pu_refuse_bufs_registered(self) < 0)
        goto fail;
    ret = io_uring_register_buffers(&self->ring, iov, (unsigned)n);
    if (ret < 0) {
        pu_err_errno(-ret);
        goto fail;
    }
    pu_buf_table_set(self, pins, (unsigned)n);
    PyMem_Free(iov);
    Py_DECREF(seq);
    Py_RETURN_NONE;
fail:
    if (pins != NULL)
        pu_pins_drop(pins, (unsigned)n);
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
    /* ops still using a registered buffer pinned their own slice; a tagged
     * one keeps its tag's pin until the tag's completion */
    pu_buf_table_clear(self);
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

/* The event loop's ring keeps one buffer group for its transports (the
 * ring's bgid_reserved, set by the loop's AsyncRing): a user of that shared
 * ring setting it up, freeing it or providing buffers into it would take
 * the transports' receives from under them.  0, or -1 with ValueError. */
static int
check_reserved(RingObject *r, unsigned long bgid, const char *fname)
{
    if (r->bgid_reserved && !r->bgid_reserve_lifted && bgid == r->reserved_bgid) {
        PyErr_Format(PyExc_ValueError, "%s(): buffer group %lu (0x%lx) is reserved "
                     "on the event loop's ring for its transports: use another bgid",
                     fname, bgid, bgid);
        return -1;
    }
    return 0;
}

static void
free_bufring(struct pu_bufring *b)
{
    if (b->ring_bytes)
        munmap(b->br, b->ring_bytes);
    else
        free(b->br);
    free(b->bufs);
    PyMem_Free(b->off);
    PyMem_Free(b->next_bid);
    PyMem_Free(b->len);
    PyMem_Free(b->free_bids);
    PyMem_Free(b);
}

/* Hand buffer bid (back) to the kernel, at the ring's tail. */
static void
bufring_add(struct pu_bufring *b, unsigned bid)
{
    io_uring_buf_ring_add(b->br, b->bufs + (size_t)bid * b->size, b->size,
                          (unsigned short)bid, io_uring_buf_ring_mask(b->entries), 0);
    io_uring_buf_ring_advance(b->br, 1);
    b->next_bid[b->last] = (uint16_t)bid;
    b->last = (uint16_t)bid;
    b->off[bid] = 0;
}

/* A buffer of a send ring was sent (or used up): it is free again. */
static void
bufring_free_send(struct pu_bufring *b, unsigned bid)
{
    if (b->len[bid] == 0)
        return;   /* already free: never twice on the stack */
    b->len[bid] = 0;
    b->free_bids[b->nfree++] = (uint16_t)bid;
}

static const char *const bufring_kw[] = {"bgid", "entries", "size", "flags", "send", NULL};
static const pu_argspec bufring_spec = {"setup_buf_ring", bufring_kw, 3, 5, 1};

static PyObject *
Ring_setup_buf_ring(RingObject *self, PyObject *const *args, Py_ssize_t nargs,
                    PyObject *kwnames)
{
    PyObject *argv[5];
    unsigned bgid, entries, size, flags = 0;
    int send = 0;
    struct io_uring_buf_reg reg;
    struct pu_bufring *b;
    long page = sysconf(_SC_PAGESIZE);
    size_t ring_bytes;
    int ret;

    /* __index__ runs Python code: convert before the ring check */
    if (pu_parse_args(&bufring_spec, args, nargs, kwnames, argv) < 0 ||
        pu_conv_u32(&bufring_spec, 0, argv[0], &bgid) < 0 ||
        pu_conv_u32(&bufring_spec, 1, argv[1], &entries) < 0 ||
        pu_conv_u32(&bufring_spec, 2, argv[2], &size) < 0 ||
        (argv[3] != NULL &&
         pu_conv_bits(&bufring_spec, 3, argv[3], IOU_PBUF_RING_MMAP | IOU_PBUF_RING_INC,
                      "IOU_PBUF_RING_MMAP, IOU_PBUF_RING_INC", &flags) < 0) ||
        (argv[4] != NULL && (send = PyObject_IsTrue(argv[4])) < 0) ||
        pu_ring_check(self) < 0)
        return NULL;
    if (send && (flags & IOU_PBUF_RING_INC)) {
        PyErr_SetString(PyExc_ValueError, "setup_buf_ring(): a send ring cannot "
                        "be IOU_PBUF_RING_INC");
        return NULL;
    }
    if (bgid > 0xffff || entries == 0 || entries > 32768 ||
        (entries & (entries - 1)) != 0 || size == 0 || size > (1u << 30) ||
        (unsigned long long)entries * size > (1ull << 32)) {
        PyErr_SetString(PyExc_ValueError, "setup_buf_ring(): bgid must be "
                        "0-65535, entries a power of two up to 32768, size > 0");
        return NULL;
    }
    if (check_reserved(self, bgid, "setup_buf_ring") < 0)
        return NULL;
    if (find_bufring(self, bgid) != NULL) {
        PyErr_Format(PyExc_ValueError, "buffer group %u already has a ring", bgid);
        return NULL;
    }
    b = PyMem_Calloc(1, sizeof(*b));
    if (b == NULL)
        return PyErr_NoMemory();
    ring_bytes = entries * sizeof(struct io_uring_buf);
    b->off = PyMem_Calloc(entries, sizeof(*b->off));
    b->next_bid = PyMem_Calloc(entries, sizeof(*b->next_bid));
    b->len = PyMem_Calloc(entries, sizeof(*b->len));
    b->free_bids = PyMem_Calloc(entries, sizeof(*b->free_bids));
    if (b->off == NULL || b->next_bid == NULL || b->len == NULL || b->free_bids == NULL ||
        (!(flags & IOU_PBUF_RING_MMAP) &&
         posix_memalign((void **)&b->br, (size_t)page, ring_bytes) != 0) ||
        (b->bufs = malloc((size_t)entries * size)) == NULL) {
        b->ring_bytes = 0;
        free_bufring(b);
        return PyErr_NoMemory();
    }
    if (!(flags & IOU_PBUF_RING_MMAP))
        memset(b->br, 0, ring_bytes);
    b->entries = entries;
    b->size = size;
    b->flags = flags;
    b->send = send;
    b->bgid = (uint16_t)bgid;
    memset(&reg, 0, sizeof(reg));
    /* IOU_PBUF_RING_MMAP: the kernel allocates the ring; it is mapped below */
    reg.ring_addr = (flags & IOU_PBUF_RING_MMAP) ? 0 : (unsigned long)b->br;
    reg.ring_entries = entries;
    reg.bgid = (uint16_t)bgid;
    PU_BUF_REG_FLAGS(reg) = (__u16)flags;
    ret = io_uring_register_buf_ring(&self->ring, &reg, 0);
    if (ret < 0) {
        free_bufring(b);
        return pu_err_errno(-ret);
    }
    if (flags & IOU_PBUF_RING_MMAP) {
        void *m = mmap(NULL, ring_bytes, PROT_READ | PROT_WRITE,
                       MAP_SHARED | MAP_POPULATE, self->ring.ring_fd,
                       (off_t)(IORING_OFF_PBUF_RING |
                               ((__u64)bgid << IORING_OFF_PBUF_SHIFT)));
        if (m == MAP_FAILED) {
            int err = errno;
            io_uring_unregister_buf_ring(&self->ring, (int)bgid);
            free_bufring(b);
            return pu_err_errno(err);
        }
        b->br = m;
        b->ring_bytes = ring_bytes;
    }
    io_uring_buf_ring_init(b->br);
    if (send) {
        for (unsigned k = 0; k < entries; k++)   /* lowest id on top */
            b->free_bids[k] = (uint16_t)(entries - 1 - k);
        b->nfree = entries;
        b->next = self->bufrings;
        self->bufrings = b;
        Py_RETURN_NONE;
    }
    for (unsigned k = 0; k < entries; k++) {
        io_uring_buf_ring_add(b->br, b->bufs + (size_t)k * size, size, (unsigned short)k,
                              io_uring_buf_ring_mask(entries), (int)k);
        b->next_bid[k] = (uint16_t)((k + 1) % entries);
    }
    b->last = (uint16_t)(entries - 1);
    io_uring_buf_ring_advance(b->br, (int)entries);
    b->next = self->bufrings;
    self->bufrings = b;
    Py_RETURN_NONE;
}

/* buf_ring_add(bgid, data): copy data into a free buffer of a send ring
 * and queue it for the kernel (io_uring_buf_ring_add()); returns its id. */
static PyObject *
Ring_buf_ring_add(RingObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    unsigned long bgid;
    Py_buffer view;
    struct pu_bufring *b;
    unsigned bid;

    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "buf_ring_add() takes exactly 2 arguments "
                     "(%zd given)", nargs);
        return NULL;
    }
    bgid = PyLong_AsUnsignedLong(args[0]);
    if (bgid == (unsigned long)-1 && PyErr_Occurred())
        return NULL;
    /* __buffer__ may run Python code: before the ring check */
    if (PyObject_GetBuffer(args[1], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    if (pu_ring_check(self) < 0)
        goto fail;
    if (bgid > 0xffff || (b = find_bufring(self, (unsigned)bgid)) == NULL) {
        PyErr_Format(PyExc_ValueError, "buf_ring_add(): buffer group %lu has no ring",
                     bgid);
        goto fail;
    }
    if (!b->send) {
        PyErr_Format(PyExc_ValueError, "buf_ring_add(): buffer group %lu is a receive "
                     "ring (set it up with send=True)", bgid);
        goto fail;
    }
    if (view.len == 0 || (size_t)view.len > b->size) {
        PyErr_Format(PyExc_ValueError, "buf_ring_add(): data must be 1 to %u bytes, "
                     "not %zd", b->size, view.len);
        goto fail;
    }
    if (b->nfree == 0) {
        PyErr_Format(PyExc_BlockingIOError, "buf_ring_add(): every buffer of group "
                     "%lu is queued; reap the sends first", bgid);
        goto fail;
    }
    bid = b->free_bids[--b->nfree];
    memcpy(b->bufs + (size_t)bid * b->size, view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    b->len[bid] = (uint32_t)view.len;
    io_uring_buf_ring_add(b->br, b->bufs + (size_t)bid * b->size, (unsigned)b->len[bid],
                          (unsigned short)bid, io_uring_buf_ring_mask(b->entries), 0);
    io_uring_buf_ring_advance(b->br, 1);
    b->next_bid[b->last] = (uint16_t)bid;
    b->last = (uint16_t)bid;
    return PyLong_FromUnsignedLong(bid);
fail:
    PyBuffer_Release(&view);
    return NULL;
}

/* buf_ring_head(bgid): the kernel's head of the group's ring
 * (IORING_REGISTER_PBUF_STATUS); buf_ring_available(bgid): how many
 * buffers the kernel has left to pick, as io_uring_buf_ring_available(). */
static int
bufring_head(RingObject *self, PyObject *arg, const char *fname,
             struct pu_bufring **bp, uint16_t *head)
{
    unsigned long bgid;
    int ret;

    bgid = PyLong_AsUnsignedLong(arg);
    if (bgid == (unsigned long)-1 && PyErr_Occurred())
        return -1;
    if (pu_ring_check(self) < 0)
        return -1;
    if (bgid > 0xffff || (*bp = find_bufring(self, (unsigned)bgid)) == NULL) {
        PyErr_Format(PyExc_ValueError, "%s(): buffer group %lu has no ring",
                     fname, bgid);
        return -1;
    }
    ret = io_uring_buf_ring_head(&self->ring, (int)bgid, head);
    if (ret < 0) {
        pu_err_errno(-ret);
        return -1;
    }
    return 0;
}

static PyObject *
Ring_buf_ring_head(RingObject *self, PyObject *arg)
{
    struct pu_bufring *b;
    uint16_t head;
    if (bufring_head(self, arg, "buf_ring_head", &b, &head) < 0)
        return NULL;
    return PyLong_FromUnsignedLong(head);
}

static PyObject *
Ring_buf_ring_available(RingObject *self, PyObject *arg)
{
    struct pu_bufring *b;
    uint16_t head;
    if (bufring_head(self, arg, "buf_ring_available", &b, &head) < 0)
        return NULL;
    return PyLong_FromUnsignedLong((uint16_t)(b->br->tail - head));
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
    if (check_reserved(self, bgid, "free_buf_ring") < 0)
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

/* A completion that used buffers of a module-owned ring: their bytes, and
 * each buffer the kernel is done with goes back into the ring.  NULL with
 * no exception when the group has no ring of ours (the caller then reports
 * the count).  The data starts at the first buffer's offset (0 unless the
 * ring is IOU_PBUF_RING_INC) and runs on through the buffers added after
 * it (a bundle, IORING_RECVSEND_BUNDLE) for res bytes.  Every buffer the
 * data ends before the end of goes back too, except the last one of an
 * IORING_CQE_F_BUF_MORE completion: the kernel keeps that one and goes on
 * in it.  A failed op used up its buffer all the same (a read that fails,
 * EISDIR say, posts IORING_CQE_F_BUFFER): it goes back, with NULL.
 * off: for a completion taken after the reap (defer_buf), where its bytes
 * start, as pu_bufring_defer() fixed it then; NULL when taken at the reap. */
PyObject *
pu_bufring_take(RingObject *r, unsigned bgid, uint32_t cqe_flags, int32_t res,
                uint16_t *nbufs, const uint32_t *off)
{
    struct pu_bufring *b = find_bufring(r, bgid);
    unsigned bid = cqe_flags >> IORING_CQE_BUFFER_SHIFT;
    int keeps = (b != NULL && (b->flags & IOU_PBUF_RING_INC) &&
                 (cqe_flags & IORING_CQE_F_BUF_MORE));
    size_t left, total, start;
    PyObject *data = NULL;
    char *out = NULL;

    *nbufs = 1;
    if (b == NULL)
        return provided_take(r, bgid, bid, res);
    if (bid >= b->entries)
        return NULL;
    if (b->send) {
        /* res bytes went out from bid and the buffers queued after it; the
         * kernel is done with each one it touched, a partly sent last one
         * too (its rest is not sent: the count tells) */
        left = res > 0 ? (size_t)res : 0;
        for (unsigned n = 0; n < b->entries; n++) {
            size_t take = b->len[bid];
            unsigned next = b->next_bid[bid];
            bufring_free_send(b, bid);
            if (take >= left)
                break;
            left -= take;
            bid = next;
            ++*nbufs;
        }
        return NULL;   /* the result is the count */
    }
    left = total = res > 0 ? (size_t)res : 0;
    start = off != NULL ? *off : b->off[bid];
    if (start > b->size)
        start = b->size;
    if (res >= 0) {
        /* at most the room of every buffer: never read past the ring */
        size_t room = (size_t)b->entries * b->size - start;
        if (total > room)
            left = total = room;
        data = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)total);
        if (data == NULL)
            return NULL;
        out = PyBytes_AS_STRING(data);
    }
    for (unsigned n = 0; n < b->entries; n++) {
        size_t take = b->size - start;
        unsigned next = b->next_bid[bid];
        if (take > left)
            take = left;
        if (out != NULL) {
            memcpy(out, b->bufs + (size_t)bid * b->size + start, take);
            out += take;
        }
        left -= take;
        if (left == 0 && keeps) {
            if (off == NULL)   /* (deferred: counted at the reap) */
                b->off[bid] += (uint32_t)take;   /* the kernel goes on in it */
            break;
        }
        bufring_add(b, bid);
        if (left == 0)
            break;
        bid = next;
        start = 0;   /* a bundle's next buffer: fresh from the ring */
        ++*nbufs;
    }
    return data;
}

/* A completion whose buffer stays out until its waiter takes it
 * (defer_buf): where its bytes start in the buffer, fixed at the reap, in
 * the kernel's order.  An IOU_PBUF_RING_INC buffer the kernel keeps
 * (IORING_CQE_F_BUF_MORE) goes on after them at once, so that the next
 * completion in it, taken first or never (a dropped completion), still
 * starts where the kernel wrote it: the reads of several connections share
 * a buffer, and one taken out of order must not hand another's bytes. */
void
pu_bufring_defer(RingObject *r, unsigned bgid, uint32_t cqe_flags, int32_t res,
                 uint32_t *off)
{
    struct pu_bufring *b = find_bufring(r, bgid);
    unsigned bid = cqe_flags >> IORING_CQE_BUFFER_SHIFT;

    size_t left = res > 0 ? (size_t)res : 0, start;

    *off = 0;
    if (b == NULL || b->send || bid >= b->entries)
        return;
    *off = start = b->off[bid];
    if (!(b->flags & IOU_PBUF_RING_INC) || !(cqe_flags & IORING_CQE_F_BUF_MORE))
        return;
    /* the buffer the data ends in (a bundle runs on through the buffers
     * added after the first, each fresh) is the one the kernel keeps */
    for (unsigned n = 0; n < b->entries && left > 0; n++) {
        size_t take = b->size - start;
        if (take >= left) {
            b->off[bid] = (uint32_t)(start + left);
            return;
        }
        left -= take;
        bid = b->next_bid[bid];
        start = 0;
    }
}

/* ---- legacy provided buffers (provide_buffers / remove_buffers) ----
 *
 * provide_buffers() hands the kernel nr buffers cut from one pinned
 * object.  The kernel may write into any of them until a completion that
 * used it (IORING_CQE_F_BUFFER, its id in the flags) or a remove_buffers()
 * that took it back, long after the provide op itself completed, so the
 * pin cannot be the op's record's.  It is one pu_provided per call:
 *
 *   - from the converter until the provide op's final completion it is
 *     owned by a capsule the record keeps (pu_rec_keep()), so that a failed
 *     prep, a second prep of the same Sqe, or a provide the kernel refused
 *     releases it at once, with the record;
 *   - when that completion succeeded (or its outcome is unknown: teardown
 *     discarded it, or IOSQE_CQE_SKIP_SUCCESS hid it) it moves to the
 *     ring's list, which is in the order the kernel added the buffers;
 *   - each buffer is marked taken when a completion that used it, or a
 *     remove_buffers() completion, is reaped; when all are, the pin goes.
 *
 * The kernel keeps a group's buffers in one list and hands them out
 * oldest first (io_uring/kbuf.c: added at the tail, picked and removed
 * from the head; measured on 6.18), and does not refuse an id that is in
 * the list already.  So when the same ids were provided twice, the
 * completion's id names the oldest buffer of that id still in the kernel:
 * the lookup walks the list oldest first too.  Completions are reaped in
 * CQ order, and a provide's completion is posted before that of any op
 * that used its buffers, so the list's order is the kernel's. */
enum {
    PU_PROV_PINNED,     /* pinned by the converter: nothing told the kernel */
    PU_PROV_PREPARED,   /* the SQE describes it: the kernel may take it */
    PU_PROV_ADDED,      /* the provide op's completion said the kernel did */
    PU_PROV_REFUSED,    /* ... or that it did not */
};

typedef struct pu_provided {
    struct pu_provided *next;       /* the ring's list, oldest first */
    SqeObject *rec;                 /* borrowed: the provide op's record,
                                       which owns this until its release */
    RingObject *ring;               /* borrowed: the record holds it */
    Py_buffer view;
    unsigned each, nr, bid0, bgid;  /* the group this memory was split into */
    unsigned held;                  /* buffers the kernel may still use */
    uint8_t state;                  /* PU_PROV_* */
    uint8_t *taken;                 /* a bitmap of nr bits: 1 once handed out
                                       or removed (PyMem) */
} pu_provided;

static const char provided_capsule[] = "py_io_uring.provided";

static void
provided_free(pu_provided *p)
{
    PyBuffer_Release(&p->view);     /* the object is resizable again */
    PyMem_Free(p->taken);
    PyMem_Free(p);
}

/* Append to the ring's list: the kernel added these buffers after every
 * buffer the list holds. */
static void
provided_append(RingObject *r, pu_provided *p)
{
    pu_provided **pp = &r->provided;
    while (*pp != NULL)
        pp = &(*pp)->next;
    p->next = NULL;
    *pp = p;
}

/* The record that carried the provide op is being released: its final
 * completion was reaped (its op's `complete` hook, pu_provided_complete(), told the outcome), its prep
 * failed or was replaced, or teardown discarded it. */
static void
provided_capsule_release(PyObject *cap)
{
    pu_provided *p = PyCapsule_GetPointer(cap, provided_capsule);
    RingObject *r;

    if (p == NULL) {
        PyErr_Clear();
        return;
    }
    r = p->ring;
    /* PINNED: the prep failed before the SQE described the buffers; a
     * record not DONE was never submitted (a second prep replaces the
     * first); REFUSED: the kernel said so; a ring already torn down lets go
     * of everything.  Otherwise the kernel holds them, or may: an outcome
     * nobody saw is taken as success, and teardown releases the list only
     * after its drain. */
    if (p->state == PU_PROV_PINNED || p->state == PU_PROV_REFUSED ||
        p->rec->state != PU_DONE || p->nr == 0 || !r->initialised) {
        provided_free(p);
        return;
    }
    provided_append(r, p);
}

int
pu_conv_provided(const pu_argspec *sp, int i, SqeObject *rec, PyObject *o,
                 void **buf, unsigned *len)
{
    pu_provided *p = PyMem_Calloc(1, sizeof(*p));
    PyObject *cap;

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
    p->rec = rec;
    p->ring = rec->ring;
    p->state = PU_PROV_PINNED;
    cap = PyCapsule_New(p, provided_capsule, provided_capsule_release);
    if (cap == NULL) {
        provided_free(p);
        return -1;
    }
    /* from here the record owns it: released with the record */
    if (pu_rec_keep(rec, cap) < 0) {
        Py_DECREF(cap);
        return -1;
    }
    Py_DECREF(cap);
    rec->op_state = p;   /* for pu_provided_describe() and the completion */
    *buf = p->view.buf;
    *len = p->view.len > INT32_MAX ? (unsigned)INT32_MAX : (unsigned)p->view.len;
    return 0;
}

/* The provide_buffers call line, before the SQE is filled: the split of
 * the memory the converter pinned, so that a receive that picks one of its
 * buffers yields bytes.  0, or -1 with an exception. */
int
pu_provided_describe(SqeObject *rec, int each, int nr, int bgid, int bid)
{
    pu_provided *p = rec->op_state;

    if (bgid < 0 || bgid > 0xffff) {
        /* the SQE's buf_group is 16 bits: another group would get them */
        PyErr_Format(PyExc_ValueError, "prep_provide_buffers(): bgid must be "
                     "0-65535, not %d", bgid);
        return -1;
    }
    if (rec->ring != NULL &&
        check_reserved(rec->ring, (unsigned long)bgid, "prep_provide_buffers") < 0)
        return -1;
    if (p == NULL) {
        PyErr_SetString(PyExc_SystemError, "prep_provide_buffers(): no buffer pinned");
        return -1;
    }
    PyMem_Free(p->taken);
    p->taken = NULL;
    p->nr = p->held = 0;
    /* a count or size the kernel refuses (E2BIG, EINVAL): its completion
     * fails, and the memory goes with the record */
    if (each > 0 && nr > 0 && bid >= 0) {
        p->taken = PyMem_Calloc(((size_t)nr + 7) / 8, 1);
        if (p->taken == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        p->each = (unsigned)each;
        p->nr = p->held = (unsigned)nr;
        p->bgid = (unsigned)bgid;
        p->bid0 = (unsigned)bid;
    }
    p->state = PU_PROV_PREPARED;
    return 0;
}

/* The remove_buffers call line: the group, for its completion. */
int
pu_provided_describe_remove(SqeObject *rec, int bgid)
{
    unsigned *g;

    if (bgid < 0 || bgid > 0xffff) {
        PyErr_Format(PyExc_ValueError, "prep_remove_buffers(): bgid must be "
                     "0-65535, not %d", bgid);
        return -1;
    }
    g = pu_rec_alloc(rec, sizeof(*g));
    if (g == NULL)
        return -1;
    *g = (unsigned)bgid;
    rec->op_state = g;
    return 0;
}

/* pu_ring_unget_sqe() for an entry that was prepared and is given back
 * unsubmitted (prep_many()'s undo): a provide in it never reached the
 * kernel, so its memory goes with the record, not to the ring's list
 * (where the ids would shadow those of a later provide).  If the entry
 * cannot be given back it stays in the queue, prepared, and goes in. */
int
pu_provided_unget_sqe(RingObject *r, SqeObject *rec)
{
    pu_provided *p = NULL;
    uint8_t was = 0;
    int done;

    if (rec->op != NULL && rec->op->opcode == IORING_OP_PROVIDE_BUFFERS &&
        rec->op_state != NULL) {
        p = rec->op_state;
        was = p->state;
        p->state = PU_PROV_PINNED;
    }
    done = pu_ring_unget_sqe(r, rec);
    if (!done && p != NULL)
        p->state = was;   /* p was freed with the record only if done */
    return done;
}

/* Buffer k of p was handed out or removed: the kernel is done with it.
 * With its object's last buffer p is unlinked (*prev is its link) and
 * released: 1 then. */
static int
provided_mark_taken(pu_provided **prev, pu_provided *p, unsigned k)
{
    p->taken[k / 8] |= (uint8_t)(1u << (k % 8));
    if (--p->held > 0)
        return 0;
    *prev = p->next;
    /* may run Python code (the exporter's release): p is off the list */
    provided_free(p);
    return 1;
}

static int
provided_is_taken(const pu_provided *p, unsigned k)
{
    return (p->taken[k / 8] >> (k % 8)) & 1;
}

/* A provide_buffers or remove_buffers completion was reaped (final), in CQ
 * order with the receives' ones; the record is released right after. */
void
pu_provided_complete(RingObject *r, SqeObject *rec, int32_t res)
{
    if (rec->op->opcode == IORING_OP_PROVIDE_BUFFERS) {
        pu_provided *p = rec->op_state;
        if (p != NULL && p->state == PU_PROV_PREPARED)
            p->state = res >= 0 ? PU_PROV_ADDED : PU_PROV_REFUSED;
        return;
    }
    /* remove_buffers took the res oldest buffers of the group */
    if (rec->op_state != NULL && res > 0) {
        unsigned bgid = *(unsigned *)rec->op_state;
        int32_t left = res;
        pu_provided **pp = &r->provided;
        while (*pp != NULL && left > 0) {
            pu_provided *p = *pp;
            int freed = 0;
            if (p->bgid == bgid) {
                /* p may be freed by the last mark: test freed first */
                for (unsigned k = 0; !freed && k < p->nr && left > 0; k++) {
                    if (!provided_is_taken(p, k)) {
                        left--;
                        freed = provided_mark_taken(pp, p, k);
                    }
                }
            }
            if (!freed)
                pp = &p->next;
        }
    }
}

/* A completion that used buffer bid of legacy group bgid: its bytes (NULL
 * without an exception for a failed op, which used the buffer all the
 * same, or for a buffer that is not ours).  The buffer is the kernel's no
 * more: its pin goes with the last of its object's buffers. */
static PyObject *
provided_take(RingObject *r, unsigned bgid, unsigned bid, int32_t res)
{
    for (pu_provided **pp = &r->provided; *pp != NULL; pp = &(*pp)->next) {
        pu_provided *p = *pp;
        unsigned k = bid - p->bid0;
        PyObject *data = NULL;
        if (p->bgid != bgid || bid < p->bid0 || k >= p->nr || provided_is_taken(p, k))
            continue;
        if (res >= 0) {
            /* made before the buffer is let go: a failure keeps the CQE */
            data = PyBytes_FromStringAndSize((char *)p->view.buf + (size_t)k * p->each,
                                             res > (int32_t)p->each ? (int32_t)p->each : res);
            if (data == NULL)
                return NULL;
        }
        provided_mark_taken(pp, p, k);
        return data;
    }
    return NULL;
}

/* At teardown, after the drain: the kernel has let go of everything. */
void
pu_release_registrations(RingObject *r)
{
    pu_rsrc_release(r);
    pu_region_release(r);
    pu_zcrx_release(r);
    pu_ring_mem_release(r);
    while (r->provided != NULL) {
        pu_provided *p = r->provided;
        r->provided = p->next;
        provided_free(p);
    }
    while (r->bufrings != NULL) {
        struct pu_bufring *b = r->bufrings;
        r->bufrings = b->next;
        free_bufring(b);
    }
}

/* At teardown, when operations were leaked (their completions never came):
 * one of them may still read or write a registered buffer, a provided
 * buffer or a buffer ring, so all of it is leaked with them, never freed.
 * The ring forgets it; the process keeps it. */
void
pu_leak_registrations(RingObject *r)
{
    pu_rsrc_leak(r);
    pu_region_leak(r);
    pu_zcrx_leak(r);
    r->ring_mem = NULL;   /* the kernel may still post into it */
    r->provided = NULL;
    r->bufrings = NULL;
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
    {"register_file_alloc_range", (PyCFunction)(void (*)(void))Ring_register_file_alloc_range,
     METH_FASTCALL, PU_DOC_IoUring_register_file_alloc_range},
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
    {"buf_ring_add", (PyCFunction)(void (*)(void))Ring_buf_ring_add, METH_FASTCALL,
     PU_DOC_IoUring_buf_ring_add},
    {"buf_ring_head", (PyCFunction)Ring_buf_ring_head, METH_O,
     PU_DOC_IoUring_buf_ring_head},
    {"buf_ring_available", (PyCFunction)Ring_buf_ring_available, METH_O,
     PU_DOC_IoUring_buf_ring_available},
    {"register_iowq_max_workers", (PyCFunction)(void (*)(void))Ring_register_iowq_max_workers,
     METH_FASTCALL, PU_DOC_IoUring_register_iowq_max_workers},
    {"register_iowq_aff", (PyCFunction)Ring_register_iowq_aff, METH_O,
     PU_DOC_IoUring_register_iowq_aff},
    {"unregister_iowq_aff", (PyCFunction)Ring_unregister_iowq_aff, METH_NOARGS,
     PU_DOC_IoUring_unregister_iowq_aff},
    {NULL, NULL, 0, NULL},
};
