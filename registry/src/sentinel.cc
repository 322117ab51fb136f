// The run-time sentinel; see sentinel.h. Compiled into modgraph_core.
#include "modgraph/registry/sentinel.h"

#include <dlfcn.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <unordered_map>

#include "modgraph/context/context.h"
#include "modgraph/context/request_context.h"

namespace modgraph {

struct Sentinel::State {
  struct Watched {
    SlotSite site;
    // The last request that went through this slot's module-level state.
    std::atomic<std::uint64_t> last_request{0};
  };

  mutable std::shared_mutex sites_mutex;
  std::unordered_map<const void*, std::unique_ptr<Watched>> sites;

  // Lost-context naming: instances by loaded copy, and who registered what.
  struct Registration {
    std::string provider_library;
    std::string provider_instance;
    std::string target_library;
    SlotSite target;
  };
  // Library → instance name → site (a bundle's copy holds thousands of
  // instances: unwatching one must not scan its siblings); sites_mutex.
  std::map<std::string, std::map<std::string, InstanceSite, std::less<>>, std::less<>> instances;
  std::vector<Registration> registrations;  // sites_mutex

  mutable std::mutex events_mutex;
  std::vector<FallbackHit> hits;
  std::vector<CrossRequestLeak> leaks;
  std::vector<LostContext> lost;
  std::atomic<std::uint64_t> hit_count{0};
  std::atomic<std::uint64_t> leak_count{0};
  std::atomic<std::uint64_t> lost_count{0};
  // Written under events_mutex; read without it on every served request
  // (PageHost), so that a render takes no lock for them.
  std::atomic<std::uint64_t> lost_mark{0};
  std::atomic<std::uint64_t> strict_lost_mark{0};
  std::optional<LostContext> strict_lost;  // the latest, events_mutex

