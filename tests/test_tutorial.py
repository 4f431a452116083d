"""docs/tutorial.md cannot rot: every ```python block in it runs, as a
reader would paste it, in a fresh interpreter in an empty folder (blocks
check themselves with asserts)."""

import os
import re
import subprocess
import sys

import pytest

from conftest import BUILD, REPO

TUTORIAL = os.path.join(REPO, "docs", "tutorial.md")


def _blocks():
    with open(TUTORIAL, encoding="utf-8") as f:
        text = f.read()
    out = []
    for m in re.finditer(r"^```python\n(.*?)^```$", text, re.M | re.S):
        line = text.count("\n", 0, m.start()) + 2
        out.append(pytest.param(m.group(1), id="line%d" % line))
    return out


BLOCKS = _blocks()


def test_the_tutorial_has_its_steps():
    assert len(BLOCKS) >= 10
    with open(TUTORIAL, encoding="utf-8") as f:
        text = f.read()
    for topic in ("prep_read", "wait_cqe_nr", "prep_accept", "prep_timeout", "prep_link_timeout",
                  "prep_cancel", "IOSQE_IO_LINK", "register_buffers", "setup_buf_ring"):
        assert topic in text, topic


@pytest.mark.no_leakcheck
@pytest.mark.parametrize("code", BLOCKS)
def test_block_runs(code, tmp_path):
    env = dict(os.environ, PYTHONPATH=BUILD)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, cwd=str(tmp_path), env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
