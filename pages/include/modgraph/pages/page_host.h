// modgraph/pages/page_host.h — renders the page modules of a loaded topology.
//
// A PageHost finds each page module of the topology's [server] spec in the
// environment pages render in (`ssr` in dev, the bundle in prod), and renders
// it inside the current request scope: the page coroutine sees its request at
// every resumption. The HTML document around the page comes from the
// topology's `[server] document` module (a DocumentApi, page.h) in the entry
// environment when it names one, else a plain HTML document. The page host
// knows no HTTP: the server layer turns it into routes (its page_routes.h), the
// test kit renders through it directly.
//
//   auto topology = Topology::Create(example::DevTopology(module_dir));
//   (*topology)->LoadEntries();
//   auto host = pages::PageHost::Create(**topology);
//   pages::RenderedPage page = co_await (*host)->Render(pages::PageRequest{
//       .path = "/concurrent-head", .query = {{"id", "7"}}, .request_id = current_request_id(),
//       .async_work = *pages::YieldOnce({})});
//
// Reloads: the routes are fixed when the PageHost is created, but each request
// finds the page's *current* instance in its environment (and the document
// module's likewise), so a reloaded page serves from its new copy at once and
// no request calls into a closed one. A request renders start to finish on the
// copy it found: the copy stays mapped while the request lives (request
// generations; without a request scope — the server's context off — the page
// host holds a generation share for the render). A page whose module is not
// loaded any more answers 503. The PageHost (and anything rendering through
// it) must not outlive the topology.
//
// Under the strict policy a page that reaches an unregistered slot gets a 500
// whose body is the policy's error (naming environment, module, slot and the
// provider that would fix it); other requests keep rendering. So does every
// request in flight while a provider's accessor ran without a request scope (a
// lost context, sentinel.h): the body names the slot and how to carry the
// context.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "modgraph/environments/topology.h"
#include "modgraph/pages/page.h"
#include "modgraph/registry/sentinel.h"

namespace modgraph::pages {

// What the page host answers for one request. `body` is the whole document
// (or, for a status other than the page's own, a line of plain text saying
// why: 404 no such page, 503 its module is not loaded, 500 strict policy or a
// lost context).
struct RenderedPage {
  int status = 200;
  std::string content_type = "text/html; charset=utf-8";
  std::string body;
};

class PageHost {
 public:
  // One page of the topology.
  struct Page {
    std::string route;      // "/concurrent-head"
    std::string module_id;  // "concurrent-head"
    std::string instance;   // "ssr#concurrent-head"
  };

  // Looks up every page of `topology.spec().server` (importing it if it is not
  // loaded yet), and the document module. NotFound/InvalidArgument naming the
  // page (or document module) and environment when one is missing or exports
  // no PageApi (DocumentApi).
  static absl::StatusOr<std::unique_ptr<PageHost>> Create(Topology& topology);

  // Renders the page at `request.path` (404 if none). Must run inside the
  // request's scope. `Response` is the caller's response type: RenderedPage,
  // or an aggregate whose first members are `status`, `content_type` and
  // `body` in that order (server::Response) — built in the render coroutine
  // itself, so a caller needs no coroutine of its own to convert.
  template <class Response = RenderedPage>
  boost::asio::awaitable<Response> Render(PageRequest request) const;

  // Renders `page` (an element of pages()) without looking it up: for a
  // router that has matched the route already.
  template <class Response = RenderedPage>
  boost::asio::awaitable<Response> Render(const Page& page, PageRequest request) const;

  const std::vector<Page>& pages() const { return pages_; }
  std::vector<std::string> routes() const;
  const std::string& pages_environment() const { return pages_environment_; }
  // The topology's `[server] work_ms` (ServerSpec::work_ms; async_work.h).
  int work_ms() const { return work_ms_; }

 private:
  // One render in progress: what keeps its copies mapped and the page it runs.
  struct Rendering {
    std::shared_ptr<const void> hold;  // a generation share outside a request scope
    const PageApi* api = nullptr;      // null: the page's module is not loaded (503)
    std::uint64_t lost_mark = 0;       // Sentinel::lost_context_mark() before the render
  };

  PageHost() = default;
  const Page* Find(std::string_view path) const;
  Rendering Begin(const Page& page) const;
  RenderedPage Finish(const Rendering& rendering, const PageResult& result) const;
  static RenderedPage NotFound(std::string_view path);
  static RenderedPage NotLoaded(const Page& page);
  static RenderedPage StrictFailure(const StrictPolicyError& error);

  template <class Response>
  static Response As(RenderedPage&& page) {
    if constexpr (std::is_same_v<Response, RenderedPage>) {
      return std::move(page);
    } else {
      return Response{.status = page.status,
                      .content_type = std::move(page.content_type),
                      .body = std::move(page.body)};
    }
  }
  template <class Response>
  static boost::asio::awaitable<Response> Answer(RenderedPage page) {
    co_return As<Response>(std::move(page));
  }

  std::vector<Page> pages_;
  std::string pages_environment_;
  int work_ms_ = 0;
  const Environment* pages_env_ = nullptr;
  const Environment* entry_env_ = nullptr;  // where the document module lives, if anywhere
  std::string document_;                    // its module id ([server] document), or empty
};

template <class Response>
boost::asio::awaitable<Response> PageHost::Render(PageRequest request) const {
  const Page* page = Find(request.path);
  if (page == nullptr) return Answer<Response>(NotFound(request.path));
  return Render<Response>(*page, std::move(request));
}

template <class Response>
boost::asio::awaitable<Response> PageHost::Render(const Page& page, PageRequest request) const {
  const Rendering rendering = Begin(page);
  if (rendering.api == nullptr) co_return As<Response>(NotLoaded(page));
  PageResult result;
  // A lost context under strict is recorded, not thrown (the thread that lost
  // it may not carry exceptions): Finish() fails every request then in flight.
  try {
    result = co_await rendering.api->render(std::move(request));
  } catch (const StrictPolicyError& error) {
    co_return As<Response>(StrictFailure(error));
  }
  co_return As<Response>(Finish(rendering, result));
}

}  // namespace modgraph::pages
