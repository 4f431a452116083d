/* zcrx.c: zero-copy receive.  register_ifq() gives one receive queue of a
 * NIC to the ring (IORING_REGISTER_ZCRX_IFQ, Linux 6.15) with an area the
 * NIC writes packets into and a refill ring the program hands consumed
 * buffers back by; prep_recv_zc (ops.def, IORING_OP_RECV_ZC) then posts,
 * per chunk received, a completion naming where in the area the bytes are.
 *
 * The module owns both memories: it maps them, and they stay mapped until
 * the ring's fd is closed (teardown, pu_release_registrations()), since
 * the kernel may write the area and read the refill ring until then.
 * Python never sees the area: at reap time (pu_zcrx_take(), from
 * core/reap.c) the bytes are copied into a bytes object and the buffer
 * goes back to the kernel at once, so a chunk the program keeps can never
 * be overwritten by a later packet. */
#include "ops/op_helpers.h"   /* register/register.h, liburing_compat.h, pu_rec_state */
#include "methods_doc.h"

#include <errno.h>
#include <net/if.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#define PU_ZCRX_REG_NODEV 2u         /* ZCRX_REG_NODEV (Linux 6.19) */
#define PU_ZCRX_MAX_RQ 32768u        /* the kernel's IO_RQ_MAX_ENTRIES */

/* one registered interface queue, in RingObject.zcrx */
struct pu_zcrx {
    struct pu_zcrx *next;
    uint32_t id;                     /* the kernel's zcrx_id */
    unsigned char *area;
    size_t area_len;
    void *rq_mem;                    /* the refill ring's region */
    size_t rq_len;
    __u32 *khead, *ktail;            /* in rq_mem, at the kernel's offsets */
    struct io_uring_zcrx_rqe *rqes;
    uint32_t rq_tail, rq_entries;
    __u64 area_token;                /* the area's id, in a refill entry's off */
};

static void *
map_anon(size_t len)
{
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    /* as the ring's own memory: a child after fork() gets no copy, and
     * leaves these addresses alone (pu_zcrx_release) */
    (void)madvise(p, len, MADV_DONTFORK);
    return p;
}

/* The interface as an index: a name (socket.if_nametoindex()) or an int */
static int
interface_index(PyObject *o, unsigned *out, const char **name)
{
    if (PyUnicode_Check(o)) {
        char msg[300];
        *name = PyUnicode_AsUTF8(o);
        if (*name == NULL)
            return -1;
        *out = if_nametoindex(*name);
        if (*out == 0) {
            /* (socket.if_nametoindex() says it with no errno) */
            PyOS_snprintf(msg, sizeof(msg), "register_ifq(): no interface named "
                          "'%.200s'", *name);
            pu_err_errno_msg(ENODEV, msg);
            return -1;
        }
        return 0;
    }
    if (PyLong_Check(o)) {
        unsigned long v = PyLong_AsUnsignedLong(o);
        if (v == (unsigned long)-1 && PyErr_Occurred()) {
            PyErr_Clear();
            v = UINT32_MAX + 1ul;
        }
        if (v > UINT32_MAX) {
            PyErr_SetString(PyExc_OverflowError, "register_ifq(): interface index "
                            "out of range");
            return -1;
        }
        *out = (unsigned)v;
        return 0;
    }
    PyErr_Format(PyExc_TypeError, "register_ifq(): interface must be a name (str) or "
                 "an index (int), not %.100s", Py_TYPE(o)->tp_name);
    return -1;
}

static PyObject *
ifq_error(int err, const char *name, unsigned ifindex, unsigned rxq)
{
    char msg[400];
    const char *why = NULL;

    if (err == EOPNOTSUPP)
        why = "this interface's driver cannot give a receive queue to io_uring "
              "(zero-copy receive needs a NIC with header split, flow steering "
              "and the queue management API: bnxt, mlx5, gve, fbnic; not lo, "
              "veth or virtio_net)";
    else if (err == EPERM)
        why = "zero-copy receive needs CAP_NET_ADMIN";
    else if (err == EINVAL)
        why = "the kernel refused the request (a flag it does not know, a queue "
              "already given to another ring, or an area it cannot use)";
    if (why == NULL)
        return pu_err_errno(err);
    if (name != NULL)
        PyOS_snprintf(msg, sizeof(msg), "register_ifq(): %.60s rx queue %u: %s",
                      name, rxq, why);
    else
        PyOS_snprintf(msg, sizeof(msg), "register_ifq(): interface %u rx queue %u: %s",
                      ifindex, rxq, why);
    return pu_err_errno_msg(err, msg);
}

static const char *const ifq_kw[] = {"interface", "rx_queue", "area_size",
                                     "rq_entries", "flags", NULL};
static const pu_argspec ifq_spec = {"register_ifq", ifq_kw, 1, 5, 3};

/* register_ifq(interface, rx_queue=0, *, area_size=4 MiB, rq_entries=4096,
 * flags=0) -> the zcrx id for prep_recv_zc(ifq=) */
