#!/bin/bash
# What OpenTelemetry costs across the side-by-side bench's send matrix, each cell's "off" and
# "on" run back to back (the order alternating), so that a pair shares the machine's state.
# "On" is `head_sampling(0.01).propagate_dropped_roots(false)` unless KPROD_BENCH_OTEL_ROOTS
# is set (see benches/support/otel.rs). Client CPU per record, kprod's own sink broker in its
# own process. Prints a Markdown row per cell and the median over the cells of each cell's
# median pair ratio (BENCHMARKS.md, "Issue #19's cost, third session").
#
#   scripts/otel-cost.sh [PAIRS]        (default 5; about 15 minutes at 5)
set -euo pipefail
pairs=${1:-5}
cd "$(dirname "$0")/.."
bin=$(cargo bench --features cli,opentelemetry --bench vs_librdkafka --no-run --message-format=json 2>/dev/null |
    python3 -c 'import sys,json
for l in sys.stdin:
    m=json.loads(l)
    if m.get("reason")=="compiler-artifact" and m.get("target",{}).get("name")=="vs_librdkafka" and m.get("executable"): print(m["executable"])')
out=$(mktemp)
trap 'rm -f "$out"' EXIT
export BENCH_BROKER=sink BENCH_CLIENT=kprod BENCH_LATENCY=false BENCH_ROUNDS=1 BENCH_RECORDS=4000000
run() { # mode cell pair
    if [ "$1" = on ]; then
        KPROD_BENCH_OTEL=0.01 KPROD_BENCH_OTEL_HEAD=1 KPROD_BENCH_OTEL_ROOTS=${KPROD_BENCH_OTEL_ROOTS:-0} \
            BENCH_ONLY="$2" "$bin" --bench 2>&1
    else
        env -u KPROD_BENCH_OTEL BENCH_ONLY="$2" "$bin" --bench 2>&1
    fi | grep '^send()' | sed "s/^/$3 $1 /" >> "$out"
}
for size in "100 B" "1024 B"; do for codec in none lz4 zstd; do
    for acks in "acks=1" "acks=all+idempotence"; do for threads in "1 thread" "2 threads"; do
        cell="$size $codec $acks $threads"
        for i in $(seq "$pairs"); do
            if [ $((i % 2)) = 1 ]; then run off "$cell" "$i"; run on "$cell" "$i"
            else run on "$cell" "$i"; run off "$cell" "$i"; fi
        done
    done; done
done; done
python3 - "$out" <<'PY'
import re, statistics as st, sys
from collections import defaultdict
runs, order = defaultdict(dict), []
for line in open(sys.argv[1]):
    m = re.match(r"(\d+) (\S+) send\(\) \d+ × (.*?): .*client CPU µs/record kprod ([0-9.]+)", line)
    if m:
        pair, mode, cell, cpu = m.groups()
        if cell not in order:
            order.append(cell)
        runs[(cell, pair)][mode] = float(cpu)
medians = []
for cell in order:
    pairs = [v for (c, _), v in runs.items() if c == cell and len(v) == 2]
    ratios = [v["on"] / v["off"] for v in pairs]
    medians.append(st.median(ratios))
    off, on = st.median(v["off"] for v in pairs), st.median(v["on"] for v in pairs)
    print(f"| {cell} | {off:.3f} | {on:.3f} | {medians[-1]:.2f}× | {', '.join(f'{r:.2f}' for r in ratios)} |")
print(f"median over {len(medians)} cells {st.median(medians):.3f}, range {min(medians):.2f}-{max(medians):.2f}, "
      f"within 1.10: {sum(r <= 1.10 for r in medians)}")
PY
