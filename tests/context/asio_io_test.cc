// Context under real I/O: executors kept in long-lived I/O objects (a pool),
// completion handlers called from foreign threads, scopes held across
// co_await, and the reference loans that keep a resumption free of atomics,
// under one and two io threads.
#include <atomic>
#include <barrier>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "modgraph/context/asio.h"
#include "modgraph/context/request_context.h"

namespace modgraph {
namespace {

namespace asio = boost::asio;
using std::chrono::milliseconds;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A request's state that logs when the request context is destroyed.
struct Tag {
  std::uint64_t id = 0;
  std::vector<std::string>* log = nullptr;
  Tag() = default;
  Tag(const Tag&) = delete;
  Tag& operator=(const Tag&) = delete;
  ~Tag() {
    if (log != nullptr) log->push_back("request " + std::to_string(id) + " destroyed");
  }
};
const StateKind<Tag> kTag{"test.asio_io.tag"};

void tag_request(std::vector<std::string>& log) {
  Tag* tag = kTag.get();
  tag->id = current_request_id();
  tag->log = &log;
}

std::string seen(const std::string& what) {
  return what + " in request " + std::to_string(current_request_id());
}

// --- Item: an executor kept by a long-lived I/O object (the pooled-io-executor
// case). Request 1 builds a "pooled" timer from its coroutine's executor —
// as is, or through wrap_executor — and ends; request 2 then waits on it with
// use_awaitable and with a plain callback. ---

enum class Build { kAsIs, kWrapped };

std::vector<std::string> reuse_pooled_timer(Build build, bool* generation_expired) {
  std::vector<std::string> log;
  asio::io_context io;
  std::optional<asio::steady_timer> pooled;  // destroyed before its io_context
  run_request(RequestContext::create(1), [&] {
    modgraph::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          tag_request(log);
          auto ex = co_await asio::this_coro::executor;
          if (build == Build::kWrapped) {
            pooled.emplace(wrap_executor(ex));
          } else {
            pooled.emplace(ex);
          }
          log.push_back(seen("timer built"));
        },
        asio::detached);
  });
  io.run();
  io.restart();
  log.push_back("request 1 over");
  const RequestGenerationWatch before = SealRequestGeneration();
  run_request(RequestContext::create(2), [&] {
    modgraph::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          tag_request(log);
          pooled->expires_after(milliseconds(1));
          co_await pooled->async_wait(asio::use_awaitable);
          log.push_back(seen("awaited"));
          pooled->expires_after(milliseconds(1));
          pooled->async_wait([&](boost::system::error_code) { log.push_back(seen("callback")); });
        },
        asio::detached);
  });
  io.run();
  *generation_expired = before.ended();
  pooled.reset();
  return log;
}

TEST(AsioPooledIoTest, TimerBuiltFromACoroutineExecutorServesTheNextRequestInItsOwnContext) {
  bool expired = false;
  EXPECT_THAT(reuse_pooled_timer(Build::kAsIs, &expired),
              ElementsAre("timer built in request 1", "request 1 destroyed", "request 1 over",
                          "awaited in request 2", "callback in request 2", "request 2 destroyed"));
  EXPECT_TRUE(expired);  // nothing keeps request 1's generation alive
}

TEST(AsioPooledIoTest, TimerBuiltFromAWrappedExecutorServesTheNextRequestInItsOwnContext) {
  bool expired = false;
  EXPECT_THAT(reuse_pooled_timer(Build::kWrapped, &expired),
              ElementsAre("timer built in request 1", "request 1 destroyed", "request 1 over",
                          "awaited in request 2", "callback in request 2", "request 2 destroyed"));
  EXPECT_TRUE(expired);
}

// The pooled timer used outside any request: its callbacks see none.
TEST(AsioPooledIoTest, PooledTimerUsedOutsideAnyRequestRunsItsCallbacksInNone) {
  std::vector<std::string> log;
  asio::io_context io;
  std::optional<asio::steady_timer> pooled;  // destroyed before its io_context
  run_request(RequestContext::create(3), [&] {
    modgraph::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          tag_request(log);
          pooled.emplace(co_await asio::this_coro::executor);
        },
        asio::detached);
  });
  io.run();
  io.restart();
  pooled->expires_after(milliseconds(1));
  pooled->async_wait([&](boost::system::error_code) { log.push_back(seen("callback")); });
  io.run();
  EXPECT_THAT(log, ElementsAre("request 3 destroyed", "callback in request 0"));
}

