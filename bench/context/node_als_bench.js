// Node's AsyncLocalStorage at its best, measured the way context_bench measures
// modgraph: getStore inside run, run enter+exit, six nested runs (one storage
// per module), one run of a 6-field object (the unified context), and the cost
// per await in a run.
//
//   node node_als_bench.js baseline   # the await loop; no AsyncLocalStorage
//                                     # is ever created in this process
//   node node_als_bench.js als        # everything else
//
// Node at its best: every loop is its own function with the operation written
// inline (no closure called per iteration, no object or closure allocated per
// iteration), warmed up by running it first, then timed REPS times; the median
// is printed. The await baseline runs in a process that never creates an
// AsyncLocalStorage: on Node 20 the first one enables promise hooks for the
// whole process and every await pays for them, inside a run or not.
// Prints one JSON object per line: {"name", "ns_per_op", "node"}.
'use strict';

const REPS = 5;
let sink = 0;

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

function report(name, ns) {
  console.log(JSON.stringify({ name, ns_per_op: ns, node: process.version }));
}

// `loop(n)` runs n operations; it is warmed up with `warm` of them first.
function timeSync(name, n, warm, loop) {
  loop(warm);
  const samples = [];
  for (let r = 0; r < REPS; r++) {
    const start = process.hrtime.bigint();
    loop(n);
    samples.push(Number(process.hrtime.bigint() - start) / n);
  }
  report(name, median(samples));
}

async function timeAsync(name, n, warm, loop) {
  await loop(warm);
  const samples = [];
  for (let r = 0; r < REPS; r++) {
    const start = process.hrtime.bigint();
    await loop(n);
    samples.push(Number(process.hrtime.bigint() - start) / n);
  }
  report(name, median(samples));
}

// One await per iteration on an already resolved value: a resumption.
async function awaitLoop(n) {
  for (let i = 0; i < n; i++) await null;
}

async function baseline() {
  await timeAsync('await_no_als', 2_000_000, 200_000, awaitLoop);
}

async function als() {
  const { AsyncLocalStorage } = require('node:async_hooks');
  const storage = new AsyncLocalStorage();
  const store = { value: 1 };

  // getStore inside run.
  function getStoreLoop(n) {
    let s = 0;
    for (let i = 0; i < n; i++) s += storage.getStore().value;
    sink += s;
  }
  storage.run(store, () => timeSync('getStore_in_run', 20_000_000, 2_000_000, getStoreLoop));

  // run enter+exit around a body that reads nothing (modgraph: run(ctx, read_once)).
  function body() {
    sink += 1;
  }
  function runLoop(n) {
    for (let i = 0; i < n; i++) storage.run(store, body);
  }
  timeSync('run_enter_exit', 5_000_000, 500_000, runLoop);

  // Six storages (one per module), nested runs, then read each.
  const six = Array.from({ length: 6 }, () => new AsyncLocalStorage());
  const stores = six.map((_, i) => ({ value: i }));
  function readSix() {
    sink += six[0].getStore().value + six[1].getStore().value + six[2].getStore().value +
            six[3].getStore().value + six[4].getStore().value + six[5].getStore().value;
  }
  const level5 = () => six[5].run(stores[5], readSix);
  const level4 = () => six[4].run(stores[4], level5);
  const level3 = () => six[3].run(stores[3], level4);
  const level2 = () => six[2].run(stores[2], level3);
  const level1 = () => six[1].run(stores[1], level2);
  function sixNestedLoop(n) {
    for (let i = 0; i < n; i++) six[0].run(stores[0], level1);
  }
  timeSync('six_nested_run', 1_000_000, 100_000, sixNestedLoop);

  // One storage holding one 6-field object (modgraph: a request already
  // created, its 6 kinds materialised): run, read all six, exit.
  const unified = { head: 1, router: 2, i18n: 3, cache: 4, deployment: 5, store: 6 };
  function readUnified() {
    const s = storage.getStore();
    sink += s.head + s.router + s.i18n + s.cache + s.deployment + s.store;
  }
  function unifiedLoop(n) {
    for (let i = 0; i < n; i++) storage.run(unified, readUnified);
  }
  timeSync('run_six_field_object', 5_000_000, 500_000, unifiedLoop);

  // Awaits inside a run, and (for reference) outside it after a storage was used.
  await timeAsync('await_in_run', 2_000_000, 200_000, (n) => storage.run(store, () => awaitLoop(n)));
  await timeAsync('await_outside_run_als_used', 2_000_000, 200_000, awaitLoop);
}

const mode = process.argv[2] ?? 'als';
(mode === 'baseline' ? baseline() : als()).then(() => {
  if (sink === 42) console.error('');  // keep sink observable
});
