"""Completion-based socket transport of py_io_uring's event loop (docs/loop.md,
step 3): TCP and Unix stream connections whose reads and writes are
operations on the loop's AsyncRing, not readiness callbacks.

- Reads: in C (`_core._UringStream`, src/async/stream.c), told of each
  completion during the ring's reap, with no future: a Protocol's is one
  multishot receive from the AsyncRing's buffer ring, data_received() given
  the bytes of each completion; a BufferedProtocol has the kernel receive
  straight into the buffer its get_buffer() returned, one receive at a
  time.  pause_reading() cancels the receive in the kernel; bytes that come
  after are kept by the stream, in order, and come first after
  resume_reading().  set_protocol() gives the new protocol every byte not
  yet handed to one (asyncio's selector transport: its next read); to a
  BufferedProtocol it cancels the multishot receive in the kernel first.
- Writes: in C too (src/async/stream_write.c): write() is the stream's
  own method, an instance attribute.  With nothing queued, one send(2) at
  the call (as asyncio's and uvloop's transports); what it could not take
  goes to the kernel as a `send` operation told of its completion like the
  receive (MSG_WAITALL: the kernel finishes short sends); writes made
  meanwhile are queued and go out joined when it completes.  The write
  state (queue, eof, conn_lost, sendfile's waiter) lives in the stream
  only; the properties below read it.  Flow control counts the queue and
  the send in flight (asyncio's _FlowControlMixin).
- write_eof() shuts the write side down once the queue is empty; close()
  after it; abort() at once.  A reset reaches connection_lost() as the
  ConnectionResetError the receive or send failed with.

asyncio.proactor_events' transports are the model for the shapes.  Chosen
with EventLoop(transport="uring") or PY_IO_URING_TRANSPORT=uring: faster
than asyncio's selector transports over the ring's polls with 1 KiB
messages, 2.3x their CPU per message with 64 KiB ones (the bytes of a
whole reaped batch are allocated at once, and glibc gives the heap back and
faults it in again every batch), so the selector transports stay the
default until that is fixed (docs/loop.md, "The default transport")."""

import _socket
import asyncio
import errno
import os
import socket
import warnings
from asyncio import base_events, constants, protocols, transports

import importlib as _importlib
import inspect as _inspect
import typing as _t

# the read path in C (src/async/stream.c); private, so not in the stub
_UringStream: _t.Any = getattr(_importlib.import_module("._core", __package__), "_UringStream")

_trsock: _t.Any
try:                                    # 3.8+: what asyncio hands out as 'socket'
    from asyncio import trsock as _trsock
except ImportError:                     # pragma: no cover
    _trsock = None

# Server._attach() takes the transport from 3.13 on
_ATTACH_TAKES_TRANSPORT = len(_inspect.signature(
    getattr(base_events.Server, "_attach")).parameters) > 1


# the loop's socket transports when neither EventLoop(transport=) nor
# PY_IO_URING_TRANSPORT names them
DEFAULT_KIND = "uring"


def enabled(loop):
    return getattr(loop, "_transport_kind", DEFAULT_KIND) == "uring"


def default_kind():
    kind = os.environ.get("PY_IO_URING_TRANSPORT") or DEFAULT_KIND
    if kind not in ("selector", "uring"):
        raise ValueError("PY_IO_URING_TRANSPORT must be 'selector' or 'uring', "
                         "not {!r}".format(kind))
    return kind


def make_socket_transport(loop, sock, protocol, waiter, extra, server):
    return _UringSocketTransport(loop, sock, protocol, waiter, extra, server)


# the socket's family and type as ints: socket.socket's properties make an
# enum of each, four conversions a connection in asyncio's _set_nodelay()
_sock_family = _socket.socket.family.__get__
_sock_type = _socket.socket.type.__get__
_TCP_FAMILIES = (socket.AF_INET, socket.AF_INET6)


