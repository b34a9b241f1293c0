"""The summary table "Targets (issue 8)" of bench/report.py: one row per
figure, with its target, restic's and strata's values, the ratio, PASS or
FAIL and the command that produced it; and the pipeline-ceiling table
(BenchmarkPipelineStage's rate per stage)."""
import re

from report_common import blobs_label, busy, fmt_bytes, fmt_ratio, num, ratio

BACKUP_TP, BACKUP_REPO, GRAPH_TP, RESTORE_TP, CHECK_TP = 1.4, 1.2, 0.7, 1.5, 1.5
CEILING_FRAC, RPO_MEDIAN, LSN_RATIO, HEAP_RATIO = 0.70, 1.2, 1.5, 1.2
# The sizes the targets are stated for; a smaller run is flagged below the table.
T_DATA, T_RECORDS, T_BLOBS = 1 << 30, 1_000_000, 10_000_000
STAGES = ("read", "chunk", "hash", "compress", "encrypt", "write")


def ceiling(r, out):
    """The pipeline's ceiling: nproc / sum(1 / rate) over the stages, each
    rate in raw MB/s on one core; and strata's first backup against it."""
    rates = {s: num(r, f"ceiling_{s}_mbps") for s in STAGES}
    if any(v is None or v <= 0 for v in rates.values()):
        return None
    cores = num(r, "nproc", 1)
    per_mb = sum(1 / v for v in rates.values())  # one core's seconds per MB, all stages
    c = {"rates": rates, "cores": cores, "per_mb": per_mb, "mbps": cores / per_mb}
    b = out["backup_mbps"]["strata"]
    c["frac"] = b / c["mbps"] if b else None
    return c


def ceiling_rows(r, out):
    """(stage, MB/s on one core, share of one byte's CPU time) per stage,
    then the ceiling and the backup against it."""
    c = ceiling(r, out)
    if not c:
        return []
    def rate(s, v):
        each = r.get(f"ceiling_{s}_mbps__rounds")
        return f"{v:.0f} MB/s" + (f" ({', '.join(f'{float(x):.0f}' for x in each.split())})" if each else "")
    rows = [(s, rate(s, v), f"{100 / v / c['per_mb']:.0f}%") for s, v in c["rates"].items()]
    rows.append(("all six on one core: 1 / sum(1 / rate)", f"{1 / c['per_mb']:.0f} MB/s", "100%"))
    rows.append((f"ceiling on {c['cores']:g} cores (nproc)", f"{c['mbps']:.0f} MB/s", ""))
    rows.append(("strata's first backup (files)", f"{out['backup_mbps']['strata']:.1f} MB/s", f"{100 * c['frac']:.0f}% of the ceiling"))
    return rows


def _verdict(ok):
    return "n/a" if ok is None else "PASS" if ok else "FAIL"


# The commands, for results.txt files from before bench.sh recorded them.
DEFAULT_CMDS = {
    "restic_backup1_cmd": "restic backup --json $W/data/src", "strata_backup1_cmd": "strata backup --json $W/data/src",
    "graph_backup1_cmd": "strata backup --json --tier fast=$W/data/src/fast.jsonl --tier warm=... --tier cold=...",
    "restic_restore_cmd": "restic restore SNAPSHOT --target $W/restore-restic",
    "strata_restore_cmd": "strata restore SNAPSHOT --target $W/restore-strata",
    "restic_backup3_cmd": "restic backup --json $W/data/src", "strata_backup3_cmd": "strata backup --json $W/data/src",
    "pitr_lsn1_cmd": "strata restore --json --lsn END --target $W/restore-lsn",
    "pitr_plain1_cmd": "strata restore --json BASE --target $W/restore-plain",
    "heap_cmd": "go test -run '^$' -bench BenchmarkBackupHeapLargeIndex -benchtime 1x -count 3 ./repo/",
}


def _cmds(r, *keys):
    """The recorded commands, 64-digit snapshot ids cut to their 8-digit form."""
    return [re.sub(r"\b([0-9a-f]{8})[0-9a-f]{56}\b", r"\1", r.get(k) or DEFAULT_CMDS[k])
            for k in keys if r.get(k) or k in DEFAULT_CMDS]


ENV_NOTE = ("Commands: restic runs as `restic --cache-dir $W/restic-cache` with RESTIC_REPOSITORY=$W/restic-repo; "
            "strata with STRATA_REPOSITORY and STRATA_CACHE_DIR set to $W/strata-repo and $W/strata-cache "
            "($W/graph-* for the graph tiers, $W/pitr-* for restore --lsn; $W is the work directory, $SRC = $W/data/src); "
            "repo.test is `go test -c ./repo/`, run in repo/.")


