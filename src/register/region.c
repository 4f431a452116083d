/* region.c: register_region(): memory of the caller's that the ring shares
 * with the kernel beyond any one operation (IORING_REGISTER_MEM_REGION;
 * with IORING_MEM_REGION_REG_WAIT_ARG, the wait arguments of
 * io_uring_submit_and_wait_reg()).
 *
 * The kernel pins the pages and may read them at any time while the ring
 * lives, and a ring has at most one region, which cannot be unregistered:
 * the buffer stays pinned (Py_buffer) until teardown has closed the ring. */
#include "register/register.h"
#include "ops/liburing_compat.h"
#include "methods_doc.h"

#include <stdint.h>
#include <unistd.h>

static const char *const region_kw[] = {"buf", "flags", NULL};
static const pu_argspec region_spec = {"register_region", region_kw, 1, 2, 0};

static PyObject *
Ring_register_region(RingObject *self, PyObject *const *args, Py_ssize_t nargs,
                     PyObject *kwnames)
{
    PyObject *argv[2] = {NULL, NULL};
    unsigned flags = 0;
    Py_buffer *view;
    struct io_uring_region_desc desc;
    struct io_uring_mem_region_reg reg;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    int ret;

    if (pu_parse_args(&region_spec, args, nargs, kwnames, argv) < 0 ||
        (argv[1] != NULL && pu_conv_u32(&region_spec, 1, argv[1], &flags) < 0))
        return NULL;
    if (flags & ~(unsigned)IORING_MEM_REGION_REG_WAIT_ARG) {
        PyErr_SetString(PyExc_ValueError, "register_region(): flags may only be "
                        "IORING_MEM_REGION_REG_WAIT_ARG");
        return NULL;
    }
    view = PyMem_Calloc(1, sizeof(*view));
    if (view == NULL)
        return PyErr_NoMemory();
    if (PyObject_GetBuffer(argv[0], view, PyBUF_WRITABLE) < 0) {
        PyMem_Free(view);
        pu_buffer_refused(&region_spec, 0, -1, argv[0],
                          "a writable C-contiguous bytes-like object");
        return NULL;
    }
    if (((uintptr_t)view->buf % page) != 0 || view->len == 0 ||
        ((size_t)view->len % page) != 0) {
        PyErr_Format(PyExc_ValueError, "register_region(): the region must start on a "
                     "page boundary and be whole pages of %zu bytes (an mmap.mmap(-1, n) "
                     "is)", page);
        goto fail;
    }
    /* after the conversions, which run Python code */
    if (pu_ring_check(self) < 0)
        goto fail;
    if (self->region != NULL) {
        PyErr_SetString(PyExc_ValueError, "register_region(): the ring has a region "
                        "already (one per ring, for its life)");
        goto fail;
    }
    memset(&desc, 0, sizeof(desc));
    desc.user_addr = (__u64)(uintptr_t)view->buf;
    desc.size = (__u64)view->len;
    desc.flags = IORING_MEM_REGION_TYPE_USER;
    memset(&reg, 0, sizeof(reg));
    reg.region_uptr = (__u64)(uintptr_t)&desc;
    reg.flags = flags;
    ret = io_uring_register_region(&self->ring, &reg);
    if (ret < 0) {
        pu_err_errno(-ret);
        goto fail;
    }
    self->region = view;   /* until teardown: pu_region_release() */
    Py_RETURN_NONE;
fail:
    pu_heap_view_release(&view);
    return NULL;
}

/* At teardown, after the ring fd is closed */
void
pu_region_release(RingObject *r)
{
    pu_heap_view_release(&r->region);
}

/* When operations were leaked: the kernel may still use it */
void
pu_region_leak(RingObject *r)
{
    r->region = NULL;
}

PyMethodDef pu_region_methods[] = {
    {"register_region", (PyCFunction)(void (*)(void))Ring_register_region,
     METH_FASTCALL | METH_KEYWORDS, PU_DOC_IoUring_register_region},
    {NULL, NULL, 0, NULL},
};
