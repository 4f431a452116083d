/* ring_fd.c: register_ring_fd(), unregister_ring_fd(), close_ring_fd()
 * (IORING_REGISTER_RING_FDS): the ring's fd in the calling thread's table
 * of registered rings, so that io_uring_enter() skips the fd lookup.
 *
 * The kernel keeps that table per thread; core/enter_fd.c says when the
 * index is used (the registering thread's calls that both submit and
 * wait) and errors.c refuses other threads once the fd is closed.  Each
 * method here changes liburing's struct io_uring, which threads in
 * liburing without the GIL read: none may be there (both sides free). */
#include "register/register.h"
#include "methods_doc.h"

#include <errno.h>
#include <unistd.h>

#ifndef IORING_FEAT_REG_REG_RING
#define IORING_FEAT_REG_REG_RING (1U << 13)
#endif

/* The ring usable, and no thread in liburing on it. */
static int
check_idle(RingObject *r, const char *fname)
{
    if (pu_ring_check(r) < 0)
        return -1;
    if (r->sq_owner != 0 || r->cq_owner != 0) {
        PyErr_Format(PyExc_RuntimeError, "%s(): another thread is submitting "
                     "on or waiting on this IoUring", fname);
        return -1;
    }
    return 0;
}

/* liburing's io_uring_register_ring_fd(), which sets the struct to enter by
 * the new index: the bits it set in int_flags are returned in *bits, the
 * index in *index, and the struct is put back as it was (entering by the
 * ring fd).  0, or -errno. */
static int
register_learn(RingObject *r, uint8_t *bits, int *index)
{
    uint8_t before = r->ring.int_flags;
    int ret = io_uring_register_ring_fd(&r->ring);

    if (ret < 0)
        return ret;
    if (ret != 1)
        return -EIO;
    *bits = (uint8_t)(r->ring.int_flags & ~before);
    *index = r->ring.enter_ring_fd;
    r->ring.int_flags = before;
    r->ring.enter_ring_fd = r->ring.ring_fd;
    return 0;
}

static int
unregister_index(RingObject *r, int index)
{
    struct io_uring_rsrc_update up = {.offset = (__u32)index};
    unsigned op = IORING_UNREGISTER_RING_FDS;
    unsigned fd = pu_register_fd(r, &op);
    int ret = io_uring_register(fd, op, &up, 1);
    return ret < 0 ? ret : 0;
}

static PyObject *
Ring_register_ring_fd(RingObject *self, PyObject *Py_UNUSED(ignored))
{
    unsigned features;
    uint8_t bits;
    int index, ret;

    if (check_idle(self, "register_ring_fd") < 0)
        return NULL;
    if (self->fd_registered)
        return pu_err_errno_msg(EEXIST, "register_ring_fd(): the ring's fd is "
                                "registered already");
    /* without IORING_FEAT_REG_REG_RING liburing sets only the bit that
     * enters by the index: registrations keep going by the fd, valid from
     * every thread (close_ring_fd() learns the other bit) */
    features = self->ring.features;
    self->ring.features &= ~(unsigned)IORING_FEAT_REG_REG_RING;
    ret = register_learn(self, &bits, &index);
    self->ring.features = features;
    if (ret < 0)
        return pu_err_errno(-ret);
    if (bits == 0 || (bits & (bits - 1)) != 0) {
        (void)unregister_index(self, index);
        PyErr_Format(PyExc_RuntimeError, "register_ring_fd(): liburing set "
                     "int_flags 0x%x, not one bit: not supported", bits);
        return NULL;
    }
    self->reg_bit = bits;
    self->reg_reg_bit = 0;
    self->reg_index = index;
    self->reg_thread = pu_thread_token();
    self->fd_registered = 1;
    return PyLong_FromLong(index);
}

