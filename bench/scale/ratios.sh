#!/usr/bin/env bash
# Isolated loading against the plain dlopen loop, each series in a process of
# its own: glibc's walks over the link maps depend on where earlier work left
# the heap, so a series that runs after others in one process is measured on a
# fragmented heap while the baseline, run first, gets a fresh one. Prints, per
# size, load + teardown per instance (µs) of the plain loop and of the isolated
# chain and fan without the first-load preflight, and their ratios to the loop:
# medians of `rounds` rounds (each series once per round, in turn), since one
# load of 1,000 instances takes about 0.1 s and a busy machine moves it.
# Usage: bench/scale/ratios.sh [build dir] [rounds]   (after building scale_bench)
set -euo pipefail
cd "$(dirname "$0")/../.."
bench=${1:-build/release}/bench/scale/scale_bench
rounds=${2:-3}
[ -x "$bench" ] || { echo "build scale_bench first: cmake --build --preset release --target scale_bench" >&2; exit 2; }
echo "# $(date -u +%FT%TZ) $(lscpu | sed -n 's/^Model name: *//p'), load $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq "$rounds"); do
  for series in PlainDlopen Isolated_chain_trusted Isolated_fan_trusted; do
    # The per-series table: instances, load [cpu], teardown [cpu], RSS, maps, exponent.
    "$bench" --benchmark_filter="BM_${series}/" 2>/dev/null |
      sed 's/\[[^]]*\]//g' |
      awk -v s="$series" -v r="$round" 'NF == 6 && $1 ~ /^[0-9]+$/ {print r, s, $1, $2 + $3}'
  done
done | awk '
  # Per round and size: the total per instance of each series, and the ratios.
  { total[$1, $2, $3] = $4; if (!($3 in seen)) { seen[$3] = 1; sizes[++n] = $3 }; rounds[$1] = 1 }
  function median(v, c,    i, j, t) {
    for (i = 1; i <= c; i++) for (j = i + 1; j <= c; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
    return c % 2 ? v[(c + 1) / 2] : (v[c / 2] + v[c / 2 + 1]) / 2
  }
  END {
    printf "%10s %12s %12s %12s %14s %14s\n", "instances", "plain us", "chain us", "fan us", "chain/plain", "fan/plain"
    for (i = 1; i <= n; i++) {
      k = sizes[i]; c = 0
      for (r in rounds) {
        ++c; p = total[r, "PlainDlopen", k]
        pl[c] = p; ch[c] = total[r, "Isolated_chain_trusted", k]; fa[c] = total[r, "Isolated_fan_trusted", k]
        rc[c] = ch[c] / p; rf[c] = fa[c] / p
        lo_c = (c == 1 || rc[c] < lo_c) ? rc[c] : lo_c; hi_c = (c == 1 || rc[c] > hi_c) ? rc[c] : hi_c
        lo_f = (c == 1 || rf[c] < lo_f) ? rf[c] : lo_f; hi_f = (c == 1 || rf[c] > hi_f) ? rf[c] : hi_f
      }
      printf "%10d %12.1f %12.1f %12.1f %5.2f (%.2f-%.2f) %5.2f (%.2f-%.2f)\n", k, median(pl, c),
        median(ch, c), median(fa, c), median(rc, c), lo_c, hi_c, median(rf, c), lo_f, hi_f
    }
    print "# medians of " c " rounds; ratios are medians of the per-round ratios (their range in brackets)"
  }'
