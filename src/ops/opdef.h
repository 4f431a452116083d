/* ops/opdef.h: the interface between the runtime and the code generated
 * from ops.def (build/gen/ops_gen.c): the op table, the argument specs and
 * their parser, one converter per argument kind of gen/kinds.py, the
 * keywords every op shares, and the prep entry points of each form (Sqe,
 * the ring's fast form, AsyncRing). */
#ifndef PU_OPS_OPDEF_H
#define PU_OPS_OPDEF_H

#include "core/ring.h"

/* ---------------------------------------------------------------- op table
 *
 * One entry per operation, generated from ops.def (build/gen/ops_gen.c). */
typedef int (*pu_prep_fn)(SqeObject *rec, struct io_uring_sqe *sqe,
                          PyObject *const *args, Py_ssize_t nargs,
                          PyObject *kwnames);

/* A Cqe's result in Python's terms, made when getresult() asks (res >= 0):
 * statx's stat_result, recvmsg's tuple, pipe's pair of fds. */
typedef PyObject *(*pu_result_fn)(struct CqeObject *q);

/* Run when an op's final completion is reaped, before its record's
 * release (ops.def `complete`): what the op changed beyond itself becomes
 * true for the runtime in completion order (provided buffers the kernel
 * took or gave back; the user data poll_update gave another record). */
typedef void (*pu_complete_fn)(RingObject *r, SqeObject *rec, int32_t res);

typedef struct pu_opdef {
    const char *name;               /* "read": Sqe.prep_read */
    int opcode;                     /* for the probe */
    const char *opcode_name;        /* "IORING_OP_READ", for messages */
    pu_prep_fn prep;
    pu_result_fn result;            /* NULL: bytes read, or the int res */
    pu_complete_fn complete;        /* NULL: nothing beyond the record */
    uint8_t async_mode;             /* PU_ASYNC_AWAIT / _ITER / _NONE */
    uint8_t async_flags;            /* PU_ASYNC_FD | PU_ASYNC_PEER */
} pu_opdef;

enum { PU_ASYNC_NONE, PU_ASYNC_AWAIT, PU_ASYNC_ITER };
#define PU_ASYNC_FD 0x01            /* ops.def `async ... fd` */
#define PU_ASYNC_PEER 0x02          /* ops.def `async ... peer` */
#define PU_ASYNC_CARRY 0x04         /* ops.def `async ... carry` (async/recv.c) */

static inline void
pu_op_complete(RingObject *r, SqeObject *rec, int32_t res)
{
    if (rec->op != NULL && rec->op->complete != NULL)
        rec->op->complete(r, rec, res);
}

#define PU_SUPPORTED(r, op) (((r)->supported[(op) / 8] >> ((op) % 8)) & 1)

extern const pu_opdef pu_opdefs[];
extern const int pu_nopdefs;
extern const char *const pu_op_kernels[];   /* "5.6": the Linux that added it */
extern PyMethodDef pu_generated_sqe_methods[];
extern PyMethodDef pu_generated_async_methods[];
extern PyMethodDef pu_generated_chain_methods[];
extern PyMethodDef pu_generated_ring_methods[];
int pu_add_generated_constants(PyObject *module);
int pu_add_info(PyObject *module);  /* src/info.c */

/* ---------------------------------------------------------------- arguments
 *
 * The converters: one C function per argument kind of gen/kinds.py.  Each
 * returns 0 or -1 with an exception set.  Converters that pin something put
 * it in the record, which releases it at the final completion (or at once
 * when the prep fails). */
typedef struct pu_argspec {
    const char *fname;              /* "prep_read" */
    const char *const *kwlist;      /* NULL-terminated argument names */
    Py_ssize_t nreq, nmax;
    Py_ssize_t kwonly;              /* the last kwonly names are keyword-only */
} pu_argspec;

