/* async/loop_core.c: _core._LoopCore, the C base class py_io_uring's
 * EventLoop (loop.py) mixes in before asyncio's loop: asyncio's
 * BaseEventLoop._run_once, call_soon and call_at in C, for the non-debug
 * loop.
 *
 * Each works over the loop's own attributes (_ready, _scheduled,
 * _timer_cancelled_count, _stopping, _selector, ...) so Python code that
 * reads or changes them keeps working, and makes and runs real
 * asyncio.Handle / TimerHandle objects: a plain Handle is run without its
 * Python _run frame (its context entered, its callback vectorcalled) and,
 * when the callback raises, loop.py's _callback_error does what that
 * version's Handle._run does; a subclass of Handle keeps its own _run.
 * In debug mode both defer to asyncio's Python methods (slow-callback
 * logging, source tracebacks, thread and coroutine checks). */
#include "async.h"
#include <structmember.h>

#if PY_VERSION_HEX < 0x03090000
#define PyObject_Vectorcall _PyObject_Vectorcall
#endif

/* what _setup() was given and found, once per process */
static struct {
    PyTypeObject *handle, *timer;   /* asyncio.Handle, asyncio.TimerHandle */
    /* the offsets of their __slots__ (checked member descriptors) */
    Py_ssize_t callback, args, cancelled, loop, source_tb, repr, context;
    Py_ssize_t when, scheduled;
    PyObject *heappop, *heapify, *heappush;
    PyObject *py_call_at;
    PyObject *py_run_once, *py_call_soon, *py_time;    /* BaseEventLoop's */
    PyObject *py_create_task;                           /* BaseEventLoop's */
    PyObject *callback_error, *run_debug;               /* loop.py's */
    PyObject *consts;   /* asyncio.base_events' globals (its thresholds) */
    PyObject *py_add_callback, *py_process_events;      /* asyncio's */
    PyObject *ring_select;                              /* RingSelector.select */
    PyObject *monotonic;
} S;

static PyObject *s_debug, *s_closed, *s_ready, *s_scheduled, *s_stopping,
    *s_selector, *s_select, *s_process_events, *s_time, *s_clock_resolution,
    *s_timer_cancelled_count, *s_popleft, *s_append, *s_cancelled, *s_when,
    *s_run, *s_context, *s_min_sched, *s_min_frac, *s_max_timeout;
static PyObject *one, *s_ctx_run, *s_aring, *s_aring_select, *s_add_callback,
    *s_remove_reader, *s_remove_writer, *s_fileobj, *s_data;
static PyObject *s_name, *s_task_factory, *s_futures, *s_Future, *s_tasks, *s_Task;
static PyObject *kw_loop;   /* ("loop",): the keyword asyncio passes Future and Task */

/* create_task(context=) is 3.11's */
#define PU_TASK_TAKES_CONTEXT (PY_VERSION_HEX >= 0x030B0000)

#define SLOT(o, off) (*(PyObject **)((char *)(o) + (off)))

/* the offset of a T_OBJECT_EX member slot NAME of type t, or -1 */
static Py_ssize_t
slot_offset(PyTypeObject *t, const char *name)
{
    PyObject *d = PyDict_GetItemString(t->tp_dict, name);
    if (d == NULL || Py_TYPE(d) != &PyMemberDescr_Type ||
        ((PyMemberDescrObject *)d)->d_member->type != T_OBJECT_EX ||
        (((PyMemberDescrObject *)d)->d_member->flags & READONLY) ||
        ((PyMemberDescrObject *)d)->d_member->offset < (Py_ssize_t)sizeof(PyObject) ||
        ((PyMemberDescrObject *)d)->d_member->offset + (Py_ssize_t)sizeof(PyObject *) >
            t->tp_basicsize) {
        PyErr_Format(PyExc_TypeError, "%s.%s is not a writable __slots__ member",
                     t->tp_name, name);
        return -1;
    }
    return ((PyMemberDescrObject *)d)->d_member->offset;
}

/* _LoopCore._setup(Handle, TimerHandle, heapq, base_events, callback_error,
 * run_debug, time, RingSelector.select, BaseSelectorEventLoop): once, from
 * loop.py at import */
