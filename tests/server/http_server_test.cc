#include "modgraph/server/http_server.h"

#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "modgraph/context/asio.h"
#include "modgraph/context/request_context.h"
#include "modgraph/context/request_store.h"
#include "modgraph/testing/load_client.h"

namespace modgraph::server {
namespace {

namespace asio = boost::asio;
using testing::Fetch;
using testing::kMaxLoadConnections;
using testing::LoadReport;
using testing::LoadResult;
using testing::RunLoad;
namespace beast = boost::beast;
namespace http = beast::http;
using std::chrono::microseconds;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// Upper bound for anything a test waits on; tests end by events, this only
// turns a hang into a failure.
constexpr auto kPatience = std::chrono::seconds(20);

// The per-request state a page keeps, with a module-level default for code
// that runs outside any request scope: the shape of the bug modgraph exists for.
struct Slot {
  std::uint64_t written_by = 0;
};
const StateKind<Slot> kSlot{"server_test.slot"};
Slot g_module_default;  // only touched on one io thread (tests with threads = 1)

Slot& slot() {
  if (Slot* state = kSlot.get()) return *state;
  return g_module_default;
}

// The io_context executor a server coroutine runs on (each connection lives
// on one io thread's io_context), under the request scope's wrapper (if any).
// Open() posts to it rather than to a copy of the coroutine's any_io_executor:
// copies of that shared, type-erased executor dropped on two threads trip
// ThreadSanitizer (Asio frees it after a fence TSan does not model).
using IoExecutor = asio::io_context::executor_type;
IoExecutor IoExecutorOf(const asio::any_io_executor& executor) {
  if (const auto* wrapped = executor.target<ContextExecutor<IoExecutor>>()) {
    return wrapped->get_inner_executor();
  }
  const IoExecutor* inner = executor.target<IoExecutor>();
  if (inner == nullptr) throw std::logic_error("Gate: not running on a server io thread");
  return *inner;
}

// Wakes coroutines waiting on it from any thread: each waiter parks on a timer
// that Open() cancels on the waiter's io thread.
class Gate {
 public:
  asio::awaitable<void> Wait() {
    auto executor = co_await asio::this_coro::executor;
    asio::steady_timer timer(executor, kPatience);  // bounded, so Stop() cannot hang
    {
      std::lock_guard lock(mu_);
      if (open_) co_return;
      waiters_.push_back({IoExecutorOf(executor), &timer});
    }
    co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
  }
  void Open() {
    std::vector<Waiter> waiters;
    {
      std::lock_guard lock(mu_);
      open_ = true;
      waiters.swap(waiters_);
    }
    // On the waiter's thread, so it runs after the waiter has suspended.
    for (Waiter& w : waiters) asio::post(w.executor, [timer = w.timer] { timer->cancel(); });
  }

 private:
  struct Waiter {
    IoExecutor executor;
    asio::steady_timer* timer;
  };
  std::mutex mu_;
  bool open_ = false;
  std::vector<Waiter> waiters_;
};

// Opens the gate when the n-th request arrives: every request then reads after
// all of them have written, the most interleaving there can be.
class Barrier {
 public:
  explicit Barrier(std::size_t n) : n_(n) {}
  asio::awaitable<void> ArriveAndWait() {
    if (arrived_.fetch_add(1) + 1 == n_) gate_.Open();
    co_await gate_.Wait();
  }

