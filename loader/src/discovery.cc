// Which exports of a module library are descriptors, and which are not
// allowed; see internal/discovery.h.
#include "modgraph/loader/internal/discovery.h"

#include <elf.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>

#include "modgraph/loader/internal/descriptor_check.h"
#include "modgraph/loader/module_abi.h"
#include "module_files.h"

namespace modgraph {
namespace fs = std::filesystem;

namespace loader_internal {

ExportClasses ClassifyExports(const elf::SharedObject& library) {
  ExportClasses classes;
  for (const elf::DynamicSymbol& symbol : library.exports) {
    if (symbol.binding == STB_GNU_UNIQUE) {
      classes.gnu_unique.push_back(symbol.name);
    } else if (IsDescriptorAlias(symbol)) {
      classes.descriptor_aliases.push_back(symbol.name);
    } else {
      classes.interposable.push_back(symbol.name);
    }
  }
  std::sort(classes.interposable.begin(), classes.interposable.end());
  return classes;
}

std::vector<std::string> FindGnuUniqueSymbols(const fs::path& path) {
  const UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  struct stat st {};
  if (fd.get() < 0 || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) ||
      st.st_size > kMaxLibraryBytes) {
    return {};
  }
  absl::StatusOr<std::string> bytes =
      ReadAt(fd.get(), static_cast<std::size_t>(st.st_size), 0, path);
  if (!bytes.ok()) return {};
  absl::StatusOr<elf::SharedObject> so = elf::InspectSharedObject(*bytes);
  return so.ok() ? loader_internal::ClassifyExports(*so).gnu_unique : std::vector<std::string>{};
}

}  // namespace loader_internal

}  // namespace modgraph
