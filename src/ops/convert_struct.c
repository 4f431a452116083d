/* convert_struct.c: the converters that build an array of kernel structs
 * from a Python sequence, in the record: sendmsg's ancillary data (a cmsg
 * control buffer: the `ancdata` kind) and futex_waitv's list (`futexv`).
 * The scalar, buffer, path and address converters are in convert.c. */
#include "ops/op_helpers.h"

#include <string.h>

/* ---- sendmsg: socket.sendmsg()'s ancdata ---- */

/* One (level, type, data) item: its ints converted, its data pinned */
typedef struct {
    int level, type;
    Py_buffer data;
} anc_item;

/* socket.sendmsg()'s ancillary data, copied into a control buffer in the
 * record.  __index__ (level, type) and __buffer__ (data, 3.12) run Python
 * code, which could clear the list or grow a bytearray already measured;
 * so: a tuple copy, every int converted, then every buffer pinned (a pinned
 * bytearray cannot be resized), and only then the sizes read and the
 * bytes copied, from the pinned views, with no Python code in between. */
int
pu_conv_ancdata(const pu_argspec *sp, int i, SqeObject *rec, PyObject *o,
                void **out, unsigned *len)
{
    PyObject *seq;
    Py_ssize_t n, k, pinned = 0;
    anc_item *items = NULL;
    size_t total = 0;
    char *buf;
    struct msghdr m;
    struct cmsghdr *c;
    int ret = -1;

    seq = pu_seq_tuple(sp, i, o, "a sequence of (level, type, data) tuples");
    if (seq == NULL)
        return -1;
    n = PyTuple_GET_SIZE(seq);
    if (n == 0) {
        Py_DECREF(seq);
        *out = NULL;
        *len = 0;
        return 0;
    }
    items = PyMem_New(anc_item, n);
    if (items == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (k = 0; k < n; k++) {
        /* a tuple, so its items cannot change under us */
        PyObject *item = PyTuple_GET_ITEM(seq, k), *data;
        long long level, type;
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 3) {
            PyErr_Format(PyExc_TypeError, "%s() argument '%s' item %zd must be "
                         "a (level, type, data) tuple, not %.100s", sp->fname,
                         sp->kwlist[i], k, Py_TYPE(item)->tp_name);
            goto done;
        }
        /* ints as socket.sendmsg() takes them: no silent truncation */
        if (pu_conv_item_int(sp, i, k, "level", PyTuple_GET_ITEM(item, 0),
                             INT_MIN, INT_MAX, &level) < 0 ||
            pu_conv_item_int(sp, i, k, "type", PyTuple_GET_ITEM(item, 1),
                             INT_MIN, INT_MAX, &type) < 0)
            goto done;
        items[k].level = (int)level;
        items[k].type = (int)type;
        data = PyTuple_GET_ITEM(item, 2);
        if (PyUnicode_Check(data) || !PyObject_CheckBuffer(data)) {
            PyErr_Format(PyExc_TypeError, "%s() argument '%s' item %zd data must "
                         "be a bytes-like object, not %.100s", sp->fname,
                         sp->kwlist[i], k, Py_TYPE(data)->tp_name);
            goto done;
        }
    }
    for (k = 0; k < n; k++) {
        PyObject *data = PyTuple_GET_ITEM(PyTuple_GET_ITEM(seq, k), 2);
        if (PyObject_GetBuffer(data, &items[k].data, PyBUF_SIMPLE) < 0) {
            pu_buffer_refused(sp, i, k, data, "a (level, type, data) tuple with "
                              "C-contiguous bytes-like data");
            goto done;
        }
        pinned++;
    }
    /* from here on no Python code runs: the sizes are those copied */
    for (k = 0; k < n; k++) {
        size_t dlen = (size_t)items[k].data.len;
        if (dlen > (size_t)INT32_MAX || CMSG_SPACE(dlen) > (size_t)INT32_MAX - total) {
            PyErr_Format(PyExc_OverflowError, "%s() argument '%s' is too large "
                         "(at most %d bytes of control messages)", sp->fname,
                         sp->kwlist[i], INT32_MAX);
            goto done;
        }
        total += CMSG_SPACE(dlen);
    }
    buf = pu_rec_alloc(rec, total);
    if (buf == NULL)
        goto done;
    memset(&m, 0, sizeof(m));
    m.msg_control = buf;
    m.msg_controllen = total;
    c = CMSG_FIRSTHDR(&m);
    for (k = 0; k < n && c != NULL; k++) {
        c->cmsg_level = items[k].level;
        c->cmsg_type = items[k].type;
        c->cmsg_len = CMSG_LEN((size_t)items[k].data.len);
        memcpy(CMSG_DATA(c), items[k].data.buf, (size_t)items[k].data.len);
        c = CMSG_NXTHDR(&m, c);
    }
    *out = buf;
    *len = (unsigned)total;
    ret = 0;
done:
    while (pinned > 0)
        PyBuffer_Release(&items[--pinned].data);
    PyMem_Free(items);
    Py_DECREF(seq);
    return ret;
}

