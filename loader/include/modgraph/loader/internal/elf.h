// modgraph/loader/internal/elf.h — reading module files the way the dynamic
// linker reads them, on untrusted bytes.
//
// A module root may hold anything: a truncated build, a file from another
// machine, a file crafted to crash whoever parses it. Everything here parses
// with elfutils' libelf, which bounds-checks every header, table and chunk it
// hands out, and follows the structures glibc's ld.so itself uses to load a
// library — the ELF header, the program headers and the dynamic segment — not
// section headers, which ld.so never reads. So a file cannot show one thing to
// these checks and load another. Section headers are read only to name symbols
// (ReadSymbolTable), never to decide whether a file loads.
//
//   std::string bytes = ...;                              // a whole module file
//   absl::StatusOr<elf::SharedObject> so = elf::InspectSharedObject(bytes);
//   if (!so.ok()) return so.status();                     // says what is malformed
//   for (const elf::DynamicSymbol& s : so->exports) ...   // what dlsym can see
//
// Internal to the loader and the tools built on it (the module-state audit
// symbolises with ReadSymbolTable); not a general ELF API.
#ifndef MODGRAPH_LOADER_INTERNAL_ELF_H_
#define MODGRAPH_LOADER_INTERNAL_ELF_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace modgraph::elf {

// Size of the ELF identification + header (Elf64_Ehdr): how much of a file is
// read before deciding whether it is ELF at all.
inline constexpr std::size_t kHeaderSize = 64;

// True when `prefix` (the first bytes of a file) starts with the ELF magic.
bool HasElfMagic(std::string_view prefix);

// A PT_LOAD segment, as the program header gives it (addresses are offsets
// from the load base of a shared object).
struct Segment {
  std::uint64_t vaddr = 0;
  std::uint64_t memsz = 0;
  std::uint64_t offset = 0;  // in the file
  std::uint64_t filesz = 0;
  bool readable = false;    // PF_R
  bool writable = false;    // PF_W
  bool executable = false;  // PF_X
};

// A symbol of the dynamic symbol table that the library defines (st_shndx !=
// SHN_UNDEF) and that other objects can bind to: global, weak or GNU unique.
struct DynamicSymbol {
  std::string name;
  std::uint64_t value = 0;
  std::uint64_t size = 0;
  unsigned char type = 0;     // STT_*
  unsigned char binding = 0;  // STB_*
};

// What the loader needs to know about a shared object before it dlopens it.
struct SharedObject {
  std::vector<Segment> load_segments;  // PT_LOAD, in file order
  std::vector<std::string> needed;     // DT_NEEDED, in order
  // Defined dynamic symbols with default or protected visibility: what dlsym
  // and other objects' relocations can bind to.
  std::vector<DynamicSymbol> exports;
  // Bytes of thread-local storage the object defines (PT_TLS p_memsz), and
  // whether the object reaches its own TLS with the initial-exec or local-exec
  // model (TPOFF relocations against itself): such TLS must be carved from the
  // static TLS block, which glibc cannot grow after start-up.
  std::uint64_t tls_size = 0;
  bool own_static_tls = false;
  // PT_GNU_RELRO: made read-only once relocated (empty when absent).
  std::uint64_t relro_vaddr = 0;
  std::uint64_t relro_memsz = 0;
};

// Inspects a whole shared-object image (the file's bytes). Checks that it is a
// 64-bit ELF ET_DYN for this machine with a dynamic segment, then reads the
// program headers, the dynamic segment, the dynamic symbol table (found through
// DT_SYMTAB/DT_STRTAB and sized by DT_GNU_HASH or DT_HASH, as ld.so does) and
// the RELA relocations. Also checks what ld.so will call or walk at load and
// unload: DT_INIT/DT_FINI inside an executable segment, the init, preinit and
// fini arrays (address and size given together, whole pointers) and the
// relocation tables inside loaded segments, DT_RELACOUNT within DT_RELASZ.
// InvalidArgument, naming the structure at fault, for anything malformed or
// out of bounds. Never reads outside `image`.
absl::StatusOr<SharedObject> InspectSharedObject(std::string_view image);

// A symbol for naming addresses: from .symtab when the file has one, else from
// the dynamic symbol table. Only defined data, TLS and function symbols.
struct Symbol {
  std::string name;
  std::uint64_t value = 0;  // address relative to the load base
  std::uint64_t size = 0;
  unsigned char type = 0;  // STT_OBJECT, STT_TLS, STT_FUNC, ...
  std::string section;     // e.g. ".bss", ".data"; empty if unknown
};

// A section header's name and extent (for "section + offset" when no symbol
// covers an address).
struct Section {
  std::string name;
  std::uint64_t address = 0;
  std::uint64_t size = 0;
  bool writable = false;  // SHF_WRITE
};

struct SymbolTable {
  std::vector<Symbol> symbols;  // sorted by value
  std::vector<Section> sections;
  bool from_symtab = false;  // false: the dynamic symbols only (a stripped file)
  std::uint64_t largest_symbol = 0;

  // The symbol whose [value, value + size) holds `address`, or null.
  const Symbol* SymbolAt(std::uint64_t address) const;
  // The section holding `address`, or null.
  const Section* SectionAt(std::uint64_t address) const;
};

// Reads the symbols and sections of an ELF image for symbolisation.
// InvalidArgument for a malformed image.
absl::StatusOr<SymbolTable> ReadSymbolTable(std::string_view image);

}  // namespace modgraph::elf

#endif  // MODGRAPH_LOADER_INTERNAL_ELF_H_
