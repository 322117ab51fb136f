// Topology files: parsing, validation with file:line:column, and loading where
// one bad environment does not stop the others.
#include "modgraph/environments/topology.h"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>

#include "test_paths.h"

namespace modgraph {
namespace {

using ::modgraph::testing::kBadDir;
using ::modgraph::testing::kModuleDir;
using ::modgraph::testing::ScratchDir;
using ::testing::AllOf;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

absl::StatusOr<TopologySpec> Parse(std::string_view text) {
  return ParseTopology(text, "app.toml", "/srv/app");
}

TEST(TopologyParseTest, FuzzRegressionsParseOrFail) {
  const fs::path dir = ::modgraph::testing::kFuzzRegressions / "topology";
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().filename().string().starts_with(".")) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const absl::StatusOr<TopologySpec> spec = ParseTopology(text, entry.path().string(), "/srv");
    if (!spec.ok()) {
      EXPECT_THAT(spec.status().message(), HasSubstr(entry.path().string()));
    }
  }
}

TEST(TopologyParseTest, ReadsEnvironmentsAndResolvesRelativePaths) {
  auto spec = Parse(R"(
name = "app"
policy = "auto"
deployment_id = "dpl-1"
[providers]
head = ["head-state"]
[server]
pages_environment = "ssr"
entry_environment = "node"
document = "server-entry"
pages = ["concurrent-head"]
[[environments]]
name = "node"
module_roots = ["modules", "/opt/shared"]
entries = ["server-entry"]
[[environments]]
name = "prod"
mode = "bundled"
module_roots = ["bundle"]
bundle = "bundle/app.so"
policy = "strict"
)");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->name, "app");
  EXPECT_EQ(spec->settings.at("deployment_id"), "dpl-1");
  EXPECT_EQ(spec->providers.at("head"), std::vector<std::string>{"head-state"});
  EXPECT_EQ(spec->server.pages_environment, "ssr");
  EXPECT_EQ(spec->server.entry_environment, "node");
  EXPECT_EQ(spec->server.document, "server-entry");
  EXPECT_EQ(spec->server.pages, std::vector<std::string>{"concurrent-head"});
  ASSERT_EQ(spec->environments.size(), 2u);
  const EnvironmentSpec& node = spec->environments[0];
  EXPECT_EQ(node.mode, EnvironmentMode::kIsolated);
  EXPECT_EQ(node.module_roots, (std::vector<fs::path>{"/srv/app/modules", "/opt/shared"}));
  EXPECT_EQ(node.entry_modules, std::vector<std::string>{"server-entry"});
  EXPECT_EQ(node.policy, Policy::kAuto);                     // the topology's policy
  EXPECT_EQ(spec->environments[1].policy, Policy::kStrict);  // overridden here
  EXPECT_EQ(spec->environments[1].mode, EnvironmentMode::kBundled);
  EXPECT_EQ(spec->environments[1].bundle, fs::path("/srv/app/bundle/app.so"));
}

TEST(TopologyParseTest, MalformedTomlGivesFileLineAndColumn) {
  auto spec = Parse("name = \"app\"\n[[environments]\n");
  ASSERT_FALSE(spec.ok());
  EXPECT_THAT(spec.status().message(), HasSubstr("app.toml:2:"));
  EXPECT_THAT(spec.status().message(), HasSubstr("malformed topology"));
}

