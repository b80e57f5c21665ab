#!/usr/bin/env python3
"""Draws the benchmark charts into docs/ from the CSV files benches/cloudlike.sh writes:
docs/bench-throughput-vs-streams.png (hypersdk's MiB/s against parts in flight, with the
per-connection limit × streams and the other tools' single-file results for reference) and
docs/bench-rss-over-time.png (resident memory of one process exporting 16 files at once) and
docs/bench-throughput-over-time.png (one download on the slow link, the part-count steps).

usage: benches/plot.py [CSV_DIR]   (run by benches/cloudlike.sh in a venv with matplotlib)
"""
import csv
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
data = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "docs", "bench-data")
rate_mib = float(os.environ.get("RATE_KB", "50000")) * 1000 / 1048576

rows = list(csv.DictReader(open(os.path.join(data, "cloudlike.csv"))))
streams = [(int(r["streams"]), float(r["mib_per_s"])) for r in rows if r["kind"] == "streams"]
streams.sort()
others = [(r["tool"], int(r["streams"]), float(r["mib_per_s"])) for r in rows
          if r["kind"] == "single" and not r["tool"].startswith("hypersdk")]

fig, ax = plt.subplots(figsize=(7, 4.2))
xs = [s for s, _ in streams]
ax.plot(xs, [v for _, v in streams], "o-", label="hypersdk (2 GiB, parts in flight)")
ax.plot(xs, [s * rate_mib for s in xs], "--", color="grey", label="streams × per-connection limit")
for tool, n, v in others:
    ax.plot([n], [v], "s", label=f"{tool} ({n} stream{'s' if n > 1 else ''})")
ax.set_xscale("log", base=2)
ax.set_xticks(xs)
ax.set_xticklabels([str(x) for x in xs])
ax.set_xlabel("connections")
ax.set_ylabel("MiB/s")
top = max([v for _, v in streams] + [v for _, _, v in others]) * 1.3
ax.set_ylim(0, top)
ax.set_title("Download over a cloud-like link (per-connection limit, 20 ms)")
ax.legend(fontsize=8)
ax.grid(alpha=0.3)
fig.tight_layout()
fig.savefig(os.path.join(root, "docs", "bench-throughput-vs-streams.png"), dpi=110)

rss_path = os.path.join(data, "rss.csv")
if os.path.exists(rss_path):
    rss = [(float(r["seconds"]), float(r["rss_mib"])) for r in csv.DictReader(open(rss_path))]
    fig, ax = plt.subplots(figsize=(7, 3.4))
    ax.plot([t for t, _ in rss], [m for _, m in rss])
    ax.set_xlabel("seconds")
    ax.set_ylabel("RSS MiB")
    ax.set_ylim(0, max(m for _, m in rss) * 1.3)
    ax.set_title("hypersdk: 16 × 256 MiB at once over the cloud-like link, resident memory")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(root, "docs", "bench-rss-over-time.png"), dpi=110)
print("charts written to docs/")

trace_path = os.path.join(data, "trace.csv")
if os.path.exists(trace_path):
    # Throughput against time of one download, from the progress callback's bytes_done: MiB/s
    # over sliding 0.25 s windows. The part-count controller's steps show as steps.
    pts = [(float(r["seconds"]), int(r["bytes_done"])) for r in csv.DictReader(open(trace_path))]
    xs, ys = [], []
    j = 0
    for i, (t, b) in enumerate(pts):
        while pts[j][0] < t - 0.25:
            j += 1
        if t - pts[j][0] > 0.1:
            xs.append(t)
            ys.append((b - pts[j][1]) / (t - pts[j][0]) / 1048576)
    slow_mib = float(os.environ.get("SLOW_RATE_KB", "10000")) * 1000 / 1048576
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.plot(xs, ys, label="hypersdk, defaults")
    for n in (16, 32, 64):
        ax.axhline(n * slow_mib, ls="--", color="grey", lw=0.8)
        ax.text(0, n * slow_mib, f" {n} × limit", va="bottom", fontsize=8, color="grey")
    ax.set_xlabel("seconds")
    ax.set_ylabel("MiB/s (0.25 s windows)")
    ax.set_ylim(0, max(ys + [64 * slow_mib]) * 1.15)
    lat = os.environ.get("SLOW_LATENCY_MS", "40")
    ax.set_title(f"One 1 GiB download, {slow_mib:.1f} MiB/s per connection, {lat} ms")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(root, "docs", "bench-throughput-over-time.png"), dpi=110)
