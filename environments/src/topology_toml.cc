// Topology files: TOML text to a TopologySpec, every error naming
// file:line:column and the fix; see topology.h for the format.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <toml++/toml.h>

#include <cstdint>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>

#include "modgraph/environments/topology.h"
#include "modgraph/loader/module_id.h"

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

// A list of module ids: each checked against the id grammar, and the error
// points at the offending item.
absl::StatusOr<std::vector<std::string>> ModuleIdList(const toml::table& table,
                                                      std::string_view key, std::string_view origin,
                                                      std::string_view what) {
  absl::StatusOr<std::vector<std::string>> ids = StringList(table, key, origin, what);
  if (!ids.ok()) return ids;
  const toml::array* items = table.get(key) != nullptr ? table.get(key)->as_array() : nullptr;
  for (std::size_t i = 0; i < ids->size(); ++i) {
    const std::string where =
        fmt::format("{}, '{}' in {}", Where(*items->get(i), origin), key, what);
    if (absl::Status valid = ValidateModuleId((*ids)[i], where); !valid.ok()) return valid;
  }
  return ids;
}

absl::StatusOr<std::optional<Policy>> PolicyOf(const toml::table& table, std::string_view origin,
                                               std::string_view what) {
  const toml::node* node = table.get("policy");
  if (node == nullptr) return std::optional<Policy>();
  std::optional<Policy> policy;
  if (node->is_string()) policy = ParsePolicy(*node->value<std::string_view>());
  if (!policy) {
    return absl::InvalidArgumentError(fmt::format(
        "{}: 'policy' in {} must be \"warn\", \"strict\" or \"auto\"", Where(*node, origin), what));
  }
  return policy;
}

absl::StatusOr<std::optional<Preflight>> PreflightOf(const toml::table& table,
                                                     std::string_view origin,
                                                     std::string_view what) {
  const toml::node* node = table.get("preflight");
  if (node == nullptr) return std::optional<Preflight>();
  const std::optional<std::string_view> text = node->value<std::string_view>();
  for (Preflight preflight : {Preflight::kOff, Preflight::kReloads, Preflight::kAlways}) {
    if (text == ToString(preflight)) return std::optional<Preflight>(preflight);
  }
  return absl::InvalidArgumentError(
      fmt::format("{}: 'preflight' in {} must be \"off\", \"reloads\" or \"always\"",
                  Where(*node, origin), what));
}

