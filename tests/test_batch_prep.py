"""IoUring.prep_many(op, args, *, user_data=..., sqe_flags=..., ...) and
IoUring.reap(count, wait_nr=0, submit=False, columns=True), against the real
kernel: the data and results a batch gives back, reap(columns=True) as reap()
in three lists (queue and direct paths, result makers, waiting, errors),
the common keywords on every entry, all or nothing (a bad entry, a full
submission queue), buffers and user data kept while the kernel may use
them, and Python code run by an argument's converter that uses the ring in
the middle of a batch."""

import errno
import functools
import gc
import inspect
import json
import mmap
import os
import socket
import sys
import time
import weakref
from collections import Counter, namedtuple

import pytest

import py_io_uring
from py_io_uring import (
    AT_FDCWD,
    IORING_CQE_BUFFER_SHIFT,
    IORING_CQE_F_BUFFER,
    IOSQE_BUFFER_SELECT,
    IOSQE_CQE_SKIP_SUCCESS,
    IOSQE_FIXED_FILE,
    IOSQE_IO_LINK,
    IoUring,
    SubmissionQueueFull,
)
from uring_helpers import TMP_CONTENT, WAIT, blocks, closed_fd, fill_pipe, need, parse_methods, read_exactly

try:
    import hypothesis
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
except ImportError:   # the property test skips; the rest runs
    hypothesis = None


class Token:
    """Weak-referenceable user data with an identity."""


class Buf(bytearray):
    """A bytearray that can be weakly referenced."""


class CustomError(Exception):
    pass


class FilenoObject:
    """fileno() returns value, or raises a new instance of it when it is an
    exception class."""

    def __init__(self, value):
        self.value = value

    def fileno(self):
        if isinstance(self.value, type) and issubclass(self.value, BaseException):
            raise self.value("from fileno")
        return self.value


def reap_cols(ring, n, timeout=WAIT):
    """reap(columns=True) until n completions came, bounded (reap(columns=True)'
    wait_nr has no deadline): each wait goes through wait_cqe(timeout=),
    which leaves the completion unseen for reap(columns=True) to take."""
    uds, res, fl = [], [], []
    deadline = time.monotonic() + timeout
    while len(uds) < n:
        left = deadline - time.monotonic()
        assert left > 0, "only %d of %d completions within %s s: %r" % (len(uds), n, timeout, uds)
        if ring.wait_cqe(timeout=left) is None:
            continue
        a, b, c = ring.reap(n - len(uds), columns=True)
        assert len(a) == len(b) == len(c)
        uds += a
        res += b
        fl += c
    return uds, res, fl


def by_ud(cols):
    """{user_data: (result, flags)} of reap(columns=True) lists (data hashable)."""
    uds, res, fl = cols
    assert len(uds) == len(res) == len(fl)
    out = {}
    for ud, r, f in zip(uds, res, fl):
        assert ud not in out, "two completions for %r: %r" % (ud, cols)
        out[ud] = (r, f)
    return out


def as_columns(tuples):
    """reap()'s list of tuples as reap(columns=True) gives it."""
    return ([t[0] for t in tuples], [t[1] for t in tuples], [t[2] for t in tuples])


def call_error(fn, *args, **kwargs):
    """(type, message) of what fn raises; try/except rather than
    pytest.raises, so no traceback keeps the arguments alive."""
    try:
        fn(*args, **kwargs)
    except Exception as e:
        return type(e), str(e)
    pytest.fail("%r%r did not raise" % (fn, args))


def assert_nothing_queued(ring):
    """Nothing acquired, nothing in flight, nothing to submit or reap."""
    assert ring.sq_ready() == 0
    assert ring.in_flight() == 0
    assert ring.submit() == 0
    assert ring.reap(16, columns=True) == ([], [], [])
    assert ring.cq_ready() == 0


def unexported(buf):
    """True when nothing holds an export of the bytearray (it resizes)."""
    try:
        buf.append(0)
    except BufferError:
        return False
    buf.pop()
    return True


# --------------------------------------------------------------------------
# the methods themselves


def test_signatures_and_docstrings():
    assert str(inspect.signature(IoUring.prep_many)) == (
        "(self, /, op, args=None, *, user_data=None, sqe_flags=0, buf_group=0, personality=0)")
    assert str(inspect.signature(IoUring.reap)) == (
        "(self, /, count, wait_nr=0, submit=False, *, columns=False)")
    many = IoUring.prep_many.__doc__
    assert "All or nothing" in many and "SubmissionQueueFull" in many
    assert "prep_OP(*args[i], user_data=user_data[i]" in many
    assert "columns=True" in IoUring.reap.__doc__
    # the built signatures are those methods.def declares
    specs = {m.name: m for m in parse_methods() if m.cls == "IoUring"}
    for name in ("prep_many", "reap", "reap_columns"):
        declared = specs[name].params()
        params = list(inspect.signature(getattr(IoUring, name)).parameters.values())[1:]
        kinds = {"normal": inspect.Parameter.POSITIONAL_OR_KEYWORD,
                 "kwonly": inspect.Parameter.KEYWORD_ONLY}
        empty = inspect.Parameter.empty
        assert [(p.name, p.kind, "<required>" if p.default is empty else p.default)
                for p in params] == [(n, kinds[k], d) for n, k, d in declared], name


def test_stub_names_every_op_prep_many_takes():
    stub = os.path.join(os.path.dirname(py_io_uring.__file__), "__init__.pyi")
    with open(stub, encoding="utf-8") as f:
        text = f.read()
    (line,) = [ln for ln in text.splitlines() if ln.startswith("_OpName = Literal[")]
    names = [s.strip().strip('"') for s in line[len("_OpName = Literal["):-1].split(",")]
    assert names == [op[0] for op in py_io_uring.OPERATIONS]
    assert "def prep_many(self, op: _OpName," in text
    # reap()'s two shapes as overloads; the deprecated name marked
    assert "def reap(self, count: int, wait_nr: int = 0, submit: bool = False, *, columns: Literal[True])" in text
    assert ('@deprecated("use reap(count, wait_nr, submit, columns=True), which returns the same")\n'
            "    def reap_columns(self, count: int, wait_nr: int = 0, submit: bool = False)") in text


def test_every_op_name_reaches_its_own_prep(ring):
    # the same refusal as the op's fast form: prep_many runs the op's own
    # prep (unsupported ops are refused the same way, before parsing)
    too_many = (None,) * 15
    for name, *_ in py_io_uring.OPERATIONS:
        got = call_error(ring.prep_many, name, [too_many], user_data=["x"])
        want = call_error(getattr(ring, "prep_" + name), *too_many, user_data="x")
        assert got == want, name
        assert "prep_%s" % name in got[1]
    assert_nothing_queued(ring)


def test_prep_many_returns_the_count(ring):
    assert ring.prep_many("nop", user_data=range(5)) == 5
    assert ring.sq_ready() == 5 and ring.in_flight() == 5
    assert ring.prep_many("nop", [(), ()]) == 2
    assert ring.sq_ready() == 7
    assert ring.submit() == 7
    assert ring.reap(8, 7, columns=True) == ([0, 1, 2, 3, 4, None, None], [0] * 7, [0] * 7)
    assert ring.in_flight() == 0


@pytest.mark.parametrize("numbers", [
    range(5), range(10, 0, -3), range(7, 8), range(0),
    range(2**62, 2**62 + 3),                   # made from C longs near the edge
    range(-2**63, -2**63 + 2),                 # past it: iterated instead
    range(0, 2**70, 2**68), range(2**64, 2**64 + 2),
], ids=str)
def test_user_data_from_a_range_is_its_ints(ring, numbers):
    # a range is walked from C longs when they fit; either way entry i gets
    # the int numbers[i], equal to what iterating it gives
    assert ring.prep_many("nop", user_data=numbers) == len(numbers)
    ring.submit()
    data, res, flags = ring.reap(8, len(numbers), columns=True)
    assert data == list(numbers) and res == [0] * len(numbers)
    assert all(type(d) is int for d in data)


