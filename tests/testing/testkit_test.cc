// The test kit reproduces the dev-only head leak deterministically, shows dev
// auto and prod isolated, lists dev/prod divergences and minimises a leaking run.
#include "modgraph/testing/testkit.h"

#include <gmock/gmock.h>

#include "modgraph/example/topologies.h"
#include "modgraph/testing/matchers.h"

namespace modgraph::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::SizeIs;

const std::filesystem::path kModuleDir = MODGRAPH_TEST_MODULE_DIR;
const std::filesystem::path kBundle = MODGRAPH_TEST_BUNDLE;

std::unique_ptr<Topology> Dev(Policy policy) {
  auto topology = LoadForTest(example::DevTopology(kModuleDir), policy);
  EXPECT_TRUE(topology.ok()) << topology.status();
  return topology.ok() ? *std::move(topology) : nullptr;
}
std::unique_ptr<Topology> Prod() {
  auto topology = LoadForTest(example::ProdTopology(kBundle), Policy::kWarn);
  EXPECT_TRUE(topology.ok()) << topology.status();
  return topology.ok() ? *std::move(topology) : nullptr;
}

RunReport Fire(Topology& topology, const std::vector<std::string>& targets, std::uint64_t seed) {
  absl::StatusOr<RunReport> run = FireConcurrent(topology, targets, {.seed = seed});
  EXPECT_TRUE(run.ok()) << run.status();
  return run.ok() ? *std::move(run) : RunReport{};
}

TEST(TestKitTest, DevWarnLeaksTheHeadInEveryRun) {
  auto dev = Dev(Policy::kWarn);
  for (std::uint64_t seed : {1, 2, 3, 4, 5}) {
    for (int n : {15, 200}) {
      RunReport run = Fire(*dev, Targets("/concurrent-head?id={}", n), seed);
      EXPECT_THAT(run, Not(IsIsolated())) << "seed " << seed << " n " << n;
      EXPECT_THAT(run, HasFallbackHits("ssr#head"));
      EXPECT_THAT(run, HasCrossRequestLeak());
      EXPECT_THAT(run.ContaminatedResponses(), SizeIs(n - 1));  // all but the last writer
    }
  }
}

TEST(TestKitTest, DevAutoAndProdGiveEveryResponseOnlyItsOwnData) {
  auto dev = Dev(Policy::kAuto);
  auto prod = Prod();
  for (const char* page :
       {"/concurrent-head?id={}", "/concurrent-router?id={}&x=y", "/request-store?id={}"}) {
    for (int n : {15, 200}) {
      EXPECT_THAT(Fire(*dev, Targets(page, n), 11), IsIsolated()) << page;
      EXPECT_THAT(Fire(*prod, Targets(page, n), 11), IsIsolated()) << page;
    }
  }
}

TEST(TestKitTest, DevWarnLeaksTheRouterToo) {
  auto dev = Dev(Policy::kWarn);
  RunReport run = Fire(*dev, Targets("/concurrent-router?id={}", 15), 3);
  EXPECT_THAT(run, Not(IsIsolated()));
  EXPECT_THAT(run, HasFallbackHits("ssr#router"));
}

TEST(TestKitTest, SameSeedSameInterleavingSameResult) {
  auto dev = Dev(Policy::kWarn);
  const std::vector<std::string> targets = Targets("/concurrent-head?id={}", 15);
  RunReport first = Fire(*dev, targets, 42);
  RunReport again = Fire(*dev, targets, 42);
  RunReport other = Fire(*dev, targets, 43);
  EXPECT_EQ(first.start_order, again.start_order);
  EXPECT_EQ(first.release_order, again.release_order);
  for (std::size_t i = 0; i < targets.size(); ++i) {
    EXPECT_EQ(first.responses[i].body, again.responses[i].body) << i;
  }
  EXPECT_EQ(first.ContaminatedResponses(), again.ContaminatedResponses());
  EXPECT_NE(first.start_order, other.start_order);
}

TEST(TestKitTest, StrictAnswersTheUnsafeRequestWithAnErrorNamingTheInstance) {
  auto dev = Dev(Policy::kStrict);
  RunReport run = Fire(*dev, Targets("/concurrent-head?id={}", 3), 1);
  for (const TestResponse& response : run.responses) {
    EXPECT_EQ(response.status, 500);
    EXPECT_THAT(response.body, HasSubstr("ssr#head"));
    EXPECT_THAT(response.body, HasSubstr("head-state"));
  }
  // Pages that touch no unregistered slot still work under strict.
  RunReport store = Fire(*dev, Targets("/request-store?id={}", 3), 1);
  EXPECT_THAT(store, IsIsolated());
}

