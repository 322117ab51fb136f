// ELF inspection with elfutils' libelf; see modgraph/loader/internal/elf.h.
//
// libelf bounds-checks what it hands out: program headers against the file,
// raw chunks (elf_getdata_rawchunk) against the file, table entries
// (gelf_getdyn, gelf_getsym, gelf_getrela) against their chunk. What is left to
// this file is the arithmetic that turns addresses into file offsets and sizes
// into counts; every such step is checked for overflow.
//
// Over 400 lines: one validation pass over untrusted bytes whose checks rely on
// the ones before (header, segments, dynamic tags, ld.so's tables) and share
// the checked arithmetic beside them: apart, a check would be read without them.
#include "modgraph/loader/internal/elf.h"

#include <fmt/format.h>
#include <gelf.h>
#include <libelf.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <optional>

#include "absl/status/status.h"

namespace modgraph::elf {
namespace {

#if defined(__x86_64__)
constexpr int kMachine = EM_X86_64;
constexpr const char* kMachineName = "x86-64";
bool IsStaticTlsRelocation(std::uint32_t type) {
  return type == R_X86_64_TPOFF64 || type == R_X86_64_TPOFF32;
}
#elif defined(__aarch64__)
constexpr int kMachine = EM_AARCH64;
constexpr const char* kMachineName = "AArch64";
bool IsStaticTlsRelocation(std::uint32_t type) { return type == R_AARCH64_TLS_TPREL; }
#else
#error "modgraph's ELF inspection knows x86-64 and AArch64"
#endif

struct ElfEnd {
  void operator()(Elf* elf) const { elf_end(elf); }
};
using ElfHandle = std::unique_ptr<Elf, ElfEnd>;

absl::Status Malformed(std::string_view what) {
  const int error = elf_errno();
  return absl::InvalidArgumentError(
      error == 0 ? fmt::format("malformed ELF file: {}", what)
                 : fmt::format("malformed ELF file: {} ({})", what, elf_errmsg(error)));
}

absl::StatusOr<ElfHandle> OpenImage(std::string_view image) {
  static const bool initialised = elf_version(EV_CURRENT) != EV_NONE;
  if (!initialised) return absl::InternalError("libelf: elf_version(EV_CURRENT) failed");
  if (image.size() < kHeaderSize || !HasElfMagic(image)) {
    return absl::InvalidArgumentError("not an ELF file (no ELF magic in the first 64 bytes)");
  }
  // In read mode libelf only reads the image (native byte order needs no
  // conversion), so handing it a const buffer is safe.
  ElfHandle elf(elf_memory(const_cast<char*>(image.data()), image.size()));
  if (elf == nullptr || elf_kind(elf.get()) != ELF_K_ELF) return Malformed("unreadable header");
  return elf;
}

std::optional<std::uint64_t> Add(std::uint64_t a, std::uint64_t b) {
  std::uint64_t sum = 0;
  if (__builtin_add_overflow(a, b, &sum)) return std::nullopt;
  return sum;
}
std::optional<std::uint64_t> Mul(std::uint64_t a, std::uint64_t b) {
  std::uint64_t product = 0;
  if (__builtin_mul_overflow(a, b, &product)) return std::nullopt;
  return product;
}

// The file view of the mapped image: ld.so maps PT_LOAD segments and then
// reads the dynamic segment and its tables at their addresses, so that is how
// they are found here too.
class AddressSpace {
 public:
  explicit AddressSpace(const std::vector<Segment>& loads) : loads_(loads) {}

  // The file offset of `address`, and how many file bytes follow it in its
  // segment; nullopt when no segment maps it from the file.
  std::optional<std::pair<std::uint64_t, std::uint64_t>> Locate(std::uint64_t address) const {
    for (const Segment& s : loads_) {
      if (address < s.vaddr || address - s.vaddr >= s.filesz) continue;
      const std::uint64_t delta = address - s.vaddr;
      const std::optional<std::uint64_t> offset = Add(s.offset, delta);
      if (!offset) return std::nullopt;
      return std::pair{*offset, s.filesz - delta};
    }
    return std::nullopt;
  }

