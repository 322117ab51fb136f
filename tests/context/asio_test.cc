#include "modgraph/context/asio.h"

#include <atomic>
#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/defer.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <exception>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "modgraph/context/request_context.h"

namespace modgraph {
namespace {

namespace asio = boost::asio;
using std::chrono::microseconds;

struct ProbeState {
  std::uint64_t written_by = 0;
};
const StateKind<ProbeState> kProbe{"test.asio.probe"};
const Key<std::uint64_t> kRequestTag;

// The negative control: a thread-local that nothing restores at resumption.
thread_local std::uint64_t t_unrestored = 0;

struct Tally {
  std::atomic<int> completed{0};
  std::atomic<int> context_mismatches{0};  // the context layer got it wrong
  std::atomic<int> unrestored_leaks{0};    // the naive thread-local got it wrong
  std::atomic<int> outside_hits{0};        // work outside any scope saw a request
  std::atomic<int> outside_checks{0};
};

bool sees_request(std::uint64_t id) {
  const std::uint64_t* tag = get(kRequestTag);
  const ProbeState* probe = kProbe.get();
  return current_request_id() == id && tag != nullptr && *tag == id && probe != nullptr &&
         probe->written_by == id;
}

// One request: write its state, then after every co_await check it reads back
// only its own.
asio::awaitable<void> handle_request(std::uint64_t id, std::vector<microseconds> delays,
                                     Tally& tally) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  if (ProbeState* probe = kProbe.get()) probe->written_by = id;
  for (microseconds delay : delays) {
    t_unrestored = id;
    timer.expires_after(delay);
    co_await timer.async_wait(asio::use_awaitable);
    if (!sees_request(id)) ++tally.context_mismatches;
    if (t_unrestored != id) ++tally.unrestored_leaks;
  }
}

// Work outside any scope, interleaved with the requests: it must see none.
asio::awaitable<void> outside_ticker(std::vector<microseconds> delays, Tally& tally) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  for (microseconds delay : delays) {
    timer.expires_after(delay);
    co_await timer.async_wait(asio::use_awaitable);
    ++tally.outside_checks;
    if (in_request_scope() || get(kRequestTag) != nullptr) ++tally.outside_hits;
  }
}

// Spawns `requests` interleaving requests (seeded delays of 0–3 ms, three awaits
// each) plus an unscoped ticker, and runs `io` on `threads` threads.
void run_interleaved(int requests, int threads, Tally& tally) {
  asio::io_context io(threads);
  std::mt19937 rng(20240611);
  std::uniform_int_distribution<int> delay_us(0, 3000);
  auto delays = [&](int n) {
    std::vector<microseconds> out;
    for (int i = 0; i < n; ++i) out.emplace_back(delay_us(rng));
    return out;
  };
  for (int i = 1; i <= requests; ++i) {
    const auto id = static_cast<std::uint64_t>(i);
    const RequestContext req = RequestContext::create(id);
    run(req.context().with(kRequestTag, id), [&] {
      modgraph::co_spawn(io, handle_request(id, delays(3), tally),
                         [&tally, id](std::exception_ptr e) {
                           if (e || !sees_request(id))
                             ++tally.context_mismatches;  // completion runs in the scope
                           ++tally.completed;
                         });
    });
  }
  asio::co_spawn(io, outside_ticker(delays(20), tally), asio::detached);
  std::vector<std::jthread> runners;
  for (int t = 1; t < threads; ++t) runners.emplace_back([&io] { io.run(); });
  io.run();
  runners.clear();
}

TEST(AsioPropagationTest, ThousandRequestsInterleavedOnOneThreadSeeOnlyTheirOwnState) {
  Tally tally;
  run_interleaved(1000, 1, tally);
  EXPECT_EQ(tally.completed, 1000);
  EXPECT_EQ(tally.context_mismatches, 0);
  EXPECT_EQ(tally.outside_checks, 20);
  EXPECT_EQ(tally.outside_hits, 0);
  // Same interleaving, plain thread_local: proves the scenario detects the bug.
  EXPECT_GT(tally.unrestored_leaks, 0);
  EXPECT_FALSE(in_request_scope());
}

