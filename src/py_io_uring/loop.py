"""py_io_uring's asyncio event loop, first tier: asyncio's own Unix loop
whose selector is an io_uring (docs/loop.md has the design and what comes
next).

Every readiness wait of the loop (add_reader, add_writer, the transports
and servers asyncio builds on them, the signal self-pipe, subprocess pipes)
is an IORING_OP_POLL_ADD on one ring, and each iteration of the loop makes
one io_uring_enter: it submits the polls the iteration armed, cancelled or
changed, and waits with the loop's timeout, the GIL released.  Socket
transports are, by default, asyncio's own over the polls;
EventLoop(transport="uring") gives completion transports on that same ring
(_transports.py: receives and sends as ring operations).
get_running_ring() gives code on the loop its ring as an AsyncRing.  The
iteration (_run_once), call_soon and call_at are asyncio's, in C
(src/async/loop_core.c) outside debug mode.  Everything else is asyncio's,
unchanged, so the loop behaves as asyncio's own does (CPython's event-loop
conformance tests run on it, with both transports:
tests/test_loop_conformance.py).

    import py_io_uring
    py_io_uring.install()            # as uvloop.install()
    asyncio.run(main())

or py_io_uring.run(main()), or on 3.12+
asyncio.run(main(), loop_factory=py_io_uring.new_event_loop).
"""

import asyncio
import errno
import heapq
import importlib as _importlib
import socket
import warnings
from asyncio import base_events as _base_events
from asyncio import selector_events as _selector_events
from asyncio import sslproto as _sslproto
from asyncio import format_helpers as _format_helpers
import inspect as _inspect
import time
import selectors
import sys
# typing's names under a private alias: as module attributes they would be
# public names stubtest checks (3.8's typing.Coroutine "is not a type")
import typing as _t

# the package's name, not ._core's: the package's stub types it
from . import (AsyncRing, IORING_SETUP_COOP_TASKRUN, IORING_SETUP_DEFER_TASKRUN,
               IORING_SETUP_R_DISABLED, IORING_SETUP_SINGLE_ISSUER,
               IORING_SETUP_TASKRUN_FLAG)
from . import _transports

_T = _t.TypeVar("_T")
# asyncio's _run_once, call_soon, call_at in C (src/async/loop_core.c); private:
# not in the stub
_LoopCore: _t.Any = getattr(_importlib.import_module("._core", __package__), "_LoopCore")
_check_ssl_socket = getattr(_base_events, "_check_ssl_socket", None)

__all__ = ["RingSelector", "EventLoop", "EventLoopPolicy", "new_event_loop",
           "install", "run", "get_running_ring"]


# typeshed leaves the private class out
_SelectorSocketTransport: _t.Any = getattr(_selector_events, "_SelectorSocketTransport")


class _SocketTransport(_SelectorSocketTransport):
    """asyncio's selector socket transport, reading at most 64 KiB a call.

    asyncio's own reads up to 256 KiB into a fresh bytes: above glibc's
    mmap threshold (128 KiB), so every read of a small message cost an
    mmap, an mremap (the bytes shrunk to what came) and an munmap: three
    system calls a message, measured with strace on the echo rows.  64 KiB
    is served from the heap; a larger message takes more reads, each as
    cheap."""

    max_size = 64 * 1024


