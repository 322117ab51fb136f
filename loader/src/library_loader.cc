// Loading module libraries as private copies; see library_loader.h.
//
// A load is: open the module root and the file once (openat2 beneath the
// root), check owner and mode on those descriptors, read the header, read the
// file, inspect the bytes (elf.h), write them to the private copy, dlopen the
// copy, check the descriptors. No step reopens the file by name, so what was
// checked is what runs.
#include "modgraph/loader/library_loader.h"

#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <link.h>
#include <linux/openat2.h>
#include <openssl/evp.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/dll/shared_library.hpp>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <system_error>
#include <tuple>

#include "absl/synchronization/mutex.h"
#include "copy_directory.h"
#include "modgraph/loader/internal/descriptor_check.h"
#include "modgraph/loader/internal/discovery.h"
#include "modgraph/loader/internal/elf.h"
#include "modgraph/loader/module_id.h"
#include "module_files.h"

namespace modgraph {
namespace fs = std::filesystem;

std::string DescriptorAliasFor(std::string_view module_id) {
  std::string alias = fmt::format("{}{}", MODGRAPH_ALIAS_PREFIX, module_id);
  std::replace(alias.begin(), alias.end(), '-', '_');
  return alias;
}

namespace {

using loader_internal::CheckOwnerAndMode;
using loader_internal::CheckRootAncestors;
using loader_internal::CopyFailed;
using loader_internal::CountMappings;
using loader_internal::kMaxLibraryBytes;
using loader_internal::MaxMapCount;
using loader_internal::OpenBeneath;
using loader_internal::OutOfDescriptors;
using loader_internal::ReadAt;
using loader_internal::UniqueFd;
using loader_internal::WriteAll;

// Turns dlopen's message into an error that names the limit hit and its fix.
absl::Status DlopenFailed(std::string_view why, std::string_view environment,
                          const fs::path& source) {
  if (why.find("Too many open files") != std::string_view::npos) {
    return OutOfDescriptors(environment, source);
  }
  if (why.find("static TLS") != std::string_view::npos) {
    return absl::ResourceExhaustedError(fmt::format(
        "environment '{}': dlopen of '{}' failed: {}; the static TLS block is full — a module "
        "(this one or one loaded before it) uses thread-local storage of the initial-exec model, "
        "or modgraph_core was itself dlopen'd: build modules with -ftls-model=global-dynamic, "
        "and hosts that dlopen modgraph_core with -DMODGRAPH_CONTEXT_DYNAMIC_TLS=ON",
        environment, source.string(), why));
  }
  const std::size_t limit = MaxMapCount();
  const std::size_t mappings = CountMappings();
  if (limit > 0 && mappings + 64 >= limit) {
    return absl::ResourceExhaustedError(fmt::format(
        "environment '{}': dlopen of '{}' failed: {}; this process has {} memory mappings and "
        "vm.max_map_count is {} (each module copy takes about 5): raise it, e.g. `sysctl -w "
        "vm.max_map_count={}`, or load fewer isolated copies (a bundled environment)",
        environment, source.string(), why, mappings, limit, limit * 4));
  }
  return absl::FailedPreconditionError(
      fmt::format("environment '{}': dlopen of '{}' failed: {}; check that it links only "
                  "modgraph_core and its dependencies resolve",
                  environment, source.string(), why));
}

absl::Status InspectionFailed(const absl::Status& why, std::string_view environment,
                              const fs::path& source) {
  return absl::InvalidArgumentError(
      fmt::format("environment '{}': '{}' is not a loadable module library: {}; build it with "
                  "modgraph_add_module() or remove it from the module roots",
                  environment, source.string(), std::string(why.message())));
}

}  // namespace

// SHA-256 (FIPS 180-4) of `bytes`, as lower-case hex (OpenSSL's EVP).
static std::string Sha256Hex(std::string_view bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), digest, &size, EVP_sha256(), nullptr) != 1) return {};
  std::string hex;
  hex.reserve(2 * size);
  for (unsigned int i = 0; i < size; ++i) {
    fmt::format_to(std::back_inserter(hex), "{:02x}", digest[i]);
  }
  return hex;
}

// A module file's bytes as read and inspected once, and their hash; shared by
// the loads of one batch that find the file unchanged.
struct CheckedImage {
  std::string bytes;
  elf::SharedObject so;
  loader_internal::ExportClasses exports;
  std::string sha256;
};

