"""Timeouts, cancellation and polling against the real kernel: timeout,
timeout_remove, timeout_update, link_timeout, cancel, cancel64, cancel_fd,
poll_add, poll_multishot, poll_remove, poll_update, and how an operation is
named to cancel, remove or update it (its Sqe, or the user_data a fast form
queued it with).  A behaviour that every form of an op shares runs through
the `form` fixture (forms.py).  An op the running kernel lacks is
skipped."""

import errno
import gc
import os
import select
import time
import weakref

import pytest

import py_io_uring
from py_io_uring import (IORING_CQE_F_MORE, IORING_POLL_UPDATE_EVENTS, IORING_POLL_UPDATE_USER_DATA,
                         IOSQE_IO_LINK)

from op_helpers import assert_nothing_queued, by_ud, op_fails, reap_n, Token
from uring_helpers import WAIT, assert_fails, by_data, need, prep, run_op, wait_n, wait_one


# --------------------------------------------------------------------------
# timeout


def test_timeout_expires(ring, form):
    t0 = time.monotonic()
    res, flags = form.run(ring, "timeout", 0.2, raises=TimeoutError)
    elapsed = time.monotonic() - t0
    assert 0.15 <= elapsed < WAIT
    assert (res, flags) == (-errno.ETIME, form.noflags)


def test_timeout_count_completes_after_other_completion(ring):
    prep(ring, "timeout", 10, count=1, tag="timeout")
    prep(ring, "nop", tag="nop")
    t0 = time.monotonic()
    assert ring.submit() == 2
    cqes = wait_n(ring, 2)
    assert time.monotonic() - t0 < WAIT
    assert [c.get_data() for c in cqes] == ["nop", "timeout"]
    assert cqes[1].res() == 0
    assert cqes[1].getresult() == 0


def test_timeout_integer_seconds_and_keywords(ring):
    prep(ring, "timeout", seconds=1, count=1, flags=0, tag="t")
    ring.submit()
    run_op(ring, "nop")
    cqe = wait_one(ring)
    assert cqe.get_data() == "t" and cqe.res() == 0


def test_timeout_sub_millisecond(ring):
    _, cqe = run_op(ring, "timeout", 0.0005)
    assert cqe.res() == -errno.ETIME


def test_timeout_absolute(ring):
    # IORING_TIMEOUT_ABS: seconds is an absolute CLOCK_MONOTONIC time, which
    # is time.monotonic()'s clock.  Also checks large values keep precision.
    deadline = time.monotonic() + 0.2
    _, cqe = run_op(ring, "timeout", deadline, 0, py_io_uring.IORING_TIMEOUT_ABS)
    assert cqe.res() == -errno.ETIME
    now = time.monotonic()
    assert deadline - 0.05 <= now < deadline + WAIT


def test_timeout_etime_success_flag(ring):
    _, cqe = run_op(ring, "timeout", 0.01, flags=py_io_uring.IORING_TIMEOUT_ETIME_SUCCESS)
    # Still -ETIME: the flag only matters for links; it must be accepted.
    assert cqe.res() == -errno.ETIME


# --------------------------------------------------------------------------
# timeout_remove


def test_timeout_remove_pending(ring):
    t = prep(ring, "timeout", 10, tag="timeout")
    ring.submit()
    prep(ring, "timeout_remove", t, tag="remove")
    t0 = time.monotonic()
    ring.submit()
    got = by_data(wait_n(ring, 2))
    assert time.monotonic() - t0 < WAIT
    assert_fails(got["timeout"], errno.ECANCELED)
    assert got["remove"].res() == 0
    assert got["remove"].getresult() == 0


def test_timeout_remove_keywords(ring):
    t = prep(ring, "timeout", 10, tag="timeout")
    ring.submit()
    prep(ring, "timeout_remove", sqe=t, flags=0, tag="remove")
    ring.submit()
    got = by_data(wait_n(ring, 2))
    assert got["timeout"].res() == -errno.ECANCELED
    assert got["remove"].res() == 0


def test_timeout_remove_of_completed_timeout_is_enoent(ring):
    t, cqe = run_op(ring, "timeout", 0.01)
    assert cqe.res() == -errno.ETIME
    _, cqe = run_op(ring, "timeout_remove", t)
    assert_fails(cqe, errno.ENOENT, FileNotFoundError)


