// Registry and policies on the real framework modules: which instances are left
// unregistered in dev, that auto and prod leave none, that strict refuses, that
// the sentinel sees fallback hits and cross-request leaks, and reload.
#include "modgraph/registry/registry.h"

#include <fmt/format.h>
#include <gmock/gmock.h>

#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "modgraph/context/asio.h"
#include "modgraph/context/request_context.h"
#include "modgraph/example/topologies.h"
#include "modgraph/modules/head.h"
#include "modgraph/modules/router.h"
#include "topology_fixture.h"

namespace modgraph {
namespace {

using modules::HeadApi;
using modules::RouterApi;
using ::testing::AllOf;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using namespace ::modgraph::testing;

std::vector<std::string> FindingNames(const Registry& registry) {
  std::vector<std::string> names;
  for (const Finding& f : registry.Findings()) names.push_back(f.instance + " " + f.slot);
  return names;
}

TEST(RegistryTest, DevWarnListsExactlyTheSsrHeadAndRouterWithTheirTwins) {
  auto dev = Dev(Policy::kWarn);
  const std::vector<Finding> findings = dev->registry().Findings();
  EXPECT_THAT(FindingNames(dev->registry()),
              ElementsAre("ssr#head get_ssr_head_children", "ssr#router get_router_state"));
  ASSERT_EQ(findings.size(), 2u);
  EXPECT_THAT(findings[0].registered_twins, ElementsAre("node#head"));
  EXPECT_THAT(findings[0].fixing_providers, ElementsAre("head-state"));
  EXPECT_THAT(findings[1].registered_twins, ElementsAre("node#router"));
  EXPECT_THAT(findings[1].fixing_providers, ElementsAre("router-state"));
  // i18n-state is loaded in ssr, so ssr#i18n is registered.
  std::optional<InstanceRecord> i18n = dev->registry().Find("ssr#i18n");
  ASSERT_TRUE(i18n.has_value());
  for (const SlotRecord& slot : i18n->slots) {
    EXPECT_TRUE(slot.registered) << slot.slot;
    EXPECT_EQ(slot.provider_instance, "ssr#i18n-state");
  }
  std::optional<InstanceRecord> node_head = dev->registry().Find("node#head");
  ASSERT_TRUE(node_head.has_value());
  EXPECT_EQ(node_head->slots.at(0).provider_instance, "node#head-state");
  EXPECT_NE(node_head->slots.at(0).registered_at, std::chrono::system_clock::time_point{});
}

TEST(RegistryTest, DevAutoRegistersEveryInstance) {
  auto dev = Dev(Policy::kAuto);
  EXPECT_THAT(dev->registry().Findings(), IsEmpty());
  EXPECT_NE(dev->environment("ssr")->Find("head-state"), nullptr);
  EXPECT_NE(dev->environment("ssr")->Find("router-state"), nullptr);
  EXPECT_EQ(dev->registry().Find("ssr#head")->slots.at(0).provider_instance, "ssr#head-state");
}

TEST(RegistryTest, ProdHasNothingUnregistered) {
  auto prod = Prod();
  EXPECT_THAT(prod->registry().Findings(), IsEmpty());
  EXPECT_EQ(prod->registry().Find("prod#head")->slots.at(0).provider_instance, "prod#head-state");
}

TEST_F(SentinelTest, StrictRefusesARequestThatTouchesAnUnregisteredSlot) {
  auto dev = Dev(Policy::kStrict);
  const HeadApi& ssr_head = ApiOf<HeadApi>(*dev, "ssr", "head");
  const HeadApi& node_head = ApiOf<HeadApi>(*dev, "node", "head");
  RequestContext request = RequestContext::create(41);
  try {
    run_request(request, [&] { ssr_head.add_child("<title>req-41</title>"); });
    FAIL() << "strict policy let the request through";
  } catch (const StrictPolicyError& error) {
    EXPECT_THAT(error.what(), HasSubstr("ssr#head"));
    EXPECT_THAT(error.what(), HasSubstr("'get_ssr_head_children'"));
    EXPECT_THAT(error.what(), HasSubstr("environment 'ssr'"));
    EXPECT_THAT(error.what(), HasSubstr("load head-state in environment 'ssr'"));
    EXPECT_THAT(error.what(), HasSubstr("request 41"));
  }
  // The registered instance serves the same request without complaint.
  EXPECT_NO_THROW(run_request(request, [&] { node_head.add_child("<title>ok</title>"); }));
  EXPECT_TRUE(ssr_head.module_children()->empty());
}

// Two requests interleave on one io_context thread: each sets its title, then
// awaits, then renders. The timer lengths fix the interleaving: both write
// before either renders.
std::vector<std::string> RenderInterleaved(const HeadApi& head) {
  boost::asio::io_context io;
  std::vector<std::string> rendered(3);
  for (std::uint64_t id : {1, 2}) {
    RequestContext request = RequestContext::create(id);
    run_request(request, [&] {
      modgraph::co_spawn(
          io,
          [&head, &rendered, id]() -> boost::asio::awaitable<void> {
            head.add_child(fmt::format("<title>req-{}</title>", id));
            boost::asio::steady_timer timer(co_await boost::asio::this_coro::executor,
                                            std::chrono::milliseconds(id == 1 ? 2 : 1));
            co_await timer.async_wait(boost::asio::use_awaitable);
            rendered[id] = head.render();
          },
          boost::asio::detached);
    });
  }
  io.run();
  return rendered;
}

TEST_F(SentinelTest, DevWarnLeaksOneRequestsTitleIntoAnotherAndReportsIt) {
  auto dev = Dev(Policy::kWarn);
  const std::vector<std::string> rendered = RenderInterleaved(ApiOf<HeadApi>(*dev, "ssr", "head"));
  // The bug: request 1's page carries request 2's title.
  EXPECT_THAT(rendered[1], HasSubstr("<title>req-2</title>"));
  EXPECT_GE(sentinel().fallback_hit_count(), 4u);
  EXPECT_THAT(sentinel().fallback_hits(),
              Contains(AllOf(Field(&FallbackHit::instance, "ssr#head"),
                             Field(&FallbackHit::slot, "get_ssr_head_children"),
                             Field(&FallbackHit::request_id, 2u))));
  ASSERT_GE(sentinel().leak_count(), 1u);
  const CrossRequestLeak leak = sentinel().leaks().front();
  EXPECT_EQ(leak.instance, "ssr#head");
  EXPECT_EQ(leak.environment, "ssr");
  EXPECT_EQ(leak.module, "head");
  EXPECT_EQ(leak.slot, "get_ssr_head_children");
  EXPECT_EQ(leak.first_request, 1u);
  EXPECT_EQ(leak.second_request, 2u);
}

TEST_F(SentinelTest, DevAutoAndProdKeepEachRequestsTitle) {
  std::vector<std::unique_ptr<Topology>> topologies;
  topologies.push_back(Dev(Policy::kAuto));
  topologies.push_back(Prod());
  for (const auto& topology : topologies) {
    const std::string env = topology->spec().name == "prod" ? "prod" : "ssr";
    const std::vector<std::string> rendered =
        RenderInterleaved(ApiOf<HeadApi>(*topology, env, "head"));
    EXPECT_EQ(rendered[1], "<title>req-1</title>") << env;
    EXPECT_EQ(rendered[2], "<title>req-2</title>") << env;
  }
  EXPECT_EQ(sentinel().fallback_hit_count(), 0u);
  EXPECT_EQ(sentinel().leak_count(), 0u);
}

TEST_F(SentinelTest, OutsideARequestTheDefaultIsNoFallbackHit) {
  auto dev = Dev(Policy::kStrict);
  ApiOf<HeadApi>(*dev, "ssr", "head").add_child("<meta charset=utf-8>");  // start-up code
  EXPECT_EQ(sentinel().fallback_hit_count(), 0u);
}

TEST(RegistryTest, ReloadUnderAutoRegistersTheNewInstanceAgain) {
  auto dev = Dev(Policy::kAuto);
  const std::string old_library = dev->registry().Find("ssr#head")->library;
  ASSERT_TRUE(dev->Reload("ssr", "head").ok());
  std::optional<InstanceRecord> head = dev->registry().Find("ssr#head");
  ASSERT_TRUE(head.has_value());
  EXPECT_NE(head->library, old_library);
  EXPECT_TRUE(head->slots.at(0).registered);
  EXPECT_EQ(head->slots.at(0).provider_instance, "ssr#head-state");
  EXPECT_THAT(dev->registry().Findings(), IsEmpty());
}

TEST(RegistryTest, ReloadUnderWarnShowsTheNewInstanceUnregistered) {
  auto dev = Dev(Policy::kWarn);
  const std::string old_library = dev->registry().Find("ssr#head")->library;
  ASSERT_TRUE(dev->Reload("ssr", "head").ok());
  EXPECT_NE(dev->registry().Find("ssr#head")->library, old_library);
  EXPECT_THAT(FindingNames(dev->registry()),
              ElementsAre("ssr#head get_ssr_head_children", "ssr#router get_router_state"));
  // Reloading the registered twin keeps it registered: its provider is reloaded too.
  ASSERT_TRUE(dev->Reload("node", "head").ok());
  EXPECT_EQ(dev->registry().Find("node#head")->slots.at(0).provider_instance, "node#head-state");
}

TEST(RegistryTest, UnloadingTheProviderShowsItsTargetUnregistered) {
  auto dev = Dev(Policy::kWarn);
  ASSERT_TRUE(dev->environment("node")->Unload("head-state").ok());
  std::optional<InstanceRecord> head = dev->registry().Find("node#head");
  ASSERT_TRUE(head.has_value());
  EXPECT_FALSE(head->slots.at(0).registered);
  EXPECT_TRUE(head->slots.at(0).provider_instance.empty());
  EXPECT_THAT(FindingNames(dev->registry()),
              ElementsAre("node#head get_ssr_head_children", "ssr#head get_ssr_head_children",
                          "ssr#router get_router_state"));
}

TEST(RegistryTest, TopologyProvidersTableNamesAProviderBeforeItIsLoaded) {
  TopologySpec spec = example::DevTopology(kModuleDir);
  spec.environments.erase(spec.environments.begin());  // only ssr: head-state never loads
  spec.providers["head"] = {"head-state"};
  auto ssr_only = LoadTopology(spec, Policy::kAuto);
  EXPECT_NE(ssr_only->environment("ssr")->Find("head-state"), nullptr);
  // Without the declaration nothing tells auto that head-state exists.
  spec.providers.clear();
  auto undeclared = LoadTopology(spec, Policy::kAuto);
  EXPECT_EQ(undeclared->environment("ssr")->Find("head-state"), nullptr);
  EXPECT_THAT(FindingNames(undeclared->registry()),
              ElementsAre("ssr#head get_ssr_head_children", "ssr#router get_router_state"));
}

}  // namespace
}  // namespace modgraph
