"""Emit docs/api.md, the API reference."""

from typing import Dict, List, Tuple

from model import Model, Op
from signature import (AIO, HEADER, RING_KW, class_text_signature,
                       method_text_signature, op_result_pyi, op_text_signature, result_types)


def _sig(text: str) -> str:
    return (text.replace("$self, ", "").replace("$self", "")
            .replace("$module, ", "").replace("$module", ""))


def _op(op: Op) -> list:
    out = ["### `Sqe.%s`" % _sig(op_text_signature(op)), ""]
    out.append(" ".join(op.doc))
    out.append("")
    if op.args:
        out.append("| argument | kind | default | meaning |")
        out.append("| --- | --- | --- | --- |")
        for a in op.args:
            kind = a.kind.name + ("(%s)" % a.kind.param if a.kind.param else "")
            out.append("| `%s` | %s | %s | %s |" % (
                a.name, kind, "`%s`" % a.default_text if a.default_text else "required",
                (a.doc or a.kind.text).replace("|", "\\|")))
        out.append("")
    if op.returns:
        t = op.pytype or "bytes (a length) or int (a buffer)"
        out.append("Result (`Cqe.getresult()`): %s. Type: `%s`." % (op.returns, t))
        out.append("")
    man = " · liburing: `%s(3)`" % op.man if op.man else ""
    out.append("Opcode `%s` · Linux %s%s · ops.def line %d"
               % (op.opcode, op.kernel, man, op.lineno))
    out.append("")
    return out


def _async_ops(model: Model) -> list:
    out = ["### Awaitable operations", "",
           "Each takes the arguments of its `Sqe.prep_*` method. `await`: returns a "
           "future of what `Cqe.getresult()` gives; `iter`: an async iterator over the "
           "completions of a multishot operation. `fd`: new file descriptors that "
           "nobody awaits any more (the task was cancelled) are closed; `peer`: the "
           "result is `(fd, address)`. The type is the stub's (`_Address`: see "
           "[Types](#types)); with two, the first is for a length, the second for a "
           "buffer. `timeout=` (seconds) on an `await` form links "
           "an `IORING_OP_LINK_TIMEOUT` to the operation: `TimeoutError` when it "
           "fires ([async.md](async.md)). `AsyncChain` (`AsyncRing.chain()`) has the "
           "`await` forms without `timeout=`.", "",
           "| method | form | returns | arguments as |", "| --- | --- | --- | --- |"]
    for op in model.ops:
        if op.aio == "none":
            continue
        form = " ".join((op.aio,) + op.aio_flags)
        types = [op_result_pyi(op, AIO, t) for t in (("bytes", "int") if op.sized_by else ("",))]
        returns = " / ".join("`%s`" % t.replace("asyncio.", "") for t in types)
        out.append("| `AsyncRing.%s` | %s | %s | [`Sqe.%s`](#%s) |"
                   % (_sig(op_text_signature(op, AIO)), form, returns, op.method,
                      _anchor("Sqe.%s" % _sig(op_text_signature(op)))))
    out.append("")
    skipped = [op.name for op in model.ops if op.aio == "none"]
    out.append("Not awaitable (they name an `Sqe` or a user_data, which AsyncRing never "
               "hands out): %s. `AsyncRing.cancel()` and `AsyncRing.cancel_fd()` are "
               "hand-written (above); `link_timeout` is the `timeout=` keyword."
               % ", ".join("`%s`" % n for n in skipped))
    out.append("")
    return out


def _ring_ops(model: Model) -> list:
    kw = ", ".join("%s=%s" % (n, d) for n, d, _ in RING_KW)
    out = ["### Fast forms: `IoUring.prep_*`", "",
           "Each `Sqe.prep_NAME(...)` is also `IoUring.prep_NAME(..., *, %s)`: "
           "the same arguments, and in one call what `sqe = ring.get_sqe(); "
           "sqe.prep_NAME(...); sqe.set_data(user_data)` does, with no `Sqe` object "
           "made. The record behind it pins what the kernel uses until the final "
           "completion, as for `get_sqe()`. `reap()` gives each completion back as "
           "`(user_data, result, flags)`. A call that raises leaves nothing in the "
           "submission queue." % kw, "",
           "| method | arguments as |", "| --- | --- |"]
    for op in model.ops:
        out.append("| `IoUring.%s` | [`Sqe.%s`](#%s) |"
                   % (op.method, op.method, _anchor("Sqe.%s" % _sig(op_text_signature(op)))))
    out.append("")
    return out


