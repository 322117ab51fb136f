// environment.h — one module graph: instances, import resolution, reload.
//
// An environment is what Vite calls a module graph: `node` and `ssr` in a dev
// server, the single bundle in production. Each environment owns its instances
// (`env#module`); `Import("head")` in `ssr` returns `ssr#head`, loading it and
// its imports on demand. Modules never link each other: imports are resolved
// here, inside the environment, never by the dynamic linker.
//
//   LibraryLoader loader;
//   auto ssr = Environment::Create({.name = "ssr", .module_roots = {dir}}, loader);
//   absl::StatusOr<Instance*> head = (*ssr)->Import("head");
//   const HeadApi* api = (*head)->api<HeadApi>();
//
// A failed import leaves nothing half-loaded: every instance it created is torn
// down and unloaded, and the environment keeps serving what it had.
#ifndef MODGRAPH_ENVIRONMENTS_ENVIRONMENT_H_
#define MODGRAPH_ENVIRONMENTS_ENVIRONMENT_H_

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "modgraph/loader/library_loader.h"
#include "modgraph/loader/module_abi.h"
#include "modgraph/registry/policy.h"

namespace modgraph {

enum class EnvironmentMode {
  kIsolated,  // every module from its own library, one private copy per environment
  kBundled,   // every module from one bundle library: one instance of each
};

std::string_view ToString(EnvironmentMode mode);

struct EnvironmentSpec {
  std::string name;
  EnvironmentMode mode = EnvironmentMode::kIsolated;
  // Where module libraries are looked up (`<root>/<id>.so`); nothing outside
  // them is loaded.
  std::vector<std::filesystem::path> module_roots;
  // Bundled mode: the one library holding every module (inside a module root).
  std::filesystem::path bundle;
  // Modules imported when the topology loads.
  std::vector<std::string> entry_modules;
  // What to do about instances whose slots nobody registered (policy.h).
  Policy policy = Policy::kWarn;
  // Settings modules may read during init (ModuleContext::setting), e.g.
  // "deployment_id", "build_id".
  std::map<std::string, std::string> settings;
};

class Environment;

// One module instance: a module loaded into one environment, with its own globals.
class Instance {
 public:
  enum class State { kDiscovered, kInitializing, kReady };

  const std::string& environment() const { return environment_; }
  const std::string& module_id() const { return module_id_; }
  // "env#module", the name used everywhere in reports.
  const std::string& name() const { return name_; }
  State state() const { return state_; }
  const modgraph_module_descriptor& descriptor() const { return *descriptor_; }
  const LoadedLibrary& library() const { return *library_; }
  // The instances this one imports, resolved in its environment.
  const std::vector<Instance*>& imports() const { return imports_; }
  // The module's API table, as the module defines it.
  template <class Api>
  const Api* api() const {
    return static_cast<const Api*>(descriptor_->api);
  }

 private:
  friend class Environment;
  friend struct HostCallbacks;
  // An accessor this instance registered on a slot of one of its imports.
  struct Registration {
    Instance* target;
    const modgraph_slot_decl* slot;
    void* impl;
  };
  std::string environment_;
  std::string module_id_;
  std::string name_;
  State state_ = State::kDiscovered;
  const modgraph_module_descriptor* descriptor_ = nullptr;
  std::shared_ptr<LoadedLibrary> library_;
  std::vector<Instance*> imports_;
  std::vector<Registration> registrations_;  // revoked when this instance goes
};

// Told about instance life-cycle events; the registry layer listens here.
class InstanceListener {
 public:
  virtual ~InstanceListener() = default;
  // `instance` finished init and is ready.
  virtual void OnInstanceReady(const Instance& instance) = 0;
  // `provider` registered `impl` on `slot` of `target` during its init.
  virtual void OnAccessorRegistered(const Instance& target, const modgraph_slot_decl& slot,
                                    const Instance& provider) = 0;
  // `provider` is going away (torn down, or its init failed): its accessor on
  // `slot` of `target` was put back to the module-level default.
  virtual void OnAccessorRevoked(const Instance& target, const modgraph_slot_decl& slot,
                                 const Instance& provider) = 0;
  // `instance` is about to be torn down and unloaded.
  virtual void OnInstanceUnloading(const Instance& instance) = 0;
};

class Environment {
 public:
  // Checks the spec (name, roots exist, bundle inside a root) and, for a bundled
  // environment, loads the bundle and discovers its modules.
  static absl::StatusOr<std::unique_ptr<Environment>> Create(EnvironmentSpec spec,
                                                             LibraryLoader& loader);
  ~Environment();
  Environment(const Environment&) = delete;
  Environment& operator=(const Environment&) = delete;

