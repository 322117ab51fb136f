// Shared pieces of `probe` and `parity`.
#include "probe_common.h"

#include <fmt/format.h>

#include <map>

#include "cli_common.h"

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

bool CheckPageServed(Topology& topology, const std::vector<std::string>& targets) {
  if (absl::Status served = testing::CheckTargetsServed(topology, targets); !served.ok()) {
    PrintError(served, "pick one of those routes with --page, or add the page to [server] pages");
    return false;
  }
  return true;
}

std::size_t PrintNonOkResponses(const testing::RunReport& run, std::string_view label) {
  const std::vector<std::size_t> non_ok = run.NonOkResponses();
  if (non_ok.empty()) return 0;
  std::map<int, int> by_status;
  for (std::size_t i : non_ok) ++by_status[run.responses[i].status];
  std::string counts;
  for (const auto& [status, count] : by_status) {
    counts += fmt::format("{}{}: {}", counts.empty() ? "" : ", ", status, count);
  }
  fmt::print("{}responses not 200: {} of {} ({})\n", label, non_ok.size(), run.responses.size(),
             counts);
  constexpr std::size_t kShown = 3;
  for (std::size_t k = 0; k < non_ok.size() && k < kShown; ++k) {
    const testing::TestResponse& response = run.responses[non_ok[k]];
    fmt::print("  {} got {} {}\n", response.target, response.status, Excerpt(response.body));
  }
  if (non_ok.size() > kShown) fmt::print("  … {} more\n", non_ok.size() - kShown);
  return non_ok.size();
}

std::size_t PrintModuleStateFindings(const testing::RunReport& run, std::string_view label) {
  const testing::ModuleStateAudit::Stats& audit = run.audit;
  fmt::print(
      "{}module state written by two or more requests: {} (audited {} module copies, {} bytes, at "
      "{} scheduling points{})\n",
      label, run.module_state.size(), audit.copies, audit.bytes_watched, audit.checkpoints,
      audit.tracking_writes ? ", every write tracked" : ", changed bytes only");
  constexpr std::size_t kShown = 5;
  for (std::size_t i = 0; i < run.module_state.size() && i < kShown; ++i) {
    fmt::print("  {}\n", testing::Describe(run.module_state[i]));
  }
  if (run.module_state.size() > kShown) {
    fmt::print("  … {} more\n", run.module_state.size() - kShown);
  }
  return run.module_state.size();
}

std::string Excerpt(std::string_view body) {
  const std::size_t open = body.find("<title>");
  const std::size_t close = body.find("</title>");
  if (open != std::string_view::npos && close != std::string_view::npos && close > open) {
    return std::string(body.substr(open, close + 8 - open));
  }
  std::string line(body.substr(0, 160));
  for (char& c : line) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return line;
}

}  // namespace modgraph::tools