static PyObject *
LoopCore_setup(PyObject *cls, PyObject *args)
{
    PyObject *handle, *timer, *heapq, *base_events, *cb_err, *run_debug, *time_mod;
    PyObject *ring_select, *bsel, *bel;
    (void)cls;
    if (!PyArg_ParseTuple(args, "O!O!OOOOOOO:_setup", &PyType_Type, &handle,
                          &PyType_Type, &timer, &heapq, &base_events, &cb_err,
                          &run_debug, &time_mod, &ring_select, &bsel))
        return NULL;
    if (S.handle != NULL)
        Py_RETURN_NONE;
    PyTypeObject *h = (PyTypeObject *)handle, *t = (PyTypeObject *)timer;
    if (!PyType_IsSubtype(t, h) || h->tp_dictoffset != 0 || t->tp_dictoffset != 0) {
        PyErr_SetString(PyExc_TypeError, "Handle/TimerHandle are not as expected");
        return NULL;
    }
    if ((S.callback = slot_offset(h, "_callback")) < 0 ||
        (S.args = slot_offset(h, "_args")) < 0 ||
        (S.cancelled = slot_offset(h, "_cancelled")) < 0 ||
        (S.loop = slot_offset(h, "_loop")) < 0 ||
        (S.source_tb = slot_offset(h, "_source_traceback")) < 0 ||
        (S.repr = slot_offset(h, "_repr")) < 0 ||
        (S.context = slot_offset(h, "_context")) < 0 ||
        (S.when = slot_offset(t, "_when")) < 0 ||
        (S.scheduled = slot_offset(t, "_scheduled")) < 0)
        return NULL;
    /* a Handle has exactly these 7 slots and __weakref__ (nothing else the
     * C call_soon would leave unset); 3.12+ keeps the weakref list before
     * the object (a negative offset), tp_alloc zeroes it */
    if (h->tp_basicsize != (Py_ssize_t)(sizeof(PyObject) + 7 * sizeof(PyObject *) +
                                        (h->tp_weaklistoffset > 0 ? sizeof(PyObject *) : 0))) {
        PyErr_SetString(PyExc_TypeError, "asyncio.Handle has unexpected __slots__");
        return NULL;
    }
    if (t->tp_basicsize != h->tp_basicsize + (Py_ssize_t)(2 * sizeof(PyObject *))) {
        PyErr_SetString(PyExc_TypeError, "asyncio.TimerHandle has unexpected __slots__");
        return NULL;
    }
    bel = PyObject_GetAttrString(base_events, "BaseEventLoop");
    if (bel == NULL)
        return NULL;
    S.py_run_once = PyObject_GetAttrString(bel, "_run_once");
    S.py_call_soon = PyObject_GetAttrString(bel, "call_soon");
    S.py_call_at = PyObject_GetAttrString(bel, "call_at");
    S.py_time = PyObject_GetAttrString(bel, "time");
    S.py_create_task = PyObject_GetAttrString(bel, "create_task");
    S.py_add_callback = PyObject_GetAttrString(bel, "_add_callback");
    Py_DECREF(bel);
    S.py_process_events = PyObject_GetAttrString(bsel, "_process_events");
    if (S.py_add_callback == NULL || S.py_process_events == NULL)
        return NULL;
    Py_INCREF(ring_select);
    S.ring_select = ring_select;
    S.heappop = PyObject_GetAttrString(heapq, "heappop");
    S.heapify = PyObject_GetAttrString(heapq, "heapify");
    S.heappush = PyObject_GetAttrString(heapq, "heappush");
    S.monotonic = PyObject_GetAttrString(time_mod, "monotonic");
    S.consts = PyObject_GetAttrString(base_events, "__dict__");
    if (S.py_run_once == NULL || S.py_call_soon == NULL || S.py_time == NULL ||
        S.py_create_task == NULL ||
        S.heappop == NULL || S.heapify == NULL || S.monotonic == NULL ||
        S.py_call_at == NULL || S.heappush == NULL ||
        S.consts == NULL)
        return NULL;
    Py_INCREF(cb_err);
    S.callback_error = cb_err;
    Py_INCREF(run_debug);
    S.run_debug = run_debug;
    Py_INCREF(h);
    S.handle = h;
    Py_INCREF(t);
    S.timer = t;
    Py_RETURN_NONE;
}

static int
attr_true(PyObject *o, PyObject *name)
{
    PyObject *v = PyObject_GetAttr(o, name);
    int r;
    if (v == NULL)
        return -1;
    r = PyObject_IsTrue(v);
    Py_DECREF(v);
    return r;
}

static PyObject *
call_method1(PyObject *o, PyObject *name, PyObject *arg)
{
    return PyObject_CallMethodObjArgs(o, name, arg, NULL);
}

static PyObject *LoopCore_time(PyObject *self, PyObject *noargs);

/* self.time(): time.monotonic() called directly when the loop's time is
 * ours or BaseEventLoop's, else whatever it is (tests mock it) */
static PyObject *
loop_time(PyObject *self)
{
    PyObject *m = PyObject_GetAttr(self, s_time), *r;
    if (m == NULL)
        return NULL;
    if ((PyMethod_Check(m) && PyMethod_GET_FUNCTION(m) == S.py_time) ||
        (PyCFunction_Check(m) && PyCFunction_GET_FUNCTION(m) == (PyCFunction)LoopCore_time))
        r = PyObject_CallNoArgs(S.monotonic);
    else
        r = PyObject_CallNoArgs(m);
    Py_DECREF(m);
    return r;
}

/* The callback of handle h raised (the exception set): SystemExit and
 * KeyboardInterrupt propagate (-1), anything else goes to loop.py's
 * _callback_error (Handle._run's except branch) while it is the exception
 * being handled, as in that branch. */
