// Requests per second over loopback: the plugin server serving concurrent-head
// in dev (auto) and prod, with the request context on and off, against a Node
// http server with AsyncLocalStorage serving the same page — all driven by the
// same load client (16 keep-alive connections) in one run. Counters: req/s,
// p50 and p99 latency (microseconds).
#include <benchmark/benchmark.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "modgraph/example/topologies.h"
#include "modgraph/pages/page_host.h"
#include "modgraph/server/http_server.h"
#include "modgraph/server/page_routes.h"
#include "modgraph/testing/load_client.h"
#include "modgraph/testing/testkit.h"

namespace modgraph {
namespace {

const std::filesystem::path kModuleDir = MODGRAPH_BENCH_MODULE_DIR;
const std::filesystem::path kBundle = MODGRAPH_BENCH_BUNDLE;
const std::filesystem::path kNodeServer = MODGRAPH_BENCH_NODE_SERVER;
constexpr int kConnections = 16;
constexpr int kRequestsPerIteration = 4000;

// Fires one batch per iteration and reports throughput and latency.
void Drive(benchmark::State& state, std::uint16_t port) {
  const std::vector<std::string> targets(kRequestsPerIteration, "/concurrent-head?id=7");
  std::vector<std::int64_t> p50, p99;
  for (auto _ : state) {
    auto report = testing::RunLoad({.port = port, .connections = kConnections}, targets);
    if (!report.ok() || report->failures() > 0) {
      state.SkipWithError("load run failed");
      return;
    }
    p50.push_back(report->latency_quantile(0.50).count());
    p99.push_back(report->latency_quantile(0.99).count());
  }
  std::sort(p50.begin(), p50.end());
  std::sort(p99.begin(), p99.end());
  state.SetItemsProcessed(state.iterations() * kRequestsPerIteration);
  state.counters["p50_us"] = static_cast<double>(p50[p50.size() / 2]) / 1000.0;
  state.counters["p99_us"] = static_cast<double>(p99[p99.size() / 2]) / 1000.0;
}

void BM_Modgraph(benchmark::State& state, bool prod, bool context) {
  TopologySpec spec = prod ? example::ProdTopology(kBundle) : example::DevTopology(kModuleDir);
  spec.server.work_ms = 0;  // pages yield once: the server is measured, not a simulated fetch
  auto topology = testing::LoadForTest(std::move(spec), Policy::kAuto);
  auto host = pages::PageHost::Create(**topology);
  auto server = server::HttpServer::Start(
      {.context_enabled = context}, server::MakePageRouter(**host, server::TopologyWork(**host)));
  if (!server.ok()) {
    state.SkipWithError("server did not start");
    return;
  }
  Drive(state, (*server)->port());
  (*server)->Stop();
}
BENCHMARK_CAPTURE(BM_Modgraph, prod_context_on, true, true)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Modgraph, prod_context_off, true, false)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Modgraph, dev_auto_context_on, false, true)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Modgraph, dev_auto_context_off, false, false)->Unit(benchmark::kMillisecond);

// The Node baseline, started as a child process.
void BM_NodeAsyncLocalStorage(benchmark::State& state) {
  int out[2];
  if (::pipe(out) != 0) return state.SkipWithError("pipe");
  const pid_t child = ::fork();
  if (child == 0) {
    ::dup2(out[1], STDOUT_FILENO);
    ::execlp("node", "node", kNodeServer.c_str(), nullptr);
    std::_Exit(127);
  }
  ::close(out[1]);
  char buffer[32] = {};
  const ssize_t n = ::read(out[0], buffer, sizeof buffer - 1);
  ::close(out[0]);
  const int port = n > 0 ? std::atoi(buffer) : 0;
  if (port > 0) {
    Drive(state, static_cast<std::uint16_t>(port));
  } else {
    state.SkipWithError("node did not start (is node installed?)");
  }
  ::kill(child, SIGTERM);
  ::waitpid(child, nullptr, 0);
}
BENCHMARK(BM_NodeAsyncLocalStorage)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace modgraph

BENCHMARK_MAIN();
