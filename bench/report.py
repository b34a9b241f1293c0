#!/usr/bin/env python3
"""Turn bench/bench.sh's results.txt into the comparison table.

    python3 bench/report.py RESULTS [docs/performance.md docs/performance.svg]

Prints the table. With the two paths, also replaces the section between the
results markers of the markdown (creating the file with its standard header
when missing; everything outside the markers is kept) and writes the SVG.
"""
import html
import math
import os
import sys

BEGIN = "<!-- bench:results:begin (written by make bench; edits here are lost) -->"
END = "<!-- bench:results:end -->"

HEADER = """# Performance

`make bench` (bench/bench.sh, about 2 minutes on the 2-core reference
machine) measures strata against restic on the same data, on the same
machine, in one run, and rewrites the results section below and
[performance.svg](performance.svg). See [bench/README.md](../bench/README.md).

## Targets

- **Backup and restore no slower than restic** on the same data
  (throughput ratio strata/restic >= 1).
- **An unchanged re-backup stores under 0.1% of the data.**
- **Peak memory of a backup does not grow with the number of blobs already
  in the repository**: peak Go heap backing up 64 MiB into a repository
  whose index holds 2,000,000 blobs is at most 1.2x that into an empty one
  (`BenchmarkBackupHeapLargeIndex` in repo/bench_heap_test.go).

## Method

- Data: `go run ./tools/gengraph -out DIR -bytes 1GiB`, a deterministic
  graph export (APOC JSON Lines, three files), and the same graph with 1% of
  its records changed (`-change 0.01 -change-seed 7`, same file names).
- Each tool gets a fresh repository on the local disk and a fresh cache,
  with its defaults (restic: repository v2, compression auto; strata:
  zstd auto, 16 MiB packs) and its real key derivation
  (`STRATA_INSECURE_TEST_KDF` is not set). Every command opens the
  repository, so each wall time includes one key derivation.
- Phases, the tools interleaved phase by phase (the order alternates) so
  machine noise hits both alike; `sync` before every timed phase; each
  timed phase runs once per round (`BENCH_ROUNDS`, default 1; with more,
  every figure is the median):
  1. first backup of DIR: wall time, CPU time (user+sys) and peak RSS
     (`/usr/bin/time -f '%e %M %U %S'`), repository size after (`du -sb`);
  2. unchanged re-backup of DIR: bytes added to the repository; then
     `snapshots`, the fixed cost of one command (open, key derivation,
     list), which every wall time includes;
  3. backup of the 1%-changed files, renamed into place at the same path
     (new inodes and mtimes, so both tools re-read them against the parent
     snapshot): wall time and bytes added;
  4. restore of the first snapshot into an empty directory: wall time, CPU
     time and peak RSS; every restored file is compared with the source
     (`cmp`).
- Neither tool fsyncs restored files, so a restore's time ends when the
  data is in the page cache; backups' packs are fsynced by both.
- "Bytes added" is the growth of the sum of the repository's file sizes
  (directory entries excluded). Throughput is data bytes / wall seconds,
  in MB/s (10^6 bytes).
- The page cache is dropped (`echo 3 > /proc/sys/vm/drop_caches`) before
  every timed phase where that is permitted, so backups read the source
  from disk; where it is not, the run says "warm" and the source is read
  from memory. The machine table below says which.
"""


def load(path):
    r = {}
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if "=" in line:
                k, v = line.split("=", 1)
                r[k] = v
    return r


def num(r, k, default=None):
    try:
        return float(r[k])
    except (KeyError, ValueError):
        return default


def fmt_bytes(n):
    if n is None:
        return "n/a"
    n = float(n)
    for unit, div in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(n) >= div:
            return f"{n / div:.2f} {unit}"
    return f"{int(n)} B"


def ratio(a, b):
    if a is None or b is None:
        return None
    if b == 0:
        return float("inf") if a > 0 else 1.0
    return a / b


def fmt_ratio(x):
    if x is None:
        return "n/a"
    if x == float("inf"):
        return "inf"
    return f"{x:.2f}"


