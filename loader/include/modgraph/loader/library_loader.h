// library_loader.h — loads module libraries as real, independent instances.
//
// dlopen returns the same handle for the same path, and dedups hard links by
// inode, so an environment that wants its own globals needs its own file. The
// loader gives every (environment, library) pair a private copy — a temp file
// whose name says which environment and module it is (gdb, perf and sanitizer
// output stay readable), or optionally a memfd — opens it RTLD_LOCAL|RTLD_NOW and
// removes it when the library is unloaded.
//
// Module roots are untrusted input. A library is opened once, relative to a
// descriptor of its module root (no path component may leave the root), its
// owner and mode are checked on that descriptor, its bytes are read from it,
// inspected (modgraph/loader/internal/elf.h) and copied, and only the private
// copy — which nobody else can write — is handed to dlopen. What is checked is
// what runs. Descriptors are discovered from the dynamic symbol table, as dlsym
// sees it.
//
//   LibraryLoader loader;
//   absl::StatusOr<std::shared_ptr<LoadedLibrary>> lib =
//       loader.Load("/opt/app/modules", "head.so", {.environment = "ssr", .label = "head"});
//   for (const modgraph_module_descriptor* d : (*lib)->descriptors()) ...
#ifndef MODGRAPH_LOADER_LIBRARY_LOADER_H_
#define MODGRAPH_LOADER_LIBRARY_LOADER_H_

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "modgraph/loader/module_abi.h"

namespace boost::dll {
class shared_library;
}

namespace modgraph {

// How a private copy of a library is made.
enum class CopyMode {
  kTempFile,  // default: a real path naming environment and module
  kMemfd,     // anonymous memory file; nothing on disk
  kNone,      // load the file itself: one instance per process (tests, tools)
};

// One loaded copy of a module library. Destroying it runs dlclose and removes the
// private copy; keep it alive while anything from the library lives.
class LoadedLibrary {
 public:
  ~LoadedLibrary();
  LoadedLibrary(const LoadedLibrary&) = delete;
  LoadedLibrary& operator=(const LoadedLibrary&) = delete;

  // The file the copy was made from.
  std::filesystem::path source() const { return source_; }
  // The file actually handed to dlopen (the private copy).
  std::filesystem::path loaded_path() const { return loaded_path_; }
  // Removes the private copy from the file system now and keeps the library
  // mapped (an unlinked file stays mapped): for a library that is unloaded from
  // its environment but may still have code or objects in use.
  void RemoveCopy();

  // Every module descriptor the library exports, in discovery order.
  std::span<const modgraph_module_descriptor* const> descriptors() const { return descriptors_; }
  // SHA-256 (FIPS 180-4) of the bytes handed to dlopen, as 64 lower-case hex
  // digits: the identity of this build of the library, whatever its path.
  const std::string& content_sha256() const { return content_sha256_; }

 private:
  friend class LibraryLoader;
  LoadedLibrary() = default;

  // Kept as strings: a std::filesystem::path also keeps its components, about
  // 400 bytes more per library, and the dynamic linker's walks over thousands of
  // libraries slow down with every byte between their link maps
  // (docs/benchmarks.md, Scale).
  std::string source_;
  std::string loaded_path_;
  bool remove_on_unload_ = false;
  int memfd_ = -1;
  std::unique_ptr<boost::dll::shared_library> library_;
  std::vector<const modgraph_module_descriptor*> descriptors_;
  std::string content_sha256_;
};

struct LoadRequest {
  std::string environment;  // names the copy; used in error messages
  std::string label;        // usually the module id or "bundle"
  // Called with the path of the checked private copy (or of the checked file
  // itself) just before dlopen; an error stops the load and the copy is removed.
  // Environments preflight here (preflight.h), so the helper runs exactly the
  // bytes that would load.
  std::function<absl::Status(const std::filesystem::path& copy)> before_dlopen;
};

// What loading a topology is expected to take from the process and the copy
// directory (Topology::PlanCapacity estimates it from the module roots).
struct CapacityPlan {
  std::uint64_t copies = 0;    // private copies to make
  std::uint64_t bytes = 0;     // their total size
  std::uint64_t mappings = 0;  // memory mappings they add (about 5 per copy)
};

// What the machine offers (LibraryLoader::ReadCapacity reads it).
struct Capacity {
  std::filesystem::path copy_root;  // where copies go
  std::uint64_t free_bytes = 0;     // available in its file system
  std::uint64_t mappings = 0;       // this process's mappings now (/proc/self/maps)
  std::uint64_t max_mappings = 0;   // vm.max_map_count
};

// One warning per limit `plan` would exceed, each with its fix (MODGRAPH_COPY_DIR
// or a larger tmpfs; `sysctl vm.max_map_count`); empty when it fits.
std::vector<std::string> CapacityWarnings(const CapacityPlan& plan, const Capacity& capacity);

class LibraryLoader {
 public:
  struct Options {
    CopyMode copy_mode = CopyMode::kTempFile;
    // Where temp copies go; empty = $MODGRAPH_COPY_DIR, else $XDG_RUNTIME_DIR, else
    // /dev/shm if it allows executables (memory-backed: creating files there is
    // cheap), else $TMPDIR or /tmp. Each process gets its own subdirectory,
    // removed at exit; those of dead processes are swept.
    std::filesystem::path temp_root;
    // Load libraries with GNU unique symbols anyway (only to demonstrate the trap:
    // their copies share those symbols' state).
    bool allow_gnu_unique = false;
    // Load libraries that export symbols other than their descriptor aliases
    // (the dynamic linker may bind them to the host's or another copy's
    // definition; only to demonstrate that trap).
    bool allow_interposable_exports = false;
    // Accept module files, roots and their parent directories that group or
    // others may write, as long as the running user owns them (a shared build
    // tree on a single-user machine). Off: such paths are refused.
    bool allow_writable_module_paths = false;
    // Tests only: runs after the file has been opened and its owner and mode
    // checked, before its bytes are read — where a swap of the file by name
    // would have to happen to change what loads.
    std::function<void(const std::filesystem::path& file)> after_checks_for_test;
  };