 private:
  std::size_t n_;
  std::atomic<std::size_t> arrived_{0};
  Gate gate_;
};

std::uint64_t QueryNumber(const Request& request, const std::string& name) {
  auto it = request.query.find(name);
  return it == request.query.end() ? 0 : std::stoull(it->second);
}

// Writes the request id into the request's Slot and request store, waits
// (?delay_us=N, or on a barrier), reads both back and reports what it saw:
// "<request id> <slot> <store> <current_request_id()>".
Handler EchoIdPage(Barrier* barrier = nullptr) {
  return [barrier](const Request& request) -> asio::awaitable<Response> {
    slot().written_by = request.id;
    request_store().set<std::uint64_t>("server_test.id", request.id);
    if (barrier != nullptr) {
      co_await barrier->ArriveAndWait();
    } else {
      asio::steady_timer timer(co_await asio::this_coro::executor,
                               microseconds(QueryNumber(request, "delay_us")));
      co_await timer.async_wait(asio::use_awaitable);
    }
    std::shared_ptr<std::uint64_t> stored = request_store().get<std::uint64_t>("server_test.id");
    co_return Response{.content_type = "text/plain",
                       .body = fmt::format("{} {} {} {}", request.id, slot().written_by,
                                           stored ? *stored : 0, current_request_id())};
  };
}

struct Echo {
  std::uint64_t id = 0, slot = 0, store = 0, context_id = 0;
};
Echo ParseEcho(const std::string& body) {
  Echo e;
  std::istringstream in(body);
  in >> e.id >> e.slot >> e.store >> e.context_id;
  return e;
}

std::unique_ptr<HttpServer> StartOrDie(HttpServer::Options options, Router router) {
  absl::StatusOr<std::unique_ptr<HttpServer>> server =
      HttpServer::Start(std::move(options), std::move(router));
  if (!server.ok()) throw std::runtime_error(std::string(server.status().message()));
  return std::move(*server);
}

// 200 requests on 200 connections, with seeded delays of 0-2 ms.
std::vector<std::string> DelayedEchoTargets(std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> delay_us(0, 2000);
  std::vector<std::string> targets;
  for (int i = 0; i < 200; ++i) targets.push_back(fmt::format("/echo?delay_us={}", delay_us(rng)));
  return targets;
}

class IsolationTest : public ::testing::TestWithParam<int> {};

TEST_P(IsolationTest, EveryConcurrentResponseCarriesOnlyItsOwnRequestId) {
  Router router;
  ASSERT_TRUE(router.Add("/echo", EchoIdPage()).ok());
  auto server = StartOrDie({.threads = GetParam()}, std::move(router));
  const std::vector<std::string> targets = DelayedEchoTargets(20240601u + GetParam());
  absl::StatusOr<LoadReport> report =
      RunLoad({.port = server->port(), .connections = 200, .timeout = kPatience}, targets);
  ASSERT_TRUE(report.ok()) << report.status();

  std::set<std::uint64_t> ids;
  for (const LoadResult& r : report->results) {
    ASSERT_TRUE(r.ok()) << r.target << ": " << r.error;
    ASSERT_EQ(r.status, 200) << r.body;
    const Echo e = ParseEcho(r.body);
    EXPECT_NE(e.id, 0u);
    EXPECT_EQ(e.slot, e.id) << "state kind leaked across requests: " << r.body;
    EXPECT_EQ(e.store, e.id) << "request store leaked across requests: " << r.body;
    EXPECT_EQ(e.context_id, e.id) << "handler resumed outside its request scope: " << r.body;
    ids.insert(e.id);
  }
  EXPECT_EQ(ids.size(), targets.size());
  EXPECT_EQ(server->requests_started(), targets.size());
}

TEST_P(IsolationTest, IsolatedEvenWhenEveryRequestReadsAfterAllHaveWritten) {
  Barrier barrier(200);
  Router router;
  ASSERT_TRUE(router.Add("/echo", EchoIdPage(&barrier)).ok());
  auto server = StartOrDie({.threads = GetParam()}, std::move(router));
  const std::vector<std::string> targets(200, "/echo");
  absl::StatusOr<LoadReport> report =
      RunLoad({.port = server->port(), .connections = 200, .timeout = kPatience}, targets);
  ASSERT_TRUE(report.ok()) << report.status();
  for (const LoadResult& r : report->results) {
    ASSERT_TRUE(r.ok()) << r.error;
    const Echo e = ParseEcho(r.body);
    EXPECT_EQ(e.slot, e.id) << r.body;
    EXPECT_EQ(e.store, e.id) << r.body;
    EXPECT_EQ(e.context_id, e.id) << r.body;
  }
}

INSTANTIATE_TEST_SUITE_P(Threads, IsolationTest, ::testing::Values(1, 2),
                         [](const auto& param_info) {
                           return fmt::format("threads_{}", param_info.param);
                         });

// The negative control: with the request scope off, the page falls back to its
// module-level default and concurrent requests read each other's ids. This is
// the bug; it shows the tests above would see it.
TEST(HttpServer, WithoutRequestScopeConcurrentRequestsShareModuleState) {
  g_module_default = {};
  Barrier barrier(200);
  Router router;
  ASSERT_TRUE(router.Add("/echo", EchoIdPage(&barrier)).ok());
  auto server = StartOrDie({.threads = 1, .context_enabled = false}, std::move(router));
  const std::vector<std::string> targets(200, "/echo");
  absl::StatusOr<LoadReport> report =
      RunLoad({.port = server->port(), .connections = 200, .timeout = kPatience}, targets);
  ASSERT_TRUE(report.ok()) << report.status();
  int leaked = 0;
  for (const LoadResult& r : report->results) {
    ASSERT_TRUE(r.ok()) << r.error;
    const Echo e = ParseEcho(r.body);
    EXPECT_EQ(e.context_id, 0u) << "no request scope was asked for";
    EXPECT_EQ(e.store, 0u) << "outside a request scope request_store() is always fresh";
    if (e.slot != e.id) ++leaked;
  }
  // Every read happens after the last write: all but the last writer see its id.
  EXPECT_EQ(leaked, 199);
}

TEST(HttpServer, UnknownPathIs404) {
  Router router;
  ASSERT_TRUE(router.Add("/echo", EchoIdPage()).ok());
  auto server = StartOrDie({}, std::move(router));
  absl::StatusOr<LoadResult> r = Fetch(server->port(), "/nope%20here?x=1");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 404);
  EXPECT_THAT(r->body, HasSubstr("/nope here"));
}

// Sends `bytes` on a fresh connection and returns everything the server sends
// back before closing it.
std::string RawExchange(std::uint16_t port, const std::string& bytes) {
  asio::io_context io;
  asio::ip::tcp::socket socket(io);
  socket.connect({asio::ip::make_address("127.0.0.1"), port});
  asio::write(socket, asio::buffer(bytes));
  std::string reply;
  boost::system::error_code ec;
  asio::read(socket, asio::dynamic_buffer(reply), ec);  // until the server closes
  EXPECT_EQ(ec, asio::error::eof) << ec.message();
  return reply;
}

TEST(HttpServer, MalformedRequestsAre400AndServingContinues) {
  Router router;
  ASSERT_TRUE(router.Add("/echo", EchoIdPage()).ok());
  auto server = StartOrDie({}, std::move(router));
  EXPECT_THAT(RawExchange(server->port(), "this is not http\r\n\r\n"),
              StartsWith("HTTP/1.1 400 Bad Request"));
  EXPECT_THAT(RawExchange(server->port(), "GET /echo HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n"),
              StartsWith("HTTP/1.1 400 Bad Request"));
  EXPECT_THAT(
      RawExchange(server->port(), "GET /echo%zz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
      StartsWith("HTTP/1.1 400 Bad Request"));
  EXPECT_THAT(RawExchange(server->port(),
                          "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n"),
              StartsWith("HTTP/1.1 413"));
  absl::StatusOr<LoadResult> r = Fetch(server->port(), "/echo");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);
}

TEST(HttpServer, ThrowingHandlerIs500LoggedAndTheConnectionKeepsServing) {
  Router router;
  ASSERT_TRUE(router.Add("/echo", EchoIdPage()).ok());
  ASSERT_TRUE(router
                  .Add("/boom",
                       [](const Request&) -> asio::awaitable<Response> {
                         asio::steady_timer timer(co_await asio::this_coro::executor);
                         co_await timer.async_wait(asio::use_awaitable);
                         throw std::runtime_error("head slot exploded\nsecond line");
                       })
                  .ok());
  auto server = StartOrDie({}, std::move(router));
  const std::vector<std::string> targets = {"/boom", "/echo"};
  ::testing::internal::CaptureStderr();
  // One connection: the 500 and the next request share it (keep-alive).
  absl::StatusOr<LoadReport> report =
      RunLoad({.port = server->port(), .connections = 1, .timeout = kPatience}, targets);
  const std::string log = ::testing::internal::GetCapturedStderr();
  ASSERT_TRUE(report.ok()) << report.status();
  const LoadResult& boom = report->results[0];
  ASSERT_TRUE(boom.ok()) << boom.error;
  EXPECT_EQ(boom.status, 500);
  std::uint64_t id = 0;
  ASSERT_EQ(std::sscanf(boom.body.c_str(), "500 internal server error (request %lu)", &id), 1)
      << boom.body;
  EXPECT_THAT(
      log,
      HasSubstr(fmt::format(
          "500 for GET /boom (request {}): handler threw: head slot exploded second line\n", id)));
  EXPECT_THAT(boom.body, ::testing::Not(HasSubstr("exploded")));  // details stay in the log
  const LoadResult& next = report->results[1];
  ASSERT_TRUE(next.ok()) << next.error;
  EXPECT_EQ(next.status, 200);
  EXPECT_EQ(ParseEcho(next.body).id, id + 1);
}

TEST(HttpServer, KeepAliveServesSeveralRequestsOnOneConnection) {
  Router router;
  ASSERT_TRUE(router.Add("/echo", EchoIdPage()).ok());
  auto server = StartOrDie({}, std::move(router));
  asio::io_context io;
  asio::ip::tcp::socket socket(io);
  socket.connect({asio::ip::make_address("127.0.0.1"), server->port()});
  beast::flat_buffer buffer;
  std::uint64_t previous = 0;
  for (int i = 0; i < 3; ++i) {
    http::request<http::empty_body> request{http::verb::get, "/echo", 11};
    request.set(http::field::host, "127.0.0.1");
    http::write(socket, request);
    http::response<http::string_body> response;
    http::read(socket, buffer, response);
    EXPECT_EQ(response.result_int(), 200u);
    EXPECT_TRUE(response.keep_alive());
    const Echo e = ParseEcho(response.body());
    EXPECT_GT(e.id, previous);
    EXPECT_EQ(e.slot, e.id);
    previous = e.id;
  }
}

// Handlers run in their connection's coroutine: what one handler sets on it
// (here: not to throw when cancelled) must not carry into the next request's.
TEST(HttpServer, AHandlersCancellationSettingsDoNotCarryIntoTheNextRequest) {
  Router router;
  ASSERT_TRUE(router
                  .Add("/relax",
                       [](const Request&) -> asio::awaitable<Response> {
                         co_await asio::this_coro::throw_if_cancelled(false);
                         co_return Response{.body = "relaxed"};
                       })
                  .ok());
  ASSERT_TRUE(router
                  .Add("/check",
                       [](const Request&) -> asio::awaitable<Response> {
                         const bool throws = co_await asio::this_coro::throw_if_cancelled();
                         co_return Response{.body = throws ? "throws" : "does not throw"};
                       })
                  .ok());
  auto server = StartOrDie({}, std::move(router));
  asio::io_context io;
  asio::ip::tcp::socket socket(io);
  socket.connect({asio::ip::make_address("127.0.0.1"), server->port()});
  beast::flat_buffer buffer;
  std::vector<std::string> bodies;
  for (const char* target : {"/check", "/relax", "/check"}) {
    http::request<http::empty_body> request{http::verb::get, target, 11};
    request.set(http::field::host, "127.0.0.1");
    http::write(socket, request);
    http::response<http::string_body> response;
    http::read(socket, buffer, response);
    bodies.push_back(response.body());
  }
  EXPECT_EQ(bodies, (std::vector<std::string>{"throws", "relaxed", "throws"}));
}

TEST(HttpServer, PortZeroPicksAFreePortAndATakenPortIsAnError) {
  Router router;
  ASSERT_TRUE(router.Add("/echo", EchoIdPage()).ok());
  auto server = StartOrDie({.port = 0}, std::move(router));
  ASSERT_NE(server->port(), 0);
  absl::StatusOr<LoadResult> r = Fetch(server->port(), "/echo");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);

