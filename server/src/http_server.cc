#include "modgraph/server/http_server.h"

#include <fmt/format.h>
#include <pthread.h>
#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <exception>
#include <memory_resource>
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
#include "modgraph/server/internal/spare_nodes.h"

namespace modgraph::server {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
// One io_context per io thread, each run by its thread alone; a connection lives
// on one of them. Its code needs no strand, and I/O uses the concrete executor
// rather than the type-erased any_io_executor.
using Executor = asio::io_context::executor_type;
using Socket = tcp::socket::rebind_executor<Executor>::other;
using Timer = asio::steady_timer::rebind_executor<Executor>::other;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

// Request line plus headers, like nginx's large_client_header_buffers (4 x 8 KiB)
// with room to spare; larger gets 431.
constexpr std::uint32_t kHeaderLimit = 64 * 1024;
// Descriptors left for everything but connections (module copies, logs, the
// event loop's own) when RLIMIT_NOFILE lowers the connection cap.
constexpr rlim_t kReservedDescriptors = 64;
// After the drain deadline cancelled what was in flight, connections still open
// this much later are abandoned.
constexpr auto kCancelGrace = std::chrono::seconds(1);
// After an error reply: how long, and how much, to read and discard what the
// client is still sending before closing, so that the close does not turn into
// a reset that destroys the reply in flight (nginx lingering_close).
constexpr auto kLingerTime = std::chrono::seconds(2);
constexpr std::size_t kLingerBytes = 1 << 20;
// Connections answered with 503 at once (over the cap, none idle); more are
// closed without an answer.
constexpr int kMaxRefusing = 64;
// First read of a request on an idle connection.
constexpr std::size_t kFirstRead = 4096;

// Where a connection is. Written on its thread; read under Impl::mu by the
// acceptor choosing which connection to close at the cap.
enum class Phase : std::uint8_t {
  kIdle,      // waiting for the first byte of a request
  kHeader,    // reading a request line and headers
  kBody,      // reading a body
  kHandling,  // the handler runs
  kWriting,   // writing the response
  kClosing,   // answered an error; discarding what the client still sends
  kRefusing,  // over the cap: answering 503
};

// One connection. Everything not marked otherwise is touched only on the
// connection's io thread (the socket's executor).
struct Session {
  explicit Session(Socket s) : socket(std::move(s)), timer(socket.get_executor()) {}
  Socket socket;
  std::atomic<Phase> phase{Phase::kIdle};
  std::atomic<Clock::rep> waiting_since{0};  // when the current phase began

  // Guarded by Impl::mu.
  bool counted = false;   // counts against the connection cap
  bool evicting = false;  // chosen to make room; closes as soon as it is idle

  // The phase deadline: a watchdog timer that wakes at `armed_until`, and if
  // `deadline` has passed then, cancels the socket's operations.
  Timer timer;
  Clock::time_point deadline = Clock::time_point::max();
  Clock::time_point armed_until = Clock::time_point::max();
  std::uint64_t arm_generation = 0;
  bool timed_out = false;

  // Where the parser keeps a request's fields (ParserAllocator); most heads fit
  // in the initial block, larger ones take more from the heap until released.
  std::array<std::byte, 2048> parse_block;
  std::pmr::monotonic_buffer_resource parse_arena{parse_block.data(), parse_block.size()};

