// probe_common.h — what `probe` and `parity` share: the request options and how
// a run's responses are summarised.
#ifndef MODGRAPH_TOOLS_PROBE_COMMON_H_
#define MODGRAPH_TOOLS_PROBE_COMMON_H_

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "modgraph/environments/topology.h"
#include "modgraph/testing/testkit.h"

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

// True when the topology serves the page of every target; otherwise prints an
// error naming the page and listing the routes it does serve (the caller exits
// 2: a run of 404s says nothing about isolation).
bool CheckPageServed(Topology& topology, const std::vector<std::string>& targets);

// Prints "<label>responses not 200: K of N (404: K)" and the first few of them;
// nothing when every response was 200. Returns K.
std::size_t PrintNonOkResponses(const testing::RunReport& run, std::string_view label = {});

// Prints the module-state audit's findings of `run` ("<label>module state
// written by two or more requests: N …" and each finding). Returns N.
std::size_t PrintModuleStateFindings(const testing::RunReport& run, std::string_view label = {});

// The part of a response worth showing: its <title> if it has one, else the
// start of the body on one line.
std::string Excerpt(std::string_view body);

}  // namespace modgraph::tools

#endif  // MODGRAPH_TOOLS_PROBE_COMMON_H_
