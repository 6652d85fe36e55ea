"""chart.py — draws bench.json as one PNG: a panel per kind of figure, sesh
beside the alternative, the bar at the median and a whisker up to p95 (for
rates: down to the slow tail).

    /usr/bin/python3 tests/bench/chart.py bench.json bench.png
"""

import json
import sys

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt   # noqa: E402

MB = 1 << 20

# Panels: which figures, in what unit, and whether the axis wants a log scale
# (start-up spans a millisecond to a tenth of a second).
PANELS = [
    ("start-up and round trip (ms, lower is better)", "s",
     lambda n: n.startswith(("start-up", "client start", "round trip")), 1e3, True),
    ("allocation (ms, lower is better)", "s", lambda n: n.startswith("allocation"), 1e3, True),
    ("throughput (executions/s, higher is better)", "exec/s",
     lambda n: n.startswith("throughput"), 1, False),
    ("transfers (MB/s, higher is better)", "MB/s", lambda n: n.startswith(("upload", "download")),
     1, False),
    ("peak RSS during transfers (MB, lower is better)", "bytes",
     lambda n: "peak RSS" in n and "100 MB" in n, 1 / MB, False),
    ("memory per idle session (MB, lower is better)", "bytes",
     lambda n: n.startswith(("memory", "pool with")), 1 / MB, False),
]

SESH, ALT = "#1f6feb", "#9a9a9a"


def short(name):
    return (name.replace("allocation: ", "").replace("throughput: 6 * 7 over ", "")
            .replace("round trip: ", "rt: ").replace("execute 6 * 7, warm session", "6 * 7")
            .replace(": client peak RSS", " client").replace(": pool peak RSS", " pool")
            .replace("memory per idle session ", "").replace(", 10 open", ""))


def draw(ax, title, figs, scale, log):
    labels, x = [], 0
    for f in figs:
        for who, color, dx in (("sesh", SESH, -0.2), ("alt", ALT, 0.2)):
            v = f.get(who)
            if not v:
                continue
            p50 = v["p50"] * scale
            ax.bar(x + dx, p50, 0.38, color=color)
            if v.get("p95") is not None:
                ax.plot([x + dx] * 2, [p50, v["p95"] * scale], color="black", lw=1)
            ax.annotate(f"{p50:,.0f}" if p50 >= 100 else f"{p50:.3g}", (x + dx, p50),
                        ha="center", va="bottom", fontsize=7)
        if f.get("target_value") is not None:
            t = f["target_value"] * scale
            ax.plot([x - 0.45, x + 0.45], [t, t], color="#d1242f", lw=1.2, ls="--")
        label = short(f["name"])
        if f.get("alt_name"):
            label += "\nvs " + f["alt_name"]
        labels.append(label)
        x += 1
    ax.set_title(title, fontsize=10)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, fontsize=6.5, rotation=20, ha="right")
    if log:
        ax.set_yscale("log")
    ax.grid(axis="y", alpha=0.3)


def main(src, dst):
    with open(src) as f:
        report = json.load(f)
    figs = report["figures"]
    fig, axes = plt.subplots(3, 2, figsize=(14, 14))
    for ax, (title, unit, pick, scale, log) in zip(axes.flat, PANELS):
        chosen = [f for f in figs if f.get("unit") == unit and pick(f["name"])
                  and (f.get("sesh") or f.get("alt"))]
        if chosen:
            draw(ax, title, chosen, scale, log)
        else:
            ax.set_title(title + ": not measured", fontsize=10)
            ax.axis("off")
    m = report["machine"]
    fig.suptitle(f"sesh bench, {report['when']}: {m['cpu']}, {m['cores']} cores, "
                 f"load {m['load_at_start'][0]}\nblue: sesh / sesh-pool, grey: alternative; "
                 "bar: median, whisker: p95, red dashes: the target", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(dst, dpi=90)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: chart.py bench.json bench.png")
    main(sys.argv[1], sys.argv[2])
