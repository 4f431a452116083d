"""One ring for code written against anyio, on either of its backends
(docs/async.md, "trio and anyio").

    async with py_io_uring.anyio.open_ring() as ring:
        data = await ring.recv(sock, 4096)

open_ring() asks sniffio which library runs the current task: under
asyncio (uvloop too) it gives an AsyncRing, under trio a TrioRing
(py_io_uring.trio).  Both have the same operations with the same results,
and both map the library's cancellation (anyio's cancel scopes are the
library's own underneath) onto IORING_OP_ASYNC_CANCEL in the kernel.
Neither asyncio nor trio is imported until a ring is asked for.
"""

# typing under a private alias: 3.8-3.9's stubtest calls a module-level
# typing.Any 'not a type' (this module is its own stub)
import typing as _t

from . import AsyncRing

if _t.TYPE_CHECKING:
    # a private name: 3.8's stubtest takes a public one for a module
    # attribute missing at run time
    from .trio import TrioRing as _TrioRing

__all__ = ["open_ring"]


def open_ring(entries: _t.Optional[int] = 256, flags: int = 0,
              **kwargs: _t.Any) -> "_t.Union[AsyncRing, _TrioRing]":
    """The ring for the async library that runs the calling task: AsyncRing
    on asyncio, TrioRing on trio; use it as `async with open_ring() as ring`.
    Takes AsyncRing's arguments.  RuntimeError outside an async library."""
    import sniffio

    try:
        lib = sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        raise RuntimeError("py_io_uring.anyio.open_ring() needs a running asyncio or trio "
                           "(call it from async code)") from None
    if lib == "trio":
        from .trio import TrioRing
        return TrioRing(entries, flags, **kwargs)
    if lib == "asyncio":
        return AsyncRing(entries, flags, **kwargs)
    raise RuntimeError("py_io_uring.anyio.open_ring(): no ring for %r (asyncio and trio have one)"
                       % lib)
