// Write tracking with page protection and the trap flag; see write_tracker.h.
#include "write_tracker.h"

#include <fmt/format.h>
#include <signal.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <thread>

#include "absl/status/status.h"

namespace modgraph::testing::audit_internal {
namespace {

#if defined(__x86_64__) && defined(__linux__)
constexpr bool kSupported = true;
constexpr greg_t kTrapFlag = 0x100;  // EFLAGS.TF: trap after the next instruction
#else
constexpr bool kSupported = false;
#endif

// Addresses recorded by the fault handler, handed to Drain() by flipping
// between two buffers: a writer registers in a buffer, checks that it is still
// the current one, appends, and leaves; Drain() flips, waits for the writers of
// the old buffer to leave, then reads it. Lock-free and allocation-free on the
// writer side (a signal handler).
struct Buffer {
  std::atomic<std::uint32_t> writers{0};
  std::atomic<std::size_t> count{0};
  std::atomic<std::size_t> dropped{0};
  std::atomic<std::uintptr_t> entries[WriteTracker::kCapacity];
};

struct State {
  std::vector<PageRange> pages;  // sorted, immutable while the tracker is active
  std::uintptr_t page_size = 0;
  Buffer* buffers = nullptr;  // [2], allocated once, reused
  std::atomic<int> current{0};

  bool Tracks(std::uintptr_t address) const {
    auto it = std::upper_bound(pages.begin(), pages.end(), address,
                               [](std::uintptr_t a, const PageRange& r) { return a < r.begin; });
    return it != pages.begin() && address < std::prev(it)->end;
  }

