/* query.c: register_query() (IORING_REGISTER_QUERY, Linux 6.18): what the
 * running kernel's io_uring supports, asked without a ring.  The structs
 * are the kernel's (include/uapi/linux/io_uring/query.h, which liburing
 * ships from 2.13 on), spelt out for older headers. */
#include "register/register.h"
#include "methods_doc.h"

#include <errno.h>

#define PU_REGISTER_QUERY 35

struct pu_query_hdr {
    __u64 next_entry;
    __u64 query_data;
    __u32 query_op;
    __u32 size;
    __s32 result;
    __u32 resv[3];
};

/* each query's answer: its fields in order, all __u32 or __u64 */
struct pu_query_field {
    const char *name;
    unsigned offset, size;
};

#define F32(name, off) {name, off, 4}
#define F64(name, off) {name, off, 8}

static const struct pu_query_field opcodes_fields[] = {
    F32("nr_request_opcodes", 0), F32("nr_register_opcodes", 4),
    F64("feature_flags", 8), F64("ring_setup_flags", 16), F64("enter_flags", 24),
    F64("sqe_flags", 32), F32("nr_query_opcodes", 40), {NULL, 0, 0}};
static const struct pu_query_field zcrx_fields[] = {
    F64("register_flags", 0), F64("area_flags", 8), F32("nr_ctrl_opcodes", 16),
    F32("features", 20), F32("rq_hdr_size", 24), F32("rq_hdr_alignment", 28),
    {NULL, 0, 0}};
static const struct pu_query_field scq_fields[] = {
    F64("hdr_size", 0), F64("hdr_alignment", 8), {NULL, 0, 0}};

static const struct {
    const struct pu_query_field *fields;
    unsigned size;
} queries[] = {{opcodes_fields, 48}, {zcrx_fields, 40}, {scq_fields, 16}};

/* register_query(op=IO_URING_QUERY_OPCODES): the kernel's answer as a
 * dict of the struct's fields.  The ring takes no part. */
static PyObject *
Ring_register_query(RingObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    unsigned long op = 0;
    struct pu_query_hdr hdr;
    unsigned char data[64];
    PyObject *d;
    int ret;

    (void)self;
    if (nargs > 1) {
        PyErr_Format(PyExc_TypeError, "register_query() takes at most 1 argument "
                     "(op), %zd given", nargs);
        return NULL;
    }
    if (nargs == 1 &&
        pu_small_uint(args[0], sizeof(queries) / sizeof(queries[0]) - 1,
                      "a query op (0: opcodes, 1: zcrx, 2: scq)", &op) < 0)
        return NULL;
    memset(&hdr, 0, sizeof(hdr));
    memset(data, 0, sizeof(data));
    hdr.query_op = (__u32)op;
    hdr.query_data = (__u64)(uintptr_t)data;
    hdr.size = queries[op].size;
    ret = io_uring_register((unsigned)-1, PU_REGISTER_QUERY, &hdr, 0);
    if (ret < 0) {
        if (ret == -EINVAL)
            return pu_err_errno_msg(EINVAL, "register_query(): this kernel has no "
                                    "IORING_REGISTER_QUERY (Linux 6.18)");
        return pu_err_errno(-ret);
    }
    if (hdr.result < 0)
        return pu_err_errno(-hdr.result);
    d = PyDict_New();
    for (const struct pu_query_field *f = queries[op].fields; d != NULL && f->name; f++) {
        unsigned long long v;
        PyObject *o;
        if (f->size == 4) {
            __u32 x;
            memcpy(&x, data + f->offset, 4);
            v = x;
        } else {
            __u64 x;
            memcpy(&x, data + f->offset, 8);
            v = x;
        }
        o = PyLong_FromUnsignedLongLong(v);
        if (o == NULL || PyDict_SetItemString(d, f->name, o) < 0)
            Py_CLEAR(d);
        Py_XDECREF(o);
    }
    return d;
}

PyMethodDef pu_query_methods[] = {
    {"register_query", (PyCFunction)(void (*)(void))Ring_register_query, METH_FASTCALL,
     PU_DOC_IoUring_register_query},
    {NULL, NULL, 0, NULL},
};
