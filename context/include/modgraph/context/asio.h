// modgraph/context/asio.h — carrying the request context through Boost.Asio:
// executors, coroutines and completion handlers.
//
// Many requests interleave on one io_context thread, switching at every
// co_await. Asio resumes a co_spawn'ed coroutine through its executor, so an
// executor whose execute() installs a captured context (and restores the
// previous one afterwards) sees every resumption: the coroutine always runs in
// its own request's context, and handlers that run between resumptions see
// whatever they were posted with — nothing, if posted outside any scope.
//
//   modgraph::run_request(req, [&] {
//     modgraph::co_spawn(io, handle(std::move(socket)), boost::asio::detached);
//   });
//   // inside handle(), after any co_await: current_request_id() == req.id()
//
//   boost::asio::post(io, modgraph::bind_context(on_done));  // runs in this context
//
// Call modgraph::co_spawn qualified: with Asio arguments, an unqualified call also
// finds boost::asio::co_spawn by ADL.
#pragma once

#include <boost/asio/associator.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/execution.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/execution/prefer_only.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/query.hpp>
#include <boost/asio/require.hpp>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "modgraph/context/context.h"

namespace modgraph {

namespace context_internal {

// True for outstanding_work.tracked, also when wrapped in prefer_only (as
// any_io_executor's prefer passes it).
template <class P>
struct tracks_work
    : std::is_same<std::decay_t<P>, boost::asio::execution::outstanding_work_t::tracked_t> {};
template <class P>
struct tracks_work<boost::asio::execution::prefer_only<P>> : tracks_work<P> {};

// True for blocking.never: post() and defer() require it, so work a user posts
// through a coroutine's executor takes an owning executor and keeps the
// context alive however long it waits in the queue.
template <class P>
struct never_blocks : std::is_same<std::decay_t<P>, boost::asio::execution::blocking_t::never_t> {};
template <class P>
struct never_blocks<boost::asio::execution::prefer_only<P>> : never_blocks<P> {};

// Properties whose result must own the context.
template <class P>
inline constexpr bool pins_context = tracks_work<P>::value || never_blocks<P>::value;

// The function a ContextExecutor hands to its inner executor. Owning: holds one
// reference, dropped after the anchor is restored. Borrowing: a plain pointer,
// valid because whoever submitted the work keeps the context alive (see
// ContextExecutor).
template <class F, bool Owning>
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
    if constexpr (Owning) release(rep_);
  }

  void operator()() {
    ScopeGuard guard(rep_);
    std::move(fn_)();
  }

 private:
  ContextRep* rep_;
  F fn_;
};

}  // namespace context_internal

// Tag: make a ContextExecutor that borrows its context (see below).
struct borrow_context_t {
  explicit borrow_context_t() = default;
};
inline constexpr borrow_context_t borrow_context{};

// An executor that runs every function it is given inside one captured context.
// Properties (blocking, outstanding work, allocator, ...) are forwarded to the
// inner executor; require/prefer keep the wrapper.
//
// Owning or borrowing. An owning executor (wrap_executor) holds a reference to
// its context: copies, and work it submits, keep the context alive. A borrowing
// executor holds a plain pointer: copying it, requiring/preferring properties
// and executing work touch no reference count, which is what keeps a coroutine
// resumption free of atomics. It is only valid while something else keeps the
// context alive; modgraph::co_spawn makes one and guarantees that for the
// coroutine (see there). require/prefer keep the mode, except
// outstanding_work.tracked and blocking.never, which always give an owning
// executor: that is how Asio keeps an executor for work that outlives the caller
// (co_spawn's work guards, I/O operations, executor_work_guard) and how post()
// and defer() submit work, so those copies pin the context.
template <class Executor>
class ContextExecutor {
 public:
  using inner_executor_type = Executor;

  // Owning: holds the reference `ctx` carries.
  ContextExecutor(Executor inner, Context ctx) noexcept
      : inner_(std::move(inner)), bits_(to_bits(ctx.detach(), true)) {}
  // Borrowing: `ctx` must outlive every use of this executor and its copies.
  ContextExecutor(Executor inner, borrow_context_t, const Context& ctx) noexcept
      : inner_(std::move(inner)), bits_(to_bits(ctx.rep(), false)) {}

