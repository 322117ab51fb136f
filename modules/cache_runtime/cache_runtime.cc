// The `cache-runtime` module: deployment-scoped "use cache" keys and entries.
#include "modgraph/modules/cache_runtime.h"

#include <fmt/format.h>

#include <map>
#include <mutex>
#include <stdexcept>

#include "modgraph/context/code_identity.h"
#include "modgraph/context/request_context.h"
#include "modgraph/loader/sdk.h"

#ifndef MODGRAPH_BUILD_ID
#define MODGRAPH_BUILD_ID "modgraph-dev-build"
#endif

namespace modgraph::modules {
namespace {

struct DeploymentScope {
  std::string deployment_id;
};
const StateKind<DeploymentScope> kDeployment{"deployment"};

std::string g_deployment_id;  // from the topology or $MODGRAPH_DEPLOYMENT_ID; may be empty
std::string g_build_id = MODGRAPH_BUILD_ID;

// Entries are shared across requests on purpose — that is what a cache is; the
// key keeps deployments apart.
std::mutex g_mutex;
std::map<std::string, std::string, std::less<>> g_entries;

std::string KeySeed() {
  if (const DeploymentScope* scope = kDeployment.get(); scope && !scope->deployment_id.empty()) {
    return scope->deployment_id;
  }
  return g_deployment_id.empty() ? g_build_id : g_deployment_id;
}

std::string CacheKey(std::string_view function_id, std::string_view args) {
  // Length-prefixed parts: no seed/function/args split can collide with another.
  const std::string seed = KeySeed();
  return fmt::format("{}:{}|{}:{}|{}", seed.size(), seed, function_id.size(), function_id, args);
}

std::string UseCache(std::string_view function_id, std::string_view args,
                     std::string (*compute)(std::string_view)) {
  // The build of the code that fills the entry is part of its key: a reloaded,
  // edited module never gets the old build's results, and the same build (a
  // restart, every machine running one bundle) finds its own again.
  const std::string code = CodeIdentityOf(reinterpret_cast<const void*>(compute));
  const std::string key = fmt::format("{}:{}|{}", code.size(), code, CacheKey(function_id, args));
  {
    std::lock_guard lock(g_mutex);
    if (auto it = g_entries.find(key); it != g_entries.end()) return it->second;
  }
  std::string value = compute(args);
  std::lock_guard lock(g_mutex);
  return g_entries.try_emplace(key, std::move(value)).first->second;
}

bool SetRequestDeploymentId(std::string_view id) {
  DeploymentScope* scope = kDeployment.get();
  if (scope == nullptr || !DeploymentIdProblem(id).empty()) return false;
  scope->deployment_id = id;
  return true;
}

std::size_t EntryCount() {
  std::lock_guard lock(g_mutex);
  return g_entries.size();
}

void Init(sdk::ModuleContext& context) {
  if (const char* build = context.setting("build_id"); build != nullptr && *build != '\0') {
    g_build_id = build;
  }
  const char* id = context.setting("deployment_id");
  if (id == nullptr) return;
  if (std::string problem = DeploymentIdProblem(id); !problem.empty()) {
    const char* source = context.setting("deployment_id_source");
    throw std::invalid_argument(fmt::format(
        "invalid deployment id '{}' (from {}): it {}; fix it or unset it to key the cache by the "
        "build id",
        id, source != nullptr ? source : "the topology", problem));
  }
  g_deployment_id = id;
}

const CacheRuntimeApi kApi{&KeySeed, &CacheKey, &UseCache, &SetRequestDeploymentId, &EntryCount};
const modgraph_shared_state_decl kShared[] = {
    MODGRAPH_SHARED_STATE(g_entries,
                          "the cache itself: results computed for one request serve the next; "
                          "keys carry the deployment id and the arguments"),
    MODGRAPH_SHARED_STATE(g_mutex, "guards g_entries")};

}  // namespace
}  // namespace modgraph::modules

MODGRAPH_MODULE(cache_runtime, {.id = "cache-runtime",
                                .api = &modgraph::modules::kApi,
                                .init = &modgraph::modules::Init,
                                .teardown = &::modgraph::sdk::nothing_to_stop,
                                .shared_state = modgraph::modules::kShared});
