// Name → index registries for keys and state kinds, shared by every module copy
// because they live in modgraph_core. Registration happens once per declaring
// object, never on a read path.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

namespace modgraph::context_internal {

class NamedRegistry {
 public:
  // `what` names the thing registered in error messages ("key", "state kind");
  // `limit` is the number of indices available.
  NamedRegistry(std::string_view what, std::uint32_t limit) : what_(what), limit_(limit) {}

  // A fresh index for an anonymous registration (empty name), else the index
  // already given to `name`. Throws std::logic_error if `name` was registered
  // with another size, alignment or type, or when the indices run out.
  std::uint32_t register_name(std::string_view name, std::size_t size, std::size_t align,
                              const char* type_name);

 private:
  struct Entry {
    std::uint32_t index;
    std::size_t size;
    std::size_t align;
    std::string type_name;
  };

  std::string what_;
  std::uint32_t limit_;
  std::mutex mu_;
  std::uint32_t next_ = 0;                             // guarded by mu_
  std::map<std::string, Entry, std::less<>> by_name_;  // guarded by mu_
};

}  // namespace modgraph::context_internal
