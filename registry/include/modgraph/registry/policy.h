// policy.h — what modgraph does about a module instance whose accessor slots
// still use the module-level default.
//
//   warn   — record fallback hits and cross-request leaks; report them
//   strict — a request that reaches such a slot fails, naming environment,
//            module, slot and the provider that would fix it
//   auto   — every provider declared for a module is instantiated and
//            registered in every environment where that module is instantiated,
//            before the first request and again after a reload
#ifndef MODGRAPH_REGISTRY_POLICY_H_
#define MODGRAPH_REGISTRY_POLICY_H_

#include <optional>
#include <string_view>

namespace modgraph {

enum class Policy { kWarn, kStrict, kAuto };

constexpr std::string_view ToString(Policy policy) {
  switch (policy) {
    case Policy::kWarn:
      return "warn";
    case Policy::kStrict:
      return "strict";
    case Policy::kAuto:
      return "auto";
  }
  return "?";
}

constexpr std::optional<Policy> ParsePolicy(std::string_view text) {
  if (text == "warn") return Policy::kWarn;
  if (text == "strict") return Policy::kStrict;
  if (text == "auto") return Policy::kAuto;
  return std::nullopt;
}

}  // namespace modgraph

#endif  // MODGRAPH_REGISTRY_POLICY_H_