def test_user_data_from_a_range_reads_back_everywhere(ring):
    # entries numbered by a range keep their number as a C integer until
    # reaped: every way of reading the user data gives the same int, and a
    # cancel names one by an equal int (not by an equal float or str)
    assert ring.prep_many("timeout", [(30,)] * 3, user_data=range(40, 46, 2)) == 3
    ring.submit()
    assert ring.prep_cancel(42, user_data="c") is None
    with pytest.raises(TypeError, match="no operation in flight has it"):
        ring.prep_cancel(42.0, user_data="x")
    with pytest.raises(TypeError, match="no operation in flight has it"):
        ring.prep_cancel("42", user_data="x")
    ring.submit()
    got = dict((d, r) for d, r, _ in ring.reap(4, 2))
    assert got == {42: -errno.ECANCELED, "c": 0}
    assert type(next(k for k in got if k == 42)) is int
    # the Cqe path (wait_cqe, get_data) and the tuple path (reap) too
    assert ring.prep_many("nop", user_data=range(7, 9)) == 2
    ring.submit_and_wait(2)
    cqe = ring.wait_cqe()
    assert cqe.get_data() == 7 and type(cqe.get_data()) is int
    ring.cqe_seen(cqe)
    assert ring.reap(1) == [(8, 0, 0)]
    # two of the same number in flight: ambiguous, as for any user data
    assert ring.prep_many("timeout", [(30,)], user_data=range(44, 45)) == 1
    with pytest.raises(ValueError, match="2 operations in flight"):
        ring.prep_cancel(44, user_data="x")
    assert ring.in_flight() == 3   # 40, 44 and 44: the ring's teardown cancels them


def test_user_data_range_and_args_must_match(ring):
    with pytest.raises(ValueError, match="2 args but 3 user_data values"):
        ring.prep_many("nop", [(), ()], user_data=range(3))
    assert_nothing_queued(ring)


def test_user_data_range_longer_than_the_queue_queues_nothing(ring):
    with pytest.raises(SubmissionQueueFull):
        ring.prep_many("nop", user_data=range(10**6))
    with pytest.raises((OverflowError, MemoryError, SubmissionQueueFull)):
        ring.prep_many("nop", user_data=range(2**80))
    assert_nothing_queued(ring)


def test_empty_batches_queue_nothing(ring):
    assert ring.prep_many("nop", []) == 0
    assert ring.prep_many("nop", user_data=()) == 0
    assert ring.prep_many("read", [], user_data=[]) == 0
    assert_nothing_queued(ring)


# --------------------------------------------------------------------------
# data


def test_nop_batch_gives_each_entry_its_own_user_data_in_order(ring):
    objs = [Token(), "str", None, 0, (1, 2), Token()]
    assert ring.prep_many("nop", user_data=objs) == 6
    ring.submit()
    uds, res, flags = ring.reap(6, 6, columns=True)
    # nops complete in submission order, each with the very object
    assert len(uds) == 6 and all(u is o for u, o in zip(uds, objs))
    assert res == [0] * 6 and flags == [0] * 6


def test_read_batch_from_a_file_into_lengths(ring, rfd):
    offsets = [0, 100, 4090, 5000, 2048]
    n = ring.prep_many("read", [(rfd, 16, off) for off in offsets], user_data=offsets)
    assert n == 5
    ring.submit()
    got = by_ud(ring.reap(5, 5, columns=True))
    assert got == {0: (TMP_CONTENT[:16], 0), 100: (TMP_CONTENT[100:116], 0),
                   4090: (TMP_CONTENT[4090:], 0), 5000: (b"", 0),
                   2048: (TMP_CONTENT[2048:2064], 0)}
    assert all(type(r) is bytes for r, _ in got.values())


def test_read_batch_into_memoryview_slices_of_one_bytearray(ring, rfd):
    big = bytearray(b"\xee" * 40)
    view = memoryview(big)
    # four reads into distinct 8-byte slices; the last 8 bytes stay untouched
    args = [(rfd, view[i * 8:(i + 1) * 8], 512 * i) for i in range(4)]
    assert ring.prep_many("read", args, user_data=["s%d" % i for i in range(4)]) == 4
    del args
    ring.submit()
    got = by_ud(ring.reap(4, 4, columns=True))
    assert got == {"s%d" % i: (8, 0) for i in range(4)}
    for i in range(4):
        assert big[i * 8:(i + 1) * 8] == TMP_CONTENT[512 * i:512 * i + 8], i
    assert big[32:] == b"\xee" * 8
    view.release()


def test_read_batch_from_several_pipes(ring):
    pipes = [os.pipe() for _ in range(3)]
    try:
        for i, (r, w) in enumerate(pipes):
            os.write(w, b"pipe %d data" % i)
        big = bytearray(3 * 16)
        view = memoryview(big)
        args = [(r, view[i * 16:(i + 1) * 16]) for i, (r, _) in enumerate(pipes)]
        ring.prep_many("read", args, user_data=[p[0] for p in pipes])
        del args
        ring.submit()
        got = by_ud(reap_cols(ring, 3))
        assert got == {r: (11, 0) for r, _ in pipes}
        for i in range(3):
            assert big[i * 16:i * 16 + 11] == b"pipe %d data" % i
            assert big[i * 16 + 11:(i + 1) * 16] == bytes(5)
        view.release()
    finally:
        for r, w in pipes:
            os.close(r)
            os.close(w)


def test_write_batch_to_a_file(ring, wfd):
    sources = [b"first", bytearray(b"second"), memoryview(b"xxthirdxx")[2:7], b""]
    offsets = [0, 100, 200, 300]
    n = ring.prep_many("write", list(zip([wfd] * 4, sources, offsets)), user_data=["a", "b", "c", "d"])
    assert n == 4
    ring.submit()
    assert by_ud(ring.reap(4, 4, columns=True)) == {"a": (5, 0), "b": (6, 0), "c": (5, 0), "d": (0, 0)}
    assert os.pread(wfd, 5, 0) == b"first"
    assert os.pread(wfd, 6, 100) == b"second"
    assert os.pread(wfd, 10, 200) == b"third"
    assert os.fstat(wfd).st_size == 205
    # and read back in one batch
    ring.prep_many("read", [(wfd, 6, 0), (wfd, 6, 100), (wfd, 6, 200)], user_data="xyz")
    ring.submit()
    assert by_ud(ring.reap(3, 3, columns=True)) == {"x": (b"first\0", 0), "y": (b"second", 0),
                                             "z": (b"third", 0)}


def test_failures_in_the_kernel_are_per_entry_negative_errno(ring, rfd, pipe):
    # refused by the kernel, not by the converters: every entry is queued
    args = [(rfd, 4, 0), (closed_fd(), 4, 0), (pipe[1], 4), (rfd, 4, 8)]
    assert ring.prep_many("read", args, user_data="abcd") == 4
    ring.submit()
    got = by_ud(ring.reap(4, 4, columns=True))
    assert got == {"a": (TMP_CONTENT[:4], 0), "b": (-errno.EBADF, 0),
                   "c": (-errno.EBADF, 0), "d": (TMP_CONTENT[8:12], 0)}


def test_statx_batch_results_are_stat_results(ring, tmp_file):
    missing = tmp_file.parent / "missing"
    ring.prep_many("statx", [(AT_FDCWD, tmp_file), (AT_FDCWD, str(missing)), (AT_FDCWD, str(tmp_file))],
                   user_data=["path", "missing", "str"])
    ring.submit()
    got = by_ud(ring.reap(3, 3, columns=True))
    ref = os.stat(tmp_file)
    for key in ("path", "str"):
        st, flags = got[key]
        assert isinstance(st, os.stat_result) and flags == 0
        assert (st.st_size, st.st_ino, st.st_dev, st.st_mode) == (4096, ref.st_ino, ref.st_dev, ref.st_mode)
    assert got["missing"] == (-errno.ENOENT, 0)


def test_any_iterables_tuple_subclasses_and_keywords(ring, rfd):
    Read = namedtuple("Read", "fd buf offset")
    gen = (Read(rfd, 4, off) for off in (0, 4))
    assert ring.prep_many("read", gen, user_data=iter(["g0", "g1"])) == 2
    assert ring.prep_many("nop", user_data={"k1": 1, "k2": 2}) == 2   # a dict's keys
    assert ring.prep_many("nop", args=((),), user_data="z") == 1      # a str's characters
    assert ring.prep_many(op="nop", user_data=["kw"]) == 1
    assert ring.prep_many(user_data=["kw2"], sqe_flags=0, args=[()], op="nop", personality=0) == 1
    ring.submit()
    got = by_ud(ring.reap(7, 7, columns=True))
    assert got == {"g0": (TMP_CONTENT[:4], 0), "g1": (TMP_CONTENT[4:8], 0),
                   "k1": (0, 0), "k2": (0, 0), "z": (0, 0), "kw": (0, 0), "kw2": (0, 0)}


