// The server's door: timeouts, the connection cap, the drain deadline and the
// second signal, methods, and malformed requests. Every timeout is configured
// small; tests wait for the server's own events (a reply, a close) and bound
// each wait by RawClient::kPatience only to turn a hang into a failure.
#include <fmt/format.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>
#include <chrono>
#include <csignal>
#include <future>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "modgraph/server/http_server.h"
#include "modgraph/testing/load_client.h"
#include "raw_client.h"

namespace modgraph::server {
namespace {

namespace asio = boost::asio;
using std::chrono::milliseconds;
using test::RawClient;
using ::testing::AllOf;
using ::testing::EndsWith;
using testing::Fetch;
using ::testing::HasSubstr;
using testing::LoadResult;
using ::testing::Not;
using ::testing::StartsWith;

constexpr auto kPatience = RawClient::kPatience;
constexpr std::string_view kEnd = "<end>";

// Answers "hello <end>" at once.
Handler Hello() {
  return [](const Request& request) -> asio::awaitable<Response> {
    co_return Response{.content_type = "text/plain",
                       .body = fmt::format("hello {} {}{}", request.method, request.body, kEnd)};
  };
}

// A page that stays in flight until its request is cancelled (or twice the
// patience passes). Tells the test when `expected` requests have entered it
// and whether it saw the cancellation. With `ignore_cancellation` it swallows
// the cancellation and goes on waiting: a handler the server must abandon.
class StuckPage {
 public:
  explicit StuckPage(int expected = 1, bool ignore_cancellation = false)
      : expected_(expected), ignore_(ignore_cancellation) {}

  Handler handler() {
    return [this](const Request&) -> asio::awaitable<Response> {
      if (entered_.fetch_add(1) + 1 == expected_) all_entered_.set_value();
      asio::steady_timer timer(co_await asio::this_coro::executor, 2 * kPatience);
      if (!ignore_) {
        try {
          co_await timer.async_wait(asio::use_awaitable);
        } catch (const boost::system::system_error& e) {
          if (e.code() == asio::error::operation_aborted) saw_cancellation_ = true;
          throw;
        }
      } else {
        co_await asio::this_coro::throw_if_cancelled(false);
        auto [ec] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
        if (ec == asio::error::operation_aborted) {
          saw_cancellation_ = true;
          co_await asio::this_coro::reset_cancellation_state();
          timer.expires_after(2 * kPatience);
          co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
        }
      }
      co_return Response{.body = "finished"};
    };
  }

  bool WaitUntilAllEntered() {
    return entered_future_.wait_for(kPatience) == std::future_status::ready;
  }
  bool saw_cancellation() const { return saw_cancellation_.load(); }

