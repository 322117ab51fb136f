// cli_common.h — what the subcommands share: exit codes, the --topology and
// --policy options, loading a topology, colour, errors and output files.
#ifndef MODGRAPH_TOOLS_CLI_COMMON_H_
#define MODGRAPH_TOOLS_CLI_COMMON_H_

#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "modgraph/environments/topology.h"
#include "modgraph/report/report.h"

namespace modgraph::tools {

using report::kExitClean;
using report::kExitError;
using report::kExitFindings;

// --topology (one; default "dev") and --policy (default: the topology's own).
struct TopologyOptions {
  std::string topology = "dev";
  std::string policy;  // empty: keep the topology's policies
  // --allow-writable-module-paths: accept module roots and files that group or
  // others may write, when the running user owns them (docs/loader.md).
  bool allow_writable_module_paths = false;
};

// Adds --topology/-t, --policy/-p and --allow-writable-module-paths to `command`.
void AddTopologyOptions(CLI::App& command, TopologyOptions& options);

// A topology that was created and had its entries loaded; `errors` are the
// environments or providers that failed (the rest still loaded).
using ::modgraph::LoadedTopology;

// Resolves, creates and loads the topology `options` name, preflighting every
// library (environment.h: Preflight::kAlways); an error when it cannot even be
// created (bad file, missing modules).
absl::StatusOr<LoadedTopology> LoadTopology(const TopologyOptions& options);

// True when ANSI colour should go to `stream`: a terminal, and NO_COLOR unset
// or empty (https://no-color.org).
bool UseColor(std::FILE* stream);

// "modgraph: warning: <message>" on stderr.
void PrintWarning(std::string_view message);

// "modgraph: error: <message>" on stderr, then "  <hint>" when there is one.
void PrintError(std::string_view message, std::string_view hint = {});
// The same for a status's message.
void PrintError(const absl::Status& status, std::string_view hint = {});

// Writes `content` to `path`, or to stdout when `path` is empty or "-".
absl::Status WriteOutput(const std::string& path, std::string_view content);

}  // namespace modgraph::tools

#endif  // MODGRAPH_TOOLS_CLI_COMMON_H_
