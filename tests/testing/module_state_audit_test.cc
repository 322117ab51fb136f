// The module-state audit: module state written by two or more requests is
// found from the memory of each instance, whether or not it sits behind a
// slot — head's module-level default under dev warn (the seeds' bug, without
// looking at slots), an undeclared module-level cache — and it stays silent
// under auto, in prod, and on state a module declares shared.
#include "modgraph/testing/module_state_audit.h"

#include <gmock/gmock.h>

#include "modgraph/example/topologies.h"
#include "modgraph/modules/head.h"
#include "modgraph/testing/matchers.h"
#include "modgraph/testing/testkit.h"

namespace modgraph::testing {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;

const std::filesystem::path kModuleDir = MODGRAPH_TEST_MODULE_DIR;
const std::filesystem::path kBundle = MODGRAPH_TEST_BUNDLE;
const std::filesystem::path kFixtureDir = MODGRAPH_TESTKIT_FIXTURE_DIR;

std::unique_ptr<Topology> Load(TopologySpec spec, Policy policy) {
  auto topology = LoadForTest(std::move(spec), policy);
  EXPECT_TRUE(topology.ok()) << topology.status();
  return topology.ok() ? *std::move(topology) : nullptr;
}

// One `ssr` environment serving the fixture state pages.
TopologySpec StatePages() {
  TopologySpec spec{.name = "state-pages", .origin = "module_state_audit_test.cc"};
  const std::vector<std::string> pages = {"undeclared-cache-page", "stripped-cache-page",
                                          "undeclared-counter-page", "declared-counter-page"};
  spec.environments.push_back(
      {.name = "ssr", .module_roots = {kFixtureDir, kModuleDir}, .entry_modules = pages});
  spec.server = {.pages_environment = "ssr", .entry_environment = "", .pages = pages};
  return spec;
}

RunReport Fire(Topology& topology, const std::vector<std::string>& targets,
               RunOptions options = {}) {
  absl::StatusOr<RunReport> run = FireConcurrent(topology, targets, options);
  EXPECT_TRUE(run.ok()) << run.status();
  return run.ok() ? *std::move(run) : RunReport{};
}

const ModuleStateFinding* FindingOn(const RunReport& run, std::string_view instance,
                                    std::string_view symbol) {
  for (const ModuleStateFinding& finding : run.module_state) {
    if (std::find(finding.instances.begin(), finding.instances.end(), instance) !=
            finding.instances.end() &&
        finding.symbol.find(symbol) != std::string::npos) {
      return &finding;
    }
  }
  return nullptr;
}

// The seeds' bug, found from memory alone: every request writes ssr#head's
// module-level vector (clear, then refill to the same size: the bytes end up as
// they were, which only write tracking sees).
TEST(ModuleStateAuditTest, FindsHeadsModuleLevelDefaultWrittenByEveryRequestUnderDevWarn) {
  auto dev = Load(example::DevTopology(kModuleDir), Policy::kWarn);
  ASSERT_NE(dev, nullptr);
  RunReport run = Fire(*dev, Targets("/concurrent-head?id={}", 15));
  EXPECT_THAT(run, WritesModuleState("ssr#head", "g_ssr_head_children"));
  const ModuleStateFinding* head = FindingOn(run, "ssr#head", "g_ssr_head_children");
  ASSERT_NE(head, nullptr);
  EXPECT_EQ(head->environment, "ssr");
  EXPECT_EQ(head->symbol, "modgraph::modules::(anonymous namespace)::g_ssr_head_children");
  EXPECT_EQ(head->section, ".bss");
  EXPECT_EQ(head->size, sizeof(std::vector<std::string>));
  EXPECT_TRUE(head->rewritten_unchanged);
  ASSERT_THAT(head->requests, SizeIs(15));  // every request of the run
  for (const TestResponse& response : run.responses) {
    EXPECT_TRUE(
        std::binary_search(head->requests.begin(), head->requests.end(), response.request_id));
  }
  EXPECT_THAT(Describe(*head),
              AllOf(HasSubstr("environment ssr, ssr#head"), HasSubstr("g_ssr_head_children"),
                    HasSubstr("(.bss, 24 bytes at +0x"), HasSubstr("written by 15 requests"),
                    HasSubstr("MODGRAPH_SHARED_STATE")));
  // The router's default too; nothing else (head's counter is declared shared).
  RunReport router = Fire(*dev, Targets("/concurrent-router?id={}", 5));
  EXPECT_THAT(router, WritesModuleState("ssr#router", "g_router_state"));
  EXPECT_THAT(router.module_state, SizeIs(1));
}

// Snapshots alone see only net changes: the head vector is refilled to the
// same size by every request after the first, so only write tracking finds it.
TEST(ModuleStateAuditTest, WithoutWriteTrackingOnlyChangedBytesCount) {
  auto dev = Load(example::DevTopology(kModuleDir), Policy::kWarn);
  ASSERT_NE(dev, nullptr);
  RunReport run = Fire(*dev, Targets("/concurrent-head?id={}", 15), {.track_writes = false});
  EXPECT_FALSE(run.audit.tracking_writes);
  EXPECT_EQ(FindingOn(run, "ssr#head", "g_ssr_head_children"), nullptr);
  // A change of value is still seen: a counter every request increments.
  auto pages = Load(StatePages(), Policy::kWarn);
  ASSERT_NE(pages, nullptr);
  RunReport counter =
      Fire(*pages, Targets("/undeclared-counter?id={}", 3), {.track_writes = false});
  EXPECT_THAT(counter, WritesModuleState("ssr#undeclared-counter-page", "g_page_views"));
  EXPECT_THAT(counter.module_state, SizeIs(1));
}

TEST(ModuleStateAuditTest, SilentUnderAutoAndInProd) {
  auto dev = Load(example::DevTopology(kModuleDir), Policy::kAuto);
  auto prod = Load(example::ProdTopology(kBundle), Policy::kWarn);
  ASSERT_NE(dev, nullptr);
  ASSERT_NE(prod, nullptr);
  for (const char* page : {"/concurrent-head?id={}", "/concurrent-router?id={}",
                           "/request-store?id={}", "/cached?name=ada&id={}"}) {
    for (Topology* topology : {dev.get(), prod.get()}) {
      RunReport run = Fire(*topology, Targets(page, 15));
      EXPECT_THAT(run.module_state, IsEmpty()) << page << " on " << topology->spec().name;
      EXPECT_GT(run.audit.checkpoints, 15u);
      EXPECT_GT(run.audit.bytes_watched, 0u);
    }
  }
}

TEST(ModuleStateAuditTest, FindsAnUndeclaredModuleLevelCacheWrittenByTwoRequests) {
  auto topology = Load(StatePages(), Policy::kWarn);
  ASSERT_NE(topology, nullptr);
  RunReport run = Fire(*topology, {"/undeclared-cache?id=1", "/undeclared-cache?id=2"});
  EXPECT_THAT(run.ContaminatedResponses(), IsEmpty());  // no response shows it
  EXPECT_THAT(run.fallback_hits, IsEmpty());            // no slot is involved
  EXPECT_THAT(run, WritesModuleState("ssr#undeclared-cache-page", "g_rendered_titles"));
  const ModuleStateFinding* cache =
      FindingOn(run, "ssr#undeclared-cache-page", "g_rendered_titles");
  ASSERT_NE(cache, nullptr);
  EXPECT_THAT(cache->requests, ::testing::UnorderedElementsAre(run.responses[0].request_id,
                                                               run.responses[1].request_id));
  EXPECT_FALSE(cache->changed.empty());  // the map's size and nodes changed
  // One request alone writes it, but nobody else does: no finding.
  EXPECT_THAT(Fire(*topology, {"/undeclared-cache?id=3"}).module_state, IsEmpty());
}

TEST(ModuleStateAuditTest, StaysSilentOnACounterTheModuleDeclaresShared) {
  auto topology = Load(StatePages(), Policy::kWarn);
  ASSERT_NE(topology, nullptr);
  RunReport declared = Fire(*topology, Targets("/declared-counter?id={}", 5));
  EXPECT_THAT(declared, IsIsolated());
  // The same code without the declaration is reported.
  RunReport undeclared = Fire(*topology, Targets("/undeclared-counter?id={}", 5));
  EXPECT_THAT(undeclared, WritesModuleState("ssr#undeclared-counter-page", "g_page_views"));
  // The declaration is listed with its reason.
  std::optional<InstanceRecord> record = topology->registry().Find("ssr#declared-counter-page");
  ASSERT_TRUE(record.has_value());
  ASSERT_THAT(record->shared_state, SizeIs(1));
  EXPECT_EQ(record->shared_state[0].name, "g_page_views");
  EXPECT_EQ(record->shared_state[0].size, sizeof(std::atomic<long>));
  EXPECT_THAT(record->shared_state[0].reason, HasSubstr("counts page views"));
}

TEST(ModuleStateAuditTest, NamesStateBySectionAndOffsetWithoutASymbolTable) {
  auto topology = Load(StatePages(), Policy::kWarn);
  ASSERT_NE(topology, nullptr);
  RunReport run = Fire(*topology, Targets("/stripped-cache?id={}", 3));
  ASSERT_THAT(run.module_state, Not(IsEmpty()));
  for (const ModuleStateFinding& finding : run.module_state) {
    EXPECT_THAT(finding.instances, ElementsAre("ssr#stripped-cache-page"));
    EXPECT_THAT(finding.symbol, HasSubstr(".bss+0x")) << Describe(finding);
    EXPECT_EQ(finding.size, 8u);
  }
}

// The audit on its own: slices attribute changes; slot cells are not audited.
TEST(ModuleStateAuditTest, AttributesEachSliceToItsRequestAndSkipsSlotCells) {
  auto dev = Load(example::DevTopology(kModuleDir), Policy::kWarn);
  ASSERT_NE(dev, nullptr);
  const Instance* head = dev->environment("ssr")->Find("head");
  const auto* api = head->api<modules::HeadApi>();
  void** cell = head->descriptor().slots[0].active_impl;
  absl::StatusOr<std::unique_ptr<ModuleStateAudit>> audit = ModuleStateAudit::Start(*dev);
  ASSERT_TRUE(audit.ok()) << audit.status();
  for (std::uint64_t request : {101, 102}) {
    (*audit)->EnterSlice(request);
    api->add_child("<title>x</title>");           // module-level state
    *static_cast<void* volatile*>(cell) = *cell;  // the slot cell (host bookkeeping)
    (*audit)->LeaveSlice();
  }
  api->reset();  // outside any slice: nobody's
  (*audit)->Checkpoint(0);
  std::vector<ModuleStateFinding> findings = (*audit)->Findings();
  ASSERT_THAT(findings, SizeIs(1));
  EXPECT_THAT(findings[0].symbol, HasSubstr("g_ssr_head_children"));
  EXPECT_THAT(findings[0].requests, ElementsAre(101u, 102u));
  EXPECT_GE((*audit)->stats().bytes_excluded, sizeof(void*));
  // A second audit cannot track writes while this one does.
  if ((*audit)->stats().tracking_writes) {
    EXPECT_EQ(ModuleStateAudit::Start(*dev).status().code(), absl::StatusCode::kFailedPrecondition);
  }
}

}  // namespace
}  // namespace modgraph::testing
