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


# ---------------------------------------------------------------- 3. closing cancels the awaiters

try:
    import uvloop
except ImportError:  # pragma: no cover - make deps-test installs it
    uvloop = None

LOOPS = ["asyncio", pytest.param("uvloop", marks=pytest.mark.no_leakcheck)]


@pytest.fixture(params=LOOPS)
def new_loop(request):
    """A factory of fresh loops of the parametrized kind."""
    if request.param == "uvloop" and uvloop is None:
        pytest.skip("uvloop is not installed (make deps-test installs it)")
    return uvloop.new_event_loop if request.param == "uvloop" else asyncio.new_event_loop


def run_on(new_loop, fn, *args):
    """Run fn(*args) on a fresh loop in debug mode (as -X dev has it),
    recording what the loop's exception handler is given."""
    loop = new_loop()
    loop.set_debug(True)
    reported = []
    loop.set_exception_handler(lambda lp, ctx: reported.append(ctx))
    try:
        return loop.run_until_complete(asyncio.wait_for(fn(*args), 30)), reported
    finally:
        loop.close()


def test_aclose_cancels_awaiters_and_logs_nothing(new_loop, unix_pair):
    a, _ = unix_pair
    r, w = os.pipe()

    async def main():
        ring = AsyncRing()
        loop = asyncio.get_running_loop()
        awaited = loop.create_task(ring_recv(ring))
        # futures nobody awaits: closing must not leave an exception in them
        loose = [ring.recv(a, 16), ring.read(r, 10), ring.timeout(60.0)]
        await asyncio.sleep(0.02)
        await ring.aclose()
        assert ring.closed() and ring.in_flight() == 0
        assert all(f.cancelled() for f in loose)
        with pytest.raises(asyncio.CancelledError):
            await awaited
        del loose, awaited
        gc.collect()
        await asyncio.sleep(0)      # what __del__ reported reaches the handler

    async def ring_recv(ring):
        return await ring.recv(a, 16)

    try:
        _, reported = run_on(new_loop, main)
        gc.collect()
    finally:
        os.close(r)
        os.close(w)
    assert [c.get("message") for c in reported] == []


# ---------------------------------------------------------------- 5. errors name the method called

import py_io_uring  # noqa: E402

ASYNC_OPS = sorted(n for n in dir(AsyncRing)
                   if hasattr(py_io_uring.Sqe, "prep_" + n) and not n.startswith("_"))


def test_every_generated_form_is_checked():
    assert {"read", "write", "recv", "openat", "recv_multishot", "nop"} <= set(ASYNC_OPS)


@pytest.mark.parametrize("name", ASYNC_OPS)
def test_argument_errors_name_the_async_method(name):
    async def main():
        async with AsyncRing() as ring:
            with pytest.raises(TypeError) as e:
                getattr(ring, name)(*range(20))
            msg = str(e.value)
            assert msg.startswith(name + "() "), msg
            assert "prep_" not in msg, msg

    asyncio.run(main())


def test_converter_errors_name_the_method_called():
    async def main():
        async with AsyncRing() as ring:
            with pytest.raises(ValueError, match=r"^read\(\) argument 'buf' must not be negative"):
                ring.read(0, -5)
            with pytest.raises(ValueError, match=r"^sock_recv\(\) argument"):
                ring.sock_recv(0, -1)
            with pytest.raises(ValueError, match=r"^send_all\(\) argument 'fd'"):
                ring.send_all(-1, b"x")
            with pytest.raises(TypeError, match=r"^recv_multishot\(\) takes"):
                ring.recv_multishot(0, 1, 2, 3, 4, 5, 6)
            # nothing half-started: the ring still works and holds nothing
            assert await ring.nop() == 0
            assert ring.in_flight() == 0

    asyncio.run(main())
