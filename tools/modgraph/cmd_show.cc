// modgraph show: each environment's instances and where their state lives.
#include <dlfcn.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <memory>
#include <string>
#include <vector>

#include "builtin_topologies.h"
#include "cli_common.h"
#include "command.h"

namespace modgraph::tools {
namespace {

// Where an instance's module-level state lives: the mapped copy and its base.
std::string StateLocation(const Instance& instance) {
  Dl_info info{};
  if (::dladdr(&instance.descriptor(), &info) != 0 && info.dli_fbase != nullptr) {
    return fmt::format("{} @ {}", instance.library().loaded_path().string(), info.dli_fbase);
  }
  return instance.library().loaded_path().string();
}

int Show(const std::vector<std::string>& topologies, bool allow_writable_module_paths) {
  int exit_code = kExitClean;
  for (const std::string& name : topologies) {
    absl::StatusOr<TopologySpec> spec = ResolveTopology(name);
    if (!spec.ok()) {
      PrintError(spec.status());
      exit_code = kExitError;
      continue;
    }
    OverridePreflight(*spec, Preflight::kAlways);
    absl::StatusOr<std::unique_ptr<Topology>> topology = Topology::Create(
        *std::move(spec), {.allow_writable_module_paths = allow_writable_module_paths});
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
      for (const RetiredLibrary& retired : env->retired()) {
        fmt::print("    retired copy {} (was {}){}: {}\n", retired.copy,
                   fmt::join(retired.instances, ", "),
                   retired.kept_for_good ? ", kept for good" : "", retired.reason);
      }
    }
    std::fflush(stdout);
    for (const absl::Status& error : errors) {
      PrintError(error);
      exit_code = kExitError;
    }
  }
  return exit_code;
}

}  // namespace

void AddShowCommand(CLI::App& app, int& exit_code) {
  auto topologies = std::make_shared<std::vector<std::string>>();
  auto allow_writable = std::make_shared<bool>(false);
  CLI::App* command = app.add_subcommand(
      "show", "Load topologies and print each environment's instances and where their state lives");
  command
      ->add_option("-t,--topology", *topologies, "dev, prod or a topology .toml file (repeatable)")
      ->default_val(std::vector<std::string>{"dev", "prod"});
  command->add_flag("--allow-writable-module-paths", *allow_writable,
                    "load module files and roots that group or others may write, if you own them");
  command->footer("Exit status: 0 loaded, 2 a topology or module failed to load.");
  command->callback(
      [topologies, allow_writable, &exit_code] { exit_code = Show(*topologies, *allow_writable); });
}

}  // namespace modgraph::tools
