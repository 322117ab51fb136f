// Name → index registries for keys and state kinds, shared by every module copy
// because they live in modgraph_core. Registration happens once per declaring
// object, never on a read path. Every registration is recorded with the object
// file that made it (registrations.h lists them).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>

namespace modgraph::context_internal {

// Index 0 of both registries is never given to an accepted registration: a
// refused one gets it (registrations.h), so a refused object cannot alias a
// live kind or key.
inline constexpr std::uint32_t kRefusedIndex = 0;

class NamedRegistry {
 public:
  // `what` names the thing registered in messages ("key", "state kind");
  // indices 1 .. limit-1 are available.
  NamedRegistry(std::string_view what, std::uint32_t limit) : what_(what), limit_(limit) {}

  // A fresh index for an anonymous registration (empty name, unless
  // `anonymous_allowed` is false), else the index already given to `name`.
  // `caller` is an address in the code that constructs the key (its object file
  // is recorded). When the registration cannot be honoured — `name` is taken
  // with another size, alignment or type by a copy that is still mapped, or the
  // indices ran out — it throws std::logic_error outside a RegistrationScope and
  // returns kRefusedIndex (recording the error in the scope) inside one.
  std::uint32_t register_name(std::string_view name, std::size_t size, std::size_t align,
                              const char* type_name, const void* caller,
                              bool anonymous_allowed = true);

 private:
  struct Entry {
    std::uint32_t index;
    std::size_t size;
    std::size_t align;
    std::string type_name;
    std::size_t first_record;  // the registration that bound the name (records())
  };

  std::string what_;
  std::uint32_t limit_;
  std::uint32_t next_ = kRefusedIndex + 1;             // guarded by the registrations mutex
  std::map<std::string, Entry, std::less<>> by_name_;  // guarded by the registrations mutex
};

}  // namespace modgraph::context_internal