TEST(TopologyParseTest, RejectsEachKindOfMistakeWithItsOwnMessage) {
  struct Case {
    const char* text;
    const char* expected;
  };
  const Case cases[] = {
      {"[[environments]]\nname='a'\nmodule_roots=['m']", "needs a string 'name'"},
      {"name='x'", "declares no environments"},
      {"name='x'\nmodes='y'\n[[environments]]\nname='a'\nmodule_roots=['m']",
       "app.toml:2:7: unknown key 'modes'"},
      {"name='x'\n[[environments]]\nname='a'\nmode='shared'\nmodule_roots=['m']",
       "mode 'shared'; use \"isolated\" or \"bundled\""},
      {"name='x'\n[[environments]]\nname='a'\nmodule_roots=['m']\n[[environments]]\nname='a'\n"
       "module_roots=['m']",
       "environment 'a' is declared twice"},
      {"name='x'\n[[environments]]\nname='a'\nmode='bundled'\nmodule_roots=['m']",
       "is bundled and needs bundle"},
      {"name='x'\n[[environments]]\nname='a'", "needs module_roots"},
      {"name='x'\n[[environments]]\nname='a'\nmodule_roots='m'", "must be an array of strings"},
      {"name='x'\n[[environments]]\nname='a'\nmodule_roots=['m']\nentries=[1]",
       "must hold only strings"},
      {"name='x'\npolicy='lenient'\n[[environments]]\nname='a'\nmodule_roots=['m']",
       "'policy' in the topology must be \"warn\", \"strict\" or \"auto\""},
      {"name='x'\nproviders=1\n[[environments]]\nname='a'\nmodule_roots=['m']",
       "'providers' must be a table"},
      {"name='x'\n[server]\npage=['p']\n[[environments]]\nname='a'\nmodule_roots=['m']",
       "unknown key 'page' in [server]"},
  };
  for (const Case& c : cases) {
    auto spec = Parse(c.text);
    ASSERT_FALSE(spec.ok()) << c.text;
    EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument) << c.text;
    EXPECT_THAT(spec.status().message(), HasSubstr(c.expected)) << c.text;
  }
}

// One environment, for the [server] tests below.
constexpr std::string_view kEnvironments = R"(
[[environments]]
name = "ssr"
module_roots = ["modules"]
)";

TEST(TopologyParseTest, ServerWorkMsIsReadWithADefaultAndBounded) {
  auto defaulted = Parse(std::string("name = \"app\"\n[server]\npages = [\"a\"]\n") +
                         std::string(kEnvironments));
  ASSERT_TRUE(defaulted.ok()) << defaulted.status();
  EXPECT_EQ(defaulted->server.work_ms, ServerSpec::kDefaultWorkMs);
  for (int ms : {0, 12, ServerSpec::kMaxWorkMs}) {
    auto spec = Parse(fmt::format("name = \"app\"\n[server]\nwork_ms = {}\n{}", ms, kEnvironments));
    ASSERT_TRUE(spec.ok()) << spec.status();
    EXPECT_EQ(spec->server.work_ms, ms);
  }
  for (std::string_view bad : {"-1", "60001", "99999999999999", "\"5ms\"", "1.5"}) {
    auto spec =
        Parse(fmt::format("name = \"app\"\n[server]\nwork_ms = {}\n{}", bad, kEnvironments));
    ASSERT_FALSE(spec.ok()) << bad;
    EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(spec.status().message(), HasSubstr("app.toml:3:11: 'work_ms' in [server]")) << bad;
    EXPECT_THAT(spec.status().message(),
                HasSubstr("must be a whole number of milliseconds from 0 to 60000"));
    EXPECT_THAT(spec.status().message(), HasSubstr("set e.g. work_ms = 5 (0 for benchmarks)"));
  }
}

// The document module is named by the topology, as a module id.
TEST(TopologyParseTest, ServerDocumentIsAModuleId) {
  auto plain = Parse(fmt::format("name = \"app\"\n[server]\npages = [\"a\"]\n{}", kEnvironments));
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_TRUE(plain->server.document.empty());
  auto bad =
      Parse(fmt::format("name = \"app\"\n[server]\ndocument = \"App.Shell\"\n{}", kEnvironments));
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(),
              AllOf(HasSubstr("'App.Shell'"), HasSubstr("app.toml:3:12, 'document' in [server]")));
}