def test_inputs_are_copied_before_any_converter_runs(ring, rfd):
    args = [(rfd, 4, 0), None, (rfd, 4, 8)]
    datas = ["a", "b", "c"]

    class Off:
        def __index__(self):
            args.clear()            # the call works on its own copies
            datas[2] = "changed"
            return 4

    args[1] = (rfd, 4, Off())
    assert ring.prep_many("read", args, user_data=datas) == 3
    ring.submit()
    assert by_ud(ring.reap(3, 3, columns=True)) == {"a": (TMP_CONTENT[:4], 0), "b": (TMP_CONTENT[4:8], 0),
                                             "c": (TMP_CONTENT[8:12], 0)}


# --------------------------------------------------------------------------
# errors before anything is queued


def check_bad_calls(ring, cases):
    """Each (args, kwargs, exception, text in its message) call raises and
    leaves the entry queued before it alone, holding no user data."""
    ring.prep_nop(user_data="before")
    token = Token()
    base = sys.getrefcount(token)
    for args, kwargs, exc, msg in cases:
        if isinstance(kwargs.get("user_data"), list):   # our object in every slot
            kwargs = dict(kwargs, user_data=[token] * len(kwargs["user_data"]))
        err = call_error(ring.prep_many, *args, **kwargs)
        assert err[0] is exc, (args, kwargs, err)
        if msg is not None:
            assert msg in err[1], (args, kwargs, err)
        del kwargs
        assert sys.getrefcount(token) == base, (args, "user data kept by a failed call")
        assert ring.sq_ready() == 1 and ring.in_flight() == 1, args
    assert ring.submit() == 1
    assert ring.reap(4, 1, columns=True) == (["before"], [0], [0])


def test_bad_op_raises_and_queues_nothing(ring):
    check_bad_calls(ring, [
        ((5, [()]), {}, TypeError, "op must be an op name such as 'read', not int"),
        ((b"nop", [()]), {}, TypeError, "op must be an op name"),
        (("bogus", [()]), {}, ValueError, "no op named 'bogus'"),
        (("prep_nop", [()]), {}, ValueError, "no op named 'prep_nop'"),
        (("many", [()]), {}, ValueError, "no op named 'many'"),
        (("NOP", [()]), {}, ValueError, "no op named 'NOP'"),
    ])


def test_bad_args_or_user_data_raise_and_queue_nothing(ring):
    check_bad_calls(ring, [
        (("nop",), {}, TypeError, "give args, user_data or both"),
        (("nop", None), {"user_data": None}, TypeError, "give args, user_data or both"),
        (("nop", [(), ()]), {"user_data": [1]}, ValueError, "2 args but 1 user_data values"),
        (("nop", [()]), {"user_data": [1, 2]}, ValueError, "1 args but 2 user_data values"),
        (("nop", 5), {}, TypeError, "args must be an iterable"),
        (("nop",), {"user_data": 5}, TypeError, "user_data must be an iterable"),
        (("nop", [(), [], ()]), {"user_data": [1, 2, 3]}, TypeError,
         "args[1] must be a tuple of prep_nop() arguments, not list"),
        (("nop", [(), (), "ab"]), {}, TypeError, "args[2] must be a tuple"),
        (("read", [(0, 4), None]), {}, TypeError, "args[1] must be a tuple of prep_read() arguments, not NoneType"),
    ])


def test_bad_call_forms_raise_and_queue_nothing(ring):
    check_bad_calls(ring, [
        ((), {}, TypeError, None),
        (("nop", [()], [1]), {}, TypeError, None),            # user_data is keyword-only
        (("nop", [()]), {"op": "nop"}, TypeError, None),
        (("nop", [()]), {"bogus": 1}, TypeError, "bogus"),
        (("nop", [()]), {"sqe_flags": 256}, OverflowError, "sqe_flags must be 0-255"),
        (("nop", [()]), {"sqe_flags": 1.5}, TypeError, None),
        (("nop", [()]), {"buf_group": 65536}, OverflowError, "buf_group must be 0-65535"),
        (("nop", [()]), {"personality": "0"}, TypeError, None),
    ])


def test_op_that_needs_arguments_with_user_data_alone(ring):
    with pytest.raises(TypeError, match="prep_read"):
        ring.prep_many("read", user_data=["a", "b"])
    assert_nothing_queued(ring)


def test_closed_and_uninitialised_rings_refuse():
    calls = [lambda r: r.prep_many("nop", [()]),
             lambda r: r.prep_many("nop", []),           # even asking for nothing
             lambda r: r.prep_many("nop", user_data=[1]),
             lambda r: r.reap(1, columns=True),
             lambda r: r.reap(0, columns=True)]
    never = IoUring()
    closed = IoUring(4)
    closed.queue_exit()
    for r in (never, closed):
        for call in calls:
            with pytest.raises(ValueError, match="not initialised"):
                call(r)


# --------------------------------------------------------------------------
# all or nothing: an entry that fails gives back those queued before it


# bad entries, each refused by prep_read itself
BAD_READS = {
    "negative length": lambda fd: (fd, -1),
    "str fd": lambda fd: ("not an fd", 4),
    "read-only buffer": lambda fd: (fd, b"read-only"),
    "str offset": lambda fd: (fd, 4, "offset"),
    "missing argument": lambda fd: (fd,),
    "fileno() raises": lambda fd: (FilenoObject(CustomError), 4),
    "too many arguments": lambda fd: (fd, 4, 0, 0),
}


@pytest.mark.parametrize("bad", sorted(BAD_READS))
def test_bad_entry_gives_back_every_entry(ring, rfd, bad):
    ring.prep_nop(user_data="before")
    bufs = [bytearray(8) for _ in range(4)]
    tokens = [Token() for _ in range(5)]
    base_b = [sys.getrefcount(b) for b in bufs]
    base_t = [sys.getrefcount(t) for t in tokens]
    for pos in (0, 2, 4):    # first, in the middle, last
        good = [(rfd, b, 8 * i) for i, b in enumerate(bufs)]
        args = good[:pos] + [BAD_READS[bad](rfd)] + good[pos:]
        got = call_error(ring.prep_many, "read", args, user_data=tokens)
        # the very error the entry's own fast form raises
        want = call_error(ring.prep_read, *args[pos], user_data="alone")
        assert got == want, pos
        del args, good
        assert ring.sq_ready() == 1 and ring.in_flight() == 1, pos
        assert [sys.getrefcount(b) for b in bufs] == base_b, "a given-back entry kept its buffer"
        assert [sys.getrefcount(t) for t in tokens] == base_t, "a given-back entry kept its user data"
        assert all(unexported(b) for b in bufs), pos
    assert ring.submit() == 1
    assert ring.reap(8, 1, columns=True) == (["before"], [0], [0])
    assert bufs == [bytearray(8)] * 4   # no read ran into them
    assert_nothing_queued(ring)


def test_given_back_entries_with_link_flag_do_not_link_the_next(ring, rfd):
    with pytest.raises(ValueError):
        ring.prep_many("read", [(closed_fd(), 4), (rfd, -1)], sqe_flags=IOSQE_IO_LINK, user_data="xy")
    ring.prep_read(closed_fd(), 4, user_data="fails")
    ring.prep_nop(user_data="independent")
    ring.submit()
    assert by_ud(ring.reap(2, 2, columns=True)) == {"fails": (-errno.EBADF, 0), "independent": (0, 0)}


def test_failed_batches_use_up_no_entries_or_slots():
    r = IoUring(4)
    try:
        for _ in range(200):
            with pytest.raises(ValueError):
                r.prep_many("read", [(0, 4), (0, 4), (0, 4), (0, -1)], user_data="abcd")
        assert r.sq_ready() == 0 and r.in_flight() == 0 and r.sq_space_left() == 4
        assert r.prep_many("nop", user_data=range(4)) == 4
        assert r.reap(4, 4, True, columns=True) == ([0, 1, 2, 3], [0] * 4, [0] * 4)
    finally:
        r.queue_exit()


# --------------------------------------------------------------------------
# the submission queue's room