  void Record(std::uintptr_t address) {
    for (;;) {
      const int b = current.load();
      Buffer& buffer = buffers[b];
      buffer.writers.fetch_add(1);
      if (current.load() != b) {
        buffer.writers.fetch_sub(1);
        continue;
      }
      const std::size_t i = buffer.count.fetch_add(1, std::memory_order_relaxed);
      if (i < WriteTracker::kCapacity) {
        buffer.entries[i].store(address, std::memory_order_release);
      } else {
        buffer.dropped.fetch_add(1, std::memory_order_relaxed);
      }
      buffer.writers.fetch_sub(1);
      return;
    }
  }
};

State g_state_storage;                  // reused by every tracker
std::atomic<State*> g_active{nullptr};  // non-null while a tracker runs
std::atomic<int> g_in_handler{0};       // handlers that may have read g_active
Buffer* g_buffers = nullptr;            // never freed: a late handler may still touch it

struct sigaction g_previous_segv;
struct sigaction g_previous_trap;
std::once_flag g_install_once;

// Pages a thread unprotected for the instruction it is stepping over (a store
// can straddle two pages; rep-prefixed stores trap once per iteration).
constexpr int kMaxPending = 4;
thread_local std::uintptr_t tls_pending[kMaxPending];
thread_local int tls_pending_count = 0;

void Forward(const struct sigaction& previous, int sig, siginfo_t* info, void* context) {
  if ((previous.sa_flags & SA_SIGINFO) != 0 && previous.sa_sigaction != nullptr) {
    previous.sa_sigaction(sig, info, context);
  } else if (previous.sa_handler == SIG_DFL) {
    // Not ours: fall back to the default action; the instruction runs again and
    // faults (or traps) with it.
    struct sigaction fallback {};
    fallback.sa_handler = SIG_DFL;
    ::sigaction(sig, &fallback, nullptr);
  } else if (previous.sa_handler != SIG_IGN) {
    previous.sa_handler(sig);
  }
}

#if defined(__x86_64__) && defined(__linux__)
void OnSegv(int sig, siginfo_t* info, void* context) {
  g_in_handler.fetch_add(1);
  State* state = g_active.load();
  const auto address = reinterpret_cast<std::uintptr_t>(info->si_addr);
  if (state != nullptr && info->si_code == SEGV_ACCERR && state->Tracks(address) &&
      tls_pending_count < kMaxPending) {
    const int saved_errno = errno;
    state->Record(address);
    const std::uintptr_t page = address & ~(state->page_size - 1);
    ::mprotect(reinterpret_cast<void*>(page), state->page_size, PROT_READ | PROT_WRITE);
    tls_pending[tls_pending_count++] = page;
    static_cast<ucontext_t*>(context)->uc_mcontext.gregs[REG_EFL] |= kTrapFlag;
    errno = saved_errno;
    g_in_handler.fetch_sub(1);
    return;
  }
  g_in_handler.fetch_sub(1);
  Forward(g_previous_segv, sig, info, context);
}

void OnTrap(int sig, siginfo_t* info, void* context) {
  if (tls_pending_count == 0) {
    Forward(g_previous_trap, sig, info, context);
    return;
  }
  g_in_handler.fetch_add(1);
  const int saved_errno = errno;
  if (State* state = g_active.load(); state != nullptr) {
    for (int i = 0; i < tls_pending_count; ++i) {
      ::mprotect(reinterpret_cast<void*>(tls_pending[i]), state->page_size, PROT_READ);
    }
  }
  tls_pending_count = 0;
  static_cast<ucontext_t*>(context)->uc_mcontext.gregs[REG_EFL] &= ~kTrapFlag;
  errno = saved_errno;
  g_in_handler.fetch_sub(1);
}

void InstallHandlers() {
  struct sigaction action {};
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
  action.sa_sigaction = &OnSegv;
  ::sigaction(SIGSEGV, &action, &g_previous_segv);
  action.sa_sigaction = &OnTrap;
  ::sigaction(SIGTRAP, &action, &g_previous_trap);
}
#endif

// Sets `protection` on the first `count` ranges of `pages`.
void Protect(const std::vector<PageRange>& pages, int protection, std::size_t count) {
  for (std::size_t i = 0; i < count; ++i) {
    ::mprotect(reinterpret_cast<void*>(pages[i].begin), pages[i].end - pages[i].begin, protection);
  }
}

}  // namespace

bool WriteTracker::Supported() { return kSupported; }

absl::StatusOr<std::unique_ptr<WriteTracker>> WriteTracker::Start(std::vector<PageRange> pages) {
  if (!kSupported) {
    return absl::FailedPreconditionError(
        "write tracking needs x86-64 Linux (single-stepping one instruction)");
  }
  if (g_active.load() != nullptr) {
    return absl::FailedPreconditionError(
        "another module-state audit is tracking writes in this process; run one at a time");
  }
#if defined(__x86_64__) && defined(__linux__)
  std::call_once(g_install_once, &InstallHandlers);
#endif
  if (g_buffers == nullptr) g_buffers = new Buffer[2];
  std::sort(pages.begin(), pages.end(),
            [](const PageRange& a, const PageRange& b) { return a.begin < b.begin; });
  State& state = g_state_storage;
  state.pages = std::move(pages);
  state.page_size = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  state.buffers = g_buffers;
  for (int b = 0; b < 2; ++b) {
    g_buffers[b].count = 0;
    g_buffers[b].dropped = 0;
  }
  g_active.store(&state);
  for (std::size_t i = 0; i < state.pages.size(); ++i) {
    const PageRange& range = state.pages[i];
    if (::mprotect(reinterpret_cast<void*>(range.begin), range.end - range.begin, PROT_READ) != 0) {
      const int error = errno;
      g_active.store(nullptr);
      Protect(state.pages, PROT_READ | PROT_WRITE, i);
      return absl::InternalError(fmt::format(
          "cannot write-protect module pages {:#x}-{:#x} to track writes: {}; run without "
          "write tracking",
          range.begin, range.end, std::strerror(error)));
    }
  }
  return std::unique_ptr<WriteTracker>(new WriteTracker());
}

WriteTracker::~WriteTracker() {
  State& state = g_state_storage;
  g_active.store(nullptr);
  // A handler that read the old value may still re-protect a page: wait for it.
  while (g_in_handler.load() != 0) std::this_thread::yield();
  Protect(state.pages, PROT_READ | PROT_WRITE, state.pages.size());
}

std::size_t WriteTracker::Drain(std::vector<std::uintptr_t>& out) {
  State& state = g_state_storage;
  const int old = state.current.load();
  state.current.store(1 - old);
  Buffer& buffer = state.buffers[old];
  while (buffer.writers.load() != 0) std::this_thread::yield();
  const std::size_t count = std::min(buffer.count.load(), kCapacity);
  for (std::size_t i = 0; i < count; ++i) {
    out.push_back(buffer.entries[i].load(std::memory_order_acquire));
  }
  buffer.count.store(0);
  return buffer.dropped.exchange(0);
}

}  // namespace modgraph::testing::audit_internal
