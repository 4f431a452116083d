/* bench/ideal_ring.c: the floor under py_io_uring's NOP loops.
 *
 * A module with py_io_uring's call shapes (IoUring(), get_sqe(),
 * Sqe.prep_nop(), set_data(), submit(), wait_cqe_nr(), cqe_seen(),
 * cq_advance(), prep_nop(user_data=), submit_and_wait(), reap(),
 * reap_one(), prep_many("nop", user_data=range()), reap(columns=True))
 * and nothing behind them: no kernel, no SQE, no record, no pin, no
 * check a real ring needs.  A "submitted" entry completes at once with
 * result 0.  What it cannot skip is what the API's shape makes every
 * implementation do: a call per method, an object per Sqe and Cqe asked
 * for (from a free list, as py_io_uring's), a tuple or three list items
 * per completion, the user data held and handed back, a range's ints made
 * when reaped.
 *
 * bench/instructions.py runs bench/workloads/nop.py's very loops on it
 * (--floor): their instructions per op on this module are the least any
 * C extension with this API can cost on this interpreter, so the issue's
 * per-op targets can be set against them (docs/performance.md).  Bench
 * code only: never shipped, never imported by the package. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

typedef struct {
    PyObject *data;            /* strong, or NULL when is_int */
    long long num;
    int is_int;
} Ent;

typedef struct {
    PyObject_HEAD
    Py_ssize_t cap;
    Ent *sq, *cq;
    Py_ssize_t nsq, cq_head, cq_tail;
} Ring;

typedef struct {
    PyObject_HEAD
    Ring *ring;                /* strong */
    Py_ssize_t idx;
} Sqe;

typedef struct {
    PyObject_HEAD
    PyObject *data;            /* strong */
    long res;
} Cqe;

static PyTypeObject Ring_Type, Sqe_Type, Cqe_Type;
static PyObject *str_user_data, *str_columns;

/* free lists, as py_io_uring keeps for its Sqe and Cqe objects */
#define FREE_MAX 256
static PyObject *sqe_free[FREE_MAX], *cqe_free[FREE_MAX];
static int nsqe_free, ncqe_free;

static PyObject *
obj_new(PyTypeObject *t, PyObject **list, int *n)
{
    PyObject *o = *n ? list[--*n] : PyObject_Malloc(t->tp_basicsize);

    if (o == NULL)
        return PyErr_NoMemory();
    return PyObject_Init(o, t);
}

static void
obj_free(PyObject *o, PyObject **list, int *n)
{
    if (*n < FREE_MAX)
        list[(*n)++] = o;
    else
        PyObject_Free(o);
}

static PyObject *
ent_data(Ent *e)               /* a new reference; empties the entry */
{
    PyObject *o;

    if (e->is_int)
        return PyLong_FromLongLong(e->num);
    o = e->data;
    e->data = NULL;
    if (o == NULL) {
        Py_INCREF(Py_None);
        o = Py_None;
    }
    return o;
}

static void
ent_clear(Ent *e)
{
    Py_CLEAR(e->data);
}

/* ---------------------------------------------------------------- Ring */

static PyObject *
Ring_new(PyTypeObject *t, PyObject *args, PyObject *kw)
{
    Py_ssize_t cap;
    unsigned flags = 0;
    Ring *r;

    (void)kw;
    if (!PyArg_ParseTuple(args, "n|I", &cap, &flags))
        return NULL;
    if (cap < 1 || cap > 65536) {
        PyErr_SetString(PyExc_ValueError, "entries out of range");
        return NULL;
    }
    r = (Ring *)t->tp_alloc(t, 0);
    if (r == NULL)
        return NULL;
    r->cap = cap;
    r->sq = PyMem_Calloc(cap, sizeof(Ent));
    r->cq = PyMem_Calloc(cap, sizeof(Ent));
    if (r->sq == NULL || r->cq == NULL) {
        Py_DECREF(r);
        return PyErr_NoMemory();
    }
    return (PyObject *)r;
}

static void
ring_clear(Ring *r)
{
    for (Py_ssize_t i = 0; i < r->nsq; i++)
        ent_clear(&r->sq[i]);
    for (Py_ssize_t i = r->cq_head; i < r->cq_tail; i++)
        ent_clear(&r->cq[i]);
    r->nsq = r->cq_head = r->cq_tail = 0;
}

static void
Ring_dealloc(Ring *r)
{
    if (r->sq != NULL && r->cq != NULL)
        ring_clear(r);
    PyMem_Free(r->sq);
    PyMem_Free(r->cq);
    Py_TYPE(r)->tp_free(r);
}

