// report_util.h — look-ups over a Report shared by the renderers.
#ifndef MODGRAPH_REPORT_REPORT_UTIL_H_
#define MODGRAPH_REPORT_REPORT_UTIL_H_

#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "modgraph/report/report.h"

namespace modgraph::report {

// The instance named `instance` ("env#module"), or null.
const InstanceRecord* FindInstance(const Report& report, std::string_view instance);
// Its slot named `slot`, or null.
const SlotRecord* FindSlot(const Report& report, std::string_view instance, std::string_view slot);
// The environment named `name`, or null.
const EnvironmentReport* FindEnvironment(const Report& report, std::string_view name);

// The same look-ups in constant time, for renderers that make one per instance
// or finding (the free functions above scan: a report of 16,000 instances would
// cost 16,000² comparisons). Built in one pass; `report` must outlive it.
class ReportIndex {
 public:
  explicit ReportIndex(const Report& report);
  const InstanceRecord* Instance(std::string_view name) const;
  const SlotRecord* Slot(std::string_view instance, std::string_view slot) const;
  bool HasFindings(std::string_view instance) const { return with_findings_.contains(instance); }

 private:
  std::unordered_map<std::string_view, const InstanceRecord*> instances_;
  std::unordered_set<std::string_view> with_findings_;
};

}  // namespace modgraph::report

#endif  // MODGRAPH_REPORT_REPORT_UTIL_H_