static int
callback_raised(PyObject *h)
{
    PyObject *exc, *t, *v, *tb, *r;
    if (PyErr_ExceptionMatches(PyExc_SystemExit) ||
        PyErr_ExceptionMatches(PyExc_KeyboardInterrupt))
        return -1;
    exc = pu_exc_take();
    if (exc == NULL)
        return -1;
    PyErr_GetExcInfo(&t, &v, &tb);
    Py_INCREF(Py_TYPE(exc));
    Py_INCREF(exc);
    PyErr_SetExcInfo((PyObject *)Py_TYPE(exc), exc, PyException_GetTraceback(exc));
    r = PyObject_CallFunctionObjArgs(S.callback_error, h, exc, NULL);
    PyErr_SetExcInfo(t, v, tb);
    Py_DECREF(exc);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* Run the ready handle h as _run_once does: 0, or -1 with the exception
 * that must leave _run_once. */
static int
run_handle(PyObject *self, PyObject *h)
{
    PyTypeObject *tp = Py_TYPE(h);
    PyObject *cb, *args, *ctx, *res;
    int r;

    if (tp != S.handle && tp != S.timer) {
        /* a Handle of another kind: its own _cancelled and _run */
        if ((r = attr_true(h, s_cancelled)) != 0)
            return r < 0 ? -1 : 0;
        if ((r = attr_true(self, s_debug)) != 0)
            goto debug;
        res = PyObject_CallMethodObjArgs(h, s_run, NULL);
        Py_XDECREF(res);
        return res == NULL ? -1 : 0;
    }
    if (SLOT(h, S.cancelled) == NULL) {
        PyErr_SetString(PyExc_AttributeError, "_cancelled");
        return -1;
    }
    if ((r = PyObject_IsTrue(SLOT(h, S.cancelled))) != 0)
        return r < 0 ? -1 : 0;
    /* set_debug(True) from a callback of this iteration: the rest of it
     * runs as asyncio's debug branch does */
    if ((r = attr_true(self, s_debug)) != 0)
        goto debug;

    cb = SLOT(h, S.callback);
    args = SLOT(h, S.args);
    ctx = SLOT(h, S.context);
    if (cb == NULL || args == NULL || ctx == NULL) {
        PyErr_SetString(PyExc_AttributeError, "a Handle slot is not set");
        return callback_raised(h);
    }
    /* the callback may cancel its own handle (which clears these slots) */
    Py_INCREF(cb);
    Py_INCREF(ctx);
    if (PyTuple_CheckExact(args))
        Py_INCREF(args);
    else if ((args = PySequence_Tuple(args)) == NULL)
        goto raised;
    if (PyContext_CheckExact(ctx)) {
        if (PyContext_Enter(ctx) < 0) {
            res = NULL;
        } else {
            res = PyObject_Vectorcall(cb, &PyTuple_GET_ITEM(args, 0),
                                      PyTuple_GET_SIZE(args), NULL);
            if (PyContext_Exit(ctx) < 0)
                Py_CLEAR(res);
        }
    } else {
        /* context=… that is not a Context: its run(), as Handle._run */
        PyObject *run = PyObject_GetAttr(ctx, s_ctx_run);
        PyObject *full = NULL;
        res = NULL;
        if (run != NULL) {
            Py_ssize_t n = PyTuple_GET_SIZE(args);
            full = PyTuple_New(n + 1);
            if (full != NULL) {
                Py_INCREF(cb);
                PyTuple_SET_ITEM(full, 0, cb);
                for (Py_ssize_t i = 0; i < n; i++) {
                    Py_INCREF(PyTuple_GET_ITEM(args, i));
                    PyTuple_SET_ITEM(full, i + 1, PyTuple_GET_ITEM(args, i));
                }
                res = PyObject_Call(run, full, NULL);
            }
        }
        Py_XDECREF(run);
        Py_XDECREF(full);
    }
    Py_DECREF(args);
    Py_DECREF(cb);
    Py_DECREF(ctx);
    if (res != NULL) {
        Py_DECREF(res);
        return 0;
    }
    return callback_raised(h);
raised:
    Py_DECREF(cb);
    Py_DECREF(ctx);
    return callback_raised(h);
debug:
    if (r < 0)
        return -1;
    res = PyObject_CallFunctionObjArgs(S.run_debug, self, h, NULL);
    Py_XDECREF(res);
    return res == NULL ? -1 : 0;
}

static int
set_scheduled_false(PyObject *h)
{
    if (Py_TYPE(h) == S.timer) {
        Py_INCREF(Py_False);
        Py_XSETREF(SLOT(h, S.scheduled), Py_False);
        return 0;
    }
    return PyObject_SetAttr(h, s_scheduled, Py_False);    /* same name */
}

/* asyncio.base_events' global NAME (read each time: a test may change it) */
static PyObject *
const_get(PyObject *name)
{
    PyObject *v = PyDict_GetItemWithError(S.consts, name);
    if (v == NULL && !PyErr_Occurred())
        PyErr_SetObject(PyExc_AttributeError, name);
    return v;   /* borrowed */
}

static double
num_as_double(PyObject *o)
{
    return PyFloat_CheckExact(o) ? PyFloat_AS_DOUBLE(o) : PyFloat_AsDouble(o);
}

static PyObject *
timer_when(PyObject *h)
{
    if (Py_TYPE(h) == S.timer && SLOT(h, S.when) != NULL) {
        Py_INCREF(SLOT(h, S.when));
        return SLOT(h, S.when);
    }
    return PyObject_GetAttr(h, s_when);
}

static int
timer_cancelled(PyObject *h)
{
    if (Py_TYPE(h) == S.timer && SLOT(h, S.cancelled) != NULL)
        return PyObject_IsTrue(SLOT(h, S.cancelled));
    return attr_true(h, s_cancelled);
}

/* BaseEventLoop._run_once's cancelled-timer cleanup, before the wait */
static int
drop_cancelled_timers(PyObject *self)
{
    PyObject *sched = PyObject_GetAttr(self, s_scheduled), *min, *frac;
    Py_ssize_t n;
    int big = 0;
    if (sched == NULL)
        return -1;
    if ((n = PyObject_Size(sched)) <= 0) {
        Py_DECREF(sched);
        return (int)n;
    }
    if ((min = const_get(s_min_sched)) == NULL || (frac = const_get(s_min_frac)) == NULL)
        goto fail;
    {
        PyObject *count = PyLong_FromSsize_t(n), *cc = NULL, *ratio = NULL;
        if (count != NULL && (big = PyObject_RichCompareBool(count, min, Py_GT)) == 1) {
            cc = PyObject_GetAttr(self, s_timer_cancelled_count);
            ratio = cc ? PyNumber_TrueDivide(cc, count) : NULL;
            big = ratio ? PyObject_RichCompareBool(ratio, frac, Py_GT) : -1;
        }
        Py_XDECREF(count);
        Py_XDECREF(cc);
        Py_XDECREF(ratio);
        if (count == NULL || big < 0)
            goto fail;
    }
    if (big) {
        /* remove delayed calls that were cancelled if their number is too high */
        PyObject *it = PyObject_GetIter(sched), *h, *new_sched = PyList_New(0), *r;
        if (it == NULL || new_sched == NULL) {
            Py_XDECREF(it);
            Py_XDECREF(new_sched);
            goto fail;
        }
        while ((h = PyIter_Next(it)) != NULL) {
            int c = timer_cancelled(h);
            if (c < 0 || (c ? set_scheduled_false(h) : PyList_Append(new_sched, h)) < 0) {
                Py_DECREF(h);
                break;
            }
            Py_DECREF(h);
        }
        Py_DECREF(it);
        if (PyErr_Occurred() ||
            (r = PyObject_CallOneArg(S.heapify, new_sched)) == NULL) {
            Py_DECREF(new_sched);
            goto fail;
        }
        Py_DECREF(r);
        r = PyLong_FromLong(0);
        if (PyObject_SetAttr(self, s_scheduled, new_sched) < 0 ||
            r == NULL || PyObject_SetAttr(self, s_timer_cancelled_count, r) < 0) {
            Py_XDECREF(r);
            Py_DECREF(new_sched);
            goto fail;
        }
        Py_DECREF(r);
        Py_DECREF(new_sched);
        Py_DECREF(sched);
        return 0;
    }
    Py_DECREF(sched);
    /* remove delayed calls that were cancelled from the head of the queue */
    for (;;) {
        PyObject *head, *h, *cc, *cc1;
        int c;
        if ((sched = PyObject_GetAttr(self, s_scheduled)) == NULL)
            return -1;
        if ((c = PyObject_IsTrue(sched)) <= 0) {
            Py_DECREF(sched);
            return c;
        }
        if ((head = PySequence_GetItem(sched, 0)) == NULL)
            goto fail;
        c = timer_cancelled(head);
        Py_DECREF(head);
        if (c <= 0) {
            Py_DECREF(sched);
            return c;
        }
        if ((cc = PyObject_GetAttr(self, s_timer_cancelled_count)) == NULL)
            goto fail;
        cc1 = PyNumber_Subtract(cc, one);
        Py_DECREF(cc);
        if (cc1 == NULL)
            goto fail;
        c = PyObject_SetAttr(self, s_timer_cancelled_count, cc1);
        Py_DECREF(cc1);
        if (c < 0 || (h = PyObject_CallOneArg(S.heappop, sched)) == NULL)
            goto fail;
        Py_DECREF(sched);
        c = set_scheduled_false(h);
        Py_DECREF(h);
        if (c < 0)
            return -1;
    }
fail:
    Py_DECREF(sched);
    return -1;
}

/* the select() timeout: None, 0 or the wait until the first timer
 * (at most MAXIMUM_SELECT_TIMEOUT) */
static PyObject *
select_timeout(PyObject *self, PyObject *ready)
{
    PyObject *sched, *head, *when, *now, *max;
    double t, maxd;
    int r = PyObject_IsTrue(ready);
    if (r == 0)
        r = attr_true(self, s_stopping);
    if (r != 0)
        return r < 0 ? NULL : PyLong_FromLong(0);
    if ((sched = PyObject_GetAttr(self, s_scheduled)) == NULL)
        return NULL;
    if ((r = PyObject_IsTrue(sched)) <= 0) {
        Py_DECREF(sched);
        if (r < 0)
            return NULL;
        Py_RETURN_NONE;
    }
    head = PySequence_GetItem(sched, 0);
    Py_DECREF(sched);
    if (head == NULL)
        return NULL;
    when = timer_when(head);
    Py_DECREF(head);
    if (when == NULL)
        return NULL;
    if ((now = loop_time(self)) == NULL) {
        Py_DECREF(when);
        return NULL;
    }
    t = num_as_double(when) - num_as_double(now);
    Py_DECREF(when);
    Py_DECREF(now);
    if (PyErr_Occurred() || (max = const_get(s_max_timeout)) == NULL)
        return NULL;
    maxd = num_as_double(max);
    if (maxd == -1.0 && PyErr_Occurred())
        return NULL;
    if (t > maxd) {
        Py_INCREF(max);
        return max;
    }
    if (t < 0)
        return PyLong_FromLong(0);
    return PyFloat_FromDouble(t);
}

/* the timers due by now + _clock_resolution, from _scheduled to _ready */
static int
move_due_timers(PyObject *self, PyObject *ready)
{
    PyObject *now, *res, *sched;
    double end;
    if ((now = loop_time(self)) == NULL)
        return -1;
    if ((res = PyObject_GetAttr(self, s_clock_resolution)) == NULL) {
        Py_DECREF(now);
        return -1;
    }
    end = num_as_double(now) + num_as_double(res);
    Py_DECREF(now);
    Py_DECREF(res);
    if (PyErr_Occurred() || (sched = PyObject_GetAttr(self, s_scheduled)) == NULL)
        return -1;
    for (;;) {
        PyObject *h, *when, *r;
        double w;
        Py_ssize_t n = PyList_CheckExact(sched) ? PyList_GET_SIZE(sched) : PyObject_Size(sched);
        if (n <= 0)
            break;
        if ((h = PySequence_GetItem(sched, 0)) == NULL)
            goto fail;
        when = timer_when(h);
        Py_DECREF(h);
        if (when == NULL)
            goto fail;
        w = num_as_double(when);
        Py_DECREF(when);
        if (w == -1.0 && PyErr_Occurred())
            goto fail;
        if (w >= end)
            break;
        if ((h = PyObject_CallOneArg(S.heappop, sched)) == NULL)
            goto fail;
        if (set_scheduled_false(h) < 0 ||
            (r = call_method1(ready, s_append, h)) == NULL) {
            Py_DECREF(h);
            goto fail;
        }
        Py_DECREF(r);
        Py_DECREF(h);
    }
    Py_DECREF(sched);
    return PyErr_Occurred() ? -1 : 0;
fail:
    Py_DECREF(sched);
    return -1;
}

/* self._selector.select(timeout); a RingSelector's (loop.py) straight to
 * its ring's C _select, without the Python frame between */
static PyObject *
selector_select(PyObject *sel, PyObject *timeout)
{
    PyObject *m = PyObject_GetAttr(sel, s_select), *r;
    if (m == NULL)
        return NULL;
    if (PyMethod_Check(m) && PyMethod_GET_FUNCTION(m) == S.ring_select) {
        PyObject *ar = PyObject_GetAttr(sel, s_aring);
        r = ar ? call_method1(ar, s_aring_select, timeout) : NULL;
        Py_XDECREF(ar);
    } else {
        r = PyObject_CallOneArg(m, timeout);
    }
    Py_DECREF(m);
    return r;
}

/* is self.NAME asyncio's own method FN (not overridden, not patched)? */
static int
is_own(PyObject *self, PyObject *name, PyObject *fn)
{
    PyObject *m = PyObject_GetAttr(self, name);
    int r;
    if (m == NULL)
        return -1;
    r = PyMethod_Check(m) && PyMethod_GET_FUNCTION(m) == fn;
    Py_DECREF(m);
    return r;
}

/* one handle of a ready fd (_process_events): a cancelled one removes the
 * fd's reader/writer, another goes to _ready (_add_callback) */
static int
ready_handle(PyObject *self, PyObject *ready, PyObject *fileobj, PyObject *h,
             PyObject *remove)
{
    PyObject *r;
    int c = timer_cancelled(h);     /* h._cancelled, any Handle */
    if (c < 0)
        return -1;
    r = c ? call_method1(self, remove, fileobj) : call_method1(ready, s_append, h);
    Py_XDECREF(r);
    return r == NULL ? -1 : 0;
}

/* self._process_events(events): asyncio's (the same in 3.8..3.13) in C
 * when neither it nor _add_callback is overridden */
static int
process_events(PyObject *self, PyObject *ready, PyObject *events)
{
    PyObject *it, *ev, *r;
    int own;
    if (PyList_CheckExact(events) && PyList_GET_SIZE(events) == 0 &&
        (own = is_own(self, s_process_events, S.py_process_events)) != 0) {
        return own < 0 ? -1 : 0;
    }
    if ((own = is_own(self, s_process_events, S.py_process_events)) == 1)
        own = is_own(self, s_add_callback, S.py_add_callback);
    if (own < 0)
        return -1;
    if (!own) {
        r = call_method1(self, s_process_events, events);
        Py_XDECREF(r);
        return r == NULL ? -1 : 0;
    }
    if ((it = PyObject_GetIter(events)) == NULL)
        return -1;
    while ((ev = PyIter_Next(it)) != NULL) {
        PyObject *key = NULL, *fileobj = NULL, *data = NULL, *rw = NULL;
        long mask;
        int ok = -1;
        if (!PyTuple_CheckExact(ev) || PyTuple_GET_SIZE(ev) != 2) {
            PyErr_SetString(PyExc_ValueError, "select() gave an event that is not (key, mask)");
            goto next;
        }
        key = PyTuple_GET_ITEM(ev, 0);
        if ((mask = PyLong_AsLong(PyTuple_GET_ITEM(ev, 1))) == -1 && PyErr_Occurred())
            goto next;
        if ((fileobj = PyObject_GetAttr(key, s_fileobj)) == NULL ||
            (data = PyObject_GetAttr(key, s_data)) == NULL ||
            (rw = PySequence_Tuple(data)) == NULL)
            goto next;
        if (PyTuple_GET_SIZE(rw) != 2) {
            PyErr_Format(PyExc_ValueError, "expected 2 values to unpack, got %zd",
                         PyTuple_GET_SIZE(rw));
            goto next;
        }
        if ((mask & 1) && PyTuple_GET_ITEM(rw, 0) != Py_None &&
            ready_handle(self, ready, fileobj, PyTuple_GET_ITEM(rw, 0), s_remove_reader) < 0)
            goto next;
        if ((mask & 2) && PyTuple_GET_ITEM(rw, 1) != Py_None &&
            ready_handle(self, ready, fileobj, PyTuple_GET_ITEM(rw, 1), s_remove_writer) < 0)
            goto next;
        ok = 0;
next:
        Py_XDECREF(fileobj);
        Py_XDECREF(data);
        Py_XDECREF(rw);
        Py_DECREF(ev);
        if (ok < 0)
            break;
    }
    Py_DECREF(it);
    return PyErr_Occurred() ? -1 : 0;
}

/* _run_once(): one full iteration of the loop, as BaseEventLoop's */
static PyObject *
LoopCore_run_once(PyObject *self, PyObject *noargs)
{
    PyObject *ready = NULL, *timeout, *sel, *events, *popleft = NULL;
    Py_ssize_t ntodo;
    int d;
    (void)noargs;

    if ((d = attr_true(self, s_debug)) != 0)
        return d < 0 ? NULL : PyObject_CallOneArg(S.py_run_once, self);
    if (drop_cancelled_timers(self) < 0)
        return NULL;
    if ((ready = PyObject_GetAttr(self, s_ready)) == NULL)
        return NULL;
    if ((timeout = select_timeout(self, ready)) == NULL)
        goto fail;
    if ((sel = PyObject_GetAttr(self, s_selector)) == NULL) {
        Py_DECREF(timeout);
        goto fail;
    }
    events = selector_select(sel, timeout);
    Py_DECREF(sel);
    Py_DECREF(timeout);
    if (events == NULL)
        goto fail;
    d = process_events(self, ready, events);
    Py_DECREF(events);
    if (d < 0)
        goto fail;
    if (move_due_timers(self, ready) < 0)
        goto fail;

    /* run the callbacks ready now, not those they schedule (next time,
     * after another wait) */
    if ((ntodo = PyObject_Size(ready)) < 0 ||
        (popleft = PyObject_GetAttr(ready, s_popleft)) == NULL)
        goto fail;
    for (Py_ssize_t i = 0; i < ntodo; i++) {
        PyObject *h = PyObject_CallNoArgs(popleft);
        if (h == NULL)
            goto fail;
        d = run_handle(self, h);
        Py_DECREF(h);
        if (d < 0)
            goto fail;
    }
    Py_DECREF(popleft);
    Py_DECREF(ready);
    Py_RETURN_NONE;
fail:
    Py_XDECREF(popleft);
    Py_DECREF(ready);
    return NULL;
}

/* fn(self, *args, **kw): asyncio's own method, for what the C one leaves
 * to it (debug mode, bad arguments) */
static PyObject *
call_python(PyObject *fn, PyObject *self, PyObject *const *args, Py_ssize_t nargs,
            PyObject *kwnames)
{
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0, n = nargs + nkw + 1;
    PyObject *small[8], **all = n <= 8 ? small : PyMem_New(PyObject *, n), *r;
    if (all == NULL)
        return PyErr_NoMemory();
    all[0] = self;
    memcpy(all + 1, args, (size_t)(nargs + nkw) * sizeof(PyObject *));
    r = PyObject_Vectorcall(fn, all, (size_t)nargs + 1, kwnames);
    if (all != small)
        PyMem_Free(all);
    return r;
}

/* The C path of call_soon/call_at, or 1 when asyncio's must run instead
 * (bad arguments, debug mode): args are (callback, *cbargs) and an
 * optional context= keyword; -1 with an exception */
static int
take_args(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
          PyObject *kwnames, PyObject **context)
{
    int d;
    *context = NULL;
    if (nargs < 1 || (kwnames != NULL && (PyTuple_GET_SIZE(kwnames) != 1 ||
        PyUnicode_Compare(PyTuple_GET_ITEM(kwnames, 0), s_context) != 0)))
        return 1;       /* asyncio's error for it */
    if (kwnames != NULL && args[nargs] != Py_None)
        *context = args[nargs];
    if ((d = attr_true(self, s_closed)) != 0) {
        if (d > 0)
            PyErr_SetString(PyExc_RuntimeError, "Event loop is closed");
        return -1;
    }
    if ((d = attr_true(self, s_debug)) != 0)
        return d < 0 ? -1 : 1;  /* the thread and coroutine checks, the traceback */
    return 0;
}

/* a new handle of type tp (Handle or TimerHandle) as Handle.__init__
 * fills it in outside debug mode: args[0] the callback, the rest its
 * arguments */
static PyObject *
new_handle(PyTypeObject *tp, PyObject *self, PyObject *const *args, Py_ssize_t nargs,
           PyObject *context)
{
    PyObject *h, *cbargs;
    if (context != NULL)
        Py_INCREF(context);
    else if ((context = PyContext_CopyCurrent()) == NULL)
        return NULL;
    if ((cbargs = PyTuple_New(nargs - 1)) == NULL) {
        Py_DECREF(context);
        return NULL;
    }
    for (Py_ssize_t i = 1; i < nargs; i++) {
        Py_INCREF(args[i]);
        PyTuple_SET_ITEM(cbargs, i - 1, args[i]);
    }
    if ((h = tp->tp_alloc(tp, 0)) == NULL) {
        Py_DECREF(cbargs);
        Py_DECREF(context);
        return NULL;
    }
    SLOT(h, S.context) = context;
    Py_INCREF(self);
    SLOT(h, S.loop) = self;
    Py_INCREF(args[0]);
    SLOT(h, S.callback) = args[0];
    SLOT(h, S.args) = cbargs;
    Py_INCREF(Py_False);
    SLOT(h, S.cancelled) = Py_False;
    Py_INCREF(Py_None);
    SLOT(h, S.repr) = Py_None;
    Py_INCREF(Py_None);
    SLOT(h, S.source_tb) = Py_None;
    return h;
}

/* call_soon(callback, *args, context=None), as BaseEventLoop's: a real
 * asyncio.Handle, made without its Python __init__, on _ready */
static PyObject *
LoopCore_call_soon(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                   PyObject *kwnames)
{
    PyObject *context, *h, *ready, *r;
    int t = take_args(self, args, nargs, kwnames, &context);
    if (t != 0)
        return t < 0 ? NULL : call_python(S.py_call_soon, self, args, nargs, kwnames);
    if ((h = new_handle(S.handle, self, args, nargs, context)) == NULL)
        return NULL;
    if ((ready = PyObject_GetAttr(self, s_ready)) == NULL) {
        Py_DECREF(h);
        return NULL;
    }
    r = call_method1(ready, s_append, h);
    Py_DECREF(ready);
    if (r == NULL) {
        Py_DECREF(h);
        return NULL;
    }
    Py_DECREF(r);
    return h;
}

/* call_at(when, callback, *args, context=None), as BaseEventLoop's: a
 * real asyncio.TimerHandle pushed on _scheduled (call_later, asyncio's,
 * comes here too) */
static PyObject *
LoopCore_call_at(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                 PyObject *kwnames)
{
    PyObject *context, *h, *sched, *r;
    int t;
    if (nargs < 2 || args[0] == Py_None)    /* asyncio's error (3.8: assert) */
        return call_python(S.py_call_at, self, args, nargs, kwnames);
    t = take_args(self, args + 1, nargs - 1, kwnames, &context);
    if (t != 0)
        return t < 0 ? NULL : call_python(S.py_call_at, self, args, nargs, kwnames);
    if ((h = new_handle(S.timer, self, args + 1, nargs - 1, context)) == NULL)
        return NULL;
    Py_INCREF(args[0]);
    SLOT(h, S.when) = args[0];
    Py_INCREF(Py_False);
    SLOT(h, S.scheduled) = Py_False;
    if ((sched = PyObject_GetAttr(self, s_scheduled)) == NULL) {
        Py_DECREF(h);
        return NULL;
    }
    r = PyObject_CallFunctionObjArgs(S.heappush, sched, h, NULL);
    Py_DECREF(sched);
    if (r == NULL) {
        Py_DECREF(h);
        return NULL;
    }
    Py_DECREF(r);
    Py_INCREF(Py_True);
    Py_XSETREF(SLOT(h, S.scheduled), Py_True);
    return h;
}

/* time(), as BaseEventLoop's: time.monotonic() */
static PyObject *
LoopCore_time(PyObject *self, PyObject *noargs)
{
    (void)self;
    (void)noargs;
    return PyObject_CallNoArgs(S.monotonic);
}

/* get_debug(), as BaseEventLoop's: self._debug (every C Future and Task
 * asks it at creation) */
static PyObject *
LoopCore_get_debug(PyObject *self, PyObject *noargs)
{
    (void)noargs;
    return PyObject_GetAttr(self, s_debug);
}

/* base_events' module global NAME's attribute ATTR (futures.Future,
 * tasks.Task), looked up at each call as asyncio's method does, so a
 * patched class is the one used; new reference */
static PyObject *
base_events_attr(PyObject *name, PyObject *attr)
{
    PyObject *mod = PyDict_GetItemWithError(S.consts, name);
    if (mod == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetObject(PyExc_NameError, name);
        return NULL;
    }
    return PyObject_GetAttr(mod, attr);
}

/* create_future(), as BaseEventLoop's: futures.Future(loop=self) */
static PyObject *
LoopCore_create_future(PyObject *self, PyObject *noargs)
{
    PyObject *cls = base_events_attr(s_futures, s_Future), *r;
    PyObject *argv[2] = {NULL, self};
    (void)noargs;
    if (cls == NULL)
        return NULL;
    r = PyObject_Vectorcall(cls, argv + 1, PY_VECTORCALL_ARGUMENTS_OFFSET, kw_loop);
    Py_DECREF(cls);
    return r;
}

/* create_task(coro, *, name=None, context=None), as BaseEventLoop's:
 * tasks.Task(coro, loop=self, name=..., context=...) when there is no
 * task factory and the loop is not in debug mode (where asyncio's trims
 * the task's source traceback); asyncio's own method otherwise, and for
 * any keyword that version does not take (its TypeError) */
static PyObject *
LoopCore_create_task(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                     PyObject *kwnames)
{
    PyObject *argv[4], *names, *cls, *r, *factory;
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    int d;
    if (nargs != 1)
        return call_python(S.py_create_task, self, args, nargs, kwnames);
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *k = PyTuple_GET_ITEM(kwnames, i);
        if (PyUnicode_Compare(k, s_name) != 0 &&
            (!PU_TASK_TAKES_CONTEXT || PyUnicode_Compare(k, s_context) != 0))
            return call_python(S.py_create_task, self, args, nargs, kwnames);
    }
    if ((d = attr_true(self, s_closed)) != 0) {
        if (d > 0)
            PyErr_SetString(PyExc_RuntimeError, "Event loop is closed");
        return NULL;
    }
    if ((d = attr_true(self, s_debug)) != 0)
        return d < 0 ? NULL : call_python(S.py_create_task, self, args, nargs, kwnames);
    if ((factory = PyObject_GetAttr(self, s_task_factory)) == NULL)
        return NULL;
    Py_DECREF(factory);
    if (factory != Py_None)
        return call_python(S.py_create_task, self, args, nargs, kwnames);
    if ((cls = base_events_attr(s_tasks, s_Task)) == NULL)
        return NULL;
    /* Task(coro, loop=self, **the caller's name/context) */
    argv[0] = NULL;
    argv[1] = args[0];
    argv[2] = self;
    if (nkw == 0) {
        r = PyObject_Vectorcall(cls, argv + 1, 1 | PY_VECTORCALL_ARGUMENTS_OFFSET, kw_loop);
    } else {
        PyObject *all[1 + 1 + 1 + 2];
        all[0] = NULL;
        all[1] = args[0];
        all[2] = self;
        for (Py_ssize_t i = 0; i < nkw; i++)
            all[3 + i] = args[1 + i];
        if ((names = PySequence_Concat(kw_loop, kwnames)) == NULL) {
            Py_DECREF(cls);
            return NULL;
        }
        r = PyObject_Vectorcall(cls, all + 1, 1 | PY_VECTORCALL_ARGUMENTS_OFFSET, names);
        Py_DECREF(names);
    }
    Py_DECREF(cls);
    return r;
}

