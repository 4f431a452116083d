"""A bounded work queue over a sync IoUring: at most `depth` operations in
flight, results in completion order, everything drained on the way out.

It sits above the fast tier (docs/design.md, "one tier per job"): it only
calls IoUring.prep_NAME(..., user_data=...) and IoUring.reap(), and owns no
kernel memory of its own (the ring's records pin what each op uses).  The
bulk helpers in files.py are built from it."""

# typing's names under a private alias, as loop.py does
import typing as _t

# the package's name, not ._core's: the package's stub types it
from . import IoUring

if _t.TYPE_CHECKING:
    from . import _OpName, _Result

__all__ = ["WorkQueue"]


class _Slot(object):
    # user_data of every entry the queue queues: the caller's object, wrapped
    # so that the queue knows its own completions.
    __slots__ = ("data",)

    def __init__(self, data):
        self.data = data


class WorkQueue(object):
    """Keep at most depth operations in flight on a sync IoUring.

    put(op, *args, data=..., sqe_flags=...) queues one operation ("read" for
    ring.prep_read, or a callable called as fn(ring, user_data) that preps
    exactly one entry with that user_data); complete() submits what is
    queued and returns the completions as (data, result, flags), oldest
    first, result being a negative errno on failure as reap() gives it;
    drain() waits for everything in flight.  Leaving `with` (or close())
    drains, even on an exception, handing each drained completion to the
    on_drain callback given to the constructor (to close the fds an open
    made, say), so that nothing is left running.

    With ring=None the queue makes its own ring of depth entries and closes
    it in close(); a ring given is left open and must have room for depth
    entries in its submission queue, and no operations of its own in
    flight while the queue runs: complete() reaps every completion and
    drops those that are not the queue's."""

    def __init__(self, ring: _t.Optional[IoUring] = None, depth: int = 64,
                 on_drain: "_t.Optional[_t.Callable[[object, _Result], object]]" = None) -> None:
        depth = int(depth)
        if depth < 1:
            raise ValueError("depth must be at least 1, not %d" % depth)
        self.depth = depth
        self.on_drain = on_drain
        self._own = ring is None
        self.ring = IoUring(depth) if ring is None else ring
        self.in_flight = 0      # entries queued or submitted, not yet reaped
        self._preps: _t.Dict[str, _t.Callable[..., None]] = {}  # op name -> the ring's bound prep_<op>
        self._closed = False

    @property
    def room(self) -> int:
        """How many more entries put() may queue now."""
        return self.depth - self.in_flight

    def put(self, op: "_t.Union[_OpName, _t.Callable[[IoUring, object], object]]",
            *args: _t.Any, **kwargs: _t.Any) -> None:
        """Queue one entry; data= is what complete() gives back with its
        result.  Raises RuntimeError when the queue is full (check room)."""
        data = kwargs.pop("data", None)
        if self._closed:
            raise ValueError("I/O operation on a closed WorkQueue")
        if self.in_flight >= self.depth:
            raise RuntimeError("WorkQueue full: %d entries in flight" % self.in_flight)
        slot = _Slot(data)
        if isinstance(op, str):
            prep = self._preps.get(op)
            if prep is None:
                prep = self._preps[op] = getattr(self.ring, "prep_" + op)
            prep(*args, user_data=slot, **kwargs)
        elif callable(op):
            if args or kwargs:
                raise TypeError("a callable op takes no arguments: it preps its own entry")
            op(self.ring, slot)
        else:
            raise TypeError("op must be an op's name or a callable, not %s" % type(op).__name__)
        self.in_flight += 1

    def complete(self, wait: bool = True) -> "_t.List[_t.Tuple[object, _Result, int]]":
        """Submit what is queued and return the completions ready, as
        (data, result, flags) tuples; with wait, wait for at least one
        when any is in flight."""
        if not self.in_flight:
            return []
        out = []
        for ud, res, flags in self.ring.reap(self.in_flight, 1 if wait else 0, True):
            if type(ud) is not _Slot:
                continue            # not ours (a completion of the caller's own ops)
            if not flags & _CQE_F_MORE:
                self.in_flight -= 1
            out.append((ud.data, res, flags))
        return out

    def drain(self) -> "_t.List[_t.Tuple[object, _Result, int]]":
        """Wait for everything in flight; return their completions (each also
        handed to on_drain)."""
        out = []
        while self.in_flight:
            got = self.complete(True)
            out.extend(got)
            if self.on_drain is not None:
                for data, res, flags in got:
                    self.on_drain(data, res)
        return out

    def map(self, jobs: _t.Iterable[_t.Sequence[_t.Any]]) -> "_t.Iterator[_t.Tuple[object, _Result]]":
        """Run jobs, an iterable of (data, op, args) tuples (or (data, op,
        args, kwargs)), keeping at most depth in flight; yield (data,
        result) in completion order.  Closing the generator early, or an
        error, drains what is in flight first."""
        it = iter(jobs)
        more = True
        batch, pos = [], 0      # reaped completions, how many handed out
        try:
            while True:
                while more and self.in_flight < self.depth:
                    job = next(it, None)
                    if job is None:
                        more = False
                        break
                    kw = job[3] if len(job) > 3 else {}
                    self.put(job[1], *job[2], data=job[0], **kw)
                if not self.in_flight:
                    return
                batch, pos = self.complete(True), 0
                while pos < len(batch):
                    data, res, flags = batch[pos]
                    pos += 1
                    yield data, res
        finally:
            # reaped but never handed out: on_drain's, as if drained
            if self.on_drain is not None:
                for data, res, flags in batch[pos:]:
                    self.on_drain(data, res)
            self.drain()

    def close(self) -> None:
        """Drain, then close the ring when the queue made it."""
        if self._closed:
            return
        try:
            self.drain()
        finally:
            self._closed = True
            if self._own:
                self.ring.queue_exit()

    def __enter__(self) -> "WorkQueue":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


try:
    from . import IORING_CQE_F_MORE as _CQE_F_MORE
except ImportError:         # pragma: no cover
    _CQE_F_MORE = 2
