// command.h — how a subcommand plugs into the `modgraph` tool.
//
// Each subcommand lives in its own file, cmd_<name>.cc, and defines
//
//   void Add<Name>Command(CLI::App& app, int& exit_code);
//
// which adds the subcommand to `app` and sets a callback that runs it and
// stores its exit code. tools/CMakeLists.txt lists the subcommands
// (MODGRAPH_TOOL_COMMANDS) and generates commands.inc, one
// MODGRAPH_COMMAND(<Name>) line each, in --help order: adding a subcommand is
// its file plus one word in that list.
#ifndef MODGRAPH_TOOLS_COMMAND_H_
#define MODGRAPH_TOOLS_COMMAND_H_

#include <CLI/CLI.hpp>

namespace modgraph::tools {

using AddCommandFn = void (*)(CLI::App& app, int& exit_code);

#define MODGRAPH_COMMAND(Name) void Add##Name##Command(CLI::App& app, int& exit_code);
#include "commands.inc"
#undef MODGRAPH_COMMAND

}  // namespace modgraph::tools

#endif  // MODGRAPH_TOOLS_COMMAND_H_