 private:
  const int expected_;
  const bool ignore_;
  std::atomic<int> entered_{0};
  std::promise<void> all_entered_;
  std::future<void> entered_future_ = all_entered_.get_future();
  std::atomic<bool> saw_cancellation_{false};
};

std::unique_ptr<HttpServer> StartOrDie(HttpServer::Options options, Router router) {
  absl::StatusOr<std::unique_ptr<HttpServer>> server =
      HttpServer::Start(std::move(options), std::move(router));
  if (!server.ok()) throw std::runtime_error(std::string(server.status().message()));
  return std::move(*server);
}

Router HelloRouter() {
  Router router;
  if (!router.Add("/hello", Hello()).ok()) throw std::logic_error("route");
  return router;
}

std::string Get(std::string_view path) {
  return fmt::format("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", path);
}

// ---- timeouts --------------------------------------------------------------

TEST(HttpLimits, IdleKeepAliveConnectionIsClosedAfterTheIdleTimeout) {
  auto server = StartOrDie({.idle_timeout = milliseconds(100)}, HelloRouter());
  RawClient client(server->port());
  ASSERT_TRUE(client.Send(Get("/hello")));
  RawClient::Read reply = client.ReadUntil(kEnd);
  ASSERT_THAT(reply.bytes, AllOf(StartsWith("HTTP/1.1 200 OK"), EndsWith(kEnd)));
  ASSERT_FALSE(reply.closed);
  // Nothing more is sent: the server closes the connection, quietly.
  RawClient::Read after = client.ReadUntilClosed();
  EXPECT_TRUE(after.closed) << "a keep-alive connection idle past the idle timeout stayed open";
  EXPECT_EQ(after.bytes, "");

  // A connection that never sends a byte is idle too.
  RawClient silent(server->port());
  RawClient::Read nothing = silent.ReadUntilClosed();
  EXPECT_TRUE(nothing.closed);
  EXPECT_EQ(nothing.bytes, "");
}

TEST(HttpLimits, HeadersTrickledPastTheHeaderTimeoutGet408AndClose) {
  auto server = StartOrDie({.header_timeout = milliseconds(300)}, HelloRouter());
  RawClient client(server->port());
  ASSERT_TRUE(client.Send("GET /hello HTTP/1.1\r\nHost: x\r\nX-Slow: "));
  // One byte every 20 ms keeps the connection busy; the header deadline is for
  // the whole request head, so the trickle does not extend it. (The pause only
  // paces the client; the test ends on the server's reply and close.)
  RawClient::Read reply;
  const auto give_up = std::chrono::steady_clock::now() + kPatience;
  while (!reply.closed && std::chrono::steady_clock::now() < give_up) {
    if (!client.Send("a")) break;
    RawClient::Read part = client.ReadUntilClosed(milliseconds(20));
    reply.bytes += part.bytes;
    reply.closed = part.closed;
  }
  if (!reply.closed) reply = client.ReadUntilClosed();
  EXPECT_THAT(reply.bytes, StartsWith("HTTP/1.1 408 Request Timeout"));
  EXPECT_THAT(reply.bytes, HasSubstr("headers did not arrive within 300 ms"));
  EXPECT_THAT(reply.bytes, HasSubstr("Connection: close"));
  EXPECT_TRUE(reply.closed);
}

TEST(HttpLimits, ABodyShorterThanItsContentLengthGets408AndClose) {
  Router router;
  ASSERT_TRUE(router.Add("/form", Hello(), {"POST"}).ok());
  auto server = StartOrDie({.body_timeout = milliseconds(200)}, std::move(router));
  RawClient client(server->port());
  ASSERT_TRUE(client.Send("POST /form HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello"));
  RawClient::Read reply = client.ReadUntilClosed();
  EXPECT_THAT(reply.bytes, StartsWith("HTTP/1.1 408 Request Timeout"));
  EXPECT_THAT(reply.bytes, HasSubstr("body did not arrive within 200 ms"));
  EXPECT_TRUE(reply.closed);

  // A complete body is served.
  RawClient whole(server->port());
  ASSERT_TRUE(whole.Send("POST /form HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"));
  EXPECT_THAT(whole.ReadUntil(kEnd).bytes, HasSubstr("hello POST hello<end>"));
}

TEST(HttpLimits, StartRefusesTimeoutsThatAreNotPositiveAndAnEmptyCap) {
  for (HttpServer::Options options : {HttpServer::Options{.idle_timeout = milliseconds(0)},
                                      HttpServer::Options{.header_timeout = milliseconds(-1)},
                                      HttpServer::Options{.body_timeout = milliseconds(0)},
                                      HttpServer::Options{.write_timeout = milliseconds(0)},
                                      HttpServer::Options{.drain_timeout = milliseconds(0)},
                                      HttpServer::Options{.max_connections = 0}}) {
    absl::StatusOr<std::unique_ptr<HttpServer>> server = HttpServer::Start(options, Router());
    ASSERT_FALSE(server.ok());
    EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument) << server.status();
  }
  EXPECT_THAT(
      std::string(
          HttpServer::Start({.idle_timeout = milliseconds(0)}, Router()).status().message()),
      HasSubstr("idle_timeout must be positive"));
}

// ---- the connection cap ----------------------------------------------------

TEST(HttpLimits, AtTheCapANewConnectionClosesTheLongestIdleOne) {
  auto server = StartOrDie({.max_connections = 2}, HelloRouter());
  ASSERT_EQ(server->connection_limit(), 2);
  RawClient first(server->port());
  ASSERT_TRUE(first.Send(Get("/hello")));
  ASSERT_THAT(first.ReadUntil(kEnd).bytes, EndsWith(kEnd));
  RawClient second(server->port());
  ASSERT_TRUE(second.Send(Get("/hello")));
  ASSERT_THAT(second.ReadUntil(kEnd).bytes, EndsWith(kEnd));

  // Both are idle keep-alive connections; a third one is served, and the one
  // idle longest (the first) makes room.
  RawClient third(server->port());
  ASSERT_TRUE(third.Send(Get("/hello")));
  EXPECT_THAT(third.ReadUntil(kEnd).bytes, AllOf(StartsWith("HTTP/1.1 200"), EndsWith(kEnd)));
  RawClient::Read evicted = first.ReadUntilClosed();
  EXPECT_TRUE(evicted.closed);
  EXPECT_EQ(evicted.bytes, "");
  EXPECT_EQ(server->connections_evicted(), 1u);

  // The second one still serves.
  ASSERT_TRUE(second.Send(Get("/hello")));
  EXPECT_THAT(second.ReadUntil(kEnd).bytes, AllOf(StartsWith("HTTP/1.1 200"), EndsWith(kEnd)));
}

TEST(HttpLimits, AtTheCapWithEveryConnectionBusyANewOneGets503AndIsClosed) {
  StuckPage stuck(/*expected=*/2);
  Router router;
  ASSERT_TRUE(router.Add("/stuck", stuck.handler()).ok());
  auto server =
      StartOrDie({.max_connections = 2, .drain_timeout = milliseconds(100)}, std::move(router));
  const std::uint16_t port = server->port();
  auto a = std::async(std::launch::async, [port] { return Fetch(port, "/stuck"); });
  auto b = std::async(std::launch::async, [port] { return Fetch(port, "/stuck"); });
  ASSERT_TRUE(stuck.WaitUntilAllEntered());

  RawClient third(port);
  ASSERT_TRUE(third.Send(Get("/stuck")));
  RawClient::Read refused = third.ReadUntilClosed();
  EXPECT_THAT(refused.bytes, StartsWith("HTTP/1.1 503 Service Unavailable"));
  EXPECT_THAT(refused.bytes, HasSubstr("Retry-After: 1"));
  EXPECT_THAT(refused.bytes, HasSubstr("all 2 connections have a request in progress"));
  EXPECT_TRUE(refused.closed);
  EXPECT_EQ(server->connections_refused(), 1u);
  EXPECT_EQ(server->connections_evicted(), 0u) << "a busy connection was closed to make room";

  server->Stop();  // the stuck requests end at the drain deadline
  EXPECT_EQ(a.get()->status, 503);
  EXPECT_EQ(b.get()->status, 503);
}

TEST(HttpLimits, TheCapIsLoweredToFitTheDescriptorLimit) {
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
  if (saved.rlim_cur != RLIM_INFINITY && saved.rlim_cur < 256) {
    GTEST_SKIP() << "RLIMIT_NOFILE is already below 256";
  }
  rlimit lowered = saved;
  lowered.rlim_cur = 256;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &lowered), 0);
  absl::StatusOr<std::unique_ptr<HttpServer>> server =
      HttpServer::Start({.max_connections = 512}, Router());
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &saved), 0);
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_EQ((*server)->connection_limit(), 256 - 64);
}