static PyObject *
Ring_queue_exit(Ring *r, PyObject *unused)
{
    (void)unused;
    ring_clear(r);
    Py_RETURN_NONE;
}

/* queue one entry: the SQ is full when the CQ has no room for it either */
static Ent *
ring_queue(Ring *r)
{
    if (r->nsq >= r->cap || r->cq_tail - r->cq_head + r->nsq >= r->cap) {
        PyErr_SetString(PyExc_RuntimeError, "ring full");
        return NULL;
    }
    return &r->sq[r->nsq++];
}

/* every queued entry completes, in order, with result 0 */
static Py_ssize_t
ring_submit(Ring *r)
{
    Py_ssize_t n = r->nsq;

    if (r->cq_head == r->cq_tail)
        r->cq_head = r->cq_tail = 0;
    if (r->cq_tail + n > r->cap) {       /* compact */
        Py_ssize_t live = r->cq_tail - r->cq_head;
        memmove(r->cq, r->cq + r->cq_head, live * sizeof(Ent));
        r->cq_head = 0;
        r->cq_tail = live;
    }
    memcpy(r->cq + r->cq_tail, r->sq, n * sizeof(Ent));
    r->cq_tail += n;
    r->nsq = 0;
    return n;
}

static PyObject *
Ring_get_sqe(Ring *r, PyObject *unused)
{
    Ent *e;
    Sqe *s;

    (void)unused;
    if ((e = ring_queue(r)) == NULL)
        return NULL;
    s = (Sqe *)obj_new(&Sqe_Type, sqe_free, &nsqe_free);
    if (s == NULL) {
        r->nsq--;
        return NULL;
    }
    e->data = NULL;
    e->is_int = 0;
    Py_INCREF(r);
    s->ring = r;
    s->idx = e - r->sq;
    return (PyObject *)s;
}

static PyObject *
Ring_submit(Ring *r, PyObject *unused)
{
    (void)unused;
    return PyLong_FromSsize_t(ring_submit(r));
}

static PyObject *
Ring_submit_and_wait(Ring *r, PyObject *const *args, Py_ssize_t nargs)
{
    (void)args;
    (void)nargs;
    return PyLong_FromSsize_t(ring_submit(r));
}

static PyObject *
cqe_make(Ent *e)
{
    Cqe *c = (Cqe *)obj_new(&Cqe_Type, cqe_free, &ncqe_free);

    if (c == NULL)
        return NULL;
    if (e->is_int) {
        if ((c->data = PyLong_FromLongLong(e->num)) == NULL) {
            Py_DECREF(c);
            return NULL;
        }
    } else {
        c->data = e->data ? e->data : Py_None;
        Py_INCREF(c->data);
    }
    c->res = 0;
    return (PyObject *)c;
}

static PyObject *
Ring_wait_cqe_nr(Ring *r, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t n = nargs ? PyLong_AsSsize_t(args[0]) : 1, avail;
    PyObject *list;

    if (n == -1 && PyErr_Occurred())
        return NULL;
    avail = r->cq_tail - r->cq_head;
    if (n > avail)
        n = avail;
    if ((list = PyList_New(n)) == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *c = cqe_make(&r->cq[r->cq_head + i]);
        if (c == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, c);
    }
    return list;
}

static PyObject *
Ring_cqe_seen(Ring *r, PyObject *cqe)
{
    (void)cqe;
    if (r->cq_head < r->cq_tail)
        ent_clear(&r->cq[r->cq_head++]);
    Py_RETURN_NONE;
}

static PyObject *
Ring_cq_advance(Ring *r, PyObject *arg)
{
    Py_ssize_t n = PyLong_AsSsize_t(arg);

    if (n == -1 && PyErr_Occurred())
        return NULL;
    while (n-- > 0 && r->cq_head < r->cq_tail)
        ent_clear(&r->cq[r->cq_head++]);
    Py_RETURN_NONE;
}

/* prep_nop(user_data=None): the fast form */
static PyObject *
Ring_prep_nop(Ring *r, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *data = Py_None;
    Ent *e;

    if (nargs != 0 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 1)) {
        PyErr_SetString(PyExc_TypeError, "prep_nop() takes user_data= only");
        return NULL;
    }
    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames) == 1) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, 0);
        if (name != str_user_data && PyUnicode_Compare(name, str_user_data) != 0) {
            PyErr_SetString(PyExc_TypeError, "prep_nop() takes user_data= only");
            return NULL;
        }
        data = args[0];
    }
    if ((e = ring_queue(r)) == NULL)
        return NULL;
    Py_INCREF(data);
    e->data = data;
    e->is_int = 0;
    Py_RETURN_NONE;
}

