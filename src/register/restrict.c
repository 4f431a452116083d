/* restrict.c: rings set up disabled (IORING_SETUP_R_DISABLED), their
 * restrictions, and enabling them: what a sandboxed ring is allowed to do
 * is fixed before it runs anything (io_uring_register_restrictions(3)). */
#include "register/register.h"
#include "methods_doc.h"

#include <errno.h>

#define PU_MAX_RESTRICTIONS 256

/* liburing 2.3 declares io_uring_register_restrictions() and
 * io_uring_enable_rings() but its library does not export them: the
 * registrations go through io_uring_register(), which every liburing from
 * 2.3 on exports, as those helpers do. */
static int
register_op(RingObject *r, unsigned op, const void *arg, unsigned nr)
{
    unsigned fd = pu_register_fd(r, &op);   /* (the index after close_ring_fd()) */
    return io_uring_register(fd, op, arg, nr);
}

/* register_restrictions([(IORING_RESTRICTION_*, value), ...]) */
static PyObject *
Ring_register_restrictions(RingObject *self, PyObject *arg)
{
    /* a tuple copy: converting the items runs __index__ */
    PyObject *seq = PySequence_Tuple(arg);
    struct io_uring_restriction *res = NULL;
    Py_ssize_t n, k;
    int ret;

    if (seq == NULL) {
        if (PyErr_ExceptionMatches(PyExc_TypeError))
            PyErr_Format(PyExc_TypeError, "register_restrictions() takes a sequence of "
                         "(IORING_RESTRICTION_*, value) tuples, not %.100s",
                         Py_TYPE(arg)->tp_name);
        return NULL;
    }
    n = PyTuple_GET_SIZE(seq);
    if (n < 1 || n > PU_MAX_RESTRICTIONS) {
        PyErr_Format(PyExc_ValueError, "register_restrictions() takes 1 to %d "
                     "restrictions, not %zd", PU_MAX_RESTRICTIONS, n);
        goto fail;
    }
    res = PyMem_Calloc((size_t)n, sizeof(*res));
    if (res == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    for (k = 0; k < n; k++) {
        PyObject *item = PyTuple_GET_ITEM(seq, k);
        unsigned long kind, value;
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2 ||
            !PyLong_Check(PyTuple_GET_ITEM(item, 0)) || !PyLong_Check(PyTuple_GET_ITEM(item, 1))) {
            PyErr_Format(PyExc_TypeError, "register_restrictions() item %zd must be "
                         "an (IORING_RESTRICTION_*, value) tuple of ints, not %R", k,
                         item);
            goto fail;
        }
        if (pu_small_uint(PyTuple_GET_ITEM(item, 0), IORING_RESTRICTION_LAST - 1,
                          "an IORING_RESTRICTION_* kind", &kind) < 0 ||
            pu_small_uint(PyTuple_GET_ITEM(item, 1), UINT8_MAX,
                          "a restriction's value (an opcode or IOSQE_* flags)", &value) < 0)
            goto fail;
        res[k].opcode = (__u16)kind;
        /* register_op, sqe_op and sqe_flags share the byte */
        res[k].sqe_op = (__u8)value;
    }
    if (pu_ring_check(self) < 0)
        goto fail;
    ret = register_op(self, IORING_REGISTER_RESTRICTIONS, res, (unsigned)n);
    PyMem_Free(res);
    Py_DECREF(seq);
    if (ret < 0) {
        if (ret == -EBUSY)
            return pu_err_errno_msg(-ret, "register_restrictions(): restrictions are "
                                    "registered once, and this ring has them");
        if (ret == -EBADFD)
            return pu_err_errno_msg(-ret, "register_restrictions(): the ring must be "
                                    "set up with IORING_SETUP_R_DISABLED and not yet "
                                    "enabled (restrictions can be registered once)");
        return pu_err_errno(-ret);
    }
    Py_RETURN_NONE;
fail:
    PyMem_Free(res);
    Py_DECREF(seq);
    return NULL;
}

/* Enable a ring set up disabled; a SINGLE_ISSUER one takes this thread
 * as its issuer (the kernel's submitter_task).  0, or -errno. */
int
pu_ring_enable(RingObject *r)
{
    int ret = register_op(r, IORING_REGISTER_ENABLE_RINGS, NULL, 0);

    if (ret < 0)
        return ret;
    r->disabled = 0;
    if (r->setup_flags & IORING_SETUP_SINGLE_ISSUER)
        r->issuer = pu_thread_token();
    return 0;
}

static PyObject *
Ring_enable_rings(RingObject *self, PyObject *Py_UNUSED(ignored))
{
    int ret;

    if (pu_ring_check(self) < 0)
        return NULL;
    ret = pu_ring_enable(self);
    if (ret < 0) {
        if (ret == -EBADFD)
            return pu_err_errno_msg(-ret, "enable_rings(): the ring is not disabled "
                                    "(set up without IORING_SETUP_R_DISABLED, or "
                                    "enabled already)");
        return pu_err_errno(-ret);
    }
    Py_RETURN_NONE;
}

PyMethodDef pu_restrict_methods[] = {
    {"register_restrictions", (PyCFunction)Ring_register_restrictions, METH_O,
     PU_DOC_IoUring_register_restrictions},
    {"enable_rings", (PyCFunction)Ring_enable_rings, METH_NOARGS,
     PU_DOC_IoUring_enable_rings},
    {NULL, NULL, 0, NULL},
};
