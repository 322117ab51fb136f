#include "modgraph/testing/load_client.h"

#include <fmt/format.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <cmath>
#include <exception>

namespace modgraph::testing {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
constexpr std::uint64_t kMaxResponseBody = 64ull << 20;

// The state every connection of one run shares; all on the caller's thread.
struct Run {
  tcp::endpoint endpoint;
  std::string host;  // Host header
  std::span<const std::string> targets;
  std::vector<LoadResult>& results;
  std::size_t next = 0;  // the next request to send, across connections
  Clock::time_point deadline;
};

std::string explain(const boost::system::error_code& ec) {
  if (ec == beast::error::timeout) return "timed out";
  return ec.message();
}

// One keep-alive connection: takes the next unsent request until none is left,
// reconnecting when the server closed the connection.
asio::awaitable<void> Connection(Run& run) {
  beast::tcp_stream stream(co_await asio::this_coro::executor);
  beast::flat_buffer buffer;
  bool connected = false;
  auto disconnect = [&] {
    boost::system::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream.close();
    buffer.clear();
    connected = false;
  };
  while (run.next < run.targets.size()) {
    LoadResult& result = run.results[run.next++];
    stream.expires_at(run.deadline);
    if (!connected) {
      auto [ec] = co_await stream.async_connect(run.endpoint, kNoThrow);
      if (ec) {
        result.error = fmt::format("connect to {}:{}: {}", run.endpoint.address().to_string(),
                                   run.endpoint.port(), explain(ec));
        stream.close();
        continue;
      }
      boost::system::error_code ignored;
      stream.socket().set_option(tcp::no_delay(true), ignored);
      connected = true;
    }

    http::request<http::empty_body> request{http::verb::get, result.target, 11};
    request.set(http::field::host, run.host);
    request.set(http::field::user_agent, "modgraph-load");
    request.keep_alive(true);
    const Clock::time_point start = Clock::now();
    if (auto [ec, n] = co_await http::async_write(stream, request, kNoThrow); ec) {
      result.error = fmt::format("write: {}", explain(ec));
      disconnect();
      continue;
    }
    http::response_parser<http::string_body> parser;
    parser.body_limit(kMaxResponseBody);
    if (auto [ec, n] = co_await http::async_read(stream, buffer, parser, kNoThrow); ec) {
      result.error = fmt::format("read: {}", explain(ec));
      disconnect();
      continue;
    }
    result.latency = Clock::now() - start;
    http::response<http::string_body> response = parser.release();
    result.status = static_cast<int>(response.result_int());
    result.body = std::move(response.body());
    if (!response.keep_alive()) disconnect();
  }
  if (connected) disconnect();
}

}  // namespace

std::size_t LoadReport::failures() const noexcept {
  return static_cast<std::size_t>(
      std::count_if(results.begin(), results.end(), [](const LoadResult& r) { return !r.ok(); }));
}

std::chrono::nanoseconds LoadReport::latency_quantile(double q) const {
  std::vector<std::chrono::nanoseconds> latencies;
  latencies.reserve(results.size());
  for (const LoadResult& r : results) {
    if (r.ok()) latencies.push_back(r.latency);
  }
  if (latencies.empty()) return std::chrono::nanoseconds(0);
  q = std::clamp(q, 0.0, 1.0);
  const auto index =
      static_cast<std::size_t>(std::floor(q * static_cast<double>(latencies.size() - 1)));
  std::nth_element(latencies.begin(), latencies.begin() + static_cast<std::ptrdiff_t>(index),
                   latencies.end());
  return latencies[index];
}

absl::StatusOr<LoadReport> RunLoad(const LoadOptions& options,
                                   std::span<const std::string> targets) {
  boost::system::error_code ec;
  const std::string host = options.address == "localhost" ? "127.0.0.1" : options.address;
  const asio::ip::address address = asio::ip::make_address(host, ec);
  if (ec || !address.is_loopback()) {
    return absl::InvalidArgumentError(fmt::format(
        "load client: '{}' is not a loopback address; it only talks to 127.0.0.1, ::1 or localhost",
        options.address));
  }
  if (options.port == 0)
    return absl::InvalidArgumentError("load client: port 0 (no server port given)");
  if (options.connections < 1 || options.connections > kMaxLoadConnections) {
    return absl::InvalidArgumentError(
        fmt::format("load client: {} connections requested; allowed 1..{}", options.connections,
                    kMaxLoadConnections));
  }
  if (targets.size() > kMaxLoadRequests) {
    return absl::InvalidArgumentError(
        fmt::format("load client: {} requests requested; at most {} per run", targets.size(),
                    kMaxLoadRequests));
  }

  LoadReport report;
  report.results.resize(targets.size());
  for (std::size_t i = 0; i < targets.size(); ++i) report.results[i].target = targets[i];

  asio::io_context io(1);
  const Clock::time_point start = Clock::now();
  Run run{.endpoint = tcp::endpoint(address, options.port),
          .host = fmt::format("{}:{}", address.is_v6() ? "[" + host + "]" : host, options.port),
          .targets = targets,
          .results = report.results,
          .deadline = start + options.timeout};
  const std::size_t connections =
      std::min(static_cast<std::size_t>(options.connections), targets.size());
  std::exception_ptr failure;
  for (std::size_t i = 0; i < connections; ++i) {
    asio::co_spawn(io, Connection(run), [&failure](std::exception_ptr e) {
      if (e && !failure) failure = e;
    });
  }
  io.run();
  report.wall = Clock::now() - start;
  if (failure) {
    try {
      std::rethrow_exception(failure);
    } catch (const std::exception& e) {
      return absl::InternalError(fmt::format("load client: {}", e.what()));
    } catch (...) {
      return absl::InternalError("load client: unknown exception");
    }
  }
  return report;
}

absl::StatusOr<LoadResult> Fetch(std::uint16_t port, std::string_view target,
                                 std::chrono::milliseconds timeout) {
  const std::string targets[] = {std::string(target)};
  absl::StatusOr<LoadReport> report =
      RunLoad({.port = port, .connections = 1, .timeout = timeout}, targets);
  if (!report.ok()) return report.status();
  LoadResult& result = report->results.front();
  if (!result.ok()) {
    return absl::UnavailableError(
        fmt::format("GET {} on 127.0.0.1:{} failed: {}", target, port, result.error));
  }
  return std::move(result);
}

}  // namespace modgraph::testing