TEST(TopologyParseTest, OverridePolicySetsEveryEnvironment) {
  auto spec = Parse(
      "name='x'\npolicy='strict'\n[[environments]]\nname='a'\nmodule_roots=['m']\n"
      "[[environments]]\nname='b'\nmodule_roots=['m']\npolicy='warn'");
  ASSERT_TRUE(spec.ok()) << spec.status();
  OverridePolicy(*spec, Policy::kAuto);
  for (const EnvironmentSpec& env : spec->environments) EXPECT_EQ(env.policy, Policy::kAuto);
}

TEST(TopologyFileTest, MissingFileSaysWhatToDo) {
  auto spec = LoadTopologyFile("/nonexistent/topology.toml");
  ASSERT_FALSE(spec.ok());
  EXPECT_THAT(spec.status().message(), HasSubstr("/nonexistent/topology.toml"));
}

TEST(TopologyFileTest, OneFailingEnvironmentDoesNotStopTheOthers) {
  ScratchDir scratch;
  const fs::path file = scratch.path() / "topology.toml";
  std::ofstream(file) << "name = 'mixed'\n"
                      << "[[environments]]\nname = 'broken'\nmodule_roots = ['"
                      << kModuleDir.string() << "', '" << kBadDir.string()
                      << "']\nentries = ['head', 'imports-throwing']\n"
                      << "[[environments]]\nname = 'ssr'\nmodule_roots = ['" << kModuleDir.string()
                      << "']\nentries = ['head']\n";
  auto spec = LoadTopologyFile(file);
  ASSERT_TRUE(spec.ok()) << spec.status();
  auto topology = Topology::Create(*spec, {.temp_root = scratch.path()});
  ASSERT_TRUE(topology.ok()) << topology.status();
  std::vector<absl::Status> errors = (*topology)->LoadEntries();
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_THAT(errors[0].message(), HasSubstr("broken#throwing-init"));
  EXPECT_NE((*topology)->environment("ssr")->Find("head"), nullptr);
  // The entry that loaded before the failure stays; the failed import left nothing.
  EXPECT_NE((*topology)->environment("broken")->Find("head"), nullptr);
  EXPECT_EQ((*topology)->environment("broken")->Find("imports-throwing"), nullptr);
}

// LoadEntries reads each module file once, however many environments load it.
TEST(TopologyFileTest, LoadEntriesReadsEachModuleFileOnce) {
  ScratchDir scratch;
  TopologySpec spec{.name = "twice", .origin = "test"};
  for (const char* name : {"node", "ssr"}) {
    spec.environments.push_back({.name = name,
                                 .mode = EnvironmentMode::kIsolated,
                                 .module_roots = {kModuleDir},
                                 .entry_modules = {"concurrent-head"}});
  }
  auto topology = Topology::Create(spec, {.temp_root = scratch.path()});
  ASSERT_TRUE(topology.ok()) << topology.status();
  ASSERT_TRUE((*topology)->LoadEntries().empty());
  const std::size_t per_environment = (*topology)->environment("ssr")->instances().size();
  EXPECT_GT(per_environment, 1u);  // the page and what it imports
  EXPECT_EQ((*topology)->environment("node")->instances().size(), per_environment);
  EXPECT_EQ((*topology)->loader().files_read(), per_environment);
}

TEST(TopologyFileTest, CreateNamesTheTopologyAndEnvironmentOfABadRoot) {
  auto spec = Parse("name='app'\n[[environments]]\nname='ssr'\nmodule_roots=['missing']");
  ASSERT_TRUE(spec.ok());
  auto topology = Topology::Create(*spec);
  ASSERT_FALSE(topology.ok());
  EXPECT_THAT(topology.status().message(), HasSubstr("topology 'app' (app.toml)"));
  EXPECT_THAT(topology.status().message(), HasSubstr("environment 'ssr'"));
  EXPECT_THAT(topology.status().message(), HasSubstr("/srv/app/missing"));
}

}  // namespace
}  // namespace modgraph
