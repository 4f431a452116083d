"""Emit the package's stub (installed as py_io_uring/__init__.pyi)."""

import re

from model import Model
from signature import AIO, CHAIN, HEADER, RING, method_pyi_lines, op_pyi_lines, result_union

PRELUDE = '''\
import asyncio
import os
import socket
import sys
from typing import AsyncIterator, Awaitable, Callable, Dict, FrozenSet, Iterable, List, Literal, Mapping, Optional, Protocol, Sequence, Tuple, Union, final, overload

from typing_extensions import deprecated

from .loop import EventLoop as EventLoop, EventLoopPolicy as EventLoopPolicy, get_running_ring as get_running_ring, install as install, new_event_loop as new_event_loop, run as run
from .workqueue import WorkQueue as WorkQueue
from .afile import AsyncFile as AsyncFile, AsyncFileOpener as AsyncFileOpener, open as open
from .apath import Path as Path
from .afile_whole import read_bytes as read_bytes, read_text as read_text, write_bytes as write_bytes, write_text as write_text
from .files import copy2 as copy2, copyfile as copyfile, copytree as copytree, hash_files as hash_files, iter_read_files as iter_read_files, read_files as read_files
from .files_async import acopy2 as acopy2, acopyfile as acopyfile, acopytree as acopytree, ahash_files as ahash_files, aiter_read_files as aiter_read_files, aread_files as aread_files

# Any object with the buffer protocol (bytes, bytearray, memoryview, array,
# mmap, ctypes arrays, numpy arrays): PEP 688's Buffer, which type checkers
# know from typing_extensions' stub before 3.12 (a stub needs no
# typing_extensions at run time).  Whether a buffer is writable is checked
# when the op is prepared (TypeError), as for the stdlib's readinto().
# numpy's stub declares __buffer__ only for 3.12+: before, an object with
# numpy's array interface passes too (ndarray and numpy's scalars, which
# have the buffer protocol).
if sys.version_info >= (3, 12):
    from collections.abc import Buffer as _Buffer
else:
    from typing_extensions import Buffer as _PEP688Buffer

    class _ArrayInterface(Protocol):
        @property
        def __array_interface__(self) -> Mapping[str, object]: ...

    _Buffer = Union[_PEP688Buffer, _ArrayInterface]

class _HasFileno(Protocol):
    def fileno(self) -> int: ...

_FileDescriptorLike = Union[int, _HasFileno]
_ReadableBuffer = _Buffer
_WritableBuffer = _Buffer
_StrOrBytesPath = Union[str, bytes, os.PathLike[str], os.PathLike[bytes]]
# a socket address as the module gives it (socket's forms): (host, port) for
# AF_INET, (host, port, flowinfo, scope_id) for AF_INET6, a str path for
# AF_UNIX (bytes when abstract), (family, bytes) for another family
_Address = Union[Tuple[str, int], Tuple[str, int, int, int], str, bytes, Tuple[int, bytes]]
_OptAddress = Optional[_Address]
# ... and as it takes one, as socket.connect() does
_SockAddrIn = Union[Tuple[str, int], Tuple[str, int, int], Tuple[str, int, int, int], str, bytes, bytearray, os.PathLike[str], os.PathLike[bytes]]
# socket.recvmsg()'s ancillary data: (level, type, data) items
_AncData = List[Tuple[int, int, bytes]]
# AsyncRing.open()'s modes, as builtins.open()'s stub tells text from binary
# (afile.py's own, for py_io_uring.open())
_OpenTextMode = Literal["r", "w", "a", "x", "r+", "w+", "a+", "x+", "rt", "wt", "at", "xt", "r+t", "w+t", "a+t", "x+t", "rt+", "wt+", "at+", "xt+"]
_OpenBinaryMode = Literal["rb", "wb", "ab", "xb", "r+b", "w+b", "a+b", "x+b", "rb+", "wb+", "ab+", "xb+", "br", "bw", "ba", "bx"]
_Opener = Callable[[str, int], int]

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
    # what a completion's result may be when its op is not known (Cqe.getresult(),
    # reap()): each op's type (ops.def), and a failure's negative errno in reap()
    out.append("_Result = %s" % result_union(model.ops))
    out.append("")
    # plain int, not Final: a constant the build's headers lack is not
    # exported, and code importing one falls back to a number of its own
    # (`except ImportError: X = 2`), which Final would refuse
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
                out += ["    " + line for line in op_pyi_lines(op)]
        if cls.name == "IoUring":
            for op in model.ops:
                out += ["    " + line for line in op_pyi_lines(op, RING)]
        if cls.name == "AsyncRing":
            for op in model.ops:
                if op.aio != "none":
                    out += ["    " + line for line in op_pyi_lines(op, AIO)]
        if cls.name == "AsyncChain":
            for op in model.ops:
                if op.aio == "await":
                    out += ["    " + line for line in op_pyi_lines(op, CHAIN)]
    return "\n".join(out) + "\n"


# py_io_uring/trio.pyi: TrioRing has AsyncRing's operations (py_io_uring/trio.py
# builds them from the same op table), each an `async def` of the result
# AsyncRing's awaitable gives; multishot ones return the same async iterator.
TRIO_PRELUDE = '''\
import os
import socket
from typing import AsyncIterator, Dict, List, Optional, Sequence, Tuple, Union, overload

