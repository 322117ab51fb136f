// topology.h — which environments exist and how each loads its modules.
//
// A topology is a set of environments, each one module graph: isolated (each
// loads its own copy of every module it imports, as Vite's dev server keeps a
// `node` and an `ssr` graph) or bundled (one bundle library, one instance of
// each module, as a production build). An application's built-in topologies
// are TopologySpecs built in code (the example's: examples/framework/); any
// other comes from a TOML file:
//
//   name = "my-app"
//   policy = "auto"                # warn | strict | auto (default warn)
//   preflight = "always"           # off | reloads | always (environment.h; default always)
//   deployment_id = "dpl-42"       # else $MODGRAPH_DEPLOYMENT_ID; cache keys use it
//   build_id = "b-7"
//   [providers]                    # extra provider declarations (descriptors declare too)
//   cart = ["cart-state"]
//   [server]                       # what `modgraph serve` serves
//   pages_environment = "app"
//   entry_environment = "app"
//   document = "app-shell"         # the module wrapping pages in a document, in entry_environment
//   pages = ["checkout-page"]
//   work_ms = 5                    # simulated latency of each page's data fetch (0 to 60000;
//   default 5)
//   [[environments]]
//   name = "app"
//   mode = "isolated"             # or "bundled"
//   module_roots = ["modules"]     # relative to this file
//   entries = ["app-entry"]
//   policy = "warn"                # overrides the topology's policy here (so does preflight)
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
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "modgraph/environments/environment.h"
#include "modgraph/loader/library_loader.h"
#include "modgraph/registry/registry.h"

namespace modgraph {

// What a plugin server serves from this topology.
struct ServerSpec {
  std::string pages_environment;  // where pages render
  std::string entry_environment;  // where the module that wraps pages in a document lives
  // That module's id (`[server] document`, e.g. "server-entry"): imported in
  // entry_environment when the server starts, then found through it on each
  // request (a reload swaps it). Empty: pages go into a plain HTML document.
  std::string document;
  std::vector<std::string> pages;  // page module ids
  // The latency, in milliseconds, of the asynchronous work the server hands each
  // page when serving (`[server] work_ms`): a simulated data fetch, during which
  // other requests run — as a real page's fetch lets them — so shared
  // module-level state shows with any ordinary client. 0 yields once instead
  // (benchmarks); a request's `?delay_ms=N` overrides it.
  int work_ms = kDefaultWorkMs;
  static constexpr int kDefaultWorkMs = 5;
  static constexpr int kMaxWorkMs = 60'000;  // one minute, as `?delay_ms=`
};

struct TopologySpec {
  std::string name;
  std::vector<EnvironmentSpec> environments;
  // Where it came from ("built-in" or a file path), for messages.
  std::string origin;
  // Topology-wide settings handed to every environment (deployment_id, build_id).
  std::map<std::string, std::string> settings;
  // target module → modules that provide accessors for it, beyond what loaded
  // descriptors declare.
  std::map<std::string, std::vector<std::string>> providers;
  ServerSpec server;
};

// Sets every environment's policy (the CLI's --policy).
void OverridePolicy(TopologySpec& spec, Policy policy);
// Sets every environment's preflight (the CLI preflights every load).
void OverridePreflight(TopologySpec& spec, Preflight preflight);

// Parses TOML text; relative paths resolve against `base_dir`.
absl::StatusOr<TopologySpec> ParseTopology(std::string_view toml_text, std::string_view origin,
                                           const std::filesystem::path& base_dir);
// Reads and parses a topology file.
absl::StatusOr<TopologySpec> LoadTopologyFile(const std::filesystem::path& path);

class Topology;

// How Topology::Load() loads a topology beyond what its spec says: the one
// path tools, the test kit and tests share.
struct LoadOptions {
  std::optional<Policy> policy;        // overrides every environment's policy
  std::optional<Preflight> preflight;  // overrides every environment's preflight
  LibraryLoader::Options loader;       // the topology's own loader
  // Runs once the environments exist, before any module loads (the CLI prints
  // CapacityWarnings() here).
  std::function<void(const Topology&)> before_entries;
};

// A topology and the errors of the entries that did not load (one status per
// failure, as LoadEntries() returns them; the rest of the topology loaded).
struct LoadedTopology {
  std::unique_ptr<Topology> topology;
  std::vector<absl::Status> errors;
};

// A loaded topology: its environments, each with its own instances.
class Topology {
 public:
  // Create() with the overrides of `options`, then LoadEntries(). A bad spec
  // is the error (as Create); module errors come back in `errors`.
  //
  //   absl::StatusOr<LoadedTopology> loaded =
  //       Topology::Load(std::move(spec), {.policy = Policy::kAuto});
  static absl::StatusOr<LoadedTopology> Load(TopologySpec spec, const LoadOptions& options = {});

  // Creates every environment. An environment whose spec is bad fails the whole
  // topology (it is a configuration error); see Load() for module errors.
  static absl::StatusOr<std::unique_ptr<Topology>> Create(TopologySpec spec,
                                                          LibraryLoader::Options options = {});

  ~Topology();

  // Imports every environment's entry modules (each environment applying its
  // policy as it goes), then applies auto again wherever another environment
  // taught the provider catalog something new. An environment that fails keeps
  // whatever it had and the others still load; one status per failure.
  std::vector<absl::Status> LoadEntries();

  // An upper bound of what LoadEntries() will take: a private copy of every
  // module library in an isolated environment's roots, one bundle copy per
  // bundled environment. Only reads directory entries.
  CapacityPlan PlanCapacity() const;
  // CapacityWarnings(PlanCapacity(), loader's capacity now): what would not fit,
  // to say before loading (`modgraph doctor` prints these as warnings).
  std::vector<std::string> CapacityWarnings() const;

  // Reloads `module_id` (and its importers) in `environment`, as a dev server
  // does when a file changes: a transaction (Environment::Reload); under auto
  // the providers register again inside it. On error the old instances keep
  // serving.
  absl::Status Reload(std::string_view environment, std::string_view module_id);

  const TopologySpec& spec() const { return spec_; }
  Environment* environment(std::string_view name) const;
  const std::vector<std::unique_ptr<Environment>>& environments() const { return environments_; }
  LibraryLoader& loader() { return *loader_; }
  // Every instance and slot of every environment, and the provider catalog.
  const Registry& registry() const { return *registry_; }

 private:
  class RegistryFeed;
  Topology() = default;
  // Environment::ApplyPolicy() on every auto environment until nothing changes.
  std::vector<absl::Status> ApplyAutoPolicy();

  TopologySpec spec_;
  // Declared before the environments so they outlive them: environments report
  // unloads to the registry, and the loader owns the copy directory.
  std::unique_ptr<LibraryLoader> loader_;
  std::unique_ptr<Registry> registry_;
  std::unique_ptr<RegistryFeed> feed_;
  std::vector<std::unique_ptr<Environment>> environments_;
};

}  // namespace modgraph

#endif  // MODGRAPH_ENVIRONMENTS_TOPOLOGY_H_
