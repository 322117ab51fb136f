// Anonymous context keys in module code: a key declared in a header shared by
// two modules is two keys when each module is its own copy (dev) and one key in
// a bundle (prod). The registry reports every such key with the copies that
// construct it; reloads keep each anonymous declaration's index.
#include "anonymous_key.h"

#include <gmock/gmock.h>

#include "modgraph/context/request_context.h"
#include "topology_fixture.h"

namespace modgraph::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

const std::filesystem::path kFixtureDir = MODGRAPH_REGISTRY_FIXTURE_DIR;

std::unique_ptr<Topology> Isolated() {
  TopologySpec spec{.name = "anon-dev", .origin = "anonymous_key_test.cc"};
  spec.environments.push_back({.name = "ssr",
                               .module_roots = {kFixtureDir / "modules"},
                               .entry_modules = {"anon-key-setter"}});
  return LoadTopology(std::move(spec), Policy::kWarn);
}

std::unique_ptr<Topology> Bundled() {
  TopologySpec spec{.name = "anon-prod", .origin = "anonymous_key_test.cc"};
  spec.environments.push_back({.name = "prod",
                               .mode = EnvironmentMode::kBundled,
                               .module_roots = {kFixtureDir / "bundle"},
                               .bundle = kFixtureDir / "bundle" / "anon-key-bundle.so",
                               .entry_modules = {"anon-key-setter"}});
  return LoadTopology(std::move(spec), Policy::kWarn);
}

std::string Render(const Topology& topology, std::string_view environment) {
  const auto* setter =
      topology.environment(environment)->Find("anon-key-setter")->api<AnonymousKeySetterApi>();
  return run_request(RequestContext::create(), [&] { return setter->render("fr"); });
}

TEST(AnonymousKeyTest, AKeySharedByTwoCopiesIsReportedWithBothModules) {
  auto dev = Isolated();
  ASSERT_NE(dev, nullptr);
  // The divergence the finding explains: the reader's copy has its own key.
  EXPECT_EQ(Render(*dev, "ssr"), "anonymous=<none> named=fr");
  std::vector<AnonymousKey> keys = dev->registry().AnonymousKeys();
  ASSERT_THAT(keys, SizeIs(1));
  EXPECT_EQ(keys[0].environment, "ssr");
  EXPECT_THAT(keys[0].type, HasSubstr("basic_string"));
  EXPECT_THAT(keys[0].constructed_by, ElementsAre("ssr#anon-key-reader", "ssr#anon-key-setter"));
  EXPECT_THAT(keys[0].indexes, SizeIs(2));  // two keys: the split
}

TEST(AnonymousKeyTest, InABundleTheKeyIsOneButStillAnonymous) {
  auto prod = Bundled();
  ASSERT_NE(prod, nullptr);
  EXPECT_EQ(Render(*prod, "prod"), "anonymous=fr named=fr");
  std::vector<AnonymousKey> keys = prod->registry().AnonymousKeys();
  ASSERT_THAT(keys, SizeIs(1));
  EXPECT_THAT(keys[0].constructed_by, ElementsAre("prod#anon-key-reader, prod#anon-key-setter"));
  EXPECT_THAT(keys[0].indexes, SizeIs(1));
}

TEST(AnonymousKeyTest, TheFrameworkModulesDeclareNoAnonymousKey) {
  EXPECT_THAT(Dev(Policy::kAuto)->registry().AnonymousKeys(), IsEmpty());
  EXPECT_THAT(Prod()->registry().AnonymousKeys(), IsEmpty());
}

TEST(AnonymousKeyTest, ReloadsKeepTheIndexOfEachAnonymousDeclaration) {
  auto dev = Isolated();
  ASSERT_NE(dev, nullptr);
  auto reader_index = [&] {
    return dev->environment("ssr")
        ->Find("anon-key-reader")
        ->api<AnonymousKeyReaderApi>()
        ->anonymous_index();
  };
  const std::uint32_t before = reader_index();
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(dev->Reload("ssr", "anon-key-reader").ok());
    EXPECT_EQ(reader_index(), before) << "after reload " << i + 1;
    EXPECT_EQ(Render(*dev, "ssr"), "anonymous=<none> named=fr");
  }
  // Still one index per copy's declaration, not one per reload.
  std::vector<AnonymousKey> keys = dev->registry().AnonymousKeys();
  ASSERT_THAT(keys, SizeIs(1));
  EXPECT_THAT(keys[0].indexes, SizeIs(2));
}

}  // namespace
}  // namespace modgraph::testing
