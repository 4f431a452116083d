/* op_helpers.c: the hand-written parts that ops.def entries name: builders
 * of kernel structs kept in the record (`call` lines) and result makers
 * (`result` lines).  Each serves every op of its shape. */
#include "ops/op_helpers.h"

#include <limits.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/wait.h>

/* Zeroed memory in the record that the op's result maker reads later (the
 * record keeps it until the Sqe is freed, not just until completion). */
void *
pu_rec_state(SqeObject *rec, size_t size)
{
    void *p = pu_rec_alloc(rec, size ? size : 1);
    if (p != NULL)
        rec->op_state = p;
    return p;
}

/* ---- openat2: struct open_how in the record ---- */

struct open_how *
pu_rec_open_how(SqeObject *rec, __u64 flags, __u64 mode, __u64 resolve)
{
    struct open_how *how = pu_rec_alloc(rec, sizeof(*how));
    if (how != NULL) {
        memset(how, 0, sizeof(*how));
        how->flags = flags;
        how->mode = mode;
        how->resolve = resolve;
    }
    return how;
}

/* ---- poll_update: the user data it gives the poll it updates ----
 *
 * The kernel's user_data of every record stays the runtime's (generation
 * and slot): with IORING_POLL_UPDATE_USER_DATA the kernel is given the
 * poll's own user_data as the new one, which changes nothing there and
 * still fails with -ENOENT when the poll is gone.  What the update
 * changes is the poll's Python user data, when the update's
 * own completion is reaped with success, so completions reaped before it
 * keep the old data in reap()'s tuples and the later ones have the new. */
struct pu_poll_update {
    __u64 target;                   /* the poll's user_data */
    int keep;                       /* rec->keep[] index of the new data */
};

int
pu_rec_poll_update(SqeObject *rec, __u64 target, PyObject *new_data, unsigned flags)
{
    struct pu_poll_update *st;

    if (!(flags & IORING_POLL_UPDATE_USER_DATA))
        return 0;
    st = pu_rec_state(rec, sizeof(*st));
    if (st == NULL || pu_rec_keep(rec, new_data != NULL ? new_data : Py_None) < 0)
        return -1;
    st->target = target;
    st->keep = rec->nkeep - 1;
    return 0;
}

/* ops.def `complete`: the poll's data becomes the new object; the old one
 * takes its place among the update's kept objects and goes with them at
 * the update's release (after the reap, as every release of user data) */
void
pu_poll_update_complete(RingObject *r, SqeObject *rec, int32_t res)
{
    struct pu_poll_update *st = rec->op_state;
    SqeObject *poll;
    PyObject *data;

    if (st == NULL || res < 0 || (poll = pu_record_lookup(r, st->target)) == NULL)
        return;
    data = rec->keep[st->keep];
    if (poll->data == NULL) {
        Py_INCREF(Py_None);
        poll->data = Py_None;
    }
    rec->keep[st->keep] = poll->data;   /* the references move */
    poll->data = data;
}

/* ---- sendmsg ---- */


struct msghdr *
pu_rec_msghdr(SqeObject *rec, struct iovec *iov, unsigned niov, void *control,
              unsigned controllen, const struct sockaddr *addr, socklen_t addrlen)
{
    struct msghdr *m = pu_rec_alloc(rec, sizeof(*m));
    if (m == NULL)
        return NULL;
    m->msg_iov = iov;
    m->msg_iovlen = niov;
    m->msg_control = control;
    m->msg_controllen = controllen;
    m->msg_name = (void *)addr;
    m->msg_namelen = addr != NULL ? addrlen : 0;
    return m;
}

/* ---- recvmsg: a msghdr with room for data, control and the sender ---- */

typedef struct {
    struct msghdr m;
    struct iovec iov;
    struct sockaddr_storage name;
    /* data, then control, follow */
} recvmsg_state;

static PyObject *ancdata_list(struct msghdr *m);

