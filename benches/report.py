#!/usr/bin/env python3
"""Turn db_bench CSV files (one per run) into a Markdown report, a chart and
the issue's targets with PASS/MISS.  Standard library only; the chart is drawn
by gnuplot (apt package gnuplot-nox) when it is installed.

    report.py RUN1.csv [RUN2.csv ...] --md results.md [--chart chart.png]
              [--core core_bench.txt] [--title TEXT]

Run 1 fills the tables and the targets; later runs give the run-to-run
relative differences (and their own target ratios, to judge the noise).
"""
import argparse
import csv
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict

PEERS = ["lmdb", "leveldb", "rocksdb", "sqlite", "tkrzw", "kyotocabinet"]
BITCASKS = ["bitcask", "bitcask-wb0", "bitcask-buf"]
ENGINE_ORDER = BITCASKS + PEERS + ["append", "memhash", "fileperkey"]
WORKLOADS = [
    ("fillseq", "fillseq"),
    ("fillrandom", "fillrandom"),
    ("overwrite", "overwrite"),
    ("readrandom", "readrandom"),
    ("readmissing", "readmissing"),
    ("readwhilewriting:read", "rww reads"),
    ("readwhilewriting:write", "rww writes"),
    ("deleterandom", "deleterandom"),
    ("fillsync1", "fillsync 1 thr"),
    ("fillsync8", "fillsync 8 thr"),
]
HDR = 19  # bitcask record header
KEY = 16


class Run:
    """All rows of one CSV: ops[(engine, vsize)][workload] = dict, metrics, info, n."""

    def __init__(self, path):
        self.path = path
        self.ops = defaultdict(dict)
        self.metrics = defaultdict(dict)
        self.info = defaultdict(dict)
        self.n = {}
        self.skips = defaultdict(dict)
        with open(path, newline="") as f:
            for r in csv.DictReader(f):
                key = (r["engine"], int(r["value_size"]))
                self.n[key] = int(r["n"])
                if r["row"] == "op":
                    self.ops[key][r["name"]] = {
                        "ops_s": float(r["value"]),
                        "mean": float(r["mean_us"]),
                        "p99": float(r["p99_us"]),
                        "ops": int(r["ops"]),
                        "note": r["text"],
                    }
                elif r["row"] == "metric":
                    self.metrics[key][r["name"]] = float(r["value"])
                elif r["row"] == "info":
                    self.info[r["engine"]][r["name"]] = r["text"]
                elif r["row"] == "skip":
                    self.skips[key][r["name"]] = r["text"]

    def vsizes(self):
        return sorted({v for (_, v) in list(self.ops) + list(self.metrics)})

    def engines(self, vsize=None):
        present = {e for (e, v) in list(self.ops) + list(self.metrics) if vsize is None or v == vsize}
        return [e for e in ENGINE_ORDER if e in present] + sorted(present - set(ENGINE_ORDER))

    def rate(self, engine, vsize, workload):
        """ops/s, None when not run or when its reads were wrong (ERRORS)"""
        o = self.ops.get((engine, vsize), {}).get(workload)
        return o["ops_s"] if o and "ERRORS" not in o["note"] else None


def md(text):
    """escape text for a Markdown table cell"""
    return text.replace("|", "\\|")


def fmt_rate(x):
    if x is None:
        return "—"
    if x >= 1e6:
        return f"{x / 1e6:.2f}M"
    if x >= 1e3:
        return f"{x / 1e3:.1f}k"
    return f"{x:.0f}"


def fmt_us(x):
    if x >= 1000:
        return f"{x / 1000:.1f}ms"
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def fmt_bytes(x):
    if x is None:
        return "—"
    if x >= 1 << 30:
        return f"{x / (1 << 30):.2f} GiB"
    if x >= 1 << 20:
        return f"{x / (1 << 20):.1f} MiB"
    if x >= 1 << 10:
        return f"{x / (1 << 10):.0f} KiB"
    return f"{x:.0f} B"


def vsize_title(run, vsize):
    ns = sorted({n for (e, v), n in run.n.items() if v == vsize})
    n_main = max(ns) if ns else 0
    return f"{vsize:,}-byte values, {n_main:,} keys"


