// sdk.h — what a module author includes to turn a .cc file into a modgraph module.
//
// A module declares its id, the modules it imports, its accessor slots and the
// modules it provides accessors for; modgraph loads it into environments, resolves
// its imports inside each environment and calls `init` once per instance.
//
//   const char* const kImports[] = {"head"};
//   void Init(modgraph::sdk::ModuleContext& context) {
//     const HeadApi& head = context.import_module<HeadApi>("head");  // this environment's head
//   }
//   MODGRAPH_MODULE(head_probe, {.id = "head-probe", .imports = kImports, .init = &Init});
//
// Accessor slots (a module-level default a provider can replace) are declared
// with modgraph/registry/slot.h.
//
// Teardown: a module whose copy may be closed after a reload or unload declares
// `.teardown`; when it returns, nothing of the module's code may run any more
// (its threads joined, its callbacks unregistered). A module with nothing to
// stop says so with `.teardown = &modgraph::sdk::nothing_to_stop`. A module
// that declares no teardown is never closed: its retired copies stay mapped for
// the life of the process (docs/loader.md, "Retirement").
//
// Module-level state that requests share on purpose is declared, with the
// reason, so that the module-state audit does not report it:
//
//   std::mutex g_mutex;
//   std::map<std::string, std::string> g_entries;
//   const modgraph_shared_state_decl kShared[] = {
//       MODGRAPH_SHARED_STATE(g_entries, "memoised results: sharing them is the point"),
//       MODGRAPH_SHARED_STATE(g_mutex, "guards g_entries")};
//   MODGRAPH_MODULE(cache, {.id = "cache", .shared_state = kShared});
//
// Build modules with modgraph_add_module() (cmake/ModgraphModule.cmake): hidden
// visibility and -fno-gnu-unique, linked only against modgraph::core.
#ifndef MODGRAPH_LOADER_SDK_H_
#define MODGRAPH_LOADER_SDK_H_

#include <boost/dll/alias.hpp>
#include <cstdint>
#include <exception>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>

#include "modgraph/loader/module_abi.h"

namespace modgraph::sdk {

// Thrown by ModuleContext when the host refused an import or a registration.
// The host has already recorded the detailed reason (which import was not
// declared, which signature differs, ...); the module's init wrapper lets that reason stand
// instead of replacing it with this exception's short message.
class HostError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A teardown for modules that start nothing: no threads, timers or callbacks
// that outlive a call into the module. Declaring it lets retired copies close.
inline void nothing_to_stop() noexcept {}

// The host's services during init, wrapped for C++.
class ModuleContext {
 public:
  explicit ModuleContext(const modgraph_init_args* args) : args_(args) {}

  std::string_view environment() const { return args_->environment; }
  std::string_view instance() const { return args_->instance; }

  // The API table of `module_id`'s instance in this environment. Throws when the
  // import was not declared or failed (the host has recorded why).
  template <class Api>
  const Api& import_module(const char* module_id) const {
    const void* api = args_->api->import_module(args_->host, module_id);
    if (api == nullptr) throw HostError(std::string("cannot import ") + module_id);
    return *static_cast<const Api*>(api);
  }
  // The earlier name of import_module, kept so that modules written against it
  // still build: `import` is a C++20 contextual keyword (clang-format prints
  // `import <HeadApi>`), hence the rename.
  template <class Api>
  [[deprecated("renamed import_module")]] const Api& import(const char* module_id) const {
    return import_module<Api>(module_id);
  }

  // The topology's setting `key` (e.g. "deployment_id"), or nullptr.
  const char* setting(const char* key) const { return args_->api->get_setting(args_->host, key); }

  // Installs `impl` on the slot `SlotType` (see slot.h) of the imported instance
  // `module_id`.
  template <class SlotType>
  void register_accessor(const char* module_id, typename SlotType::Signature* impl) const {
    if (args_->api->register_accessor(args_->host, module_id, SlotType::kName, SlotType::kSignature,
                                      reinterpret_cast<void*>(impl)) != 0) {
      throw HostError(std::string("cannot register ") + SlotType::kName + " on " + module_id);
    }
  }

 private:
  const modgraph_init_args* args_;
};

// What a module author writes (designated initialisers; everything but id optional).
struct ModuleSpec {
  const char* id = nullptr;
  std::span<const char* const> imports{};
  std::span<const modgraph_slot_decl> slots{};
  std::span<const char* const> provides_for{};
  const void* api = nullptr;
  void (*init)(ModuleContext&) = nullptr;  // throws to fail
  // Stops everything the module started; see "Teardown" above. Must not throw
  // (an exception is swallowed: it cannot cross the C ABI).
  void (*teardown)() = nullptr;
  std::span<const modgraph_shared_state_decl> shared_state{};  // MODGRAPH_SHARED_STATE
};

}  // namespace modgraph::sdk

#include "modgraph/loader/internal/sdk_glue.h"  // IWYU pragma: export

// One entry of ModuleSpec::shared_state: the module-level object `object` (an
// lvalue: a global, or a function returning a reference to a static), shared
// between requests on purpose for `reason` (a string literal).
#define MODGRAPH_SHARED_STATE(object, reason) \
  modgraph_shared_state_decl { #object, &(object), sizeof(object), reason }

// Exports one module. `symbol` must be the module id with '-' spelled '_' (the
// loader checks it): the alias is a weak ELF symbol, so deriving it from the id
// keeps two modules in one bundle from silently merging.
#define MODGRAPH_MODULE(symbol, ...)                                                              \
  namespace modgraph_module_spec_##symbol {                                                       \
    const ::modgraph::sdk::ModuleSpec kSpec = __VA_ARGS__;                                        \
    int Init(const modgraph_init_args* args) {                                                    \
      return ::modgraph::sdk_internal::run_init(kSpec, args);                                     \
    }                                                                                             \
    void Teardown() { ::modgraph::sdk_internal::run_teardown(kSpec); }                            \
    const modgraph_module_descriptor kDescriptor =                                                \
        ::modgraph::sdk_internal::make_descriptor(kSpec, &Init, &Teardown);                       \
  }                                                                                               \
  BOOST_DLL_ALIAS_SECTIONED(modgraph_module_spec_##symbol::kDescriptor, modgraph_module_##symbol, \
                            modgraph)

#endif  // MODGRAPH_LOADER_SDK_H_
