"""Signatures rendered three ways from one model: the __text_signature__
that help() and inspect read, the .pyi stub, and the docs."""

import ast
from typing import List

from model import Method, Op

# The fields every op shares, keyword-only where no Sqe object is made (an
# Sqe has set_data(), set_flags() and friends for them); src/ops/common_args.c
# parses them.  Per form: its method name, its keywords (name, default,
# annotation) and its return annotation.
SQE, RING, AIO, CHAIN = "sqe", "ring", "aio", "chain"
COMMON_KW = (("sqe_flags", "0", "int"), ("buf_group", "0", "int"),
             ("personality", "0", "int"))
RING_KW = (("user_data", "None", "object"),) + COMMON_KW
# AsyncRing's awaitable forms (not its multishot iterators, not a chain's
# ops): a linked IORING_OP_LINK_TIMEOUT (src/async/links.c)
TIMEOUT_KW = (("timeout", "None", "Optional[float]"),)

HEADER = "generated from ops.def and src/methods.def by gen/generate.py, do not edit"


def form_name(op: Op, form: str) -> str:
    """Sqe.prep_read and IoUring.prep_read, AsyncRing.read (AsyncChain.read)."""
    return op.name if form in (AIO, CHAIN) else op.method


def _form_kw(form: str, op: Op):
    if form == AIO and op.aio == "await":
        return COMMON_KW + TIMEOUT_KW
    return {SQE: (), RING: RING_KW, AIO: COMMON_KW, CHAIN: COMMON_KW}[form]


def op_text_signature(op: Op, form: str = SQE) -> str:
    """One form's signature: the same arguments, then the form's keywords."""
    parts = ["$self"]
    for a in op.args:
        parts.append(a.name if a.required else "%s=%s" % (a.name, a.default_text))
    kw = _form_kw(form, op)
    if kw:
        parts += ["*"] + ["%s=%s" % (n, d) for n, d, _ in kw]
    return "%s(%s)" % (form_name(op, form), ", ".join(parts))


def op_result_pyi(op: Op, form: str, sized: str = "") -> str:
    """What a form returns: None for the Sqe and IoUring forms (the result
    comes with the completion: Cqe.getresult(), reap()); for AsyncRing the
    future of the op's type, or an async iterator of it per completion.
    `sized` is the type of an op's result whose buffer_out argument decides it."""
    if form not in (AIO, CHAIN):
        return "None"
    t = sized or op.pytype
    if "peer" in op.aio_flags:      # AsyncRing gives the new fd with its peer's address
        t = "Tuple[%s, _Address]" % t
    return ("AsyncIterator[%s]" if op.aio == "iter" else "asyncio.Future[%s]") % t


def _op_pyi_def(op: Op, form: str, types: dict, ret: str) -> str:
    parts = ["self"]
    for a in op.args:
        p = "%s: %s" % (a.name, types.get(a.name, a.kind.pyi))
        if not a.required:
            p += " = %s" % a.default_text
        parts.append(p)
    kw = _form_kw(form, op)
    if kw:
        parts += ["*"] + ["%s: %s = %s" % (n, t, d) for n, d, t in kw]
    return "def %s(%s) -> %s: ..." % (form_name(op, form), ", ".join(parts), ret)


def op_pyi_lines(op: Op, form: str = SQE) -> List[str]:
    """The stub's lines for one form of an op.  An AsyncRing op whose
    buffer_out argument decides its result gets two overloads: a length
    gives the bytes read, a buffer how many were read into it."""
    arg = op.sized_by
    if form not in (AIO, CHAIN) or not arg:
        return [_op_pyi_def(op, form, {}, op_result_pyi(op, form))]
    return ["@overload", _op_pyi_def(op, form, {arg: "int"}, op_result_pyi(op, form, "bytes")),
            "@overload", _op_pyi_def(op, form, {arg: "_WritableBuffer"},
                                  op_result_pyi(op, form, "int"))]


def result_types(ops: List[Op]) -> List[str]:
    """Every op's result type, once each: what Cqe.getresult() and reap()
    may give for a completion whose op the type checker cannot know."""
    seen = []  # type: List[str]
    for op in ops:
        for t in ([op.pytype] if op.pytype else ["bytes", "int"]):
            if t not in seen:
                seen.append(t)
    return seen


def result_union(ops: List[Op]) -> str:
    return "Union[%s]" % ", ".join(result_types(ops))


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
    if not m.cls:   # a module-level function
        return "%s($module%s)" % (m.name, ", " + inner if inner else "")
    return "%s($self%s)" % (m.name, ", " + inner if inner else "")


def class_text_signature(name: str, sig: str) -> str:
    return "%s(%s)" % (name, _strip_annotations(sig))


def method_pyi_lines(m: Method) -> List[str]:
    """The stub's lines for a hand-written method: its def, or one
    @overload def per variant; each marked @deprecated when it is."""
    if m.prop:
        return ["@property", "def %s(self) -> %s: ..." % (m.name, m.returns)]
    mark = ['@deprecated(%s)' % _py_string(m.deprecated)] if m.deprecated else []
    if not m.cls:   # a module-level function
        sig = m.signature.strip()
        return mark + ["def %s(%s) -> %s: ..." % (m.name, sig, m.returns)]
    if not m.overloads:
        return mark + [_pyi_def(m.name, m.signature, m.returns)]
    out = []  # type: List[str]
    for sig, ret in m.overloads:
        out += mark + ["@overload", _pyi_def(m.name, sig, ret)]
    return out


def _pyi_def(name: str, sig: str, returns: str) -> str:
    sig = sig.strip()
    return "def %s(self%s) -> %s: ..." % (name, ", " + sig if sig else "", returns)


def _py_string(text: str) -> str:
    return '"%s"' % text.replace("\\", "\\\\").replace('"', '\\"')
