// The `server-entry` module: imports the state providers in its environment.
#include "modgraph/modules/server_entry.h"

#include <fmt/format.h>

#include "modgraph/loader/sdk.h"

namespace modgraph::modules {
namespace {

std::string Document(std::string_view head_html, std::string_view body_html) {
  return fmt::format("<!DOCTYPE html><html><head>{}</head><body>{}</body></html>", head_html,
                     body_html);
}

const char* const kImports[] = {"head-state", "router-state"};
const ServerEntryApi kApi{&Document};

}  // namespace
}  // namespace modgraph::modules

MODGRAPH_MODULE(server_entry, {.id = "server-entry",
                               .imports = modgraph::modules::kImports,
                               .api = &modgraph::modules::kApi,
                               .teardown = &::modgraph::sdk::nothing_to_stop});
