// A page host's pages as HTTP routes; see page_routes.h.
#include "modgraph/server/page_routes.h"

#include <fmt/format.h>

#include <string>
#include <utility>

#include "modgraph/pages/async_work.h"

namespace modgraph::server {
namespace {

boost::asio::awaitable<Response> Refuse(absl::Status status) { co_return RefusedWork(status); }

}  // namespace

Router MakePageRouter(const pages::PageHost& host, WorkFactory make_work) {
  Router router;
  for (const pages::PageHost::Page& page : host.pages()) {
    // The router has found the page: render it without looking it up again.
    // A duplicate route would be a topology mistake already visible in routes().
    (void)router.Add(
        page.route,
        [&host, &page, make_work](const Request& request) -> boost::asio::awaitable<Response> {
          absl::StatusOr<pages::AsyncWork> work = make_work(request);
          if (!work.ok()) return Refuse(work.status());
          return host.Render<Response>(page, ToPageRequest(request, *std::move(work)));
        });
  }
  return router;
}

pages::PageRequest ToPageRequest(const Request& request, pages::AsyncWork work) {
  return pages::PageRequest{.path = request.path,
                            .query = request.query,
                            .request_id = request.id,
                            .async_work = std::move(work)};
}

Response RefusedWork(const absl::Status& status) {
  return Response{.status = 400,
                  .content_type = "text/plain; charset=utf-8",
                  .body = fmt::format("400 bad request: {}\n", std::string(status.message()))};
}

absl::StatusOr<pages::AsyncWork> YieldOnce(const Request& request) {
  return pages::YieldOnce(request.query);
}

WorkFactory TopologyWork(const pages::PageHost& host) {
  return [work_ms = host.work_ms()](const Request& request) {
    return pages::TopologyWork(request.query, work_ms);
  };
}

}  // namespace modgraph::server