def _new_ring(entries: int, single_issuer: bool = True) -> AsyncRing:
    """The loop's one ring: an AsyncRing in selector mode (src/async/
    selector.c), carrying the selector's polls and the loop's operations.

    single_issuer: SINGLE_ISSUER | DEFER_TASKRUN (Linux 6.1): the kernel
    keeps the ring's completion work until this thread asks for it, in the
    io_uring_enter that waits each iteration, instead of running it at any
    return from a system call (the loop makes hundreds between waits: every
    send, every recv).  Echo `Protocol` server, 1 KiB: 1.17x uvloop's
    messages per CPU-second, 1.00x with COOP_TASKRUN in the same run
    (docs/loop.md, "One thread's ring").  The price: the kernel
    takes submissions only from one thread.  The ring is set up disabled
    (R_DISABLED) and enabled by its first submit, in the thread that first
    runs the loop (src/async/dispatch.c); running the loop later in another
    thread is refused, and closing it from another thread lets go of what
    is still in flight without cancelling it (src/core/teardown.c).
    TASKRUN_FLAG: the kernel flags completion work waiting, so a select()
    that does not wait asks for it only then.

    Otherwise, or refused by an older kernel, COOP_TASKRUN (Linux 5.19):
    the kernel runs the completion work when this thread next enters the
    kernel, instead of interrupting it with an IPI, which measured as a
    tenth of the loop's time under HTTP load; refused too, a plain ring."""
    ring: _t.Any    # its selector-mode methods are private: not in the stub
    tries = [IORING_SETUP_COOP_TASKRUN, 0]
    if single_issuer:
        tries.insert(0, IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN
                     | IORING_SETUP_TASKRUN_FLAG | IORING_SETUP_R_DISABLED)
    for flags in tries:
        try:
            ring = AsyncRing(entries, flags)
            break
        except OSError as e:
            if e.errno != errno.EINVAL or not flags:
                raise
    ring._selector_mode()
    return ring


class RingSelector(selectors._BaseSelectorImpl):
    """A selectors.BaseSelector whose waits are io_uring polls.

    Level-triggered, as asyncio needs: each registered fd has at most one
    one-shot POLL_ADD in the kernel; after it fires, the next select()
    arms it again, and an fd still ready fires again at once.  A poll is
    named by a token (its user_data); a token that is no longer the fd's
    (the fd was unregistered or its events changed, and the old poll
    removed) is ignored when its completion arrives.

    The ring is an AsyncRing in selector mode (src/async/selector.c), the
    loop's only ring: the EventLoop runs its sock_* operations and
    completion transports on it.  The polls and their tokens are kept
    there, in C; select() is one C call that arms and removes the polls,
    submits them with every operation the iteration queued, waits with the
    timeout in the same io_uring_enter, hands operation completions to
    their futures and returns the polls' (key, events)."""

    def __init__(self, entries: int = 256, *, single_issuer: bool = True) -> None:
        super().__init__()
        self._aring: _t.Any = _new_ring(entries, single_issuer)

    def register(self, fileobj, events, data=None):
        key = super().register(fileobj, events, data)
        self._aring._sel_set(key.fd, events, key)
        return key

    def unregister(self, fileobj):
        key = super().unregister(fileobj)
        self._aring._sel_del(key.fd)
        return key

    def modify(self, fileobj, events, data=None):
        try:
            key = self._fd_to_key[self._fileobj_lookup(fileobj)]
        except KeyError:
            raise KeyError("{!r} is not registered".format(fileobj)) from None
        if events != key.events or data != key.data:
            if not events or events & ~(selectors.EVENT_READ | selectors.EVENT_WRITE):
                raise ValueError("Invalid events: {!r}".format(events))
            key = key._replace(events=events, data=data)
            # a new poll only when the events changed (the C side compares)
            self._aring._sel_set(key.fd, events, key)
            self._fd_to_key[key.fd] = key
        return key

    def select(self, timeout=None):
        return self._aring._select(timeout)

    def close(self):
        super().close()
        self._aring._close_now()

    def fileno(self):
        return self._aring.get_ring().fileno()


# Handle._run's except branch, as the running version has it (3.13 passes
# the loop's debug flag to _format_callback_source): loop_core.c calls it
# when a callback it ran raised anything but SystemExit/KeyboardInterrupt
_FORMAT_TAKES_DEBUG = "debug" in _inspect.signature(
    _format_helpers._format_callback_source).parameters


