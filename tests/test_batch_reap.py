"""Batch reaping (IoUring.peek_batch_cqe, IoUring.cq_advance) and the free
lists of Sqe and Cqe objects: data, errors, lifetime."""

import gc
import weakref

import pytest

from py_io_uring import Cqe, IoUring
from uring_helpers import WAIT, prep


class Token:
    pass


def nops(ring, tags):
    for t in tags:
        prep(ring, "nop", tag=t)
    ring.submit_and_wait(len(tags))


# ---------------------------------------------------------------- data


def test_peek_batch_cqe_returns_up_to_count_oldest_first_unseen(ring):
    nops(ring, [0, 1, 2, 3])
    two = ring.peek_batch_cqe(2)
    assert isinstance(two, list) and [c.get_data() for c in two] == [0, 1]
    assert all(isinstance(c, Cqe) and c.res() == 0 for c in two)
    # nothing was marked seen: the same completions again, and more
    again = ring.peek_batch_cqe(10)
    assert [c.get_data() for c in again] == [0, 1, 2, 3]
    assert again[0] is two[0] and again[1] is two[1]
    assert ring.cq_ready() == 4
    assert ring.peek_batch_cqe(0) == []
    ring.cq_advance(4)


def test_peek_batch_cqe_on_an_empty_queue_is_an_empty_list(ring):
    assert ring.peek_batch_cqe(8) == []
    prep(ring, "timeout", 60)
    ring.submit()
    assert ring.peek_batch_cqe(8) == []   # does not wait


def test_cq_advance_marks_the_oldest_seen(ring):
    nops(ring, [0, 1, 2, 3, 4])
    cqes = ring.peek_batch_cqe(5)
    ring.cq_advance(2)
    assert ring.cq_ready() == 3
    assert [c.get_data() for c in ring.peek_batch_cqe(5)] == [2, 3, 4]
    assert ring.peek_cqe() is cqes[2]
    ring.cq_advance(0)
    assert ring.cq_ready() == 3
    ring.cq_advance(3)
    assert ring.cq_ready() == 0 and ring.peek_cqe() is None
    # the Cqe objects stay valid after being marked seen
    assert [c.get_data() for c in cqes] == [0, 1, 2, 3, 4]
    assert [c.res() for c in cqes] == [0] * 5


def test_cq_advance_mixes_with_cqe_seen_and_wait(ring):
    nops(ring, ["a", "b", "c"])
    first = ring.wait_cqe()
    ring.cqe_seen(first)
    ring.cq_advance(1)                     # "b"
    assert ring.wait_cqe().get_data() == "c"
    ring.cqe_seen(first)                   # already seen: nothing happens
    assert ring.cq_ready() == 1
    ring.cq_advance(1)
    assert ring.cq_ready() == 0


def test_batches_larger_than_the_stack_buffer(ring):
    # cq_advance takes more than 64 at once through a heap array
    r = IoUring(256)
    try:
        for rnd in range(3):
            nops(r, list(range(200)))
            cqes = r.wait_cqe_nr(200, timeout=WAIT)
            assert [c.get_data() for c in cqes] == list(range(200))
            r.cq_advance(200)
            assert r.cq_ready() == 0
    finally:
        r.queue_exit()


def test_batch_loop_over_many_rounds_keeps_every_user_data(ring):
    total = 0
    for rnd in range(50):
        nops(ring, list(range(rnd * 32, rnd * 32 + 32)))
        got = ring.peek_batch_cqe(32)
        assert len(got) == 32
        total += sum(c.get_data() for c in got)
        ring.cq_advance(len(got))
    n = 50 * 32
    assert total == n * (n - 1) // 2
    assert ring.in_flight() == 0


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("method", ["peek_batch_cqe", "cq_advance"])
@pytest.mark.parametrize("bad, exc", [(-1, ValueError), ("2", TypeError), (1.0, TypeError),
                                      (None, TypeError), (2 ** 80, OverflowError)])
def test_bad_counts_raise(ring, method, bad, exc):
    nops(ring, [1])
    ring.peek_batch_cqe(1)     # reaped (cq_advance counts reaped completions)
    with pytest.raises(exc):
        getattr(ring, method)(bad)
    assert ring.cq_ready() == 1   # nothing consumed
    ring.cq_advance(1)


