// Fuzz target: inspecting a module file and discovering its descriptors, as
// LibraryLoader::Load does before anything is loaded, and reading its symbol
// table, as the module-state audit does. Any input must give a status, never
// a read out of bounds (ASan) or undefined behaviour (UBSan).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "modgraph/loader/internal/discovery.h"
#include "modgraph/loader/internal/elf.h"
#include "modgraph/loader/module_abi.h"
#include "modgraph/loader/module_id.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view image(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<modgraph::elf::SharedObject> library = modgraph::elf::InspectSharedObject(image);
  if (library.ok()) {
    const modgraph::loader_internal::ExportClasses classes =
        modgraph::loader_internal::ClassifyExports(*library);
    for (std::string_view alias : classes.descriptor_aliases) {
      alias.remove_prefix(std::string_view(MODGRAPH_ALIAS_PREFIX).size());
      (void)modgraph::ValidateModuleId(alias, "fuzz");
    }
  }
  absl::StatusOr<modgraph::elf::SymbolTable> symbols = modgraph::elf::ReadSymbolTable(image);
  if (symbols.ok()) {
    for (const modgraph::elf::Symbol& symbol : symbols->symbols) {
      (void)symbols->SymbolAt(symbol.value);
      (void)symbols->SectionAt(symbol.value);
    }
  }
  return 0;
}