struct msghdr *
pu_rec_recvmsg(SqeObject *rec, unsigned bufsize, unsigned ancbufsize)
{
    recvmsg_state *st;
    /* the control buffer holds struct cmsghdr: keep it aligned */
    size_t data_room = ((size_t)bufsize + _Alignof(struct cmsghdr) - 1) &
                       ~(_Alignof(struct cmsghdr) - 1);
    if ((size_t)bufsize + ancbufsize > (size_t)INT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "recvmsg buffers are too large");
        return NULL;
    }
    st = pu_rec_state(rec, sizeof(*st) + data_room + ancbufsize);
    if (st == NULL)
        return NULL;
    st->iov.iov_base = (char *)(st + 1);
    st->iov.iov_len = bufsize;
    st->m.msg_iov = &st->iov;
    st->m.msg_iovlen = 1;
    st->m.msg_name = &st->name;
    st->m.msg_namelen = sizeof(st->name);
    st->m.msg_control = ancbufsize ? (char *)(st + 1) + data_room : NULL;
    st->m.msg_controllen = ancbufsize;
    return &st->m;
}

/* (data, ancdata, msg_flags, address), as socket.recvmsg() returns */
PyObject *
pu_result_recvmsg(CqeObject *q)
{
    recvmsg_state *st = q->sqe->op_state;
    PyObject *anc, *addr, *res;

    anc = ancdata_list(&st->m);
    if (anc == NULL)
        return NULL;
    if (st->m.msg_namelen > 0) {
        addr = pu_sockaddr_to_python((struct sockaddr *)&st->name, st->m.msg_namelen);
    } else {
        addr = Py_None;
        Py_INCREF(addr);
    }
    if (addr == NULL) {
        Py_DECREF(anc);
        return NULL;
    }
    res = Py_BuildValue("(y#NiN)", (char *)st->iov.iov_base, (Py_ssize_t)q->res,
                        anc, st->m.msg_flags, addr);
    return res;
}

/* ancdata as socket.recvmsg() gives it: [(level, type, data)] from the
 * control bytes m describes */
static PyObject *
ancdata_list(struct msghdr *m)
{
    PyObject *anc = PyList_New(0);
    struct cmsghdr *c;

    if (anc == NULL)
        return NULL;
    for (c = m->msg_controllen ? CMSG_FIRSTHDR(m) : NULL; c != NULL; c = CMSG_NXTHDR(m, c)) {
        size_t dlen = c->cmsg_len - (size_t)((char *)CMSG_DATA(c) - (char *)c);
        PyObject *t = Py_BuildValue("(iiy#)", c->cmsg_level, c->cmsg_type,
                                    (char *)CMSG_DATA(c), (Py_ssize_t)dlen);
        if (t == NULL || PyList_Append(anc, t) < 0) {
            Py_XDECREF(t);
            Py_DECREF(anc);
            return NULL;
        }
        Py_DECREF(t);
    }
    return anc;
}

/* One recvmsg_multishot completion: the provided buffer holds a struct
 * io_uring_recvmsg_out, then the name and control areas (as big as the
 * msghdr given at prep said), then the payload (io_uring_recvmsg_validate
 * and friends, liburing's).  As socket.recvmsg(): (data, ancdata,
 * msg_flags, address); a payload or name cut short by the buffer's size
 * is what fitted, and msg_flags has MSG_TRUNC / MSG_CTRUNC as the kernel
 * set them. */
