"""Lets the examples run from a checkout: `make` builds the package into
build/ (or $PY_IO_URING_BUILD); an installed py_io_uring is used otherwise."""

import os
import sys

_build = os.environ.get("PY_IO_URING_BUILD",
                        os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build"))
if os.path.isdir(os.path.join(_build, "py_io_uring")):
    sys.path.insert(0, os.path.abspath(_build))
