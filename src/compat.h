/* compat.h: what every file of the runtime includes first: Python.h, and
 * what differs between the CPython versions the module supports (3.8 to
 * 3.13): the exception-save helpers and the 3.8 shims. */
#ifndef PU_COMPAT_H
#define PU_COMPAT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* The exception being raised, kept across code that may raise and clear
 * (3.12 deprecated PyErr_Fetch() for PyErr_GetRaisedException()). */
typedef struct { PyObject *type, *value, *tb; } pu_exc_state;

static inline void
pu_exc_save(pu_exc_state *s)
{
#if PY_VERSION_HEX >= 0x030C0000
    s->type = s->tb = NULL;
    s->value = PyErr_GetRaisedException();
#else
    PyErr_Fetch(&s->type, &s->value, &s->tb);
#endif
}

static inline void
pu_exc_restore(pu_exc_state *s)
{
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(s->value);
#else
    PyErr_Restore(s->type, s->value, s->tb);
#endif
}

/* The exception now set, as one normalized object with its traceback (a
 * new reference; the indicator is cleared), and back again (stolen). */
static inline PyObject *
pu_exc_take(void)
{
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    PyErr_NormalizeException(&t, &v, &tb);
    if (tb != NULL && v != NULL)
        PyException_SetTraceback(v, tb);
    Py_XDECREF(t);
    Py_XDECREF(tb);
    return v;
#endif
}

static inline void
pu_exc_give(PyObject *v)
{
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(v);
#else
    Py_INCREF(Py_TYPE(v));
    PyErr_Restore((PyObject *)Py_TYPE(v), v, PyException_GetTraceback(v));
#endif
}


/* 3.8 lacks the one- and no-argument call shortcuts and Py_SET_SIZE() */
#if PY_VERSION_HEX < 0x03090000
#define PyObject_CallNoArgs(f) PyObject_CallFunctionObjArgs((f), NULL)
#define PyObject_CallOneArg(f, a) PyObject_CallFunctionObjArgs((f), (a), NULL)
#define Py_SET_SIZE(o, n) (Py_SIZE(o) = (n))
#endif

#endif
