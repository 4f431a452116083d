"""The fast forms IoUring.prep_NAME(..., *, user_data=None, sqe_flags=0,
buf_group=0, personality=0) and IoUring.reap(count, wait_nr=0), against the
real kernel, as a way of queueing and reaping rather than as any one op: user
data and the common keywords, failures as negative errno ints, the order and
count rules of reap() and reap_one(), what a failing call leaves behind
(nothing), links and IOSQE_CQE_SKIP_SUCCESS, buffers and user data kept
exactly while the kernel may use them, Python code run by an argument's
converter that uses the same ring, and records reused only when nobody holds
them.  What one op does through the fast form is with that op's family
(test_ops_*.py), most of it through the `form` fixture (forms.py)."""

import errno
import gc
import inspect
import json
import mmap
import os
import pydoc
import sys
import time
import weakref

import pytest

import py_io_uring
from py_io_uring import (
    AT_FDCWD,
    IOSQE_ASYNC,
    IOSQE_CQE_SKIP_SUCCESS,
    IOSQE_IO_LINK,
    IoUring,
    SubmissionQueueFull,
)
from op_helpers import Token, assert_nothing_queued, by_ud, reap_n
from uring_helpers import TMP_CONTENT, WAIT, blocks, closed_fd, fill_pipe, read_exactly

COMMON = ["user_data", "sqe_flags", "buf_group", "personality"]
COMMON_DEFAULTS = [None, 0, 0, 0]


class BadBool:
    """An argument whose truth cannot be told."""

    def __bool__(self):
        raise ZeroDivisionError


class Buf(bytearray):
    """A bytearray that can be weakly referenced."""


class CustomError(Exception):
    pass


class FilenoObject:
    """fileno() returns value, or raises a new instance of it when it is an
    exception class (a stored instance would collect tracebacks)."""

    def __init__(self, value):
        self.value = value

    def fileno(self):
        if isinstance(self.value, type) and issubclass(self.value, BaseException):
            raise self.value("from fileno")
        return self.value


# --------------------------------------------------------------------------
# the methods themselves


# inspect builds fresh strings per call: more blocks than make leaks' slack
@pytest.mark.no_leakcheck
def test_every_operation_has_a_fast_form_with_the_sqe_arguments():
    names = [op[0] for op in py_io_uring.OPERATIONS]
    assert len(names) > 50
    for name in names:
        fast = getattr(IoUring, "prep_" + name, None)
        assert fast is not None, "IoUring.prep_%s is missing" % name
        slow = inspect.signature(getattr(py_io_uring.Sqe, "prep_" + name)).parameters
        params = inspect.signature(fast).parameters
        assert list(params) == list(slow) + COMMON, name
        for p, d in zip(COMMON, COMMON_DEFAULTS):
            assert params[p].kind is inspect.Parameter.KEYWORD_ONLY, (name, p)
            assert params[p].default == d, (name, p)
        for p in slow:   # the op's own arguments are unchanged
            assert params[p].kind == slow[p].kind and params[p].default == slow[p].default
    # and no fast form without an operation (prep_many queues any of them)
    extra = {m[5:] for m in dir(IoUring) if m.startswith("prep_")} - set(names)
    assert extra == {"many"}


@pytest.mark.no_leakcheck
def test_every_fast_form_goes_to_its_own_operation(ring):
    # the error names the op: each generated method reaches its own opdef
    have = ring.probe()
    for name, *_ in py_io_uring.OPERATIONS:
        if name not in have:
            continue
        with pytest.raises(TypeError) as ei:
            getattr(ring, "prep_" + name)(bogus_kw=1, user_data="x")
        assert str(ei.value) == "prep_%s() got an unexpected keyword argument 'bogus_kw'" % name
    assert_nothing_queued(ring)


@pytest.mark.no_leakcheck
def test_help_shows_the_keyword_only_arguments():
    sig = str(inspect.signature(IoUring.prep_read))
    assert sig == ("(self, /, fd, buf, offset=-1, *, user_data=None, sqe_flags=0, "
                   "buf_group=0, personality=0)")
    text = pydoc.render_doc(IoUring.prep_read, renderer=pydoc.plaintext)
    # 3.13's pydoc puts a long signature one parameter per line
    flat = " ".join(text.split()).replace("( ", "(").replace(" )", ")")
    assert "prep_read(self, /, fd, buf, offset=-1, *, user_data=None, sqe_flags=0" in flat
    assert "get_sqe().prep_read(...)" in IoUring.prep_read.__doc__
    assert "reap()" in IoUring.prep_read.__doc__
    assert str(inspect.signature(IoUring.reap)) == "(self, /, count, wait_nr=0, submit=False, *, columns=False)"


def test_fast_form_returns_none(ring):
    assert ring.prep_nop() is None
    assert ring.sq_ready() == 1 and ring.in_flight() == 1
    assert ring.submit() == 1
    assert ring.reap(1, 1) == [(None, 0, 0)]
    assert ring.in_flight() == 0


# --------------------------------------------------------------------------
# user data, the common keywords and results through reap()


TOKEN = Token()


@pytest.mark.parametrize("data", ["a string", (1, "two", 3.0), TOKEN, 0, 2 ** 100, [1], None, ""],
                         ids=["str", "tuple", "object", "zero", "bigint", "list", "None", "empty"])
def test_user_data_is_the_very_object(ring, data):
    ring.prep_nop(user_data=data)
    ring.submit()
    [(ud, res, flags)] = ring.reap(1, 1)
    assert ud is data
    assert res == 0 and flags == 0


def test_user_data_defaults_to_none_and_many_keep_their_own(ring):
    objs = [Token() for _ in range(10)]
    ring.prep_nop()
    for o in objs:
        ring.prep_nop(user_data=o)
    assert ring.submit() == 11
    got = ring.reap(11, 11)
    assert got[0] == (None, 0, 0)
    # nops complete in submission order, each with its own object
    assert len(got) == 11
    assert all(g[0] is o for g, o in zip(got[1:], objs))


def test_op_keywords_mixed_with_the_common_ones(ring, rfd):
    # the shared keywords are taken out of the call wherever they stand
    ring.prep_read(rfd, buf=16, user_data="a", offset=32)
    ring.prep_read(user_data="b", fd=rfd, sqe_flags=0, buf=4, personality=0, offset=64)
    ring.prep_read(rfd, 8, 128, sqe_flags=0, user_data="c")   # only ours
    ring.prep_read(fd=rfd, buf=2, offset=0)                    # none of ours
    ring.submit()
    got = by_ud(ring.reap(4, 4))
    assert got == {"a": (TMP_CONTENT[32:48], 0), "b": (TMP_CONTENT[64:68], 0),
                   "c": (TMP_CONTENT[128:136], 0), None: (TMP_CONTENT[:2], 0)}


def test_common_keywords_spelled_at_run_time(ring, rfd):
    # keyword names built at run time are not the interned ones: they are
    # still recognised, by value
    kw = {"user" + "_data": "x", "sqe" + "_flags": 0, "buf" + "_group": 0,
          "person" + "ality": 0, "off" + "set": 8}
    ring.prep_read(rfd, 4, **kw)
    ring.submit()
    assert ring.reap(1, 1) == [("x", TMP_CONTENT[8:12], 0)]
    with pytest.raises(TypeError, match="unexpected keyword argument 'user_datum'"):
        ring.prep_read(rfd, 4, 0, **{"user" + "_datum": 1})
    assert ring.sq_ready() == 0


def test_failures_are_negative_errno_ints_not_exceptions(ring, pipe):
    ring.prep_write(pipe[0], b"x", user_data="write to the read end")
    ring.prep_accept(pipe[0], user_data="accept on a pipe")
    ring.submit()
    got = by_ud(ring.reap(2, 2))
    assert got["write to the read end"] == (-errno.EBADF, 0)
    assert got["accept on a pipe"] == (-errno.ENOTSOCK, 0)
    assert all(type(r) is int for r, _ in got.values())