TEST(AsioPropagationTest, ThousandRequestsOnATwoThreadPoolSeeOnlyTheirOwnState) {
  Tally tally;
  run_interleaved(1000, 2, tally);
  EXPECT_EQ(tally.completed, 1000);
  EXPECT_EQ(tally.context_mismatches, 0);
  EXPECT_EQ(tally.outside_hits, 0);
  EXPECT_GT(tally.unrestored_leaks, 0);
}

TEST(AsioPropagationTest, WorkPostedOutsideAnyScopeSeesNone) {
  asio::io_context io;
  const RequestContext req = RequestContext::create(3);
  bool ran = false;
  asio::post(io, bind_context([&] {
               ran = true;
               EXPECT_FALSE(in_request_scope());
             }));
  run_request(req, [&] { io.run(); });  // even when run from inside a scope
  EXPECT_TRUE(ran);
}

TEST(AsioPropagationTest, WorkPostedInsideAScopeSeesIt) {
  asio::io_context io;
  std::vector<std::uint64_t> seen;
  const RequestContext req = RequestContext::create(9);
  run_request(req, [&] {
    asio::post(io, bind_context([&] { seen.push_back(current_request_id()); }));
    asio::post(wrap_executor(io.get_executor()), [&] { seen.push_back(current_request_id()); });
    asio::dispatch(wrap_executor(io.get_executor()), [&] { seen.push_back(current_request_id()); });
  });
  asio::post(io, [&] { seen.push_back(current_request_id()); });  // plain, outside
  io.run();
  EXPECT_EQ(seen, (std::vector<std::uint64_t>{9, 9, 9, 0}));
}

TEST(AsioPropagationTest, ExceptionInACoroutineRestoresAndReachesTheCompletion) {
  asio::io_context io;
  const RequestContext req = RequestContext::create(5);
  std::uint64_t seen_in_completion = 0;
  bool got_exception = false;
  run_request(req, [&] {
    modgraph::co_spawn(
        io,
        []() -> asio::awaitable<void> {
          co_await asio::post(asio::use_awaitable);
          throw std::runtime_error("request failed");
        },
        [&](std::exception_ptr e) {
          got_exception = e != nullptr;
          seen_in_completion = current_request_id();
        });
  });
  io.run();
  EXPECT_TRUE(got_exception);
  EXPECT_EQ(seen_in_completion, 5u);
  EXPECT_FALSE(in_request_scope());
}

// A server's request path: one call makes a fresh request scope, inheriting
// nothing from whatever is current, for the coroutine and its completion.
TEST(AsioPropagationTest, CoSpawnRequestRunsInAFreshRequestScope) {
  asio::io_context io;
  const Key<int> caller_value;
  std::vector<std::string> seen;
  const auto where = [&](const char* step) {
    seen.push_back(std::string(step) + " " + std::to_string(current_request_id()) +
                   (get(caller_value) == nullptr ? " -" : " inherited"));
  };
  const auto body = [&]() -> asio::awaitable<void> {
    where("start");
    co_await asio::post(asio::use_awaitable);
    where("resumed");
  };
  run_request(RequestContext::create(3), [&] {
    run(current().with(caller_value, 7), [&] {
      modgraph::co_spawn_request(9, io.get_executor(), body(),
                                 [&](std::exception_ptr) { where("completion"); });
      where("caller");
    });
  });
  io.run();
  EXPECT_EQ(seen, (std::vector<std::string>{"caller 3 inherited", "start 9 -", "resumed 9 -",
                                            "completion 9 -"}));
  EXPECT_FALSE(in_request_scope());
}

