// The `router-state` module: registers a request-context-backed route accessor
// on the `router` instance of its own environment.
#include "modgraph/context/request_context.h"
#include "modgraph/modules/router.h"

namespace modgraph::modules {
namespace {

const StateKind<RouterState> kRouterState{"router"};
const RouterApi* g_router = nullptr;

RouterState* RequestRouterState() {
  if (RouterState* state = kRouterState.get()) return state;
  return g_router->module_state();  // outside any request: the module-level default
}

void Init(sdk::ModuleContext& context) {
  g_router = &context.import <RouterApi>("router");
  context.register_accessor<GetRouterState>("router", &RequestRouterState);
}

const char* const kImports[] = {"router"};
const char* const kProvidesFor[] = {"router"};

}  // namespace
}  // namespace modgraph::modules

MODGRAPH_MODULE(router_state, {.id = "router-state",
                               .imports = modgraph::modules::kImports,
                               .provides_for = modgraph::modules::kProvidesFor,
                               .init = &modgraph::modules::Init,
                               .teardown = &::modgraph::sdk::nothing_to_stop});
