#!/usr/bin/env python3
"""py_io_uring's generator: ops.def and src/methods.def in, C, stub and docs out.

    parse (parse.py) -> validated model (model.py, kinds.py) -> one emitter
    per output (emit_c.py, emit_pyi.py, emit_md.py)

Standard library only; runs on Python 3.8 and later.  A malformed entry
stops it with 'file:line: what is wrong' and exit status 1.  Outputs are
rewritten only when their content changes, so make rebuilds only what the
change touched.
"""

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from emit_c import methods_doc_h, ops_c, ops_h  # noqa: E402
from emit_md import api_md  # noqa: E402
from emit_pyi import pyi, trio_pyi  # noqa: E402
from model import load, load_liburing_api  # noqa: E402
from parse import DefError  # noqa: E402


def write_if_changed(path: str, text: str) -> None:
    try:
        with open(path, encoding="utf-8") as f:
            if f.read() == text:
                return
    except FileNotFoundError:
        pass
    d = os.path.dirname(path)
    if d:
        os.makedirs(d, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ops", default="ops.def", help="the operations (ops.def)")
    p.add_argument("--methods", default="src/methods.def",
                   help="the hand-written methods' signatures and docs")
    p.add_argument("--out", help="directory for the generated C")
    p.add_argument("--pyi", help="path of the package's .pyi stub to write (trio.pyi, "
                   "py_io_uring.trio's, goes next to it)")
    p.add_argument("--api", help="path of the Markdown API reference to write")
    p.add_argument("--liburing-api", default=os.path.join(HERE, "liburing_api.txt"),
                   help="liburing's function names, for the API reference's table")
    args = p.parse_args(argv)
    try:
        model = load(args.ops, args.methods)
        liburing_api = load_liburing_api(args.liburing_api) if args.api else []
    except DefError as e:
        print("error: %s" % e, file=sys.stderr)
        return 1
    if args.out:
        write_if_changed(os.path.join(args.out, "ops_gen.c"), ops_c(model))
        write_if_changed(os.path.join(args.out, "ops_gen.h"), ops_h(model))
        write_if_changed(os.path.join(args.out, "methods_doc.h"), methods_doc_h(model))
    if args.pyi:
        write_if_changed(args.pyi, pyi(model))
        # the stub of py_io_uring.trio, next to the package's
        write_if_changed(os.path.join(os.path.dirname(args.pyi), "trio.pyi"), trio_pyi(model))
    if args.api:
        write_if_changed(args.api, api_md(model, liburing_api))
    return 0


if __name__ == "__main__":
    sys.exit(main())
