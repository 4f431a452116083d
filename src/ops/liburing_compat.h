/* liburing_compat.h: upstream liburing's prep helpers, by upstream's names
 * and signatures, for the headers that lack them, so that ops.def's `call`
 * lines read as C written against the newest liburing (2.15) whichever
 * liburing the module is built with (Debian 12's 2.3 and later).
 *
 * Each definition is guarded by liburing's own version macros
 * (IO_URING_VERSION_MAJOR/MINOR, from liburing/io_uring_version.h, which
 * liburing has only since 2.4: without them the headers are 2.3 or older)
 * and appears only where the headers lack it; the version each helper or
 * name arrived in was read from liburing's release tags.  Where a release's
 * helper behaves differently from upstream's (2.3's *_direct helpers and
 * IORING_FILE_INDEX_ALLOC, 2.6's read_multishot without IOSQE_BUFFER_SELECT),
 * the upstream behaviour replaces it under the same name, as a macro.
 *
 * The bodies fill the entry by the field names every release has (rw_flags,
 * file_index, addr3, off, buf_index, cmd_op): the newer names (pipe_flags,
 * futex_flags, waitid_flags, install_fd_flags, optval, optlen, level,
 * optname) are unions over these.  Each prep starts from a zeroed entry
 * (pu_sqe_reset()), so a helper sets only what upstream's sets. */
#ifndef PU_LIBURING_COMPAT_H
#define PU_LIBURING_COMPAT_H

#include <liburing.h>

#include <linux/futex.h>    /* struct futex_waitv */
#include <stdint.h>
#include <string.h>
#include <errno.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>     /* _IO, for BLOCK_URING_CMD_DISCARD */
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>

/* true when the headers are liburing MAJOR.MINOR or later */
#if defined(IO_URING_VERSION_MAJOR) && defined(IO_URING_VERSION_MINOR)
#define PU_LIBURING_AT_LEAST(major, minor)                                   \
    (IO_URING_VERSION_MAJOR > (major) ||                                     \
     (IO_URING_VERSION_MAJOR == (major) && IO_URING_VERSION_MINOR >= (minor)))
#else
#define PU_LIBURING_AT_LEAST(major, minor) \
    ((major) < 2 || ((major) == 2 && (minor) <= 3))
#endif

/* ---- names the headers lack: opcodes and flags, upstream's numbers ---- */

/* flags (macros upstream) some headers lack */
#ifndef IORING_RECVSEND_BUNDLE
#define IORING_RECVSEND_BUNDLE (1U << 4)
#endif
#ifndef IORING_MSG_RING_FLAGS_PASS
#define IORING_MSG_RING_FLAGS_PASS (1U << 1)
#endif
#ifndef IORING_ACCEPT_DONTWAIT
#define IORING_ACCEPT_DONTWAIT (1U << 1)
#endif
#ifndef IORING_ACCEPT_POLL_FIRST
#define IORING_ACCEPT_POLL_FIRST (1U << 2)
#endif

#if !PU_LIBURING_AT_LEAST(2, 5)
#define SOCKET_URING_OP_SIOCINQ 0
#define SOCKET_URING_OP_SIOCOUTQ 1
#endif
#if !PU_LIBURING_AT_LEAST(2, 6)
#define SOCKET_URING_OP_GETSOCKOPT 2
#define SOCKET_URING_OP_SETSOCKOPT 3
#define IORING_OP_READ_MULTISHOT 49
#define IORING_OP_WAITID 50
#define IORING_OP_FUTEX_WAIT 51
#define IORING_OP_FUTEX_WAKE 52
#define IORING_OP_FUTEX_WAITV 53
#define IORING_OP_FIXED_FD_INSTALL 54
#define IORING_OP_FTRUNCATE 55
#define IORING_FIXED_FD_NO_CLOEXEC (1U << 0)
#endif
#if !PU_LIBURING_AT_LEAST(2, 7)
#define IORING_OP_BIND 56
#define IORING_OP_LISTEN 57
#endif
#if !PU_LIBURING_AT_LEAST(2, 10)
#define IORING_OP_EPOLL_WAIT 59
#define IORING_OP_READV_FIXED 60
#define IORING_OP_WRITEV_FIXED 61
#endif
#if !PU_LIBURING_AT_LEAST(2, 12)
#define IORING_OP_PIPE 62
#endif

/* ---- 2.4: the *_direct helpers take IORING_FILE_INDEX_ALLOC as itself ----
 * (2.3's add 1 to it, which wraps to 0: "not direct") */

#if !PU_LIBURING_AT_LEAST(2, 4)
static inline void
pu_compat_set_target_slot(struct io_uring_sqe *sqe, unsigned int file_index)
{
    /* the entry stores slot + 1; IORING_FILE_INDEX_ALLOC as itself */
    sqe->file_index = file_index == IORING_FILE_INDEX_ALLOC ? IORING_FILE_INDEX_ALLOC
                                                            : file_index + 1;
}

static inline void
pu_compat_prep_openat_direct(struct io_uring_sqe *sqe, int dfd, const char *path,
                             int flags, mode_t mode, unsigned file_index)
{
    io_uring_prep_openat(sqe, dfd, path, flags, mode);
    pu_compat_set_target_slot(sqe, file_index);
}
#define io_uring_prep_openat_direct pu_compat_prep_openat_direct

