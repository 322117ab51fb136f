// The `router-state` module: registers a request-context-backed route accessor
// on the `router` instance of its own environment.
#include "modgraph/context/request_context.h"
#include "modgraph/modules/router.h"
#include "modgraph/registry/provider.h"

namespace modgraph::modules {
namespace {

const StateKind<RouterState> kRouterState{"router"};
const RouterApi* g_router = nullptr;

// Without a request scope — start-up code, or work that lost its request's
// context (reported by provider_state) — the module-level default.
RouterState* RequestRouterState() {
  if (RouterState* state = provider_state<GetRouterState>(kRouterState)) return state;
  return g_router->module_state();
}

void Init(sdk::ModuleContext& context) {
  g_router = &context.import_module<RouterApi>("router");
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
