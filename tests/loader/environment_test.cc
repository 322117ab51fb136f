// Environments: real per-environment instances, import resolution inside the
// environment, the bundle's single instance, reload, and every error path.
#include "modgraph/environments/environment.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "modgraph/context/request_context.h"
#include "modgraph/environments/topology.h"
#include "modgraph/example/topologies.h"
#include "modgraph/modules/head.h"
#include "test_paths.h"

namespace modgraph {
namespace {

using ::modgraph::modules::HeadApi;
using ::modgraph::testing::CountEntries;
using ::modgraph::testing::kBadDir;
using ::modgraph::testing::kBundle;
using ::modgraph::testing::kModuleDir;
using ::modgraph::testing::kProbeBundle;
using ::modgraph::testing::kProbeDir;
using ::modgraph::testing::ScratchDir;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

struct HeadProbeApi {
  const HeadApi* (*imported_head)();
};

class EnvironmentTest : public ::testing::Test {
 protected:
  std::unique_ptr<Environment> MakeEnv(std::string name, std::vector<fs::path> roots) {
    auto env = Environment::Create({.name = std::move(name),
                                    .mode = EnvironmentMode::kIsolated,
                                    .module_roots = roots,
                                    .bundle = {},
                                    .entry_modules = {}},
                                   loader_);
    EXPECT_TRUE(env.ok()) << env.status();
    return env.ok() ? *std::move(env) : nullptr;
  }
  const HeadApi& Head(Environment& env) {
    absl::StatusOr<Instance*> head = env.Import("head");
    EXPECT_TRUE(head.ok()) << head.status();
    return *(*head)->api<HeadApi>();
  }

