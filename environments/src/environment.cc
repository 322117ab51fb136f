// Environments: loading libraries, import resolution, init and the
// transaction that publishes them. Reload and unload are in reload.cc,
// retirement in retirement.cc, the callbacks modules call during init in
// host_callbacks.cc, commit and rollback in transaction.cc. Over 400 lines:
// loading, discovery, preflight and init are one sequence with one lock
// discipline, easier to check read together. See environment.h and
// docs/loader.md.
#include "modgraph/environments/environment.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdlib>
#include <optional>
#include <set>
#include <system_error>
#include <tuple>

#include "environment_internal.h"
#include "modgraph/context/code_identity.h"
#include "modgraph/context/internal/code_identity.h"
#include "modgraph/context/registrations.h"
#include "modgraph/context/request_context.h"
#include "modgraph/loader/module_id.h"
#include "modgraph/loader/preflight.h"

namespace modgraph {
namespace fs = std::filesystem;
using environments_internal::HostApi;
using environments_internal::LoadCell;
using environments_internal::StoreCell;
using environments_internal::ThreadAlive;
using environments_internal::ThreadIds;

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
    context_internal::RecordCodeIdentity(base, library->content_sha256());
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

namespace {

std::atomic<std::uint64_t> g_next_published_version{1};

std::uint64_t NextPublishedVersion() {
  return g_next_published_version.fetch_add(1, std::memory_order_relaxed);
}

// This thread's last few Find() results, each valid while its environment's
// published_version_ is the one it was found at.
struct FoundInstance {
  const Environment* environment = nullptr;
  std::uint64_t version = 0;
  std::string module_id;
  Instance* instance = nullptr;
};
constexpr std::size_t kFoundPerThread = 8;
thread_local std::array<FoundInstance, kFoundPerThread> t_found;
thread_local std::size_t t_found_next = 0;

}  // namespace

Environment::Environment(EnvironmentSpec spec, LibraryLoader& loader)
    : spec_(std::move(spec)), loader_(loader), published_version_(NextPublishedVersion()) {}

void Environment::PublishedChangedLocked() {
  published_version_.store(NextPublishedVersion(), std::memory_order_release);
}

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
  // The name goes into instance names (`ssr#head`), copy file names and every
  // report line: printable, short, no separators.
  const bool valid_name = !spec.name.empty() && spec.name.size() <= 64 &&
                          std::all_of(spec.name.begin(), spec.name.end(), [](char c) {
                            return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                                   (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
                          });
  if (!valid_name) {
    std::string shown = spec.name.substr(0, 64);
    for (char& c : shown) {
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
    }
    // Name the first character that is not allowed, when it is printable.
    std::string why = spec.name.empty()       ? " (empty)"
                      : spec.name.size() > 64 ? fmt::format(" ({} bytes)", spec.name.size())
                                              : "";
    for (char c : spec.name) {
      const bool allowed = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                           (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
      if (allowed) continue;
      if (static_cast<unsigned char>(c) >= 0x20 && c != 0x7f) {
        why = fmt::format(" ('{}' is not allowed)", c);
      } else {
        why = " (a control character is not allowed)";
      }
      break;
    }
    return absl::InvalidArgumentError(fmt::format(
        "environment name '{}'{} is not valid: use 1 to 64 letters, digits, '-', '_' or '.' "
        "(it names instances, e.g. 'ssr#head', and copy files); rename it",
        shown, why));
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
  const modgraph_init_args args{&host, &HostApi(), name().c_str(), instance.name().c_str()};
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
  // Unchanged since a lookup this thread made: the same answer, without the
  // shared lock's two atomic writes to a line every io thread writes.
  const std::uint64_t version = published_version_.load(std::memory_order_acquire);
  for (const FoundInstance& found : t_found) {
    if (found.environment == this && found.version == version && found.module_id == module_id) {
      return found.instance;
    }
  }
  std::shared_lock lock(published_mu_);
  auto it = published_.find(module_id);
  Instance* instance = it == published_.end() ? nullptr : it->second;
  FoundInstance& slot = t_found[t_found_next++ % kFoundPerThread];
  slot.environment = this;
  slot.version = published_version_.load(std::memory_order_relaxed);  // exact under the lock
  slot.module_id.assign(module_id);
  slot.instance = instance;
  return instance;
}

std::vector<Instance*> Environment::instances() const {
  std::shared_lock lock(published_mu_);
  return init_order_;
}

}  // namespace modgraph