// What Batch keeps: the images read during the open batches, by file version.
struct LibraryLoader::BatchImages {
  // Device, inode, size, mtime and ctime (ns): a file rewritten or replaced
  // changes at least one of them, beyond the timestamps' granularity.
  using Version =
      std::tuple<dev_t, ino_t, off_t, std::int64_t, std::int64_t, std::int64_t, std::int64_t>;
  static constexpr std::size_t kMaxBytes = std::size_t{256} << 20;
  static Version VersionOf(const struct stat& st) {
    return {st.st_dev,          st.st_ino,         st.st_size,        st.st_mtim.tv_sec,
            st.st_mtim.tv_nsec, st.st_ctim.tv_sec, st.st_ctim.tv_nsec};
  }

  std::mutex mutex;
  int depth = 0;  // open batches
  std::size_t bytes = 0;
  std::map<Version, std::shared_ptr<const CheckedImage>> images;
  std::atomic<std::uint64_t> files_read{0};

  std::shared_ptr<const CheckedImage> Find(const struct stat& st) {
    std::lock_guard lock(mutex);
    if (depth == 0) return nullptr;
    const auto it = images.find(VersionOf(st));
    return it == images.end() ? nullptr : it->second;
  }
  void Remember(const struct stat& st, std::shared_ptr<const CheckedImage> image) {
    std::lock_guard lock(mutex);
    const std::size_t size = image->bytes.size();
    if (depth == 0 || bytes + size > kMaxBytes) return;
    // Two threads may have read the same version at once: keep the first.
    if (images.try_emplace(VersionOf(st), std::move(image)).second) bytes += size;
  }
};

LibraryLoader::Batch::Batch(LibraryLoader& loader) : loader_(loader) {
  std::lock_guard lock(loader_.batch_->mutex);
  ++loader_.batch_->depth;
}

LibraryLoader::Batch::~Batch() {
  std::map<BatchImages::Version, std::shared_ptr<const CheckedImage>> dropped;
  std::lock_guard lock(loader_.batch_->mutex);
  if (--loader_.batch_->depth > 0) return;
  dropped.swap(loader_.batch_->images);
  loader_.batch_->bytes = 0;
}

std::uint64_t LibraryLoader::files_read() const noexcept {
  return batch_->files_read.load(std::memory_order_relaxed);
}

LibraryLoader::LibraryLoader() : LibraryLoader(Options{}) {}

LibraryLoader::LibraryLoader(Options options)
    : options_(std::move(options)), batch_(std::make_unique<BatchImages>()) {}

LibraryLoader::~LibraryLoader() {
  for (const auto& [path, fd] : root_fds_) ::close(fd);
  if (copy_dir_.empty()) return;
  // Libraries may outlive the loader: their own destructors remove their
  // copies, and the directory (still locked) goes at exit. Otherwise it goes now.
  std::error_code ec;
  if (!fs::is_empty(copy_dir_, ec)) return;  // the lock stays held until exit
  fs::remove(copy_dir_, ec);
  ::close(copy_dir_lock_);
}

absl::StatusOr<int> LibraryLoader::OpenRoot(const fs::path& root, const std::string& env,
                                            const fs::path& source) {
  std::lock_guard lock(roots_mutex_);
  // Reuse the checked descriptor while the path still names that directory
  // (a build that deletes and re-creates its output directory gets a new check).
  if (auto it = root_fds_.find(root.string()); it != root_fds_.end()) {
    struct stat by_path {
    }, held{};
    if (::stat(root.c_str(), &by_path) == 0 && ::fstat(it->second, &held) == 0 &&
        by_path.st_dev == held.st_dev && by_path.st_ino == held.st_ino) {
      return it->second;
    }
    ::close(it->second);
    root_fds_.erase(it);
  }
  UniqueFd fd(::open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0 && (errno == EMFILE || errno == ENFILE)) return OutOfDescriptors(env, source);
  if (fd.get() < 0) {
    return absl::NotFoundError(fmt::format(
        "environment '{}': library '{}' not found: module root '{}' cannot be opened ({}); build "
        "the module or fix the topology's module roots",
        env, source.string(), root.string(), std::strerror(errno)));
  }
  const bool allow_writable = options_.allow_writable_module_paths;
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return absl::ErrnoToStatus(errno, "fstat module root");
  if (absl::Status ok = CheckOwnerAndMode(st, root, "module root", false, allow_writable, env);
      !ok.ok()) {
    return ok;
  }
  std::error_code ec;
  const fs::path canonical_root = fs::canonical(root, ec);
  if (ec) {
    return absl::NotFoundError(fmt::format("module root '{}': {}", root.string(), ec.message()));
  }
  if (absl::Status ok = CheckRootAncestors(canonical_root, allow_writable, env); !ok.ok()) {
    return ok;
  }
  // Kept open: later loads reach the same checked directory, whatever its
  // path names by then.
  return root_fds_.emplace(root.string(), fd.release()).first->second;
}