def op_table(run, vsize, out):
    engines = run.engines(vsize)
    cols = [(w, label) for (w, label) in WORKLOADS if any(run.rate(e, vsize, w) for e in engines)]
    out.append("Cells: ops/s, then mean / p99 latency in µs. `—`: not run or not supported.\n")
    out.append("| engine | " + " | ".join(label for _, label in cols) + " |")
    out.append("|---|" + "---:|" * len(cols))
    for e in engines:
        n = run.n.get((e, vsize))
        name = f"**{e}**" if e in BITCASKS else e
        n_main = max(v for (x, vs), v in run.n.items() if vs == vsize)
        if n and n != n_main:
            name += f" (n={n:,})"
        cells = []
        for w, _ in cols:
            o = run.ops.get((e, vsize), {}).get(w)
            if not o:
                cells.append("—")
            else:
                flag = " ⚠" if o["note"] else ""
                cells.append(f"{fmt_rate(o['ops_s'])}{flag}<br>{fmt_us(o['mean'])} / {fmt_us(o['p99'])}")
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    out.append("")


def metric_table(run, vsize, out):
    engines = run.engines(vsize)
    out.append("| engine | RSS growth / key (anon) | disk after fillrandom | after overwrite | after compact "
               "| compact time | open time (reopen) |")
    out.append("|---|---:|---:|---:|---:|---:|---:|")
    for e in engines:
        m = run.metrics.get((e, vsize), {})
        if not m:
            continue

        def g(k, f):
            return f(m[k]) if k in m else "—"

        rss = f"{m['rss_per_key']:.1f} B ({m.get('anon_rss_per_key', 0):.1f})" if "rss_per_key" in m else "—"
        out.append(
            f"| {e} | {rss} | {g('disk_after_fillrandom', fmt_bytes)} | {g('disk_after_overwrite', fmt_bytes)} "
            f"| {g('disk_after_compact', fmt_bytes)} | {g('compact_seconds', lambda s: f'{s:.2f} s')} "
            f"| {g('open_seconds', lambda s: f'{s * 1000:.1f} ms' if s < 1 else f'{s:.2f} s')} |"
        )
    n = max(v for (x, vs), v in run.n.items() if vs == vsize)
    out.append(
        f"\nLive data: {n:,} × ({KEY} + {vsize:,}) = {fmt_bytes(n * (KEY + vsize))} of keys + values; "
        f"{fmt_bytes(n * (HDR + KEY + vsize))} as bitcask records ({HDR}-byte header each)."
    )
    out.append("")


def diff_table(runs, vsize, out):
    base = runs[0]
    engines = base.engines(vsize)
    cols = [(w, label) for (w, label) in WORKLOADS if any(base.rate(e, vsize, w) for e in engines)]
    out.append("| engine | " + " | ".join(label for _, label in cols) + " |")
    out.append("|---|" + "---:|" * len(cols))
    all_d = []
    for e in engines:
        cells = []
        for w, _ in cols:
            a = base.rate(e, vsize, w)
            ds = []
            for r in runs[1:]:
                b = r.rate(e, vsize, w)
                if a and b:
                    ds.append((b - a) / a * 100)
            if ds:
                all_d.extend(abs(d) for d in ds)
                cells.append(" / ".join(f"{d:+.0f}%" for d in ds))
            else:
                cells.append("—")
        out.append(f"| {e} | " + " | ".join(cells) + " |")
    out.append("")
    return all_d


