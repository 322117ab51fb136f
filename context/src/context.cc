#include "modgraph/context/context.h"

#include <algorithm>
#include <limits>
#include <memory>
#include <new>

#include "modgraph/context/request_context.h"
#include "named_registry.h"

namespace modgraph::context_internal {

constinit thread_local ContextRep* tls_current = nullptr;

namespace {

NamedRegistry& key_registry() {
  static auto* registry = new NamedRegistry("key", std::numeric_limits<std::uint32_t>::max());
  return *registry;
}

// A rep with `size` slots copied from `parent` (null slots past its end), which
// it keeps alive.
ContextRep* allocate_child(ContextRep* parent, std::uint32_t size) {
  void* memory = ::operator new(sizeof(ContextRep) + size * sizeof(ValueBox*));
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

ContextRep* make_request_root(ContextRep* parent, RequestState* request, std::uint64_t id) {
  std::unique_ptr<RequestState> owned(request);
  ContextRep* rep = allocate_child(parent, parent == nullptr ? 0 : parent->size);
  rep->request = request;
  rep->request_id = id;
  rep->own_request = owned.release();
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
    delete rep->own_request;
    rep->~ContextRep();
    ::operator delete(rep);
    rep = parent;
  } while (rep != nullptr && rep->refs.fetch_sub(1, std::memory_order_acq_rel) == 1);
}

}  // namespace modgraph::context_internal