def target_rows(r, out, g, po):
    """Rows (figure, target, restic, strata, ratio, verdict, [commands])."""
    rows = []
    na = "n/a"
    data = num(r, "data_bytes")
    size = fmt_bytes(data)
    b = out["backup_mbps"]
    x = ratio(b["strata"], b["restic"])
    rows.append((f"Backup throughput, {size} export backed up as files, new repository", f">= {BACKUP_TP}x restic",
                 f"{b['restic']:.1f} MB/s", f"{b['strata']:.1f} MB/s", f"{fmt_ratio(x)}x", _verdict(x >= BACKUP_TP),
                 _cmds(r, "restic_backup1_cmd", "strata_backup1_cmd")))
    sz = out["repo_size"]
    x = ratio(sz["strata"], sz["restic"])
    rows.append(("... with strata's repository after it (du -sb)", f"<= {BACKUP_REPO}x restic's",
                 fmt_bytes(sz["restic"]), fmt_bytes(sz["strata"]), f"{fmt_ratio(x)}x",
                 _verdict(x <= BACKUP_REPO if x is not None else None),
                 ["du -sb $W/restic-repo $W/strata-repo (after the backups above)"]))
    if g:
        x = g["tp_ratio"]
        rows.append(("Graph-tier backup of the same export",
                     f">= {GRAPH_TP}x restic's file backup", f"{g['mbps']['restic']:.1f} MB/s (files)",
                     f"{g['mbps']['graph']:.1f} MB/s", f"{fmt_ratio(x)}x", _verdict(x >= GRAPH_TP),
                     _cmds(r, "graph_backup1_cmd")))
    else:
        rows.append(("Graph-tier backup of the same export", f">= {GRAPH_TP}x restic's file backup", na, "not run (BENCH_SKIP_GRAPH)",
                     na, na, []))
    s = out["restore_mbps"]
    x = ratio(s["strata"], s["restic"])
    rows.append(("Restore throughput (the first snapshot, new directory)", f">= {RESTORE_TP}x restic",
                 f"{s['restic']:.1f} MB/s", f"{s['strata']:.1f} MB/s", f"{fmt_ratio(x)}x", _verdict(x >= RESTORE_TP),
                 _cmds(r, "restic_restore_cmd", "strata_restore_cmd")))
    for label, k, phase in (("backup", "backup_rss", "backup1"), ("restore", "restore_rss", "restore")):
        m = out[k]
        x = ratio(m["strata"], m["restic"])
        rows.append((f"Peak RSS, {label} of {size} into a new repository", "<= restic", fmt_bytes(m["restic"]),
                     fmt_bytes(m["strata"]), f"{fmt_ratio(x)}x", _verdict(x <= 1 if x is not None else None),
                     [f"/usr/bin/time -f '%e %M %U %S' {c}" for c in _cmds(r, f"restic_{phase}_cmd", f"strata_{phase}_cmd")]))
    d = out["changed"]
    x = ratio(d["strata"], d["restic"])
    rows.append(("Bytes stored for a 1% change of records (file backup, parent snapshot present)", "<= restic",
                 fmt_bytes(d["restic"]), fmt_bytes(d["strata"]), f"{fmt_ratio(x)}x",
                 _verdict(x <= 1 if x is not None else None), _cmds(r, "restic_backup3_cmd", "strata_backup3_cmd")))
    if g and "graph_added3_bytes" in r:
        # The same change through graph tiers, against restic's file backup
        # of it: the row above stays as it is, this one is what strata is for.
        gb = num(r, "graph_added3_bytes")
        x = ratio(gb, d["restic"])
        rows.append(("Bytes stored for the same 1% change, graph tiers (a delta layer of the changed records)", "<= restic",
                     fmt_bytes(d["restic"]) + " (files)", fmt_bytes(gb), f"{fmt_ratio(x)}x",
                     _verdict(x <= 1 if x is not None else None), _cmds(r, "graph_backup3_cmd")))
    rows.extend(_ldbc_rows(r))
    if "check_mbps" in out:
        c, cd = out["check_mbps"], out["check_data_mbps"]
        x = ratio(c["strata"], c["restic"])
        rows.append(("`check --read-data` throughput (repository bytes / wall time; data bytes / wall time)",
                     f">= {CHECK_TP}x restic", f"{c['restic']:.1f} MB/s ({cd['restic']:.1f})",
                     f"{c['strata']:.1f} MB/s ({cd['strata']:.1f})",
                     f"{fmt_ratio(x)}x ({fmt_ratio(ratio(cd['strata'], cd['restic']))}x)", _verdict(x >= CHECK_TP),
                     _cmds(r, "restic_check_cmd", "strata_check_cmd")))
    else:
        rows.append(("`check --read-data` throughput", f">= {CHECK_TP}x restic", na, "not measured", na, na, []))
    c = ceiling(r, out)
    if c:
        rows.append(("Backup throughput vs the pipeline ceiling (nproc / sum of 1/rate per stage)",
                     f">= {100 * CEILING_FRAC:.0f}%", na, f"{b['strata']:.1f} of {c['mbps']:.0f} MB/s",
                     f"{100 * c['frac']:.0f}%", _verdict(c["frac"] >= CEILING_FRAC),
                     _cmds(r, "ceiling_cmd", "strata_backup1_cmd")))
    else:
        rows.append(("Backup throughput vs the pipeline ceiling", f">= {100 * CEILING_FRAC:.0f}%", na,
                     "benchmark failed" if r.get("ceiling_failed") else "not run (BENCH_SKIP_CEILING)", na, na, []))
    if "rpo" in po:
        m = po["rpo"]["median"]["durable"]
        rows.append((f"RPO (oplog push --follow, default interval): append to durable, {r.get('rpo_samples', '?')} appends",
                     f"median <= {RPO_MEDIAN} s", "n/a (no mutation log)",
                     f"median {m:.2f} s, p90 {po['rpo']['p90']['durable']:.2f} s", "-", _verdict(m <= RPO_MEDIAN),
                     ["strata oplog push --follow FILE --json (bench/rpo.py)"]))
    else:
        rows.append(("RPO (oplog push, default interval)", f"median <= {RPO_MEDIAN} s", na, "not run (BENCH_SKIP_PITR)", na, na, []))
    pl, pi = num(r, "pitr_plain_secs"), num(r, "pitr_lsn_secs")
    if pl and pi:
        n = int(num(r, "pitr_lsn_records_replayed") or num(r, "pitr_log_records") or 0)
        x = ratio(pi, pl)
        rows.append((f"`restore --lsn` with {n:,} log records to replay vs a plain restore of the snapshot "
                     f"(medians of {r.get('pitr_reps', '?')})", f"<= {LSN_RATIO}x plain",
                     "n/a (no mutation log)", f"{pi:.2f} s against {pl:.2f} s", f"{fmt_ratio(x)}x",
                     _verdict(x <= LSN_RATIO), _cmds(r, "pitr_lsn1_cmd", "pitr_plain1_cmd")))
    else:
        rows.append(("`restore --lsn` with 1 million log records to replay", f"<= {LSN_RATIO}x plain", na,
                     "not run (BENCH_SKIP_PITR)", na, na, []))
    if "heap_heap_ratio" in r:
        big = blobs_label(r, "long")
        for cache, k, e, lg in (("cold", "heap_ratio", "empty_cold", "large_cold"), ("warm", "heap_ratio_warm", "empty_warm", "large_warm")):
            x = num(r, "heap_" + k)
            rows.append((f"Peak heap, 64 MiB backup into a repository of {big} indexed blobs vs an empty one "
                         f"({cache} cache)", f"<= {HEAP_RATIO}x", "n/a",
                         f"{num(r, 'heap_' + lg + '_peak_heap_MiB'):.1f} against {num(r, 'heap_' + e + '_peak_heap_MiB'):.1f} MiB",
                         f"{fmt_ratio(x)}x", _verdict(x <= HEAP_RATIO), _cmds(r, "heap_cmd")))
    else:
        rows.append(("Peak heap of a backup into a repository of 10 million indexed blobs", f"<= {HEAP_RATIO}x empty", na,
                     "benchmark failed" if r.get("heap_failed") else "not run (BENCH_SKIP_HEAP)", na, na, []))
    return rows


