/* args.c: METH_FASTCALL argument parsing and the argument converters, one
 * per argument kind of gen/kinds.py.  Public C API only; no
 * PyArg_ParseTuple on the hot path. */
#include "py_io_uring.h"

#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <sys/uio.h>

#define ARGNAME(sp, i) ((sp)->kwlist[(i)])

int
pu_parse_args_full(const pu_argspec *sp, PyObject *const *args, Py_ssize_t nargs,
                   PyObject *kwnames, PyObject **out)
{
    Py_ssize_t i, nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;

    Py_ssize_t npos = sp->nmax - sp->kwonly;
    if (nargs > npos) {
        PyErr_Format(PyExc_TypeError,
                     "%s() takes at most %zd positional argument%s (%zd given)",
                     sp->fname, npos, npos == 1 ? "" : "s", nargs);
        return -1;
    }
    for (i = 0; i < nargs; i++)
        out[i] = args[i];
    for (; i < sp->nmax; i++)
        out[i] = NULL;
    for (Py_ssize_t k = 0; k < nkw; k++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, k);
        Py_ssize_t j;
        for (j = 0; j < sp->nmax; j++) {
            if (PyUnicode_CompareWithASCIIString(key, ARGNAME(sp, j)) == 0)
                break;
        }
        if (j == sp->nmax) {
            PyErr_Format(PyExc_TypeError,
                         "%s() got an unexpected keyword argument '%U'",
                         sp->fname, key);
            return -1;
        }
        if (out[j] != NULL) {
            PyErr_Format(PyExc_TypeError,
                         "%s() got multiple values for argument '%s'",
                         sp->fname, ARGNAME(sp, j));
            return -1;
        }
        out[j] = args[nargs + k];
    }
    for (i = 0; i < sp->nreq; i++) {
        if (out[i] == NULL) {
            PyErr_Format(PyExc_TypeError,
                         "%s() missing required argument '%s' (pos %zd)",
                         sp->fname, ARGNAME(sp, i), i + 1);
            return -1;
        }
    }
    return 0;
}

