"""Which async library runs the caller: "trio" or "asyncio" (anyio runs on
one of them), and a hop to that library's worker threads.  sniffio tells
where it is installed (trio and anyio bring it); without it only asyncio
can be running."""

import typing as _t

_R = _t.TypeVar("_R")


def current_library() -> str:
    try:
        import sniffio
        return str(sniffio.current_async_library())
    except Exception:
        return "asyncio"


async def run_in_thread(fn: "_t.Callable[..., _R]", *args: object) -> "_R":
    """fn(*args) in a worker thread of the running library: asyncio's
    default executor (what aiofiles uses) or trio.to_thread.  For calls
    io_uring has no operation for; cancelling the await abandons nothing
    in the kernel, and the call itself runs to its end."""
    if current_library() == "trio":
        import trio
        return await trio.to_thread.run_sync(fn, *args)
    import asyncio
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


def wrap(func: "_t.Callable[..., _R]") -> "_t.Callable[..., _t.Awaitable[_R]]":
    """aiofiles.os.wrap() (and aiofiles.os.path.wrap(), the same): an async
    function calling func in a worker thread, for an os call that aos does
    not have."""
    import functools

    @functools.wraps(func)
    async def run(*args: _t.Any, **kwargs: _t.Any) -> _R:
        return await run_in_thread(functools.partial(func, *args, **kwargs))
    return run