  std::vector<LostRequestContext> lost_requests;  // guarded by events_mutex
  std::atomic<std::uint64_t> lost_request_count{0};
};

std::string LostContextMessage(const LostContext& lost) {
  const std::string where =
      lost.instance.empty()
          ? fmt::format("accessor '{}' of the module copy {}", lost.slot, lost.library)
          : fmt::format("slot '{}' of {} (environment '{}', module '{}'){}", lost.slot,
                        lost.instance, lost.environment, lost.module,
                        lost.provider_instance.empty()
                            ? std::string()
                            : fmt::format(" through provider {}", lost.provider_instance));
  return fmt::format(
      "{}{} ran on thread {} with no request scope while {} request(s) were in flight: work "
      "started by a request lost its context and used module-level state shared by every "
      "request; carry the context to that work: modgraph::bind(fn) for a callback, "
      "modgraph::submit(pool, fn) for a thread-pool task, modgraph::spawn_thread(fn) for a thread "
      "(modgraph/context/thread.h)",
      lost.policy == Policy::kStrict ? "strict policy: " : "", where, lost.thread_id,
      lost.requests_in_flight);
}

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

void Sentinel::WatchInstance(std::string library, InstanceSite site) {
  std::unique_lock lock(state_->sites_mutex);
  std::string name = site.instance;
  state_->instances[std::move(library)].insert_or_assign(std::move(name), std::move(site));
}

void Sentinel::UnwatchInstance(std::string_view library, std::string_view instance) {
  std::unique_lock lock(state_->sites_mutex);
  if (auto it = state_->instances.find(library); it != state_->instances.end()) {
    if (auto site = it->second.find(instance); site != it->second.end()) it->second.erase(site);
    if (it->second.empty()) state_->instances.erase(it);
  }
  // Registrations on it go with it; its own registrations on others are
  // revoked through UnwatchRegistration.
  std::erase_if(state_->registrations, [&](const State::Registration& r) {
    return r.target_library == library && r.target.instance == instance;
  });
}

void Sentinel::WatchRegistration(std::string provider_library, std::string provider_instance,
                                 std::string target_library, SlotSite target) {
  std::unique_lock lock(state_->sites_mutex);
  state_->registrations.push_back({std::move(provider_library), std::move(provider_instance),
                                   std::move(target_library), std::move(target)});
}

void Sentinel::UnwatchRegistration(std::string_view target_library,
                                   std::string_view target_instance, std::string_view slot) {
  std::unique_lock lock(state_->sites_mutex);
  std::erase_if(state_->registrations, [&](const State::Registration& r) {
    return r.target_library == target_library && r.target.instance == target_instance &&
           r.target.slot == slot;
  });
}

void Sentinel::OnLostContext(const void* anchor, const char* module_id, const char* accessor) {
  LostContext lost;
  lost.slot = accessor == nullptr ? "" : accessor;
  lost.thread_id = static_cast<std::uint64_t>(::gettid());
  lost.requests_in_flight = RequestsInFlight();
  Dl_info info{};
  if (::dladdr(anchor, &info) != 0 && info.dli_fname != nullptr) lost.library = info.dli_fname;
  {
    std::shared_lock lock(state_->sites_mutex);
    // The instances loaded from the caller's copy (one, or a bundle's several).
    std::vector<const InstanceSite*> candidates;
    if (auto it = state_->instances.find(lost.library); it != state_->instances.end()) {
      for (const auto& [name, site] : it->second) {
        if (module_id == nullptr || site.module == module_id) candidates.push_back(&site);
      }
    }
    // A provider's accessor: the registration it made for this slot.
    const State::Registration* registration = nullptr;
    for (const State::Registration& r : state_->registrations) {
      if (r.provider_library != lost.library || r.target.slot != lost.slot) continue;
      if (std::any_of(candidates.begin(), candidates.end(),
                      [&](const InstanceSite* c) { return c->instance == r.provider_instance; })) {
        registration = &r;
        break;
      }
    }
    if (registration != nullptr) {
      lost.environment = registration->target.environment;
      lost.module = registration->target.module;
      lost.instance = registration->target.instance;
      lost.policy = registration->target.policy;
      lost.provider_instance = registration->provider_instance;
    } else if (candidates.size() == 1) {
      lost.environment = candidates.front()->environment;
      lost.module = candidates.front()->module;
      lost.instance = candidates.front()->instance;
      lost.policy = candidates.front()->policy;
    }
  }
  state_->lost_count.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard events(state_->events_mutex);
  const std::uint64_t mark = state_->lost_mark.load(std::memory_order_relaxed) + 1;
  state_->lost_mark.store(mark, std::memory_order_release);
  if (lost.policy == Policy::kStrict) {
    state_->strict_lost = lost;
    // After strict_lost: a reader that sees the mark finds the context under the mutex.
    state_->strict_lost_mark.store(mark, std::memory_order_release);
  }
  if (state_->lost.size() < kMaxEvents) state_->lost.push_back(std::move(lost));
}

std::vector<LostContext> Sentinel::lost_contexts() const {
  std::lock_guard events(state_->events_mutex);
  return state_->lost;
}

std::uint64_t Sentinel::lost_context_count() const { return state_->lost_count.load(); }

std::uint64_t Sentinel::lost_context_mark() const {
  return state_->lost_mark.load(std::memory_order_acquire);
}

std::optional<LostContext> Sentinel::StrictLostContextSince(std::uint64_t mark) const {
  if (state_->strict_lost_mark.load(std::memory_order_acquire) <= mark) return std::nullopt;
  std::lock_guard events(state_->events_mutex);
  return state_->strict_lost;
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
    state_->lost.clear();
    state_->lost_requests.clear();
    state_->hit_count = 0;
    state_->leak_count = 0;
    state_->lost_count = 0;
    state_->lost_request_count = 0;
  }
  std::shared_lock lock(state_->sites_mutex);
  for (auto& [key, watched] : state_->sites) watched->last_request = 0;
}

namespace registry_internal {
void OnFallback(void* const* slot_key, std::uint64_t request_id) {
  Sentinel::Global().OnFallback(slot_key, request_id);
}

void OnLostContext(const void* anchor, const char* module_id, const char* accessor) noexcept {
  try {
    Sentinel::Global().OnLostContext(anchor, module_id, accessor);
  } catch (...) {
    // Out of memory while recording: the accessor still falls back; nothing may
    // escape onto a thread that cannot carry it.
  }
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
