// Topology files and built-in topologies; see topology.h.
#include "modgraph/environments/topology.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <toml++/toml.h>

#include <fstream>
#include <set>
#include <sstream>

namespace modgraph {
namespace fs = std::filesystem;
namespace {

std::string Where(const toml::node& node, std::string_view origin) {
  const toml::source_position at = node.source().begin;
  return fmt::format("{}:{}:{}", origin, at.line, at.column);
}

absl::Status UnknownKeys(const toml::table& table, const std::set<std::string_view>& allowed,
                         std::string_view origin, std::string_view what) {
  for (const auto& [key, value] : table) {
    if (!allowed.contains(key.str())) {
      return absl::InvalidArgumentError(fmt::format("{}: unknown key '{}' in {}; allowed: {}",
                                                    Where(value, origin), key.str(), what,
                                                    fmt::join(allowed, ", ")));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> RequiredString(const toml::table& table, std::string_view key,
                                           std::string_view origin, std::string_view what) {
  const toml::node* node = table.get(key);
  if (node == nullptr) {
    return absl::InvalidArgumentError(
        fmt::format("{}: {} needs a string '{}'", Where(table, origin), what, key));
  }
  if (!node->is_string()) {
    return absl::InvalidArgumentError(
        fmt::format("{}: '{}' in {} must be a string", Where(*node, origin), key, what));
  }
  return std::string(*node->value<std::string_view>());
}

absl::StatusOr<std::vector<std::string>> StringList(const toml::table& table, std::string_view key,
                                                    std::string_view origin,
                                                    std::string_view what) {
  std::vector<std::string> out;
  const toml::node* node = table.get(key);
  if (node == nullptr) return out;
  const toml::array* array = node->as_array();
  if (array == nullptr) {
    return absl::InvalidArgumentError(
        fmt::format("{}: '{}' in {} must be an array of strings", Where(*node, origin), key, what));
  }
  for (const toml::node& item : *array) {
    if (!item.is_string()) {
      return absl::InvalidArgumentError(
          fmt::format("{}: '{}' in {} must hold only strings", Where(item, origin), key, what));
    }
    out.emplace_back(*item.value<std::string_view>());
  }
  return out;
}

fs::path Resolve(const fs::path& base_dir, std::string_view text) {
  fs::path path(text);
  return path.is_absolute() ? path : base_dir / path;
}

}  // namespace

absl::StatusOr<TopologySpec> ParseTopology(std::string_view toml_text, std::string_view origin,
                                           const fs::path& base_dir) {
  toml::table root;
  try {
    root = toml::parse(toml_text, origin);
  } catch (const toml::parse_error& error) {
    const toml::source_position at = error.source().begin;
    return absl::InvalidArgumentError(
        fmt::format("{}:{}:{}: malformed topology: {}; fix the TOML syntax", origin, at.line,
                    at.column, error.description()));
  }
  TopologySpec spec;
  spec.origin = std::string(origin);
  const std::set<std::string_view> top_keys = {"name", "environments", "policy", "deployment_id",
                                               "build_id"};
  if (absl::Status s = UnknownKeys(root, top_keys, origin, "the topology"); !s.ok()) return s;
  absl::StatusOr<std::string> name = RequiredString(root, "name", origin, "the topology");
  if (!name.ok()) return name.status();
  spec.name = *name;
  for (std::string_view key : {"policy", "deployment_id", "build_id"}) {
    if (const toml::node* node = root.get(key)) {
      if (!node->is_string()) {
        return absl::InvalidArgumentError(
            fmt::format("{}: '{}' must be a string", Where(*node, origin), key));
      }
      spec.settings.emplace(key, *node->value<std::string_view>());
    }
  }
  const toml::array* environments = root["environments"].as_array();
  if (environments == nullptr || environments->empty()) {
    return absl::InvalidArgumentError(fmt::format(
        "{}: the topology declares no environments; add at least one [[environments]]", origin));
  }
  std::set<std::string> seen;
  for (const toml::node& node : *environments) {
    const toml::table* table = node.as_table();
    if (table == nullptr) {
      return absl::InvalidArgumentError(
          fmt::format("{}: each environments entry must be a table", Where(node, origin)));
    }
    const std::set<std::string_view> env_keys = {"name", "mode", "module_roots", "bundle",
                                                 "entries"};
    if (absl::Status s = UnknownKeys(*table, env_keys, origin, "an environment"); !s.ok()) return s;
    EnvironmentSpec env;
    absl::StatusOr<std::string> env_name = RequiredString(*table, "name", origin, "an environment");
    if (!env_name.ok()) return env_name.status();
    env.name = *env_name;
    if (!seen.insert(env.name).second) {
      return absl::InvalidArgumentError(fmt::format(
          "{}: environment '{}' is declared twice; rename one", Where(*table, origin), env.name));
    }
    const std::string what = fmt::format("environment '{}'", env.name);
    const std::string mode = table->get("mode") ? table->get("mode")->value_or(std::string("?"))
                                                : std::string("isolated");
    if (mode == "isolated") {
      env.mode = EnvironmentMode::kIsolated;
    } else if (mode == "bundled") {
      env.mode = EnvironmentMode::kBundled;
    } else {
      return absl::InvalidArgumentError(
          fmt::format("{}: {} has mode '{}'; use \"isolated\" or \"bundled\"",
                      Where(*table, origin), what, mode));
    }
    absl::StatusOr<std::vector<std::string>> roots =
        StringList(*table, "module_roots", origin, what);
    if (!roots.ok()) return roots.status();
    if (roots->empty()) {
      return absl::InvalidArgumentError(
          fmt::format("{}: {} needs module_roots = [\"dir\", ...]", Where(*table, origin), what));
    }
    for (const std::string& root_dir : *roots)
      env.module_roots.push_back(Resolve(base_dir, root_dir));
    if (const toml::node* bundle = table->get("bundle")) {
      if (!bundle->is_string()) {
        return absl::InvalidArgumentError(
            fmt::format("{}: 'bundle' must be a string path", Where(*bundle, origin)));
      }
      env.bundle = Resolve(base_dir, *bundle->value<std::string_view>());
    }
    if (env.mode == EnvironmentMode::kBundled && env.bundle.empty()) {
      return absl::InvalidArgumentError(fmt::format("{}: {} is bundled and needs bundle = \"path\"",
                                                    Where(*table, origin), what));
    }
    if (env.mode == EnvironmentMode::kIsolated && !env.bundle.empty()) {
      return absl::InvalidArgumentError(
          fmt::format("{}: {} is isolated but names a bundle; set mode = \"bundled\"",
                      Where(*table, origin), what));
    }
    absl::StatusOr<std::vector<std::string>> entries = StringList(*table, "entries", origin, what);
    if (!entries.ok()) return entries.status();
    env.entry_modules = *std::move(entries);
    spec.environments.push_back(std::move(env));
  }
  return spec;
}

absl::StatusOr<TopologySpec> LoadTopologyFile(const fs::path& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::NotFoundError(
        fmt::format("cannot read topology file '{}'; check the path (or use --topology dev|prod)",
                    path.string()));
  }
  std::stringstream text;
  text << in.rdbuf();
  return ParseTopology(text.str(), path.string(), fs::absolute(path).parent_path());
}

TopologySpec DevTopology(const fs::path& module_dir) {
  TopologySpec spec;
  spec.name = "dev";
  spec.origin = "built-in";
  // The server's own graph imports the state providers; pages render in `ssr`.
  spec.environments.push_back({.name = "node",
                               .mode = EnvironmentMode::kIsolated,
                               .module_roots = {module_dir},
                               .bundle = {},
                               .entry_modules = {"head-state"}});
  spec.environments.push_back({.name = "ssr",
                               .mode = EnvironmentMode::kIsolated,
                               .module_roots = {module_dir},
                               .bundle = {},
                               .entry_modules = {"head"}});
  return spec;
}

TopologySpec ProdTopology(const fs::path& bundle) {
  TopologySpec spec;
  spec.name = "prod";
  spec.origin = "built-in";
  spec.environments.push_back({.name = "prod",
                               .mode = EnvironmentMode::kBundled,
                               .module_roots = {bundle.parent_path()},
                               .bundle = bundle,
                               .entry_modules = {"head-state", "head"}});
  return spec;
}

absl::StatusOr<std::unique_ptr<Topology>> Topology::Create(TopologySpec spec,
                                                           LibraryLoader::Options options) {
  std::unique_ptr<Topology> topology(new Topology());
  topology->loader_ = std::make_unique<LibraryLoader>(std::move(options));
  for (const EnvironmentSpec& env_spec : spec.environments) {
    absl::StatusOr<std::unique_ptr<Environment>> env =
        Environment::Create(env_spec, *topology->loader_);
    if (!env.ok()) {
      return absl::Status(env.status().code(),
                          fmt::format("topology '{}' ({}): {}", spec.name, spec.origin,
                                      std::string(env.status().message())));
    }
    topology->environments_.push_back(*std::move(env));
  }
  topology->spec_ = std::move(spec);
  return topology;
}

std::vector<absl::Status> Topology::LoadEntries() {
  std::vector<absl::Status> errors;
  for (const auto& env : environments_) {
    if (absl::Status status = env->ImportEntries(); !status.ok()) errors.push_back(status);
  }
  return errors;
}

Environment* Topology::environment(std::string_view name) const {
  for (const auto& env : environments_) {
    if (env->name() == name) return env.get();
  }
  return nullptr;
}

}  // namespace modgraph
