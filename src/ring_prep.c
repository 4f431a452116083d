/* ring_prep.c: IoUring.prep_NAME(), the fast form of
 * get_sqe(); sqe.prep_NAME(...); sqe.set_data(user_data) in one call.
 *
 * No Sqe object reaches Python: the record is made and kept exactly as
 * get_sqe() makes it (the slot table holds it until the final completion),
 * so everything the kernel may touch stays pinned the same way.  A prep
 * that fails gives its entry back, so a bad call leaves nothing in the
 * queue. */
#include "py_io_uring.h"

static const pu_common_rules ring_rules = {
    1, 0xff, "sqe_flags must be 0-255"};

PyObject *
pu_ring_prep(PyObject *self, const pu_opdef *op, PyObject *const *args,
             Py_ssize_t nargs, PyObject *kwnames)
{
    RingObject *r = (RingObject *)self;
    pu_call_args ca;
    pu_common c;
    SqeObject *rec;
    PyObject *ok = NULL;

    if (pu_split_common(args, nargs, kwnames, &ca, &c, &ring_rules) < 0)
        goto out;
    rec = pu_ring_get_sqe(r);
    if (rec == NULL)
        goto out;
    pu_common_apply(rec, &c);
    ok = pu_sqe_prep(rec, op, ca.args, nargs, ca.kwnames);
    if (ok == NULL) {
        pu_ring_unget_sqe(r, rec);
    } else if (c.data != NULL) {
        Py_INCREF(c.data);
        Py_XSETREF(rec->data, c.data);
    }
    Py_DECREF(rec);
out:
    Py_XDECREF(ca.owned);
    return ok;
}
