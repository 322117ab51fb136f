// The loader's front door; see module_files.h.
#include "module_files.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <linux/openat2.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

namespace modgraph::loader_internal {
namespace fs = std::filesystem;

// openat2(RESOLVE_BENEATH): `path` may not leave `dir`, through ".." or a
// symlink. Kernels before 5.6 lack openat2: there `path` must be a plain
// relative path and its last component may not be a symlink. Opens for
// reading are O_NONBLOCK: opening a FIFO or a device planted in a root would
// otherwise block until someone opens its other end (reads of a regular file
// ignore it; O_PATH opens take no other flags).
int OpenBeneath(int dir, const fs::path& path, std::uint64_t flags) {
  if ((flags & O_PATH) == 0) flags |= O_NONBLOCK;
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

// Out of file descriptors: every memfd copy holds one, and each load opens two.
absl::Status OutOfDescriptors(std::string_view environment, const fs::path& source) {
  struct rlimit limit {};
  ::getrlimit(RLIMIT_NOFILE, &limit);
  return absl::ResourceExhaustedError(fmt::format(
      "environment '{}': cannot load '{}': this process is out of file descriptors (the limit is "
      "{}; each memfd copy keeps one open); raise it with `ulimit -n`, or use temp-file copies",
      environment, source.string(), limit.rlim_cur));
}

}  // namespace modgraph::loader_internal