# --------------------------------------------------------------------------
# cancel


def test_cancel_pending_recv(ring, tcp_pair):
    client, server = tcp_pair
    target = prep(ring, "recv", server, 100, tag="recv")
    ring.submit()
    prep(ring, "cancel", target, tag="cancel")
    ring.submit()
    got = by_data(wait_n(ring, 2))
    assert_fails(got["recv"], errno.ECANCELED)
    assert got["cancel"].res() == 0
    # The cancelled recv consumed nothing.
    client.sendall(b"still here")
    server.settimeout(WAIT)
    assert server.recv(100) == b"still here"


def test_cancel_pending_timeout(ring):
    target = prep(ring, "timeout", 10, tag="timeout")
    ring.submit()
    prep(ring, "cancel", sqe=target, flags=0, tag="cancel")
    t0 = time.monotonic()
    ring.submit()
    got = by_data(wait_n(ring, 2))
    assert time.monotonic() - t0 < WAIT
    assert got["timeout"].res() == -errno.ECANCELED
    assert got["cancel"].res() == 0


def test_cancel_pending_pipe_read_into_buffer(ring, pipe):
    r, w = pipe
    buf = bytearray(8)
    target = prep(ring, "read", r, buf, tag="read")
    ring.submit()
    prep(ring, "cancel", target, tag="cancel")
    ring.submit()
    got = by_data(wait_n(ring, 2))
    assert got["read"].res() == -errno.ECANCELED
    assert got["cancel"].res() == 0
    os.write(w, b"12345678")
    assert buf == bytearray(8)
    assert os.read(r, 100) == b"12345678"


def test_cancel_of_completed_operation_is_enoent(ring):
    target, _ = run_op(ring, "nop")
    _, cqe = run_op(ring, "cancel", target)
    assert_fails(cqe, errno.ENOENT, FileNotFoundError)


def test_cancel_of_stale_target_does_not_hit_a_newer_operation(ring):
    # The old operation's slot may be reused by a new one: cancelling the old
    # Sqe must find nothing rather than cancel the newcomer.
    old, _ = run_op(ring, "nop")
    newer = []
    for i in range(8):
        newer.append(prep(ring, "timeout", 60, tag=i))
    ring.submit()
    prep(ring, "cancel", old, tag="cancel")
    prep(ring, "timeout_remove", old, tag="remove")
    ring.submit()
    got = by_data(wait_n(ring, 2))
    assert got["cancel"].res() == -errno.ENOENT
    assert got["remove"].res() == -errno.ENOENT
    assert ring.wait_cqe(timeout=0.05) is None  # all 8 timeouts still pending
    assert ring.in_flight() == 8


def test_target_from_an_earlier_life_of_the_ring(ring):
    old = prep(ring, "timeout", 60)
    ring.submit()
    ring.queue_exit()
    try:
        ring.queue_init(64)
    except ValueError:
        pytest.skip("this ring cannot be initialised again")
    pending = prep(ring, "timeout", 60, tag="pending")
    ring.submit()
    s = ring.get_sqe()
    try:
        s.prep_cancel(old)
    except ValueError:
        s.prep_nop()  # refused: fine
        s.set_data("cancel")
        ring.submit()
        assert wait_one(ring).res() == 0
    else:
        s.set_data("cancel")
        ring.submit()
        assert wait_one(ring).res() == -errno.ENOENT
    assert ring.wait_cqe(timeout=0.05) is None  # `pending` was not cancelled
    del pending


# --------------------------------------------------------------------------
# poll_add, poll_multishot, poll_remove, poll_update


def test_poll_add_waits_for_readable(ring, pipe):
    need(ring, "poll_add")
    r, w = pipe
    prep(ring, "poll_add", r, select.POLLIN, tag="p")
    ring.submit()
    assert ring.wait_cqe(timeout=0.02) is None
    os.write(w, b"x")
    cqe = wait_one(ring)
    assert cqe.get_data() == "p"
    assert cqe.getresult() & select.POLLIN
    assert os.read(r, 1) == b"x"  # poll consumed nothing


def test_poll_add_writable_immediately(ring, pipe):
    need(ring, "poll_add")
    _, cqe = run_op(ring, "poll_add", pipe[1], select.POLLOUT)
    assert cqe.getresult() & select.POLLOUT


