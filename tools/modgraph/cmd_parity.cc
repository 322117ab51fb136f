// modgraph parity: the same concurrent requests, same seed, against a dev and a
// prod topology; prints the responses that differ.
#include <fmt/format.h>

#include <memory>
#include <string>

#include "cli_common.h"
#include "command.h"
#include "modgraph/testing/testkit.h"
#include "probe_common.h"

namespace modgraph::tools {
namespace {

struct ParityOptions {
  TopologyOptions dev;
  std::string prod = "prod";
  RequestOptions requests;
};

int RunParity(const ParityOptions& options) {
  absl::StatusOr<LoadedTopology> dev = LoadTopology(options.dev);
  if (!dev.ok()) {
    PrintError(dev.status());
    return kExitError;
  }
  absl::StatusOr<LoadedTopology> prod =
      LoadTopology({.topology = options.prod,
                    .policy = "",
                    .allow_writable_module_paths = options.dev.allow_writable_module_paths});
  if (!prod.ok()) {
    PrintError(prod.status());
    return kExitError;
  }
  for (const auto* loaded : {&*dev, &*prod}) {
    for (const absl::Status& error : loaded->errors) PrintError(error);
  }
  const std::vector<std::string> targets = RequestTargets(options.requests);
  for (const auto* loaded : {&*dev, &*prod}) {
    if (!CheckPageServed(*loaded->topology, targets)) return kExitError;
  }
  absl::StatusOr<testing::ParityReport> parity =
      testing::RunParity(*dev->topology, *prod->topology, targets, {.seed = options.requests.seed});
  if (!parity.ok()) {
    PrintError(parity.status());
    return kExitError;
  }
  fmt::print("parity: {} concurrent request(s) to {} (seed {}), {} vs {}\n", targets.size(),
             options.requests.page, options.requests.seed, dev->topology->spec().name,
             prod->topology->spec().name);
  for (const testing::Divergence& d : parity->divergences) {
    fmt::print("  {}\n    {:<5} {} {}\n    {:<5} {} {}\n", d.target, "dev", d.dev_status,
               Excerpt(d.dev_body), "prod", d.prod_status, Excerpt(d.prod_body));
  }
  fmt::print("{} divergence(s) in {} response(s)\n", parity->divergences.size(), targets.size());
  const std::size_t non_ok =
      PrintNonOkResponses(parity->dev, "dev ") + PrintNonOkResponses(parity->prod, "prod ");
  const std::size_t module_state = PrintModuleStateFindings(parity->dev, "dev: ") +
                                   PrintModuleStateFindings(parity->prod, "prod: ");
  return parity->divergences.empty() && non_ok == 0 && module_state == 0 ? kExitClean
                                                                         : kExitFindings;
}

}  // namespace

void AddParityCommand(CLI::App& app, int& exit_code) {
  auto options = std::make_shared<ParityOptions>();
  CLI::App* command = app.add_subcommand(
      "parity", "Run the same concurrent requests against dev and prod and print the divergences");
  AddTopologyOptions(*command, options->dev);
  command->add_option("--prod", options->prod, "the prod topology: prod or a topology file")
      ->capture_default_str();
  AddRequestOptions(*command, options->requests);
  command->footer(
      "--topology/--policy choose the dev side. Both sides run under the module-state audit. Exit "
      "status: 0 no divergence, no module state written by two requests and every response "
      "200; 1 divergences, such module state or responses other than 200 on either side; 2 error, "
      "including a --page "
      "either side does not serve (the message lists the routes it serves).");
  command->callback([options, &exit_code] { exit_code = RunParity(*options); });
}

}  // namespace modgraph::tools
