// Starting, accepting (the connection cap), draining and stopping the HTTP
// server; see http_server.h. One connection's requests: connection.cc.
#include <fmt/format.h>
#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>

#include <algorithm>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <cerrno>
#include <cstdio>
#include <stdexcept>
#include <utility>

#include "modgraph/context/asio.h"
#include "server_impl.h"

namespace modgraph::server {

void HttpServer::Impl::RequestStop() {
  std::vector<std::shared_ptr<Session>> open;
  {
    std::lock_guard lock(mu);
    if (stopping.exchange(true)) return;
    open.assign(sessions.begin(), sessions.end());
  }
  asio::post(control, [this] {
    boost::system::error_code ignored;
    acceptor.close(ignored);
    // No connection is assigned to another context after this (Accept checks
    // `stopping` under mu): each ends once its connections have.
    for (auto& guard : keep_running) guard.reset();
  });
  asio::co_spawn(control, Drain(), asio::detached);
  // A connection with no request in progress is closed now; one with a
  // request in flight closes after writing its response (Serve checks
  // `stopping`), or is cancelled at the drain deadline.
  for (std::shared_ptr<Session>& session : open) {
    asio::post(session->socket.get_executor(), [session] {
      switch (session->phase.load(std::memory_order_relaxed)) {
        case Phase::kHandling:
        case Phase::kWriting:
          return;
        default: {
          boost::system::error_code ignored;
          session->socket.close(ignored);
        }
      }
    });
  }
}

void HttpServer::Impl::Abort() {
  std::uint64_t in_flight = 0;
  {
    std::lock_guard lock(mu);
    stopping.store(true);
    for (const std::shared_ptr<Session>& session : sessions) {
      const Phase phase = session->phase.load(std::memory_order_relaxed);
      if (phase == Phase::kBody || phase == Phase::kHandling || phase == Phase::kWriting) {
        ++in_flight;
      }
    }
  }
  abandoned.fetch_add(in_flight);
  for (auto& io : ios) io->stop();
}

asio::awaitable<void> HttpServer::Impl::Drain() {
  {
    std::lock_guard lock(mu);
    if (sessions.empty()) co_return;
  }
  drain_timer.expires_after(options.drain_timeout);
  auto [waited] = co_await drain_timer.async_wait(kNoThrow);
  if (waited == asio::error::operation_aborted) co_return;  // every connection ended in time

  std::vector<std::shared_ptr<Session>> open;
  {
    std::lock_guard lock(mu);
    open.assign(sessions.begin(), sessions.end());
  }
  if (open.empty()) co_return;
  fmt::print(stderr,
             "modgraph server: drain deadline ({} ms) passed with {} connection(s) open; "
             "cancelling their requests\n",
             ms(options.drain_timeout), open.size());
  std::fflush(stderr);
  for (std::shared_ptr<Session>& session : open) {
    asio::post(session->socket.get_executor(), [session] {
      session->cancelled = true;
      if (session->phase.load(std::memory_order_relaxed) == Phase::kHandling) {
        // The handler's pending co_await completes with operation_aborted.
        session->cancel_handler.emit(asio::cancellation_type::terminal);
      } else {
        boost::system::error_code ignored;
        session->socket.close(ignored);
      }
    });
  }
  drain_timer.expires_after(kCancelGrace);
  auto [grace] = co_await drain_timer.async_wait(kNoThrow);
  if (grace == asio::error::operation_aborted) co_return;
  std::size_t left = 0;
  {
    std::lock_guard lock(mu);
    left = sessions.size();
  }
  if (left == 0) co_return;
  fmt::print(stderr,
             "modgraph server: {} connection(s) still open {} ms after their requests were "
             "cancelled (a handler that ignores cancellation?); abandoning them\n",
             left, std::chrono::duration_cast<std::chrono::milliseconds>(kCancelGrace).count());
  std::fflush(stderr);
  Abort();
}

std::shared_ptr<Session> HttpServer::Impl::PickVictimLocked() {
  // Prefer a connection finishing an error reply, then one idle between
  // requests, then one still sending its headers; the longest waiting first.
  auto rank = [](Phase phase) {
    switch (phase) {
      case Phase::kClosing:
        return 0;
      case Phase::kIdle:
        return 1;
      case Phase::kHeader:
        return 2;
      default:
        return 3;
    }
  };
  std::shared_ptr<Session> best;
  std::pair<int, Clock::rep> best_key{3, 0};
  for (const std::shared_ptr<Session>& session : sessions) {
    if (!session->counted || session->evicting) continue;
    const std::pair<int, Clock::rep> key{rank(session->phase.load(std::memory_order_relaxed)),
                                         session->waiting_since.load(std::memory_order_relaxed)};
    if (key.first < 3 && (!best || key < best_key)) {
      best = session;
      best_key = key;
    }
  }
  if (best) {
    best->evicting = true;
    best->counted = false;
    --counted_sessions;
  }
  return best;
}

void HttpServer::Impl::Evict(std::shared_ptr<Session> victim) {
  evicted.fetch_add(1, std::memory_order_relaxed);
  asio::post(victim->socket.get_executor(), [victim] {
    switch (victim->phase.load(std::memory_order_relaxed)) {
      case Phase::kIdle:
      case Phase::kHeader:
      case Phase::kClosing:
      case Phase::kRefusing: {
        boost::system::error_code ignored;
        victim->socket.close(ignored);
        return;
      }
      default:  // a request arrived meanwhile: answer it, then close
        victim->close_after_response = true;
    }
  });
}

void HttpServer::Impl::Forget(const std::shared_ptr<Session>& session) {
  session->timer.cancel();
  boost::system::error_code ignored;
  session->socket.close(ignored);
  bool last = false;
  {
    std::lock_guard lock(mu);
    if (sessions.erase(session) == 0) return;
    if (session->counted) --counted_sessions;
    if (session->phase.load(std::memory_order_relaxed) == Phase::kRefusing) --refusing_sessions;
    last = stopping.load() && sessions.empty();
  }
  if (last) asio::post(control, [this] { drain_timer.cancel(); });
}

asio::awaitable<void> HttpServer::Impl::Accept() {
  for (;;) {
    // Connections go to the io threads in turn.
    const std::size_t io_index = next_io;
    asio::io_context& io = *ios[io_index];
    next_io = (next_io + 1) % ios.size();
    auto [ec, socket] = co_await acceptor.async_accept(io.get_executor(), kNoThrow);
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
      // Out of descriptors: make room as at the cap, say so (once a second),
      // and retry shortly rather than spin.
      if (ec == asio::error::no_descriptors || ec.value() == ENFILE) {
        std::shared_ptr<Session> victim;
        {
          std::lock_guard lock(mu);
          victim = PickVictimLocked();
        }
        if (victim) Evict(std::move(victim));
      }
      if (Clock::now() - last_accept_log >= std::chrono::seconds(1)) {
        last_accept_log = Clock::now();
        std::size_t open = 0;
        {
          std::lock_guard lock(mu);
          open = sessions.size();
        }
        fmt::print(stderr, "modgraph server: accept failed: {} ({} connection(s) open)\n",
                   ec.message(), open);
      }
      Timer backoff(control, std::chrono::milliseconds(50));
      co_await backoff.async_wait(kNoThrow);
      continue;
    }
    boost::system::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    auto session = std::make_shared<Session>(std::move(socket));
    session->io_index = io_index;
    std::shared_ptr<Session> victim;
    bool serve = false;
    bool refuse = false;
    {
      std::lock_guard lock(mu);
      if (stopping.load()) {
        session->socket.close(ignored);
        continue;
      }
      if (counted_sessions >= connection_limit) victim = PickVictimLocked();
      if (counted_sessions < connection_limit) {
        serve = true;
        session->counted = true;
        ++counted_sessions;
        EnterPhase(*session, Phase::kIdle);
        sessions.insert(session);
      } else if (refusing_sessions < kMaxRefusing) {
        refuse = true;
        ++refusing_sessions;
        EnterPhase(*session, Phase::kRefusing);
        sessions.insert(session);
      }
    }
    if (victim) Evict(std::move(victim));
    if (serve) {
      // The drain deadline cancels a running handler through this slot.
      auto token = asio::bind_cancellation_slot(session->cancel_handler.slot(), asio::detached);
      if (options.context_enabled) {
        // Context-aware: each step of the connection runs in the context it
        // initiated its operation in — a request's scope in its handler's steps.
        modgraph::co_spawn(session->socket.get_executor(), Serve(session), token);
      } else {
        asio::co_spawn(session->socket.get_executor(), Serve(session), token);
      }
    } else {
      refused.fetch_add(1, std::memory_order_relaxed);
      if (refuse) {
        asio::co_spawn(session->socket.get_executor(), Refuse(session), asio::detached);
      } else {
        session->socket.close(ignored);
      }
    }
  }
}
namespace {

// io_context::run(), except that after its last event the thread polls for
// `busy_poll` (Options::busy_poll) before it blocks.
void RunIoContext(asio::io_context& io, std::chrono::microseconds busy_poll) {
  if (busy_poll.count() == 0) {
    io.run();
    return;
  }
  Clock::time_point last_event = Clock::now();
  while (!io.stopped()) {
    // poll() runs what is ready, then asks epoll with a zero timeout; like
    // run(), it stops the context once no work is left.
    if (io.poll() > 0) {
      last_event = Clock::now();
    } else if (Clock::now() - last_event < busy_poll) {
      ::sched_yield();
    } else {
      if (io.run_one() == 0) return;
      last_event = Clock::now();
    }
  }
}

}  // namespace

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() { Stop(); }

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(Options options, Router router) {
  if (options.threads < 1) {
    return absl::InvalidArgumentError(
        fmt::format("server: threads must be at least 1 (got {})", options.threads));
  }
  if (options.busy_poll.count() < 0 || options.busy_poll > kMaxBusyPoll) {
    return absl::InvalidArgumentError(
        fmt::format("server: busy_poll must be from 0 to {} µs (got {} µs)", kMaxBusyPoll.count(),
                    options.busy_poll.count()));
  }
  for (const auto& [name, value] : {std::pair{"idle_timeout", options.idle_timeout},
                                    std::pair{"header_timeout", options.header_timeout},
                                    std::pair{"body_timeout", options.body_timeout},
                                    std::pair{"write_timeout", options.write_timeout},
                                    std::pair{"drain_timeout", options.drain_timeout}}) {
    if (value.count() <= 0) {
      return absl::InvalidArgumentError(
          fmt::format("server: {} must be positive (got {} ms); docs/server.md lists the defaults",
                      name, value.count()));
    }
  }
  if (options.max_connections < 1) {
    return absl::InvalidArgumentError(fmt::format(
        "server: max_connections must be at least 1 (got {})", options.max_connections));
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
  impl->connection_limit = impl->options.max_connections;
  if (rlimit limit{}; ::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY) {
    const rlim_t usable = limit.rlim_cur > 2 * kReservedDescriptors
                              ? limit.rlim_cur - kReservedDescriptors
                              : std::max<rlim_t>(limit.rlim_cur / 2, 1);
    if (usable < static_cast<rlim_t>(impl->connection_limit)) {
      impl->connection_limit = static_cast<int>(usable);
    }
  }
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
  for (const std::unique_ptr<asio::io_context>& context : self.ios) {
    self.threads.emplace_back([&self, &io = *context, index = self.threads.size()] {
      // Named for top -H and debuggers (at most 15 characters).
      char name[16];
      std::snprintf(name, sizeof name, "modgraph-io%zu", index);
      ::pthread_setname_np(::pthread_self(), name);
      for (;;) {
        try {
          RunIoContext(io, self.options.busy_poll);
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
int HttpServer::connection_limit() const noexcept { return impl_->connection_limit; }
void HttpServer::RequestStop() { impl_->RequestStop(); }
void HttpServer::Abort() { impl_->Abort(); }
bool HttpServer::stop_requested() const noexcept { return impl_->stopping.load(); }
std::uint64_t HttpServer::requests_started() const noexcept {
  std::uint64_t started = 0;
  for (std::size_t i = 0; i < impl_->ios.size(); ++i) {
    started += impl_->io_counters[i].requests.load(std::memory_order_relaxed);
  }
  return started;
}
std::uint64_t HttpServer::requests_cancelled() const noexcept { return impl_->cancelled.load(); }
std::uint64_t HttpServer::requests_abandoned() const noexcept { return impl_->abandoned.load(); }
std::uint64_t HttpServer::connections_evicted() const noexcept { return impl_->evicted.load(); }
std::uint64_t HttpServer::connections_refused() const noexcept { return impl_->refused.load(); }

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

}  // namespace modgraph::server
