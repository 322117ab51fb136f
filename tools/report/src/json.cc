// The report as JSON; see render.h and docs/cli.md for the fields.
#include <fmt/format.h>
#include <time.h>

#include <chrono>
#include <ctime>

#include "modgraph/report/render.h"
#include "modgraph/report/report_util.h"

namespace modgraph::report {

std::string IsoTime(std::chrono::system_clock::time_point time) {
  if (time == std::chrono::system_clock::time_point{}) return "";
  const std::time_t seconds = std::chrono::system_clock::to_time_t(time);
  const auto millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch()).count() % 1000;
  std::tm utc{};
  ::gmtime_r(&seconds, &utc);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%S", &utc);
  return fmt::format("{}.{:03}Z", buffer, millis < 0 ? millis + 1000 : millis);
}

nlohmann::ordered_json RenderJson(const Report& report) {
  const ReportIndex index(report);
  using nlohmann::ordered_json;
  ordered_json out;
  out["schema"] = "modgraph-report/1";
  out["topology"] = {{"name", report.topology}, {"origin", report.origin}};

  ordered_json environments = ordered_json::array();
  for (const EnvironmentReport& env : report.environments) {
    ordered_json item = {{"name", env.name},
                         {"mode", env.mode},
                         {"policy", env.policy},
                         {"module_roots", env.module_roots}};
    item["bundle"] = env.bundle.empty() ? ordered_json(nullptr) : ordered_json(env.bundle);
    item["instances"] = env.instances;
    environments.push_back(std::move(item));
  }
  out["environments"] = std::move(environments);

  ordered_json instances = ordered_json::array();
  for (const InstanceRecord& instance : report.instances) {
    ordered_json slots = ordered_json::array();
    for (const SlotRecord& slot : instance.slots) {
      ordered_json item = {{"slot", slot.slot},
                           {"signature", slot.signature},
                           {"state", slot.registered ? "registered" : "default"}};
      item["provider"] = slot.provider_instance.empty() ? ordered_json(nullptr)
                                                        : ordered_json(slot.provider_instance);
      const std::string at = IsoTime(slot.registered_at);
      item["registered_at"] = at.empty() ? ordered_json(nullptr) : ordered_json(at);
      slots.push_back(std::move(item));
    }
    ordered_json shared = ordered_json::array();
    for (const SharedStateRecord& state : instance.shared_state) {
      shared.push_back({{"name", state.name}, {"size", state.size}, {"reason", state.reason}});
    }
    instances.push_back({{"instance", instance.instance},
                         {"environment", instance.environment},
                         {"module", instance.module},
                         {"library", instance.library},
                         {"policy", ToString(instance.policy)},
                         {"imports", instance.imports},
                         {"provides_for", instance.provides_for},
                         {"slots", std::move(slots)},
                         {"shared_state", std::move(shared)},
                         {"has_findings", index.HasFindings(instance.instance)}});
  }
  out["instances"] = std::move(instances);

  ordered_json findings = ordered_json::array();
  for (const Finding& finding : report.findings) {
    findings.push_back({{"instance", finding.instance},
                        {"environment", finding.environment},
                        {"module", finding.module},
                        {"slot", finding.slot},
                        {"registered_twins", finding.registered_twins},
                        {"fixing_providers", finding.fixing_providers}});
  }
  out["findings"] = std::move(findings);
  ordered_json dangling = ordered_json::array();
  for (const DanglingProvider& d : report.dangling_providers) {
    dangling.push_back(
        {{"provider", d.provider}, {"target", d.target}, {"declared_by", d.declared_by}});
  }
  out["dangling_providers"] = std::move(dangling);
  ordered_json keys = ordered_json::array();
  for (const AnonymousKey& key : report.anonymous_keys) {
    keys.push_back({{"environment", key.environment},
                    {"type", key.type},
                    {"constructed_by", key.constructed_by},
                    {"indexes", key.indexes}});
  }
  out["anonymous_keys"] = std::move(keys);
  out["errors"] = report.errors;
  ordered_json retired = ordered_json::array();
  for (const RetiredReport& r : report.retired) {
    retired.push_back({{"environment", r.environment},
                       {"copy", r.library.copy},
                       {"source", r.library.source},
                       {"instances", r.library.instances},
                       {"reason", r.library.reason},
                       {"kept_for_good", r.library.kept_for_good}});
  }
  out["retired"] = std::move(retired);

  const Summary& s = report.summary;
  out["summary"] = {{"status", Status(report)},
                    {"exit_code", ExitCode(report)},
                    {"environments", s.environments},
                    {"instances", s.instances},
                    {"slots", s.slots},
                    {"registered_slots", s.registered_slots},
                    {"findings", s.findings},
                    {"instances_with_findings", s.instances_with_findings},
                    {"environments_with_findings", s.environments_with_findings},
                    {"dangling_providers", s.dangling_providers},
                    {"anonymous_keys", s.anonymous_keys},
                    {"errors", s.errors}};
  return out;
}

}  // namespace modgraph::report