  absl::StatusOr<std::unique_ptr<HttpServer>> second =
      HttpServer::Start({.port = server->port()}, Router());
  ASSERT_FALSE(second.ok());
  EXPECT_THAT(std::string(second.status().message()),
              HasSubstr(fmt::format("127.0.0.1:{}", server->port())));
}

TEST(HttpServer, RefusesNonLoopbackAddressesAndBadOptions) {
  for (const char* address : {"0.0.0.0", "192.168.1.10", "::", "example.com"}) {
    absl::StatusOr<std::unique_ptr<HttpServer>> server =
        HttpServer::Start({.address = address}, Router());
    ASSERT_FALSE(server.ok()) << address;
    EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(server.status().message()), HasSubstr(address));
    EXPECT_THAT(std::string(server.status().message()), HasSubstr("127.0.0.1"));
  }
  EXPECT_THAT(std::string(HttpServer::Start({.address = "0.0.0.0"}, Router()).status().message()),
              HasSubstr("loopback only"));
  EXPECT_EQ(HttpServer::Start({.threads = 0}, Router()).status().code(),
            absl::StatusCode::kInvalidArgument);
  for (const microseconds busy_poll : {microseconds(-1), microseconds(10'001)}) {
    absl::StatusOr<std::unique_ptr<HttpServer>> server =
        HttpServer::Start({.busy_poll = busy_poll}, Router());
    ASSERT_FALSE(server.ok()) << busy_poll.count();
    EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(server.status().message()), HasSubstr("busy_poll must be from 0"));
  }
  auto local = HttpServer::Start({.address = "localhost"}, Router());
  EXPECT_TRUE(local.ok()) << local.status();
}