  ScratchDir scratch_;
  LibraryLoader loader_{
      {.copy_mode = CopyMode::kTempFile, .temp_root = scratch_.path(), .allow_gnu_unique = false}};
};

TEST_F(EnvironmentTest, NodeAndSsrInstancesDoNotShareState) {
  auto node = MakeEnv("node", {kModuleDir});
  auto ssr = MakeEnv("ssr", {kModuleDir});
  const HeadApi& node_head = Head(*node);
  const HeadApi& ssr_head = Head(*ssr);
  // Outside any request the module-level default accessor writes module-level state.
  node_head.add_child("<title>from node</title>");
  EXPECT_EQ(node_head.render(), "<title>from node</title>");
  EXPECT_EQ(ssr_head.render(), "");
  EXPECT_NE(node_head.module_children(), ssr_head.module_children());
  EXPECT_TRUE(ssr_head.module_children()->empty());
  // The static inside an inline function is per instance too.
  EXPECT_NE(node_head.inline_static_counter(), ssr_head.inline_static_counter());
  EXPECT_EQ(node_head.inline_static_counter()->load(), 1);
  EXPECT_EQ(ssr_head.inline_static_counter()->load(), 0);
  EXPECT_NE(node->Find("head")->library().loaded_path(),
            ssr->Find("head")->library().loaded_path());
  EXPECT_EQ(node->Find("head")->name(), "node#head");
}

TEST_F(EnvironmentTest, ImportResolvesToTheInstanceOfTheSameEnvironment) {
  auto node = MakeEnv("node", {kModuleDir, kProbeDir});
  auto ssr = MakeEnv("ssr", {kModuleDir, kProbeDir});
  auto node_probe = node->Import("head-probe");
  auto ssr_probe = ssr->Import("head-probe");
  ASSERT_TRUE(node_probe.ok() && ssr_probe.ok()) << node_probe.status() << ssr_probe.status();
  const HeadApi* ssr_import = (*ssr_probe)->api<HeadProbeApi>()->imported_head();
  EXPECT_EQ(ssr_import, ssr->Find("head")->api<HeadApi>());
  EXPECT_NE(ssr_import, node->Find("head")->api<HeadApi>());
  EXPECT_EQ((*ssr_probe)->imports(), std::vector<Instance*>{ssr->Find("head")});
  // Imports initialise first.
  ASSERT_EQ(ssr->instances().size(), 2u);
  EXPECT_EQ(ssr->instances()[0]->module_id(), "head");
}

TEST_F(EnvironmentTest, BundleGivesEveryImportTheOneInstance) {
  auto bundled = Environment::Create({.name = "prod",
                                      .mode = EnvironmentMode::kBundled,
                                      .module_roots = {kProbeBundle.parent_path()},
                                      .bundle = kProbeBundle,
                                      .entry_modules = {}},
                                     loader_);
  ASSERT_TRUE(bundled.ok()) << bundled.status();
  auto probe = (*bundled)->Import("head-probe");
  ASSERT_TRUE(probe.ok()) << probe.status();
  Instance* head = (*bundled)->Find("head");
  ASSERT_NE(head, nullptr);
  EXPECT_EQ((*probe)->api<HeadProbeApi>()->imported_head(), head->api<HeadApi>());
  EXPECT_EQ(&(*probe)->library(), &head->library());  // one library, one copy
  head->api<HeadApi>()->add_child("<meta>");
  EXPECT_EQ((*probe)->api<HeadProbeApi>()->imported_head()->render(), "<meta>");
}

TEST_F(EnvironmentTest, ProdTopologyLoadsTheFrameworkBundleAsOneLibrary) {
  auto topology = Topology::Create(example::ProdTopology(kBundle), {.temp_root = scratch_.path()});
  ASSERT_TRUE(topology.ok()) << topology.status();
  EXPECT_TRUE((*topology)->LoadEntries().empty());
  Environment* prod = (*topology)->environment("prod");
  ASSERT_NE(prod, nullptr);
  ASSERT_GE(prod->instances().size(), 2u);
  for (const Instance* instance : prod->instances()) {
    EXPECT_EQ(&instance->library(), &prod->instances()[0]->library()) << instance->name();
  }
  EXPECT_EQ(prod->Find("head-state")->imports().front(), prod->Find("head"));
}

TEST_F(EnvironmentTest, ReloadGivesFreshStateAndReimportsDependents) {
  auto ssr = MakeEnv("ssr", {kModuleDir, kProbeDir});
  ASSERT_TRUE(ssr->Import("head-probe").ok());
  ssr->Find("head")->api<HeadApi>()->add_child("<title>stale</title>");
  const fs::path old_copy = ssr->Find("head")->library().loaded_path();
  ASSERT_TRUE(ssr->Reload("head").ok());
  const Instance* head = ssr->Find("head");
  ASSERT_NE(head, nullptr);
  EXPECT_EQ(head->api<HeadApi>()->render(), "");
  EXPECT_NE(head->library().loaded_path(), old_copy);
  EXPECT_FALSE(fs::exists(old_copy));
  const Instance* probe = ssr->Find("head-probe");
  ASSERT_NE(probe, nullptr);
  EXPECT_EQ(probe->api<HeadProbeApi>()->imported_head(), head->api<HeadApi>());
}

TEST_F(EnvironmentTest, UnloadRemovesTheInstanceItsImportersAndTheirCopies) {
  auto ssr = MakeEnv("ssr", {kModuleDir, kProbeDir});
  ASSERT_TRUE(ssr->Import("head-probe").ok());
  EXPECT_EQ(CountEntries(loader_.copy_directory()), 2);
  ASSERT_TRUE(ssr->Unload("head").ok());
  EXPECT_EQ(ssr->Find("head"), nullptr);
  EXPECT_EQ(ssr->Find("head-probe"), nullptr);
  EXPECT_EQ(CountEntries(loader_.copy_directory()), 0);
  EXPECT_FALSE(ssr->Unload("head").ok());
}

// An environment name ends up in instance names, copy file names and report
// lines: a newline or a control character would split or forge them.
TEST_F(EnvironmentTest, EnvironmentNamesArePrintableAndShort) {
  for (const std::string& name :
       {std::string("ssr\nfake-line"), std::string("a\x01b"), std::string(300, 'e'),
        std::string("a#b"), std::string("a/b"), std::string("a b"), std::string("")}) {
    SCOPED_TRACE(name.substr(0, 20));
    auto env = Environment::Create({.name = name, .module_roots = {kModuleDir}}, loader_);
    ASSERT_FALSE(env.ok());
    EXPECT_EQ(env.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(env.status().message(), HasSubstr("rename it"));
    EXPECT_EQ(env.status().message().find('\n'), std::string_view::npos);
  }
  EXPECT_NE(MakeEnv("edge-1.eu_west", {kModuleDir}), nullptr);
}

TEST_F(EnvironmentTest, UnknownImportNamesModuleImportAndEnvironment) {
  auto ssr = MakeEnv("ssr", {kBadDir});
  auto result = ssr->Import("unknown-import");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(result.status().message(), HasSubstr("unknown module 'does-not-exist'"));
  EXPECT_THAT(result.status().message(), HasSubstr("imported by ssr#unknown-import"));
  EXPECT_THAT(result.status().message(), HasSubstr(kBadDir.string()));
  EXPECT_TRUE(ssr->instances().empty());
  EXPECT_EQ(CountEntries(loader_.copy_directory()), 0);
}

TEST_F(EnvironmentTest, ImportCycleIsReportedAsAChain) {
  auto ssr = MakeEnv("ssr", {kBadDir});
  auto result = ssr->Import("cycle-a");
  ASSERT_FALSE(result.ok());
  EXPECT_THAT(result.status().message(),
              HasSubstr("import cycle in environment 'ssr': cycle-a -> cycle-b -> cycle-a"));
  EXPECT_TRUE(ssr->instances().empty());
  EXPECT_EQ(CountEntries(loader_.copy_directory()), 0);
}

TEST_F(EnvironmentTest, ThrowingInitLeavesNothingHalfLoadedAndOthersKeepWorking) {
  auto node = MakeEnv("node", {kModuleDir});
  auto ssr = MakeEnv("ssr", {kModuleDir, kBadDir});
  const HeadApi& node_head = Head(*node);
  auto result = ssr->Import("imports-throwing");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kAborted);
  EXPECT_THAT(result.status().message(), HasSubstr("init of ssr#throwing-init"));
  EXPECT_THAT(result.status().message(), HasSubstr("database handle missing"));
  // `head` was initialised for the failed import; it is gone again.
  EXPECT_EQ(ssr->Find("head"), nullptr);
  EXPECT_TRUE(ssr->instances().empty());
  EXPECT_EQ(CountEntries(loader_.copy_directory()), 1);  // node#head only
  node_head.add_child("<title>still serving</title>");
  EXPECT_EQ(node_head.render(), "<title>still serving</title>");
  EXPECT_TRUE(ssr->Import("head").ok());  // and ssr itself still works
}

// A provider that registered and then failed leaves no accessor behind: its
// library is unloaded, and a stale accessor would point into unmapped code.
TEST_F(EnvironmentTest, AFailedProviderLeavesNoRegistrationBehind) {
  auto ssr = MakeEnv("ssr", {kModuleDir, kBadDir});
  const HeadApi& head = Head(*ssr);
  auto result = ssr->Import("registers-then-throws");
  ASSERT_FALSE(result.ok());
  EXPECT_THAT(result.status().message(), HasSubstr("failed after registering"));
  // Inside a request the slot now runs head's own default: module-level state.
  RequestContext request = RequestContext::create(7);
  run_request(request, [&] { head.add_child("<title>back to default</title>"); });
  EXPECT_EQ(head.module_children()->size(), 1u);
}

TEST_F(EnvironmentTest, UnloadingAProviderPutsTheDefaultBack) {
  auto node = MakeEnv("node", {kModuleDir});
  ASSERT_TRUE(node->Import("head-state").ok());
  const HeadApi& head = Head(*node);
  // This request's head state is created by head-state's code and outlives the
  // unload: the retired library stays mapped, so ending the request is safe.
  RequestContext request = RequestContext::create(8);
  run_request(request, [&] { head.add_child("<title>request state</title>"); });
  EXPECT_TRUE(head.module_children()->empty());  // went to the request's state
  ASSERT_TRUE(node->Unload("head-state").ok());
  ASSERT_NE(node->Find("head"), nullptr);
  run_request(request, [&] { head.add_child("<title>module state</title>"); });
  EXPECT_EQ(head.module_children()->size(), 1u);
  // head's copy, and head-state's: retired, mapped and on disk until the request ends.
  EXPECT_EQ(CountEntries(loader_.copy_directory()), 2);
  EXPECT_EQ(node->ReleaseRetired(), 0u);  // the request that used head-state is alive
  EXPECT_EQ(node->retired_count(), 1u);
  request = RequestContext::create(9);  // the old request and its state end here
  EXPECT_EQ(node->ReleaseRetired(), 1u);
  EXPECT_EQ(node->retired_count(), 0u);
  EXPECT_EQ(CountEntries(loader_.copy_directory()), 1);
}

TEST_F(EnvironmentTest, DuplicateModuleIdIsRefusedWholesale) {
  auto ssr = MakeEnv("ssr", {kModuleDir, kBadDir});
  ASSERT_TRUE(ssr->Import("head").ok());
  auto result = ssr->Import("duplicate");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(result.status().message(), HasSubstr("duplicate module id 'head'"));
  EXPECT_THAT(result.status().message(), HasSubstr("duplicate.so"));
  EXPECT_EQ(ssr->Find("duplicate"), nullptr);
  EXPECT_EQ(ssr->instances().size(), 1u);
}

TEST_F(EnvironmentTest, RefusesALibraryOutsideTheModuleRoots) {
  const fs::path root = scratch_.path() / "root";
  fs::create_directory(root);
  fs::create_symlink(kModuleDir / "head.so", root / "head.so");
  auto ssr = MakeEnv("ssr", {root});
  auto result = ssr->Import("head");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(result.status().message(), HasSubstr("outside the module root"));

  auto bundled = Environment::Create({.name = "prod",
                                      .mode = EnvironmentMode::kBundled,
                                      .module_roots = {root},
                                      .bundle = kBundle,
                                      .entry_modules = {}},
                                     loader_);
  ASSERT_FALSE(bundled.ok());
  EXPECT_THAT(bundled.status().message(), HasSubstr("outside the module roots"));
}

TEST_F(EnvironmentTest, UnknownModuleInABundleNamesTheBundle) {
  auto bundled = Environment::Create({.name = "prod",
                                      .mode = EnvironmentMode::kBundled,
                                      .module_roots = {kBundle.parent_path()},
                                      .bundle = kBundle,
                                      .entry_modules = {}},
                                     loader_);
  ASSERT_TRUE(bundled.ok()) << bundled.status();
  auto result = (*bundled)->Import("nope");
  ASSERT_FALSE(result.ok());
  EXPECT_THAT(result.status().message(), HasSubstr(kBundle.string()));
}

TEST_F(EnvironmentTest, RejectsBadEnvironmentSpecs) {
  auto no_roots = Environment::Create({.name = "ssr"}, loader_);
  EXPECT_THAT(no_roots.status().message(), HasSubstr("no module roots"));
  auto bad_name = Environment::Create({.name = "a#b", .module_roots = {kModuleDir}}, loader_);
  EXPECT_THAT(bad_name.status().message(), HasSubstr("'#'"));
  auto missing_root =
      Environment::Create({.name = "ssr", .module_roots = {"/nonexistent"}}, loader_);
  EXPECT_EQ(missing_root.status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace modgraph
