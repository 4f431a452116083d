/* record.c: the slot table of operation records.
 *
 * A record (an Sqe object) enters the table in get_sqe() and leaves it when
 * its final completion is reaped.  The table's strong reference is what
 * keeps the record, and everything pinned in it, alive while the kernel may
 * use it; user_data carries (generation << 32 | slot). */
#include "core/ring.h"

#define PU_FIRST_SLOTS 64

int
pu_ring_table_grow(RingObject *r)
{
    uint32_t n = r->nslots ? r->nslots * 2 : PU_FIRST_SLOTS;
    SqeObject **slots;
    uint32_t *gen, *fr;

    if (n > PU_SLOT_RSRC || n < r->nslots) {   /* slots stay below tags' */
        PyErr_SetString(PyExc_MemoryError, "too many operations in flight");
        return -1;
    }
    slots = PyMem_Realloc(r->slots, n * sizeof(*slots));
    if (slots == NULL)
        goto nomem;
    r->slots = slots;
    gen = PyMem_Realloc(r->slot_gen, n * sizeof(*gen));
    if (gen == NULL)
        goto nomem;
    r->slot_gen = gen;
    fr = PyMem_Realloc(r->free_slots, n * sizeof(*fr));
    if (fr == NULL)
        goto nomem;
    r->free_slots = fr;
    /* new slots go on the free stack highest first, so low slots are used
     * first and stay warm in the cache */
    for (uint32_t s = n; s-- > r->nslots;) {
        r->slots[s] = NULL;
        r->slot_gen[s] = 0;   /* under PU_UD_TAG: no user_data is 0 */
        r->free_slots[r->nfree++] = s;
    }
    r->nslots = n;
    return 0;
nomem:
    PyErr_NoMemory();
    return -1;
}

#ifdef PU_FREELISTS
static SqeObject *sqe_free[PU_FREELIST_MAX];
static CqeObject *cqe_free[PU_FREELIST_MAX];
static int sqe_nfree, cqe_nfree;
#endif

SqeObject *
pu_sqe_alloc(void)
{
#ifdef PU_FREELISTS
    if (sqe_nfree > 0) {
        SqeObject *rec = sqe_free[--sqe_nfree];
        _Py_NewReference((PyObject *)rec);
        return rec;
    }
#endif
    return PyObject_GC_New(SqeObject, &pu_SqeType);
}

void
pu_sqe_free(SqeObject *rec)
{
#ifdef PU_FREELISTS
    if (sqe_nfree < PU_FREELIST_MAX) {
        sqe_free[sqe_nfree++] = rec;
        return;
    }
#endif
    PyObject_GC_Del(rec);
}

CqeObject *
pu_cqe_alloc(void)
{
#ifdef PU_FREELISTS
    if (cqe_nfree > 0) {
        CqeObject *q = cqe_free[--cqe_nfree];
        _Py_NewReference((PyObject *)q);
        return q;
    }
#endif
    return PyObject_GC_New(CqeObject, &pu_CqeType);
}

void
pu_cqe_free(CqeObject *q)
{
#ifdef PU_FREELISTS
    if (cqe_nfree < PU_FREELIST_MAX) {
        cqe_free[cqe_nfree++] = q;
        return;
    }
#endif
    PyObject_GC_Del(q);
}

/* A new record with a slot, when no pooled record is at hand (or the
 * table is full): pu_record_take() is the usual way in. */
SqeObject *
pu_record_new(RingObject *r)
{
    SqeObject *rec;

    if (r->nfree == 0 && pu_ring_table_grow(r) < 0)
        return NULL;
    if (r->npool > 0)
        return pu_record_enter(r, r->pool[--r->npool]);
    rec = pu_sqe_alloc();
    if (rec == NULL)
        return NULL;
    rec->weakreflist = NULL;
    pu_record_enter(r, rec);
    PyObject_GC_Track(rec);
    return rec;
}

void
pu_record_pool_clear(RingObject *r)
{
    while (r->npool > 0)
        Py_DECREF(r->pool[--r->npool]);
}

/* Release what the kernel no longer uses: pinned buffers and kept objects.
 * Only called once the operation's final completion was reaped, or before
 * it was ever submitted (a failed prep). */
/* What the kernel no longer uses once the final completion is reaped: the
 * pins and kept objects.  Blocks stay when the op's result maker reads them
 * later (getresult() after the completion); pu_record_release() frees them. */
void
pu_record_release_pins(SqeObject *rec)
{
    if (rec->nbufs == 0 && rec->pins == NULL && rec->nkeep == 0)
        return;   /* the usual case for a NOP, a recv into a length, ... */
    while (rec->nbufs > 0)
        PyBuffer_Release(&rec->bufs[--rec->nbufs]);
    for (pu_pin *p = rec->pins; p != NULL; p = p->next)
        PyBuffer_Release(&p->view);
    rec->pins = NULL;   /* the nodes live in the blocks */
    while (rec->nkeep > 0) {
        PyObject *o = rec->keep[--rec->nkeep];   /* Py_CLEAR evaluates twice */
        rec->keep[rec->nkeep] = NULL;
        Py_DECREF(o);
    }
}

