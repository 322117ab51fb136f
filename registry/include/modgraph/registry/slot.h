// slot.h — accessor slots: a module's module-level default accessor, which a
// provider module may replace on that instance with a context-backed one.
//
//   // head.h, shared by `head` and the providers that register on it:
//   MODGRAPH_DEFINE_SLOT(GetSsrHeadChildren, "get_ssr_head_children",
//                        std::vector<std::string>*());
//
//   // head.cc: module-level state and its module-level default accessor.
//   std::vector<std::string> g_children;
//   std::vector<std::string>* DefaultChildren() { return &g_children; }
//   modgraph::Slot<GetSsrHeadChildren> g_get_children{&DefaultChildren};
//   const modgraph_slot_decl kSlots[] = {g_get_children.decl()};  // into MODGRAPH_MODULE
//
//   // head-provider.cc, in init: this environment's head gets the request's state.
//   context.register_accessor<GetSsrHeadChildren>("head", &RequestChildren);
//
// Calling a slot is a load, one compare and an indirect call. The host may
// rewrite the slot's cell while requests call it (a provider registering after a
// reload): the cell is read and written atomically (std::atomic_ref; the read
// is an acquire load, a plain `mov` on x86-64), so a caller sees either the old
// accessor or the new one, and the new one's module is fully initialised. While the slot
// still holds its default, a call inside a request scope goes to the sentinel
// (sentinel.h): a fallback hit, a possible cross-request leak, or — under the
// strict policy — an error thrown into the request.
#ifndef MODGRAPH_REGISTRY_SLOT_H_
#define MODGRAPH_REGISTRY_SLOT_H_

#include <atomic>

#include "modgraph/context/request_context.h"
#include "modgraph/loader/module_abi.h"
#include "modgraph/registry/sentinel.h"

namespace modgraph {

// Declares a slot type: its name, C++ signature and that signature's spelling
// (the host compares spellings when a provider registers).
#define MODGRAPH_DEFINE_SLOT(Type, name_literal, ...)       \
  struct Type {                                             \
    using Signature = __VA_ARGS__;                          \
    static constexpr const char* kName = name_literal;      \
    static constexpr const char* kSignature = #__VA_ARGS__; \
  }

template <class SlotType, class Sig = typename SlotType::Signature>
class Slot;

template <class SlotType, class R, class... Args>
class Slot<SlotType, R(Args...)> {
 public:
  using Fn = R (*)(Args...);

  explicit Slot(Fn default_impl) : default_(to_void(default_impl)), impl_(default_) {}
  Slot(const Slot&) = delete;
  Slot& operator=(const Slot&) = delete;

  R operator()(Args... args) const {
    void* const impl = std::atomic_ref<void*>(impl_).load(std::memory_order_acquire);
    if (impl == default_) [[unlikely]] {
      if (const std::uint64_t request = current_request_id(); request != 0) {
        registry_internal::OnFallback(&impl_, request);
      }
    }
    return reinterpret_cast<Fn>(impl)(static_cast<Args&&>(args)...);
  }

  // True while no provider has registered on this instance.
  bool is_default() const {
    return std::atomic_ref<void*>(impl_).load(std::memory_order_acquire) == default_;
  }

  modgraph_slot_decl decl() { return {SlotType::kName, SlotType::kSignature, default_, &impl_}; }

 private:
  static void* to_void(Fn fn) { return reinterpret_cast<void*>(fn); }
  void* default_;
  // Rewritten by the host when a provider registers (atomically, through
  // modgraph_slot_decl::active_impl); mutable for the atomic_ref reads.
  alignas(std::atomic_ref<void*>::required_alignment) mutable void* impl_;
};

}  // namespace modgraph

#endif  // MODGRAPH_REGISTRY_SLOT_H_
