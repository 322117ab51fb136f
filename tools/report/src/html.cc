// The report as one self-contained HTML page; see render.h.
//
// The graph is laid out here, not by Graphviz, so the page needs nothing at
// run time: each environment is a box; inside it, instances sit in rows by
// import depth (importers above what they import), each row ordered by where
// its imports are. A Content-Security-Policy forbids every external resource.
// The page's stylesheet and script are in html_assets.h.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "html_assets.h"
#include "modgraph/pages/page.h"
#include "modgraph/report/render.h"
#include "modgraph/report/report_util.h"

namespace modgraph::report {
namespace {

constexpr int kNodeWidth = 196;
constexpr int kNodeHeight = 44;
constexpr int kGapX = 18;
constexpr int kGapY = 54;
constexpr int kPad = 16;
constexpr int kHeader = 30;
constexpr int kEnvGap = 36;
constexpr int kTop = 70;  // room above the boxes for twin arcs

// Text and attribute values escaped as the page contract does.
std::string Escape(std::string_view text) { return pages::EscapeHtml(text); }

struct Box {
  int x = 0, y = 0;
};

struct Layout {
  std::map<std::string, Box> nodes;  // instance → top-left corner
  struct Env {
    std::string name;
    int x = 0, y = 0, width = 0, height = 0;
  };
  std::vector<Env> environments;
  int width = 0, height = 0;
};

Layout ComputeLayout(const Report& report) {
  const ReportIndex index(report);
  Layout layout;
  int x = kPad;
  for (const EnvironmentReport& env : report.environments) {
    // Import depth inside the environment: 0 for instances importing nothing here.
    std::map<std::string, int> level;
    std::function<int(const std::string&, int)> depth = [&](const std::string& name,
                                                            int guard) -> int {
      if (auto it = level.find(name); it != level.end()) return it->second;
      const InstanceRecord* instance = index.Instance(name);
      int d = 0;
      if (instance != nullptr && guard < 64) {
        for (const std::string& imported : instance->imports) {
          const InstanceRecord* target = index.Instance(imported);
          if (target == nullptr || target->environment != env.name) continue;
          d = std::max(d, depth(imported, guard + 1) + 1);
        }
      }
      level[name] = d;
      return d;
    };
    int max_level = 0;
    for (const std::string& name : env.instances) max_level = std::max(max_level, depth(name, 0));

    // Rows bottom-up: level 0 by name, higher levels by the mean position of their imports.
    std::vector<std::vector<std::string>> rows(max_level + 1);
    std::map<std::string, double> position;
    for (int l = 0; l <= max_level; ++l) {
      for (const std::string& name : env.instances) {
        if (level[name] == l) rows[l].push_back(name);
      }
      auto key = [&](const std::string& name) {
        const InstanceRecord* instance = index.Instance(name);
        double sum = 0;
        int n = 0;
        for (const std::string& imported : instance->imports) {
          if (auto it = position.find(imported); it != position.end()) {
            sum += it->second;
            ++n;
          }
        }
        return n == 0 ? 1e9 : sum / n;
      };
      std::stable_sort(rows[l].begin(), rows[l].end(),
                       [&](const std::string& a, const std::string& b) { return key(a) < key(b); });
      for (std::size_t i = 0; i < rows[l].size(); ++i)
        position[rows[l][i]] = static_cast<double>(i);
    }
    std::size_t widest = 1;
    for (const auto& row : rows) widest = std::max(widest, row.size());
    Layout::Env box{.name = env.name,
                    .x = x,
                    .y = kTop,
                    .width = static_cast<int>(widest) * (kNodeWidth + kGapX) - kGapX + 2 * kPad,
                    .height = kHeader + (max_level + 1) * (kNodeHeight + kGapY) - kGapY + 2 * kPad};
    for (int l = 0; l <= max_level; ++l) {
      const int row_y = box.y + kHeader + kPad + (max_level - l) * (kNodeHeight + kGapY);
      const int row_width = static_cast<int>(rows[l].size()) * (kNodeWidth + kGapX) - kGapX;
      int node_x = box.x + (box.width - row_width) / 2;
      for (const std::string& name : rows[l]) {
        layout.nodes[name] = {node_x, row_y};
        node_x += kNodeWidth + kGapX;
      }
    }
    layout.environments.push_back(box);
    x += box.width + kEnvGap;
    layout.height = std::max(layout.height, box.y + box.height + kPad);
  }
  layout.width = std::max(x - kEnvGap + kPad, 400);
  layout.height = std::max(layout.height, kTop + 100);
  return layout;
}

std::string Svg(const Report& report) {
  const Layout layout = ComputeLayout(report);
  std::string out = fmt::format(
      "<svg id=\"graph\" viewBox=\"0 0 {0} {1}\" "
      "width=\"{0}\" height=\"{1}\" style=\"max-width:100%;height:auto\" role=\"img\" "
      "aria-label=\"module graph\">\n",
      layout.width, layout.height);
  out +=
      "<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"7\" "
      "markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\" "
      "fill=\"#455a64\"/></marker>"
      "<marker id=\"arrow-reg\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"7\" "
      "markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\" "
      "fill=\"#2e7d32\"/></marker></defs>\n";
  for (const Layout::Env& env : layout.environments) {
    const EnvironmentReport* spec = FindEnvironment(report, env.name);
    out += fmt::format(
        "<g class=\"env\"><rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"10\"/>"
        "<text x=\"{}\" y=\"{}\" class=\"env-label\">environment {} ({}, policy {})</text></g>\n",
        env.x, env.y, env.width, env.height, env.x + 12, env.y + 20, Escape(env.name),
        Escape(spec->mode), Escape(spec->policy));
  }
  auto center_x = [&](const std::string& name) { return layout.nodes.at(name).x + kNodeWidth / 2; };
  // Imports, then registrations (beside them, dashed), then twin arcs above the boxes.
  for (const InstanceRecord& instance : report.instances) {
    if (!layout.nodes.contains(instance.instance)) continue;
    const Box from = layout.nodes.at(instance.instance);
    for (const std::string& imported : instance.imports) {
      if (!layout.nodes.contains(imported)) continue;
      const Box to = layout.nodes.at(imported);
      const int x1 = center_x(instance.instance) - 8, y1 = from.y + kNodeHeight;
      const int x2 = center_x(imported) - 8, y2 = to.y;
      out += fmt::format(
          "<path class=\"import\" d=\"M{},{} C{},{} {},{} {},{}\" marker-end=\"url(#arrow)\">"
          "<title>{} imports {}</title></path>\n",
          x1, y1, x1, (y1 + y2) / 2, x2, (y1 + y2) / 2, x2, y2, Escape(instance.instance),
          Escape(imported));
    }
  }
  for (const InstanceRecord& instance : report.instances) {
    for (const SlotRecord& slot : instance.slots) {
      if (!slot.registered || !layout.nodes.contains(slot.provider_instance) ||
          !layout.nodes.contains(instance.instance)) {
        continue;
      }
      const Box from = layout.nodes.at(slot.provider_instance);
      const Box to = layout.nodes.at(instance.instance);
      const int x1 = center_x(slot.provider_instance) + 10, y1 = from.y + kNodeHeight;
      const int x2 = center_x(instance.instance) + 10, y2 = to.y;
      out += fmt::format(
          "<path class=\"registration\" d=\"M{},{} C{},{} {},{} {},{}\" "
          "marker-end=\"url(#arrow-reg)\"><title>{} registers {} on {}</title></path>\n",
          x1, y1, x1 + 30, (y1 + y2) / 2, x2 + 30, (y1 + y2) / 2, x2, y2,
          Escape(slot.provider_instance), Escape(slot.slot), Escape(instance.instance));
    }
  }
  for (const Finding& finding : report.findings) {
    for (const std::string& twin : finding.registered_twins) {
      if (!layout.nodes.contains(finding.instance) || !layout.nodes.contains(twin)) continue;
      const int x1 = center_x(finding.instance), y1 = layout.nodes.at(finding.instance).y;
      const int x2 = center_x(twin), y2 = layout.nodes.at(twin).y;
      const int top = 8;
      out += fmt::format(
          "<path class=\"twin\" d=\"M{},{} C{},{} {},{} {},{}\"><title>{} is unregistered; its "
          "twin {} has a registration on {}</title></path>\n",
          x1, y1, x1, top, x2, top, x2, y2, Escape(finding.instance), Escape(twin),
          Escape(finding.slot));
    }
  }
  for (const InstanceRecord& instance : report.instances) {
    if (!layout.nodes.contains(instance.instance)) continue;
    const Box box = layout.nodes.at(instance.instance);
    int registered = 0;
    std::vector<std::string> unregistered;
    for (const SlotRecord& slot : instance.slots) {
      if (slot.registered) {
        ++registered;
      } else {
        unregistered.push_back(slot.slot);
      }
    }
    std::string kind = "plain";
    std::string detail = "no slots";
    if (!unregistered.empty()) {
      kind = "finding";
      detail = unregistered.size() == 1
                   ? "default: " + unregistered.front()
                   : fmt::format("{} slots on the default", unregistered.size());
    } else if (!instance.slots.empty()) {
      kind = "registered";
      detail = fmt::format("{} slot{} registered", registered, registered == 1 ? "" : "s");
    }
    out += fmt::format(
        "<g class=\"node {}\" data-instance=\"{}\" tabindex=\"0\"><title>{} ({})</title>"
        "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"7\"/>"
        "<text x=\"{}\" y=\"{}\" class=\"name\">{}</text>"
        "<text x=\"{}\" y=\"{}\" class=\"detail\">{}</text></g>\n",
        kind, Escape(instance.instance), Escape(instance.instance), Escape(instance.library), box.x,
        box.y, kNodeWidth, kNodeHeight, box.x + kNodeWidth / 2, box.y + 18,
        Escape(instance.instance), box.x + kNodeWidth / 2, box.y + 34, Escape(detail));
  }
  out += "</svg>\n";
  return out;
}

std::string FindingsTable(const Report& report) {
  const ReportIndex index(report);
  std::string out =
      "<table id=\"findings\"><thead><tr><th>Instance</th><th>Environment</th><th>Slot</th>"
      "<th>Registered twin (registration by)</th><th>Provider that would fix it</th></tr></thead>"
      "<tbody>\n";
  for (const Finding& finding : report.findings) {
    std::vector<std::string> twins;
    for (const std::string& twin : finding.registered_twins) {
      const SlotRecord* slot = index.Slot(twin, finding.slot);
      twins.push_back(slot != nullptr && !slot->provider_instance.empty()
                          ? fmt::format("{} ({})", Escape(twin), Escape(slot->provider_instance))
                          : Escape(twin));
    }
    std::vector<std::string> providers;
    for (const std::string& provider : finding.fixing_providers)
      providers.push_back(Escape(provider));
    out += fmt::format(
        "<tr class=\"finding\" data-instance=\"{}\"><td>{}</td><td>{}</td><td><code>{}</code></td>"
        "<td>{}</td><td>{}</td></tr>\n",
        Escape(finding.instance), Escape(finding.instance), Escape(finding.environment),
        Escape(finding.slot), twins.empty() ? "none" : fmt::format("{}", fmt::join(twins, ", ")),
        providers.empty() ? std::string("none declared: add one under [providers]")
                          : fmt::format("{} (import it in {}, or use --policy auto)",
                                        fmt::join(providers, ", "), Escape(finding.environment)));
  }
  if (report.findings.empty()) {
    out +=
        "<tr class=\"clean\"><td colspan=\"5\">No findings: every slot of every instance has a "
        "registration.</td></tr>\n";
  }
  out += "</tbody></table>\n";
  return out;
}

std::string InstancesTable(const Report& report) {
  const ReportIndex index(report);
  std::string out =
      "<table id=\"instances\"><thead><tr><th>Instance</th><th>Environment</th><th>Imports</th>"
      "<th>Slots</th><th>Library copy</th></tr></thead><tbody>\n";
  for (const InstanceRecord& instance : report.instances) {
    std::vector<std::string> slots;
    for (const SlotRecord& slot : instance.slots) {
      if (slot.registered) {
        slots.push_back(fmt::format("<code>{}</code>: registered by {} at {}", Escape(slot.slot),
                                    Escape(slot.provider_instance),
                                    Escape(IsoTime(slot.registered_at))));
      } else {
        slots.push_back(fmt::format(
            "<code>{}</code>: <span class=\"badge\">unregistered</span> (module-level default)",
            Escape(slot.slot)));
      }
    }
    std::vector<std::string> imports;
    for (const std::string& imported : instance.imports) imports.push_back(Escape(imported));
    const bool finding = index.HasFindings(instance.instance);
    out += fmt::format(
        "<tr class=\"{}\" data-instance=\"{}\"><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td>"
        "<td class=\"path\">{}</td></tr>\n",
        finding ? "unregistered" : "ok", Escape(instance.instance), Escape(instance.instance),
        finding ? " <span class=\"badge\">unregistered</span>" : "", Escape(instance.environment),
        fmt::join(imports, ", "),
        slots.empty() ? std::string("none") : fmt::format("{}", fmt::join(slots, "<br>")),
        Escape(instance.library));
  }
  out += "</tbody></table>\n";
  return out;
}

// Embedded JSON: '<' escaped so no "</script>" can end the element early.
std::string EmbeddedJson(const Report& report) {
  const std::string json = RenderJson(report).dump();
  std::string out;
  for (char c : json) {
    if (c == '<') {
      out += "\\u003c";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

std::string RenderHtml(const Report& report) {
  const Summary& s = report.summary;
  const std::string status(Status(report));
  std::string summary;
  if (s.findings == 0) {
    summary = fmt::format(
        "Clean: every slot has a registration ({} of {} slot(s), {} instance(s), {} "
        "environment(s)).",
        s.registered_slots, s.slots, s.instances, s.environments);
  } else {
    summary = fmt::format(
        "{} finding(s): {} slot(s) without registration on {} instance(s) in {} environment(s) "
        "({} of {} slot(s) registered, {} instance(s)).",
        s.findings, s.findings, s.instances_with_findings, s.environments_with_findings,
        s.registered_slots, s.slots, s.instances);
  }
  if (s.errors > 0) summary += fmt::format(" {} error(s) loading the topology.", s.errors);

  std::string out = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  out +=
      "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
      "style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">\n"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
      "<link rel=\"icon\" href=\"data:,\">\n";
  out += fmt::format("<title>modgraph: topology {}</title>\n", Escape(report.topology));
  out += fmt::format("<style>{}</style>\n</head>\n<body>\n", html_internal::kStyle);
  out += fmt::format("<h1>modgraph: topology {} <small>({})</small></h1>\n",
                     Escape(report.topology), Escape(report.origin));
  out += fmt::format("<p class=\"summary {}\" id=\"summary\">{}</p>\n", status, Escape(summary));
  out += "<h2>Findings: slots with no registration</h2>\n" + FindingsTable(report);
  if (!report.errors.empty()) {
    out += "<h2>Errors</h2>\n<ul class=\"errors\">\n";
    for (const std::string& error : report.errors) out += "<li>" + Escape(error) + "</li>\n";
    out += "</ul>\n";
  }
  out +=
      "<h2>Graph</h2>\n<p class=\"legend\"><span>solid arrow: import</span>"
      "<span style=\"color:#2e7d32\">dashed green: registration (provider &rarr; target)</span>"
      "<span style=\"color:#c62828\">dotted red: unregistered instance &harr; registered "
      "twin</span></p>\n";
  out += "<div class=\"graph-box\">\n" + Svg(report) + "</div>\n";
  out +=
      "<h2>Instances</h2>\n<p><label><input type=\"checkbox\" id=\"only-unregistered\"> only "
      "instances with unregistered slots</label></p>\n" +
      InstancesTable(report);
  out += "<script type=\"application/json\" id=\"modgraph-data\">" + EmbeddedJson(report) +
         "</script>\n";
  out += fmt::format("<script>{}</script>\n</body>\n</html>\n", html_internal::kScript);
  return out;
}

}  // namespace modgraph::report
