// Environments: import resolution, init order, rollback, reload. See environment.h.
#include "modgraph/environments/environment.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <set>
#include <system_error>

#include "modgraph/context/request_context.h"
#include "modgraph/loader/module_id.h"

// The host handle a module sees during init: which environment and instance.
struct modgraph_host {
  modgraph::Environment* environment;
  modgraph::Instance* instance;
  std::string error;
};

namespace modgraph {
namespace fs = std::filesystem;

std::string_view ToString(EnvironmentMode mode) {
  return mode == EnvironmentMode::kBundled ? "bundled" : "isolated";
}

// Instances created and initialised by one Import call, undone together on error.
struct Environment::Transaction {
  std::vector<Instance*> created;
  std::vector<Instance*> initialised;
};

namespace {

std::string RootsText(const std::vector<fs::path>& roots) {
  std::vector<std::string> quoted;
  for (const fs::path& root : roots) quoted.push_back(fmt::format("'{}'", root.string()));
  return fmt::format("{}", fmt::join(quoted, ", "));
}

bool IsUnder(const fs::path& path, const fs::path& root) {
  auto [root_end, _] = std::mismatch(root.begin(), root.end(), path.begin(), path.end());
  return root_end == root.end();
}

}  // namespace

// C callbacks handed to modules; each forwards to the environment being initialised.
struct HostCallbacks {
  static const void* ImportModule(modgraph_host* host, const char* module_id) {
    const modgraph_module_descriptor& self = host->instance->descriptor();
    const bool declared =
        std::any_of(self.imports, self.imports + self.import_count,
                    [&](const char* id) { return std::string_view(id) == module_id; });
    if (!declared) {
      host->error =
          fmt::format("{} imported '{}' without declaring it; add it to the module's .imports",
                      host->instance->name(), module_id);
      return nullptr;
    }
    Instance* target = host->environment->Find(module_id);
    return target == nullptr ? nullptr : target->descriptor().api;
  }

  static int RegisterAccessor(modgraph_host* host, const char* module_id, const char* slot_name,
                              const char* signature, void* impl) {
    Instance* target = host->environment->Find(module_id);
    const auto& imports = host->instance->imports();
    if (target == nullptr || std::find(imports.begin(), imports.end(), target) == imports.end()) {
      host->error = fmt::format(
          "{} registered an accessor on '{}', which it does not import; add it to .imports",
          host->instance->name(), module_id);
      return 1;
    }
    const modgraph_module_descriptor& d = target->descriptor();
    for (const modgraph_slot_decl* slot = d.slots; slot != d.slots + d.slot_count; ++slot) {
      if (std::string_view(slot->name) != slot_name) continue;
      if (std::string_view(slot->signature) != signature) {
        host->error = fmt::format(
            "{} registered slot '{}' of {} as '{}' but the slot is declared '{}'; rebuild both "
            "against the same module header",
            host->instance->name(), slot_name, target->name(), signature, slot->signature);
        return 1;
      }
      *slot->active_impl = impl;
      host->instance->registrations_.push_back({target, slot, impl});
      if (host->environment->listener_ != nullptr) {
        host->environment->listener_->OnAccessorRegistered(*target, *slot, *host->instance);
      }
      return 0;
    }
    host->error = fmt::format("{} has no slot '{}' (asked by {})", target->name(), slot_name,
                              host->instance->name());
    return 1;
  }

  static void SetError(modgraph_host* host, const char* message) { host->error = message; }

