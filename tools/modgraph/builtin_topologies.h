// builtin_topologies.h — resolves `--topology` arguments: "dev", "prod" or a file.
#ifndef MODGRAPH_TOOLS_BUILTIN_TOPOLOGIES_H_
#define MODGRAPH_TOOLS_BUILTIN_TOPOLOGIES_H_

#include <string_view>

#include "absl/status/statusor.h"
#include "modgraph/environments/topology.h"

namespace modgraph::tools {

// "dev" and "prod" load the framework modules shipped beside the tool
// ($MODGRAPH_MODULE_DIR, else <tool dir>/../modules and ../bundle); anything
// else is read as a topology file.
absl::StatusOr<TopologySpec> ResolveTopology(std::string_view name_or_file);

}  // namespace modgraph::tools

#endif  // MODGRAPH_TOOLS_BUILTIN_TOPOLOGIES_H_
