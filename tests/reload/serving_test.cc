// Serving while modules are reloaded: the page host finds each page's current
// instance per request, a request in flight finishes on the copy it started
// with, and the watcher reloads rebuilt modules (and survives broken builds).
#include <fmt/format.h>
#include <gmock/gmock.h>

#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <thread>

#include "modgraph/example/topologies.h"
#include "modgraph/testing/load_client.h"
#include "reload_fixture.h"

namespace modgraph {
namespace {

using ::modgraph::testing::kModuleDir;
using ::modgraph::testing::kStressFixtures;
using ::modgraph::testing::ReportQueue;
using ::modgraph::testing::ScratchRoot;
using ::modgraph::testing::ServedStressPage;
using ::testing::AllOf;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
namespace fs = std::filesystem;

std::string Get(std::uint16_t port, int id) {
  absl::StatusOr<testing::LoadResult> page = testing::Fetch(port, fmt::format("/stress?id={}", id));
  if (!page.ok()) return std::string(page.status().message());
  return fmt::format("{} {}", page->status, page->body);
}

TEST(PageHostReloadTest, ARequestAfterAReloadRendersTheNewCopy) {
  ScratchRoot scratch;
  ServedStressPage served(scratch, Policy::kAuto, 1);
  EXPECT_THAT(Get(served.port(), 1), AllOf(HasSubstr("200"), HasSubstr("v1 req-1")));
  scratch.Put(kStressFixtures / "v2" / "stress-page.so", "stress-page.so");
  ASSERT_TRUE(served.topology().Reload("ssr", "stress-page").ok());
  EXPECT_EQ(served.ssr().retired_count(), 0u);  // no request was open: the old copy is closed
  EXPECT_THAT(Get(served.port(), 2),
              AllOf(HasSubstr("200"), HasSubstr("<title>req-2</title>"), HasSubstr("v2 req-2")));
}

TEST(PageHostReloadTest, AFailedReloadKeepsTheOldPageServing) {
  ScratchRoot scratch;
  ServedStressPage served(scratch, Policy::kAuto, 1);
  scratch.Put(kStressFixtures / "broken" / "stress-page.so", "stress-page.so");
  absl::Status reloaded = served.topology().Reload("ssr", "stress-page");
  EXPECT_THAT(reloaded.message(), HasSubstr("this build of stress-page is broken"));
  EXPECT_THAT(Get(served.port(), 1), AllOf(HasSubstr("200"), HasSubstr("v1 req-1")));
  scratch.Put(kStressFixtures / "v2" / "stress-page.so", "stress-page.so");
  ASSERT_TRUE(served.topology().Reload("ssr", "stress-page").ok());
  EXPECT_THAT(Get(served.port(), 2), HasSubstr("v2 req-2"));
}

// Parks every request in its page until opened; counts arrivals.
class Gate {
 public:
  pages::AsyncWork Work() {
    return [this]() -> boost::asio::awaitable<void> {
      auto executor = co_await boost::asio::this_coro::executor;
      boost::asio::steady_timer timer(executor, std::chrono::steady_clock::time_point::max());
      {
        std::lock_guard lock(mu_);
        if (open_) co_return;
        waiting_.push_back(&timer);
        ++arrived_;
      }
      arrivals_.notify_all();
      // Open() cancels the timer through its executor: after this wait began.
      boost::system::error_code cancelled;
      co_await timer.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, cancelled));
    };
  }
  void WaitArrived(int n) {
    std::unique_lock lock(mu_);
    arrivals_.wait(lock, [&] { return arrived_ >= n; });
  }
  void Open() {
    std::lock_guard lock(mu_);
    open_ = true;
    for (boost::asio::steady_timer* timer : waiting_) {
      boost::asio::post(timer->get_executor(), [timer] { timer->cancel(); });
    }
    waiting_.clear();
  }

 private:
  std::mutex mu_;
  std::condition_variable arrivals_;
  std::vector<boost::asio::steady_timer*> waiting_;
  int arrived_ = 0;
  bool open_ = false;
};

// A request that started before a reload renders start to finish on its copy;
// the copy stays mapped until it is done, then closes.
TEST(PageHostReloadTest, ARequestInFlightFinishesOnTheCopyItStartedWith) {
  ScratchRoot scratch;
  scratch.Put(kModuleDir / "head.so", "head.so");
  scratch.Put(kModuleDir / "head-state.so", "head-state.so");
  scratch.Put(kStressFixtures / "v1" / "stress-page.so", "stress-page.so");
  TopologySpec spec{.name = "gate", .environments = {}, .origin = "test"};
  spec.environments.push_back({.name = "ssr",
                               .module_roots = {scratch.root()},
                               .entry_modules = {"head-state", "stress-page"},
                               .policy = Policy::kAuto});
  spec.server = {.pages_environment = "ssr", .entry_environment = "", .pages = {"stress-page"}};
  auto topology = Topology::Create(std::move(spec), {.temp_root = scratch.copies()});
  ASSERT_TRUE(topology.ok()) << topology.status();
  ASSERT_THAT((*topology)->LoadEntries(), IsEmpty());
  auto host = pages::PageHost::Create(**topology);
  ASSERT_TRUE(host.ok());
  Gate gate;
  auto server = server::HttpServer::Start(
      {}, server::MakePageRouter(
              **host, [&](const server::Request& request) -> absl::StatusOr<pages::AsyncWork> {
                if (request.query.contains("wait")) return gate.Work();
                return server::YieldOnce(request);
              }));
  ASSERT_TRUE(server.ok());
  const std::uint16_t port = (*server)->port();
  std::string parked;
  std::thread client([&] {
    auto page = testing::Fetch(port, "/stress?id=7&wait=1");
    parked = page.ok() ? page->body : std::string(page.status().message());
  });
  gate.WaitArrived(1);
  scratch.Put(kStressFixtures / "v2" / "stress-page.so", "stress-page.so");
  // head too: the parked request's head state belongs to the old head-state copy.
  ASSERT_TRUE((*topology)->Reload("ssr", "head").ok());
  Environment& ssr = *(*topology)->environment("ssr");
  EXPECT_EQ(ssr.retired_count(), 3u);  // head, head-state, stress-page v1: the request may use them
  EXPECT_THAT(Get(port, 8), HasSubstr("v2 req-8"));
  gate.Open();
  client.join();
  EXPECT_THAT(parked, AllOf(HasSubstr("<title>req-7</title>"), HasSubstr("v1 req-7")));
  EXPECT_THAT(parked, Not(HasSubstr("req-8")));
  (*server)->Stop();
  EXPECT_EQ(ssr.ReleaseRetired(), 3u);
}

