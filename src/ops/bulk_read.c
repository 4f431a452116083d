/* bulk_read.c: read_many(), whole files read with the per-file loop in C.
 *
 * files.read_files() through WorkQueue pays the interpreter for every
 * entry and every completion (about 15 us a cached 4 KiB file, against 8
 * for a plain open().read() loop).  Here the loop is C: per file one
 * linked chain in one submission,
 *
 *     openat_direct(path -> slot)  -LINK->  read(slot, 64 KiB, pos)
 *                                  -HARDLINK->  read(slot, 64 KiB, pos)
 *
 * with reads at the file position (offset -1), so the second read goes on
 * where the first stopped; a second read that returns nothing is the end
 * of file, without a statx (punted to io-wq, dearer than the read) and
 * without taking a short read for the end (procfs files give a page at a
 * time).  A file longer than the two reads goes on with reads straight
 * into its bytes object, sized by a stat() of the path (plus one byte, as
 * FileIO.readall() does; 2 MiB, then doubling, where stat() knows no
 * more), until one returns nothing.  Those reads go to the kernel's io-wq
 * workers (IOSQE_ASYNC): the faults of the fresh pages and the copy into
 * them are most of a large file's cost, and workers do them on every core
 * while this thread goes on with the other files, as a thread pool's
 * threads do.  The slot is
 * never closed by an entry of its own: the next file's openat_direct into
 * it replaces the file (the kernel drops the old one), and the ring's
 * teardown closes the last ones.  HARDLINK: a short first read fails a
 * plain link in the kernel (req_set_fail), which would cancel the second.
 *
 * The ring is the call's own (a file table it registers, flags it picks),
 * set up and torn down inside the call, so nothing of it is ever visible
 * to Python.  LIFETIME: the paths (bytes) and every buffer a read targets
 * stay referenced until the call has reaped every completion; on an error
 * or a signal it cancels what is in flight and waits for all of it, as
 * the ring's teardown does (core/teardown.c), and only then frees; if
 * the kernel has not let go after 10 s the memory is leaked, on purpose,
 * with a ResourceWarning. */
#include "ops/opdef.h"
#include "methods_doc.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BR_FIRST (64 * 1024)        /* each of the chain's two reads */
#define BR_BIG_START (2 << 20)      /* a file past the chain: its first room */
#define BR_MAX_GROW (64 << 20)      /* then doubling, by at most this */
#define BR_MAX_DEPTH 4096
#define BR_ROUND_NS (250 * 1000 * 1000)    /* the longest wait between rounds */

#define BR_KICK_ROUNDS 4      /* rounds with nothing in before a kick */

/* user_data: slot << 3 | kind; K_KICK and K_CANCEL are the call's own
 * entries, of no file */
enum { K_OPEN, K_READ1, K_READ2, K_MORE, K_KICK = 6, K_CANCEL = 7 };

typedef struct {
    Py_ssize_t file;        /* index in paths, -1 when free */
    int pending;            /* completions still to come for it */
    int32_t res[3];         /* open, read1, read2 */
    char *scratch;          /* 2 * BR_FIRST: the chain's reads land here */
    PyObject *big;          /* bytes being filled past the chain */
    Py_ssize_t total;       /* bytes in big */
} br_slot;

typedef struct {
    struct io_uring ring;
    int ring_up;
    Py_ssize_t n;
    PyObject **enc;         /* the paths, fs-encoded (the kernel reads them) */
    PyObject *given;        /* the paths as given (sequence), for errors */
    PyObject *out;          /* the result list */
    br_slot *slots;
    unsigned nslots;
    unsigned inflight;      /* completions to come, over all slots */
    unsigned long long reaped;  /* completions of files taken so far */
    int raise_errors;
    Py_ssize_t next;        /* next file to start */
    Py_ssize_t left;        /* files not finished */
    int stop;               /* stop starting files (an error to raise) */
    Py_ssize_t err_file;    /* the file whose error is raised, or -1 */
    int err_no;
    PyObject *progress;
    unsigned long long bytes_done;
} br_state;

