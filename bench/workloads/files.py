"""The test files the read and copy workloads share, in the run's work
folder: made once, reused by every workload that asks for the same name."""

import os
import random
import struct

from runner import BLOCK


def make_file(path, size):
    if os.path.exists(path) and os.path.getsize(path) == size:
        return
    chunk = os.urandom(1 << 20)
    with open(path, "wb") as f:
        left = size
        while left > 0:
            f.write(chunk[:min(left, len(chunk))])
            left -= len(chunk)
        f.flush()
        os.fsync(f.fileno())


def warm(path):
    with open(path, "rb", buffering=0) as f:
        while f.read(1 << 20):
            pass


def offsets_for(size, n, seed):
    rnd = random.Random(seed)
    blocks = size // BLOCK
    return [rnd.randrange(blocks) * BLOCK for _ in range(n)]




def write_offsets(path, offs):
    """The offsets as native uint64s, for bench/randread.c: C reads the
    same blocks in the same order as the Python loops."""
    with open(path, "wb") as f:
        f.write(struct.pack("=%dQ" % len(offs), *offs))
    return path


def cached_file(setup, name):
    """A page-cached file of 8 MiB (quick) or 64 MiB."""
    size = (8 << 20) if setup.quick else (64 << 20)
    path = os.path.join(setup.workdir, name)
    make_file(path, size)
    warm(path)
    return path, size


def big_file(setup):
    """The --size file the O_DIRECT and copy workloads use."""
    path = os.path.join(setup.workdir, "big.dat")
    make_file(path, setup.size)
    return path