// ---- stopping: the drain deadline and the second signal ---------------------

TEST(HttpLimits, TheDrainDeadlineCancelsInFlightRequestsWith503) {
  StuckPage stuck;
  Router router;
  ASSERT_TRUE(router.Add("/stuck", stuck.handler()).ok());
  auto server = StartOrDie({.drain_timeout = milliseconds(100)}, std::move(router));
  const std::uint16_t port = server->port();
  auto in_flight = std::async(std::launch::async, [port] { return Fetch(port, "/stuck"); });
  ASSERT_TRUE(stuck.WaitUntilAllEntered());

  ::testing::internal::CaptureStderr();
  auto stopped = std::async(std::launch::async, [&] { server->Stop(); });
  const bool stopped_in_time = stopped.wait_for(kPatience) == std::future_status::ready;
  const std::string log = ::testing::internal::GetCapturedStderr();
  ASSERT_TRUE(stopped_in_time) << "Stop() waited for a request past the drain deadline";
  EXPECT_TRUE(stuck.saw_cancellation());
  absl::StatusOr<LoadResult> result = in_flight.get();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->status, 503);
  EXPECT_THAT(result->body, HasSubstr("did not finish within 100 ms"));
  EXPECT_EQ(server->requests_cancelled(), 1u);
  EXPECT_EQ(server->requests_abandoned(), 0u);
  EXPECT_THAT(log, HasSubstr("drain deadline (100 ms) passed"));
  EXPECT_THAT(log, HasSubstr("cancelled at the drain deadline"));
}

