// router.h — the `router` module's interface: the pathname and query the page
// sees (what useRouter() returns during server rendering).
//
// The route lives behind the slot `get_router_state`: its module-level default
// is one RouterState shared by every request; `router-state` registers a
// request-context-backed accessor on the instance of its environment. The
// module-level state is guarded by a lock inside `router`: shared between
// requests without a provider, but never torn.
#ifndef MODGRAPH_MODULES_ROUTER_H_
#define MODGRAPH_MODULES_ROUTER_H_

#include <map>
#include <string>
#include <string_view>

#include "modgraph/loader/sdk.h"
#include "modgraph/registry/slot.h"

namespace modgraph::modules {

struct RouterState {
  std::string pathname;
  std::map<std::string, std::string> query;
};

MODGRAPH_DEFINE_SLOT(GetRouterState, "get_router_state", modgraph::modules::RouterState*());

struct RouterApi {
  // Sets the current route (the server does this before rendering).
  void (*set_route)(std::string_view pathname, const std::map<std::string, std::string>& query);
  std::string (*pathname)();
  std::map<std::string, std::string> (*query)();
  // Diagnostics: this instance's module-level state (requests change it under
  // router's lock; read it only while none runs).
  RouterState* (*module_state)();
};

}  // namespace modgraph::modules

#endif  // MODGRAPH_MODULES_ROUTER_H_
