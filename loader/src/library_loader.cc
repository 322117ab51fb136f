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
#include <linux/openat2.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <boost/dll/shared_library.hpp>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <system_error>

#include "absl/synchronization/mutex.h"
#include "modgraph/loader/internal/discovery.h"
#include "modgraph/loader/internal/elf.h"
#include "modgraph/loader/module_id.h"

namespace modgraph {
namespace fs = std::filesystem;

std::string DescriptorAliasFor(std::string_view module_id) {
  std::string alias = fmt::format("{}{}", MODGRAPH_ALIAS_PREFIX, module_id);
  std::replace(alias.begin(), alias.end(), '-', '_');
  return alias;
}

namespace {

// Module files are small; a file this large is not a module (and is not read).
constexpr off_t kMaxLibraryBytes = off_t{1} << 30;

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    std::swap(fd_, other.fd_);
    return *this;
  }
  ~UniqueFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_ = -1;
};

// openat2(RESOLVE_BENEATH): `path` may not leave `dir`, through ".." or a
// symlink. Kernels before 5.6 lack openat2: there `path` must be a plain
// relative path and its last component may not be a symlink.
int OpenBeneath(int dir, const fs::path& path, std::uint64_t flags) {
  open_how how{};
  how.flags = flags | O_CLOEXEC | O_NOCTTY;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  const long fd = ::syscall(SYS_openat2, dir, path.c_str(), &how, sizeof how);
  if (fd >= 0 || errno != ENOSYS) return static_cast<int>(fd);
  for (const fs::path& part : path) {
    if (part == ".." || path.is_absolute()) {
      errno = EXDEV;
      return -1;
    }
  }
  return ::openat(dir, path.c_str(), static_cast<int>(flags) | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
}

// sshd's rule for key paths: owned by the running user or root, and not
// writable by group or others. A sticky directory (e.g. /tmp) may be writable
// by others when it is only a parent: they cannot rename or remove entries
// they do not own.
absl::Status CheckOwnerAndMode(const struct stat& st, const fs::path& path, std::string_view what,
                               bool sticky_parent_ok, bool allow_writable,
                               std::string_view environment) {
  const uid_t me = ::geteuid();
  if (st.st_uid != me && st.st_uid != 0) {
    return absl::PermissionDeniedError(fmt::format(
        "environment '{}': refusing {} '{}': it is owned by uid {}, neither you (uid {}) nor "
        "root, so its owner decides what code runs here; `chown {} {}` or move the modules to "
        "a directory you own",
        environment, what, path.string(), st.st_uid, me, me, path.string()));
  }
  mode_t unsafe = st.st_mode & (S_IWGRP | S_IWOTH);
  if (sticky_parent_ok && (st.st_mode & S_ISVTX) != 0) unsafe = 0;
  if (unsafe == 0 || (allow_writable && st.st_uid == me)) return absl::OkStatus();
  const char* who = (unsafe & S_IWOTH) != 0
                        ? (unsafe & S_IWGRP) != 0 ? "group and others" : "others"
                        : "its group";
  return absl::PermissionDeniedError(fmt::format(
      "environment '{}': refusing {} '{}': it is writable by {} (mode {:o}), who could replace "
      "the code this process runs; run `chmod go-w {}`{}",
      environment, what, path.string(), who, st.st_mode & 07777, path.string(),
      st.st_uid == me ? " (or, since you own it, allow it: modgraph --allow-writable-module-paths, "
                        "LibraryLoader::Options::allow_writable_module_paths)"
                      : ""));
}

// The root and every directory above it must be safe, or someone could swap
// the whole root.
absl::Status CheckRootAncestors(const fs::path& canonical_root, bool allow_writable,
                                std::string_view environment) {
  for (fs::path dir = canonical_root.parent_path();; dir = dir.parent_path()) {
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) {
      return absl::ErrnoToStatus(
          errno, fmt::format("environment '{}': cannot stat '{}'", environment, dir.string()));
    }
    if (absl::Status ok = CheckOwnerAndMode(st, dir, "module root's parent directory",
                                            /*sticky_parent_ok=*/true, allow_writable, environment);
        !ok.ok()) {
      return ok;
    }
    if (dir == dir.root_path()) return absl::OkStatus();
  }
}

