// modgraph/context/internal/spawn.h — modgraph::co_spawn's machinery
// (asio.h): context-aware executors for a spawn, the check that a request's
// coroutine finishes in its request, and the initiation that runs the spawn in
// the spawning context. Internal to the context layer; included by asio.h after
// ContextExecutor is defined.
//
//   boost::asio::async_initiate<Token, Sig>(context_internal::InitiateSpawnInContext{}, ...);
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

template <class Executor>
class ContextExecutor;

namespace context_internal {

// The executor Asio uses to resume an awaitable (see the associated_executor
// specialisation below): the coroutine's own executor in continuation mode.
// With no context current there is nothing to borrow — a coroutine on a plain
// executor, or one outside any request — and the executor is returned as is
// (one thread-local load: plain coroutines pay nothing more).
template <class Executor>
Executor continuation_executor(const Executor& ex) noexcept {
  namespace execution = boost::asio::execution;
  if (tls_current == nullptr) return ex;
  if constexpr (boost::asio::can_prefer<const Executor&,
                                        execution::outstanding_work_t::untracked_t>::value) {
    using Preferred = decltype(boost::asio::prefer(ex, execution::outstanding_work.untracked));
    if constexpr (std::is_convertible_v<Preferred, Executor>) {
      tls_executor.resumption = true;
      try {
        Executor result(boost::asio::prefer(ex, execution::outstanding_work.untracked));
        tls_executor.resumption = false;
        return result;
      } catch (...) {  // a type-erased copy failed to allocate: keep the owning mode
        tls_executor.resumption = false;
        return ex;
      }
    }
  }
  return ex;
}

// The context-aware executor modgraph::co_spawn runs a coroutine on. A
// type-erased executor whose target is an io_context executor or a strand of
// one is unwrapped, so that the wrapper knows its inner executor (LoanPolicy).
template <class Executor>
ContextExecutor<Executor> context_aware(const Executor& ex) {
  return ContextExecutor<Executor>(ex);
}
template <class Executor>
ContextExecutor<Executor> context_aware(const ContextExecutor<Executor>& ex) {
  return ContextExecutor<Executor>(ex.get_inner_executor());
}
inline boost::asio::any_io_executor context_aware(const boost::asio::any_io_executor& ex) {
  using IoExecutor = boost::asio::io_context::executor_type;
  if (const auto* io = ex.target<IoExecutor>()) return ContextExecutor<IoExecutor>(*io);
  if (const auto* strand = ex.target<boost::asio::strand<IoExecutor>>()) {
    return ContextExecutor<boost::asio::strand<IoExecutor>>(*strand);
  }
  return ContextExecutor<boost::asio::any_io_executor>(ex);
}

// Reports a coroutine of `request` that finished outside its request's
// context (context.h, report_lost_request_context). Out of line, in the core.
[[gnu::cold]] void report_lost_coroutine_context(std::uint64_t request, const char* file,
                                                 unsigned line, const char* function) noexcept;

inline void check_still_in_request(std::uint64_t request, const std::source_location& where) {
  if (current_request_id_of(tls_current) != request) {
    report_lost_coroutine_context(request, where.file_name(), where.line(), where.function_name());
  }
}

template <class T, class E>
boost::asio::awaitable<T, E> checked_coroutine(boost::asio::awaitable<T, E> inner,
                                               std::uint64_t request, std::source_location where) {
  try {
    if constexpr (std::is_void_v<T>) {
      co_await std::move(inner);
      check_still_in_request(request, where);
    } else {
      T result = co_await std::move(inner);
      check_still_in_request(request, where);
      co_return result;
    }
  } catch (...) {
    check_still_in_request(request, where);
    throw;
  }
}

// The awaitable, checked when it finishes if it runs for a request.
template <class T, class E>
boost::asio::awaitable<T, E> checked(boost::asio::awaitable<T, E> inner, std::uint64_t request,
                                     std::source_location where) {
  if (request == 0) return inner;
  return checked_coroutine(std::move(inner), request, where);
}

template <class T>
struct is_awaitable : std::false_type {};
template <class T, class Executor>
struct is_awaitable<boost::asio::awaitable<T, Executor>> : std::true_type {};

template <class T>
struct awaitable_value;
template <class T, class Executor>
struct awaitable_value<boost::asio::awaitable<T, Executor>> {
  using type = T;
};

// What co_spawn completes with for an awaitable, or a function returning one.
template <class A, bool = is_awaitable<A>::value>
struct spawn_traits {
  using value_type = typename awaitable_value<A>::type;
};
template <class F>
struct spawn_traits<F, false> {
  using value_type = typename awaitable_value<std::decay_t<std::invoke_result_t<F&>>>::type;
};
template <class T>
struct spawn_signature {
  using type = void(std::exception_ptr, T);
};
template <>
struct spawn_signature<void> {
  using type = void(std::exception_ptr);
};

template <class A>
auto checked_spawnable(A awaitable, std::uint64_t request, std::source_location where) {
  if constexpr (is_awaitable<A>::value) {
    return checked(std::move(awaitable), request, where);
  } else {
    return [fn = std::move(awaitable), request, where]() mutable {
      return checked(fn(), request, where);
    };
  }
}

// Initiates boost::asio::co_spawn inside the context modgraph::co_spawn was
// called in, also when the token defers initiation (asio::deferred).
struct InitiateSpawnInContext {
  template <class Handler, class SpawnExecutor, class Spawnable>
  void operator()(Handler&& handler, Context ctx, SpawnExecutor ex, Spawnable spawnable) const {
    run(ctx, [&] {
      boost::asio::co_spawn(std::move(ex), std::move(spawnable), std::forward<Handler>(handler));
    });
  }
};

}  // namespace context_internal

}  // namespace modgraph