  asio::cancellation_signal cancel_handler;  // connected while a handler runs
  bool cancelled = false;                    // the drain deadline cancelled it
  bool close_after_response = false;         // evicted while busy
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

// Read errors that mean the peer went away (or we closed the connection), as
// opposed to bytes that are not HTTP.
bool connection_gone(const boost::system::error_code& ec) {
  return ec == http::error::end_of_stream || ec == http::error::partial_message ||
         ec == asio::error::eof || ec == asio::error::operation_aborted ||
         ec == asio::error::bad_descriptor || ec == asio::error::connection_reset ||
         ec == asio::error::broken_pipe || ec == asio::error::not_connected;
}

// A request's fields and target live in a per-connection arena, released
// before the next request is parsed: the parser allocates nothing per request.
using ParserAllocator = std::pmr::polymorphic_allocator<char>;
using RequestParser = http::request_parser<http::string_body, ParserAllocator>;
using RequestMessage = http::request<http::string_body, http::basic_fields<ParserAllocator>>;

// Fills `request` from `message`, reusing its strings' capacity and its maps'
// nodes (from `spare`): a connection's requests after the first allocate
// nothing here unless they are larger.
void FillRequest(const RequestMessage& message, std::uint64_t id,
                 server_internal::SpareNodes& spare, std::string& name, Request& request) {
  request.method.assign(message.method_string());
  request.target.assign(message.target());
  request.id = id;
  spare.Reclaim(request.headers);
  for (const auto& field : message) {
    name.assign(field.name_string());
    for (char& c : name) {
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');  // field names are ASCII
    }
    if (auto it = request.headers.find(name); it != request.headers.end()) {
      it->second += ", ";
      it->second += std::string_view(field.value());
    } else {
      spare.Insert(request.headers, name, field.value());
    }
  }
  request.body.assign(message.body());
}

std::int64_t ms(std::chrono::milliseconds d) { return d.count(); }

// Whether a response's head is the plain one AppendResponseHead writes: a
// status Beast knows by name that carries a Content-Length (not 1xx, 204, 304).
bool HasPlainHead(int status) {
  const http::status known = http::int_to_status(static_cast<unsigned>(status));
  return known != http::status::unknown && status >= 200 && status != 204 && status != 304;
}

// The head Beast's serializer writes for a response with the server's fields
// (Server, Content-Type, Allow if any, Connection as keep_alive() sets it for
// the version, Content-Length), appended to `out`.
void AppendResponseHead(std::string& out, unsigned version, int status,
                        std::string_view content_type, std::string_view allow, bool keep_alive,
                        std::size_t content_length) {
  char digits[24];
  out += "HTTP/";
  out += static_cast<char>('0' + version / 10);
  out += '.';
  out += static_cast<char>('0' + version % 10);
  out += ' ';
  out.append(digits, std::to_chars(digits, digits + sizeof digits, status).ptr);
  out += ' ';
  const beast::string_view reason = http::obsolete_reason(static_cast<http::status>(status));
  out.append(reason.data(), reason.size());
  out += "\r\nServer: modgraph\r\nContent-Type: ";
  out += content_type;
  if (!allow.empty()) {
    out += "\r\nAllow: ";
    out += allow;
  }
  if (version >= 11 && !keep_alive) out += "\r\nConnection: close";
  if (version < 11 && keep_alive) out += "\r\nConnection: keep-alive";
  out += "\r\nContent-Length: ";
  out.append(digits, std::to_chars(digits, digits + sizeof digits, content_length).ptr);
  out += "\r\n\r\n";
}

// What the server answers for one request, beyond the handler's response.
struct Outcome {
  Response response;
  std::string allow;   // an Allow header (405, 501)
  bool close = false;  // the request was malformed: close after answering
};

}  // namespace

struct HttpServer::Impl {
  Impl(Options opts, Router r)
      : options(std::move(opts)),
        router(std::move(r)),
        ios(MakeContexts(options.threads)),
        control(ios.front()->get_executor()),
        acceptor(control),
        drain_timer(control) {
    for (std::size_t i = 1; i < ios.size(); ++i) keep_running.emplace_back(ios[i]->get_executor());
  }

  static std::vector<std::unique_ptr<asio::io_context>> MakeContexts(int n) {
    std::vector<std::unique_ptr<asio::io_context>> out;
    for (int i = 0; i < std::max(n, 1); ++i) out.push_back(std::make_unique<asio::io_context>(1));
    return out;
  }