static int
check_registrar(RingObject *r, const char *fname)
{
    if (!r->fd_registered) {
        pu_err_errno_msg(EINVAL, fname[0] == 'u'
                         ? "unregister_ring_fd(): the ring's fd is not registered"
                         : "close_ring_fd(): the ring's fd is not registered "
                           "(call register_ring_fd() first)");
        return -1;
    }
    if (r->reg_thread != pu_thread_token()) {
        PyErr_Format(PyExc_RuntimeError, "%s(): the ring's fd was registered "
                     "by another thread; the kernel keeps registered ring fds "
                     "per thread, so only that thread can do this", fname);
        return -1;
    }
    return 0;
}

static PyObject *
Ring_unregister_ring_fd(RingObject *self, PyObject *Py_UNUSED(ignored))
{
    int ret;

    if (check_idle(self, "unregister_ring_fd") < 0 ||
        check_registrar(self, "unregister_ring_fd") < 0)
        return NULL;
    if (self->fd_closed)
        return pu_err_errno_msg(EBADF, "unregister_ring_fd(): the ring's fd "
                                "was closed (close_ring_fd()): the registered "
                                "index is the only way to the ring; "
                                "queue_exit() ends it");
    ret = unregister_index(self, self->reg_index);
    if (ret < 0)
        return pu_err_errno(-ret);
    self->fd_registered = 0;
    Py_RETURN_NONE;
}

/* close_ring_fd(): io_uring_close_ring_fd(): close the ring's fd; from
 * then on the registering thread reaches the ring by its index alone
 * (entering and registering, IORING_FEAT_REG_REG_RING), and the ring
 * refuses every other thread. */
static PyObject *
Ring_close_ring_fd(RingObject *self, PyObject *Py_UNUSED(ignored))
{
    uint8_t bits, before;
    int index, ret;

    if (check_idle(self, "close_ring_fd") < 0 ||
        check_registrar(self, "close_ring_fd") < 0)
        return NULL;
    if (self->fd_closed)
        return pu_err_errno_msg(EBADF, "close_ring_fd(): the ring's fd is "
                                "closed already");
    if (!(self->features & IORING_FEAT_REG_REG_RING))
        return pu_err_errno_msg(EOPNOTSUPP, "close_ring_fd(): this kernel "
                                "cannot register by a registered ring index "
                                "(IORING_FEAT_REG_REG_RING, Linux 6.3)");
    /* learn the bit that makes liburing register by the index: a second
     * registration with the feature shown sets both, then goes again */
    before = self->ring.int_flags;
    ret = register_learn(self, &bits, &index);
    if (ret < 0)
        return pu_err_errno(-ret);
    ret = unregister_index(self, index);
    if (ret < 0)
        return pu_err_errno(-ret);
    bits &= (uint8_t)~self->reg_bit;
    if (bits == 0)
        return pu_err_errno_msg(EOPNOTSUPP, "close_ring_fd(): needs liburing 2.4 "
                                "or later: the liburing this module was built "
                                "with reaches the ring for registrations by "
                                "its fd only");
    self->reg_reg_bit = bits;
    if (close(self->ring.ring_fd) < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    self->ring.ring_fd = -1;
    self->ring.int_flags = (uint8_t)(before | self->reg_bit | self->reg_reg_bit);
    self->ring.enter_ring_fd = self->reg_index;
    self->fd_closed = 1;
    Py_RETURN_NONE;
}

PyMethodDef pu_ring_fd_methods[] = {
    {"register_ring_fd", (PyCFunction)Ring_register_ring_fd, METH_NOARGS,
     PU_DOC_IoUring_register_ring_fd},
    {"unregister_ring_fd", (PyCFunction)Ring_unregister_ring_fd, METH_NOARGS,
     PU_DOC_IoUring_unregister_ring_fd},
    {"close_ring_fd", (PyCFunction)Ring_close_ring_fd, METH_NOARGS,
     PU_DOC_IoUring_close_ring_fd},
    {NULL, NULL, 0, NULL},
};