def test_personality(ring):
    pid = ring.register_personality()
    try:
        ring.prep_nop(personality=pid, user_data="registered")
        ring.submit()
        assert ring.reap(1, 1) == [("registered", 0, 0)]
    finally:
        ring.unregister_personality(pid)
    # a personality the ring does not know: the kernel refuses the entry
    ring.prep_nop(personality=pid, user_data="gone")
    ring.submit()
    assert ring.reap(1, 1) == [("gone", -errno.EINVAL, 0)]


def test_sqe_flags_async(ring, rfd):
    ring.prep_read(rfd, 16, 16, sqe_flags=IOSQE_ASYNC, user_data="async")
    ring.prep_nop(sqe_flags=IOSQE_ASYNC, buf_group=65535, personality=0, user_data="max")
    ring.submit()
    assert by_ud(ring.reap(2, 2)) == {"async": (TMP_CONTENT[16:32], 0), "max": (0, 0)}


# --------------------------------------------------------------------------
# reap(): count, order, waiting, errors


def test_reap_count_limit_and_order(ring):
    for i in range(5):
        ring.prep_nop(user_data=i)
    ring.submit_and_wait(5)
    assert ring.cq_ready() == 5
    assert ring.reap(2) == [(0, 0, 0), (1, 0, 0)]
    assert ring.cq_ready() == 3
    assert ring.reap(1) == [(2, 0, 0)]
    assert ring.reap(10) == [(3, 0, 0), (4, 0, 0)]
    assert ring.reap(10) == []
    assert ring.cq_ready() == 0
    assert ring.in_flight() == 0


def test_reap_on_an_empty_queue_is_an_empty_list(ring):
    assert ring.reap(8) == []
    assert ring.reap(0) == []
    ring.prep_timeout(30, user_data="long")
    ring.submit()
    assert ring.reap(8) == []   # does not wait
    assert ring.in_flight() == 1


def test_reap_zero_takes_nothing(ring):
    ring.prep_nop(user_data="kept")
    ring.submit_and_wait(1)
    assert ring.reap(0) == []
    assert ring.cq_ready() == 1
    assert ring.reap(0, 0) == []
    assert ring.reap(1) == [("kept", 0, 0)]


def test_reap_wait_nr_waits(ring):
    ring.prep_timeout(0.01, user_data="t10ms")
    ring.submit()
    t0 = time.monotonic()
    got = ring.reap(4, wait_nr=1)
    elapsed = time.monotonic() - t0
    assert got == [("t10ms", -errno.ETIME, 0)]
    assert 0.005 < elapsed < WAIT


def test_reap_wait_nr_waits_for_all_then_takes_up_to_count(ring):
    for i in range(3):
        ring.prep_timeout(0.005 * (i + 1), user_data="t%d" % i)
    ring.submit()
    got = ring.reap(count=3, wait_nr=3)
    assert got == [("t0", -errno.ETIME, 0), ("t1", -errno.ETIME, 0), ("t2", -errno.ETIME, 0)]
    assert ring.in_flight() == 0


def test_reap_wait_nr_takes_more_when_ready(ring):
    for i in range(4):
        ring.prep_nop(user_data=i)
    ring.submit_and_wait(4)
    # wait_nr is a minimum: what is ready comes, up to count
    assert [g[0] for g in ring.reap(3, wait_nr=1)] == [0, 1, 2]
    assert ring.reap(3, 1) == [(3, 0, 0)]


def test_reap_wait_with_nothing_in_flight_blocks_as_liburing_does(ring):
    blocks(ring.reap, 1, 1)
    ring.prep_nop(user_data="unsubmitted")
    ring.submit()
    assert ring.reap(1, 1) == [("unsubmitted", 0, 0)]


@pytest.mark.parametrize("args, kwargs, exc", [
    ((2,), {"wait_nr": 3}, ValueError),
    ((-1,), {}, ValueError),
    ((1,), {"wait_nr": -1}, ValueError),
    (("1",), {}, TypeError),
    ((1.0,), {}, TypeError),
    ((None,), {}, TypeError),
    ((1, "0"), {}, TypeError),
    ((), {}, TypeError),
    ((1, 0, 0, 0), {}, TypeError),
    ((1,), {"timeout": 1}, TypeError),
    ((2 ** 64,), {}, OverflowError),
], ids=["wait_nr>count", "negative count", "negative wait_nr", "str", "float", "None",
        "str wait_nr", "no count", "four", "unknown keyword", "huge"])
def test_reap_argument_errors_take_nothing(ring, args, kwargs, exc):
    ring.prep_nop(user_data="stays")
    ring.submit_and_wait(1)
    with pytest.raises(exc):
        ring.reap(*args, **kwargs)
    assert ring.cq_ready() == 1
    assert ring.reap(1) == [("stays", 0, 0)]


def test_reap_more_than_64_at_once():
    # past the stack array of the batch marking: a heap one
    r = IoUring(256)
    try:
        for rnd in range(2):
            for i in range(150):
                r.prep_nop(user_data=(rnd, i))
            assert r.submit() == 150
            got = r.reap(1000, 150)
            assert got == [((rnd, i), 0, 0) for i in range(150)]
            assert r.in_flight() == 0 and r.cq_ready() == 0
    finally:
        r.queue_exit()


def test_reap_through_a_completion_queue_overflow():
    # a 4-entry ring has 8 CQ entries: 20 unreaped completions overflow
    # into the kernel's backlog and must all come back, in order
    r = IoUring(4)
    try:
        for batch in range(5):
            for i in range(4):
                r.prep_nop(user_data=batch * 4 + i)
            assert r.submit() == 4
        got = r.reap(20, 20)
        assert got == [(i, 0, 0) for i in range(20)]
        # and without waiting: repeated calls until an empty list
        for batch in range(5):
            for i in range(4):
                r.prep_nop(user_data=batch * 4 + i)
            r.submit()
        got = []
        for _ in range(50):   # bounded
            more = r.reap(100)
            if not more:
                break
            got += more
        assert got == [(i, 0, 0) for i in range(20)]
        assert r.in_flight() == 0
    finally:
        r.queue_exit()


def test_reap_after_peek_cqe_gives_the_peeked_completion_first(ring):
    ring.prep_nop(user_data="a")
    ring.prep_nop(user_data="b")
    ring.prep_nop(user_data="c")
    ring.submit_and_wait(3)
    peeked = ring.peek_cqe()
    assert peeked.get_data() == "a"
    waited = ring.wait_cqe_nr(2, timeout=WAIT)   # unseen too
    assert [c.get_data() for c in waited] == ["a", "b"]
    assert ring.reap(10) == [("a", 0, 0), ("b", 0, 0), ("c", 0, 0)]
    assert ring.cq_ready() == 0
    assert ring.peek_cqe() is None
    ring.cqe_seen(peeked)            # already seen by reap(): nothing happens
    assert ring.cq_ready() == 0
    assert peeked.get_data() == "a" and peeked.res() == 0   # the object stays valid


def test_reap_after_peek_batch_then_cq_advance(ring):
    for i in range(4):
        ring.prep_nop(user_data=i)
    ring.submit_and_wait(4)
    assert [c.get_data() for c in ring.peek_batch_cqe(4)] == [0, 1, 2, 3]
    ring.cq_advance(1)
    assert ring.reap(2) == [(1, 0, 0), (2, 0, 0)]
    assert [c.get_data() for c in ring.peek_batch_cqe(4)] == [3]
    assert ring.reap(4) == [(3, 0, 0)]