TEST(HttpLimits, AHandlerThatIgnoresCancellationIsAbandoned) {
  StuckPage stuck(1, /*ignore_cancellation=*/true);
  Router router;
  ASSERT_TRUE(router.Add("/stuck", stuck.handler()).ok());
  auto server = StartOrDie({.drain_timeout = milliseconds(100)}, std::move(router));
  const std::uint16_t port = server->port();
  auto in_flight = std::async(std::launch::async, [port] { return Fetch(port, "/stuck"); });
  ASSERT_TRUE(stuck.WaitUntilAllEntered());

  ::testing::internal::CaptureStderr();
  auto stopped = std::async(std::launch::async, [&] { server->Stop(); });
  const bool stopped_in_time = stopped.wait_for(kPatience) == std::future_status::ready;
  const std::string log = ::testing::internal::GetCapturedStderr();
  ASSERT_TRUE(stopped_in_time) << "Stop() waited for a handler that ignores cancellation";
  EXPECT_TRUE(stuck.saw_cancellation());
  EXPECT_EQ(server->requests_abandoned(), 1u);
  EXPECT_THAT(log, HasSubstr("abandoning them"));
  server.reset();  // destroys the abandoned coroutine and closes its connection
  absl::StatusOr<LoadResult> result = in_flight.get();
  EXPECT_FALSE(result.ok()) << "an abandoned request got a response: " << result->status;
}

TEST(HttpLimits, ASecondSignalStopsAtOnce) {
  StuckPage stuck;
  Router router;
  ASSERT_TRUE(router.Add("/stuck", stuck.handler()).ok());
  // A drain deadline far beyond the test's patience: only the second signal
  // can end this stop in time.
  auto server = StartOrDie({.drain_timeout = 10 * kPatience}, std::move(router));
  const std::uint16_t port = server->port();
  std::promise<void> ready;
  auto serving = std::async(std::launch::async,
                            [&] { return ServeUntilSignal(*server, [&] { ready.set_value(); }); });
  ASSERT_EQ(ready.get_future().wait_for(kPatience), std::future_status::ready);
  auto in_flight = std::async(std::launch::async, [port] { return Fetch(port, "/stuck"); });
  ASSERT_TRUE(stuck.WaitUntilAllEntered());

  ::testing::internal::CaptureStderr();
  ASSERT_EQ(::kill(::getpid(), SIGTERM), 0);
  const auto give_up = std::chrono::steady_clock::now() + kPatience;
  while (!server->stop_requested() && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::yield();
  }
  ASSERT_TRUE(server->stop_requested());
  ASSERT_EQ(::kill(::getpid(), SIGINT), 0);
  const bool returned = serving.wait_for(kPatience) == std::future_status::ready;
  const std::string log = ::testing::internal::GetCapturedStderr();
  ASSERT_TRUE(returned) << "a second signal did not stop the server";
  EXPECT_TRUE(serving.get().ok());
  EXPECT_THAT(log, HasSubstr("SIGTERM received"));
  EXPECT_THAT(log, HasSubstr("second signal (SIGINT) received; stopping at once"));
  EXPECT_EQ(server->requests_abandoned(), 1u);
  server.reset();
  absl::StatusOr<LoadResult> result = in_flight.get();
  EXPECT_FALSE(result.ok()) << "an abandoned request got a response: " << result->status;
}

// ---- methods ---------------------------------------------------------------

