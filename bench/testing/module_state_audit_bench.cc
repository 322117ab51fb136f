// Cost of the module-state audit per scheduling point: comparing every watched
// module copy's writable bytes with the previous snapshot (dev: one copy per
// instance; prod: one bundle), with nothing changed and with one module global
// written in between; and the cost of one tracked write (a fault and a trap)
// against the same write untracked, in one run.
#include <benchmark/benchmark.h>

#include <atomic>
#include <memory>

#include "modgraph/example/topologies.h"
#include "modgraph/modules/head.h"
#include "modgraph/testing/module_state_audit.h"
#include "modgraph/testing/testkit.h"

namespace modgraph::testing {
namespace {

std::unique_ptr<Topology> Load(bool prod) {
  auto topology = LoadForTest(prod ? example::ProdTopology(MODGRAPH_BENCH_BUNDLE)
                                   : example::DevTopology(MODGRAPH_BENCH_MODULE_DIR),
                              Policy::kAuto);
  if (!topology.ok()) std::abort();
  return *std::move(topology);
}

std::atomic<int>* HeadCounter(const Topology& topology, bool prod) {
  const Instance* head = topology.environment(prod ? "prod" : "ssr")->Find("head");
  return head->api<modules::HeadApi>()->inline_static_counter();
}

void Report(benchmark::State& state, const ModuleStateAudit& audit) {
  const ModuleStateAudit::Stats stats = audit.stats();
  state.counters["copies"] = static_cast<double>(stats.copies);
  state.counters["bytes"] = static_cast<double>(stats.bytes_watched);
  // Seconds per checkpoint per copy, shown in ns by the table in docs/benchmarks.md.
  state.counters["per_copy"] = benchmark::Counter(
      static_cast<double>(stats.copies) * static_cast<double>(state.iterations()),
      benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

// A scheduling point where nothing changed: one memcmp per watched range.
void BM_CheckpointUnchanged(benchmark::State& state) {
  const bool prod = state.range(0) == 1;
  auto topology = Load(prod);
  auto audit = ModuleStateAudit::Start(*topology, {.track_writes = false});
  if (!audit.ok()) std::abort();
  for (auto _ : state) (*audit)->Checkpoint(1);
  Report(state, **audit);
}
BENCHMARK(BM_CheckpointUnchanged)->ArgName("prod")->Arg(0)->Arg(1);

// One module global changed since the last point: the diff finds, symbolises
// and attributes it.
void BM_CheckpointOneChange(benchmark::State& state) {
  const bool prod = state.range(0) == 1;
  auto topology = Load(prod);
  std::atomic<int>* counter = HeadCounter(*topology, prod);
  auto audit = ModuleStateAudit::Start(*topology, {.track_writes = false});
  if (!audit.ok()) std::abort();
  std::uint64_t request = 1;
  for (auto _ : state) {
    counter->fetch_add(1, std::memory_order_relaxed);
    (*audit)->Checkpoint(++request % 8 + 1);
  }
  Report(state, **audit);
}
BENCHMARK(BM_CheckpointOneChange)->ArgName("prod")->Arg(0)->Arg(1);

// Baseline of the next one: the same write to the module global, untracked.
void BM_WriteUntracked(benchmark::State& state) {
  auto topology = Load(false);
  std::atomic<int>* counter = HeadCounter(*topology, false);
  for (auto _ : state) counter->fetch_add(1, std::memory_order_relaxed);
}
BENCHMARK(BM_WriteUntracked);

// The same write with write tracking on: a SIGSEGV, an mprotect, a single
// step, a SIGTRAP and an mprotect.
void BM_WriteTracked(benchmark::State& state) {
  auto topology = Load(false);
  std::atomic<int>* counter = HeadCounter(*topology, false);
  auto audit = ModuleStateAudit::Start(*topology, {.track_writes = true});
  if (!audit.ok() || !(*audit)->stats().tracking_writes) {
    state.SkipWithError("write tracking unavailable");
    return;
  }
  std::uint64_t n = 0;
  for (auto _ : state) {
    counter->fetch_add(1, std::memory_order_relaxed);
    if (++n % 4096 == 0) (*audit)->Checkpoint(0);  // keep the tracker's buffer drained
  }
}
BENCHMARK(BM_WriteTracked);

}  // namespace
}  // namespace modgraph::testing

BENCHMARK_MAIN();
