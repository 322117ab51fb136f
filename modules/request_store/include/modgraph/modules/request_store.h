// request_store.h — the `request-store` module's interface: a per-request
// key→value store for pages (per-request database clients and the like).
//
// Inside a request scope every call sees the request's own store; outside one
// each call returns a fresh empty store, so nothing leaks between callers.
#ifndef MODGRAPH_MODULES_REQUEST_STORE_H_
#define MODGRAPH_MODULES_REQUEST_STORE_H_

#include "modgraph/context/request_store.h"

namespace modgraph::modules {

struct RequestStoreApi {
  RequestStore (*store)();
};

}  // namespace modgraph::modules

#endif  // MODGRAPH_MODULES_REQUEST_STORE_H_