def test_reap_gives_get_sqe_operations_too(ring, rfd):
    sqe = ring.get_sqe()
    sqe.prep_read(rfd, 4, 8)
    sqe.set_data("classic")
    ring.prep_nop(user_data="fast")
    bare = ring.get_sqe()   # unprepared: a nop with no data
    ring.submit()
    got = by_ud(ring.reap(3, 3))
    assert got == {"classic": (TMP_CONTENT[8:12], 0), "fast": (0, 0), None: (0, 0)}
    del bare


def test_reap_and_prep_on_a_closed_ring():
    r = IoUring(4)
    r.queue_exit()
    with pytest.raises(ValueError):
        r.reap(1)
    with pytest.raises(ValueError):
        r.prep_nop(user_data="x")
    never = IoUring()
    with pytest.raises(ValueError):
        never.prep_nop()
    with pytest.raises(ValueError):
        never.reap(0)


def test_completions_left_unreaped_at_queue_exit_release_user_data():
    r = IoUring(8)
    t = Token()
    ref = weakref.ref(t)
    r.prep_nop(user_data=t)
    r.submit_and_wait(1)
    del t
    r.queue_exit()
    gc.collect()
    assert ref() is None


# --------------------------------------------------------------------------
# a call that raises leaves nothing behind


# (op, args, kwargs): calls both forms refuse before anything reaches the kernel
BAD_CALLS = [
    ("read", (-1, 10), {}),
    ("read", ("not an fd", 10), {}),
    ("read", (FilenoObject(CustomError), 10), {}),
    ("read", (0, -1), {}),
    ("read", (0, 2 ** 40), {}),
    ("read", (0, b"read-only"), {}),
    ("read", (0, 10, "offset"), {}),
    ("read", (0, 10, -2), {}),
    ("read", (0,), {}),
    ("read", (0, 10), {"fd": 1}),
    ("write", (1, 12345), {}),
    ("write", (1, "text"), {}),
    ("write", (1, b"x", 1.5), {}),
    ("readv", (0, [b"read-only"]), {}),
    ("readv", (0, "not a list"), {}),
    ("send", (1, b"x", 2 ** 40), {}),
    ("recv", (1,), {}),
    ("openat", (AT_FDCWD, "nul\0inside"), {}),
    ("openat", (AT_FDCWD, 12345), {}),
    ("statx", (AT_FDCWD, None), {}),
    ("timeout", (-1.0,), {}),
    ("timeout", (float("nan"),), {}),
    ("timeout", ("1",), {}),
    ("nop", (1,), {}),
    ("nop", (), {"flags": 1}),
    ("accept", (-5,), {}),
    ("cancel64", (), {}),
    ("cancel64", ("ud",), {}),
]


@pytest.mark.parametrize("op, args, kwargs", BAD_CALLS,
                         ids=["%s-%d" % (c[0], i) for i, c in enumerate(BAD_CALLS)])
def test_bad_argument_raises_what_sqe_prep_raises_and_queues_nothing(ring, op, args, kwargs):
    token = Token()
    base = sys.getrefcount(token)
    name = sys.intern("prep_" + op)
    try:
        getattr(ring, name)(*args, user_data=token, **kwargs)
    except Exception as e:   # not pytest.raises: no traceback keeps token
        fast = (type(e), str(e))
    else:
        pytest.fail("IoUring.%s%r did not raise" % (name, args))
    assert sys.getrefcount(token) == base, "user data kept by a failed call"
    assert_nothing_queued(ring)
    sqe = ring.get_sqe()
    try:
        getattr(sqe, name)(*args, **kwargs)
    except Exception as e:
        slow = (type(e), str(e))
    else:
        pytest.fail("Sqe.%s%r did not raise" % (name, args))
    assert fast == slow


@pytest.mark.parametrize("kwargs, exc", [
    ({"sqe_flags": 256}, OverflowError),
    ({"sqe_flags": -1}, OverflowError),
    ({"sqe_flags": 2 ** 70}, OverflowError),
    ({"sqe_flags": 1.5}, TypeError),
    ({"sqe_flags": "1"}, TypeError),
    ({"sqe_flags": None}, TypeError),
    ({"buf_group": 65536}, OverflowError),
    ({"buf_group": -1}, OverflowError),
    ({"buf_group": 1.0}, TypeError),
    ({"personality": 65536}, OverflowError),
    ({"personality": -1}, OverflowError),
    ({"personality": "0"}, TypeError),
    ({"bogus": 1}, TypeError),
    ({"flags": 0}, TypeError),
    ({"sqe": None}, TypeError),
], ids=lambda v: repr(v) if isinstance(v, dict) else v.__name__)
def test_bad_common_keyword_queues_nothing(ring, rfd, kwargs, exc):
    buf = bytearray(8)
    token = Token()
    base_buf, base_tok = sys.getrefcount(buf), sys.getrefcount(token)
    for call in (lambda: ring.prep_nop(user_data=token, **kwargs),
                 lambda: ring.prep_read(rfd, buf, 0, user_data=token, **kwargs)):
        try:
            call()
        except exc:
            pass
        else:
            pytest.fail("%r did not raise %s" % (kwargs, exc.__name__))
    assert sys.getrefcount(token) == base_tok
    assert sys.getrefcount(buf) == base_buf
    buf.extend(b"not pinned")   # no BufferError
    assert_nothing_queued(ring)


def test_user_data_is_keyword_only(ring):
    with pytest.raises(TypeError):
        ring.prep_nop("positional")
    with pytest.raises(TypeError):
        ring.prep_read(0, 4, 0, "positional user data")
    assert_nothing_queued(ring)


def test_failed_prep_after_pinning_releases_the_buffer(ring, pipe):
    buf = bytearray(b"payload")
    base = sys.getrefcount(buf)
    with pytest.raises(TypeError):
        ring.prep_write(pipe[1], buf, "bad offset", user_data="w")   # buf pinned first
    with pytest.raises(TypeError):
        ring.prep_readv(pipe[0], [bytearray(4), buf, b"read-only"], user_data="rv")
    assert sys.getrefcount(buf) == base
    buf.extend(b" resized")     # nothing holds an export any more
    assert_nothing_queued(ring)


def test_failed_prep_between_good_ones_keeps_the_others(ring, rfd):
    ring.prep_read(rfd, 4, 0, user_data="first")
    with pytest.raises(ValueError):
        ring.prep_read(rfd, -1, user_data="bad")
    ring.prep_read(rfd, 4, 4, user_data="last")
    assert ring.sq_ready() == 2 and ring.in_flight() == 2
    assert ring.submit() == 2
    assert ring.reap(3, 2) == [("first", TMP_CONTENT[:4], 0), ("last", TMP_CONTENT[4:8], 0)]
    assert ring.in_flight() == 0


def test_many_failed_calls_do_not_use_up_slots_or_entries():
    r = IoUring(4)
    try:
        for _ in range(300):
            with pytest.raises(ValueError):
                r.prep_read(0, -1, user_data="bad")
        assert r.sq_ready() == 0 and r.in_flight() == 0
        for i in range(4):
            r.prep_nop(user_data=i)
        assert r.submit() == 4
        assert r.reap(4, 4) == [(i, 0, 0) for i in range(4)]
    finally:
        r.queue_exit()


def test_submission_queue_full():
    r = IoUring(4)
    try:
        token = Token()
        base = sys.getrefcount(token)
        for i in range(4):
            r.prep_nop(user_data=i)
        with pytest.raises(SubmissionQueueFull):
            r.prep_nop(user_data=token)
        with pytest.raises(SubmissionQueueFull):
            r.prep_read(0, bytearray(4), user_data=token)
        assert sys.getrefcount(token) == base
        assert r.sq_ready() == 4 and r.in_flight() == 4
        assert r.submit() == 4
        r.prep_nop(user_data="fifth")   # room again
        assert r.submit() == 1
        assert r.reap(8, 5) == [(0, 0, 0), (1, 0, 0), (2, 0, 0), (3, 0, 0), ("fifth", 0, 0)]
        assert r.in_flight() == 0
    finally:
        r.queue_exit()


