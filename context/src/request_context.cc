#include "modgraph/context/request_context.h"

#include <atomic>
#include <mutex>
#include <stdexcept>

#include "named_registry.h"

namespace modgraph {
namespace context_internal {
namespace {
std::atomic<std::size_t> g_requests_in_flight{0};
// One past the highest state-kind index registered so far: no request holds a
// state at or above it, so destroying a request scans only the kinds that exist
// (a few) instead of all kMaxStateKinds slots. Registration happens before any
// state of the kind is created, and that before the request is destroyed.
std::atomic<std::uint32_t> g_state_kinds_end{0};
}  // namespace

RequestState::~RequestState() {
  g_requests_in_flight.fetch_sub(1, std::memory_order_relaxed);
  for (std::uint32_t i = g_state_kinds_end.load(std::memory_order_acquire); i-- > 0;) {
    delete states[i].load(std::memory_order_acquire);
  }
}

std::uint32_t register_state_kind(std::string_view name, std::size_t size, std::size_t align,
                                  const char* type_name) {
  static auto* registry = new NamedRegistry("state kind", kMaxStateKinds);
  // The caller is StateKind's constructor, compiled into the declaring module.
  const std::uint32_t index = registry->register_name(
      name, size, align, type_name, __builtin_extract_return_addr(__builtin_return_address(0)),
      /*anonymous_allowed=*/false);
  std::uint32_t end = g_state_kinds_end.load(std::memory_order_relaxed);
  while (end <= index &&
         !g_state_kinds_end.compare_exchange_weak(end, index + 1, std::memory_order_release,
                                                  std::memory_order_relaxed)) {
  }
  return index;
}

}  // namespace context_internal

namespace {

// One request generation. Each generation holds the next one, so a generation
// stays alive while any request of it *or of an earlier generation* lives: a
// library retired at seal k may be used by every request that started before
// seal k, not only by those of generation k.
struct Generation {
  ~Generation() {
    // Every share of this generation is gone (and, through the chain, of every
    // earlier one): what their holders did happens before a watch sees this.
    ended->store(true, std::memory_order_release);
    // Unlink iteratively: a long request can pin a chain of thousands of
    // generations, and releasing it must not recurse once per link.
    std::shared_ptr<Generation> link = std::move(next);
    while (link != nullptr && link.use_count() == 1) link = std::move(link->next);
  }
  std::shared_ptr<Generation> next;  // set once, when this generation is sealed
  std::shared_ptr<std::atomic<bool>> ended = std::make_shared<std::atomic<bool>>(false);
};

struct Generations {
  std::mutex mutex;
  std::shared_ptr<Generation> current = std::make_shared<Generation>();
};

Generations& TheGenerations() {
  static auto* generations = new Generations();  // never destroyed: requests may outlive main
  return *generations;
}

}  // namespace

std::shared_ptr<const void> HoldRequestGeneration() {
  Generations& generations = TheGenerations();
  std::lock_guard lock(generations.mutex);
  return generations.current;
}

RequestGenerationWatch SealRequestGeneration() {
  Generations& generations = TheGenerations();
  std::lock_guard lock(generations.mutex);
  std::shared_ptr<Generation> sealed = std::move(generations.current);
  sealed->next = std::make_shared<Generation>();
  generations.current = sealed->next;
  return RequestGenerationWatch(sealed->ended);
}

RequestContext RequestContext::create(std::uint64_t id) {
  if (id == 0) {
    throw std::invalid_argument("modgraph: request id 0 is reserved for 'no request scope'");
  }
  RequestContext request(context_internal::ContextAccess::adopt(
      context_internal::make_request_root(context_internal::tls_current, id)));
  context_internal::g_requests_in_flight.fetch_add(1, std::memory_order_relaxed);
  context_internal::ContextAccess::rep(request.context())->request->generation =
      HoldRequestGeneration();
  return request;
}

std::size_t RequestsInFlight() noexcept {
  return context_internal::g_requests_in_flight.load(std::memory_order_relaxed);
}

std::uint64_t NextRequestId() noexcept {
  static std::atomic<std::uint64_t> next_id{1};
  return next_id.fetch_add(1, std::memory_order_relaxed);
}

RequestContext RequestContext::create() { return create(NextRequestId()); }

}  // namespace modgraph
