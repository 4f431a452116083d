/* memsize.c: the module-level functions memory_size() and mlock_size():
 * how much memory a ring of these entries and flags needs
 * (io_uring_memory_size(), liburing 2.11+, computed as upstream does
 * before it) and how much of it counts against RLIMIT_MEMLOCK
 * (io_uring_mlock_size(): 0 on kernels that account rings to the cgroup,
 * 5.12+). */
#include "ops/opdef.h"
#include "ops/liburing_compat.h"
#include "methods_doc.h"

static const char *const size_kw[] = {"entries", "flags", "cq_entries", NULL};
static const pu_argspec memory_spec = {"memory_size", size_kw, 1, 3, 0};
static const pu_argspec mlock_spec = {"mlock_size", size_kw, 1, 2, 0};

/* entries, flags, cq_entries (0: not given) */
static int
size_args(const pu_argspec *sp, PyObject *const *args, Py_ssize_t nargs,
          PyObject *kwnames, struct io_uring_params *p, unsigned *entries)
{
    PyObject *argv[3] = {NULL, NULL, NULL};

    memset(p, 0, sizeof(*p));
    if (pu_parse_args(sp, args, nargs, kwnames, argv) < 0 ||
        pu_conv_u32(sp, 0, argv[0], entries) < 0 ||
        (argv[1] != NULL && pu_conv_u32(sp, 1, argv[1], &p->flags) < 0) ||
        (sp->nmax > 2 && argv[2] != NULL && pu_conv_u32(sp, 2, argv[2], &p->cq_entries) < 0))
        return -1;
    if (p->cq_entries != 0)
        p->flags |= IORING_SETUP_CQSIZE;
    return 0;
}

static PyObject *
size_result(ssize_t ret)
{
    if (ret < 0)
        return pu_err_errno((int)-ret);
    return PyLong_FromSsize_t(ret);
}

static PyObject *
memory_size(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs,
            PyObject *kwnames)
{
    struct io_uring_params p;
    unsigned entries;

    if (size_args(&memory_spec, args, nargs, kwnames, &p, &entries) < 0)
        return NULL;
    return size_result(io_uring_memory_size_params(entries, &p));
}

static PyObject *
mlock_size(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs,
           PyObject *kwnames)
{
    struct io_uring_params p;
    unsigned entries;
    ssize_t ret;

    if (size_args(&mlock_spec, args, nargs, kwnames, &p, &entries) < 0)
        return NULL;
    /* sets up (and closes) a small ring to read the kernel's features */
    Py_BEGIN_ALLOW_THREADS
    ret = io_uring_mlock_size_params(entries, &p);
    Py_END_ALLOW_THREADS
    return size_result(ret);
}

PyMethodDef pu_module_methods[] = {
    {"memory_size", (PyCFunction)(void (*)(void))memory_size,
     METH_FASTCALL | METH_KEYWORDS, PU_DOC_module_memory_size},
    {"mlock_size", (PyCFunction)(void (*)(void))mlock_size,
     METH_FASTCALL | METH_KEYWORDS, PU_DOC_module_mlock_size},
    {NULL, NULL, 0, NULL},
};
