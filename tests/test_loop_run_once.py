"""The loop's iteration and call_soon in C (src/async/loop_core.c): each
script runs on asyncio's own SelectorEventLoop and on py_io_uring's
EventLoop, and what happened must be the same: callback order, timers,
cancelled handles, stop(), exceptions and what the exception handler is
given, contextvars, debug mode."""

import asyncio
import contextvars
import functools
import logging

import pytest

from py_io_uring.loop import EventLoop


def _loops():
    return [asyncio.SelectorEventLoop, EventLoop]


def _both(script):
    """script(loop, log) on each loop; the two logs"""
    out = []
    for factory in _loops():
        loop = factory()
        # the scripts compare the loops outside debug mode, which
        # `python -X dev` (make devmode) turns on for every new loop
        loop.set_debug(False)
        log = []
        try:
            script(loop, log)
        finally:
            loop.close()
        out.append(log)
    return out


def test_the_c_methods_are_the_loops():
    # what the rest of this file tests is the C code, not asyncio's
    assert type(EventLoop.__dict__.get("_run_once", EventLoop._run_once)).__name__ \
        == "method_descriptor"
    assert type(EventLoop.call_soon).__name__ == "method_descriptor"


def test_order_of_call_soon_call_later_call_at_matches_asyncio():
    def script(loop, log):
        def cb(tag):
            log.append(tag)
            if tag == "a":
                loop.call_soon(cb, "a-next")        # next iteration
                loop.call_later(0, cb, "a-later0")
        loop.call_soon(cb, "a")
        loop.call_soon(cb, "b")
        loop.call_later(0.002, cb, "t2")
        loop.call_later(0.001, cb, "t1")
        loop.call_at(loop.time() + 0.001, cb, "t1-at")
        loop.call_later(-1, cb, "past")
        h = loop.call_soon(cb, "cancelled")
        h.cancel()
        t = loop.call_later(0.001, cb, "timer-cancelled")
        t.cancel()
        loop.call_later(0.01, loop.stop)
        loop.run_forever()
    a, b = _both(script)
    assert a == b
    assert a[:2] == ["a", "b"] and "cancelled" not in a and "timer-cancelled" not in a
    assert a.index("t1") < a.index("t2")


def test_callbacks_scheduled_while_running_wait_for_the_next_iteration():
    def script(loop, log):
        def cb(i):
            log.append((i, loop._ready and len(loop._ready)))
            if i < 5:
                loop.call_soon(cb, i + 1)
                loop.call_soon(cb, i + 10)
        loop.call_soon(cb, 0)
        for _ in range(4):
            loop.call_soon(loop.stop)
            loop.run_forever()
            log.append("iteration")
    a, b = _both(script)
    assert a == b and a.count("iteration") == 4


def test_stop_ends_the_iteration_after_the_ready_callbacks():
    def script(loop, log):
        loop.call_soon(log.append, 1)
        loop.call_soon(loop.stop)
        loop.call_soon(log.append, 2)       # same iteration: runs
        loop.call_soon(lambda: loop.call_soon(log.append, "later"))
        loop.run_forever()
        log.append(("stopped", len(loop._ready)))
        loop.call_soon(loop.stop)
        loop.run_forever()
        log.append("second")
    a, b = _both(script)
    assert a == b == [1, 2, ("stopped", 1), "later", "second"]


def test_cancelled_timer_cleanup_matches_asyncio():
    # more than _MIN_SCHEDULED_TIMER_HANDLES, most cancelled: the heap is
    # rebuilt; few cancelled: only the head is dropped
    def script(loop, log):
        for ncancel in (150, 3):
            hs = [loop.call_later(100 + i, log.append, i) for i in range(200)]
            for h in hs[:ncancel]:
                h.cancel()
            loop.call_soon(loop.stop)
            loop.run_forever()
            log.append((len(loop._scheduled), loop._timer_cancelled_count,
                        sum(h._scheduled for h in hs)))
            for h in hs:
                h.cancel()
    a, b = _both(script)
    assert a == b
    assert a[0] == (50, 0, 50)