// The scheduler state ('R' running or runnable, 'S' asleep, ...) of each of
// this process's threads named `prefix`N, from /proc/self/task/*/stat.
std::map<std::string, char> ThreadStates(std::string_view prefix) {
  std::map<std::string, char> states;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm(task.path() / "comm");
    std::string name;
    std::getline(comm, name);
    if (!name.starts_with(prefix)) continue;
    std::ifstream stat_file(task.path() / "stat");
    std::string stat((std::istreambuf_iterator<char>(stat_file)), {});
    // "tid (comm) S ...": the state follows the last ')'.
    const std::size_t close = stat.rfind(')');
    if (close != std::string::npos && close + 2 < stat.size()) states[name] = stat[close + 2];
  }
  return states;
}

// With busy polling, each io thread keeps polling after its requests, then
// blocks in epoll_wait like a thread without it: an idle server uses no CPU.
TEST(HttpServer, BusyPollingIoThreadsServeAndThenBlockWhenIdle) {
  Router router;
  ASSERT_TRUE(router.Add("/echo", EchoIdPage()).ok());
  auto server =
      StartOrDie({.threads = 2, .busy_poll = std::chrono::milliseconds(2)}, std::move(router));
  // Connections go to the threads in turn: four fetches reach both.
  for (int i = 0; i < 4; ++i) {
    absl::StatusOr<LoadResult> r = Fetch(server->port(), "/echo");
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status, 200);
  }
  const auto deadline = std::chrono::steady_clock::now() + kPatience;
  std::map<std::string, char> states = ThreadStates("modgraph-io");
  while (std::chrono::steady_clock::now() < deadline &&
         !(states.size() == 2 && states["modgraph-io0"] == 'S' && states["modgraph-io1"] == 'S')) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    states = ThreadStates("modgraph-io");
  }
  EXPECT_EQ(states, (std::map<std::string, char>{{"modgraph-io0", 'S'}, {"modgraph-io1", 'S'}}));
  server->Stop();  // an io thread in its polling window or blocked stops alike
  EXPECT_TRUE(ThreadStates("modgraph-io").empty());
}

