/* op_helpers.c: the hand-written parts that ops.def entries name: builders
 * of kernel structs kept in the record (`call` lines) and result makers
 * (`result` lines).  Each serves every op of its shape. */
#include "ops/op_helpers.h"

#include <limits.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/wait.h>

/* Zeroed memory in the record that the op's result maker reads later (the
 * record keeps it until the Sqe is freed, not just until completion). */
void *
pu_rec_state(SqeObject *rec, size_t size)
{
    void *p = pu_rec_alloc(rec, size ? size : 1);
    if (p != NULL)
        rec->op_state = p;
    return p;
}

/* ---- sendmsg ---- */

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

struct msghdr *
pu_rec_msghdr(SqeObject *rec, struct iovec *iov, unsigned niov, void *control,
              unsigned controllen, const struct sockaddr *addr, socklen_t addrlen)
{
    struct msghdr *m = pu_rec_alloc(rec, sizeof(*m));
    if (m == NULL)
        return NULL;
    m->msg_iov = iov;
    m->msg_iovlen = niov;
    m->msg_control = control;
    m->msg_controllen = controllen;
    m->msg_name = (void *)addr;
    m->msg_namelen = addr != NULL ? addrlen : 0;
    return m;
}

/* ---- recvmsg: a msghdr with room for data, control and the sender ---- */

typedef struct {
    struct msghdr m;
    struct iovec iov;
    struct sockaddr_storage name;
    /* data, then control, follow */
} recvmsg_state;

struct msghdr *
pu_rec_recvmsg(SqeObject *rec, unsigned bufsize, unsigned ancbufsize)
{
    recvmsg_state *st;
    /* the control buffer holds struct cmsghdr: keep it aligned */
    size_t data_room = ((size_t)bufsize + _Alignof(struct cmsghdr) - 1) &
                       ~(_Alignof(struct cmsghdr) - 1);
    if ((size_t)bufsize + ancbufsize > (size_t)INT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "recvmsg buffers are too large");
        return NULL;
    }
    st = pu_rec_state(rec, sizeof(*st) + data_room + ancbufsize);
    if (st == NULL)
        return NULL;
    st->iov.iov_base = (char *)(st + 1);
    st->iov.iov_len = bufsize;
    st->m.msg_iov = &st->iov;
    st->m.msg_iovlen = 1;
    st->m.msg_name = &st->name;
    st->m.msg_namelen = sizeof(st->name);
    st->m.msg_control = ancbufsize ? (char *)(st + 1) + data_room : NULL;
    st->m.msg_controllen = ancbufsize;
    return &st->m;
}

/* (data, ancdata, msg_flags, address), as socket.recvmsg() returns */
PyObject *
pu_result_recvmsg(CqeObject *q)
{
    recvmsg_state *st = q->sqe->op_state;
    PyObject *anc, *addr, *res;
    struct cmsghdr *c;

    anc = PyList_New(0);
    if (anc == NULL)
        return NULL;
    for (c = st->m.msg_controllen ? CMSG_FIRSTHDR(&st->m) : NULL; c != NULL;
         c = CMSG_NXTHDR(&st->m, c)) {
        size_t dlen = c->cmsg_len - (size_t)((char *)CMSG_DATA(c) - (char *)c);
        PyObject *t = Py_BuildValue("(iiy#)", c->cmsg_level, c->cmsg_type,
                                    (char *)CMSG_DATA(c), (Py_ssize_t)dlen);
        if (t == NULL || PyList_Append(anc, t) < 0) {
            Py_XDECREF(t);
            Py_DECREF(anc);
            return NULL;
        }
        Py_DECREF(t);
    }
    if (st->m.msg_namelen > 0) {
        addr = pu_sockaddr_to_python((struct sockaddr *)&st->name, st->m.msg_namelen);
    } else {
        addr = Py_None;
        Py_INCREF(addr);
    }
    if (addr == NULL) {
        Py_DECREF(anc);
        return NULL;
    }
    res = Py_BuildValue("(y#NiN)", (char *)st->iov.iov_base, (Py_ssize_t)q->res,
                        anc, st->m.msg_flags, addr);
    return res;
}

/* ---- statx ---- */

static PyObject *
ts_float(struct statx_timestamp t)
{
    return PyFloat_FromDouble((double)t.tv_sec + (double)t.tv_nsec * 1e-9);
}

static PyObject *
ts_ns(struct statx_timestamp t)
{
    PyObject *s = PyLong_FromLongLong(t.tv_sec), *g, *r;
    if (s == NULL)
        return NULL;
    g = PyLong_FromLong(1000000000L);
    r = g ? PyNumber_Multiply(s, g) : NULL;
    Py_DECREF(s);
    Py_XDECREF(g);
    if (r == NULL)
        return NULL;
    s = PyLong_FromUnsignedLong(t.tv_nsec);
    g = s ? PyNumber_Add(r, s) : NULL;
    Py_DECREF(r);
    Py_XDECREF(s);
    return g;
}