def test_select_timeout_is_asyncios(monkeypatch):
    def script(loop, log):
        sel = loop._selector
        real = sel.select

        def select(timeout):
            log.append(None if timeout is None else round(timeout, 1))
            return real(0)
        sel.select = select
        loop.call_later(30, log.append, "never")
        loop.call_later(10 ** 6, log.append, "never")
        loop._run_once()                    # the first timer's wait
        loop.call_soon(log.append, "x")
        loop._run_once()                    # ready: 0
        loop._scheduled.clear()
        loop._run_once()                    # nothing: None
        loop.call_at(loop.time() + 10 ** 6, log.append, "never")
        loop._run_once()                    # capped at a day
        loop._scheduled.clear()
    a, b = _both(script)
    assert a == b == [30.0, 0, "x", None, 86400]


def test_exception_in_callback_reaches_the_handler_as_asyncio():
    def script(loop, log):
        def boom(x):
            raise ValueError(x)

        def handler(loop, context):
            log.append((sorted(context), context["message"],
                        type(context["exception"]), context["exception"].args,
                        type(context["handle"]).__name__,
                        context["handle"]._callback is boom))
        loop.set_exception_handler(handler)
        loop.call_soon(boom, "soon")
        loop.call_later(0, boom, "later")
        loop.call_soon(functools.partial(boom, "partial"))
        loop.call_soon(log.append, "after")
        loop.call_later(0.001, loop.stop)
        loop.run_forever()
    a, b = _both(script)
    assert a == b
    assert a[0][1].startswith("Exception in callback ")
    assert a[0][0] == ["exception", "handle", "message"]


def test_exception_handler_sees_the_exception_being_handled():
    import sys

    def script(loop, log):
        def handler(loop, context):
            log.append(type(sys.exc_info()[1]).__name__)
        loop.set_exception_handler(handler)
        loop.call_soon(lambda: 1 / 0)
        loop.call_soon(loop.stop)
        loop.run_forever()
        log.append(sys.exc_info())
    a, b = _both(script)
    assert a == b == ["ZeroDivisionError", (None, None, None)]


@pytest.mark.parametrize("exc", [KeyboardInterrupt, SystemExit])
def test_keyboard_interrupt_and_system_exit_propagate(exc):
    def script(loop, log):
        def boom():
            raise exc("x")
        loop.set_exception_handler(lambda l, c: log.append("handler"))
        loop.call_soon(log.append, 1)
        loop.call_soon(boom)
        loop.call_soon(log.append, 2)       # left on _ready
        try:
            loop.run_forever()
        except exc as e:
            log.append(("raised", e.args, len(loop._ready), loop.is_running()))
        loop.call_soon(loop.stop)
        loop.run_forever()
    a, b = _both(script)
    assert a == b == [1, ("raised", ("x",), 1, False), 2]


@pytest.mark.no_leakcheck     # caplog's records grow (asyncio's loop alike)
def test_an_exception_handler_that_raises_is_logged_and_the_loop_goes_on(caplog):
    def script(loop, log):
        def handler(loop, context):
            raise RuntimeError("handler")
        loop.set_exception_handler(handler)
        loop.call_soon(lambda: 1 / 0)
        loop.call_soon(log.append, "after")
        loop.call_soon(loop.stop)
        with caplog.at_level(logging.ERROR, logger="asyncio"):
            caplog.clear()
            loop.run_forever()
        # the handler's error chains to the callback's, as in Handle._run
        log.append([(r.getMessage().split("\n")[0], r.exc_info[0].__name__,
                     type(r.exc_info[1].__context__).__name__)
                    for r in caplog.records])
    a, b = _both(script)
    assert a == b == ["after", [("Unhandled error in exception handler",
                                 "RuntimeError", "ZeroDivisionError")]]