/* An int in [lo, hi], from an int or an object with __index__ (not float). */
static int
conv_int(const pu_argspec *sp, int i, PyObject *o, long long lo,
         long long hi, long long *out)
{
    long long v;
    int overflow = 0;

    if (PyLong_Check(o)) {
        v = PyLong_AsLongLongAndOverflow(o, &overflow);
    } else if (PyIndex_Check(o) && !PyFloat_Check(o)) {
        PyObject *n = PyNumber_Index(o);
        if (n == NULL)
            return -1;
        v = PyLong_AsLongLongAndOverflow(n, &overflow);
        Py_DECREF(n);
    } else {
        PyErr_Format(PyExc_TypeError,
                     "%s() argument '%s' must be int, not %.100s",
                     sp->fname, ARGNAME(sp, i), Py_TYPE(o)->tp_name);
        return -1;
    }
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (overflow || v < lo || v > hi) {
        PyErr_Format(PyExc_OverflowError,
                     "%s() argument '%s' is out of range [%lld, %lld]",
                     sp->fname, ARGNAME(sp, i), lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

int
pu_conv_u32(const pu_argspec *sp, int i, PyObject *o, unsigned *out)
{
    long long v;
    if (conv_int(sp, i, o, 0, UINT32_MAX, &v) < 0)
        return -1;
    *out = (unsigned)v;
    return 0;
}

int
pu_conv_i32(const pu_argspec *sp, int i, PyObject *o, int *out)
{
    long long v;
    if (conv_int(sp, i, o, INT32_MIN, INT32_MAX, &v) < 0)
        return -1;
    *out = (int)v;
    return 0;
}

int
pu_conv_u64(const pu_argspec *sp, int i, PyObject *o, __u64 *out)
{
    unsigned long long v;
    if (!PyLong_Check(o)) {
        long long s;
        if (conv_int(sp, i, o, 0, LLONG_MAX, &s) < 0)
            return -1;
        *out = (__u64)s;
        return 0;
    }
    v = PyLong_AsUnsignedLongLong(o);
    if (v == (unsigned long long)-1 && PyErr_Occurred())
        return -1;
    *out = v;
    return 0;
}

/* The user_data of a message to another ring (msg_ring): below 2**63, as
 * the top bit tags this library's records (PU_UD_TAG), which a message
 * must never be able to end while the kernel still uses their memory. */
int
pu_conv_msg_data(const pu_argspec *sp, int i, PyObject *o, __u64 *out)
{
    __u64 v;
    if (pu_conv_u64(sp, i, o, &v) < 0)
        return -1;
    if (v & PU_UD_TAG) {
        PyErr_Format(PyExc_OverflowError,
                     "%s() argument '%s' is out of range [0, 2**63-1]: "
                     "user_data with the top bit set names this library's "
                     "own operations, which a message cannot post",
                     sp->fname, ARGNAME(sp, i));
        return -1;
    }
    *out = v;
    return 0;
}

/* A file offset: >= 0, or -1 for "the file's current position". */
int
pu_conv_offset(const pu_argspec *sp, int i, PyObject *o, __u64 *out)
{
    long long v;
    if (conv_int(sp, i, o, -1, LLONG_MAX, &v) < 0)
        return -1;
    *out = (__u64)v;
    return 0;
}

static int
fd_from_object(const pu_argspec *sp, int i, PyObject *o, int *out)
{
    int fd;
    if (PyFloat_Check(o)) {
        PyErr_Format(PyExc_TypeError,
                     "%s() argument '%s' must be a file descriptor (int or an "
                     "object with fileno()), not float",
                     sp->fname, ARGNAME(sp, i));
        return -1;
    }
    fd = PyObject_AsFileDescriptor(o);
    if (fd < 0)
        return -1;
    *out = fd;
    return 0;
}

int
pu_conv_fd(const pu_argspec *sp, int i, PyObject *o, int *out)
{
    if (PyLong_CheckExact(o)) {
        long v = PyLong_AsLong(o);
        if (v >= 0 && v <= INT_MAX) {
            *out = (int)v;
            return 0;
        }
        if (v == -1 && PyErr_Occurred())
            PyErr_Clear();
        PyErr_Format(PyExc_ValueError,
                     "%s() argument '%s' must be a file descriptor >= 0",
                     sp->fname, ARGNAME(sp, i));
        return -1;
    }
    return fd_from_object(sp, i, o, out);
}

/* A directory file descriptor: as fd, and AT_FDCWD. */
int
pu_conv_dirfd(const pu_argspec *sp, int i, PyObject *o, int *out)
{
    if (PyLong_Check(o)) {
        long v = PyLong_AsLong(o);
        if (v == AT_FDCWD) {
            *out = AT_FDCWD;
            return 0;
        }
        if (v == -1 && PyErr_Occurred())
            PyErr_Clear();
    }
    return pu_conv_fd(sp, i, o, out);
}

/* Buffers: the kernel takes a 32-bit length and returns an int32 result, so
 * a longer buffer is used up to INT_MAX bytes: a short read or write, which
 * every caller of read(2) and write(2) already handles. */
static unsigned
clamp_len(Py_ssize_t n)
{
    return n > INT_MAX ? (unsigned)INT_MAX : (unsigned)n;
}

static int
pin(SqeObject *rec, PyObject *o, int flags, Py_buffer **view)
{
    *view = pu_rec_pin(rec, o, flags);
    return *view == NULL ? -1 : 0;
}

int
pu_conv_buffer_in(const pu_argspec *sp, int i, SqeObject *rec, PyObject *o,
                  const void **buf, unsigned *len)
{
    Py_buffer *v;
    if (PyUnicode_Check(o) || !PyObject_CheckBuffer(o)) {
        PyErr_Format(PyExc_TypeError,
                     "%s() argument '%s' must be a bytes-like object, not %.100s",
                     sp->fname, ARGNAME(sp, i), Py_TYPE(o)->tp_name);
        return -1;
    }
    /* PyBUF_SIMPLE asks for C-contiguous memory; others raise BufferError */
    if (pin(rec, o, PyBUF_SIMPLE, &v) < 0)
        return -1;
    *buf = v->buf;
    *len = clamp_len(v->len);
    return 0;
}

int
pu_conv_buffer_out(const pu_argspec *sp, int i, SqeObject *rec, PyObject *o,
                   void **buf, unsigned *len)
{
    Py_buffer *v;
    if (PyLong_Check(o)) {
        long long n;
        PyObject *b;
        if (conv_int(sp, i, o, LLONG_MIN, LLONG_MAX, &n) < 0)
            return -1;
        if (n < 0) {
            PyErr_Format(PyExc_ValueError,
                         "%s() argument '%s' must not be negative",
                         sp->fname, ARGNAME(sp, i));
            return -1;
        }
        if (n > INT_MAX) {
            PyErr_Format(PyExc_OverflowError,
                         "%s() argument '%s' is too large (at most %d bytes)",
                         sp->fname, ARGNAME(sp, i), INT_MAX);
            return -1;
        }
        /* a fresh bytes object nobody else sees until the completion */
        b = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)n);
        if (b == NULL)
            return -1;
        Py_XSETREF(rec->result, b);
        *buf = PyBytes_AS_STRING(b);
        *len = (unsigned)n;
        return 0;
    }
    if (!PyObject_CheckBuffer(o)) {
        PyErr_Format(PyExc_TypeError,
                     "%s() argument '%s' must be an int or a writable "
                     "bytes-like object, not %.100s",
                     sp->fname, ARGNAME(sp, i), Py_TYPE(o)->tp_name);
        return -1;
    }
    if (pin(rec, o, PyBUF_WRITABLE, &v) < 0) {
        if (PyErr_ExceptionMatches(PyExc_BufferError)) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError,
                         "%s() argument '%s' must be a writable bytes-like "
                         "object or an int, not a read-only %.100s",
                         sp->fname, ARGNAME(sp, i), Py_TYPE(o)->tp_name);
        }
        return -1;
    }
    *buf = v->buf;
    *len = clamp_len(v->len);
    return 0;
}

