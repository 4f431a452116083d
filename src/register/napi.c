/* napi.c: how the ring's waits spend their time: NAPI busy polling
 * (register_napi(), unregister_napi(): IORING_REGISTER_NAPI, Linux 6.9)
 * and the clock their timeouts run on (register_clock():
 * IORING_REGISTER_CLOCK, Linux 6.12).  Nothing here is memory the kernel
 * keeps: each call passes a struct the kernel copies at once. */
#include "register/register.h"
#include "methods_doc.h"

#include <errno.h>
#include <time.h>

/* the kernel's struct io_uring_napi and struct io_uring_clock_register
 * (include/uapi/linux/io_uring.h; liburing 2.3's headers have neither),
 * with their register opcodes */
struct pu_napi {
    __u32 busy_poll_to;             /* microseconds */
    __u8 prefer_busy_poll;
    __u8 opcode;                    /* 0: IO_URING_NAPI_REGISTER_OP */
    __u8 pad[2];
    __u32 op_param;                 /* 0: IO_URING_NAPI_TRACKING_DYNAMIC */
    __u32 resv;
};

struct pu_clock_register {
    __u32 clockid;
    __u32 resv[3];
};

#define PU_REGISTER_NAPI 27
#define PU_UNREGISTER_NAPI 28
#define PU_REGISTER_CLOCK 29

static int
register_op(RingObject *r, unsigned op, void *arg, unsigned nr)
{
    unsigned fd = pu_register_fd(r, &op);   /* (the index after close_ring_fd()) */
    return io_uring_register(fd, op, arg, nr);
}

static PyObject *
napi_settings(const struct pu_napi *n)
{
    return Py_BuildValue("(kO)", (unsigned long)n->busy_poll_to,
                         n->prefer_busy_poll ? Py_True : Py_False);
}

static PyObject *
napi_error(const char *fname, int err)
{
    char msg[200];
    if (err == EINVAL || err == EOPNOTSUPP) {
        PyOS_snprintf(msg, sizeof(msg), "%s(): this kernel has no NAPI busy "
                      "polling for io_uring (Linux 6.9, CONFIG_NET_RX_BUSY_POLL)",
                      fname);
        return pu_err_errno_msg(err, msg);
    }
    return pu_err_errno(err);
}

/* register_napi(busy_poll_to, prefer_busy_poll=False): io_uring_register_napi();
 * returns the settings before, as the kernel copies them back */
static PyObject *
Ring_register_napi(RingObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    struct pu_napi n;
    unsigned long to;
    int prefer = 0, ret;

    if (nargs < 1 || nargs > 2) {
        PyErr_Format(PyExc_TypeError, "register_napi() takes 1 or 2 arguments "
                     "(busy_poll_to, prefer_busy_poll), %zd given", nargs);
        return NULL;
    }
    if (pu_small_uint(args[0], UINT32_MAX, "busy_poll_to (microseconds)", &to) < 0 ||
        (nargs > 1 && (prefer = PyObject_IsTrue(args[1])) < 0) ||
        pu_ring_check(self) < 0)
        return NULL;
    memset(&n, 0, sizeof(n));
    n.busy_poll_to = (__u32)to;
    n.prefer_busy_poll = (__u8)(prefer != 0);
    ret = register_op(self, PU_REGISTER_NAPI, &n, 1);
    if (ret < 0)
        return napi_error("register_napi", -ret);
    return napi_settings(&n);
}

static PyObject *
Ring_unregister_napi(RingObject *self, PyObject *Py_UNUSED(ignored))
{
    struct pu_napi n;
    int ret;

    if (pu_ring_check(self) < 0)
        return NULL;
    memset(&n, 0, sizeof(n));
    ret = register_op(self, PU_UNREGISTER_NAPI, &n, 1);
    if (ret < 0)
        return napi_error("unregister_napi", -ret);
    return napi_settings(&n);
}

/* register_clock(clockid): io_uring_register_clock(): the clock the
 * ring's wait timeouts run on, time.CLOCK_MONOTONIC (the default) or
 * time.CLOCK_BOOTTIME (counts suspended time too) */
static PyObject *
Ring_register_clock(RingObject *self, PyObject *arg)
{
    struct pu_clock_register c;
    unsigned long id;
    int ret;

    if (pu_small_uint(arg, INT32_MAX, "a clock id (time.CLOCK_MONOTONIC or "
                      "time.CLOCK_BOOTTIME)", &id) < 0 ||
        pu_ring_check(self) < 0)
        return NULL;
    memset(&c, 0, sizeof(c));
    c.clockid = (__u32)id;
    ret = register_op(self, PU_REGISTER_CLOCK, &c, 0);
    if (ret < 0) {
        if (ret == -EINVAL && id != CLOCK_MONOTONIC && id != CLOCK_BOOTTIME)
            return pu_err_errno_msg(EINVAL, "register_clock(): the clock must be "
                                    "time.CLOCK_MONOTONIC or time.CLOCK_BOOTTIME");
        return pu_err_errno(-ret);
    }
    Py_RETURN_NONE;
}

PyMethodDef pu_napi_methods[] = {
    {"register_napi", (PyCFunction)(void (*)(void))Ring_register_napi, METH_FASTCALL,
     PU_DOC_IoUring_register_napi},
    {"unregister_napi", (PyCFunction)Ring_unregister_napi, METH_NOARGS,
     PU_DOC_IoUring_unregister_napi},
    {"register_clock", (PyCFunction)Ring_register_clock, METH_O,
     PU_DOC_IoUring_register_clock},
    {NULL, NULL, 0, NULL},
};
