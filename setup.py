"""The part of the pip build that pyproject.toml cannot say: run the
generator (gen/generate.py, with the Makefile's arguments) before compiling,
compile src/*.c, src/*/*.c and the generated C with the Makefile's warning flags, and
put the generated stub into the package as __init__.pyi."""

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
    """The Python files, plus the stub the generator writes."""

    def run(self):
        super().run()
        if not self.dry_run:
            generate(pyi=os.path.join(self.build_lib, "py_io_uring", "__init__.pyi"))


class BuildExt(build_ext):
    """Generate the C into the build's temporary folder, then compile."""

    def build_extensions(self):
        gen = os.path.join(self.build_temp, "gen")
        generate(out=gen)
        for ext in self.extensions:
            ext.include_dirs.append(gen)
            ext.sources.append(os.path.join(gen, "ops_gen.c"))
        super().build_extensions()


setup(
    version=version(),
    ext_modules=[Extension(
        "py_io_uring._core",
        sources=sorted(glob.glob(os.path.join("src", "*.c")) +
                     glob.glob(os.path.join("src", "*", "*.c"))),
        include_dirs=["src"],
        extra_compile_args=WARN,
        libraries=["uring"],
    )],
    cmdclass={"build_py": BuildPy, "build_ext": BuildExt},
)
