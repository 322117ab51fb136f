// modgraph/context/request_context.h — the unified request context and state
// kinds: one request scope that holds every kind of per-request state.
//
// Instead of one nested scope per module that keeps request state, a
// request enters a single unified scope. Each module declares a `StateKind` once;
// its state is created lazily the first time the kind is read inside the scope
// and destroyed with the request context. Outside the unified scope a kind falls
// back to its own standalone scope (`run_standalone`), and outside both,
// `get()` returns nullptr so the caller uses its module-level default.
//
//   struct HeadState { std::vector<std::string> children; };
//   inline const modgraph::StateKind<HeadState> kHeadState{"head"};
//
//   std::vector<std::string>& head_children() {
//     if (HeadState* s = kHeadState.get()) return s->children;  // this request's
//     return g_default_head_children;                           // module-level default
//   }
//
//   auto req = modgraph::RequestContext::create(request_id);
//   modgraph::run_request(req, [] { head_children().push_back("<title>x</title>"); });
//
// Kinds are registered by name in modgraph_core: every module copy that declares
// `StateKind<HeadState>{"head"}` gets the same index, so a request's head state is
// shared by all copies. Reading a kind is an array index, flat in the number of
// kinds. Lifetime: a state object is destroyed when its request context is
// destroyed, by the code of the module copy that created it; that copy must stay
// loaded until then.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <typeinfo>
#include <utility>

#include "modgraph/context/context.h"
#include "modgraph/context/internal/request_state.h"

namespace modgraph {

// One request's unified context: its id and every state kind's instance. A
// cheap, copyable handle; the states live until the last copy (and every
// context derived from it, e.g. by snapshot() in pending work) is gone.
class RequestContext {
 public:
  // A request context with this id (must not be 0). It inherits the values of
  // the context current at creation.
  static RequestContext create(std::uint64_t id);
  // Same, with the next id of the process-wide counter (NextRequestId()).
  static RequestContext create();

  std::uint64_t id() const noexcept {
    return ctx_.empty() ? 0 : context_internal::ContextAccess::rep(ctx_)->request_id;
  }
  // The context run_request() installs; derive children from it with with().
  const Context& context() const noexcept { return ctx_; }

 private:
  explicit RequestContext(Context ctx) noexcept : ctx_(std::move(ctx)) {}
  Context ctx_;
};

// The next request id of the process (1, 2, ...). Everything that creates
// request contexts — the server, the test kit — takes ids from here, so ids in
// sentinel reports are unique across them.
std::uint64_t NextRequestId() noexcept;

// How many request contexts are alive: created by RequestContext::create() and
// not yet destroyed (a request's context lives while any context derived from
// it does, e.g. a snapshot held by pending work). One relaxed atomic load. The
// registry's sentinel reads it to tell start-up code (no request in flight) from
// work that lost its request's context.
std::size_t RequestsInFlight() noexcept;

// Watches one sealed request generation (SealRequestGeneration()).
class RequestGenerationWatch {
 public:
  RequestGenerationWatch() = default;  // ended
  explicit RequestGenerationWatch(std::shared_ptr<const std::atomic<bool>> ended) noexcept
      : ended_(std::move(ended)) {}
  // True once every request that could hold the sealed generation has ended.
  // An acquire load: everything those requests did happens before it returns
  // true, so the caller may then free what they used (close a library).
  bool ended() const noexcept {
    return ended_ == nullptr || ended_->load(std::memory_order_acquire);
  }

 private:
  std::shared_ptr<const std::atomic<bool>> ended_;
};

// Starts a new request generation and returns a watch of the previous one: it
// ends once every request context created before this call — in that
// generation or any earlier one — has been destroyed, and every holder of
// HoldRequestGeneration() taken before it has let go. Environments retire
// unloaded libraries with it and close them only when no request that could
// hold their objects (state, coroutine frames) is left. One mutex, two
// allocations.
RequestGenerationWatch SealRequestGeneration();

// A share in the current request generation, as a request context holds one:
// a library retired after this call stays mapped while the result is alive.
// For work that reaches module code without a request scope (a server running
// with the request context off, a tool's own thread).
std::shared_ptr<const void> HoldRequestGeneration();

// Runs `fn` inside the unified request scope of `req` and returns its result.
template <class F>
decltype(auto) run_request(const RequestContext& req, F&& fn) {
  return run(req.context(), std::forward<F>(fn));
}

// The current request's id, or 0 outside any request scope. Two loads, inline.
inline std::uint64_t current_request_id() noexcept {
  const context_internal::ContextRep* rep = context_internal::tls_current;
  return rep == nullptr ? 0 : rep->request_id;
}

inline bool in_request_scope() noexcept { return current_request_id() != 0; }

// A kind of per-request state, identified by name across module copies.
// Construct once per module copy, at namespace scope.
template <class T>
class StateKind {
 public:
  explicit StateKind(std::string_view name)
      : index_(context_internal::register_state_kind(
            name, sizeof(T), alignof(T), context_internal::portable_type_name(typeid(T)))),
        standalone_(std::string("modgraph.standalone.") + std::string(name)),
        name_(name) {}
  StateKind(const StateKind&) = delete;
  StateKind& operator=(const StateKind&) = delete;

  // This request's instance inside a unified scope (created on first access),
  // else the active standalone scope's instance, else nullptr.
  T* get() const {
    const context_internal::ContextRep* rep = context_internal::tls_current;
    if (rep == nullptr) return nullptr;
    if (context_internal::RequestState* request = rep->request; request != nullptr) {
      context_internal::StateHolder* held = request->states[index_].load(std::memory_order_acquire);
      return held != nullptr ? &static_cast<context_internal::TypedState<T>*>(held)->value
                             : create(*request);
    }
    T* const* standalone = context_internal::ContextAccess::lookup(rep, standalone_);
    return standalone == nullptr ? nullptr : *standalone;
  }

  // Runs `fn` in a standalone scope of this kind only, where get() returns
  // &state unless a unified scope is current. For code that runs outside the
  // unified scope (background work, tools); one allocation per call.
  template <class F>
  decltype(auto) run_standalone(T& state, F&& fn) const {
    return run(current().with(standalone_, &state), std::forward<F>(fn));
  }

  std::uint32_t index() const noexcept { return index_; }
  std::string_view name() const noexcept { return name_; }

 private:
  // First access in this request; two threads of one request may race here, the
  // loser's object is discarded.
  [[gnu::noinline]] T* create(context_internal::RequestState& request) const {
    auto* fresh = new context_internal::TypedState<T>();
    context_internal::StateHolder* expected = nullptr;
    if (request.states[index_].compare_exchange_strong(expected, fresh, std::memory_order_acq_rel,
                                                       std::memory_order_acquire)) {
      return &fresh->value;
    }
    delete fresh;
    return &static_cast<context_internal::TypedState<T>*>(expected)->value;
  }

  std::uint32_t index_;
  Key<T*> standalone_;
  std::string name_;
};

}  // namespace modgraph