def figures(r):
    data = num(r, "data_bytes")
    rows = []  # (figure, restic, strata, ratio, how, raw values)
    out = {}

    def tp(phase):
        res = {}
        for t in ("restic", "strata"):
            s = num(r, f"{t}_{phase}_secs")
            res[t] = data / 1e6 / s if s else None
        return res

    def spread(key, conv, fmt):
        """' [min-max]' over the rounds, when there were several."""
        v = r.get(key + "__rounds")
        if not v:
            return ""
        xs = sorted(conv(float(x)) for x in v.split())
        return f" [{fmt.format(xs[0])}-{fmt.format(xs[-1])}]"

    tps = lambda t, p: spread(f"{t}_{p}_secs", lambda x: data / 1e6 / x, "{:.0f}")
    rss_s = lambda t, p: spread(f"{t}_{p}_rss_kib", lambda x: x / 1024, "{:.0f}")

    def rss(phase):
        return {t: (num(r, f"{t}_{phase}_rss_kib") or 0) * 1024 or None for t in ("restic", "strata")}

    def added(k):
        return {t: num(r, f"{t}_added{k}_bytes") for t in ("restic", "strata")}

    def cpu(phase):
        return {t: num(r, f"{t}_{phase}_cpu_secs") for t in ("restic", "strata")}

    b = tp("backup1")
    out["backup_mbps"] = b
    rows.append(("Backup throughput (first backup)", f"{b['restic']:.1f} MB/s{tps('restic', 'backup1')}",
                 f"{b['strata']:.1f} MB/s{tps('strata', 'backup1')}",
                 ratio(b["strata"], b["restic"]), "strata/restic"))
    s = tp("restore")
    out["restore_mbps"] = s
    rows.append(("Restore throughput", f"{s['restic']:.1f} MB/s{tps('restic', 'restore')}",
                 f"{s['strata']:.1f} MB/s{tps('strata', 'restore')}",
                 ratio(s["strata"], s["restic"]), "strata/restic"))
    for label, phase in (("CPU time (user+sys), first backup", "backup1"), ("CPU time (user+sys), restore", "restore")):
        c = cpu(phase)
        if c["restic"] is not None and c["strata"] is not None:
            out[f"{phase}_cpu"] = c
            cs = lambda t: spread(f"{t}_{phase}_cpu_secs", lambda x: x, "{:.1f}")
            rows.append((label, f"{c['restic']:.2f} s{cs('restic')}", f"{c['strata']:.2f} s{cs('strata')}",
                         ratio(c["restic"], c["strata"]), "restic/strata"))
    f = {t: num(r, f"{t}_snapshots_secs") for t in ("restic", "strata")}
    if f["restic"] is not None and f["strata"] is not None:
        out["fixed_secs"] = f
        rows.append(("Fixed cost per command (`snapshots`: open, key derivation, list)",
                     f"{f['restic']:.2f} s", f"{f['strata']:.2f} s", ratio(f["restic"], f["strata"]), "restic/strata"))
    m = rss("backup1")
    out["backup_rss"] = m
    rows.append(("Peak RSS, backup", fmt_bytes(m["restic"]) + rss_s("restic", "backup1"),
                 fmt_bytes(m["strata"]) + rss_s("strata", "backup1"),
                 ratio(m["restic"], m["strata"]), "restic/strata"))
    m = rss("restore")
    out["restore_rss"] = m
    rows.append(("Peak RSS, restore", fmt_bytes(m["restic"]) + rss_s("restic", "restore"),
                 fmt_bytes(m["strata"]) + rss_s("strata", "restore"),
                 ratio(m["restic"], m["strata"]), "restic/strata"))
    size = {t: num(r, f"{t}_after1_du") for t in ("restic", "strata")}
    out["repo_size"] = size
    rows.append(("Repository size after first backup (du -sb)", fmt_bytes(size["restic"]), fmt_bytes(size["strata"]),
                 ratio(size["restic"], size["strata"]), "restic/strata"))
    c = tp("backup3")
    rows.append(("Backup throughput, 1%-changed files (parent snapshot present)",
                 f"{c['restic']:.1f} MB/s{tps('restic', 'backup3')}", f"{c['strata']:.1f} MB/s{tps('strata', 'backup3')}",
                 ratio(c["strata"], c["restic"]), "strata/restic"))
    d = added(2)
    out["unchanged"] = d
    rows.append(("Unchanged re-backup: bytes stored",
                 f"{int(d['restic'])} B ({100 * d['restic'] / data:.2g}% of the data)",
                 f"{int(d['strata'])} B ({100 * d['strata'] / data:.2g}% of the data)",
                 ratio(d["restic"], d["strata"]), "restic/strata"))
    d = added(3)
    out["changed"] = d
    rows.append(("1%-changed backup: bytes stored",
                 f"{fmt_bytes(d['restic'])} ({100 * d['restic'] / data:.1f}%)",
                 f"{fmt_bytes(d['strata'])} ({100 * d['strata'] / data:.1f}%)",
                 ratio(d["restic"], d["strata"]), "restic/strata"))
    return rows, out


