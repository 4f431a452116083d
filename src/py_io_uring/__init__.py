# The py_io_uring package: a thin shell around the C extension
# py_io_uring._core.  Every public name is the extension's, re-exported here,
# so py_io_uring.IoUring is the one type whichever way it is imported.  The
# package exists so that `python -m py_io_uring` can run (an extension module
# cannot be run with -m) and so the stub (__init__.pyi, generated) and the
# py.typed marker have a home.  Its docstring is the extension's.

from ._core import *  # noqa: F401,F403
from ._core import __doc__, __version__  # noqa: F401


# The event loop (loop.py) imports asyncio: loaded on first use, so that
# `import py_io_uring` stays as light as the extension itself.
_LOOP_NAMES = ("EventLoop", "EventLoopPolicy", "new_event_loop", "install", "run",
               "get_running_ring")
# The bulk file helpers (files.py, workqueue.py) import shutil: loaded on
# first use too.
_FILES_NAMES = ("read_files", "iter_read_files", "hash_files", "copyfile", "copy2", "copytree")
_AFILES_NAMES = ("aread_files", "aiter_read_files", "ahash_files", "acopyfile", "acopy2", "acopytree")
_WORKQUEUE_NAMES = ("WorkQueue",)
_AFILE_NAMES = ("open", "AsyncFile", "AsyncFileOpener")
_WHOLE_NAMES = ("read_bytes", "read_text", "write_bytes", "write_text")
_PATH_NAMES = ("Path",)


def __getattr__(name):
    if name in _LOOP_NAMES:
        from . import loop
        return getattr(loop, name)
    if name in _FILES_NAMES:
        from . import files
        return getattr(files, name)
    if name in _AFILES_NAMES:
        from . import files_async
        return getattr(files_async, name)
    if name in _AFILE_NAMES:
        from . import afile
        return getattr(afile, name)
    if name in _WHOLE_NAMES:
        from . import afile_whole
        return getattr(afile_whole, name)
    if name in _PATH_NAMES:
        from . import apath
        return getattr(apath, name)
    if name in _WORKQUEUE_NAMES:
        from . import workqueue
        return getattr(workqueue, name)
    if name in ("aos", "tempfile"):     # the submodules, as `from py_io_uring
        import importlib                # import aos` gives them (`from . import
        return importlib.import_module(__name__ + "." + name)   # aos` would ask this again)
    raise AttributeError("module 'py_io_uring' has no attribute %r" % name)


def __dir__():
    return sorted(set(globals()) | set(_LOOP_NAMES) | set(_FILES_NAMES) | set(_WORKQUEUE_NAMES)
                  | set(_AFILE_NAMES) | set(_AFILES_NAMES) | set(_WHOLE_NAMES)
                  | set(_PATH_NAMES) | {"aos", "tempfile"})