PyObject *
pu_result_recvmsg_multishot(CqeObject *q)
{
    recvmsg_state *st = q->sqe->op_state;
    struct io_uring_recvmsg_out out;
    struct msghdr m;
    size_t name_room = st->m.msg_namelen, control_room = st->m.msg_controllen;
    size_t len, head = sizeof(out) + name_room + control_room, payload;
    const char *buf;
    PyObject *anc, *addr;

    if (q->result == NULL || !PyBytes_Check(q->result))
        return PyLong_FromLong(q->res);     /* no buffer picked */
    buf = PyBytes_AS_STRING(q->result);
    len = (size_t)PyBytes_GET_SIZE(q->result);
    if (len < head) {
        PyErr_Format(PyExc_ValueError, "recvmsg_multishot: a %zu-byte buffer cannot hold "
                     "the %zu-byte header, name and control areas (use bigger "
                     "buffers)", len, head);
        return NULL;
    }
    memcpy(&out, buf, sizeof(out));
    memset(&m, 0, sizeof(m));
    m.msg_control = (void *)(buf + sizeof(out) + name_room);
    m.msg_controllen = out.controllen < control_room ? out.controllen : control_room;
    anc = ancdata_list(&m);
    if (anc == NULL)
        return NULL;
    if (out.namelen > 0)
        addr = pu_sockaddr_to_python((const struct sockaddr *)(buf + sizeof(out)),
                                     (socklen_t)(out.namelen < name_room ? out.namelen
                                                                          : name_room));
    else {
        addr = Py_None;
        Py_INCREF(addr);
    }
    if (addr == NULL) {
        Py_DECREF(anc);
        return NULL;
    }
    payload = len - head < out.payloadlen ? len - head : out.payloadlen;
    return Py_BuildValue("(y#NIN)", buf + head, (Py_ssize_t)payload, anc, out.flags, addr);
}

/* ---- statx ---- */

static PyObject *
ts_float(struct statx_timestamp t)
{
    return PyFloat_FromDouble((double)t.tv_sec + (double)t.tv_nsec * 1e-9);
}

static PyObject *
ts_ns(struct statx_timestamp t)
{
    PyObject *s = PyLong_FromLongLong(t.tv_sec), *g, *r;
    if (s == NULL)
        return NULL;
    g = PyLong_FromLong(1000000000L);
    r = g ? PyNumber_Multiply(s, g) : NULL;
    Py_DECREF(s);
    Py_XDECREF(g);
    if (r == NULL)
        return NULL;
    s = PyLong_FromUnsignedLong(t.tv_nsec);
    g = s ? PyNumber_Add(r, s) : NULL;
    Py_DECREF(r);
    Py_XDECREF(s);
    return g;
}

/* os.<name>, looked up once: a fresh lookup per result would leave a
 * string per call in CPython's type-attribute cache */
static PyObject *
os_type(PyObject **cache, const char *name)
{
    if (*cache == NULL) {
        PyObject *os = PyImport_ImportModule("os");
        if (os == NULL)
            return NULL;
        *cache = PyObject_GetAttrString(os, name);
        Py_DECREF(os);
    }
    Py_XINCREF(*cache);
    return *cache;
}

/* an os.stat_result, with the fields os.stat() users know */
PyObject *
pu_result_statx(CqeObject *q)
{
    static PyObject *stat_result;
    static int has_birthtime = -1, has_birthtime_ns = -1;
    struct statx *st = q->sqe->op_state;
    PyObject *type, *seq, *extra, *res = NULL;

    type = os_type(&stat_result, "stat_result");
    if (type == NULL)
        return NULL;
    if (has_birthtime < 0) {
        has_birthtime = PyObject_HasAttrString(type, "st_birthtime");
        has_birthtime_ns = PyObject_HasAttrString(type, "st_birthtime_ns");
    }
    seq = Py_BuildValue("(IKKIIIKLLL)", (unsigned)st->stx_mode,
                        (unsigned long long)st->stx_ino,
                        (unsigned long long)makedev(st->stx_dev_major, st->stx_dev_minor),
                        (unsigned)st->stx_nlink, (unsigned)st->stx_uid,
                        (unsigned)st->stx_gid, (unsigned long long)st->stx_size,
                        (long long)st->stx_atime.tv_sec,
                        (long long)st->stx_mtime.tv_sec,
                        (long long)st->stx_ctime.tv_sec);
    extra = Py_BuildValue("{sNsNsNsNsNsNsIsKsKsNsN}",
                          "st_atime", ts_float(st->stx_atime),
                          "st_mtime", ts_float(st->stx_mtime),
                          "st_ctime", ts_float(st->stx_ctime),
                          "st_atime_ns", ts_ns(st->stx_atime),
                          "st_mtime_ns", ts_ns(st->stx_mtime),
                          "st_ctime_ns", ts_ns(st->stx_ctime),
                          "st_blksize", (unsigned)st->stx_blksize,
                          "st_blocks", (unsigned long long)st->stx_blocks,
                          "st_rdev", (unsigned long long)makedev(st->stx_rdev_major,
                                                                 st->stx_rdev_minor),
                          "st_birthtime", ts_float(st->stx_btime),
                          "st_birthtime_ns", ts_ns(st->stx_btime));
    if (seq != NULL && extra != NULL) {
        /* stat_result takes the fields it knows; older Pythons lack
         * st_birthtime, so offer it only where it exists */
        if (!has_birthtime)
            PyDict_DelItemString(extra, "st_birthtime");
        if (!has_birthtime_ns)
            PyDict_DelItemString(extra, "st_birthtime_ns");
        res = PyObject_CallFunctionObjArgs(type, seq, extra, NULL);
    }
    Py_XDECREF(seq);
    Py_XDECREF(extra);
    Py_DECREF(type);
    return res;
}

