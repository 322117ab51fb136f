#!/usr/bin/env bash
# Runs context_bench (release build) and node_als_bench.js, then prints each
# modgraph figure next to its Node AsyncLocalStorage counterpart and the ratio
# modgraph/Node (below 1 means modgraph is faster).
#   cmake --preset release && cmake --build --preset release --target context_bench
#   bench/context/compare_node.sh [path/to/context_bench]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bench=${1:-$here/../../build/release/bench/context/context_bench}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$bench" --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
  --benchmark_min_time=0.3 --benchmark_format=json >"$tmp/modgraph.json"
node "$here/node_als_bench.js" >"$tmp/node.jsonl"

node - "$tmp/modgraph.json" "$tmp/node.jsonl" <<'JS'
const fs = require('fs');
const [mgPath, nodePath] = process.argv.slice(2);
const mg = {};
for (const b of JSON.parse(fs.readFileSync(mgPath, 'utf8')).benchmarks) {
  if (b.aggregate_name !== 'median') continue;
  // Read benchmarks report seconds per read in `per_op`; the rest ns per iteration.
  mg[b.run_name] = b.per_op !== undefined ? b.per_op * 1e9 : b.real_time;
}
const nd = {};
for (const line of fs.readFileSync(nodePath, 'utf8').trim().split('\n')) {
  const r = JSON.parse(line);
  nd[r.name] = r.ns_per_op;
}
const rows = [
  ['read inside a scope', mg['BM_GetInScope'], nd['getStore_in_run']],
  ['scope enter+exit', mg['BM_ScopeEnterExit'], nd['run_enter_exit']],
  ['six nested standalone scopes', mg['BM_SixNestedStandaloneScopes'], nd['six_nested_run']],
  ['unified scope, 6 kinds read', mg['BM_UnifiedScopeReadAll<6>'], nd['run_six_field_object']],
  ['one resumption (await) in a scope', mg['BM_CoroutineResume/context_executor'], nd['await_in_run']],
  ['propagation per resumption',
   mg['BM_CoroutineResume/context_executor'] - mg['BM_CoroutineResume/plain_executor'],
   nd['await_in_run'] - nd['await_outside_run']],
];
const pad = (s, n) => String(s).padEnd(n);
console.log(pad('operation', 36) + pad('modgraph ns', 14) + pad('node ns', 12) + 'modgraph/node');
for (const [name, m, n] of rows) {
  const ratio = n > 0 ? (m / n).toFixed(4) : 'n/a (node figure <= 0)';
  console.log(pad(name, 36) + pad(m.toFixed(2), 14) + pad(n.toFixed(2), 12) + ratio);
}
JS
