// modgraph/context/asio.h — carrying the request context through Boost.Asio:
// executors, coroutines, I/O objects and completion handlers.
//
// Many requests interleave on one io_context thread, switching at every
// co_await. The rule here is Node's: an operation completes in the context
// that was current when it was *initiated* — never in the context of whoever
// created the executor or the I/O object it runs on. A context-aware executor
// (ContextExecutor) therefore stores no context: whatever is submitted through
// it takes the context current at submission (post, dispatch, defer) or at
// initiation (an I/O operation takes it when Asio takes its outstanding work),
// and execute() installs that context around the work and restores the
// previous one afterwards. Asio resumes a coroutine through its executor, so
// a coroutine spawned with modgraph::co_spawn runs every step in the context
// its previous step left current — its own request's.
//
//   modgraph::run_request(req, [&] {
//     modgraph::co_spawn(io, handle(std::move(socket)), boost::asio::detached);
//   });
//   // inside handle(), after any co_await: current_request_id() == req.id()
//
//   boost::asio::post(io, modgraph::bind_context(on_done));  // runs in this context
//
// Pooled I/O objects are safe by construction: a timer or socket built inside
// request 1 from `co_await this_coro::executor` and reused by request 2 runs
// request 2's operations and callbacks in request 2's context, holds no
// reference to request 1, and never touches it after it ended (Node's fix for
// sockets reused by http.Agent). There is no lifetime rule for executors.
//
// Call modgraph::co_spawn qualified: with Asio arguments, an unqualified call also
// finds boost::asio::co_spawn by ADL.
#pragma once

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/associator.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/execution.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/execution/prefer_only.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/query.hpp>
#include <boost/asio/require.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstdint>
#include <exception>
#include <source_location>
#include <type_traits>
#include <utility>

#include "modgraph/context/context.h"
#include "modgraph/context/internal/in_context.h"
#include "modgraph/context/request_context.h"

namespace modgraph {

// An executor that runs every function it is given in the context that was
// current when the function was submitted, and restores the thread's previous
// context afterwards. It stores no context of its own, so it can be kept
// anywhere — in a pooled socket, a timer, a strand, a global — and never
// carries one request's context into another's work or keeps a finished
// request alive.
//
// What "submitted" means, per Asio entry point (Node's rule: the initiating
// context wins):
// - post / defer / dispatch / execute: the context current at that call.
// - an I/O operation (async_wait, async_read, ...): Asio takes outstanding work
//   on the I/O object's executor and on the handler's associated executor when
//   the operation is initiated (prefer(outstanding_work.tracked)); those copies
//   capture the context current then, and the completion runs in it.
// - co_spawn: the spawning context (co_spawn takes outstanding work at once).
// Properties (blocking, relationship, allocator, context, ...) are forwarded to
// the inner executor; require/prefer keep the wrapper.
//
// Captured copies. The copies made by prefer(outstanding_work.tracked) hold
// the captured context (one reference) for as long as Asio keeps them — until
// the operation completes — and run direct execute()/dispatch() in it. Asio
// makes them for its own bookkeeping; code that asks for one explicitly gets
// an executor that belongs to the context current at that moment.
//
// Costs. Submitting takes one reference to the context, dropped when the work
// has run, except where no atomic operation is needed:
// - work that runs inline (dispatch on the thread that runs the inner
//   executor) borrows the submitter's context;
// - a step — owned work running on an io_context thread or in a strand — lends
//   its reference to blocking.never work it submits to the same io_context or
//   strand (post, defer), which cannot start before the step returns; the step
//   settles its loans when it returns (context.h, Step);
// - an awaitable's continuation borrows (see modgraph::co_spawn).
// So a coroutine that resumes through co_await post(...) costs no atomic
// operation per resumption; an I/O operation on an I/O object built from a
// context executor takes one reference pair for the object's own work.
template <class Executor>
class ContextExecutor {
 public:
  using inner_executor_type = Executor;

  // `inner`, made context-aware. (Only from an Executor itself: a converting
  // constructor would make any_io_executor's constructor ask whether this type
  // is an executor while deciding it.)
  template <class E>
  requires std::is_same_v<std::remove_cvref_t<E>, Executor>
  explicit ContextExecutor(E&& inner) noexcept(std::is_nothrow_constructible_v<Executor, E&&>)
      : inner_(std::forward<E>(inner)), bits_(context_internal::kInitiating) {}

