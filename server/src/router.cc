#include "modgraph/server/router.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <utility>

namespace modgraph::server {
namespace {

// RFC 9110 §9 and RFC 5789 (PATCH): the methods a route may list. Methods are
// case-sensitive, so "get" is not GET.
constexpr std::array<std::string_view, 9> kStandardMethods = {
    "CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"};

}  // namespace

bool IsStandardMethod(std::string_view method) {
  return std::find(kStandardMethods.begin(), kStandardMethods.end(), method) !=
         kStandardMethods.end();
}

bool Route::serves(std::string_view method) const {
  return std::find(methods.begin(), methods.end(), method) != methods.end();
}

absl::Status Router::Add(std::string path, Handler handler, std::vector<std::string> methods) {
  if (path.empty() || path.front() != '/') {
    return absl::InvalidArgumentError(
        fmt::format("router: path '{}' must start with '/' (paths are matched exactly)", path));
  }
  if (!handler) {
    return absl::InvalidArgumentError(fmt::format("router: empty handler for path '{}'", path));
  }
  if (methods.empty()) {
    return absl::InvalidArgumentError(
        fmt::format("router: no methods for path '{}'; list at least one (e.g. GET)", path));
  }
  for (const std::string& method : methods) {
    if (!IsStandardMethod(method)) {
      return absl::InvalidArgumentError(fmt::format(
          "router: '{}' for path '{}' is not an HTTP method; use one of {} (upper case)", method,
          path, fmt::join(kStandardMethods, ", ")));
    }
  }
  if (std::find(methods.begin(), methods.end(), "GET") != methods.end()) {
    methods.emplace_back("HEAD");
  }
  std::sort(methods.begin(), methods.end());
  methods.erase(std::unique(methods.begin(), methods.end()), methods.end());
  if (routes_.contains(path)) {
    return absl::AlreadyExistsError(fmt::format(
        "router: path '{}' already has a handler; each page is served by one handler", path));
  }
  std::string allow = fmt::format("{}", fmt::join(methods, ", "));
  routes_.emplace(std::move(path), Route{.handler = std::move(handler),
                                         .methods = std::move(methods),
                                         .allow = std::move(allow)});
  return absl::OkStatus();
}

const Route* Router::Find(std::string_view path) const {
  auto it = routes_.find(path);
  return it == routes_.end() ? nullptr : &it->second;
}

std::vector<std::string> Router::paths() const {
  std::vector<std::string> out;
  out.reserve(routes_.size());
  for (const auto& [path, route] : routes_) out.push_back(path);
  return out;
}

}  // namespace modgraph::server
