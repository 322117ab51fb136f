// Loading module libraries as private copies; see library_loader.h.
//
// A load is: one stat (identity + permission checks), a cached inspection of
// that exact file (its bytes, ELF type, GNU unique symbols, descriptor aliases),
// one create+write of the private copy, and the dlopen. Everything that depends
// only on the file's contents is computed once per file identity.
#include "modgraph/loader/library_loader.h"

#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <boost/dll/library_info.hpp>
#include <boost/dll/shared_library.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <system_error>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"

namespace modgraph {
namespace fs = std::filesystem;

std::string DescriptorAliasFor(std::string_view module_id) {
  std::string alias = fmt::format("{}{}", MODGRAPH_ALIAS_PREFIX, module_id);
  std::replace(alias.begin(), alias.end(), '-', '_');
  return alias;
}

namespace {

absl::StatusOr<std::string> ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(fmt::format("cannot read '{}'", path.string()));
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return std::move(bytes).str();
}

bool IsElfSharedObject(std::string_view bytes) {
  if (bytes.size() < sizeof(Elf64_Ehdr)) return false;
  Elf64_Ehdr header;
  std::memcpy(&header, bytes.data(), sizeof header);
  return std::memcmp(header.e_ident, ELFMAG, SELFMAG) == 0 && header.e_type == ET_DYN;
}

std::vector<std::string> GnuUniqueSymbolsIn(std::string_view bytes) {
  std::vector<std::string> unique;
  if (bytes.size() < sizeof(Elf64_Ehdr)) return unique;
  const auto* base = reinterpret_cast<const unsigned char*>(bytes.data());
  Elf64_Ehdr header;
  std::memcpy(&header, base, sizeof header);
  if (std::memcmp(header.e_ident, ELFMAG, SELFMAG) != 0 || header.e_ident[EI_CLASS] != ELFCLASS64 ||
      header.e_shoff + size_t{header.e_shnum} * sizeof(Elf64_Shdr) > bytes.size()) {
    return unique;
  }
  auto section = [&](unsigned i) {
    Elf64_Shdr s;
    std::memcpy(&s, base + header.e_shoff + i * sizeof(Elf64_Shdr), sizeof s);
    return s;
  };
  for (unsigned i = 0; i < header.e_shnum; ++i) {
    const Elf64_Shdr symbols = section(i);
    if (symbols.sh_type != SHT_DYNSYM || symbols.sh_link >= header.e_shnum) continue;
    const Elf64_Shdr strings = section(symbols.sh_link);
    if (symbols.sh_offset + symbols.sh_size > bytes.size() ||
        strings.sh_offset + strings.sh_size > bytes.size()) {
      continue;
    }
    for (size_t k = 0; k < symbols.sh_size / sizeof(Elf64_Sym); ++k) {
      Elf64_Sym symbol;
      std::memcpy(&symbol, base + symbols.sh_offset + k * sizeof(Elf64_Sym), sizeof symbol);
      if (ELF64_ST_BIND(symbol.st_info) != STB_GNU_UNIQUE || symbol.st_name >= strings.sh_size) {
        continue;
      }
      unique.emplace_back(reinterpret_cast<const char*>(base + strings.sh_offset + symbol.st_name));
    }
  }
  return unique;
}

// Everything about a library file that depends only on its contents.
struct Inspection {
  std::string bytes;
  bool elf_shared_object = false;
  std::vector<std::string> gnu_unique_symbols;
  std::vector<std::string> aliases;  // symbols in the descriptor section
  std::string alias_error;           // why the section could not be read, if it could not
};

struct FileIdentity {
  dev_t device;
  ino_t inode;
  off_t size;
  int64_t mtime_ns;
  template <typename H>
  friend H AbslHashValue(H h, const FileIdentity& f) {
    return H::combine(std::move(h), f.device, f.inode, f.size, f.mtime_ns);
  }
  friend bool operator==(const FileIdentity&, const FileIdentity&) = default;
};

class InspectionCache {
 public:
  absl::StatusOr<std::shared_ptr<const Inspection>> Inspect(const fs::path& path,
                                                            const struct stat& st) {
    const FileIdentity key{st.st_dev, st.st_ino, st.st_size,
                           int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec};
    {
      absl::MutexLock lock(&mutex_);
      if (auto it = cache_.find(key); it != cache_.end()) return it->second;
    }
    absl::StatusOr<std::string> bytes = ReadFile(path);
    if (!bytes.ok()) return bytes.status();
    auto inspection = std::make_shared<Inspection>();
    inspection->bytes = *std::move(bytes);
    inspection->elf_shared_object = IsElfSharedObject(inspection->bytes);
    if (inspection->elf_shared_object) {
      inspection->gnu_unique_symbols = GnuUniqueSymbolsIn(inspection->bytes);
      try {
        boost::dll::library_info info(path, /*throw_if_not_native=*/true);
        inspection->aliases = info.symbols(MODGRAPH_DESCRIPTOR_SECTION);
      } catch (const std::exception& error) {
        inspection->alias_error = error.what();
      }
    }
    absl::MutexLock lock(&mutex_);
    return cache_.try_emplace(key, std::move(inspection)).first->second;
  }

