// modgraph — loads topologies and reports on their module instances.
//
//   modgraph show   [--topology dev|prod|FILE]...      instances and where their state lives
//   modgraph doctor [--topology ...] [--policy ...] [--format text|json]
//   modgraph graph  [--topology ...] [--policy ...] --format dot|html [-o FILE]
//
// Each subcommand lives in cmd_<name>.cc (see command.h); this file only runs
// the parser. Exit status: 0 clean, 1 findings, 2 error (usage errors too).
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <exception>

#include "cli_common.h"
#include "command.h"

namespace modgraph::tools {
namespace {

constexpr AddCommandFn kCommands[] = {
#define MODGRAPH_COMMAND(Name) &Add##Name##Command,
#include "commands.inc"
#undef MODGRAPH_COMMAND
};

}  // namespace
}  // namespace modgraph::tools

int main(int argc, char** argv) {
  using namespace modgraph::tools;
  CLI::App app{"modgraph: module instances per environment, request context, accessor registry"};
  app.require_subcommand(1);
  app.footer("Run 'modgraph <subcommand> --help' for a subcommand's options.");
  int exit_code = kExitClean;
  for (AddCommandFn add : kCommands) add(app, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    // Help and version exit 0; every usage error exits 2 after CLI11 says why.
    return app.exit(error) == 0 ? kExitClean : kExitError;
  } catch (const std::exception& error) {
    PrintError(error.what(), "this is a bug in modgraph; please report it with the command line");
    return kExitError;
  }
  return exit_code;
}