static inline void
pu_compat_prep_openat2_direct(struct io_uring_sqe *sqe, int dfd, const char *path,
                              struct open_how *how, unsigned file_index)
{
    io_uring_prep_openat2(sqe, dfd, path, how);
    pu_compat_set_target_slot(sqe, file_index);
}
#define io_uring_prep_openat2_direct pu_compat_prep_openat2_direct

static inline void
pu_compat_prep_socket_direct(struct io_uring_sqe *sqe, int domain, int type,
                             int protocol, unsigned file_index, unsigned int flags)
{
    io_uring_prep_socket(sqe, domain, type, protocol, flags);
    pu_compat_set_target_slot(sqe, file_index);
}
#define io_uring_prep_socket_direct pu_compat_prep_socket_direct

static inline void
pu_compat_prep_accept_direct(struct io_uring_sqe *sqe, int fd, struct sockaddr *addr,
                             socklen_t *addrlen, int flags, unsigned int file_index)
{
    io_uring_prep_accept(sqe, fd, addr, addrlen, flags);
    pu_compat_set_target_slot(sqe, file_index);
}
#define io_uring_prep_accept_direct pu_compat_prep_accept_direct
#endif

/* ---- 2.4: msg_ring sends a registered file, or a completion's flags ---- */

#if !PU_LIBURING_AT_LEAST(2, 4)
static inline void
io_uring_prep_msg_ring_fd(struct io_uring_sqe *sqe, int fd, int source_fd,
                          int target_fd, __u64 data, unsigned int flags)
{
    io_uring_prep_rw(IORING_OP_MSG_RING, sqe, fd, (void *)(uintptr_t)IORING_MSG_SEND_FD,
                     0, data);
    sqe->addr3 = (__u64)source_fd;
    /* the target slot is stored + 1; IORING_FILE_INDEX_ALLOC as itself */
    if ((unsigned int)target_fd == IORING_FILE_INDEX_ALLOC)
        target_fd--;
    sqe->file_index = (__u32)target_fd + 1;
    sqe->msg_ring_flags = flags;
}

static inline void
io_uring_prep_msg_ring_fd_alloc(struct io_uring_sqe *sqe, int fd, int source_fd,
                                __u64 data, unsigned int flags)
{
    io_uring_prep_msg_ring_fd(sqe, fd, source_fd, (int)IORING_FILE_INDEX_ALLOC, data, flags);
}

static inline void
io_uring_prep_msg_ring_cqe_flags(struct io_uring_sqe *sqe, int fd, unsigned int len,
                                 __u64 data, unsigned int flags, unsigned int cqe_flags)
{
    io_uring_prep_rw(IORING_OP_MSG_RING, sqe, fd, NULL, len, data);
    sqe->msg_ring_flags = IORING_MSG_RING_FLAGS_PASS | flags;
    sqe->file_index = cqe_flags;
}
#endif

/* ---- 2.5 ---- */

#if !PU_LIBURING_AT_LEAST(2, 5)
/* IORING_OP_URING_CMD on a socket: level and optname are the two halves of
 * addr, optval is addr3, optlen is file_index */
static inline void
io_uring_prep_cmd_sock(struct io_uring_sqe *sqe, int cmd_op, int fd, int level,
                       int optname, void *optval, int optlen)
{
    struct { __u32 level, optname; } lo = {(__u32)level, (__u32)optname};

    io_uring_prep_rw(IORING_OP_URING_CMD, sqe, fd, NULL, 0, 0);
    sqe->cmd_op = (__u32)cmd_op;
    memcpy(&sqe->addr, &lo, sizeof(lo));
    sqe->addr3 = (__u64)(uintptr_t)optval;
    sqe->file_index = (__u32)optlen;
}
#endif

/* ---- 2.6 ---- */

#if !PU_LIBURING_AT_LEAST(2, 6)
static inline void
io_uring_prep_waitid(struct io_uring_sqe *sqe, idtype_t idtype, id_t id,
                     siginfo_t *infop, int options, unsigned int flags)
{
    io_uring_prep_rw(IORING_OP_WAITID, sqe, (int)id, NULL, (unsigned)idtype, 0);
    sqe->rw_flags = (int)flags;                 /* waitid_flags */
    sqe->file_index = (__u32)options;
    sqe->off = (__u64)(uintptr_t)infop;         /* addr2 */
}

static inline void
io_uring_prep_futex_wait(struct io_uring_sqe *sqe, const uint32_t *futex,
                         uint64_t val, uint64_t mask, uint32_t futex_flags,
                         unsigned int flags)
{
    io_uring_prep_rw(IORING_OP_FUTEX_WAIT, sqe, (int)futex_flags, futex, 0, val);
    sqe->rw_flags = (int)flags;                 /* futex_flags */
    sqe->addr3 = mask;
}

static inline void
io_uring_prep_futex_wake(struct io_uring_sqe *sqe, const uint32_t *futex,
                         uint64_t val, uint64_t mask, uint32_t futex_flags,
                         unsigned int flags)
{
    io_uring_prep_rw(IORING_OP_FUTEX_WAKE, sqe, (int)futex_flags, futex, 0, val);
    sqe->rw_flags = (int)flags;                 /* futex_flags */
    sqe->addr3 = mask;
}

