"""The remaining operations of ops.def against the real kernel: nop,
msg_ring, epoll_ctl, epoll_wait, waitid and the futex ops.  A behaviour that
every form of an op shares runs through the `form` fixture (forms.py).  An
op the running kernel lacks is skipped."""

import errno
import mmap
import os
import select
import struct
import time

import pytest

import py_io_uring
from py_io_uring import IoUring

from op_helpers import fork, op_fails, reap_n
from uring_helpers import WAIT, by_data, exit_code, need, prep, run_op, wait_n, wait_one


# --------------------------------------------------------------------------
# nop


def test_nop(ring, form):
    assert form.run(ring, "nop") == (0, form.noflags)


# --------------------------------------------------------------------------
# epoll_ctl, epoll_wait


def test_epoll_ctl_add_mod_del(ring, pipe):
    need(ring, "epoll_ctl")
    r, w = pipe
    ep = select.epoll()
    try:
        _, cqe = run_op(ring, "epoll_ctl", ep, r, py_io_uring.EPOLL_CTL_ADD, select.EPOLLIN)
        assert cqe.getresult() == 0
        assert ep.poll(0) == []
        os.write(w, b"x")
        assert ep.poll(0) == [(r, select.EPOLLIN)]
        _, cqe = run_op(ring, "epoll_ctl", ep.fileno(), r, py_io_uring.EPOLL_CTL_MOD,
                        select.EPOLLOUT)
        assert cqe.res() == 0
        assert ep.poll(0) == []
        _, cqe = run_op(ring, "epoll_ctl", ep, r, py_io_uring.EPOLL_CTL_DEL)
        assert cqe.res() == 0
        with pytest.raises(FileNotFoundError):
            ep.unregister(r)  # it is no longer there
    finally:
        ep.close()


def test_epoll_ctl_add_twice_is_eexist(ring, pipe):
    ep = select.epoll()
    try:
        ep.register(pipe[0], select.EPOLLIN)
        op_fails(ring, "epoll_ctl", errno.EEXIST, ep, pipe[0], py_io_uring.EPOLL_CTL_ADD,
                 select.EPOLLIN, exc_type=FileExistsError)
    finally:
        ep.close()


def test_epoll_ctl_del_unregistered_is_enoent(ring, pipe):
    ep = select.epoll()
    try:
        op_fails(ring, "epoll_ctl", errno.ENOENT, ep, pipe[0], py_io_uring.EPOLL_CTL_DEL,
                 exc_type=FileNotFoundError)
    finally:
        ep.close()


def test_epoll_wait_returns_ready_fds(ring):
    need(ring, "epoll_wait")
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    ep = select.epoll()
    try:
        ep.register(r1, select.EPOLLIN)
        ep.register(r2, select.EPOLLIN)
        prep(ring, "epoll_wait", ep, tag="ew")
        ring.submit()
        assert ring.wait_cqe(timeout=0.02) is None  # nothing ready yet
        os.write(w2, b"x")
        cqe = wait_one(ring)
        assert cqe.res() == 1
        assert cqe.getresult() == [(r2, select.EPOLLIN)]
        os.write(w1, b"y")
        _, cqe = run_op(ring, "epoll_wait", ep, 8)
        assert sorted(cqe.getresult()) == sorted([(r1, select.EPOLLIN), (r2, select.EPOLLIN)])
        _, cqe = run_op(ring, "epoll_wait", ep, 1)
        assert cqe.res() == 1 and len(cqe.getresult()) == 1
    finally:
        ep.close()
        for fd in (r1, w1, r2, w2):
            os.close(fd)


def test_epoll_wait_on_non_epoll_fd_is_einval(ring, pipe):
    op_fails(ring, "epoll_wait", errno.EINVAL, pipe[0])


# --------------------------------------------------------------------------
# msg_ring


