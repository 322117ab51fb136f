// Private copies and their directory; see copy_directory.h and library_loader.h.
#include "copy_directory.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <boost/dll/shared_library.hpp>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <mutex>
#include <system_error>

#include "absl/synchronization/mutex.h"
#include "modgraph/loader/library_loader.h"
#include "module_files.h"

namespace modgraph {
namespace fs = std::filesystem;
using loader_internal::CopyFailed;
using loader_internal::UniqueFd;
using loader_internal::WriteAll;

namespace loader_internal {

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

}  // namespace loader_internal

namespace {

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

}  // namespace

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
  capacity.mappings = loader_internal::CountMappings();
  capacity.max_mappings = loader_internal::MaxMapCount();
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

absl::Status LibraryLoader::EnsureCopyDirectory() {
  // Loads may run on several threads (environments import concurrently).
  std::lock_guard guard(copy_dir_mutex_);
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

}  // namespace modgraph