static inline void
io_uring_prep_futex_waitv(struct io_uring_sqe *sqe, const struct futex_waitv *futex,
                          uint32_t nr_futex, unsigned int flags)
{
    io_uring_prep_rw(IORING_OP_FUTEX_WAITV, sqe, 0, futex, nr_futex, 0);
    sqe->rw_flags = (int)flags;                 /* futex_flags */
}

static inline void
io_uring_prep_fixed_fd_install(struct io_uring_sqe *sqe, int fd, unsigned int flags)
{
    io_uring_prep_rw(IORING_OP_FIXED_FD_INSTALL, sqe, fd, NULL, 0, 0);
    sqe->flags = IOSQE_FIXED_FILE;
    sqe->rw_flags = (int)flags;                 /* install_fd_flags */
}

static inline void
io_uring_prep_ftruncate(struct io_uring_sqe *sqe, int fd, loff_t len)
{
    io_uring_prep_rw(IORING_OP_FTRUNCATE, sqe, fd, NULL, 0, (__u64)len);
}
#endif

/* read_multishot: new in 2.6, whose helper leaves out IOSQE_BUFFER_SELECT
 * (fixed in 2.7); upstream's sets it */
#if !PU_LIBURING_AT_LEAST(2, 7)
static inline void
pu_compat_prep_read_multishot(struct io_uring_sqe *sqe, int fd, unsigned nbytes,
                              __u64 offset, int buf_group)
{
    io_uring_prep_rw(IORING_OP_READ_MULTISHOT, sqe, fd, NULL, nbytes, offset);
    sqe->buf_group = (__u16)buf_group;
    sqe->flags = IOSQE_BUFFER_SELECT;
}
#define io_uring_prep_read_multishot pu_compat_prep_read_multishot
#endif

/* ---- 2.7: 64-bit advice lengths ---- */

#if !PU_LIBURING_AT_LEAST(2, 7)
/* the length in addr (fadvise) or off (madvise), len 0: kernels before
 * these fields were read refuse them with -EINVAL, never cut them */
static inline void
io_uring_prep_fadvise64(struct io_uring_sqe *sqe, int fd, __u64 offset, off_t len,
                        int advice)
{
    io_uring_prep_rw(IORING_OP_FADVISE, sqe, fd, NULL, 0, offset);
    sqe->addr = (__u64)len;
    sqe->fadvise_advice = (__u32)advice;
}

static inline void
io_uring_prep_madvise64(struct io_uring_sqe *sqe, void *addr, off_t length, int advice)
{
    io_uring_prep_rw(IORING_OP_MADVISE, sqe, -1, addr, 0, (__u64)length);
    sqe->fadvise_advice = (__u32)advice;
}
#endif

/* ---- 2.7 ---- */

#if !PU_LIBURING_AT_LEAST(2, 7)
static inline void
io_uring_prep_bind(struct io_uring_sqe *sqe, int fd, const struct sockaddr *addr,
                   socklen_t addrlen)
{
    io_uring_prep_rw(IORING_OP_BIND, sqe, fd, addr, 0, addrlen);
}

static inline void
io_uring_prep_listen(struct io_uring_sqe *sqe, int fd, int backlog)
{
    io_uring_prep_rw(IORING_OP_LISTEN, sqe, fd, NULL, (unsigned)backlog, 0);
}
#endif

/* ---- 2.10 ---- */

#if !PU_LIBURING_AT_LEAST(2, 10)
static inline void
io_uring_prep_epoll_wait(struct io_uring_sqe *sqe, int fd, struct epoll_event *events,
                         int maxevents, unsigned flags)
{
    io_uring_prep_rw(IORING_OP_EPOLL_WAIT, sqe, fd, events, (unsigned)maxevents, 0);
    sqe->rw_flags = (int)flags;
}

static inline void
io_uring_prep_readv_fixed(struct io_uring_sqe *sqe, int fd, const struct iovec *iovecs,
                          unsigned nr_vecs, __u64 offset, int flags, int buf_index)
{
    io_uring_prep_readv2(sqe, fd, iovecs, nr_vecs, offset, flags);
    sqe->opcode = IORING_OP_READV_FIXED;
    sqe->buf_index = (__u16)buf_index;
}

static inline void
io_uring_prep_writev_fixed(struct io_uring_sqe *sqe, int fd, const struct iovec *iovecs,
                           unsigned nr_vecs, __u64 offset, int flags, int buf_index)
{
    io_uring_prep_writev2(sqe, fd, iovecs, nr_vecs, offset, flags);
    sqe->opcode = IORING_OP_WRITEV_FIXED;
    sqe->buf_index = (__u16)buf_index;
}
#endif

/* ---- 2.12 ---- */

#if !PU_LIBURING_AT_LEAST(2, 12)
static inline void
io_uring_prep_pipe(struct io_uring_sqe *sqe, int *fds, int pipe_flags)
{
    io_uring_prep_rw(IORING_OP_PIPE, sqe, 0, fds, 0, 0);
    sqe->rw_flags = pipe_flags;                 /* pipe_flags */
}

/* upstream's: the slot goes in file_index, stored + 1, with
 * IORING_FILE_INDEX_ALLOC as itself */
static inline void
io_uring_prep_pipe_direct(struct io_uring_sqe *sqe, int *fds, int pipe_flags,
                          unsigned int file_index)
{
    io_uring_prep_pipe(sqe, fds, pipe_flags);
    if (file_index == IORING_FILE_INDEX_ALLOC)
        file_index--;
    sqe->file_index = file_index + 1;
}
#endif

