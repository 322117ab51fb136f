// modgraph at scale: generated modules loaded into many environments, one
// process. For N modules × E environments (chain: each module imports the one
// before it; fan: one root imports all the others), isolated (a private copy of
// every module per environment) and bundled (one copy of a bundle of all N per
// environment), it measures per instance: load (Topology::Create + LoadEntries),
// teardown (destroying the topology: teardown, dlclose, copies removed), RSS and
// memory mappings. Isolated series run with the default first-load preflight
// (one helper process per module file) and without it (`*_trusted`). In the
// same run: the baseline, a plain dlopen/dlclose loop over as many distinct
// prebuilt copies (and, to show what the host's own records between dlopens
// cost the dynamic linker, the same loop keeping 5 or 20 small heap blocks per
// dlopen), and `doctor`'s report (report::BuildReport + RenderText)
// over a loaded topology.
//
//   build/release/bench/scale/scale_bench                       # the default sizes
//   build/release/bench/scale/scale_bench --benchmark_filter=Isolated/chain
//
// After the benchmarks it prints one table per series with the growth exponent
// between doublings (log2 of the ratio of totals: 1.0 is linear, 2.0 quadratic).
// The modules are C sources written and compiled on first use (cached under
// MODGRAPH_BENCH_SCALE_CACHE), against modgraph's C ABI only (module_abi.h).
#include <benchmark/benchmark.h>
#include <dlfcn.h>
#include <fmt/format.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "modgraph/environments/topology.h"
#include "modgraph/report/render.h"
#include "modgraph/report/report.h"

namespace modgraph {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

const fs::path kCompiler = MODGRAPH_BENCH_COMPILER;
const fs::path kAbiInclude = MODGRAPH_BENCH_ABI_INCLUDE;
const fs::path kCache = MODGRAPH_BENCH_SCALE_CACHE;

enum class Shape { kChain, kFan };
const char* Name(Shape shape) { return shape == Shape::kChain ? "chain" : "fan"; }

std::string ModuleId(int i) { return fmt::format("s-m{:05}", i); }
std::string AliasOf(int i) { return fmt::format("modgraph_module_s_m{:05}", i); }
std::string EntryOf(Shape shape, int n) { return ModuleId(shape == Shape::kChain ? n - 1 : 0); }

constexpr const char* kModuleTemplate = R"c(
static void* {p}_default(void) {{ return 0; }}
static void* {p}_active = (void*)&{p}_default;
static const modgraph_slot_decl {p}_slots[] = {{
    {{"get_state", "void*()", (void*)&{p}_default, &{p}_active}}}};
static const char* const {p}_imports[] = {{{list} 0}};
static void {p}_teardown(void) {{}}
static const modgraph_module_descriptor {p}_descriptor = {{
    .abi_version = MODGRAPH_ABI_VERSION, .descriptor_size = sizeof(modgraph_module_descriptor),
    .id = "{id}", .imports = {p}_imports, .import_count = {count}, .slots = {p}_slots,
    .slot_count = 1, .teardown = &{p}_teardown}};
__attribute__((visibility("default"))) const void* {alias} = &{p}_descriptor;
)c";

// The C source of module `i` (or, with `prefix`, its part of a bundle): one
// slot on its module-level default, imports per the shape, a no-op teardown so
// that unloaded copies may close.
std::string ModuleSource(Shape shape, int n, int i, const std::string& prefix) {
  std::vector<std::string> imports;
  if (shape == Shape::kChain && i > 0) imports.push_back(ModuleId(i - 1));
  if (shape == Shape::kFan && i == 0) {
    for (int k = 1; k < n; ++k) imports.push_back(ModuleId(k));
  }
  std::string list;
  for (const std::string& id : imports) list += fmt::format("\"{}\", ", id);
  const std::string p = prefix + std::to_string(i);
  return fmt::format(kModuleTemplate, fmt::arg("p", p), fmt::arg("list", list),
                     fmt::arg("id", ModuleId(i)), fmt::arg("count", imports.size()),
                     fmt::arg("alias", AliasOf(i)));
}

