#!/usr/bin/env bash
# Isolated loading against the plain dlopen loop, each series in a process of
# its own: glibc's walks over the link maps depend on where earlier work left
# the heap, so a series that runs after others in one process is measured on a
# fragmented heap while the baseline, run first, gets a fresh one. Prints, per
# size, load + teardown per instance (µs) of the plain loop and of the isolated
# chain and fan without the first-load preflight, and their ratios to the loop.
# Usage: bench/scale/ratios.sh [build dir]   (after building scale_bench)
set -euo pipefail
cd "$(dirname "$0")/../.."
bench=${1:-build/release}/bench/scale/scale_bench
[ -x "$bench" ] || { echo "build scale_bench first: cmake --build --preset release --target scale_bench" >&2; exit 2; }
echo "# $(date -u +%FT%TZ) $(lscpu | sed -n 's/^Model name: *//p'), load $(cut -d' ' -f1-3 /proc/loadavg)"
for series in PlainDlopen Isolated_chain_trusted Isolated_fan_trusted; do
  # The per-series table: instances, load [cpu], teardown [cpu], RSS, maps, exponent.
  "$bench" --benchmark_filter="BM_${series}/" 2>/dev/null |
    sed 's/\[[^]]*\]//g' | awk -v s="$series" 'NF == 6 && $1 ~ /^[0-9]+$/ {print s, $1, $2 + $3}'
done | awk '
  { total[$1, $2] = $3; if (!($2 in seen)) { seen[$2] = 1; sizes[++n] = $2 } }
  END {
    printf "%10s %12s %12s %12s %10s %10s\n", "instances", "plain us", "chain us", "fan us", "chain/pl", "fan/pl"
    for (i = 1; i <= n; i++) {
      k = sizes[i]; p = total["PlainDlopen", k]; c = total["Isolated_chain_trusted", k]
      f = total["Isolated_fan_trusted", k]
      printf "%10d %12.1f %12.1f %12.1f %10.2f %10.2f\n", k, p, c, f, c / p, f / p
    }
  }'
