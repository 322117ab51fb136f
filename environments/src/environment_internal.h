// environments/src/environment_internal.h — what environment.cc, reload.cc,
// retirement.cc and host_callbacks.cc share: the host handle a module sees
// during init, a transaction's staged changes, retired instances and the
// process-wide graveyard, slot cells and thread helpers. Internal to
// environments/.
//
//   Environment::Transaction tx;  // staged, then Commit(tx, retiring) or Rollback(tx)
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "modgraph/context/request_context.h"
#include "modgraph/environments/environment.h"
#include "modgraph/loader/module_abi.h"

// The host handle a module sees during init: which environment, instance and
// transaction, and why the host refused a call (the first reason wins).
struct modgraph_host {
  modgraph::Environment* environment;
  modgraph::Instance* instance;
  void* transaction;         // Environment::Transaction
  std::string error;         // the host's first refusal (an import, a registration)
  std::string module_error;  // the first message the module gave with set_error
};

namespace modgraph {

// What one Import, Reload, Unload or ApplyPolicy changes, kept beside the live
// instances until it commits (or is rolled back, leaving them untouched).
struct Environment::Transaction {
  // Live ids being re-created (reload) or removed (unload): lookups inside the
  // transaction never resolve to their old instances.
  std::set<std::string, std::less<>> replacing;
  // New instances, discovered or initialised, by id.
  std::map<std::string, std::shared_ptr<Instance>, std::less<>> staged;
  // Every instance whose init ran here (staged, or live but only discovered),
  // in order, and those that finished it.
  std::vector<Instance*> touched;
  std::vector<Instance*> initialised;
  // Registrations on published instances: written at commit, all at once.
  struct Deferred {
    const modgraph_slot_decl* slot;
    void* impl;
  };
  std::vector<Deferred> deferred;
  bool preflight = false;
  std::shared_ptr<LoadedLibrary> bundle;  // a bundled reload's new copy
};

// One commit's replaced or unloaded instances, kept until they may close.
struct Environment::Retired {
  std::vector<std::shared_ptr<Instance>> instances;  // init order, then discovered
  RequestGenerationWatch requests_before;            // ends when they have all ended
  bool published = true;                             // false: a rolled-back transaction's
  bool torn_down = false;
  std::string reason;  // why something of it is still mapped
  bool kept_for_good = false;
};

struct Environment::Graveyard {
  std::mutex mu;
  std::vector<std::unique_ptr<Retired>> entries;
};

namespace environments_internal {

// Slot cells are read by requests while the host writes them (slot.h).
inline void* LoadCell(const modgraph_slot_decl& slot) {
  return std::atomic_ref<void*>(*slot.active_impl).load(std::memory_order_acquire);
}
inline void StoreCell(const modgraph_slot_decl& slot, void* impl) {
  std::atomic_ref<void*>(*slot.active_impl).store(impl, std::memory_order_release);
}

// The process's threads, by id (sorted).
std::vector<int> ThreadIds();
bool ThreadAlive(int tid);

// The callbacks modules reach the host through (host_callbacks.cc).
const modgraph_host_api& HostApi();

}  // namespace environments_internal
}  // namespace modgraph
