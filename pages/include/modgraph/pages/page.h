// modgraph/pages/page.h — the contracts between the page host and the modules
// it serves: a page (PageApi) and the document module that wraps every page
// (DocumentApi).
//
// A page is a module whose API table is a PageApi. The page host renders it
// in the environment pages live in (`ssr` in dev, the bundle in prod), inside
// the request's unified request scope. `render` is a coroutine: it may await
// asynchronous work, and every resumption still sees its own request.
//
//   boost::asio::awaitable<pages::PageResult> Render(pages::PageRequest request) {
//     head.add_child("<title>hi</title>");
//     co_await request.async_work();   // I/O, a timer — or a test kit's barrier
//     co_return pages::PageResult{.head = head.render(), .body = "<h1>hi</h1>"};
//   }
//   const pages::PageApi kPage{"/hi", &Render};   // the module's api
//
// The module a topology names as `[server] document` (the example's
// `server-entry`) exports a DocumentApi; the page host hands it each page's
// head and body and sends what it returns.
//
// Header-only: page modules include it and link nothing but modgraph_core.
#ifndef MODGRAPH_PAGES_PAGE_H_
#define MODGRAPH_PAGES_PAGE_H_

#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>

namespace modgraph::pages {

// `text` with &, <, >, " and ' replaced by character references: request input
// (a query value, a path) put into HTML text or a quoted attribute stays text
// (HTML Living Standard, "serializing HTML fragments", escaping a string; OWASP
// XSS prevention rules 1 and 2).
inline std::string EscapeHtml(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// A page's asynchronous work (async_work.h makes the usual ones).
using AsyncWork = std::function<boost::asio::awaitable<void>()>;

struct PageRequest {
  std::string path;                          // decoded: "/concurrent-head"
  std::map<std::string, std::string> query;  // decoded query parameters
  std::uint64_t request_id = 0;              // == current_request_id() in the request scope
  // The page's asynchronous work. The host's caller chooses what it is: a
  // short timer when serving, a seeded schedule or a barrier under the test
  // kit — which is how the kit makes interleavings deterministic.
  AsyncWork async_work;
};

struct PageResult {
  int status = 200;
  std::string head;  // elements for <head>
  std::string body;  // contents of <body>
};

struct PageApi {
  const char* route;  // e.g. "/concurrent-head"
  boost::asio::awaitable<PageResult> (*render)(PageRequest request);
};

// The API of a topology's `[server] document` module: the HTML document
// around a rendered page, from the page's <head> elements and <body> contents.
struct DocumentApi {
  std::string (*document)(std::string_view head_html, std::string_view body_html);
};

}  // namespace modgraph::pages

#endif  // MODGRAPH_PAGES_PAGE_H_