void Run(const std::string& command) {
  if (std::system(command.c_str()) != 0) {
    std::fprintf(stderr, "scale_bench: failed: %s\n", command.c_str());
    std::exit(1);
  }
}

std::string CompileFlags() {
  return fmt::format("-x c -std=c11 -O1 -shared -fPIC -fvisibility=hidden -I'{}'",
                     kAbiInclude.string());
}

// N module libraries of `shape` (`<id>.so`), compiled once.
fs::path ModuleDir(Shape shape, int n) {
  const fs::path dir = kCache / fmt::format("{}-{}", Name(shape), n);
  if (fs::exists(dir / "done")) return dir;
  fs::create_directories(dir / "src");
  for (int i = 0; i < n; ++i) {
    std::ofstream(dir / "src" / (ModuleId(i) + ".c"))
        << "#include \"modgraph/loader/module_abi.h\"\n"
        << ModuleSource(shape, n, i, "m");
  }
  std::fprintf(stderr, "scale_bench: compiling %d %s modules into %s\n", n, Name(shape),
               dir.c_str());
  Run(
      fmt::format("cd '{}' && ls src | sed 's/\\.c$//' | xargs -P2 -I{{}} '{}' {} src/{{}}.c -o "
                  "{{}}.so",
                  dir.string(), kCompiler.string(), CompileFlags()));
  std::ofstream(dir / "done") << n;
  return dir;
}

// One bundle library holding all N modules of `shape`.
fs::path BundleFile(Shape shape, int n) {
  const fs::path dir = kCache / fmt::format("bundle-{}-{}", Name(shape), n);
  const fs::path bundle = dir / "bundle.so";
  if (fs::exists(bundle)) return bundle;
  fs::create_directories(dir);
  {
    std::ofstream source(dir / "bundle.c");
    source << "#include \"modgraph/loader/module_abi.h\"\n";
    for (int i = 0; i < n; ++i) source << ModuleSource(shape, n, i, "b");
  }
  std::fprintf(stderr, "scale_bench: compiling a bundle of %d %s modules\n", n, Name(shape));
  Run(fmt::format("'{}' {} '{}' -o '{}.tmp' && mv '{}.tmp' '{}'", kCompiler.string(),
                  CompileFlags(), (dir / "bundle.c").string(), bundle.string(), bundle.string(),
                  bundle.string()));
  return bundle;
}

TopologySpec IsolatedSpec(Shape shape, int n, int environments, Preflight preflight) {
  TopologySpec spec{.name = "scale", .origin = "scale_bench"};
  const fs::path dir = ModuleDir(shape, n);
  for (int e = 0; e < environments; ++e) {
    spec.environments.push_back({.name = fmt::format("e{}", e),
                                 .mode = EnvironmentMode::kIsolated,
                                 .module_roots = {dir},
                                 .entry_modules = {EntryOf(shape, n)},
                                 .preflight = preflight});
  }
  return spec;
}

TopologySpec BundledSpec(Shape shape, int n, int environments) {
  TopologySpec spec{.name = "scale", .origin = "scale_bench"};
  const fs::path bundle = BundleFile(shape, n);
  std::vector<std::string> entries;
  for (int i = 0; i < n; ++i) entries.push_back(ModuleId(i));
  for (int e = 0; e < environments; ++e) {
    spec.environments.push_back({.name = fmt::format("e{}", e),
                                 .mode = EnvironmentMode::kBundled,
                                 .module_roots = {bundle.parent_path()},
                                 .bundle = bundle,
                                 .entry_modules = entries});
  }
  return spec;
}

long ResidentKiB() {
  std::ifstream status("/proc/self/status");
  std::string key;
  long value = 0;
  while (status >> key) {
    if (key == "VmRSS:") {
      status >> value;
      return value;
    }
    status.ignore(1 << 10, '\n');
  }
  return 0;
}

long Mappings() {
  std::ifstream maps("/proc/self/maps");
  return static_cast<long>(
      std::count(std::istreambuf_iterator<char>(maps), std::istreambuf_iterator<char>(), '\n'));
}

