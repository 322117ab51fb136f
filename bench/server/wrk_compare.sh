#!/usr/bin/env bash
# Requests/s, latency and server CPU per request with Debian's wrk (one client
# thread, 16 keep-alive connections, the concurrent-head page) in one run:
#   beast            the bare Boost.Beast server (beast_baseline.cc), the limit
#   beast t2         the same on two io threads (beast_baseline --threads 2)
#   prod on / off    modgraph serve --mode prod, request context on / off
#   prod on t2       the same on --threads 2
#   prod t2 poll50   and with --busy-poll-us 50
#   dev+auto on      modgraph serve --mode dev --policy auto
#   node             node:http + AsyncLocalStorage (node_server.js), if node is installed
# Each configuration `rounds` times, interleaved, with the order reversed every
# other round (the first server of a round pays for a cold machine). Server CPU
# is user + system time of the whole server process from /proc/<pid>/stat.
# Prints every run, then the median of each configuration and its ratio to beast.
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
ticks=$(getconf CLK_TCK)
results=$(mktemp)
trap 'rm -f "$results"' EXIT

measure() {  # name, port, pid
  local name=$1 port=$2 pid=$3
  wrk -t1 -c16 -d1s "http://127.0.0.1:$port$page" >/dev/null  # warm up
  local before after out
  before=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  out=$(wrk -t1 -c16 -d"${seconds}s" --latency "http://127.0.0.1:$port$page")
  after=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  echo "$out" | awk -v name="$name" -v c=$((after - before)) -v t="$ticks" '
    /requests in/ {n=$1} /Requests\/sec/ {rps=$2} / 50%/ {p50=$2} / 99%/ {p99=$2}
    /Non-2xx|Socket errors/ {bad=1}
    END {printf "%-14s %10.0f req/s %8.2f us CPU/req  p50 %8s  p99 %8s%s\n",
                name, rps, c / t / n * 1e6, p50, p99, bad ? "  (errors!)" : ""}' |
    tee -a "$results"
}

run() {  # name, modgraph (or beast_baseline) args...
  local name=$1; shift
  case $name in
    beast*)
      local out; out=$(mktemp)
      "$build/bench/server/beast_baseline" "$@" >"$out" &
      local pid=$!
      until [ -s "$out" ]; do sleep 0.1; done
      measure "$name" "$(head -1 "$out")" "$pid"
      kill "$pid"; wait "$pid" 2>/dev/null || true
      rm -f "$out" ;;
    node)
      command -v node >/dev/null || return 0
      local out; out=$(mktemp)
      node bench/server/node_server.js >"$out" &
      local pid=$!
      until [ -s "$out" ]; do sleep 0.1; done
      measure "$name" "$(head -1 "$out")" "$pid"
      kill "$pid"; wait "$pid" 2>/dev/null || true
      rm -f "$out" ;;
    *)
      start_serve "$modgraph" "$@"
      measure "$name" "$SERVE_PORT" "$SERVE_PID"
      stop_serve ;;
  esac
}

configs=(
  "beast"
  "beast t2|--threads 2"
  "prod on|--mode prod"
  "prod off|--mode prod --no-context"
  "prod on t2|--mode prod --threads 2"
  "prod t2 poll50|--mode prod --threads 2 --busy-poll-us 50"
  "dev+auto on|--mode dev --policy auto"
  "node"
)

echo "# $(date -u +%FT%TZ) $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores," \
  "load $(cut -d' ' -f1-3 /proc/loadavg), wrk -t1 -c16 -d${seconds}s $page"
for round in $(seq "$rounds"); do
  order=("${configs[@]}")
  if [ $((round % 2)) -eq 0 ]; then
    order=()
    for ((i = ${#configs[@]} - 1; i >= 0; i--)); do order+=("${configs[i]}"); done
  fi
  for config in "${order[@]}"; do
    IFS='|' read -r name args <<<"$config"
    # shellcheck disable=SC2086
    run "$name" $args
  done
done

echo "# median of $rounds rounds; ratios to beast of the same run"
awk '{
  name = substr($0, 1, 14); sub(/ +$/, "", name)
  rest = substr($0, 15); split(rest, f, " ")
  k = ++count[name]; rps[name, k] = f[1]; cpu[name, k] = f[3]
  if (!(name in seen)) { seen[name] = 1; names[++n] = name }
}
function median(arr, name, c,    i, j, v, t) {
  for (i = 1; i <= c; i++) v[i] = arr[name, i]
  for (i = 1; i <= c; i++) for (j = i + 1; j <= c; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
  return c % 2 ? v[(c + 1) / 2] : (v[c / 2] + v[c / 2 + 1]) / 2
}
END {
  br = median(rps, "beast", count["beast"]); bc = median(cpu, "beast", count["beast"])
  for (i = 1; i <= n; i++) {
    m = names[i]; r = median(rps, m, count[m]); c = median(cpu, m, count[m])
    printf "%-14s %10.0f req/s (%.2fx beast) %8.2f us CPU/req (%.2fx beast)\n", m, r, r / br, c, c / bc
  }
}' "$results"
