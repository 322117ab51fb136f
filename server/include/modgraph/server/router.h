// modgraph/server/router.h — maps exact request paths to page handlers, and
// says which methods each path serves.
//
// The server asks the router for the decoded path of each request; a path
// nobody added gets a 404, a method the route does not serve a 405 with an
// Allow header (RFC 9110 §15.5.6), a method outside the standard set a 501
// (§15.6.2). Matching is exact (no prefixes, no patterns): a page is one path,
// which keeps "which handler served this?" obvious.
//
//   modgraph::server::Router router;
//   absl::Status added = router.Add("/hello", hello_page);  // GET (and HEAD)
//   if (!added.ok()) return added;  // AlreadyExists names the path
//   added = router.Add("/form", form_page, {"GET", "POST"});
//   auto server = modgraph::server::HttpServer::Start({}, std::move(router));
//
// A Router is filled before Start() and read-only afterwards, so lookups take
// no lock.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "modgraph/server/http.h"

namespace modgraph::server {

// One path's handler and the methods it serves.
struct Route {
  Handler handler;
  // Upper-case method names, sorted; HEAD is included wherever GET is (a HEAD
  // request runs the handler and sends the headers of its response without the
  // body, RFC 9110 §9.3.2).
  std::vector<std::string> methods;
  // The same list as an Allow header value: "GET, HEAD".
  std::string allow;

  bool serves(std::string_view method) const;
};

class Router {
 public:
  // Serves `path` with `handler` for `methods` (default: GET, and with it HEAD).
  // InvalidArgument when the path does not start with '/', the handler is
  // empty, or a method is not one of RFC 9110's (GET, HEAD, POST, PUT, DELETE,
  // CONNECT, OPTIONS, TRACE) or PATCH (RFC 5789); AlreadyExists when the path is
  // taken.
  absl::Status Add(std::string path, Handler handler, std::vector<std::string> methods = {"GET"});

  // The route for exactly `path`, or nullptr.
  const Route* Find(std::string_view path) const;

  // Every path served, sorted.
  std::vector<std::string> paths() const;
  std::size_t size() const noexcept { return routes_.size(); }

 private:
  std::map<std::string, Route, std::less<>> routes_;
};

// True for the methods Router::Add accepts; anything else in a request line is
// answered with 501 Not Implemented.
bool IsStandardMethod(std::string_view method);

}  // namespace modgraph::server