def heap_rows(r):
    if "heap_heap_ratio" not in r:
        return []
    g = lambda k: num(r, "heap_" + k)
    return [
        ("Peak heap, backup of 64 MiB, cold cache (cache built from the index objects)",
         f"{g('empty_cold_peak_heap_MiB'):.1f} MiB", f"{g('large_cold_peak_heap_MiB'):.1f} MiB",
         g("heap_ratio"), f"cache build {g('cache_build_s'):.1f} s"),
        ("Peak heap, backup of 64 MiB, warm cache (cache up to date)",
         f"{g('empty_warm_peak_heap_MiB'):.1f} MiB", f"{g('large_warm_peak_heap_MiB'):.1f} MiB",
         g("heap_ratio_warm"), ""),
    ]


def verdicts(r, out):
    v = []
    bt = ratio(out["backup_mbps"]["strata"], out["backup_mbps"]["restic"])
    rt = ratio(out["restore_mbps"]["strata"], out["restore_mbps"]["restic"])
    data = num(r, "data_bytes")
    un = out["unchanged"]["strata"] / data
    v.append(("Backup no slower than restic", bt >= 1, f"strata/restic = {bt:.2f}"))
    v.append(("Restore no slower than restic", rt >= 1, f"strata/restic = {rt:.2f}"))
    v.append(("Unchanged re-backup stores < 0.1% of the data", un < 0.001,
              f"{100 * un:.2g}% ({int(out['unchanged']['strata'])} B of {fmt_bytes(data)})"))
    if "heap_heap_ratio" in r:
        hc, hw = num(r, "heap_heap_ratio"), num(r, "heap_heap_ratio_warm")
        v.append(("Backup peak heap, 2M-blob / empty repository <= 1.2 (cold cache)", hc <= 1.2, f"{hc:.2f}"))
        v.append(("Backup peak heap, 2M-blob / empty repository <= 1.2 (warm cache)", hw <= 1.2, f"{hw:.2f}"))
    elif r.get("heap_failed"):
        v.append(("Backup peak heap does not grow with the index", False, "benchmark failed to run"))
    return v


def busy(r):
    """Whether the 5-minute load average exceeded half the cores."""
    try:
        n = float(r["nproc"])
        return any(float(r[k].split()[1]) > n / 2 for k in ("loadavg_start", "loadavg_end") if k in r)
    except (KeyError, ValueError, IndexError):
        return False


def machine(r):
    mem = num(r, "mem_kib")
    return [
        ("date", r.get("date", "?")),
        ("commit", r.get("commit", "?")),
        ("cores (nproc)", r.get("nproc", "?")),
        ("CPU", r.get("cpu", "?")),
        ("memory", fmt_bytes(mem * 1024) if mem else "?"),
        ("kernel", r.get("kernel", "?")),
        ("file system", r.get("fs", "?")),
        ("go", r.get("go", "?")),
        ("restic", r.get("restic", "?")),
        ("strata", r.get("strata", "?")),
        ("page cache", r.get("cache", "?")),
        ("data", f"{fmt_bytes(num(r, 'data_bytes'))} ({int(num(r, 'data_bytes'))} bytes) in {r.get('data_files', '?')} files, "
                 f"-bytes {r.get('size_arg', '?')}; {r.get('changed_files_differ', '?')} of them differ in the 1%-changed version"),
        ("load average (1, 5, 15 min) at start, end", f"{r.get('loadavg_start', '?')}; {r.get('loadavg_end', '?')}"
                                                        + (" (busy: other work shared the cores, wall times are unreliable)"
                                                           if busy(r) else "")),
        ("whole run", f"{r.get('total_secs', '?')} s"),
    ]


