// modgraph serve: the plugin server on loopback — the example's pages rendered
// through the topology's pages environment, one unified request scope each.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <chrono>
#include <memory>
#include <string>

#include "cli_common.h"
#include "command.h"
#include "modgraph/environments/watcher.h"
#include "modgraph/registry/sentinel.h"
#include "modgraph/server/http_server.h"
#include "modgraph/server/page_host.h"
#include "modgraph/testing/testkit.h"

namespace modgraph::tools {
namespace {

struct ServeOptions {
  TopologyOptions topology;
  std::string mode;
  int port = 0;
  int threads = 1;
  bool no_context = false;
  int barrier = 0;
  bool watch = false;
  int debounce_ms = 100;
  bool audit = false;
};

int RunServe(const ServeOptions& options) {
  if (options.audit && options.watch) {
    PrintError("--audit and --watch cannot be combined",
               "the audit watches the module copies loaded at start; a reload replaces them");
    return kExitError;
  }
  if (options.audit && options.threads != 1) {
    PrintError(fmt::format("--audit needs one io thread, not --threads {}", options.threads),
               "drop --threads: the audit attributes each scheduling point to one request");
    return kExitError;
  }
  TopologyOptions topology_options = options.topology;
  if (!options.mode.empty()) topology_options.topology = options.mode;
  absl::StatusOr<LoadedTopology> loaded = LoadTopology(topology_options);
  if (!loaded.ok()) {
    PrintError(loaded.status());
    return kExitError;
  }
  for (const absl::Status& error : loaded->errors) PrintError(error);
  absl::StatusOr<std::unique_ptr<server::PageHost>> pages =
      server::PageHost::Create(*loaded->topology);
  if (!pages.ok()) {
    PrintError(pages.status(),
               "add a [server] table with pages_environment and pages to the topology");
    return kExitError;
  }
  // --barrier N: each request waits until N requests arrived — a reproducible
  // burst for demonstrations; otherwise pages yield once (or ?delay_ms=N).
  std::shared_ptr<testing::ArrivalBarrier> barrier;
  if (options.barrier > 0) barrier = std::make_shared<testing::ArrivalBarrier>(options.barrier);
  server::PageHost::WorkFactory work = server::PageHost::YieldOnce;
  if (barrier) work = [barrier](const server::Request&) { return barrier->Work(); };
  // --audit: every resumption of a page is a scheduling point of the
  // module-state audit (one io thread, so slices do not overlap).
  std::unique_ptr<testing::ModuleStateAudit> audit;
  if (options.audit) {
    absl::StatusOr<std::unique_ptr<testing::ModuleStateAudit>> started =
        testing::ModuleStateAudit::Start(*loaded->topology);
    if (!started.ok()) {
      PrintError(started.status());
      return kExitError;
    }
    audit = *std::move(started);
  }
  server::Router router = audit ? testing::MakeAuditedRouter(**pages, std::move(work), *audit)
                                : (*pages)->MakeRouter(std::move(work));
  absl::StatusOr<std::unique_ptr<server::HttpServer>> server =
      server::HttpServer::Start({.port = static_cast<std::uint16_t>(options.port),
                                 .threads = options.threads,
                                 .context_enabled = !options.no_context},
                                std::move(router));
  if (!server.ok()) {
    PrintError(server.status(), "pick another --port (0 picks a free one)");
    return kExitError;
  }
  Topology& topology = *loaded->topology;
  // --watch: rebuilt modules are reloaded while the server serves; each request
  // finds its page's current instance (PageHost), so none calls a closed copy.
  std::unique_ptr<ModuleWatcher> watcher;
  if (options.watch) {
    absl::StatusOr<std::unique_ptr<ModuleWatcher>> started =
        ModuleWatcher::Start(topology, {.debounce = std::chrono::milliseconds(options.debounce_ms),
                                        .on_reload = [](const ReloadReport& report) {
                                          fmt::print("{}", FormatReloadReport(report));
                                          std::fflush(stdout);
                                        }});
    if (!started.ok()) {
      PrintError(started.status(), "serve without --watch, or fix the module roots");
      return kExitError;
    }
    watcher = *std::move(started);
  }
  absl::Status served = server::ServeUntilSignal(**server, [&] {
    fmt::print("modgraph: serving topology {} on http://127.0.0.1:{}/ ({} thread(s){}{})\n",
               topology.spec().name, (*server)->port(), options.threads,
               options.no_context ? ", request context off" : "",
               audit ? ", module-state audit on" : "");
    for (const std::string& route : (*pages)->routes()) {
      fmt::print("  http://127.0.0.1:{}{}\n", (*server)->port(), route);
    }
    if (watcher != nullptr) {
      std::vector<std::string> dirs;
      for (const auto& dir : watcher->directories()) dirs.push_back(dir.string());
      fmt::print("watching {} for rebuilt modules\n", fmt::join(dirs, ", "));
    }
    fmt::print("Ctrl-C stops.\n");
    std::fflush(stdout);
  });
  watcher.reset();  // no reload after this point
  const Sentinel& sentinel = Sentinel::Global();
  fmt::print(
      "modgraph: stopped after {} request(s); {} fallback hit(s), {} cross-request leak(s), {} "
      "lost request context(s)\n",
      (*server)->requests_started(), sentinel.fallback_hit_count(), sentinel.leak_count(),
      sentinel.lost_context_count());
  constexpr std::size_t kShown = 5;
  const std::vector<LostContext> lost = sentinel.lost_contexts();
  for (std::size_t i = 0; i < lost.size() && i < kShown; ++i) {
    fmt::print("  lost context: {}\n", LostContextMessage(lost[i]));
  }
  if (lost.size() > kShown) fmt::print("  … {} more\n", lost.size() - kShown);
  if (audit) {
    audit->Checkpoint(0);
    const std::vector<testing::ModuleStateFinding> findings = audit->Findings();
    const testing::ModuleStateAudit::Stats stats = audit->stats();
    fmt::print(
        "modgraph: module state written by two or more requests: {} (audited {} module copies, "
        "{} bytes, at {} scheduling points)\n",
        findings.size(), stats.copies, stats.bytes_watched, stats.checkpoints);
    for (const testing::ModuleStateFinding& finding : findings) {
      fmt::print("  {}\n", testing::Describe(finding));
    }
  }
  if (!served.ok()) {
    PrintError(served);
    return kExitError;
  }
  return kExitClean;
}

}  // namespace

void AddServeCommand(CLI::App& app, int& exit_code) {
  auto options = std::make_shared<ServeOptions>();
  CLI::App* command = app.add_subcommand(
      "serve", "Serve the topology's pages over loopback HTTP until SIGINT or SIGTERM");
  AddTopologyOptions(*command, options->topology);
  command->add_option("-m,--mode", options->mode, "dev or prod: the built-in topology of that name")
      ->check(CLI::IsMember({"dev", "prod"}))
      ->excludes(command->get_option("--topology"));
  command->add_option("--port", options->port, "port on 127.0.0.1; 0 picks a free one")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  command->add_option("--threads", options->threads, "io_context threads (1 serves like Node)")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  command->add_flag("--no-context", options->no_context,
                    "run handlers without a request scope (benchmarks only: pages then share "
                    "module-level state)");
  command->add_flag(
      "--audit", options->audit,
      "module-state audit: at every scheduling point compare each instance's writable "
      "memory and, when stopped, report state written by two or more requests (needs "
      "--threads 1; not with --watch)");
  command
      ->add_option("--barrier", options->barrier,
                   "every request waits until this many requests arrived (a reproducible "
                   "concurrent burst)")
      ->check(CLI::Range(0, 100000));
  command->add_flag("-w,--watch", options->watch,
                    "reload a module and its importers, in every environment that has it, when "
                    "its library in a module root is rebuilt; print what was reloaded and the "
                    "registry's findings after each reload. A broken build is reported and the "
                    "old copies keep serving");
  command
      ->add_option("--debounce-ms", options->debounce_ms,
                   "with --watch: wait until the module roots were quiet this long before "
                   "reloading")
      ->check(CLI::Range(0, 60000))
      ->capture_default_str();
  command->footer(
      "Exit status: 0 after a graceful stop (SIGINT or SIGTERM: in-flight requests complete), 2 "
      "error. Every library is preflighted (loaded once in a child process) before it is "
      "loaded, so a module whose static initialiser throws is an error, not a crash.");
  command->callback([options, &exit_code] { exit_code = RunServe(*options); });
}

}  // namespace modgraph::tools
