"""Which async library runs the caller: "trio" or "asyncio" (anyio runs on
one of them).  sniffio tells where it is installed (trio and anyio bring it);
without it only asyncio can be running."""


def current_library() -> str:
    try:
        import sniffio
        return str(sniffio.current_async_library())
    except Exception:
        return "asyncio"