def text_table(r, rows, heap, verd, mach):
    w0 = max(len(x[0]) for x in rows + heap) if heap else max(len(x[0]) for x in rows)
    w1 = max(len(x[1]) for x in rows + heap)
    w2 = max(len(x[2]) for x in rows + heap)
    lines = [f"{'figure':<{w0}} | {'restic':>{w1}} | {'strata':>{w2}} | ratio (>1: strata better)", "-" * (w0 + w1 + w2 + 36)]
    for f, a, b, rt, how in rows:
        lines.append(f"{f:<{w0}} | {a:>{w1}} | {b:>{w2}} | {fmt_ratio(rt)} ({how})")
    if heap:
        lines.append("")
        lines.append(f"{'BenchmarkBackupHeapLargeIndex':<{w0}} | {'empty repo':>{w1}} | {'2M blobs':>{w2}} | 2M/empty (target <= 1.2)")
        for f, a, b, rt, note in heap:
            lines.append(f"{f:<{w0}} | {a:>{w1}} | {b:>{w2}} | {fmt_ratio(rt)} {note}")
    lines.append("")
    if busy(r):
        lines.append("CAUTION: the machine was busy with other work (see the load average): wall times are unreliable.")
    for name, ok, detail in verd:
        lines.append(f"[{'PASS' if ok else 'FAIL'}] {name}: {detail}")
    lines.append("")
    for k, v in mach:
        lines.append(f"{k + ':':<16} {v}")
    return "\n".join(lines)


def md_results(r, rows, heap, verd, mach):
    L = [BEGIN, "", f"## Results ({r.get('date', '?')})", ""]
    n = int(num(r, "rounds", 1))
    if n > 1:
        L.append(f"Median of {n} rounds, [min-max] over the rounds where shown.")
    else:
        L.append("One round: every timed phase ran once (see the noise note below the results).")
    L.append("")
    L.append("| figure | restic | strata | ratio (> 1: strata better) |")
    L.append("| --- | ---: | ---: | ---: |")
    for f, a, b, rt, how in rows:
        L.append(f"| {f} | {a} | {b} | {fmt_ratio(rt)} ({how}) |")
    L.append("")
    if heap:
        L.append("`BenchmarkBackupHeapLargeIndex` (strata only; peak Go heap sampled every 5 ms):")
        L.append("")
        L.append("| figure | empty repository | 2,000,000-blob repository | ratio (target <= 1.2) |")
        L.append("| --- | ---: | ---: | ---: |")
        for f, a, b, rt, note in heap:
            L.append(f"| {f} | {a} | {b} | {fmt_ratio(rt)}{' (' + note + ')' if note else ''} |")
        L.append("")
    L.append("Targets:")
    L.append("")
    if busy(r):
        L.append("*Caution: the machine was busy with other work during this run (load average "
                 f"{r.get('loadavg_start', '?')} at the start, {r.get('loadavg_end', '?')} at the end, "
                 f"on {r.get('nproc', '?')} cores): the wall-time figures are unreliable; CPU times less so.*")
        L.append("")
    for name, ok, detail in verd:
        L.append(f"- {'**PASS**' if ok else '**FAIL**'} {name}: {detail}")
    L.append("")
    L.append("![throughput and peak RSS, restic vs strata](performance.svg)")
    L.append("")
    L.append("Machine and run:")
    L.append("")
    L.append("| | |")
    L.append("| --- | --- |")
    for k, v in mach:
        L.append(f"| {k} | {html.escape(str(v))} |")
    L.append("")
    L.append("Raw figures (results.txt):")
    L.append("")
    L.append("```")
    for k in sorted(r):
        L.append(f"{k}={r[k]}")
    L.append("```")
    L.append("")
    L.append(END)
    return "\n".join(L)


def write_md(path, section):
    old = open(path).read() if os.path.exists(path) else ""
    if BEGIN in old and END in old:
        head, rest = old.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        new = head + section + tail
    elif old:
        new = old.rstrip("\n") + "\n\n" + section + "\n"
    else:
        new = HEADER + "\n" + section + "\n"
    with open(path + ".tmp", "w") as f:
        f.write(new)
    os.replace(path + ".tmp", path)


def nice_max(v):
    """The smallest 1, 2, 2.5 or 5 x 10^k step such that 4 steps cover v."""
    if v <= 0:
        return 1.0, 0.25
    step = v / 4
    k = 10 ** math.floor(math.log10(step))
    for m in (1, 2, 2.5, 5, 10):
        if m * k >= step:
            return 4 * m * k, m * k
    return v, v / 4


