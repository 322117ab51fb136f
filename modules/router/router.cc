// The `router` module: module-level route state behind a slot.
#include "modgraph/modules/router.h"

#include <mutex>

namespace modgraph::modules {
namespace {

RouterState g_router_state;  // module-level: shared by every request on this instance
// Guards g_router_state: without a provider, requests on several io threads
// share it. Memory-safe, still shared — a request can read another's route.
std::mutex g_router_state_mutex;

RouterState* DefaultGetRouterState() { return &g_router_state; }

Slot<GetRouterState> g_get_router_state{&DefaultGetRouterState};

// Runs `fn` on the current route state: a request's own (registered provider)
// as is, the module-level one under its lock.
template <class F>
decltype(auto) WithState(F&& fn) {
  RouterState* state = g_get_router_state();
  if (state == &g_router_state) {
    std::lock_guard lock(g_router_state_mutex);
    return fn(*state);
  }
  return fn(*state);
}

void SetRoute(std::string_view pathname, const std::map<std::string, std::string>& query) {
  WithState([&](RouterState& state) {
    state.pathname = pathname;
    state.query = query;
  });
}
std::string Pathname() {
  return WithState([](const RouterState& state) { return state.pathname; });
}
std::map<std::string, std::string> Query() {
  return WithState([](const RouterState& state) { return state.query; });
}
RouterState* ModuleState() { return &g_router_state; }

const RouterApi kRouterApi{&SetRoute, &Pathname, &Query, &ModuleState};
const modgraph_slot_decl kSlots[] = {g_get_router_state.decl()};
const modgraph_shared_state_decl kShared[] = {MODGRAPH_SHARED_STATE(
    g_router_state_mutex, "guards g_router_state across io threads; holds no request data")};

}  // namespace
}  // namespace modgraph::modules

MODGRAPH_MODULE(router, {.id = "router",
                         .slots = modgraph::modules::kSlots,
                         .api = &modgraph::modules::kRouterApi,
                         .teardown = &::modgraph::sdk::nothing_to_stop,
                         .shared_state = modgraph::modules::kShared});