/* prep_many("nop", user_data=range(...)): each entry's number kept as a C
 * integer, made an int when reaped (as py_io_uring's records keep it) */
static PyObject *
Ring_prep_many(Ring *r, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *ud, *start, *step;
    long long s0, st;
    Py_ssize_t n;

    if (nargs != 1 || kwnames == NULL || PyTuple_GET_SIZE(kwnames) != 1 ||
        PyUnicode_Compare(PyTuple_GET_ITEM(kwnames, 0), str_user_data) != 0 ||
        !PyRange_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "prep_many(op, user_data=range(...)) only");
        return NULL;
    }
    ud = args[1];
    start = PyObject_GetAttrString(ud, "start");
    step = PyObject_GetAttrString(ud, "step");
    n = PyObject_Length(ud);
    s0 = start ? PyLong_AsLongLong(start) : -1;
    st = step ? PyLong_AsLongLong(step) : -1;
    Py_XDECREF(start);
    Py_XDECREF(step);
    if (PyErr_Occurred())
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        Ent *e = ring_queue(r);
        if (e == NULL)
            return NULL;
        e->data = NULL;
        e->num = s0 + i * st;
        e->is_int = 1;
    }
    return PyLong_FromSsize_t(n);
}

static PyObject *
tuple3(Ent *e)
{
    PyObject *t = PyTuple_New(3), *d;

    if (t == NULL)
        return NULL;
    if ((d = ent_data(e)) == NULL) {
        Py_DECREF(t);
        return NULL;
    }
    PyTuple_SET_ITEM(t, 0, d);
    PyTuple_SET_ITEM(t, 1, PyLong_FromLong(0));
    PyTuple_SET_ITEM(t, 2, PyLong_FromLong(0));
    return t;
}

/* reap(count, wait_nr=0, submit=False, *, columns=False) */
static PyObject *
Ring_reap(Ring *r, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    Py_ssize_t count, n;
    int columns = 0;
    PyObject *out;

    if (nargs < 1 || nargs > 3) {
        PyErr_SetString(PyExc_TypeError, "reap(count, wait_nr=0, submit=False, *, columns=False)");
        return NULL;
    }
    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames) == 1 &&
        PyUnicode_Compare(PyTuple_GET_ITEM(kwnames, 0), str_columns) == 0)
        columns = PyObject_IsTrue(args[nargs]);
    if ((count = PyLong_AsSsize_t(args[0])) == -1 && PyErr_Occurred())
        return NULL;
    if (nargs == 3 && PyObject_IsTrue(args[2]))
        ring_submit(r);
    n = r->cq_tail - r->cq_head;
    if (n > count)
        n = count;
    if (!columns) {
        if ((out = PyList_New(n)) == NULL)
            return NULL;
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *t = tuple3(&r->cq[r->cq_head++]);
            if (t == NULL) {
                Py_DECREF(out);
                return NULL;
            }
            PyList_SET_ITEM(out, i, t);
        }
        return out;
    }
    PyObject *data = PyList_New(n), *res = PyList_New(n), *flags = PyList_New(n);
    if (data == NULL || res == NULL || flags == NULL)
        goto fail;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *d = ent_data(&r->cq[r->cq_head++]);
        if (d == NULL)
            goto fail;
        PyList_SET_ITEM(data, i, d);
        PyList_SET_ITEM(res, i, PyLong_FromLong(0));
        PyList_SET_ITEM(flags, i, PyLong_FromLong(0));
    }
    if ((out = PyTuple_New(3)) == NULL)
        goto fail;
    PyTuple_SET_ITEM(out, 0, data);
    PyTuple_SET_ITEM(out, 1, res);
    PyTuple_SET_ITEM(out, 2, flags);
    return out;
fail:
    Py_XDECREF(data);
    Py_XDECREF(res);
    Py_XDECREF(flags);
    return NULL;
}

/* reap_one(wait=False, submit=False): one completion's tuple, or None */
static PyObject *
Ring_reap_one(Ring *r, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs == 2 && args[1] == Py_True)
        ring_submit(r);
    if (r->cq_head == r->cq_tail)
        Py_RETURN_NONE;
    return tuple3(&r->cq[r->cq_head++]);
}

