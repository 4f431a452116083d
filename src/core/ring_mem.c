/* ring_mem.c: queue_init_mem(): a ring whose SQEs and rings live in the
 * caller's memory (IORING_SETUP_NO_MMAP; io_uring_queue_init_mem()).
 *
 * The kernel pins those pages and reads and writes them for as long as the
 * ring exists, so the buffer is pinned (Py_buffer) from setup until
 * teardown has closed the ring's fd (pu_ring_close(): never liburing 2.3's
 * io_uring_queue_exit(), which would munmap it), and leaked with the other
 * registrations when operations were leaked.  The memory is not marked
 * MADV_DONTFORK (it is the caller's; a child gets its copy), and the fork
 * generation still refuses the ring in a child. */
#include "register/register.h"
#include "ops/liburing_compat.h"
#include "methods_doc.h"

#include <stdint.h>
#include <unistd.h>

static const char *const mem_kw[] = {"entries", "buf", "flags", "cq_entries", NULL};
static const pu_argspec mem_spec = {"queue_init_mem", mem_kw, 2, 4, 1};

static PyObject *
Ring_queue_init_mem(RingObject *self, PyObject *const *args, Py_ssize_t nargs,
                    PyObject *kwnames)
{
    PyObject *argv[4] = {NULL, NULL, NULL, NULL};
    struct io_uring_params p;
    unsigned entries;
    Py_buffer *view;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    ssize_t need;

    memset(&p, 0, sizeof(p));
    if (pu_parse_args(&mem_spec, args, nargs, kwnames, argv) < 0 ||
        pu_conv_u32(&mem_spec, 0, argv[0], &entries) < 0 ||
        (argv[2] != NULL && pu_conv_u32(&mem_spec, 2, argv[2], &p.flags) < 0) ||
        (argv[3] != NULL && pu_conv_u32(&mem_spec, 3, argv[3], &p.cq_entries) < 0))
        return NULL;
    if (p.cq_entries)
        p.flags |= IORING_SETUP_CQSIZE;
    p.flags |= IORING_SETUP_NO_MMAP;
    view = PyMem_Calloc(1, sizeof(*view));
    if (view == NULL)
        return PyErr_NoMemory();
    if (PyObject_GetBuffer(argv[1], view, PyBUF_WRITABLE) < 0) {
        PyMem_Free(view);
        pu_buffer_refused(&mem_spec, 1, -1, argv[1],
                          "a writable C-contiguous bytes-like object");
        return NULL;
    }
    if (((uintptr_t)view->buf % page) != 0) {
        PyErr_SetString(PyExc_ValueError, "queue_init_mem(): buf must start on a page "
                        "boundary (an mmap.mmap(-1, n) does)");
        goto fail;
    }
    need = io_uring_memory_size_params(entries, &p);
    if (need > 0 && view->len < need) {
        PyErr_Format(PyExc_ValueError, "queue_init_mem(): buf holds %zd bytes; a ring "
                     "of %u entries with these flags needs %zd (memory_size())",
                     view->len, entries, need);
        goto fail;
    }
    /* refuses an initialised ring, and NO_MMAP's companions */
    if (pu_ring_setup(self, mem_spec.fname, entries, &p, view) < 0)
        goto fail;
    Py_RETURN_NONE;
fail:
    pu_heap_view_release(&view);
    return NULL;
}

/* At teardown, after pu_ring_close(): the kernel let go of the pages. */
void
pu_ring_mem_release(RingObject *r)
{
    pu_heap_view_release(&r->ring_mem);
}

PyMethodDef pu_ring_mem_methods[] = {
    {"queue_init_mem", (PyCFunction)(void (*)(void))Ring_queue_init_mem,
     METH_FASTCALL | METH_KEYWORDS, PU_DOC_IoUring_queue_init_mem},
    {NULL, NULL, 0, NULL},
};
