// Loaded topologies: their environments, the registry feed and the auto
// policy across environments; see topology.h. Topology files are read in
// topology_toml.cc.
#include "modgraph/environments/topology.h"

#include <fmt/format.h>

#include <cstdlib>
#include <set>

#include "modgraph/loader/module_id.h"

namespace modgraph {
namespace fs = std::filesystem;

void OverridePolicy(TopologySpec& spec, Policy policy) {
  for (EnvironmentSpec& env : spec.environments) env.policy = policy;
}

void OverridePreflight(TopologySpec& spec, Preflight preflight) {
  for (EnvironmentSpec& env : spec.environments) env.preflight = preflight;
}

// Feeds environment life-cycle events into the registry, with each
// environment's policy.
class Topology::RegistryFeed final : public InstanceListener, public ProviderCatalog {
 public:
  explicit RegistryFeed(Topology& topology) : topology_(topology) {}

  std::vector<std::string> ProvidersFor(std::string_view module_id) const override {
    return topology_.registry_->ProvidersFor(module_id);
  }

  void OnInstanceReady(const Instance& instance) override {
    InstanceRecord record{.environment = instance.environment(),
                          .module = instance.module_id(),
                          .instance = instance.name(),
                          .library = instance.library().loaded_path().string(),
                          .policy = topology_.environment(instance.environment())->spec().policy};
    for (const Instance* imported : instance.imports()) record.imports.push_back(imported->name());
    const modgraph_module_descriptor& d = instance.descriptor();
    record.provides_for.assign(d.provides_for, d.provides_for + d.provides_count);
    if (MODGRAPH_DESCRIPTOR_HAS(&d, shared_state_count)) {
      for (uint32_t i = 0; i < d.shared_state_count; ++i) {
        const modgraph_shared_state_decl& shared = d.shared_state[i];
        record.shared_state.push_back({.name = shared.name != nullptr ? shared.name : "",
                                       .size = shared.size,
                                       .reason = shared.reason != nullptr ? shared.reason : ""});
      }
    }
    topology_.registry_->AddInstance(std::move(record), {d.slots, d.slot_count});
  }
  void OnAccessorRegistered(const Instance& target, const modgraph_slot_decl& slot,
                            const Instance& provider) override {
    topology_.registry_->MarkRegistered(target.name(), slot.name, provider.name(),
                                        provider.library().loaded_path().string());
  }
  void OnAccessorRevoked(const Instance& target, const modgraph_slot_decl& slot,
                         const Instance&) override {
    topology_.registry_->MarkUnregistered(target.name(), slot.name);
  }
  void OnInstanceUnloading(const Instance& instance) override {
    topology_.registry_->RemoveInstance(instance.name());
  }

