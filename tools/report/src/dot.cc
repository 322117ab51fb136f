// The report as a Graphviz digraph; see render.h.
#include <fmt/format.h>

#include <string>
#include <string_view>

#include "modgraph/report/render.h"
#include "modgraph/report/report_util.h"

namespace modgraph::report {
namespace {

// A DOT double-quoted string.
std::string Quote(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out + "\"";
}

std::string NodeLabel(const Report& report, const InstanceRecord& instance) {
  std::string label = instance.instance;
  int registered = 0;
  for (const SlotRecord& slot : instance.slots) registered += slot.registered ? 1 : 0;
  if (!instance.slots.empty()) {
    label += fmt::format("\n{} of {} slot(s) registered", registered, instance.slots.size());
  }
  for (const Finding& finding : report.findings) {
    if (finding.instance == instance.instance) label += "\nunregistered: " + finding.slot;
  }
  return label;
}

}  // namespace

std::string RenderDot(const Report& report) {
  const ReportIndex index(report);
  std::string out = "digraph modgraph {\n";
  out += fmt::format(
      "  graph [label={}, labelloc=t, fontname=\"Helvetica\", rankdir=TB, compound=true];\n",
      Quote(fmt::format("topology {} ({}): {} finding(s)", report.topology, report.origin,
                        report.summary.findings)));
  out +=
      "  node [shape=box, style=\"rounded,filled\", fillcolor=\"#e3f2fd\", color=\"#1565c0\", "
      "fontname=\"Helvetica\", fontsize=11];\n";
  out += "  edge [fontname=\"Helvetica\", fontsize=9];\n";

  for (std::size_t i = 0; i < report.environments.size(); ++i) {
    const EnvironmentReport& env = report.environments[i];
    out += fmt::format("  subgraph {} {{\n", Quote(fmt::format("cluster_{}", i)));
    out += fmt::format(
        "    label={};\n    style=rounded;\n    color=\"#90a4ae\";\n",
        Quote(fmt::format("environment {} ({}, policy {})", env.name, env.mode, env.policy)));
    for (const std::string& name : env.instances) {
      const InstanceRecord* instance = index.Instance(name);
      if (instance == nullptr) continue;
      std::string attributes = fmt::format("label={}", Quote(NodeLabel(report, *instance)));
      if (index.HasFindings(name)) {
        attributes += ", fillcolor=\"#ffcdd2\", color=\"#c62828\", penwidth=2";
      }
      out += fmt::format("    {} [{}];\n", Quote(name), attributes);
    }
    out += "  }\n";
  }

  out += "  // imports: importer -> imported\n";
  for (const InstanceRecord& instance : report.instances) {
    for (const std::string& imported : instance.imports) {
      out += fmt::format("  {} -> {} [color=\"#455a64\"];\n", Quote(instance.instance),
                         Quote(imported));
    }
  }
  out += "  // registrations: provider -> target, labelled with the slot\n";
  for (const InstanceRecord& instance : report.instances) {
    for (const SlotRecord& slot : instance.slots) {
      if (!slot.registered || slot.provider_instance.empty()) continue;
      out += fmt::format(
          "  {} -> {} [style=dashed, color=\"#2e7d32\", fontcolor=\"#2e7d32\", label={}];\n",
          Quote(slot.provider_instance), Quote(instance.instance), Quote("registers " + slot.slot));
    }
  }
  out += "  // twins: an unregistered instance -> its registered twin\n";
  for (const Finding& finding : report.findings) {
    for (const std::string& twin : finding.registered_twins) {
      out += fmt::format(
          "  {} -> {} [style=dotted, color=\"#c62828\", fontcolor=\"#c62828\", "
          "constraint=false, label={}];\n",
          Quote(finding.instance), Quote(twin), Quote("twin (" + finding.slot + ")"));
    }
  }
  out += "}\n";
  return out;
}

}  // namespace modgraph::report
