// Locating the shipped modules and bundle for the built-in topologies.
#include "builtin_topologies.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <system_error>

#include "modgraph/example/topologies.h"

namespace modgraph::tools {
namespace fs = std::filesystem;
namespace {

fs::path ToolDirectory() {
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::current_path() : self.parent_path();
}

// The directory holding `<id>.so` for every framework module.
absl::StatusOr<fs::path> ModuleDirectory() {
  if (const char* env = std::getenv("MODGRAPH_MODULE_DIR"); env != nullptr && *env != '\0') {
    return fs::path(env);
  }
  const fs::path tool = ToolDirectory();
  for (const fs::path& candidate :
       {tool / ".." / "modules", tool / ".." / "lib" / "modgraph" / "modules"}) {
    std::error_code ec;
    if (fs::exists(candidate / "head.so", ec)) return fs::weakly_canonical(candidate);
  }
  return absl::NotFoundError(fmt::format(
      "cannot find the framework modules next to '{}'; build them (cmake --build <dir> --target "
      "modgraph_modules) or set MODGRAPH_MODULE_DIR",
      tool.string()));
}

}  // namespace

absl::StatusOr<TopologySpec> ResolveTopology(std::string_view name_or_file) {
  if (name_or_file == "dev" || name_or_file == "prod") {
    absl::StatusOr<fs::path> modules = ModuleDirectory();
    if (!modules.ok()) return modules.status();
    if (name_or_file == "dev") return example::DevTopology(*modules);
    return example::ProdTopology(modules->parent_path() / "bundle" / "modgraph-bundle.so");
  }
  return LoadTopologyFile(fs::path(name_or_file));
}

}  // namespace modgraph::tools
