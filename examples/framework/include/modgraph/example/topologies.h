// modgraph/example/topologies.h — the example application's built-in topologies.
//
// They mirror the two situations the bug lives between:
//   dev  — environments `node` and `ssr`, isolated: each loads its own copy of
//          every module it imports (Vite's dev server); the server entry lives
//          in `node`, the pages render in `ssr`;
//   prod — one bundled environment loading the single bundle library.
//
//   auto dev = Topology::Create(example::DevTopology(build_dir / "modules"));
//   auto prod = Topology::Create(example::ProdTopology(build_dir / "bundle" /
//   "modgraph-bundle.so"));
//
// `modgraph --topology dev|prod` (tools/modgraph/builtin_topologies.cc) finds
// the directories beside the tool; a topology file describes anything else.
#ifndef MODGRAPH_EXAMPLE_TOPOLOGIES_H_
#define MODGRAPH_EXAMPLE_TOPOLOGIES_H_

#include <filesystem>
#include <span>
#include <string>

#include "modgraph/environments/topology.h"

namespace modgraph::example {

// The example's page modules (plugins/), in the order they are served.
std::span<const std::string> Pages();

// `module_dir` holds `<id>.so` for every framework module and example page.
TopologySpec DevTopology(const std::filesystem::path& module_dir);
// `bundle` is the bundle library holding every module and page.
TopologySpec ProdTopology(const std::filesystem::path& bundle);

}  // namespace modgraph::example

#endif  // MODGRAPH_EXAMPLE_TOPOLOGIES_H_
