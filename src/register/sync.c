/* sync.c: the synchronous forms of two operations, run by
 * io_uring_register() instead of an SQE: register_sync_cancel()
 * (IORING_REGISTER_SYNC_CANCEL, Linux 6.0: cancel and wait for the
 * cancellation) and register_sync_msg() (IORING_REGISTER_SEND_MSG_RING,
 * Linux 6.13: a msg_ring without a source ring).  The structs go to the
 * kernel for the call only. */
#include "register/register.h"
#include "methods_doc.h"

#include <errno.h>
#include <math.h>

#ifndef IORING_ASYNC_CANCEL_OP
#define IORING_ASYNC_CANCEL_OP (1U << 5)
#endif

/* the kernel's struct io_uring_sync_cancel_reg (liburing 2.3 has it; spelt
 * out so the module does not depend on which headers) */
struct pu_sync_cancel {
    __u64 addr;
    __s32 fd;
    __u32 flags;
    struct __kernel_timespec timeout;
    __u8 opcode;
    __u8 pad[7];
    __u64 pad2[3];
};

#define PU_REGISTER_SYNC_CANCEL 24
#define PU_REGISTER_SEND_MSG_RING 31

static const char *const cancel_kw[] = {"target", "flags", "fd", "opcode",
                                        "timeout", NULL};
static const pu_argspec cancel_spec = {"register_sync_cancel", cancel_kw, 0, 5, 3};

/* register_sync_cancel(target=None, flags=0, *, fd=None, opcode=None,
 * timeout=None): io_uring_register_sync_cancel().  target is an Sqe or
 * the user_data of an operation in flight (the `target` kind's lookup);
 * fd adds IORING_ASYNC_CANCEL_FD, opcode IORING_ASYNC_CANCEL_OP.  The
 * kernel waits (the GIL released) until the cancelled operations are done
 * or the timeout passes; their completions are reaped as usual. */
static PyObject *
Ring_register_sync_cancel(RingObject *self, PyObject *const *args, Py_ssize_t nargs,
                          PyObject *kwnames)
{
    PyObject *argv[5];
    struct pu_sync_cancel reg;
    unsigned op = PU_REGISTER_SYNC_CANCEL, fd;
    double t;
    int ret;

    memset(&reg, 0, sizeof(reg));
    reg.fd = -1;
    reg.timeout.tv_sec = reg.timeout.tv_nsec = -1;
    if (pu_parse_args(&cancel_spec, args, nargs, kwnames, argv) < 0)
        return NULL;
    if (argv[1] != NULL && pu_conv_u32(&cancel_spec, 1, argv[1], &reg.flags) < 0)
        return NULL;
    if (argv[2] != NULL && argv[2] != Py_None) {
        if (pu_conv_fd(&cancel_spec, 2, argv[2], &reg.fd) < 0)
            return NULL;
        reg.flags |= IORING_ASYNC_CANCEL_FD;
    }
    if (argv[3] != NULL && argv[3] != Py_None) {
        unsigned long opcode;
        if (pu_small_uint(argv[3], UINT8_MAX, "opcode (an IORING_OP_* number)",
                          &opcode) < 0)
            return NULL;
        reg.opcode = (__u8)opcode;
        reg.flags |= IORING_ASYNC_CANCEL_OP;
    }
    if (argv[4] != NULL && argv[4] != Py_None) {
        t = PyFloat_AsDouble(argv[4]);
        if (t == -1.0 && PyErr_Occurred())
            return NULL;
        if (!(t >= 0.0) || t > 9.2e18) {
            PyErr_SetString(PyExc_ValueError, "register_sync_cancel(): timeout "
                            "must be a finite number of seconds >= 0 or None");
            return NULL;
        }
        reg.timeout.tv_sec = (long long)t;
        reg.timeout.tv_nsec = (long long)((t - floor(t)) * 1e9);
    }
    /* the lookup last: it reads the slot table, which the conversions
     * above (Python code) may change */
    if (pu_ring_check(self) < 0)
        return NULL;
    if (argv[0] != NULL && argv[0] != Py_None &&
        pu_ring_target(&cancel_spec, 0, self, argv[0], &reg.addr) < 0)
        return NULL;
    if ((argv[0] == NULL || argv[0] == Py_None) &&
        !(reg.flags & (IORING_ASYNC_CANCEL_FD | IORING_ASYNC_CANCEL_ANY |
                       IORING_ASYNC_CANCEL_OP))) {
        PyErr_SetString(PyExc_TypeError, "register_sync_cancel(): name what to "
                        "cancel: a target, an fd, an opcode, or "
                        "IORING_ASYNC_CANCEL_ANY in flags");
        return NULL;
    }
    fd = pu_register_fd(self, &op);
    /* a queue_exit() meanwhile (another thread, a handler) waits for this
     * call to return */
    pu_call_enter(self);
    do {
        Py_BEGIN_ALLOW_THREADS
        ret = io_uring_register(fd, op, &reg, 1);
        Py_END_ALLOW_THREADS
    } while (ret == -EINTR && PyErr_CheckSignals() == 0);
    if (ret == -EINTR)
        return pu_call_return(self, NULL);
    if (ret < 0) {
        if (ret == -ENOENT)
            pu_err_errno_msg(ENOENT, "register_sync_cancel(): no operation in "
                             "flight matched");
        else if (ret == -ETIME)
            pu_err_errno_msg(ETIME, "register_sync_cancel(): the cancelled "
                             "operations were not done within the timeout");
        else
            pu_err_errno(-ret);
        return pu_call_return(self, NULL);
    }
    return pu_call_return(self, PyLong_FromLong(ret));
}