def test_more_than_the_free_room_raises_and_runs_no_converter(rfd):
    r = IoUring(4)
    try:
        ran = []

        class Off:
            def __index__(self):
                ran.append(1)
                return 0

        r.prep_nop(user_data="kept")
        token = Token()
        base = sys.getrefcount(token)
        err = call_error(r.prep_many, "read", [(rfd, 4, Off())] * 4, user_data=[token] * 4)
        assert err[0] is SubmissionQueueFull
        assert "4 entries asked, 3 free" in err[1]
        assert issubclass(SubmissionQueueFull, RuntimeError)
        assert ran == [], "a converter ran for a batch that could not fit"
        assert sys.getrefcount(token) == base
        assert r.sq_ready() == 1 and r.sq_space_left() == 3
        assert r.prep_many("read", [(rfd, 4, Off())] * 3, user_data=[token] * 3) == 3   # exactly the room
        assert ran == [1, 1, 1]
        assert r.sq_space_left() == 0
        with pytest.raises(SubmissionQueueFull):
            r.prep_many("nop", user_data=["one more"])
        assert r.prep_many("nop", []) == 0   # nothing asked: fits
        assert r.submit() == 4
        uds, res, _ = r.reap(8, 4, columns=True)
        assert uds[0] == "kept" and all(u is token for u in uds[1:])
        assert sorted(res[1:]) == [TMP_CONTENT[:4]] * 3
    finally:
        r.queue_exit()


def test_a_full_queue_fits_after_submit():
    r = IoUring(8)
    try:
        assert r.prep_many("nop", user_data=range(8)) == 8
        with pytest.raises(SubmissionQueueFull):
            r.prep_many("nop", user_data=[8])
        assert r.submit() == 8
        assert r.prep_many("nop", user_data=range(8, 16)) == 8
        assert r.submit() == 8
        uds, res, flags = r.reap(16, 16, columns=True)
        assert uds == list(range(16)) and res == [0] * 16 and flags == [0] * 16
    finally:
        r.queue_exit()


# --------------------------------------------------------------------------
# sqe_flags, buf_group and personality apply to every entry


def test_io_link_applies_to_every_entry(ring, rfd):
    # the head fails: the rest of the chain is cancelled, the last too,
    # which only happens if the middle entry carries IOSQE_IO_LINK as well
    ring.prep_many("read", [(closed_fd(), 4, 0), (rfd, 4, 0), (rfd, 4, 4)],
                   sqe_flags=IOSQE_IO_LINK, user_data=["head", "mid", "last"])
    ring.prep_read(rfd, 4, 8, user_data="after")   # the last entry links to the next one too
    ring.prep_read(rfd, 4, 12, user_data="free")
    ring.submit()
    got = by_ud(ring.reap(5, 5, columns=True))
    assert got == {"head": (-errno.EBADF, 0), "mid": (-errno.ECANCELED, 0),
                   "last": (-errno.ECANCELED, 0), "after": (-errno.ECANCELED, 0),
                   "free": (TMP_CONTENT[12:16], 0)}


def test_cqe_skip_success_on_a_linked_batch_posts_only_the_last(ring):
    tokens = [Token() for _ in range(4)]
    refs = [weakref.ref(t) for t in tokens]
    ring.prep_many("nop", user_data=tokens + ["last"], sqe_flags=IOSQE_IO_LINK | IOSQE_CQE_SKIP_SUCCESS)
    del tokens
    assert ring.in_flight() == 5
    ring.submit()
    # the last of the chain has no successor to vouch for it: it posts
    assert ring.reap(8, 1, columns=True) == (["last"], [0], [0])
    assert ring.in_flight() == 0
    assert ring.wait_cqe(timeout=0.05) is None
    gc.collect()
    assert [r() for r in refs] == [None] * 4, "a skipped entry kept its user data"


def test_a_skipping_chain_after_plain_entries_in_one_submit(ring):
    # the flush's first pass takes plain entries; the chain's bookkeeping
    # starts at the first linked one and must not see the plain ones as
    # part of it
    tokens = [Token() for _ in range(3)]
    refs = [weakref.ref(t) for t in tokens]
    ring.prep_many("nop", user_data=["p1", "p2"])
    ring.prep_many("nop", user_data=tokens, sqe_flags=IOSQE_IO_LINK | IOSQE_CQE_SKIP_SUCCESS)
    ring.prep_nop(user_data="end")      # the chain's last: it vouches for the three
    ring.prep_nop(user_data="p3")
    del tokens
    assert ring.in_flight() == 7
    ring.submit()                       # NOPs complete inside the submit
    assert sorted(ring.reap(8, columns=True)[0]) == ["end", "p1", "p2", "p3"]
    assert ring.in_flight() == 0
    assert ring.wait_cqe(timeout=0.05) is None
    gc.collect()
    assert [r() for r in refs] == [None] * 3, "a skipped entry kept its user data"


def test_cqe_skip_success_alone_every_entry_still_posts(ring):
    ring.prep_many("nop", user_data=["a", "b", "c"], sqe_flags=IOSQE_CQE_SKIP_SUCCESS)
    ring.submit()
    assert ring.reap(4, 3, columns=True) == (["a", "b", "c"], [0, 0, 0], [0, 0, 0])
    assert ring.in_flight() == 0


def test_fixed_file_flag_applies_to_every_entry(ring, tmp_file):
    fd = os.open(tmp_file, os.O_RDONLY)
    try:
        ring.register_files([fd])
    finally:
        os.close(fd)
    ring.prep_many("read", [(0, 8, 0), (0, 8, 16), (5, 8, 0)], sqe_flags=IOSQE_FIXED_FILE,
                   user_data=["a", "b", "no slot"])
    ring.submit()
    assert by_ud(ring.reap(3, 3, columns=True)) == {"a": (TMP_CONTENT[:8], 0), "b": (TMP_CONTENT[16:24], 0),
                                             "no slot": (-errno.EBADF, 0)}


def test_personality_applies_to_every_entry(ring):
    pid = ring.register_personality()
    try:
        ring.prep_many("nop", user_data=["r1", "r2", "r3"], personality=pid)
        ring.submit()
        assert ring.reap(3, 3, columns=True) == (["r1", "r2", "r3"], [0] * 3, [0] * 3)
    finally:
        ring.unregister_personality(pid)
    # a personality the ring does not know: the kernel refuses each entry as
    # it is submitted (it stops at the first; submit() hands in the rest)
    ring.prep_many("nop", user_data=["g1", "g2", "g3"], personality=pid)
    assert ring.submit() == 3
    assert reap_cols(ring, 3) == (["g1", "g2", "g3"], [-errno.EINVAL] * 3, [0] * 3)
    assert ring.in_flight() == 0


@pytest.fixture
def unix_pairs():
    pairs = [socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(3)]
    yield pairs
    for a, b in pairs:
        a.close()
        b.close()


def test_buffer_select_and_buf_group_apply_to_every_entry(ring, unix_pairs):
    need(ring, "provide_buffers")
    ring.prep_provide_buffers(bytearray(3 * 32), 3, 5, 0, user_data="provide")
    ring.submit()
    assert ring.reap(1, 1, columns=True) == (["provide"], [0], [0])
    for i, (a, _) in enumerate(unix_pairs):
        a.sendall(b"message %d" % i)
    ring.prep_many("recv", [(b, 32) for _, b in unix_pairs], user_data=[0, 1, 2],
                   sqe_flags=IOSQE_BUFFER_SELECT, buf_group=5)
    ring.submit()
    uds, res, flags = reap_cols(ring, 3)
    got = dict(zip(uds, res))
    assert got == {i: b"message %d" % i for i in range(3)}
    assert all(f & IORING_CQE_F_BUFFER for f in flags)
    assert sorted(f >> IORING_CQE_BUFFER_SHIFT for f in flags) == [0, 1, 2]   # each its own buffer


def test_buf_group_of_a_buffer_ring_for_every_entry(ring, unix_pairs):
    ring.setup_buf_ring(7, 4, 64)
    try:
        for rnd in range(3):   # more receives than buffers: each goes back at reap
            for i, (a, _) in enumerate(unix_pairs):
                a.sendall(b"round %d pair %d" % (rnd, i))
            ring.prep_many("recv", [(b, 64) for _, b in unix_pairs], user_data=[0, 1, 2],
                           sqe_flags=IOSQE_BUFFER_SELECT, buf_group=7)
            ring.submit()
            uds, res, flags = reap_cols(ring, 3)
            assert dict(zip(uds, res)) == {i: b"round %d pair %d" % (rnd, i) for i in range(3)}
            assert all(f & IORING_CQE_F_BUFFER and (f >> IORING_CQE_BUFFER_SHIFT) < 4 for f in flags)
        assert ring.in_flight() == 0
    finally:
        ring.free_buf_ring(7)


# --------------------------------------------------------------------------
# reap(columns=True)


