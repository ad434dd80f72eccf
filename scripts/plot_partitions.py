"""Plots the partition-scaling CSV that `cargo bench --features cli --bench vs_librdkafka`
writes (target/partition_scaling.csv): whole-process CPU and wall time against the topic's
partition count, kprod beside librdkafka.
    python scripts/plot_partitions.py target/partition_scaling.csv docs/partition_scaling.png 5
"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

src, dst = sys.argv[1], sys.argv[2]
rounds = sys.argv[3] if len(sys.argv) > 3 else "?"
rows = list(csv.DictReader(open(src)))
fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
for ax, field, label in [
    (axes[0], "cpu_s", "whole-process CPU, s"),
    (axes[1], "wall_s", "wall time, s"),
]:
    for client, style in [("kprod", "o-"), ("librdkafka", "s--")]:
        pts = [r for r in rows if r["client"] == client]
        x = [int(r["partitions"]) for r in pts]
        ax.plot(x, [float(r[field]) for r in pts], style, label=client)
    ax.set_xscale("log")
    ax.set_xticks(x)
    ax.set_xticklabels([str(v) for v in x])
    ax.set_xlabel("partitions in the topic")
    ax.set_ylabel(label)
    ax.set_ylim(bottom=0)
    ax.legend()
fig.suptitle(
    "200,000 keyed 100 B records, fire-and-forget, acks=1, linger 5 ms\n"
    "librdkafka's MockCluster (3 brokers, own process); each run its own process; "
    f"medians of {rounds}; 2-core machine"
)
fig.tight_layout()
fig.savefig(dst, dpi=110)
