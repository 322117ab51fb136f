// modgraph/server/router.h — maps exact request paths to page handlers.
//
// The server asks the router for the decoded path of each request; a path
// nobody added gets a 404. Matching is exact (no prefixes, no patterns): a
// page is one path, which keeps "which handler served this?" obvious.
//
//   modgraph::server::Router router;
//   absl::Status added = router.Add("/concurrent-head", head_page);
//   if (!added.ok()) return added;  // AlreadyExists names the path
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

class Router {
 public:
  // Serves `path` with `handler`. InvalidArgument when the path does not start
  // with '/' or the handler is empty; AlreadyExists when the path is taken.
  absl::Status Add(std::string path, Handler handler);

  // The handler for exactly `path`, or nullptr.
  const Handler* Find(std::string_view path) const;

  // Every path served, sorted.
  std::vector<std::string> paths() const;
  std::size_t size() const noexcept { return handlers_.size(); }

 private:
  std::map<std::string, Handler, std::less<>> handlers_;
};

}  // namespace modgraph::server
