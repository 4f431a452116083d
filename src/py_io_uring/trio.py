"""AsyncRing's operations under trio: TrioRing (docs/async.md, "trio and anyio").

    async with py_io_uring.trio.open_ring() as ring:
        data = await ring.read(fd, 4096, 0)

How it maps onto trio, in short (the docs say more):
  - an operation is a record of the IoUring underneath, prepared with its
    fast form (ring.prep_NAME(..., user_data=op)), so its buffers, paths and
    addresses stay pinned in the ring's slot table until its final
    completion, whatever happens to the task;
  - the first operation of a scheduler batch wakes a flusher task, which
    runs in the next batch: one io_uring_submit() for the batch;
  - a reaper system task waits for the ring's fd to poll readable and
    reschedules each operation's task at its final completion;
  - when the run ends (its main task returned), trio cancels its system
    tasks: the flusher leaves and the reaper, shielded then, flushes and
    reaps alone until no task waits on the ring (a system task's op, or
    one finishing a cancel), then leaves too, so the run can end; an op
    started after that brings a reaper back;
  - a cancelled task's abort function submits IORING_OP_ASYNC_CANCEL at once
    and answers Abort.FAILED: the task is woken only by the final completion,
    so a result the kernel produced despite the cancel is delivered (nothing
    lost, no fd leaked) and trio raises Cancelled at the next checkpoint.

The operations are not written out one by one: _core._ASYNC_OPS (the C op
table, from ops.def) lists every op AsyncRing has, and one generic path runs
each.  trio.pyi, the stub, is generated from ops.def too.
"""

import collections
import errno
import inspect
import os
import socket
import weakref

import outcome
import trio

from . import _core
from ._core import (IORING_ASYNC_CANCEL_ALL, IORING_ASYNC_CANCEL_ANY, IORING_CQE_F_MORE,
                    IORING_CQE_F_NOTIF, IORING_SETUP_DEFER_TASKRUN, IOSQE_ASYNC,
                    IOSQE_BUFFER_SELECT, IOSQE_FIXED_FILE, AsyncRing, IoUring)

__all__ = ["TrioRing", "open_ring"]

_CLOSE_DEADLINE = 10.0      # seconds aclose() waits for the kernel, as AsyncRing
_BATCH = 256                # completions taken per peek
_DRAIN_ROUNDS = 8           # batches per wakeup, so a busy ring cannot starve trio
_ENDING_POLL = 0.01         # the reaper's poll while the run ends: it flushes too
# what AsyncRing allows (src/async/dispatch.c, pu_aio_rules): link flags
# would tie the op to whatever happens to be prepared next
_SQE_FLAGS = IOSQE_FIXED_FILE | IOSQE_ASYNC | IOSQE_BUFFER_SELECT
_CANCELLED = (-errno.ECANCELED, -errno.EINTR)


def _drop_fds(value, peer):
    """Close the new fds of a result nobody will get (ops.def `async ... fd`)."""
    if peer:
        value = value[0]
    for fd in (value if isinstance(value, tuple) else (value,)):
        if isinstance(fd, int) and fd >= 0:
            try:
                os.close(fd)
            except OSError:
                pass


def _peer(q, fd):
    """The peer of a new connection: the record's, or getpeername()'s (a
    multishot accept has no address in its record), as AsyncRing gives."""
    try:
        return q.convert_address()
    except ValueError:
        pass
    try:
        s = socket.socket(fileno=fd)
    except OSError:
        return None
    try:
        return s.getpeername()
    except OSError:
        return None     # a peer that already reset has no name left
    finally:
        s.detach()


def _rename(exc, prep, called):
    """An argument error names the method the user called, not prep_NAME()."""
    if type(exc) in (TypeError, ValueError, OverflowError) and exc.args and \
            isinstance(exc.args[0], str) and exc.args[0].startswith(prep + "()"):
        exc.args = (called + exc.args[0][len(prep):],) + exc.args[1:]


