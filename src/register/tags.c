/* tags.c: the registered buffer table's pins, and tagged files and buffers.
 *
 * A registered buffer is pinned (Py_buffer) by a pu_regbuf, counted: the
 * ring's table holds one reference per slot, a tag waiting for its CQE one,
 * and a ring that cloned the buffer (clone.c) one per slot of its own.  The
 * memory goes back to Python with the last reference.
 *
 * A tag (liburing's __u64 tags; here any object but None and 0) asks the
 * kernel to post a CQE once it no longer uses a file or buffer that was
 * replaced or unregistered: no request in flight uses it any more.  The
 * kernel is told user_data of our own range (PU_UD_IS_RSRC, ring.h), never
 * the user's object: a tag cannot end a record, and a record's completion
 * cannot be taken for a tag.  The entry keeps the user's object and its own
 * pin of the buffer until that CQE is reaped, which delivers a Cqe whose
 * get_data() is the object (docs/design.md).  A tag the kernel never
 * accepted (the call failed, or stopped short) is dropped at once; at
 * teardown, after the ring fd is closed, every entry goes. */
#include "register/register.h"
#include "methods_doc.h"

#include <errno.h>

struct pu_regbuf {
    Py_ssize_t refs;
    Py_buffer view;
};

struct pu_rsrc_tag {
    PyObject *obj;      /* the user's tag; NULL: the entry is free */
    pu_regbuf *pin;        /* a reference, or NULL (a file's tag) */
    uint32_t gen;
};

#define PU_TAG_MAX 0x7fff0000u   /* ids below it: PU_UD_IS_RSRC */

void
pu_regbuf_decref(pu_regbuf *p)
{
    if (p != NULL && --p->refs == 0) {
        PyBuffer_Release(&p->view);   /* may run the exporter's code */
        PyMem_Free(p);
    }
}

pu_regbuf *
pu_regbuf_incref(pu_regbuf *p)
{
    if (p != NULL)
        p->refs++;
    return p;
}

/* ---- the tag table ---- */

static __u64
tag_ud(RingObject *r, uint32_t id)
{
    return PU_UD_TAG | ((__u64)(r->tags[id].gen & PU_GEN_MASK) << 32) |
           (PU_SLOT_RSRC | id);
}

/* A free entry holding obj and a reference to pin: its user_data, or 0
 * with MemoryError.  The kernel is not told of it yet. */
static __u64
tag_new(RingObject *r, PyObject *obj, pu_regbuf *pin)
{
    uint32_t id;

    if (r->ntag_free == 0) {
        uint32_t cap = r->tags_cap ? r->tags_cap * 2 : 16;
        struct pu_rsrc_tag *t;
        uint32_t *fr;
        if (cap > PU_TAG_MAX || cap < r->tags_cap) {
            PyErr_SetString(PyExc_MemoryError, "too many tags awaiting their completion");
            return 0;
        }
        t = PyMem_Realloc(r->tags, cap * sizeof(*t));
        if (t == NULL)
            goto nomem;
        r->tags = t;
        fr = PyMem_Realloc(r->tag_free, cap * sizeof(*fr));
        if (fr == NULL)
            goto nomem;
        r->tag_free = fr;
        for (uint32_t k = cap; k-- > r->tags_cap;) {
            r->tags[k].obj = NULL;
            r->tags[k].pin = NULL;
            r->tags[k].gen = 0;
            r->tag_free[r->ntag_free++] = k;
        }
        r->tags_cap = cap;
    }
    id = r->tag_free[--r->ntag_free];
    Py_INCREF(obj);
    r->tags[id].obj = obj;
    r->tags[id].pin = pu_regbuf_incref(pin);
    r->ntags++;
    return tag_ud(r, id);
nomem:
    PyErr_NoMemory();
    return 0;
}

/* The entry ud names, or NULL (not a live tag of this ring) */
static struct pu_rsrc_tag *
tag_find(RingObject *r, __u64 ud)
{
    uint32_t id;

    if (!PU_UD_IS_RSRC(ud))
        return NULL;
    id = PU_UD_SLOT(ud) - PU_SLOT_RSRC;
    if (id >= r->tags_cap || r->tags[id].obj == NULL || tag_ud(r, id) != ud)
        return NULL;
    return &r->tags[id];
}

/* Free the entry: the kernel is done with what it tags (or never had it).
 * Its references go last: they may run code. */
