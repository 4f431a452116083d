"""The report: the headline table, one sweep table per panel, the figure
(docs/performance.png beside the Markdown), the profile tables and the
hand-written reading of the numbers (bench/notes.md); also the raw results
as JSON, so that --render can rewrite the report without measuring."""

import datetime
import json
import math
import os
import platform
import subprocess
import sys

from runner import ROOT, Case, human
from workloads import WORKLOADS

NOTES_FILE = os.path.join(ROOT, "bench", "notes.md")


def si(x):
    if x >= 1e6:
        return "%.2fM" % (x / 1e6)
    if x >= 1e3:
        return "%.0fk" % (x / 1e3)
    return "%.0f" % x


def fmt(stats, unit):
    if stats is None:
        return "-"
    med, lo, hi = stats
    if unit == "MB/s":
        return "%.0f (%.0f-%.0f)" % (med, lo, hi)
    return "%s (%s-%s)" % (si(med), si(lo), si(hi))


def render_table(cases):
    """One line per py_io_uring variant and baseline of the headline cases."""
    lines = ["| workload | py_io_uring variant | py_io_uring | baseline | baseline | ratio py/baseline |",
             "| --- | --- | --- | --- | --- | --- |"]
    for case in cases:
        if not case.headline:
            continue
        for py_name, against in case.pairs:
            py = case.notes.get(py_name) or fmt(case.stats(py_name), case.unit) + " " + case.unit
            for name in against:
                if name in case.notes:
                    b, r = case.notes[name], "-"
                else:
                    b = fmt(case.stats(name), case.unit) + " " + case.unit
                    rr = case.ratio(py_name, name)
                    r = "%.2f (%.2f-%.2f)" % rr if rr else "-"
                lines.append("| %s | %s | %s | %s | %s | %s |" % (case.workload, py_name, py, name, b, r))
    return "\n".join(lines)


def panels(cases, figure_only=False):
    """{panel: [cases sorted by x]} in the order the panels first appear."""
    out = {}
    for case in cases:
        if case.panel is None or (figure_only and not case.figure):
            continue
        out.setdefault(tuple(case.panel), []).append(case)
    for key in out:
        out[key].sort(key=lambda c: c.x)
    return out


def lines_of(group, plotted):
    """The lines of a panel in order, baselines first: [(label, kind,
    {x: name})].  A line is a series label (the os.preadv loop at depth 1 and
    the thread pool at depth N are one line); variants without one are
    their own line in the tables and left out of the figure."""
    out = {}
    for case in group:
        for name, _ in case.fns:
            label = case.series.get(name)
            if not label:
                if plotted:
                    continue
                label = name
            line = out.setdefault(label, (label, case.kind[name], {}))
            line[2][case.x] = name
    return sorted(out.values(), key=lambda line: line[1] != "baseline")


def render_sweeps(cases):
    """Per panel: each line's median at every point of the sweep, and in
    brackets its ratio to the panel's reference (C, mostly) in the same run."""
    parts = []
    for (title, xlabel), group in panels(cases).items():
        ref = group[0].reference
        unit = group[0].unit
        num = (lambda v: "%.0f" % v) if unit == "MB/s" else si
        head = "**%s** (%s; in brackets: / %s, same run)" % (title, unit, ref) if ref else \
            "**%s** (%s)" % (title, unit)
        lines = [head, "", "| %s | %s |" % (xlabel, " | ".join(str(c.x) for c in group)),
                 "| --- |" + " --- |" * len(group)]
        for label, kind, names in lines_of(group, plotted=False):
            cells = []
            for case in group:
                name = names.get(case.x)
                st = case.stats(name) if name else None
                if not name:
                    cells.append("")
                elif st is None:
                    cells.append("-")
                else:
                    rr = case.ratio(name, ref) if ref and name != ref else None
                    cells.append(num(st[0]) + (" (%.2f)" % rr[0] if rr else ""))
            if kind == "py" and not label.startswith(("py_io_uring", "AsyncRing")):
                label = "py_io_uring: " + label
            lines.append("| %s | %s |" % (label, " | ".join(cells)))
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