  Options options;
  Router router;
  // One per io thread. The first also runs the acceptor and the drain.
  std::vector<std::unique_ptr<asio::io_context>> ios;
  Executor control;  // ios[0]
  tcp::acceptor::rebind_executor<Executor>::other acceptor;
  Timer drain_timer;  // on `control`
  // The other contexts have no acceptor to keep them running while they have
  // no connection: these do, until the acceptor closes.
  std::vector<asio::executor_work_guard<Executor>> keep_running;  // on `control`
  std::size_t next_io = 0;                                        // on `control`
  std::uint16_t port = 0;
  int connection_limit = 0;
  std::atomic<bool> stopping{false};
  std::atomic<bool> serving_signals{false};
  std::atomic<std::uint64_t> requests{0};
  std::atomic<std::uint64_t> cancelled{0};
  std::atomic<std::uint64_t> abandoned{0};
  std::atomic<std::uint64_t> evicted{0};
  std::atomic<std::uint64_t> refused{0};
  Clock::time_point last_accept_log{};  // on `control`

  std::mutex mu;  // guards sessions, the counts below and the transition to stopping
  std::unordered_set<std::shared_ptr<Session>> sessions;
  int counted_sessions = 0;
  int refusing_sessions = 0;

  std::mutex join_mu;
  std::vector<std::thread> threads;

  void RequestStop();
  void Abort();
  asio::awaitable<void> Accept();
  asio::awaitable<void> Drain();
  asio::awaitable<void> Serve(std::shared_ptr<Session> session);
  asio::awaitable<void> Refuse(std::shared_ptr<Session> session);
  // The route for `request` after decoding its target, or null with the
  // answer in `refusal` (400, 404, 405, 501).
  const Route* Admit(Request& request, server_internal::SpareNodes& spare, Outcome& refusal) const;
  Outcome Complete(const Session& session, const Request& request, const std::exception_ptr& error,
                   Response response);
  asio::awaitable<void> ReplyErrorAndClose(const std::shared_ptr<Session>& session,
                                           beast::flat_buffer& buffer, int status,
                                           std::string body);
  static asio::awaitable<void> Linger(const std::shared_ptr<Session>& session,
                                      beast::flat_buffer& buffer);
  std::shared_ptr<Session> PickVictimLocked();
  void Evict(std::shared_ptr<Session> victim);
  void Forget(const std::shared_ptr<Session>& session);