static PyObject *
Ring_register_ifq(RingObject *self, PyObject *const *args, Py_ssize_t nargs,
                  PyObject *kwnames)
{
    PyObject *argv[5] = {NULL, NULL, NULL, NULL, NULL};
    unsigned ifindex = 0, rxq = 0, entries = 4096, flags = 0, rounded;
    __u64 area_size = 4u << 20;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    struct io_uring_zcrx_area_reg area;
    struct io_uring_region_desc region;
    struct io_uring_zcrx_ifq_reg reg;
    struct pu_zcrx *z;
    const char *name = NULL;
    unsigned op, fd;
    int ret;

    if (pu_parse_args(&ifq_spec, args, nargs, kwnames, argv) < 0 ||
        interface_index(argv[0], &ifindex, &name) < 0 ||
        (argv[1] != NULL && pu_conv_u32(&ifq_spec, 1, argv[1], &rxq) < 0) ||
        (argv[2] != NULL && pu_conv_u64(&ifq_spec, 2, argv[2], &area_size) < 0) ||
        (argv[3] != NULL && pu_conv_u32(&ifq_spec, 3, argv[3], &entries) < 0) ||
        (argv[4] != NULL && pu_conv_u32(&ifq_spec, 4, argv[4], &flags) < 0))
        return NULL;
    if (flags & ~PU_ZCRX_REG_NODEV) {
        PyErr_SetString(PyExc_ValueError, "register_ifq(): flags may only be "
                        "ZCRX_REG_NODEV");
        return NULL;
    }
    if (area_size == 0 || area_size % page != 0 || area_size > ((__u64)1 << 40)) {
        PyErr_Format(PyExc_ValueError, "register_ifq(): area_size must be whole pages "
                     "of %zu bytes, at most 1 TiB", page);
        return NULL;
    }
    if (entries == 0 || entries > PU_ZCRX_MAX_RQ) {
        PyErr_Format(PyExc_ValueError, "register_ifq(): rq_entries must be 1 to %u",
                     PU_ZCRX_MAX_RQ);
        return NULL;
    }
    /* after the conversions, which run Python code */
    if (pu_ring_check(self) < 0)
        return NULL;
    /* the kernel's own conditions (io_register_zcrx_ifq()), said in words:
     * a completion carries its offset in the entry's second half, and the
     * refill ring is read in the ring's task context */
    if (!(self->ring.flags & IORING_SETUP_CQE32) ||
        !(self->ring.flags & IORING_SETUP_DEFER_TASKRUN)) {
        PyErr_SetString(PyExc_ValueError, "register_ifq(): zero-copy receive needs a "
                        "ring set up with IORING_SETUP_CQE32 | IORING_SETUP_SINGLE_ISSUER"
                        " | IORING_SETUP_DEFER_TASKRUN");
        return NULL;
    }
    /* the kernel rounds the entries up to a power of two, and puts its
     * head and tail before them: a page is room enough for those */
    for (rounded = 1; rounded < entries; rounded <<= 1)
        ;
    z = PyMem_Calloc(1, sizeof(*z));
    if (z == NULL)
        return PyErr_NoMemory();
    z->area_len = (size_t)area_size;
    z->rq_len = (page + (size_t)rounded * sizeof(struct io_uring_zcrx_rqe) + page - 1) /
                page * page;
    z->area = map_anon(z->area_len);
    z->rq_mem = z->area != NULL ? map_anon(z->rq_len) : NULL;
    if (z->rq_mem == NULL) {
        PyErr_SetFromErrno(PyExc_OSError);
        goto fail;
    }
    memset(&area, 0, sizeof(area));
    area.addr = (__u64)(uintptr_t)z->area;
    area.len = (__u64)z->area_len;
    memset(&region, 0, sizeof(region));
    region.user_addr = (__u64)(uintptr_t)z->rq_mem;
    region.size = (__u64)z->rq_len;
    region.flags = IORING_MEM_REGION_TYPE_USER;
    memset(&reg, 0, sizeof(reg));
    reg.if_idx = ifindex;
    reg.if_rxq = rxq;
    reg.rq_entries = rounded;
    reg.flags = flags;
    reg.area_ptr = (__u64)(uintptr_t)&area;
    reg.region_ptr = (__u64)(uintptr_t)&region;
    /* io_uring_register_ifq(), by the index after close_ring_fd() */
    op = IORING_REGISTER_ZCRX_IFQ;
    fd = pu_register_fd(self, &op);
    ret = io_uring_register(fd, op, &reg, 1);
    if (ret < 0) {
        ifq_error(-ret, name, ifindex, rxq);
        goto fail;
    }
    z->id = reg.zcrx_id;
    z->rq_entries = reg.rq_entries;
    z->khead = (__u32 *)((char *)z->rq_mem + reg.offsets.head);
    z->ktail = (__u32 *)((char *)z->rq_mem + reg.offsets.tail);
    z->rqes = (struct io_uring_zcrx_rqe *)((char *)z->rq_mem + reg.offsets.rqes);
    z->rq_tail = IO_URING_READ_ONCE(*z->ktail);
    z->area_token = area.rq_area_token;
    z->next = self->zcrx;
    self->zcrx = z;   /* until teardown: pu_zcrx_release() */
    return PyLong_FromUnsignedLong(z->id);
fail:
    /* the kernel let go of both when it refused */
    if (z->rq_mem != NULL)
        munmap(z->rq_mem, z->rq_len);
    if (z->area != NULL)
        munmap(z->area, z->area_len);
    PyMem_Free(z);
    return NULL;
}

