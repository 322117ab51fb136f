// modgraph/context/internal/request_state.h — what a unified request scope
// owns (request_context.h): one slot per state kind, the request's id and its
// request generation. Internal to the context layer; use request_context.h.
//
//   context_internal::RequestState* request = rep->request;  // null outside a request
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

namespace modgraph {

namespace context_internal {

// The unified scope has room for this many state kinds (index 0 is reserved for
// refused registrations, registrations.h); registering more is refused.
inline constexpr std::uint32_t kMaxStateKinds = 64;

struct StateHolder {
  virtual ~StateHolder() = default;
};

template <class T>
struct TypedState final : StateHolder {
  T value{};
};

// Owned by the root context of one request scope.
struct RequestState {
  explicit RequestState(std::uint64_t request_id) noexcept : id(request_id) {}
  ~RequestState();  // destroys the states, last kind first
  RequestState(const RequestState&) = delete;
  RequestState& operator=(const RequestState&) = delete;

  std::uint64_t id;
  // The request generation this request belongs to (SealRequestGeneration()).
  // Released after the states are destroyed, so code they need stays loaded.
  std::shared_ptr<const void> generation;
  std::atomic<StateHolder*> states[kMaxStateKinds]{};
};

// Same index for the same name in every module copy. A size/alignment/type
// mismatch with a copy still mapped, an empty name, or running out of indices
// throws std::logic_error — or, inside a RegistrationScope (a library being
// loaded by an environment), is refused and reported as a load error
// (registrations.h): nothing is thrown out of a static initialiser.
std::uint32_t register_state_kind(std::string_view name, std::size_t size, std::size_t align,
                                  const char* type_name);

}  // namespace context_internal

}  // namespace modgraph
