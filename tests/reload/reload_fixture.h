// What the reload suites share: a scratch module root whose files are replaced
// the way a build replaces them, and a topology served over loopback from it.
#ifndef MODGRAPH_TESTS_RELOAD_RELOAD_FIXTURE_H_
#define MODGRAPH_TESTS_RELOAD_RELOAD_FIXTURE_H_

#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "modgraph/environments/topology.h"
#include "modgraph/environments/watcher.h"
#include "modgraph/pages/page_host.h"
#include "modgraph/server/http_server.h"
#include "modgraph/server/page_routes.h"

namespace modgraph::testing {

inline const std::filesystem::path kModuleDir = MODGRAPH_TEST_MODULE_DIR;
inline const std::filesystem::path kStressFixtures = MODGRAPH_TEST_STRESS_FIXTURES;

// A fresh directory holding a module root (`root`) and the loader's copies
// (`copies`), removed at the end.
class ScratchRoot {
 public:
  ScratchRoot() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "modgraph-reload-XXXXXX").string();
    path_ = ::mkdtemp(pattern.data());
    std::filesystem::create_directory(root());
    std::filesystem::create_directory(copies());
  }
  ~ScratchRoot() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::filesystem::path root() const { return path_ / "root"; }
  std::filesystem::path copies() const { return path_ / "copies"; }
  // Puts `from` into the root as `name`: written beside it, renamed over it.
  void Put(const std::filesystem::path& from, const std::string& name) const {
    const std::filesystem::path to = root() / name;
    std::filesystem::copy_file(from, to.string() + ".tmp",
                               std::filesystem::copy_options::overwrite_existing);
    std::filesystem::rename(to.string() + ".tmp", to);
  }

 private:
  std::filesystem::path path_;
};

// Reports from a watcher's thread, handed to the test thread in order.
class ReportQueue {
 public:
  void Push(const ReloadReport& report) {
    {
      std::lock_guard lock(mu_);
      reports_.push_back(report);
    }
    ready_.notify_all();
  }
  // The next report. The bound only keeps a broken watcher from hanging the
  // suite; nothing here depends on timing.
  std::optional<ReloadReport> Next() {
    std::unique_lock lock(mu_);
    if (!ready_.wait_for(lock, std::chrono::seconds(120), [&] { return !reports_.empty(); })) {
      return std::nullopt;
    }
    ReloadReport report = std::move(reports_.front());
    reports_.pop_front();
    return report;
  }

 private:
  std::mutex mu_;
  std::condition_variable ready_;
  std::deque<ReloadReport> reports_;
};

// One environment `ssr` serving /stress from the scratch root (head, head-state
// and stress-page v1), over loopback.
class ServedStressPage {
 public:
  ServedStressPage(const ScratchRoot& scratch, Policy policy, int threads,
                   Preflight preflight = Preflight::kReloads) {
    scratch.Put(kModuleDir / "head.so", "head.so");
    scratch.Put(kModuleDir / "head-state.so", "head-state.so");
    scratch.Put(kStressFixtures / "v1" / "stress-page.so", "stress-page.so");
    TopologySpec spec{.name = "stress", .environments = {}, .origin = "test"};
    spec.environments.push_back({.name = "ssr",
                                 .module_roots = {scratch.root()},
                                 .entry_modules = {"head-state", "stress-page"},
                                 .policy = policy,
                                 .preflight = preflight});
    spec.server = {.pages_environment = "ssr", .entry_environment = "", .pages = {"stress-page"}};
    auto topology = Topology::Create(std::move(spec), {.temp_root = scratch.copies()});
    EXPECT_TRUE(topology.ok()) << topology.status();
    topology_ = *std::move(topology);
    for (const absl::Status& error : topology_->LoadEntries()) ADD_FAILURE() << error;
    auto host = pages::PageHost::Create(*topology_);
    EXPECT_TRUE(host.ok()) << host.status();
    pages_ = *std::move(host);
    auto started = server::HttpServer::Start({.threads = threads},
                                             server::MakePageRouter(*pages_, server::YieldOnce));
    EXPECT_TRUE(started.ok()) << started.status();
    server_ = *std::move(started);
  }
  ~ServedStressPage() {
    watcher_.reset();
    server_->Stop();
  }

  void Watch(ReportQueue& queue, std::chrono::milliseconds debounce) {
    auto watcher = ModuleWatcher::Start(
        *topology_,
        {.debounce = debounce, .on_reload = [&queue](const ReloadReport& r) { queue.Push(r); }});
    ASSERT_TRUE(watcher.ok()) << watcher.status();
    watcher_ = *std::move(watcher);
  }

  Topology& topology() { return *topology_; }
  Environment& ssr() { return *topology_->environment("ssr"); }
  std::uint16_t port() const { return server_->port(); }

 private:
  std::unique_ptr<Topology> topology_;
  std::unique_ptr<pages::PageHost> pages_;
  std::unique_ptr<server::HttpServer> server_;
  std::unique_ptr<ModuleWatcher> watcher_;
};

}  // namespace modgraph::testing

#endif  // MODGRAPH_TESTS_RELOAD_RELOAD_FIXTURE_H_
