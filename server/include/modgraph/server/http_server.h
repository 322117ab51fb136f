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
// Responses: the handler's for a known path and method; 404 for an unknown
// path; 405 with an Allow header for a method the route does not serve, 501 for
// a method outside RFC 9110's; 500 when the handler throws (logged to stderr
// with method, path, request id and the error). A request that is not valid
// HTTP/1.x gets 400 (431 for headers over 64 KiB, 413 for a body over
// Options::max_body_bytes, 408 when it arrives too slowly) and the connection is
// closed. Keep-alive is honoured otherwise. Only loopback addresses are served.
//
// Limits (Options; docs/server.md compares the defaults with nginx, Envoy and
// Node): idle keep-alive, header-read, body-read and response-write timeouts, a
// connection cap (when it is reached the longest-waiting idle connection is
// closed to make room, as nginx reuses keep-alive connections; with none idle
// the newcomer gets 503), and a drain deadline after a stop, past which
// in-flight handlers are cancelled.
#pragma once

#include <chrono>
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
// then stops gracefully: in-flight requests get Options::drain_timeout to
// complete, the threads are joined. A second SIGINT or SIGTERM during the drain
// stops at once (Abort()). Signals are received on the calling thread, so they
// are seen even while every io thread is busy; SIGINT and SIGTERM are unblocked
// on it while serving, so a caller may block them during start-up (threads it
// starts then inherit the block) and a signal raised meanwhile is handled as
// soon as serving begins. `on_ready`, if set, runs once
// the signal handlers are installed (a signal raised after that is not lost).
// Returns OK after a stop, or the error that prevented installing the signal
// handlers. One call per server at a time.
absl::Status ServeUntilSignal(HttpServer& server, std::function<void()> on_ready = {});

class HttpServer {
 public:
  // The longest Options::busy_poll: past a scheduler tick, polling saves nothing.
  static constexpr std::chrono::microseconds kMaxBusyPoll{10'000};

  struct Options {
    // A loopback address ("127.0.0.1", "::1", "localhost"); others are refused.
    std::string address = "127.0.0.1";
    // 0 picks a free port; port() reports it.
    std::uint16_t port = 0;
    // io threads, each running its own io_context. 1 serves like Node; with
    // more, connections are spread over the threads as they are accepted, so
    // requests of different connections run in parallel, and each connection
    // stays on its thread (its requests run in order, without a strand).
    int threads = 1;
    // How long an io thread keeps polling for events after its last one before
    // it blocks in epoll_wait; 0 (the default) blocks at once. Between polls it
    // yields the CPU (sched_yield), so another runnable thread on that core — a
    // client sharing the machine, the other io thread — usually runs first. Spends
    // CPU to save the sleep and wake-up per request that an io thread with
    // spare capacity otherwise pays (a context switch and, in a VM, an
    // inter-processor interrupt). Linux's busy polling (net.core.busy_poll,
    // SO_BUSY_POLL) does this in the kernel for device queues, which loopback
    // sockets do not have. From 0 to kMaxBusyPoll; docs/benchmarks.md has figures.
    std::chrono::microseconds busy_poll{0};
    // Off only for benchmarks that measure the request scope's cost: handlers
    // then run with no request scope at all (Request::id is still set).
    bool context_enabled = true;
    // Request bodies larger than this get 413 (nginx client_max_body_size: 1 MiB).
    std::size_t max_body_bytes = 1 << 20;

    // Timeouts. Each must be positive. A connection waiting for the first byte
    // of its next request is closed quietly after `idle_timeout` (nginx
    // keepalive_timeout: 75 s). From a request's first byte, its request line
    // and headers must arrive within `header_timeout`, and then its body within
    // `body_timeout`; otherwise 408 and close (whole-phase deadlines, so a
    // client trickling a byte at a time is cut off too; nginx
    // client_header_timeout / client_body_timeout and Node headersTimeout:
    // 60 s). A response not written within `write_timeout` (the client stopped
    // reading) closes the connection (nginx send_timeout: 60 s). Handlers
    // themselves have no deadline while the server runs.
    std::chrono::milliseconds idle_timeout{75'000};
    std::chrono::milliseconds header_timeout{60'000};
    std::chrono::milliseconds body_timeout{60'000};
    std::chrono::milliseconds write_timeout{60'000};

    // Open connections at most (nginx worker_connections: 512). Lowered to
    // leave 64 descriptors under RLIMIT_NOFILE (connection_limit() reports the
    // effective cap). At the cap, a new connection closes the idle connection
    // that has waited longest for a request; with none idle it is answered
    // with 503 and closed.
    int max_connections = 512;

    // After RequestStop() (or SIGTERM): how long in-flight requests may run on.
    // Past it they are cancelled — the handler's pending co_await throws
    // operation_aborted (terminal cancellation), the client gets 503 — and
    // connections still open 1 s later are abandoned as by Abort().
    std::chrono::milliseconds drain_timeout{10'000};
  };

  // Binds, listens and starts the io_context threads (named "modgraph-io0",
  // "modgraph-io1", ...). InvalidArgument for a non-loopback or unparsable
  // address, threads < 1, busy_poll outside 0–10 ms, a timeout that is not
  // positive or max_connections < 1; the bind error (for example "address
  // already in use") otherwise.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(Options options, Router router);

  // Stops gracefully and joins the threads.
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // The port the server listens on (the chosen one when Options::port was 0).
  std::uint16_t port() const noexcept;
  const Options& options() const noexcept;
  // The effective connection cap: Options::max_connections, lowered to fit
  // RLIMIT_NOFILE.
  int connection_limit() const noexcept;

  // Begins a graceful stop and returns at once: stop accepting, close idle
  // keep-alive connections and connections still sending a request, let
  // in-flight requests finish (their responses carry "Connection: close")
  // until Options::drain_timeout, then cancel them. Idempotent, thread-safe; a
  // handler may call it.
  void RequestStop();
  bool stop_requested() const noexcept;

  // Stops at once: the io threads stop running handlers, in-flight requests
  // are abandoned (their coroutines destroyed when the server is) and every
  // connection is closed without a response. Wait() then returns as soon as
  // each io thread has left the handler it was running. Thread-safe; not from
  // a handler.
  void Abort();

  // Blocks until the server has stopped (after RequestStop(), from anywhere)
  // and its threads are joined. Must not be called from a handler.
  void Wait();

  // RequestStop() then Wait(): returns once in-flight requests have completed.
  void Stop();

  // Requests accepted so far (each one took a request id).
  std::uint64_t requests_started() const noexcept;
  // Requests cancelled at the drain deadline, and requests abandoned by
  // Abort() (or because they ignored that cancellation).
  std::uint64_t requests_cancelled() const noexcept;
  std::uint64_t requests_abandoned() const noexcept;
  // Connections closed to make room under the cap, and connections refused
  // with 503 because every connection had a request in progress.
  std::uint64_t connections_evicted() const noexcept;
  std::uint64_t connections_refused() const noexcept;

 private:
  struct Impl;
  explicit HttpServer(std::unique_ptr<Impl> impl);
  friend absl::Status ServeUntilSignal(HttpServer& server, std::function<void()> on_ready);

  std::unique_ptr<Impl> impl_;
};

}  // namespace modgraph::server
