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
// A registered slot can still reach module-level state: when its provider's
// accessor runs with no request scope — on a plain std::thread, in a callback
// or pool task that did not carry the context — the provider falls back to
// its module-level default. Providers read their state through
// provider_state() (provider.h); when that finds no scope while requests are in
// flight, it reports a *lost context* here (instance, slot, provider, thread).
// Under the strict policy the requests in flight at that moment fail (the page
// host answers 500 with LostContextMessage()); nothing is thrown on the thread
// that lost the context, which may not be able to carry an exception.
//
//   Sentinel& sentinel = Sentinel::Global();
//   ... run requests ...
//   for (const CrossRequestLeak& leak : sentinel.leaks()) print(leak);
#ifndef MODGRAPH_REGISTRY_SENTINEL_H_
#define MODGRAPH_REGISTRY_SENTINEL_H_

#include <cstdint>
#include <memory>
#include <optional>
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
  // Providers that would register this slot, e.g. {"head-provider"}; may be empty.
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

// A provider's accessor (or a module's own context-backed accessor) ran with no
// request scope while requests were in flight: the work that called it lost
// its request's context and got module-level state instead.
struct LostContext {
  std::string environment, module, instance;  // the instance whose state was reached
  std::string slot;                           // the slot (or the module's accessor) that was called
  std::string
      provider_instance;  // the instance whose accessor ran, e.g. "ssr#head-provider"; may be empty
  std::string library;    // the loaded copy the accessor's code lives in
  Policy policy = Policy::kWarn;
  std::uint64_t thread_id = 0;         // the kernel thread id (gettid) it ran on
  std::size_t requests_in_flight = 0;  // requests alive at that moment
};

// What a lost context means and how to carry the context (bind, submit,
// spawn_thread); under strict prefixed with the policy's verdict.
std::string LostContextMessage(const LostContext& lost);

// Where the accessors of one loaded instance live, for naming lost contexts.
struct InstanceSite {
  std::string environment;
  std::string module;
  std::string instance;
  Policy policy = Policy::kWarn;
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

  // Called by Slot::operator() when a module-level default accessor runs inside a request
  // scope. Records the hit (and a leak if another request was there before);
  // throws StrictPolicyError under the strict policy.
  void OnFallback(void* const* slot_key, std::uint64_t request_id);

  // Records a lost request context. modgraph_core routes the context layer's
  // reports here (set_lost_request_context_handler, context.h).
  void OnLostRequestContext(std::uint64_t request_id, std::string_view where);
  std::vector<LostRequestContext> lost_request_contexts() const;
  std::uint64_t lost_request_context_count() const;

  // The instance `site` was loaded from the copy `library` (its loaded path,
  // unique per copy; a bundle holds several instances). Lost contexts are named
  // through it. Unwatching an instance drops the registrations made on it.
  void WatchInstance(std::string library, InstanceSite site);
  void UnwatchInstance(std::string_view library, std::string_view instance);
  // `provider_instance`, loaded from `provider_library`, registered an accessor
  // on slot `target.slot` of `target.instance`, loaded from `target_library`.
  void WatchRegistration(std::string provider_library, std::string provider_instance,
                         std::string target_library, SlotSite target);
  void UnwatchRegistration(std::string_view target_library, std::string_view target_instance,
                           std::string_view slot);

  // Called by provider_state() / check_request_scope() (provider.h) when an
  // accessor finds no request scope while requests are in flight. `anchor` is
  // any object of the calling module copy (names the copy through dladdr);
  // `module_id` narrows a bundle to one module (may be null); `accessor` is the
  // slot name, or the module's own accessor name. Records the event; never throws.
  void OnLostContext(const void* anchor, const char* module_id, const char* accessor);

  // Recorded events, oldest first (at most kMaxEvents each; counts are exact).
  std::vector<FallbackHit> fallback_hits() const;
  std::vector<CrossRequestLeak> leaks() const;
  std::vector<LostContext> lost_contexts() const;
  std::uint64_t fallback_hit_count() const;
  std::uint64_t leak_count() const;
  std::uint64_t lost_context_count() const;

  // A mark for StrictLostContextSince(): grows with every lost context ever
  // recorded (ClearEvents() does not reset it).
  std::uint64_t lost_context_mark() const;
  // The latest lost context under the strict policy recorded after `mark`, if
  // any: a request that was in flight then fails with its message.
  std::optional<LostContext> StrictLostContextSince(std::uint64_t mark) const;
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
// The out-of-line path of provider_state() and check_request_scope().
[[gnu::cold, gnu::noinline]] void OnLostContext(const void* anchor, const char* module_id,
                                                const char* accessor) noexcept;
}  // namespace registry_internal

}  // namespace modgraph

#endif  // MODGRAPH_REGISTRY_SENTINEL_H_