def test_poll_add_reports_hangup(ring, pipe):
    need(ring, "poll_add")
    r, w = pipe
    os.close(w)
    _, cqe = run_op(ring, "poll_add", r, select.POLLIN)
    assert cqe.getresult() & select.POLLHUP


def test_poll_multishot_reports_repeatedly(ring, tcp_pair):
    need(ring, "poll_multishot", "poll_remove")
    client, server = tcp_pair
    sqe = prep(ring, "poll_multishot", server, select.POLLIN)
    ring.submit()
    for i in range(3):
        client.send(b"%d" % i)
        cqe = wait_one(ring)
        assert cqe.flags() & IORING_CQE_F_MORE
        assert cqe.getresult() & select.POLLIN
        assert server.recv(10) == b"%d" % i  # drain, so the next send is a new event
    prep(ring, "poll_remove", sqe, tag="rm")
    ring.submit()
    cqes = by_data(wait_n(ring, 2))
    assert cqes["rm"].res() == 0
    assert cqes[None].res() == -errno.ECANCELED
    assert not cqes[None].flags() & IORING_CQE_F_MORE


def test_poll_remove_pending_poll(ring, pipe):
    need(ring, "poll_add", "poll_remove")
    target = prep(ring, "poll_add", pipe[0], select.POLLIN, tag="poll")
    ring.submit()
    prep(ring, "poll_remove", target, tag="remove")
    ring.submit()
    cqes = by_data(wait_n(ring, 2))
    assert cqes["remove"].getresult() == 0
    assert_fails(cqes["poll"], errno.ECANCELED)
    assert ring.in_flight() == 0


def test_poll_remove_of_completed_poll_is_enoent(ring, pipe):
    need(ring, "poll_add", "poll_remove")
    target, cqe = run_op(ring, "poll_add", pipe[1], select.POLLOUT)
    assert cqe.res() & select.POLLOUT
    op_fails(ring, "poll_remove", errno.ENOENT, target)


def test_poll_update_changes_mask(ring, tcp_pair):
    need(ring, "poll_add", "poll_update")
    client, server = tcp_pair
    # POLLPRI never fires on this socket; switch the poll to POLLOUT (ready)
    target = prep(ring, "poll_add", server, select.POLLPRI, tag="poll")
    ring.submit()
    assert ring.wait_cqe(timeout=0.02) is None
    prep(ring, "poll_update", target, select.POLLOUT, tag="update")
    ring.submit()
    first = wait_one(ring)
    assert first.get_data() == "update", first.get_data()
    assert first.getresult() == 0
    poll = wait_one(ring)
    assert poll.get_data() == "poll"
    assert poll.getresult() & select.POLLOUT
    assert not poll.getresult() & select.POLLPRI


def test_poll_update_add_multi_alone_is_einval(ring, pipe):
    # IORING_POLL_ADD_MULTI without an update is meaningless to the kernel
    need(ring, "poll_add", "poll_update")
    target = prep(ring, "poll_add", pipe[0], select.POLLIN, tag="poll")
    ring.submit()
    op_fails(ring, "poll_update", errno.EINVAL, target, select.POLLIN,
             py_io_uring.IORING_POLL_ADD_MULTI)
    assert ring.in_flight() == 1  # the poll is still pending
    os.write(pipe[1], b"x")
    assert wait_one(ring).getresult() & select.POLLIN


def test_poll_update_of_completed_poll_is_enoent(ring, pipe):
    need(ring, "poll_add", "poll_update")
    target, cqe = run_op(ring, "poll_add", pipe[1], select.POLLOUT)
    assert cqe.res() & select.POLLOUT
    op_fails(ring, "poll_update", errno.ENOENT, target, select.POLLIN)


# --------------------------------------------------------------------------
# link_timeout, timeout_update, cancel64, cancel_fd


def test_link_timeout_fires(ring, tcp_pair):
    need(ring, "link_timeout")
    client, server = tcp_pair
    recv = prep(ring, "recv", server, 16, tag="recv")
    recv.set_flags(IOSQE_IO_LINK)
    prep(ring, "link_timeout", 0.02, tag="lt")
    ring.submit()
    t0 = time.monotonic()
    cqes = by_data(wait_n(ring, 2))
    assert time.monotonic() - t0 < 2
    assert_fails(cqes["recv"], errno.ECANCELED)
    assert cqes["lt"].res() == -errno.ETIME
    with pytest.raises(TimeoutError):
        cqes["lt"].getresult()


