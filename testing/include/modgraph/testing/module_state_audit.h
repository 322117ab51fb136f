// modgraph/testing/module_state_audit.h — module-level state written by more
// than one request, whether or not it sits behind a slot.
//
// The sentinel sees what goes through accessor slots. Module state that is not
// behind one — a cache, a counter, a header-only singleton, a vector a default
// accessor hands out — is invisible to it, and ThreadSanitizer cannot see two
// requests interleaving on one io_context thread either. The audit looks at
// the memory itself: every loaded copy of a module library has its own
// writable segments (PT_LOAD with PF_W, minus PT_GNU_RELRO, which is read-only
// after relocation), found at run time with dl_iterate_phdr. At each
// scheduling point — each time one request's coroutine resumes or suspends on
// the io_context — the audit compares those bytes with the snapshot taken at
// the previous point and attributes every changed range to the request that
// ran in between. Write tracking (write_tracker.h, on by default on x86-64
// Linux) also catches writes that store the value already there: a vector
// cleared and refilled to the same size, a mutex locked and unlocked. Ranges
// are named from the module file's symbol table (.symtab when present, else
// the dynamic symbols, else section + offset). State written by two or more
// requests is a finding: environment, module, symbol, bytes, request ids.
//
//   auto audit = ModuleStateAudit::Start(*topology);   // after the pages are loaded
//   (*audit)->EnterSlice(7); ... request 7 runs ...; (*audit)->LeaveSlice();
//   for (const ModuleStateFinding& f : (*audit)->Findings()) fmt::print("{}\n", Describe(f));
//
// FireConcurrent() (testkit.h) runs it at every scheduling point of its runs;
// `modgraph probe`, `parity` and `serve --audit` print its findings.
//
// Not audited: each slot's cell (the host writes it when a provider
// registers), state a module declares it shares on purpose
// (MODGRAPH_SHARED_STATE in its descriptor; `modgraph doctor` lists it), the
// dynamic linker's .got/.got.plt, and modgraph_core's own bookkeeping (the
// context anchor, the sentinel, the key and state-kind registries live in the
// core library, which is not a module copy). Not visible: heap memory reached
// through a module global and changed in place (the elements of a global
// std::vector, the nodes of a global std::map) — only the global's own bytes
// are audited — and a module's thread_local state.
//
// Cost per scheduling point: one memcmp of every watched byte (a few hundred
// bytes per module copy), plus two signals per writing instruction while write
// tracking is on (docs/benchmarks.md). One audit per process at a time; do not
// reload or unload modules of the topology while it runs.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "modgraph/environments/topology.h"
#include "modgraph/pages/page_host.h"
#include "modgraph/server/page_routes.h"
#include "modgraph/server/router.h"

namespace modgraph::testing {

// Module-level state that two or more requests wrote.
struct ModuleStateFinding {
  std::string environment;
  std::vector<std::string> instances;  // the copy's instances: one, or a bundle's several
  std::string library;                 // the loaded copy (temp file) holding the state
  std::string symbol;                  // demangled name, or "<section>+0x<offset>"
  std::string section;                 // e.g. ".bss", ".data"; may be empty
  std::uint64_t offset = 0;            // of the symbol (or word) from the copy's load base
  std::uint64_t size = 0;              // bytes of the symbol (or the 8-byte word)
  // Byte ranges [first, second) within the symbol that changed value, widened
  // to whole 8-byte words (so the report does not depend on heap addresses).
  std::vector<std::pair<std::uint64_t, std::uint64_t>> changed;
  // True when a write stored the value already there (seen by write tracking).
  bool rewritten_unchanged = false;
  std::vector<std::uint64_t> requests;  // the requests that wrote it, ascending
};

// One paragraph naming environment, instance, symbol, bytes and requests, and
// what to do (request state, a slot with a provider, or MODGRAPH_SHARED_STATE).
std::string Describe(const ModuleStateFinding& finding);

struct AuditOptions {
  // Also catch writes that leave the bytes unchanged (x86-64 Linux; elsewhere
  // the audit compares snapshots only). System calls that write into a module
  // global fail with EFAULT while it is on.
  bool track_writes = true;
};

class ModuleStateAudit {
 public:
  // Watches every instance loaded in `topology` now, and takes the first
  // snapshot. FailedPrecondition when another audit tracks writes in this
  // process; NotFound when a loaded copy is not mapped (an internal error).
  static absl::StatusOr<std::unique_ptr<ModuleStateAudit>> Start(const Topology& topology,
                                                                 AuditOptions options = {});
  ~ModuleStateAudit();  // stops tracking writes
  ModuleStateAudit(const ModuleStateAudit&) = delete;
  ModuleStateAudit& operator=(const ModuleStateAudit&) = delete;

  // A scheduling point: what changed (or was written) since the previous one
  // is attributed to `request_id`; 0 means no request ran (start-up code, a
  // scheduler) and is recorded nowhere. Call on one thread.
  void Checkpoint(std::uint64_t request_id);
  // Scheduling points around a slice of one request's execution: changes
  // before the slice go to the enclosing slice (or nowhere), changes inside
  // to `request_id`. Slices nest.
  void EnterSlice(std::uint64_t request_id);
  void LeaveSlice();

  // State written by two or more requests, sorted by environment, library and
  // offset.
  std::vector<ModuleStateFinding> Findings() const;

  struct Stats {
    std::size_t copies = 0;          // loaded module libraries watched
    std::size_t bytes_watched = 0;   // writable bytes compared at each scheduling point
    std::size_t bytes_excluded = 0;  // slot cells, declared shared state, GOT
    std::uint64_t checkpoints = 0;
    std::uint64_t writes_recorded = 0;  // by write tracking
    std::uint64_t writes_dropped = 0;   // more than the tracker's buffer between two points
    bool tracking_writes = false;
  };
  Stats stats() const;

 private:
  struct Impl;
  explicit ModuleStateAudit(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// server::MakePageRouter (page_routes.h) for `host`, but every request renders
// inside audited slices: each resumption of the page's coroutine is one slice
// of that request. For `modgraph serve --audit`, which runs one io_context
// thread. `host` and `audit` must outlive the router.
server::Router MakeAuditedRouter(const pages::PageHost& host, server::WorkFactory make_work,
                                 ModuleStateAudit& audit);

}  // namespace modgraph::testing
