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

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
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

// When a library's static initialisers are first run in a short-lived child
// process (preflight.h) before they run in this one: a module whose namespace-
// scope initialiser throws or aborts then fails to load with a named error
// instead of ending the host. Costs one process start and one dlopen per
// library file not yet loaded by this process (a few milliseconds;
// docs/benchmarks.md).
enum class Preflight {
  kOff,      // never: the initialisers run in-process only
  kReloads,  // for every library a Reload loads that changed on disk
  kAlways,   // (default) for every library file loaded for the first time
};

std::string_view ToString(Preflight preflight);

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
  Preflight preflight = Preflight::kAlways;
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
  // The SHA-256 (hex) of the library file this instance's copy was made from:
  // which build it runs (code_identity.h); empty if the copy could not be read.
  const std::string& code_identity() const { return code_identity_; }
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
  std::string code_identity_;
  std::vector<Instance*> imports_;
  // The same imports by module id (keys point into the descriptor): the host
  // callbacks check "is this an import?" in constant time, however many a
  // module declares.
  std::unordered_map<std::string_view, Instance*> imports_by_id_;
  std::vector<Registration> registrations_;  // revoked when this instance goes
  std::vector<int> init_threads_;            // threads that appeared while its init ran
  bool torn_down_ = false;
};

// A library whose instances were replaced or unloaded but which is still
// mapped, and why (see Environment::Reload, "Retirement").
struct RetiredLibrary {
  std::string copy;                    // the private copy (on disk while mapped)
  std::string source;                  // the module file it was made from
  std::vector<std::string> instances;  // "ssr#head", ...
  std::string reason;                  // why it is not closed yet
  bool kept_for_good = false;          // it will never be closed (no teardown, ...)
};

// Told about instance life-cycle events; the registry layer listens here.
// Events of one Import, Reload or Unload arrive together when it commits:
// the replaced instances' unloading first, then the new instances' readiness,
// then the accessors revoked and registered.
class InstanceListener {
 public:
  virtual ~InstanceListener() = default;
  // `instance` finished init and is ready.
  virtual void OnInstanceReady(const Instance& instance) = 0;
  // `provider` registered `impl` on `slot` of `target` during its init.
  virtual void OnAccessorRegistered(const Instance& target, const modgraph_slot_decl& slot,
                                    const Instance& provider) = 0;
  // `provider` is going away (unloaded or replaced): its accessor on `slot` of
  // `target` was put back to the module-level default.
  virtual void OnAccessorRevoked(const Instance& target, const modgraph_slot_decl& slot,
                                 const Instance& provider) = 0;
  // `instance` leaves its environment (unloaded, or replaced by a reload).
  virtual void OnInstanceUnloading(const Instance& instance) = 0;
};

// Which modules provide accessors for a module, beyond what the loaded
// descriptors of one environment declare (the topology's whole catalog).
class ProviderCatalog {
 public:
  virtual ~ProviderCatalog() = default;
  virtual std::vector<std::string> ProvidersFor(std::string_view module_id) const = 0;
};

