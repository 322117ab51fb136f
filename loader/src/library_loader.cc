// Loading module libraries as private copies; see library_loader.h.
#include "modgraph/loader/library_loader.h"

#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/dll/library_info.hpp>
#include <boost/dll/shared_library.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
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

absl::Status ValidateLibraryFile(const fs::path& path, std::string_view environment) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return absl::NotFoundError(
        fmt::format("environment '{}': library '{}' not found ({}); build the module or fix the "
                    "topology's module roots",
                    environment, path.string(), std::strerror(errno)));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(
        fmt::format("environment '{}': '{}' is not a regular file; point the topology at a module "
                    "library (.so)",
                    environment, path.string()));
  }
  // A library anyone can rewrite is code anyone can run in this process.
  if ((st.st_mode & S_IWOTH) != 0 || (st.st_uid != ::geteuid() && st.st_uid != 0)) {
    return absl::PermissionDeniedError(
        fmt::format("environment '{}': refusing library '{}': it is writable by other users or "
                    "owned by another user; run `chmod o-w {}` and make it yours or root's",
                    environment, path.string(), path.string()));
  }
  std::ifstream in(path, std::ios::binary);
  Elf64_Ehdr header{};
  in.read(reinterpret_cast<char*>(&header), sizeof header);
  if (!in || std::memcmp(header.e_ident, ELFMAG, SELFMAG) != 0 || header.e_type != ET_DYN) {
    return absl::InvalidArgumentError(
        fmt::format("environment '{}': '{}' is not an ELF shared library; build it with "
                    "modgraph_add_module() or remove it from the module roots",
                    environment, path.string()));
  }
  return absl::OkStatus();
}

std::vector<std::string> FindGnuUniqueSymbols(const fs::path& path) {
  std::vector<std::string> unique;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return unique;
  struct stat st {};
  ::fstat(fd, &st);
  const size_t size = static_cast<size_t>(st.st_size);
  void* map = size >= sizeof(Elf64_Ehdr) ? ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0)
                                         : MAP_FAILED;
  ::close(fd);
  if (map == MAP_FAILED) return unique;
  const auto* base = static_cast<const unsigned char*>(map);
  const auto* header = reinterpret_cast<const Elf64_Ehdr*>(base);
  const bool sane = std::memcmp(header->e_ident, ELFMAG, SELFMAG) == 0 &&
                    header->e_ident[EI_CLASS] == ELFCLASS64 &&
                    header->e_shoff + size_t{header->e_shnum} * sizeof(Elf64_Shdr) <= size;
  if (sane) {
    const auto* sections = reinterpret_cast<const Elf64_Shdr*>(base + header->e_shoff);
    for (unsigned i = 0; i < header->e_shnum; ++i) {
      if (sections[i].sh_type != SHT_DYNSYM || sections[i].sh_link >= header->e_shnum) continue;
      const Elf64_Shdr& strings = sections[sections[i].sh_link];
      if (sections[i].sh_offset + sections[i].sh_size > size ||
          strings.sh_offset + strings.sh_size > size) {
        continue;
      }
      const auto* symbols = reinterpret_cast<const Elf64_Sym*>(base + sections[i].sh_offset);
      const size_t count = sections[i].sh_size / sizeof(Elf64_Sym);
      for (size_t k = 0; k < count; ++k) {
        if (ELF64_ST_BIND(symbols[k].st_info) != STB_GNU_UNIQUE) continue;
        if (symbols[k].st_name >= strings.sh_size) continue;
        unique.emplace_back(reinterpret_cast<const char*>(base + strings.sh_offset) +
                            symbols[k].st_name);
      }
    }
  }
  ::munmap(map, size);
  return unique;
}

namespace {

// Descriptor discovery parses ELF section tables; cache per file identity so a
// second environment loading the same library pays only for the copy + dlopen.
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

class DiscoveryCache {
 public:
  absl::StatusOr<std::vector<std::string>> AliasesOf(const fs::path& path,
                                                     std::string_view environment) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      return absl::NotFoundError(fmt::format("library '{}' vanished", path.string()));
    }
    FileIdentity key{st.st_dev, st.st_ino, st.st_size,
                     int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec};
    {
      absl::MutexLock lock(&mutex_);
      if (auto it = cache_.find(key); it != cache_.end()) return it->second;
    }
    std::vector<std::string> aliases;
    try {
      boost::dll::library_info info(path, /*throw_if_not_native=*/true);
      aliases = info.symbols(MODGRAPH_DESCRIPTOR_SECTION);
    } catch (const std::exception& error) {
      return absl::InvalidArgumentError(
          fmt::format("environment '{}': cannot read the symbol table of '{}': {}", environment,
                      path.string(), error.what()));
    }
    absl::MutexLock lock(&mutex_);
    cache_.emplace(key, aliases);
    return aliases;
  }

 private:
  absl::Mutex mutex_;
  absl::flat_hash_map<FileIdentity, std::vector<std::string>> cache_ ABSL_GUARDED_BY(mutex_);
};

