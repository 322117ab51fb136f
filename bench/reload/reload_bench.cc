// Reload latency while a server is under load: from the moment a rebuilt page
// library lands in the module root to the first response rendered by the new
// copy. Measured three ways in the same run:
//   - BM_ReloadLatencyWatched: what a developer waits for under `serve --watch`
//     (inotify, the debounce interval, the reload transaction with its preflight,
//     the first request that reaches the new copy);
//   - BM_ReloadLatencyDirect: Topology::Reload called at once (no watcher), the
//     transaction alone, with and without the preflight;
//   - BM_Preflight vs BM_InProcessLoad: what the preflight of one library costs
//     against loading it in-process.
// Each iteration is one reload; p50/p99 over the iterations are reported as
// counters (milliseconds). The load: `clients` connections firing /stress
// continuously (1 ms of asynchronous work per request) on a 2-thread server.
#include <benchmark/benchmark.h>
#include <fmt/format.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <thread>

#include "modgraph/environments/topology.h"
#include "modgraph/environments/watcher.h"
#include "modgraph/loader/preflight.h"
#include "modgraph/pages/page_host.h"
#include "modgraph/server/http_server.h"
#include "modgraph/server/page_routes.h"
#include "modgraph/testing/load_client.h"

namespace modgraph {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
const fs::path kModuleDir = MODGRAPH_BENCH_MODULE_DIR;
const fs::path kPages = MODGRAPH_BENCH_PAGES;

class Scratch {
 public:
  Scratch() {
    std::string pattern = (fs::temp_directory_path() / "modgraph-reload-bench-XXXXXX").string();
    path_ = ::mkdtemp(pattern.data());
    fs::create_directory(root());
  }
  ~Scratch() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  fs::path root() const { return path_ / "root"; }
  void Put(const fs::path& from, const std::string& name) const {
    fs::copy_file(from, root() / (name + ".tmp"), fs::copy_options::overwrite_existing);
    fs::rename(root() / (name + ".tmp"), root() / name);
  }

 private:
  fs::path path_;
};

// ssr serving /stress under auto, with `clients` connections of load.
class LoadedServer {
 public:
  LoadedServer(const Scratch& scratch, int clients, Preflight preflight) {
    scratch.Put(kModuleDir / "head.so", "head.so");
    scratch.Put(kModuleDir / "head-state.so", "head-state.so");
    scratch.Put(kPages / "v1" / "stress-page.so", "stress-page.so");
    TopologySpec spec{.name = "bench", .environments = {}, .origin = "bench"};
    spec.environments.push_back({.name = "ssr",
                                 .module_roots = {scratch.root()},
                                 .entry_modules = {"head-state", "stress-page"},
                                 .policy = Policy::kAuto,
                                 .preflight = preflight});
    spec.server = {.pages_environment = "ssr",
                   .entry_environment = "",
                   .pages = {"stress-page"},
                   .work_ms = 0};  // no simulated fetch: requests ask ?delay_ms=1
    topology_ = *Topology::Create(std::move(spec));
    for (const absl::Status& error : topology_->LoadEntries()) {
      fmt::print(stderr, "load error: {}\n", std::string(error.message()));
    }
    pages_ = *pages::PageHost::Create(*topology_);
    server_ = *server::HttpServer::Start(
        {.threads = 2}, server::MakePageRouter(*pages_, server::TopologyWork(*pages_)));
    if (clients > 0) {
      load_ = std::thread([this, clients] {
        std::vector<std::string> targets;
        for (int i = 0; i < clients * 4; ++i) targets.push_back("/stress?id=1&delay_ms=1");
        while (!stop_.load()) {
          (void)testing::RunLoad({.port = server_->port(), .connections = clients}, targets);
        }
      });
    }
  }
  ~LoadedServer() {
    watcher_.reset();
    stop_ = true;
    if (load_.joinable()) load_.join();
    server_->Stop();
  }
  void Watch(std::chrono::milliseconds debounce) {
    watcher_ = *ModuleWatcher::Start(*topology_, {.debounce = debounce});
  }
  Topology& topology() { return *topology_; }
  // Polls until a response comes from `version`'s copy.
  void WaitServing(std::string_view version) {
    const std::string wanted = fmt::format("{} req-", version);
    for (;;) {
      auto page = testing::Fetch(server_->port(), "/stress?id=2");
      if (page.ok() && page->body.find(wanted) != std::string::npos) return;
    }
  }

