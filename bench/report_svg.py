"""The SVG of bench/report.py: docs/performance.svg."""
import html

from report_common import blobs_label, fmt_bytes, nice_max, num


def svg(r, out, g, lo, po):
    """Grouped bar charts, three to a row: throughput (MB/s) and peak RSS
    (MiB) of backup, restore and check --read-data, and, when measured,
    bytes stored by the graph tiers against the file backups, the layered
    restore, point-in-time recovery and the Go benchmark's peak heap. out,
    g, lo and po are the figures of report.py's figures, graph_figures,
    layer_figures and pitr_figures."""
    colors = {"restic": "#7f8c9a", "strata": "#2a7ab0", "strata graph tiers": "#e0892b",
              "empty": "#9fc5e8", "large": "#1f5f8b", "8 layers": "#e0892b", "one base": "#f3c58f"}
    mib = lambda v: v / (1 << 20)
    both = ("restic", "strata")
    three = both + ("strata graph tiers",) if g else both
    gv = lambda k: {"restic": g[k]["restic"], "strata": g[k]["strata"], "strata graph tiers": g[k]["graph"]} if g else None
    b_tp = gv("mbps") or out["backup_mbps"]
    b_rss = gv("rss") or out["backup_rss"]
    f0 = lambda v: f"{v:.0f}"
    tp_groups = [("backup", b_tp), ("restore", out["restore_mbps"])]
    rss_groups = [("backup", b_rss), ("restore", out["restore_rss"])]
    if "check_mbps" in out:
        tp_groups.append(("check --read-data\n(repository bytes)", out["check_mbps"]))
        rss_groups.append(("check --read-data", out["check_rss"]))
    panels = [
        ("Throughput, MB/s (higher is better)", three, tp_groups, lambda v: v, f0),
        ("Peak RSS, MiB (lower is better)", three, rss_groups, mib, f0),
    ]
    if g:
        panels.append(("Bytes stored, % of the first backup", three,
                       [("same data again*", gv("unchanged_pct")), ("1% of records changed", gv("changed_pct"))],
                       lambda v: v, lambda v: "0" if v < 0.05 else f"{v:.2g}" if v < 10 else f"{v:.0f}"))
    if lo:
        panels.append((f"Graph restore, {fmt_bytes(num(r, 'layers_restore_bytes'))}: seconds", ("8 layers", "one base"),
                       [("wall time", lo["restore_secs"]), ("CPU time", lo["restore_cpu"])], lambda v: v,
                       lambda v: f"{v:.1f}"))
    if "rpo" in po:
        colors.update({"median": "#2a7ab0", "p90": "#9fc5e8"})
        panels.append(("RPO, seconds (issue 8 target: median <= 1.2)", ("median", "p90"),
                       [("durable (push)", {"median": po["rpo"]["median"]["durable"], "p90": po["rpo"]["p90"]["durable"]}),
                        ("visible (status)", {"median": po["rpo"]["median"]["visible"], "p90": po["rpo"]["p90"]["visible"]})],
                       lambda v: v, lambda v: f"{v:.2f}"))
    if "restore" in po:
        colors.update({"base, no log": "#fbe3c4", "base": "#f3c58f", "base + log": "#e0892b"})
        n = num(r, "pitr_lsn_records_replayed") or 0
        panels.append((f"Restore, s: base (plain) vs base + {n / 1e6:g}M records" if n >= 1e5 else
                       f"Restore, s: base (plain) vs base + {int(n):,} records", ("base, no log", "base", "base + log"),
                       [("wall time", po["restore"]["wall"]), ("CPU time", po["restore"]["CPU"])], lambda v: v,
                       lambda v: f"{v:.1f}"))
    if "synth" in po:
        colors.update({"log range": "#9fc5e8", "synthesize": "#2a7ab0", "graph backup": "#e0892b"})
        panels.append(("1% change: MiB stored", ("log range", "synthesize", "graph backup"),
                       [("bytes stored", po["synth"])], lambda v: v / (1 << 20), lambda v: f"{v:.2f}"))
    if "heap_heap_ratio" in r:
        h = lambda k: num(r, "heap_" + k)
        big = blobs_label(r, "short") + " blobs"
        colors[big] = colors["large"]
        panels.append(("strata backup peak heap, MiB", ("empty", big),
                       [("cold cache", {"empty": h("empty_cold_peak_heap_MiB"), big: h("large_cold_peak_heap_MiB")}),
                        ("warm cache", {"empty": h("empty_warm_peak_heap_MiB"), big: h("large_warm_peak_heap_MiB")})],
                       lambda v: v, f0))
    pw, ph, top, left, gap, rowh, cols = 280, 200, 64, 56, 90, 330, 3
    nrows = (len(panels) + cols - 1) // cols
    W = left + cols * pw + (cols - 1) * gap + 30
    H = 40 + nrows * rowh + (30 if g else 0)
    s = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
         'font-family="sans-serif" font-size="12">',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<text x="{W / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">'
         f'strata vs restic, {html.escape(fmt_bytes(num(r, "data_bytes")))} graph export, '
         f'{html.escape(r.get("nproc", "?"))} cores, make bench of {html.escape(r.get("date", "?")[:10])}</text>']
    for i, (title, series, groups, conv, fmt) in enumerate(panels):
        x0 = left + (i % cols) * (pw + gap)
        y0 = top + (i // cols) * rowh
        vals = [conv(gr[t]) for _, gr in groups for t in series if gr.get(t) is not None]
        vmax, step = nice_max(max(vals) * 1.08 if vals else 1)
        s.append(f'<text x="{x0 + pw / 2}" y="{y0 - 16}" text-anchor="middle" font-weight="bold">{html.escape(title)}</text>')
        for k in range(5):
            y = y0 + ph - ph * k / 4
            s.append(f'<line x1="{x0 - 4}" y1="{y:.1f}" x2="{x0 + pw}" y2="{y:.1f}" stroke="{"black" if k == 0 else "#ddd"}"/>')
            s.append(f'<text x="{x0 - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#444">{step * k:g}</text>')
        s.append(f'<line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y0 + ph}" stroke="black"/>')
        gw = pw / len(groups)
        bw = gw * (0.6 / len(series))
        for j, (name, gr) in enumerate(groups):
            gx = x0 + j * gw + gw * 0.2
            for k, t in enumerate(series):
                if gr.get(t) is None:
                    continue
                v = conv(gr[t])
                hgt = ph * v / vmax
                bx = gx + k * bw
                s.append(f'<rect x="{bx:.1f}" y="{y0 + ph - hgt:.1f}" width="{bw:.1f}" height="{hgt:.1f}" fill="{colors[t]}">'
                         f'<title>{html.escape(t)}, {html.escape(name.replace(chr(10), " "))}: {v:.4g}</title></rect>')
                s.append(f'<text x="{bx + bw / 2:.1f}" y="{y0 + ph - hgt - 4:.1f}" text-anchor="middle">{html.escape(fmt(v))}</text>')
            for n, line in enumerate(name.split("\n")):  # a second line, smaller
                size = ' font-size="10"' if n else ""
                s.append(f'<text x="{gx + bw * len(series) / 2:.1f}" y="{y0 + ph + 16 + 13 * n}" text-anchor="middle"{size}>'
                         f'{html.escape(line)}</text>')
        ly = y0 + ph + 44
        widths = [16 + 6.6 * len(t) + 18 for t in series]  # swatch, label, gap
        lx = x0 + pw / 2 - sum(widths) / 2
        for t, w in zip(series, widths):
            s.append(f'<rect x="{lx:.1f}" y="{ly - 10}" width="12" height="12" fill="{colors[t]}"/>')
            s.append(f'<text x="{lx + 16:.1f}" y="{ly}">{html.escape(t)}</text>')
            lx += w
    if g:
        s.append(f'<text x="{left}" y="{H - 14}" fill="#444">* same data again: restic and strata back the same files up '
                 'again; strata graph tiers back up the same graph with every file&#39;s lines shuffled.</text>')
    s.append("</svg>")
    return "\n".join(s) + "\n"
