#!/usr/bin/env bash
# Requests/s and latency with Debian's wrk (one client thread, 16 connections)
# against `modgraph serve` (prod and dev+auto, request context on and off) and
# the Node baseline (node_server.js: node:http + AsyncLocalStorage), the same page,
# in one run; each configuration `rounds` times, interleaved.
# Usage: bench/server/wrk_compare.sh [build dir] [seconds] [rounds]
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build/release}
seconds=${2:-5}
rounds=${3:-3}
modgraph=$build/tools/modgraph
source bench/server/serve_lib.sh
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 2; }
page='/concurrent-head?id=7'

measure() {  # name, port
  wrk -t1 -c16 -d"${seconds}s" --latency "http://127.0.0.1:$2$page" |
    awk -v name="$1" '/Requests\/sec/ {rps=$2} / 50%/ {p50=$2} / 99%/ {p99=$2}
      END {printf "%-22s %10s req/s  p50 %8s  p99 %8s\n", name, rps, p50, p99}'
}

serve() {  # name, modgraph args...
  local name=$1; shift
  start_serve "$modgraph" "$@"
  measure "$name" "$SERVE_PORT"
  stop_serve
}

node_baseline() {
  local out; out=$(mktemp)
  node bench/server/node_server.js >"$out" &
  local pid=$!
  until [ -s "$out" ]; do sleep 0.1; done
  measure "node-als" "$(head -1 "$out")"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -f "$out"
}

echo "# $(date -u +%FT%TZ) $(uname -m), $(nproc) cores, wrk -t1 -c16 -d${seconds}s, $page"
for round in $(seq "$rounds"); do
  serve "prod context on" --mode prod
  serve "prod context off" --mode prod --no-context
  serve "dev+auto context on" --mode dev --policy auto
  node_baseline
done
