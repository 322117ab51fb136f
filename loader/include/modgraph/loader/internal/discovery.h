// modgraph/loader/internal/discovery.h — which exports of an inspected module
// library are module descriptors, and which are not allowed.
//
//   absl::StatusOr<elf::SharedObject> so = elf::InspectSharedObject(bytes);
//   ExportClasses classes = ClassifyExports(*so);
//   // classes.descriptor_aliases: "modgraph_module_head", ...
//
// Internal to the loader (and its fuzz target).
#ifndef MODGRAPH_LOADER_INTERNAL_DISCOVERY_H_
#define MODGRAPH_LOADER_INTERNAL_DISCOVERY_H_

#include <filesystem>
#include <string>
#include <vector>

#include "modgraph/loader/internal/elf.h"

namespace modgraph::loader_internal {

struct ExportClasses {
  // Pointer-sized data objects named MODGRAPH_ALIAS_PREFIX + ...: Boost.DLL
  // aliases, each pointing at a module descriptor.
  std::vector<std::string> descriptor_aliases;
  // STB_GNU_UNIQUE exports: shared by every copy of the library.
  std::vector<std::string> gnu_unique;
  // Every other export: the dynamic linker may bind it to another object's
  // definition of the same name. Sorted.
  std::vector<std::string> interposable;
};

ExportClasses ClassifyExports(const elf::SharedObject& library);

// Names of the STB_GNU_UNIQUE symbols in the dynamic symbol table of the ELF
// file at `path` (empty when it cannot be read or is not ELF). For tests that
// check how modules are built (-fno-gnu-unique).
std::vector<std::string> FindGnuUniqueSymbols(const std::filesystem::path& path);

}  // namespace modgraph::loader_internal

#endif  // MODGRAPH_LOADER_INTERNAL_DISCOVERY_H_