TEST(AsioPropagationTest, NestedScopeInsideACoroutineIsRestored) {
  asio::io_context io;
  std::vector<int> seen;
  const Key<int> depth;
  run(with(depth, 1), [&] {
    modgraph::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          run(with(depth, 2), [&] { seen.push_back(*get(depth)); });
          co_await asio::post(asio::use_awaitable);
          seen.push_back(*get(depth));
        },
        asio::detached);
  });
  io.run();
  EXPECT_EQ(seen, (std::vector<int>{2, 1}));
}

TEST(AsioPropagationTest, BindContextForwardsExecutorAllocatorAndCancellationSlot) {
  asio::io_context io;
  auto strand = asio::make_strand(io);
  asio::cancellation_signal signal;
  std::allocator<int> alloc;
  auto handler = bind_context(asio::bind_executor(
      strand, asio::bind_allocator(alloc, asio::bind_cancellation_slot(signal.slot(), [] {}))));
  EXPECT_TRUE(asio::get_associated_executor(handler) == strand);
  static_assert(
      std::is_same_v<asio::associated_allocator_t<decltype(handler)>, std::allocator<int>>);
  EXPECT_TRUE(asio::get_associated_cancellation_slot(handler) == signal.slot());
  // Without associations the defaults pass through.
  auto plain = bind_context([] {});
  EXPECT_TRUE(asio::get_associated_executor(plain, io.get_executor()) == io.get_executor());
  EXPECT_FALSE(asio::get_associated_cancellation_slot(plain).is_connected());
}

TEST(AsioPropagationTest, WrappedExecutorForwardsPropertiesAndStoresNoContext) {
  asio::io_context io;
  const Key<int> tag;
  auto ex = run(with(tag, 1), [&] { return wrap_executor(io.get_executor()); });
  EXPECT_FALSE(ex.captures_context());  // made inside a scope, yet carries nothing of it
  auto never = asio::require(ex, asio::execution::blocking.never);
  static_assert(
      std::is_same_v<decltype(never)::inner_executor_type,
                     decltype(asio::require(io.get_executor(), asio::execution::blocking.never))>);
  EXPECT_FALSE(never.captures_context());
  EXPECT_EQ(&asio::query(ex, asio::execution::context), &io);
  // Taking outstanding work (what Asio does when it initiates an operation)
  // captures the context current then.
  auto tracked = run(with(tag, 2),
                     [&] { return asio::prefer(ex, asio::execution::outstanding_work.tracked); });
  ASSERT_TRUE(tracked.captures_context());
  ASSERT_NE(tracked.context().get(tag), nullptr);
  EXPECT_EQ(*tracked.context().get(tag), 2);
  // Rewrapping gives the same kind of executor rather than nesting wrappers.
  auto rewrapped = wrap_executor(ex);
  static_assert(std::is_same_v<decltype(rewrapped), decltype(ex)>);
  EXPECT_TRUE(rewrapped == ex);
}

// --- Lifetime of the context in modgraph::co_spawn (see asio.h). In each test
// the request's own handle is gone right after spawning, so co_spawn's own
// work (and whatever else Asio tracks) holds the last reference; ASan reports
// any use of the context after it is freed. ---

// Logs its destruction: shows when the request context died, and that
// destructors run outside any context.
struct LifeState {
  std::vector<std::string>* log = nullptr;
  LifeState() = default;
  LifeState(const LifeState&) = delete;
  LifeState& operator=(const LifeState&) = delete;
  ~LifeState() {
    if (log != nullptr) log->push_back(in_request_scope() ? "destroyed in a scope" : "destroyed");
  }
};
const StateKind<LifeState> kLife{"test.asio.life"};

std::string seen(const char* what) {
  const LifeState* life = kLife.get();
  return std::string(what) + " " + std::to_string(current_request_id()) +
         (life != nullptr && life->log != nullptr ? "" : " (no state)");
}

