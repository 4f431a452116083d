"""The IoUring object: set-up and tear-down, the queues' bookkeeping, waiting,
and the semantics the original module (the seed's help() listing) promised."""

import errno
import inspect
import os
import re
import select
import signal
import sys
import threading
import time
import weakref

import pytest

import py_io_uring
from py_io_uring import IoUring
from uring_helpers import WAIT, blocks, by_data, closed_fd, eventfd, eventfd_read, need, parse_ops, prep, run_op, wait_n, wait_one

# Methods that need an initialised ring, with arguments that would be valid on
# one.  Used to check that a closed or never-initialised ring refuses them.
RING_METHODS = [
    ("get_sqe", ()),
    ("submit", ()),
    ("submit_and_wait", (1,)),
    ("wait_cqe", ()),
    ("wait_cqe_nr", (1,)),
    ("wait_cqes", (1,)),
    ("peek_cqe", ()),
    ("sq_ready", ()),
    ("sq_space_left", ()),
    ("cq_ready", ()),
    ("cq_event_fd_enabled", ()),
    ("register_eventfd", (0,)),
    ("unregister_eventfd", ()),
    ("cq_eventfd_toggle", (True,)),
    ("get_events", ()),
    ("submit_and_get_events", ()),
    ("fileno", ()),
    ("in_flight", ()),
    ("probe", ()),
    ("opcode_supported", (0,)),
    ("enable_rings", ()),
    ("prep_many", ("nop", [()])),
    ("reap", (1,)),
    ("register_iowq_max_workers", (0, 0)),
    ("register_iowq_aff", ([0],)),
    ("unregister_iowq_aff", ()),
]

NOT_OPEN_MSG = r"(?i)(not\s+(been\s+)?initiali[sz]ed|uninitiali[sz]ed|closed|exited)"

# The kernel ABI values of the constants ops.def exports (include/uapi/linux/io_uring.h).
KNOWN_CONSTANTS = {
    "AT_FDCWD": -100,
    "IORING_SETUP_IOPOLL": 1 << 0,
    "IORING_SETUP_SQPOLL": 1 << 1,
    "IORING_SETUP_SQ_AFF": 1 << 2,
    "IORING_SETUP_CQSIZE": 1 << 3,
    "IORING_SETUP_CLAMP": 1 << 4,
    "IORING_SETUP_SUBMIT_ALL": 1 << 7,
    "IORING_SETUP_COOP_TASKRUN": 1 << 8,
    "IORING_SETUP_SINGLE_ISSUER": 1 << 12,
    "IORING_SETUP_DEFER_TASKRUN": 1 << 13,
    "IORING_CQE_F_BUFFER": 1 << 0,
    "IORING_CQE_F_MORE": 1 << 1,
    "IORING_CQE_F_SOCK_NONEMPTY": 1 << 2,
    "IORING_CQE_F_NOTIF": 1 << 3,
    "IORING_TIMEOUT_ABS": 1 << 0,
    "IORING_TIMEOUT_BOOTTIME": 1 << 2,
    "IORING_TIMEOUT_REALTIME": 1 << 3,
    "IORING_TIMEOUT_ETIME_SUCCESS": 1 << 5,
    "IORING_ASYNC_CANCEL_ALL": 1 << 0,
    "IORING_ASYNC_CANCEL_FD": 1 << 1,
    "IORING_ASYNC_CANCEL_ANY": 1 << 2,
    "IOSQE_FIXED_FILE": 1 << 0,
    "IOSQE_IO_DRAIN": 1 << 1,
    "IOSQE_IO_LINK": 1 << 2,
    "IOSQE_IO_HARDLINK": 1 << 3,
    "IOSQE_ASYNC": 1 << 4,
    "IOSQE_BUFFER_SELECT": 1 << 5,
    "IOSQE_CQE_SKIP_SUCCESS": 1 << 6,
}


_HEADER_NAMES = []     # the header's identifiers, read once


def _header_defines(name):
    """Whether the installed liburing headers define `name` (True when the
    headers cannot be read: then every constant is expected).  The header's
    identifiers are read once per process: a regex per constant churned
    re's cache and made the leak run's block counts drift."""
    if name == "AT_FDCWD":
        return True
    if not _HEADER_NAMES:
        try:
            with open("/usr/include/liburing/io_uring.h", encoding="utf-8") as f:
                _HEADER_NAMES.append(frozenset(re.findall(r"\w+", f.read())))
        except OSError:
            _HEADER_NAMES.append(None)
    names = _HEADER_NAMES[0]
    return names is None or name in names


# --------------------------------------------------------------------------
# The module


def test_module_exports_types_and_exception():
    assert isinstance(IoUring, type)
    assert isinstance(py_io_uring.Sqe, type)
    assert isinstance(py_io_uring.Cqe, type)
    assert issubclass(py_io_uring.SubmissionQueueFull, RuntimeError)