void
pu_record_release_full(SqeObject *rec)
{
    /* an Sqe's dealloc may run while an exception propagates, and releasing
     * a buffer may run Python code (__release_buffer__, 3.12): keep it.
     * The fetch and restore cost about 50 instructions a release, so only
     * when there is one to keep; with none, what a release leaves set is
     * cleared, as restoring nothing did. */
    int raising = PyErr_Occurred() != NULL;
    pu_exc_state saved = {NULL, NULL, NULL};

    if (raising)
        pu_exc_save(&saved);
    pu_record_release_pins(rec);
    Py_CLEAR(rec->result);
    Py_CLEAR(rec->paths);
    rec->op_state = NULL;
    while (rec->blocks != NULL) {
        pu_block *b = rec->blocks;
        rec->blocks = b->next;
        PyMem_Free(b);
    }
    if (raising)
        pu_exc_restore(&saved);
    else if (PyErr_Occurred())
        PyErr_Clear();
}

/* Zeroed memory that lives until the record is released. */
void *
pu_rec_alloc(SqeObject *rec, size_t size)
{
    size_t head = (sizeof(pu_block) + _Alignof(max_align_t) - 1) &
                  ~(_Alignof(max_align_t) - 1);
    pu_block *b;

    if (size > PY_SSIZE_T_MAX - head) {
        PyErr_NoMemory();
        return NULL;
    }
    b = PyMem_Calloc(1, head + size);
    if (b == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    b->next = rec->blocks;
    rec->blocks = b;
    return (char *)b + head;
}

/* Keep a reference to o (new reference taken) until release. */
int
pu_rec_keep(SqeObject *rec, PyObject *o)
{
    if (rec->nkeep >= PU_MAX_KEEP) {
        PyErr_SetString(PyExc_SystemError, "too many kept objects in one record");
        return -1;
    }
    Py_INCREF(o);
    rec->keep[rec->nkeep++] = o;
    return 0;
}

/* Name the op's path arguments (filename2 NULL for an op with one) for the
 * OSError of a failed completion: str or bytes as given, an os.PathLike
 * by its os.fspath(), as the os module's errors name them. */
int
pu_rec_paths(SqeObject *rec, PyObject *filename, PyObject *filename2)
{
    PyObject *f[2] = {NULL, NULL}, *t = NULL;
    PyObject *given[2] = {filename, filename2};
    int n = filename2 != NULL ? 2 : 1;

    if (filename == NULL)
        return 0;   /* an optional path not given */
    for (int i = 0; i < n; i++) {
        /* the converter accepted it already: fspath() cannot fail here
         * but for a __fspath__ that changes its mind */
        f[i] = PyOS_FSPath(given[i]);
        if (f[i] == NULL)
            goto out;
    }
    t = n == 2 ? PyTuple_Pack(2, f[0], f[1]) : PyTuple_Pack(1, f[0]);
    if (t != NULL)
        Py_XSETREF(rec->paths, t);
out:
    Py_XDECREF(f[0]);
    Py_XDECREF(f[1]);
    return t == NULL ? -1 : 0;
}

/* Entries linked before rec with IOSQE_CQE_SKIP_SUCCESS post nothing when
 * they succeed; rec's completion proves they are done.  Their records end
 * here (found by user_data, so one that already ended is skipped). */
void
pu_record_finish_skipped(RingObject *r, SqeObject *rec)
{
    __u64 ud = rec->chain_prev;
    rec->chain_prev = 0;
    while (ud != 0) {
        SqeObject *p = pu_record_lookup(r, ud);
        if (p == NULL)
            break;
        ud = p->chain_prev;
        p->chain_prev = 0;
        pu_record_finish(r, p);
        pu_record_release(p);
        Py_DECREF(p);   /* the table's reference */
    }
}

/* When an entry with IOSQE_CQE_SKIP_SUCCESS and IOSQE_IO_LINK fails (a
 * negative result, or a short one: pu_chain_failed()), the
 * kernel cancels the rest of its chain without posting their completions
 * (REQ_F_SKIP_LINK_CQES): those records end here.  Only when the failure
 * starts with this entry: when an earlier entry of the chain failed, the
 * kernel cancelled this one with the rest and cleared their skip flags, so
 * all of them post (chain_broken, set here by the entry before).  Chains
 * with a hard link keep no skip flag (prepare_chains_from() in submit.c). */
void
pu_record_finish_suppressed(RingObject *r, SqeObject *rec, int32_t res)
{
    uint8_t f = rec->flushed_flags;
    __u64 ud = rec->chain_next;

    if (!pu_chain_failed(rec, res) || ud == 0 || !(f & IOSQE_IO_LINK) ||
        (f & IOSQE_IO_HARDLINK))
        return;
    if (!(f & IOSQE_CQE_SKIP_SUCCESS) || rec->chain_broken) {
        SqeObject *n = pu_record_lookup(r, ud);
        if (n != NULL)
            n->chain_broken = 1;
        return;
    }
    while (ud != 0) {
        SqeObject *n = pu_record_lookup(r, ud);
        if (n == NULL)
            break;
        ud = (n->flushed_flags & (IOSQE_IO_LINK | IOSQE_IO_HARDLINK)) ? n->chain_next : 0;
        pu_record_finish(r, n);
        pu_record_release(n);
        Py_DECREF(n);   /* the table's reference */
    }
}
