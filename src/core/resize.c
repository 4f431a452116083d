/* resize.c: resize_rings(): new SQ and CQ sizes for a live ring
 * (IORING_REGISTER_RESIZE_RINGS; the kernel wants DEFER_TASKRUN).
 *
 * The kernel copies the entries not yet consumed into the new rings and
 * keeps their heads and tails; io_uring_resize_rings() maps the new rings
 * and unmaps the old.  So operations in flight go on (their records are
 * the slot table's, named by user_data, not by ring position) and
 * completions not yet reaped move with the CQ.  What cannot move is an
 * entry taken but not submitted: its Sqe points into the old SQE array.
 * The call is refused then, and while another thread uses either side
 * (a wait reads the CQ without the GIL). */
#include "core/submit.h"
#include "ops/opdef.h"
#include "ops/liburing_compat.h"
#include "methods_doc.h"

#include <errno.h>

static const char *const resize_kw[] = {"sq_entries", "cq_entries", NULL};
static const pu_argspec resize_spec = {"resize_rings", resize_kw, 1, 2, 0};

static PyObject *
Ring_resize_rings(RingObject *self, PyObject *const *args, Py_ssize_t nargs,
                  PyObject *kwnames)
{
    PyObject *argv[2];
    unsigned sq = 0, cq = 0;
    struct io_uring_params p;
    SqeObject **pending;
    int ret;

    if (pu_parse_args(&resize_spec, args, nargs, kwnames, argv) < 0 ||
        pu_conv_u32(&resize_spec, 0, argv[0], &sq) < 0 ||
        (argv[1] != NULL && pu_conv_u32(&resize_spec, 1, argv[1], &cq) < 0))
        return NULL;
    if (pu_ring_check_sq(self) < 0 || pu_ring_check_cq(self) < 0)
        return NULL;
    if (self->npending > 0 ||
        self->ring.sq.sqe_tail != IO_URING_READ_ONCE(*self->ring.sq.ktail)) {
        PyErr_Format(PyExc_RuntimeError, "resize_rings(): %u entr%s taken but not "
                     "submitted; submit() first", self->npending,
                     self->npending == 1 ? "y is" : "ies are");
        return NULL;
    }
    if (sq == 0 || sq > 32768 || (cq != 0 && cq < sq)) {
        PyErr_SetString(PyExc_ValueError, "resize_rings(): sq_entries must be 1 to "
                        "32768, cq_entries 0 (twice sq_entries) or at least sq_entries");
        return NULL;
    }
    /* room for the new SQ's pending list first: nothing to undo after */
    pending = PyMem_Realloc(self->pending, (size_t)(sq > self->sq_entries ? sq
                                                    : self->sq_entries) *
                                               sizeof(*pending));
    if (pending == NULL)
        return PyErr_NoMemory();
    self->pending = pending;
    memset(&p, 0, sizeof(p));
    p.sq_entries = sq;
    p.cq_entries = cq;
    if (cq != 0)
        p.flags = IORING_SETUP_CQSIZE;
    ret = io_uring_resize_rings(&self->ring, &p);
    if (ret < 0)
        return pu_err_errno(-ret);
    /* a forked child must not write into the new rings either */
    (void)io_uring_ring_dontfork(&self->ring);
    if (self->ring.sq.ring_entries < self->sq_entries) {
        /* the pending list may shrink now; failing keeps the larger one */
        pending = PyMem_Realloc(self->pending, self->ring.sq.ring_entries *
                                                   sizeof(*pending));
        if (pending != NULL)
            self->pending = pending;
    }
    self->sq_entries = self->ring.sq.ring_entries;
    return Py_BuildValue("(II)", self->ring.sq.ring_entries, self->ring.cq.ring_entries);
}

PyMethodDef pu_resize_methods[] = {
    {"resize_rings", (PyCFunction)(void (*)(void))Ring_resize_rings,
     METH_FASTCALL | METH_KEYWORDS, PU_DOC_IoUring_resize_rings},
    {NULL, NULL, 0, NULL},
};
