// modgraph/server/internal/spare_nodes.h — map nodes a connection keeps
// between its requests, so that filling the next Request's query and headers
// allocates nothing a previous request already allocated. Internal to the
// server layer.
//
//   SpareNodes spare;
//   spare.Reclaim(request.query);                  // the last request's nodes
//   spare.Assign(request.query, "id", "7");        // reuses one, capacity included
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace modgraph::server_internal {

using FieldMap = std::map<std::string, std::string>;

class SpareNodes {
 public:
  // Moves every node of `map` here; `map` is left empty.
  void Reclaim(FieldMap& map) {
    while (!map.empty()) nodes_.push_back(map.extract(map.begin()));
  }

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

// DecodeTarget (http.h) into `query` with its nodes reclaimed into `spare`
// and reused from it.
absl::Status DecodeTarget(std::string_view target, std::string& path, FieldMap& query,
                          SpareNodes& spare);

}  // namespace modgraph::server_internal