TEST(WatcherTest, RebuildsAreReloadedAndABrokenBuildKeepsTheOldCopyServing) {
  ScratchRoot scratch;
  ReportQueue reports;  // outlives the watcher that pushes to it
  ServedStressPage served(scratch, Policy::kAuto, 2);
  served.Watch(reports, std::chrono::milliseconds(20));

  scratch.Put(kStressFixtures / "v2" / "stress-page.so", "stress-page.so");
  std::optional<ReloadReport> report = reports.Next();
  ASSERT_TRUE(report.has_value());
  ASSERT_EQ(report->outcomes.size(), 1u);
  EXPECT_TRUE(report->outcomes[0].status.ok()) << report->outcomes[0].status;
  EXPECT_THAT(report->outcomes[0].reloaded, Contains("ssr#stress-page"));
  EXPECT_THAT(report->findings, IsEmpty());
  EXPECT_THAT(FormatReloadReport(*report), AllOf(HasSubstr("reload #1: stress-page.so changed"),
                                                 HasSubstr("ssr: reloaded ssr#stress-page"),
                                                 HasSubstr("registry: every slot is registered")));
  EXPECT_THAT(Get(served.port(), 1), HasSubstr("v2 req-1"));

  scratch.Put(kStressFixtures / "broken" / "stress-page.so", "stress-page.so");
  report = reports.Next();
  ASSERT_TRUE(report.has_value());
  ASSERT_EQ(report->outcomes.size(), 1u);
  EXPECT_THAT(report->outcomes[0].status.message(),
              HasSubstr("this build of stress-page is broken"));
  EXPECT_THAT(FormatReloadReport(*report), HasSubstr("ssr: FAILED, the old copies keep serving"));
  EXPECT_THAT(Get(served.port(), 2), AllOf(HasSubstr("200"), HasSubstr("v2 req-2")));

  scratch.Put(kStressFixtures / "v1" / "stress-page.so", "stress-page.so");
  report = reports.Next();
  ASSERT_TRUE(report.has_value());
  EXPECT_TRUE(report->outcomes.at(0).status.ok());
  EXPECT_THAT(Get(served.port(), 3), HasSubstr("v1 req-3"));
}

// head rebuilt in the dev topology: it and its importers are reloaded in both
// environments; under warn the report shows ssr#head unregistered (node's twin
// is registered), under auto its provider registers inside the same reload.
class WatchedDevTest : public ::testing::TestWithParam<Policy> {};

TEST_P(WatchedDevTest, AHeadRebuildIsReloadedEverywhereAndTheRegistryShown) {
  ScratchRoot scratch;
  for (const auto& entry : fs::directory_iterator(kModuleDir)) {
    if (entry.path().extension() == ".so") {
      scratch.Put(entry.path(), entry.path().filename().string());
    }
  }
  auto loaded = Topology::Load(example::DevTopology(scratch.root()),
                               {.policy = GetParam(), .loader = {.temp_root = scratch.copies()}});
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ASSERT_THAT(loaded->errors, IsEmpty());
  Topology& topology = *loaded->topology;
  ReportQueue reports;
  auto watcher = ModuleWatcher::Start(
      topology, {.debounce = std::chrono::milliseconds(20),
                 .on_reload = [&](const ReloadReport& r) { reports.Push(r); }});
  ASSERT_TRUE(watcher.ok()) << watcher.status();
  scratch.Put(kModuleDir / "head.so", "head.so");  // a rebuild: a new file, same name
  std::optional<ReloadReport> report = reports.Next();
  watcher->reset();
  ASSERT_TRUE(report.has_value());
  std::vector<std::string> environments;
  for (const ReloadReport::Outcome& outcome : report->outcomes) {
    EXPECT_TRUE(outcome.status.ok()) << outcome.status;
    EXPECT_THAT(outcome.reloaded, Contains(outcome.environment + "#head"));
    environments.push_back(outcome.environment);
  }
  EXPECT_THAT(environments, ::testing::UnorderedElementsAre("node", "ssr"));
  std::vector<std::string> unregistered;
  for (const Finding& finding : report->findings) {
    unregistered.push_back(finding.instance + " " + finding.slot);
  }
  if (GetParam() == Policy::kAuto) {
    EXPECT_THAT(unregistered, IsEmpty());
  } else {
    EXPECT_THAT(unregistered, Contains("ssr#head get_ssr_head_children"));
    EXPECT_THAT(FormatReloadReport(*report),
                HasSubstr("ssr#head get_ssr_head_children (registered in node#head; fix: load "
                          "head-state in ssr)"));
  }
}

INSTANTIATE_TEST_SUITE_P(Policies, WatchedDevTest, ::testing::Values(Policy::kWarn, Policy::kAuto),
                         [](const auto& param_info) {
                           return std::string(ToString(param_info.param));
                         });

}  // namespace
}  // namespace modgraph
