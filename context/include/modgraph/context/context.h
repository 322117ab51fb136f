// modgraph/context/context.h — the request context: typed keys, immutable
// contexts, and the one thread-local anchor that says which context is current.
//
// This is C++'s AsyncLocalStorage. A `Context` is an immutable, ref-counted set
// of values addressed by typed `Key`s. `run(ctx, fn)` makes `ctx` current for the
// duration of `fn` and restores the previous context on return or exception.
// A child made with `with(key, value)` overrides one value and leaves its parent
// untouched (replace, not mutate). Contexts do not follow work into callbacks,
// threads or coroutines by themselves: carry them with `bind()`, `snapshot()`,
// or the helpers in asio.h and thread.h.
//
//   inline const modgraph::Key<std::string> kLocale{"app.locale", "en"};  // named, default "en"
//
//   auto page = modgraph::run(modgraph::with(kLocale, std::string("fr")), [] {
//     const std::string* locale = modgraph::get(kLocale);  // "fr"
//     return render(*locale);
//   });
//   // Here get(kLocale) is back to whatever it was before run() ("en" if unset).
//
//   {
//     modgraph::ContextScope scope(kLocale, std::string("ja"));  // RAII, for synchronous code
//     render_header();                                          // sees "ja"
//   }
//   modgraph::run_without(kLocale, [] { ... });  // kLocale unset (its default) in here
//
// Node's AsyncLocalStorage in these terms: `run(store, fn)` is
// `run(with(key, v), fn)`, `getStore()` is `get(key)`, `exit(fn)` is
// `run_without(key, fn)`, `disable()` is `key.disable()`, `defaultValue` is the
// key's default, `snapshot()`/`bind()` are the same names, and a scope guard
// stands in for `enterWith()`.
//
// Cost: `get()` is one thread-local load, three dependent loads and the load of
// a process-wide flag (set once any key is disabled: then two loads more),
// inline in the caller; `run()` with an existing context is two thread-local
// stores. `with()` allocates once and copies the parent's slot pointers.
//
// The thread-local anchor lives once, in modgraph_core: every dlopen'd module
// copy that links the core reads the same anchor.
#pragma once

#include <atomic>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string_view>
#include <type_traits>
#include <typeinfo>
#include <utility>

#include "modgraph/context/internal/context_rep.h"

namespace modgraph {

// A typed key. Construct once (namespace scope, `inline` or `static`); each key
// owns one slot index. A key constructed with a name shares its slot with every
// other key of that name and type, including those in other module copies.
//
// A key may have a default value (Node: `new AsyncLocalStorage({defaultValue})`):
// get() returns it wherever the key is unset — outside any scope, inside
// run_without(key), and after disable(). Each declaration keeps its own default.
template <class T>
class Key {
 public:
  Key()
      : index_(context_internal::register_key({}, sizeof(T), alignof(T),
                                              context_internal::portable_type_name(typeid(T)))),
        epoch_(context_internal::key_epoch(index_)) {}
  explicit Key(std::string_view name)
      : index_(context_internal::register_key(name, sizeof(T), alignof(T),
                                              context_internal::portable_type_name(typeid(T)))),
        epoch_(context_internal::key_epoch(index_)) {}
  // A key whose unset value reads as `default_value`. An empty name gives an
  // anonymous key.
  Key(std::string_view name, T default_value)
      : index_(context_internal::register_key(name, sizeof(T), alignof(T),
                                              context_internal::portable_type_name(typeid(T)))),
        epoch_(context_internal::key_epoch(index_)),
        default_(std::move(default_value)) {}
  Key(const Key&) = delete;
  Key& operator=(const Key&) = delete;

  std::uint32_t index() const noexcept { return index_; }
  // The default value, or nullptr if the key has none.
  const T* default_value() const noexcept { return default_ ? &*default_ : nullptr; }

  // Node's asyncLocalStorage.disable(): every value of this key set so far, in
  // every context on every thread (and in work already carrying one), stops
  // counting — get() gives the default, or nullptr — and values set afterwards
  // with with() count again. Applies to the slot, so to every declaration of a
  // named key. A relaxed store; reads on other threads see it promptly but not
  // at a defined instant.
  void disable() const noexcept {
    epoch_->fetch_add(1, std::memory_order_relaxed);
    context_internal::any_key_disabled.store(true, std::memory_order_relaxed);
  }

  // For the layer's own code: the key's current epoch.
  std::uint32_t epoch() const noexcept { return epoch_->load(std::memory_order_relaxed); }

