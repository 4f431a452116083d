"""Emit the py_io_uring.pyi stub."""

from model import Model
from signature import HEADER, method_pyi_signature, op_pyi_signature

PRELUDE = '''\
import array
import mmap
import os
from typing import Any, AsyncIterator, Awaitable, Dict, FrozenSet, List, Optional, Protocol, Sequence, Tuple, Union

class _HasFileno(Protocol):
    def fileno(self) -> int: ...

FileDescriptorLike = Union[int, _HasFileno]
ReadableBuffer = Union[bytes, bytearray, memoryview, array.array, mmap.mmap]
WritableBuffer = Union[bytearray, memoryview, array.array, mmap.mmap]
StrOrBytesPath = Union[str, bytes, os.PathLike]

__version__: str

class SubmissionQueueFull(RuntimeError): ...
'''


def pyi(model: Model) -> str:
    out = ["# %s" % HEADER, PRELUDE]
    for c, _ in model.consts:
        out.append("%s: int" % c)
    for cls in model.classes:
        out.append("")
        out.append("class %s:" % cls.name)
        if cls.signature is not None:
            sig = cls.signature.strip()
            out.append("    def __init__(self%s) -> None: ..." % (", " + sig if sig else ""))
        for m in model.methods:
            if m.cls == cls.name:
                out.append("    " + method_pyi_signature(m))
        if cls.name == "Sqe":
            for op in model.ops:
                out.append("    " + op_pyi_signature(op))
        if cls.name == "AsyncRing":
            for op in model.ops:
                if op.aio != "none":
                    out.append("    " + op_pyi_signature(op, True))
    return "\n".join(out) + "\n"