/* ---- futex_waitv: [(futex word, expected value[, FUTEX2_* flags])] ---- */

struct pu_futex_waitv {   /* struct futex_waitv, which older headers lack */
    uint64_t val;
    uint64_t uaddr;
    uint32_t flags;
    uint32_t reserved;
};

/* The futexes, as a struct futex_waitv array in the record: a tuple copy,
 * every item's ints converted, then every word pinned and checked against
 * the size its flags give; the array is written once no more Python code
 * runs (code run by a converter may end the record, freeing its blocks). */
int
pu_conv_futexv(const pu_argspec *sp, int i, SqeObject *rec, PyObject *o,
               void **out, unsigned *count)
{
    PyObject *seq = pu_seq_tuple(sp, i, o, "a sequence of (futex, val[, flags]) "
                                           "tuples");
    Py_ssize_t n, k;
    struct pu_futex_waitv *tmp = NULL, *v;
    int ret = -1;

    if (seq == NULL)
        return -1;
    n = PyTuple_GET_SIZE(seq);
    if (n < 1 || n > 128) {
        PyErr_Format(PyExc_ValueError, "%s() takes 1 to 128 futexes, not %zd",
                     sp->fname, n);
        goto done;
    }
    tmp = PyMem_New(struct pu_futex_waitv, n);
    if (tmp == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    memset(tmp, 0, (size_t)n * sizeof(*tmp));
    for (k = 0; k < n; k++) {
        PyObject *item = PyTuple_GET_ITEM(seq, k), *word;
        long long flags = 2;   /* FUTEX2_SIZE_U32 */
        __u64 val;
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) < 2 ||
            PyTuple_GET_SIZE(item) > 3) {
            PyErr_Format(PyExc_TypeError, "%s() argument '%s' item %zd must be a "
                         "(futex, val[, flags]) tuple, not %.100s", sp->fname,
                         sp->kwlist[i], k, Py_TYPE(item)->tp_name);
            goto done;
        }
        if (pu_conv_item_u64(sp, i, k, "val", PyTuple_GET_ITEM(item, 1), &val) < 0 ||
            (PyTuple_GET_SIZE(item) == 3 &&
             pu_conv_item_int(sp, i, k, "flags", PyTuple_GET_ITEM(item, 2), 0,
                              UINT32_MAX, &flags) < 0))
            goto done;
        tmp[k].val = val;
        tmp[k].flags = (uint32_t)flags;
        word = PyTuple_GET_ITEM(item, 0);
        if (PyUnicode_Check(word) || !PyObject_CheckBuffer(word)) {
            PyErr_Format(PyExc_TypeError, "%s() argument '%s' item %zd futex must "
                         "be a bytes-like object, not %.100s", sp->fname,
                         sp->kwlist[i], k, Py_TYPE(word)->tp_name);
            goto done;
        }
    }
    for (k = 0; k < n; k++) {
        PyObject *word = PyTuple_GET_ITEM(PyTuple_GET_ITEM(seq, k), 0);
        Py_buffer *b = pu_conv_pin(rec, word, PyBUF_SIMPLE);
        if (b == NULL) {
            pu_buffer_refused(sp, i, k, word, "a (futex, val[, flags]) tuple "
                              "with a C-contiguous bytes-like futex");
            goto done;
        }
        /* the view may live in a block of the record: read it now */
        if (pu_check_futex_word(sp, i, k, b->buf, (size_t)b->len, tmp[k].flags) < 0)
            goto done;
        tmp[k].uaddr = (uint64_t)(uintptr_t)b->buf;
    }
    v = pu_rec_alloc(rec, (size_t)n * sizeof(*v));
    if (v == NULL)
        goto done;
    memcpy(v, tmp, (size_t)n * sizeof(*v));
    *out = v;
    *count = (unsigned)n;
    ret = 0;
done:
    PyMem_Free(tmp);
    Py_DECREF(seq);
    return ret;
}