def test_constants_of_ops_def_are_exported_with_kernel_values():
    _, consts = parse_ops()
    assert "AT_FDCWD" in consts and "IOSQE_IO_LINK" in consts
    for name in consts:
        if not _header_defines(name):
            continue
        value = getattr(py_io_uring, name)
        assert type(value) is int, name
        if name in KNOWN_CONSTANTS:
            assert value == KNOWN_CONSTANTS[name], name


@pytest.mark.parametrize("cls", ["Sqe", "Cqe"])
def test_sqe_and_cqe_cannot_be_instantiated(cls):
    with pytest.raises(TypeError):
        getattr(py_io_uring, cls)()


# --------------------------------------------------------------------------
# Set-up and tear-down


@pytest.mark.parametrize("name, args", RING_METHODS, ids=[m for m, _ in RING_METHODS])
def test_uninitialised_ring_refuses_methods(name, args):
    r = IoUring()
    with pytest.raises(ValueError, match=NOT_OPEN_MSG):
        getattr(r, name)(*args)
    r.queue_exit()  # harmless on a never-initialised ring


@pytest.mark.parametrize("name, args", RING_METHODS, ids=[m for m, _ in RING_METHODS])
def test_exited_ring_refuses_methods(name, args):
    r = IoUring()
    r.queue_init(8)
    r.queue_exit()
    with pytest.raises(ValueError, match=NOT_OPEN_MSG):
        getattr(r, name)(*args)


def test_queue_exit_twice_is_harmless():
    r = IoUring(8)
    r.queue_exit()
    r.queue_exit()
    with pytest.raises(ValueError):
        r.sq_ready()


def test_constructor_with_entries_initialises():
    for r in (IoUring(8), IoUring(8, 0), IoUring(entries=8, flags=0)):
        try:
            assert r.sq_space_left() == 8
            run_op(r, "nop")
        finally:
            r.queue_exit()


def test_constructor_with_none_does_not_initialise():
    r = IoUring(None)
    with pytest.raises(ValueError):
        r.sq_ready()
    r.queue_init(4)
    assert r.sq_space_left() == 4
    r.queue_exit()


def test_queue_init_rounds_up_to_power_of_two():
    r = IoUring()
    r.queue_init(5)
    try:
        assert r.sq_space_left() == 8
    finally:
        r.queue_exit()


@pytest.mark.parametrize("entries", [0, -1, -64])
def test_queue_init_bad_entries_is_einval(entries):
    r = IoUring()
    with pytest.raises(OSError) as ei:
        r.queue_init(entries, 0)
    assert ei.value.errno == errno.EINVAL
    # Still uninitialised, and usable once properly initialised.
    with pytest.raises(ValueError):
        r.sq_ready()
    r.queue_init(4)
    r.queue_exit()


def test_constructor_bad_entries_is_einval():
    with pytest.raises(OSError) as ei:
        IoUring(-1)
    assert ei.value.errno == errno.EINVAL


def test_queue_init_passes_flags_to_the_kernel():
    # 2**20 entries is above the kernel's maximum (32768): EINVAL, unless
    # IORING_SETUP_CLAMP asks the kernel to clamp it.
    r = IoUring()
    with pytest.raises(OSError) as ei:
        r.queue_init(1 << 20)
    assert ei.value.errno == errno.EINVAL
    r.queue_init(1 << 20, py_io_uring.IORING_SETUP_CLAMP)
    try:
        assert r.sq_space_left() == 32768
        run_op(r, "nop")
    finally:
        r.queue_exit()


def test_queue_init_twice_is_value_error(ring):
    with pytest.raises(ValueError):
        ring.queue_init(8)
    # The ring is untouched by the failed call.
    assert ring.sq_space_left() == 64
    run_op(ring, "nop")


def test_with_statement_closes_ring():
    with IoUring() as r:
        assert isinstance(r, IoUring)
        r.queue_init(64)
        run_op(r, "nop")
    with pytest.raises(ValueError, match=NOT_OPEN_MSG):
        r.get_sqe()


def test_with_statement_enter_returns_the_ring_itself():
    ring = IoUring(8)
    with ring as r:
        assert r is ring
    with pytest.raises(ValueError):
        ring.sq_ready()


def test_with_statement_exception_propagates_and_closes():
    r = IoUring()
    with pytest.raises(ZeroDivisionError):
        with r:
            r.queue_init(8)
            prep(r, "timeout", 60)
            r.submit()
            1 / 0
    with pytest.raises(ValueError):
        r.sq_ready()


def test_with_statement_on_uninitialised_ring_is_harmless():
    with IoUring() as r:
        pass
    with pytest.raises(ValueError):
        r.sq_ready()


def test_ring_supports_weakref():
    r = IoUring()
    assert weakref.ref(r)() is r


# --------------------------------------------------------------------------
# The queues, step by step (the seed's semantics)