 private:
  std::uint32_t index_;
  std::atomic<std::uint32_t>* epoch_;
  std::optional<T> default_;
};

// An immutable, ref-counted set of values; cheap to copy (one atomic increment).
// The default-constructed Context is the empty context (no values, no request).
class Context {
 public:
  Context() noexcept = default;
  Context(const Context& other) noexcept : rep_(other.rep_) { context_internal::retain(rep_); }
  Context(Context&& other) noexcept : rep_(std::exchange(other.rep_, nullptr)) {}
  Context& operator=(Context other) noexcept {
    std::swap(rep_, other.rep_);
    return *this;
  }
  ~Context() { context_internal::release(rep_); }

  // The value of `key` in this context, else the key's default, else nullptr.
  template <class T>
  const T* get(const Key<T>& key) const noexcept {
    return lookup(rep_, key);
  }

  // A child context in which `key` holds `value`; this context is unchanged.
  template <class T, class U>
  [[nodiscard]] Context with(const Key<T>& key, U&& value) const {
    auto* box = new context_internal::TypedBox<T>(std::forward<U>(value));
    box->epoch = key.epoch();
    return Context(context_internal::make_child(rep_, key.index(), box));
  }

  // A child context in which `key` is unset (get() gives its default, or
  // nullptr); this context is unchanged.
  template <class T>
  [[nodiscard]] Context without(const Key<T>& key) const {
    if (rep_ == nullptr || key.index() >= rep_->size || rep_->slots()[key.index()] == nullptr) {
      return *this;  // already unset: nothing to hide
    }
    return Context(context_internal::make_child(rep_, key.index(), nullptr));
  }

  bool empty() const noexcept { return rep_ == nullptr; }
  friend bool operator==(const Context& a, const Context& b) noexcept { return a.rep_ == b.rep_; }

 private:
  friend struct context_internal::ContextAccess;

  // Takes ownership of one reference to `rep`.
  explicit Context(context_internal::ContextRep* rep) noexcept : rep_(rep) {}

  template <class T>
  static const T* lookup(const context_internal::ContextRep* rep, const Key<T>& key) noexcept {
    if (rep != nullptr && key.index() < rep->size) {
      const context_internal::ValueBox* box = rep->slots()[key.index()];
      // Until some key has been disabled every epoch is current: one flag load
      // instead of two dependent loads (docs/benchmarks.md, "Request context").
      if (box != nullptr && (!context_internal::any_key_disabled.load(std::memory_order_relaxed) ||
                             box->epoch == key.epoch())) {
        return &static_cast<const context_internal::TypedBox<T>*>(box)->value;
      }
    }
    return key.default_value();
  }