# --------------------------------------------------------------------------
# links and IOSQE_CQE_SKIP_SUCCESS


def test_linked_write_then_read_on_a_pipe(ring, pipe):
    r, w = pipe
    ring.prep_write(w, b"ping", sqe_flags=IOSQE_IO_LINK, user_data="write")
    ring.prep_read(r, 16, user_data="read")
    assert ring.submit() == 2
    assert ring.reap(2, 2) == [("write", 4, 0), ("read", b"ping", 0)]


def test_linked_chain_runs_in_order(ring, wfd):
    ring.prep_write(wfd, b"linked", 0, sqe_flags=IOSQE_IO_LINK, user_data=1)
    ring.prep_fsync(wfd, sqe_flags=IOSQE_IO_LINK, user_data=2)
    ring.prep_read(wfd, 64, 0, user_data=3)
    ring.submit()
    assert ring.reap(3, 3) == [(1, 6, 0), (2, 0, 0), (3, b"linked", 0)]


def test_link_with_a_failing_head_cancels_the_rest(ring, wfd):
    ring.prep_read(closed_fd(), 8, 0, sqe_flags=IOSQE_IO_LINK, user_data="bad")
    ring.prep_write(wfd, b"must not be written", 0, sqe_flags=IOSQE_IO_LINK, user_data="write")
    ring.prep_nop(user_data="nop")
    ring.submit()
    got = ring.reap(3, 3)
    assert got == [("bad", -errno.EBADF, 0), ("write", -errno.ECANCELED, 0),
                   ("nop", -errno.ECANCELED, 0)]
    assert os.fstat(wfd).st_size == 0
    assert ring.in_flight() == 0


def test_failed_prep_with_link_flag_does_not_link_the_next(ring):
    # the entry of a failed call is given back: its IOSQE_IO_LINK cannot
    # reach the next call's entry
    with pytest.raises(ValueError):
        ring.prep_read(closed_fd(), -1, sqe_flags=IOSQE_IO_LINK, user_data="bad")
    ring.prep_read(closed_fd(), 8, user_data="fails")
    ring.prep_nop(user_data="independent")
    ring.submit()
    assert by_ud(ring.reap(2, 2)) == {"fails": (-errno.EBADF, 0), "independent": (0, 0)}


def test_cqe_skip_success_inside_a_chain(ring, wfd):
    skipped, silent = Token(), Token()
    refs = [weakref.ref(skipped), weakref.ref(silent)]
    ring.prep_write(wfd, b"silent but done", 0, sqe_flags=IOSQE_IO_LINK | IOSQE_CQE_SKIP_SUCCESS,
                    user_data=skipped)
    ring.prep_nop(sqe_flags=IOSQE_IO_LINK | IOSQE_CQE_SKIP_SUCCESS, user_data=silent)
    ring.prep_read(wfd, 64, 0, user_data="last")
    del skipped, silent
    assert ring.in_flight() == 3
    ring.submit()
    # only the last of the chain posts; its completion ends the skipped ones
    assert ring.reap(8, 1) == [("last", b"silent but done", 0)]
    assert ring.in_flight() == 0
    assert ring.wait_cqe(timeout=0.05) is None
    assert ring.reap(8) == []
    gc.collect()
    assert [r() for r in refs] == [None, None], "a skipped entry's record kept its user data"


def test_cqe_skip_success_on_a_lone_fast_form_still_completes(ring):
    # documented (test_features): where no linked successor can prove the
    # entry done the flag is dropped at submit, so the completion comes
    ring.prep_nop(sqe_flags=IOSQE_CQE_SKIP_SUCCESS, user_data="lone")
    ring.submit()
    assert ring.reap(2, 1) == [("lone", 0, 0)]
    assert ring.in_flight() == 0


def test_cqe_skip_success_head_fails_silences_the_rest(ring):
    # REQ_F_SKIP_LINK_CQES: the failure posts, the entries after it do not;
    # their records still end (nothing stays in flight, no hang)
    ring.prep_read(closed_fd(), 8, 0, sqe_flags=IOSQE_IO_LINK | IOSQE_CQE_SKIP_SUCCESS,
                   user_data="bad")
    ring.prep_nop(user_data="after")
    ring.submit()
    got = ring.reap(4, 1)
    assert got[0] == ("bad", -errno.EBADF, 0)
    time.sleep(0.02)
    got += ring.reap(4)
    assert got[1:] in ([], [("after", -errno.ECANCELED, 0)])
    assert ring.in_flight() == 0


# --------------------------------------------------------------------------
# lifetimes: what only the fast form was given stays alive while the kernel
# may use it


def test_read_buffer_given_only_to_the_fast_form(ring, pipe, tmp_path):
    r, w = pipe
    # a file-backed mmap: what the kernel writes stays visible in the file
    # after the mmap object is gone
    backing = tmp_path / "backing"
    backing.write_bytes(b"\0" * 16)
    with open(backing, "r+b") as f:
        m = mmap.mmap(f.fileno(), 16)
    ref = weakref.ref(m)
    ring.prep_read(r, m, user_data="mmap")
    ring.submit()
    with pytest.raises(BufferError):
        m.close()   # exported to the kernel
    del m
    gc.collect()
    assert ref() is not None, "read buffer freed while the kernel may write it"
    os.write(w, b"filled")
    assert reap_n(ring, 1) == [("mmap", 6, 0)]
    gc.collect()
    assert ref() is None, "read buffer kept after its completion"
    assert backing.read_bytes() == b"filled" + b"\0" * 10


def test_bytearray_dropped_before_the_data_arrives(ring, pipe):
    r, w = pipe
    buf = Buf(32)
    ref = weakref.ref(buf)
    ring.prep_read(r, buf, user_data="dropped")
    ring.submit()
    del buf
    gc.collect()
    assert ref() is not None
    assert ring.reap(1) == []
    os.write(w, b"x" * 20)
    assert reap_n(ring, 1) == [("dropped", 20, 0)]
    assert ref() is None   # released at reap, no collection needed


def test_bytearray_dropped_before_submit(ring, pipe):
    r, w = pipe
    os.write(w, b"queued first")
    buf = Buf(12)
    ref = weakref.ref(buf)
    ring.prep_read(r, buf, user_data="unsubmitted")
    del buf
    gc.collect()
    assert ref() is not None
    ring.submit()
    got = reap_n(ring, 1)
    assert got == [("unsubmitted", 12, 0)]


def test_pinned_bytearray_cannot_be_resized(ring, pipe):
    r, w = pipe
    buf = bytearray(8)
    base = sys.getrefcount(buf)
    ring.prep_read(r, buf, user_data="pinned")
    with pytest.raises(BufferError):
        buf.extend(b"before submit")
    ring.submit()
    with pytest.raises(BufferError):
        buf.extend(b"in flight")
    with pytest.raises(BufferError):
        del buf[0]
    assert sys.getrefcount(buf) > base
    os.write(w, b"12345678")
    assert reap_n(ring, 1) == [("pinned", 8, 0)]
    assert buf == b"12345678"
    assert sys.getrefcount(buf) == base
    buf.extend(b"!")   # released at reap
    assert buf == b"12345678!"


