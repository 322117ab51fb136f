// modgraph/loader/internal/descriptor_check.h — following a module's
// descriptor only where its copy is mapped.
//
// A descriptor is data in the module: pointers to its id, import lists, slot
// declarations, slot cells, functions. A broken or crafted file can make any
// of them point outside the library, or into a segment ld.so never mapped, and
// the host would crash following them. Each pointer is checked against the
// copy's PT_LOAD segments at its load base, before it is followed (the way a
// kernel checks a user pointer against the process's mappings):
//
//   LoadedImage image(load_base, so);                  // so: elf::InspectSharedObject
//   absl::StatusOr<const modgraph_module_descriptor*> d = LocateDescriptor(image, alias);
//   if (d.ok() && (*d)->abi_version == MODGRAPH_ABI_VERSION)
//     status = CheckDescriptorPointers(image, **d);   // then read anything in it
//
// Used by LibraryLoader::Load in the host and by the preflight helper.
#ifndef MODGRAPH_LOADER_INTERNAL_DESCRIPTOR_CHECK_H_
#define MODGRAPH_LOADER_INTERNAL_DESCRIPTOR_CHECK_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "modgraph/loader/internal/elf.h"
#include "modgraph/loader/module_abi.h"

namespace modgraph::loader_internal {

// True for the exports that are module descriptor aliases: object symbols
// named MODGRAPH_ALIAS_PREFIX<id> holding one pointer (MODGRAPH_MODULE).
bool IsDescriptorAlias(const elf::DynamicSymbol& symbol);

// The address ranges of one loaded copy: its PT_LOAD segments (p_vaddr,
// p_memsz, p_flags) shifted by the load base (link_map::l_addr).
class LoadedImage {
 public:
  LoadedImage(std::uintptr_t base, const elf::SharedObject& so) : base_(base), so_(so) {}

  // [p, p + size) lies in one readable segment.
  bool Readable(const void* p, std::size_t size) const;
  // [p, p + size) lies in one writable segment, outside PT_GNU_RELRO (which
  // ld.so makes read-only once relocated).
  bool Writable(const void* p, std::size_t size) const;
  // p lies in an executable segment.
  bool Executable(const void* p) const;
  // The NUL-terminated string at p, if it ends inside p's readable segment.
  std::optional<std::string_view> String(const void* p) const;

 private:
  const elf::Segment* SegmentOf(const void* p, std::size_t size) const;
  std::uintptr_t base_;
  const elf::SharedObject& so_;
};

// The descriptor an alias variable points to (`alias`: the variable's address,
// as dlsym returns it), once the variable and the descriptor's first 8 bytes
// (abi_version, descriptor_size) lie in readable segments. InvalidArgument
// naming what points outside otherwise.
absl::StatusOr<const modgraph_module_descriptor*> LocateDescriptor(const LoadedImage& image,
                                                                   const void* alias);

// Checks every pointer the host follows in `descriptor` (of MODGRAPH_ABI_VERSION):
// the descriptor itself (min(descriptor_size, sizeof) bytes), id, imports,
// provides_for, slots (name, signature, default in code, cell writable),
// shared_state (name, reason, object readable), init and teardown in code.
// Null is allowed for arrays of count 0, `api`, `init`, `teardown`, a slot's
// default and a shared state's name and reason (the host reads none of them
// then); never for a slot's name, signature or cell.
// InvalidArgument naming the field otherwise.
absl::Status CheckDescriptorPointers(const LoadedImage& image,
                                     const modgraph_module_descriptor& descriptor);

}  // namespace modgraph::loader_internal

#endif  // MODGRAPH_LOADER_INTERNAL_DESCRIPTOR_CHECK_H_
