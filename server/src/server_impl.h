// server/src/server_impl.h — what the HTTP server's implementation files
// share: a connection (Session) and its phases, the limits' constants, and
// HttpServer::Impl. Private to server/src: http_server.cc starts, accepts and
// stops; connection.cc serves one connection's requests; serve_until_signal.cc
// turns SIGINT/SIGTERM into a graceful stop.
//
//   asio::co_spawn(session->socket.get_executor(), impl.Serve(session), asio::detached);
#pragma once

#include <sys/resource.h>

#include <array>
#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <memory_resource>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "modgraph/server/http_server.h"
#include "modgraph/server/internal/spare_nodes.h"

namespace modgraph::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
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
  std::size_t io_index = 0;  // which io thread (Impl::ios) the connection lives on
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

  // Connected to the connection's coroutine; the drain deadline emits it while
  // a handler runs (Phase::kHandling), cancelling the handler's pending step.
  asio::cancellation_signal cancel_handler;
  bool cancelled = false;             // the drain deadline cancelled it
  bool close_after_response = false;  // evicted while busy
};

// What the server answers for one request, beyond the handler's response.
struct Outcome {
  Response response;
  std::string allow;   // an Allow header (405, 501)
  bool close = false;  // the request was malformed: close after answering
};

// `text` on one line (CR and LF become spaces), for one-line log messages.
std::string one_line(std::string text);
// What an exception says, on one line.
std::string describe(const std::exception_ptr& error);
inline std::int64_t ms(std::chrono::milliseconds d) { return d.count(); }

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
  // Requests started, one counter per io thread, each written by its thread
  // alone (a plain load and store, not a locked increment on a line every io
  // thread writes); requests_started() adds them up.
  struct alignas(64) IoCounter {
    std::atomic<std::uint64_t> requests{0};
  };
  std::unique_ptr<IoCounter[]> io_counters = std::make_unique<IoCounter[]>(ios.size());
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

}  // namespace modgraph::server