def test_write_source_kept_alive_and_unchanged(ring, pipe):
    r, w = pipe
    filled = fill_pipe(w)   # the write waits for room
    m = mmap.mmap(-1, 4096)
    m[:] = TMP_CONTENT
    ref = weakref.ref(m)
    ring.prep_write(w, m, user_data="w")
    ring.submit()
    assert ring.wait_cqe(timeout=0.05) is None
    del m
    gc.collect()
    assert ref() is not None, "write source freed while the kernel may read it"
    assert read_exactly(r, filled) == b"\xaa" * filled
    [(ud, n, flags)] = reap_n(ring, 1)
    assert ud == "w" and 0 < n <= 4096 and flags == 0
    assert read_exactly(r, n) == TMP_CONTENT[:n]
    gc.collect()
    assert ref() is None


def test_user_data_kept_while_in_flight_released_after_reap(ring):
    token = Token()
    ref = weakref.ref(token)
    ring.prep_timeout(0.02, user_data=token)
    ring.submit()
    del token
    gc.collect()
    assert ref() is not None, "user data freed while in flight"
    got = ring.reap(1, 1)
    assert got[0][0] is ref()
    del got
    assert ref() is None, "user data kept after reap() (no collection needed)"


def test_reap_leaves_no_reference_behind(ring, rfd):
    token = Token()
    buf = bytearray(16)
    bt, bb = sys.getrefcount(token), sys.getrefcount(buf)
    for _ in range(20):
        ring.prep_read(rfd, buf, 0, user_data=token)
        ring.prep_read(rfd, 16, 0, user_data=token)
        ring.submit()
        got = ring.reap(2, 2)
        assert got == [(token, 16, 0), (token, TMP_CONTENT[:16], 0)]
        del got
    assert sys.getrefcount(token) == bt
    assert sys.getrefcount(buf) == bb


def test_read_result_outlives_the_ring(tmp_file):
    r = IoUring(4)
    fd = os.open(tmp_file, os.O_RDONLY)
    try:
        r.prep_read(fd, 64, 0, user_data="x")
        r.submit()
        got = r.reap(1, 1)
    finally:
        os.close(fd)
    r.queue_exit()
    del r
    gc.collect()
    assert got == [("x", TMP_CONTENT[:64], 0)]


def test_queue_exit_with_a_fast_form_read_in_flight(pipe):
    r = IoUring(4)
    buf = Buf(8)
    ref = weakref.ref(buf)
    token = Token()
    tref = weakref.ref(token)
    r.prep_read(pipe[0], buf, user_data=token)
    r.submit()
    del buf, token
    r.queue_exit()   # cancels, waits for the completion, then releases
    gc.collect()
    assert ref() is None and tref() is None
    os.write(pipe[1], b"late")   # nobody reads into freed memory


def test_ring_as_user_data_of_its_own_pending_read_is_collected(pipe):
    r, w = pipe
    ring = IoUring(8)
    buf = bytearray(4)
    ring.prep_read(r, buf, user_data=ring)   # ring -> record -> ring
    ring.submit()
    ref = weakref.ref(ring)
    del ring
    t0 = time.monotonic()
    gc.collect()
    assert ref() is None
    assert time.monotonic() - t0 < WAIT
    os.write(w, b"data")   # the read was cancelled first: nobody takes it
    os.set_blocking(r, False)
    assert os.read(r, 10) == b"data"
    assert buf == bytearray(4)


# --------------------------------------------------------------------------
# Python code a converter runs (__index__, fileno()) that uses the same ring


class Offset:
    """An offset whose __index__ queues a nop on the ring, then returns
    `value` or raises it."""

    def __init__(self, ring, value, data="inner"):
        self.ring, self.value, self.data = ring, value, data

    def __index__(self):
        self.ring.prep_nop(user_data=self.data)
        if isinstance(self.value, BaseException):
            raise self.value
        return self.value


def test_converter_takes_an_sqe_then_raises(ring, rfd):
    with pytest.raises(CustomError):
        ring.prep_read(rfd, 16, Offset(ring, CustomError("no offset")), user_data="outer")
    # the outer entry could not be given back (the inner one came after
    # it): it stays, as a nop without data; the inner nop is untouched
    assert ring.sq_ready() == 2
    assert ring.submit() == 2
    assert ring.reap(4, 2) == [(None, 0, 0), ("inner", 0, 0)]
    assert ring.in_flight() == 0


def test_converter_takes_an_sqe_and_succeeds(ring, rfd):
    ring.prep_read(rfd, 16, Offset(ring, 32), user_data="outer")
    assert ring.sq_ready() == 2
    ring.submit()
    assert by_ud(ring.reap(4, 2)) == {"outer": (TMP_CONTENT[32:48], 0), "inner": (0, 0)}
    assert ring.in_flight() == 0


def test_converter_in_fd_takes_an_sqe_and_succeeds(ring, rfd):
    class Fd:
        def fileno(self):
            ring.prep_nop(user_data="from fileno")
            return rfd

    ring.prep_read(Fd(), 4, 0, user_data="outer")
    ring.submit()
    assert by_ud(ring.reap(4, 2)) == {"outer": (TMP_CONTENT[:4], 0), "from fileno": (0, 0)}


def test_converter_raises_without_taking_an_sqe(ring):
    with pytest.raises(CustomError):
        ring.prep_read(FilenoObject(CustomError), 4, user_data="outer")
    assert_nothing_queued(ring)


def test_converter_nested_fast_form_fails_too(ring, rfd):
    # the inner call fails (its own entry is given back), the outer one
    # fails with the inner's exception: the outer entry is the last again
    # and is given back too
    class Bad:
        def __index__(self):
            ring.prep_read(rfd, -1, user_data="inner")
            return 0

    with pytest.raises(ValueError):
        ring.prep_read(rfd, 4, Bad(), user_data="outer")
    assert_nothing_queued(ring)


# -- Four bugs these tests found (fixed): each runs in a child process, as a
# -- regression would crash the interpreter or leave the ring waiting at
# -- teardown.

SUBMIT_AND_WRAP_CHILD = r"""
import json, os, sys, time
import py_io_uring as P
r = P.IoUring(1)                  # one SQ entry: the next get_sqe reuses it
rfd, wfd = os.pipe()
buf = bytearray(4)
base = sys.getrefcount(buf)

class Off:
    def __index__(self):
        r.submit()                # flushes the outer entry (still a NOP)
        r.prep_nop(user_data="inner")   # takes the same SQE memory again
        return -1

try:
    r.prep_read(rfd, buf, Off(), user_data="outer")
    raised = None
except Exception as e:
    raised = type(e).__name__
r.submit()
got = []
deadline = time.monotonic() + 0.3
while time.monotonic() < deadline:
    got += r.reap(8)
    time.sleep(0.01)
pinned = sys.getrefcount(buf) > base   # the outer read is still waiting?
os.write(wfd, b"abcd")
deadline = time.monotonic() + 1.0
while time.monotonic() < deadline and r.in_flight():
    got += r.reap(8)
    time.sleep(0.01)
got += r.reap(8)
print(json.dumps({"raised": raised, "got": [[repr(u), repr(v), f] for u, v, f in got],
                  "pinned": pinned, "in_flight": r.in_flight(), "buf": buf.decode("latin-1")}))
sys.stdout.flush()
os._exit(0)                       # a stuck record would make teardown wait 10 s
"""


def test_a_converter_that_submits_the_entry_makes_the_prep_raise(run_py):
    # pu_sqe_prep() kept its SQE pointer across converters: the outer prep
    # overwrote the inner entry and ran under a finished record (buffer
    # unpinned while the kernel read into it)
    proc = run_py(SUBMIT_AND_WRAP_CHILD, timeout=60)
    assert proc.returncode == 0, proc.stderr
    import json
    out = json.loads(proc.stdout)
    uds = [g[0] for g in out["got"]]
    assert "'inner'" in uds, out                       # the inner nop completes
    assert all(u.startswith("'") or u == "None" for u in uds), out   # no stray raw ints
    assert out["in_flight"] == 0, out
    assert out["raised"] == "RuntimeError", out
    assert not out["pinned"], out   # the failed read released its buffer


