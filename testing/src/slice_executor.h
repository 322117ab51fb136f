// slice_executor.h — an Asio executor that makes each function it runs one
// audited slice of a request, so the module-state audit sees every scheduling
// point of that request.
//
// Asio resumes a coroutine through its executor; spawning a request's
// coroutine on SliceExecutor (wrapped by modgraph::co_spawn, which installs the
// request context) turns every resumption into
//   audit.EnterSlice(request); <resumption>; audit.LeaveSlice();
// Timers, posts and child operations the coroutine starts through its own
// executor inherit the wrapper. Properties (blocking, outstanding work,
// allocator, ...) are forwarded to the inner executor; require/prefer keep the
// wrapper.
//
//   modgraph::co_spawn(SliceExecutor(io.get_executor(), &audit, request_id), Page(), token);
#ifndef MODGRAPH_TESTING_SRC_SLICE_EXECUTOR_H_
#define MODGRAPH_TESTING_SRC_SLICE_EXECUTOR_H_

#include <boost/asio/execution.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/query.hpp>
#include <boost/asio/require.hpp>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "modgraph/testing/module_state_audit.h"

namespace modgraph::testing::audit_internal {

template <class F>
class Slice {
 public:
  Slice(ModuleStateAudit* audit, std::uint64_t request, F fn)
      : audit_(audit), request_(request), fn_(std::move(fn)) {}
  Slice(Slice&&) = default;
  Slice(const Slice&) = delete;
  Slice& operator=(const Slice&) = delete;
  Slice& operator=(Slice&&) = delete;

  void operator()() {
    struct Leave {
      ModuleStateAudit* audit;
      ~Leave() { audit->LeaveSlice(); }
    };
    audit_->EnterSlice(request_);
    Leave leave{audit_};
    std::move(fn_)();
  }

 private:
  ModuleStateAudit* audit_;
  std::uint64_t request_;
  F fn_;
};

template <class Executor>
class SliceExecutor {
 public:
  SliceExecutor(Executor inner, ModuleStateAudit* audit, std::uint64_t request) noexcept
      : inner_(std::move(inner)), audit_(audit), request_(request) {}

  const Executor& get_inner_executor() const noexcept { return inner_; }

  template <class F>
  void execute(F&& f) const {
    inner_.execute(Slice<std::decay_t<F>>(audit_, request_, std::forward<F>(f)));
  }

  template <class Property>
  auto query(const Property& p) const
      noexcept(noexcept(boost::asio::query(std::declval<const Executor&>(), p)))
          -> decltype(boost::asio::query(std::declval<const Executor&>(), p)) {
    return boost::asio::query(inner_, p);
  }

  template <class Property>
  auto require(const Property& p) const -> SliceExecutor<
      std::decay_t<decltype(boost::asio::require(std::declval<const Executor&>(), p))>> {
    return {boost::asio::require(inner_, p), audit_, request_};
  }

  template <class Property>
  auto prefer(const Property& p) const -> SliceExecutor<
      std::decay_t<decltype(boost::asio::prefer(std::declval<const Executor&>(), p))>> {
    return {boost::asio::prefer(inner_, p), audit_, request_};
  }

  friend bool operator==(const SliceExecutor& a, const SliceExecutor& b) noexcept {
    return a.inner_ == b.inner_ && a.audit_ == b.audit_ && a.request_ == b.request_;
  }
  friend bool operator!=(const SliceExecutor& a, const SliceExecutor& b) noexcept {
    return !(a == b);
  }

 private:
  Executor inner_;
  ModuleStateAudit* audit_;
  std::uint64_t request_;
};

}  // namespace modgraph::testing::audit_internal

#endif  // MODGRAPH_TESTING_SRC_SLICE_EXECUTOR_H_
