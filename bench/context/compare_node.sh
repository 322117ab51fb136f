#!/usr/bin/env bash
# Runs context_bench (release build) and node_als_bench.js on Node 20 and Node 24
# in one run, then prints each modgraph figure next to its Node counterparts and
# the ratio modgraph/Node (below 1 means modgraph is faster), with the CPU model.
#   cmake --preset release && cmake --build --preset release --target context_bench
#   flock /tmp/modgraph-build.lock bench/context/compare_node.sh [path/to/context_bench]
# NODE20 and NODE24 name the two Node commands (defaults: `node`, which is Node 20
# on Debian 12, and `npx -y node@24`, Node 24 from npm).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bench=${1:-$here/../../build/release/bench/context/context_bench}
node20=${NODE20:-node}
node24=${NODE24:-npx -y node@24}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

lscpu | sed -n 's/^Model name: *//p' >"$tmp/cpu.txt"
"$bench" --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
  --benchmark_min_time=0.3 --benchmark_format=json >"$tmp/modgraph.json"
for version in 20 24; do
  cmd=node$version
  # baseline first, in its own process: no AsyncLocalStorage ever created there.
  ${!cmd} "$here/node_als_bench.js" baseline >"$tmp/node$version.jsonl"
  ${!cmd} "$here/node_als_bench.js" als >>"$tmp/node$version.jsonl"
done

node - "$tmp" <<'JS'
const fs = require('fs');
const dir = process.argv[2];
const mg = {};
for (const b of JSON.parse(fs.readFileSync(`${dir}/modgraph.json`, 'utf8')).benchmarks) {
  if (b.aggregate_name !== 'median') continue;
  // Read benchmarks report seconds per read in `per_op`; the rest ns per iteration.
  mg[b.run_name] = b.per_op !== undefined ? b.per_op * 1e9 : b.real_time;
}
const nodes = {};
const versions = {};
for (const v of ['20', '24']) {
  nodes[v] = {};
  for (const line of fs.readFileSync(`${dir}/node${v}.jsonl`, 'utf8').trim().split('\n')) {
    const r = JSON.parse(line);
    nodes[v][r.name] = r.ns_per_op;
    versions[v] = r.node;
  }
}
const rows = [
  ['read inside a scope', mg['BM_GetInScope'], 'getStore_in_run'],
  ['scope enter+exit', mg['BM_ScopeEnterExit'], 'run_enter_exit'],
  ['six nested standalone scopes', mg['BM_SixNestedStandaloneScopes'], 'six_nested_run'],
  ['unified scope, 6 kinds read', mg['BM_UnifiedScopeReadAll<6>'], 'run_six_field_object'],
  ['one resumption in a scope', mg['BM_CoroutineResume/context_executor'], 'await_in_run'],
  ['propagation per resumption',
   mg['BM_CoroutineResume/context_executor'] - mg['BM_CoroutineResume/plain_executor'],
   (n) => n['await_in_run'] - n['await_no_als']],
];
const cpu = fs.readFileSync(`${dir}/cpu.txt`, 'utf8').trim();
console.log(`CPU: ${cpu}; Node ${versions['20']} and ${versions['24']}; ${new Date().toISOString()}`);
const pad = (s, n) => String(s).padEnd(n);
console.log(pad('operation', 32) + pad('modgraph ns', 13) + pad(`node ${versions['20']} ns`, 18) +
            pad('ratio', 9) + pad(`node ${versions['24']} ns`, 18) + 'ratio');
for (const [name, m, key] of rows) {
  let line = pad(name, 32) + pad(m.toFixed(2), 13);
  for (const v of ['20', '24']) {
    const n = typeof key === 'function' ? key(nodes[v]) : nodes[v][key];
    line += pad(n.toFixed(2), 18) + pad(n > 0 ? (m / n).toFixed(3) : 'n/a', 9);
  }
  console.log(line);
}
console.log('node awaits (ns): ' + ['20', '24'].map((v) =>
  `v${v}: no ALS ${nodes[v]['await_no_als'].toFixed(1)}, in run ${nodes[v]['await_in_run'].toFixed(1)}, ` +
  `outside run after ALS use ${nodes[v]['await_outside_run_als_used'].toFixed(1)}`).join('; '));
JS
