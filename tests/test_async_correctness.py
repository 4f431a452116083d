"""AsyncRing correctness (issue 15): exceptions survive a dropped ring,
closing cancels awaiters, errors name the method called and the path,
a cancelled receive gives its bytes back, and the names say what they do."""

import asyncio
import gc
import os

import pytest

from py_io_uring import AsyncRing


# ---------------------------------------------------------------- 1. dealloc keeps the exception

def test_dropped_ring_keeps_the_exception_of_an_op_outside_a_loop():
    # the temporary AsyncRing goes while RuntimeError propagates: its
    # teardown must not swallow it (was: SystemError, error return
    # without exception set)
    with pytest.raises(RuntimeError, match="no running event loop"):
        AsyncRing().nop()


def test_dropped_ring_keeps_the_exception_of_aenter_outside_a_loop():
    with pytest.raises(RuntimeError, match="no running event loop"):
        AsyncRing().__aenter__()


def test_async_with_driven_by_hand_keeps_the_exception():
    async def use():
        async with AsyncRing():
            pass   # pragma: no cover - __aenter__ raises

    coro = use()
    with pytest.raises(RuntimeError, match="no running event loop"):
        coro.send(None)
    coro.close()


def test_dropped_ring_with_ops_in_flight_keeps_the_exception(unix_pair):
    # the dealloc's ResourceWarning and its teardown run with the error set
    a, _ = unix_pair
    ring = AsyncRing()
    r = ring.get_ring()
    sqe = r.get_sqe()
    sqe.prep_recv(a, 16)
    r.submit()
    del sqe, r

    def drop():
        nonlocal ring
        try:
            raise KeyError("kept")
        finally:
            del ring   # the last reference: the dealloc runs as KeyError propagates

    with pytest.warns(ResourceWarning, match="not closed"):
        with pytest.raises(KeyError, match="kept"):
            drop()