int
pu_conv_path(const pu_argspec *sp, int i, SqeObject *rec, PyObject *o,
             const char **out)
{
    PyObject *b = NULL;
    (void)sp;
    (void)i;
    /* str, bytes or os.PathLike; raises ValueError on an embedded NUL */
    if (!PyUnicode_FSConverter(o, &b))
        return -1;
    if (pu_rec_keep(rec, b) < 0) {
        Py_DECREF(b);
        return -1;
    }
    Py_DECREF(b);
    *out = PyBytes_AS_STRING(b);
    return 0;
}

int
pu_conv_timespec(const pu_argspec *sp, int i, SqeObject *rec, PyObject *o,
                 struct __kernel_timespec **out)
{
    double d, whole;
    if (!PyFloat_Check(o) && !PyLong_Check(o)) {
        PyErr_Format(PyExc_TypeError,
                     "%s() argument '%s' must be a number of seconds, not %.100s",
                     sp->fname, ARGNAME(sp, i), Py_TYPE(o)->tp_name);
        return -1;
    }
    d = PyFloat_AsDouble(o);
    if (d == -1.0 && PyErr_Occurred())
        return -1;
    if (!(d >= 0.0) || d > 9.2e18) {
        PyErr_Format(PyExc_ValueError,
                     "%s() argument '%s' must be a finite number of seconds >= 0",
                     sp->fname, ARGNAME(sp, i));
        return -1;
    }
    d = modf(d, &whole);
    rec->ts.tv_sec = (long long)whole;
    rec->ts.tv_nsec = (long long)(d * 1e9);
    if (rec->ts.tv_nsec >= 1000000000LL)
        rec->ts.tv_nsec = 999999999LL;
    *out = &rec->ts;
    return 0;
}

/* Does a record's user_data name `data`: the same object, or an equal int
 * or str (compared without running Python code: both exact types). */
static int
same_data(PyObject *mine, PyObject *data)
{
    if (mine == data)
        return 1;
    if (mine == NULL || Py_TYPE(mine) != Py_TYPE(data))
        return 0;
    if (PyLong_CheckExact(data))
        return PyObject_RichCompareBool(mine, data, Py_EQ) == 1;
    if (PyUnicode_CheckExact(data))
        return PyUnicode_Compare(mine, data) == 0;
    return 0;
}

/* The operation on r whose user_data is `data` (see same_data), other than
 * `self`: what a fast form (IoUring.prep_NAME(user_data=...)) gives its
 * caller to name it by.  It names one from its prep until its completion
 * is marked seen: in the slot table until the final completion is reaped,
 * then in the queue of unseen completions.  Sets *n to how many match
 * (those in flight, if any). */
