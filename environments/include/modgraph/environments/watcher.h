// watcher.h — reloads modules when their files change, as a dev server does.
//
// A ModuleWatcher watches every module root (and bundle directory) of a
// topology with inotify. When a library file that some environment loaded is
// written or renamed into place, it waits until the root has been quiet for the
// debounce interval (a build writes many files), then reloads that module and
// its importers in every environment that has it (Topology::Reload: a
// transaction, so a broken build leaves the old copies serving), and reports
// what happened together with the registry's findings afterwards.
//
//   auto watcher = ModuleWatcher::Start(*topology, {.on_reload = [](const ReloadReport& r) {
//     fmt::print("{}", FormatReloadReport(r));
//   }});
//   ... serve; every rebuild of a module is picked up ...
//   watcher->reset();  // stops and joins the watcher thread
//
// The callback runs on the watcher's thread, which is the only thread that
// changes the topology while the watcher runs (requests only read it, through
// Environment::Find). Serving code must find instances per request (PageHost
// does) rather than keep API pointers across reloads.
#ifndef MODGRAPH_ENVIRONMENTS_WATCHER_H_
#define MODGRAPH_ENVIRONMENTS_WATCHER_H_

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "modgraph/environments/topology.h"
#include "modgraph/registry/registry.h"

namespace modgraph {

// One reload round: the files that changed and what each environment did.
struct ReloadReport {
  struct Outcome {
    std::string environment;
    std::string module;  // the module whose file changed
    std::string file;
    absl::Status status;                    // OK, or why the old copies keep serving
    std::vector<std::string> reloaded;      // instances re-created, e.g. "ssr#head"
    std::chrono::microseconds duration{0};  // the reload transaction, start to commit
  };
  std::uint64_t round = 0;  // 1, 2, ...
  std::vector<std::string> changed_files;
  std::vector<Outcome> outcomes;
  // The registry after the round: slots still on their module-level default.
  std::vector<Finding> findings;
  // Retired copies still mapped, over every environment.
  std::size_t retired = 0;
};

// The report as `serve --watch` prints it (several lines, ending in '\n').
std::string FormatReloadReport(const ReloadReport& report);

class ModuleWatcher {
 public:
  struct Options {
    // Quiet time after the last change before a round starts.
    std::chrono::milliseconds debounce{100};
    // Called on the watcher thread after every round.
    std::function<void(const ReloadReport&)> on_reload;
    // Also called when nothing changed: how often the watcher closes retired
    // copies whose requests have ended (Environment::ReleaseRetired).
    std::chrono::milliseconds release_interval{1000};
  };

  // Starts watching `topology`'s module roots. The topology must outlive the
  // watcher. Errors: inotify unavailable or a root that cannot be watched
  // (the message names it).
  static absl::StatusOr<std::unique_ptr<ModuleWatcher>> Start(Topology& topology, Options options);
  // Stops and joins the thread; a round in progress finishes first.
  ~ModuleWatcher();
  ModuleWatcher(const ModuleWatcher&) = delete;
  ModuleWatcher& operator=(const ModuleWatcher&) = delete;

  // The directories watched.
  const std::vector<std::filesystem::path>& directories() const { return directories_; }

  // One round for `files`, on the calling thread: what the watcher's thread
  // does after a change, for hosts that learn about changes another way (and
  // for tests). Not to be run while a watcher's thread may run one.
  static ReloadReport ReloadChanged(Topology& topology,
                                    const std::vector<std::filesystem::path>& files,
                                    std::uint64_t round = 1);

 private:
  ModuleWatcher() = default;
  void Run();

  Topology* topology_ = nullptr;
  Options options_;
  std::vector<std::filesystem::path> directories_;
  int inotify_fd_ = -1;
  int stop_fd_ = -1;
  struct Thread;
  std::unique_ptr<Thread> thread_;
};

}  // namespace modgraph

#endif  // MODGRAPH_ENVIRONMENTS_WATCHER_H_