// An executor that never runs work inline, even when asked to (ignores
// blocking.possibly): co_spawn's completion is then queued rather than run in
// place, and runs after the coroutine's frame is gone.
struct AlwaysQueued {
  asio::io_context* io;
  asio::io_context& query(asio::execution::context_t) const noexcept { return *io; }
  static constexpr asio::execution::blocking_t query(asio::execution::blocking_t) noexcept {
    return asio::execution::blocking.never;
  }
  AlwaysQueued require(asio::execution::blocking_t::never_t) const noexcept { return *this; }
  template <class F>
  void execute(F&& f) const {
    asio::require(io->get_executor(), asio::execution::blocking.never).execute(std::forward<F>(f));
  }
  friend bool operator==(const AlwaysQueued& a, const AlwaysQueued& b) noexcept {
    return a.io == b.io;
  }
  friend bool operator!=(const AlwaysQueued& a, const AlwaysQueued& b) noexcept {
    return a.io != b.io;
  }
};

TEST(AsioLifetimeTest, SpawnHoldsTheContextUntilTheCompletionHasRun) {
  asio::io_context io;
  std::vector<std::string> log;
  run_request(RequestContext::create(40), [&] {
    modgraph::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          kLife.get()->log = &log;
          co_await asio::post(asio::use_awaitable);
          log.push_back(seen("body"));
        },
        [&](std::exception_ptr) { log.push_back(seen("completion")); });
  });
  io.run();
  EXPECT_EQ(log, (std::vector<std::string>{"body 40", "completion 40", "destroyed"}));
  EXPECT_FALSE(in_request_scope());
}

TEST(AsioLifetimeTest, QueuedCompletionAfterTheCoroutineFinishedHoldsTheContext) {
  asio::io_context io;
  std::vector<std::string> log;
  run_request(RequestContext::create(41), [&] {
    modgraph::co_spawn(
        AlwaysQueued{&io},
        [&]() -> asio::awaitable<void> {
          kLife.get()->log = &log;
          co_await asio::post(asio::use_awaitable);
          log.push_back(seen("body"));
        },
        [&](std::exception_ptr e) { log.push_back(seen(e ? "failed" : "completion")); });
  });
  io.run();
  EXPECT_EQ(log, (std::vector<std::string>{"body 41", "completion 41", "destroyed"}));
}

TEST(AsioLifetimeTest, ChildSpawnedOnTheCoroutineExecutorOutlivesItsParent) {
  asio::io_context io;
  std::vector<std::string> log;
  run_request(RequestContext::create(42), [&] {
    modgraph::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          kLife.get()->log = &log;
          asio::co_spawn(
              co_await asio::this_coro::executor,  // borrows; the child's work guard owns
              [&]() -> asio::awaitable<void> {
                asio::steady_timer timer(co_await asio::this_coro::executor, microseconds(500));
                co_await timer.async_wait(asio::use_awaitable);
                co_await asio::post(asio::use_awaitable);
                log.push_back(seen("child"));
              },
              asio::detached);
          log.push_back(seen("parent"));
        },
        [&](std::exception_ptr) { log.push_back(seen("parent completion")); });
  });
  io.run();
  EXPECT_EQ(log, (std::vector<std::string>{"parent 42", "parent completion 42", "child 42",
                                           "destroyed"}));
}

TEST(AsioLifetimeTest, WorkPostedThroughAnOwningWrapRunsAfterTheCoroutineInItsContext) {
  asio::io_context io;
  std::vector<std::string> log;
  run_request(RequestContext::create(43), [&] {
    modgraph::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          kLife.get()->log = &log;
          auto owning = wrap_executor(co_await asio::this_coro::executor);
          auto bound = bind_context([&] { log.push_back(seen("bound")); });
          // Two hops, so that the work runs after the coroutine and its completion.
          asio::post(owning,
                     [&, owning] { asio::post(owning, [&] { log.push_back(seen("posted")); }); });
          asio::post(io, [&, bound]() mutable { asio::post(io, std::move(bound)); });
          log.push_back(seen("body"));
        },
        [&](std::exception_ptr) { log.push_back(seen("completion")); });
  });
  io.run();
  EXPECT_EQ(log, (std::vector<std::string>{"body 43", "completion 43", "posted 43", "bound 43",
                                           "destroyed"}));
}