 private:
  absl::Mutex mutex_;
  absl::flat_hash_map<FileIdentity, std::shared_ptr<const Inspection>> cache_
      ABSL_GUARDED_BY(mutex_);
};

InspectionCache& Inspections() {
  static InspectionCache* cache = new InspectionCache();
  return *cache;
}

absl::Status StatLibrary(const fs::path& path, std::string_view environment, struct stat& st) {
  if (::stat(path.c_str(), &st) != 0) {
    return absl::NotFoundError(fmt::format(
        "environment '{}': library '{}' not found ({}); build the module or fix the topology's "
        "module roots",
        environment, path.string(), std::strerror(errno)));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(
        fmt::format("environment '{}': '{}' is not a regular file; point the topology at a "
                    "module library (.so)",
                    environment, path.string()));
  }
  // A library anyone can rewrite is code anyone can run in this process.
  if ((st.st_mode & S_IWOTH) != 0 || (st.st_uid != ::geteuid() && st.st_uid != 0)) {
    return absl::PermissionDeniedError(fmt::format(
        "environment '{}': refusing library '{}': it is writable by other users or owned by "
        "another user; run `chmod o-w {}` and make it yours or root's",
        environment, path.string(), path.string()));
  }
  return absl::OkStatus();
}

// Copy directories this process made; removed at exit even if libraries were
// never unloaded (a leaked topology, std::exit). Mapped files survive unlinking.
class CopyDirectoryJanitor {
 public:
  void Add(const fs::path& dir) {
    absl::MutexLock lock(&mutex_);
    dirs_.push_back(dir);
  }
  ~CopyDirectoryJanitor() {
    std::error_code ec;
    for (const fs::path& dir : dirs_) fs::remove_all(dir, ec);
  }

 private:
  absl::Mutex mutex_;
  std::vector<fs::path> dirs_;
};

CopyDirectoryJanitor& Janitor() {
  static CopyDirectoryJanitor janitor;
  return janitor;
}

bool ProcessAlive(pid_t pid) { return ::kill(pid, 0) == 0 || errno == EPERM; }

// Copy directories are "modgraph-<pid>-XXXXXX"; remove those whose process died.
void SweepStaleCopyDirectories(const fs::path& root) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    const std::string name = entry.path().filename().string();
    if (!name.starts_with("modgraph-")) continue;
    const long pid = std::strtol(name.c_str() + 9, nullptr, 10);
    if (pid <= 0 || pid == ::getpid() || ProcessAlive(static_cast<pid_t>(pid))) continue;
    if (entry.symlink_status(ec).type() != fs::file_type::directory) continue;
    struct stat st {};
    if (::lstat(entry.path().c_str(), &st) != 0 || st.st_uid != ::geteuid()) continue;
    fs::remove_all(entry.path(), ec);
  }
}

// Copies go to memory-backed storage when it allows executables: creating a
// file on a journaling disk costs more than the dlopen itself, and the path
// stays real for gdb and perf. $MODGRAPH_COPY_DIR overrides; $TMPDIR or /tmp last.
fs::path DefaultCopyRoot() {
  for (const char* variable : {"MODGRAPH_COPY_DIR", "XDG_RUNTIME_DIR"}) {
    const char* dir = std::getenv(variable);
    if (dir != nullptr && *dir != '\0' && ::access(dir, W_OK | X_OK) == 0) return dir;
  }
  struct statvfs shm {};
  if (::statvfs("/dev/shm", &shm) == 0 && (shm.f_flag & ST_NOEXEC) == 0 &&
      (shm.f_flag & ST_RDONLY) == 0 && ::access("/dev/shm", W_OK | X_OK) == 0) {
    return "/dev/shm";
  }
  const char* tmp = std::getenv("TMPDIR");
  return (tmp != nullptr && *tmp != '\0') ? tmp : "/tmp";
}

