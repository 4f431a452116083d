/* op_helpers.h: the small hand-written parts that some ops.def entries name:
 * result makers (`result` lines) and struct builders (`call` lines).  Each
 * serves every op of its shape, not one op. */
#ifndef PU_OP_HELPERS_H
#define PU_OP_HELPERS_H

#include "py_io_uring.h"

#endif
