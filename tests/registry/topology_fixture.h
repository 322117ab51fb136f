// Loads the built-in dev and prod topologies for the registry suites.
#ifndef MODGRAPH_TESTS_REGISTRY_TOPOLOGY_FIXTURE_H_
#define MODGRAPH_TESTS_REGISTRY_TOPOLOGY_FIXTURE_H_

#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <ostream>

#include "absl/strings/string_view.h"
#include "modgraph/environments/topology.h"
#include "modgraph/example/topologies.h"
#include "modgraph/registry/sentinel.h"

namespace absl {
inline void PrintTo(absl::string_view text, std::ostream* os) { *os << std::string(text); }
}  // namespace absl

namespace modgraph::testing {

inline const std::filesystem::path kModuleDir = MODGRAPH_TEST_MODULE_DIR;
inline const std::filesystem::path kBundle = MODGRAPH_TEST_BUNDLE;

inline std::unique_ptr<Topology> LoadTopology(TopologySpec spec, Policy policy) {
  auto loaded = Topology::Load(std::move(spec), {.policy = policy});
  EXPECT_TRUE(loaded.ok()) << loaded.status();
  if (!loaded.ok()) return nullptr;
  for (const absl::Status& error : loaded->errors) ADD_FAILURE() << error;
  return std::move(loaded->topology);
}

inline std::unique_ptr<Topology> Dev(Policy policy) {
  return LoadTopology(example::DevTopology(kModuleDir), policy);
}
inline std::unique_ptr<Topology> Prod(Policy policy = Policy::kWarn) {
  return LoadTopology(example::ProdTopology(kBundle), policy);
}

template <class Api>
const Api& ApiOf(const Topology& topology, std::string_view env, std::string_view module) {
  const Instance* instance = topology.environment(env)->Find(module);
  if (instance == nullptr) throw std::runtime_error("no instance");
  return *instance->api<Api>();
}

// Each test starts with no recorded sentinel events.
class SentinelTest : public ::testing::Test {
 protected:
  void SetUp() override { Sentinel::Global().ClearEvents(); }
  Sentinel& sentinel() { return Sentinel::Global(); }
};

}  // namespace modgraph::testing

#endif  // MODGRAPH_TESTS_REGISTRY_TOPOLOGY_FIXTURE_H_
