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


def small_files(setup, count, size, name="small"):
    """count page-cached files of size bytes in a folder of their own (made
    once); returns their paths."""
    folder = os.path.join(setup.workdir, "%s-%d-%d" % (name, count, size))
    paths = [os.path.join(folder, "f%05d" % i) for i in range(count)]
    if not os.path.isdir(folder):
        os.makedirs(folder)
        chunk = os.urandom(max(size, 1))
        for p in paths:
            with open(p, "wb") as f:
                f.write(chunk[:size])
    for p in paths:
        warm(p)
    return paths


def file_tree(setup, dirs, per_dir, size):
    """A tree of dirs folders of per_dir files of size bytes (made once)."""
    root = os.path.join(setup.workdir, "tree-%d-%d-%d" % (dirs, per_dir, size))
    if not os.path.isdir(root):
        chunk = os.urandom(max(size, 1))
        for d in range(dirs):
            sub = os.path.join(root, "d%03d" % d, "sub")
            os.makedirs(sub)
            for i in range(per_dir):
                with open(os.path.join(sub if i % 2 else os.path.dirname(sub), "f%04d" % i), "wb") as f:
                    f.write(chunk[:size])
    return root
