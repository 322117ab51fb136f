// Snapshotting a loaded topology; see report.h.
#include "modgraph/report/report.h"

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <tuple>

#include "modgraph/report/report_util.h"

namespace modgraph::report {
namespace {

// Sort key: environment position in the topology, then the instance name.
struct Order {
  std::map<std::string, int, std::less<>> environment_index;

  int Index(std::string_view environment) const {
    auto it = environment_index.find(environment);
    return it == environment_index.end() ? static_cast<int>(environment_index.size()) : it->second;
  }
  bool operator()(const InstanceRecord& a, const InstanceRecord& b) const {
    return std::make_tuple(Index(a.environment), std::string_view(a.instance)) <
           std::make_tuple(Index(b.environment), std::string_view(b.instance));
  }
  bool operator()(const Finding& a, const Finding& b) const {
    return std::make_tuple(Index(a.environment), std::string_view(a.instance),
                           std::string_view(a.slot)) < std::make_tuple(Index(b.environment),
                                                                       std::string_view(b.instance),
                                                                       std::string_view(b.slot));
  }
};

}  // namespace

Report BuildReport(const Topology& topology, const std::vector<absl::Status>& errors) {
  Report report;
  report.topology = topology.spec().name;
  report.origin = topology.spec().origin;

  Order order;
  for (const auto& env : topology.environments()) {
    const EnvironmentSpec& spec = env->spec();
    order.environment_index.emplace(spec.name, static_cast<int>(order.environment_index.size()));
    EnvironmentReport environment{.name = spec.name,
                                  .mode = std::string(ToString(spec.mode)),
                                  .policy = std::string(ToString(spec.policy)),
                                  .module_roots = {},
                                  .bundle = spec.bundle.string(),
                                  .instances = {}};
    for (const auto& root : spec.module_roots) environment.module_roots.push_back(root.string());
    report.environments.push_back(std::move(environment));
  }

  report.instances = topology.registry().instances();
  for (InstanceRecord& instance : report.instances) {
    std::sort(instance.slots.begin(), instance.slots.end(),
              [](const SlotRecord& a, const SlotRecord& b) { return a.slot < b.slot; });
  }
  std::sort(report.instances.begin(), report.instances.end(), order);
  for (const InstanceRecord& instance : report.instances) {
    for (EnvironmentReport& environment : report.environments) {
      if (environment.name == instance.environment) {
        environment.instances.push_back(instance.instance);
      }
    }
  }

  report.findings = topology.registry().Findings();
  for (Finding& finding : report.findings) {
    std::sort(finding.registered_twins.begin(), finding.registered_twins.end());
    std::sort(finding.fixing_providers.begin(), finding.fixing_providers.end());
  }
  std::sort(report.findings.begin(), report.findings.end(), order);

  report.dangling_providers = topology.registry().DanglingProviders();
  report.anonymous_keys = topology.registry().AnonymousKeys();
  for (const absl::Status& error : errors) {
    if (!error.ok()) report.errors.push_back(std::string(error.message()));
  }
  for (const auto& env : topology.environments()) {
    for (RetiredLibrary& library : env->retired()) {
      report.retired.push_back({.environment = env->name(), .library = std::move(library)});
    }
  }
  Summarize(report);
  return report;
}

void Summarize(Report& report) {
  Summary summary;
  summary.environments = static_cast<int>(report.environments.size());
  summary.instances = static_cast<int>(report.instances.size());
  for (const InstanceRecord& instance : report.instances) {
    summary.slots += static_cast<int>(instance.slots.size());
    summary.registered_slots +=
        static_cast<int>(std::count_if(instance.slots.begin(), instance.slots.end(),
                                       [](const SlotRecord& slot) { return slot.registered; }));
  }
  std::set<std::string> instances;
  std::set<std::string> environments;
  for (const Finding& finding : report.findings) {
    instances.insert(finding.instance);
    environments.insert(finding.environment);
  }
  summary.findings = static_cast<int>(report.findings.size());
  summary.instances_with_findings = static_cast<int>(instances.size());
  summary.environments_with_findings = static_cast<int>(environments.size());
  summary.dangling_providers = static_cast<int>(report.dangling_providers.size());
  summary.anonymous_keys = static_cast<int>(report.anonymous_keys.size());
  summary.errors = static_cast<int>(report.errors.size());
  report.summary = summary;
}

int ExitCode(const Report& report) {
  if (!report.errors.empty()) return kExitError;
  if (!report.findings.empty() || !report.dangling_providers.empty() ||
      !report.anonymous_keys.empty()) {
    return kExitFindings;
  }
  return kExitClean;
}

std::string_view Status(const Report& report) {
  switch (ExitCode(report)) {
    case kExitClean:
      return "clean";
    case kExitFindings:
      return "findings";
    default:
      return "error";
  }
}

bool HasFindings(const Report& report, std::string_view instance) {
  return std::any_of(report.findings.begin(), report.findings.end(),
                     [&](const Finding& finding) { return finding.instance == instance; });
}

}  // namespace modgraph::report

namespace modgraph::report {

const InstanceRecord* FindInstance(const Report& report, std::string_view instance) {
  for (const InstanceRecord& record : report.instances) {
    if (record.instance == instance) return &record;
  }
  return nullptr;
}

const SlotRecord* FindSlot(const Report& report, std::string_view instance, std::string_view slot) {
  const InstanceRecord* record = FindInstance(report, instance);
  if (record == nullptr) return nullptr;
  for (const SlotRecord& candidate : record->slots) {
    if (candidate.slot == slot) return &candidate;
  }
  return nullptr;
}

ReportIndex::ReportIndex(const Report& report) {
  instances_.reserve(report.instances.size());
  for (const InstanceRecord& record : report.instances)
    instances_.emplace(record.instance, &record);
  for (const Finding& finding : report.findings) with_findings_.insert(finding.instance);
}

const InstanceRecord* ReportIndex::Instance(std::string_view name) const {
  auto it = instances_.find(name);
  return it == instances_.end() ? nullptr : it->second;
}

const SlotRecord* ReportIndex::Slot(std::string_view instance, std::string_view slot) const {
  const InstanceRecord* record = Instance(instance);
  if (record == nullptr) return nullptr;
  for (const SlotRecord& candidate : record->slots) {
    if (candidate.slot == slot) return &candidate;
  }
  return nullptr;
}

const EnvironmentReport* FindEnvironment(const Report& report, std::string_view name) {
  for (const EnvironmentReport& env : report.environments) {
    if (env.name == name) return &env;
  }
  return nullptr;
}

}  // namespace modgraph::report