def test_link_timeout_not_reached(ring, tcp_pair):
    need(ring, "link_timeout")
    client, server = tcp_pair
    client.sendall(b"in time")
    recv = prep(ring, "recv", server, 16, tag="recv")
    recv.set_flags(IOSQE_IO_LINK)
    prep(ring, "link_timeout", 5, tag="lt")
    ring.submit()
    cqes = by_data(wait_n(ring, 2))
    assert cqes["recv"].getresult() == b"in time"
    assert cqes["lt"].res() == -errno.ECANCELED


def test_link_timeout_without_linked_op_is_einval(ring):
    # Linux 6.18: a link_timeout with no linked request before it is EINVAL
    op_fails(ring, "link_timeout", errno.EINVAL, 0.01)


def test_timeout_update_shortens_pending_timeout(ring):
    need(ring, "timeout_update")
    t = prep(ring, "timeout", 30, tag="t")
    ring.submit()
    t0 = time.monotonic()
    prep(ring, "timeout_update", t, 0.01, tag="upd")
    ring.submit()
    cqes = by_data(wait_n(ring, 2))
    assert time.monotonic() - t0 < 2
    assert cqes["upd"].getresult() == 0
    assert cqes["t"].res() == -errno.ETIME


def test_timeout_update_of_completed_timeout_is_enoent(ring):
    need(ring, "timeout_update")
    t, cqe = run_op(ring, "timeout", 0.001)
    assert cqe.res() == -errno.ETIME
    op_fails(ring, "timeout_update", errno.ENOENT, t, 1)


def test_cancel64_by_user_data(ring, pipe):
    need(ring, "cancel64")
    target = prep(ring, "read", pipe[0], 10, tag="read")
    ring.submit()
    prep(ring, "cancel64", target.user_data(), tag="cancel")
    ring.submit()
    cqes = by_data(wait_n(ring, 2))
    assert cqes["cancel"].getresult() == 0
    assert_fails(cqes["read"], errno.ECANCELED)
    assert cqes["read"].user_data() == target.user_data()


def test_cancel64_unknown_user_data_is_enoent(ring):
    need(ring, "cancel64")
    done, _ = run_op(ring, "nop")
    op_fails(ring, "cancel64", errno.ENOENT, done.user_data())


def test_cancel_fd_cancels_by_fd(ring, tcp_pair):
    need(ring, "cancel_fd")
    client, server = tcp_pair
    prep(ring, "recv", server, 16, tag="r1")
    prep(ring, "recv", server, 16, tag="r2")
    ring.submit()
    prep(ring, "cancel_fd", server, py_io_uring.IORING_ASYNC_CANCEL_ALL, tag="cancel")
    ring.submit()
    cqes = by_data(wait_n(ring, 3))
    assert cqes["cancel"].getresult() == 2
    assert_fails(cqes["r1"], errno.ECANCELED)
    assert_fails(cqes["r2"], errno.ECANCELED)


def test_cancel_fd_single(ring, tcp_pair, pipe):
    need(ring, "cancel_fd")
    client, server = tcp_pair
    prep(ring, "recv", server, 16, tag="sock")
    prep(ring, "read", pipe[0], 16, tag="pipe")
    ring.submit()
    prep(ring, "cancel_fd", server.fileno(), tag="cancel")
    ring.submit()
    cqes = by_data(wait_n(ring, 2))
    assert cqes["cancel"].res() == 0
    assert_fails(cqes["sock"], errno.ECANCELED)
    assert ring.in_flight() == 1  # the pipe read is untouched
    os.write(pipe[1], b"still here")
    assert wait_one(ring).getresult() == b"still here"


def test_cancel_fd_nothing_to_cancel_is_enoent(ring, pipe):
    op_fails(ring, "cancel_fd", errno.ENOENT, pipe[0])


# --------------------------------------------------------------------------
# cancel64: its argument is `target` now (user_data is the fast forms')


