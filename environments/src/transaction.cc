// Commit and rollback of an environment transaction: staged instances are
// published and deferred registrations swapped in at once, or everything the
// transaction touched is undone, leaving live instances as they were; see
// environment.h.
#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "environment_internal.h"
#include "modgraph/environments/environment.h"

namespace modgraph {

using environments_internal::LoadCell;
using environments_internal::StoreCell;
using environments_internal::ThreadAlive;

void Environment::Commit(Transaction& tx, const std::vector<Instance*>& retiring) {
  const std::set<const Instance*> leaving(retiring.begin(), retiring.end());
  // Registrations onto instances requests already use: at once, at commit.
  for (const Transaction::Deferred& deferred : tx.deferred) {
    StoreCell(*deferred.slot, deferred.impl);
  }
  // Providers that leave put the slots they hold on staying instances back on
  // their defaults, unless a new provider just took the slot.
  struct Revoked {
    const Instance* target;
    const modgraph_slot_decl* slot;
    const Instance* provider_instance;
  };
  std::vector<Revoked> revoked;
  for (const Instance* provider : retiring) {
    for (const Instance::Registration& r : provider->registrations_) {
      if (leaving.contains(r.target) || LoadCell(*r.slot) != r.impl) continue;
      StoreCell(*r.slot, r.slot->default_impl);
      revoked.push_back({r.target, r.slot, provider});
    }
  }
  // Swap: readers see the new set from here on.
  std::vector<std::shared_ptr<Instance>> retired;
  {
    std::unique_lock publish(published_mu_);
    // One pass, not one erase per instance: unloading everything is linear.
    std::erase_if(init_order_, [&](const Instance* i) { return leaving.contains(i); });
    for (const Instance* old : retiring) {
      published_.erase(old->module_id());
      auto it = instances_.find(old->module_id());
      if (it != instances_.end() && it->second.get() == old) {
        retired.push_back(std::move(it->second));
        instances_.erase(it);
      }
    }
    for (auto& [id, instance] : tx.staged) instances_.insert_or_assign(id, std::move(instance));
    for (Instance* ready : tx.initialised) {
      init_order_.push_back(ready);
      published_.insert_or_assign(ready->module_id(), ready);
    }
    if (tx.bundle != nullptr) bundle_ = std::move(tx.bundle);
    PublishedChangedLocked();
  }
  if (listener_ != nullptr) {
    for (auto it = retiring.rbegin(); it != retiring.rend(); ++it) {
      if ((*it)->state_ == Instance::State::kReady) listener_->OnInstanceUnloading(**it);
    }
    for (const Instance* ready : tx.initialised) listener_->OnInstanceReady(*ready);
    for (const Revoked& r : revoked)
      listener_->OnAccessorRevoked(*r.target, *r.slot, *r.provider_instance);
    for (const Instance* ready : tx.initialised) {
      for (const Instance::Registration& r : ready->registrations_) {
        listener_->OnAccessorRegistered(*r.target, *r.slot, *ready);
      }
    }
  }
  // Retire: requests that started before this point may still use the old code.
  if (!retired.empty()) {
    auto entry = std::make_unique<Retired>();
    entry->instances = std::move(retired);
    entry->requests_before = SealRequestGeneration();
    retired_.push_back(std::move(entry));
  }
  tx = Transaction();
  ReleaseRetiredLocked();
}

void Environment::Rollback(Transaction& tx) {
  // Nothing was published: undo in reverse, tear down what initialised.
  for (auto it = tx.touched.rbegin(); it != tx.touched.rend(); ++it) {
    Instance& instance = **it;
    const bool initialised =
        std::find(tx.initialised.begin(), tx.initialised.end(), &instance) != tx.initialised.end();
    if (initialised && instance.descriptor().teardown != nullptr) instance.descriptor().teardown();
    // Cells of unpublished targets were written at once; deferred ones never were.
    for (const Instance::Registration& r : instance.registrations_) {
      if (!IsPublished(*r.target, tx) && LoadCell(*r.slot) == r.impl) {
        StoreCell(*r.slot, r.slot->default_impl);
      }
    }
    instance.registrations_.clear();
    instance.imports_.clear();
    instance.imports_by_id_.clear();
    instance.state_ = Instance::State::kDiscovered;
  }
  // A copy whose init left a thread running stays mapped (ReleaseRetired).
  auto entry = std::make_unique<Retired>();
  entry->published = false;
  entry->torn_down = true;
  for (auto& [id, instance] : tx.staged) {
    if (std::any_of(instance->init_threads_.begin(), instance->init_threads_.end(), ThreadAlive)) {
      entry->instances.push_back(std::move(instance));
    }
  }
  if (!entry->instances.empty()) retired_.push_back(std::move(entry));
  tx = Transaction();  // the other new copies close here
}

}  // namespace modgraph