static void
tag_end(RingObject *r, struct pu_rsrc_tag *t)
{
    PyObject *obj = t->obj;
    pu_regbuf *pin = t->pin;

    t->obj = NULL;
    t->pin = NULL;
    t->gen = (t->gen + 1) & PU_GEN_MASK;   /* a stale ud finds nothing */
    r->tag_free[r->ntag_free++] = (uint32_t)(t - r->tags);
    r->ntags--;
    pu_regbuf_decref(pin);
    Py_DECREF(obj);
}

static void
tag_end_ud(RingObject *r, __u64 ud)
{
    struct pu_rsrc_tag *t = tag_find(r, ud);
    if (t != NULL)
        tag_end(r, t);
}

/* For the reaper: the user's tag object of a tag CQE (borrowed), or NULL
 * when ud is no live tag of ours (it is then delivered as it came). */
PyObject *
pu_rsrc_tag_peek(RingObject *r, __u64 ud)
{
    struct pu_rsrc_tag *t = tag_find(r, ud);
    return t != NULL ? t->obj : NULL;
}

/* ... and once its Cqe or tuple is made: the kernel let go of it. */
void
pu_rsrc_tag_done(RingObject *r, __u64 ud)
{
    tag_end_ud(r, ud);
}

int
pu_rsrc_traverse(RingObject *r, visitproc visit, void *arg)
{
    for (uint32_t k = 0; k < r->tags_cap; k++)
        Py_VISIT(r->tags[k].obj);
    return 0;
}

/* ---- the buffer table ---- */

/* Drop the table: the kernel's table is gone (unregistered, or the ring
 * closed).  Tagged buffers keep their entry's pin. */
void
pu_buf_table_clear(RingObject *r)
{
    pu_regbuf **pins = r->buf_pins;
    unsigned n = r->nbuf_pins;

    r->buf_pins = NULL;
    r->nbuf_pins = 0;
    r->bufs_registered = 0;
    for (unsigned k = 0; k < n; k++)
        pu_regbuf_decref(pins[k]);
    PyMem_Free(pins);
}

/* The kernel took a table of n slots: the ring keeps pins (their
 * references pass to it; pins is PyMem memory, taken too). */
void
pu_buf_table_set(RingObject *r, pu_regbuf **pins, unsigned n)
{
    r->buf_pins = pins;
    r->nbuf_pins = n;
    r->bufs_registered = 1;
}

/* Slot `slot` now holds pin (its reference passes); the one it held is
 * returned, for the caller to drop once the table is consistent.  -1 with
 * MemoryError when the table cannot grow. */