 private:
  const std::vector<Segment>& loads_;
};

// A checked chunk of the file at `address` of `size` bytes, typed for libelf.
absl::StatusOr<Elf_Data*> Chunk(Elf* elf, const AddressSpace& space, std::uint64_t address,
                                std::uint64_t size, Elf_Type type, std::string_view what) {
  const auto where = space.Locate(address);
  if (!where || size > where->second) {
    return Malformed(fmt::format("{} at address 0x{:x} ({} bytes) is outside the loaded file", what,
                                 address, size));
  }
  if (size == 0) return static_cast<Elf_Data*>(nullptr);
  Elf_Data* data = elf_getdata_rawchunk(elf, static_cast<int64_t>(where->first),
                                        static_cast<size_t>(size), type);
  if (data == nullptr) return Malformed(fmt::format("{} is out of bounds", what));
  return data;
}

// The dynamic string table.
class Strings {
 public:
  Strings() = default;
  explicit Strings(Elf_Data* data) : data_(data) {}
  // The NUL-terminated string at `offset`, or nullopt if it runs off the table.
  std::optional<std::string_view> At(std::uint64_t offset) const {
    if (data_ == nullptr || offset >= data_->d_size) return std::nullopt;
    const char* begin = static_cast<const char*>(data_->d_buf) + offset;
    const void* end = std::memchr(begin, '\0', data_->d_size - offset);
    if (end == nullptr) return std::nullopt;
    return std::string_view(begin, static_cast<const char*>(end) - begin);
  }

