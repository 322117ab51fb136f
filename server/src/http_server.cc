#include "modgraph/server/http_server.h"

#include <fmt/format.h>

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <exception>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <tuple>
#include <unordered_set>
#include <utility>
#include <vector>

#include "modgraph/context/asio.h"
#include "modgraph/context/context.h"
#include "modgraph/context/request_context.h"

namespace modgraph::server {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Strand = asio::strand<asio::io_context::executor_type>;
using Socket = tcp::socket::rebind_executor<Strand>::other;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

constexpr std::uint32_t kHeaderLimit = 64 * 1024;

// One connection. The socket's executor is the connection's strand; `busy` is
// touched only on that strand.
struct Session {
  explicit Session(Socket s) : socket(std::move(s)) {}
  Socket socket;
  bool busy = false;  // a request has been read and its response not yet written
};

std::string one_line(std::string text) {
  for (char& c : text) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return text;
}

std::string describe(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    return one_line(e.what());
  } catch (...) {
    return "unknown exception (not derived from std::exception)";
  }
}

Response plain(int status, std::string body) {
  return Response{
      .status = status, .content_type = "text/plain; charset=utf-8", .body = std::move(body)};
}

// Read errors that mean the peer went away (or we closed an idle connection),
// as opposed to bytes that are not HTTP.
bool connection_gone(const boost::system::error_code& ec) {
  return ec == http::error::end_of_stream || ec == http::error::partial_message ||
         ec == asio::error::eof || ec == asio::error::operation_aborted ||
         ec == asio::error::bad_descriptor || ec == asio::error::connection_reset ||
         ec == asio::error::broken_pipe || ec == asio::error::not_connected;
}

Request to_request(const http::request<http::string_body>& message, std::uint64_t id) {
  Request request;
  request.method = std::string(message.method_string());
  request.target = std::string(message.target());
  request.id = id;
  for (const auto& field : message) {
    std::string name(field.name_string());
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    auto [it, inserted] = request.headers.try_emplace(std::move(name), field.value());
    if (!inserted) {
      it->second += ", ";
      it->second += std::string_view(field.value());
    }
  }
  request.body = message.body();
  return request;
}

}  // namespace

struct HttpServer::Impl {
  Impl(Options opts, Router r)
      : options(std::move(opts)),
        router(std::move(r)),
        io(options.threads),
        control(asio::make_strand(io)),
        acceptor(control) {}

  Options options;
  Router router;
  asio::io_context io;
  Strand control;  // the acceptor's strand
  tcp::acceptor::rebind_executor<Strand>::other acceptor;
  std::uint16_t port = 0;
  std::atomic<bool> stopping{false};
  std::atomic<std::uint64_t> requests{0};

  std::mutex mu;  // guards sessions, signals and the transition to stopping
  std::unordered_set<std::shared_ptr<Session>> sessions;
  std::optional<asio::signal_set> signals;  // ServeUntilSignal's; declared after io

  std::mutex join_mu;
  std::vector<std::thread> threads;

  void RequestStop();
  asio::awaitable<void> Accept();
  asio::awaitable<void> Serve(std::shared_ptr<Session> session);
  asio::awaitable<Response> Handle(Session& session, Request& request);
  static asio::awaitable<Response> Invoke(const Handler& handler, const Request& request);
  void OnSignal(const boost::system::error_code& ec, int signal_number);
};

void HttpServer::Impl::RequestStop() {
  std::vector<std::shared_ptr<Session>> open;
  {
    std::lock_guard lock(mu);
    if (stopping.exchange(true)) return;
    open.assign(sessions.begin(), sessions.end());
    if (signals) {
      boost::system::error_code ignored;
      signals->cancel(ignored);
    }
  }
  asio::post(control, [this] {
    boost::system::error_code ignored;
    acceptor.close(ignored);
  });
  // An idle keep-alive connection is closed now; one with a request in flight
  // closes after writing its response (Serve checks `stopping`).
  for (std::shared_ptr<Session>& session : open) {
    asio::post(session->socket.get_executor(), [session] {
      if (!session->busy) {
        boost::system::error_code ignored;
        session->socket.close(ignored);
      }
    });
  }
}

void HttpServer::Impl::OnSignal(const boost::system::error_code& ec, int signal_number) {
  if (ec) return;  // cancelled by a stop that came from elsewhere
  const char* name = signal_number == SIGINT    ? "SIGINT"
                     : signal_number == SIGTERM ? "SIGTERM"
                                                : "signal";
  fmt::print(stderr, "modgraph server: {} received; stopping after in-flight requests\n", name);
  std::fflush(stderr);
  RequestStop();
}