static const char *const rm_kw[] = {"paths", "depth", "errors", "progress", NULL};
static const pu_argspec rm_spec = {"read_many", rm_kw, 1, 4, 2};

static struct io_uring_sqe *
br_sqe(br_state *st)
{
    /* callers checked there is room (io_uring_sq_space_left) */
    struct io_uring_sqe *sqe = io_uring_get_sqe(&st->ring);
    memset(sqe, 0, sizeof(*sqe));   /* the module owns the SQE's contents */
    return sqe;
}

static void
br_start(br_state *st, unsigned k)
{
    br_slot *s = &st->slots[k];
    struct io_uring_sqe *sqe;
    Py_ssize_t i = st->next++;

    s->file = i;
    s->pending = 3;
    s->res[0] = s->res[1] = s->res[2] = 0;
    s->total = 0;
    sqe = br_sqe(st);
    /* (no O_CLOEXEC: a direct open refuses it) */
    io_uring_prep_openat_direct(sqe, AT_FDCWD, PyBytes_AS_STRING(st->enc[i]),
                                O_RDONLY, 0, k);
    sqe->flags |= IOSQE_IO_LINK;
    sqe->user_data = (__u64)k << 3 | K_OPEN;
    sqe = br_sqe(st);
    io_uring_prep_read(sqe, (int)k, s->scratch, BR_FIRST, (__u64)-1);
    sqe->flags |= IOSQE_FIXED_FILE | IOSQE_IO_HARDLINK;
    sqe->user_data = (__u64)k << 3 | K_READ1;
    sqe = br_sqe(st);
    io_uring_prep_read(sqe, (int)k, s->scratch + BR_FIRST, BR_FIRST, (__u64)-1);
    sqe->flags |= IOSQE_FIXED_FILE;
    sqe->user_data = (__u64)k << 3 | K_READ2;
    st->inflight += 3;
}

/* one more read into s->big past s->total, growing it when full */
static int
br_more(br_state *st, unsigned k)
{
    br_slot *s = &st->slots[k];
    Py_ssize_t cap = PyBytes_GET_SIZE(s->big);
    struct io_uring_sqe *sqe;

    if (s->total == cap) {
        /* nothing is in flight for this file: the buffer may move */
        Py_ssize_t grow = cap < BR_MAX_GROW ? cap : BR_MAX_GROW;
        if (_PyBytes_Resize(&s->big, cap + grow) < 0)
            return -1;
        cap += grow;
    }
    sqe = br_sqe(st);
    io_uring_prep_read(sqe, (int)k, PyBytes_AS_STRING(s->big) + s->total,
                       (unsigned)(cap - s->total), (__u64)-1);
    /* to a worker: its page faults and copy run beside this thread (1000
     * cached files of 1 MiB: 1,860 files/s inline after a MADV_POPULATE_WRITE
     * of the room, 2,380 here; 256 KiB files +6%; cold files the same) */
    sqe->flags |= IOSQE_FIXED_FILE | IOSQE_ASYNC;
    sqe->user_data = (__u64)k << 3 | K_MORE;
    s->pending = 1;
    st->inflight++;
    return 0;
}

/* OSError(errno, strerror, path), the path as given */
static PyObject *
br_error(br_state *st, Py_ssize_t i, int err)
{
    PyObject *p = PySequence_GetItem(st->given, i), *exc;

    if (p == NULL)
        return NULL;
    exc = PyObject_CallFunction(PyExc_OSError, "isO", err, strerror(err), p);
    Py_DECREF(p);
    return exc;
}

/* the file in slot k is done: data (a new reference, stolen) or err */
static int
br_finish(br_state *st, unsigned k, PyObject *data, int err)
{
    br_slot *s = &st->slots[k];
    Py_ssize_t i = s->file;

    s->file = -1;
    Py_CLEAR(s->big);
    st->left--;
    if (data == NULL) {
        if (st->raise_errors) {
            if (!st->stop) {
                st->stop = 1;
                st->err_file = i;
                st->err_no = err;
            }
            return 0;
        }
        data = br_error(st, i, err);
        if (data == NULL)
            return -1;
    } else {
        st->bytes_done += (unsigned long long)PyBytes_GET_SIZE(data);
    }
    PyList_SET_ITEM(st->out, i, data);   /* the slot held None, borrowed */
    Py_DECREF(Py_None);
    return 0;
}

