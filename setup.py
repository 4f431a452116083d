"""The part of the pip build that pyproject.toml cannot say: run the
generator (gen/generate.py, with the Makefile's arguments) before compiling,
compile src/*.c, src/*/*.c and the generated C with the Makefile's warning flags, and
put the generated stub into the package as __init__.pyi.

Environment (`make wheel` sets them; a plain `pip install .` needs none):
  PY_IO_URING_LIBURING_DIR     a liburing prefix (include/, lib/) to build
                               against instead of the system's
  PY_IO_URING_STATIC_LIBURING  a liburing.a to link into the extension (the
                               binary wheel: no liburing needed where it is
                               installed); the wheel then carries liburing's
                               MIT licence (licenses/liburing-MIT.txt)
  PY_IO_URING_LIBURING_VERSION the version of that liburing.a, for
                               py_io_uring.LIBURING_STATIC, when its headers
                               do not say it (liburing 2.3's do not)
"""

import glob
import os
import re
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

# the Makefile's WARN: a warning is a build failure on both paths
WARN = ["-Wall", "-Wextra", "-Werror", "-std=gnu11"]


def version():
    with open(os.path.join("src", "version.h"), encoding="utf-8") as f:
        return re.search(r'#define PU_VERSION "([^"]+)"', f.read()).group(1)


def generate(out=None, pyi=None):
    cmd = [sys.executable, os.path.join("gen", "generate.py"),
           "--ops", "ops.def", "--methods", os.path.join("src", "methods.def")]
    if out:
        cmd += ["--out", out]
    if pyi:
        cmd += ["--pyi", pyi]
    subprocess.check_call(cmd)


class BuildPy(build_py):
    """The Python files, plus the stubs the generator writes (__init__.pyi
    and, next to it, trio.pyi)."""

    def run(self):
        super().run()
        if not self.dry_run:
            generate(pyi=os.path.join(self.build_lib, "py_io_uring", "__init__.pyi"))


LIBURING_DIR = os.environ.get("PY_IO_URING_LIBURING_DIR")
STATIC = os.environ.get("PY_IO_URING_STATIC_LIBURING")
MISSING_HEADERS = (
    "py_io_uring needs liburing's headers to build from source: install liburing-dev "
    "(Debian, Ubuntu), liburing-devel (Fedora), liburing (Arch, Alpine: liburing-dev), "
    "or install a binary wheel")


def static_version():
    """The static liburing's version: its headers' IO_URING_VERSION_*, else
    PY_IO_URING_LIBURING_VERSION, else 'unknown'."""
    inc = os.path.join(LIBURING_DIR, "include") if LIBURING_DIR else "/usr/include"
    try:
        with open(os.path.join(inc, "liburing", "io_uring_version.h"), encoding="utf-8") as f:
            text = f.read()
        major = re.search(r"IO_URING_VERSION_MAJOR\s+(\d+)", text).group(1)
        minor = re.search(r"IO_URING_VERSION_MINOR\s+(\d+)", text).group(1)
        return "%s.%s" % (major, minor)
    except (OSError, AttributeError):
        return os.environ.get("PY_IO_URING_LIBURING_VERSION", "unknown")


class BuildExt(build_ext):
    """Check liburing's headers are there, generate the C into the build's
    temporary folder, then compile."""

    def check_headers(self, ext):
        import tempfile
        try:
            from setuptools.errors import CompileError
        except ImportError:     # setuptools before 59
            from distutils.errors import CompileError

        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "check.c")
            with open(src, "w") as f:
                f.write("#include <liburing.h>\nint main(void) { return 0; }\n")
            try:
                self.compiler.compile([src], output_dir=tmp, include_dirs=ext.include_dirs)
            except CompileError:
                sys.exit(MISSING_HEADERS)

    def build_extensions(self):
        for ext in self.extensions:
            self.check_headers(ext)
        gen = os.path.join(self.build_temp, "gen")
        generate(out=gen)
        for ext in self.extensions:
            ext.include_dirs.append(gen)
            ext.sources.append(os.path.join(gen, "ops_gen.c"))
        super().build_extensions()


def extension():
    include_dirs, library_dirs, libraries, objects, macros = ["src"], [], ["uring"], [], []
    if LIBURING_DIR:
        include_dirs.append(os.path.join(LIBURING_DIR, "include"))
        library_dirs.append(os.path.join(LIBURING_DIR, "lib"))
    if STATIC:
        # liburing's objects go into the extension: it needs no liburing.so
        libraries, objects = [], [os.path.abspath(STATIC)]
        macros.append(("PU_LIBURING_STATIC", '"%s"' % static_version()))
    return Extension(
        "py_io_uring._core",
        sources=sorted(glob.glob(os.path.join("src", "*.c")) +
                       glob.glob(os.path.join("src", "*", "*.c"))),
        include_dirs=include_dirs,
        library_dirs=library_dirs,
        libraries=libraries,
        extra_objects=objects,
        define_macros=macros,
        extra_compile_args=WARN,
    )


setup(
    version=version(),
    ext_modules=[extension()],
    cmdclass={"build_py": BuildPy, "build_ext": BuildExt},
    # a wheel with liburing linked in ships liburing's licence (MIT, of its
    # MIT-or-LGPL-2.1 dual licence) in its metadata
    license_files=["licenses/liburing-MIT.txt"] if STATIC else [],
)
