// The C callbacks a module calls during init (modgraph_host_api,
// module_abi.h): import, register an accessor, report an error, read a
// setting. Each forwards to the environment being changed; see environment.h.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "environment_internal.h"
#include "modgraph/environments/environment.h"

namespace modgraph {

using environments_internal::StoreCell;

// C callbacks handed to modules; each forwards to the environment being changed.
struct HostCallbacks {
  static Environment::Transaction& Tx(modgraph_host* host) {
    return *static_cast<Environment::Transaction*>(host->transaction);
  }
  // The first refusal is the detailed one; later ones are consequences.
  static void Refuse(modgraph_host* host, std::string message) {
    if (host->error.empty()) host->error = std::move(message);
  }

  static const void* ImportModule(modgraph_host* host, const char* module_id) {
    const Instance& self = *host->instance;
    if (!self.imports_by_id_.contains(module_id)) {
      Refuse(host, fmt::format("{} imported '{}' without declaring it; add it to the module's "
                               ".imports",
                               self.name(), module_id));
      return nullptr;
    }
    const Instance* target = host->environment->Resolve(module_id, &Tx(host));
    if (target == nullptr || target->state_ != Instance::State::kReady) {
      Refuse(host, fmt::format("{} imported '{}', which is not ready in environment '{}'",
                               self.name(), module_id, host->environment->name()));
      return nullptr;
    }
    return target->descriptor().api;
  }

  static int RegisterAccessor(modgraph_host* host, const char* module_id, const char* slot_name,
                              const char* signature, void* impl) {
    Instance& self = *host->instance;
    Environment& env = *host->environment;
    Environment::Transaction& tx = Tx(host);
    auto import = self.imports_by_id_.find(module_id);
    Instance* target = import == self.imports_by_id_.end() ? nullptr : import->second;
    if (target == nullptr) {
      Refuse(host, fmt::format("{} registered an accessor on '{}', which it does not import; add "
                               "'{}' to its .imports",
                               self.name(), module_id, module_id));
      return 1;
    }
    const modgraph_module_descriptor& d = target->descriptor();
    const modgraph_slot_decl* slot = std::find_if(d.slots, d.slots + d.slot_count, [&](auto& s) {
      return std::string_view(s.name) == slot_name;
    });
    if (slot == d.slots + d.slot_count) {
      std::vector<std::string_view> names;
      for (uint32_t i = 0; i < d.slot_count; ++i) names.emplace_back(d.slots[i].name);
      Refuse(host, fmt::format("{} has no slot '{}' (registered by {}); it declares: {}; check the "
                               "slot's name against {}'s header",
                               target->name(), slot_name, self.name(),
                               names.empty() ? "none" : fmt::format("{}", fmt::join(names, ", ")),
                               target->module_id()));
      return 1;
    }
    if (std::string_view(slot->signature) != signature) {
      Refuse(host,
             fmt::format("{} registered slot '{}' of {} as '{}' but the slot is declared '{}'; "
                         "rebuild both against the same module header",
                         self.name(), slot_name, target->name(), signature, slot->signature));
      return 1;
    }
    if (const Instance* holder = env.RegisteredBy(*target, *slot, tx)) {
      Refuse(host,
             fmt::format("Double registration: slot '{}' of {} is already registered by {}, and {} "
                         "registered it too; one slot takes one provider, so remove one of them "
                         "from the environment",
                         slot_name, target->name(), holder->name(), self.name()));
      return 1;
    }
    self.registrations_.push_back({target, slot, impl});
    if (env.IsPublished(*target, tx)) {
      tx.deferred.push_back({slot, impl});  // requests use it: swap at commit
    } else {
      StoreCell(*slot, impl);
    }
    return 0;
  }

  static void SetError(modgraph_host* host, const char* message) {
    if (host->module_error.empty() && message != nullptr) host->module_error = message;
  }

  static const char* GetSetting(modgraph_host* host, const char* key) {
    const auto& settings = host->environment->spec().settings;
    auto it = settings.find(key);
    return it == settings.end() ? nullptr : it->second.c_str();
  }
};

namespace environments_internal {

const modgraph_host_api& HostApi() {
  static const modgraph_host_api api{MODGRAPH_ABI_VERSION, &HostCallbacks::ImportModule,
                                     &HostCallbacks::RegisterAccessor, &HostCallbacks::SetError,
                                     &HostCallbacks::GetSetting};
  return api;
}

}  // namespace environments_internal
}  // namespace modgraph