from . import AsyncFileOpener, IoUring, Sqe, _Address, _AncData, _OptAddress, _FileDescriptorLike, _Opener, _OpenBinaryMode, _OpenTextMode, _ReadableBuffer, _SockAddrIn, _StrOrBytesPath, _WritableBuffer

__all__ = ["TrioRing", "open_ring"]

def open_ring(entries: Optional[int] = 256, flags: int = 0, *, sq_thread_idle: int = 0, sq_thread_cpu: Optional[int] = None, cq_entries: int = 0, wq_fd: Optional[_FileDescriptorLike] = None) -> TrioRing: ...

class TrioRing:
    def __init__(self, entries: Optional[int] = 256, flags: int = 0, *, sq_thread_idle: int = 0, sq_thread_cpu: Optional[int] = None, cq_entries: int = 0, wq_fd: Optional[_FileDescriptorLike] = None) -> None: ...
    async def __aenter__(self) -> TrioRing: ...
    async def __aexit__(self, *exc_info: object) -> None: ...
    def __del__(self) -> None: ...
    async def aclose(self) -> None: ...
    @property
    def closed(self) -> bool: ...
    def fileno(self) -> int: ...
    def get_ring(self) -> IoUring: ...
    def in_flight(self) -> int: ...
    def stats(self) -> Dict[str, int]: ...
    def flush(self) -> int: ...
    def process_completions(self) -> int: ...
    def take_partial(self, fd: _FileDescriptorLike) -> bytes: ...
    async def send_all(self, fd: _FileDescriptorLike, data: _ReadableBuffer, flags: int = 0) -> int: ...
    async def sock_recv(self, sock: _FileDescriptorLike, nbytes: int, /) -> bytes: ...
    async def sock_recv_into(self, sock: _FileDescriptorLike, buf: _WritableBuffer, /) -> int: ...
    async def sock_sendall(self, sock: _FileDescriptorLike, data: _ReadableBuffer, /) -> None: ...
    async def sock_connect(self, sock: _FileDescriptorLike, address: _SockAddrIn, /) -> None: ...
    async def sock_accept(self, sock: _FileDescriptorLike, /) -> Tuple[socket.socket, _Address]: ...
    @overload
    def open(self, file: Union[_StrOrBytesPath, int], mode: _OpenTextMode = "r", buffering: int = -1, encoding: Optional[str] = None, errors: Optional[str] = None, newline: Optional[str] = None, closefd: bool = True, opener: Optional[_Opener] = None) -> AsyncFileOpener[str]: ...
    @overload
    def open(self, file: Union[_StrOrBytesPath, int], mode: _OpenBinaryMode, buffering: int = -1, encoding: None = None, errors: None = None, newline: None = None, closefd: bool = True, opener: Optional[_Opener] = None) -> AsyncFileOpener[bytes]: ...
    @overload
    def open(self, file: Union[_StrOrBytesPath, int], mode: str, buffering: int = -1, encoding: Optional[str] = None, errors: Optional[str] = None, newline: Optional[str] = None, closefd: bool = True, opener: Optional[_Opener] = None) -> Union[AsyncFileOpener[str], AsyncFileOpener[bytes]]: ...
'''

_AWAITABLE = re.compile(r"^(\s*)def (.*) -> (?:Awaitable|Future|asyncio\.Future)\[(.*)\]: \.\.\.$")


def _trio_form(line: str) -> str:
    """AsyncRing's `def f(...) -> Awaitable[T]` as TrioRing's `async def f(...) -> T`."""
    m = _AWAITABLE.match(line)
    return "%sasync def %s -> %s: ..." % m.groups() if m else line


def trio_pyi(model: Model) -> str:
    out = ["# %s" % HEADER, TRIO_PRELUDE.rstrip("\n")]
    for op in model.ops:
        if op.aio != "none":
            lines = op_pyi_lines(op, AIO)
            out += ["    " + _trio_form(line) for line in lines]
            if op.name == "close":
                out.append("    " + _trio_form(lines[-1].replace("def close(", "def close_fd(", 1)))
    return "\n".join(out) + "\n"