DiscoveryCache& Discovery() {
  static DiscoveryCache* cache = new DiscoveryCache();
  return *cache;
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

absl::Status CopyFileContents(const fs::path& from, int to_fd) {
  const int from_fd = ::open(from.c_str(), O_RDONLY | O_CLOEXEC);
  if (from_fd < 0) return absl::ErrnoToStatus(errno, fmt::format("open {}", from.string()));
  struct stat st {};
  ::fstat(from_fd, &st);
  off_t remaining = st.st_size;
  while (remaining > 0) {
    ssize_t n = ::copy_file_range(from_fd, nullptr, to_fd, nullptr, remaining, 0);
    // Across file systems (e.g. into a memfd) some kernels refuse; sendfile copies in-kernel too.
    if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP)) {
      n = ::sendfile(to_fd, from_fd, nullptr, static_cast<size_t>(remaining));
    }
    if (n <= 0) {
      const int err = n < 0 ? errno : EIO;
      ::close(from_fd);
      return absl::ErrnoToStatus(err, fmt::format("copy {}", from.string()));
    }
    remaining -= n;
  }
  ::close(from_fd);
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

LoadedLibrary::~LoadedLibrary() {
  library_.reset();  // dlclose before the file goes away
  if (memfd_ >= 0) ::close(memfd_);
  if (remove_on_unload_) {
    std::error_code ec;
    fs::remove(loaded_path_, ec);
  }
}

LibraryLoader::LibraryLoader() : LibraryLoader(Options{}) {}

LibraryLoader::LibraryLoader(Options options) : options_(std::move(options)) {}

LibraryLoader::~LibraryLoader() {
  // Libraries may outlive the loader; their own destructors remove their copies,
  // and the directory goes once it is empty.
  if (!copy_dir_.empty()) {
    std::error_code ec;
    fs::remove(copy_dir_, ec);
  }
}