def targets(run, nominal_n):
    """list of (label, ratio, threshold, detail) computed from one run."""
    res = []

    def fastest_peer(vsize, w):
        best = None
        for p in PEERS:
            r = run.rate(p, vsize, w)
            if r and (best is None or r > best[1]):
                best = (p, r)
        return best

    def add(label, num, den, thr, detail):
        if num is None or den is None or den == 0:
            res.append((label, None, thr, detail + " (missing data)"))
        else:
            res.append((label, num / den, thr, detail))

    v1, v2 = 100, 10000
    # Judged on the configurations whose no-sync puts reach the OS before
    # they return, as the peers' do: bitcask's defaults (into a shared map)
    # and bitcask-wb0 (a pwrite a put); a 256 KiB write buffer shown beside.
    for w, label, thr in [("fillrandom", "fillrandom", 2.0), ("overwrite", "overwrite", 2.0),
                          ("readrandom", "readrandom", 1.5), ("readwhilewriting:read", "readwhilewriting reads", 1.5),
                          ("readwhilewriting:write", "readwhilewriting writes", 1.5)]:
        fp = fastest_peer(v1, w)
        for e, how in [("bitcask", "equal durability, default write map"),
                       ("bitcask-wb0", "equal durability, write buffer 0"),
                       ("bitcask-buf", "256 KiB write buffer")]:
            b = run.rate(e, v1, w)
            add(f"100 B: {label} ≥ {thr:g}× fastest peer ({how})", b, fp[1] if fp else None, thr,
                f"{e} {fmt_rate(b)} vs {fp[0]} {fmt_rate(fp[1])}" if fp and b else "")
    # The append baseline buffers 256 KiB: bitcask-buf is its durability;
    # the default, a pwrite a put for records this large, is shown beside.
    a = run.rate("append", v2, "fillrandom")
    for e, how in [("bitcask-buf", "256 KiB write buffer, as the baseline"),
                   ("bitcask", "default: each put reaches the OS")]:
        b = run.rate(e, v2, "fillrandom")
        add(f"10 KB: fillrandom ≥ 0.9× append baseline ({how})", b, a, 0.9,
            f"{e} {fmt_rate(b)} vs append {fmt_rate(a)}")
    b = run.rate("bitcask", v2, "readrandom")
    lm = run.rate("lmdb", v2, "readrandom")
    add("10 KB: readrandom ≥ 0.5× LMDB", b, lm, 0.5, f"bitcask {fmt_rate(b)} vs lmdb {fmt_rate(lm)}")
    s1 = run.rate("bitcask", v1, "fillsync1")
    s8 = run.rate("bitcask", v1, "fillsync8")
    add("fillsync 8 threads ≥ 4× fillsync 1 thread", s8, s1, 4.0, f"{fmt_rate(s8)} vs {fmt_rate(s1)}")
    a1 = run.rate("append", v1, "fillsync1")
    add("fillsync 1 thread ≥ 0.9× append+fdatasync per record", s1, a1, 0.9, f"{fmt_rate(s1)} vs append {fmt_rate(a1)}")
    m = run.metrics.get(("bitcask", v1), {})
    if "rss_per_key" in m:
        beyond = m["rss_per_key"] - KEY
        res.append(("memory: RSS after load ≤ 40 B/key beyond the key bytes", beyond, 40.0,
                    f"{m['rss_per_key']:.1f} B/key RSS growth over fillrandom − {KEY} = {beyond:.1f}", "le"))
    else:
        res.append(("memory: RSS after load ≤ 40 B/key beyond the key bytes", None, 40.0, "(missing data)", "le"))
    for vs in (v1, v2):
        m = run.metrics.get(("bitcask", vs), {})
        n = run.n.get(("bitcask", vs))
        if "disk_after_compact" in m and n:
            live = n * (HDR + KEY + vs)
            res.append((f"disk after merge ≤ 1.1× live records ({vs:,} B values)", m["disk_after_compact"] / live, 1.1,
                        f"{fmt_bytes(m['disk_after_compact'])} vs {fmt_bytes(live)} live", "le"))
        else:
            res.append((f"disk after merge ≤ 1.1× live records ({vs:,} B values)", None, 1.1, "(missing data)", "le"))
    return res


def verdict(t):
    label, ratio, thr, detail = t[:4]
    le = len(t) > 4 and t[4] == "le"
    if ratio is None:
        return "n/a"
    ok = ratio <= thr if le else ratio >= thr
    return "PASS" if ok else "MISS"


def fmt_ratio(t):
    ratio = t[1]
    if ratio is None:
        return "—"
    if "B/key" in t[0]:
        return f"{ratio:.1f} B"
    # Three digits, so that 1.4999 never shows as a missed 1.50.
    return f"{ratio:.3f}×"


