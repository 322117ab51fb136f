// topology.h — which environments exist and how each loads its modules.
//
// Built-in topologies mirror the two situations the bug lives between:
//   dev  — environments `node` and `ssr`, isolated: each loads its own copy of
//          every module it imports (Vite's dev server);
//   prod — one bundled environment loading the single bundle library.
// User-defined topologies come from a TOML file:
//
//   name = "my-app"
//   [[environments]]
//   name = "node"
//   mode = "isolated"             # or "bundled"
//   module_roots = ["modules"]     # relative to this file
//   entries = ["server-entry"]
//   [[environments]]
//   name = "prod"
//   mode = "bundled"
//   module_roots = ["bundle"]
//   bundle = "bundle/modgraph-bundle.so"
//
// Unknown keys are errors: a misspelt key must not silently change what loads.
#ifndef MODGRAPH_ENVIRONMENTS_TOPOLOGY_H_
#define MODGRAPH_ENVIRONMENTS_TOPOLOGY_H_

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "modgraph/environments/environment.h"
#include "modgraph/loader/library_loader.h"

namespace modgraph {

struct TopologySpec {
  std::string name;
  std::vector<EnvironmentSpec> environments;
  // Where it came from ("built-in" or a file path), for messages.
  std::string origin;
  // Keys later layers read (policy, deployment id), kept verbatim.
  std::map<std::string, std::string> settings;
};

// Parses TOML text; relative paths resolve against `base_dir`.
absl::StatusOr<TopologySpec> ParseTopology(std::string_view toml_text, std::string_view origin,
                                           const std::filesystem::path& base_dir);
// Reads and parses a topology file.
absl::StatusOr<TopologySpec> LoadTopologyFile(const std::filesystem::path& path);

// The built-in topologies. `module_dir` holds `<id>.so` files; `bundle` is the
// bundle library.
TopologySpec DevTopology(const std::filesystem::path& module_dir);
TopologySpec ProdTopology(const std::filesystem::path& bundle);

// A loaded topology: its environments, each with its own instances.
class Topology {
 public:
  // Creates every environment. An environment whose spec is bad fails the whole
  // topology (it is a configuration error); see Load() for module errors.
  static absl::StatusOr<std::unique_ptr<Topology>> Create(TopologySpec spec,
                                                          LibraryLoader::Options options = {});

  // Imports every environment's entry modules. An environment that fails keeps
  // whatever it had and the others still load; one status per failed environment.
  std::vector<absl::Status> LoadEntries();

  const TopologySpec& spec() const { return spec_; }
  Environment* environment(std::string_view name) const;
  const std::vector<std::unique_ptr<Environment>>& environments() const { return environments_; }
  LibraryLoader& loader() { return *loader_; }

 private:
  Topology() = default;
  TopologySpec spec_;
  // Declared first so it outlives the environments (it owns the copy directory).
  std::unique_ptr<LibraryLoader> loader_;
  std::vector<std::unique_ptr<Environment>> environments_;
};

}  // namespace modgraph

#endif  // MODGRAPH_ENVIRONMENTS_TOPOLOGY_H_
