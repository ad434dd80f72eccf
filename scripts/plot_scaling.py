"""Plots docs/scaling.csv (from scripts/scaling.sh): records/s and client CPU per record
against each dimension, one panel per dimension."""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

src, dst = sys.argv[1], sys.argv[2]
repeats = sys.argv[3] if len(sys.argv) > 3 else "?"
rows = list(csv.DictReader(open(src)))
dims = ["io_threads", "partitions", "calling_threads"]
titles = {
    "io_threads": "I/O threads (6 partitions, 1 caller)",
    "partitions": "partitions (2 I/O threads, 1 caller)",
    "calling_threads": "calling threads (2 I/O threads, 6 partitions)",
}
fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
for ax, dim in zip(axes, dims):
    pts = [r for r in rows if r["dimension"] == dim]
    x = [int(r["value"]) for r in pts]
    rate = [float(r["records_per_sec"]) / 1e6 for r in pts]
    cpu = [float(r["cpu_us_per_record"]) for r in pts]
    ax.plot(x, rate, "o-", color="tab:blue", label="records/s (M)")
    ax.set_xlabel(titles[dim])
    ax.set_ylabel("million records/s", color="tab:blue")
    ax.set_xticks(x)
    ax.set_ylim(bottom=0)
    ax2 = ax.twinx()
    ax2.plot(x, cpu, "s--", color="tab:red", label="client CPU µs/record")
    ax2.set_ylabel("client CPU µs per record", color="tab:red")
    ax2.set_ylim(bottom=0)
fig.suptitle(
    "kprod perf (send() with a delivery callback per record), 100 B, acks=all idempotent, "
    "linger 5 ms; "
    f"broker: kprod mock --sink (own process); 2-core machine; medians of {repeats}"
)
fig.tight_layout()
fig.savefig(dst, dpi=110)