 private:
  std::unique_ptr<Topology> topology_;
  std::unique_ptr<pages::PageHost> pages_;
  std::unique_ptr<server::HttpServer> server_;
  std::unique_ptr<ModuleWatcher> watcher_;
  std::atomic<bool> stop_{false};
  std::thread load_;
};

void Percentiles(benchmark::State& state, std::vector<double> ms) {
  if (ms.empty()) return;
  std::sort(ms.begin(), ms.end());
  auto at = [&](double q) {
    return ms[std::min(ms.size() - 1, static_cast<std::size_t>(q * (ms.size() - 1) + 0.5))];
  };
  state.counters["p50_ms"] = at(0.50);
  state.counters["p99_ms"] = at(0.99);
  state.counters["max_ms"] = ms.back();
}

// Args: clients of background load, debounce (ms).
void BM_ReloadLatencyWatched(benchmark::State& state) {
  Scratch scratch;
  LoadedServer server(scratch, static_cast<int>(state.range(0)), Preflight::kReloads);
  server.Watch(std::chrono::milliseconds(state.range(1)));
  std::vector<double> ms;
  int n = 0;
  for (auto _ : state) {
    const char* version = ++n % 2 == 1 ? "v2" : "v1";
    const Clock::time_point start = Clock::now();
    scratch.Put(kPages / version / "stress-page.so", "stress-page.so");
    server.WaitServing(version);
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    state.SetIterationTime(seconds);
    ms.push_back(seconds * 1000);
  }
  Percentiles(state, std::move(ms));
}
BENCHMARK(BM_ReloadLatencyWatched)
    ->Args({200, 100})
    ->Args({200, 10})
    ->Args({0, 10})
    ->Iterations(40)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

// Args: clients of background load, preflight (0 off, 1 on).
void BM_ReloadLatencyDirect(benchmark::State& state) {
  Scratch scratch;
  LoadedServer server(scratch, static_cast<int>(state.range(0)),
                      state.range(1) != 0 ? Preflight::kReloads : Preflight::kOff);
  std::vector<double> ms;
  int n = 0;
  for (auto _ : state) {
    const char* version = ++n % 2 == 1 ? "v2" : "v1";
    const Clock::time_point start = Clock::now();
    scratch.Put(kPages / version / "stress-page.so", "stress-page.so");
    if (absl::Status reloaded = server.topology().Reload("ssr", "stress-page"); !reloaded.ok()) {
      state.SkipWithError(std::string(reloaded.message()).c_str());
      break;
    }
    server.WaitServing(version);
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    state.SetIterationTime(seconds);
    ms.push_back(seconds * 1000);
  }
  Percentiles(state, std::move(ms));
}
BENCHMARK(BM_ReloadLatencyDirect)
    ->Args({200, 1})
    ->Args({200, 0})
    ->Args({0, 1})
    ->Args({0, 0})
    ->Iterations(40)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

// The preflight of one library (head.so) in a child process...
void BM_Preflight(benchmark::State& state) {
  for (auto _ : state) {
    if (absl::Status ok = PreflightLibrary(kModuleDir / "head.so"); !ok.ok()) {
      state.SkipWithError(std::string(ok.message()).c_str());
      break;
    }
  }
}
BENCHMARK(BM_Preflight)->Unit(benchmark::kMillisecond);

// ... against loading it in this process (private copy, dlopen, close).
void BM_InProcessLoad(benchmark::State& state) {
  LibraryLoader loader;
  for (auto _ : state) {
    auto library = loader.Load(kModuleDir, "head.so", {.environment = "bench", .label = "head"});
    if (!library.ok()) {
      state.SkipWithError(std::string(library.status().message()).c_str());
      break;
    }
  }
}
BENCHMARK(BM_InProcessLoad)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace modgraph

BENCHMARK_MAIN();