TEST(LoadClient, RefusesNonLoopbackAndUnboundedRuns) {
  const std::vector<std::string> one = {"/"};
  EXPECT_FALSE(RunLoad({.address = "10.0.0.1", .port = 80}, one).ok());
  EXPECT_FALSE(RunLoad({.port = 0}, one).ok());
  EXPECT_FALSE(RunLoad({.port = 80, .connections = kMaxLoadConnections + 1}, one).ok());
  EXPECT_FALSE(RunLoad({.port = 80, .connections = 0}, one).ok());
}

// A page that stays in flight until the test opens its gate.
struct SlowPage {
  Gate gate;
  std::promise<void> entered;
  std::once_flag entered_once;
  std::atomic<bool> finished{false};

  Handler handler() {
    return [this](const Request& request) -> asio::awaitable<Response> {
      std::call_once(entered_once, [this] { entered.set_value(); });
      co_await gate.Wait();
      const bool in_scope = current_request_id() == request.id;
      finished = true;
      co_return Response{.body = in_scope ? "slow done" : "slow lost its request scope"};
    };
  }
};

void WaitUntilStopRequested(const HttpServer& server) {
  const auto deadline = std::chrono::steady_clock::now() + kPatience;
  while (!server.stop_requested() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  ASSERT_TRUE(server.stop_requested());
}

class StopTest : public ::testing::TestWithParam<int> {};

TEST_P(StopTest, StopLetsInFlightRequestsCompleteAndClosesIdleConnections) {
  SlowPage slow;
  Router router;
  ASSERT_TRUE(router.Add("/slow", slow.handler()).ok());
  ASSERT_TRUE(router.Add("/echo", EchoIdPage()).ok());
  auto server = StartOrDie({.threads = GetParam()}, std::move(router));
  const std::uint16_t port = server->port();

  // An idle keep-alive connection that has served one request.
  asio::io_context io;
  asio::ip::tcp::socket idle(io);
  idle.connect({asio::ip::make_address("127.0.0.1"), port});
  beast::flat_buffer buffer;
  http::request<http::empty_body> request{http::verb::get, "/echo", 11};
  request.set(http::field::host, "127.0.0.1");
  http::write(idle, request);
  http::response<http::string_body> first;
  http::read(idle, buffer, first);
  ASSERT_EQ(first.result_int(), 200u);

  auto in_flight = std::async(std::launch::async, [port] { return Fetch(port, "/slow"); });
  ASSERT_EQ(slow.entered.get_future().wait_for(kPatience), std::future_status::ready);

  std::promise<void> stop_called;
  bool finished_when_stop_returned = false;
  std::thread stopper([&] {
    stop_called.set_value();
    server->Stop();
    finished_when_stop_returned = slow.finished.load();
  });
  stop_called.get_future().wait();
  WaitUntilStopRequested(*server);
  slow.gate.Open();
  stopper.join();

  EXPECT_TRUE(finished_when_stop_returned) << "Stop() returned before the in-flight request ended";
  absl::StatusOr<LoadResult> slow_result = in_flight.get();
  ASSERT_TRUE(slow_result.ok()) << slow_result.status();
  EXPECT_EQ(slow_result->status, 200);
  EXPECT_EQ(slow_result->body, "slow done");

  // The idle connection was closed by the stop.
  http::response<http::string_body> after;
  boost::system::error_code ec;
  http::read(idle, buffer, after, ec);
  EXPECT_EQ(ec, http::error::end_of_stream) << ec.message();
  // And nothing listens any more.
  EXPECT_FALSE(Fetch(port, "/echo", std::chrono::seconds(5)).ok());
}

INSTANTIATE_TEST_SUITE_P(Threads, StopTest, ::testing::Values(1, 2), [](const auto& param_info) {
  return fmt::format("threads_{}", param_info.param);
});

TEST(HttpServer, StopWithNoConnectionsReturnsAndIsIdempotent) {
  auto server = StartOrDie({.threads = 2}, Router());
  server->Stop();
  server->Stop();
  server->Wait();
  EXPECT_TRUE(server->stop_requested());
}

TEST(ServeUntilSignal, SigtermStopsTheServerAfterInFlightRequestsComplete) {
  SlowPage slow;
  Router router;
  ASSERT_TRUE(router.Add("/slow", slow.handler()).ok());
  auto server = StartOrDie({}, std::move(router));
  const std::uint16_t port = server->port();

  std::promise<void> ready;
  auto serving = std::async(std::launch::async,
                            [&] { return ServeUntilSignal(*server, [&] { ready.set_value(); }); });
  ASSERT_EQ(ready.get_future().wait_for(kPatience), std::future_status::ready);

  auto in_flight = std::async(std::launch::async, [port] { return Fetch(port, "/slow"); });
  ASSERT_EQ(slow.entered.get_future().wait_for(kPatience), std::future_status::ready);

  ::testing::internal::CaptureStderr();
  ASSERT_EQ(::kill(::getpid(), SIGTERM), 0);
  WaitUntilStopRequested(*server);
  slow.gate.Open();
  ASSERT_EQ(serving.wait_for(kPatience), std::future_status::ready);
  const std::string log = ::testing::internal::GetCapturedStderr();
  absl::Status served = serving.get();
  EXPECT_TRUE(served.ok()) << served;
  EXPECT_THAT(log, HasSubstr("SIGTERM received"));

  absl::StatusOr<LoadResult> slow_result = in_flight.get();
  ASSERT_TRUE(slow_result.ok()) << slow_result.status();
  EXPECT_EQ(slow_result->status, 200);
  EXPECT_EQ(slow_result->body, "slow done");
  EXPECT_FALSE(Fetch(port, "/slow", std::chrono::seconds(5)).ok());
}

TEST(ServeUntilSignal, ReturnsWhenTheServerIsStoppedElsewhere) {
  auto server = StartOrDie({}, Router());
  std::promise<void> ready;
  auto serving = std::async(std::launch::async,
                            [&] { return ServeUntilSignal(*server, [&] { ready.set_value(); }); });
  ASSERT_EQ(ready.get_future().wait_for(kPatience), std::future_status::ready);
  server->RequestStop();
  ASSERT_EQ(serving.wait_for(kPatience), std::future_status::ready);
  EXPECT_TRUE(serving.get().ok());
}

}  // namespace
}  // namespace modgraph::server