def test_reap_in_columns_equals_reap_for_the_same_workload(ring, pipe, tmp_file):
    r, w = pipe

    def workload():
        os.write(w, b"0123456789abcdef")
        ring.prep_many("read", [(r, 4), (r, bytearray(4)), (r, 8)], user_data=["r0", "r1", "r2"])
        ring.prep_many("nop", user_data=["n0", "n1"])
        ring.prep_many("read", [(closed_fd(), 4), (w, 4)], user_data=["bad0", "bad1"])
        ring.submit_and_wait(7)         # all inline, in order
        # statx runs in an io-wq worker: after the others, for one order
        ring.prep_many("statx", [(AT_FDCWD, tmp_file)], user_data=["stat"])
        ring.submit_and_wait(8)

    workload()
    tuples = ring.reap(16)
    workload()
    cols = ring.reap(16, columns=True)
    assert type(cols) is tuple and len(cols) == 3 and all(type(c) is list for c in cols)
    assert cols == as_columns(tuples)
    assert cols[0] == ["r0", "r1", "r2", "n0", "n1", "bad0", "bad1", "stat"]
    assert cols[1][:7] == [b"0123", 4, b"89abcdef", 0, 0, -errno.EBADF, -errno.EBADF]
    assert isinstance(cols[1][7], os.stat_result) and cols[1][7].st_size == 4096
    assert cols[2] == [0] * 8
    assert ring.cq_ready() == 0 and ring.in_flight() == 0


def test_reap_in_columns_count_limit_and_order(ring):
    ring.prep_many("nop", user_data=range(5))
    ring.submit_and_wait(5)
    assert ring.reap(2, columns=True) == ([0, 1], [0, 0], [0, 0])
    assert ring.cq_ready() == 3
    assert ring.reap(1, columns=True) == ([2], [0], [0])
    assert ring.reap(10, columns=True) == ([3, 4], [0, 0], [0, 0])
    assert ring.reap(10, columns=True) == ([], [], [])
    assert ring.cq_ready() == 0 and ring.in_flight() == 0
    # and taking turns with reap()
    ring.prep_many("nop", user_data=range(6))
    ring.submit_and_wait(6)
    assert ring.reap(2) == [(0, 0, 0), (1, 0, 0)]
    assert ring.reap(2, columns=True) == ([2, 3], [0, 0], [0, 0])
    assert ring.reap(8) == [(4, 0, 0), (5, 0, 0)]


def test_reap_in_columns_zero_and_empty_take_nothing(ring):
    assert ring.reap(8, columns=True) == ([], [], [])
    ring.prep_nop(user_data="kept")
    ring.submit_and_wait(1)
    assert ring.reap(0, columns=True) == ([], [], [])
    assert ring.reap(0, 0, True, columns=True) == ([], [], [])
    assert ring.cq_ready() == 1
    ring.prep_timeout(30, user_data="long")
    ring.submit()
    assert ring.reap(8, columns=True) == (["kept"], [0], [0])   # does not wait for the timeout
    assert ring.in_flight() == 1


def test_reap_in_columns_marks_seen_and_returns_fresh_lists(ring):
    ring.prep_many("nop", user_data=["a", "b"])
    ring.submit_and_wait(2)
    cols = ring.reap(2, columns=True)
    assert ring.cq_ready() == 0 and ring.peek_cqe() is None
    cols[0].append("mine")     # the caller's own lists
    cols[1].clear()
    ring.prep_nop(user_data="c")
    ring.submit_and_wait(1)
    assert ring.reap(2, columns=True) == (["c"], [0], [0])


def test_reap_in_columns_queue_then_direct(ring):
    # completions already taken into the ring's queue (peek_cqe) come first,
    # then those still in the kernel's CQ
    ring.prep_many("nop", user_data=["q0", "q1", "q2"])
    ring.submit_and_wait(3)
    peeked = ring.peek_cqe()
    assert peeked.get_data() == "q0"
    ring.prep_many("nop", user_data=["d0", "d1", "d2"])
    ring.submit_and_wait(3)
    assert ring.cq_ready() == 6
    assert ring.reap(4, columns=True) == (["q0", "q1", "q2", "d0"], [0] * 4, [0] * 4)
    assert ring.cq_ready() == 2
    assert ring.reap(10, columns=True) == (["d1", "d2"], [0, 0], [0, 0])
    ring.cqe_seen(peeked)    # already seen by reap(columns=True): nothing happens
    assert ring.cq_ready() == 0
    assert peeked.get_data() == "q0" and peeked.res() == 0


def test_reap_in_columns_after_peek_batch_and_cq_advance(ring):
    ring.prep_many("nop", user_data=range(4))
    ring.submit_and_wait(4)
    assert [c.get_data() for c in ring.peek_batch_cqe(4)] == [0, 1, 2, 3]
    ring.cq_advance(1)
    assert ring.reap(2, columns=True) == ([1, 2], [0, 0], [0, 0])
    assert [c.get_data() for c in ring.peek_batch_cqe(4)] == [3]
    assert ring.reap(4, columns=True) == ([3], [0], [0])


def test_reap_in_columns_with_a_result_maker_between_direct_ones(ring, tmp_file):
    # a linked chain keeps the order: nop, statx (its value needs a Cqe:
    # it goes through the queue), nop
    ring.prep_nop(sqe_flags=IOSQE_IO_LINK, user_data="n1")
    ring.prep_statx(AT_FDCWD, tmp_file, sqe_flags=IOSQE_IO_LINK, user_data="stat")
    ring.prep_nop(user_data="n2")
    ring.submit_and_wait(3)
    uds, res, flags = ring.reap(2, columns=True)
    assert uds == ["n1", "stat"] and res[0] == 0 and flags == [0, 0]
    assert isinstance(res[1], os.stat_result) and res[1].st_size == 4096
    assert ring.cq_ready() == 1
    assert ring.reap(2, columns=True) == (["n2"], [0], [0])
    # the same chain in one call
    ring.prep_nop(sqe_flags=IOSQE_IO_LINK, user_data="n1")
    ring.prep_statx(AT_FDCWD, tmp_file, sqe_flags=IOSQE_IO_LINK, user_data="stat")
    ring.prep_nop(user_data="n2")
    ring.submit_and_wait(3)
    uds, res, flags = ring.reap(8, columns=True)
    assert uds == ["n1", "stat", "n2"] and res[0] == 0 and res[2] == 0
    assert isinstance(res[1], os.stat_result)


def test_reap_in_columns_submit_true_and_wait_nr(ring):
    ring.prep_many("nop", user_data=range(3))
    assert ring.sq_ready() == 3
    assert ring.reap(8, 3, True, columns=True) == ([0, 1, 2], [0] * 3, [0] * 3)
    assert ring.sq_ready() == 0 and ring.cq_ready() == 0
    # wait_nr is a minimum: what is ready comes, up to count
    ring.prep_many("nop", user_data=range(4))
    assert ring.reap(3, wait_nr=1, submit=True, columns=True) == ([0, 1, 2], [0] * 3, [0] * 3)
    assert ring.reap(3, 1, columns=True) == ([3], [0], [0])
    # with nothing queued it only waits
    ring.prep_many("timeout", [(0.01,), (0.02,)], user_data=["t1", "t2"])
    ring.submit()
    assert ring.reap(2, 2, submit=True, columns=True) == (["t1", "t2"], [-errno.ETIME] * 2, [0, 0])


def test_reap_in_columns_submit_counts_completions_already_reaped(ring):
    ring.prep_nop(user_data="old")
    ring.submit_and_wait(1)
    assert ring.peek_cqe() is not None        # now in the queue of unseen ones
    ring.prep_many("nop", user_data=["new"])
    assert ring.reap(2, 2, submit=True, columns=True) == (["old", "new"], [0, 0], [0, 0])


def test_reap_in_columns_wait_with_nothing_in_flight_blocks_as_liburing_does(ring):
    # another thread or a message from another ring may still end it; a
    # signal handler interrupts it and the ring stays usable
    blocks(functools.partial(ring.reap, columns=True), 1, 1)
    blocks(functools.partial(ring.reap, columns=True), 1, 1, True)
    ring.prep_many("nop", user_data=["unsubmitted"])
    assert ring.reap(1, 1, True, columns=True) == (["unsubmitted"], [0], [0])


