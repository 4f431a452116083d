"""Emit the package's stub (installed as py_io_uring/__init__.pyi)."""

from model import Model
from signature import AIO, CHAIN, HEADER, RING, method_pyi_lines, op_pyi_signature

PRELUDE = '''\
import array
import mmap
import os
from typing import Any, AsyncIterator, Awaitable, Dict, FrozenSet, Iterable, List, Literal, Optional, Protocol, Sequence, Tuple, Union, final, overload

from typing_extensions import deprecated

from .loop import EventLoop as EventLoop, EventLoopPolicy as EventLoopPolicy, install as install, new_event_loop as new_event_loop, run as run
from .workqueue import WorkQueue as WorkQueue
from .afile import AsyncFile as AsyncFile, open as open
from .files import copy2 as copy2, copyfile as copyfile, copytree as copytree, iter_read_files as iter_read_files, read_files as read_files

class _HasFileno(Protocol):
    def fileno(self) -> int: ...

_FileDescriptorLike = Union[int, _HasFileno]
_ReadableBuffer = Union[bytes, bytearray, memoryview, array.array, mmap.mmap]
_WritableBuffer = Union[bytearray, memoryview, array.array, mmap.mmap]
_StrOrBytesPath = Union[str, bytes, os.PathLike]

__version__: str
LIBURING_VERSION: Optional[Tuple[int, int]]
LIBURING_STATIC: Optional[str]
OPERATIONS: Tuple[Tuple[str, str, int, str], ...]

def __dir__() -> List[str]: ...

class SubmissionQueueFull(RuntimeError): ...
'''


def pyi(model: Model) -> str:
    out = ["# %s" % HEADER, PRELUDE]
    # the op names IoUring.prep_many() takes, so a type checker catches a typo
    out.append("_OpName = Literal[%s]" % ", ".join('"%s"' % op.name for op in model.ops))
    out.append("")
    for c, _ in model.consts:
        out.append("%s: int" % c)
    for c, _ in model.opcodes:
        out.append("%s: int" % c)
    for m in model.methods:
        if not m.cls:
            out.append("")
            out += method_pyi_lines(m)
    for cls in model.classes:
        out.append("")
        # the C types cannot be subclassed (no Py_TPFLAGS_BASETYPE)
        out.append("@final")
        out.append("class %s:" % cls.name)
        if cls.signature is not None:
            sig = cls.signature.strip()
            out.append("    def __init__(self%s) -> None: ..." % (", " + sig if sig else ""))
        for m in model.methods:
            if m.cls == cls.name:
                out += ["    " + line for line in method_pyi_lines(m)]
        if cls.name == "Sqe":
            for op in model.ops:
                out.append("    " + op_pyi_signature(op))
        if cls.name == "IoUring":
            for op in model.ops:
                out.append("    " + op_pyi_signature(op, RING))
        if cls.name == "AsyncRing":
            for op in model.ops:
                if op.aio != "none":
                    out.append("    " + op_pyi_signature(op, AIO))
        if cls.name == "AsyncChain":
            for op in model.ops:
                if op.aio == "await":
                    out.append("    " + op_pyi_signature(op, CHAIN))
    return "\n".join(out) + "\n"