def test_msg_ring_posts_completion_to_other_ring(ring, form):
    need(ring, "msg_ring")
    other = py_io_uring.IoUring(8)
    try:
        assert form.run(ring, "msg_ring", other, 1234, 0xDEADBEEF) == (0, form.noflags)
        got = None
        deadline = time.monotonic() + WAIT
        while got is None and time.monotonic() < deadline:
            got = other.peek_cqe()
            if got is None:
                time.sleep(0.001)
        assert got is not None, "no message within %s s" % WAIT
        other.cqe_seen(got)
        assert got.res() == 1234
        assert got.user_data() == 0xDEADBEEF
        assert got.get_data() is None
        assert got.getresult() == 1234
        assert other.peek_cqe() is None
        assert other.in_flight() == 0
    finally:
        other.queue_exit()


def test_msg_ring_to_itself_by_fileno(ring):
    need(ring, "msg_ring")
    prep(ring, "msg_ring", ring.fileno(), 7, 42, tag="sender")
    ring.submit()
    cqes = wait_n(ring, 2)
    mine = [c for c in cqes if c.get_data() == "sender"]
    msg = [c for c in cqes if c.get_data() is None]
    assert len(mine) == 1 and len(msg) == 1
    assert mine[0].res() == 0
    assert msg[0].res() == 7 and msg[0].user_data() == 42


def test_msg_ring_to_non_ring_is_ebadfd(ring, pipe):
    # Linux 6.18: an fd that is not an io_uring is EBADFD
    op_fails(ring, "msg_ring", errno.EBADFD, pipe[0], 1, 2)


# --------------------------------------------------------------------------
# waitid


def test_waitid_child_exit_code(ring):
    need(ring, "waitid")
    pid = fork()
    if pid == 0:
        os._exit(7)
    _, cqe = run_op(ring, "waitid", os.P_PID, pid, os.WEXITED)
    assert cqe.res() == 0
    res = cqe.getresult()
    assert isinstance(res, os.waitid_result)
    assert res.si_pid == pid
    assert res.si_status == 7
    assert res.si_code == os.CLD_EXITED
    assert res.si_signo == 17  # SIGCHLD
    assert res.si_uid == os.getuid()
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, 0)  # already reaped


def test_waitid_wnohang_running_child_gives_none(ring):
    need(ring, "waitid")
    r, w = os.pipe()
    pid = fork()
    if pid == 0:
        os.close(w)
        os.read(r, 1)
        os._exit(3)
    os.close(r)
    try:
        _, cqe = run_op(ring, "waitid", os.P_PID, pid, os.WEXITED | os.WNOHANG)
        assert cqe.res() == 0
        assert cqe.getresult() is None
    finally:
        os.close(w)
        _, status = os.waitpid(pid, 0)
    assert exit_code(status) == 3


def test_waitid_async_while_child_runs(ring):
    need(ring, "waitid")
    r, w = os.pipe()
    pid = fork()
    if pid == 0:
        os.close(w)
        os.read(r, 1)
        os._exit(11)
    os.close(r)
    try:
        prep(ring, "waitid", os.P_PID, pid, os.WEXITED)
        ring.submit()
        assert ring.wait_cqe(timeout=0.02) is None
    finally:
        os.close(w)  # the child exits now
    res = wait_one(ring).getresult()
    assert (res.si_pid, res.si_status, res.si_code) == (pid, 11, os.CLD_EXITED)


def test_waitid_not_a_child_is_echild(ring):
    op_fails(ring, "waitid", errno.ECHILD, os.P_PID, 1, os.WEXITED, exc_type=ChildProcessError)


def test_waitid_bad_options_is_einval(ring):
    op_fails(ring, "waitid", errno.EINVAL, os.P_PID, os.getpid(), 0)


# --------------------------------------------------------------------------
# futex_wait, futex_wake


@pytest.fixture
def futex_word():
    m = mmap.mmap(-1, 4096)
    mv = memoryview(m)
    word = mv[0:4]
    yield m, word
    word.release()
    mv.release()
    m.close()


