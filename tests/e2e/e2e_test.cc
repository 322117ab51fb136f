// The dev-vs-prod divergence over real HTTP: N concurrent requests to the
// plugin server on loopback. An arrival barrier makes the interleaving
// deterministic — every request sets its head before any renders — so dev+warn
// leaks in every run, and dev+auto and prod prove isolation under the same load.
#include <fmt/format.h>
#include <gmock/gmock.h>

#include "modgraph/example/topologies.h"
#include "modgraph/pages/page_host.h"
#include "modgraph/registry/sentinel.h"
#include "modgraph/server/arrival_barrier.h"
#include "modgraph/server/http_server.h"
#include "modgraph/server/page_routes.h"
#include "modgraph/testing/load_client.h"
#include "modgraph/testing/testkit.h"

namespace modgraph {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::Values;

const std::filesystem::path kModuleDir = MODGRAPH_TEST_MODULE_DIR;
const std::filesystem::path kBundle = MODGRAPH_TEST_BUNDLE;

struct Case {
  std::string name;
  bool prod;
  Policy policy;
  int threads;
};

// A topology served over loopback; every request parks until `parties` arrived.
class ServedTopology {
 public:
  ServedTopology(const Case& c, std::size_t parties) : barrier_(parties) {
    auto topology = testing::LoadForTest(
        c.prod ? example::ProdTopology(kBundle) : example::DevTopology(kModuleDir), c.policy);
    EXPECT_TRUE(topology.ok()) << topology.status();
    topology_ = *std::move(topology);
    auto host = pages::PageHost::Create(*topology_);
    EXPECT_TRUE(host.ok()) << host.status();
    pages_ = *std::move(host);
    auto started = server::HttpServer::Start(
        {.threads = c.threads}, server::MakePageRouter(*pages_, [this](const server::Request&) {
          return barrier_.Work();
        }));
    EXPECT_TRUE(started.ok()) << started.status();
    server_ = *std::move(started);
  }
  ~ServedTopology() { server_->Stop(); }

  std::vector<testing::LoadResult> Fire(const std::vector<std::string>& targets) {
    auto report = testing::RunLoad(
        {.port = server_->port(), .connections = static_cast<int>(targets.size())}, targets);
    EXPECT_TRUE(report.ok()) << report.status();
    for (const testing::LoadResult& result : report->results)
      EXPECT_TRUE(result.ok()) << result.error;
    return report->results;
  }

 private:
  server::ArrivalBarrier barrier_;
  std::unique_ptr<Topology> topology_;
  std::unique_ptr<pages::PageHost> pages_;
  std::unique_ptr<server::HttpServer> server_;
};

// Responses that carry another request's title (or lack their own).
int ForeignTitles(const std::vector<testing::LoadResult>& results) {
  int foreign = 0;
  for (std::size_t i = 0; i < results.size(); ++i) {
    if (results[i].body.find(fmt::format("<title>req-{}</title>", i)) == std::string::npos) {
      ++foreign;
    }
  }
  return foreign;
}

class HeadOverHttpTest : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override { Sentinel::Global().ClearEvents(); }
};

TEST_P(HeadOverHttpTest, DevWarnLeaksTitlesAndTheSentinelReportsIt) {
  const int n = GetParam();
  ServedTopology served({"dev-warn", false, Policy::kWarn, 1}, n);
  auto results = served.Fire(testing::Targets("/concurrent-head?id={}", n));
  EXPECT_EQ(ForeignTitles(results), n - 1);  // only the last writer keeps its own title
  // The body is the request's own (props are per request); the head is not.
  for (int i = 0; i < n; ++i) {
    EXPECT_THAT(results[i].body, HasSubstr(fmt::format(">{}</h1>", i)));
  }
  EXPECT_GT(Sentinel::Global().leak_count(), 0u);
  ASSERT_FALSE(Sentinel::Global().leaks().empty());
  EXPECT_EQ(Sentinel::Global().leaks().front().instance, "ssr#head");
}

TEST_P(HeadOverHttpTest, DevAutoAndProdGiveEachResponseItsOwnHeadAndBody) {
  const int n = GetParam();
  for (const Case& c :
       {Case{"dev-auto", false, Policy::kAuto, 1}, Case{"prod", true, Policy::kWarn, 1},
        Case{"dev-auto-2-threads", false, Policy::kAuto, 2}}) {
    ServedTopology served(c, n);
    auto results = served.Fire(testing::Targets("/concurrent-head?id={}", n));
    for (int i = 0; i < n; ++i) {
      const std::string& body = results[i].body;
      EXPECT_EQ(results[i].status, 200) << c.name;
      EXPECT_THAT(body, HasSubstr(fmt::format("<title>req-{}</title>", i))) << c.name;
      EXPECT_THAT(body, HasSubstr(fmt::format("<meta name=\"req-id\" content=\"{}\">", i)));
      EXPECT_THAT(body, HasSubstr(fmt::format("data-testid=\"req-id\">{}</h1>", i)));
      EXPECT_EQ(body.find("<title>", body.find("<title>") + 1), std::string::npos) << c.name;
    }
  }
  EXPECT_EQ(Sentinel::Global().fallback_hit_count(), 0u);
}

TEST_P(HeadOverHttpTest, RouterDataIsPerRequestUnderDevAutoAndProd) {
  const int n = GetParam();
  for (const Case& c :
       {Case{"dev-auto", false, Policy::kAuto, 1}, Case{"prod", true, Policy::kWarn, 1}}) {
    ServedTopology served(c, n);
    auto results = served.Fire(testing::Targets("/concurrent-router?id={}", n));
    for (int i = 0; i < n; ++i) {
      EXPECT_THAT(results[i].body, HasSubstr(fmt::format("<li data-key=\"id\">{}</li>", i)));
      EXPECT_THAT(results[i].body, HasSubstr("data-testid=\"pathname\">/concurrent-router<"));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Concurrency, HeadOverHttpTest, Values(15, 200));

TEST(StrictOverHttpTest, AnswersTheUnsafeRequestWithAnErrorNamingSsrHead) {
  ServedTopology served({"dev-strict", false, Policy::kStrict, 1}, 1);
  auto results = served.Fire({"/concurrent-head?id=1"});
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].status, 500);
  EXPECT_THAT(results[0].body, HasSubstr("ssr#head"));
  EXPECT_THAT(results[0].body, HasSubstr("get_ssr_head_children"));
  // And the server keeps serving.
  auto again = served.Fire({"/request-store?id=2"});
  EXPECT_EQ(again[0].status, 200);
  EXPECT_THAT(again[0].body, HasSubstr("req-2"));
}

}  // namespace
}  // namespace modgraph