  // Phase deadlines (on the thread of `session`).
  static void SetDeadline(const std::shared_ptr<Session>& session,
                          std::chrono::milliseconds timeout, Clock::time_point now = Clock::now());
  static void ClearDeadline(Session& session) { session.deadline = Clock::time_point::max(); }
  static void ArmWatchdog(const std::shared_ptr<Session>& session, Clock::time_point at);
  // Returns the time it read, for a deadline set at the same moment.
  static Clock::time_point EnterPhase(Session& session, Phase phase) {
    const Clock::time_point now = Clock::now();
    session.phase.store(phase, std::memory_order_relaxed);
    session.waiting_since.store(now.time_since_epoch().count(), std::memory_order_relaxed);
    return now;
  }
};

void HttpServer::Impl::SetDeadline(const std::shared_ptr<Session>& session,
                                   std::chrono::milliseconds timeout, Clock::time_point now) {
  session->timed_out = false;
  session->deadline = now + timeout;
  // The watchdog only moves earlier: a later deadline is found when it wakes.
  if (session->deadline < session->armed_until) ArmWatchdog(session, session->deadline);
}

void HttpServer::Impl::ArmWatchdog(const std::shared_ptr<Session>& session, Clock::time_point at) {
  session->armed_until = at;
  const std::uint64_t generation = ++session->arm_generation;
  session->timer.expires_at(at);
  session->timer.async_wait([session, generation](const boost::system::error_code& ec) {
    if (ec || generation != session->arm_generation) return;  // re-armed or cancelled
    session->armed_until = Clock::time_point::max();
    if (session->deadline == Clock::time_point::max()) return;  // no phase deadline now
    if (Clock::now() < session->deadline) {
      ArmWatchdog(session, session->deadline);
      return;
    }
    session->timed_out = true;
    boost::system::error_code ignored;
    session->socket.cancel(ignored);
  });
}

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
    asio::io_context& io = *ios[next_io];
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
      asio::co_spawn(session->socket.get_executor(), Serve(session), asio::detached);
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

asio::awaitable<void> HttpServer::Impl::Refuse(std::shared_ptr<Session> session) {
  beast::flat_buffer buffer;
  co_await ReplyErrorAndClose(
      session, buffer, 503,
      fmt::format("503 service unavailable: all {} connections have a request in progress; "
                  "retry shortly\n",
                  connection_limit));
  Forget(session);
}

const Route* HttpServer::Impl::Admit(Request& request, server_internal::SpareNodes& spare,
                                     Outcome& refusal) const {
  if (absl::Status decoded =
          server_internal::DecodeTarget(request.target, request.path, request.query, spare);
      !decoded.ok()) {
    refusal = Outcome{.response = plain(400, fmt::format("400 bad request: {}\n",
                                                         std::string(decoded.message()))),
                      .close = true};
    return nullptr;
  }
  const Route* route = router.Find(request.path);
  if (!IsStandardMethod(request.method)) {
    refusal = Outcome{
        .response = plain(501, fmt::format("501 not implemented: method '{}' is not an HTTP "
                                           "method this server knows (RFC 9110 section 9)\n",
                                           request.method)),
        .allow = route != nullptr ? route->allow : std::string()};
    return nullptr;
  }
  if (route == nullptr) {
    refusal = Outcome{.response = plain(404, fmt::format("404 not found: {}\n", request.path))};
    return nullptr;
  }
  if (!route->serves(request.method)) {
    refusal = Outcome{.response = plain(405, fmt::format("405 method not allowed: {} serves {}\n",
                                                         request.path, route->allow)),
                      .allow = route->allow};
    return nullptr;
  }
  return route;
}

Outcome HttpServer::Impl::Complete(const Session& session, const Request& request,
                                   const std::exception_ptr& error, Response response) {
  if (error && session.cancelled) {
    cancelled.fetch_add(1, std::memory_order_relaxed);
    fmt::print(stderr,
               "modgraph server: 503 for {} {} (request {}): cancelled at the drain deadline "
               "({} ms after the stop began)\n",
               request.method, request.path, request.id, ms(options.drain_timeout));
    std::fflush(stderr);
    return Outcome{.response =
                       plain(503, fmt::format("503 service unavailable: the server is stopping and "
                                              "request {} did not finish within {} ms\n",
                                              request.id, ms(options.drain_timeout)))};
  }
  if (error) {
    fmt::print(stderr, "modgraph server: 500 for {} {} (request {}): handler threw: {}\n",
               request.method, request.path, request.id, describe(error));
    std::fflush(stderr);
    return Outcome{.response = plain(
                       500, fmt::format("500 internal server error (request {})\n", request.id))};
  }
  if (response.status < 100 || response.status > 599) {
    fmt::print(stderr, "modgraph server: 500 for {} {} (request {}): handler returned status {}\n",
               request.method, request.path, request.id, response.status);
    std::fflush(stderr);
    return Outcome{.response = plain(
                       500, fmt::format("500 internal server error (request {})\n", request.id))};
  }
  return Outcome{.response = std::move(response)};
}

asio::awaitable<void> HttpServer::Impl::ReplyErrorAndClose(const std::shared_ptr<Session>& session,
                                                           beast::flat_buffer& buffer, int status,
                                                           std::string body) {
  http::response<http::string_body> reply{static_cast<http::status>(status), 11};
  reply.set(http::field::server, "modgraph");
  reply.set(http::field::content_type, "text/plain; charset=utf-8");
  if (status == 503) reply.set(http::field::retry_after, "1");
  reply.keep_alive(false);
  reply.body() = std::move(body);
  reply.prepare_payload();
  SetDeadline(session, std::min<std::chrono::milliseconds>(options.write_timeout, kLingerTime));
  auto [write_error, written] = co_await http::async_write(session->socket, reply, kNoThrow);
  if (!write_error) co_await Linger(session, buffer);
}

asio::awaitable<void> HttpServer::Impl::Linger(const std::shared_ptr<Session>& session,
                                               beast::flat_buffer& buffer) {
  // Lingering close: stop sending, then read and drop what is still coming
  // (bounded in time and bytes) so the client reads the reply, not a reset.
  if (session->phase.load(std::memory_order_relaxed) != Phase::kRefusing) {
    EnterPhase(*session, Phase::kClosing);
  }
  boost::system::error_code ignored;
  session->socket.shutdown(tcp::socket::shutdown_send, ignored);
  SetDeadline(session, kLingerTime);
  std::size_t discarded = buffer.size();
  buffer.clear();
  while (discarded < kLingerBytes) {
    auto [read_error, n] =
        co_await session->socket.async_read_some(buffer.prepare(kFirstRead), kNoThrow);
    if (read_error) break;
    discarded += n;
  }
}

asio::awaitable<void> HttpServer::Impl::Serve(std::shared_ptr<Session> session) {
  Session& s = *session;
  beast::flat_buffer buffer;
  // Reused by every request and response on this connection.
  std::string reply_head;
  Request request;
  server_internal::SpareNodes spare;
  std::string field_name;
  for (;;) {
    // RequestStop sees either an idle phase (and closes the socket) or, after
    // this point, stopping == true: both run on this thread.
    const Clock::time_point idle_since = EnterPhase(s, Phase::kIdle);
    if (stopping.load() || s.close_after_response) break;

    if (buffer.size() == 0) {
      SetDeadline(session, options.idle_timeout, idle_since);
      auto [idle_error, n] =
          co_await s.socket.async_read_some(buffer.prepare(kFirstRead), kNoThrow);
      buffer.commit(n);
      // Idle timeout, the peer closed, or a stop/the cap closed it: no reply.
      if (idle_error) break;
    }

    SetDeadline(session, options.header_timeout, EnterPhase(s, Phase::kHeader));
    s.parse_arena.release();  // the last request's parser is gone
    RequestParser parser(std::piecewise_construct, std::make_tuple(),
                         std::make_tuple(ParserAllocator(&s.parse_arena)));
    parser.header_limit(kHeaderLimit);
    parser.body_limit(options.max_body_bytes);
    // Usually the whole head is in the buffer already: parse it here rather
    // than through async_read_header, which would complete through a post.
    boost::system::error_code read_error;
    while (!parser.is_header_done() && buffer.size() > 0) {
      const std::size_t used = parser.put(buffer.data(), read_error);
      buffer.consume(used);
      if (read_error == http::error::need_more) {
        read_error = {};
        break;
      }
      if (read_error || used == 0) break;
    }
    if (!read_error && !parser.is_header_done()) {
      auto [header_error, header_bytes] =
          co_await http::async_read_header(s.socket, buffer, parser, kNoThrow);
      read_error = header_error;
    }
    const char* late = "headers";
    std::chrono::milliseconds late_limit = options.header_timeout;
    if (!read_error && !parser.is_done()) {
      EnterPhase(s, Phase::kBody);
      if (parser.get().version() == 11 &&
          beast::iequals(parser.get()[http::field::expect], "100-continue")) {
        SetDeadline(session, options.write_timeout);
        http::response<http::empty_body> go_on{http::status::continue_, 11};
        auto [continue_error, sent] = co_await http::async_write(s.socket, go_on, kNoThrow);
        if (continue_error) break;
      }
      SetDeadline(session, options.body_timeout);
      late = "body";
      late_limit = options.body_timeout;
      auto [body_error, body_bytes] = co_await http::async_read(s.socket, buffer, parser, kNoThrow);
      read_error = body_error;
    }
    if (read_error) {
      if (s.timed_out) {
        co_await ReplyErrorAndClose(
            session, buffer, 408,
            fmt::format("408 request timeout: the request's {} did not arrive within {} ms\n", late,
                        ms(late_limit)));
        break;
      }
      if (connection_gone(read_error)) break;
      // Bytes that are not HTTP/1.x (or too much of it): answer once and close.
      const int status = read_error == http::error::body_limit     ? 413
                         : read_error == http::error::header_limit ? 431
                                                                   : 400;
      co_await ReplyErrorAndClose(
          session, buffer, status,
          fmt::format("{} malformed request: {}\n", status, read_error.message()));
      break;
    }
    // Closed by a stop or to make room while the last bytes arrived.
    if (!s.socket.is_open()) break;

    EnterPhase(s, Phase::kHandling);
    ClearDeadline(s);
    const RequestMessage& message = parser.get();
    FillRequest(message, NextRequestId(), spare, field_name, request);
    requests.fetch_add(1, std::memory_order_relaxed);
    Outcome outcome;
    if (const Route* route = Admit(request, spare, outcome)) {
      // Awaited here rather than in a coroutine of its own: one frame fewer per
      // request (this one lives as long as the connection).
      std::exception_ptr error;
      Response response;
      // The drain deadline cancels the handler through this slot (terminal
      // cancellation: its pending co_await throws operation_aborted).
      auto token = asio::bind_cancellation_slot(s.cancel_handler.slot(), kNoThrow);
      // Calling the handler inside the spawn, not before it, puts any
      // synchronous part of it inside the request scope too.
      auto call = [&handler = route->handler, &request] { return handler(request); };
      if (options.context_enabled) {
        // A new request scope (inheriting nothing) for the handler: it starts,
        // resumes after every co_await, and completes inside it. The completion
        // resumes this coroutine inline, still in that scope, until it next
        // suspends (at the response's write): the connection's code uses no
        // context, and the spawn holds the request scope until then.
        std::tie(error, response) =
            co_await modgraph::co_spawn_request(request.id, s.socket.get_executor(), call, token);
      } else {
        // The same spawn without the scope: on and off differ only by the
        // request context, which is what the benchmarks compare.
        std::tie(error, response) = co_await asio::co_spawn(s.socket.get_executor(), call, token);
      }
      s.cancel_handler.slot().clear();
      outcome = Complete(s, request, error, std::move(response));
    }

    const Clock::time_point writing_since = EnterPhase(s, Phase::kWriting);
    const bool keep_alive =
        message.keep_alive() && !outcome.close && !stopping.load() && !s.close_after_response;
    const bool head = message.method() == http::verb::head;
    SetDeadline(session, options.write_timeout, writing_since);
    boost::system::error_code write_error;
    if (HasPlainHead(outcome.response.status)) {
      // The head written by hand into a buffer the connection keeps (Beast's
      // serializer costs more than the rest of the write here), byte for byte
      // what Beast writes for it; the body is written from the response.
      reply_head.clear();
      AppendResponseHead(reply_head, message.version(), outcome.response.status,
                         outcome.response.content_type, outcome.allow, keep_alive,
                         outcome.response.body.size());
      const std::array<asio::const_buffer, 2> parts{
          asio::buffer(reply_head),
          head ? asio::const_buffer() : asio::buffer(outcome.response.body)};
      auto [error, written] = co_await asio::async_write(s.socket, parts, kNoThrow);
      write_error = error;
    } else {
      http::response<http::string_body> reply{static_cast<http::status>(outcome.response.status),
                                              message.version()};
      reply.set(http::field::server, "modgraph");
      reply.set(http::field::content_type, outcome.response.content_type);
      if (!outcome.allow.empty()) reply.set(http::field::allow, outcome.allow);
      reply.keep_alive(keep_alive);
      reply.body() = std::move(outcome.response.body);
      reply.prepare_payload();
      if (head) reply.body().clear();  // length stays
      auto [error, written] = co_await http::async_write(s.socket, reply, kNoThrow);
      write_error = error;
    }
    if (write_error) break;
    if (outcome.close) {
      // Malformed: the rest of what the client sent is not trusted.
      co_await Linger(session, buffer);
      break;
    }
    if (!keep_alive) break;
  }

  boost::system::error_code ignored;
  s.socket.shutdown(tcp::socket::shutdown_send, ignored);
  Forget(session);
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() { Stop(); }

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(Options options, Router router) {
  if (options.threads < 1) {
    return absl::InvalidArgumentError(
        fmt::format("server: threads must be at least 1 (got {})", options.threads));
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
    self.threads.emplace_back([&self, &io = *context] {
      for (;;) {
        try {
          io.run();
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
std::uint64_t HttpServer::requests_started() const noexcept { return impl_->requests.load(); }
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

absl::Status ServeUntilSignal(HttpServer& server, std::function<void()> on_ready) {
  HttpServer::Impl& impl = *server.impl_;
  if (impl.serving_signals.exchange(true)) {
    return absl::FailedPreconditionError("ServeUntilSignal: already serving this server");
  }
  struct Release {
    std::atomic<bool>& flag;
    ~Release() { flag.store(false); }
  } release{impl.serving_signals};

  // Signals arrive on this thread's own io_context, so they are seen even when
  // every io thread is busy (or stopped).
  asio::io_context signal_io(1);
  asio::signal_set signals(signal_io);
  for (int signal_number : {SIGINT, SIGTERM}) {
    boost::system::error_code ec;
    if (signals.add(signal_number, ec); ec) {
      return absl::InternalError(
          fmt::format("ServeUntilSignal: cannot install a handler for signal {}: {}", signal_number,
                      ec.message()));
    }
  }
  int received = 0;
  std::function<void(const boost::system::error_code&, int)> on_signal =
      [&](const boost::system::error_code& ec, int signal_number) {
        if (ec) return;  // cancelled: the server has stopped
        const char* name = signal_number == SIGINT    ? "SIGINT"
                           : signal_number == SIGTERM ? "SIGTERM"
                                                      : "signal";
        if (++received == 1) {
          fmt::print(stderr,
                     "modgraph server: {} received; stopping: in-flight requests have {} ms to "
                     "complete (a second SIGINT or SIGTERM stops at once)\n",
                     name, ms(impl.options.drain_timeout));
          std::fflush(stderr);
          server.RequestStop();
        } else {
          fmt::print(stderr,
                     "modgraph server: second signal ({}) received; stopping at once, abandoning "
                     "in-flight requests\n",
                     name);
          std::fflush(stderr);
          server.Abort();
        }
        signals.async_wait(on_signal);
      };
  signals.async_wait(on_signal);
  // A caller may block SIGINT/SIGTERM while it starts up (modgraph serve does,
  // so a signal during loading is not lost and does not kill it half-loaded):
  // unblock them on this thread, where a pending one is delivered now.
  sigset_t stop_signals;
  sigset_t previous_mask;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_UNBLOCK, &stop_signals, &previous_mask);
  if (on_ready) on_ready();
  std::thread waiter([&] {
    server.Wait();
    asio::post(signal_io, [&] {
      boost::system::error_code ignored;
      signals.cancel(ignored);
    });
  });
  signal_io.run();
  waiter.join();
  pthread_sigmask(SIG_SETMASK, &previous_mask, nullptr);
  return absl::OkStatus();
}

}  // namespace modgraph::server
