"""A Hypothesis state machine that drives one IoUring with real resources.

The machine owns an IoUring(16), a pipe, a connected AF_UNIX socketpair, a
temporary file and a TCP listener on 127.0.0.1.  Its rules acquire and
prepare entries (nop, reads and writes on the pipe and the file, recv and
send on the socketpair, short and long timeouts, accept), submit, wait in
every way the ring offers, mark completions seen in any order, cancel and
remove timeouts, feed data so that reads complete, drop every reference it
holds and collect, and tear the ring down (queue_exit(), the context
manager's exit, the garbage collector) before making a new one.

The same operations also go in through the newer APIs, mixed on the same
ring: the fast forms (``ring.prep_NAME(..., user_data=token)``, no Sqe),
``prep_many()`` (several entries in one call; sometimes with a bad entry,
which must queue none and pin nothing), cancels and timeout removals that
name their target by its user data (and raise TypeError when nothing the
ring still holds has it), and reaping with ``reap()`` and
``reap(columns=True)``.  Every completion, whichever API reaped it, goes
through one checking path (``Completion``).

A model of what was acquired, submitted and delivered checks after every
step that

* every completion carries the very token object attached to its entry,
  belongs to an operation that was submitted, and is delivered once;
* ``in_flight()``, ``sq_ready()`` and ``cq_ready()`` agree with the model
  (a cancel or a timeout removal is an operation with its own completion);
* results are what the operation can give (data bytes are accounted byte
  for byte per stream; a cancel that succeeded means its target ended with
  -ECANCELED and vice versa);
* a buffer is never written after its read completed;
* after a teardown no token, no buffer and no file descriptor survives.

Profiles: ``PY_IO_URING_FUZZ_PROFILE=ci`` (the default: 1000 examples) or
``fuzz`` (20000 examples); ``HYPOTHESIS_PROFILE`` is honoured as a fallback
when it names one of these two.
"""

import collections
import errno
import gc
import os
import socket
import stat
import tempfile
import time
import weakref

import pytest

hypothesis = pytest.importorskip("hypothesis")

# 1,000 random programs already run in every other whole-suite run; five
# more rounds under the debug interpreter would only cost minutes
pytestmark = pytest.mark.no_leakcheck