double Seconds(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// User + system CPU time of the whole process (every thread), in seconds: less
// disturbed than wall time by other work on a shared machine.
double ProcessCpuSeconds() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  const auto seconds = [](const timeval& t) { return double(t.tv_sec) + double(t.tv_usec) * 1e-6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

// Wall and process CPU time since construction.
struct Stopwatch {
  Clock::time_point wall = Clock::now();
  double cpu = ProcessCpuSeconds();
  std::pair<double, double> Lap() {
    const std::pair<double, double> lap{Seconds(wall), ProcessCpuSeconds() - cpu};
    *this = Stopwatch();
    return lap;
  }
};

// One row of a series: totals for `instances` instances.
struct Row {
  double load = 0, teardown = 0;          // wall seconds, total
  double load_cpu = 0, teardown_cpu = 0;  // process CPU seconds, total
  double rss_kib = 0, mappings = 0;

  // Adds one round's laps (wall, CPU) and growth of RSS and mappings.
  void Add(std::pair<double, double> load_lap, std::pair<double, double> teardown_lap,
           long rss_growth_kib, long mappings_growth) {
    load += load_lap.first;
    load_cpu += load_lap.second;
    teardown += teardown_lap.first;
    teardown_cpu += teardown_lap.second;
    rss_kib += static_cast<double>(rss_growth_kib);
    mappings += static_cast<double>(mappings_growth);
  }
  Row PerRound(int rounds) const {
    return {load / rounds,         teardown / rounds, load_cpu / rounds,
            teardown_cpu / rounds, rss_kib / rounds,  mappings / rounds};
  }
};
std::map<std::string, std::map<int, Row>>& Series() {
  static std::map<std::string, std::map<int, Row>> series;
  return series;
}

void Report(benchmark::State& state, const std::string& series, int instances, const Row& row) {
  state.counters["instances"] = instances;
  state.counters["load_us_per_instance"] = row.load / instances * 1e6;
  state.counters["teardown_us_per_instance"] = row.teardown / instances * 1e6;
  state.counters["load_cpu_us_per_instance"] = row.load_cpu / instances * 1e6;
  state.counters["teardown_cpu_us_per_instance"] = row.teardown_cpu / instances * 1e6;
  state.counters["rss_kib_per_instance"] = row.rss_kib / instances;
  state.counters["maps_per_instance"] = row.mappings / instances;
  Series()[series][instances] = row;
}

// Loads and tears down N × E instances; state.range(0) = instances, range(1) = E.
// Isolated environments preflight every module file the process has not
// initialised before (the default, one helper process per file) or not at all
// (`preflight = "reloads"`, a host that trusts its first load).
void LoadAndTearDown(benchmark::State& state, bool bundled, Shape shape,
                     Preflight preflight = Preflight::kAlways) {
  const int instances = static_cast<int>(state.range(0));
  const int environments = static_cast<int>(state.range(1));
  const int n = instances / environments;
  const TopologySpec spec = bundled ? BundledSpec(shape, n, environments)
                                    : IsolatedSpec(shape, n, environments, preflight);
  Row total;
  int rounds = 0;
  for (auto _ : state) {
    const long rss_before = ResidentKiB();
    const long maps_before = Mappings();
    Stopwatch watch;
    absl::StatusOr<std::unique_ptr<Topology>> topology = Topology::Create(spec);
    if (!topology.ok()) {
      state.SkipWithError(std::string(topology.status().message()).c_str());
      return;
    }
    const std::vector<absl::Status> errors = (*topology)->LoadEntries();
    const std::pair<double, double> load = watch.Lap();
    if (!errors.empty()) {
      state.SkipWithError(std::string(errors.front().message()).c_str());
      return;
    }
    const long rss_growth = ResidentKiB() - rss_before;
    const long maps_growth = Mappings() - maps_before;
    watch = Stopwatch();
    topology->reset();
    const std::pair<double, double> teardown = watch.Lap();
    total.Add(load, teardown, rss_growth, maps_growth);
    state.SetIterationTime(load.first + teardown.first);
    ++rounds;
  }
  if (rounds == 0) return;
  const Row row = total.PerRound(rounds);
  Report(
      state,
      fmt::format("{} {}, E={}{}", bundled ? "bundled" : "isolated", Name(shape), environments,
                  !bundled && preflight != Preflight::kAlways ? ", no first-load preflight" : ""),
      instances, row);
}

void BM_Isolated_chain(benchmark::State& state) { LoadAndTearDown(state, false, Shape::kChain); }
void BM_Isolated_fan(benchmark::State& state) { LoadAndTearDown(state, false, Shape::kFan); }
void BM_Isolated_chain_trusted(benchmark::State& state) {
  LoadAndTearDown(state, false, Shape::kChain, Preflight::kReloads);
}
void BM_Isolated_fan_trusted(benchmark::State& state) {
  LoadAndTearDown(state, false, Shape::kFan, Preflight::kReloads);
}
void BM_Bundled_fan(benchmark::State& state) { LoadAndTearDown(state, true, Shape::kFan); }

// The baseline: dlopen(RTLD_NOW | RTLD_LOCAL) then dlclose of as many distinct
// files, prebuilt copies of the same generated modules (made before timing,
// in the directory modgraph would use), with one dlsym of the descriptor each.
// With `kept_allocations` > 0 (the explanatory series, not a baseline), that
// many small heap blocks (48 to 200 bytes) are allocated after each dlopen and
// kept until after teardown, as a host's own records of each library are: the
// dynamic linker's link maps, which its walks visit one by one, then lie
// farther apart in the heap.
void PlainDlopen(benchmark::State& state, int kept_allocations) {
  const int instances = static_cast<int>(state.range(0));
  const int environments = static_cast<int>(state.range(1));
  const int n = instances / environments;
  const fs::path modules = ModuleDir(Shape::kChain, n);
  const fs::path dir = fs::path("/dev/shm") / fmt::format("modgraph-scale-{}", ::getpid());
  fs::create_directories(dir);
  std::vector<std::pair<fs::path, std::string>> files;
  for (int e = 0; e < environments; ++e) {
    for (int i = 0; i < n; ++i) {
      files.emplace_back(dir / fmt::format("e{}#{}.so", e, ModuleId(i)), AliasOf(i));
      fs::copy_file(modules / (ModuleId(i) + ".so"), files.back().first,
                    fs::copy_options::overwrite_existing);
    }
  }
  Row total;
  int rounds = 0;
  std::vector<void*> handles(files.size());
  std::vector<std::unique_ptr<char[]>> kept;
  for (auto _ : state) {
    kept.clear();
    kept.reserve(files.size() * static_cast<std::size_t>(kept_allocations));
    const long rss_before = ResidentKiB();
    const long maps_before = Mappings();
    Stopwatch watch;
    for (std::size_t k = 0; k < files.size(); ++k) {
      handles[k] = ::dlopen(files[k].first.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (handles[k] == nullptr) {
        state.SkipWithError(::dlerror());
        fs::remove_all(dir);
        return;
      }
      benchmark::DoNotOptimize(::dlsym(handles[k], files[k].second.c_str()));
      for (int a = 0; a < kept_allocations; ++a) {
        kept.emplace_back(new char[48 + 8 * static_cast<std::size_t>(a % 20)]);
        benchmark::DoNotOptimize(kept.back().get());
      }
    }
    const std::pair<double, double> load = watch.Lap();
    const long rss_growth = ResidentKiB() - rss_before;
    const long maps_growth = Mappings() - maps_before;
    watch = Stopwatch();
    for (auto it = handles.rbegin(); it != handles.rend(); ++it) ::dlclose(*it);
    const std::pair<double, double> teardown = watch.Lap();
    total.Add(load, teardown, rss_growth, maps_growth);
    state.SetIterationTime(load.first + teardown.first);
    ++rounds;
  }
  fs::remove_all(dir);
  if (rounds == 0) return;
  Report(state,
         kept_allocations == 0 ? fmt::format("plain dlopen, E={}", environments)
                               : fmt::format("plain dlopen, {} heap blocks kept per dlopen, E={}",
                                             kept_allocations, environments),
         instances, total.PerRound(rounds));
}
void BM_PlainDlopen(benchmark::State& state) { PlainDlopen(state, 0); }
void BM_PlainDlopen_kept5(benchmark::State& state) { PlainDlopen(state, 5); }
void BM_PlainDlopen_kept20(benchmark::State& state) { PlainDlopen(state, 20); }

// What `modgraph doctor` computes after loading: the report (findings, twins,
// providers) and its text, over a loaded bundled topology in which every
// instance has a finding (its one slot is on the module-level default).
void BM_DoctorReport(benchmark::State& state) {
  const int instances = static_cast<int>(state.range(0));
  const int environments = static_cast<int>(state.range(1));
  absl::StatusOr<std::unique_ptr<Topology>> topology =
      Topology::Create(BundledSpec(Shape::kFan, instances / environments, environments));
  if (!topology.ok() || !(*topology)->LoadEntries().empty()) {
    state.SkipWithError("cannot load the topology");
    return;
  }
  for (auto _ : state) {
    const report::Report report = report::BuildReport(**topology, {});
    benchmark::DoNotOptimize(report::RenderText(report, {.color = false}).size());
  }
  state.counters["instances"] = instances;
}

// Sizes (instances, environments): isolated series double from 1,000 to 8,000
// instances, bundled and doctor from 2,000 to 16,000; a smoke run
// (MODGRAPH_BENCH_SMOKE set, as scripts/bench_smoke.sh does) uses 64 and 128.
void RegisterAll(bool smoke) {
  const std::vector<int> isolated =
      smoke ? std::vector<int>{64, 128} : std::vector<int>{1000, 2000, 4000, 8000};
  const std::vector<int> bundled =
      smoke ? std::vector<int>{64, 128} : std::vector<int>{2000, 4000, 8000, 16000};
  const auto add = [](const char* name, void (*fn)(benchmark::State&),
                      const std::vector<int>& sizes, bool manual_time) {
    benchmark::internal::Benchmark* b = benchmark::RegisterBenchmark(name, fn);
    for (int instances : sizes) b->Args({instances, 8});
    b->Iterations(1)->Unit(benchmark::kMillisecond);
    if (manual_time) b->UseManualTime();
  };
  add("BM_PlainDlopen", &BM_PlainDlopen, isolated, true);
  add("BM_PlainDlopen_kept5", &BM_PlainDlopen_kept5, isolated, true);
  add("BM_PlainDlopen_kept20", &BM_PlainDlopen_kept20, isolated, true);
  add("BM_Isolated_chain", &BM_Isolated_chain, isolated, true);
  add("BM_Isolated_fan", &BM_Isolated_fan, isolated, true);
  add("BM_Isolated_chain_trusted", &BM_Isolated_chain_trusted, isolated, true);
  add("BM_Isolated_fan_trusted", &BM_Isolated_fan_trusted, isolated, true);
  add("BM_Bundled_fan", &BM_Bundled_fan, bundled, true);
  add("BM_DoctorReport", &BM_DoctorReport, bundled, false);
}

// One table per series: per-instance figures and the growth exponent of the
// total (load + teardown) from the previous size.
void PrintSeries() {
  for (const auto& [name, rows] : Series()) {
    std::printf("\n%s\n%10s %14s %18s %14s %10s %10s\n", name.c_str(), "instances", "load us/inst",
                "teardown us/inst", "RSS KiB/inst", "maps/inst", "exponent");
    const Row* previous = nullptr;
    int previous_n = 0;
    for (const auto& [n, row] : rows) {
      std::string exponent = "-";
      if (previous != nullptr) {
        const double ratio = (row.load + row.teardown) / (previous->load + previous->teardown);
        exponent = fmt::format("{:.2f}", std::log(ratio) / std::log(double(n) / previous_n));
      }
      std::printf("%10d %10.1f [%7.1f] %12.1f [%7.1f] %14.1f %10.2f %10s\n", n, row.load / n * 1e6,
                  row.load_cpu / n * 1e6, row.teardown / n * 1e6, row.teardown_cpu / n * 1e6,
                  row.rss_kib / n, row.mappings / n, exponent.c_str());
      previous = &row;
      previous_n = n;
    }
  }
}

}  // namespace
}  // namespace modgraph

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  modgraph::RegisterAll(std::getenv("MODGRAPH_BENCH_SMOKE") != nullptr);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  modgraph::PrintSeries();
  return 0;
}