  ContextExecutor(const ContextExecutor& other) noexcept
      : inner_(other.inner_), bits_(other.bits_) {
    if (owns()) context_internal::retain(rep());
  }
  ContextExecutor(ContextExecutor&& other) noexcept
      : inner_(std::move(other.inner_)),
        bits_(std::exchange(other.bits_, context_internal::kInitiating)) {}
  ContextExecutor& operator=(ContextExecutor other) noexcept {
    std::swap(inner_, other.inner_);
    std::swap(bits_, other.bits_);
    return *this;
  }
  ~ContextExecutor() {
    if (owns()) context_internal::release(rep());
  }

  const Executor& get_inner_executor() const noexcept { return inner_; }

  // True for a copy that captured a context (see "Captured copies").
  bool captures_context() const noexcept { return (bits_ & 1u) != 0; }
  // The captured context (a new reference); empty when none was captured.
  Context context() const noexcept {
    if (!captures_context()) return Context();
    context_internal::retain(rep());
    return context_internal::ContextAccess::adopt(rep());
  }
  // True when this executor holds a reference to its captured context.
  bool owns_context() const noexcept { return owns(); }

  template <class F>
  void execute(F&& f) const {
    using context_internal::tls_current;
    switch (bits_ & context_internal::kModeMask) {
      case context_internal::kInitiating:
        submit(tls_current, std::forward<F>(f));
        return;
      case context_internal::kCapturedOwned:
        submit(rep(), std::forward<F>(f));
        return;
      case context_internal::kContinuation:
        run_borrowed(tls_current, std::forward<F>(f));
        return;
      default:  // kCapturedBorrowed
        run_borrowed(rep(), std::forward<F>(f));
        return;
    }
  }

  template <class Property>
  auto query(const Property& p) const
      noexcept(noexcept(boost::asio::query(std::declval<const Executor&>(), p)))
          -> decltype(boost::asio::query(std::declval<const Executor&>(), p)) {
    return boost::asio::query(inner_, p);
  }

  template <class Property>
  auto require(const Property& p) const -> ContextExecutor<
      std::decay_t<decltype(boost::asio::require(std::declval<const Executor&>(), p))>> {
    return derive<Property>(boost::asio::require(inner_, p));
  }

  template <class Property>
  auto prefer(const Property& p) const -> ContextExecutor<
      std::decay_t<decltype(boost::asio::prefer(std::declval<const Executor&>(), p))>> {
    return derive<Property>(boost::asio::prefer(inner_, p));
  }

  // Same inner executor and the same way of finding the context.
  friend bool operator==(const ContextExecutor& a, const ContextExecutor& b) noexcept {
    return a.inner_ == b.inner_ && a.bits_ == b.bits_;
  }
  friend bool operator!=(const ContextExecutor& a, const ContextExecutor& b) noexcept {
    return !(a == b);
  }

 private:
  template <class>
  friend class ContextExecutor;

  context_internal::ContextRep* rep() const noexcept {
    return reinterpret_cast<context_internal::ContextRep*>(bits_ & ~context_internal::kModeMask);
  }
  bool owns() const noexcept {
    return (bits_ & context_internal::kModeMask) == context_internal::kCapturedOwned;
  }

  // Adopts `bits` as is (the caller took the reference if it owns one).
  ContextExecutor(Executor inner, std::uintptr_t bits) noexcept
      : inner_(std::move(inner)), bits_(bits) {}

  // The executor for `inner`, the result of require/prefer(Property) on ours.
  template <class Property, class Inner>
  ContextExecutor<std::decay_t<Inner>> derive(Inner&& inner) const {
    namespace ci = context_internal;
    using Result = ContextExecutor<std::decay_t<Inner>>;
    const std::uintptr_t mode = bits_ & ci::kModeMask;
    if constexpr (ci::tracks_work<Property>::value) {
      // An initiation: capture the context current now. A continuation's
      // executor borrows it (the awaitable it resumes keeps it alive).
      ci::ContextRep* current = ci::tls_current;
      if (mode == ci::kContinuation || mode == ci::kCapturedBorrowed) {
        return Result(std::forward<Inner>(inner),
                      reinterpret_cast<std::uintptr_t>(current) | ci::kCapturedBorrowed);
      }
      ci::retain(current);
      return Result(std::forward<Inner>(inner),
                    reinterpret_cast<std::uintptr_t>(current) | ci::kCapturedOwned);
    } else {
      if constexpr (ci::untracks_work<Property>::value) {
        if (ci::tls_executor.resumption)
          return Result(std::forward<Inner>(inner), ci::kContinuation);
      }
      if (owns()) ci::retain(rep());
      return Result(std::forward<Inner>(inner), bits_);
    }
  }

