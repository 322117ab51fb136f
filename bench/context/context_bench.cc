// ns/op of the request context: reads, scopes, the unified request scope versus
// nested standalone scopes, propagation per coroutine resumption, and reads from
// a dlopen'd module, with a raw thread_local read as the physical limit.
// Figures and method: docs/benchmarks.md.
#include <dlfcn.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>

#include "benchmark/benchmark.h"
#include "modgraph/context/asio.h"
#include "modgraph/context/context.h"
#include "modgraph/context/request_context.h"
#include "read_loop.h"

namespace modgraph::bench {
namespace {

namespace asio = boost::asio;

const Key<std::int64_t> kValue;

template <int I>
struct KindState {
  std::int64_t value = I;
};
// 24 state kinds, as 24 modules would declare them.
template <int I>
const StateKind<KindState<I>> kKind{"bench.kind." + std::to_string(I)};

// Seconds per read (printed with an SI prefix, e.g. 617p = 0.617 ns): each
// iteration performs kReadsPerCall reads.
void report_per_read(benchmark::State& state) {
  state.counters["per_op"] = benchmark::Counter(
      static_cast<double>(kReadsPerCall),
      benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

// --- The physical limit: a thread_local pointer in the executable itself. ---
constinit thread_local std::int64_t* t_raw = nullptr;

[[gnu::noinline]] std::int64_t raw_read_loop() {
  std::int64_t sum = 0;
  for (std::int64_t i = 0; i < kReadsPerCall; ++i) {
    asm volatile("" ::: "memory");  // same barrier as read_loop(): no hoisting
    sum += t_raw != nullptr ? *t_raw : 0;
  }
  return sum;
}

void BM_RawThreadLocalRead(benchmark::State& state) {
  std::int64_t value = 1;
  t_raw = &value;
  for (auto _ : state) benchmark::DoNotOptimize(raw_read_loop());
  t_raw = nullptr;
  report_per_read(state);
}
BENCHMARK(BM_RawThreadLocalRead);

// --- Reads. ---
[[gnu::noinline]] std::int64_t host_read_loop() { return read_loop(kValue); }

void BM_GetInScope(benchmark::State& state) {
  run(with(kValue, std::int64_t{1}), [&] {
    for (auto _ : state) benchmark::DoNotOptimize(host_read_loop());
  });
  report_per_read(state);
}
BENCHMARK(BM_GetInScope);

void BM_GetOutsideScope(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(host_read_loop());
  report_per_read(state);
}
BENCHMARK(BM_GetOutsideScope);

// The module's read loop, or one module call per read (so the module computes
// the anchor's address on every read, as a function called once per request does).

[[gnu::noinline]] std::int64_t host_read_once(const Key<std::int64_t>& key) {
  const std::int64_t* value = get(key);
  return value != nullptr ? *value : 0;
}

void BM_GetInScopeOneCallPerRead(benchmark::State& state) {
  run(with(kValue, std::int64_t{1}), [&] {
    for (auto _ : state) benchmark::DoNotOptimize(call_loop(host_read_once, kValue));
  });
  report_per_read(state);
}
BENCHMARK(BM_GetInScopeOneCallPerRead);

// How the module is exercised: its read loop; one call per read with the calls
// made inside the module (as module code calling module code); or with the calls
// made from the host (each read also pays a call and return across objects).
enum class ModuleRead { kLoop, kOneCallPerRead, kOneCallPerReadFromHost };

void BM_GetInScopeFromModule(benchmark::State& state, const char* path, ModuleRead mode) {
  void* handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    state.SkipWithError(dlerror());
    return;
  }
  auto loop = reinterpret_cast<ReadFn>(dlsym(handle, "modgraph_bench_read_loop"));
  auto once = reinterpret_cast<ReadFn>(dlsym(handle, "modgraph_bench_read_once"));
  auto calls = reinterpret_cast<ReadFn>(dlsym(handle, "modgraph_bench_call_loop"));
  run(with(kValue, std::int64_t{1}), [&] {
    if (loop(kValue) != kReadsPerCall || once(kValue) != 1 || calls(kValue) != kReadsPerCall) {
      state.SkipWithError("the module read another context");
      return;
    }
    for (auto _ : state) {
      switch (mode) {
        case ModuleRead::kLoop:
          benchmark::DoNotOptimize(loop(kValue));
          break;
        case ModuleRead::kOneCallPerRead:
          benchmark::DoNotOptimize(calls(kValue));
          break;
        case ModuleRead::kOneCallPerReadFromHost:
          benchmark::DoNotOptimize(call_loop(once, kValue));
          break;
      }
    }
  });
  report_per_read(state);
  dlclose(handle);
}
// ie: how every module reads the anchor (initial-exec, see context.h); gnu2 and
// gnu: the dynamic TLS models (MODGRAPH_CONTEXT_DYNAMIC_TLS), for comparison.
BENCHMARK_CAPTURE(BM_GetInScopeFromModule, tls_ie_loop, MODGRAPH_BENCH_MODULE_IE,
                  ModuleRead::kLoop);
BENCHMARK_CAPTURE(BM_GetInScopeFromModule, tls_ie_one_call_per_read, MODGRAPH_BENCH_MODULE_IE,
                  ModuleRead::kOneCallPerRead);
BENCHMARK_CAPTURE(BM_GetInScopeFromModule, tls_ie_one_call_per_read_from_host,
                  MODGRAPH_BENCH_MODULE_IE, ModuleRead::kOneCallPerReadFromHost);
BENCHMARK_CAPTURE(BM_GetInScopeFromModule, tls_gnu2_loop, MODGRAPH_BENCH_MODULE_GNU2,
                  ModuleRead::kLoop);
BENCHMARK_CAPTURE(BM_GetInScopeFromModule, tls_gnu_loop, MODGRAPH_BENCH_MODULE_GNU,
                  ModuleRead::kLoop);
BENCHMARK_CAPTURE(BM_GetInScopeFromModule, tls_gnu2_one_call_per_read, MODGRAPH_BENCH_MODULE_GNU2,
                  ModuleRead::kOneCallPerRead);
BENCHMARK_CAPTURE(BM_GetInScopeFromModule, tls_gnu2_one_call_per_read_from_host,
                  MODGRAPH_BENCH_MODULE_GNU2, ModuleRead::kOneCallPerReadFromHost);
BENCHMARK_CAPTURE(BM_GetInScopeFromModule, tls_gnu_one_call_per_read, MODGRAPH_BENCH_MODULE_GNU,
                  ModuleRead::kOneCallPerRead);

[[gnu::noinline]] std::int64_t request_id_loop() {
  std::int64_t sum = 0;
  for (std::int64_t i = 0; i < kReadsPerCall; ++i) {
    asm volatile("" ::: "memory");
    sum += static_cast<std::int64_t>(current_request_id());
  }
  return sum;
}

void BM_CurrentRequestId(benchmark::State& state) {
  run_request(RequestContext::create(1), [&] {
    for (auto _ : state) benchmark::DoNotOptimize(request_id_loop());
  });
  report_per_read(state);
}
BENCHMARK(BM_CurrentRequestId);

[[gnu::noinline]] std::int64_t kind_read_loop() {
  std::int64_t sum = 0;
  for (std::int64_t i = 0; i < kReadsPerCall; ++i) {
    asm volatile("" ::: "memory");
    sum += kKind<0>.get()->value + 1;
  }
  return sum;
}

void BM_StateKindGetInUnifiedScope(benchmark::State& state) {
  run_request(RequestContext::create(1), [&] {
    for (auto _ : state) benchmark::DoNotOptimize(kind_read_loop());
  });
  report_per_read(state);
}
BENCHMARK(BM_StateKindGetInUnifiedScope);

// --- Scopes. ---
[[gnu::noinline]] std::int64_t read_once() {
  const std::int64_t* value = get(kValue);
  return value != nullptr ? *value : 0;
}

// Every scope benchmark clobbers memory at the top of each iteration so that the
// anchor is re-read on entry rather than carried in a register across iterations.
void BM_ScopeEnterExit(benchmark::State& state) {
  const Context ctx = with(kValue, std::int64_t{1});
  for (auto _ : state) {
    benchmark::ClobberMemory();
    benchmark::DoNotOptimize(run(ctx, read_once));
  }
}
BENCHMARK(BM_ScopeEnterExit);

void BM_ScopeEnterExitWithNewChild(benchmark::State& state) {
  const Context parent = with(kValue, std::int64_t{1});
  for (auto _ : state)
    benchmark::DoNotOptimize(run(parent.with(kValue, std::int64_t{2}), read_once));
}
BENCHMARK(BM_ScopeEnterExitWithNewChild);

// The RAII guard: two references taken and dropped (its context and the one it
// replaces), against run()'s none.
void BM_ContextScopeEnterExit(benchmark::State& state) {
  const Context ctx = with(kValue, std::int64_t{1});
  for (auto _ : state) {
    benchmark::ClobberMemory();
    ContextScope scope(ctx);
    benchmark::DoNotOptimize(read_once());
  }
}
BENCHMARK(BM_ContextScopeEnterExit);

void BM_Snapshot(benchmark::State& state) {
  run(with(kValue, std::int64_t{1}), [&] {
    for (auto _ : state) benchmark::DoNotOptimize(snapshot());
  });
}
BENCHMARK(BM_Snapshot);

// --- The unified request scope versus one standalone scope per kind. ---
// Reads kinds I...; a call, like the body of a real scope.
template <int... I>
[[gnu::noinline]] std::int64_t read_kinds(std::integer_sequence<int, I...>) {
  return (kKind<I>.get()->value + ...);
}
template <int N>
std::int64_t read_first_kinds() {
  return read_kinds(std::make_integer_sequence<int, N>());
}

// A request with N kinds materialized: enter, read the last kind, exit.
template <int N>
void BM_UnifiedScope(benchmark::State& state) {
  const RequestContext req = RequestContext::create(1);
  run_request(req, read_first_kinds<N>);
  for (auto _ : state) {
    benchmark::ClobberMemory();
    benchmark::DoNotOptimize(
        run_request(req, [] { return read_kinds(std::integer_sequence<int, N - 1>()); }));
  }
}
BENCHMARK(BM_UnifiedScope<1>);
BENCHMARK(BM_UnifiedScope<6>);
BENCHMARK(BM_UnifiedScope<24>);

// Enter, read each of the N kinds, exit.
template <int N>
void BM_UnifiedScopeReadAll(benchmark::State& state) {
  const RequestContext req = RequestContext::create(1);
  run_request(req, read_first_kinds<N>);
  for (auto _ : state) {
    benchmark::ClobberMemory();
    benchmark::DoNotOptimize(run_request(req, read_first_kinds<N>));
  }
}
BENCHMARK(BM_UnifiedScopeReadAll<6>);
BENCHMARK(BM_UnifiedScopeReadAll<24>);

// The pre-unified way: six nested standalone scopes, then read each of the six.
void BM_SixNestedStandaloneScopes(benchmark::State& state) {
  KindState<0> s0;
  KindState<1> s1;
  KindState<2> s2;
  KindState<3> s3;
  KindState<4> s4;
  KindState<5> s5;
  for (auto _ : state) {
    benchmark::ClobberMemory();
    kKind<0>.run_standalone(s0, [&] {
      kKind<1>.run_standalone(s1, [&] {
        kKind<2>.run_standalone(s2, [&] {
          kKind<3>.run_standalone(s3, [&] {
            kKind<4>.run_standalone(s4, [&] {
              kKind<5>.run_standalone(s5, [] { benchmark::DoNotOptimize(read_first_kinds<6>()); });
            });
          });
        });
      });
    });
  }
}
BENCHMARK(BM_SixNestedStandaloneScopes);

// A whole request: create, enter, materialize N kinds, exit, destroy.
template <int N>
void BM_RequestLifecycle(benchmark::State& state) {
  for (auto _ : state) {
    benchmark::DoNotOptimize(run_request(RequestContext::create(1), read_first_kinds<N>));
  }
}
BENCHMARK(BM_RequestLifecycle<1>);
BENCHMARK(BM_RequestLifecycle<6>);
BENCHMARK(BM_RequestLifecycle<24>);

// --- Propagation per coroutine resumption: a coroutine loop of co_await
// post(...), spawned with a plain co_spawn (the baseline) or with
// modgraph::co_spawn inside a request. Two ways to post, as request code does:
// through the awaiting handler's executor (co_await post(use_awaitable)), and
// through the coroutine's executor named explicitly (co_await post(ex,
// use_awaitable)); on the io_context itself and on a strand. ---
enum class Spawn { kPlain, kModgraph };
enum class Hop { kHandlerExecutor, kExplicitExecutor };

template <class Executor>
void spawn_loop(benchmark::State& state, const Executor& ex, Spawn spawn, Hop hop) {
  auto body = [&state, hop]() -> asio::awaitable<void> {
    const auto executor = co_await asio::this_coro::executor;
    for (auto _ : state) {
      if (hop == Hop::kHandlerExecutor) {
        co_await asio::post(asio::use_awaitable);
      } else {
        co_await asio::post(executor, asio::use_awaitable);
      }
      benchmark::DoNotOptimize(current_request_id());
    }
  };
  if (spawn == Spawn::kPlain) {
    asio::co_spawn(ex, body(), asio::detached);
  } else {
    run_request(RequestContext::create(1), [&] { modgraph::co_spawn(ex, body(), asio::detached); });
  }
}

void BM_CoroutineResume(benchmark::State& state, Spawn spawn, Hop hop) {
  asio::io_context io(1);
  spawn_loop(state, io.get_executor(), spawn, hop);
  io.run();
}
BENCHMARK_CAPTURE(BM_CoroutineResume, plain_executor, Spawn::kPlain, Hop::kHandlerExecutor);
BENCHMARK_CAPTURE(BM_CoroutineResume, context_executor, Spawn::kModgraph, Hop::kHandlerExecutor);
BENCHMARK_CAPTURE(BM_CoroutineResume, plain_executor_explicit, Spawn::kPlain,
                  Hop::kExplicitExecutor);
BENCHMARK_CAPTURE(BM_CoroutineResume, context_executor_explicit, Spawn::kModgraph,
                  Hop::kExplicitExecutor);

void BM_CoroutineResumeOnStrand(benchmark::State& state, Spawn spawn, Hop hop) {
  asio::io_context io(1);
  spawn_loop(state, asio::make_strand(io), spawn, hop);
  io.run();
}
BENCHMARK_CAPTURE(BM_CoroutineResumeOnStrand, plain_strand, Spawn::kPlain, Hop::kHandlerExecutor);
BENCHMARK_CAPTURE(BM_CoroutineResumeOnStrand, context_strand, Spawn::kModgraph,
                  Hop::kHandlerExecutor);
BENCHMARK_CAPTURE(BM_CoroutineResumeOnStrand, plain_strand_explicit, Spawn::kPlain,
                  Hop::kExplicitExecutor);
BENCHMARK_CAPTURE(BM_CoroutineResumeOnStrand, context_strand_explicit, Spawn::kModgraph,
                  Hop::kExplicitExecutor);

// What one reference taken and dropped costs here (an atomic increment and
// decrement): the price a resumption would pay without loans.
void BM_ReferencePair(benchmark::State& state) {
  const Context ctx = with(kValue, std::int64_t{1});
  for (auto _ : state) {
    benchmark::ClobberMemory();
    Context copy = ctx;
    benchmark::DoNotOptimize(copy);
  }
}
BENCHMARK(BM_ReferencePair);

}  // namespace
}  // namespace modgraph::bench

BENCHMARK_MAIN();
