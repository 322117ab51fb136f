// modgraph — loads topologies and reports on their module instances.
//
//   modgraph show [--topology dev|prod|FILE]...   environments, instances, where state lives
#include <dlfcn.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>
#include <vector>

#include "builtin_topologies.h"
#include "modgraph/environments/topology.h"

namespace modgraph::tools {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitError = 2;

void PrintError(const absl::Status& status) {
  fmt::print(stderr, "modgraph: error: {}\n", std::string(status.message()));
}

// Where an instance's module-level state lives: the mapped copy and its base.
std::string StateLocation(const Instance& instance) {
  Dl_info info{};
  if (::dladdr(&instance.descriptor(), &info) != 0 && info.dli_fbase != nullptr) {
    return fmt::format("{} @ {}", instance.library().loaded_path().string(), info.dli_fbase);
  }
  return instance.library().loaded_path().string();
}

int Show(const std::vector<std::string>& topologies) {
  int exit_code = kExitOk;
  for (const std::string& name : topologies) {
    absl::StatusOr<TopologySpec> spec = ResolveTopology(name);
    if (!spec.ok()) {
      PrintError(spec.status());
      exit_code = kExitError;
      continue;
    }
    absl::StatusOr<std::unique_ptr<Topology>> topology = Topology::Create(*std::move(spec));
    if (!topology.ok()) {
      PrintError(topology.status());
      exit_code = kExitError;
      continue;
    }
    std::vector<absl::Status> errors = (*topology)->LoadEntries();
    const TopologySpec& loaded = (*topology)->spec();
    fmt::print("topology {} ({}): {} environment(s)\n", loaded.name, loaded.origin,
               loaded.environments.size());
    for (const auto& env : (*topology)->environments()) {
      fmt::print("  environment {} ({})\n", env->name(), ToString(env->spec().mode));
      for (const Instance* instance : env->instances()) {
        std::vector<std::string> imports;
        for (const Instance* imported : instance->imports()) imports.push_back(imported->name());
        fmt::print("    {:<22} state in {}\n", instance->name(), StateLocation(*instance));
        if (!imports.empty()) {
          fmt::print("    {:<22} imports {}\n", "", fmt::join(imports, ", "));
        }
      }
    }
    for (const absl::Status& error : errors) {
      PrintError(error);
      exit_code = kExitError;
    }
  }
  return exit_code;
}

}  // namespace
}  // namespace modgraph::tools

int main(int argc, char** argv) {
  CLI::App app{"modgraph: module instances per environment, request context, accessor registry"};
  app.require_subcommand(1);
  std::vector<std::string> topologies;
  CLI::App* show = app.add_subcommand(
      "show", "Load topologies and print each environment's instances and where their state lives");
  show->add_option("-t,--topology", topologies, "dev, prod or a topology .toml file (repeatable)")
      ->default_val(std::vector<std::string>{"dev", "prod"});
  CLI11_PARSE(app, argc, argv);
  if (*show) return modgraph::tools::Show(topologies);
  return 0;
}
