#!/usr/bin/env bash
# Server CPU time per request (user + system, from /proc/<pid>/stat) under wrk,
# for `modgraph serve --mode prod` with the request context on and off,
# interleaved: a steadier view of the context's share of a request than
# requests/s on a shared machine.
# Usage: bench/server/cpu_per_request.sh [build dir] [seconds] [rounds]
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build/release}
seconds=${2:-5}
rounds=${3:-4}
ticks=$(getconf CLK_TCK)

run() {  # name, modgraph args...
  local name=$1; shift
  local log; log=$(mktemp)
  "$build/tools/modgraph" serve --port 0 "$@" >"$log" 2>&1 &
  local pid=$!
  until grep -q "Ctrl-C stops" "$log"; do sleep 0.1; done
  local port; port=$(grep -o 'http://127.0.0.1:[0-9]*/ ' "$log" | head -1 | grep -o '[0-9]*/ ' | tr -d '/ ')
  local before; before=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  local requests
  requests=$(wrk -t1 -c16 -d"${seconds}s" "http://127.0.0.1:$port/concurrent-head?id=7" |
    awk '/requests in/ {print $1}')
  local after; after=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  kill -TERM "$pid"; wait "$pid" || true
  rm -f "$log"
  awk -v n="$name" -v r="$requests" -v c=$((after - before)) -v t="$ticks" \
    'BEGIN {printf "%-18s %9d requests  %7.3f us CPU/request\n", n, r, c / t / r * 1e6}'
}

echo "# $(date -u +%FT%TZ), wrk -t1 -c16 -d${seconds}s, server CPU per request"
# Alternate which goes first: the first run of a pair tends to pay for a cold start.
for round in $(seq "$rounds"); do
  if [ $((round % 2)) -eq 1 ]; then
    run "context on" --mode prod
    run "context off" --mode prod --no-context
  else
    run "context off" --mode prod --no-context
    run "context on" --mode prod
  fi
done
