"""What reap() reuses from one call to the next, against the real kernel:
the list and the (user_data, result, flags) tuples of its last call once
the caller has dropped them (as zip() and enumerate() reuse their tuple),
and the int of a result that repeats.  What a caller can rely on: a list or
tuple it holds never changes, every item is the completion it stands for,
nothing but exact ints stays alive in what the ring keeps, and what it
keeps goes with the ring.  (reap_one()'s refill: test_fast_forms.py.)"""

import errno
import gc
import os
import sys
import sysconfig
import weakref

import pytest

from py_io_uring import IoUring
from op_helpers import Token
from uring_helpers import TMP_CONTENT, closed_fd

BIG = 10 ** 30   # an int no cache holds: its reference count is ours to read
# free-threaded builds and 3.14 on refill no tuple (3.14's tuples cache
# their hash)
NO_REFILL = bool(sysconfig.get_config_var("Py_GIL_DISABLED")) or sys.version_info >= (3, 14)
refills = pytest.mark.skipif(NO_REFILL, reason="no tuple is refilled there")


def nops(ring, datas):
    for d in datas:
        ring.prep_nop(user_data=d)
    return ring.reap(len(datas), len(datas), True)


def kept_lists(ring):
    """The lists the ring holds (its GC traverse shows them)."""
    return [o for o in gc.get_referents(ring) if type(o) is list]


@refills
def test_a_dropped_list_is_refilled_and_a_held_one_never_changes(ring):
    first = nops(ring, [BIG + i for i in range(8)])
    ids = (id(first), [id(t) for t in first])
    del first
    again = nops(ring, [BIG + 10 + i for i in range(8)])
    assert again == [(BIG + 10 + i, 0, 0) for i in range(8)]
    assert (id(again), [id(t) for t in again]) == ids          # the same list and tuples
    held = again
    other = nops(ring, [BIG + 20 + i for i in range(8)])      # `held` is held: a new list
    assert other is not held and other == [(BIG + 20 + i, 0, 0) for i in range(8)]
    assert held == [(BIG + 10 + i, 0, 0) for i in range(8)]    # untouched
    one = held[3]
    del held, other
    fewer = nops(ring, [1, 2])                                 # fewer items than the list had
    assert fewer == [(1, 0, 0), (2, 0, 0)]
    more = nops(ring, list(range(30, 50)))                     # more than it has room for
    assert more == [(i, 0, 0) for i in range(30, 50)]
    assert one == (BIG + 13, 0, 0)


@refills
def test_a_tuple_the_caller_kept_is_never_refilled(ring):
    got = nops(ring, [BIG, BIG + 1, BIG + 2])
    mine = got[1]
    del got
    again = nops(ring, [BIG + 5, BIG + 6, BIG + 7])
    assert again == [(BIG + 5, 0, 0), (BIG + 6, 0, 0), (BIG + 7, 0, 0)]
    assert again[1] is not mine and mine == (BIG + 1, 0, 0)


class Dropped:
    count = 0

    def __del__(self):
        Dropped.count += 1


@refills
def test_what_the_caller_put_into_a_dropped_list_is_released_and_never_reused(ring):
    # the caller may change the list before dropping it: only tuples of
    # three exact ints that nobody else holds are refilled
    Dropped.count = 0
    token = Token()
    ref = weakref.ref(token)
    got = nops(ring, [BIG + i for i in range(6)])
    got[0] = (token, 0, 0)                    # not ints
    got[1] = (1, 2)                           # not three
    got[2] = Dropped()                        # not a tuple
    got[3] = (BIG, 0, Dropped())              # an item not an int
    got.append((5, 5, 5))
    del got, token
    assert ref() is not None                  # in the ring's list until the next reap()
    again = nops(ring, [7, 8, 9, 10, 11, 12, 13])
    assert again == [(i, 0, 0) for i in range(7, 14)]
    assert ref() is None and Dropped.count == 2
    assert all(type(t) is tuple and len(t) == 3 for t in again)


