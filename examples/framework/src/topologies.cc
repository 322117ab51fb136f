// The example application's dev and prod topologies; see topologies.h.
#include "modgraph/example/topologies.h"

#include <utility>
#include <vector>

namespace modgraph::example {
namespace fs = std::filesystem;

std::span<const std::string> Pages() {
  static const std::vector<std::string> pages = {"concurrent-head", "concurrent-router",
                                                 "request-store-page", "cached-page"};
  return pages;
}

TopologySpec DevTopology(const fs::path& module_dir) {
  TopologySpec spec;
  spec.name = "dev";
  spec.origin = "built-in";
  // As in the original dev server: the server entry lives in `node` and imports
  // head-state and router-state there; pages render in `ssr`, which also loads
  // i18n-state (and so gets a registered i18n) but not head-state or router-state.
  spec.environments.push_back({.name = "node",
                               .mode = EnvironmentMode::kIsolated,
                               .module_roots = {module_dir},
                               .entry_modules = {"server-entry"}});
  std::vector<std::string> ssr_entries = {"i18n-state"};
  ssr_entries.insert(ssr_entries.end(), Pages().begin(), Pages().end());
  spec.environments.push_back({.name = "ssr",
                               .mode = EnvironmentMode::kIsolated,
                               .module_roots = {module_dir},
                               .entry_modules = std::move(ssr_entries)});
  spec.server = {.pages_environment = "ssr",
                 .entry_environment = "node",
                 .document = "server-entry",
                 .pages = {Pages().begin(), Pages().end()}};
  return spec;
}

TopologySpec ProdTopology(const fs::path& bundle) {
  TopologySpec spec;
  spec.name = "prod";
  spec.origin = "built-in";
  // One bundle holds every module: each import resolves to its one instance.
  std::vector<std::string> entries = {"server-entry", "i18n-state"};
  entries.insert(entries.end(), Pages().begin(), Pages().end());
  spec.environments.push_back({.name = "prod",
                               .mode = EnvironmentMode::kBundled,
                               .module_roots = {bundle.parent_path()},
                               .bundle = bundle,
                               .entry_modules = std::move(entries)});
  spec.server = {.pages_environment = "prod",
                 .entry_environment = "prod",
                 .document = "server-entry",
                 .pages = {Pages().begin(), Pages().end()}};
  return spec;
}

}  // namespace modgraph::example