static int
buf_table_swap(RingObject *r, unsigned slot, pu_regbuf **pin)
{
    pu_regbuf *old;

    if (slot >= r->nbuf_pins) {
        pu_regbuf **p = PyMem_Realloc(r->buf_pins, ((size_t)slot + 1) * sizeof(*p));
        if (p == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        memset(p + r->nbuf_pins, 0, ((size_t)slot + 1 - r->nbuf_pins) * sizeof(*p));
        r->buf_pins = p;
        r->nbuf_pins = slot + 1;
    }
    old = r->buf_pins[slot];
    r->buf_pins[slot] = *pin;
    *pin = old;
    return 0;
}

int
pu_buf_table_swap(RingObject *r, unsigned slot, pu_regbuf **pin)
{
    return buf_table_swap(r, slot, pin);
}

pu_regbuf *
pu_buf_table_get(RingObject *r, unsigned slot)
{
    return slot < r->nbuf_pins ? r->buf_pins[slot] : NULL;
}

/* Pin each item of seq (a tuple) as a registered buffer: pins[k] and
 * iov[k]; None leaves a slot empty when allow_none.  -1 with an exception,
 * every pin made dropped. */
int
pu_pins_from(const pu_argspec *sp, int i, PyObject *seq, int allow_none,
             pu_regbuf ***pins_out, struct iovec **iov_out)
{
    Py_ssize_t n = PyTuple_GET_SIZE(seq);
    pu_regbuf **pins = PyMem_Calloc(n ? (size_t)n : 1, sizeof(*pins));
    struct iovec *iov = PyMem_Calloc(n ? (size_t)n : 1, sizeof(*iov));

    if (pins == NULL || iov == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *item = PyTuple_GET_ITEM(seq, k);
        pu_regbuf *p;
        if (item == Py_None && allow_none)
            continue;   /* an empty slot: iov {NULL, 0} */
        p = PyMem_Calloc(1, sizeof(*p));
        if (p == NULL) {
            PyErr_NoMemory();
            goto fail;
        }
        if (PyObject_GetBuffer(item, &p->view, PyBUF_WRITABLE) < 0) {
            PyMem_Free(p);
            pu_buffer_refused(sp, i, k, item, allow_none
                              ? "a writable C-contiguous bytes-like object or None"
                              : "a writable C-contiguous bytes-like object");
            goto fail;
        }
        p->refs = 1;
        pins[k] = p;
        iov[k].iov_base = p->view.buf;
        iov[k].iov_len = (size_t)p->view.len;
    }
    *pins_out = pins;
    *iov_out = iov;
    return 0;
fail:
    if (pins != NULL)
        pu_pins_drop(pins, (unsigned)n);
    PyMem_Free(iov);
    return -1;
}

void
pu_pins_drop(pu_regbuf **pins, unsigned n)
{
    for (unsigned k = 0; k < n; k++)
        pu_regbuf_decref(pins[k]);
    PyMem_Free(pins);
}

/* ---- converting tags ---- */

static int
no_tag(PyObject *o)
{
    int overflow = 0;

    if (o == Py_None)
        return 1;
    /* an exact int runs no code and cannot fail here */
    return PyLong_CheckExact(o) && PyLong_AsLongAndOverflow(o, &overflow) == 0 &&
           overflow == 0;
}

/* tags as a tuple of n objects; -1 with an exception */
static PyObject *
tags_from(const pu_argspec *sp, int i, PyObject *o, Py_ssize_t n)
{
    PyObject *t = pu_seq_tuple(sp, i, o, "a sequence of tags");
    if (t != NULL && PyTuple_GET_SIZE(t) != n) {
        PyErr_Format(PyExc_ValueError, "%s() takes as many tags as %s (%zd), "
                     "not %zd", sp->fname, sp->kwlist[i - 1], n, PyTuple_GET_SIZE(t));
        Py_CLEAR(t);
    }
    return t;
}

/* The kernel's __u64 tags for tags[k] (0: none), each with an entry
 * holding pins[k] (pins may be NULL: files).  -1 with an exception, no
 * entry made. */
static int
tags_make(RingObject *r, PyObject *tags, pu_regbuf **pins, __u64 **out)
{
    Py_ssize_t n = PyTuple_GET_SIZE(tags);
    __u64 *uds = PyMem_Calloc(n ? (size_t)n : 1, sizeof(*uds));

    if (uds == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *o = PyTuple_GET_ITEM(tags, k);
        if (no_tag(o))
            continue;
        uds[k] = tag_new(r, o, pins ? pins[k] : NULL);
        if (uds[k] == 0) {
            while (k-- > 0)
                if (uds[k] != 0)
                    tag_end_ud(r, uds[k]);
            PyMem_Free(uds);
            return -1;
        }
    }
    *out = uds;
    return 0;
}

/* Entries [from, n) were not taken by the kernel */
static void
tags_unmake(RingObject *r, __u64 *uds, unsigned from, unsigned n)
{
    for (unsigned k = from; k < n; k++)
        if (uds[k] != 0)
            tag_end_ud(r, uds[k]);
}

/* ---- the methods ---- */

static const char *const files_tags_kw[] = {"fds", "tags", NULL};
static const pu_argspec files_tags_spec = {"register_files_tags", files_tags_kw, 2, 2, 0};

static PyObject *
Ring_register_files_tags(RingObject *self, PyObject *const *args, Py_ssize_t nargs,
                         PyObject *kwnames)
{
    PyObject *argv[2], *tags = NULL;
    int *fds = NULL, ret;
    unsigned n;
    __u64 *uds = NULL;

    if (pu_parse_args(&files_tags_spec, args, nargs, kwnames, argv) < 0 ||
        pu_fds_from(&files_tags_spec, 0, argv[0], &fds, &n) < 0)
        return NULL;
    tags = tags_from(&files_tags_spec, 1, argv[1], n);
    if (tags == NULL || pu_ring_check(self) < 0 ||
        tags_make(self, tags, NULL, &uds) < 0)
        goto done;
    ret = io_uring_register_files_tags(&self->ring, fds, uds, n);
    if (ret < 0) {
        tags_unmake(self, uds, 0, n);   /* the kernel posts none of them */
        pu_err_errno(-ret);
        goto done;
    }
    PyMem_Free(uds);
    uds = NULL;
    Py_DECREF(tags);
    PyMem_Free(fds);
    Py_RETURN_NONE;
done:
    PyMem_Free(uds);
    Py_XDECREF(tags);
    PyMem_Free(fds);
    return NULL;
}

static const char *const files_update_tag_kw[] = {"offset", "fds", "tags", NULL};
static const pu_argspec files_update_tag_spec = {"register_files_update_tag",
                                                 files_update_tag_kw, 3, 3, 0};

static PyObject *
Ring_register_files_update_tag(RingObject *self, PyObject *const *args,
                               Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *argv[3], *tags = NULL, *result = NULL;
    int *fds = NULL, ret;
    unsigned n, off;
    __u64 *uds = NULL;

    if (pu_parse_args(&files_update_tag_spec, args, nargs, kwnames, argv) < 0 ||
        pu_conv_u32(&files_update_tag_spec, 0, argv[0], &off) < 0 ||
        pu_fds_from(&files_update_tag_spec, 1, argv[1], &fds, &n) < 0)
        return NULL;
    tags = tags_from(&files_update_tag_spec, 2, argv[2], n);
    if (tags == NULL || pu_ring_check(self) < 0 ||
        tags_make(self, tags, NULL, &uds) < 0)
        goto done;
    ret = io_uring_register_files_update_tag(&self->ring, off, fds, uds, n);
    /* the kernel stops at the first slot it refuses: those before it
     * carry their tags, the rest never will */
    tags_unmake(self, uds, ret < 0 ? 0 : (unsigned)ret, n);
    result = ret < 0 ? pu_err_errno(-ret) : PyLong_FromLong(ret);
done:
    PyMem_Free(uds);
    Py_XDECREF(tags);
    PyMem_Free(fds);
    return result;
}

static const char *const buffers_tags_kw[] = {"buffers", "tags", NULL};
static const pu_argspec buffers_tags_spec = {"register_buffers_tags",
                                             buffers_tags_kw, 2, 2, 0};

static PyObject *
Ring_register_buffers_tags(RingObject *self, PyObject *const *args, Py_ssize_t nargs,
                           PyObject *kwnames)
{
    PyObject *argv[2], *seq = NULL, *tags = NULL;
    pu_regbuf **pins = NULL;
    struct iovec *iov = NULL;
    __u64 *uds = NULL;
    Py_ssize_t n = 0;
    int ret;

    if (pu_parse_args(&buffers_tags_spec, args, nargs, kwnames, argv) < 0 ||
        pu_ring_check(self) < 0 || pu_refuse_bufs_registered(self) < 0)
        return NULL;
    /* a __buffer__ method (3.12) runs Python code: walk a copy, and check
     * the ring again afterwards */
    seq = pu_seq_tuple(&buffers_tags_spec, 0, argv[0], "a sequence of writable "
                       "bytes-like objects");
    if (seq == NULL)
        return NULL;
    n = PyTuple_GET_SIZE(seq);
    if (n == 0 || n > 16384) {
        PyErr_SetString(PyExc_ValueError, "register_buffers_tags() takes 1 to 16384 buffers");
        goto fail;
    }
    tags = tags_from(&buffers_tags_spec, 1, argv[1], n);
    if (tags == NULL ||
        pu_pins_from(&buffers_tags_spec, 0, seq, 1, &pins, &iov) < 0)
        goto fail;
    if (pu_ring_check(self) < 0 || pu_refuse_bufs_registered(self) < 0 ||
        tags_make(self, tags, pins, &uds) < 0)
        goto fail;
    ret = io_uring_register_buffers_tags(&self->ring, iov, uds, (unsigned)n);
    if (ret < 0) {
        tags_unmake(self, uds, 0, (unsigned)n);
        pu_err_errno(-ret);
        goto fail;
    }
    pu_buf_table_set(self, pins, (unsigned)n);
    PyMem_Free(uds);
    PyMem_Free(iov);
    Py_DECREF(tags);
    Py_DECREF(seq);
    Py_RETURN_NONE;
fail:
    PyMem_Free(uds);
    if (pins != NULL)
        pu_pins_drop(pins, (unsigned)n);
    PyMem_Free(iov);
    Py_XDECREF(tags);
    Py_XDECREF(seq);
    return NULL;
}

static const char *const buffers_update_tag_kw[] = {"offset", "buffers", "tags", NULL};
static const pu_argspec buffers_update_tag_spec = {"register_buffers_update_tag",
                                                   buffers_update_tag_kw, 3, 3, 0};

static PyObject *
Ring_register_buffers_update_tag(RingObject *self, PyObject *const *args,
                                 Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *argv[3], *seq = NULL, *tags = NULL, *result = NULL;
    pu_regbuf **pins = NULL;
    struct iovec *iov = NULL;
    __u64 *uds = NULL;
    Py_ssize_t n = 0;
    unsigned off;
    int ret;

    if (pu_parse_args(&buffers_update_tag_spec, args, nargs, kwnames, argv) < 0 ||
        pu_conv_u32(&buffers_update_tag_spec, 0, argv[0], &off) < 0)
        return NULL;
    seq = pu_seq_tuple(&buffers_update_tag_spec, 1, argv[1], "a sequence of "
                       "writable bytes-like objects or None");
    if (seq == NULL)
        return NULL;
    n = PyTuple_GET_SIZE(seq);
    if (n > 16384) {
        PyErr_SetString(PyExc_ValueError, "register_buffers_update_tag() takes at "
                        "most 16384 buffers");
        goto done;
    }
    tags = tags_from(&buffers_update_tag_spec, 2, argv[2], n);
    if (tags == NULL ||
        pu_pins_from(&buffers_update_tag_spec, 1, seq, 1, &pins, &iov) < 0 ||
        pu_ring_check(self) < 0 || tags_make(self, tags, pins, &uds) < 0)
        goto done;
    ret = io_uring_register_buffers_update_tag(&self->ring, off, iov, uds, (unsigned)n);
    tags_unmake(self, uds, ret < 0 ? 0 : (unsigned)ret, (unsigned)n);
    /* the slots the kernel replaced hold the new pins; the old ones go
     * (an op still using one pinned its own slice; a tagged one keeps its
     * entry's pin until the tag's CQE) */
    for (int k = 0; k < ret; k++) {
        if (buf_table_swap(self, off + (unsigned)k, &pins[k]) < 0) {
            /* the kernel has them: leak rather than free them */
            for (; k < ret; k++)
                pins[k] = NULL;
            goto done;
        }
    }
    result = ret < 0 ? pu_err_errno(-ret) : PyLong_FromLong(ret);
done:
    PyMem_Free(uds);
    if (pins != NULL)
        pu_pins_drop(pins, (unsigned)n);
    PyMem_Free(iov);
    Py_XDECREF(tags);
    Py_XDECREF(seq);
    return result;
}

static PyObject *
Ring_register_buffers_sparse(RingObject *self, PyObject *arg)
{
    unsigned long n;
    pu_regbuf **pins;
    int ret;

    if (pu_small_uint(arg, 16384, "count", &n) < 0 ||
        pu_ring_check(self) < 0 || pu_refuse_bufs_registered(self) < 0)
        return NULL;
    pins = PyMem_Calloc(n ? n : 1, sizeof(*pins));
    if (pins == NULL)
        return PyErr_NoMemory();
    ret = io_uring_register_buffers_sparse(&self->ring, (unsigned)n);
    if (ret < 0) {
        PyMem_Free(pins);
        return pu_err_errno(-ret);
    }
    pu_buf_table_set(self, pins, (unsigned)n);
    Py_RETURN_NONE;
}

/* At teardown, after the ring fd is closed: the kernel let go of all. */
void
pu_rsrc_release(RingObject *r)
{
    pu_buf_table_clear(r);
    for (uint32_t k = 0; k < r->tags_cap; k++)
        if (r->tags[k].obj != NULL)
            tag_end(r, &r->tags[k]);
    PyMem_Free(r->tags);
    PyMem_Free(r->tag_free);
    r->tags = NULL;
    r->tag_free = NULL;
    r->tags_cap = r->ntags = r->ntag_free = 0;
}

/* When operations were leaked: the pins stay, forgotten (their tag
 * objects too: they hold nothing the kernel uses, but freeing the entries
 * alone would be the only gain). */
void
pu_rsrc_leak(RingObject *r)
{
    r->buf_pins = NULL;
    r->nbuf_pins = 0;
    r->bufs_registered = 0;
    r->tags = NULL;
    r->tag_free = NULL;
    r->tags_cap = r->ntags = r->ntag_free = 0;
}

PyMethodDef pu_tags_methods[] = {
    {"register_files_tags", (PyCFunction)(void (*)(void))Ring_register_files_tags,
     METH_FASTCALL | METH_KEYWORDS, PU_DOC_IoUring_register_files_tags},
    {"register_files_update_tag",
     (PyCFunction)(void (*)(void))Ring_register_files_update_tag,
     METH_FASTCALL | METH_KEYWORDS, PU_DOC_IoUring_register_files_update_tag},
    {"register_buffers_tags", (PyCFunction)(void (*)(void))Ring_register_buffers_tags,
     METH_FASTCALL | METH_KEYWORDS, PU_DOC_IoUring_register_buffers_tags},
    {"register_buffers_update_tag",
     (PyCFunction)(void (*)(void))Ring_register_buffers_update_tag,
     METH_FASTCALL | METH_KEYWORDS, PU_DOC_IoUring_register_buffers_update_tag},
    {"register_buffers_sparse", (PyCFunction)Ring_register_buffers_sparse, METH_O,
     PU_DOC_IoUring_register_buffers_sparse},
    {NULL, NULL, 0, NULL},
};