static SqeObject *
record_by_data(RingObject *r, SqeObject *self, PyObject *data, int *n)
{
    SqeObject *found = NULL;

    *n = 0;
    for (uint32_t k = 0; k < r->nslots; k++) {
        SqeObject *t = r->slots[k];
        if (t != NULL && t != self && same_data(t->data, data)) {
            found = t;
            ++*n;
        }
    }
    /* one in flight wins over one whose completion waits to be seen */
    for (Py_ssize_t k = r->cq_start; *n == 0 && k < r->cq_end; k++) {
        SqeObject *t = r->cq[k]->sqe;
        /* a multishot op's earlier completions name the record that is
         * still in the table: counted there */
        if (t != NULL && t != self && same_data(t->data, data) && t->state == PU_DONE) {
            found = t;
            ++*n;
        }
    }
    return found;
}

int
pu_conv_target(const pu_argspec *sp, int i, SqeObject *rec, PyObject *o,
               __u64 *out)
{
    SqeObject *t;
    if (!PyObject_TypeCheck(o, &pu_SqeType)) {
        int n = 0;
        t = o == Py_None ? NULL : record_by_data(rec->ring, rec, o, &n);
        if (n == 1) {
            /* completed already: the kernel answers -ENOENT, as for a
             * completed Sqe */
            *out = t->state == PU_DONE ? PU_UD_STALE : t->user_data;
            return 0;
        }
        if (n > 1)
            PyErr_Format(PyExc_ValueError,
                         "%s() argument '%s': %d operations in flight have "
                         "this user_data; name one by its Sqe", sp->fname,
                         ARGNAME(sp, i), n);
        else
            PyErr_Format(PyExc_TypeError,
                         "%s() argument '%s' must be an Sqe or the user_data "
                         "of an operation in flight, not %.100s (no "
                         "operation in flight has it)",
                         sp->fname, ARGNAME(sp, i), Py_TYPE(o)->tp_name);
        return -1;
    }
    t = (SqeObject *)o;
    if (t->ring != rec->ring) {
        PyErr_Format(PyExc_ValueError,
                     "%s() argument '%s' is an Sqe of another IoUring",
                     sp->fname, ARGNAME(sp, i));
        return -1;
    }
    if (t == rec) {
        PyErr_Format(PyExc_ValueError, "%s() cannot target its own Sqe",
                     sp->fname);
        return -1;
    }
    /* an Sqe from before the last queue_exit() names nothing now; its
     * user_data could match a new operation, so send one that cannot */
    *out = t->life == rec->ring->life ? t->user_data : PU_UD_STALE;
    return 0;
}

int
pu_conv_sockaddr(const pu_argspec *sp, int i, SqeObject *rec, PyObject *o,
                 int fd, const struct sockaddr **out, socklen_t *outlen)
{
    int family = AF_UNSPEC;
    socklen_t fl = sizeof(family);
    (void)sp;
    (void)i;
    /* the socket's own family decides the form, as socket.connect() does;
     * for a closed fd the form decides, and the kernel answers -EBADF */
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &family, &fl) < 0)
        family = AF_UNSPEC;
    if (pu_sockaddr_from_python(o, family, &rec->addr, outlen) < 0)
        return -1;
    *out = (const struct sockaddr *)&rec->addr;
    return 0;
}

struct sockaddr *
pu_rec_peer_addr(SqeObject *rec)
{
    rec->has_peer = 1;
    rec->peerlen = sizeof(rec->addr);
    memset(&rec->addr, 0, sizeof(rec->addr));
    return (struct sockaddr *)&rec->addr;
}

socklen_t *
pu_rec_peer_addrlen(SqeObject *rec)
{
    return &rec->peerlen;
}

/* A sequence of bytes-like objects as an iovec array in the record, each
 * buffer pinned (writable ones for reads). */
