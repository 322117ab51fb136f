// module_id.h — the one grammar every module id follows, checked wherever an id
// enters modgraph: topology entries and [providers], descriptors (id, imports,
// provides_for), Environment::Import/Reload/Unload and the CLI.
//
// Ids name files (`<root>/<id>.so`) and symbols (`modgraph_module_<id>` with
// '-' as '_'), so an id that is not checked is a path or a symbol name chosen
// by whoever wrote the topology or the module. The grammar keeps both safe and
// unambiguous:
//
//   id   = letter *( letter / digit / "-" ), at most 64 characters,
//          not ending in "-" and without "--"
//   letter = "a".."z" ;  digit = "0".."9"
//
//   if (absl::Status ok = ValidateModuleId(id, "entries of environment 'ssr'"); !ok.ok())
//     return ok;  // "module id 'Theme.Dark' (entries of environment 'ssr') is not valid: ..."
#ifndef MODGRAPH_LOADER_MODULE_ID_H_
#define MODGRAPH_LOADER_MODULE_ID_H_

#include <cstddef>
#include <string_view>

#include "absl/status/status.h"

namespace modgraph {

inline constexpr std::size_t kMaxModuleIdLength = 64;

// True when `id` follows the grammar above.
bool IsValidModuleId(std::string_view id) noexcept;

// OK, or InvalidArgument naming the id, `where` it came from (a file position,
// "descriptor of '<file>'", "--module", ...), the grammar, and a valid id to use
// instead when one is obvious ("Theme.Dark" -> "theme-dark").
absl::Status ValidateModuleId(std::string_view id, std::string_view where);

}  // namespace modgraph

#endif  // MODGRAPH_LOADER_MODULE_ID_H_