  const EnvironmentSpec& spec() const { return spec_; }
  const std::string& name() const { return spec_.name; }

  // Returns the ready instance of `module_id`, loading and initialising it and
  // its imports first. On error nothing created by this call stays loaded.
  absl::StatusOr<Instance*> Import(std::string_view module_id);
  // Imports every entry module of the spec, stopping at the first error.
  absl::Status ImportEntries();

  // The instance of `module_id` if it is ready, else null.
  Instance* Find(std::string_view module_id) const;
  // Ready instances in initialisation order (imports before importers).
  const std::vector<Instance*>& instances() const { return init_order_; }

  // Re-creates `module_id` and every instance that imports it (transitively) from
  // fresh copies, as a dev server does when a file changes. Unloaded libraries
  // are retired, not closed: their copies leave the file system at once, but
  // their code stays mapped until every request that started before the unload
  // has ended (a request's state object or a suspended coroutine may use it).
  absl::Status Reload(std::string_view module_id);
  // Tears down and unloads `module_id` and its importers (retired, as above).
  absl::Status Unload(std::string_view module_id);

  // Closes the retired libraries that no request can still use: those whose
  // requests started before the unload have all ended. Runs on every Import,
  // Reload and Unload too. Returns how many libraries were closed. Work that is
  // not a request (a detached thread using module code) is not tracked.
  std::size_t ReleaseRetired();
  std::size_t retired_count() const { return retired_.size(); }

  // Not owned; set before the first import.
  void set_listener(InstanceListener* listener) { listener_ = listener; }

 private:
  struct Transaction;
  friend struct HostCallbacks;

  Environment(EnvironmentSpec spec, LibraryLoader& loader);

  absl::Status Instantiate(std::string_view module_id, std::vector<std::string>& chain,
                           std::string_view importer, Transaction& tx);
  absl::Status Discover(std::string_view module_id, std::string_view importer, Transaction& tx);
  absl::Status AdoptLibrary(std::shared_ptr<LoadedLibrary> library, Transaction& tx);
  absl::Status RunInit(Instance& instance);
  absl::StatusOr<std::shared_ptr<LoadedLibrary>> LoadModuleLibrary(std::string_view module_id);
  absl::StatusOr<std::shared_ptr<LoadedLibrary>> LoadBundle();
  void TearDown(Instance& instance);
  // Puts back the defaults of every slot `provider` registered on: its code is
  // about to be unloaded, and nothing half-loaded may stay registered.
  void RevokeRegistrations(Instance& provider);
  void TearDownAll();
  void Rollback(Transaction& tx);
  std::vector<Instance*> WithImporters(std::string_view module_id) const;
  void Remove(const std::vector<Instance*>& doomed);
  void Retire(std::shared_ptr<LoadedLibrary> library);

  EnvironmentSpec spec_;
  LibraryLoader& loader_;
  InstanceListener* listener_ = nullptr;
  std::shared_ptr<LoadedLibrary> bundle_;
  struct Retired {
    std::shared_ptr<LoadedLibrary> library;
    std::weak_ptr<const void> requests_before;  // expires when they have all ended
  };
  std::vector<Retired> retired_;
  std::map<std::string, std::unique_ptr<Instance>, std::less<>> instances_;
  std::vector<Instance*> init_order_;
};

}  // namespace modgraph

#endif  // MODGRAPH_ENVIRONMENTS_ENVIRONMENT_H_