QUEUE_EXIT_CHILD = r"""
import os, sys
import py_io_uring as P
r = P.IoUring(4)
rfd, wfd = os.pipe()

class Fd:
    def fileno(self):
        r.queue_exit()
        return rfd

try:
    if FORM == "fast":
        r.prep_read(Fd(), 4, user_data="x")
    else:
        r.get_sqe().prep_read(Fd(), 4)
    print("returned")
except Exception as e:
    print("raised", type(e).__name__)
sys.stdout.flush()
"""


@pytest.mark.parametrize("form", ["fast", "sqe"])
def test_a_converter_that_closes_the_ring_makes_the_prep_raise(run_py, form):
    # was SIGSEGV: the prep wrote the SQE through a pointer into the
    # unmapped SQ ring
    proc = run_py("FORM = %r\n" % form + QUEUE_EXIT_CHILD, timeout=60)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    assert proc.stdout.strip() == "raised RuntimeError", proc.stdout


REAP_REENTRY_CHILD = r"""
import gc, json, sys
import py_io_uring as P
r = P.IoUring(16)
inner = []

class Bomb:
    def __del__(self):
        try:
            inner.extend(r.reap(100))
        except Exception as e:
            inner.append(type(e).__name__)

for i in range(4):
    r.prep_nop(user_data="n%d" % i)
r.submit_and_wait(4)
r.wait_cqe_nr(4)                  # now in the ring's queue of unseen completions
gc.disable()
b = Bomb(); b.me = b; del b       # cyclic garbage with a finalizer
keep = [(i, i, i) for i in range(5000)]   # empties the 3-tuple free list
gc.enable()
gc.set_threshold(1)               # reap()'s first new tuple runs a collection
outer = r.reap(4)
gc.set_threshold(700)
print(json.dumps({"outer": [list(t) for t in outer],
                  "inner": [list(t) if isinstance(t, tuple) else t for t in inner],
                  "cq_ready": r.cq_ready()}))
"""


def test_a_finalizer_reaping_during_reap_finds_the_queue_busy(run_py):
    # was a use after free: reap() read the queue while its allocations ran
    # a finalizer that emptied it
    proc = run_py(REAP_REENTRY_CHILD, timeout=60)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    import json
    out = json.loads(proc.stdout.splitlines()[-1])
    delivered = [t[0] for t in out["outer"]] + [t[0] for t in out["inner"] if isinstance(t, list)]
    # every completion comes out exactly once, in one of the two calls
    assert sorted(delivered) == ["n0", "n1", "n2", "n3"], out
    assert out["cq_ready"] == 0, out


# The direct paths (reap_one()'s one tuple, reap()'s list, reap(columns=True))
# make objects while they hold the completion side, with the CQ's head not
# yet moved: a finalizer run by one of those allocations must neither reap
# the entries being read nor tear the ring down under the reap.
DIRECT_REAP_FINALIZER_CHILD = r"""
import gc, json, os, sys
import py_io_uring as P
r = P.IoUring(16)
inner = []

class Bomb:
    def __del__(self):
        try:
            if ACT == "reap":
                inner.append(["reaped", [list(t) for t in r.reap(100)]])
            elif ACT == "reap_one":
                t = r.reap_one()
                inner.append(["reaped", [list(t)] if t else []])
            else:
                r.queue_exit()                # deferred to the end of the reap
                inner.append(["exit", repr(r)])
        except Exception as e:
            inner.append([type(e).__name__, str(e)])

null = os.open("/dev/null", os.O_WRONLY)
# results above 256 are new int objects: allocations while the reap holds the CQ
r.prep_many("write", [(null, b"x" * (300 + i)) for i in range(4)],
            user_data=["w%d" % i for i in range(4)])
r.submit_and_wait(4)
held = r.reap_one()               # kept: reap_one() cannot refill its tuple
gc.disable()
b = Bomb(); b.me = b; del b       # cyclic garbage with a finalizer
keep = [(i, i, i) for i in range(5000)]   # empties the 3-tuple free list
gc.enable()
gc.set_threshold(1)               # the reap's first allocation runs a collection
raised = None
try:
    if FORM == "reap_one":
        outer = [r.reap_one()]
    elif FORM == "reap":
        outer = r.reap(4)
    else:
        outer = list(zip(*r.reap(4, columns=True)))
except ValueError as e:           # the ring closed before the reap began
    outer, raised = [], str(e)
gc.set_threshold(700)
closed = repr(r) == "<py_io_uring.IoUring closed>"
rest = [] if closed else r.reap(100)
print(json.dumps({"held": list(held), "outer": [list(t) for t in outer], "inner": inner,
                  "rest": [list(t) for t in rest], "closed": closed, "raised": raised}))
os.close(null)
"""


@pytest.mark.parametrize("act", ["reap", "reap_one", "exit"])
@pytest.mark.parametrize("form", ["reap_one", "reap", "columns"])
def test_a_finalizer_during_a_direct_reap(run_py, form, act):
    proc = run_py("FORM = %r\nACT = %r\n" % (form, act) + DIRECT_REAP_FINALIZER_CHILD, timeout=60)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    out = json.loads(proc.stdout.splitlines()[-1])
    assert len(out["inner"]) == 1, out               # the finalizer ran once
    kind, what = out["inner"][0]
    got = [out["held"]] + out["outer"] + out["rest"] + (what if kind == "reaped" else [])
    # nothing twice, each with its own result
    assert sorted(map(tuple, got)) == sorted(set(map(tuple, got))), out
    assert all(res == 300 + int(d[1:]) and f == 0 for d, res, f in got), out
    # before 3.12 an allocation collects at once: reap_one's and reap's
    # tuples are made inside the hold; columns makes only ints there, and
    # its lists, made before, collect (3.9, 3.10) or not; from 3.12 the
    # collection waits for the interpreter's next check, after the reap
    inside = sys.version_info < (3, 12) and form != "columns"
    if form != "columns":
        assert len(out["outer"]) == (1 if form == "reap_one" else 3), out
        assert out["raised"] is None, out
    if act == "exit":
        # inside, queue_exit() waited for the reap to end; then it closed the ring
        assert kind == "exit" and (not inside or "in_flight=" in what), out
        assert out["closed"], out
        return
    assert not out["closed"], out
    assert sorted(d for d, res, f in got) == ["w0", "w1", "w2", "w3"], out
    if inside:
        assert kind == "RuntimeError" and "already waiting on or reaping" in what, out
    else:
        assert kind in ("reaped", "RuntimeError"), out


FRESH_RING_CHILD = r"""
import py_io_uring as P
r = P.IoUring(4)
assert r.reap(4) == []            # nothing was ever reaped: no queue array yet
assert r.reap(0) == []
r.cq_advance(0)
print("ok")
"""


# memcpy from a NULL queue: only the sanitizer build (`make asan`) sees it
def test_reap_on_a_ring_that_never_reaped(run_py):
    proc = run_py(FRESH_RING_CHILD, timeout=60)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    assert "runtime error" not in proc.stderr, proc.stderr[-2000:]
    assert proc.stdout.strip() == "ok"


def test_a_converter_that_prepares_the_same_sqe_again_is_refused(ring):
    # a nested prep on the record being prepared would release the outer
    # prep's pins before it writes their addresses into the SQE
    rfd, wfd = os.pipe()
    try:
        sqe = ring.get_sqe()
        buf = bytearray(4)

        class Off:
            def __index__(self):
                sqe.prep_nop()
                return 0

        with pytest.raises(RuntimeError, match="being prepared"):
            sqe.prep_read(rfd, buf, Off())
        buf.extend(b"x")                  # nothing pinned it: resizable
        ring.submit()
        c = ring.wait_cqe()
        assert c.res() == 0 and c.get_data() is None   # the entry stayed a NOP
        ring.cqe_seen(c)
    finally:
        os.close(rfd)
        os.close(wfd)


