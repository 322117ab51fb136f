// modgraph probe: fire N concurrent in-process requests with a seed; print the
// fallback hits, the cross-request leaks and the smallest set of requests that
// still reproduces the leak.
#include <fmt/format.h>

#include <map>
#include <memory>
#include <set>
#include <string>

#include "cli_common.h"
#include "command.h"
#include "modgraph/testing/testkit.h"
#include "probe_common.h"

namespace modgraph::tools {
namespace {

struct ProbeOptions {
  TopologyOptions topology;
  RequestOptions requests;
  bool minimise = true;
};

int RunProbe(const ProbeOptions& options) {
  absl::StatusOr<LoadedTopology> loaded = LoadTopology(options.topology);
  if (!loaded.ok()) {
    PrintError(loaded.status());
    return kExitError;
  }
  for (const absl::Status& error : loaded->errors) PrintError(error);
  Topology& topology = *loaded->topology;
  const std::vector<std::string> targets = RequestTargets(options.requests);
  if (!CheckPageServed(topology, targets)) return kExitError;
  absl::StatusOr<testing::RunReport> run =
      testing::FireConcurrent(topology, targets, {.seed = options.requests.seed});
  if (!run.ok()) {
    PrintError(run.status());
    return kExitError;
  }
  fmt::print("probe: {} concurrent request(s) to {} on topology {} (seed {})\n", targets.size(),
             options.requests.page, topology.spec().name, options.requests.seed);

  // Fallback hits per instance and slot.
  std::map<std::string, int> hits;
  for (const FallbackHit& hit : run->fallback_hits) {
    ++hits[fmt::format("{} slot {}", hit.instance, hit.slot)];
  }
  fmt::print("fallback hits: {}\n", Sentinel::Global().fallback_hit_count());
  for (const auto& [where, count] : hits) fmt::print("  {}: {}\n", where, count);

  fmt::print("cross-request leaks: {}\n", Sentinel::Global().leak_count());
  constexpr std::size_t kShown = 5;
  for (std::size_t i = 0; i < run->leaks.size() && i < kShown; ++i) {
    const CrossRequestLeak& leak = run->leaks[i];
    fmt::print("  {} slot {}: request {} ({}) then request {} ({})\n", leak.instance, leak.slot,
               leak.first_request, targets[run->IndexOf(leak.first_request)], leak.second_request,
               targets[run->IndexOf(leak.second_request)]);
  }
  if (run->leaks.size() > kShown) fmt::print("  … {} more\n", run->leaks.size() - kShown);

  // Lost contexts per instance, slot and provider (thread ids differ from run to
  // run: only their number is printed, so the same seed gives the same output).
  struct LostGroup {
    int count = 0;
    std::set<std::uint64_t> threads;
  };
  std::map<std::string, LostGroup> lost;
  for (const LostContext& event : run->lost_contexts) {
    LostGroup& group =
        lost[event.instance.empty() ? fmt::format("{} accessor {}", event.library, event.slot)
             : event.provider_instance.empty()
                 ? fmt::format("{} accessor {}", event.instance, event.slot)
                 : fmt::format("{} slot {} through {}", event.instance, event.slot,
                               event.provider_instance)];
    ++group.count;
    group.threads.insert(event.thread_id);
  }
  fmt::print("lost request contexts: {}\n", Sentinel::Global().lost_context_count());
  for (const auto& [where, group] : lost) {
    fmt::print("  {}: {} call(s) with no request scope, on {} thread(s)\n", where, group.count,
               group.threads.size());
  }
  if (!lost.empty()) {
    fmt::print(
        "  fix: carry the request context to that work: modgraph::bind(fn) for a callback, "
        "modgraph::submit(pool, fn) for a pool task, modgraph::spawn_thread(fn) for a thread\n");
  }

  const std::vector<std::size_t> contaminated = run->ContaminatedResponses();
  fmt::print("responses carrying another request's data: {} of {}\n", contaminated.size(),
             targets.size());
  for (std::size_t i = 0; i < contaminated.size() && i < kShown; ++i) {
    const testing::TestResponse& response = run->responses[contaminated[i]];
    fmt::print("  {} got {}\n", response.target, Excerpt(response.body));
  }

  const std::size_t non_ok = PrintNonOkResponses(*run);
  const std::size_t module_state = PrintModuleStateFindings(*run);

  if (!testing::Leaks(*run)) {
    if (non_ok != 0) {
      fmt::print("no verdict on isolation: {} of {} response(s) were not 200\n", non_ok,
                 targets.size());
      return kExitFindings;
    }
    if (!lost.empty() || module_state != 0) {
      fmt::print("no response carried another request's data, but {}\n",
                 !lost.empty()
                     ? "accessors ran without their request's context and used module-level "
                       "state"
                     : "module state was written by more than one request");
      return kExitFindings;
    }
    fmt::print("no leak: every response carried only its own request's data\n");
    return hits.empty() ? kExitClean : kExitFindings;
  }
  if (options.minimise) {
    absl::StatusOr<std::vector<std::string>> smallest =
        testing::MinimiseLeak(topology, targets, {.seed = options.requests.seed});
    if (!smallest.ok()) {
      PrintError(smallest.status());
      return kExitError;
    }
    fmt::print("minimal reproducing set ({} request(s), seed {}):\n", smallest->size(),
               options.requests.seed);
    for (const std::string& target : *smallest) fmt::print("  {}\n", target);
  }
  return kExitFindings;
}

}  // namespace

void AddProbeCommand(CLI::App& app, int& exit_code) {
  auto options = std::make_shared<ProbeOptions>();
  CLI::App* command = app.add_subcommand(
      "probe",
      "Fire N concurrent in-process requests with a seeded interleaving; print fallback hits, "
      "cross-request leaks, lost request contexts, module state written by two requests and "
      "the minimal reproducing set of requests");
  AddTopologyOptions(*command, options->topology);
  AddRequestOptions(*command, options->requests);
  command->add_flag("!--no-minimise", options->minimise, "skip minimising a leaking run");
  command->footer(
      "The module-state audit compares every instance's writable memory at each scheduling "
      "point and reports state two requests wrote. Exit status: 0 no fallback hit, no leak, no "
      "lost context, no module state written by two requests and every response 200; 1 "
      "any of those, or responses other than 200 (e.g. 500 under --policy "
      "strict); 2 error, including a --page "
      "the topology does not serve (the message lists the routes it serves).");
  command->callback([options, &exit_code] { exit_code = RunProbe(*options); });
}

}  // namespace modgraph::tools
