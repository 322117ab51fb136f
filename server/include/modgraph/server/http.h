// modgraph/server/http.h — what a page handler sees and returns: Request,
// Response, Handler, and the target decoding the server applies.
//
// A handler is a coroutine. The server runs it inside the request's unified
// request scope, so every resumption after a co_await sees this request's
// context: current_request_id() == request.id, StateKind<T>::get() returns this
// request's state, request_store() this request's store.
//
//   modgraph::server::Handler hello = [](const modgraph::server::Request& request)
//       -> boost::asio::awaitable<modgraph::server::Response> {
//     auto it = request.query.find("name");
//     co_return modgraph::server::Response{
//         .body = fmt::format("<p>hello {}</p>", it == request.query.end() ? "you" : it->second)};
//   };
//
// The Request passed to a handler lives until the handler's coroutine finishes;
// then the server reuses it for the connection's next request. A handler must
// not keep a reference to it (or to its strings) beyond that: copy what it keeps.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace modgraph::server {

struct Request {
  std::string method;  // as sent: "GET", "POST", ...
  std::string target;  // as sent: "/page?x=1%202"
  std::string path;    // decoded path: "/page"
  // Decoded query parameters ('+' is a space); for a repeated name the last wins.
  std::map<std::string, std::string> query;
  // Header names lower-cased; repeated headers joined with ", ".
  std::map<std::string, std::string> headers;
  std::string body;
  // The request id: unique in the process, from 1 up. Inside the request scope
  // it equals modgraph::current_request_id().
  std::uint64_t id = 0;
};

struct Response {
  int status = 200;
  std::string content_type = "text/html; charset=utf-8";
  std::string body;
};

// A page handler. Runs inside the request's unified request scope (unless the
// server was started with context_enabled = false). An exception it throws
// becomes a 500 response and one line on stderr; the server keeps serving.
using Handler = std::function<boost::asio::awaitable<Response>(const Request&)>;

// Splits an origin-form request target ("/a%20b?x=1&y=two+words") into its
// decoded path and query parameters. InvalidArgument for a target that does
// not start with '/', or holds a malformed percent escape or a NUL.
absl::Status DecodeTarget(std::string_view target, std::string& path,
                          std::map<std::string, std::string>& query);

}  // namespace modgraph::server