# line styles: C solid black, the other baselines dashed, py_io_uring's
# variants in colour with round markers; the same label gets the same style
# in every panel
PY_COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf"]
PEER_COLOURS = ["#7f7f7f", "#8c564b", "#bcbd22", "#e377c2", "#2f4f4f", "#a0522d"]


def write_figure(cases, path):
    """One PNG, one panel per workload: throughput against the swept
    parameter, every variant a line; None when written, else why not."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullLocator
    except ImportError:
        return "matplotlib is not installed: no figure"
    groups = panels(cases, figure_only=True)
    if not groups:
        return "nothing to plot"
    ncols = 2
    nrows = math.ceil(len(groups) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(13, 6.4 * nrows), squeeze=False)
    for ax in axes.flat[len(groups):]:
        ax.set_visible(False)
    for ax, ((title, xlabel), group) in zip(axes.flat, groups.items()):
        ys = []
        py_i = peer_i = 0
        for label, kind, names in lines_of(group, plotted=True):
            pts = [(c.x, c.stats(names[c.x])) for c in group if c.x in names and c.stats(names[c.x])]
            if not pts:
                continue
            xs = [x for x, _ in pts]
            med = [s[0] for _, s in pts]
            lo = [s[1] for _, s in pts]
            hi = [s[2] for _, s in pts]
            ys += lo + hi
            if label.startswith("C "):
                style = dict(color="black", ls="--" if "registered" in label else "-", lw=2.2, marker="s", ms=5)
            elif kind == "baseline":
                style = dict(color=PEER_COLOURS[peer_i % len(PEER_COLOURS)], ls="--", lw=1.6, marker="^", ms=5)
                peer_i += 1
            else:
                style = dict(color=PY_COLOURS[py_i % len(PY_COLOURS)], ls="-", lw=2, marker="o", ms=5)
                py_i += 1
            # thin bars for the min-max: on this machine the spread is wide,
            # and shaded bands of eight lines hide each other
            ax.errorbar(xs, med, yerr=[[m - a for m, a in zip(med, lo)], [b - m for m, b in zip(med, hi)]],
                        label=label, elinewidth=0.9, capsize=3, **style)
        xs_all = sorted({c.x for c in group})
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_locator(FixedLocator(xs_all))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: "%g" % v))
        if len(xs_all) == 1:
            ax.set_xlim(xs_all[0] / 2, xs_all[0] * 2)
        if ys and min(ys) > 0 and max(ys) / min(ys) > 8:
            ax.set_yscale("log")
        else:
            ax.set_ylim(bottom=0)
        if ax.get_yscale() == "log":
            ax.yaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
            ax.yaxis.set_minor_locator(NullLocator())
        num = (lambda v, _: "%.0f" % v) if group[0].unit == "MB/s" else (lambda v, _: si(v) if v >= 1000 else "%g" % v)
        ax.yaxis.set_major_formatter(FuncFormatter(num))
        ax.set_title(title, fontsize=13)
        ax.set_xlabel(xlabel, fontsize=11)
        ax.set_ylabel(group[0].unit, fontsize=11)
        ax.tick_params(labelsize=10)
        ax.grid(True, which="major", alpha=0.3)
        # below the panel: inside, eight entries cover the lines
        ax.legend(fontsize=9.5, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2, frameon=False)
    fig.suptitle("py_io_uring (solid, colour), C over liburing (black) and the other baselines (dashed): "
                 "median of the repetitions, bars: min-max", fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return None


def render_per_op(per_op):
    """The callgrind/rusage table of profiling.gap_measure()."""
    lines = ["| NOP round trip, batch 64 | module (py_io_uring .so / liburing) | interpreter (libpython) | "
             "libc and the rest | user-space instructions | user CPU ns | kernel (system) CPU ns |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, (cg, ru) in per_op.items():
        if isinstance(cg, str):
            cells = [cg, "-", "-", "-"]
        else:
            # the extension is py_io_uring/_core.*.so (py_io_uring.*.so before)
            mod = sum(v for k, v in cg.items()
                      if k.startswith(("py_io_uring", "_core", "liburing", "nop", "ideal_ring")))
            interp = sum(v for k, v in cg.items() if k.startswith("libpython"))
            total = sum(cg.values())
            cells = ["%.0f" % mod, "%.0f" % interp if interp else "0", "%.0f" % (total - mod - interp),
                     "%.0f" % total]
        lines.append("| %s | %s | %.0f | %.0f |" % (name, " | ".join(cells), ru[0], ru[1]))
    return "\n".join(lines)


def machine_info():
    info = {}
    info["uname -a"] = " ".join(platform.uname())
    try:
        info["uname -a"] = subprocess.run(["uname", "-a"], capture_output=True, text=True).stdout.strip()
    except OSError:
        pass
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info["CPU"] = "%s, %d logical CPUs" % (cpu, os.cpu_count() or 0)
    info["kernel"] = platform.release()
    info["python"] = sys.version.replace("\n", " ")
    try:
        info["liburing"] = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "liburing-dev"],
                                          capture_output=True, text=True).stdout.strip() or "?"
    except OSError:
        info["liburing"] = "?"
    try:
        import liburing
        info["peer binding"] = "liburing %s (PyPI, YoSTEALTH)" % getattr(liburing, "__version__", "?")
    except ImportError:
        info["peer binding"] = "liburing (PyPI): not installed"
    try:
        import uvloop
        info["uvloop"] = uvloop.__version__
    except ImportError:
        info["uvloop"] = "not installed"
    return info


def write_report(path, res, figure_msg, figure):
    cases = res["cases"]
    out = []
    out.append("# Performance")
    out.append("")
    out.append("Generated by `bench/run.py` (%s, %s run, %d repetitions per figure, %.0f s). "
               "Each cell is the median of the repetitions with the min-max spread in brackets; "
               "the variants of one workload at one batch size or depth run round-robin inside each "
               "repetition, and the ratio is the median of the per-repetition ratios py_io_uring / "
               "baseline (above 1: py_io_uring is faster). The machine is a shared 2-core VM: trust "
               "ratios more than absolute figures." % (res["date"], "quick" if res["quick"] else "full",
                                                       res["repeat"], res["elapsed"]))
    out.append("")
    if figure_msg is None:
        out.append("![throughput against batch size, queue depth and connections, one panel per "
                   "workload](%s)" % os.path.basename(figure))
        out.append("")
        out.append("Each panel is one workload swept over its batch size, queue depth or "
                   "concurrency, on log axes where the range is wide; py_io_uring's API tiers are the "
                   "solid coloured lines, C over liburing the black ones, the other baselines dashed. "
                   "The numbers behind every point are in the sweep tables below.")
    else:
        out.append("Figure: %s." % figure_msg)
    out.append("")
    out.append("## Headline table")
    out.append("")
    out.append(render_table(cases))
    out.append("")
    for n in res["notes"]:
        out.append("Note: " + n)
        out.append("")
    out.append("## Sweeps")
    out.append("")
    out.append("The median of each variant at every point of each sweep (the points of the figure), "
               "with its ratio to the panel's reference measured in the same run.")
    out.append("")
    out.append(render_sweeps(cases))
    out.append("")
    out.append("## Machine")
    out.append("")
    for k, v in machine_info().items():
        out.append("- %s: `%s`" % (k, v))
    out.append("- test files: a temporary folder in /tmp (ext4 here); O_DIRECT/copy file size %s"
               % human(res["size"]))
    out.append("")
    out.append("## Commands")
    out.append("")
    out.append("```sh")
    out.append("make bench        # builds the module and build/bench/{nop,randread,echo_load,echo_server}, then:")
    out.append("python3 bench/run.py --out docs/performance.md      # --size 1G --repeat 5")
    out.append("make bench-ci     # python3 bench/run.py --quick --out build/bench/performance.md")
    out.append("```")
    out.append("")
    out.append("The exact command of this run: `%s`." % " ".join(["python3"] + res["argv"]))
    out.append("")
    out.append("What each workload does:")
    out.append("")
    for i, (_, _, describe) in enumerate(WORKLOADS.values()):
        out.append("%d. %s" % (i + 1, describe(res["quick"])))
    out.append("")
    out.append("## Where the gap to C is")
    out.append("")
    gap = res["gap"]
    if gap:
        out.append("Measured in this run (`breakdown()` in bench/profiling.py: the NOP loop at batch 64 "
                   "timed step by step with `time.perf_counter`, per operation):")
        out.append("")
        out.append("| step | ns per op |")
        out.append("| --- | --- |")
        for k, v in gap.items():
            out.append("| %s | %.0f |" % (k, v))
        c64 = [c for c in cases if c.workload == "NOP round trip, batch 64"]
        if c64 and c64[0].stats("C liburing"):
            out.append("| C liburing, whole round trip | %.0f |" % (1e9 / c64[0].stats("C liburing")[0]))
        out.append("")
    if res["per_op"]:
        out.append("Per NOP round trip at batch 64, measured in this run (`gap_measure()` in "
                   "bench/profiling.py): user-space instructions from `valgrind --tool=callgrind` (the "
                   "loop run with N and 2N ops, the difference over N, so start-up cancels; split by the "
                   "binary the instructions ran in: for C the program and liburing count as \"module\"), "
                   "and the CPU time the process spent in user space and in the kernel (getrusage, same "
                   "N/2N difference, at full speed; callgrind cannot see the kernel). The floor rows run "
                   "the same loops on `bench/ideal_ring.c`, py_io_uring's call shapes with nothing behind "
                   "them (no kernel, no record, no check): the least any module with this API costs, "
                   "its \"module\" column the mock's own code:")
        out.append("")
        out.append(render_per_op(res["per_op"]))
        out.append("")
    profile = res["profile"]
    if profile:
        out.append("`perf record` of the NOP loop at batch 64 (share of CPU samples per binary; "
                   "the kernel part is io_uring's own submit and completion work, which C pays too):")
        out.append("")
        for who, shares in profile.items():
            if isinstance(shares, str):
                out.append("- %s: %s" % (who, shares))
            else:
                out.append("- %s: %s" % (who, ", ".join(
                    "%s %.0f%%" % (os.path.basename(d.strip("[]")) if not d.startswith("[") else d, v)
                    for d, v in shares)))
        out.append("")
    else:
        out.append("No `perf` profile in this run (quick run, --no-profile, or perf missing).")
        out.append("")
    with open(NOTES_FILE) as f:
        out.append(f.read().rstrip())
    out.append("")
    with open(path, "w") as f:
        f.write("\n".join(out))


def output(res, out_path):
    """Print the headline table; with out_path, write the report and the
    figure beside it (same name, .png)."""
    print()
    print(render_table(res["cases"]))
    for n in res["notes"]:
        print("note: " + n)
    if out_path:
        figure = os.path.splitext(out_path)[0] + ".png"
        figure_msg = write_figure(res["cases"], figure)
        write_report(out_path, res, figure_msg, figure)
        print("\nwrote %s%s" % (out_path, "" if figure_msg else " and " + figure))


CASE_FIELDS = ("workload", "unit", "panel", "x", "headline", "reference", "figure",
               "series", "kind", "pairs", "samples", "notes")


def save_json(path, res):
    data = {k: v for k, v in res.items() if k != "cases"}
    data["cases"] = [dict({f: getattr(c, f) for f in CASE_FIELDS}, names=[n for n, _ in c.fns])
                     for c in res["cases"]]
    with open(path, "w") as f:
        json.dump(data, f, indent=1)


def load_json(path):
    with open(path) as f:
        data = json.load(f)
    cases = []
    for d in data["cases"]:
        c = Case(d["workload"], d["unit"])
        for f in CASE_FIELDS:
            setattr(c, f, d[f])
        c.fns = [(n, None) for n in d["names"]]
        cases.append(c)
    data["cases"] = cases
    data["per_op"] = data.get("per_op")
    return data


def today():
    return datetime.date.today().isoformat()