absl::StatusOr<fs::path> LibraryLoader::MakeTempCopy(const fs::path& source,
                                                     const LoadRequest& request) {
  if (copy_dir_.empty()) {
    fs::path root = options_.temp_root;
    if (root.empty()) {
      const char* tmp = std::getenv("TMPDIR");
      root = (tmp != nullptr && *tmp != '\0') ? tmp : "/tmp";
    }
    SweepStaleCopyDirectories(root);
    std::string pattern = (root / fmt::format("modgraph-{}-XXXXXX", ::getpid())).string();
    if (::mkdtemp(pattern.data()) == nullptr) {
      return absl::ErrnoToStatus(
          errno,
          fmt::format(
              "cannot create a copy directory under '{}'; set TMPDIR to a writable directory",
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
  absl::Status copied = CopyFileContents(source, fd);
  ::close(fd);
  if (!copied.ok()) {
    std::error_code ec;
    fs::remove(copy, ec);
    return copied;
  }
  return copy;
}

absl::StatusOr<std::shared_ptr<LoadedLibrary>> LibraryLoader::Load(const fs::path& source,
                                                                   const LoadRequest& request) {
  if (absl::Status valid = ValidateLibraryFile(source, request.environment); !valid.ok()) {
    return valid;
  }
  absl::StatusOr<std::vector<std::string>> aliases =
      Discovery().AliasesOf(source, request.environment);
  if (!aliases.ok()) return aliases.status();
  if (aliases->empty()) {
    return absl::InvalidArgumentError(
        fmt::format("environment '{}': '{}' exports no modgraph module descriptor (no symbols in "
                    "section \"{}\"); declare one with MODGRAPH_MODULE in the library",
                    request.environment, source.string(), MODGRAPH_DESCRIPTOR_SECTION));
  }

  if (options_.copy_mode != CopyMode::kNone && !options_.allow_gnu_unique) {
    // The dynamic linker binds GNU unique symbols across every copy of a library:
    // the copies would silently share that state, so they would not be instances.
    if (std::vector<std::string> unique = FindGnuUniqueSymbols(source); !unique.empty()) {
      return absl::FailedPreconditionError(fmt::format(
          "environment '{}': '{}' has {} GNU unique symbol(s) (first: {}) that every copy "
          "would share, merging the instances' state; build it with modgraph_add_module() "
          "(-fvisibility=hidden -fvisibility-inlines-hidden -fno-gnu-unique)",
          request.environment, source.string(), unique.size(), unique.front()));
    }
  }
  std::shared_ptr<LoadedLibrary> loaded(new LoadedLibrary());
  loaded->source_ = source;
  switch (options_.copy_mode) {
    case CopyMode::kTempFile: {
      absl::StatusOr<fs::path> copy = MakeTempCopy(source, request);
      if (!copy.ok()) return copy.status();
      loaded->loaded_path_ = *copy;
      loaded->remove_on_unload_ = true;
      break;
    }
    case CopyMode::kMemfd: {
      const std::string name = fmt::format("{}#{}", request.environment, request.label);
      loaded->memfd_ = ::memfd_create(name.c_str(), MFD_CLOEXEC);
      if (loaded->memfd_ < 0) return absl::ErrnoToStatus(errno, "memfd_create");
      if (absl::Status copied = CopyFileContents(source, loaded->memfd_); !copied.ok()) {
        return copied;
      }
      loaded->loaded_path_ = fmt::format("/proc/self/fd/{}", loaded->memfd_);
      break;
    }
    case CopyMode::kNone:
      loaded->loaded_path_ = source;
      break;
  }

  namespace dll = boost::dll;
  boost::dll::fs::error_code ec;
  auto library = std::make_unique<dll::shared_library>(
      loaded->loaded_path_, dll::load_mode::rtld_local | dll::load_mode::rtld_now, ec);
  if (ec) {
    // Boost.DLL clears dlerror(); a second attempt (failure path only) recovers it.
    void* retry = ::dlopen(loaded->loaded_path_.c_str(), RTLD_NOW | RTLD_LOCAL);
    const char* why = retry == nullptr ? ::dlerror() : nullptr;
    if (retry != nullptr) ::dlclose(retry);
    return absl::FailedPreconditionError(
        fmt::format("environment '{}': dlopen of '{}' failed: {}; check that it links only "
                    "modgraph_core and its dependencies resolve",
                    request.environment, source.string(), why != nullptr ? why : ec.message()));
  }
  loaded->library_ = std::move(library);

  for (const std::string& alias : *aliases) {
    if (!alias.starts_with(MODGRAPH_ALIAS_PREFIX)) continue;
    const void* address = loaded->library_->get<const void*>(alias);
    const auto* descriptor = static_cast<const modgraph_module_descriptor*>(address);
    // Read only the version before trusting the rest of the layout.
    if (descriptor->abi_version != MODGRAPH_ABI_VERSION) {
      return absl::FailedPreconditionError(
          fmt::format("environment '{}': '{}' ({}) was built against module ABI {} but this "
                      "modgraph speaks ABI {}; rebuild the module against this modgraph's SDK",
                      request.environment, source.string(), alias, descriptor->abi_version,
                      MODGRAPH_ABI_VERSION));
    }
    if (descriptor->descriptor_size < sizeof(modgraph_module_descriptor) ||
        descriptor->id == nullptr || *descriptor->id == '\0') {
      return absl::FailedPreconditionError(fmt::format(
          "environment '{}': '{}' ({}) has a malformed descriptor; rebuild it with MODGRAPH_MODULE",
          request.environment, source.string(), alias));
    }
    if (alias != DescriptorAliasFor(descriptor->id)) {
      return absl::FailedPreconditionError(fmt::format(
          "environment '{}': '{}': module '{}' is exported as '{}' but must be exported as '{}' "
          "(weak aliases with the same name merge in a bundle); fix its MODGRAPH_MODULE symbol",
          request.environment, source.string(), descriptor->id, alias,
          DescriptorAliasFor(descriptor->id)));
    }
    loaded->descriptors_.push_back(descriptor);
  }
  if (loaded->descriptors_.empty()) {
    return absl::InvalidArgumentError(
        fmt::format("environment '{}': '{}' has symbols in section \"{}\" but none is a module "
                    "descriptor; declare modules with MODGRAPH_MODULE",
                    request.environment, source.string(), MODGRAPH_DESCRIPTOR_SECTION));
  }
  return loaded;
}

}  // namespace modgraph