asio::awaitable<void> HttpServer::Impl::Accept() {
  for (;;) {
    auto [ec, socket] = co_await acceptor.async_accept(asio::make_strand(io), kNoThrow);
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
      // Out of descriptors and the like: say so and retry shortly rather than spin.
      fmt::print(stderr, "modgraph server: accept failed: {}\n", ec.message());
      asio::steady_timer backoff(control, std::chrono::milliseconds(50));
      co_await backoff.async_wait(kNoThrow);
      continue;
    }
    boost::system::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    auto session = std::make_shared<Session>(std::move(socket));
    {
      std::lock_guard lock(mu);
      if (stopping.load()) {
        session->socket.close(ignored);
        continue;
      }
      sessions.insert(session);
    }
    asio::co_spawn(session->socket.get_executor(), Serve(session), asio::detached);
  }
}

asio::awaitable<Response> HttpServer::Impl::Invoke(const Handler& handler, const Request& request) {
  // Calling the handler here, not at co_spawn, puts any synchronous part of it
  // inside the request scope too.
  co_return co_await handler(request);
}

asio::awaitable<Response> HttpServer::Impl::Handle(Session& session, Request& request) {
  if (absl::Status decoded = DecodeTarget(request.target, request.path, request.query);
      !decoded.ok()) {
    co_return plain(400, fmt::format("400 bad request: {}\n", std::string(decoded.message())));
  }
  const Handler* handler = router.Find(request.path);
  if (handler == nullptr) {
    co_return plain(404, fmt::format("404 not found: {}\n", request.path));
  }

  std::exception_ptr error;
  Response response;
  if (options.context_enabled) {
    // Created outside any context, so a request never inherits another's values.
    RequestContext request_scope =
        run(Context(), [&] { return RequestContext::create(request.id); });
    // modgraph::co_spawn wraps the strand with the request context: the handler
    // starts, resumes after every co_await, and completes inside the request scope.
    std::tie(error, response) = co_await run_request(request_scope, [&] {
      return modgraph::co_spawn(session.socket.get_executor(), Invoke(*handler, request), kNoThrow);
    });
    // The completion may have resumed us inline, still inside the request scope;
    // hop through the strand so the connection's own code runs in none, and
    // while request_scope is still alive.
    co_await asio::post(session.socket.get_executor(), asio::use_awaitable);
  } else {
    // The same spawn and hop without the scope: on and off differ only by the
    // request context, which is what the benchmarks compare.
    std::tie(error, response) =
        co_await asio::co_spawn(session.socket.get_executor(), Invoke(*handler, request), kNoThrow);
    co_await asio::post(session.socket.get_executor(), asio::use_awaitable);
  }

  if (error) {
    fmt::print(stderr, "modgraph server: 500 for {} {} (request {}): handler threw: {}\n",
               request.method, request.path, request.id, describe(error));
    std::fflush(stderr);
    co_return plain(500, fmt::format("500 internal server error (request {})\n", request.id));
  }
  if (response.status < 100 || response.status > 599) {
    fmt::print(stderr, "modgraph server: 500 for {} {} (request {}): handler returned status {}\n",
               request.method, request.path, request.id, response.status);
    std::fflush(stderr);
    co_return plain(500, fmt::format("500 internal server error (request {})\n", request.id));
  }
  co_return response;
}

