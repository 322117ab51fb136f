#include "named_registry.h"

#include <cxxabi.h>
#include <fmt/format.h>

#include <cstdlib>
#include <memory>
#include <stdexcept>

namespace modgraph::context_internal {
namespace {

std::string demangle(const std::string& mangled) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> out(
      abi::__cxa_demangle(mangled.c_str(), nullptr, nullptr, &status), std::free);
  return status == 0 ? std::string(out.get()) : mangled;
}

}  // namespace

std::uint32_t NamedRegistry::register_name(std::string_view name, std::size_t size,
                                           std::size_t align, const char* type_name) {
  std::lock_guard lock(mu_);
  if (!name.empty()) {
    if (auto it = by_name_.find(name); it != by_name_.end()) {
      const Entry& first = it->second;
      if (first.size != size || first.align != align || first.type_name != type_name) {
        throw std::logic_error(fmt::format(
            "modgraph: {0} '{1}' is registered with type {2} (size {3}, align {4}) and again "
            "with type {5} (size {6}, align {7}); every module copy that declares this {0} must "
            "use the same type — is one module built against an older header?",
            what_, name, demangle(first.type_name), first.size, first.align, demangle(type_name),
            size, align));
      }
      return first.index;
    }
  }
  if (next_ >= limit_) {
    throw std::logic_error(
        fmt::format("modgraph: cannot register {0} '{1}': all {2} {0} indices "
                    "are in use",
                    what_, name, limit_));
  }
  const std::uint32_t index = next_++;
  if (!name.empty()) by_name_.emplace(name, Entry{index, size, align, type_name});
  return index;
}

}  // namespace modgraph::context_internal
