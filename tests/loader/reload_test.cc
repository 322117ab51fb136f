// Reload and unload as transactions, retirement, the host's refusals and
// failures inside dlopen: the module files are swapped in a scratch module root
// the way a build replaces them (a new inode under the same name).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <optional>

#include "modgraph/context/request_context.h"
#include "modgraph/environments/environment.h"
#include "modgraph/environments/topology.h"
#include "modgraph/example/topologies.h"
#include "modgraph/loader/preflight.h"
#include "modgraph/modules/head.h"
#include "test_paths.h"

namespace modgraph {
namespace {

using ::modgraph::modules::HeadApi;
using ::modgraph::testing::CountEntries;
using ::modgraph::testing::kBadDir;
using ::modgraph::testing::kFixtureDir;
using ::modgraph::testing::kModuleDir;
using ::modgraph::testing::kProbeDir;
using ::modgraph::testing::ScratchDir;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
namespace fs = std::filesystem;

struct HeadProbeApi {
  const HeadApi* (*imported_head)();
};
struct StateProbeApi {
  int (*touch)();
};

class ReloadTest : public ::testing::Test {
 protected:
  ReloadTest() {
    fs::create_directory(root());
    fs::create_directory(scratch_.path() / "copies");
  }

  fs::path root() const { return scratch_.path() / "root"; }
  // Puts `from` into the root as `<name>`: written beside it, then renamed over
  // it, as a build does.
  void Put(const fs::path& from, const std::string& name) {
    const fs::path to = root() / name;
    fs::copy_file(from, to.string() + ".tmp", fs::copy_options::overwrite_existing);
    fs::rename(to.string() + ".tmp", to);
  }
  std::unique_ptr<Environment> MakeEnv(std::string name, Policy policy = Policy::kWarn,
                                       Preflight preflight = Preflight::kReloads,
                                       std::vector<fs::path> roots = {}) {
    if (roots.empty()) roots = {root()};
    auto env = Environment::Create({.name = std::move(name),
                                    .module_roots = std::move(roots),
                                    .policy = policy,
                                    .preflight = preflight},
                                   loader_);
    EXPECT_TRUE(env.ok()) << env.status();
    return env.ok() ? *std::move(env) : nullptr;
  }
  // Private copies on disk: live and retired-but-mapped libraries, no more.
  int Copies() const { return CountEntries(loader_.copy_directory()); }