absl::Status WriteAll(int fd, std::string_view bytes, const fs::path& to) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return absl::ErrnoToStatus(errno, fmt::format("write {}", to.string()));
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

// File names carry environment and module; keep them to a safe alphabet.
std::string SafeName(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) c = '_';
  }
  return out;
}

}  // namespace

std::vector<std::string> FindGnuUniqueSymbols(const fs::path& path) {
  absl::StatusOr<std::string> bytes = ReadFile(path);
  return bytes.ok() ? GnuUniqueSymbolsIn(*bytes) : std::vector<std::string>{};
}

LoadedLibrary::~LoadedLibrary() {
  library_.reset();  // dlclose before the file goes away
  if (memfd_ >= 0) ::close(memfd_);
  if (remove_on_unload_) {
    std::error_code ec;
    fs::remove(loaded_path_, ec);
  }
}

void LoadedLibrary::RemoveCopy() {
  if (!remove_on_unload_) return;
  std::error_code ec;
  fs::remove(loaded_path_, ec);
  remove_on_unload_ = false;
}

LibraryLoader::LibraryLoader() : LibraryLoader(Options{}) {}

LibraryLoader::LibraryLoader(Options options) : options_(std::move(options)) {}

LibraryLoader::~LibraryLoader() {
  // Libraries may outlive the loader; their own destructors remove their copies,
  // and the directory goes once it is empty (or at exit).
  if (!copy_dir_.empty()) {
    std::error_code ec;
    fs::remove(copy_dir_, ec);
  }
}

absl::StatusOr<fs::path> LibraryLoader::MakeTempCopy(std::string_view bytes,
                                                     const LoadRequest& request) {
  if (copy_dir_.empty()) {
    const fs::path root = options_.temp_root.empty() ? DefaultCopyRoot() : options_.temp_root;
    SweepStaleCopyDirectories(root);
    std::string pattern = (root / fmt::format("modgraph-{}-XXXXXX", ::getpid())).string();
    if (::mkdtemp(pattern.data()) == nullptr) {
      return absl::ErrnoToStatus(
          errno, fmt::format("cannot create a copy directory under '{}'; set TMPDIR to a "
                             "writable directory",
                             root.string()));
    }
    copy_dir_ = pattern;
    Janitor().Add(copy_dir_);
  }
  // The sequence number keeps a reloaded copy from reusing a path dlopen knows.
  const fs::path copy = copy_dir_ / fmt::format("{}#{}.{}.so", SafeName(request.environment),
                                                SafeName(request.label), ++copy_sequence_);
  const int fd = ::open(copy.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0500);
  if (fd < 0) return absl::ErrnoToStatus(errno, fmt::format("create {}", copy.string()));
  absl::Status written = WriteAll(fd, bytes, copy);
  ::close(fd);
  if (!written.ok()) {
    std::error_code ec;
    fs::remove(copy, ec);
    return written;
  }
  return copy;
}