def test_contextvars_are_respected():
    var = contextvars.ContextVar("var", default="default")

    def script(loop, log):
        def cb(tag):
            log.append((tag, var.get()))
            var.set("changed-" + tag)
        var.set("at-call-soon")
        loop.call_soon(cb, "copied")
        var.set("after")
        ctx = contextvars.copy_context()
        ctx.run(var.set, "in-ctx")
        loop.call_soon(cb, "explicit", context=ctx)
        loop.call_soon(cb, "explicit-again", context=ctx)
        loop.call_later(0, cb, "timer")
        loop.call_soon(loop.stop)
        loop.run_forever()
        log.append(("outside", var.get(), ctx[var]))
    # in a context of its own: the values set stay out of the thread's
    a, b = contextvars.copy_context().run(_both, script)
    assert a == b
    assert a[:3] == [("copied", "at-call-soon"), ("explicit", "in-ctx"),
                     ("explicit-again", "changed-explicit")]


def test_a_context_entered_twice_reaches_the_handler():
    def script(loop, log):
        ctx = contextvars.copy_context()
        loop.set_exception_handler(
            lambda l, c: log.append(type(c["exception"]).__name__))
        # the callback runs in ctx and schedules itself in ctx: fine; a
        # handle run while ctx is entered fails to enter it
        loop.call_soon(lambda: ctx.run(loop._run_once), context=ctx)
        loop.call_soon(log.append, "x", context=ctx)
        loop.call_soon(loop.stop)
        loop.run_forever()
    a, b = _both(script)
    assert a == b and "RuntimeError" in a


def test_handles_are_asyncios():
    loop = EventLoop()
    loop.set_debug(False)       # (-X dev's debug mode adds "created at" lines)
    try:
        h = loop.call_soon(print, 1, 2)
        assert type(h) is asyncio.Handle
        ref_loop = asyncio.SelectorEventLoop()
        ref_loop.set_debug(False)
        ref = ref_loop.call_soon(print, 1, 2)
        ref_loop.close()
        assert repr(h) == repr(ref)     # '<Handle print(1, 2)>', 3.13: print()
        assert h._args == (1, 2) and h._loop is loop and not h.cancelled()
        assert h._source_traceback is None
        assert h._context is not None
        h.cancel()
        assert repr(h) == "<Handle cancelled>"
        assert h._callback is None and h.cancelled()
        assert loop._ready[-1] is h
    finally:
        loop.close()


def test_call_soon_errors_are_asyncios():
    for factory in _loops():
        loop = factory()
        msgs = []
        for args, kw in (((), {}), ((print,), {"nope": 1}),
                         ((print,), {"context": None, "nope": 1})):
            with pytest.raises(TypeError) as e:
                loop.call_soon(*args, **kw)
            msgs.append(str(e.value).split("call_soon")[-1])
        loop.close()
        with pytest.raises(RuntimeError, match="^Event loop is closed$"):
            loop.call_soon(print)
        if factory is EventLoop:
            assert msgs == asyncio_msgs
        asyncio_msgs = msgs


def test_a_handle_subclass_keeps_its_own_run():
    class MyHandle(asyncio.Handle):
        def _run(self):
            log.append("own run")
            super()._run()

    for factory in _loops():
        log = []
        loop = factory()
        try:
            loop._ready.append(MyHandle(log.append, ("cb",), loop, None))
            c = MyHandle(log.append, ("cancelled",), loop, None)
            c.cancel()
            loop._ready.append(c)
            loop.call_soon(loop.stop)
            loop.run_forever()
        finally:
            loop.close()
        assert log == ["own run", "cb"]


def test_a_context_that_is_not_a_context_is_run_through_its_run():
    class Ctx:
        def run(self, fn, *args):
            log.append("ctx.run")
            return fn(*args)

    for factory in _loops():
        log = []
        loop = factory()
        try:
            loop.call_soon(log.append, "cb", context=Ctx())
            loop.call_soon(loop.stop)
            loop.run_forever()
        finally:
            loop.close()
        assert log == ["ctx.run", "cb"]