def test_seed_sequence():
    r = IoUring()
    r.queue_init(32, 0)
    try:
        assert r.sq_space_left() == 32
        assert r.sq_ready() == 0
        assert r.cq_ready() == 0
        assert r.peek_cqe() is None

        sqe = r.get_sqe()
        assert isinstance(sqe, py_io_uring.Sqe)
        sqe.prep_nop()
        assert r.sq_ready() == 1
        assert r.sq_space_left() == 31

        assert r.submit() == 1
        assert r.sq_ready() == 0
        assert r.sq_space_left() == 32

        cqe = r.wait_cqe()
        assert isinstance(cqe, py_io_uring.Cqe)
        assert r.cq_ready() == 1
        # The unseen completion stays at the head: peeking and waiting again
        # give the very same object.
        assert r.peek_cqe() is cqe
        assert r.wait_cqe() is cqe
        assert cqe.res() == 0
        assert cqe.flags() == 0
        assert cqe.get_data() is None

        r.cqe_seen(cqe)
        assert r.cq_ready() == 0
        assert r.peek_cqe() is None
    finally:
        r.queue_exit()


def test_submission_queue_full():
    r = IoUring(4)
    try:
        sqes = [r.get_sqe() for _ in range(4)]
        assert r.sq_space_left() == 0
        with pytest.raises(py_io_uring.SubmissionQueueFull):
            r.get_sqe()
        # Nothing was flushed behind our back.
        assert r.sq_ready() == 4
        with pytest.raises(RuntimeError):  # it is a RuntimeError too
            r.get_sqe()
        for i, s in enumerate(sqes):
            s.prep_nop()
            s.set_data(i)
        assert r.submit() == 4
        extra = r.get_sqe()  # works again
        extra.prep_nop()
        extra.set_data(4)
        assert r.submit() == 1
        cqes = wait_n(r, 5)
        assert sorted(c.get_data() for c in cqes) == [0, 1, 2, 3, 4]
        assert all(c.res() == 0 for c in cqes)
    finally:
        r.queue_exit()


def test_unprepared_sqe_is_submitted_as_nop(ring):
    sqe = ring.get_sqe()
    sqe.set_data("bare")
    assert ring.submit() == 1
    cqe = wait_one(ring)
    assert cqe.res() == 0
    assert cqe.get_data() == "bare"
    assert cqe.getresult() == 0


def test_submit_with_nothing_prepared_returns_zero(ring):
    assert ring.submit() == 0


def test_submit_and_wait(ring):
    for i in range(3):
        prep(ring, "nop", tag=i)
    assert ring.submit_and_wait(3) == 3
    assert ring.cq_ready() == 3
    assert [c.get_data() for c in wait_n(ring, 3)] == [0, 1, 2]


def test_submit_and_wait_default_waits_for_one(ring):
    prep(ring, "nop")
    assert ring.submit_and_wait() == 1
    assert ring.cq_ready() == 1
    wait_one(ring)


def test_wait_cqe_nr_returns_unseen_list_in_order(ring):
    for i in range(3):
        prep(ring, "nop", tag=i)
    ring.submit()
    cqes = ring.wait_cqe_nr(3)
    assert isinstance(cqes, list) and len(cqes) == 3
    assert all(isinstance(c, py_io_uring.Cqe) for c in cqes)
    # nops complete in submission order
    assert [c.get_data() for c in cqes] == [0, 1, 2]
    # not marked seen: each still needs cqe_seen
    assert ring.cq_ready() == 3
    assert ring.wait_cqe() is cqes[0]
    for n, c in enumerate(cqes):
        ring.cqe_seen(c)
        assert ring.cq_ready() == 2 - n
    assert ring.peek_cqe() is None


# wait_cqes(): liburing's io_uring_wait_cqes(), the oldest completion once
# wait_nr are ready

def test_wait_cqes_returns_the_oldest_unseen_once_wait_nr_are_ready(ring):
    for i in range(3):
        prep(ring, "nop", tag=i)
    ring.submit()
    cqe = ring.wait_cqes(3)
    assert isinstance(cqe, py_io_uring.Cqe) and cqe.get_data() == 0
    assert ring.cq_ready() == 3                 # not marked seen
    assert ring.wait_cqes(1) is cqe             # still the oldest
    for c in ring.wait_cqe_nr(3):
        ring.cqe_seen(c)
    assert ring.wait_cqes(0) is None            # a peek: nothing there


def test_wait_cqes_timeout_gives_what_is_there_or_none(ring):
    prep(ring, "timeout", 60, tag="long")
    ring.submit()
    t = time.monotonic()
    assert ring.wait_cqes(1, timeout=0.05) is None
    assert time.monotonic() - t >= 0.04
    prep(ring, "nop", tag="nop")
    ring.submit()
    # two wanted, one arrives: after the timeout the one that is there
    cqe = ring.wait_cqes(2, timeout=0.05)
    assert cqe.get_data() == "nop"
    ring.cqe_seen(cqe)