class _Op:
    """The user data of one awaited operation: who waits, and how its result
    is made.  The ring's slot table holds it (and so the op's buffers) until
    the final completion."""

    __slots__ = ("task", "raise_cancel", "cancel_sent", "fds", "peer", "none", "stash")

    def __init__(self, fds, peer, none):
        self.task = None
        self.raise_cancel = None
        self.cancel_sent = False
        self.fds = fds
        self.peer = peer
        self.none = none
        self.stash = None

    def complete(self, tr, q):
        flags = q.flags()
        if flags & IORING_CQE_F_MORE:
            # send_zc: the result comes first, the op ends with a notification
            if not flags & IORING_CQE_F_NOTIF:
                self.stash = self.outcome(tr, q)
            return
        if flags & IORING_CQE_F_NOTIF and self.stash is not None:
            out = self.stash
        else:
            out = self.outcome(tr, q)
        task, self.task = self.task, None
        if task is not None:
            trio.lowlevel.reschedule(task, out)
        elif self.fds and isinstance(out, outcome.Value):
            _drop_fds(out.value, self.peer)

    def fail(self, exc):
        """The submission failed: the task learns why now."""
        task, self.task = self.task, None
        if task is not None:
            trio.lowlevel.reschedule(task, outcome.Error(exc))

    def outcome(self, tr, q):
        res = q.res()
        if res in _CANCELLED and self.raise_cancel is not None:
            # cancelled by trio, and the kernel did cancel: Cancelled (or
            # KeyboardInterrupt) through the function trio gave
            return outcome.capture(self.raise_cancel)
        if res == -errno.ECANCELED and tr._closing:
            return outcome.Error(trio.ClosedResourceError("the ring was closed"))
        try:
            v = q.getresult()
            if self.peer:
                v = (v, _peer(q, v))
        except Exception as e:
            return outcome.Error(e)
        return outcome.Value(None if self.none else v)


class _IterOp:
    """The user data of a multishot operation: a weak reference to its
    iterator, so dropping the iterator (leaving `async for`) cancels the op."""

    __slots__ = ("it", "cancel_sent", "fds", "peer", "items")

    def __init__(self, it, fds, peer):
        self.items = 0
        self.it = weakref.ref(it)
        self.cancel_sent = False
        self.fds = fds
        self.peer = peer

    def fail(self, exc):
        it = self.it()
        if it is not None:
            it._error, it._ended = exc, True
            it._wake()

    def complete(self, tr, q):
        it = self.it()
        if it is not None:
            it._deliver(self, q)
        elif self.fds and q.res() >= 0:
            try:
                _drop_fds(q.getresult(), False)
            except Exception:
                pass


class _Multishot:
    """An async iterator over the completions of a multishot operation."""

    def __init__(self, tr, prep, called, args, kwargs, fds, peer):
        self._tr = tr
        self._prep, self._called, self._args, self._kwargs = prep, called, args, kwargs
        self._fds, self._peer = fds, peer
        self._items = collections.deque()
        self._error = None
        self._ended = False
        self._cancelled = False
        self._waiter = None
        self._op = None
        self._arm()

    def _arm(self):
        op = _IterOp(self, self._fds, self._peer)
        self._tr._start(op, self._prep, self._called, self._args, self._kwargs)
        self._op = op

    def _deliver(self, op, q):
        flags = q.flags()
        if not flags & IORING_CQE_F_MORE:
            if self._op is op:
                self._op = None
            res = q.res()
            if res == -errno.ENOBUFS and op.items and not self._cancelled and \
                    not self._tr._closing:
                # the buffer ring ran dry: the kernel stops; go on (not when
                # this arming got nothing: a group with no buffers would
                # have it re-armed for ever)
                try:
                    self._arm()
                except Exception as e:
                    self._error, self._ended = e, True
                self._wake()
                return
            self._ended = True
            if res == 0 or (res == -errno.ECANCELED and (self._cancelled or self._tr._closing)):
                self._wake()    # end of stream, or cancelled: stop quietly
                return
        try:
            v = q.getresult()
            if self._peer:
                v = (v, _peer(q, v))
            self._items.append(v)
            op.items += 1
        except Exception as e:
            self._error, self._ended = e, True
        self._wake()

    def _wake(self):
        task, self._waiter = self._waiter, None
        if task is not None:
            trio.lowlevel.reschedule(task)

    def __aiter__(self):
        return self

    async def __anext__(self):
        await trio.lowlevel.checkpoint_if_cancelled()
        while True:
            if self._items:
                await trio.lowlevel.cancel_shielded_checkpoint()
                return self._items.popleft()
            if self._error is not None:
                e, self._error = self._error, None
                raise e
            if self._ended:
                raise StopAsyncIteration
            if self._waiter is not None:
                raise trio.BusyResourceError("another task is already waiting on this "
                                             "multishot iterator")
            self._waiter = trio.lowlevel.current_task()

            def abort(raise_cancel):
                # the op goes on: its items wait for the next __anext__
                self._waiter = None
                return trio.lowlevel.Abort.SUCCEEDED

            self._tr._waiting += 1
            try:
                await trio.lowlevel.wait_task_rescheduled(abort)
            finally:
                self._tr._waiting -= 1

    def cancel(self):
        """Cancel the operation in the kernel; the iteration ends once the
        items already made are taken."""
        self._cancelled = True
        if self._op is not None:
            self._tr._cancel_in_kernel(self._op)

    async def aclose(self):
        self.cancel()
        await trio.lowlevel.checkpoint()

    def __del__(self):
        if self._fds:
            # connections accepted and never taken: nobody else will close them
            while self._items:
                _drop_fds(self._items.popleft(), self._peer)
        if self._op is not None and not self._tr._closed:
            try:
                self._cancelled = True
                self._tr._cancel_in_kernel(self._op, now=False)
            except Exception:
                pass


