// Node's AsyncLocalStorage measured the way context_bench measures modgraph:
// getStore inside run, run enter+exit, six nested runs (one ALS per module),
// one run of a 6-field object (the unified context), and the cost per await.
// Prints one JSON object per line: {"name": ..., "ns_per_op": ...}.
'use strict';
const { AsyncLocalStorage } = require('node:async_hooks');

function timeSync(name, iterations, fn) {
  for (let i = 0; i < Math.min(iterations, 100000); i++) fn();  // warm up the JIT
  const start = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) fn();
  const ns = Number(process.hrtime.bigint() - start) / iterations;
  console.log(JSON.stringify({ name, ns_per_op: ns }));
}

async function timeAsync(name, iterations, fn) {
  await fn(Math.min(iterations, 100000));
  const start = process.hrtime.bigint();
  await fn(iterations);
  const ns = Number(process.hrtime.bigint() - start) / iterations;
  console.log(JSON.stringify({ name, ns_per_op: ns }));
}

let sink = 0;
const als = new AsyncLocalStorage();
const store = { value: 1 };

als.run(store, () => {
  timeSync('getStore_in_run', 20_000_000, () => { sink += als.getStore().value; });
});
timeSync('run_enter_exit', 5_000_000, () => als.run(store, () => { sink += 1; }));

const six = Array.from({ length: 6 }, () => new AsyncLocalStorage());
const sixStores = six.map((_, i) => ({ value: i }));
timeSync('six_nested_run', 1_000_000, () =>
  six[0].run(sixStores[0], () =>
    six[1].run(sixStores[1], () =>
      six[2].run(sixStores[2], () =>
        six[3].run(sixStores[3], () =>
          six[4].run(sixStores[4], () =>
            six[5].run(sixStores[5], () => {
              for (const s of six) sink += s.getStore().value;
            })))))));

timeSync('run_six_field_object', 5_000_000, () =>
  als.run({ head: 1, router: 2, i18n: 3, cache: 4, deployment: 5, store: 6 }, () => {
    const s = als.getStore();
    sink += s.head + s.router + s.i18n + s.cache + s.deployment + s.store;
  }));

// Per await: an async loop awaiting a resolved promise, outside and inside a
// run() (the difference is what ALS propagation costs per resumption).
async function awaitLoop(n) {
  for (let i = 0; i < n; i++) await null;
}
(async () => {
  await timeAsync('await_outside_run', 2_000_000, awaitLoop);
  await timeAsync('await_in_run', 2_000_000, (n) => als.run(store, () => awaitLoop(n)));
  if (sink === 42) console.error('');  // keep sink observable
})();