 private:
  Elf_Data* data_ = nullptr;
};

struct DynamicTags {
  std::vector<std::uint64_t> needed;
  std::optional<std::uint64_t> strtab, strsz, symtab, syment, hash, gnu_hash, rela, relasz, relaent;
  // What ld.so calls or walks when it loads and unloads the object.
  std::optional<std::uint64_t> init, fini, init_array, init_arraysz, fini_array, fini_arraysz,
      preinit_array, preinit_arraysz, relacount, jmprel, pltrelsz, pltrel;
  bool rel = false;  // DT_REL/DT_RELSZ: not used on x86-64
};

// True when [address, address + size) lies inside one PT_LOAD segment as
// mapped (memsz), with the permission asked for.
enum class Need { kAny, kExecutable, kWritable };
bool Mapped(const std::vector<Segment>& loads, std::uint64_t address, std::uint64_t size,
            Need need = Need::kAny) {
  for (const Segment& s : loads) {
    if (address < s.vaddr || address - s.vaddr > s.memsz) continue;
    if (size > s.memsz - (address - s.vaddr)) continue;
    if ((need == Need::kExecutable && !s.executable) || (need == Need::kWritable && !s.writable)) {
      continue;
    }
    return true;
  }
  return false;
}

// The entry points and tables ld.so follows beyond the symbol table: a wrong
// one is a call or a read through an arbitrary address at load or at unload.
absl::Status CheckLoaderTables(const std::vector<Segment>& loads, const DynamicTags& tags) {
  for (const auto& [value, name] : {std::pair{tags.init, "DT_INIT"}, {tags.fini, "DT_FINI"}}) {
    if (value && !Mapped(loads, *value, 1, Need::kExecutable)) {
      return Malformed(
          fmt::format("{} (0x{:x}) is not inside an executable segment", name, *value));
    }
  }
  const struct {
    std::optional<std::uint64_t> address, size;
    const char* name;
  } arrays[] = {{tags.init_array, tags.init_arraysz, "DT_INIT_ARRAY"},
                {tags.fini_array, tags.fini_arraysz, "DT_FINI_ARRAY"},
                {tags.preinit_array, tags.preinit_arraysz, "DT_PREINIT_ARRAY"}};
  for (const auto& array : arrays) {
    if (!array.address && !array.size) continue;
    if (!array.address || !array.size) {
      return Malformed(
          fmt::format("{} and its size ({}SZ) must be given together", array.name, array.name));
    }
    // Linkers place these arrays in the writable segment (they are relocated).
    if (*array.size % sizeof(std::uint64_t) != 0 ||
        !Mapped(loads, *array.address, *array.size, Need::kWritable)) {
      return Malformed(
          fmt::format("{} (0x{:x}, {} bytes) is not whole pointers inside a writable "
                      "loaded segment",
                      array.name, *array.address, *array.size));
    }
  }
  if (tags.rel) return Malformed("DT_REL relocations, which x86-64 objects never use");
  if (tags.rela && !tags.relasz) return Malformed("DT_RELA without DT_RELASZ");
  if (tags.relacount) {
    const std::optional<std::uint64_t> bytes = Mul(*tags.relacount, sizeof(Elf64_Rela));
    if (!bytes || *bytes > tags.relasz.value_or(0)) {
      return Malformed(
          fmt::format("DT_RELACOUNT ({}) exceeds the relocations of DT_RELASZ ({} "
                      "bytes)",
                      *tags.relacount, tags.relasz.value_or(0)));
    }
  }
  if (tags.jmprel || tags.pltrelsz) {
    if (!tags.jmprel || !tags.pltrelsz || tags.pltrel.value_or(DT_RELA) != DT_RELA ||
        *tags.pltrelsz % sizeof(Elf64_Rela) != 0 || !Mapped(loads, *tags.jmprel, *tags.pltrelsz)) {
      return Malformed("the PLT relocations (DT_JMPREL, DT_PLTRELSZ, DT_PLTREL) are inconsistent");
    }
  }
  return absl::OkStatus();
}

// Number of entries of the dynamic symbol table, from DT_GNU_HASH (the
// highest symbol index any bucket chain reaches) or DT_HASH (nchain), which is
// how ld.so bounds its lookups.
absl::StatusOr<std::uint64_t> SymbolCount(Elf* elf, const AddressSpace& space,
                                          const DynamicTags& tags) {
  if (tags.gnu_hash) {
    absl::StatusOr<Elf_Data*> header =
        Chunk(elf, space, *tags.gnu_hash, 16, ELF_T_WORD, "DT_GNU_HASH header");
    if (!header.ok()) return header.status();
    const auto* words = static_cast<const std::uint32_t*>((*header)->d_buf);
    const std::uint32_t nbuckets = words[0], symoffset = words[1], bloom_size = words[2];
    const auto bloom_bytes = Mul(bloom_size, 8);
    const auto buckets_at = bloom_bytes ? Add(*tags.gnu_hash, 16 + *bloom_bytes) : std::nullopt;
    const auto buckets_end =
        buckets_at ? Add(*buckets_at, std::uint64_t{nbuckets} * 4) : std::nullopt;
    if (!buckets_end) return Malformed("DT_GNU_HASH sizes overflow");
    absl::StatusOr<Elf_Data*> buckets = Chunk(elf, space, *buckets_at, std::uint64_t{nbuckets} * 4,
                                              ELF_T_WORD, "DT_GNU_HASH buckets");
    if (!buckets.ok()) return buckets.status();
    std::uint32_t last = 0;
    for (std::uint32_t i = 0; i < nbuckets; ++i) {
      last = std::max(last, static_cast<const std::uint32_t*>((*buckets)->d_buf)[i]);
    }
    if (last < symoffset) return symoffset;  // every bucket empty
    // Walk the last chain to its terminating entry (low bit set).
    const auto chain = space.Locate(*buckets_end);
    if (!chain) return Malformed("DT_GNU_HASH chains are outside the loaded file");
    const std::uint64_t chain_words = chain->second / 4;
    absl::StatusOr<Elf_Data*> chains =
        Chunk(elf, space, *buckets_end, chain_words * 4, ELF_T_WORD, "DT_GNU_HASH chains");
    if (!chains.ok()) return chains.status();
    for (std::uint64_t i = last - symoffset; i < chain_words; ++i) {
      if ((static_cast<const std::uint32_t*>((*chains)->d_buf)[i] & 1u) != 0) {
        return std::uint64_t{symoffset} + i + 1;
      }
    }
    return Malformed("a DT_GNU_HASH chain runs off the end of its segment");
  }
  if (tags.hash) {
    absl::StatusOr<Elf_Data*> header = Chunk(elf, space, *tags.hash, 8, ELF_T_WORD, "DT_HASH");
    if (!header.ok()) return header.status();
    return std::uint64_t{static_cast<const std::uint32_t*>((*header)->d_buf)[1]};
  }
  return 0;  // no hash table: ld.so cannot look up any symbol
}

}  // namespace

bool HasElfMagic(std::string_view prefix) {
  return prefix.size() >= SELFMAG && std::memcmp(prefix.data(), ELFMAG, SELFMAG) == 0;
}

absl::StatusOr<SharedObject> InspectSharedObject(std::string_view image) {
  absl::StatusOr<ElfHandle> opened = OpenImage(image);
  if (!opened.ok()) return opened.status();
  Elf* elf = opened->get();

  GElf_Ehdr header;
  if (gelf_getehdr(elf, &header) == nullptr) return Malformed("unreadable ELF header");
  if (header.e_ident[EI_CLASS] != ELFCLASS64 || header.e_ident[EI_DATA] != ELFDATA2LSB) {
    return absl::InvalidArgumentError("not a 64-bit little-endian ELF file");
  }
  if (header.e_type != ET_DYN) {
    return absl::InvalidArgumentError(
        fmt::format("ELF type {} is not a shared object (ET_DYN)", header.e_type));
  }
  if (header.e_machine != kMachine) {
    return absl::InvalidArgumentError(fmt::format(
        "built for ELF machine {}, not for this host ({})", header.e_machine, kMachineName));
  }

  SharedObject so;
  std::size_t count = 0;
  if (elf_getphdrnum(elf, &count) != 0) return Malformed("unreadable program header count");
  std::optional<GElf_Phdr> dynamic;
  for (std::size_t i = 0; i < count; ++i) {
    GElf_Phdr ph;
    if (gelf_getphdr(elf, static_cast<int>(i), &ph) == nullptr) {
      return Malformed(fmt::format("program header {} is out of bounds", i));
    }
    if (ph.p_type == PT_LOAD) {
      if (ph.p_filesz > ph.p_memsz || !Add(ph.p_offset, ph.p_filesz) ||
          *Add(ph.p_offset, ph.p_filesz) > image.size() || !Add(ph.p_vaddr, ph.p_memsz)) {
        return Malformed(fmt::format("PT_LOAD segment {} lies outside the file", i));
      }
      so.load_segments.push_back({.vaddr = ph.p_vaddr,
                                  .memsz = ph.p_memsz,
                                  .offset = ph.p_offset,
                                  .filesz = ph.p_filesz,
                                  .readable = (ph.p_flags & PF_R) != 0,
                                  .writable = (ph.p_flags & PF_W) != 0,
                                  .executable = (ph.p_flags & PF_X) != 0});
    } else if (ph.p_type == PT_DYNAMIC) {
      if (dynamic) return Malformed("two PT_DYNAMIC segments");
      dynamic = ph;
    } else if (ph.p_type == PT_TLS) {
      so.tls_size = ph.p_memsz;
    } else if (ph.p_type == PT_GNU_RELRO) {
      so.relro_vaddr = ph.p_vaddr;
      so.relro_memsz = ph.p_memsz;
    }
  }
  if (so.load_segments.empty()) return Malformed("no PT_LOAD segment: nothing would be mapped");
  if (!dynamic) return Malformed("no PT_DYNAMIC segment: not a dynamically loadable library");

  const AddressSpace space(so.load_segments);
  absl::StatusOr<Elf_Data*> dyn_data =
      Chunk(elf, space, dynamic->p_vaddr, dynamic->p_filesz, ELF_T_DYN, "the dynamic segment");
  if (!dyn_data.ok()) return dyn_data.status();
  DynamicTags tags;
  GElf_Dyn entry;
  // Up to DT_NULL, as ld.so reads it.
  for (int i = 0; *dyn_data != nullptr && gelf_getdyn(*dyn_data, i, &entry) != nullptr &&
                  entry.d_tag != DT_NULL;
       ++i) {
    const std::uint64_t value = entry.d_un.d_val;
    switch (entry.d_tag) {
      case DT_NEEDED:
        tags.needed.push_back(value);
        break;
      case DT_STRTAB:
        tags.strtab = value;
        break;
      case DT_STRSZ:
        tags.strsz = value;
        break;
      case DT_SYMTAB:
        tags.symtab = value;
        break;
      case DT_SYMENT:
        tags.syment = value;
        break;
      case DT_HASH:
        tags.hash = value;
        break;
      case DT_GNU_HASH:
        tags.gnu_hash = value;
        break;
      case DT_RELA:
        tags.rela = value;
        break;
      case DT_RELASZ:
        tags.relasz = value;
        break;
      case DT_RELAENT:
        tags.relaent = value;
        break;
      case DT_INIT:
        tags.init = value;
        break;
      case DT_FINI:
        tags.fini = value;
        break;
      case DT_INIT_ARRAY:
        tags.init_array = value;
        break;
      case DT_INIT_ARRAYSZ:
        tags.init_arraysz = value;
        break;
      case DT_FINI_ARRAY:
        tags.fini_array = value;
        break;
      case DT_FINI_ARRAYSZ:
        tags.fini_arraysz = value;
        break;
      case DT_PREINIT_ARRAY:
        tags.preinit_array = value;
        break;
      case DT_PREINIT_ARRAYSZ:
        tags.preinit_arraysz = value;
        break;
      case DT_RELACOUNT:
        tags.relacount = value;
        break;
      case DT_JMPREL:
        tags.jmprel = value;
        break;
      case DT_PLTRELSZ:
        tags.pltrelsz = value;
        break;
      case DT_PLTREL:
        tags.pltrel = value;
        break;
      case DT_REL:
      case DT_RELSZ:
        tags.rel = true;
        break;
      case DT_AUXILIARY:
      case DT_FILTER:
        // ld.so would load the named filtee whenever a symbol is looked up.
        return Malformed("a DT_FILTER or DT_AUXILIARY entry: a module library is never a filter");
      default:
        break;
    }
  }

  if (absl::Status tables = CheckLoaderTables(so.load_segments, tags); !tables.ok()) return tables;

  Strings strings;
  if (tags.strtab) {
    absl::StatusOr<Elf_Data*> data = Chunk(elf, space, *tags.strtab, tags.strsz.value_or(0),
                                           ELF_T_BYTE, "the dynamic string table (DT_STRTAB)");
    if (!data.ok()) return data.status();
    strings = Strings(*data);
  }
  for (std::uint64_t offset : tags.needed) {
    const std::optional<std::string_view> name = strings.At(offset);
    if (!name) return Malformed("a DT_NEEDED name lies outside the dynamic string table");
    so.needed.emplace_back(*name);
  }

  absl::StatusOr<std::uint64_t> symbol_count = SymbolCount(elf, space, tags);
  if (!symbol_count.ok()) return symbol_count.status();
  Elf_Data* symbols = nullptr;
  if (*symbol_count > 0) {
    if (!tags.symtab) return Malformed("a symbol hash table but no DT_SYMTAB");
    if (tags.syment.value_or(sizeof(Elf64_Sym)) != sizeof(Elf64_Sym)) {
      return Malformed("DT_SYMENT is not the size of an Elf64_Sym");
    }
    const std::optional<std::uint64_t> bytes = Mul(*symbol_count, sizeof(Elf64_Sym));
    if (!bytes) return Malformed("the dynamic symbol count overflows");
    absl::StatusOr<Elf_Data*> data =
        Chunk(elf, space, *tags.symtab, *bytes, ELF_T_SYM, "the dynamic symbol table (DT_SYMTAB)");
    if (!data.ok()) return data.status();
    symbols = *data;
  }
  std::vector<bool> defined(static_cast<std::size_t>(*symbol_count), false);
  for (std::uint64_t i = 0; i < *symbol_count; ++i) {
    GElf_Sym symbol;
    if (gelf_getsym(symbols, static_cast<int>(i), &symbol) == nullptr) {
      return Malformed(fmt::format("dynamic symbol {} is out of bounds", i));
    }
    defined[i] = symbol.st_shndx != SHN_UNDEF;
    const unsigned char binding = GELF_ST_BIND(symbol.st_info);
    const unsigned char visibility = GELF_ST_VISIBILITY(symbol.st_other);
    if (!defined[i] ||
        (binding != STB_GLOBAL && binding != STB_WEAK && binding != STB_GNU_UNIQUE) ||
        (visibility != STV_DEFAULT && visibility != STV_PROTECTED)) {
      continue;
    }
    const std::optional<std::string_view> name = strings.At(symbol.st_name);
    if (!name) return Malformed(fmt::format("the name of dynamic symbol {} is out of bounds", i));
    if (name->empty()) continue;
    // dlsym hands out load base + st_value: it must be memory the object maps.
    if (symbol.st_shndx != SHN_ABS && GELF_ST_TYPE(symbol.st_info) != STT_TLS &&
        !Mapped(so.load_segments, symbol.st_value, symbol.st_size)) {
      return Malformed(
          fmt::format("dynamic symbol '{}' (0x{:x}, {} bytes) lies outside every "
                      "loaded segment",
                      *name, symbol.st_value, symbol.st_size));
    }
    so.exports.push_back({.name = std::string(*name),
                          .value = symbol.st_value,
                          .size = symbol.st_size,
                          .type = static_cast<unsigned char>(GELF_ST_TYPE(symbol.st_info)),
                          .binding = binding});
  }

  if (tags.rela && tags.relasz.value_or(0) > 0) {
    if (tags.relaent.value_or(sizeof(Elf64_Rela)) != sizeof(Elf64_Rela)) {
      return Malformed("DT_RELAENT is not the size of an Elf64_Rela");
    }
    absl::StatusOr<Elf_Data*> relocations =
        Chunk(elf, space, *tags.rela, *tags.relasz, ELF_T_RELA, "the relocations (DT_RELA)");
    if (!relocations.ok()) return relocations.status();
    GElf_Rela rela;
    for (int i = 0; gelf_getrela(*relocations, i, &rela) != nullptr; ++i) {
      if (!IsStaticTlsRelocation(static_cast<std::uint32_t>(GELF_R_TYPE(rela.r_info)))) continue;
      const std::uint64_t index = GELF_R_SYM(rela.r_info);
      if (index >= defined.size() && index != 0) {
        return Malformed(
            fmt::format("relocation {} names symbol {} of {}", i, index, defined.size()));
      }
      // Symbol 0 is the object's own TLS block (local-dynamic style); a
      // defined symbol is its own variable: both need its block in static TLS.
      if (index == 0 || defined[index]) so.own_static_tls = so.tls_size > 0;
    }
  }
  return so;
}

const Symbol* SymbolTable::SymbolAt(std::uint64_t address) const {
  auto it = std::upper_bound(symbols.begin(), symbols.end(), address,
                             [](std::uint64_t a, const Symbol& s) { return a < s.value; });
  // Symbols may nest or overlap (aliases): look back as far as the largest
  // symbol reaches.
  while (it != symbols.begin()) {
    --it;
    if (address - it->value < std::max<std::uint64_t>(it->size, 1)) return &*it;
    if (address - it->value >= largest_symbol) break;
  }
  return nullptr;
}

const Section* SymbolTable::SectionAt(std::uint64_t address) const {
  for (const Section& s : sections) {
    if (s.address != 0 && address >= s.address && address - s.address < s.size) return &s;
  }
  return nullptr;
}

absl::StatusOr<SymbolTable> ReadSymbolTable(std::string_view image) {
  absl::StatusOr<ElfHandle> opened = OpenImage(image);
  if (!opened.ok()) return opened.status();
  Elf* elf = opened->get();
  std::size_t names_index = 0;
  if (elf_getshdrstrndx(elf, &names_index) != 0) names_index = 0;

  SymbolTable table;
  std::vector<std::string> section_names;
  Elf_Scn* symtab = nullptr;
  Elf_Scn* dynsym = nullptr;
  for (Elf_Scn* scn = elf_nextscn(elf, nullptr); scn != nullptr; scn = elf_nextscn(elf, scn)) {
    GElf_Shdr shdr;
    if (gelf_getshdr(scn, &shdr) == nullptr) return Malformed("unreadable section header");
    const char* name = names_index != 0 ? elf_strptr(elf, names_index, shdr.sh_name) : nullptr;
    table.sections.push_back({.name = name != nullptr ? name : "",
                              .address = (shdr.sh_flags & SHF_ALLOC) != 0 ? shdr.sh_addr : 0,
                              .size = shdr.sh_size,
                              .writable = (shdr.sh_flags & SHF_WRITE) != 0});
    if (shdr.sh_type == SHT_SYMTAB) symtab = scn;
    if (shdr.sh_type == SHT_DYNSYM) dynsym = scn;
  }
  Elf_Scn* source = symtab != nullptr ? symtab : dynsym;
  table.from_symtab = symtab != nullptr;
  if (source != nullptr) {
    GElf_Shdr shdr;
    Elf_Data* data = elf_getdata(source, nullptr);
    if (gelf_getshdr(source, &shdr) == nullptr || data == nullptr) {
      return Malformed("unreadable symbol table");
    }
    GElf_Sym symbol;
    for (int i = 0; gelf_getsym(data, i, &symbol) != nullptr; ++i) {
      const int type = GELF_ST_TYPE(symbol.st_info);
      if (symbol.st_shndx == SHN_UNDEF || symbol.st_shndx >= SHN_LORESERVE ||
          (type != STT_OBJECT && type != STT_TLS && type != STT_FUNC)) {
        continue;
      }
      const char* name = elf_strptr(elf, shdr.sh_link, symbol.st_name);
      if (name == nullptr || *name == '\0') continue;
      const std::size_t section = symbol.st_shndx - 1;  // sections[] skips index 0
      table.symbols.push_back(
          {.name = name,
           .value = symbol.st_value,
           .size = symbol.st_size,
           .type = static_cast<unsigned char>(type),
           .section = section < table.sections.size() ? table.sections[section].name : ""});
    }
  }
  std::sort(table.symbols.begin(), table.symbols.end(),
            [](const Symbol& a, const Symbol& b) { return a.value < b.value; });
  for (const Symbol& s : table.symbols) {
    table.largest_symbol = std::max(table.largest_symbol, std::max<std::uint64_t>(s.size, 1));
  }
  return table;
}

}  // namespace modgraph::elf