asio::awaitable<void> HttpServer::Impl::Serve(std::shared_ptr<Session> session) {
  beast::flat_buffer buffer;
  for (;;) {
    // Stop sees either busy == false (and closes the socket) or, after this
    // point, stopping == true: both run on this strand.
    session->busy = false;
    if (stopping.load()) break;

    http::request_parser<http::string_body> parser;
    parser.header_limit(kHeaderLimit);
    parser.body_limit(options.max_body_bytes);
    auto [read_error, read_bytes] =
        co_await http::async_read(session->socket, buffer, parser, kNoThrow);
    if (read_error) {
      if (connection_gone(read_error)) break;
      // Bytes that are not HTTP/1.x (or too much of it): answer once and close.
      const int status = read_error == http::error::body_limit     ? 413
                         : read_error == http::error::header_limit ? 431
                                                                   : 400;
      http::response<http::string_body> reply{static_cast<http::status>(status), 11};
      reply.set(http::field::server, "modgraph");
      reply.set(http::field::content_type, "text/plain; charset=utf-8");
      reply.keep_alive(false);
      reply.body() = fmt::format("{} malformed request: {}\n", status, read_error.message());
      reply.prepare_payload();
      co_await http::async_write(session->socket, reply, kNoThrow);
      break;
    }
    session->busy = true;

    const http::request<http::string_body>& message = parser.get();
    Request request = to_request(message, NextRequestId());
    requests.fetch_add(1, std::memory_order_relaxed);
    Response response = co_await Handle(*session, request);

    const bool keep_alive = message.keep_alive() && !stopping.load();
    http::response<http::string_body> reply{static_cast<http::status>(response.status),
                                            message.version()};
    reply.set(http::field::server, "modgraph");
    reply.set(http::field::content_type, response.content_type);
    reply.keep_alive(keep_alive);
    reply.body() = std::move(response.body);
    reply.prepare_payload();
    if (message.method() == http::verb::head) reply.body().clear();  // length stays
    auto [write_error, written] = co_await http::async_write(session->socket, reply, kNoThrow);
    if (write_error || !keep_alive) break;
  }

  boost::system::error_code ignored;
  session->socket.shutdown(tcp::socket::shutdown_send, ignored);
  session->socket.close(ignored);
  std::lock_guard lock(mu);
  sessions.erase(session);
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() { Stop(); }

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(Options options, Router router) {
  if (options.threads < 1) {
    return absl::InvalidArgumentError(
        fmt::format("server: threads must be at least 1 (got {})", options.threads));
  }
  boost::system::error_code ec;
  const std::string host = options.address == "localhost" ? "127.0.0.1" : options.address;
  const asio::ip::address address = asio::ip::make_address(host, ec);
  if (ec) {
    return absl::InvalidArgumentError(fmt::format(
        "server: '{}' is not an IP address (use 127.0.0.1, ::1 or localhost)", options.address));
  }
  if (!address.is_loopback()) {
    return absl::InvalidArgumentError(fmt::format(
        "server: refusing to listen on {}: it is not a loopback address, and the modgraph server "
        "serves loopback only (use 127.0.0.1, ::1 or localhost)",
        options.address));
  }

  auto impl = std::make_unique<Impl>(std::move(options), std::move(router));
  const tcp::endpoint endpoint(address, impl->options.port);
  auto fail = [&](std::string_view what) {
    return absl::UnavailableError(fmt::format("server: cannot {} {}:{}: {}", what,
                                              impl->options.address, impl->options.port,
                                              ec.message()));
  };
  if (impl->acceptor.open(endpoint.protocol(), ec); ec) return fail("open a socket for");
  if (impl->acceptor.set_option(asio::socket_base::reuse_address(true), ec); ec) {
    return fail("set SO_REUSEADDR on");
  }
  if (impl->acceptor.bind(endpoint, ec); ec) return fail("bind");
  if (impl->acceptor.listen(asio::socket_base::max_listen_connections, ec); ec) {
    return fail("listen on");
  }
  impl->port = impl->acceptor.local_endpoint(ec).port();
  if (ec) return fail("read the port of");

  Impl& self = *impl;
  asio::co_spawn(self.control, self.Accept(), asio::detached);
  for (int i = 0; i < self.options.threads; ++i) {
    self.threads.emplace_back([&self] {
      for (;;) {
        try {
          self.io.run();
          return;
        } catch (const std::exception& e) {
          // A handler escaped Asio; keep the thread serving the others.
          fmt::print(stderr, "modgraph server: io thread caught: {}\n", one_line(e.what()));
        }
      }
    });
  }
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

std::uint16_t HttpServer::port() const noexcept { return impl_->port; }
const HttpServer::Options& HttpServer::options() const noexcept { return impl_->options; }
void HttpServer::RequestStop() { impl_->RequestStop(); }
bool HttpServer::stop_requested() const noexcept { return impl_->stopping.load(); }
std::uint64_t HttpServer::requests_started() const noexcept { return impl_->requests.load(); }

void HttpServer::Wait() {
  std::lock_guard lock(impl_->join_mu);
  for (std::thread& thread : impl_->threads) {
    if (thread.get_id() == std::this_thread::get_id()) {
      throw std::logic_error(
          "HttpServer::Wait()/Stop() called from a server thread (a handler?); call "
          "RequestStop() there instead");
    }
  }
  for (std::thread& thread : impl_->threads) {
    if (thread.joinable()) thread.join();
  }
}

void HttpServer::Stop() {
  RequestStop();
  Wait();
}

absl::Status ServeUntilSignal(HttpServer& server, std::function<void()> on_ready) {
  HttpServer::Impl& impl = *server.impl_;
  {
    std::lock_guard lock(impl.mu);
    if (impl.signals) {
      return absl::FailedPreconditionError("ServeUntilSignal: already serving this server");
    }
    if (!impl.stopping.load()) {
      boost::system::error_code ec;
      impl.signals.emplace(impl.io);
      for (int signal_number : {SIGINT, SIGTERM}) {
        if (impl.signals->add(signal_number, ec); ec) {
          impl.signals.reset();
          return absl::InternalError(
              fmt::format("ServeUntilSignal: cannot install a handler for signal {}: {}",
                          signal_number, ec.message()));
        }
      }
      impl.signals->async_wait([&impl](const boost::system::error_code& error, int signal_number) {
        impl.OnSignal(error, signal_number);
      });
    }
  }
  if (on_ready) on_ready();
  server.Wait();
  std::lock_guard lock(impl.mu);
  impl.signals.reset();  // restores the default dispositions
  return absl::OkStatus();
}

}  // namespace modgraph::server