def test_wait_cqes_does_not_submit(ring):
    prep(ring, "nop", tag="queued")
    assert ring.wait_cqes(1, timeout=0.02) is None
    assert ring.sq_ready() == 1
    ring.submit()
    assert ring.wait_cqes(1).get_data() == "queued"


def _handler_delay(ring, sigmask):
    """How long after a 0.3 s wait_cqes() with nothing in flight began
    SIGALRM's handler ran, the alarm set for 0.05 s into the wait."""
    seen = []
    old = signal.signal(signal.SIGALRM, lambda *a: seen.append(time.monotonic()))
    try:
        start = time.monotonic()
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        assert ring.wait_cqes(1, timeout=0.3, sigmask=sigmask) is None
        deadline = time.monotonic() + 5
        while not seen and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert seen, "SIGALRM never handled"
    return seen[0] - start


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                    reason="signal handlers run in the main thread")
def test_wait_cqes_sigmask_blocks_those_signals_for_the_wait(ring):
    # blocked: delivered when the wait ends, at its 0.3 s timeout
    assert _handler_delay(ring, {signal.SIGALRM}) >= 0.25
    # not blocked: at 0.05 s, in the wait (which goes on after the handler)
    assert _handler_delay(ring, set()) < 0.25
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == set()   # mask restored


@pytest.mark.parametrize("sigmask, exc", [(5, TypeError), ([0], ValueError),
                                          ([signal.NSIG], ValueError), (["x"], TypeError)])
def test_wait_cqes_bad_sigmask(ring, sigmask, exc):
    with pytest.raises(exc, match="wait_cqes|sigmask|integer|signal"):
        ring.wait_cqes(1, timeout=0, sigmask=sigmask)


def test_reap_columns_is_deprecated_for_reap_columns_true(ring):
    for i in range(3):
        ring.prep_nop(user_data=i)
    ring.submit_and_wait(3)
    with pytest.warns(DeprecationWarning, match=r"reap\(count, wait_nr, submit, columns=True\)"):
        got = ring.reap_columns(2)
    assert got == ([0, 1], [0, 0], [0, 0])
    assert ring.reap(8, columns=True) == ([2], [0], [0])
    assert "Deprecated" in ring.reap_columns.__doc__


def test_reap_columns_is_keyword_only(ring):
    with pytest.raises(TypeError):
        ring.reap(1, 0, False, True)
    assert str(inspect.signature(IoUring.reap)) == "(self, /, count, wait_nr=0, submit=False, *, columns=False)"


def test_wait_cqe_nr_timeout_returns_what_arrived(ring):
    prep(ring, "timeout", 60, tag="long")
    prep(ring, "nop", tag="nop")
    ring.submit()
    t0 = time.monotonic()
    cqes = ring.wait_cqe_nr(2, timeout=0.2)
    elapsed = time.monotonic() - t0
    assert [c.get_data() for c in cqes] == ["nop"]
    assert 0.1 <= elapsed < WAIT
    ring.cqe_seen(cqes[0])


def test_wait_cqe_timeout_returns_none(ring):
    prep(ring, "timeout", 60)
    ring.submit()
    t0 = time.monotonic()
    assert ring.wait_cqe(timeout=0.05) is None
    elapsed = time.monotonic() - t0
    assert 0.03 <= elapsed < WAIT
    # keyword and positional forms
    assert ring.wait_cqe(0.01) is None


def test_wait_cqe_with_nothing_in_flight_blocks_as_liburing_does(ring):
    # another thread may submit, another ring may send a message: every
    # wait blocks until then, and a signal handler interrupts it
    blocks(ring.wait_cqe)
    blocks(ring.wait_cqe_nr, 2)
    blocks(ring.submit_and_wait, 1)
    blocks(ring.reap_one, True)
    # one completion of two wanted: the one that came is still there, unseen
    prep(ring, "nop")
    ring.submit()
    blocks(ring.wait_cqe_nr, 2)
    (cqe,) = ring.wait_cqe_nr(1)
    ring.cqe_seen(cqe)


def test_interrupted_idle_wait_says_why_on_its_exception(ring):
    if sys.version_info < (3, 11):
        pytest.skip("exception notes are 3.11 and later")
    exc = blocks(ring.wait_cqe)
    assert any("no operation of this IoUring in flight" in n for n in exc.__notes__)
    # with something in flight the wait is no mistake: no note
    prep(ring, "timeout", 30)
    ring.submit()
    exc = blocks(ring.wait_cqe)
    assert not getattr(exc, "__notes__", None)