/* ---- 2.8: the block device uring_cmd ---- */

#ifndef BLOCK_URING_CMD_DISCARD
#define BLOCK_URING_CMD_DISCARD _IO(0x12, 0)
#endif
#if !PU_LIBURING_AT_LEAST(2, 8)
static inline void
io_uring_prep_cmd_discard(struct io_uring_sqe *sqe, int fd, uint64_t offset,
                          uint64_t nbytes)
{
    io_uring_prep_rw(IORING_OP_URING_CMD, sqe, fd, NULL, 0, 0);
    sqe->cmd_op = BLOCK_URING_CMD_DISCARD;
    sqe->addr = offset;
    sqe->addr3 = nbytes;
}
#endif

/* ---- 2.10 (with readv_fixed) ---- */

#if !PU_LIBURING_AT_LEAST(2, 10)
static inline void
io_uring_prep_sendmsg_zc_fixed(struct io_uring_sqe *sqe, int fd,
                               const struct msghdr *msg, unsigned flags,
                               unsigned buf_index)
{
    io_uring_prep_sendmsg_zc(sqe, fd, msg, flags);
    sqe->ioprio |= IORING_RECVSEND_FIXED_BUF;
    sqe->buf_index = (__u16)buf_index;
}
#endif

/* ---- 2.13 ---- */

#if !PU_LIBURING_AT_LEAST(2, 13)
#define SOCKET_URING_OP_TX_TIMESTAMP 4
#define SOCKET_URING_OP_GETSOCKNAME 5
/* addr: the sockaddr written, addr3: its length (in and out), optlen
 * (file_index): 1 for the peer's */
static inline void
io_uring_prep_cmd_getsockname(struct io_uring_sqe *sqe, int fd,
                              struct sockaddr *sockaddr, socklen_t *sockaddr_len,
                              int peer)
{
    io_uring_prep_rw(IORING_OP_URING_CMD, sqe, fd, NULL, 0, 0);
    sqe->cmd_op = SOCKET_URING_OP_GETSOCKNAME;
    sqe->addr = (__u64)(uintptr_t)sockaddr;
    sqe->addr3 = (__u64)(uintptr_t)sockaddr_len;
    sqe->file_index = (__u32)peer;
}
#endif

/* ---- buffer rings: kernel-mapped (2.5), status (2.6), incremental (2.8) ---- */

#ifndef IORING_OFF_PBUF_RING
#define IORING_OFF_PBUF_RING 0x80000000ULL
#define IORING_OFF_PBUF_SHIFT 16
#endif
#ifndef IORING_CQE_F_BUF_MORE
#define IORING_CQE_F_BUF_MORE (1U << 4)
#endif
#if !PU_LIBURING_AT_LEAST(2, 4)
/* 2.3 calls struct io_uring_buf_reg's flags `pad` */
#define PU_BUF_REG_FLAGS(reg) ((reg).pad)
#else
#define PU_BUF_REG_FLAGS(reg) ((reg).flags)
#endif
#if !PU_LIBURING_AT_LEAST(2, 5)
#define IOU_PBUF_RING_MMAP 1
#endif
#if !PU_LIBURING_AT_LEAST(2, 8)
#define IOU_PBUF_RING_INC 2
#endif
#if !PU_LIBURING_AT_LEAST(2, 6)
#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>
#define IORING_REGISTER_PBUF_STATUS 26
struct io_uring_buf_status {
    __u32 buf_group;
    __u32 head;
    __u32 resv[8];
};

/* upstream's is in the library (2.6) */
static inline int
io_uring_buf_ring_head(struct io_uring *ring, int buf_group, uint16_t *head)
{
    struct io_uring_buf_status st;
    long ret;

    memset(&st, 0, sizeof(st));
    st.buf_group = (__u32)buf_group;
    ret = syscall(__NR_io_uring_register, ring->ring_fd,
                  IORING_REGISTER_PBUF_STATUS, &st, 1);
    if (ret < 0)
        return -errno;
    *head = (uint16_t)st.head;
    return 0;
}
#endif

/* ---- 2.7: send bundles ---- */

#if !PU_LIBURING_AT_LEAST(2, 7)
static inline void
io_uring_prep_send_bundle(struct io_uring_sqe *sqe, int sockfd, size_t len, int flags)
{
    io_uring_prep_send(sqe, sockfd, NULL, len, flags);
    sqe->ioprio |= IORING_RECVSEND_BUNDLE;
}
#endif

/* ---- 2.13: uring_cmd helpers, 128-byte operations; TX timestamps ---- */

#ifndef IORING_TIMESTAMP_HW_SHIFT
#define IORING_TIMESTAMP_HW_SHIFT 16
#define IORING_TIMESTAMP_TYPE_SHIFT (IORING_TIMESTAMP_HW_SHIFT + 1)
#define IORING_CQE_F_TSTAMP_HW ((__u32)1 << IORING_TIMESTAMP_HW_SHIFT)
#endif
#if !PU_LIBURING_AT_LEAST(2, 13)
#define IORING_OP_NOP128 63
#define IORING_OP_URING_CMD128 64

static inline void
pu_compat_prep_uring_cmd(struct io_uring_sqe *sqe, int op, __u32 cmd_op, int fd)
{
    io_uring_prep_rw(op, sqe, fd, NULL, 0, 0);
    sqe->cmd_op = cmd_op;
}

