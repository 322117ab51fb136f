// loader/src/module_files.h — the loader's front door: opening a module file
// beneath its root without following symlinks out of it, owner and mode checks
// on what was opened (sshd's rule), and reads and writes that do not reopen a
// file by name. Internal to the loader (library_loader.cc, copy_directory.cc,
// discovery.cc).
//
//   UniqueFd fd(OpenBeneath(root_fd, "head.so", O_RDONLY));
//   absl::StatusOr<std::string> bytes = ReadAt(fd.get(), size, 0, path);
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace modgraph::loader_internal {

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
int OpenBeneath(int dir, const std::filesystem::path& path, std::uint64_t flags);

// sshd's rule for key paths: owned by the running user or root, and not
// writable by group or others (a sticky parent directory may be).
absl::Status CheckOwnerAndMode(const struct stat& st, const std::filesystem::path& path,
                               std::string_view what, bool sticky_parent_ok, bool allow_writable,
                               std::string_view environment);

// The root and every directory above it must be safe, or someone could swap
// the whole root.
absl::Status CheckRootAncestors(const std::filesystem::path& canonical_root, bool allow_writable,
                                std::string_view environment);

// Up to `size` bytes at `offset` (fewer if the file is shorter).
absl::StatusOr<std::string> ReadAt(int fd, std::size_t size, off_t offset,
                                   const std::filesystem::path& path);

// 0, or the errno of the failed write.
int WriteAll(int fd, std::string_view bytes);

// Out of file descriptors: every memfd copy holds one, and each load opens two.
absl::Status OutOfDescriptors(std::string_view environment, const std::filesystem::path& source);

}  // namespace modgraph::loader_internal