  LibraryLoader();
  explicit LibraryLoader(Options options);
  ~LibraryLoader();

  // Loads `file`, a path relative to the module root `root` that must stay
  // inside it (symlinks may point elsewhere inside the root, never out).
  // Refused, before any byte of the library runs:
  //   - a root, a directory between it and the file, or a parent directory of
  //     the root that is owned by another user (other than root) or writable
  //     by group or others — as sshd checks key paths; a sticky directory such
  //     as /tmp is accepted as a parent (others cannot rename what they do not
  //     own) — and a file likewise (PermissionDenied, with the chmod that fixes
  //     it; see Options::allow_writable_module_paths);
  //   - anything not a regular file, not ELF (decided on the first 64 bytes),
  //     not a shared object for this machine, or malformed (InvalidArgument);
  //   - GNU unique symbols, exports other than the descriptor aliases, or
  //     thread-local storage of its own in the static TLS model
  //     (FailedPrecondition, naming the build flag that fixes it).
  // Then the private copy is made from the bytes read, dlopened, and its
  // descriptors are checked (ABI version, alias derived from a valid id).
  // NotFound when the file does not exist. Every error names the file and the
  // environment and says what to do. Safe to call from several threads at once.
  absl::StatusOr<std::shared_ptr<LoadedLibrary>> Load(const std::filesystem::path& root,
                                                      const std::filesystem::path& file,
                                                      const LoadRequest& request);
  // Load(source.parent_path(), source.filename(), request).
  absl::StatusOr<std::shared_ptr<LoadedLibrary>> Load(const std::filesystem::path& source,
                                                      const LoadRequest& request);

  // The copy directory's free space and the process's mapping headroom, read now.
  Capacity ReadCapacity() const;

  // Reads each module file once per batch. While a Batch is open (batches
  // nest), a file that opens with the identity and version of one already
  // loaded in the batch — device, inode, size, mtime and ctime as fstat(2)
  // reports them — reuses the bytes read, inspected (elf.h) and hashed then:
  // a topology loads each module file once per environment that has it.
  // Everything else about the load is as outside a batch: the root, owner and
  // mode checks on the file just opened, the export and TLS checks, a new
  // private copy written from those bytes, its descriptors checked. What loads
  // is always bytes that were checked; a file rewritten during the batch with
  // no change to its size or times (within the file system's timestamp
  // granularity) loads as first read. At most 256 MiB of bytes are kept (larger
  // sets are read again); they are dropped when the outermost batch ends. Not
  // used in CopyMode::kNone, where dlopen reads the file itself.
  //
  //   { LibraryLoader::Batch batch(loader); for (...) loader.Load(root, file, request); }
  class Batch {
   public:
    explicit Batch(LibraryLoader& loader);
    ~Batch();
    Batch(const Batch&) = delete;
    Batch& operator=(const Batch&) = delete;

   private:
    LibraryLoader& loader_;
  };

  // Module files read and inspected so far by this loader (a load that reused
  // a batch's bytes does not count).
  std::uint64_t files_read() const noexcept;

  // The per-process directory holding temp copies: empty until the first copy
  // is made, then fixed for the loader's life.
  const std::filesystem::path& copy_directory() const { return copy_dir_; }

 private:
  absl::StatusOr<std::filesystem::path> MakeTempCopy(std::string_view bytes,
                                                     const LoadRequest& request);
  absl::Status EnsureCopyDirectory();
  // A descriptor of `root`, opened and checked (owner, mode, parents) on first use.
  absl::StatusOr<int> OpenRoot(const std::filesystem::path& root, const std::string& env,
                               const std::filesystem::path& source);

  Options options_;
  std::mutex copy_dir_mutex_;  // creating copy_dir_; set once, then read freely
  std::filesystem::path copy_dir_;
  int copy_dir_lock_ = -1;  // flock'ed for this loader's life: the directory is in use
  std::mutex roots_mutex_;
  std::map<std::string, int> root_fds_;  // module root → checked O_PATH descriptor
  std::atomic<std::uint64_t> copy_sequence_{0};
  struct BatchImages;  // library_loader.cc
  std::unique_ptr<BatchImages> batch_;
};

// The alias a module with this id must export: "modgraph_module_" + id, '-' → '_'.
std::string DescriptorAliasFor(std::string_view module_id);

}  // namespace modgraph

#endif  // MODGRAPH_LOADER_LIBRARY_LOADER_H_
