/* clone.c: clone_buffers() and clone_buffers_offset(): another ring's
 * registered buffers put in this ring's table (IORING_REGISTER_CLONE_BUFFERS).
 *
 * The kernel shares the pages between the two tables; this ring takes a
 * reference to the source's pin of each buffer it cloned (tags.c), so the
 * memory stays pinned while either ring has it registered, whichever
 * unregisters or is torn down first.  The clones carry no tags (the kernel
 * copies none). */
#include "register/register.h"
#include "methods_doc.h"
#include "ops/liburing_compat.h"

static const char *const clone_kw[] = {"src", "dst_off", "src_off", "nr", "flags", NULL};
static const pu_argspec clone_spec = {"clone_buffers_offset", clone_kw, 5, 5, 0};
static const pu_argspec clone_all_spec = {"clone_buffers", clone_kw, 1, 1, 0};

/* After the kernel cloned: this ring's table as the kernel's now is.  With
 * IORING_REGISTER_DST_REPLACE, slots outside [dst_off, dst_off + nr) keep
 * what they held; without it the table was empty.  -1 with MemoryError
 * (what could not be recorded stays pinned: leaked, never freed). */
static int
mirror_clone(RingObject *dst, RingObject *src, unsigned dst_off, unsigned src_off,
             unsigned nr)
{
    pu_regbuf **old = PyMem_Calloc(nr ? nr : 1, sizeof(*old));
    int ret = 0;

    if (old == NULL) {
        /* still take the references: the kernel uses the buffers */
        for (unsigned k = 0; k < nr; k++)
            pu_regbuf_incref(pu_buf_table_get(src, src_off + k));
        PyErr_NoMemory();
        return -1;
    }
    for (unsigned k = 0; k < nr; k++) {
        pu_regbuf *p = pu_regbuf_incref(pu_buf_table_get(src, src_off + k));
        old[k] = p;
        if (pu_buf_table_swap(dst, dst_off + k, &old[k]) < 0) {
            old[k] = NULL;   /* p is leaked: the kernel has it */
            ret = -1;
            for (k++; k < nr; k++)
                pu_regbuf_incref(pu_buf_table_get(src, src_off + k));
            break;
        }
    }
    dst->bufs_registered = 1;
    /* the replaced ones go last: their release may run code */
    pu_pins_drop(old, nr);
    return ret;
}

static PyObject *
do_clone(RingObject *self, const pu_argspec *sp, PyObject **argv, int all)
{
    unsigned v[4] = {0, 0, 0, 0};   /* dst_off, src_off, nr, flags */
    RingObject *src;
    int ret;

    if (!PyObject_TypeCheck(argv[0], &pu_RingType)) {
        PyErr_Format(PyExc_TypeError, "%s() argument 'src' must be IoUring, not %.100s",
                     sp->fname, Py_TYPE(argv[0])->tp_name);
        return NULL;
    }
    src = (RingObject *)argv[0];
    for (int i = 0; !all && i < 4; i++)
        if (pu_conv_u32(sp, i + 1, argv[i + 1], &v[i]) < 0)
            return NULL;
    if (!all && (v[3] & ~(unsigned)IORING_REGISTER_DST_REPLACE)) {
        PyErr_Format(PyExc_ValueError, "%s() flags may only be "
                     "IORING_REGISTER_DST_REPLACE", sp->fname);
        return NULL;
    }
    if (pu_ring_check(self) < 0 || pu_ring_check(src) < 0)
        return NULL;
    if (src == self) {
        PyErr_Format(PyExc_ValueError, "%s() cannot clone a ring's buffers into "
                     "itself", sp->fname);
        return NULL;
    }
    if (all)
        ret = io_uring_clone_buffers(&self->ring, &src->ring);
    else
        ret = io_uring_clone_buffers_offset(&self->ring, &src->ring, v[0], v[1],
                                            v[2], v[3]);
    if (ret < 0)
        return pu_err_errno(-ret);
    /* nr 0: every slot of the source from src_off on */
    if (v[2] == 0)
        v[2] = src->nbuf_pins > v[1] ? src->nbuf_pins - v[1] : 0;
    if (mirror_clone(self, src, v[0], v[1], v[2]) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
Ring_clone_buffers(RingObject *self, PyObject *const *args, Py_ssize_t nargs,
                   PyObject *kwnames)
{
    PyObject *argv[1];
    if (pu_parse_args(&clone_all_spec, args, nargs, kwnames, argv) < 0)
        return NULL;
    return do_clone(self, &clone_all_spec, argv, 1);
}

static PyObject *
Ring_clone_buffers_offset(RingObject *self, PyObject *const *args, Py_ssize_t nargs,
                          PyObject *kwnames)
{
    PyObject *argv[5];
    if (pu_parse_args(&clone_spec, args, nargs, kwnames, argv) < 0)
        return NULL;
    return do_clone(self, &clone_spec, argv, 0);
}

PyMethodDef pu_clone_methods[] = {
    {"clone_buffers", (PyCFunction)(void (*)(void))Ring_clone_buffers,
     METH_FASTCALL | METH_KEYWORDS, PU_DOC_IoUring_clone_buffers},
    {"clone_buffers_offset", (PyCFunction)(void (*)(void))Ring_clone_buffers_offset,
     METH_FASTCALL | METH_KEYWORDS, PU_DOC_IoUring_clone_buffers_offset},
    {NULL, NULL, 0, NULL},
};