static inline void
io_uring_prep_uring_cmd(struct io_uring_sqe *sqe, int cmd_op, int fd)
{
    pu_compat_prep_uring_cmd(sqe, IORING_OP_URING_CMD, (__u32)cmd_op, fd);
}

static inline void
io_uring_prep_uring_cmd128(struct io_uring_sqe *sqe, int cmd_op, int fd)
{
    pu_compat_prep_uring_cmd(sqe, IORING_OP_URING_CMD128, (__u32)cmd_op, fd);
}

static inline void
io_uring_prep_nop128(struct io_uring_sqe *sqe)
{
    io_uring_prep_rw(IORING_OP_NOP128, sqe, -1, NULL, 0, 0);
}
#endif

/* ---- 2.8 / 2.9: cloning another ring's registered buffers ----
 * (io_uring_clone_buffers() 2.8, the _offset form and DST_REPLACE 2.9).
 * Upstream's pass the source's registered ring fd when it has one; these
 * always pass its real fd, which the kernel takes as well. */

#if !PU_LIBURING_AT_LEAST(2, 8)
#define IORING_REGISTER_CLONE_BUFFERS 30
#define IORING_REGISTER_SRC_REGISTERED (1U << 0)
struct io_uring_clone_buffers {
    __u32 src_fd;
    __u32 flags;
    __u32 src_off;
    __u32 dst_off;
    __u32 nr;
    __u32 pad[3];
};
#endif
#if !PU_LIBURING_AT_LEAST(2, 9)
#include <sys/syscall.h>
#include <unistd.h>
#define IORING_REGISTER_DST_REPLACE (1U << 1)

static inline int
pu_compat_clone_buffers_offset(struct io_uring *dst, struct io_uring *src,
                               unsigned int dst_off, unsigned int src_off,
                               unsigned int nr, unsigned int flags)
{
    struct io_uring_clone_buffers buf;
    long ret;

    memset(&buf, 0, sizeof(buf));
    buf.src_fd = (__u32)src->ring_fd;
    buf.flags = flags & ~IORING_REGISTER_SRC_REGISTERED;
    buf.src_off = src_off;
    buf.dst_off = dst_off;
    buf.nr = nr;
    ret = syscall(__NR_io_uring_register, dst->ring_fd,
                  IORING_REGISTER_CLONE_BUFFERS, &buf, 1);
    return ret < 0 ? -errno : (int)ret;
}
#define io_uring_clone_buffers_offset pu_compat_clone_buffers_offset
#endif
#if !PU_LIBURING_AT_LEAST(2, 8)
#define io_uring_clone_buffers(dst, src) \
    pu_compat_clone_buffers_offset((dst), (src), 0, 0, 0, 0)
#endif

/* ---- 2.9: io_uring_resize_rings() ----
 * IORING_REGISTER_RESIZE_RINGS, then the new rings mapped as upstream's
 * io_uring_mmap() does and the old ones unmapped (struct io_uring_sq and
 * _cq have the same layout in 2.3 to 2.15; 2.3 names sqes_sz pad[0] and
 * has no field for it: the size is computed; the kernel reports no
 * features here, the ring's own say whether one mapping holds both rings).  liburing's unflushed
 * sqe_head/sqe_tail are kept, as upstream keeps them. */
#if !PU_LIBURING_AT_LEAST(2, 9)
#include <sys/mman.h>
#define IORING_REGISTER_RESIZE_RINGS 33

/* upstream's io_uring_setup_ring_pointers(): the rings' fields from the
 * offsets io_uring_setup(2) or the resize reported */
static inline void
pu_compat_setup_ring_pointers(unsigned ring_flags, struct io_uring_params *p,
                              struct io_uring_sq *sq, struct io_uring_cq *cq)
{
    sq->khead = (unsigned *)((char *)sq->ring_ptr + p->sq_off.head);
    sq->ktail = (unsigned *)((char *)sq->ring_ptr + p->sq_off.tail);
    sq->kring_mask = (unsigned *)((char *)sq->ring_ptr + p->sq_off.ring_mask);
    sq->kring_entries = (unsigned *)((char *)sq->ring_ptr + p->sq_off.ring_entries);
    sq->kflags = (unsigned *)((char *)sq->ring_ptr + p->sq_off.flags);
    sq->kdropped = (unsigned *)((char *)sq->ring_ptr + p->sq_off.dropped);
    if (!(ring_flags & (1U << 16)))   /* IORING_SETUP_NO_SQARRAY */
        sq->array = (unsigned *)((char *)sq->ring_ptr + p->sq_off.array);
    cq->khead = (unsigned *)((char *)cq->ring_ptr + p->cq_off.head);
    cq->ktail = (unsigned *)((char *)cq->ring_ptr + p->cq_off.tail);
    cq->kring_mask = (unsigned *)((char *)cq->ring_ptr + p->cq_off.ring_mask);
    cq->kring_entries = (unsigned *)((char *)cq->ring_ptr + p->cq_off.ring_entries);
    cq->koverflow = (unsigned *)((char *)cq->ring_ptr + p->cq_off.overflow);
    cq->cqes = (struct io_uring_cqe *)((char *)cq->ring_ptr + p->cq_off.cqes);
    if (p->cq_off.flags)
        cq->kflags = (unsigned *)((char *)cq->ring_ptr + p->cq_off.flags);
    sq->ring_mask = *sq->kring_mask;
    sq->ring_entries = *sq->kring_entries;
    cq->ring_mask = *cq->kring_mask;
    cq->ring_entries = *cq->kring_entries;
}

