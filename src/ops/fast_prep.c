/* fast_prep.c: IoUring.prep_NAME(), the fast form of
 * get_sqe(); sqe.prep_NAME(...); sqe.set_data(user_data) in one call.
 *
 * No Sqe object reaches Python: the record is made and kept exactly as
 * get_sqe() makes it (the slot table holds it until the final completion),
 * so everything the kernel may touch stays pinned the same way.  A prep
 * that fails gives its entry back, so a bad call leaves nothing in the
 * queue. */
#include "register/register.h"

static const pu_common_rules ring_rules = {
    1, 0xff, "sqe_flags must be 0-255", 0};

PyObject *
pu_ring_prep(PyObject *self, const pu_opdef *op, PyObject *const *args,
             Py_ssize_t nargs, PyObject *kwnames)
{
    RingObject *r = (RingObject *)self;
    pu_call_args ca;
    pu_common c;
    SqeObject *rec;
    PyObject *ok = NULL;

    if (pu_split_common(args, nargs, kwnames, &ca, &c, &ring_rules) < 0)
        goto out;
    /* the bit first: the usual op is supported, and the ring's state is
     * checked again by pu_ring_get_sqe() */
    if (!PU_SUPPORTED(r, op->opcode) && PU_RING_USABLE(r)) {
        pu_err_unsupported(op);
        goto out;
    }
    rec = pu_ring_get_sqe(r);   /* checks the ring; the entry is ours */
    if (rec == NULL)
        goto out;
    pu_common_apply(rec, &c);
    if (pu_sqe_prep_entry(rec, op, ca.args, nargs, ca.kwnames) < 0) {
        pu_ring_unget_sqe(r, rec);
    } else {
        if (c.data != NULL) {
            Py_INCREF(c.data);
            Py_XSETREF(rec->data, c.data);
        }
        ok = Py_None;
        Py_INCREF(ok);
    }
    Py_DECREF(rec);
out:
    Py_XDECREF(ca.owned);
    return ok;
}

/* ---- prep_many(): one call, many entries of one op ----
 *
 * A loop of fast-form calls pays the interpreter's call and loop for every
 * entry; prep_many() runs the same per-entry prep from C.  Each entry is
 * exactly what prep_NAME(*args[i], user_data=user_data[i], ...) makes, and
 * the call is all or nothing: when an entry fails, the entries this call
 * queued are given back (unless code a converter ran submitted them). */

static PyObject *op_index;   /* {"nop": 0, "read": 1, ...}: ops.def order */

static const pu_opdef *
op_by_name(PyObject *name)
{
    PyObject *i;

    if (!PyUnicode_Check(name)) {
        PyErr_Format(PyExc_TypeError, "prep_many(): op must be an op name "
                     "such as 'read', not %.100s", Py_TYPE(name)->tp_name);
        return NULL;
    }
    if (op_index == NULL) {
        op_index = PyDict_New();
        if (op_index == NULL)
            return NULL;
        for (int k = 0; k < pu_nopdefs; k++) {
            PyObject *v = PyLong_FromLong(k);
            int rc = v ? PyDict_SetItemString(op_index, pu_opdefs[k].name, v) : -1;
            Py_XDECREF(v);
            if (rc < 0) {
                Py_CLEAR(op_index);
                return NULL;
            }
        }
    }
    i = PyDict_GetItemWithError(op_index, name);
    if (i == NULL) {
        if (!PyErr_Occurred())
            PyErr_Format(PyExc_ValueError, "prep_many(): no op named %R "
                         "(the names are those of the prep_* methods, "
                         "without prep_)", name);
        return NULL;
    }
    return &pu_opdefs[PyLong_AsLong(i)];
}

/* range(start, stop, step) as its bounds in C: a batch numbered by a range
 * is the usual user_data, and its entries keep their number as a C integer
 * (SqeObject.data_is_int), made an int only when reaped.  1 when every item
 * fits in a long long, 0 (no error) when some bound does not (the caller
 * then iterates), -1 with an exception. */
static int
range_bounds(PyObject *o, long long *start, long long *step, Py_ssize_t *len)
{
    static PyObject *names[2];   /* "start", "step", interned once */
    long long v[2];
    Py_ssize_t n = PyObject_Length(o);

    if (n < 0)
        return -1;
    if (names[1] == NULL) {
        names[0] = PyUnicode_InternFromString("start");
        names[1] = names[0] ? PyUnicode_InternFromString("step") : NULL;
        if (names[1] == NULL)
            return -1;
    }
    for (int k = 0; k < 2; k++) {
        int overflow = 0;
        PyObject *a = PyObject_GetAttr(o, names[k]);

        if (a == NULL)
            return -1;
        v[k] = PyLong_AsLongLongAndOverflow(a, &overflow);
        Py_DECREF(a);
        if (v[k] == -1 && PyErr_Occurred())
            return -1;
        /* the last item must fit too: |start|, |step| * n below 2**62 */
        if (overflow || v[k] > (1LL << 31) * (1LL << 31) ||
            v[k] < -(1LL << 31) * (1LL << 31))
            return 0;
    }
    if (n > 0 && (v[1] > (1LL << 62) / n || v[1] < -(1LL << 62) / n))
        return 0;
    *start = v[0];
    *step = v[1];
    *len = n;
    return 1;
}

