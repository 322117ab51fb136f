// The report library on the real dev and prod topologies: the golden text,
// the JSON field by field, DOT and HTML structure, and escaping.
#include "modgraph/report/report.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <regex>
#include <sstream>
#include <string>

#include "absl/strings/string_view.h"
#include "modgraph/environments/topology.h"
#include "modgraph/example/topologies.h"
#include "modgraph/report/render.h"
#include "nlohmann/json.hpp"

namespace absl {
inline void PrintTo(absl::string_view text, std::ostream* os) { *os << std::string(text); }
}  // namespace absl

namespace modgraph::report {
namespace {

namespace fs = std::filesystem;
const fs::path kModuleDir = MODGRAPH_TEST_MODULE_DIR;
const fs::path kBundle = MODGRAPH_TEST_BUNDLE;
const fs::path kGoldenDir = MODGRAPH_TEST_GOLDEN_DIR;

Report Load(TopologySpec spec, Policy policy) {
  auto loaded = Topology::Load(std::move(spec), {.policy = policy});
  EXPECT_TRUE(loaded.ok()) << loaded.status();
  if (!loaded.ok()) return {};
  for (const absl::Status& error : loaded->errors) ADD_FAILURE() << error;
  return BuildReport(*loaded->topology, loaded->errors);
}

Report DevReport(Policy policy) { return Load(example::DevTopology(kModuleDir), policy); }

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

int Count(const std::string& text, const std::string& needle) {
  int n = 0;
  for (std::size_t at = text.find(needle); at != std::string::npos;
       at = text.find(needle, at + needle.size())) {
    ++n;
  }
  return n;
}

TEST(ReportTest, DevWarnFindsTheTwoUnregisteredSsrInstances) {
  const Report report = DevReport(Policy::kWarn);
  ASSERT_EQ(report.findings.size(), 2u);
  EXPECT_EQ(report.findings[0].instance, "ssr#head");
  EXPECT_EQ(report.findings[0].slot, "get_ssr_head_children");
  EXPECT_EQ(report.findings[0].registered_twins, std::vector<std::string>{"node#head"});
  EXPECT_EQ(report.findings[0].fixing_providers, std::vector<std::string>{"head-state"});
  EXPECT_EQ(report.findings[1].instance, "ssr#router");
  EXPECT_EQ(report.findings[1].slot, "get_router_state");
  EXPECT_EQ(report.findings[1].registered_twins, std::vector<std::string>{"node#router"});
  EXPECT_EQ(report.findings[1].fixing_providers, std::vector<std::string>{"router-state"});
  EXPECT_EQ(ExitCode(report), kExitFindings);
  EXPECT_EQ(report.summary.findings, 2);
  EXPECT_EQ(report.summary.instances_with_findings, 2);
  EXPECT_EQ(report.summary.environments_with_findings, 1);
  EXPECT_TRUE(HasFindings(report, "ssr#head"));
  EXPECT_FALSE(HasFindings(report, "node#head"));
}

TEST(ReportTest, DevAutoAndProdAreClean) {
  const Report dev = DevReport(Policy::kAuto);
  EXPECT_TRUE(dev.findings.empty());
  EXPECT_EQ(ExitCode(dev), kExitClean);
  const Report prod = Load(example::ProdTopology(kBundle), Policy::kWarn);
  EXPECT_TRUE(prod.findings.empty());
  EXPECT_EQ(ExitCode(prod), kExitClean);
  ASSERT_EQ(prod.environments.size(), 1u);
  EXPECT_EQ(prod.environments[0].mode, "bundled");
  EXPECT_NE(RenderText(prod).find("summary: clean"), std::string::npos);
}

TEST(ReportTest, InstancesAreSortedByEnvironmentThenName) {
  const Report report = DevReport(Policy::kWarn);
  ASSERT_FALSE(report.instances.empty());
  EXPECT_EQ(report.instances.front().instance, "node#head");
  EXPECT_EQ(report.instances.back().environment, "ssr");
  EXPECT_TRUE(std::is_sorted(report.environments[1].instances.begin(),
                             report.environments[1].instances.end()));
}

// The text the doctor prints for the shipped example. To accept an intended
// change: MODGRAPH_UPDATE_GOLDEN=1 ctest -R ReportTest.DevWarnTextMatchesGolden
TEST(ReportTest, DevWarnTextMatchesGolden) {
  const fs::path golden = kGoldenDir / "doctor_dev_warn.txt";
  const std::string text = RenderText(DevReport(Policy::kWarn), {.color = false});
  if (const char* update = std::getenv("MODGRAPH_UPDATE_GOLDEN"); update && *update == '1') {
    std::ofstream(golden, std::ios::binary) << text;
  }
  EXPECT_EQ(text, ReadFile(golden)) << "golden file: " << golden.string();
  EXPECT_EQ(text.find("/tmp"), std::string::npos);
  EXPECT_EQ(text.find("/dev/shm"), std::string::npos);
  EXPECT_EQ(text.find("0x"), std::string::npos);
  EXPECT_EQ(text, RenderText(DevReport(Policy::kWarn), {.color = false})) << "not deterministic";
}

TEST(ReportTest, TextUsesColourOnlyWhenAsked) {
  const Report report = DevReport(Policy::kWarn);
  EXPECT_EQ(RenderText(report, {.color = false}).find('\x1b'), std::string::npos);
  const std::string colored = RenderText(report, {.color = true});
  EXPECT_NE(colored.find("\x1b[1;31mfinding:\x1b[0m"), std::string::npos);
}

TEST(ReportTest, TextUnderStrictSaysRequestsFail) {
  const std::string text = RenderText(DevReport(Policy::kStrict));
  EXPECT_EQ(Count(text, "policy strict: a request that reaches this slot fails"), 2);
}

TEST(ReportTest, JsonCarriesTheWholeRegistry) {
  const Report report = DevReport(Policy::kWarn);
  // Through text and back, as a consumer of `modgraph doctor --format json` would.
  const nlohmann::json json = nlohmann::json::parse(RenderJson(report).dump(2));

  EXPECT_EQ(json["schema"], "modgraph-report/1");
  EXPECT_EQ(json["topology"]["name"], "dev");
  EXPECT_EQ(json["topology"]["origin"], "built-in");

  ASSERT_EQ(json["environments"].size(), 2u);
  const nlohmann::json& node = json["environments"][0];
  EXPECT_EQ(node["name"], "node");
  EXPECT_EQ(node["mode"], "isolated");
  EXPECT_EQ(node["policy"], "warn");
  EXPECT_TRUE(node["bundle"].is_null());
  ASSERT_EQ(node["module_roots"].size(), 1u);
  EXPECT_EQ(fs::path(node["module_roots"][0].get<std::string>()), kModuleDir);
  EXPECT_EQ(json["environments"][1]["name"], "ssr");
  EXPECT_EQ(json["environments"][1]["instances"].size(), report.environments[1].instances.size());

  ASSERT_EQ(json["instances"].size(), report.instances.size());
  const nlohmann::json* node_head = nullptr;
  const nlohmann::json* ssr_head = nullptr;
  const nlohmann::json* node_head_state = nullptr;
  for (const nlohmann::json& instance : json["instances"]) {
    if (instance["instance"] == "node#head") node_head = &instance;
    if (instance["instance"] == "ssr#head") ssr_head = &instance;
    if (instance["instance"] == "node#head-state") node_head_state = &instance;
  }
  ASSERT_NE(node_head, nullptr);
  ASSERT_NE(ssr_head, nullptr);
  ASSERT_NE(node_head_state, nullptr);

  EXPECT_EQ((*node_head)["environment"], "node");
  EXPECT_EQ((*node_head)["module"], "head");
  EXPECT_EQ((*node_head)["policy"], "warn");
  EXPECT_EQ((*node_head)["has_findings"], false);
  // The private copy this instance's state lives in, named after it.
  const std::string library = (*node_head)["library"];
  EXPECT_NE(library.find("node#head"), std::string::npos) << library;
  EXPECT_NE(library, (*ssr_head)["library"].get<std::string>());
  ASSERT_EQ((*node_head)["slots"].size(), 1u);
  const nlohmann::json& registered = (*node_head)["slots"][0];
  EXPECT_EQ(registered["slot"], "get_ssr_head_children");
  EXPECT_EQ(registered["signature"], "std::vector<std::string>*()");
  EXPECT_EQ(registered["state"], "registered");
  EXPECT_EQ(registered["provider"], "node#head-state");
  EXPECT_TRUE(std::regex_match(registered["registered_at"].get<std::string>(),
                               std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)")))
      << registered["registered_at"];

  const nlohmann::json& unregistered = (*ssr_head)["slots"][0];
  EXPECT_EQ(unregistered["state"], "default");
  EXPECT_TRUE(unregistered["provider"].is_null());
  EXPECT_TRUE(unregistered["registered_at"].is_null());
  EXPECT_EQ((*ssr_head)["has_findings"], true);

  EXPECT_EQ((*node_head_state)["imports"], nlohmann::json::array({"node#head"}));
  EXPECT_EQ((*node_head_state)["provides_for"], nlohmann::json::array({"head"}));

  ASSERT_EQ(json["findings"].size(), 2u);
  const nlohmann::json& finding = json["findings"][0];
  EXPECT_EQ(finding["instance"], "ssr#head");
  EXPECT_EQ(finding["environment"], "ssr");
  EXPECT_EQ(finding["module"], "head");
  EXPECT_EQ(finding["slot"], "get_ssr_head_children");
  EXPECT_EQ(finding["registered_twins"], nlohmann::json::array({"node#head"}));
  EXPECT_EQ(finding["fixing_providers"], nlohmann::json::array({"head-state"}));
  EXPECT_EQ(json["findings"][1]["instance"], "ssr#router");
  EXPECT_EQ(json["findings"][1]["fixing_providers"], nlohmann::json::array({"router-state"}));

  EXPECT_EQ(json["errors"], nlohmann::json::array());
  const nlohmann::json& summary = json["summary"];
  EXPECT_EQ(summary["status"], "findings");
  EXPECT_EQ(summary["exit_code"], 1);
  EXPECT_EQ(summary["environments"], 2);
  EXPECT_EQ(summary["instances"], static_cast<int>(report.instances.size()));
  EXPECT_EQ(summary["findings"], 2);
  EXPECT_EQ(summary["instances_with_findings"], 2);
  EXPECT_EQ(summary["environments_with_findings"], 1);
  EXPECT_EQ(summary["slots"].get<int>() - summary["registered_slots"].get<int>(), 2);
  EXPECT_EQ(summary["errors"], 0);
}

TEST(ReportTest, DotHasClustersNodesImportsRegistrationsAndTwins) {
  const Report report = DevReport(Policy::kWarn);
  const std::string dot = RenderDot(report);
  EXPECT_EQ(dot.rfind("digraph modgraph {", 0), 0u);
  EXPECT_EQ(Count(dot, "subgraph \"cluster_"), 2);
  for (const InstanceRecord& instance : report.instances) {
    EXPECT_NE(dot.find("\"" + instance.instance + "\" [label="), std::string::npos)
        << instance.instance;
  }
  EXPECT_NE(dot.find("\"node#head-state\" -> \"node#head\" [color="), std::string::npos);
  EXPECT_NE(dot.find("\"node#head-state\" -> \"node#head\" [style=dashed"), std::string::npos);
  EXPECT_NE(dot.find("\"ssr#head\" -> \"node#head\" [style=dotted"), std::string::npos);
  EXPECT_NE(dot.find("\"ssr#router\" -> \"node#router\" [style=dotted"), std::string::npos);
  EXPECT_EQ(Count(dot, "fillcolor=\"#ffcdd2\""), 2);  // the two unregistered instances
  EXPECT_EQ(dot.find("/dev/shm"), std::string::npos);
}

TEST(ReportTest, HtmlIsSelfContainedWithAFindingsTable) {
  const Report report = DevReport(Policy::kWarn);
  const std::string html = RenderHtml(report);
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_NE(html.find("Content-Security-Policy\" content=\"default-src 'none'"), std::string::npos);
  for (const char* external :
       {"http:", "https:", "src=", "@import", "url(http", "<link rel=\"stylesheet"}) {
    EXPECT_EQ(html.find(external), std::string::npos) << external;
  }
  EXPECT_EQ(Count(html, "<tr class=\"finding\""), 2);
  EXPECT_NE(html.find("<tr class=\"finding\" data-instance=\"ssr#head\""), std::string::npos);
  EXPECT_EQ(Count(html, "<g class=\"node finding\""), 2);
  EXPECT_EQ(Count(html, "<g class=\"node "), static_cast<int>(report.instances.size()));
  EXPECT_EQ(Count(html, "<tr class=\"unregistered\""), 2);
  EXPECT_EQ(Count(html, "<script>"), 1);

  const std::string clean = RenderHtml(DevReport(Policy::kAuto));
  EXPECT_EQ(Count(clean, "<tr class=\"finding\""), 0);
  EXPECT_EQ(Count(clean, "<tr class=\"clean\""), 1);
}

// A hand-made report with hostile names: every renderer escapes them.
Report HostileReport() {
  Report report;
  report.topology = "t<\"&>";
  report.origin = "/x/</script><b>.toml";
  report.environments.push_back({.name = "e\"1",
                                 .mode = "isolated",
                                 .policy = "warn",
                                 .module_roots = {},
                                 .bundle = "",
                                 .instances = {"e\"1#m<x>"}});
  InstanceRecord instance{.environment = "e\"1",
                          .module = "m<x>",
                          .instance = "e\"1#m<x>",
                          .library = "/lib/</script>.so",
                          .policy = Policy::kWarn,
                          .imports = {},
                          .provides_for = {},
                          .slots = {{.slot = "s&<", .signature = "void()"}}};
  report.instances.push_back(instance);
  report.findings.push_back({.environment = "e\"1",
                             .module = "m<x>",
                             .instance = "e\"1#m<x>",
                             .slot = "s&<",
                             .registered_twins = {},
                             .fixing_providers = {}});
  report.errors.push_back("boom </script><script>alert(1)</script>");
  Summarize(report);
  return report;
}

TEST(ReportTest, RenderersEscapeNames) {
  const Report report = HostileReport();
  EXPECT_EQ(ExitCode(report), kExitError);
  const std::string html = RenderHtml(report);
  EXPECT_EQ(Count(html, "</script>"), 2);  // the JSON block and the page script
  EXPECT_EQ(html.find("<b>"), std::string::npos);
  EXPECT_NE(html.find("e&quot;1#m&lt;x&gt;"), std::string::npos);
  const std::string dot = RenderDot(report);
  EXPECT_NE(dot.find("\"e\\\"1#m<x>\" [label="), std::string::npos) << dot;
  const nlohmann::json json = nlohmann::json::parse(RenderJson(report).dump());
  EXPECT_EQ(json["instances"][0]["instance"], "e\"1#m<x>");
  EXPECT_EQ(json["summary"]["status"], "error");
  const std::string text = RenderText(report);
  EXPECT_NE(text.find("provider that would fix it: none declared for module m<x>"),
            std::string::npos);
  EXPECT_NE(text.find("1 error loading the topology"), std::string::npos);
}

TEST(ReportTest, IsoTimeIsUtcWithMilliseconds) {
  using namespace std::chrono;
  EXPECT_EQ(IsoTime(system_clock::time_point{}), "");
  const system_clock::time_point t{milliseconds(1700000000123)};
  EXPECT_EQ(IsoTime(t), "2023-11-14T22:13:20.123Z");
}

}  // namespace
}  // namespace modgraph::report

namespace modgraph::report {
namespace {

// A reloaded module that declares no teardown is kept mapped: the report says
// which copy, of which instances, and why (text and JSON).
TEST(ReportTest, RetiredCopiesStillMappedAreListedWithTheReason) {
  TopologySpec spec{.name = "retire", .environments = {}, .origin = "test"};
  spec.environments.push_back({.name = "ssr",
                               .module_roots = {fs::path(MODGRAPH_TEST_FIXTURE_DIR) / "bad"},
                               .entry_modules = {"ticker"}});
  auto topology = Topology::Create(std::move(spec));
  ASSERT_TRUE(topology.ok()) << topology.status();
  ASSERT_TRUE((*topology)->LoadEntries().empty());
  ASSERT_TRUE((*topology)->Reload("ssr", "ticker").ok());
  const Report report = BuildReport(**topology, {});
  ASSERT_EQ(report.retired.size(), 1u);
  EXPECT_EQ(report.retired[0].environment, "ssr");
  EXPECT_EQ(report.retired[0].library.instances, std::vector<std::string>{"ssr#ticker"});
  EXPECT_TRUE(report.retired[0].library.kept_for_good);
  const std::string text = RenderText(report, {.color = false});
  EXPECT_NE(text.find("retired copy " + report.retired[0].library.copy +
                      " (was ssr#ticker) is still mapped: module 'ticker' declares no teardown"),
            std::string::npos)
      << text;
  const nlohmann::json json = RenderJson(report);
  ASSERT_EQ(json["retired"].size(), 1u);
  EXPECT_EQ(json["retired"][0]["kept_for_good"], true);
  EXPECT_EQ(ExitCode(report), kExitClean);  // informational
}

}  // namespace
}  // namespace modgraph::report
