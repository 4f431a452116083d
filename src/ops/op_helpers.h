/* op_helpers.h: the small hand-written parts that some ops.def entries name:
 * struct builders (`call` lines) and result makers (`result` lines).  Each
 * serves every op of its shape, not one op. */
#ifndef PU_OP_HELPERS_H
#define PU_OP_HELPERS_H

#include "register/register.h"   /* provide_buffers describes what it gives */
#include "async/async.h"         /* AsyncRing.NAME: pu_async_op, pu_async_iter */
#include "ops/liburing_compat.h" /* upstream's helpers the headers lack */

#include <linux/falloc.h>
#include <linux/stat.h>
#include <stdio.h>
#include <string.h>
#include <sys/xattr.h>
#include <sys/epoll.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>

void *pu_rec_state(SqeObject *rec, size_t size);

/* The registered file slot a *_direct op fills: the SQE stores slot + 1
 * (0 means "not direct"), and IORING_FILE_INDEX_ALLOC as itself (liburing
 * 2.3's helpers would wrap it to 0).  liburing_compat.h now gives every
 * liburing the upstream helpers that do this; kept for the entries that
 * still call it. */
static inline void
pu_sqe_target_slot(struct io_uring_sqe *sqe, unsigned file_index)
{
    sqe->file_index = file_index == IORING_FILE_INDEX_ALLOC ? IORING_FILE_INDEX_ALLOC
                                                            : file_index + 1;
}

int pu_rec_poll_update(SqeObject *rec, __u64 target, PyObject *new_data,
                       unsigned flags);
void pu_poll_update_complete(RingObject *r, SqeObject *rec, int32_t res);
struct open_how *pu_rec_open_how(SqeObject *rec, __u64 flags, __u64 mode,
                                 __u64 resolve);
struct msghdr *pu_rec_msghdr(SqeObject *rec, struct iovec *iov, unsigned niov,
                             void *control, unsigned controllen,
                             const struct sockaddr *addr, socklen_t addrlen);
struct msghdr *pu_rec_recvmsg(SqeObject *rec, unsigned bufsize,
                              unsigned ancbufsize);

PyObject *pu_result_recvmsg(CqeObject *q);
PyObject *pu_result_recvmsg_multishot(CqeObject *q);
PyObject *pu_result_statx(CqeObject *q);
PyObject *pu_result_pipe(CqeObject *q);
PyObject *pu_result_epoll_wait(CqeObject *q);
PyObject *pu_result_waitid(CqeObject *q);
PyObject *pu_result_sockname(CqeObject *q);
PyObject *pu_result_tx_timestamp(CqeObject *q);
int pu_rec_need_sqe128(SqeObject *rec, const char *fname);

#endif