static int
conv_iovecs(const pu_argspec *sp, int i, SqeObject *rec, PyObject *o,
            int writable, struct iovec **out, unsigned *count)
{
    PyObject *seq;
    Py_ssize_t n;
    struct iovec *iov;

    if (PyUnicode_Check(o) || PyObject_CheckBuffer(o) ||
        (seq = PySequence_Fast(o, "")) == NULL) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError,
                     "%s() argument '%s' must be a list or tuple of %sbytes-like "
                     "objects, not %.100s", sp->fname, ARGNAME(sp, i),
                     writable ? "writable " : "", Py_TYPE(o)->tp_name);
        return -1;
    }
    n = PySequence_Fast_GET_SIZE(seq);
    if (n > IOV_MAX) {
        Py_DECREF(seq);
        PyErr_Format(PyExc_ValueError, "%s() argument '%s' has more than %d buffers",
                     sp->fname, ARGNAME(sp, i), IOV_MAX);
        return -1;
    }
    iov = pu_rec_alloc(rec, (size_t)(n ? n : 1) * sizeof(*iov));
    if (iov == NULL) {
        Py_DECREF(seq);
        return -1;
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, k);
        Py_buffer *v;
        if (PyUnicode_Check(item) || !PyObject_CheckBuffer(item)) {
            PyErr_Format(PyExc_TypeError, "%s() argument '%s' item %zd must be a "
                         "bytes-like object, not %.100s", sp->fname,
                         ARGNAME(sp, i), k, Py_TYPE(item)->tp_name);
            Py_DECREF(seq);
            return -1;
        }
        v = pu_rec_pin(rec, item, writable ? PyBUF_WRITABLE : PyBUF_SIMPLE);
        if (v == NULL) {
            if (writable && PyErr_ExceptionMatches(PyExc_BufferError)) {
                PyErr_Clear();
                PyErr_Format(PyExc_TypeError, "%s() argument '%s' item %zd must "
                             "be a writable bytes-like object", sp->fname,
                             ARGNAME(sp, i), k);
            }
            Py_DECREF(seq);
            return -1;
        }
        iov[k].iov_base = v->buf;
        iov[k].iov_len = (size_t)v->len;
    }
    Py_DECREF(seq);
    *out = iov;
    *count = (unsigned)n;
    return 0;
}

int
pu_conv_iovecs_in(const pu_argspec *sp, int i, SqeObject *rec, PyObject *o,
                  struct iovec **out, unsigned *count)
{
    return conv_iovecs(sp, i, rec, o, 0, out, count);
}

int
pu_conv_iovecs_out(const pu_argspec *sp, int i, SqeObject *rec, PyObject *o,
                   struct iovec **out, unsigned *count)
{
    return conv_iovecs(sp, i, rec, o, 1, out, count);
}

/* A sequence of file descriptors (or -1) as an int array in the record. */
int
pu_conv_fd_list(const pu_argspec *sp, int i, SqeObject *rec, PyObject *o,
                int **out, unsigned *count)
{
    PyObject *seq = PySequence_Fast(o, "");
    Py_ssize_t n;
    int *fds;

    if (seq == NULL) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s() argument '%s' must be a sequence of "
                     "file descriptors", sp->fname, ARGNAME(sp, i));
        return -1;
    }
    n = PySequence_Fast_GET_SIZE(seq);
    if (n > INT_MAX / 2) {
        Py_DECREF(seq);
        PyErr_Format(PyExc_ValueError, "%s() argument '%s' is too long",
                     sp->fname, ARGNAME(sp, i));
        return -1;
    }
    fds = pu_rec_alloc(rec, (size_t)(n ? n : 1) * sizeof(int));
    if (fds == NULL) {
        Py_DECREF(seq);
        return -1;
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, k);
        if (PyLong_Check(item) && PyLong_AsLong(item) == -1 && !PyErr_Occurred()) {
            fds[k] = -1;   /* -1 leaves (or makes) the slot empty */
            continue;
        }
        PyErr_Clear();
        if (pu_conv_fd(sp, i, item, &fds[k]) < 0) {
            Py_DECREF(seq);
            return -1;
        }
    }
    Py_DECREF(seq);
    *out = fds;
    *count = (unsigned)n;
    return 0;
}

/* An optional socket address (None: no address). */
int
pu_conv_sockaddr_opt(const pu_argspec *sp, int i, SqeObject *rec, PyObject *o,
                     int fd, const struct sockaddr **out, socklen_t *outlen)
{
    if (o == Py_None) {
        *out = NULL;
        *outlen = 0;
        return 0;
    }
    return pu_conv_sockaddr(sp, i, rec, o, fd, out, outlen);
}
