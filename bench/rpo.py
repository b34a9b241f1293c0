#!/usr/bin/env python3
"""The RPO measurement of bench/bench.sh: how long a mutation waits before it is durable.

    rpo.py STRATA SOURCE_LOG FOLLOWED_FILE SAMPLES SEED LOGDIR

Runs `STRATA oplog push --follow FOLLOWED_FILE --json` (default --flush-interval 1s)
against $STRATA_REPOSITORY, and `STRATA oplog status --json` in a loop, back to back, as
fast as it goes. A writer appends the first SAMPLES lines of SOURCE_LOG to FOLLOWED_FILE,
one at a time, each after a pause drawn from random.Random(SEED).uniform(0.3, 2.0) s,
with its "ts" set to the moment of the append. For each line:

  durable: from its append until push prints the `sealed` line whose last_lsn covers it
           (the time the line is read from push's stdout; the acknowledgement);
  visible: from its append until a run of `oplog status --json` that reports
           last_lsn >= its lsn has ended (what a user polling the repository sees; it
           includes the status command's own run time).

Prints KEY=VALUE lines (rpo_*) for results.txt; the raw events go to LOGDIR.
"""
import json
import math
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import threading
import time

TS = re.compile(r'"ts":"[^"]*"')


def now_ts():
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%06dZ" % int((t % 1) * 1e6)


def p90(xs):
    s = sorted(xs)
    return s[max(0, math.ceil(0.9 * len(s)) - 1)]


def main(argv):
    if len(argv) != 7:
        sys.exit(__doc__)
    strata, source, followed, samples, seed, logdir = argv[1], argv[2], argv[3], int(argv[4]), argv[5], argv[6]
    os.makedirs(logdir, exist_ok=True)
    with open(source) as f:
        lines = [l.rstrip("\n") for l in f if l.strip()][:samples]
    if len(lines) < samples:
        sys.exit(f"rpo: {source} has only {len(lines)} lines, want {samples}")
    open(followed, "w").close()

    sealed = []  # (monotonic time read, last_lsn)
    push_out = open(os.path.join(logdir, "push.out"), "w")
    push_err = open(os.path.join(logdir, "push.err"), "w")
    push = subprocess.Popen([strata, "oplog", "push", "--follow", followed, "--json"],
                            stdout=subprocess.PIPE, stderr=push_err, text=True, bufsize=1)

    def read_push():
        for line in push.stdout:
            t = time.monotonic()
            push_out.write(f"{t:.6f} {line}")
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if doc.get("message_type") == "sealed":
                sealed.append((t, int(doc["last_lsn"])))

    reader = threading.Thread(target=read_push, daemon=True)
    reader.start()

    polls = []  # (start, end, last_lsn or 0, ok)
    stop = threading.Event()

    def poll():
        while not stop.is_set():
            t0 = time.monotonic()
            p = subprocess.run([strata, "oplog", "status", "--json"], capture_output=True, text=True)
            t1 = time.monotonic()
            lsn, ok = 0, p.returncode == 0
            if ok:
                try:
                    lsn = json.loads(p.stdout).get("last_lsn") or 0
                except ValueError:
                    ok = False
            polls.append((t0, t1, lsn, ok))

    poller = threading.Thread(target=poll, daemon=True)
    # push opens the repository (key derivation) before it tails the file:
    # give it time, so that the first sample does not measure its start-up.
    time.sleep(3)
    poller.start()
    time.sleep(1)

    rng = random.Random(int(seed))
    appended = []  # (lsn, monotonic time of the append)
    for line in lines:
        time.sleep(rng.uniform(0.3, 2.0))
        lsn = json.loads(line)["lsn"]
        text = TS.sub('"ts":"' + now_ts() + '"', line, count=1) + "\n"
        with open(followed, "a") as f:
            f.write(text)
            f.flush()
            t = time.monotonic()
        appended.append((lsn, t))

    last = appended[-1][0]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if sealed and sealed[-1][1] >= last and any(p[2] >= last for p in polls):
            break
        time.sleep(0.05)
    stop.set()
    poller.join(timeout=30)
    push.send_signal(signal.SIGTERM)
    try:
        push.wait(timeout=30)
    except subprocess.TimeoutExpired:
        push.kill()
        push.wait()
    reader.join(timeout=5)
    push_out.close()
    push_err.close()

    durable, visible = [], []
    with open(os.path.join(logdir, "samples.txt"), "w") as f:
        f.write("lsn durable_secs visible_secs\n")
        for lsn, t in appended:
            d = next((ts - t for ts, l in sealed if l >= lsn and ts >= t), None)
            v = next((t1 - t for t0, t1, l, ok in polls if ok and l >= lsn and t1 >= t), None)
            if d is None or v is None:
                sys.exit(f"rpo: lsn {lsn} never became durable/visible (logs in {logdir})")
            durable.append(d)
            visible.append(v)
            f.write(f"{lsn} {d:.3f} {v:.3f}\n")
    with open(os.path.join(logdir, "polls.txt"), "w") as f:
        for t0, t1, l, ok in polls:
            f.write(f"{t0:.6f} {t1:.6f} {l} {ok}\n")
    runs = [t1 - t0 for t0, t1, _, ok in polls if ok]
    gaps = [b - a for (_, a), (_, b) in zip(appended, appended[1:])]
    out = {
        "rpo_samples": len(appended),
        "rpo_durable_median_secs": f"{statistics.median(durable):.3f}",
        "rpo_durable_p90_secs": f"{p90(durable):.3f}",
        "rpo_durable_min_secs": f"{min(durable):.3f}",
        "rpo_durable_max_secs": f"{max(durable):.3f}",
        "rpo_visible_median_secs": f"{statistics.median(visible):.3f}",
        "rpo_visible_p90_secs": f"{p90(visible):.3f}",
        "rpo_visible_min_secs": f"{min(visible):.3f}",
        "rpo_visible_max_secs": f"{max(visible):.3f}",
        "rpo_status_runs": len(runs),
        "rpo_status_failed": sum(1 for p in polls if not p[3]),
        "rpo_status_median_secs": f"{statistics.median(runs):.3f}" if runs else "",
        "rpo_status_p90_secs": f"{p90(runs):.3f}" if runs else "",
        "rpo_segments": len(sealed),
        "rpo_gap_median_secs": f"{statistics.median(gaps):.3f}" if gaps else "",
        "rpo_push_exit": push.returncode,
        "rpo_durable_secs__each": " ".join(f"{x:.2f}" for x in durable),
        "rpo_visible_secs__each": " ".join(f"{x:.2f}" for x in visible),
    }
    for k, v in out.items():
        print(f"{k}={v}")


if __name__ == "__main__":
    main(sys.argv)
