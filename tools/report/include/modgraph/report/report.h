// report.h — a loaded topology's registry as plain data, for the CLI's reports.
//
// BuildReport() takes a snapshot of a loaded topology: its environments, every
// instance with its imports and slots (registered by which provider, when, or
// still on the module-level default), the findings — slots nobody registered —
// with their registered twins and fixing providers, and the load errors. The
// renderers (render.h) turn the snapshot into text, JSON, DOT or HTML; they
// never touch the topology, so they can be tested on hand-made reports.
//
//   auto topology = Topology::Create(example::DevTopology(dir));
//   std::vector<absl::Status> errors = (*topology)->LoadEntries();
//   report::Report report = report::BuildReport(**topology, errors);
//   fmt::print("{}", report::RenderText(report, {.color = false}));
//   return report::ExitCode(report);  // 0 clean, 1 findings, 2 errors
//
// Everything is sorted (environments in topology order, then instance and slot
// names), so two runs over the same topology give the same text.
#ifndef MODGRAPH_REPORT_REPORT_H_
#define MODGRAPH_REPORT_REPORT_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "modgraph/environments/topology.h"
#include "modgraph/registry/registry.h"

namespace modgraph::report {

// Exit codes shared by every subcommand.
inline constexpr int kExitClean = 0;
inline constexpr int kExitFindings = 1;
inline constexpr int kExitError = 2;

struct EnvironmentReport {
  std::string name;
  std::string mode;    // "isolated" or "bundled"
  std::string policy;  // "warn", "strict" or "auto"
  std::vector<std::string> module_roots;
  std::string bundle;                  // bundled mode only
  std::vector<std::string> instances;  // instance names, sorted
};

struct Summary {
  int environments = 0;
  int instances = 0;
  int slots = 0;
  int registered_slots = 0;
  int findings = 0;  // slots on the module-level default
  int instances_with_findings = 0;
  int environments_with_findings = 0;
  int dangling_providers = 0;  // provider declarations whose target nobody loads
  int anonymous_keys = 0;      // anonymous context keys in module code
  int errors = 0;
};

// A library whose instances were replaced or unloaded, still mapped (retired).
struct RetiredReport {
  std::string environment;
  RetiredLibrary library;  // copy, source, instances and why it is kept
};

struct Report {
  std::string topology;  // its name, e.g. "dev"
  std::string origin;    // "built-in" or the file it came from
  std::vector<EnvironmentReport> environments;
  // Sorted by environment (topology order), then instance name.
  std::vector<InstanceRecord> instances;
  // Sorted like `instances`, then by slot.
  std::vector<Finding> findings;
  // Provider declarations that point at a module no environment loads: findings too.
  std::vector<DanglingProvider> dangling_providers;
  // Anonymous context keys constructed by module copies: findings too.
  std::vector<AnonymousKey> anonymous_keys;
  // Load errors (an environment or a provider that failed), as messages.
  std::vector<std::string> errors;
  // Retired copies still mapped, in topology order (informational: they do
  // not change the exit code).
  std::vector<RetiredReport> retired;
  Summary summary;
};

// Snapshots `topology` (loaded with LoadEntries(), whose errors are `errors`).
Report BuildReport(const Topology& topology, const std::vector<absl::Status>& errors);

// Recomputes `report.summary` from its instances, findings and errors; call it
// after editing a report by hand.
void Summarize(Report& report);

// kExitError if there are errors, else kExitFindings if there are findings
// (slots without registration, or provider declarations pointing nowhere),
// else kExitClean.
int ExitCode(const Report& report);

// "clean", "findings" or "error", as ExitCode() decides.
std::string_view Status(const Report& report);

// True when `instance` has at least one finding.
bool HasFindings(const Report& report, std::string_view instance);

}  // namespace modgraph::report

#endif  // MODGRAPH_REPORT_REPORT_H_
