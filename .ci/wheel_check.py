"""Check a binary wheel of py_io_uring as a user gets it (.ci/wheel runs it).

    python .ci/wheel_check.py PYTHON WHEEL [LIBURING_VERSION]

- its tag is a manylinux one and its extension needs no liburing.so (its
  ELF DT_NEEDED entries are the manylinux policy's libraries: libc and the
  like), and it carries liburing's licence;
- installed into a fresh venv of PYTHON, with every liburing shared library
  of the machine hidden (a private mount namespace binds /dev/null over
  them, when run as root), it reads a file, does a socket round trip and
  `python -m py_io_uring` reports the liburing linked into it.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

# what manylinux policies allow an extension to need (the subset that matters)
ALLOWED = {"libc.so.6", "libpthread.so.0", "libm.so.6", "libdl.so.2", "librt.so.1",
           "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1"}

SMOKE = r"""
import os, socket, sys, tempfile
import py_io_uring
from py_io_uring import IoUring, AT_FDCWD
with tempfile.NamedTemporaryFile() as f:
    f.write(b"wheel data"); f.flush()
    with IoUring(8) as ring:
        ring.prep_openat(AT_FDCWD, f.name, os.O_RDONLY, user_data="open")
        ((ud, fd, _),) = ring.reap(1, 1, submit=True)
        assert ud == "open" and fd >= 0, (ud, fd)
        ring.prep_read(fd, 100, 0, user_data="read")
        ((ud, data, _),) = ring.reap(1, 1, submit=True)
        os.close(fd)
        assert data == b"wheel data", data
        a, b = socket.socketpair()
        ring.prep_send(a, b"ping", 0, user_data="send")
        ring.prep_recv(b, 100, 0, user_data="recv")
        got = dict((ud, res) for ud, res, _ in ring.reap(2, 2, submit=True))
        assert got == {"send": 4, "recv": b"ping"}, got
        a.close(); b.close()
maps = open("/proc/self/maps").read()
assert "liburing" not in maps, "a liburing shared library was loaded"
print("smoke ok", py_io_uring.__version__, py_io_uring.LIBURING_STATIC)
"""


def needed(so_path):
    out = subprocess.run(["readelf", "-d", so_path], capture_output=True, text=True,
                         check=True).stdout
    return {line.split("[", 1)[1].split("]", 1)[0]
            for line in out.splitlines() if "(NEEDED)" in line}


def hidden_run(cmd, env):
    """Run cmd with every liburing shared library of the machine hidden,
    in a private mount namespace (root only); else as it is."""
    libs = []
    for d in ("/usr/lib", "/lib", "/usr/local/lib", "/usr/lib64", "/lib64"):
        for root, _, files in os.walk(d):
            libs += [os.path.join(root, f) for f in files if f.startswith("liburing")
                     and ".so" in f and not os.path.islink(os.path.join(root, f))]
    if os.geteuid() == 0 and shutil.which("unshare") and libs:
        script = "".join("mount --bind /dev/null %s && " % p for p in libs)
        cmd = ["unshare", "-m", "sh", "-c", script + 'exec "$@"', "sh"] + cmd
        print("wheel check: hiding", " ".join(libs))
    else:
        print("wheel check: cannot hide liburing.so (not root, or no unshare); "
              "the DT_NEEDED check stands")
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


def main():
    py, wheel = sys.argv[1], sys.argv[2]
    expected = sys.argv[3] if len(sys.argv) > 3 and sys.argv[3] else None
    name = os.path.basename(wheel)
    assert "manylinux" in name, "not a manylinux wheel: %s" % name
    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(wheel) as z:
            names = z.namelist()
            assert any(n.endswith("liburing-MIT.txt") for n in names), \
                "the wheel lacks liburing's licence: %s" % names
            sos = [n for n in names if n.endswith(".so")]
            assert len(sos) == 1 and sos[0].startswith("py_io_uring/_core"), sos
            z.extractall(tmp)
        deps = needed(os.path.join(tmp, sos[0]))
        assert not (deps - ALLOWED), "the extension needs %s" % sorted(deps - ALLOWED)
        print("wheel check: %s needs only %s" % (sos[0], ", ".join(sorted(deps))))

        venv = os.path.join(tmp, "venv")
        subprocess.run([py, "-m", "venv", venv], check=True)
        vpy = os.path.join(venv, "bin", "python")
        subprocess.run([vpy, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        "--no-index", "--no-deps", wheel], check=True)
        env = {k: v for k, v in os.environ.items()
               if k not in ("PYTHONPATH", "LD_PRELOAD", "LD_LIBRARY_PATH")}
        proc = hidden_run([vpy, "-c", SMOKE], env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        print("wheel check:", proc.stdout.strip())
        proc = hidden_run([vpy, "-m", "py_io_uring", "--json"], env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        lib = json.loads(proc.stdout)["liburing"]
        assert lib["static"] and lib["library"] is None, lib
        if expected:
            assert lib["static"] == expected, (lib, expected)
        proc = hidden_run([vpy, "-m", "py_io_uring"], env)
        assert "linked into the extension" in proc.stdout, proc.stdout
        print("wheel check: python -m py_io_uring says", proc.stdout.splitlines()[1])
    print("wheel check: %s ok" % name)


if __name__ == "__main__":
    main()
