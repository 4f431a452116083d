/* common_args.c: the keyword-only arguments every op shares on the forms
 * that make an SQE without an Sqe object: IoUring.prep_NAME() (user_data,
 * sqe_flags, buf_group, personality) and AsyncRing.NAME() (all but
 * user_data; timeout= on the awaitable forms).  They are taken out of the call before the op's own
 * generated parser sees it, so that parser stays the one Sqe.prep_NAME()
 * uses. */
#include "ops/opdef.h"

int
pu_small_uint(PyObject *o, unsigned long max, const char *what,
              unsigned long *out)
{
    unsigned long v = PyLong_AsUnsignedLong(o);
    if (v == (unsigned long)-1 && PyErr_Occurred())
        return -1;
    if (v > max) {
        PyErr_Format(PyExc_OverflowError, "%s must be 0-%lu", what, max);
        return -1;
    }
    *out = v;
    return 0;
}

PyObject *pu_small_ints[PU_SMALL_INTS];

int
pu_small_ints_init(void)
{
    for (long i = 0; i < PU_SMALL_INTS; i++) {
        if (pu_small_ints[i] == NULL &&
            (pu_small_ints[i] = PyLong_FromLong(i)) == NULL)
            return -1;
    }
    return 0;
}

/* The keyword names, interned: the compiler interns the names a call
 * spells out, so the usual match is a pointer comparison. */
static PyObject *s_user_data, *s_sqe_flags, *s_buf_group, *s_personality, *s_timeout;

int
pu_common_args_init(void)
{
    s_user_data = PyUnicode_InternFromString("user_data");
    s_sqe_flags = PyUnicode_InternFromString("sqe_flags");
    s_buf_group = PyUnicode_InternFromString("buf_group");
    s_personality = PyUnicode_InternFromString("personality");
    s_timeout = PyUnicode_InternFromString("timeout");
    return (s_user_data && s_sqe_flags && s_buf_group && s_personality && s_timeout)
           ? 0 : -1;
}

/* Which shared keyword name is: 0 user_data, 1 sqe_flags, 2 buf_group,
 * 3 personality, 4 timeout, -1 none.  Every interned name is tried by pointer before
 * any is compared by value: a call that spells sqe_flags= must not pay a
 * string comparison against user_data first. */
static int
common_index(PyObject *name)
{
    if (name == s_user_data)
        return 0;
    if (name == s_sqe_flags)
        return 1;
    if (name == s_buf_group)
        return 2;
    if (name == s_personality)
        return 3;
    if (name == s_timeout)
        return 4;
    if (PyUnicode_Compare(name, s_user_data) == 0)
        return 0;
    if (PyUnicode_Compare(name, s_sqe_flags) == 0)
        return 1;
    if (PyUnicode_Compare(name, s_buf_group) == 0)
        return 2;
    if (PyUnicode_Compare(name, s_personality) == 0)
        return 3;
    if (PyUnicode_Compare(name, s_timeout) == 0)
        return 4;
    return -1;
}

/* timeout=: None, or seconds as an int or float, finite and >= 0.  Made a
 * double here, before any entry is taken, so that no Python code (a
 * __float__) runs between an op's entry and its linked timeout's. */
static int
take_timeout(PyObject *v, pu_common *c)
{
    double d;
    if (v == Py_None)
        return 1;
    if (!PyFloat_Check(v) && !PyLong_Check(v)) {
        PyErr_Format(PyExc_TypeError, "timeout must be a number of seconds or "
                     "None, not %.100s", Py_TYPE(v)->tp_name);
        return -1;
    }
    d = PyFloat_AsDouble(v);
    if (d == -1.0 && PyErr_Occurred())
        return -1;
    if (!(d >= 0.0) || d > 9.2e18) {
        PyErr_SetString(PyExc_ValueError, "timeout must be a finite number of "
                        "seconds >= 0, or None");
        return -1;
    }
    c->timeout = d;
    return 1;
}

/* One shared keyword: 1 when it is one (and stored), 0 when it is not. */
static int
take_common(PyObject *name, PyObject *v, pu_common *c, const pu_common_rules *rules)
{
    unsigned long x;

    switch (common_index(name)) {
    case 0:
        if (!rules->with_data)
            return 0;
        c->data = v;
        return 1;
    case 1:
        if (pu_small_uint(v, 0xff, "sqe_flags", &x) < 0)
            return -1;
        if (x & ~(unsigned long)rules->allowed_flags) {
            PyErr_SetString(PyExc_ValueError, rules->flags_error);
            return -1;
        }
        c->sqe_flags = (uint8_t)x;
        return 1;
    case 2:
        if (pu_small_uint(v, 0xffff, "buf_group", &x) < 0)
            return -1;
        c->buf_group = (uint16_t)x;
        return 1;
    case 3:
        if (pu_small_uint(v, 0xffff, "personality", &x) < 0)
            return -1;
        c->personality = (uint16_t)x;
        return 1;
    case 4:
        if (!rules->with_timeout)
            return 0;   /* the op's own parser refuses it */
        return take_timeout(v, c);
    default:
        return 0;
    }
}

int
pu_split_common(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                pu_call_args *out, pu_common *c, const pu_common_rules *rules)
{
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0, k = 0;
    PyObject *keep[PU_MAX_CALL_ARGS];

    memset(c, 0, sizeof(*c));
    c->timeout = -1.0;
    out->args = args;
    out->kwnames = kwnames;
    out->owned = NULL;
    if (nkw == 0)
        return 0;
    /* the fast forms' usual call, prep_NAME(..., user_data=x): no loop, no
     * new kwnames (docs/performance.md, the per-op instruction table) */
    if (nkw == 1 && rules->with_data && PyTuple_GET_ITEM(kwnames, 0) == s_user_data) {
        c->data = args[nargs];
        out->kwnames = NULL;
        return 0;
    }
    if (nargs + nkw > PU_MAX_CALL_ARGS) {
        PyErr_SetString(PyExc_TypeError, "too many arguments");
        return -1;
    }
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, i), *v = args[nargs + i];
        int r = take_common(name, v, c, rules);
        if (r < 0)
            return -1;
        if (r == 0) {
            keep[k] = name;
            out->stack[nargs + k++] = v;
        }
    }
    if (k == nkw)
        return 0;   /* none of ours: the call goes through as it came */
    out->kwnames = NULL;
    if (k == 0)
        return 0;   /* all ours: the positional arguments as they came */
    memcpy(out->stack, args, (size_t)nargs * sizeof(*args));
    out->args = out->stack;
    out->owned = PyTuple_New(k);
    if (out->owned == NULL)
        return -1;
    for (Py_ssize_t i = 0; i < k; i++) {
        Py_INCREF(keep[i]);
        PyTuple_SET_ITEM(out->owned, i, keep[i]);
    }
    out->kwnames = out->owned;
    return 0;
}