static PyMethodDef LoopCore_methods[] = {
    {"_run_once", (PyCFunction)LoopCore_run_once, METH_NOARGS,
     "Run one full iteration of the event loop (asyncio's, in C)."},
    {"call_soon", (PyCFunction)(void (*)(void))LoopCore_call_soon,
     METH_FASTCALL | METH_KEYWORDS,
     "Arrange for a callback to be called as soon as possible (asyncio's, in C)."},
    {"call_at", (PyCFunction)(void (*)(void))LoopCore_call_at,
     METH_FASTCALL | METH_KEYWORDS,
     "Like call_later(), but uses an absolute time (asyncio's, in C)."},
    {"time", (PyCFunction)LoopCore_time, METH_NOARGS,
     "time($self, /)\n--\n\n"
     "Return the time according to the event loop's clock (asyncio's, in C)."},
    {"get_debug", (PyCFunction)LoopCore_get_debug, METH_NOARGS,
     "get_debug($self, /)\n--\n\n"
     "Return whether the event loop is in debug mode (asyncio's, in C)."},
    {"create_future", (PyCFunction)LoopCore_create_future, METH_NOARGS,
     "create_future($self, /)\n--\n\n"
     "Create a Future object attached to the loop (asyncio's, in C)."},
    {"create_task", (PyCFunction)(void (*)(void))LoopCore_create_task,
     METH_FASTCALL | METH_KEYWORDS,
     "Schedule a coroutine object; return a task object (asyncio's, in C)."},
    {"_setup", (PyCFunction)LoopCore_setup, METH_VARARGS | METH_STATIC, NULL},
    {NULL, NULL, 0, NULL},
};