static struct pu_zcrx *
find(RingObject *r, uint32_t id)
{
    struct pu_zcrx *z = r->zcrx;
    while (z != NULL && z->id != id)
        z = z->next;
    return z;
}

/* ---- the op (ops.def recv_zc) ---- */

struct pu_recv_zc_state {
    uint32_t ifq;
};

/* prep_recv_zc's record state: which ifq its completions name offsets of.
 * Nothing is refused here: an ifq the ring does not have is the kernel's
 * to refuse (-EINVAL), which is also its answer on a ring without
 * IORING_SETUP_CQE32, where register_ifq() cannot succeed; a completion
 * naming no area of the module's is never read (pu_zcrx_take). */
int
pu_rec_recv_zc(SqeObject *rec, unsigned ifq)
{
    struct pu_recv_zc_state *st = pu_rec_state(rec, sizeof(*st));

    if (st == NULL)
        return -1;
    st->ifq = ifq;
    return 0;
}

/* getresult(): the bytes copied at reap time; the final completion (no
 * IORING_CQE_F_MORE) carries no data and gives its res */
PyObject *
pu_result_recv_zc(CqeObject *q)
{
    if (q->result != NULL) {
        Py_INCREF(q->result);
        return q->result;
    }
    return pu_long(q->res);
}

/* From the reaping loop, for every completion of a record on a ring with
 * an ifq: when it is a RECV_ZC chunk, copy its bytes into *out and hand
 * the buffer back to the kernel.  0: nothing to take; 1: taken; -1: no
 * memory, the buffer is not given back (the completion stays in the CQ
 * and comes again). */
int
pu_zcrx_take(RingObject *r, SqeObject *rec, const struct io_uring_cqe *c,
             PyObject **out)
{
    const struct pu_recv_zc_state *st = rec->op_state;
    const struct io_uring_zcrx_cqe *zc = (const void *)(c + 1);
    struct pu_zcrx *z;
    struct io_uring_zcrx_rqe *rqe;
    __u64 off;
    PyObject *b;

    if (rec->op == NULL || rec->op->opcode != IORING_OP_RECV_ZC || st == NULL ||
        !(c->flags & IORING_CQE_F_MORE) || c->res <= 0 ||
        !(r->ring.flags & IORING_SETUP_CQE32) || (z = find(r, st->ifq)) == NULL)
        return 0;
    off = zc->off & ~IORING_ZCRX_AREA_MASK;
    if (off > z->area_len || (size_t)c->res > z->area_len - off)
        return 0;   /* not in our area: never read outside it */
    b = PyBytes_FromStringAndSize((const char *)z->area + off, c->res);
    if (b == NULL)
        return -1;
    /* give the buffer back.  The refill ring is full only when the kernel
     * has not taken back as many buffers as it has entries; the buffer is
     * then dropped from the pool (upstream's example does the same), never
     * written over an entry the kernel has not read. */
    if (z->rq_tail - io_uring_smp_load_acquire(z->khead) < z->rq_entries) {
        rqe = &z->rqes[z->rq_tail & (z->rq_entries - 1)];
        rqe->off = off | z->area_token;
        rqe->len = (__u32)c->res;
        rqe->__pad = 0;
        io_uring_smp_store_release(z->ktail, ++z->rq_tail);
    }
    *out = b;
    return 1;
}

/* At teardown, after the ring fd is closed: the kernel has let go */
void
pu_zcrx_release(RingObject *r)
{
    int ours = r->fork_generation == pu_fork_generation;

    while (r->zcrx != NULL) {
        struct pu_zcrx *z = r->zcrx;
        r->zcrx = z->next;
        if (ours) {
            /* (a child after fork() has no copy there: MADV_DONTFORK) */
            munmap(z->rq_mem, z->rq_len);
            munmap(z->area, z->area_len);
        }
        PyMem_Free(z);
    }
}

/* When operations were leaked: one may still receive into the area */
void
pu_zcrx_leak(RingObject *r)
{
    r->zcrx = NULL;
}

PyMethodDef pu_zcrx_methods[] = {
    {"register_ifq", (PyCFunction)(void (*)(void))Ring_register_ifq,
     METH_FASTCALL | METH_KEYWORDS, PU_DOC_IoUring_register_ifq},
    {NULL, NULL, 0, NULL},
};
