// modgraph/server/page_routes.h — a page host's pages as HTTP routes: the
// adapter between the server's Request/Response and the page layer
// (modgraph/pages/page_host.h), which knows no HTTP.
//
// Each route renders its page with the asynchronous work a WorkFactory picks
// for the request (pages/async_work.h; a refusal is answered 400 and the page
// is not run):
//
//   auto host = pages::PageHost::Create(*topology);
//   auto server = HttpServer::Start({}, MakePageRouter(**host, TopologyWork(**host)));
//   // or, every request parking until 15 arrived:
//   auto barrier = std::make_shared<ArrivalBarrier>(15);
//   Router router = MakePageRouter(**host, [barrier](const Request&) { return barrier->Work(); });
#pragma once

#include <functional>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "modgraph/pages/page_host.h"
#include "modgraph/server/http.h"
#include "modgraph/server/router.h"

namespace modgraph::server {

// What a page awaits as its "asynchronous work", chosen per request. A
// factory that refuses a request's parameters returns InvalidArgument; the
// request is then answered with 400 and the message, and the page is not run.
using WorkFactory = std::function<absl::StatusOr<pages::AsyncWork>(const Request&)>;

// One route per page of `host` (GET, and with it HEAD), each rendering its page
// with the work `make_work` picks. `host` must outlive the router.
Router MakePageRouter(const pages::PageHost& host, WorkFactory make_work);

// The page request for `request` (path, query and id copied: the server owns
// `request`) with `work` as its asynchronous work.
pages::PageRequest ToPageRequest(const Request& request, pages::AsyncWork work);

// The answer to a request whose work a factory refused: 400, plain text
// "400 bad request: <message>\n".
Response RefusedWork(const absl::Status& status);

// Work factories. YieldOnce: yield to the io_context once (other requests
// interleave), or wait `?delay_ms=N` when the request asks (pages::YieldOnce).
// TopologyWork: wait the topology's `[server] work_ms` (PageHost::work_ms()),
// or `?delay_ms=N` (pages::TopologyWork) — what `modgraph serve` serves with.
// Both refuse an N that is not a whole number from 0 to pages::kMaxDelayMs.
absl::StatusOr<pages::AsyncWork> YieldOnce(const Request& request);
WorkFactory TopologyWork(const pages::PageHost& host);

}  // namespace modgraph::server