absl::StatusOr<std::string> ReadAt(int fd, std::size_t size, off_t offset, const fs::path& path) {
  std::string bytes(size, '\0');
  std::size_t done = 0;
  while (done < size) {
    const ssize_t n = ::pread(fd, bytes.data() + done, size - done, offset + off_t(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return absl::ErrnoToStatus(errno, fmt::format("read '{}'", path.string()));
    if (n == 0) break;  // shorter than fstat said: it changed under us
    done += static_cast<std::size_t>(n);
  }
  bytes.resize(done);
  return bytes;
}

// 0, or the errno of the failed write.
int WriteAll(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return n < 0 ? errno : EIO;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return 0;
}

// File names carry environment and module; keep them to a safe alphabet.
std::string SafeName(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) c = '_';
  }
  return out;
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

// Copy directories are "modgraph-<pid>-XXXXXX". Their process keeps each one
// flock'ed (the directory itself) for as long as it uses it, so a directory
// whose lock can be taken belongs to nobody alive — whatever PID namespace its
// maker ran in, which the pid in its name cannot tell.
void SweepStaleCopyDirectories(const fs::path& root) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    if (!entry.path().filename().string().starts_with("modgraph-")) continue;
    const UniqueFd dir(
        ::open(entry.path().c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    struct stat st {};
    if (dir.get() < 0 || ::fstat(dir.get(), &st) != 0 || st.st_uid != ::geteuid()) continue;
    if (::flock(dir.get(), LOCK_EX | LOCK_NB) != 0) continue;  // its owner is alive
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

// Why a write into the copy directory failed, with the fix when it is a limit.
absl::Status CopyFailed(int error, const fs::path& copy, std::string_view environment) {
  if (error == ENOSPC || error == EDQUOT) {
    struct statvfs fs_info {};
    const fs::path dir = copy.parent_path().parent_path();
    const unsigned long long free_bytes =
        ::statvfs(dir.c_str(), &fs_info) == 0 ? fs_info.f_bavail * fs_info.f_frsize : 0;
    return absl::ResourceExhaustedError(fmt::format(
        "environment '{}': the copy directory '{}' is full ({} bytes free) and cannot hold "
        "another private copy; point MODGRAPH_COPY_DIR at a larger directory (or grow it, e.g. "
        "`mount -o remount,size=1G /dev/shm`)",
        environment, dir.string(), free_bytes));
  }
  return absl::ErrnoToStatus(error, fmt::format("environment '{}': cannot write the private copy "
                                                "'{}'",
                                                environment, copy.string()));
}

// Out of file descriptors: every memfd copy holds one, and each load opens two.
absl::Status OutOfDescriptors(std::string_view environment, const fs::path& source) {
  struct rlimit limit {};
  ::getrlimit(RLIMIT_NOFILE, &limit);
  return absl::ResourceExhaustedError(fmt::format(
      "environment '{}': cannot load '{}': this process is out of file descriptors (the limit is "
      "{}; each memfd copy keeps one open); raise it with `ulimit -n`, or use temp-file copies",
      environment, source.string(), limit.rlim_cur));
}

std::size_t CountMappings() {
  std::ifstream maps("/proc/self/maps");
  return static_cast<std::size_t>(
      std::count(std::istreambuf_iterator<char>(maps), std::istreambuf_iterator<char>(), '\n'));
}

std::size_t MaxMapCount() {
  std::ifstream in("/proc/sys/vm/max_map_count");
  std::size_t value = 0;
  in >> value;
  return value;
}

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

namespace loader_internal {

ExportClasses ClassifyExports(const elf::SharedObject& library) {
  ExportClasses classes;
  for (const elf::DynamicSymbol& symbol : library.exports) {
    if (symbol.binding == STB_GNU_UNIQUE) {
      classes.gnu_unique.push_back(symbol.name);
    } else if (symbol.name.starts_with(MODGRAPH_ALIAS_PREFIX) && symbol.type == STT_OBJECT &&
               symbol.size == sizeof(void*)) {
      classes.descriptor_aliases.push_back(symbol.name);
    } else {
      classes.interposable.push_back(symbol.name);
    }
  }
  std::sort(classes.interposable.begin(), classes.interposable.end());
  return classes;
}

}  // namespace loader_internal

std::vector<std::string> FindGnuUniqueSymbols(const fs::path& path) {
  const UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  struct stat st {};
  if (fd.get() < 0 || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) ||
      st.st_size > kMaxLibraryBytes) {
    return {};
  }
  absl::StatusOr<std::string> bytes =
      ReadAt(fd.get(), static_cast<std::size_t>(st.st_size), 0, path);
  if (!bytes.ok()) return {};
  absl::StatusOr<elf::SharedObject> so = elf::InspectSharedObject(*bytes);
  return so.ok() ? loader_internal::ClassifyExports(*so).gnu_unique : std::vector<std::string>{};
}

std::vector<std::string> CapacityWarnings(const CapacityPlan& plan, const Capacity& capacity) {
  std::vector<std::string> warnings;
  if (plan.bytes > capacity.free_bytes) {
    warnings.push_back(fmt::format(
        "the topology plans up to {} private copies ({} bytes) but the copy directory's file "
        "system ('{}') has {} bytes free: loading will fail with ENOSPC; point MODGRAPH_COPY_DIR "
        "at a larger directory (or grow it, e.g. `mount -o remount,size=1G /dev/shm`)",
        plan.copies, plan.bytes, capacity.copy_root.string(), capacity.free_bytes));
  }
  if (capacity.max_mappings > 0 && capacity.mappings + plan.mappings > capacity.max_mappings) {
    warnings.push_back(fmt::format(
        "the topology plans up to {} private copies, about {} memory mappings more than this "
        "process's {} — past vm.max_map_count = {}: loading will fail; raise it (`sysctl -w "
        "vm.max_map_count={}`) or use bundled environments for large topologies",
        plan.copies, plan.mappings, capacity.mappings, capacity.max_mappings,
        std::max<std::uint64_t>(capacity.max_mappings * 2,
                                (capacity.mappings + plan.mappings) * 2)));
  }
  return warnings;
}

Capacity LibraryLoader::ReadCapacity() const {
  Capacity capacity;
  capacity.copy_root = options_.temp_root.empty() ? DefaultCopyRoot() : options_.temp_root;
  struct statvfs info {};
  if (options_.copy_mode == CopyMode::kTempFile &&
      ::statvfs(capacity.copy_root.c_str(), &info) == 0) {
    capacity.free_bytes = std::uint64_t{info.f_bavail} * info.f_frsize;
  } else {
    capacity.free_bytes = UINT64_MAX;  // memfd or no copies: no directory to fill
  }
  capacity.mappings = CountMappings();
  capacity.max_mappings = MaxMapCount();
  return capacity;
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
  for (const auto& [path, fd] : root_fds_) ::close(fd);
  if (copy_dir_.empty()) return;
  // Libraries may outlive the loader: their own destructors remove their
  // copies, and the directory (still locked) goes at exit. Otherwise it goes now.
  std::error_code ec;
  if (!fs::is_empty(copy_dir_, ec)) return;  // the lock stays held until exit
  fs::remove(copy_dir_, ec);
  ::close(copy_dir_lock_);
}

absl::Status LibraryLoader::EnsureCopyDirectory() {
  if (!copy_dir_.empty()) return absl::OkStatus();
  const fs::path root = options_.temp_root.empty() ? DefaultCopyRoot() : options_.temp_root;
  SweepStaleCopyDirectories(root);
  // A sweep elsewhere may take a new directory's lock between mkdtemp and our
  // flock; then the directory is (being) removed: make another.
  for (int attempt = 0; attempt < 8; ++attempt) {
    std::string pattern = (root / fmt::format("modgraph-{}-XXXXXX", ::getpid())).string();
    if (::mkdtemp(pattern.data()) == nullptr) {
      return absl::ErrnoToStatus(
          errno, fmt::format("cannot create a copy directory under '{}'; set MODGRAPH_COPY_DIR "
                             "(or TMPDIR) to a writable directory",
                             root.string()));
    }
    UniqueFd lock(::open(pattern.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    struct stat st {};
    if (lock.get() >= 0 && ::flock(lock.get(), LOCK_EX | LOCK_NB) == 0 &&
        ::fstat(lock.get(), &st) == 0 && st.st_nlink > 0) {
      copy_dir_ = pattern;
      copy_dir_lock_ = lock.release();
      Janitor().Add(copy_dir_);
      return absl::OkStatus();
    }
  }
  return absl::UnavailableError(
      fmt::format("cannot hold a copy directory under '{}': another process keeps removing them",
                  root.string()));
}

absl::StatusOr<fs::path> LibraryLoader::MakeTempCopy(std::string_view bytes,
                                                     const LoadRequest& request) {
  if (absl::Status ready = EnsureCopyDirectory(); !ready.ok()) return ready;
  // The sequence number keeps a reloaded copy from reusing a path dlopen knows.
  const fs::path copy = copy_dir_ / fmt::format("{}#{}.{}.so", SafeName(request.environment),
                                                SafeName(request.label), ++copy_sequence_);
  const UniqueFd fd(::open(copy.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0500));
  if (fd.get() < 0) return CopyFailed(errno, copy, request.environment);
  if (const int error = WriteAll(fd.get(), bytes); error != 0) {
    std::error_code ec;
    fs::remove(copy, ec);
    return CopyFailed(error, copy, request.environment);
  }
  return copy;
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
        "environment '{}': '{}' is {} bytes, more than any module library ({} bytes); remove it "
        "from the module roots",
        env, source.string(), st.st_size, kMaxLibraryBytes));
  }
  absl::StatusOr<std::string> bytes =
      ReadAt(fd.get(), static_cast<std::size_t>(st.st_size), 0, source);
  if (!bytes.ok()) return bytes.status();
  absl::StatusOr<elf::SharedObject> inspected = elf::InspectSharedObject(*bytes);
  if (!inspected.ok()) return InspectionFailed(inspected.status(), env, source);
  const elf::SharedObject& so = *inspected;

  const loader_internal::ExportClasses exports = loader_internal::ClassifyExports(so);
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
  loaded->source_ = source;
  switch (options_.copy_mode) {
    case CopyMode::kTempFile: {
      absl::StatusOr<fs::path> copy = MakeTempCopy(*bytes, request);
      if (!copy.ok()) return copy.status();
      loaded->loaded_path_ = *copy;
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
      if (const int error = WriteAll(loaded->memfd_, *bytes); error != 0) {
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
      loaded->loaded_path_, dll::load_mode::rtld_local | dll::load_mode::rtld_now, dl_error);
  if (dl_error) {
    // Boost.DLL clears dlerror(); a second attempt (failure path only) recovers it.
    void* retry = ::dlopen(loaded->loaded_path_.c_str(), RTLD_NOW | RTLD_LOCAL);
    const char* why = retry == nullptr ? ::dlerror() : nullptr;
    if (retry != nullptr) ::dlclose(retry);
    return DlopenFailed(why != nullptr ? why : dl_error.message(), env, source);
  }
  loaded->library_ = std::move(library);
  if (options_.copy_mode == CopyMode::kNone) loaded->loaded_path_ = source;

  for (const std::string& alias : aliases) {
    const void* address = loaded->library_->get<const void*>(alias);
    const auto* descriptor = static_cast<const modgraph_module_descriptor*>(address);
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
    const std::string where = fmt::format("descriptor {} of '{}'", alias, source.string());
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
