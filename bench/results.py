#!/usr/bin/env python3
"""Small parsers for bench/bench.sh; each prints KEY=VALUE lines (or one value).

    results.py snapshot-id OUT          snapshot id from a tool's --json backup output
    results.py reported OUT TOOL PHASE  bytes the tool says it added, files unmodified
    results.py heap GO_TEST_OUT         the metrics of BenchmarkBackupHeapLargeIndex (medians, with -count N)
    results.py ceiling GO_TEST_OUT      BenchmarkPipelineStage's MB/s per stage, and its logged sizes
    results.py merge W N                medians of W/round1..N.txt (KEY__rounds keeps each round)
    results.py size 1GiB                bytes
    results.py shuffle SRC DST SEED     every file of SRC with its lines shuffled (fixed seed) into DST
    results.py smallfiles FILE DST N    N files of 20-30 consecutive lines of FILE in 100 directories of DST
    results.py layers < SNAPSHOT_JSON   each tier's layer count: "cold:N fast:N warm:N"
    results.py layer-bytes < SNAPSHOT   the bytes of all the tiers' layers
    results.py median TOOL PHASE RES    median of TOOL_PHASE{1,2,...}_{secs,rss_kib,cpu_secs} in RES
    results.py fields OUT PREFIX KEY... PREFIX_KEY=value of the last JSON object in OUT (a tool's --json output)
    results.py count OUT TYPE           the number of JSON lines in OUT whose message_type is TYPE
"""
import json
import os
import random
import re
import statistics
import sys


