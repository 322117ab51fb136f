// cache_runtime.h — the `cache-runtime` module's interface: "use cache" entries
// whose keys are scoped by deployment, so two deployments never share an entry.
//
// The key seed, first that applies:
//   1. the request's deployment id (set_request_deployment_id, per request);
//   2. the topology's deployment_id, else $MODGRAPH_DEPLOYMENT_ID;
//   3. the build id (the topology's build_id, else the module's build stamp).
// Deployment ids are validated: 1–64 characters of [A-Za-z0-9._-]. An invalid
// one fails the module's init with an error naming where it came from.
//
// Entries also carry the identity of the code that fills them: the SHA-256 of
// the module library that `compute` belongs to (modgraph/context/code_identity.h).
// After an edited page is rebuilt and reloaded its function has a new identity,
// so the old build's results are never served for it; the same build — after a
// restart, or the prod bundle anywhere — keys its entries the same way.
#ifndef MODGRAPH_MODULES_CACHE_RUNTIME_H_
#define MODGRAPH_MODULES_CACHE_RUNTIME_H_

#include <cstddef>
#include <string>
#include <string_view>

namespace modgraph::modules {

struct CacheRuntimeApi {
  // The seed in effect for the current request (see above).
  std::string (*key_seed)();
  // The deployment-scoped part of the key of `function_id` called with `args`
  // (use_cache adds the identity of the code that computes it).
  std::string (*cache_key)(std::string_view function_id, std::string_view args);
  // Returns the value `compute(args)` cached for this deployment and this build
  // of `compute`'s module, computing it on a miss.
  std::string (*use_cache)(std::string_view function_id, std::string_view args,
                           std::string (*compute)(std::string_view args));
  // Sets the deployment id of the current request; false (and unchanged) if it
  // is invalid or there is no request scope.
  bool (*set_request_deployment_id)(std::string_view deployment_id);
  std::size_t (*entry_count)();
};

// Why `id` is not a valid deployment id, or "" if it is.
inline std::string DeploymentIdProblem(std::string_view id) {
  if (id.empty() || id.size() > 64) return "must be 1 to 64 characters long";
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) return "may only contain letters, digits, '.', '_' and '-'";
  }
  return "";
}

}  // namespace modgraph::modules

#endif  // MODGRAPH_MODULES_CACHE_RUNTIME_H_
