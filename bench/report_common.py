"""Helpers shared by bench/report.py, bench/report_svg.py and
bench/report_targets.py: reading results.txt and formatting figures."""
import math


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


def pct(a, b):
    return None if a is None or not b else 100 * a / b


def fmt_pct(x):
    if x is None:
        return "n/a"
    return f"{x:.2g}%" if x < 1 else f"{x:.1f}%"


def spread(r, key, conv, fmt):
    v = r.get(key + "__rounds")
    if not v:
        return ""
    xs = sorted(conv(float(x)) for x in v.split())
    return f" [{fmt.format(xs[0])}-{fmt.format(xs[-1])}]"


def blobs_label(r, style):
    """The large repository's blob count: "2M" (short) or "2,000,000"."""
    n = int(num(r, "heap_index_blobs", 2_000_000))
    if style == "short":
        return f"{n / 1e6:g}M" if n >= 1_000_000 else f"{n / 1e3:g}k" if n >= 1000 else str(n)
    return f"{n:,}"


def busy(r):
    """Whether other work shared the cores: the 1-minute load average when
    the run began exceeded half the cores. (The load at the end is the
    bench's own: its phases keep both cores busy, so it cannot tell.)"""
    try:
        n = float(r["nproc"])
        return float(r["loadavg_start"].split()[0]) > n / 2
    except (KeyError, ValueError, IndexError):
        return False


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