def test_cancel64_by_target_keyword(ring, pipe):
    need(ring, "cancel64")
    victim = ring.get_sqe()
    victim.prep_read(pipe[0], 10)
    victim.set_data("victim")
    ring.submit()
    ring.prep_cancel64(target=victim.user_data(), user_data="cancel")
    ring.submit()
    assert by_ud(reap_n(ring, 2)) == {"cancel": (0, 0), "victim": (-errno.ECANCELED, 0)}
    # Sqe's form takes the keyword too
    victim2 = ring.get_sqe()
    victim2.prep_read(pipe[0], 10)
    victim2.set_data("victim2")
    ring.submit()
    s = ring.get_sqe()
    s.prep_cancel64(target=victim2.user_data())
    s.set_data("cancel2")
    ring.submit()
    assert by_ud(reap_n(ring, 2)) == {"cancel2": (0, 0), "victim2": (-errno.ECANCELED, 0)}
    ring.prep_cancel64(victim2.user_data(), user_data="nothing left")
    ring.submit()
    assert reap_n(ring, 1) == [("nothing left", -errno.ENOENT, 0)]


def test_cancel64_old_keyword_is_gone(ring):
    # on the fast form user_data= is the completion's data, not the target
    with pytest.raises(TypeError) as ei:
        ring.prep_cancel64(user_data=5)
    assert "target" in str(ei.value)
    assert_nothing_queued(ring)
    s = ring.get_sqe()
    with pytest.raises(TypeError) as ei:
        s.prep_cancel64(user_data=5)
    assert "user_data" in str(ei.value)


# --------------------------------------------------------------------------
# naming a fast-form operation to cancel, remove or update: it has no Sqe,
# so the target argument takes the user_data it was queued with


@pytest.fixture
def idle_pipe():
    """A pipe nobody writes to: a read on it stays in flight."""
    r, w = os.pipe()
    yield r, w
    os.close(r)
    os.close(w)


def _by_data(results):
    return {d: res for d, res, _ in results}


@pytest.mark.parametrize("make_data", [lambda: 10 ** 6, lambda: "read-" + "x" * 3, Token],
                         ids=["int", "str", "object"])
def test_cancel_names_a_fast_form_op_by_its_user_data(ring, idle_pipe, make_data):
    data = make_data()
    buf = bytearray(8)
    ring.prep_read(idle_pipe[0], buf, user_data=data)
    assert ring.submit() == 1
    # an int or str equal to the user_data names it; any other object must be it
    same = int(str(data)) if isinstance(data, int) else (
        "".join(data) if isinstance(data, str) else data)
    ring.prep_cancel(same, user_data="cancel")
    got = _by_data(ring.reap(4, 2, True))
    assert got == {data: -errno.ECANCELED, "cancel": 0}
    assert ring.cq_ready() == 0


def test_equal_object_of_another_type_names_nothing(ring, idle_pipe):
    ring.prep_read(idle_pipe[0], 8, user_data=10 ** 6)
    ring.submit()
    for other in (float(10 ** 6), str(10 ** 6), [10 ** 6]):
        with pytest.raises(TypeError, match="user_data of an operation in flight"):
            ring.prep_cancel(other)
    assert ring.sq_ready() == 0
    ring.prep_cancel(10 ** 6)
    assert _by_data(ring.reap(4, 2, True))[10 ** 6] == -errno.ECANCELED


def test_custom_eq_is_not_called_and_does_not_match(ring, idle_pipe):
    calls = []

    class Eq:
        def __eq__(self, other):
            calls.append(other)
            return True

        __hash__ = object.__hash__

    ring.prep_read(idle_pipe[0], 8, user_data=Eq())
    ring.submit()
    with pytest.raises(TypeError):
        ring.prep_cancel(Eq())
    assert calls == []
    ring.prep_cancel_fd(idle_pipe[0])
    assert len(ring.reap(4, 2, True)) == 2


def test_two_ops_with_the_same_user_data_are_ambiguous(ring, idle_pipe):
    ring.prep_read(idle_pipe[0], 8, user_data="dup")
    ring.prep_read(idle_pipe[0], 8, user_data="dup")
    ring.submit()
    with pytest.raises(ValueError, match="2 operations in flight"):
        ring.prep_cancel("dup")
    assert ring.sq_ready() == 0
    ring.prep_cancel_fd(idle_pipe[0], py_io_uring.IORING_ASYNC_CANCEL_ALL, user_data="all")
    got = ring.reap(4, 3, True)
    assert sorted(res for d, res, _ in got if d == "dup") == [-errno.ECANCELED] * 2
    assert _by_data(got)["all"] == 2


