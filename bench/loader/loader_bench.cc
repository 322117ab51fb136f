// Per-instance load cost: modgraph's private copy + dlopen + discovery + init,
// against a plain dlopen of a distinct prebuilt copy of the same library, in the
// same run. Only the load is timed (manual timing); the unload that follows each
// iteration is not, so every iteration maps and relocates the library afresh.
#include <benchmark/benchmark.h>
#include <dlfcn.h>
#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>

#include "modgraph/environments/environment.h"
#include "modgraph/loader/library_loader.h"

namespace modgraph {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
const fs::path kModuleDir = MODGRAPH_BENCH_MODULE_DIR;
const fs::path kHead = kModuleDir / "head.so";

double Seconds(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Baseline: what a plugin host pays for a library it already has on disk —
// dlopen of a prebuilt copy (a distinct file per environment), descriptor lookup.
void BM_PlainDlopenOfPrebuiltCopy(benchmark::State& state) {
  const fs::path dir = fs::temp_directory_path() / fmt::format("modgraph-bench-{}", ::getpid());
  fs::create_directories(dir);
  std::vector<fs::path> copies;
  for (int i = 0; i < 8; ++i) {
    copies.push_back(dir / fmt::format("ssr#head.{}.so", i));
    fs::copy_file(kHead, copies.back(), fs::copy_options::overwrite_existing);
  }
  size_t next = 0;
  for (auto _ : state) {
    const fs::path& copy = copies[next++ % copies.size()];
    const Clock::time_point start = Clock::now();
    void* handle = ::dlopen(copy.c_str(), RTLD_NOW | RTLD_LOCAL);
    benchmark::DoNotOptimize(::dlsym(handle, "modgraph_module_head"));
    state.SetIterationTime(Seconds(start));
    if (handle == nullptr) {
      state.SkipWithError(::dlerror());
      break;
    }
    ::dlclose(handle);
  }
  fs::remove_all(dir);
}
BENCHMARK(BM_PlainDlopenOfPrebuiltCopy)->UseManualTime()->Unit(benchmark::kMicrosecond);

// LibraryLoader::Load: stat + permission checks, cached inspection, private
// copy, dlopen, descriptor checks.
void BM_LoaderLoad(benchmark::State& state) {
  LibraryLoader loader({.copy_mode = static_cast<CopyMode>(state.range(0))});
  for (auto _ : state) {
    const Clock::time_point start = Clock::now();
    auto library = loader.Load(kHead, {"ssr", "head"});
    state.SetIterationTime(Seconds(start));
    if (!library.ok()) {
      state.SkipWithError(std::string(library.status().message()).c_str());
      break;
    }
  }
}
BENCHMARK(BM_LoaderLoad)
    ->Arg(static_cast<int>(CopyMode::kTempFile))
    ->Arg(static_cast<int>(CopyMode::kMemfd))
    ->Arg(static_cast<int>(CopyMode::kNone))
    ->ArgName("copy_mode(0=temp,1=memfd,2=none)")
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

// A whole instance: Environment::Import (locate, load, init); Unload untimed.
void BM_EnvironmentImport(benchmark::State& state) {
  LibraryLoader loader;
  auto env = Environment::Create({.name = "ssr", .module_roots = {kModuleDir}}, loader);
  if (!env.ok()) {
    state.SkipWithError(std::string(env.status().message()).c_str());
    return;
  }
  for (auto _ : state) {
    const Clock::time_point start = Clock::now();
    auto head = (*env)->Import("head");
    state.SetIterationTime(Seconds(start));
    benchmark::DoNotOptimize(head.ok());
    (void)(*env)->Unload("head");
  }
}
BENCHMARK(BM_EnvironmentImport)->UseManualTime()->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace modgraph

BENCHMARK_MAIN();