def svg(r, out):
    """Grouped bar charts: throughput (MB/s), peak RSS (MiB) and, when the Go
    benchmark ran, its peak heap (MiB)."""
    colors = {"restic": "#7f8c9a", "strata": "#2a7ab0", "empty": "#9fc5e8", "2M blobs": "#1f5f8b"}
    mib = lambda v: v / (1 << 20)
    panels = [
        ("Throughput, MB/s (higher is better)", ("restic", "strata"),
         [("backup", out["backup_mbps"]), ("restore", out["restore_mbps"])], lambda v: v),
        ("Peak RSS, MiB (lower is better)", ("restic", "strata"),
         [("backup", out["backup_rss"]), ("restore", out["restore_rss"])], mib),
    ]
    if "heap_heap_ratio" in r:
        g = lambda k: num(r, "heap_" + k)
        panels.append(("strata backup peak heap, MiB", ("empty", "2M blobs"),
                       [("cold cache", {"empty": g("empty_cold_peak_heap_MiB"), "2M blobs": g("large_cold_peak_heap_MiB")}),
                        ("warm cache", {"empty": g("empty_warm_peak_heap_MiB"), "2M blobs": g("large_warm_peak_heap_MiB")})],
                       lambda v: v))
    pw, ph, top, left, gap = 280, 200, 64, 56, 90
    W = left + len(panels) * pw + (len(panels) - 1) * gap + 30
    H = 340
    s = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
         'font-family="sans-serif" font-size="12">',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<text x="{W / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">'
         f'strata vs restic, {html.escape(fmt_bytes(num(r, "data_bytes")))} graph export, '
         f'{html.escape(r.get("nproc", "?"))} cores, make bench of {html.escape(r.get("date", "?")[:10])}</text>']
    for i, (title, series, groups, conv) in enumerate(panels):
        x0 = left + i * (pw + gap)
        vals = [conv(gr[t]) for _, gr in groups for t in series if gr.get(t) is not None]
        vmax, step = nice_max(max(vals) * 1.08 if vals else 1)
        s.append(f'<text x="{x0 + pw / 2}" y="{top - 16}" text-anchor="middle" font-weight="bold">{html.escape(title)}</text>')
        for k in range(5):
            y = top + ph - ph * k / 4
            s.append(f'<line x1="{x0 - 4}" y1="{y:.1f}" x2="{x0 + pw}" y2="{y:.1f}" stroke="{"black" if k == 0 else "#ddd"}"/>')
            s.append(f'<text x="{x0 - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#444">{step * k:g}</text>')
        s.append(f'<line x1="{x0}" y1="{top}" x2="{x0}" y2="{top + ph}" stroke="black"/>')
        gw = pw / len(groups)
        bw = gw * 0.3
        for j, (name, gr) in enumerate(groups):
            gx = x0 + j * gw + gw * 0.2
            for k, t in enumerate(series):
                if gr.get(t) is None:
                    continue
                v = conv(gr[t])
                h = ph * v / vmax
                bx = gx + k * bw
                s.append(f'<rect x="{bx:.1f}" y="{top + ph - h:.1f}" width="{bw:.1f}" height="{h:.1f}" fill="{colors[t]}">'
                         f'<title>{html.escape(t)}, {html.escape(name)}: {v:.1f}</title></rect>')
                s.append(f'<text x="{bx + bw / 2:.1f}" y="{top + ph - h - 4:.1f}" text-anchor="middle">{v:.0f}</text>')
            s.append(f'<text x="{gx + bw:.1f}" y="{top + ph + 16}" text-anchor="middle">{html.escape(name)}</text>')
        ly = top + ph + 44
        for k, t in enumerate(series):
            lx = x0 + pw / 2 - 70 + k * 90
            s.append(f'<rect x="{lx:.1f}" y="{ly - 10}" width="12" height="12" fill="{colors[t]}"/>')
            s.append(f'<text x="{lx + 18:.1f}" y="{ly}">{html.escape(t)}</text>')
    s.append("</svg>")
    return "\n".join(s) + "\n"


def main():
    if len(sys.argv) not in (2, 4):
        sys.exit(__doc__)
    r = load(sys.argv[1])
    rows, out = figures(r)
    heap = heap_rows(r)
    verd = verdicts(r, out)
    mach = machine(r)
    print(text_table(r, rows, heap, verd, mach))
    if len(sys.argv) == 4:
        write_md(sys.argv[2], md_results(r, rows, heap, verd, mach))
        with open(sys.argv[3], "w") as f:
            f.write(svg(r, out))
        print(f"\nwrote {sys.argv[2]} and {sys.argv[3]}")


if __name__ == "__main__":
    main()
