"""Helpers for the tests that build, install or type-check the package in
other processes (test_packaging.py, test_typing.py)."""

import os
import shutil
import subprocess

from uring_helpers import REPO

# A child that compiles or installs must not inherit the sanitizer runtime
# or the settings of a make that may be running this suite.
_DROP = {"LD_PRELOAD", "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "PYTHONPATH", "PYTHONMALLOC"}


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in _DROP}
    env.update(extra)
    return env


def run(cmd, timeout, **kwargs):
    """Run cmd; CompletedProcess with text output."""
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)


def copy_sources(dest):
    """The source tree without builds, caches and git metadata: what a
    fresh checkout holds, so a build there cannot touch the repository."""
    def ignore(folder, names):
        return [n for n in names
                if n in (".git", "dist", "__pycache__", ".pytest_cache", ".hypothesis", ".mypy_cache")
                or n == "build" or n.startswith("build-") or n.endswith(".egg-info")]
    shutil.copytree(REPO, dest, ignore=ignore)
    return dest
