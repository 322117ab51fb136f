// Shared pieces of the subcommands; see cli_common.h.
#include "cli_common.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "builtin_topologies.h"

namespace modgraph::tools {

void AddTopologyOptions(CLI::App& command, TopologyOptions& options) {
  command.add_option("-t,--topology", options.topology, "dev, prod or a topology .toml file")
      ->capture_default_str();
  command
      .add_option("-p,--policy", options.policy,
                  "override every environment's policy: warn, strict or auto (default: the "
                  "topology's own)")
      ->check(CLI::IsMember({"warn", "strict", "auto"}));
  command.add_flag("--allow-writable-module-paths", options.allow_writable_module_paths,
                   "load module files and roots that group or others may write, if you own them "
                   "(refused by default: whoever can write them chooses the code that runs)");
}

absl::StatusOr<LoadedTopology> LoadTopology(const TopologyOptions& options) {
  absl::StatusOr<TopologySpec> spec = ResolveTopology(options.topology);
  if (!spec.ok()) return spec.status();
  std::optional<Policy> policy;
  if (!options.policy.empty()) {
    policy = ParsePolicy(options.policy);
    if (!policy) {
      return absl::InvalidArgumentError(
          fmt::format("unknown policy '{}': use warn, strict or auto", options.policy));
    }
  }
  return Topology::Load(
      *std::move(spec),
      {.policy = policy,
       // A module whose static initialiser throws must not take the tool down
       // with it: every library is loaded once in a preflight process first.
       .preflight = Preflight::kAlways,
       .loader = {.allow_writable_module_paths = options.allow_writable_module_paths},
       // Say before loading when the copies would not fit: the failure would
       // come thousands of loads later, as ENOSPC or an mmap error.
       .before_entries = [](const Topology& topology) {
         for (const std::string& warning : topology.CapacityWarnings()) {
           PrintWarning(warning);
         }
       }});
}

void PrintError(const absl::Status& status, std::string_view hint) {
  PrintError(std::string_view(status.message().data(), status.message().size()), hint);
}

bool UseColor(std::FILE* stream) {
  if (const char* no_color = std::getenv("NO_COLOR"); no_color != nullptr && *no_color != '\0') {
    return false;
  }
  return ::isatty(::fileno(stream)) == 1;
}

void PrintWarning(std::string_view message) {
  const bool color = UseColor(stderr);
  fmt::print(stderr, "modgraph: {}warning:{} {}\n", color ? "\x1b[1;33m" : "",
             color ? "\x1b[0m" : "", message);
}

void PrintError(std::string_view message, std::string_view hint) {
  const bool color = UseColor(stderr);
  fmt::print(stderr, "modgraph: {}{}{} {}\n", color ? "\x1b[1;31m" : "",
             "error:", color ? "\x1b[0m" : "", message);
  if (!hint.empty()) fmt::print(stderr, "  {}\n", hint);
}

absl::Status WriteOutput(const std::string& path, std::string_view content) {
  if (path.empty() || path == "-") {
    if (std::fwrite(content.data(), 1, content.size(), stdout) != content.size() ||
        std::fflush(stdout) != 0) {
      return absl::UnavailableError(
          fmt::format("cannot write to standard output: {}", std::strerror(errno)));
    }
    return absl::OkStatus();
  }
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file.write(content.data(), static_cast<std::streamsize>(content.size()));
  file.close();
  if (!file) {
    return absl::PermissionDeniedError(
        fmt::format("cannot write '{}': {}; check that its directory exists and is writable", path,
                    std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace modgraph::tools