static const char *const msg_kw[] = {"fd", "len", "data", "flags", NULL};
static const pu_argspec msg_spec = {"register_sync_msg", msg_kw, 3, 4, 0};

/* register_sync_msg(fd, len, data, flags=0): io_uring_register_sync_msg():
 * post a completion (res len, user_data data) to the ring whose fd is fd,
 * as prep_msg_ring() does, but from no ring: this ring is not involved
 * (it need not be set up). */
static PyObject *
Ring_register_sync_msg(RingObject *self, PyObject *const *args, Py_ssize_t nargs,
                       PyObject *kwnames)
{
    PyObject *argv[4];
    struct io_uring_sqe sqe;
    unsigned len = 0, flags = 0;
    __u64 data;
    int fd, ret;

    (void)self;
    if (pu_parse_args(&msg_spec, args, nargs, kwnames, argv) < 0 ||
        pu_conv_fd(&msg_spec, 0, argv[0], &fd) < 0 ||
        pu_conv_u32(&msg_spec, 1, argv[1], &len) < 0 ||
        pu_conv_msg_data(&msg_spec, 2, argv[2], &data) < 0 ||
        (argv[3] != NULL && pu_conv_u32(&msg_spec, 3, argv[3], &flags) < 0))
        return NULL;
    if (len > INT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "register_sync_msg(): len is the "
                        "completion's res: at most 2**31-1");
        return NULL;
    }
    if (flags & ~(unsigned)(1U << 1)) {
        PyErr_Format(PyExc_ValueError, "register_sync_msg(): flags 0x%x: only "
                     "IORING_MSG_RING_FLAGS_PASS (0x%x) may be given", flags,
                     (1U << 1));
        return NULL;
    }
    /* what io_uring_prep_msg_ring() writes, from a zeroed entry */
    memset(&sqe, 0, sizeof(sqe));
    sqe.opcode = IORING_OP_MSG_RING;
    sqe.fd = fd;
    sqe.addr = 0;                   /* IORING_MSG_DATA */
    sqe.len = len;
    sqe.off = data;
    sqe.msg_ring_flags = flags;
    ret = io_uring_register((unsigned)-1, PU_REGISTER_SEND_MSG_RING, &sqe, 1);
    if (ret < 0) {
        if (ret == -EBADFD || ret == -EBADF)
            return pu_err_errno_msg(-ret, "register_sync_msg(): fd is not an "
                                    "io_uring ring");
        return pu_err_errno(-ret);
    }
    Py_RETURN_NONE;
}

PyMethodDef pu_sync_methods[] = {
    {"register_sync_cancel", (PyCFunction)(void (*)(void))Ring_register_sync_cancel,
     METH_FASTCALL | METH_KEYWORDS, PU_DOC_IoUring_register_sync_cancel},
    {"register_sync_msg", (PyCFunction)(void (*)(void))Ring_register_sync_msg,
     METH_FASTCALL | METH_KEYWORDS, PU_DOC_IoUring_register_sync_msg},
    {NULL, NULL, 0, NULL},
};
