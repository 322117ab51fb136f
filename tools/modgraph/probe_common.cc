// Shared pieces of `probe` and `parity`.
#include "probe_common.h"

#include <fmt/format.h>

#include "modgraph/testing/testkit.h"

namespace modgraph::tools {

void AddRequestOptions(CLI::App& command, RequestOptions& options) {
  command.add_option("-n,--requests", options.requests, "concurrent in-process requests")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();
  command.add_option("--seed", options.seed, "the interleaving's seed (same seed, same run)")
      ->capture_default_str();
  command.add_option("--page", options.page, "page route; each request gets ?id=<index>")
      ->capture_default_str();
}

std::vector<std::string> RequestTargets(const RequestOptions& options) {
  const char separator = options.page.find('?') == std::string::npos ? '?' : '&';
  return testing::Targets(fmt::format("{}{}id={{}}", options.page, separator), options.requests);
}

std::string Excerpt(std::string_view body) {
  const std::size_t open = body.find("<title>");
  const std::size_t close = body.find("</title>");
  if (open != std::string_view::npos && close != std::string_view::npos && close > open) {
    return std::string(body.substr(open, close + 8 - open));
  }
  std::string line(body.substr(0, 80));
  for (char& c : line) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return line;
}

}  // namespace modgraph::tools