def chart(runs, path, title):
    gp = shutil.which("gnuplot")
    if not gp:
        print("report: gnuplot not found (apt-get install gnuplot-nox); no chart", file=sys.stderr)
        return False
    run = runs[0]
    vsizes = [v for v in run.vsizes()]
    tmp = tempfile.mkdtemp(prefix="bench-chart-")
    plots = []
    for v in vsizes:
        engines = run.engines(v)
        cols = [(w, label) for (w, label) in WORKLOADS if any(run.rate(e, v, w) for e in engines)]
        dat = os.path.join(tmp, f"v{v}.dat")
        with open(dat, "w") as f:
            f.write("workload " + " ".join(engines) + "\n")
            for w, label in cols:
                vals = []
                for e in engines:
                    r = run.rate(e, v, w)
                    vals.append(f"{r:.1f}" if r else "-")
                f.write('"' + label + '" ' + " ".join(vals) + "\n")
        plots.append((v, dat, len(engines)))
    rates = [o["ops_s"] for d in run.ops.values() for o in d.values() if o["ops_s"] > 0]
    ymax = 10 ** math.ceil(math.log10(max(rates) * 1.5)) if rates else 1e8
    ymin = 10 ** math.floor(math.log10(min(rates))) if rates else 1
    palette = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf",
               "#7f7f7f", "#bcbd22", "#ff7f0e", "#393b79", "#637939"]
    lines = [
        f"set terminal pngcairo noenhanced size 1500,{520 * len(plots) + 60} font 'DejaVu Sans,10'",
        f"set output '{path}'",
        "set datafile missing '-'",
        "set style data histograms",
        "set style histogram clustered gap 1",
        "set style fill solid 0.9 border -1",
        "set boxwidth 0.9",
        "set logscale y",
        f"set yrange [{ymin:g}:{ymax:g}]",
        "set format y '%.0s%c'",
        "set ylabel 'ops/s (log scale)'",
        "set grid ytics",
        "set key outside right top vertical",
        "set xtics rotate by -25",
        f"set multiplot layout {len(plots)},1 title '{title}'",
    ]
    for v, dat, ne in plots:
        lines.append(f"set title '{vsize_title(run, v)}'")
        parts = []
        for i in range(ne):
            col = palette[i % len(palette)]
            xt = ":xtic(1)" if i == 0 else ""
            parts.append(f"'{dat}' using {i + 2}{xt} title columnheader({i + 2}) lc rgb '{col}'")
        lines.append("plot " + ", \\\n     ".join(parts))
    lines.append("unset multiplot")
    script = os.path.join(tmp, "chart.gp")
    with open(script, "w") as f:
        f.write("\n".join(lines) + "\n")
    r = subprocess.run([gp, script], capture_output=True, text=True)
    if r.returncode != 0:
        print("report: gnuplot failed:\n" + r.stderr, file=sys.stderr)
        return False
    shutil.rmtree(tmp, ignore_errors=True)
    return True


BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def update_doc(doc, lines, chart_path):
    """Put the report (headings one level down, chart link relative to the doc) between the markers."""
    body = []
    for l in lines[1:]:  # drop the report's own title
        if l.startswith("#"):
            l = "#" + l
        if l.startswith("![") and chart_path:
            rel = os.path.relpath(os.path.abspath(chart_path), os.path.dirname(os.path.abspath(doc)))
            l = f"![ops/s per workload per engine, log scale]({rel})"
        body.append(l)
    text = open(doc).read() if os.path.exists(doc) else f"# Benchmarks\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        text = text.rstrip("\n") + f"\n\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    text = head + BEGIN + "\n" + "\n".join(body).strip("\n") + "\n" + END + tail
    with open(doc, "w") as f:
        f.write(text)
    print(f"updated {doc}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("csv", nargs="+")
    ap.add_argument("--md", required=True)
    ap.add_argument("--chart")
    ap.add_argument("--core", help="core_bench output to include")
    ap.add_argument("--machine", help="machine description to include")
    ap.add_argument("--doc", help="Markdown file whose results section (between the markers "
                    "<!-- results:begin --> and <!-- results:end -->) is replaced by this report")
    ap.add_argument("--title", default="bitcask db_bench")
    a = ap.parse_args()
    runs = [Run(p) for p in a.csv]
    run = runs[0]
    out = [f"# {a.title}", ""]
    out.append(f"Tables: run 1 of {len(runs)} (`{os.path.basename(run.path)}`). Each engine ran in its own "
               "process after a memory-warming step; single-threaded unless noted (readwhilewriting: 1 reader "
               "+ 1 writer thread; fillsync 8 thr: 8 writer threads).")
    out.append("")
    if a.machine and os.path.exists(a.machine):
        out.append("```")
        with open(a.machine) as f:
            out.append(f.read().rstrip())
        out.append("```")
        out.append("")
    if a.chart:
        out.append(f"![ops/s per workload per engine, log scale]({os.path.basename(a.chart)})")
        out.append("")
    for v in run.vsizes():
        out.append(f"## {vsize_title(run, v)}")
        out.append("")
        op_table(run, v, out)
        out.append(f"### Memory and disk ({v:,}-byte values)")
        out.append("")
        metric_table(run, v, out)

    out.append("## Targets (bitcask, from run 1)")
    out.append("")
    ts = [targets(r, None) for r in runs]
    hdr = "| target | detail (run 1) | run 1 | |" + "".join(f" run {i + 1} | |" for i in range(1, len(runs)))
    out.append(hdr)
    out.append("|---|---|---:|---|" + "---:|---|" * (len(runs) - 1))
    summary = []
    for i, t in enumerate(ts[0]):
        row = f"| {t[0]} | {t[3]} | {fmt_ratio(t)} | {verdict(t)} |"
        for r in ts[1:]:
            row += f" {fmt_ratio(r[i])} | {verdict(r[i])} |"
        out.append(row)
        summary.append((t[0], fmt_ratio(t), verdict(t), t[3]))
    out.append("")
    out.append("Peers for \"fastest peer\": " + ", ".join(PEERS) + " (baselines append, memhash, fileperkey "
               "excluded). Memory: RSS growth (`/proc/self/statm`) across fillrandom divided by keys.")
    out.append("")

    if len(runs) > 1:
        out.append("## Run-to-run difference")
        out.append("")
        out.append("ops/s of run 2 (and later) relative to run 1, same cells as above.")
        out.append("")
        all_d = []
        for v in run.vsizes():
            out.append(f"### {vsize_title(run, v)}")
            out.append("")
            all_d += diff_table(runs, v, out)
        if all_d:
            out.append(f"Median |difference| {statistics.median(all_d):.1f}%, "
                       f"90th percentile {sorted(all_d)[int(len(all_d) * 0.9) - 1 if len(all_d) > 1 else 0]:.1f}%, "
                       f"max {max(all_d):.1f}% over {len(all_d)} cells.")
            out.append("")

    out.append("## Durability per engine")
    out.append("")
    out.append("| engine | version | no-sync runs | fillsync runs |")
    out.append("|---|---|---|---|")
    for e in run.engines():
        i = run.info.get(e, {})
        if i:
            out.append(f"| {e} | {md(i.get('version', ''))} | {md(i.get('durability_nosync', ''))} "
                       f"| {md(i.get('durability_sync', ''))} |")
    out.append("")
    if a.core and os.path.exists(a.core):
        out.append("## core_bench")
        out.append("")
        out.append("```")
        with open(a.core) as f:
            out.append(f.read().rstrip())
        out.append("```")
        out.append("")

    if a.chart:
        ok = chart(runs, a.chart, a.title)
        if not ok:
            out = [l for l in out if not l.startswith("![")]
    with open(a.md, "w") as f:
        f.write("\n".join(out) + "\n")
    if a.doc:
        update_doc(a.doc, out, a.chart)

    print("targets (run 1):")
    for label, ratio, verd, detail in summary:
        print(f"  {verd:4}  {ratio:>9}  {label}   [{detail}]")
    if len(runs) > 1 and all_d:
        print(f"run-to-run: median |diff| {statistics.median(all_d):.1f}%, max {max(all_d):.1f}%")
    print(f"wrote {a.md}" + (f" and {a.chart}" if a.chart else ""))


if __name__ == "__main__":
    main()