static inline int
pu_compat_resize_rings(struct io_uring *ring, struct io_uring_params *p)
{
    struct io_uring_sq sq;
    struct io_uring_cq cq;
    size_t sqes_sz, old_sqes_sz, array_align = 0;
    unsigned cqe_size = (unsigned)sizeof(struct io_uring_cqe);
    long ret;

    if (ring->flags & (1U << 14))   /* IORING_SETUP_NO_MMAP */
        return -EINVAL;
    if (ring->flags & IORING_SETUP_CQE32)
        cqe_size *= 2;
    if (!(ring->flags & (1U << 16))) {
        /* A ring with an SQ array (NO_SQARRAY is 2.3's only kind): the
         * kernel (6.13 to 6.18 at least) moves the array but reports no
         * offset for it.  It lies after the CQEs, aligned to the kernel's
         * cache line: the alignment is read off the old rings, which the
         * same rule laid out.  Not found: refused before anything moves. */
        size_t old_end = (size_t)((char *)ring->cq.cqes - (char *)ring->sq.ring_ptr) +
                         (size_t)ring->cq.ring_entries * cqe_size;
        size_t old_off = (size_t)((char *)ring->sq.array - (char *)ring->sq.ring_ptr);
        for (size_t a = 64; array_align == 0 && a <= 4096; a *= 2)
            if (((old_end + a - 1) & ~(a - 1)) == old_off)
                array_align = a;
        if (array_align == 0 || ring->cq.ring_ptr != ring->sq.ring_ptr)
            return -EOPNOTSUPP;
    }
    memset(&p->sq_off, 0, sizeof(p->sq_off));
    memset(&p->cq_off, 0, sizeof(p->cq_off));
    ret = syscall(__NR_io_uring_register, ring->ring_fd,
                  IORING_REGISTER_RESIZE_RINGS, p, 1);
    if (ret < 0) {
        ret = -errno;
        goto out;
    }
    if (!(ring->flags & (1U << 16)) && p->sq_off.array == 0) {
        size_t end = p->cq_off.cqes + (size_t)p->cq_entries * cqe_size;
        p->sq_off.array = (__u32)((end + array_align - 1) & ~(array_align - 1));
    }
    memset(&sq, 0, sizeof(sq));
    memset(&cq, 0, sizeof(cq));
    sq.ring_sz = p->sq_off.array + p->sq_entries * sizeof(unsigned);
    cq.ring_sz = p->cq_off.cqes + (size_t)p->cq_entries * cqe_size;
    if (ring->features & IORING_FEAT_SINGLE_MMAP) {
        if (cq.ring_sz > sq.ring_sz)
            sq.ring_sz = cq.ring_sz;
        cq.ring_sz = sq.ring_sz;
    }
    sq.ring_ptr = mmap(0, sq.ring_sz, PROT_READ | PROT_WRITE,
                       MAP_SHARED | MAP_POPULATE, ring->ring_fd, IORING_OFF_SQ_RING);
    if (sq.ring_ptr == MAP_FAILED) {
        ret = -errno;
        goto out;
    }
    if (ring->features & IORING_FEAT_SINGLE_MMAP) {
        cq.ring_ptr = sq.ring_ptr;
    } else {
        cq.ring_ptr = mmap(0, cq.ring_sz, PROT_READ | PROT_WRITE,
                           MAP_SHARED | MAP_POPULATE, ring->ring_fd, IORING_OFF_CQ_RING);
        if (cq.ring_ptr == MAP_FAILED) {
            ret = -errno;
            munmap(sq.ring_ptr, sq.ring_sz);
            goto out;
        }
    }
    sqes_sz = (size_t)p->sq_entries * sizeof(struct io_uring_sqe) *
              ((ring->flags & IORING_SETUP_SQE128) ? 2 : 1);
    sq.sqes = mmap(0, sqes_sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
                   ring->ring_fd, IORING_OFF_SQES);
    if (sq.sqes == MAP_FAILED) {
        ret = -errno;
        if (cq.ring_ptr != sq.ring_ptr)
            munmap(cq.ring_ptr, cq.ring_sz);
        munmap(sq.ring_ptr, sq.ring_sz);
        goto out;
    }
    pu_compat_setup_ring_pointers(ring->flags, p, &sq, &cq);

    /* sqes_sz (2.5 and later; pad[0] before, unused): what their
     * io_uring_queue_exit() unmaps */
    memcpy(&sq.ring_entries + 1, &(unsigned){(unsigned)sqes_sz}, sizeof(unsigned));
    sq.sqe_head = ring->sq.sqe_head;
    sq.sqe_tail = ring->sq.sqe_tail;
    old_sqes_sz = (size_t)ring->sq.ring_entries * sizeof(struct io_uring_sqe) *
                  ((ring->flags & IORING_SETUP_SQE128) ? 2 : 1);
    munmap(ring->sq.sqes, old_sqes_sz);
    if (ring->cq.ring_ptr != NULL && ring->cq.ring_ptr != ring->sq.ring_ptr)
        munmap(ring->cq.ring_ptr, ring->cq.ring_sz);
    munmap(ring->sq.ring_ptr, ring->sq.ring_sz);
    ring->sq = sq;
    ring->cq = cq;
    /* directly map SQ slots to SQEs */
    for (unsigned k = 0; ring->sq.array != NULL && k < p->sq_entries; k++)
        ring->sq.array[k] = k;
    ret = 0;
out:
    p->flags = 0;
    return (int)ret;
}
#define io_uring_resize_rings pu_compat_resize_rings
#endif