def _callback_error(handle, exc):
    if _FORMAT_TAKES_DEBUG:
        cb = _format_helpers._format_callback_source(
            handle._callback, handle._args, debug=handle._loop.get_debug())
    else:
        cb = _format_helpers._format_callback_source(
            handle._callback, handle._args)
    context = {
        'message': 'Exception in callback ' + cb,
        'exception': exc,
        'handle': handle,
    }
    if handle._source_traceback:
        context['source_traceback'] = handle._source_traceback
    handle._loop.call_exception_handler(context)


def _run_handle_debug(loop, handle):
    # BaseEventLoop._run_once's debug branch, for the rest of an iteration
    # in which a callback turned debug mode on (loop_core.c)
    try:
        loop._current_handle = handle
        t0 = loop.time()
        handle._run()
        dt = loop.time() - t0
        if dt >= loop.slow_callback_duration:
            _base_events.logger.warning('Executing %s took %.3f seconds',
                                        _base_events._format_handle(handle), dt)
    finally:
        loop._current_handle = None


class EventLoop(_LoopCore, asyncio.SelectorEventLoop):
    """asyncio's Unix event loop, with an io_uring as its selector; its
    iteration (_run_once), call_soon and call_at in C when not in debug
    mode."""

    def __init__(self, selector: _t.Optional[selectors.BaseSelector] = None,
                 *, transport: _t.Optional[str] = None,
                 single_issuer: bool = True) -> None:
        # transport: "uring" (reads and writes as ring operations,
        # _transports.py; the default: _transports.DEFAULT_KIND) or
        # "selector" (asyncio's transports over the ring's polls); None
        # reads PY_IO_URING_TRANSPORT, the default when it is unset or empty.
        # single_issuer: the ring takes submissions from the thread that
        # first runs the loop only, and is faster for it (_new_ring()); False
        # for a loop run by one thread, then another
        try:
            if transport is None:
                transport = _transports.default_kind()
            elif transport not in ("selector", "uring"):
                raise ValueError("transport must be 'selector' or 'uring', not {!r}"
                                 .format(transport))
        except ValueError:
            # nothing was opened: BaseEventLoop.__del__ reads _closed
            self._closed = True
            raise
        self._transport_kind = transport
        super().__init__(selector if selector is not None
                         else RingSelector(single_issuer=single_issuer))
        self._aring: _t.Optional[AsyncRing] = None
        # datagrams a cancelled sock_recvfrom(_into) still received: fd -> list
        self._dgram_carry: _t.Dict[int, _t.List[_t.Tuple[bytes, _t.Any]]] = {}
        # listening fd -> its multishot accept (completion transport)
        self._acceptors: _t.Dict[int, _t.Any] = {}

    # -- the loop's AsyncRing: every sock_* operation and the completion
    # transports run on it; with a RingSelector it is the selector's own
    # ring, whose select() submits, waits and reaps for both

    def _uring(self) -> AsyncRing:
        ar = self._aring
        if ar is None:
            base: _t.Any = self     # asyncio's private names, untyped
            base._check_closed()
            sel = base._selector
            if isinstance(sel, RingSelector):
                ar = sel._aring     # the loop's one ring (selector mode)
            else:
                ar = AsyncRing(256)     # its own, watched by its eventfd
            # bound to this loop now (a use while another loop runs is
            # refused), closed only by close(), its transports' buffer
            # group kept from the users get_running_ring() shares it with
            _t.cast(_t.Any, ar)._loop_ring(self)
            self._aring = ar
        return ar

    def close(self) -> None:
        if self.is_running():
            raise RuntimeError("Cannot close a running event loop")
        if self.is_closed():
            return
        ar, self._aring = self._aring, None
        if ar is not None:
            _t.cast(_t.Any, ar)._loop_ring(None)    # the loop's to close: now
        if ar is not None and not ar.closed:
            # first, while the loop takes callbacks: aclose() cancels what is
            # in flight (its futures schedule their callbacks, which never
            # run) and binds to the running loop: close as that loop
            prev = asyncio.events._get_running_loop()
            asyncio.events._set_running_loop(self)
            try:
                fut: _t.Any = ar.aclose()
                # the cancelled operations' last completions come at once
                # (-ECANCELED): reap them, so the ring closes now and
                # nothing is left to the AsyncRing's dealloc (bounded)
                deadline = time.monotonic() + 1.0
                while not ar.closed and time.monotonic() < deadline:
                    ar.process_completions()
                    if not ar.closed:
                        time.sleep(0.0005)
            finally:
                asyncio.events._set_running_loop(prev)
            if not fut.done():
                fut.cancel()
        super().close()     # the selector, the executor
        self._dgram_carry.clear()
        self._acceptors.clear()

    def _check_sock(self, sock):
        if _check_ssl_socket is not None:       # 3.9+: asyncio refuses SSLSocket
            _check_ssl_socket(sock)
        if self._debug and sock.gettimeout() != 0:
            raise ValueError("the socket must be non-blocking")
        self._ensure_fd_no_transport(sock.fileno())

    async def sock_recv(self, sock, n):
        """Receive up to n bytes from sock (one IORING_OP_RECV)."""
        self._check_sock(sock)
        return await self._uring().sock_recv(sock, n)

    async def sock_recv_into(self, sock, buf):
        """Receive into buf from sock (one IORING_OP_RECV into buf)."""
        self._check_sock(sock)
        return await self._uring().sock_recv_into(sock, buf)

    async def sock_sendall(self, sock, data):
        """Send all of data on sock (IORING_OP_SEND, MSG_WAITALL)."""
        self._check_sock(sock)
        if not memoryview(data).nbytes:
            return None
        ar = self._uring()
        fut = ar.sock_sendall(sock, data)
        ar.flush()          # the bytes leave now, as asyncio's eager send()
        await fut
        return None

    async def sock_connect(self, sock, address):
        """Connect sock to address (IORING_OP_CONNECT); names resolved as
        asyncio does."""
        self._check_sock(sock)
        if sock.family == socket.AF_INET or (
                _base_events._HAS_IPv6 and sock.family == socket.AF_INET6):
            resolved = await self._ensure_resolved(
                address, family=sock.family, type=sock.type, proto=sock.proto,
                loop=self)
            _, _, _, _, address = resolved[0]
        ar = self._uring()
        fut = ar.sock_connect(sock, address)
        ar.flush()          # the SYN leaves now, as asyncio's eager connect()
        return await fut

    async def sock_accept(self, sock):
        """Accept a connection on sock (IORING_OP_ACCEPT): (conn, address),
        conn non-blocking."""
        self._check_sock(sock)
        return await self._uring().sock_accept(sock)

    async def _recvmsg(self, sock, nbytes):
        fd = sock.fileno()
        kept = self._dgram_carry.get(fd)
        if kept:
            got = kept.pop(0)
            if not kept:
                del self._dgram_carry[fd]
            return got
        fut = self._uring().recvmsg(sock, nbytes)
        try:
            data, _anc, _flags, addr = await asyncio.shield(fut)
        except asyncio.CancelledError:
            # the receive may complete before its cancel reaches the kernel:
            # a datagram it got goes to the next receive, not lost.  The
            # cancel names this operation alone (by its user_data), not
            # every one on the socket: a sock_sendto blocked on it goes on.
            fut.add_done_callback(lambda f, fd=fd: self._keep_datagram(fd, f))
            if not fut.done():
                self._uring().cancel(fut)
            raise
        return data, addr

    def _keep_datagram(self, fd, fut):
        if fut.cancelled() or fut.exception() is not None:
            return
        data, _anc, _flags, addr = fut.result()
        self._dgram_carry.setdefault(fd, []).append((data, addr))

    async def sock_recvfrom(self, sock, bufsize):
        """Receive a datagram of at most bufsize bytes from sock
        (IORING_OP_RECVMSG): (data, address)."""
        self._check_sock(sock)
        return await self._recvmsg(sock, bufsize)

    async def sock_recvfrom_into(self, sock, buf, nbytes=0):
        """Receive a datagram into buf (IORING_OP_RECVMSG): (nbytes, address)."""
        self._check_sock(sock)
        view = memoryview(buf).cast("B")
        if not nbytes:
            nbytes = len(view)
        elif nbytes > len(view):
            raise ValueError("nbytes is greater than the length of the buffer")
        data, addr = await self._recvmsg(sock, nbytes)
        view[:len(data)] = data
        return len(data), addr

    async def sock_sendto(self, sock, data, address):
        """Send a datagram to address (IORING_OP_SEND with a destination)."""
        self._check_sock(sock)
        ar = self._uring()
        fut = ar.sendto(sock, data, address)
        ar.flush()
        return await fut

    async def _sock_sendfile_native(self, sock, file, offset, count):
        # sock_sendfile() and sendfile(): splices on the ring (_sendfile.py)
        from ._sendfile import sock_sendfile_native
        return await sock_sendfile_native(self, sock, file, offset, count)

    def _start_serving(self, protocol_factory, sock, sslcontext=None, server=None,
                       backlog=100, *args, **kwargs):
        # the completion transport's servers accept in the kernel (one
        # multishot accept per socket); the selector transports' as asyncio
        if _transports.enabled(self):
            _transports.start_serving(self, protocol_factory, sock, sslcontext,
                                      server, args, kwargs)
            return
        super()._start_serving(protocol_factory, sock, sslcontext, server,  # type: ignore[misc]
                               backlog, *args, **kwargs)

    def _stop_serving(self, sock):
        _transports.stop_serving(self, sock)
        super()._stop_serving(sock)     # type: ignore[misc]

    def _make_socket_transport(self, sock, protocol, waiter=None, *,
                               extra=None, server=None):
        if _transports.enabled(self):
            return _transports.make_socket_transport(
                self, sock, protocol, waiter, extra, server)
        return _SocketTransport(self, sock, protocol, waiter, extra, server)


    def _make_ssl_transport(self, rawsock, protocol, sslcontext, waiter=None,
                            *, server_side=False, server_hostname=None,
                            extra=None, server=None, **timeouts):
        if not _transports.enabled(self):
            return super()._make_ssl_transport(
                rawsock, protocol, sslcontext, waiter, server_side=server_side,
                server_hostname=server_hostname, extra=extra, server=server,
                **timeouts)
        # asyncio's SSL protocol over the completion transport
        ssl_protocol = _sslproto.SSLProtocol(
            self, protocol, sslcontext, waiter, server_side, server_hostname,
            **timeouts)
        _transports.make_socket_transport(self, rawsock, ssl_protocol, None,
                                          extra, server)
        return ssl_protocol._app_transport


