#include "modgraph/context/context.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <deque>
#include <limits>
#include <memory>
#include <mutex>
#include <new>
#include <string>

#include "modgraph/context/request_context.h"
#include "named_registry.h"

namespace modgraph {
namespace {
std::atomic<LostRequestContextHandler> g_lost_request_context_handler{nullptr};
}  // namespace

LostRequestContextHandler set_lost_request_context_handler(
    LostRequestContextHandler handler) noexcept {
  return g_lost_request_context_handler.exchange(handler, std::memory_order_acq_rel);
}

void report_lost_request_context(std::uint64_t request_id, std::string_view where) noexcept {
  if (LostRequestContextHandler handler =
          g_lost_request_context_handler.load(std::memory_order_acquire)) {
    handler(request_id, where);
    return;
  }
  std::fprintf(stderr, "modgraph: request %llu lost its context: %.*s\n",
               static_cast<unsigned long long>(request_id), static_cast<int>(where.size()),
               where.data());
}

namespace context_internal {

void report_lost_coroutine_context(std::uint64_t request, const char* file, unsigned line,
                                   const char* function) noexcept {
  try {
    const std::uint64_t current = current_request_id_of(tls_current);
    report_lost_request_context(
        request, fmt::format("a coroutine spawned at {}:{} ({}) finished on thread {} {}: a "
                             "completion handler resumed it directly, not through its executor "
                             "(an operation that calls its handler on another thread); every "
                             "step after that ran without the request's context",
                             file, line, function, static_cast<long>(::gettid()),
                             current == 0 ? std::string("outside any request")
                                          : fmt::format("in request {}", current)));
  } catch (...) {
    report_lost_request_context(request, "a coroutine finished outside its request's context");
  }
}

}  // namespace context_internal
}  // namespace modgraph

namespace modgraph::context_internal {

constinit thread_local ContextRep* tls_current = nullptr;
constinit thread_local ExecutorThreadState tls_executor{};
constinit std::atomic<bool> any_key_disabled{false};

namespace {

NamedRegistry& key_registry() {
  static auto* registry = new NamedRegistry("key", std::numeric_limits<std::uint32_t>::max());
  return *registry;
}

std::size_t rep_bytes(std::uint32_t size) { return sizeof(ContextRep) + size * sizeof(ValueBox*); }

// A rep with `size` slots copied from `parent` (null slots past its end), which
// it keeps alive, in `memory` (at least rep_bytes(size) bytes) or a new block.
ContextRep* allocate_child(ContextRep* parent, std::uint32_t size, void* memory = nullptr) {
  if (memory == nullptr) memory = ::operator new(rep_bytes(size));
  auto* rep = new (memory) ContextRep;
  rep->size = size;
  ValueBox** slots = rep->slots();
  std::uint32_t inherited = 0;
  if (parent != nullptr) {
    inherited = std::min(parent->size, size);
    std::copy_n(parent->slots(), inherited, slots);
    rep->request_id = parent->request_id;
    rep->request = parent->request;
    retain(parent);
    rep->parent = parent;
  }
  std::fill(slots + inherited, slots + size, nullptr);
  return rep;
}

}  // namespace

std::atomic<std::uint32_t>* key_epoch(std::uint32_t index) {
  // One cell per slot index, created on first use; a deque never moves them.
  struct Epochs {
    std::mutex mu;
    std::deque<std::atomic<std::uint32_t>> cells;  // guarded by mu (growth only)
  };
  static auto* epochs = new Epochs();  // never destroyed: module copies may outlive main
  std::lock_guard lock(epochs->mu);
  while (epochs->cells.size() <= index) epochs->cells.emplace_back(0);
  return &epochs->cells[index];
}

std::uint32_t register_key(std::string_view name, std::size_t size, std::size_t align,
                           const char* type_name) {
  // The caller is Key's constructor, compiled into the module (or host) that
  // declares the key: its address names the object file in the records.
  return key_registry().register_name(name, size, align, type_name,
                                      __builtin_extract_return_addr(__builtin_return_address(0)));
}

ContextRep* make_child(ContextRep* parent, std::uint32_t index, ValueBox* box) {
  std::unique_ptr<ValueBox> owned(box);
  const std::uint32_t size = std::max(parent == nullptr ? 0 : parent->size, index + 1);
  ContextRep* rep = allocate_child(parent, size);
  rep->slots()[index] = owned.get();
  rep->own_value = owned.release();
  return rep;
}

ContextRep* make_request_root(ContextRep* parent, std::uint64_t id) {
  // One block per request scope: the rep, its slots, then the request's state.
  const std::uint32_t size = parent == nullptr ? 0 : parent->size;
  const std::size_t state_offset =
      (rep_bytes(size) + alignof(RequestState) - 1) / alignof(RequestState) * alignof(RequestState);
  void* memory = ::operator new(state_offset + sizeof(RequestState));
  auto* request = new (static_cast<char*>(memory) + state_offset) RequestState(id);
  ContextRep* rep = allocate_child(parent, size, memory);
  rep->request = request;
  rep->request_id = id;
  rep->own_request = request;
  return rep;
}

// Iterative, so that releasing a long chain of children cannot overflow the stack.
// A rep may die while it is current: a scope that borrows it (a resumption through
// a borrowing ContextExecutor, or run() on a Context the body then drops) can see
// its last reference go. The anchor is cleared first so that the destructors of
// its values and states, and anything after them until the scope restores the
// anchor, never read freed memory; they run outside any context.
void destroy(ContextRep* rep) noexcept {
  do {
    if (tls_current == rep) tls_current = nullptr;
    ContextRep* parent = rep->parent;
    delete rep->own_value;
    if (rep->own_request != nullptr) rep->own_request->~RequestState();  // in rep's block
    rep->~ContextRep();
    ::operator delete(rep);
    rep = parent;
  } while (rep != nullptr && rep->refs.fetch_sub(1, std::memory_order_acq_rel) == 1);
}

}  // namespace modgraph::context_internal