def test_wait_with_nothing_in_flight_is_ended_by_a_message_from_another_ring(ring):
    need(ring, "msg_ring")
    other = IoUring(8)

    def send():
        time.sleep(0.1)
        other.prep_msg_ring(ring, 5, 77)
        other.submit_and_wait(1)

    t = threading.Thread(target=send)
    t.start()
    try:
        cqe = ring.wait_cqe()        # nothing of this ring in flight
        assert (cqe.user_data(), cqe.res()) == (77, 5)
        ring.cqe_seen(cqe)
    finally:
        t.join()
        other.queue_exit()


def test_wait_with_nothing_in_flight_is_ended_by_another_threads_submit(ring):
    def submit():
        time.sleep(0.1)
        ring.prep_nop(user_data="from the other thread")
        ring.submit()

    t = threading.Thread(target=submit)
    t.start()
    try:
        assert ring.reap_one(True) == ("from the other thread", 0, 0)
    finally:
        t.join()


def test_a_certain_mistake_still_raises_at_once(run_py):
    # entries prepared and never submitted, nothing in flight, and no other
    # thread in the interpreter: nothing can end the wait
    r = run_py(
        "from py_io_uring import IoUring\n"
        "ring = IoUring(8)\n"
        "ring.prep_nop(user_data=1)\n"
        "for call in (ring.wait_cqe, lambda: ring.reap(1, 1), lambda: ring.wait_cqe_nr(1)):\n"
        "    try:\n"
        "        call()\n"
        "    except RuntimeError as e:\n"
        "        assert 'submit()' in str(e) and '1 entry is' in str(e), e\n"
        "    else:\n"
        "        raise AssertionError('no error')\n"
        "assert ring.reap(1, 1, True) == [(1, 0, 0)]\n"
        "print('ok')\n",
        timeout=30,
    )
    assert r.returncode == 0 and r.stdout == "ok\n", r.stderr


def test_wait_with_timeout_and_nothing_in_flight_waits_the_timeout(ring):
    # nothing of ours can complete, but a msg_ring from another ring could
    t0 = time.monotonic()
    assert ring.wait_cqe_nr(3, timeout=0.1) == []
    assert ring.wait_cqe(timeout=0.1) is None
    assert 0.15 <= time.monotonic() - t0 < 2.0


def test_wait_cqe_returns_unseen_completion_without_anything_in_flight(ring):
    run_op(ring, "nop")  # now nothing is in flight
    prep(ring, "nop", tag="x")
    ring.submit()
    first = ring.wait_cqe()
    # The completion was reaped but not marked seen: waiting again does not
    # raise, it returns the same completion.
    assert ring.wait_cqe() is first
    ring.cqe_seen(first)


def test_cqe_seen_twice_is_a_no_op(ring):
    prep(ring, "nop", tag=1)
    prep(ring, "nop", tag=2)
    ring.submit()
    first = ring.wait_cqe()
    ring.wait_cqe_nr(2, timeout=WAIT)  # make sure both have been posted
    assert ring.cq_ready() == 2
    ring.cqe_seen(first)
    ring.cqe_seen(first)  # must not consume the second completion
    assert ring.cq_ready() == 1
    second = ring.peek_cqe()
    assert second.get_data() == 2
    ring.cqe_seen(second)
    assert ring.cq_ready() == 0


def test_cqe_seen_of_another_rings_cqe_is_value_error(ring):
    other = IoUring(4)
    try:
        prep(other, "nop")
        other.submit()
        foreign = other.wait_cqe()
        prep(ring, "nop")
        ring.submit()
        mine = ring.wait_cqe()
        with pytest.raises(ValueError):
            ring.cqe_seen(foreign)
        # Neither ring was disturbed.
        assert ring.cq_ready() == 1 and other.cq_ready() == 1
        ring.cqe_seen(mine)
        other.cqe_seen(foreign)
    finally:
        other.queue_exit()


@pytest.mark.parametrize("bad", [None, 0, "cqe", object()])
def test_cqe_seen_of_non_cqe_is_type_error(ring, bad):
    with pytest.raises(TypeError):
        ring.cqe_seen(bad)


def test_cqe_seen_of_an_sqe_is_type_error(ring):
    sqe = prep(ring, "nop")
    with pytest.raises(TypeError):
        ring.cqe_seen(sqe)
    ring.submit()
    wait_one(ring)


def test_cqe_accessors_keep_working_after_seen(ring, tmp_file):
    fd = os.open(tmp_file, os.O_RDONLY)
    try:
        token = object()
        _, cqe = run_op(ring, "read", fd, 10, 0, tag=token)
        for _ in range(2):
            assert cqe.res() == 10
            assert cqe.flags() == 0
            assert cqe.get_data() is token
            assert cqe.getresult() == bytes(range(10))
    finally:
        os.close(fd)


def test_cqe_outlives_its_ring():
    r = IoUring(4)
    token = ["token"]
    _, cqe = run_op(r, "nop", tag=token)
    r.queue_exit()
    assert cqe.res() == 0
    assert cqe.get_data() is token
    assert cqe.getresult() == 0
    del r


