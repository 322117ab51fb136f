// sdk.h — what a module author includes to turn a .cc file into a modgraph module.
//
// A module declares its id, the modules it imports, its accessor slots and the
// modules it provides accessors for; modgraph loads it into environments, resolves
// its imports inside each environment and calls `init` once per instance.
//
//   // head.h (shared with importers): the slot's type and the API table.
//   MODGRAPH_DEFINE_SLOT(GetSsrHeadChildren, "get_ssr_head_children",
//                        std::vector<std::string>*());
//
//   // head.cc
//   std::vector<std::string> g_children;                   // module-level state
//   std::vector<std::string>* DefaultChildren() { return &g_children; }
//   modgraph::sdk::Slot<GetSsrHeadChildren> g_get_children{&DefaultChildren};
//   const modgraph_slot_decl kSlots[] = {g_get_children.decl()};
//   MODGRAPH_MODULE(head, {.id = "head", .slots = kSlots, .api = &kHeadApi});
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

// Declares a slot type shared by the module that owns the slot and the providers
// that register on it: a name, a C++ signature and its spelling (checked by the
// host when a provider registers).
#define MODGRAPH_DEFINE_SLOT(Type, name_literal, ...)       \
  struct Type {                                             \
    using Signature = __VA_ARGS__;                          \
    static constexpr const char* kName = name_literal;      \
    static constexpr const char* kSignature = #__VA_ARGS__; \
  }

// One instance's accessor slot. Calling it is a load plus an indirect call; the
// host rewrites `impl_` when a provider registers on this instance.
template <class SlotType, class Sig = typename SlotType::Signature>
class Slot;

template <class SlotType, class R, class... Args>
class Slot<SlotType, R(Args...)> {
 public:
  using Fn = R (*)(Args...);

  explicit Slot(Fn default_impl) : default_(default_impl), impl_(to_void(default_impl)) {}
  Slot(const Slot&) = delete;
  Slot& operator=(const Slot&) = delete;

  R operator()(Args... args) const {
    return reinterpret_cast<Fn>(impl_)(static_cast<Args&&>(args)...);
  }
  // True while no provider has registered on this instance.
  bool is_default() const { return impl_ == to_void(default_); }

  modgraph_slot_decl decl() {
    return {SlotType::kName, SlotType::kSignature, to_void(default_), &impl_};
  }

 private:
  static void* to_void(Fn fn) { return reinterpret_cast<void*>(fn); }
  Fn default_;
  void* impl_;
};

// The host's services during init, wrapped for C++.
class ModuleContext {
 public:
  explicit ModuleContext(const modgraph_init_args* args) : args_(args) {}

  std::string_view environment() const { return args_->environment; }
  std::string_view instance() const { return args_->instance; }

  // The API table of `module_id`'s instance in this environment. Throws when the
  // import was not declared or failed (the host has recorded why).
  template <class Api>
  const Api& import(const char* module_id) const {
    const void* api = args_->api->import_module(args_->host, module_id);
    if (api == nullptr) throw std::runtime_error(std::string("cannot import ") + module_id);
    return *static_cast<const Api*>(api);
  }

  // Installs `impl` on the slot `SlotType` of the imported instance `module_id`.
  template <class SlotType>
  void register_accessor(const char* module_id, typename SlotType::Signature* impl) const {
    if (args_->api->register_accessor(args_->host, module_id, SlotType::kName, SlotType::kSignature,
                                      reinterpret_cast<void*>(impl)) != 0) {
      throw std::runtime_error(std::string("cannot register ") + SlotType::kName + " on " +
                               module_id);
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
  void (*teardown)() = nullptr;
};

// Runs the spec's init, turning exceptions into a host-visible error: exceptions
// never cross the C ABI.
inline int run_init(const ModuleSpec& spec, const modgraph_init_args* args) noexcept {
  if (spec.init == nullptr) return 0;
  try {
    ModuleContext context(args);
    spec.init(context);
    return 0;
  } catch (const std::exception& error) {
    args->api->set_error(args->host, error.what());
  } catch (...) {
    args->api->set_error(args->host, "init threw a non-standard exception");
  }
  return 1;
}

inline modgraph_module_descriptor make_descriptor(const ModuleSpec& spec,
                                                  int (*init)(const modgraph_init_args*)) {
  return {MODGRAPH_ABI_VERSION,
          sizeof(modgraph_module_descriptor),
          spec.id,
          spec.imports.data(),
          static_cast<uint32_t>(spec.imports.size()),
          spec.slots.data(),
          static_cast<uint32_t>(spec.slots.size()),
          spec.provides_for.data(),
          static_cast<uint32_t>(spec.provides_for.size()),
          spec.api,
          init,
          spec.teardown};
}

}  // namespace modgraph::sdk

// Exports one module. `symbol` must be the module id with '-' spelled '_' (the
// loader checks it): the alias is a weak ELF symbol, so deriving it from the id
// keeps two modules in one bundle from silently merging.
#define MODGRAPH_MODULE(symbol, ...)                                                               \
  namespace modgraph_module_spec_##symbol {                                                        \
    const ::modgraph::sdk::ModuleSpec kSpec = __VA_ARGS__;                                         \
    int Init(const modgraph_init_args* args) { return ::modgraph::sdk::run_init(kSpec, args); }    \
    const modgraph_module_descriptor kDescriptor = ::modgraph::sdk::make_descriptor(kSpec, &Init); \
  }                                                                                                \
  BOOST_DLL_ALIAS_SECTIONED(modgraph_module_spec_##symbol::kDescriptor, modgraph_module_##symbol,  \
                            modgraph)

#endif  // MODGRAPH_LOADER_SDK_H_
