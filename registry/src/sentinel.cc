// The run-time sentinel; see sentinel.h. Compiled into modgraph_core.
#include "modgraph/registry/sentinel.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <atomic>
#include <mutex>
#include <shared_mutex>
#include <unordered_map>

#include "modgraph/context/context.h"

namespace modgraph {

struct Sentinel::State {
  struct Watched {
    SlotSite site;
    // The last request that went through this slot's module-level state.
    std::atomic<std::uint64_t> last_request{0};
  };

  mutable std::shared_mutex sites_mutex;
  std::unordered_map<const void*, std::unique_ptr<Watched>> sites;

  mutable std::mutex events_mutex;
  std::vector<FallbackHit> hits;
  std::vector<CrossRequestLeak> leaks;
  std::atomic<std::uint64_t> hit_count{0};
  std::atomic<std::uint64_t> leak_count{0};

  std::vector<LostRequestContext> lost_requests;  // guarded by events_mutex
  std::atomic<std::uint64_t> lost_request_count{0};
};

Sentinel& Sentinel::Global() {
  static Sentinel* sentinel = new Sentinel();  // never destroyed: modules may report late
  return *sentinel;
}

Sentinel::Sentinel() : state_(std::make_unique<State>()) {}
Sentinel::~Sentinel() = default;

void Sentinel::Watch(void* const* slot_key, SlotSite site) {
  auto watched = std::make_unique<State::Watched>();
  watched->site = std::move(site);
  std::unique_lock lock(state_->sites_mutex);
  state_->sites[slot_key] = std::move(watched);
}

void Sentinel::Unwatch(void* const* slot_key) {
  std::unique_lock lock(state_->sites_mutex);
  state_->sites.erase(slot_key);
}

void Sentinel::SetFixingProviders(void* const* slot_key, std::vector<std::string> providers) {
  std::unique_lock lock(state_->sites_mutex);
  if (auto it = state_->sites.find(slot_key); it != state_->sites.end()) {
    it->second->site.fixing_providers = std::move(providers);
  }
}

void Sentinel::OnFallback(void* const* slot_key, std::uint64_t request_id) {
  std::shared_lock lock(state_->sites_mutex);
  auto it = state_->sites.find(slot_key);
  if (it == state_->sites.end()) return;  // not loaded through modgraph (e.g. a unit test)
  State::Watched& watched = *it->second;
  const SlotSite& site = watched.site;
  if (site.policy == Policy::kStrict) {
    throw StrictPolicyError(fmt::format(
        "strict policy: request {} reached slot '{}' of {} (environment '{}', module '{}'), "
        "which still uses its module-level default; {} — or run with policy auto",
        request_id, site.slot, site.instance, site.environment, site.module,
        site.fixing_providers.empty()
            ? std::string("no loaded provider declares it: register an accessor on this instance")
            : fmt::format("load {} in environment '{}'", fmt::join(site.fixing_providers, ", "),
                          site.environment)));
  }
  state_->hit_count.fetch_add(1, std::memory_order_relaxed);
  const std::uint64_t previous =
      watched.last_request.exchange(request_id, std::memory_order_acq_rel);
  const bool leaked = previous != 0 && previous != request_id;
  if (leaked) state_->leak_count.fetch_add(1, std::memory_order_relaxed);

  std::lock_guard events(state_->events_mutex);
  if (state_->hits.size() < kMaxEvents) {
    state_->hits.push_back({site.environment, site.module, site.instance, site.slot, request_id});
  }
  if (leaked && state_->leaks.size() < kMaxEvents) {
    state_->leaks.push_back(
        {site.environment, site.module, site.instance, site.slot, previous, request_id});
  }
}

std::vector<FallbackHit> Sentinel::fallback_hits() const {
  std::lock_guard events(state_->events_mutex);
  return state_->hits;
}

std::vector<CrossRequestLeak> Sentinel::leaks() const {
  std::lock_guard events(state_->events_mutex);
  return state_->leaks;
}

std::uint64_t Sentinel::fallback_hit_count() const { return state_->hit_count.load(); }
std::uint64_t Sentinel::leak_count() const { return state_->leak_count.load(); }

void Sentinel::OnLostRequestContext(std::uint64_t request_id, std::string_view where) {
  state_->lost_request_count.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard events(state_->events_mutex);
  if (state_->lost_requests.size() < kMaxEvents) {
    state_->lost_requests.push_back({request_id, std::string(where)});
  }
}

std::vector<LostRequestContext> Sentinel::lost_request_contexts() const {
  std::lock_guard events(state_->events_mutex);
  return state_->lost_requests;
}

std::uint64_t Sentinel::lost_request_context_count() const {
  return state_->lost_request_count.load();
}

void Sentinel::ClearEvents() {
  {
    std::lock_guard events(state_->events_mutex);
    state_->hits.clear();
    state_->leaks.clear();
    state_->lost_requests.clear();
    state_->hit_count = 0;
    state_->leak_count = 0;
    state_->lost_request_count = 0;
  }
  std::shared_lock lock(state_->sites_mutex);
  for (auto& [key, watched] : state_->sites) watched->last_request = 0;
}

namespace registry_internal {
void OnFallback(void* const* slot_key, std::uint64_t request_id) {
  Sentinel::Global().OnFallback(slot_key, request_id);
}
}  // namespace registry_internal

namespace {
void RecordLostRequestContext(std::uint64_t request_id, std::string_view where) {
  try {
    Sentinel::Global().OnLostRequestContext(request_id, where);
  } catch (...) {  // out of memory: the report is lost, the reporting thread is not
  }
}
// The core's own initialiser (never a module's): lost request contexts reach
// the sentinel from the first request on.
[[maybe_unused]] const bool g_lost_request_contexts_recorded =
    (set_lost_request_context_handler(&RecordLostRequestContext), true);
}  // namespace

}  // namespace modgraph