def test_completions_of_many_operations_are_matched_by_data(ring):
    # Out-of-order completion: a timeout submitted first completes last.
    prep(ring, "timeout", 0.05, tag="timeout")
    for i in range(10):
        prep(ring, "nop", tag=i)
    assert ring.submit() == 11
    got = by_data(wait_n(ring, 11))
    assert set(got) == set(range(10)) | {"timeout"}
    assert got["timeout"].res() == -errno.ETIME
    assert all(got[i].res() == 0 for i in range(10))


# --------------------------------------------------------------------------
# Introspection and registration


def test_probe_lists_every_op_of_ops_def(ring):
    supported = ring.probe()
    assert isinstance(supported, frozenset)
    assert all(isinstance(n, str) for n in supported)
    assert {"nop", "read", "write"} <= supported
    # probe() only names operations the module has, and kernel 6.18 supports
    # every op ops.def defines but the 128-byte ones (Linux 6.19)
    ops, _ = parse_ops()
    names = {op.name for op in ops}
    assert supported <= names
    assert names - supported <= {"nop128", "uring_cmd128"}
    for name in supported:
        assert callable(getattr(py_io_uring.Sqe, "prep_" + name))


def test_fileno_is_the_io_uring_fd(ring):
    fd = ring.fileno()
    assert type(fd) is int and fd >= 0
    assert "io_uring" in os.readlink("/proc/self/fd/%d" % fd)
    # close-on-exec, as the kernel sets it
    assert not os.get_inheritable(fd)


def test_in_flight_counts_acquired_and_submitted(ring):
    assert ring.in_flight() == 0
    t = prep(ring, "timeout", 60)
    assert ring.in_flight() == 1
    bare = ring.get_sqe()
    assert ring.in_flight() == 2
    ring.submit()
    assert ring.in_flight() == 2  # the timeout is pending
    wait_one(ring)  # the bare Sqe, a nop
    assert ring.in_flight() == 1
    c = ring.get_sqe()
    c.prep_cancel(t)
    ring.submit()
    wait_n(ring, 2)
    assert ring.in_flight() == 0
    del bare


def test_register_eventfd(ring):
    efd = eventfd()
    try:
        ring.register_eventfd(efd)
        assert ring.cq_event_fd_enabled() is True
        run_op(ring, "nop")
        readable, _, _ = select.select([efd], [], [], WAIT)
        assert readable == [efd]
        assert eventfd_read(efd) >= 1
        ring.unregister_eventfd()
        # No longer notified.
        run_op(ring, "nop")
        readable, _, _ = select.select([efd], [], [], 0.05)
        assert readable == []
    finally:
        os.close(efd)


def test_cq_eventfd_toggle_stops_and_resumes_the_signal(ring):
    efd = eventfd()
    try:
        ring.register_eventfd(efd)
        ring.cq_eventfd_toggle(False)
        assert ring.cq_event_fd_enabled() is False
        run_op(ring, "nop")
        readable, _, _ = select.select([efd], [], [], 0.05)
        assert readable == []
        ring.cq_eventfd_toggle(True)
        assert ring.cq_event_fd_enabled() is True
        run_op(ring, "nop")
        readable, _, _ = select.select([efd], [], [], WAIT)
        assert readable == [efd] and eventfd_read(efd) >= 1
    finally:
        os.close(efd)


DEFER = py_io_uring.IORING_SETUP_SINGLE_ISSUER | py_io_uring.IORING_SETUP_DEFER_TASKRUN


def test_get_events_posts_deferred_completions(pipe):
    # with DEFER_TASKRUN, a read that waited for data is completed by task
    # work, which runs only when the ring enters the kernel for events
    r, w = pipe
    with IoUring(4, DEFER) as ring:
        ring.prep_read(r, 8, user_data="r")
        assert ring.submit() == 1
        os.write(w, b"hi")
        time.sleep(0.05)
        assert ring.cq_ready() == 0
        ring.get_events()
        assert ring.cq_ready() == 1
        assert ring.reap(4) == [("r", b"hi", 0)]


def test_submit_and_get_events_submits_and_posts(pipe):
    r, w = pipe
    with IoUring(4, DEFER) as ring:
        ring.prep_read(r, 8, user_data="r")
        assert ring.submit_and_get_events() == 1
        assert ring.cq_ready() == 0                     # nothing to read yet
        os.write(w, b"yo")
        ring.prep_nop(user_data="n")
        assert ring.submit_and_get_events() == 1
        got = ring.reap(4)
        assert ("n", 0, 0) in got
        if len(got) == 1:                               # the read's task work came later
            time.sleep(0.05)
            assert ring.submit_and_get_events() == 0
            got += ring.reap(4)
        assert sorted(got, key=str) == sorted([("n", 0, 0), ("r", b"yo", 0)], key=str)


