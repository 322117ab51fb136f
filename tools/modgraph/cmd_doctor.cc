// modgraph doctor: instances whose slots nobody registered, their registered
// twins and the provider that would fix them.
#include <fmt/format.h>

#include <memory>
#include <string>

#include "cli_common.h"
#include "command.h"
#include "modgraph/report/render.h"
#include "modgraph/report/report.h"

namespace modgraph::tools {
namespace {

struct DoctorOptions {
  TopologyOptions topology;
  std::string format = "text";
};

int RunDoctor(const DoctorOptions& options) {
  absl::StatusOr<LoadedTopology> loaded = LoadTopology(options.topology);
  if (!loaded.ok()) {
    PrintError(loaded.status());
    return kExitError;
  }
  const report::Report report = report::BuildReport(*loaded->topology, loaded->errors);
  for (const std::string& error : report.errors) PrintError(error);
  std::string out;
  if (options.format == "json") {
    out = report::RenderJson(report).dump(2) + "\n";
  } else {
    out = report::RenderText(report, {.color = UseColor(stdout)});
  }
  if (absl::Status written = WriteOutput("-", out); !written.ok()) {
    PrintError(written);
    return kExitError;
  }
  return report::ExitCode(report);
}

}  // namespace

void AddDoctorCommand(CLI::App& app, int& exit_code) {
  auto options = std::make_shared<DoctorOptions>();
  CLI::App* command = app.add_subcommand(
      "doctor",
      "List every module instance with unregistered slots, its registered twins in other "
      "environments and the provider that would fix it");
  AddTopologyOptions(*command, options->topology);
  command->add_option("-f,--format", options->format, "text or json")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  command->footer(
      "Exit status: 0 clean, 1 findings (slots without registration), 2 error (the topology or "
      "a module failed to load).");
  command->callback([options, &exit_code] { exit_code = RunDoctor(*options); });
}

}  // namespace modgraph::tools
