#include "named_registry.h"

#include <cxxabi.h>
#include <dlfcn.h>
#include <fmt/format.h>
#include <link.h>

#include <cstdlib>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <utility>
#include <vector>

#include "modgraph/context/registrations.h"

namespace modgraph {

struct RegistrationScopeAccess {
  static void AddError(RegistrationScope& scope, std::string error) {
    scope.errors_.push_back(std::move(error));
  }
};

namespace context_internal {
namespace {

// The innermost open scope of this thread. The anchor is per thread, so a
// dlopen on one thread never attributes another thread's registrations.
thread_local RegistrationScope* tls_scope = nullptr;

std::string demangle(const std::string& mangled) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> out(
      abi::__cxa_demangle(mangled.c_str(), nullptr, nullptr, &status), std::free);
  return status == 0 ? std::string(out.get()) : mangled;
}

struct Record {
  std::string registry;
  std::string name;
  std::uint32_t index;
  std::string type_name;  // mangled
  std::size_t size;
  std::size_t align;
  std::string registrant;
  std::string object;
  const void* caller;
  bool refused = false;
  std::string error;
};

// Guarded by one mutex for both registries. Lock order: the dynamic linker's
// load lock (held while a library's static initialisers run) comes first, so
// nothing that takes it (dladdr) runs under this mutex; dl_iterate_phdr takes
// only the linker's write lock, which nobody holds while calling in here.
struct Records {
  std::mutex mu;
  std::vector<Record> records;
};

Records& TheRecords() {
  static auto* records = new Records();  // module copies may register during exit
  return *records;
}

// Mapped objects and their PT_LOAD ranges, to tell whether a registrant lives.
struct LoadedObject {
  std::string name;
  bool main_program;
  std::vector<std::pair<std::uintptr_t, std::uintptr_t>> ranges;
};

std::vector<LoadedObject> LoadedObjects() {
  std::vector<LoadedObject> objects;
  ::dl_iterate_phdr(
      [](dl_phdr_info* info, std::size_t, void* data) {
        auto& out = *static_cast<std::vector<LoadedObject>*>(data);
        LoadedObject object{.name = info->dlpi_name != nullptr ? info->dlpi_name : "",
                            .main_program = out.empty(),
                            .ranges = {}};
        for (int i = 0; i < info->dlpi_phnum; ++i) {
          const ElfW(Phdr)& header = info->dlpi_phdr[i];
          if (header.p_type != PT_LOAD) continue;
          const std::uintptr_t start = info->dlpi_addr + header.p_vaddr;
          object.ranges.emplace_back(start, start + header.p_memsz);
        }
        out.push_back(std::move(object));
        return 0;
      },
      &objects);
  return objects;
}

bool IsLive(const Record& record, const std::vector<LoadedObject>& objects) {
  const auto address = reinterpret_cast<std::uintptr_t>(record.caller);
  for (const LoadedObject& object : objects) {
    if (!object.main_program && object.name != record.object) continue;
    for (const auto& [start, end] : object.ranges) {
      if (address >= start && address < end) return true;
    }
  }
  return false;
}

std::string ObjectOf(const void* caller) {
  Dl_info info{};
  if (caller != nullptr && ::dladdr(caller, &info) != 0 && info.dli_fname != nullptr &&
      *info.dli_fname != '\0') {
    return info.dli_fname;
  }
  return "the main program";
}

// The index an earlier copy of the same module gave the same anonymous
// declaration, or kRefusedIndex (see register_name).
std::uint32_t EarlierCopysIndex(const std::vector<Record>& records, const std::string& what,
                                const std::string& registrant, const std::string& object,
                                const char* type_name) {
  auto same_declarations = [&](const Record& r) {
    return r.registry == what && r.name.empty() && !r.refused && r.registrant == registrant &&
           r.type_name == type_name;
  };
  std::size_t rank = 0;  // how many this copy has made already
  for (const Record& r : records) {
    if (same_declarations(r) && r.object == object) ++rank;
  }
  std::map<std::string_view, std::size_t> seen;  // per earlier copy
  for (const Record& r : records) {
    if (!same_declarations(r) || r.object == object) continue;
    if (seen[r.object]++ == rank) return r.index;
  }
  return kRefusedIndex;
}

}  // namespace

std::uint32_t NamedRegistry::register_name(std::string_view name, std::size_t size,
                                           std::size_t align, const char* type_name,
                                           const void* caller, bool anonymous_allowed) {
  // dladdr takes the dynamic linker's load lock: before our mutex, never under it.
  const std::string object = ObjectOf(caller);
  RegistrationScope* const scope = tls_scope;
  const std::string registrant = scope != nullptr ? scope->registrant() : object;
  Records& records = TheRecords();
  std::vector<LoadedObject> objects;  // filled only when a clash needs it
  for (bool have_objects = false;; have_objects = true) {
    std::unique_lock lock(records.mu);
    Record record{.registry = what_,
                  .name = std::string(name),
                  .index = kRefusedIndex,
                  .type_name = type_name,
                  .size = size,
                  .align = align,
                  .registrant = registrant,
                  .object = object,
                  .caller = caller};
    auto refuse = [&](std::string error) -> std::uint32_t {
      record.refused = true;
      record.error = error;
      records.records.push_back(std::move(record));
      lock.unlock();
      if (scope == nullptr) throw std::logic_error("modgraph: " + error);
      RegistrationScopeAccess::AddError(*scope, std::move(error));
      return kRefusedIndex;
    };
    auto fresh = [&]() -> std::uint32_t {
      if (next_ >= limit_) {
        return refuse(fmt::format(
            "{0} '{1}' of {2} cannot be registered: all {3} {0} indices are in use; declare "
            "fewer {0}s or share them by name",
            what_, name, registrant, limit_ - 1));
      }
      record.index = next_++;
      if (!name.empty()) {
        by_name_.insert_or_assign(
            std::string(name), Entry{record.index, size, align, type_name, records.records.size()});
      }
      records.records.push_back(std::move(record));
      return records.records.back().index;
    };
    if (name.empty()) {
      if (!anonymous_allowed) {
        return refuse(fmt::format("a {} declared by {} has an empty name; give it a name", what_,
                                  registrant));
      }
      // A reload constructs the same anonymous declarations again, in a new copy
      // of the same module: each gets the index its earlier copy had, so reloads
      // do not use up indices (nor grow every context's slot array). The
      // declaration is identified by the registrant (environment, module and
      // file, given by the loader's scope), the type, and its rank among that
      // copy's anonymous registrations of the type.
      if (scope != nullptr) {
        if (const std::uint32_t index =
                EarlierCopysIndex(records.records, what_, registrant, object, type_name);
            index != kRefusedIndex) {
          record.index = index;
          records.records.push_back(std::move(record));
          return index;
        }
      }
      return fresh();
    }
    auto it = by_name_.find(name);
    if (it == by_name_.end()) return fresh();
    const Entry& entry = it->second;
    if (entry.size == size && entry.align == align && entry.type_name == type_name) {
      record.index = entry.index;
      records.records.push_back(std::move(record));
      return entry.index;
    }
    // A clash. If no copy that registered the old type is still mapped, nothing
    // can use it any more: bind the name afresh (to a new index, so a state
    // object of the old type can never be read as the new one).
    if (!have_objects) {
      lock.unlock();
      objects = LoadedObjects();
      continue;  // the registry may have changed meanwhile: look again
    }
    bool old_type_live = false;
    for (const Record& other : records.records) {
      if (other.registry == what_ && other.name == name && !other.refused &&
          other.index == entry.index && IsLive(other, objects)) {
        old_type_live = true;
        break;
      }
    }
    if (!old_type_live) return fresh();
    const Record& first = records.records[entry.first_record];
    return refuse(fmt::format(
        "{0} '{1}' is registered with type {2} (size {3}, align {4}) by {5} and again with type "
        "{6} (size {7}, align {8}) by {9}; every module copy that declares this {0} must use the "
        "same type: rebuild the modules that share it against the same header, or unload every "
        "copy of the old build first",
        what_, name, demangle(entry.type_name), entry.size, entry.align, first.registrant,
        demangle(type_name), size, align, registrant));
  }
}

}  // namespace context_internal

RegistrationScope::RegistrationScope(std::string registrant)
    : registrant_(std::move(registrant)), outer_(context_internal::tls_scope) {
  context_internal::tls_scope = this;
}

RegistrationScope::~RegistrationScope() { context_internal::tls_scope = outer_; }

std::vector<NamedRegistration> ListNamedRegistrations() {
  using namespace context_internal;
  const std::vector<LoadedObject> objects = LoadedObjects();
  Records& records = TheRecords();
  std::lock_guard lock(records.mu);
  std::vector<NamedRegistration> out;
  out.reserve(records.records.size());
  for (const Record& record : records.records) {
    out.push_back({.registry = record.registry,
                   .name = record.name,
                   .index = record.index,
                   .type = demangle(record.type_name),
                   .size = record.size,
                   .align = record.align,
                   .registrant = record.registrant,
                   .object = record.object,
                   .refused = record.refused,
                   .error = record.error,
                   .live = IsLive(record, objects)});
  }
  return out;
}

}  // namespace modgraph
