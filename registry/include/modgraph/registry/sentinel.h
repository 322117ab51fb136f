// sentinel.h — run-time detection of fallback hits and cross-request leaks.
//
// Every accessor slot of every instance is watched. When a slot still holding
// its module-level default is called inside a request scope, that is a
// *fallback hit*: the request is using state shared by every request on that
// instance. When two different requests go through the same module-level
// fallback state, that is a *cross-request leak*; the report names both request
// ids and the slot they shared.
//
// The check sits in Slot::operator() (slot.h): with a provider registered it is
// one predictable branch; only the fallback path calls in here. The sentinel is
// process-wide and lives in modgraph_core, like the context anchor, so every
// module copy reports to the same one.
//
//   Sentinel& sentinel = Sentinel::Global();
//   ... run requests ...
//   for (const CrossRequestLeak& leak : sentinel.leaks()) print(leak);
#ifndef MODGRAPH_REGISTRY_SENTINEL_H_
#define MODGRAPH_REGISTRY_SENTINEL_H_

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "modgraph/registry/policy.h"

namespace modgraph {

// Where a watched slot lives.
struct SlotSite {
  std::string environment;
  std::string module;
  std::string instance;  // "env#module"
  std::string slot;
  Policy policy = Policy::kWarn;
  // Providers that would register this slot, e.g. {"head-state"}; may be empty.
  std::vector<std::string> fixing_providers;
};

struct FallbackHit {
  std::string environment, module, instance, slot;
  std::uint64_t request_id = 0;
};

struct CrossRequestLeak {
  std::string environment, module, instance, slot;
  std::uint64_t first_request = 0;   // touched the module-level state first
  std::uint64_t second_request = 0;  // then touched the same state
};

// A coroutine of a request that ran on without the request's context: a
// completion handler resumed it directly on another thread, not through its
// executor (modgraph::co_spawn reports it when the coroutine finishes; see
// context/asio.h). `where` names the spawn site and the thread.
struct LostRequestContext {
  std::uint64_t request_id = 0;
  std::string where;
};

// Thrown into the request under the strict policy.
class StrictPolicyError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Sentinel {
 public:
  // The process-wide sentinel modules report to.
  static Sentinel& Global();

  Sentinel();
  ~Sentinel();
  Sentinel(const Sentinel&) = delete;
  Sentinel& operator=(const Sentinel&) = delete;

  // Starts/stops watching the slot whose active-implementation cell is `slot_key`.
  void Watch(void* const* slot_key, SlotSite site);
  void Unwatch(void* const* slot_key);
  // Replaces the providers named in a watched slot's reports.
  void SetFixingProviders(void* const* slot_key, std::vector<std::string> providers);

  // Called by Slot::operator() when a default accessor runs inside a request
  // scope. Records the hit (and a leak if another request was there before);
  // throws StrictPolicyError under the strict policy.
  void OnFallback(void* const* slot_key, std::uint64_t request_id);

  // Records a lost request context. modgraph_core routes the context layer's
  // reports here (set_lost_request_context_handler, context.h).
  void OnLostRequestContext(std::uint64_t request_id, std::string_view where);
  std::vector<LostRequestContext> lost_request_contexts() const;
  std::uint64_t lost_request_context_count() const;

  // Recorded events, oldest first (at most kMaxEvents each; counts are exact).
  std::vector<FallbackHit> fallback_hits() const;
  std::vector<CrossRequestLeak> leaks() const;
  std::uint64_t fallback_hit_count() const;
  std::uint64_t leak_count() const;
  // Forgets recorded events (not the watched slots).
  void ClearEvents();

  static constexpr std::size_t kMaxEvents = 4096;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

namespace registry_internal {
// The out-of-line fallback path of Slot::operator().
[[gnu::cold, gnu::noinline]] void OnFallback(void* const* slot_key, std::uint64_t request_id);
}  // namespace registry_internal

}  // namespace modgraph

#endif  // MODGRAPH_REGISTRY_SENTINEL_H_