def summary(path):
    lines = []
    for line in open(path):
        line = line.strip()
        if line.startswith("{"):
            lines.append(json.loads(line))
    return [l for l in lines if l.get("message_type") == "summary"][-1]


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "snapshot-id":
        print(summary(argv[2])["snapshot_id"])
    elif cmd == "reported":
        s, tool, phase = summary(argv[2]), argv[3], argv[4]
        key = "data_added" if tool == "restic" else "bytes_stored"
        print(f"{tool}_{phase}_reported_added={s[key]}")
        print(f"{tool}_{phase}_files_unmodified={s['files_unmodified']}")
    elif cmd == "heap":
        runs = {}  # metric -> values, one per run (go test -count N)
        for line in open(argv[2]):
            if line.startswith("BenchmarkBackupHeapLargeIndex"):
                f = line.split()
                for v, unit in zip(f[2::2], f[3::2]):
                    runs.setdefault(f"heap_{re.sub(r'[^A-Za-z0-9]+', '_', unit).strip('_')}", []).append(v)
        for k, vals in runs.items():
            if len(vals) == 1:
                print(f"{k}={vals[0]}")
            else:
                print(f"{k}={statistics.median(float(v) for v in vals):.4g}")
                print(f"{k}__reps={' '.join(vals)}")
    elif cmd == "ceiling":
        stages = {}
        for line in open(argv[2]):
            m = re.match(r"BenchmarkPipelineStage/(\w+)(?:-\d+)?\s+\d+\s+(\d+) ns/op\s+([0-9.]+) MB/s", line)
            if m:
                stages[m.group(1)] = (m.group(3), int(m.group(2)) / 1e9)
            m = re.search(r": (\d+) bytes, (\d+) chunks", line)
            if m:
                print(f"ceiling_input_bytes={m.group(1)}")
                print(f"ceiling_chunks={m.group(2)}")
            m = re.search(r"compressed and sealed: (\d+) bytes in (\d+) packs", line)
            if m:
                print(f"ceiling_sealed_bytes={m.group(1)}")
        if not stages:
            sys.exit(f"{argv[2]}: no BenchmarkPipelineStage results")
        for k, (mbps, secs) in stages.items():
            print(f"ceiling_{k}_mbps={mbps}")
            print(f"ceiling_{k}_secs={secs:.4f}")
    elif cmd == "merge":
        w, n = argv[2], int(argv[3])
        rounds = []
        for i in range(1, n + 1):
            d = {}
            for line in open(f"{w}/round{i}.txt"):
                k, _, v = line.rstrip("\n").partition("=")
                d[k] = v
            rounds.append(d)
        for k in rounds[0]:
            vals = [d.get(k, "") for d in rounds]
            if n == 1:
                print(f"{k}={vals[0]}")
                continue
            try:
                nums = [float(v) for v in vals]
            except ValueError:
                print(f"{k}={vals[0]}")
                continue
            print(f"{k}={statistics.median(nums):g}")
            print(f"{k}__rounds={' '.join(vals)}")
    elif cmd == "shuffle":
        src, dst, seed = argv[2], argv[3], int(argv[4])
        os.makedirs(dst, exist_ok=True)
        for name in sorted(os.listdir(src)):
            with open(os.path.join(src, name), "rb") as f:
                lines = f.readlines()
            if lines and not lines[-1].endswith(b"\n"):
                lines[-1] += b"\n"
            random.Random(f"{seed}/{name}").shuffle(lines)
            with open(os.path.join(dst, name), "wb") as f:
                f.writelines(lines)
            del lines
    elif cmd == "smallfiles":
        # Many small files, the shape of a configuration tree or a mail
        # spool: the export's own lines (so compression behaves as on the
        # export), 20-30 of them a file (random.Random(1)), d00..d99/fNNNNN.jsonl.
        src, dst, n = argv[2], argv[3], int(argv[4])
        rng = random.Random(1)
        with open(src, "rb") as f:
            for i in range(n):
                lines = [f.readline() for _ in range(rng.randint(20, 30))]
                if not lines[-1]:
                    sys.exit(f"smallfiles: {src} has too few lines for {n} files")
                d = os.path.join(dst, f"d{i % 100:02d}")
                os.makedirs(d, exist_ok=True)
                with open(os.path.join(d, f"f{i:05d}.jsonl"), "wb") as out:
                    out.writelines(lines)
    elif cmd == "layers":
        doc = json.load(sys.stdin)
        print(" ".join(f"{t['name']}:{len(t.get('layers') or [])}"
                       for t in sorted(doc.get("tiers") or [], key=lambda t: t["name"])))
    elif cmd == "layer-bytes":
        doc = json.load(sys.stdin)
        print(sum(l["bytes"] for t in doc.get("tiers") or [] for l in t.get("layers") or []))
    elif cmd == "median":
        tool, phase, res = argv[2], argv[3], argv[4]
        r = {}
        for line in open(res):
            k, _, v = line.rstrip("\n").partition("=")
            r[k] = v
        for m in ("secs", "rss_kib", "cpu_secs"):
            vals = [r[k] for k in (f"{tool}_{phase}{i}_{m}" for i in range(1, 100)) if k in r]
            if vals:
                print(f"{tool}_{phase}_{m}={statistics.median(float(v) for v in vals):g}")
                print(f"{tool}_{phase}_{m}__reps={' '.join(vals)}")
    elif cmd == "fields":
        docs = [json.loads(l) for l in open(argv[2]) if l.strip().startswith("{")]
        if not docs:
            sys.exit(f"{argv[2]}: no JSON output")
        for k in argv[4:]:
            v = docs[-1].get(k)
            print(f"{argv[3]}_{k}={'' if v is None else json.dumps(v) if isinstance(v, (dict, list, bool)) else v}")
    elif cmd == "count":
        print(sum(1 for l in open(argv[2]) if l.strip().startswith("{") and json.loads(l).get("message_type") == argv[3]))
    elif cmd == "size":
        m = re.fullmatch(r"([0-9.]+)(GiB|MiB|KiB|B)?", argv[2])
        if not m:
            sys.exit(f"bad size {argv[2]!r}: want e.g. 1GiB, 200MiB")
        mult = {"GiB": 1 << 30, "MiB": 1 << 20, "KiB": 1 << 10, "B": 1, None: 1}[m.group(2)]
        print(int(float(m.group(1)) * mult))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