class TrioRing:
    """AsyncRing for trio: every AsyncRing operation as a trio checkpoint,
    cancelled in the kernel when its task is cancelled (docs/async.md)."""

    def __init__(self, entries=256, flags=0, *, sq_thread_idle=0, sq_thread_cpu=None,
                 cq_entries=0, wq_fd=None):
        self._ring = IoUring(entries, flags, sq_thread_idle=sq_thread_idle,
                             sq_thread_cpu=sq_thread_cpu, cq_entries=cq_entries, wq_fd=wq_fd)
        self._defer = bool(flags & IORING_SETUP_DEFER_TASKRUN)
        self._efd = -1
        if self._defer:
            # the kernel runs such a ring's completions only when asked, and
            # its fd does not poll readable for them; an eventfd registered
            # with it is signalled when they are pending
            if not hasattr(os, "eventfd"):
                self._ring.queue_exit()
                raise ValueError("TrioRing(): IORING_SETUP_DEFER_TASKRUN needs os.eventfd "
                                 "(Python 3.10 or later)")
            self._efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            self._ring.register_eventfd(self._efd)
        self._token = None
        self._flush_scheduled = False
        self._flusher = None            # the flusher task while it is parked
        self._unsubmitted = []
        self._scopes = None             # the reaper's and the flusher's
        self._tasks_done = None
        self._ending = False            # the run is ending: its system tasks are cancelled
        self._reaping = False           # a reaper task is running
        self._waiting = 0               # tasks blocked on this ring's completions
        self._closing = False
        self._closed = False
        self._submits = self._completions = self._ops = 0

    # ------------------------------------------------------------ the driver

    def _bind(self):
        token = trio.lowlevel.current_trio_token()
        if self._token is token:
            if not self._reaping:
                # the run is ending and the reaper left, nothing waiting:
                # a system task's shielded cleanup starts an op
                self._spawn_reaper()
            return
        if self._token is not None:
            raise RuntimeError("this TrioRing belongs to another trio.run()")
        self._token = token
        self._scopes = [None, trio.CancelScope()]
        self._tasks_done = [None, trio.Event()]
        self._spawn_reaper()
        trio.lowlevel.spawn_system_task(self._flusher_task, name="py_io_uring TrioRing flusher")

    def _spawn_reaper(self):
        # a scope and an event per reaper: a scope serves one `with` only.
        # Spawned as the run ends, it starts shielded (the system tasks'
        # nursery is cancelled) and serves the op that brought it back
        self._scopes[0] = trio.CancelScope(shield=self._ending)
        self._tasks_done[0] = trio.Event()
        trio.lowlevel.spawn_system_task(self._reaper, name="py_io_uring TrioRing reaper")
        self._reaping = True

    def _check_open(self):
        if self._closing or self._closed:
            raise RuntimeError("the TrioRing is closed")

    def _start(self, op, prep, called, args, kwargs):
        """Prepare op's entry (bad arguments raise here) and queue a flush."""
        self._check_open()
        self._bind()
        sqe_flags = kwargs.get("sqe_flags", 0)
        if isinstance(sqe_flags, int) and sqe_flags & ~_SQE_FLAGS:
            raise ValueError("%s(): sqe_flags: only IOSQE_FIXED_FILE, IOSQE_ASYNC and "
                             "IOSQE_BUFFER_SELECT apply to a TrioRing operation" % called)
        ring = self._ring
        if ring.sq_space_left() == 0:
            self._flush()
        try:
            getattr(ring, prep)(*args, user_data=op, **kwargs)
        except Exception as e:
            _rename(e, prep, called)
            raise
        self._ops += 1
        self._unsubmitted.append(op)
        if not self._flush_scheduled:
            self._schedule_flush()

    def _schedule_flush(self):
        """Wake the flusher: it runs in the scheduler's next batch, after
        every task of this one has prepared its operations.  (trio's
        run_sync_soon() would do too, but writes to its wakeup socket on
        every call: 2.5 times the cost of a NOP round trip, measured.)"""
        if self._flush_scheduled or self._scopes is None:
            return
        self._flush_scheduled = True
        task, self._flusher = self._flusher, None
        if task is not None:
            trio.lowlevel.reschedule(task)

    def _flush(self):
        """Submit what is queued; deliver what completed meanwhile."""
        ring = self._ring
        pending, self._unsubmitted = self._unsubmitted, []
        if ring.sq_ready():
            try:
                ring.submit()
            except OSError as e:
                if e.errno not in (errno.EBUSY, errno.EAGAIN):
                    raise
                self._process()     # room in the CQ, then once more
                ring.submit()
            self._submits += 1
        del pending
        self._process()

    async def _flusher_task(self):
        """One flush per scheduler batch with operations prepared in it."""
        def abort(raise_cancel):
            self._flusher = None
            return trio.lowlevel.Abort.SUCCEEDED
        scope = self._scopes[1]
        try:
            with scope:
                while True:
                    if self._flush_scheduled:
                        self._flush_scheduled = False
                        self._flush_safe()
                        # what that flush prepared (a multishot re-armed)
                        # waits for the next batch: trio runs meanwhile
                        await trio.lowlevel.cancel_shielded_checkpoint()
                    else:
                        self._flusher = trio.lowlevel.current_task()
                        try:
                            await trio.lowlevel.wait_task_rescheduled(abort)
                        except trio.Cancelled:
                            if scope.cancel_called:
                                raise       # aclose()
                            # the run is ending: the reaper flushes from now on
                            self._ending = True
                            return
        finally:
            self._flusher = None
            self._tasks_done[1].set()

    def _flush_safe(self):
        # a system task must never raise
        pending = self._unsubmitted
        try:
            self._flush()
        except Exception as e:
            # the entries stay queued (the next flush takes them); their
            # tasks learn why now, and results nobody waits for are dropped
            for op in pending:
                op.fail(e)

    def _process(self):
        """Take every ready completion and wake the tasks they finish."""
        ring = self._ring
        n = 0
        for _ in range(_DRAIN_ROUNDS):
            if self._defer:
                ring.get_events()
            cqes = ring.peek_batch_cqe(_BATCH)
            if not cqes:
                break
            ring.cq_advance(len(cqes))
            for q in cqes:
                op = q.get_data()
                if op is not None:
                    op.complete(self, q)
            n += len(cqes)
        self._completions += n
        return n

    async def _reaper(self):
        efd = self._efd
        fd = self._ring.fileno() if efd < 0 else efd
        scope, done = self._scopes[0], self._tasks_done[0]
        try:
            with scope:
                while not self._ending:
                    try:
                        await trio.lowlevel.wait_readable(fd)
                    except trio.Cancelled:
                        if scope.cancel_called:
                            raise           # aclose()
                        self._ending = True     # the run's end: see below
                        break
                    self._reap_once(efd)
                # The run is ending: trio cancelled its system tasks, and
                # the flusher has left (or leaves now).  Tasks may still
                # wait here: a system task's shielded op, or a cancelled
                # op's final completion (its task waits for it, so that no
                # result is lost).  Shielded, this task flushes and reaps
                # for them, polling, and leaves once none waits: the run
                # cannot end while a system task runs.
                scope.shield = True
                while True:
                    if self._flush_scheduled or self._unsubmitted:
                        self._flush_scheduled = False
                        self._flush_safe()
                    self._reap_once(efd)
                    if not self._waiting and not self._unsubmitted:
                        break
                    with trio.move_on_after(_ENDING_POLL):
                        await trio.lowlevel.wait_readable(fd)
        finally:
            self._reaping = False
            done.set()

    def _reap_once(self, efd):
        if efd >= 0:
            try:
                os.eventfd_read(efd)
            except BlockingIOError:
                pass
        try:
            self._process()
        except Exception:   # never seen; a system task must not raise
            pass

    def _cancel_in_kernel(self, op, now=True):
        """IORING_OP_ASYNC_CANCEL for op, submitted at once (now) or with the
        next flush."""
        if op.cancel_sent or self._closed:
            return
        op.cancel_sent = True
        ring = self._ring
        if ring.sq_space_left() == 0:
            ring.submit()
        ring.prep_cancel(op, user_data=None)
        if now:
            ring.submit()
            self._submits += 1
        elif self._token is not None:
            # from a finaliser, which may run anywhere: through the token
            self._token.run_sync_soon(self._schedule_flush)

    async def _run(self, prep, called, args, kwargs, fds=False, peer=False, none=False):
        await trio.lowlevel.checkpoint_if_cancelled()
        op = _Op(fds, peer, none)
        self._start(op, prep, called, args, kwargs)
        op.task = trio.lowlevel.current_task()

        def abort(raise_cancel):
            # woken only by the final completion: the kernel may still use
            # the op's memory, and a result it made is the caller's
            op.raise_cancel = raise_cancel
            try:
                self._cancel_in_kernel(op)
            except Exception:
                pass    # the op still ends on its own; the task waits for it
            return trio.lowlevel.Abort.FAILED

        self._waiting += 1
        try:
            return await trio.lowlevel.wait_task_rescheduled(abort)
        finally:
            self._waiting -= 1

    async def _run_timeout(self, timeout, prep, called, args, kwargs, fds, peer):
        """timeout= (seconds, or None), as AsyncRing's awaitables take it:
        TimeoutError once it passes, with nothing left in flight.  Here the
        deadline is trio's own (a cancel scope), so it ends the operation
        as any trio cancellation does: in the kernel, the task waiting for
        the final completion, a result made meanwhile delivered."""
        if timeout is None:
            return await self._run(prep, called, args, kwargs, fds, peer)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
            raise TypeError("%s(): timeout must be a number of seconds or None, not %s"
                            % (called, type(timeout).__name__))
        if not timeout >= 0:
            raise ValueError("%s(): timeout must be >= 0" % called)
        done = False
        with trio.move_on_after(timeout):
            value = await self._run(prep, called, args, kwargs, fds, peer)
            done = True
        if not done:
            raise TimeoutError(errno.ETIME, os.strerror(errno.ETIME))
        return value

    # --------------------------------------------------------- the ring's own

    async def __aenter__(self):
        self._check_open()
        self._bind()
        await trio.lowlevel.checkpoint()
        return self

    async def __aexit__(self, *exc_info):
        await self.aclose()

    async def aclose(self):
        """Cancel what is in flight, wait for the kernel to finish with it
        (10 s at most), stop the reaper and tear the ring down."""
        if self._closed or self._closing:
            await trio.lowlevel.checkpoint()
            return
        self._closing = True
        ring = self._ring
        with trio.CancelScope(shield=True):
            if self._token is not None:
                try:
                    if ring.in_flight():
                        self._flush()
                    if ring.in_flight():
                        if ring.sq_space_left() == 0:
                            ring.submit()
                        ring.prep_cancel64(0, IORING_ASYNC_CANCEL_ANY | IORING_ASYNC_CANCEL_ALL,
                                           user_data=None)
                        ring.submit()
                    with trio.move_on_after(_CLOSE_DEADLINE):
                        while ring.in_flight():
                            await trio.sleep(0.001)
                            self._process()
                finally:
                    for scope in self._scopes:
                        scope.cancel()
                    for done in self._tasks_done:
                        await done.wait()
            else:
                await trio.lowlevel.checkpoint()
            self._closed = True
            ring.queue_exit()
            self._close_efd()

    def _close_efd(self):
        if self._efd >= 0:
            os.close(self._efd)
            self._efd = -1

    def __del__(self):
        # the ring itself is torn down by IoUring's own dealloc
        self._close_efd()

    @property
    def closed(self):
        """Whether aclose() has finished."""
        return self._closed

    def fileno(self):
        """The fd the reaper waits on (not to be closed): the ring's, or with
        IORING_SETUP_DEFER_TASKRUN the eventfd registered with it."""
        return self._efd if self._efd >= 0 else self._ring.fileno()

    def get_ring(self):
        """The IoUring underneath, for registrations only."""
        return self._ring

    def open(self, file, mode="r", buffering=-1, encoding=None, errors=None, newline=None,
             closefd=True, opener=None):
        """py_io_uring.open(file, ..., ring=this ring), as AsyncRing.open():
        await it for the AsyncFile, or `async with ring.open(...) as f:`."""
        from .afile import open as open_file
        return open_file(file, mode, buffering, encoding, errors, newline, closefd, opener,
                         ring=self)

    def in_flight(self):
        """Operations whose final completion has not been reaped."""
        return self._ring.in_flight()

    def stats(self):
        """submits, completions, ops and in_flight, as AsyncRing.stats()."""
        return {"submits": self._submits, "completions": self._completions, "ops": self._ops,
                "in_flight": self._ring.in_flight()}

    def flush(self):
        """Submit what is queued now; the number of entries submitted."""
        self._check_open()
        n = self._ring.sq_ready()
        self._flush()
        return n

    def process_completions(self):
        """Deliver every ready completion now; how many there were."""
        return self._process()

    def take_partial(self, fd):
        """Always b'': a cancelled TrioRing receive delivers what it got."""
        return b""

    # ------------------------------------------------- send_all and sock_*

    async def send_all(self, fd, data, flags=0):
        """Send all of data (finishing short sends); the count."""
        view = memoryview(data).cast("B")
        total = 0
        while True:
            n = await self._run("prep_send", "send_all", (fd, view[total:], flags | socket.MSG_WAITALL), {})
            total += n
            if total >= len(view):
                return total
            if n == 0:
                raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))

    async def sock_recv(self, sock, nbytes, /):
        return await self._run("prep_recv", "sock_recv", (sock, nbytes), {})

    async def sock_recv_into(self, sock, buf, /):
        return await self._run("prep_recv", "sock_recv_into", (sock, buf), {})

    async def sock_sendall(self, sock, data, /):
        await self.send_all(sock, data)

    async def sock_connect(self, sock, address, /):
        await self._run("prep_connect", "sock_connect", (sock, address), {}, none=True)

    async def sock_accept(self, sock, /):
        fd, addr = await self._run("prep_accept", "sock_accept",
                                   (sock, socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC), {},
                                   fds=True, peer=True)
        sock = socket.socket(fileno=fd)
        sock.setblocking(False)     # O_NONBLOCK already: the object learns it
        return sock, addr


