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
source bench/server/serve_lib.sh

run() {  # name, modgraph args...
  local name=$1; shift
  start_serve "$build/tools/modgraph" "$@"
  local before; before=$(awk '{print $14 + $15}' "/proc/$SERVE_PID/stat")
  local requests
  requests=$(wrk -t1 -c16 -d"${seconds}s" "http://127.0.0.1:$SERVE_PORT/concurrent-head?id=7" |
    awk '/requests in/ {print $1}')
  local after; after=$(awk '{print $14 + $15}' "/proc/$SERVE_PID/stat")
  stop_serve
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
