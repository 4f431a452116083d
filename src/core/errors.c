/* errors.c: the state checks every method makes, and OSError raising with
 * messages that say what went wrong in plain words. */
#include "ops/opdef.h"

#include <errno.h>
#include <string.h>
#include <time.h>

/* Why the ring may not be used (the inline pu_ring_check*() found it so):
 * set the exception and return -1.  side: 0 the ring, 's' its submission
 * side (liburing assumes one user at a time), 'c' its completion side
 * (one waiter or reaper at a time). */
int
pu_ring_check_fail(RingObject *r, int side)
{
    if (!r->initialised) {
        PyErr_SetString(PyExc_ValueError,
                        "IoUring is not initialised (call queue_init()) or "
                        "was closed by queue_exit()");
        return -1;
    }
    if (r->fork_generation != pu_fork_generation) {
        PyErr_SetString(PyExc_RuntimeError,
                        "this IoUring belongs to the parent process: a ring "
                        "cannot be used after fork(); create a new IoUring "
                        "in the child");
        return -1;
    }
    if (r->closing & PU_CLOSING_DEFERRED) {
        PyErr_SetString(PyExc_ValueError,
                        "IoUring was closed by queue_exit() (its teardown "
                        "runs when the call in progress returns)");
        return -1;
    }
    if (r->closing) {
        PyErr_SetString(PyExc_ValueError, "IoUring is being closed");
        return -1;
    }
    if (side == 'c' && r->owner != NULL && r->cq_owner == 0) {
        PyErr_SetString(PyExc_RuntimeError,
                        "this IoUring is driven by an AsyncRing, which reaps "
                        "its completions: use the AsyncRing's awaitables");
        return -1;
    }
    if ((side == 's' && r->sq_owner) || (side == 'c' && r->cq_owner)) {
        uint64_t owner = side == 's' ? r->sq_owner : r->cq_owner;
        const char *what = side == 's' ? "submitting on" : "waiting on or reaping from";
        if (owner == pu_side_holder())
            PyErr_Format(PyExc_RuntimeError,
                         "this thread is already %s this IoUring: a call "
                         "from a finalizer or signal handler that ran inside "
                         "that call cannot use the same side of the ring",
                         what);
        else
            PyErr_Format(PyExc_RuntimeError,
                         "another thread is %s this IoUring (one thread at "
                         "a time per side: one may submit while another "
                         "waits)", what);
        return -1;
    }
    if (r->fd_closed && r->reg_thread != pu_thread_token()) {
        PyErr_Format(PyExc_RuntimeError,
                     "the ring's fd was closed (close_ring_fd()): only the "
                     "thread that registered it (register_ring_fd()) can reach "
                     "the ring, by its registered index %d", r->reg_index);
        return -1;
    }
    return 0;
}

/* The instance is made here, as PyErr_SetFromErrno() does, so that OSError
 * picks its subclass now: `except FileNotFoundError` must match at once. */
static PyObject *
raise_oserror(int err, const char *message)
{
    /* OSError maps ETIMEDOUT to TimeoutError but not ETIME, which is how
     * io_uring says a timeout expired */
    PyObject *type = err == ETIME ? PyExc_TimeoutError : PyExc_OSError;
    PyObject *exc = PyObject_CallFunction(type, "is", err, message);
    if (exc != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
    return NULL;
}

/* OSError, or the subclass that matches err (FileNotFoundError, ...). */
PyObject *
pu_err_errno(int err)
{
    return raise_oserror(err, strerror(err));
}

/* OSError for err with a message that says more than strerror() would. */
PyObject *
pu_err_errno_msg(int err, const char *message)
{
    return raise_oserror(err, message);
}

/* The OSError of a failed completion of rec: with the filenames of its path
 * arguments, as os.open() and os.rename() give them
 * (FileNotFoundError(2, 'No such file or directory', '/nope/x')). */
PyObject *
pu_err_errno_rec(const SqeObject *rec, int err)
{
    PyObject *type, *exc, *p = rec != NULL ? rec->paths : NULL;
    if (p == NULL)
        return pu_err_errno(err);
    type = err == ETIME ? PyExc_TimeoutError : PyExc_OSError;
    /* OSError(errno, strerror, filename, winerror, filename2) */
    if (PyTuple_GET_SIZE(p) == 2)
        exc = PyObject_CallFunction(type, "isOOO", err, strerror(err),
                                    PyTuple_GET_ITEM(p, 0), Py_None,
                                    PyTuple_GET_ITEM(p, 1));
    else
        exc = PyObject_CallFunction(type, "isO", err, strerror(err),
                                    PyTuple_GET_ITEM(p, 0));
    if (exc != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
    return NULL;
}

/* The same exception as an object, for a future's set_exception(). */
PyObject *
pu_oserror_new(int err)
{
    PyObject *type = err == ETIME ? PyExc_TimeoutError : PyExc_OSError;
    return PyObject_CallFunction(type, "is", err, strerror(err));
}

/* io_uring_setup(2) failing is often about the system, not the call. */
PyObject *
pu_err_setup(int err)
{
    const char *why;
    switch (err) {
    case EPERM:
        why = "io_uring is not allowed here: io_uring_setup() was refused "
              "(check the sysctl kernel.io_uring_disabled, 0 allows it, 1 "
              "limits it to kernel.io_uring_group; and a container's seccomp "
              "profile, such as Docker's default or Kubernetes' "
              "RuntimeDefault, which deny io_uring_setup)";
        break;
    case ENOSYS:
        why = "io_uring is not available: this kernel has no io_uring_setup() "
              "(Linux 5.1 or newer built with CONFIG_IO_URING is needed; a "
              "seccomp filter may also hide it)";
        break;
    case ENOMEM:
        why = "io_uring_setup() ran out of memory (on kernels before 5.12 "
              "rings count against RLIMIT_MEMLOCK: see ulimit -l)";
        break;
    case EINVAL:
        why = "io_uring_setup() rejected the parameters (entries must be "
              "1..32768; some flags need a newer kernel or other flags)";
        break;
    default:
        why = strerror(err);
    }
    return raise_oserror(err, why);
}

PyObject *
pu_err_unsupported(const pu_opdef *op)
{
    char msg[160];
    PyOS_snprintf(msg, sizeof(msg), "prep_%s(): this kernel does not support "
                  "%s (IoUring.probe() lists what it does)", op->name,
                  op->opcode_name);
    return raise_oserror(EOPNOTSUPP, msg);
}

double
pu_monotonic(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int
pu_err_entry_lost(SqeObject *rec, const char *fname)
{
    if (!PU_RING_USABLE(rec->ring))
        PyErr_Format(PyExc_RuntimeError, "%s(): the ring was closed while "
                     "the arguments were converted", fname);
    else
        PyErr_Format(PyExc_RuntimeError, "%s(): the entry was submitted or "
                     "prepared again while the arguments were converted (by "
                     "code a converter ran); nothing was written to it", fname);
    return -1;
}