/* os.<name>, looked up once: a fresh lookup per result would leave a
 * string per call in CPython's type-attribute cache */
static PyObject *
os_type(PyObject **cache, const char *name)
{
    if (*cache == NULL) {
        PyObject *os = PyImport_ImportModule("os");
        if (os == NULL)
            return NULL;
        *cache = PyObject_GetAttrString(os, name);
        Py_DECREF(os);
    }
    Py_XINCREF(*cache);
    return *cache;
}

/* an os.stat_result, with the fields os.stat() users know */
PyObject *
pu_result_statx(CqeObject *q)
{
    static PyObject *stat_result;
    static int has_birthtime = -1, has_birthtime_ns = -1;
    struct statx *st = q->sqe->op_state;
    PyObject *type, *seq, *extra, *res = NULL;

    type = os_type(&stat_result, "stat_result");
    if (type == NULL)
        return NULL;
    if (has_birthtime < 0) {
        has_birthtime = PyObject_HasAttrString(type, "st_birthtime");
        has_birthtime_ns = PyObject_HasAttrString(type, "st_birthtime_ns");
    }
    seq = Py_BuildValue("(IKKIIIKLLL)", (unsigned)st->stx_mode,
                        (unsigned long long)st->stx_ino,
                        (unsigned long long)makedev(st->stx_dev_major, st->stx_dev_minor),
                        (unsigned)st->stx_nlink, (unsigned)st->stx_uid,
                        (unsigned)st->stx_gid, (unsigned long long)st->stx_size,
                        (long long)st->stx_atime.tv_sec,
                        (long long)st->stx_mtime.tv_sec,
                        (long long)st->stx_ctime.tv_sec);
    extra = Py_BuildValue("{sNsNsNsNsNsNsIsKsKsNsN}",
                          "st_atime", ts_float(st->stx_atime),
                          "st_mtime", ts_float(st->stx_mtime),
                          "st_ctime", ts_float(st->stx_ctime),
                          "st_atime_ns", ts_ns(st->stx_atime),
                          "st_mtime_ns", ts_ns(st->stx_mtime),
                          "st_ctime_ns", ts_ns(st->stx_ctime),
                          "st_blksize", (unsigned)st->stx_blksize,
                          "st_blocks", (unsigned long long)st->stx_blocks,
                          "st_rdev", (unsigned long long)makedev(st->stx_rdev_major,
                                                                 st->stx_rdev_minor),
                          "st_birthtime", ts_float(st->stx_btime),
                          "st_birthtime_ns", ts_ns(st->stx_btime));
    if (seq != NULL && extra != NULL) {
        /* stat_result takes the fields it knows; older Pythons lack
         * st_birthtime, so offer it only where it exists */
        if (!has_birthtime)
            PyDict_DelItemString(extra, "st_birthtime");
        if (!has_birthtime_ns)
            PyDict_DelItemString(extra, "st_birthtime_ns");
        res = PyObject_CallFunctionObjArgs(type, seq, extra, NULL);
    }
    Py_XDECREF(seq);
    Py_XDECREF(extra);
    Py_DECREF(type);
    return res;
}

/* ---- pipe: (read_fd, write_fd) ---- */

PyObject *
pu_result_pipe(CqeObject *q)
{
    int *fds = q->sqe->op_state;
    return Py_BuildValue("(ii)", fds[0], fds[1]);
}

/* ---- epoll_wait: [(fd, events)], as select.epoll.poll() returns ---- */

PyObject *
pu_result_epoll_wait(CqeObject *q)
{
    struct epoll_event *ev = q->sqe->op_state;
    PyObject *list = PyList_New(q->res);
    if (list == NULL)
        return NULL;
    for (int k = 0; k < q->res; k++) {
        PyObject *t = Py_BuildValue("(iI)", ev[k].data.fd, (unsigned)ev[k].events);
        if (t == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, k, t);
    }
    return list;
}

/* ---- waitid: an os.waitid_result, or None when no child was waitable ---- */

PyObject *
pu_result_waitid(CqeObject *q)
{
    static PyObject *waitid_result;
    siginfo_t *si = q->sqe->op_state;
    PyObject *type, *res;
    if (si->si_pid == 0)
        Py_RETURN_NONE;
    type = os_type(&waitid_result, "waitid_result");
    if (type == NULL)
        return NULL;
    res = PyObject_CallFunction(type, "((iiiii))", (int)si->si_pid, (int)si->si_uid,
                                si->si_signo, si->si_status, si->si_code);
    Py_DECREF(type);
    return res;
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