  static const char* GetSetting(modgraph_host* host, const char* key) {
    const auto& settings = host->environment->spec().settings;
    auto it = settings.find(key);
    return it == settings.end() ? nullptr : it->second.c_str();
  }
};

namespace {
const modgraph_host_api kHostApi{MODGRAPH_ABI_VERSION, &HostCallbacks::ImportModule,
                                 &HostCallbacks::RegisterAccessor, &HostCallbacks::SetError,
                                 &HostCallbacks::GetSetting};
}  // namespace

Environment::Environment(EnvironmentSpec spec, LibraryLoader& loader)
    : spec_(std::move(spec)), loader_(loader) {}

Environment::~Environment() {
  TearDownAll();
  instances_.clear();  // releases the libraries: dlclose, copies removed
}

absl::StatusOr<std::unique_ptr<Environment>> Environment::Create(EnvironmentSpec spec,
                                                                 LibraryLoader& loader) {
  if (spec.name.empty() || spec.name.find_first_of("#/ \t") != std::string::npos) {
    return absl::InvalidArgumentError(fmt::format(
        "environment name '{}' is empty or contains '#', '/' or spaces; rename it", spec.name));
  }
  if (spec.module_roots.empty()) {
    return absl::InvalidArgumentError(
        fmt::format("environment '{}' has no module roots; add module_roots", spec.name));
  }
  for (fs::path& root : spec.module_roots) {
    std::error_code ec;
    fs::path canonical = fs::canonical(root, ec);
    if (ec || !fs::is_directory(canonical)) {
      return absl::NotFoundError(
          fmt::format("environment '{}': module root '{}' is not a directory; build the modules or "
                      "fix module_roots",
                      spec.name, root.string()));
    }
    root = std::move(canonical);
  }
  for (const std::string& id : spec.entry_modules) {
    const std::string where = fmt::format("entries of environment '{}'", spec.name);
    if (absl::Status valid = ValidateModuleId(id, where); !valid.ok()) return valid;
  }
  std::unique_ptr<Environment> env(new Environment(std::move(spec), loader));
  if (env->spec_.mode == EnvironmentMode::kBundled) {
    if (env->spec_.bundle.empty()) {
      return absl::InvalidArgumentError(fmt::format(
          "environment '{}' is bundled but names no bundle; set bundle = \"...\"", env->name()));
    }
    absl::StatusOr<std::shared_ptr<LoadedLibrary>> bundle = env->LoadBundle();
    if (!bundle.ok()) return bundle.status();
    Transaction tx;
    if (absl::Status adopted = env->AdoptLibrary(*bundle, tx); !adopted.ok()) return adopted;
    env->bundle_ = *std::move(bundle);
  }
  return env;
}

absl::StatusOr<std::shared_ptr<LoadedLibrary>> Environment::LoadBundle() {
  std::error_code ec;
  const fs::path bundle = fs::weakly_canonical(fs::absolute(spec_.bundle), ec);
  for (const fs::path& root : spec_.module_roots) {
    if (!ec && IsUnder(bundle, root)) {
      return loader_.Load(root, bundle.lexically_relative(root), {name(), "bundle"});
    }
  }
  return absl::PermissionDeniedError(
      fmt::format("environment '{}': refusing '{}': it is outside the module roots ({}); move it "
                  "into a root or add its directory to module_roots",
                  name(), spec_.bundle.string(), RootsText(spec_.module_roots)));
}

absl::StatusOr<std::shared_ptr<LoadedLibrary>> Environment::LoadModuleLibrary(
    std::string_view module_id) {
  // The loader opens `<id>.so` beneath each root in turn: nothing outside the
  // roots is ever opened, and a valid id is a single file name.
  const std::string file = fmt::format("{}.so", module_id);
  for (const fs::path& root : spec_.module_roots) {
    absl::StatusOr<std::shared_ptr<LoadedLibrary>> library =
        loader_.Load(root, file, {name(), std::string(module_id)});
    if (library.ok() || library.status().code() != absl::StatusCode::kNotFound) return library;
  }
  return absl::NotFoundError(
      fmt::format("no library for module '{}' under the module roots of environment '{}' ({})",
                  module_id, name(), RootsText(spec_.module_roots)));
}

absl::Status Environment::AdoptLibrary(std::shared_ptr<LoadedLibrary> library, Transaction& tx) {
  // Check every id first so a library with one duplicate adds nothing at all.
  for (const modgraph_module_descriptor* d : library->descriptors()) {
    if (auto it = instances_.find(d->id); it != instances_.end()) {
      return absl::AlreadyExistsError(fmt::format(
          "duplicate module id '{}' in environment '{}': '{}' and '{}' both export it; remove one "
          "of them from the module roots",
          d->id, name(), library->source().string(), it->second->library().source().string()));
    }
  }
  for (const modgraph_module_descriptor* d : library->descriptors()) {
    auto instance = std::make_unique<Instance>();
    instance->environment_ = name();
    instance->module_id_ = d->id;
    instance->name_ = fmt::format("{}#{}", name(), d->id);
    instance->descriptor_ = d;
    instance->library_ = library;
    tx.created.push_back(instance.get());
    instances_.emplace(d->id, std::move(instance));
  }
  return absl::OkStatus();
}

absl::Status Environment::Discover(std::string_view module_id, std::string_view importer,
                                   Transaction& tx) {
  const std::string wanted_by =
      importer.empty() ? std::string() : fmt::format(" (imported by {}#{})", name(), importer);
  if (spec_.mode == EnvironmentMode::kBundled) {
    return absl::NotFoundError(
        fmt::format("unknown module '{}'{}: bundle '{}' of environment '{}' does not contain it; "
                    "add it to the bundle",
                    module_id, wanted_by, spec_.bundle.string(), name()));
  }
  absl::StatusOr<std::shared_ptr<LoadedLibrary>> library = LoadModuleLibrary(module_id);
  if (library.status().code() == absl::StatusCode::kNotFound) {
    return absl::NotFoundError(
        fmt::format("unknown module '{}'{}: {}; build it into a module root or remove the import",
                    module_id, wanted_by, std::string(library.status().message())));
  }
  if (!library.ok()) return library.status();
  if (absl::Status adopted = AdoptLibrary(*library, tx); !adopted.ok()) return adopted;
  if (!instances_.contains(module_id)) {
    return absl::NotFoundError(
        fmt::format("environment '{}': '{}' does not export module '{}'; fix its MODGRAPH_MODULE "
                    "id or rename the file",
                    name(), (*library)->source().string(), module_id));
  }
  return absl::OkStatus();
}

absl::Status Environment::RunInit(Instance& instance) {
  modgraph_host host{this, &instance, {}};
  const modgraph_init_args args{&host, &kHostApi, name().c_str(), instance.name().c_str()};
  const modgraph_module_descriptor& d = instance.descriptor();
  if (d.init != nullptr && d.init(&args) != 0) {
    return absl::AbortedError(fmt::format(
        "init of {} ('{}') failed: {}; fix the module, the environment keeps its other instances",
        instance.name(), instance.library().source().string(),
        host.error.empty() ? "no reason given" : host.error));
  }
  return absl::OkStatus();
}

absl::Status Environment::Instantiate(std::string_view module_id, std::vector<std::string>& chain,
                                      std::string_view importer, Transaction& tx) {
  auto it = instances_.find(module_id);
  if (it != instances_.end() && it->second->state_ == Instance::State::kReady) {
    return absl::OkStatus();
  }
  if (it != instances_.end() && it->second->state_ == Instance::State::kInitializing) {
    auto start = std::find(chain.begin(), chain.end(), module_id);
    std::vector<std::string> cycle(start, chain.end());
    cycle.emplace_back(module_id);
    return absl::FailedPreconditionError(
        fmt::format("import cycle in environment '{}': {}; break the cycle (move the shared part "
                    "into a module both import)",
                    name(), fmt::join(cycle, " -> ")));
  }
  if (it == instances_.end()) {
    if (absl::Status found = Discover(module_id, importer, tx); !found.ok()) return found;
    it = instances_.find(module_id);
  }
  Instance& instance = *it->second;
  instance.state_ = Instance::State::kInitializing;
  chain.emplace_back(module_id);
  const modgraph_module_descriptor& d = instance.descriptor();
  instance.imports_.clear();
  for (uint32_t i = 0; i < d.import_count; ++i) {
    if (absl::Status imported = Instantiate(d.imports[i], chain, module_id, tx); !imported.ok()) {
      instance.state_ = Instance::State::kDiscovered;
      return imported;
    }
    instance.imports_.push_back(instances_.find(d.imports[i])->second.get());
  }
  chain.pop_back();
  if (absl::Status initialised = RunInit(instance); !initialised.ok()) {
    RevokeRegistrations(instance);  // registered before it failed
    instance.state_ = Instance::State::kDiscovered;
    return initialised;
  }
  instance.state_ = Instance::State::kReady;
  init_order_.push_back(&instance);
  tx.initialised.push_back(&instance);
  if (listener_ != nullptr) listener_->OnInstanceReady(instance);
  return absl::OkStatus();
}

absl::StatusOr<Instance*> Environment::Import(std::string_view module_id) {
  if (Instance* ready = Find(module_id)) return ready;
  const std::string where = fmt::format("import into environment '{}'", name());
  if (absl::Status valid = ValidateModuleId(module_id, where); !valid.ok()) return valid;
  ReleaseRetired();
  Transaction tx;
  std::vector<std::string> chain;
  if (absl::Status status = Instantiate(module_id, chain, "", tx); !status.ok()) {
    Rollback(tx);
    return status;
  }
  return instances_.find(module_id)->second.get();
}

absl::Status Environment::ImportEntries() {
  for (const std::string& id : spec_.entry_modules) {
    if (absl::StatusOr<Instance*> instance = Import(id); !instance.ok()) return instance.status();
  }
  return absl::OkStatus();
}

Instance* Environment::Find(std::string_view module_id) const {
  auto it = instances_.find(module_id);
  if (it == instances_.end() || it->second->state_ != Instance::State::kReady) return nullptr;
  return it->second.get();
}

void Environment::RevokeRegistrations(Instance& provider) {
  for (const Instance::Registration& registration : provider.registrations_) {
    // A later provider may have replaced this one's accessor: leave that in place.
    if (*registration.slot->active_impl != registration.impl) continue;
    *registration.slot->active_impl = registration.slot->default_impl;
    if (listener_ != nullptr) {
      listener_->OnAccessorRevoked(*registration.target, *registration.slot, provider);
    }
  }
  provider.registrations_.clear();
}

void Environment::TearDown(Instance& instance) {
  if (instance.state_ != Instance::State::kReady) return;
  RevokeRegistrations(instance);
  if (listener_ != nullptr) listener_->OnInstanceUnloading(instance);
  if (instance.descriptor().teardown != nullptr) instance.descriptor().teardown();
  instance.state_ = Instance::State::kDiscovered;
  std::erase(init_order_, &instance);
}

void Environment::TearDownAll() {
  const std::vector<Instance*> order = init_order_;  // TearDown edits init_order_
  for (auto it = order.rbegin(); it != order.rend(); ++it) TearDown(**it);
}

void Environment::Rollback(Transaction& tx) {
  for (auto it = tx.initialised.rbegin(); it != tx.initialised.rend(); ++it) TearDown(**it);
  for (Instance* created : tx.created) instances_.erase(created->module_id());
  for (auto& [id, instance] : instances_) {
    if (instance->state_ == Instance::State::kInitializing) {
      instance->state_ = Instance::State::kDiscovered;
    }
  }
}

std::vector<Instance*> Environment::WithImporters(std::string_view module_id) const {
  // Init order lists imports before importers, so one forward pass finds the closure.
  std::set<const Instance*> affected;
  std::vector<Instance*> ordered;
  for (Instance* instance : init_order_) {
    bool hit = instance->module_id() == module_id;
    for (const Instance* imported : instance->imports()) hit = hit || affected.contains(imported);
    // Modules sharing a library share its globals: they go together.
    for (const Instance* other : affected) hit = hit || &other->library() == &instance->library();
    if (hit) {
      affected.insert(instance);
      ordered.push_back(instance);
    }
  }
  return ordered;
}

void Environment::Remove(const std::vector<Instance*>& doomed) {
  for (auto it = doomed.rbegin(); it != doomed.rend(); ++it) TearDown(**it);
  if (spec_.mode == EnvironmentMode::kBundled) return;  // the bundle stays; only init state goes
  std::set<const LoadedLibrary*> libraries;
  for (Instance* instance : doomed) {
    if (libraries.insert(&instance->library()).second) Retire(instance->library_);
  }
  std::erase_if(instances_,
                [&](const auto& entry) { return libraries.contains(&entry.second->library()); });
}

void Environment::Retire(std::shared_ptr<LoadedLibrary> library) {
  library->RemoveCopy();
  retired_.push_back({std::move(library), SealRequestGeneration()});
}

std::size_t Environment::ReleaseRetired() {
  return std::erase_if(retired_, [](const Retired& r) { return r.requests_before.expired(); });
}

absl::Status Environment::Unload(std::string_view module_id) {
  const std::string where = fmt::format("unload from environment '{}'", name());
  if (absl::Status valid = ValidateModuleId(module_id, where); !valid.ok()) return valid;
  ReleaseRetired();
  if (Find(module_id) == nullptr) {
    return absl::NotFoundError(
        fmt::format("environment '{}' has no instance of '{}' to unload", name(), module_id));
  }
  Remove(WithImporters(module_id));
  return absl::OkStatus();
}

absl::Status Environment::Reload(std::string_view module_id) {
  const std::string where = fmt::format("reload in environment '{}'", name());
  if (absl::Status valid = ValidateModuleId(module_id, where); !valid.ok()) return valid;
  ReleaseRetired();
  if (Find(module_id) == nullptr) {
    return absl::NotFoundError(fmt::format(
        "environment '{}' has no instance of '{}' to reload; import it first", name(), module_id));
  }
  std::vector<Instance*> affected = WithImporters(module_id);
  std::vector<std::string> ids;
  for (const Instance* instance : affected) ids.push_back(instance->module_id());
  if (spec_.mode == EnvironmentMode::kBundled) {
    // One library holds every module: a fresh copy means re-creating them all.
    ids.clear();
    for (const Instance* instance : init_order_) ids.push_back(instance->module_id());
    TearDownAll();
    instances_.clear();
    Retire(std::move(bundle_));
    absl::StatusOr<std::shared_ptr<LoadedLibrary>> bundle = LoadBundle();
    if (!bundle.ok()) return bundle.status();
    Transaction tx;
    if (absl::Status adopted = AdoptLibrary(*bundle, tx); !adopted.ok()) return adopted;
    bundle_ = *std::move(bundle);
  } else {
    Remove(affected);
  }
  for (const std::string& id : ids) {
    if (absl::StatusOr<Instance*> again = Import(id); !again.ok()) return again.status();
  }
  return absl::OkStatus();
}

}  // namespace modgraph