  ContextExecutor(const ContextExecutor& other) noexcept
      : inner_(other.inner_), bits_(other.bits_) {
    if (owning()) context_internal::retain(rep());
  }
  ContextExecutor(ContextExecutor&& other) noexcept
      : inner_(std::move(other.inner_)), bits_(std::exchange(other.bits_, 0)) {}
  ContextExecutor& operator=(ContextExecutor other) noexcept {
    std::swap(inner_, other.inner_);
    std::swap(bits_, other.bits_);
    return *this;
  }
  ~ContextExecutor() {
    if (owning()) context_internal::release(rep());
  }

  const Executor& get_inner_executor() const noexcept { return inner_; }
  // The captured context (a new reference).
  Context context() const noexcept {
    context_internal::retain(rep());
    return Context(rep());
  }
  bool owns_context() const noexcept { return owning(); }

  // Inline and allocation-free apart from what the inner executor does. An
  // owning executor's work holds a reference; a borrowing executor's does not
  // (its submitter keeps the context alive, see modgraph::co_spawn).
  template <class F>
  void execute(F&& f) const {
    using Fn = std::decay_t<F>;
    if (owning()) {
      context_internal::retain(rep());
      inner_.execute(context_internal::InContext<Fn, true>(rep(), std::forward<F>(f)));
    } else {
      inner_.execute(context_internal::InContext<Fn, false>(rep(), std::forward<F>(f)));
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
    return rewrap(boost::asio::require(inner_, p), context_internal::pins_context<Property>);
  }

  template <class Property>
  auto prefer(const Property& p) const -> ContextExecutor<
      std::decay_t<decltype(boost::asio::prefer(std::declval<const Executor&>(), p))>> {
    return rewrap(boost::asio::prefer(inner_, p), context_internal::pins_context<Property>);
  }

  // Same inner executor and same context; ownership does not matter.
  friend bool operator==(const ContextExecutor& a, const ContextExecutor& b) noexcept {
    return a.inner_ == b.inner_ && a.rep() == b.rep();
  }
  friend bool operator!=(const ContextExecutor& a, const ContextExecutor& b) noexcept {
    return !(a == b);
  }

 private:
  template <class>
  friend class ContextExecutor;

  // The rep pointer with the low bit set when this executor owns a reference
  // (reps are at least 8-byte aligned): the wrapper stays two words for
  // io_context, so any_io_executor stores it without allocating.
  static std::uintptr_t to_bits(context_internal::ContextRep* rep, bool owning) noexcept {
    return reinterpret_cast<std::uintptr_t>(rep) | (owning ? 1u : 0u);
  }
  context_internal::ContextRep* rep() const noexcept {
    return reinterpret_cast<context_internal::ContextRep*>(bits_ & ~std::uintptr_t{1});
  }
  bool owning() const noexcept { return (bits_ & 1u) != 0; }

  // Adopts `bits` as is (the caller has taken the reference if it owns one).
  ContextExecutor(Executor inner, std::uintptr_t bits) noexcept
      : inner_(std::move(inner)), bits_(bits) {}

  template <class Inner>
  ContextExecutor<std::decay_t<Inner>> rewrap(Inner&& inner, bool tracked) const {
    const bool owns = owning() || tracked;
    if (owns) context_internal::retain(rep());
    return ContextExecutor<std::decay_t<Inner>>(std::forward<Inner>(inner), to_bits(rep(), owns));
  }

  Executor inner_;
  std::uintptr_t bits_;
};

// `ex` wrapped to run everything in `ctx` (by default the current context); owning.
// Wrapping a ContextExecutor replaces its context instead of nesting; this is also
// how to keep an executor obtained inside a modgraph::co_spawn coroutine (which
// borrows) beyond the coroutine.
template <class Executor>
ContextExecutor<Executor> wrap_executor(const Executor& ex, Context ctx = current()) {
  return {ex, std::move(ctx)};
}
template <class Executor>
ContextExecutor<Executor> wrap_executor(const ContextExecutor<Executor>& ex,
                                        Context ctx = current()) {
  return {ex.get_inner_executor(), std::move(ctx)};
}

namespace context_internal {

template <class T>
struct is_awaitable : std::false_type {};
template <class T, class Executor>
struct is_awaitable<boost::asio::awaitable<T, Executor>> : std::true_type {};

// The callable that modgraph::co_spawn hands to boost::asio::co_spawn: it holds
// the coroutine's one strong reference to its context. Asio stores this callable
// in the coroutine's entry frame (co_spawn_entry_point's parameter `f`) until the
// coroutine is finished and its completion handler has been dispatched, or in
// the deferred operation until initiation.
template <class Awaitable>
struct PinnedAwaitable {
  Context ctx;
  Awaitable awaitable;
  Awaitable operator()() { return std::move(awaitable); }
};
template <class F>
struct PinnedFunction {
  Context ctx;
  F fn;
  auto operator()() { return fn(); }
};

}  // namespace context_internal

// boost::asio::co_spawn on an executor wrapped with the current context: the
// coroutine starts, resumes after every co_await, and completes in the context
// that was current here. Same arguments as boost::asio::co_spawn.
//
// Lifetime. The coroutine's executor borrows the context, so a resumption
// (copying the executor, require/prefer, execute, installing the anchor) touches
// no reference count. Why the borrow is safe:
// - One strong reference lives for the coroutine's whole life in the callable
//   handed to Asio (PinnedAwaitable/PinnedFunction). Asio keeps that callable in
//   the coroutine's entry frame (co_spawn_entry_point's parameter `f`), and with
//   a deferred token in the deferred operation until it is initiated.
// - Every resumption is a function that owns the coroutine's stack (Asio's
//   awaitable_handler owns the awaitable_thread, which owns the entry frame), so
//   the pin exists whenever a resumption runs. If the coroutine is destroyed
//   without finishing (its io_context is destroyed), no resumption runs.
// - The completion handler is dispatched from the entry frame, before that frame
//   is destroyed, through co_spawn's handler work guard; the guard's executor was
//   obtained with outstanding_work.tracked and therefore owns a reference, so a
//   completion that Asio has to queue holds the context itself.
// - The frame may drop the last reference during the final resumption, while
//   the context is installed: destroy() clears the anchor before running
//   destructors, and the resumption restores the previous anchor afterwards.
// - Work that outlives the coroutine through Asio's own machinery pins the
//   context: a child co_spawn on this executor, I/O operations on objects built
//   with it and executor_work_guard all take outstanding_work.tracked (owning).
//
// - post() and defer() require blocking.never, which gives an owning executor:
//   work posted from the coroutine keeps the context alive while it is queued.
//
// Rule. An executor obtained inside the coroutine (co_await this_coro::executor,
// or an I/O object constructed with it) borrows: while the coroutine runs it is
// always valid. Only raw execution::execute() on it, or dispatch() from a thread
// where it cannot run inline, may queue work without a reference: for such work
// use wrap_executor(ex) (owning) or bind_context(fn). To keep the always-owning
// behaviour for a whole coroutine, spawn with
// boost::asio::co_spawn(wrap_executor(ex), ...).
template <class Executor, class Awaitable, class Token>
requires boost::asio::execution::is_executor<Executor>::value auto co_spawn(const Executor& ex,
                                                                            Awaitable&& awaitable,
                                                                            Token&& token) {
  Context ctx = current();
  ContextExecutor<Executor> borrowed(ex, borrow_context, ctx);
  using A = std::remove_cvref_t<Awaitable>;
  if constexpr (context_internal::is_awaitable<A>::value) {
    return boost::asio::co_spawn(
        std::move(borrowed),
        context_internal::PinnedAwaitable<A>{std::move(ctx), std::forward<Awaitable>(awaitable)},
        std::forward<Token>(token));
  } else {
    return boost::asio::co_spawn(
        std::move(borrowed),
        context_internal::PinnedFunction<A>{std::move(ctx), std::forward<Awaitable>(awaitable)},
        std::forward<Token>(token));
  }
}
template <class ExecutionContext, class Awaitable, class Token>
requires std::is_convertible_v<ExecutionContext&, boost::asio::execution_context&>
auto co_spawn(ExecutionContext& ctx, Awaitable&& awaitable, Token&& token) {
  return modgraph::co_spawn(ctx.get_executor(), std::forward<Awaitable>(awaitable),
                            std::forward<Token>(token));
}

// A completion handler that runs `handler` in the current context. Its
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

}  // namespace boost::asio