 private:
  Topology& topology_;
};

// Members go in reverse order: the environments (which report their unloads to
// the registry) before the registry and the loader.
Topology::~Topology() = default;

absl::StatusOr<LoadedTopology> Topology::Load(TopologySpec spec, const LoadOptions& options) {
  if (options.policy) OverridePolicy(spec, *options.policy);
  if (options.preflight) OverridePreflight(spec, *options.preflight);
  absl::StatusOr<std::unique_ptr<Topology>> topology = Create(std::move(spec), options.loader);
  if (!topology.ok()) return topology.status();
  if (options.before_entries) options.before_entries(**topology);
  LoadedTopology loaded{.topology = *std::move(topology), .errors = {}};
  loaded.errors = loaded.topology->LoadEntries();
  return loaded;
}

absl::StatusOr<std::unique_ptr<Topology>> Topology::Create(TopologySpec spec,
                                                           LibraryLoader::Options options) {
  std::unique_ptr<Topology> topology(new Topology());
  topology->loader_ = std::make_unique<LibraryLoader>(std::move(options));
  topology->registry_ = std::make_unique<Registry>();
  topology->feed_ = std::make_unique<RegistryFeed>(*topology);
  for (const auto& [target, providers] : spec.providers) {
    const std::string where =
        fmt::format("[providers] of topology '{}' ({})", spec.name, spec.origin);
    if (absl::Status valid = ValidateModuleId(target, where); !valid.ok()) return valid;
    for (const std::string& provider : providers) {
      if (absl::Status valid = ValidateModuleId(provider, where); !valid.ok()) return valid;
      topology->registry_->DeclareProvider(provider, target,
                                           fmt::format("[providers] of {}", spec.origin));
    }
  }
  // The deployment id comes from the topology, else the environment variable.
  if (!spec.settings.contains("deployment_id")) {
    if (const char* id = std::getenv("MODGRAPH_DEPLOYMENT_ID"); id != nullptr) {
      spec.settings["deployment_id"] = id;
      spec.settings["deployment_id_source"] = "MODGRAPH_DEPLOYMENT_ID";
    }
  } else if (!spec.settings.contains("deployment_id_source")) {
    spec.settings["deployment_id_source"] = fmt::format("deployment_id in {}", spec.origin);
  }
  for (EnvironmentSpec& env_spec : spec.environments) {
    for (const auto& [key, value] : spec.settings) env_spec.settings.try_emplace(key, value);
  }
  for (const EnvironmentSpec& env_spec : spec.environments) {
    absl::StatusOr<std::unique_ptr<Environment>> env =
        Environment::Create(env_spec, *topology->loader_);
    if (!env.ok()) {
      return absl::Status(env.status().code(),
                          fmt::format("topology '{}' ({}): {}", spec.name, spec.origin,
                                      std::string(env.status().message())));
    }
    (*env)->set_listener(topology->feed_.get());
    (*env)->set_provider_catalog(topology->feed_.get());
    topology->environments_.push_back(*std::move(env));
  }
  topology->spec_ = std::move(spec);
  return topology;
}

std::vector<absl::Status> Topology::LoadEntries() {
  // Each module file is read and checked once, not once per environment.
  const LibraryLoader::Batch batch(*loader_);
  std::vector<absl::Status> errors;
  for (const auto& env : environments_) {
    if (absl::Status status = env->ImportEntries(); !status.ok()) errors.push_back(status);
  }
  std::vector<absl::Status> auto_errors = ApplyAutoPolicy();
  errors.insert(errors.end(), auto_errors.begin(), auto_errors.end());
  return errors;
}

std::vector<absl::Status> Topology::ApplyAutoPolicy() {
  // Each environment applies auto to what it loads; this pass adds what other
  // environments taught the catalog since (a provider declared by a descriptor
  // loaded elsewhere), until nothing changes.
  std::vector<absl::Status> errors;
  std::set<std::string> failed;  // environments that failed once: do not retry forever
  for (bool changed = true; changed;) {
    changed = false;
    for (const auto& env : environments_) {
      if (env->spec().policy != Policy::kAuto || failed.contains(env->name())) continue;
      absl::StatusOr<bool> applied = env->ApplyPolicy();
      if (!applied.ok()) {
        failed.insert(env->name());
        errors.push_back(applied.status());
      } else if (*applied) {
        changed = true;
      }
    }
  }
  return errors;
}

absl::Status Topology::Reload(std::string_view environment_name, std::string_view module_id) {
  Environment* env = environment(environment_name);
  if (env == nullptr) {
    return absl::NotFoundError(
        fmt::format("topology '{}' has no environment '{}'", spec_.name, environment_name));
  }
  if (absl::Status reloaded = env->Reload(module_id); !reloaded.ok()) return reloaded;
  std::vector<absl::Status> errors = ApplyAutoPolicy();
  return errors.empty() ? absl::OkStatus() : errors.front();
}

CapacityPlan Topology::PlanCapacity() const {
  // Measured: a module copy adds 5 mappings (its PT_LOAD segments and one more).
  constexpr std::uint64_t kMappingsPerCopy = 5;
  CapacityPlan plan;
  const auto add = [&](const fs::path& file) {
    std::error_code ec;
    const std::uintmax_t size = fs::file_size(file, ec);
    if (ec) return;
    ++plan.copies;
    plan.bytes += size;
    plan.mappings += kMappingsPerCopy;
  };
  for (const auto& env : environments_) {
    const EnvironmentSpec& spec = env->spec();
    if (spec.mode == EnvironmentMode::kBundled) {
      add(spec.bundle);
      continue;
    }
    for (const fs::path& root : spec.module_roots) {
      std::error_code ec;
      for (const auto& entry : fs::directory_iterator(root, ec)) {
        if (entry.path().extension() == ".so" && entry.is_regular_file(ec)) add(entry.path());
      }
    }
  }
  return plan;
}

std::vector<std::string> Topology::CapacityWarnings() const {
  return modgraph::CapacityWarnings(PlanCapacity(), loader_->ReadCapacity());
}

Environment* Topology::environment(std::string_view name) const {
  for (const auto& env : environments_) {
    if (env->name() == name) return env.get();
  }
  return nullptr;
}

}  // namespace modgraph