// An executor kept in a global: work posted or dispatched through it runs in
// the poster's context, never in the context of the request that made it.
TEST(AsioPooledIoTest, KeptExecutorRunsWorkInTheSubmittersContext) {
  std::vector<std::string> log;
  asio::io_context io;
  std::optional<asio::any_io_executor> kept;
  run_request(RequestContext::create(4), [&] {
    modgraph::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          tag_request(log);
          kept = co_await asio::this_coro::executor;
        },
        asio::detached);
  });
  io.run();
  io.restart();
  run_request(RequestContext::create(5), [&] {
    tag_request(log);
    asio::post(*kept, [&] { log.push_back(seen("posted")); });
    asio::dispatch(*kept, [&] { log.push_back(seen("dispatched")); });
  });
  asio::post(*kept, [&] { log.push_back(seen("posted outside")); });
  io.run();
  EXPECT_THAT(log,
              ElementsAre("request 4 destroyed", "posted in request 5", "dispatched in request 5",
                          "request 5 destroyed", "posted outside in request 0"));
}

// --- Item: foreign completions. An operation that calls its completion
// handler directly on another thread, ignoring the handler's executor. ---

// A thread that runs one job handed to it: the foreign thread of an operation.
class ForeignThread {
 public:
  ForeignThread()
      : thread_([this] {
          std::packaged_task<void()> job;
          {
            std::unique_lock lock(mu_);
            given_.wait(lock, [this] { return job_.valid(); });
            job = std::move(job_);
          }
          job();
        }) {}
  ~ForeignThread() { thread_.join(); }  // a job must have been given

  void run(std::packaged_task<void()> job) {
    std::lock_guard lock(mu_);
    job_ = std::move(job);
    given_.notify_one();
  }

 private:
  std::mutex mu_;
  std::condition_variable given_;
  std::packaged_task<void()> job_;  // guarded by mu_
  std::thread thread_;
};

// Completes on `thread`, calling the handler there directly. The initiation
// touches nothing after handing the handler over: the handler may resume and
// finish the awaiting coroutine at once.
template <class Token>
auto async_complete_on_foreign_thread(ForeignThread& thread, Token&& token) {
  return asio::async_initiate<Token, void()>(
      [&thread](auto handler) {
        thread.run(std::packaged_task<void()>(
            [handler = std::move(handler)]() mutable { std::move(handler)(); }));
      },
      token);
}

struct LostReport {
  std::uint64_t request_id;
  std::string where;
};

// Collects lost-context reports while alive; puts the previous handler back.
class LostContextRecorder {
 public:
  LostContextRecorder() : previous_(set_lost_request_context_handler(&Record)) {
    std::lock_guard lock(mu_);
    reports_.clear();
  }
  ~LostContextRecorder() { set_lost_request_context_handler(previous_); }
  std::vector<LostReport> reports() const {
    std::lock_guard lock(mu_);
    return reports_;
  }

 private:
  static void Record(std::uint64_t request_id, std::string_view where) {
    std::lock_guard lock(mu_);
    reports_.push_back({request_id, std::string(where)});
  }
  static inline std::mutex mu_;
  static inline std::vector<LostReport> reports_;
  LostRequestContextHandler previous_;
};

MATCHER_P2(Lost, request_id, where_part, "") {
  return arg.request_id == static_cast<std::uint64_t>(request_id) &&
         arg.where.find(where_part) != std::string::npos;
}

TEST(AsioForeignCompletionTest, CoroutineResumedOnAForeignThreadIsReportedAsLostContext) {
  LostContextRecorder recorder;
  std::vector<std::string> log;
  asio::io_context io;
  ForeignThread foreign;  // joined first: its last post into `io` has returned before `io` goes
  run_request(RequestContext::create(71), [&] {
    modgraph::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          log.push_back(seen("before"));
          co_await async_complete_on_foreign_thread(foreign, asio::use_awaitable);
          log.push_back(seen("resumed on the foreign thread"));
        },
        [&](std::exception_ptr) { log.push_back(seen("completion")); });
  });
  io.run();
  EXPECT_THAT(log, ElementsAre("before in request 71", "resumed on the foreign thread in request 0",
                               "completion in request 71"));
  EXPECT_THAT(recorder.reports(), ElementsAre(AllOf(Lost(71, "asio_io_test.cc"), Lost(71, "thread"),
                                                    Lost(71, "outside any request"))));
}

