// module_abi.h — the C ABI between modgraph and a module library.
//
// A module library exports one descriptor per module it contains, each behind a
// Boost.DLL alias named `modgraph_module_<id with '-' as '_'>` placed in the ELF
// section "modgraph". The loader lists that section (boost::dll::library_info),
// reads each descriptor and checks `abi_version` before touching anything else.
// Every layout change to the structs below bumps MODGRAPH_ABI_VERSION, except
// fields appended to modgraph_module_descriptor: a module built before they
// existed has a smaller descriptor_size, and the host reads such a field only
// when descriptor_size covers it (MODGRAPH_DESCRIPTOR_HAS).
//
// Module authors do not fill these structs by hand: `modgraph/loader/sdk.h`
// builds them from a C++ spec (MODGRAPH_MODULE).
#ifndef MODGRAPH_LOADER_MODULE_ABI_H_
#define MODGRAPH_LOADER_MODULE_ABI_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MODGRAPH_ABI_VERSION 1u
// ELF section holding the descriptor aliases (at most 8 bytes: a Boost.DLL limit).
#define MODGRAPH_DESCRIPTOR_SECTION "modgraph"
#define MODGRAPH_ALIAS_PREFIX "modgraph_module_"

// An accessor slot: a function pointer owned by one module instance. The module
// calls through `*active_impl`; it starts as `default_impl` (the module-level
// default) and a provider may replace it with a context-backed implementation.
typedef struct modgraph_slot_decl {
  const char* name;       // e.g. "get_ssr_head_children"
  const char* signature;  // e.g. "std::vector<std::string>*()"; must match on registration
  void* default_impl;     // module-level default accessor
  void** active_impl;     // this instance's current accessor (a global in this copy)
} modgraph_slot_decl;

// Module-level state the module shares between requests on purpose (a cache, a
// counter): the module-state audit does not report requests writing it, and
// `modgraph doctor` lists it with the reason. Everything else in the module's
// writable segments that two requests write is reported.
typedef struct modgraph_shared_state_decl {
  const char* name;     // e.g. "g_entries"
  const void* address;  // the object, in this copy of the module
  uint64_t size;        // its size in bytes
  const char* reason;   // why sharing it between requests is safe
} modgraph_shared_state_decl;

// Opaque handle to the host's view of the instance being initialised.
typedef struct modgraph_host modgraph_host;

// Services the host offers a module during init. Return codes: 0 = ok.
typedef struct modgraph_host_api {
  uint32_t abi_version;
  // API table of the instance of `module_id` in the caller's environment. Only
  // declared imports resolve; anything else returns NULL and records an error.
  const void* (*import_module)(modgraph_host* host, const char* module_id);
  // Installs `impl` on slot `slot` of the imported instance `module_id`.
  int (*register_accessor)(modgraph_host* host, const char* module_id, const char* slot,
                           const char* signature, void* impl);
  // Records why init failed; the host includes it in the error it reports.
  void (*set_error)(modgraph_host* host, const char* message);
  // A topology setting for this environment ("deployment_id", "build_id", ...),
  // or NULL; valid until init returns.
  const char* (*get_setting)(modgraph_host* host, const char* key);
} modgraph_host_api;

typedef struct modgraph_init_args {
  modgraph_host* host;
  const modgraph_host_api* api;
  const char* environment;  // e.g. "ssr"
  const char* instance;     // e.g. "ssr#head"
} modgraph_init_args;

typedef struct modgraph_module_descriptor {
  uint32_t abi_version;      // MODGRAPH_ABI_VERSION the module was built against
  uint32_t descriptor_size;  // sizeof(modgraph_module_descriptor) at build time
  const char* id;            // module id, e.g. "head-provider"
  const char* const* imports;
  uint32_t import_count;
  const modgraph_slot_decl* slots;
  uint32_t slot_count;
  const char* const* provides_for;  // modules this one registers accessors on
  uint32_t provides_count;
  const void* api;  // module-defined API table handed to importers (may be NULL)
  // 0 on success; otherwise the module called set_error first.
  int (*init)(const modgraph_init_args* args);
  void (*teardown)(void);
  // Appended (see above): state shared between requests on purpose.
  const modgraph_shared_state_decl* shared_state;
  uint32_t shared_state_count;
} modgraph_module_descriptor;

// The descriptor size of modules built before any field was appended.
#define MODGRAPH_DESCRIPTOR_MIN_SIZE offsetof(modgraph_module_descriptor, shared_state)
// True when the module was built with `field` (an appended field) in its
// descriptor; read such a field only then.
#define MODGRAPH_DESCRIPTOR_HAS(descriptor, field) \
  ((descriptor)->descriptor_size >=                \
   offsetof(modgraph_module_descriptor, field) + sizeof((descriptor)->field))

#ifdef __cplusplus
}  // extern "C"
#endif

#endif  // MODGRAPH_LOADER_MODULE_ABI_H_
