/* async/async.h: what the rest of the module sees of AsyncRing: the type
 * (module.c adds it) and the two entry points of the generated awaitable
 * forms (ops_gen.c, through ops/op_helpers.h).  Everything else of
 * AsyncRing is private to src/async/ (async_internal.h). */
#ifndef PU_ASYNC_H
#define PU_ASYNC_H

#include "compat.h"

struct pu_opdef;

extern PyTypeObject pu_AsyncRingType;
extern PyTypeObject pu_AsyncChainType;    /* AsyncRing.chain()'s (chain.c) */
extern PyTypeObject *pu_aio_stream_type; /* _UringStream (stream.c) */
int pu_async_type_init(void);
/* _LoopCore: asyncio's _run_once, call_soon and call_at in C, the base class
 * loop.py's EventLoop mixes in (loop_core.c) */
extern PyTypeObject pu_LoopCoreType;
int pu_loop_core_init(void);

/* AsyncRing.NAME(...) for an op whose async mode is `await`: prepare it
 * now, return the future of its result (dispatch.c) */
PyObject *pu_async_op(PyObject *self, const struct pu_opdef *op, PyObject *const *args,
                      Py_ssize_t nargs, PyObject *kwnames);
/* ... and `iter`: a multishot operation's async iterator (multishot.c) */
PyObject *pu_async_iter(PyObject *self, const struct pu_opdef *op, PyObject *const *args,
                        Py_ssize_t nargs, PyObject *kwnames);

#endif
