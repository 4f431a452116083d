"""Files for the bulk helpers' tests (test_files.py, test_bulk_read.py,
test_files_bulk_async.py)."""

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