TEST(HttpLimits, AMethodARouteDoesNotServeGets405WithAllowAndTheConnectionStays) {
  Router router;
  ASSERT_TRUE(router.Add("/hello", Hello()).ok());
  ASSERT_TRUE(router.Add("/form", Hello(), {"POST", "PUT"}).ok());
  auto server = StartOrDie({}, std::move(router));
  RawClient client(server->port());

  ASSERT_TRUE(client.Send("DELETE /hello HTTP/1.1\r\nHost: x\r\n\r\n"));
  RawClient::Read reply = client.ReadUntil("serves GET, HEAD\n");
  EXPECT_THAT(reply.bytes, StartsWith("HTTP/1.1 405 Method Not Allowed"));
  EXPECT_THAT(reply.bytes, HasSubstr("Allow: GET, HEAD\r\n"));
  EXPECT_FALSE(reply.closed);

  ASSERT_TRUE(client.Send("GET /form HTTP/1.1\r\nHost: x\r\n\r\n"));
  reply = client.ReadUntil("serves POST, PUT\n");
  EXPECT_THAT(reply.bytes, StartsWith("HTTP/1.1 405"));
  EXPECT_THAT(reply.bytes, HasSubstr("Allow: POST, PUT\r\n"));

  // A method outside RFC 9110's set is 501; methods are case-sensitive.
  for (const char* method : {"FOO", "get"}) {
    ASSERT_TRUE(client.Send(fmt::format("{} /hello HTTP/1.1\r\nHost: x\r\n\r\n", method)));
    reply = client.ReadUntil("section 9)\n");
    EXPECT_THAT(reply.bytes, StartsWith("HTTP/1.1 501 Not Implemented")) << method;
    EXPECT_THAT(reply.bytes, HasSubstr("Allow: GET, HEAD\r\n")) << method;
  }

  // The same connection still serves what the routes do: GET, HEAD (headers
  // only, with the length of the GET body) and POST.
  ASSERT_TRUE(client.Send(Get("/hello")));
  EXPECT_THAT(client.ReadUntil(kEnd).bytes, StartsWith("HTTP/1.1 200 OK"));
  ASSERT_TRUE(client.Send("HEAD /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
  reply = client.ReadUntilClosed();
  EXPECT_THAT(reply.bytes, StartsWith("HTTP/1.1 200 OK"));
  EXPECT_THAT(reply.bytes, HasSubstr("Content-Length: 16\r\n"));  // of "hello HEAD <end>"
  EXPECT_THAT(reply.bytes, EndsWith("\r\n\r\n"));
  RawClient post(server->port());
  ASSERT_TRUE(post.Send("POST /form HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"));
  EXPECT_THAT(post.ReadUntil(kEnd).bytes, HasSubstr("hello POST hi<end>"));
}

TEST(HttpLimits, RouterRefusesMethodsThatAreNotHttpMethods) {
  Router router;
  absl::Status added = router.Add("/x", Hello(), {"get"});
  EXPECT_EQ(added.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(added.message()), HasSubstr("'get' for path '/x' is not an HTTP method"));
  EXPECT_EQ(router.Add("/x", Hello(), {}).code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(router.Add("/x", Hello(), {"GET", "POST"}).ok());
  const Route* route = router.Find("/x");
  ASSERT_NE(route, nullptr);
  EXPECT_EQ(route->allow, "GET, HEAD, POST");
  EXPECT_TRUE(route->serves("HEAD"));
  EXPECT_FALSE(route->serves("PUT"));
}

// ---- malformed requests ----------------------------------------------------

TEST(HttpLimits, AMalformedRequestGetsItsErrorAndTheConnectionCloses) {
  auto server = StartOrDie({}, HelloRouter());
  struct Case {
    std::string bytes;
    std::string status_line;
  };
  for (const Case& c : {
           // Keep-alive requests (no Connection: close): the server closes.
           Case{"GET /hello%zz HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400 Bad Request"},
           Case{"GET /hello%00 HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400 Bad Request"},
           Case{"GET http://x/hello HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400 Bad Request"},
           Case{"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400 Bad Request"},
           Case{"GARBAGE\r\n\r\n", "HTTP/1.1 400 Bad Request"},
           Case{"GET /hello HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", "HTTP/1.1 400 Bad Request"},
           Case{"GET /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
                "HTTP/1.1 400 Bad Request"},
           Case{"POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n",
                "HTTP/1.1 413 Payload Too Large"},
           Case{"GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(70'000, 'a') + "\r\n\r\n",
                "HTTP/1.1 431 Request Header Fields Too Large"},
       }) {
    RawClient client(server->port());
    // A valid request pipelined behind the malformed one must not be answered.
    ASSERT_TRUE(client.Send(c.bytes + Get("/hello")));
    RawClient::Read reply = client.ReadUntilClosed();
    EXPECT_THAT(reply.bytes, StartsWith(c.status_line)) << c.bytes.substr(0, 60);
    EXPECT_THAT(reply.bytes, HasSubstr("Connection: close")) << c.bytes.substr(0, 60);
    EXPECT_THAT(reply.bytes, Not(HasSubstr(kEnd))) << c.bytes.substr(0, 60);
    EXPECT_TRUE(reply.closed) << "the connection stayed open after " << c.bytes.substr(0, 60);
  }
  absl::StatusOr<LoadResult> r = Fetch(server->port(), "/hello");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);
}

}  // namespace
}  // namespace modgraph::server
