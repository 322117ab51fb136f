// The `head-state` module: registers a request-context-backed accessor on the
// `head` instance of its own environment, so each request collects its own head.
#include "modgraph/context/request_context.h"
#include "modgraph/modules/head.h"
#include "modgraph/registry/provider.h"

namespace modgraph::modules {
namespace {

struct HeadState {
  // A page adds a few elements (a title, some meta): room for them up front.
  HeadState() { children.reserve(4); }
  std::vector<std::string> children;
};

// Shared by name with every other copy of this module: one state per request.
const StateKind<HeadState> kHeadState{"head"};

const HeadApi* g_head = nullptr;  // this environment's head

// Without a request scope — start-up code, or work that lost its request's
// context (reported by provider_state) — the module-level default.
std::vector<std::string>* RequestHeadChildren() {
  if (HeadState* state = provider_state<GetSsrHeadChildren>(kHeadState)) return &state->children;
  return g_head->module_children();
}

void Init(sdk::ModuleContext& context) {
  g_head = &context.import_module<HeadApi>("head");
  context.register_accessor<GetSsrHeadChildren>("head", &RequestHeadChildren);
}

const char* const kImports[] = {"head"};
const char* const kProvidesFor[] = {"head"};

}  // namespace
}  // namespace modgraph::modules

MODGRAPH_MODULE(head_state, {.id = "head-state",
                             .imports = modgraph::modules::kImports,
                             .provides_for = modgraph::modules::kProvidesFor,
                             .init = &modgraph::modules::Init,
                             .teardown = &::modgraph::sdk::nothing_to_stop});
