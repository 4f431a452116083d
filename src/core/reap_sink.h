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
    PyObject **spare;               /* PU_SINK_ONE: &ring->one_tuple, or
                                       NULL to make every tuple anew */
    int kind;
} pu_reap_sink;
int pu_sink_new(pu_reap_sink *s, int kind, Py_ssize_t cap);

/* A tuple of three ints that nobody but the sink's spare holds: its
 * items may be replaced (their release runs no code). */
static inline int
pu_sink_spare_free(const pu_reap_sink *s, PyObject *d)
{
    return s->spare != NULL && *s->spare != NULL && Py_REFCNT(*s->spare) == 1 &&
           d != NULL && PyLong_CheckExact(d);
}

/* What one more item needs beforehand: its tuple (NULL for columns); d is
 * the item's user data (NULL when not known yet). */
static inline int
pu_sink_slot(const pu_reap_sink *s, PyObject *d, PyObject **t)
{
    if (s->kind == PU_SINK_COLUMNS) {
        *t = NULL;
        return 0;
    }
    if (pu_sink_spare_free(s, d)) {
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
    PyTuple_SET_ITEM(t, 0, d);
    PyTuple_SET_ITEM(t, 1, v);
    PyTuple_SET_ITEM(t, 2, f);
    PyList_SET_ITEM(s->lists[0], i, t);
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
