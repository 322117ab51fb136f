// registry.h — the instance registry: every (environment, instance, slot) and
// whether a provider registered on it.
//
// The environment layer reports each instance that becomes ready, each accessor
// a provider registers and each instance it unloads. The registry keeps:
//   - one record per instance with its slots, each either still on the
//     module-level default or registered by provider P at time T;
//   - twins: the same module id in other environments;
//   - the provider catalog: which modules declare they provide accessors for
//     which (from descriptors, and from the topology's [providers] table).
// It watches every slot with the sentinel, so run-time reports name the
// environment, module and slot, and the provider that would fix them.
//
//   for (const Finding& f : registry.Findings())
//     // f.instance = "ssr#head", f.slot = "get_ssr_head_children",
//     // f.registered_twins = {"node#head"}, f.fixing_providers = {"head-provider"}
#ifndef MODGRAPH_REGISTRY_REGISTRY_H_
#define MODGRAPH_REGISTRY_REGISTRY_H_

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "modgraph/loader/module_abi.h"
#include "modgraph/registry/policy.h"
#include "modgraph/registry/sentinel.h"

namespace modgraph {

struct SlotRecord {
  std::string slot;
  std::string signature;
  bool registered = false;
  std::string provider_instance;  // the registering instance, e.g. "node#head-provider"
  std::chrono::system_clock::time_point registered_at{};
};

// Module-level state the module declares it shares between requests on purpose
// (MODGRAPH_SHARED_STATE in its descriptor); the module-state audit skips it.
struct SharedStateRecord {
  std::string name;  // as declared, e.g. "g_entries"
  std::uint64_t size = 0;
  std::string reason;
};

struct InstanceRecord {
  std::string environment;
  std::string module;
  std::string instance;  // "env#module"
  std::string library;   // the loaded copy
  Policy policy = Policy::kWarn;
  std::vector<std::string> imports;       // instance names
  std::vector<std::string> provides_for;  // module ids
  std::vector<SlotRecord> slots;
  std::vector<SharedStateRecord> shared_state;
};

// One slot still on its module-level default.
struct Finding {
  std::string environment;
  std::string module;
  std::string instance;
  std::string slot;
  std::vector<std::string> registered_twins;  // same module, same slot, registered elsewhere
  std::vector<std::string> fixing_providers;  // modules declaring they provide for `module`
};

// A provider declaration whose target module no environment loads — a typo,
// or a leftover: the provider would never register anything.
struct DanglingProvider {
  std::string provider;     // module id
  std::string target;       // module id that no environment loads
  std::string declared_by;  // "[providers] of app.toml", "provides_for of node#x-state"
};

// An anonymous context key (Key<T> constructed without a name) in module code.
// Each module copy that constructs it gets its own key index: two modules
// sharing the declaration (a header) use two different keys when each is its
// own copy (an isolated environment) and one key inside a bundle, so dev and
// prod disagree. Modules must name their keys.
struct AnonymousKey {
  std::string environment;
  std::string type;  // the value type, demangled
  // The copies that constructed it: their instances ("ssr#fr04-reader"; a
  // bundle's copy lists each of its instances, comma-separated).
  std::vector<std::string> constructed_by;
  std::vector<std::uint32_t> indexes;  // one per construction, in registration order
};

class Registry {
 public:
  explicit Registry(Sentinel& sentinel = Sentinel::Global());
  ~Registry();  // stops watching every slot it watched
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // An instance became ready. `slots` are its descriptor's slots; their state
  // (default or not) is read from the slots themselves.
  void AddInstance(InstanceRecord record, std::span<const modgraph_slot_decl> slots);
  // `provider` (loaded from the copy `provider_library`) registered an accessor
  // on `slot` of `instance`.
  void MarkRegistered(std::string_view instance, std::string_view slot, std::string_view provider,
                      std::string_view provider_library = {});
  // The provider that registered `slot` of `instance` went away: the slot is back
  // on its module-level default.
  void MarkUnregistered(std::string_view instance, std::string_view slot);
  // The instance is being unloaded.
  void RemoveInstance(std::string_view instance);
  // Adds to the provider catalog (the topology's [providers] table).
  // `declared_by` says where the declaration came from, for reports.
  void DeclareProvider(std::string_view provider_module, std::string_view target_module,
                       std::string_view declared_by = {});

  std::vector<InstanceRecord> instances() const;
  std::optional<InstanceRecord> Find(std::string_view instance) const;
  // Modules that declare they provide accessors for `module`, sorted.
  std::vector<std::string> ProvidersFor(std::string_view module) const;
  // Every slot still on its default, with twins and fixing providers; sorted by
  // instance then slot.
  std::vector<Finding> Findings() const;
  // Provider declarations whose target module has no instance in any
  // environment; sorted by target, then provider.
  std::vector<DanglingProvider> DanglingProviders() const;
  // Anonymous keys constructed by the module copies of this registry's
  // instances (ListNamedRegistrations, context/registrations.h), grouped by
  // environment and value type; sorted.
  std::vector<AnonymousKey> AnonymousKeys() const;

 private:
  struct Entry {
    InstanceRecord record;
    std::vector<void* const*> slot_keys;  // parallel to record.slots
  };
  void RefreshFixingProviders(std::string_view module);

  Sentinel& sentinel_;
  std::map<std::string, Entry, std::less<>> entries_;
  std::map<std::string, std::set<std::string>, std::less<>> providers_;  // target → providers
  // (target, provider) → where each declaration came from
  std::map<std::pair<std::string, std::string>, std::set<std::string>> declared_by_;
};

}  // namespace modgraph

#endif  // MODGRAPH_REGISTRY_REGISTRY_H_