/* the room for a file past the chain: its size by stat() plus one, or
 * BR_BIG_START when stat() knows no more (see br_chain_done) */
static Py_ssize_t
br_room(br_state *st, br_slot *s)
{
    struct stat sb;
    int rc;

    Py_BEGIN_ALLOW_THREADS
    rc = stat(PyBytes_AS_STRING(st->enc[s->file]), &sb);
    Py_END_ALLOW_THREADS
    /* (equal: a file of exactly 128 KiB needs one byte of room to see
     * its end, not 2 MiB) */
    if (rc == 0 && S_ISREG(sb.st_mode) && sb.st_size >= s->total &&
        sb.st_size < PY_SSIZE_T_MAX - 1)
        return (Py_ssize_t)sb.st_size + 1;
    return BR_BIG_START;
}

/* the chain of slot k is in: the file is done, or reads on */
static int
br_chain_done(br_state *st, unsigned k)
{
    br_slot *s = &st->slots[k];
    int32_t r1 = s->res[1], r2 = s->res[2];
    PyObject *data;

    if (s->res[0] < 0)
        return br_finish(st, k, NULL, -s->res[0]);
    if (r1 < 0)
        return br_finish(st, k, NULL, -r1);
    if (r2 < 0)
        return br_finish(st, k, NULL, -r2);
    if (r2 > 0 && r1 < BR_FIRST)
        /* a short first read (procfs): the second went on from there */
        memmove(s->scratch + r1, s->scratch + BR_FIRST, (size_t)r2);
    if (r2 == 0) {
        data = PyBytes_FromStringAndSize(s->scratch, r1);
        if (data == NULL)
            return -1;
        return br_finish(st, k, data, 0);
    }
    /* more to come: read on straight into the result.  Its room is the
     * size stat() gives plus one byte (the read that returns nothing needs
     * room to ask), as FileIO.readall() does: a buffer of the right size
     * is never grown (a realloc copies what it holds) nor shrunk (a shrink
     * of an mmap()ed block is an mremap() taking the mm's lock, where the
     * pool's threads fault pages in), and no page of it goes untouched.
     * One stat of a cached path is a microsecond, against the hundreds a
     * megabyte's page faults and copy cost.  Where stat fails or sees no
     * more than is in (procfs, a file growing), 2 MiB, then doubling. */
    s->total = (Py_ssize_t)r1 + r2;
    s->big = PyBytes_FromStringAndSize(NULL, br_room(st, s));
    if (s->big == NULL)
        return -1;
    memcpy(PyBytes_AS_STRING(s->big), s->scratch, (size_t)s->total);
    if (st->stop)
        return br_finish(st, k, NULL, ECANCELED);
    return br_more(st, k);
}

static int
br_more_done(br_state *st, unsigned k, int32_t res)
{
    br_slot *s = &st->slots[k];
    PyObject *data;

    if (res < 0)
        return br_finish(st, k, NULL, -res);
    if (res == 0) {
        data = s->big;
        s->big = NULL;
        if (_PyBytes_Resize(&data, s->total) < 0)
            return -1;
        return br_finish(st, k, data, 0);
    }
    s->total += res;
    if (st->stop)
        return br_finish(st, k, NULL, ECANCELED);
    return br_more(st, k);
}

/* Take every completion ready.  -1 with an exception (the caller drains);
 * CQEs are consumed either way, and the slot accounting stays right. */
