// The `request-store` module: hands pages the request's store. The store lives
// in the unified request context (modgraph_core), so every instance of this
// module, in every environment, sees the same store for the same request.
#include "modgraph/modules/request_store.h"

#include "modgraph/loader/sdk.h"
#include "modgraph/registry/provider.h"

namespace modgraph::modules {
namespace {
// Outside a request the store is a fresh empty one: what work that lost its
// request's context writes there vanishes, so that is reported.
RequestStore Store() {
  static constexpr char kThisCopy = 0;  // names this module copy in the report
  check_request_scope(&kThisCopy, "request-store", "store");
  return request_store();
}
const RequestStoreApi kApi{&Store};
}  // namespace
}  // namespace modgraph::modules

MODGRAPH_MODULE(request_store, {.id = "request-store",
                                .api = &modgraph::modules::kApi,
                                .teardown = &::modgraph::sdk::nothing_to_stop});
