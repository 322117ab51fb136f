// modgraph/context/internal/context_rep.h — the representation behind
// modgraph::Context and the thread-local anchor. Internal to modgraph's context
// layer (and its Asio/request-context helpers): the layout, reference counting
// and TLS model may change without notice. Public code uses context.h.
//
//   // inside the layer: make a context current without touching reference counts
//   context_internal::ScopeGuard guard(context_internal::ContextAccess::rep(ctx));
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <typeinfo>
#include <utility>

namespace modgraph {

class Context;
template <class T>
class Key;

namespace context_internal {

struct RequestState;  // request_context.h

// A value held by one context. The virtual destructor lives in the code that
// created the value (host or module copy); that code must outlive the context.
// `epoch` is the key's epoch when the value was set: a value set before the key
// was disabled (Key::disable) no longer counts.
struct ValueBox {
  virtual ~ValueBox() = default;
  std::uint32_t epoch = 0;
};

template <class T>
struct TypedBox final : ValueBox {
  template <class... A>
  explicit TypedBox(A&&... args) : value(std::forward<A>(args)...) {}
  T value;
};

// The shared representation of a Context. Slot pointers are followed directly by
// the ValueBox* array (allocated in one block). Boxes are owned by the rep that
// introduced them; children borrow them and keep their parent alive.
struct ContextRep {
  std::atomic<std::uint32_t> refs{1};
  std::uint32_t size = 0;               // number of slots that follow
  std::uint64_t request_id = 0;         // 0 outside a request scope
  RequestState* request = nullptr;      // the unified request context, if any
  ContextRep* parent = nullptr;         // strong reference
  ValueBox* own_value = nullptr;        // the box this rep introduced
  RequestState* own_request = nullptr;  // in this rep's block (make_request_root)

