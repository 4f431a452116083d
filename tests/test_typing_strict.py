"""What a user of the package sees under mypy --strict: a program using
each form of the API (tests/typed/user_script.py: the sync fast forms, the
Sqe/Cqe loop, AsyncRing's awaitables of each result shape and its multishot
iterators, read() with a length and with each kind of buffer, the file
helpers, the event loop's entry points) type-checks with no error and no
Any from the API (--disallow-any-expr), its reveal_type() lines show the
types ops.def gives, it runs and finds those types at run time; and a
program with mistakes (tests/typed/wrong_script.py) gets an error on each
mistake's line and nowhere else.  numpy arrays as buffers
(tests/typed/numpy_script.py) where numpy is installed."""

import os
import re
import sys

import pytest

from conftest import BUILD
from pkg_helpers import clean_env, run

try:
    import mypy  # noqa: F401
except ImportError:
    mypy = None
try:
    import numpy  # noqa: F401
except ImportError:
    numpy = None

from test_typing import _knows_deprecated

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "typed")
USER = os.path.join(HERE, "user_script.py")
WRONG = os.path.join(HERE, "wrong_script.py")
NUMPY = os.path.join(HERE, "numpy_script.py")

pytestmark = [
    pytest.mark.skipif(mypy is None, reason="mypy is not installed for this interpreter "
                       "(make deps-test installs it; .ci/run always has it)"),
    pytest.mark.skipif(mypy is not None and not _knows_deprecated(),
                       reason="this mypy predates typing_extensions.deprecated (PEP 702), "
                       "which the stub uses; pip's mypy checks the stub in the other runs"),
    pytest.mark.no_leakcheck,
]

# --strict, and no expression of the user's program may be Any (nor hold
# one): whatever the API hands back is typed.
STRICT = ["--strict", "--disallow-any-expr"]


def _mypy(tmp_path, flags, *scripts):
    """mypy on scripts, the package found as an installed, typed package:
    on the interpreter's path (PYTHONPATH), so that errors inside its own
    modules are not the user's (stubtest's business: test_typing.py)."""
    env = clean_env(PYTHONPATH=BUILD, MYPYPATH=BUILD)
    return run([sys.executable, "-m", "mypy", "--config-file", os.devnull, "--no-incremental",
                "--cache-dir", str(tmp_path / "cache"), "--python-executable", sys.executable]
               + flags + list(scripts), 600, env=env, cwd=str(tmp_path))


def _messages(out, path, kind):
    """{line: [message]} of mypy's `kind` ("error" or "note") lines for path."""
    found = {}
    name = os.path.basename(path)
    for line in out.splitlines():
        m = re.match(r"^(.*?):(\d+): %s: (.*)$" % kind, line)
        if m and os.path.basename(m.group(1)) == name:
            found.setdefault(int(m.group(2)), []).append(m.group(3))
    return found


def _marks(path, marker):
    """{line: text after the marker} of a script's marked lines."""
    out = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if marker in line and not line.lstrip().startswith(('"', "#")):
                out[n] = line.split(marker, 1)[1].strip()
    return out


def _normalize(revealed):
    """mypy's revealed type without module prefixes, in 3.9+ spelling
    (3.8's mypy writes builtins.list[...], Tuple[...], Union[...])."""
    t = re.sub(r"\b(builtins|typing|_asyncio|asyncio\.futures|py_io_uring\.afile)\.", "", revealed)
    return t.replace("Tuple[", "tuple[").replace("List[", "list[")


def test_user_script_is_clean_and_typed(tmp_path):
    scripts = [USER] + ([NUMPY] if numpy is not None else [])
    proc = _mypy(tmp_path, STRICT, *scripts)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "Success: no issues found" in proc.stdout, out
    notes = _messages(proc.stdout, USER, "note")
    expected = _marks(USER, "  # revealed:")
    assert len(expected) >= 10
    for line, pattern in sorted(expected.items()):
        got = [m for m in notes.get(line, []) if m.startswith("Revealed type is ")]
        assert len(got) == 1, "line %d: no reveal_type note in\n%s" % (line, out)
        revealed = _normalize(got[0][len("Revealed type is "):].strip('"'))
        assert "Any" not in revealed, "line %d: %s" % (line, revealed)
        assert re.fullmatch(pattern, revealed), "line %d: %s does not match %s" % (
            line, revealed, pattern)


def test_user_script_runs_as_typed(tmp_path):
    # the same program at run time: each value is of the type the stub
    # gave it (its asserts), so stub and module agree
    for script in [USER] + ([NUMPY] if numpy is not None else []):
        # the module as this suite runs it: under ASan the child needs the
        # sanitizer runtime preloaded too (clean_env() is for children that
        # compile or type-check)
        proc = run([sys.executable, script], 300, cwd=str(tmp_path),
                   env=dict(os.environ, PYTHONPATH=BUILD))
        assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stdout + proc.stderr


def test_mistakes_are_reported_where_they_are(tmp_path):
    proc = _mypy(tmp_path, ["--strict"], WRONG)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    errors = _messages(proc.stdout, WRONG, "error")
    expected = _marks(WRONG, "  # error:")
    assert len(expected) >= 10
    assert sorted(errors) == sorted(expected), out
    for line, text in expected.items():
        assert any(text in e for e in errors[line]), "line %d wants %r:\n%s" % (line, text, out)


def test_no_any_in_the_stub():
    # every type of the generated stub is spelled out: no Any anywhere
    with open(os.path.join(BUILD, "py_io_uring", "__init__.pyi"), encoding="utf-8") as f:
        stub = f.read()
    assert not re.search(r"\bAny\b", stub.replace("# Any object", "")), \
        [ln for ln in stub.splitlines() if re.search(r"\bAny\b", ln)][:5]
