// modgraph/server/http_server.h — the embeddable HTTP/1.1 server (Boost.Beast)
// that serves page handlers over loopback, one unified request scope per
// request.
//
// Like Node, it runs one io_context thread by default: many requests
// interleave on that thread at every co_await, and the request context — not
// the thread — says which request is running. Each request gets an id from a
// process-wide counter, a RequestContext with that id, and its handler is
// co_spawned on an executor that installs that context at every resumption
// (modgraph/context/asio.h).
//
//   modgraph::server::Router router;
//   (void)router.Add("/", home_page);
//   absl::StatusOr<std::unique_ptr<modgraph::server::HttpServer>> server =
//       modgraph::server::HttpServer::Start({.port = 8080}, std::move(router));
//   if (!server.ok()) return server.status();
//   fmt::print("listening on http://127.0.0.1:{}/\n", (*server)->port());
//   return modgraph::server::ServeUntilSignal(**server);  // Ctrl-C: graceful stop
//
// Responses: the handler's for a known path, 404 for an unknown one, 500 when
// the handler throws (logged to stderr with method, path, request id and the
// error), 400 for a request that is not valid HTTP/1.x. Keep-alive is honoured.
// Only loopback addresses are served.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "modgraph/server/http.h"
#include "modgraph/server/router.h"

namespace modgraph::server {

class HttpServer;

// Serves until SIGINT or SIGTERM arrives (or someone calls Stop()/RequestStop()),
// then stops gracefully: in-flight requests complete, the threads are joined.
// `on_ready`, if set, runs once the signal handlers are installed (a signal
// raised after that is not lost). Returns OK after a stop, or the error that
// prevented installing the signal handlers. One call per server at a time.
absl::Status ServeUntilSignal(HttpServer& server, std::function<void()> on_ready = {});

class HttpServer {
 public:
  struct Options {
    // A loopback address ("127.0.0.1", "::1", "localhost"); others are refused.
    std::string address = "127.0.0.1";
    // 0 picks a free port; port() reports it.
    std::uint16_t port = 0;
    // io_context threads. 1 serves like Node; with more, each connection runs
    // on its own strand and requests of different connections run in parallel.
    int threads = 1;
    // Off only for benchmarks that measure the request scope's cost: handlers
    // then run with no request scope at all (Request::id is still set).
    bool context_enabled = true;
    // Request bodies larger than this get 413.
    std::size_t max_body_bytes = 1 << 20;
  };

  // Binds, listens and starts the io_context threads. InvalidArgument for a
  // non-loopback or unparsable address or threads < 1; the bind error (for
  // example "address already in use") otherwise.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(Options options, Router router);

  // Stops gracefully and joins the threads.
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // The port the server listens on (the chosen one when Options::port was 0).
  std::uint16_t port() const noexcept;
  const Options& options() const noexcept;

  // Begins a graceful stop and returns at once: stop accepting, close idle
  // keep-alive connections, let in-flight requests finish (their responses
  // carry "Connection: close"). Idempotent, thread-safe; a handler may call it.
  void RequestStop();
  bool stop_requested() const noexcept;

  // Blocks until the server has stopped (after RequestStop(), from anywhere)
  // and its threads are joined. Must not be called from a handler.
  void Wait();

  // RequestStop() then Wait(): returns once in-flight requests have completed.
  void Stop();

  // Requests accepted so far (each one took a request id).
  std::uint64_t requests_started() const noexcept;

 private:
  struct Impl;
  explicit HttpServer(std::unique_ptr<Impl> impl);
  friend absl::Status ServeUntilSignal(HttpServer& server, std::function<void()> on_ready);

  std::unique_ptr<Impl> impl_;
};

}  // namespace modgraph::server
