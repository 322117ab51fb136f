// modgraph/testing/testkit.h — reproduce dev-vs-prod divergence on demand.
//
// FireConcurrent() sends N in-process requests at a loaded topology's pages, all
// concurrently on one io_context thread, with an interleaving chosen by a seed:
// requests start in a seeded order, each runs until its page awaits its
// asynchronous work, and once all of them are parked there they are released one
// by one in another seeded order. Every request writes its state before any
// request reads — the interleaving that exposes shared module-level state — and
// the same seed gives the same interleaving and the same result. At every
// scheduling point the module-state audit (module_state_audit.h) attributes
// what changed in each instance's writable segments to the request that ran:
// state two requests wrote is reported even when no response shows it.
//
//   auto dev = LoadForTest(example::DevTopology(dir), Policy::kWarn);
//   RunReport run = *FireConcurrent(*dev, Targets("/concurrent-head?id={}", 15), {.seed = 7});
//   EXPECT_THAT(run, Not(IsIsolated()));
//   EXPECT_THAT(run, HasCrossRequestLeak());
//   Divergences diff = *RunParity(*dev, *prod, targets, {.seed = 7});
//   std::vector<std::string> smallest = *MinimiseLeak(*dev, targets, {.seed = 7});
//
// The sentinel is process-wide: a run clears its recorded events first, and
// reports the events of that run only. Do not run two kits at once.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "modgraph/environments/topology.h"
#include "modgraph/registry/sentinel.h"
#include "modgraph/testing/module_state_audit.h"

namespace modgraph::testing {

struct TestResponse {
  std::string target;  // e.g. "/concurrent-head?id=3"
  std::uint64_t request_id = 0;
  int status = 0;
  std::string body;
};

struct RunReport {
  std::uint64_t seed = 0;
  std::vector<TestResponse> responses;     // in the order of the targets
  std::vector<std::size_t> start_order;    // indexes into responses
  std::vector<std::size_t> release_order;  // indexes into responses
  std::vector<FallbackHit> fallback_hits;
  std::vector<CrossRequestLeak> leaks;
  // Providers' accessors that ran without a request scope during the run.
  std::vector<LostContext> lost_contexts;
  // Module state written by two or more of the run's requests (RunOptions::
  // audit_module_state), and what the audit watched.
  std::vector<ModuleStateFinding> module_state;
  ModuleStateAudit::Stats audit;

  // Index of the response with this request id, or -1.
  int IndexOf(std::uint64_t request_id) const;
  // Responses whose body mentions another request's marker (see IsIsolated).
  std::vector<std::size_t> ContaminatedResponses() const;
  // Responses whose status is not 200 (404 for a page the topology does not
  // serve, 500 for a request the strict policy failed, ...). Their bodies say
  // nothing about isolation: a run with any of them is no all-clear.
  std::vector<std::size_t> NonOkResponses() const;
};

struct RunOptions {
  std::uint64_t seed = 1;
  // Audit every module instance's writable state at each scheduling point
  // (module_state_audit.h); `track_writes` also catches writes that store the
  // value already there.
  bool audit_module_state = true;
  bool track_writes = true;
};

// `count` targets made by replacing "{}" in `pattern` with 0..count-1.
std::vector<std::string> Targets(std::string_view pattern, int count);

// Creates and loads a topology with every environment on `policy`; errors if any
// entry fails to load.
absl::StatusOr<std::unique_ptr<Topology>> LoadForTest(TopologySpec spec, Policy policy);

// The routes the topology's pages serve (its [server] spec), in spec order.
// Errors as pages::PageHost::Create (no pages environment, a page that is not a page).
absl::StatusOr<std::vector<std::string>> ServedRoutes(Topology& topology);

// OK when the path of every target is a route the topology serves; otherwise
// NotFound naming the first path that is not served, the pages environment
// and every route it does serve.
absl::Status CheckTargetsServed(Topology& topology, std::span<const std::string> targets);

// Fires `targets` concurrently at the topology's pages (its [server] spec).
absl::StatusOr<RunReport> FireConcurrent(Topology& topology, std::span<const std::string> targets,
                                         RunOptions options = {});

// One target whose dev and prod responses differ.
struct Divergence {
  std::string target;
  int dev_status = 0, prod_status = 0;
  std::string dev_body, prod_body;
};
struct ParityReport {
  RunReport dev, prod;
  std::vector<Divergence> divergences;
};
// Runs the same targets, same seed, against both topologies.
absl::StatusOr<ParityReport> RunParity(Topology& dev, Topology& prod,
                                       std::span<const std::string> targets,
                                       RunOptions options = {});

// True if the run shows a leak: a cross-request leak reported by the sentinel or
// a response carrying another request's marker.
bool Leaks(const RunReport& run);

// The smallest subset of `targets` (in their original order) whose run, with
// the same seed, still leaks; empty if the full run does not leak. Delta
// debugging (ddmin): O(n log n) runs in the usual case.
absl::StatusOr<std::vector<std::string>> MinimiseLeak(Topology& topology,
                                                      std::span<const std::string> targets,
                                                      RunOptions options = {});

// The marker a target's response must mention and no other response may: the
// value of its `id` query parameter ("id=7" → "req-7"), or "" when it has none.
std::string MarkerOf(std::string_view target);

}  // namespace modgraph::testing