TEST(TestKitTest, ParityListsTheDivergencesOfDevWarnOnly) {
  auto warn = Dev(Policy::kWarn);
  auto fixed = Dev(Policy::kAuto);
  auto prod = Prod();
  const std::vector<std::string> targets = Targets("/concurrent-head?id={}", 15);
  absl::StatusOr<ParityReport> broken = RunParity(*warn, *prod, targets, {.seed = 5});
  ASSERT_TRUE(broken.ok()) << broken.status();
  EXPECT_THAT(*broken, Not(HasNoDivergences()));
  EXPECT_THAT(broken->divergences, SizeIs(14));
  absl::StatusOr<ParityReport> same = RunParity(*fixed, *prod, targets, {.seed = 5});
  ASSERT_TRUE(same.ok()) << same.status();
  EXPECT_THAT(*same, HasNoDivergences());
}

TEST(TestKitTest, MinimisesALeakingRunToTwoRequests) {
  auto dev = Dev(Policy::kWarn);
  const std::vector<std::string> targets = Targets("/concurrent-head?id={}", 15);
  absl::StatusOr<std::vector<std::string>> smallest = MinimiseLeak(*dev, targets, {.seed = 9});
  ASSERT_TRUE(smallest.ok()) << smallest.status();
  ASSERT_THAT(*smallest, SizeIs(2));
  EXPECT_TRUE(Leaks(Fire(*dev, *smallest, 9)));
  // Mixed with pages that cannot leak, only head requests remain.
  std::vector<std::string> mixed = Targets("/request-store?id={}", 6);
  mixed.push_back("/concurrent-head?id=100");
  mixed.push_back("/concurrent-head?id=101");
  smallest = MinimiseLeak(*dev, mixed, {.seed = 9});
  ASSERT_TRUE(smallest.ok());
  EXPECT_THAT(*smallest, ElementsAre("/concurrent-head?id=100", "/concurrent-head?id=101"));
  // Nothing to minimise where nothing leaks.
  auto fixed = Dev(Policy::kAuto);
  smallest = MinimiseLeak(*fixed, targets, {.seed = 9});
  ASSERT_TRUE(smallest.ok());
  EXPECT_TRUE(smallest->empty());
}

TEST(TestKitTest, CachedPageKeysEntriesByTheRequestsDeployment) {
  auto prod = Prod();
  RunReport run = Fire(*prod,
                       {"/cached?name=ada&deployment=blue-1", "/cached?name=ada&deployment=green-2",
                        "/cached?name=ada&deployment=bad%20id", "/cached?name=ada"},
                       1);
  ASSERT_THAT(run.responses, SizeIs(4));
  EXPECT_THAT(run.responses[0].body, HasSubstr("<p data-testid=\"seed\">blue-1</p>"));
  EXPECT_THAT(run.responses[1].body, HasSubstr("<p data-testid=\"seed\">green-2</p>"));
  EXPECT_THAT(run.responses[0].body, HasSubstr("hello ada"));
  EXPECT_EQ(run.responses[2].status, 400);  // an invalid deployment id is refused
  // Without one, the key falls back to the build id.
  EXPECT_THAT(run.responses[3].body, Not(HasSubstr("blue-1")));
  EXPECT_THAT(run.responses[3].body, HasSubstr("hello ada"));
}

TEST(TestKitTest, BadTargetsAndUnknownPagesAreReported) {
  auto dev = Dev(Policy::kAuto);
  RunReport run = Fire(*dev, {"/nope", "/concurrent-head?id=1"}, 1);
  ASSERT_THAT(run.responses, SizeIs(2));
  EXPECT_EQ(run.responses[0].status, 404);
  EXPECT_THAT(run.NonOkResponses(), ElementsAre(0u));
  EXPECT_EQ(MarkerOf("/concurrent-head?id=7"), "req-7");
  EXPECT_EQ(MarkerOf("/concurrent-head"), "");
}

TEST(TestKitTest, TargetsThePagesDoNotServeAreAnErrorListingTheRoutes) {
  auto dev = Dev(Policy::kAuto);
  EXPECT_TRUE(CheckTargetsServed(*dev, Targets("/concurrent-head?id={}", 3)).ok());
  const absl::Status status =
      CheckTargetsServed(*dev, std::vector<std::string>{"/concurrent-head?id=0", "/nope?id=1"});
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(), HasSubstr("serves no page at /nope"));
  EXPECT_THAT(status.message(), HasSubstr("environment 'ssr' serves /concurrent-head"));
  EXPECT_THAT(status.message(), HasSubstr("/request-store"));
  absl::StatusOr<std::vector<std::string>> routes = ServedRoutes(*dev);
  ASSERT_TRUE(routes.ok()) << routes.status();
  EXPECT_THAT(*routes, ::testing::Contains("/cached"));
}

}  // namespace
}  // namespace modgraph::testing