// Thread-safety: every member may be called from any thread. Import, Reload,
// Unload, ApplyPolicy and ReleaseRetired are serialised; Find and instances()
// may run concurrently with them (a request thread finding its page while a
// watcher reloads). An Instance* stays valid while the instance is live and,
// after it was replaced or unloaded, while any request that started before
// that is alive (its library is retired, not closed).
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
  // its imports first (and, under auto, every provider of every module it
  // brings in). A transaction: on error nothing created by this call stays
  // loaded or registered.
  absl::StatusOr<Instance*> Import(std::string_view module_id);
  // Imports every entry module of the spec, stopping at the first error.
  absl::Status ImportEntries();
  // Under the auto policy, imports every provider declared (by the catalog or
  // a loaded descriptor) for a module instantiated here, in one transaction.
  // True if it loaded anything; false under warn and strict.
  absl::StatusOr<bool> ApplyPolicy();

  // The instance of `module_id` if it is ready, else null. Takes no lock while
  // the environment's ready set is unchanged since this thread's last lookup of
  // `module_id` (a server finds each page's current instance per request).
  Instance* Find(std::string_view module_id) const;
  // Ready instances in initialisation order (imports before importers).
  std::vector<Instance*> instances() const;

  // Re-creates `module_id` and every instance that imports it (transitively, and
  // every module sharing a library with one of them) from fresh copies, as a dev
  // server does when a file changes. A transaction: the new copies are loaded
  // (preflighted per spec().preflight), initialised and registered beside the
  // old ones (under auto with their providers), and only when all of that
  // succeeded do they replace the old instances, at once. On error the old
  // instances keep serving unchanged and the status names the module, its file
  // and the cause; a later Reload starts afresh. The replaced libraries are
  // retired (ReleaseRetired).
  absl::Status Reload(std::string_view module_id);
  // Removes `module_id` and its importers in one transaction; they are retired.
  // Under auto the providers the remaining instances need are kept (re-imported
  // when the unloaded set contained them): the registry stays right.
  absl::Status Unload(std::string_view module_id);

  // Retirement. A retired library is closed once (1) every request that
  // started before it was retired has ended (request generations, chained: see
  // SealRequestGeneration), then (2) its instances' teardown has run and
  // returned, and (3) no thread that appeared while their init ran is alive.
  // A library with a module that declares no teardown is never closed: nothing
  // says its code has stopped running (a detached thread, a callback handed to
  // another library). Runs on every Import, Reload and Unload too; returns how
  // many libraries it closed. Copies stay on disk while mapped.
  std::size_t ReleaseRetired();
  std::size_t retired_count() const;
  // The retired libraries still mapped, and why.
  std::vector<RetiredLibrary> retired() const;
  // Libraries (copies) this environment holds for its live instances.
  std::size_t library_count() const;

  // Not owned; set before the first import.
  void set_listener(InstanceListener* listener) { listener_ = listener; }
  void set_provider_catalog(const ProviderCatalog* catalog) { catalog_ = catalog; }

 private:
  struct Transaction;
  struct Retired;
  friend struct HostCallbacks;

  Environment(EnvironmentSpec spec, LibraryLoader& loader);

  Instance* Resolve(std::string_view module_id, const Transaction* tx) const;
  absl::Status Instantiate(std::string_view module_id, std::vector<std::string>& chain,
                           std::string_view importer, Transaction& tx);
  absl::Status Discover(std::string_view module_id, std::string_view importer, Transaction& tx);
  // Loads `relative` beneath `root` (preflighted first if asked and the file
  // changed), refusing what its static initialisers failed to register.
  absl::StatusOr<std::shared_ptr<LoadedLibrary>> LoadLibrary(const std::filesystem::path& root,
                                                             const std::filesystem::path& relative,
                                                             std::string_view label,
                                                             bool preflight);
  absl::StatusOr<std::shared_ptr<LoadedLibrary>> LoadModuleLibrary(std::string_view module_id,
                                                                   bool preflight);
  absl::StatusOr<std::shared_ptr<LoadedLibrary>> LoadBundle(bool preflight);
  absl::StatusOr<std::shared_ptr<LoadedLibrary>> LoadAgain(const LoadedLibrary& library,
                                                           std::string_view label, bool preflight);
  absl::Status AdoptLibrary(std::shared_ptr<LoadedLibrary> library, Transaction& tx);
  absl::Status RunInit(Instance& instance, Transaction& tx);
  absl::Status ApplyAuto(Transaction& tx);
  // The live registration on `slot` of `target` other than by a replaced
  // instance, including those made earlier in `tx`; null if none.
  const Instance* RegisteredBy(const Instance& target, const modgraph_slot_decl& slot,
                               const Transaction& tx) const;
  void Commit(Transaction& tx, const std::vector<Instance*>& retiring);
  void Rollback(Transaction& tx);
  std::vector<Instance*> WithImporters(std::string_view module_id) const;
  std::vector<std::string> ProvidersOf(std::string_view module_id, const Transaction& tx) const;
  bool IsPublished(const Instance& instance, const Transaction& tx) const;
  Instance* FindLocked(std::string_view module_id) const;
  void UnloadBundled(const std::vector<Instance*>& leaving);
  std::size_t ReleaseRetiredLocked();
  // Tears down and closes what `list` may close now; returns libraries closed.
  static std::size_t Release(std::vector<std::unique_ptr<Retired>>& list);
  // Retired libraries of destroyed environments that could not close yet.
  struct Graveyard;
  static Graveyard& TheGraveyard();

  EnvironmentSpec spec_;
  LibraryLoader& loader_;
  InstanceListener* listener_ = nullptr;
  const ProviderCatalog* catalog_ = nullptr;
  mutable std::mutex mu_;  // serialises changes; guards everything below
  std::shared_ptr<LoadedLibrary> bundle_;
  std::vector<std::unique_ptr<Retired>> retired_;
  // Every instance, discovered or ready (mutated only under both locks).
  std::map<std::string, std::shared_ptr<Instance>, std::less<>> instances_;
  // What readers see: the ready instances, swapped at commit. Guarded by
  // published_mu_ (readers never wait for a reload's loading and init).
  mutable std::shared_mutex published_mu_;
  std::map<std::string, Instance*, std::less<>> published_;
  // Changes with every change of published_, to a value of a process-wide
  // counter (a later environment at the same address never repeats it): a
  // thread's cached Find() result stands while it is unchanged. Written under
  // published_mu_.
  std::atomic<std::uint64_t> published_version_;
  void PublishedChangedLocked();
  std::vector<Instance*> init_order_;
};

}  // namespace modgraph

#endif  // MODGRAPH_ENVIRONMENTS_ENVIRONMENT_H_
