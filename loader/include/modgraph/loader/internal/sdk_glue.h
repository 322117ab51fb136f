// modgraph/loader/internal/sdk_glue.h — what MODGRAPH_MODULE (sdk.h) expands
// to around a ModuleSpec: the C entry points that keep exceptions on the
// module's side of the C ABI, and the versioned descriptor the loader reads.
// Internal to the SDK; module authors use sdk.h.
//
//   int Init(const modgraph_init_args* args) { return sdk_internal::run_init(kSpec, args); }
#ifndef MODGRAPH_LOADER_INTERNAL_SDK_GLUE_H_
#define MODGRAPH_LOADER_INTERNAL_SDK_GLUE_H_

#include <cstdint>
#include <exception>

#include "modgraph/loader/module_abi.h"
#include "modgraph/loader/sdk.h"

namespace modgraph::sdk_internal {

using sdk::HostError;
using sdk::ModuleContext;
using sdk::ModuleSpec;

// Runs the spec's init, turning exceptions into a host-visible error: exceptions
// never cross the C ABI.
inline int run_init(const ModuleSpec& spec, const modgraph_init_args* args) noexcept {
  if (spec.init == nullptr) return 0;
  try {
    ModuleContext context(args);
    spec.init(context);
    return 0;
  } catch (const HostError&) {
    // The host recorded the detailed reason when it refused the call.
  } catch (const std::exception& error) {
    args->api->set_error(args->host, error.what());
  } catch (...) {
    args->api->set_error(args->host, "init threw a non-standard exception");
  }
  return 1;
}

// Runs the spec's teardown; exceptions never cross the C ABI.
inline void run_teardown(const ModuleSpec& spec) noexcept {
  try {
    spec.teardown();
  } catch (...) {
  }
}

// The descriptor's teardown is null when the spec declares none: the host then
// knows the module never said its code has stopped.
inline modgraph_module_descriptor make_descriptor(const ModuleSpec& spec,
                                                  int (*init)(const modgraph_init_args*),
                                                  void (*teardown)() = nullptr) {
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
          spec.teardown != nullptr ? teardown : nullptr,
          spec.shared_state.data(),
          static_cast<uint32_t>(spec.shared_state.size())};
}

}  // namespace modgraph::sdk_internal

#endif  // MODGRAPH_LOADER_INTERNAL_SDK_GLUE_H_
