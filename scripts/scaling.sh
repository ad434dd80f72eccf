#!/usr/bin/env bash
# Scaling of kprod's send() throughput and client CPU against I/O threads, partitions and
# calling threads, measured with `kprod perf` against `kprod mock --sink` in its own process;
# writes docs/scaling.csv and plots docs/scaling.png.
#   bash scripts/scaling.sh            # RECORDS=1000000 REPEATS=5 by default
# Each point is the median of REPEATS runs. The plot needs matplotlib: installed with pip into
# target/plot-venv on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
RECORDS=${RECORDS:-1000000}
REPEATS=${REPEATS:-5}
cargo build --release --features cli --bin kprod
KPROD=target/release/kprod
CSV=docs/scaling.csv
mkdir -p docs
echo "dimension,value,records_per_sec,cpu_us_per_record" > "$CSV"

# One run: partitions, io threads, calling threads -> "records/s cpu"
run() {
  local partitions=$1 io=$2 threads=$3
  coproc MOCK { exec "$KPROD" mock --sink --topic "scale:$partitions" 2>/dev/null; }
  local bootstrap
  read -r bootstrap <&"${MOCK[0]}"
  local out
  out=$("$KPROD" perf -b "$bootstrap" -t scale --num-records "$RECORDS" --record-size 100 \
    --io-threads "$io" --threads "$threads" 2>/dev/null)
  exec {MOCK[1]}>&-   # closing its stdin stops the mock
  wait "$MOCK_PID" 2>/dev/null || true
  local rate cpu
  rate=$(sed -n 's/^[0-9]* records sent, \([0-9.]*\) records\/sec.*/\1/p' <<<"$out")
  cpu=$(sed -n 's/^client CPU: \([0-9.]*\) µs per acknowledged record.*/\1/p' <<<"$out")
  echo "$rate $cpu"
}

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

point() {
  local dim=$1 value=$2 partitions=$3 io=$4 threads=$5
  local rates=() cpus=()
  for _ in $(seq "$REPEATS"); do
    read -r r c < <(run "$partitions" "$io" "$threads")
    rates+=("$r"); cpus+=("$c")
  done
  local r c
  r=$(printf '%s\n' "${rates[@]}" | median)
  c=$(printf '%s\n' "${cpus[@]}" | median)
  echo "$dim,$value,$r,$c" | tee -a "$CSV"
}

for io in 1 2 4; do point io_threads "$io" 6 "$io" 1; done
for p in 1 3 6 12; do point partitions "$p" "$p" 2 1; done
for t in 1 2 4; do point calling_threads "$t" 6 2 "$t"; done

VENV=target/plot-venv
if ! "$VENV/bin/python" -c "import matplotlib" 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet matplotlib
fi
"$VENV/bin/python" scripts/plot_scaling.py "$CSV" docs/scaling.png "$REPEATS"
echo "wrote $CSV and docs/scaling.png"
