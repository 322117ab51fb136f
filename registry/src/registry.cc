// The instance registry; see registry.h.
#include "modgraph/registry/registry.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <atomic>
#include <string_view>
#include <unordered_map>

#include "modgraph/context/registrations.h"

namespace modgraph {

Registry::Registry(Sentinel& sentinel) : sentinel_(sentinel) {}

Registry::~Registry() {
  for (const auto& [name, entry] : entries_) {
    for (void* const* key : entry.slot_keys) sentinel_.Unwatch(key);
    sentinel_.UnwatchInstance(entry.record.library, name);
  }
}

void Registry::AddInstance(InstanceRecord record, std::span<const modgraph_slot_decl> slots) {
  RemoveInstance(record.instance);  // a reload replaces the old record
  Entry entry;
  for (const modgraph_slot_decl& slot : slots) {
    record.slots.push_back(
        {.slot = slot.name,
         .signature = slot.signature,
         .registered = std::atomic_ref<void*>(*slot.active_impl).load(std::memory_order_acquire) !=
                       slot.default_impl});
    entry.slot_keys.push_back(slot.active_impl);
    sentinel_.Watch(slot.active_impl, {.environment = record.environment,
                                       .module = record.module,
                                       .instance = record.instance,
                                       .slot = slot.name,
                                       .policy = record.policy,
                                       .fixing_providers = ProvidersFor(record.module)});
  }
  sentinel_.WatchInstance(record.library, {.environment = record.environment,
                                           .module = record.module,
                                           .instance = record.instance,
                                           .policy = record.policy});
  std::vector<std::string> targets = record.provides_for;
  const std::string provider = record.module;
  entry.record = std::move(record);
  entries_.insert_or_assign(entry.record.instance, std::move(entry));
  const std::string declared_by = fmt::format("provides_for of {}", entry.record.instance);
  for (const std::string& target : targets) DeclareProvider(provider, target, declared_by);
}

void Registry::MarkRegistered(std::string_view instance, std::string_view slot,
                              std::string_view provider, std::string_view provider_library) {
  auto it = entries_.find(instance);
  if (it == entries_.end()) return;
  const InstanceRecord& target = it->second.record;
  for (SlotRecord& record : it->second.record.slots) {
    if (record.slot != slot) continue;
    record.registered = true;
    record.provider_instance = std::string(provider);
    record.registered_at = std::chrono::system_clock::now();
    sentinel_.UnwatchRegistration(target.library, instance, slot);
    sentinel_.WatchRegistration(std::string(provider_library), std::string(provider),
                                target.library,
                                {.environment = target.environment,
                                 .module = target.module,
                                 .instance = target.instance,
                                 .slot = record.slot,
                                 .policy = target.policy,
                                 .fixing_providers = ProvidersFor(target.module)});
  }
}

void Registry::MarkUnregistered(std::string_view instance, std::string_view slot) {
  auto it = entries_.find(instance);
  if (it == entries_.end()) return;
  for (SlotRecord& record : it->second.record.slots) {
    if (record.slot != slot) continue;
    record = SlotRecord{.slot = record.slot, .signature = record.signature};
  }
  sentinel_.UnwatchRegistration(it->second.record.library, instance, slot);
}

void Registry::RemoveInstance(std::string_view instance) {
  auto it = entries_.find(instance);
  if (it == entries_.end()) return;
  for (void* const* key : it->second.slot_keys) sentinel_.Unwatch(key);
  sentinel_.UnwatchInstance(it->second.record.library, instance);
  entries_.erase(it);
}

void Registry::DeclareProvider(std::string_view provider_module, std::string_view target_module,
                               std::string_view declared_by) {
  if (!declared_by.empty()) {
    declared_by_[{std::string(target_module), std::string(provider_module)}].emplace(declared_by);
  }
  auto [it, inserted] = providers_[std::string(target_module)].insert(std::string(provider_module));
  if (inserted) RefreshFixingProviders(target_module);
}

void Registry::RefreshFixingProviders(std::string_view module) {
  const std::vector<std::string> providers = ProvidersFor(module);
  for (const auto& [name, entry] : entries_) {
    if (entry.record.module != module) continue;
    for (void* const* key : entry.slot_keys) sentinel_.SetFixingProviders(key, providers);
  }
}

std::vector<InstanceRecord> Registry::instances() const {
  std::vector<InstanceRecord> out;
  for (const auto& [name, entry] : entries_) out.push_back(entry.record);
  return out;
}

std::optional<InstanceRecord> Registry::Find(std::string_view instance) const {
  auto it = entries_.find(instance);
  if (it == entries_.end()) return std::nullopt;
  return it->second.record;
}

std::vector<std::string> Registry::ProvidersFor(std::string_view module) const {
  auto it = providers_.find(module);
  if (it == providers_.end()) return {};
  return {it->second.begin(), it->second.end()};
}

std::vector<DanglingProvider> Registry::DanglingProviders() const {
  std::set<std::string_view> loaded;
  for (const auto& [name, entry] : entries_) loaded.insert(entry.record.module);
  std::vector<DanglingProvider> dangling;
  for (const auto& [target, providers] : providers_) {
    if (loaded.contains(target)) continue;
    for (const std::string& provider : providers) {
      auto sources = declared_by_.find({target, provider});
      dangling.push_back(
          {.provider = provider,
           .target = target,
           .declared_by = sources == declared_by_.end()
                              ? std::string("a provider declaration")
                              : fmt::format("{}", fmt::join(sources->second, ", "))});
    }
  }
  return dangling;
}

std::vector<AnonymousKey> Registry::AnonymousKeys() const {
  // Copies by their loaded path: environment and instances.
  std::map<std::string, std::pair<std::string, std::vector<std::string>>, std::less<>> copies;
  for (const auto& [name, entry] : entries_) {
    auto& copy = copies[entry.record.library];
    copy.first = entry.record.environment;
    copy.second.push_back(entry.record.instance);
  }
  std::map<std::pair<std::string, std::string>, AnonymousKey> keys;  // (environment, type)
  for (const NamedRegistration& r : ListNamedRegistrations()) {
    if (r.registry != "key" || !r.name.empty() || r.refused || !r.live) continue;
    auto copy = copies.find(r.object);
    if (copy == copies.end()) continue;  // host code, or another topology's copy
    const std::string& environment = copy->second.first;
    AnonymousKey& key = keys[{environment, r.type}];
    key.environment = environment;
    key.type = r.type;
    const std::string by = fmt::format("{}", fmt::join(copy->second.second, ", "));
    if (std::find(key.constructed_by.begin(), key.constructed_by.end(), by) ==
        key.constructed_by.end()) {
      key.constructed_by.push_back(by);
    }
    if (std::find(key.indexes.begin(), key.indexes.end(), r.index) == key.indexes.end()) {
      key.indexes.push_back(r.index);
    }
  }
  std::vector<AnonymousKey> out;
  for (auto& [where, key] : keys) {
    std::sort(key.constructed_by.begin(), key.constructed_by.end());
    out.push_back(std::move(key));
  }
  return out;
}

std::vector<Finding> Registry::Findings() const {
  // Twins are instances of the same module: index by module once, so each
  // finding looks only at its own module's instances (linear overall).
  std::unordered_map<std::string_view, std::vector<const Entry*>> by_module;
  for (const auto& [name, entry] : entries_) by_module[entry.record.module].push_back(&entry);
  std::vector<Finding> findings;
  for (const auto& [name, entry] : entries_) {
    const InstanceRecord& record = entry.record;
    for (const SlotRecord& slot : record.slots) {
      if (slot.registered) continue;
      Finding finding{.environment = record.environment,
                      .module = record.module,
                      .instance = record.instance,
                      .slot = slot.slot,
                      .registered_twins = {},
                      .fixing_providers = ProvidersFor(record.module)};
      for (const Entry* other : by_module[record.module]) {
        if (other == &entry) continue;
        const bool registered =
            std::any_of(other->record.slots.begin(), other->record.slots.end(),
                        [&](const SlotRecord& s) { return s.slot == slot.slot && s.registered; });
        if (registered) finding.registered_twins.push_back(other->record.instance);
      }
      findings.push_back(std::move(finding));
    }
  }
  return findings;
}

}  // namespace modgraph
