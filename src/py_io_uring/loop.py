"""py_io_uring's asyncio event loop, first tier: asyncio's own Unix loop
whose selector is an io_uring (docs/loop.md has the design and what comes
next).

Every readiness wait of the loop (add_reader, add_writer, the transports
and servers asyncio builds on them, the signal self-pipe, subprocess pipes)
is an IORING_OP_POLL_ADD on one ring, and each iteration of the loop makes
one io_uring_enter: it submits the polls the iteration armed, cancelled or
changed, and waits with the loop's timeout, the GIL released.  Everything
else is asyncio's, unchanged, so the loop behaves as asyncio's own does
(CPython's event-loop conformance tests run on it: tests/test_loop.py).

    import py_io_uring
    py_io_uring.install()            # as uvloop.install()
    asyncio.run(main())

or py_io_uring.run(main()), or on 3.12+
asyncio.run(main(), loop_factory=py_io_uring.new_event_loop).
"""

import asyncio
import errno
import selectors
import select
import sys
# typing's names under a private alias: as module attributes they would be
# public names stubtest checks (3.8's typing.Coroutine "is not a type")
import typing as _t

# the package's name, not ._core's: the package's stub types it
from . import IoUring

_T = _t.TypeVar("_T")

__all__ = ["RingSelector", "EventLoop", "EventLoopPolicy", "new_event_loop",
           "install", "run"]

_IN = select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP
_OUT = select.POLLOUT | select.POLLERR | select.POLLHUP


class RingSelector(selectors._BaseSelectorImpl):
    """A selectors.BaseSelector whose waits are io_uring polls.

    Level-triggered, as asyncio needs: each registered fd has at most one
    one-shot POLL_ADD in the kernel; after it fires, the next select()
    arms it again, and an fd still ready fires again at once.  A poll is
    named by a token (its user_data); a token that is no longer the fd's
    (the fd was unregistered or its events changed, and the old poll
    removed) is ignored when its completion arrives."""

    def __init__(self, entries: int = 256) -> None:
        super().__init__()
        self._ring = IoUring(entries)
        self._entries = entries
        self._armed: _t.Dict[int, int] = {}    # fd -> token of its poll in the kernel
        self._tokens: _t.Dict[int, int] = {}   # token -> fd, for the polls in the kernel
        self._to_arm: _t.Set[int] = set()      # fds registered and not armed
        self._next_token = 1

    def _remove_poll(self, fd):
        token = self._armed.pop(fd, None)
        if token is not None:
            # the completion of the poll (-ECANCELED) and of the remove
            # itself carry no token of a live poll: select() drops them
            self._make_room(1)
            self._ring.prep_poll_remove(token, user_data=0)

    def register(self, fileobj, events, data=None):
        key = super().register(fileobj, events, data)
        self._to_arm.add(key.fd)
        return key

    def unregister(self, fileobj):
        key = super().unregister(fileobj)
        self._to_arm.discard(key.fd)
        self._remove_poll(key.fd)
        return key

    def modify(self, fileobj, events, data=None):
        try:
            key = self._fd_to_key[self._fileobj_lookup(fileobj)]
        except KeyError:
            raise KeyError("{!r} is not registered".format(fileobj)) from None
        if events != key.events:
            self._remove_poll(key.fd)
            self._to_arm.add(key.fd)
        key = key._replace(events=events, data=data)
        self._fd_to_key[key.fd] = key
        return key

    def _make_room(self, n):
        if self._ring.sq_space_left() < n:
            self._ring.submit()

    def _arm(self):
        ring = self._ring
        for fd in self._to_arm:
            key = self._fd_to_key.get(fd)
            if key is None:
                continue
            mask = 0
            if key.events & selectors.EVENT_READ:
                mask |= select.POLLIN | select.POLLPRI
            if key.events & selectors.EVENT_WRITE:
                mask |= select.POLLOUT
            token = self._next_token
            self._next_token += 1
            self._make_room(1)
            ring.prep_poll_add(fd, mask, user_data=token)
            self._armed[fd] = token
            self._tokens[token] = fd
        self._to_arm.clear()

    def select(self, timeout=None):
        self._arm()
        ring = self._ring
        if timeout is None:
            ring.submit_and_wait(1)
        elif timeout <= 0:
            ring.submit()
        else:
            ring.submit_and_wait_timeout(1, timeout)
        ready = []
        while True:
            batch = ring.reap(self._entries)
            if not batch:
                break
            for token, res, _flags in batch:
                fd = self._tokens.pop(token, None)
                if fd is None or self._armed.get(fd) != token:
                    continue        # a removed poll, or a remove's own result
                del self._armed[fd]
                key = self._fd_to_key.get(fd)
                if key is None:
                    continue
                self._to_arm.add(fd)
                if res == -errno.ECANCELED:
                    continue
                events = 0
                if res < 0 or res & _IN:
                    events |= selectors.EVENT_READ
                if res < 0 or res & _OUT:
                    events |= selectors.EVENT_WRITE
                events &= key.events
                if events:
                    ready.append((key, events))
        return ready

    def close(self):
        super().close()
        ring, self._ring = self._ring, None
        if ring is not None:
            ring.queue_exit()
        self._armed.clear()
        self._tokens.clear()
        self._to_arm.clear()

    def fileno(self):
        return self._ring.fileno()


class EventLoop(asyncio.SelectorEventLoop):
    """asyncio's Unix event loop, with an io_uring as its selector."""

    def __init__(self, selector: _t.Optional[selectors.BaseSelector] = None) -> None:
        super().__init__(selector if selector is not None else RingSelector())


def new_event_loop() -> EventLoop:
    """Return a new EventLoop (the loop_factory of asyncio.run on 3.12+)."""
    return EventLoop()


class EventLoopPolicy(asyncio.DefaultEventLoopPolicy):
    """The default policy, making EventLoop instances (as uvloop's)."""

    _loop_factory: _t.Type[asyncio.AbstractEventLoop] = EventLoop


def install() -> None:
    """Make EventLoop the loop every asyncio.run() and new_event_loop()
    makes, as uvloop.install() does."""
    asyncio.set_event_loop_policy(EventLoopPolicy())


def run(main: _t.Coroutine[_t.Any, _t.Any, _T], *, debug: _t.Optional[bool] = None) -> _T:
    """asyncio.run(main) on a new EventLoop, on every supported Python."""
    if sys.version_info >= (3, 12):
        return asyncio.run(main, debug=debug, loop_factory=new_event_loop)
    if sys.version_info >= (3, 11):
        with asyncio.Runner(debug=debug, loop_factory=new_event_loop) as runner:
            return runner.run(main)
    return _run_before_311(main, debug)


def _run_before_311(main, debug):
    # asyncio.run() of 3.8..3.10 with the loop made here
    if not asyncio.iscoroutine(main):
        raise ValueError("a coroutine was expected, got {!r}".format(main))
    loop = new_event_loop()
    try:
        asyncio.set_event_loop(loop)
        if debug is not None:
            loop.set_debug(debug)
        return loop.run_until_complete(main)
    finally:
        try:
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            if tasks:
                loop.run_until_complete(
                    asyncio.gather(*tasks, return_exceptions=True))
            for task in tasks:
                if not task.cancelled() and task.exception() is not None:
                    loop.call_exception_handler({
                        "message": "unhandled exception during py_io_uring.run() shutdown",
                        "exception": task.exception(),
                        "task": task,
                    })
            loop.run_until_complete(loop.shutdown_asyncgens())
            if hasattr(loop, "shutdown_default_executor"):
                loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            loop.close()