def test_reap_submit_true_submits_waits_and_reaps_in_one_call(ring):
    for i in range(3):
        ring.prep_nop(user_data=i)
    assert ring.sq_ready() == 3
    assert ring.reap(8, 3, True) == [(0, 0, 0), (1, 0, 0), (2, 0, 0)]
    assert ring.sq_ready() == 0 and ring.cq_ready() == 0
    # with nothing queued it only waits
    ring.prep_timeout(0.01, user_data="t")
    ring.submit()
    assert ring.reap(1, 1, submit=True) == [("t", -errno.ETIME, 0)]
    # and nothing in flight: it blocks, as liburing's wait does
    blocks(ring.reap, 1, 1, True)


def test_reap_submit_true_counts_completions_already_reaped(ring):
    ring.prep_nop(user_data="old")
    ring.submit_and_wait(1)
    assert ring.peek_cqe() is not None        # now in the queue of unseen ones
    ring.prep_nop(user_data="new")
    assert ring.reap(2, 2, submit=True) == [("old", 0, 0), ("new", 0, 0)]


# --------------------------------------------------------------------------
# reap_one(wait=False, submit=False): reap(1, wait, submit)'s item itself


def test_reap_one_is_the_item_reap_would_give(ring, rfd):
    assert ring.reap_one() is None                       # nothing: None, at once
    ring.prep_nop(user_data="a")
    ring.prep_read(rfd, 4, 8, user_data="r")             # a result maker: new bytes
    ring.prep_timeout(0.02, user_data="t")
    ring.submit()
    assert ring.reap_one(True) == ("a", 0, 0)
    assert ring.reap_one(wait=True) == ("r", TMP_CONTENT[8:12], 0)
    assert ring.reap_one() is None                       # the timeout is not due
    assert ring.reap_one(True) == ("t", -errno.ETIME, 0)
    assert ring.cq_ready() == 0 and ring.in_flight() == 0


def test_reap_one_submit_true_submits_waits_and_reaps(ring):
    ring.prep_nop(user_data=1)
    assert ring.sq_ready() == 1
    assert ring.reap_one(True, True) == (1, 0, 0)
    assert ring.sq_ready() == 0 and ring.cq_ready() == 0
    ring.prep_timeout(0.05, user_data="later")
    assert ring.reap_one(submit=True) is None            # submitted, not due yet
    assert ring.sq_ready() == 0 and ring.in_flight() == 1
    assert ring.reap_one(True) == ("later", -errno.ETIME, 0)
    assert ring.in_flight() == 0
    blocks(ring.reap_one, True, True)                    # as liburing's wait


def test_reap_one_takes_the_peeked_completions_first_in_order(ring):
    for name in "abc":
        ring.prep_nop(user_data=name)
    ring.submit_and_wait(3)
    assert ring.peek_cqe().get_data() == "a"             # now in the queue
    assert [ring.reap_one() for _ in range(4)] == [("a", 0, 0), ("b", 0, 0), ("c", 0, 0), None]


def test_reap_one_matches_reap_through_an_overflowed_queue():
    # 12 completions on a ring whose CQ holds 8: the rest wait in the
    # kernel's backlog; one at a time they all come back, in order
    with IoUring(4) as r:
        for batch in range(3):
            for i in range(4):
                r.prep_nop(user_data=batch * 4 + i)
            r.submit()
        got = [r.reap_one() for _ in range(13)]
        assert got == [(i, 0, 0) for i in range(12)] + [None]
        assert r.in_flight() == 0


@pytest.mark.parametrize("args, kwargs, exc", [
    ((1, 2, 3), {}, TypeError),
    ((), {"count": 1}, TypeError),
    ((BadBool(),), {}, ZeroDivisionError),
    ((False, BadBool()), {}, ZeroDivisionError),
])
def test_reap_one_argument_errors_take_nothing(ring, args, kwargs, exc):
    ring.prep_nop(user_data="stays")
    ring.submit_and_wait(1)
    with pytest.raises(exc):
        ring.reap_one(*args, **kwargs)
    assert ring.reap_one() == ("stays", 0, 0)


def test_reap_one_leaves_no_reference_behind(ring, rfd):
    token = Token()
    ref = weakref.ref(token)
    before = sys.getrefcount(token)
    for _ in range(20):
        ring.prep_read(rfd, 16, 0, user_data=token)
        got = ring.reap_one(True, True)
        assert got == (token, TMP_CONTENT[:16], 0) and got[0] is token
        del got
    assert sys.getrefcount(token) == before
    del token
    assert ref() is None


BIG = 10 ** 30   # an int no cache holds: its reference count is ours to read
# where reap_one() refills no tuple: free-threaded builds, and 3.14 on
# (tuples cache their hash there)
NO_REFILL = (bool(__import__("sysconfig").get_config_var("Py_GIL_DISABLED"))
             or sys.version_info >= (3, 14))


@pytest.mark.skipif(NO_REFILL, reason="no tuple is refilled there")
def test_reap_one_refills_a_dropped_tuple_and_never_a_held_one(ring):
    # one round trip at a time: the tuple the caller dropped is filled again
    # (as zip() reuses its own); one the caller holds never changes
    ring.prep_nop(user_data=BIG)
    first = ring.reap_one(True, True)
    first_id = id(first)
    del first
    ring.prep_nop(user_data=BIG + 1)
    held = ring.reap_one(True, True)
    assert held == (BIG + 1, 0, 0) and id(held) == first_id   # the same tuple
    ring.prep_nop(user_data=BIG + 2)
    other = ring.reap_one(True, True)
    assert other is not held and other == (BIG + 2, 0, 0)
    assert held == (BIG + 1, 0, 0)                            # untouched
    ring.prep_timeout(0.001, user_data=3)                     # not a plain record
    assert ring.reap_one(True, True) == (3, -errno.ETIME, 0)
    assert held == (BIG + 1, 0, 0) and other == (BIG + 2, 0, 0)


class IntWithDel(int):
    dropped = 0

    def __del__(self):
        IntWithDel.dropped += 1


@pytest.mark.parametrize("make", [Token, lambda: IntWithDel(5)], ids=["object", "int-subclass"])
def test_reap_one_keeps_no_user_data_but_plain_ints(ring, make):
    # only exact ints may stay in the refilled tuple until the next
    # reap_one(): any other user data goes when the caller drops the tuple
    IntWithDel.dropped = 0
    data = make()
    ref = weakref.ref(data) if isinstance(data, Token) else None
    before = sys.getrefcount(data)
    ring.prep_nop(user_data=BIG)
    assert ring.reap_one(True, True) == (BIG, 0, 0)          # an int tuple first
    ring.prep_nop(user_data=data)
    got = ring.reap_one(True, True)
    assert got == (data, 0, 0) and got[0] is data
    del got
    assert sys.getrefcount(data) == before
    del data
    assert (ref() is None) if ref is not None else IntWithDel.dropped == 1


def test_reap_one_on_a_closed_ring():
    r = IoUring(4)
    r.queue_exit()
    with pytest.raises(ValueError):
        r.reap_one()


# --------------------------------------------------------------------------
# records are reused: what a user holds is never handed out again


def _live_sqes():
    gc.collect()
    return sum(1 for o in gc.get_objects() if type(o) is py_io_uring.Sqe)


def test_an_sqe_the_user_holds_is_never_reused(ring):
    held = ring.get_sqe()
    held.prep_nop()
    held.set_data("held")
    ud = held.user_data()
    ring.submit_and_wait(1)
    assert ring.reap(1) == [("held", 0, 0)]
    for i in range(300):                      # many records come and go
        ring.prep_nop(user_data=i)
        ring.reap(1, 1, True)
    fresh = [ring.get_sqe() for _ in range(8)]
    assert all(s is not held for s in fresh)
    assert held.user_data() == ud             # unchanged: it was not recycled
    with pytest.raises(ValueError):           # and still a submitted Sqe
        held.prep_nop()
    ring.submit_and_wait(8)
    ring.reap(8)