from hypothesis import HealthCheck, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.stateful import (  # noqa: E402
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

import py_io_uring  # noqa: E402
from py_io_uring import IoUring, SubmissionQueueFull  # noqa: E402

# --------------------------------------------------------------------------
# Profiles

_COMMON = dict(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    print_blob=True,
)
settings.register_profile("py_io_uring-ci", max_examples=1000, stateful_step_count=30, **_COMMON)
settings.register_profile("py_io_uring-fuzz", max_examples=20000, stateful_step_count=50, **_COMMON)


def _profile_name():
    for var in ("PY_IO_URING_FUZZ_PROFILE", "HYPOTHESIS_PROFILE"):
        name = os.environ.get(var, "")
        if name in ("ci", "fuzz"):
            return "py_io_uring-" + name
        if name in ("py_io_uring-ci", "py_io_uring-fuzz"):
            return name
        if name and var == "PY_IO_URING_FUZZ_PROFILE":
            raise ValueError("PY_IO_URING_FUZZ_PROFILE must be 'ci' or 'fuzz', not %r" % name)
    return "py_io_uring-ci"


# --------------------------------------------------------------------------
# The model

ENTRIES = 16
MAX_LIVE = 40  # operations outstanding at once (the CQ has 32 entries)
FILE_SIZE = 8192
FILE_CONTENT = bytes((i * 7 + i // 251) % 256 for i in range(FILE_SIZE))
STREAM_LIMIT = 16384  # bytes that may sit unread in the pipe or the socket
MAX_CLIENTS = 4

ACQUIRED, SUBMITTED, DELIVERED = "acquired", "submitted", "delivered"
IO_WQ_KINDS = ("file_read", "file_write")  # may run in an io-wq worker
CANCEL_KINDS = ("cancel", "timeout_remove")
KINDS = (
    "nop",
    "pipe_read",
    "pipe_write",
    "recv",
    "send",
    "file_read",
    "file_write",
    "timeout",
    "long_timeout",
    "accept",
)


# the method each op name goes through (literals: interned)
PREP = {
    "nop": "prep_nop",
    "read": "prep_read",
    "write": "prep_write",
    "recv": "prep_recv",
    "send": "prep_send",
    "timeout": "prep_timeout",
    "accept": "prep_accept",
    "cancel": "prep_cancel",
    "timeout_remove": "prep_timeout_remove",
}
# the kinds prep_many() can queue under each op name: (flag false, flag true)
MANY_KINDS = {
    "nop": ("nop", "nop"),
    "read": ("file_read", "pipe_read"),
    "write": ("file_write", "pipe_write"),
    "recv": ("recv", "recv"),
    "send": ("send", "send"),
    "timeout": ("timeout", "long_timeout"),
    "accept": ("accept", "accept"),
}


class Token:
    """The user data of one operation: weak-referenceable, identity-compared."""

    __slots__ = ("serial", "sqe", "__weakref__")

    def __init__(self, serial):
        self.serial = serial
        self.sqe = None  # some tokens refer to their Sqe: a reference cycle

    def __repr__(self):
        return "Token(%d)" % self.serial


class Op:
    """What the model knows about one acquired entry."""

    def __init__(self, serial, kind, sqe, token):
        self.serial = serial
        self.kind = kind
        self.sqe = sqe  # None once the machine dropped it (or a fast form)
        self.token = token  # likewise
        self.wref = weakref.ref(token)
        # the raw 64-bit user_data; a fast-form op has no Sqe to ask
        self.user_data = sqe.user_data() if sqe is not None else None
        self.state = ACQUIRED
        self.res = None
        self.size = 0
        self.value = 0  # the byte value a write sends
        self.offset = 0
        self.buf = None  # the bytearray a read fills, or None for a length
        self.stream = None
        self.target = None  # for cancels: the target's Op (None: stale)
        self.expect_enoent = False
        self.cancellers = []  # cancels and removals aimed at this op

    def __repr__(self):
        return "Op(%d %s %s res=%r)" % (self.serial, self.kind, self.state, self.res)


class Stream:
    """Bytes through a pipe or socket, accounted per byte value.

    Every chunk written is one repeated byte value (never 0); a read may
    return any bytes in any interleaving, but never more of a value than
    was (possibly) written, and at the end everything written was read or
    is still buffered."""

    def __init__(self):
        self.possible = collections.Counter()  # written, or in flight
        self.read = collections.Counter()
        self.next_value = 0

    def value(self):
        self.next_value = self.next_value % 255 + 1
        return self.next_value

    def unread_upper(self):
        return sum(self.possible.values()) - sum(self.read.values())

    def consumed(self, data):
        for v, n in collections.Counter(data).items():
            assert v != 0, "a read returned bytes nobody wrote (zeros)"
            self.read[v] += n
            assert self.read[v] <= self.possible[v], (
                "read %d bytes of value %d, at most %d were written" % (self.read[v], v, self.possible[v])
            )


class Completion:
    """One completion, whichever API reaped it: a Cqe (wait_cqe(),
    peek_cqe(), wait_cqe_nr()) or a (user_data, result, flags) item of
    reap() or reap(columns=True), so that both go through the same checks."""

    __slots__ = ("data", "res", "flags", "cqe", "value")

    def __init__(self, data, res, flags, cqe, value):
        self.data = data
        self.res = res
        self.flags = flags
        self.cqe = cqe
        self.value = value

    @classmethod
    def of_cqe(cls, cqe):
        return cls(cqe.get_data(), cqe.res(), cqe.flags(), cqe, None)

    @classmethod
    def of_item(cls, user_data, result, flags):
        assert type(flags) is int
        if type(result) is bytes:
            res = len(result)
        else:
            assert type(result) is int, "reap() result %r" % (result,)
            res = result
        return cls(user_data, res, flags, None, result)

    def result(self):
        """What getresult() returns (a Cqe) or reap()'s result."""
        if self.cqe is not None:
            return self.cqe.getresult()
        assert not (type(self.value) is int and self.value < 0), "failure %d where a result was due" % self.value
        return self.value

    def check_error(self, err, exc=OSError):
        """A failure: getresult() raises it, reap() gives -errno as an int."""
        if self.cqe is not None:
            with pytest.raises(exc) as info:
                self.cqe.getresult()
            assert info.value.errno == err
        else:
            assert type(self.value) is int and self.value == -err, "reap() result %r, not -%d" % (self.value, err)


def _open_fds():
    out = set()
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            os.fstat(fd)
        except OSError:
            continue  # the listing's own directory fd
        out.add(fd)
    return out


def spec_lists(kind, max_size):
    """Lists of op specs: (kind, size, into a bytearray or a length, file
    offset, timeout), the kind drawn from `kind`."""
    return st.lists(
        st.tuples(
            kind,
            st.integers(1, 600),
            st.booleans(),
            st.integers(0, FILE_SIZE + 100),
            st.sampled_from([0.0002, 0.001, 0.003]),
        ),
        min_size=1,
        max_size=max_size,
    )


# what prepare() and prepare_fast() draw: up to 4 ops of any kind
SPECS = spec_lists(st.sampled_from(KINDS), 4)


class RingMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        # What exists now (Hypothesis' growing bookkeeping included) is not
        # garbage this example could create: freezing it, until teardown(),
        # keeps each gc.collect() of the machine short.
        gc.freeze()
        self.base_fds = _open_fds()
        self.ring = None
        self.serial = 0
        self.life = 0
        self.ops = {}  # serial -> Op, this ring's life
        self.acquired = []  # Ops acquired since the last submit
        self.unseen = []  # Cqes delivered and not yet marked seen, in order
        self.done_buffers = collections.deque(maxlen=16)  # (bytearray, snapshot)
        self.carried = []  # Sqes of an earlier life, data cleared
        self.file = tempfile.TemporaryFile()
        self.file.write(FILE_CONTENT)
        self.file.flush()
        self.fd = self.file.fileno()
        self._new_streams()
        self._new_ring(IoUring(ENTRIES))

    # ---- resources ---------------------------------------------------

    def _new_streams(self):
        self.pipe_r, self.pipe_w = os.pipe()
        self.sock_a, self.sock_b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.pipe = Stream()
        self.sock = Stream()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.clients = []
        self.client_addrs = set()
        self.accepted = 0

    def _close_streams(self):
        for fd in (self.pipe_r, self.pipe_w):
            os.close(fd)
        for s in [self.sock_a, self.sock_b, self.listener] + self.clients:
            s.close()
        self.clients = []

    def _resource_fds(self):
        fds = {self.fd, self.pipe_r, self.pipe_w, self.sock_a.fileno(), self.sock_b.fileno(), self.listener.fileno()}
        fds.update(c.fileno() for c in self.clients)
        return fds

    def _new_ring(self, ring):
        self.ring = ring
        self.life += 1
        self.ops = {}
        self.acquired = []
        self.unseen = []

    # ---- model helpers -----------------------------------------------

    def live(self):
        return [op for op in self.ops.values() if op.state != DELIVERED]

    def _acquire(self):
        try:
            return self.ring.get_sqe()
        except SubmissionQueueFull:
            assert self.ring.sq_space_left() == 0
            assert len(self.acquired) == ENTRIES, "SubmissionQueueFull with %d entries acquired" % len(self.acquired)
            self._submit()
            return self.ring.get_sqe()

    def _new_op(self, kind):
        sqe = self._acquire()
        self.serial += 1
        token = Token(self.serial)
        if self.serial % 3 == 0:
            token.sqe = sqe  # token -> Sqe -> token, until the teardown
        op = Op(self.serial, kind, sqe, token)
        assert op.user_data not in {o.user_data for o in self.live()}, "user_data reused while in flight"
        self.ops[op.serial] = op
        self.acquired.append(op)
        return op

    def _register(self, op, sqe=None):
        """Enter an op the ring accepted (through an Sqe, or a fast form)."""
        if sqe is not None:
            op.sqe = sqe
            op.user_data = sqe.user_data()
            assert op.user_data not in {o.user_data for o in self.live()}, "user_data reused while in flight"
        self.ops[op.serial] = op
        self.acquired.append(op)

    def _fresh_op(self, kind):
        """A model op for a fast form: not registered until the ring took it."""
        self.serial += 1
        return Op(self.serial, kind, None, Token(self.serial))

    def _fast(self, name, args, op):
        """Queue op through the fast form; when the queue is full, the call
        raises SubmissionQueueFull having queued nothing: submit, retry."""
        method = getattr(self.ring, PREP[name])
        if self.ring.sq_space_left() == 0:
            assert len(self.acquired) == ENTRIES
            with pytest.raises(SubmissionQueueFull):
                method(*args, user_data=op.token)
            assert self.ring.sq_ready() == ENTRIES
            self._submit()
        assert method(*args, user_data=op.token) is None
        self._register(op)

    def _submit(self):
        n = self.ring.submit()
        assert n == len(self.acquired), "submit() took %d of %d entries" % (n, len(self.acquired))
        self._mark_submitted()

    def _mark_submitted(self):
        for op in self.acquired:
            op.state = SUBMITTED
            if op.sqe is not None:
                # a submitted entry can no longer be prepared
                with pytest.raises(ValueError):
                    op.sqe.prep_nop()
        self.acquired = []

    def _deliver(self, cqes):
        """Account for completions returned by a wait or peek: the queue's
        head repeats the unseen ones, in order; the rest are new."""
        k = min(len(cqes), len(self.unseen))
        for i in range(k):
            assert cqes[i] is self.unseen[i], "the queue of unseen completions changed order"
        for cqe in cqes[k:]:
            assert all(cqe is not u for u in self.unseen), "an unseen completion came back twice"
            self._deliver_one(Completion.of_cqe(cqe))
            self.unseen.append(cqe)

    def _deliver_items(self, items):
        """Account for what reap() or reap(columns=True) returned: first the
        unseen completions a wait or peek returned, in order (now marked
        seen), then new ones."""
        k = min(len(items), len(self.unseen))
        for (data, result, flags), cqe in zip(items[:k], self.unseen[:k]):
            assert data is cqe.get_data(), "reap() did not start with the unseen completions, in order"
            assert flags == cqe.flags()
            if type(result) is bytes:
                assert result == cqe.getresult()
            else:
                assert type(result) is int and result == cqe.res()
        taken, self.unseen = self.unseen[:k], self.unseen[k:]
        if taken:
            self.ring.cqe_seen(taken[-1])  # seen already: does nothing
        for item in items[k:]:
            self._deliver_one(Completion.of_item(*item))

    def _deliver_one(self, comp):
        data = comp.data
        assert isinstance(data, Token), "completion with data %r (res %r)" % (data, comp.res)
        op = self.ops.get(data.serial)
        assert op is not None, "completion of %r, which this ring never submitted" % data
        assert op.state == SUBMITTED, "completion of %r in state %s" % (op, op.state)
        assert op.wref() is data, "the completion's user data is not the object given with the op"
        if comp.cqe is not None and op.user_data is not None:
            assert comp.cqe.user_data() == op.user_data
        assert not comp.flags & py_io_uring.IORING_CQE_F_MORE
        op.state = DELIVERED
        op.res = comp.res
        op.token = None  # the Cqe (or the caller of reap()) keeps it now
        self._check_result(op, comp)
        self._check_cancel_pair(op.target if op.kind in CANCEL_KINDS else op)

    def _check_error(self, op, comp, err, exc=OSError):
        assert op.res == -err
        comp.check_error(err, exc)

    def _check_cancelled_buffer(self, op):
        if op.buf is not None:
            assert op.buf == bytearray(op.size), "a cancelled read wrote into its buffer"
            self.done_buffers.append((op.buf, bytes(op.buf)))

    def _read_data(self, op, comp):
        """The bytes a successful read or recv returned, checked against
        getresult() (or reap()'s result) and the sentinel."""
        res = op.res
        result = comp.result()
        if op.buf is None:
            assert type(result) is bytes and len(result) == res
            return result
        assert type(result) is int and result == res
        assert op.buf[res:] == bytearray(op.size - res), "bytes past res were written"
        data = bytes(op.buf[:res])
        self.done_buffers.append((op.buf, data + bytes(op.size - res)))
        # reaped: the pin is gone, the bytearray can be resized again
        op.buf.append(0)
        del op.buf[-1]
        return data

    def _check_result(self, op, cqe):
        """cqe: a Completion."""
        kind, res = op.kind, op.res
        if res == -errno.ECANCELED and kind not in CANCEL_KINDS:
            assert op.cancellers, "%r cancelled, but nothing cancelled it" % op
            self._check_error(op, cqe, errno.ECANCELED)
            if kind in ("pipe_read", "recv"):
                self._check_cancelled_buffer(op)
            elif kind in ("pipe_write", "send"):
                op.stream.possible[op.value] -= op.size
            return
        if kind == "nop":
            assert res == 0 and cqe.result() == 0
        elif kind in ("pipe_read", "recv"):
            assert 0 < res <= op.size, "%r: res %d" % (op, res)
            op.stream.consumed(self._read_data(op, cqe))
        elif kind in ("pipe_write", "send"):
            assert 0 < res <= op.size, "%r: res %d" % (op, res)
            if kind == "pipe_write":
                assert res == op.size, "a pipe write of <= PIPE_BUF bytes is atomic"
            assert cqe.result() == res
            op.stream.possible[op.value] -= op.size - res
        elif kind == "file_read":
            want = FILE_CONTENT[op.offset : op.offset + op.size]
            assert res == len(want), "file read at %d of %d: res %d" % (op.offset, op.size, res)
            assert self._read_data(op, cqe) == want
        elif kind == "file_write":
            assert res == op.size and cqe.result() == res
        elif kind == "timeout":
            assert res == -errno.ETIME, "%r" % op
            self._check_error(op, cqe, errno.ETIME, TimeoutError)
        elif kind == "long_timeout":
            raise AssertionError("a 60 s timeout completed with %d" % res)
        elif kind == "accept":
            assert res >= 0, "%r" % op
            self.accepted += 1
            assert self.accepted <= len(self.clients), "more connections accepted than made"
            try:
                assert cqe.result() == res
                assert stat.S_ISSOCK(os.fstat(res).st_mode)
                s = socket.socket(fileno=res)
                try:
                    addr = s.getpeername()
                finally:
                    s.detach()
                assert addr in self.client_addrs, "peer %r is not one of our clients" % (addr,)
                if cqe.cqe is not None:
                    assert cqe.cqe.convert_address() == addr
                if op.sqe is not None:
                    assert op.sqe.convert_address() == addr
            finally:
                os.close(res)
        elif kind in CANCEL_KINDS:
            assert res in (0, -errno.ENOENT, -errno.EALREADY), "%r" % op
            if op.expect_enoent:
                assert res == -errno.ENOENT, "%r aimed at a finished or stale target" % op
        else:
            raise AssertionError(kind)

    def _check_cancel_pair(self, target):
        """A cancel that returned 0 means its target ended -ECANCELED; a
        target that ended -ECANCELED had a cancel that found it."""
        if target is None or target.state != DELIVERED or not target.cancellers:
            return
        done = [c for c in target.cancellers if c.state == DELIVERED]
        zeros = [c for c in done if c.res == 0]
        # (two cancels submitted together may both find a request whose
        # cancellation is still pending, and both return 0)
        if zeros:
            assert target.res == -errno.ECANCELED, "%r: cancelled by %r but ended %d" % (target, zeros[0], target.res)
        if target.res == -errno.ECANCELED and len(done) == len(target.cancellers):
            if target.kind in IO_WQ_KINDS:
                # The kernel flags a request an io-wq worker is running and
                # then looks for it among polls and timeouts, whose -ENOENT
                # is what the cancel returns (io_try_cancel() falls through
                # after -EALREADY); if the worker finishes before the
                # slow-path retry, the cancel says -ENOENT while the request
                # ends -ECANCELED.  Seen about once in 60,000 file writes.
                return
            assert any(c.res in (0, -errno.EALREADY) for c in done), "%r cancelled, but no cancel found it: %r" % (
                target,
                done,
            )

    def _outstanding(self):
        return sum(1 for op in self.ops.values() if op.state != DELIVERED)

    # ---- preparing operations ----------------------------------------

    # Preconditions may only depend on what the rules chose, never on when
    # the kernel completed something (Hypothesis replays choices and needs
    # the same rules enabled): rules that may find nothing to do return
    # early instead.

    @rule(specs=SPECS)
    def prepare(self, specs):
        for spec in specs:
            if self._outstanding() >= MAX_LIVE:
                return
            self._prepare_one(*spec)

    def _plan(self, kind, size, into_buffer, offset, delay, pending=()):
        """A new model op of this kind (or a NOP where it would block or
        exceed the accept limit) and the prep_NAME it needs: (op, name,
        args).  Not registered: the caller enters it once the ring took
        it, or _unplan()s it.  pending: ops planned for the same batch."""
        if kind in ("pipe_write", "send"):
            stream = self.pipe if kind == "pipe_write" else self.sock
            if stream.unread_upper() + size > STREAM_LIMIT:
                kind = "nop"  # would block behind a full buffer
        if kind == "accept":
            accepts = sum(1 for o in self.live() if o.kind == "accept") + sum(1 for o in pending if o.kind == "accept")
            if accepts >= MAX_CLIENTS:
                kind = "nop"
        op = self._fresh_op(kind)
        if kind == "nop":
            return op, "nop", ()
        if kind in ("pipe_read", "recv", "file_read"):
            op.size = size
            op.buf = bytearray(size) if into_buffer else None
            arg = op.buf if into_buffer else size
            if kind == "pipe_read":
                op.stream = self.pipe
                return op, "read", (self.pipe_r, arg)
            if kind == "recv":
                op.stream = self.sock
                return op, "recv", (self.sock_a, arg)
            op.offset = offset
            return op, "read", (self.fd, arg, offset)
        if kind in ("pipe_write", "send"):
            op.stream = self.pipe if kind == "pipe_write" else self.sock
            op.size = size
            op.value = op.stream.value()
            op.stream.possible[op.value] += size
            data = bytes([op.value]) * size
            if kind == "pipe_write":
                return op, "write", (self.pipe_w, data)
            return op, "send", (self.sock_b, bytearray(data) if into_buffer else data)
        if kind == "file_write":
            op.offset = min(offset, FILE_SIZE - 1)
            op.size = min(size, FILE_SIZE - op.offset)
            # rewrites what is there: the file's content never changes
            return op, "write", (self.fd, FILE_CONTENT[op.offset : op.offset + op.size], op.offset)
        if kind == "timeout":
            return op, "timeout", (delay,)
        if kind == "long_timeout":
            return op, "timeout", (60,)
        if kind == "accept":
            return op, "accept", (self.listener,)
        raise AssertionError(kind)

    def _unplan(self, op):
        """Forget a planned op the ring did not take."""
        if op.kind in ("pipe_write", "send"):
            op.stream.possible[op.value] -= op.size

    def _prepare_one(self, kind, size, into_buffer, offset, delay):
        op, name, args = self._plan(kind, size, into_buffer, offset, delay)
        sqe = self._acquire()
        if op.serial % 3 == 0:
            op.token.sqe = sqe  # token -> Sqe -> token, until the teardown
        getattr(sqe, PREP[name])(*args)
        sqe.set_data(op.token)
        self._register(op, sqe)

    @rule(specs=SPECS)
    def prepare_fast(self, specs):
        """The same operations through ring.prep_NAME(..., user_data=)."""
        for spec in specs:
            if self._outstanding() >= MAX_LIVE:
                return
            op, name, args = self._plan(*spec)
            self._fast(name, args, op)

    @rule(
        name=st.sampled_from(sorted(MANY_KINDS)),
        specs=spec_lists(st.booleans(), 6),   # the kind: which of the op name's
        bad=st.integers(0, 15),  # < 7: an entry that fails goes in at that index
    )
    def prepare_many(self, name, specs, bad):
        """Several entries in one prep_many() call: all or nothing."""
        ops, args = [], []
        for flag, size, into_buffer, offset, delay in specs:
            if self._outstanding() + len(ops) >= MAX_LIVE:
                break
            op, got, a = self._plan(MANY_KINDS[name][flag], size, into_buffer, offset, delay, ops)
            if got != name:  # it became a NOP: the batch ends here
                self._unplan(op)
                break
            ops.append(op)
            args.append(a)
        if not ops:
            return
        if bad < 7:
            self._prepare_many_bad(name, ops, args, min(bad, len(ops)))
            return
        tokens = [op.token for op in ops]
        no_args = name == "nop" and bad % 2 == 0
        call = (lambda: self.ring.prep_many(name, user_data=tokens)) if no_args else (
            lambda: self.ring.prep_many(name, args, user_data=tokens)
        )
        if self.ring.sq_space_left() < len(ops):
            with pytest.raises(SubmissionQueueFull):
                call()
            assert self.ring.sq_ready() == len(self.acquired)
            self._submit()
        assert call() == len(ops)
        for op in ops:
            self._register(op)

    def _prepare_many_bad(self, name, ops, args, at):
        """prep_many() with one bad entry: raises, queues none of the
        entries, keeps neither their user data nor their buffers."""
        bad_args = {
            "nop": (1,),
            "read": (self.pipe_r, "not a buffer"),
            "write": (self.pipe_w, None),
            "recv": (self.sock_a, "not a buffer"),
            "send": (self.sock_b, 5),
            "timeout": (-1.0,),
            "accept": ("not an fd",),
        }[name]
        args = args[:at] + [bad_args] + args[at:]
        extra = Token(-1)
        extra_ref = weakref.ref(extra)
        tokens = [op.token for op in ops]
        tokens.insert(at, extra)
        del extra
        before = self.ring.sq_ready()
        if self.ring.sq_space_left() < len(args):
            self._submit()
            before = 0
        with pytest.raises((TypeError, ValueError)):
            self.ring.prep_many(name, args, user_data=tokens)
        assert self.ring.sq_ready() == before, "a failed prep_many() left entries queued"
        assert self.ring.sq_space_left() == ENTRIES - before
        del tokens, args
        for op in ops:
            self._unplan(op)
            op.token = None
            if op.buf is not None:  # not pinned
                op.buf.append(0)
                del op.buf[-1]
        refs = [op.wref for op in ops] + [extra_ref]
        assert all(r() is None for r in refs), "a failed prep_many() kept user data"

    def _aim(self, op, target):
        target.cancellers.append(op)
        op.target = target
        if target.state == DELIVERED:
            op.expect_enoent = True

    @rule(pick=st.integers(0, 1 << 16), by_user_data=st.booleans())
    def cancel(self, pick, by_user_data):
        targets = [o for o in self.ops.values() if o.kind not in CANCEL_KINDS]
        if not targets:
            return
        target = targets[pick % len(targets)]
        if target.user_data is None:  # a fast-form op: name it by its token
            self._cancel_by_data(target, "cancel", by_user_data)
            return
        op = self._new_op("cancel")
        if target.sqe is None or by_user_data:
            op.sqe.prep_cancel64(target.user_data)
        else:
            op.sqe.prep_cancel(target.sqe)
        op.sqe.set_data(op.token)
        self._aim(op, target)

    def _nameable(self, target, token):
        """Whether the ring still holds an op with this user data: from its
        prep until its completion is marked seen."""
        if target.state != DELIVERED:
            return True
        return any(c.get_data() is token for c in self.unseen)

    def _cancel_by_data(self, target, kind, fast):
        token = target.wref()
        if token is None:
            return  # completed and dropped: nothing left to name it by
        if not self._nameable(target, token):
            # its completion was marked seen: nothing in flight has it
            if self.ring.sq_space_left() == 0:
                self._submit()  # (a full queue is checked before the target)
            before = self.ring.sq_ready()
            if fast:
                with pytest.raises(TypeError, match="no operation in flight has it"):
                    getattr(self.ring, PREP[kind])(token, user_data=token)
                assert self.ring.sq_ready() == before
            else:
                op = self._new_op("nop")  # a failed prep leaves the entry a NOP
                op.sqe.set_data(op.token)
                with pytest.raises(TypeError, match="no operation in flight has it"):
                    getattr(op.sqe, PREP[kind])(token)
            return
        if fast:
            op = self._fresh_op(kind)
            self._fast(kind, (token,), op)
        else:
            op = self._new_op(kind)
            getattr(op.sqe, PREP[kind])(token)
            op.sqe.set_data(op.token)
        # (completed but not yet seen: the kernel is sent a user_data that
        # names nothing, and answers -ENOENT)
        self._aim(op, target)

    @rule(pick=st.integers(0, 1 << 16), remove=st.booleans(), fast=st.booleans())
    def cancel_by_data(self, pick, remove, fast):
        """Cancel, or remove a timeout, naming the target by its user data
        (the token object), through the fast form or an Sqe."""
        if remove:
            targets = [o for o in self.ops.values() if o.kind in ("timeout", "long_timeout")]
        else:
            targets = [o for o in self.ops.values() if o.kind not in CANCEL_KINDS]
        if not targets:
            return
        self._cancel_by_data(targets[pick % len(targets)], "timeout_remove" if remove else "cancel", fast)

    @rule(pick=st.integers(0, 1 << 16))
    def timeout_remove(self, pick):
        targets = [o for o in self.ops.values() if o.kind in ("timeout", "long_timeout") and o.sqe is not None]
        if not targets:
            return
        target = targets[pick % len(targets)]
        op = self._new_op("timeout_remove")
        op.sqe.prep_timeout_remove(target.sqe)
        op.sqe.set_data(op.token)
        self._aim(op, target)

    @rule(pick=st.integers(0, 1 << 16))
    def cancel_stale(self, pick):
        """Cancel an Sqe of a ring's earlier life: it names nothing now."""
        if not self.carried:
            return
        stale = self.carried[pick % len(self.carried)]
        op = self._new_op("cancel")
        op.sqe.set_data(op.token)
        if stale.ring is self.ring:
            op.sqe.prep_cancel(stale.sqe)  # queue_init() again: same ring
            op.expect_enoent = True
        else:
            with pytest.raises(ValueError, match="another IoUring"):
                op.sqe.prep_cancel(stale.sqe)
            op.kind = "nop"  # a failed prep leaves the entry a NOP

    # ---- submitting and reaping --------------------------------------

    @rule()
    def submit(self):
        if self.acquired:
            self._submit()

    @rule(timeout=st.sampled_from([0, 0.0005, 0.002]))
    def wait_cqe(self, timeout):
        cqe = self.ring.wait_cqe(timeout=timeout)
        if cqe is None:
            assert not self.unseen
            return
        self._deliver([cqe])

    @rule()
    def peek_cqe(self):
        cqe = self.ring.peek_cqe()
        if cqe is None:
            assert not self.unseen
            return
        self._deliver([cqe])

    @rule(n=st.integers(0, 6), timeout=st.sampled_from([0, 0.001]))
    def wait_cqe_nr(self, n, timeout):
        cqes = self.ring.wait_cqe_nr(n, timeout=timeout)
        assert len(cqes) <= n
        assert len(cqes) >= min(n, len(self.unseen))
        self._deliver(cqes)

    @rule(pick=st.integers(0, 1 << 16), twice=st.booleans())
    def cqe_seen(self, pick, twice):
        if not self.unseen:
            return
        cqe = self.unseen.pop(pick % len(self.unseen))
        self.ring.cqe_seen(cqe)
        if twice:
            self.ring.cqe_seen(cqe)  # does nothing
        # the Cqe keeps its result after being marked seen
        assert cqe.get_data() is not None

    @rule()
    def exact_accounting(self):
        """Reap everything the kernel has: then in_flight() is exact."""
        cqes = self.ring.wait_cqe_nr(10000, timeout=0)
        self._deliver(cqes)
        assert len(cqes) == len(self.unseen)
        assert self.ring.in_flight() == self._outstanding()

    @rule(
        count=st.integers(0, 8),
        wait=st.integers(0, 3),
        submit=st.booleans(),
        how=st.sampled_from(["list", "columns", "one"]),
    )
    def reap(self, count, wait, submit, how):
        """reap(), reap(columns=True) or reap_one(); they wait only for
        completions already reaped into the queue (no timeout to rely on)."""
        if how == "one":
            count = min(count, 1)
        unseen = len(self.unseen)
        wait_nr = min(wait, count, unseen)
        items = self._reap(count, wait_nr, submit, how)
        if submit and (count or how != "one"):
            self._mark_submitted()
        assert min(count, unseen) <= len(items) <= count
        self._deliver_items(items)

    def _reap(self, count, wait_nr, submit, how):
        if how == "one":
            if count == 0:
                return []
            item = self.ring.reap_one(bool(wait_nr), submit)
            assert item is None or (type(item) is tuple and len(item) == 3)
            return [] if item is None else [item]
        if how == "list":
            items = self.ring.reap(count, wait_nr, submit)
            assert type(items) is list and all(type(t) is tuple and len(t) == 3 for t in items)
            return items
        cols = self.ring.reap(count, wait_nr, submit, columns=True)
        assert type(cols) is tuple and len(cols) == 3
        assert all(type(c) is list and len(c) == len(cols[0]) for c in cols)
        return list(zip(*cols))

    @rule(columns=st.booleans())
    def reap_all(self, columns):
        """reap() until it returns nothing: then in_flight() is exact."""
        for _ in range(100):
            items = self._reap(64, 0, False, "columns" if columns else "list")
            self._deliver_items(items)
            if not items:
                break
        else:
            raise AssertionError("reap() never ran dry")
        assert not self.unseen
        # (cq_ready() is not asserted: a timeout may complete meanwhile, and
        # stays in flight until reaped, on both sides of this equation)
        assert self.ring.in_flight() == self._outstanding()

    # ---- the other side of the streams -------------------------------

    @rule(size=st.integers(1, 600))
    def feed_pipe(self, size):
        if self.pipe.unread_upper() >= STREAM_LIMIT:
            return
        size = min(size, STREAM_LIMIT - self.pipe.unread_upper())
        v = self.pipe.value()
        self.pipe.possible[v] += size
        assert os.write(self.pipe_w, bytes([v]) * size) == size

    @rule(size=st.integers(1, 600))
    def feed_socket(self, size):
        if self.sock.unread_upper() >= STREAM_LIMIT:
            return
        size = min(size, STREAM_LIMIT - self.sock.unread_upper())
        v = self.sock.value()
        self.sock.possible[v] += size
        try:
            sent = self.sock_b.send(bytes([v]) * size, socket.MSG_DONTWAIT)
        except BlockingIOError:
            sent = 0
        self.sock.possible[v] -= size - sent

    @precondition(lambda self: len(self.clients) < MAX_CLIENTS)
    @rule()
    def connect_client(self):
        c = socket.create_connection(self.listener.getsockname(), timeout=5)
        self.clients.append(c)
        self.client_addrs.add(c.getsockname())

    # ---- references and pins -----------------------------------------

    @rule()
    def drop_references(self):
        """Drop every Sqe and token the machine holds for operations in
        flight: the ring alone keeps them (and their buffers) alive."""
        for op in self.live():
            op.sqe = None
            op.token = None
        gc.collect()
        for op in self.live():
            assert op.wref() is not None, "the token of %r died while in flight" % op

    @rule()
    def pinned_buffers(self):
        """While a read has not been reaped its bytearray cannot be resized."""
        self._deliver(self.ring.wait_cqe_nr(10000, timeout=0))
        if self.ring.in_flight() != self._outstanding():
            return
        for op in self.live():
            if op.buf is not None:
                with pytest.raises(BufferError):
                    op.buf.append(1)
                assert len(op.buf) == op.size

    # ---- teardown ----------------------------------------------------

    def _drain(self):
        """Cancel everything still live and reap every completion: each
        operation ends exactly once."""
        if self.acquired:
            self._submit()
        fast = []
        for target in self.live():
            if target.kind in CANCEL_KINDS:
                continue
            if target.user_data is None:
                fast.append(target)
                continue
            op = self._new_op("cancel")
            op.sqe.prep_cancel64(target.user_data)
            op.sqe.set_data(op.token)
            self._aim(op, target)
        # fast-form ops have only their token to be named by: cancel them
        # with prep_many(), as many at a time as the queue has room for
        while fast:
            room = self.ring.sq_space_left()
            if room == 0:
                self._submit()
                continue
            batch, fast = fast[:room], fast[room:]
            ops = [self._fresh_op("cancel") for _ in batch]
            targets = [(t.wref(),) for t in batch]
            assert all(t[0] is not None for t in targets), "the token of a live op died"
            assert self.ring.prep_many("cancel", targets, user_data=[o.token for o in ops]) == len(batch)
            for op, target in zip(ops, batch):
                self._register(op)
                self._aim(op, target)
        if self.acquired:
            self._submit()
        deadline = time.monotonic() + 5
        while self._outstanding():
            assert time.monotonic() < deadline, "completions missing: %r" % self.live()
            self._deliver(self.ring.wait_cqe_nr(len(self.unseen) + 1, timeout=1))
        for c in self.unseen:
            self.ring.cqe_seen(c)
        self.unseen = []
        assert self.ring.in_flight() == 0
        assert self.ring.cq_ready() == 0 and self.ring.peek_cqe() is None
        # every byte written was read or is still buffered, exactly once
        os.set_blocking(self.pipe_r, False)
        for stream, read in (
            (self.pipe, lambda: os.read(self.pipe_r, 65536)),
            (self.sock, lambda: self.sock_a.recv(65536, socket.MSG_DONTWAIT)),
        ):
            left = bytearray()
            for _ in range(1000):
                try:
                    chunk = read()
                except BlockingIOError:
                    break
                assert chunk, "unexpected end of stream"
                left += chunk
            stream.consumed(bytes(left))
            assert stream.read == +stream.possible, "bytes lost or duplicated in a stream"

    def _teardown_ring(self, how, carry):
        ring = self.ring
        undelivered_accepts = sum(1 for o in self.live() if o.kind == "accept")
        self.carried = []
        if how != "gc":
            for op in list(self.ops.values())[:carry]:
                if op.sqe is not None:
                    op.sqe.set_data(None)  # its token must die with the rest
                    self.carried.append(_Carried(op.sqe, ring if how == "reinit" else None))
        wrefs = [(op.wref, op) for op in self.ops.values()]
        for op in self.ops.values():
            op.sqe = op.token = None
            if op.buf is not None and op.state != DELIVERED:
                self.done_buffers.append((op.buf, None))  # pinned or released
        self.unseen = []
        self.acquired = []
        if how == "gc":
            ring_ref = weakref.ref(ring)
            self.ring = ring = None
            gc.collect()
            assert ring_ref() is None, "an IoUring with operations in flight was not collected"
        elif how == "with":
            with ring:
                pass
        else:
            ring.queue_exit()
        if ring is not None:
            with pytest.raises(ValueError):
                ring.in_flight()
            ring.queue_exit()  # idempotent
        self.ops = {}
        if any(w() is not None for w, _ in wrefs):
            gc.collect()
        alive = [op for w, op in wrefs if w() is not None]
        assert not alive, "tokens outlived the ring's teardown: %r" % alive
        # the buffers of reads that never completed are released: resizable
        for buf, snap in self.done_buffers:
            if snap is None:
                buf.append(1)
                del buf[-1]
        self.done_buffers.clear()
        # an accept the teardown discarded leaves its socket open
        known = self.base_fds | self._resource_fds()
        extra = _open_fds() - known
        stray = []
        for fd in sorted(extra):
            if stat.S_ISSOCK(os.fstat(fd).st_mode):
                s = socket.socket(fileno=fd)
                try:
                    peer = s.getpeername()
                except OSError:
                    peer = None
                if peer in self.client_addrs:
                    s.close()
                    continue
                s.detach()
            stray.append(fd)
        assert not stray, "file descriptors leaked: %r" % stray
        assert len(extra) <= undelivered_accepts, "%d sockets left for %d accepts" % (len(extra), undelivered_accepts)
        return ring

    @rule(how=st.sampled_from(["queue_exit", "reinit", "with", "gc"]), carry=st.integers(0, 2))
    def recreate_ring(self, how, carry):
        ring = self._teardown_ring(how, carry)
        self._close_streams()
        self._new_streams()
        if how == "reinit":
            ring.queue_init(ENTRIES)
            self._new_ring(ring)
        else:
            self._new_ring(IoUring(ENTRIES))

    # ---- invariants --------------------------------------------------

    @invariant()
    def accounting(self):
        ring = self.ring
        outstanding = self._outstanding()
        in_flight = ring.in_flight()
        assert in_flight <= outstanding, "in_flight() %d > %d outstanding" % (in_flight, outstanding)
        # the difference is what was reaped into the queue but not yet
        # returned by a wait or peek
        assert outstanding - in_flight <= ring.cq_ready() - len(self.unseen)
        assert ring.sq_ready() == len(self.acquired)
        assert ring.sq_space_left() == ENTRIES - len(self.acquired)

    @invariant()
    def buffers_unchanged(self):
        for buf, snap in self.done_buffers:
            if snap is not None:
                assert bytes(buf) == snap, "a read buffer was written after its completion"

    def teardown(self):
        try:
            if self.ring is not None:
                drained = False
                try:
                    self._drain()
                    drained = True
                finally:
                    if drained:
                        self._teardown_ring("queue_exit", 0)
                    else:  # a check failed: only clean up
                        self.ops, self.unseen, self.acquired, self.carried = {}, [], [], []
                        self.done_buffers.clear()
                        self.ring.queue_exit()
        finally:
            self._close_streams()
            self.file.close()
            gc.unfreeze()


class _Carried:
    """An Sqe kept across a teardown; ring is the ring it can still
    be aimed from (after queue_init() on the same object), or None."""

    __slots__ = ("sqe", "ring")

    def __init__(self, sqe, ring):
        self.sqe = sqe
        self.ring = ring


@pytest.mark.no_leakcheck
def test_state_machine():
    profile = settings.get_profile(_profile_name())
    gc.collect()
    try:
        run_state_machine_as_test(RingMachine, settings=profile)
    finally:
        gc.unfreeze()