  ValueBox* const* slots() const noexcept { return reinterpret_cast<ValueBox* const*>(this + 1); }
  ValueBox** slots() noexcept { return reinterpret_cast<ValueBox**>(this + 1); }
};

// The anchor. constinit keeps the compiler from emitting a TLS init wrapper.
//
// Outside modgraph_core the declaration asks for the initial-exec TLS model, so a
// read from a dlopen'd module is the same two loads as in the host: the anchor's
// offset from the thread pointer, from a GOT entry (filled once when the module
// is relocated), then a %fs-relative load; no TLS descriptor or __tls_get_addr
// call per read. This is valid because the host links modgraph_core, so the
// core's TLS lives in the static TLS block from startup, at an offset fixed for
// every thread; a module only refers to the core's variable and defines no
// initial-exec TLS of its own.
//
// Limit: if modgraph_core itself were dlopen'd (by a host that does not link
// it), its TLS would not be in the static block. glibc then moves it into the
// static TLS surplus when the first module is relocated; if the anchor was
// already accessed dynamically on some thread, or the surplus is used up
// (tunable glibc.rtld.optional_static_tls), dlopen of the module fails with
// "cannot allocate memory in static TLS block". Such hosts build with
// -DMODGRAPH_CONTEXT_DYNAMIC_TLS=ON (global-dynamic access, through
// __tls_get_addr or a TLS descriptor with -mtls-dialect=gnu2; slower). The model
// is then asked for explicitly: a position-independent executable would
// otherwise read an external thread_local with initial-exec anyway. The core's
// own code never uses initial-exec, so the core itself stays loadable with
// dlopen.
#if defined(MODGRAPH_CONTEXT_BUILDING_CORE)
#define MODGRAPH_CONTEXT_ANCHOR_TLS_MODEL
#elif defined(MODGRAPH_CONTEXT_DYNAMIC_TLS)
#define MODGRAPH_CONTEXT_ANCHOR_TLS_MODEL __attribute__((tls_model("global-dynamic")))
#else
#define MODGRAPH_CONTEXT_ANCHOR_TLS_MODEL __attribute__((tls_model("initial-exec")))
#endif
extern constinit thread_local ContextRep* tls_current MODGRAPH_CONTEXT_ANCHOR_TLS_MODEL;

// A step: a function a context executor runs while holding one reference to
// its context (asio.h). Work the step hands to an executor that cannot start it
// before the step returns borrows that reference instead of taking its own —
// a *loan* — and the step settles its loans when it returns: the first loan
// inherits the step's reference, each further loan gets one more. So a
// coroutine resumed by a post from its previous step costs no atomic operation.
struct Step {
  ContextRep* rep;          // the context whose reference this step holds
  std::uint32_t loans = 0;  // references lent during this step
  Step* outer = nullptr;    // the enclosing step on this thread
};

// Per-thread state of the context executors (asio.h), in the core like the
// anchor so that every module copy shares it.
struct ExecutorThreadState {
  Step* step = nullptr;     // the innermost step running on this thread
  bool resumption = false;  // set while Asio asks for an awaitable's executor
};
extern constinit thread_local ExecutorThreadState tls_executor MODGRAPH_CONTEXT_ANCHOR_TLS_MODEL;

// The request id carried by `rep`; 0 for none.
inline std::uint64_t current_request_id_of(const ContextRep* rep) noexcept {
  return rep == nullptr ? 0 : rep->request_id;
}

// Frees `rep` (whose count reached zero) and releases its parent chain.
void destroy(ContextRep* rep) noexcept;
inline void retain(ContextRep* rep) noexcept {
  if (rep != nullptr) rep->refs.fetch_add(1, std::memory_order_relaxed);
}
// Inline fast path: one atomic decrement; the call into the core happens only
// when the last reference goes.
inline void release(ContextRep* rep) noexcept {
  if (rep != nullptr && rep->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) destroy(rep);
}

// Allocates a child of `parent` (may be null) whose slot `index` holds `box`
// (null: the key is unset there); takes ownership of `box` even when it throws.
ContextRep* make_child(ContextRep* parent, std::uint32_t index, ValueBox* box);
// Allocates a child of `parent` that is the root of a unified request scope
// with id `id`, and in the same block the RequestState it owns (rep->request).
ContextRep* make_request_root(ContextRep* parent, std::uint64_t id);

// Key slot registry. Anonymous keys get a fresh index; named keys get the same
// index for the same name in every module copy (type checked: a mismatch throws
// std::logic_error, or inside a RegistrationScope is refused and becomes a load
// error; see registrations.h).
std::uint32_t register_key(std::string_view name, std::size_t size, std::size_t align,
                           const char* type_name);
// The epoch of key slot `index`: values carry the epoch they were set in, and
// Key::disable() moves it on. Stable address, shared by every module copy.
std::atomic<std::uint32_t>* key_epoch(std::uint32_t index);
// Set once any key has been disabled; until then get() skips the epoch check.
extern std::atomic<bool> any_key_disabled;

// typeid(T).name() carries a '*' prefix for types local to one shared object;
// strip it so module copies compare equal.
inline const char* portable_type_name(const std::type_info& info) noexcept {
  const char* name = info.name();
  return name[0] == '*' ? name + 1 : name;
}

// The layer's own access to a Context's representation (abseil's friend
// accessor pattern): Context keeps these members private. Defined in context.h.
struct ContextAccess {
  // The shared representation (borrowed; null for the empty context).
  static ContextRep* rep(const Context& ctx) noexcept;
  // A Context that takes ownership of one reference to `rep`.
  static Context adopt(ContextRep* rep) noexcept;
  // Gives up `ctx`'s reference to the caller; `ctx` becomes empty.
  static ContextRep* detach(Context& ctx) noexcept;
  // The value of `key` in `rep`, else the key's default, else nullptr.
  template <class T>
  static const T* lookup(const ContextRep* rep, const Key<T>& key) noexcept;
};

// Makes `rep` current until destroyed; borrows, does not retain.
class ScopeGuard {
 public:
  explicit ScopeGuard(ContextRep* rep) noexcept : saved_(tls_current) { tls_current = rep; }
  ~ScopeGuard() { tls_current = saved_; }
  ScopeGuard(const ScopeGuard&) = delete;
  ScopeGuard& operator=(const ScopeGuard&) = delete;

 private:
  ContextRep* saved_;
};

}  // namespace context_internal

}  // namespace modgraph