// A value as an error message shows it: numbers as written, strings quoted.
std::string Describe(const toml::node& node) {
  if (const auto* integer = node.as_integer()) return fmt::format("{}", integer->get());
  if (const auto* number = node.as_floating_point()) return fmt::format("{}", number->get());
  if (const auto* text = node.as_string()) return fmt::format("\"{}\"", text->get());
  return "a value that is not a number";
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
  const std::set<std::string_view> top_keys = {"name",          "environments", "policy",
                                               "deployment_id", "build_id",     "providers",
                                               "server",        "preflight"};
  if (absl::Status s = UnknownKeys(root, top_keys, origin, "the topology"); !s.ok()) return s;
  absl::StatusOr<std::string> name = RequiredString(root, "name", origin, "the topology");
  if (!name.ok()) return name.status();
  spec.name = *name;
  Policy policy = Policy::kWarn;
  if (absl::StatusOr<std::optional<Policy>> parsed = PolicyOf(root, origin, "the topology");
      !parsed.ok()) {
    return parsed.status();
  } else if (parsed->has_value()) {
    policy = **parsed;
  }
  Preflight preflight = Preflight::kAlways;
  if (absl::StatusOr<std::optional<Preflight>> parsed = PreflightOf(root, origin, "the topology");
      !parsed.ok()) {
    return parsed.status();
  } else if (parsed->has_value()) {
    preflight = **parsed;
  }
  if (const toml::node* providers = root.get("providers")) {
    const toml::table* table = providers->as_table();
    if (table == nullptr) {
      return absl::InvalidArgumentError(
          fmt::format("{}: 'providers' must be a table: [providers] target = [\"provider\", ...]",
                      Where(*providers, origin)));
    }
    for (const auto& [target, node] : *table) {
      const std::string where = fmt::format("{}, a key of [providers]", Where(node, origin));
      if (absl::Status valid = ValidateModuleId(target.str(), where); !valid.ok()) return valid;
      absl::StatusOr<std::vector<std::string>> list =
          ModuleIdList(*table, target.str(), origin, "[providers]");
      if (!list.ok()) return list.status();
      spec.providers[std::string(target.str())] = *std::move(list);
    }
  }
  if (const toml::node* server = root.get("server")) {
    const toml::table* table = server->as_table();
    if (table == nullptr) {
      return absl::InvalidArgumentError(
          fmt::format("{}: 'server' must be a table: [server]", Where(*server, origin)));
    }
    const std::set<std::string_view> server_keys = {"pages_environment", "entry_environment",
                                                    "document", "pages", "work_ms"};
    if (absl::Status s = UnknownKeys(*table, server_keys, origin, "[server]"); !s.ok()) return s;
    for (auto [key, field] : {std::pair{"pages_environment", &spec.server.pages_environment},
                              std::pair{"entry_environment", &spec.server.entry_environment}}) {
      if (table->get(key) == nullptr) continue;
      absl::StatusOr<std::string> value = RequiredString(*table, key, origin, "[server]");
      if (!value.ok()) return value.status();
      *field = *value;
    }
    if (const toml::node* document = table->get("document")) {
      absl::StatusOr<std::string> id = RequiredString(*table, "document", origin, "[server]");
      if (!id.ok()) return id.status();
      const std::string where = fmt::format("{}, 'document' in [server]", Where(*document, origin));
      if (absl::Status valid = ValidateModuleId(*id, where); !valid.ok()) return valid;
      spec.server.document = *std::move(id);
    }
    absl::StatusOr<std::vector<std::string>> pages =
        ModuleIdList(*table, "pages", origin, "[server]");
    if (!pages.ok()) return pages.status();
    spec.server.pages = *std::move(pages);
    if (const toml::node* work = table->get("work_ms")) {
      const std::optional<std::int64_t> ms =
          work->as_integer() != nullptr ? std::optional(work->as_integer()->get()) : std::nullopt;
      if (!ms || *ms < 0 || *ms > ServerSpec::kMaxWorkMs) {
        return absl::InvalidArgumentError(fmt::format(
            "{}: 'work_ms' in [server] is the latency of each page's simulated data fetch and "
            "must be a whole number of milliseconds from 0 to {}; got {}; set e.g. work_ms = {} "
            "(0 for benchmarks)",
            Where(*work, origin), ServerSpec::kMaxWorkMs, Describe(*work),
            ServerSpec::kDefaultWorkMs));
      }
      spec.server.work_ms = static_cast<int>(*ms);
    }
  }
  for (std::string_view key : {"deployment_id", "build_id"}) {
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
    const std::set<std::string_view> env_keys = {"name",    "mode",   "module_roots", "bundle",
                                                 "entries", "policy", "preflight"};
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
    absl::StatusOr<std::vector<std::string>> entries =
        ModuleIdList(*table, "entries", origin, what);
    if (!entries.ok()) return entries.status();
    env.entry_modules = *std::move(entries);
    absl::StatusOr<std::optional<Policy>> env_policy = PolicyOf(*table, origin, what);
    if (!env_policy.ok()) return env_policy.status();
    env.policy = env_policy->value_or(policy);
    absl::StatusOr<std::optional<Preflight>> env_preflight = PreflightOf(*table, origin, what);
    if (!env_preflight.ok()) return env_preflight.status();
    env.preflight = env_preflight->value_or(preflight);
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

}  // namespace modgraph
