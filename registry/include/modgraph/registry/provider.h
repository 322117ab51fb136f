// provider.h — how a provider's accessor reads the request's state, so that
// work which lost its request context is reported instead of silently sharing
// module-level state.
//
// A provider registers a context-backed accessor on a slot (slot.h). Inside a
// request scope the accessor returns the request's state; outside any scope
// (start-up code) it falls back to the module-level default. But a request's
// work can also run with no scope — a plain std::thread, a callback or pool
// task that did not carry the context — and then the fallback hands one
// request's data to every other: the leak the slot was registered to prevent,
// invisible to the slot's own check. Read the state through provider_state():
//
//   const modgraph::StateKind<HeadState> kHeadState{"head"};
//   std::vector<std::string>* RequestHeadChildren() {
//     if (HeadState* state = modgraph::provider_state<GetSsrHeadChildren>(kHeadState)) {
//       return &state->children;                 // this request's (or standalone scope's)
//     }
//     return g_head->module_children();          // outside any request
//   }
//
// When no scope is current and requests are in flight, provider_state()
// reports a lost context to the sentinel (sentinel.h): the instance and slot
// the accessor serves, the provider, the thread. Under the strict policy the
// requests in flight then fail with a message naming the slot and how to carry
// the context (modgraph::bind, submit, spawn_thread). A module's own accessor
// that is not behind a slot (request-store's) uses check_request_scope().
//
// Cost: inside a scope, StateKind::get() and one branch; the report is out of
// line and runs only on the lost path.
#ifndef MODGRAPH_REGISTRY_PROVIDER_H_
#define MODGRAPH_REGISTRY_PROVIDER_H_

#include "modgraph/context/request_context.h"
#include "modgraph/registry/sentinel.h"

namespace modgraph {

// The state of `kind` for a provider's accessor on slot `SlotType`: the
// request's (unified scope), else the kind's standalone scope's, else nullptr —
// and then, if requests are in flight, a lost context is reported for
// SlotType::kName. `kind` must be an object of the calling module copy (a
// namespace-scope StateKind, as usual): it names the copy.
template <class SlotType, class T>
T* provider_state(const StateKind<T>& kind) {
  if (T* state = kind.get()) [[likely]] {
    return state;
  }
  if (RequestsInFlight() != 0) registry_internal::OnLostContext(&kind, nullptr, SlotType::kName);
  return nullptr;
}

// For a module's own context-backed accessor (not registered on a slot): true
// inside a request scope; otherwise false, after reporting a lost context for
// `accessor` of module `module_id` when requests are in flight. `anchor` is any
// object of the calling module copy (e.g. its API table).
inline bool check_request_scope(const void* anchor, const char* module_id, const char* accessor) {
  if (in_request_scope()) [[likely]] {
    return true;
  }
  if (RequestsInFlight() != 0) registry_internal::OnLostContext(anchor, module_id, accessor);
  return false;
}

}  // namespace modgraph

#endif  // MODGRAPH_REGISTRY_PROVIDER_H_
