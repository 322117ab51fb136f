// The memory the module-state audit watches; see module_memory.h.
#include "module_memory.h"

#include <elf.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <link.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>

namespace modgraph::testing::audit_internal {
namespace {

std::optional<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::stringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

struct PhdrSearch {
  std::vector<Copy>* copies;
  std::vector<Region>* regions;
};

// dl_iterate_phdr callback: the load base and the writable, non-RELRO ranges
// of every watched copy.
int CollectSegments(dl_phdr_info* info, std::size_t, void* data) {
  auto* search = static_cast<PhdrSearch*>(data);
  if (info->dlpi_name == nullptr || *info->dlpi_name == '\0') return 0;
  for (std::size_t c = 0; c < search->copies->size(); ++c) {
    Copy& copy = (*search->copies)[c];
    if (copy.mapped || copy.library != info->dlpi_name) continue;
    copy.mapped = true;
    copy.base = info->dlpi_addr;
    Range relro;
    for (int i = 0; i < info->dlpi_phnum; ++i) {
      const ElfW(Phdr)& phdr = info->dlpi_phdr[i];
      if (phdr.p_type == PT_GNU_RELRO) {
        relro = {info->dlpi_addr + phdr.p_vaddr, info->dlpi_addr + phdr.p_vaddr + phdr.p_memsz};
      }
    }
    for (int i = 0; i < info->dlpi_phnum; ++i) {
      const ElfW(Phdr)& phdr = info->dlpi_phdr[i];
      if (phdr.p_type != PT_LOAD || (phdr.p_flags & PF_W) == 0) continue;
      const std::uintptr_t begin = info->dlpi_addr + phdr.p_vaddr;
      const std::uintptr_t end = begin + phdr.p_memsz;
      // RELRO is read-only once relocated: audit what lies outside it.
      if (relro.begin == relro.end) {
        search->regions->push_back({c, begin, end, {}});
        continue;
      }
      if (begin < std::min(end, relro.begin)) {
        search->regions->push_back({c, begin, std::min(end, relro.begin), {}});
      }
      if (std::max(begin, relro.end) < end) {
        search->regions->push_back({c, std::max(begin, relro.end), end, {}});
      }
    }
  }
  return 0;
}

}  // namespace

absl::StatusOr<ModuleMemory> FindModuleMemory(const Topology& topology) {
  ModuleMemory memory;
  std::map<std::string, std::size_t> by_library;
  for (const auto& environment : topology.environments()) {
    for (const Instance* instance : environment->instances()) {
      const LoadedLibrary& library = instance->library();
      const std::string path = library.loaded_path().string();
      auto [it, inserted] = by_library.try_emplace(path, memory.copies.size());
      if (inserted) {
        Copy copy;
        copy.library = path;
        copy.source = library.source().string();
        copy.environment = instance->environment();
        copy.descriptors.assign(library.descriptors().begin(), library.descriptors().end());
        memory.copies.push_back(std::move(copy));
      }
      memory.copies[it->second].instances.push_back(instance->name());
    }
  }
  PhdrSearch search{&memory.copies, &memory.regions};
  dl_iterate_phdr(&CollectSegments, &search);
  for (Copy& copy : memory.copies) {
    if (!copy.mapped) {
      return absl::NotFoundError(fmt::format(
          "module-state audit: the copy {} of {} (instances {}) is not mapped in this process",
          copy.library, copy.source, fmt::join(copy.instances, ", ")));
    }
    // Not audited: slot cells (the host writes them), declared shared state.
    for (const modgraph_module_descriptor* descriptor : copy.descriptors) {
      for (uint32_t i = 0; i < descriptor->slot_count; ++i) {
        const auto cell = reinterpret_cast<std::uintptr_t>(descriptor->slots[i].active_impl);
        copy.excluded.push_back({cell, cell + sizeof(void*)});
      }
      if (MODGRAPH_DESCRIPTOR_HAS(descriptor, shared_state_count)) {
        for (uint32_t i = 0; i < descriptor->shared_state_count; ++i) {
          const auto at = reinterpret_cast<std::uintptr_t>(descriptor->shared_state[i].address);
          copy.excluded.push_back({at, at + descriptor->shared_state[i].size});
        }
      }
    }
    // Symbols from the copy itself (the file on disk may have been rebuilt since).
    std::optional<std::string> image = ReadFile(copy.library);
    if (!image) image = ReadFile(copy.source);
    if (image) {
      absl::StatusOr<elf::SymbolTable> symbols = elf::ReadSymbolTable(*image);
      if (symbols.ok()) copy.symbols = *std::move(symbols);
    }
    // Not audited: the dynamic linker's GOT.
    if (copy.symbols) {
      for (const elf::Section& section : copy.symbols->sections) {
        if (section.address != 0 && (section.name == ".got" || section.name == ".got.plt")) {
          copy.excluded.push_back(
              {copy.base + section.address, copy.base + section.address + section.size});
        }
      }
    }
    std::sort(copy.excluded.begin(), copy.excluded.end(),
              [](const Range& a, const Range& b) { return a.begin < b.begin; });
  }
  return memory;
}

LiveReader::LiveReader() {
#if defined(__SANITIZE_ADDRESS__)
  fd_ = ::open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
#endif
}

LiveReader::~LiveReader() {
  if (fd_ >= 0) ::close(fd_);
}

const unsigned char* LiveReader::Read(std::uintptr_t begin, std::size_t size) {
  if (fd_ < 0) return reinterpret_cast<const unsigned char*>(begin);
  buffer_.resize(size);
  std::size_t done = 0;
  while (done < size) {
    const ssize_t n =
        ::pread(fd_, buffer_.data() + done, size - done, static_cast<off_t>(begin + done));
    if (n <= 0) break;
    done += static_cast<std::size_t>(n);
  }
  return buffer_.data();
}

}  // namespace modgraph::testing::audit_internal
