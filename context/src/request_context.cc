#include "modgraph/context/request_context.h"

#include <atomic>
#include <mutex>
#include <stdexcept>

#include "named_registry.h"

namespace modgraph {
namespace context_internal {
namespace {
std::atomic<std::size_t> g_requests_in_flight{0};
}  // namespace

RequestState::~RequestState() {
  g_requests_in_flight.fetch_sub(1, std::memory_order_relaxed);
  for (std::uint32_t i = kMaxStateKinds; i-- > 0;) {
    delete states[i].load(std::memory_order_acquire);
  }
}

std::uint32_t register_state_kind(std::string_view name, std::size_t size, std::size_t align,
                                  const char* type_name) {
  if (name.empty()) throw std::logic_error("modgraph: a state kind needs a non-empty name");
  static auto* registry = new NamedRegistry("state kind", kMaxStateKinds);
  return registry->register_name(name, size, align, type_name);
}

}  // namespace context_internal

namespace {

// The current request generation: every new request holds a reference to it.
struct Generations {
  std::mutex mutex;
  std::shared_ptr<const void> current = std::make_shared<int>(0);
};

Generations& TheGenerations() {
  static auto* generations = new Generations();  // never destroyed: requests may outlive main
  return *generations;
}

std::shared_ptr<const void> JoinCurrentGeneration() {
  Generations& generations = TheGenerations();
  std::lock_guard lock(generations.mutex);
  return generations.current;
}

}  // namespace

std::weak_ptr<const void> SealRequestGeneration() {
  Generations& generations = TheGenerations();
  std::lock_guard lock(generations.mutex);
  std::weak_ptr<const void> previous = generations.current;
  generations.current = std::make_shared<int>(0);
  return previous;
}

RequestContext RequestContext::create(std::uint64_t id) {
  if (id == 0) {
    throw std::invalid_argument("modgraph: request id 0 is reserved for 'no request scope'");
  }
  auto* state = new context_internal::RequestState(id);
  context_internal::g_requests_in_flight.fetch_add(1, std::memory_order_relaxed);
  state->generation = JoinCurrentGeneration();
  return RequestContext(
      Context(context_internal::make_request_root(context_internal::tls_current, state, id)));
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
