/* convert.c: METH_FASTCALL argument parsing and the argument converters, one
 * per argument kind of gen/kinds.py.  Public C API only; no
 * PyArg_ParseTuple on the hot path. */
#include "ops/opdef.h"

#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <sys/uio.h>
#include <unistd.h>

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

/* What a message names: "argument 'ancdata'", or "argument 'ancdata' item 2
 * level" for a field of an item of a sequence argument. */
static const char *
arg_what(char *buf, size_t size, const pu_argspec *sp, int i, Py_ssize_t k,
         const char *field)
{
    if (k < 0)
        snprintf(buf, size, "argument '%s'", ARGNAME(sp, i));
    else if (field == NULL)
        snprintf(buf, size, "argument '%s' item %zd", ARGNAME(sp, i), k);
    else
        snprintf(buf, size, "argument '%s' item %zd %s", ARGNAME(sp, i), k, field);
    return buf;
}

/* o as an int (a new reference): an int, or an object with __index__ (not
 * float).  Whatever __index__ runs, the caller gets a value, not o. */
static PyObject *
index_of(const pu_argspec *sp, int i, Py_ssize_t k, const char *field,
         PyObject *o)
{
    char what[160];

    if (PyLong_Check(o)) {
        Py_INCREF(o);
        return o;
    }
    if (PyIndex_Check(o) && !PyFloat_Check(o))
        return PyNumber_Index(o);
    PyErr_Format(PyExc_TypeError, "%s() %s must be int, not %.100s", sp->fname,
                 arg_what(what, sizeof(what), sp, i, k, field),
                 Py_TYPE(o)->tp_name);
    return NULL;
}

/* An int in [lo, hi], from an int or an object with __index__ (not float):
 * argument i, or (k >= 0) the field of its item k. */
static int
conv_int_at(const pu_argspec *sp, int i, Py_ssize_t k, const char *field,
            PyObject *o, long long lo, long long hi, long long *out)
{
    char what[160];
    long long v;
    int overflow = 0;
    PyObject *n;

    if (PyLong_CheckExact(o)) {
        /* the usual argument: no __index__ to call, no reference to take */
        v = PyLong_AsLongLongAndOverflow(o, &overflow);
    } else {
        n = index_of(sp, i, k, field, o);
        if (n == NULL)
            return -1;
        v = PyLong_AsLongLongAndOverflow(n, &overflow);
        Py_DECREF(n);
    }
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (overflow || v < lo || v > hi) {
        PyErr_Format(PyExc_OverflowError, "%s() %s is out of range [%lld, %lld]",
                     sp->fname, arg_what(what, sizeof(what), sp, i, k, field),
                     lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

static int
conv_int(const pu_argspec *sp, int i, PyObject *o, long long lo,
         long long hi, long long *out)
{
    return conv_int_at(sp, i, -1, NULL, o, lo, hi, out);
}

/* An int in [0, 2**64-1], as conv_int_at(). */
static int
conv_u64_at(const pu_argspec *sp, int i, Py_ssize_t k, const char *field,
            PyObject *o, __u64 *out)
{
    char what[160];
    unsigned long long v;
    PyObject *n = index_of(sp, i, k, field, o);

    if (n == NULL)
        return -1;
    v = PyLong_AsUnsignedLongLong(n);
    Py_DECREF(n);
    if (v == (unsigned long long)-1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError))
            return -1;
        PyErr_Clear();   /* negative, or above 2**64-1 */
        PyErr_Format(PyExc_OverflowError, "%s() %s is out of range [0, %llu]",
                     sp->fname, arg_what(what, sizeof(what), sp, i, k, field),
                     (unsigned long long)UINT64_MAX);
        return -1;
    }
    *out = v;
    return 0;
}

int
pu_conv_item_int(const pu_argspec *sp, int i, Py_ssize_t k, const char *field,
                 PyObject *o, long long lo, long long hi, long long *out)
{
    return conv_int_at(sp, i, k, field, o, lo, hi, out);
}

int
pu_conv_item_u64(const pu_argspec *sp, int i, Py_ssize_t k, const char *field,
                 PyObject *o, __u64 *out)
{
    return conv_u64_at(sp, i, k, field, o, out);
}

/* A sequence argument as a tuple the caller owns.  Converters of its items
 * run Python code (fileno(), __index__, __buffer__), which may change a
 * list being walked: clear it (its items freed under the walk) or grow it
 * (past a length read before).  A tuple cannot change.  NULL with TypeError
 * naming `expected` when o is not iterable; its own error when iterating
 * fails otherwise. */
PyObject *
pu_seq_tuple(const pu_argspec *sp, int i, PyObject *o, const char *expected)
{
    PyObject *t;

    if (PyTuple_CheckExact(o)) {
        Py_INCREF(o);
        return o;
    }
    t = PySequence_Tuple(o);
    if (t == NULL && PyErr_ExceptionMatches(PyExc_TypeError)) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s() argument '%s' must be %s, not %.100s",
                     sp->fname, ARGNAME(sp, i), expected, Py_TYPE(o)->tp_name);
    }
    return t;
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