def test_reap_in_columns_argument_errors_take_nothing(ring):
    ring.prep_nop(user_data="stays")
    ring.submit_and_wait(1)
    for args, kwargs, exc, msg in [
        ((2,), {"wait_nr": 3}, ValueError, "reap(): wait_nr must be <= count"),
        ((-1,), {}, ValueError, "reap(): count must be >= 0"),
        ((1,), {"wait_nr": -1}, ValueError, "reap(): wait_nr must be >= 0"),
        (("1",), {}, TypeError, None),
        ((1.0,), {}, TypeError, None),
        ((None,), {}, TypeError, None),
        ((1, "0"), {}, TypeError, None),
        ((), {}, TypeError, None),
        ((1, 0, 0, 0), {}, TypeError, None),
        ((1,), {"timeout": 1}, TypeError, None),
        ((2 ** 64,), {}, OverflowError, None),
    ]:
        err = call_error(ring.reap, *args, columns=True, **kwargs)
        assert err[0] is exc, (args, kwargs, err)
        if msg is not None:
            assert err[1] == msg, (args, kwargs, err)
        assert ring.cq_ready() == 1, (args, kwargs)
    assert ring.reap(1, columns=True) == (["stays"], [0], [0])


def test_reap_in_columns_more_than_64_at_once():
    r = IoUring(256)
    try:
        for rnd in range(2):
            assert r.prep_many("nop", user_data=[(rnd, i) for i in range(150)]) == 150
            uds, res, flags = r.reap(1000, 150, True, columns=True)
            assert uds == [(rnd, i) for i in range(150)]
            assert res == [0] * 150 and flags == [0] * 150
            assert r.in_flight() == 0 and r.cq_ready() == 0
    finally:
        r.queue_exit()


def test_reap_in_columns_through_a_completion_queue_overflow():
    # a 4-entry ring has 8 CQ entries: 20 unreaped completions overflow into
    # the kernel's backlog and must all come back, in order
    r = IoUring(4)
    try:
        for batch in range(5):
            r.prep_many("nop", user_data=range(batch * 4, batch * 4 + 4))
            assert r.submit() == 4
        assert r.reap(20, 20, columns=True) == (list(range(20)), [0] * 20, [0] * 20)
        for batch in range(5):
            r.prep_many("nop", user_data=range(batch * 4, batch * 4 + 4))
            r.submit()
        uds = []
        for _ in range(50):   # bounded: repeated calls until an empty batch
            more = r.reap(100, columns=True)
            if not more[0]:
                break
            uds += more[0]
        assert uds == list(range(20))
        assert r.in_flight() == 0
    finally:
        r.queue_exit()


def test_reap_in_columns_gives_the_raw_user_data_of_a_msg_ring(ring):
    need(ring, "msg_ring")
    other = IoUring(8)
    try:
        big = 2 ** 63 - 2 ** 32 + 5
        other.prep_many("msg_ring", [(ring, 1234, 0xDEADBEEF), (ring.fileno(), 7, big)],
                        user_data=["s1", "s2"])
        assert other.reap(2, 2, True, columns=True) == (["s1", "s2"], [0, 0], [0, 0])
        uds, res, flags = reap_cols(ring, 2)
        assert (uds, res, flags) == ([0xDEADBEEF, big], [1234, 7], [0, 0])
        assert all(type(u) is int for u in uds)
    finally:
        other.queue_exit()


# --------------------------------------------------------------------------
# lifetimes: what only the batch was given stays alive while the kernel
# may use it


def test_read_buffers_given_only_to_prep_many_stay_pinned(ring, pipe):
    r, w = pipe
    bufs = [Buf(8) for _ in range(3)]
    refs = [weakref.ref(b) for b in bufs]
    ring.prep_many("read", [(r, b) for b in bufs], user_data=["a", "b", "c"])
    ring.submit()
    del bufs
    gc.collect()
    assert all(ref() is not None for ref in refs), "read buffer freed while the kernel may write it"
    assert ring.reap(4, columns=True) == ([], [], [])
    os.write(w, b"x" * 24)
    uds, res, flags = reap_cols(ring, 3)
    assert sorted(uds) == ["a", "b", "c"] and res == [8, 8, 8] and flags == [0] * 3
    assert [ref() for ref in refs] == [None] * 3   # released at reap, no collection needed


def test_read_buffers_dropped_before_submit(ring, pipe):
    r, w = pipe
    os.write(w, b"queued first")
    bufs = [Buf(6), Buf(6)]
    refs = [weakref.ref(b) for b in bufs]
    ring.prep_many("read", [(r, b) for b in bufs], user_data=[1, 2])
    del bufs
    gc.collect()
    assert all(ref() is not None for ref in refs)
    ring.submit()
    uds, res, _ = reap_cols(ring, 2)
    assert sorted(uds) == [1, 2] and res == [6, 6]
    assert [ref() for ref in refs] == [None, None]


def test_memoryview_slices_pin_the_bytearray_until_reaped(ring, pipe):
    r, w = pipe
    big = bytearray(12)
    base = sys.getrefcount(big)
    ring.prep_many("read", [(r, memoryview(big)[i * 4:(i + 1) * 4]) for i in range(3)],
                   user_data=[0, 1, 2])
    ring.submit()
    with pytest.raises(BufferError):
        big.extend(b"in flight")
    assert sys.getrefcount(big) > base
    os.write(w, b"AAAABBBBCCCC")
    uds, res, _ = reap_cols(ring, 3)
    assert sorted(uds) == [0, 1, 2] and res == [4, 4, 4]
    # each read filled its own slice with one whole 4-byte chunk
    assert sorted(bytes(big[i * 4:(i + 1) * 4]) for i in range(3)) == [b"AAAA", b"BBBB", b"CCCC"]
    assert sys.getrefcount(big) == base
    big.extend(b"!")    # the slices went with their records
    assert len(big) == 13


def test_write_sources_kept_alive_and_unchanged(ring, pipe):
    r, w = pipe
    filled = fill_pipe(w)   # the writes wait for room
    maps = [mmap.mmap(-1, 4096), mmap.mmap(-1, 4096)]
    maps[0][:] = TMP_CONTENT
    maps[1][:] = bytes(reversed(TMP_CONTENT))
    refs = [weakref.ref(m) for m in maps]
    ring.prep_many("write", [(w, m) for m in maps], user_data=["w0", "w1"])
    ring.submit()
    assert ring.wait_cqe(timeout=0.05) is None
    del maps
    gc.collect()
    assert all(ref() is not None for ref in refs), "write source freed while the kernel may read it"
    assert read_exactly(r, filled) == b"\xaa" * filled
    uds, res, flags = reap_cols(ring, 2)
    assert sorted(uds) == ["w0", "w1"] and res == [4096, 4096] and flags == [0, 0]
    data = read_exactly(r, 8192)
    a, b = TMP_CONTENT, bytes(reversed(TMP_CONTENT))
    assert data in (a + b, b + a)
    gc.collect()
    assert [ref() for ref in refs] == [None, None]


def test_user_data_kept_while_in_flight_released_after_reap_in_columns(ring):
    tokens = [Token(), Token()]
    refs = [weakref.ref(t) for t in tokens]
    ring.prep_many("timeout", [(0.01,), (0.02,)], user_data=tokens)
    ring.submit()
    del tokens
    gc.collect()
    assert all(ref() is not None for ref in refs), "user data freed while in flight"
    cols = ring.reap(2, 2, columns=True)
    assert {id(u) for u in cols[0]} == {id(ref()) for ref in refs} and cols[1] == [-errno.ETIME] * 2
    del cols
    assert [ref() for ref in refs] == [None, None], "user data kept after reap(columns=True)"


def test_queue_exit_with_batch_reads_in_flight(pipe):
    r = IoUring(4)
    bufs = [Buf(8), Buf(8)]
    tokens = [Token(), Token()]
    refs = [weakref.ref(o) for o in bufs + tokens]
    r.prep_many("read", [(pipe[0], b) for b in bufs], user_data=tokens)
    r.submit()
    del bufs, tokens
    r.queue_exit()   # cancels, waits for the completions, then releases
    gc.collect()
    assert [ref() for ref in refs] == [None] * 4
    os.write(pipe[1], b"late")   # nobody reads into freed memory
    os.set_blocking(pipe[0], False)
    assert os.read(pipe[0], 16) == b"late"


def test_no_reference_left_after_many_batches(ring, rfd):
    token = Token()
    buf = bytearray(16)
    bt, bb = sys.getrefcount(token), sys.getrefcount(buf)
    for _ in range(20):
        ring.prep_many("read", [(rfd, buf, 0), (rfd, 16, 0)], user_data=[token, token])
        cols = ring.reap(2, 2, True, columns=True)
        assert sorted(map(repr, cols[1])) == sorted([repr(16), repr(TMP_CONTENT[:16])])
        assert cols[0] == [token, token]
        del cols
    assert sys.getrefcount(token) == bt
    assert sys.getrefcount(buf) == bb


# --------------------------------------------------------------------------
# Python code a converter runs (__index__, fileno()) that uses the same ring
# in the middle of a batch