/* ---- pipe: (read_fd, write_fd) ---- */

PyObject *
pu_result_pipe(CqeObject *q)
{
    int *fds = q->sqe->op_state;
    return Py_BuildValue("(ii)", fds[0], fds[1]);
}

/* ---- epoll_wait: [(fd, events)], as select.epoll.poll() returns ---- */

PyObject *
pu_result_epoll_wait(CqeObject *q)
{
    struct epoll_event *ev = q->sqe->op_state;
    PyObject *list = PyList_New(q->res);
    if (list == NULL)
        return NULL;
    for (int k = 0; k < q->res; k++) {
        PyObject *t = Py_BuildValue("(iI)", ev[k].data.fd, (unsigned)ev[k].events);
        if (t == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, k, t);
    }
    return list;
}

/* ---- waitid: an os.waitid_result, or None when no child was waitable ---- */

PyObject *
pu_result_waitid(CqeObject *q)
{
    static PyObject *waitid_result;
    siginfo_t *si = q->sqe->op_state;
    PyObject *type, *res;
    if (si->si_pid == 0)
        Py_RETURN_NONE;
    type = os_type(&waitid_result, "waitid_result");
    if (type == NULL)
        return NULL;
    res = PyObject_CallFunction(type, "((iiiii))", (int)si->si_pid, (int)si->si_uid,
                                si->si_signo, si->si_status, si->si_code);
    Py_DECREF(type);
    return res;
}

/* ---- cmd_getsockname: the address, as socket.getsockname() gives it ---- */

PyObject *
pu_result_sockname(CqeObject *q)
{
    return pu_sockaddr_to_python((struct sockaddr *)&q->sqe->addr, q->sqe->peerlen);
}

/* ---- cmd_tx_timestamp: (key, type, hardware, seconds, nanoseconds) ----
 * The kernel puts the send's key in res, the SCM_TSTAMP_* type and the
 * hardware bit in the flags, and a struct io_timespec in the CQE32 entry's
 * second half (io_process_timestamp_skb()). */

PyObject *
pu_result_tx_timestamp(CqeObject *q)
{
    if (!q->has_big) {
        PyErr_SetString(PyExc_ValueError, "getresult(): a TX timestamp needs a ring "
                        "set up with IORING_SETUP_CQE32");
        return NULL;
    }
    return Py_BuildValue("(IIOKK)", (unsigned)q->res,
                         (unsigned)(q->flags >> IORING_TIMESTAMP_TYPE_SHIFT),
                         (q->flags & IORING_CQE_F_TSTAMP_HW) ? Py_True : Py_False,
                         (unsigned long long)q->big[0], (unsigned long long)q->big[1]);
}

/* 128-byte operations need 128-byte entries: an IORING_SETUP_SQE128 ring
 * (mixed rings are refused at setup) */
int
pu_rec_need_sqe128(SqeObject *rec, const char *fname)
{
    if (rec->ring->ring.flags & IORING_SETUP_SQE128)
        return 0;
    PyErr_Format(PyExc_ValueError, "%s(): this ring's entries are 64 bytes; set it "
                 "up with IORING_SETUP_SQE128", fname);
    return -1;
}
