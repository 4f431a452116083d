/* register/register.h: what the kernel holds beyond one operation:
 * registered buffers and files, buffer rings, provided buffers.  The ring
 * releases them at teardown; reaping tells them of provided-buffer ops. */
#ifndef PU_REGISTER_H
#define PU_REGISTER_H

#include "ops/opdef.h"

/* registrations (register.c) */
extern PyMethodDef pu_register_methods[];
extern PyMethodDef pu_restrict_methods[];   /* restrict.c */
extern PyMethodDef pu_ring_fd_methods[];    /* ring_fd.c */
extern PyMethodDef pu_napi_methods[];       /* napi.c */
extern PyMethodDef pu_sync_methods[];       /* sync.c */
extern PyMethodDef pu_query_methods[];      /* query.c */
PyObject *pu_bufring_take(RingObject *r, unsigned bgid, uint32_t cqe_flags,
                          int32_t res, uint16_t *nbufs);
void pu_release_registrations(RingObject *r);
void pu_leak_registrations(RingObject *r);
int pu_provided_describe(SqeObject *rec, int each, int nr, int bgid, int bid);
int pu_provided_describe_remove(SqeObject *rec, int bgid);
void pu_provided_complete(RingObject *r, SqeObject *rec, int32_t res);  /* `complete` */
int pu_provided_unget_sqe(RingObject *r, SqeObject *rec);


#endif
