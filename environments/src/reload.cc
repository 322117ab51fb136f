// Reload and unload: a module and its dependents re-created (or removed) in one
// transaction, committed at once or rolled back; see environment.h and
// docs/loader.md ("Reload").
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "environment_internal.h"
#include "modgraph/environments/environment.h"
#include "modgraph/loader/module_id.h"

namespace modgraph {

using environments_internal::LoadCell;
using environments_internal::StoreCell;
using environments_internal::ThreadAlive;
using environments_internal::ThreadIds;

std::vector<Instance*> Environment::WithImporters(std::string_view module_id) const {
  // Importers, transitively, and every module sharing a library with one of
  // them (they share its globals): iterate to a fixpoint, whatever the order.
  std::set<const Instance*> affected;
  std::set<const LoadedLibrary*> libraries;
  auto add = [&](const Instance& instance) {
    affected.insert(&instance);
    libraries.insert(&instance.library());
  };
  add(*instances_.find(module_id)->second);
  for (bool changed = true; changed;) {
    changed = false;
    for (const auto& [id, instance] : instances_) {
      if (affected.contains(instance.get())) continue;
      bool hit = libraries.contains(&instance->library());
      for (const Instance* imported : instance->imports()) hit = hit || affected.contains(imported);
      if (hit) {
        add(*instance);
        changed = true;
      }
    }
  }
  std::vector<Instance*> ordered;
  for (Instance* instance : init_order_) {
    if (affected.contains(instance)) ordered.push_back(instance);
  }
  for (const auto& [id, instance] : instances_) {
    if (affected.contains(instance.get()) && instance->state_ != Instance::State::kReady) {
      ordered.push_back(instance.get());
    }
  }
  return ordered;
}

void Environment::UnloadBundled(const std::vector<Instance*>& leaving) {
  // The bundle stays mapped and its modules' globals are shared by any later
  // instance of them, so their teardown cannot wait for requests: it runs now.
  const std::set<const Instance*> gone(leaving.begin(), leaving.end());
  {
    std::unique_lock publish(published_mu_);
    std::erase_if(init_order_, [&](const Instance* i) { return gone.contains(i); });
    for (const Instance* instance : leaving) published_.erase(instance->module_id());
    PublishedChangedLocked();
  }
  for (auto it = leaving.rbegin(); it != leaving.rend(); ++it) {
    Instance& instance = **it;
    if (instance.state_ != Instance::State::kReady) continue;
    for (const Instance::Registration& r : instance.registrations_) {
      if (LoadCell(*r.slot) != r.impl) continue;
      StoreCell(*r.slot, r.slot->default_impl);
      if (listener_ != nullptr && !gone.contains(r.target)) {
        listener_->OnAccessorRevoked(*r.target, *r.slot, instance);
      }
    }
    instance.registrations_.clear();
    if (listener_ != nullptr) listener_->OnInstanceUnloading(instance);
    if (instance.descriptor().teardown != nullptr) instance.descriptor().teardown();
    instance.imports_.clear();
    instance.imports_by_id_.clear();
    instance.state_ = Instance::State::kDiscovered;
  }
}

absl::Status Environment::Unload(std::string_view module_id) {
  const std::string where = fmt::format("unload from environment '{}'", name());
  if (absl::Status valid = ValidateModuleId(module_id, where); !valid.ok()) return valid;
  std::lock_guard lock(mu_);
  ReleaseRetiredLocked();
  if (FindLocked(module_id) == nullptr) {
    return absl::NotFoundError(
        fmt::format("environment '{}' has no instance of '{}' to unload", name(), module_id));
  }
  const std::vector<Instance*> leaving = WithImporters(module_id);
  if (spec_.mode == EnvironmentMode::kBundled) {
    UnloadBundled(leaving);
    return absl::OkStatus();
  }
  Transaction tx;
  tx.preflight = spec_.preflight == Preflight::kAlways;
  for (const Instance* instance : leaving) tx.replacing.insert(instance->module_id());
  if (absl::Status status = ApplyAuto(tx); !status.ok()) {
    Rollback(tx);
    return absl::Status(status.code(),
                        fmt::format("unload of {}#{} failed, nothing was unloaded: {}", name(),
                                    module_id, std::string(status.message())));
  }
  Commit(tx, leaving);
  return absl::OkStatus();
}

absl::Status Environment::Reload(std::string_view module_id) {
  const std::string where = fmt::format("reload in environment '{}'", name());
  if (absl::Status valid = ValidateModuleId(module_id, where); !valid.ok()) return valid;
  std::lock_guard lock(mu_);
  ReleaseRetiredLocked();
  const Instance* current = FindLocked(module_id);
  if (current == nullptr) {
    return absl::NotFoundError(fmt::format(
        "environment '{}' has no instance of '{}' to reload; import it first", name(), module_id));
  }
  const std::string file = current->library().source().string();
  Transaction tx;
  tx.preflight = spec_.preflight != Preflight::kOff;
  std::vector<Instance*> retiring;
  absl::Status status;
  if (spec_.mode == EnvironmentMode::kBundled) {
    // One library holds every module: a fresh copy re-creates them all.
    retiring = init_order_;
    for (const auto& [id, instance] : instances_) {
      if (instance->state_ != Instance::State::kReady) retiring.push_back(instance.get());
    }
    for (const Instance* instance : retiring) tx.replacing.insert(instance->module_id());
    absl::StatusOr<std::shared_ptr<LoadedLibrary>> bundle = LoadBundle(tx.preflight);
    status = bundle.status();
    if (status.ok()) status = AdoptLibrary(*bundle, tx);
    if (status.ok()) tx.bundle = *std::move(bundle);
  } else {
    retiring = WithImporters(module_id);
    for (const Instance* instance : retiring) tx.replacing.insert(instance->module_id());
    // Each affected library again from its own file, so modules that shared a
    // library share the new copy too.
    std::set<const LoadedLibrary*> reloaded;
    for (const Instance* instance : retiring) {
      if (!status.ok() || !reloaded.insert(&instance->library()).second) continue;
      absl::StatusOr<std::shared_ptr<LoadedLibrary>> library =
          LoadAgain(instance->library(), instance->module_id(), tx.preflight);
      status = library.status();
      if (status.ok()) status = AdoptLibrary(*library, tx);
    }
  }
  for (const Instance* instance : retiring) {
    if (!status.ok()) break;
    if (instance->state_ != Instance::State::kReady) continue;
    std::vector<std::string> chain;
    status = Instantiate(instance->module_id(), chain, "", tx);
  }
  if (status.ok()) status = ApplyAuto(tx);
  if (!status.ok()) {
    Rollback(tx);
    return absl::Status(status.code(),
                        fmt::format("reload of {}#{} ('{}') failed; its old instances keep "
                                    "serving: {}",
                                    name(), module_id, file, std::string(status.message())));
  }
  Commit(tx, retiring);
  return absl::OkStatus();
}

}  // namespace modgraph
