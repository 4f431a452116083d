"""python -m py_io_uring [--json]: what this machine's io_uring offers.

(`python -m py_io_uring cp SRC DST` and `cat FILE...` copy and concatenate
files through the bulk helpers, with a progress bar on a terminal: cli.py.)

Prints the module's version, the liburing it was built with and loaded,
the kernel's version, the IORING_FEAT_* features a ring reports, and every
operation of the module with whether the running kernel supports it.
A reader that stops early (`| head -1`) ends it quietly with status 141,
as SIGPIPE ends a Unix tool.
"""

import argparse
import json
import os
import platform
import sys

import py_io_uring

EXIT_SIGPIPE = 141   # the status a shell reports for a tool killed by SIGPIPE


def _liburing_library():
    """The liburing shared object this process mapped, from /proc/self/maps
    (liburing 2.3 has no runtime version call; its file name says it)."""
    try:
        with open("/proc/self/maps", encoding="utf-8") as f:
            for line in f:
                path = line.split(None, 5)[-1].strip()
                if "/liburing" in path:
                    return os.path.realpath(path)
    except OSError:
        pass
    return None


def _feature_names(bits):
    """The IORING_FEAT_* names of `bits`, lowest bit first; bits the module
    has no name for appear as 'bit N'."""
    known = {}
    for name in dir(py_io_uring):
        if name.startswith("IORING_FEAT_"):
            known[getattr(py_io_uring, name)] = name
    out = []
    for n in range(bits.bit_length()):
        if bits >> n & 1:
            out.append(known.get(1 << n, "bit %d" % n))
    return out


def collect():
    """Everything the report shows, as plain data (what --json prints)."""
    uname = platform.uname()
    headers = py_io_uring.LIBURING_VERSION
    info = {
        "version": py_io_uring.__version__,
        "python": platform.python_version(),
        "liburing": {
            "headers": "%d.%d" % headers if headers else None,
            "library": _liburing_library(),
            "static": py_io_uring.LIBURING_STATIC,
        },
        "kernel": {"system": uname.system, "release": uname.release,
                   "version": uname.version, "machine": uname.machine},
        "ring_error": None,
        "features": None,
        "feature_names": None,
    }
    supported = None
    try:
        with py_io_uring.IoUring(2) as ring:
            bits = ring.features()
            supported = ring.probe()
    except OSError as e:
        info["ring_error"] = "%s: %s" % (type(e).__name__, e)
    else:
        info["features"] = bits
        info["feature_names"] = _feature_names(bits)
    info["operations"] = [
        {"name": name, "opcode_name": opname, "opcode": opcode, "kernel": kernel,
         "supported": None if supported is None else name in supported}
        for name, opname, opcode, kernel in py_io_uring.OPERATIONS
    ]
    return info


def _yes_no(flag):
    return "?" if flag is None else ("yes" if flag else "no")


def render(info):
    """The human-readable report."""
    lib = info["liburing"]
    headers = lib["headers"] or "headers without IO_URING_VERSION_MAJOR (liburing 2.3 or older)"
    k = info["kernel"]
    lines = [
        "py_io_uring %s on Python %s" % (info["version"], info["python"]),
        "liburing:   %s; library %s" % (
            headers, "liburing %s linked into the extension" % lib["static"] if lib["static"]
            else lib["library"] or "not found in /proc/self/maps"),
        "kernel:     %s %s (%s) %s" % (k["system"], k["release"], k["machine"], k["version"]),
    ]
    if info["ring_error"]:
        lines.append("features:   unknown: no ring could be set up (%s)" % info["ring_error"])
    else:
        lines.append("features:   0x%x" % info["features"])
        lines += ["  " + name for name in info["feature_names"]]
    ops = info["operations"]
    if info["ring_error"] is None:
        lines.append("operations: %d of %d supported by this kernel"
                     % (sum(1 for o in ops if o["supported"]), len(ops)))
    else:
        lines.append("operations: %d (support unknown)" % len(ops))
    w = max(len(o["name"]) for o in ops)
    wo = max(len(o["opcode_name"]) for o in ops)
    lines.append("  %-*s  %-*s  %6s  %6s  %s" % (w, "op", wo, "opcode", "number", "linux", "supported"))
    for o in ops:
        lines.append("  %-*s  %-*s  %6d  %6s  %s" % (w, o["name"], wo, o["opcode_name"], o["opcode"],
                                                   o["kernel"], _yes_no(o["supported"])))
    return "\n".join(lines)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in ("cp", "cat"):
        return files_main(argv)
    p = argparse.ArgumentParser(prog="python -m py_io_uring", description=__doc__.splitlines()[0],
                                epilog="python -m py_io_uring cp SRC DST | cat FILE...: copy, "
                                       "concatenate (cli.py)")
    p.add_argument("--json", action="store_true", help="print the same as one JSON object")
    args = p.parse_args(argv)
    info = collect()
    try:
        if args.json:
            json.dump(info, sys.stdout, indent=2)
            sys.stdout.write("\n")
        else:
            print(render(info))
        sys.stdout.flush()
    except BrokenPipeError:
        # the reader went (`... | head -1`): stop quietly, as a Unix tool
        # killed by SIGPIPE does, with its status (128 + 13).  What is
        # still buffered goes to /dev/null, or the flush at exit would
        # report the broken pipe again (the Python docs' recipe, signal
        # module, "Note on SIGPIPE").
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_SIGPIPE
    return 0


def files_main(argv):
    """cp SRC DST, cat FILE...: the file commands (cli.py).  An OSError is
    one line on stderr (`cp: [Errno 2] No such file or directory: 'x'`),
    status 1, as cp and cat report it; cat goes on with the next file."""
    import shutil
    from . import cli

    cmd = argv[0]
    p = argparse.ArgumentParser(prog="python -m py_io_uring " + cmd)
    if cmd == "cp":
        p.add_argument("src")
        p.add_argument("dst")
    else:
        p.add_argument("files", nargs="+")
    args = p.parse_args(argv[1:])
    try:
        if cmd == "cp":
            cli.cp(args.src, args.dst)
        else:
            failed = []

            def report(err):
                print("cat: %s" % err, file=sys.stderr)
                failed.append(err)
            cli.cat(args.files, on_error=report)
            if failed:
                return 1
    except shutil.Error as err:
        for src, dst, why in err.args[0]:
            print("cp: %s -> %s: %s" % (src, dst, why), file=sys.stderr)
        return 1
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_SIGPIPE
    except (OSError, shutil.SameFileError) as err:
        print("%s: %s" % (cmd, err), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