def test_futex_wait_then_wake(ring, futex_word):
    need(ring, "futex_wait", "futex_wake")
    m, word = futex_word
    prep(ring, "futex_wait", word, 0, tag="wait")
    ring.submit()
    assert ring.wait_cqe(timeout=0.02) is None  # value 0 == 0: it sleeps
    m[0:4] = struct.pack("I", 1)
    prep(ring, "futex_wake", word, 1, tag="wake")
    ring.submit()
    cqes = by_data(wait_n(ring, 2))
    assert cqes["wake"].getresult() == 1  # one waiter woken
    assert cqes["wait"].getresult() == 0


def test_futex_wake_without_waiters_wakes_none(ring, futex_word):
    need(ring, "futex_wake")
    _, cqe = run_op(ring, "futex_wake", futex_word[1], 10)
    assert cqe.getresult() == 0


def test_futex_wait_value_mismatch_is_eagain(ring, futex_word):
    m, word = futex_word
    m[0:4] = struct.pack("I", 5)
    op_fails(ring, "futex_wait", errno.EAGAIN, word, 4, exc_type=BlockingIOError)


def test_futex_wake_unaligned_is_refused(ring, futex_word):
    # The kernel would answer EINVAL; the prep refuses a misaligned word.
    m, _ = futex_word
    mv = memoryview(m)
    part = mv[1:5]
    try:
        with pytest.raises(ValueError, match="prep_futex_wake.*aligned"):
            ring.get_sqe().prep_futex_wake(part, 1)
    finally:
        part.release()
        mv.release()


def test_futex_wait_bad_flags_is_einval(ring, futex_word):
    op_fails(ring, "futex_wait", errno.EINVAL, futex_word[1], 0, flags=0x1000)


def test_futex_waitv_reports_the_woken_index(ring):
    need(ring, "futex_waitv", "futex_wake")
    m = mmap.mmap(-1, 4096)
    mv = memoryview(m)
    w0, w1 = mv[0:4], mv[64:68]
    try:
        prep(ring, "futex_waitv", [(w0, 0), (w1, 0, 2)], tag="waitv")
        ring.submit()
        assert ring.wait_cqe(timeout=0.02) is None  # both words hold 0: it sleeps
        prep(ring, "futex_wake", w1, 1, tag="wake")
        ring.submit()
        cqes = by_data(wait_n(ring, 2))
        assert cqes["wake"].getresult() == 1
        assert cqes["waitv"].getresult() == 1  # the second futex woke it
        del cqes
    finally:
        w0.release()
        w1.release()
        mv.release()
        m.close()


def test_futex_waitv_value_mismatch_is_eagain(ring, futex_word):
    m, word = futex_word
    m[0:4] = struct.pack("I", 9)
    op_fails(ring, "futex_waitv", errno.EAGAIN, [(word, 8)],
             exc_type=BlockingIOError)


def test_futex_waitv_nonzero_flags_is_einval(ring, futex_word):
    op_fails(ring, "futex_waitv", errno.EINVAL, [(futex_word[1], 0)], 1)


# --------------------------------------------------------------------------
# msg_ring through the fast form: a completion no operation of this ring made


def test_msg_ring_from_another_ring_gives_the_raw_user_data(ring):
    need(ring, "msg_ring")
    other = IoUring(8)
    try:
        big = 2 ** 63 - 2 ** 32 + 5   # all 64 bits, names no record
        other.prep_msg_ring(ring, 1234, 0xDEADBEEF, user_data="sender")
        other.prep_msg_ring(ring.fileno(), 7, big, user_data="sender 2")
        other.submit()
        assert other.reap(2, 2) == [("sender", 0, 0), ("sender 2", 0, 0)]
        got = reap_n(ring, 2)
        assert got == [(0xDEADBEEF, 1234, 0), (big, 7, 0)]
        assert all(type(g[0]) is int for g in got)
        assert ring.in_flight() == 0 and other.in_flight() == 0
    finally:
        other.queue_exit()


