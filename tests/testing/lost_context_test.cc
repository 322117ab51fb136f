// A provider's accessor reached without a request scope while requests are in
// flight is a lost context: reported with instance, slot, provider and thread,
// and under strict the requests in flight fail with a message saying how to
// carry the context. The fixture page writes the head from a plain std::thread.
#include <gmock/gmock.h>
#include <unistd.h>

#include "modgraph/context/request_context.h"
#include "modgraph/example/topologies.h"
#include "modgraph/modules/head.h"
#include "modgraph/modules/i18n.h"
#include "modgraph/modules/request_store.h"
#include "modgraph/modules/router.h"
#include "modgraph/testing/matchers.h"
#include "modgraph/testing/testkit.h"

namespace modgraph {
// Readable failures.
inline void PrintTo(const LostContext& lost, std::ostream* os) { *os << LostContextMessage(lost); }
}  // namespace modgraph

namespace modgraph::testing {
namespace {

using ::testing::AllOf;
using ::testing::Each;
using ::testing::Field;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Ne;
using ::testing::Not;
using ::testing::SizeIs;

const std::filesystem::path kModuleDir = MODGRAPH_TEST_MODULE_DIR;
const std::filesystem::path kFixtureDir = MODGRAPH_TESTKIT_FIXTURE_DIR;

// One `ssr` environment serving /lost-ctx, with head-state registered on its head.
TopologySpec LostContextTopology() {
  TopologySpec spec{.name = "lost-ctx", .origin = "lost_context_test.cc"};
  spec.environments.push_back({.name = "ssr",
                               .module_roots = {kFixtureDir, kModuleDir},
                               .entry_modules = {"lost-ctx-page", "head-state"}});
  spec.server = {.pages_environment = "ssr", .entry_environment = "", .pages = {"lost-ctx-page"}};
  return spec;
}

std::unique_ptr<Topology> Load(TopologySpec spec, Policy policy) {
  auto topology = LoadForTest(std::move(spec), policy);
  EXPECT_TRUE(topology.ok()) << topology.status();
  return topology.ok() ? *std::move(topology) : nullptr;
}

RunReport Fire(Topology& topology, const std::vector<std::string>& targets) {
  absl::StatusOr<RunReport> run = FireConcurrent(topology, targets, {.seed = 1});
  EXPECT_TRUE(run.ok()) << run.status();
  return run.ok() ? *std::move(run) : RunReport{};
}

TEST(LostContextTest, APlainThreadWritingTheHeadIsReportedWithInstanceSlotAndThread) {
  for (Policy policy : {Policy::kWarn, Policy::kAuto}) {
    auto topology = Load(LostContextTopology(), policy);
    ASSERT_NE(topology, nullptr);
    RunReport run = Fire(*topology, Targets("/lost-ctx?id={}", 15));
    EXPECT_THAT(run, Not(IsIsolated()));  // the provider fell back to the shared head
    EXPECT_THAT(run, HasLostContext("ssr#head"));
    EXPECT_THAT(run.NonOkResponses(), IsEmpty());  // warn and auto record, they do not fail
    // add_child and render each go through the slot once, off-thread, per request.
    ASSERT_THAT(run.lost_contexts, SizeIs(30));
    const auto gettid_of_test = static_cast<std::uint64_t>(::gettid());
    EXPECT_THAT(
        run.lost_contexts,
        Each(AllOf(Field(&LostContext::environment, "ssr"), Field(&LostContext::module, "head"),
                   Field(&LostContext::slot, "get_ssr_head_children"),
                   Field(&LostContext::provider_instance, "ssr#head-state"),
                   Field(&LostContext::thread_id, Ne(gettid_of_test)),
                   Field(&LostContext::requests_in_flight, ::testing::Ge(1u)))));
    EXPECT_THAT(
        LostContextMessage(run.lost_contexts.front()),
        AllOf(HasSubstr("slot 'get_ssr_head_children' of ssr#head"),
              HasSubstr("through provider ssr#head-state"), HasSubstr("modgraph::spawn_thread(fn)"),
              HasSubstr("modgraph::bind(fn)"), HasSubstr("modgraph::submit(pool, fn)")));
  }
}

TEST(LostContextTest, StrictFailsTheRequestsInFlightNamingTheSlotAndTheFix) {
  auto topology = Load(LostContextTopology(), Policy::kStrict);
  ASSERT_NE(topology, nullptr);
  RunReport run = Fire(*topology, Targets("/lost-ctx?id={}", 15));
  ASSERT_THAT(run.responses, SizeIs(15));
  for (const TestResponse& response : run.responses) {
    EXPECT_EQ(response.status, 500) << response.target;
    EXPECT_THAT(response.body, AllOf(HasSubstr("strict policy"),
                                     HasSubstr("slot 'get_ssr_head_children' of ssr#head"),
                                     HasSubstr("modgraph::spawn_thread(fn)")));
  }
}

TEST(LostContextTest, CarryingTheContextWithSpawnThreadIsCleanEvenUnderStrict) {
  auto topology = Load(LostContextTopology(), Policy::kStrict);
  ASSERT_NE(topology, nullptr);
  RunReport run = Fire(*topology, Targets("/lost-ctx?bound=1&id={}", 15));
  EXPECT_THAT(run, IsIsolated());
  EXPECT_THAT(run.lost_contexts, IsEmpty());
  EXPECT_THAT(run.NonOkResponses(), IsEmpty());
}

// Outside any request (start-up code, no request alive) the fallback is
// legitimate: nothing is reported.
TEST(LostContextTest, NoRequestInFlightIsStartUpCodeNotALostContext) {
  auto dev = Load(example::DevTopology(kModuleDir), Policy::kAuto);
  ASSERT_NE(dev, nullptr);
  Sentinel::Global().ClearEvents();
  ASSERT_EQ(RequestsInFlight(), 0u);
  const auto* head = dev->environment("ssr")->Find("head")->api<modules::HeadApi>();
  head->add_child("<title>boot</title>");
  head->reset();
  EXPECT_EQ(Sentinel::Global().lost_context_count(), 0u);
}

// Every framework provider reads its state through the SDK, and request-store's
// own accessor checks too: each names its instance and slot (or accessor).
TEST(LostContextTest, EveryFrameworkProviderReportsWhileARequestIsInFlight) {
  auto dev = Load(example::DevTopology(kModuleDir), Policy::kAuto);
  ASSERT_NE(dev, nullptr);
  Sentinel::Global().ClearEvents();
  const Environment& ssr = *dev->environment("ssr");
  const RequestContext in_flight = RequestContext::create();  // alive, but not current here
  EXPECT_EQ(RequestsInFlight(), 1u);
  ssr.Find("head")->api<modules::HeadApi>()->add_child("<title>lost</title>");
  ssr.Find("router")->api<modules::RouterApi>()->set_route("/lost", {});
  (void)ssr.Find("i18n")->api<modules::I18nApi>()->locale();
  (void)ssr.Find("request-store")->api<modules::RequestStoreApi>()->store();
  std::vector<std::string> where;
  for (const LostContext& lost : Sentinel::Global().lost_contexts()) {
    where.push_back(lost.instance + " " + lost.slot + " " + lost.provider_instance);
  }
  EXPECT_THAT(where, ::testing::ElementsAre("ssr#head get_ssr_head_children ssr#head-state",
                                            "ssr#router get_router_state ssr#router-state",
                                            "ssr#i18n get_locale_store ssr#i18n-state",
                                            "ssr#request-store store "));
  // Inside the request's scope nothing is lost.
  Sentinel::Global().ClearEvents();
  run_request(in_flight, [&] {
    ssr.Find("head")->api<modules::HeadApi>()->add_child("<title>kept</title>");
    (void)ssr.Find("request-store")->api<modules::RequestStoreApi>()->store();
  });
  EXPECT_EQ(Sentinel::Global().lost_context_count(), 0u);
}

// Two topologies in one process: the policy of the copy that lost the context
// decides, not the other topology's.
TEST(LostContextTest, ThePolicyIsThatOfTheCopyThatLostTheContext) {
  auto warn = Load(LostContextTopology(), Policy::kWarn);
  auto strict = Load(LostContextTopology(), Policy::kStrict);
  ASSERT_NE(warn, nullptr);
  ASSERT_NE(strict, nullptr);
  RunReport run = Fire(*warn, Targets("/lost-ctx?id={}", 3));
  EXPECT_THAT(run.NonOkResponses(), IsEmpty());
  EXPECT_THAT(run.lost_contexts, Each(Field(&LostContext::policy, Policy::kWarn)));
  run = Fire(*strict, Targets("/lost-ctx?id={}", 3));
  EXPECT_THAT(run.NonOkResponses(), SizeIs(3));
  EXPECT_THAT(run.lost_contexts, Each(Field(&LostContext::policy, Policy::kStrict)));
}

}  // namespace
}  // namespace modgraph::testing