static int
br_reap(br_state *st)
{
    struct io_uring_cqe *cqe;
    int rc = 0;

    while (io_uring_peek_cqe(&st->ring, &cqe) == 0) {
        __u64 ud = cqe->user_data;
        int32_t res = cqe->res;
        unsigned k = (unsigned)(ud >> 3), kind = (unsigned)(ud & 7);
        br_slot *s;

        io_uring_cqe_seen(&st->ring, cqe);
        if (kind == K_CANCEL || kind == K_KICK)
            continue;
        st->inflight--;
        st->reaped++;
        s = &st->slots[k];
        s->pending--;
        if (rc < 0)
            continue;           /* failing: only count */
        if (kind != K_MORE) {
            s->res[kind] = res;
            if (s->pending == 0)
                rc = br_chain_done(st, k);
        } else {
            rc = br_more_done(st, k, res);
        }
    }
    return rc;
}

/* Files are in flight and nothing has come for BR_KICK_ROUNDS rounds: hand
 * io-wq a NOP.  WHY: rarely (one call in tens of thousands on 6.18; a
 * missing file, whose lookup goes to io-wq) a chain never completed, with
 * io-wq's one worker asleep.  The open was still in io-wq's queue, never
 * started: an ASYNC_CANCEL of it found it there (res 0, not -EALREADY).
 * A new work item wakes a sleeping worker, which then runs what waits:
 * every stall seen with this kick went on at once.  A wait that is meant
 * (the open of a FIFO without a writer) costs one NOP a second. */
static void
br_kick(br_state *st)
{
    struct io_uring_sqe *sqe;

    if (io_uring_sq_space_left(&st->ring) < 1)
        return;
    sqe = br_sqe(st);
    io_uring_prep_nop(sqe);
    sqe->flags |= IOSQE_ASYNC;
    sqe->user_data = K_KICK;   /* submitted with the next wait */
}

static int
br_progress(br_state *st)
{
    PyObject *r;

    if (st->progress == NULL)
        return 0;
    /* (bytes_done, bytes_total, files_done, files_total), as every bulk
     * helper gives it; no file is stat'ed, so the byte total is None */
    r = PyObject_CallFunction(st->progress, "KOnn", st->bytes_done, Py_None,
                              st->n - st->left, st->n);
    Py_XDECREF(r);
    return r == NULL ? -1 : 0;
}

/* Wait for every completion still to come, cancelling them (an error or a
 * signal is on its way out).  Returns 0 when all are in, -1 when the
 * kernel kept some past 10 s (the caller leaks their memory). */
static int
br_drain(br_state *st)
{
    double start = pu_monotonic(), last = -1;

    while (st->inflight > 0) {
        struct __kernel_timespec ts = {0, 100 * 1000 * 1000};
        struct io_uring_cqe *cqe;
        double now = pu_monotonic();
        int ret;

        if (now - start > 10.0)
            return -1;
        if (last < 0 || now - last >= 0.5) {
            struct io_uring_sqe *sqe = io_uring_get_sqe(&st->ring);
            if (sqe != NULL) {
                memset(sqe, 0, sizeof(*sqe));
                io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY |
                                       IORING_ASYNC_CANCEL_ALL);
                sqe->user_data = K_CANCEL;
            }
            last = now;
        }
        Py_BEGIN_ALLOW_THREADS
        io_uring_submit(&st->ring);
        ret = io_uring_wait_cqe_timeout(&st->ring, &cqe, &ts);
        Py_END_ALLOW_THREADS
        (void)ret;      /* -EINTR, -ETIME: look again; signals run later */
        while (io_uring_peek_cqe(&st->ring, &cqe) == 0) {
            unsigned kind = (unsigned)(cqe->user_data & 7);
            io_uring_cqe_seen(&st->ring, cqe);
            if (kind != K_CANCEL && kind != K_KICK)
                st->inflight--;
        }
    }
    return 0;
}