// After the foreign resumption the coroutine hops back to its executor before
// it ends: the context stays lost (everything after it was initiated without
// one), and it is reported when the coroutine finishes.
TEST(AsioForeignCompletionTest, LostContextStaysLostAfterHoppingBackAndIsReported) {
  LostContextRecorder recorder;
  std::vector<std::string> log;
  asio::io_context io;
  ForeignThread foreign;  // joined first: its last post into `io` has returned before `io` goes
  run_request(RequestContext::create(72), [&] {
    modgraph::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          co_await async_complete_on_foreign_thread(foreign, asio::use_awaitable);
          co_await asio::post(io, asio::use_awaitable);
          log.push_back(seen("after hopping back"));
        },
        asio::detached);
  });
  io.run();
  EXPECT_THAT(log, ElementsAre("after hopping back in request 0"));
  EXPECT_THAT(recorder.reports(), ElementsAre(Lost(72, "asio_io_test.cc")));
}

// A plain handler wrapped with bind_context restores its context wherever it
// is called; no report.
TEST(AsioForeignCompletionTest, BoundHandlerCalledOnAForeignThreadRunsInItsContext) {
  LostContextRecorder recorder;
  std::uint64_t seen_id = 0;
  std::optional<ForeignThread> foreign;
  foreign.emplace();
  run_request(RequestContext::create(73), [&] {
    async_complete_on_foreign_thread(*foreign,
                                     bind_context([&] { seen_id = current_request_id(); }));
  });
  foreign.reset();  // joins
  EXPECT_EQ(seen_id, 73u);
  EXPECT_TRUE(recorder.reports().empty());
}

// A coroutine whose completions all go through its executor is never reported.
TEST(AsioForeignCompletionTest, CoroutineThatKeepsItsContextIsNotReported) {
  LostContextRecorder recorder;
  asio::io_context io;
  run_request(RequestContext::create(74), [&] {
    modgraph::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          asio::steady_timer timer(co_await asio::this_coro::executor, milliseconds(1));
          co_await timer.async_wait(asio::use_awaitable);
          co_await asio::post(asio::use_awaitable);
          throw std::runtime_error("fails in its own context");
        },
        asio::detached);
  });
  io.run();
  EXPECT_TRUE(recorder.reports().empty());
}

// --- Item: a ContextScope held across co_await (the coroutine rule). ---

const Key<std::string> kPhase{"test.asio_io.phase", "unscoped"};

TEST(AsioScopeTest, ScopeHeldAcrossCoAwaitStaysWithTheCoroutineOnly) {
  std::vector<std::string> inside;
  std::vector<std::string> others;  // what code around the coroutine saw
  asio::io_context io;
  auto phase = [] { return *get(kPhase); };
  // An unscoped ticker that runs between the coroutine's steps.
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        for (int i = 0; i < 6; ++i) {
          co_await asio::post(asio::use_awaitable);
          others.push_back("ticker: " + phase());
        }
      },
      asio::detached);
  // Spawned from inside the io thread, so that co_spawn starts the coroutine
  // at once and returns to its caller while the scope is held.
  asio::post(io, [&] {
    run_request(RequestContext::create(80), [&] {
      modgraph::co_spawn(
          io,
          [&]() -> asio::awaitable<void> {
            {
              ContextScope scope(kPhase, std::string("scoped"));
              inside.push_back(phase());
              co_await asio::post(asio::use_awaitable);
              inside.push_back(phase());
              asio::steady_timer timer(co_await asio::this_coro::executor, milliseconds(1));
              co_await timer.async_wait(asio::use_awaitable);
              inside.push_back(phase());
              co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
              inside.push_back(phase() + " " + std::to_string(current_request_id()));
            }
            inside.push_back(phase());
          },
          asio::detached);
      others.push_back("caller: " + phase());
    });
    others.push_back("after the request: " + phase());
  });
  io.run();
  EXPECT_THAT(inside, ElementsAre("scoped", "scoped", "scoped", "scoped 80", "unscoped"));
  for (const std::string& other : others) EXPECT_THAT(other, HasSubstr("unscoped"));
  EXPECT_EQ(others.size(), 8u);
  EXPECT_EQ(phase(), "unscoped");
}

