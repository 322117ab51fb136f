// Environments: import resolution, transactions, reload and retirement. See
// environment.h and docs/loader.md ("Reload", "Retirement").
#include "modgraph/environments/environment.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <openssl/evp.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <set>
#include <system_error>
#include <tuple>

#include "modgraph/context/code_identity.h"
#include "modgraph/context/internal/code_identity.h"
#include "modgraph/context/registrations.h"
#include "modgraph/context/request_context.h"
#include "modgraph/loader/module_id.h"
#include "modgraph/loader/preflight.h"

// The host handle a module sees during init: which environment, instance and
// transaction, and why the host refused a call (the first reason wins).
struct modgraph_host {
  modgraph::Environment* environment;
  modgraph::Instance* instance;
  void* transaction;         // Environment::Transaction
  std::string error;         // the host's first refusal (an import, a registration)
  std::string module_error;  // the first message the module gave with set_error
};

namespace modgraph {
namespace fs = std::filesystem;

std::string_view ToString(EnvironmentMode mode) {
  return mode == EnvironmentMode::kBundled ? "bundled" : "isolated";
}

std::string_view ToString(Preflight preflight) {
  switch (preflight) {
    case Preflight::kOff:
      return "off";
    case Preflight::kReloads:
      return "reloads";
    case Preflight::kAlways:
      return "always";
  }
  return "?";
}

// What one Import, Reload, Unload or ApplyPolicy changes, kept beside the live
// instances until it commits (or is rolled back, leaving them untouched).
struct Environment::Transaction {
  // Live ids being re-created (reload) or removed (unload): lookups inside the
  // transaction never resolve to their old instances.
  std::set<std::string, std::less<>> replacing;
  // New instances, discovered or initialised, by id.
  std::map<std::string, std::shared_ptr<Instance>, std::less<>> staged;
  // Every instance whose init ran here (staged, or live but only discovered),
  // in order, and those that finished it.
  std::vector<Instance*> touched;
  std::vector<Instance*> initialised;
  // Registrations on published instances: written at commit, all at once.
  struct Deferred {
    const modgraph_slot_decl* slot;
    void* impl;
  };
  std::vector<Deferred> deferred;
  bool preflight = false;
  std::shared_ptr<LoadedLibrary> bundle;  // a bundled reload's new copy
};

// One commit's replaced or unloaded instances, kept until they may close.
struct Environment::Retired {
  std::vector<std::shared_ptr<Instance>> instances;  // init order, then discovered
  RequestGenerationWatch requests_before;            // ends when they have all ended
  bool published = true;                             // false: a rolled-back transaction's
  bool torn_down = false;
  std::string reason;  // why something of it is still mapped
  bool kept_for_good = false;
};

struct Environment::Graveyard {
  std::mutex mu;
  std::vector<std::unique_ptr<Retired>> entries;
};

Environment::Graveyard& Environment::TheGraveyard() {
  static auto* graveyard = new Graveyard();  // libraries in it may be mapped until exit
  return *graveyard;
}

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

// Slot cells are read by requests while the host writes them (slot.h).
void* LoadCell(const modgraph_slot_decl& slot) {
  return std::atomic_ref<void*>(*slot.active_impl).load(std::memory_order_acquire);
}
void StoreCell(const modgraph_slot_decl& slot, void* impl) {
  std::atomic_ref<void*>(*slot.active_impl).store(impl, std::memory_order_release);
}

// The process's threads, by id (sorted).
std::vector<int> ThreadIds() {
  std::vector<int> ids;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/proc/self/task", ec)) {
    ids.push_back(std::atoi(entry.path().filename().c_str()));
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

bool ThreadAlive(int tid) {
  std::error_code ec;
  return fs::exists(fs::path("/proc/self/task") / std::to_string(tid), ec);
}

// Library files whose static initialisers ran without ending a process (here or
// in a preflight), by identity: they need no preflight again. Process-wide:
// every environment loading the same file benefits.
class InitialisedFiles {
 public:
  using Identity = std::tuple<std::uint64_t, std::uint64_t, std::int64_t, std::int64_t>;
  static std::optional<Identity> Of(const fs::path& file) {
    struct stat st {};
    if (::stat(file.c_str(), &st) != 0) return std::nullopt;
    return Identity{st.st_dev, st.st_ino, st.st_size,
                    std::int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec};
  }
  bool Contains(const Identity& identity) {
    std::lock_guard lock(mu_);
    return files_.contains(identity);
  }
  void Add(const Identity& identity) {
    std::lock_guard lock(mu_);
    files_.insert(identity);
  }

 private:
  std::mutex mu_;
  std::set<Identity> files_;
};

InitialisedFiles& TheInitialisedFiles() {
  static auto* files = new InitialisedFiles();
  return *files;
}

// The hex SHA-256 of a file's bytes (OpenSSL), or "" if it cannot be read.
std::string Sha256Of(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  if (ctx == nullptr || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) return {};
  char buffer[1 << 16];
  while (in.read(buffer, sizeof buffer) || in.gcount() > 0) {
    if (EVP_DigestUpdate(ctx.get(), buffer, static_cast<std::size_t>(in.gcount())) != 1) return {};
    if (!in) break;
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (EVP_DigestFinal_ex(ctx.get(), digest, &size) != 1) return {};
  std::string hex;
  for (unsigned int i = 0; i < size; ++i) hex += fmt::format("{:02x}", digest[i]);
  return hex;
}

// A loaded library whose code identity is recorded (code_identity.h) until it
// closes: forgotten first, then closed (another library may take its address).
struct IdentifiedLibrary {
  ~IdentifiedLibrary() {
    if (base != nullptr) context_internal::ForgetCodeIdentity(base);
  }
  std::shared_ptr<LoadedLibrary> library;
  const void* base = nullptr;
};

std::shared_ptr<LoadedLibrary> Identify(std::shared_ptr<LoadedLibrary> library) {
  auto identified = std::make_shared<IdentifiedLibrary>();
  const void* base =
      library->descriptors().empty() ? nullptr : LoadBaseOf(library->descriptors().front());
  if (base != nullptr) {
    identified->base = base;
    context_internal::RecordCodeIdentity(base, Sha256Of(library->loaded_path()));
  }
  LoadedLibrary* raw = library.get();
  identified->library = std::move(library);
  return std::shared_ptr<LoadedLibrary>(identified, raw);
}

// The SDK's own short messages for a refused call; the host's reason is better.
bool IsSdkSummary(std::string_view message) {
  return message.starts_with("cannot import ") || message.starts_with("cannot register ");
}

}  // namespace

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

namespace {
const modgraph_host_api kHostApi{MODGRAPH_ABI_VERSION, &HostCallbacks::ImportModule,
                                 &HostCallbacks::RegisterAccessor, &HostCallbacks::SetError,
                                 &HostCallbacks::GetSetting};
}  // namespace

Environment::Environment(EnvironmentSpec spec, LibraryLoader& loader)
    : spec_(std::move(spec)), loader_(loader) {}

Environment::~Environment() {
  std::lock_guard lock(mu_);
  // Everything leaves as in an unload: requests still running keep their copies.
  std::vector<Instance*> all = init_order_;
  for (const auto& [id, instance] : instances_) {
    if (instance->state_ != Instance::State::kReady) all.push_back(instance.get());
  }
  Transaction none;
  Commit(none, all);
  bundle_.reset();  // closes with its instances, or stays with them in the graveyard
  if (!retired_.empty()) {
    Graveyard& graveyard = TheGraveyard();
    std::lock_guard buried(graveyard.mu);
    for (auto& entry : retired_) graveyard.entries.push_back(std::move(entry));
  }
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
    std::lock_guard lock(env->mu_);
    absl::StatusOr<std::shared_ptr<LoadedLibrary>> bundle =
        env->LoadBundle(env->spec_.preflight == Preflight::kAlways);
    if (!bundle.ok()) return bundle.status();
    Transaction tx;
    if (absl::Status adopted = env->AdoptLibrary(*bundle, tx); !adopted.ok()) return adopted;
    for (auto& [id, instance] : tx.staged) env->instances_.emplace(id, std::move(instance));
    env->bundle_ = *std::move(bundle);
  }
  return env;
}

absl::StatusOr<std::shared_ptr<LoadedLibrary>> Environment::LoadBundle(bool preflight) {
  std::error_code ec;
  const fs::path bundle = fs::weakly_canonical(fs::absolute(spec_.bundle), ec);
  for (const fs::path& root : spec_.module_roots) {
    if (!ec && IsUnder(bundle, root)) {
      return LoadLibrary(root, bundle.lexically_relative(root), "bundle", preflight);
    }
  }
  return absl::PermissionDeniedError(
      fmt::format("environment '{}': refusing '{}': it is outside the module roots ({}); move it "
                  "into a root or add its directory to module_roots",
                  name(), spec_.bundle.string(), RootsText(spec_.module_roots)));
}

absl::StatusOr<std::shared_ptr<LoadedLibrary>> Environment::LoadModuleLibrary(
    std::string_view module_id, bool preflight) {
  // The loader opens `<id>.so` beneath each root in turn: nothing outside the
  // roots is ever opened, and a valid id is a single file name.
  const std::string file = fmt::format("{}.so", module_id);
  for (const fs::path& root : spec_.module_roots) {
    absl::StatusOr<std::shared_ptr<LoadedLibrary>> library =
        LoadLibrary(root, file, module_id, preflight);
    if (library.ok() || library.status().code() != absl::StatusCode::kNotFound) return library;
  }
  return absl::NotFoundError(
      fmt::format("no library for module '{}' under the module roots of environment '{}' ({})",
                  module_id, name(), RootsText(spec_.module_roots)));
}

absl::StatusOr<std::shared_ptr<LoadedLibrary>> Environment::LoadAgain(const LoadedLibrary& library,
                                                                      std::string_view label,
                                                                      bool preflight) {
  // The same file again, beneath the same root.
  for (const fs::path& root : spec_.module_roots) {
    if (IsUnder(library.source(), root)) {
      return LoadLibrary(root, library.source().lexically_relative(root), label, preflight);
    }
  }
  return absl::NotFoundError(
      fmt::format("environment '{}': '{}' is no longer under a module root ({})", name(),
                  library.source().string(), RootsText(spec_.module_roots)));
}

absl::StatusOr<std::shared_ptr<LoadedLibrary>> Environment::LoadLibrary(const fs::path& root,
                                                                        const fs::path& relative,
                                                                        std::string_view label,
                                                                        bool preflight) {
  const fs::path file = root / relative;
  const std::string who = fmt::format("{}#{} ('{}')", name(), label, file.string());
  const std::optional<InitialisedFiles::Identity> identity = InitialisedFiles::Of(file);
  LoadRequest request{.environment = name(), .label = std::string(label), .before_dlopen = {}};
  // A file whose initialisers already ran here, or in a preflight, needs none.
  // The helper loads the checked private copy: exactly the bytes that load here.
  if (preflight && !(identity.has_value() && TheInitialisedFiles().Contains(*identity))) {
    request.before_dlopen = [&who](const fs::path& copy) -> absl::Status {
      absl::Status checked = PreflightLibrary(copy, {.label = "the library"});
      if (checked.ok()) return checked;
      return absl::Status(checked.code(),
                          fmt::format("cannot load {}: {}", who, std::string(checked.message())));
    };
  }
  // Static initialisers run inside Load: what modgraph registers there must not throw.
  RegistrationScope scope(who);
  absl::StatusOr<std::shared_ptr<LoadedLibrary>> library = loader_.Load(root, relative, request);
  if (!library.ok()) return library.status();
  if (!scope.errors().empty()) {
    return absl::FailedPreconditionError(
        fmt::format("cannot load {}: {}; the library was closed again, nothing of it is used", who,
                    fmt::join(scope.errors(), "; ")));
  }
  if (identity.has_value()) TheInitialisedFiles().Add(*identity);
  return Identify(*std::move(library));
}

absl::Status Environment::AdoptLibrary(std::shared_ptr<LoadedLibrary> library, Transaction& tx) {
  // Check every id first so a library with one duplicate adds nothing at all.
  for (const modgraph_module_descriptor* d : library->descriptors()) {
    const Instance* other = nullptr;
    if (auto it = tx.staged.find(d->id); it != tx.staged.end()) other = it->second.get();
    if (auto it = instances_.find(d->id); it != instances_.end() && !tx.replacing.contains(d->id)) {
      other = it->second.get();
    }
    if (other != nullptr) {
      return absl::AlreadyExistsError(fmt::format(
          "duplicate module id '{}' in environment '{}': '{}' and '{}' both export it; remove one "
          "of them from the module roots",
          d->id, name(), library->source().string(), other->library().source().string()));
    }
  }
  for (const modgraph_module_descriptor* d : library->descriptors()) {
    auto instance = std::make_shared<Instance>();
    instance->environment_ = name();
    instance->module_id_ = d->id;
    instance->name_ = fmt::format("{}#{}", name(), d->id);
    instance->descriptor_ = d;
    instance->library_ = library;
    instance->code_identity_ = CodeIdentityOf(d);
    tx.staged.emplace(d->id, std::move(instance));
  }
  return absl::OkStatus();
}

Instance* Environment::Resolve(std::string_view module_id, const Transaction* tx) const {
  if (tx != nullptr) {
    if (auto it = tx->staged.find(module_id); it != tx->staged.end()) return it->second.get();
    if (tx->replacing.contains(module_id)) return nullptr;
  }
  auto it = instances_.find(module_id);
  return it == instances_.end() ? nullptr : it->second.get();
}

bool Environment::IsPublished(const Instance& instance, const Transaction& tx) const {
  return instance.state_ == Instance::State::kReady &&
         std::find(tx.initialised.begin(), tx.initialised.end(), &instance) == tx.initialised.end();
}

const Instance* Environment::RegisteredBy(const Instance& target, const modgraph_slot_decl& slot,
                                          const Transaction& tx) const {
  auto holds = [&](const Instance& provider) {
    return std::any_of(
        provider.registrations_.begin(), provider.registrations_.end(),
        [&](const Instance::Registration& r) { return r.target == &target && r.slot == &slot; });
  };
  for (const auto& [id, instance] : tx.staged) {
    if (holds(*instance)) return instance.get();
  }
  for (const auto& [id, instance] : instances_) {
    if (!tx.replacing.contains(id) && holds(*instance)) return instance.get();
  }
  return nullptr;
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
  absl::StatusOr<std::shared_ptr<LoadedLibrary>> library =
      LoadModuleLibrary(module_id, tx.preflight);
  if (library.status().code() == absl::StatusCode::kNotFound) {
    return absl::NotFoundError(
        fmt::format("unknown module '{}'{}: {}; build it into a module root or remove the import",
                    module_id, wanted_by, std::string(library.status().message())));
  }
  if (!library.ok()) return library.status();
  const std::string source = (*library)->source().string();
  if (absl::Status adopted = AdoptLibrary(*library, tx); !adopted.ok()) return adopted;
  if (!tx.staged.contains(module_id)) {
    return absl::NotFoundError(
        fmt::format("environment '{}': '{}' does not export module '{}'; fix its MODGRAPH_MODULE "
                    "id or rename the file",
                    name(), source, module_id));
  }
  return absl::OkStatus();
}

absl::Status Environment::RunInit(Instance& instance, Transaction& tx) {
  const modgraph_module_descriptor& d = instance.descriptor();
  if (d.init == nullptr) return absl::OkStatus();
  modgraph_host host{this, &instance, &tx, {}, {}};
  const modgraph_init_args args{&host, &kHostApi, name().c_str(), instance.name().c_str()};
  // Threads that appear while init runs may run the module's code later: the
  // copy is not closed while one of them lives.
  const std::vector<int> before = ThreadIds();
  const int failed = d.init(&args);
  const std::vector<int> after = ThreadIds();
  std::set_difference(after.begin(), after.end(), before.begin(), before.end(),
                      std::back_inserter(instance.init_threads_));
  if (failed == 0) return absl::OkStatus();
  std::string why = !host.error.empty() ? host.error : host.module_error;
  if (!host.error.empty() && !host.module_error.empty() && !IsSdkSummary(host.module_error)) {
    why += fmt::format("; then the module reported: {}", host.module_error);
  }
  return absl::AbortedError(fmt::format(
      "init of {} ('{}') failed: {}; fix the module, the environment keeps its other instances",
      instance.name(), instance.library().source().string(),
      why.empty() ? "no reason given" : why));
}

absl::Status Environment::Instantiate(std::string_view module_id, std::vector<std::string>& chain,
                                      std::string_view importer, Transaction& tx) {
  Instance* instance = Resolve(module_id, &tx);
  if (instance != nullptr && instance->state_ == Instance::State::kReady) {
    return absl::OkStatus();
  }
  if (instance != nullptr && instance->state_ == Instance::State::kInitializing) {
    auto start = std::find(chain.begin(), chain.end(), module_id);
    std::vector<std::string> cycle(start, chain.end());
    cycle.emplace_back(module_id);
    return absl::FailedPreconditionError(
        fmt::format("import cycle in environment '{}': {}; break the cycle (move the shared part "
                    "into a module both import)",
                    name(), fmt::join(cycle, " -> ")));
  }
  if (instance == nullptr) {
    if (absl::Status found = Discover(module_id, importer, tx); !found.ok()) return found;
    instance = Resolve(module_id, &tx);
  }
  instance->state_ = Instance::State::kInitializing;
  tx.touched.push_back(instance);
  chain.emplace_back(module_id);
  const modgraph_module_descriptor& d = instance->descriptor();
  instance->imports_.clear();
  instance->imports_by_id_.clear();
  for (uint32_t i = 0; i < d.import_count; ++i) {
    if (absl::Status imported = Instantiate(d.imports[i], chain, module_id, tx); !imported.ok()) {
      return imported;
    }
    instance->imports_.push_back(Resolve(d.imports[i], &tx));
    instance->imports_by_id_.emplace(d.imports[i], instance->imports_.back());
  }
  chain.pop_back();
  if (absl::Status initialised = RunInit(*instance, tx); !initialised.ok()) return initialised;
  instance->state_ = Instance::State::kReady;
  tx.initialised.push_back(instance);
  return absl::OkStatus();
}

std::vector<std::string> Environment::ProvidersOf(std::string_view module_id,
                                                  const Transaction& tx) const {
  std::set<std::string> providers;
  if (catalog_ != nullptr) {
    for (std::string& provider : catalog_->ProvidersFor(module_id)) {
      providers.insert(std::move(provider));
    }
  }
  auto declared = [&](const Instance& instance) {
    const modgraph_module_descriptor& d = instance.descriptor();
    for (uint32_t i = 0; i < d.provides_count; ++i) {
      if (std::string_view(d.provides_for[i]) == module_id) providers.insert(instance.module_id());
    }
  };
  // Leaving instances count too: what they declared is still true of the module.
  for (const auto& [id, instance] : tx.staged) declared(*instance);
  for (const auto& [id, instance] : instances_) declared(*instance);
  return {providers.begin(), providers.end()};
}

absl::Status Environment::ApplyAuto(Transaction& tx) {
  if (spec_.policy != Policy::kAuto) return absl::OkStatus();
  for (bool changed = true; changed;) {
    changed = false;
    std::vector<Instance*> present;
    for (Instance* instance : init_order_) {
      if (!tx.replacing.contains(instance->module_id())) present.push_back(instance);
    }
    present.insert(present.end(), tx.initialised.begin(), tx.initialised.end());
    for (const Instance* instance : present) {
      for (const std::string& provider : ProvidersOf(instance->module_id(), tx)) {
        const Instance* loaded = Resolve(provider, &tx);
        if (loaded != nullptr && loaded->state_ == Instance::State::kReady) continue;
        std::vector<std::string> chain;
        if (absl::Status status = Instantiate(provider, chain, "", tx); !status.ok()) {
          return absl::Status(
              status.code(),
              fmt::format("auto policy: cannot load provider '{}' for {} in environment '{}': {}",
                          provider, instance->name(), name(), std::string(status.message())));
        }
        changed = true;
        break;
      }
      if (changed) break;  // `present` is stale now
    }
  }
  return absl::OkStatus();
}

void Environment::Commit(Transaction& tx, const std::vector<Instance*>& retiring) {
  const std::set<const Instance*> leaving(retiring.begin(), retiring.end());
  // Registrations onto instances requests already use: at once, at commit.
  for (const Transaction::Deferred& deferred : tx.deferred) {
    StoreCell(*deferred.slot, deferred.impl);
  }
  // Providers that leave put the slots they hold on staying instances back on
  // their defaults, unless a new provider just took the slot.
  struct Revoked {
    const Instance* target;
    const modgraph_slot_decl* slot;
    const Instance* provider;
  };
  std::vector<Revoked> revoked;
  for (const Instance* provider : retiring) {
    for (const Instance::Registration& r : provider->registrations_) {
      if (leaving.contains(r.target) || LoadCell(*r.slot) != r.impl) continue;
      StoreCell(*r.slot, r.slot->default_impl);
      revoked.push_back({r.target, r.slot, provider});
    }
  }
  // Swap: readers see the new set from here on.
  std::vector<std::shared_ptr<Instance>> retired;
  {
    std::unique_lock publish(published_mu_);
    // One pass, not one erase per instance: unloading everything is linear.
    std::erase_if(init_order_, [&](const Instance* i) { return leaving.contains(i); });
    for (const Instance* old : retiring) {
      published_.erase(old->module_id());
      auto it = instances_.find(old->module_id());
      if (it != instances_.end() && it->second.get() == old) {
        retired.push_back(std::move(it->second));
        instances_.erase(it);
      }
    }
    for (auto& [id, instance] : tx.staged) instances_.insert_or_assign(id, std::move(instance));
    for (Instance* ready : tx.initialised) {
      init_order_.push_back(ready);
      published_.insert_or_assign(ready->module_id(), ready);
    }
    if (tx.bundle != nullptr) bundle_ = std::move(tx.bundle);
  }
  if (listener_ != nullptr) {
    for (auto it = retiring.rbegin(); it != retiring.rend(); ++it) {
      if ((*it)->state_ == Instance::State::kReady) listener_->OnInstanceUnloading(**it);
    }
    for (const Instance* ready : tx.initialised) listener_->OnInstanceReady(*ready);
    for (const Revoked& r : revoked) listener_->OnAccessorRevoked(*r.target, *r.slot, *r.provider);
    for (const Instance* ready : tx.initialised) {
      for (const Instance::Registration& r : ready->registrations_) {
        listener_->OnAccessorRegistered(*r.target, *r.slot, *ready);
      }
    }
  }
  // Retire: requests that started before this point may still use the old code.
  if (!retired.empty()) {
    auto entry = std::make_unique<Retired>();
    entry->instances = std::move(retired);
    entry->requests_before = SealRequestGeneration();
    retired_.push_back(std::move(entry));
  }
  tx = Transaction();
  ReleaseRetiredLocked();
}

void Environment::Rollback(Transaction& tx) {
  // Nothing was published: undo in reverse, tear down what initialised.
  for (auto it = tx.touched.rbegin(); it != tx.touched.rend(); ++it) {
    Instance& instance = **it;
    const bool initialised =
        std::find(tx.initialised.begin(), tx.initialised.end(), &instance) != tx.initialised.end();
    if (initialised && instance.descriptor().teardown != nullptr) instance.descriptor().teardown();
    // Cells of unpublished targets were written at once; deferred ones never were.
    for (const Instance::Registration& r : instance.registrations_) {
      if (!IsPublished(*r.target, tx) && LoadCell(*r.slot) == r.impl) {
        StoreCell(*r.slot, r.slot->default_impl);
      }
    }
    instance.registrations_.clear();
    instance.imports_.clear();
    instance.imports_by_id_.clear();
    instance.state_ = Instance::State::kDiscovered;
  }
  // A copy whose init left a thread running stays mapped (ReleaseRetired).
  auto entry = std::make_unique<Retired>();
  entry->published = false;
  entry->torn_down = true;
  for (auto& [id, instance] : tx.staged) {
    if (std::any_of(instance->init_threads_.begin(), instance->init_threads_.end(), ThreadAlive)) {
      entry->instances.push_back(std::move(instance));
    }
  }
  if (!entry->instances.empty()) retired_.push_back(std::move(entry));
  tx = Transaction();  // the other new copies close here
}

absl::StatusOr<Instance*> Environment::Import(std::string_view module_id) {
  const std::string where = fmt::format("import into environment '{}'", name());
  if (absl::Status valid = ValidateModuleId(module_id, where); !valid.ok()) return valid;
  std::lock_guard lock(mu_);
  ReleaseRetiredLocked();
  if (Instance* ready = FindLocked(module_id)) return ready;
  Transaction tx;
  tx.preflight = spec_.preflight == Preflight::kAlways;
  std::vector<std::string> chain;
  absl::Status status = Instantiate(module_id, chain, "", tx);
  if (status.ok()) status = ApplyAuto(tx);
  if (!status.ok()) {
    Rollback(tx);
    return status;
  }
  Instance* imported = Resolve(module_id, &tx);
  Commit(tx, {});
  return imported;
}

absl::Status Environment::ImportEntries() {
  for (const std::string& id : spec_.entry_modules) {
    if (absl::StatusOr<Instance*> instance = Import(id); !instance.ok()) return instance.status();
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> Environment::ApplyPolicy() {
  std::lock_guard lock(mu_);
  if (spec_.policy != Policy::kAuto) return false;
  Transaction tx;
  tx.preflight = spec_.preflight == Preflight::kAlways;
  if (absl::Status status = ApplyAuto(tx); !status.ok()) {
    Rollback(tx);
    return status;
  }
  const bool changed = !tx.initialised.empty();
  Commit(tx, {});
  return changed;
}

Instance* Environment::FindLocked(std::string_view module_id) const {
  auto it = instances_.find(module_id);
  if (it == instances_.end() || it->second->state_ != Instance::State::kReady) return nullptr;
  return it->second.get();
}

Instance* Environment::Find(std::string_view module_id) const {
  std::shared_lock lock(published_mu_);
  auto it = published_.find(module_id);
  return it == published_.end() ? nullptr : it->second;
}

std::vector<Instance*> Environment::instances() const {
  std::shared_lock lock(published_mu_);
  return init_order_;
}

std::vector<Instance*> Environment::WithImporters(std::string_view module_id) const {
  // Importers, transitively, and every module sharing a library with one of
  // them (they share its globals): iterate to a fixpoint, whatever the order.
  std::set<const Instance*> affected;
  std::set<const LoadedLibrary*> libraries;
  auto add = [&](const Instance& instance) {
    affected.insert(&instance);
    libraries.insert(&instance.library());
  };
  add(*instances_.find(module_id)->second);
  for (bool changed = true; changed;) {
    changed = false;
    for (const auto& [id, instance] : instances_) {
      if (affected.contains(instance.get())) continue;
      bool hit = libraries.contains(&instance->library());
      for (const Instance* imported : instance->imports()) hit = hit || affected.contains(imported);
      if (hit) {
        add(*instance);
        changed = true;
      }
    }
  }
  std::vector<Instance*> ordered;
  for (Instance* instance : init_order_) {
    if (affected.contains(instance)) ordered.push_back(instance);
  }
  for (const auto& [id, instance] : instances_) {
    if (affected.contains(instance.get()) && instance->state_ != Instance::State::kReady) {
      ordered.push_back(instance.get());
    }
  }
  return ordered;
}

void Environment::UnloadBundled(const std::vector<Instance*>& leaving) {
  // The bundle stays mapped and its modules' globals are shared by any later
  // instance of them, so their teardown cannot wait for requests: it runs now.
  const std::set<const Instance*> gone(leaving.begin(), leaving.end());
  {
    std::unique_lock publish(published_mu_);
    std::erase_if(init_order_, [&](const Instance* i) { return gone.contains(i); });
    for (const Instance* instance : leaving) published_.erase(instance->module_id());
  }
  for (auto it = leaving.rbegin(); it != leaving.rend(); ++it) {
    Instance& instance = **it;
    if (instance.state_ != Instance::State::kReady) continue;
    for (const Instance::Registration& r : instance.registrations_) {
      if (LoadCell(*r.slot) != r.impl) continue;
      StoreCell(*r.slot, r.slot->default_impl);
      if (listener_ != nullptr && !gone.contains(r.target)) {
        listener_->OnAccessorRevoked(*r.target, *r.slot, instance);
      }
    }
    instance.registrations_.clear();
    if (listener_ != nullptr) listener_->OnInstanceUnloading(instance);
    if (instance.descriptor().teardown != nullptr) instance.descriptor().teardown();
    instance.imports_.clear();
    instance.imports_by_id_.clear();
    instance.state_ = Instance::State::kDiscovered;
  }
}

absl::Status Environment::Unload(std::string_view module_id) {
  const std::string where = fmt::format("unload from environment '{}'", name());
  if (absl::Status valid = ValidateModuleId(module_id, where); !valid.ok()) return valid;
  std::lock_guard lock(mu_);
  ReleaseRetiredLocked();
  if (FindLocked(module_id) == nullptr) {
    return absl::NotFoundError(
        fmt::format("environment '{}' has no instance of '{}' to unload", name(), module_id));
  }
  const std::vector<Instance*> leaving = WithImporters(module_id);
  if (spec_.mode == EnvironmentMode::kBundled) {
    UnloadBundled(leaving);
    return absl::OkStatus();
  }
  Transaction tx;
  tx.preflight = spec_.preflight == Preflight::kAlways;
  for (const Instance* instance : leaving) tx.replacing.insert(instance->module_id());
  if (absl::Status status = ApplyAuto(tx); !status.ok()) {
    Rollback(tx);
    return absl::Status(status.code(),
                        fmt::format("unload of {}#{} failed, nothing was unloaded: {}", name(),
                                    module_id, std::string(status.message())));
  }
  Commit(tx, leaving);
  return absl::OkStatus();
}

absl::Status Environment::Reload(std::string_view module_id) {
  const std::string where = fmt::format("reload in environment '{}'", name());
  if (absl::Status valid = ValidateModuleId(module_id, where); !valid.ok()) return valid;
  std::lock_guard lock(mu_);
  ReleaseRetiredLocked();
  const Instance* current = FindLocked(module_id);
  if (current == nullptr) {
    return absl::NotFoundError(fmt::format(
        "environment '{}' has no instance of '{}' to reload; import it first", name(), module_id));
  }
  const std::string file = current->library().source().string();
  Transaction tx;
  tx.preflight = spec_.preflight != Preflight::kOff;
  std::vector<Instance*> retiring;
  absl::Status status;
  if (spec_.mode == EnvironmentMode::kBundled) {
    // One library holds every module: a fresh copy re-creates them all.
    retiring = init_order_;
    for (const auto& [id, instance] : instances_) {
      if (instance->state_ != Instance::State::kReady) retiring.push_back(instance.get());
    }
    for (const Instance* instance : retiring) tx.replacing.insert(instance->module_id());
    absl::StatusOr<std::shared_ptr<LoadedLibrary>> bundle = LoadBundle(tx.preflight);
    status = bundle.status();
    if (status.ok()) status = AdoptLibrary(*bundle, tx);
    if (status.ok()) tx.bundle = *std::move(bundle);
  } else {
    retiring = WithImporters(module_id);
    for (const Instance* instance : retiring) tx.replacing.insert(instance->module_id());
    // Each affected library again from its own file, so modules that shared a
    // library share the new copy too.
    std::set<const LoadedLibrary*> reloaded;
    for (const Instance* instance : retiring) {
      if (!status.ok() || !reloaded.insert(&instance->library()).second) continue;
      absl::StatusOr<std::shared_ptr<LoadedLibrary>> library =
          LoadAgain(instance->library(), instance->module_id(), tx.preflight);
      status = library.status();
      if (status.ok()) status = AdoptLibrary(*library, tx);
    }
  }
  for (const Instance* instance : retiring) {
    if (!status.ok()) break;
    if (instance->state_ != Instance::State::kReady) continue;
    std::vector<std::string> chain;
    status = Instantiate(instance->module_id(), chain, "", tx);
  }
  if (status.ok()) status = ApplyAuto(tx);
  if (!status.ok()) {
    Rollback(tx);
    return absl::Status(status.code(),
                        fmt::format("reload of {}#{} ('{}') failed; its old instances keep "
                                    "serving: {}",
                                    name(), module_id, file, std::string(status.message())));
  }
  Commit(tx, retiring);
  return absl::OkStatus();
}

std::size_t Environment::Release(std::vector<std::unique_ptr<Retired>>& list) {
  std::size_t closed = 0;
  for (const std::unique_ptr<Retired>& entry : list) {
    Retired& retired = *entry;
    if (!retired.requests_before.ended()) {
      retired.reason = "requests that started before it was retired are still running";
      continue;
    }
    if (!retired.torn_down) {
      retired.torn_down = true;
      for (auto it = retired.instances.rbegin(); it != retired.instances.rend(); ++it) {
        Instance& instance = **it;
        if (instance.state_ != Instance::State::kReady || instance.torn_down_) continue;
        instance.torn_down_ = true;
        if (instance.descriptor().teardown != nullptr) instance.descriptor().teardown();
      }
    }
    // A library closes when no instance of it holds it back.
    std::map<const LoadedLibrary*, std::pair<std::string, bool>> held;  // why, for good
    std::set<const LoadedLibrary*> libraries;
    for (const std::shared_ptr<Instance>& instance : retired.instances) {
      const LoadedLibrary* library = &instance->library();
      libraries.insert(library);
      if (retired.published && instance->state_ == Instance::State::kReady &&
          instance->descriptor().teardown == nullptr) {
        held.try_emplace(library,
                         fmt::format("module '{}' declares no teardown, so nothing says its code "
                                     "has stopped running (a thread, a timer, a callback it handed "
                                     "out); declare .teardown (modgraph::sdk::nothing_to_stop if "
                                     "it starts nothing)",
                                     instance->module_id()),
                         true);
        continue;
      }
      for (int tid : instance->init_threads_) {
        if (!ThreadAlive(tid)) continue;
        held.try_emplace(library,
                         fmt::format("thread {}, which appeared while {}'s init ran, is still "
                                     "running (its teardown must stop it)",
                                     tid, instance->name()),
                         false);
        break;
      }
    }
    std::erase_if(retired.instances, [&](const std::shared_ptr<Instance>& instance) {
      return !held.contains(&instance->library());
    });
    closed += libraries.size() - held.size();
    retired.reason = held.empty() ? "" : held.begin()->second.first;
    retired.kept_for_good = !held.empty() && held.begin()->second.second;
  }
  std::erase_if(list, [](const std::unique_ptr<Retired>& e) { return e->instances.empty(); });
  return closed;
}

std::size_t Environment::ReleaseRetiredLocked() {
  std::size_t closed = Release(retired_);
  Graveyard& graveyard = TheGraveyard();
  std::lock_guard buried(graveyard.mu);
  return closed + Release(graveyard.entries);
}

std::size_t Environment::ReleaseRetired() {
  std::lock_guard lock(mu_);
  return ReleaseRetiredLocked();
}

std::size_t Environment::retired_count() const {
  std::lock_guard lock(mu_);
  std::set<const LoadedLibrary*> libraries;
  for (const auto& entry : retired_) {
    for (const auto& instance : entry->instances) libraries.insert(&instance->library());
  }
  return libraries.size();
}

std::vector<RetiredLibrary> Environment::retired() const {
  std::lock_guard lock(mu_);
  std::vector<RetiredLibrary> out;
  std::map<const LoadedLibrary*, std::size_t> index;
  for (const auto& entry : retired_) {
    for (const auto& instance : entry->instances) {
      auto [it, fresh] = index.try_emplace(&instance->library(), out.size());
      if (fresh) {
        out.push_back({.copy = instance->library().loaded_path().string(),
                       .source = instance->library().source().string(),
                       .instances = {},
                       .reason = entry->reason.empty() ? "not released yet" : entry->reason,
                       .kept_for_good = entry->kept_for_good});
      }
      out[it->second].instances.push_back(instance->name());
    }
  }
  return out;
}

std::size_t Environment::library_count() const {
  std::lock_guard lock(mu_);
  std::set<const LoadedLibrary*> libraries;
  for (const auto& [id, instance] : instances_) libraries.insert(&instance->library());
  return libraries.size();
}

}  // namespace modgraph