/* A copy as a tuple: converters run Python code, which may change a list
 * the call is still walking. */
static PyObject *
column(PyObject *o, const char *what)
{
    if (o == NULL || o == Py_None)
        return NULL;
    if (PyTuple_CheckExact(o)) {
        Py_INCREF(o);
        return o;
    }
    o = PySequence_Tuple(o);
    if (o == NULL && PyErr_ExceptionMatches(PyExc_TypeError)) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "prep_many(): %s must be an iterable", what);
    }
    return o;
}

static const char *const many_kw[] = {"op", "args", NULL};
static const pu_argspec many_spec = {"prep_many", many_kw, 1, 2, 0};

PyObject *
pu_ring_prep_many(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                  PyObject *kwnames)
{
    RingObject *r = (RingObject *)self;
    pu_call_args ca;
    pu_common c;
    PyObject *argv[2], *calls = NULL, *datas = NULL, *ret = NULL;
    SqeObject **recs = NULL;
    const pu_opdef *op;
    Py_ssize_t n, i = 0, nrange = 0;
    long long start = 0, step = 0;
    int ranged = 0;

    if (pu_split_common(args, nargs, kwnames, &ca, &c, &ring_rules) < 0 ||
        pu_parse_args(&many_spec, ca.args, nargs, ca.kwnames, argv) < 0 ||
        (op = op_by_name(argv[0])) == NULL)
        goto out;
    calls = column(argv[1], "args");
    if (calls == NULL && PyErr_Occurred())
        goto out;
    if (c.data != NULL && PyRange_Check(c.data) &&
        (ranged = range_bounds(c.data, &start, &step, &nrange)) < 0)
        goto out;
    datas = ranged ? NULL : column(c.data, "user_data");
    if (datas == NULL && PyErr_Occurred())
        goto out;
    if (calls == NULL && datas == NULL && !ranged) {
        PyErr_SetString(PyExc_TypeError, "prep_many(): give args, user_data "
                        "or both: their length is the number of entries");
        goto out;
    }
    n = calls ? PyTuple_GET_SIZE(calls) : ranged ? nrange : PyTuple_GET_SIZE(datas);
    if (calls && (datas || ranged) && (ranged ? nrange : PyTuple_GET_SIZE(datas)) != n) {
        PyErr_Format(PyExc_ValueError, "prep_many(): %zd args but %zd "
                     "user_data values", n, ranged ? nrange : PyTuple_GET_SIZE(datas));
        goto out;
    }
    for (i = 0; calls && i < n; i++) {
        if (!PyTuple_Check(PyTuple_GET_ITEM(calls, i))) {
            PyErr_Format(PyExc_TypeError, "prep_many(): args[%zd] must be a "
                         "tuple of prep_%s() arguments, not %.100s", i,
                         op->name, Py_TYPE(PyTuple_GET_ITEM(calls, i))->tp_name);
            goto out;
        }
    }
    if (pu_ring_check_sq(r) < 0)
        goto out;
    if (!PU_SUPPORTED(r, op->opcode)) {
        pu_err_unsupported(op);
        goto out;
    }
    if ((size_t)n > io_uring_sq_space_left(&r->ring)) {
        PyErr_Format(pu_SubmissionQueueFull, "prep_many(): %zd entries "
                     "asked, %u free in the submission queue: submit() first",
                     n, io_uring_sq_space_left(&r->ring));
        goto out;
    }
    recs = PyMem_New(SqeObject *, n > 0 ? n : 1);
    if (recs == NULL) {
        PyErr_NoMemory();
        goto out;
    }
    for (i = 0; i < n; i++) {
        PyObject *call = calls ? PyTuple_GET_ITEM(calls, i) : NULL;
        /* our reference, till the end; get_sqe checks the ring again, as
         * the previous entry's converters may have run Python code */
        SqeObject *rec = pu_ring_get_sqe(r);

        if (rec == NULL)
            goto undo;
        recs[i] = rec;
        pu_common_apply(rec, &c);
        if (pu_sqe_prep_entry(rec, op, call ? &PyTuple_GET_ITEM(call, 0) : NULL,
                              call ? PyTuple_GET_SIZE(call) : 0, NULL) < 0) {
            i++;
            goto undo;
        }
        if (datas != NULL) {
            Py_INCREF(PyTuple_GET_ITEM(datas, i));
            Py_XSETREF(rec->data, PyTuple_GET_ITEM(datas, i));
        } else if (ranged) {
            Py_CLEAR(rec->data);
            rec->data_int = start + step * (long long)i;
            rec->data_is_int = 1;
        }
    }
    ret = PyLong_FromSsize_t(n);
    goto release;
undo:
    /* newest first, so each is the queue's last entry; stop at the first
     * that is not (something else took or submitted entries meanwhile) */
    for (Py_ssize_t k = i - 1; k >= 0 && pu_provided_unget_sqe(r, recs[k]); k--)
        ;
release:
    while (i > 0)
        Py_DECREF(recs[--i]);
out:
    PyMem_Free(recs);
    Py_XDECREF(calls);
    Py_XDECREF(datas);
    Py_XDECREF(ca.owned);
    return ret;
}