def test_converter_takes_an_entry_and_a_later_entry_fails(ring, rfd):
    held = []

    class Fd:
        def fileno(self):
            sqe = ring.get_sqe()          # an entry after the batch's first two
            sqe.set_data("foreign")
            held.append(sqe)
            return rfd

    with pytest.raises(ValueError):
        ring.prep_many("read", [(rfd, 4, 0), (Fd(), 4, 4), (rfd, -1)], user_data=["a", "b", "c"])
    # "c" was given back; "a" and "b" come before the foreign entry and
    # cannot be, so they stay, whole, with their user data
    assert ring.sq_ready() == 3 and ring.in_flight() == 3
    assert ring.submit() == 3
    assert by_ud(ring.reap(8, 3, columns=True)) == {"a": (TMP_CONTENT[:4], 0), "b": (TMP_CONTENT[4:8], 0),
                                             "foreign": (0, 0)}
    assert_nothing_queued(ring)


def test_converter_takes_an_entry_and_the_batch_succeeds(ring, rfd):
    class Off:
        def __index__(self):
            ring.prep_nop(user_data="inner")
            return 8

    assert ring.prep_many("read", [(rfd, 4, 0), (rfd, 4, Off()), (rfd, 4, 16)], user_data="abc") == 3
    assert ring.sq_ready() == 4
    ring.submit()
    assert by_ud(ring.reap(8, 4, columns=True)) == {"a": (TMP_CONTENT[:4], 0), "b": (TMP_CONTENT[8:12], 0),
                                             "c": (TMP_CONTENT[16:20], 0), "inner": (0, 0)}


def test_converter_runs_a_nested_batch(ring, rfd):
    class Off:
        def __init__(self, fail):
            self.fail = fail

        def __index__(self):
            if self.fail:   # the inner batch fails and gives its own entries back
                try:
                    ring.prep_many("read", [(rfd, 4), (rfd, -1)], user_data="xy")
                except ValueError:
                    pass
            else:
                ring.prep_many("nop", user_data=["i0", "i1"])
            return 0

    assert ring.prep_many("read", [(rfd, 4, Off(True)), (rfd, 4, Off(False))], user_data="ab") == 2
    assert ring.sq_ready() == 4
    ring.submit()
    assert by_ud(ring.reap(8, 4, columns=True)) == {"a": (TMP_CONTENT[:4], 0), "b": (TMP_CONTENT[:4], 0),
                                             "i0": (0, 0), "i1": (0, 0)}


def test_converter_fills_the_queue_in_the_middle(rfd):
    r = IoUring(8)
    try:
        class Off:
            def __index__(self):
                while r.sq_space_left():
                    r.prep_nop(user_data="fill")
                return 0

        with pytest.raises(SubmissionQueueFull):
            r.prep_many("read", [(rfd, 4, 0), (rfd, 4, Off()), (rfd, 4, 0)], user_data="abc")
        assert r.sq_ready() == 8 and r.in_flight() == 8
        uds, res, _ = r.reap(8, 8, True, columns=True)
        assert Counter(uds) == Counter({"fill": 6, "a": 1, "b": 1})
        assert all(x == (TMP_CONTENT[:4] if u in ("a", "b") else 0) for u, x in zip(uds, res))
        assert r.in_flight() == 0
    finally:
        r.queue_exit()


def test_converter_that_raises_in_the_middle_gives_everything_back(ring, rfd):
    err = call_error(ring.prep_many, "read", [(rfd, 4), (rfd, 4), (FilenoObject(CustomError), 4)],
                     user_data="abc")
    assert err == (CustomError, "from fileno")
    assert_nothing_queued(ring)


# -- Each of these runs in a child process, as a regression would crash the
# -- interpreter or leave the ring waiting at teardown.

SUBMIT_IN_BATCH_CHILD = r"""
import json, os, sys, time
import py_io_uring as P
r = P.IoUring(4)
rfd, wfd = os.pipe()
bufs = [bytearray(4) for _ in range(3)]
base = [sys.getrefcount(b) for b in bufs]
log = []

class Off:
    def __index__(self):
        log.append(r.submit())            # flushes entry 0 (a read) and this one (still a NOP)
        while r.sq_space_left():          # the same SQE memory again, for other entries
            r.prep_nop(user_data="inner")
        return -1

try:
    r.prep_many("read", [(rfd, bufs[0]), (rfd, bufs[1], Off()), (rfd, bufs[2])], user_data=["a", "b", "c"])
    raised = None
except Exception as e:
    raised = type(e).__name__
sq_ready = r.sq_ready()
r.submit()
got = []
deadline = time.monotonic() + 0.3
while time.monotonic() < deadline:
    got += list(zip(*r.reap(16, columns=True)))
    time.sleep(0.01)
pinned = [c > n for c, n in zip([sys.getrefcount(b) for b in bufs], base)]
os.write(wfd, b"abcd")
deadline = time.monotonic() + 2.0
while time.monotonic() < deadline and r.in_flight():
    got += list(zip(*r.reap(16, columns=True)))
    time.sleep(0.01)
got += list(zip(*r.reap(16, columns=True)))
print(json.dumps({"raised": raised, "submitted": log, "sq_ready": sq_ready,
                  "got": sorted([repr(u), repr(v), f] for u, v, f in got),
                  "pinned": pinned, "in_flight": r.in_flight(),
                  "bufs": [b.decode("latin-1") for b in bufs]}))
sys.stdout.flush()
os._exit(0)                               # a stuck record would make teardown wait
"""


def test_a_converter_that_submits_in_the_middle_of_a_batch(run_py):
    proc = run_py(SUBMIT_IN_BATCH_CHILD, timeout=60)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    out = json.loads(proc.stdout)
    assert out["raised"] == "RuntimeError", out        # entry 1 was flushed before it was written
    assert out["submitted"] == [2], out
    assert out["sq_ready"] == 4, out                   # the converter's four nops, nothing of the batch
    # entry 0 had been submitted: it stays a real read, with its user data;
    # entry 1 went in as a NOP without data; entry 2 was never queued
    assert out["got"] == sorted([["'a'", "4", 0], ["None", "0", 0]] + [["'inner'", "0", 0]] * 4), out
    assert out["pinned"] == [True, False, False], out  # only the read in flight held its buffer
    assert out["bufs"] == ["abcd", "\0" * 4, "\0" * 4], out
    assert out["in_flight"] == 0, out


QUEUE_EXIT_IN_BATCH_CHILD = r"""
import json, os, sys
import py_io_uring as P
r = P.IoUring(8)
rfd, wfd = os.pipe()
bufs = [bytearray(4) for _ in range(3)]
base = [sys.getrefcount(b) for b in bufs]

class Fd:
    def fileno(self):
        r.queue_exit()
        if REINIT:
            r.queue_init(2)
            r.prep_nop(user_data="x")
            r.prep_nop(user_data="y")
        return rfd

try:
    r.prep_many("read", [(rfd, bufs[0]), (Fd(), bufs[1]), (rfd, bufs[2])], user_data=["a", "b", "c"])
    raised = None
except Exception as e:
    raised = type(e).__name__
out = {"raised": raised, "pinned": [c > n for c, n in zip([sys.getrefcount(b) for b in bufs], base)]}
try:
    out["sq_ready"] = r.sq_ready()
    out["reaped"] = r.reap(8, r.in_flight(), True, columns=True)
except Exception as e:
    out["after"] = type(e).__name__
os.write(wfd, b"late")
os.set_blocking(rfd, False)
out["pipe"] = os.read(rfd, 16).decode()
print(json.dumps(out))
"""


@pytest.mark.parametrize("reinit", [False, True], ids=["closed", "reopened"])
def test_a_converter_that_closes_the_ring_in_the_middle_of_a_batch(run_py, reinit):
    proc = run_py("REINIT = %r\n" % reinit + QUEUE_EXIT_IN_BATCH_CHILD, timeout=60)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    out = json.loads(proc.stdout)
    assert out["raised"] == "RuntimeError", out
    assert out["pinned"] == [False, False, False], out   # queue_exit ended entry 0 too
    if reinit:
        # the new ring holds the converter's entries alone
        assert out["sq_ready"] == 2, out
        assert out["reaped"] == [["x", "y"], [0, 0], [0, 0]], out
    else:
        assert out["after"] == "ValueError", out
    assert out["pipe"] == "late", out                    # no read of the batch ran