def test_register_eventfd_accepts_fileno_object(ring):
    class Holder:
        def __init__(self, fd):
            self.fd = fd

        def fileno(self):
            return self.fd

    efd = eventfd()
    try:
        ring.register_eventfd(Holder(efd))
        run_op(ring, "nop")
        assert select.select([efd], [], [], WAIT)[0] == [efd]
        ring.unregister_eventfd()
    finally:
        os.close(efd)


def test_register_eventfd_bad_fd(ring):
    with pytest.raises(OSError) as ei:
        ring.register_eventfd(closed_fd())
    assert ei.value.errno == errno.EBADF


def test_sqe_user_data_identifies_operations(ring):
    a = ring.get_sqe()
    b = ring.get_sqe()
    ua, ub = a.user_data(), b.user_data()
    assert type(ua) is int and type(ub) is int
    assert 0 <= ua < 2 ** 64 and 0 <= ub < 2 ** 64
    assert ua != ub
    ring.submit()
    wait_n(ring, 2)
    assert a.user_data() == ua  # stable after completion


@pytest.mark.parametrize("reap", ["wait_cqe_nr", "peek_cqe"])
def test_completion_queue_overflow_loses_nothing(reap):
    # A 4-entry ring has 8 CQ entries; 20 completions left unreaped overflow
    # into the kernel's backlog (IORING_FEAT_NODROP) and must all come back,
    # in order, by waiting or by peeking.
    r = IoUring(4)
    try:
        for batch in range(5):
            for i in range(4):
                prep(r, "nop", tag=batch * 4 + i)
            assert r.submit() == 4
        got = []
        for _ in range(100):  # bounded
            if len(got) == 20:
                break
            if reap == "wait_cqe_nr":
                cqes = r.wait_cqe_nr(20 - len(got), timeout=WAIT)
            else:
                c = r.peek_cqe()
                cqes = [c] if c is not None else []
            assert cqes
            for c in cqes:
                got.append(c.get_data())
                r.cqe_seen(c)
        assert got == list(range(20))
        assert r.in_flight() == 0
        assert r.cq_ready() == 0
    finally:
        r.queue_exit()


# --------------------------------------------------------------------------
# The ring's async workers (io-wq)


def test_iowq_max_workers_returns_the_old_caps(ring):
    bounded, unbounded = ring.register_iowq_max_workers(0, 0)   # 0, 0: only read
    assert bounded >= 1 and unbounded >= 1
    assert ring.register_iowq_max_workers(1, 2) == (bounded, unbounded)
    assert ring.register_iowq_max_workers(0, 0) == (1, 2)
    assert ring.register_iowq_max_workers(0, 3) == (1, 2)       # 0 keeps that cap
    assert ring.register_iowq_max_workers(0, 0) == (1, 3)


def test_iowq_capped_ring_still_runs_blocking_work(ring, tmp_path):
    # with one bounded worker, writes the kernel punts run one at a time
    ring.register_iowq_max_workers(1, 1)
    path = tmp_path / "f"
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        chunks = [bytes([i]) * 65536 for i in range(8)]
        for i, c in enumerate(chunks):
            ring.prep_write(fd, c, i * 65536, user_data=i, sqe_flags=py_io_uring.IOSQE_ASYNC)
        got = ring.reap(8, 8, True)
        assert sorted(got) == [(i, 65536, 0) for i in range(8)]
        assert os.pread(fd, 8 * 65536, 0) == b"".join(chunks)
    finally:
        os.close(fd)


@pytest.mark.parametrize("args, exc", [
    ((-1, 0), OverflowError), ((0, 2 ** 32), OverflowError), (("1", 0), TypeError),
    ((1,), TypeError), ((1, 2, 3), TypeError)])
def test_iowq_max_workers_bad_arguments(ring, args, exc):
    before = ring.register_iowq_max_workers(0, 0)
    with pytest.raises(exc):
        ring.register_iowq_max_workers(*args)
    assert ring.register_iowq_max_workers(0, 0) == before


def test_iowq_affinity(ring):
    cpus = sorted(os.sched_getaffinity(0))
    ring.register_iowq_aff(cpus[:1])
    run_op(ring, "nop")
    ring.unregister_iowq_aff()
    ring.register_iowq_aff(iter(cpus))   # any iterable of CPU numbers
    ring.unregister_iowq_aff()


@pytest.mark.parametrize("cpus, exc", [([], ValueError), ([-1], OverflowError),
                                       ([1 << 20], OverflowError), (["0"], TypeError),
                                       (5, TypeError)])
def test_iowq_affinity_bad_arguments(ring, cpus, exc):
    with pytest.raises(exc):
        ring.register_iowq_aff(cpus)


# --------------------------------------------------------------------------
# An entry that fails as it is submitted