def _literal(text):
    return None if text == "None" else () if text == "()" else int(text, 0)


def _signature(text):
    """The inspect.Signature of a C method's text signature, whose defaults
    are ints, None or ().  inspect.signature() would parse each with ast,
    which for AsyncRing's ~100 methods was most of this module's import."""
    P = inspect.Parameter
    params = []
    kind = P.POSITIONAL_OR_KEYWORD
    for p in text.strip("()").split(", "):
        if p == "/":
            params = [q.replace(kind=P.POSITIONAL_ONLY) for q in params]
        elif p == "*":
            kind = P.KEYWORD_ONLY
        elif p == "$self":
            params.append(P("self", P.POSITIONAL_ONLY))
        else:
            name, eq, default = p.partition("=")
            params.append(P(name, kind, default=_literal(default) if eq else P.empty))
    return inspect.Signature(params)


def _make(name, mode, fds, peer, alias=None):
    """TrioRing.NAME (or .alias): the generic path, with AsyncRing's signature
    and doc of the same name."""
    prep = "prep_" + name
    name = called = alias or name
    if mode == "iter":
        def method(self, *args, **kwargs):
            return _Multishot(self, prep, called, args, kwargs, fds, peer)
    else:
        async def method(self, *args, **kwargs):
            if "timeout" in kwargs:
                return await self._run_timeout(kwargs.pop("timeout"), prep, called, args,
                                               kwargs, fds, peer)
            return await self._run(prep, called, args, kwargs, fds, peer)
    src = getattr(AsyncRing, name)
    method.__name__ = name
    method.__qualname__ = "TrioRing." + name
    method.__doc__ = src.__doc__
    method.__signature__ = _signature(src.__text_signature__)
    return method


for _entry in _core._ASYNC_OPS:
    setattr(TrioRing, _entry[0], _make(*_entry))
TrioRing.close_fd = _make("close", "await", False, False, "close_fd")
del _entry


def open_ring(entries=256, flags=0, **kwargs):
    """A TrioRing, for `async with open_ring() as ring:`."""
    return TrioRing(entries, flags, **kwargs)
