/* cqe.c: the Cqe type: a completion copied out of the kernel's CQ, so it
 * stays valid after cqe_seen(). */
#include "ops/opdef.h"
#include "methods_doc.h"

/* The completion of a tagged file or buffer (register/tags.c): no record,
 * the user's tag in `result` */
static inline int
pu_cqe_is_tag(const CqeObject *q)
{
    return q->sqe == NULL && q->result != NULL && PU_UD_IS_RSRC(q->user_data);
}

static int
Cqe_traverse(CqeObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->sqe);
    Py_VISIT(self->result);
    return 0;
}

static int
Cqe_clear(CqeObject *self)
{
    Py_CLEAR(self->sqe);
    Py_CLEAR(self->result);
    return 0;
}

static void
Cqe_dealloc(CqeObject *self)
{
    PyObject_GC_UnTrack(self);
    Cqe_clear(self);
    pu_cqe_free(self);
}

static PyObject *
Cqe_res(CqeObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromLong(self->res);
}

static PyObject *
Cqe_flags(CqeObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromUnsignedLong(self->flags);
}

static PyObject *
Cqe_user_data(CqeObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromUnsignedLongLong(self->user_data);
}

static PyObject *
Cqe_buf_count(CqeObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromUnsignedLong(self->nbufs);
}

static PyObject *
Cqe_big_cqe(CqeObject *self, PyObject *Py_UNUSED(ignored))
{
    if (!self->has_big)
        Py_RETURN_NONE;
    return Py_BuildValue("(KK)", (unsigned long long)self->big[0],
                         (unsigned long long)self->big[1]);
}

static PyObject *
Cqe_get_data(CqeObject *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *d;

    if (pu_cqe_is_tag(self)) {
        d = self->result;   /* the tag of a file or buffer let go of */
        Py_INCREF(d);
        return d;
    }
    if (self->sqe != NULL)
        return pu_rec_data(self->sqe);
    Py_RETURN_NONE;
}

static PyObject *
Cqe_getresult(CqeObject *self, PyObject *Py_UNUSED(ignored))
{
    return pu_cqe_result(self);
}

PyObject *
pu_cqe_result(CqeObject *self)
{
    if (self->res < 0)
        return pu_err_errno_rec(self->sqe, -self->res);
    return pu_cqe_value(self);
}

/* getresult()'s value, with a failure as its negative errno (an int) */
PyObject *
pu_cqe_value(CqeObject *self)
{
    if (self->res < 0)
        return PyLong_FromLong(self->res);
    /* a result maker first: it may read the bytes (recvmsg_multishot's
     * provided buffer is a header, an address, control data, a payload) */
    if (self->sqe != NULL && self->sqe->op != NULL && self->sqe->op->result != NULL)
        return self->sqe->op->result(self);
    if (self->result != NULL && !pu_cqe_is_tag(self)) {
        Py_INCREF(self->result);
        return self->result;
    }
    return pu_long(self->res);
}

/* reap()'s item, (user_data, value, flags), as three new references; -1
 * with none made on failure.  A completion no record of ours made (a
 * msg_ring message) carries its raw 64-bit user_data. */
int
pu_cqe_parts(CqeObject *q, PyObject **d, PyObject **v, PyObject **f)
{
    if (q->sqe != NULL) {
        *d = pu_rec_data(q->sqe);
    } else if (pu_cqe_is_tag(q)) {
        *d = q->result;
        Py_INCREF(*d);
    } else {
        *d = PyLong_FromUnsignedLongLong(q->user_data);
    }
    *v = pu_cqe_value(q);
    *f = q->flags < PU_SMALL_INTS ? pu_long((long)q->flags)
                                  : PyLong_FromUnsignedLong(q->flags);
    if (*d == NULL || *v == NULL || *f == NULL) {
        Py_CLEAR(*d);
        Py_CLEAR(*v);
        Py_CLEAR(*f);
        return -1;
    }
    return 0;
}

static PyObject *
Cqe_convert_address(CqeObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->sqe == NULL)
        Py_RETURN_NONE;
    return pu_sqe_peer(self->sqe);
}

static PyObject *
Cqe_repr(CqeObject *self)
{
    return PyUnicode_FromFormat("<py_io_uring.Cqe %s res=%d flags=0x%x>",
                                (self->sqe && self->sqe->op)
                                    ? self->sqe->op->name
                                    : pu_cqe_is_tag(self) ? "tag" : "nop",
                                (int)self->res, (unsigned)self->flags);
}

static PyMethodDef Cqe_methods[] = {
    {"res", (PyCFunction)Cqe_res, METH_NOARGS, PU_DOC_Cqe_res},
    {"flags", (PyCFunction)Cqe_flags, METH_NOARGS, PU_DOC_Cqe_flags},
    {"get_data", (PyCFunction)Cqe_get_data, METH_NOARGS, PU_DOC_Cqe_get_data},
    {"user_data", (PyCFunction)Cqe_user_data, METH_NOARGS, PU_DOC_Cqe_user_data},
    {"big_cqe", (PyCFunction)Cqe_big_cqe, METH_NOARGS, PU_DOC_Cqe_big_cqe},
    {"buf_count", (PyCFunction)Cqe_buf_count, METH_NOARGS, PU_DOC_Cqe_buf_count},
    {"getresult", (PyCFunction)Cqe_getresult, METH_NOARGS,
     PU_DOC_Cqe_getresult},
    {"convert_address", (PyCFunction)Cqe_convert_address, METH_NOARGS,
     PU_DOC_Cqe_convert_address},
    {NULL, NULL, 0, NULL},
};

PyTypeObject pu_CqeType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "py_io_uring.Cqe",
    .tp_basicsize = sizeof(CqeObject),
    .tp_dealloc = (destructor)Cqe_dealloc,
    .tp_repr = (reprfunc)Cqe_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = PU_DOC_Cqe,
    .tp_traverse = (traverseproc)Cqe_traverse,
    .tp_clear = (inquiry)Cqe_clear,
    .tp_methods = Cqe_methods,
};
