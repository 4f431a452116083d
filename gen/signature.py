"""Signatures rendered three ways from one model: the __text_signature__
that help() and inspect read, the .pyi stub, and the docs."""

import ast
from typing import List

from model import Method, Op

# the SQE fields every op shares, keyword-only on AsyncRing's forms (an
# Sqe has set_flags() and friends for them); src/async_ring.c parses them
AIO_COMMON = ("sqe_flags", "buf_group", "personality")

HEADER = "generated from ops.def and src/methods.def by gen/generate.py, do not edit"


def op_text_signature(op: Op, aio: bool = False) -> str:
    """Sqe.prep_NAME's signature, or AsyncRing.NAME's (aio): same arguments."""
    parts = ["$self"]
    for a in op.args:
        parts.append(a.name if a.required else "%s=%s" % (a.name, a.default_text))
    if aio:
        parts += ["*"] + ["%s=0" % n for n in AIO_COMMON]
    return "%s(%s)" % (op.name if aio else op.method, ", ".join(parts))


def op_pyi_signature(op: Op, aio: bool = False) -> str:
    parts = ["self"]
    for a in op.args:
        p = "%s: %s" % (a.name, a.kind.pyi)
        if not a.required:
            p += " = %s" % a.default_text
        parts.append(p)
    if not aio:
        return "def %s(%s) -> None: ..." % (op.method, ", ".join(parts))
    parts += ["*"] + ["%s: int = 0" % n for n in AIO_COMMON]
    ret = "AsyncIterator[Any]" if op.aio == "iter" else "Awaitable[Any]"
    return "def %s(%s) -> %s: ..." % (op.name, ", ".join(parts), ret)


def _strip_annotations(sig: str) -> str:
    """'a: int, b: int = 0, /' -> 'a, b=0, /' (text signatures have no types)."""
    src = "def f(%s): pass" % sig
    fn = ast.parse(src).body[0]
    a = fn.args  # type: ignore[attr-defined]
    out = []  # type: List[str]

    def seg(node) -> str:
        return ast.get_source_segment(src, node)

    positional = list(getattr(a, "posonlyargs", [])) + list(a.args)
    defaults = [None] * (len(positional) - len(a.defaults)) + list(a.defaults)
    for i, (arg, d) in enumerate(zip(positional, defaults)):
        out.append(arg.arg if d is None else "%s=%s" % (arg.arg, seg(d)))
        if i == len(getattr(a, "posonlyargs", [])) - 1:
            out.append("/")
    if a.vararg:
        out.append("*" + a.vararg.arg)
    elif a.kwonlyargs:
        out.append("*")
    for arg, d in zip(a.kwonlyargs, a.kw_defaults):
        out.append(arg.arg if d is None else "%s=%s" % (arg.arg, seg(d)))
    if a.kwarg:
        out.append("**" + a.kwarg.arg)
    return ", ".join(out)


def method_text_signature(m: Method) -> str:
    inner = _strip_annotations(m.signature)
    return "%s($self%s)" % (m.name, ", " + inner if inner else "")


def class_text_signature(name: str, sig: str) -> str:
    return "%s(%s)" % (name, _strip_annotations(sig))


def method_pyi_signature(m: Method) -> str:
    sig = m.signature.strip()
    return "def %s(self%s) -> %s: ..." % (m.name, ", " + sig if sig else "", m.returns)
