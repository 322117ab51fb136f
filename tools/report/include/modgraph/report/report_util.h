// report_util.h — look-ups over a Report shared by the renderers.
#ifndef MODGRAPH_REPORT_REPORT_UTIL_H_
#define MODGRAPH_REPORT_REPORT_UTIL_H_

#include <string_view>

#include "modgraph/report/report.h"

namespace modgraph::report {

// The instance named `instance` ("env#module"), or null.
const InstanceRecord* FindInstance(const Report& report, std::string_view instance);
// Its slot named `slot`, or null.
const SlotRecord* FindSlot(const Report& report, std::string_view instance, std::string_view slot);
// The environment named `name`, or null.
const EnvironmentReport* FindEnvironment(const Report& report, std::string_view name);

}  // namespace modgraph::report

#endif  // MODGRAPH_REPORT_REPORT_UTIL_H_
