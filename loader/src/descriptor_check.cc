// Checking a module descriptor's pointers against its copy's segments; see
// internal/descriptor_check.h.
#include "modgraph/loader/internal/descriptor_check.h"

#include <elf.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <string>

namespace modgraph::loader_internal {

bool IsDescriptorAlias(const elf::DynamicSymbol& symbol) {
  return symbol.binding != STB_GNU_UNIQUE &&
         std::string_view(symbol.name).starts_with(MODGRAPH_ALIAS_PREFIX) &&
         symbol.type == STT_OBJECT && symbol.size == sizeof(void*);
}

const elf::Segment* LoadedImage::SegmentOf(const void* p, std::size_t size) const {
  const auto address = reinterpret_cast<std::uintptr_t>(p);
  if (address < base_) return nullptr;
  const std::uint64_t offset = address - base_;
  for (const elf::Segment& s : so_.load_segments) {
    if (offset < s.vaddr || offset - s.vaddr >= s.memsz) continue;
    if (size > s.memsz - (offset - s.vaddr)) return nullptr;
    return &s;
  }
  return nullptr;
}

bool LoadedImage::Readable(const void* p, std::size_t size) const {
  const elf::Segment* s = SegmentOf(p, size);
  return s != nullptr && s->readable;
}

bool LoadedImage::Writable(const void* p, std::size_t size) const {
  const elf::Segment* s = SegmentOf(p, size);
  if (s == nullptr || !s->readable || !s->writable) return false;
  const std::uint64_t begin = reinterpret_cast<std::uintptr_t>(p) - base_;
  const std::uint64_t relro_end = so_.relro_vaddr + so_.relro_memsz;
  return begin + size <= so_.relro_vaddr || begin >= relro_end;
}

bool LoadedImage::Executable(const void* p) const {
  const elf::Segment* s = SegmentOf(p, 1);
  return s != nullptr && s->executable;
}

std::optional<std::string_view> LoadedImage::String(const void* p) const {
  const elf::Segment* s = SegmentOf(p, 1);
  if (s == nullptr || !s->readable) return std::nullopt;
  const std::uint64_t offset = reinterpret_cast<std::uintptr_t>(p) - base_;
  const std::size_t left = s->memsz - (offset - s->vaddr);
  const auto* begin = static_cast<const char*>(p);
  const void* end = std::memchr(begin, '\0', left);
  if (end == nullptr) return std::nullopt;
  return std::string_view(begin, static_cast<std::size_t>(static_cast<const char*>(end) - begin));
}

namespace {

absl::Status Outside(std::string_view field) {
  return absl::InvalidArgumentError(
      fmt::format("its descriptor's {} points outside the library's loaded segments", field));
}

// `count` pointers to strings at `list`, each string inside the library.
absl::Status CheckStringList(const LoadedImage& image, const char* const* list, uint32_t count,
                             std::string_view field) {
  if (count == 0) return absl::OkStatus();
  if (!image.Readable(list, sizeof(const char*) * std::size_t{count})) return Outside(field);
  for (uint32_t i = 0; i < count; ++i) {
    // A null entry is named by the id checks that follow (ValidateModuleId).
    if (list[i] != nullptr && !image.String(list[i])) {
      return Outside(fmt::format("{}[{}]", field, i));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<const modgraph_module_descriptor*> LocateDescriptor(const LoadedImage& image,
                                                                   const void* alias) {
  if (alias == nullptr || !image.Readable(alias, sizeof(void*))) {
    return absl::InvalidArgumentError(
        "its descriptor symbol lies outside the library's loaded segments");
  }
  const auto* descriptor = *static_cast<const modgraph_module_descriptor* const*>(alias);
  if (!image.Readable(descriptor, offsetof(modgraph_module_descriptor, id))) {
    return absl::InvalidArgumentError(
        "its descriptor symbol points outside the library's loaded segments");
  }
  return descriptor;
}

absl::Status CheckDescriptorPointers(const LoadedImage& image,
                                     const modgraph_module_descriptor& d) {
  if (!image.Readable(&d, std::min<std::size_t>(d.descriptor_size, sizeof d))) {
    return Outside("end (descriptor_size)");
  }
  if (d.id != nullptr && !image.String(d.id)) return Outside("id");
  if (absl::Status ok = CheckStringList(image, d.imports, d.import_count, "imports"); !ok.ok()) {
    return ok;
  }
  if (absl::Status ok = CheckStringList(image, d.provides_for, d.provides_count, "provides_for");
      !ok.ok()) {
    return ok;
  }
  if (d.slot_count > 0 &&
      !image.Readable(d.slots, sizeof(modgraph_slot_decl) * std::size_t{d.slot_count})) {
    return Outside("slots");
  }
  for (uint32_t i = 0; i < d.slot_count; ++i) {
    const modgraph_slot_decl& slot = d.slots[i];
    const std::string at = fmt::format("slots[{}]", i);
    if (slot.name == nullptr || !image.String(slot.name)) return Outside(at + ".name");
    if (slot.signature == nullptr || !image.String(slot.signature)) {
      return Outside(at + ".signature");
    }
    if (slot.default_impl != nullptr && !image.Executable(slot.default_impl)) {
      return Outside(at + ".default_impl (not in the library's code)");
    }
    // The host writes the cell when a provider registers.
    if (!image.Writable(slot.active_impl, sizeof(void*))) {
      return Outside(at + ".active_impl (not a writable global of the library)");
    }
  }
  for (const auto& [function, field] :
       {std::pair{reinterpret_cast<const void*>(d.init), "init"},
        std::pair{reinterpret_cast<const void*>(d.teardown), "teardown"}}) {
    if (function != nullptr && !image.Executable(function)) {
      return Outside(fmt::format("{} (not in the library's code)", field));
    }
  }
  if (MODGRAPH_DESCRIPTOR_HAS(&d, shared_state_count) && d.shared_state_count > 0) {
    if (!image.Readable(d.shared_state,
                        sizeof(modgraph_shared_state_decl) * std::size_t{d.shared_state_count})) {
      return Outside("shared_state");
    }
    for (uint32_t i = 0; i < d.shared_state_count; ++i) {
      const modgraph_shared_state_decl& state = d.shared_state[i];
      const std::string at = fmt::format("shared_state[{}]", i);
      if (state.name != nullptr && !image.String(state.name)) return Outside(at + ".name");
      if (state.reason != nullptr && !image.String(state.reason)) return Outside(at + ".reason");
      if (!image.Readable(state.address, static_cast<std::size_t>(state.size))) {
        return Outside(at + ".address");
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace modgraph::loader_internal
