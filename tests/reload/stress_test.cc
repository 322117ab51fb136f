// Reload under load: 200 requests kept in flight while 100 reloads happen,
// every fifth one a broken build, under auto. Every response must carry its own
// title and only its own (head-state registered on the head each request
// uses), every response is a 200 (a broken build never serves), the registry
// matches the environment after every reload, and the private copies on disk
// are exactly the live and retired libraries. Run by the tsan and asan presets
// too: any data race or memory error is a failure there.
#include <fmt/format.h>
#include <gmock/gmock.h>

#include <atomic>
#include <cstdio>
#include <set>
#include <thread>

#include "modgraph/testing/load_client.h"
#include "reload_fixture.h"

namespace modgraph {
namespace {

using ::modgraph::testing::kStressFixtures;
using ::modgraph::testing::ScratchRoot;
using ::modgraph::testing::ServedStressPage;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

constexpr int kInFlight = 200;
constexpr int kReloads = 100;

// What the client saw.
struct Tally {
  std::uint64_t responses = 0;
  std::uint64_t non_200 = 0;
  std::uint64_t wrong_titles = 0;
  std::uint64_t failures = 0;  // no response at all
  std::vector<std::string> samples;
  void Sample(std::string what) {
    if (samples.size() < 5) samples.push_back(std::move(what));
  }
};

// True when `body` holds request `id`'s title and no other.
bool OnlyItsOwnTitle(const std::string& body, std::uint64_t id) {
  std::size_t titles = 0;
  for (std::size_t at = body.find("<title>"); at != std::string::npos;
       at = body.find("<title>", at + 1)) {
    ++titles;
  }
  return titles == 1 && body.find(fmt::format("<title>req-{}</title>", id)) != std::string::npos;
}

int CopiesOnDisk(const fs::path& copy_dir) {
  int copies = 0;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(copy_dir, ec)) {
    if (entry.path().extension() == ".so") ++copies;
  }
  return copies;
}

// The registry describes exactly the environment's instances and their copies,
// and ssr#head is registered by ssr#head-state (auto).
void ExpectRegistryMatches(const Topology& topology, const Environment& ssr, int reload) {
  std::set<std::string> live;
  for (const Instance* instance : ssr.instances()) {
    live.insert(instance->name());
    std::optional<InstanceRecord> record = topology.registry().Find(instance->name());
    ASSERT_TRUE(record.has_value()) << instance->name() << " after reload " << reload;
    EXPECT_EQ(record->library, instance->library().loaded_path().string())
        << instance->name() << " after reload " << reload;
  }
  std::set<std::string> recorded;
  for (const InstanceRecord& record : topology.registry().instances()) {
    recorded.insert(record.instance);
  }
  EXPECT_EQ(recorded, live) << "after reload " << reload;
  std::optional<InstanceRecord> head = topology.registry().Find("ssr#head");
  ASSERT_TRUE(head.has_value());
  EXPECT_TRUE(head->slots.at(0).registered) << "after reload " << reload;
  EXPECT_EQ(head->slots.at(0).provider_instance, "ssr#head-state") << "after reload " << reload;
  EXPECT_TRUE(topology.registry().Findings().empty()) << "after reload " << reload;
}

TEST(ReloadStressTest, RequestsInFlightThroughAHundredReloadsEveryFifthBroken) {
  ScratchRoot scratch;
  ServedStressPage served(scratch, Policy::kAuto, /*threads=*/2);
  Environment& ssr = served.ssr();
  const fs::path copy_dir = served.topology().loader().copy_directory();

  std::atomic<bool> reloading{true};
  Tally tally;
  std::thread client([&] {
    std::uint64_t next_id = 1;
    // At least one full batch after the last reload, so the final copies serve too.
    for (bool last = false; !last;) {
      last = !reloading.load();
      std::vector<std::string> targets;
      const std::uint64_t first = next_id;
      for (int i = 0; i < kInFlight; ++i) {
        targets.push_back(fmt::format("/stress?id={}&delay_ms=1", next_id++));
      }
      absl::StatusOr<testing::LoadReport> report = testing::RunLoad(
          {.port = served.port(), .connections = kInFlight, .timeout = std::chrono::minutes(5)},
          targets);
      if (!report.ok()) {
        ++tally.failures;
        tally.Sample(std::string(report.status().message()));
        continue;
      }
      for (std::size_t i = 0; i < report->results.size(); ++i) {
        const testing::LoadResult& result = report->results[i];
        ++tally.responses;
        if (!result.ok()) {
          ++tally.failures;
          tally.Sample(result.error);
        } else if (result.status != 200) {
          ++tally.non_200;
          tally.Sample(fmt::format("{}: {}", result.status, result.body));
        } else if (!OnlyItsOwnTitle(result.body, first + i)) {
          ++tally.wrong_titles;
          tally.Sample(fmt::format("req-{}: {}", first + i, result.body));
        }
      }
    }
  });

  int failed_reloads = 0;
  for (int reload = 1; reload <= kReloads; ++reload) {
    const bool broken = reload % 5 == 0;
    // Every third good reload re-creates head, and with it head-state and the
    // page: the registration moves to the new head while requests use the old.
    const bool whole_graph = !broken && reload % 3 == 0;
    const char* build = broken ? "broken" : (reload % 2 == 0 ? "v1" : "v2");
    scratch.Put(kStressFixtures / build / "stress-page.so", "stress-page.so");
    absl::Status reloaded = served.topology().Reload("ssr", whole_graph ? "head" : "stress-page");
    if (broken) {
      ++failed_reloads;
      EXPECT_THAT(reloaded.message(), HasSubstr("this build of stress-page is broken"));
    } else {
      EXPECT_TRUE(reloaded.ok()) << "reload " << reload << ": " << reloaded;
    }
    ExpectRegistryMatches(served.topology(), ssr, reload);
    EXPECT_EQ(CopiesOnDisk(copy_dir), static_cast<int>(ssr.library_count() + ssr.retired_count()))
        << "after reload " << reload;
  }
  reloading = false;
  client.join();

  EXPECT_EQ(failed_reloads, kReloads / 5);
  EXPECT_GE(tally.responses, static_cast<std::uint64_t>(kInFlight));
  EXPECT_EQ(tally.wrong_titles, 0u) << ::testing::PrintToString(tally.samples);
  EXPECT_EQ(tally.non_200, 0u) << ::testing::PrintToString(tally.samples);
  EXPECT_EQ(tally.failures, 0u) << ::testing::PrintToString(tally.samples);
  // The last good build (v2, reload 99; the 100th was broken) serves.
  absl::StatusOr<testing::LoadResult> last = testing::Fetch(served.port(), "/stress?id=0");
  ASSERT_TRUE(last.ok()) << last.status();
  EXPECT_THAT(last->body, HasSubstr("v2 req-0"));
  RecordProperty("responses", static_cast<int>(tally.responses));
  std::printf("%llu responses during %d reloads\n",
              static_cast<unsigned long long>(tally.responses), kReloads);
}

}  // namespace
}  // namespace modgraph
