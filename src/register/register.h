/* register/register.h: what the kernel holds beyond one operation:
 * registered buffers and files, buffer rings, provided buffers.  The ring
 * releases them at teardown; reaping tells them of provided-buffer ops. */
#ifndef PU_REGISTER_H
#define PU_REGISTER_H

#include "ops/opdef.h"

/* registrations (register.c) */
extern PyMethodDef pu_register_methods[];
extern PyMethodDef pu_restrict_methods[];   /* restrict.c */
int pu_ring_enable(RingObject *r);          /* restrict.c: -errno on failure */
extern PyMethodDef pu_ring_fd_methods[];    /* ring_fd.c */
extern PyMethodDef pu_napi_methods[];       /* napi.c */
extern PyMethodDef pu_sync_methods[];       /* sync.c */
extern PyMethodDef pu_query_methods[];      /* query.c */
PyObject *pu_bufring_take(RingObject *r, unsigned bgid, uint32_t cqe_flags,
                          int32_t res, uint16_t *nbufs, const uint32_t *off);
void pu_bufring_defer(RingObject *r, unsigned bgid, uint32_t cqe_flags, int32_t res,
                      uint32_t *off);
void pu_release_registrations(RingObject *r);
void pu_leak_registrations(RingObject *r);
int pu_provided_describe(SqeObject *rec, int each, int nr, int bgid, int bid);
int pu_provided_describe_remove(SqeObject *rec, int bgid);
void pu_provided_complete(RingObject *r, SqeObject *rec, int32_t res);  /* `complete` */
int pu_provided_unget_sqe(RingObject *r, SqeObject *rec);

/* the registered buffer table's pins, tagged files and buffers (tags.c) */
typedef struct pu_regbuf pu_regbuf;
extern PyMethodDef pu_tags_methods[];
extern PyMethodDef pu_clone_methods[];   /* clone.c */
extern PyMethodDef pu_region_methods[];  /* region.c */
void pu_region_release(RingObject *r);
void pu_region_leak(RingObject *r);
void pu_ring_mem_release(RingObject *r);   /* core/ring_mem.c */
pu_regbuf *pu_regbuf_incref(pu_regbuf *p);
void pu_regbuf_decref(pu_regbuf *p);
int pu_pins_from(const pu_argspec *sp, int i, PyObject *seq, int allow_none,
                 pu_regbuf ***pins_out, struct iovec **iov_out);
void pu_pins_drop(pu_regbuf **pins, unsigned n);
void pu_buf_table_set(RingObject *r, pu_regbuf **pins, unsigned n);
void pu_buf_table_clear(RingObject *r);
int pu_buf_table_swap(RingObject *r, unsigned slot, pu_regbuf **pin);
pu_regbuf *pu_buf_table_get(RingObject *r, unsigned slot);
PyObject *pu_rsrc_tag_peek(RingObject *r, __u64 ud);
void pu_rsrc_tag_done(RingObject *r, __u64 ud);
int pu_rsrc_traverse(RingObject *r, visitproc visit, void *arg);
void pu_rsrc_release(RingObject *r);
void pu_rsrc_leak(RingObject *r);
int pu_refuse_bufs_registered(RingObject *r);

/* zero-copy receive: register_ifq() and its RECV_ZC completions (zcrx.c) */
extern PyMethodDef pu_zcrx_methods[];
int pu_rec_recv_zc(SqeObject *rec, unsigned ifq);
PyObject *pu_result_recv_zc(CqeObject *q);
int pu_zcrx_take(RingObject *r, SqeObject *rec, const struct io_uring_cqe *c,
                 PyObject **out);
void pu_zcrx_release(RingObject *r);
void pu_zcrx_leak(RingObject *r);


#endif
