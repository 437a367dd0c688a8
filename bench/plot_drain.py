#!/usr/bin/python3
"""Plots a backlog drain written by `e2e_bench --backlog` (its --backlog-csv).

usage: bench/plot_drain.py DRAIN.csv OUT.png [TITLE]

The CSV has one row a second: seconds since the first recover call, deliveries/s over the last
second, deliveries still waiting and (when present) Outbound's resident memory in MB. The PNG
shows deliveries/s (left axis) and the queue depth (right axis) over time, and the resident
memory in a second panel when the CSV has it. Needs Debian's python3-matplotlib (apt-get install python3-matplotlib;
run with /usr/bin/python3 when another python3 comes first on PATH).
"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")  # no display: write the file only
import matplotlib.pyplot as plt  # noqa: E402


def main(argv):
    if len(argv) < 3:
        sys.stderr.write(__doc__)
        return 2
    seconds, rate, waiting, rss = [], [], [], []
    with open(argv[1], newline="") as f:
        for row in csv.DictReader(f):
            seconds.append(float(row["seconds"]))
            rate.append(float(row["deliveries_per_s"]))
            waiting.append(int(row["waiting"]))
            if row.get("rss_mb"):
                rss.append(float(row["rss_mb"]))
    if not seconds:
        sys.stderr.write(f"{argv[1]}: no rows\n")
        return 1
    with_rss = len(rss) == len(seconds)
    if with_rss:
        fig, (left, low) = plt.subplots(
            2, 1, figsize=(9, 6.5), dpi=110, sharex=True, gridspec_kw={"height_ratios": [2, 1]}
        )
    else:
        fig, left = plt.subplots(figsize=(9, 4.5), dpi=110)
    left.plot(seconds, rate, color="tab:blue", linewidth=1.2, label="deliveries/s")
    if not with_rss:
        left.set_xlabel("seconds since the first recover call")
    left.set_ylabel("deliveries/s (1 s windows)", color="tab:blue")
    left.set_ylim(bottom=0)
    left.grid(True, alpha=0.3)
    right = left.twinx()
    right.plot(seconds, waiting, color="tab:red", linewidth=1.2, label="waiting")
    right.set_ylabel("deliveries waiting (queue depth)", color="tab:red")
    right.set_ylim(bottom=0)
    title = argv[3] if len(argv) > 3 else "Backlog drain"
    left.set_title(title)
    if with_rss:
        low.plot(seconds, rss, color="tab:green", linewidth=1.2)
        low.set_ylabel("Outbound RSS (MB)", color="tab:green")
        low.set_xlabel("seconds since the first recover call")
        # Room above the line (a flat RSS would sit on the frame) and issue 8's bound, 200 MB.
        low.axhline(200, color="tab:gray", linestyle="--", linewidth=1, label="goal: < 200 MB")
        low.set_ylim(0, max(200.0, max(rss)) * 1.15)
        low.legend(loc="lower right", fontsize="small")
        low.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(argv[2])
    print(f"wrote {argv[2]} ({len(seconds)} samples)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