def test_msg_ring_to_itself(ring):
    need(ring, "msg_ring")
    ring.prep_msg_ring(ring, 3, 42, user_data="self")
    ring.submit()
    got = reap_n(ring, 2)
    assert sorted(got, key=repr) == sorted([("self", 0, 0), (42, 3, 0)], key=repr)


def test_msg_ring_refuses_the_fd_passing_command_as_flags(ring):
    with IoUring(4) as target:
        # IORING_MSG_SEND_FD is msg_ring's command for passing a file, and
        # its value is IORING_MSG_RING_CQE_SKIP's: as flags it meant a skip
        for bad in (py_io_uring.IORING_MSG_SEND_FD, py_io_uring.IORING_MSG_RING_CQE_SKIP):
            with pytest.raises(ValueError, match=r"prep_msg_ring\(\) argument 'flags'"):
                ring.prep_msg_ring(target, 1, 2, bad)
        ring.prep_msg_ring(target, 7, 9, py_io_uring.IORING_MSG_RING_FLAGS_PASS, user_data="m")
        assert ring.reap(2, 1, True) == [("m", 0, 0)]
        assert target.reap(2, 1) == [(9, 7, 0)]


# ---- msg_ring_fd, msg_ring_fd_alloc, msg_ring_cqe_flags

def _write_through_slot(target, slot, data):
    """Write data through slot of target's registered file table."""
    target.prep_write(slot, data, -1, user_data="w", sqe_flags=py_io_uring.IOSQE_FIXED_FILE)
    assert target.reap(4, 1, True) == [("w", len(data), 0)]


@pytest.mark.parametrize("alloc", [False, True])
def test_msg_ring_fd_sends_a_registered_file(ring, pipe, alloc):
    need(ring, "msg_ring_fd")
    r, w = pipe
    ring.register_files([w])
    with IoUring(4) as target:
        target.register_files_sparse(4)
        if alloc:
            ring.prep_msg_ring_fd_alloc(target, 0, 77, user_data="sent")
        else:
            ring.prep_msg_ring_fd(target, 0, 2, 77, user_data="sent")
        assert ring.reap(4, 1, True) == [("sent", 0, 0)]
        [(data, slot, flags)] = target.reap(4, 1)
        assert data == 77 and flags == 0
        if not alloc:
            slot = 2
        assert 0 <= slot < 4
        _write_through_slot(target, slot, b"via the other ring")
        assert os.read(r, 64) == b"via the other ring"


def test_msg_ring_fd_cqe_skip_posts_nothing_to_the_target(ring, pipe):
    need(ring, "msg_ring_fd")
    r, w = pipe
    ring.register_files([w])
    with IoUring(4) as target:
        target.register_files_sparse(2)
        ring.prep_msg_ring_fd(target, 0, 1, 5, py_io_uring.IORING_MSG_RING_CQE_SKIP,
                              user_data="sent")
        assert ring.reap(4, 1, True) == [("sent", 0, 0)]
        assert target.reap(4) == []
        _write_through_slot(target, 1, b"quiet")
        assert os.read(r, 64) == b"quiet"


def test_msg_ring_fd_refuses_user_data_the_runtime_owns_and_bad_flags(ring):
    with IoUring(4) as target:
        with pytest.raises(OverflowError):
            ring.prep_msg_ring_fd(target, 0, 1, 1 << 63)
        with pytest.raises(ValueError, match="flags"):
            ring.prep_msg_ring_fd(target, 0, 1, 0, py_io_uring.IORING_MSG_RING_FLAGS_PASS)
        assert ring.sq_ready() == 0


def test_msg_ring_cqe_flags_posts_the_flags(ring):
    need(ring, "msg_ring_cqe_flags")
    with IoUring(4) as target:
        ring.prep_msg_ring_cqe_flags(target, 3, 9, 0x10, user_data="m")
        assert ring.reap(4, 1, True) == [("m", 0, 0)]
        assert target.reap(4, 1) == [(9, 3, 0x10)]
