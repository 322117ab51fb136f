// The `router` module: module-level route state behind a slot.
#include "modgraph/modules/router.h"

namespace modgraph::modules {
namespace {

RouterState g_router_state;  // module-level: shared by every request on this instance

RouterState* DefaultGetRouterState() { return &g_router_state; }

Slot<GetRouterState> g_get_router_state{&DefaultGetRouterState};

void SetRoute(std::string_view pathname, const std::map<std::string, std::string>& query) {
  RouterState& state = *g_get_router_state();
  state.pathname = pathname;
  state.query = query;
}
std::string Pathname() { return g_get_router_state()->pathname; }
std::map<std::string, std::string> Query() { return g_get_router_state()->query; }
RouterState* ModuleState() { return &g_router_state; }

const RouterApi kRouterApi{&SetRoute, &Pathname, &Query, &ModuleState};
const modgraph_slot_decl kSlots[] = {g_get_router_state.decl()};

}  // namespace
}  // namespace modgraph::modules

MODGRAPH_MODULE(router, {.id = "router",
                         .slots = modgraph::modules::kSlots,
                         .api = &modgraph::modules::kRouterApi,
                         .teardown = &::modgraph::sdk::nothing_to_stop});
