/* enter_fd.c: which fd liburing enters the ring by, once its fd is
 * registered (register/ring_fd.c has the methods).
 *
 * The kernel keeps registered ring fds per thread (task): an
 * io_uring_enter() with IORING_ENTER_REGISTERED_RING looks the index up in
 * the calling thread's table, so from another thread it fails (EINVAL,
 * EBADF) or, worse, names another ring that thread registered there.
 * liburing keeps one index in the shared struct io_uring (enter_ring_fd,
 * with a bit of int_flags), read by every thread that enters.
 *
 * So the struct says "the ring fd" (valid for every thread) at all times
 * but one: while the registering thread runs a call that holds both sides
 * of the ring (submit_and_wait(), reap(..., submit=True)), no other thread
 * can be in liburing on this ring, and the struct says "the index" for
 * that call only.  After close_ring_fd() the index is all there is: the
 * struct says it for good, and the ring refuses every other thread
 * (errors.c).  The bits liburing sets for the index are learned from its
 * own io_uring_register_ring_fd() (their values differ between releases). */
#include "core/ring.h"

#include <errno.h>

/* the kernel's value (6.3; an enum member in liburing 2.4's headers, so
 * no #ifndef can tell whether they have it) */
#define PU_REGISTER_USE_REGISTERED_RING (1U << 31)

uint64_t
pu_thread_token(void)
{
    /* under the GIL: no two threads run this at once */
    static _Thread_local uint64_t token;
    static uint64_t last;

    if (token == 0)
        token = ++last;
    return token;
}

int
pu_enter_by_index(RingObject *r)
{
    if (!r->fd_registered || r->fd_closed || r->reg_thread != pu_thread_token())
        return 0;
    r->ring.int_flags |= r->reg_bit;
    r->ring.enter_ring_fd = r->reg_index;
    return 1;
}

void
pu_enter_by_fd(RingObject *r, int switched)
{
    if (!switched)
        return;
    r->ring.int_flags &= (__u8)~r->reg_bit;
    r->ring.enter_ring_fd = r->ring.ring_fd;
}

/* May this thread enter the ring at all?  Not after close_ring_fd() from
 * another thread than the registering one (teardown then cannot drain). */
int
pu_ring_reachable(RingObject *r)
{
    return !r->fd_closed || r->reg_thread == pu_thread_token();
}

/* The fd and opcode for io_uring_register() on this ring: after
 * close_ring_fd() the index, which the caller (the registering thread,
 * the only one the ring accepts then) has. */
unsigned
pu_register_fd(RingObject *r, unsigned *op)
{
    if (r->fd_closed) {
        *op |= PU_REGISTER_USE_REGISTERED_RING;
        return (unsigned)r->reg_index;
    }
    return (unsigned)r->ring.ring_fd;
}

/* At teardown, before io_uring_queue_exit(): free the registered slot when
 * this is the registering thread (from another thread the kernel would
 * free that thread's slot of the same number, maybe another ring's; the
 * slot then stays taken until the registering thread ends), and leave the
 * struct saying "no index", so that liburing does not try either. */
void
pu_ring_fd_release(RingObject *r)
{
    int mine;

    if (!r->fd_registered)
        return;
    mine = r->reg_thread == pu_thread_token();
    if (mine) {
        struct io_uring_rsrc_update up = {.offset = (__u32)r->reg_index};
        if (r->fd_closed)
            (void)io_uring_register((unsigned)r->reg_index,
                                    IORING_UNREGISTER_RING_FDS |
                                    PU_REGISTER_USE_REGISTERED_RING,
                                    &up, 1);
        else
            (void)io_uring_register((unsigned)r->ring.ring_fd,
                                    IORING_UNREGISTER_RING_FDS, &up, 1);
    }
    r->ring.int_flags &= (__u8)~(r->reg_bit | r->reg_reg_bit);
    r->ring.enter_ring_fd = r->ring.ring_fd;
    r->fd_registered = 0;
    r->fd_closed = 0;
}