@refills
def test_only_a_list_of_ints_is_kept(ring, rfd):
    token = Token()
    ref = weakref.ref(token)
    got = nops(ring, [1, token, 3])
    assert got == [(1, 0, 0), (token, 0, 0), (3, 0, 0)]
    del got, token
    assert ref() is None and kept_lists(ring) == []           # gone with the caller's list
    # a result that is not an int (the bytes a read allocated) is not kept either
    ring.prep_read(rfd, 4, 0, user_data=1)
    got = ring.reap(1, 1, True)
    assert got[0][1] == TMP_CONTENT[:4] and kept_lists(ring) == []
    got = nops(ring, [1, 2])
    assert kept_lists(ring) == [got]


@refills
@pytest.mark.parametrize("end", ["queue_exit", "del"])
@pytest.mark.parametrize("form", ["reap", "reap_one"])
def test_what_is_kept_for_refilling_goes_with_the_ring(form, end):
    # reap()'s list or reap_one()'s tuple, kept for the next call
    big = BIG * 3
    before = sys.getrefcount(big)
    r = IoUring(8)
    if form == "reap":
        assert nops(r, [big]) == [(big, 0, 0)]
    else:
        r.prep_nop(user_data=big)
        assert r.reap_one(True, True) == (big, 0, 0)
    assert sys.getrefcount(big) == before + 1                 # in what the ring kept
    if end == "queue_exit":
        r.queue_exit()
    else:
        del r
        gc.collect()
    assert sys.getrefcount(big) == before


@refills
def test_a_cycle_through_the_kept_list_is_collected():
    # the caller puts the ring itself into the list it drops: the GC sees
    # the list through the ring and collects both
    r = IoUring(8)
    ref = weakref.ref(r)
    got = nops(r, [1, 2])
    got.append(r)
    del got, r
    gc.collect()
    assert ref() is None


@refills
def test_code_run_by_a_dropped_list_item_inside_reap_cannot_use_the_ring():
    # a dropped list's item that is not a refillable tuple is released while
    # reap() holds the completion side: a finalizer there that reaps or
    # closes the same ring is refused or deferred, and the outer reap()
    # still returns every completion
    r = IoUring(16)
    seen = []

    class Reenter:
        def __del__(self):
            for call in (lambda: r.reap(4), r.queue_exit):
                try:
                    call()
                    seen.append("ok")
                except (RuntimeError, ValueError) as exc:
                    seen.append(type(exc).__name__)

    got = nops(r, [BIG + i for i in range(4)])
    got[1] = Reenter()
    got.append(r)                                             # a cycle too
    del got
    assert nops(r, list(range(6))) == [(i, 0, 0) for i in range(6)]
    assert seen == ["RuntimeError", "ok"]                     # refused; deferred
    with pytest.raises(ValueError):                           # closed once the call returned
        r.reap(1)


def test_repeated_results_read_the_same_and_change_when_they_do(tmp_path):
    # results of 256 or more repeat for reads of one size: each completion
    # still reads as its own result, whatever came before
    path = tmp_path / "f"
    path.write_bytes(bytes(range(256)) * 8)
    fd = os.open(path, os.O_RDONLY)
    r = IoUring(16)
    try:
        bufs = [bytearray(n) for n in (300, 300, 500, 300, 1000, 1000)]
        for i, b in enumerate(bufs):
            r.prep_read(fd, b, 0, user_data=i)
        bad = closed_fd()
        r.prep_read(bad, bytearray(300), 0, user_data=6)
        r.prep_read(bad, bytearray(300), 0, user_data=7)
        got = sorted(r.reap(8, 8, True))
        assert got == [(0, 300, 0), (1, 300, 0), (2, 500, 0), (3, 300, 0), (4, 1000, 0),
                       (5, 1000, 0), (6, -errno.EBADF, 0), (7, -errno.EBADF, 0)]
        r.prep_read(fd, bytearray(2048), 0, user_data=8)
        r.prep_read(fd, bytearray(4096), 0, user_data=9)       # short: the file has 2048
        assert sorted(r.reap(2, 2, True, columns=True)[1]) == [2048, 2048]
    finally:
        r.queue_exit()
        os.close(fd)