/* ---- 2.11: io_uring_memory_size() ----
 * The memory a ring of these entries and flags needs (what
 * io_uring_queue_init_mem() takes), computed as upstream does: the CQ
 * ring (its head, the CQEs, the SQ array unless NO_SQARRAY) and the SQEs,
 * each rounded up to pages. */
#if !PU_LIBURING_AT_LEAST(2, 11)
#include <unistd.h>

static inline ssize_t
pu_compat_memory_size_params(unsigned entries, struct io_uring_params *p)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE), cq_size, sq_size;
    unsigned sq, cq;

    if (!entries)
        return -EINVAL;
    if (entries > 32768) {
        if (!(p->flags & IORING_SETUP_CLAMP))
            return -EINVAL;
        entries = 32768;
    }
    for (sq = 1; sq < entries; sq <<= 1)
        ;
    if (p->flags & IORING_SETUP_CQSIZE) {
        unsigned want = p->cq_entries;
        if (!want)
            return -EINVAL;
        if (want > 65536) {
            if (!(p->flags & IORING_SETUP_CLAMP))
                return -EINVAL;
            want = 65536;
        }
        for (cq = 1; cq < want; cq <<= 1)
            ;
        if (cq < sq)
            return -EINVAL;
    } else {
        cq = 2 * sq;
    }
    cq_size = (size_t)cq * sizeof(struct io_uring_cqe) *
              ((p->flags & IORING_SETUP_CQE32) ? 2 : 1);
    cq_size += 64;                              /* KRING_SIZE: heads, tails, ... */
    if (!(p->flags & (1U << 16)))               /* IORING_SETUP_NO_SQARRAY */
        cq_size += sq * sizeof(unsigned);
    cq_size = (cq_size + page - 1) & ~(page - 1);
    sq_size = (size_t)sq * sizeof(struct io_uring_sqe) *
              ((p->flags & IORING_SETUP_SQE128) ? 2 : 1);
    sq_size = (sq_size + page - 1) & ~(page - 1);
    return (ssize_t)(cq_size + sq_size);
}
#define io_uring_memory_size_params pu_compat_memory_size_params

static inline ssize_t
pu_compat_memory_size(unsigned entries, unsigned flags)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof(p));
    p.flags = flags;
    return pu_compat_memory_size_params(entries, &p);
}
#define io_uring_memory_size pu_compat_memory_size
#endif

/* ---- 2.9: io_uring_register_region() (IORING_REGISTER_MEM_REGION) ---- */
#if !PU_LIBURING_AT_LEAST(2, 9)
#define IORING_REGISTER_MEM_REGION 34
#define IORING_MEM_REGION_TYPE_USER 1
#define IORING_MEM_REGION_REG_WAIT_ARG 1
struct io_uring_region_desc {
    __u64 user_addr;
    __u64 size;
    __u32 flags;
    __u32 id;
    __u64 mmap_offset;
    __u64 __resv[4];
};
struct io_uring_mem_region_reg {
    __u64 region_uptr;
    __u64 flags;
    __u64 __resv[2];
};

static inline int
pu_compat_register_region(struct io_uring *ring, struct io_uring_mem_region_reg *reg)
{
    long ret = syscall(__NR_io_uring_register, ring->ring_fd,
                       IORING_REGISTER_MEM_REGION, reg, 1);
    return ret < 0 ? -errno : (int)ret;
}
#define io_uring_register_region pu_compat_register_region
#endif

/* ---- 2.5: io_uring_queue_init_mem() ----
 * A ring whose SQEs and rings are the caller's memory
 * (IORING_SETUP_NO_MMAP), laid out as upstream lays out a caller's buffer:
 * the SQEs first, the rings on the next page boundary.  Returns the bytes
 * used, or -errno.  liburing 2.3's io_uring_queue_exit() would munmap
 * that memory: such a ring is closed with close(2) (core/teardown.c). */