absl::StatusOr<std::shared_ptr<LoadedLibrary>> LibraryLoader::Load(const fs::path& source,
                                                                   const LoadRequest& request) {
  return Load(source.parent_path().empty() ? fs::path(".") : source.parent_path(),
              source.filename(), request);
}

absl::StatusOr<std::shared_ptr<LoadedLibrary>> LibraryLoader::Load(const fs::path& root,
                                                                   const fs::path& file,
                                                                   const LoadRequest& request) {
  const std::string& env = request.environment;
  const fs::path source = root / file;
  const bool allow_writable = options_.allow_writable_module_paths;

  // The root: opened and checked once per loader; everything below is reached
  // through this descriptor.
  absl::StatusOr<int> root_fd = OpenRoot(root, env, source);
  if (!root_fd.ok()) return root_fd.status();
  struct stat st {};
  // Directories between the root and the file (a bundle in a subdirectory).
  fs::path between;
  for (const fs::path& part : file.parent_path()) {
    between /= part;
    const UniqueFd dir(OpenBeneath(*root_fd, between, O_PATH | O_DIRECTORY));
    if (dir.get() < 0 || ::fstat(dir.get(), &st) != 0) break;  // reported by the open below
    if (absl::Status ok =
            CheckOwnerAndMode(st, root / between, "directory", false, allow_writable, env);
        !ok.ok()) {
      return ok;
    }
  }

  const UniqueFd fd(OpenBeneath(*root_fd, file, O_RDONLY));
  if (fd.get() < 0) {
    const int error = errno;
    if (error == EMFILE || error == ENFILE) return OutOfDescriptors(env, source);
    if (error == ENOENT || error == ENOTDIR) {
      return absl::NotFoundError(fmt::format(
          "environment '{}': library '{}' not found; build the module or fix the topology's "
          "module roots",
          env, source.string()));
    }
    if (error == EXDEV || error == ELOOP) {
      return absl::PermissionDeniedError(fmt::format(
          "environment '{}': refusing '{}': it leads outside the module root '{}' (a symlink or "
          "'..'); move the library into the root or add its directory to module_roots",
          env, source.string(), root.string()));
    }
    return absl::ErrnoToStatus(
        error, fmt::format("environment '{}': cannot open '{}'", env, source.string()));
  }
  if (::fstat(fd.get(), &st) != 0) return absl::ErrnoToStatus(errno, "fstat module library");
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(
        fmt::format("environment '{}': '{}' is not a regular file; point the topology at a "
                    "module library (.so)",
                    env, source.string()));
  }
  if (absl::Status ok = CheckOwnerAndMode(st, source, "library", false, allow_writable, env);
      !ok.ok()) {
    return ok;
  }

  if (options_.after_checks_for_test) options_.after_checks_for_test(source);
  // In a batch, the bytes of this very version of the file may be in hand.
  const bool batched = options_.copy_mode != CopyMode::kNone;
  std::shared_ptr<const CheckedImage> checked = batched ? batch_->Find(st) : nullptr;
  std::shared_ptr<const CheckedImage> fresh;  // read by this load
  if (checked == nullptr) {
    // Decide on the header alone whether this is ELF at all.
    absl::StatusOr<std::string> header = ReadAt(fd.get(), elf::kHeaderSize, 0, source);
    if (!header.ok()) return header.status();
    if (!elf::HasElfMagic(*header)) {
      return absl::InvalidArgumentError(
          fmt::format("environment '{}': '{}' is not an ELF shared library; build it with "
                      "modgraph_add_module() or remove it from the module roots",
                      env, source.string()));
    }
    if (st.st_size > kMaxLibraryBytes) {
      return absl::InvalidArgumentError(fmt::format(
          "environment '{}': '{}' is {} bytes, more than any module library ({} bytes); remove "
          "it from the module roots",
          env, source.string(), st.st_size, kMaxLibraryBytes));
    }
    absl::StatusOr<std::string> bytes =
        ReadAt(fd.get(), static_cast<std::size_t>(st.st_size), 0, source);
    if (!bytes.ok()) return bytes.status();
    batch_->files_read.fetch_add(1, std::memory_order_relaxed);
    absl::StatusOr<elf::SharedObject> inspected = elf::InspectSharedObject(*bytes);
    if (!inspected.ok()) return InspectionFailed(inspected.status(), env, source);
    auto image = std::make_shared<CheckedImage>();
    image->bytes = *std::move(bytes);
    image->so = *std::move(inspected);
    image->exports = loader_internal::ClassifyExports(image->so);
    // From the bytes in hand: reading the copy again would cost a second pass
    // over every file, and in kNone mode the path may name other bytes by now.
    image->sha256 = Sha256Hex(image->bytes);
    checked = fresh = std::move(image);
  }
  const elf::SharedObject& so = checked->so;
  const loader_internal::ExportClasses& exports = checked->exports;
  const std::vector<std::string>& aliases = exports.descriptor_aliases;
  // The dynamic linker binds GNU unique symbols across every copy of a library:
  // the copies would silently share that state, so they would not be instances.
  if (options_.copy_mode != CopyMode::kNone && !options_.allow_gnu_unique &&
      !exports.gnu_unique.empty()) {
    return absl::FailedPreconditionError(fmt::format(
        "environment '{}': '{}' has {} GNU unique symbol(s) (first: {}) that every copy "
        "would share, merging the instances' state; build it with modgraph_add_module() "
        "(-fvisibility=hidden -fvisibility-inlines-hidden -fno-gnu-unique)",
        env, source.string(), exports.gnu_unique.size(), exports.gnu_unique.front()));
  }
  if (aliases.empty()) {
    return absl::InvalidArgumentError(fmt::format(
        "environment '{}': '{}' exports no modgraph module descriptor (no '{}*' symbol in its "
        "dynamic symbol table); declare one with MODGRAPH_MODULE in the library",
        env, source.string(), MODGRAPH_ALIAS_PREFIX));
  }
  // Any other export can be bound, despite RTLD_LOCAL, to a definition the
  // host or an earlier library already made global: the copy would then share
  // that object (or run that code) instead of its own.
  if (options_.copy_mode != CopyMode::kNone && !options_.allow_interposable_exports &&
      !exports.interposable.empty()) {
    const std::vector<std::string>& interposable = exports.interposable;
    const std::size_t shown = std::min<std::size_t>(interposable.size(), 5);
    return absl::FailedPreconditionError(fmt::format(
        "environment '{}': '{}' exports {} symbol(s) besides its module descriptors ({}{}); the "
        "dynamic linker may bind them to the host's or another library's definition, merging "
        "this copy's state with theirs; build it with modgraph_add_module(), whose linker "
        "version script (-Wl,--version-script) exports only the descriptors, or give them "
        "hidden visibility",
        env, source.string(), interposable.size(),
        fmt::join(interposable.begin(), interposable.begin() + static_cast<long>(shown), ", "),
        interposable.size() > shown ? ", ..." : ""));
  }
  if (so.own_static_tls) {
    return absl::FailedPreconditionError(fmt::format(
        "environment '{}': '{}' reaches its own {} bytes of thread-local storage with the "
        "initial-exec TLS model: every copy needs that much of the static TLS block, which glibc "
        "cannot grow once the process runs, so copies and reloads fail with \"cannot allocate "
        "memory in static TLS block\"; build it with -ftls-model=global-dynamic (no "
        "__attribute__((tls_model(\"initial-exec\"))) on its own thread_locals)",
        env, source.string(), so.tls_size));
  }

  std::shared_ptr<LoadedLibrary> loaded(new LoadedLibrary());
  loaded->source_ = source.string();
  loaded->content_sha256_ = checked->sha256;
  // Only a file that passed every check above is remembered.
  if (fresh != nullptr && batched) batch_->Remember(st, fresh);
  const std::string& bytes = checked->bytes;
  switch (options_.copy_mode) {
    case CopyMode::kTempFile: {
      absl::StatusOr<fs::path> copy = MakeTempCopy(bytes, request);
      if (!copy.ok()) return copy.status();
      loaded->loaded_path_ = copy->string();
      loaded->remove_on_unload_ = true;
      break;
    }
    case CopyMode::kMemfd: {
      const std::string name = fmt::format("{}#{}", env, request.label);
      loaded->memfd_ = ::memfd_create(name.c_str(), MFD_CLOEXEC);
      if (loaded->memfd_ < 0) {
        const int error = errno;
        if (error == EMFILE || error == ENFILE) return OutOfDescriptors(env, source);
        return absl::ErrnoToStatus(error, "memfd_create");
      }
      loaded->loaded_path_ = fmt::format("/proc/self/fd/{}", loaded->memfd_);
      if (const int error = WriteAll(loaded->memfd_, bytes); error != 0) {
        return CopyFailed(error, loaded->loaded_path_, env);
      }
      break;
    }
    case CopyMode::kNone:
      // The file itself, through the descriptor that was checked.
      loaded->loaded_path_ = fmt::format("/proc/self/fd/{}", fd.get());
      break;
  }

  if (request.before_dlopen) {
    if (absl::Status ready = request.before_dlopen(loaded->loaded_path_); !ready.ok()) return ready;
  }
  namespace dll = boost::dll;
  dll::fs::error_code dl_error;
  auto library = std::make_unique<dll::shared_library>(
      fs::path(loaded->loaded_path_), dll::load_mode::rtld_local | dll::load_mode::rtld_now,
      dl_error);
  if (dl_error) {
    // Boost.DLL clears dlerror(); a second attempt (failure path only) recovers it.
    void* retry = ::dlopen(loaded->loaded_path_.c_str(), RTLD_NOW | RTLD_LOCAL);
    const char* why = retry == nullptr ? ::dlerror() : nullptr;
    if (retry != nullptr) ::dlclose(retry);
    return DlopenFailed(why != nullptr ? why : dl_error.message(), env, source);
  }
  loaded->library_ = std::move(library);
  if (options_.copy_mode == CopyMode::kNone) loaded->loaded_path_ = source.string();

  // Every pointer of a descriptor is data of the module: followed only where
  // the copy is mapped (a broken file may point anywhere).
  link_map* map = nullptr;
  if (::dlinfo(loaded->library_->native(), RTLD_DI_LINKMAP, &map) != 0 || map == nullptr) {
    return absl::InternalError(
        fmt::format("dlinfo of '{}' failed: {}", source.string(), ::dlerror()));
  }
  const loader_internal::LoadedImage image(map->l_addr, so);
  const auto malformed = [&](const std::string& alias, const absl::Status& why) {
    return absl::InvalidArgumentError(fmt::format(
        "environment '{}': '{}' ({}) is not a loadable module library: {}; rebuild it with "
        "modgraph_add_module() and MODGRAPH_MODULE, or remove it from the module roots",
        env, source.string(), alias, std::string(why.message())));
  };
  for (const std::string& alias : aliases) {
    absl::StatusOr<const modgraph_module_descriptor*> located = loader_internal::LocateDescriptor(
        image, ::dlsym(loaded->library_->native(), alias.c_str()));
    if (!located.ok()) return malformed(alias, located.status());
    const modgraph_module_descriptor* descriptor = *located;
    // Read only the version before trusting the rest of the layout.
    if (descriptor == nullptr || descriptor->abi_version != MODGRAPH_ABI_VERSION) {
      return absl::FailedPreconditionError(fmt::format(
          "environment '{}': '{}' ({}) was built against module ABI {} but this modgraph "
          "speaks ABI {}; rebuild the module against this modgraph's SDK",
          env, source.string(), alias, descriptor == nullptr ? 0 : descriptor->abi_version,
          MODGRAPH_ABI_VERSION));
    }
    if (descriptor->descriptor_size < MODGRAPH_DESCRIPTOR_MIN_SIZE || descriptor->id == nullptr) {
      return absl::FailedPreconditionError(
          fmt::format("environment '{}': '{}' ({}) has a malformed descriptor; rebuild it with "
                      "MODGRAPH_MODULE",
                      env, source.string(), alias));
    }
    if (absl::Status ok = loader_internal::CheckDescriptorPointers(image, *descriptor); !ok.ok()) {
      return malformed(alias, ok);
    }
    const std::string where =
        fmt::format("descriptor {} of '{}' in environment '{}'", alias, source.string(), env);
    if (absl::Status valid = ValidateModuleId(descriptor->id, where); !valid.ok()) return valid;
    if (alias != DescriptorAliasFor(descriptor->id)) {
      return absl::FailedPreconditionError(fmt::format(
          "environment '{}': '{}': module '{}' is exported as '{}' but must be exported as "
          "'{}' (weak aliases with the same name merge in a bundle); fix its MODGRAPH_MODULE "
          "symbol",
          env, source.string(), descriptor->id, alias, DescriptorAliasFor(descriptor->id)));
    }
    for (const auto& [list, count, what] :
         {std::tuple{descriptor->imports, descriptor->import_count, "imports"},
          std::tuple{descriptor->provides_for, descriptor->provides_count, "provides_for"}}) {
      for (uint32_t i = 0; i < count; ++i) {
        const char* id = list[i];
        const std::string in =
            fmt::format("{} of module '{}' in '{}'", what, descriptor->id, source.string());
        if (absl::Status ok = ValidateModuleId(id == nullptr ? "" : id, in); !ok.ok()) return ok;
      }
    }
    loaded->descriptors_.push_back(descriptor);
  }
  return loaded;
}

}  // namespace modgraph