absl::StatusOr<std::shared_ptr<LoadedLibrary>> LibraryLoader::Load(const fs::path& source,
                                                                   const LoadRequest& request) {
  struct stat st {};
  if (absl::Status status = StatLibrary(source, request.environment, st); !status.ok()) {
    return status;
  }
  absl::StatusOr<std::shared_ptr<const Inspection>> inspected = Inspections().Inspect(source, st);
  if (!inspected.ok()) return inspected.status();
  const Inspection& inspection = **inspected;
  if (!inspection.elf_shared_object) {
    return absl::InvalidArgumentError(
        fmt::format("environment '{}': '{}' is not an ELF shared library; build it with "
                    "modgraph_add_module() or remove it from the module roots",
                    request.environment, source.string()));
  }
  if (!inspection.alias_error.empty()) {
    return absl::InvalidArgumentError(
        fmt::format("environment '{}': cannot read the symbol table of '{}': {}",
                    request.environment, source.string(), inspection.alias_error));
  }
  if (inspection.aliases.empty()) {
    return absl::InvalidArgumentError(fmt::format(
        "environment '{}': '{}' exports no modgraph module descriptor (no symbols in section "
        "\"{}\"); declare one with MODGRAPH_MODULE in the library",
        request.environment, source.string(), MODGRAPH_DESCRIPTOR_SECTION));
  }
  // The dynamic linker binds GNU unique symbols across every copy of a library:
  // the copies would silently share that state, so they would not be instances.
  if (options_.copy_mode != CopyMode::kNone && !options_.allow_gnu_unique &&
      !inspection.gnu_unique_symbols.empty()) {
    return absl::FailedPreconditionError(fmt::format(
        "environment '{}': '{}' has {} GNU unique symbol(s) (first: {}) that every copy "
        "would share, merging the instances' state; build it with modgraph_add_module() "
        "(-fvisibility=hidden -fvisibility-inlines-hidden -fno-gnu-unique)",
        request.environment, source.string(), inspection.gnu_unique_symbols.size(),
        inspection.gnu_unique_symbols.front()));
  }

  std::shared_ptr<LoadedLibrary> loaded(new LoadedLibrary());
  loaded->source_ = source;
  switch (options_.copy_mode) {
    case CopyMode::kTempFile: {
      absl::StatusOr<fs::path> copy = MakeTempCopy(inspection.bytes, request);
      if (!copy.ok()) return copy.status();
      loaded->loaded_path_ = *copy;
      loaded->remove_on_unload_ = true;
      break;
    }
    case CopyMode::kMemfd: {
      const std::string name = fmt::format("{}#{}", request.environment, request.label);
      loaded->memfd_ = ::memfd_create(name.c_str(), MFD_CLOEXEC);
      if (loaded->memfd_ < 0) return absl::ErrnoToStatus(errno, "memfd_create");
      loaded->loaded_path_ = fmt::format("/proc/self/fd/{}", loaded->memfd_);
      if (absl::Status written = WriteAll(loaded->memfd_, inspection.bytes, loaded->loaded_path_);
          !written.ok()) {
        return written;
      }
      break;
    }
    case CopyMode::kNone:
      loaded->loaded_path_ = source;
      break;
  }

  namespace dll = boost::dll;
  dll::fs::error_code ec;
  auto library = std::make_unique<dll::shared_library>(
      loaded->loaded_path_, dll::load_mode::rtld_local | dll::load_mode::rtld_now, ec);
  if (ec) {
    // Boost.DLL clears dlerror(); a second attempt (failure path only) recovers it.
    void* retry = ::dlopen(loaded->loaded_path_.c_str(), RTLD_NOW | RTLD_LOCAL);
    const char* why = retry == nullptr ? ::dlerror() : nullptr;
    if (retry != nullptr) ::dlclose(retry);
    return absl::FailedPreconditionError(fmt::format(
        "environment '{}': dlopen of '{}' failed: {}; check that it links only modgraph_core "
        "and its dependencies resolve",
        request.environment, source.string(), why != nullptr ? why : ec.message()));
  }
  loaded->library_ = std::move(library);

  for (const std::string& alias : inspection.aliases) {
    if (!alias.starts_with(MODGRAPH_ALIAS_PREFIX)) continue;
    const void* address = loaded->library_->get<const void*>(alias);
    const auto* descriptor = static_cast<const modgraph_module_descriptor*>(address);
    // Read only the version before trusting the rest of the layout.
    if (descriptor->abi_version != MODGRAPH_ABI_VERSION) {
      return absl::FailedPreconditionError(fmt::format(
          "environment '{}': '{}' ({}) was built against module ABI {} but this modgraph "
          "speaks ABI {}; rebuild the module against this modgraph's SDK",
          request.environment, source.string(), alias, descriptor->abi_version,
          MODGRAPH_ABI_VERSION));
    }
    if (descriptor->descriptor_size < sizeof(modgraph_module_descriptor) ||
        descriptor->id == nullptr || *descriptor->id == '\0') {
      return absl::FailedPreconditionError(
          fmt::format("environment '{}': '{}' ({}) has a malformed descriptor; rebuild it with "
                      "MODGRAPH_MODULE",
                      request.environment, source.string(), alias));
    }
    if (alias != DescriptorAliasFor(descriptor->id)) {
      return absl::FailedPreconditionError(fmt::format(
          "environment '{}': '{}': module '{}' is exported as '{}' but must be exported as "
          "'{}' (weak aliases with the same name merge in a bundle); fix its MODGRAPH_MODULE "
          "symbol",
          request.environment, source.string(), descriptor->id, alias,
          DescriptorAliasFor(descriptor->id)));
    }
    loaded->descriptors_.push_back(descriptor);
  }
  if (loaded->descriptors_.empty()) {
    return absl::InvalidArgumentError(fmt::format(
        "environment '{}': '{}' has symbols in section \"{}\" but none is a module descriptor; "
        "declare modules with MODGRAPH_MODULE",
        request.environment, source.string(), MODGRAPH_DESCRIPTOR_SECTION));
  }
  return loaded;
}

}  // namespace modgraph