def test_user_data_of_a_handed_out_completion_names_nothing(ring):
    ring.prep_nop(user_data=777777)
    assert ring.reap(1, 1, True) == [(777777, 0, 0)]
    with pytest.raises(TypeError, match="no operation in flight"):
        ring.prep_cancel(777777)
    assert ring.sq_ready() == 0


def test_completed_but_unseen_target_gives_enoent(ring):
    ring.prep_nop(user_data="done")
    ring.prep_nop(user_data="other")
    ring.submit_and_wait(2)
    first = ring.peek_cqe()          # moves both completions into the queue
    assert first is not None and first.get_data() == "done"
    ring.prep_cancel("other", user_data="cancel")
    ring.submit_and_wait(1)
    got = ring.reap(8)
    assert [d for d, _, _ in got] == ["done", "other", "cancel"]
    assert _by_data(got)["cancel"] == -errno.ENOENT


def test_an_op_in_flight_wins_over_a_completed_one_with_the_same_user_data(ring, idle_pipe):
    ring.prep_nop(user_data="same")
    ring.submit_and_wait(1)
    assert ring.peek_cqe().get_data() == "same"     # completed, not yet seen
    ring.prep_read(idle_pipe[0], 8, user_data="same")
    ring.submit()
    ring.prep_cancel("same", user_data="cancel")
    got = ring.reap(8, 3, True)
    assert [(d, res) for d, res, _ in got if d == "same"] == [("same", 0), ("same", -errno.ECANCELED)]
    assert _by_data(got)["cancel"] == 0


def test_none_is_never_a_target(ring, idle_pipe):
    ring.prep_read(idle_pipe[0], 8)          # no user_data given
    ring.submit()
    with pytest.raises(TypeError):
        ring.prep_cancel(None)
    ring.prep_cancel_fd(idle_pipe[0])
    assert len(ring.reap(4, 2, True)) == 2


def test_the_cancel_never_names_itself(ring):
    s = ring.get_sqe()
    s.set_data("me")
    with pytest.raises(TypeError):
        s.prep_cancel("me")          # no other operation has it
    with pytest.raises(TypeError):
        ring.prep_cancel("me2", user_data="me2")


def test_timeout_remove_and_update_by_user_data(ring):
    ring.prep_timeout(30.0, user_data="t1")
    ring.prep_timeout(30.0, user_data="t2")
    ring.submit()
    ring.prep_timeout_update("t2", 0.001, user_data="upd")
    ring.prep_timeout_remove("t1", user_data="rm")
    got = _by_data(ring.reap(8, 4, True))
    assert got == {"t1": -errno.ECANCELED, "rm": 0, "upd": 0, "t2": -errno.ETIME}


def test_poll_remove_by_user_data(ring, idle_pipe):
    import select
    key = ("poll", idle_pipe[0])          # built at run time: its own object
    ring.prep_poll_add(idle_pipe[0], select.POLLIN, user_data=key)
    ring.submit()
    assert ring.reap(4) == []             # nothing ready
    with pytest.raises(TypeError):        # an equal tuple is not the same object
        ring.prep_poll_remove(("poll", idle_pipe[0]))
    ring.prep_poll_remove(key, user_data="rm")
    got = ring.reap(4, 2, True)
    assert (key, -errno.ECANCELED) in [(d, res) for d, res, _ in got]
    assert ("rm", 0) in [(d, res) for d, res, _ in got]


def test_prep_many_cancels_by_user_data(ring, idle_pipe):
    ring.prep_many("read", [(idle_pipe[0], 8)] * 3, user_data=[101, 102, 103])
    ring.submit()
    assert ring.prep_many("cancel", [(101,), (102,), (103,)], user_data=["c"] * 3) == 3
    got = ring.reap(8, 6, True)
    assert sorted(res for d, res, _ in got if d != "c") == [-errno.ECANCELED] * 3
    assert [res for d, res, _ in got if d == "c"] == [0, 0, 0]


# ---- poll_update(..., IORING_POLL_UPDATE_USER_DATA, new_user_data): the poll's
# Python user data changes when the update's completion is reaped; the
# kernel's user_data stays the runtime's, so the record still ends

class Data:
    pass


