// modgraph/server/page_host.h — serves page plugins from a loaded topology.
//
// A PageHost finds each page module of the topology's [server] spec in the
// environment pages render in (`ssr` in dev, the bundle in prod), and renders
// it inside the current request scope: the page coroutine sees its request at
// every resumption. The HTML document around the page comes from the
// `server-entry` module of the entry environment (`node` in dev) when present.
//
//   auto topology = Topology::Create(example::DevTopology(module_dir));
//   (*topology)->LoadEntries();
//   auto pages = PageHost::Create(**topology);
//   auto server = HttpServer::Start({}, (*pages)->MakeRouter(PageHost::YieldOnce));
//
// Reloads: the routes are fixed when the PageHost is created, but each request
// finds the page's *current* instance in its environment (and the document's
// server-entry likewise), so a reloaded page serves from its new copy at once
// and no request calls into a closed one. A request renders start to finish
// on the copy it found: the copy stays mapped while the request lives (request
// generations; without a request scope — the server's context off — the page
// host holds a generation share for the render). A page whose module is not
// loaded any more answers 503. The PageHost (and routers made from it) must not
// outlive the topology.
//
// Under the strict policy a page that reaches an unregistered slot gets a 500
// whose body is the policy's error (naming environment, module, slot and the
// provider that would fix it); the server keeps serving. So does every request
// in flight while a provider's accessor ran without a request scope (a lost
// context, sentinel.h): the body names the slot and how to carry the context.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "modgraph/environments/topology.h"
#include "modgraph/plugins/page.h"
#include "modgraph/server/http.h"
#include "modgraph/server/router.h"

namespace modgraph::server {

class PageHost {
 public:
  // What a page awaits as its "asynchronous work", chosen per request. A
  // factory that refuses a request's parameters returns InvalidArgument; the
  // request is then answered with 400 and the message, and the page is not run.
  using AsyncWork = std::function<boost::asio::awaitable<void>()>;
  using WorkFactory = std::function<absl::StatusOr<AsyncWork>(const Request&)>;

  // The longest `?delay_ms=` YieldOnce accepts: one minute (the server's own
  // read timeouts are of that order; a stop cancels a longer wait at its drain
  // deadline anyway).
  static constexpr int kMaxDelayMs = 60'000;

  // Looks up every page of `topology.spec().server` (importing it if it is not
  // loaded yet). NotFound/InvalidArgument naming the page and environment when a
  // page is missing or is not a page.
  static absl::StatusOr<std::unique_ptr<PageHost>> Create(Topology& topology);

  // Renders the page at `request.path` (404 if none) with `work` as its
  // asynchronous work. Must run inside the request's scope.
  boost::asio::awaitable<Response> Render(const Request& request, AsyncWork work) const;

  // One route per page (GET, and with it HEAD), each rendering with the work
  // `make_work` picks.
  Router MakeRouter(WorkFactory make_work) const;

  // Default work: yields to the io_context once (other requests interleave),
  // or waits `?delay_ms=N` milliseconds when the request asks. InvalidArgument
  // when N is not a whole number from 0 to kMaxDelayMs (the message names the
  // parameter, the value and the range).
  static absl::StatusOr<AsyncWork> YieldOnce(const Request& request);

  // The topology's work (what `modgraph serve` serves with): each page waits
  // `[server] work_ms` milliseconds (ServerSpec::work_ms), a simulated data
  // fetch during which other requests run; 0 yields once. `?delay_ms=N`
  // overrides it per request, as in YieldOnce.
  WorkFactory TopologyWork() const;
  int work_ms() const { return work_ms_; }

  std::vector<std::string> routes() const;
  const std::string& pages_environment() const { return pages_environment_; }

 private:
  struct Page {
    std::string route;
    std::string module_id;  // "concurrent-head"
    std::string instance;   // "ssr#concurrent-head"
  };
  PageHost() = default;
  boost::asio::awaitable<Response> RenderPage(const Page& page, const Request& request,
                                              AsyncWork work) const;

  std::vector<Page> pages_;
  std::string pages_environment_;
  int work_ms_ = 0;
  const Environment* pages_env_ = nullptr;
  const Environment* entry_env_ = nullptr;  // where the document module lives, if anywhere
  std::string document_;                    // its module id ([server] document), or empty
};

}  // namespace modgraph::server
