// testing/src/module_memory.h — the memory the module-state audit watches:
// every loaded copy of a module library in a topology, where it is mapped, its
// writable ranges outside RELRO (dl_iterate_phdr), what in them is not audited
// (slot cells, declared shared state, the GOT), its symbols (to name what was
// written), and a reader of those bytes as they are now. Internal to the test
// kit; module_state_audit.cc diffs and attributes what this finds.
//
//   absl::StatusOr<ModuleMemory> memory = FindModuleMemory(topology);
//   LiveReader reader;
//   for (Region& region : memory->regions) {
//     const unsigned char* live = reader.Read(region.begin, region.end - region.begin);
//     region.snapshot.assign(live, live + (region.end - region.begin));
//   }
#ifndef MODGRAPH_TESTING_SRC_MODULE_MEMORY_H_
#define MODGRAPH_TESTING_SRC_MODULE_MEMORY_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "modgraph/environments/topology.h"
#include "modgraph/loader/internal/elf.h"
#include "modgraph/loader/module_abi.h"

namespace modgraph::testing::audit_internal {

struct Range {
  std::uintptr_t begin = 0;
  std::uintptr_t end = 0;
};

// One loaded copy of a module library: its instances, where it is mapped,
// what in it is not audited, and its symbols.
struct Copy {
  std::string library;  // the loaded copy's path, as handed to dlopen
  std::string source;   // the module file it was copied from
  std::string environment;
  std::vector<std::string> instances;
  std::vector<const modgraph_module_descriptor*> descriptors;
  std::uintptr_t base = 0;
  bool mapped = false;
  std::vector<Range> excluded;  // sorted by begin
  std::optional<elf::SymbolTable> symbols;
};

// A writable range of one copy and its snapshot at the last scheduling point.
struct Region {
  std::size_t copy = 0;
  std::uintptr_t begin = 0;
  std::uintptr_t end = 0;
  std::vector<unsigned char> snapshot;
};

struct ModuleMemory {
  std::vector<Copy> copies;
  std::vector<Region> regions;  // snapshots empty
};

// Every instance loaded in `topology` now, by loaded copy (a bundle's copy
// holds several instances), with its writable ranges, exclusions (sorted) and
// symbols (from the copy's file, else the module file it was copied from;
// none when neither reads). NotFound naming the copy when one is not mapped in
// this process (an internal error).
absl::StatusOr<ModuleMemory> FindModuleMemory(const Topology& topology);

// The live bytes of a region. Reading a module's segments whole also reads
// AddressSanitizer's redzones between its globals, which ASan reports in any
// instrumented or intercepted read; under ASan the bytes are copied by the
// kernel instead (pread of /proc/self/mem) into a buffer of our own.
class LiveReader {
 public:
  LiveReader();
  ~LiveReader();
  LiveReader(const LiveReader&) = delete;
  LiveReader& operator=(const LiveReader&) = delete;

  // `size` bytes at `begin`, valid until the next Read.
  const unsigned char* Read(std::uintptr_t begin, std::size_t size);

 private:
  int fd_ = -1;
  std::vector<unsigned char> buffer_;
};

}  // namespace modgraph::testing::audit_internal

#endif  // MODGRAPH_TESTING_SRC_MODULE_MEMORY_H_
