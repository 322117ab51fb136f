// modgraph/testing/matchers.h — GoogleTest matchers for test kit runs.
//
//   EXPECT_THAT(run, IsIsolated());            // each response only its own data
//   EXPECT_THAT(run, HasFallbackHits("ssr#head"));
//   EXPECT_THAT(run, HasCrossRequestLeak());
//   EXPECT_THAT(run, Not(HasLostContext("ssr#head")));
//   EXPECT_THAT(run, WritesModuleState("ssr#head", "g_ssr_head_children"));
//   EXPECT_THAT(parity, HasNoDivergences());
#pragma once

#include <gmock/gmock.h>

#include <algorithm>
#include <string>

#include "modgraph/testing/testkit.h"

namespace modgraph::testing {

// Every response mentions its own marker ("req-N" for ?id=N), no other
// request's marker, the sentinel saw no cross-request leak, and the
// module-state audit saw no module state written by two requests.
MATCHER(IsIsolated, "has every response carrying only its own request's data") {
  const RunReport& run = arg;
  bool isolated = run.leaks.empty() && run.module_state.empty();
  for (const ModuleStateFinding& finding : run.module_state) {
    *result_listener << "\n  " << Describe(finding);
  }
  for (std::size_t i : run.ContaminatedResponses()) {
    *result_listener << "\n  response " << i << " (" << run.responses[i].target
                     << ") carries another request's data";
    isolated = false;
  }
  for (std::size_t i = 0; i < run.responses.size(); ++i) {
    const std::string marker = MarkerOf(run.responses[i].target);
    if (!marker.empty() && run.responses[i].body.find(marker) == std::string::npos) {
      *result_listener << "\n  response " << i << " lacks its own marker " << marker;
      isolated = false;
    }
  }
  if (!run.leaks.empty()) *result_listener << "\n  " << run.leaks.size() << " leak(s) reported";
  return isolated;
}

// The sentinel recorded at least one fallback hit (on `instance`, if given).
MATCHER_P(HasFallbackHits, instance, "has fallback hits on " + std::string(instance)) {
  for (const FallbackHit& hit : arg.fallback_hits) {
    if (std::string(instance).empty() || hit.instance == instance) return true;
  }
  *result_listener << "with " << arg.fallback_hits.size() << " fallback hit(s) elsewhere";
  return false;
}

MATCHER(HasCrossRequestLeak, "has a cross-request leak reported by the sentinel") {
  if (!arg.leaks.empty()) {
    const CrossRequestLeak& leak = arg.leaks.front();
    *result_listener << "first: " << leak.instance << " slot " << leak.slot << " between requests "
                     << leak.first_request << " and " << leak.second_request;
    return true;
  }
  return false;
}

// The sentinel recorded a lost context: a provider's accessor for `instance`'s
// slots (any instance if empty) ran with no request scope during the run.
MATCHER_P(HasLostContext, instance, "has a lost request context on " + std::string(instance)) {
  for (const LostContext& lost : arg.lost_contexts) {
    if (std::string(instance).empty() || lost.instance == instance) return true;
  }
  *result_listener << "with " << arg.lost_contexts.size() << " lost context(s) elsewhere";
  return false;
}

// The module-state audit found state of `instance` whose symbol contains
// `symbol` written by two or more requests.
MATCHER_P2(WritesModuleState, instance, symbol,
           "has module state " + std::string(symbol) + " of " + std::string(instance) +
               " written by two or more requests") {
  for (const ModuleStateFinding& finding : arg.module_state) {
    const bool in_instance = std::find(finding.instances.begin(), finding.instances.end(),
                                       std::string(instance)) != finding.instances.end();
    if (in_instance && finding.symbol.find(symbol) != std::string::npos) return true;
  }
  *result_listener << "with " << arg.module_state.size() << " module-state finding(s):";
  for (const ModuleStateFinding& finding : arg.module_state) {
    *result_listener << "\n  " << Describe(finding);
  }
  return false;
}

MATCHER(HasNoDivergences, "has dev and prod agreeing on every response") {
  for (const Divergence& d : arg.divergences) {
    *result_listener << "\n  " << d.target << ": dev " << d.dev_status << " " << d.dev_body
                     << "\n    prod " << d.prod_status << " " << d.prod_body;
  }
  return arg.divergences.empty();
}

}  // namespace modgraph::testing