static PyMethodDef Ring_methods[] = {
    {"queue_exit", (PyCFunction)Ring_queue_exit, METH_NOARGS, NULL},
    {"get_sqe", (PyCFunction)Ring_get_sqe, METH_NOARGS, NULL},
    {"submit", (PyCFunction)Ring_submit, METH_NOARGS, NULL},
    {"submit_and_wait", (PyCFunction)(void (*)(void))Ring_submit_and_wait, METH_FASTCALL, NULL},
    {"wait_cqe_nr", (PyCFunction)(void (*)(void))Ring_wait_cqe_nr, METH_FASTCALL, NULL},
    {"cqe_seen", (PyCFunction)Ring_cqe_seen, METH_O, NULL},
    {"cq_advance", (PyCFunction)Ring_cq_advance, METH_O, NULL},
    {"prep_nop", (PyCFunction)(void (*)(void))Ring_prep_nop, METH_FASTCALL | METH_KEYWORDS, NULL},
    {"prep_many", (PyCFunction)(void (*)(void))Ring_prep_many, METH_FASTCALL | METH_KEYWORDS, NULL},
    {"reap", (PyCFunction)(void (*)(void))Ring_reap, METH_FASTCALL | METH_KEYWORDS, NULL},
    {"reap_one", (PyCFunction)(void (*)(void))Ring_reap_one, METH_FASTCALL, NULL},
    {NULL, NULL, 0, NULL},
};

/* ---------------------------------------------------------------- Sqe, Cqe */

static void
Sqe_dealloc(Sqe *s)
{
    Py_CLEAR(s->ring);
    obj_free((PyObject *)s, sqe_free, &nsqe_free);
}

static PyObject *
Sqe_prep_nop(Sqe *s, PyObject *unused)
{
    (void)s;
    (void)unused;
    Py_RETURN_NONE;
}

static PyObject *
Sqe_set_data(Sqe *s, PyObject *data)
{
    Ent *e;

    if (s->idx >= s->ring->nsq) {
        PyErr_SetString(PyExc_RuntimeError, "set_data() after submit()");
        return NULL;
    }
    e = &s->ring->sq[s->idx];
    Py_INCREF(data);
    Py_XSETREF(e->data, data);
    Py_RETURN_NONE;
}

static PyMethodDef Sqe_methods[] = {
    {"prep_nop", (PyCFunction)Sqe_prep_nop, METH_NOARGS, NULL},
    {"set_data", (PyCFunction)Sqe_set_data, METH_O, NULL},
    {NULL, NULL, 0, NULL},
};

static void
Cqe_dealloc(Cqe *c)
{
    Py_CLEAR(c->data);
    obj_free((PyObject *)c, cqe_free, &ncqe_free);
}

static PyObject *
Cqe_res(Cqe *c, PyObject *unused)
{
    (void)unused;
    return PyLong_FromLong(c->res);
}

static PyObject *
Cqe_get_data(Cqe *c, PyObject *unused)
{
    (void)unused;
    Py_INCREF(c->data);
    return c->data;
}

static PyMethodDef Cqe_methods[] = {
    {"res", (PyCFunction)Cqe_res, METH_NOARGS, NULL},
    {"get_data", (PyCFunction)Cqe_get_data, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject Ring_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ideal_ring.IoUring",
    .tp_basicsize = sizeof(Ring),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = Ring_new,
    .tp_dealloc = (destructor)Ring_dealloc,
    .tp_methods = Ring_methods,
};

static PyTypeObject Sqe_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ideal_ring.Sqe",
    .tp_basicsize = sizeof(Sqe),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_dealloc = (destructor)Sqe_dealloc,
    .tp_methods = Sqe_methods,
};

static PyTypeObject Cqe_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ideal_ring.Cqe",
    .tp_basicsize = sizeof(Cqe),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_dealloc = (destructor)Cqe_dealloc,
    .tp_methods = Cqe_methods,
};

static struct PyModuleDef ideal_ring_module = {
    PyModuleDef_HEAD_INIT, "ideal_ring",
    "py_io_uring's NOP call shapes with nothing behind them (bench only)",
    -1, NULL, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit_ideal_ring(void)
{
    PyObject *m;

    if (PyType_Ready(&Ring_Type) < 0 || PyType_Ready(&Sqe_Type) < 0 ||
        PyType_Ready(&Cqe_Type) < 0)
        return NULL;
    str_user_data = PyUnicode_InternFromString("user_data");
    str_columns = PyUnicode_InternFromString("columns");
    if (str_user_data == NULL || str_columns == NULL)
        return NULL;
    if ((m = PyModule_Create(&ideal_ring_module)) == NULL)
        return NULL;
    Py_INCREF(&Ring_Type);
    if (PyModule_AddObject(m, "IoUring", (PyObject *)&Ring_Type) < 0 ||
        PyModule_AddIntConstant(m, "IORING_SETUP_SQPOLL", 2) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
