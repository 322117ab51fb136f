#!/usr/bin/env bash
# Runs every benchmark program once for a very short time, so a benchmark that
# no longer builds, crashes or hangs fails CI. No timing is judged here; figures
# come from full runs recorded in docs/benchmarks.md. MODGRAPH_BENCH_SMOKE tells
# programs with large fixed sizes (scale_bench) to use small ones.
# Usage: scripts/bench_smoke.sh [release build dir (build/release)]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/release}
found=0
while IFS= read -r -d '' program; do
  found=$((found + 1))
  echo "== $(basename "$program")"
  MODGRAPH_BENCH_SMOKE=1 timeout 300 "$program" --benchmark_min_time=0.01 >/dev/null
done < <(find "$build/bench" -type f -executable -name '*_bench' -print0 | sort -z)
[ "$found" -gt 0 ] || { echo "bench_smoke.sh: no benchmark programs under $build/bench" >&2; exit 1; }
echo "bench smoke: $found programs ran"
