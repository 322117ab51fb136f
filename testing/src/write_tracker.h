// write_tracker.h — every write to a set of pages, including writes that store
// the value already there.
//
// Comparing snapshots misses a write that leaves the bytes as they were (a
// vector cleared and refilled to the same size, a mutex locked and unlocked),
// and such state is still shared between the requests that write it. The
// tracker write-protects the pages (mprotect); a write faults (SIGSEGV,
// SEGV_ACCERR), the handler records the faulting address, lets the page be
// written, and sets the x86-64 trap flag so that the CPU stops after that one
// instruction (SIGTRAP, TRAP_TRACE), where the page is protected again. So
// every writing instruction is recorded once per page it writes, on whatever
// thread it runs. Faults outside the tracked pages go to the handler that was
// installed before.
//
//   absl::StatusOr<std::unique_ptr<WriteTracker>> tracker = WriteTracker::Start(pages);
//   ... module code runs ...
//   std::vector<std::uintptr_t> written;
//   (*tracker)->Drain(written);  // addresses written since the last Drain
//
// Cost: two signals and two mprotect calls per writing instruction (a few
// microseconds); nothing for reads. Only on x86-64 Linux (Supported()).
// Limits: the kernel does not fault on behalf of a system call, which gets
// EFAULT instead: a module that passes a tracked global to read(2) or recv(2)
// sees that call fail while tracking is on. One tracker per process at a time.
#ifndef MODGRAPH_TESTING_SRC_WRITE_TRACKER_H_
#define MODGRAPH_TESTING_SRC_WRITE_TRACKER_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"

namespace modgraph::testing::audit_internal {

// [begin, end), both multiples of the page size.
struct PageRange {
  std::uintptr_t begin = 0;
  std::uintptr_t end = 0;
};

class WriteTracker {
 public:
  // True where the tracker can step over a single instruction (x86-64 Linux).
  static bool Supported();

  // Protects `pages` (read-only) and starts recording writes to them.
  // FailedPrecondition if another tracker is active or tracking is not
  // supported; the mprotect error otherwise (nothing stays protected).
  static absl::StatusOr<std::unique_ptr<WriteTracker>> Start(std::vector<PageRange> pages);

  // Makes the pages writable again and stops recording.
  ~WriteTracker();
  WriteTracker(const WriteTracker&) = delete;
  WriteTracker& operator=(const WriteTracker&) = delete;

  // Appends the addresses written since the previous call, in the order they
  // were recorded, and returns how many were dropped because more than
  // kCapacity writes happened in between.
  std::size_t Drain(std::vector<std::uintptr_t>& out);

  static constexpr std::size_t kCapacity = 1 << 16;

 private:
  WriteTracker() = default;
};

}  // namespace modgraph::testing::audit_internal

#endif  // MODGRAPH_TESTING_SRC_WRITE_TRACKER_H_