def test_submit_goes_on_past_an_entry_the_kernel_refuses(ring):
    # the kernel stops submitting at an entry that fails at submission (an
    # unknown personality) and leaves the rest in the SQ; submit() hands
    # them in too, so every entry it counted completes
    pid = ring.register_personality()
    ring.unregister_personality(pid)
    for name in ("bad", "ok1", "bad2", "ok2"):
        s = ring.get_sqe()
        s.prep_nop()
        s.set_data(name)
        if name.startswith("bad"):
            s.set_personality(pid)
    assert ring.submit() == 4
    assert ring.sq_ready() == 0
    got = {c.get_data(): c.res() for c in ring.wait_cqe_nr(4)}
    assert got == {"bad": -errno.EINVAL, "ok1": 0, "bad2": -errno.EINVAL, "ok2": 0}
    ring.cq_advance(4)
    assert ring.in_flight() == 0


def test_submit_and_wait_waits_past_an_entry_the_kernel_refuses(ring):
    pid = ring.register_personality()
    ring.unregister_personality(pid)
    ring.prep_nop(user_data="bad", personality=pid)
    ring.prep_nop(user_data="ok")
    assert ring.submit_and_wait(2) == 2
    assert ring.cq_ready() == 2
    assert sorted(ring.reap(2)) == [("bad", -errno.EINVAL, 0), ("ok", 0, 0)]


# --------------------------------------------------------------------------
# Submit and wait: a submit alone first when completions may come inline


SETUPS = {
    "default": 0,
    "coop_taskrun": py_io_uring.IORING_SETUP_COOP_TASKRUN,
    "defer_taskrun": py_io_uring.IORING_SETUP_SINGLE_ISSUER | py_io_uring.IORING_SETUP_DEFER_TASKRUN,
}


@pytest.mark.parametrize("setup", sorted(SETUPS))
@pytest.mark.parametrize("how", ["submit_and_wait", "reap"])
def test_submit_and_wait_still_waits_for_what_completes_later(setup, how):
    # two NOPs complete inside the submit, the timeout 50 ms later: a wait
    # for three must not return on the two (the submit-alone shortcut)
    with IoUring(8, SETUPS[setup]) as ring:
        ring.prep_nop(user_data="a")
        ring.prep_timeout(0.05, user_data="t")
        ring.prep_nop(user_data="b")
        t0 = time.monotonic()
        if how == "reap":
            got = ring.reap(3, 3, True)
        else:
            assert ring.submit_and_wait(3) == 3
            got = ring.reap(3)
        assert time.monotonic() - t0 >= 0.04
        assert sorted(got) == [("a", 0, 0), ("b", 0, 0), ("t", -errno.ETIME, 0)]
        assert ring.in_flight() == 0


@pytest.mark.parametrize("setup", sorted(SETUPS))
def test_submit_and_wait_returns_on_inline_completions(setup):
    # NOPs complete in the submit: the wait is satisfied at once, and what
    # is still in flight (a long timeout) does not hold it up
    with IoUring(8, SETUPS[setup]) as ring:
        ring.prep_timeout(30, user_data="late")
        for i in range(3):
            ring.prep_nop(user_data=i)
        t0 = time.monotonic()
        assert ring.submit_and_wait(3) == 4
        assert sorted(ring.reap(8)) == [(0, 0, 0), (1, 0, 0), (2, 0, 0)]
        assert time.monotonic() - t0 < 5
        ring.prep_timeout_remove("late", user_data="rm")
        ring.submit()
        assert sorted(ring.reap(2, 2)) == [("late", -errno.ECANCELED, 0), ("rm", 0, 0)]


def test_submit_and_wait_counts_what_went_in_when_the_wait_is_interrupted():
    # a signal during the wait: the entries are in (counted by the next
    # wait's completions), the handler's exception comes out, nothing is lost
    import signal

    def boom(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGALRM, boom)
    try:
        with IoUring(8) as ring:
            ring.prep_nop(user_data="n")
            ring.prep_timeout(0.3, user_data="t")
            signal.setitimer(signal.ITIMER_REAL, 0.05)
            with pytest.raises(KeyboardInterrupt):
                ring.submit_and_wait(2)
            assert ring.sq_ready() == 0 and ring.in_flight() == 2
            assert sorted(ring.reap(2, 2)) == [("n", 0, 0), ("t", -errno.ETIME, 0)]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def test_waits_alternating_inline_and_later_completions_stay_exact(ring):
    # a wait that a submit alone cannot satisfy switches the next waits to
    # the combined call for a while, then back: every wait, either way,
    # returns exactly when its completions are there
    for i in range(150):
        if i % 3 == 0:
            ring.prep_timeout(0.001, user_data=("t", i))
            want = [(("t", i), -errno.ETIME, 0)]
        else:
            ring.prep_nop(user_data=("n", i))
            want = [(("n", i), 0, 0)]
        assert ring.reap(1, 1, True) == want
    assert ring.in_flight() == 0 and ring.cq_ready() == 0
