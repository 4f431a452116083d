"""A whole file in one await, as pathlib.Path's methods and anyio.Path's
give it: `await py_io_uring.read_bytes(path)`, `read_text`, `write_bytes`,
`write_text`.  Each is py_io_uring.open() (afile.py), one read or write of
the whole, and the close: the same arguments as pathlib's, the same
results and errors (the path in them), on the ring open() takes when none
is given (ring= for another)."""

# typing's names under a private alias, as afile.py does
import typing as _t

from .afile import _open

if _t.TYPE_CHECKING:
    from . import _ReadableBuffer, _StrOrBytesPath
    from .afile import _Ring

__all__ = ["read_bytes", "read_text", "write_bytes", "write_text"]


async def read_bytes(path: "_StrOrBytesPath", *, ring: "_t.Optional[_Ring]" = None) -> bytes:
    """pathlib.Path.read_bytes(): the file's bytes (one read where the file
    is regular: its size plus one byte asked)."""
    f = await _open(path, "rb", None, None, None, True, None, ring)
    try:
        return _t.cast(bytes, await f.read())
    finally:
        await f.close()


async def read_text(path: "_StrOrBytesPath", encoding: _t.Optional[str] = None,
                    errors: _t.Optional[str] = None,
                    newline: _t.Optional[str] = None, *,
                    ring: "_t.Optional[_Ring]" = None) -> str:
    """pathlib.Path.read_text(): the file decoded as open(path, "r",
    encoding=..., errors=..., newline=...) decodes it (newline is 3.13's)."""
    f = await _open(path, "r", encoding, errors, newline, True, None, ring)
    try:
        return _t.cast(str, await f.read())
    finally:
        await f.close()


async def write_bytes(path: "_StrOrBytesPath", data: "_ReadableBuffer", *,
                      ring: "_t.Optional[_Ring]" = None) -> int:
    """pathlib.Path.write_bytes(): the file created or truncated and data
    written, all of it; the count of bytes."""
    # (TypeError before the file is touched; numpy arrays pass, whose
    # stub has no __buffer__ before 3.12)
    view = memoryview(_t.cast(bytes, data))
    f = await _open(path, "wb", None, None, None, True, None, ring)
    try:
        return await f.write(view)
    finally:
        await f.close()


async def write_text(path: "_StrOrBytesPath", data: str, encoding: _t.Optional[str] = None,
                     errors: _t.Optional[str] = None, newline: _t.Optional[str] = None, *,
                     ring: "_t.Optional[_Ring]" = None) -> int:
    """pathlib.Path.write_text(): data encoded as open(path, "w",
    encoding=..., errors=..., newline=...) encodes it; the count of
    characters."""
    if not isinstance(data, str):
        raise TypeError("data must be str, not %s" % type(data).__name__)
    f = await _open(path, "w", encoding, errors, newline, True, None, ring)
    try:
        return await f.write(data)
    finally:
        await f.close()