#ifndef IORING_SETUP_NO_MMAP
#define IORING_SETUP_NO_MMAP (1U << 14)
#endif
#if !PU_LIBURING_AT_LEAST(2, 5)
static inline int
pu_compat_queue_init_mem(unsigned entries, struct io_uring *ring,
                         struct io_uring_params *p, void *buf, size_t buf_size)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE), sqes_mem, ring_mem, used;
    unsigned sq = 1, cq, cqe = (unsigned)sizeof(struct io_uring_cqe);
    long fd;

    memset(ring, 0, sizeof(*ring));
    p->flags |= (1U << 14);                     /* IORING_SETUP_NO_MMAP */
    if (!entries || entries > 32768)
        return -EINVAL;
    /* liburing keeps IOPOLL's "always enter" in a private flag this cannot set */
    if ((p->flags & (IORING_SETUP_IOPOLL | IORING_SETUP_SQPOLL)) == IORING_SETUP_IOPOLL)
        return -EINVAL;
    while (sq < entries)
        sq <<= 1;
    if (p->flags & IORING_SETUP_CQSIZE) {
        if (!p->cq_entries || p->cq_entries > 65536)
            return -EINVAL;
        for (cq = 1; cq < p->cq_entries; cq <<= 1)
            ;
        if (cq < sq)
            return -EINVAL;
    } else {
        cq = 2 * sq;
    }
    if (p->flags & IORING_SETUP_CQE32)
        cqe *= 2;
    sqes_mem = (size_t)sq * sizeof(struct io_uring_sqe) *
               ((p->flags & IORING_SETUP_SQE128) ? 2 : 1);
    sqes_mem = (sqes_mem + page - 1) & ~(page - 1);
    ring_mem = 64 + (size_t)cq * cqe;
    if (!(p->flags & (1U << 16)))
        ring_mem += sq * sizeof(unsigned);
    used = (sqes_mem + ring_mem + page - 1) & ~(page - 1);
    if (used > buf_size)
        return -ENOMEM;
    ring->sq.sqes = (struct io_uring_sqe *)buf;
    ring->sq.ring_ptr = (char *)buf + sqes_mem;
    ring->cq.ring_ptr = ring->sq.ring_ptr;
    /* user_addr (2.4+ headers): resv2 in 2.3's, the same place */
    p->sq_off.resv2 = (__u64)(uintptr_t)ring->sq.sqes;
    p->cq_off.resv2 = (__u64)(uintptr_t)ring->sq.ring_ptr;
    fd = syscall(__NR_io_uring_setup, entries, p);
    if (fd < 0) {
        int err = errno;
        memset(ring, 0, sizeof(*ring));
        return -err;
    }
    pu_compat_setup_ring_pointers(p->flags, p, &ring->sq, &ring->cq);
    for (unsigned k = 0; ring->sq.array != NULL && k < ring->sq.ring_entries; k++)
        ring->sq.array[k] = k;
    ring->features = p->features;
    ring->flags = p->flags;
    ring->ring_fd = ring->enter_ring_fd = (int)fd;
    return (int)used;
}
#define io_uring_queue_init_mem pu_compat_queue_init_mem
#endif

/* ---- 2.10: zero-copy receive (IORING_OP_RECV_ZC, IORING_REGISTER_ZCRX_IFQ) ----
 * The kernel's structs (include/uapi/linux/io_uring.h, Linux 6.15), laid
 * out as upstream's; the sizes are checked below for both headers.
 * Upstream has no prep helper: a RECV_ZC entry is io_uring_prep_rw() with
 * the ifq's id in zcrx_ifq_idx, the union member 2.3's struct calls
 * file_index (pu_compat_prep_recv_zc below: ours, upstream has none). */
#if !PU_LIBURING_AT_LEAST(2, 10)
#define IORING_OP_RECV_ZC 58
#define IORING_REGISTER_ZCRX_IFQ 32
#define IORING_ZCRX_AREA_SHIFT 48
#define IORING_ZCRX_AREA_MASK (~(((__u64)1 << IORING_ZCRX_AREA_SHIFT) - 1))
struct io_uring_zcrx_rqe {
    __u64 off;
    __u32 len;
    __u32 __pad;
};
struct io_uring_zcrx_cqe {
    __u64 off;
    __u64 __pad;
};
struct io_uring_zcrx_offsets {
    __u32 head;
    __u32 tail;
    __u32 rqes;
    __u32 __resv2;
    __u64 __resv[2];
};
struct io_uring_zcrx_area_reg {
    __u64 addr;
    __u64 len;
    __u64 rq_area_token;
    __u32 flags;
    __u32 dmabuf_fd;
    __u64 __resv2[2];
};
struct io_uring_zcrx_ifq_reg {
    __u32 if_idx;
    __u32 if_rxq;
    __u32 rq_entries;
    __u32 flags;
    __u64 area_ptr;     /* struct io_uring_zcrx_area_reg * */
    __u64 region_ptr;   /* struct io_uring_region_desc * */
    struct io_uring_zcrx_offsets offsets;
    __u32 zcrx_id;
    __u32 rx_buf_len;   /* (__resv2 before Linux 6.19) */
    __u64 __resv[3];
};

#endif
_Static_assert(sizeof(struct io_uring_zcrx_rqe) == 16, "struct io_uring_zcrx_rqe");
_Static_assert(sizeof(struct io_uring_zcrx_cqe) == 16, "struct io_uring_zcrx_cqe");
_Static_assert(sizeof(struct io_uring_zcrx_offsets) == 32, "struct io_uring_zcrx_offsets");
_Static_assert(sizeof(struct io_uring_zcrx_area_reg) == 48, "struct io_uring_zcrx_area_reg");
_Static_assert(sizeof(struct io_uring_zcrx_ifq_reg) == 96, "struct io_uring_zcrx_ifq_reg");
_Static_assert(sizeof(struct io_uring_region_desc) == 64, "struct io_uring_region_desc");

/* RECV_ZC is always multishot (the kernel refuses it otherwise) */
static inline void
pu_compat_prep_recv_zc(struct io_uring_sqe *sqe, int fd, unsigned len,
                       unsigned ifq_idx, unsigned ioprio)
{
    io_uring_prep_rw(IORING_OP_RECV_ZC, sqe, fd, NULL, len, 0);
    sqe->file_index = ifq_idx;   /* zcrx_ifq_idx in newer headers */
    sqe->ioprio |= (__u16)(ioprio | IORING_RECV_MULTISHOT);
}

#endif
