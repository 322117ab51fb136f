#include "modgraph/server/http.h"

#include <fmt/format.h>

#include <string>
#include <string_view>

#include "modgraph/server/internal/spare_nodes.h"

namespace modgraph::server {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decodes `in` (and '+' as a space in query components) into `out`.
absl::Status percent_decode(std::string_view in, bool plus_is_space, std::string_view target,
                            std::string& out) {
  if (in.find_first_of(plus_is_space ? std::string_view("%+\0", 3) : std::string_view("%\0", 2)) ==
      std::string_view::npos) {
    out.assign(in.data(), in.size());  // nothing to decode: the common case
    return absl::OkStatus();
  }
  out.clear();
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      const int hi = i + 2 < in.size() ? hex_value(in[i + 1]) : -1;
      const int lo = i + 2 < in.size() ? hex_value(in[i + 2]) : -1;
      if (hi < 0 || lo < 0) {
        return absl::InvalidArgumentError(
            fmt::format("malformed percent escape at offset {} in request target '{}'",
                        static_cast<std::size_t>(in.data() - target.data()) + i, target));
      }
      c = static_cast<char>(hi * 16 + lo);
      i += 2;
    } else if (c == '+' && plus_is_space) {
      c = ' ';
    }
    if (c == '\0') {
      return absl::InvalidArgumentError(
          fmt::format("request target '{}' decodes to a NUL character", target));
    }
    out.push_back(c);
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status DecodeTarget(std::string_view target, std::string& path,
                          std::map<std::string, std::string>& query) {
  query.clear();
  server_internal::SpareNodes none;
  return server_internal::DecodeTarget(target, path, query, none);
}

}  // namespace modgraph::server

namespace modgraph::server_internal {

using server::percent_decode;

absl::Status DecodeTarget(std::string_view target, std::string& path, FieldMap& query,
                          SpareNodes& spare) {
  spare.Reclaim(query);
  if (target.empty() || target.front() != '/') {
    return absl::InvalidArgumentError(fmt::format(
        "request target '{}' is not a path: only origin-form targets (\"/page?x=1\") are served",
        target));
  }
  const std::size_t question = target.find('?');
  std::string_view raw_path = target.substr(0, question);
  std::string_view raw_query =
      question == std::string_view::npos ? std::string_view() : target.substr(question + 1);
  // A fragment is never sent by a browser; drop it if a client does.
  if (const std::size_t hash = raw_query.find('#'); hash != std::string_view::npos) {
    raw_query = raw_query.substr(0, hash);
  }
  if (absl::Status s = percent_decode(raw_path, false, target, path); !s.ok()) return s;

  std::string name;
  std::string value;
  while (!raw_query.empty()) {
    const std::size_t amp = raw_query.find('&');
    const std::string_view pair = raw_query.substr(0, amp);
    raw_query = amp == std::string_view::npos ? std::string_view() : raw_query.substr(amp + 1);
    if (pair.empty()) continue;
    const std::size_t eq = pair.find('=');
    if (absl::Status s = percent_decode(pair.substr(0, eq), true, target, name); !s.ok()) return s;
    if (eq == std::string_view::npos) {
      value.clear();
    } else if (absl::Status s = percent_decode(pair.substr(eq + 1), true, target, value); !s.ok()) {
      return s;
    }
    spare.Assign(query, name, value);
  }
  return absl::OkStatus();
}

}  // namespace modgraph::server_internal
