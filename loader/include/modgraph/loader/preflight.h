// preflight.h — runs a module library's static initialisers in a short-lived
// child process before the host runs them.
//
// An exception thrown from a namespace-scope constructor inside dlopen cannot be
// caught by anyone: the C++ runtime calls std::terminate and the process dies —
// a serving host and every environment in it. The same goes for an initialiser
// that aborts or crashes. A preflight loads the library once in a helper
// process (`modgraph-preflight`, installed beside the modgraph tool in
// libexec/modgraph), so such a library fails to load with a named error instead:
//
//   if (absl::Status ok = PreflightLibrary("/app/modules/head.so"); !ok.ok())
//     return ok;  // "static initialisation of '/app/modules/head.so' failed in a
//                 //  preflight process: uncaught std::runtime_error: ..."
//
// The helper loads the library, follows its module descriptors as the loader
// does, unloads it (DT_FINI, fini arrays, static destructors) and exits
// normally, reporting each stage passed on a pipe. What it catches: throwing,
// aborting, crashing, hanging or exiting initialisers (exit(0) included),
// descriptors pointing outside the library, finalisers that crash, and
// libraries that dlopen refuses. What it cannot: an initialiser that fails only
// in the host (it depends on the host's state), or a clash of modgraph's own
// named registrations (those are refused in-process: registrations.h).
// Initialisers with side effects outside the process (files, sockets) run twice.
//
// Cost: one posix_spawn of the helper and one dlopen of the library in it —
// a few milliseconds (docs/benchmarks.md); environments preflight each library
// file once per process (and again only when it changed on disk).
#ifndef MODGRAPH_LOADER_PREFLIGHT_H_
#define MODGRAPH_LOADER_PREFLIGHT_H_

#include <chrono>
#include <filesystem>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace modgraph {

struct PreflightOptions {
  // The helper executable; empty: $MODGRAPH_PREFLIGHT, else
  // `libexec/modgraph/modgraph-preflight` next to (or one level above the
  // directory of) libmodgraph_core.
  std::filesystem::path helper;
  // A library whose initialisers have not finished by then fails (they hang).
  std::chrono::milliseconds timeout{20'000};
  // How messages name the library; empty: its path.
  std::string label;
};

// OK when the library loads in the helper. A "/proc/self/fd/N" path (a memfd
// copy, or a checked descriptor) is handed to the helper as this process's fd. Otherwise
// FailedPrecondition naming the file and the cause (the uncaught exception's type and message, the
// signal, or dlopen's error); NotFound when the helper cannot be found (the
// message says how to point at it).
absl::Status PreflightLibrary(const std::filesystem::path& library,
                              const PreflightOptions& options = {});

// Where PreflightLibrary() looks for the helper (see PreflightOptions::helper).
absl::StatusOr<std::filesystem::path> FindPreflightHelper();

}  // namespace modgraph

#endif  // MODGRAPH_LOADER_PREFLIGHT_H_