def test_user_data_changes_in_completion_order(ring, unix_pair):
    a, b = unix_pair
    ring.prep_poll_multishot(a, select.POLLIN, user_data="old")
    ring.submit()
    b.send(b"x")
    assert ring.reap(4, 1) == [("old", select.POLLIN, py_io_uring.IORING_CQE_F_MORE)]
    a.recv(8)
    ring.prep_poll_update("old", 0, IORING_POLL_UPDATE_USER_DATA, "new", user_data="upd")
    assert ring.reap(4, 1, True) == [("upd", 0, 0)]
    b.send(b"y")
    assert ring.reap(4, 1) == [("new", select.POLLIN, py_io_uring.IORING_CQE_F_MORE)]
    a.recv(8)
    # the poll is found by its new data, and removed: its record ends
    ring.prep_poll_remove("new", user_data="rm")
    got = dict((d, r) for d, r, _ in ring.reap(4, 2, True))
    assert got == {"rm": 0, "new": -125}            # ECANCELED
    assert ring.in_flight() == 0


def test_events_and_user_data_at_once_with_an_sqe(ring, unix_pair):
    a, b = unix_pair
    poll = ring.get_sqe()
    poll.prep_poll_multishot(a, select.POLLOUT)     # a has room: fires now
    poll.set_data("first")
    ring.submit()
    cqe = ring.wait_cqe()
    assert cqe.get_data() == "first"
    ring.cqe_seen(cqe)
    upd = ring.get_sqe()
    upd.prep_poll_update(poll, select.POLLIN,
                         IORING_POLL_UPDATE_EVENTS | IORING_POLL_UPDATE_USER_DATA | py_io_uring.IORING_POLL_ADD_MULTI,
                         None)
    ring.submit()
    while True:
        cqe = ring.wait_cqe()
        ring.cqe_seen(cqe)
        if cqe.get_data() is None and cqe.res() == 0 and cqe.flags() == 0:
            break                                   # the update's own
    assert poll.get_data() is None                  # the new user data: None
    b.send(b"z")
    cqe = ring.wait_cqe()
    assert cqe.res() == select.POLLIN and cqe.get_data() is None
    ring.cqe_seen(cqe)


def test_a_failed_update_changes_nothing_and_leaks_nothing(ring, unix_pair):
    a, b = unix_pair
    ring.prep_poll_multishot(a, select.POLLIN, user_data="keep")
    ring.submit()
    new = Data()
    ref = weakref.ref(new)
    # poll_mask without IORING_POLL_UPDATE_EVENTS: the kernel refuses it
    ring.prep_poll_update("keep", select.POLLIN, IORING_POLL_UPDATE_USER_DATA, new,
                          user_data="bad")
    del new
    assert ring.reap(4, 1, True) == [("bad", -22, 0)]
    gc.collect()
    assert ref() is None                            # released with the update
    b.send(b"x")
    assert ring.reap(4, 1)[0][0] == "keep"


def test_old_user_data_is_released_once_replaced(ring, unix_pair):
    a, b = unix_pair
    old, new = Data(), Data()
    old_ref, new_ref = weakref.ref(old), weakref.ref(new)
    ring.prep_poll_multishot(a, select.POLLIN, user_data=old)
    ring.submit()
    ring.prep_poll_update(old, 0, IORING_POLL_UPDATE_USER_DATA, new)
    del old, new
    assert ring.reap(4, 1, True) == [(None, 0, 0)]
    gc.collect()
    assert old_ref() is None                        # the poll let go of it
    assert new_ref() is not None                    # the poll holds it
    ring.prep_cancel(new_ref())
    got = ring.reap(4, 2, True)
    assert sorted(r for _, r, _ in got) == [-125, 0]
    del got
    gc.collect()
    assert new_ref() is None and ring.in_flight() == 0


def test_without_the_flag_new_user_data_is_ignored(ring, unix_pair):
    a, b = unix_pair
    ring.prep_poll_multishot(a, select.POLLIN, user_data="same")
    ring.submit()
    ring.prep_poll_update("same", select.POLLOUT, IORING_POLL_UPDATE_EVENTS, "ignored",
                          user_data="upd")
    got = ring.reap(4, 1, True)
    assert ("upd", 0, 0) in got
    assert all(d != "ignored" for d, _, _ in got)