def _set_nodelay(sock):
    # asyncio's base_events._set_nodelay()
    if (_sock_family(sock) in _TCP_FAMILIES and _sock_type(sock) == socket.SOCK_STREAM
            and sock.proto == socket.IPPROTO_TCP):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _UringSocketTransport(transports._FlowControlMixin, transports.Transport):

    _sock = None        # so __del__ and close() work after a failed __init__
    # loop.sendfile(): the loop's native path (os.sendfile on the socket,
    # reading paused, once the write queue is empty)
    _sendfile_compatible = constants._SendfileMode.TRY_NATIVE
    _start_tls_compatible = True        # loop.start_tls() layers sslproto on it
    _core = None
    _eof_kept = False   # an EOF that came while reading was being paused

    def __init__(self, loop, sock, protocol, waiter=None, extra=None, server=None):
        super().__init__(extra, loop)
        self._extra["socket"] = _trsock.TransportSocket(sock) if _trsock else sock
        try:
            self._extra["sockname"] = sock.getsockname()
        except OSError:
            self._extra["sockname"] = None
        if "peername" not in self._extra:
            try:
                self._extra["peername"] = sock.getpeername()
            except OSError:
                self._extra["peername"] = None
        self._sock = sock
        self._sock_fd = sock.fileno()
        self._ring = loop._uring()
        self._server = server
        self._protocol_connected = False
        self._core = _UringStream(self._ring, self._sock_fd, self)
        self._core.high_water = self._high_water   # (set by super().__init__())
        self.set_protocol(protocol)
        # the write path is the stream's (C): no Python frame per write
        self.write = self._core.write
        self.writelines = self._core.writelines
        self._closing = False
        self._paused = False            # reading paused
        if server is not None:
            server._attach(self) if _ATTACH_TAKES_TRANSPORT else server._attach()
        loop._transports[self._sock_fd] = self
        _set_nodelay(sock)
        loop.call_soon(self._protocol.connection_made, self)
        loop.call_soon(self._read_next)
        if waiter is not None:
            loop.call_soon(asyncio.futures._set_result_unless_cancelled, waiter, None)

    def __repr__(self):
        info = [self.__class__.__name__]
        if self._sock is None:
            info.append("closed")
        elif self._closing:
            info.append("closing")
        info.append("fd=%s" % self._sock_fd)
        # asyncio's selector transport's fields: read polling or idle,
        # write polling (here: bytes in flight or queued) or idle, and
        # neither once the transport let go of its loop or the loop closed
        if self._loop is not None and not self._loop.is_closed():
            info.append("read=%s" % ("polling" if self.is_reading() else "idle"))
            bufsize = self.get_write_buffer_size()
            info.append("write=<%s, bufsize=%s>" % ("polling" if bufsize else "idle", bufsize))
        return "<%s>" % " ".join(info)

    def __del__(self, _warn=warnings.warn):
        if self._sock is not None:
            _warn("unclosed transport %r" % self, ResourceWarning, source=self)
            self._sock.close()

    # -- protocol

    def set_protocol(self, protocol):
        self._buffered = isinstance(protocol, protocols.BufferedProtocol)
        self._protocol = protocol
        self._protocol_connected = True
        if self._sock is not None:
            self._core.set_protocol(protocol, self._buffered)

    def get_protocol(self):
        return self._protocol

    def is_closing(self):
        return self._closing

    def is_reading(self):
        return not self._paused and not self._closing

    # -- reading

    def _read_next(self):
        # what was kept while paused first, then the receive (C)
        if not self._closing and not self._paused:
            if self._eof_kept:
                self._eof_kept = False
                self._on_eof()
            else:
                self._core.resume()

    def _feed(self, data):
        # bytes for a BufferedProtocol (kept while paused, or received for
        # the Protocol it replaced): asyncio's copy into its buffers
        try:
            protocols._feed_data_to_buffered_proto(self._protocol, data)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal error: protocol.buffer_updated() call failed.")

    def _read_eof(self):
        # the C read path tells of the EOF during the reap, inside the
        # loop's select(): what eof_received() schedules (close() ->
        # connection_lost) would run in that same iteration, one sooner than
        # with asyncio's selector transport, whose EOF is a read event
        # handled among the iteration's callbacks (3.8's sslproto then
        # forgets its transport, and get_extra_info() with it, before
        # create_connection()'s caller has run).  So the EOF is handled as
        # such a callback.
        self._loop.call_soon(self._on_eof)

    def _on_eof(self):
        if self._closing:
            return                      # as a selector transport: not read
        if self._paused:
            self._eof_kept = True       # pause_reading() came first: later
            return
        if self._loop.get_debug():
            asyncio.log.logger.debug("%r received EOF", self)
        try:
            keep_open = self._protocol.eof_received()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal error: protocol.eof_received() call failed.")
            return
        if not keep_open:
            self.close()

    def pause_reading(self):
        if self._closing or self._paused:
            return
        self._paused = True
        # cancelled in the kernel now; what it still brings is kept
        self._core.stop()
        if self._loop.get_debug():
            asyncio.log.logger.debug("%r pauses reading", self)

    def resume_reading(self):
        if self._closing or not self._paused:
            return
        self._paused = False
        # kept bytes go to the protocol from the loop, never inside this call
        self._loop.call_soon(self._read_next)
        if self._loop.get_debug():
            asyncio.log.logger.debug("%r resumes reading", self)

    # -- writing: the state lives in the stream (C); these read it

    @property
    def _conn_lost(self):
        return self._core.conn_lost if self._core is not None else 0

    @_conn_lost.setter
    def _conn_lost(self, n):
        self._core.conn_lost = n

    @property
    def _eof(self):
        return self._core is not None and self._core.eof

    @property
    def _empty_waiter(self):
        return self._core.empty_waiter if self._core is not None else None

    def write(self, data):
        # replaced in __init__ by the stream's write (C); the same checks,
        # in the same order, with asyncio's messages
        self._core.write(data)

    def writelines(self, list_of_data):
        # replaced in __init__ by the stream's: one write of the items joined
        self._core.writelines(list_of_data)

    def _write_drained(self):
        # the stream's queue went out (C, from the send's completion)
        self._maybe_resume_protocol()
        waiter = self._empty_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self._closing:
            self._call_connection_lost_soon(None)
        elif self._eof:
            self._shutdown_write()

    def _write_failed(self, exc):
        # the stream's send failed (C, from its completion)
        self._fatal_error(exc, "Fatal write error on socket transport")
        waiter = self._empty_waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def _make_empty_waiter(self):
        if self._empty_waiter is not None:
            raise RuntimeError("Empty waiter is already set")
        waiter = self._core.empty_waiter = self._loop.create_future()
        if self._core.write_idle:
            waiter.set_result(None)
        return waiter

    def _reset_empty_waiter(self):
        self._core.empty_waiter = None

    def get_write_buffer_size(self):
        return self._core.write_buffer_size if self._core is not None else 0

    def set_write_buffer_limits(self, high=None, low=None):
        super().set_write_buffer_limits(high, low)      # may pause the protocol
        if self._core is not None:
            # the stream skips _maybe_pause_protocol() up to this mark
            self._core.high_water = self._high_water

    def can_write_eof(self):
        return True

    def write_eof(self):
        if self._closing or self._eof:
            return
        self._core.eof = True
        if self._core.write_idle:
            self._shutdown_write()

    def _shutdown_write(self):
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass                        # the peer is gone: the read side says so

    # -- closing

    def close(self):
        if self._closing:
            return
        self._closing = True
        self._cancel_read()
        if self._core.write_idle:
            self._call_connection_lost_soon(None)

    def abort(self):
        self._force_close(None)

    def _cancel_read(self):
        if self._core is not None:
            self._core.detach()             # stops the receive, lets go of us

    def _fatal_error(self, exc, message="Fatal error on transport"):
        if isinstance(exc, OSError):
            if self._loop.get_debug():
                asyncio.log.logger.debug("%r: %s", self, message, exc_info=True)
        else:
            self._loop.call_exception_handler({
                "message": message,
                "exception": exc,
                "transport": self,
                "protocol": self._protocol,
            })
        self._force_close(exc)

    def _force_close(self, exc):
        if self._conn_lost:
            return
        # the queue goes; the send in flight is cancelled in the kernel, its
        # record keeping the buffer pinned until the final completion
        self._core._write_abort()
        self._closing = True
        self._cancel_read()
        self._call_connection_lost_soon(exc)

    def _call_connection_lost_soon(self, exc):
        if self._conn_lost:
            return
        self._conn_lost += 1
        self._loop.call_soon(self._call_connection_lost, exc)

    def _call_connection_lost(self, exc):
        waiter = self._empty_waiter
        self._core.empty_waiter = None
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionError("Connection is closed by peer"))
        try:
            if self._protocol_connected:
                self._protocol.connection_lost(exc)
        finally:
            sock, self._sock = self._sock, None
            if sock is not None:
                if self._loop._transports.get(self._sock_fd) is self:
                    del self._loop._transports[self._sock_fd]
                sock.close()
            self._core._release()        # the stream lets go of us
            self._protocol = None
            self._loop = None
            server, self._server = self._server, None
            if server is not None:
                server._detach(self) if _ATTACH_TAKES_TRANSPORT else server._detach()


