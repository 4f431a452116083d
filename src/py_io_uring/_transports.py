"""Completion-based transports of py_io_uring's event loop (docs/loop.md,
step 3)."""


def enabled(loop):
    return False