def _anchor(text: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to '-'."""
    keep = "".join(c for c in text.lower() if c.isalnum() or c in " -_")
    return keep.replace(" ", "-")


def api_md(model: Model, liburing_api: List[Tuple[str, str]]) -> str:
    out = ["<!-- %s -->" % HEADER, "", "# py_io_uring API reference", ""]
    out.append("Every `Sqe.prep_*` method below is generated from an entry of `ops.def`; "
               "the other methods are the hand-written runtime in `src/`, documented "
               "from `src/methods.def`. Argument kinds are described in "
               "[adding-an-op.md](adding-an-op.md).")
    out.append("")
    for cls in model.classes:
        head = cls.name
        if cls.signature is not None:
            head = class_text_signature(cls.name, cls.signature)
        out.append("## `%s`" % head)
        out.append("")
        out.append(" ".join(d if d else "\n\n" for d in cls.doc).replace(" \n\n ", "\n\n"))
        out.append("")
        for m in model.methods:
            if m.cls != cls.name:
                continue
            if m.prop:
                out.append("### `%s.%s -> %s` (property)" % (cls.name, m.name, m.returns))
            else:
                out.append("### `%s.%s -> %s`" % (cls.name, _sig(method_text_signature(m)),
                                                   m.returns))
            out.append("")
            if m.deprecated:
                out.append("*Deprecated:* %s" % m.deprecated)
                out.append("")
            out.append(" ".join(d if d else "\n\n" for d in m.doc).replace(" \n\n ", "\n\n"))
            out.append("")
        if cls.name == "AsyncRing":
            out += _async_ops(model)
        if cls.name == "IoUring":
            out += _ring_ops(model)
        if cls.name == "Sqe":
            out.append("## Operations (`Sqe.prep_*`)")
            out.append("")
            for op in model.ops:
                out += _op(op)
    funcs = [m for m in model.methods if not m.cls]
    if funcs:
        out.append("## Module functions")
        out.append("")
        for m in funcs:
            out.append("### `%s -> %s`" % (_sig(method_text_signature(m)), m.returns))
            out.append("")
            out.append(" ".join(d if d else "\n\n" for d in m.doc).replace(" \n\n ", "\n\n"))
            out.append("")
    out.append("## Module attributes")
    out.append("")
    out.append("- `__version__`: the module's version.")
    out.append("- `LIBURING_VERSION`: `(major, minor)` of the liburing headers the module was "
               "built with, or `None` when they predate `IO_URING_VERSION_MAJOR` (liburing 2.3 "
               "and older).")
    out.append("- `LIBURING_STATIC`: the version of the liburing linked into the extension "
               "(the binary wheel, `make wheel`), or `None` when liburing is a shared library "
               "loaded beside it.")
    out.append("- `EventLoop`, `EventLoopPolicy`, `new_event_loop()`, `install()`, `run()`: "
               "the asyncio event loop on io_uring ([loop.md](loop.md)).")
    out.append("- `get_running_ring()`: the running `EventLoop`'s own `AsyncRing`, as "
               "`asyncio.get_running_loop()` gives the loop: its operations go in the loop's "
               "one `io_uring_enter` per iteration; the loop closes it; RuntimeError on another "
               "loop ([loop.md](loop.md), \"Sharing the loop's ring\").")
    out.append("- `OPERATIONS`: one `(name, opcode name, opcode, Linux version)` tuple per "
               "`Sqe.prep_*` operation, in `ops.def` order; `IoUring.probe()` says which the "
               "running kernel supports.")
    out.append("- `SubmissionQueueFull`: raised by `get_sqe()` when the submission queue is "
               "full (a `RuntimeError`).")
    out.append("")
    out.append("`python -m py_io_uring` prints these, the kernel's version, the ring's "
               "`IORING_FEAT_*` features and which operations the kernel supports "
               "(`--json` for the same as JSON).")
    out.append("")
    out += _types(model)
    out.append("## Constants")
    out.append("")
    out.append("Exported when the liburing headers the module was built with define them: "
               + ", ".join("`%s`" % c for c, _ in model.consts) + ".")
    out.append("")
    out.append("The opcodes, always (for `probe()` answers and `register_restrictions()`): "
               + ", ".join("`%s`" % c for c, _ in model.opcodes) + ".")
    out += _by_kernel(model)
    out += _liburing_table(model, liburing_api)
    return "\n".join(out) + "\n"


def _types(model: Model) -> list:
    """The private names the stub's signatures use (gen/emit_pyi.py), for
    a reader of the signatures above."""
    return ["## Types", "",
            "The package is typed (`py.typed`; the stub `__init__.pyi` is generated with "
            "the module): each operation's result type comes from its `ops.def` entry. "
            "The signatures use these names of the stub:", "",
            "- `_ReadableBuffer`, `_WritableBuffer`: any object with the buffer protocol "
            "(`collections.abc.Buffer`, PEP 688; `typing_extensions.Buffer` before Python "
            "3.12, or an object with numpy's array interface): bytes, bytearray, memoryview, "
            "array, mmap, ctypes arrays, numpy arrays. Whether it is writable is checked "
            "when the operation is prepared.",
            "- `_FileDescriptorLike`: an int or an object with `fileno()`; "
            "`_StrOrBytesPath`: str, bytes or `os.PathLike`.",
            "- `_Address`: a socket address as the module gives it: `(host, port)` "
            "(AF_INET), `(host, port, flowinfo, scope_id)` (AF_INET6), a str path (AF_UNIX; "
            "bytes when abstract), `(family, bytes)` for another family; `_OptAddress` adds "
            "`None`; `_SockAddrIn` is what `connect()` takes; `_AncData` is "
            "`socket.recvmsg()`'s ancillary data.",
            "- `_Result`: what `Cqe.getresult()` and `reap()` give for a completion whose "
            "operation the type checker cannot know: one of %s (narrow it with "
            "`isinstance`)." % ", ".join("`%s`" % t for t in result_types(model.ops)),
            "- `_OpName`: the names `IoUring.prep_many()` takes.", ""]


def _by_kernel(model: Model) -> list:
    """Which Linux each operation needs (ops.def's `kernel` lines), oldest
    first: what the README's install section points at."""
    def version(text: str) -> Tuple[int, ...]:
        return tuple(int(x) for x in text.split("."))
    groups: Dict[str, List[str]] = {}
    for op in model.ops:
        groups.setdefault(op.kernel, []).append(op.name)
    out = ["", "## Operations by Linux version", "",
           "The oldest Linux each operation runs on (its opcode or the flag it needs); "
           "`IoUring.probe()` and `python -m py_io_uring` say what the running kernel has.", "",
           "| Linux | operations |", "| --- | --- |"]
    for k in sorted(groups, key=version):
        out.append("| %s | %s |" % (k, ", ".join("`%s`" % n for n in groups[k])))
    return out


def _liburing_table(model: Model, liburing_api: List[Tuple[str, str]]) -> list:
    """liburing's functions and py_io_uring's names for them, for a reader
    following a man page."""
    if not liburing_api:
        return []
    names = {}  # type: Dict[str, List[str]]
    for op in model.ops:
        if op.man:
            names.setdefault(op.man, []).append("`Sqe.%s`, `IoUring.%s`" % (op.method, op.method))
    for m in model.methods:
        key = {"IoUring": "io_uring_%s", "Sqe": "io_uring_sqe_%s",
               "Cqe": "io_uring_cqe_%s", "": "io_uring_%s"}.get(m.cls, "")
        if key:
            names.setdefault(key % m.name, []).append(
                "`%s.%s`" % (m.cls, m.name) if m.cls else "`py_io_uring.%s()`" % m.name)
    rows, have = [], 0
    for name, note in liburing_api:
        ours = ", ".join(names.get(name, []))
        have += bool(ours)
        rows.append("| `%s` | %s |" % (name, "; ".join(x for x in (ours, note) if x) or "not yet"))
    out = ["", "## liburing 2.15 and py_io_uring", "",
           "Each function of liburing 2.15 and its py_io_uring name; %d of %d have a "
           "method of the same name and meaning, the others say what stands in for "
           "them, or \"not yet\"." % (have, len(liburing_api)), "",
           "| liburing | py_io_uring |", "| --- | --- |"]
    return out + rows + [""]
