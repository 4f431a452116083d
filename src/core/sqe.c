/* sqe.c: the Sqe type, which is also the operation's record, and the one
 * function every generated prep_* method goes through. */
#include "ops/opdef.h"
#include "methods_doc.h"

static const char *const state_names[] = {"new", "prepared", "submitted",
                                          "done", "preparing"};

/* Called by each generated Sqe.prep_NAME(): check that the entry may still
 * be written and that the kernel has the op, then prepare it. */
PyObject *
pu_sqe_prep(SqeObject *self, const pu_opdef *op, PyObject *const *args,
            Py_ssize_t nargs, PyObject *kwnames)
{
    if (self->ring == NULL || pu_ring_check_sq(self->ring) < 0)
        return NULL;
    if (self->state == PU_PREPARING) {
        PyErr_Format(PyExc_RuntimeError, "prep_%s(): this Sqe is being "
                     "prepared already (by a prep_* whose converter ran this)",
                     op->name);
        return NULL;
    }
    if (self->state != PU_NEW && self->state != PU_PREPARED) {
        PyErr_Format(PyExc_ValueError,
                     "prep_%s(): this Sqe was already submitted; get a new "
                     "one with IoUring.get_sqe()", op->name);
        return NULL;
    }
    if (!PU_SUPPORTED(self->ring, op->opcode)) {
        return pu_err_unsupported(op);
    }
    if (pu_sqe_prep_entry(self, op, args, nargs, kwnames) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* pu_sqe_prep_entry()'s paths off the usual one (opdef.h): a second prep
 * of the same entry, and a prep that failed. */
void
pu_sqe_prep_again(SqeObject *self)
{
    /* A second prep before submit replaces the first.  The entry becomes a
     * NOP before the first prep's pins go: a converter below may run code
     * that submits it, and the kernel must then find nothing that points
     * at memory released here. */
    pu_sqe_reset(self->ring, self->sqe, self->user_data);
    pu_record_release(self);
    self->op_flags = 0;
    self->has_peer = 0;
    self->op = NULL;
}

int
pu_sqe_prep_failed(SqeObject *self, struct io_uring_sqe *sqe)
{
    pu_record_release(self);
    if (self->state != PU_PREPARING)
        return -1;   /* submitted or torn down meanwhile: not ours */
    pu_sqe_reset(self->ring, sqe, self->user_data);
    self->has_peer = 0;   /* PU_NEW means no op's state: see opdef.h */
    self->state = PU_NEW;
    return -1;
}

static int
Sqe_traverse(SqeObject *self, visitproc visit, void *arg)
{
    /* Pinned buffers, kept objects and the output bytes are deliberately
     * not visited: to the GC they look referenced from outside, so it can
     * never clear them while the kernel may use them. */
    Py_VISIT(self->ring);
    Py_VISIT(self->data);
    return 0;
}

static int
Sqe_clear(SqeObject *self)
{
    /* Only the user's object: the ring reference and the pinned memory
     * stay until the record is released (or forever, if leaked). */
    Py_CLEAR(self->data);
    return 0;
}

static void
Sqe_dealloc(SqeObject *self)
{
    PyObject_GC_UnTrack(self);
    if (self->weakreflist != NULL)
        PyObject_ClearWeakRefs((PyObject *)self);
    /* the table holds a reference until the final completion, so here the
     * kernel is done with everything the record pinned */
    pu_record_release(self);
    Py_CLEAR(self->data);
    Py_CLEAR(self->ring);
    pu_sqe_free(self);
}

static PyObject *
Sqe_set_data(SqeObject *self, PyObject *data)
{
    Py_INCREF(data);
    self->data_is_int = 0;
    Py_XSETREF(self->data, data);
    Py_RETURN_NONE;
}

/* set_flags() and friends: the entry must still be ours to write. */
static int
check_writable(SqeObject *self, const char *what)
{
    if (pu_ring_check_sq(self->ring) < 0)
        return -1;
    if (self->state != PU_NEW && self->state != PU_PREPARED) {
        PyErr_Format(PyExc_ValueError, "%s(): this Sqe was already submitted",
                     what);
        return -1;
    }
    return 0;
}

static PyObject *
Sqe_set_flags(SqeObject *self, PyObject *arg)
{
    unsigned long v;
    if (check_writable(self, "set_flags") < 0 ||
        pu_small_uint(arg, 0xff, "flags", &v) < 0)
        return NULL;
    self->sqe_flags = (uint8_t)v;
    /* replaces earlier set_flags() bits but keeps what the op set itself */
    self->sqe->flags = (uint8_t)((self->state == PU_NEW ? 0 : self->op_flags) | v);
    Py_RETURN_NONE;
}

static PyObject *
Sqe_get_flags(SqeObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromUnsignedLong(self->sqe_flags);
}

static PyObject *
Sqe_set_personality(SqeObject *self, PyObject *arg)
{
    unsigned long v;
    if (check_writable(self, "set_personality") < 0 ||
        pu_small_uint(arg, 0xffff, "personality", &v) < 0)
        return NULL;
    self->personality = (uint16_t)v;
    self->sqe->personality = (uint16_t)v;
    Py_RETURN_NONE;
}

static PyObject *
Sqe_set_buf_group(SqeObject *self, PyObject *arg)
{
    unsigned long v;
    if (check_writable(self, "set_buf_group") < 0 ||
        pu_small_uint(arg, 0xffff, "buf_group", &v) < 0)
        return NULL;
    self->buf_group = (uint16_t)v;
    self->sqe->buf_group = (uint16_t)v;
    Py_RETURN_NONE;
}

/* prep_send_set_addr(dest_addr): liburing's io_uring_prep_send_set_addr()
 * on a prepared send or send_zc, so it sends as sendto(2) does.  The
 * address goes into the record's inline sockaddr (no send op uses it),
 * which lives as long as the record: until the final completion.  It is
 * converted into a local first (a host name is resolved with the GIL
 * released, and another thread may submit the entry meanwhile), then the
 * entry is checked again before anything in it points at the record. */
static PyObject *
Sqe_prep_send_set_addr(SqeObject *self, PyObject *arg)
{
    struct sockaddr_storage ss;
    socklen_t len = 0;
    int family = AF_UNSPEC;
    socklen_t fl = sizeof(family);
    const char *why = NULL;

    if (check_writable(self, "prep_send_set_addr") < 0)
        return NULL;
    if (self->state != PU_PREPARED || self->op == NULL ||
        (self->op->opcode != IORING_OP_SEND && self->op->opcode != IORING_OP_SEND_ZC))
        why = self->op ? self->op->name : "nothing";
    if (why != NULL) {
        PyErr_Format(PyExc_ValueError, "prep_send_set_addr(): this Sqe is "
                     "prepared with %s, not a send; prepare it with prep_send() or "
                     "prep_send_zc() first", why);
        return NULL;
    }
    /* the socket's own family decides the form, as for prep_sendto(); a
     * registered file's slot is no fd of ours, so there the form decides */
    if (!((self->op_flags | self->sqe_flags) & IOSQE_FIXED_FILE) &&
        getsockopt(self->sqe->fd, SOL_SOCKET, SO_DOMAIN, &family, &fl) < 0)
        family = AF_UNSPEC;
    if (pu_sockaddr_from_python(arg, family, &ss, &len) < 0)
        return NULL;
    if (check_writable(self, "prep_send_set_addr") < 0)
        return NULL;
    /* another thread may have prepared it again meanwhile (a host name is
     * resolved with the GIL released) */
    if (self->state != PU_PREPARED || self->op == NULL ||
        (self->op->opcode != IORING_OP_SEND && self->op->opcode != IORING_OP_SEND_ZC)) {
        PyErr_SetString(PyExc_ValueError, "prep_send_set_addr(): the Sqe was "
                        "prepared again while the address was converted");
        return NULL;
    }
    memcpy(&self->addr, &ss, sizeof(ss));
    io_uring_prep_send_set_addr(self->sqe, (const struct sockaddr *)&self->addr,
                                (__u16)len);
    Py_RETURN_NONE;
}

static PyObject *
Sqe_get_data(SqeObject *self, PyObject *Py_UNUSED(ignored))
{
    return pu_rec_data(self);
}

static PyObject *
Sqe_user_data(SqeObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromUnsignedLongLong(self->user_data);
}

PyObject *
pu_sqe_peer(SqeObject *self)
{
    if (!self->has_peer) {
        PyErr_SetString(PyExc_ValueError,
                        "convert_address(): no peer address (only an accept "
                        "gives one)");
        return NULL;
    }
    if (self->state != PU_DONE) {
        PyErr_SetString(PyExc_ValueError,
                        "convert_address(): the accept has not completed yet");
        return NULL;
    }
    return pu_sockaddr_to_python((struct sockaddr *)&self->addr, self->peerlen);
}

static PyObject *
Sqe_convert_address(SqeObject *self, PyObject *Py_UNUSED(ignored))
{
    return pu_sqe_peer(self);
}

static PyObject *
Sqe_repr(SqeObject *self)
{
    char ud[24];   /* PyUnicode_FromFormat has no %llx */
    PyOS_snprintf(ud, sizeof(ud), "0x%llx", (unsigned long long)self->user_data);
    return PyUnicode_FromFormat("<py_io_uring.Sqe %s %s user_data=%s>",
                                self->op ? self->op->name : "nop",
                                state_names[self->state], ud);
}

static PyMethodDef Sqe_runtime_methods[] = {
    {"set_data", (PyCFunction)Sqe_set_data, METH_O, PU_DOC_Sqe_set_data},
    {"get_data", (PyCFunction)Sqe_get_data, METH_NOARGS, PU_DOC_Sqe_get_data},
    {"convert_address", (PyCFunction)Sqe_convert_address, METH_NOARGS,
     PU_DOC_Sqe_convert_address},
    {"user_data", (PyCFunction)Sqe_user_data, METH_NOARGS,
     PU_DOC_Sqe_user_data},
    {"set_flags", (PyCFunction)Sqe_set_flags, METH_O, PU_DOC_Sqe_set_flags},
    {"get_flags", (PyCFunction)Sqe_get_flags, METH_NOARGS, PU_DOC_Sqe_get_flags},
    {"set_personality", (PyCFunction)Sqe_set_personality, METH_O,
     PU_DOC_Sqe_set_personality},
    {"set_buf_group", (PyCFunction)Sqe_set_buf_group, METH_O,
     PU_DOC_Sqe_set_buf_group},
    {"prep_send_set_addr", (PyCFunction)Sqe_prep_send_set_addr, METH_O,
     PU_DOC_Sqe_prep_send_set_addr},
    {NULL, NULL, 0, NULL},
};

PyTypeObject pu_SqeType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "py_io_uring.Sqe",
    .tp_basicsize = sizeof(SqeObject),
    .tp_dealloc = (destructor)Sqe_dealloc,
    .tp_repr = (reprfunc)Sqe_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = PU_DOC_Sqe,
    .tp_traverse = (traverseproc)Sqe_traverse,
    .tp_clear = (inquiry)Sqe_clear,
    .tp_weaklistoffset = offsetof(SqeObject, weakreflist),
};

/* The Sqe's method table: the runtime's methods, then the generated
 * prep_* methods (and, in the fuzz build only, _fuzz_prep_raw).  Built once, before PyType_Ready(). */
int
pu_sqe_type_init(void)
{
    size_t nrt = sizeof(Sqe_runtime_methods) / sizeof(PyMethodDef) - 1;
    size_t ngen = 0, nfuzz = 0, n;
    PyMethodDef *all;

    while (pu_generated_sqe_methods[ngen].ml_name != NULL)
        ngen++;
#ifdef PU_FUZZ_RAW
    while (pu_fuzz_raw_methods[nfuzz].ml_name != NULL)
        nfuzz++;
#endif
    n = nrt + ngen + nfuzz + 1;
    all = PyMem_RawCalloc(n, sizeof(PyMethodDef));  /* lives as long as the type */
    if (all == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memcpy(all, Sqe_runtime_methods, nrt * sizeof(PyMethodDef));
    memcpy(all + nrt, pu_generated_sqe_methods, ngen * sizeof(PyMethodDef));
#ifdef PU_FUZZ_RAW
    memcpy(all + nrt + ngen, pu_fuzz_raw_methods, nfuzz * sizeof(PyMethodDef));
#endif
    pu_SqeType.tp_methods = all;
    return PyType_Ready(&pu_SqeType);
}
