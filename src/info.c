/* info.c: what the module was built from, for `python -m py_io_uring` and
 * for programs that adapt to the machine: the liburing headers' version and
 * the table of operations (the kernel's support is IoUring.probe()). */
#include "ops/opdef.h"

/* LIBURING_VERSION: (major, minor) from the headers, or None: liburing
 * defines IO_URING_VERSION_* only from 2.4 on, so None means 2.3 or older. */
static PyObject *
liburing_version(void)
{
#if defined(IO_URING_VERSION_MAJOR) && defined(IO_URING_VERSION_MINOR)
    return Py_BuildValue("(ii)", IO_URING_VERSION_MAJOR, IO_URING_VERSION_MINOR);
#else
    Py_RETURN_NONE;
#endif
}

/* LIBURING_STATIC: the version of the liburing linked into the extension
 * (a binary wheel: setup.py with PY_IO_URING_STATIC_LIBURING), or None when
 * liburing is a shared library loaded beside it. */
static PyObject *
liburing_static(void)
{
#ifdef PU_LIBURING_STATIC
    return PyUnicode_FromString(PU_LIBURING_STATIC);
#else
    Py_RETURN_NONE;
#endif
}

/* OPERATIONS: one (name, opcode name, opcode, Linux version) per prep_*
 * method, in ops.def order. */
static PyObject *
operations(void)
{
    PyObject *t = PyTuple_New(pu_nopdefs);

    for (int i = 0; t != NULL && i < pu_nopdefs; i++) {
        PyObject *rec = Py_BuildValue("(ssis)", pu_opdefs[i].name,
                                      pu_opdefs[i].opcode_name,
                                      pu_opdefs[i].opcode, pu_op_kernels[i]);
        if (rec == NULL)
            Py_CLEAR(t);
        else
            PyTuple_SET_ITEM(t, i, rec);
    }
    return t;
}

/* _ASYNC_OPS: one (name, mode, fds, peer) per op AsyncRing has a form of,
 * in ops.def order: mode "await" or "iter", and whether the result holds
 * new fds / a peer address (ops.def `async`).  py_io_uring.trio builds
 * TrioRing's operations from it, so they are AsyncRing's without a second
 * list to keep in step. */
static PyObject *
async_ops(void)
{
    PyObject *l = PyList_New(0), *t;

    for (int i = 0; l != NULL && i < pu_nopdefs; i++) {
        const pu_opdef *op = &pu_opdefs[i];
        if (op->async_mode == PU_ASYNC_NONE)
            continue;
        t = Py_BuildValue("(ssNN)", op->name,
                          op->async_mode == PU_ASYNC_ITER ? "iter" : "await",
                          PyBool_FromLong(op->async_flags & PU_ASYNC_FD),
                          PyBool_FromLong(op->async_flags & PU_ASYNC_PEER));
        if (t == NULL || PyList_Append(l, t) < 0)
            Py_CLEAR(l);
        Py_XDECREF(t);
    }
    if (l != NULL)
        Py_SETREF(l, PyList_AsTuple(l));
    return l;
}

static int
add(PyObject *m, const char *name, PyObject *o)
{
    if (o == NULL || PyModule_AddObject(m, name, o) < 0) {
        Py_XDECREF(o);
        return -1;
    }
    return 0;
}

int
pu_add_info(PyObject *m)
{
    if (add(m, "LIBURING_VERSION", liburing_version()) < 0 ||
        add(m, "LIBURING_STATIC", liburing_static()) < 0 ||
        add(m, "OPERATIONS", operations()) < 0 ||
        add(m, "_ASYNC_OPS", async_ops()) < 0)
        return -1;
    return 0;
}
