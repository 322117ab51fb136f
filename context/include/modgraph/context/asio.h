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
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/execution.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/query.hpp>
#include <boost/asio/require.hpp>
#include <type_traits>
#include <utility>

#include "modgraph/context/context.h"

namespace modgraph {

// An executor that runs every function it is given inside one captured context.
// Properties (blocking, outstanding work, allocator, ...) are forwarded to the
// inner executor; require/prefer keep the wrapper.
template <class Executor>
class ContextExecutor {
 public:
  using inner_executor_type = Executor;

  ContextExecutor(Executor inner, Context ctx) noexcept
      : inner_(std::move(inner)), ctx_(std::move(ctx)) {}

  const Executor& get_inner_executor() const noexcept { return inner_; }
  const Context& context() const noexcept { return ctx_; }

  template <class F>
  void execute(F&& f) const {
    inner_.execute(ContextBound<std::decay_t<F>>(ctx_, std::forward<F>(f)));
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
    return {boost::asio::require(inner_, p), ctx_};
  }

  template <class Property>
  auto prefer(const Property& p) const -> ContextExecutor<
      std::decay_t<decltype(boost::asio::prefer(std::declval<const Executor&>(), p))>> {
    return {boost::asio::prefer(inner_, p), ctx_};
  }

  friend bool operator==(const ContextExecutor& a, const ContextExecutor& b) noexcept {
    return a.inner_ == b.inner_ && a.ctx_ == b.ctx_;
  }
  friend bool operator!=(const ContextExecutor& a, const ContextExecutor& b) noexcept {
    return !(a == b);
  }

 private:
  Executor inner_;
  Context ctx_;
};

// `ex` wrapped to run everything in `ctx` (by default the current context).
// Wrapping a ContextExecutor replaces its context instead of nesting.
template <class Executor>
ContextExecutor<Executor> wrap_executor(const Executor& ex, Context ctx = current()) {
  return {ex, std::move(ctx)};
}
template <class Executor>
ContextExecutor<Executor> wrap_executor(const ContextExecutor<Executor>& ex,
                                        Context ctx = current()) {
  return {ex.get_inner_executor(), std::move(ctx)};
}

// boost::asio::co_spawn on an executor wrapped with the current context: the
// coroutine starts, resumes after every co_await, and completes in the context
// that was current here. Same arguments as boost::asio::co_spawn.
template <class Executor, class Awaitable, class Token>
requires boost::asio::execution::is_executor<Executor>::value auto co_spawn(const Executor& ex,
                                                                            Awaitable&& awaitable,
                                                                            Token&& token) {
  return boost::asio::co_spawn(wrap_executor(ex), std::forward<Awaitable>(awaitable),
                               std::forward<Token>(token));
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
