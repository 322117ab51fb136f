// modgraph/server/internal/spare_nodes.h — map nodes a connection keeps
// between its requests, so that filling the next Request's query and headers
// allocates nothing a previous request already allocated. Internal to the
// server layer.
//
// What is kept is bounded: at most kMaxNodes nodes, none holding a string of
// more than kMaxKeptBytes, so an idle keep-alive connection holds a few KiB
// whatever its largest request was.
//
//   SpareNodes spare;
//   spare.Reclaim(request.query);                  // the last request's nodes
//   spare.Assign(request.query, "id", "7");        // reuses one, capacity included
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace modgraph::server_internal {

using FieldMap = std::map<std::string, std::string>;

class SpareNodes {
 public:
  static constexpr std::size_t kMaxNodes = 32;
  static constexpr std::size_t kMaxKeptBytes = 256;

  // Empties `map`, keeping its nodes for reuse within the bounds above (the
  // others are freed).
  void Reclaim(FieldMap& map) {
    while (!map.empty()) {
      FieldMap::node_type node = map.extract(map.begin());
      if (nodes_.size() < kMaxNodes && node.key().capacity() <= kMaxKeptBytes &&
          node.mapped().capacity() <= kMaxKeptBytes) {
        nodes_.push_back(std::move(node));
      }
    }
  }

  std::size_t size() const { return nodes_.size(); }

  // map[name] = value: a name already present gets the new value (the last
  // wins); a new name takes a spare node when there is one.
  FieldMap::iterator Assign(FieldMap& map, const std::string& name, std::string_view value) {
    if (auto it = map.find(name); it != map.end()) {
      it->second.assign(value);
      return it;
    }
    return Insert(map, name, value);
  }

  // Inserts `name` (not in `map`) with `value`.
  FieldMap::iterator Insert(FieldMap& map, const std::string& name, std::string_view value) {
    if (nodes_.empty()) return map.emplace(name, value).first;
    FieldMap::node_type node = std::move(nodes_.back());
    nodes_.pop_back();
    node.key().assign(name);
    node.mapped().assign(value);
    return map.insert(std::move(node)).position;
  }

 private:
  std::vector<FieldMap::node_type> nodes_;
};

// Frees what `request` holds beyond what a typical request needs (a large
// body, target or path; its maps' nodes go back through Reclaim), so that a
// reused Request does not keep its largest request's memory.
template <class Request>
void TrimKept(Request& request) {
  constexpr std::size_t kMaxKept = 4096;
  for (std::string* text : {&request.method, &request.target, &request.path, &request.body}) {
    if (text->capacity() > kMaxKept) std::string().swap(*text);
  }
}

// DecodeTarget (http.h) into `query` with its nodes reclaimed into `spare`
// and reused from it.
absl::Status DecodeTarget(std::string_view target, std::string& path, FieldMap& query,
                          SpareNodes& spare);

}  // namespace modgraph::server_internal
