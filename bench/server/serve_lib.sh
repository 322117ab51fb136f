# Sourced by the bench/server scripts: start and stop `modgraph serve`.
# start_serve MODGRAPH ARGS... sets SERVE_PID and SERVE_PORT; stop_serve ends it.
# Pages serve with --work-ms 0: no simulated data fetch, each page yields once.
start_serve() {
  local modgraph=$1; shift
  SERVE_LOG=$(mktemp)
  "$modgraph" serve --port 0 --work-ms 0 "$@" >"$SERVE_LOG" 2>&1 &
  SERVE_PID=$!
  until grep -q "Ctrl-C stops" "$SERVE_LOG"; do
    kill -0 "$SERVE_PID" 2>/dev/null || { cat "$SERVE_LOG" >&2; return 1; }
    sleep 0.1
  done
  SERVE_PORT=$(grep -o 'http://127.0.0.1:[0-9]*/ ' "$SERVE_LOG" | head -1 | grep -o '[0-9]*/ ' | tr -d '/ ')
}

stop_serve() {
  kill -TERM "$SERVE_PID"
  wait "$SERVE_PID" || true
  rm -f "$SERVE_LOG"
}
