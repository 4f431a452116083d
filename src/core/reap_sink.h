/* core/reap_sink.h: private to the completion side (core/reap.c and
 * core/wait.c): where reap(), reap_columns() and reap_one() put what they
 * take from the CQ. */
#ifndef PU_CORE_REAP_SINK_H
#define PU_CORE_REAP_SINK_H

#include "core/ring.h"

/* completions (reap.c) */
int pu_reap(RingObject *r);
/* Where reaped completions go: reap()'s list of (user_data, result, flags)
 * tuples, reap_columns()'s three lists, or reap_one()'s single tuple. */
enum { PU_SINK_LIST, PU_SINK_COLUMNS, PU_SINK_ONE };

typedef struct pu_reap_sink {
    PyObject *lists[3];             /* PU_SINK_ONE: lists[0] is the tuple */
    PyObject **spare;               /* PU_SINK_ONE: &ring->one_tuple;
                                       PU_SINK_LIST: &ring->last_list; NULL
                                       to make every tuple anew */
    Py_ssize_t nreuse;              /* PU_SINK_LIST: lists[0] is the list
                                       reap() returned last time, dropped
                                       since; its first nreuse items are
                                       its tuples, refilled in place */
    int keep;                       /* PU_SINK_LIST: every item so far has
                                       an exact int as user data and result,
                                       so the list may be kept as the next
                                       call's (ring.h, last_list) */
    int kind;
} pu_reap_sink;
int pu_sink_new(pu_reap_sink *s, int kind, Py_ssize_t cap, PyObject **spare);

/* Tuples are refilled (reap_one()'s, and those of the list reap() gave
 * last) where a reference count of 1 proves that nobody else holds one:
 * not free-threaded; and not from 3.14, whose tuples cache their hash,
 * which a refill would leave stale. */
#if !defined(Py_GIL_DISABLED) && PY_VERSION_HEX < 0x030E0000
#define PU_REFILL_TUPLES 1
#endif

/* What a sink of this kind refills, for pu_sink_new(): reap()'s list
 * keeps its last list (reap_one() takes its tuple in pu_reap_one_plain()) */
static inline PyObject **
pu_sink_spare(RingObject *r, int kind)
{
#ifdef PU_REFILL_TUPLES
    return kind == PU_SINK_LIST ? &r->last_list : NULL;
#else
    (void)r;
    (void)kind;
    return NULL;
#endif
}

/* A tuple of three exact ints that nobody else holds: its items may be
 * replaced (their release runs no code); d, the new user data, is an exact
 * int too, so the tuple holds no container (the GC may have untracked it). */
static inline int
pu_sink_refillable(PyObject *t, PyObject *d)
{
    return t != NULL && Py_REFCNT(t) == 1 && d != NULL && PyLong_CheckExact(d);
}

/* The same for an item of a dropped list: the caller may have put
 * anything into the list before dropping it */
static inline int
pu_sink_list_refillable(PyObject *t, PyObject *d)
{
    return pu_sink_refillable(t, d) && PyTuple_CheckExact(t) && PyTuple_GET_SIZE(t) == 3 &&
           PyLong_CheckExact(PyTuple_GET_ITEM(t, 0)) &&
           PyLong_CheckExact(PyTuple_GET_ITEM(t, 1)) &&
           PyLong_CheckExact(PyTuple_GET_ITEM(t, 2));
}

/* What item i needs beforehand: its tuple (NULL for columns), a new
 * reference; d is the item's user data (NULL when not known yet). */
static inline int
pu_sink_slot(const pu_reap_sink *s, Py_ssize_t i, PyObject *d, PyObject **t)
{
    if (s->kind == PU_SINK_COLUMNS) {
        *t = NULL;
        return 0;
    }
    if (s->kind == PU_SINK_LIST) {
        if (i < s->nreuse &&
            pu_sink_list_refillable(((PyListObject *)s->lists[0])->ob_item[i], d)) {
            *t = ((PyListObject *)s->lists[0])->ob_item[i];
            Py_INCREF(*t);
            return 0;
        }
    } else if (s->spare != NULL && pu_sink_refillable(*s->spare, d)) {
        *t = *s->spare;
        Py_INCREF(*t);
        return 0;
    }
    *t = PyTuple_New(3);
    return *t != NULL ? 0 : -1;
}

/* Item i: steals t (from pu_sink_slot), d, v and f.  Never fails: the
 * lists were made at full size. */
static inline void
pu_sink_put(pu_reap_sink *s, Py_ssize_t i, PyObject *t, PyObject *d,
            PyObject *v, PyObject *f)
{
    if (s->kind == PU_SINK_COLUMNS) {
        PyList_SET_ITEM(s->lists[0], i, d);
        PyList_SET_ITEM(s->lists[1], i, v);
        PyList_SET_ITEM(s->lists[2], i, f);
        return;
    }
    if (s->kind == PU_SINK_ONE) {
        /* the spare again (pu_sink_slot()): its old ints go after */
        PyObject *old[3] = {PyTuple_GET_ITEM(t, 0), PyTuple_GET_ITEM(t, 1),
                            PyTuple_GET_ITEM(t, 2)};
        PyTuple_SET_ITEM(t, 0, d);
        PyTuple_SET_ITEM(t, 1, v);
        PyTuple_SET_ITEM(t, 2, f);
        s->lists[0] = t;            /* i is 0: its capacity is one */
        Py_XDECREF(old[0]);
        Py_XDECREF(old[1]);
        Py_XDECREF(old[2]);
        if (s->spare != NULL && t != *s->spare && PyLong_CheckExact(d)) {
            Py_INCREF(t);           /* a new tuple of ints: the next spare */
            Py_XSETREF(*s->spare, t);
        }
        return;
    }
    /* PU_SINK_LIST */
    PyObject **item = &((PyListObject *)s->lists[0])->ob_item[i];
    if (!PyLong_CheckExact(d) || !PyLong_CheckExact(v))
        s->keep = 0;
    if (t == *item) {
        /* a dropped list's tuple, refilled in place: its old ints go after */
        PyObject *old[3] = {PyTuple_GET_ITEM(t, 0), PyTuple_GET_ITEM(t, 1),
                            PyTuple_GET_ITEM(t, 2)};
        PyTuple_SET_ITEM(t, 0, d);
        PyTuple_SET_ITEM(t, 1, v);
        PyTuple_SET_ITEM(t, 2, f);
        Py_DECREF(t);               /* pu_sink_slot()'s: the list holds it */
        Py_DECREF(old[0]);
        Py_DECREF(old[1]);
        Py_DECREF(old[2]);
        return;
    }
    PyTuple_SET_ITEM(t, 0, d);
    PyTuple_SET_ITEM(t, 1, v);
    PyTuple_SET_ITEM(t, 2, f);
    PyObject *was = *item;          /* NULL, or a dropped list's item */
    *item = t;
    Py_XDECREF(was);
}
void pu_sink_unput(pu_reap_sink *s, Py_ssize_t from, Py_ssize_t to);
PyObject *pu_sink_finish(pu_reap_sink *s, Py_ssize_t got);
Py_ssize_t pu_reap_direct(RingObject *r, pu_reap_sink *s, Py_ssize_t at,
                          Py_ssize_t max);
PyObject *pu_reap_one_plain(RingObject *r);
void pu_reap_discard(RingObject *r, int *cancel_einval);
void pu_cq_clear(RingObject *r);
#define PU_CQ_LEN(r) ((r)->cq_end - (r)->cq_start)

#endif