@pytest.mark.parametrize("method", ["peek_batch_cqe", "cq_advance"])
def test_argument_is_required_and_positional(ring, method):
    with pytest.raises(TypeError):
        getattr(ring, method)()
    with pytest.raises(TypeError):
        getattr(ring, method)(1, 2)


def test_cq_advance_past_the_reaped_completions_marks_nothing(ring):
    nops(ring, [1, 2])
    ring.peek_batch_cqe(2)
    with pytest.raises(ValueError, match="only 2"):
        ring.cq_advance(3)
    assert ring.cq_ready() == 2
    ring.cq_advance(2)
    with pytest.raises(ValueError):
        ring.cq_advance(1)


@pytest.mark.parametrize("method", ["peek_batch_cqe", "cq_advance"])
def test_closed_and_uninitialised_rings_refuse(method):
    r = IoUring()
    with pytest.raises(ValueError, match="not initialised"):
        getattr(r, method)(0)
    r.queue_init(4)
    r.queue_exit()
    with pytest.raises(ValueError, match="not initialised"):
        getattr(r, method)(0)


# ---------------------------------------------------------------- lifetime


def test_user_data_released_when_advanced_cqes_are_dropped(ring):
    tokens = [Token() for _ in range(8)]
    refs = [weakref.ref(t) for t in tokens]
    nops(ring, tokens)
    del tokens
    cqes = ring.peek_batch_cqe(8)
    ring.cq_advance(8)
    gc.collect()
    assert all(r() is not None for r in refs)    # the list still holds them
    assert [c.get_data() for c in cqes] == [r() for r in refs]
    del cqes
    gc.collect()
    assert all(r() is None for r in refs)


def test_cq_advance_without_holding_the_cqes_releases_them(ring):
    tokens = [Token() for _ in range(4)]
    refs = [weakref.ref(t) for t in tokens]
    nops(ring, tokens)
    del tokens
    ring.peek_batch_cqe(4)     # reaped, the list dropped at once
    gc.collect()
    assert all(r() is not None for r in refs)    # unseen: the ring keeps them
    ring.cq_advance(4)
    gc.collect()
    assert all(r() is None for r in refs)


class Reentrant:
    """User data whose finalizer uses the ring while cq_advance releases it."""

    def __init__(self, ring, log):
        self.ring = ring
        self.log = log

    def __del__(self):
        self.log.append((self.ring.cq_ready(), len(self.ring.peek_batch_cqe(100))))


def test_finalizer_run_by_cq_advance_sees_a_consistent_ring(ring):
    log = []
    nops(ring, [Reentrant(ring, log), Reentrant(ring, log), "stays"])
    ring.peek_batch_cqe(3)
    ring.cq_advance(2)
    gc.collect()
    # both finalizers ran after the two entries left the queue
    assert log == [(1, 1), (1, 1)]
    (last,) = ring.peek_batch_cqe(3)
    assert last.get_data() == "stays"
    ring.cq_advance(1)


def test_reused_objects_start_fresh(ring):
    # Sqe and Cqe memory is recycled: nothing of the previous op may show
    for rnd in range(3):
        sqe = ring.get_sqe()
        assert sqe.get_data() is None and sqe.get_flags() == 0
        assert "nop new" in repr(sqe)
        sqe.prep_nop()
        sqe.set_data(("round", rnd))
        sqe.set_flags(0)
        ring.submit_and_wait(1)
        (cqe,) = ring.peek_batch_cqe(1)
        assert cqe.get_data() == ("round", rnd)
        ring.cq_advance(1)
        del sqe, cqe
        gc.collect()


def test_many_rounds_with_live_and_dropped_objects_keep_identities(ring):
    kept = []
    for rnd in range(20):
        nops(ring, [rnd * 10 + i for i in range(10)])
        cqes = ring.peek_batch_cqe(10)
        kept.append(cqes[rnd % 10])      # some Cqes outlive their round
        ring.cq_advance(10)
        del cqes
    assert [c.get_data() for c in kept] == [rnd * 10 + rnd % 10 for rnd in range(20)]