def test_a_callback_cancelling_its_own_handle():
    def script(loop, log):
        box = []

        def cb(*args):
            box[0].cancel()
            log.append(args)
        box.append(loop.call_soon(cb, 1, 2))
        loop.call_soon(loop.stop)
        loop.run_forever()
        log.append(box[0].cancelled())
    a, b = _both(script)
    assert a == b == [(1, 2), True]


@pytest.mark.no_leakcheck     # caplog's records grow (asyncio's loop alike)
def test_debug_mode_logs_slow_callbacks(caplog):
    def script(loop, log):
        loop.set_debug(True)
        loop.slow_callback_duration = 0.0
        h = loop.call_soon(log.append, "cb")
        log.append(h._source_traceback is not None)
        with pytest.raises(TypeError):
            loop.call_soon(asyncio.sleep)       # a coroutine function
        loop.call_soon(loop.stop)
        with caplog.at_level(logging.WARNING, logger="asyncio"):
            caplog.clear()
            loop.run_forever()
        log.append(sum("Executing <Handle" in r.getMessage() for r in caplog.records))
    a, b = _both(script)
    assert a == b == [True, "cb", 2]


@pytest.mark.no_leakcheck     # caplog's records grow (asyncio's loop alike)
def test_debug_turned_on_by_a_callback_applies_to_the_rest_of_the_iteration(caplog):
    def script(loop, log):
        loop.slow_callback_duration = 0.0

        def on():
            loop.set_debug(True)
        loop.call_soon(on)
        loop.call_soon(log.append, "cb")
        loop.call_soon(loop.stop)
        with caplog.at_level(logging.WARNING, logger="asyncio"):
            caplog.clear()
            loop.run_forever()
        log.append(sorted(r.getMessage().split(" took")[0] for r in caplog.records
                          if r.getMessage().startswith("Executing")))
        loop.set_debug(False)
    a, b = _both(script)
    assert a == b
    assert len(a[-1]) == 2      # cb and stop: the rest of that iteration


def test_tasks_and_futures_run_on_the_loop():
    async def main():
        loop = asyncio.get_running_loop()
        out = []

        async def worker(i):
            await asyncio.sleep(0)
            fut = loop.create_future()
            loop.call_soon(fut.set_result, i)
            out.append(await fut)
            await asyncio.sleep(0.001 * (3 - i))
            out.append(-i)
        await asyncio.gather(*(worker(i) for i in range(3)))
        return out

    results = []
    for factory in _loops():
        loop = factory()
        try:
            results.append(loop.run_until_complete(main()))
        finally:
            loop.close()
    assert results[0] == results[1] == [0, 1, 2, -2, -1, 0]


def test_timer_handles_are_asyncios():
    out = []
    for factory in _loops():
        loop = factory()
        try:
            t = loop.call_at(loop.time() + 100, print, 1)
            t2 = loop.call_later(50, print, 2, context=contextvars.copy_context())
            row = [type(t), repr(t).split(" when=")[0], t._scheduled, t2._scheduled,
                   loop._scheduled[0] is t2, len(loop._scheduled),
                   t.when() == t._when, t2.when() <= t.when()]
            t.cancel()
            row += [t.cancelled(), loop._timer_cancelled_count, t._callback]
            with pytest.raises((TypeError, AssertionError)) as e:
                loop.call_at(None, print)
            row.append(type(e.value))
            with pytest.raises(TypeError):
                loop.call_at(loop.time())       # no callback
            with pytest.raises(TypeError):
                loop.call_at(loop.time(), print, nope=1)
        finally:
            loop.close()
        with pytest.raises(RuntimeError, match="^Event loop is closed$"):
            loop.call_at(1, print)
        out.append(row)
    assert out[0] == out[1]
    assert out[0][0] is asyncio.TimerHandle and out[0][2:6] == [True, True, True, 2]