static int
br_setup(br_state *st, unsigned depth)
{
    struct io_uring_params p;
    unsigned entries = 4 * depth;
    int ret;

    /* one issuer (this call), completions run when it waits: the
     * cheapest setup the kernel has; plain on kernels without it */
    memset(&p, 0, sizeof(p));
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
              IORING_SETUP_SUBMIT_ALL;
    ret = io_uring_queue_init_params(entries, &st->ring, &p);
    if (ret == -EINVAL) {
        memset(&p, 0, sizeof(p));
        ret = io_uring_queue_init_params(entries, &st->ring, &p);
    }
    if (ret < 0)
        return ret;
    st->ring_up = 1;
    return io_uring_register_files_sparse(&st->ring, depth);
}

/* read_many(paths, depth=64, *, errors="raise", progress=None) */
static PyObject *
read_many(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs,
          PyObject *kwnames)
{
    PyObject *argv[4] = {NULL, NULL, NULL, NULL};
    br_state st;
    unsigned depth = 64, k;
    PyObject *ret = NULL;
    int leak = 0;
    unsigned quiet = 0;     /* rounds in a row with nothing in */

    memset(&st, 0, sizeof(st));
    st.err_file = -1;
    st.raise_errors = 1;
    if (pu_parse_args(&rm_spec, args, nargs, kwnames, argv) < 0)
        return NULL;
    if (argv[1] != NULL && pu_conv_u32(&rm_spec, 1, argv[1], &depth) < 0)
        return NULL;
    if (depth < 1 || depth > BR_MAX_DEPTH) {
        PyErr_Format(PyExc_ValueError, "read_many(): depth must be 1-%d, not %u",
                     BR_MAX_DEPTH, depth);
        return NULL;
    }
    if (argv[2] != NULL) {
        if (PyUnicode_Check(argv[2]) &&
            PyUnicode_CompareWithASCIIString(argv[2], "raise") == 0)
            st.raise_errors = 1;
        else if (PyUnicode_Check(argv[2]) &&
                 PyUnicode_CompareWithASCIIString(argv[2], "return") == 0)
            st.raise_errors = 0;
        else {
            PyErr_Format(PyExc_ValueError, "read_many(): errors must be 'raise' "
                         "or 'return', not %R", argv[2]);
            return NULL;
        }
    }
    if (argv[3] != NULL && argv[3] != Py_None) {
        if (!PyCallable_Check(argv[3])) {
            PyErr_SetString(PyExc_TypeError, "read_many(): progress must be callable");
            return NULL;
        }
        st.progress = argv[3];
    }
    /* a tuple of the paths as given: a list the progress callback changed
     * would not move what the errors name */
    st.given = PySequence_Tuple(argv[0]);
    if (st.given == NULL)
        return NULL;
    st.n = PyTuple_GET_SIZE(st.given);
    st.left = st.n;
    st.enc = PyMem_Calloc((size_t)st.n + 1, sizeof(PyObject *));
    st.out = PyList_New(st.n);
    if (st.enc == NULL || st.out == NULL) {
        PyErr_NoMemory();
        goto out;
    }
    for (Py_ssize_t i = 0; i < st.n; i++) {
        Py_INCREF(Py_None);
        PyList_SET_ITEM(st.out, i, Py_None);
    }
    /* encode every path first: a TypeError before anything runs */
    for (Py_ssize_t i = 0; i < st.n; i++) {
        if (!PyUnicode_FSConverter(PyTuple_GET_ITEM(st.given, i), &st.enc[i]))
            goto out;
        if (strlen(PyBytes_AS_STRING(st.enc[i])) !=
            (size_t)PyBytes_GET_SIZE(st.enc[i])) {
            PyErr_SetString(PyExc_ValueError, "read_many(): embedded null byte");
            goto out;
        }
    }
    if (st.n == 0) {
        ret = st.out;
        st.out = NULL;
        goto out;
    }
    if ((Py_ssize_t)depth > st.n)
        depth = (unsigned)st.n;
    st.nslots = depth;
    st.slots = PyMem_Calloc(depth, sizeof(br_slot));
    if (st.slots == NULL) {
        PyErr_NoMemory();
        goto out;
    }
    for (k = 0; k < depth; k++) {
        st.slots[k].file = -1;
        st.slots[k].scratch = PyMem_RawMalloc(2 * BR_FIRST);
        if (st.slots[k].scratch == NULL) {
            PyErr_NoMemory();
            goto out;
        }
    }
    {
        int rc = br_setup(&st, depth);
        if (rc < 0) {
            pu_err_errno(-rc);
            goto out;
        }
    }

    k = 0;
    while (st.left > 0) {
        int rc;

        /* a free slot for each file to start */
        for (unsigned j = 0; j < st.nslots && st.next < st.n && !st.stop; j++) {
            if (st.slots[j].file >= 0)
                continue;
            if (io_uring_sq_space_left(&st.ring) < 3)
                break;
            br_start(&st, j);
        }
        if (st.stop && st.inflight == 0)
            break;
        {
            /* a bounded wait: the round below (signals, progress) runs at
             * least every BR_ROUND_NS even when nothing completes, so an
             * await of the async form (files_async.py), whose progress
             * hook raises once it is cancelled, ends within it even while
             * an open blocks (a FIFO without a writer) */
            struct __kernel_timespec ts = {0, BR_ROUND_NS};
            struct io_uring_cqe *cqe;
            Py_BEGIN_ALLOW_THREADS
            rc = io_uring_submit_and_wait_timeout(&st.ring, &cqe, 1, &ts, NULL);
            Py_END_ALLOW_THREADS
        }
        if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY && rc != -ETIME) {
            pu_err_errno(-rc);
            goto fail;
        }
        {
            unsigned long long before = st.reaped;
            if (br_reap(&st) < 0)
                goto fail;
            if (st.reaped != before || st.inflight == 0)
                quiet = 0;
            else if (rc == -ETIME && ++quiet == BR_KICK_ROUNDS) {
                quiet = 0;
                br_kick(&st);
            }
        }
        /* every round, not only on EINTR: a signal that came while this
         * thread was out of the wait interrupts no later wait */
        if (PyErr_CheckSignals() < 0)
            goto fail;
        if (br_progress(&st) < 0)
            goto fail;
    }
    if (st.err_file >= 0) {
        PyObject *exc = br_error(&st, st.err_file, st.err_no);
        if (exc != NULL) {
            PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
            Py_DECREF(exc);
        }
        goto out;
    }
    ret = st.out;
    st.out = NULL;
    goto out;

