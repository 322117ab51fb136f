// render.h — a Report (report.h) as text, JSON, Graphviz DOT or one HTML page.
//
//   std::string text = RenderText(report, {.color = UseColor(stdout)});
//   nlohmann::ordered_json json = RenderJson(report);
//   std::string dot = RenderDot(report);    // `dot -Tsvg` renders it
//   std::string html = RenderHtml(report);  // self-contained: inline CSS, JS, SVG
//
// Output depends only on the report: no addresses, no clock, no environment
// variables. Text and DOT leave out library copy paths and registration times
// (they change on every run); JSON and HTML carry them.
#ifndef MODGRAPH_REPORT_RENDER_H_
#define MODGRAPH_REPORT_RENDER_H_

#include <chrono>
#include <string>

#include "modgraph/report/report.h"
#include "nlohmann/json.hpp"

namespace modgraph::report {

struct TextOptions {
  bool color = false;  // ANSI colours; the CLI turns them on only on a terminal
};

// The doctor's text: environments, findings (instance, slot, registered twins,
// the provider that would fix it), errors, and a one-line summary at the end.
std::string RenderText(const Report& report, const TextOptions& options = {});

// The whole registry: topology, environments, instances (library copy, imports,
// slots with state "default"/"registered", provider, registered_at), findings,
// errors and summary. Field by field in docs/cli.md.
nlohmann::ordered_json RenderJson(const Report& report);

// A Graphviz digraph: one cluster per environment, one node per instance,
// import edges, registration edges (provider -> target, dashed, labelled with
// the slot), and twin edges from each unregistered instance to its registered
// twins. Unregistered instances are filled red.
std::string RenderDot(const Report& report);

// One self-contained HTML page: summary, findings table, the graph as inline
// SVG, the instance table and errors. No external resources. Its script sets
// data-modgraph-page="ok" on <html> once it has run without errors.
std::string RenderHtml(const Report& report);

// "2026-05-04T12:30:00.123Z"; empty for a default time point.
std::string IsoTime(std::chrono::system_clock::time_point time);

}  // namespace modgraph::report

#endif  // MODGRAPH_REPORT_RENDER_H_
