// modgraph graph: environments, instances, imports and registrations as
// Graphviz DOT or one self-contained HTML page.
#include <fmt/format.h>

#include <memory>
#include <string>

#include "cli_common.h"
#include "command.h"
#include "modgraph/report/render.h"
#include "modgraph/report/report.h"

namespace modgraph::tools {
namespace {

struct GraphOptions {
  TopologyOptions topology;
  std::string format;
  std::string output;
};

int RunGraph(const GraphOptions& options) {
  absl::StatusOr<LoadedTopology> loaded = LoadTopology(options.topology);
  if (!loaded.ok()) {
    PrintError(loaded.status());
    return kExitError;
  }
  const report::Report report = report::BuildReport(*loaded->topology, loaded->errors);
  for (const std::string& error : report.errors) PrintError(error);
  const std::string out =
      options.format == "html" ? report::RenderHtml(report) : report::RenderDot(report);
  if (absl::Status written = WriteOutput(options.output, out); !written.ok()) {
    PrintError(written);
    return kExitError;
  }
  return report.errors.empty() ? kExitClean : kExitError;
}

}  // namespace

void AddGraphCommand(CLI::App& app, int& exit_code) {
  auto options = std::make_shared<GraphOptions>();
  CLI::App* command = app.add_subcommand(
      "graph",
      "Draw environments, instances, imports and registrations as Graphviz DOT or one "
      "self-contained HTML page with a findings table");
  AddTopologyOptions(*command, options->topology);
  command->add_option("-f,--format", options->format, "dot or html")
      ->check(CLI::IsMember({"dot", "html"}))
      ->required();
  command->add_option("-o,--output", options->output, "write to FILE instead of standard output")
      ->option_text("FILE");
  command->footer(
      "Exit status: 0 written, 2 error (the topology or a module failed to load, or the output "
      "could not be written). Render DOT with: dot -Tsvg graph.dot -o graph.svg");
  command->callback([options, &exit_code] { exit_code = RunGraph(*options); });
}

}  // namespace modgraph::tools
