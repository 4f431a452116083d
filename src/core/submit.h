/* core/submit.h: private to core/: what the waits (wait.c) share with the
 * submission side (submit.c).  A wait flushes what is queued first, and
 * both report a signal the same way. */
#ifndef PU_CORE_SUBMIT_H
#define PU_CORE_SUBMIT_H

#include "core/ring.h"

void pu_seal_pending(RingObject *r);
int pu_only_thread(void);
void pu_note_idle_wait(RingObject *r);
int pu_ring_flush_then_check_cq(RingObject *r);

/* After signal handlers ran (PyErr_CheckSignals() passed) inside a call:
 * they may have closed the ring (queue_exit() is then deferred and the
 * ring refuses everything) or forked.  0 when the call may go on. */
static inline int
pu_still_usable(RingObject *r)
{
    return pu_ring_check(r);
}

extern PyMethodDef pu_submit_methods[];
extern PyMethodDef pu_wait_methods[];
extern PyMethodDef pu_resize_methods[];   /* resize.c */
extern PyMethodDef pu_ring_mem_methods[];  /* ring_mem.c */

#endif