REAP_COLUMNS_REENTRY_CHILD = r"""
import gc, json, os, sys
import py_io_uring as P
r = P.IoUring(16)
inner = []

class Bomb:
    def __del__(self):
        try:
            inner.append(r.reap(100, columns=True))
        except Exception as e:
            inner.append(type(e).__name__)

null = os.open("/dev/null", os.O_WRONLY)
# results above 256 are new int objects: allocations inside the loop
r.prep_many("write", [(null, b"x" * (300 + i)) for i in range(4)], user_data=["w%d" % i for i in range(4)])
r.submit_and_wait(4)
if PATH == "queue":
    r.wait_cqe_nr(4)              # now in the ring's queue of unseen completions
gc.disable()
b = Bomb(); b.me = b; del b       # cyclic garbage with a finalizer
keep = [(i, i, i) for i in range(5000)]
gc.enable()
gc.set_threshold(1)               # reap(columns=True)'s first allocation runs a collection
outer = r.reap(4, columns=True)
gc.set_threshold(700)
pairs = list(zip(outer[0], outer[1]))
for x in inner:
    if isinstance(x, tuple):
        pairs += list(zip(x[0], x[1]))
print(json.dumps({"pairs": sorted(pairs), "inner": [x for x in inner if not isinstance(x, tuple)],
                  "cq_ready": r.cq_ready()}))
"""


@pytest.mark.parametrize("path", ["queue", "direct"])
def test_a_finalizer_reaping_during_reap_in_columns(run_py, path):
    proc = run_py("PATH = %r\n" % path + REAP_COLUMNS_REENTRY_CHILD, timeout=60)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    out = json.loads(proc.stdout.splitlines()[-1])
    # every completion exactly once, in one of the two calls, with its own result
    assert out["pairs"] == [["w%d" % i, 300 + i] for i in range(4)], out
    assert set(out["inner"]) <= {"RuntimeError"}, out
    assert out["cq_ready"] == 0, out


OTHER_THREAD_FLUSH_CHILD = r"""
import json, os, sys, threading, time
import py_io_uring as P
r = P.IoUring(8)
rfd, wfd = os.pipe()
gate_r, gate_w = os.pipe()
os.write(wfd, b"abcdefgh")
r.prep_read(gate_r, 1, user_data="gate")     # keeps the other thread waiting
state = {}

def waiter():
    state["waited"] = r.submit_and_wait(3)

class Off:
    def __index__(self):
        t = threading.Thread(target=waiter)
        t.start()
        state["thread"] = t
        for _ in range(5000):                  # until the other thread flushed the queue
            if r.sq_ready() == 0:
                break
            time.sleep(0.001)
        state["flushed"] = r.sq_ready() == 0
        return -1

buf = bytearray(4)
try:
    state["returned"] = r.prep_many("read", [(rfd, 4), (rfd, buf, Off())], user_data=["first", "second"])
    state["raised"] = None
except Exception as e:
    state["raised"] = type(e).__name__
os.write(gate_w, b"g")
state.pop("thread").join(10)
got = []
deadline = time.monotonic() + 5
while r.in_flight() and time.monotonic() < deadline:
    got += list(zip(*r.reap(8, columns=True)))
    time.sleep(0.01)
got += list(zip(*r.reap(8, columns=True)))
state["got"] = sorted([repr(u), repr(v)] for u, v, f in got)
state["buf"] = buf.decode("latin-1")
state["in_flight"] = r.in_flight()
print(json.dumps(state))
sys.stdout.flush()
os._exit(0)
"""


def test_an_entry_flushed_by_another_thread_while_its_converter_ran(run_py):
    # a converter that lets another thread run (it releases the GIL) while
    # that thread's submit_and_wait() flushes the queue and waits
    proc = run_py(OTHER_THREAD_FLUSH_CHILD, timeout=60)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    out = json.loads(proc.stdout)
    assert out["flushed"] and out["waited"] == 3 and out["in_flight"] == 0, out   # it happened
    assert ["'first'", "b'abcd'"] in out["got"], out
    if out["raised"] is None:
        # success promises both reads
        assert out["returned"] == 2, out
        assert ["'second'", "4"] in out["got"] and out["buf"] == "efgh", out
    else:
        # or the entry it lost is refused, as when the converter submits itself
        assert out["raised"] == "RuntimeError", out
        assert out["buf"] == "\0" * 4, out


# --------------------------------------------------------------------------
# property: any mix of good and bad entries queues all of them or none


# bad entries: those prep_read refuses, and one prep_many refuses itself
BAD_KINDS = dict(BAD_READS, **{"not a tuple": lambda fd: [fd, 4]})

if hypothesis is not None:
    GOOD = st.tuples(st.just("good"), st.integers(0, 4200), st.integers(1, 64), st.booleans())
    BAD = st.tuples(st.sampled_from(sorted(BAD_KINDS)))
    ENTRY = st.one_of(GOOD, GOOD, GOOD, GOOD, GOOD, BAD)   # mostly good: a bad one in a long batch
    EXAMPLES = 2000 if os.environ.get("PY_IO_URING_FUZZ_PROFILE") == "fuzz" else 200

    # Hypothesis runs hundreds of batches per call already
    @pytest.mark.no_leakcheck
    @settings(max_examples=EXAMPLES, deadline=None, print_blob=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(prefill=st.integers(0, 3), entries=st.lists(ENTRY, max_size=10),
           data=st.sampled_from(["none", "tokens", "tokens", "tokens", "mismatch"]))
    def test_random_batches_are_all_or_nothing(rfd, prefill, entries, data):
        _check_batch(rfd, prefill, entries, data)
else:
    def test_random_batches_are_all_or_nothing():
        pytest.skip("hypothesis is not installed")


def _check_batch(rfd, prefill, entries, data):
    ring = IoUring(8)
    try:
        for i in range(prefill):
            ring.prep_nop(user_data=("pre", i))
        bufs, args, expect = [], [], []   # bufs: (buffer, offset, count)
        for e in entries:
            if e[0] == "good":
                _, off, length, into = e
                if into:
                    b = bytearray(b"?" * length)
                    count = max(0, min(length, 4096 - off))
                    bufs.append((b, off, count))
                    args.append((rfd, memoryview(b), off))
                    expect.append(count)
                else:
                    args.append((rfd, length, off))
                    expect.append(TMP_CONTENT[off:off + length])
            else:
                args.append(BAD_KINDS[e[0]](rfd))
                expect.append(None)
        n = len(args)
        tokens = [Token() for _ in range(n + (data == "mismatch"))]
        base = [sys.getrefcount(t) for t in tokens]
        uds = None if data == "none" else tokens
        # what the call must do, in the documented order of its checks:
        # (exception, message, or a part of it)
        if data == "mismatch":
            want = (ValueError, "%d args but %d user_data values" % (n, n + 1))
        elif any(type(a) is not tuple for a in args):
            want = (TypeError, "args[%d] must be a tuple" % [type(a) for a in args].index(list))
        elif n > 8 - prefill:
            want = (SubmissionQueueFull, "%d entries asked, %d free" % (n, 8 - prefill))
        elif None in expect:
            want = call_error(ring.prep_read, *args[expect.index(None)])   # the whole message
            assert ring.sq_ready() == prefill   # (that call queued nothing)
        else:
            want = None
        hypothesis.event("queued" if want is None else want[0].__name__)
        try:
            got = ring.prep_many("read", args, user_data=uds)
        except Exception as e:
            got = (type(e), str(e))
        del args
        if want is None:
            assert got == n
            assert ring.sq_ready() == prefill + n and ring.in_flight() == prefill + n
            cols = ring.reap(16, prefill + n, True, columns=True)
            assert Counter(map(repr, cols[1])) == Counter(map(repr, [0] * prefill + expect))
            if uds is not None:
                results = dict(zip(map(id, cols[0]), cols[1]))
                assert [results[id(t)] for t in tokens] == expect
            del cols
            for b, off, count in bufs:
                assert b == TMP_CONTENT[off:off + count] + b"?" * (len(b) - count)
        else:
            assert got[0] is want[0] and want[1] in got[1], (got, want)
            assert ring.sq_ready() == prefill and ring.in_flight() == prefill
            assert [sys.getrefcount(t) for t in tokens] == base
            assert all(unexported(b) for b, _, _ in bufs), "a given-back entry kept its buffer pinned"
            assert all(b == b"?" * len(b) for b, _, _ in bufs)
            assert ring.reap(16, prefill, True, columns=True) == (
                [("pre", i) for i in range(prefill)], [0] * prefill, [0] * prefill)
        assert ring.in_flight() == 0 and ring.sq_ready() == 0
    finally:
        ring.queue_exit()
