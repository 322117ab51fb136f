// modgraph serve: the plugin server on loopback — the example's pages rendered
// through the topology's pages environment, one unified request scope each.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <pthread.h>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "cli_common.h"
#include "command.h"
#include "modgraph/environments/watcher.h"
#include "modgraph/pages/async_work.h"
#include "modgraph/pages/page_host.h"
#include "modgraph/registry/sentinel.h"
#include "modgraph/server/arrival_barrier.h"
#include "modgraph/server/http_server.h"
#include "modgraph/server/page_routes.h"
#include "modgraph/testing/testkit.h"

namespace modgraph::tools {
namespace {

// Exit status of a stop that had to cancel or abandon in-flight requests.
constexpr int kExitCutShort = 1;

struct ServeOptions {
  TopologyOptions topology;
  std::string mode;
  int port = 0;
  int threads = 1;
  int busy_poll_us = 0;
  bool no_context = false;
  int barrier = 0;
  int work_ms = -1;  // --work-ms; -1: the topology's [server] work_ms
  bool watch = false;
  int debounce_ms = 100;
  bool audit = false;
  server::HttpServer::Options limits;  // the timeouts and the connection cap
};

// "75s", "500ms", "2m": the shortest exact spelling of a duration.
std::string FormatDuration(std::chrono::milliseconds d) {
  const std::int64_t ms = d.count();
  if (ms % 60'000 == 0) return fmt::format("{}m", ms / 60'000);
  if (ms % 1000 == 0) return fmt::format("{}s", ms / 1000);
  return fmt::format("{}ms", ms);
}

// --<flag> DURATION: a whole number with a unit (ms, s or m), from 1 ms to 1 day.
void AddDurationOption(CLI::App& command, const std::string& flag, std::chrono::milliseconds& value,
                       const std::string& help) {
  static const std::map<std::string, std::int64_t> kUnits = {{"ms", 1}, {"s", 1000}, {"m", 60'000}};
  command
      .add_option_function<std::int64_t>(
          flag, [&value](std::int64_t ms) { value = std::chrono::milliseconds(ms); }, help)
      ->transform(CLI::AsNumberWithUnit(kUnits, CLI::AsNumberWithUnit::UNIT_REQUIRED, "UNIT"))
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{86'400'000}))
      ->type_name("DURATION")
      ->default_str(FormatDuration(value));
}

int RunServe(const ServeOptions& options) {
  // Until ServeUntilSignal takes over, SIGINT/SIGTERM wait: a signal during
  // loading then stops the server as soon as it serves (copies removed, exit 0)
  // instead of killing it half-loaded. Threads started from here on (io
  // threads, threads modules start) inherit the block, so signals reach the
  // serving thread.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
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
  absl::StatusOr<std::unique_ptr<pages::PageHost>> host =
      pages::PageHost::Create(*loaded->topology);
  if (!host.ok()) {
    PrintError(host.status(),
               "add a [server] table with pages_environment and pages to the topology");
    return kExitError;
  }
  // --barrier N: each request waits until N requests arrived — a reproducible
  // burst for demonstrations; otherwise pages await the topology's simulated data
  // fetch ([server] work_ms, or ?delay_ms=N).
  std::shared_ptr<server::ArrivalBarrier> barrier;
  if (options.barrier > 0) barrier = std::make_shared<server::ArrivalBarrier>(options.barrier);
  server::WorkFactory work = server::TopologyWork(**host);
  if (options.work_ms >= 0) {
    work = [work_ms = options.work_ms](const server::Request& request) {
      return pages::TopologyWork(request.query, work_ms);
    };
  }
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
  server::Router router = audit ? testing::MakeAuditedRouter(**host, std::move(work), *audit)
                                : server::MakePageRouter(**host, std::move(work));
  server::HttpServer::Options server_options = options.limits;
  server_options.port = static_cast<std::uint16_t>(options.port);
  server_options.threads = options.threads;
  server_options.busy_poll = std::chrono::microseconds(options.busy_poll_us);
  server_options.context_enabled = !options.no_context;
  absl::StatusOr<std::unique_ptr<server::HttpServer>> server =
      server::HttpServer::Start(server_options, std::move(router));
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
    fmt::print("modgraph: serving topology {} on http://127.0.0.1:{}/ ({} thread(s){}{}{})\n",
               topology.spec().name, (*server)->port(), options.threads,
               options.busy_poll_us > 0
                   ? fmt::format(", busy-polling {} µs before blocking", options.busy_poll_us)
                   : "",
               options.no_context ? ", request context off" : "",
               audit ? ", module-state audit on" : "");
    for (const std::string& route : (*host)->routes()) {
      fmt::print("  http://127.0.0.1:{}{}\n", (*server)->port(), route);
    }
    if (barrier) {
      fmt::print("pages wait until {} requests arrived (--barrier)\n", options.barrier);
    } else if (options.work_ms >= 0) {
      fmt::print("pages await a simulated data fetch of {} ms (--work-ms)\n", options.work_ms);
    } else {
      fmt::print("pages await a simulated data fetch of {} ms ([server] work_ms)\n",
                 (*host)->work_ms());
    }
    if (watcher != nullptr) {
      std::vector<std::string> dirs;
      for (const auto& dir : watcher->directories()) dirs.push_back(dir.string());
      fmt::print("watching {} for rebuilt modules\n", fmt::join(dirs, ", "));
    }
    const server::HttpServer::Options& o = (*server)->options();
    fmt::print(
        "limits: {} connections, idle {}, headers {}, body {}, write {}, drain {} after a stop\n",
        (*server)->connection_limit(), FormatDuration(o.idle_timeout),
        FormatDuration(o.header_timeout), FormatDuration(o.body_timeout),
        FormatDuration(o.write_timeout), FormatDuration(o.drain_timeout));
    fmt::print("Ctrl-C stops. (A second Ctrl-C stops at once.)\n");
    std::fflush(stdout);
  });
  watcher.reset();  // no reload after this point
  const Sentinel& sentinel = Sentinel::Global();
  const std::uint64_t cancelled = (*server)->requests_cancelled();
  const std::uint64_t abandoned = (*server)->requests_abandoned();
  std::string cut_short;
  if (cancelled > 0) cut_short += fmt::format("; {} cancelled at the drain deadline", cancelled);
  if (abandoned > 0) cut_short += fmt::format("; {} abandoned", abandoned);
  fmt::print(
      "modgraph: stopped after {} request(s); {} fallback hit(s), {} cross-request leak(s), {} "
      "lost request context(s){}\n",
      (*server)->requests_started(), sentinel.fallback_hit_count(), sentinel.leak_count(),
      sentinel.lost_context_count(), cut_short);
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
  return cut_short.empty() ? kExitClean : kExitCutShort;
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
  command
      ->add_option("--busy-poll-us", options->busy_poll_us,
                   "an io thread polls this many microseconds after its last event before it "
                   "blocks, yielding the CPU between polls: CPU spent to save a wake-up per "
                   "request (docs/server.md)")
      ->check(CLI::Range(0, static_cast<int>(server::HttpServer::kMaxBusyPoll.count())))
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
      ->add_option("--work-ms", options->work_ms,
                   "each page's simulated data fetch in milliseconds, instead of the topology's "
                   "[server] work_ms (0 yields once: what the benchmarks serve with)")
      ->check(CLI::Range(0, pages::kMaxDelayMs));
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
  command
      ->add_option("--max-connections", options->limits.max_connections,
                   "open connections at most; at the cap the longest-idle connection is closed "
                   "for a new one, or the new one gets 503 (lowered to fit RLIMIT_NOFILE)")
      ->check(CLI::Range(1, 1'000'000))
      ->capture_default_str();
  AddDurationOption(*command, "--idle-timeout", options->limits.idle_timeout,
                    "close a keep-alive connection idle this long (e.g. 75s, 500ms)");
  AddDurationOption(*command, "--header-timeout", options->limits.header_timeout,
                    "a request line and headers must arrive within this, else 408 and close");
  AddDurationOption(*command, "--body-timeout", options->limits.body_timeout,
                    "a request body must arrive within this, else 408 and close");
  AddDurationOption(*command, "--write-timeout", options->limits.write_timeout,
                    "close a connection whose response is not written within this");
  AddDurationOption(*command, "--drain-timeout", options->limits.drain_timeout,
                    "after SIGINT/SIGTERM, in-flight requests still running this long are "
                    "cancelled (503); a second signal stops at once");
  command->footer(
      "Each page awaits a simulated data fetch of the topology's [server] work_ms milliseconds "
      "(default 5; 0 yields once), or of --work-ms; ?delay_ms= overrides it per request, bounded "
      "to 0..60000.\n"
      "Limits: docs/server.md compares the defaults with nginx, Envoy and Node.\n"
      "Exit status: 0 after a graceful stop (SIGINT or SIGTERM: in-flight requests complete), 1 "
      "when requests had to be cancelled at the drain deadline or abandoned by a second signal, "
      "2 error. Every library is preflighted (loaded once in a child process) before it is "
      "loaded, so a module whose static initialiser throws is an error, not a crash.");
  command->callback([options, &exit_code] { exit_code = RunServe(*options); });
}

}  // namespace modgraph::tools
