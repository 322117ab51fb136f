// modgraph/context/internal/in_context.h — the work wrapper behind
// ContextExecutor (asio.h): installs a context around one piece of work, holds
// or borrows its reference (loans, see Step in context_rep.h), and the
// executor's mode bits. Internal to the context layer; use asio.h.
//
//   inner.execute(context_internal::InContext<Fn, context_internal::Hold::kOwned>(rep, fn));
#pragma once

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/execution.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/execution/prefer_only.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <cstdint>
#include <exception>
#include <source_location>
#include <type_traits>
#include <utility>

#include "modgraph/context/context.h"

namespace modgraph {

namespace context_internal {

// True for outstanding_work.tracked (also wrapped in prefer_only, as
// any_io_executor's prefer passes it): Asio takes outstanding work when it
// initiates an operation (handler_work), spawns a coroutine or builds a work
// guard, and keeps the resulting executor until the operation completes.
template <class P>
struct tracks_work
    : std::is_same<std::decay_t<P>, boost::asio::execution::outstanding_work_t::tracked_t> {};
template <class P>
struct tracks_work<boost::asio::execution::prefer_only<P>> : tracks_work<P> {};

template <class P>
struct untracks_work
    : std::is_same<std::decay_t<P>, boost::asio::execution::outstanding_work_t::untracked_t> {};
template <class P>
struct untracks_work<boost::asio::execution::prefer_only<P>> : untracks_work<P> {};

// Executors that can promise that blocking.never work submitted from a
// function running on them starts only after that function has returned: then
// a step may lend its reference to the work (see Step in context.h).
template <class Executor>
struct LoanPolicy {
  static constexpr bool kKnown = false;
};

// An io_context executor, called on a thread that runs its io_context: work
// submitted as a continuation goes to the thread's private queue, which the
// scheduler publishes only when the running handler has returned.
template <class Allocator, std::uintptr_t Bits>
struct LoanPolicy<boost::asio::io_context::basic_executor_type<Allocator, Bits>> {
  static constexpr bool kKnown = true;
  using Executor = boost::asio::io_context::basic_executor_type<Allocator, Bits>;
  static bool runs_here(const Executor& ex) noexcept { return ex.running_in_this_thread(); }
  template <class F>
  static void submit_after_current(const Executor& ex, F&& f) {
    boost::asio::prefer(ex, boost::asio::execution::relationship.continuation)
        .execute(std::forward<F>(f));
  }
};

// A strand, called from a function running in it: the strand is locked, so new
// work waits in its queue until the running function has returned.
template <class Inner>
struct LoanPolicy<boost::asio::strand<Inner>> {
  static constexpr bool kKnown = true;
  using Executor = boost::asio::strand<Inner>;
  static bool runs_here(const Executor& ex) noexcept { return ex.running_in_this_thread(); }
  template <class F>
  static void submit_after_current(const Executor& ex, F&& f) {
    ex.execute(std::forward<F>(f));
  }
};

enum class Hold { kOwned, kBorrowed };

// The function a ContextExecutor hands to its inner executor: runs `fn` with
// `rep` installed. Owned: holds one reference, and runs `fn` as a step (loans,
// see Step); the reference is dropped after the anchor is restored, unless the
// step lent it on. Borrowed: a plain pointer, for work that runs inline (the
// submitter's context is installed for the whole call) or that owns the
// coroutine which keeps its context alive (see ContextExecutor).
template <class F, Hold H>
class InContext {
 public:
  InContext(ContextRep* rep, F fn) noexcept(std::is_nothrow_move_constructible_v<F>)
      : rep_(rep), fn_(std::move(fn)) {}
  InContext(InContext&& other) noexcept(std::is_nothrow_move_constructible_v<F>)
      : rep_(std::exchange(other.rep_, nullptr)), fn_(std::move(other.fn_)) {}
  InContext(const InContext&) = delete;
  InContext& operator=(const InContext&) = delete;
  InContext& operator=(InContext&&) = delete;
  ~InContext() {
    if constexpr (H == Hold::kOwned) release(rep_);
  }

  void operator()() {
    if constexpr (H == Hold::kOwned) {
      Step step{.rep = rep_, .loans = 0, .outer = tls_executor.step};
      tls_executor.step = &step;
      StepEnd end{this, &step};
      ScopeGuard guard(rep_);
      std::move(fn_)();
    } else {
      ScopeGuard guard(rep_);
      std::move(fn_)();
    }
  }

  // Gives up the reference without dropping it (a loan that was not handed on).
  void forget() noexcept { rep_ = nullptr; }

 private:
  // Runs after the anchor is restored: pops the step and settles its loans.
  struct StepEnd {
    InContext* self;
    Step* step;
    ~StepEnd() {
      tls_executor.step = step->outer;
      if (step->loans == 0) return;
      // The loaned work is not running yet (LoanPolicy): the first loan takes
      // this step's reference, each further one a new reference.
      if (step->loans > 1) self->rep_->refs.fetch_add(step->loans - 1, std::memory_order_relaxed);
      self->rep_ = nullptr;
    }
  };

  ContextRep* rep_;
  F fn_;
};

// The state word of a ContextExecutor. The low two bits say how work submitted
// through it finds its context; a captured context's pointer (8-byte aligned)
// sits in the other bits.
inline constexpr std::uintptr_t kInitiating = 0;        // the context current at submission
inline constexpr std::uintptr_t kContinuation = 2;      // same, borrowed (an awaitable's executor)
inline constexpr std::uintptr_t kCapturedOwned = 1;     // rep | 1: a captured context, owned
inline constexpr std::uintptr_t kCapturedBorrowed = 3;  // rep | 3: captured, borrowed
inline constexpr std::uintptr_t kModeMask = 3;

}  // namespace context_internal

}  // namespace modgraph
