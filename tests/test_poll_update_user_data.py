"""prep_poll_update(..., IORING_POLL_UPDATE_USER_DATA, new_user_data): the
poll's Python user data changes when the update's completion is reaped;
the kernel's user_data stays the runtime's, so the record still ends."""

import gc
import select
import weakref

import pytest

import py_io_uring
from py_io_uring import IORING_POLL_UPDATE_EVENTS, IORING_POLL_UPDATE_USER_DATA, IoUring


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