PyTypeObject pu_LoopCoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "py_io_uring._core._LoopCore",
    .tp_basicsize = sizeof(PyObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "asyncio's _run_once, call_soon and call_at in C, for py_io_uring's EventLoop (private).",
    .tp_new = PyType_GenericNew,
    .tp_methods = LoopCore_methods,
};

int
pu_loop_core_init(void)
{
    static const struct {
        PyObject **slot;
        const char *name;
    } names[] = {
        {&s_debug, "_debug"}, {&s_closed, "_closed"}, {&s_ready, "_ready"},
        {&s_scheduled, "_scheduled"}, {&s_stopping, "_stopping"},
        {&s_selector, "_selector"}, {&s_select, "select"},
        {&s_process_events, "_process_events"}, {&s_time, "time"},
        {&s_clock_resolution, "_clock_resolution"},
        {&s_timer_cancelled_count, "_timer_cancelled_count"},
        {&s_popleft, "popleft"}, {&s_append, "append"},
        {&s_cancelled, "_cancelled"}, {&s_when, "_when"}, {&s_run, "_run"},
        {&s_context, "context"}, {&s_ctx_run, "run"},
        {&s_aring, "_aring"}, {&s_aring_select, "_select"},
        {&s_add_callback, "_add_callback"}, {&s_remove_reader, "_remove_reader"},
        {&s_remove_writer, "_remove_writer"}, {&s_fileobj, "fileobj"},
        {&s_data, "data"},
        {&s_name, "name"}, {&s_task_factory, "_task_factory"},
        {&s_futures, "futures"}, {&s_Future, "Future"},
        {&s_tasks, "tasks"}, {&s_Task, "Task"},
        {&s_min_sched, "_MIN_SCHEDULED_TIMER_HANDLES"},
        {&s_min_frac, "_MIN_CANCELLED_TIMER_HANDLES_FRACTION"},
        {&s_max_timeout, "MAXIMUM_SELECT_TIMEOUT"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (*names[i].slot == NULL &&
            (*names[i].slot = PyUnicode_InternFromString(names[i].name)) == NULL)
            return -1;
    }
    if (one == NULL && (one = PyLong_FromLong(1)) == NULL)
        return -1;
    if (kw_loop == NULL && (kw_loop = Py_BuildValue("(s)", "loop")) == NULL)
        return -1;
    return PyType_Ready(&pu_LoopCoreType);
}
