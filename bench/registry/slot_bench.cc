// Cost of calling an accessor slot — registered, and on its module-level default
// outside and inside a request scope — against a direct call, in one run.
#include <benchmark/benchmark.h>

#include "modgraph/context/request_context.h"
#include "modgraph/registry/slot.h"

namespace modgraph {
namespace {

MODGRAPH_DEFINE_SLOT(BenchSlot, "bench_slot", int*());

int g_module_level = 0;
int g_request_level = 0;

[[gnu::noinline]] int* DefaultAccessor() {
  benchmark::ClobberMemory();
  return &g_module_level;
}
[[gnu::noinline]] int* RegisteredAccessor() {
  benchmark::ClobberMemory();
  return &g_request_level;
}

Slot<BenchSlot> g_default_slot{&DefaultAccessor};
Slot<BenchSlot> g_registered_slot{&DefaultAccessor};

// Installs the registered accessor the way the host does on registration.
void Register(Slot<BenchSlot>& slot) {
  modgraph_slot_decl decl = slot.decl();
  *decl.active_impl = reinterpret_cast<void*>(&RegisteredAccessor);
}

void BM_DirectCall(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(DefaultAccessor());
}
BENCHMARK(BM_DirectCall);

void BM_SlotCallRegistered(benchmark::State& state) {
  Register(g_registered_slot);
  RequestContext request = RequestContext::create(1);
  run_request(request, [&] {
    for (auto _ : state) benchmark::DoNotOptimize(g_registered_slot());
  });
}
BENCHMARK(BM_SlotCallRegistered);

void BM_SlotCallDefaultOutsideRequest(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(g_default_slot());
}
BENCHMARK(BM_SlotCallDefaultOutsideRequest);

// A fallback hit on a slot the sentinel does not watch: the out-of-line call and
// lookup, without recording (a watched slot records each hit; see the doc).
void BM_SlotCallDefaultInsideRequest(benchmark::State& state) {
  RequestContext request = RequestContext::create(1);
  run_request(request, [&] {
    for (auto _ : state) benchmark::DoNotOptimize(g_default_slot());
  });
}
BENCHMARK(BM_SlotCallDefaultInsideRequest);

}  // namespace
}  // namespace modgraph

BENCHMARK_MAIN();