# -- servers: one multishot accept per listening socket

_ACCEPT_FLAGS = socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC
_IORING_CQE_F_MORE = 1 << 1
_OUT_OF_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
_NOT_AN_ERROR = (errno.EAGAIN, errno.EINTR, errno.ECONNABORTED)


def start_serving(loop, protocol_factory, sock, sslcontext, server, args, kwargs):
    """loop._start_serving() of the completion transport: the kernel
    accepts every connection (IORING_OP_ACCEPT, multishot) and tells the
    _Acceptor during the reap; asyncio's is a readiness callback calling
    accept() until EAGAIN, then a task per connection."""
    fd = sock.fileno()
    old = loop._acceptors.pop(fd, None)
    if old is not None:
        old.close()
    loop._acceptors[fd] = _Acceptor(loop, protocol_factory, sock, sslcontext,
                                    server, args, kwargs)


def stop_serving(loop, sock):
    acceptor = loop._acceptors.pop(sock.fileno(), None)
    if acceptor is not None:
        acceptor.close()


class _Acceptor:
    """A listening socket's multishot accept (AsyncRing._watch(),
    src/async/watch.c): _on_accept() is called with each completion.
    asyncio's _accept_connection() and _accept_connection2() are the
    model: the same socket setup, the same errors, the same resource-limit
    pause."""

    def __init__(self, loop, protocol_factory, sock, sslcontext, server, args, kwargs):
        self._loop = loop
        self._protocol_factory = protocol_factory
        self._sock = sock
        # the accepted sockets' family, type and proto, as ints; the type
        # says SOCK_NONBLOCK (the kernel's accept set it, _ACCEPT_FLAGS), so
        # socket.socket() makes it non-blocking without an ioctl, and its
        # .type is still the plain type
        self._shape = (_sock_family(sock), _sock_type(sock) | socket.SOCK_NONBLOCK, sock.proto)
        self._sslcontext = sslcontext
        self._server = server
        self._args, self._kwargs = args, kwargs
        self._handle = None
        self._closed = False
        self._retry = None
        self._arm()

    def _arm(self):
        self._retry = None
        if not self._closed:
            self._handle = self._loop._uring()._watch(
                self._on_accept, "multishot_accept", self._sock.fileno(), _ACCEPT_FLAGS)

    def close(self):
        self._closed = True
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        handle, self._handle = self._handle, None
        if handle is not None:
            ring = self._loop._aring
            if ring is not None and not ring.closed:
                ring._unwatch(handle)   # accepted meanwhile: closed below

    def _on_accept(self, cqe):
        res = cqe.res()
        final = not cqe.flags() & _IORING_CQE_F_MORE
        if final:
            self._handle = None
        if res >= 0:
            if self._closed:
                os.close(res)           # after stop_serving: never served
            else:
                self._accepted(res)
        elif not self._closed and -res not in _NOT_AN_ERROR:
            exc = OSError(-res, os.strerror(-res))
            if -res not in _OUT_OF_RESOURCES:
                # asyncio's accept() raises it into the loop's handler; the
                # server goes on accepting
                self._loop.call_exception_handler({
                    "message": "Exception in accepting a connection",
                    "exception": exc,
                    "socket": _trsock.TransportSocket(self._sock) if _trsock else self._sock,
                })
            else:
                # as asyncio: reported, and accepting resumes in a while
                self._loop.call_exception_handler({
                    "message": "socket.accept() out of system resource",
                    "exception": exc,
                    "socket": _trsock.TransportSocket(self._sock) if _trsock else self._sock,
                })
                if final:
                    self._retry = self._loop.call_later(constants.ACCEPT_RETRY_DELAY, self._arm)
                    return
        if final and not self._closed and self._retry is None:
            self._arm()                 # the kernel ended it: armed again

    def _accepted(self, fd):
        try:
            conn = socket.socket(*self._shape, fileno=fd)
        except OSError:
            os.close(fd)
            raise
        loop = self._loop
        if self._sslcontext is not None:
            # TLS: asyncio's own task (its handshake awaits the waiter)
            loop.create_task(loop._accept_connection2(
                self._protocol_factory, conn, None, self._sslcontext, self._server,
                *self._args, **self._kwargs))
            return
        # a plain connection needs no task: asyncio's _accept_connection2()
        # only awaits a waiter nobody else can cancel, and reports a failure
        # in debug mode only
        protocol = transport = None
        try:
            protocol = self._protocol_factory()
            transport = _UringSocketTransport(loop, conn, protocol, None, None, self._server)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            if transport is None:
                conn.close()
            if loop.get_debug():
                context = {"message": "Error on transport creation for incoming connection",
                           "exception": exc}
                if protocol is not None:
                    context["protocol"] = protocol
                if transport is not None:
                    context["transport"] = transport
                loop.call_exception_handler(context)