int pu_parse_args_full(const pu_argspec *sp, PyObject *const *args,
                       Py_ssize_t nargs, PyObject *kwnames, PyObject **out);

/* Fill out[0..nmax) from a vectorcall's arguments (NULL: not given).  The
 * usual call, positional arguments only with every required one given, is
 * handled inline; keywords and errors in convert.c. */
static inline int
pu_parse_args(const pu_argspec *sp, PyObject *const *args, Py_ssize_t nargs,
              PyObject *kwnames, PyObject **out)
{
    Py_ssize_t i;

    if (kwnames != NULL || nargs < sp->nreq || nargs > sp->nmax - sp->kwonly)
        return pu_parse_args_full(sp, args, nargs, kwnames, out);
    for (i = 0; i < nargs; i++)
        out[i] = args[i];
    for (; i < sp->nmax; i++)
        out[i] = NULL;
    return 0;
}

/* The arguments by position, as pu_parse_args() gives them, without its
 * copy when there is nothing to place: with every argument given by
 * position (the usual full call) *argv is the vectorcall's own array,
 * which the caller keeps, unchanged, for the whole call (NULL when there
 * are none: prep_many() of an op without arguments).  Otherwise *argv is
 * buf, filled.  -1 with an exception. */
static inline int
pu_args_view(const pu_argspec *sp, PyObject *const *args, Py_ssize_t nargs,
             PyObject *kwnames, PyObject **buf, PyObject *const **argv)
{
    if (kwnames == NULL && nargs == sp->nmax && sp->kwonly == 0) {
        *argv = args;
        return 0;
    }
    *argv = buf;
    return pu_parse_args(sp, args, nargs, kwnames, buf);
}

int pu_conv_fd(const pu_argspec *sp, int i, PyObject *o, int *out);
int pu_conv_dirfd(const pu_argspec *sp, int i, PyObject *o, int *out);
int pu_conv_u32(const pu_argspec *sp, int i, PyObject *o, unsigned *out);
int pu_conv_i32(const pu_argspec *sp, int i, PyObject *o, int *out);
int pu_conv_bits(const pu_argspec *sp, int i, PyObject *o, unsigned mask,
                 const char *names, unsigned *out);
int pu_conv_u64(const pu_argspec *sp, int i, PyObject *o, __u64 *out);
int pu_conv_msg_data(const pu_argspec *sp, int i, PyObject *o, __u64 *out);
int pu_conv_offset(const pu_argspec *sp, int i, PyObject *o, __u64 *out);
int pu_conv_buffer_in(const pu_argspec *sp, int i, SqeObject *rec,
                      PyObject *o, const void **buf, unsigned *len);
int pu_conv_buffer_out(const pu_argspec *sp, int i, SqeObject *rec,
                       PyObject *o, void **buf, unsigned *len);
int pu_conv_path(const pu_argspec *sp, int i, SqeObject *rec, PyObject *o,
                 const char **out);
int pu_conv_timespec(const pu_argspec *sp, int i, SqeObject *rec,
                     PyObject *o, struct __kernel_timespec **out);
int pu_conv_target(const pu_argspec *sp, int i, SqeObject *rec, PyObject *o,
                   __u64 *out);
int pu_ring_target(const pu_argspec *sp, int i, RingObject *r, PyObject *o,
                   __u64 *out);
int pu_conv_sockaddr(const pu_argspec *sp, int i, SqeObject *rec,
                     PyObject *o, int fd, const struct sockaddr **out,
                     socklen_t *outlen);

int pu_conv_iovecs_in(const pu_argspec *sp, int i, SqeObject *rec,
                      PyObject *o, struct iovec **out, unsigned *count);
int pu_conv_iovecs_out(const pu_argspec *sp, int i, SqeObject *rec,
                       PyObject *o, struct iovec **out, unsigned *count);
int pu_conv_provided(const pu_argspec *sp, int i, SqeObject *rec, PyObject *o,
                     void **buf, unsigned *len);