def _ldbc_rows(r):
    """The 1% change again on a real graph (bench/ldbc.sh): the LDBC SNB test
    set, changed by the first records of its update streams (1% of its
    records)."""
    label = "Bytes stored for a 1% change of records of a real graph (LDBC SNB test set"
    if r.get("ldbc_skipped"):
        return [(label + ")", "<= restic", "n/a", f"not run ({r['ldbc_skipped']})", "n/a", "n/a", [])]
    rb = num(r, "ldbc_restic_added_bytes")
    if rb is None:
        return []
    what = (f"{fmt_bytes(num(r, 'ldbc_data_bytes'))}; {int(num(r, 'ldbc_changed_records') or 0):,} of its "
            f"{int(num(r, 'ldbc_records') or 0):,} records, inserted by the start of its update streams")
    rows = []
    for how, key, suffix in (("file backup", "ldbc_strata_added_bytes", ""),
                             ("graph tiers", "ldbc_graph_added_bytes", " (files)")):
        sb = num(r, key)
        x = ratio(sb, rb)
        rows.append((f"{label}, {what}), {how}", "<= restic", fmt_bytes(rb) + suffix, fmt_bytes(sb),
                     f"{fmt_ratio(x)}x", _verdict(x <= 1 if x is not None else None),
                     [r.get("ldbc_cmd", "bench/ldbc.sh")]))
    return rows


