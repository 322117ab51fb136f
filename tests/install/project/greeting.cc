// The `greeting` module: imports `head` from its own environment.
#include "greeting.h"

#include <string>

#include "modgraph/loader/sdk.h"
#include "modgraph/modules/head.h"

namespace {

const modgraph::modules::HeadApi* g_head = nullptr;  // this environment's head

std::string Greet(const char* name) {
  g_head->reset();
  g_head->add_child(std::string("<title>hello ") + name + "</title>");
  return g_head->render();
}

void Init(modgraph::sdk::ModuleContext& context) {
  g_head = &context.import_module<modgraph::modules::HeadApi>("head");
}

const char* const kImports[] = {"head"};
const GreetingApi kApi{.greet = &Greet};

}  // namespace

MODGRAPH_MODULE(greeting, {.id = "greeting", .imports = kImports, .api = &kApi, .init = &Init});
