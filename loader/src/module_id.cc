// The module id grammar; see module_id.h.
#include "modgraph/loader/module_id.h"

#include <fmt/format.h>

#include <string>

namespace modgraph {
namespace {

bool IsLower(char c) { return c >= 'a' && c <= 'z'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// The id a user most likely meant: lower case, other separators as '-'.
std::string Suggest(std::string_view id) {
  std::string out;
  for (char c : id) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (IsLower(c) || IsDigit(c)) {
      out += c;
    } else if (!out.empty() && out.back() != '-') {
      out += '-';
    }
  }
  while (!out.empty() && (out.back() == '-')) out.pop_back();
  while (!out.empty() && !IsLower(out.front())) out.erase(0, 1);
  if (out.size() > kMaxModuleIdLength) out.resize(kMaxModuleIdLength);
  while (!out.empty() && out.back() == '-') out.pop_back();
  return out;
}

// Printable form of an id that may hold control bytes or be very long.
std::string Quoted(std::string_view id) {
  std::string out;
  for (char c : id.substr(0, 80)) {
    const auto byte = static_cast<unsigned char>(c);
    out += (byte < 0x20 || byte >= 0x7f) ? fmt::format("\\x{:02x}", byte) : std::string(1, c);
  }
  if (id.size() > 80) out += "...";
  return out;
}

}  // namespace

bool IsValidModuleId(std::string_view id) noexcept {
  if (id.empty() || id.size() > kMaxModuleIdLength || !IsLower(id.front()) || id.back() == '-') {
    return false;
  }
  for (std::size_t i = 0; i < id.size(); ++i) {
    const char c = id[i];
    if (!IsLower(c) && !IsDigit(c) && c != '-') return false;
    if (c == '-' && id[i + 1] == '-') return false;  // id.back() != '-', so i + 1 < size
  }
  return true;
}

absl::Status ValidateModuleId(std::string_view id, std::string_view where) {
  if (IsValidModuleId(id)) return absl::OkStatus();
  const std::string suggestion = Suggest(id);
  return absl::InvalidArgumentError(fmt::format(
      "module id '{}' ({}) is not valid: a module id is at most {} lower-case letters, digits "
      "and '-', starts with a letter and does not end with '-' or hold \"--\"{}",
      Quoted(id), where, kMaxModuleIdLength,
      suggestion.empty() ? std::string("; rename the module")
                         : fmt::format("; rename it, e.g. '{}'", suggestion)));
}

}  // namespace modgraph