def test_a_weakly_referenced_sqe_dies_instead_of_being_reused(ring):
    s = ring.get_sqe()
    s.prep_nop()
    ref = weakref.ref(s)
    del s
    ring.submit_and_wait(1)
    ring.reap(1)
    assert ref() is None


def test_recycled_records_let_go_of_user_data_and_ring(ring):
    tokens = [Token() for _ in range(16)]
    refs = [weakref.ref(t) for t in tokens]
    ring.prep_many("nop", user_data=tokens)
    del tokens
    ring.reap(16, 16, True)
    assert all(r() is None for r in refs)     # the kept records hold no user data
    r2 = IoUring(8)
    ring_ref = weakref.ref(r2)
    r2.prep_many("nop", user_data=range(8))
    r2.reap(8, 8, True)
    del r2                                     # kept records hold no ring: freed at once
    assert ring_ref() is None


def test_queue_exit_frees_the_kept_records():
    base = _live_sqes()
    r = IoUring(64)
    for _ in range(4):
        r.prep_many("nop", user_data=range(64))
        r.reap(64, 64, True)
    kept = _live_sqes() - base
    # kept for reuse, bounded (none under AddressSanitizer, which must see
    # a record used after its end)
    assert kept <= 128
    assert kept > 0 or os.environ.get("PY_IO_URING_ASAN")
    r.queue_exit()
    assert _live_sqes() == base


@pytest.mark.parametrize("how", ["list", "columns", "one"])
def test_one_reap_ends_plain_and_pinning_records_alike(ring, tmp_path, how):
    # reap()'s direct path ends a record that holds nothing but inline
    # buffer pins (a NOP, a close, a read into a buffer) with its slot and
    # the pins' release alone, and the others (a timeout's timespec, user
    # data a range) by the full path: in one batch, each must come back
    # with its own user data and result, and let go of what it held.
    # reap_one() takes a plain first completion by a path of its own
    # (pu_reap_one_plain), the rest by the general one.
    columns = how == "columns"
    path = tmp_path / "f"
    path.write_bytes(b"abcdefgh")
    fd = os.open(path, os.O_RDONLY)
    bufs = [bytearray(4) for _ in range(3)]
    tokens = [Token() for _ in range(3)]
    refs = [weakref.ref(t) for t in tokens]
    try:
        for i in range(3):
            ring.prep_nop(user_data=tokens[i])
            ring.prep_read(fd, bufs[i], 4 * (i % 2), user_data=("read", i))
        ring.prep_timeout(0.0, user_data="timeout")
        ring.prep_nop(user_data=range(3))
        ring.submit_and_wait(8)
        got = reap_n(ring, 8) if how == "list" else None
        if how == "one":
            got = [ring.reap_one() for _ in range(8)]
            assert ring.reap_one() is None
        if columns:
            data, res, flags = ring.reap(8, 0, True, columns=True)
            assert len(data) == len(res) == len(flags) == 8
            got = list(zip(data, res, flags))
        seen = {repr(d): r for d, r, _ in got}
        for i in range(3):
            assert seen[repr(("read", i))] == 4
            assert bytes(bufs[i]) == (b"abcd", b"efgh")[i % 2]
            bufs[i].extend(b"!")            # the pin went with the read's end
        assert seen["'timeout'"] == -errno.ETIME
        assert seen[repr(range(3))] == 0
        assert sum(1 for d, _, _ in got if isinstance(d, Token)) == 3
        del got, seen
        if columns:
            del data
        del tokens
        gc.collect()
        assert all(r() is None for r in refs)  # user data let go once reaped
        assert_nothing_queued(ring)
    finally:
        os.close(fd)


class ReleaseCounted:
    """A buffer whose exporter is Python code (3.12's __buffer__): the
    count of its releases, and whether it raises from the release."""

    def __init__(self, size, fail=False):
        self.data = bytearray(size)
        self.released = 0
        self.fail = fail

    def __buffer__(self, flags):
        return memoryview(self.data)

    def __release_buffer__(self, view):
        self.released += 1
        view.release()
        if self.fail:
            raise ValueError("release refused")


@pytest.mark.skipif(sys.version_info < (3, 12), reason="__buffer__ is 3.12's")
@pytest.mark.parametrize("fail", [False, True], ids=["quiet", "raising"])
@pytest.mark.parametrize("how", ["reap", "columns", "one", "cqe"])
def test_a_pin_released_at_the_reap_runs_its_release_once(ring, rfd, how, fail, monkeypatch):
    # a read into a buffer ends by the plain path, which releases the pin
    # itself: the exporter's __release_buffer__ runs once, after the
    # completion, and what it raises is reported as unraisable, never
    # left set under the reap's result
    seen = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: seen.append(u.exc_type))
    bufs = [ReleaseCounted(8, fail) for _ in range(3)]
    for i, b in enumerate(bufs):
        ring.prep_read(rfd, b, 8 * i, user_data=i)
    assert [b.released for b in bufs] == [0, 0, 0]
    ring.submit_and_wait(3)
    if how == "reap":
        got = sorted(ring.reap(3))
    elif how == "columns":
        got = sorted(zip(*ring.reap(3, columns=True)))
    elif how == "one":
        got = sorted(ring.reap_one() for _ in range(3))
    else:
        got = []
        for _ in range(3):
            cqe = ring.peek_cqe()
            got.append((cqe.get_data(), cqe.res(), cqe.flags()))
            ring.cqe_seen(cqe)
        got.sort()
    assert got == [(i, 8, 0) for i in range(3)]
    assert [b.released for b in bufs] == [1, 1, 1]
    assert [bytes(b.data) for b in bufs] == [TMP_CONTENT[8 * i:8 * i + 8] for i in range(3)]
    assert seen == ([ValueError] * 3 if fail else [])
    assert_nothing_queued(ring)


class ReleaseUsesRing(ReleaseCounted):
    """A release that reaps from the ring whose reap releases it (refused:
    the completion side is the outer reap's) and queues a NOP (allowed)."""

    def __init__(self, size, ring):
        super().__init__(size)
        self.ring = ring
        self.refused = []

    def __release_buffer__(self, view):
        super().__release_buffer__(view)
        try:
            self.ring.reap(8)
        except RuntimeError as e:
            self.refused.append(str(e))
        self.ring.prep_nop(user_data=("from release", self.released))


@pytest.mark.skipif(sys.version_info < (3, 12), reason="__buffer__ is 3.12's")
@pytest.mark.parametrize("how", ["reap", "columns", "one"])
def test_a_release_at_the_reap_cannot_reap_the_same_ring(ring, rfd, how):
    bufs = [ReleaseUsesRing(8, ring) for _ in range(3)]
    for i, b in enumerate(bufs):
        ring.prep_read(rfd, b, 8 * i, user_data=i)
    ring.submit_and_wait(3)
    if how == "reap":
        got = sorted(ring.reap(3))
    elif how == "columns":
        got = sorted(zip(*ring.reap(3, columns=True)))
    else:
        got = sorted(ring.reap_one() for _ in range(3))
    assert got == [(i, 8, 0) for i in range(3)]
    assert [b.released for b in bufs] == [1, 1, 1]
    assert all(len(b.refused) == 1 for b in bufs)
    # the NOPs the releases queued go through the ring as any other entry
    ring.submit_and_wait(3)
    assert sorted(reap_n(ring, 3)) == [(("from release", 1), 0, 0)] * 3
    assert_nothing_queued(ring)