// The plain pattern — post through the coroutine's own executor — is safe too:
// post() requires blocking.never, which gives an owning executor, so the work
// keeps its request alive after the coroutine and the request's last handle end.
TEST(AsioLifetimeTest, PlainPostFromTheCoroutineRunsLaterInItsContext) {
  asio::io_context io;
  std::vector<std::string> log;
  run_request(RequestContext::create(46), [&] {
    modgraph::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          kLife.get()->log = &log;
          auto executor = co_await asio::this_coro::executor;  // borrowing
          asio::post(executor, [&, executor] {
            asio::post(executor, [&] { log.push_back(seen("posted")); });
          });
          asio::defer(executor, [&] { log.push_back(seen("deferred")); });
          log.push_back(seen("body"));
        },
        [&](std::exception_ptr) { log.push_back(seen("completion")); });
  });
  io.run();
  EXPECT_EQ(log, (std::vector<std::string>{"body 46", "completion 46", "deferred 46", "posted 46",
                                           "destroyed"}));
}

TEST(AsioLifetimeTest, DeferredSpawnHoldsTheContextUntilInitiated) {
  asio::io_context io;
  std::vector<std::string> log;
  auto op = run_request(RequestContext::create(44), [&] {
    kLife.get()->log = &log;
    return modgraph::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          co_await asio::post(asio::use_awaitable);
          log.push_back(seen("body"));
        },
        asio::deferred);
  });
  EXPECT_FALSE(in_request_scope());
  EXPECT_TRUE(log.empty());  // the deferred operation keeps the request alive
  std::move(op)([&](std::exception_ptr) { log.push_back(seen("completion")); });
  io.run();
  EXPECT_EQ(log, (std::vector<std::string>{"body 44", "completion 44", "destroyed"}));
}

TEST(AsioLifetimeTest, CoroutineExecutorCarriesNoContextAndTrackedCopiesOwnTheCurrentOne) {
  asio::io_context io;
  using Plain = ContextExecutor<asio::io_context::executor_type>;
  using Never = ContextExecutor<
      std::decay_t<decltype(asio::require(io.get_executor(), asio::execution::blocking.never))>>;
  using Tracked = ContextExecutor<std::decay_t<decltype(asio::prefer(
      io.get_executor(), asio::execution::outstanding_work.tracked))>>;
  const Key<int> tag;
  bool checked = false;
  run_request(RequestContext::create(45), [&] {
    modgraph::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          const asio::any_io_executor ex = co_await asio::this_coro::executor;
          const asio::any_io_executor never = asio::require(ex, asio::execution::blocking.never);
          const asio::any_io_executor tracked =
              asio::prefer(ex, asio::execution::outstanding_work.tracked);
          EXPECT_TRUE(ex.target<Plain>() != nullptr && !ex.target<Plain>()->captures_context());
          EXPECT_TRUE(never.target<Never>() != nullptr &&
                      !never.target<Never>()->captures_context());
          EXPECT_TRUE(tracked.target<Tracked>() != nullptr &&
                      tracked.target<Tracked>()->owns_context());
          EXPECT_TRUE(tracked.target<Tracked>()->context() == current());
          // Outstanding work taken in a nested scope belongs to that scope.
          const asio::any_io_executor nested = run(with(tag, 7), [&] {
            return asio::prefer(ex, asio::execution::outstanding_work.tracked);
          });
          EXPECT_TRUE(nested.target<Tracked>() != nullptr &&
                      *nested.target<Tracked>()->context().get(tag) == 7);
          EXPECT_EQ(nested.target<Tracked>()->context().get(kRequestTag), nullptr);
          checked = true;
        },
        asio::detached);
  });
  io.run();
  EXPECT_TRUE(checked);
}

}  // namespace
}  // namespace modgraph