int pu_conv_fd_list(const pu_argspec *sp, int i, SqeObject *rec, PyObject *o,
                    int **out, unsigned *count);
int pu_conv_sockaddr_opt(const pu_argspec *sp, int i, SqeObject *rec,
                         PyObject *o, int fd, const struct sockaddr **out,
                         socklen_t *outlen);
int pu_conv_pages(const pu_argspec *sp, int i, SqeObject *rec, PyObject *o,
                  void **buf, __u64 *len);
int pu_conv_futex(const pu_argspec *sp, int i, SqeObject *rec, PyObject *o,
                  const void **buf, unsigned *len);
int pu_check_futex(const pu_argspec *sp, int i, const void *buf, unsigned len,
                   unsigned flags);
/* convert_struct.c */
int pu_conv_ancdata(const pu_argspec *sp, int i, SqeObject *rec, PyObject *o,
                    void **out, unsigned *len);
int pu_conv_futexv(const pu_argspec *sp, int i, SqeObject *rec, PyObject *o,
                   void **out, unsigned *count);

/* Helpers of the converters, for the hand-written ones (convert_struct.c,
 * register/register.c): a sequence argument as a tuple copy (converters of its
 * items run Python code, which may change a list); an int field of item k
 * of argument i; the TypeError for a buffer the exporter refused; a futex
 * word's size and alignment; file descriptors into PyMem memory; a pin
 * into the record that stays sound whatever the exporter's code does. */
Py_buffer *pu_conv_pin(SqeObject *rec, PyObject *o, int flags);
PyObject *pu_seq_tuple(const pu_argspec *sp, int i, PyObject *o,
                       const char *expected);
int pu_conv_item_int(const pu_argspec *sp, int i, Py_ssize_t k, const char *field,
                     PyObject *o, long long lo, long long hi, long long *out);
int pu_conv_item_u64(const pu_argspec *sp, int i, Py_ssize_t k, const char *field,
                     PyObject *o, __u64 *out);
void pu_buffer_refused(const pu_argspec *sp, int i, Py_ssize_t k, PyObject *o,
                       const char *expected);
int pu_check_futex_word(const pu_argspec *sp, int i, Py_ssize_t k, const void *buf,
                        size_t len, unsigned long long flags);
int pu_fds_from(const pu_argspec *sp, int i, PyObject *o, int **out,
                unsigned *count);

/* The keyword-only arguments every op shares where no Sqe object is made
 * (common_args.c): IoUring.prep_NAME()'s user_data, sqe_flags,
 * buf_group and personality; AsyncRing.NAME()'s same but user_data, and
 * timeout= (seconds or None) on its awaitable forms. */
#define PU_MAX_CALL_ARGS 16
typedef struct {
    PyObject *data;                 /* user_data=, borrowed; NULL: not given */
    double timeout;                 /* AsyncRing's timeout= in seconds, < 0:
                                       none (rules->with_timeout) */
    uint8_t sqe_flags;
    uint16_t buf_group, personality;
} pu_common;

/* the call with the shared keywords taken out */
typedef struct {
    PyObject *stack[PU_MAX_CALL_ARGS];
    PyObject *const *args;
    PyObject *kwnames;              /* borrowed: the caller's or `owned` */
    PyObject *owned;                /* a new kwnames tuple, or NULL */
} pu_call_args;

/* what a form accepts: user_data or not, which IOSQE_* flags */
typedef struct {
    int with_data;
    unsigned allowed_flags;
    const char *flags_error;        /* the ValueError for another flag */
    int with_timeout;               /* AsyncRing's awaitable forms: timeout= */
} pu_common_rules;

int pu_common_args_init(void);
/* Take the shared keywords out of a vectorcall: 0, or -1 with an exception
 * set.  Py_XDECREF(out->owned) afterwards, in both cases. */
