// Reloading modules when their files change; see watcher.h.
#include "modgraph/environments/watcher.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <set>
#include <thread>

namespace modgraph {
namespace fs = std::filesystem;

namespace {

fs::path Canonical(const fs::path& path) {
  std::error_code ec;
  fs::path canonical = fs::weakly_canonical(path, ec);
  return ec ? path : canonical;
}

}  // namespace

struct ModuleWatcher::Thread {
  std::thread thread;
};

std::string FormatReloadReport(const ReloadReport& report) {
  std::vector<std::string> names;
  for (const std::string& file : report.changed_files) {
    names.push_back(fs::path(file).filename().string());
  }
  std::string out =
      fmt::format("modgraph: reload #{}: {} changed\n", report.round, fmt::join(names, ", "));
  if (report.outcomes.empty()) out += "  no environment loads it: nothing to reload\n";
  for (const ReloadReport::Outcome& outcome : report.outcomes) {
    if (outcome.status.ok()) {
      out += fmt::format("  {}: reloaded {} in {:.1f} ms\n", outcome.environment,
                         fmt::join(outcome.reloaded, ", "), outcome.duration.count() / 1000.0);
    } else {
      out += fmt::format("  {}: FAILED, the old copies keep serving: {}\n", outcome.environment,
                         std::string(outcome.status.message()));
    }
  }
  if (report.findings.empty()) {
    out += "  registry: every slot is registered\n";
  } else {
    out += fmt::format("  registry: {} slot(s) on their module-level default:\n",
                       report.findings.size());
    for (const Finding& finding : report.findings) {
      std::string detail;
      if (!finding.registered_twins.empty()) {
        detail += fmt::format("registered in {}", fmt::join(finding.registered_twins, ", "));
      }
      if (!finding.fixing_providers.empty()) {
        detail += fmt::format("{}fix: load {} in {}", detail.empty() ? "" : "; ",
                              fmt::join(finding.fixing_providers, " or "), finding.environment);
      }
      out += fmt::format("    {} {}{}\n", finding.instance, finding.slot,
                         detail.empty() ? "" : fmt::format(" ({})", detail));
    }
  }
  if (report.retired > 0) {
    out += fmt::format("  retired copies still mapped: {} (`modgraph show` says why)\n",
                       report.retired);
  }
  return out;
}

ReloadReport ModuleWatcher::ReloadChanged(Topology& topology, const std::vector<fs::path>& files,
                                          std::uint64_t round) {
  ReloadReport report;
  report.round = round;
  // A rebuilt file is read and checked once for every environment that has it.
  const LibraryLoader::Batch batch(topology.loader());
  for (const fs::path& file : files) {
    report.changed_files.push_back(file.string());
    const fs::path changed = Canonical(file);
    for (const auto& env : topology.environments()) {
      // The modules of `env` whose library was made from this file, one per library.
      std::vector<std::string> to_reload;
      if (env->spec().mode == EnvironmentMode::kBundled) {
        const std::vector<Instance*> instances = env->instances();
        if (Canonical(env->spec().bundle) == changed && !instances.empty()) {
          to_reload.push_back(instances.front()->module_id());
        }
      } else {
        std::set<const LoadedLibrary*> seen;
        for (const Instance* instance : env->instances()) {
          if (Canonical(instance->library().source()) == changed &&
              seen.insert(&instance->library()).second) {
            to_reload.push_back(instance->module_id());
          }
        }
      }
      for (const std::string& id : to_reload) {
        const std::vector<Instance*> before = env->instances();
        const auto start = std::chrono::steady_clock::now();
        absl::Status status = topology.Reload(env->name(), id);
        const auto duration = std::chrono::duration_cast<std::chrono::microseconds>(
            std::chrono::steady_clock::now() - start);
        ReloadReport::Outcome outcome{.environment = env->name(),
                                      .module = id,
                                      .file = file.string(),
                                      .status = std::move(status),
                                      .reloaded = {},
                                      .duration = duration};
        for (const Instance* instance : env->instances()) {
          if (std::find(before.begin(), before.end(), instance) == before.end()) {
            outcome.reloaded.push_back(instance->name());
          }
        }
        report.outcomes.push_back(std::move(outcome));
      }
    }
  }
  report.findings = topology.registry().Findings();
  for (const auto& env : topology.environments()) report.retired += env->retired_count();
  return report;
}

absl::StatusOr<std::unique_ptr<ModuleWatcher>> ModuleWatcher::Start(Topology& topology,
                                                                    Options options) {
  std::unique_ptr<ModuleWatcher> watcher(new ModuleWatcher());
  watcher->topology_ = &topology;
  watcher->options_ = std::move(options);
  std::set<fs::path> directories;
  for (const auto& env : topology.environments()) {
    for (const fs::path& root : env->spec().module_roots) directories.insert(Canonical(root));
    if (!env->spec().bundle.empty()) {
      directories.insert(Canonical(env->spec().bundle).parent_path());
    }
  }
  watcher->directories_.assign(directories.begin(), directories.end());
  watcher->inotify_fd_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (watcher->inotify_fd_ < 0) {
    return absl::ErrnoToStatus(errno, "cannot watch module roots: inotify_init1");
  }
  for (const fs::path& dir : watcher->directories_) {
    // A build writes a library in place (close after write) or renames it in.
    if (::inotify_add_watch(watcher->inotify_fd_, dir.c_str(), IN_CLOSE_WRITE | IN_MOVED_TO) < 0) {
      const int error = errno;
      return absl::ErrnoToStatus(
          error, fmt::format("cannot watch module root '{}'{}", dir.string(),
                             error == ENOSPC ? "; raise fs.inotify.max_user_watches" : ""));
    }
  }
  watcher->stop_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (watcher->stop_fd_ < 0) return absl::ErrnoToStatus(errno, "cannot watch: eventfd");
  watcher->thread_ = std::make_unique<Thread>();
  watcher->thread_->thread = std::thread([w = watcher.get()] { w->Run(); });
  return watcher;
}

ModuleWatcher::~ModuleWatcher() {
  if (thread_ != nullptr && thread_->thread.joinable()) {
    const std::uint64_t one = 1;
    [[maybe_unused]] const ssize_t written = ::write(stop_fd_, &one, sizeof one);
    thread_->thread.join();
  }
  if (inotify_fd_ >= 0) ::close(inotify_fd_);
  if (stop_fd_ >= 0) ::close(stop_fd_);
}

void ModuleWatcher::Run() {
  using Clock = std::chrono::steady_clock;
  // Watch descriptors are handed out in add order, starting at 1.
  std::map<int, fs::path> directory_of;
  for (std::size_t i = 0; i < directories_.size(); ++i) {
    directory_of[static_cast<int>(i) + 1] = directories_[i];
  }
  std::vector<fs::path> pending;
  Clock::time_point last_change{};
  Clock::time_point last_release = Clock::now();
  std::uint64_t round = 0;
  alignas(inotify_event) char buffer[16 * 1024];
  for (;;) {
    const Clock::time_point now = Clock::now();
    std::chrono::milliseconds wait = options_.release_interval;
    if (!pending.empty()) {
      wait = std::max(std::chrono::milliseconds(0),
                      std::chrono::duration_cast<std::chrono::milliseconds>(
                          last_change + options_.debounce - now));
    }
    pollfd fds[2] = {{stop_fd_, POLLIN, 0}, {inotify_fd_, POLLIN, 0}};
    const int ready = ::poll(fds, 2, static_cast<int>(wait.count()));
    if (ready < 0 && errno != EINTR) return;
    if (ready > 0 && (fds[0].revents & POLLIN) != 0) return;
    if (ready > 0 && (fds[1].revents & POLLIN) != 0) {
      for (;;) {
        const ssize_t n = ::read(inotify_fd_, buffer, sizeof buffer);
        if (n <= 0) break;
        for (char* at = buffer; at < buffer + n;) {
          const auto* event = reinterpret_cast<const inotify_event*>(at);
          at += sizeof(inotify_event) + event->len;
          if (event->len == 0) continue;
          const std::string name = event->name;
          if (!name.ends_with(".so")) continue;  // temporaries a build renames later
          auto dir = directory_of.find(event->wd);
          if (dir == directory_of.end()) continue;
          const fs::path file = dir->second / name;
          if (std::find(pending.begin(), pending.end(), file) == pending.end()) {
            pending.push_back(file);
          }
          last_change = Clock::now();
        }
      }
    }
    if (!pending.empty() && Clock::now() >= last_change + options_.debounce) {
      ReloadReport report = ReloadChanged(*topology_, pending, ++round);
      pending.clear();
      if (options_.on_reload) options_.on_reload(report);
    }
    if (Clock::now() >= last_release + options_.release_interval) {
      for (const auto& env : topology_->environments()) env->ReleaseRetired();
      last_release = Clock::now();
    }
  }
}

}  // namespace modgraph
