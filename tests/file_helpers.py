"""Files for the bulk helpers' tests (test_files.py, test_bulk_read.py,
test_files_bulk_async.py), and a spy on the batches they read."""

import os


def make_files(folder, sizes):
    """One file of random bytes per size in folder (a pathlib.Path), named
    f000, f001, ...: (their paths as str, their data)."""
    paths, datas = [], []
    for i, n in enumerate(sizes):
        p = folder / ("f%03d" % i)
        d = os.urandom(n)
        p.write_bytes(d)
        paths.append(str(p))
        datas.append(d)
    return paths, datas


def spy_batches(monkeypatch):
    """The batches iter_read_files() (and the helpers on it) hands
    read_many(), by their lengths, in a list that grows as they come."""
    import py_io_uring

    files = py_io_uring.files
    real = files._read_many
    sizes = []

    def spy(chunk, depth, **kw):
        sizes.append(len(chunk))
        return real(chunk, depth, **kw)
    monkeypatch.setattr(files, "_read_many", spy)
    return sizes
