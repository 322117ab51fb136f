// The `head-state` module: provides request-context-backed accessors for `head`.
#include "modgraph/modules/head.h"

namespace modgraph::modules {
namespace {

const char* const kImports[] = {"head"};
const char* const kProvidesFor[] = {"head"};

void Init(sdk::ModuleContext& context) {
  // Importing `head` here resolves to this environment's instance of it.
  (void)context.import <HeadApi>("head");
}

}  // namespace
}  // namespace modgraph::modules

MODGRAPH_MODULE(head_state, {.id = "head-state",
                             .imports = modgraph::modules::kImports,
                             .provides_for = modgraph::modules::kProvidesFor,
                             .init = &modgraph::modules::Init});
