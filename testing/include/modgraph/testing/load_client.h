// modgraph/testing/load_client.h — a small HTTP load generator for tests and
// benchmarks: K keep-alive connections to a loopback port firing N GET
// requests concurrently (Boost.Beast client, coroutines on the caller's thread).
//
//   std::vector<std::string> targets(200, "/concurrent-head");
//   absl::StatusOr<modgraph::testing::LoadReport> report = modgraph::testing::RunLoad(
//       {.port = server->port(), .connections = 200}, targets);
//   for (const modgraph::testing::LoadResult& r : report->results)
//     EXPECT_EQ(r.status, 200) << r.error;
//
// Bounded: at most kMaxLoadConnections connections and kMaxLoadRequests
// requests per run, and every run ends by Options::timeout (requests still
// pending then fail with "timed out"). Loopback only.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace modgraph::testing {

inline constexpr int kMaxLoadConnections = 1000;
inline constexpr std::size_t kMaxLoadRequests = 1'000'000;

struct LoadOptions {
  std::string address = "127.0.0.1";  // loopback only
  std::uint16_t port = 0;
  // Concurrent connections; each sends its next request when the previous
  // response has arrived. Capped at the number of requests.
  int connections = 8;
  // Deadline for the whole run.
  std::chrono::milliseconds timeout{30'000};
};

struct LoadResult {
  std::string target;
  int status = 0;  // 0 when no response arrived
  std::string body;
  std::string error;                    // empty on success (any HTTP status counts as success)
  std::chrono::nanoseconds latency{0};  // request written to response read
  bool ok() const noexcept { return error.empty(); }
};

struct LoadReport {
  std::vector<LoadResult> results;  // results[i] answers targets[i]
  std::chrono::nanoseconds wall{0};
  std::size_t failures() const noexcept;
  // The q-quantile (0..1) of successful requests' latencies; 0 if none.
  std::chrono::nanoseconds latency_quantile(double q) const;
};

// Sends GET `targets[i]` for every i over `options.connections` connections.
// InvalidArgument for a non-loopback address, port 0, no connections or too
// many requests; otherwise the report, with per-request errors inside.
absl::StatusOr<LoadReport> RunLoad(const LoadOptions& options,
                                   std::span<const std::string> targets);

// One GET over its own connection; a convenience for tests.
absl::StatusOr<LoadResult> Fetch(std::uint16_t port, std::string_view target,
                                 std::chrono::milliseconds timeout = std::chrono::seconds(30));

}  // namespace modgraph::testing
