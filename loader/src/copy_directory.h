// loader/src/copy_directory.h — where private copies live: one directory per
// process (flock'ed while in use, swept when its owner is gone, removed at
// exit), on memory-backed storage when it allows executables, and what the
// machine has room for (free bytes, memory mappings). Internal to the loader.
//
//   if (mappings_now() + 64 >= MaxMapCount()) ...  // see DlopenFailed
#pragma once

#include <cstddef>
#include <filesystem>
#include <string_view>

#include "absl/status/status.h"

namespace modgraph::loader_internal {

// Lines of /proc/self/maps: this process's memory mappings.
std::size_t CountMappings();
// vm.max_map_count, or 0 when unreadable.
std::size_t MaxMapCount();

// Why a write of the private copy `copy` failed (`error` is its errno), with
// the fix when the copy directory is full.
absl::Status CopyFailed(int error, const std::filesystem::path& copy, std::string_view environment);

}  // namespace modgraph::loader_internal