// Awaitable operators spawn children on the coroutine's executor and cancel
// the loser: every part runs in the request, and the request ends once.
TEST(AsioScopeTest, AwaitableOperatorsRunEveryBranchInTheRequest) {
  using namespace boost::asio::experimental::awaitable_operators;
  std::vector<std::string> log;
  asio::io_context io;
  run_request(RequestContext::create(81), [&] {
    modgraph::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          tag_request(log);
          auto ex = co_await asio::this_coro::executor;
          asio::steady_timer quick(ex, milliseconds(1));
          asio::steady_timer slow(ex, std::chrono::seconds(30));
          auto branch = [&](asio::steady_timer& timer, std::string name) -> asio::awaitable<void> {
            boost::system::error_code ec;
            co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
            log.push_back(seen(name + (ec ? " cancelled" : " fired")));
          };
          co_await (branch(quick, "quick") || branch(slow, "slow"));
          log.push_back(seen("after"));
        },
        asio::detached);
  });
  io.run();
  EXPECT_THAT(log, ElementsAre("quick fired in request 81", "slow cancelled in request 81",
                               "after in request 81", "request 81 destroyed"));
}

// --- Loans: a step lends its reference to work it posts; the work runs in
// the context, and the context ends exactly when the last such work has run. ---

TEST(AsioLoanTest, WorkPostedFromAStepKeepsTheContextUntilItHasRun) {
  std::vector<std::string> log;
  asio::io_context io;
  run_request(RequestContext::create(90), [&] {
    modgraph::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          tag_request(log);
          auto ex = co_await asio::this_coro::executor;
          co_await asio::post(ex, asio::use_awaitable);  // a step of its own, owned
          // Three loans from one step: two independent posts and the resumption.
          asio::post(ex, [&, ex] {
            log.push_back(seen("first"));
            asio::post(ex, [&] { log.push_back(seen("first's own")); });
          });
          asio::post(ex, [&] { log.push_back(seen("second")); });
          co_await asio::post(ex, asio::use_awaitable);
          log.push_back(seen("resumed"));
        },
        asio::detached);
  });
  io.run();
  EXPECT_THAT(log,
              ElementsAre("first in request 90", "second in request 90", "resumed in request 90",
                          "first's own in request 90", "request 90 destroyed"));
}

// Many requests on two io threads and on strands, each step posting
// independent work and resuming through post: every piece of work sees its own
// request, and every request context is destroyed once (ASan and TSan watch
// the reference counts and the anchor).
struct Stress {
  std::atomic<int> mismatches{0};
  std::atomic<int> independent{0};
  std::atomic<int> destroyed{0};
};

struct Counted {
  Stress* stress = nullptr;
  ~Counted() {
    if (stress != nullptr) ++stress->destroyed;
  }
};
const StateKind<Counted> kCounted{"test.asio_io.counted"};

asio::awaitable<void> stress_request(std::uint64_t id, int rounds, Stress& stress) {
  kCounted.get()->stress = &stress;
  auto ex = co_await asio::this_coro::executor;
  for (int i = 0; i < rounds; ++i) {
    asio::post(ex, [&stress, id] {
      if (current_request_id() != id) ++stress.mismatches;
      ++stress.independent;
    });
    if (i % 2 == 0) {
      co_await asio::post(asio::use_awaitable);
    } else {
      co_await asio::post(ex, asio::use_awaitable);
    }
    if (current_request_id() != id) ++stress.mismatches;
  }
}

void run_stress(bool on_strands) {
  constexpr int kRequests = 200;
  constexpr int kRounds = 20;
  Stress stress;
  asio::io_context io(2);
  for (int i = 1; i <= kRequests; ++i) {
    const auto id = static_cast<std::uint64_t>(1000 + i);
    run_request(RequestContext::create(id), [&] {
      if (on_strands) {
        modgraph::co_spawn(asio::make_strand(io), stress_request(id, kRounds, stress),
                           asio::detached);
      } else {
        modgraph::co_spawn(io, stress_request(id, kRounds, stress), asio::detached);
      }
    });
  }
  std::jthread second([&io] { io.run(); });
  io.run();
  second = std::jthread();
  EXPECT_EQ(stress.mismatches, 0);
  EXPECT_EQ(stress.independent, kRequests * kRounds);
  EXPECT_EQ(stress.destroyed, kRequests);
}

TEST(AsioLoanTest, TwoIoThreadsEveryRequestSeesItselfAndEndsOnce) { run_stress(false); }

TEST(AsioLoanTest, StrandsOnTwoIoThreadsEveryRequestSeesItselfAndEndsOnce) { run_stress(true); }

}  // namespace
}  // namespace modgraph
