// modgraph/pages/async_work.h — the asynchronous work a page awaits while it
// renders (PageRequest::async_work), made from a request's query parameters.
//
// A real page fetches data mid-render; the example pages stand in for that by
// awaiting the work the host's caller hands them. While one request waits,
// others run on the same io_context thread — the interleaving that exposes
// module-level state shared between requests.
//
//   absl::StatusOr<pages::AsyncWork> work = pages::TopologyWork(query, spec.server.work_ms);
//   if (!work.ok()) return work.status();   // ?delay_ms= out of range: InvalidArgument
//   co_await host.Render(pages::PageRequest{.path = "/concurrent-head",
//                                           .query = std::move(query),
//                                           .async_work = *std::move(work)});
//
// The server layer adapts these to HTTP requests (its page_routes.h).
#pragma once

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "modgraph/pages/page.h"

namespace modgraph::pages {

// The longest `?delay_ms=` accepted: one minute (the HTTP server's own read
// timeouts are of that order; a stop cancels a longer wait at its drain
// deadline anyway).
inline constexpr int kMaxDelayMs = 60'000;

// Waits `?delay_ms=N` milliseconds of `query` when it asks, else `work_ms`
// (the topology's `[server] work_ms`, ServerSpec::work_ms): a steady_timer on
// the awaiting coroutine's executor, during which other requests run. 0 yields
// once: one hop through that executor. InvalidArgument when N is not a whole
// number from 0 to kMaxDelayMs (the message names the parameter, the value —
// cut at 40 characters — and the range).
absl::StatusOr<AsyncWork> TopologyWork(const std::map<std::string, std::string>& query,
                                       int work_ms);

// TopologyWork with no latency of its own: yields once, or waits `?delay_ms=N`.
inline absl::StatusOr<AsyncWork> YieldOnce(const std::map<std::string, std::string>& query) {
  return TopologyWork(query, 0);
}

}  // namespace modgraph::pages
