#include "modgraph/server/router.h"

#include <fmt/format.h>

#include <utility>

namespace modgraph::server {

absl::Status Router::Add(std::string path, Handler handler) {
  if (path.empty() || path.front() != '/') {
    return absl::InvalidArgumentError(
        fmt::format("router: path '{}' must start with '/' (paths are matched exactly)", path));
  }
  if (!handler) {
    return absl::InvalidArgumentError(fmt::format("router: empty handler for path '{}'", path));
  }
  auto [it, inserted] = handlers_.try_emplace(path, std::move(handler));
  if (!inserted) {
    return absl::AlreadyExistsError(fmt::format(
        "router: path '{}' already has a handler; each page is served by one handler", path));
  }
  return absl::OkStatus();
}

const Handler* Router::Find(std::string_view path) const {
  auto it = handlers_.find(path);
  return it == handlers_.end() ? nullptr : &it->second;
}

std::vector<std::string> Router::paths() const {
  std::vector<std::string> out;
  out.reserve(handlers_.size());
  for (const auto& [path, handler] : handlers_) out.push_back(path);
  return out;
}

}  // namespace modgraph::server