  context_internal::ContextRep* rep_ = nullptr;
};

namespace context_internal {
inline ContextRep* ContextAccess::rep(const Context& ctx) noexcept { return ctx.rep_; }
inline Context ContextAccess::adopt(ContextRep* rep) noexcept { return Context(rep); }
inline ContextRep* ContextAccess::detach(Context& ctx) noexcept {
  return std::exchange(ctx.rep_, nullptr);
}
template <class T>
const T* ContextAccess::lookup(const ContextRep* rep, const Key<T>& key) noexcept {
  return Context::lookup(rep, key);
}
}  // namespace context_internal

// The current context (a new reference; empty outside any scope).
inline Context current() noexcept {
  context_internal::retain(context_internal::tls_current);
  return context_internal::ContextAccess::adopt(context_internal::tls_current);
}

// Same as current(); reads better where the point is to carry it elsewhere.
inline Context snapshot() noexcept { return current(); }

// The value of `key` in the current context, else the key's default, else
// nullptr. No allocation, no reference counting: valid while the current scope
// lasts (a default, while the key lives).
template <class T>
const T* get(const Key<T>& key) noexcept {
  return context_internal::ContextAccess::lookup(context_internal::tls_current, key);
}

// A child of the current context in which `key` holds `value`.
template <class T, class U>
[[nodiscard]] Context with(const Key<T>& key, U&& value) {
  return current().with(key, std::forward<U>(value));
}

// A child of the current context in which `key` is unset.
template <class T>
[[nodiscard]] Context without(const Key<T>& key) {
  return current().without(key);
}

// Runs `fn` with `ctx` current and returns its result. The previous context is
// restored on return and on exception. `ctx` must outlive the call (it does
// when passed as a temporary or a local).
template <class F>
decltype(auto) run(const Context& ctx, F&& fn) {
  context_internal::ScopeGuard guard(context_internal::ContextAccess::rep(ctx));
  return std::invoke(std::forward<F>(fn));
}

// Runs `fn` with `key` unset and every other value as it is (Node's
// asyncLocalStorage.exit(fn)): get(key) gives the key's default, or nullptr,
// inside `fn` and in work `fn` hands on with the context. Unlike Node's exit(),
// whose store is explicitly `undefined` even when the storage has a default, an
// unset key reads as its default: a C++ value has no `undefined`.
template <class T, class F>
decltype(auto) run_without(const Key<T>& key, F&& fn) {
  return run(without(key), std::forward<F>(fn));
}

// Makes a context current until the end of the enclosing block, then restores
// the one it replaced — on return and on exception (folly's
// RequestContextScopeGuard; Node's enterWith() with an end). For synchronous
// code: where a callable is at hand, run() costs less (no reference counting).
//
//   {
//     modgraph::ContextScope scope(kLocale, std::string("fr"));
//     render();  // sees "fr"
//   }
//
// Holds a reference to its context and to the one it replaced, so that
// restoring never touches freed memory wherever it happens.
//
// Coroutines. A scope held across co_await in a coroutine run by a context
// executor (modgraph::co_spawn, or a coroutine on any ContextExecutor, asio.h)
// is safe: its context is current again in every step of the coroutine until
// the scope ends — operations are initiated in it, so they complete in it — and
// it is never seen by the code that resumes the coroutine (each step restores
// the thread's previous context) nor by the caller of co_spawn (the first step
// runs in a step too). On a plain executor nothing restores the thread between
// steps: a scope held across co_await there stays installed on the thread
// that ran the step until the scope ends; spawn such coroutines with
// modgraph::co_spawn.
class [[nodiscard]] ContextScope {
 public:
  explicit ContextScope(Context ctx) noexcept : ctx_(std::move(ctx)), saved_(current()) {
    context_internal::tls_current = context_internal::ContextAccess::rep(ctx_);
  }
  // The scope of a child of the current context in which `key` holds `value`.
  template <class T, class U>
  ContextScope(const Key<T>& key, U&& value) : ContextScope(with(key, std::forward<U>(value))) {}
  ~ContextScope() { context_internal::tls_current = context_internal::ContextAccess::rep(saved_); }
  ContextScope(const ContextScope&) = delete;
  ContextScope& operator=(const ContextScope&) = delete;

  // The context this scope made current.
  const Context& context() const noexcept { return ctx_; }

 private:
  Context ctx_;
  Context saved_;
};

// A callable that runs `fn` in the context captured at construction.
template <class F>
class ContextBound {
 public:
  ContextBound(Context ctx, F fn) : ctx_(std::move(ctx)), fn_(std::move(fn)) {}

  template <class... A>
  requires std::invocable<F&, A...>
  decltype(auto) operator()(A&&... args) {
    context_internal::ScopeGuard guard(context_internal::ContextAccess::rep(ctx_));
    return std::invoke(fn_, std::forward<A>(args)...);
  }
  template <class... A>
  requires std::invocable<const F&, A...>
  decltype(auto) operator()(A&&... args) const {
    context_internal::ScopeGuard guard(context_internal::ContextAccess::rep(ctx_));
    return std::invoke(fn_, std::forward<A>(args)...);
  }

  const Context& context() const noexcept { return ctx_; }
  F& target() noexcept { return fn_; }
  const F& target() const noexcept { return fn_; }

 private:
  Context ctx_;
  F fn_;
};

// Lost request contexts. modgraph::co_spawn (asio.h) checks, when a coroutine
// of a request finishes, that it still runs in its request: a coroutine resumed
// by a completion handler called directly on another thread, not through the
// handler's executor, runs on without its context, and is reported here with
// the request's id and where it was spawned and finished. The registry's
// sentinel (sentinel.h) installs a handler in modgraph_core that records the
// report; with none installed, one line goes to stderr. The handler runs on the
// reporting thread and must not throw.
using LostRequestContextHandler = void (*)(std::uint64_t request_id, std::string_view where);
// Installs `handler` (null: back to stderr) and returns the previous one.
LostRequestContextHandler set_lost_request_context_handler(
    LostRequestContextHandler handler) noexcept;
void report_lost_request_context(std::uint64_t request_id, std::string_view where) noexcept;

// Wraps `fn` so that it runs in the current context wherever it is invoked.
template <class F>
[[nodiscard]] ContextBound<std::decay_t<F>> bind(F&& fn) {
  return {current(), std::forward<F>(fn)};
}

}  // namespace modgraph