  // Runs `f` in `rep`, taking a reference unless it can borrow or lend one.
  template <class F>
  void submit(context_internal::ContextRep* rep, F&& f) const {
    namespace ci = context_internal;
    using Fn = std::decay_t<F>;
    using Loans = ci::LoanPolicy<Executor>;
    if constexpr (Loans::kKnown) {
      if (Loans::runs_here(inner_)) {
        if (boost::asio::query(inner_, boost::asio::execution::blocking) !=
            boost::asio::execution::blocking.never) {
          // Runs inline, inside this call: the submitter's context stays alive.
          inner_.execute(ci::InContext<Fn, ci::Hold::kBorrowed>(rep, std::forward<F>(f)));
          return;
        }
        ci::Step* step = ci::tls_executor.step;
        if (rep != nullptr && step != nullptr && step->rep == rep) {
          ci::InContext<Fn, ci::Hold::kOwned> work(rep, std::forward<F>(f));
          ++step->loans;
          try {
            Loans::submit_after_current(inner_, std::move(work));
          } catch (...) {
            // Asio allocates before it moves the function: the loan is still here.
            --step->loans;
            work.forget();
            throw;
          }
          return;
        }
      }
    }
    ci::retain(rep);
    inner_.execute(ci::InContext<Fn, ci::Hold::kOwned>(rep, std::forward<F>(f)));
  }

  template <class F>
  void run_borrowed(context_internal::ContextRep* rep, F&& f) const {
    using Fn = std::decay_t<F>;
    inner_.execute(context_internal::InContext<Fn, context_internal::Hold::kBorrowed>(
        rep, std::forward<F>(f)));
  }

  Executor inner_;
  std::uintptr_t bits_;
};

// `ex` made context-aware: work submitted through the result runs in the context
// current at submission. Wrapping a ContextExecutor gives the same kind of
// executor for its inner one (never nested wrappers).
template <class Executor>
ContextExecutor<Executor> wrap_executor(const Executor& ex) {
  return ContextExecutor<Executor>(ex);
}
template <class Executor>
ContextExecutor<Executor> wrap_executor(const ContextExecutor<Executor>& ex) {
  return ContextExecutor<Executor>(ex.get_inner_executor());
}

// co_spawn's machinery needs ContextExecutor complete.
}  // namespace modgraph

#include "modgraph/context/internal/spawn.h"  // IWYU pragma: export

