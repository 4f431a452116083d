/* module.c: py_io_uring._core, the extension behind the py_io_uring package
 * (src/py_io_uring/): its types, exception and constants. */
#include "ops/opdef.h"
#include "async/async.h"
#include "version.h"

#include <pthread.h>

PyObject *pu_SubmissionQueueFull;

/* Bumped in a child after fork(): a ring made in another generation is
 * the parent's, whose mappings the child must not touch. */
volatile unsigned pu_fork_generation;

static void
after_fork_child(void)
{
    pu_fork_generation++;
}

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT,
    .m_name = "py_io_uring._core",
    .m_doc = "Linux io_uring for Python, over liburing: queue many I/O operations,\n"
             "reap their completions with few system calls, and never let the\n"
             "kernel touch memory that Python has freed.",
    .m_size = -1,
    .m_methods = pu_module_methods,
};

static int
add_type(PyObject *m, const char *name, PyTypeObject *t)
{
    Py_INCREF(t);
    if (PyModule_AddObject(m, name, (PyObject *)t) < 0) {
        Py_DECREF(t);
        return -1;
    }
    return 0;
}

PyMODINIT_FUNC
PyInit__core(void)
{
    static int atfork_done;
    PyObject *m;

    if (pu_common_args_init() < 0 || pu_small_ints_init() < 0)
        return NULL;
    if (pu_RingType.tp_methods == NULL && pu_ring_type_init() < 0)
        return NULL;
    if (PyType_Ready(&pu_CqeType) < 0)
        return NULL;
    if (pu_SqeType.tp_methods == NULL && pu_sqe_type_init() < 0)
        return NULL;
    if (pu_AsyncRingType.tp_methods == NULL && pu_async_type_init() < 0)
        return NULL;
    if (pu_loop_core_init() < 0)
        return NULL;
    if (!atfork_done) {
        if (pthread_atfork(NULL, NULL, after_fork_child) != 0)
            return PyErr_NoMemory();
        atfork_done = 1;
    }
    m = PyModule_Create(&moduledef);
    if (m == NULL)
        return NULL;
    if (pu_add_info(m) < 0)
        goto fail;
    if (pu_SubmissionQueueFull == NULL) {
        pu_SubmissionQueueFull = PyErr_NewExceptionWithDoc(
            "py_io_uring.SubmissionQueueFull",
            "get_sqe() found the submission queue full: submit() and retry.",
            PyExc_RuntimeError, NULL);
        if (pu_SubmissionQueueFull == NULL)
            goto fail;
    }
    Py_INCREF(pu_SubmissionQueueFull);
    if (PyModule_AddObject(m, "SubmissionQueueFull", pu_SubmissionQueueFull) < 0) {
        Py_DECREF(pu_SubmissionQueueFull);
        goto fail;
    }
    if (add_type(m, "IoUring", &pu_RingType) < 0 ||
        add_type(m, "Sqe", &pu_SqeType) < 0 ||
        add_type(m, "Cqe", &pu_CqeType) < 0 ||
        add_type(m, "AsyncRing", &pu_AsyncRingType) < 0 ||
        add_type(m, "AsyncChain", &pu_AsyncChainType) < 0 ||
        add_type(m, "_UringStream", pu_aio_stream_type) < 0 ||
        add_type(m, "_LoopCore", &pu_LoopCoreType) < 0 ||
        pu_add_generated_constants(m) < 0 ||
        PyModule_AddStringConstant(m, "__version__", PU_VERSION) < 0 ||
        PyModule_AddFunctions(m, pu_bulk_methods) < 0)
        goto fail;
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
