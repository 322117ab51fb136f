// Retirement: replaced or unloaded instances kept mapped until requests that
// began before them have ended and their teardown has run, then closed; see
// environment.h and docs/loader.md ("Retirement").
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <system_error>
#include <vector>

#include "environment_internal.h"
#include "modgraph/environments/environment.h"

namespace modgraph {
namespace fs = std::filesystem;

Environment::Graveyard& Environment::TheGraveyard() {
  static auto* graveyard = new Graveyard();  // libraries in it may be mapped until exit
  return *graveyard;
}

namespace environments_internal {

// The process's threads, by id (sorted).
std::vector<int> ThreadIds() {
  std::vector<int> ids;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/proc/self/task", ec)) {
    ids.push_back(std::atoi(entry.path().filename().c_str()));
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

bool ThreadAlive(int tid) {
  std::error_code ec;
  return fs::exists(fs::path("/proc/self/task") / std::to_string(tid), ec);
}

}  // namespace environments_internal

using environments_internal::ThreadAlive;

std::size_t Environment::Release(std::vector<std::unique_ptr<Retired>>& list) {
  std::size_t closed = 0;
  for (const std::unique_ptr<Retired>& entry : list) {
    Retired& retired = *entry;
    if (!retired.requests_before.ended()) {
      retired.reason = "requests that started before it was retired are still running";
      continue;
    }
    if (!retired.torn_down) {
      retired.torn_down = true;
      for (auto it = retired.instances.rbegin(); it != retired.instances.rend(); ++it) {
        Instance& instance = **it;
        if (instance.state_ != Instance::State::kReady || instance.torn_down_) continue;
        instance.torn_down_ = true;
        if (instance.descriptor().teardown != nullptr) instance.descriptor().teardown();
      }
    }
    // A library closes when no instance of it holds it back.
    std::map<const LoadedLibrary*, std::pair<std::string, bool>> held;  // why, for good
    std::set<const LoadedLibrary*> libraries;
    for (const std::shared_ptr<Instance>& instance : retired.instances) {
      const LoadedLibrary* library = &instance->library();
      libraries.insert(library);
      if (retired.published && instance->state_ == Instance::State::kReady &&
          instance->descriptor().teardown == nullptr) {
        held.try_emplace(library,
                         fmt::format("module '{}' declares no teardown, so nothing says its code "
                                     "has stopped running (a thread, a timer, a callback it handed "
                                     "out); declare .teardown (modgraph::sdk::nothing_to_stop if "
                                     "it starts nothing)",
                                     instance->module_id()),
                         true);
        continue;
      }
      for (int tid : instance->init_threads_) {
        if (!ThreadAlive(tid)) continue;
        held.try_emplace(library,
                         fmt::format("thread {}, which appeared while {}'s init ran, is still "
                                     "running (its teardown must stop it)",
                                     tid, instance->name()),
                         false);
        break;
      }
    }
    std::erase_if(retired.instances, [&](const std::shared_ptr<Instance>& instance) {
      return !held.contains(&instance->library());
    });
    closed += libraries.size() - held.size();
    retired.reason = held.empty() ? "" : held.begin()->second.first;
    retired.kept_for_good = !held.empty() && held.begin()->second.second;
  }
  std::erase_if(list, [](const std::unique_ptr<Retired>& e) { return e->instances.empty(); });
  return closed;
}

std::size_t Environment::ReleaseRetiredLocked() {
  std::size_t closed = Release(retired_);
  Graveyard& graveyard = TheGraveyard();
  std::lock_guard buried(graveyard.mu);
  return closed + Release(graveyard.entries);
}

std::size_t Environment::ReleaseRetired() {
  std::lock_guard lock(mu_);
  return ReleaseRetiredLocked();
}

std::size_t Environment::retired_count() const {
  std::lock_guard lock(mu_);
  std::set<const LoadedLibrary*> libraries;
  for (const auto& entry : retired_) {
    for (const auto& instance : entry->instances) libraries.insert(&instance->library());
  }
  return libraries.size();
}

std::vector<RetiredLibrary> Environment::retired() const {
  std::lock_guard lock(mu_);
  std::vector<RetiredLibrary> out;
  std::map<const LoadedLibrary*, std::size_t> index;
  for (const auto& entry : retired_) {
    for (const auto& instance : entry->instances) {
      auto [it, fresh] = index.try_emplace(&instance->library(), out.size());
      if (fresh) {
        out.push_back({.copy = instance->library().loaded_path().string(),
                       .source = instance->library().source().string(),
                       .instances = {},
                       .reason = entry->reason.empty() ? "not released yet" : entry->reason,
                       .kept_for_good = entry->kept_for_good});
      }
      out[it->second].instances.push_back(instance->name());
    }
  }
  return out;
}

std::size_t Environment::library_count() const {
  std::lock_guard lock(mu_);
  std::set<const LoadedLibrary*> libraries;
  for (const auto& [id, instance] : instances_) libraries.insert(&instance->library());
  return libraries.size();
}

}  // namespace modgraph
