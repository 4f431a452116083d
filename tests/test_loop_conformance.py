"""CPython's own event-loop conformance tests, run on py_io_uring's loop.

The test classes of the running interpreter's `test.test_asyncio` package
(the tests asyncio's own loops must pass) are run here with the loop they
create being py_io_uring.EventLoop: directly, through `create_event_loop()`,
where the test class takes one (test_events, test_sock_lowlevel,
test_sendfile), and through the event loop policy where the tests call
asyncio.new_event_loop() (test_streams, test_server, ...).  Tests the
stock loop skips are skipped here too; tests this loop does not pass yet are
listed in EXCEPTIONS with the reason, and in docs/loop.md.

The loops have the default socket transports (the completion ones,
_transports.DEFAULT_KIND), or the ones PY_IO_URING_TRANSPORT names: CI's
matrix runs this module again with PY_IO_URING_TRANSPORT=selector on every
interpreter (.ci/matrix), so both kinds pass CPython's suites on each.
"""

import asyncio
import importlib
import os
import sys
import unittest

import pytest

from py_io_uring import loop as uring_loop

pytestmark = pytest.mark.no_leakcheck   # hundreds of tests, each seconds long

try:
    from test.test_asyncio import utils as test_utils
except ImportError:                     # an interpreter without its test package
    test_utils = None

# test id (Class.method) -> why it does not pass on this loop yet
EXCEPTIONS = {
}


def _module(name):
    if test_utils is None:
        return None
    try:
        return importlib.import_module("test.test_asyncio." + name)
    except ImportError:
        return None


def _skip_exceptions(cls):
    for test_id, why in EXCEPTIONS.items():
        klass, _, method = test_id.partition(".")
        if klass == cls.__name__ and hasattr(cls, method):
            setattr(cls, method, unittest.skip(why)(getattr(cls, method)))
    return cls


class _RingLoop:
    def create_event_loop(self):
        return uring_loop.EventLoop()


_events = _module("test_events")
if _events is not None and hasattr(_events, "UnixEventLoopTestsMixin"):
    @_skip_exceptions
    class TestEvents(_RingLoop, _events.UnixEventLoopTestsMixin,
                     _events.SubprocessTestsMixin, test_utils.TestCase):
        pass

_lowlevel = _module("test_sock_lowlevel")
if _lowlevel is not None:
    @_skip_exceptions
    class TestSockLowlevel(_RingLoop, _lowlevel.BaseSockTestsMixin,
                           test_utils.TestCase):
        pass

_sendfile = _module("test_sendfile")
if _sendfile is not None:
    @_skip_exceptions
    class TestSendfile(_RingLoop, _sendfile.SendfileTestsBase,
                       test_utils.TestCase):
        pass


class _RingPolicy:
    """For test classes that make their loop with asyncio.new_event_loop()."""

    def setUp(self):
        asyncio.set_event_loop_policy(uring_loop.EventLoopPolicy())
        # as the global policy is in CPython's own runs once any test has
        # set a loop: get_event_loop() then raises rather than making one
        # (3.12's test_create_subprocess_with_pidfd relies on it)
        asyncio.set_event_loop(None)
        super().setUp()

    def tearDown(self):
        try:
            super().tearDown()
        finally:
            asyncio.set_event_loop_policy(None)


def _policy_classes(modname):
    mod = _module(modname)
    if mod is None:
        return
    for name in dir(mod):
        cls = getattr(mod, name)
        if (isinstance(cls, type) and issubclass(cls, unittest.TestCase)
                and cls.__module__ == mod.__name__
                and any(n.startswith("test") for n in dir(cls))
                and "Proactor" not in name and "Windows" not in name):
            test_name = "Test_%s_%s" % (modname[5:], name)
            globals()[test_name] = _skip_exceptions(
                type(test_name, (_RingPolicy, cls), {"__qualname__": test_name}))


for _m in ("test_streams", "test_server", "test_subprocess", "test_sslproto",
           "test_ssl"):
    _policy_classes(_m)


def test_policy_makes_this_loop():
    policy = uring_loop.EventLoopPolicy()
    loop = policy.new_event_loop()
    try:
        assert type(loop) is uring_loop.EventLoop
        assert isinstance(loop._selector, uring_loop.RingSelector)
    finally:
        loop.close()


def test_loops_here_have_the_transport_the_environment_names():
    # what the run's summary (and CI's selector run) relies on
    from py_io_uring import _transports
    want = os.environ.get("PY_IO_URING_TRANSPORT") or _transports.DEFAULT_KIND
    loop = _RingLoop().create_event_loop()
    try:
        assert loop._transport_kind == want
    finally:
        loop.close()
