"""stats.py — the bench's arithmetic and its table.

A figure is a list of samples; what is reported is its median and its 95th
percentile. For durations the 95th percentile is the slow tail. Rates
(executions/s, MB/s) are computed from the durations, so their "p95" is the
rate at the slow tail too: the rate 95 runs in 100 reach.

Ratios always read "times better for sesh": above 1 sesh is faster, leaner or
quicker to start; below 1 the alternative is.
"""

import math


def percentile(samples, q):
    """The q-th percentile (0..100) by linear interpolation between order
    statistics (numpy's default), so small sample counts stay meaningful."""
    if not samples:
        raise ValueError("no samples")
    xs = sorted(samples)
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def summary(samples):
    """Median and p95 of a list of durations (seconds), with the count."""
    return {"p50": percentile(samples, 50), "p95": percentile(samples, 95),
            "n": len(samples), "min": min(samples), "max": max(samples)}


def rate_summary(samples, amount):
    """A rate from durations: `amount` units per sample duration. p50 and p95
    are taken on the durations, so p95 is the rate at the slow tail."""
    s = summary(samples)
    return {"p50": amount / s["p50"], "p95": amount / s["p95"], "n": s["n"]}


def ratio(sesh, alt, higher_is_better):
    """How many times better sesh is than the alternative (medians)."""
    if sesh is None or alt is None or sesh == 0 or alt == 0:
        return None
    return sesh / alt if higher_is_better else alt / sesh


# Units: the figures keep seconds, bytes and per-second rates in the JSON;
# the table shows each in a unit a person reads at a glance.
UNITS = {
    "s": (lambda v: fmt_duration(v)),
    "exec/s": (lambda v: f"{v:,.0f}/s"),
    "MB/s": (lambda v: f"{v:,.0f} MB/s"),
    "bytes": (lambda v: fmt_bytes(v)),
}


def fmt_duration(seconds):
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.{2 if seconds < 0.01 else 1}f} ms"
    return f"{seconds:.2f} s"


def fmt_bytes(n):
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("kB", 1 << 10)):
        if abs(n) >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f} B"


def fmt_pair(fig, side):
    """'p50 / p95' of one side of a row, or the reason it is missing."""
    v = fig.get(side)
    if v is None:
        return "n/a"
    show = UNITS[fig["unit"]]
    if v.get("p95") is None or v["p95"] == v["p50"]:
        return show(v["p50"])
    return f"{show(v['p50'])} / {show(v['p95'])}"


def fmt_ratio(r):
    return "—" if r is None else f"{r:.2f}x"


def table(figures):
    """The table every run prints: one line per figure."""
    head = ("figure", "sesh p50 / p95", "alternative", "alt p50 / p95", "ratio", "target")
    rows = []
    for f in figures:
        target = f.get("target") or ""
        if target and f.get("met") is not None:
            target = f"{target} ({'met' if f['met'] else 'MISSED'})"
        rows.append((f["name"], fmt_pair(f, "sesh"), f.get("alt_name") or "—",
                     fmt_pair(f, "alt"), fmt_ratio(f.get("ratio")), target))
        if f.get("note"):
            rows.append(("", "  " + f["note"], "", "", "", ""))
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    # A note spans the columns after the first: don't let it widen them.
    noted = [r for r in rows if r[0] == "" and r[2:] == ("", "", "", "")]
    widths[1] = max([len(head[1])] + [len(r[1]) for r in rows if r not in noted])
    lines = []
    for i, r in enumerate([head] + rows):
        if r in noted:
            lines.append((" " * (widths[0] + 2) + r[1]).rstrip())
        else:
            lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