def test_the_c_call_at_is_the_loops():
    assert type(EventLoop.call_at).__name__ == "method_descriptor"


def test_the_c_task_and_future_methods_are_the_loops():
    for name in ("time", "get_debug", "create_future", "create_task"):
        assert type(EventLoop.__dict__.get(name, getattr(EventLoop, name))).__name__ \
            == "method_descriptor", name


def test_create_task_and_create_future_are_asyncios():
    # each loop makes the same objects, named, in the given context, and
    # refuses the same arguments with the same messages
    var = contextvars.ContextVar("var", default="unset")

    async def coro():
        return var.get()

    out = []
    for factory in _loops():
        loop = factory()
        loop.set_debug(False)
        row = []
        try:
            fut = loop.create_future()
            row += [type(fut), fut.get_loop() is loop, fut._source_traceback]
            t = loop.create_task(coro(), name="named")
            row += [type(t), t.get_name(), t.get_loop() is loop, t._source_traceback]
            row.append(loop.run_until_complete(t))
            ctx = contextvars.copy_context()
            ctx.run(var.set, "in ctx")
            kw = {"context": ctx} if hasattr(asyncio.Task, "get_context") else {}
            t = loop.create_task(coro(), **kw)
            row.append(loop.run_until_complete(t))
            row.append(loop.get_debug())
            row.append(abs(loop.time() - __import__("time").monotonic()) < 1)
            for args, kwargs in (((), {}), ((1, 2), {}), ((None,), {"nope": 1})):
                with pytest.raises(TypeError) as e:
                    loop.create_task(*args, **kwargs)
                row.append((type(e.value), str(e.value).split("create_task")[-1]))
            with pytest.raises(TypeError, match="coroutine"):
                loop.create_task(5)
        finally:
            loop.close()
        c = coro()
        with pytest.raises(RuntimeError, match="^Event loop is closed$"):
            loop.create_task(c)
        c.close()
        out.append(row)
    assert out[0] == out[1]
    expect_ctx = "in ctx" if hasattr(asyncio.Task, "get_context") else "unset"
    assert out[0][:10] == [asyncio.Future, True, None, asyncio.Task, "named", True, None,
                           "unset", expect_ctx, False]


def test_create_task_in_debug_mode_and_with_a_task_factory_is_asyncios():
    async def coro():
        return 1

    out = []
    for factory in _loops():
        loop = factory()
        row = []
        try:
            loop.set_debug(True)
            t = loop.create_task(coro())         # this line ends its traceback
            row.append(t._source_traceback[-1].line)
            fut = loop.create_future()
            row.append(fut._source_traceback is not None)
            loop.run_until_complete(t)
            loop.set_debug(False)
            made = []

            def task_factory(lp, c, **kw):
                made.append(kw)
                return asyncio.Task(c, loop=lp, **kw)
            loop.set_task_factory(task_factory)
            t = loop.create_task(coro(), name="f")
            row += [t.get_name(), made]
            loop.run_until_complete(t)
        finally:
            loop.close()
        out.append(row)
    assert out[0] == out[1]
    assert out[0][0] == "t = loop.create_task(coro())         # this line ends its traceback"
    assert out[0][1:3] == [True, "f"]


def test_a_patched_future_class_is_used_as_asyncio_uses_it(monkeypatch):
    # create_future() looks futures.Future up at each call, as asyncio's does
    class MyFuture(asyncio.Future):
        pass
    monkeypatch.setattr(asyncio.futures, "Future", MyFuture)
    for factory in _loops():
        loop = factory()
        try:
            assert type(loop.create_future()) is MyFuture
        finally:
            loop.close()


def test_a_mocked_time_is_the_loops_clock():
    # tests mock loop.time; the C timers must read the mock, as asyncio's do
    loop = EventLoop()
    try:
        loop.time = lambda: 1000.0
        assert loop.time() == 1000.0
        h = loop.call_later(5, print)
        assert h.when() == 1005.0
        h.cancel()
    finally:
        loop.close()