/* bits(A|B): an int whose set bits are all among mask's */
int
pu_conv_bits(const pu_argspec *sp, int i, PyObject *o, unsigned mask,
             const char *names, unsigned *out)
{
    long long v;
    if (conv_int(sp, i, o, 0, UINT32_MAX, &v) < 0)
        return -1;
    if ((unsigned)v & ~mask) {
        PyErr_Format(PyExc_ValueError, "%s() argument '%s' may hold only %s "
                     "(0x%x), not 0x%x", sp->fname, ARGNAME(sp, i), names, mask,
                     (unsigned)v);
        return -1;
    }
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
    return conv_u64_at(sp, i, -1, NULL, o, out);
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
    int fd, has;
    /* Name the method and argument, as for every other kind: CPython's own
     * message ("argument must be an int, or have a fileno() method.")
     * names neither.  A float is refused even though it has no fileno():
     * an int is what was meant, and truncating it would be wrong. */
    has = PyLong_Check(o) ? 1 : PyObject_HasAttrString(o, "fileno");
    if (!has || PyFloat_Check(o)) {
        PyErr_Format(PyExc_TypeError,
                     "%s() argument '%s' must be a file descriptor (int or an "
                     "object with fileno()), not %.200s",
                     sp->fname, ARGNAME(sp, i), Py_TYPE(o)->tp_name);
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

/* Pin o's memory in the record until its release, with the exporter's
 * code run first: PyObject_GetBuffer() may run a
 * __buffer__ method (3.12), which may end the record (queue_exit() frees
 * its blocks), so the view is taken into a local and only then stored, in
 * memory allocated after that code ran.  Moving a Py_buffer is sound for
 * the views asked for here (no PyBUF_ND, PyBUF_STRIDES or PyBUF_FORMAT):
 * none of their fields points into the struct itself. */
Py_buffer *
pu_conv_pin(SqeObject *rec, PyObject *o, int flags)
{
    Py_buffer view;
    pu_pin *p;

    if (rec->nbufs < PU_INLINE_PINS) {
        /* straight into the record: the view is not copied (a failed
         * request leaves the slot unused, nbufs unmoved) */
        if (PyObject_GetBuffer(o, &rec->bufs[rec->nbufs], flags) < 0)
            return NULL;
        return &rec->bufs[rec->nbufs++];
    }
    if (PyObject_GetBuffer(o, &view, flags) < 0)
        return NULL;
    p = pu_rec_alloc(rec, sizeof(*p));
    if (p == NULL) {
        PyBuffer_Release(&view);
        return NULL;
    }
    p->view = view;
    p->next = rec->pins;
    rec->pins = p;
    return &p->view;
}

static int
pin(SqeObject *rec, PyObject *o, int flags, Py_buffer **view)
{
    *view = pu_conv_pin(rec, o, flags);
    return *view == NULL ? -1 : 0;
}

/* After PyObject_GetBuffer() failed on o, argument i (item k when k >= 0):
 * a BufferError, the exporter's refusal of the request, becomes the
 * TypeError the stdlib's argument parsers raise, naming the method, the
 * argument and what o lacks (it is read-only, or not C-contiguous): the
 * exporter's own message names neither.  Other errors pass through. */
void
pu_buffer_refused(const pu_argspec *sp, int i, Py_ssize_t k, PyObject *o,
                  const char *expected)
{
    char what[160];
    Py_buffer v;
    int readonly, contiguous;

    PyObject *refusal;

    if (!PyErr_ExceptionMatches(PyExc_BufferError))
        return;
    /* ask again for any buffer at all, to tell why (with no exception
     * set: the exporter may run Python code); an exporter that refuses
     * that too keeps its own message */
    refusal = pu_exc_take();
    if (PyObject_GetBuffer(o, &v, PyBUF_FULL_RO) < 0) {
        PyErr_Clear();
        pu_exc_give(refusal);
        return;
    }
    Py_DECREF(refusal);
    readonly = v.readonly;
    contiguous = PyBuffer_IsContiguous(&v, 'C');
    PyBuffer_Release(&v);
    arg_what(what, sizeof(what), sp, i, k, NULL);
    if (!contiguous)
        PyErr_Format(PyExc_TypeError, "%s() %s must be %s, not a non-contiguous "
                     "%.100s (copy it, or slice it without a step)", sp->fname,
                     what, expected, Py_TYPE(o)->tp_name);
    else if (readonly)
        PyErr_Format(PyExc_TypeError, "%s() %s must be %s, not a read-only %.100s",
                     sp->fname, what, expected, Py_TYPE(o)->tp_name);
    else
        PyErr_Format(PyExc_TypeError, "%s() %s must be %s, not %.100s",
                     sp->fname, what, expected, Py_TYPE(o)->tp_name);
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
    if (pin(rec, o, PyBUF_SIMPLE, &v) < 0) {
        pu_buffer_refused(sp, i, -1, o, "a C-contiguous bytes-like object");
        return -1;
    }
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
        pu_buffer_refused(sp, i, -1, o, "a writable C-contiguous bytes-like "
                          "object or an int");
        return -1;
    }
    *buf = v->buf;
    *len = clamp_len(v->len);
    return 0;
}

static size_t
page_size(void)
{
    static size_t size;
    if (size == 0)
        size = (size_t)sysconf(_SC_PAGESIZE);
    return size;
}

/* madvise(2)'s range: writable memory of whole pages.  The kernel acts on
 * every page the range touches (it rounds the length up to a page) and
 * may drop their contents (MADV_DONTNEED, MADV_REMOVE, MADV_FREE), so all
 * of those pages must be the buffer's own, and writable: a page-aligned
 * start and a length of whole pages, as mmap.madvise() would give. */
int
pu_conv_pages(const pu_argspec *sp, int i, SqeObject *rec, PyObject *o,
              void **buf, __u64 *len)
{
    size_t page = page_size();
    Py_buffer *v;

    if (PyUnicode_Check(o) || !PyObject_CheckBuffer(o)) {
        PyErr_Format(PyExc_TypeError,
                     "%s() argument '%s' must be a writable bytes-like object "
                     "(an mmap, say), not %.100s",
                     sp->fname, ARGNAME(sp, i), Py_TYPE(o)->tp_name);
        return -1;
    }
    if (pin(rec, o, PyBUF_WRITABLE, &v) < 0) {
        pu_buffer_refused(sp, i, -1, o, "a writable C-contiguous bytes-like "
                          "object (an mmap, say)");
        return -1;
    }
    if ((uintptr_t)v->buf % page != 0 || (size_t)v->len % page != 0) {
        PyErr_Format(PyExc_ValueError,
                     "%s() argument '%s' must be whole pages: its start must be "
                     "a multiple of the page size (%zu) and its length too "
                     "(it starts %zu bytes into a page and is %zd bytes long); "
                     "the kernel would act on the rest of those pages",
                     sp->fname, ARGNAME(sp, i), page,
                     (size_t)((uintptr_t)v->buf % page), v->len);
        return -1;
    }
    *buf = v->buf;
    *len = (__u64)v->len;
    return 0;
}

/* The size of a futex word, from its FUTEX2_SIZE_* flags (the low two
 * bits: 1, 2, 4 or 8 bytes) */
#define FUTEX_WORD_SIZE(flags) ((size_t)1 << ((flags) & 3))

int
pu_check_futex_word(const pu_argspec *sp, int i, Py_ssize_t k, const void *buf,
                    size_t len, unsigned long long flags)
{
    char what[160];
    size_t size = FUTEX_WORD_SIZE(flags);

    /* the kernel reads (and compares) size bytes at buf: they must be the
     * buffer's own, and the kernel refuses a misaligned word anyway */
    if (len < size || (uintptr_t)buf % size != 0) {
        PyErr_Format(PyExc_ValueError,
                     "%s() %s must hold a %zu-byte futex word (the size its "
                     "FUTEX2_SIZE_* flags give), aligned to %zu bytes: it is "
                     "%zu bytes long at an address %zu bytes past alignment",
                     sp->fname, arg_what(what, sizeof(what), sp, i, k, NULL),
                     size, size, len, (size_t)((uintptr_t)buf % size));
        return -1;
    }
    return 0;
}

/* A futex word: pinned as buffer_in; its size is checked against the
 * flags argument, converted later, by pu_check_futex(). */
int
pu_conv_futex(const pu_argspec *sp, int i, SqeObject *rec, PyObject *o,
              const void **buf, unsigned *len)
{
    return pu_conv_buffer_in(sp, i, rec, o, buf, len);
}

int
pu_check_futex(const pu_argspec *sp, int i, const void *buf, unsigned len,
               unsigned flags)
{
    return pu_check_futex_word(sp, i, -1, buf, len, flags);
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
 * or str (compared without running Python code: both exact types).  A
 * user data prep_many() keeps as a C integer is an exact int. */
static int
same_data(const SqeObject *t, PyObject *data)
{
    PyObject *mine = t->data;

    if (t->data_is_int) {
        int overflow = 0;
        long long v;

        if (!PyLong_CheckExact(data))
            return 0;
        v = PyLong_AsLongLongAndOverflow(data, &overflow);
        return !overflow && v == t->data_int;   /* never -1 with an error: exact int */
    }
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
        if (t != NULL && t != self && same_data(t, data)) {
            found = t;
            ++*n;
        }
    }
    /* one in flight wins over one whose completion waits to be seen */
    for (Py_ssize_t k = r->cq_start; *n == 0 && k < r->cq_end; k++) {
        SqeObject *t = r->cq[k]->sqe;
        /* a multishot op's earlier completions name the record that is
         * still in the table: counted there */
        if (t != NULL && t != self && same_data(t, data) && t->state == PU_DONE) {
            found = t;
            ++*n;
        }
    }
    return found;
}

/* The target's user_data on ring r; rec is the entry being prepared (it
 * cannot name itself), or NULL (register_sync_cancel()) */
static int
target_ud(const pu_argspec *sp, int i, RingObject *r, SqeObject *rec, PyObject *o,
          __u64 *out)
{
    SqeObject *t;
    if (!PyObject_TypeCheck(o, &pu_SqeType)) {
        int n = 0;
        t = o == Py_None ? NULL : record_by_data(r, rec, o, &n);
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
    if (t->ring != r) {
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
    *out = t->life == r->life ? t->user_data : PU_UD_STALE;
    return 0;
}

int
pu_conv_target(const pu_argspec *sp, int i, SqeObject *rec, PyObject *o,
               __u64 *out)
{
    return target_ud(sp, i, rec->ring, rec, o, out);
}

/* the `target` kind's lookup outside a prep (an Sqe, or the user_data of
 * an operation in flight on r) */
int
pu_ring_target(const pu_argspec *sp, int i, RingObject *r, PyObject *o, __u64 *out)
{
    return target_ud(sp, i, r, NULL, o, out);
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
 * buffer pinned (writable ones for reads).
 *
 * Pinning an item may run Python code (a __buffer__ method, 3.12), and
 * that code may end the record (queue_exit() frees its blocks): nothing is
 * written into the record's memory until every item is pinned.  The
 * generated prep then finds the entry lost and fails. */
static int
conv_iovecs(const pu_argspec *sp, int i, SqeObject *rec, PyObject *o,
            int writable, struct iovec **out, unsigned *count)
{
    const char *expected = writable ? "a list or tuple of writable bytes-like "
                                      "objects"
                                    : "a list or tuple of bytes-like objects";
    PyObject *seq;
    Py_ssize_t n;
    struct iovec *tmp, *iov;

    if (PyUnicode_Check(o) || PyObject_CheckBuffer(o)) {
        PyErr_Format(PyExc_TypeError, "%s() argument '%s' must be %s, not %.100s",
                     sp->fname, ARGNAME(sp, i), expected, Py_TYPE(o)->tp_name);
        return -1;
    }
    if ((seq = pu_seq_tuple(sp, i, o, expected)) == NULL)
        return -1;
    n = PyTuple_GET_SIZE(seq);
    if (n > IOV_MAX) {
        Py_DECREF(seq);
        PyErr_Format(PyExc_ValueError, "%s() argument '%s' has more than %d buffers",
                     sp->fname, ARGNAME(sp, i), IOV_MAX);
        return -1;
    }
    tmp = PyMem_New(struct iovec, n ? n : 1);
    if (tmp == NULL) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *item = PyTuple_GET_ITEM(seq, k);
        Py_buffer *v;
        if (PyUnicode_Check(item) || !PyObject_CheckBuffer(item)) {
            PyErr_Format(PyExc_TypeError, "%s() argument '%s' item %zd must be a "
                         "%sbytes-like object, not %.100s", sp->fname,
                         ARGNAME(sp, i), k, writable ? "writable " : "",
                         Py_TYPE(item)->tp_name);
            goto fail;
        }
        v = pu_conv_pin(rec, item, writable ? PyBUF_WRITABLE : PyBUF_SIMPLE);
        if (v == NULL) {
            pu_buffer_refused(sp, i, k, item, writable
                              ? "a writable C-contiguous bytes-like object"
                              : "a C-contiguous bytes-like object");
            goto fail;
        }
        /* the view may live in a block of the record: read it now */
        tmp[k].iov_base = v->buf;
        tmp[k].iov_len = (size_t)v->len;
    }
    iov = pu_rec_alloc(rec, (size_t)(n ? n : 1) * sizeof(*iov));
    if (iov == NULL)
        goto fail;
    memcpy(iov, tmp, (size_t)n * sizeof(*iov));
    PyMem_Free(tmp);
    Py_DECREF(seq);
    *out = iov;
    *count = (unsigned)n;
    return 0;
fail:
    PyMem_Free(tmp);
    Py_DECREF(seq);
    return -1;
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

/* A sequence of file descriptors (or -1, an empty slot) as an int array
 * the caller frees with PyMem_Free(): fd_list's converter and the
 * register_files* methods.  fileno() and __index__ run Python code, so
 * the sequence is walked as a tuple copy. */
int
pu_fds_from(const pu_argspec *sp, int i, PyObject *o, int **out, unsigned *count)
{
    PyObject *seq = pu_seq_tuple(sp, i, o, "a sequence of file descriptors");
    Py_ssize_t n;
    int *fds;

    if (seq == NULL)
        return -1;
    n = PyTuple_GET_SIZE(seq);
    if (n > INT_MAX / 2) {
        Py_DECREF(seq);
        PyErr_Format(PyExc_ValueError, "%s() argument '%s' is too long",
                     sp->fname, ARGNAME(sp, i));
        return -1;
    }
    fds = PyMem_New(int, n ? n : 1);
    if (fds == NULL) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *item = PyTuple_GET_ITEM(seq, k);
        /* an int (subclass) is read without running its code */
        if (PyLong_Check(item) && PyLong_AsLong(item) == -1 && !PyErr_Occurred()) {
            fds[k] = -1;   /* -1 leaves (or makes) the slot empty */
            continue;
        }
        PyErr_Clear();
        if (pu_conv_fd(sp, i, item, &fds[k]) < 0) {
            PyMem_Free(fds);
            Py_DECREF(seq);
            return -1;
        }
    }
    Py_DECREF(seq);
    *out = fds;
    *count = (unsigned)n;
    return 0;
}

/* fd_list: the array in the record, made once every fileno() has run (the
 * code it runs may end the record, freeing its blocks) */
int
pu_conv_fd_list(const pu_argspec *sp, int i, SqeObject *rec, PyObject *o,
                int **out, unsigned *count)
{
    int *tmp, *fds;
    unsigned n;

    if (pu_fds_from(sp, i, o, &tmp, &n) < 0)
        return -1;
    fds = pu_rec_alloc(rec, (size_t)(n ? n : 1) * sizeof(int));
    if (fds != NULL)
        memcpy(fds, tmp, (size_t)n * sizeof(int));
    PyMem_Free(tmp);
    if (fds == NULL)
        return -1;
    *out = fds;
    *count = n;
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