int pu_split_common(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                    pu_call_args *out, pu_common *c, const pu_common_rules *rules);
int pu_small_uint(PyObject *o, unsigned long max, const char *what,
                  unsigned long *out);

/* pu_sqe_prep() applies these after the op's own prep */
static inline void
pu_common_apply(SqeObject *rec, const pu_common *c)
{
    rec->sqe_flags = c->sqe_flags;
    rec->buf_group = c->buf_group;
    rec->personality = c->personality;
}

/* storage for an accept's peer address, used in ops.def call lines */
struct sockaddr *pu_rec_peer_addr(SqeObject *rec);
socklen_t *pu_rec_peer_addrlen(SqeObject *rec);


PyObject *pu_sqe_prep(SqeObject *self, const pu_opdef *op,
                      PyObject *const *args, Py_ssize_t nargs,
                      PyObject *kwnames);
/* read_many(), the module function of bulk_read.c */
extern PyMethodDef pu_bulk_methods[];

/* the fast form and prep_many (fast_prep.c) */
PyObject *pu_ring_prep(PyObject *self, const pu_opdef *op, PyObject *const *args,
                       Py_ssize_t nargs, PyObject *kwnames);
PyObject *pu_ring_prep_many(PyObject *self, PyObject *const *args,
                           Py_ssize_t nargs, PyObject *kwnames);
void pu_sqe_prep_again(SqeObject *self);
int pu_sqe_prep_failed(SqeObject *self, struct io_uring_sqe *sqe);

/* Run the op's generated prep (parse, convert, pin, fill) on an entry the
 * caller checked may be written (pu_sqe_prep(), or a record
 * pu_ring_get_sqe() just made for an op the kernel has); on failure leave
 * the entry a harmless NOP with nothing pinned.  0, or -1 with an
 * exception.  Inline: the fast forms and prep_many() run it per entry. */
static inline __attribute__((always_inline)) int
pu_sqe_prep_entry(SqeObject *self, const pu_opdef *op, PyObject *const *args,
                  Py_ssize_t nargs, PyObject *kwnames)
{
    struct io_uring_sqe *sqe = self->sqe;

    if (self->state == PU_PREPARED)
        pu_sqe_prep_again(self);
    /* else PU_NEW: the record is as pu_record_enter() zeroed it (no pins,
     * no op) or as a failed prep left it (released, op NULL) */
    self->state = PU_PREPARING;
    if (op->prep(self, sqe, args, nargs, kwnames) < 0)
        return pu_sqe_prep_failed(self, sqe);
    sqe->user_data = self->user_data;
    /* the fields every op shares, set with set_flags() and friends or the
     * common keywords, over what the op's prep (a liburing helper) set */
    self->op_flags = sqe->flags;
    sqe->flags |= self->sqe_flags;
    if (self->personality)
        sqe->personality = self->personality;
    if (self->buf_group)
        sqe->buf_group = self->buf_group;
    self->op = op;
    self->state = PU_PREPARED;
    return 0;
}


/* Converters run Python code (fileno(), __index__, __fspath__, buffer
 * exporters) that may submit the entry being prepared, hand its SQ slot to
 * another entry, or close the ring.  Each generated prep calls this between
 * its conversions and its liburing call: the SQE is written only while it
 * is still this record's. */
static inline int
pu_prep_entry_check(SqeObject *rec, struct io_uring_sqe *sqe, const char *fname)
{
    /* sq_owner: another thread is submitting without the GIL (a converter
     * let it run) */
    if (rec->sqe == sqe && rec->state == PU_PREPARING && PU_RING_USABLE(rec->ring) &&
        rec->ring->sq_owner == 0)
        return 0;
    return pu_err_entry_lost(rec, fname);
}

/* addresses (sockaddr.c) */
int pu_sockaddr_from_python(PyObject *o, int family, struct sockaddr_storage *ss,
                            socklen_t *len);
PyObject *pu_sockaddr_to_python(const struct sockaddr *sa, socklen_t len);


#endif