fail:
    {
        PyObject *et, *ev, *tb;
        PyErr_Fetch(&et, &ev, &tb);
        leak = br_drain(&st) < 0;
        PyErr_Restore(et, ev, tb);
    }
out:
    if (leak) {
        /* the kernel still holds buffers of ours: never free them (the
         * error on its way out stays the one raised) */
        PyObject *et, *ev, *tb;
        PyErr_Fetch(&et, &ev, &tb);
        if (PyErr_WarnEx(PyExc_ResourceWarning, "read_many(): operations did "
                         "not finish after cancelling for 10 s: their memory "
                         "is leaked", 1) < 0)
            PyErr_Clear();
        PyErr_Restore(et, ev, tb);
        return NULL;
    }
    if (st.ring_up) {
        /* the last files close now, not in the ring's exit work later:
         * the caller may remove or unmount them next */
        io_uring_unregister_files(&st.ring);
        io_uring_queue_exit(&st.ring);
    }
    if (st.slots != NULL) {
        for (k = 0; k < st.nslots; k++) {
            PyMem_RawFree(st.slots[k].scratch);
            Py_XDECREF(st.slots[k].big);
        }
        PyMem_Free(st.slots);
    }
    if (st.enc != NULL) {
        for (Py_ssize_t i = 0; i < st.n; i++)
            Py_XDECREF(st.enc[i]);
        PyMem_Free(st.enc);
    }
    Py_XDECREF(st.out);
    Py_XDECREF(st.given);
    return ret;
}

PyMethodDef pu_bulk_methods[] = {
    {"read_many", (PyCFunction)(void (*)(void))read_many,
     METH_FASTCALL | METH_KEYWORDS, PU_DOC_module_read_many},
    {NULL, NULL, 0, NULL},
};