_LoopCore._setup(asyncio.Handle, asyncio.TimerHandle, heapq, _base_events,
                 _callback_error, _run_handle_debug, time, RingSelector.select,
                 _selector_events.BaseSelectorEventLoop)


def get_running_ring() -> AsyncRing:
    """Return the running event loop's own AsyncRing, as
    asyncio.get_running_loop() returns the loop.

    On py_io_uring's EventLoop this is the ring the loop runs on: its
    operations go to the kernel with the loop's polls and its other
    operations, in the one io_uring_enter of each iteration, and complete
    in it (no eventfd, no second ring).  Everything on the loop shares it:
    the loop closes it (its aclose() and `async with` raise RuntimeError),
    and registrations made on its get_ring() are everyone's (a library
    that needs a file table or buffers of its own makes an AsyncRing()).
    RuntimeError when no loop is running, or when the running loop is not
    an EventLoop (asyncio's, uvloop's): there, make an AsyncRing(), which
    works on any asyncio loop."""
    loop = asyncio.get_running_loop()
    if not isinstance(loop, EventLoop):
        raise RuntimeError(
            "get_running_ring(): the running event loop is {}.{}, not "
            "py_io_uring's EventLoop, so it has no ring to share: make an "
            "AsyncRing() of your own on it".format(
                type(loop).__module__, type(loop).__qualname__))
    return loop._uring()


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
