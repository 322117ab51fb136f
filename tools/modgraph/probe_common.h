// probe_common.h — what `probe` and `parity` share: the request options and how
// a run's responses are summarised.
#ifndef MODGRAPH_TOOLS_PROBE_COMMON_H_
#define MODGRAPH_TOOLS_PROBE_COMMON_H_

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace modgraph::tools {

struct RequestOptions {
  int requests = 15;
  std::uint64_t seed = 1;
  std::string page = "/concurrent-head";
};

// Adds --requests/-n, --seed and --page.
void AddRequestOptions(CLI::App& command, RequestOptions& options);

// "<page>?id=0" … "<page>?id=N-1".
std::vector<std::string> RequestTargets(const RequestOptions& options);

// The part of a response worth showing: its <title> if it has one, else the
// start of the body on one line.
std::string Excerpt(std::string_view body);

}  // namespace modgraph::tools

#endif  // MODGRAPH_TOOLS_PROBE_COMMON_H_