namespace modgraph {

// boost::asio::co_spawn on `ex` made context-aware, in the current context: the
// coroutine starts, resumes after every co_await, and completes in the context
// current here (also when `token` defers the start, e.g. asio::deferred).
// Same arguments as boost::asio::co_spawn; `where` names the call in reports.
//
// Lifetime. Asio's co_spawn takes outstanding work on the executor when it
// starts the coroutine and keeps it in the coroutine's entry frame until the
// coroutine has finished and its completion has been dispatched: that copy
// captured the spawning context and holds it (one reference per coroutine).
// A resumption borrows: Asio resumes an awaitable through its handler's
// associated executor, which modgraph makes a *continuation* executor for
// awaitables (the boost::asio::associated_executor specialisation below);
// work submitted through it — the awaitable's resumption — owns the coroutine's
// frame, and every context current in a step of the coroutine is owned by that
// frame: the spawning context by the entry frame, a ContextScope's by the
// scope, any other by the operation whose completion resumed the step.
//
// Foreign completions. A completion handler invoked directly on another thread
// (an operation that ignores the handler's executor) resumes the coroutine
// there, without its context; it then runs on in whatever context that thread
// has, and so does every operation it initiates. That cannot be undone, so it
// is reported: when a coroutine spawned in request R finishes while R is not
// the current request, modgraph reports request R's lost context with `where`
// and the thread (report_lost_request_context, context.h; the registry's
// sentinel records it). Its completion handler still runs in R (co_spawn's own
// work holds R). Plain completion handlers made with bind_context() run in their
// context wherever they are called.
template <class Executor, class Awaitable, class Token>
requires boost::asio::execution::is_executor<Executor>::value auto co_spawn(
    const Executor& ex, Awaitable&& awaitable, Token&& token,
    std::source_location where = std::source_location::current()) {
  using A = std::remove_cvref_t<Awaitable>;
  using Signature = typename context_internal::spawn_signature<
      typename context_internal::spawn_traits<A>::value_type>::type;
  Context ctx = current();
  const std::uint64_t request =
      context_internal::current_request_id_of(context_internal::ContextAccess::rep(ctx));
  return boost::asio::async_initiate<Token, Signature>(
      context_internal::InitiateSpawnInContext{}, token, std::move(ctx),
      context_internal::context_aware(ex),
      context_internal::checked_spawnable(A(std::forward<Awaitable>(awaitable)), request, where));
}

// co_spawn in a new request scope: a request context with id `request_id` (>
// 0; RequestContext::create, made outside any context so it inherits no
// values) is the spawning context, whatever is current here. The coroutine
// starts, resumes after every co_await and completes in that request; so does
// its completion handler (the spawn's work holds the context until then). A
// server's request path enters the context layer with this one call.
//
//   co_await modgraph::co_spawn_request(request.id, socket.get_executor(),
//                                       handle(request), asio::use_awaitable);
template <class Executor, class Awaitable, class Token>
requires boost::asio::execution::is_executor<Executor>::value auto co_spawn_request(
    std::uint64_t request_id, const Executor& ex, Awaitable&& awaitable, Token&& token,
    std::source_location where = std::source_location::current()) {
  using A = std::remove_cvref_t<Awaitable>;
  using Signature = typename context_internal::spawn_signature<
      typename context_internal::spawn_traits<A>::value_type>::type;
  Context ctx = run(Context(), [&] { return RequestContext::create(request_id); }).context();
  return boost::asio::async_initiate<Token, Signature>(
      context_internal::InitiateSpawnInContext{}, token, std::move(ctx),
      context_internal::context_aware(ex),
      context_internal::checked_spawnable(A(std::forward<Awaitable>(awaitable)), request_id,
                                          where));
}
template <class ExecutionContext, class Awaitable, class Token>
requires std::is_convertible_v<ExecutionContext&, boost::asio::execution_context&>
auto co_spawn(ExecutionContext& ctx, Awaitable&& awaitable, Token&& token,
              std::source_location where = std::source_location::current()) {
  return modgraph::co_spawn(ctx.get_executor(), std::forward<Awaitable>(awaitable),
                            std::forward<Token>(token), where);
}

// A completion handler that runs `handler` in the current context, wherever
// and however it is invoked (also directly, on another thread). Its
// associated executor, allocator and cancellation slot are those of `handler`.
template <class Handler>
[[nodiscard]] ContextBound<std::decay_t<Handler>> bind_context(Handler&& handler) {
  return bind(std::forward<Handler>(handler));
}

}  // namespace modgraph

namespace boost::asio {

// Forwards every associator (executor, allocator, cancellation slot, immediate
// executor) through a context-bound handler to the handler it wraps.
template <template <class, class> class Associator, class Handler, class DefaultCandidate>
struct associator<Associator, modgraph::ContextBound<Handler>, DefaultCandidate> {
  using type = typename Associator<Handler, DefaultCandidate>::type;

  static type get(const modgraph::ContextBound<Handler>& h) noexcept {
    return Associator<Handler, DefaultCandidate>::get(h.target());
  }
  static auto get(const modgraph::ContextBound<Handler>& h, const DefaultCandidate& c) noexcept
      -> decltype(Associator<Handler, DefaultCandidate>::get(h.target(), c)) {
    return Associator<Handler, DefaultCandidate>::get(h.target(), c);
  }
};

// The executor an awaitable resumes through: the coroutine's executor, as
// Asio returns it, preferred in continuation mode — for a ContextExecutor
// target, work submitted through it borrows the current context instead of
// taking a reference (see modgraph::co_spawn); other executors are unchanged.
// Same type as the primary template gives, so Asio takes the same paths. In a
// translation unit that does not include this header the primary template
// applies: resumptions there take a reference (slower, equally safe).
template <class Executor, class... Ts, class Candidate>
struct associated_executor<detail::awaitable_handler<Executor, Ts...>, Candidate> {
  using type = Executor;

  static type get(const detail::awaitable_handler<Executor, Ts...>& h) noexcept {
    return modgraph::context_internal::continuation_executor(h.get_executor());
  }
  static type get(const detail::awaitable_handler<Executor, Ts...>& h, const Candidate&) noexcept {
    return modgraph::context_internal::continuation_executor(h.get_executor());
  }
};

}  // namespace boost::asio