def _notes(r):
    """What in this run differs from the setting the targets are stated for."""
    notes = []
    data = num(r, "data_bytes", 0)
    if data < 0.95 * T_DATA:
        notes.append(f"the export is {fmt_bytes(data)}, not 1 GiB")
    n = num(r, "pitr_lsn_records_replayed")
    if n is not None and n < T_RECORDS:
        notes.append(f"the log has {int(n):,} records, not 1,000,000")
    n = num(r, "heap_index_blobs")
    if n is not None and n < T_BLOBS:
        notes.append(f"the large repository holds {int(n):,} blobs, not 10,000,000")
    if busy(r):
        notes.append("the machine was busy (load average), so wall times are unreliable")
    return notes


def targets_text(r, out, g, po):
    trows = target_rows(r, out, g, po)
    head = ("figure", "target", "restic", "strata", "ratio", "verdict", "command")
    tab = [head] + [(f, t, a, b, x, v, "; ".join(c)) for f, t, a, b, x, v, c in trows]
    w = [max(len(row[i]) for row in tab) for i in range(6)]
    L = ["", "Targets (issue 8):"]
    for row in tab:
        L.append(" | ".join(f"{row[i]:<{w[i]}}" if i != 2 and i != 3 else f"{row[i]:>{w[i]}}" for i in range(6)) + " | " + row[6])
        if row is head:
            L.append("-+-".join("-" * x for x in w) + "-+-" + "-" * 7)
    n_ok = sum(1 for row in trows if row[5] == "PASS")
    n_run = sum(1 for row in trows if row[5] != "n/a")
    L.append(f"{n_ok} of {n_run} measured rows pass" + (f"; {len(trows) - n_run} not measured" if n_run < len(trows) else ""))
    notes = _notes(r)
    if notes:
        L.append("Not the targets' setting: " + "; ".join(notes) + ".")
    L.append(ENV_NOTE.replace("`", ""))
    crows = ceiling_rows(r, out)
    if crows:
        L.append("")
        L.append(f"Pipeline stages (BenchmarkPipelineStage, one core, on {r.get('ceiling_file', '?')}: "
                 f"{fmt_bytes(num(r, 'ceiling_input_bytes'))} in {r.get('ceiling_chunks', '?')} chunks, "
                 f"{fmt_bytes(num(r, 'ceiling_sealed_bytes'))} sealed):")
        w0 = max(len(c[0]) for c in crows)
        for s, v, share in crows:
            L.append(f"  {s:<{w0}} {v:>10}  {share}")
    return "\n".join(L)


def targets_md(r, out, g, po):
    """The markdown lines of the two tables."""
    trows = target_rows(r, out, g, po)
    L = ["### Targets (issue 8)", "",
         "Every figure of the issue's target table, measured in this run (ratios are strata/restic unless stated; "
         "[details](#method) below):", "",
         "| figure | target | restic | strata | ratio | verdict | command |",
         "| --- | --- | ---: | ---: | ---: | --- | --- |"]
    for f, t, a, b, x, v, c in trows:
        L.append(f"| {f} | {t} | {a} | {b} | {x} | {'**' + v + '**' if v != 'n/a' else v} | "
                 + "<br>".join(f"`{k}`" for k in c) + " |")
    L.append("")
    notes = _notes(r)
    if notes:
        L.append("*Not the targets' setting: " + "; ".join(notes) + ".*")
        L.append("")
    L.append(ENV_NOTE)
    L.append("")
    crows = ceiling_rows(r, out)
    if crows:
        each = "in each of the run's rounds (the median rate) " if num(r, "rounds", 1) > 1 else ""
        L.append(f"Pipeline ceiling: `BenchmarkPipelineStage` (repo/bench_ceiling_test.go), each stage alone on one core {each}"
                 f"over {r.get('ceiling_file', '?')} ({fmt_bytes(num(r, 'ceiling_input_bytes'))}, "
                 f"{r.get('ceiling_chunks', '?')} chunks, {fmt_bytes(num(r, 'ceiling_sealed_bytes'))} compressed and "
                 "sealed), in raw bytes per second:")
        L.append("")
        L.append("| stage | rate | share |")
        L.append("| --- | ---: | ---: |")
        for s, v, share in crows:
            L.append(f"| {s} | {v} | {share} |")
        L.append("")
    return L
