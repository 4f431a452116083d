"""Helpers of the op-family tests (test_ops_*.py) that need py_io_uring
(uring_helpers.py stays importable without it)."""

import errno
import os
import struct
import time

from py_io_uring import IORING_CQE_F_MORE, IORING_CQE_F_NOTIF, IOSQE_FIXED_FILE

from uring_helpers import WAIT, assert_fails, fork, need, prep, run_op, wait_one  # noqa: F401 (fork: re-exported)


def op_fails(ring, op, err, *args, exc_type=OSError, **kwargs):
    """Run op (need()-checked) and assert it fails with err."""
    need(ring, op)
    _, cqe = run_op(ring, op, *args, **kwargs)
    assert_fails(cqe, err, exc_type)


def finish_zc(ring, n_expected, timeout=WAIT):
    """Reap a zero-copy send's two completions: (res cqe, notif cqe)."""
    first = wait_one(ring, timeout)
    assert first.flags() & IORING_CQE_F_MORE, hex(first.flags())
    assert not first.flags() & IORING_CQE_F_NOTIF
    assert first.res() == n_expected, first.res()
    notif = wait_one(ring, timeout)
    assert notif.flags() & IORING_CQE_F_NOTIF, hex(notif.flags())
    assert not notif.flags() & IORING_CQE_F_MORE
    assert notif.user_data() == first.user_data()
    return first, notif


def cancel_multishot(ring, target):
    """Cancel a multishot op and reap until both the cancel's completion (0)
    and the target's final one (-ECANCELED, no F_MORE) were seen.  Returns
    any data completions of the target that came in between."""
    prep(ring, "cancel", target, tag="cancel")
    ring.submit()
    extra = []
    cancel_seen = final_seen = False
    for _ in range(64):
        if cancel_seen and final_seen:
            break
        c = wait_one(ring)
        if c.get_data() == "cancel":
            assert c.res() == 0, c.res()
            cancel_seen = True
        elif c.flags() & IORING_CQE_F_MORE:
            extra.append(c)
        else:
            assert c.res() == -errno.ECANCELED, c.res()
            final_seen = True
    assert cancel_seen and final_seen
    assert ring.in_flight() == 0
    return extra


def recv_all(sock, n):
    sock.settimeout(WAIT)
    out = bytearray()
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        assert chunk, "EOF after %d of %d bytes" % (len(out), n)
        out += chunk
    return bytes(out)


def install(ring, slot):
    """fixed_fd_install a slot; return the new regular fd."""
    need(ring, "fixed_fd_install")
    _, cqe = run_op(ring, "fixed_fd_install", slot)
    fd = cqe.getresult()
    assert isinstance(fd, int) and fd >= 0, cqe.res()
    return fd


def read_slot(ring, slot, n, offset=0):
    """read through the registered file table (IOSQE_FIXED_FILE)."""
    sqe = prep(ring, "read", slot, n, offset)
    sqe.set_flags(IOSQE_FIXED_FILE)
    ring.submit()
    return wait_one(ring)


def parse_recvmsg_out(buf, namelen_room, controllen_room=0):
    """Split a recvmsg_multishot buffer: io_uring_recvmsg_out, name,
    control, payload (io_uring_recvmsg_validate(3))."""
    namelen, controllen, payloadlen, flags = struct.unpack_from("IIII", buf, 0)
    name = buf[16:16 + min(namelen, namelen_room)]
    off = 16 + namelen_room + controllen_room
    payload = buf[off:off + payloadlen]
    return name, payload, payloadlen, flags


def reap_n(ring, n, timeout=WAIT):
    """reap() until n completions came, bounded: reap(wait_nr=) has no
    deadline, so each wait goes through wait_cqe(timeout=) (which leaves the
    completion unseen, for reap() to take)."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < n:
        left = deadline - time.monotonic()
        assert left > 0, "only %d of %d completions within %s s: %r" % (len(got), n, timeout, got)
        if ring.wait_cqe(timeout=left) is None:
            continue
        got.extend(ring.reap(n - len(got)))
    return got


def by_ud(items):
    """{user_data: (result, flags)} of reap() tuples (user data hashable)."""
    out = {}
    for ud, res, flags in items:
        assert ud not in out, "two completions for %r: %r" % (ud, items)
        out[ud] = (res, flags)
    return out


class Token:
    """Weak-referenceable user data with an identity."""


def assert_nothing_queued(ring):
    """Nothing acquired, nothing in flight, nothing to submit or reap."""
    assert ring.sq_ready() == 0
    assert ring.in_flight() == 0
    assert ring.submit() == 0
    assert ring.reap(16) == []
    assert ring.cq_ready() == 0