  ScratchDir scratch_;
  LibraryLoader loader_{
      {.copy_mode = CopyMode::kTempFile, .temp_root = scratch_.path() / "copies"}};
};

// A reload whose new build fails to initialise changes nothing: the old head
// and its importer keep serving, and the next reload (of a fixed build) works.
TEST_F(ReloadTest, AFailedReloadKeepsTheOldInstancesAndTheirImportersServing) {
  Put(kModuleDir / "head.so", "head.so");
  Put(kProbeDir / "head-probe.so", "head-probe.so");
  auto ssr = MakeEnv("ssr");
  ASSERT_TRUE(ssr->Import("head-probe").ok());
  const Instance* head = ssr->Find("head");
  const Instance* probe = ssr->Find("head-probe");
  head->api<HeadApi>()->add_child("<title>kept</title>");

  Put(kFixtureDir / "broken" / "head.so", "head.so");
  absl::Status reloaded = ssr->Reload("head");
  ASSERT_FALSE(reloaded.ok());
  EXPECT_EQ(reloaded.code(), absl::StatusCode::kAborted);
  EXPECT_THAT(reloaded.message(),
              AllOf(HasSubstr("reload of ssr#head"), HasSubstr((root() / "head.so").string()),
                    HasSubstr("old instances keep serving"), HasSubstr("database handle missing")));
  EXPECT_EQ(ssr->Find("head"), head);
  EXPECT_EQ(ssr->Find("head-probe"), probe);
  EXPECT_EQ(ssr->instances(), (std::vector<Instance*>{ssr->Find("head"), ssr->Find("head-probe")}));
  EXPECT_EQ(probe->api<HeadProbeApi>()->imported_head(), head->api<HeadApi>());
  EXPECT_EQ(head->api<HeadApi>()->render(), "<title>kept</title>");
  EXPECT_EQ(Copies(), 2);  // the failed copies are gone
  EXPECT_EQ(ssr->retired_count(), 0u);

  Put(kModuleDir / "head.so", "head.so");
  ASSERT_TRUE(ssr->Reload("head").ok());
  EXPECT_NE(ssr->Find("head"), head);
  EXPECT_EQ(ssr->Find("head")->api<HeadApi>()->render(), "");
  EXPECT_EQ(ssr->Find("head-probe")->api<HeadProbeApi>()->imported_head(),
            ssr->Find("head")->api<HeadApi>());
}

// In-flight requests finish on the copies they started with: the replaced
// copies stay mapped (and on disk) until every earlier request has ended.
TEST_F(ReloadTest, ReplacedCopiesStayMappedWhileAnEarlierRequestLives) {
  Put(kModuleDir / "head.so", "head.so");
  Put(kProbeDir / "head-probe.so", "head-probe.so");
  auto ssr = MakeEnv("ssr");
  ASSERT_TRUE(ssr->Import("head-probe").ok());
  const HeadApi* old_head = ssr->Find("head")->api<HeadApi>();
  std::optional<RequestContext> in_flight = RequestContext::create(NextRequestId());

  ASSERT_TRUE(ssr->Reload("head").ok());
  EXPECT_NE(ssr->Find("head")->api<HeadApi>(), old_head);
  EXPECT_EQ(ssr->retired_count(), 2u);
  EXPECT_EQ(Copies(), 4);  // live + retired
  std::vector<RetiredLibrary> retired = ssr->retired();
  ASSERT_EQ(retired.size(), 2u);
  EXPECT_THAT(retired[0].reason, HasSubstr("requests that started before it was retired"));
  EXPECT_FALSE(retired[0].kept_for_good);
  run_request(*in_flight, [&] { old_head->add_child("<title>old copy</title>"); });  // still mapped

  in_flight.reset();
  EXPECT_EQ(ssr->ReleaseRetired(), 2u);
  EXPECT_EQ(ssr->retired_count(), 0u);
  EXPECT_EQ(Copies(), 2);
}

// failed-reload `gen`: a request older than two retirements used the copy in
// between; that copy must stay until the request (and its state) has ended.
TEST_F(ReloadTest, ACopyRetiredLaterWaitsForRequestsOlderThanTheFirstRetirement) {
  Put(kBadDir / "state-probe.so", "state-probe.so");
  auto ssr = MakeEnv("ssr");
  ASSERT_TRUE(ssr->Import("state-probe").ok());
  std::optional<RequestContext> request = RequestContext::create(NextRequestId());
  ASSERT_TRUE(ssr->Reload("state-probe").ok());
  // The long request creates its state with the second copy's code.
  EXPECT_EQ(run_request(*request,
                        [&] { return ssr->Find("state-probe")->api<StateProbeApi>()->touch(); }),
            1);
  ASSERT_TRUE(ssr->Unload("state-probe").ok());
  ssr->ReleaseRetired();
  EXPECT_EQ(ssr->retired_count(), 2u);  // both copies: the request may reach either
  request.reset();                      // destroys its state with the second copy's code
  EXPECT_EQ(ssr->ReleaseRetired(), 2u);
  EXPECT_EQ(Copies(), 0);
}

// Modules sharing a library go together, whatever order they initialised in.
TEST_F(ReloadTest, ReloadRecreatesEveryModuleOfTheLibraryEvenOnesInitialisedEarlier) {
  Put(kBadDir / "duplicate.so", "duplicate.so");
  auto ssr = MakeEnv("ssr");
  ASSERT_TRUE(ssr->Import("duplicate").ok());
  ASSERT_TRUE(ssr->Import("head").ok());  // the second module of duplicate.so
  const fs::path old_copy = ssr->Find("head")->library().loaded_path();
  ASSERT_TRUE(ssr->Reload("head").ok());
  const Instance* duplicate = ssr->Find("duplicate");
  const Instance* head = ssr->Find("head");
  ASSERT_NE(duplicate, nullptr);
  ASSERT_NE(head, nullptr);
  EXPECT_EQ(&duplicate->library(), &head->library());
  EXPECT_NE(head->library().loaded_path(), old_copy);
  EXPECT_EQ(ssr->instances(), (std::vector<Instance*>{ssr->Find("duplicate"), ssr->Find("head")}));
  // Neither declares a teardown: the old copy is kept, and says why.
  std::vector<RetiredLibrary> retired = ssr->retired();
  ASSERT_EQ(retired.size(), 1u);
  EXPECT_EQ(retired[0].copy, old_copy.string());
  EXPECT_THAT(retired[0].instances, ::testing::UnorderedElementsAre("ssr#duplicate", "ssr#head"));
  EXPECT_THAT(retired[0].reason, HasSubstr("declares no teardown"));
  EXPECT_TRUE(retired[0].kept_for_good);
}

// module-thread-after-unload: a module whose init starts a thread is not closed
// under it.
TEST_F(ReloadTest, ACopyWhoseThreadsMayStillRunIsNotClosed) {
  Put(kBadDir / "ticker.so", "ticker.so");
  Put(kBadDir / "ticker-leaky.so", "ticker-leaky.so");
  Put(kBadDir / "ticker-stoppable.so", "ticker-stoppable.so");
  auto ssr = MakeEnv("ssr");
  for (const char* id : {"ticker", "ticker-leaky", "ticker-stoppable"}) {
    ASSERT_TRUE(ssr->Import(id).ok()) << id;
    ASSERT_TRUE(ssr->Reload(id).ok()) << id;
    ASSERT_TRUE(ssr->Unload(id).ok()) << id;
  }
  std::map<std::string, std::vector<RetiredLibrary>> kept;
  for (RetiredLibrary& retired : ssr->retired()) kept[retired.instances.at(0)].push_back(retired);
  ASSERT_EQ(kept["ssr#ticker"].size(), 2u);  // both copies: no teardown
  EXPECT_THAT(kept["ssr#ticker"][0].reason, HasSubstr("module 'ticker' declares no teardown"));
  ASSERT_EQ(kept["ssr#ticker-leaky"].size(), 2u);  // a teardown that forgot its thread
  EXPECT_THAT(kept["ssr#ticker-leaky"][0].reason,
              AllOf(HasSubstr("which appeared while ssr#ticker-leaky's init ran"),
                    HasSubstr("still running")));
  EXPECT_FALSE(kept["ssr#ticker-leaky"][0].kept_for_good);
  EXPECT_EQ(kept.count("ssr#ticker-stoppable"), 0u);  // joined its thread: closed
  EXPECT_EQ(Copies(), 4);
}

// Under auto, a path that re-creates instances also re-creates their providers.
TEST_F(ReloadTest, UnloadThenImportUnderAutoBringsTheProvidersBack) {
  auto loaded = Topology::Load(example::DevTopology(kModuleDir),
                               {.policy = Policy::kAuto, .loader = {.temp_root = scratch_.path()}});
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ASSERT_TRUE(loaded->errors.empty());
  Topology& topology = *loaded->topology;
  Environment* ssr = topology.environment("ssr");
  ASSERT_NE(ssr->Find("head-state"), nullptr);
  ASSERT_TRUE(ssr->Unload("head").ok());
  EXPECT_EQ(ssr->Find("head-state"), nullptr);  // imports head: unloaded with it
  ASSERT_TRUE(ssr->Import("concurrent-head").ok());
  ASSERT_NE(ssr->Find("head-state"), nullptr);
  std::optional<InstanceRecord> head = topology.registry().Find("ssr#head");
  ASSERT_TRUE(head.has_value());
  EXPECT_TRUE(head->slots.at(0).registered);
  EXPECT_EQ(head->slots.at(0).provider_instance, "ssr#head-state");
  for (const Finding& finding : topology.registry().Findings()) {
    EXPECT_NE(finding.instance, "ssr#head");
  }
}

// Unloading a provider under auto keeps the registry right: it comes back.
TEST_F(ReloadTest, UnloadingAProviderUnderAutoReimportsIt) {
  Put(kModuleDir / "head.so", "head.so");
  Put(kModuleDir / "head-state.so", "head-state.so");
  auto ssr = MakeEnv("ssr", Policy::kAuto);
  ASSERT_TRUE(ssr->Import("head-state").ok());
  const Instance* provider = ssr->Find("head-state");
  ASSERT_TRUE(ssr->Unload("head-state").ok());
  ASSERT_NE(ssr->Find("head-state"), nullptr);
  EXPECT_NE(ssr->Find("head-state"), provider);
}

// The bundle reloads as one library: every instance is re-created, and the
// registrations inside it follow.
TEST_F(ReloadTest, ABundledReloadRecreatesEveryInstance) {
  auto topology =
      Topology::Create(example::ProdTopology(testing::kBundle), {.temp_root = scratch_.path()});
  ASSERT_TRUE(topology.ok()) << topology.status();
  ASSERT_TRUE((*topology)->LoadEntries().empty());
  Environment* prod = (*topology)->environment("prod");
  const std::size_t count = prod->instances().size();
  const Instance* head = prod->Find("head");
  ASSERT_TRUE((*topology)->Reload("prod", "head").ok());
  EXPECT_EQ(prod->instances().size(), count);
  EXPECT_NE(prod->Find("head"), head);
  EXPECT_EQ(&prod->Find("head")->library(), &prod->Find("head-state")->library());
  EXPECT_TRUE((*topology)->registry().Findings().empty());
}

class HostErrorTest : public ReloadTest {
 protected:
  std::unique_ptr<Environment> Env() {
    return MakeEnv("ssr", Policy::kWarn, Preflight::kReloads, {kModuleDir, kProbeDir, kBadDir});
  }
  std::string ImportError(Environment& env, std::string_view id) {
    absl::StatusOr<Instance*> imported = env.Import(id);
    EXPECT_FALSE(imported.ok()) << id;
    return imported.ok() ? "" : std::string(imported.status().message());
  }
};

TEST_F(HostErrorTest, UndeclaredImportSaysSoNotJustCannotImport) {
  auto ssr = Env();
  ASSERT_TRUE(ssr->Import("head").ok());
  EXPECT_THAT(ImportError(*ssr, "undeclared-import"),
              HasSubstr("ssr#undeclared-import imported 'head' without declaring it; add it to "
                        "the module's .imports"));
}

TEST_F(HostErrorTest, SignatureMismatchNamesBothSignatures) {
  auto ssr = Env();
  EXPECT_THAT(ImportError(*ssr, "signature-mismatch"),
              AllOf(HasSubstr("registered slot 'get_ssr_head_children' of ssr#head as 'int()'"),
                    HasSubstr("declared 'std::vector<std::string>*()'")));
}

TEST_F(HostErrorTest, RegisteringOnAModuleThatIsNotAnImportIsRefused) {
  auto ssr = Env();
  EXPECT_THAT(ImportError(*ssr, "registers-on-non-import"),
              HasSubstr("ssr#registers-on-non-import registered an accessor on 'head', which it "
                        "does not import"));
}

TEST_F(HostErrorTest, UnknownSlotListsTheSlotsTheModuleHas) {
  auto ssr = Env();
  EXPECT_THAT(ImportError(*ssr, "unknown-slot"),
              HasSubstr("ssr#head has no slot 'no_such_slot' (registered by ssr#unknown-slot); it "
                        "declares: get_ssr_head_children"));
}

TEST_F(HostErrorTest, ASecondLiveRegistrationOnOneSlotIsADoubleRegistration) {
  auto ssr = Env();
  ASSERT_TRUE(ssr->Import("head-state").ok());
  EXPECT_THAT(ImportError(*ssr, "second-head-provider"),
              HasSubstr("Double registration: slot 'get_ssr_head_children' of ssr#head is "
                        "already registered by ssr#head-state, and ssr#second-head-provider "
                        "registered it too"));
  // The first provider still serves.
  const HeadApi& head = *ssr->Find("head")->api<HeadApi>();
  RequestContext request = RequestContext::create(NextRequestId());
  run_request(request, [&] { head.add_child("<title>mine</title>"); });
  EXPECT_TRUE(head.module_children()->empty());
  // Reloading the provider re-registers it: not a double registration.
  EXPECT_TRUE(ssr->Reload("head-state").ok());
}

// throw-inside-dlopen: a named state kind whose type changed between builds.
TEST_F(ReloadTest, AStateKindWhoseTypeChangedIsALoadErrorNotAnAbort) {
  Put(kFixtureDir / "kind-v1" / "draft-kind.so", "draft-kind.so");
  auto node = MakeEnv("node");
  auto ssr = MakeEnv("ssr");
  ASSERT_TRUE(node->Import("draft-kind").ok());
  ASSERT_TRUE(ssr->Import("draft-kind").ok());
  const Instance* kept = ssr->Find("draft-kind");
  Put(kFixtureDir / "kind-v2" / "draft-kind.so", "draft-kind.so");
  absl::Status reloaded = ssr->Reload("draft-kind");
  ASSERT_FALSE(reloaded.ok());
  EXPECT_THAT(reloaded.message(),
              AllOf(HasSubstr("state kind 'fixture-draft' is registered with type"),
                    HasSubstr("(size 4, align 4) by node#draft-kind"),
                    HasSubstr("(size 40, align 8) by ssr#draft-kind"),
                    HasSubstr("old instances keep serving")));
  EXPECT_EQ(ssr->Find("draft-kind"), kept);
  ASSERT_NE(node->Find("draft-kind"), nullptr);
  // Once no copy of the old build is mapped, the new type may take the name.
  ASSERT_TRUE(node->Unload("draft-kind").ok());
  ASSERT_TRUE(ssr->Unload("draft-kind").ok());
  EXPECT_TRUE(ssr->Import("draft-kind").ok());
}

// throw-inside-dlopen `static`: a throwing static initialiser ends a preflight
// process, not the host.
TEST_F(ReloadTest, AThrowingStaticInitialiserIsANamedErrorByDefault) {
  Put(kBadDir / "static-throw.so", "static-throw.so");
  Put(kModuleDir / "head.so", "head.so");
  auto created = Environment::Create({.name = "ssr", .module_roots = {root()}}, loader_);
  ASSERT_TRUE(created.ok()) << created.status();
  Environment* ssr = created->get();  // default spec: Preflight::kAlways
  ASSERT_TRUE(ssr->Import("head").ok());
  absl::StatusOr<Instance*> loaded = ssr->Import("static-throw");
  ASSERT_FALSE(loaded.ok());
  EXPECT_THAT(
      loaded.status().message(),
      AllOf(HasSubstr("cannot load ssr#static-throw"),
            HasSubstr("cannot load ssr#static-throw ('" + (root() / "static-throw.so").string() +
                      "'): static initialisation of the library failed in a preflight "
                      "process"),
            HasSubstr("uncaught std::runtime_error"),
            HasSubstr("registration failed during static init")));
  EXPECT_NE(ssr->Find("head"), nullptr);
}

// An initialiser that calls exit(0) ends the preflight process "successfully":
// the helper's stage report, not its exit status, says the library loaded.
TEST_F(ReloadTest, AStaticInitialiserThatExitsIsANamedErrorByDefault) {
  Put(kBadDir / "static-exit.so", "static-exit.so");
  Put(kModuleDir / "head.so", "head.so");
  auto created = Environment::Create({.name = "ssr", .module_roots = {root()}}, loader_);
  ASSERT_TRUE(created.ok()) << created.status();
  Environment* ssr = created->get();
  ASSERT_TRUE(ssr->Import("head").ok());
  absl::StatusOr<Instance*> loaded = ssr->Import("static-exit");
  ASSERT_FALSE(loaded.ok());
  EXPECT_THAT(
      loaded.status().message(),
      AllOf(HasSubstr("cannot load ssr#static-exit"),
            HasSubstr("ended a preflight process with exit status 0"), HasSubstr("calls exit()")));
  EXPECT_NE(ssr->Find("head"), nullptr);
}

// A finaliser that crashes would end the host when the copy retires or the
// process exits: the preflight unloads the library too.
TEST_F(ReloadTest, AFinaliserThatCrashesIsANamedErrorByDefault) {
  Put(kBadDir / "crashing-finaliser.so", "crashing-finaliser.so");
  auto created = Environment::Create({.name = "ssr", .module_roots = {root()}}, loader_);
  ASSERT_TRUE(created.ok()) << created.status();
  absl::StatusOr<Instance*> loaded = (*created)->Import("crashing-finaliser");
  ASSERT_FALSE(loaded.ok());
  EXPECT_THAT(loaded.status().message(), AllOf(HasSubstr("cannot load ssr#crashing-finaliser"),
                                               HasSubstr("unloading it failed (killed by signal 6"),
                                               HasSubstr("fix its finalisers")));
}

TEST_F(ReloadTest, AReloadPreflightsTheChangedLibraryByDefault) {
  Put(kModuleDir / "head.so", "head.so");
  Put(kProbeDir / "head-probe.so", "head-probe.so");
  auto ssr = MakeEnv("ssr");  // Preflight::kReloads
  ASSERT_TRUE(ssr->Import("head-probe").ok());
  const Instance* head = ssr->Find("head");
  Put(kFixtureDir / "broken-static" / "head.so", "head.so");
  absl::Status reloaded = ssr->Reload("head");
  ASSERT_FALSE(reloaded.ok());
  EXPECT_THAT(reloaded.message(), AllOf(HasSubstr("reload of ssr#head"),
                                        HasSubstr("head's static initialiser is broken"),
                                        HasSubstr("old instances keep serving")));
  EXPECT_EQ(ssr->Find("head"), head);
}

TEST(PreflightTest, AGoodLibraryPassesAndAMissingHelperSaysWhatToDo) {
  EXPECT_TRUE(PreflightLibrary(kModuleDir / "head.so").ok());
  absl::Status missing = PreflightLibrary(kModuleDir / "head.so", {.helper = "/nonexistent"});
  EXPECT_FALSE(missing.ok());
}

}  // namespace
}  // namespace modgraph

