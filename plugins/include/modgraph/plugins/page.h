// page.h — the interface between the plugin server and a page plugin.
//
// A page plugin is a module whose API table is a PageApi. The server renders it
// in the environment pages live in (`ssr` in dev, the bundle in prod), inside
// the request's unified request scope. `render` is a coroutine: it may await
// asynchronous work, and every resumption still sees its own request.
//
//   boost::asio::awaitable<PageResult> Render(PageRequest request) {
//     head.add_child("<title>hi</title>");
//     co_await request.async_work();   // I/O, a timer — or a test kit's barrier
//     co_return PageResult{.head = head.render(), .body = "<h1>hi</h1>"};
//   }
#ifndef MODGRAPH_PLUGINS_PAGE_H_
#define MODGRAPH_PLUGINS_PAGE_H_

#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>

namespace modgraph::plugins {

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

struct PageRequest {
  std::string path;
  std::map<std::string, std::string> query;
  std::uint64_t request_id = 0;
  // The page's asynchronous work. The server chooses what it is: a short timer
  // when serving, a seeded schedule or a barrier under the test kit — which is
  // how the kit makes interleavings deterministic.
  std::function<boost::asio::awaitable<void>()> async_work;
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

}  // namespace modgraph::plugins

#endif  // MODGRAPH_PLUGINS_PAGE_H_