namespace modgraph {
namespace {

struct GreetApi {
  std::string (*greet)(std::string_view name);
};

// cache-after-reload: "use cache" entries carry the build of the code that
// filled them.
TEST_F(ReloadTest, CachedResultsOfAnEditedFunctionAreNotServedAfterItsReload) {
  Put(kModuleDir / "cache-runtime.so", "cache-runtime.so");
  Put(kFixtureDir / "greet-v1" / "greet.so", "greet.so");
  auto ssr = MakeEnv("ssr");
  ASSERT_TRUE(ssr->Import("greet").ok());
  EXPECT_EQ(ssr->Find("greet")->api<GreetApi>()->greet("x"), "hello x");
  const std::string v1 = ssr->Find("greet")->code_identity();
  EXPECT_EQ(v1.size(), 64u);
  Put(kFixtureDir / "greet-v2" / "greet.so", "greet.so");
  ASSERT_TRUE(ssr->Reload("greet").ok());
  EXPECT_NE(ssr->Find("greet")->code_identity(), v1);
  EXPECT_EQ(ssr->Find("greet")->api<GreetApi>()->greet("x"), "EDITED greeting for x");
  EXPECT_EQ(ssr->Find("greet")->api<GreetApi>()->greet("y"), "EDITED greeting for y");
  // Back to the first build: its entries are its own again.
  Put(kFixtureDir / "greet-v1" / "greet.so", "greet.so");
  ASSERT_TRUE(ssr->Reload("greet").ok());
  EXPECT_EQ(ssr->Find("greet")->code_identity(), v1);
  EXPECT_EQ(ssr->Find("greet")->api<GreetApi>()->greet("x"), "hello x");
}

// The identity is the build's, not the copy's: a restart (another loader, other
// copies) or another environment gets the same one.
TEST_F(ReloadTest, TheCodeIdentityIsTheSameForEveryCopyOfOneBuild) {
  Put(kModuleDir / "head.so", "head.so");
  auto node = MakeEnv("node");
  ASSERT_TRUE(node->Import("head").ok());
  LibraryLoader restarted({.copy_mode = CopyMode::kMemfd});
  auto again = Environment::Create({.name = "ssr", .module_roots = {root()}}, restarted);
  ASSERT_TRUE(again.ok());
  ASSERT_TRUE((*again)->Import("head").ok());
  EXPECT_EQ((*again)->Find("head")->code_identity(), node->Find("head")->code_identity());
  EXPECT_NE((*again)->Find("head")->library().loaded_path(),
            node->Find("head")->library().loaded_path());
}

}  // namespace
}  // namespace modgraph
